//! Simulated Tencent Cloud CDN API (`vendors::tencent`): POST JSON to `/`,
//! the action in `X-TC-Action`, TC3-HMAC-SHA256 signatures verified by
//! recomputing them with the client's own pure signer from what was
//! received (the Host and Content-Type as sent, the body bytes received,
//! `X-TC-Content-SHA256: UNSIGNED-PAYLOAD` honoured), `X-TC-Timestamp`
//! within 300 s, 20 requests/s per action, `Limit` at most 1000, a TaskId or
//! a StartTime required, unknown body keys rejected, and every error as
//! HTTP 200 with `Response.Error` and a `RequestId`, as the vendor does.
//!
//! Tasks come from a shared [`World`]: one world task is one submission,
//! each of its URLs one record with the submission's TaskId. Records
//! evolve with the task (`process`, then `done`); a failing submission
//! fails on its first URL (`fail`, or for some prefetches `invalid`) while
//! its other URLs succeed: status is per URL.

use super::{Control, Fault, SimTask, World};
use crate::clock::{SharedClock, SystemClock};
use crate::task::{TaskStatus, TaskType};
use crate::vendors::tencent::api::{
    self, beijing, parse_beijing, parse_purge_type, purge_type, Body, PurgeTask, PushTask,
    WireError, WireQuota,
};
use crate::vendors::tencent::sign::{self, ALGORITHM, UNSIGNED_PAYLOAD};
use crate::vendors::tencent::{APIS, MAX_LOOKBACK, MAX_PAGE_SIZE, TASK_TYPES, VERSION};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// How far `X-TC-Timestamp` may be from the server's time.
pub const MAX_SKEW_SECONDS: i64 = 300;

/// Daily quotas per area: URL purge, directory purge, prefetch (`Total`,
/// `Batch`), as in the documentation's examples.
pub const DAILY_QUOTA: [(TaskType, i64, i64); 3] = [
    (TaskType::RefreshFile, 10_000, 1000),
    (TaskType::RefreshDir, 100, 20),
    (TaskType::Prefetch, 10_000, 1000),
];

/// The areas quotas are reported for.
pub const AREAS: [&str; 2] = ["mainland", "overseas"];

/// The simulated Tencent Cloud CDN API.
#[derive(Clone)]
pub struct TencentSim {
    pub world: Arc<World>,
    pub control: Arc<Control>,
    /// The one SecretId it knows.
    pub secret_id: String,
    secret_key: String,
    /// When set, requests must carry this `X-TC-Token` (temporary keys).
    token: Option<String>,
    /// Server time for the timestamp check (the world may be frozen).
    pub clock: SharedClock,
    /// List requests answered with the `TaskId` filter (re-checks).
    pub task_id_lookups: Arc<AtomicU64>,
    next_request: Arc<AtomicU64>,
}

impl std::fmt::Debug for TencentSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TencentSim")
            .field("secret_id", &self.secret_id)
            .finish_non_exhaustive()
    }
}

/// The parts of an `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub secret_id: String,
    pub date: String,
    pub service: String,
    pub signed_headers: String,
    pub signature: String,
}

/// Parses `TC3-HMAC-SHA256 Credential=ID/date/service/tc3_request,
/// SignedHeaders=a;b, Signature=hex`.
pub fn parse_authorization(value: &str) -> Option<Authorization> {
    let rest = value.trim().strip_prefix(ALGORITHM)?.strip_prefix(' ')?;
    let (mut cred, mut signed, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => cred = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => sig = Some(v),
            _ => return None,
        }
    }
    let mut c = cred?.split('/');
    let (id, date, service) = (c.next()?, c.next()?, c.next()?);
    if c.next() != Some("tc3_request") || c.next().is_some() {
        return None;
    }
    Some(Authorization {
        secret_id: id.to_owned(),
        date: date.to_owned(),
        service: service.to_owned(),
        signed_headers: signed?.to_owned(),
        signature: sig?.to_owned(),
    })
}

