//! A minimal vendor with a plain JSON API, used to prove the core (driver,
//! budget, cache, metrics) independently of any real vendor's quirks. Its
//! simulated API is `sim::testing`.
//!
//! Wire format: `GET /v1/tasks?from&to&page&page_size` lists tasks created in
//! `[from, to)`; `GET /v1/tasks?ids=a,b` fetches by id; `GET /v1/quota`.
//! Auth is `Authorization: Bearer <secret>`, account in `X-Account-Id`.
//! Errors: HTTP status plus `{"error": "..."}`, `Retry-After` on 429.

use super::{
    outcome_for_status, ApiError, ApiSpec, BuildError, Parsed, Query, Quota, Stream, Unfinished,
    Vendor, VendorContext, VendorKind,
};
use crate::api::Rate;
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::task::{Task, TaskStatus, TaskType};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// API indexes into [`APIS`].
pub const LIST: usize = 0;
/// Fetch by ids.
pub const GET: usize = 1;
/// Daily quota.
pub const QUOTA: usize = 2;

/// The published limits of the testing vendor.
pub const APIS: &[ApiSpec] = &[
    ApiSpec {
        name: "ListTasks",
        limit: Rate::new(10, Duration::from_secs(1)),
    },
    ApiSpec {
        name: "GetTasks",
        limit: Rate::new(20, Duration::from_secs(1)),
    },
    ApiSpec {
        name: "GetQuota",
        limit: Rate::new(5, Duration::from_secs(1)),
    },
];

/// This module's entry in the vendor registry.
pub const SPEC: super::VendorSpec = super::VendorSpec {
    name: "testing",
    title: "Testing (simulated only)",
    apis: APIS,
    max_lookback: MAX_LOOKBACK,
    default_endpoint: "http://127.0.0.1:1",
    task_types: &TaskType::ALL,
    build: |ctx, options| {
        super::build_with(options, |opts: Options| {
            Arc::new(TestingVendor::new(ctx, opts))
        })
    },
    #[cfg(feature = "sim")]
    simulator: |s| {
        let sim = crate::sim::testing::TestingSim::new(s.world.clone(), &s.secret);
        let world = s.world.clone();
        crate::sim::Simulated {
            control: sim.control.clone(),
            router: sim.router(),
            truth: std::sync::Arc::new(move |from| world.truth(from)),
        }
    },
    demo_options: "",
    demo_traffic_share: 1.0,
};

/// Three days, like Aliyun and CDNetworks.
pub const MAX_LOOKBACK: Duration = Duration::from_secs(3 * 86_400);

/// Ids per re-check request.
pub const IDS_PER_REQUEST: usize = 10;

/// Options of a testing account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// Tasks per page.
    pub page_size: u32,
    /// Longest window per list query, to exercise window splitting.
    #[serde(with = "humantime_serde_opt")]
    pub max_span: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            page_size: 50,
            max_span: None,
        }
    }
}

mod humantime_serde_opt {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// The testing vendor module.
#[derive(Debug)]
pub struct TestingVendor {
    ctx: VendorContext,
    opts: Options,
}

impl TestingVendor {
    /// For one account.
    pub fn new(ctx: VendorContext, opts: Options) -> Self {
        TestingVendor { ctx, opts }
    }
}

/// A task on the wire (shared with the simulator).
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct WireTask {
    pub id: String,
    #[serde(rename = "type")]
    pub task_type: TaskType,
    pub status: TaskStatus,
    pub urls: u32,
    pub created: i64,
    pub finished: Option<i64>,
    pub progress: Option<f64>,
    pub error: Option<String>,
}

/// A list answer on the wire (shared with the simulator).
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub struct WireList {
    pub tasks: Vec<WireTask>,
    pub total: u64,
}

/// A quota answer on the wire (shared with the simulator).
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub struct WireQuota {
    pub quotas: Vec<WireQuotaItem>,
}

/// One quota line.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub struct WireQuotaItem {
    #[serde(rename = "type")]
    pub task_type: TaskType,
    pub limit: f64,
    pub remaining: f64,
}

impl Vendor for TestingVendor {
    fn kind(&self) -> VendorKind {
        VendorKind::Testing
    }

