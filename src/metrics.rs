//! Renders `/metrics` from the collector's snapshots.
//!
//! The per-account families are written by hand rather than through the
//! `prometheus` crate's registry: at 1,000 accounts that is ~150,000 series,
//! and building protobuf families for each scrape costs far more than the
//! 10 ms render budget. Label prefixes are pre-escaped once per account.
//! The `prometheus` crate still provides the process metrics.
//!
//! Vanishing series: every configured account × watched task type × status
//! (and every API × outcome) is always written, at 0 when empty, so
//! `increase()` and absent-based alerts behave.

use crate::api::Outcome;
use crate::collector::stats::{Histogram, SkipReason};
use crate::collector::{Account, Collector, Snapshot};
use crate::task::{TaskStatus, TaskType};
use std::fmt::Write;
use std::sync::{Arc, Mutex};

/// The exposition format we write.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const CACHED: &str = "Cached: refreshed from the vendor API at most every min_refresh_interval and within the rate budget; cdn_vendor_data_age_seconds says how old.";

/// Escapes a label value per the text format.
pub fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// `vendor="…",account="…"`, escaped.
pub fn account_labels(a: &Account) -> String {
    format!(
        "vendor=\"{}\",account=\"{}\"",
        a.kind.as_str(),
        escape_label(&a.name)
    )
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        out.push_str(itoa::Buffer::new().format(v as i64));
    } else {
        out.push_str(ryu::Buffer::new().format_finite(v));
    }
}

/// One sample line `name{labels[,extra]} value`, without `format!`: at
/// 150,000 lines per scrape the formatting machinery is the render cost.
fn line(out: &mut String, name: &str, labels: &str, extra: &str, value: u64) {
    out.push_str(name);
    out.push('{');
    out.push_str(labels);
    out.push_str(extra);
    out.push_str("} ");
    out.push_str(itoa::Buffer::new().format(value));
    out.push('\n');
}

/// As [`line`], for a float value.
fn line_f(out: &mut String, name: &str, labels: &str, extra: &str, value: f64) {
    out.push_str(name);
    out.push('{');
    out.push_str(labels);
    out.push_str(extra);
    out.push_str("} ");
    float(out, value);
    out.push('\n');
}

/// `,status="…"` for each status, in index order.
const STATUS_LABELS: [&str; 5] = [
    ",status=\"pending\"",
    ",status=\"running\"",
    ",status=\"success\"",
    ",status=\"failed\"",
    ",status=\"unknown\"",
];

/// `,outcome="…"` for each outcome, in index order.
const OUTCOME_LABELS: [&str; 8] = [
    ",outcome=\"ok\"",
    ",outcome=\"throttled\"",
    ",outcome=\"auth_error\"",
    ",outcome=\"client_error\"",
    ",outcome=\"server_error\"",
    ",outcome=\"timeout\"",
    ",outcome=\"network\"",
    ",outcome=\"parse_error\"",
];

/// Pre-escaped label sets of one account, built once per scrape.
struct Labels {
    /// `vendor="…",account="…"`
    account: String,
    /// `vendor="…",account="…",task_type="…"` per watched type.
    by_type: Vec<(TaskType, String)>,
    /// `vendor="…",account="…",api="…"` per API.
    by_api: Vec<String>,
}

impl Labels {
    fn new(a: &Account) -> Self {
        let account = account_labels(a);
        Labels {
            by_type: a
                .task_types
                .iter()
                .map(|t| (*t, format!("{account},task_type=\"{t}\"")))
                .collect(),
            by_api: a
                .api_names
                .iter()
                .map(|api| format!("{account},api=\"{api}\""))
                .collect(),
            account,
        }
    }
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let (buckets, count, sum) = h.snapshot();
    let bucket = format!("{name}_bucket");
    for (le, c) in buckets {
        out.push_str(&bucket);
        out.push('{');
        out.push_str(labels);
        out.push_str(",le=\"");
        float(out, le);
        out.push_str("\"} ");
        out.push_str(itoa::Buffer::new().format(c));
        out.push('\n');
    }
    line(out, &bucket, labels, ",le=\"+Inf\"", count);
    line_f(out, &format!("{name}_sum"), labels, "", sum);
    line(out, &format!("{name}_count"), labels, "", count);
}

