//! Fuzz entry points, one per `cargo fuzz` target (`fuzz/fuzz_targets/`).
//!
//! Each takes arbitrary bytes, feeds them to the real parser and checks the
//! properties the rest of the exporter relies on; any panic, in the parser or
//! in a property check, is a finding. The same functions replay the committed
//! corpus in `tests/fuzz_corpus.rs`, so every seed and every crash input ever
//! found is re-run by `cargo test` on stable.
//!
//! Vendor input layout (see [`VendorInput`]): byte 0 picks the query, byte 1
//! the HTTP status, byte 2 the account variant, bytes 3..7 the page (u32 LE);
//! the rest is the response: header lines (`name: value`) up to the first NUL
//! byte, then the body. Without a NUL the rest is all body, so a response file
//! with a 7-byte prefix is a valid seed.
//!
//! File-reading inputs (config, web config): the text up to the first NUL is
//! the YAML; each following NUL-separated part is a file named `f1`, `f2`, ...
//! (also visible as environment variables `F1`, `F2`, ... to the config).

#![doc(hidden)]

use crate::http::HttpResponse;
use crate::secret::Secret;
use crate::task::TaskType;
use crate::vendors::{
    self, aliyun, cdnetworks, cloudfront, tencent, ucloud, volcengine, Credentials, Query, Stream,
    Unfinished, Vendor, VendorContext, VendorKind, Window,
};
use std::sync::{Arc, OnceLock};

/// Statuses a fuzzed response can carry (byte 1 indexes this).
const STATUSES: [u16; 16] = [
    200, 200, 200, 200, 201, 204, 301, 400, 401, 403, 404, 429, 500, 502, 503, 0,
];

/// Length of the vendor input prefix.
pub const PREFIX: usize = 7;

/// A decoded vendor input.
#[derive(Debug, Clone)]
pub struct VendorInput {
    pub query: u8,
    pub variant: u8,
    pub page: u32,
    pub response: HttpResponse,
}

impl VendorInput {
    /// Decodes the layout described in the module docs; `None` if too short.
    pub fn decode(data: &[u8]) -> Option<VendorInput> {
        let (prefix, rest) = data.split_at_checked(PREFIX)?;
        let page = u32::from_le_bytes([prefix[3], prefix[4], prefix[5], prefix[6]]);
        let (head, body) = match rest.iter().position(|b| *b == 0) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (&[][..], rest),
        };
        let headers = String::from_utf8_lossy(head)
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Some(VendorInput {
            query: prefix[0],
            variant: prefix[2],
            page,
            response: HttpResponse {
                status: STATUSES[usize::from(prefix[1]) % STATUSES.len()],
                headers,
                body: body.to_vec(),
            },
        })
    }

    /// Encodes a seed: query, status index, variant, page and a body.
    pub fn encode(query: u8, status_index: u8, variant: u8, page: u32, body: &[u8]) -> Vec<u8> {
        let mut v = vec![query, status_index, variant];
        v.extend_from_slice(&page.to_le_bytes());
        v.extend_from_slice(body);
        v
    }
}

fn context(endpoint: &str, domain: Option<&str>) -> VendorContext {
    VendorContext {
        endpoint: endpoint.into(),
        credentials: Credentials {
            id: "fuzz-id".into(),
            secret: Secret::new("fuzz-secret"),
            session_token: None,
        },
        domain: domain.map(str::to_owned),
        max_response_bytes: 0,
    }
}

/// The vendor modules of a target's accounts.
type Accounts = Vec<Arc<dyn Vendor>>;

/// A registry-ordered cell per vendor kind.
fn slot(kind: VendorKind) -> usize {
    VendorKind::ALL
        .iter()
        .position(|k| *k == kind)
        .expect("kind in the registry")
}

/// Account variants per vendor: default options, a small page size, and a
/// domain filter (byte 2 of the input picks one).
fn accounts(kind: VendorKind) -> &'static [Arc<dyn Vendor>] {
    static CELLS: [OnceLock<Accounts>; VendorKind::ALL.len()] =
        [const { OnceLock::new() }; VendorKind::ALL.len()];
    CELLS[slot(kind)].get_or_init(|| build_accounts(kind))
}

