//! Wire types of `DescribeNewUcdnPrefetchCacheTask` /
//! `DescribeNewUcdnRefreshCacheTask`, their mapping to [`Task`], and the
//! classification of UCloud's errors (HTTP 200 with `RetCode ≠ 0`).
//!
//! Nothing here panics on vendor bytes: every field is optional on the wire
//! and checked before use.

use crate::task::{Task, TaskStatus, TaskType};
use crate::vendors::{outcome_for_status, ApiError, Outcome};
use serde::{Deserialize, Serialize};

/// A response of either API (the simulator serializes the same type).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireResponse {
    #[serde(rename = "Action", default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// 0 on success. Required: a body without it is not UCloud's format.
    #[serde(rename = "RetCode")]
    pub ret_code: i64,
    #[serde(rename = "Message", default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(
        rename = "TotalCount",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub total_count: Option<u64>,
    #[serde(rename = "TaskList", default, skip_serializing_if = "Option::is_none")]
    pub task_list: Option<Vec<WireTask>>,
}

/// `TaskInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireTask {
    #[serde(rename = "TaskId", default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    #[serde(
        rename = "CreateTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub create_time: Option<i64>,
    #[serde(rename = "Status", default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Refresh only: `file` or `dir` (deprecated in the SDK, may be absent).
    #[serde(rename = "Type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(rename = "UrlLists", default, skip_serializing_if = "Option::is_none")]
    pub url_lists: Option<Vec<WireUrl>>,
}

/// `UrlProgressInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireUrl {
    #[serde(rename = "Url", default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(
        rename = "CreateTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub create_time: Option<i64>,
    #[serde(
        rename = "FinishTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub finish_time: Option<i64>,
    #[serde(rename = "Status", default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Percent. Documented as int; read as a number to tolerate `37.5`.
    #[serde(rename = "Progress", default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
}

/// UCloud's status words (`unknow` is the vendor's spelling).
pub fn status(s: Option<&str>) -> TaskStatus {
    match s.map(str::trim) {
        Some("wait") => TaskStatus::Pending,
        Some("process") => TaskStatus::Running,
        Some("success") => TaskStatus::Success,
        Some("failure") => TaskStatus::Failed,
        _ => TaskStatus::Unknown,
    }
}

/// The wire word for a status (simulator side).
pub fn status_word(s: TaskStatus) -> &'static str {
    match s {
        TaskStatus::Pending => "wait",
        TaskStatus::Running => "process",
        TaskStatus::Success => "success",
        TaskStatus::Failed => "failure",
        TaskStatus::Unknown => "unknow",
    }
}

/// Refresh `Type`: `dir` → refresh_dir; `file`, absent or anything else →
/// refresh_file (the SDK marks the field deprecated, so absence must not
/// lose the task).
pub fn refresh_type(kind: Option<&str>) -> TaskType {
    match kind.map(str::trim) {
        Some("dir") => TaskType::RefreshDir,
        _ => TaskType::RefreshFile,
    }
}

/// Classifies a non-zero `RetCode`.
///
/// - 153: throttled.
/// - 170–179 (signature missing/wrong, user or token unknown), 293 (zone
///   permission), 294 (IP denied), 295 (security lock), 299 (IAM denied):
///   auth_error — a person must fix credentials or permissions.
/// - 100–159 otherwise (110 API timeout, 130 gateway/auth service, 150
///   service unavailable): server_error, retried.
/// - above 2000: server_error (the official SDK retries these).
/// - everything else (160/161 Action, 230 params, 292 project, other 29x):
///   client_error.
pub fn outcome_for_ret_code(code: i64) -> Outcome {
    match code {
        0 => Outcome::Ok,
        153 => Outcome::Throttled,
        170..=179 | 293..=295 | 299 => Outcome::AuthError,
        100..=159 => Outcome::ServerError,
        c if c > 2000 => Outcome::ServerError,
        _ => Outcome::ClientError,
    }
}