/// Families rendered per account and cached until the account changes.
#[derive(Clone, Copy)]
enum Cached {
    Tasks,
    Urls,
    Finished,
    Completion,
    Success,
    QuotaLimit,
    QuotaRemaining,
    Up,
    LastSuccess,
    Requests,
    Latency,
    CacheTasks,
    CacheDropped,
}

const CACHED_FAMILIES: usize = 13;

/// The ages `cdn_tasks_unfinished_older_than` reports, in seconds: the
/// thresholds a stuck-task alert can choose from (15m … 1d).
pub const UNFINISHED_AGES: [(i64, &str); 5] = [
    (900, ",older_than=\"900\""),
    (1_800, ",older_than=\"1800\""),
    (3_600, ",older_than=\"3600\""),
    (21_600, ",older_than=\"21600\""),
    (86_400, ",older_than=\"86400\""),
];

/// `cdn_tasks_unfinished_older_than`: pending or running tasks created more
/// than `older_than` seconds ago. Time-dependent, so never cached.
fn unfinished_older_than(
    out: &mut String,
    c: &Collector,
    accounts: &[(Labels, Arc<[String; CACHED_FAMILIES]>)],
    now: i64,
) {
    const NAME: &str = "cdn_tasks_unfinished_older_than";
    header(
        out,
        NAME,
        "gauge",
        &format!("Tasks still pending or running (not unknown) created more than older_than seconds ago. {CACHED}"),
    );
    for (a, (l, _)) in c.accounts.iter().zip(accounts) {
        let s = a.snapshot();
        for (t, lt) in &l.by_type {
            for (age, extra) in UNFINISHED_AGES {
                let n = s.aggregates.pending_running_before(t.index(), now - age);
                line(out, NAME, lt, extra, n as u64);
            }
        }
    }
}

/// One account's cached families, rendered at `generation`.
type Block = (u64, Arc<[String; CACHED_FAMILIES]>);

/// Renders `/metrics`, reusing each account's rendered families while the
/// account is unchanged: most accounts are served from cache on most
/// scrapes, and their text is the same until they refresh.
#[derive(Default)]
pub struct Renderer {
    blocks: Mutex<Vec<Option<Block>>>,
}

impl Renderer {
    /// An empty renderer.
    pub fn new() -> Self {
        Renderer::default()
    }

    fn blocks(&self, c: &Collector) -> Vec<(Labels, Arc<[String; CACHED_FAMILIES]>)> {
        let mut cache = self.blocks.lock().unwrap_or_else(|p| p.into_inner());
        cache.resize(c.accounts.len(), None);
        c.accounts
            .iter()
            .zip(cache.iter_mut())
            .map(|(a, slot)| {
                let labels = Labels::new(a);
                // Read the generation before the data: a change during
                // rendering makes the next scrape render again.
                let generation = a.stats.generation();
                let block = match slot {
                    Some((g, b)) if *g == generation => b.clone(),
                    _ => {
                        let b = Arc::new(render_account(a, &labels, &a.snapshot()));
                        *slot = Some((generation, b.clone()));
                        b
                    }
                };
                (labels, block)
            })
            .collect()
    }

