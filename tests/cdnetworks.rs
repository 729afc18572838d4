//! CDNetworks over HTTP against the simulated API: the 1-call-per-5-minutes
//! fetch budget over two simulated hours (paused tokio time, RouterTransport),
//! the documented `Code: 0` errors and malformed bodies over loopback, AK/SK,
//! and the real binary against the simulator's ground truth.

mod common;

use cdn_task_exporter::api::Rate;
use cdn_task_exporter::app;
use cdn_task_exporter::clock::{SharedClock, SystemClock, TokioClock};
use cdn_task_exporter::collector::Collector;
use cdn_task_exporter::config;
use cdn_task_exporter::http::{ReqwestTransport, Transport};
use cdn_task_exporter::metrics;
use cdn_task_exporter::sim::cdnetworks::{truth, CdnetworksSim};
use cdn_task_exporter::sim::{max_in_window, serve, Fault, RouterTransport, Traffic, World};
use cdn_task_exporter::task::{TaskStatus, TaskType};
use cdn_task_exporter::vendors::cdnetworks::api::{format_time, ZONE_OFFSET_SECONDS};
use cdn_task_exporter::vendors::{self, Outcome, Query, Stream, VendorKind, Window};
use common::{parse_metrics, value, Exporter};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const USER: &str = "tenant_01";
const KEY: &str = "s3cr3t/+==";
/// 2024-12-31 15:00:00 UTC = 23:00 in UTC+8: the run crosses midnight there.
const T0: i64 = 1_735_657_200;
const DAY: i64 = 86_400;

fn collector(yaml: &str, transport: Arc<dyn Transport>, clock: SharedClock) -> Collector {
    let cfg = config::parse(
        yaml,
        "test.yml",
        &|k| (k == "CDN_KEY").then(|| KEY.to_owned()),
        &|_| Err("no files".into()),
    )
    .unwrap_or_else(|e| panic!("config: {e:?}"));
    app::collector(&cfg, transport, clock)
}

fn account_labels() -> [(&'static str, &'static str); 2] {
    [("vendor", "cdnetworks"), ("account", "cn")]
}

fn tasks_by_label(m: &HashMap<String, f64>) -> HashMap<(TaskType, TaskStatus), u64> {
    let mut out = HashMap::new();
    for t in TaskType::ALL {
        for s in TaskStatus::ALL {
            let v = value(
                m,
                "cdn_tasks",
                &[
                    ("vendor", "cdnetworks"),
                    ("account", "cn"),
                    ("task_type", t.as_str()),
                    ("status", s.as_str()),
                ],
            )
            .unwrap_or(0.0);
            if v > 0.0 {
                out.insert((t, s), v as u64);
            }
        }
    }
    out
}

fn nonzero(m: HashMap<(TaskType, TaskStatus), u64>) -> HashMap<(TaskType, TaskStatus), u64> {
    m.into_iter().filter(|(_, v)| *v > 0).collect()
}

