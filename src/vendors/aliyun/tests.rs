//! Unit tests of the Aliyun module: planning, building (composition and
//! signature), parsing of the fixtures in `testdata/responses/aliyun/`.

use super::*;
use crate::secret::Secret;
use crate::task::TaskStatus;
use crate::vendors::{Credentials, Outcome, Window};
use chrono::TimeZone;

fn vendor_with(opts: Options, token: Option<&str>, domain: Option<&str>) -> AliyunVendor {
    let ctx = VendorContext {
        endpoint: "https://cdn.aliyuncs.com".into(),
        credentials: Credentials {
            id: "LTAI5tExampleAccessKeyId".into(),
            secret: Secret::new("exampleAccessKeySecret"),
            session_token: token.map(Secret::new),
        },
        domain: domain.map(str::to_owned),
        max_response_bytes: 0,
    };
    AliyunVendor::new(ctx, opts)
}

fn vendor() -> AliyunVendor {
    vendor_with(Options::default(), None, None)
}

fn fixture(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/responses/aliyun")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn resp(status: u16, body: Vec<u8>) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body,
    }
}

fn list(t: TaskType) -> Query {
    Query::List {
        stream: Stream {
            api: LIST,
            task_type: Some(t),
        },
        window: Window {
            from: 1_708_300_000,
            to: 1_708_313_014,
        },
    }
}

fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(1_708_313_014, 0).unwrap() // 2024-02-19T03:23:34Z
}

