//! Volcengine MCDN over real HTTP on loopback against the simulated API
//! (`sim::volcengine`): both list actions, paging, failed sub-tasks,
//! throttling and backoff, auth failures, unparseable bodies, re-checks by
//! TaskId; and the real binary against the simulator's ground truth.

mod common;

use cdn_task_exporter::api::Rate;
use cdn_task_exporter::clock::{Clock, SharedClock, SystemClock, TokioClock};
use cdn_task_exporter::sim::volcengine::VolcengineSim;
use cdn_task_exporter::sim::{max_in_window, RouterTransport, SimTask, Traffic, World};
use cdn_task_exporter::task::{TaskStatus, TaskType};
use common::{
    assert_bad_bodies_are_parse_errors, assert_throttling_handled, collector, frozen_world,
    parse_metrics, reqwest, scrape, sim_endpoint, traffic, Account, Exporter,
};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

const MC: Account = Account {
    vendor: "volcengine",
    name: "mc",
};
const AK: &str = "AKLTsimulatedAccessKeyId";
const SK: &str = "sim-volc-secret-key-value==";
const TOKEN: &str = "STS-sim-session-token-value";
const TYPES: [TaskType; 3] = [
    TaskType::RefreshFile,
    TaskType::RefreshDir,
    TaskType::Prefetch,
];

/// A frozen world holding `hours` of MCDN traffic (some tasks failed,
/// some stalled).
fn world(seed: u64, per_hour: f64, hours: u64) -> Arc<World> {
    frozen_world(
        Arc::new(SystemClock),
        traffic(seed, per_hour, &TYPES),
        hours,
    )
}

async fn start(sim: &VolcengineSim) -> String {
    sim_endpoint(sim.clone().router()).await
}

fn account_yaml(endpoint: &str, secret: &str, extra: &str) -> String {
    let settings =
        format!("    lookback: 6h\n    min_refresh_interval: 1s\n    retries: 0\n{extra}");
    format!(
        "max_response_bytes: 1048576\n{}",
        MC.yaml(endpoint, AK, secret, &settings)
    )
}

/// Asserts cdn_tasks and cdn_task_urls equal the world's ground truth.
fn assert_truth(m: &HashMap<String, f64>, world: &World) {
    let now = world.now();
    let truth = world.truth(now - 6 * 3600);
    let mut urls: HashMap<(TaskType, TaskStatus), usize> = HashMap::new();
    for t in world.list(now - 6 * 3600, now + 1, None, None) {
        *urls.entry((t.task_type, t.status_at(now))).or_default() += t.urls.len();
    }
    for t in TYPES {
        for s in TaskStatus::ALL {
            let l = [("task_type", t.as_str()), ("status", s.as_str())];
            let want = truth.get(&(t, s)).copied().unwrap_or(0) as f64;
            assert_eq!(
                MC.series(m, "cdn_tasks", &l),
                Some(want),
                "cdn_tasks {t}/{s}"
            );
            // A pending task is not yet submitted to any vendor: it has no
            // SubTasks, so no URLs to count.
            let want = match s {
                TaskStatus::Pending => 0.0,
                _ => urls.get(&(t, s)).copied().unwrap_or(0) as f64,
            };
            assert_eq!(
                MC.series(m, "cdn_task_urls", &l),
                Some(want),
                "cdn_task_urls {t}/{s}"
            );
        }
    }
}

