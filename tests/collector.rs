//! Core acceptance tests for the collector, against the testing vendor's
//! simulated API: single flight, the budget invariant under randomized load,
//! scrape deadlines, incremental sync, and isolation between accounts.

mod common;

use cdn_task_exporter::app::{self, AppState};
use cdn_task_exporter::clock::{SharedClock, SystemClock, TokioClock};
use cdn_task_exporter::collector::Collector;
use cdn_task_exporter::http::ReqwestTransport;
use cdn_task_exporter::metrics;
use cdn_task_exporter::sim::testing::TestingSim;
use cdn_task_exporter::sim::{
    max_in_window, serve, Fault, Rng, RouterTransport, SimTask, Traffic, World,
};
use cdn_task_exporter::task::{TaskStatus, TaskType};
use common::{collector, parse_metrics, value};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fn account_yaml(name: &str, endpoint: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    vendor: testing\n    endpoint: {endpoint}\n    credentials: {{ id: {name}, secret: tok }}\n{extra}"
    )
}

/// One series of the testing account `account` in a fresh render.
fn series(c: &Collector, account: &str, family: &str, extra: &[(&str, &str)]) -> Option<f64> {
    let mut labels = vec![("vendor", "testing"), ("account", account)];
    labels.extend_from_slice(extra);
    value(
        &parse_metrics(&metrics::render(c, c.clock.unix())),
        family,
        &labels,
    )
}

/// 50 concurrent scrapes over HTTP → exactly one refresh per stale account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_scrapes_share_one_refresh_per_account() {
    let mut sims = Vec::new();
    let mut accounts = String::new();
    for i in 0..3 {
        let world = World::new(Arc::new(SystemClock));
        world.with_traffic(
            Traffic {
                seed: i,
                tasks_per_hour: 40.0,
                ..Traffic::default()
            },
            Duration::from_secs(3600),
        );
        let sim = TestingSim::new(world, "tok");
        let (addr, _) = serve(sim.clone().router()).await.unwrap();
        // One page holds the whole history, so one refresh is one listing.
        accounts.push_str(&account_yaml(
            &format!("acct{i}"),
            &format!("http://{addr}"),
            "    options: { page_size: 100 }
",
        ));
        sims.push(sim);
    }
    let c = Arc::new(collector(
        &format!("accounts:\n{accounts}"),
        Arc::new(ReqwestTransport::new(1 << 20).unwrap()),
        Arc::new(SystemClock),
    ));
    let state = AppState::new(
        c.clone(),
        Duration::from_secs(10),
        Duration::from_millis(500),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(app::run(
        listener,
        app::router(state),
        std::future::pending(),
    ));

    let client = reqwest::Client::new();
    let scrapes: Vec<_> = (0..50)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .get(format!("http://{addr}/metrics"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap()
            })
        })
        .collect();
    for s in scrapes {
        assert!(s
            .await
            .unwrap()
            .contains("cdn_vendor_up{vendor=\"testing\",account=\"acct0\"} 1"));
    }
    for sim in &sims {
        assert_eq!(sim.control.count("ListTasks"), 1, "one listing per account");
        assert_eq!(
            sim.control.count("GetQuota"),
            1,
            "one quota read per account"
        );
    }
    // A scrape right after is served from cache.
    client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    for sim in &sims {
        assert_eq!(sim.control.count("ListTasks"), 1);
    }
    let skipped: f64 = (0..3)
        .map(|i| {
            series(
                &c,
                &format!("acct{i}"),
                "cdn_vendor_refresh_skipped_total",
                &[("reason", "fresh")],
            )
            .unwrap()
        })
        .sum();
    assert!(skipped > 0.0, "later scrapes found the data fresh");
}

