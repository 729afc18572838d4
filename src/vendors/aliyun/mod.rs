//! Alibaba Cloud CDN (API version 2018-05-10): DescribeRefreshTasks per
//! watched ObjectType, DescribeRefreshTaskById for re-checks, and
//! DescribeRefreshQuota.
//!
//! RPC style: everything travels in the query of a GET to `/`, signed with
//! RPC signature v1 (HMAC-SHA1) by default, or ACS3-HMAC-SHA256 with
//! `options: { signature: acs3 }`. Listing windows must lie within the last
//! 3 days (the API answers `InvalidTime` otherwise), so `StartTime` is
//! clamped at build time with a margin for clock skew.

pub mod api;
pub mod sign;

use super::{
    ApiError, ApiSpec, BuildError, Parsed, Query, Stream, Unfinished, Vendor, VendorContext,
    VendorKind,
};
use crate::api::Rate;
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::task::TaskType;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// API index: DescribeRefreshTasks.
pub const LIST: usize = 0;
/// API index: DescribeRefreshTaskById.
pub const BY_ID: usize = 1;
/// API index: DescribeRefreshQuota.
pub const QUOTA: usize = 2;

/// The documented per-user limits (DescribeRefreshTasks doc: 5/s; its
/// siblings: 30/s and 20/s). The core scales them by the safety fraction.
pub const APIS: &[ApiSpec] = &[
    ApiSpec {
        name: "DescribeRefreshTasks",
        limit: Rate::new(5, Duration::from_secs(1)),
    },
    ApiSpec {
        name: "DescribeRefreshTaskById",
        limit: Rate::new(30, Duration::from_secs(1)),
    },
    ApiSpec {
        name: "DescribeRefreshQuota",
        limit: Rate::new(20, Duration::from_secs(1)),
    },
];

/// This module's entry in the vendor registry.
pub const SPEC: super::VendorSpec = super::VendorSpec {
    name: "aliyun",
    title: "Alibaba Cloud CDN",
    apis: APIS,
    max_lookback: MAX_LOOKBACK,
    default_endpoint: DEFAULT_ENDPOINT,
    task_types: TASK_TYPES,
    build: |ctx, options| {
        super::build_with(options, |opts: Options| {
            Arc::new(AliyunVendor::new(ctx, opts))
        })
    },
    #[cfg(feature = "sim")]
    simulator: |s| {
        let sim = crate::sim::aliyun::AliyunSim::new(s.world.clone(), &s.id, &s.secret);
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

/// Only the last 3 days can be queried.
pub const MAX_LOOKBACK: Duration = Duration::from_secs(3 * 86_400);

/// `StartTime` is never earlier than `now - MAX_LOOKBACK + CLOCK_MARGIN`, so
/// a clock a little behind Aliyun's never earns `InvalidTime`.
pub const CLOCK_MARGIN: Duration = Duration::from_secs(600);

/// The central endpoint for mainland regions.
pub const DEFAULT_ENDPOINT: &str = "https://cdn.aliyuncs.com";

/// API version.
pub const VERSION: &str = "2018-05-10";

/// Task types Aliyun reports (no tag refreshes).
pub const TASK_TYPES: &[TaskType] = &[
    TaskType::RefreshFile,
    TaskType::RefreshDir,
    TaskType::RefreshRegex,
    TaskType::Prefetch,
];

/// DescribeRefreshTaskById takes at most this many ids.
pub const IDS_PER_REQUEST: usize = 10;

/// Highest `PageNumber` the API accepts.
pub const MAX_PAGE_NUMBER: u32 = 100_000;

/// Signature scheme.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Signature {
    /// RPC signature v1, HMAC-SHA1 (the classic SDK).
    #[default]
    V1,
    /// ACS3-HMAC-SHA256 (the current SDK).
    Acs3,
}

/// Options of an Aliyun account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// Signature scheme: `v1` (default) or `acs3`.
    pub signature: Signature,
    /// Tasks per DescribeRefreshTasks page, 1..=100 (default 100).
    pub page_size: PageSize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            signature: Signature::V1,
            page_size: PageSize(100),
        }
    }
}

