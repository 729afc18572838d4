//! Simulated Volcengine MCDN API (`vendors::volcengine`): `POST
//! /?Action=...&Version=2022-03-01` with a JSON body, V4 signatures verified
//! from the request as received (the signed headers the client names, the
//! Host as sent, the body bytes received) with the known secret, X-Date
//! within 900 s, 30 requests/s per action (429 `AccountFlowLimitExceeded`),
//! `PageSize` above 100 rejected, and — as the vendor does — a missing or
//! invalid window silently replaced by the last 24 hours.
//!
//! Tasks come from a shared [`World`]: a pending task has no sub-tasks yet;
//! running and finished ones fan out to one or two cloud vendors; a failed
//! task is `done` with one sub-task whose `SubmitStatus` is `failed`.

// Handlers return the vendor's error response as their `Err`; boxing it
// would buy nothing in a test server.
#![allow(clippy::result_large_err)]

use super::{Control, Fault, SimTask, World};
use crate::clock::{SharedClock, SystemClock};
use crate::task::{TaskStatus, TaskType};
use crate::vendors::volcengine::api::{
    parse_type, wire_type, ListBody, ListResult, PageOut, QuotaBody, QuotaResult, WireQuota,
    WireSubTask, WireTask,
};
use crate::vendors::volcengine::sign;
use crate::vendors::volcengine::{APIS, MAX_PAGE_SIZE, VERSION};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// How far X-Date may be from the server's time.
pub const MAX_SKEW_SECONDS: i64 = 900;

/// Underlying cloud vendors a multi-cloud task may fan out to.
pub const CLOUD_VENDORS: &[&str] = &["aliyun", "tencent", "volcengine", "huawei", "baishan"];

/// Daily quota the simulator reports for each multi-cloud account id:
/// (RefreshUrl quota, remain), (RefreshDir quota, remain), (Preload quota, remain).
pub const QUOTA_PER_ACCOUNT: [(i64, i64); 3] = [(10_000, 9_000), (100, 95), (1_000, 250)];

/// Description of a failed sub-task.
pub const FAILED_DESCRIPTION: &str = "vendor rejected the submission: Origin Return StatusCode 5XX";

/// The simulated MCDN service.
#[derive(Clone)]
pub struct VolcengineSim {
    pub world: Arc<World>,
    pub control: Arc<Control>,
    /// The one access key id it knows.
    pub access_key_id: String,
    secret: String,
    /// When set, requests must carry this `X-Security-Token` (STS).
    pub session_token: Option<String>,
    /// Server time for the X-Date check (the world may be frozen).
    pub clock: SharedClock,
    /// List requests answered with the `TaskId` filter (re-checks).
    pub task_id_lookups: Arc<AtomicU64>,
    next_request: Arc<AtomicU64>,
}