/// No `_` arm: a new vendor is a compile error here until it has variants.
fn build_accounts(kind: VendorKind) -> Accounts {
    let mut v: Accounts = Vec::new();
    match kind {
        #[cfg(feature = "sim")]
        VendorKind::Testing => {
            for domain in [None, Some("example.com")] {
                let ctx = context("http://127.0.0.1:9", domain);
                v.push((kind.spec().build)(ctx, serde_yaml::Value::Null).expect("testing vendor"));
            }
        }
        VendorKind::Volcengine => {
            for (page_size, action, domain) in [
                (100, volcengine::ListAction::ListContentTasks, None),
                (
                    2,
                    volcengine::ListAction::ListContentTask,
                    Some("example.com"),
                ),
            ] {
                let o = volcengine::Options {
                    action,
                    cloud_account_ids: vec!["acc-1".into(), "acc-2".into()],
                    page_size,
                };
                let ctx = context(volcengine::DEFAULT_ENDPOINT, domain);
                v.push(Arc::new(volcengine::VolcengineVendor::new(ctx, o)));
            }
        }
        VendorKind::Aliyun => {
            for (page_size, domain) in [(100, None), (1, Some("example.com"))] {
                let o = aliyun::Options {
                    page_size: aliyun::PageSize(page_size),
                    ..aliyun::Options::default()
                };
                let ctx = context(aliyun::DEFAULT_ENDPOINT, domain);
                v.push(Arc::new(aliyun::AliyunVendor::new(ctx, o)));
            }
        }
        VendorKind::Ucloud => {
            for (page_size, domain) in [(100, None), (1, Some("example.com"))] {
                let o = ucloud::Options {
                    page_size: Some(page_size),
                    ..ucloud::Options::default()
                };
                let ctx = context(ucloud::DEFAULT_ENDPOINT, domain);
                v.push(Arc::new(ucloud::UcloudVendor::new(ctx, o)));
            }
        }
        VendorKind::Cdnetworks => {
            for (page_size, domain) in [(1000, None), (1, Some("example.com"))] {
                let o = cdnetworks::Options {
                    page_size,
                    ..cdnetworks::Options::default()
                };
                let ctx = context(cdnetworks::DEFAULT_ENDPOINT, domain);
                v.push(Arc::new(cdnetworks::CdnetworksVendor::new(ctx, o)));
            }
        }
        VendorKind::Tencent => {
            for (page_size, domain) in [(1000, None), (1, Some("example.com"))] {
                let o = tencent::Options {
                    page_size,
                    ..tencent::Options::default()
                };
                let ctx = context(tencent::DEFAULT_ENDPOINT, domain);
                v.push(Arc::new(tencent::TencentVendor::new(ctx, o)));
            }
        }
        VendorKind::Cloudfront => {
            for (max_items, domain) in [(None, None), (Some(1), Some("example.com"))] {
                let o = cloudfront::Options {
                    distribution_ids: vec!["EDFDVBD6EXAMPLE".into(), "E2SECONDEXAMPLE".into()],
                    max_items,
                };
                let ctx = context(cloudfront::DEFAULT_ENDPOINT, domain);
                v.push(Arc::new(cloudfront::CloudfrontVendor::new(ctx, o)));
            }
        }
    }
    v
}

/// Every query shape the driver can send the vendor: each stream's listing,
/// the re-checks of one unfinished task per stream and type, and the quota
/// queries. Planned by the vendor itself, as the driver does.
fn queries(v: &dyn Vendor) -> Vec<Query> {
    let window = Window {
        from: 1_700_000_000,
        to: 1_700_003_600,
    };
    let streams: Vec<Stream> = v.streams(&TaskType::ALL);
    let mut out: Vec<Query> = streams
        .iter()
        .map(|s| Query::List { stream: *s, window })
        .collect();
    let unfinished: Vec<Unfinished> = streams
        .iter()
        .flat_map(|s| {
            v.kind()
                .task_types()
                .iter()
                .filter(|t| s.task_type.is_none_or(|st| st == **t))
                .map(|t| Unfinished {
                    id: format!("task-{}", t.as_str()),
                    task_type: *t,
                    created_at: window.from - 90_000,
                    stream: *s,
                })
        })
        .collect();
    out.extend(v.plan_rechecks(&unfinished));
    out.extend(v.quota_queries(&TaskType::ALL));
    out
}

