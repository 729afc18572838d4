//! Aliyun CDN wire types (shared with the simulator), parsing into the
//! normalized model, and error classification. Nothing here panics on any
//! bytes: vendor data is only ever read through `serde` and `get`.

use crate::task::{Task, TaskStatus, TaskType};
use crate::vendors::{outcome_for_status, ApiError, Outcome, Quota};
use serde::{Deserialize, Deserializer, Serialize};

/// One `CDNTask` entry: one object path of a refresh or preload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WireTask {
    #[serde(deserialize_with = "lenient_string")]
    pub task_id: String,
    pub object_path: String,
    pub object_type: String,
    pub status: String,
    /// `"NN%"`.
    pub process: String,
    /// UTC `yyyy-MM-ddTHH:mm:ssZ`.
    pub creation_time: String,
    /// Failure text (`Internal Error`, `Origin Timeout`, ...).
    pub description: String,
}

/// The `Tasks` member: `{"CDNTask": [...]}` in DescribeRefreshTasks, a flat
/// array in DescribeRefreshTaskById. Both are accepted for both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WireTasks {
    Wrapped {
        #[serde(rename = "CDNTask", default)]
        cdn_task: Vec<WireTask>,
    },
    Flat(Vec<WireTask>),
}

impl Default for WireTasks {
    fn default() -> Self {
        WireTasks::Flat(Vec::new())
    }
}

impl WireTasks {
    /// The entries, whatever the shape.
    pub fn into_vec(self) -> Vec<WireTask> {
        match self {
            WireTasks::Wrapped { cdn_task } => cdn_task,
            WireTasks::Flat(v) => v,
        }
    }
}

/// DescribeRefreshTasks / DescribeRefreshTaskById answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WireTaskList {
    pub request_id: String,
    #[serde(
        default,
        deserialize_with = "lenient_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub page_number: Option<u64>,
    #[serde(
        default,
        deserialize_with = "lenient_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub page_size: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub total_count: Option<u64>,
    pub tasks: WireTasks,
}

/// DescribeRefreshQuota answer (values are strings on the wire).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WireQuota {
    pub request_id: String,
    #[serde(default, deserialize_with = "lenient_f64")]
    pub url_quota: Option<f64>,
    #[serde(default, deserialize_with = "lenient_f64")]
    pub url_remain: Option<f64>,
    #[serde(default, deserialize_with = "lenient_f64")]
    pub dir_quota: Option<f64>,
    #[serde(default, deserialize_with = "lenient_f64")]
    pub dir_remain: Option<f64>,
    #[serde(default, deserialize_with = "lenient_f64")]
    pub regex_quota: Option<f64>,
    #[serde(default, deserialize_with = "lenient_f64")]
    pub regex_remain: Option<f64>,
    #[serde(default, deserialize_with = "lenient_f64")]
    pub preload_quota: Option<f64>,
    #[serde(default, deserialize_with = "lenient_f64")]
    pub preload_remain: Option<f64>,
}

/// The error shape: `{"RequestId","HostId","Code","Message","Recommend"}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WireError {
    pub request_id: String,
    pub host_id: String,
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recommend: Option<String>,
}

/// A value that may arrive as a string or a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum StrOrNum {
    S(String),
    N(serde_json::Number),
}

fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match StrOrNum::deserialize(d)? {
        StrOrNum::S(s) => s,
        StrOrNum::N(n) => n.to_string(),
    })
}

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Option::<StrOrNum>::deserialize(d)? {
        None => None,
        Some(StrOrNum::S(s)) => s.trim().parse().ok(),
        Some(StrOrNum::N(n)) => n.as_u64(),
    })
}

fn lenient_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(match Option::<StrOrNum>::deserialize(d)? {
        None => None,
        Some(StrOrNum::S(s)) => s.trim().parse().ok().filter(|v: &f64| v.is_finite()),
        Some(StrOrNum::N(n)) => n.as_f64(),
    })
}

/// Aliyun `ObjectType` → task type; `None` for block/unblock (not cache
/// tasks) and anything unknown.
pub fn task_type_of(object_type: &str) -> Option<TaskType> {
    match object_type {
        "file" => Some(TaskType::RefreshFile),
        "directory" => Some(TaskType::RefreshDir),
        "regex" => Some(TaskType::RefreshRegex),
        "preload" => Some(TaskType::Prefetch),
        _ => None,
    }
}

/// Task type → Aliyun `ObjectType`.
pub fn object_type_of(t: TaskType) -> Option<&'static str> {
    match t {
        TaskType::RefreshFile => Some("file"),
        TaskType::RefreshDir => Some("directory"),
        TaskType::RefreshRegex => Some("regex"),
        TaskType::Prefetch => Some("preload"),
        TaskType::RefreshTag => None,
    }
}

