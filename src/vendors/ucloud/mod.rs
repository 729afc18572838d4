//! UCloud UCDN: `DescribeNewUcdnPrefetchCacheTask` (prefetch) and
//! `DescribeNewUcdnRefreshCacheTask` (refresh file/dir), one stream each.
//!
//! Wire format: `POST /` with an `application/x-www-form-urlencoded` body
//! (as the official SDK sends it): `Action`, the query params, `PublicKey`
//! and `Signature` (SHA-1 over the sorted params and the private key, see
//! [`sign`]). The body carries the values exactly as signed; nothing of the
//! signature lands in the URL, so no proxy or access log sees it.
//!
//! Listing sends `BeginTime`/`EndTime` (Unix seconds) and always an explicit
//! `Limit` (without it UCloud returns the whole window in one answer) with
//! `Offset` paging. Re-checks send `TaskId.N` to the API of the task's
//! stream, with a window spanning the whole lookback, because the API's
//! default window (the last 24 h) may apply to id queries too.
//!
//! Errors are HTTP 200 with `RetCode ≠ 0` ([`api::outcome_for_ret_code`]).

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
use serde::{Deserialize, Deserializer};
use std::sync::Arc;
use std::time::Duration;

/// API index of `DescribeNewUcdnPrefetchCacheTask` in [`APIS`].
pub const PREFETCH: usize = 0;
/// API index of `DescribeNewUcdnRefreshCacheTask` in [`APIS`].
pub const REFRESH: usize = 1;

/// UCloud publishes no rate limit for these APIs (its gateway answers
/// `RetCode 153` when it throttles). We assume a ceiling of 10 requests/s
/// per API per account — the order of the limits other vendors publish for
/// their task queries — so the default budget (× `safety_fraction` 0.5) is
/// 5 requests/s per API; `rate_budget` may raise it up to the ceiling or
/// lower it.
pub const APIS: &[ApiSpec] = &[
    ApiSpec {
        name: "DescribeNewUcdnPrefetchCacheTask",
        limit: Rate::new(10, Duration::from_secs(1)),
    },
    ApiSpec {
        name: "DescribeNewUcdnRefreshCacheTask",
        limit: Rate::new(10, Duration::from_secs(1)),
    },
];

/// This module's entry in the vendor registry.
pub const SPEC: super::VendorSpec = super::VendorSpec {
    name: "ucloud",
    title: "UCloud UCDN",
    apis: APIS,
    max_lookback: MAX_LOOKBACK,
    default_endpoint: DEFAULT_ENDPOINT,
    task_types: TASK_TYPES,
    build: |ctx, options| {
        super::build_with(options, |opts: Options| {
            Arc::new(UcloudVendor::new(ctx, opts))
        })
    },
    #[cfg(feature = "sim")]
    simulator: |s| {
        let sim = crate::sim::ucloud::UcloudSim::new(s.world.clone(), &s.id, &s.secret);
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

/// UCloud documents no history limit; seven days is what we vouch for.
pub const MAX_LOOKBACK: Duration = Duration::from_secs(7 * 86_400);

/// The public API host (`api.an-link.com` in the seed doc is a white-label
/// copy: set `endpoint` per account for those).
pub const DEFAULT_ENDPOINT: &str = "https://api.ucloud.cn";

/// Task types UCloud reports.
pub const TASK_TYPES: &[TaskType] = &[
    TaskType::RefreshFile,
    TaskType::RefreshDir,
    TaskType::Prefetch,
];

/// Task ids per re-check request.
pub const IDS_PER_REQUEST: usize = 20;

/// Response bytes allowed per TaskInfo when sizing the default page: a
/// task with a few dozen long URLs and their progress fits (the simulator's
/// five-URL tasks take about 700).
pub const TASK_BYTES_BOUND: usize = 8 << 10;

/// The default page never exceeds this many tasks (a 2,000-task answer is
/// about 1.5 MB, quick to send and parse); `max_response_bytes` below
/// 16 MiB lowers it.
pub const DEFAULT_PAGE_CAP: u32 = 2000;

/// Largest `page_size` accepted. UCloud documents no maximum for `Limit`
/// (its default is the whole window).
pub const MAX_PAGE_SIZE: u32 = 10_000;

/// The default `Limit`: as large as [`DEFAULT_PAGE_CAP`] while a page of
/// [`TASK_BYTES_BOUND`]-byte tasks stays under `max_response_bytes`.
pub fn default_page_size(max_response_bytes: usize) -> u32 {
    let max = match max_response_bytes {
        0 => crate::config::DEFAULT_MAX_RESPONSE_BYTES,
        n => n,
    };
    u32::try_from(max / TASK_BYTES_BOUND)
        .unwrap_or(u32::MAX)
        .clamp(1, DEFAULT_PAGE_CAP)
}

/// Options of a UCloud account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// `ProjectId` sent with every request. Required for sub-accounts;
    /// absent means the default project.
    pub project_id: Option<String>,
    /// `IsDcdn`: list whole-site-acceleration (DCDN) tasks instead of CDN
    /// ones. UCloud returns DCDN tasks only when this is true, so an account
    /// with both needs two account entries.
    pub is_dcdn: bool,
    /// `Limit`: tasks per page (1..=10000). Always sent: without it UCloud
    /// returns the whole window in one answer. Unset:
    /// [`default_page_size`] of `max_response_bytes`.
    #[serde(deserialize_with = "page_size")]
    pub page_size: Option<u32>,
}

fn page_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let n = u32::deserialize(d)?;
    if (1..=MAX_PAGE_SIZE).contains(&n) {
        Ok(Some(n))
    } else {
        Err(serde::de::Error::custom(format!(
            "page_size {n} is outside 1..={MAX_PAGE_SIZE}"
        )))
    }
}

