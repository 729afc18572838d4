//! CDNetworks (Wangsu) content management: prefetch records
//! (`POST /ccm/fetch/ItemIdQuery`) and purge records
//! (`POST /ccm/purge/ItemIdQuery`).
//!
//! The defining constraint is the budget: **one fetch query per 5 minutes**
//! per user (purge: 10 per 5 minutes), a window of at most one day, nothing
//! older than 3 days. So every call asks for `pageSize: 1000`, and this
//! module opts into [`Vendor::recheck_by_relisting`]: the driver stretches
//! the head listing back over the still-unfinished records (within one day),
//! so one call both picks up new records and re-checks old ones, and during
//! warm-up it alternates head and backfill calls.
//!
//! One URL record is one task; records carry no id, so the id is synthetic
//! (API + createTime + hash of the URL). Times on the wire are wall times in
//! `X-Time-Zone`; we always send `GMT+08:00` (the vendor default) and parse
//! answers in the same zone. `endTime` is treated as inclusive (the doc's
//! example ends at `23:59:59`), so the window `[from, to)` is sent as
//! `from ..= to - 1 s`: adjacent windows never count a record twice.

pub mod api;
pub mod sign;

use super::{
    ApiError, ApiSpec, BuildError, Parsed, Query, Stream, Unfinished, Vendor, VendorContext,
    VendorKind, Window,
};
use crate::api::Rate;
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::task::{Task, TaskType};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// API index: prefetch records.
pub const FETCH: usize = 0;
/// API index: purge records.
pub const PURGE: usize = 1;

/// Published per-user limits (seed doc: "单用户调用频率:1/5min" for fetch;
/// purge ItemIdQuery 10 per 5 minutes per the Wangsu doc).
pub const APIS: &[ApiSpec] = &[
    ApiSpec {
        name: "FetchItemIdQuery",
        limit: Rate::new(1, Duration::from_secs(300)),
    },
    ApiSpec {
        name: "PurgeItemIdQuery",
        limit: Rate::new(10, Duration::from_secs(300)),
    },
];

/// This module's entry in the vendor registry.
pub const SPEC: super::VendorSpec = super::VendorSpec {
    name: "cdnetworks",
    title: "CDNetworks (Wangsu)",
    apis: APIS,
    max_lookback: MAX_LOOKBACK,
    default_endpoint: DEFAULT_ENDPOINT,
    task_types: TASK_TYPES,
    build: |ctx, options| {
        super::build_with(options, |opts: Options| {
            Arc::new(CdnetworksVendor::new(ctx, opts))
        })
    },
    #[cfg(feature = "sim")]
    simulator: |s| {
        let sim = crate::sim::cdnetworks::CdnetworksSim::new(
            s.world.clone(),
            s.clock.clone(),
            &s.id,
            &s.secret,
        );
        let truth: crate::sim::Truth = {
            let world = s.world.clone();
            std::sync::Arc::new(move |from| crate::sim::cdnetworks::truth(&world, from))
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

/// "不允许查询3天之前的任务": nothing created more than 3 days ago.
pub const MAX_LOOKBACK: Duration = Duration::from_secs(3 * DAY as u64);

/// The longest window one query may span ("查询跨度不能超过1天").
pub const MAX_SPAN: Duration = Duration::from_secs(DAY as u64);

/// The public endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://api.cdnetworks.com";

/// Prefetch and the four purge kinds (`isDir` 0/1/2/3).
pub const TASK_TYPES: &[TaskType] = &TaskType::ALL;

/// Most records per page the vendor accepts ("页面大小不能为负或者大于1000").
pub const MAX_PAGE_SIZE: u32 = 1000;

/// A window starting exactly 3 days back is rejected by the time it
/// arrives; the oldest 5 minutes (also the vendor's clock-skew allowance) are
/// left out of the first listing. Those records leave the lookback within
/// 5 minutes anyway.
pub const LOOKBACK_MARGIN: i64 = 300;

const DAY: i64 = 86_400;

/// How requests are authenticated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Auth {
    /// HTTP Basic with `Base64(HMAC-SHA1(apiKey, Date))` as the password;
    /// credentials.id = username, credentials.secret = API key.
    #[default]
    ApiKey,
    /// `CNC-HMAC-SHA256`; credentials.id = AccessKey, credentials.secret =
    /// SecretKey.
    Aksk,
}

/// Options of a CDNetworks account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// `api_key` (default) or `aksk`.
    pub auth: Auth,
    /// Records per page, 1–1000. Keep 1000: a second page costs another
    /// 5 minutes of the fetch budget.
    #[serde(deserialize_with = "page_size")]
    pub page_size: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            auth: Auth::ApiKey,
            page_size: MAX_PAGE_SIZE,
        }
    }
}

