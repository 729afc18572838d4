//! Simulated Alibaba Cloud CDN API (`vendors::aliyun`): RPC style on `/`,
//! parameters in the query (GET, or POST with an empty body as the ACS3 SDK
//! sends), signatures verified (RPC v1 and ACS3) by recomputing them from the
//! received parameters and the known secret, windows and page sizes checked
//! as the API documents, per-API rate limits, nonce replay detection, and
//! tasks served from a [`World`].
//!
//! Modelling choices: one [`SimTask`](super::SimTask) is one `CDNTask` entry
//! (its first URL is the `ObjectPath`); task ids are the decimal form of the
//! world's hex ids (Aliyun ids are numeric); queued tasks show as
//! `Refreshing`, as Aliyun CDN reports them.

use super::{Control, Fault, SimTask, World};
use crate::secret::Secret;
use crate::task::{TaskStatus, TaskType};
use crate::vendors::aliyun::api::{
    format_time, object_type_of, parse_time, task_type_of, wire_status, WireError, WireQuota,
    WireTask, WireTaskList, WireTasks,
};
use crate::vendors::aliyun::{sign, APIS, MAX_LOOKBACK, TASK_TYPES, VERSION};
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// v1 timestamps are valid for 31 minutes (doc), ACS3 dates for 15.
const V1_SKEW: i64 = 31 * 60;
const ACS3_SKEW: i64 = 15 * 60;

/// One request the simulator received: the action and every parameter
/// except `Signature`, and what it answered (`ok`, `fault`, or the code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRequest {
    pub api: String,
    pub params: Vec<(String, String)>,
    pub answer: String,
}

