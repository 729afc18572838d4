//! The shipped docs are written for users, and every shipped example config
//! passes `check-config` with exactly the variables its deployment sets.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

/// Phrases that belong to notes written while building the project, not to
/// documentation for its users.
const BUILD_NOTE_PHRASES: &[&str] = &[
    "seed doc",
    "the seed",
    "seed's",
    "vendors.md",
    "the issue",
    "i chose",
    "i followed",
    "build environment",
    "register it",
    "for the readme",
    "suggested section",
    "maintained on main",
    "the lead",
    "this project's dev",
    "proposed (not implemented)",
    "§",
];

/// Every build-note phrase in `text`, as `name:line: phrase`.
fn build_notes(name: &str, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let lower = line.to_lowercase();
        for p in BUILD_NOTE_PHRASES {
            if lower.contains(p) {
                found.push(format!("{name}:{}: {p:?} in {line:?}", i + 1));
            }
        }
        // A reference to an internal numbered source file, e.g. `002_ucloud.txt`.
        let b = lower.as_bytes();
        for (j, _) in lower.match_indices(".txt") {
            let stem: Vec<u8> = b[..j]
                .iter()
                .rev()
                .take_while(|c| !c.is_ascii_whitespace() && **c != b'`' && **c != b'(')
                .copied()
                .collect();
            let stem: Vec<u8> = stem.into_iter().rev().collect();
            if stem.len() > 4 && stem[..3].iter().all(u8::is_ascii_digit) && stem[3] == b'_' {
                found.push(format!(
                    "{name}:{}: numbered source file in {line:?}",
                    i + 1
                ));
            }
        }
    }
    found
}

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            markdown_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "md") {
            out.push(p);
        }
    }
}

