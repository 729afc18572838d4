//! Volcengine multi-cloud CDN (MCDN): refresh and preload tasks.
//!
//! One multi-cloud task fans out to one or more underlying CDN vendors
//! (SubTasks). Listing is `POST /?Action=ListContentTasks&Version=2022-03-01`
//! with a JSON body, one stream per task type; the deprecated
//! `ListContentTask` (same body, same answer) can be chosen per account.
//! Unfinished tasks are re-checked one id per call with the `TaskId` filter
//! of the same action, or by listing their window again where its pages
//! cost fewer calls (the driver prices both). Quotas come from `DescribeContentQuota`, which needs
//! the multi-cloud account ids.
//!
//! The API never rejects a bad window: a missing or invalid
//! `StartTime`/`EndTime` silently becomes "the last 24 hours". So every
//! request carries an explicit, non-empty window in Unix seconds, and
//! windows are cut to at most [`MAX_SPAN`].

pub mod api;
pub mod sign;

use super::{
    ApiError, ApiSpec, BuildError, OptionsError, Parsed, Query, Stream, Unfinished, Vendor,
    VendorContext, VendorKind,
};
use crate::api::Rate;
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::task::TaskType;
use api::{ListBody, ListResult, PageIn, QuotaBody, QuotaResult};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// Index of `ListContentTasks` in [`APIS`].
pub const LIST_TASKS: usize = 0;
/// Index of the deprecated `ListContentTask`.
pub const LIST_TASK: usize = 1;
/// Index of `DescribeContentQuota`.
pub const QUOTA: usize = 2;

/// The API version of every MCDN action used here.
pub const VERSION: &str = "2022-03-01";

/// The documented limits: 30 requests per second per account, per API.
pub const APIS: &[ApiSpec] = &[
    ApiSpec {
        name: "ListContentTasks",
        limit: Rate::new(30, Duration::from_secs(1)),
    },
    ApiSpec {
        name: "ListContentTask",
        limit: Rate::new(30, Duration::from_secs(1)),
    },
    ApiSpec {
        name: "DescribeContentQuota",
        limit: Rate::new(30, Duration::from_secs(1)),
    },
];

/// This module's entry in the vendor registry.
pub const SPEC: super::VendorSpec = super::VendorSpec {
    name: "volcengine",
    title: "Volcengine MCDN",
    apis: APIS,
    max_lookback: MAX_LOOKBACK,
    default_endpoint: DEFAULT_ENDPOINT,
    task_types: TASK_TYPES,
    build: |ctx, options| {
        let opts = parse_options(options)?;
        Ok(Arc::new(VolcengineVendor::new(ctx, opts)))
    },
    #[cfg(feature = "sim")]
    simulator: |s| {
        let sim = crate::sim::volcengine::VolcengineSim::new(s.world.clone(), &s.id, &s.secret)
            .with_clock(s.clock.clone());
        let truth: crate::sim::Truth = {
            let world = s.world.clone();
            std::sync::Arc::new(move |from| world.truth(from))
        };
        crate::sim::Simulated {
            control: sim.control.clone(),
            router: sim.router(),
            truth,
        }
    },
    demo_options: "\n    options: { cloud_account_ids: [demo-cloud-account] }",
    demo_traffic_share: 1.0,
};

/// The vendor documents no retention for task history; seven days is our
/// choice (config clamps `lookback` to it).
pub const MAX_LOOKBACK: Duration = Duration::from_secs(7 * 86_400);

/// Longest window per list request: the span of the API's own default
/// window, which it certainly accepts.
pub const MAX_SPAN: Duration = Duration::from_secs(86_400);

/// The public endpoint (the SDKs' host; some doc pages print
/// `mcdn.volcengine-api.com`, so it is configurable).
pub const DEFAULT_ENDPOINT: &str = "https://open.volcengineapi.com";

/// What MCDN reports: file and directory refreshes, and preloads.
pub const TASK_TYPES: &[TaskType] = &[
    TaskType::RefreshFile,
    TaskType::RefreshDir,
    TaskType::Prefetch,
];

/// Largest `PageSize` the API accepts.
pub const MAX_PAGE_SIZE: u32 = 100;