impl std::fmt::Debug for VolcengineSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolcengineSim")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl VolcengineSim {
    /// A simulator accepting one key pair, enforcing the published limits.
    pub fn new(world: Arc<World>, access_key_id: &str, secret: &str) -> Self {
        let control = Control::new();
        for api in APIS {
            control.limit(api.name, api.limit);
        }
        VolcengineSim {
            world,
            control,
            access_key_id: access_key_id.to_owned(),
            secret: secret.to_owned(),
            session_token: None,
            clock: Arc::new(SystemClock),
            task_id_lookups: Arc::new(AtomicU64::new(0)),
            next_request: Arc::new(AtomicU64::new(1)),
        }
    }

    /// Uses `clock` for the X-Date check (paused-time tests).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Requires STS requests carrying `token`.
    pub fn with_session_token(mut self, token: &str) -> Self {
        self.session_token = Some(token.to_owned());
        self
    }

    /// Its routes: everything is `/`.
    pub fn router(self) -> Router {
        Router::new().route("/", any(handle)).with_state(self)
    }

    fn request_id(&self) -> String {
        let n = self.next_request.fetch_add(1, Ordering::Relaxed);
        format!("20240219203648{n:020X}")
    }

    /// An error in the vendor's shape (gateway errors spell `RequestId`).
    fn error(
        &self,
        status: StatusCode,
        action: &str,
        code: &str,
        code_n: i64,
        msg: &str,
    ) -> Response {
        let body = json!({
            "ResponseMetadata": {
                "RequestId": self.request_id(),
                "Action": action,
                "Version": VERSION,
                "Service": sign::SERVICE,
                "Region": sign::REGION,
                "Error": {"CodeN": code_n, "Code": code, "Message": msg}
            }
        });
        (
            status,
            [("content-type", "application/json")],
            body.to_string(),
        )
            .into_response()
    }

    /// A success in the vendor's shape (successes spell `RequestID`).
    fn success(&self, action: &str, result: serde_json::Value) -> String {
        json!({
            "ResponseMetadata": {
                "RequestID": self.request_id(),
                "Action": action,
                "Version": VERSION,
                "Service": sign::SERVICE,
                "Region": sign::REGION
            },
            "Result": result
        })
        .to_string()
    }

    /// Authentication as the gateway does it; `Err` is the answer to send.
    fn authenticate(
        &self,
        method: &Method,
        action: &str,
        query: &[(String, String)],
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), (Response, &'static str)> {
        let header = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let fail = |status, code, code_n, msg| {
            Err((self.error(status, action, code, code_n, msg), "auth_error"))
        };
        let Some(raw) = header("authorization") else {
            return fail(
                StatusCode::UNAUTHORIZED,
                "MissingAuthenticationToken",
                100003,
                "Request is missing Authorization header.",
            );
        };
        let Some(auth) = parse_authorization(&raw) else {
            return fail(
                StatusCode::UNAUTHORIZED,
                "MissingSignature",
                100005,
                "The Authorization header is malformed.",
            );
        };
        let Some(x_date) = header("x-date") else {
            return Err((
                self.error(
                    StatusCode::BAD_REQUEST,
                    action,
                    "MissingRequestInfo",
                    100004,
                    "Request is missing X-Date.",
                ),
                "client_error",
            ));
        };
        let sent = chrono::NaiveDateTime::parse_from_str(&x_date, "%Y%m%dT%H%M%SZ")
            .map(|t| t.and_utc().timestamp());
        match sent {
            Ok(t) if (t - self.clock.unix()).abs() <= MAX_SKEW_SECONDS => {}
            _ => {
                return fail(
                    StatusCode::BAD_REQUEST,
                    "InvalidTimestamp",
                    100006,
                    "The request X-Date is invalid or more than 900 seconds from the server time.",
                );
            }
        }
        if auth.access_key_id != self.access_key_id {
            return fail(
                StatusCode::UNAUTHORIZED,
                "InvalidAccessKey",
                100009,
                "The AccessKey ID provided does not exist.",
            );
        }
        let names = &auth.signed_headers;
        let signs = |n: &str| names.iter().any(|h| h == n);
        if let Some(token) = &self.session_token {
            if header("x-security-token").as_deref() != Some(token.as_str())
                || !signs("x-security-token")
            {
                return fail(
                    StatusCode::UNAUTHORIZED,
                    "InvalidAccessKey",
                    100009,
                    "The security token is missing or invalid.",
                );
            }
        }
        let body_hash = sign::sha256_hex(body);
        let hash_ok = header("x-content-sha256").is_none_or(|h| h == body_hash);
        let lookup = |n: &str| header(n);
        let expected = signature_for(
            method.as_str(),
            "/",
            query,
            &auth,
            &lookup,
            body,
            &self.secret,
        );
        match expected {
            Some(s) if hash_ok && signs("host") && signs("x-date") && s.signature == auth.signature => Ok(()),
            // Like the real service, echo what we signed, never the key.
            Some(s) => fail(StatusCode::UNAUTHORIZED, "SignatureDoesNotMatch", 100010, &format!("The request signature we calculated does not match the signature you provided. The canonical string to sign was: {:?}", s.string_to_sign)),
            None => fail(StatusCode::UNAUTHORIZED, "SignatureDoesNotMatch", 100010, "A signed header is missing or the credential scope is malformed."),
        }
    }
}

/// A stable small hash of a task id (sub-task fan-out, vendor ids).
fn id_hash(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The vendors a task fans out to (one or two, fixed per task).
pub fn cloud_vendors(id: &str) -> Vec<&'static str> {
    let h = id_hash(id);
    let n = CLOUD_VENDORS.len() as u64;
    let first = (h % n) as usize;
    let mut v = vec![CLOUD_VENDORS[first]];
    if (h >> 8) % 2 == 1 {
        v.push(CLOUD_VENDORS[(first + 1 + ((h >> 16) % (n - 1)) as usize) % n as usize]);
    }
    v
}

