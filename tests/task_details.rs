//! Task details (issue 14): for the original four vendors and Tencent against
//! its simulator, the failed and unfinished tasks `/api/v1/tasks` lists over
//! real HTTP equal the simulator's ground truth (ids, statuses, URL counts),
//! URLs come back without their query strings, filters combine, caps evict
//! and count; and the `task_failed` log events come once per failed task,
//! never for the baseline.

mod common;

use cdn_task_exporter::app;
use cdn_task_exporter::clock::SystemClock;
use cdn_task_exporter::collector::Collector;
use cdn_task_exporter::sim::{serve, SimTask, World};
use cdn_task_exporter::task::{strip_query, TaskStatus, TaskType};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const SECRET: &str = "details-canary-secret-9f3a";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A world of one vendor: failed tasks (URLs with signed query strings),
/// stalled ones, successes, all created before the exporter starts, so the
/// first sync lists them as baseline.
fn world(types: &[TaskType], id: impl Fn(u64) -> String) -> Arc<World> {
    let w = World::new(Arc::new(SystemClock));
    let t0 = now();
    for seq in 0..12u64 {
        let ty = types[seq as usize % types.len()];
        let (runs_for, fails) = match seq % 3 {
            0 => (Some(30), true), // failed
            1 => (None, false),    // stalled: unfinished
            _ => (Some(30), false),
        };
        w.add(SimTask {
            id: id(seq),
            task_type: ty,
            created_at: t0 - 600 - seq as i64 * 60,
            domain: "www.example.com".into(),
            urls: vec![format!(
                "https://www.example.com/d{seq}/app.js?auth_key=tok{seq}&sig=abc"
            )],
            queued_for: 0,
            runs_for,
            fails,
        });
    }
    w.freeze();
    w
}

/// Ground truth: (created_at, URL without query) → (id, status, URL count)
/// of the failed and unfinished tasks.
fn truth(w: &World) -> BTreeMap<(i64, String), (String, TaskStatus, u32)> {
    let at = w.now();
    w.list(0, i64::MAX, None, None)
        .into_iter()
        .filter(|t| t.status_at(at) != TaskStatus::Success)
        .map(|t| {
            (
                (t.created_at, strip_query(&t.urls[0]).to_owned()),
                (t.id.clone(), t.status_at(at), t.urls.len() as u32),
            )
        })
        .collect()
}

struct Setup {
    world: Arc<World>,
    collector: Arc<Collector>,
    base: String,
    /// The vendor reports its own task ids (CDNetworks records have none).
    vendor_ids: bool,
    vendor: &'static str,
}