fn query_of(url: &str) -> Vec<(String, String)> {
    let q = url.split_once('?').map_or("", |(_, q)| q);
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

fn get<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

#[test]
fn one_stream_per_watched_object_type() {
    let s = vendor().streams(&TaskType::ALL);
    assert_eq!(s.len(), 4);
    assert!(s.iter().all(|s| s.api == LIST && s.task_type.is_some()));
    assert!(!s.iter().any(|s| s.task_type == Some(TaskType::RefreshTag)));
    let s = vendor().streams(&[TaskType::Prefetch]);
    assert_eq!(
        s,
        vec![Stream {
            api: LIST,
            task_type: Some(TaskType::Prefetch)
        }]
    );
}

#[test]
fn list_request_is_signed_v1_with_every_required_param() {
    let v = vendor_with(Options::default(), None, Some("www.example.com"));
    let req = v.build(&list(TaskType::RefreshDir), 3, now()).unwrap();
    assert_eq!(req.method, Method::Get);
    assert!(req.url.starts_with("https://cdn.aliyuncs.com/?"));
    let q = query_of(&req.url);
    for (k, want) in [
        ("Action", "DescribeRefreshTasks"),
        ("Version", "2018-05-10"),
        ("Format", "JSON"),
        ("ObjectType", "directory"),
        ("DomainName", "www.example.com"),
        ("PageNumber", "3"),
        ("PageSize", "100"),
        ("StartTime", "2024-02-18T23:46:40Z"),
        ("EndTime", "2024-02-19T03:23:34Z"),
        ("Timestamp", "2024-02-19T03:23:34Z"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("AccessKeyId", "LTAI5tExampleAccessKeyId"),
    ] {
        assert_eq!(get(&q, k), Some(want), "{k}");
    }
    // The signature verifies against the parameters as received.
    let sig = get(&q, "Signature").unwrap().to_owned();
    let rest: Vec<_> = q.into_iter().filter(|(k, _)| k != "Signature").collect();
    let again = sign::sign_rpc_v1("GET", &rest, &Secret::new("exampleAccessKeySecret"));
    assert_eq!(again.signature, sig);
    assert!(!format!("{req:?}").contains("exampleAccessKeySecret"));
    assert!(!format!("{v:?}").contains("exampleAccessKeySecret"));
}

#[test]
fn start_time_is_clamped_within_three_days() {
    let n = now().timestamp();
    let q = Query::List {
        stream: Stream {
            api: LIST,
            task_type: Some(TaskType::RefreshFile),
        },
        window: Window {
            from: n - 5 * 86_400,
            to: n,
        },
    };
    let url = vendor().build(&q, 1, now()).unwrap().url;
    let qs = query_of(&url);
    let start = api::parse_time(get(&qs, "StartTime").unwrap()).unwrap();
    assert_eq!(start, n - 3 * 86_400 + CLOCK_MARGIN.as_secs() as i64);
    // A window wholly outside still yields a valid (non-empty) window.
    let q = Query::List {
        stream: Stream {
            api: LIST,
            task_type: Some(TaskType::RefreshFile),
        },
        window: Window {
            from: n - 4 * 86_400,
            to: n - 3 * 86_400,
        },
    };
    let qs = query_of(&vendor().build(&q, 1, now()).unwrap().url);
    let (s, e) = (
        api::parse_time(get(&qs, "StartTime").unwrap()).unwrap(),
        api::parse_time(get(&qs, "EndTime").unwrap()).unwrap(),
    );
    assert!(s >= n - 3 * 86_400 && e > s);
}

#[test]
fn nonces_are_unique_per_request_even_at_the_same_instant() {
    let v = vendor();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1000 {
        let url = v.build(&Query::Quota { api: QUOTA }, 1, now()).unwrap().url;
        let n = get(&query_of(&url), "SignatureNonce").unwrap().to_owned();
        assert_eq!(n.len(), 32);
        assert!(seen.insert(n));
    }
}

#[test]
fn sts_token_is_sent_and_signed() {
    let v = vendor_with(Options::default(), Some("CAIS+tok/en=="), None);
    let url = v.build(&Query::Quota { api: QUOTA }, 1, now()).unwrap().url;
    let q = query_of(&url);
    assert_eq!(get(&q, "SecurityToken"), Some("CAIS+tok/en=="));
    assert_eq!(get(&q, "Action"), Some("DescribeRefreshQuota"));
}

#[test]
fn rechecks_go_by_id_ten_at_a_time_per_type() {
    let mk = |i: usize, t| Unfinished {
        id: format!("{}", 17_000_000_000u64 + i as u64),
        task_type: t,
        created_at: 0,
        stream: Stream {
            api: LIST,
            task_type: Some(t),
        },
    };
    let mut u: Vec<_> = (0..23).map(|i| mk(i, TaskType::RefreshFile)).collect();
    u.extend((100..102).map(|i| mk(i, TaskType::Prefetch)));
    let qs = vendor().plan_rechecks(&u);
    assert_eq!(qs.len(), 4);
    let mut total = 0;
    for q in &qs {
        let Query::ById { api, ids, .. } = q else {
            panic!("{q:?}")
        };
        assert_eq!(*api, BY_ID);
        assert!(ids.len() <= 10);
        total += ids.len();
        let url = vendor().build(q, 1, now()).unwrap().url;
        assert_eq!(
            get(&query_of(&url), "TaskId").unwrap(),
            ids.join(",").as_str()
        );
    }
    assert_eq!(total, 25);
    let too_many = Query::ById {
        api: BY_ID,
        task_type: None,
        ids: (0..11).map(|i| i.to_string()).collect(),
    };
    assert!(vendor().build(&too_many, 1, now()).is_err());
}

#[test]
fn acs3_request_verifies() {
    let opts = Options {
        signature: Signature::Acs3,
        ..Options::default()
    };
    let v = vendor_with(opts, Some("tok"), None);
    let req = v.build(&list(TaskType::Prefetch), 1, now()).unwrap();
    assert_eq!(req.method, Method::Post);
    let h = |k: &str| {
        req.headers
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(h("x-acs-action"), "DescribeRefreshTasks");
    assert_eq!(h("x-acs-security-token"), "tok");
    let auth = h("authorization");
    let signed_names = auth
        .split("SignedHeaders=")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    let signed: Vec<(String, String)> = signed_names
        .split(';')
        .map(|n| {
            let v = if n == "host" {
                "cdn.aliyuncs.com".to_owned()
            } else {
                h(n)
            };
            (n.to_owned(), v)
        })
        .collect();
    let q = query_of(&req.url);
    assert_eq!(get(&q, "ObjectType"), Some("preload"));
    let again = sign::sign_acs3(
        "POST",
        "/",
        &q,
        &signed,
        b"",
        "LTAI5tExampleAccessKeyId",
        &Secret::new("exampleAccessKeySecret"),
    );
    assert_eq!(again.authorization, auth);
}

#[test]
fn parses_the_seed_example() {
    let p = vendor()
        .parse(
            &list(TaskType::RefreshFile),
            10,
            &resp(200, fixture("describe-refresh-tasks-seed-example.json")),
        )
        .unwrap();
    assert_eq!(p.tasks.len(), 1);
    let t = &p.tasks[0];
    assert_eq!(t.id, "704225667");
    assert_eq!(t.task_type, TaskType::RefreshFile);
    assert_eq!(t.status, TaskStatus::Success);
    assert_eq!(t.created_at, 1_417_076_602);
    assert_eq!(t.progress, Some(1.0));
    assert_eq!(t.error, None, "Description only counts for failed tasks");
    assert_eq!(t.domain.as_deref(), Some("example.com"));
    assert_eq!(p.next_page, None, "page 10 x size 1 >= TotalCount 2");
}

#[test]
fn parses_mixed_statuses_and_skips_block_tasks() {
    let p = vendor()
        .parse(
            &list(TaskType::RefreshFile),
            1,
            &resp(200, fixture("describe-refresh-tasks-mixed.json")),
        )
        .unwrap();
    let st: Vec<_> = p.tasks.iter().map(|t| (t.id.as_str(), t.status)).collect();
    assert_eq!(
        st,
        vec![
            ("17004858241", TaskStatus::Running),
            ("17004858242", TaskStatus::Failed),
            ("17004858243", TaskStatus::Success),
            ("17004858245", TaskStatus::Pending),
        ]
    );
    assert_eq!(p.tasks[0].progress, Some(0.45));
    assert_eq!(
        p.tasks[1].error.as_deref(),
        Some("Origin Return StatusCode 5XX")
    );
    // A full page (5 entries, block included) of 12: there is a page 2,
    // and a page 3 is known from the total.
    assert_eq!(p.next_page, Some(2));
    assert_eq!(p.known_last_page, Some(3));
}

fn page_of(n: usize, page: u32, size: u32, total: Option<u64>) -> HttpResponse {
    let tasks: Vec<_> = (0..n)
        .map(|i| api::WireTask {
            task_id: format!("{}", 1000 + i),
            object_type: "file".into(),
            status: "Complete".into(),
            process: "100%".into(),
            creation_time: "2024-02-19T03:00:00Z".into(),
            ..api::WireTask::default()
        })
        .collect();
    let body = api::WireTaskList {
        request_id: "r".into(),
        page_number: Some(u64::from(page)),
        page_size: Some(u64::from(size)),
        total_count: total,
        tasks: api::WireTasks::Wrapped { cdn_task: tasks },
    };
    resp(200, serde_json::to_vec(&body).unwrap())
}

#[test]
fn paging_uses_total_count_and_short_pages() {
    let v = vendor();
    let q = list(TaskType::RefreshFile);
    let next = |n, page, total| {
        v.parse(&q, page, &page_of(n, page, 100, total))
            .unwrap()
            .next_page
    };
    assert_eq!(next(100, 1, Some(250)), Some(2));
    assert_eq!(next(100, 2, Some(250)), Some(3));
    assert_eq!(next(50, 3, Some(250)), None);
    assert_eq!(
        next(100, 2, Some(200)),
        None,
        "exactly full: TotalCount ends it"
    );
    assert_eq!(next(99, 1, Some(500)), None, "a short page ends it");
    assert_eq!(
        next(100, 1, None),
        Some(2),
        "no TotalCount: a full page goes on"
    );
    assert_eq!(next(0, 1, Some(0)), None);
    let p = v
        .parse(
            &q,
            1,
            &resp(200, fixture("describe-refresh-tasks-empty.json")),
        )
        .unwrap();
    assert!(p.tasks.is_empty() && p.next_page.is_none());
}

/// Fuzzing found it: `u64::from(page) * size` overflowed (a debug-build
/// panic) when the answer's `PageSize` was huge; and `then_some(page + 1)`
/// overflowed at page `u32::MAX` (it is evaluated even when not taken).
#[test]
fn huge_page_size_in_answer_does_not_overflow_paging() {
    let v = vendor();
    let q = list(TaskType::RefreshFile);
    let body = br#"{"RequestId":"r","PageSize":18446744073709551615,"TotalCount":5,"Tasks":{"CDNTask":[]}}"#;
    for page in [1, 2, MAX_PAGE_NUMBER, u32::MAX] {
        let p = v.parse(&q, page, &resp(200, body.to_vec())).unwrap();
        assert_eq!(p.next_page, None, "page {page}");
    }
    let body = br#"{"RequestId":"r","PageSize":"9223372036854775808","TotalCount":18446744073709551615,"Tasks":{"CDNTask":[]}}"#;
    let p = v.parse(&q, 3, &resp(200, body.to_vec())).unwrap();
    assert_eq!(p.next_page, None, "an empty page ends paging");
}

#[test]
fn parses_by_id_flat_array() {
    let q = Query::ById {
        api: BY_ID,
        task_type: Some(TaskType::Prefetch),
        ids: vec!["17004858251".into(), "17004858252".into()],
    };
    let p = vendor()
        .parse(
            &q,
            1,
            &resp(200, fixture("describe-refresh-task-by-id.json")),
        )
        .unwrap();
    assert_eq!(p.tasks.len(), 2);
    assert!(p.tasks.iter().all(|t| t.task_type == TaskType::Prefetch));
    assert_eq!(p.tasks[0].status, TaskStatus::Success);
    assert_eq!(p.tasks[1].status, TaskStatus::Running);
    assert_eq!(p.next_page, None);
}

#[test]
fn parses_string_quotas() {
    let p = vendor()
        .parse(
            &Query::Quota { api: QUOTA },
            1,
            &resp(200, fixture("describe-refresh-quota.json")),
        )
        .unwrap();
    let q: Vec<_> = p
        .quotas
        .iter()
        .map(|q| (q.task_type, q.limit, q.remaining))
        .collect();
    assert_eq!(
        q,
        vec![
            (TaskType::RefreshFile, 10_000.0, 9_996.0),
            (TaskType::RefreshDir, 100.0, 99.0),
            (TaskType::RefreshRegex, 20.0, 20.0),
            (TaskType::Prefetch, 1_000.0, 998.0),
        ]
    );
}

#[test]
fn error_fixtures_are_classified_by_code() {
    for (file, status, outcome, code) in [
        (
            "error-internal.json",
            500,
            Outcome::ServerError,
            "InternalError",
        ),
        (
            "error-too-many-requests.json",
            429,
            Outcome::Throttled,
            "TooManyRequests",
        ),
        (
            "error-throttling-user.json",
            400,
            Outcome::Throttled,
            "Throttling.User",
        ),
        (
            "error-signature-does-not-match.json",
            400,
            Outcome::AuthError,
            "SignatureDoesNotMatch",
        ),
        (
            "error-invalid-access-key-id.json",
            404,
            Outcome::AuthError,
            "InvalidAccessKeyId.NotFound",
        ),
        (
            "error-invalid-time.json",
            400,
            Outcome::ClientError,
            "InvalidTime",
        ),
        (
            "error-missing-object-type.json",
            400,
            Outcome::ClientError,
            "MissingParameter.ObjectType",
        ),
    ] {
        let e = vendor()
            .parse(
                &list(TaskType::RefreshFile),
                1,
                &resp(status, fixture(file)),
            )
            .unwrap_err();
        assert_eq!(e.outcome, outcome, "{file}");
        assert_eq!(e.code.as_deref(), Some(code), "{file}");
        assert!(e.request_id.is_some(), "{file}");
        // The code decides even under a 200.
        let e = vendor()
            .parse(&Query::Quota { api: QUOTA }, 1, &resp(200, fixture(file)))
            .unwrap_err();
        assert_eq!(e.outcome, outcome, "{file} under 200");
    }
}

#[test]
fn any_bytes_parse_without_panic() {
    let v = vendor();
    let queries = [
        list(TaskType::RefreshFile),
        Query::ById {
            api: BY_ID,
            task_type: None,
            ids: vec!["1".into()],
        },
        Query::Quota { api: QUOTA },
    ];
    let mut bodies: Vec<Vec<u8>> = vec![
        b"\x00\x01not json at all{{{".to_vec(),
        b"<html><head><title>502 Bad Gateway</title></head></html>".to_vec(),
        Vec::new(),
        b"null".to_vec(),
        b"[]".to_vec(),
        br#"{"Tasks":{"CDNTask":[{"TaskId":1,"CreationTime":"bad","ObjectType":"file"}]},"RequestId":"r"}"#.to_vec(),
        format!("{{\"pad\":\"{}\"}}", "x".repeat(100_000)).into_bytes(),
    ];
    let full = fixture("describe-refresh-tasks-mixed.json");
    for cut in 0..full.len() {
        bodies.push(full[..cut].to_vec());
    }
    for q in &queries {
        for b in &bodies {
            for status in [200, 400, 429, 500, 502] {
                let r = v.parse(q, 1, &resp(status, b.clone()));
                if status == 200 && b.len() < full.len() && b.as_slice() != b"[]" {
                    if let Err(e) = &r {
                        assert!(matches!(e.outcome, Outcome::ParseError), "{:?}", e);
                    }
                }
            }
        }
    }
    let e = v
        .parse(&queries[0], 1, &resp(200, bodies[1].clone()))
        .unwrap_err();
    assert_eq!(e.outcome, Outcome::ParseError);
    assert!(e.message.contains("<html>"), "{}", e.message);
}

#[test]
fn options_are_validated() {
    use crate::vendors::parse_options_as;
    let ok: Options =
        parse_options_as(serde_yaml::from_str("{signature: acs3, page_size: 50}").unwrap())
            .unwrap();
    assert_eq!(ok.signature, Signature::Acs3);
    assert_eq!(ok.page_size, PageSize(50));
    let e = crate::vendors::parse_options_as::<Options>(
        serde_yaml::from_str("{page_size: 0}").unwrap(),
    )
    .unwrap_err();
    assert!(e.message.contains("outside 1..=100"), "{e:?}");
    let e = crate::vendors::parse_options_as::<Options>(
        serde_yaml::from_str("{signature: v2}").unwrap(),
    )
    .unwrap_err();
    assert_eq!(e.path, "signature");
    assert!(crate::vendors::parse_options_as::<Options>(
        serde_yaml::from_str("{pagesize: 10}").unwrap()
    )
    .is_err());
    assert!(crate::vendors::parse_options_as::<Options>(serde_yaml::Value::Null).is_ok());
}
