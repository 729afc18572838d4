//! Tencent Cloud CDN wire types, response parsing and error classification.
//!
//! Every field is optional on the way in: a response lacking a field we need
//! degrades one record (or becomes a parse error), never a panic. The same
//! types serialize the simulator's answers, so both sides of the wire are
//! one definition.
//!
//! One record of `PurgeLogs`/`PushLogs` is one URL (or directory) of one
//! submission; the URLs of a submission share its `TaskId`. The record is
//! the unit counted: its id is `<TaskId>|<Url>` (see [`record_id`]).

use crate::http::HttpResponse;
use crate::task::{Task, TaskStatus, TaskType};
use crate::vendors::{outcome_for_status, ApiError, Outcome, Quota};
use chrono::{DateTime, NaiveDateTime};
use serde::{Deserialize, Serialize};

/// Beijing time, the zone of every `YYYY-MM-DD HH:MM:SS` on the wire.
pub const BEIJING_OFFSET_SECONDS: i32 = 8 * 3600;

/// The wire time format.
pub const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Request body of DescribePurgeTasks and DescribePushTasks (push has no
/// `PurgeType`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purge_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyword: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
}

/// `{"Response": {...}}`, the envelope of every answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(rename = "Response", default)]
    pub response: Option<Body>,
}

/// Everything any of the four actions answers inside `Response`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Body {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WireError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purge_logs: Option<Vec<PurgeTask>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_logs: Option<Vec<PushTask>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_purge: Option<Vec<WireQuota>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_purge: Option<Vec<WireQuota>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_push: Option<Vec<WireQuota>>,
    #[serde(default)]
    pub request_id: Option<String>,
}

/// `Response.Error`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WireError {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// One URL or directory of a purge submission (`PurgeTask`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PurgeTask {
    #[serde(default)]
    pub task_id: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    /// `fail`, `done`, `process`.
    #[serde(default)]
    pub status: Option<String>,
    /// `url` or `path`.
    #[serde(default)]
    pub purge_type: Option<String>,
    /// `flush` or `delete`.
    #[serde(default)]
    pub flush_type: Option<String>,
    /// Beijing time.
    #[serde(default)]
    pub create_time: Option<String>,
}

/// One URL of a prefetch submission (`PushTask`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PushTask {
    #[serde(default)]
    pub task_id: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    /// `fail`, `done`, `process`, `invalid`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub percent: Option<i64>,
    #[serde(default)]
    pub create_time: Option<String>,
    #[serde(default)]
    pub area: Option<String>,
    /// May be null.
    #[serde(default)]
    pub update_time: Option<String>,
}

/// One area's quota (`Quota`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WireQuota {
    #[serde(default)]
    pub batch: Option<i64>,
    #[serde(default)]
    pub total: Option<i64>,
    #[serde(default)]
    pub available: Option<i64>,
    #[serde(default)]
    pub area: Option<String>,
}

/// Unix seconds as Beijing wall-clock time, `YYYY-MM-DD HH:MM:SS`.
pub fn beijing(ts: i64) -> String {
    DateTime::from_timestamp(ts.saturating_add(i64::from(BEIJING_OFFSET_SECONDS)), 0)
        .map(|t| t.format(TIME_FORMAT).to_string())
        .unwrap_or_else(|| "1970-01-01 08:00:00".to_owned())
}

/// Inverse of [`beijing`]; `None` for anything else.
pub fn parse_beijing(s: &str) -> Option<i64> {
    let t = NaiveDateTime::parse_from_str(s.trim(), TIME_FORMAT).ok()?;
    Some(t.and_utc().timestamp() - i64::from(BEIJING_OFFSET_SECONDS))
}

/// The wire `PurgeType` of a task type.
pub fn purge_type(t: TaskType) -> Option<&'static str> {
    match t {
        TaskType::RefreshFile => Some("url"),
        TaskType::RefreshDir => Some("path"),
        _ => None,
    }
}

/// Inverse of [`purge_type`].
pub fn parse_purge_type(s: &str) -> Option<TaskType> {
    match s {
        "url" => Some(TaskType::RefreshFile),
        "path" => Some(TaskType::RefreshDir),
        _ => None,
    }
}

/// Our status of a record's `Status`.
pub fn status(s: Option<&str>) -> TaskStatus {
    match s {
        Some("done") => TaskStatus::Success,
        Some("fail") | Some("invalid") => TaskStatus::Failed,
        Some("process") => TaskStatus::Running,
        _ => TaskStatus::Unknown,
    }
}

