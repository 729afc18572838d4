//! Tencent Cloud CDN against the simulated API (`sim::tencent`): paging
//! across several pages, per-URL status counted against the ground truth,
//! the budget held (read from the simulator's request log), throttling,
//! auth failures, unparseable bodies, re-checks by TaskId. Timing is only
//! asserted in tokio's paused time over the router transport; the other
//! tests use real HTTP on loopback.

mod common;

use cdn_task_exporter::api::Rate;
use cdn_task_exporter::clock::{Clock, SharedClock, SystemClock, TokioClock};
use cdn_task_exporter::sim::tencent::TencentSim;
use cdn_task_exporter::sim::{max_in_window, Fault, RouterTransport, SimTask, World};
use cdn_task_exporter::task::{TaskStatus, TaskType};
use common::{
    assert_bad_bodies_are_parse_errors, assert_throttling_handled, collector, frozen_world,
    reqwest, scrape, sim_endpoint, traffic, Account,
};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

const TC: Account = Account {
    vendor: "tencent",
    name: "tc",
};
const ID: &str = "AKIDsimulatedSecretId0123456789";
const KEY: &str = "sim-tencent-secret-key-value";
const TYPES: [TaskType; 3] = [
    TaskType::RefreshFile,
    TaskType::RefreshDir,
    TaskType::Prefetch,
];

/// A frozen world on the system clock holding `hours` of traffic.
fn world(seed: u64, per_hour: f64, hours: u64) -> Arc<World> {
    frozen_world(
        Arc::new(SystemClock),
        traffic(seed, per_hour, &TYPES),
        hours,
    )
}

/// A frozen world on a paused clock.
fn paused_world(seed: u64, per_hour: f64, hours: u64) -> (Arc<World>, SharedClock) {
    let clock: SharedClock = Arc::new(TokioClock::starting_at(1_700_000_000));
    let w = frozen_world(clock.clone(), traffic(seed, per_hour, &TYPES), hours);
    (w, clock)
}

async fn start(sim: &TencentSim) -> String {
    sim_endpoint(sim.clone().router()).await
}

fn account_yaml(endpoint: &str, id: &str, secret: &str, extra: &str) -> String {
    let settings =
        format!("    lookback: 6h\n    min_refresh_interval: 1s\n    retries: 0\n{extra}");
    format!(
        "max_response_bytes: 1048576\n{}",
        TC.yaml(endpoint, id, secret, &settings)
    )
}

/// cdn_tasks and cdn_task_urls equal the simulator's per-URL ground truth
/// (one record is one URL, so both are the same numbers).
fn assert_truth(m: &HashMap<String, f64>, sim: &TencentSim) {
    let truth = sim.truth(sim.world.now() - 6 * 3600);
    for t in TYPES {
        for s in TaskStatus::ALL {
            let l = [("task_type", t.as_str()), ("status", s.as_str())];
            let want = truth.get(&(t, s)).copied().unwrap_or(0) as f64;
            assert_eq!(
                TC.series(m, "cdn_tasks", &l),
                Some(want),
                "cdn_tasks {t}/{s}"
            );
            assert_eq!(
                TC.series(m, "cdn_task_urls", &l),
                Some(want),
                "cdn_task_urls {t}/{s}"
            );
        }
    }
}

/// Real HTTP: three streams of several pages each, per-URL failures,
/// counts equal to the ground truth, every request verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_every_type_across_pages_and_matches_the_truth() {
    let w = world(31, 300.0, 5);
    let sim = TencentSim::new(w.clone(), ID, KEY);
    let endpoint = start(&sim).await;
    let c = collector(
        &account_yaml(&endpoint, ID, KEY, "    options: { page_size: 200 }"),
        reqwest(),
        Arc::new(SystemClock),
    );
    let (_, m) = scrape(&c).await;
    assert_eq!(
        TC.series(&m, "cdn_vendor_up", &[]),
        Some(1.0),
        "{:?}",
        c.accounts()[0].snapshot().last_error
    );
    let truth = sim.truth(w.now() - 6 * 3600);
    for t in TYPES {
        let n: u64 = TaskStatus::ALL
            .iter()
            .map(|s| truth.get(&(t, *s)).copied().unwrap_or(0))
            .sum();
        assert!(
            n > 400,
            "{t}: {n} records must take at least 3 pages of 200"
        );
    }
    let failed: u64 = TYPES
        .iter()
        .map(|t| truth.get(&(*t, TaskStatus::Failed)).copied().unwrap_or(0))
        .sum();
    assert!(failed > 10, "the world holds failed URLs ({failed})");
    assert_truth(&m, &sim);
    let log = sim.control.received();
    assert!(
        log.iter().all(|r| r.answer == "ok"),
        "every request verified and answered"
    );
    for api in ["DescribePurgeTasks", "DescribePushTasks"] {
        let sent = sim.control.count(api);
        assert!(sent >= 3, "{api}: {sent} pages");
        assert_eq!(TC.requests(&m, api, "ok"), sent as f64, "{api}");
    }
    assert_eq!(TC.requests(&m, "DescribePurgeQuota", "ok"), 1.0);
    assert_eq!(TC.requests(&m, "DescribePushQuota", "ok"), 1.0);
    let q = sim.quota(TaskType::RefreshFile);
    let remaining: i64 = q.iter().filter_map(|q| q.available).sum();
    assert_eq!(
        TC.series(&m, "cdn_quota_remaining", &[("task_type", "refresh_file")]),
        Some(remaining as f64)
    );
}