/// The vendor's message, bounded and without control characters.
fn clean(message: &str) -> String {
    message
        .chars()
        .take(300)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Parses a body of either API into the wire type, or classifies the error.
pub fn parse_response(status: u16, body: &[u8]) -> Result<WireResponse, ApiError> {
    let parsed = serde_json::from_slice::<WireResponse>(body);
    // Any 2xx is read as an answer: `outcome_for_status` calls every 2xx
    // `Ok`, and an error must never be counted as an ok request.
    if !(200..300).contains(&status) {
        let mut e = ApiError::new(outcome_for_status(status), format!("HTTP {status}"));
        if let Ok(r) = &parsed {
            if r.ret_code != 0 {
                e = e.with_code(r.ret_code.to_string());
            }
            if let Some(m) = &r.message {
                e.message = format!("HTTP {status}: {}", clean(m));
            }
        }
        return Err(e);
    }
    let r = parsed.map_err(|e| ApiError::parse(format!("bad UCloud JSON: {e}"), body))?;
    if r.ret_code != 0 {
        let message = r
            .message
            .as_deref()
            .map(clean)
            .unwrap_or_else(|| format!("RetCode {}", r.ret_code));
        return Err(ApiError::new(outcome_for_ret_code(r.ret_code), message)
            .with_code(r.ret_code.to_string()));
    }
    Ok(r)
}

/// Host of a URL, for logs.
fn host(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let h = rest.split(['/', '?', '#']).next()?;
    let h = h.rsplit_once('@').map_or(h, |(_, h)| h);
    let h = h.split(':').next()?;
    (!h.is_empty()).then_some(h)
}

/// Maps one `TaskInfo` to a task. `prefetch` says which API listed it.
pub fn to_task(t: &WireTask, prefetch: bool) -> Result<Task, String> {
    let id = t
        .task_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or("task without TaskId")?
        .to_owned();
    let urls: &[WireUrl] = t.url_lists.as_deref().unwrap_or(&[]);
    let created_at = t
        .create_time
        .filter(|c| *c > 0)
        .or_else(|| {
            urls.iter()
                .filter_map(|u| u.create_time)
                .filter(|c| *c > 0)
                .min()
        })
        .ok_or_else(|| format!("task {id} has no CreateTime"))?;
    let status = status(t.status.as_deref());
    let task_type = if prefetch {
        TaskType::Prefetch
    } else {
        refresh_type(t.kind.as_deref())
    };
    let progress = (!urls.is_empty()).then(|| {
        let sum: f64 = urls
            .iter()
            .map(|u| {
                u.progress
                    .filter(|p| p.is_finite())
                    .unwrap_or(0.0)
                    .clamp(0.0, 100.0)
            })
            .sum();
        sum / urls.len() as f64 / 100.0
    });
    let finished_at = status
        .is_finished()
        .then(|| {
            urls.iter()
                .filter_map(|u| u.finish_time)
                .filter(|f| *f > 0)
                .max()
        })
        .flatten();
    let error = (status == TaskStatus::Failed).then(|| {
        let failed = urls
            .iter()
            .filter(|u| u.status.as_deref() == Some("failure"))
            .count();
        format!("{failed} of {} URLs failed", urls.len())
    });
    Ok(Task {
        id,
        task_type,
        status,
        url_count: u32::try_from(urls.len()).unwrap_or(u32::MAX),
        urls: urls.iter().filter_map(|u| u.url.clone()).collect(),
        domain: urls
            .iter()
            .find_map(|u| u.url.as_deref().and_then(host))
            .map(str::to_owned),
        created_at,
        finished_at,
        progress,
        error,
    })
}

/// True when any URL of the task is on `domain` (client-side filter: the
/// APIs have no domain parameter).
pub fn on_domain(t: &WireTask, domain: &str) -> bool {
    t.url_lists
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .filter_map(|u| u.url.as_deref().and_then(host))
        .any(|h| h.eq_ignore_ascii_case(domain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn fixture(name: &str) -> Vec<u8> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/responses/ucloud")
            .join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// Fuzzing: a 2xx other than 200 became an error whose outcome was
    /// `ok`, counted as an ok request.
    #[test]
    fn other_2xx_is_read_as_an_answer_never_an_ok_error() {
        for status in [201, 204, 299] {
            let e = parse_response(status, b"").unwrap_err();
            assert_eq!(e.outcome, Outcome::ParseError, "{status}");
            let r = parse_response(status, &fixture("refresh-success.json")).unwrap();
            assert!(r.task_list.is_some());
        }
    }

    #[test]
    fn prefetch_success_maps_tasks_progress_and_finish() {
        let r = parse_response(200, &fixture("prefetch-success.json")).unwrap();
        assert_eq!(r.total_count, Some(3));
        let tasks: Vec<Task> = r
            .task_list
            .unwrap()
            .iter()
            .map(|t| to_task(t, true).unwrap())
            .collect();
        assert_eq!(tasks.len(), 3);
        let done = &tasks[0];
        assert_eq!(done.id, "20240301101500_a1b2c3d4");
        assert_eq!(done.task_type, TaskType::Prefetch);
        assert_eq!(done.status, TaskStatus::Success);
        assert_eq!(done.url_count, 2);
        assert_eq!(done.created_at, 1_709_259_300);
        assert_eq!(done.finished_at, Some(1_709_259_420), "max FinishTime");
        assert_eq!(done.progress, Some(1.0));
        assert_eq!(done.domain.as_deref(), Some("static.example.com"));
        let running = &tasks[1];
        assert_eq!(running.status, TaskStatus::Running);
        assert_eq!(running.finished_at, None);
        assert!((running.progress.unwrap() - (100.0 + 40.0 + 0.0) / 300.0).abs() < 1e-12);
        let unknown = &tasks[2];
        assert_eq!(unknown.status, TaskStatus::Unknown, "unknow");
        assert!(!unknown.status.is_finished());
    }

    #[test]
    fn refresh_types_and_failures() {
        let r = parse_response(200, &fixture("refresh-success.json")).unwrap();
        let tasks: Vec<Task> = r
            .task_list
            .unwrap()
            .iter()
            .map(|t| to_task(t, false).unwrap())
            .collect();
        let types: Vec<TaskType> = tasks.iter().map(|t| t.task_type).collect();
        assert_eq!(
            types,
            [
                TaskType::RefreshFile,
                TaskType::RefreshDir,
                TaskType::RefreshFile
            ],
            "file, dir, and a task without Type"
        );
        assert_eq!(tasks[0].status, TaskStatus::Pending);
        assert_eq!(tasks[1].status, TaskStatus::Failed);
        assert_eq!(tasks[1].error.as_deref(), Some("1 of 1 URLs failed"));
        assert_eq!(tasks[1].finished_at, Some(1_709_259_999));
        assert_eq!(tasks[2].status, TaskStatus::Success);
    }

    #[test]
    fn ret_code_errors_keep_code_and_message() {
        for (file, outcome, code, msg) in [
            (
                "error-171-signature.json",
                Outcome::AuthError,
                "171",
                "Signature VerifyAC Error",
            ),
            (
                "error-172-user.json",
                Outcome::AuthError,
                "172",
                "User not exists",
            ),
            (
                "error-153-throttled.json",
                Outcome::Throttled,
                "153",
                "Request Frequency Limit",
            ),
            (
                "error-230-params.json",
                Outcome::ClientError,
                "230",
                "Params [BeginTime] not available",
            ),
            (
                "error-150-unavailable.json",
                Outcome::ServerError,
                "150",
                "Service Unavailable",
            ),
        ] {
            let e = parse_response(200, &fixture(file)).unwrap_err();
            assert_eq!(e.outcome, outcome, "{file}");
            assert_eq!(e.code.as_deref(), Some(code), "{file}");
            assert_eq!(e.message, msg, "{file}");
        }
    }

    #[test]
    fn ret_code_classes() {
        for (c, o) in [
            (0, Outcome::Ok),
            (110, Outcome::ServerError),
            (130, Outcome::ServerError),
            (150, Outcome::ServerError),
            (153, Outcome::Throttled),
            (160, Outcome::ClientError),
            (161, Outcome::ClientError),
            (170, Outcome::AuthError),
            (171, Outcome::AuthError),
            (172, Outcome::AuthError),
            (174, Outcome::AuthError),
            (230, Outcome::ClientError),
            (292, Outcome::ClientError),
            (293, Outcome::AuthError),
            (294, Outcome::AuthError),
            (295, Outcome::AuthError),
            (299, Outcome::AuthError),
            (2001, Outcome::ServerError),
            (44002, Outcome::ServerError),
            (-1, Outcome::ClientError),
        ] {
            assert_eq!(outcome_for_ret_code(c), o, "RetCode {c}");
        }
    }

    #[test]
    fn malformed_bodies_are_parse_errors_and_non_200_uses_the_status() {
        for body in [
            &b""[..],
            b"<html>502</html>",
            b"{\"Action\":\"X\"}",
            b"{\"RetCode\":0,\"TaskList\":[{\"TaskId\":",
            b"{\"RetCode\":\"zero\"}",
            b"\xff\xfe\x00",
            b"{\"RetCode\":0,\"TaskList\":{}}",
        ] {
            let e = parse_response(200, body).unwrap_err();
            assert_eq!(e.outcome, Outcome::ParseError, "{body:?}");
        }
        let e = parse_response(502, b"<html>bad gateway</html>").unwrap_err();
        assert_eq!(e.outcome, Outcome::ServerError);
        let e = parse_response(429, b"").unwrap_err();
        assert_eq!(e.outcome, Outcome::Throttled);
        let e = parse_response(
            403,
            br#"{"RetCode":171,"Message":"Signature VerifyAC Error"}"#,
        )
        .unwrap_err();
        assert_eq!(e.outcome, Outcome::AuthError);
        assert_eq!(e.code.as_deref(), Some("171"));
    }

    #[test]
    fn tasks_without_id_or_time_are_rejected_not_panicked() {
        assert!(to_task(&WireTask::default(), true).is_err());
        let t = WireTask {
            task_id: Some("x".into()),
            ..WireTask::default()
        };
        assert!(to_task(&t, false).is_err());
        let t = WireTask {
            task_id: Some("x".into()),
            url_lists: Some(vec![WireUrl {
                create_time: Some(5),
                progress: Some(f64::NAN),
                ..WireUrl::default()
            }]),
            status: Some("weird".into()),
            ..WireTask::default()
        };
        let task = to_task(&t, false).unwrap();
        assert_eq!(task.created_at, 5, "falls back to the URLs' CreateTime");
        assert_eq!(task.status, TaskStatus::Unknown);
        assert_eq!(task.progress, Some(0.0));
    }

    #[test]
    fn seed_example_parses() {
        // The seed doc's example: placeholder strings in every field.
        let r = parse_response(200, &fixture("seed-example.json")).unwrap();
        let tasks = r.task_list.unwrap();
        assert_eq!(tasks.len(), 7);
        for t in &tasks {
            let task = to_task(t, true).unwrap();
            assert_eq!(task.status, TaskStatus::Unknown);
        }
    }

    #[test]
    fn random_and_mutated_bodies_never_panic() {
        let mut rng = crate::sim::Rng::new(7);
        let valid = fixture("prefetch-success.json");
        for i in 0..2_000 {
            let mut body = valid.clone();
            if i % 2 == 0 {
                // Flip a few bytes of a valid answer.
                for _ in 0..rng.range(1, 8) {
                    let at = rng.range(0, body.len() as i64) as usize;
                    if let Some(b) = body.get_mut(at) {
                        *b = rng.next_u64() as u8;
                    }
                }
            } else {
                body = (0..rng.range(0, 64))
                    .map(|_| rng.next_u64() as u8)
                    .collect();
            }
            if let Ok(r) = parse_response(200, &body) {
                for t in r.task_list.unwrap_or_default() {
                    let _ = to_task(&t, i % 3 == 0);
                }
            }
        }
    }

    #[test]
    fn hosts() {
        assert_eq!(host("https://a.b/c?d"), Some("a.b"));
        assert_eq!(host("http://u:p@a.b:8080/"), Some("a.b"));
        assert_eq!(host("a.b/x"), Some("a.b"));
        assert_eq!(host(""), None);
    }
}
