//! Simulated CDNetworks content-management API (`vendors::cdnetworks`):
//! `POST /ccm/fetch/ItemIdQuery` and `POST /ccm/purge/ItemIdQuery` with the
//! vendor's JSON shapes, API-key (Date + HMAC-SHA1 Basic) or AK/SK
//! verification, the documented `Code: 0` answers for bad windows and pages,
//! the 3-day and 1-day limits, and the per-user limits (fetch 1 per 5 min,
//! purge 10 per 5 min; tests may relax them through [`Control::limit`]).
//!
//! Each [`SimTask`](super::SimTask) becomes one record per URL, sharing an
//! `itemId`. Times are written in the zone of `X-Time-Zone` (UTC+8 when
//! absent). Undocumented shapes are guesses, stated where they are made:
//! a bad signature or stale Date answers 401, throttling answers 429, both
//! with `{"Code":0,"Message":...}`.

use super::{Control, Fault, SimTask, World};
use crate::clock::SharedClock;
use crate::task::{TaskStatus, TaskType};
use crate::vendors::cdnetworks::api::{format_time, parse_time};
use crate::vendors::cdnetworks::{sign, APIS, FETCH, PURGE};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Allowed clock skew of Date / x-cnc-timestamp (unconfirmed for the API-key
/// scheme; the AK/SK doc says 5 minutes).
pub const MAX_SKEW: i64 = 300;

const DAY: i64 = 86_400;

/// A listing the simulator accepted or rejected, for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimWindow {
    /// `FetchItemIdQuery` or `PurgeItemIdQuery`.
    pub api: &'static str,
    /// Unix seconds of startTime / endTime, as read in the request's zone.
    pub start: i64,
    pub end: i64,
    /// The zone read from `X-Time-Zone` (seconds east).
    pub zone: i32,
    /// Sim clock when received.
    pub at: i64,
    pub page_no: i64,
    pub page_size: i64,
    /// "ok" or the Code:0 message.
    pub answer: String,
}

/// The simulated CDNetworks API.
#[derive(Clone)]
pub struct CdnetworksSim {
    pub world: Arc<World>,
    pub control: Arc<Control>,
    /// Reads Date skew and the 3-day limit (the world may be frozen).
    pub clock: SharedClock,
    /// The account: API-key username (or AK/SK access key).
    pub username: String,
    api_key: String,
    windows: Arc<Mutex<Vec<SimWindow>>>,
    request_ids: Arc<AtomicU64>,
}

impl std::fmt::Debug for CdnetworksSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CdnetworksSim")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Ground truth in the exporter's unit: URL records by type × status, of
/// tasks created in `[from, now]`.
pub fn truth(world: &World, from: i64) -> HashMap<(TaskType, TaskStatus), u64> {
    let now = world.now();
    let mut m = HashMap::new();
    for t in world.list(from, now + 1, None, None) {
        *m.entry((t.task_type, t.status_at(now))).or_insert(0) += t.urls.len() as u64;
    }
    m
}

impl CdnetworksSim {
    /// A simulator enforcing the published limits for one user.
    pub fn new(world: Arc<World>, clock: SharedClock, username: &str, api_key: &str) -> Self {
        let control = Control::new();
        for api in APIS {
            control.limit(api.name, api.limit);
        }
        CdnetworksSim {
            world,
            control,
            clock,
            username: username.to_owned(),
            api_key: api_key.to_owned(),
            windows: Arc::default(),
            request_ids: Arc::default(),
        }
    }

    /// Its routes.
    pub fn router(self) -> Router {
        Router::new()
            .route("/ccm/fetch/ItemIdQuery", post(fetch))
            .route("/ccm/purge/ItemIdQuery", post(purge))
            .with_state(self)
    }

