//! 1,000 accounts in one exporter process, the real release binary against
//! simulated vendors (issue 19 part 3). Run: `scripts/bench-1000.sh`.
//!
//! One HTTP server per vendor, as a real vendor has one endpoint for all
//! its customers; behind it every account has its own simulator (own
//! credentials, own request log, the vendor's published limits enforced),
//! picked by the access key the request is signed with. The accounts of
//! one vendor share one world of tasks (the demo's traffic). The exporter
//! is scraped as Prometheus does (gzip, the scrape-timeout header) every
//! interval, and measured from outside: CPU from `/proc/PID`, peak RSS
//! (`VmHWM`), connections to each simulator from `/proc/net/tcp`; every
//! account's budget is checked on the simulators' request logs.
//!
//! Knobs (environment): `BENCH_EXPORTER` (the binary, required),
//! `BENCH_ACCOUNTS` (1000), `BENCH_SECONDS` (600), `BENCH_INTERVAL` (15),
//! `BENCH_VENDORS` (volcengine,aliyun,ucloud), `BENCH_DIR` (temp files),
//! `BENCH_WRAP` (a profiler to run the exporter under).

mod common;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use cdn_task_exporter::clock::{SharedClock, SystemClock};
use cdn_task_exporter::config;
use cdn_task_exporter::demo::DemoOptions;
use cdn_task_exporter::sim::{self, Control, SimSetup, Traffic, World};
use cdn_task_exporter::vendors::VendorKind;
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

use common::env;

/// The access key a request is signed with: Volcengine's `Authorization:
/// … Credential=AK/…`, Aliyun's `AccessKeyId` and UCloud's `PublicKey`
/// (query or form body).
fn access_key(parts: &axum::http::request::Parts, body: &[u8]) -> Option<String> {
    if let Some(auth) = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    {
        if let Some(rest) = auth.split("Credential=").nth(1) {
            return rest.split('/').next().map(str::to_owned);
        }
    }
    let query = parts.uri.query().unwrap_or("").as_bytes();
    form_urlencoded::parse(query)
        .chain(form_urlencoded::parse(body))
        .find(|(k, _)| k == "AccessKeyId" || k == "PublicKey")
        .map(|(_, v)| v.into_owned())
}

/// Hands the request to the simulator of the account that signed it.
async fn dispatch(
    State(sims): State<Arc<HashMap<String, axum::Router>>>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return axum::http::StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    match access_key(&parts, &bytes).and_then(|k| sims.get(&k)) {
        Some(router) => {
            let req = Request::from_parts(parts, Body::from(bytes));
            let Ok(res) = router.clone().oneshot(req).await;
            res
        }
        None => (axum::http::StatusCode::FORBIDDEN, "unknown access key\n").into_response(),
    }
}

/// One simulated account.
struct SimAccount {
    name: String,
    control: Arc<Control>,
}

/// CPU time of every thread of `pid`, ns (`/proc/PID/task/*/schedstat`).
fn cpu_ns(pid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    dir.flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// utime + stime of `pid`, clock ticks (`/proc/PID/stat`).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    n(11) + n(12)
}

/// `VmRSS` and `VmHWM` of `pid`, KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Sockets on loopback whose remote port is `port`, by TCP state
/// (`/proc/net/tcp`): (established, time-wait). Only the exporter
/// connects to the simulators, so these are its connections.
fn sockets_to(port: u16) -> (usize, usize) {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default()
        + &std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    let (mut established, mut time_wait) = (0, 0);
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(rem), Some(st)) = (f.get(2), f.get(3)) else {
            continue;
        };
        let rem_port = rem
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
        if rem_port != Some(port) {
            continue;
        }
        match *st {
            "01" => established += 1,
            "06" => time_wait += 1,
            _ => {}
        }
    }
    (established, time_wait)
}

/// The exporter process: `child` itself, or (when `BENCH_WRAP` runs it
/// under a tool such as heaptrack) the descendant named after the binary.
fn exporter_pid(child: u32) -> u32 {
    let parent_of = |pid: u32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = stat.rsplit_once(')')?.1;
        rest.split_whitespace().nth(1)?.parse::<u32>().ok()
    };
    let comm = |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let mut family = vec![child];
    let mut i = 0;
    while i < family.len() {
        let parent = family[i];
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            if let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            {
                if parent_of(pid) == Some(parent) && !family.contains(&pid) {
                    family.push(pid);
                }
            }
        }
        i += 1;
    }
    family
        .into_iter()
        .find(|p| comm(*p).starts_with("cdn-task-export"))
        .unwrap_or(child)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

