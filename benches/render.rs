//! Benchmarks (a bench binary, not a test): rendering `/metrics` for 1,000
//! accounts × 5 task types × 5 statuses, and the memory cost of 1,000,000
//! cached tasks. Run: `cargo bench --bench render`.
//!
//! Targets: render p99 < 10 ms worst case, < 2 ms steady state; < 150
//! bytes per cached task. The render is measured twice on the same data:
//! the hand-written renderer of `src/metrics` and the `prometheus` crate's
//! `TextEncoder` over a registry holding the same values.
//!
//! The only `unsafe` in the project is the counting allocator below, which
//! exists to measure heap bytes exactly; the library and binary deny it.
#![allow(unsafe_code)]

use cdn_task_exporter::app;
use cdn_task_exporter::clock::{SharedClock, SystemClock};
use cdn_task_exporter::collector::cache::TaskCache;
use cdn_task_exporter::collector::Collector;
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

fn report(what: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "  {what}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} renders)",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        times.last().unwrap().as_secs_f64() * 1e3,
        times.len()
    );
}

fn time(n: usize, mut f: impl FnMut(usize)) -> Vec<Duration> {
    (0..n)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed()
        })
        .collect()
}

/// `accounts` testing accounts over one frozen simulator holding every
/// task type × every status, each refreshed once (so every series exists
/// and is non-zero).
async fn bench_collector(accounts: usize) -> Collector {
    let clock: SharedClock = Arc::new(SystemClock);
    let world = World::new(clock.clone());
    let now = clock.unix();
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
    for a in 0..accounts {
        yaml.push_str(&format!(
            "  - name: account-{a:04}\n    vendor: testing\n    credentials: {{ id: a{a}, secret: tok }}\n    safety_fraction: 1\n    min_refresh_interval: 1h\n    options: {{ page_size: 100 }}\n"
        ));
    }
    let cfg = config::parse(&yaml, "bench.yml", &|_| None, &|_| Err(String::new())).unwrap();
    let c = app::collector(
        &cfg,
        Arc::new(RouterTransport::new(sim.router())),
        clock.clone(),
    );
    c.collect(tokio::time::Instant::now() + Duration::from_secs(120))
        .await;
    c
}