#[tokio::test(start_paused = true)]
async fn two_simulated_hours_keep_the_fetch_budget_and_the_data_fresh() {
    let clock: SharedClock = Arc::new(TokioClock::starting_at(T0));
    let world = World::new(clock.clone());
    world.with_traffic(
        Traffic {
            seed: 3,
            tasks_per_hour: 15.0,
            max_urls: 3,
            ..Traffic::default()
        },
        Duration::from_secs(2 * DAY as u64),
    );
    let sim = CdnetworksSim::new(world.clone(), clock.clone(), USER, KEY);
    let transport = Arc::new(RouterTransport::new(sim.clone().router()));
    let c = collector(
        &format!(
            r#"
accounts:
  - name: cn
    vendor: cdnetworks
    credentials: {{ id: {USER}, secret: "${{CDN_KEY}}" }}
    lookback: 3d
    safety_fraction: 1.0
    min_refresh_interval: 15s
"#
        ),
        transport,
        clock.clone(),
    );
    let start = Instant::now();
    let scrape = |n: u32| start + Duration::from_secs(15) * n;
    let mut ages = Vec::new();
    let mut n = 0;
    // Two hours of scrapes every 15 s.
    while n <= 2 * 3600 / 15 {
        tokio::time::sleep_until(scrape(n)).await;
        c.collect(Instant::now() + Duration::from_secs(10)).await;
        let m = parse_metrics(&metrics::render(&c, clock.unix()));
        let age = value(&m, "cdn_vendor_data_age_seconds", &account_labels()).expect("age");
        ages.push(age);
        n += 1;
    }
    let received = sim.control.received();
    let fetches = received
        .iter()
        .filter(|r| r.api == "FetchItemIdQuery")
        .count();
    assert!(
        (22..=25).contains(&fetches),
        "one fetch call per 5 minutes over 2 h: {fetches}"
    );
    assert_eq!(
        max_in_window(&received, "FetchItemIdQuery", Duration::from_secs(300)),
        1,
        "never two fetch calls within 5 minutes"
    );
    assert!(max_in_window(&received, "PurgeItemIdQuery", Duration::from_secs(300)) <= 10);
    eprintln!(
        "2 h: fetch calls {fetches}, purge calls {}, worst data age {:.0} s, fetch windows {:?}",
        received.len() - fetches,
        ages.iter().skip(1).copied().fold(0.0, f64::max),
        sim.windows()
            .iter()
            .filter(|w| w.api == "FetchItemIdQuery")
            .take(6)
            .map(|w| (w.start - T0, w.end - T0, w.at - T0))
            .collect::<Vec<_>>()
    );
    let bad: Vec<_> = received.iter().filter(|r| r.answer != "ok").collect();
    assert!(bad.is_empty(), "rejected or throttled: {bad:?}");
    // While the 3-day history warms up, every other fetch call goes to
    // backfill, so prefetch data is up to two budget windows old; once the
    // last backfill call (the 4th, at ~945 s) is followed by a head (~1260 s),
    // one window. The account's age is the worst
    // stream's, so it says so.
    let worst = ages.iter().skip(1).copied().fold(0.0, f64::max);
    assert!(
        worst <= 2.0 * 300.0 + 15.0 + 15.0,
        "warm-up data age bound 2 × 5 min + a scrape interval, worst {worst}"
    );
    let warm = ages.iter().skip(1300 / 15).copied().fold(0.0, f64::max);
    assert!(
        warm <= 300.0 + 15.0,
        "data age bound 5 min + one scrape interval once warm, worst {warm}"
    );
    assert!(
        worst > 300.0 + 15.0,
        "warm-up shows in the data age: {worst}"
    );
    // Every window the simulator received respects the 1-day span and the
    // 3-day limit; some straddle midnight in UTC+8.
    let windows = sim.windows();
    assert_eq!(windows.len(), received.len());
    for w in &windows {
        assert_eq!(w.answer, "ok", "{w:?}");
        assert_eq!(w.zone, ZONE_OFFSET_SECONDS, "{w:?}");
        assert!(w.end - w.start < DAY, "span over a day: {w:?}");
        assert!(w.start >= w.at - 3 * DAY, "older than 3 days: {w:?}");
        assert_eq!(w.page_size, 1000);
    }
    let local_day = |t: i64| format_time(t, ZONE_OFFSET_SECONDS).unwrap()[..10].to_owned();
    let midnight = T0 + 3600; // 2025-01-01 00:00:00 +08:00
    assert!(
        windows.iter().any(|w| w.api == "FetchItemIdQuery"
            && w.start < midnight
            && w.end >= midnight
            && w.at > midnight
            && local_day(w.start) != local_day(w.end)),
        "a head window straddled midnight in UTC+8"
    );
    // Warm-up: the 3-day lookback was listed by calls 1 (newest day), 2
    // (day 2) and 4 (day 3), heads in between.
    let fetch_windows: Vec<_> = windows
        .iter()
        .filter(|w| w.api == "FetchItemIdQuery")
        .collect();
    assert_eq!(fetch_windows[0].start, T0 - DAY);
    assert_eq!(fetch_windows[1].end, T0 - DAY - 1);
    assert!(fetch_windows[3].end < T0 - 2 * DAY && fetch_windows[3].start > T0 - 3 * DAY);
    assert!(fetch_windows[4..].iter().all(|w| w.end > w.at - 30));

    // Counts equal the ground truth (records, midnight-straddling ones
    // included) once the world holds still for two fetch calls.
    world.freeze();
    for _ in 0..(11 * 60 / 15) {
        tokio::time::sleep_until(scrape(n)).await;
        c.collect(Instant::now() + Duration::from_secs(10)).await;
        n += 1;
    }
    let m = parse_metrics(&metrics::render(&c, clock.unix()));
    let want = nonzero(truth(&world, 0));
    assert!(want.values().sum::<u64>() > 1000, "a realistic history");
    assert!(want.contains_key(&(TaskType::Prefetch, TaskStatus::Success)));
    assert_eq!(tasks_by_label(&m), want);
    assert_eq!(value(&m, "cdn_vendor_up", &account_labels()), Some(1.0));
}

