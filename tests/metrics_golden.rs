//! The whole `/metrics` exposition, byte for byte, against a golden file.
//!
//! A fixed collector state (paused tokio time, a fixed clock, four accounts
//! of the testing vendor against one simulator holding a known set of tasks)
//! is rendered and compared with `testdata/metrics/golden.prom`. Any change
//! of a name, HELP text, type, label, value or order fails the test; after an
//! intended change, rewrite the file with
//!
//! ```sh
//! UPDATE_GOLDEN=1 cargo test --test metrics_golden
//! ```
//!
//! and review the diff. Values that cannot be fixed across runs are masked
//! (the build's version/revision/rustc and the `process_*` sample values),
//! but their series stay in the file.

use cdn_task_exporter::app;
use cdn_task_exporter::clock::{SharedClock, TokioClock};
use cdn_task_exporter::collector::Collector;
use cdn_task_exporter::config;
use cdn_task_exporter::metrics;
use cdn_task_exporter::sim::testing::TestingSim;
use cdn_task_exporter::sim::{RouterTransport, SimTask, World};
use cdn_task_exporter::task::TaskType;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

const CONFIG: &str = r#"accounts:
  - name: edge
    vendor: testing
    endpoint: http://sim
    credentials: { id: edge, secret: tok }
    min_refresh_interval: 60s
  - name: 'origin "eu"\west'
    vendor: testing
    endpoint: http://sim
    credentials: { id: origin, secret: tok }
    task_types: [prefetch, refresh_file]
    min_refresh_interval: 60s
  - name: locked
    vendor: testing
    endpoint: http://sim
    credentials: { id: locked, secret: wrong }
    task_types: [refresh_dir]
    retries: 0
  - name: warming
    vendor: testing
    endpoint: http://sim
    credentials: { id: warming, secret: tok }
    options: { max_span: 1h }
    rate_budget: { ListTasks: 2/1m }
    max_permit_wait: 1s
"#;

/// Per task type: one task of each life the exporter distinguishes.
fn tasks() -> Vec<SimTask> {
    let mut out = Vec::new();
    for (i, t) in TaskType::ALL.iter().enumerate() {
        let i = i as i64;
        let task = |id: &str, created: i64, queued: i64, runs: Option<i64>, fails: bool| SimTask {
            id: format!("{t}-{id}"),
            task_type: *t,
            created_at: created,
            domain: "example.com".into(),
            urls: (0..=i + 1)
                .map(|u| format!("https://example.com/{u}"))
                .collect(),
            queued_for: queued,
            runs_for: runs,
            fails,
        };
        // Finished before the first sync: baseline, never counted.
        out.push(task("baseline", T0 - 600, 0, Some(60), false));
        // Running at the first sync, succeeds 100 s later (200 s in all).
        out.push(task("slow", T0 - 100, 0, Some(200 + 10 * i), false));
        // Running at the first sync, fails 50 s later.
        out.push(task("failing", T0 - 50, 0, Some(100), true));
        // Queued for hours.
        out.push(task("queued", T0 - 30, 10_000, Some(60), false));
        // Stalled: runs forever (the oldest unfinished one).
        out.push(task("stalled", T0 - 3_000 - 60 * i, 0, None, false));
        // Created after the first sync and finished by the second.
        out.push(task("new", T0 + 30, 0, Some(20), false));
    }
    out
}

/// Three refreshes and a cached scrape on paused time, then one render.
async fn exposition() -> String {
    let clock: SharedClock = Arc::new(TokioClock::starting_at(T0));
    let world = World::new(clock.clone());
    for t in tasks() {
        world.add(t);
    }
    let sim = TestingSim::new(world, "tok");
    let cfg = config::parse(CONFIG, "golden.yml", &|_| None, &|_| Err("no files".into()))
        .expect("valid golden config");
    let c: Collector = app::collector(
        &cfg,
        Arc::new(RouterTransport::new(sim.clone().router())),
        clock.clone(),
    );
    for step in [0, 300, 20] {
        tokio::time::advance(Duration::from_secs(step)).await;
        c.collect(Instant::now() + Duration::from_secs(9)).await;
    }
    tokio::time::advance(Duration::from_secs(5)).await;
    metrics::render(&c, clock.unix())
}

/// Masks what differs between builds and runs, keeping every series.
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line.starts_with("cdn_exporter_build_info{") {
            let line = line
                .replacen(
                    &format!("version=\"{}\"", env!("CARGO_PKG_VERSION")),
                    "version=\"<version>\"",
                    1,
                )
                .replacen(
                    &format!("revision=\"{}\"", env!("CDN_EXPORTER_REVISION")),
                    "revision=\"<revision>\"",
                    1,
                )
                .replacen(
                    &format!("rustc=\"{}\"", env!("CDN_EXPORTER_RUSTC")),
                    "rustc=\"<rustc>\"",
                    1,
                );
            out.push_str(&line);
        } else if line.starts_with("process_") {
            let (series, _) = line.rsplit_once(' ').expect("a sample line");
            out.push_str(series);
            out.push_str(" <value>");
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/metrics/golden.prom")
}

