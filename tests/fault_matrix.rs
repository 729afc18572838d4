//! The fault matrix: every vendor × every kind of vendor misbehaviour, on the
//! real binary, with concurrent scrapers.
//!
//! One exporter process per vendor (the four run at once) holds a healthy
//! control account and one account per fault, each against its own
//! simulator on loopback (so each has its own fault switch and request
//! log). The run: warm up healthy (the shared-pages cell starts faulted, so
//! its first, multi-page listing already pages through a moving list), put
//! every fault on, wait until each has surfaced, clear them, wait until
//! each account has recovered. Four scraper threads per process scrape all
//! along. Checked per cell:
//! * no panic, the process alive, every scrape 200 within its deadline and
//!   free of every secret (also the log and the landing page);
//! * the control account up in every scrape after warm-up;
//! * the fault surfaces: a non-ok outcome is counted, and (except
//!   throttling, which by the documented rule leaves `cdn_vendor_up` as it
//!   was) `cdn_vendor_up 0`; it never reads up again while the fault lasts;
//!   `cdn_vendor_last_success_timestamp_seconds` never moves past the
//!   instant the fault went on and the data age grows;
//! * the rate budget holds in every sliding window, from the simulator's
//!   request log; after a throttling answer nothing is sent for its
//!   `Retry-After` (or for at least one budget window without one);
//! * the account recovers (up, last success after the fault cleared);
//! * neighbouring pages sharing tasks do not change the counts (they equal
//!   the simulator's ground truth).
//!
//! The closing table (vendor × fault, pass/fail and what was observed) is
//! printed to stderr; any failing cell fails the test.

mod common;

use cdn_task_exporter::clock::SystemClock;
use cdn_task_exporter::sim::aliyun::AliyunSim;
use cdn_task_exporter::sim::cdnetworks::{self, CdnetworksSim};
use cdn_task_exporter::sim::faults::FaultSwitch;
use cdn_task_exporter::sim::ucloud::UcloudSim;
use cdn_task_exporter::sim::volcengine::VolcengineSim;
use cdn_task_exporter::sim::{max_in_window, serve, Control, Fault, Received, SimTask, World};
use cdn_task_exporter::task::{TaskStatus, TaskType};
use common::{http_get, parse_metrics, value, Exporter};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Prometheus' scrape timeout header; the exporter answers
/// `scrape_timeout_margin` (1.5 s) before it.
const SCRAPE_TIMEOUT_SECONDS: u64 = 6;
const RETRY_AFTER: u64 = 3;
const MAX_RESPONSE_BYTES: usize = 1 << 20;
const LOOKBACK: i64 = 7200;
const OUTCOMES: [&str; 8] = [
    "ok",
    "throttled",
    "auth_error",
    "client_error",
    "server_error",
    "timeout",
    "network",
    "parse_error",
];

