//! Scale-out acceptance (issue 16).
//!
//! Real processes: three exporter binaries, shards 0..2 of 3, over 300
//! accounts of the testing vendor on one simulator (loopback HTTP), scraped by
//! a real Prometheus through file_sd. Every account has exactly one
//! `cdn_vendor_up` series, on the instance of its owner; the simulator's
//! request log (keyed by the account id each request carries) shows every
//! account's calls answered by exactly the process that reports them. Then
//! the count goes 3 → 4 as a rolling update would: the four new processes
//! start beside the old ones, the fraction of accounts that changed owner is
//! measured (≈ 1/4), nothing moves between old shards, and no account sees
//! more calls than its vendor limit in any window.
//!
//! In process, on paused tokio time: two collectors polling the same
//! account (an HA pair with `--budget.share 0.5`, or the old and new owner
//! during a rolling update at the default `safety_fraction: 0.5`) for ten
//! minutes stay within the vendor's limit together, and without the share
//! they would not (the control run exceeds it).
//!
//! Needs `prometheus` on PATH (`scripts/install-deps.sh`); never skips.

mod common;

use cdn_task_exporter::api::Rate;
use cdn_task_exporter::clock::{SharedClock, SystemClock, TokioClock};
use cdn_task_exporter::collector::Collector;
use cdn_task_exporter::config;
use cdn_task_exporter::shard::{self, Shard};
use cdn_task_exporter::sim::calls::{Call, CallLog};
use cdn_task_exporter::sim::testing::TestingSim;
use cdn_task_exporter::sim::{max_in_window, serve, RouterTransport, SimTask, Traffic, World};
use cdn_task_exporter::task::TaskType;
use cdn_task_exporter::vendors::testing::APIS;
use common::prom::{on_path, prom_query, Proc};
use common::{binary, eventually, free_port, http_get, parse_metrics, tempdir::TempDir, Exporter};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const ACCOUNTS: usize = 300;

fn names() -> Vec<String> {
    (0..ACCOUNTS).map(|i| format!("acct-{i:03}")).collect()
}

/// 300 testing accounts on the simulator at `addr`, each keyed by its name.
/// Refreshes are due once an hour, so after the first sync the counts stand
/// still and can be compared exactly.
fn config(addr: &str) -> String {
    let mut s = String::from(
        "defaults:\n  min_refresh_interval: 1h\n  quota_interval: 1h\n  lookback: 1h\naccounts:\n",
    );
    for n in names() {
        s.push_str(&format!(
            "  - name: {n}\n    vendor: testing\n    endpoint: http://{addr}\n    credentials: {{ id: {n}, secret: tok }}\n"
        ));
    }
    s
}

/// Which testing API a logged call was.
fn api_of(c: &Call) -> &'static str {
    if c.uri.starts_with("/v1/quota") {
        "GetQuota"
    } else if c.uri.contains("ids=") {
        "GetTasks"
    } else {
        "ListTasks"
    }
}

/// The worst window per (account, API) over `calls`, against the vendor's
/// published limit: (worst/limit ratio, description).
fn worst_window(calls: &[Call]) -> (f64, String) {
    let mut by: BTreeMap<(&str, &str), Vec<Instant>> = BTreeMap::new();
    for c in calls {
        by.entry((c.key.as_str(), api_of(c)))
            .or_default()
            .push(c.at);
    }
    let mut worst = (0.0, String::new());
    for ((key, api), times) in by {
        let limit = APIS.iter().find(|a| a.name == api).unwrap().limit;
        let mut most = 0;
        for (i, t) in times.iter().enumerate() {
            let n = times[i..]
                .iter()
                .take_while(|u| u.saturating_duration_since(*t) < limit.per)
                .count();
            most = most.max(n);
        }
        let ratio = most as f64 / f64::from(limit.requests);
        if ratio > worst.0 {
            worst = (
                ratio,
                format!("{key} {api}: {most} in {:?} (limit {limit})", limit.per),
            );
        }
    }
    worst
}

/// Requests each account's exporter reports having sent (all APIs and
/// outcomes), per account, from one scrape of `e`.
fn reported(e: &Exporter) -> BTreeMap<String, u64> {
    let text = e.scrape(Some("10"));
    let mut out = BTreeMap::new();
    for (series, v) in parse_metrics(&text) {
        if let Some(rest) = series.strip_prefix("cdn_vendor_api_requests_total{") {
            let account = rest
                .split_once("account=\"")
                .and_then(|(_, r)| r.split_once('"'))
                .map(|(a, _)| a.to_owned())
                .unwrap();
            *out.entry(account).or_default() += v as u64;
        }
    }
    out
}