/// Randomized: many scrapes at random times and concurrency, heavy paging,
/// injected throttling (with Retry-After), server errors (retried) and
/// garbage. In no window of the budget's length may the vendor see more
/// requests than the budget allows, on any API.
#[tokio::test(start_paused = true)]
async fn budget_holds_under_random_scrapes_paging_throttling_and_retries() {
    for seed in 0..8u64 {
        let clock: SharedClock = Arc::new(TokioClock::starting_at(T0));
        let world = World::new(clock.clone());
        world.with_traffic(
            Traffic {
                seed,
                tasks_per_hour: 300.0,
                stall_rate: 0.2,
                ..Traffic::default()
            },
            Duration::from_secs(2 * 3600),
        );
        let sim = TestingSim::new(world, "tok");
        let transport = Arc::new(RouterTransport::new(sim.clone().router()));
        let yaml = format!(
            "accounts:\n{}",
            account_yaml(
                "a",
                "http://sim",
                "    min_refresh_interval: 1s\n    max_permit_wait: 3s\n    retries: 2\n    quota_interval: 1s\n    options: { page_size: 7 }\n    rate_budget: { ListTasks: 4/1s, GetTasks: 3/2s, GetQuota: 1/1s }\n",
            )
        );
        let c = Arc::new(collector(&yaml, transport, clock.clone()));
        let mut rng = Rng::new(seed);
        for _ in 0..80 {
            sim.control.set_fault(match rng.range(0, 10) {
                0 => Fault::Throttle,
                1 => Fault::ServerError,
                2 => Fault::Garbage,
                _ => Fault::None,
            });
            let n = rng.range(1, 5);
            let mut handles = Vec::new();
            for _ in 0..n {
                let c = c.clone();
                let deadline =
                    Instant::now() + Duration::from_millis(rng.range(100, 10_000) as u64);
                handles.push(tokio::spawn(async move { c.collect(deadline).await }));
            }
            for h in handles {
                h.await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(rng.range(0, 4_000) as u64)).await;
        }
        let log = sim.control.received();
        assert!(
            log.len() > 100,
            "seed {seed}: the test exercised the budget ({} requests)",
            log.len()
        );
        assert!(
            log.iter().any(|r| r.answer == "throttled"),
            "seed {seed}: throttling was injected"
        );
        for (api, rate) in [
            ("ListTasks", (4, 1)),
            ("GetTasks", (3, 2)),
            ("GetQuota", (1, 1)),
        ] {
            let worst = max_in_window(&log, api, Duration::from_secs(rate.1));
            assert!(
                worst <= rate.0,
                "seed {seed}: {worst} {api} requests within {}s (budget {})",
                rate.1,
                rate.0
            );
        }
        let throttled = series(
            &c,
            "a",
            "cdn_vendor_api_requests_total",
            &[("api", "ListTasks"), ("outcome", "throttled")],
        )
        .unwrap()
            + series(
                &c,
                "a",
                "cdn_vendor_api_requests_total",
                &[("api", "GetTasks"), ("outcome", "throttled")],
            )
            .unwrap()
            + series(
                &c,
                "a",
                "cdn_vendor_api_requests_total",
                &[("api", "GetQuota"), ("outcome", "throttled")],
            )
            .unwrap();
        let sim_throttled = log.iter().filter(|r| r.answer == "throttled").count() as f64;
        assert_eq!(
            throttled, sim_throttled,
            "seed {seed}: every throttling answer is counted"
        );
    }
}