fn faults() -> Vec<Fault> {
    vec![
        Fault::Throttle,
        Fault::ThrottleRetryAfter(RETRY_AFTER),
        Fault::ServerError,
        Fault::AuthFailure,
        Fault::Hang,
        Fault::Slow(Duration::from_secs(3)),
        Fault::Drip,
        Fault::Reset,
        Fault::ShortBody,
        Fault::Malformed,
        Fault::HugeValid(2 * MAX_RESPONSE_BYTES),
        Fault::HtmlError,
        Fault::WrongContentType,
        Fault::Empty,
        Fault::WrongTypes,
        Fault::SharedPages,
    ]
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vendor {
    Volcengine,
    Aliyun,
    Ucloud,
    Cdnetworks,
}

impl Vendor {
    fn name(self) -> &'static str {
        match self {
            Vendor::Volcengine => "volcengine",
            Vendor::Aliyun => "aliyun",
            Vendor::Ucloud => "ucloud",
            Vendor::Cdnetworks => "cdnetworks",
        }
    }

    /// Task types in the simulated worlds and watched by the accounts.
    /// CDNetworks accounts watch purge types only: its fetch API allows one
    /// call per 5 minutes, more than this test runs (the fetch stream under
    /// faults is covered in paused time by tests/cdnetworks.rs).
    fn types(self) -> &'static [TaskType] {
        match self {
            Vendor::Cdnetworks => &[TaskType::RefreshFile, TaskType::RefreshDir],
            _ => &[
                TaskType::RefreshFile,
                TaskType::RefreshDir,
                TaskType::Prefetch,
            ],
        }
    }

    /// The budget of each API (`rate_budget`), as (API, requests, window).
    fn budget(self, fault: &Fault) -> Vec<(&'static str, u32, Duration)> {
        let s = Duration::from_secs;
        match self {
            Vendor::Volcengine => vec![
                ("ListContentTasks", 5, s(1)),
                ("DescribeContentQuota", 2, s(1)),
            ],
            Vendor::Aliyun => vec![
                ("DescribeRefreshTasks", 2, s(1)),
                ("DescribeRefreshTaskById", 5, s(1)),
                ("DescribeRefreshQuota", 2, s(1)),
            ],
            Vendor::Ucloud => vec![
                ("DescribeNewUcdnPrefetchCacheTask", 3, s(1)),
                ("DescribeNewUcdnRefreshCacheTask", 3, s(1)),
            ],
            // 1/30s is the fastest budget within 10/5min with a short
            // window (so throttling backs off for 30 s, not 5 min); the
            // shared-pages account pages through its warm-up in a burst.
            Vendor::Cdnetworks if *fault == Fault::SharedPages => {
                vec![
                    ("FetchItemIdQuery", 1, s(300)),
                    ("PurgeItemIdQuery", 10, s(300)),
                ]
            }
            Vendor::Cdnetworks => {
                vec![
                    ("FetchItemIdQuery", 1, s(300)),
                    ("PurgeItemIdQuery", 1, s(30)),
                ]
            }
        }
    }

    fn options(self) -> &'static str {
        match self {
            Vendor::Volcengine => "{ page_size: 5, cloud_account_ids: [654a58632d2d5c7b10dc2b00] }",
            Vendor::Aliyun => "{ page_size: 5 }",
            Vendor::Ucloud => "{ page_size: 5, project_id: org-sim }",
            Vendor::Cdnetworks => "{ page_size: 1000 }",
        }
    }
}

/// One account of the matrix (the control account has `Fault::None`).
struct Cell {
    vendor: Vendor,
    fault: Fault,
    account: String,
    id: String,
    secret: String,
    switch: FaultSwitch,
    control: Arc<Control>,
    endpoint: String,
    truth: Box<dyn Fn() -> HashMap<(TaskType, TaskStatus), u64> + Send + Sync>,
}

/// A world of finished tasks (and, except for CDNetworks, one stalled task
/// per type, so every refresh also re-checks), stable over the run.
fn world(vendor: Vendor, seed: usize) -> Arc<World> {
    let w = World::new(Arc::new(SystemClock));
    let now = w.now();
    for (ti, &task_type) in vendor.types().iter().enumerate() {
        for i in 0..12usize {
            let stalled = i == 11 && vendor != Vendor::Cdnetworks;
            w.add(SimTask {
                id: format!("t{seed:02}{ti}{i:02}0000000{}", i % 10),
                task_type,
                created_at: now - 5400 + (i * 400 + ti * 7) as i64,
                domain: "www1.example.com".into(),
                urls: (0..1 + i % 2)
                    .map(|u| format!("https://www1.example.com/{seed}/{ti}/{i}/{u}.js"))
                    .collect(),
                queued_for: 5,
                runs_for: if stalled { None } else { Some(30) },
                fails: i % 5 == 0,
            });
        }
    }
    w
}