/// Writes the file_sd targets atomically (Prometheus watches the file).
fn set_targets(file: &std::path::Path, targets: &[&str]) {
    let json = serde_json::json!([{ "targets": targets }]).to_string();
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, json).unwrap();
    std::fs::rename(&tmp, file).unwrap();
}

/// `cdn_vendor_up` per account as Prometheus has it: account → instances.
fn up_series(prom: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in prom_query(prom, "cdn_vendor_up == 1").unwrap_or_default() {
        out.entry(s["metric"]["account"].as_str().unwrap().to_owned())
            .or_default()
            .push(s["metric"]["instance"].as_str().unwrap().to_owned());
    }
    out
}

/// account → (task_type, status) → count, the non-zero `cdn_tasks` series
/// in Prometheus summed over the instances.
fn task_counts(prom: &str) -> BTreeMap<String, BTreeMap<(String, String), f64>> {
    let mut out: BTreeMap<String, BTreeMap<(String, String), f64>> = BTreeMap::new();
    let expr = "sum by (account, task_type, status) (cdn_tasks) > 0";
    for s in prom_query(prom, expr).unwrap_or_default() {
        let label = |k: &str| s["metric"][k].as_str().unwrap().to_owned();
        out.entry(label("account")).or_default().insert(
            (label("task_type"), label("status")),
            s["value"][1].as_str().unwrap().parse().unwrap(),
        );
    }
    out
}

/// instance → shard, from `cdn_exporter_shard_accounts` in Prometheus.
fn shards_of(prom: &str) -> BTreeMap<String, (String, f64)> {
    prom_query(prom, "cdn_exporter_shard_accounts")
        .unwrap_or_default()
        .iter()
        .map(|s| {
            (
                s["metric"]["instance"].as_str().unwrap().to_owned(),
                (
                    s["metric"]["shard"].as_str().unwrap().to_owned(),
                    s["value"][1].as_str().unwrap().parse().unwrap(),
                ),
            )
        })
        .collect()
}

fn start_shards(cfg: &str, count: u32) -> Vec<Exporter> {
    (0..count)
        .map(|i| {
            Exporter::start(
                cfg,
                &[
                    "--shard.index",
                    &i.to_string(),
                    "--shard.count",
                    &count.to_string(),
                    "--log.level",
                    "warn",
                ],
            )
        })
        .collect()
}

/// For each exporter's accounts: the sim's count equals what it reports,
/// and no account is reported by two of them.
fn assert_counts_match(sim: &CallLog, exporters: &[&Exporter]) -> BTreeMap<String, u64> {
    let mut last = String::new();
    let ok = eventually(Duration::from_secs(20), || {
        let mut union: BTreeMap<String, u64> = BTreeMap::new();
        for e in exporters {
            for (a, n) in reported(e) {
                *union.entry(a).or_default() += n;
            }
        }
        let truth = sim.per_key();
        if truth == union {
            return true;
        }
        last = format!("simulator {truth:?}\nexporters {union:?}");
        false
    });
    assert!(
        ok,
        "the exporters' counts never matched the simulator's:\n{last}"
    );
    sim.per_key()
}

