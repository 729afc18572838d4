//! Unit tests of the CloudFront module: requests, paging across
//! distributions, the path fetch of new invalidations, re-checks, quotas and
//! options.

use super::*;
use crate::secret::Secret;
use crate::task::TaskStatus;
use crate::vendors::Credentials;

fn vendor(dists: &[&str], max_items: Option<u32>) -> CloudfrontVendor {
    let opts = Options {
        distribution_ids: dists.iter().map(|d| (*d).to_owned()).collect(),
        max_items,
    };
    CloudfrontVendor::new(
        VendorContext {
            endpoint: "http://127.0.0.1:18080".into(),
            credentials: Credentials {
                id: "AKIAEXAMPLE".into(),
                secret: Secret::new("very-secret-key"),
                session_token: Some(Secret::new("sts-token-value")),
            },
            domain: None,
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

fn iso(t: i64) -> String {
    DateTime::from_timestamp(t, 0)
        .expect("time")
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// A list page of (id, created, status).
fn page(items: &[(&str, i64, &str)], next: Option<&str>) -> HttpResponse {
    let xml: String = items
        .iter()
        .map(|(id, c, s)| {
            format!(
                "<InvalidationSummary><CreateTime>{}</CreateTime><Id>{id}</Id><Status>{s}</Status></InvalidationSummary>",
                iso(*c)
            )
        })
        .collect();
    let body = format!(
        "<?xml version=\"1.0\"?><InvalidationList xmlns=\"{}\"><IsTruncated>{}</IsTruncated><Items>{xml}</Items><Marker></Marker><MaxItems>2</MaxItems>{}<Quantity>{}</Quantity></InvalidationList>",
        api::XMLNS,
        next.is_some(),
        next.map(|n| format!("<NextMarker>{n}</NextMarker>")).unwrap_or_default(),
        items.len()
    );
    HttpResponse {
        status: 200,
        headers: vec![],
        body: body.into_bytes(),
    }
}

fn get_answer(id: &str, created: i64, status: &str, paths: &[&str]) -> HttpResponse {
    let items: String = paths.iter().map(|p| format!("<Path>{p}</Path>")).collect();
    HttpResponse {
        status: 200,
        headers: vec![],
        body: format!(
            "<Invalidation><CreateTime>{}</CreateTime><Id>{id}</Id><InvalidationBatch><CallerReference>r</CallerReference><Paths><Items>{items}</Items><Quantity>{}</Quantity></Paths></InvalidationBatch><Status>{status}</Status></Invalidation>",
            iso(created),
            paths.len()
        )
        .into_bytes(),
    }
}

fn query_of(url: &str) -> Vec<(String, String)> {
    url.split_once('?')
        .map(|(_, q)| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn list_request_is_a_signed_get_with_the_session_token() {
    let v = vendor(&["EDFDVBD6EXAMPLE"], None);
    let stream = v.streams(TASK_TYPES)[0];
    let q = Query::List {
        stream,
        window: Window { from: 1, to: 2 },
    };
    let r = v.build(&q, 1, t0()).expect("build");
    assert_eq!(r.method, Method::Get);
    assert_eq!(
        r.url,
        "http://127.0.0.1:18080/2020-05-31/distribution/EDFDVBD6EXAMPLE/invalidation?MaxItems=100"
    );
    assert!(r.body.is_empty());
    let h = |n: &str| {
        r.headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(h("X-Amz-Date"), Some("20240219T032334Z"));
    assert_eq!(h("X-Amz-Security-Token"), Some("sts-token-value"));
    let auth = h("Authorization").expect("authorization");
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20240219/us-east-1/cloudfront/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature="),
        "{auth}"
    );
    // The signature is over host 127.0.0.1:18080, this path and query.
    let signed = vec![
        ("host".to_owned(), "127.0.0.1:18080".to_owned()),
        ("x-amz-date".to_owned(), "20240219T032334Z".to_owned()),
        (
            "x-amz-security-token".to_owned(),
            "sts-token-value".to_owned(),
        ),
    ];
    let again = crate::vendors::sigv4::stages(
        &crate::vendors::sigv4::AWS4,
        &crate::vendors::sigv4::Request {
            method: "GET",
            path: "/2020-05-31/distribution/EDFDVBD6EXAMPLE/invalidation",
            query: &query_of(&r.url),
            signed: &signed,
            body_hash: &sign::sha256_hex(b""),
            x_date: "20240219T032334Z",
            access_key_id: "AKIAEXAMPLE",
            secret: "very-secret-key",
            region: "us-east-1",
            service: "cloudfront",
        },
    );
    assert!(auth.ends_with(&format!("Signature={}", again.signature)));
    let dbg = format!("{v:?} {r:?}");
    assert!(
        !dbg.contains("very-secret-key") && !dbg.contains("sts-token-value"),
        "{dbg}"
    );
    assert!(v.streams(&[TaskType::Prefetch]).is_empty());
    assert!(v.quota_queries(&TaskType::ALL).is_empty());
}

#[test]
fn paging_follows_markers_then_the_next_distribution_and_stops_at_the_window() {
    let v = vendor(&["EA", "EB"], Some(2));
    let stream = v.streams(TASK_TYPES)[0];
    let w = Window {
        from: 1_000,
        to: 5_000,
    };
    let q = Query::List { stream, window: w };
    let r1 = v.build(&q, 1, t0()).expect("p1");
    assert!(r1.url.contains("/distribution/EA/invalidation?MaxItems=2"));
    let p1 = v
        .parse(
            &q,
            1,
            &page(
                &[("I4", 4_000, "Completed"), ("I3", 3_000, "Completed")],
                Some("I3"),
            ),
        )
        .expect("p1");
    assert_eq!(p1.next_page, Some(2));
    let r2 = v.build(&q, 2, t0()).expect("p2");
    assert!(
        r2.url
            .contains("/distribution/EA/invalidation?Marker=I3&MaxItems=2"),
        "{}",
        r2.url
    );
    // The oldest on page 2 is before the window: distribution EA is done.
    let p2 = v
        .parse(
            &q,
            2,
            &page(
                &[("I2", 2_000, "Completed"), ("I1", 900, "Completed")],
                Some("I1"),
            ),
        )
        .expect("p2");
    assert_eq!(p2.next_page, Some(3));
    let r3 = v.build(&q, 3, t0()).expect("p3");
    assert!(
        r3.url.contains("/distribution/EB/invalidation?MaxItems=2"),
        "{}",
        r3.url
    );
    let p3 = v
        .parse(&q, 3, &page(&[("J1", 4_500, "InProgress")], None))
        .expect("p3");
    assert_eq!(p3.next_page, None);
    // Nothing has paths yet: no tasks, four GetInvalidations queued (I1 is
    // older than the window and is not fetched), newest first.
    assert!(p1.tasks.is_empty() && p2.tasks.is_empty() && p3.tasks.is_empty());
    let plan = v.plan_rechecks(&[]);
    let ids: Vec<&str> = plan
        .iter()
        .map(|q| match q {
            Query::ById { api, ids, .. } => {
                assert_eq!(*api, GET);
                ids[0].as_str()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids, vec!["EB/J1", "EA/I4", "EA/I3", "EA/I2"]);
    // An in-progress invalidation's paths are unknown: no quota yet.
    assert!(p3.quotas.is_empty());
    // An empty truncated page cannot loop.
    let v = vendor(&["EA"], Some(2));
    let p = v.parse(&q, 1, &page(&[], Some("X"))).expect("empty");
    assert_eq!(p.next_page, None);
}

#[test]
fn paths_come_once_then_lists_update_the_status_and_quotas_follow() {
    let v = vendor(&["EA", "EB"], None);
    let stream = v.streams(TASK_TYPES)[0];
    let w = Window {
        from: 0,
        to: 10_000,
    };
    let q = Query::List { stream, window: w };
    v.parse(
        &q,
        1,
        &page(
            &[("I2", 2_000, "InProgress"), ("I1", 1_000, "InProgress")],
            None,
        ),
    )
    .expect("p1");
    let plan = v.plan_rechecks(&[]);
    assert_eq!(plan.len(), 2);
    let r = v.build(&plan[0], 1, t0()).expect("get");
    assert_eq!(
        r.url,
        "http://127.0.0.1:18080/2020-05-31/distribution/EA/invalidation/I2"
    );
    let g = v
        .parse(
            &plan[0],
            1,
            &get_answer("I2", 2_000, "InProgress", &["/a.js", "/img/*", "/b.js"]),
        )
        .expect("get I2");
    assert_eq!(g.tasks.len(), 1);
    let t = &g.tasks[0];
    assert_eq!(t.id, "EA/I2");
    assert_eq!(t.task_type, TaskType::RefreshDir);
    assert_eq!(t.status, TaskStatus::Running);
    assert_eq!(t.url_count, 3);
    assert_eq!(t.finished_at, None);
    // I1 still has unknown paths and is in progress: no quota.
    assert!(g.quotas.is_empty());
    let g = v
        .parse(
            &plan[1],
            1,
            &get_answer("I1", 1_000, "InProgress", &["/c.js"]),
        )
        .expect("get I1");
    assert_eq!(g.tasks[0].task_type, TaskType::RefreshFile);
    let quota = |qs: &[Quota], t: TaskType| {
        qs.iter()
            .find(|q| q.task_type == t)
            .map(|q| (q.limit, q.remaining))
    };
    assert_eq!(
        quota(&g.quotas, TaskType::RefreshFile),
        Some((3000.0, 2997.0))
    );
    assert_eq!(quota(&g.quotas, TaskType::RefreshDir), Some((15.0, 14.0)));
    // Nothing is pending any more; the next listing brings the status.
    assert!(v.plan_rechecks(&[]).is_empty());
    let p = v
        .parse(
            &q,
            1,
            &page(
                &[("I2", 2_000, "Completed"), ("I1", 1_000, "InProgress")],
                None,
            ),
        )
        .expect("p again");
    assert_eq!(p.tasks.len(), 2);
    assert_eq!(p.tasks[0].status, TaskStatus::Success);
    assert_eq!(p.tasks[0].url_count, 3);
    assert_eq!(p.tasks[1].status, TaskStatus::Running);
    assert_eq!(
        quota(&p.quotas, TaskType::RefreshFile),
        Some((3000.0, 2999.0))
    );
    assert_eq!(quota(&p.quotas, TaskType::RefreshDir), Some((15.0, 15.0)));
    // Unfinished cached tasks are re-checked one GetInvalidation each.
    let un = Unfinished {
        id: "EA/I1".into(),
        task_type: TaskType::RefreshFile,
        created_at: 1_000,
        stream,
    };
    let plan = v.plan_rechecks(&[un]);
    assert_eq!(
        plan,
        vec![Query::ById {
            api: GET,
            task_type: Some(TaskType::RefreshFile),
            ids: vec!["EA/I1".into()]
        }]
    );
    // An answer for another id is refused.
    let e = v
        .parse(
            &plan[0],
            1,
            &get_answer("I9", 1_000, "Completed", &["/c.js"]),
        )
        .expect_err("wrong id");
    assert_eq!(e.outcome, crate::vendors::Outcome::ParseError);
    assert!(v
        .build(
            &Query::ById {
                api: GET,
                task_type: None,
                ids: vec!["no-slash".into()]
            },
            1,
            t0()
        )
        .is_err());
}

#[test]
fn the_fullest_distribution_sets_the_quota() {
    let v = vendor(&["EA", "EB"], None);
    let get = |id: &str| Query::ById {
        api: GET,
        task_type: None,
        ids: vec![id.to_owned()],
    };
    v.parse(
        &get("EA/I1"),
        1,
        &get_answer("I1", 1, "InProgress", &["/a", "/b"]),
    )
    .expect("a");
    let p = v
        .parse(
            &get("EB/I2"),
            1,
            &get_answer("I2", 1, "InProgress", &["/x/*", "/y/*", "/z"]),
        )
        .expect("b");
    let q: Vec<(TaskType, f64)> = p
        .quotas
        .iter()
        .map(|q| (q.task_type, q.remaining))
        .collect();
    assert_eq!(
        q,
        vec![
            (TaskType::RefreshFile, 2998.0),
            (TaskType::RefreshDir, 13.0)
        ]
    );
}

#[test]
fn options_are_validated() {
    let yaml = |s: &str| serde_yaml::from_str::<serde_yaml::Value>(s).expect("yaml");
    let e = parse_options(serde_yaml::Value::Null).expect_err("required");
    assert_eq!(e.path, "distribution_ids");
    let o = parse_options(yaml("{distribution_ids: [EDFDVBD6EXAMPLE, E2]}")).expect("ok");
    assert_eq!(o.distribution_ids.len(), 2);
    assert_eq!(o.max_items(), 100);
    for (bad, path) in [
        ("{distribution_ids: []}", "distribution_ids"),
        ("{distribution_ids: ['E/1']}", "distribution_ids[0]"),
        ("{distribution_ids: [E1, E1]}", "distribution_ids[1]"),
        ("{distribution_ids: [E1], max_items: 0}", "max_items"),
        ("{distribution_ids: [E1], max_items: 101}", "max_items"),
    ] {
        assert_eq!(parse_options(yaml(bad)).expect_err(bad).path, path, "{bad}");
    }
    assert!(parse_options(yaml("{distribution_ids: [E1], discover: true}")).is_err());
}

#[test]
fn config_accepts_a_cloudfront_account() {
    let yaml = "accounts:\n  - name: cf\n    vendor: cloudfront\n    credentials: { id: AKIA, secret: SK, session_token: TOK }\n    lookback: 30d\n    options: { distribution_ids: [EDFDVBD6EXAMPLE] }\n";
    let cfg = crate::config::parse(yaml, "c.yml", &|_| None, &|_| Err(String::new()))
        .unwrap_or_else(|e| panic!("{e}"));
    let a = &cfg.accounts[0];
    assert_eq!(a.kind, VendorKind::Cloudfront);
    assert_eq!(a.settings.lookback, MAX_LOOKBACK);
    assert_eq!(a.context.endpoint, DEFAULT_ENDPOINT);
    assert_eq!(a.task_types, TASK_TYPES.to_vec());
    assert_eq!(a.rates[LIST], Rate::new(2, Duration::from_secs(1)));
    assert_eq!(a.rates[GET], Rate::new(2, Duration::from_secs(1)));
    let missing = yaml.replace("    options: { distribution_ids: [EDFDVBD6EXAMPLE] }\n", "");
    let e = crate::config::parse(&missing, "c.yml", &|_| None, &|_| Err(String::new()))
        .expect_err("distribution_ids required");
    assert!(e.to_string().contains("distribution_ids"), "{e}");
    let prefetch = yaml.replace("lookback: 30d", "task_types: [prefetch]");
    assert!(crate::config::parse(&prefetch, "c.yml", &|_| None, &|_| Err(String::new())).is_err());
}