/// A stable small hash of a task id.
fn id_hash(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The area a submission went to (fixed per task).
pub fn area_of(t: &SimTask) -> &'static str {
    AREAS[(id_hash(&t.id) % 2) as usize]
}

/// The wire status of URL `i` of a task at `now`: a failing submission
/// fails on its first URL only.
pub fn record_status(t: &SimTask, i: usize, now: i64) -> &'static str {
    match t.status_at(now) {
        TaskStatus::Success => "done",
        TaskStatus::Failed if i > 0 => "done",
        TaskStatus::Failed if t.task_type == TaskType::Prefetch && id_hash(&t.id) % 3 == 0 => {
            "invalid"
        }
        TaskStatus::Failed => "fail",
        TaskStatus::Pending | TaskStatus::Running | TaskStatus::Unknown => "process",
    }
}

/// The purge records of a world task.
pub fn purge_records(t: &SimTask, now: i64) -> Vec<PurgeTask> {
    let Some(pt) = purge_type(t.task_type) else {
        return Vec::new();
    };
    t.urls
        .iter()
        .enumerate()
        .map(|(i, u)| PurgeTask {
            task_id: Some(t.id.clone()),
            url: Some(u.clone()),
            status: Some(record_status(t, i, now).to_owned()),
            purge_type: Some(pt.to_owned()),
            flush_type: Some(if pt == "path" { "flush" } else { "delete" }.to_owned()),
            create_time: Some(beijing(t.created_at)),
        })
        .collect()
}

/// The total of the records `tasks` make that `keep` admits, and the page
/// of them from `skip`. `unfiltered` (no status or keyword asked for, as
/// the exporter asks): every task makes one record per URL, so only the
/// page's records are built. At 100,000 tasks a day building all of them
/// for every page took the simulator 0.3 s a page, one page at a time
/// under the world's lock, and a benchmark of the exporter's paging
/// measured the simulator instead.
fn page_of<R>(
    tasks: &[SimTask],
    records: impl Fn(&SimTask) -> Vec<R>,
    keep: impl Fn(&SimTask, &R) -> bool,
    unfiltered: bool,
    skip: usize,
    take: usize,
) -> (usize, Vec<R>) {
    if !unfiltered {
        let keep = &keep;
        let all: Vec<R> = tasks
            .iter()
            .flat_map(|t| records(t).into_iter().filter(move |r| keep(t, r)))
            .collect();
        let total = all.len();
        return (total, all.into_iter().skip(skip).take(take).collect());
    }
    let total = tasks.iter().map(|t| t.urls.len()).sum();
    let mut page = Vec::new();
    let mut before = 0;
    for t in tasks {
        let n = t.urls.len();
        if before + n > skip && page.len() < take {
            let first = skip.saturating_sub(before);
            page.extend(records(t).into_iter().skip(first).take(take - page.len()));
        }
        before += n;
        if page.len() >= take {
            break;
        }
    }
    (total, page)
}

/// The prefetch records of a world task.
pub fn push_records(t: &SimTask, now: i64) -> Vec<PushTask> {
    if t.task_type != TaskType::Prefetch {
        return Vec::new();
    }
    t.urls
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let st = record_status(t, i, now);
            PushTask {
                task_id: Some(t.id.clone()),
                url: Some(u.clone()),
                status: Some(st.to_owned()),
                percent: Some(match st {
                    "done" => 100,
                    "process" => (t.progress_at(now) * 100.0) as i64,
                    _ => 0,
                }),
                create_time: Some(beijing(t.created_at)),
                area: Some(area_of(t).to_owned()),
                update_time: t.finished_at(now).map(beijing),
            }
        })
        .collect()
}

/// Keys each list action accepts in its body.
const PURGE_KEYS: &[&str] = &[
    "PurgeType",
    "StartTime",
    "EndTime",
    "TaskId",
    "Offset",
    "Limit",
    "Keyword",
    "Status",
    "Area",
];
const PUSH_KEYS: &[&str] = &[
    "StartTime",
    "EndTime",
    "TaskId",
    "Keyword",
    "Offset",
    "Limit",
    "Area",
    "Status",
];