#[test]
fn shards_split_300_accounts_and_growing_to_four_moves_a_quarter() {
    assert!(
        on_path("prometheus"),
        "prometheus is not on PATH; run scripts/install-deps.sh (Debian package prometheus)"
    );
    let dir = TempDir::new("shard");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // One simulator for all accounts: the vendor's limits are checked per
    // account from the log below, so its own (per-API, all accounts
    // together) limit is lifted.
    let world = World::new(Arc::new(SystemClock));
    let now = world.now();
    for i in 0..3 {
        world.add(SimTask {
            id: format!("t{i}"),
            task_type: TaskType::RefreshFile,
            created_at: now - 600 + i,
            domain: "example.com".into(),
            urls: vec!["https://example.com/a".into()],
            queued_for: 0,
            runs_for: Some(30),
            fails: false,
        });
    }
    let truth: BTreeMap<(String, String), f64> = world
        .truth(0)
        .into_iter()
        .map(|((t, s), n)| ((t.as_str().to_owned(), s.as_str().to_owned()), n as f64))
        .collect();
    let sim = TestingSim::new(world, "tok");
    for api in APIS {
        sim.control
            .limit(api.name, Rate::new(1_000_000, Duration::from_secs(1)));
    }
    let log = CallLog::by_header("x-account-id");
    let router = log.wrap(sim.router());
    let (addr, _server) = rt.block_on(serve(router)).unwrap();
    let cfg = config(&addr.to_string());

    // Three shards and Prometheus scraping them all through file_sd.
    let three = start_shards(&cfg, 3);
    let targets = dir.path().join("targets.json");
    set_targets(
        &targets,
        &three.iter().map(|e| e.addr.as_str()).collect::<Vec<_>>(),
    );
    let prom_addr = format!("127.0.0.1:{}", free_port());
    let prom_config = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: cdn-task-exporter\n    file_sd_configs:\n      - files: ['{}']\n        refresh_interval: 1s\n",
            targets.display()
        ),
    )
    .unwrap();
    let mut prometheus = Proc::spawn(
        "prometheus",
        "prometheus",
        &[
            format!("--config.file={}", prom_config.display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address={prom_addr}"),
        ],
        dir.path().join("prometheus.log"),
    );
    prometheus.wait_ready(&prom_addr, "/-/ready", Duration::from_secs(20));

    let mut up = BTreeMap::new();
    let all_up = eventually(Duration::from_secs(60), || {
        prometheus.assert_running();
        up = up_series(&prom_addr);
        up.len() == ACCOUNTS
    });
    assert!(
        all_up,
        "{} of {ACCOUNTS} accounts up in Prometheus",
        up.len()
    );
    // The union of the shards' task counts, as Prometheus has them, is the
    // simulator's ground truth for every account (all list the same world).
    let mut counted = BTreeMap::new();
    let exact = eventually(Duration::from_secs(30), || {
        counted = task_counts(&prom_addr);
        counted.len() == ACCOUNTS && counted.values().all(|c| *c == truth)
    });
    assert!(
        exact,
        "cdn_tasks across the shards never equalled the truth {truth:?}: {} accounts, e.g. {:?}",
        counted.len(),
        counted.iter().find(|(_, c)| **c != truth)
    );
    let shards = shards_of(&prom_addr);
    assert_eq!(shards.len(), 3, "{shards:?}");
    let total: f64 = shards.values().map(|(_, n)| n).sum();
    assert_eq!(
        total as usize, ACCOUNTS,
        "cdn_exporter_shard_accounts adds up"
    );
    for (account, instances) in &up {
        assert_eq!(instances.len(), 1, "{account} has {instances:?}");
        let (label, _) = &shards[&instances[0]];
        assert_eq!(
            label,
            &format!("{}/3", shard::owner(account, 3)),
            "{account} is served by its owner"
        );
    }
    let per_shard: Vec<f64> = {
        let mut v: Vec<(String, f64)> = shards.values().cloned().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.into_iter().map(|(_, n)| n).collect()
    };
    println!("accounts per shard of 3: {per_shard:?}");

    // The simulator's side: each account was called, and exactly as often as
    // the one process serving it says; no other process called it.
    let truth = assert_counts_match(&log, &three.iter().collect::<Vec<_>>());
    assert_eq!(
        truth.keys().cloned().collect::<BTreeSet<_>>(),
        names().into_iter().collect::<BTreeSet<_>>()
    );
    for (i, e) in three.iter().enumerate() {
        let mine = reported(e);
        for a in mine.keys() {
            assert_eq!(shard::owner(a, 3), i as u32, "{a} polled by shard {i}");
        }
    }

    // The landing page lists the owned accounts and names the owner of the rest.
    let (status, page) = http_get(&three[1].addr, "/", &[]).unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("Shard 1 of 3"), "{page}");
    for n in names() {
        let o = shard::owner(&n, 3);
        if o == 1 {
            assert!(
                page.contains(&format!("<tr><td>{n}</td><td>testing</td>")),
                "{n}"
            );
        } else {
            assert!(
                page.contains(&format!("<tr><td>{n}</td><td>{o} of 3</td></tr>")),
                "{n}"
            );
        }
    }

    // 3 → 4 as a rolling update: the new processes start while the old
    // ones still run, then the old ones go.
    let four = start_shards(&cfg, 4);
    let both: Vec<&str> = three.iter().chain(&four).map(|e| e.addr.as_str()).collect();
    set_targets(&targets, &both);
    let new_instances: BTreeSet<String> = four.iter().map(|e| e.addr.clone()).collect();
    let mut new_up = BTreeMap::new();
    let synced = eventually(Duration::from_secs(60), || {
        prometheus.assert_running();
        new_up = up_series(&prom_addr);
        new_up.retain(|_, inst| {
            inst.retain(|i| new_instances.contains(i));
            !inst.is_empty()
        });
        new_up.len() == ACCOUNTS
    });
    assert!(
        synced,
        "{} of {ACCOUNTS} accounts up on the 4 new shards",
        new_up.len()
    );
    let shards = shards_of(&prom_addr);
    let mut moved = 0;
    for (account, instances) in &new_up {
        assert_eq!(instances.len(), 1, "{account} on {instances:?}");
        let new = shards[&instances[0]].0.clone();
        let old = shards[&up[account][0]].0.clone();
        let (old_i, new_i) = (
            old.split('/').next().unwrap().to_owned(),
            new.split('/').next().unwrap().to_owned(),
        );
        if old_i != new_i {
            assert_eq!(
                new, "3/4",
                "{account} moved between old shards ({old} -> {new})"
            );
            moved += 1;
        }
    }
    let fraction = moved as f64 / ACCOUNTS as f64;
    println!("shard count 3 -> 4: {moved} of {ACCOUNTS} accounts changed owner ({fraction:.3}; ideal 0.25)");
    assert!(
        (0.17..=0.33).contains(&fraction),
        "moved {fraction}, expected about 1/4"
    );

    // Old and new together: the simulator saw exactly what the seven
    // processes report, and in no window more than the vendor allows.
    let all: Vec<&Exporter> = three.iter().chain(&four).collect();
    assert_counts_match(&log, &all);
    set_targets(
        &targets,
        &four.iter().map(|e| e.addr.as_str()).collect::<Vec<_>>(),
    );
    drop(three);
    let (ratio, worst) = worst_window(&log.calls());
    println!("busiest account window during the run: {worst} ({ratio:.2} of the limit)");
    assert!(ratio <= 1.0, "over the vendor limit: {worst}");
    drop(prometheus);
}

