//! Black box: restarts of the real binary with `--storage.path`, against the
//! simulated vendors on loopback. What must survive: unfinished tasks (each
//! finish counted once), covered windows (never listed again) and the rate
//! budget (a crash loop never exceeds the vendor's limit, checked from the
//! simulator's request log). What must never happen: a secret in the state,
//! a crash or refusal to start on a damaged state file.

mod common;

use cdn_task_exporter::clock::SystemClock;
use cdn_task_exporter::sim::aliyun::AliyunSim;
use cdn_task_exporter::sim::cdnetworks::CdnetworksSim;
use cdn_task_exporter::sim::{max_in_window, serve, SimTask, Traffic, World};
use cdn_task_exporter::task::TaskType;
use common::tempdir::TempDir;
use common::{eventually, parse_metrics, value, Exporter};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const AK: &str = "LTAI5tStateKeyId";
/// The canary: a secret no state file may ever contain.
const SECRET: &str = "canary-Secret-7f3a9e1b";
const CN_USER: &str = "tenant_state";

const ALIYUN: [(&str, &str); 2] = [("vendor", "aliyun"), ("account", "cn")];

/// A config and state directory that outlives the exporter processes.
struct Home {
    dir: TempDir,
}

impl Home {
    fn new(config: &str) -> Home {
        let dir = TempDir::new("state-home");
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        Home { dir }
    }

    /// The default state path: `data/` beside the config file.
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the binary on this home's config (no `--storage.path`: the
    /// default must work), waiting until it has bound its port.
    fn spawn(&self, env: &[(&str, &str)]) -> Exporter {
        self.spawn_with(&[], env)
    }

    fn spawn_with(&self, extra: &[&str], env: &[(&str, &str)]) -> Exporter {
        let mut args: Vec<std::ffi::OsString> = vec![
            "--config.file".into(),
            self.dir.path().join("config.yml").into(),
            "--log.level".into(),
            "debug".into(),
        ];
        args.extend(extra.iter().map(Into::into));
        Exporter::spawn_in(TempDir::new("state-run"), &args, env)
    }

    fn files(&self, ext: &str) -> Vec<PathBuf> {
        let Ok(rd) = std::fs::read_dir(self.data()) else {
            return Vec::new();
        };
        rd.flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .collect()
    }
}

/// SIGTERM, then the exit status (graceful shutdown writes the state).
fn sigterm(exp: &mut Exporter) -> std::process::ExitStatus {
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &exp.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM failed");
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        if let Some(s) = exp.child.try_wait().unwrap() {
            return s;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("exporter did not stop on SIGTERM: {}", exp.logs());
}

fn scrape(exp: &Exporter) -> std::collections::HashMap<String, f64> {
    parse_metrics(&exp.scrape(Some("10")))
}

fn finished(m: &std::collections::HashMap<String, f64>) -> f64 {
    let mut l = ALIYUN.to_vec();
    l.extend([("task_type", "refresh_file"), ("status", "success")]);
    value(m, "cdn_tasks_finished_total", &l).unwrap_or(-1.0)
}

fn assert_no_secret(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let bytes = std::fs::read(e.path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(SECRET),
            "secret in state file {}",
            e.path().display()
        );
    }
}

fn aliyun_config(endpoint: &str, extra: &str) -> String {
    let cn = common::Account {
        vendor: "aliyun",
        name: "cn",
    };
    let settings =
        "    lookback: 24h\n    task_types: [refresh_file]\n    min_refresh_interval: 1s";
    format!(
        "{extra}\n{}",
        cn.yaml(endpoint, AK, "${ALIYUN_SECRET}", settings)
    )
}

