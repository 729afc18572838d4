//! MCDN wire types, response parsing and error classification.
//!
//! Every field is optional on the way in: a response that lacks a field we
//! need degrades one task (or becomes a parse error), never a panic. The
//! same types serialize the simulator's answers, so both sides of the wire
//! are one definition.

use crate::http::HttpResponse;
use crate::task::{Task, TaskStatus, TaskType};
use crate::vendors::{outcome_for_status, ApiError, Outcome, Quota};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Error codes that mean "slow down".
pub const THROTTLE_CODES: &[&str] = &["AccountFlowLimitExceeded", "FlowLimitExceeded"];

/// Error codes that mean the credentials or the signature are wrong.
pub const AUTH_CODES: &[&str] = &[
    "SignatureDoesNotMatch",
    "InvalidAccessKey",
    "MissingAuthenticationToken",
    "MissingSignature",
    "InvalidTimestamp",
    "AccessDenied",
];

/// Request body of ListContentTasks / ListContentTask.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_type: Option<String>,
    /// Unix seconds. Missing or invalid: the vendor silently uses the last 24 h.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pagination: Option<PageIn>,
}

/// `Pagination` of a list request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PageIn {
    pub page_num: Option<i64>,
    pub page_size: Option<i64>,
}

/// Request body of DescribeContentQuota.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QuotaBody {
    /// Comma-separated multi-cloud account ids (required by the vendor).
    pub cloud_account_id: Option<String>,
}

/// The envelope of every answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope<T> {
    #[serde(rename = "ResponseMetadata", default)]
    pub metadata: Metadata,
    #[serde(rename = "Result", skip_serializing_if = "Option::is_none")]
    pub result: Option<T>,
}

/// `ResponseMetadata`. Successes spell the id `RequestID`, gateway errors
/// `RequestId`; both are accepted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(
        rename = "RequestId",
        alias = "RequestID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub request_id: Option<String>,
    #[serde(rename = "Action", default)]
    pub action: Option<String>,
    #[serde(rename = "Version", default)]
    pub version: Option<String>,
    #[serde(rename = "Service", default)]
    pub service: Option<String>,
    #[serde(rename = "Region", default)]
    pub region: Option<String>,
    #[serde(rename = "Error", default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WireError>,
}

/// `ResponseMetadata.Error`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WireError {
    #[serde(rename = "Code", default)]
    pub code: Option<String>,
    #[serde(rename = "CodeN", default)]
    pub code_n: Option<i64>,
    #[serde(rename = "Message", default)]
    pub message: Option<String>,
}

/// `Result` of a list call.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ListResult {
    #[serde(rename = "Tasks", default)]
    pub tasks: Option<Vec<WireTask>>,
    #[serde(rename = "Pagination", default)]
    pub pagination: Option<PageOut>,
}

/// `Pagination` of a list answer. `Total` is ambiguous (tasks or pages), so
/// paging stops on a short page instead.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct PageOut {
    #[serde(rename = "PageNum", default)]
    pub page_num: Option<i64>,
    #[serde(rename = "PageSize", default)]
    pub page_size: Option<i64>,
    #[serde(rename = "Total", default)]
    pub total: Option<i64>,
}

/// One multi-cloud task.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WireTask {
    #[serde(rename = "TaskId", default)]
    pub task_id: Option<String>,
    #[serde(rename = "Vendor", default)]
    pub vendor: Option<String>,
    #[serde(rename = "TaskType", default)]
    pub task_type: Option<String>,
    #[serde(rename = "SubTasks", default)]
    pub sub_tasks: Option<Vec<WireSubTask>>,
    #[serde(rename = "CreatedAt", default)]
    pub created_at: Option<i64>,
    #[serde(rename = "TaskStatus", default)]
    pub task_status: Option<String>,
    #[serde(rename = "EndAt", default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<i64>,
}

/// One submission of a task to one underlying vendor.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WireSubTask {
    #[serde(rename = "VendorTaskIds", default)]
    pub vendor_task_ids: Option<Vec<String>>,
    #[serde(rename = "Vendor", default)]
    pub vendor: Option<String>,
    #[serde(rename = "SubmitStatus", default)]
    pub submit_status: Option<String>,
    #[serde(rename = "Description", default)]
    pub description: Option<String>,
    #[serde(rename = "Url", default)]
    pub url: Option<Vec<String>>,
    #[serde(rename = "CloudAccountId", default)]
    pub cloud_account_id: Option<String>,
    #[serde(rename = "CloudAccountName", default)]
    pub cloud_account_name: Option<String>,
    #[serde(rename = "ProductType", default)]
    pub product_type: Option<String>,
    #[serde(rename = "SubProduct", default)]
    pub sub_product: Option<String>,
    #[serde(rename = "SubmitAt", default, skip_serializing_if = "Option::is_none")]
    pub submit_at: Option<i64>,
}