fn render_bench() {
    const ACCOUNTS: usize = 1_000;
    const RENDERS: usize = 200;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let clock: SharedClock = Arc::new(SystemClock);
        let c = bench_collector(ACCOUNTS).await;
        let text = metrics::render(&c, clock.unix());
        let series = text.lines().filter(|l| !l.starts_with('#')).count();
        println!("render: {ACCOUNTS} accounts x 5 task types x 5 statuses: {series} series, {} KiB", text.len() / 1024);

        println!("hand-written renderer (src/metrics), what a scrape builds: the body's pieces");
        // Steady state: the server's renderer, accounts unchanged between
        // scrapes (most scrapes serve most accounts from cache).
        let renderer = metrics::Renderer::new();
        let body = renderer.exposition(&c, clock.unix());
        println!("  body: {} bytes in {} pieces", body.len(), body.pieces());
        report("steady state (unchanged accounts: their pieces shared)", time(RENDERS, |_| {
            std::hint::black_box(renderer.exposition(&c, clock.unix()));
        }));
        report("steady state, copied into one String (the body before)", time(RENDERS, |_| {
            std::hint::black_box(renderer.render(&c, clock.unix()));
        }));
        // Typical and worst: a quarter / every account refreshed since the
        // last scrape. As the server runs, each refresh renders its
        // account's text when it completes (`Renderer::prerender`, on the
        // refresh task); timed apart: the scrape then only concatenates.
        let all: Vec<_> = c.accounts().iter().cloned().collect();
        let mut at_refresh = Vec::new();
        let mut changed = 0usize;
        let refreshed = |accounts: &mut dyn Iterator<Item = &Arc<cdn_task_exporter::collector::Account>>, at_refresh: &mut Vec<Duration>, changed: &mut usize| {
            let t = Instant::now();
            for a in accounts {
                a.stats.touch();
                renderer.prerender(a);
                *changed += 1;
            }
            at_refresh.push(t.elapsed());
        };
        let mut scrapes = Vec::new();
        for i in 0..RENDERS {
            refreshed(&mut all.iter().skip(i % 4).step_by(4), &mut at_refresh, &mut changed);
            let t = Instant::now();
            std::hint::black_box(renderer.exposition(&c, clock.unix()));
            scrapes.push(t.elapsed());
        }
        report("typical (a quarter refreshed, rendered at refresh time)", scrapes);
        let per_account = at_refresh.iter().sum::<Duration>().as_secs_f64() / changed as f64;
        let (mut scrapes, mut changed) = (Vec::new(), 0usize);
        at_refresh.clear();
        for _ in 0..RENDERS {
            refreshed(&mut all.iter(), &mut at_refresh, &mut changed);
            let t = Instant::now();
            std::hint::black_box(renderer.exposition(&c, clock.unix()));
            scrapes.push(t.elapsed());
        }
        report("worst case (every account refreshed, rendered at refresh time)", scrapes);
        report("  the render moved to refresh time, all 1,000 accounts", at_refresh.clone());
        println!(
            "  the render moved to refresh time: {:.1} µs per account refresh (typical run {:.1} µs)",
            at_refresh.iter().sum::<Duration>().as_secs_f64() / changed as f64 * 1e6,
            per_account * 1e6
        );
        // Without the hook (an account changed by a request counted after
        // its last render, e.g. mid-refresh): the scrape renders it.
        report("worst case rendered by the scrape (every account changed, no prerender)", time(RENDERS, |_| {
            for a in c.accounts().iter() {
                a.stats.touch();
            }
            std::hint::black_box(renderer.exposition(&c, clock.unix()));
        }));
        report("cold (a new renderer: nothing to reuse, nothing to size from)", time(RENDERS / 4, |_| {
            std::hint::black_box(metrics::render(&c, clock.unix()));
        }));

        println!("prometheus crate (Registry of GaugeVec/CounterVec + histogram collectors, TextEncoder):");
        let crate_way = via_crate::Exporter::new(&c);
        let at = clock.unix();
        let ours = renderer.render(&c, at);
        crate_way.update(&c, at);
        let theirs = crate_way.encode();
        via_crate::assert_same_series(&ours, &theirs);
        report("steady state (values unchanged: gather + encode)", time(RENDERS / 4, |_| {
            std::hint::black_box(crate_way.encode());
        }));
        report("worst case (every value set again, then gather + encode)", time(RENDERS / 4, |_| {
            crate_way.update(&c, clock.unix());
            std::hint::black_box(crate_way.encode());
        }));
    });
}

/// The same exposition through the `prometheus` crate, as an exporter built
/// on it would write it: one vec per family with its children's handles kept
/// per account (so an update is a store, not a label lookup), pre-aggregated
/// histograms as custom collectors (the crate's `Histogram` can only
/// observe), the process collector, and `TextEncoder` over `gather()`.
mod via_crate {
    use cdn_task_exporter::api::Outcome;
    use cdn_task_exporter::collector::stats::{Histogram as Hist, SkipReason};
    use cdn_task_exporter::collector::{age, Collector};
    use cdn_task_exporter::metrics::{self, FAMILIES};
    use cdn_task_exporter::task::{TaskStatus, TaskType};
    use prometheus::core::{Collector as PromCollector, Desc};
    use prometheus::proto::{self, MetricFamily, MetricType};
    use prometheus::{Counter, CounterVec, Encoder, Gauge, GaugeVec, Opts, Registry, TextEncoder};
    use std::collections::{BTreeMap, HashMap};
    use std::sync::Arc;

    fn opts(name: &str) -> Opts {
        let f = FAMILIES.iter().find(|f| f.name == name).unwrap();
        Opts::new(name, f.help)
    }

    fn gauges(r: &Registry, name: &str) -> GaugeVec {
        let f = FAMILIES.iter().find(|f| f.name == name).unwrap();
        let v = GaugeVec::new(opts(name), f.labels).unwrap();
        r.register(Box::new(v.clone())).unwrap();
        v
    }

