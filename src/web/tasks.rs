//! `GET /api/v1/tasks` (JSON) and `GET /tasks` (HTML): the kept task
//! details of every account, filtered. Both read the details stores only;
//! neither sends a vendor request.

use super::escape;
use crate::app::AppState;
use crate::collector::details::TaskDetail;
use crate::collector::Collector;
use crate::task::{TaskStatus, TaskType};
use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use std::fmt::Write as _;

/// Tasks returned when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest `limit` accepted.
pub const MAX_LIMIT: usize = 10_000;

/// The filters of both endpoints. Values of one key are alternatives (OR);
/// different keys must all match (AND).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskFilter {
    pub vendors: Vec<String>,
    pub accounts: Vec<String>,
    pub task_types: Vec<TaskType>,
    pub statuses: Vec<TaskStatus>,
    /// `status=unfinished`: pending, running or unknown.
    pub unfinished: bool,
    /// `status=stuck`: unfinished for at least the account's `stuck_after`.
    pub stuck: bool,
    /// Created at or after this Unix time.
    pub since: Option<i64>,
    /// Substring of any kept URL.
    pub url: Option<String>,
    pub limit: usize,
}

impl TaskFilter {
    /// Reads a query string; `now` resolves relative `since` (`1h`).
    pub fn parse(query: &str, now: i64) -> Result<TaskFilter, String> {
        let mut f = TaskFilter {
            limit: DEFAULT_LIMIT,
            ..TaskFilter::default()
        };
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let v = v.trim();
            if v.is_empty() {
                continue; // an empty form field means "any"
            }
            match &*k {
                "vendor" => f.vendors.push(v.to_owned()),
                "account" => f.accounts.push(v.to_owned()),
                "task_type" => f.task_types.push(
                    TaskType::parse(v).ok_or_else(|| format!("unknown task_type {v:?}"))?,
                ),
                "status" => match v {
                    "unfinished" => f.unfinished = true,
                    "stuck" => f.stuck = true,
                    _ => f.statuses.push(
                        TaskStatus::ALL
                            .into_iter()
                            .find(|s| s.as_str() == v)
                            .ok_or_else(|| {
                                format!("unknown status {v:?} (pending, running, success, failed, unknown, unfinished, stuck)")
                            })?,
                    ),
                },
                "since" => f.since = Some(parse_since(v, now)?),
                "url" => f.url = Some(v.to_owned()),
                "limit" => {
                    f.limit = v
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| format!("limit {v:?} is not a number in 1..={MAX_LIMIT}"))?
                }
                other => return Err(format!("unknown filter {other:?}")),
            }
        }
        Ok(f)
    }

    fn matches_status(&self, d: &TaskDetail, now: i64, stuck_after: i64) -> bool {
        if self.statuses.is_empty() && !self.unfinished && !self.stuck {
            return true;
        }
        self.statuses.contains(&d.status)
            || (self.unfinished && !d.status.is_finished())
            || (self.stuck && d.is_stuck(now, stuck_after))
    }
}

/// Unix seconds, RFC 3339, or a duration before now (`90m`, `1h`).
fn parse_since(v: &str, now: i64) -> Result<i64, String> {
    if let Ok(n) = v.parse::<i64>() {
        return Ok(n);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Ok(t.timestamp());
    }
    humantime::parse_duration(v)
        .map(|d| now - d.as_secs() as i64)
        .map_err(|_| {
            format!("since {v:?} is neither Unix seconds, RFC 3339 nor a duration like 1h")
        })
}

/// One task as the API lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskRow {
    pub vendor: &'static str,
    pub account: String,
    #[serde(flatten)]
    pub detail: TaskDetail,
    /// Fewer URLs kept than the task covers.
    pub urls_truncated: bool,
    pub stuck: bool,
}

/// The API's answer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskList {
    /// Unix time of the answer.
    pub generated_at: i64,
    /// Matching tasks before `limit`.
    pub total: usize,
    pub tasks: Vec<TaskRow>,
}