/// Aliyun with `open` unfinished refresh_file tasks (ids `open-N`) and
/// `done` finished ones, created ten minutes ago; the world holds still.
async fn aliyun_world(open: usize, done: usize) -> (AliyunSim, String) {
    let world = World::new(Arc::new(SystemClock));
    let now = world.now();
    for i in 0..open + done {
        let id = if i < open {
            format!("open-{i}")
        } else {
            format!("done-{i}")
        };
        world.add(SimTask {
            id,
            task_type: TaskType::RefreshFile,
            created_at: now - 600 - i as i64,
            domain: "www.example.com".into(),
            urls: vec![format!("https://www.example.com/{i}.js")],
            queued_for: 0,
            runs_for: (i >= open).then_some(10),
            fails: false,
        });
    }
    world.freeze();
    let sim = AliyunSim::new(world, AK, SECRET);
    let (addr, _) = serve(sim.clone().router()).await.unwrap();
    (sim, format!("http://{addr}"))
}

/// Start times of the listings received from index `from` on.
fn listed_from(sim: &AliyunSim, from: usize) -> Vec<i64> {
    sim.requests()[from..]
        .iter()
        .filter(|r| r.api == "DescribeRefreshTasks")
        .filter_map(|r| r.param("StartTime"))
        .map(|s| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap_or_else(|e| panic!("StartTime {s:?}: {e}"))
                .timestamp()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_unfinished_tasks_counts_each_finish_once_and_lists_nothing_twice() {
    let (sim, endpoint) = aliyun_world(5, 3).await;
    let home = Home::new(&aliyun_config(&endpoint, ""));
    let env = [("ALIYUN_SECRET", SECRET)];
    tokio::task::block_in_place(|| {
        // Run 1: five tasks running, three finished (the baseline).
        let run1_start = chrono::Utc::now().timestamp();
        let mut exp = home.spawn(&env);
        exp.wait_ready();
        let m = parse_metrics(&exp.scrape_until_synced(&ALIYUN, Duration::from_secs(20)));
        let mut running = ALIYUN.to_vec();
        running.extend([("task_type", "refresh_file"), ("status", "running")]);
        assert_eq!(value(&m, "cdn_tasks", &running), Some(5.0));
        assert_eq!(finished(&m), 0.0, "baseline finishes are not counted");
        let first_lists = listed_from(&sim, 0);
        assert!(!first_lists.is_empty());
        assert!(sigterm(&mut exp).success(), "{}", exp.logs());
        assert!(exp.logs().contains("state saved"), "{}", exp.logs());
        assert_eq!(home.files("state").len(), 1, "{}", exp.logs());

        // While it is down, the five finish.
        sim.world.finish(|t| t.id.starts_with("open-"));
        let mark = sim.requests().len();

        // Run 2: each finish counted exactly once, from the restored cache.
        let mut exp = home.spawn(&env);
        exp.wait_ready();
        assert!(exp.logs().contains("state restored"), "{}", exp.logs());
        // A scrape with no time to wait answers from the restored cache
        // (its refresh goes on in the background), marked not up.
        let m = parse_metrics(&exp.scrape(Some("0.5")));
        assert_eq!(value(&m, "cdn_cache_tasks", &ALIYUN), Some(8.0), "{m:?}");
        let mut m = Default::default();
        let counted = eventually(Duration::from_secs(20), || {
            m = scrape(&exp);
            finished(&m) >= 5.0
        });
        assert!(counted, "finishes not counted: {m:?}\n{}", exp.logs());
        std::thread::sleep(Duration::from_millis(1500));
        let m = scrape(&exp);
        assert_eq!(finished(&m), 5.0, "each finish once, not more");
        let mut success = ALIYUN.to_vec();
        success.extend([("task_type", "refresh_file"), ("status", "success")]);
        assert_eq!(value(&m, "cdn_tasks", &success), Some(8.0));
        // No window run 1 covered is listed again, not the 24-hour
        // lookback: only the head since it (less its 2-minute overlap),
        // stretched back at most to the oldest unfinished task where that
        // is the cheapest re-check (one page against five id lookups).
        let now = sim.world.now();
        let oldest_open = sim
            .world
            .list(now - 86_400, now + 1, None, None)
            .iter()
            .filter(|t| t.id.starts_with("open-"))
            .map(|t| t.created_at)
            .min()
            .expect("the open tasks");
        let again = listed_from(&sim, mark);
        assert!(!again.is_empty(), "run 2 listed its head");
        for start in &again {
            assert!(
                *start >= oldest_open.min(run1_start - 120 - 1),
                "run 2 listed from {start}, before the oldest unfinished task ({oldest_open}) \
                 inside what run 1 (from {run1_start}) covered: {again:?}"
            );
        }
        assert!(sigterm(&mut exp).success());

        // Run 3: the counter restarts at 0 and the finishes are not counted
        // again (they were saved as counted).
        let mut exp = home.spawn(&env);
        exp.wait_ready();
        let m = parse_metrics(&exp.scrape_until_synced(&ALIYUN, Duration::from_secs(20)));
        std::thread::sleep(Duration::from_millis(1500));
        let m2 = scrape(&exp);
        assert_eq!((finished(&m), finished(&m2)), (0.0, 0.0));
        assert!(sigterm(&mut exp).success());
        assert_no_secret(&home.data());
    });
}

/// SIGKILL at any moment, ten times: the next process starts from the
/// journal, so the vendor never sees more than its limit.
fn crash_loop(home: &Home, env: &[(&str, &str)]) {
    let start = Instant::now();
    for i in 0..10 {
        let mut exp = home.spawn(env);
        if i % 2 == 0 {
            exp.wait_ready();
            // Waits for the refresh (and its requests) to end.
            let _ = exp.scrape(Some("5"));
        } else {
            // Killed while the first refresh is under way.
            let addr = exp.addr.clone();
            std::thread::spawn(move || common::http_get(&addr, "/metrics", &[]));
            std::thread::sleep(Duration::from_millis(40 * i));
        }
        exp.child.kill().unwrap();
        exp.child.wait().unwrap();
        let logs = exp.logs();
        assert!(!logs.contains("panicked"), "{logs}");
    }
    assert!(
        start.elapsed() < Duration::from_secs(120),
        "the loop must run well inside one 5-minute window to prove anything"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_of_a_cdnetworks_account_spends_one_fetch_per_five_minutes() {
    let world = World::new(Arc::new(SystemClock));
    world.with_traffic(
        Traffic {
            seed: 5,
            tasks_per_hour: 30.0,
            max_urls: 2,
            ..Traffic::default()
        },
        Duration::from_secs(6 * 3600),
    );
    world.freeze();
    // The vendor's real limits: fetch 1 per 5 minutes, purge 10 per 5.
    let sim = CdnetworksSim::new(world, Arc::new(SystemClock), CN_USER, SECRET);
    let (addr, _) = serve(sim.clone().router()).await.unwrap();
    let home = Home::new(&format!(
        r#"
accounts:
  - name: cdn
    vendor: cdnetworks
    endpoint: http://{addr}
    credentials: {{ id: {CN_USER}, secret: "${{CDN_KEY}}" }}
    lookback: 24h
    min_refresh_interval: 1s
"#
    ));
    tokio::task::block_in_place(|| crash_loop(&home, &[("CDN_KEY", SECRET)]));
    let received = sim.control.received();
    let fetches = sim.control.count("FetchItemIdQuery");
    assert!(fetches >= 1, "the first run fetched: {received:?}");
    assert_eq!(
        max_in_window(&received, "FetchItemIdQuery", Duration::from_secs(300)),
        1,
        "at most one fetch per 5 minutes across ten restarts: {received:?}"
    );
    assert!(
        max_in_window(&received, "PurgeItemIdQuery", Duration::from_secs(300)) <= 10,
        "{received:?}"
    );
    assert!(
        received.iter().all(|r| r.answer != "throttled"),
        "the vendor never had to refuse: {received:?}"
    );
    assert_no_secret(&home.data());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_of_an_aliyun_account_never_exceeds_the_limit() {
    let world = World::new(Arc::new(SystemClock));
    world.with_traffic(
        Traffic {
            seed: 9,
            tasks_per_hour: 600.0,
            task_types: vec![TaskType::RefreshFile, TaskType::Prefetch],
            ..Traffic::default()
        },
        Duration::from_secs(12 * 3600),
    );
    world.freeze();
    let sim = AliyunSim::new(world, AK, SECRET);
    let (addr, _) = serve(sim.clone().router()).await.unwrap();
    let home = Home::new(&aliyun_config(&format!("http://{addr}"), "").replace(
        "task_types: [refresh_file]",
        "task_types: [refresh_file, prefetch]",
    ));
    tokio::task::block_in_place(|| crash_loop(&home, &[("ALIYUN_SECRET", SECRET)]));
    let received = sim.control.received();
    assert!(received.len() > 20, "the runs did page: {}", received.len());
    for api in cdn_task_exporter::vendors::aliyun::APIS {
        let worst = max_in_window(&received, api.name, api.limit.per);
        assert!(
            worst <= api.limit.requests as usize,
            "{}: {worst} requests within {:?} (limit {})",
            api.name,
            api.limit.per,
            api.limit
        );
    }
    assert!(
        received.iter().all(|r| r.answer != "throttled"),
        "the vendor never had to refuse"
    );
}

/// Waits for the process to exit on its own; its status.
fn wait_exit(exp: &mut Exporter) -> std::process::ExitStatus {
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        if let Some(s) = exp.child.try_wait().unwrap() {
            return s;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("exporter did not stop: {}", exp.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_a_state_write_the_next_start_reads_the_previous_good_state() {
    let (_sim, endpoint) = aliyun_world(4, 2).await;
    let home = Home::new(&aliyun_config(&endpoint, "state_interval: 1s"));
    tokio::task::block_in_place(|| {
        // The second periodic write stops the process half-way through
        // writing its temp file (the fault honoured by sim builds only).
        let mut exp = home.spawn(&[
            ("ALIYUN_SECRET", SECRET),
            ("CDN_EXPORTER_STATE_FAULT", "abort:2"),
        ]);
        exp.wait_ready();
        let _ = exp.scrape_until_synced(&ALIYUN, Duration::from_secs(20));
        let status = wait_exit(&mut exp);
        assert!(!status.success(), "aborted mid-write: {status}");
        assert!(
            exp.logs().contains("aborting during state write 2"),
            "{}",
            exp.logs()
        );
        assert_eq!(home.files("tmp").len(), 1, "a torn temp file was left");

        let mut exp = home.spawn(&[("ALIYUN_SECRET", SECRET)]);
        exp.wait_ready();
        let logs = exp.logs();
        assert!(logs.contains("state restored"), "{logs}");
        assert!(!logs.contains("unusable"), "{logs}");
        assert!(
            home.files("tmp").is_empty(),
            "the torn temp file is removed"
        );
        let m = parse_metrics(&exp.scrape_until_synced(&ALIYUN, Duration::from_secs(20)));
        let mut running = ALIYUN.to_vec();
        running.extend([("task_type", "refresh_file"), ("status", "running")]);
        assert_eq!(value(&m, "cdn_tasks", &running), Some(4.0));
        assert!(sigterm(&mut exp).success());
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_foreign_or_other_config_state_is_named_and_the_account_starts_fresh() {
    let (_sim, endpoint) = aliyun_world(3, 1).await;
    let config = aliyun_config(&endpoint, "");
    let home = Home::new(&config);
    let env = [("ALIYUN_SECRET", SECRET)];
    tokio::task::block_in_place(|| {
        let mut exp = home.spawn(&env);
        exp.wait_ready();
        let _ = exp.scrape_until_synced(&ALIYUN, Duration::from_secs(20));
        assert!(sigterm(&mut exp).success());
        let state = home.files("state").pop().expect("a state file");
        let journal = home.files("journal").pop().expect("a journal");
        let good = std::fs::read(&state).unwrap();
        let header_end = good.iter().position(|b| *b == b'\n').unwrap();

        let mut flipped = good.clone();
        let mid = header_end + (good.len() - header_end) / 2;
        flipped[mid] ^= 0x20;
        let version = String::from_utf8_lossy(&good).replacen(" 1 ", " 9 ", 1);
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "truncated",
                good[..good.len() * 2 / 3].to_vec(),
                "truncated",
            ),
            ("corrupt", flipped, "checksum"),
            ("foreign version", version.into_bytes(), "format version 9"),
            (
                "not ours",
                b"PK\x03\x04 some zip\n".to_vec(),
                "not a cdn-task-exporter state file",
            ),
            ("empty", Vec::new(), "not a cdn-task-exporter state file"),
        ];
        for (what, bytes, problem) in cases {
            std::fs::write(&state, &bytes).unwrap();
            let mut exp = home.spawn(&env);
            exp.wait_ready();
            let lines: Vec<String> = exp
                .logs()
                .lines()
                .filter(|l| l.contains("state file unusable"))
                .map(str::to_owned)
                .collect();
            assert_eq!(lines.len(), 1, "{what}: one line: {}", exp.logs());
            assert!(
                lines[0].contains(&state.display().to_string()) && lines[0].contains(problem),
                "{what}: names the file and says {problem:?}: {}",
                lines[0]
            );
            let m = parse_metrics(&exp.scrape_until_synced(&ALIYUN, Duration::from_secs(20)));
            assert_eq!(value(&m, "cdn_vendor_up", &ALIYUN), Some(1.0), "{what}");
            assert!(
                exp.child.try_wait().unwrap().is_none(),
                "{what}: still running"
            );
            assert!(
                sigterm(&mut exp).success(),
                "{what}: exit status unaffected"
            );
            assert!(
                std::fs::read(&state)
                    .unwrap()
                    .starts_with(b"cdn-task-exporter-state 1 "),
                "{what}: a good state is written again"
            );
        }

        // A damaged journal: named, the budget starts empty, still running.
        std::fs::write(&journal, b"\x00\x01garbage").unwrap();
        // The state of an account no longer configured is dropped.
        let gone = home.data().join("gone-0badc0de.state");
        std::fs::write(&gone, b"cdn-task-exporter-state 1 x y 0\n").unwrap();
        let mut exp = home.spawn(&env);
        exp.wait_ready();
        let logs = exp.logs();
        assert!(
            logs.lines().any(|l| l.contains("budget journal unusable")
                && l.contains(&journal.display().to_string())),
            "{logs}"
        );
        assert!(!gone.exists(), "state of an unconfigured account removed");
        assert!(sigterm(&mut exp).success());

        // Another configuration of the account (task types changed): the
        // saved cache describes other data.
        std::fs::write(
            home.dir.path().join("config.yml"),
            config.replace("[refresh_file]", "[refresh_file, prefetch]"),
        )
        .unwrap();
        let mut exp = home.spawn(&env);
        exp.wait_ready();
        let logs = exp.logs();
        assert!(
            logs.lines()
                .any(|l| l.contains("state file unusable") && l.contains("another configuration")),
            "{logs}"
        );
        assert!(!logs.contains("panicked"));
        assert!(sigterm(&mut exp).success());
        assert_no_secret(&home.data());
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_storage_path_keeps_no_state_and_an_explicit_one_is_used() {
    let (_sim, endpoint) = aliyun_world(1, 1).await;
    let home = Home::new(&aliyun_config(&endpoint, ""));
    let env = [("ALIYUN_SECRET", SECRET)];
    let elsewhere = TempDir::new("state-elsewhere");
    let explicit = elsewhere.path().join("s");
    tokio::task::block_in_place(|| {
        let mut exp = home.spawn_with(&["--storage.path="], &env);
        exp.wait_ready();
        let _ = exp.scrape_until_synced(&ALIYUN, Duration::from_secs(20));
        assert!(sigterm(&mut exp).success());
        assert!(!home.data().exists(), "no state directory was made");
        assert!(!exp.logs().contains("state saved"), "{}", exp.logs());

        let arg = format!("--storage.path={}", explicit.display());
        let mut exp = home.spawn_with(&[&arg], &env);
        exp.wait_ready();
        let _ = exp.scrape_until_synced(&ALIYUN, Duration::from_secs(20));
        assert!(sigterm(&mut exp).success());
        assert!(!home.data().exists());
        let names: Vec<String> = std::fs::read_dir(&explicit)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names
                .iter()
                .any(|n| n.starts_with("cn-") && n.ends_with(".state"))
                && names
                    .iter()
                    .any(|n| n.starts_with("cn-") && n.ends_with(".journal")),
            "{names:?}"
        );
    });
}