/// The id of one record: `<TaskId>|<Url>`.
pub fn record_id(task_id: &str, url: &str) -> String {
    format!("{task_id}|{url}")
}

/// The `TaskId` part of a [`record_id`].
pub fn task_id_of(record_id: &str) -> &str {
    record_id.split_once('|').map_or(record_id, |(t, _)| t)
}

fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Normalizes a purge record; `None` without a TaskId, a URL or a usable
/// type. `fallback` is the type the query asked for.
pub fn purge_to_task(w: &PurgeTask, fallback: Option<TaskType>) -> Option<Task> {
    let id = w.task_id.as_deref().filter(|s| !s.is_empty())?;
    let url = w.url.as_deref().filter(|s| !s.is_empty())?;
    let task_type = w
        .purge_type
        .as_deref()
        .and_then(parse_purge_type)
        .or(fallback.filter(|t| purge_type(*t).is_some()))?;
    let st = status(w.status.as_deref());
    Some(Task {
        id: record_id(id, url),
        task_type,
        status: st,
        url_count: 1,
        urls: vec![url.to_owned()],
        domain: host_of(url),
        created_at: w
            .create_time
            .as_deref()
            .and_then(parse_beijing)
            .unwrap_or(0),
        finished_at: None,
        progress: None,
        error: (st == TaskStatus::Failed).then(|| "purge failed (Status fail)".to_owned()),
    })
}

/// Normalizes a prefetch record; `None` without a TaskId or a URL.
pub fn push_to_task(w: &PushTask) -> Option<Task> {
    let id = w.task_id.as_deref().filter(|s| !s.is_empty())?;
    let url = w.url.as_deref().filter(|s| !s.is_empty())?;
    let st = status(w.status.as_deref());
    let error = match w.status.as_deref() {
        Some("invalid") => Some("prefetch invalid: the origin answered 4xx or 5xx".to_owned()),
        Some("fail") => Some("prefetch failed (Status fail)".to_owned()),
        _ => None,
    };
    Some(Task {
        id: record_id(id, url),
        task_type: TaskType::Prefetch,
        status: st,
        url_count: 1,
        urls: vec![url.to_owned()],
        domain: host_of(url),
        created_at: w
            .create_time
            .as_deref()
            .and_then(parse_beijing)
            .unwrap_or(0),
        finished_at: if st.is_finished() {
            w.update_time.as_deref().and_then(parse_beijing)
        } else {
            None
        },
        progress: w
            .percent
            .filter(|p| (0..=100).contains(p))
            .map(|p| p as f64 / 100.0),
        error,
    })
}

/// Which area's quota to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaArea<'a> {
    /// Only entries of this area.
    Only(&'a str),
    /// Every entry, summed.
    All,
}

/// One quota from a list of per-area entries.
pub fn to_quota(t: TaskType, entries: &[WireQuota], area: QuotaArea<'_>) -> Quota {
    let chosen = entries.iter().filter(|q| match area {
        QuotaArea::Only(a) => q.area.as_deref() == Some(a),
        QuotaArea::All => true,
    });
    let (mut limit, mut remaining) = (0i64, 0i64);
    for q in chosen {
        limit = limit.saturating_add(q.total.unwrap_or(0).max(0));
        remaining = remaining.saturating_add(q.available.unwrap_or(0).max(0));
    }
    Quota {
        task_type: t,
        limit: limit as f64,
        remaining: remaining as f64,
    }
}

/// Classifies an error code. Tencent answers errors with HTTP 200, so the
/// code is all there is.
pub fn classify(code: &str) -> Outcome {
    let head = code.split('.').next().unwrap_or(code);
    match head {
        "RequestLimitExceeded" => Outcome::Throttled,
        "AuthFailure" | "UnauthorizedOperation" => Outcome::AuthError,
        "InternalError" | "ServiceUnavailable" => Outcome::ServerError,
        _ => Outcome::ClientError,
    }
}

