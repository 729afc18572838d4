//! UCloud over real HTTP (loopback) against the simulated UCloud API, with
//! the exporter's collector in-process: both APIs, paging, re-checks by
//! `TaskId.N`, every RetCode class, `unknow`, malformed bodies, auth failure.

mod common;

use cdn_task_exporter::app;
use cdn_task_exporter::clock::SystemClock;
use cdn_task_exporter::collector::Collector;
use cdn_task_exporter::config;
use cdn_task_exporter::http::ReqwestTransport;
use cdn_task_exporter::metrics;
use cdn_task_exporter::sim::ucloud::UcloudSim;
use cdn_task_exporter::sim::{serve, Fault, SimTask, Traffic, World};
use cdn_task_exporter::task::{TaskStatus, TaskType};
use common::{frozen_world, parse_metrics, sim_endpoint, traffic, value, Account};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

const UC: Account = Account {
    vendor: "ucloud",
    name: "uc",
};
const PUBLIC: &str = "ucloud-test@example.com1296235120854146120";
const PRIVATE: &str = "priv-46f09bb9fab4f12dfc160dae12273d5332b5debe";
const PREFETCH: &str = "DescribeNewUcdnPrefetchCacheTask";
const REFRESH: &str = "DescribeNewUcdnRefreshCacheTask";
const UCLOUD_TYPES: [TaskType; 3] = [
    TaskType::RefreshFile,
    TaskType::RefreshDir,
    TaskType::Prefetch,
];

async fn start(world: Arc<World>) -> (UcloudSim, String) {
    let sim = UcloudSim::new(world, PUBLIC, PRIVATE);
    let endpoint = sim_endpoint(sim.clone().router()).await;
    (sim, endpoint)
}

fn traffic_world(seed: u64, per_hour: f64) -> Arc<World> {
    let traffic = Traffic {
        failure_rate: 0.1,
        ..traffic(seed, per_hour, &UCLOUD_TYPES)
    };
    frozen_world(Arc::new(SystemClock), traffic, 6)
}

fn parsed_config(endpoint: &str, private: &str) -> config::Config {
    config_text(endpoint, private, "")
}