#[tokio::test(start_paused = true)]
async fn exposition_equals_the_golden_file() {
    let got = normalize(&exposition().await);
    let path = golden_path();
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &got).unwrap();
        eprintln!("wrote {}", path.display());
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with UPDATE_GOLDEN=1 cargo test --test metrics_golden",
            path.display()
        )
    });
    if got != want {
        let (n, g, w) = got
            .lines()
            .zip(want.lines())
            .enumerate()
            .find(|(_, (g, w))| g != w)
            .map(|(n, (g, w))| (n + 1, g, w))
            .unwrap_or((
                got.lines().count().min(want.lines().count()) + 1,
                "<end>",
                "<end>",
            ));
        panic!(
            "the exposition differs from {} at line {n}:\n  got:  {g}\n  want: {w}\n\
             ({} lines got, {} lines want). If the change is intended, rerun with \
             UPDATE_GOLDEN=1 and review the diff.",
            path.display(),
            got.lines().count(),
            want.lines().count()
        );
    }
}

/// The state is fixed: two runs in one process render the same text, so the
/// golden comparison is about the renderer, not about luck.
#[tokio::test(start_paused = true)]
async fn the_golden_state_is_deterministic() {
    let a = normalize(&exposition().await);
    let b = normalize(&exposition().await);
    assert_eq!(a, b);
    // The scenario reaches the states the file is meant to pin down.
    for needle in [
        "cdn_vendor_up{vendor=\"testing\",account=\"edge\"} 1",
        "cdn_vendor_up{vendor=\"testing\",account=\"locked\"} 0",
        "account=\"origin \\\"eu\\\"\\\\west\"",
        "api=\"ListTasks\",outcome=\"auth_error\"} 2",
        "cdn_tasks_finished_total{vendor=\"testing\",account=\"edge\",task_type=\"prefetch\",status=\"failed\"} 1",
        "cdn_tasks_finished_total{vendor=\"testing\",account=\"edge\",task_type=\"prefetch\",status=\"success\"} 2",
        "reason=\"fresh\"} 1",
    ] {
        assert!(a.contains(needle), "missing {needle:?} in\n{a}");
    }
}

/// `name{a="x",b="y"} value` → (name, label names).
fn parse_sample(line: &str) -> (&str, Vec<String>) {
    let Some((name, rest)) = line.split_once('{') else {
        return (line.split(' ').next().unwrap(), Vec::new());
    };
    let mut labels = Vec::new();
    let mut chars = rest.chars();
    let mut key = String::new();
    while let Some(c) = chars.next() {
        match c {
            '=' => {
                assert_eq!(chars.next(), Some('"'), "{line}");
                // The value, with escapes.
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                labels.push(std::mem::take(&mut key));
            }
            ',' => {}
            '}' => break,
            c => key.push(c),
        }
    }
    (name, labels)
}

/// The table is the exposition: every entry in order, with its type and
/// HELP, and every sample carrying exactly the labels the entry declares.
#[tokio::test(start_paused = true)]
async fn the_exposition_follows_the_family_table() {
    let text = exposition().await;
    let mut families = metrics::FAMILIES.iter();
    let mut current: Option<&metrics::Family> = None;
    let mut samples = 0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some(f) = current {
                assert!(samples > 0, "{} has no sample in the golden state", f.name);
            }
            let f = families.next().expect("a family the table does not list");
            assert_eq!(rest, format!("{} {}", f.name, f.help));
            current = Some(f);
            samples = 0;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let f = current.unwrap();
            assert_eq!(rest, format!("{} {}", f.name, f.kind.as_str()));
        } else {
            let f = current.expect("a sample before any family");
            let (name, labels) = parse_sample(line);
            let mut want: Vec<String> = f.labels.iter().map(|l| l.to_string()).collect();
            let suffix = name.strip_prefix(f.name).unwrap_or_else(|| {
                panic!("{name} inside family {}", f.name);
            });
            match (f.kind, suffix) {
                (metrics::Kind::Histogram, "_bucket") => want.push("le".into()),
                (metrics::Kind::Histogram, "_sum" | "_count") => {}
                (_, "") => {}
                _ => panic!("{name} inside family {}", f.name),
            }
            assert_eq!(labels, want, "{line}");
            samples += 1;
        }
    }
    assert!(samples > 0);
    assert!(
        families.next().is_none(),
        "a family of the table was not written"
    );
}

/// README's metric reference lists every family with its type and labels.
#[test]
fn readme_documents_every_family_with_its_labels() {
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    let section = readme
        .split("## Metrics reference")
        .nth(1)
        .expect("README has a Metrics reference")
        .split("\n## ")
        .next()
        .unwrap();
    for f in &metrics::FAMILIES {
        let row = section
            .lines()
            .find(|l| {
                l.starts_with("| ")
                    && l.split('|')
                        .nth(1)
                        .is_some_and(|c| c.split(',').any(|n| n.trim() == format!("`{}`", f.name)))
            })
            .unwrap_or_else(|| panic!("README's metric table has no row for {}", f.name));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[2], f.kind.as_str(), "type of {} in README", f.name);
        // Label names, without the notes in parentheses after some.
        let mut names = String::new();
        let mut depth = 0;
        for c in cells[3].chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                c if depth == 0 => names.push(c),
                _ => {}
            }
        }
        let labels: Vec<&str> = names
            .split(',')
            .map(|l| l.split_whitespace().next().unwrap_or(""))
            .filter(|l| !l.is_empty() && *l != "—")
            .collect();
        assert_eq!(labels, f.labels, "labels of {} in README", f.name);
        assert!(!cells[4].is_empty(), "meaning of {} in README", f.name);
    }
}