async fn cell(vendor: Vendor, fault: Fault, n: usize) -> Cell {
    let world = world(vendor, n);
    let account = if fault == Fault::None {
        "control".to_owned()
    } else {
        fault.name().replace('_', "-")
    };
    let secret = format!("SeCrEt{n:02}{}x9Qz", vendor.name());
    let id = match vendor {
        Vendor::Volcengine => format!("AKLTfaultmatrix{n:02}"),
        Vendor::Aliyun => format!("LTAI5tFaultMatrix{n:02}"),
        Vendor::Ucloud => format!("ucloudops{n:02}@example.com1296235120854146120"),
        Vendor::Cdnetworks => format!("faultuser{n:02}"),
    };
    let from = world.now() - LOOKBACK + 60;
    let (control, router, truth): (_, _, Box<dyn Fn() -> _ + Send + Sync>) = match vendor {
        Vendor::Volcengine => {
            let sim = VolcengineSim::new(world.clone(), &id, &secret);
            let w = world.clone();
            (
                sim.control.clone(),
                sim.router(),
                Box::new(move || w.truth(from)),
            )
        }
        Vendor::Aliyun => {
            let sim = AliyunSim::new(world.clone(), &id, &secret);
            let s = sim.clone();
            (
                sim.control.clone(),
                sim.router(),
                Box::new(move || s.truth(from)),
            )
        }
        Vendor::Ucloud => {
            let sim = UcloudSim::new(world.clone(), &id, &secret);
            let s = sim.clone();
            (
                sim.control.clone(),
                sim.router(),
                Box::new(move || s.truth(from)),
            )
        }
        Vendor::Cdnetworks => {
            let sim = CdnetworksSim::new(world.clone(), Arc::new(SystemClock), &id, &secret);
            let w = world.clone();
            (
                sim.control.clone(),
                sim.router(),
                Box::new(move || cdnetworks::truth(&w, from)),
            )
        }
    };
    let (addr, _) = serve(router).await.unwrap();
    Cell {
        vendor,
        switch: FaultSwitch::new(control.clone(), world),
        fault,
        account,
        id,
        secret,
        control,
        endpoint: format!("http://{addr}"),
        truth,
    }
}

fn config(cells: &[Cell]) -> String {
    let mut y = format!(
        "scrape_timeout: 5s\nscrape_timeout_margin: 1500ms\nmax_response_bytes: {MAX_RESPONSE_BYTES}\n\
         defaults:\n  lookback: {LOOKBACK}s\n  min_refresh_interval: 2s\n  max_permit_wait: 2s\n  \
         request_timeout: 2s\n  retries: 1\n  quota_interval: 5s\n  safety_fraction: 1.0\naccounts:\n"
    );
    for c in cells {
        let types: Vec<&str> = c.vendor.types().iter().map(|t| t.as_str()).collect();
        y.push_str(&format!(
            "  - name: {}\n    vendor: {}\n    endpoint: {}\n    credentials: {{ id: \"{}\", secret: \"{}\" }}\n    task_types: [{}]\n    options: {}\n    rate_budget:\n",
            c.account,
            c.vendor.name(),
            c.endpoint,
            c.id,
            c.secret,
            types.join(", "),
            if c.vendor == Vendor::Cdnetworks && c.fault == Fault::SharedPages {
                // Pages of 10 (three pages and more); 10 calls per 5
                // minutes last the run at one refresh per 30 s.
                "{ page_size: 10 }\n    min_refresh_interval: 30s"
            } else {
                c.vendor.options()
            },
        ));
        for (api, n, per) in c.vendor.budget(&c.fault) {
            y.push_str(&format!("      {api}: {n}/{}s\n", per.as_secs()));
        }
    }
    y
}

/// One account as one scrape showed it.
#[derive(Debug, Clone, Default)]
struct View {
    up: Option<f64>,
    last_success: Option<f64>,
    data_age: Option<f64>,
    /// Requests by outcome, all APIs together, in `OUTCOMES` order.
    outcomes: [f64; 8],
}

