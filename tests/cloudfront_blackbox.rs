//! Black box: the real binary with a CloudFront account (temporary
//! credentials, two distributions) pointed at the simulated API on
//! loopback: task and path counts equal the simulator's ground truth, the
//! failed series stay 0, quotas are the in-progress limits, the output is
//! promtool-clean; a wrong secret marks the account down and leaks nothing.

mod common;

use cdn_task_exporter::clock::SystemClock;
use cdn_task_exporter::sim::cloudfront::CloudfrontSim;
use cdn_task_exporter::sim::{Traffic, World};
use cdn_task_exporter::task::{TaskStatus, TaskType};
use common::{frozen_world, parse_metrics, sim_endpoint, traffic, value, Exporter};
use std::sync::Arc;
use std::time::Duration;

const AK: &str = "ASIASIMULATEDEXAMPLE";
const SK: &str = "sim/cloudfront+blackbox-secret-key";
const TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLE-sim-session-token";
const DISTS: [&str; 2] = ["EDFDVBD6EXAMPLE", "E2QWRUHEXAMPLE"];
const TYPES: [TaskType; 2] = [TaskType::RefreshFile, TaskType::RefreshDir];

async fn start_sim(seed: u64) -> (Arc<World>, CloudfrontSim, String) {
    let traffic = Traffic {
        failure_rate: 0.1,
        max_urls: 6,
        ..traffic(seed, 30.0, &TYPES)
    };
    let world = frozen_world(Arc::new(SystemClock), traffic, 4);
    let sim = CloudfrontSim::new(world.clone(), AK, SK, &DISTS).with_session_token(TOKEN);
    let endpoint = sim_endpoint(sim.clone().router()).await;
    (world, sim, endpoint)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_reports_cloudfront_ground_truth() {
    let (world, sim, endpoint) = start_sim(51).await;
    let config = format!(
        r#"
accounts:
  - name: cf
    vendor: cloudfront
    endpoint: {endpoint}
    credentials: {{ id: {AK}, secret: "${{AWS_SECRET_ACCESS_KEY}}", session_token: "${{AWS_SESSION_TOKEN}}" }}
    lookback: 24h
    safety_fraction: 1.0
    options: {{ distribution_ids: [{}], max_items: 20 }}
"#,
        DISTS.join(", ")
    );
    let exp = tokio::task::spawn_blocking(move || {
        Exporter::start_with_env(
            &config,
            &["--log.level", "debug"],
            &[("AWS_SECRET_ACCESS_KEY", SK), ("AWS_SESSION_TOKEN", TOKEN)],
        )
    })
    .await
    .unwrap();
    let labels = [("vendor", "cloudfront"), ("account", "cf")];
    let text =
        tokio::task::block_in_place(|| exp.scrape_until_synced(&labels, Duration::from_secs(90)));
    let m = parse_metrics(&text);
    let from = world.now() - 86_400;
    let truth = sim.truth(from);
    let urls = sim.url_truth(from);
    let total: u64 = truth.values().sum();
    assert!(total > 80, "a realistic history: {total}");
    assert!(
        truth.contains_key(&(TaskType::RefreshDir, TaskStatus::Running))
            || truth.contains_key(&(TaskType::RefreshFile, TaskStatus::Running))
    );
    for t in TYPES {
        for s in TaskStatus::ALL {
            let l = [
                ("vendor", "cloudfront"),
                ("account", "cf"),
                ("task_type", t.as_str()),
                ("status", s.as_str()),
            ];
            let want = truth.get(&(t, s)).copied().unwrap_or(0) as f64;
            assert_eq!(value(&m, "cdn_tasks", &l), Some(want), "cdn_tasks {t}/{s}");
            let want = urls.get(&(t, s)).copied().unwrap_or(0) as f64;
            assert_eq!(
                value(&m, "cdn_task_urls", &l),
                Some(want),
                "cdn_task_urls {t}/{s}"
            );
        }
        let l = [
            ("vendor", "cloudfront"),
            ("account", "cf"),
            ("task_type", t.as_str()),
        ];
        let limit = if t == TaskType::RefreshFile {
            3000.0
        } else {
            15.0
        };
        assert_eq!(value(&m, "cdn_quota_limit", &l), Some(limit), "{t}");
        let rem = value(&m, "cdn_quota_remaining", &l).expect("remaining");
        assert!((0.0..=limit).contains(&rem), "{t}: {rem}");
    }
    assert_eq!(value(&m, "cdn_vendor_up", &labels), Some(1.0));
    let log = sim.control.received();
    assert!(
        log.iter().all(|r| r.answer == "ok"),
        "every request accepted, none throttled"
    );
    tokio::task::block_in_place(|| common::promtool_check_metrics(&text));
    let logs = exp.logs();
    let (status, page) =
        tokio::task::block_in_place(|| common::http_get(&exp.addr, "/", &[])).unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("cloudfront"), "{page}");
    for shown in [&logs, &text, &page] {
        assert!(
            !shown.contains(SK) && !shown.contains(TOKEN),
            "secret leaked"
        );
    }
    eprintln!(
        "cloudfront black box: {total} invalidations in truth, {} requests to the simulator",
        log.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_with_a_wrong_secret_is_down_with_auth_error_and_leaks_nothing() {
    let (_world, sim, endpoint) = start_sim(52).await;
    let secret = "not-the-secret-access-key-9c2b";
    let config = format!(
        r#"
accounts:
  - name: bad
    vendor: cloudfront
    endpoint: {endpoint}
    credentials: {{ id: {AK}, secret: "{secret}", session_token: "{TOKEN}" }}
    options: {{ distribution_ids: [{}] }}
"#,
        DISTS[0]
    );
    let exp =
        tokio::task::spawn_blocking(move || Exporter::start(&config, &["--log.level", "debug"]))
            .await
            .unwrap();
    let text = tokio::task::block_in_place(|| exp.scrape(Some("5")));
    let m = parse_metrics(&text);
    let labels = [("vendor", "cloudfront"), ("account", "bad")];
    assert_eq!(value(&m, "cdn_vendor_up", &labels), Some(0.0));
    assert_eq!(
        value(
            &m,
            "cdn_vendor_api_requests_total",
            &[
                ("vendor", "cloudfront"),
                ("account", "bad"),
                ("api", "ListInvalidations"),
                ("outcome", "auth_error")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(sim.control.received()[0].answer, "auth_error");
    let logs = exp.logs();
    assert!(
        logs.contains("auth_error") && logs.contains("SignatureDoesNotMatch"),
        "a clear log line: {logs}"
    );
    let (_, page) = tokio::task::block_in_place(|| common::http_get(&exp.addr, "/", &[])).unwrap();
    for shown in [&logs, &text, &page] {
        assert!(
            !shown.contains(secret) && !shown.contains(TOKEN),
            "secret leaked"
        );
    }
}