fn query_table(kind: VendorKind, variant: usize) -> &'static [Query] {
    static CELLS: [[OnceLock<Vec<Query>>; 2]; VendorKind::ALL.len()] =
        [const { [OnceLock::new(), OnceLock::new()] }; VendorKind::ALL.len()];
    CELLS[slot(kind)][variant].get_or_init(|| queries(accounts(kind)[variant].as_ref()))
}

/// Parses one fuzzed response with one vendor and checks the contract the
/// driver relies on.
pub fn vendor_parse(kind: vendors::VendorKind, data: &[u8]) {
    let Some(input) = VendorInput::decode(data) else {
        return;
    };
    let accts = accounts(kind);
    let variant = usize::from(input.variant) % accts.len();
    let vendor = accts[variant].as_ref();
    let table = query_table(kind, variant);
    let query = &table[usize::from(input.query) % table.len()];
    match vendor.parse(query, input.page, &input.response) {
        Ok(parsed) => {
            // Paging always moves forward, or the driver would loop.
            if let Some(next) = parsed.next_page {
                assert!(
                    next > input.page,
                    "next page {next} after page {}",
                    input.page
                );
                assert!(
                    matches!(query, Query::List { .. }),
                    "a re-check or quota answer asked for another page"
                );
            }
            for q in &parsed.quotas {
                assert!(
                    !q.limit.is_nan() && !q.remaining.is_nan(),
                    "quota is NaN: {q:?}"
                );
            }
            for t in &parsed.tasks {
                if let Some(p) = t.progress {
                    assert!((0.0..=1.0).contains(&p), "progress {p} outside 0..=1");
                }
            }
        }
        Err(e) => {
            // An error is never counted as an ok request.
            assert_ne!(e.outcome, vendors::Outcome::Ok, "error classified ok: {e}");
            let _ = e.to_string();
        }
    }
}

/// Target `volcengine`: ListContentTasks / ListContentTask / DescribeContentQuota.
pub fn volcengine(data: &[u8]) {
    vendor_parse(vendors::VendorKind::Volcengine, data)
}

/// Target `aliyun`: DescribeRefreshTasks / DescribeRefreshTaskById / DescribeRefreshQuota.
pub fn aliyun(data: &[u8]) {
    vendor_parse(vendors::VendorKind::Aliyun, data)
}

/// Target `ucloud`: DescribeRefreshCacheTask / DescribePrefetchCacheTask.
pub fn ucloud(data: &[u8]) {
    vendor_parse(vendors::VendorKind::Ucloud, data)
}

/// Target `cdnetworks`: fetch and purge ItemIdQuery.
pub fn cdnetworks(data: &[u8]) {
    vendor_parse(vendors::VendorKind::Cdnetworks, data)
}

/// Target `tencent`: DescribePurgeTasks / DescribePushTasks / the quota queries.
pub fn tencent(data: &[u8]) {
    vendor_parse(vendors::VendorKind::Tencent, data)
}

/// Target `cloudfront`: ListInvalidations / GetInvalidation.
pub fn cloudfront(data: &[u8]) {
    vendor_parse(vendors::VendorKind::Cloudfront, data)
}

/// Splits `text \0 file1 \0 file2 ...`.
fn split_files(data: &[u8]) -> (String, Vec<Vec<u8>>) {
    let mut parts = data.split(|b| *b == 0);
    let text = String::from_utf8_lossy(parts.next().unwrap_or(&[])).into_owned();
    (text, parts.map(<[u8]>::to_vec).collect())
}