impl View {
    fn not_ok(&self) -> f64 {
        self.outcomes[1..].iter().sum()
    }
}

/// One scrape: when it started and ended (unix seconds) and every account.
#[derive(Debug, Clone)]
struct Snapshot {
    start: f64,
    end: f64,
    accounts: HashMap<String, View>,
}

fn view(m: &HashMap<String, f64>, vendor: &str, account: &str) -> View {
    let l = [("vendor", vendor), ("account", account)];
    let mut outcomes = [0.0; 8];
    for (k, v) in m {
        if !k.starts_with("cdn_vendor_api_requests_total{")
            || !k.contains(&format!("account=\"{account}\""))
        {
            continue;
        }
        if let Some(i) = OUTCOMES
            .iter()
            .position(|o| k.contains(&format!("outcome=\"{o}\"")))
        {
            outcomes[i] += v;
        }
    }
    View {
        up: value(m, "cdn_vendor_up", &l),
        last_success: value(m, "cdn_vendor_last_success_timestamp_seconds", &l),
        data_age: value(m, "cdn_vendor_data_age_seconds", &l),
        outcomes,
    }
}

/// Problems seen by the scrapers (bad status, late answer, leaked secret).
#[derive(Default)]
struct Scrapes {
    snapshots: Vec<Snapshot>,
    problems: Vec<String>,
    count: usize,
    slowest: f64,
}

fn start_scrapers(
    addr: String,
    vendor: &'static str,
    accounts: Vec<String>,
    secrets: Vec<String>,
    stop: Arc<AtomicBool>,
    out: Arc<Mutex<Scrapes>>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..4)
        .map(|_| {
            let (addr, accounts, secrets, stop, out) = (
                addr.clone(),
                accounts.clone(),
                secrets.clone(),
                stop.clone(),
                out.clone(),
            );
            std::thread::spawn(move || {
                let timeout = SCRAPE_TIMEOUT_SECONDS.to_string();
                while !stop.load(Ordering::Relaxed) {
                    let (start, t0) = (unix_now(), Instant::now());
                    let got = http_get(
                        &addr,
                        "/metrics",
                        &[("X-Prometheus-Scrape-Timeout-Seconds", &timeout)],
                    );
                    let took = t0.elapsed().as_secs_f64();
                    let end = unix_now();
                    // Parse outside the lock: the orchestrator (on the
                    // runtime that also serves the simulators) reads it.
                    let mut problems = Vec::new();
                    let mut snapshot = None;
                    match got {
                        Ok((200, text)) => {
                            if took >= SCRAPE_TIMEOUT_SECONDS as f64 {
                                problems.push(format!("scrape took {took:.2}s"));
                            }
                            if let Some(s) = secrets.iter().find(|s| text.contains(s.as_str())) {
                                problems.push(format!("secret {s} in a scrape"));
                            }
                            let m = parse_metrics(&text);
                            let accounts = accounts
                                .iter()
                                .map(|a| (a.clone(), view(&m, vendor, a)))
                                .collect();
                            snapshot = Some(Snapshot {
                                start,
                                end,
                                accounts,
                            });
                        }
                        Ok((status, body)) => {
                            problems.push(format!("scrape answered {status}: {body:.200}"))
                        }
                        Err(e) => problems.push(format!("scrape failed: {e}")),
                    }
                    let mut o = out.lock().unwrap();
                    o.count += 1;
                    o.slowest = o.slowest.max(took);
                    o.problems.extend(problems);
                    o.snapshots.extend(snapshot);
                    drop(o);
                    std::thread::sleep(Duration::from_millis(250));
                }
            })
        })
        .collect()
}

/// The newest snapshot, if any.
fn latest(out: &Mutex<Scrapes>) -> Option<Snapshot> {
    out.lock()
        .unwrap()
        .snapshots
        .iter()
        .max_by(|a, b| a.end.total_cmp(&b.end))
        .cloned()
}