/// Both actions: paging (≥3 pages per type), failed sub-tasks counted as
/// failed, counts equal to the ground truth, the budget held.
async fn lists_everything_with(action: &str, other: &str) {
    let w = world(21, 400.0, 5);
    let sim = VolcengineSim::new(w.clone(), AK, SK);
    let endpoint = start(&sim).await;
    let c = collector(
        &account_yaml(
            &endpoint,
            SK,
            &format!("    options: {{ action: {action} }}"),
        ),
        reqwest(),
        Arc::new(SystemClock),
    );
    let (_, m) = scrape(&c).await;
    assert_eq!(
        MC.series(&m, "cdn_vendor_up", &[]),
        Some(1.0),
        "{:?}",
        c.accounts()[0].snapshot().last_error
    );
    let truth = w.truth(w.now() - 6 * 3600);
    for t in TYPES {
        let n: u64 = TaskStatus::ALL
            .iter()
            .map(|s| truth.get(&(t, *s)).copied().unwrap_or(0))
            .sum();
        assert!(n > 200, "{t}: {n} tasks must take at least 3 pages of 100");
    }
    let failed: u64 = TYPES
        .iter()
        .map(|t| truth.get(&(*t, TaskStatus::Failed)).copied().unwrap_or(0))
        .sum();
    assert!(failed > 10, "the world holds failed tasks ({failed})");
    assert_truth(&m, &w);
    // Three streams of at least three pages each, all on the chosen action,
    // more than one second of budget: the budget spreads them.
    let sent = sim.control.count(action);
    assert!(sent > 15, "{sent} requests");
    assert_eq!(MC.requests(&m, action, "ok"), sent as f64);
    assert_eq!(sim.control.count(other), 0);
    let log = sim.control.received();
    assert!(
        log.iter().all(|r| r.answer == "ok"),
        "every request verified and answered"
    );
    // Over real sockets arrival jitter blurs our exact 15/s spacing (see
    // `budget_holds_exactly_in_paused_time` for the exact check); the
    // vendor's 30/s must hold with room to spare.
    let worst = max_in_window(&log, action, Duration::from_secs(1));
    eprintln!("{action}: {sent} requests, worst 1 s window {worst} (budget 15/s, vendor 30/s)");
    assert!(worst <= 30);
}