fn config_text(endpoint: &str, private: &str, extra: &str) -> config::Config {
    let text = UC.yaml(
        endpoint,
        PUBLIC,
        private,
        &format!("    lookback: 24h\n{extra}"),
    );
    config::parse(&text, "test.yml", &|_| None, &|_| Err("no files".into()))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn collector(endpoint: &str, private: &str, extra: &str) -> Collector {
    let cfg = config_text(endpoint, private, extra);
    app::collector(
        &cfg,
        Arc::new(ReqwestTransport::new(16 << 20).unwrap()),
        Arc::new(SystemClock),
    )
}

async fn refresh(c: &Collector) -> HashMap<String, f64> {
    c.accounts()[0].refresh().await;
    parse_metrics(&metrics::render(c, c.clock.unix()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_apis_page_through_and_match_the_ground_truth_with_unknow() {
    let world = traffic_world(21, 60.0);
    let (sim, endpoint) = start(world.clone()).await;
    // A few tasks of each API report UCloud's `unknow`.
    let all = world.list(0, i64::MAX, None, None);
    let unknow: Vec<String> = all
        .iter()
        .filter(|t| t.task_type == TaskType::Prefetch)
        .take(3)
        .chain(all.iter().filter(|t| t.task_type.is_refresh()).take(4))
        .map(|t| t.id.clone())
        .collect();
    sim.report_unknow(unknow);
    let c = collector(&endpoint, PRIVATE, "    options: { page_size: 25 }");
    let m = refresh(&c).await;
    assert_eq!(UC.up(&m), Some(1.0));

    let truth = sim.truth(world.now() - 86_400);
    let n: u64 = truth.values().sum();
    assert!(n > 250, "a realistic history: {n} tasks");
    assert_eq!(
        truth
            .iter()
            .filter(|((_, s), _)| *s == TaskStatus::Unknown)
            .map(|(_, n)| n)
            .sum::<u64>(),
        7
    );
    for t in UCLOUD_TYPES {
        for s in TaskStatus::ALL {
            let want = truth.get(&(t, s)).copied().unwrap_or(0) as f64;
            assert_eq!(UC.tasks(&m, t, s), Some(want), "{t}/{s}");
        }
    }
    // Paging: each API took several pages of 25, all answered ok.
    let (pf, rf) = (sim.control.count(PREFETCH), sim.control.count(REFRESH));
    let per_type = |t: TaskType| {
        TaskStatus::ALL
            .iter()
            .map(|s| truth.get(&(t, *s)).copied().unwrap_or(0))
            .sum::<u64>()
    };
    // A first sync lists its newest `overlap` apart (the rest goes several
    // pages at a time): one listing more, which costs at most one page
    // more than one listing of the whole window.
    let pages = |n: u64| n.div_ceil(25) as usize;
    let within = |calls: usize, n: u64| calls == pages(n) || calls == pages(n) + 1;
    let prefetches = per_type(TaskType::Prefetch);
    assert!(
        within(pf, prefetches),
        "prefetch: {pf} calls for {prefetches} tasks"
    );
    let refreshes = per_type(TaskType::RefreshFile) + per_type(TaskType::RefreshDir);
    assert!(
        within(rf, refreshes),
        "refresh: {rf} calls for {refreshes} tasks"
    );
    eprintln!("ucloud paging: {n} tasks, {pf} prefetch pages, {rf} refresh pages of 25");
    assert!(pf >= 3 && rf >= 6, "{pf} {rf}");
    assert_eq!(UC.requests(&m, PREFETCH, "ok"), pf as f64);
    assert_eq!(UC.requests(&m, REFRESH, "ok"), rf as f64);
    assert!(sim.control.received().iter().all(|r| r.answer == "ok"));
    // Completion ratio of prefetch equals the simulator's per-URL truth.
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
    let want = sim
        .completion_truth(TaskType::Prefetch, world.now() - 86_400)
        .unwrap();
    assert!((ratio - want).abs() < 1e-4, "{ratio} vs {want}");
    assert!(ratio < 1.0, "some prefetches are unfinished");
}

/// A task created `age` seconds ago that starts `starts_in` from now and
/// runs 1 s: old enough that the next head listing (which overlaps only
/// 2 minutes) does not return it, so it must be re-checked by id.
fn late_task(id: String, ty: TaskType, now: i64, starts_in: i64) -> SimTask {
    SimTask {
        id,
        task_type: ty,
        created_at: now - 3600,
        domain: "img.example.com".into(),
        urls: vec![
            "https://img.example.com/a.png".into(),
            "https://img.example.com/b.png".into(),
        ],
        queued_for: 3600 + starts_in,
        runs_for: Some(1),
        fails: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_tasks_are_rechecked_by_task_id_on_their_own_api() {
    let world = World::new(Arc::new(SystemClock));
    let now = world.now();
    for i in 0..25 {
        world.add(late_task(format!("pf-{i:02}"), TaskType::Prefetch, now, 1));
    }
    for i in 0..12 {
        world.add(late_task(format!("rd-{i}"), TaskType::RefreshDir, now, 1));
    }
    let (sim, endpoint) = start(world.clone()).await;
    // Pages of 10: listing the hour-old tasks again (3 and 2 pages, or the
    // head stretched back over them) costs more than their ids, 20 a call.
    let c = collector(
        &endpoint,
        PRIVATE,
        "    options: { page_size: 10 }
",
    );
    let m = refresh(&c).await;
    assert_eq!(
        UC.tasks(&m, TaskType::Prefetch, TaskStatus::Pending),
        Some(25.0)
    );
    assert_eq!(
        UC.tasks(&m, TaskType::RefreshDir, TaskStatus::Pending),
        Some(12.0)
    );
    assert!(sim.id_queries().is_empty());
    // Let every task finish (they start within 1 s and run 1 s).
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let m = refresh(&c).await;
    assert_eq!(
        UC.tasks(&m, TaskType::Prefetch, TaskStatus::Success),
        Some(25.0)
    );
    assert_eq!(
        UC.tasks(&m, TaskType::RefreshDir, TaskStatus::Success),
        Some(12.0)
    );
    assert_eq!(
        UC.tasks(&m, TaskType::Prefetch, TaskStatus::Pending),
        Some(0.0)
    );
    let q = sim.id_queries();
    let shape: Vec<(&str, usize)> = q.iter().map(|(a, ids)| (a.as_str(), ids.len())).collect();
    assert_eq!(shape, [(PREFETCH, 20), (PREFETCH, 5), (REFRESH, 12)]);
    assert!(q[0].1.iter().chain(&q[1].1).all(|id| id.starts_with("pf-")));
    assert!(q[2].1.iter().all(|id| id.starts_with("rd-")));
    // Finished tasks are not asked about again.
    let m = refresh(&c).await;
    assert_eq!(sim.id_queries().len(), 3);
    assert_eq!(UC.up(&m), Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ret_code_errors_are_classified_and_counted() {
    let world = traffic_world(22, 20.0);
    let (sim, endpoint) = start(world).await;
    let c = collector(&endpoint, PRIVATE, "    retries: 0");
    let m = refresh(&c).await;
    assert_eq!(UC.up(&m), Some(1.0));
    let base = UC.requests(&m, PREFETCH, "ok");
    for (code, msg, outcome, up_after) in [
        (230, "Params [BeginTime] not available", "client_error", 0.0),
        (160, "Missing Action", "client_error", 0.0),
        (150, "Service Unavailable", "server_error", 0.0),
        (110, "API timeout", "server_error", 0.0),
        (172, "User not exists", "auth_error", 0.0),
        (295, "Security lock", "auth_error", 0.0),
    ] {
        sim.set_ret_code(Some((code, msg)));
        let before = UC.requests(&parse_metrics(&metrics::render(&c, 0)), PREFETCH, outcome);
        let m = refresh(&c).await;
        assert_eq!(
            UC.requests(&m, PREFETCH, outcome),
            before + 1.0,
            "RetCode {code} → {outcome}"
        );
        assert_eq!(UC.up(&m), Some(up_after), "RetCode {code}");
        let err = c.accounts()[0].snapshot().last_error.clone().unwrap();
        assert!(
            err.contains(msg) && err.contains(&code.to_string()),
            "{err}"
        );
    }
    // Throttling (153) is counted and backs off, without marking the vendor down.
    sim.set_ret_code(None);
    let m = refresh(&c).await;
    assert_eq!(UC.up(&m), Some(1.0));
    sim.set_ret_code(Some((153, "Request Frequency Limit")));
    let m = refresh(&c).await;
    assert_eq!(UC.requests(&m, PREFETCH, "throttled"), 1.0);
    assert_eq!(UC.up(&m), Some(1.0), "throttling says nothing about health");
    sim.set_ret_code(None);
    assert!(UC.requests(&m, PREFETCH, "ok") > base);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_parse_errors_and_the_account_recovers() {
    let world = traffic_world(23, 20.0);
    let (sim, endpoint) = start(world).await;
    let c = collector(&endpoint, PRIVATE, "    retries: 0");
    for (i, fault) in [
        Fault::Garbage,
        Fault::Html,
        Fault::Truncated,
        Fault::Huge(64),
    ]
    .into_iter()
    .enumerate()
    {
        sim.control.set_fault(fault.clone());
        let m = refresh(&c).await;
        assert_eq!(UC.up(&m), Some(0.0), "{fault:?}");
        let n = UC.requests(&m, PREFETCH, "parse_error") + UC.requests(&m, REFRESH, "parse_error");
        assert_eq!(n, (i + 1) as f64, "{fault:?}");
    }
    sim.control.set_fault(Fault::None);
    let m = refresh(&c).await;
    assert_eq!(UC.up(&m), Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_private_key_is_auth_error_up_zero_and_nothing_leaks() {
    let world = traffic_world(24, 20.0);
    let (sim, endpoint) = start(world).await;
    let secret = "wrong-private-key-value-0123";
    let c = collector(&endpoint, secret, "");
    let m = refresh(&c).await;
    assert_eq!(UC.up(&m), Some(0.0));
    assert_eq!(UC.requests(&m, PREFETCH, "auth_error"), 1.0);
    assert_eq!(sim.control.received()[0].answer, "auth_error");
    let text = metrics::render(&c, c.clock.unix());
    let err = c.accounts()[0].snapshot().last_error.clone().unwrap();
    assert!(
        err.contains("Signature VerifyAC Error") && err.contains("171"),
        "{err}"
    );
    for shown in [
        text,
        err,
        format!("{:?}", c.accounts()[0].snapshot()),
        format!("{:?}", c.accounts()[0]),
        format!("{:?}", parsed_config(&endpoint, secret)),
    ] {
        assert!(!shown.contains(secret), "secret leaked: {shown}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_enforces_its_rate_limit_with_ret_code_153() {
    use cdn_task_exporter::api::Rate;
    let world = traffic_world(25, 200.0);
    let sim = UcloudSim::new(world, PUBLIC, PRIVATE)
        .with_rate_limit(Rate::new(2, Duration::from_secs(1)));
    let (addr, _) = serve(sim.clone().router()).await.unwrap();
    // The exporter's budget (5/s, above the sim's 2/s) runs into RetCode 153.
    let c = collector(
        &format!("http://{addr}"),
        PRIVATE,
        "    task_types: [prefetch]\n    options: { page_size: 10 }",
    );
    let m = refresh(&c).await;
    // Pages go several at a time: every answer the sim gave is counted as
    // what it was, the two a second it admits as ok.
    let log = sim.control.received();
    let answered = |a: &str| log.iter().filter(|r| r.answer == a).count() as f64;
    assert!(answered("throttled") >= 1.0, "the sim throttled");
    assert_eq!(
        UC.requests(&m, PREFETCH, "throttled"),
        answered("throttled")
    );
    assert_eq!(UC.requests(&m, PREFETCH, "ok"), answered("ok"));
    assert_eq!(answered("ok"), 2.0, "2 a second admitted");
}