impl SimRequest {
    /// The value of parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The simulated Aliyun CDN API of one account.
#[derive(Clone)]
pub struct AliyunSim {
    pub world: Arc<World>,
    pub control: Arc<Control>,
    pub access_key_id: String,
    secret: Secret,
    /// Daily quotas per task type (remaining = quota − tasks created today).
    pub daily_quota: [(TaskType, u64); 4],
    requests: Arc<Mutex<Vec<SimRequest>>>,
    nonces: Arc<Mutex<HashMap<String, i64>>>,
}

impl std::fmt::Debug for AliyunSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AliyunSim")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// An answer before encoding: status and JSON.
type Answer = (StatusCode, serde_json::Value);

impl AliyunSim {
    /// A simulator accepting one access key pair, enforcing the documented
    /// per-API limits.
    pub fn new(world: Arc<World>, access_key_id: &str, access_key_secret: &str) -> Self {
        let control = Control::new();
        for api in APIS {
            control.limit(api.name, api.limit);
        }
        AliyunSim {
            world,
            control,
            access_key_id: access_key_id.to_owned(),
            secret: Secret::new(access_key_secret),
            daily_quota: [
                (TaskType::RefreshFile, 10_000),
                (TaskType::RefreshDir, 100),
                (TaskType::RefreshRegex, 20),
                (TaskType::Prefetch, 1_000),
            ],
            requests: Arc::new(Mutex::new(Vec::new())),
            nonces: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Its routes.
    pub fn router(self) -> Router {
        Router::new().route("/", any(handle)).with_state(self)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<SimRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Ground truth as Aliyun shows it: tasks created in `[from, now]` by
    /// type × status, queued tasks counted as running.
    pub fn truth(&self, from: i64) -> HashMap<(TaskType, TaskStatus), u64> {
        let mut m = HashMap::new();
        for ((t, s), n) in self.world.truth(from) {
            if TASK_TYPES.contains(&t) {
                *m.entry((t, visible(s))).or_insert(0) += n;
            }
        }
        m
    }

    /// The quota answer at the world's now.
    pub fn quota(&self) -> WireQuota {
        let now = self.world.now();
        // Quotas reset at 00:00 UTC+8.
        let day_start = (now + 8 * 3600).div_euclid(86_400) * 86_400 - 8 * 3600;
        let used = |t: TaskType| self.world.list(day_start, now + 1, Some(t), None).len() as u64;
        let get = |t: TaskType| {
            let q = self
                .daily_quota
                .iter()
                .find(|(ty, _)| *ty == t)
                .map_or(0, |(_, q)| *q);
            (Some(q as f64), Some(q.saturating_sub(used(t)) as f64))
        };
        let (url_quota, url_remain) = get(TaskType::RefreshFile);
        let (dir_quota, dir_remain) = get(TaskType::RefreshDir);
        let (regex_quota, regex_remain) = get(TaskType::RefreshRegex);
        let (preload_quota, preload_remain) = get(TaskType::Prefetch);
        WireQuota {
            request_id: request_id(&self.world),
            url_quota,
            url_remain,
            dir_quota,
            dir_remain,
            regex_quota,
            regex_remain,
            preload_quota,
            preload_remain,
        }
    }

    fn log(&self, api: &str, params: &[(String, String)], answer: &str) {
        self.control.record(api, answer);
        self.log_request(api, params, answer);
    }

    /// Keeps the request's parameters (the control's log is written by
    /// the caller).
    fn log_request(&self, api: &str, params: &[(String, String)], answer: &str) {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(SimRequest {
                api: api.to_owned(),
                params: params
                    .iter()
                    .filter(|(k, _)| k != "Signature")
                    .cloned()
                    .collect(),
                answer: answer.to_owned(),
            });
    }

    /// Authenticates the request; returns the action on success.
    fn authenticate(
        &self,
        method: &Method,
        params: &[(String, String)],
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<String, Answer> {
        let now = self.world.now();
        let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
        let auth = header("authorization").unwrap_or("");
        let (action, ak, nonce) = if let Some(rest) = auth.strip_prefix(sign::ACS3) {
            let field = |name: &str| {
                rest.trim()
                    .split(',')
                    .find_map(|kv| kv.trim().strip_prefix(name))
                    .unwrap_or("")
                    .to_owned()
            };
            let (ak, signed_headers, signature) = (
                field("Credential="),
                field("SignedHeaders="),
                field("Signature="),
            );
            let action = header("x-acs-action").unwrap_or("").to_owned();
            let nonce = header("x-acs-signature-nonce").unwrap_or("").to_owned();
            let date = header("x-acs-date").unwrap_or("");
            if ak.is_empty() || signature.is_empty() || nonce.is_empty() || date.is_empty() {
                return Err(error(
                    400,
                    "IncompleteSignature",
                    "The request signature does not conform to Aliyun standards.",
                ));
            }
            check_key_and_time(&self.access_key_id, &ak, date, ACS3_SKEW, now)?;
            let signed: Vec<(String, String)> = signed_headers
                .split(';')
                .filter(|h| !h.is_empty())
                .map(|h| (h.to_owned(), header(h).unwrap_or("").to_owned()))
                .collect();
            let content = header("x-acs-content-sha256").unwrap_or("");
            let mut must_sign = vec![
                "host",
                "x-acs-action",
                "x-acs-version",
                "x-acs-date",
                "x-acs-signature-nonce",
                "x-acs-content-sha256",
            ];
            must_sign.retain(|h| !signed.iter().any(|(k, _)| k == h));
            let expect = sign::sign_acs3(
                method.as_str(),
                "/",
                params,
                &signed,
                body,
                &ak,
                &self.secret,
            );
            if !must_sign.is_empty()
                || content != expect.x_acs_content_sha256
                || signature != expect.signature
            {
                return Err(error(400, "SignatureDoesNotMatch", &format!("The request signature does not conform to Aliyun standards. server string to sign is:{}", expect.string_to_sign)));
            }
            if header("x-acs-version") != Some(VERSION) {
                return Err(error(
                    404,
                    "InvalidAction.NotFound",
                    "Specified api is not found, please check your url and method.",
                ));
            }
            (action, ak, nonce)
        } else {
            let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
            let (Some(signature), Some(ak), Some(nonce), Some(ts)) = (
                get("Signature"),
                get("AccessKeyId"),
                get("SignatureNonce"),
                get("Timestamp"),
            ) else {
                return Err(error(
                    400,
                    "IncompleteSignature",
                    "The request signature does not conform to Aliyun standards.",
                ));
            };
            check_key_and_time(&self.access_key_id, ak, ts, V1_SKEW, now)?;
            let unsigned: Vec<(String, String)> = params
                .iter()
                .filter(|(k, _)| k != "Signature")
                .cloned()
                .collect();
            let expect = sign::sign_rpc_v1(method.as_str(), &unsigned, &self.secret);
            if get("SignatureMethod") != Some("HMAC-SHA1")
                || get("SignatureVersion") != Some("1.0")
                || signature != expect.signature
            {
                return Err(error(400, "SignatureDoesNotMatch", &format!("Specified signature is not matched with our calculation. server string to sign is:{}", expect.string_to_sign)));
            }
            if get("Version") != Some(VERSION) {
                return Err(error(
                    404,
                    "InvalidAction.NotFound",
                    "Specified api is not found, please check your url and method.",
                ));
            }
            (
                get("Action").unwrap_or("").to_owned(),
                ak.to_owned(),
                nonce.to_owned(),
            )
        };
        let _ = ak;
        let mut seen = self.nonces.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|_, t| now - *t <= V1_SKEW);
        if seen.insert(nonce, now).is_some() {
            return Err(error(
                400,
                "SignatureNonceUsed",
                "Specified signature nonce was used already.",
            ));
        }
        Ok(action)
    }

    fn list(&self, p: &Params) -> Answer {
        let now = self.world.now();
        let ot = p.get("ObjectType");
        if let Some(o) = ot {
            if !["file", "directory", "regex", "preload", "block", "unblock"].contains(&o) {
                return error(
                    400,
                    "InvalidObjectType.ValueNotSupported",
                    "The specified ObjectType is not supported.",
                );
            }
        }
        let status = p.get("Status");
        if (p.get("DomainName").is_some() || status.is_some()) && ot.is_none() {
            return error(
                400,
                "MissingParameter.ObjectType",
                "The ObjectType parameter is required if DomainName or Status is specified.",
            );
        }
        if let Some(s) = status {
            if !["Complete", "Refreshing", "Failed"].contains(&s) {
                return error(
                    400,
                    "InvalidStatus.ValueNotSupported",
                    "The specified Status is not supported.",
                );
            }
        }
        let page = match p.int("PageNumber", 1, 1, 100_000) {
            Ok(v) => v,
            Err(e) => return e,
        };
        let size = match p.int("PageSize", 20, 1, 100) {
            Ok(v) => v,
            Err(e) => return e,
        };
        let (from, to) = match (p.get("StartTime"), p.get("EndTime")) {
            (None, None) => (now - MAX_LOOKBACK.as_secs() as i64, now + 1),
            (Some(_), None) | (None, Some(_)) => {
                return error(
                    400,
                    "MissingTimeParameter",
                    "The StartTime and EndTime must be both specified.",
                )
            }
            (Some(s), Some(e)) => {
                let Some(s) = parse_time(s) else {
                    return error(
                        400,
                        "InvalidStartTime.Malformed",
                        "The specified StartTime is invalid.",
                    );
                };
                let Some(e) = parse_time(e) else {
                    return error(
                        400,
                        "InvalidEndTime.Malformed",
                        "The specified EndTime is invalid.",
                    );
                };
                if e <= s {
                    return error(
                        400,
                        "InvalidEndTime.Mismatch",
                        "The specified EndTime is earlier than the StartTime.",
                    );
                }
                if s < now - MAX_LOOKBACK.as_secs() as i64 {
                    return error(
                        400,
                        "InvalidTime",
                        "The query time cannot exceed the last 3 days.",
                    );
                }
                (s, e)
            }
        };
        if let Some(id) = p.get("TaskId") {
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
                return error(
                    400,
                    "InvalidTaskId.Malformed",
                    "The specified TaskId is invalid.",
                );
            }
        }
        let ty = match ot {
            Some(o) => match task_type_of(o) {
                Some(t) => Some(t),
                // block / unblock: the world holds none.
                None => return ok_list(&self.world, page, size, 0, Vec::new(), true),
            },
            None => None,
        };
        let all: Vec<SimTask> = self
            .world
            .list(from, to, ty, p.get("DomainName"))
            .into_iter()
            .filter(|t| p.get("TaskId").is_none_or(|id| wire_id(&t.id) == id))
            .filter(|t| p.get("ObjectPath").is_none_or(|o| object_path(t) == o))
            .filter(|t| status.is_none_or(|s| wire_status(t.status_at(now)) == s))
            .collect();
        let total = all.len() as u64;
        let shown: Vec<WireTask> = all
            .iter()
            .skip(((page - 1) * size) as usize)
            .take(size as usize)
            .map(|t| wire(t, now))
            .collect();
        ok_list(&self.world, page, size, total, shown, true)
    }

    fn by_id(&self, p: &Params) -> Answer {
        let now = self.world.now();
        let Some(raw) = p.get("TaskId").filter(|s| !s.is_empty()) else {
            return error(400, "MissingParameter", "The input parameter \"TaskId\" that is mandatory for processing this request is not supplied.");
        };
        let ids: Vec<&str> = raw.split(',').map(str::trim).collect();
        if ids.len() > 10 {
            return error(400, "InvalidTaskId", "The maximum number of taskIds is 10.");
        }
        if ids
            .iter()
            .any(|i| i.is_empty() || !i.bytes().all(|b| b.is_ascii_digit()))
        {
            return error(
                400,
                "InvalidTaskId.Malformed",
                "The specified TaskId is invalid.",
            );
        }
        let shown: Vec<WireTask> = self
            .world
            .list(now - MAX_LOOKBACK.as_secs() as i64, i64::MAX, None, None)
            .iter()
            .filter(|t| TASK_TYPES.contains(&t.task_type) && ids.contains(&wire_id(&t.id).as_str()))
            .map(|t| wire(t, now))
            .collect();
        ok_list(&self.world, 0, 0, shown.len() as u64, shown, false)
    }
}

/// Pending shows as running (`Refreshing`) on Aliyun CDN.
pub fn visible(s: TaskStatus) -> TaskStatus {
    if s == TaskStatus::Pending {
        TaskStatus::Running
    } else {
        s
    }
}

/// The numeric Aliyun id of a world task (its hex id in decimal).
pub fn wire_id(id: &str) -> String {
    match u64::from_str_radix(id, 16) {
        Ok(n) => n.to_string(),
        Err(_) => {
            let h = sign::sha256_hex(id.as_bytes());
            u64::from_str_radix(h.get(..15).unwrap_or("0"), 16)
                .unwrap_or(0)
                .to_string()
        }
    }
}

fn object_path(t: &SimTask) -> String {
    let url = t
        .urls
        .first()
        .cloned()
        .unwrap_or_else(|| format!("https://{}/", t.domain));
    match t.task_type {
        TaskType::RefreshDir => match url.rfind('/') {
            Some(i) => url[..=i].to_owned(),
            None => url,
        },
        TaskType::RefreshRegex => {
            format!("{}.*\\.js$", url.rsplit_once('/').map_or("", |(d, _)| d))
        }
        _ => url,
    }
}

fn wire(t: &SimTask, now: i64) -> WireTask {
    let status = t.status_at(now);
    WireTask {
        task_id: wire_id(&t.id),
        object_path: object_path(t),
        object_type: object_type_of(t.task_type).unwrap_or("file").to_owned(),
        status: wire_status(status).to_owned(),
        process: format!("{:.0}%", t.progress_at(now) * 100.0),
        creation_time: format_time(t.created_at),
        description: t.error_at(now).unwrap_or("").to_owned(),
    }
}

fn request_id(world: &World) -> String {
    let n = world.next_id();
    format!(
        "{:08X}-{:04X}-4{:03X}-A{:03X}-{:012X}",
        n,
        n & 0xffff,
        n & 0xfff,
        (n >> 3) & 0xfff,
        n.wrapping_mul(2_654_435_761) & 0xffff_ffff_ffff
    )
}

fn ok_list(
    world: &World,
    page: u64,
    size: u64,
    total: u64,
    tasks: Vec<WireTask>,
    wrapped: bool,
) -> Answer {
    let body = WireTaskList {
        request_id: request_id(world),
        page_number: wrapped.then_some(page),
        page_size: wrapped.then_some(size),
        total_count: Some(total),
        tasks: if wrapped {
            WireTasks::Wrapped { cdn_task: tasks }
        } else {
            WireTasks::Flat(tasks)
        },
    };
    (
        StatusCode::OK,
        serde_json::to_value(body).unwrap_or_default(),
    )
}

/// The checks both signature schemes share: a known key, a fresh timestamp.
fn check_key_and_time(
    known: &str,
    ak: &str,
    time: &str,
    skew: i64,
    now: i64,
) -> Result<(), Answer> {
    if ak != known {
        return Err(error(
            404,
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.",
        ));
    }
    if parse_time(time).is_none_or(|t| (t - now).abs() > skew) {
        return Err(error(
            400,
            "InvalidTimeStamp.Expired",
            "Specified time stamp or date value is expired.",
        ));
    }
    Ok(())
}

fn error(status: u16, code: &str, message: &str) -> Answer {
    let body = WireError {
        request_id: format!("{:X}", rand_like(code, message)),
        host_id: "cdn.aliyuncs.com".into(),
        code: code.into(),
        message: message.into(),
        recommend: Some(format!("https://api.aliyun.com/troubleshoot?q={code}")),
    };
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        serde_json::to_value(body).unwrap_or_default(),
    )
}

fn rand_like(a: &str, b: &str) -> u64 {
    let h = sign::sha256_hex(format!("{a}{b}").as_bytes());
    u64::from_str_radix(h.get(..12).unwrap_or("0"), 16).unwrap_or(0)
}

/// Query parameters with typed getters answering the vendor's errors.
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    fn int(&self, k: &str, default: u64, lo: u64, hi: u64) -> Result<u64, Answer> {
        match self.get(k) {
            None => Ok(default),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if (lo..=hi).contains(&n) => Ok(n),
                _ => Err(error(
                    400,
                    "InvalidParameter",
                    &format!(
                        "The specified parameter {k} is invalid; it must be between {lo} and {hi}."
                    ),
                )),
            },
        }
    }
}