/// A vendor that hangs: the scrape that waits for refreshes (`collect`)
/// answers at its deadline with the previous data, data age grows, and the
/// refresh completes later. Paused time: the deadline is exact, whatever
/// the machine's load.
#[tokio::test(start_paused = true)]
async fn hanging_vendor_scrape_meets_deadline_with_previous_data() {
    let (sim, c) = paused_account_with(
        "    min_refresh_interval: 1s\n    request_timeout: 3s\n    retries: 1\n",
    );
    c.collect(Instant::now() + Duration::from_secs(5)).await;
    let tasks_before = series(&c, "a", "cdn_cache_tasks", &[]).unwrap();
    let success_before = series(&c, "a", "cdn_vendor_last_success_timestamp_seconds", &[]).unwrap();
    assert!(tasks_before > 50.0);

    sim.control.set_fault(Fault::Hang);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let t = Instant::now();
    c.collect(Instant::now() + Duration::from_millis(1500))
        .await;
    assert_eq!(
        t.elapsed(),
        Duration::from_millis(1500),
        "the scrape waited for the hanging refresh exactly until its deadline"
    );
    assert_eq!(
        series(&c, "a", "cdn_cache_tasks", &[]),
        Some(tasks_before),
        "previous data served"
    );
    let age = series(&c, "a", "cdn_vendor_data_age_seconds", &[]).unwrap();
    assert!(age >= 2.0, "data age grows while the vendor hangs: {age}");

    // The vendor recovers: the hung attempt times out (3 s after it was
    // sent), the retry succeeds, and the background refresh completes
    // without another scrape.
    sim.control.set_fault(Fault::None);
    let mut done = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let s = series(&c, "a", "cdn_vendor_last_success_timestamp_seconds", &[]).unwrap();
        if s > success_before {
            done = true;
            break;
        }
    }
    assert!(done, "the refresh finished in the background");
    assert_eq!(
        series(
            &c,
            "a",
            "cdn_vendor_api_requests_total",
            &[("api", "ListTasks"), ("outcome", "timeout")]
        ),
        Some(1.0)
    );
}

fn task(id: &str, created: i64, queued: i64, runs: Option<i64>, fails: bool) -> SimTask {
    SimTask {
        id: id.into(),
        task_type: TaskType::RefreshFile,
        created_at: created,
        domain: "example.com".into(),
        urls: vec![
            "https://example.com/a".into(),
            "https://example.com/b".into(),
        ],
        queued_for: queued,
        runs_for: runs,
        fails,
    }
}

/// Finished tasks are never requested again, each finish is counted once,
/// and a restarted exporter takes a new baseline instead of recounting.
#[tokio::test(start_paused = true)]
async fn incremental_sync_counts_each_finish_once_and_restarts_do_not_recount() {
    let clock: SharedClock = Arc::new(TokioClock::starting_at(T0));
    let world = World::new(clock.clone());
    world.add(task("baseline-done", T0 - 3000, 0, Some(60), false)); // finished long before start
    world.add(task("running-then-fails", T0 - 100, 0, Some(400), true)); // finishes at T0+300
    world.add(task("stalled", T0 - 50, 0, None, false));
    let sim = TestingSim::new(world.clone(), "tok");
    let yaml = format!(
        "accounts:\n{}",
        account_yaml(
            "a",
            "http://sim",
            "    min_refresh_interval: 60s\n    overlap: 30s\n"
        )
    );
    let finished = |c: &Collector, status: &str| {
        series(
            c,
            "a",
            "cdn_tasks_finished_total",
            &[("task_type", "refresh_file"), ("status", status)],
        )
        .unwrap()
    };
    let c = collector(
        &yaml,
        Arc::new(RouterTransport::new(sim.clone().router())),
        clock.clone(),
    );
    c.collect(Instant::now() + Duration::from_secs(9)).await;
    assert_eq!(
        (finished(&c, "success"), finished(&c, "failed")),
        (0.0, 0.0),
        "baseline not counted"
    );

    // A new task created and finished between two scrapes counts.
    world.add(task("new-success", T0 + 100, 0, Some(50), false));
    for _ in 0..12 {
        tokio::time::advance(Duration::from_secs(61)).await;
        c.collect(Instant::now() + Duration::from_secs(9)).await;
    }
    assert_eq!(finished(&c, "success"), 1.0);
    assert_eq!(finished(&c, "failed"), 1.0);
    let log = sim.control.received();
    // Re-checks only ever asked for tasks that were unfinished.
    for r in log.iter().filter(|r| r.api == "GetTasks") {
        assert!(
            !r.detail.contains("baseline-done") && !r.detail.contains("new-success"),
            "finished task re-requested: {}",
            r.detail
        );
    }
    assert!(
        log.iter()
            .any(|r| r.api == "GetTasks" && r.detail.contains("stalled")),
        "unfinished tasks are re-checked"
    );
    // After the first sync, listings only cover the new head (+ overlap).
    let windows: Vec<(i64, i64)> = log
        .iter()
        .filter(|r| r.api == "ListTasks")
        .filter_map(|r| {
            let f: Vec<i64> = r
                .detail
                .split(' ')
                .filter_map(|kv| kv.split_once('=')?.1.parse().ok())
                .collect();
            Some((*f.first()?, *f.get(1)?))
        })
        .collect();
    assert_eq!(windows[0].0, T0 - 86_400, "first sync covers the lookback");
    for w in &windows[1..] {
        assert!(
            w.1 - w.0 <= 61 + 30 + 1,
            "head window {w:?} is only the new part plus overlap"
        );
    }
    let counted = (finished(&c, "success"), finished(&c, "failed"));
    for _ in 0..5 {
        tokio::time::advance(Duration::from_secs(61)).await;
        c.collect(Instant::now() + Duration::from_secs(9)).await;
    }
    assert_eq!(
        (finished(&c, "success"), finished(&c, "failed")),
        counted,
        "no double counting"
    );

    // Restart: a new collector sees everything finished as baseline.
    let restarted = collector(
        &yaml,
        Arc::new(RouterTransport::new(sim.clone().router())),
        clock.clone(),
    );
    restarted
        .collect(Instant::now() + Duration::from_secs(9))
        .await;
    assert_eq!(
        (
            finished(&restarted, "success"),
            finished(&restarted, "failed")
        ),
        (0.0, 0.0)
    );
    assert_eq!(
        series(
            &restarted,
            "a",
            "cdn_tasks",
            &[("task_type", "refresh_file"), ("status", "success")]
        ),
        Some(2.0),
        "but the gauges show them"
    );
    // Created after the restart's first sync, finished before the next: counted.
    tokio::time::advance(Duration::from_secs(30)).await;
    world.add(task("after-restart", clock.unix() - 5, 0, Some(2), false));
    tokio::time::advance(Duration::from_secs(61)).await;
    restarted
        .collect(Instant::now() + Duration::from_secs(9))
        .await;
    assert_eq!(finished(&restarted, "success"), 1.0);
}