/// The flags' errors exit 2 and name the flag; check-config prints the split.
#[test]
fn check_config_reports_the_split_and_bad_flags_exit_2() {
    let dir = TempDir::new("shard-flags");
    let file = dir.path().join("c.yml");
    std::fs::write(&file, config("127.0.0.1:1")).unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(binary());
        cmd.arg("--config.file").arg(&file).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let owned = names().iter().filter(|n| shard::owner(n, 3) == 2).count();
    let (code, out) = run(&["check-config", "--shard.index=2", "--shard.count=3"], &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!(
            "configuration OK ({ACCOUNTS} accounts; shard 2/3 owns {owned}, {} owned by other shards)",
            ACCOUNTS - owned
        )),
        "{out}"
    );
    let (code, out) = run(
        &[
            "check-config",
            "--shard.index-from-hostname",
            "--shard.count=3",
        ],
        &[("HOSTNAME", "cdn-task-exporter-2")],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("shard 2/3 owns"), "{out}");
    for (args, env, flag) in [
        (
            vec!["check-config", "--shard.index=3", "--shard.count=3"],
            vec![],
            "--shard.index",
        ),
        (
            vec![
                "check-config",
                "--shard.index-from-hostname",
                "--shard.count=3",
            ],
            vec![("HOSTNAME", "exporter")],
            "--shard.index-from-hostname",
        ),
        (
            vec!["check-config", "--budget.share=0"],
            vec![],
            "--budget.share",
        ),
        (
            vec!["check-credentials", "--budget.share=2"],
            vec![],
            "--budget.share",
        ),
        (vec!["--shard.count=0"], vec![], "--shard.count"),
    ] {
        let (code, out) = run(&args, &env);
        assert_eq!(code, Some(2), "{args:?}: {out}");
        assert!(out.contains(flag), "{args:?}: {out}");
    }
}

