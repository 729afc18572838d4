//! Checks the Prometheus rules, their promtool unit tests, the example configs
//! and the Grafana dashboard.
//!
//! Uses only std (no crate imports), so it builds independently of the library.
//! Needs `promtool` and `amtool` on PATH: run `scripts/install-deps.sh`. A missing
//! tool is a test failure, never a silent skip.

mod common;

use common::tempdir::TempDir;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Runs `tool args…` in `dir`; panics with install instructions if the tool is missing.
fn run(tool: &str, dir: &Path, args: &[&str]) -> Output {
    match Command::new(tool).args(args).current_dir(dir).output() {
        Ok(out) => out,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "`{tool}` is not on PATH; run `scripts/install-deps.sh` \
             (installs the Debian packages prometheus and prometheus-alertmanager)"
        ),
        Err(e) => panic!("cannot run `{tool}`: {e}"),
    }
}

fn text(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_ok(tool: &str, dir: &Path, args: &[&str]) -> String {
    let out = run(tool, dir, args);
    let t = text(&out);
    assert!(
        out.status.success(),
        "`{tool} {}` failed:\n{t}",
        args.join(" ")
    );
    t
}

fn assert_fails(tool: &str, dir: &Path, args: &[&str]) -> String {
    let out = run(tool, dir, args);
    let t = text(&out);
    assert!(
        !out.status.success(),
        "`{tool} {}` unexpectedly succeeded:\n{t}",
        args.join(" ")
    );
    t
}

/// Names of the alerts defined in prometheus/alerts.yml (`- alert: Name` lines).
fn alert_names() -> Vec<String> {
    read("prometheus/alerts.yml")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(|n| n.trim().to_string())
        .collect()
}

#[test]
fn promtool_check_rules() {
    let out = assert_ok(
        "promtool",
        &root(),
        &[
            "check",
            "rules",
            "prometheus/alerts.yml",
            "prometheus/rules.yml",
        ],
    );
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn promtool_unit_tests_pass() {
    let out = assert_ok(
        "promtool",
        &root(),
        &[
            "test",
            "rules",
            "prometheus/alerts_test.yml",
            "prometheus/rules_test.yml",
        ],
    );
    assert!(!out.contains("FAILED"), "{out}");
}

#[test]
fn example_configs_are_valid() {
    // Also loads the rule files referenced from examples/prometheus.yml.
    assert_ok(
        "promtool",
        &root(),
        &["check", "config", "examples/prometheus.yml"],
    );
    assert_ok(
        "amtool",
        &root(),
        &["check-config", "examples/alertmanager.yml"],
    );
}

/// Every alert has a firing and a non-firing unit test case, and a runbook section
/// whose anchor matches its runbook_url.
#[test]
fn every_alert_is_tested_and_documented() {
    let names = alert_names();
    assert!(
        names.len() >= 8,
        "expected at least 8 alerts, found {names:?}"
    );
    let alerts = read("prometheus/alerts.yml");
    let tests = read("prometheus/alerts_test.yml");
    let docs = read("README.md");
    for name in &names {
        assert!(name.starts_with("Cdn"), "alert {name} lacks the Cdn prefix");
        let anchor = format!("README.md#{}", name.to_lowercase());
        assert!(
            alerts.contains(&anchor),
            "alert {name}: no runbook_url ending in {anchor}"
        );
        assert!(
            docs.lines()
                .any(|l| l.trim_start_matches('#').trim() == name && l.starts_with('#')),
            "README.md has no runbook heading `{name}`"
        );
        // Split the test file into alert_rule_test cases for this alert.
        let cases: Vec<&str> = tests
            .split("- eval_time:")
            .skip(1)
            .filter(|c| c.contains(&format!("alertname: {name}\n")))
            .collect();
        assert!(
            cases.iter().any(|c| c.contains("exp_alerts: []")),
            "alert {name}: no test case where it must not fire"
        );
        assert!(
            cases.iter().any(|c| c.contains("exp_labels:")
                && c.contains("severity:")
                && c.contains("summary:")
                && c.contains("description:")),
            "alert {name}: no test case where it fires (with severity, summary, description)"
        );
    }
}

/// Negative test (a): breaking CdnPurgeTaskFailed's expression must make the unit tests fail.
#[test]
fn unit_tests_catch_a_broken_alert_expression() {
    let tmp = TempDir::new("broken-expr");
    let alerts = read("prometheus/alerts.yml");
    let good = r#"task_type=~"refresh_.*",status="failed"}[15m]"#;
    assert!(
        alerts.contains(good),
        "CdnPurgeTaskFailed expression not found in alerts.yml"
    );
    let broken = alerts.replace(
        good,
        r#"task_type=~"refresh_.*",status="nonexistent"}[15m]"#,
    );
    fs::write(tmp.path().join("alerts.yml"), broken).unwrap();
    fs::write(
        tmp.path().join("alerts_test.yml"),
        read("prometheus/alerts_test.yml"),
    )
    .unwrap();

    // The broken file is still valid PromQL, so only the unit tests can catch it.
    assert_ok("promtool", tmp.path(), &["check", "rules", "alerts.yml"]);
    let out = assert_fails(
        "promtool",
        tmp.path(),
        &["test", "rules", "alerts_test.yml"],
    );
    assert!(out.contains("FAILED"), "{out}");
    assert!(
        out.contains("CdnPurgeTaskFailed"),
        "failure should name the alert:\n{out}"
    );
}

/// Negative test (b): a syntactically broken expression must make `promtool check rules` fail.
#[test]
fn check_rules_catches_a_syntax_error() {
    let tmp = TempDir::new("syntax");
    let alerts = read("prometheus/alerts.yml");
    let good = "cdn_vendor_up == 0";
    assert!(
        alerts.contains(good),
        "CdnVendorApiDown expression not found in alerts.yml"
    );
    fs::write(
        tmp.path().join("alerts.yml"),
        alerts.replace(good, "cdn_vendor_up == (0"),
    )
    .unwrap();
    let out = assert_fails("promtool", tmp.path(), &["check", "rules", "alerts.yml"]);
    assert!(
        out.to_lowercase().contains("parse error") || out.contains("FAILED"),
        "{out}"
    );
}

/// The dashboard only refers to data sources through the `${datasource}` variable.
#[test]
fn dashboard_uses_the_datasource_variable() {
    let raw = read("grafana/cdn-tasks.json");
    // Whitespace-free copy: robust against formatting ("uid": "x" vs "uid":"x").
    // `${datasource}` contains a `}`; swap it for a brace-free token before scanning objects.
    let json: String = raw
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .replace("${datasource}", "@DATASOURCE_VAR@");

    assert!(
        json.contains(r#""schemaVersion":38"#) || json.contains(r#""schemaVersion":39"#),
        "schemaVersion must be 38 or 39"
    );
    assert!(
        !json.contains("${DS_"),
        "exported __inputs placeholders (${{DS_…}}) are not allowed"
    );
    assert!(
        json.contains(r#""name":"datasource""#) && json.contains(r#""type":"datasource""#),
        "missing the `datasource` template variable"
    );
    for var in ["vendor", "account", "task_type"] {
        assert!(
            json.contains(&format!(r#""name":"{var}""#)),
            "missing template variable {var}"
        );
    }
    assert!(
        json.matches(r#""allValue":".*""#).count() >= 3,
        "variables need allValue .*"
    );

    // Every "datasource": value must be the object {type prometheus, uid ${datasource}}.
    let mut n = 0;
    for (pos, _) in json.match_indices(r#""datasource":"#) {
        let rest = &json[pos + r#""datasource":"#.len()..];
        assert!(
            rest.starts_with('{'),
            "datasource given by name, not by variable: {}",
            &rest[..rest.len().min(60)]
        );
        let obj = &rest[..rest.find('}').expect("unterminated datasource object") + 1];
        assert!(
            obj.contains(r#""uid":"@DATASOURCE_VAR@""#),
            "datasource with a hard-coded uid: {obj}"
        );
        assert!(
            obj.contains(r#""type":"prometheus""#),
            "datasource of unexpected type: {obj}"
        );
        n += 1;
    }
    assert!(
        n > 10,
        "expected a datasource on every panel and target, found {n}"
    );

    // No other uid than ${datasource} and the dashboard's own uid.
    for (pos, _) in json.match_indices(r#""uid":""#) {
        let rest = &json[pos + r#""uid":""#.len()..];
        let value = &rest[..rest.find('"').expect("unterminated uid")];
        assert!(
            value == "@DATASOURCE_VAR@" || value == "cdn-task-exporter",
            "unexpected uid {value:?} (data sources must use ${{datasource}})"
        );
    }

    // Numeric panel ids are unique; every panel has a description.
    let mut ids = Vec::new();
    for (pos, _) in json.match_indices(r#""id":"#) {
        let digits: String = json[pos + 5..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        if !digits.is_empty() {
            ids.push(digits);
        }
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(ids.len(), unique.len(), "duplicate panel ids: {ids:?}");
    let panels = json.matches(r#""gridPos":"#).count();
    assert!(
        panels > 0 && ids.len() == panels,
        "{} ids for {panels} panels",
        ids.len()
    );
    assert!(
        json.matches(r#""description":"#).count() > panels,
        "every panel needs a description"
    );
}

/// Runs scripts/gen-rules.sh into `out` with exactly the settings in `env`.
fn gen_rules(out: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(root().join("scripts/gen-rules.sh")).arg(out);
    for var in [
        "RUNBOOK_URL_PATTERN",
        "DASHBOARD_RUNBOOK_URL",
        "PURGE_FAILED_MIN_COUNT",
        "PURGE_FAILED_MIN_RATIO",
        "TASK_STUCK_AGE",
        "TASK_GIVE_UP_AGE",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("run scripts/gen-rules.sh")
}

/// The shipped alerts, their unit tests and the dashboard are exactly what the
/// generator writes from mixin/ with its defaults.
#[test]
fn shipped_rules_equal_the_generated_ones() {
    let tmp = TempDir::new("gen-default");
    let out = gen_rules(tmp.path(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    for (generated, shipped) in [
        ("alerts.yml", "prometheus/alerts.yml"),
        ("alerts_test.yml", "prometheus/alerts_test.yml"),
        ("cdn-tasks.json", "grafana/cdn-tasks.json"),
    ] {
        let g = fs::read_to_string(tmp.path().join(generated)).unwrap();
        assert!(
            g == read(shipped),
            "{shipped} differs from what scripts/gen-rules.sh generates from mixin/: \
             edit the template and run scripts/gen-rules.sh"
        );
    }
}

/// One setting moves every runbook link (alerts and dashboard); the tuned
/// thresholds behave as their own promtool tests say.
#[test]
fn tuned_rules_follow_their_settings() {
    let tmp = TempDir::new("gen-tuned");
    let out = gen_rules(
        tmp.path(),
        &[
            (
                "RUNBOOK_URL_PATTERN",
                "https://wiki.example.com/runbooks/%s.html",
            ),
            ("PURGE_FAILED_MIN_COUNT", "3"),
            ("PURGE_FAILED_MIN_RATIO", "0.1"),
            ("TASK_STUCK_AGE", "1800"),
            ("TASK_GIVE_UP_AGE", "86400"),
            (
                "TASKS_URL_BASE",
                "https://exporters.example.com/{{ $labels.instance }}/",
            ),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let alerts = fs::read_to_string(tmp.path().join("alerts.yml")).unwrap();
    assert_eq!(
        alerts
            .matches("tasks_url: 'https://exporters.example.com/{{ $labels.instance }}/tasks?")
            .count(),
        3,
        "{alerts}"
    );
    let urls: Vec<&str> = alerts
        .lines()
        .filter_map(|l| l.trim().strip_prefix("runbook_url:"))
        .map(str::trim)
        .collect();
    assert_eq!(urls.len(), alert_names().len(), "{alerts}");
    for (url, name) in urls.iter().zip(alert_names()) {
        assert_eq!(
            *url,
            format!(
                "https://wiki.example.com/runbooks/{}.html",
                name.to_lowercase()
            )
        );
    }
    assert!(!alerts.contains("github.com"), "{alerts}");
    let dash = fs::read_to_string(tmp.path().join("cdn-tasks.json")).unwrap();
    assert!(
        dash.contains(r#""url": "https://wiki.example.com/runbooks/alerts-and-runbooks.html""#),
        "dashboard link not moved"
    );
    assert!(!dash.contains("github.com"));
    fs::write(
        tmp.path().join("alerts_tuned_test.yml"),
        read("testdata/rules/alerts_tuned_test.yml"),
    )
    .unwrap();
    assert_ok("promtool", tmp.path(), &["check", "rules", "alerts.yml"]);
    let out = assert_ok(
        "promtool",
        tmp.path(),
        &["test", "rules", "alerts_tuned_test.yml"],
    );
    assert!(out.contains("SUCCESS"), "{out}");
    // The tuned tests are not vacuous: the default rules fail them (the default
    // alerts on the single aliyun failure and at 30m-old tasks never).
    let defaults = TempDir::new("gen-default-vs-tuned");
    assert!(gen_rules(
        defaults.path(),
        &[(
            "RUNBOOK_URL_PATTERN",
            "https://wiki.example.com/runbooks/%s.html"
        )]
    )
    .status
    .success());
    fs::write(
        defaults.path().join("alerts_tuned_test.yml"),
        read("testdata/rules/alerts_tuned_test.yml"),
    )
    .unwrap();
    let out = assert_fails(
        "promtool",
        defaults.path(),
        &["test", "rules", "alerts_tuned_test.yml"],
    );
    assert!(
        out.contains("CdnPurgeTaskFailed") && out.contains("CdnTaskStuck"),
        "{out}"
    );
}

/// Settings the rules cannot honour are refused, naming the variable.
#[test]
fn generator_refuses_bad_settings() {
    for (var, value) in [
        ("RUNBOOK_URL_PATTERN", "https://wiki.example.com/runbooks"),
        ("RUNBOOK_URL_PATTERN", "https://a|b/%s"),
        ("PURGE_FAILED_MIN_COUNT", "0"),
        ("PURGE_FAILED_MIN_RATIO", "1.5"),
        ("TASK_STUCK_AGE", "1234"),
        ("TASK_STUCK_AGE", "86400"),
    ] {
        let tmp = TempDir::new("gen-bad");
        let out = gen_rules(tmp.path(), &[(var, value)]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {t}");
        assert!(t.contains(var), "{var}={value}: {t}");
        assert!(
            !tmp.path().join("alerts.yml").exists(),
            "{var}={value}: wrote output"
        );
    }
}

/// The failure panel links to the exporter's /tasks page for the series'
/// instance, vendor, account and task type (issue 14), and its query keeps
/// the instance label the link needs.
#[test]
fn failed_purges_panel_links_to_the_tasks_page() {
    let dash: serde_json::Value = serde_json::from_str(&read("grafana/cdn-tasks.json")).unwrap();
    let panel = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["title"] == "Failed purges")
        .expect("a Failed purges panel");
    let url = panel["fieldConfig"]["defaults"]["links"][0]["url"]
        .as_str()
        .unwrap();
    assert_eq!(
        url,
        "http://${__field.labels.instance}/tasks?vendor=${__field.labels.vendor}&account=${__field.labels.account}&task_type=${__field.labels.task_type}&status=failed"
    );
    let expr = panel["targets"][0]["expr"].as_str().unwrap();
    assert!(
        expr.starts_with("sum by (instance, vendor, account, task_type)"),
        "{expr}"
    );
}
