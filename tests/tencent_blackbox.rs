//! Black box: the real binary with a Tencent Cloud account (temporary keys)
//! pointed at the simulated API on loopback, scraped over HTTP.

mod common;

use cdn_task_exporter::clock::{Clock, SystemClock};
use cdn_task_exporter::sim::tencent::TencentSim;
use cdn_task_exporter::sim::Traffic;
use cdn_task_exporter::task::{TaskStatus, TaskType};
use cdn_task_exporter::vendors::tencent::TASK_TYPES;
use common::{frozen_world, parse_metrics, sim_endpoint, traffic, value, Exporter};
use std::sync::Arc;
use std::time::Duration;

const ID: &str = "AKIDblackBoxSecretId0123456789ab";
const TOKEN: &str = "blackbox-temporary-token-value";

async fn start_sim(seed: u64, secret: &str, token: Option<&str>) -> (TencentSim, String) {
    let traffic = Traffic {
        failure_rate: 0.1,
        ..traffic(seed, 300.0, TASK_TYPES)
    };
    let world = frozen_world(Arc::new(SystemClock), traffic, 6);
    // The exporter lists `[now - lookback, now)` in whole seconds (EndTime
    // `now - 1`, inclusive) and takes the current second on its next
    // refresh, by design. A record created in the frozen second (seed 41
    // has one) is therefore missing from a first refresh that runs in that
    // same second, while the truth counts it: start the exporter only once
    // the clock has left the frozen second, so the first refresh's window
    // holds every record the truth counts.
    let frozen = world.now();
    while SystemClock.unix() <= frozen {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut sim = TencentSim::new(world, ID, secret);
    if let Some(t) = token {
        sim = sim.with_token(t);
    }
    let endpoint = sim_endpoint(sim.clone().router()).await;
    (sim, endpoint)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_reports_the_simulators_ground_truth() {
    let (sim, endpoint) = start_sim(41, "bb-tencent-secret-good", Some(TOKEN)).await;
    let config = format!(
        r#"
accounts:
  - name: tc
    vendor: tencent
    endpoint: {endpoint}
    credentials: {{ id: {ID}, secret: "${{TC_SECRET}}", session_token: "${{TC_TOKEN}}" }}
    lookback: 24h
    options: {{ area: global }}
"#
    );
    let exp = tokio::task::spawn_blocking(move || {
        Exporter::start_with_env(
            &config,
            &["--log.level", "debug"],
            &[("TC_SECRET", "bb-tencent-secret-good"), ("TC_TOKEN", TOKEN)],
        )
    })
    .await
    .expect("start");
    let acct = [("vendor", "tencent"), ("account", "tc")];
    let text =
        tokio::task::block_in_place(|| exp.scrape_until_synced(&acct, Duration::from_secs(30)));
    let m = parse_metrics(&text);
    let frozen = sim.world.now();
    let truth = sim.truth(frozen - 86_400);
    // Every record of the world lies inside the 24 h lookback, and the
    // newest was created in the frozen second: both window edges are
    // exercised, the newest one exactly.
    assert_eq!(
        sim.truth(0),
        truth,
        "the 6 h backfill lies inside the lookback"
    );
    assert!(
        !sim.world.list(frozen, frozen + 1, None, None).is_empty(),
        "seed 41 creates a record in the frozen second"
    );
    assert!(
        truth.values().sum::<u64>() > 3000,
        "a realistic history of URL records"
    );
    assert!(
        truth
            .get(&(TaskType::Prefetch, TaskStatus::Failed))
            .copied()
            .unwrap_or(0)
            > 0,
        "failed prefetch URLs exist"
    );
    for t in TaskType::ALL {
        for s in TaskStatus::ALL {
            let l = [
                ("vendor", "tencent"),
                ("account", "tc"),
                ("task_type", t.as_str()),
                ("status", s.as_str()),
            ];
            let want = truth.get(&(t, s)).copied().unwrap_or(0) as f64;
            let got = value(&m, "cdn_tasks", &l);
            let urls = value(&m, "cdn_task_urls", &l);
            if TASK_TYPES.contains(&t) {
                assert_eq!(got, Some(want), "cdn_tasks {t}/{s}");
                assert_eq!(urls, Some(want), "cdn_task_urls {t}/{s}");
            } else {
                assert_eq!(got.unwrap_or(0.0), 0.0, "{t} is not a Tencent type");
            }
        }
    }
    for (t, ty) in [
        ("refresh_file", TaskType::RefreshFile),
        ("refresh_dir", TaskType::RefreshDir),
        ("prefetch", TaskType::Prefetch),
    ] {
        let q = sim.quota(ty);
        let l = [("vendor", "tencent"), ("account", "tc"), ("task_type", t)];
        assert_eq!(
            value(&m, "cdn_quota_remaining", &l),
            Some(q.iter().filter_map(|q| q.available).sum::<i64>() as f64),
            "{t}"
        );
        assert_eq!(
            value(&m, "cdn_quota_limit", &l),
            Some(q.iter().filter_map(|q| q.total).sum::<i64>() as f64),
            "{t}"
        );
    }
    assert_eq!(value(&m, "cdn_vendor_up", &acct), Some(1.0));
    tokio::task::block_in_place(|| common::promtool_check_metrics(&text));
    assert!(sim.control.received().iter().all(|r| r.answer == "ok"));
    let (status, page) =
        tokio::task::block_in_place(|| common::http_get(&exp.addr, "/", &[])).expect("landing");
    assert_eq!(status, 200);
    let logs = exp.logs();
    for secret in ["bb-tencent-secret-good", TOKEN] {
        for place in [&logs, &text, &page] {
            assert!(!place.contains(secret), "secret leaked");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_secret_marks_the_account_down_with_a_clear_log_line_and_no_secret() {
    let (sim, endpoint) = start_sim(42, "the-real-tencent-secret", None).await;
    let config = format!(
        r#"
accounts:
  - name: wrongkey
    vendor: tencent
    endpoint: {endpoint}
    credentials: {{ id: {ID}, secret: "wrong-tencent-secret-value" }}
"#
    );
    let exp =
        tokio::task::spawn_blocking(move || Exporter::start(&config, &["--log.level", "debug"]))
            .await
            .expect("start");
    let text = tokio::task::block_in_place(|| exp.scrape(Some("5")));
    let m = parse_metrics(&text);
    let acct = [("vendor", "tencent"), ("account", "wrongkey")];
    assert_eq!(value(&m, "cdn_vendor_up", &acct), Some(0.0));
    assert_eq!(
        value(
            &m,
            "cdn_vendor_api_requests_total",
            &[
                ("vendor", "tencent"),
                ("account", "wrongkey"),
                ("api", "DescribePurgeTasks"),
                ("outcome", "auth_error")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        sim.control.received()[0].detail,
        "AuthFailure.SignatureFailure"
    );
    let logs = exp.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("refresh failed"))
        .unwrap_or_else(|| panic!("no refresh failure logged: {logs}"));
    assert!(
        line.contains("auth_error")
            && line.contains("AuthFailure.SignatureFailure")
            && line.contains("wrongkey"),
        "a clear log line: {line}"
    );
    tokio::task::block_in_place(|| common::promtool_check_metrics(&text));
    let (_, page) =
        tokio::task::block_in_place(|| common::http_get(&exp.addr, "/", &[])).expect("landing");
    for s in [&logs, &text, &page] {
        assert!(
            !s.contains("wrong-tencent-secret-value") && !s.contains("the-real-tencent-secret"),
            "secret leaked"
        );
    }
}