/// The matching tasks of every account, newest created first.
pub fn list(c: &Collector, f: &TaskFilter) -> TaskList {
    let now = c.clock.unix();
    let mut rows = Vec::new();
    for a in c.accounts().iter() {
        if !f.vendors.is_empty() && !f.vendors.iter().any(|v| v == a.kind.as_str()) {
            continue;
        }
        if !f.accounts.is_empty() && !f.accounts.contains(&a.name) {
            continue;
        }
        let store = a.details();
        let stuck_after = store.settings().stuck_after.as_secs() as i64;
        for d in store.iter() {
            let ok = (f.task_types.is_empty() || f.task_types.contains(&d.task_type))
                && f.matches_status(d, now, stuck_after)
                && f.since.is_none_or(|s| d.created_at >= s)
                && f.url
                    .as_deref()
                    .is_none_or(|u| d.urls.iter().any(|x| x.contains(u)));
            if ok {
                rows.push(TaskRow {
                    vendor: a.kind.as_str(),
                    account: a.name.clone(),
                    urls_truncated: d.urls.len() < d.url_count as usize && !d.urls.is_empty(),
                    stuck: d.is_stuck(now, stuck_after),
                    detail: d.clone(),
                });
            }
        }
    }
    rows.sort_by(|a, b| {
        b.detail
            .created_at
            .cmp(&a.detail.created_at)
            .then_with(|| a.account.cmp(&b.account))
            .then_with(|| a.detail.task_id.cmp(&b.detail.task_id))
    });
    let total = rows.len();
    rows.truncate(f.limit);
    TaskList {
        generated_at: now,
        total,
        tasks: rows,
    }
}

fn bad_request(msg: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{msg}\n"),
    )
        .into_response()
}

/// `GET /api/v1/tasks`.
pub async fn api(State(s): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let now = s.collector.clock.unix();
    match TaskFilter::parse(q.as_deref().unwrap_or(""), now) {
        Ok(f) => axum::Json(list(&s.collector, &f)).into_response(),
        Err(e) => bad_request(e),
    }
}

/// `GET /tasks`.
pub async fn page(State(s): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let now = s.collector.clock.unix();
    let query = q.unwrap_or_default();
    let (f, problem) = match TaskFilter::parse(&query, now) {
        Ok(f) => (f, None),
        Err(e) => (
            TaskFilter {
                limit: DEFAULT_LIMIT,
                ..TaskFilter::default()
            },
            Some(e),
        ),
    };
    let list = list(&s.collector, &f);
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    (
        status,
        Html(render(&s.collector, &f, &query, &list, problem.as_deref())),
    )
        .into_response()
}

/// A Unix time as `YYYY-MM-DD HH:MM:SS` UTC.
pub fn utc(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| t.to_string())
}

fn select(out: &mut String, name: &str, options: &[String], chosen: &[String]) {
    let _ = write!(
        out,
        "<label>{name} <select name=\"{name}\"><option value=\"\">any</option>"
    );
    for o in options {
        let sel = if chosen.contains(o) { " selected" } else { "" };
        let o = escape(o);
        let _ = write!(out, "<option value=\"{o}\"{sel}>{o}</option>");
    }
    out.push_str("</select></label> ");
}