#[test]
fn user_docs_contain_no_build_notes() {
    let mut files = vec![
        repo("README.md"),
        repo("CHANGELOG.md"),
        repo("packaging/cdn-task-exporter.yml"),
    ];
    markdown_files(&repo("docs"), &mut files);
    assert!(files.len() >= 6, "{files:?}");
    let mut found = Vec::new();
    for f in &files {
        let name = f.strip_prefix(repo("")).unwrap().display().to_string();
        found.extend(build_notes(&name, &std::fs::read_to_string(f).unwrap()));
    }
    assert!(
        found.is_empty(),
        "build notes in user docs:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_build_note_check_finds_what_it_looks_for() {
    for bad in [
        "the wiki page could not be read from this build environment, so register it",
        "## For the README",
        "Suggested section (the README is maintained on main):",
        "The seed doc (`002_ucloud_prefetch.txt`) covers only prefetch.",
        "vendors.md §5 and the issue add `Pending`.",
        "I chose POST form, like the SDK.",
    ] {
        assert!(!build_notes("t", bad).is_empty(), "not caught: {bad}");
    }
    assert!(build_notes(
        "t",
        "Volcengine's API reference pages; see 2024_report.txt? no: 20_x.txt"
    )
    .is_empty());
}

/// `${NAME}` references in a config, comments left out.
fn env_refs(config: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let code: String = config
        .lines()
        .map(|l| l.split(" #").next().unwrap_or(""))
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let mut rest = code.as_str();
    while let Some(i) = rest.find("${") {
        let tail = &rest[i + 2..];
        let end = tail.find('}').expect("unterminated ${");
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

/// Runs `check-config` on `config` with only `vars` in the environment.
fn check_config(config: &Path, vars: &BTreeSet<String>) -> (bool, String) {
    let out = Command::new(common::binary())
        .arg("--config.file")
        .arg(config)
        .arg("check-config")
        .env_clear()
        .envs(vars.iter().map(|v| (v.as_str(), "set-by-test")))
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `config` passes with exactly `vars` (which must be the variables it
/// refers to), and fails naming the variable when any one is missing.
fn assert_passes_with_exactly(what: &str, config: &Path, vars: &BTreeSet<String>) {
    let text = std::fs::read_to_string(config).unwrap();
    assert_eq!(
        &env_refs(&text),
        vars,
        "{what}: the variables the config refers to differ from those its deployment sets"
    );
    let (ok, out) = check_config(config, vars);
    assert!(ok, "{what}: check-config failed with {vars:?}:\n{out}");
    for missing in vars {
        let mut fewer = vars.clone();
        fewer.remove(missing);
        let (ok, out) = check_config(config, &fewer);
        assert!(
            !ok && out.contains(missing.as_str()),
            "{what}: without {missing}:\n{out}"
        );
    }
}

/// The `environment:` list of the exporter service in deploy/compose.real.yaml.
fn compose_environment() -> BTreeSet<String> {
    let text = read("deploy/compose.real.yaml");
    let block = &text[text
        .find("    environment:")
        .expect("environment: in compose.real.yaml")..];
    block
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("      "))
        .filter_map(|l| l.trim().strip_prefix("- "))
        .map(|v| v.split('=').next().unwrap().trim().to_string())
        .collect()
}

/// The `-e NAME` flags of the `docker run` example in docs/deploy.md.
fn deploy_doc_environment() -> BTreeSet<String> {
    let text = read("docs/deploy.md");
    let mut out = BTreeSet::new();
    for l in text.lines().filter(|l| l.trim_start().starts_with("-e ")) {
        for w in l.split_whitespace().collect::<Vec<_>>().windows(2) {
            if w[0] == "-e" {
                out.insert(w[1].to_string());
            }
        }
    }
    out
}

#[test]
fn the_example_config_passes_with_the_variables_compose_and_docs_set() {
    let compose = compose_environment();
    assert_eq!(
        compose,
        deploy_doc_environment(),
        "deploy/compose.real.yaml and docs/deploy.md pass different variables"
    );
    assert_eq!(compose.len(), 4, "{compose:?}");
    assert_passes_with_exactly(
        "examples/cdn-task-exporter.yml with deploy/compose.real.yaml",
        &repo("examples/cdn-task-exporter.yml"),
        &compose,
    );
}

#[test]
fn the_packaged_config_passes_with_the_variables_of_the_environment_file() {
    let vars: BTreeSet<String> = read("packaging/default")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_string()))
        .filter(|k| k != "CDN_TASK_EXPORTER_ARGS")
        .collect();
    assert_passes_with_exactly(
        "packaging/cdn-task-exporter.yml with packaging/default",
        &repo("packaging/cdn-task-exporter.yml"),
        &vars,
    );
    // The unit reads that file and passes the flags variable.
    let unit = read("packaging/cdn-task-exporter.service");
    assert!(unit.contains("EnvironmentFile=-/etc/default/cdn-task-exporter"));
    assert!(unit.contains("$CDN_TASK_EXPORTER_ARGS"));
}

/// README's quick start: each vendor's config block passes `check-config` with
/// exactly the variables the `export` lines after it set.
#[test]
fn the_readme_quick_start_configs_pass_with_their_exports() {
    let readme = read("README.md");
    let start = readme
        .find("## Quick start")
        .expect("a Quick start section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let blocks: Vec<(&str, &str)> = section
        .split("```")
        .skip(1)
        .step_by(2)
        .filter_map(|b| b.split_once('\n'))
        .collect();
    let dir = common::tempdir::TempDir::new("quickstart");
    let mut vendors = BTreeSet::new();
    for (i, (lang, body)) in blocks.iter().enumerate() {
        if *lang != "yaml" || !body.contains("accounts:") {
            continue;
        }
        let exports: BTreeSet<String> = blocks
            .get(i + 1)
            .filter(|(l, _)| *l == "sh")
            .map(|(_, b)| {
                b.lines()
                    .filter_map(|l| l.trim().strip_prefix("export "))
                    .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let vendor = body
            .lines()
            .find_map(|l| l.trim().strip_prefix("vendor: "))
            .unwrap()
            .to_string();
        let path = dir.path().join(format!("{vendor}.yml"));
        std::fs::write(&path, body).unwrap();
        assert_passes_with_exactly(&format!("README quick start ({vendor})"), &path, &exports);
        vendors.insert(vendor);
    }
    assert_eq!(
        vendors.into_iter().collect::<Vec<_>>(),
        {
            let mut all: Vec<&str> = cdn_task_exporter::vendors::VendorKind::real()
                .map(|k| k.as_str())
                .collect();
            all.sort();
            all
        },
        "one quick start per vendor of the registry"
    );
}