/// A page size the API accepts (1..=100).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u32")]
pub struct PageSize(pub u32);

impl TryFrom<u32> for PageSize {
    type Error = String;
    fn try_from(v: u32) -> Result<Self, String> {
        if (1..=100).contains(&v) {
            Ok(PageSize(v))
        } else {
            Err(format!("page_size {v} is outside 1..=100"))
        }
    }
}

/// Request parameters, in the order they go on the URL.
type Params = Vec<(String, String)>;

/// The Aliyun vendor module of one account.
#[derive(Debug)]
pub struct AliyunVendor {
    ctx: VendorContext,
    opts: Options,
    /// Makes nonces unique per request (see [`AliyunVendor::nonce`]).
    counter: AtomicU64,
    seed: u64,
}

impl AliyunVendor {
    /// For one account.
    pub fn new(ctx: VendorContext, opts: Options) -> Self {
        static INSTANCES: AtomicU64 = AtomicU64::new(0);
        let seed = {
            let h = Sha256::digest(format!(
                "{}|{}|{}",
                std::process::id(),
                ctx.credentials.id,
                INSTANCES.fetch_add(1, Ordering::Relaxed)
            ));
            u64::from_be_bytes(h[..8].try_into().expect("a SHA-256 digest has 32 bytes"))
        };
        AliyunVendor {
            ctx,
            opts,
            counter: AtomicU64::new(0),
            seed,
        }
    }