/// The listing action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum ListAction {
    /// The current action.
    #[default]
    ListContentTasks,
    /// The deprecated one: still answers, gets no updates.
    ListContentTask,
}

impl ListAction {
    /// The index of its API in [`APIS`].
    pub fn api(self) -> usize {
        match self {
            ListAction::ListContentTasks => LIST_TASKS,
            ListAction::ListContentTask => LIST_TASK,
        }
    }
}

/// Options of a Volcengine account (`options:` in config).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// `ListContentTasks` (default) or the deprecated `ListContentTask`.
    pub action: ListAction,
    /// Multi-cloud account ids whose daily quotas are read with
    /// DescribeContentQuota (summed). Empty: no quota queries.
    pub cloud_account_ids: Vec<String>,
    /// Tasks per page, 1–100.
    pub page_size: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            action: ListAction::default(),
            cloud_account_ids: Vec::new(),
            page_size: MAX_PAGE_SIZE,
        }
    }
}

/// Parses and validates an account's `options:`.
pub fn parse_options(value: serde_yaml::Value) -> Result<Options, OptionsError> {
    let o: Options = super::parse_options_as(value)?;
    if !(1..=MAX_PAGE_SIZE).contains(&o.page_size) {
        return Err(OptionsError {
            path: "page_size".into(),
            message: format!("{} is outside 1..=100", o.page_size),
        });
    }
    if let Some(i) = o
        .cloud_account_ids
        .iter()
        .position(|id| id.trim().is_empty() || id.contains(','))
    {
        return Err(OptionsError {
            path: format!("cloud_account_ids[{i}]"),
            message: "must be a non-empty id without commas".into(),
        });
    }
    Ok(o)
}

/// The MCDN module of one account.
#[derive(Debug)]
pub struct VolcengineVendor {
    ctx: VendorContext,
    opts: Options,
}

impl VolcengineVendor {
    /// For one account.
    pub fn new(ctx: VendorContext, opts: Options) -> Self {
        VolcengineVendor { ctx, opts }
    }

