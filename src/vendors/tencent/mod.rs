//! Tencent Cloud CDN: purge (refresh) and prefetch (push) records.
//!
//! `DescribePurgeTasks` lists URL (`PurgeType: url`) and directory (`path`)
//! purges, `DescribePushTasks` prefetches: API 3.0, version 2018-06-06, POST
//! of a JSON body to `/`, the action and version in `X-TC-*` headers, signed
//! with TC3-HMAC-SHA256 ([`sign`]). One stream per task type; windows are
//! `StartTime`/`EndTime` in Beijing time (the doc examples are UTC+8),
//! both bounds inclusive, paged with `Offset`/`Limit`. Unfinished records are
//! re-checked with the `TaskId` filter, one call per submission. Quotas come
//! from `DescribePurgeQuota` and `DescribePushQuota`.
//!
//! One record (one URL or directory of a submission) is the unit counted;
//! see [`api`]. Errors arrive as HTTP 200 with `Response.Error`.

pub mod api;
pub mod sign;

use super::{
    ApiError, ApiSpec, BuildError, OptionsError, Parsed, Query, Stream, Unfinished, Vendor,
    VendorContext, VendorKind,
};
use crate::api::Rate;
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::task::TaskType;
use api::{ListBody, QuotaArea};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::time::Duration;

/// Index of `DescribePurgeTasks` in [`APIS`].
pub const PURGE: usize = 0;
/// Index of `DescribePushTasks`.
pub const PUSH: usize = 1;
/// Index of `DescribePurgeQuota`.
pub const PURGE_QUOTA: usize = 2;
/// Index of `DescribePushQuota`.
pub const PUSH_QUOTA: usize = 3;

/// The API version of every CDN action used here.
pub const VERSION: &str = "2018-06-06";

/// The documented limits: 20 requests per second for each API.
pub const APIS: &[ApiSpec] = &[
    ApiSpec {
        name: "DescribePurgeTasks",
        limit: Rate::new(20, Duration::from_secs(1)),
    },
    ApiSpec {
        name: "DescribePushTasks",
        limit: Rate::new(20, Duration::from_secs(1)),
    },
    ApiSpec {
        name: "DescribePurgeQuota",
        limit: Rate::new(20, Duration::from_secs(1)),
    },
    ApiSpec {
        name: "DescribePushQuota",
        limit: Rate::new(20, Duration::from_secs(1)),
    },
];

/// This module's entry in the vendor registry.
pub const SPEC: super::VendorSpec = super::VendorSpec {
    name: "tencent",
    title: "Tencent Cloud CDN",
    apis: APIS,
    max_lookback: MAX_LOOKBACK,
    default_endpoint: DEFAULT_ENDPOINT,
    task_types: TASK_TYPES,
    build: |ctx, options| {
        let opts = parse_options(options)?;
        Ok(std::sync::Arc::new(TencentVendor::new(ctx, opts)))
    },
    #[cfg(feature = "sim")]
    simulator: |s| {
        let sim = crate::sim::tencent::TencentSim::new(s.world.clone(), &s.id, &s.secret)
            .with_clock(s.clock.clone());
        let truth: crate::sim::Truth = {
            let sim = sim.clone();
            std::sync::Arc::new(move |from| sim.truth(from))
        };
        crate::sim::Simulated {
            control: sim.control.clone(),
            router: sim.router(),
            truth,
        }
    },
    demo_options: "",
    demo_traffic_share: 1.0,
};

/// The current pages give no retention; the legacy APIs they replaced keep
/// records 30 days (config clamps `lookback` to it).
pub const MAX_LOOKBACK: Duration = Duration::from_secs(30 * 86_400);

/// The public endpoint (`https://cdn.intl.tencentcloudapi.com` for the
/// international site).
pub const DEFAULT_ENDPOINT: &str = "https://cdn.tencentcloudapi.com";

/// What Tencent Cloud CDN reports.
pub const TASK_TYPES: &[TaskType] = &[
    TaskType::RefreshFile,
    TaskType::RefreshDir,
    TaskType::Prefetch,
];