/// Polls `f` on the newest snapshot until it holds or `timeout` passes.
async fn wait_for(
    out: &Mutex<Scrapes>,
    timeout: Duration,
    mut f: impl FnMut(&Snapshot) -> bool,
) -> bool {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if latest(out).is_some_and(|s| f(&s)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// The first window of `per` holding more than `n` requests to `api`:
/// offsets from its first request and answers.
fn window_detail(log: &[Received], api: &str, per: Duration, n: u32) -> String {
    let times: Vec<&Received> = log.iter().filter(|r| r.api == api).collect();
    for (i, t) in times.iter().enumerate() {
        let inside: Vec<&&Received> = times[i..]
            .iter()
            .take_while(|u| u.at.saturating_duration_since(t.at) < per)
            .collect();
        if inside.len() > n as usize {
            return inside
                .iter()
                .map(|u| format!("+{}ms {}", u.at.duration_since(t.at).as_millis(), u.answer))
                .collect::<Vec<_>>()
                .join(", ");
        }
    }
    String::new()
}

/// One cell's verdict.
struct Verdict {
    vendor: &'static str,
    fault: String,
    problems: Vec<String>,
    observed: String,
}

async fn run_vendor(vendor: Vendor) -> Vec<Verdict> {
    let begin = unix_now();
    let mut cells = vec![cell(vendor, Fault::None, 0).await];
    for (i, f) in faults().into_iter().enumerate() {
        cells.push(cell(vendor, f, i + 1).await);
    }
    for c in &cells {
        if c.fault == Fault::SharedPages {
            c.switch.set(Fault::SharedPages);
        }
    }
    let yaml = config(&cells);
    let exp =
        tokio::task::spawn_blocking(move || Exporter::start(&yaml, &["--log.level", "debug"]))
            .await
            .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let out = Arc::new(Mutex::new(Scrapes::default()));
    let accounts: Vec<String> = cells.iter().map(|c| c.account.clone()).collect();
    let secrets: Vec<String> = cells.iter().map(|c| c.secret.clone()).collect();
    let scrapers = start_scrapers(
        exp.addr.clone(),
        vendor.name(),
        accounts.clone(),
        secrets.clone(),
        stop.clone(),
        out.clone(),
    );
    let mut general = Vec::new();

    // Warm-up: every account synced and up.
    let warm = wait_for(&out, Duration::from_secs(60), |s| {
        s.accounts
            .values()
            .all(|v| v.up == Some(1.0) && v.last_success.is_some_and(|t| t > 0.0))
    })
    .await;
    if !warm {
        let late: Vec<String> = latest(&out)
            .map(|s| s.accounts)
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, v)| v.up != Some(1.0) || v.last_success.is_none_or(|t| t <= 0.0))
            .map(|(a, v)| format!("{a} (up {:?}, last success {:?})", v.up, v.last_success))
            .collect();
        general.push(format!(
            "warm-up: not synced and up within 60s: {}",
            late.join(", ")
        ));
    }
    let warm_end = unix_now();

    // Faults on.
    let fault_on = unix_now();
    let at_on = latest(&out);
    for c in &cells {
        if c.fault.is_bad() {
            c.switch.set(c.fault.clone());
        }
    }
    let on_at = tokio::time::Instant::now();
    let base = |a: &str| {
        at_on
            .as_ref()
            .and_then(|s| s.accounts.get(a).cloned())
            .unwrap_or_default()
    };
    let surfaced = |s: &Snapshot, c: &Cell| {
        let v = &s.accounts[&c.account];
        v.not_ok() > base(&c.account).not_ok() && (c.fault.throttles() || v.up == Some(0.0))
    };
    let min_phase = Duration::from_secs(2 * RETRY_AFTER + 2);
    let all_surfaced = wait_for(&out, Duration::from_secs(100), |s| {
        on_at.elapsed() >= min_phase
            && cells
                .iter()
                .filter(|c| c.fault.is_bad())
                .all(|c| surfaced(s, c))
    })
    .await;
    let at_off = latest(&out);
    let fault_off = unix_now();
    for c in &cells {
        c.switch.clear();
    }

    // Recovery.
    let recovered = wait_for(&out, Duration::from_secs(120), |s| {
        s.accounts
            .values()
            .all(|v| v.up == Some(1.0) && v.last_success.is_some_and(|t| t > fault_off))
    })
    .await;
    let done = unix_now();
    stop.store(true, Ordering::Relaxed);
    for t in scrapers {
        t.join().unwrap();
    }
    let (status, landing) = tokio::task::block_in_place(|| http_get(&exp.addr, "/", &[])).unwrap();
    if status != 200 {
        general.push(format!("landing page answered {status}"));
    }
    let final_text = tokio::task::block_in_place(|| exp.scrape(Some("6")));
    let final_m = parse_metrics(&final_text);
    let mut exp = exp;
    if let Ok(Some(st)) = exp.child.try_wait() {
        general.push(format!("the exporter exited: {st}"));
    }
    let logs = exp.logs();
    if logs.contains("panicked") {
        general.push("the exporter panicked".into());
    }
    let scrapes = std::mem::take(&mut *out.lock().unwrap());
    general.extend(scrapes.problems.iter().take(5).cloned());
    if scrapes.count < 12 {
        general.push(format!("only {} scrapes", scrapes.count));
    }
    eprintln!(
        "{}: {} scrapes, slowest {:.2}s; warm-up {:.0}s, faults on {:.0}s, recovery {:.0}s",
        vendor.name(),
        scrapes.count,
        scrapes.slowest,
        warm_end - begin,
        fault_off - fault_on,
        done - fault_off
    );
    let snaps = &scrapes.snapshots;

    let mut verdicts = vec![Verdict {
        vendor: vendor.name(),
        fault: "process".into(),
        observed: format!(
            "{} scrapes, slowest {:.1}s, no panic, alive",
            scrapes.count, scrapes.slowest
        ),
        problems: general,
    }];
    for c in &cells {
        let mut p = Vec::new();
        let mut observed = Vec::new();
        let mine = |s: &Snapshot| s.accounts[&c.account].clone();
        let leaked = |t: &str| t.contains(&c.secret);
        if leaked(&logs) || leaked(&landing) {
            p.push("secret in the log or the landing page".into());
        }
        // Budget, from the simulator's log.
        let log: Vec<Received> = c.control.received();
        for (api, n, per) in vendor.budget(&c.fault) {
            let worst = max_in_window(&log, api, per);
            if worst > n as usize {
                p.push(format!(
                    "{api}: {worst} requests within {per:?}, budget {n} ({})",
                    window_detail(&log, api, per, n)
                ));
            }
        }
        let off_v = at_off
            .as_ref()
            .map(|s| s.accounts[&c.account].clone())
            .unwrap_or_default();
        let on_v = base(&c.account);
        let diff: Vec<String> = OUTCOMES
            .iter()
            .enumerate()
            .filter(|(i, _)| off_v.outcomes[*i] > on_v.outcomes[*i])
            .map(|(i, o)| format!("{o}+{}", off_v.outcomes[i] - on_v.outcomes[i]))
            .collect();
        match &c.fault {
            Fault::None => {
                let down = snaps
                    .iter()
                    .filter(|s| s.start > warm_end)
                    .filter(|s| mine(s).up != Some(1.0))
                    .count();
                if down > 0 {
                    p.push(format!("the control account read down in {down} scrapes"));
                }
                observed.push(format!("up 1 throughout ({} requests)", log.len()));
            }
            Fault::SharedPages => {
                let truth = (c.truth)();
                let mut wrong = Vec::new();
                let mut total = 0;
                for &t in vendor.types() {
                    for s in TaskStatus::ALL {
                        let want = truth.get(&(t, s)).copied().unwrap_or(0) as f64;
                        total += want as u64;
                        let got = value(
                            &final_m,
                            "cdn_tasks",
                            &[
                                ("vendor", vendor.name()),
                                ("account", &c.account),
                                ("task_type", t.as_str()),
                                ("status", s.as_str()),
                            ],
                        );
                        if got != Some(want) {
                            wrong.push(format!("{t}/{s}: {got:?} != {want}"));
                        }
                    }
                }
                if !wrong.is_empty() {
                    p.push(format!(
                        "counts differ from the truth: {}",
                        wrong.join(", ")
                    ));
                }
                let churned = c.switch.world.churned();
                let per_call = vendor.types().len() as u64;
                if churned < 2 * per_call {
                    p.push(format!(
                        "only {churned} tasks churned: no neighbouring pages shared tasks"
                    ));
                }
                let down = snaps
                    .iter()
                    .filter(|s| s.start > warm_end)
                    .filter(|s| mine(s).up != Some(1.0))
                    .count();
                if down > 0 {
                    p.push(format!("read down in {down} scrapes"));
                }
                observed.push(format!(
                    "counts = truth ({total}) after {} listings shifted by {churned} new tasks",
                    churned / per_call
                ));
            }
            f => {
                // Surfaced: a counted non-ok outcome, and down unless throttled.
                let damaged = log.iter().filter(|r| r.answer != "ok").count();
                if damaged == 0 {
                    p.push("the simulator never served the fault".into());
                }
                if !all_surfaced && !at_off.as_ref().is_some_and(|s| surfaced(s, c)) {
                    p.push(format!(
                        "did not surface: up {:?}, outcomes {:?} (at fault on {:?})",
                        off_v.up, off_v.outcomes, on_v.outcomes
                    ));
                }
                if diff.is_empty() {
                    p.push("no non-ok outcome counted".into());
                }
                let during: Vec<&Snapshot> = snaps
                    .iter()
                    .filter(|s| s.start >= fault_on && s.end <= fault_off)
                    .collect();
                if let Some(s) = during
                    .iter()
                    .find(|s| mine(s).last_success.is_some_and(|t| t > fault_on + 0.5))
                {
                    p.push(format!(
                        "last success {:?} after the fault went on at {fault_on:.1} (up {:?})",
                        mine(s).last_success,
                        mine(s).up
                    ));
                }
                if !f.throttles() {
                    let first_down = during
                        .iter()
                        .filter(|s| mine(s).up == Some(0.0))
                        .map(|s| s.end)
                        .fold(f64::INFINITY, f64::min);
                    let up_again = during
                        .iter()
                        .filter(|s| s.start > first_down && mine(s).up == Some(1.0))
                        .count();
                    if up_again > 0 {
                        p.push(format!(
                            "read up again in {up_again} scrapes during the fault"
                        ));
                    }
                }
                if let Some(s) = during.iter().max_by(|a, b| a.end.total_cmp(&b.end)) {
                    let age = mine(s).data_age.unwrap_or(0.0);
                    if age + 1.0 < s.start - fault_on {
                        p.push(format!(
                            "data age {age:.1}s at {:.1}s into the fault",
                            s.start - fault_on
                        ));
                    }
                }
                // Throttling: nothing until Retry-After, or one window.
                if f.throttles() {
                    let window = |api: &str| {
                        vendor
                            .budget(f)
                            .iter()
                            .find(|b| b.0 == api)
                            .map_or(Duration::ZERO, |b| b.2.max(Duration::from_secs(1)))
                    };
                    let min_gap = |api: &str| match f {
                        Fault::ThrottleRetryAfter(s) => Duration::from_secs(*s),
                        _ => window(api),
                    };
                    let mut pairs = 0;
                    for (i, r) in log.iter().enumerate() {
                        if r.answer != "throttled" {
                            continue;
                        }
                        if let Some(next) = log[i + 1..].iter().find(|n| n.api == r.api) {
                            pairs += 1;
                            let gap = next.at.duration_since(r.at);
                            if gap + Duration::from_millis(10) < min_gap(&r.api) {
                                p.push(format!(
                                    "{}: next request {gap:?} after a throttling answer (wanted >= {:?})",
                                    r.api,
                                    min_gap(&r.api)
                                ));
                            }
                        }
                    }
                    if pairs == 0 {
                        p.push("no request followed a throttling answer".into());
                    }
                    observed.push(format!(
                        "{pairs} waits after throttling, each >= {}",
                        match f {
                            Fault::ThrottleRetryAfter(s) => format!("Retry-After {s}s"),
                            _ => "one budget window".into(),
                        }
                    ));
                }
                observed.insert(
                    0,
                    format!(
                        "up {}, {}",
                        off_v.up.map_or("-".into(), |u| u.to_string()),
                        diff.join(" ")
                    ),
                );
            }
        }
        // Recovery.
        let back = snaps.iter().any(|s| {
            let v = mine(s);
            s.start > fault_off
                && v.up == Some(1.0)
                && v.last_success.is_some_and(|t| t > fault_off)
        });
        if !recovered && !back {
            p.push("did not recover after the fault cleared".into());
        } else if let Some(s) = snaps
            .iter()
            .filter(|s| {
                let v = mine(s);
                s.start > fault_off
                    && v.up == Some(1.0)
                    && v.last_success.is_some_and(|t| t > fault_off)
            })
            .min_by(|a, b| a.end.total_cmp(&b.end))
        {
            observed.push(format!("recovered in {:.0}s", s.end - fault_off));
        }
        verdicts.push(Verdict {
            vendor: vendor.name(),
            fault: c.fault.name().to_owned(),
            problems: p,
            observed: observed.join("; "),
        });
    }
    verdicts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_vendor_survives_every_fault() {
    let (v, a, u, c) = tokio::join!(
        run_vendor(Vendor::Volcengine),
        run_vendor(Vendor::Aliyun),
        run_vendor(Vendor::Ucloud),
        run_vendor(Vendor::Cdnetworks),
    );
    let all: Vec<Verdict> = [v, a, u, c].into_iter().flatten().collect();
    let mut by_fault: BTreeMap<usize, Vec<&Verdict>> = BTreeMap::new();
    let order: Vec<String> = ["process", "none"]
        .into_iter()
        .map(str::to_owned)
        .chain(faults().iter().map(|f| f.name().to_owned()))
        .collect();
    for v in &all {
        let i = order.iter().position(|f| *f == v.fault).unwrap_or(99);
        by_fault.entry(i).or_default().push(v);
    }
    let mut table = String::from(
        "\n| fault | volcengine | aliyun | ucloud | cdnetworks |\n|---|---|---|---|---|\n",
    );
    for (i, row) in &by_fault {
        table.push_str(&format!(
            "| {} |",
            order.get(*i).map_or("?", |s| s.as_str())
        ));
        for vendor in ["volcengine", "aliyun", "ucloud", "cdnetworks"] {
            let cell = row.iter().find(|v| v.vendor == vendor);
            table.push_str(&match cell {
                Some(v) if v.problems.is_empty() => format!(" pass: {} |", v.observed),
                Some(v) => format!(
                    " **FAIL**: {} ({}) |",
                    v.problems
                        .iter()
                        .map(|p| p.chars().take(300).collect::<String>())
                        .collect::<Vec<_>>()
                        .join("; "),
                    v.observed
                ),
                None => " - |".into(),
            });
        }
        table.push('\n');
    }
    let failed = all.iter().filter(|v| !v.problems.is_empty()).count();
    let _ = std::fs::write(common::repo("target/fault-matrix.md"), &table);
    eprintln!(
        "{table}\nfault matrix: {} of {} cells passed",
        all.len() - failed,
        all.len()
    );
    assert_eq!(failed, 0, "{failed} cells failed:{table}");
}
