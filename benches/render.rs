//! Benchmarks (a bench binary, not a test): rendering `/metrics` for 1,000
//! accounts × 5 task types × 5 statuses, and the memory cost of 1,000,000
//! cached tasks. Run: `cargo bench --bench render`.
//!
//! Targets: render p99 < 10 ms; < 150 bytes per cached task.
//!
//! The only `unsafe` in the project is the counting allocator below, which
//! exists to measure heap bytes exactly; the library and binary deny it.
#![allow(unsafe_code)]

use cdn_task_exporter::app;
use cdn_task_exporter::clock::{SharedClock, SystemClock};
use cdn_task_exporter::collector::cache::TaskCache;
use cdn_task_exporter::config;
use cdn_task_exporter::metrics;
use cdn_task_exporter::sim::testing::TestingSim;
use cdn_task_exporter::sim::{RouterTransport, SimTask, World};
use cdn_task_exporter::task::{Task, TaskStatus, TaskType};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counts live heap bytes, so memory per task is measured, not estimated.
struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn render_bench() {
    const ACCOUNTS: usize = 1_000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let clock: SharedClock = Arc::new(SystemClock);
        let world = World::new(clock.clone());
        let now = clock.unix();
        // Every type × every status present, so every series is non-zero.
        for (i, t) in TaskType::ALL.iter().enumerate() {
            for j in 0..20 {
                world.add(SimTask {
                    id: format!("t{i}-{j}"),
                    task_type: *t,
                    created_at: now - 600 - j,
                    domain: "example.com".into(),
                    urls: vec!["https://example.com/a".into(); 3],
                    queued_for: if j % 5 == 0 { 10_000 } else { 0 },
                    runs_for: if j % 5 == 1 { None } else { Some(60) },
                    fails: j % 5 == 2,
                });
            }
        }
        world.freeze();
        let sim = TestingSim::new(world, "tok");
        let mut yaml = String::from("accounts:\n");
        for a in 0..ACCOUNTS {
            yaml.push_str(&format!(
                "  - name: account-{a:04}\n    vendor: testing\n    credentials: {{ id: a{a}, secret: tok }}\n    safety_fraction: 1\n    options: {{ page_size: 100 }}\n"
            ));
        }
        let cfg = config::parse(&yaml, "bench.yml", &|_| None, &|_| Err(String::new())).unwrap();
        let c = app::collector(&cfg, Arc::new(RouterTransport::new(sim.router())), clock.clone());
        c.collect(tokio::time::Instant::now() + Duration::from_secs(120)).await;
        let text = metrics::render(&c, clock.unix());
        let series = text.lines().filter(|l| !l.starts_with('#')).count();
        println!("render: {ACCOUNTS} accounts x 5 task types x 5 statuses: {series} series, {} KiB", text.len() / 1024);
        // Steady state: the server's renderer, accounts unchanged between
        // scrapes (most scrapes serve most accounts from cache).
        let renderer = metrics::Renderer::new();
        let report = |what: &str, mut times: Vec<Duration>| {
            times.sort();
            println!(
                "  {what}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} renders)",
                percentile(&times, 0.5).as_secs_f64() * 1e3,
                percentile(&times, 0.99).as_secs_f64() * 1e3,
                times.last().unwrap().as_secs_f64() * 1e3,
                times.len()
            );
        };
        let mut times = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            std::hint::black_box(renderer.render(&c, clock.unix()));
            times.push(t.elapsed());
        }
        report("steady state (unchanged accounts reuse their text)", times);
        // Typical: a quarter of the accounts changed since the last scrape
        // (60 s refresh interval, 15 s scrapes).
        let mut times = Vec::new();
        for i in 0..200 {
            for a in c.accounts.iter().skip(i % 4).step_by(4) {
                a.stats.touch();
            }
            let t = Instant::now();
            std::hint::black_box(renderer.render(&c, clock.unix()));
            times.push(t.elapsed());
        }
        report("typical (a quarter of the accounts changed)", times);
        // Worst case: every account changed since the last scrape.
        let mut times = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            std::hint::black_box(metrics::render(&c, clock.unix()));
            times.push(t.elapsed());
        }
        report("worst case (every account re-rendered)", times);
    });
}

fn memory_bench() {
    const TASKS: usize = 1_000_000;
    let rss0 = rss_kib();
    let live0 = LIVE.load(Ordering::Relaxed);
    let mut cache = TaskCache::new(TASKS + 1);
    let mut task = Task {
        id: String::new(),
        task_type: TaskType::Prefetch,
        status: TaskStatus::Success,
        url_count: 3,
        domain: None,
        created_at: 1_767_225_600,
        finished_at: Some(1_767_225_700),
        progress: Some(1.0),
        error: None,
    };
    let t = Instant::now();
    for i in 0..TASKS {
        task.id = format!("{:024x}", i as u128 * 0x9E37_79B9_7F4A_7C15);
        task.task_type = TaskType::ALL[i % 5];
        // 1% still unfinished: those keep their id text for re-checks.
        task.status = if i % 100 == 0 {
            TaskStatus::Running
        } else {
            TaskStatus::Success
        };
        task.created_at = 1_767_225_600 + (i as i64 % 86_400);
        cache.upsert(&task, 0, 0);
    }
    let insert = t.elapsed();
    drop(task);
    let live = LIVE.load(Ordering::Relaxed) - live0;
    let rss = rss_kib().saturating_sub(rss0);
    let t = Instant::now();
    let agg = cache.aggregate();
    let aggregate = t.elapsed();
    std::hint::black_box(agg);
    println!(
        "cache: {TASKS} tasks (1% unfinished): {:.1} bytes/task heap (counted), RSS +{} MiB ({:.1} bytes/task); insert {:.0} ms, aggregate {:.1} ms",
        live as f64 / TASKS as f64,
        rss / 1024,
        rss as f64 * 1024.0 / TASKS as f64,
        insert.as_secs_f64() * 1e3,
        aggregate.as_secs_f64() * 1e3,
    );
    std::hint::black_box(cache);
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would pass nothing
    // useful either way: this binary always runs both benchmarks.
    memory_bench();
    render_bench();
    println!("process RSS at exit: {} MiB", rss_kib() / 1024);
}