/// Largest `Limit` we send. The pages give a default of 20 and no maximum;
/// 1000 is the maximum Tencent documents for the sibling EdgeOne
/// `DescribePurgeTasks`, our conservative reading.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// `Area` filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Area {
    Mainland,
    Overseas,
    Global,
}

impl Area {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Area::Mainland => "mainland",
            Area::Overseas => "overseas",
            Area::Global => "global",
        }
    }
}

/// Options of a Tencent Cloud account (`options:` in config).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// Only records of this area (`mainland`, `overseas`, `global`); also
    /// picks that area's quota. Unset: every area, quotas summed.
    pub area: Option<Area>,
    /// Records per page (`Limit`), 1–1000.
    pub page_size: u32,
    /// Sent as `X-TC-Region` (the CDN API ignores it).
    pub region: Option<String>,
    /// Read the daily quotas (DescribePurgeQuota / DescribePushQuota).
    pub quota: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            area: None,
            page_size: MAX_PAGE_SIZE,
            region: None,
            quota: true,
        }
    }
}

/// Parses and validates an account's `options:`.
pub fn parse_options(value: serde_yaml::Value) -> Result<Options, OptionsError> {
    let o: Options = super::parse_options_as(value)?;
    if !(1..=MAX_PAGE_SIZE).contains(&o.page_size) {
        return Err(OptionsError {
            path: "page_size".into(),
            message: format!("{} is outside 1..=1000", o.page_size),
        });
    }
    if let Some(r) = &o.region {
        if r.is_empty() || !r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(OptionsError {
                path: "region".into(),
                message: format!("{r:?} is not a region name like ap-guangzhou"),
            });
        }
    }
    Ok(o)
}

/// The Tencent Cloud CDN module of one account.
#[derive(Debug)]
pub struct TencentVendor {
    ctx: VendorContext,
    opts: Options,
}

impl TencentVendor {
    /// For one account.
    pub fn new(ctx: VendorContext, opts: Options) -> Self {
        TencentVendor { ctx, opts }
    }

    fn limit(&self) -> i64 {
        i64::from(self.opts.page_size)
    }

    fn offset(&self, page: u32) -> i64 {
        i64::from(page.max(1) - 1) * self.limit()
    }

    /// Signs a POST of `body` to `action`.
    fn post(
        &self,
        action: &str,
        body: Vec<u8>,
        now: DateTime<Utc>,
    ) -> Result<HttpRequest, BuildError> {
        let endpoint = self.ctx.endpoint.trim_end_matches('/');
        let (_, rest) = endpoint
            .split_once("://")
            .ok_or_else(|| BuildError(format!("endpoint {endpoint:?} has no scheme")))?;
        let host = rest.split('/').next().unwrap_or("");
        if host.is_empty() {
            return Err(BuildError(format!("endpoint {endpoint:?} has no host")));
        }
        let creds = &self.ctx.credentials;
        // The HTTP client sends Host without a default port.
        let host = crate::vendors::volcengine::sign::signed_host(host);
        let input = sign::SignInput {
            method: "POST",
            host,
            path: "/",
            content_type: sign::CONTENT_TYPE,
            body: &body,
            secret_id: &creds.id,
            secret_key: creds.secret.expose(),
            service: sign::SERVICE,
            timestamp: now.timestamp(),
            unsigned_payload: false,
        };
        let headers = sign::request_headers(
            &input,
            &sign::Common {
                action,
                version: VERSION,
                region: self.opts.region.as_deref(),
                token: creds.session_token.as_ref().map(|t| t.expose()),
            },
        );
        Ok(HttpRequest {
            method: Method::Post,
            url: format!("{endpoint}/"),
            headers,
            body,
        })
    }

    fn list_body(&self, stream: &Stream, page: u32) -> ListBody {
        ListBody {
            purge_type: (stream.api == PURGE)
                .then(|| stream.task_type.and_then(api::purge_type))
                .flatten()
                .map(str::to_owned),
            offset: Some(self.offset(page)),
            limit: Some(self.limit()),
            keyword: self.ctx.domain.clone(),
            area: self.opts.area.map(|a| a.as_str().to_owned()),
            ..ListBody::default()
        }
    }