    fn counters(r: &Registry, name: &str) -> CounterVec {
        let f = FAMILIES.iter().find(|f| f.name == name).unwrap();
        let v = CounterVec::new(opts(name), f.labels).unwrap();
        r.register(Box::new(v.clone())).unwrap();
        v
    }

    /// Our totals are the truth; the crate's counters only add (as its own
    /// process collector does, add the difference).
    fn set(c: &Counter, total: f64) {
        let d = total - c.get();
        if d > 0.0 {
            c.inc_by(d);
        }
    }

    /// One pre-aggregated histogram family built from our histograms.
    struct Histograms {
        desc: Desc,
        name: &'static str,
        help: &'static str,
        /// (label pairs, histogram)
        series: Vec<(Vec<(String, String)>, &'static Hist)>,
    }

    impl PromCollector for Histograms {
        fn desc(&self) -> Vec<&Desc> {
            vec![&self.desc]
        }
        fn collect(&self) -> Vec<MetricFamily> {
            let mut mf = MetricFamily::default();
            mf.set_name(self.name.into());
            mf.set_help(self.help.into());
            mf.set_field_type(MetricType::HISTOGRAM);
            let metrics = self
                .series
                .iter()
                .map(|(labels, h)| {
                    let (buckets, count, sum) = h.snapshot();
                    let mut ph = proto::Histogram::default();
                    ph.set_sample_count(count);
                    ph.set_sample_sum(sum);
                    ph.set_bucket(
                        buckets
                            .into_iter()
                            .map(|(le, n)| {
                                let mut b = proto::Bucket::default();
                                b.set_upper_bound(le);
                                b.set_cumulative_count(n);
                                b
                            })
                            .collect(),
                    );
                    let mut m = proto::Metric::default();
                    m.set_label(
                        labels
                            .iter()
                            .map(|(k, v)| {
                                let mut p = proto::LabelPair::default();
                                p.set_name(k.clone());
                                p.set_value(v.clone());
                                p
                            })
                            .collect(),
                    );
                    m.set_histogram(ph);
                    m
                })
                .collect();
            mf.set_metric(metrics);
            vec![mf]
        }
    }

    /// Handles of one account's children.
    struct Handles {
        tasks: Vec<[Gauge; 5]>,
        urls: Vec<[Gauge; 5]>,
        finished: Vec<[Counter; 2]>,
        oldest: Vec<Gauge>,
        older_than: Vec<[Gauge; 5]>,
        completion: Vec<Gauge>,
        success: Vec<Gauge>,
        task_age: Vec<Gauge>,
        task_last: Vec<Gauge>,
        quota: HashMap<TaskType, (Gauge, Gauge)>,
        up: Gauge,
        last_success: Gauge,
        data_age: Gauge,
        requests: Vec<[Counter; 8]>,
        skipped: [Counter; 2],
        scrape: Gauge,
        cache: Gauge,
        dropped: Counter,
    }

    pub struct Exporter {
        registry: Registry,
        handles: Vec<Handles>,
    }

