//! Replays the committed fuzz corpus on stable, on every `cargo test`:
//! every seed in `fuzz/corpus/<target>/` and every crash input ever found in
//! `fuzz/crashes/<target>/`, through the same entry points the `cargo fuzz`
//! targets call (`cdn_task_exporter::fuzzing`). An entry point panics when a
//! parser panics or breaks a property it checks, so a regression of any fixed
//! crash fails this test.

use cdn_task_exporter::fuzzing;
use cdn_task_exporter::vendors::VendorKind;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

type Entry = fn(&[u8]);
/// A target's entry point.
type Target = Box<dyn Fn(&[u8])>;

/// The targets that are not a vendor's response parser.
const OTHER_TARGETS: &[(&str, Entry)] = &[
    ("config", fuzzing::config),
    ("web_config", fuzzing::web_config),
    ("headers_time", fuzzing::headers_time),
];

/// Every target: one per vendor of the registry (named after it) and the
/// others, so a new vendor without a corpus fails here.
fn targets() -> Vec<(String, Target)> {
    let mut all: Vec<(String, Target)> = VendorKind::real()
        .map(|kind| {
            let entry: Target = Box::new(move |d| fuzzing::vendor_parse(kind, d));
            (kind.as_str().to_owned(), entry)
        })
        .collect();
    for (name, entry) in OTHER_TARGETS {
        all.push((name.to_string(), Box::new(*entry)));
    }
    all
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

/// Runs every file of `dir` through `entry`; returns (files run, failures).
fn replay(dir: &Path, entry: &dyn Fn(&[u8])) -> (usize, Vec<String>) {
    let mut failures = Vec::new();
    let all = files(dir);
    for path in &all {
        let data = std::fs::read(path).expect("readable corpus file");
        if catch_unwind(AssertUnwindSafe(|| entry(&data))).is_err() {
            failures.push(path.display().to_string());
        }
    }
    (all.len(), failures)
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

#[test]
fn every_target_has_a_committed_seed_corpus() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for (target, _) in targets() {
        assert!(
            fuzz_dir()
                .join(format!("fuzz_targets/{target}.rs"))
                .is_file()
                && manifest.contains(&format!("name = \"{target}\"")),
            "fuzz/fuzz_targets/{target}.rs and its [[bin]] in fuzz/Cargo.toml"
        );
        let n = files(&fuzz_dir().join("corpus").join(&target)).len();
        assert!(
            (5..=100).contains(&n),
            "fuzz/corpus/{target} holds {n} files; expected a small seed corpus"
        );
    }
}

#[test]
fn committed_corpus_and_crash_inputs_replay_without_panic() {
    let mut failures = Vec::new();
    let mut crashes = 0;
    for (target, entry) in targets() {
        let (_, f) = replay(&fuzz_dir().join("corpus").join(&target), &entry);
        failures.extend(f);
        let (n, f) = replay(&fuzz_dir().join("crashes").join(&target), &entry);
        crashes += n;
        failures.extend(f);
    }
    assert!(
        crashes > 0,
        "no crash inputs found under fuzz/crashes: wrong path?"
    );
    assert!(
        failures.is_empty(),
        "{} input(s) panicked (see the messages above):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