fn fetch_query(from: i64, to: i64) -> Query {
    Query::List {
        stream: Stream {
            api: vendors::cdnetworks::FETCH,
            task_type: None,
        },
        window: Window { from, to },
    }
}

async fn live_sim(seed: u64) -> (Arc<World>, CdnetworksSim, String) {
    let world = World::new(Arc::new(SystemClock));
    world.with_traffic(
        Traffic {
            seed,
            tasks_per_hour: 20.0,
            max_urls: 3,
            ..Traffic::default()
        },
        Duration::from_secs(20 * 3600),
    );
    world.freeze();
    let sim = CdnetworksSim::new(world.clone(), Arc::new(SystemClock), USER, KEY);
    let (addr, _) = serve(sim.clone().router()).await.unwrap();
    (world, sim, format!("http://{addr}"))
}

#[tokio::test]
async fn code_zero_answers_and_malformed_bodies_are_classified_over_http() {
    let (_world, sim, endpoint) = live_sim(5).await;
    let transport = ReqwestTransport::new(1 << 20).unwrap();
    let ctx = |id: &str| vendors::VendorContext {
        endpoint: endpoint.clone(),
        credentials: vendors::Credentials {
            id: id.into(),
            secret: cdn_task_exporter::secret::Secret::new(KEY),
            session_token: None,
        },
        domain: None,
        max_response_bytes: 0,
    };
    let vendor = VendorKind::Cdnetworks
        .build(ctx(USER), Default::default())
        .unwrap();
    sim.control
        .limit("FetchItemIdQuery", Rate::new(100, Duration::from_secs(1)));
    let now = chrono::Utc::now();
    let t = now.timestamp();
    let send = |q: Query, body: Option<String>| {
        let vendor = vendor.clone();
        let transport = transport.clone();
        async move {
            let mut req = vendor.build(&q, 1, now).unwrap();
            if let Some(b) = body {
                // The API-key signature covers the Date only, so the body
                // can be replaced without re-signing.
                req.body = b.into_bytes();
            }
            let resp = transport.send(req, Duration::from_secs(5)).await.unwrap();
            vendor.parse(&q, 1, &resp)
        }
    };
    let local = |x: i64| format_time(x, ZONE_OFFSET_SECONDS).unwrap();
    let cases = [
        (
            format!(
                r#"{{"startTime":"{}","endTime":"{}"}}"#,
                local(t - 2 * DAY),
                local(t)
            ),
            "query time error",
        ),
        (
            format!(
                r#"{{"startTime":"{}","endTime":"{}"}}"#,
                local(t - 4 * DAY),
                local(t - 3 * DAY - 60)
            ),
            "query create time should not before 3 days",
        ),
        (
            format!(
                r#"{{"startTime":"{}","endTime":"{}"}}"#,
                local(t),
                local(t - 60)
            ),
            "endTime should not before startTime",
        ),
        (
            format!(
                r#"{{"startTime":"{}","endTime":"{}","pageSize":5000}}"#,
                local(t - 60),
                local(t)
            ),
            "page size error",
        ),
        (
            format!(
                r#"{{"startTime":"{}","endTime":"{}","pageNo":-1}}"#,
                local(t - 60),
                local(t)
            ),
            "page no error",
        ),
        (
            format!(
                r#"{{"startTime":"{}","endTime":"{}","status":"done"}}"#,
                local(t - 60),
                local(t)
            ),
            "task status error,eg: init wait run success failure",
        ),
        (
            r#"{"pageNo":1}"#.to_owned(),
            "startTime or endTime must not be empty",
        ),
        ("{not json".to_owned(), "parse json error"),
    ];
    for (body, msg) in cases {
        let e = send(fetch_query(t - 60, t), Some(body.clone()))
            .await
            .expect_err(&body);
        assert_eq!(e.outcome, Outcome::ClientError, "{body}: {e}");
        assert_eq!(e.message, msg, "{body}");
        assert_eq!(e.code.as_deref(), Some("0"));
        assert!(e
            .request_id
            .as_deref()
            .is_some_and(|r| r.starts_with("sim-")));
    }
    // The exporter's own requests are accepted, including a window
    // straddling midnight in UTC+8 that the sim reads back exactly.
    let midnight = t - t.rem_euclid(DAY) + DAY - 8 * 3600 - DAY; // last 00:00 +08:00
    let midnight = if midnight > t {
        midnight - DAY
    } else {
        midnight
    };
    send(fetch_query(midnight - 1800, midnight + 1800), None)
        .await
        .expect("accepted");
    let w = sim.windows().last().cloned().unwrap();
    assert_eq!(
        (w.start, w.end, w.answer.as_str()),
        (midnight - 1800, midnight + 1799, "ok")
    );
    // Unknown user: HTTP 200, Code 0, "username is invalid" → auth_error.
    let stranger = VendorKind::Cdnetworks
        .build(ctx("nobody"), Default::default())
        .unwrap();
    let req = stranger.build(&fetch_query(t - 60, t), 1, now).unwrap();
    let resp = transport.send(req, Duration::from_secs(5)).await.unwrap();
    assert_eq!(resp.status, 200);
    let e = stranger
        .parse(&fetch_query(t - 60, t), 1, &resp)
        .unwrap_err();
    assert_eq!(
        (e.outcome, e.message.as_str()),
        (Outcome::AuthError, "username is invalid")
    );
    // A stale Date: 401 → auth_error.
    let stale = now - chrono::Duration::seconds(600);
    let req = vendor.build(&fetch_query(t - 60, t), 1, stale).unwrap();
    let resp = transport.send(req, Duration::from_secs(5)).await.unwrap();
    assert_eq!(resp.status, 401);
    assert_eq!(
        vendor
            .parse(&fetch_query(t - 60, t), 1, &resp)
            .unwrap_err()
            .outcome,
        Outcome::AuthError
    );
    // The simulator's fetch limit: a second call within 5 minutes → 429.
    sim.control
        .limit("FetchItemIdQuery", vendors::cdnetworks::APIS[0].limit);
    send(fetch_query(t - 60, t), None)
        .await
        .expect("first call");
    let e = send(fetch_query(t - 60, t), None).await.unwrap_err();
    assert_eq!(e.outcome, Outcome::Throttled, "{e}");
    // Malformed bodies: parse errors, never a panic.
    sim.control
        .limit("FetchItemIdQuery", Rate::new(100, Duration::from_secs(1)));
    for fault in [
        Fault::Garbage,
        Fault::Html,
        Fault::Truncated,
        Fault::Huge(200_000),
    ] {
        sim.control.set_fault(fault.clone());
        let e = send(fetch_query(t - 60, t), None).await.unwrap_err();
        assert_eq!(e.outcome, Outcome::ParseError, "{fault:?}: {e}");
    }
    sim.control.set_fault(Fault::Throttle);
    let e = send(fetch_query(t - 60, t), None).await.unwrap_err();
    assert_eq!(e.outcome, Outcome::Throttled);
}

