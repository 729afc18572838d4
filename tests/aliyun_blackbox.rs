//! Black box: the real binary with an Aliyun account pointed at the
//! simulated Aliyun CDN API on loopback, scraped over HTTP.

mod common;

use cdn_task_exporter::clock::SystemClock;
use cdn_task_exporter::sim::aliyun::AliyunSim;
use cdn_task_exporter::sim::Traffic;
use cdn_task_exporter::task::{TaskStatus, TaskType};
use cdn_task_exporter::vendors::aliyun::TASK_TYPES;
use common::{frozen_world, parse_metrics, sim_endpoint, traffic, value, Exporter};
use std::sync::Arc;
use std::time::Duration;

const AK: &str = "LTAI5tBlackBoxKeyId";

async fn start_sim(seed: u64, secret: &str) -> (AliyunSim, String) {
    let traffic = Traffic {
        failure_rate: 0.1,
        ..traffic(seed, 300.0, TASK_TYPES)
    };
    let world = frozen_world(Arc::new(SystemClock), traffic, 6);
    let sim = AliyunSim::new(world, AK, secret);
    let endpoint = sim_endpoint(sim.clone().router()).await;
    (sim, endpoint)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_reports_the_simulators_ground_truth() {
    let (sim, endpoint) = start_sim(21, "bb-secret-good-1").await;
    let config = format!(
        r#"
accounts:
  - name: cn
    vendor: aliyun
    endpoint: {endpoint}
    credentials: {{ id: {AK}, secret: "${{ALIYUN_SECRET}}" }}
    lookback: 24h
"#
    );
    let exp = tokio::task::spawn_blocking(move || {
        Exporter::start_with_env(
            &config,
            &["--log.level", "debug"],
            &[("ALIYUN_SECRET", "bb-secret-good-1")],
        )
    })
    .await
    .unwrap();
    let text = tokio::task::block_in_place(|| {
        exp.scrape_until_synced(
            &[("vendor", "aliyun"), ("account", "cn")],
            Duration::from_secs(25),
        )
    });
    let m = parse_metrics(&text);
    let truth = sim.truth(sim.world.now() - 86_400);
    assert!(
        truth.values().sum::<u64>() > 1000,
        "the simulator holds a realistic history"
    );
    for t in TaskType::ALL {
        for s in TaskStatus::ALL {
            let want = truth.get(&(t, s)).copied().unwrap_or(0) as f64;
            let got = value(
                &m,
                "cdn_tasks",
                &[
                    ("vendor", "aliyun"),
                    ("account", "cn"),
                    ("task_type", t.as_str()),
                    ("status", s.as_str()),
                ],
            );
            if TASK_TYPES.contains(&t) {
                assert_eq!(got, Some(want), "{t}/{s}");
            } else {
                assert_eq!(got.unwrap_or(0.0), 0.0, "{t} is not an Aliyun type");
            }
        }
    }
    let quota = sim.quota();
    assert_eq!(
        value(
            &m,
            "cdn_quota_remaining",
            &[
                ("vendor", "aliyun"),
                ("account", "cn"),
                ("task_type", "prefetch")
            ]
        ),
        quota.preload_remain
    );
    assert_eq!(
        value(
            &m,
            "cdn_vendor_up",
            &[("vendor", "aliyun"), ("account", "cn")]
        ),
        Some(1.0)
    );
    tokio::task::block_in_place(|| common::promtool_check_metrics(&text));
    assert!(sim.requests().iter().all(|r| r.answer == "ok"));
    let logs = exp.logs();
    assert!(!logs.contains("bb-secret-good-1") && !text.contains("bb-secret-good-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_secret_marks_the_account_down_with_a_clear_log_line_and_no_secret() {
    let (sim, endpoint) = start_sim(22, "the-real-aliyun-secret").await;
    let config = format!(
        r#"
accounts:
  - name: wrongkey
    vendor: aliyun
    endpoint: {endpoint}
    credentials: {{ id: {AK}, secret: "wrong-aliyun-secret-value" }}
"#
    );
    let exp =
        tokio::task::spawn_blocking(move || Exporter::start(&config, &["--log.level", "debug"]))
            .await
            .unwrap();
    let text = tokio::task::block_in_place(|| exp.scrape(Some("5")));
    let m = parse_metrics(&text);
    let acct = [("vendor", "aliyun"), ("account", "wrongkey")];
    assert_eq!(value(&m, "cdn_vendor_up", &acct), Some(0.0));
    assert_eq!(
        value(
            &m,
            "cdn_vendor_api_requests_total",
            &[
                ("vendor", "aliyun"),
                ("account", "wrongkey"),
                ("api", "DescribeRefreshTasks"),
                ("outcome", "auth_error")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(sim.requests()[0].answer, "SignatureDoesNotMatch");
    let logs = exp.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("refresh failed"))
        .unwrap_or_else(|| panic!("no refresh failure logged: {logs}"));
    assert!(
        line.contains("auth_error")
            && line.contains("SignatureDoesNotMatch")
            && line.contains("wrongkey"),
        "a clear log line: {line}"
    );
    let (status, page) =
        tokio::task::block_in_place(|| common::http_get(&exp.addr, "/", &[])).unwrap();
    assert_eq!(status, 200);
    for s in [&logs, &text, &page] {
        assert!(
            !s.contains("wrong-aliyun-secret-value") && !s.contains("the-real-aliyun-secret"),
            "secret leaked"
        );
        assert!(
            !s.contains("string to sign"),
            "echoed string to sign leaked"
        );
    }
}
