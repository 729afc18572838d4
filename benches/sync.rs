//! First sync and steady state, the real release binary against one
//! simulated account per vendor (issue 19 part 4). Run: `scripts/bench-sync.sh`.
//!
//! Per vendor and task rate: the warm-up's physical limit (pages the
//! lookback needs ÷ the budget's permits per second), the measured first
//! sync against it, vendor calls per refresh in steady state (from the
//! simulator's request log) against the fewest the data needs, the worst
//! data age against its bound, and `cdn_tasks` against the simulator's
//! ground truth.
//!
//! Knobs (environment): `BENCH_EXPORTER` (the binary, required),
//! `BENCH_VENDORS` (all real vendors), `BENCH_RATES` (10000,100000 tasks a
//! day), `BENCH_CLOUDFRONT_RATES` (1000 invalidations a day), `BENCH_INTERVAL` (15 s), `BENCH_STEADY` (300 s), `BENCH_SYNC_MAX`
//! (900 s), `BENCH_DIR` (temp files).

mod common;

use cdn_task_exporter::clock::{SharedClock, SystemClock};
use cdn_task_exporter::config;
use cdn_task_exporter::sim::{self, SimSetup, Traffic, World};
use cdn_task_exporter::vendors::{Stream, VendorKind};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::env;

/// The simulator's side of the sync: the time it spent answering (summed
/// over requests, so it exceeds the wall time when answers overlap) and
/// the most requests it held at once. When the simulator's busy time
/// approaches the paging time with one request at a time, the simulator,
/// not the exporter's paging, set the pace.
#[derive(Default)]
struct Busy {
    state: std::sync::Mutex<(Duration, usize, usize)>,
}

impl Busy {
    fn read(&self) -> (f64, usize) {
        let g = self.state.lock().unwrap();
        (g.0.as_secs_f64(), g.2)
    }
}

async fn busy_layer(
    axum::extract::State(busy): axum::extract::State<Arc<Busy>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    {
        let mut g = busy.state.lock().unwrap();
        g.1 += 1;
        g.2 = g.2.max(g.1);
    }
    let t0 = Instant::now();
    let res = next.run(req).await;
    let mut g = busy.state.lock().unwrap();
    g.0 += t0.elapsed();
    g.1 -= 1;
    res
}

/// Records per page of `stream`: what the vendor module says it asks for
/// (its options' page size, bounded by `max_response_bytes`), else the
/// API's maximum where the module always asks for that.
fn page_size(account: &config::AccountConfig, stream: &Stream) -> u64 {
    if let Some(p) = account.vendor.list_page_size(stream) {
        return p.into();
    }
    match account.kind.as_str() {
        "cdnetworks" => cdn_task_exporter::vendors::cdnetworks::MAX_PAGE_SIZE.into(),
        "tencent" => cdn_task_exporter::vendors::tencent::MAX_PAGE_SIZE.into(),
        "cloudfront" => cdn_task_exporter::vendors::cloudfront::MAX_ITEMS.into(),
        "volcengine" => cdn_task_exporter::vendors::volcengine::MAX_PAGE_SIZE.into(),
        _ => 100,
    }
}

/// The warm-up's physical limit: per API, the pages its streams need for
/// the lookback (plus CloudFront's one `GetInvalidation` per invalidation,
/// for its paths) ÷ the budget's permits per second; the slowest API sets
/// it. Returns (seconds, what each API needs).
fn sync_limit(
    account: &config::AccountConfig,
    truth: &HashMap<(String, String), u64>,
    invalidations: u64,
) -> (f64, String) {
    let names = account.kind.apis();
    let mut calls = vec![0u64; account.rates.len()];
    for stream in account.vendor.streams(&account.task_types) {
        let types = account
            .vendor
            .stream_task_types(&stream, &account.task_types);
        let tasks: u64 = truth
            .iter()
            .filter(|((t, _), _)| types.iter().any(|x| x.as_str() == t))
            .map(|(_, n)| *n)
            .sum();
        calls[stream.api] += tasks.div_ceil(page_size(account, &stream)).max(1);
    }
    if account.kind == VendorKind::Cloudfront {
        if let Some(get) = names.iter().position(|a| a.name == "GetInvalidation") {
            calls[get] += invalidations;
        }
    }
    let mut worst = 0.0f64;
    let mut in_turn = 0.0f64;
    let mut parts = Vec::new();
    for (api, n) in calls.iter().enumerate().filter(|(_, n)| **n > 0) {
        let r = account.rates[api];
        let secs = *n as f64 / (f64::from(r.requests) / r.per.as_secs_f64());
        parts.push(format!(
            "{} {n} calls at {}/{:?}",
            names[api].name, r.requests, r.per
        ));
        worst = worst.max(secs);
        in_turn += secs;
    }
    // The exporter lists its streams one after another, so APIs with
    // budgets of their own (Tencent purge and push) add up.
    if parts.len() > 1 {
        parts.push(format!("{in_turn:.1} s with the APIs in turn"));
    }
    (worst, parts.join(", "))
}