/// A world task as MCDN reports it at `now`; `None` for types MCDN lacks.
pub fn wire_task(t: &SimTask, now: i64) -> Option<WireTask> {
    let ty = wire_type(t.task_type)?;
    let status = t.status_at(now);
    let vendors = cloud_vendors(&t.id);
    let sub_tasks: Vec<WireSubTask> = if status == TaskStatus::Pending {
        Vec::new()
    } else {
        let last = vendors.len().saturating_sub(1);
        vendors
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let failed = status == TaskStatus::Failed && i == last;
                WireSubTask {
                    vendor_task_ids: Some(if failed {
                        Vec::new()
                    } else {
                        vec![format!("{}", id_hash(&t.id) % 100_000_000_000 + i as u64)]
                    }),
                    vendor: Some((*v).to_owned()),
                    submit_status: Some(if failed { "failed" } else { "success" }.to_owned()),
                    description: Some(if failed { FAILED_DESCRIPTION } else { "" }.to_owned()),
                    url: Some(t.urls.clone()),
                    cloud_account_id: Some(format!("654a58632d2d5c7b10dc2b{i:02x}")),
                    cloud_account_name: Some((*v).to_owned()),
                    product_type: Some("cdn".to_owned()),
                    sub_product: Some("cdn".to_owned()),
                    submit_at: Some(t.created_at + t.queued_for),
                }
            })
            .collect()
    };
    Some(WireTask {
        task_id: Some(t.id.clone()),
        vendor: Some(String::new()),
        task_type: Some(ty.to_owned()),
        sub_tasks: Some(sub_tasks),
        created_at: Some(t.created_at),
        task_status: Some(
            match status {
                TaskStatus::Pending => "pending",
                TaskStatus::Running | TaskStatus::Unknown => "executing",
                TaskStatus::Success | TaskStatus::Failed => "done",
            }
            .to_owned(),
        ),
        end_at: t.finished_at(now),
    })
}

/// A window the vendor accepts: both bounds, in seconds, start before end.
/// Anything else silently becomes the last 24 hours.
pub fn effective_window(start: Option<i64>, end: Option<i64>, now: i64) -> (i64, i64) {
    match (start, end) {
        (Some(s), Some(e)) if 0 < s && s < e && e < 100_000_000_000 => (s, e),
        _ => (now - 86_400, now + 1),
    }
}

async fn handle(
    State(s): State<VolcengineSim>,
    method: Method,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let action = get("Action").unwrap_or("").to_owned();
    let known = APIS.iter().any(|a| a.name == action);
    if !known || get("Version") != Some(VERSION) {
        s.control
            .record(if known { &action } else { "unknown" }, "client_error");
        return s.error(
            StatusCode::NOT_FOUND,
            &action,
            "InvalidActionOrVersion",
            100008,
            "Could not find operation with the given Action and Version.",
        );
    }
    if let Err((resp, kind)) = s.authenticate(&method, &action, &query, &headers, &body) {
        s.control.record(&action, kind);
        return resp;
    }
    if s.control.auth_failing() {
        s.control.record(&action, "auth_error");
        return s.error(
            StatusCode::UNAUTHORIZED,
            &action,
            "InvalidAccessKey",
            100009,
            "The AccessKey ID provided does not exist.",
        );
    }
    if !s.control.admit(&action) || s.control.throttling() {
        return s.control.throttled(
            &action,
            s.error(
                StatusCode::TOO_MANY_REQUESTS,
                &action,
                "AccountFlowLimitExceeded",
                100027,
                "Request rate exceeded the account flow limit.",
            ),
        );
    }
    if s.control.fault() == Fault::ServerError {
        s.control.record(&action, "server_error");
        return s.error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &action,
            "InternalError",
            100014,
            "The request processing has failed due to some unknown error.",
        );
    }
    if method != Method::POST {
        s.control.record(&action, "client_error");
        return s.error(
            StatusCode::BAD_REQUEST,
            &action,
            "InvalidParameter",
            100011,
            "This action accepts POST with a JSON body.",
        );
    }
    let answer = match action.as_str() {
        "DescribeContentQuota" => quota(&s, &action, &body),
        _ => list(&s, &action, &body),
    };
    let body = match answer {
        Ok(b) => b,
        Err(resp) => {
            s.control.record(&action, "client_error");
            return resp;
        }
    };
    s.control
        .deliver(
            &action,
            "",
            ([("content-type", "application/json")], body).into_response(),
        )
        .await
}