    fn page(&self, page: u32) -> Option<PageIn> {
        Some(PageIn {
            page_num: Some(i64::from(page.max(1))),
            page_size: Some(i64::from(self.opts.page_size)),
        })
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
        let (host, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if host.is_empty() {
            return Err(BuildError(format!("endpoint {endpoint:?} has no host")));
        }
        let path = format!("{prefix}/");
        let query = vec![
            ("Action".to_owned(), action.to_owned()),
            ("Version".to_owned(), VERSION.to_owned()),
        ];
        let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
        let creds = &self.ctx.credentials;
        let signed = sign::sign(&sign::SignInput {
            method: "POST",
            host,
            path: &path,
            query: &query,
            headers: &headers,
            body: &body,
            access_key_id: &creds.id,
            secret_access_key: creds.secret.expose(),
            session_token: creds.session_token.as_ref().map(|t| t.expose()),
            region: sign::REGION,
            service: sign::SERVICE,
            time: now,
        });
        headers.extend(signed.add_headers);
        Ok(HttpRequest {
            method: Method::Post,
            url: format!(
                "{}{path}?{}",
                &endpoint[..endpoint.len() - prefix.len()],
                sign::canonical_query(&query)
            ),
            headers,
            body,
        })
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, BuildError> {
    serde_json::to_vec(v).map_err(|e| BuildError(format!("cannot encode body: {e}")))
}

impl Vendor for VolcengineVendor {
    fn kind(&self) -> VendorKind {
        VendorKind::Volcengine
    }

    fn streams(&self, watched: &[TaskType]) -> Vec<Stream> {
        TASK_TYPES
            .iter()
            .filter(|t| watched.contains(t))
            .map(|t| Stream {
                api: self.opts.action.api(),
                task_type: Some(*t),
            })
            .collect()
    }

    /// The configured listing action (`ListContentTasks` by default) for the
    /// first watched type over the last five minutes.
    fn probe(&self, watched: &[TaskType], now: i64) -> Option<Query> {
        let task_type = TASK_TYPES.iter().find(|t| watched.contains(t)).copied();
        Some(super::probe_listing(
            Stream {
                api: self.opts.action.api(),
                task_type: task_type.or(Some(TaskType::RefreshFile)),
            },
            now,
        ))
    }

    fn max_span(&self, _stream: &Stream) -> Option<Duration> {
        Some(MAX_SPAN)
    }

    /// Re-listing a window is priced against [`Vendor::plan_rechecks`]'s
    /// one call per task.
    fn list_page_size(&self, _stream: &Stream) -> Option<u32> {
        Some(self.opts.page_size)
    }

    fn tells_totals(&self) -> bool {
        true
    }

    /// One request per task, with the listing action's `TaskId` filter (the
    /// answer has the listing's shape, so one parser serves both).
    fn plan_rechecks(&self, unfinished: &[Unfinished]) -> Vec<Query> {
        unfinished
            .iter()
            .map(|u| Query::ById {
                api: self.opts.action.api(),
                task_type: Some(u.task_type),
                ids: vec![u.id.clone()],
            })
            .collect()
    }

    fn quota_queries(&self, _watched: &[TaskType]) -> Vec<Query> {
        if self.opts.cloud_account_ids.is_empty() {
            Vec::new()
        } else {
            vec![Query::Quota { api: QUOTA }]
        }
    }

    fn build(
        &self,
        query: &Query,
        page: u32,
        now: DateTime<Utc>,
    ) -> Result<HttpRequest, BuildError> {
        let action = self.opts.action;
        let action_name = APIS[action.api()].name;
        match query {
            Query::List { stream, window } => {
                // An empty or inverted window would silently become "the
                // last 24 h": always send at least one second.
                let start = window.from.max(1);
                let end = window.to.max(start + 1);
                let body = ListBody {
                    task_type: stream.task_type.and_then(api::wire_type).map(str::to_owned),
                    start_time: Some(start),
                    end_time: Some(end),
                    domain: self.ctx.domain.clone(),
                    pagination: self.page(page),
                    ..ListBody::default()
                };
                self.post(action_name, to_json(&body)?, now)
            }
            Query::ById { ids, task_type, .. } => {
                let [id] = ids.as_slice() else {
                    return Err(BuildError(format!(
                        "MCDN re-checks one task id per request, got {}",
                        ids.len()
                    )));
                };
                // The TaskId filter still obeys the created-time window, and
                // a missing one means the last 24 h: span the whole lookback.
                let now_s = now.timestamp();
                let body = ListBody {
                    task_id: Some(id.clone()),
                    task_type: task_type.and_then(api::wire_type).map(str::to_owned),
                    start_time: Some((now_s - MAX_LOOKBACK.as_secs() as i64 - 3600).max(1)),
                    end_time: Some(now_s + 60),
                    pagination: self.page(1),
                    ..ListBody::default()
                };
                self.post(action_name, to_json(&body)?, now)
            }
            Query::Quota { .. } => {
                let body = QuotaBody {
                    cloud_account_id: Some(self.opts.cloud_account_ids.join(",")),
                };
                self.post(APIS[QUOTA].name, to_json(&body)?, now)
            }
        }
    }

    fn parse(&self, query: &Query, page: u32, resp: &HttpResponse) -> Result<Parsed, ApiError> {
        match query {
            Query::Quota { .. } => {
                let env = api::envelope::<QuotaResult>(resp)?;
                let r = env
                    .result
                    .ok_or_else(|| ApiError::parse("quota answer without Result", &resp.body))?;
                Ok(Parsed {
                    quotas: api::to_quotas(&r),
                    ..Parsed::default()
                })
            }
            Query::List { stream, .. } => {
                let (tasks, n, total) = list(resp, stream.task_type)?;
                // `Total` may count tasks or pages: page until a short page.
                let full = n >= self.opts.page_size as usize && n > 0;
                Ok(Parsed {
                    tasks,
                    quotas: Vec::new(),
                    // Checked: `u32::MAX` has no next page (saturating
                    // would ask for the same page again).
                    next_page: full.then(|| page.checked_add(1)).flatten(),
                    // Read as tasks, `Total` gives at most the pages there
                    // are in either reading (P pages make no more than
                    // P / PageSize), so no page past the end is asked for.
                    known_last_page: total
                        .and_then(|t| crate::vendors::pages_of(t, u64::from(self.opts.page_size))),
                })
            }
            Query::ById { task_type, .. } => {
                let (tasks, ..) = list(resp, *task_type)?;
                Ok(Parsed {
                    tasks,
                    ..Parsed::default()
                })
            }
        }
    }
}

/// Tasks of a list answer, how many the page held (before dropping
/// unusable ones) and the answer's `Total`.
fn list(
    resp: &HttpResponse,
    fallback: Option<TaskType>,
) -> Result<(Vec<crate::task::Task>, usize, Option<u64>), ApiError> {
    let env = api::envelope::<ListResult>(resp)?;
    let r = env
        .result
        .ok_or_else(|| ApiError::parse("list answer without Result", &resp.body))?;
    let wire = r.tasks.unwrap_or_default();
    let tasks = wire
        .iter()
        .filter_map(|t| api::to_task(t, fallback))
        .collect();
    let total = r.pagination.and_then(|p| p.total);
    Ok((tasks, wire.len(), total.and_then(|t| u64::try_from(t).ok())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::vendors::{Credentials, Window};

    fn vendor(endpoint: &str, opts: Options) -> VolcengineVendor {
        VolcengineVendor::new(
            VendorContext {
                endpoint: endpoint.into(),
                credentials: Credentials {
                    id: "AKLTexample".into(),
                    secret: Secret::new("very-secret-key"),
                    session_token: Some(Secret::new("sts-token-value")),
                },
                domain: Some("www.example.com".into()),
                max_response_bytes: 0,
            },
            opts,
        )
    }

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-02-19T03:23:34Z")
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn list_request_is_signed_with_an_explicit_window_in_seconds() {
        let v = vendor("http://127.0.0.1:18080", Options::default());
        let q = Query::List {
            stream: v.streams(&[TaskType::Prefetch])[0],
            window: Window {
                from: 1_708_226_614,
                to: 1_708_313_014,
            },
        };
        let r = v.build(&q, 2, t0()).expect("build");
        assert_eq!(
            r.url,
            "http://127.0.0.1:18080/?Action=ListContentTasks&Version=2022-03-01"
        );
        let body: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(body["TaskType"], "preload");
        assert_eq!(body["StartTime"], 1_708_226_614);
        assert_eq!(body["EndTime"], 1_708_313_014);
        assert_eq!(body["Domain"], "www.example.com");
        assert_eq!(body["Pagination"]["PageNum"], 2);
        assert_eq!(body["Pagination"]["PageSize"], 100);
        let h = |n: &str| {
            r.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(h("X-Date"), Some("20240219T032334Z"));
        assert_eq!(h("X-Security-Token"), Some("sts-token-value"));
        assert_eq!(
            h("X-Content-Sha256").map(str::to_owned),
            Some(sign::sha256_hex(&r.body))
        );
        let auth = h("Authorization").expect("authorization");
        assert!(auth.starts_with(
            "HMAC-SHA256 Credential=AKLTexample/20240219/cn-north-1/mcdn/request, SignedHeaders=content-type;host;x-content-sha256;x-date;x-security-token, Signature="
        ), "{auth}");
        // The signature is over host 127.0.0.1:18080 and these exact bytes.
        let parsed = crate::sim::volcengine::parse_authorization(auth).expect("parse");
        let lookup = |n: &str| {
            if n == "host" {
                return Some("127.0.0.1:18080".to_owned());
            }
            r.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let q = vec![
            ("Action".to_owned(), "ListContentTasks".to_owned()),
            ("Version".to_owned(), VERSION.to_owned()),
        ];
        let again = crate::sim::volcengine::signature_for(
            "POST",
            "/",
            &q,
            &parsed,
            &lookup,
            &r.body,
            "very-secret-key",
        )
        .expect("verify");
        assert_eq!(again.signature, parsed.signature);
        // Nothing secret in Debug.
        let dbg = format!("{v:?} {r:?}");
        assert!(
            !dbg.contains("very-secret-key") && !dbg.contains("sts-token-value"),
            "{dbg}"
        );
    }

    #[test]
    fn deprecated_action_and_empty_windows() {
        let v = vendor(
            "https://open.volcengineapi.com/",
            Options {
                action: ListAction::ListContentTask,
                ..Options::default()
            },
        );
        let s = v.streams(&TaskType::ALL);
        assert_eq!(s.len(), 3);
        assert!(s.iter().all(|s| s.api == LIST_TASK));
        let r = v
            .build(
                &Query::List {
                    stream: s[0],
                    window: Window { from: 500, to: 500 },
                },
                1,
                t0(),
            )
            .expect("build");
        assert_eq!(
            r.url,
            "https://open.volcengineapi.com/?Action=ListContentTask&Version=2022-03-01"
        );
        let body: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(body["TaskType"], "refresh_file");
        assert_eq!(body["StartTime"], 500);
        assert_eq!(body["EndTime"], 501);
    }

    #[test]
    fn rechecks_are_one_id_per_call_with_a_lookback_window() {
        let v = vendor("https://open.volcengineapi.com", Options::default());
        let stream = v.streams(&[TaskType::RefreshDir])[0];
        let un: Vec<Unfinished> = ["a", "b"]
            .iter()
            .map(|id| Unfinished {
                id: (*id).into(),
                task_type: TaskType::RefreshDir,
                created_at: 1,
                stream,
            })
            .collect();
        let qs = v.plan_rechecks(&un);
        assert_eq!(qs.len(), 2);
        let r = v.build(&qs[1], 1, t0()).expect("build");
        let body: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(body["TaskId"], "b");
        let now = t0().timestamp();
        assert!(body["StartTime"].as_i64().expect("start") <= now - 7 * 86_400);
        assert!(body["EndTime"].as_i64().expect("end") > now);
        assert!(v
            .build(
                &Query::ById {
                    api: LIST_TASKS,
                    task_type: None,
                    ids: vec!["a".into(), "b".into()]
                },
                1,
                t0()
            )
            .is_err());
    }

    #[test]
    fn quota_only_with_cloud_account_ids() {
        let v = vendor("https://open.volcengineapi.com", Options::default());
        assert!(v.quota_queries(&TaskType::ALL).is_empty());
        let v = vendor(
            "https://open.volcengineapi.com",
            Options {
                cloud_account_ids: vec!["a1".into(), "b2".into()],
                ..Options::default()
            },
        );
        let q = v.quota_queries(&TaskType::ALL);
        assert_eq!(q, vec![Query::Quota { api: QUOTA }]);
        let r = v.build(&q[0], 1, t0()).expect("build");
        assert!(r.url.contains("Action=DescribeContentQuota"));
        assert_eq!(r.body, br#"{"CloudAccountId":"a1,b2"}"#);
    }

    /// Fuzzing: at page `u32::MAX` a full page asked for page `u32::MAX`
    /// again (saturating add), a loop only `max_pages` ended.
    #[test]
    fn full_last_possible_page_has_no_next_page() {
        let v = vendor(
            "https://open.volcengineapi.com",
            Options {
                page_size: 1,
                ..Options::default()
            },
        );
        let q = Query::List {
            stream: v.streams(&[TaskType::RefreshFile])[0],
            window: Window { from: 1, to: 2 },
        };
        let body = br#"{"ResponseMetadata":{"RequestID":"r"},"Result":{"Tasks":[{"TaskId":"t","TaskType":"refresh_file","TaskStatus":"done","CreatedAt":1}]}}"#;
        let resp = HttpResponse {
            status: 200,
            headers: vec![],
            body: body.to_vec(),
        };
        assert_eq!(v.parse(&q, u32::MAX, &resp).expect("ok").next_page, None);
        assert_eq!(v.parse(&q, 7, &resp).expect("ok").next_page, Some(8));
    }

    /// Fuzzing: quotas were summed as i64, which overflowed (a debug-build
    /// panic) on two huge `RefreshUrlQuota` values.
    #[test]
    fn huge_quotas_sum_without_overflow() {
        let v = vendor("https://open.volcengineapi.com", Options::default());
        let body = br#"{"ResponseMetadata":{"RequestID":"r"},"Result":{"Quotas":[{"RefreshUrlQuota":9223372036854775807,"RefreshUrlRemain":-9223372036854775808},{"RefreshUrlQuota":9223372036854775807,"RefreshUrlRemain":-1}]}}"#;
        let resp = HttpResponse {
            status: 200,
            headers: vec![],
            body: body.to_vec(),
        };
        let p = v
            .parse(&Query::Quota { api: QUOTA }, 1, &resp)
            .expect("quota answer");
        let file = p
            .quotas
            .iter()
            .find(|q| q.task_type == TaskType::RefreshFile)
            .expect("refresh_file quota");
        assert!(file.limit > 1.8e19 && file.remaining < -9.2e18, "{file:?}");
    }

    #[test]
    fn paging_stops_on_a_short_page() {
        let v = vendor(
            "https://open.volcengineapi.com",
            Options {
                page_size: 2,
                ..Options::default()
            },
        );
        let q = Query::List {
            stream: v.streams(&[TaskType::RefreshFile])[0],
            window: Window { from: 1, to: 2 },
        };
        let page = |n: usize| {
            let tasks: Vec<String> = (0..n)
                .map(|i| format!(r#"{{"TaskId":"t{i}","TaskType":"refresh_file","TaskStatus":"done","CreatedAt":1,"SubTasks":[]}}"#))
                .collect();
            HttpResponse {
                status: 200,
                headers: vec![],
                body: format!(
                    r#"{{"ResponseMetadata":{{"RequestID":"r"}},"Result":{{"Tasks":[{}],"Pagination":{{"PageNum":1,"PageSize":2,"Total":1}}}}}}"#,
                    tasks.join(",")
                )
                .into_bytes(),
            }
        };
        assert_eq!(v.parse(&q, 1, &page(2)).expect("ok").next_page, Some(2));
        // `Total` 1 read as tasks: one page known, though this answer says a
        // page 2 may follow (as it would if `Total` counted pages): the
        // reading never asks past the end, paging goes on one at a time.
        assert_eq!(
            v.parse(&q, 1, &page(2)).expect("ok").known_last_page,
            Some(1)
        );
        assert_eq!(v.parse(&q, 2, &page(1)).expect("ok").next_page, None);
        assert_eq!(v.parse(&q, 3, &page(0)).expect("ok").next_page, None);
    }

    #[test]
    fn config_clamps_lookback_to_seven_days() {
        let yaml = "accounts:\n  - name: m\n    vendor: volcengine\n    credentials: { id: AK, secret: SK }\n    lookback: 30d\n    options: { action: ListContentTask, cloud_account_ids: [a] }\n";
        let cfg = crate::config::parse(yaml, "c.yml", &|_| None, &|_| Err(String::new()))
            .unwrap_or_else(|e| panic!("{e}"));
        let a = &cfg.accounts[0];
        assert_eq!(a.settings.lookback, MAX_LOOKBACK);
        assert!(
            cfg.warnings.iter().any(|w| w.contains("clamped")),
            "{:?}",
            cfg.warnings
        );
        assert_eq!(a.context.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(a.task_types, TASK_TYPES.to_vec());
        assert_eq!(a.rates[LIST_TASKS], Rate::new(15, Duration::from_secs(1)));
        let bad = yaml.replace("lookback: 30d", "task_types: [refresh_regex]");
        assert!(crate::config::parse(&bad, "c.yml", &|_| None, &|_| Err(String::new())).is_err());
    }

    #[test]
    fn options_are_validated() {
        let yaml = |s: &str| serde_yaml::from_str::<serde_yaml::Value>(s).expect("yaml");
        assert_eq!(
            parse_options(serde_yaml::Value::Null).expect("default"),
            Options::default()
        );
        let o =
            parse_options(yaml("{action: ListContentTask, cloud_account_ids: [x]}")).expect("ok");
        assert_eq!(o.action, ListAction::ListContentTask);
        assert_eq!(
            parse_options(yaml("{page_size: 101}"))
                .expect_err("101")
                .path,
            "page_size"
        );
        assert!(parse_options(yaml("{action: ListTasks}")).is_err());
        assert!(parse_options(yaml("{bogus: 1}")).is_err());
        assert!(parse_options(yaml("{cloud_account_ids: ['a,b']}")).is_err());
    }
}