/// A vendor error: code and message.
type Failure = (&'static str, String);

fn invalid(msg: impl Into<String>) -> Failure {
    ("InvalidParameter.CdnParamError", msg.into())
}

impl TencentSim {
    /// A simulator accepting one key pair, enforcing the published limits.
    pub fn new(world: Arc<World>, secret_id: &str, secret_key: &str) -> Self {
        let control = Control::new();
        for a in APIS {
            control.limit(a.name, a.limit);
        }
        TencentSim {
            world,
            control,
            secret_id: secret_id.to_owned(),
            secret_key: secret_key.to_owned(),
            token: None,
            clock: Arc::new(SystemClock),
            task_id_lookups: Arc::new(AtomicU64::new(0)),
            next_request: Arc::new(AtomicU64::new(1)),
        }
    }

    /// Uses `clock` for the timestamp check (paused-time tests).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Requires temporary credentials carrying `token` in `X-TC-Token`.
    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    /// Its routes: everything is `/`.
    pub fn router(self) -> Router {
        Router::new().route("/", any(handle)).with_state(self)
    }

    fn request_id(&self) -> String {
        let n = self.next_request.fetch_add(1, Ordering::Relaxed);
        format!(
            "{:08x}-5e1a-4c3d-9f00-{n:012x}",
            id_hash(&self.secret_id) as u32
        )
    }

    /// Any answer: HTTP 200, `{"Response": ...}`.
    fn answer(&self, mut body: Body) -> Response {
        body.request_id = Some(self.request_id());
        let text = serde_json::to_string(&api::Envelope {
            response: Some(body),
        })
        .unwrap_or_default();
        ([("content-type", "application/json")], text).into_response()
    }

    /// An error in the vendor's shape.
    fn error(&self, code: &str, message: &str) -> Response {
        self.answer(Body {
            error: Some(WireError {
                code: Some(code.to_owned()),
                message: Some(message.to_owned()),
            }),
            ..Body::default()
        })
    }

    /// Authentication as the gateway does it; `Err` is the code and message.
    fn authenticate(
        &self,
        method: &Method,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), Failure> {
        let header = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let fail = |code, msg: &str| Err((code, msg.to_owned()));
        let Some(raw) = header("authorization") else {
            return fail(
                "AuthFailure.SignatureFailure",
                "The request is missing the Authorization header.",
            );
        };
        let Some(auth) = parse_authorization(&raw) else {
            return fail(
                "AuthFailure.InvalidAuthorization",
                "The Authorization header is malformed.",
            );
        };
        let Some(ts) = header("x-tc-timestamp").and_then(|t| t.parse::<i64>().ok()) else {
            return fail(
                "MissingParameter",
                "The request is missing a valid X-TC-Timestamp.",
            );
        };
        if (ts - self.clock.unix()).abs() > MAX_SKEW_SECONDS {
            return fail(
                "AuthFailure.SignatureExpire",
                "Signature expired. Please use local time and enable NTP service, then try again.",
            );
        }
        if auth.secret_id != self.secret_id {
            return fail(
                "AuthFailure.SecretIdNotFound",
                "The SecretId is not found, please ensure that your SecretId is correct.",
            );
        }
        if let Some(token) = &self.token {
            if header("x-tc-token").as_deref() != Some(token.as_str()) {
                return fail(
                    "AuthFailure.TokenFailure",
                    "The token is missing, invalid or expired.",
                );
            }
        }
        let signature_failure = "The provided credentials could not be validated. Please check your signature is correct.";
        // The SDK signs exactly content-type and host, in a scope whose date
        // is the UTC date of the timestamp.
        if auth.signed_headers != "content-type;host"
            || auth.date != sign::utc_date(ts)
            || auth.service != sign::SERVICE
        {
            return fail("AuthFailure.SignatureFailure", signature_failure);
        }
        let (Some(host), Some(ct)) = (header("host"), header("content-type")) else {
            return fail("AuthFailure.SignatureFailure", signature_failure);
        };
        let expected = sign::sign(&sign::SignInput {
            method: method.as_str(),
            host: &host,
            path: "/",
            content_type: &ct,
            body,
            secret_id: &auth.secret_id,
            secret_key: &self.secret_key,
            service: &auth.service,
            timestamp: ts,
            unsigned_payload: header("x-tc-content-sha256").as_deref() == Some(UNSIGNED_PAYLOAD),
        });
        if expected.signature == auth.signature {
            Ok(())
        } else {
            // Like the real service: no string to sign, never the key.
            fail("AuthFailure.SignatureFailure", signature_failure)
        }
    }

    /// Ground truth as Tencent shows it: records (one per URL) created in
    /// `[from, now]` by type × status.
    pub fn truth(&self, from: i64) -> HashMap<(TaskType, TaskStatus), u64> {
        let now = self.world.now();
        let mut m = HashMap::new();
        for t in self.world.list(from, now + 1, None, None) {
            if !TASK_TYPES.contains(&t.task_type) {
                continue;
            }
            for i in 0..t.urls.len() {
                *m.entry((t.task_type, api::status(Some(record_status(&t, i, now)))))
                    .or_insert(0) += 1;
            }
        }
        m
    }

    /// Quota entries (per area) for one task type at the world's now: the
    /// URLs submitted since 00:00 Beijing time are used up.
    pub fn quota(&self, t: TaskType) -> Vec<WireQuota> {
        let now = self.world.now();
        let day_start = (now + 8 * 3600).div_euclid(86_400) * 86_400 - 8 * 3600;
        let (total, batch) = DAILY_QUOTA
            .iter()
            .find(|(ty, _, _)| *ty == t)
            .map_or((0, 0), |(_, total, batch)| (*total, *batch));
        AREAS
            .iter()
            .map(|area| {
                let used: i64 = self
                    .world
                    .list(day_start, now + 1, Some(t), None)
                    .iter()
                    .filter(|x| area_of(x) == *area)
                    .map(|x| x.urls.len() as i64)
                    .sum();
                WireQuota {
                    batch: Some(batch),
                    total: Some(total),
                    available: Some((total - used).max(0)),
                    area: Some((*area).to_owned()),
                }
            })
            .collect()
    }

    fn list(&self, action: &str, body: &[u8]) -> Result<Body, Failure> {
        let value: serde_json::Value = if body.is_empty() {
            serde_json::json!({})
        } else {
            serde_json::from_slice(body)
                .map_err(|e| invalid(format!("The request body is not valid JSON: {e}")))?
        };
        let Some(obj) = value.as_object() else {
            return Err(invalid("The request body must be a JSON object."));
        };
        let push = action == "DescribePushTasks";
        let keys = if push { PUSH_KEYS } else { PURGE_KEYS };
        if let Some(k) = obj.keys().find(|k| !keys.contains(&k.as_str())) {
            return Err((
                "UnknownParameter",
                format!("The parameter `{k}` is not recognized."),
            ));
        }
        let req: api::ListBody = serde_json::from_value(value.clone())
            .map_err(|e| invalid(format!("A parameter has the wrong type: {e}")))?;
        let now = self.world.now();
        let limit = req.limit.unwrap_or(20);
        if !(1..=i64::from(MAX_PAGE_SIZE)).contains(&limit) {
            return Err(invalid(format!(
                "Limit must be between 1 and {MAX_PAGE_SIZE}."
            )));
        }
        let offset = req.offset.unwrap_or(0);
        if offset < 0 {
            return Err(invalid("Offset must not be negative."));
        }
        let task_id = req.task_id.clone().filter(|t| !t.is_empty());
        let (from, to) = match (&req.start_time, &task_id) {
            (None, None) => return Err(invalid("TaskId or StartTime is required.")),
            (None, Some(_)) => (now - MAX_LOOKBACK.as_secs() as i64, now),
            (Some(s), _) => {
                let from = parse_beijing(s).ok_or_else(|| {
                    invalid(format!("StartTime {s:?} is not YYYY-MM-DD HH:MM:SS."))
                })?;
                let to = match &req.end_time {
                    None => now,
                    Some(e) => parse_beijing(e).ok_or_else(|| {
                        invalid(format!("EndTime {e:?} is not YYYY-MM-DD HH:MM:SS."))
                    })?,
                };
                if to < from {
                    return Err(invalid("EndTime is earlier than StartTime."));
                }
                (from, to)
            }
        };
        // Records are kept 30 days.
        let from = from.max(now - MAX_LOOKBACK.as_secs() as i64);
        let ty = match req.purge_type.as_deref() {
            None | Some("") => None,
            Some(p) => Some(
                parse_purge_type(p)
                    .ok_or_else(|| invalid(format!("PurgeType {p} is not url or path.")))?,
            ),
        };
        let statuses: &[&str] = if push {
            &["fail", "done", "process", "invalid"]
        } else {
            &["fail", "done", "process"]
        };
        let status = req.status.clone().filter(|s| !s.is_empty());
        if let Some(s) = &status {
            if !statuses.contains(&s.as_str()) {
                return Err(invalid(format!("Status {s} is not valid.")));
            }
        }
        let area = req.area.clone().filter(|a| !a.is_empty());
        if let Some(a) = &area {
            if !["mainland", "overseas", "global"].contains(&a.as_str()) {
                return Err(invalid(format!(
                    "Area {a} is not mainland, overseas or global."
                )));
            }
        }
        let keyword = req.keyword.clone().filter(|k| !k.is_empty());
        if task_id.is_some() {
            self.task_id_lookups.fetch_add(1, Ordering::Relaxed);
        }
        let tasks: Vec<SimTask> = self
            .world
            .list(from, to + 1, None, None)
            .into_iter()
            .filter(|t| TASK_TYPES.contains(&t.task_type))
            .filter(|t| push == (t.task_type == TaskType::Prefetch))
            .filter(|t| ty.is_none_or(|ty| t.task_type == ty))
            .filter(|t| task_id.as_deref().is_none_or(|id| t.id == id))
            .filter(|t| {
                area.as_deref()
                    .is_none_or(|a| a == "global" || a == area_of(t))
            })
            .collect();
        let keep = |t: &SimTask, url: &str, st: &str| {
            status.as_deref().is_none_or(|s| s == st)
                && keyword.as_deref().is_none_or(|k| {
                    if k.starts_with("http://") || k.starts_with("https://") {
                        k == url
                    } else {
                        k.eq_ignore_ascii_case(&t.domain)
                    }
                })
        };
        let skip = offset as usize;
        let take = limit as usize;
        let unfiltered = status.is_none() && keyword.is_none();
        // Both record kinds carry `url` and `status`.
        macro_rules! page {
            ($records:expr) => {
                page_of(
                    &tasks,
                    $records,
                    |t, r| {
                        let url = r.url.as_deref().unwrap_or("");
                        keep(t, url, r.status.as_deref().unwrap_or(""))
                    },
                    unfiltered,
                    skip,
                    take,
                )
            };
        }
        let mut out = Body::default();
        let total = if push {
            let (total, page) = page!(|t| push_records(t, now));
            out.push_logs = Some(page);
            total
        } else {
            let (total, page) = page!(|t| purge_records(t, now));
            out.purge_logs = Some(page);
            total
        };
        out.total_count = Some(total as i64);
        Ok(out)
    }

    fn quota_answer(&self, action: &str, body: &[u8]) -> Result<Body, Failure> {
        let value: serde_json::Value = if body.is_empty() {
            serde_json::json!({})
        } else {
            serde_json::from_slice(body)
                .map_err(|e| invalid(format!("The request body is not valid JSON: {e}")))?
        };
        if let Some(k) = value.as_object().and_then(|o| o.keys().next()) {
            return Err((
                "UnknownParameter",
                format!("The parameter `{k}` is not recognized."),
            ));
        }
        Ok(if action == "DescribePushQuota" {
            Body {
                url_push: Some(self.quota(TaskType::Prefetch)),
                ..Body::default()
            }
        } else {
            Body {
                url_purge: Some(self.quota(TaskType::RefreshFile)),
                path_purge: Some(self.quota(TaskType::RefreshDir)),
                ..Body::default()
            }
        })
    }
}

async fn handle(
    State(s): State<TencentSim>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let action = header("x-tc-action").to_owned();
    let known = APIS.iter().any(|a| a.name == action);
    if !known {
        s.control.record("unknown", "client_error");
        return s.error(
            "InvalidAction",
            &format!("The action `{action}` is not supported."),
        );
    }
    if header("x-tc-version") != VERSION {
        s.control.record(&action, "client_error");
        return s.error(
            "NoSuchVersion",
            "The API version does not exist or is not supported.",
        );
    }
    if s.control.auth_failing() {
        s.control
            .record_detail(&action, "auth_error", "AuthFailure.SecretIdNotFound");
        return s.error(
            "AuthFailure.SecretIdNotFound",
            "The SecretId is not found, please ensure that your SecretId is correct.",
        );
    }
    if let Err((code, msg)) = s.authenticate(&method, &headers, &body) {
        s.control.record_detail(&action, "auth_error", code);
        return s.error(code, &msg);
    }
    if !s.control.admit(&action) || s.control.throttling() {
        let limit = APIS
            .iter()
            .find(|a| a.name == action)
            .map_or(20, |a| a.limit.requests);
        let resp = s.error(
            "RequestLimitExceeded",
            &format!(
                "Your current request times equals to `{}` in a second, which exceeds the frequency limit `{limit}` for a second. Please reduce the frequency of calls.",
                limit + 1
            ),
        );
        return s.control.throttled(&action, resp);
    }
    if s.control.fault() == Fault::ServerError {
        s.control.record(&action, "server_error");
        return s.error(
            "InternalError.CdnSystemError",
            "System error. Please submit a ticket for troubleshooting.",
        );
    }
    if method != Method::POST || !header("content-type").starts_with("application/json") {
        s.control.record(&action, "client_error");
        return s.error(
            "InvalidParameter.CdnParamError",
            "This simulator accepts POST with a JSON body.",
        );
    }
    let answer = match action.as_str() {
        "DescribePurgeQuota" | "DescribePushQuota" => s.quota_answer(&action, &body),
        _ => s.list(&action, &body),
    };
    let out = match answer {
        Ok(b) => b,
        Err((code, msg)) => {
            s.control.record_detail(&action, "client_error", code);
            return s.error(code, &msg);
        }
    };
    // Every other fault damages the normal answer, in one place.
    s.control.deliver(&action, "", s.answer(out)).await
}

/// Task types the simulator can serve (the world may hold others).
pub fn served(t: TaskType) -> bool {
    TASK_TYPES.contains(&t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TokioClock;
    use crate::http::{HttpRequest, Transport};
    use crate::sim::RouterTransport;
    use std::time::Duration;

    fn task(id: &str, ty: TaskType, fails: bool) -> SimTask {
        SimTask {
            id: id.into(),
            task_type: ty,
            created_at: 1_700_000_000,
            domain: "www.example.com".into(),
            urls: vec![
                "https://www.example.com/a".into(),
                "https://www.example.com/b".into(),
            ],
            queued_for: 10,
            runs_for: Some(100),
            fails,
        }
    }

    /// The page built from the URL counts alone is the page of all records.
    #[test]
    fn unfiltered_pages_equal_the_pages_of_all_records() {
        let mut tasks: Vec<SimTask> = (0..7)
            .map(|i| task(&format!("t{i}"), TaskType::RefreshFile, false))
            .collect();
        for (i, t) in tasks.iter_mut().enumerate() {
            t.urls = (0..=i % 3).map(|u| format!("https://a/{i}/{u}")).collect();
        }
        let urls = |r: &Vec<String>| r.clone();
        let records = |t: &SimTask| t.urls.iter().map(|u| vec![u.clone()]).collect::<Vec<_>>();
        for skip in 0..14 {
            for take in [1, 2, 5, 20] {
                let fast = page_of(&tasks, records, |_, _| true, true, skip, take);
                let all = page_of(&tasks, records, |_, _| true, false, skip, take);
                assert_eq!(fast.0, all.0);
                assert_eq!(
                    fast.1.iter().map(urls).collect::<Vec<_>>(),
                    all.1.iter().map(urls).collect::<Vec<_>>(),
                    "skip {skip} take {take}"
                );
            }
        }
    }

    #[test]
    fn status_is_per_url() {
        let t = task("abc", TaskType::RefreshFile, true);
        let r = purge_records(&t, 1_700_000_005);
        assert!(r.iter().all(|r| r.status.as_deref() == Some("process")));
        let r = purge_records(&t, 1_700_000_500);
        assert_eq!(r[0].status.as_deref(), Some("fail"));
        assert_eq!(r[1].status.as_deref(), Some("done"));
        assert_eq!(r[0].create_time.as_deref(), Some("2023-11-15 06:13:20"));
        assert!(push_records(&t, 0).is_empty());
        let p = push_records(&task("abc", TaskType::Prefetch, false), 1_700_000_060);
        assert_eq!(p[0].status.as_deref(), Some("process"));
        assert_eq!(p[0].percent, Some(50));
        assert_eq!(p[0].update_time, None);
        let p = push_records(&task("abc", TaskType::Prefetch, false), 1_700_000_500);
        assert_eq!(p[1].update_time.as_deref(), Some("2023-11-15 06:15:10"));
        // Some failing prefetches are `invalid`, the others `fail`.
        let words: Vec<&str> = (0..30)
            .map(|i| {
                record_status(
                    &task(&format!("{i:x}"), TaskType::Prefetch, true),
                    0,
                    1_800_000_000,
                )
            })
            .collect();
        assert!(words.contains(&"invalid") && words.contains(&"fail"));
    }

    #[test]
    fn authorization_parses_strictly() {
        let a = parse_authorization(
            "TC3-HMAC-SHA256 Credential=AKID/2019-02-25/cdn/tc3_request, SignedHeaders=content-type;host, Signature=abc",
        )
        .expect("parse");
        assert_eq!(
            (a.secret_id.as_str(), a.date.as_str(), a.service.as_str()),
            ("AKID", "2019-02-25", "cdn")
        );
        assert!(parse_authorization(
            "TC3-HMAC-SHA256 Credential=AKID/2019-02-25/cdn/request, SignedHeaders=a, Signature=b"
        )
        .is_none());
        assert!(parse_authorization(
            "HMAC-SHA256 Credential=AKID/2019-02-25/cdn/tc3_request, SignedHeaders=a, Signature=b"
        )
        .is_none());
        assert!(parse_authorization("").is_none());
    }

    /// The verifier accepts every SDK vector (as sent by the SDK, Host and
    /// all) and rejects a changed body or secret.
    #[tokio::test(start_paused = true)]
    async fn verifier_accepts_the_sdk_vectors_and_rejects_tampering() {
        let mut checked = 0;
        for case in crate::vendors::vectors::load("tencent", 12) {
            let (i, x) = (case.input(), case.expected());
            if i["source"] != "sdk" || i["action"] == "DescribePushQuota" && i["region"].is_null() {
                continue;
            }
            let ts = i["timestamp"].as_i64().expect("ts");
            let clock: SharedClock = Arc::new(TokioClock::starting_at(ts));
            let mut sim = TencentSim::new(
                World::new(clock.clone()),
                i["secret_id"].as_str().expect("id"),
                i["secret_key"].as_str().expect("key"),
            )
            .with_clock(clock);
            if let Some(t) = i["token"].as_str() {
                sim = sim.with_token(t);
            }
            let mut headers = HeaderMap::new();
            for h in x["headers_sent"].as_array().expect("headers") {
                headers.insert(
                    axum::http::HeaderName::from_bytes(h[0].as_str().expect("n").as_bytes())
                        .expect("name"),
                    h[1].as_str().expect("v").parse().expect("value"),
                );
            }
            let body = i["body"].as_str().expect("body").as_bytes().to_vec();
            assert_eq!(
                sim.authenticate(&Method::POST, &headers, &body),
                Ok(()),
                "{}",
                case.name
            );
            let mut changed = body.clone();
            changed.push(b' ');
            let unsigned = i["unsigned_payload"].as_bool() == Some(true);
            assert_eq!(
                sim.authenticate(&Method::POST, &headers, &changed).is_ok(),
                unsigned,
                "{}",
                case.name
            );
            let other = TencentSim::new(sim.world.clone(), &sim.secret_id, "another-key")
                .with_clock(sim.clock.clone());
            let other = match i["token"].as_str() {
                Some(t) => other.with_token(t),
                None => other,
            };
            assert_eq!(
                other
                    .authenticate(&Method::POST, &headers, &body)
                    .map_err(|e| e.0),
                Err("AuthFailure.SignatureFailure")
            );
            checked += 1;
        }
        assert!(checked >= 9, "{checked} vectors verified");
    }

    /// Requests the client builds are accepted; the sim's error shapes and
    /// parameter checks, seen through the router.
    #[tokio::test(start_paused = true)]
    async fn parameter_checks_and_error_shapes() {
        let t0 = 1_700_000_000;
        let clock: SharedClock = Arc::new(TokioClock::starting_at(t0));
        let w = World::new(clock.clone());
        w.add(task("t1", TaskType::RefreshFile, false));
        let sim = TencentSim::new(w.clone(), "AKID", "SK").with_clock(clock.clone());
        let transport = RouterTransport::new(sim.clone().router());
        let send = |action: &str, body: &str| {
            let input = sign::SignInput {
                method: "POST",
                host: "cdn.test",
                path: "/",
                content_type: sign::CONTENT_TYPE,
                body: body.as_bytes(),
                secret_id: "AKID",
                secret_key: "SK",
                service: sign::SERVICE,
                timestamp: t0,
                unsigned_payload: false,
            };
            let headers = sign::request_headers(
                &input,
                &sign::Common {
                    action,
                    version: VERSION,
                    region: None,
                    token: None,
                },
            );
            let req = HttpRequest {
                method: crate::http::Method::Post,
                url: "http://cdn.test/".into(),
                headers,
                body: body.as_bytes().to_vec(),
            };
            let t = transport.clone();
            async move {
                let r = t.send(req, Duration::from_secs(5)).await.expect("answer");
                assert_eq!(r.status, 200);
                serde_json::from_slice::<serde_json::Value>(&r.body).expect("json")["Response"]
                    .clone()
            }
        };
        let ok = send(
            "DescribePurgeTasks",
            r#"{"StartTime":"2023-11-15 00:00:00","Limit":1000}"#,
        )
        .await;
        assert_eq!(ok["TotalCount"], 2, "{ok}");
        assert!(ok["RequestId"].is_string());
        for (action, body, code) in [
            ("DescribePurgeTasks", "{}", "InvalidParameter.CdnParamError"),
            (
                "DescribePurgeTasks",
                r#"{"TaskId":"t1","Limit":1001}"#,
                "InvalidParameter.CdnParamError",
            ),
            (
                "DescribePushTasks",
                r#"{"TaskId":"t1","PurgeType":"url"}"#,
                "UnknownParameter",
            ),
            (
                "DescribePurgeTasks",
                r#"{"StartTime":"2023-11-15T00:00:00Z"}"#,
                "InvalidParameter.CdnParamError",
            ),
            (
                "DescribePurgeQuota",
                r#"{"Area":"mainland"}"#,
                "UnknownParameter",
            ),
            ("PurgeUrlsCache", "{}", "InvalidAction"),
        ] {
            let r = send(action, body).await;
            assert_eq!(r["Error"]["Code"], code, "{action} {body}: {r}");
            assert!(r["RequestId"].is_string());
        }
        let by_id = send("DescribePurgeTasks", r#"{"TaskId":"t1"}"#).await;
        assert_eq!(by_id["PurgeLogs"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            sim.task_id_lookups.load(Ordering::Relaxed),
            1,
            "rejected requests are not lookups"
        );
        let q = send("DescribePushQuota", "{}").await;
        assert_eq!(q["UrlPush"][0]["Total"], 10_000);
    }
}