/// One account failing (garbage, hangs, auth) leaves the others served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_account_does_not_affect_the_others() {
    let mut yaml = String::from("accounts:\n");
    let mut sims = Vec::new();
    for (name, fault, secret) in [
        ("good", Fault::None, "tok"),
        ("garbage", Fault::Garbage, "tok"),
        ("html", Fault::Html, "tok"),
        ("huge", Fault::Huge(3 << 20), "tok"),
        ("hangs", Fault::Hang, "tok"),
        ("badauth", Fault::None, "other"),
    ] {
        let world = World::new(Arc::new(SystemClock));
        world.with_traffic(
            Traffic {
                seed: 9,
                tasks_per_hour: 100.0,
                ..Traffic::default()
            },
            Duration::from_secs(3600),
        );
        let sim = TestingSim::new(world, secret);
        sim.control.set_fault(fault);
        let (addr, _) = serve(sim.clone().router()).await.unwrap();
        yaml.push_str(&account_yaml(
            name,
            &format!("http://{addr}"),
            "    request_timeout: 30s\n",
        ));
        sims.push(sim);
    }
    let c = Arc::new(collector(
        &yaml,
        Arc::new(ReqwestTransport::new(1 << 20).unwrap()),
        Arc::new(SystemClock),
    ));
    c.collect(Instant::now() + Duration::from_secs(2)).await;
    let up = |n: &str| series(&c, n, "cdn_vendor_up", &[]).unwrap();
    assert_eq!(up("good"), 1.0);
    for bad in ["garbage", "html", "huge", "hangs", "badauth"] {
        assert_eq!(up(bad), 0.0, "{bad}");
    }
    let count = |n: &str, o: &str| {
        series(
            &c,
            n,
            "cdn_vendor_api_requests_total",
            &[("api", "ListTasks"), ("outcome", o)],
        )
        .unwrap()
    };
    assert_eq!(count("garbage", "parse_error"), 1.0);
    assert_eq!(count("html", "parse_error"), 1.0);
    assert_eq!(count("huge", "parse_error"), 1.0, "oversized body refused");
    assert_eq!(count("badauth", "auth_error"), 1.0);
    // The scrape came back while the hanging account's request was still
    // open (its 30 s timeout not yet counted): no wall-clock bound needed.
    assert_eq!(
        count("hangs", "timeout"),
        0.0,
        "the hang did not hold the scrape"
    );
    assert!(series(&c, "good", "cdn_cache_tasks", &[]).unwrap() > 30.0);
    let text = metrics::render(&c, c.clock.unix());
    assert!(text.contains(
        "cdn_tasks{vendor=\"testing\",account=\"good\",task_type=\"prefetch\",status=\"success\"}"
    ));
    let _ = TaskStatus::ALL;
}