fn page_size<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = u32::deserialize(d)?;
    if (1..=MAX_PAGE_SIZE).contains(&n) {
        Ok(n)
    } else {
        Err(serde::de::Error::custom(format!(
            "page_size {n} is outside 1..={MAX_PAGE_SIZE}"
        )))
    }
}

/// The CDNetworks vendor module.
#[derive(Debug)]
pub struct CdnetworksVendor {
    ctx: VendorContext,
    opts: Options,
}

impl CdnetworksVendor {
    /// For one account.
    pub fn new(ctx: VendorContext, opts: Options) -> Self {
        CdnetworksVendor { ctx, opts }
    }

    fn host(&self) -> &str {
        let rest = self
            .ctx
            .endpoint
            .split_once("://")
            .map_or(self.ctx.endpoint.as_str(), |(_, r)| r);
        rest.split('/').next().unwrap_or(rest)
    }
}

/// The path of an API.
pub fn path(api: usize) -> Option<&'static str> {
    match api {
        FETCH => Some("/ccm/fetch/ItemIdQuery"),
        PURGE => Some("/ccm/purge/ItemIdQuery"),
        _ => None,
    }
}

/// The synthetic task id of a record: stable across runs and pages.
pub fn record_id(api: usize, url: &str, created_at: i64) -> String {
    let digest = Sha256::digest(url.as_bytes());
    let short = hex::encode(digest.get(..8).unwrap_or(&[]));
    let kind = if api == FETCH { "fetch" } else { "purge" };
    format!("{kind}-{created_at}-{short}")
}

fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let host = rest.split(['/', '?', '#']).next()?;
    Some(host.rsplit_once('@').map_or(host, |(_, h)| h))
}

impl Vendor for CdnetworksVendor {
    fn kind(&self) -> VendorKind {
        VendorKind::Cdnetworks
    }

    fn streams(&self, watched: &[TaskType]) -> Vec<Stream> {
        let mut v = Vec::new();
        if watched.contains(&TaskType::Prefetch) {
            v.push(Stream {
                api: FETCH,
                task_type: None,
            });
        }
        if watched.iter().any(|t| t.is_refresh()) {
            v.push(Stream {
                api: PURGE,
                task_type: None,
            });
        }
        v
    }

    /// Fetch records are prefetches; purge records are refreshes.
    fn stream_task_types(&self, stream: &Stream, watched: &[TaskType]) -> Vec<TaskType> {
        watched
            .iter()
            .copied()
            .filter(|t| (stream.api == FETCH) == (*t == TaskType::Prefetch))
            .collect()
    }

    /// One day for both APIs: documented for fetch; applied to purge too,
    /// as a window the vendor cannot reject.
    fn max_span(&self, _stream: &Stream) -> Option<Duration> {
        Some(MAX_SPAN)
    }

    /// `PurgeItemIdQuery` over the last five minutes, whatever the account
    /// watches: same user, same signature, ten calls per 5 minutes — never
    /// the fetch query, which allows one.
    fn probe(&self, _watched: &[TaskType], now: i64) -> Option<Query> {
        Some(super::probe_listing(
            Stream {
                api: PURGE,
                task_type: None,
            },
            now,
        ))
    }

    fn recheck_by_relisting(&self) -> Option<u32> {
        Some(self.opts.page_size)
    }