    impl Exporter {
        pub fn new(c: &Collector) -> Self {
            let r = Registry::new();
            let [tasks, urls, oldest, completion, success, quota_limit, quota_remaining, up, last_success, data_age, task_age, task_last, scrape, cache] =
                [
                    "cdn_tasks",
                    "cdn_task_urls",
                    "cdn_task_oldest_unfinished_age_seconds",
                    "cdn_task_completion_ratio",
                    "cdn_task_success_ratio",
                    "cdn_quota_limit",
                    "cdn_quota_remaining",
                    "cdn_vendor_up",
                    "cdn_vendor_last_success_timestamp_seconds",
                    "cdn_vendor_data_age_seconds",
                    "cdn_task_data_age_seconds",
                    "cdn_task_last_success_timestamp_seconds",
                    "cdn_vendor_scrape_duration_seconds",
                    "cdn_cache_tasks",
                ]
                .map(|n| gauges(&r, n));
            let older = gauges(&r, "cdn_tasks_unfinished_older_than");
            let [finished, requests, skipped, dropped] = [
                "cdn_tasks_finished_total",
                "cdn_vendor_api_requests_total",
                "cdn_vendor_refresh_skipped_total",
                "cdn_cache_tasks_dropped_total",
            ]
            .map(|n| counters(&r, n));
            let build = GaugeVec::new(
                opts("cdn_exporter_build_info"),
                &["version", "revision", "rustc"],
            )
            .unwrap();
            build
                .with_label_values(&["0.1.0", "bench", "rustc"])
                .set(1.0);
            r.register(Box::new(build)).unwrap();
            r.register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .unwrap();
            let mut durations = Vec::new();
            let mut latency = Vec::new();
            let mut handles = Vec::new();
            for a in c.accounts().iter() {
                // The histograms live as long as the collector; the bench
                // leaks the Arc so the collectors can hold 'static refs.
                let a: &'static _ = Box::leak(Box::new(Arc::clone(a)));
                let (v, n) = (a.kind.as_str(), a.name.as_str());
                let per_type = |g: &GaugeVec| -> Vec<Gauge> {
                    a.task_types
                        .iter()
                        .map(|t| g.with_label_values(&[v, n, t.as_str()]))
                        .collect()
                };
                let by_status = |g: &GaugeVec| -> Vec<[Gauge; 5]> {
                    a.task_types
                        .iter()
                        .map(|t| {
                            TaskStatus::ALL
                                .map(|s| g.with_label_values(&[v, n, t.as_str(), s.as_str()]))
                        })
                        .collect()
                };
                for t in &a.task_types {
                    let labels = vec![
                        ("vendor".into(), v.into()),
                        ("account".into(), n.into()),
                        ("task_type".into(), t.as_str().into()),
                    ];
                    durations.push((labels, a.durations.get(*t).unwrap()));
                }
                for (api, h) in a.api_names.iter().zip(&a.stats.latency) {
                    let labels = vec![
                        ("vendor".into(), v.into()),
                        ("account".into(), n.into()),
                        ("api".into(), api.to_string()),
                    ];
                    latency.push((labels, h));
                }
                handles.push(Handles {
                    tasks: by_status(&tasks),
                    urls: by_status(&urls),
                    finished: a
                        .task_types
                        .iter()
                        .map(|t| {
                            ["success", "failed"]
                                .map(|s| finished.with_label_values(&[v, n, t.as_str(), s]))
                        })
                        .collect(),
                    oldest: per_type(&oldest),
                    older_than: a
                        .task_types
                        .iter()
                        .map(|t| {
                            metrics::UNFINISHED_AGES.map(|age| {
                                older.with_label_values(&[v, n, t.as_str(), &age.to_string()])
                            })
                        })
                        .collect(),
                    completion: per_type(&completion),
                    success: per_type(&success),
                    task_age: per_type(&task_age),
                    task_last: per_type(&task_last),
                    quota: a
                        .snapshot()
                        .quotas
                        .iter()
                        .map(|q| {
                            let l = [v, n, q.task_type.as_str()];
                            (
                                q.task_type,
                                (
                                    quota_limit.with_label_values(&l),
                                    quota_remaining.with_label_values(&l),
                                ),
                            )
                        })
                        .collect(),
                    up: up.with_label_values(&[v, n]),
                    last_success: last_success.with_label_values(&[v, n]),
                    data_age: data_age.with_label_values(&[v, n]),
                    requests: a
                        .api_names
                        .iter()
                        .map(|api| {
                            Outcome::ALL
                                .map(|o| requests.with_label_values(&[v, n, api, o.as_str()]))
                        })
                        .collect(),
                    skipped: SkipReason::ALL
                        .map(|s| skipped.with_label_values(&[v, n, s.as_str()])),
                    scrape: scrape.with_label_values(&[v, n]),
                    cache: cache.with_label_values(&[v, n]),
                    dropped: dropped.with_label_values(&[v, n]),
                });
            }
            for (name, series) in [
                ("cdn_task_duration_seconds", durations),
                ("cdn_vendor_api_request_duration_seconds", latency),
            ] {
                let f = FAMILIES.iter().find(|f| f.name == name).unwrap();
                let desc = Desc::new(
                    name.into(),
                    f.help.into(),
                    f.labels.iter().map(|l| l.to_string()).collect(),
                    HashMap::new(),
                )
                .unwrap();
                r.register(Box::new(Histograms {
                    desc,
                    name,
                    help: f.help,
                    series,
                }))
                .unwrap();
            }
            Exporter {
                registry: r,
                handles,
            }
        }

