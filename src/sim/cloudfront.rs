//! Simulated CloudFront invalidation API (`vendors::cloudfront`):
//! `GET /2020-05-31/distribution/{Id}/invalidation` (newest first, `Marker`
//! / `MaxItems` / `NextMarker` / `IsTruncated`) and
//! `GET /2020-05-31/distribution/{Id}/invalidation/{InvalidationId}`.
//!
//! Requests are verified as AWS does, from what was received: SigV4 over the
//! headers the client names as signed (Host as sent), the scope
//! `date/us-east-1/cloudfront/aws4_request`, `X-Amz-Date` within 5 minutes
//! of the server clock, the one known key (403 `InvalidClientTokenId`
//! otherwise) and, when configured, the session token in
//! `X-Amz-Security-Token`. Answers and errors are AWS's REST-XML shapes
//! (`<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/>`,
//! plus `x-amz-request-id`).
//!
//! Documented limits of the simulator (AWS publishes none for these reads):
//! [`cloudfront::APIS`](crate::vendors::cloudfront::APIS) per API
//! (5 requests/s), answered beyond that with HTTP 400 `Throttling` "Rate
//! exceeded"; `MaxItems` above 100 is served as 100.
//!
//! Tasks come from a shared [`World`]: file and directory refreshes, each
//! assigned to one distribution by its id; pending and running tasks are
//! `InProgress`, finished ones `Completed` (CloudFront has no failed state,
//! so a world task that fails is reported `Completed`).

// Handlers return the vendor's error response as their `Err`.
#![allow(clippy::result_large_err)]

use super::{Control, Fault, SimTask, World};
use crate::clock::{SharedClock, SystemClock};
use crate::task::{TaskStatus, TaskType};
use crate::vendors::cloudfront::api::{
    self, ErrorResponse, Invalidation, InvalidationBatch, InvalidationList, InvalidationSummary,
    PathItems, Paths, SummaryItems, WireError,
};
use crate::vendors::cloudfront::sign::{canonical_pairs, signed_host, REGION, SERVICE};
use crate::vendors::cloudfront::{APIS, MAX_ITEMS, VERSION};
use crate::vendors::sigv4::{self, AWS4};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// How far X-Amz-Date may be from the server's time (AWS: 5 minutes).
pub const MAX_SKEW_SECONDS: i64 = 300;

/// The simulated CloudFront service.
#[derive(Clone)]
pub struct CloudfrontSim {
    pub world: Arc<World>,
    pub control: Arc<Control>,
    /// The one access key id it knows.
    pub access_key_id: String,
    secret: String,
    /// When set, requests must carry this `X-Amz-Security-Token`.
    pub session_token: Option<String>,
    /// The distributions that exist, in the order tasks are spread over them.
    pub distributions: Vec<String>,
    /// Distributions the key may not read (403 AccessDenied).
    denied: Arc<Mutex<Vec<String>>>,
    /// Server time for the X-Amz-Date check.
    pub clock: SharedClock,
    /// GetInvalidation requests answered, by task id (`DIST/ID`).
    gets: Arc<Mutex<HashMap<String, u64>>>,
    next_request: Arc<AtomicU64>,
}

impl std::fmt::Debug for CloudfrontSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudfrontSim")
            .field("access_key_id", &self.access_key_id)
            .field("distributions", &self.distributions)
            .finish_non_exhaustive()
    }
}

/// A stable small hash of a world id.
fn id_hash(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The invalidation id of a world task: `I` and 13 upper-case letters or
/// digits, as CloudFront's look.
pub fn invalidation_id(t: &SimTask) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut h = id_hash(&t.id) ^ (t.created_at as u64).rotate_left(17);
    let mut s = String::from("I");
    for _ in 0..13 {
        s.push(ALPHABET[(h % 36) as usize] as char);
        h = (h / 36) ^ h.rotate_left(29);
    }
    s
}