/// The renderer's per-account cache never serves stale text: after every
/// refresh, request and skip its output equals a render from scratch.
#[tokio::test(start_paused = true)]
async fn cached_rendering_always_equals_a_fresh_render() {
    let clock: SharedClock = Arc::new(TokioClock::starting_at(T0));
    let world = World::new(clock.clone());
    world.with_traffic(
        Traffic {
            seed: 4,
            tasks_per_hour: 600.0,
            ..Traffic::default()
        },
        Duration::from_secs(3600),
    );
    let sim = TestingSim::new(world, "tok");
    let mut yaml = String::from("accounts:\n");
    for name in ["a", "b", "c"] {
        yaml.push_str(&account_yaml(
            name,
            "http://sim",
            "    min_refresh_interval: 30s\n",
        ));
    }
    let c = collector(
        &yaml,
        Arc::new(RouterTransport::new(sim.clone().router())),
        clock.clone(),
    );
    // One renderer as the server wires it (each account rendered when its
    // refresh completes), one rendering only when scraped.
    let hooked = Arc::new(metrics::Renderer::new());
    let hook = Arc::clone(&hooked);
    assert!(c.on_publish(move |a| hook.prerender(a)));
    let renderer = metrics::Renderer::new();
    let mut changed = 0;
    let mut previous = String::new();
    for step in 0..20 {
        sim.control.set_fault(if step % 7 == 3 {
            Fault::ServerError
        } else {
            Fault::None
        });
        c.collect(Instant::now() + Duration::from_secs(9)).await;
        // process_* (RSS, CPU) and the HTTP server's process-wide
        // connection families (moved by other tests' servers in this
        // process) legitimately differ between two renders.
        let strip = |t: String| {
            t.lines()
                .filter(|l| !l.starts_with("process_") && !l.starts_with("cdn_exporter_http_"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let prerendered = strip(hooked.render(&c, clock.unix()));
        let cached = strip(renderer.render(&c, clock.unix()));
        let fresh = strip(metrics::render(&c, clock.unix()));
        for (what, text) in [("prerendered", &prerendered), ("cached", &cached)] {
            if let Some((a, b)) = text.lines().zip(fresh.lines()).find(|(a, b)| a != b) {
                panic!("step {step}: {what} line {a:?} != fresh line {b:?}");
            }
            assert_eq!(text.len(), fresh.len(), "step {step}: {what}");
        }
        changed += usize::from(cached != previous);
        previous = cached;
        tokio::time::advance(Duration::from_secs(13)).await;
    }
    assert!(
        changed > 10,
        "the output did change over time ({changed} times)"
    );
}

/// Time-dependent families cached with the account's text (the counts of
/// old unfinished tasks, the oldest unfinished age) follow the clock while
/// the account does not change: a pending task crossing the 900 s threshold
/// is counted by the next scrape, not by the next refresh.
#[tokio::test(start_paused = true)]
async fn cached_unfinished_counts_follow_the_clock_between_refreshes() {
    let clock: SharedClock = Arc::new(TokioClock::starting_at(T0));
    let world = World::new(clock.clone());
    world.add(task("stuck", T0 - 899, 100_000, None, false));
    world.freeze();
    let sim = TestingSim::new(world, "tok");
    let yaml = format!(
        "accounts:\n{}",
        account_yaml("a", "http://sim", "    min_refresh_interval: 1h\n")
    );
    let c = collector(
        &yaml,
        Arc::new(RouterTransport::new(sim.router())),
        clock.clone(),
    );
    let renderer = Arc::new(metrics::Renderer::new());
    let hook = Arc::clone(&renderer);
    c.on_publish(move |a| hook.prerender(a));
    c.collect(Instant::now() + Duration::from_secs(9)).await;
    let labels = "vendor=\"testing\",account=\"a\",task_type=\"refresh_file\"";
    let older = format!("cdn_tasks_unfinished_older_than{{{labels},older_than=\"900\"}} ");
    let oldest = format!("cdn_task_oldest_unfinished_age_seconds{{{labels}}} ");
    let read = |series: &str| {
        let text = renderer.render(&c, clock.unix());
        let value = text.lines().find_map(|l| l.strip_prefix(series));
        value
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
            .to_owned()
    };
    assert_eq!((read(&older), read(&oldest)), ("0".into(), "899".into()));
    let generation = c.accounts()[0].stats.generation();
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!((read(&older), read(&oldest)), ("1".into(), "901".into()));
    assert_eq!(
        c.accounts()[0].stats.generation(),
        generation,
        "the account did not change: its cached text was reused"
    );
}

/// A frozen simulated account on paused time, through the router transport
/// (no sockets), with `settings` as its tuning keys.
fn paused_account_with(settings: &str) -> (TestingSim, Collector) {
    let clock: SharedClock = Arc::new(TokioClock::starting_at(T0));
    let world = World::new(clock.clone());
    world.with_traffic(
        Traffic {
            seed: 7,
            tasks_per_hour: 120.0,
            ..Traffic::default()
        },
        Duration::from_secs(3600),
    );
    world.freeze();
    let sim = TestingSim::new(world, "tok");
    let yaml = format!("accounts:\n{}", account_yaml("a", "http://sim", settings,));
    let c = collector(
        &yaml,
        Arc::new(RouterTransport::new(sim.clone().router())),
        clock,
    );
    (sim, c)
}

/// [`paused_account_with`] at the scrape-wait tests' tuning plus `extra`.
fn paused_account(extra: &str) -> (TestingSim, Collector) {
    paused_account_with(&format!(
        "    min_refresh_interval: 10s\n    request_timeout: 20s\n    retries: 1\n{extra}"
    ))
}

fn account_series(c: &Collector, family: &str) -> f64 {
    series(c, "a", family, &[]).unwrap_or_else(|| panic!("{family} missing"))
}

/// Issue 19: a scrape waits only for an account with no data yet. With
/// warm data and a hanging vendor it answers at once (the paused clock does
/// not move) from the cache, after starting the refresh; the refresh that
/// later times out marks the account down on the next scrape.
#[tokio::test(start_paused = true)]
async fn a_warm_account_is_answered_from_cache_at_once_while_its_vendor_hangs() {
    let (sim, c) = paused_account("");
    c.scrape(Instant::now() + Duration::from_secs(9)).await;
    assert_eq!(account_series(&c, "cdn_vendor_up"), 1.0);
    let tasks = account_series(&c, "cdn_cache_tasks");
    assert!(tasks > 50.0, "first sync done: {tasks}");

    sim.control.set_fault(Fault::Hang);
    tokio::time::advance(Duration::from_secs(11)).await;
    let listings = sim.control.count("ListTasks");
    let t = Instant::now();
    c.scrape(Instant::now() + Duration::from_secs(9)).await;
    assert_eq!(t.elapsed(), Duration::ZERO, "the scrape did not wait");
    assert_eq!(
        account_series(&c, "cdn_vendor_scrape_duration_seconds"),
        0.0
    );
    assert_eq!(
        account_series(&c, "cdn_cache_tasks"),
        tasks,
        "cached data served"
    );
    assert_eq!(
        account_series(&c, "cdn_vendor_up"),
        1.0,
        "no answer has come back yet: the last answers were good"
    );
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(
        sim.control.count("ListTasks"),
        listings + 1,
        "the scrape started the due refresh"
    );

    // Both attempts (retries: 1) time out after 20 s each; the refresh
    // publishes `up 0` and the next scrape (again at once) shows it.
    tokio::time::sleep(Duration::from_secs(41)).await;
    let t = Instant::now();
    c.scrape(Instant::now() + Duration::from_secs(9)).await;
    assert_eq!(t.elapsed(), Duration::ZERO);
    assert_eq!(
        account_series(&c, "cdn_vendor_up"),
        0.0,
        "down after the timeouts"
    );
    assert_eq!(
        series(
            &c,
            "a",
            "cdn_vendor_api_requests_total",
            &[("api", "ListTasks"), ("outcome", "timeout")]
        ),
        Some(2.0)
    );

    // `collect` (tests, tools) still waits for the refresh, up to its deadline.
    let t = Instant::now();
    c.collect(Instant::now() + Duration::from_secs(3)).await;
    assert_eq!(t.elapsed(), Duration::from_secs(3));
}

/// An account that has never published data is waited for up to the
/// deadline, as before issue 19; once its first refresh has failed it has
/// data (`up 0`) and is no longer waited for.
#[tokio::test(start_paused = true)]
async fn a_cold_account_is_waited_for_up_to_the_deadline() {
    let (sim, c) = paused_account("");
    sim.control.set_fault(Fault::Hang);
    let t = Instant::now();
    c.scrape(Instant::now() + Duration::from_secs(5)).await;
    assert_eq!(
        t.elapsed(),
        Duration::from_secs(5),
        "waited the whole deadline"
    );
    assert_eq!(
        account_series(&c, "cdn_vendor_scrape_duration_seconds"),
        5.0
    );
    assert_eq!(account_series(&c, "cdn_cache_tasks"), 0.0);

    // Still cold 5 s later (the refresh is in flight): waited again.
    let t = Instant::now();
    c.scrape(Instant::now() + Duration::from_secs(5)).await;
    assert_eq!(t.elapsed(), Duration::from_secs(5));

    // The hung attempts time out (2 x 20 s from the start): the failed
    // refresh published, so the account has data and is answered at once.
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert_eq!(account_series(&c, "cdn_vendor_up"), 0.0);
    let t = Instant::now();
    c.scrape(Instant::now() + Duration::from_secs(5)).await;
    assert_eq!(t.elapsed(), Duration::ZERO);
}

/// `scrape_wait` > 0: a warm account's refresh in flight is waited for up
/// to that long (never past the deadline), and a refresh that finishes
/// within it is served fresh.
#[tokio::test(start_paused = true)]
async fn scrape_wait_waits_that_long_for_a_warm_accounts_refresh() {
    let (sim, c) = paused_account("    scrape_wait: 2s\n");
    c.scrape(Instant::now() + Duration::from_secs(9)).await;
    assert_eq!(account_series(&c, "cdn_vendor_up"), 1.0);

    sim.control.set_fault(Fault::Hang);
    tokio::time::advance(Duration::from_secs(11)).await;
    let t = Instant::now();
    c.scrape(Instant::now() + Duration::from_secs(9)).await;
    assert_eq!(t.elapsed(), Duration::from_secs(2), "waited scrape_wait");
    assert_eq!(
        account_series(&c, "cdn_vendor_scrape_duration_seconds"),
        2.0
    );
    // A deadline shorter than scrape_wait wins.
    let t = Instant::now();
    c.scrape(Instant::now() + Duration::from_secs(1)).await;
    assert_eq!(
        t.elapsed(),
        Duration::from_secs(1),
        "never past the deadline"
    );

    // A vendor answering within scrape_wait: the scrape returns fresh data.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        account_series(&c, "cdn_vendor_up"),
        0.0,
        "the hung refresh timed out"
    );
    sim.control
        .set_fault(Fault::Slow(Duration::from_millis(500)));
    tokio::time::advance(Duration::from_secs(11)).await;
    c.scrape(Instant::now() + Duration::from_secs(9)).await;
    assert_eq!(
        account_series(&c, "cdn_vendor_up"),
        1.0,
        "the refresh finished within scrape_wait"
    );
}