/// Aliyun `Status` → status.
pub fn status_of(s: &str) -> TaskStatus {
    match s {
        "Refreshing" => TaskStatus::Running,
        "Complete" => TaskStatus::Success,
        "Failed" => TaskStatus::Failed,
        "Pending" => TaskStatus::Pending,
        _ => TaskStatus::Unknown,
    }
}

/// Status → the Aliyun `Status` the simulator sends. CDN reports queued and
/// running tasks alike as `Refreshing`.
pub fn wire_status(s: TaskStatus) -> &'static str {
    match s {
        TaskStatus::Pending | TaskStatus::Running => "Refreshing",
        TaskStatus::Success => "Complete",
        TaskStatus::Failed => "Failed",
        TaskStatus::Unknown => "Unknown",
    }
}

/// Formats Unix seconds as Aliyun's UTC `yyyy-MM-ddTHH:mm:ssZ`.
pub fn format_time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Parses Aliyun's UTC times (`…T08:23:22Z`, also without seconds or with
/// an offset).
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp());
    }
    ["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%MZ"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(s, f).ok())
        .map(|t| t.and_utc().timestamp())
}

/// `"45%"` → 0.45.
pub fn parse_process(s: &str) -> Option<f64> {
    let v: f64 = s.trim().trim_end_matches('%').trim().parse().ok()?;
    v.is_finite().then(|| (v / 100.0).clamp(0.0, 1.0))
}