    /// A nonce unique per request: a hash of the time, this account's seed
    /// and a counter. Not I/O and not the signer (which takes it as input).
    fn nonce(&self, now: DateTime<Utc>) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let h = Sha256::digest(format!(
            "{}|{}|{n}",
            self.seed,
            now.timestamp_nanos_opt().unwrap_or(now.timestamp())
        ));
        hex::encode(&h[..16])
    }

    /// The business parameters and action of `query`.
    fn business(
        &self,
        query: &Query,
        page: u32,
        now: DateTime<Utc>,
    ) -> Result<(&'static str, Params), BuildError> {
        Ok(match query {
            Query::List { stream, window } => {
                let object_type = stream
                    .task_type
                    .and_then(api::object_type_of)
                    .ok_or_else(|| BuildError("listing without an Aliyun ObjectType".into()))?;
                let earliest =
                    now.timestamp() - MAX_LOOKBACK.as_secs() as i64 + CLOCK_MARGIN.as_secs() as i64;
                let start = window.from.max(earliest);
                let end = window.to.max(start + 1);
                let mut p = vec![("ObjectType".to_owned(), object_type.to_owned())];
                if let Some(d) = &self.ctx.domain {
                    p.push(("DomainName".into(), d.clone()));
                }
                p.push((
                    "PageNumber".into(),
                    page.clamp(1, MAX_PAGE_NUMBER).to_string(),
                ));
                p.push(("PageSize".into(), self.opts.page_size.0.to_string()));
                p.push(("StartTime".into(), api::format_time(start)));
                p.push(("EndTime".into(), api::format_time(end)));
                (APIS[LIST].name, p)
            }
            Query::ById { ids, .. } => {
                if ids.is_empty() || ids.len() > IDS_PER_REQUEST {
                    return Err(BuildError(format!(
                        "{} task ids; DescribeRefreshTaskById takes 1 to {IDS_PER_REQUEST}",
                        ids.len()
                    )));
                }
                if ids.iter().any(|i| i.is_empty() || i.contains(',')) {
                    return Err(BuildError("a task id is empty or contains a comma".into()));
                }
                (APIS[BY_ID].name, vec![("TaskId".to_owned(), ids.join(","))])
            }
            Query::Quota { .. } => (APIS[QUOTA].name, Vec::new()),
        })
    }

    /// A request signed with RPC v1: GET, everything in the query.
    fn build_v1(
        &self,
        action: &str,
        mut params: Vec<(String, String)>,
        timestamp: String,
        nonce: String,
    ) -> HttpRequest {
        let c = &self.ctx.credentials;
        if let Some(t) = &c.session_token {
            params.push(("SecurityToken".into(), t.expose().to_owned()));
        }
        params.extend([
            ("Version".to_owned(), VERSION.to_owned()),
            ("Action".to_owned(), action.to_owned()),
            ("Format".to_owned(), "JSON".to_owned()),
            ("Timestamp".to_owned(), timestamp),
            ("SignatureMethod".to_owned(), "HMAC-SHA1".to_owned()),
            ("SignatureVersion".to_owned(), "1.0".to_owned()),
            ("SignatureNonce".to_owned(), nonce),
            ("AccessKeyId".to_owned(), c.id.clone()),
        ]);
        let signed = sign::sign_rpc_v1("GET", &params, &c.secret);
        HttpRequest {
            method: Method::Get,
            url: format!("{}/?{}", self.base(), signed.signed_url_query),
            headers: vec![("accept".into(), "application/json".into())],
            body: Vec::new(),
        }
    }

    /// A request signed with ACS3: POST, business parameters in the query,
    /// empty body, action and version in headers (as the current SDK sends).
    fn build_acs3(
        &self,
        action: &str,
        params: Vec<(String, String)>,
        timestamp: String,
        nonce: String,
    ) -> HttpRequest {
        let c = &self.ctx.credentials;
        let mut headers = vec![
            ("host".to_owned(), self.authority()),
            ("x-acs-version".to_owned(), VERSION.to_owned()),
            ("x-acs-action".to_owned(), action.to_owned()),
            ("x-acs-date".to_owned(), timestamp),
            ("x-acs-signature-nonce".to_owned(), nonce),
            ("accept".to_owned(), "application/json".to_owned()),
            ("x-acs-content-sha256".to_owned(), sign::sha256_hex(b"")),
        ];
        if let Some(t) = &c.session_token {
            headers.push(("x-acs-security-token".into(), t.expose().to_owned()));
        }
        let signed = sign::sign_acs3("POST", "/", &params, &headers, b"", &c.id, &c.secret);
        // The transport sets Host from the URL; it was signed as the same value.
        headers.retain(|(k, _)| k != "host");
        headers.push(("authorization".into(), signed.authorization));
        HttpRequest {
            method: Method::Post,
            url: sign::acs3_url(self.base(), "/", &params),
            headers,
            body: Vec::new(),
        }
    }

    fn base(&self) -> &str {
        self.ctx.endpoint.trim_end_matches('/')
    }

    /// `host[:port]` as the transport will send it in `Host`.
    fn authority(&self) -> String {
        let base = self.base();
        let (scheme, rest) = base.split_once("://").unwrap_or(("https", base));
        let auth = rest.split('/').next().unwrap_or(rest);
        let default_port = if scheme == "http" { ":80" } else { ":443" };
        auth.strip_suffix(default_port).unwrap_or(auth).to_owned()
    }
}

impl Vendor for AliyunVendor {
    fn kind(&self) -> VendorKind {
        VendorKind::Aliyun
    }

    fn streams(&self, watched: &[TaskType]) -> Vec<Stream> {
        TASK_TYPES
            .iter()
            .filter(|t| watched.contains(t))
            .map(|t| Stream {
                api: LIST,
                task_type: Some(*t),
            })
            .collect()
    }

    /// `DescribeRefreshTasks` (the listing every refresh needs, 5/s) for the
    /// first watched type over the last five minutes.
    fn probe(&self, watched: &[TaskType], now: i64) -> Option<Query> {
        let task_type = TASK_TYPES.iter().find(|t| watched.contains(t)).copied();
        Some(super::probe_listing(
            Stream {
                api: LIST,
                task_type: task_type.or(Some(TaskType::RefreshFile)),
            },
            now,
        ))
    }

    fn list_page_size(&self, _stream: &Stream) -> Option<u32> {
        Some(self.opts.page_size.0)
    }

