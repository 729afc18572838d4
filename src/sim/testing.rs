//! Simulated API of the testing vendor (`vendors::testing`): bearer-token
//! auth, per-API rate limits, paging, faults.

use super::{Control, Fault, World};
use crate::task::TaskType;
use crate::vendors::testing::{WireList, WireQuota, WireQuotaItem, WireTask, APIS};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::collections::HashMap;
use std::sync::Arc;

/// The simulated testing vendor.
#[derive(Clone)]
pub struct TestingSim {
    pub world: Arc<World>,
    pub control: Arc<Control>,
    /// The bearer token it accepts.
    pub secret: String,
}

impl TestingSim {
    /// A simulator enforcing the vendor's published limits.
    pub fn new(world: Arc<World>, secret: &str) -> Self {
        let control = Control::new();
        for api in APIS {
            control.limit(api.name, api.limit);
        }
        TestingSim {
            world,
            control,
            secret: secret.to_owned(),
        }
    }

    /// Its routes.
    pub fn router(self) -> Router {
        Router::new()
            .route("/v1/tasks", get(tasks))
            .route("/v1/quota", get(quota))
            .with_state(self)
    }

    fn gate(&self, api: &str, headers: &HeaderMap) -> Option<Response> {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if auth != format!("Bearer {}", self.secret) {
            self.control.record(api, "auth_error");
            return Some(error(StatusCode::UNAUTHORIZED, "invalid token"));
        }
        if self.control.auth_failing() {
            self.control.record(api, "auth_error");
            return Some(error(StatusCode::UNAUTHORIZED, "token revoked"));
        }
        if !self.control.admit(api) || self.control.throttling() {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded");
            r.headers_mut()
                .insert("retry-after", "2".parse().expect("static header value"));
            return Some(self.control.throttled(api, r));
        }
        if self.control.fault() == Fault::ServerError {
            self.control.record(api, "server_error");
            return Some(error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"));
        }
        None
    }
}

fn error(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": msg }))).into_response()
}

fn wire(t: &super::SimTask, now: i64) -> WireTask {
    WireTask {
        id: t.id.clone(),
        task_type: t.task_type,
        status: t.status_at(now),
        urls: t.urls.len() as u32,
        created: t.created_at,
        finished: t.finished_at(now),
        progress: Some(t.progress_at(now)),
        error: t.error_at(now).map(str::to_owned),
    }
}

async fn tasks(
    State(s): State<TestingSim>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let api = if q.contains_key("ids") {
        "GetTasks"
    } else {
        "ListTasks"
    };
    if let Some(r) = s.gate(api, &headers) {
        return r;
    }
    let now = s.world.now();
    let num = |k: &str| q.get(k).and_then(|v| v.parse::<i64>().ok());
    let (tasks, total) = if let Some(ids) = q.get("ids") {
        let ids: Vec<&str> = ids.split(',').collect();
        let v = s.world.by_ids(&ids);
        let n = v.len() as u64;
        (v, n)
    } else {
        let (Some(from), Some(to)) = (num("from"), num("to")) else {
            s.control.record(api, "client_error");
            return error(StatusCode::BAD_REQUEST, "from and to are required");
        };
        let page = num("page").unwrap_or(1).max(1) as usize;
        let size = num("page_size").unwrap_or(50).clamp(1, 100) as usize;
        let ty = q.get("type").and_then(|t| TaskType::parse(t));
        let all = s
            .world
            .list(from, to, ty, q.get("domain").map(String::as_str));
        let total = all.len() as u64;
        (
            all.into_iter().skip((page - 1) * size).take(size).collect(),
            total,
        )
    };
    let body = serde_json::to_string(&WireList {
        tasks: tasks.iter().map(|t| wire(t, now)).collect(),
        total,
    })
    .unwrap_or_default();
    let detail = match q.get("ids") {
        Some(ids) => format!("ids={ids}"),
        None => format!(
            "from={} to={} page={}",
            num("from").unwrap_or(0),
            num("to").unwrap_or(0),
            num("page").unwrap_or(1)
        ),
    };
    s.control
        .deliver(
            api,
            &detail,
            ([("content-type", "application/json")], body).into_response(),
        )
        .await
}

async fn quota(State(s): State<TestingSim>, headers: HeaderMap) -> Response {
    if let Some(r) = s.gate("GetQuota", &headers) {
        return r;
    }
    let answer = axum::Json(WireQuota {
        quotas: vec![
            WireQuotaItem {
                task_type: TaskType::RefreshFile,
                limit: 10_000.0,
                remaining: 9_000.0,
            },
            WireQuotaItem {
                task_type: TaskType::Prefetch,
                limit: 1_000.0,
                remaining: 50.0,
            },
        ],
    })
    .into_response();
    s.control.deliver("GetQuota", "", answer).await
}