fn host_of(path: &str) -> Option<String> {
    let rest = path.split_once("://").map_or(path, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    (!host.is_empty()).then(|| host.to_owned())
}

/// Maps one entry. `Ok(None)`: not a cache task (block/unblock), skipped.
/// `fallback` is the type the query asked for, used when the entry has none.
pub fn to_task(w: WireTask, fallback: Option<TaskType>) -> Result<Option<Task>, String> {
    let task_type = if w.object_type.is_empty() {
        fallback
    } else {
        task_type_of(&w.object_type)
    };
    let Some(task_type) = task_type else {
        return Ok(None);
    };
    if w.task_id.is_empty() {
        return Err("a task has no TaskId".into());
    }
    let created_at = parse_time(&w.creation_time).ok_or_else(|| {
        format!(
            "task {} has an unreadable CreationTime {:?}",
            w.task_id, w.creation_time
        )
    })?;
    let status = status_of(&w.status);
    Ok(Some(Task {
        domain: host_of(&w.object_path),
        urls: vec![w.object_path.clone()],
        id: w.task_id,
        task_type,
        status,
        url_count: 1,
        created_at,
        finished_at: None,
        progress: parse_process(&w.process),
        error: (status == TaskStatus::Failed && !w.description.is_empty()).then_some(w.description),
    }))
}

/// Quota entries per task type.
pub fn quotas(q: &WireQuota) -> Vec<Quota> {
    [
        (TaskType::RefreshFile, q.url_quota, q.url_remain),
        (TaskType::RefreshDir, q.dir_quota, q.dir_remain),
        (TaskType::RefreshRegex, q.regex_quota, q.regex_remain),
        (TaskType::Prefetch, q.preload_quota, q.preload_remain),
    ]
    .into_iter()
    .filter_map(|(task_type, limit, remaining)| {
        Some(Quota {
            task_type,
            limit: limit?,
            remaining: remaining?,
        })
    })
    .collect()
}

/// Classifies a vendor error code; the code, not the HTTP status, decides.
pub fn outcome_for_code(code: &str, status: u16) -> Outcome {
    let throttled = matches!(code, "Throttling" | "TooManyRequests" | "ServiceBusy")
        || code.starts_with("Throttling.");
    let auth = code.starts_with("InvalidAccessKeyId")
        || code.starts_with("InvalidSecurityToken")
        || code.starts_with("Forbidden")
        || matches!(
            code,
            "SignatureDoesNotMatch"
                | "IncompleteSignature"
                | "InvalidTimeStamp.Expired"
                | "NoPermission"
        );
    if throttled {
        Outcome::Throttled
    } else if auth {
        Outcome::AuthError
    } else if matches!(code, "InternalError" | "ServiceUnavailable") || status >= 500 {
        Outcome::ServerError
    } else {
        Outcome::ClientError
    }
}

/// Vendor messages are kept short, and a signature error's echo of the
/// server's string to sign (which carries the access key id and any STS
/// token) is cut off.
fn sanitize(message: &str) -> String {
    let lower = message.to_ascii_lowercase();
    let cut = lower.find("string to sign").map_or(message.len(), |i| {
        message[..i].rfind(['.', ':']).map_or(i, |j| j + 1)
    });
    let m: String = message
        .get(..cut)
        .unwrap_or(message)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    m.trim().to_owned()
}

/// True when the body is an Aliyun error (has a `Code`), whatever the status.
pub fn has_error_code(body: &[u8]) -> bool {
    serde_json::from_slice::<WireError>(body).is_ok_and(|e| !e.code.is_empty())
}

/// The classified error of a non-2xx answer, or of a 2xx answer carrying an
/// error `Code` (the code is authoritative).
pub fn error_of(status: u16, body: &[u8], retry_after: Option<std::time::Duration>) -> ApiError {
    match serde_json::from_slice::<WireError>(body) {
        Ok(e) if !e.code.is_empty() => {
            ApiError::new(outcome_for_code(&e.code, status), sanitize(&e.message))
                .with_code(e.code)
                .with_request_id((!e.request_id.is_empty()).then_some(e.request_id))
                .with_retry_after(retry_after)
        }
        _ if (200..300).contains(&status) => {
            ApiError::parse("response has neither tasks nor an error code", body)
        }
        _ => {
            let outcome = outcome_for_status(status);
            let e = ApiError::parse(format!("HTTP {status} without an Aliyun error body"), body);
            ApiError::new(outcome, e.message).with_retry_after(retry_after)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_types_map_per_vendors_md() {
        assert_eq!(status_of("Refreshing"), TaskStatus::Running);
        assert_eq!(status_of("Complete"), TaskStatus::Success);
        assert_eq!(status_of("Failed"), TaskStatus::Failed);
        assert_eq!(status_of("Pending"), TaskStatus::Pending);
        assert_eq!(status_of("Whatever"), TaskStatus::Unknown);
        assert_eq!(task_type_of("block"), None);
        assert_eq!(task_type_of("unblock"), None);
        for t in [
            TaskType::RefreshFile,
            TaskType::RefreshDir,
            TaskType::RefreshRegex,
            TaskType::Prefetch,
        ] {
            assert_eq!(task_type_of(object_type_of(t).unwrap()), Some(t));
        }
    }

    #[test]
    fn times_and_process() {
        assert_eq!(parse_time("2014-11-27T08:23:22Z"), Some(1_417_076_602));
        assert_eq!(parse_time("2014-11-27T08:23Z"), Some(1_417_076_580));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(format_time(1_417_076_602), "2014-11-27T08:23:22Z");
        assert_eq!(parse_process("100%"), Some(1.0));
        assert_eq!(parse_process("45%"), Some(0.45));
        assert_eq!(parse_process(""), None);
    }

    #[test]
    fn codes_decide_the_outcome() {
        for (code, status, want) in [
            ("Throttling.User", 400, Outcome::Throttled),
            ("Throttling", 400, Outcome::Throttled),
            ("TooManyRequests", 429, Outcome::Throttled),
            ("InvalidAccessKeyId.NotFound", 404, Outcome::AuthError),
            ("SignatureDoesNotMatch", 400, Outcome::AuthError),
            ("Forbidden.RAM", 403, Outcome::AuthError),
            ("IncompleteSignature", 400, Outcome::AuthError),
            ("InvalidTimeStamp.Expired", 400, Outcome::AuthError),
            ("InvalidTime", 400, Outcome::ClientError),
            ("SignatureNonceUsed", 400, Outcome::ClientError),
            ("InternalError", 500, Outcome::ServerError),
            ("ServiceUnavailable", 503, Outcome::ServerError),
        ] {
            assert_eq!(outcome_for_code(code, status), want, "{code}");
        }
    }

    #[test]
    fn signature_errors_lose_the_echoed_string_to_sign() {
        let body = br#"{"RequestId":"R","HostId":"cdn.aliyuncs.com","Code":"SignatureDoesNotMatch","Message":"Specified signature is not matched with our calculation. server string to sign is:GET&%2F&AccessKeyId%3DAK%26SecurityToken%3DTOKEN"}"#;
        let e = error_of(400, body, None);
        assert_eq!(e.outcome, Outcome::AuthError);
        assert_eq!(e.code.as_deref(), Some("SignatureDoesNotMatch"));
        assert!(!e.message.contains("TOKEN"), "{}", e.message);
        assert!(e.message.starts_with("Specified signature"));
    }

    #[test]
    fn non_json_bodies() {
        let e = error_of(502, b"<html>bad gateway</html>", None);
        assert_eq!(e.outcome, Outcome::ServerError);
        let e = error_of(200, b"<html>", None);
        assert_eq!(e.outcome, Outcome::ParseError);
        let e = error_of(429, b"", Some(std::time::Duration::from_secs(3)));
        assert_eq!(e.outcome, Outcome::Throttled);
        assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(3)));
    }
}
