//! Aliyun over real HTTP on loopback: the in-process collector (config →
//! `app::collector` → `ReqwestTransport`) against the simulated Aliyun CDN
//! API (`sim::aliyun`), which verifies every signature.

mod common;

use cdn_task_exporter::clock::SystemClock;
use cdn_task_exporter::collector::Collector;
use cdn_task_exporter::http::{HttpRequest, Method, ReqwestTransport, Transport};
use cdn_task_exporter::secret::Secret;
use cdn_task_exporter::sim::aliyun::{wire_id, AliyunSim};
use cdn_task_exporter::sim::{max_in_window, Fault, SimTask, World};
use cdn_task_exporter::task::{TaskStatus, TaskType};
use cdn_task_exporter::vendors::aliyun::{api, sign, TASK_TYPES};
use cdn_task_exporter::{app, config};
use common::{assert_bad_bodies_are_parse_errors, scrape, sim_endpoint, value, Account};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

const AK: &str = "LTAI5tSimAccessKeyId";
const SECRET: &str = "sim-secret-7f3a9c";
const SHOP: Account = Account {
    vendor: "aliyun",
    name: "shop",
};

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A task with a fixed life; `seq` makes the (hex) id.
fn task(seq: u64, t: TaskType, age: i64, runs_for: Option<i64>, fails: bool) -> SimTask {
    SimTask {
        id: format!("{:016x}", 0x0100_0000_0000 + seq),
        task_type: t,
        created_at: now() - age,
        domain: format!("www{}.example.com", seq % 3 + 1),
        urls: vec![format!("https://www{}.example.com/s/{seq}.js", seq % 3 + 1)],
        queued_for: 0,
        runs_for,
        fails,
    }
}

async fn start(world: Arc<World>) -> (AliyunSim, String) {
    let sim = AliyunSim::new(world, AK, SECRET);
    let endpoint = sim_endpoint(sim.clone().router()).await;
    (sim, endpoint)
}

