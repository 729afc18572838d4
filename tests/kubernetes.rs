//! deploy/kubernetes as Kubernetes will see it: `kubectl kustomize` renders
//! it (no cluster), `kubernetes-validate --strict` checks the built-in kinds
//! against the API schemas, the Prometheus Operator kinds are checked by the
//! JSON-schema validators of the npm package in tools/crd-validate, the
//! generated rules and dashboard are in step with prometheus/ and grafana/,
//! and the ConfigMap's config passes `check-config` as every pod would run it.
//!
//! Needs kubectl, .tools/venv (kubernetes-validate) and .tools/crd-validate:
//! `scripts/install-deps.sh` installs them. Nothing here is skipped when a
//! tool is missing: the test fails and says how to install it.

mod common;

use common::{binary, repo, tempdir::TempDir};
use serde_yaml::Value;
use std::io::Write;
use std::process::{Command, Stdio};

fn kubectl() -> Command {
    let venv = repo(".tools/venv/bin/kubectl");
    let has_path = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_path || !venv.exists() {
        Command::new("kubectl")
    } else {
        Command::new(venv)
    }
}

/// `kubectl kustomize deploy/kubernetes`, as text.
fn render_text() -> String {
    let out = kubectl()
        .arg("kustomize")
        .arg(repo("deploy/kubernetes"))
        .output()
        .expect("kubectl is not installed; run scripts/install-deps.sh");
    assert!(
        out.status.success(),
        "kubectl kustomize failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The rendered documents.
fn render() -> Vec<Value> {
    docs(&render_text())
}

fn docs(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn to_text(docs: &[Value]) -> String {
    docs.iter()
        .map(|d| serde_yaml::to_string(d).unwrap())
        .collect::<Vec<_>>()
        .join("---\n")
}

fn kind(d: &Value) -> &str {
    d["kind"].as_str().unwrap_or_default()
}

fn is_operator(d: &Value) -> bool {
    d["apiVersion"] == "monitoring.coreos.com/v1"
}

fn find<'a>(docs: &'a [Value], k: &str, name_prefix: &str) -> &'a Value {
    docs.iter()
        .find(|d| {
            kind(d) == k
                && d["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(name_prefix))
        })
        .unwrap_or_else(|| panic!("no {k} {name_prefix}* in the rendered manifests"))
}

/// Runs kubernetes-validate --strict on `text`: (success, output).
fn kubernetes_validate(text: &str) -> (bool, String) {
    let dir = TempDir::new("k8s-validate");
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, text).unwrap();
    let tool = repo(".tools/venv/bin/kubernetes-validate");
    let out = Command::new(&tool)
        .arg("--strict")
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{} cannot run ({e}); run scripts/install-deps.sh",
                tool.display()
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Runs tools/crd-validate on the Prometheus Operator documents: (success, output).
fn operator_validate(docs: &[&Value]) -> (bool, String) {
    let modules = repo(".tools/crd-validate/node_modules");
    assert!(
        modules
            .join("@kubernetes-models/prometheus-operator")
            .is_dir(),
        "{} is missing; run scripts/install-deps.sh",
        modules.display()
    );
    let mut child = Command::new("node")
        .arg(repo("tools/crd-validate/validate.mjs"))
        .arg(&modules)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node is not installed; run scripts/install-deps.sh");
    let json = serde_json::to_vec(&docs).unwrap();
    child.stdin.take().unwrap().write_all(&json).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn built_in_kinds_pass_strict_validation_and_a_typo_fails_it() {
    let text = render_text();
    let all = docs(&text);
    let (ok, out) = kubernetes_validate(&text);
    assert!(ok, "{out}");
    let built_in: Vec<&Value> = all.iter().filter(|d| !is_operator(d)).collect();
    let passed = out
        .lines()
        .filter(|l| l.contains(" passed for resource "))
        .count();
    assert_eq!(
        passed,
        built_in.len(),
        "every built-in kind validated: {out}"
    );
    for k in [
        "StatefulSet",
        "Service",
        "ConfigMap",
        "Secret",
        "NetworkPolicy",
    ] {
        assert!(built_in.iter().any(|d| kind(d) == k), "no {k}");
    }

    // The validator can fail: an unknown field in the pod spec is refused.
    let mut bad = all.clone();
    let sts = bad.iter_mut().find(|d| kind(d) == "StatefulSet").unwrap();
    sts["spec"]["template"]["spec"]["containers"][0]["readinesProbe"]["httpGett"] =
        sts["spec"]["template"]["spec"]["containers"][0]["readinesProbe"]["httpGet"].clone();
    let (ok, out) = kubernetes_validate(&to_text(&bad));
    assert!(!ok, "a misspelt field passed: {out}");
}

#[test]
fn operator_kinds_pass_their_schemas_and_a_wrong_type_fails_them() {
    let all = render();
    let operator: Vec<&Value> = all.iter().filter(|d| is_operator(d)).collect();
    let kinds: Vec<&str> = operator.iter().map(|d| kind(d)).collect();
    assert_eq!(kinds, ["PodMonitor", "PrometheusRule", "PrometheusRule"]);
    let (ok, out) = operator_validate(&operator);
    assert!(ok, "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("PASS ")).count(),
        3,
        "{out}"
    );

    let mut pm = find(&all, "PodMonitor", "cdn-task-exporter").clone();
    pm["spec"]["podMetricsEndpoints"][0]["port"] = Value::from(10052);
    let mut rule = find(&all, "PrometheusRule", "cdn-task-exporter-alerts").clone();
    rule["spec"]["groups"][0]["rules"][0]
        .as_mapping_mut()
        .unwrap()
        .remove("expr");
    for bad in [&pm, &rule] {
        let (ok, out) = operator_validate(&[bad]);
        assert!(!ok && out.contains("FAIL"), "{out}");
    }
}

#[test]
fn generated_rules_and_dashboard_are_in_step_with_their_sources() {
    // The committed files are what the script makes now.
    let dir = TempDir::new("gen-k8s");
    let status = Command::new("bash")
        .arg(repo("scripts/gen-kubernetes.sh"))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let generated = repo("deploy/kubernetes/generated");
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert!(names.len() >= 3, "{names:?}");
    for n in &names {
        let fresh = std::fs::read_to_string(dir.path().join(n)).unwrap();
        let committed = std::fs::read_to_string(generated.join(n)).unwrap_or_default();
        assert!(
            fresh == committed,
            "deploy/kubernetes/generated/{} is stale: run scripts/gen-kubernetes.sh",
            n.to_string_lossy()
        );
    }

    // And, as rendered, they carry the same groups and dashboard.
    let all = render();
    for (name, src) in [
        ("cdn-task-exporter-alerts", "prometheus/alerts.yml"),
        ("cdn-task-exporter-rules", "prometheus/rules.yml"),
    ] {
        let rule = find(&all, "PrometheusRule", name);
        let source: Value =
            serde_yaml::from_str(&std::fs::read_to_string(repo(src)).unwrap()).unwrap();
        assert!(source["groups"]
            .as_sequence()
            .is_some_and(|g| !g.is_empty()));
        assert_eq!(rule["spec"]["groups"], source["groups"], "{name} vs {src}");
    }
    let dash = find(&all, "ConfigMap", "cdn-task-exporter-dashboard");
    assert_eq!(dash["metadata"]["labels"]["grafana_dashboard"], "1");
    let embedded: serde_json::Value =
        serde_json::from_str(dash["data"]["cdn-tasks.json"].as_str().unwrap()).unwrap();
    let source: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo("grafana/cdn-tasks.json")).unwrap())
            .unwrap();
    assert_eq!(embedded, source);
}

/// The container's arguments.
fn args(sts: &Value) -> Vec<String> {
    sts["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_statefulset_shards_by_ordinal_and_runs_locked_down() {
    let all = render();
    let sts = find(&all, "StatefulSet", "cdn-task-exporter");
    let args = args(sts);
    let replicas = sts["spec"]["replicas"].as_u64().unwrap();
    assert!(
        args.contains(&"--shard.index-from-hostname".to_owned()),
        "{args:?}"
    );
    assert!(
        args.contains(&format!("--shard.count={replicas}")),
        "replicas and --shard.count must agree: {replicas} vs {args:?}"
    );
    let pod = &sts["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/-/healthy");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/-/ready");
    assert_eq!(c["ports"][0]["containerPort"], 10052);
    // The state volume is one claim per ordinal, mounted where the state lives.
    let claim = sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
        .as_str()
        .unwrap();
    let mount = c["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["name"] == claim)
        .expect("the claim is mounted");
    assert_eq!(mount["mountPath"], "/var/lib/cdn-task-exporter");
    assert!(
        args.contains(&format!(
            "--storage.path={}",
            mount["mountPath"].as_str().unwrap()
        )),
        "the state goes to the claim: {args:?}"
    );
    // The pods are reachable by name through the headless Service.
    let svc = find(&all, "Service", "cdn-task-exporter");
    assert_eq!(svc["spec"]["clusterIP"], "None");
    assert_eq!(sts["spec"]["serviceName"], svc["metadata"]["name"]);

    // Scrapes in on 10052 only; out HTTPS and DNS only.
    let np = find(&all, "NetworkPolicy", "cdn-task-exporter");
    let ports = |rules: &Value| -> Vec<(u64, String)> {
        let mut out: Vec<(u64, String)> = rules
            .as_sequence()
            .unwrap()
            .iter()
            .flat_map(|r| r["ports"].as_sequence().unwrap().iter())
            .map(|p| {
                (
                    p["port"].as_u64().unwrap(),
                    p["protocol"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        out.sort();
        out
    };
    assert_eq!(ports(&np["spec"]["ingress"]), [(10052, "TCP".to_owned())]);
    assert_eq!(
        ports(&np["spec"]["egress"]),
        [
            (53, "TCP".to_owned()),
            (53, "UDP".to_owned()),
            (443, "TCP".to_owned())
        ]
    );
    let pm = find(&all, "PodMonitor", "cdn-task-exporter");
    assert_eq!(pm["spec"]["podMetricsEndpoints"][0]["port"], "http");
}

/// Every pod's command line, against the ConfigMap's config and the
/// Secret's files, passes `check-config`; together the pods own every
/// account exactly once.
#[test]
fn every_pod_accepts_its_arguments_and_the_pods_split_the_accounts() {
    let all = render();
    let sts = find(&all, "StatefulSet", "cdn-task-exporter");
    let cm = find(&all, "ConfigMap", "cdn-task-exporter-config");
    let secret = find(&all, "Secret", "cdn-task-exporter-credentials");
    let dir = TempDir::new("k8s-pod");
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    for (k, v) in secret["stringData"].as_mapping().unwrap() {
        std::fs::write(secrets.join(k.as_str().unwrap()), v.as_str().unwrap()).unwrap();
    }
    let config = cm["data"]["config.yml"]
        .as_str()
        .unwrap()
        .replace("/etc/cdn-task-exporter/secrets", secrets.to_str().unwrap());
    let file = dir.path().join("config.yml");
    std::fs::write(&file, &config).unwrap();
    let args: Vec<String> = args(sts)
        .into_iter()
        .map(|a| match a.strip_prefix("--config.file=") {
            Some(_) => format!("--config.file={}", file.display()),
            None => a,
        })
        .collect();
    let replicas = sts["spec"]["replicas"].as_u64().unwrap();
    let mut owned = 0;
    let mut total = None;
    for i in 0..replicas {
        let out = Command::new(binary())
            .args(&args)
            .arg("check-config")
            .env("HOSTNAME", format!("cdn-task-exporter-{i}"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "pod {i}: {text}");
        // "...: configuration OK (N accounts; shard i/n owns K, M owned by other shards)"
        let (n, k) = parse_ok(&text, i, replicas)
            .unwrap_or_else(|| panic!("pod {i}: unexpected output {text}"));
        owned += k;
        assert_eq!(*total.get_or_insert(n), n);
    }
    assert_eq!(Some(owned), total, "each account owned by exactly one pod");
}

fn parse_ok(text: &str, i: u64, n: u64) -> Option<(u64, u64)> {
    let rest = text.split_once("configuration OK (")?.1;
    let (total, rest) = rest.split_once(" accounts; ")?;
    let rest = rest.strip_prefix(&format!("shard {i}/{n} owns "))?;
    let (owned, _) = rest.split_once(',')?;
    Some((total.parse().ok()?, owned.parse().ok()?))
}