#[tokio::test]
async fn aksk_account_reads_the_simulator() {
    let (world, sim, endpoint) = live_sim(6).await;
    let c = collector(
        &format!(
            r#"
accounts:
  - name: cn
    vendor: cdnetworks
    endpoint: {endpoint}
    credentials: {{ id: {USER}, secret: "${{CDN_KEY}}" }}
    options: {{ auth: aksk }}
"#
        ),
        Arc::new(ReqwestTransport::new(16 << 20).unwrap()),
        Arc::new(SystemClock),
    );
    c.collect(Instant::now() + Duration::from_secs(10)).await;
    let m = parse_metrics(&metrics::render(&c, chrono::Utc::now().timestamp()));
    assert_eq!(value(&m, "cdn_vendor_up", &account_labels()), Some(1.0));
    assert_eq!(tasks_by_label(&m), nonzero(truth(&world, 0)));
    assert!(sim.control.received().iter().all(|r| r.answer == "ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_reports_the_simulators_ground_truth_and_passes_promtool() {
    let (world, sim, endpoint) = live_sim(7).await;
    // Relaxed for test speed: the binary keeps its own 1-per-5-min budget
    // (one call per API covers this 20-hour history).
    sim.control
        .limit("FetchItemIdQuery", Rate::new(100, Duration::from_secs(1)));
    let config = format!(
        r#"
accounts:
  - name: cn
    vendor: cdnetworks
    endpoint: {endpoint}
    credentials: {{ id: {USER}, secret: "${{CDN_KEY}}" }}
    lookback: 24h
"#
    );
    let exp = tokio::task::spawn_blocking(move || {
        Exporter::start_with_env(&config, &["--log.level", "debug"], &[("CDN_KEY", KEY)])
    })
    .await
    .unwrap();
    let text = tokio::task::block_in_place(|| {
        exp.scrape_until_synced(&account_labels(), Duration::from_secs(20))
    });
    let m = parse_metrics(&text);
    let want = nonzero(truth(&world, world.now() - DAY + 300));
    assert!(want.values().sum::<u64>() > 300, "a realistic history");
    assert_eq!(tasks_by_label(&m), want);
    assert_eq!(value(&m, "cdn_vendor_up", &account_labels()), Some(1.0));
    tokio::task::block_in_place(|| common::promtool_check_metrics(&text));
    let logs = exp.logs();
    let (status, page) =
        tokio::task::block_in_place(|| common::http_get(&exp.addr, "/", &[])).unwrap();
    assert_eq!(status, 200);
    for haystack in [&logs, &text, &page] {
        assert!(!haystack.contains(KEY), "secret leaked");
    }
    assert!(sim.control.received().iter().all(|r| r.answer == "ok"));
}

/// More than 1000 records a day: the first day-long window takes several
/// pages, one per 5 minutes; paging resumes where it stopped (the head
/// would otherwise restart at page 1 forever) and the counts converge.
#[tokio::test(start_paused = true)]
async fn busy_account_pages_through_its_first_day_one_call_at_a_time() {
    let clock: SharedClock = Arc::new(TokioClock::starting_at(T0));
    let world = World::new(clock.clone());
    world.with_traffic(
        Traffic {
            seed: 9,
            tasks_per_hour: 150.0,
            max_urls: 3,
            task_types: vec![TaskType::Prefetch],
            ..Traffic::default()
        },
        Duration::from_secs(DAY as u64),
    );
    let sim = CdnetworksSim::new(world.clone(), clock.clone(), USER, KEY);
    let c = collector(
        &format!(
            r#"
accounts:
  - name: cn
    vendor: cdnetworks
    credentials: {{ id: {USER}, secret: "${{CDN_KEY}}" }}
    task_types: [prefetch]
    safety_fraction: 1.0
    min_refresh_interval: 15s
"#
        ),
        Arc::new(RouterTransport::new(sim.clone().router())),
        clock.clone(),
    );
    let start = Instant::now();
    let hours = 2;
    for n in 0..=(hours * 3600 / 15) {
        tokio::time::sleep_until(start + Duration::from_secs(15) * n).await;
        if n == (hours * 3600 / 15) - 11 * 4 {
            world.freeze();
        }
        c.collect(Instant::now() + Duration::from_secs(10)).await;
    }
    let windows = sim.windows();
    eprintln!(
        "busy: {} fetch calls, pages {:?}",
        windows.len(),
        windows.iter().map(|w| w.page_no).collect::<Vec<_>>()
    );
    let pages: Vec<i64> = windows.iter().map(|w| w.page_no).collect();
    assert!(
        pages.iter().any(|&p| p >= 5),
        "the first window took several pages: {pages:?}"
    );
    assert_eq!(
        max_in_window(
            &sim.control.received(),
            "FetchItemIdQuery",
            Duration::from_secs(300)
        ),
        1
    );
    assert!(sim.control.received().iter().all(|r| r.answer == "ok"));
    let m = parse_metrics(&metrics::render(&c, clock.unix()));
    let want = nonzero(truth(&world, clock.unix() - DAY));
    assert!(want.values().sum::<u64>() > 5000, "{want:?}");
    assert_eq!(tasks_by_label(&m), want);
}

/// Regression (issue 11): with every answer a 5xx, the failed fetch's retry
/// found the one permit per 5 minutes spent, the failure was dropped as
/// "deferred", and the account read up with fresh data through the outage.
#[tokio::test(start_paused = true)]
async fn outage_of_every_answer_reads_down_with_growing_data_age() {
    for fault in [Fault::ServerError, Fault::Html, Fault::Truncated] {
        let clock: SharedClock = Arc::new(TokioClock::starting_at(T0));
        let world = World::new(clock.clone());
        world.with_traffic(Traffic::default(), Duration::from_secs(DAY as u64));
        let sim = CdnetworksSim::new(world.clone(), clock.clone(), USER, KEY);
        sim.control.set_fault(fault.clone());
        let transport = Arc::new(RouterTransport::new(sim.clone().router()));
        let c = collector(
            &format!(
                r#"
accounts:
  - name: cn
    vendor: cdnetworks
    credentials: {{ id: {USER}, secret: "${{CDN_KEY}}" }}
    min_refresh_interval: 15s
"#
            ),
            transport,
            clock.clone(),
        );
        let mut last_age = -1.0;
        // 15 minutes of scrapes every 15 s, the vendor down throughout.
        for n in 0..60 {
            c.collect(Instant::now() + Duration::from_secs(10)).await;
            let m = parse_metrics(&metrics::render(&c, clock.unix()));
            let up = value(&m, "cdn_vendor_up", &account_labels()).expect("up");
            let age = value(&m, "cdn_vendor_data_age_seconds", &account_labels()).expect("age");
            let last = value(
                &m,
                "cdn_vendor_last_success_timestamp_seconds",
                &account_labels(),
            )
            .unwrap();
            assert_eq!(up, 0.0, "{fault:?}: up during the outage at scrape {n}");
            assert_eq!(last, 0.0, "{fault:?}: no success");
            assert!(
                age > last_age,
                "{fault:?}: data age grows ({age} after {last_age})"
            );
            last_age = age;
            tokio::time::sleep(Duration::from_secs(15)).await;
        }
        let received = sim.control.received();
        assert!(received.iter().all(|r| r.answer != "ok"), "{fault:?}");
        assert!(max_in_window(&received, "FetchItemIdQuery", Duration::from_secs(300)) <= 1);
        // Recovery: the next refreshes read up again.
        sim.control.set_fault(Fault::None);
        for _ in 0..40 {
            c.collect(Instant::now() + Duration::from_secs(10)).await;
            tokio::time::sleep(Duration::from_secs(15)).await;
        }
        let m = parse_metrics(&metrics::render(&c, clock.unix()));
        assert_eq!(
            value(&m, "cdn_vendor_up", &account_labels()),
            Some(1.0),
            "{fault:?}"
        );
    }
}