/// The paths of a world task: its URLs' paths; a directory refresh
/// invalidates each URL's directory with a trailing `*`.
pub fn paths(t: &SimTask) -> Vec<String> {
    t.urls
        .iter()
        .map(|u| {
            let p = u
                .split_once("://")
                .and_then(|(_, r)| r.find('/').map(|i| r[i..].to_owned()))
                .unwrap_or_else(|| format!("/{u}"));
            if t.task_type == TaskType::RefreshDir {
                match p.rfind('/') {
                    Some(i) => format!("{}*", &p[..=i]),
                    None => "/*".to_owned(),
                }
            } else {
                p
            }
        })
        .collect()
}

/// CloudFront's status for a world task at `now`.
pub fn wire_status(t: &SimTask, now: i64) -> &'static str {
    if t.status_at(now).is_finished() {
        "Completed"
    } else {
        "InProgress"
    }
}

/// The status the exporter should report for a world task.
pub fn expected_status(t: &SimTask, now: i64) -> TaskStatus {
    if t.status_at(now).is_finished() {
        TaskStatus::Success
    } else {
        TaskStatus::Running
    }
}

/// ISO 8601 with milliseconds, as CloudFront writes CreateTime.
fn iso(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Task types the simulator serves.
pub fn served(t: TaskType) -> bool {
    matches!(t, TaskType::RefreshFile | TaskType::RefreshDir)
}

impl CloudfrontSim {
    /// A simulator accepting one key pair, enforcing its documented limits,
    /// with these distributions.
    pub fn new(
        world: Arc<World>,
        access_key_id: &str,
        secret: &str,
        distributions: &[&str],
    ) -> Self {
        let control = Control::new();
        for api in APIS {
            control.limit(api.name, api.limit);
        }
        CloudfrontSim {
            world,
            control,
            access_key_id: access_key_id.to_owned(),
            secret: secret.to_owned(),
            session_token: None,
            distributions: distributions.iter().map(|d| (*d).to_owned()).collect(),
            denied: Arc::new(Mutex::new(Vec::new())),
            clock: Arc::new(SystemClock),
            gets: Arc::new(Mutex::new(HashMap::new())),
            next_request: Arc::new(AtomicU64::new(1)),
        }
    }

    /// Uses `clock` for the X-Amz-Date check (paused-time tests).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Requires temporary credentials carrying `token`.
    pub fn with_session_token(mut self, token: &str) -> Self {
        self.session_token = Some(token.to_owned());
        self
    }

    /// Denies the key access to `dist` (an IAM policy scoped to others).
    pub fn deny(&self, dist: &str) {
        self.denied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(dist.to_owned());
    }

    /// Every route: the API lives below `/2020-05-31/`.
    pub fn router(self) -> Router {
        Router::new().fallback(handle).with_state(self)
    }

    /// GetInvalidation requests answered for `task_id` (`DIST/ID`).
    pub fn gets_of(&self, task_id: &str) -> u64 {
        self.gets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(task_id)
            .copied()
            .unwrap_or(0)
    }

    /// The distribution a world task belongs to.
    pub fn distribution_of(&self, t: &SimTask) -> &str {
        let n = self.distributions.len().max(1) as u64;
        self.distributions
            .get((id_hash(&t.id) % n) as usize)
            .map(String::as_str)
            .unwrap_or("")
    }

    /// The exporter's task id of a world task.
    pub fn task_id(&self, t: &SimTask) -> String {
        format!("{}/{}", self.distribution_of(t), invalidation_id(t))
    }

    /// Served invalidations of `dist`, newest first.
    pub fn invalidations(&self, dist: &str) -> Vec<SimTask> {
        let mut v: Vec<SimTask> = self
            .world
            .list(i64::MIN, i64::MAX, None, None)
            .into_iter()
            .filter(|t| served(t.task_type) && self.distribution_of(t) == dist)
            .collect();
        v.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| invalidation_id(a).cmp(&invalidation_id(b)))
        });
        v
    }

    /// Ground truth: served invalidations created in `[from, now]` by type ×
    /// the status the exporter should report.
    pub fn truth(&self, from: i64) -> HashMap<(TaskType, TaskStatus), u64> {
        let now = self.world.now();
        let mut m = HashMap::new();
        for t in self.world.list(from, now + 1, None, None) {
            if served(t.task_type) && !self.distribution_of(&t).is_empty() {
                *m.entry((t.task_type, expected_status(&t, now)))
                    .or_insert(0) += 1;
            }
        }
        m
    }

    /// Ground truth of `cdn_task_urls`: paths by type × status.
    pub fn url_truth(&self, from: i64) -> HashMap<(TaskType, TaskStatus), u64> {
        let now = self.world.now();
        let mut m = HashMap::new();
        for t in self.world.list(from, now + 1, None, None) {
            if served(t.task_type) {
                *m.entry((t.task_type, expected_status(&t, now)))
                    .or_insert(0) += t.urls.len() as u64;
            }
        }
        m
    }

    fn request_id(&self) -> String {
        let n = self.next_request.fetch_add(1, Ordering::Relaxed);
        format!("5a1b0c2d-0000-4000-8000-{n:012x}")
    }

    /// An error in AWS's REST-XML shape.
    fn error(&self, status: StatusCode, code: &str, msg: &str) -> Response {
        let rid = self.request_id();
        let body = api::to_xml(&ErrorResponse {
            xmlns: Some(api::XMLNS.to_owned()),
            error: Some(WireError {
                kind: Some(
                    if status.is_server_error() {
                        "Receiver"
                    } else {
                        "Sender"
                    }
                    .to_owned(),
                ),
                code: Some(code.to_owned()),
                message: Some(msg.to_owned()),
            }),
            request_id: Some(rid.clone()),
        });
        (
            status,
            [
                ("content-type", "text/xml"),
                ("x-amz-request-id", rid.as_str()),
            ],
            body,
        )
            .into_response()
    }

    /// SigV4 verification as the service does it; `Err` is the answer.
    fn authenticate(
        &self,
        method: &Method,
        path: &str,
        query: &[(String, String)],
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), Response> {
        let header = |n: &str| -> Option<String> {
            let all: Vec<&str> = headers
                .get_all(n)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            (!all.is_empty()).then(|| all.join(","))
        };
        let denied = |code: &str, msg: &str| Err(self.error(StatusCode::FORBIDDEN, code, msg));
        let Some(raw) = header("authorization") else {
            return denied(
                "MissingAuthenticationToken",
                "Request is missing Authentication Token",
            );
        };
        let Some(auth) = super::sigv4::parse_authorization(&AWS4, &raw) else {
            return denied(
                "IncompleteSignature",
                "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.",
            );
        };
        let Some(x_date) = header("x-amz-date") else {
            return denied(
                "IncompleteSignature",
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
            );
        };
        let sent = chrono::NaiveDateTime::parse_from_str(&x_date, "%Y%m%dT%H%M%SZ")
            .map(|t| t.and_utc().timestamp());
        match sent {
            Ok(t) if (t - self.clock.unix()).abs() <= MAX_SKEW_SECONDS => {}
            _ => {
                return denied(
                    "SignatureDoesNotMatch",
                    &format!("Signature expired: {x_date} is now earlier or later than 5 minutes from the server time."),
                )
            }
        }
        if auth.access_key_id != self.access_key_id {
            return denied(
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
            );
        }
        let signs = |n: &str| auth.signed_headers.iter().any(|h| h == n);
        if let Some(token) = &self.session_token {
            if header("x-amz-security-token").as_deref() != Some(token.as_str())
                || !signs("x-amz-security-token")
            {
                return denied(
                    "InvalidClientTokenId",
                    "The security token included in the request is invalid.",
                );
            }
        }
        let mut scope = auth.credential_scope.split('/');
        let scope_ok = scope.next() == x_date.get(..8)
            && scope.next() == Some(REGION)
            && scope.next() == Some(SERVICE)
            && scope.next() == Some(AWS4.terminator)
            && scope.next().is_none();
        if !scope_ok {
            return denied(
                "SignatureDoesNotMatch",
                &format!(
                    "Credential should be scoped to a valid region and service: {}",
                    auth.credential_scope
                ),
            );
        }
        let mut values = Vec::new();
        for name in &auth.signed_headers {
            let Some(v) = header(name) else {
                return denied(
                    "SignatureDoesNotMatch",
                    &format!("The request signature names header {name}, which the request lacks."),
                );
            };
            values.push((
                name.clone(),
                if name == "host" {
                    signed_host(&v).to_ascii_lowercase()
                } else {
                    v
                },
            ));
        }
        let signed = canonical_pairs(values.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let body_hash = sigv4::sha256_hex(body);
        let expected = sigv4::stages(
            &AWS4,
            &sigv4::Request {
                method: method.as_str(),
                path,
                query,
                signed: &signed,
                body_hash: &body_hash,
                x_date: &x_date,
                access_key_id: &auth.access_key_id,
                secret: &self.secret,
                region: REGION,
                service: SERVICE,
            },
        );
        if signs("host") && signs("x-amz-date") && expected.signature == auth.signature {
            Ok(())
        } else {
            // Like AWS, echo what we signed, never the key.
            denied(
                "SignatureDoesNotMatch",
                &format!("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.\n\nThe String-to-Sign should have been\n'{}'\n", expected.string_to_sign),
            )
        }
    }

    fn list(&self, dist: &str, query: &[(String, String)]) -> Result<String, Response> {
        let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let max = match get("MaxItems") {
            None => MAX_ITEMS as usize,
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n >= 1 => (n as usize).min(MAX_ITEMS as usize),
                _ => {
                    return Err(self.error(
                        StatusCode::BAD_REQUEST,
                        "InvalidArgument",
                        "MaxItems must be a positive integer.",
                    ))
                }
            },
        };
        let marker = get("Marker").filter(|m| !m.is_empty());
        let now = self.world.now();
        let all = self.invalidations(dist);
        let start = match marker {
            None => 0,
            Some(m) => match all.iter().position(|t| invalidation_id(t) == m) {
                Some(i) => i + 1,
                None => {
                    return Err(self.error(
                        StatusCode::BAD_REQUEST,
                        "InvalidArgument",
                        "The Marker is not a valid invalidation id.",
                    ))
                }
            },
        };
        let page: Vec<&SimTask> = all.iter().skip(start).take(max).collect();
        let truncated = start + page.len() < all.len();
        let list = InvalidationList {
            xmlns: Some(api::XMLNS.to_owned()),
            marker: Some(marker.unwrap_or("").to_owned()),
            next_marker: if truncated {
                page.last().map(|t| invalidation_id(t))
            } else {
                None
            },
            max_items: Some(max as i64),
            is_truncated: Some(truncated),
            quantity: Some(page.len() as i64),
            items: (!page.is_empty()).then(|| SummaryItems {
                summaries: page
                    .iter()
                    .map(|t| InvalidationSummary {
                        id: Some(invalidation_id(t)),
                        create_time: Some(iso(t.created_at)),
                        status: Some(wire_status(t, now).to_owned()),
                    })
                    .collect(),
            }),
        };
        Ok(api::to_xml(&list))
    }

    fn get_one(&self, dist: &str, inv: &str) -> Result<String, Response> {
        let now = self.world.now();
        let Some(t) = self
            .invalidations(dist)
            .into_iter()
            .find(|t| invalidation_id(t) == inv)
        else {
            return Err(self.error(
                StatusCode::NOT_FOUND,
                "NoSuchInvalidation",
                "The specified invalidation does not exist.",
            ));
        };
        *self
            .gets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(format!("{dist}/{inv}"))
            .or_insert(0) += 1;
        let p = paths(&t);
        let body = Invalidation {
            xmlns: Some(api::XMLNS.to_owned()),
            id: Some(inv.to_owned()),
            status: Some(wire_status(&t, now).to_owned()),
            create_time: Some(iso(t.created_at)),
            batch: Some(InvalidationBatch {
                paths: Some(Paths {
                    quantity: Some(p.len() as i64),
                    items: (!p.is_empty()).then_some(PathItems { paths: p }),
                }),
                caller_reference: Some(format!("sim-{}", t.id)),
            }),
        };
        Ok(api::to_xml(&body))
    }
}