    /// Renders every family. `now` is Unix seconds.
    pub fn render(&self, c: &Collector, now: i64) -> String {
        let accounts = self.blocks(c);
        let size: usize = accounts
            .iter()
            .map(|(_, b)| b.iter().map(String::len).sum::<usize>())
            .sum();
        let mut out = String::with_capacity(size + accounts.len() * 600 + 16_384);
        let cached = |out: &mut String, f: Cached| {
            let (name, kind, help) = FAMILIES[f as usize];
            header(out, name, kind, help);
            for (_, b) in &accounts {
                out.push_str(&b[f as usize]);
            }
        };
        cached(&mut out, Cached::Tasks);
        cached(&mut out, Cached::Urls);
        cached(&mut out, Cached::Finished);
        header(&mut out, "cdn_task_duration_seconds", "histogram", "Create-to-finish time of tasks counted by cdn_tasks_finished_total, observed once per task.");
        for (k, t, h) in c.durations.iter() {
            histogram(
                &mut out,
                "cdn_task_duration_seconds",
                &format!("vendor=\"{k}\",task_type=\"{t}\""),
                h,
            );
        }
        header(
            &mut out,
            "cdn_task_oldest_unfinished_age_seconds",
            "gauge",
            &format!(
                "Age of the oldest task still pending, running or unknown; 0 when none. {CACHED}"
            ),
        );
        for (a, (l, _)) in c.accounts.iter().zip(&accounts) {
            let s = a.snapshot();
            for (t, lt) in &l.by_type {
                let age = s.aggregates.oldest_unfinished[t.index()]
                    .map(|c| (now - c).max(0))
                    .unwrap_or(0);
                line(
                    &mut out,
                    "cdn_task_oldest_unfinished_age_seconds",
                    lt,
                    "",
                    age as u64,
                );
            }
        }
        unfinished_older_than(&mut out, c, &accounts, now);
        cached(&mut out, Cached::Completion);
        cached(&mut out, Cached::Success);
        cached(&mut out, Cached::QuotaLimit);
        cached(&mut out, Cached::QuotaRemaining);
        cached(&mut out, Cached::Up);
        cached(&mut out, Cached::LastSuccess);
        header(&mut out, "cdn_vendor_data_age_seconds", "gauge", "Seconds since the oldest data the account serves was fresh: the worst of cdn_task_data_age_seconds (since exporter start before the first refresh).");
        for (a, (l, _)) in c.accounts.iter().zip(&accounts) {
            line_f(
                &mut out,
                "cdn_vendor_data_age_seconds",
                &l.account,
                "",
                a.data_age(now, c.started),
            );
        }
        header(&mut out, "cdn_task_data_age_seconds", "gauge", "Seconds since the data of this task type was fresh: the start of the last failure-free refresh that listed its streams up to then and re-checked its unfinished tasks (since exporter start before that).");
        for (a, (l, _)) in c.accounts.iter().zip(&accounts) {
            let s = a.snapshot();
            for (t, lt) in &l.by_type {
                let since = s
                    .type_last_success
                    .iter()
                    .find(|(x, _)| x == t)
                    .and_then(|(_, v)| *v);
                line_f(
                    &mut out,
                    "cdn_task_data_age_seconds",
                    lt,
                    "",
                    crate::collector::age(now, since, c.started),
                );
            }
        }
        header(&mut out, "cdn_task_last_success_timestamp_seconds", "gauge", "Unix time the data of this task type was last fresh (see cdn_task_data_age_seconds); 0 before that.");
        for (a, (l, _)) in c.accounts.iter().zip(&accounts) {
            let s = a.snapshot();
            for (t, lt) in &l.by_type {
                let since = s
                    .type_last_success
                    .iter()
                    .find(|(x, _)| x == t)
                    .and_then(|(_, v)| *v);
                line(
                    &mut out,
                    "cdn_task_last_success_timestamp_seconds",
                    lt,
                    "",
                    since.unwrap_or(0).max(0) as u64,
                );
            }
        }
        cached(&mut out, Cached::Requests);
        cached(&mut out, Cached::Latency);
        header(&mut out, "cdn_vendor_refresh_skipped_total", "counter", "Scrapes that served an account from cache without refreshing: data still fresh, or no rate budget left.");
        for (a, (l, _)) in c.accounts.iter().zip(&accounts) {
            for r in [SkipReason::Fresh, SkipReason::Budget] {
                let n = a.stats.skipped[r as usize].load(std::sync::atomic::Ordering::Relaxed);
                let extra = if r == SkipReason::Fresh {
                    ",reason=\"fresh\""
                } else {
                    ",reason=\"budget\""
                };
                line(
                    &mut out,
                    "cdn_vendor_refresh_skipped_total",
                    &l.account,
                    extra,
                    n,
                );
            }
        }
        header(
            &mut out,
            "cdn_vendor_scrape_duration_seconds",
            "gauge",
            "Seconds the last scrape waited for this account's refresh; 0 when served from cache.",
        );
        for (a, (l, _)) in c.accounts.iter().zip(&accounts) {
            line_f(
                &mut out,
                "cdn_vendor_scrape_duration_seconds",
                &l.account,
                "",
                a.stats.scrape_seconds.get(),
            );
        }
        cached(&mut out, Cached::CacheTasks);
        cached(&mut out, Cached::CacheDropped);
        header(
            &mut out,
            "cdn_exporter_build_info",
            "gauge",
            "Build of the running exporter; always 1.",
        );
        let _ = writeln!(
            out,
            "cdn_exporter_build_info{{version=\"{}\",revision=\"{}\",rustc=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION"),
            env!("CDN_EXPORTER_REVISION"),
            env!("CDN_EXPORTER_RUSTC")
        );
        crate::server::render_metrics(&mut out);
        process_metrics(&mut out);
        out
    }
}