/// Our budget (20/s × 0.5 = 10/s per API) holds exactly, measured on the
/// simulator's log in paused time.
#[tokio::test(start_paused = true)]
async fn budget_holds_exactly_in_paused_time() {
    let (w, clock) = paused_world(32, 1200.0, 5);
    let sim = TencentSim::new(w.clone(), ID, KEY).with_clock(clock.clone());
    let c = collector(
        &account_yaml(
            "https://cdn.tencentcloudapi.test",
            ID,
            KEY,
            "    options: { page_size: 100 }",
        ),
        Arc::new(RouterTransport::new(sim.clone().router())),
        clock,
    );
    let (_, m) = scrape(&c).await;
    assert_eq!(TC.series(&m, "cdn_vendor_up", &[]), Some(1.0));
    assert_truth(&m, &sim);
    let log = sim.control.received();
    let purge = sim.control.count("DescribePurgeTasks");
    let worst = max_in_window(&log, "DescribePurgeTasks", Duration::from_secs(1));
    let worst_push = max_in_window(&log, "DescribePushTasks", Duration::from_secs(1));
    eprintln!("paused: {purge} purge pages, worst 1 s windows {worst}/{worst_push} (budget 10/s)");
    assert!(purge > 30, "several seconds' worth of pages");
    assert_eq!(worst, 10);
    assert!(worst_push <= 10);
    assert!(log.iter().all(|r| r.answer == "ok"));
}