fn render(
    c: &Collector,
    f: &TaskFilter,
    query: &str,
    list: &TaskList,
    problem: Option<&str>,
) -> String {
    let mut vendors: Vec<String> = c
        .accounts()
        .iter()
        .map(|a| a.kind.as_str().to_owned())
        .collect();
    vendors.sort();
    vendors.dedup();
    let accounts: Vec<String> = c.accounts().iter().map(|a| a.name.clone()).collect();
    let types: Vec<String> = TaskType::ALL
        .iter()
        .map(|t| t.as_str().to_owned())
        .collect();
    let chosen_types: Vec<String> = f.task_types.iter().map(|t| t.as_str().to_owned()).collect();
    let mut out = String::with_capacity(8192);
    out.push_str(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Tasks · CDN task exporter</title>\
         <style>body{font-family:sans-serif;margin:1.5em}td,th{padding:.25em .6em;text-align:left;vertical-align:top;border-bottom:1px solid #ddd}\
         th{background:#f3f3f3}.failed{color:#b00020;font-weight:bold}.stuck{color:#a15c00;font-weight:bold}\
         ul{margin:0;padding-left:1.1em}.urls{word-break:break-all;max-width:32em}.when{white-space:nowrap}code{word-break:break-all}form{margin:1em 0;line-height:2.2}code{font-size:.9em}</style></head><body>\
         <h1>Tasks</h1><p><a href=\"/\">Overview</a> · <a href=\"/api/v1/tasks",
    );
    if !query.is_empty() {
        out.push('?');
        out.push_str(&escape(query));
    }
    out.push_str("\">This list as JSON</a></p>\n<form method=\"get\" action=\"/tasks\">");
    select(&mut out, "vendor", &vendors, &f.vendors);
    select(&mut out, "account", &accounts, &f.accounts);
    select(&mut out, "task_type", &types, &chosen_types);
    out.push_str("<br>status: ");
    for s in [
        "pending",
        "running",
        "success",
        "failed",
        "unknown",
        "unfinished",
        "stuck",
    ] {
        let on = match s {
            "unfinished" => f.unfinished,
            "stuck" => f.stuck,
            _ => f.statuses.iter().any(|x| x.as_str() == s),
        };
        let _ = write!(
            out,
            "<label><input type=\"checkbox\" name=\"status\" value=\"{s}\"{}> {s}</label> ",
            if on { " checked" } else { "" }
        );
    }
    let since = f.since.map(|s| s.to_string()).unwrap_or_default();
    let _ = write!(
        out,
        "<br><label>since <input name=\"since\" value=\"{}\" placeholder=\"1h, Unix time or RFC 3339\"></label> \
         <label>URL contains <input name=\"url\" value=\"{}\"></label> \
         <label>limit <input name=\"limit\" type=\"number\" min=\"1\" max=\"{MAX_LIMIT}\" value=\"{}\"></label> \
         <button type=\"submit\">Filter</button> <a href=\"/tasks\">reset</a></form>",
        escape(&since),
        escape(f.url.as_deref().unwrap_or("")),
        f.limit
    );
    if let Some(p) = problem {
        let _ = write!(
            out,
            "<p class=\"failed\">Filter not understood: {}</p>",
            escape(p)
        );
    }
    let _ = write!(
        out,
        "<p id=\"count\">{} of {} matching tasks (newest first; times UTC).</p>\
         <table id=\"tasks\"><tr><th>Created</th><th>Vendor</th><th>Account</th><th>Task id</th><th>Type</th>\
         <th>Status</th><th>Finished</th><th>URLs</th><th>Error</th></tr>",
        list.tasks.len(),
        list.total
    );
    for r in &list.tasks {
        let d = &r.detail;
        let class = if r.stuck {
            "stuck"
        } else if d.status == TaskStatus::Failed {
            "failed"
        } else {
            ""
        };
        let shown_status = if r.stuck {
            format!("{} (stuck)", d.status)
        } else {
            d.status.to_string()
        };
        let _ = write!(
            out,
            "<tr class=\"task\" data-task-id=\"{id}\"><td class=\"when\">{}</td><td>{}</td><td>{}</td><td><code>{id}</code></td><td>{}</td>\
             <td class=\"{class}\">{}</td><td class=\"when\">{}</td><td class=\"urls\">{} URL{}<ul>",
            utc(d.created_at),
            r.vendor,
            escape(&r.account),
            d.task_type,
            shown_status,
            d.finished_at.map(utc).unwrap_or_default(),
            d.url_count,
            if d.url_count == 1 { "" } else { "s" },
            id = escape(&d.task_id),
        );
        for u in &d.urls {
            let _ = write!(out, "<li>{}</li>", escape(u));
        }
        if r.urls_truncated {
            let _ = write!(
                out,
                "<li>… {} more</li>",
                d.url_count as usize - d.urls.len()
            );
        }
        let _ = writeln!(
            out,
            "</ul></td><td>{}</td></tr>",
            escape(d.error.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</table></body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_repeat_and_reject_clearly() {
        let f = TaskFilter::parse(
            "vendor=aliyun&status=failed&status=stuck&task_type=prefetch&since=1h&url=%2Fa&limit=5&account=",
            10_000,
        )
        .unwrap();
        assert_eq!(f.vendors, ["aliyun"]);
        assert_eq!(f.statuses, [TaskStatus::Failed]);
        assert!(f.stuck && !f.unfinished);
        assert_eq!(f.task_types, [TaskType::Prefetch]);
        assert_eq!(f.since, Some(10_000 - 3600));
        assert_eq!(f.url.as_deref(), Some("/a"));
        assert_eq!(f.limit, 5);
        assert!(f.accounts.is_empty(), "an empty form field is no filter");
        assert_eq!(
            TaskFilter::parse("since=2026-01-01T00:00:00Z", 0)
                .unwrap()
                .since,
            Some(1_767_225_600)
        );
        for bad in [
            "status=done",
            "limit=0",
            "limit=x",
            "task_type=purge",
            "bogus=1",
            "since=yesterday",
        ] {
            let e = TaskFilter::parse(bad, 0).unwrap_err();
            assert!(!e.is_empty(), "{bad}");
        }
    }
}