        /// Sets every value from the collector, as a scrape would.
        pub fn update(&self, c: &Collector, now: i64) {
            for (a, h) in c.accounts().iter().zip(&self.handles) {
                let s = a.snapshot();
                for (i, t) in a.task_types.iter().enumerate() {
                    let ti = t.index();
                    for st in TaskStatus::ALL {
                        h.tasks[i][st.index()].set(s.aggregates.tasks[ti][st.index()] as f64);
                        h.urls[i][st.index()].set(s.aggregates.urls[ti][st.index()] as f64);
                    }
                    set(&h.finished[i][0], s.finished[ti][0] as f64);
                    set(&h.finished[i][1], s.finished[ti][1] as f64);
                    h.oldest[i].set(
                        s.aggregates.oldest_unfinished[ti].map_or(0, |c| (now - c).max(0)) as f64,
                    );
                    for (k, age) in metrics::UNFINISHED_AGES.iter().enumerate() {
                        h.older_than[i][k]
                            .set(s.aggregates.pending_running_before(ti, now - age) as f64);
                    }
                    let row = &s.aggregates.tasks[ti];
                    let total: u64 = row.iter().sum();
                    h.completion[i].set(if total == 0 {
                        f64::NAN
                    } else {
                        s.aggregates.completion[ti] / total as f64
                    });
                    let (ok, failed) = (
                        row[TaskStatus::Success.index()],
                        row[TaskStatus::Failed.index()],
                    );
                    h.success[i].set(if ok + failed == 0 {
                        f64::NAN
                    } else {
                        ok as f64 / (ok + failed) as f64
                    });
                    let since = s
                        .type_last_success
                        .iter()
                        .find(|(x, _)| x == t)
                        .and_then(|(_, v)| *v);
                    h.task_age[i].set(age(now, since, c.started));
                    h.task_last[i].set(since.unwrap_or(0).max(0) as f64);
                }
                for q in &s.quotas {
                    if let Some((l, r)) = h.quota.get(&q.task_type) {
                        l.set(q.limit);
                        r.set(q.remaining);
                    }
                }
                h.up.set(f64::from(u8::from(s.up)));
                h.last_success
                    .set(s.last_success.unwrap_or(0).max(0) as f64);
                h.data_age.set(a.data_age(now, c.started));
                for (api, r) in h.requests.iter().enumerate() {
                    for o in Outcome::ALL {
                        set(&r[o.index()], a.stats.get(api, o) as f64);
                    }
                }
                for r in SkipReason::ALL {
                    let n = a.stats.skipped[r as usize].load(std::sync::atomic::Ordering::Relaxed);
                    set(&h.skipped[r as usize], n as f64);
                }
                h.scrape.set(a.stats.scrape_seconds.get());
                h.cache.set(s.cache_tasks as f64);
                set(&h.dropped, s.cache_dropped as f64);
            }
        }

        /// gather + TextEncoder, as the crate's users serve /metrics.
        pub fn encode(&self) -> String {
            let mut buf = Vec::with_capacity(16 << 20);
            TextEncoder::new()
                .encode(&self.registry.gather(), &mut buf)
                .unwrap();
            String::from_utf8(buf).unwrap()
        }
    }