/// The UCloud vendor module for one account.
#[derive(Debug)]
pub struct UcloudVendor {
    ctx: VendorContext,
    opts: Options,
    /// `Limit` of a listing: the option, or the default for the account's
    /// `max_response_bytes`.
    page_size: u32,
}

impl UcloudVendor {
    /// For one account.
    pub fn new(ctx: VendorContext, opts: Options) -> Self {
        let page_size = opts
            .page_size
            .unwrap_or_else(|| default_page_size(ctx.max_response_bytes));
        UcloudVendor {
            ctx,
            opts,
            page_size,
        }
    }

    /// The params of `query`, page `page`, in SDK order (Action last), not
    /// yet signed.
    pub fn params(&self, query: &Query, page: u32, now: i64) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = Vec::new();
        let mut push = |k: &str, v: String| p.push((k.to_owned(), v));
        match query {
            Query::List { window, .. } => {
                push("BeginTime", window.from.to_string());
                push("EndTime", window.to.to_string());
                push("IsDcdn", self.opts.is_dcdn.to_string());
                push("Limit", self.page_size.to_string());
                let offset = u64::from(page.saturating_sub(1)) * u64::from(self.page_size);
                push("Offset", offset.to_string());
            }
            Query::ById { ids, .. } => {
                let from = now - MAX_LOOKBACK.as_secs() as i64;
                push("BeginTime", from.to_string());
                push("EndTime", now.to_string());
                push("IsDcdn", self.opts.is_dcdn.to_string());
                push("Limit", ids.len().max(1).to_string());
                push("Offset", "0".to_owned());
            }
            Query::Quota { .. } => {}
        }
        if let Some(project) = &self.opts.project_id {
            push("ProjectId", project.clone());
        }
        if let Query::ById { ids, .. } = query {
            for (i, id) in ids.iter().enumerate() {
                push(&format!("TaskId.{i}"), id.clone());
            }
        }
        let action = APIS.get(query.api()).map_or("", |a| a.name);
        push("Action", action.to_owned());
        p
    }
}

impl Vendor for UcloudVendor {
    fn kind(&self) -> VendorKind {
        VendorKind::Ucloud
    }