/// Our budget (30/s × 0.5) holds exactly, measured on the simulator's log
/// in paused time, where no network jitter blurs the instants.
#[tokio::test(start_paused = true)]
async fn budget_holds_exactly_in_paused_time() {
    let clock: SharedClock = Arc::new(TokioClock::starting_at(1_700_000_000));
    let w = World::new(clock.clone());
    w.with_traffic(
        Traffic {
            seed: 28,
            tasks_per_hour: 1200.0,
            task_types: TYPES.to_vec(),
            ..Traffic::default()
        },
        Duration::from_secs(5 * 3600),
    );
    w.freeze();
    let sim = VolcengineSim::new(w.clone(), AK, SK).with_clock(clock.clone());
    let c = collector(
        &account_yaml("http://open.volcengineapi.test", SK, ""),
        Arc::new(RouterTransport::new(sim.clone().router())),
        clock,
    );
    let (_, m) = scrape(&c).await;
    assert_eq!(MC.series(&m, "cdn_vendor_up", &[]), Some(1.0));
    assert_truth(&m, &w);
    let log = sim.control.received();
    let worst = max_in_window(&log, "ListContentTasks", Duration::from_secs(1));
    eprintln!(
        "paused: {} requests, worst 1 s window {worst} (budget 15/s)",
        log.len()
    );
    assert!(log.len() > 45, "several seconds' worth of pages");
    assert_eq!(worst, 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_content_tasks_pages_and_counts_failed_subtasks() {
    lists_everything_with("ListContentTasks", "ListContentTask").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deprecated_list_content_task_pages_and_counts_failed_subtasks() {
    lists_everything_with("ListContentTask", "ListContentTasks").await;
}

/// The simulator admits 5 requests/s while our budget allows 10/s: the
/// vendor throttles, every 429 is counted, the API backs off at least a
/// second, and our own budget is never exceeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_backs_off_is_counted_and_the_budget_holds() {
    let w = world(22, 400.0, 5);
    let sim = VolcengineSim::new(w.clone(), AK, SK);
    sim.control
        .limit("ListContentTasks", Rate::new(5, Duration::from_secs(1)));
    let endpoint = start(&sim).await;
    // One request in flight at a time, so every request after a 429 in
    // the log was sent after the exporter read it (pages in flight
    // together meet a throttling at once: `pages_throttled_together_
    // pause_the_api_once` in src/collector/sync.rs).
    let yaml = account_yaml(
        &endpoint,
        SK,
        "    rate_budget: { ListContentTasks: 10/1s }\n    max_permit_wait: 10s",
    );
    let c = collector(
        &format!("max_in_flight_per_endpoint: 1\n{yaml}"),
        reqwest(),
        Arc::new(SystemClock),
    );
    let mut m = HashMap::new();
    for _ in 0..3 {
        m = scrape(&c).await.1;
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    // Backoff: after each 429, the next request comes at least ~1 s later.
    let (calls, throttled, worst) = assert_throttling_handled(
        &sim.control.received(),
        &m,
        MC,
        "ListContentTasks",
        Duration::from_millis(950),
        10,
    );
    eprintln!(
        "throttling: {calls} requests, {throttled} throttled, worst 1 s window {worst} (budget 10/s, vendor 5/s)"
    );
    // Throttling says nothing about health: no failure turned the account down.
    assert_eq!(
        MC.requests(&m, "ListContentTasks", "auth_error")
            + MC.requests(&m, "ListContentTasks", "parse_error"),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_keys_are_auth_errors_and_never_leak() {
    let w = world(23, 30.0, 2);
    let sim = VolcengineSim::new(w.clone(), AK, SK);
    let endpoint = start(&sim).await;
    // Wrong secret: SignatureDoesNotMatch.
    let c = collector(
        &account_yaml(&endpoint, "not-the-secret-xyz", ""),
        reqwest(),
        Arc::new(SystemClock),
    );
    let (text, m) = scrape(&c).await;
    assert_eq!(MC.series(&m, "cdn_vendor_up", &[]), Some(0.0));
    assert_eq!(MC.requests(&m, "ListContentTasks", "auth_error"), 1.0);
    let err = c.accounts()[0]
        .snapshot()
        .last_error
        .clone()
        .unwrap_or_default();
    assert!(
        err.contains("SignatureDoesNotMatch") && err.contains("auth_error"),
        "{err}"
    );
    assert!(!err.contains("not-the-secret-xyz") && !text.contains("not-the-secret-xyz"));
    assert!(!format!("{:?}", c.accounts()[0]).contains("not-the-secret-xyz"));
    // Unknown access key: InvalidAccessKey.
    let yaml = account_yaml(&endpoint, SK, "").replace(AK, "AKLTsomebodyElse");
    let c = collector(&yaml, reqwest(), Arc::new(SystemClock));
    let (_, m) = scrape(&c).await;
    assert_eq!(MC.series(&m, "cdn_vendor_up", &[]), Some(0.0));
    let err = c.accounts()[0]
        .snapshot()
        .last_error
        .clone()
        .unwrap_or_default();
    assert!(err.contains("InvalidAccessKey"), "{err}");
    // A clock 20 minutes off: InvalidTimestamp, also an auth error.
    let skewed = VolcengineSim::new(w.clone(), AK, SK)
        .with_clock(Arc::new(TokioClock::starting_at(SystemClock.unix() + 1200)));
    let endpoint = start(&skewed).await;
    let c = collector(
        &account_yaml(&endpoint, SK, ""),
        reqwest(),
        Arc::new(SystemClock),
    );
    let (_, m) = scrape(&c).await;
    assert_eq!(MC.requests(&m, "ListContentTasks", "auth_error"), 1.0);
    let err = c.accounts()[0]
        .snapshot()
        .last_error
        .clone()
        .unwrap_or_default();
    assert!(err.contains("InvalidTimestamp"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_oversized_and_html_bodies_are_parse_errors() {
    let w = world(24, 30.0, 2);
    let sim = VolcengineSim::new(w.clone(), AK, SK);
    let endpoint = start(&sim).await;
    assert_bad_bodies_are_parse_errors(&sim.control, MC, "ListContentTasks", 2 << 20, || {
        collector(
            &account_yaml(&endpoint, SK, ""),
            reqwest(),
            Arc::new(SystemClock),
        )
    })
    .await;
}

/// Tasks running at the first sync finish later; the exporter learns it
/// from one TaskId request each, not by re-listing their window: they lie
/// 20 minutes apart with 250 finished tasks after each, so any listing
/// that reaches back over one of them costs at least as many pages.
#[tokio::test(start_paused = true)]
async fn unfinished_tasks_are_rechecked_by_task_id() {
    let t0 = 1_700_000_000;
    let clock: SharedClock = Arc::new(TokioClock::starting_at(t0));
    let w = World::new(clock.clone());
    for (i, ty) in TYPES.iter().cycle().take(9).enumerate() {
        let created_at = t0 - 4 * 3600 + 1200 * i as i64;
        w.add(SimTask {
            id: format!("65d2c9b64fb1452d12d4{i:04x}"),
            task_type: *ty,
            created_at,
            domain: "www.example.com".into(),
            urls: vec![format!("https://www.example.com/{i}.js")],
            queued_for: 0,
            runs_for: Some(t0 - created_at + 600),
            fails: i % 3 == 0,
        });
        common::add_finished_tasks(
            &w,
            *ty,
            created_at + 1,
            250,
            &format!("75d2c9b64fb1452d12d{i:01x}"),
        );
    }
    let sim = VolcengineSim::new(w.clone(), AK, SK).with_clock(clock.clone());
    let transport = Arc::new(RouterTransport::new(sim.clone().router()));
    let c = collector(
        &account_yaml("http://mcdn.test", SK, "    domain: www.example.com"),
        transport,
        clock.clone(),
    );
    let (_, m) = scrape(&c).await;
    let total_running: f64 = TYPES
        .iter()
        .filter_map(|t| {
            MC.series(
                &m,
                "cdn_tasks",
                &[("task_type", t.as_str()), ("status", "running")],
            )
        })
        .sum();
    assert_eq!(total_running, 9.0);
    assert_eq!(sim.task_id_lookups.load(Ordering::Relaxed), 0);
    tokio::time::advance(Duration::from_secs(1200)).await;
    let (_, m) = scrape(&c).await;
    assert_eq!(
        sim.task_id_lookups.load(Ordering::Relaxed),
        9,
        "one TaskId call per unfinished task"
    );
    assert_truth(&m, &w);
    let failed: f64 = TYPES
        .iter()
        .filter_map(|t| {
            MC.series(
                &m,
                "cdn_tasks",
                &[("task_type", t.as_str()), ("status", "failed")],
            )
        })
        .sum();
    assert_eq!(failed, 3.0);
    // Finished now: never asked about again.
    tokio::time::advance(Duration::from_secs(120)).await;
    scrape(&c).await;
    assert_eq!(sim.task_id_lookups.load(Ordering::Relaxed), 9);
}

/// Black box: the real binary, STS credentials and quotas, against the
/// simulator's ground truth; promtool-clean; no secret anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_reports_the_simulators_ground_truth() {
    let w = world(25, 200.0, 5);
    let sim = VolcengineSim::new(w.clone(), AK, SK).with_session_token(TOKEN);
    let endpoint = start(&sim).await;
    let config = format!(
        r#"
accounts:
  - name: mc
    vendor: volcengine
    endpoint: {endpoint}
    credentials: {{ id: {AK}, secret: "${{VOLC_SK}}", session_token: "${{VOLC_TOKEN}}" }}
    lookback: 6h
    options: {{ cloud_account_ids: [654a58632d2d5c7b10dc2b05, 654a58632d2d5c7b10dc2b06] }}
"#
    );
    let exp = tokio::task::spawn_blocking(move || {
        Exporter::start_with_env(
            &config,
            &["--log.level", "debug"],
            &[("VOLC_SK", SK), ("VOLC_TOKEN", TOKEN)],
        )
    })
    .await
    .expect("start");
    let mut text = String::new();
    let synced = tokio::task::block_in_place(|| {
        common::eventually(Duration::from_secs(30), || {
            text = exp.scrape(Some("10"));
            MC.series(
                &parse_metrics(&text),
                "cdn_vendor_last_success_timestamp_seconds",
                &[],
            )
            .is_some_and(|v| v > 0.0)
        })
    });
    assert!(synced, "first sync never completed: {}", exp.logs());
    let m = parse_metrics(&text);
    assert_truth(&m, &w);
    assert_eq!(MC.series(&m, "cdn_vendor_up", &[]), Some(1.0));
    assert_eq!(
        MC.series(&m, "cdn_quota_remaining", &[("task_type", "prefetch")]),
        Some(500.0)
    );
    assert_eq!(
        MC.series(&m, "cdn_quota_limit", &[("task_type", "refresh_file")]),
        Some(20_000.0)
    );
    assert_eq!(MC.requests(&m, "DescribeContentQuota", "ok"), 1.0);
    tokio::task::block_in_place(|| common::promtool_check_metrics(&text));
    let (status, page) =
        tokio::task::block_in_place(|| common::http_get(&exp.addr, "/", &[])).expect("landing");
    assert_eq!(status, 200);
    let logs = exp.logs();
    for secret in [SK, TOKEN] {
        assert!(!logs.contains(secret), "secret in logs");
        assert!(!text.contains(secret), "secret in metrics");
        assert!(!page.contains(secret), "secret on the landing page");
    }
    assert!(sim.control.received().iter().all(|r| r.answer == "ok"));
}

/// Black box: a wrong secret with the real binary is `up 0`, one clear log
/// line naming the vendor's code, and no secret anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_with_a_wrong_secret_is_down_with_a_clear_log() {
    let w = world(26, 30.0, 2);
    let sim = VolcengineSim::new(w.clone(), AK, SK);
    let endpoint = start(&sim).await;
    let config = account_yaml(&endpoint, "wrong-secret-value-123", "");
    let exp =
        tokio::task::spawn_blocking(move || Exporter::start(&config, &["--log.level", "debug"]))
            .await
            .expect("start");
    let text = tokio::task::block_in_place(|| exp.scrape(Some("5")));
    let m = parse_metrics(&text);
    assert_eq!(MC.series(&m, "cdn_vendor_up", &[]), Some(0.0));
    assert_eq!(MC.requests(&m, "ListContentTasks", "auth_error"), 1.0);
    let logs = exp.logs();
    assert!(
        logs.contains("SignatureDoesNotMatch")
            && logs.contains("auth_error")
            && logs.contains("volcengine"),
        "a clear log line: {logs}"
    );
    let (_, page) =
        tokio::task::block_in_place(|| common::http_get(&exp.addr, "/", &[])).expect("landing");
    for place in [&logs, &text, &page] {
        assert!(!place.contains("wrong-secret-value-123") && !place.contains(SK));
    }
}

/// Sends one hand-signed MCDN request to the simulator.
async fn raw(endpoint: &str, action: &str, body: &str) -> (u16, serde_json::Value) {
    use cdn_task_exporter::http::{HttpRequest, Method};
    use cdn_task_exporter::vendors::volcengine::sign;
    let host = endpoint.trim_start_matches("http://");
    let query = vec![
        ("Action".to_owned(), action.to_owned()),
        ("Version".to_owned(), "2022-03-01".to_owned()),
    ];
    let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    let signed = sign::sign(&sign::SignInput {
        method: "POST",
        host,
        path: "/",
        query: &query,
        headers: &headers,
        body: body.as_bytes(),
        access_key_id: AK,
        secret_access_key: SK,
        session_token: None,
        region: sign::REGION,
        service: sign::SERVICE,
        time: SystemClock.now(),
    });
    headers.extend(signed.add_headers);
    let resp = reqwest()
        .send(
            HttpRequest {
                method: Method::Post,
                url: format!("{endpoint}/?{}", sign::canonical_query(&query)),
                headers,
                body: body.as_bytes().to_vec(),
            },
            Duration::from_secs(10),
        )
        .await
        .expect("answer");
    let json = serde_json::from_slice(&resp.body).expect("the simulator answers JSON");
    (resp.status, json)
}

/// The simulator's vendor quirks, seen over HTTP: an invalid or missing
/// window silently means the last 24 h; PageSize above 100 is rejected;
/// unknown actions are 404; successes spell RequestID, errors RequestId.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_behaves_like_the_vendor() {
    let w = world(27, 60.0, 48);
    let sim = VolcengineSim::new(w.clone(), AK, SK);
    let endpoint = start(&sim).await;
    let now = w.now();
    let last_day = w.list(now - 86_400, now + 1, None, None).len();
    assert!(last_day > 100 && w.list(0, now + 1, None, None).len() > last_day + 100);
    let count =
        |v: &serde_json::Value| v["Result"]["Pagination"]["Total"].as_u64().unwrap_or(0) as usize;
    for body in [
        "{}".to_owned(),
        format!(
            r#"{{"StartTime": {}, "EndTime": {}}}"#,
            (now - 7200) * 1000,
            now * 1000
        ),
        format!(r#"{{"StartTime": {}, "EndTime": {}}}"#, now, now - 7200),
        format!(r#"{{"StartTime": {}}}"#, now - 40 * 3600),
    ] {
        let (status, v) = raw(&endpoint, "ListContentTasks", &body).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(count(&v), last_day, "{body}: silently the last 24 h");
        assert!(v["ResponseMetadata"]["RequestID"].is_string());
    }
    let body = format!(
        r#"{{"StartTime": {}, "EndTime": {}}}"#,
        now - 40 * 3600,
        now + 1
    );
    let (_, v) = raw(&endpoint, "ListContentTask", &body).await;
    assert!(count(&v) > last_day + 100, "a valid window is honoured");
    let (status, v) = raw(
        &endpoint,
        "ListContentTasks",
        r#"{"Pagination": {"PageNum": 1, "PageSize": 101}}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(v["ResponseMetadata"]["Error"]["Code"], "InvalidParameter");
    assert!(v["ResponseMetadata"]["RequestId"].is_string());
    let (status, v) = raw(&endpoint, "ListTasks", "{}").await;
    assert_eq!(status, 404);
    assert_eq!(
        v["ResponseMetadata"]["Error"]["Code"],
        "InvalidActionOrVersion"
    );
    let (status, v) = raw(&endpoint, "DescribeContentQuota", "{}").await;
    assert_eq!(status, 400);
    assert_eq!(v["ResponseMetadata"]["Error"]["Code"], "MissingParameter");
}