async fn exporter(yaml: &str) -> (Arc<Collector>, String) {
    let cfg = cdn_task_exporter::config::parse(yaml, "details.yml", &|_| None, &|_| {
        Err("no files".into())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let c = Arc::new(app::collector(
        &cfg,
        common::reqwest(),
        Arc::new(SystemClock),
    ));
    let addr = common::serve_app(c.clone()).await;
    (c, format!("http://{addr}"))
}

fn account(vendor: &str, endpoint: &str, id: &str, extra: &str) -> String {
    format!(
        "task_details: {{ max_failed: 3, max_recent: 2 }}\naccounts:\n  - name: main\n    vendor: {vendor}\n    endpoint: {endpoint}\n    credentials: {{ id: \"{id}\", secret: \"{SECRET}\" }}\n    lookback: 6h\n    min_refresh_interval: 1s\n{extra}"
    )
}

async fn setup(vendor: &'static str) -> Setup {
    use cdn_task_exporter::sim::{aliyun::AliyunSim, cdnetworks::CdnetworksSim};
    use cdn_task_exporter::sim::{ucloud::UcloudSim, volcengine::VolcengineSim};
    let hex = |s: u64| format!("{:016x}", 0x0200_0000_0000 + s);
    let (world, router, id, vendor_ids, extra) = match vendor {
        "aliyun" => {
            let w = world(&[TaskType::RefreshFile, TaskType::Prefetch], hex);
            let r = AliyunSim::new(w.clone(), "LTAIdetails", SECRET).router();
            (
                w,
                r,
                "LTAIdetails",
                true,
                "    task_types: [refresh_file, prefetch]\n",
            )
        }
        "volcengine" => {
            let w = world(&[TaskType::RefreshFile, TaskType::Prefetch], hex);
            let r = VolcengineSim::new(w.clone(), "AKLTdetails", SECRET).router();
            (
                w,
                r,
                "AKLTdetails",
                true,
                "    task_types: [refresh_file, prefetch]\n",
            )
        }
        "ucloud" => {
            let w = world(&[TaskType::RefreshFile, TaskType::Prefetch], |s| {
                format!("ucdn-task-{s}")
            });
            let r = UcloudSim::new(w.clone(), "ucloud-details@example.com", SECRET).router();
            (
                w,
                r,
                "ucloud-details@example.com",
                true,
                "    task_types: [refresh_file, prefetch]\n",
            )
        }
        "tencent" => {
            let w = world(&[TaskType::RefreshFile, TaskType::Prefetch], hex);
            let r =
                cdn_task_exporter::sim::tencent::TencentSim::new(w.clone(), "AKIDdetails", SECRET)
                    .router();
            (
                w,
                r,
                "AKIDdetails",
                true,
                "    task_types: [refresh_file, prefetch]\n",
            )
        }
        _ => {
            let w = world(&[TaskType::RefreshFile, TaskType::Prefetch], hex);
            let r =
                CdnetworksSim::new(w.clone(), Arc::new(SystemClock), "tenant_d", SECRET).router();
            (
                w,
                r,
                "tenant_d",
                false,
                "    task_types: [refresh_file, prefetch]\n    options: { auth: aksk }\n",
            )
        }
    };
    let (addr, _) = serve(router).await.unwrap();
    let (collector, base) = exporter(&account(vendor, &format!("http://{addr}"), id, extra)).await;
    Setup {
        world,
        collector,
        base,
        vendor_ids,
        vendor,
    }
}

async fn get_json(url: &str) -> serde_json::Value {
    let r = reqwest::get(url).await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    serde_json::from_str(&r.text().await.unwrap()).unwrap()
}

fn tasks(v: &serde_json::Value) -> &Vec<serde_json::Value> {
    v["tasks"].as_array().unwrap()
}

async fn check_vendor(vendor: &'static str) {
    let s = setup(vendor).await;
    s.collector
        .collect(Instant::now() + Duration::from_secs(25))
        .await;
    let truth = truth(&s.world);
    assert_eq!(truth.len(), 8, "4 failed + 4 stalled in the simulator");

    // Failed and unfinished, compared with ground truth. Caps: 3 failed
    // kept (of 4), 3 unfinished (of 4); the oldest go.
    let all = get_json(&format!(
        "{}/api/v1/tasks?status=failed&status=unfinished",
        s.base
    ))
    .await;
    let got: BTreeMap<(i64, String), (String, TaskStatus, u32)> = tasks(&all)
        .iter()
        .map(|t| {
            let status: TaskStatus = serde_json::from_value(t["status"].clone()).unwrap();
            let urls = t["urls"].as_array().unwrap();
            assert_eq!(urls.len(), 1, "{t}");
            let url = urls[0].as_str().unwrap().to_owned();
            assert!(
                !url.contains('?') && !url.contains("tok"),
                "query stripped: {url}"
            );
            assert_eq!(t["vendor"], vendor);
            assert_eq!(t["account"], "main");
            (
                (t["created_at"].as_i64().unwrap(), url),
                (
                    t["task_id"].as_str().unwrap().to_owned(),
                    status,
                    t["url_count"].as_u64().unwrap() as u32,
                ),
            )
        })
        .collect();
    let mut expected = truth.clone();
    if vendor == "tencent" {
        // Tencent lists URL records: the id is TASKID|URL, its query stripped.
        for ((_, url), (id, _, _)) in expected.iter_mut() {
            *id = format!("{id}|{url}");
        }
    }
    if vendor == "aliyun" {
        // The simulator's ids are hex; Aliyun's TaskId is their decimal value.
        for (id, _, _) in expected.values_mut() {
            *id = u64::from_str_radix(id, 16).unwrap().to_string();
        }
    }
    // Drop the oldest failed and the oldest unfinished (evicted by the caps).
    for finished in [true, false] {
        let oldest = expected
            .iter()
            .filter(|(_, (_, st, _))| st.is_finished() == finished)
            .map(|(k, _)| k.clone())
            .next();
        expected.remove(&oldest.unwrap());
    }
    let compare = |m: &BTreeMap<(i64, String), (String, TaskStatus, u32)>| {
        m.iter()
            .map(|(k, (id, st, n))| {
                let id = if s.vendor_ids {
                    id.clone()
                } else {
                    String::new()
                };
                (k.clone(), (id, *st, *n))
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(compare(&got), compare(&expected), "{vendor}");
    assert_eq!(all["total"], 6);
    let newest_first: Vec<i64> = tasks(&all)
        .iter()
        .map(|t| t["created_at"].as_i64().unwrap())
        .collect();
    assert!(
        newest_first.windows(2).all(|w| w[0] >= w[1]),
        "{newest_first:?}"
    );

    // Caps evict and count.
    let (_, m) = common::scrape(&s.collector).await;
    let evicted = |set: &str| {
        common::value(
            &m,
            "cdn_task_details_evicted_total",
            &[("vendor", vendor), ("account", "main"), ("set", set)],
        )
    };
    assert_eq!(evicted("failed"), Some(1.0));
    assert_eq!(evicted("unfinished"), Some(1.0));
    assert_eq!(evicted("recent"), Some(2.0), "4 successes, 2 kept");

    // Filters combine: failed AND prefetch AND a URL substring.
    let (key, (id, _, _)) = got
        .iter()
        .find(|(_, (_, st, _))| *st == TaskStatus::Failed)
        .unwrap();
    let path = key.1.rsplit_once(".com").unwrap().1;
    let one = get_json(&format!(
        "{}/api/v1/tasks?status=failed&url={}&vendor={vendor}&account=main",
        s.base,
        path.replace('/', "%2F")
    ))
    .await;
    assert_eq!(tasks(&one).len(), 1, "{one}");
    assert_eq!(tasks(&one)[0]["task_id"], id.as_str());
    let failed_prefetch = get_json(&format!(
        "{}/api/v1/tasks?status=failed&task_type=prefetch",
        s.base
    ))
    .await;
    assert!(tasks(&failed_prefetch)
        .iter()
        .all(|t| t["status"] == "failed" && t["task_type"] == "prefetch"));
    let failed_only = get_json(&format!("{}/api/v1/tasks?status=failed", s.base)).await;
    assert_eq!(
        tasks(&failed_prefetch).len(),
        tasks(&failed_only)
            .iter()
            .filter(|t| t["task_type"] == "prefetch")
            .count()
    );
    let other_vendor = get_json(&format!(
        "{}/api/v1/tasks?vendor={}",
        s.base,
        if vendor == "tencent" {
            "aliyun"
        } else {
            "tencent"
        }
    ))
    .await;
    assert!(tasks(&other_vendor).is_empty());
    let limited = get_json(&format!("{}/api/v1/tasks?limit=2", s.base)).await;
    assert_eq!(tasks(&limited).len(), 2);
    assert_eq!(limited["total"], 8, "3 failed + 3 unfinished + 2 recent");
    // Stuck: every stalled task here is 10+ minutes old, under the 1h default.
    let stuck = get_json(&format!("{}/api/v1/tasks?status=stuck", s.base)).await;
    assert!(tasks(&stuck).is_empty(), "{stuck}");

    // Canary: the secret appears on neither endpoint.
    let page = reqwest::get(format!("{}/tasks?status=failed", s.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(id.as_str()), "the page lists the failed task");
    let json = reqwest::get(format!("{}/api/v1/tasks", s.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for body in [&page, &json] {
        assert!(!body.contains(SECRET), "{} leaked the secret", s.vendor);
    }
    let bad = reqwest::get(format!("{}/api/v1/tasks?status=done", s.base))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliyun_details_match_the_simulator() {
    check_vendor("aliyun").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volcengine_details_match_the_simulator() {
    check_vendor("volcengine").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ucloud_details_match_the_simulator() {
    check_vendor("ucloud").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdnetworks_details_match_the_simulator() {
    check_vendor("cdnetworks").await;
}

fn sim_task(id: u64, created_at: i64, runs_for: Option<i64>, fails: bool) -> SimTask {
    SimTask {
        id: format!("{id:016x}"),
        task_type: TaskType::RefreshFile,
        created_at,
        domain: "www.example.com".into(),
        urls: vec![format!("https://www.example.com/e{id}.js?token=tok{id}")],
        queued_for: 0,
        runs_for,
        fails,
    }
}

/// `task_stuck` lines naming `id`.
fn stuck_events(logs: &str, id: u64) -> usize {
    logs.lines()
        .filter(|l| l.contains("event=task_stuck") && l.contains(&format!("task_id={id} ")))
        .count()
}

/// `task_failed` lines naming `id` (Aliyun reports the decimal TaskId).
fn failed_events(logs: &str, id: u64) -> usize {
    logs.lines()
        .filter(|l| l.contains("task_failed") && l.contains(&format!("task_id={id} ")))
        .count()
}

/// The real binary: one `task_failed` event per task first seen failed
/// after the baseline, none for the baseline's failures, none twice across
/// refreshes; the URL in the event has no query string. One `task_stuck`
/// event for a task that becomes stuck, none for one already stuck at the
/// baseline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_failed_events_once_per_task_never_for_the_baseline() {
    use cdn_task_exporter::sim::aliyun::AliyunSim;
    let w = World::new(Arc::new(SystemClock));
    let t0 = now();
    // Baseline: already failed before the exporter starts.
    w.add(sim_task(1, t0 - 900, Some(10), true));
    w.add(sim_task(2, t0 - 800, Some(10), true));
    // Running at baseline, fails ~8 s later: seen unfinished, so it counts.
    w.add(sim_task(3, t0 - 100, Some(108), true));
    let sim = AliyunSim::new(w.clone(), "LTAIlogs", SECRET);
    let (addr, _) = serve(sim.router()).await.unwrap();
    let yaml = format!(
        "task_details: {{ stuck_after: 4s }}\naccounts:\n  - name: main\n    vendor: aliyun\n    endpoint: http://{addr}\n    credentials: {{ id: LTAIlogs, secret: \"{SECRET}\" }}\n    lookback: 1h\n    min_refresh_interval: 1s\n    task_types: [refresh_file]\n"
    );
    let exp = tokio::task::spawn_blocking(move || common::Exporter::start(&yaml, &[]))
        .await
        .unwrap();
    let exp = Arc::new(exp);
    let scrape = {
        let exp = exp.clone();
        move || {
            let exp = exp.clone();
            async move {
                tokio::task::spawn_blocking(move || exp.scrape(Some("10")))
                    .await
                    .unwrap()
            }
        }
    };
    scrape().await;
    // After the baseline (counting starts at the first sync's second): a
    // new task that fails at once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    w.add(sim_task(4, now(), Some(0), true));
    // And one that never finishes: stuck 4 s later, reported once.
    w.add(sim_task(5, now(), None, false));
    // Ids 1..=4 as 16 hex digits: Aliyun reports the same numbers in decimal.
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        scrape().await;
        let logs = exp.logs();
        if failed_events(&logs, 3) > 0 && failed_events(&logs, 4) > 0 && stuck_events(&logs, 5) > 0
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no events: {logs}");
    }
    // More refreshes: nothing is reported twice.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        scrape().await;
    }
    let logs = exp.logs();
    assert_eq!(failed_events(&logs, 1), 0, "baseline: {logs}");
    assert_eq!(failed_events(&logs, 2), 0, "baseline: {logs}");
    assert_eq!(failed_events(&logs, 3), 1, "{logs}");
    assert_eq!(failed_events(&logs, 4), 1, "{logs}");
    assert_eq!(stuck_events(&logs, 5), 1, "once only: {logs}");
    // Task 3 was already stuck (4 s) when the baseline sync first saw it.
    assert_eq!(stuck_events(&logs, 3), 0, "baseline: {logs}");
    assert_eq!(logs.matches("event=task_stuck").count(), 1, "{logs}");
    let line = logs
        .lines()
        .find(|l| l.contains("task_failed") && l.contains("task_id=4 "))
        .unwrap();
    assert!(line.contains("https://www.example.com/e4.js"), "{line}");
    assert!(!line.contains("tok4") && !line.contains(SECRET), "{line}");
    assert!(
        line.contains("url_count=1")
            && line.contains("vendor=aliyun")
            && line.contains("account=main"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tencent_details_match_the_simulator() {
    check_vendor("tencent").await;
}