/// `Result` of DescribeContentQuota.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct QuotaResult {
    #[serde(rename = "Quotas", default)]
    pub quotas: Option<Vec<WireQuota>>,
}

/// One vendor account's daily quota.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WireQuota {
    #[serde(rename = "CloudAccountId", default)]
    pub cloud_account_id: Option<String>,
    #[serde(rename = "Vendor", default)]
    pub vendor: Option<String>,
    #[serde(rename = "ProductType", default)]
    pub product_type: Option<String>,
    #[serde(rename = "RefreshUrlQuota", default)]
    pub refresh_url_quota: Option<i64>,
    #[serde(rename = "RefreshUrlRemain", default)]
    pub refresh_url_remain: Option<i64>,
    #[serde(rename = "RefreshDirQuota", default)]
    pub refresh_dir_quota: Option<i64>,
    #[serde(rename = "RefreshDirRemain", default)]
    pub refresh_dir_remain: Option<i64>,
    #[serde(rename = "PreloadQuota", default)]
    pub preload_quota: Option<i64>,
    #[serde(rename = "PreloadRemain", default)]
    pub preload_remain: Option<i64>,
}

/// The wire name of a task type (`preload` for prefetch).
pub fn wire_type(t: TaskType) -> Option<&'static str> {
    match t {
        TaskType::RefreshFile => Some("refresh_file"),
        TaskType::RefreshDir => Some("refresh_dir"),
        TaskType::Prefetch => Some("preload"),
        TaskType::RefreshRegex | TaskType::RefreshTag => None,
    }
}

/// Inverse of [`wire_type`].
pub fn parse_type(s: &str) -> Option<TaskType> {
    match s {
        "refresh_file" => Some(TaskType::RefreshFile),
        "refresh_dir" => Some(TaskType::RefreshDir),
        "preload" => Some(TaskType::Prefetch),
        _ => None,
    }
}

/// Classifies an error by code, then by HTTP status.
pub fn classify(status: u16, code: Option<&str>) -> Outcome {
    match code {
        Some(c) if THROTTLE_CODES.contains(&c) => Outcome::Throttled,
        _ if status == 429 => Outcome::Throttled,
        Some(c) if AUTH_CODES.contains(&c) => Outcome::AuthError,
        Some("InternalError") | Some("ServiceUnavailable") => Outcome::ServerError,
        _ if status >= 500 => Outcome::ServerError,
        Some(_) => Outcome::ClientError,
        None => match outcome_for_status(status) {
            Outcome::Ok => Outcome::ClientError,
            o => o,
        },
    }
}

/// Parses the envelope; an `Error` (whatever the status) or a non-2xx status
/// becomes a classified [`ApiError`].
pub fn envelope<T: serde::de::DeserializeOwned>(
    resp: &HttpResponse,
) -> Result<Envelope<T>, ApiError> {
    let parsed = serde_json::from_slice::<Envelope<T>>(&resp.body);
    let ok_status = (200..300).contains(&resp.status);
    match parsed {
        Ok(env) => {
            if let Some(err) = &env.metadata.error {
                let code = err.code.clone().filter(|c| !c.is_empty());
                let outcome = classify(resp.status, code.as_deref());
                let message = err
                    .message
                    .clone()
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| format!("HTTP {}", resp.status));
                let mut e = ApiError::new(outcome, message)
                    .with_request_id(env.metadata.request_id.clone())
                    .with_retry_after(resp.retry_after());
                if let Some(c) = code {
                    e = e.with_code(c);
                }
                return Err(e);
            }
            if !ok_status {
                return Err(ApiError::new(
                    classify(resp.status, None),
                    format!("HTTP {} without an error code", resp.status),
                )
                .with_request_id(env.metadata.request_id.clone())
                .with_retry_after(resp.retry_after()));
            }
            Ok(env)
        }
        Err(e) if ok_status => Err(ApiError::parse(format!("bad MCDN JSON: {e}"), &resp.body)),
        // An error page from a proxy or gateway: the status says enough.
        Err(_) => Err(ApiError::new(
            classify(resp.status, None),
            format!("HTTP {} with a body that is not MCDN JSON", resp.status),
        )
        .with_retry_after(resp.retry_after())),
    }
}