/// Two collectors polling the same account for ten minutes of paused time,
/// scraped every 250 ms each with the history far larger than one refresh
/// can list: they are budget-bound the whole time. Returns the simulator's
/// log and its ListTasks limit.
async fn pair(share: f64, safety_fraction: f64) -> (Vec<cdn_task_exporter::sim::Received>, Rate) {
    const T0: i64 = 1_767_225_600;
    let clock: SharedClock = Arc::new(TokioClock::starting_at(T0));
    let world = World::new(clock.clone());
    world.with_traffic(
        Traffic {
            seed: 16,
            tasks_per_hour: 2000.0,
            stall_rate: 0.6,
            ..Traffic::default()
        },
        Duration::from_secs(3600),
    );
    // The simulator enforces the published limits; the log is its own.
    let sim = TestingSim::new(world, "tok");
    let yaml = format!(
        "accounts:\n  - name: shared\n    vendor: testing\n    endpoint: http://sim\n    credentials: {{ id: shared, secret: tok }}\n    lookback: 1h\n    min_refresh_interval: 1s\n    quota_interval: 1s\n    max_permit_wait: 2s\n    safety_fraction: {safety_fraction}\n    options: {{ page_size: 5 }}\n"
    );
    let replicas: Vec<Arc<Collector>> = (0..2)
        .map(|_| {
            let mut cfg = config::parse(&yaml, "ha.yml", &|_| None, &|_| Err("no files".into()))
                .unwrap_or_else(|e| panic!("{e}"));
            shard::partition(&mut cfg, Shard::default(), share).unwrap();
            let transport = Arc::new(RouterTransport::new(sim.clone().router()));
            Arc::new(cdn_task_exporter::app::collector(
                &cfg,
                transport,
                clock.clone(),
            ))
        })
        .collect();
    let end = Instant::now() + Duration::from_secs(600);
    let mut tasks = Vec::new();
    for (i, c) in replicas.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            // The replicas' scrapes are not aligned.
            tokio::time::sleep(Duration::from_millis(90 * i as u64)).await;
            while Instant::now() < end {
                c.collect(Instant::now() + Duration::from_secs(2)).await;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (sim.control.received(), APIS[0].limit)
}

#[tokio::test(start_paused = true)]
async fn an_ha_pair_at_half_share_stays_within_the_vendor_limit_together() {
    // HA: two replicas of one shard, --budget.share 0.5, the whole limit
    // configured (safety_fraction 1): together exactly the vendor's limit.
    // Rolling update: old and new owner at share 1 with the default
    // safety_fraction 0.5: together the same.
    for (what, share, safety) in [("HA pair", 0.5, 1.0), ("old and new owner", 1.0, 0.5)] {
        let (log, limit) = pair(share, safety).await;
        // Per API: calls, the busiest window, and the share of the whole
        // run's limit the pair used.
        let mut used = Vec::new();
        for api in APIS {
            let n = log.iter().filter(|r| r.api == api.name).count();
            let worst = max_in_window(&log, api.name, api.limit.per);
            let full = f64::from(api.limit.requests) * 600.0 / api.limit.per.as_secs_f64();
            println!(
                "{what} (share {share}, safety_fraction {safety}), 10 min paused time: {} {n} calls, \
                 busiest {:?} window {worst} (limit {}), {:.0}% of the run's limit",
                api.name,
                api.limit.per,
                api.limit.requests,
                100.0 * n as f64 / full
            );
            assert!(
                worst as u32 <= api.limit.requests,
                "{what}: {} {worst} in a window",
                api.name
            );
            used.push(n as f64 / full);
        }
        let throttled = log.iter().filter(|r| r.answer == "throttled").count();
        assert_eq!(throttled, 0, "{what}: the simulator throttled");
        // Budget-bound: on some API the pair used most of the whole run's limit.
        assert!(
            used.iter().any(|u| *u > 0.6),
            "{what}: the pair was not budget-bound ({used:?})"
        );
        let _ = limit;
    }
    // Control: the same pair at share 1 and the whole limit each would go
    // over it; the check above can fail.
    let (log, limit) = pair(1.0, 1.0).await;
    let worst = max_in_window(&log, "ListTasks", limit.per);
    let throttled = log.iter().filter(|r| r.answer == "throttled").count();
    println!("control (share 1, safety_fraction 1): busiest window {worst}, {throttled} throttled");
    assert!(
        worst as u32 > limit.requests || throttled > 0,
        "two full-budget pollers should exceed the limit ({worst}, {throttled} throttled)"
    );
}