    /// Unfinished records the head listing did not cover (older than one
    /// day): re-listed by the narrowest windows of at most one day that hold
    /// them. The driver tries these only with a permit to spare.
    fn plan_rechecks(&self, unfinished: &[Unfinished]) -> Vec<Query> {
        let mut out = Vec::new();
        for stream in [FETCH, PURGE] {
            let mut times: Vec<(i64, Stream)> = unfinished
                .iter()
                .filter(|u| u.stream.api == stream)
                .map(|u| (u.created_at, u.stream))
                .collect();
            times.sort_by_key(|(t, _)| *t);
            let mut i = 0;
            while let Some(&(first, s)) = times.get(i) {
                let mut last = first;
                while let Some(&(t, _)) = times.get(i) {
                    if t >= first + DAY {
                        break;
                    }
                    last = t;
                    i += 1;
                }
                out.push(Query::List {
                    stream: s,
                    window: Window {
                        from: first,
                        to: last + 1,
                    },
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
        let Query::List { stream, window } = query else {
            return Err(BuildError(
                "CDNetworks ItemIdQuery lists windows only".into(),
            ));
        };
        let path = path(stream.api)
            .ok_or_else(|| BuildError(format!("no CDNetworks API {}", stream.api)))?;
        let oldest = now.timestamp() - MAX_LOOKBACK.as_secs() as i64 + LOOKBACK_MARGIN;
        let from = window.from.max(oldest).max(window.to - DAY);
        let end = (window.to - 1).max(from);
        let fmt = |t: i64| {
            api::format_time(t, api::ZONE_OFFSET_SECONDS)
                .ok_or_else(|| BuildError(format!("time {t} out of range")))
        };
        let body = api::QueryBody {
            start_time: Some(fmt(from)?),
            end_time: Some(fmt(end)?),
            page_no: Some(page.into()),
            page_size: Some(self.opts.page_size.into()),
            ..api::QueryBody::default()
        };
        let body =
            serde_json::to_vec(&body).map_err(|e| BuildError(format!("request body: {e}")))?;
        let mut headers: Vec<(String, String)> = vec![
            ("content-type".into(), "application/json".into()),
            ("accept".into(), "application/json".into()),
            ("x-time-zone".into(), api::ZONE_HEADER.into()),
        ];
        let creds = &self.ctx.credentials;
        match self.opts.auth {
            Auth::ApiKey => {
                let sig = sign::sign_api_key(&creds.id, creds.secret.expose(), now);
                headers.push(("date".into(), sig.date));
                headers.push(("authorization".into(), sig.authorization));
            }
            Auth::Aksk => {
                let ts = now.timestamp().to_string();
                let host = self.host().to_owned();
                let signed = [
                    ("content-type", "application/json"),
                    ("host", host.as_str()),
                ];
                let sig = sign::sign_aksk(
                    &sign::AkSkInput {
                        access_key: &creds.id,
                        method: "POST",
                        uri: path,
                        headers: &signed,
                        signed_headers: None,
                        timestamp: &ts,
                        body: &body,
                    },
                    creds.secret.expose(),
                );
                headers.push(("x-cnc-auth-method".into(), "AKSK".into()));
                headers.push(("x-cnc-accesskey".into(), creds.id.clone()));
                headers.push(("x-cnc-timestamp".into(), ts));
                headers.push(("authorization".into(), sig.authorization));
            }
        }
        Ok(HttpRequest {
            method: Method::Post,
            url: format!("{}{path}", self.ctx.endpoint.trim_end_matches('/')),
            headers,
            body,
        })
    }

    fn parse(&self, query: &Query, page: u32, resp: &HttpResponse) -> Result<Parsed, ApiError> {
        let api_index = query.api();
        let p = api::parse_page(resp, api::ZONE_OFFSET_SECONDS)?;
        if p.skipped > 0 {
            tracing::debug!(
                vendor = "cdnetworks",
                skipped = p.skipped,
                "records without url or createTime skipped"
            );
        }
        let shown = u64::from(page) * u64::from(self.opts.page_size);
        let next_page = (shown < p.count && !p.records.is_empty())
            .then(|| page.checked_add(1))
            .flatten();
        let domain = self.ctx.domain.as_deref();
        let tasks = p
            .records
            .into_iter()
            .filter(|r| {
                domain.is_none_or(|d| url_host(&r.url).is_some_and(|h| h.eq_ignore_ascii_case(d)))
            })
            .map(|r| Task {
                id: record_id(api_index, &r.url, r.created_at),
                task_type: if api_index == FETCH {
                    TaskType::Prefetch
                } else {
                    api::purge_type(r.is_dir)
                },
                status: r.status,
                url_count: 1,
                domain: url_host(&r.url).map(str::to_owned),
                urls: vec![r.url.clone()],
                created_at: r.created_at,
                finished_at: r.finished_at,
                progress: r.progress,
                error: (r.status == crate::task::TaskStatus::Failed).then(|| "failure".to_owned()),
            })
            .collect();
        Ok(Parsed {
            tasks,
            quotas: Vec::new(),
            next_page,
            known_last_page: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::task::TaskStatus;
    use crate::vendors::Credentials;
    use chrono::TimeZone;

    fn vendor(auth: Auth, domain: Option<&str>) -> CdnetworksVendor {
        let opts = Options {
            auth,
            ..Options::default()
        };
        CdnetworksVendor::new(
            VendorContext {
                endpoint: "https://api.cdnetworks.com/".into(),
                credentials: Credentials {
                    id: "tenant_01".into(),
                    secret: Secret::new("s3cr3t/+=="),
                    session_token: None,
                },
                domain: domain.map(str::to_owned),
                max_response_bytes: 0,
            },
            opts,
        )
    }

    fn fetch(from: i64, to: i64) -> Query {
        Query::List {
            stream: Stream {
                api: FETCH,
                task_type: None,
            },
            window: Window { from, to },
        }
    }

    fn header<'a>(r: &'a HttpRequest, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn window_straddling_midnight_utc8_is_sent_in_utc8_with_inclusive_end() {
        // [2024-12-31 15:30 UTC, 16:30 UTC) = [23:30, 00:30) in UTC+8.
        let (from, to) = (1_735_659_000, 1_735_662_600);
        let now = Utc.timestamp_opt(1_735_660_799, 0).single().expect("time");
        let r = vendor(Auth::ApiKey, None)
            .build(&fetch(from, to), 2, now)
            .expect("builds");
        assert_eq!(r.url, "https://api.cdnetworks.com/ccm/fetch/ItemIdQuery");
        let body: serde_json::Value = serde_json::from_slice(&r.body).expect("json body");
        assert_eq!(
            body,
            serde_json::json!({
                "startTime": "2024-12-31 23:30:00",
                "endTime": "2025-01-01 00:29:59",
                "pageNo": 2,
                "pageSize": 1000
            })
        );
        assert_eq!(header(&r, "x-time-zone"), Some("GMT+08:00"));
        // The just-before-midnight vector: same user, key and instant.
        assert_eq!(header(&r, "date"), Some("Tue, 31 Dec 2024 15:59:59 GMT"));
        assert_eq!(
            header(&r, "authorization"),
            Some("Basic dGVuYW50XzAxOmcranM0SlF4dFF3TExNd2t2cmxobXBoUFpBUT0=")
        );
        assert!(!format!("{r:?}").contains("dGVuYW50"), "Debug hides auth");
    }

    #[test]
    fn windows_are_clamped_to_the_vendor_limits() {
        let now = 1_735_660_800;
        let at = Utc.timestamp_opt(now, 0).single().expect("time");
        let v = vendor(Auth::ApiKey, None);
        // Starting exactly 3 days back: moved up by the margin.
        let r = v
            .build(&fetch(now - 3 * DAY, now - 2 * DAY), 1, at)
            .expect("builds");
        let body: api::QueryBody = serde_json::from_slice(&r.body).expect("json");
        let start = api::parse_time(body.start_time.as_deref().unwrap_or(""), 28_800);
        assert_eq!(start, Some(now - 3 * DAY + LOOKBACK_MARGIN));
        // Longer than a day: cut to the newest day.
        let r = v.build(&fetch(now - 2 * DAY, now), 1, at).expect("builds");
        let body: api::QueryBody = serde_json::from_slice(&r.body).expect("json");
        let start = api::parse_time(body.start_time.as_deref().unwrap_or(""), 28_800);
        let end = api::parse_time(body.end_time.as_deref().unwrap_or(""), 28_800);
        assert_eq!((start, end), (Some(now - DAY), Some(now - 1)));
        assert!(v.build(&Query::Quota { api: FETCH }, 1, at).is_err());
    }

    #[test]
    fn aksk_requests_carry_the_sdk_headers() {
        let at = Utc.timestamp_opt(1_700_000_000, 0).single().expect("time");
        let r = vendor(Auth::Aksk, None)
            .build(&fetch(1_699_990_000, 1_700_000_000), 1, at)
            .expect("builds");
        assert_eq!(header(&r, "x-cnc-accesskey"), Some("tenant_01"));
        assert_eq!(header(&r, "x-cnc-timestamp"), Some("1700000000"));
        assert_eq!(header(&r, "x-cnc-auth-method"), Some("AKSK"));
        let auth = header(&r, "authorization").unwrap_or("");
        assert!(
            auth.starts_with(
                "CNC-HMAC-SHA256 Credential=tenant_01, SignedHeaders=content-type;host, Signature="
            ),
            "{auth}"
        );
        assert_eq!(header(&r, "date"), None);
    }

    #[test]
    fn records_map_to_tasks_with_stable_synthetic_ids() {
        let body = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("testdata/responses/cdnetworks/purge-success.json"),
        )
        .expect("fixture");
        let resp = HttpResponse {
            status: 200,
            headers: vec![],
            body,
        };
        let purge = Query::List {
            stream: Stream {
                api: PURGE,
                task_type: None,
            },
            window: Window { from: 0, to: 1 },
        };
        let v = vendor(Auth::ApiKey, None);
        let p = v.parse(&purge, 1, &resp).expect("parses");
        assert_eq!(p.next_page, None, "4 records, page size 1000");
        assert_eq!(p.tasks.len(), 4);
        let t = &p.tasks[1];
        assert_eq!(t.task_type, TaskType::RefreshRegex);
        assert_eq!(t.status, TaskStatus::Running);
        assert_eq!(t.url_count, 1);
        assert_eq!(t.created_at, 1_735_660_800, "2025-01-01 00:00:00 +08:00");
        assert_eq!(t.id, v.parse(&purge, 1, &resp).expect("again").tasks[1].id);
        assert_ne!(p.tasks[1].id, p.tasks[2].id, "same second, other URL");
        assert_eq!(p.tasks[2].finished_at, Some(1_735_661_100));
        assert_eq!(
            t.id,
            record_id(PURGE, "https://www.example.com/.*\\.png", 1_735_660_800)
        );
        // Paging follows count; a domain filter is applied client-side.
        let fetch_body = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("testdata/responses/cdnetworks/fetch-success-doc-example.json"),
        )
        .expect("fixture");
        let resp = HttpResponse {
            status: 200,
            headers: vec![],
            body: fetch_body,
        };
        let mut small = vendor(Auth::ApiKey, Some("vodtest.lxdns.com"));
        small.opts.page_size = 2;
        let p = small.parse(&fetch(0, 1), 1, &resp).expect("parses");
        assert_eq!(p.next_page, Some(2), "count 282 > 2");
        assert_eq!(p.tasks.len(), 1, "the doc's 'http: //' URL has no host");
        assert_eq!(p.tasks[0].task_type, TaskType::Prefetch);
    }

    #[test]
    fn rechecks_group_unfinished_records_into_day_windows_per_api() {
        let s = |api| Stream {
            api,
            task_type: None,
        };
        let u = |api, created_at| Unfinished {
            id: format!("{api}-{created_at}"),
            task_type: TaskType::Prefetch,
            created_at,
            stream: s(api),
        };
        let q = vendor(Auth::ApiKey, None).plan_rechecks(&[
            u(FETCH, 100),
            u(FETCH, 50_000),
            u(PURGE, 10),
            u(FETCH, 100 + DAY),
        ]);
        let w = |api, from, to| Query::List {
            stream: s(api),
            window: Window { from, to },
        };
        assert_eq!(
            q,
            vec![
                w(FETCH, 100, 50_001),
                w(FETCH, 100 + DAY, 101 + DAY),
                w(PURGE, 10, 11)
            ]
        );
    }

    #[test]
    fn options_reject_page_sizes_the_vendor_rejects() {
        let parse = |y: &str| {
            crate::vendors::parse_options_as::<Options>(serde_yaml::from_str(y).expect("yaml"))
        };
        assert!(parse("page_size: 1000").is_ok());
        assert!(parse("auth: aksk").is_ok());
        let e = parse("page_size: 1001").expect_err("too big");
        assert!(e.message.contains("1001"), "{e:?}");
        assert!(parse("page_size: 0").is_err());
        assert!(parse("auth: oauth").is_err());
        assert!(parse("pagesize: 10").is_err());
        assert!(parse("~").is_ok());
    }

    /// Fuzzing: `then_some(page + 1)` evaluated `page + 1` eagerly, which
    /// overflowed (a debug-build panic) at page `u32::MAX`.
    #[test]
    fn last_possible_page_does_not_overflow_next_page() {
        let v = vendor(Auth::ApiKey, None);
        let body = br#"{"Code":1,"count":5000000000000,"resultDetail":[{"url":"http://a.example.com/x","createTime":"2024-01-02 03:04:05","status":"run"}]}"#;
        let resp = HttpResponse {
            status: 200,
            headers: vec![],
            body: body.to_vec(),
        };
        let q = fetch(1_704_135_000, 1_704_136_000);
        assert_eq!(v.parse(&q, u32::MAX, &resp).unwrap().next_page, None);
        assert_eq!(v.parse(&q, 1, &resp).unwrap().next_page, Some(2));
        let empty = HttpResponse {
            body: br#"{"Code":1,"count":0}"#.to_vec(),
            ..resp
        };
        assert_eq!(v.parse(&q, u32::MAX, &empty).unwrap().next_page, None);
    }

    #[test]
    fn streams_follow_watched_types() {
        let v = vendor(Auth::ApiKey, None);
        assert_eq!(v.streams(&[TaskType::Prefetch]).len(), 1);
        assert_eq!(v.streams(&[TaskType::RefreshDir])[0].api, PURGE);
        assert_eq!(v.streams(&TaskType::ALL).len(), 2);
        assert!(!format!("{v:?}").contains("s3cr3t"));
    }
}
