//! CloudFront over the simulated API (`sim::cloudfront`): paging with
//! markers across distributions, one GetInvalidation per new invalidation,
//! re-checks until Completed then never again, in-progress quotas,
//! throttling with backoff and the budget held, auth failures that leak
//! nothing, unparseable bodies, and the simulator's own vendor behaviour.
//! Timing-sensitive tests run in paused time through the router transport.

mod common;

use cdn_task_exporter::api::Rate;
use cdn_task_exporter::clock::{Clock, SharedClock, SystemClock, TokioClock};
use cdn_task_exporter::collector::Collector;
use cdn_task_exporter::http::{HttpRequest, Method};
use cdn_task_exporter::sim::cloudfront::{invalidation_id, CloudfrontSim};
use cdn_task_exporter::sim::{max_in_window, Fault, RouterTransport, SimTask, Traffic, World};
use cdn_task_exporter::task::{TaskStatus, TaskType};
use cdn_task_exporter::vendors::cloudfront::api;
use cdn_task_exporter::vendors::cloudfront::sign;
use common::{
    assert_bad_bodies_are_parse_errors, assert_throttling_handled, collector, frozen_world,
    reqwest, scrape, sim_endpoint, traffic, Account,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

const CF: Account = Account {
    vendor: "cloudfront",
    name: "cf",
};
const AK: &str = "AKIASIMULATEDEXAMPLE";
const SK: &str = "sim/cloudfront+secret-access-key-value";
const DISTS: [&str; 2] = ["EDFDVBD6EXAMPLE", "E2QWRUHEXAMPLE"];
const TYPES: [TaskType; 2] = [TaskType::RefreshFile, TaskType::RefreshDir];
const T0: i64 = 1_700_000_000;

/// A world with `hours` of file and directory refreshes, frozen.
fn world(clock: SharedClock, seed: u64, per_hour: f64, hours: u64) -> Arc<World> {
    let traffic = Traffic {
        failure_rate: 0.1,
        ..traffic(seed, per_hour, &TYPES)
    };
    frozen_world(clock, traffic, hours)
}

fn account_yaml(endpoint: &str, secret: &str, extra: &str) -> String {
    let settings =
        format!("    lookback: 6h\n    min_refresh_interval: 1s\n    retries: 0\n{extra}");
    format!(
        "max_response_bytes: 1048576\n{}",
        CF.yaml(endpoint, AK, secret, &settings)
    )
}

fn options(max_items: u32) -> String {
    format!(
        "    options: {{ distribution_ids: [{}], max_items: {max_items} }}",
        DISTS.join(", ")
    )
}

async fn start(sim: &CloudfrontSim) -> String {
    sim_endpoint(sim.clone().router()).await
}

fn last_error(c: &Collector) -> String {
    c.accounts()[0]
        .snapshot()
        .last_error
        .clone()
        .unwrap_or_default()
}

/// cdn_tasks and cdn_task_urls equal the simulator's truth; failed stays 0.
fn assert_truth(m: &HashMap<String, f64>, sim: &CloudfrontSim, from: i64) {
    let truth = sim.truth(from);
    let urls = sim.url_truth(from);
    for t in TYPES {
        for s in TaskStatus::ALL {
            let l = [("task_type", t.as_str()), ("status", s.as_str())];
            let want = truth.get(&(t, s)).copied().unwrap_or(0) as f64;
            assert_eq!(
                CF.series(m, "cdn_tasks", &l),
                Some(want),
                "cdn_tasks {t}/{s}"
            );
            let want = urls.get(&(t, s)).copied().unwrap_or(0) as f64;
            assert_eq!(
                CF.series(m, "cdn_task_urls", &l),
                Some(want),
                "cdn_task_urls {t}/{s}"
            );
        }
        let l = [("task_type", t.as_str()), ("status", "failed")];
        assert_eq!(CF.series(m, "cdn_tasks", &l), Some(0.0), "no failed state");
    }
}

/// Cold start over two distributions with 10 invalidations per page:
/// every page followed by its marker, each distribution in turn, one
/// GetInvalidation per invalidation, counts equal to the truth, both
/// budgets held (read from the simulator's log).
#[tokio::test(start_paused = true)]
async fn pages_every_distribution_and_fetches_each_invalidation_once() {
    let clock: SharedClock = Arc::new(TokioClock::starting_at(T0));
    let w = world(clock.clone(), 41, 40.0, 5);
    let sim = CloudfrontSim::new(w.clone(), AK, SK, &DISTS).with_clock(clock.clone());
    let c = collector(
        &account_yaml("http://cloudfront.test", SK, &options(10)),
        Arc::new(RouterTransport::new(sim.clone().router())),
        clock.clone(),
    );
    let (_, m) = scrape(&c).await;
    // 2/s on GetInvalidation: the cold start takes a while; scrape on.
    let mut m = m;
    for _ in 0..20 {
        if CF.series(&m, "cdn_vendor_up", &[]) == Some(1.0)
            && sim.truth(T0 - 6 * 3600).values().sum::<u64>() as f64
                == TYPES
                    .iter()
                    .flat_map(|t| TaskStatus::ALL.iter().map(move |s| (t, s)))
                    .filter_map(|(t, s)| {
                        CF.series(
                            &m,
                            "cdn_tasks",
                            &[("task_type", t.as_str()), ("status", s.as_str())],
                        )
                    })
                    .sum::<f64>()
        {
            break;
        }
        tokio::time::advance(Duration::from_secs(30)).await;
        m = scrape(&c).await.1;
    }
    let from = T0 - 6 * 3600;
    assert_truth(&m, &sim, from);
    let log = sim.control.received();
    let lists: Vec<_> = log
        .iter()
        .filter(|r| r.api == "ListInvalidations")
        .collect();
    for d in DISTS {
        let pages = lists
            .iter()
            .filter(|r| r.detail.contains(&format!("dist={d} ")))
            .count();
        let n = sim
            .invalidations(d)
            .iter()
            .filter(|t| t.created_at >= from)
            .count();
        assert!(n > 40, "{d}: {n} invalidations");
        assert!(
            pages >= n.div_ceil(10),
            "{d}: {pages} pages for {n} invalidations"
        );
    }
    assert!(
        lists.iter().any(|r| !r.detail.contains("marker= ")),
        "markers were followed"
    );
    // Each invalidation's paths were fetched; completed ones exactly once.
    let now = w.now();
    for d in DISTS {
        for t in sim.invalidations(d).iter().filter(|t| t.created_at >= from) {
            let gets = sim.gets_of(&sim.task_id(t));
            if t.status_at(now).is_finished() {
                assert_eq!(gets, 1, "{} fetched {gets} times", sim.task_id(t));
            } else {
                assert!(gets >= 1, "{} never fetched", sim.task_id(t));
            }
        }
    }
    for api in ["ListInvalidations", "GetInvalidation"] {
        let worst = max_in_window(&log, api, Duration::from_secs(1));
        assert!(
            worst <= 2,
            "{api}: {worst} requests in one second, budget 2/s"
        );
        assert_eq!(CF.requests(&m, api, "throttled"), 0.0, "{api}");
    }
    // In-progress quotas: the stalled invalidations hold paths.
    let mut used = HashMap::new();
    for d in DISTS {
        let (mut files, mut wild) = (0u32, 0u32);
        for t in sim
            .invalidations(d)
            .iter()
            .filter(|t| !t.status_at(now).is_finished())
        {
            if t.task_type == TaskType::RefreshDir {
                wild += t.urls.len() as u32;
            } else {
                files += t.urls.len() as u32;
            }
        }
        used.insert(d, (files, wild));
    }
    let files = used.values().map(|u| u.0).max().unwrap_or(0);
    let wild = used.values().map(|u| u.1).max().unwrap_or(0);
    assert!(files + wild > 0, "some invalidations are in progress");
    let q = |n: &str, t: &str| CF.series(&m, n, &[("task_type", t)]);
    assert_eq!(q("cdn_quota_limit", "refresh_file"), Some(3000.0));
    assert_eq!(
        q("cdn_quota_remaining", "refresh_file"),
        Some(f64::from(3000u32.saturating_sub(files)))
    );
    assert_eq!(q("cdn_quota_limit", "refresh_dir"), Some(15.0));
    assert_eq!(
        q("cdn_quota_remaining", "refresh_dir"),
        Some(f64::from(15u32.saturating_sub(wild)))
    );
    eprintln!(
        "cloudfront cold start: {} list pages, {} GetInvalidation, in-progress paths {files} files / {wild} wildcard",
        lists.len(),
        log.iter().filter(|r| r.api == "GetInvalidation").count()
    );
}

/// Invalidations in progress at the first sync complete later: those the
/// head page shows are updated by the list for free, the others by one
/// GetInvalidation each (five finished invalidations after each of them
/// make stretching the head listing back over them dearer); once
/// Completed, nothing asks about them again.
#[tokio::test(start_paused = true)]
async fn in_progress_invalidations_are_rechecked_until_completed_then_never_again() {
    let clock: SharedClock = Arc::new(TokioClock::starting_at(T0));
    let w = World::new(clock.clone());
    let mut tasks = Vec::new();
    for i in 0..6 {
        let created_at = T0 - 3600 + 100 * i as i64;
        if i < 4 {
            common::add_finished_tasks(&w, TYPES[0], created_at + 1, 5, &format!("fin{i}-"));
        }
        let t = SimTask {
            id: format!("sim{i:04}"),
            task_type: TYPES[i % 2],
            created_at,
            domain: "www.example.com".into(),
            urls: (0..=i)
                .map(|j| format!("https://www.example.com/{i}/{j}.js"))
                .collect(),
            queued_for: 0,
            runs_for: Some(3600 + 600),
            fails: i == 0,
        };
        w.add(t.clone());
        tasks.push(t);
    }
    let sim = CloudfrontSim::new(w.clone(), AK, SK, &DISTS[..1]).with_clock(clock.clone());
    let c = collector(
        &account_yaml(
            "http://cloudfront.test",
            SK,
            &format!(
                "    options: {{ distribution_ids: [{}], max_items: 2 }}",
                DISTS[0]
            ),
        ),
        Arc::new(RouterTransport::new(sim.clone().router())),
        clock.clone(),
    );
    let (_, m) = scrape(&c).await;
    let running = |m: &HashMap<String, f64>| -> f64 {
        TYPES
            .iter()
            .filter_map(|t| {
                CF.series(
                    m,
                    "cdn_tasks",
                    &[("task_type", t.as_str()), ("status", "running")],
                )
            })
            .sum()
    };
    assert_eq!(running(&m), 6.0);
    let gets = |sim: &CloudfrontSim| -> Vec<u64> {
        tasks.iter().map(|t| sim.gets_of(&sim.task_id(t))).collect()
    };
    assert_eq!(gets(&sim), vec![1; 6], "paths fetched once each");
    // Six file + wildcard paths in progress: 1+3+5 dir, 2+4+6 file? (even
    // i are files: 1, 3, 5 paths; odd i are dirs: 2, 4, 6 paths).
    assert_eq!(
        CF.series(&m, "cdn_quota_remaining", &[("task_type", "refresh_file")]),
        Some(3000.0 - 9.0)
    );
    assert_eq!(
        CF.series(&m, "cdn_quota_remaining", &[("task_type", "refresh_dir")]),
        Some(15.0 - 12.0)
    );
    tokio::time::advance(Duration::from_secs(1200)).await;
    let (_, m) = scrape(&c).await;
    assert_eq!(running(&m), 0.0);
    // The two newest are on the head page; the four older were re-checked.
    assert_eq!(gets(&sim), vec![2, 2, 2, 2, 1, 1]);
    assert_truth(&m, &sim, T0 - 6 * 3600);
    let done: f64 = TYPES
        .iter()
        .filter_map(|t| {
            CF.series(
                &m,
                "cdn_tasks_finished_total",
                &[("task_type", t.as_str()), ("status", "success")],
            )
        })
        .sum();
    assert_eq!(
        done, 6.0,
        "every completion counted once, the failing world task as success"
    );
    assert_eq!(
        CF.series(&m, "cdn_quota_remaining", &[("task_type", "refresh_file")]),
        Some(3000.0)
    );
    assert_eq!(
        CF.series(&m, "cdn_quota_remaining", &[("task_type", "refresh_dir")]),
        Some(15.0)
    );
    for _ in 0..3 {
        tokio::time::advance(Duration::from_secs(120)).await;
        scrape(&c).await;
    }
    assert_eq!(
        gets(&sim),
        vec![2, 2, 2, 2, 1, 1],
        "completed: never asked again"
    );
}

/// After a clean cold start, the simulator tightens GetInvalidation to 1/s
/// against our 2/s budget while in-progress invalidations beyond the head
/// page are re-checked: the Throttling answers are counted, each is followed
/// by a pause, the account stays up, and our budget holds in every
/// one-second window of the simulator's log.
#[tokio::test(start_paused = true)]
async fn throttling_backs_off_is_counted_and_the_budget_holds() {
    let clock: SharedClock = Arc::new(TokioClock::starting_at(T0));
    let w = world(clock.clone(), 42, 30.0, 3);
    let sim = CloudfrontSim::new(w.clone(), AK, SK, &DISTS).with_clock(clock.clone());
    let c = collector(
        &account_yaml(
            "http://cloudfront.test",
            SK,
            &format!("{}\n    max_permit_wait: 10s", options(3)),
        ),
        Arc::new(RouterTransport::new(sim.clone().router())),
        clock.clone(),
    );
    let mut m = scrape(&c).await.1;
    for _ in 0..10 {
        if CF.series(&m, "cdn_vendor_up", &[]) == Some(1.0) {
            break;
        }
        tokio::time::advance(Duration::from_secs(20)).await;
        m = scrape(&c).await.1;
    }
    assert_eq!(
        CF.series(&m, "cdn_vendor_up", &[]),
        Some(1.0),
        "{}",
        last_error(&c)
    );
    assert_eq!(CF.requests(&m, "GetInvalidation", "throttled"), 0.0);
    sim.control
        .limit("GetInvalidation", Rate::new(1, Duration::from_secs(1)));
    for _ in 0..8 {
        tokio::time::advance(Duration::from_secs(20)).await;
        m = scrape(&c).await.1;
    }
    let log = sim.control.received();
    let (_, throttled, _) =
        assert_throttling_handled(&log, &m, CF, "GetInvalidation", Duration::from_secs(1), 2);
    let worst = max_in_window(&log, "ListInvalidations", Duration::from_secs(1));
    assert!(
        worst <= 2,
        "ListInvalidations: {worst} in one second, budget 2/s"
    );
    assert_eq!(
        CF.series(&m, "cdn_vendor_up", &[]),
        Some(1.0),
        "throttling is not an outage"
    );
    eprintln!(
        "cloudfront throttling: {} requests, {} throttled (budget 2/s, simulator 1/s)",
        log.len(),
        throttled
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_keys_denied_distributions_and_unknown_ones_never_leak() {
    let w = world(Arc::new(SystemClock), 43, 30.0, 2);
    let sim = CloudfrontSim::new(w.clone(), AK, SK, &DISTS);
    let endpoint = start(&sim).await;
    let check = |c: &Collector, text: &str, secret: &str| {
        assert!(!text.contains(secret), "secret in metrics");
        assert!(!last_error(c).contains(secret), "secret in error");
        assert!(
            !format!("{:?}", c.accounts()[0]).contains(secret),
            "secret in Debug"
        );
    };
    // Wrong secret: SignatureDoesNotMatch, an auth error, down.
    let c = collector(
        &account_yaml(&endpoint, "not-the-secret-xyz", &options(100)),
        reqwest(),
        Arc::new(SystemClock),
    );
    let (text, m) = scrape(&c).await;
    assert_eq!(CF.series(&m, "cdn_vendor_up", &[]), Some(0.0));
    assert_eq!(CF.requests(&m, "ListInvalidations", "auth_error"), 1.0);
    let err = last_error(&c);
    assert!(
        err.contains("SignatureDoesNotMatch") && err.contains("auth_error"),
        "{err}"
    );
    assert!(!err.contains("String-to-Sign"), "echo cut: {err}");
    check(&c, &text, "not-the-secret-xyz");
    // Unknown key: InvalidClientTokenId.
    let yaml = account_yaml(&endpoint, SK, &options(100)).replace(AK, "AKIASOMEBODYELSE");
    let c = collector(&yaml, reqwest(), Arc::new(SystemClock));
    let (text, m) = scrape(&c).await;
    assert_eq!(CF.series(&m, "cdn_vendor_up", &[]), Some(0.0));
    assert!(
        last_error(&c).contains("InvalidClientTokenId"),
        "{}",
        last_error(&c)
    );
    check(&c, &text, SK);
    // An IAM policy that leaves out the second distribution: AccessDenied.
    sim.deny(DISTS[1]);
    let c = collector(
        &account_yaml(&endpoint, SK, &options(100)),
        reqwest(),
        Arc::new(SystemClock),
    );
    let (_, m) = scrape(&c).await;
    assert_eq!(CF.series(&m, "cdn_vendor_up", &[]), Some(0.0));
    assert_eq!(CF.requests(&m, "ListInvalidations", "auth_error"), 1.0);
    assert!(
        last_error(&c).contains("AccessDenied"),
        "{}",
        last_error(&c)
    );
    // A distribution that does not exist: a client error, down.
    let yaml = account_yaml(
        &endpoint,
        SK,
        "    options: { distribution_ids: [ENOSUCHDIST] }",
    );
    let c = collector(&yaml, reqwest(), Arc::new(SystemClock));
    let (_, m) = scrape(&c).await;
    assert_eq!(CF.series(&m, "cdn_vendor_up", &[]), Some(0.0));
    assert_eq!(CF.requests(&m, "ListInvalidations", "client_error"), 1.0);
    assert!(
        last_error(&c).contains("NoSuchDistribution"),
        "{}",
        last_error(&c)
    );
    // A clock 20 minutes off: the signature has expired.
    let skewed = CloudfrontSim::new(w.clone(), AK, SK, &DISTS)
        .with_clock(Arc::new(TokioClock::starting_at(SystemClock.unix() + 1200)));
    let endpoint = start(&skewed).await;
    let c = collector(
        &account_yaml(&endpoint, SK, &options(100)),
        reqwest(),
        Arc::new(SystemClock),
    );
    let (_, m) = scrape(&c).await;
    assert_eq!(CF.requests(&m, "ListInvalidations", "auth_error"), 1.0);
    assert!(
        last_error(&c).contains("Signature expired"),
        "{}",
        last_error(&c)
    );
    // Temporary credentials: without the token, refused; with it, up.
    let small = world(Arc::new(SystemClock), 46, 4.0, 2);
    let sts = CloudfrontSim::new(small, AK, SK, &DISTS).with_session_token("sts-token-abc");
    let endpoint = start(&sts).await;
    let c = collector(
        &account_yaml(&endpoint, SK, &options(100)),
        reqwest(),
        Arc::new(SystemClock),
    );
    let (_, m) = scrape(&c).await;
    assert_eq!(CF.series(&m, "cdn_vendor_up", &[]), Some(0.0));
    let yaml = account_yaml(&endpoint, SK, &options(100)).replace(
        &format!("secret: \"{SK}\""),
        &format!("secret: \"{SK}\", session_token: sts-token-abc"),
    );
    let c = collector(&yaml, reqwest(), Arc::new(SystemClock));
    let (text, m) = scrape(&c).await;
    assert_eq!(
        CF.series(&m, "cdn_vendor_up", &[]),
        Some(1.0),
        "{}",
        last_error(&c)
    );
    check(&c, &text, "sts-token-abc");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_oversized_and_html_bodies_are_parse_errors() {
    let w = world(Arc::new(SystemClock), 44, 30.0, 2);
    let sim = CloudfrontSim::new(w.clone(), AK, SK, &DISTS);
    let endpoint = start(&sim).await;
    assert_bad_bodies_are_parse_errors(&sim.control, CF, "ListInvalidations", 2 << 20, || {
        collector(
            &account_yaml(&endpoint, SK, &options(100)),
            reqwest(),
            Arc::new(SystemClock),
        )
    })
    .await;
    sim.control.set_fault(Fault::ServerError);
    let c = collector(
        &account_yaml(&endpoint, SK, &options(100)),
        reqwest(),
        Arc::new(SystemClock),
    );
    let (_, m) = scrape(&c).await;
    assert_eq!(CF.requests(&m, "ListInvalidations", "server_error"), 1.0);
    assert_eq!(CF.series(&m, "cdn_vendor_up", &[]), Some(0.0));
    sim.control.set_fault(Fault::None);
}

/// A signed GET straight to the simulator.
async fn raw(endpoint: &str, path: &str, query: &[(&str, &str)], secret: &str) -> (u16, String) {
    let q: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let host = endpoint.trim_start_matches("http://");
    let signed = sign::sign(&sign::SignInput {
        method: "GET",
        host,
        path,
        query: &q,
        headers: &[],
        body: b"",
        access_key_id: AK,
        secret_access_key: secret,
        session_token: None,
        region: sign::REGION,
        service: sign::SERVICE,
        time: SystemClock.now(),
    });
    let qs: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let url = if qs.is_empty() {
        format!("{endpoint}{path}")
    } else {
        format!("{endpoint}{path}?{}", qs.join("&"))
    };
    let resp = reqwest()
        .send(
            HttpRequest {
                method: Method::Get,
                url,
                headers: signed.add_headers,
                body: Vec::new(),
            },
            Duration::from_secs(10),
        )
        .await
        .expect("answer");
    (
        resp.status,
        String::from_utf8_lossy(&resp.body).into_owned(),
    )
}

/// The simulator over HTTP: newest first, Marker/NextMarker/IsTruncated
/// paging that ends, AWS error shapes, unsigned requests refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_behaves_like_the_vendor() {
    let w = world(Arc::new(SystemClock), 45, 60.0, 3);
    let sim = CloudfrontSim::new(w.clone(), AK, SK, &DISTS);
    // Raw requests here are not budgeted: lift the simulator's limit.
    sim.control
        .limit("ListInvalidations", Rate::new(1000, Duration::from_secs(1)));
    sim.control
        .limit("GetInvalidation", Rate::new(1000, Duration::from_secs(1)));
    let endpoint = start(&sim).await;
    let path = format!("/2020-05-31/distribution/{}/invalidation", DISTS[0]);
    let mut marker = String::new();
    let mut seen: Vec<(i64, String)> = Vec::new();
    for round in 0..100 {
        let mut q = vec![("MaxItems", "7")];
        if !marker.is_empty() {
            q.push(("Marker", marker.as_str()));
        }
        let (status, body) = raw(&endpoint, &path, &q, SK).await;
        assert_eq!(status, 200, "{body}");
        let l: api::InvalidationList = quick_xml::de::from_str(&body).expect("xml");
        assert_eq!(l.marker.as_deref().unwrap_or(""), marker);
        let items = l.items.map(|i| i.summaries).unwrap_or_default();
        assert!(items.len() <= 7);
        for s in &items {
            seen.push((
                api::parse_time(s.create_time.as_deref().expect("time")).expect("iso"),
                s.id.clone().expect("id"),
            ));
        }
        if l.is_truncated != Some(true) {
            assert!(l.next_marker.is_none());
            break;
        }
        marker = l.next_marker.expect("NextMarker when truncated");
        assert_eq!(
            Some(&marker),
            items.last().and_then(|s| s.id.as_ref()),
            "NextMarker is the last id"
        );
        assert!(round < 99, "paging never ended");
    }
    let all = sim.invalidations(DISTS[0]);
    assert_eq!(seen.len(), all.len(), "every invalidation once");
    assert!(seen.windows(2).all(|p| p[0].0 >= p[1].0), "newest first");
    assert_eq!(seen[0].1, invalidation_id(&all[0]));
    // One invalidation: its paths.
    let t = &all[all.len() / 2];
    let (status, body) = raw(
        &endpoint,
        &format!("{path}/{}", invalidation_id(t)),
        &[],
        SK,
    )
    .await;
    assert_eq!(status, 200);
    let inv: api::Invalidation = quick_xml::de::from_str(&body).expect("xml");
    assert_eq!(api::detail(&inv).paths as usize, t.urls.len());
    assert_eq!(api::detail(&inv).task_type, t.task_type);
    // Errors in AWS's shape.
    for (p, q, secret, code, want) in [
        (
            format!("{path}/INOSUCH"),
            vec![],
            SK,
            "NoSuchInvalidation",
            404,
        ),
        (
            "/2020-05-31/distribution/ENOPE/invalidation".to_owned(),
            vec![],
            SK,
            "NoSuchDistribution",
            404,
        ),
        (
            path.clone(),
            vec![("Marker", "INOTANID")],
            SK,
            "InvalidArgument",
            400,
        ),
        (
            path.clone(),
            vec![("MaxItems", "zero")],
            SK,
            "InvalidArgument",
            400,
        ),
        (path.clone(), vec![], "wrong", "SignatureDoesNotMatch", 403),
    ] {
        let (status, body) = raw(&endpoint, &p, &q, secret).await;
        assert_eq!(status, want, "{code}: {body}");
        let e: api::ErrorResponse = quick_xml::de::from_str(&body).expect("error xml");
        assert_eq!(e.error.and_then(|e| e.code).as_deref(), Some(code));
        assert!(e.request_id.is_some());
    }
    let resp = reqwest()
        .send(
            HttpRequest {
                method: Method::Get,
                url: format!("{endpoint}{path}"),
                headers: vec![],
                body: Vec::new(),
            },
            Duration::from_secs(10),
        )
        .await
        .expect("answer");
    assert_eq!(resp.status, 403);
    assert!(String::from_utf8_lossy(&resp.body).contains("MissingAuthenticationToken"));
    assert!(resp.header("x-amz-request-id").is_some());
}