/// Parses the envelope; a `Response.Error` becomes a classified
/// [`ApiError`] carrying the code and `RequestId`. A status other than 200
/// (which the SDK treats as a network failure) is classified by status.
pub fn envelope(resp: &HttpResponse) -> Result<Body, ApiError> {
    let parsed = serde_json::from_slice::<Envelope>(&resp.body);
    if resp.status != 200 {
        let request_id = parsed
            .ok()
            .and_then(|e| e.response)
            .and_then(|b| b.request_id);
        let outcome = match outcome_for_status(resp.status) {
            Outcome::Ok => Outcome::ServerError,
            o => o,
        };
        return Err(ApiError::new(
            outcome,
            format!(
                "HTTP {} (Tencent Cloud answers errors with 200)",
                resp.status
            ),
        )
        .with_request_id(request_id)
        .with_retry_after(resp.retry_after()));
    }
    let env =
        parsed.map_err(|e| ApiError::parse(format!("bad Tencent Cloud JSON: {e}"), &resp.body))?;
    let body = env
        .response
        .ok_or_else(|| ApiError::parse("answer without Response", &resp.body))?;
    if let Some(err) = &body.error {
        let code = err.code.clone().filter(|c| !c.is_empty());
        let outcome = code.as_deref().map_or(Outcome::ClientError, classify);
        let message = err
            .message
            .clone()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "error without a message".to_owned());
        let mut e = ApiError::new(outcome, message).with_request_id(body.request_id.clone());
        if let Some(c) = code {
            e = e.with_code(c);
        }
        return Err(e);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("testdata/responses/tencent")
                .join(name),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn resp(status: u16, body: Vec<u8>) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![],
            body,
        }
    }

    #[test]
    fn beijing_time_round_trips() {
        // The doc example: TaskId 153303185323131331 starts with the Unix
        // time 1533031853 and reads 2018-07-31 18:10:53 (UTC+8).
        assert_eq!(beijing(1_533_031_853), "2018-07-31 18:10:53");
        assert_eq!(parse_beijing("2018-07-31 18:10:53"), Some(1_533_031_853));
        assert_eq!(parse_beijing("2018-07-31T18:10:53Z"), None);
        assert_eq!(parse_beijing(""), None);
    }

    #[test]
    fn doc_purge_example_parses() {
        let b = envelope(&resp(200, fixture("describe-purge-tasks-doc-example.json"))).expect("ok");
        assert_eq!(
            b.request_id.as_deref(),
            Some("09a4dc30-4a8d-4d9e-9e0a-08a4a0b1d27e")
        );
        let tasks: Vec<Task> = b
            .purge_logs
            .iter()
            .flatten()
            .filter_map(|t| purge_to_task(t, None))
            .collect();
        assert_eq!(b.total_count, Some(1));
        assert_eq!(tasks.len(), 1);
        let t = &tasks[0];
        assert_eq!(t.id, "15330318531233131|http://www.qq.com/1.jpg");
        assert_eq!(t.task_type, TaskType::RefreshFile);
        assert_eq!(t.status, TaskStatus::Success);
        assert_eq!(t.created_at, 1_533_031_853);
        assert_eq!(t.domain.as_deref(), Some("www.qq.com"));
        assert_eq!(task_id_of(&t.id), "15330318531233131");
    }

    #[test]
    fn doc_push_example_and_every_status() {
        let b = envelope(&resp(200, fixture("describe-push-tasks-mixed.json"))).expect("ok");
        let tasks: Vec<Task> = b
            .push_logs
            .iter()
            .flatten()
            .filter_map(push_to_task)
            .collect();
        // The record without a Url is dropped.
        assert_eq!(tasks.len(), 5);
        let st: Vec<TaskStatus> = tasks.iter().map(|t| t.status).collect();
        assert_eq!(
            st,
            vec![
                TaskStatus::Success,
                TaskStatus::Running,
                TaskStatus::Failed,
                TaskStatus::Failed,
                TaskStatus::Unknown
            ]
        );
        assert_eq!(tasks[0].finished_at, Some(1_533_031_853 + 60));
        assert_eq!(tasks[1].finished_at, None);
        assert_eq!(tasks[1].progress, Some(0.4));
        assert!(tasks[3].error.as_deref().is_some_and(|e| e.contains("4xx")));
        // Two URLs of one submission: two records, one TaskId.
        assert_eq!(task_id_of(&tasks[1].id), task_id_of(&tasks[2].id));
        assert_ne!(tasks[1].id, tasks[2].id);
    }

    #[test]
    fn quotas_by_area() {
        let b = envelope(&resp(200, fixture("describe-purge-quota-doc-example.json"))).expect("ok");
        let url = b.url_purge.unwrap_or_default();
        let q = to_quota(TaskType::RefreshFile, &url, QuotaArea::All);
        assert_eq!((q.limit, q.remaining), (20_000.0, 19_990.0));
        let q = to_quota(TaskType::RefreshFile, &url, QuotaArea::Only("overseas"));
        assert_eq!((q.limit, q.remaining), (10_000.0, 10_000.0));
        let path = b.path_purge.unwrap_or_default();
        let q = to_quota(TaskType::RefreshDir, &path, QuotaArea::Only("mainland"));
        assert_eq!((q.limit, q.remaining), (100.0, 100.0));
    }

    #[test]
    fn error_shapes_are_classified() {
        let cases = [
            (
                "error-signature-failure.json",
                Outcome::AuthError,
                "AuthFailure.SignatureFailure",
            ),
            (
                "error-signature-expire.json",
                Outcome::AuthError,
                "AuthFailure.SignatureExpire",
            ),
            (
                "error-secret-id-not-found.json",
                Outcome::AuthError,
                "AuthFailure.SecretIdNotFound",
            ),
            (
                "error-unauthorized-operation.json",
                Outcome::AuthError,
                "UnauthorizedOperation.CdnCamUnauthorized",
            ),
            (
                "error-request-limit-exceeded.json",
                Outcome::Throttled,
                "RequestLimitExceeded",
            ),
            (
                "error-internal.json",
                Outcome::ServerError,
                "InternalError.CdnSystemError",
            ),
            (
                "error-invalid-parameter.json",
                Outcome::ClientError,
                "InvalidParameter.CdnParamError",
            ),
            (
                "error-resource-not-found.json",
                Outcome::ClientError,
                "ResourceNotFound.CdnUserNotExists",
            ),
        ];
        for (file, outcome, code) in cases {
            let e = envelope(&resp(200, fixture(file))).expect_err(file);
            assert_eq!(e.outcome, outcome, "{file}");
            assert_eq!(e.code.as_deref(), Some(code), "{file}");
            assert!(
                e.request_id.as_deref().is_some_and(|r| !r.is_empty()),
                "{file}"
            );
            assert!(!e.message.is_empty(), "{file}");
        }
        assert_eq!(
            classify("RequestLimitExceeded.UinLimitExceeded"),
            Outcome::Throttled
        );
        assert_eq!(classify("AuthFailure"), Outcome::AuthError);
        assert_eq!(classify("InternalError"), Outcome::ServerError);
        assert_eq!(classify("MissingParameter"), Outcome::ClientError);
    }

    #[test]
    fn garbage_never_panics() {
        let bodies: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"\x00\x01not json{{{".to_vec(),
            b"<html><body>502 Bad Gateway</body></html>".to_vec(),
            b"{\"Response\":".to_vec(),
            b"[]".to_vec(),
            b"{}".to_vec(),
            b"{\"Response\":{\"PurgeLogs\":[{\"TaskId\":5}]}}".to_vec(),
            b"{\"Response\":{\"PushLogs\":[{}, {\"TaskId\":\"x\",\"Url\":\"u\",\"Percent\":900}]}}"
                .to_vec(),
            b"{\"Response\":{\"Error\":{}}}".to_vec(),
            vec![0xff; 4096],
        ];
        for b in &bodies {
            for status in [200, 400, 429, 502] {
                if let Ok(body) = envelope(&resp(status, b.clone())) {
                    for t in body.purge_logs.iter().flatten() {
                        let _ = purge_to_task(t, None);
                    }
                    for t in body.push_logs.iter().flatten() {
                        let _ = push_to_task(t);
                    }
                }
            }
        }
        let e = envelope(&resp(200, b"<html>502</html>".to_vec())).expect_err("html");
        assert_eq!(e.outcome, Outcome::ParseError);
        let e = envelope(&resp(200, b"{}".to_vec())).expect_err("no Response");
        assert_eq!(e.outcome, Outcome::ParseError);
        let e = envelope(&resp(502, b"<html>502</html>".to_vec())).expect_err("502");
        assert_eq!(e.outcome, Outcome::ServerError);
        let e = envelope(&resp(200, b"{\"Response\":{\"Error\":{}}}".to_vec()))
            .expect_err("empty error");
        assert_eq!(e.outcome, Outcome::ClientError);
    }
}