fn invalid(s: &VolcengineSim, action: &str, msg: &str) -> Response {
    s.error(
        StatusCode::BAD_REQUEST,
        action,
        "InvalidParameter",
        100011,
        msg,
    )
}

fn list(s: &VolcengineSim, action: &str, body: &[u8]) -> Result<String, Response> {
    let req: ListBody = if body.is_empty() {
        ListBody::default()
    } else {
        serde_json::from_slice(body).map_err(|e| {
            invalid(
                s,
                action,
                &format!("The request body is not valid JSON: {e}"),
            )
        })?
    };
    let page = req.pagination.unwrap_or_default();
    let size = page.page_size.filter(|n| *n > 0).unwrap_or(10);
    if size > i64::from(MAX_PAGE_SIZE) {
        return Err(invalid(
            s,
            action,
            "Pagination.PageSize must be between 1 and 100.",
        ));
    }
    let num = page.page_num.filter(|n| *n > 0).unwrap_or(1);
    let ty = match req.task_type.as_deref() {
        None | Some("") => None,
        Some(t) => Some(parse_type(t).ok_or_else(|| {
            invalid(
                s,
                action,
                &format!("TaskType {t} is not one of refresh_file, refresh_dir, preload."),
            )
        })?),
    };
    let statuses: Option<&[&str]> = match req.task_status.as_deref() {
        None | Some("") => None,
        Some("executing") => Some(&["executing"]),
        Some("done") => Some(&["done"]),
        Some("pending") if action == "ListContentTasks" => Some(&["pending"]),
        Some(other) => {
            return Err(invalid(
                s,
                action,
                &format!("TaskStatus {other} is not valid."),
            ))
        }
    };
    if req.task_id.is_some() {
        s.task_id_lookups.fetch_add(1, Ordering::Relaxed);
    }
    let now = s.world.now();
    let (from, to) = effective_window(req.start_time, req.end_time, now);
    let all: Vec<WireTask> = s
        .world
        .list(
            from,
            to,
            ty,
            req.domain.as_deref().filter(|d| !d.is_empty()),
        )
        .iter()
        .filter(|t| req.task_id.as_deref().is_none_or(|id| t.id == id))
        .filter(|t| {
            req.url
                .as_deref()
                .is_none_or(|u| t.urls.iter().any(|x| x == u))
        })
        .filter_map(|t| wire_task(t, now))
        .filter(|w| statuses.is_none_or(|ss| ss.contains(&w.task_status.as_deref().unwrap_or(""))))
        .collect();
    let total = all.len() as i64;
    let tasks: Vec<WireTask> = all
        .into_iter()
        .skip(((num - 1) * size) as usize)
        .take(size as usize)
        .collect();
    let result = ListResult {
        tasks: Some(tasks),
        pagination: Some(PageOut {
            page_num: Some(num),
            page_size: Some(size),
            total: Some(total),
        }),
    };
    Ok(s.success(action, serde_json::to_value(result).unwrap_or_default()))
}

fn quota(s: &VolcengineSim, action: &str, body: &[u8]) -> Result<String, Response> {
    let req: QuotaBody = serde_json::from_slice(body).map_err(|e| {
        invalid(
            s,
            action,
            &format!("The request body is not valid JSON: {e}"),
        )
    })?;
    let ids: Vec<&str> = req
        .cloud_account_id
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .collect();
    if ids.is_empty() {
        return Err(s.error(
            StatusCode::BAD_REQUEST,
            action,
            "MissingParameter",
            100002,
            "The request must contain the parameter CloudAccountId.",
        ));
    }
    let [(uq, ur), (dq, dr), (pq, pr)] = QUOTA_PER_ACCOUNT;
    let quotas = ids
        .iter()
        .map(|id| WireQuota {
            cloud_account_id: Some((*id).to_owned()),
            vendor: Some("aliyun".to_owned()),
            product_type: Some("cdn".to_owned()),
            refresh_url_quota: Some(uq),
            refresh_url_remain: Some(ur),
            refresh_dir_quota: Some(dq),
            refresh_dir_remain: Some(dr),
            preload_quota: Some(pq),
            preload_remain: Some(pr),
        })
        .collect();
    let result = QuotaResult {
        quotas: Some(quotas),
    };
    Ok(s.success(action, serde_json::to_value(result).unwrap_or_default()))
}