fn value_of(line: &str) -> Option<f64> {
    line.rsplit(' ').next()?.parse().ok()
}

fn label<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("{name}=\"");
    let start = line.find(&key)? + key.len();
    let len = line[start..].find('"')?;
    Some(&line[start..start + len])
}

/// What one scrape says about the account.
#[derive(Default)]
struct Reading {
    last_success: f64,
    worst_age: f64,
    tasks: HashMap<(String, String), u64>,
}

fn read(text: &str) -> Reading {
    let mut r = Reading::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let v = value_of(line).unwrap_or(f64::NAN);
        if line.starts_with("cdn_vendor_last_success_timestamp_seconds{") {
            r.last_success = v;
        } else if line.starts_with("cdn_task_data_age_seconds{") {
            r.worst_age = r.worst_age.max(v);
        } else if line.starts_with("cdn_tasks{") {
            let key = (
                label(line, "task_type").unwrap_or("").to_owned(),
                label(line, "status").unwrap_or("").to_owned(),
            );
            *r.tasks.entry(key).or_default() += v as u64;
        }
    }
    r
}

/// The simulator's counts in the lookback, as the vendor shows them and
/// `cdn_tasks` counts them (its status words; one per URL record where the
/// vendor lists URL records: Tencent, CDNetworks).
fn truth(truth: &sim::Truth, world: &World, lookback: Duration) -> HashMap<(String, String), u64> {
    truth(world.now() - lookback.as_secs() as i64)
        .into_iter()
        .map(|((t, st), n)| ((t.as_str().to_owned(), st.as_str().to_owned()), n))
        .collect()
}

/// Absolute difference between two count maps, summed over every key.
fn mismatch(a: &HashMap<(String, String), u64>, b: &HashMap<(String, String), u64>) -> u64 {
    let mut keys: Vec<_> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.iter()
        .map(|k| {
            let (x, y) = (
                a.get(*k).copied().unwrap_or(0),
                b.get(*k).copied().unwrap_or(0),
            );
            x.abs_diff(y)
        })
        .sum()
}

/// Scrape interval, steady-state length, longest wait for a first sync.
#[derive(Clone, Copy)]
struct Knobs {
    interval: Duration,
    steady_for: Duration,
    sync_max: Duration,
}

struct Row {
    vendor: String,
    per_day: u64,
    sync: String,
    calls: String,
    age: String,
    exact: String,
}