/// Label `account="…"` of a sample line.
fn account_of(line: &str) -> Option<&str> {
    let start = line.find("account=\"")? + "account=\"".len();
    let len = line[start..].find('"')?;
    Some(&line[start..start + len])
}

fn value_of(line: &str) -> Option<f64> {
    line.rsplit(' ').next()?.parse().ok()
}

fn main() {
    let exporter: PathBuf = std::env::var_os("BENCH_EXPORTER")
        .expect("set BENCH_EXPORTER to the release binary (scripts/bench-1000.sh does)")
        .into();
    let accounts: usize = env("BENCH_ACCOUNTS", 1000);
    let seconds: u64 = env("BENCH_SECONDS", 600);
    let interval = Duration::from_secs(env("BENCH_INTERVAL", 15));
    let vendors = common::vendors("volcengine,aliyun,ucloud");
    let dir: PathBuf = std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join(format!("bench-1000-{}", std::process::id())));
    std::fs::create_dir_all(&dir).unwrap();
    let min_refresh = Duration::from_secs(60);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    let opts = DemoOptions::default();
    let mut yaml = format!(
        "defaults:\n  min_refresh_interval: {}s\naccounts:\n",
        min_refresh.as_secs()
    );
    let mut sims: Vec<SimAccount> = Vec::new();
    let mut ports: Vec<(VendorKind, u16)> = Vec::new();
    let _guard = rt.enter();
    for (v, kind) in vendors.iter().enumerate() {
        let spec = kind.spec();
        let world = World::new(clock.clone());
        world.with_traffic(
            Traffic {
                seed: 31 * v as u64 + 1,
                tasks_per_hour: opts.tasks_per_hour * spec.demo_traffic_share,
                failure_rate: opts.failure_rate,
                stall_rate: opts.stall_rate,
                task_types: spec.task_types.to_vec(),
                max_urls: 5,
            },
            opts.history,
        );
        let mut routers = HashMap::new();
        let mut entries = Vec::new();
        for n in (v..accounts).step_by(vendors.len()) {
            let (id, secret) = (format!("bench-key-{n:04}"), format!("bench-secret-{n:04}"));
            let s = (spec.simulator)(&SimSetup {
                world: world.clone(),
                clock: clock.clone(),
                id: id.clone(),
                secret: secret.clone(),
            });
            routers.insert(id.clone(), s.router);
            let name = format!("{kind}-{n:04}");
            sims.push(SimAccount {
                name: name.clone(),
                control: s.control,
            });
            entries.push((name, id, secret));
        }
        let router = axum::Router::new()
            .fallback(dispatch)
            .with_state(Arc::new(routers));
        let (addr, _) = rt.block_on(sim::serve(router)).unwrap();
        for (name, id, secret) in entries {
            yaml.push_str(&format!(
                "  - name: {name}\n    vendor: {kind}\n    endpoint: http://{addr}\n    credentials: {{ id: {id}, secret: {secret} }}{}\n",
                spec.demo_options
            ));
        }
        ports.push((*kind, addr.port()));
    }
    let config_path = dir.join("bench-1000.yml");
    std::fs::write(&config_path, &yaml).unwrap();
    let cfg = config::parse(&yaml, "bench-1000.yml", &|_| None, &|_| Err(String::new()))
        .expect("the generated config is valid");

    // `BENCH_WRAP`: a command the exporter runs under (e.g. `heaptrack -o
    // FILE`), for a memory profile; the figures are then the tool's too.
    let wrap = std::env::var("BENCH_WRAP").unwrap_or_default();
    let mut words = wrap
        .split_whitespace()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    words.push(exporter.to_string_lossy().into_owned());
    let (mut child, base) = common::start_exporter(&words, &config_path, &dir.join("exporter.log"));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let started = Instant::now();
    while rt
        .block_on(http.get(format!("{base}/-/healthy")).send())
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "exporter did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = exporter_pid(child.id());
    let (rss_idle, _) = memory_kib(pid);
    println!(
        "exporter pid {pid}, {} accounts ({}), RSS at start {} MiB",
        cfg.accounts.len(),
        vendors
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        rss_idle / 1024
    );

    struct Scrape {
        at: f64,
        latency: f64,
        cpu_in_scrape: f64,
        bytes: usize,
        series: usize,
        up: usize,
        worst_age: f64,
        worst_account: String,
        conns: Vec<(usize, usize)>,
        rss_kib: u64,
    }
    let mut scrapes: Vec<Scrape> = Vec::new();
    let mut landing: Vec<f64> = Vec::new();
    let mut intervals: Vec<f64> = Vec::new();
    let mut all_up_at: Option<f64> = None;
    let (ticks0, first) = (cpu_ticks(pid), Instant::now());
    let mut last_ticks = ticks0;
    let rounds = (seconds / interval.as_secs()).max(1) as usize;
    for round in 0..rounds {
        let due = first + interval * round as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let c0 = cpu_ns(pid);
        // Whole intervals from utime+stime, which keeps the time of
        // threads that ended (schedstat of the live threads does not).
        let ticks = cpu_ticks(pid);
        if round > 0 {
            intervals.push((ticks - last_ticks) as f64 * 10.0);
        }
        last_ticks = ticks;
        let t = Instant::now();
        let body = rt.block_on(async {
            let res = http
                .get(format!("{base}/metrics"))
                .header("accept-encoding", "gzip")
                .header("x-prometheus-scrape-timeout-seconds", "10")
                .send()
                .await
                .expect("scrape");
            assert!(res.status().is_success());
            res.bytes().await.expect("body")
        });
        let latency = t.elapsed().as_secs_f64() * 1e3;
        // A thread that ends during the scrape takes its time along:
        // rare, and then the figure reads low, not high.
        let cpu_in_scrape = cpu_ns(pid).saturating_sub(c0) as f64 / 1e6;
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .expect("gzip");
        let mut up = 0;
        let (mut worst_age, mut worst_account) = (0.0, String::new());
        let mut series = 0;
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            series += 1;
            if line.starts_with("cdn_vendor_up{") && value_of(line) == Some(1.0) {
                up += 1;
            } else if line.starts_with("cdn_vendor_data_age_seconds{") {
                let age = value_of(line).unwrap_or(f64::INFINITY);
                if age > worst_age {
                    worst_age = age;
                    worst_account = account_of(line).unwrap_or("").to_owned();
                }
            }
        }
        let at = first.elapsed().as_secs_f64();
        if up == cfg.accounts.len() && all_up_at.is_none() {
            all_up_at = Some(at);
        }
        if round % 4 == 1 {
            let t = Instant::now();
            let page = rt.block_on(async {
                http.get(format!("{base}/"))
                    .send()
                    .await
                    .expect("landing page")
                    .text()
                    .await
                    .expect("landing page body")
            });
            landing.push(t.elapsed().as_secs_f64() * 1e3);
            assert!(page.contains("bench-key") || page.len() > 1000);
        }
        let conns = ports.iter().map(|(_, p)| sockets_to(*p)).collect();
        scrapes.push(Scrape {
            at,
            latency,
            cpu_in_scrape,
            bytes: body.len(),
            series,
            up,
            worst_age,
            worst_account,
            conns,
            rss_kib: memory_kib(pid).0,
        });
        let s = scrapes.last().unwrap();
        println!(
            "t={:6.1}s scrape {:7.1} ms, CPU {:6.1} ms, {} bytes gzip, {} series, up {}/{}, worst data age {} s ({}), RSS {} MiB, connections {:?}",
            s.at,
            s.latency,
            s.cpu_in_scrape,
            s.bytes,
            s.series,
            s.up,
            cfg.accounts.len(),
            s.worst_age,
            s.worst_account,
            s.rss_kib / 1024,
            s.conns
        );
    }
    let total_ticks = cpu_ticks(pid) - ticks0;
    let wall = first.elapsed().as_secs_f64();
    let (rss, hwm) = memory_kib(pid);
    // SIGTERM: the exporter shuts down as in production (and a wrapping
    // profiler writes its data).
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();

    // Budgets, from the simulators' logs.
    let mut within = 0;
    let mut requests = 0;
    let mut rejected: HashMap<String, usize> = HashMap::new();
    let mut worst_use = (0.0f64, String::new());
    for (sim, account) in sims.iter().zip(&cfg.accounts) {
        assert_eq!(sim.name, account.name);
        let received = sim.control.received();
        requests += received.len();
        for r in received.iter().filter(|r| r.answer != "ok") {
            *rejected.entry(r.answer.clone()).or_default() += 1;
        }
        let mut ok = true;
        for (api, rate) in account.kind.apis().iter().zip(&account.rates) {
            let peak = sim::max_in_window(&received, api.name, rate.per);
            let share = peak as f64 / rate.requests as f64;
            if share > worst_use.0 {
                worst_use = (
                    share,
                    format!(
                        "{} {}: {peak} of {} per {:?}",
                        account.name, api.name, rate.requests, rate.per
                    ),
                );
            }
            ok &= peak <= rate.requests as usize;
        }
        within += usize::from(ok);
    }

    let warm: Vec<&Scrape> = scrapes
        .iter()
        .filter(|s| all_up_at.is_some_and(|t| s.at > t))
        .collect();
    // Steady: from one refresh interval after all were up (every account
    // then refreshed at least once after its first, whole-lookback listing).
    let steady: Vec<&Scrape> = scrapes
        .iter()
        .filter(|s| all_up_at.is_some_and(|t| s.at > t + (min_refresh + interval).as_secs_f64()))
        .collect();
    let lat = sorted(warm.iter().map(|s| s.latency).collect());
    let cpu = sorted(warm.iter().map(|s| s.cpu_in_scrape).collect());
    let per_interval = sorted(intervals.iter().skip(2).copied().collect());
    let landing = sorted(landing);
    let bound = (min_refresh + interval).as_secs_f64() + 1.0;
    let oldest = |set: &[&Scrape]| {
        set.iter()
            .max_by(|a, b| a.worst_age.total_cmp(&b.worst_age))
            .map(|s| (s.worst_age, s.worst_account.clone(), s.at))
    };
    let (worst_warm, worst) = (oldest(&warm), oldest(&steady));
    let last = scrapes.last().unwrap();
    println!();
    println!("| what | result |");
    println!("|---|---|");
    println!(
        "| accounts | {} ({}), one simulator server per vendor, min_refresh_interval {} s, scrape every {} s for {:.0} s ({} scrapes, gzip) |",
        cfg.accounts.len(),
        vendors.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", "),
        min_refresh.as_secs(),
        interval.as_secs(),
        wall,
        scrapes.len()
    );
    println!(
        "| all up | {} after the first scrape |",
        all_up_at.map_or("never".into(), |t| format!("{t:.0} s"))
    );
    println!(
        "| exposition | {} series, {:.1} MB gzip per scrape |",
        last.series,
        last.bytes as f64 / 1e6
    );
    println!(
        "| warm scrape latency | p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms |",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "| CPU per warm scrape (request to last byte, all threads) | p50 {:.1} ms, p99 {:.1} ms |",
        percentile(&cpu, 0.5),
        percentile(&cpu, 0.99)
    );
    println!(
        "| CPU per {} s interval (scrape, refreshes, everything) | p50 {:.1} ms, max {:.1} ms; whole run {:.2} s of CPU in {:.0} s (utime+stime), {:.1} % of a core |",
        interval.as_secs(),
        percentile(&per_interval, 0.5),
        per_interval.last().copied().unwrap_or(f64::NAN),
        total_ticks as f64 / 100.0,
        wall,
        total_ticks as f64 / wall
    );
    println!(
        "| memory | peak RSS (VmHWM) {:.0} MiB; RSS at start {:.0} MiB, at the end {:.0} MiB |",
        hwm as f64 / 1024.0,
        rss_idle as f64 / 1024.0,
        rss as f64 / 1024.0
    );
    for (i, (kind, port)) in ports.iter().enumerate() {
        let est: Vec<usize> = scrapes.iter().map(|s| s.conns[i].0).collect();
        let tw: Vec<usize> = scrapes.iter().map(|s| s.conns[i].1).collect();
        println!(
            "| connections to the {kind} simulator (port {port}, {} accounts) | established: max {}, at the end {}; TIME_WAIT max {} |",
            cfg.accounts.iter().filter(|a| a.kind == *kind).count(),
            est.iter().max().unwrap_or(&0),
            est.last().unwrap_or(&0),
            tw.iter().max().unwrap_or(&0)
        );
    }
    println!(
        "| budgets (simulators' logs) | {within} of {} accounts within every API's budget; {requests} requests, rejected: {:?}; busiest window: {} ({:.0} % of the budget) |",
        cfg.accounts.len(),
        rejected,
        worst_use.1,
        worst_use.0 * 100.0
    );
    println!(
        "| landing page | p50 {:.1} ms, max {:.1} ms ({} loads) |",
        percentile(&landing, 0.5),
        landing.last().copied().unwrap_or(f64::NAN),
        landing.len()
    );
    for (what, w) in [
        ("after all were up", worst_warm),
        ("steady (one refresh interval later on)", worst),
    ] {
        if let Some((age, account, at)) = w {
            println!(
                "| worst data age {what} | {age:.0} s ({account} at t={at:.0} s), bound min_refresh_interval + scrape interval + 1 s = {bound:.0} s: {} |",
                if age <= bound { "within" } else { "EXCEEDED" }
            );
        }
    }
    if std::env::var_os("BENCH_DIR").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
