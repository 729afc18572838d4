//! Unit tests of the Tencent Cloud module: requests built, rechecks planned,
//! paging, options.

use super::*;
use crate::secret::Secret;
use crate::vendors::{Credentials, Window};

fn vendor(endpoint: &str, opts: Options, token: Option<&str>) -> TencentVendor {
    TencentVendor::new(
        VendorContext {
            endpoint: endpoint.into(),
            credentials: Credentials {
                id: "AKIDexample".into(),
                secret: Secret::new("very-secret-key"),
                session_token: token.map(Secret::new),
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

fn header<'a>(r: &'a HttpRequest, n: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(n))
        .map(|(_, v)| v.as_str())
}

#[test]
fn list_request_is_signed_with_a_beijing_window() {
    let v = vendor(
        "http://127.0.0.1:18080",
        Options::default(),
        Some("sts-token-value"),
    );
    let q = Query::List {
        stream: v.streams(&[TaskType::RefreshDir])[0],
        // 2024-02-18 03:23:34 UTC .. 2024-02-19 03:23:34 UTC
        window: Window {
            from: 1_708_226_614,
            to: 1_708_313_014,
        },
    };
    let r = v.build(&q, 3, t0()).expect("build");
    assert_eq!(r.url, "http://127.0.0.1:18080/");
    assert_eq!(r.method, Method::Post);
    let body: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(body["PurgeType"], "path");
    assert_eq!(body["StartTime"], "2024-02-18 11:23:34");
    assert_eq!(body["EndTime"], "2024-02-19 11:23:33");
    assert_eq!(body["Offset"], 2000);
    assert_eq!(body["Limit"], 1000);
    assert_eq!(body["Keyword"], "www.example.com");
    assert!(body.get("Area").is_none());
    assert_eq!(header(&r, "X-TC-Action"), Some("DescribePurgeTasks"));
    assert_eq!(header(&r, "X-TC-Version"), Some("2018-06-06"));
    assert_eq!(header(&r, "X-TC-Timestamp"), Some("1708313014"));
    assert_eq!(header(&r, "X-TC-Token"), Some("sts-token-value"));
    assert_eq!(header(&r, "X-TC-Region"), None);
    assert_eq!(header(&r, "Content-Type"), Some("application/json"));
    let auth = header(&r, "Authorization").expect("authorization");
    let again = sign::sign(&sign::SignInput {
        method: "POST",
        host: "127.0.0.1:18080",
        path: "/",
        content_type: "application/json",
        body: &r.body,
        secret_id: "AKIDexample",
        secret_key: "very-secret-key",
        service: "cdn",
        timestamp: 1_708_313_014,
        unsigned_payload: false,
    });
    assert_eq!(auth, again.authorization);
    assert!(auth.starts_with(
        "TC3-HMAC-SHA256 Credential=AKIDexample/2024-02-19/cdn/tc3_request, SignedHeaders=content-type;host, Signature="
    ));
    let dbg = format!("{v:?} {r:?}");
    assert!(
        !dbg.contains("very-secret-key") && !dbg.contains("sts-token-value"),
        "{dbg}"
    );
}

#[test]
fn prefetch_area_region_and_default_port() {
    let v = vendor(
        "https://cdn.tencentcloudapi.com:443/",
        Options {
            area: Some(Area::Overseas),
            region: Some("ap-guangzhou".into()),
            page_size: 50,
            ..Options::default()
        },
        None,
    );
    let s = v.streams(&TaskType::ALL);
    assert_eq!(s.len(), 3);
    assert_eq!(
        s.iter().map(|s| s.api).collect::<Vec<_>>(),
        vec![PURGE, PURGE, PUSH]
    );
    let r = v
        .build(
            &Query::List {
                stream: s[2],
                window: Window { from: 500, to: 500 },
            },
            1,
            t0(),
        )
        .expect("build");
    let body: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert!(body.get("PurgeType").is_none());
    assert_eq!(body["Area"], "overseas");
    assert_eq!(body["Limit"], 50);
    assert_eq!(body["Offset"], 0);
    // An empty window still has StartTime <= EndTime.
    assert_eq!(body["StartTime"], body["EndTime"]);
    assert_eq!(header(&r, "X-TC-Action"), Some("DescribePushTasks"));
    assert_eq!(header(&r, "X-TC-Region"), Some("ap-guangzhou"));
    assert_eq!(header(&r, "X-TC-Token"), None);
    // Signed over the Host the client sends: no :443.
    let again = sign::sign(&sign::SignInput {
        method: "POST",
        host: "cdn.tencentcloudapi.com",
        path: "/",
        content_type: "application/json",
        body: &r.body,
        secret_id: "AKIDexample",
        secret_key: "very-secret-key",
        service: "cdn",
        timestamp: t0().timestamp(),
        unsigned_payload: false,
    });
    assert_eq!(
        header(&r, "Authorization"),
        Some(again.authorization.as_str())
    );
}

#[test]
fn rechecks_are_one_call_per_submission() {
    let v = vendor(DEFAULT_ENDPOINT, Options::default(), None);
    let s = v.streams(&TaskType::ALL);
    let un = |id: &str, t: TaskType, stream: Stream| Unfinished {
        id: id.into(),
        task_type: t,
        created_at: 1,
        stream,
    };
    let qs = v.plan_rechecks(&[
        un("100|https://a/1", TaskType::RefreshFile, s[0]),
        un("100|https://a/2", TaskType::RefreshFile, s[0]),
        un("200|https://a/", TaskType::RefreshDir, s[1]),
        un("300|https://a/3", TaskType::Prefetch, s[2]),
        un("300|https://a/4", TaskType::Prefetch, s[2]),
    ]);
    assert_eq!(qs.len(), 3);
    let r = v.build(&qs[2], 1, t0()).expect("build");
    assert_eq!(header(&r, "X-TC-Action"), Some("DescribePushTasks"));
    let body: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(body["TaskId"], "300");
    assert!(body.get("StartTime").is_none() && body.get("Keyword").is_none());
    let r = v.build(&qs[0], 1, t0()).expect("build");
    let body: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(body["TaskId"], "100");
    assert!(v
        .build(
            &Query::ById {
                api: PURGE,
                task_type: None,
                ids: vec!["a".into(), "b".into()]
            },
            1,
            t0()
        )
        .is_err());
}

#[test]
fn quota_queries_follow_watched_types_and_area() {
    let v = vendor(DEFAULT_ENDPOINT, Options::default(), None);
    assert_eq!(
        v.quota_queries(&TaskType::ALL),
        vec![
            Query::Quota { api: PURGE_QUOTA },
            Query::Quota { api: PUSH_QUOTA }
        ]
    );
    assert_eq!(
        v.quota_queries(&[TaskType::Prefetch]),
        vec![Query::Quota { api: PUSH_QUOTA }]
    );
    let r = v
        .build(&Query::Quota { api: PUSH_QUOTA }, 1, t0())
        .expect("build");
    assert_eq!(r.body, b"{}");
    assert_eq!(header(&r, "X-TC-Action"), Some("DescribePushQuota"));
    let off = vendor(
        DEFAULT_ENDPOINT,
        Options {
            quota: false,
            ..Options::default()
        },
        None,
    );
    assert!(off.quota_queries(&TaskType::ALL).is_empty());
    let mainland = vendor(
        DEFAULT_ENDPOINT,
        Options {
            area: Some(Area::Mainland),
            ..Options::default()
        },
        None,
    );
    let resp = HttpResponse {
        status: 200,
        headers: vec![],
        body: br#"{"Response":{"RequestId":"r","UrlPush":[{"Area":"mainland","Total":100,"Available":40},{"Area":"overseas","Total":50,"Available":50}]}}"#.to_vec(),
    };
    let p = mainland
        .parse(&Query::Quota { api: PUSH_QUOTA }, 1, &resp)
        .expect("quota");
    assert_eq!((p.quotas[0].limit, p.quotas[0].remaining), (100.0, 40.0));
    let p = v
        .parse(&Query::Quota { api: PUSH_QUOTA }, 1, &resp)
        .expect("quota");
    assert_eq!((p.quotas[0].limit, p.quotas[0].remaining), (150.0, 90.0));
    let e = v
        .parse(&Query::Quota { api: PURGE_QUOTA }, 1, &resp)
        .expect_err("purge quota answer lacks UrlPurge");
    assert_eq!(e.outcome, crate::vendors::Outcome::ParseError);
}

#[test]
fn paging_uses_the_total_and_stops_on_a_short_page() {
    let v = vendor(
        DEFAULT_ENDPOINT,
        Options {
            page_size: 2,
            ..Options::default()
        },
        None,
    );
    let q = Query::List {
        stream: v.streams(&[TaskType::RefreshFile])[0],
        window: Window { from: 1, to: 2 },
    };
    let page = |n: usize, total: i64| {
        let logs: Vec<String> = (0..n)
            .map(|i| format!(r#"{{"TaskId":"t{i}","Url":"https://a/{i}","Status":"done","PurgeType":"url","CreateTime":"2024-02-19 11:00:00"}}"#))
            .collect();
        HttpResponse {
            status: 200,
            headers: vec![],
            body: format!(
                r#"{{"Response":{{"RequestId":"r","TotalCount":{total},"PurgeLogs":[{}]}}}}"#,
                logs.join(",")
            )
            .into_bytes(),
        }
    };
    assert_eq!(v.parse(&q, 1, &page(2, 5)).expect("ok").next_page, Some(2));
    assert_eq!(v.parse(&q, 2, &page(2, 5)).expect("ok").next_page, Some(3));
    assert_eq!(v.parse(&q, 3, &page(1, 5)).expect("ok").next_page, None);
    // A full last page: the total says it was the last.
    assert_eq!(v.parse(&q, 2, &page(2, 4)).expect("ok").next_page, None);
    assert_eq!(v.parse(&q, 1, &page(0, 0)).expect("ok").next_page, None);
    // `TotalCount` 5 at 2 a page: pages 2 and 3 can be asked for at once.
    assert_eq!(
        v.parse(&q, 1, &page(2, 5)).expect("ok").known_last_page,
        Some(3)
    );
    assert_eq!(
        v.parse(&q, 1, &page(0, 0)).expect("ok").known_last_page,
        None
    );
    let p = v.parse(&q, 1, &page(2, 5)).expect("ok");
    assert_eq!(p.tasks[0].created_at, 1_708_311_600);
}

#[test]
fn options_are_validated() {
    let yaml = |s: &str| serde_yaml::from_str::<serde_yaml::Value>(s).expect("yaml");
    assert_eq!(
        parse_options(serde_yaml::Value::Null).expect("default"),
        Options::default()
    );
    let o =
        parse_options(yaml("{area: global, region: ap-guangzhou, page_size: 100}")).expect("ok");
    assert_eq!(o.area, Some(Area::Global));
    assert_eq!(
        parse_options(yaml("{page_size: 1001}"))
            .expect_err("1001")
            .path,
        "page_size"
    );
    assert_eq!(
        parse_options(yaml("{page_size: 0}")).expect_err("0").path,
        "page_size"
    );
    assert!(parse_options(yaml("{area: china}")).is_err());
    assert!(parse_options(yaml("{region: 'ap guangzhou'}")).is_err());
    assert!(parse_options(yaml("{bogus: 1}")).is_err());
}

#[test]
fn config_accepts_tencent_and_clamps_lookback() {
    let yaml = "accounts:\n  - name: t\n    vendor: tencent\n    credentials: { id: AKID, secret: SK, session_token: TOK }\n    lookback: 60d\n    options: { area: mainland }\n";
    let cfg = crate::config::parse(yaml, "c.yml", &|_| None, &|_| Err(String::new()))
        .unwrap_or_else(|e| panic!("{e}"));
    let a = &cfg.accounts[0];
    assert_eq!(a.kind, VendorKind::Tencent);
    assert_eq!(a.settings.lookback, MAX_LOOKBACK);
    assert_eq!(a.context.endpoint, DEFAULT_ENDPOINT);
    assert_eq!(a.task_types, TASK_TYPES.to_vec());
    assert_eq!(a.rates[PURGE], Rate::new(10, Duration::from_secs(1)));
    let bad = yaml.replace("lookback: 60d", "task_types: [refresh_tag]");
    assert!(crate::config::parse(&bad, "c.yml", &|_| None, &|_| Err(String::new())).is_err());
}
