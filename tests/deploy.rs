//! Checks the deployment files that cannot be run here (no Docker engine):
//! the compose stack's Prometheus config passes promtool with the rule files
//! it mounts, every file compose mounts exists, the documented ports are
//! published, and the Dockerfile keeps its promises.
//!
//! Needs `promtool` on PATH (`scripts/install-deps.sh`).

mod common;

use common::{repo, tempdir::TempDir};
use std::process::Command;

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

#[test]
fn compose_prometheus_config_passes_promtool_with_the_mounted_rules() {
    // Inside compose the rules are mounted at /etc/prometheus/rules/; point
    // those paths at the repository's files.
    let dir = TempDir::new("deploy");
    let rules = repo("prometheus").display().to_string();
    let config = read("deploy/prometheus.yml").replace("/etc/prometheus/rules", &rules);
    assert!(config.contains(&format!("{rules}/alerts.yml")));
    assert!(config.contains(&format!("{rules}/rules.yml")));
    let file = dir.path().join("prometheus.yml");
    std::fs::write(&file, config).unwrap();
    let out = Command::new("promtool")
        .args(["check", "config"])
        .arg(&file)
        .output()
        .expect("promtool is not on PATH; run scripts/install-deps.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("SUCCESS: 2 rule files found"), "{text}");
}

#[test]
fn compose_mounts_existing_files_and_publishes_the_documented_ports() {
    let compose: serde_yaml::Value = serde_yaml::from_str(&read("compose.yaml")).unwrap();
    let services = compose["services"].as_mapping().unwrap();
    let mut ports = Vec::new();
    for (name, service) in services {
        for v in service["volumes"].as_sequence().into_iter().flatten() {
            let v = v.as_str().unwrap();
            if let Some(local) = v.strip_prefix("./") {
                let local = local.split(':').next().unwrap();
                assert!(repo(local).exists(), "{name:?} mounts missing {local}");
            }
        }
        for p in service["ports"].as_sequence().into_iter().flatten() {
            ports.push(p.as_str().unwrap().to_owned());
        }
    }
    for p in ["10052:10052", "9090:9090", "9093:9093", "3000:3000"] {
        assert!(ports.iter().any(|x| x == p), "{p} not published: {ports:?}");
    }
    assert_eq!(
        compose["services"]["exporter"]["command"][0].as_str(),
        Some("demo"),
        "the stack runs the demo by default"
    );
    assert_eq!(
        compose["services"]["exporter"]["build"]["args"]["FEATURES"].as_str(),
        Some("sim"),
        "the demo image is built with the simulated vendors"
    );
    // The Grafana datasource reaches Prometheus by its service name.
    assert!(read("grafana/provisioning/datasources/prometheus.yml")
        .contains("url: http://prometheus:9090"));
    assert!(read("deploy/prometheus.yml").contains("exporter:10052"));
    assert!(read("deploy/prometheus.yml").contains("alertmanager:9093"));
}

#[test]
fn dockerfile_builds_on_rust_and_runs_non_root_on_the_exporter_port() {
    let d = read("Dockerfile");
    for needle in [
        "FROM rust:1-bookworm AS build",
        "FROM gcr.io/distroless/cc-debian12:nonroot",
        "USER nonroot:nonroot",
        "EXPOSE 10052",
        "ENTRYPOINT [\"/usr/local/bin/cdn-task-exporter\"]",
        "--config.file=/etc/cdn-task-exporter/config.yml",
        // The state directory: writable by nonroot, a volume.
        "--storage.path=/var/lib/cdn-task-exporter",
        "COPY --from=build --chown=65532:65532 /state /var/lib/cdn-task-exporter",
        "VOLUME [\"/var/lib/cdn-task-exporter\"]",
        "ARG FEATURES=\"\"",
        "--features \"${FEATURES}\"",
    ] {
        assert!(d.contains(needle), "Dockerfile lacks {needle:?}");
    }
    // Everything the build stage copies must survive .dockerignore.
    let ignored = read(".dockerignore");
    for copied in ["src/", "benches/", "Cargo.toml", "Cargo.lock", "build.rs"] {
        assert!(
            !ignored.lines().any(|l| l.trim() == copied),
            "{copied} is ignored"
        );
    }
}