    fn quota_area(&self) -> QuotaArea<'static> {
        match self.opts.area {
            Some(Area::Mainland) => QuotaArea::Only("mainland"),
            Some(Area::Overseas) => QuotaArea::Only("overseas"),
            Some(Area::Global) | None => QuotaArea::All,
        }
    }

    /// Tasks of a list answer, and how many records the page held.
    fn records(
        &self,
        api_index: usize,
        body: &api::Body,
        fallback: Option<TaskType>,
    ) -> (Vec<crate::task::Task>, usize) {
        if api_index == PUSH {
            let w = body.push_logs.as_deref().unwrap_or(&[]);
            (w.iter().filter_map(api::push_to_task).collect(), w.len())
        } else {
            let w = body.purge_logs.as_deref().unwrap_or(&[]);
            (
                w.iter()
                    .filter_map(|t| api::purge_to_task(t, fallback))
                    .collect(),
                w.len(),
            )
        }
    }

    /// A next page when this one was full and the total says more remain.
    fn next_page(&self, page: u32, n: usize, total: Option<i64>) -> Option<u32> {
        let shown = self.offset(page) + n as i64;
        let full = n > 0 && n as i64 >= self.limit();
        (full && total.is_none_or(|t| shown < t)).then_some(page.saturating_add(1))
    }

    /// The pages `TotalCount` records fill.
    fn known_last_page(&self, total: Option<i64>) -> Option<u32> {
        let total = u64::try_from(total?).ok()?;
        crate::vendors::pages_of(total, u64::try_from(self.limit()).ok()?)
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, BuildError> {
    serde_json::to_vec(v).map_err(|e| BuildError(format!("cannot encode body: {e}")))
}

impl Vendor for TencentVendor {
    fn kind(&self) -> VendorKind {
        VendorKind::Tencent
    }

    fn streams(&self, watched: &[TaskType]) -> Vec<Stream> {
        TASK_TYPES
            .iter()
            .filter(|t| watched.contains(t))
            .map(|t| Stream {
                api: if *t == TaskType::Prefetch {
                    PUSH
                } else {
                    PURGE
                },
                task_type: Some(*t),
            })
            .collect()
    }

    fn list_page_size(&self, _stream: &Stream) -> Option<u32> {
        Some(self.opts.page_size)
    }

    /// A submission's one call, shared among its unfinished records.
    fn recheck_id_costs(&self, unfinished: &[Unfinished]) -> Vec<Option<f64>> {
        let mut records: std::collections::HashMap<(usize, &str), usize> =
            std::collections::HashMap::new();
        fn key(u: &Unfinished) -> (usize, &str) {
            let api = if u.task_type == TaskType::Prefetch {
                PUSH
            } else {
                PURGE
            };
            (api, api::task_id_of(&u.id))
        }
        for u in unfinished {
            *records.entry(key(u)).or_default() += 1;
        }
        unfinished
            .iter()
            .map(|u| {
                let k = key(u);
                (!k.1.is_empty()).then(|| 1.0 / records[&k] as f64)
            })
            .collect()
    }

    fn tells_totals(&self) -> bool {
        true
    }

    /// One call per submission: the `TaskId` filter answers every URL of
    /// it, so several unfinished records of one submission share a call.
    fn plan_rechecks(&self, unfinished: &[Unfinished]) -> Vec<Query> {
        let mut seen: Vec<(usize, &str)> = Vec::new();
        let mut out = Vec::new();
        for u in unfinished {
            let task_id = api::task_id_of(&u.id);
            let api = if u.task_type == TaskType::Prefetch {
                PUSH
            } else {
                PURGE
            };
            if task_id.is_empty() || seen.contains(&(api, task_id)) {
                continue;
            }
            seen.push((api, task_id));
            out.push(Query::ById {
                api,
                task_type: Some(u.task_type),
                ids: vec![task_id.to_owned()],
            });
        }
        out
    }

    fn quota_queries(&self, watched: &[TaskType]) -> Vec<Query> {
        if !self.opts.quota {
            return Vec::new();
        }
        let mut q = Vec::new();
        if watched
            .iter()
            .any(|t| matches!(t, TaskType::RefreshFile | TaskType::RefreshDir))
        {
            q.push(Query::Quota { api: PURGE_QUOTA });
        }
        if watched.contains(&TaskType::Prefetch) {
            q.push(Query::Quota { api: PUSH_QUOTA });
        }
        q
    }

    fn build(
        &self,
        query: &Query,
        page: u32,
        now: DateTime<Utc>,
    ) -> Result<HttpRequest, BuildError> {
        match query {
            Query::List { stream, window } => {
                // Both bounds are inclusive seconds: [from, to) is
                // [from, to - 1]; an empty window still sends a valid one.
                let end = (window.to - 1).max(window.from);
                let body = ListBody {
                    start_time: Some(api::beijing(window.from)),
                    end_time: Some(api::beijing(end)),
                    ..self.list_body(stream, page)
                };
                self.post(APIS[stream.api].name, to_json(&body)?, now)
            }
            Query::ById { api: idx, ids, .. } => {
                let [id] = ids.as_slice() else {
                    return Err(BuildError(format!(
                        "Tencent re-checks one TaskId per request, got {}",
                        ids.len()
                    )));
                };
                if *idx != PURGE && *idx != PUSH {
                    return Err(BuildError(format!("API {idx} has no TaskId filter")));
                }
                // TaskId alone is enough ("TaskId or a start time").
                let body = ListBody {
                    task_id: Some(id.clone()),
                    offset: Some(self.offset(page)),
                    limit: Some(self.limit()),
                    ..ListBody::default()
                };
                self.post(APIS[*idx].name, to_json(&body)?, now)
            }
            Query::Quota { api: idx } => {
                if *idx != PURGE_QUOTA && *idx != PUSH_QUOTA {
                    return Err(BuildError(format!("API {idx} is not a quota API")));
                }
                self.post(APIS[*idx].name, b"{}".to_vec(), now)
            }
        }
    }

    fn parse(&self, query: &Query, page: u32, resp: &HttpResponse) -> Result<Parsed, ApiError> {
        let body = api::envelope(resp)?;
        match query {
            Query::Quota { api: idx } => {
                let area = self.quota_area();
                let quotas = if *idx == PUSH_QUOTA {
                    let push = body.url_push.as_deref().ok_or_else(|| {
                        ApiError::parse("quota answer without UrlPush", &resp.body)
                    })?;
                    vec![api::to_quota(TaskType::Prefetch, push, area)]
                } else {
                    let (Some(url), Some(path)) =
                        (body.url_purge.as_deref(), body.path_purge.as_deref())
                    else {
                        return Err(ApiError::parse(
                            "quota answer without UrlPurge/PathPurge",
                            &resp.body,
                        ));
                    };
                    vec![
                        api::to_quota(TaskType::RefreshFile, url, area),
                        api::to_quota(TaskType::RefreshDir, path, area),
                    ]
                };
                Ok(Parsed {
                    quotas,
                    ..Parsed::default()
                })
            }
            Query::List { stream, .. } => {
                let (tasks, n) = self.records(stream.api, &body, stream.task_type);
                Ok(Parsed {
                    tasks,
                    quotas: Vec::new(),
                    next_page: self.next_page(page, n, body.total_count),
                    known_last_page: self.known_last_page(body.total_count),
                })
            }
            Query::ById {
                api: idx,
                task_type,
                ..
            } => {
                let (tasks, n) = self.records(*idx, &body, *task_type);
                Ok(Parsed {
                    tasks,
                    quotas: Vec::new(),
                    next_page: self.next_page(page, n, body.total_count),
                    known_last_page: self.known_last_page(body.total_count),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests;