    fn streams(&self, _watched: &[TaskType]) -> Vec<Stream> {
        vec![Stream {
            api: LIST,
            task_type: None,
        }]
    }

    fn max_span(&self, _stream: &Stream) -> Option<Duration> {
        self.opts.max_span
    }

    fn plan_rechecks(&self, unfinished: &[Unfinished]) -> Vec<Query> {
        unfinished
            .chunks(IDS_PER_REQUEST)
            .map(|c| Query::ById {
                api: GET,
                task_type: None,
                ids: c.iter().map(|u| u.id.clone()).collect(),
            })
            .collect()
    }

    fn quota_queries(&self, _watched: &[TaskType]) -> Vec<Query> {
        vec![Query::Quota { api: QUOTA }]
    }

    fn build(
        &self,
        query: &Query,
        page: u32,
        _now: DateTime<Utc>,
    ) -> Result<HttpRequest, BuildError> {
        let base = self.ctx.endpoint.trim_end_matches('/');
        let url = match query {
            Query::List { window, .. } => {
                let mut u = format!(
                    "{base}/v1/tasks?from={}&to={}&page={page}&page_size={}",
                    window.from, window.to, self.opts.page_size
                );
                if let Some(d) = &self.ctx.domain {
                    u.push_str("&domain=");
                    u.push_str(
                        &percent_encoding::utf8_percent_encode(
                            d,
                            percent_encoding::NON_ALPHANUMERIC,
                        )
                        .to_string(),
                    );
                }
                u
            }
            Query::ById { ids, .. } => {
                if ids.iter().any(|i| i.contains(',')) {
                    return Err(BuildError("task id contains a comma".into()));
                }
                format!("{base}/v1/tasks?ids={}&page={page}", ids.join(","))
            }
            Query::Quota { .. } => format!("{base}/v1/quota"),
        };
        Ok(HttpRequest {
            method: Method::Get,
            url,
            headers: vec![
                (
                    "authorization".into(),
                    format!("Bearer {}", self.ctx.credentials.secret.expose()),
                ),
                ("x-account-id".into(), self.ctx.credentials.id.clone()),
            ],
            body: Vec::new(),
        })
    }

    fn parse(&self, query: &Query, page: u32, resp: &HttpResponse) -> Result<Parsed, ApiError> {
        if resp.status != 200 {
            #[derive(Deserialize)]
            struct WireError {
                error: String,
            }
            let message = serde_json::from_slice::<WireError>(&resp.body)
                .map(|e| e.error)
                .unwrap_or_else(|_| format!("HTTP {}", resp.status));
            return Err(ApiError::new(outcome_for_status(resp.status), message)
                .with_retry_after(resp.retry_after())
                .with_request_id(resp.header("x-request-id").map(str::to_owned)));
        }
        match query {
            Query::Quota { .. } => {
                let q: WireQuota = serde_json::from_slice(&resp.body)
                    .map_err(|e| ApiError::parse(format!("bad quota JSON: {e}"), &resp.body))?;
                Ok(Parsed {
                    quotas: q
                        .quotas
                        .into_iter()
                        .map(|q| Quota {
                            task_type: q.task_type,
                            limit: q.limit,
                            remaining: q.remaining,
                        })
                        .collect(),
                    ..Parsed::default()
                })
            }
            Query::List { .. } | Query::ById { .. } => {
                let l: WireList = serde_json::from_slice(&resp.body)
                    .map_err(|e| ApiError::parse(format!("bad task list JSON: {e}"), &resp.body))?;
                let shown = u64::from(page) * u64::from(self.opts.page_size);
                let next_page =
                    (matches!(query, Query::List { .. }) && shown < l.total && !l.tasks.is_empty())
                        .then_some(page + 1);
                Ok(Parsed {
                    tasks: l
                        .tasks
                        .into_iter()
                        .map(|t| Task {
                            id: t.id,
                            task_type: t.task_type,
                            status: t.status,
                            url_count: t.urls,
                            urls: Vec::new(),
                            domain: None,
                            created_at: t.created,
                            finished_at: t.finished,
                            progress: t.progress,
                            error: t.error,
                        })
                        .collect(),
                    quotas: Vec::new(),
                    next_page,
                    // Pages one at a time: the collector's own tests count
                    // a first sync's calls as one listing.
                    known_last_page: None,
                })
            }
        }
    }
}