/// Renders every family without reusing anything (tests, one-off dumps).
pub fn render(c: &Collector, now: i64) -> String {
    Renderer::new().render(c, now)
}

/// (name, type, help) of each [`Cached`] family, in its order.
const FAMILIES: [(&str, &str, &str); CACHED_FAMILIES] = [
    ("cdn_tasks", "gauge", "Tasks created within the lookback window, by current status. Cached: refreshed from the vendor API at most every min_refresh_interval and within the rate budget; cdn_vendor_data_age_seconds says how old."),
    ("cdn_task_urls", "gauge", "URLs in the tasks counted by cdn_tasks. Cached: refreshed from the vendor API at most every min_refresh_interval and within the rate budget; cdn_vendor_data_age_seconds says how old."),
    ("cdn_tasks_finished_total", "counter", "Tasks seen finished for the first time, by final status. Tasks already finished when the exporter first synced an account are a baseline and not counted."),
    ("cdn_task_completion_ratio", "gauge", "Finished share of the tasks in the window, crediting vendor-reported progress of unfinished ones; NaN when there are none. Cached: refreshed from the vendor API at most every min_refresh_interval and within the rate budget; cdn_vendor_data_age_seconds says how old."),
    ("cdn_task_success_ratio", "gauge", "Successful share of the finished tasks in the window; NaN when none finished. Cached: refreshed from the vendor API at most every min_refresh_interval and within the rate budget; cdn_vendor_data_age_seconds says how old."),
    ("cdn_quota_limit", "gauge", "Daily task quota the vendor grants, where it reports one. Cached: refreshed from the vendor API at most every quota_interval; cdn_vendor_data_age_seconds says how old."),
    ("cdn_quota_remaining", "gauge", "Daily task quota left, where the vendor reports it. Cached: refreshed from the vendor API at most every quota_interval; cdn_vendor_data_age_seconds says how old."),
    ("cdn_vendor_up", "gauge", "1 if the last refresh of the account reached the vendor and every answer was usable (throttling leaves it unchanged)."),
    ("cdn_vendor_last_success_timestamp_seconds", "gauge", "Unix time the oldest data the account serves was fresh: the earliest of cdn_task_last_success_timestamp_seconds; 0 before every task type has been fresh once."),
    ("cdn_vendor_api_requests_total", "counter", "Requests sent to the vendor API, by API and outcome."),
    ("cdn_vendor_api_request_duration_seconds", "histogram", "Duration of vendor API requests, body included."),
    ("cdn_cache_tasks", "gauge", "Tasks held in the account's cache."),
    ("cdn_cache_tasks_dropped_total", "counter", "Tasks evicted because the account's cache hit max_tasks."),
];

