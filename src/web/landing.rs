//! `GET /`: the overview a person opens first. Opening it counts as a
//! scrape for freshness: refreshes that are due start, and the page answers
//! at once from what is known (it does not wait for them).

use super::{escape, query_value};
use crate::app::AppState;
use crate::collector::details::Set;
use crate::collector::Backlog;
use crate::task::{TaskStatus, TaskType};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use std::fmt::Write as _;

/// `GET /`.
pub async fn page(State(s): State<AppState>) -> impl IntoResponse {
    let c = &s.collector;
    let accounts = c.accounts();
    let mut refreshing = 0;
    for a in accounts.iter() {
        if a.ensure_fresh().is_some() {
            refreshing += 1;
        }
    }
    let now = c.clock.unix();
    let mut rows = String::new();
    for a in accounts.iter() {
        let snap = a.snapshot();
        let state = match (snap.up, snap.last_success) {
            (true, _) => "up",
            (false, None) if snap.last_error.is_none() => "not yet refreshed",
            _ => "down",
        };
        let ages: Vec<String> = snap
            .type_last_success
            .iter()
            .map(|(t, when)| (t, crate::collector::age(now, *when, c.started)))
            .map(|(t, age)| format!("{t} {age:.0}s"))
            .collect();
        let age = crate::collector::age(now, snap.last_success, c.started);
        let per_stream = snap.type_last_success.windows(2).any(|w| w[0].1 != w[1].1);
        let mut by_status = String::new();
        for st in TaskStatus::ALL {
            let n: u64 = snap.aggregates.tasks.iter().map(|r| r[st.index()]).sum();
            if n > 0 {
                let _ = write!(by_status, "{st} {n}, ");
            }
        }
        let by_status = by_status.trim_end_matches(", ");
        let failed: u64 = snap
            .aggregates
            .tasks
            .iter()
            .map(|r| r[TaskStatus::Failed.index()])
            .sum();
        let kept_failed = a.details().len(Set::Failed);
        let failed_link = format!(
            "<a href=\"/tasks?account={}&amp;status=failed\">{failed} failed</a>",
            escape(&query_value(&a.name))
        );
        let warm = warm_up(&snap.backlog, a.settings.lookback.as_secs() as i64);
        let _ = writeln!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&a.name),
            a.kind,
            escape(&crate::metrics::watched(a)),
            state,
            snap.last_error
                .as_deref()
                .map(|e| format!("<br><small>{}</small>", escape(e)))
                .unwrap_or_default(),
            if per_stream {
                escape(&ages.join(", "))
            } else {
                format!("{age:.0}s")
            },
            if by_status.is_empty() { "none" } else { by_status },
            if failed > 0 || kept_failed > 0 {
                failed_link
            } else {
                "0".to_owned()
            },
            snap.cache_tasks,
            warm,
        );
    }
    let note = if refreshing > 0 {
        format!("<p>Refreshing {refreshing} account(s) now; reload in a moment for newer data.</p>")
    } else {
        String::new()
    };
    let p = &c.placement();
    let mut shards = String::new();
    if p.shard.count > 1 {
        let _ = write!(
            shards,
            "<p>Shard {} of {}: this replica polls the {} account(s) above; {} belong to other shards.</p>",
            p.shard.index,
            p.shard.count,
            c.accounts().len(),
            p.unowned.len()
        );
        if !p.unowned.is_empty() {
            shards.push_str(
                "<h2>Accounts other shards poll</h2><table><tr><th>Account</th><th>Owner shard</th></tr>\n",
            );
            for (name, owner) in &p.unowned {
                let _ = writeln!(
                    shards,
                    "<tr><td>{}</td><td>{owner} of {}</td></tr>",
                    escape(name),
                    p.shard.count
                );
            }
            shards.push_str("</table>");
        }
    }
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>CDN task exporter</title>\
         <style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.2em .8em;text-align:left;vertical-align:top}}</style></head><body>\
         <h1>CDN task exporter</h1><p>Version {} ({})</p>\
         <p><a href=\"/tasks\">Tasks</a> · <a href=\"/tasks?status=failed\">Failed tasks</a> · <a href=\"/tasks?status=stuck\">Stuck tasks</a> · \
         <a href=\"/api/v1/tasks\">Tasks (JSON)</a> · <a href=\"/metrics\">Metrics</a> · <a href=\"/-/healthy\">Health</a> · <a href=\"/-/ready\">Readiness</a></p>\
         {note}<h2>Accounts</h2><table><tr><th>Account</th><th>Vendor</th><th>Task types</th><th>State</th><th>Data age</th>\
         <th>Tasks in lookback by status</th><th>Failed in lookback</th><th>Cached tasks</th><th>Warm-up</th></tr>\n{rows}</table>\
         {shards}</body></html>",
        env!("CARGO_PKG_VERSION"),
        env!("CDN_EXPORTER_REVISION"),
    );
    (StatusCode::OK, Html(page))
}

/// The warm-up cell: how much of the lookback is still to list and about
/// when it will be, so a warming account is not taken for a quiet one.
fn warm_up(backlog: &[(TaskType, Backlog)], lookback: i64) -> String {
    // Before the account computed a backlog nothing is listed.
    let left = backlog
        .iter()
        .map(|(_, b)| b.seconds)
        .max()
        .unwrap_or(lookback);
    if left <= 0 {
        return "complete".to_owned();
    }
    let pending: Vec<&Backlog> = backlog
        .iter()
        .map(|(_, b)| b)
        .filter(|b| b.seconds > 0)
        .collect();
    let when = if pending.iter().any(|b| b.outpaced) {
        "the rate budget cannot keep up with new tasks".to_owned()
    } else if pending.is_empty() || pending.iter().any(|b| b.complete_at.is_none()) {
        "completion time not known until the first page is listed".to_owned()
    } else {
        let at = pending
            .iter()
            .filter_map(|b| b.complete_at)
            .max()
            .unwrap_or(0);
        match chrono::DateTime::from_timestamp(at, 0) {
            Some(t) => format!("complete at about {}", t.format("%Y-%m-%d %H:%M UTC")),
            None => "completion time not known".to_owned(),
        }
    };
    format!(
        "warming up: {} of the lookback still to list, {when}",
        span(left)
    )
}

/// `16.8 h`, `25 min`, `40 s`.
fn span(seconds: i64) -> String {
    if seconds >= 3600 {
        format!("{:.1} h", seconds as f64 / 3600.0)
    } else if seconds >= 60 {
        format!("{} min", seconds / 60)
    } else {
        format!("{seconds} s")
    }
}
