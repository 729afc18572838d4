//! Black box: the real binary with a UCloud account pointed at the simulated
//! UCloud API on loopback: counts and the prefetch completion ratio equal the
//! simulator's ground truth; a bad key marks the account down, leaking nothing.

mod common;

use cdn_task_exporter::clock::SystemClock;
use cdn_task_exporter::sim::ucloud::UcloudSim;
use cdn_task_exporter::sim::{Traffic, World};
use cdn_task_exporter::task::{TaskStatus, TaskType};
use common::{frozen_world, parse_metrics, sim_endpoint, traffic, value, Exporter};
use std::sync::Arc;
use std::time::Duration;

const PUBLIC: &str = "ucloudops@example.com1296235120854146120";
const PRIVATE: &str = "46f09bb9fab4f12dfc160dae12273d5332b5debe-sim";
const TYPES: [TaskType; 3] = [
    TaskType::RefreshFile,
    TaskType::RefreshDir,
    TaskType::Prefetch,
];

async fn start_sim(seed: u64) -> (Arc<World>, UcloudSim, String) {
    let traffic = Traffic {
        failure_rate: 0.1,
        ..traffic(seed, 400.0, &TYPES)
    };
    let world = frozen_world(Arc::new(SystemClock), traffic, 6);
    let sim = UcloudSim::new(world.clone(), PUBLIC, PRIVATE);
    let endpoint = sim_endpoint(sim.clone().router()).await;
    (world, sim, endpoint)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_reports_ucloud_ground_truth_and_prefetch_completion() {
    let (world, sim, endpoint) = start_sim(31).await;
    let unknow: Vec<String> = world
        .list(0, i64::MAX, None, None)
        .iter()
        .filter(|t| t.task_type == TaskType::Prefetch)
        .step_by(40)
        .map(|t| t.id.clone())
        .collect();
    sim.report_unknow(unknow);
    let config = format!(
        r#"
accounts:
  - name: uc
    vendor: ucloud
    endpoint: {endpoint}
    credentials: {{ id: "{PUBLIC}", secret: "${{UCLOUD_PRIVATE_KEY}}" }}
    lookback: 24h
    options: {{ project_id: org-sim, page_size: 100 }}
"#
    );
    let exp = tokio::task::spawn_blocking(move || {
        Exporter::start_with_env(
            &config,
            &["--log.level", "debug"],
            &[("UCLOUD_PRIVATE_KEY", PRIVATE)],
        )
    })
    .await
    .unwrap();
    let text = tokio::task::block_in_place(|| {
        exp.scrape_until_synced(
            &[("vendor", "ucloud"), ("account", "uc")],
            Duration::from_secs(60),
        )
    });
    let m = parse_metrics(&text);
    let from = world.now() - 86_400;
    let truth = sim.truth(from);
    assert!(truth.values().sum::<u64>() > 1000, "a realistic history");
    assert!(truth.contains_key(&(TaskType::Prefetch, TaskStatus::Unknown)));
    for t in TYPES {
        for s in TaskStatus::ALL {
            let expected = truth.get(&(t, s)).copied().unwrap_or(0) as f64;
            let labels = [
                ("vendor", "ucloud"),
                ("account", "uc"),
                ("task_type", t.as_str()),
                ("status", s.as_str()),
            ];
            assert_eq!(value(&m, "cdn_tasks", &labels), Some(expected), "{t}/{s}");
        }
    }
    let ratio = value(
        &m,
        "cdn_task_completion_ratio",
        &[
            ("vendor", "ucloud"),
            ("account", "uc"),
            ("task_type", "prefetch"),
        ],
    )
    .unwrap();
    let want = sim.completion_truth(TaskType::Prefetch, from).unwrap();
    assert!(
        (ratio - want).abs() < 1e-4,
        "completion ratio {ratio}, simulator truth {want}"
    );
    eprintln!(
        "ucloud black box: {} tasks in truth, prefetch completion ratio {ratio} (truth {want})",
        truth.values().sum::<u64>()
    );
    assert!(want < 1.0 && want > 0.5, "{want}");
    assert_eq!(
        value(
            &m,
            "cdn_vendor_up",
            &[("vendor", "ucloud"), ("account", "uc")]
        ),
        Some(1.0)
    );
    tokio::task::block_in_place(|| common::promtool_check_metrics(&text));
    let logs = exp.logs();
    let (status, page) =
        tokio::task::block_in_place(|| common::http_get(&exp.addr, "/", &[])).unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("ucloud"), "{page}");
    for shown in [&logs, &text, &page] {
        assert!(!shown.contains(PRIVATE), "secret leaked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_with_a_wrong_private_key_is_down_with_auth_error_and_leaks_nothing() {
    let (_world, sim, endpoint) = start_sim(32).await;
    let secret = "not-the-private-key-6f1e2d";
    let config = format!(
        r#"
accounts:
  - name: bad
    vendor: ucloud
    endpoint: {endpoint}
    credentials: {{ id: "{PUBLIC}", secret: "{secret}" }}
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
            &[("vendor", "ucloud"), ("account", "bad")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &m,
            "cdn_vendor_api_requests_total",
            &[
                ("vendor", "ucloud"),
                ("account", "bad"),
                ("api", "DescribeNewUcdnPrefetchCacheTask"),
                ("outcome", "auth_error")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(sim.control.received()[0].answer, "auth_error");
    let logs = exp.logs();
    assert!(
        logs.contains("auth_error") && logs.contains("Signature VerifyAC Error"),
        "a clear log line: {logs}"
    );
    let (_, page) = tokio::task::block_in_place(|| common::http_get(&exp.addr, "/", &[])).unwrap();
    for shown in [&logs, &text, &page] {
        assert!(!shown.contains(secret), "secret leaked");
    }
}