/// Task types the simulator can serve (the world may hold others).
pub fn served(t: TaskType) -> bool {
    wire_type(t).is_some()
}

// Server side of Volcengine V4: what the service does with a request.

pub use super::sigv4::Authorization;

/// Parses `HMAC-SHA256 Credential=AK/scope, SignedHeaders=a;b, Signature=hex`.
pub fn parse_authorization(value: &str) -> Option<Authorization> {
    super::sigv4::parse_authorization(&crate::vendors::sigv4::VOLCENGINE, value)
}

/// Recomputes a received request's signature the way the service does:
/// from the headers the client names as signed (`header` looks one up by
/// lowercase name; `host` is the Host header as received), the scope the
/// client claims, and the body bytes actually received. `None` when a
/// signed header is missing or the scope is malformed.
pub fn signature_for(
    method: &str,
    path: &str,
    query: &[(String, String)],
    auth: &Authorization,
    header: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
    secret: &str,
) -> Option<sign::Signed> {
    let mut signed = Vec::new();
    for name in &auth.signed_headers {
        let name = name.to_ascii_lowercase();
        let value = header(&name)?;
        let value = if name == "host" {
            sign::signed_host(&value).to_owned()
        } else {
            value
        };
        signed.push((name, value));
    }
    let x_date = header("x-date")?;
    let mut scope = auth.credential_scope.split('/');
    let (date, region, service) = (scope.next()?, scope.next()?, scope.next()?);
    if scope.next() != Some("request") || x_date.get(..8) != Some(date) {
        return None;
    }
    Some(sign::stages(
        method,
        path,
        query,
        &signed,
        &sign::sha256_hex(body),
        &x_date,
        &auth.access_key_id,
        secret,
        region,
        service,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_tasks_are_done_with_one_failed_subtask() {
        let t = SimTask {
            id: "abc".into(),
            task_type: TaskType::Prefetch,
            created_at: 100,
            domain: "d".into(),
            urls: vec!["u1".into(), "u2".into()],
            queued_for: 10,
            runs_for: Some(100),
            fails: true,
        };
        let pending = wire_task(&t, 105).expect("served");
        assert_eq!(pending.task_status.as_deref(), Some("pending"));
        assert!(pending.sub_tasks.as_deref().is_some_and(<[_]>::is_empty));
        let running = wire_task(&t, 150).expect("served");
        assert_eq!(running.task_status.as_deref(), Some("executing"));
        let done = wire_task(&t, 300).expect("served");
        assert_eq!(done.task_status.as_deref(), Some("done"));
        assert_eq!(done.end_at, Some(210));
        let subs = done.sub_tasks.expect("subs");
        assert!((1..=2).contains(&subs.len()));
        assert_eq!(
            subs.iter()
                .filter(|s| s.submit_status.as_deref() == Some("failed"))
                .count(),
            1
        );
        let n = crate::vendors::volcengine::api::to_task(&wire_task(&t, 300).expect("w"), None)
            .expect("task");
        assert_eq!(n.status, TaskStatus::Failed);
        assert_eq!(n.error.as_deref(), Some(FAILED_DESCRIPTION));
        assert_eq!(n.url_count, 2);
        assert!(wire_task(
            &SimTask {
                task_type: TaskType::RefreshRegex,
                ..t
            },
            300
        )
        .is_none());
    }

    #[test]
    fn fan_out_is_one_or_two_vendors_and_both_occur() {
        let sizes: Vec<usize> = (0..200)
            .map(|i| cloud_vendors(&format!("{i:x}")).len())
            .collect();
        assert!(sizes.iter().all(|n| (1..=2).contains(n)));
        assert!(sizes.contains(&1) && sizes.contains(&2));
        for i in 0..200 {
            let v = cloud_vendors(&format!("{i:x}"));
            assert!(v.len() < 2 || v[0] != v[1]);
        }
    }

    #[test]
    fn invalid_windows_silently_become_the_last_day() {
        let now = 1_700_000_000;
        let day = (now - 86_400, now + 1);
        assert_eq!(effective_window(Some(10), Some(20), now), (10, 20));
        assert_eq!(effective_window(None, Some(20), now), day);
        assert_eq!(effective_window(Some(20), Some(10), now), day);
        assert_eq!(effective_window(Some(20), Some(20), now), day);
        assert_eq!(
            effective_window(Some(now * 1000 - 5), Some(now * 1000), now),
            day
        );
    }
}