/// The simulator admits 5 requests/s while our budget allows 10/s: the
/// vendor's RequestLimitExceeded is counted as throttled, the API backs off,
/// our own budget is never exceeded. Paused time: gaps are exact.
#[tokio::test(start_paused = true)]
async fn throttling_backs_off_is_counted_and_the_budget_holds() {
    let (w, clock) = paused_world(33, 600.0, 5);
    let sim = TencentSim::new(w.clone(), ID, KEY).with_clock(clock.clone());
    sim.control
        .limit("DescribePurgeTasks", Rate::new(5, Duration::from_secs(1)));
    // One request in flight at a time, so every request after a 429 in
    // the log was sent after the exporter read it (pages in flight
    // together meet a throttling at once: `pages_throttled_together_
    // pause_the_api_once` in src/collector/sync.rs).
    let yaml = account_yaml(
        "https://cdn.tencentcloudapi.test",
        ID,
        KEY,
        "    rate_budget: { DescribePurgeTasks: 10/1s }\n    max_permit_wait: 10s\n    options: { page_size: 100 }",
    );
    let c = collector(
        &format!("max_in_flight_per_endpoint: 1\n{yaml}"),
        Arc::new(RouterTransport::new(sim.clone().router())),
        clock,
    );
    let mut m = HashMap::new();
    for _ in 0..3 {
        m = scrape(&c).await.1;
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let (purge, throttled, worst) = assert_throttling_handled(
        &sim.control.received(),
        &m,
        TC,
        "DescribePurgeTasks",
        Duration::from_secs(1),
        10,
    );
    eprintln!(
        "throttling: {purge} purge requests, {throttled} throttled, worst 1 s window {worst} (budget 10/s, vendor 5/s)"
    );
    assert_eq!(
        TC.requests(&m, "DescribePurgeTasks", "auth_error")
            + TC.requests(&m, "DescribePurgeTasks", "parse_error"),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_keys_are_auth_errors_and_never_leak() {
    let w = world(34, 30.0, 2);
    let sim = TencentSim::new(w.clone(), ID, KEY);
    let endpoint = start(&sim).await;
    let cases = [
        (ID, "not-the-secret-xyz", "AuthFailure.SignatureFailure"),
        (
            "AKIDsomebodyElse000000000000000",
            KEY,
            "AuthFailure.SecretIdNotFound",
        ),
    ];
    for (id, secret, code) in cases {
        let c = collector(
            &account_yaml(&endpoint, id, secret, ""),
            reqwest(),
            Arc::new(SystemClock),
        );
        let (text, m) = scrape(&c).await;
        assert_eq!(TC.series(&m, "cdn_vendor_up", &[]), Some(0.0), "{code}");
        assert_eq!(
            TC.requests(&m, "DescribePurgeTasks", "auth_error"),
            1.0,
            "{code}"
        );
        let err = c.accounts()[0]
            .snapshot()
            .last_error
            .clone()
            .unwrap_or_default();
        assert!(err.contains(code) && err.contains("auth_error"), "{err}");
        assert!(err.contains("request id"), "the RequestId is kept: {err}");
        for place in [&err, &text, &format!("{:?}", c.accounts()[0])] {
            assert!(!place.contains("not-the-secret-xyz") && !place.contains(KEY));
        }
    }
    // A clock 10 minutes off: AuthFailure.SignatureExpire, also an auth error.
    let skewed = TencentSim::new(w.clone(), ID, KEY)
        .with_clock(Arc::new(TokioClock::starting_at(SystemClock.unix() + 600)));
    let endpoint = start(&skewed).await;
    let c = collector(
        &account_yaml(&endpoint, ID, KEY, ""),
        reqwest(),
        Arc::new(SystemClock),
    );
    let (_, m) = scrape(&c).await;
    assert_eq!(TC.requests(&m, "DescribePurgeTasks", "auth_error"), 1.0);
    let err = c.accounts()[0]
        .snapshot()
        .last_error
        .clone()
        .unwrap_or_default();
    assert!(err.contains("AuthFailure.SignatureExpire"), "{err}");
    // Temporary keys without the token: AuthFailure.TokenFailure.
    let sts = TencentSim::new(w.clone(), ID, KEY).with_token("tmp-token-value");
    let endpoint = start(&sts).await;
    let c = collector(
        &account_yaml(&endpoint, ID, KEY, ""),
        reqwest(),
        Arc::new(SystemClock),
    );
    let (_, m) = scrape(&c).await;
    assert_eq!(TC.series(&m, "cdn_vendor_up", &[]), Some(0.0));
    let err = c.accounts()[0]
        .snapshot()
        .last_error
        .clone()
        .unwrap_or_default();
    assert!(err.contains("AuthFailure.TokenFailure"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_oversized_and_html_bodies_are_parse_errors() {
    let w = world(35, 30.0, 2);
    let sim = TencentSim::new(w.clone(), ID, KEY);
    let endpoint = start(&sim).await;
    assert_bad_bodies_are_parse_errors(&sim.control, TC, "DescribePurgeTasks", 2 << 20, || {
        collector(
            &account_yaml(&endpoint, ID, KEY, ""),
            reqwest(),
            Arc::new(SystemClock),
        )
    })
    .await;
    sim.control.set_fault(Fault::ServerError);
    let c = collector(
        &account_yaml(&endpoint, ID, KEY, ""),
        reqwest(),
        Arc::new(SystemClock),
    );
    let (_, m) = scrape(&c).await;
    assert_eq!(TC.requests(&m, "DescribePurgeTasks", "server_error"), 1.0);
    sim.control.set_fault(Fault::None);
}

/// Submissions running at the first sync finish later; the exporter learns
/// it from one TaskId call per submission (not per URL), and never asks
/// about them again. They lie 20 minutes apart with 1,000 finished records
/// after each, so any listing that reaches back over two of them (or the
/// head stretched back) costs more pages than their TaskId calls.
#[tokio::test(start_paused = true)]
async fn unfinished_records_are_rechecked_by_task_id_until_finished() {
    let t0 = 1_700_000_000;
    let clock: SharedClock = Arc::new(TokioClock::starting_at(t0));
    let w = World::new(clock.clone());
    for (i, ty) in TYPES.iter().cycle().take(9).enumerate() {
        let created_at = t0 - 9 * 1200 + 1200 * i as i64 - 1200;
        w.add(SimTask {
            id: format!("17000000001234{i:04}"),
            task_type: *ty,
            created_at,
            domain: "www.example.com".into(),
            urls: (0..3)
                .map(|u| format!("https://www.example.com/{i}/{u}.js"))
                .collect(),
            queued_for: 0,
            runs_for: Some(t0 - created_at + 600),
            fails: i % 3 == 0,
        });
        common::add_finished_tasks(&w, *ty, created_at + 1, 1000, &format!("17000000005{i:01}"));
    }
    let sim = TencentSim::new(w.clone(), ID, KEY).with_clock(clock.clone());
    let c = collector(
        &account_yaml("https://cdn.test", ID, KEY, "    domain: www.example.com"),
        Arc::new(RouterTransport::new(sim.clone().router())),
        clock.clone(),
    );
    let (_, m) = scrape(&c).await;
    let running: f64 = TYPES
        .iter()
        .filter_map(|t| {
            TC.series(
                &m,
                "cdn_tasks",
                &[("task_type", t.as_str()), ("status", "running")],
            )
        })
        .sum();
    assert_eq!(running, 27.0, "9 submissions of 3 URLs, all running");
    assert_eq!(sim.task_id_lookups.load(Ordering::Relaxed), 0);
    tokio::time::advance(Duration::from_secs(1200)).await;
    let (_, m) = scrape(&c).await;
    assert_eq!(
        sim.task_id_lookups.load(Ordering::Relaxed),
        9,
        "one TaskId call per submission"
    );
    assert_truth(&m, &sim);
    let failed: f64 = TYPES
        .iter()
        .filter_map(|t| {
            TC.series(
                &m,
                "cdn_tasks",
                &[("task_type", t.as_str()), ("status", "failed")],
            )
        })
        .sum();
    assert_eq!(failed, 3.0, "a failing submission fails on one URL");
    let success: f64 = TYPES
        .iter()
        .filter_map(|t| {
            TC.series(
                &m,
                "cdn_tasks",
                &[("task_type", t.as_str()), ("status", "success")],
            )
        })
        .sum();
    assert_eq!(success, 9_024.0);
    // Finished now: never asked about again.
    tokio::time::advance(Duration::from_secs(120)).await;
    scrape(&c).await;
    tokio::time::advance(Duration::from_secs(120)).await;
    scrape(&c).await;
    assert_eq!(sim.task_id_lookups.load(Ordering::Relaxed), 9);
    let by_id: Vec<_> = sim
        .control
        .received()
        .into_iter()
        .filter(|r| r.answer != "ok")
        .collect();
    assert!(by_id.is_empty(), "{by_id:?}");
}

/// Regression (tencent_blackbox raced on it): a refresh at second `t`
/// lists `[t - lookback, t)`, EndTime `t - 1` inclusive, so a record
/// created during second `t` is not in it; the next refresh's head (from
/// the previous `now` minus the overlap) lists it. Nothing is lost: the
/// black-box truth must be taken for the window the exporter listed.
#[tokio::test(start_paused = true)]
async fn a_record_created_in_the_refresh_second_is_listed_by_the_next_refresh() {
    let t0 = 1_700_000_000;
    let clock: SharedClock = Arc::new(TokioClock::starting_at(t0));
    let w = World::new(clock.clone());
    for (i, created_at) in [t0 - 1, t0].into_iter().enumerate() {
        w.add(SimTask {
            id: format!("17000000009999{i:04}"),
            task_type: TaskType::RefreshDir,
            created_at,
            domain: "www.example.com".into(),
            urls: vec![format!("https://www.example.com/dir{i}/")],
            queued_for: 0,
            runs_for: None,
            fails: false,
        });
    }
    let sim = TencentSim::new(w.clone(), ID, KEY).with_clock(clock.clone());
    let c = collector(
        &account_yaml("https://cdn.test", ID, KEY, ""),
        Arc::new(RouterTransport::new(sim.clone().router())),
        clock.clone(),
    );
    let running = |m: &HashMap<String, f64>| {
        TC.series(
            m,
            "cdn_tasks",
            &[("task_type", "refresh_dir"), ("status", "running")],
        )
    };
    let (_, m) = scrape(&c).await;
    assert_eq!(clock.unix(), t0, "the first refresh ran in second t0");
    assert_eq!(
        running(&m),
        Some(1.0),
        "EndTime t0 - 1 is inclusive: the record of t0 - 1 is listed, the one of t0 not yet"
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    let (_, m) = scrape(&c).await;
    assert_eq!(running(&m), Some(2.0), "the next refresh lists second t0");
    assert_truth(&m, &sim);
}