fn run(
    rt: &tokio::runtime::Runtime,
    exporter: &Path,
    dir: &Path,
    kind: VendorKind,
    per_day: u64,
    knobs: &Knobs,
) -> Row {
    let Knobs {
        interval,
        steady_for,
        sync_max,
    } = *knobs;
    let spec = kind.spec();
    let clock: SharedClock = Arc::new(SystemClock);
    let world = World::new(clock.clone());
    let (id, secret) = ("bench-key".to_owned(), "bench-secret".to_owned());
    let s = (spec.simulator)(&SimSetup {
        world: world.clone(),
        clock: clock.clone(),
        id: id.clone(),
        secret: secret.clone(),
    });
    let busy = Arc::new(Busy::default());
    let router = s.router.layer(axum::middleware::from_fn_with_state(
        busy.clone(),
        busy_layer,
    ));
    let (addr, server) = rt.block_on(sim::serve(router)).unwrap();
    let name = format!("{kind}-sync");
    let yaml = format!(
        "accounts:\n  - name: {name}\n    vendor: {kind}\n    endpoint: http://{addr}\n    credentials: {{ id: {id}, secret: {secret} }}{}\n",
        spec.demo_options
    );
    let cfg = config::parse(&yaml, "bench-sync.yml", &|_| None, &|_| Err(String::new()))
        .expect("the generated config is valid");
    let account = &cfg.accounts[0];
    let lookback = account.settings.lookback;
    let min_refresh = account.settings.min_refresh_interval;
    world.with_traffic(
        Traffic {
            seed: per_day ^ kind.as_str().len() as u64,
            tasks_per_hour: per_day as f64 / 24.0,
            failure_rate: 0.03,
            stall_rate: 0.01,
            task_types: spec.task_types.to_vec(),
            max_urls: 5,
        },
        lookback,
    );

    let in_lookback_truth = truth(&s.truth, &world, lookback);
    let in_lookback: u64 = in_lookback_truth.values().sum();
    let invalidations = world
        .list(
            world.now() - lookback.as_secs() as i64,
            world.now() + 1,
            None,
            None,
        )
        .len() as u64;
    let (limit_secs, needs) = sync_limit(account, &in_lookback_truth, invalidations);
    let types = account.vendor.streams(&account.task_types).len() as u64;
    let page = account
        .vendor
        .streams(&account.task_types)
        .iter()
        .map(|st| page_size(account, st))
        .min()
        .unwrap_or(100);

    let config_path = dir.join(format!("{name}-{per_day}.yml"));
    std::fs::write(&config_path, &yaml).unwrap();
    let started = Instant::now();
    let started_tokio = tokio::time::Instant::now();
    let (mut child, base) = common::start_exporter(
        &[exporter.to_string_lossy().into_owned()],
        &config_path,
        &dir.join(format!("{name}-{per_day}.log")),
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let scrape = || -> Option<String> {
        rt.block_on(async {
            let res = http
                .get(format!("{base}/metrics"))
                .header("x-prometheus-scrape-timeout-seconds", "10")
                .send()
                .await
                .ok()?;
            res.text().await.ok()
        })
    };

    // First sync: polled every 250 ms (a scrape starts only the refreshes
    // that are due, so polling does not speed it up), so the finish time is
    // not rounded up to a scrape interval.
    let mut synced_at = None;
    let mut last = Reading::default();
    while started.elapsed() < sync_max {
        std::thread::sleep(Duration::from_millis(250));
        let Some(text) = scrape() else { continue };
        last = read(&text);
        // Synced: the exporter says every task type has been fresh once
        // (its whole lookback listed); how exact that is is measured below.
        if last.last_success > 0.0 {
            synced_at = Some(started.elapsed().as_secs_f64());
            break;
        }
    }
    let received = s.control.received();
    let sync_calls = received.len();
    let (handled, most) = busy.read();
    // Where the time goes: process start and the first scrape until the
    // first vendor call, then paging until the last call of the sync.
    let first_call = received
        .first()
        .map_or(0.0, |r| (r.at - started_tokio).as_secs_f64());
    let last_call = received
        .last()
        .map_or(0.0, |r| (r.at - started_tokio).as_secs_f64());
    let sync_off = mismatch(&last.tasks, &truth(&s.truth, &world, lookback));
    let sync = match synced_at {
        Some(t) => format!(
            "{t:.1} s from start against a limit of {limit_secs:.1} s ({:.2}×; {needs}); first vendor call at {first_call:.1} s, last at {last_call:.1} s: paging {:.1} s ({:.2}×); {sync_calls} calls, at most {most} in flight, the simulator busy {handled:.1} s answering them; off the truth by {sync_off} of {in_lookback}",
            t / limit_secs,
            last_call - first_call,
            (last_call - first_call) / limit_secs
        ),
        None => {
            let have: u64 = last.tasks.values().sum();
            let covered = have as f64 / in_lookback.max(1) as f64;
            let spent = started.elapsed().as_secs_f64();
            format!(
                "not finished in {spent:.0} s (BENCH_SYNC_MAX): {sync_calls} calls, {:.1} % of {in_lookback} tasks listed, projected {:.1} h against a limit of {:.1} h",
                covered * 100.0,
                if covered > 0.0 { spent / covered / 3600.0 } else { f64::INFINITY },
                limit_secs / 3600.0
            )
        }
    };

    let (mut calls, mut age, mut exact) = (
        "not measured".into(),
        "not measured".into(),
        "not measured".into(),
    );
    if synced_at.is_some() {
        let from = tokio::time::Instant::now();
        let mut refreshes = 0;
        let mut prev = last.last_success;
        let mut worst_age = 0.0f64;
        let mut minimum = Vec::new();
        let mut wrong = Vec::new();
        let steady_start = Instant::now();
        while steady_start.elapsed() < steady_for {
            std::thread::sleep(interval);
            let Some(text) = scrape() else { continue };
            let r = read(&text);
            let now_truth = truth(&s.truth, &world, lookback);
            if r.last_success != prev {
                refreshes += 1;
                prev = r.last_success;
                // The fewest calls this refresh needed: one head page per
                // listing stream plus the pages holding the unfinished tasks.
                let unfinished: u64 = now_truth
                    .iter()
                    .filter(|((_, st), _)| st == "pending" || st == "running")
                    .map(|(_, n)| *n)
                    .sum();
                minimum.push(types + unfinished.div_ceil(page));
            }
            // The first sync's own refresh began at start, so until the
            // next refresh completes the data is as old as the sync took:
            // the bound holds from then on.
            if refreshes > 0 {
                worst_age = worst_age.max(r.worst_age);
            }
            wrong.push(mismatch(&r.tasks, &now_truth));
        }
        let steady_calls = s.control.received().iter().filter(|r| r.at >= from).count();
        let mean_min = minimum.iter().sum::<u64>() as f64 / minimum.len().max(1) as f64;
        calls = format!(
            "{:.1} per refresh ({steady_calls} calls, {refreshes} refreshes) against a minimum of {mean_min:.1}",
            steady_calls as f64 / refreshes.max(1) as f64
        );
        let bound = (min_refresh + interval).as_secs_f64();
        age = format!(
            "{worst_age:.0} s against {bound:.0} s (after the first steady refresh): {}",
            if worst_age <= bound {
                "within"
            } else {
                "EXCEEDED"
            }
        );
        let exact_scrapes = wrong.iter().filter(|w| **w == 0).count();
        exact = format!(
            "{exact_scrapes} of {} scrapes exact; worst off by {} tasks (tasks created or finished between refreshes)",
            wrong.len(),
            wrong.iter().max().unwrap_or(&0)
        );
    }
    let _ = child.kill();
    let _ = child.wait();
    server.abort();
    let rejected = s
        .control
        .received()
        .iter()
        .filter(|r| r.answer != "ok")
        .count();
    println!(
        "{kind} {per_day}/day: {in_lookback} tasks in {} s lookback, page {page}; sync: {sync}; steady: {calls}; age: {age}; cdn_tasks: {exact}; rejected by the simulator: {rejected}",
        lookback.as_secs()
    );
    Row {
        vendor: kind.as_str().to_owned(),
        per_day,
        sync,
        calls,
        age,
        exact,
    }
}

fn main() {
    let exporter: PathBuf = std::env::var_os("BENCH_EXPORTER")
        .expect("set BENCH_EXPORTER to the release binary (scripts/bench-sync.sh does)")
        .into();
    let all = VendorKind::real()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let vendors = common::vendors(&all);
    let rates: Vec<u64> = env("BENCH_RATES", "10000,100000".to_owned())
        .split(',')
        .map(|r| r.trim().parse().expect("BENCH_RATES: tasks a day"))
        .collect();
    let interval = Duration::from_secs(env("BENCH_INTERVAL", 15));
    let steady = Duration::from_secs(env("BENCH_STEADY", 300));
    let sync_max = Duration::from_secs(env("BENCH_SYNC_MAX", 900));
    let dir: PathBuf = std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join(format!("bench-sync-{}", std::process::id())));
    std::fs::create_dir_all(&dir).unwrap();
    // Two workers: the simulators answer on the runtime's threads, and with
    // one they answered one request at a time, so pages the exporter sent
    // together queued at the simulator (a vendor answers them in parallel).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let knobs = Knobs {
        interval,
        steady_for: steady,
        sync_max,
    };
    let mut rows = Vec::new();
    // CloudFront's first sync reads every invalidation's paths, one
    // GetInvalidation each at 2.5 a second: 10,000 a day would be 67
    // minutes of warm-up, far past what CloudFront accounts submit.
    let cloudfront_rates: Vec<u64> = env("BENCH_CLOUDFRONT_RATES", "1000".to_owned())
        .split(',')
        .map(|r| {
            r.trim()
                .parse()
                .expect("BENCH_CLOUDFRONT_RATES: invalidations a day")
        })
        .collect();
    for kind in &vendors {
        let rates = if *kind == VendorKind::Cloudfront {
            &cloudfront_rates
        } else {
            &rates
        };
        for per_day in rates {
            rows.push(run(&rt, &exporter, &dir, *kind, *per_day, &knobs));
        }
    }
    println!();
    println!("| vendor | tasks/day | first sync against the limit | steady calls per refresh | worst data age | cdn_tasks against ground truth |");
    println!("|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.vendor, r.per_day, r.sync, r.calls, r.age, r.exact
        );
    }
    if std::env::var_os("BENCH_DIR").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
