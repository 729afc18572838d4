//! Black box: the real binary, configured with a testing-vendor account
//! pointed at the simulated API on loopback, scraped over HTTP.

mod common;

use cdn_task_exporter::clock::SystemClock;
use cdn_task_exporter::sim::testing::TestingSim;
use cdn_task_exporter::sim::{Fault, Traffic, World};
use cdn_task_exporter::task::{TaskStatus, TaskType};
use common::{frozen_world, parse_metrics, sim_endpoint, traffic, value, Exporter};
use std::sync::Arc;
use std::time::Duration;

async fn start_sim(seed: u64, secret: &str) -> (Arc<World>, TestingSim, String) {
    let traffic = Traffic {
        failure_rate: 0.1,
        ..traffic(seed, 400.0, &TaskType::ALL)
    };
    let world = frozen_world(Arc::new(SystemClock), traffic, 6);
    let sim = TestingSim::new(world.clone(), secret);
    let endpoint = sim_endpoint(sim.clone().router()).await;
    (world, sim, endpoint)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_reports_the_simulators_ground_truth_and_passes_promtool() {
    let (world, _sim, endpoint) = start_sim(11, "tok-good").await;
    let config = format!(
        r#"
accounts:
  - name: shop
    vendor: testing
    endpoint: {endpoint}
    credentials: {{ id: shop, secret: "${{SIM_SECRET}}" }}
    lookback: 24h
    options: {{ page_size: 100 }}
"#
    );
    let exp = tokio::task::spawn_blocking(move || {
        Exporter::start_with_env(
            &config,
            &["--log.level", "debug"],
            &[("SIM_SECRET", "tok-good")],
        )
    })
    .await
    .unwrap();
    // The first sync pages through ~2,400 tasks within the budget; scrape
    // until it has completed once.
    let text = tokio::task::block_in_place(|| {
        exp.scrape_until_synced(
            &[("vendor", "testing"), ("account", "shop")],
            Duration::from_secs(60),
        )
    });
    let m = parse_metrics(&text);
    let labels = |t: TaskType, s: TaskStatus| {
        [
            ("vendor", "testing"),
            ("account", "shop"),
            ("task_type", t.as_str()),
            ("status", s.as_str()),
        ]
    };
    let truth = world.truth(world.now() - 86_400);
    assert!(
        truth.values().sum::<u64>() > 1000,
        "the simulator holds a realistic history"
    );
    for t in TaskType::ALL {
        for s in TaskStatus::ALL {
            let expected = truth.get(&(t, s)).copied().unwrap_or(0) as f64;
            assert_eq!(
                value(&m, "cdn_tasks", &labels(t, s)),
                Some(expected),
                "{t}/{s}"
            );
        }
    }
    assert_eq!(
        value(
            &m,
            "cdn_vendor_up",
            &[("vendor", "testing"), ("account", "shop")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &m,
            "cdn_quota_remaining",
            &[
                ("vendor", "testing"),
                ("account", "shop"),
                ("task_type", "prefetch")
            ]
        ),
        Some(50.0)
    );
    tokio::task::block_in_place(|| common::promtool_check_metrics(&text));
    let logs = exp.logs();
    assert!(
        !logs.contains("tok-good") && !text.contains("tok-good"),
        "secret leaked"
    );
    let (status, page) =
        tokio::task::block_in_place(|| common::http_get(&exp.addr, "/", &[])).unwrap();
    assert_eq!(status, 200);
    assert!(
        page.contains("shop") && page.contains("testing") && !page.contains("tok-good"),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_secret_marks_the_account_down_without_leaking_it() {
    let (_world, sim, endpoint) = start_sim(12, "the-real-token").await;
    let config = format!(
        r#"
accounts:
  - name: wrong
    vendor: testing
    endpoint: {endpoint}
    credentials: {{ id: x, secret: "wrong-token-value" }}
"#
    );
    let exp =
        tokio::task::spawn_blocking(move || Exporter::start(&config, &["--log.level", "debug"]))
            .await
            .unwrap();
    let text = tokio::task::block_in_place(|| exp.scrape(Some("5")));
    let m = parse_metrics(&text);
    assert_eq!(
        value(
            &m,
            "cdn_vendor_up",
            &[("vendor", "testing"), ("account", "wrong")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &m,
            "cdn_vendor_api_requests_total",
            &[
                ("vendor", "testing"),
                ("account", "wrong"),
                ("api", "ListTasks"),
                ("outcome", "auth_error")
            ]
        ),
        Some(1.0)
    );
    let logs = exp.logs();
    assert!(
        logs.contains("auth_error") && logs.contains("wrong"),
        "a clear log line: {logs}"
    );
    assert!(!logs.contains("wrong-token-value") && !text.contains("wrong-token-value"));
    assert_eq!(sim.control.fault(), Fault::None);
}

#[test]
fn check_config_agrees_with_startup() {
    let dir = common::tempdir::TempDir::new("cc");
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, "accounts:\n  - name: a\n    vendor: testing\n    credentials: { id: x }\n    lookback: forever\n").unwrap();
    let out = std::process::Command::new(common::binary())
        .args(["check-config", "--config.file"])
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("bad.yml: account \"a\": key \"credentials.secret\": missing"),
        "{err}"
    );
    assert!(
        err.contains("bad.yml: account \"a\": key \"lookback\": bad duration"),
        "{err}"
    );
    // Starting the server with the same file fails the same way.
    let out = std::process::Command::new(common::binary())
        .arg("--config.file")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("key \"credentials.secret\": missing"));

    let good = dir.path().join("good.yml");
    std::fs::write(
        &good,
        "accounts:\n  - name: a\n    vendor: testing\n    credentials: { id: x, secret: y }\n",
    )
    .unwrap();
    let out = std::process::Command::new(common::binary())
        .args(["check-config", "--config.file"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_example_config_in_examples_is_valid() {
    let out = std::process::Command::new(common::binary())
        .args(["check-config", "--config.file"])
        .arg(common::repo("examples/cdn-task-exporter.yml"))
        .envs([
            ("VOLCENGINE_SECRET_ACCESS_KEY", "x"),
            ("ALIYUN_ACCESS_KEY_SECRET", "x"),
            ("UCLOUD_PRIVATE_KEY", "x"),
            ("CDNETWORKS_API_KEY", "x"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration OK (4 accounts)"));
}