    /// Every listing received (accepted or answered with Code 0).
    pub fn windows(&self) -> Vec<SimWindow> {
        self.windows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn request_id(&self) -> String {
        let n = self.request_ids.fetch_add(1, Ordering::Relaxed);
        format!("sim-{n:08x}_{}", self.clock.unix())
    }

    fn answer(&self, status: StatusCode, body: Value) -> Response {
        (
            status,
            [
                ("content-type", "application/json;charset=UTF-8".to_owned()),
                ("x-cnc-request-id", self.request_id()),
            ],
            body.to_string(),
        )
            .into_response()
    }

    fn code0(&self, api: &str, msg: &str) -> Response {
        self.control.record(api, "client_error");
        self.answer(StatusCode::OK, json!({"Code": 0, "Message": msg}))
    }

    /// Authentication as the vendor does it; `Some` is the refusal.
    fn authenticate(
        &self,
        api: &str,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Option<Response> {
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        let now = self.clock.unix();
        let unauthorized = |why: &str| {
            self.control.record(api, "auth_error");
            Some(self.answer(StatusCode::UNAUTHORIZED, json!({"Code": 0, "Message": why})))
        };
        let auth = h("authorization").unwrap_or("");
        if auth.starts_with("CNC-HMAC-SHA256 ") {
            if h("x-cnc-accesskey") != Some(self.username.as_str()) {
                return unauthorized("invalid access key");
            }
            let ts = h("x-cnc-timestamp").unwrap_or("");
            if ts
                .parse::<i64>()
                .map_or(true, |t| (t - now).abs() > MAX_SKEW)
            {
                return unauthorized("timestamp expired");
            }
            let signed: Vec<(&str, &str)> = ["content-type", "host", "x-cnc-timestamp"]
                .into_iter()
                .filter_map(|n| h(n).map(|v| (n, v)))
                .collect();
            let signed_headers = auth
                .split("SignedHeaders=")
                .nth(1)
                .and_then(|r| r.split(',').next())
                .unwrap_or("content-type;host");
            let sig = sign::sign_aksk(
                &sign::AkSkInput {
                    access_key: &self.username,
                    method: "POST",
                    uri: path,
                    headers: &signed,
                    signed_headers: Some(signed_headers),
                    timestamp: ts,
                    body,
                },
                &self.api_key,
            );
            if sig.authorization != auth {
                return unauthorized("signature mismatch");
            }
            return None;
        }
        let decoded = auth
            .strip_prefix("Basic ")
            .and_then(|t| {
                base64::engine::general_purpose::STANDARD
                    .decode(t.trim())
                    .ok()
            })
            .and_then(|b| String::from_utf8(b).ok());
        let Some((user, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
            self.control.record(api, "auth_error");
            return Some(self.answer(
                StatusCode::OK,
                json!({"Code": 0, "Message": "username is invalid"}),
            ));
        };
        if user.is_empty() || user != self.username {
            self.control.record(api, "auth_error");
            return Some(self.answer(
                StatusCode::OK,
                json!({"Code": 0, "Message": "username is invalid"}),
            ));
        }
        let Some(date) = h("date").or_else(|| h("x-cnc-date")) else {
            return unauthorized("missing Date header");
        };
        let when = chrono::DateTime::parse_from_rfc2822(date).map(|d| d.timestamp());
        if when.map_or(true, |t| (t - now).abs() > MAX_SKEW) {
            return unauthorized("Date is too far from the server time");
        }
        // The Date string as received is what was signed.
        let want = sign::api_key_password(&self.api_key, date);
        if password != want {
            return unauthorized("authentication failed");
        }
        None
    }

    async fn handle(&self, which: usize, headers: HeaderMap, body: Bytes) -> Response {
        let api = APIS.get(which).map_or("?", |a| a.name);
        let path = if which == FETCH {
            "/ccm/fetch/ItemIdQuery"
        } else {
            "/ccm/purge/ItemIdQuery"
        };
        if let Some(r) = self.authenticate(api, path, &headers, &body) {
            return r;
        }
        let fault = self.control.fault();
        if fault == Fault::AuthFailure {
            self.control.record(api, "auth_error");
            return self.answer(
                StatusCode::UNAUTHORIZED,
                json!({"Code": 0, "Message": "authentication failed"}),
            );
        }
        if fault.throttles() || !self.control.admit(api) {
            return self.control.throttled(
                api,
                self.answer(
                    StatusCode::TOO_MANY_REQUESTS,
                    json!({"Code": 0, "Message": "request too frequently"}),
                ),
            );
        }
        if fault == Fault::ServerError {
            self.control.record(api, "server_error");
            return self.answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"Code": 0, "Message": "system error"}),
            );
        }
        let Ok(Value::Object(q)) = serde_json::from_slice::<Value>(&body) else {
            return self.code0(api, "parse json error");
        };
        let zone = match headers.get("x-time-zone").map(|v| v.to_str()) {
            None => Some(8 * 3600),
            Some(Ok(z)) => parse_zone(z),
            Some(Err(_)) => None,
        };
        let Some(zone) = zone else {
            return self.code0(api, "query time error");
        };
        let str_of = |k: &str| q.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        let int_of = |k: &str| match q.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or(()),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| ()),
            Some(_) => Err(()),
        };
        let item_id = str_of("itemId");
        let (start, end) = (str_of("startTime"), str_of("endTime"));
        let mut log = SimWindow {
            api,
            start: 0,
            end: 0,
            zone,
            at: self.clock.unix(),
            page_no: 0,
            page_size: 0,
            answer: String::new(),
        };
        let refuse = |log: &mut SimWindow, msg: &str| {
            log.answer = msg.to_owned();
            self.windows
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(log.clone());
            self.code0(api, msg)
        };
        let range = match (start, end) {
            (None, None) if item_id.is_some() => None,
            (Some(s), Some(e)) => {
                let (Some(s), Some(e)) = (parse_time(s, zone), parse_time(e, zone)) else {
                    return refuse(&mut log, "query time error");
                };
                log.start = s;
                log.end = e;
                if e < s {
                    return refuse(&mut log, "endTime should not before startTime");
                }
                if s < self.clock.unix() - 3 * DAY {
                    return refuse(&mut log, "query create time should not before 3 days");
                }
                // The doc states the 1-day span for fetch and gives no message
                // for it; applied to purge as well (a stricter guess).
                if e - s > DAY {
                    return refuse(&mut log, "query time error");
                }
                Some((s, e))
            }
            _ => return refuse(&mut log, "startTime or endTime must not be empty"),
        };
        let (Ok(page_no), Ok(page_size)) = (int_of("pageNo"), int_of("pageSize")) else {
            return refuse(&mut log, "parse json error");
        };
        let page_no = page_no.unwrap_or(1);
        let page_size = page_size.unwrap_or(20);
        log.page_no = page_no;
        log.page_size = page_size;
        if !(0..=1000).contains(&page_size) {
            return refuse(&mut log, "page size error");
        }
        if page_no < 0 {
            return refuse(&mut log, "page no error");
        }
        let status = str_of("status");
        if status.is_some_and(|s| !["init", "wait", "run", "success", "failure"].contains(&s)) {
            return refuse(
                &mut log,
                "task status error,eg: init wait run success failure",
            );
        }
        let now = self.world.now();
        let (from, to) = range.map_or((i64::MIN, i64::MAX), |(s, e)| (s, e + 1));
        let tasks: Vec<SimTask> = self
            .world
            .list(from, to, None, None)
            .into_iter()
            .filter(|t| (t.task_type == TaskType::Prefetch) == (which == FETCH))
            .filter(|t| item_id.is_none_or(|i| t.id == i))
            .collect();
        let url = str_of("url");
        let mut records: Vec<Value> = Vec::new();
        for t in &tasks {
            for u in &t.urls {
                if url.is_some_and(|x| x != u) {
                    continue;
                }
                let r = record(t, u, now, zone, which == PURGE);
                if status.is_some_and(|s| r["status"] != s) {
                    continue;
                }
                records.push(r);
            }
        }
        let count = records.len();
        let size = if page_size == 0 { 20 } else { page_size } as usize;
        let skip = (page_no.max(1) as usize - 1).saturating_mul(size);
        let detail: Vec<Value> = records.into_iter().skip(skip).take(size).collect();
        let body = json!({
            "count": count,
            "Code": 1,
            "message": "success",
            "pageNo": page_no.max(1),
            "pageSize": size,
            "resultDetail": detail,
        })
        .to_string();
        log.answer = "ok".into();
        self.windows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(log);
        let resp = self.answer(
            StatusCode::OK,
            serde_json::from_str(&body).unwrap_or(Value::Null),
        );
        self.control.deliver(api, "", resp).await
    }
}