    /// series (name + sorted labels) → value, `process_*` and build info left out.
    fn series(text: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            if line.starts_with("process_") || NOT_MODELLED.iter().any(|f| line.starts_with(f)) {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
            let mut labels: Vec<&str> = labels
                .trim_end_matches('}')
                .split("\",")
                .map(|l| l.trim_end_matches('"'))
                .collect();
            labels.sort();
            let value: f64 = value.parse().unwrap();
            let value = if value.is_nan() {
                "NaN".to_string()
            } else {
                value.to_string()
            };
            out.insert(format!("{name}{{{}}}", labels.join(",")), value);
        }
        out
    }

    /// Families the crate side does not build (added after it was written:
    /// the HTTP server's process-wide counters, the reload and shard
    /// gauges, the details store's evictions, the warm-up backlog; a few
    /// series per account), left out of the comparison.
    const NOT_MODELLED: [&str; 6] = [
        "cdn_exporter_build_info",
        "cdn_exporter_config_last_reload_",
        "cdn_exporter_http_",
        "cdn_exporter_shard_accounts",
        "cdn_task_backlog_",
        "cdn_task_details_evicted_total",
    ];

    /// Both renderers wrote the same series with the same values.
    pub fn assert_same_series(ours: &str, theirs: &str) {
        let (a, b) = (series(ours), series(theirs));
        if let Some((k, v)) = a.iter().find(|(k, v)| b.get(*k) != Some(v)) {
            panic!(
                "prometheus crate differs: {k} = {v} here, {:?} there",
                b.get(k)
            );
        }
        assert_eq!(a.len(), b.len(), "series count");
        assert!(a.len() > 100_000);
        let types = |t: &str| {
            let mut v: Vec<String> = t
                .lines()
                .filter(|l| {
                    l.starts_with("# TYPE")
                        && !NOT_MODELLED
                            .iter()
                            .any(|f| l["# TYPE ".len()..].starts_with(f))
                })
                .map(str::to_owned)
                .collect();
            v.sort();
            v
        };
        assert_eq!(types(ours), types(theirs), "families and their types");
        println!(
            "  same {} series in both (process_* and NOT_MODELLED aside)",
            a.len()
        );
        let _ = metrics::CONTENT_TYPE;
    }
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
        urls: Vec::new(),
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

/// Bytes and CPU per scrape, plain and gzip (issue 19), at `accounts`
/// accounts: the server's renderer in steady state, typical (a quarter
/// changed) and worst case (every account changed: every cached member is
/// compressed again); then the whole text through `GzEncoder` at a few
/// levels, for the choice of level.
fn gzip_bench(rt: &tokio::runtime::Runtime, accounts: usize) {
    use flate2::write::GzEncoder;
    use std::io::Write;
    let renders = if accounts > 100 { 40 } else { 400 };
    let c = rt.block_on(bench_collector(accounts));
    let clock = SystemClock;
    use cdn_task_exporter::clock::Clock;
    let renderer = metrics::Renderer::new();
    let plain = renderer.render(&c, clock.unix());
    let gz = renderer.render_gzip(&c, clock.unix());
    println!(
        "gzip: {accounts} accounts: plain {} bytes, gzip {} bytes (level {}, {:.1}x smaller)",
        plain.len(),
        gz.len(),
        metrics::GZIP_LEVEL,
        plain.len() as f64 / gz.len() as f64
    );
    let cpu = || metrics::cpu_seconds().unwrap_or(0.0);
    // `refresh(i)` stands for the refreshes completed since the last
    // scrape, their rendering included (`prerender`: the refresh task's
    // work, excluded from the scrape's CPU); `render_in_scrape` makes the
    // scrape render them instead.
    let measure = |what: &str,
                   refresh: &dyn Fn(usize, bool),
                   render_in_scrape: bool,
                   gzip: bool| {
        let mut scrape_cpu = 0.0;
        let mut bytes = 0;
        let mut pieces = 0;
        let mut times = Vec::new();
        for i in 0..renders {
            refresh(i, !render_in_scrape);
            let (t, c0) = (Instant::now(), cpu());
            let body = if gzip {
                renderer.exposition_gzip(&c, clock.unix())
            } else {
                renderer.exposition(&c, clock.unix())
            };
            (bytes, pieces) = (body.len(), body.pieces());
            std::hint::black_box(body);
            scrape_cpu += cpu() - c0;
            times.push(t.elapsed());
        }
        let per = scrape_cpu / renders as f64 * 1e3;
        let mut sorted = times;
        sorted.sort();
        println!(
            "  {what}, {}: {bytes} bytes in {pieces} pieces, p50 {:.2} ms, p99 {:.2} ms, CPU {per:.2} ms per scrape",
            if gzip { "gzip" } else { "plain" },
            percentile(&sorted, 0.5).as_secs_f64() * 1e3,
            percentile(&sorted, 0.99).as_secs_f64() * 1e3,
        );
    };
    let list: Vec<_> = c.accounts().iter().cloned().collect();
    let none = |_: usize, _: bool| {};
    let touch = |a: &Arc<cdn_task_exporter::collector::Account>, prerender: bool| {
        a.stats.touch();
        if prerender {
            renderer.prerender(a);
        }
    };
    let quarter = |i: usize, pre: bool| {
        list.iter()
            .skip(i % 4)
            .step_by(4)
            .for_each(|a| touch(a, pre))
    };
    let all = |_: usize, pre: bool| list.iter().for_each(|a| touch(a, pre));
    for gzip in [false, true] {
        renderer.render_gzip(&c, clock.unix());
        measure("steady state", &none, false, gzip);
        measure(
            "typical (a quarter refreshed, rendered at refresh time)",
            &quarter,
            false,
            gzip,
        );
        measure(
            "worst case (every account refreshed, rendered at refresh time)",
            &all,
            false,
            gzip,
        );
        measure("typical, rendered by the scrape", &quarter, true, gzip);
        measure("worst case, rendered by the scrape", &all, true, gzip);
    }
    // The refresh-time cost per account, gzip members included (made there
    // once gzip scrapes are seen).
    let t = cpu();
    for _ in 0..4 {
        all(0, true);
    }
    println!(
        "  rendered at refresh time (text and gzip members): CPU {:.1} µs per account refresh",
        (cpu() - t) / (4 * list.len()) as f64 * 1e6
    );
    for level in [1, 3, 6] {
        let t = Instant::now();
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        e.write_all(plain.as_bytes()).unwrap();
        let out = e.finish().unwrap();
        println!(
            "  whole text as one member, level {level}: {} bytes, {:.1} ms",
            out.len(),
            t.elapsed().as_secs_f64() * 1e3
        );
    }
}

/// A whole scrape over HTTP on loopback, through the server and handler
/// as `serve` wires them (accounts rendered at refresh time), at 1,000
/// accounts: latency to the last body byte, and the server's CPU per
/// scrape (process CPU less the client thread's, which reads the body and,
/// in the worst case, stands for the refresh tasks' rendering).
fn http_bench(rt: &tokio::runtime::Runtime, accounts: usize) {
    use cdn_task_exporter::server;
    use std::io::{BufRead, BufReader, Read, Write};
    let c = Arc::new(rt.block_on(bench_collector(accounts)));
    let state = app::AppState::new(
        Arc::clone(&c),
        Duration::from_secs(10),
        Duration::from_millis(500),
    );
    let renderer = Arc::clone(&state.renderer);
    let addr = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = app::router(state);
        tokio::spawn(server::serve(
            listener,
            None,
            router,
            server::Limits::default(),
            std::future::pending(),
        ));
        addr
    });
    let thread_cpu = || {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
    };
    let cpu = || metrics::cpu_seconds().unwrap_or(0.0);
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    let mut reader = BufReader::with_capacity(1 << 20, tcp.try_clone().unwrap());
    let mut writer = tcp;
    let mut get = |gzip: bool| -> usize {
        let enc = if gzip {
            "Accept-Encoding: gzip\r\n"
        } else {
            ""
        };
        write!(writer, "GET /metrics HTTP/1.1\r\nHost: bench\r\n{enc}\r\n").unwrap();
        let mut len = None;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse::<u64>().ok();
            }
        }
        let len = len.expect("a Content-Length");
        std::io::copy(&mut (&mut reader).take(len), &mut std::io::sink()).unwrap() as usize
    };
    let renders = 40;
    for gzip in [false, true] {
        for worst in [false, true] {
            get(gzip);
            let mut times = Vec::new();
            let (mut server_cpu, mut bytes) = (0.0, 0);
            for _ in 0..renders {
                if worst {
                    for a in c.accounts().iter() {
                        a.stats.touch();
                        renderer.prerender(a);
                    }
                }
                let (t, p0, c0) = (Instant::now(), cpu(), thread_cpu());
                bytes = get(gzip);
                times.push(t.elapsed());
                server_cpu += (cpu() - p0) - (thread_cpu() - c0);
            }
            times.sort();
            println!(
                "  HTTP scrape, {}, {}: {bytes} bytes, p50 {:.2} ms, p99 {:.2} ms, server CPU {:.2} ms per scrape",
                if gzip { "gzip" } else { "plain" },
                if worst { "worst case (every account refreshed, rendered at refresh time)" } else { "steady state" },
                percentile(&times, 0.5).as_secs_f64() * 1e3,
                percentile(&times, 0.99).as_secs_f64() * 1e3,
                server_cpu / renders as f64 * 1e3,
            );
        }
    }
}