/// Normalizes one task. `fallback` is the type the query asked for, used
/// when the task's own type is missing. `None`: no id or no usable type.
pub fn to_task(w: &WireTask, fallback: Option<TaskType>) -> Option<Task> {
    let id = w.task_id.clone().filter(|s| !s.is_empty())?;
    let task_type = w.task_type.as_deref().and_then(parse_type).or(fallback)?;
    let subs: &[WireSubTask] = w.sub_tasks.as_deref().unwrap_or(&[]);
    let failing = subs.iter().find(|s| {
        !s.submit_status
            .as_deref()
            .is_some_and(|st| st.eq_ignore_ascii_case("success"))
    });
    let status = match w.task_status.as_deref() {
        Some("done") if failing.is_none() => TaskStatus::Success,
        Some("done") => TaskStatus::Failed,
        Some("executing") => TaskStatus::Running,
        Some("pending") => TaskStatus::Pending,
        _ => TaskStatus::Unknown,
    };
    // Sub-tasks repeat the URLs per vendor: count and keep each once, in
    // answer order.
    let mut urls = HashSet::new();
    let mut listed: Vec<String> = Vec::new();
    for u in subs.iter().flat_map(|s| s.url.iter().flatten()) {
        if urls.insert(u.as_str()) {
            listed.push(u.clone());
        }
    }
    let error = (status == TaskStatus::Failed).then(|| {
        let f = failing;
        let desc = f
            .and_then(|s| s.description.clone())
            .filter(|d| !d.is_empty());
        desc.unwrap_or_else(|| {
            format!(
                "submission to {} {}",
                f.and_then(|s| s.vendor.as_deref()).unwrap_or("a vendor"),
                f.and_then(|s| s.submit_status.as_deref())
                    .unwrap_or("failed")
            )
        })
    });
    let finished_at = if status.is_finished() {
        w.end_at.filter(|t| *t > 0)
    } else {
        None
    };
    Some(Task {
        id,
        task_type,
        status,
        url_count: u32::try_from(urls.len()).unwrap_or(u32::MAX),
        domain: listed.first().and_then(|u| crate::task::url_host(u)),
        urls: listed,
        created_at: w.created_at.unwrap_or(0),
        finished_at,
        progress: None,
        error,
    })
}