/// One URL of a task as a wire record at `now`, times in `zone`.
fn record(t: &SimTask, url: &str, now: i64, zone: i32, purge: bool) -> Value {
    let fmt = |x: i64| format_time(x, zone).unwrap_or_default();
    let st = t.status_at(now);
    let status = match st {
        // Freshly created records are "init" for their first seconds.
        TaskStatus::Pending if now - t.created_at < 5 => "init",
        TaskStatus::Pending => "wait",
        TaskStatus::Running => "run",
        TaskStatus::Success => "success",
        TaskStatus::Failed | TaskStatus::Unknown => "failure",
    };
    let started = t.created_at + t.queued_for;
    let mut r = json!({
        "beginTime": if now >= started { fmt(started) } else { String::new() },
        "createTime": fmt(t.created_at),
        "finishTime": t.finished_at(now).map(fmt).unwrap_or_default(),
        "rate": format!("{}", (t.progress_at(now) * 100.0).floor() as i64),
        "status": status,
        "url": url,
    });
    if purge {
        // Purge records carry the batch id and kind; fetch records (as in the
        // doc's example) do not.
        r["itemId"] = json!(t.id);
        r["isDir"] = json!(match t.task_type {
            TaskType::RefreshRegex => 1,
            TaskType::RefreshDir => 2,
            TaskType::RefreshTag => 3,
            _ => 0,
        });
    }
    r
}