    fn streams(&self, watched: &[TaskType]) -> Vec<Stream> {
        let mut s = Vec::new();
        if watched.contains(&TaskType::Prefetch) {
            s.push(Stream {
                api: PREFETCH,
                task_type: Some(TaskType::Prefetch),
            });
        }
        if watched.iter().any(|t| t.is_refresh()) {
            // One API for file and dir refreshes; it has no type filter.
            s.push(Stream {
                api: REFRESH,
                task_type: None,
            });
        }
        s
    }

    /// `DescribeNewUcdnRefreshCacheTask` over the last five minutes, or the
    /// prefetch listing when the account watches only prefetches.
    fn probe(&self, watched: &[TaskType], now: i64) -> Option<Query> {
        let stream = if watched.iter().any(|t| t.is_refresh()) || watched.is_empty() {
            Stream {
                api: REFRESH,
                task_type: None,
            }
        } else {
            Stream {
                api: PREFETCH,
                task_type: Some(TaskType::Prefetch),
            }
        };
        Some(super::probe_listing(stream, now))
    }

    /// The refresh API holds both refresh types.
    fn stream_task_types(&self, stream: &Stream, watched: &[TaskType]) -> Vec<TaskType> {
        watched
            .iter()
            .copied()
            .filter(|t| (stream.api == PREFETCH) == (*t == TaskType::Prefetch))
            .collect()
    }

    fn list_page_size(&self, _stream: &Stream) -> Option<u32> {
        Some(self.page_size)
    }

    /// `TaskId.N` carries [`IDS_PER_REQUEST`] ids a call.
    fn recheck_id_costs(&self, unfinished: &[Unfinished]) -> Vec<Option<f64>> {
        vec![Some(1.0 / IDS_PER_REQUEST as f64); unfinished.len()]
    }

    fn tells_totals(&self) -> bool {
        true
    }

    fn plan_rechecks(&self, unfinished: &[Unfinished]) -> Vec<Query> {
        let mut out = Vec::new();
        for api in [PREFETCH, REFRESH] {
            let of_api: Vec<&Unfinished> =
                unfinished.iter().filter(|u| u.stream.api == api).collect();
            for chunk in of_api.chunks(IDS_PER_REQUEST) {
                out.push(Query::ById {
                    api,
                    task_type: chunk.first().and_then(|u| u.stream.task_type),
                    ids: chunk.iter().map(|u| u.id.clone()).collect(),
                });
            }
        }
        out
    }