/// Sums every `Quotas[]` entry into one quota per task type.
pub fn to_quotas(r: &QuotaResult) -> Vec<Quota> {
    let qs = r.quotas.as_deref().unwrap_or(&[]);
    // Summed as f64: an i64 sum of vendor numbers can overflow.
    let sum = |f: fn(&WireQuota) -> Option<i64>| qs.iter().filter_map(f).map(|v| v as f64).sum();
    vec![
        Quota {
            task_type: TaskType::RefreshFile,
            limit: sum(|q| q.refresh_url_quota),
            remaining: sum(|q| q.refresh_url_remain),
        },
        Quota {
            task_type: TaskType::RefreshDir,
            limit: sum(|q| q.refresh_dir_quota),
            remaining: sum(|q| q.refresh_dir_remain),
        },
        Quota {
            task_type: TaskType::Prefetch,
            limit: sum(|q| q.preload_quota),
            remaining: sum(|q| q.preload_remain),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("testdata/responses/volcengine")
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
    fn seed_example_parses() {
        let env: Envelope<ListResult> =
            envelope(&resp(200, fixture("list_content_task_seed.json"))).expect("ok");
        assert_eq!(
            env.metadata.request_id.as_deref(),
            Some("20240219203648DAF5D97481B3BEAA59AC")
        );
        let r = env.result.expect("result");
        let tasks: Vec<Task> = r
            .tasks
            .iter()
            .flatten()
            .filter_map(|t| to_task(t, None))
            .collect();
        assert_eq!(tasks.len(), 1);
        let t = &tasks[0];
        assert_eq!(t.id, "65d2c9b64fb1452d12d4df91");
        assert_eq!(t.task_type, TaskType::RefreshFile);
        assert_eq!(t.status, TaskStatus::Success);
        assert_eq!(t.url_count, 1);
        assert_eq!(t.created_at, 1708313014);
        assert_eq!(t.finished_at, Some(1708313194));
        assert_eq!(r.pagination.and_then(|p| p.total), Some(1));
    }

    #[test]
    fn mixed_statuses_and_a_failed_subtask() {
        let env: Envelope<ListResult> =
            envelope(&resp(200, fixture("list_content_tasks_mixed.json"))).expect("ok");
        let tasks: Vec<Task> = env
            .result
            .expect("result")
            .tasks
            .iter()
            .flatten()
            .filter_map(|t| to_task(t, Some(TaskType::Prefetch)))
            .collect();
        let by_id = |id: &str| tasks.iter().find(|t| t.id == id).expect(id);
        let failed = by_id("65d2c9b64fb1452d12d4df92");
        assert_eq!(failed.status, TaskStatus::Failed);
        assert_eq!(failed.error.as_deref(), Some("quota exceeded on vendor"));
        // Two sub-tasks carry the same two URLs plus one more: three unique.
        assert_eq!(failed.url_count, 3);
        assert_eq!(failed.task_type, TaskType::Prefetch);
        assert_eq!(
            by_id("65d2c9b64fb1452d12d4df93").status,
            TaskStatus::Running
        );
        assert_eq!(by_id("65d2c9b64fb1452d12d4df93").finished_at, None);
        assert_eq!(
            by_id("65d2c9b64fb1452d12d4df94").status,
            TaskStatus::Pending
        );
        assert_eq!(
            by_id("65d2c9b64fb1452d12d4df95").status,
            TaskStatus::Unknown
        );
        // No TaskId: dropped.
        assert_eq!(tasks.len(), 4);
    }

    #[test]
    fn quota_sums_every_entry() {
        let env: Envelope<QuotaResult> =
            envelope(&resp(200, fixture("describe_content_quota.json"))).expect("ok");
        let q = to_quotas(&env.result.expect("result"));
        let get = |t| q.iter().find(|q| q.task_type == t).expect("type");
        assert_eq!(get(TaskType::RefreshFile).limit, 12_000.0);
        assert_eq!(get(TaskType::RefreshFile).remaining, 11_500.0);
        assert_eq!(get(TaskType::RefreshDir).limit, 200.0);
        assert_eq!(get(TaskType::RefreshDir).remaining, 190.0);
        assert_eq!(get(TaskType::Prefetch).limit, 1_500.0);
        assert_eq!(get(TaskType::Prefetch).remaining, 40.0);
    }

    #[test]
    fn error_shapes_are_classified() {
        let cases = [
            (
                "error_signature.json",
                401,
                Outcome::AuthError,
                "SignatureDoesNotMatch",
                Some("2024021920364801"),
            ),
            (
                "error_invalid_access_key.json",
                401,
                Outcome::AuthError,
                "InvalidAccessKey",
                Some("2024021920364802"),
            ),
            (
                "error_invalid_timestamp.json",
                400,
                Outcome::AuthError,
                "InvalidTimestamp",
                Some("2024021920364803"),
            ),
            (
                "error_throttled.json",
                429,
                Outcome::Throttled,
                "AccountFlowLimitExceeded",
                Some("2024021920364804"),
            ),
            (
                "error_flow_limit_200.json",
                200,
                Outcome::Throttled,
                "FlowLimitExceeded",
                Some("2024021920364805"),
            ),
            (
                "error_internal.json",
                500,
                Outcome::ServerError,
                "InternalError",
                Some("2024021920364806"),
            ),
            (
                "error_missing_parameter.json",
                400,
                Outcome::ClientError,
                "MissingParameter",
                Some("2024021920364807"),
            ),
            (
                "error_access_denied.json",
                403,
                Outcome::AuthError,
                "AccessDenied",
                Some("2024021920364808"),
            ),
        ];
        for (file, status, outcome, code, rid) in cases {
            let e = envelope::<ListResult>(&resp(status, fixture(file))).expect_err(file);
            assert_eq!(e.outcome, outcome, "{file}");
            assert_eq!(e.code.as_deref(), Some(code), "{file}");
            assert_eq!(e.request_id.as_deref(), rid, "{file}");
            assert!(!e.message.is_empty(), "{file}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        let bodies: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"\x00\x01not json{{{".to_vec(),
            b"<html><body>502 Bad Gateway</body></html>".to_vec(),
            b"{\"ResponseMetadata\":".to_vec(),
            b"[]".to_vec(),
            b"{\"Result\":{\"Tasks\":[{\"TaskId\":5}]}}".to_vec(),
            b"{\"Result\":{\"Tasks\":[{}, {\"TaskId\":\"x\",\"SubTasks\":[{}]}]}}".to_vec(),
            vec![0xff; 4096],
        ];
        for b in &bodies {
            for status in [200, 400, 429, 502] {
                let r = envelope::<ListResult>(&resp(status, b.clone()));
                if let Ok(env) = r {
                    for t in env.result.iter().flat_map(|r| r.tasks.iter().flatten()) {
                        let _ = to_task(t, None);
                    }
                }
            }
        }
        let e = envelope::<ListResult>(&resp(200, b"<html>502</html>".to_vec())).expect_err("html");
        assert_eq!(e.outcome, Outcome::ParseError);
        let e = envelope::<ListResult>(&resp(502, b"<html>502</html>".to_vec())).expect_err("html");
        assert_eq!(e.outcome, Outcome::ServerError);
        let e = envelope::<ListResult>(&resp(429, b"slow down".to_vec())).expect_err("429");
        assert_eq!(e.outcome, Outcome::Throttled);
    }
}