/// Minimal XML rendering for `Format=XML` (the API's default): arrays
/// repeat their key's element.
fn to_xml(name: &str, v: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match v {
        Value::Array(items) => {
            for i in items {
                to_xml(name, i, out);
            }
        }
        Value::Object(m) => {
            out.push_str(&format!("<{name}>"));
            for (k, v) in m {
                to_xml(k, v, out);
            }
            out.push_str(&format!("</{name}>"));
        }
        Value::Null => {}
        Value::String(s) => out.push_str(&format!(
            "<{name}>{}</{name}>",
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        )),
        other => out.push_str(&format!("<{name}>{other}</{name}>")),
    }
}

async fn handle(
    axum::extract::State(s): axum::extract::State<AliyunSim>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params: Vec<(String, String)> =
        match axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri) {
            Ok(q) => q.0,
            Err(_) => Vec::new(),
        };
    let json = headers.contains_key("authorization")
        || params
            .iter()
            .find(|(k, _)| k == "Format")
            .is_some_and(|(_, v)| v.eq_ignore_ascii_case("json"));
    let named = params
        .iter()
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.as_str())
        .or_else(|| headers.get("x-acs-action").and_then(|v| v.to_str().ok()))
        .unwrap_or("-")
        .to_owned();
    let (api, answer) = match s.authenticate(&method, &params, &headers, &body) {
        Err(e) => (named, e),
        Ok(action) => {
            let known = APIS.iter().any(|a| a.name == action);
            if !known {
                (
                    action,
                    error(
                        404,
                        "InvalidAction.NotFound",
                        "Specified api is not found, please check your url and method.",
                    ),
                )
            } else if !s.control.admit(&action) {
                (
                    action,
                    error(
                        429,
                        "TooManyRequests",
                        "The server is busy. Please try again later.",
                    ),
                )
            } else if s.control.auth_failing() {
                (
                    action,
                    error(
                        400,
                        "InvalidAccessKeyId.Inactive",
                        "Specified access key is disabled.",
                    ),
                )
            } else if s.control.throttling() {
                (
                    action,
                    error(
                        400,
                        "Throttling.User",
                        "Request was denied due to user flow control.",
                    ),
                )
            } else if s.control.fault() == Fault::ServerError {
                (
                    action,
                    error(
                        500,
                        "InternalError",
                        "The request processing has failed due to some unknown error.",
                    ),
                )
            } else {
                let p = Params(params.clone());
                let a = match action.as_str() {
                    "DescribeRefreshTasks" => s.list(&p),
                    "DescribeRefreshTaskById" => s.by_id(&p),
                    _ => (
                        StatusCode::OK,
                        serde_json::to_value(s.quota()).unwrap_or_default(),
                    ),
                };
                (action, a)
            }
        }
    };
    let (status, value) = answer;
    let code = value
        .get("Code")
        .and_then(|c| c.as_str())
        .unwrap_or("ok")
        .to_owned();
    let text = if json {
        serde_json::to_string(&value).unwrap_or_default()
    } else {
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
        let root = if status.is_success() {
            format!("{api}Response")
        } else {
            "Error".into()
        };
        to_xml(&root, &value, &mut x);
        x
    };
    let ct = if json {
        "application/json;charset=utf-8"
    } else {
        "text/xml;charset=utf-8"
    };
    let resp = (status, [("content-type", ct)], text).into_response();
    if status.is_success() {
        let fault = s.control.fault();
        let answer = if fault.is_bad() {
            format!("fault_{}", fault.name())
        } else {
            code
        };
        s.log_request(&api, &params, &answer);
        return s.control.deliver(&api, "", resp).await;
    }
    if code == "Throttling.User" || code == "TooManyRequests" {
        s.log_request(&api, &params, &code);
        return s.control.throttled(&api, resp);
    }
    s.log(&api, &params, &code);
    resp
}