/// The cached families of one account.
fn render_account(a: &Account, l: &Labels, s: &Snapshot) -> [String; CACHED_FAMILIES] {
    // Sized up front from the line counts: growing 13 strings by doubling
    // costs more than writing them.
    let per_line = l.account.len() + 60;
    let (types, apis) = (l.by_type.len(), l.by_api.len());
    let lines = [
        types * 5,
        types * 5,
        types * 2,
        types,
        types,
        s.quotas.len(),
        s.quotas.len(),
        1,
        1,
        apis * 8,
        apis * 12,
        1,
        1,
    ];
    let mut f: [String; CACHED_FAMILIES] =
        std::array::from_fn(|i| String::with_capacity(lines[i] * per_line));
    for (t, lt) in &l.by_type {
        let ti = t.index();
        for (st, sl) in STATUS_LABELS.iter().enumerate() {
            line(
                &mut f[Cached::Tasks as usize],
                "cdn_tasks",
                lt,
                sl,
                s.aggregates.tasks[ti][st],
            );
            line(
                &mut f[Cached::Urls as usize],
                "cdn_task_urls",
                lt,
                sl,
                s.aggregates.urls[ti][st],
            );
        }
        let fin = &mut f[Cached::Finished as usize];
        line(
            fin,
            "cdn_tasks_finished_total",
            lt,
            STATUS_LABELS[TaskStatus::Success.index()],
            s.finished[ti][0],
        );
        line(
            fin,
            "cdn_tasks_finished_total",
            lt,
            STATUS_LABELS[TaskStatus::Failed.index()],
            s.finished[ti][1],
        );
        let row = &s.aggregates.tasks[ti];
        let total: u64 = row.iter().sum();
        let completion = if total == 0 {
            f64::NAN
        } else {
            s.aggregates.completion[ti] / total as f64
        };
        line_f(
            &mut f[Cached::Completion as usize],
            "cdn_task_completion_ratio",
            lt,
            "",
            completion,
        );
        let (ok, failed) = (
            row[TaskStatus::Success.index()],
            row[TaskStatus::Failed.index()],
        );
        let success = if ok + failed == 0 {
            f64::NAN
        } else {
            ok as f64 / (ok + failed) as f64
        };
        line_f(
            &mut f[Cached::Success as usize],
            "cdn_task_success_ratio",
            lt,
            "",
            success,
        );
    }
    for q in &s.quotas {
        let extra = format!(",task_type=\"{}\"", q.task_type);
        line_f(
            &mut f[Cached::QuotaLimit as usize],
            "cdn_quota_limit",
            &l.account,
            &extra,
            q.limit,
        );
        line_f(
            &mut f[Cached::QuotaRemaining as usize],
            "cdn_quota_remaining",
            &l.account,
            &extra,
            q.remaining,
        );
    }
    line(
        &mut f[Cached::Up as usize],
        "cdn_vendor_up",
        &l.account,
        "",
        u64::from(s.up),
    );
    line(
        &mut f[Cached::LastSuccess as usize],
        "cdn_vendor_last_success_timestamp_seconds",
        &l.account,
        "",
        s.last_success.unwrap_or(0).max(0) as u64,
    );
    for (i, la) in l.by_api.iter().enumerate() {
        for (o, ol) in Outcome::ALL.iter().zip(OUTCOME_LABELS) {
            line(
                &mut f[Cached::Requests as usize],
                "cdn_vendor_api_requests_total",
                la,
                ol,
                a.stats.get(i, *o),
            );
        }
        histogram(
            &mut f[Cached::Latency as usize],
            "cdn_vendor_api_request_duration_seconds",
            la,
            &a.stats.latency[i],
        );
    }
    line(
        &mut f[Cached::CacheTasks as usize],
        "cdn_cache_tasks",
        &l.account,
        "",
        s.cache_tasks as u64,
    );
    line(
        &mut f[Cached::CacheDropped as usize],
        "cdn_cache_tasks_dropped_total",
        &l.account,
        "",
        s.cache_dropped,
    );
    f
}

/// The standard `process_*` families, from the `prometheus` crate.
fn process_metrics(out: &mut String) {
    use prometheus::Encoder;
    #[cfg(target_os = "linux")]
    {
        let registry = prometheus::Registry::new();
        if registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .is_ok()
        {
            let mut buf = Vec::new();
            if prometheus::TextEncoder::new()
                .encode(&registry.gather(), &mut buf)
                .is_ok()
            {
                out.push_str(&String::from_utf8_lossy(&buf));
            }
        }
    }
    let _ = prometheus::TextEncoder::new().format_type();
}

/// The task types of `a` (used by the landing page).
pub fn watched(a: &Account) -> String {
    a.task_types
        .iter()
        .map(|t: &TaskType| t.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
