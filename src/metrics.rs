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

use crate::collector::stats::Histogram;
use crate::collector::{Account, Collector};
use crate::task::{TaskStatus, TaskType};
use crate::vendors::Outcome;
use std::fmt::Write;

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
    } else {
        let _ = write!(out, "{v}");
    }
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let (buckets, count, sum) = h.snapshot();
    for (le, c) in buckets {
        let _ = write!(out, "{name}_bucket{{{labels},le=\"");
        float(out, le);
        let _ = writeln!(out, "\"}} {c}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
    let _ = write!(out, "{name}_sum{{{labels}}} ");
    float(out, sum);
    out.push('\n');
    let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
}

/// Renders every family. `now` is Unix seconds.
pub fn render(c: &Collector, now: i64) -> String {
    let accounts: Vec<_> = c
        .accounts
        .iter()
        .map(|a| (a, account_labels(a), a.snapshot()))
        .collect();
    let series: usize = accounts
        .iter()
        .map(|(a, _, _)| a.task_types.len() * 12 + a.api_names.len() * 20 + 8)
        .sum();
    let mut out = String::with_capacity(series * 90 + 4096);

    header(
        &mut out,
        "cdn_tasks",
        "gauge",
        &format!("Tasks created within the lookback window, by current status. {CACHED}"),
    );
    for (a, l, s) in &accounts {
        for t in &a.task_types {
            for st in TaskStatus::ALL {
                let _ = writeln!(
                    out,
                    "cdn_tasks{{{l},task_type=\"{t}\",status=\"{st}\"}} {}",
                    s.aggregates.tasks[t.index()][st.index()]
                );
            }
        }
    }
    header(
        &mut out,
        "cdn_task_urls",
        "gauge",
        &format!("URLs in the tasks counted by cdn_tasks. {CACHED}"),
    );
    for (a, l, s) in &accounts {
        for t in &a.task_types {
            for st in TaskStatus::ALL {
                let _ = writeln!(
                    out,
                    "cdn_task_urls{{{l},task_type=\"{t}\",status=\"{st}\"}} {}",
                    s.aggregates.urls[t.index()][st.index()]
                );
            }
        }
    }
    header(
        &mut out,
        "cdn_tasks_finished_total",
        "counter",
        "Tasks seen finished for the first time, by final status. Tasks already finished when the exporter first synced an account are a baseline and not counted.",
    );
    for (a, l, s) in &accounts {
        for t in &a.task_types {
            for (i, st) in [TaskStatus::Success, TaskStatus::Failed]
                .into_iter()
                .enumerate()
            {
                let _ = writeln!(
                    out,
                    "cdn_tasks_finished_total{{{l},task_type=\"{t}\",status=\"{st}\"}} {}",
                    s.finished[t.index()][i]
                );
            }
        }
    }
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
        &format!("Age of the oldest task still pending, running or unknown; 0 when none. {CACHED}"),
    );
    for (a, l, s) in &accounts {
        for t in &a.task_types {
            let age = s.aggregates.oldest_unfinished[t.index()]
                .map(|c| (now - c).max(0))
                .unwrap_or(0);
            let _ = writeln!(
                out,
                "cdn_task_oldest_unfinished_age_seconds{{{l},task_type=\"{t}\"}} {age}"
            );
        }
    }
    header(
        &mut out,
        "cdn_task_completion_ratio",
        "gauge",
        &format!("Finished share of the tasks in the window, crediting vendor-reported progress of unfinished ones; NaN when there are none. {CACHED}"),
    );
    for (a, l, s) in &accounts {
        for t in &a.task_types {
            let total: u64 = s.aggregates.tasks[t.index()].iter().sum();
            let _ = write!(out, "cdn_task_completion_ratio{{{l},task_type=\"{t}\"}} ");
            float(
                &mut out,
                if total == 0 {
                    f64::NAN
                } else {
                    s.aggregates.completion[t.index()] / total as f64
                },
            );
            out.push('\n');
        }
    }
    header(&mut out, "cdn_task_success_ratio", "gauge", &format!("Successful share of the finished tasks in the window; NaN when none finished. {CACHED}"));
    for (a, l, s) in &accounts {
        for t in &a.task_types {
            let row = &s.aggregates.tasks[t.index()];
            let (ok, failed) = (
                row[TaskStatus::Success.index()],
                row[TaskStatus::Failed.index()],
            );
            let _ = write!(out, "cdn_task_success_ratio{{{l},task_type=\"{t}\"}} ");
            float(
                &mut out,
                if ok + failed == 0 {
                    f64::NAN
                } else {
                    ok as f64 / (ok + failed) as f64
                },
            );
            out.push('\n');
        }
    }
    for (name, help, pick) in [
        (
            "cdn_quota_limit",
            "Daily task quota the vendor grants, where it reports one.",
            0,
        ),
        (
            "cdn_quota_remaining",
            "Daily task quota left, where the vendor reports it.",
            1,
        ),
    ] {
        header(&mut out, name, "gauge", &format!("{help} {CACHED}"));
        for (_, l, s) in &accounts {
            for q in &s.quotas {
                let _ = write!(out, "{name}{{{l},task_type=\"{}\"}} ", q.task_type);
                float(&mut out, if pick == 0 { q.limit } else { q.remaining });
                out.push('\n');
            }
        }
    }
    header(&mut out, "cdn_vendor_up", "gauge", "1 if the last refresh of the account reached the vendor and every answer was usable (throttling leaves it unchanged).");
    for (_, l, s) in &accounts {
        let _ = writeln!(out, "cdn_vendor_up{{{l}}} {}", u8::from(s.up));
    }
    header(
        &mut out,
        "cdn_vendor_last_success_timestamp_seconds",
        "gauge",
        "Unix time the last fully successful refresh started; 0 before the first.",
    );
    for (_, l, s) in &accounts {
        let _ = writeln!(
            out,
            "cdn_vendor_last_success_timestamp_seconds{{{l}}} {}",
            s.last_success.unwrap_or(0)
        );
    }
    header(&mut out, "cdn_vendor_data_age_seconds", "gauge", "Seconds since the cached data was last fully refreshed (since exporter start before the first refresh).");
    for (a, l, _) in &accounts {
        let _ = writeln!(
            out,
            "cdn_vendor_data_age_seconds{{{l}}} {}",
            a.data_age(now, c.started)
        );
    }
    header(
        &mut out,
        "cdn_vendor_api_requests_total",
        "counter",
        "Requests sent to the vendor API, by API and outcome.",
    );
    for (a, l, _) in &accounts {
        for (i, api) in a.api_names.iter().enumerate() {
            for o in Outcome::ALL {
                let _ = writeln!(
                    out,
                    "cdn_vendor_api_requests_total{{{l},api=\"{api}\",outcome=\"{}\"}} {}",
                    o.as_str(),
                    a.stats.get(i, o)
                );
            }
        }
    }
    header(
        &mut out,
        "cdn_vendor_api_request_duration_seconds",
        "histogram",
        "Duration of vendor API requests, body included.",
    );
    for (a, l, _) in &accounts {
        for (i, api) in a.api_names.iter().enumerate() {
            histogram(
                &mut out,
                "cdn_vendor_api_request_duration_seconds",
                &format!("{l},api=\"{api}\""),
                &a.stats.latency[i],
            );
        }
    }
    header(&mut out, "cdn_vendor_refresh_skipped_total", "counter", "Scrapes that served an account from cache without refreshing: data still fresh, or no rate budget left.");
    for (a, l, _) in &accounts {
        for r in [
            crate::collector::stats::SkipReason::Fresh,
            crate::collector::stats::SkipReason::Budget,
        ] {
            let n = a.stats.skipped[r as usize].load(std::sync::atomic::Ordering::Relaxed);
            let _ = writeln!(
                out,
                "cdn_vendor_refresh_skipped_total{{{l},reason=\"{}\"}} {n}",
                r.as_str()
            );
        }
    }
    header(
        &mut out,
        "cdn_vendor_scrape_duration_seconds",
        "gauge",
        "Seconds the last scrape waited for this account's refresh; 0 when served from cache.",
    );
    for (a, l, _) in &accounts {
        let _ = write!(out, "cdn_vendor_scrape_duration_seconds{{{l}}} ");
        float(&mut out, a.stats.scrape_seconds.get());
        out.push('\n');
    }
    header(
        &mut out,
        "cdn_cache_tasks",
        "gauge",
        "Tasks held in the account's cache.",
    );
    for (_, l, s) in &accounts {
        let _ = writeln!(out, "cdn_cache_tasks{{{l}}} {}", s.cache_tasks);
    }
    header(
        &mut out,
        "cdn_cache_tasks_dropped_total",
        "counter",
        "Tasks evicted because the account's cache hit max_tasks.",
    );
    for (_, l, s) in &accounts {
        let _ = writeln!(
            out,
            "cdn_cache_tasks_dropped_total{{{l}}} {}",
            s.cache_dropped
        );
    }
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
    process_metrics(&mut out);
    out
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