    fn build(
        &self,
        query: &Query,
        page: u32,
        now: DateTime<Utc>,
    ) -> Result<HttpRequest, BuildError> {
        if matches!(query, Query::Quota { .. }) {
            return Err(BuildError("UCloud has no quota API".into()));
        }
        if query.api() >= APIS.len() {
            return Err(BuildError(format!("no UCloud API #{}", query.api())));
        }
        let params = self.params(query, page, now.timestamp());
        let signed = sign::sign(
            &params,
            &self.ctx.credentials.id,
            self.ctx.credentials.secret.expose(),
        );
        Ok(HttpRequest {
            method: Method::Post,
            url: format!("{}/", self.ctx.endpoint.trim_end_matches('/')),
            headers: vec![(
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            body: signed.form_body.into_bytes(),
        })
    }

    fn parse(&self, query: &Query, page: u32, resp: &HttpResponse) -> Result<Parsed, ApiError> {
        // The throttling answer (RetCode 153) may carry Retry-After; the
        // driver then pauses the API that long instead of its backoff.
        let r = api::parse_response(resp.status, &resp.body)
            .map_err(|e| e.with_retry_after(resp.retry_after()))?;
        let prefetch = query.api() == PREFETCH;
        let list = r.task_list.unwrap_or_default();
        let mut tasks = Vec::with_capacity(list.len());
        for t in &list {
            if let Some(d) = &self.ctx.domain {
                if !api::on_domain(t, d) {
                    continue;
                }
            }
            tasks.push(api::to_task(t, prefetch).map_err(|e| ApiError::parse(e, &resp.body))?);
        }
        let (next_page, known_last_page) = match query {
            Query::List { .. } => {
                let seen = u64::from(page.saturating_sub(1)) * u64::from(self.page_size)
                    + list.len() as u64;
                let total = r.total_count.unwrap_or(0);
                let next = (!list.is_empty() && seen < total)
                    .then(|| page.checked_add(1))
                    .flatten();
                (
                    next,
                    crate::vendors::pages_of(total, u64::from(self.page_size)),
                )
            }
            _ => (None, None),
        };
        Ok(Parsed {
            tasks,
            quotas: Vec::new(),
            next_page,
            known_last_page,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::task::TaskStatus;
    use crate::vendors::{Credentials, Outcome, Window};

    fn vendor(opts: Options, domain: Option<&str>) -> UcloudVendor {
        UcloudVendor::new(
            VendorContext {
                endpoint: "https://api.ucloud.cn".into(),
                credentials: Credentials {
                    id: "pub-key".into(),
                    secret: Secret::new("priv-key-must-not-leak"),
                    session_token: None,
                },
                domain: domain.map(str::to_owned),
                max_response_bytes: 0,
            },
            opts,
        )
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_100_000, 0).unwrap()
    }

    fn body_params(req: &HttpRequest) -> Vec<(String, String)> {
        crate::sim::ucloud::parse_form(std::str::from_utf8(&req.body).unwrap())
    }

    fn get<'a>(p: &'a [(String, String)], k: &str) -> Option<&'a str> {
        p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn list_request_is_a_signed_form_post_with_explicit_limit() {
        let v = vendor(
            Options {
                project_id: Some("org-x".into()),
                is_dcdn: true,
                page_size: Some(50),
            },
            None,
        );
        let q = Query::List {
            stream: Stream {
                api: PREFETCH,
                task_type: Some(TaskType::Prefetch),
            },
            window: Window {
                from: 1_700_000_000,
                to: 1_700_003_600,
            },
        };
        let req = v.build(&q, 3, now()).unwrap();
        assert_eq!(req.method, Method::Post);
        assert_eq!(req.url, "https://api.ucloud.cn/");
        let p = body_params(&req);
        assert_eq!(get(&p, "Action"), Some("DescribeNewUcdnPrefetchCacheTask"));
        assert_eq!(get(&p, "BeginTime"), Some("1700000000"));
        assert_eq!(get(&p, "EndTime"), Some("1700003600"));
        assert_eq!(get(&p, "Limit"), Some("50"));
        assert_eq!(get(&p, "Offset"), Some("100"));
        assert_eq!(get(&p, "IsDcdn"), Some("true"));
        assert_eq!(get(&p, "ProjectId"), Some("org-x"));
        assert_eq!(get(&p, "PublicKey"), Some("pub-key"));
        assert!(crate::sim::ucloud::verify(
            &p,
            "pub-key",
            "priv-key-must-not-leak"
        ));
        let dbg = format!("{v:?}{req:?}");
        assert!(!dbg.contains("priv-key-must-not-leak"), "{dbg}");
        assert!(!dbg.contains(get(&p, "Signature").unwrap()), "{dbg}");
    }

    #[test]
    fn rechecks_batch_twenty_ids_per_api_with_a_lookback_window() {
        let v = vendor(Options::default(), None);
        let mk = |i: usize, api: usize| Unfinished {
            id: format!("t{i}"),
            task_type: if api == PREFETCH {
                TaskType::Prefetch
            } else {
                TaskType::RefreshDir
            },
            created_at: 0,
            stream: Stream {
                api,
                task_type: (api == PREFETCH).then_some(TaskType::Prefetch),
            },
        };
        let u: Vec<Unfinished> = (0..25)
            .map(|i| mk(i, PREFETCH))
            .chain((25..28).map(|i| mk(i, REFRESH)))
            .collect();
        let qs = v.plan_rechecks(&u);
        let shape: Vec<(usize, usize)> = qs
            .iter()
            .map(|q| match q {
                Query::ById { api, ids, .. } => (*api, ids.len()),
                _ => panic!("{q:?}"),
            })
            .collect();
        assert_eq!(shape, [(PREFETCH, 20), (PREFETCH, 5), (REFRESH, 3)]);
        let req = v.build(&qs[0], 1, now()).unwrap();
        let p = body_params(&req);
        assert_eq!(get(&p, "TaskId.0"), Some("t0"));
        assert_eq!(get(&p, "TaskId.19"), Some("t19"));
        assert_eq!(get(&p, "TaskId.20"), None);
        assert_eq!(get(&p, "EndTime"), Some("1700100000"));
        assert_eq!(get(&p, "BeginTime"), Some("1699495200"));
        assert_eq!(get(&p, "Limit"), Some("20"));
        let req = v.build(&qs[2], 1, now()).unwrap();
        assert_eq!(
            get(&body_params(&req), "Action"),
            Some("DescribeNewUcdnRefreshCacheTask")
        );
    }

    #[test]
    fn streams_follow_watched_types() {
        let v = vendor(Options::default(), None);
        assert_eq!(v.streams(TASK_TYPES).len(), 2);
        assert_eq!(
            v.streams(&[TaskType::RefreshDir]),
            [Stream {
                api: REFRESH,
                task_type: None
            }]
        );
        assert_eq!(v.streams(&[TaskType::Prefetch])[0].api, PREFETCH);
        assert!(v.build(&Query::Quota { api: PREFETCH }, 1, now()).is_err());
    }

    fn resp(body: &str) -> HttpResponse {
        HttpResponse {
            status: 200,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        }
    }

    /// Found by the fault matrix once scrapes stopped waiting (issue 19):
    /// a throttling answer's Retry-After was dropped, so the API was asked
    /// again after the backoff (1-2 s) instead of after Retry-After.
    #[test]
    fn throttling_answer_keeps_its_retry_after() {
        let v = vendor(Options::default(), None);
        let q = Query::List {
            stream: Stream {
                api: PREFETCH,
                task_type: None,
            },
            window: Window { from: 0, to: 10 },
        };
        let mut r = resp(r#"{"RetCode":153,"Message":"Request Frequency Limit"}"#);
        r.headers.push(("retry-after".into(), "3".into()));
        let e = v.parse(&q, 1, &r).unwrap_err();
        assert_eq!(e.outcome, crate::vendors::Outcome::Throttled);
        assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(3)));
    }

    /// Fuzzing: `then_some(page + 1)` evaluated `page + 1` eagerly, which
    /// overflowed (a debug-build panic) at page `u32::MAX`.
    #[test]
    fn last_possible_page_does_not_overflow_next_page() {
        let v = vendor(Options::default(), None);
        let q = Query::List {
            stream: Stream {
                api: REFRESH,
                task_type: None,
            },
            window: Window { from: 0, to: 10 },
        };
        let body = r#"{"RetCode":0,"TotalCount":18446744073709551615,"TaskList":[{"TaskId":"a","CreateTime":5,"Status":"wait","UrlLists":[]}]}"#;
        assert_eq!(v.parse(&q, u32::MAX, &resp(body)).unwrap().next_page, None);
        assert_eq!(v.parse(&q, 1, &resp(body)).unwrap().next_page, Some(2));
    }

    #[test]
    fn paging_follows_total_count() {
        let v = vendor(
            Options {
                page_size: Some(2),
                ..Options::default()
            },
            None,
        );
        let q = Query::List {
            stream: Stream {
                api: REFRESH,
                task_type: None,
            },
            window: Window { from: 0, to: 10 },
        };
        let task = |id: &str| {
            format!(
                r#"{{"TaskId":"{id}","CreateTime":5,"Status":"wait","Type":"dir","UrlLists":[]}}"#
            )
        };
        let page = |tasks: &[&str], total: u64| {
            let list: Vec<String> = tasks.iter().map(|t| task(t)).collect();
            resp(&format!(
                r#"{{"Action":"DescribeNewUcdnRefreshCacheTaskResponse","RetCode":0,"TotalCount":{total},"TaskList":[{}]}}"#,
                list.join(",")
            ))
        };
        let p1 = v.parse(&q, 1, &page(&["a", "b"], 3)).unwrap();
        assert_eq!(p1.next_page, Some(2));
        assert_eq!(p1.known_last_page, Some(2), "3 tasks at 2 a page");
        assert_eq!(p1.tasks[0].task_type, TaskType::RefreshDir);
        assert_eq!(p1.tasks[0].status, TaskStatus::Pending);
        assert_eq!(p1.tasks[0].progress, None);
        let p2 = v.parse(&q, 2, &page(&["c"], 3)).unwrap();
        assert_eq!(p2.next_page, None);
        let empty = v.parse(&q, 2, &page(&[], 9)).unwrap();
        assert_eq!(empty.next_page, None, "an empty page ends the listing");
        let e = v
            .parse(
                &q,
                1,
                &resp(r#"{"RetCode":0,"TotalCount":1,"TaskList":[{"Status":"wait"}]}"#),
            )
            .unwrap_err();
        assert_eq!(e.outcome, Outcome::ParseError);
    }

    #[test]
    fn domain_filters_client_side() {
        let v = vendor(Options::default(), Some("b.example.com"));
        let q = Query::List {
            stream: Stream {
                api: PREFETCH,
                task_type: Some(TaskType::Prefetch),
            },
            window: Window { from: 0, to: 10 },
        };
        let body = r#"{"RetCode":0,"TotalCount":2,"TaskList":[
            {"TaskId":"1","CreateTime":5,"Status":"success","UrlLists":[{"Url":"https://a.example.com/x","Progress":100}]},
            {"TaskId":"2","CreateTime":5,"Status":"success","UrlLists":[{"Url":"https://b.example.com/x","Progress":100}]}]}"#;
        let p = v.parse(&q, 1, &resp(body)).unwrap();
        assert_eq!(p.tasks.len(), 1);
        assert_eq!(p.tasks[0].id, "2");
    }

    /// Issue 19 part 5: `Limit` 100 made a 10k-task day 101 calls. The
    /// default is large, and a page of large tasks still fits the response
    /// cap.
    #[test]
    fn default_page_is_large_and_fits_max_response_bytes() {
        assert_eq!(default_page_size(0), DEFAULT_PAGE_CAP);
        assert_eq!(default_page_size(16 << 20), 2000);
        assert_eq!(default_page_size(1 << 20), 128);
        assert_eq!(default_page_size(1024), 1);
        for max in [1024, 1 << 20, 16 << 20, 1 << 30] {
            let n = default_page_size(max) as usize;
            assert!(n * TASK_BYTES_BOUND <= max.max(TASK_BYTES_BOUND), "{max}");
        }
        let ctx = |max| VendorContext {
            max_response_bytes: max,
            ..VendorContext::default()
        };
        let v = UcloudVendor::new(ctx(1 << 20), Options::default());
        assert_eq!(
            v.list_page_size(&Stream {
                api: PREFETCH,
                task_type: None
            }),
            Some(128)
        );
        let explicit = Options {
            page_size: Some(300),
            ..Options::default()
        };
        let v = UcloudVendor::new(ctx(1 << 20), explicit);
        assert_eq!(
            v.list_page_size(&Stream {
                api: PREFETCH,
                task_type: None
            }),
            Some(300)
        );
    }

    #[test]
    fn options_are_validated() {
        use crate::vendors::parse_options_as;
        let o: Options = parse_options_as(serde_yaml::Value::Null).unwrap();
        assert_eq!(o, Options::default());
        let o: Options =
            parse_options_as(serde_yaml::from_str("{project_id: org-1, is_dcdn: true}").unwrap())
                .unwrap();
        assert_eq!(o.project_id.as_deref(), Some("org-1"));
        assert!(o.is_dcdn);
        let e = parse_options_as::<Options>(serde_yaml::from_str("{page_size: 0}").unwrap())
            .unwrap_err();
        assert!(e.message.contains("outside 1..=10000"), "{e:?}");
        let o: Options =
            parse_options_as(serde_yaml::from_str("{page_size: 10000}").unwrap()).unwrap();
        assert_eq!(o.page_size, Some(10_000));
        let e = parse_options_as::<Options>(serde_yaml::from_str("{region: cn-bj2}").unwrap())
            .unwrap_err();
        assert!(e.message.contains("unknown key"), "{e:?}");
    }
}