async fn handle(
    State(s): State<CloudfrontSim>,
    method: Method,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (api, dist, inv) = match parts.as_slice() {
        [v, "distribution", d, "invalidation"] if *v == VERSION => (APIS[0].name, *d, None),
        [v, "distribution", d, "invalidation", i] if *v == VERSION => (APIS[1].name, *d, Some(*i)),
        _ => {
            s.control.record("unknown", "client_error");
            return s.error(
                StatusCode::NOT_FOUND,
                "InvalidURI",
                "Could not parse the specified URI.",
            );
        }
    };
    let detail = format!(
        "dist={dist} id={} marker={} max={}",
        inv.unwrap_or(""),
        query
            .iter()
            .find(|(k, _)| k == "Marker")
            .map_or("", |(_, v)| v.as_str()),
        query
            .iter()
            .find(|(k, _)| k == "MaxItems")
            .map_or("", |(_, v)| v.as_str()),
    );
    if s.control.auth_failing() {
        s.control.record_detail(api, "auth_error", &detail);
        return s.error(
            StatusCode::FORBIDDEN,
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        );
    }
    if let Err(resp) = s.authenticate(&method, &path, &query, &headers, &body) {
        s.control.record_detail(api, "auth_error", &detail);
        return resp;
    }
    if !s.control.admit(api) || s.control.throttling() {
        let resp = s.error(StatusCode::BAD_REQUEST, "Throttling", "Rate exceeded");
        return s.control.throttled(api, resp);
    }
    if s.control.fault() == Fault::ServerError {
        s.control.record_detail(api, "server_error", &detail);
        return s.error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "We encountered an internal error. Please try again.",
        );
    }
    if method != Method::GET {
        s.control.record_detail(api, "client_error", &detail);
        return s.error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
        );
    }
    if !s.distributions.iter().any(|d| d == dist) {
        s.control.record_detail(api, "client_error", &detail);
        return s.error(
            StatusCode::NOT_FOUND,
            "NoSuchDistribution",
            "The specified distribution does not exist.",
        );
    }
    if s.denied
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .any(|d| d == dist)
    {
        s.control.record_detail(api, "auth_error", &detail);
        return s.error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            &format!("User: arn:aws:iam::123456789012:user/exporter is not authorized to perform: cloudfront:{api} on resource: arn:aws:cloudfront::123456789012:distribution/{dist}"),
        );
    }
    let answer = match inv {
        None => s.list(dist, &query),
        Some(i) => s.get_one(dist, i),
    };
    let body = match answer {
        Ok(b) => b,
        Err(resp) => {
            s.control.record_detail(api, "client_error", &detail);
            return resp;
        }
    };
    let rid = s.request_id();
    let resp = (
        [
            ("content-type", "text/xml"),
            ("x-amz-request-id", rid.as_str()),
        ],
        body,
    )
        .into_response();
    // Every other fault damages the normal answer, in one place.
    s.control.deliver(api, &detail, resp).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, ty: TaskType, urls: &[&str]) -> SimTask {
        SimTask {
            id: id.into(),
            task_type: ty,
            created_at: 1_700_000_000,
            domain: "d".into(),
            urls: urls.iter().map(|u| (*u).to_owned()).collect(),
            queued_for: 5,
            runs_for: Some(100),
            fails: true,
        }
    }

    #[test]
    fn ids_paths_and_statuses_look_like_cloudfront() {
        let t = task(
            "00ab",
            TaskType::RefreshDir,
            &[
                "https://www1.example.com/static/7/0.js",
                "https://www1.example.com/a.css",
            ],
        );
        let id = invalidation_id(&t);
        assert_eq!(id.len(), 14);
        assert!(id.starts_with('I') && id.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(
            id,
            invalidation_id(&task("00ac", TaskType::RefreshDir, &[]))
        );
        assert_eq!(paths(&t), vec!["/static/7/*", "/*"]);
        let f = SimTask {
            task_type: TaskType::RefreshFile,
            ..t.clone()
        };
        assert_eq!(paths(&f), vec!["/static/7/0.js", "/a.css"]);
        assert_eq!(wire_status(&t, 1_700_000_001), "InProgress");
        assert_eq!(wire_status(&t, 1_700_000_050), "InProgress");
        // A failing world task is Completed: CloudFront has no failed state.
        assert_eq!(wire_status(&t, 1_700_000_200), "Completed");
        assert_eq!(expected_status(&t, 1_700_000_200), TaskStatus::Success);
        assert_eq!(iso(1_708_313_014), "2024-02-19T03:23:34.000Z");
    }
}