/// `f1` → index 0, ...
fn file_index(name: &str, prefix: char) -> Option<usize> {
    let n: usize = name.strip_prefix(prefix)?.parse().ok()?;
    n.checked_sub(1)
}

/// Target `config`: the exporter config loader (`config::parse`).
pub fn config(data: &[u8]) {
    let (text, files) = split_files(data);
    let get = |i: Option<usize>| i.and_then(|i| files.get(i));
    let env = |k: &str| get(file_index(k, 'F')).map(|b| String::from_utf8_lossy(b).into_owned());
    let read = |p: &str| {
        get(file_index(p, 'f'))
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .ok_or_else(|| "not found".to_owned())
    };
    match crate::config::parse(&text, "fuzz.yml", &env, &read) {
        Ok(cfg) => {
            for a in &cfg.accounts {
                let apis = a.kind.apis();
                assert_eq!(a.rates.len(), apis.len(), "one budget per API");
                for (rate, api) in a.rates.iter().zip(apis) {
                    assert!(
                        !crate::config::exceeds(*rate, api.limit),
                        "budget {rate} exceeds {} limit {}",
                        api.name,
                        api.limit
                    );
                }
            }
            // Debug output does not depend on the secrets it holds.
            let mut blank = cfg.clone();
            for a in &mut blank.accounts {
                a.context.credentials.secret = Secret::new("");
                if a.context.credentials.session_token.is_some() {
                    a.context.credentials.session_token = Some(Secret::new(""));
                }
            }
            assert_eq!(
                format!("{cfg:?}"),
                format!("{blank:?}"),
                "a secret in Debug"
            );
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// Target `web_config`: the `--web.config.file` loader (`web_config::parse`).
pub fn web_config(data: &[u8]) {
    let (text, files) = split_files(data);
    let read = |p: &str| {
        file_index(p, 'f')
            .and_then(|i| files.get(i))
            .cloned()
            .ok_or_else(|| format!("cannot read {p:?}: not found"))
    };
    match crate::web_config::parse(&text, "web.yml", &read) {
        Ok(cfg) => {
            let shown = format!("{cfg:?}");
            for (_, hash) in &cfg.basic_auth_users {
                assert!(!shown.contains(hash.as_str()), "a bcrypt hash in Debug");
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// Target `headers_time`: vendor header and time parsers (CDNetworks
/// `X-Time-Zone` and wire times, Aliyun times and progress, `Retry-After`,
/// rate budgets).
pub fn headers_time(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let s = s.as_ref();

    let zone = crate::sim::cdnetworks::parse_zone(s);
    if let Some(z) = zone {
        assert!(z.abs() <= 14 * 3600 + 59 * 60, "zone {z} s from {s:?}");
    }
    for offset in [
        0,
        cdnetworks::api::ZONE_OFFSET_SECONDS,
        zone.unwrap_or(-3600),
    ] {
        if let Some(t) = cdnetworks::api::parse_time(s, offset) {
            let back = cdnetworks::api::format_time(t, offset)
                .unwrap_or_else(|| panic!("parsed {s:?} as {t} but cannot format it"));
            assert_eq!(
                cdnetworks::api::parse_time(&back, offset),
                Some(t),
                "round trip of {s:?}"
            );
        }
    }

    let _ = aliyun::api::parse_time(s);
    if let Some(p) = aliyun::api::parse_process(s) {
        assert!((0.0..=1.0).contains(&p), "process {p} from {s:?}");
    }

    let resp = HttpResponse {
        status: 429,
        headers: vec![("retry-after".into(), s.to_owned())],
        body: Vec::new(),
    };
    let _ = resp.retry_after();

    if let Ok(rate) = crate::collector::budget::Rate::parse(s) {
        assert!(
            rate.requests > 0 && !rate.per.is_zero(),
            "{rate:?} from {s:?}"
        );
        let _ = rate.to_string();
        for api in vendors::VendorKind::Cdnetworks
            .apis()
            .iter()
            .chain(vendors::VendorKind::Aliyun.apis())
        {
            let _ = crate::config::exceeds(rate, api.limit);
            let _ = api.limit.scaled(0.5);
        }
    }
}