fn collector(yaml: &str) -> Collector {
    let cfg = config::parse(yaml, "aliyun-test.yml", &|_| None, &|_| {
        Err("no files here".into())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let transport = Arc::new(ReqwestTransport::new(cfg.max_response_bytes).unwrap());
    app::collector(&cfg, transport, Arc::new(SystemClock))
}

fn account(endpoint: &str, extra: &str) -> String {
    SHOP.yaml(
        endpoint,
        AK,
        SECRET,
        &format!("    min_refresh_interval: 1s\n    overlap: 1s\n{extra}"),
    )
}

fn tasks(m: &HashMap<String, f64>, t: TaskType, s: TaskStatus) -> f64 {
    SHOP.tasks(m, t, s).unwrap_or(0.0)
}

fn assert_matches_truth(sim: &AliyunSim, m: &HashMap<String, f64>, from: i64) {
    let truth = sim.truth(from);
    for t in TASK_TYPES {
        for s in TaskStatus::ALL {
            let want = truth.get(&(*t, s)).copied().unwrap_or(0) as f64;
            assert_eq!(tasks(m, *t, s), want, "{t}/{s}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_every_object_type_within_three_days_and_the_budget() {
    let world = World::new(Arc::new(SystemClock));
    let mut seq = 0;
    let mut add = |t, n: u64| {
        for i in 0..n {
            seq += 1;
            // Spread over 2 h; a few stall (running), some fail.
            let runs = (i % 17 != 0).then_some(60);
            world.add(task(seq, t, 60 + (i as i64 * 37) % 7200, runs, i % 7 == 0));
        }
    };
    add(TaskType::RefreshFile, 250);
    add(TaskType::RefreshDir, 30);
    add(TaskType::RefreshRegex, 12);
    add(TaskType::Prefetch, 45);
    let (sim, endpoint) = start(world.clone()).await;
    // A 7-day lookback is clamped to Aliyun's 3 days by config, and the
    // builder keeps StartTime inside them.
    let c = collector(&account(&endpoint, "    lookback: 7d\n"));
    let (text, m) = scrape(&c).await;
    assert_eq!(SHOP.up(&m), Some(1.0), "{text}");
    assert_matches_truth(&sim, &m, now() - 3 * 86_400);
    assert!(tasks(&m, TaskType::RefreshFile, TaskStatus::Failed) > 0.0);
    assert!(tasks(&m, TaskType::Prefetch, TaskStatus::Running) > 0.0);

    let got = sim.requests();
    assert!(got.iter().all(|r| r.answer == "ok"), "{got:?}");
    let lists: Vec<_> = got
        .iter()
        .filter(|r| r.api == "DescribeRefreshTasks")
        .collect();
    let file_pages: Vec<_> = lists
        .iter()
        .filter(|r| r.param("ObjectType") == Some("file"))
        .map(|r| r.param("PageNumber").unwrap_or("?"))
        .collect();
    // The first sync lists its newest `overlap` apart (page 1, empty here),
    // then the rest: 250 file tasks, 100 a page.
    assert_eq!(
        file_pages,
        ["1", "1", "2", "3"],
        "250 file tasks, 100 a page"
    );
    for ot in ["file", "directory", "regex", "preload"] {
        assert!(
            lists.iter().any(|r| r.param("ObjectType") == Some(ot)),
            "{ot} never listed"
        );
    }
    let earliest = now() - 3 * 86_400;
    for r in &lists {
        assert_eq!(r.param("PageSize"), Some("100"));
        assert_eq!(r.param("Format"), Some("JSON"));
        let start = api::parse_time(r.param("StartTime").unwrap()).unwrap();
        let end = api::parse_time(r.param("EndTime").unwrap()).unwrap();
        assert!(start >= earliest, "StartTime {start} older than 3 days");
        assert!(end > start);
    }
    // Quota read, strings parsed.
    let quota = sim.quota();
    assert_eq!(
        value(
            &m,
            "cdn_quota_remaining",
            &[
                ("vendor", "aliyun"),
                ("account", "shop"),
                ("task_type", "refresh_file")
            ]
        ),
        quota.url_remain
    );
    // Budget held: default safety fraction 0.5 of 5/s.
    let log = sim.control.received();
    let worst = max_in_window(&log, "DescribeRefreshTasks", Duration::from_secs(1));
    assert!(worst <= 2, "{worst} list requests in one second");
    assert_eq!(
        SHOP.requests(&m, "DescribeRefreshTasks", "ok"),
        lists.len() as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_tasks_are_rechecked_until_they_finish() {
    let world = World::new(Arc::new(SystemClock));
    // Running now, done in 5 s; and one that stalls forever. Behind 250
    // newer finished tasks, so stretching the head listing back over them
    // costs three pages and a window of their own one, where one
    // DescribeRefreshTaskById carries both ids.
    let done_soon = task(1, TaskType::RefreshFile, 400, Some(405), false);
    let stalled = task(2, TaskType::Prefetch, 410, None, false);
    let finished = task(3, TaskType::RefreshDir, 420, Some(5), false);
    for t in [&done_soon, &stalled, &finished] {
        world.add(t.clone());
    }
    for i in 0..250 {
        world.add(task(
            100 + i,
            TaskType::RefreshFile,
            100 + i as i64,
            Some(5),
            false,
        ));
    }
    let (sim, endpoint) = start(world.clone()).await;
    let c = collector(&account(&endpoint, "    lookback: 1h\n"));
    let (_, m) = scrape(&c).await;
    assert_eq!(tasks(&m, TaskType::RefreshFile, TaskStatus::Running), 1.0);
    assert_eq!(tasks(&m, TaskType::RefreshDir, TaskStatus::Success), 1.0);

    tokio::time::sleep(Duration::from_secs(6)).await;
    let (_, m) = scrape(&c).await;
    assert_eq!(tasks(&m, TaskType::RefreshFile, TaskStatus::Running), 0.0);
    assert_eq!(tasks(&m, TaskType::RefreshFile, TaskStatus::Success), 251.0);
    assert_eq!(
        value(
            &m,
            "cdn_tasks_finished_total",
            &[
                ("vendor", "aliyun"),
                ("account", "shop"),
                ("task_type", "refresh_file"),
                ("status", "success")
            ]
        ),
        Some(1.0)
    );
    let by_id = |rs: &[cdn_task_exporter::sim::aliyun::SimRequest]| -> Vec<String> {
        rs.iter()
            .filter(|r| r.api == "DescribeRefreshTaskById")
            .map(|r| r.param("TaskId").unwrap_or("").to_owned())
            .collect()
    };
    let after_two = sim.requests();
    let ids = by_id(&after_two);
    assert!(
        ids.iter().any(|i| i == &wire_id(&done_soon.id)),
        "the finishing task was re-checked by id: {ids:?}"
    );
    assert!(!ids.iter().any(|i| i.contains(&wire_id(&finished.id))));

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, m) = scrape(&c).await;
    assert_eq!(SHOP.up(&m), Some(1.0));
    let later = sim.requests();
    let third = by_id(&later[after_two.len()..]);
    // The stalled task rides in whichever is cheaper this refresh: its id,
    // or a listing reaching back to it (the head now costs no extra page).
    let relisted = later[after_two.len()..].iter().any(|r| {
        r.api == "DescribeRefreshTasks"
            && r.param("StartTime")
                .and_then(cdn_task_exporter::vendors::aliyun::api::parse_time)
                .is_some_and(|from| from <= stalled.created_at)
    });
    assert!(
        relisted || third.iter().any(|i| i == &wire_id(&stalled.id)),
        "still-running tasks keep being re-checked: {third:?} {:?}",
        &later[after_two.len()..]
    );
    assert!(
        !third.iter().any(|i| i.contains(&wire_id(&done_soon.id))),
        "a finished task is never re-requested: {third:?}"
    );
    assert!(SHOP.requests(&m, "DescribeRefreshTaskById", "ok") >= 1.0);
    assert!(later.iter().all(|r| r.answer == "ok"), "{later:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_backs_off_counts_and_holds_the_budget() {
    const LIST: &str = "DescribeRefreshTasks";
    let world = World::new(Arc::new(SystemClock));
    for i in 0..700 {
        world.add(task(
            i,
            TaskType::RefreshFile,
            100 + i as i64,
            Some(10),
            false,
        ));
    }
    let (sim, endpoint) = start(world.clone()).await;
    let c = collector(&account(
        &endpoint,
        "    lookback: 1h\n    task_types: [refresh_file]\n",
    ));
    // Another client of the same account has just used this second's
    // allowance: 429 TooManyRequests.
    for _ in 0..5 {
        assert!(sim.control.admit(LIST));
    }
    let (_, m) = scrape(&c).await;
    assert_eq!(SHOP.requests(&m, LIST, "throttled"), 1.0);
    assert_eq!(sim.requests()[0].answer, "TooManyRequests");
    // Then the gateway's flow control (400 Throttling.User) for a while.
    sim.control.set_fault(Fault::Throttle);
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        scrape(&c).await;
    }
    sim.control.set_fault(Fault::None);
    let mut m = HashMap::new();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        m = scrape(&c).await.1;
        if tasks(&m, TaskType::RefreshFile, TaskStatus::Success) == 700.0 {
            break;
        }
    }
    assert_eq!(
        tasks(&m, TaskType::RefreshFile, TaskStatus::Success),
        700.0,
        "the listing completes once throttling stops"
    );
    assert_eq!(SHOP.up(&m), Some(1.0));
    let log = sim.control.received();
    let lists: Vec<_> = log.iter().filter(|r| r.api == LIST).collect();
    let throttled: Vec<_> = lists.iter().filter(|r| r.answer == "throttled").collect();
    assert_eq!(throttled.len(), 3, "{lists:?}");
    assert_eq!(SHOP.requests(&m, LIST, "throttled"), 3.0);
    // Backoff: nothing on that API for 1 s, 2 s, 4 s after each answer.
    for (k, t) in throttled.iter().enumerate() {
        let next = lists
            .iter()
            .map(|r| r.at)
            .filter(|a| *a > t.at)
            .min()
            .unwrap();
        let want = Duration::from_secs(1 << k) - Duration::from_millis(10);
        assert!(
            next - t.at >= want,
            "throttle {k}: retried after {:?}",
            next - t.at
        );
    }
    // Budget held: 0.5 x 5/s, rejected calls included.
    let worst = max_in_window(&log, LIST, Duration::from_secs(1));
    assert!(worst <= 2, "{worst} list requests in one second");
    assert_eq!(
        SHOP.requests(&m, LIST, "ok"),
        8.0,
        "the first sync's newest `overlap`, then 7 pages of 100"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_or_unknown_keys_are_auth_errors_and_never_leak() {
    let world = World::new(Arc::new(SystemClock));
    world.add(task(1, TaskType::RefreshFile, 100, Some(10), false));
    let (sim, endpoint) = start(world).await;
    let wrong = account(&endpoint, "").replace(SECRET, "wrong-secret-value-123");
    let c = collector(&wrong);
    let (text, m) = scrape(&c).await;
    assert_eq!(SHOP.up(&m), Some(0.0));
    assert_eq!(SHOP.requests(&m, "DescribeRefreshTasks", "auth_error"), 1.0);
    assert_eq!(sim.requests()[0].answer, "SignatureDoesNotMatch");
    let snap = c.accounts()[0].snapshot();
    let err = snap.last_error.clone().unwrap_or_default();
    assert!(err.contains("SignatureDoesNotMatch"), "{err}");
    assert!(
        !err.contains("string to sign") && !err.contains(AK),
        "{err}"
    );
    for s in [
        &text,
        &err,
        &format!("{snap:?}"),
        &format!("{:?}", c.accounts()[0]),
    ] {
        assert!(!s.contains("wrong-secret-value-123") && !s.contains(SECRET));
    }

    let unknown = account(&endpoint, "").replace(AK, "LTAI5tNobodyKnowsMe");
    let (_, m) = scrape(&collector(&unknown)).await;
    assert_eq!(SHOP.up(&m), Some(0.0));
    assert_eq!(SHOP.requests(&m, "DescribeRefreshTasks", "auth_error"), 1.0);
    assert!(sim
        .requests()
        .iter()
        .any(|r| r.answer == "InvalidAccessKeyId.NotFound"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_truncated_html_and_oversized_bodies_are_parse_errors() {
    let world = World::new(Arc::new(SystemClock));
    for i in 0..30 {
        world.add(task(
            i,
            TaskType::RefreshFile,
            100 + i as i64,
            Some(10),
            false,
        ));
    }
    let (sim, endpoint) = start(world).await;
    let yaml = format!(
        "max_response_bytes: 4096\n{}",
        account(&endpoint, "    task_types: [refresh_file]\n")
    );
    assert_bad_bodies_are_parse_errors(
        &sim.control,
        SHOP,
        "DescribeRefreshTasks",
        64 << 10,
        || collector(&yaml),
    )
    .await;
    // The four collectors above share the account's 5/s with this one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let c = collector(&account(&endpoint, ""));
    let (_, m) = scrape(&c).await;
    assert_eq!(
        SHOP.up(&m),
        Some(1.0),
        "healthy again once the vendor is: {:?}",
        c.accounts()[0].snapshot().last_error
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acs3_signing_is_accepted_end_to_end() {
    let world = World::new(Arc::new(SystemClock));
    for i in 0..40 {
        let t = TASK_TYPES[i as usize % 4];
        world.add(task(i, t, 100 + i as i64, Some(10), i % 5 == 0));
    }
    let (sim, endpoint) = start(world).await;
    let c = collector(&account(
        &endpoint,
        "    options: { signature: acs3, page_size: 7 }\n",
    ));
    let (_, m) = scrape(&c).await;
    assert_eq!(SHOP.up(&m), Some(1.0));
    assert_matches_truth(&sim, &m, now() - 86_400);
    let got = sim.requests();
    assert!(got.iter().all(|r| r.answer == "ok"), "{got:?}");
    assert!(got.iter().any(|r| r.param("PageNumber") == Some("2")));
}

/// Sends a v1-signed GET built by hand (what a third-party client might do).
async fn send(endpoint: &str, params: &[(&str, &str)], nonce: &str) -> (u16, api::WireError) {
    let ts = api::format_time(now());
    let mut p: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    for (k, v) in [
        ("Version", "2018-05-10"),
        ("Format", "JSON"),
        ("Timestamp", ts.as_str()),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("SignatureNonce", nonce),
        ("AccessKeyId", AK),
    ] {
        p.push((k.into(), v.into()));
    }
    let signed = sign::sign_rpc_v1("GET", &p, &Secret::new(SECRET));
    let t = ReqwestTransport::new(1 << 20).unwrap();
    let r = t
        .send(
            HttpRequest {
                method: Method::Get,
                url: format!("{endpoint}/?{}", signed.signed_url_query),
                headers: vec![],
                body: vec![],
            },
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_rejects_what_aliyun_rejects() {
    let world = World::new(Arc::new(SystemClock));
    let (sim, endpoint) = start(world).await;
    sim.control.limit(
        "DescribeRefreshTasks",
        cdn_task_exporter::api::Rate::new(100, Duration::from_secs(1)),
    );
    let t = |d: i64| api::format_time(now() + d);
    let (old, recent, end) = (t(-3 * 86_400 - 60), t(-3600), t(0));
    let list = "DescribeRefreshTasks";
    type Case<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![
                ("Action", list),
                ("ObjectType", "file"),
                ("StartTime", &old),
                ("EndTime", &end),
            ],
            400,
            "InvalidTime",
        ),
        (
            vec![
                ("Action", list),
                ("ObjectType", "file"),
                ("StartTime", &recent),
            ],
            400,
            "MissingTimeParameter",
        ),
        (
            vec![
                ("Action", list),
                ("ObjectType", "file"),
                ("StartTime", &end),
                ("EndTime", &recent),
            ],
            400,
            "InvalidEndTime.Mismatch",
        ),
        (
            vec![
                ("Action", list),
                ("ObjectType", "file"),
                ("StartTime", "yesterday"),
                ("EndTime", &end),
            ],
            400,
            "InvalidStartTime.Malformed",
        ),
        (
            vec![
                ("Action", list),
                ("ObjectType", "file"),
                ("PageSize", "101"),
            ],
            400,
            "InvalidParameter",
        ),
        (
            vec![("Action", list), ("ObjectType", "file"), ("PageSize", "0")],
            400,
            "InvalidParameter",
        ),
        (
            vec![("Action", list), ("DomainName", "www1.example.com")],
            400,
            "MissingParameter.ObjectType",
        ),
        (
            vec![("Action", list), ("ObjectType", "purge")],
            400,
            "InvalidObjectType.ValueNotSupported",
        ),
        (
            vec![
                ("Action", "DescribeRefreshTaskById"),
                ("TaskId", "1,2,3,4,5,6,7,8,9,10,11"),
            ],
            400,
            "InvalidTaskId",
        ),
        (
            vec![("Action", "DescribeRefreshTaskById"), ("TaskId", "abc")],
            400,
            "InvalidTaskId.Malformed",
        ),
        (
            vec![("Action", "PurgeEverything")],
            404,
            "InvalidAction.NotFound",
        ),
        (
            vec![
                ("Action", list),
                ("ObjectType", "block"),
                ("PageSize", "100"),
            ],
            200,
            "",
        ),
    ];
    for (i, (params, status, code)) in cases.iter().enumerate() {
        let (got_status, body) = send(&endpoint, params, &format!("nonce-{i}")).await;
        assert_eq!(
            (got_status, body.code.as_str()),
            (*status, *code),
            "{params:?}"
        );
    }
    // A replayed nonce.
    let q = [("Action", "DescribeRefreshQuota")];
    assert_eq!(send(&endpoint, &q, "once").await.0, 200);
    let (s, e) = send(&endpoint, &q, "once").await;
    assert_eq!((s, e.code.as_str()), (400, "SignatureNonceUsed"));
    assert_eq!(
        api::outcome_for_code(&e.code, s),
        cdn_task_exporter::vendors::Outcome::ClientError
    );
    // The default Format is XML.
    let ts = api::format_time(now());
    let p: Vec<(String, String)> = [
        ("Action", "DescribeRefreshQuota"),
        ("Version", "2018-05-10"),
        ("Timestamp", ts.as_str()),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("SignatureNonce", "xml-1"),
        ("AccessKeyId", AK),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let signed = sign::sign_rpc_v1("GET", &p, &Secret::new(SECRET));
    let r = ReqwestTransport::new(1 << 20)
        .unwrap()
        .send(
            HttpRequest {
                method: Method::Get,
                url: format!("{endpoint}/?{}", signed.signed_url_query),
                headers: vec![],
                body: vec![],
            },
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let body = String::from_utf8_lossy(&r.body);
    assert!(
        body.starts_with("<?xml") && body.contains("<UrlQuota>"),
        "{body}"
    );
    assert_eq!(sim.control.count("DescribeRefreshTasks"), 9);
}