    /// A tenth of a DescribeRefreshTaskById call each; an id that cannot
    /// travel in its comma-separated list has no lookup.
    fn recheck_id_costs(&self, unfinished: &[Unfinished]) -> Vec<Option<f64>> {
        unfinished
            .iter()
            .map(|u| {
                (!u.id.is_empty() && !u.id.contains(',')).then_some(1.0 / IDS_PER_REQUEST as f64)
            })
            .collect()
    }

    fn tells_totals(&self) -> bool {
        true
    }

    fn plan_rechecks(&self, unfinished: &[Unfinished]) -> Vec<Query> {
        let mut out = Vec::new();
        for t in TASK_TYPES {
            let ids: Vec<String> = unfinished
                .iter()
                .filter(|u| u.task_type == *t && !u.id.is_empty() && !u.id.contains(','))
                .map(|u| u.id.clone())
                .collect();
            out.extend(ids.chunks(IDS_PER_REQUEST).map(|c| Query::ById {
                api: BY_ID,
                task_type: Some(*t),
                ids: c.to_vec(),
            }));
        }
        out
    }

    fn quota_queries(&self, _watched: &[TaskType]) -> Vec<Query> {
        vec![Query::Quota { api: QUOTA }]
    }

    fn build(
        &self,
        query: &Query,
        page: u32,
        now: DateTime<Utc>,
    ) -> Result<HttpRequest, BuildError> {
        let (action, params) = self.business(query, page, now)?;
        let timestamp = now.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let nonce = self.nonce(now);
        Ok(match self.opts.signature {
            Signature::V1 => self.build_v1(action, params, timestamp, nonce),
            Signature::Acs3 => self.build_acs3(action, params, timestamp, nonce),
        })
    }

    fn parse(&self, query: &Query, page: u32, resp: &HttpResponse) -> Result<Parsed, ApiError> {
        if !(200..300).contains(&resp.status) || api::has_error_code(&resp.body) {
            return Err(api::error_of(resp.status, &resp.body, resp.retry_after()));
        }
        match query {
            Query::Quota { .. } => {
                let q: api::WireQuota = serde_json::from_slice(&resp.body)
                    .map_err(|_| api::error_of(resp.status, &resp.body, None))?;
                Ok(Parsed {
                    quotas: api::quotas(&q),
                    ..Parsed::default()
                })
            }
            Query::List { stream, .. } => {
                let l: api::WireTaskList = serde_json::from_slice(&resp.body)
                    .map_err(|_| api::error_of(resp.status, &resp.body, None))?;
                let size = l
                    .page_size
                    .filter(|s| *s > 0)
                    .unwrap_or(u64::from(self.opts.page_size.0));
                let entries = l.tasks.into_vec();
                let full = entries.len() as u64 >= size;
                // Saturating: `PageSize` comes from the answer and may be
                // huge; a saturated product means every record was shown.
                let more = l
                    .total_count
                    .is_none_or(|total| u64::from(page).saturating_mul(size) < total);
                let next_page = (full && more && !entries.is_empty() && page < MAX_PAGE_NUMBER)
                    .then(|| page + 1);
                Ok(Parsed {
                    tasks: tasks(entries, stream.task_type, &resp.body)?,
                    quotas: Vec::new(),
                    next_page,
                    known_last_page: l
                        .total_count
                        .and_then(|t| crate::vendors::pages_of(t, size))
                        .map(|p| p.min(MAX_PAGE_NUMBER)),
                })
            }
            Query::ById { task_type, .. } => {
                let l: api::WireTaskList = serde_json::from_slice(&resp.body)
                    .map_err(|_| api::error_of(resp.status, &resp.body, None))?;
                Ok(Parsed {
                    tasks: tasks(l.tasks.into_vec(), *task_type, &resp.body)?,
                    ..Parsed::default()
                })
            }
        }
    }
}

fn tasks(
    entries: Vec<api::WireTask>,
    fallback: Option<TaskType>,
    body: &[u8],
) -> Result<Vec<crate::task::Task>, ApiError> {
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        match api::to_task(e, fallback) {
            Ok(Some(t)) => out.push(t),
            Ok(None) => {}
            Err(why) => return Err(ApiError::parse(why, body)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