async fn fetch(State(s): State<CdnetworksSim>, headers: HeaderMap, body: Bytes) -> Response {
    s.handle(FETCH, headers, body).await
}

async fn purge(State(s): State<CdnetworksSim>, headers: HeaderMap, body: Bytes) -> Response {
    s.handle(PURGE, headers, body).await
}

/// Parses an `X-Time-Zone` value (`GMT+08:00`, `GMT-5`, `UTC+8`, `+0800`)
/// into seconds east of UTC, as the service reads the header. Hours and
/// minutes are checked before any arithmetic (`GMT+-999999999` once
/// overflowed in a debug build).
pub fn parse_zone(s: &str) -> Option<i32> {
    let s = s.trim();
    let s = s
        .strip_prefix("GMT")
        .or_else(|| s.strip_prefix("UTC"))
        .unwrap_or(s);
    if s.is_empty() {
        return Some(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, s.get(1..)?),
        b'-' => (-1, s.get(1..)?),
        _ => return None,
    };
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 4 => (rest.get(..2)?, rest.get(2..)?),
        None => (rest, "0"),
    };
    if !(h.bytes().all(|b| b.is_ascii_digit()) && m.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if !(0..=14).contains(&h) || !(0..=59).contains(&m) {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

#[cfg(test)]
mod zone_tests {
    use super::parse_zone;

    #[test]
    fn zones_parse() {
        assert_eq!(parse_zone("GMT+08:00"), Some(28_800));
        assert_eq!(parse_zone("GMT-05:30"), Some(-19_800));
        assert_eq!(parse_zone("GMT+00:00"), Some(0));
        assert_eq!(parse_zone("UTC+8"), Some(28_800));
        assert_eq!(parse_zone("+0800"), Some(28_800));
        assert_eq!(parse_zone("GMT+99:00"), None);
        assert_eq!(parse_zone("Asia/Shanghai"), None);
    }

    /// Regression: `h * 3600` overflowed on a huge negative hour.
    #[test]
    fn huge_or_signed_hours_are_rejected_not_overflowed() {
        assert_eq!(parse_zone("GMT+-999999999"), None);
        assert_eq!(parse_zone("GMT+999999999999"), None);
        assert_eq!(parse_zone("GMT+08:-1"), None);
    }
}