/// Scrape latency with a hanging vendor and warm data: `/metrics` as it
/// answers now (`Collector::scrape`) against waiting for the refresh as
/// before issue 19 (`Collector::collect`, the old handler), with the
/// default 9.5 s deadline (10 s scrape timeout − 0.5 s margin). Real time.
fn hanging_vendor_bench(rt: &tokio::runtime::Runtime) {
    use cdn_task_exporter::sim::Fault;
    rt.block_on(async {
        let clock: SharedClock = Arc::new(SystemClock);
        let world = World::new(clock.clone());
        world.with_traffic(Default::default(), Duration::from_secs(3600));
        world.freeze();
        let sim = TestingSim::new(world, "tok");
        let yaml = "accounts:\n  - name: slow\n    vendor: testing\n    credentials: { id: slow, secret: tok }\n    min_refresh_interval: 1s\n    request_timeout: 30s\n";
        let cfg = config::parse(yaml, "bench.yml", &|_| None, &|_| Err(String::new())).unwrap();
        let c = app::collector(&cfg, Arc::new(RouterTransport::new(sim.clone().router())), clock.clone());
        let renderer = metrics::Renderer::new();
        let deadline = || tokio::time::Instant::now() + Duration::from_millis(9_500);
        c.collect(deadline()).await;
        sim.control.set_fault(Fault::Hang);
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let mut now = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            c.scrape(deadline()).await;
            std::hint::black_box(renderer.render(&c, clock.unix()));
            now.push(t.elapsed());
        }
        let t = Instant::now();
        c.collect(deadline()).await;
        std::hint::black_box(renderer.render(&c, clock.unix()));
        let before = t.elapsed();
        now.sort();
        println!(
            "hanging vendor, warm account: scrape p50 {:.3} ms, max {:.3} ms ({} scrapes); before (waiting for the refresh): {:.2} s",
            percentile(&now, 0.5).as_secs_f64() * 1e3,
            now.last().unwrap().as_secs_f64() * 1e3,
            now.len(),
            before.as_secs_f64()
        );
    });
}

fn main() {
    // `cargo bench` passes --bench; `cargo bench --bench render -- gzip`
    // (or `hang`, `render`, `memory`, `http`) runs only that part.
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let run = |p: &str| parts.is_empty() || parts.iter().any(|a| a == p);
    if run("memory") {
        memory_bench();
    }
    if run("render") {
        render_bench();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if run("gzip") {
        gzip_bench(&rt, 4);
        gzip_bench(&rt, 1_000);
    }
    if run("http") {
        http_bench(&rt, 1_000);
    }
    if run("hang") {
        hanging_vendor_bench(&rt);
    }
    println!("process RSS at exit: {} MiB", rss_kib() / 1024);
}
