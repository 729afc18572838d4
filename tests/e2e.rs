//! End to end: the four simulated vendors (in process, `demo::start`) → the
//! real exporter binary → a real Prometheus loading the repository's alert and
//! recording rules → a real Alertmanager → a webhook receiver run by this test.
//!
//! A purge is made to fail in the Aliyun simulator and the resulting
//! `CdnPurgeTaskFailed` notification must reach the webhook. Then every PromQL
//! expression of `grafana/cdn-tasks.json` (panel targets, template variables,
//! annotations) must return data from that Prometheus, every rule group must
//! be loaded and evaluate without errors, and a scrape must pass
//! `promtool check metrics`.
//!
//! Needs `prometheus`, `prometheus-alertmanager` and `promtool` on PATH
//! (`scripts/install-deps.sh`). A missing tool fails the test; it never skips.

mod common;

use cdn_task_exporter::demo::{self, DemoOptions};
use cdn_task_exporter::sim::SimTask;
use cdn_task_exporter::task::TaskType;
use cdn_task_exporter::vendors::VendorKind;
use common::prom::{on_path, prom_api, prom_query, Proc};
use common::{free_port, repo, tempdir::TempDir, Exporter};
use serde_json::Value;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the exporter may take to list the Aliyun history once.
const BACKFILL_TIMEOUT: Duration = Duration::from_secs(45);
/// How long the injected failure may take to reach the webhook.
const ALERT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long each dashboard expression is polled before it counts as empty.
const DASHBOARD_TIMEOUT: Duration = Duration::from_secs(30);
/// The recording group runs every 1m: its first evaluation comes at most one
/// interval after Prometheus starts.
const RULES_TIMEOUT_AFTER_START: Duration = Duration::from_secs(75);

// ------------------------------------------------------------------ webhook

/// A tiny HTTP server on loopback that records the bodies POSTed to it
/// (Alertmanager's webhook notifications). Stopped and joined on drop.
struct Webhook {
    addr: String,
    bodies: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Webhook {
    fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (bodies, stop) = (bodies.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            if let Some(body) = Self::handle(stream) {
                                bodies.lock().unwrap().push(body);
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(20))
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        };
        Webhook {
            addr,
            bodies,
            stop,
            thread: Some(thread),
        }
    }

    /// Reads one request, answers 200 and closes; returns a POST's body.
    fn handle(mut s: TcpStream) -> Option<String> {
        s.set_nonblocking(false).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = s.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let n = s.read(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        head.starts_with("post ")
            .then(|| String::from_utf8_lossy(&buf[head_end..]).into_owned())
    }

    fn bodies(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ------------------------------------------------------------------ Grafana

/// One PromQL expression of the dashboard to check.
#[derive(Debug)]
struct Check {
    /// Where it comes from (panel title, variable or annotation name).
    origin: String,
    /// The expression as written in the dashboard.
    raw: String,
    /// The PromQL sent to Prometheus.
    promql: String,
    /// For `label_values(metric, label)`: some series must carry `label`.
    label: Option<String>,
}

/// Replaces Grafana variables (`$var`, `${var}`, `${var:fmt}`, `[[var]]`)
/// with what "All" or the built-ins would give.
fn substitute(expr: &str) -> Result<String, String> {
    let value = |name: &str| -> Option<&'static str> {
        Some(match name {
            "vendor" | "account" | "task_type" => ".*",
            "__rate_interval" => "1m",
            "__interval" => "15s",
            "__interval_ms" => "15000",
            "__range" => "5m",
            "__range_s" => "300",
            "__range_ms" => "300000",
            _ => return None,
        })
    };
    let ident = |s: &str| {
        s.bytes()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
            .count()
    };
    let mut out = String::new();
    let mut i = 0;
    while i < expr.len() {
        let rest = &expr[i..];
        let found = if let Some(r) = rest.strip_prefix("${") {
            r.find('}')
                .map(|end| (r[..end].split(':').next().unwrap_or(""), 2 + end + 1))
        } else if let Some(r) = rest.strip_prefix("[[") {
            r.find("]]")
                .filter(|end| ident(&r[..*end]) == *end)
                .map(|end| (&r[..end], 2 + end + 2))
        } else if let Some(r) = rest.strip_prefix('$') {
            let n = ident(r);
            (n > 0).then(|| (&r[..n], 1 + n))
        } else {
            None
        };
        match found {
            Some((name, len)) => {
                let v = value(name)
                    .ok_or_else(|| format!("unknown Grafana variable {name:?} in {expr:?}"))?;
                out.push_str(v);
                i += len;
            }
            None => {
                let c = rest.chars().next().unwrap();
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    Ok(out)
}

/// Splits at the last comma outside brackets and quotes.
fn split_last_top_level_comma(s: &str) -> Option<(&str, &str)> {
    let (mut depth, mut quote, mut escaped, mut last) = (0i32, None, false, None);
    for (i, c) in s.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '(' | '{' | '[' => depth += 1,
            ')' | '}' | ']' => depth -= 1,
            ',' if depth == 0 => last = Some(i),
            _ => {}
        }
    }
    last.map(|i| (&s[..i], &s[i + 1..]))
}

/// Turns a template-variable query into PromQL: `label_values(metric, label)`
/// → `metric` (whose series must carry `label`), `label_values(label)` →
/// `{label!=""}`, `query_result(expr)` → `expr`.
fn variable_query(q: &str) -> (String, Option<String>) {
    let q = q.trim();
    if let Some(inner) = q
        .strip_prefix("label_values(")
        .and_then(|r| r.strip_suffix(')'))
    {
        return match split_last_top_level_comma(inner) {
            Some((metric, label)) => (metric.trim().to_owned(), Some(label.trim().to_owned())),
            None => (
                format!("{{{}!=\"\"}}", inner.trim()),
                Some(inner.trim().to_owned()),
            ),
        };
    }
    if let Some(inner) = q
        .strip_prefix("query_result(")
        .and_then(|r| r.strip_suffix(')'))
    {
        return (inner.to_owned(), None);
    }
    (q.to_owned(), None)
}

/// Every PromQL expression in the dashboard.
fn dashboard_checks(dashboard: &Value) -> Vec<Check> {
    fn panels(list: &Value, out: &mut Vec<Check>) {
        for p in list.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("<untitled>");
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str().filter(|e| !e.trim().is_empty()) {
                    out.push(Check {
                        origin: format!(
                            "panel {title:?} (id {}, refId {})",
                            p["id"],
                            t["refId"].as_str().unwrap_or("?")
                        ),
                        raw: expr.to_owned(),
                        promql: expr.to_owned(),
                        label: None,
                    });
                }
            }
            // Rows (collapsed) carry their panels inside.
            panels(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&dashboard["panels"], &mut out);
    for v in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if v["type"] != "query" {
            continue;
        }
        let q = v["query"]
            .as_str()
            .or_else(|| v["query"]["query"].as_str())
            .or_else(|| v["definition"].as_str())
            .unwrap_or_default();
        let (promql, label) = variable_query(q);
        out.push(Check {
            origin: format!("template variable ${}", v["name"].as_str().unwrap_or("?")),
            raw: q.to_owned(),
            promql,
            label,
        });
    }
    for a in dashboard["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(expr) = a["expr"].as_str().filter(|e| !e.trim().is_empty()) {
            out.push(Check {
                origin: format!("annotation {:?}", a["name"].as_str().unwrap_or("?")),
                raw: expr.to_owned(),
                promql: expr.to_owned(),
                label: None,
            });
        }
    }
    for c in &mut out {
        c.promql = substitute(&c.promql).unwrap_or_else(|e| panic!("{}: {e}", c.origin));
    }
    out
}

/// Whether `result` answers the check (non-empty; carries the label).
fn satisfies(check: &Check, result: &[Value]) -> bool {
    match &check.label {
        None => !result.is_empty(),
        Some(l) => result
            .iter()
            .any(|s| s["metric"][l].as_str().is_some_and(|v| !v.is_empty())),
    }
}

// --------------------------------------------------------------------- test

fn rule_groups_in(path: &Path) -> Vec<(String, usize)> {
    let y: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    y["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["name"].as_str().unwrap().to_owned(),
                g["rules"].as_sequence().map_or(0, |r| r.len()),
            )
        })
        .collect()
}

#[test]
fn failed_purge_alerts_through_alertmanager_and_dashboard_has_data() {
    let t0 = Instant::now();
    let milestone = |what: &str| eprintln!("[e2e {:>5.1}s] {what}", t0.elapsed().as_secs_f64());

    let missing: Vec<&str> = ["prometheus", "prometheus-alertmanager", "promtool"]
        .into_iter()
        .filter(|t| !on_path(t))
        .collect();
    assert!(
        missing.is_empty(),
        "{missing:?} not on PATH; run scripts/install-deps.sh \
         (installs the Debian packages prometheus and prometheus-alertmanager)"
    );

    let dir = TempDir::new("e2e");
    let alerts_yml = repo("prometheus/alerts.yml");
    let rules_yml = repo("prometheus/rules.yml");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(repo("grafana/cdn-tasks.json")).unwrap())
            .expect("grafana/cdn-tasks.json is JSON");
    let checks = dashboard_checks(&dashboard);
    assert!(!checks.is_empty(), "no PromQL found in the dashboard");

    // 1. Simulated vendors (in process) and the real exporter binary.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let opts = DemoOptions {
        // Only the injected purge fails, so the alert below can come from
        // nothing else.
        failure_rate: 0.0,
        tasks_per_hour: 3000.0,
        history: Duration::from_secs(3600),
        min_refresh_interval: Duration::from_secs(2),
        ..DemoOptions::default()
    };
    let demo = rt.block_on(demo::start(&opts)).expect("start simulators");
    milestone("simulators started");
    // The app's debug events say how each scrape was encoded.
    let exporter = Exporter::start(
        &demo.config_yaml,
        &["--log.level", "info,cdn_task_exporter::app=debug"],
    );
    milestone(&format!("exporter ready on {}", exporter.addr));

    // 2.–3. Webhook receiver, Alertmanager, Prometheus.
    let webhook = Webhook::start();
    let am_addr = format!("127.0.0.1:{}", free_port());
    let am_config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &am_config,
        format!(
            "route:\n  receiver: webhook\n  group_by: ['alertname', 'vendor', 'account']\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: webhook\n    webhook_configs:\n      - url: 'http://{}/alerts'\n        send_resolved: false\n",
            webhook.addr
        ),
    )
    .unwrap();
    let am_data = dir.path().join("alertmanager-data");
    std::fs::create_dir_all(&am_data).unwrap();
    let mut alertmanager = Proc::spawn(
        "alertmanager",
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", am_config.display()),
            format!("--storage.path={}", am_data.display()),
            format!("--web.listen-address={am_addr}"),
            "--cluster.listen-address=".to_owned(),
        ],
        dir.path().join("alertmanager.log"),
    );

    let prom_addr = format!("127.0.0.1:{}", free_port());
    let prom_config = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nrule_files:\n  - '{}'\n  - '{}'\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{am_addr}']\nscrape_configs:\n  - job_name: cdn-task-exporter\n    static_configs:\n      - targets: ['{}']\n",
            alerts_yml.display(),
            rules_yml.display(),
            exporter.addr
        ),
    )
    .unwrap();
    let prom_data = dir.path().join("prometheus-data");
    let prom_started = Instant::now();
    let mut prometheus = Proc::spawn(
        "prometheus",
        "prometheus",
        &[
            format!("--config.file={}", prom_config.display()),
            format!("--storage.tsdb.path={}", prom_data.display()),
            format!("--web.listen-address={prom_addr}"),
        ],
        dir.path().join("prometheus.log"),
    );
    alertmanager.wait_ready(&am_addr, "/-/ready", Duration::from_secs(20));
    milestone(&format!("alertmanager ready on {am_addr}"));
    prometheus.wait_ready(&prom_addr, "/-/ready", Duration::from_secs(20));
    milestone(&format!("prometheus ready on {prom_addr}"));

    // 4. Make the purge fail once the Aliyun account is in steady state (its
    // first full listing of the history done) and Prometheus holds the
    // failed-purge counter at 0: increase() cannot see a series that first
    // appears at 1.
    let aliyun_up = r#"cdn_vendor_up{vendor="aliyun",account="demo-aliyun"} == 1"#;
    let failed_series = r#"cdn_tasks_finished_total{vendor="aliyun",account="demo-aliyun",task_type="refresh_file",status="failed"}"#;
    let mut last = String::new();
    let seen = common::eventually(BACKFILL_TIMEOUT, || {
        prometheus.assert_running();
        let has = |q: &str, last: &mut String| match prom_query(&prom_addr, q) {
            Ok(r) => !r.is_empty(),
            Err(e) => {
                *last = e;
                false
            }
        };
        has(failed_series, &mut last) && has(aliyun_up, &mut last)
    });
    let zero = prom_query(&prom_addr, failed_series).map(|r| Value::Array(r).to_string());
    assert!(
        seen,
        "within {BACKFILL_TIMEOUT:?} Prometheus did not get both {aliyun_up} and \
         {failed_series} (= {zero:?}; last error: {last})\n{}\nexporter log:\n{}",
        prometheus.log_tail(),
        exporter.logs()
    );
    assert!(
        zero.as_deref().is_ok_and(|z| z.contains(r#""0"]"#)),
        "{failed_series} should be 0 before the injected failure (failure_rate is 0): {zero:?}"
    );
    milestone(
        "aliyun up after its first full listing; prometheus has the failed-purge counter at 0",
    );

    let aliyun = demo.world(VendorKind::Aliyun).expect("aliyun world");
    let now = aliyun.now();
    let task = SimTask {
        id: format!("{:016x}", 0xe2e0_0000_0000_0000u64 | aliyun.next_id()),
        task_type: TaskType::RefreshFile,
        created_at: now,
        domain: "www1.example.com".into(),
        urls: vec!["https://www1.example.com/e2e/failed-purge.js".into()],
        queued_for: 0,
        runs_for: Some(2),
        fails: true,
    };
    aliyun.add(task.clone());
    milestone(&format!("injected failing purge {} into aliyun", task.id));

    let wanted = [
        ("alertname", "CdnPurgeTaskFailed"),
        ("vendor", "aliyun"),
        ("account", "demo-aliyun"),
        ("task_type", "refresh_file"),
    ];
    let find_alert = |bodies: &[String]| -> Option<(Value, Value)> {
        bodies.iter().find_map(|b| {
            let payload: Value = serde_json::from_str(b).ok()?;
            let alert = payload["alerts"].as_array()?.iter().find(|a| {
                a["status"] == "firing" && wanted.iter().all(|(k, v)| a["labels"][k] == *v)
            })?;
            Some((alert.clone(), payload.clone()))
        })
    };
    let until = Instant::now() + ALERT_TIMEOUT;
    let mut found = None;
    while Instant::now() < until {
        prometheus.assert_running();
        alertmanager.assert_running();
        found = find_alert(&webhook.bodies());
        if found.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let Some((alert, payload)) = found else {
        let active = prom_api(&prom_addr, "/api/v1/alerts")
            .map(|d| d.to_string())
            .unwrap_or_else(|e| e);
        let counter = prom_query(&prom_addr, failed_series)
            .map(|r| Value::Array(r).to_string())
            .unwrap_or_else(|e| e);
        panic!(
            "no firing alert with labels {wanted:?} reached the webhook within {ALERT_TIMEOUT:?} \
             of the injected failure\nwebhook bodies: {:?}\nPrometheus alerts: {active}\n\
             {failed_series} = {counter}\n{}\n{}\nexporter log:\n{}",
            webhook.bodies(),
            prometheus.log_tail(),
            alertmanager.log_tail(),
            exporter.logs()
        );
    };
    milestone("webhook received CdnPurgeTaskFailed for aliyun/demo-aliyun/refresh_file");

    // 5a. The alert carries the link to exactly this task list, and the link
    // (built by Prometheus from the instance label) answers with the failed
    // task and its URL.
    let tasks_url = alert["annotations"]["tasks_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no tasks_url annotation: {alert}"));
    assert!(
        tasks_url.ends_with(
            "/tasks?vendor=aliyun&account=demo-aliyun&task_type=refresh_file&status=failed"
        ),
        "{tasks_url}"
    );
    let (host, path) = tasks_url
        .strip_prefix("http://")
        .and_then(|r| r.split_once('/'))
        .unwrap_or_else(|| panic!("tasks_url is not http://HOST/PATH: {tasks_url}"));
    let (status, page) = common::http_get(host, &format!("/{path}"), &[]).expect("fetch tasks_url");
    assert_eq!(status, 200, "{tasks_url}: {page}");
    assert!(
        page.contains("https://www1.example.com/e2e/failed-purge.js"),
        "the linked page lists the failed purge's URL: {page}"
    );
    let api = format!("/{}", path.replacen("tasks?", "api/v1/tasks?", 1));
    let (status, json) = common::http_get(host, &api, &[]).expect("fetch the JSON of the link");
    assert_eq!(status, 200, "{api}: {json}");
    let listed: Value = serde_json::from_str(&json).unwrap();
    let failed = listed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["urls"][0] == "https://www1.example.com/e2e/failed-purge.js")
        .unwrap_or_else(|| panic!("the failed purge is not in {json}"));
    assert_eq!(failed["status"], "failed");
    assert_eq!(
        failed["task_id"],
        u64::from_str_radix(&task.id, 16).unwrap().to_string(),
        "Aliyun reports the simulator's id as its decimal TaskId"
    );
    milestone(&format!("tasks_url {tasks_url} lists the failed purge"));
    eprintln!(
        "webhook alert:\n{}",
        serde_json::to_string_pretty(&alert).unwrap()
    );
    eprintln!(
        "webhook payload (receiver {}, status {}, groupKey {}, {} alert(s))",
        payload["receiver"],
        payload["status"],
        payload["groupKey"],
        payload["alerts"].as_array().map_or(0, |a| a.len())
    );

    // 5b. Prometheus asks for gzip (Accept-Encoding: gzip), gets it, and
    // reads it: the target is up.
    let gzip_scrapes = exporter
        .logs()
        .lines()
        .filter(|l| l.contains("event=scrape") && l.contains("encoding=gzip"))
        .count();
    assert!(
        gzip_scrapes > 0,
        "Prometheus' scrapes were not served gzip:\n{}",
        exporter.logs()
    );
    let up = prom_query(&prom_addr, r#"up{job="cdn-task-exporter"} == 1"#)
        .map(|r| Value::Array(r).to_string())
        .unwrap_or_else(|e| e);
    assert!(up.contains(r#""1"]"#), "the target is not up: {up}");
    milestone(&format!(
        "{gzip_scrapes} gzip scrapes by Prometheus; target up"
    ));

    // 6a. The exposition passes promtool's lint.
    // With the timeout header Prometheus sends (scrape_timeout 1s).
    common::promtool_check_metrics(&exporter.scrape(Some("1")));
    milestone("promtool check metrics passed");

    // 5. Every dashboard expression returns data.
    let mut pending: Vec<(&Check, String)> = checks.iter().map(|c| (c, String::new())).collect();
    let until = Instant::now() + DASHBOARD_TIMEOUT;
    loop {
        prometheus.assert_running();
        pending.retain_mut(|(c, why)| match prom_query(&prom_addr, &c.promql) {
            Ok(r) if satisfies(c, &r) => false,
            Ok(r) if r.is_empty() => {
                *why = "empty result".into();
                true
            }
            Ok(r) => {
                *why = format!("no series carries label {:?}: {}", c.label, Value::Array(r));
                true
            }
            Err(e) => {
                *why = e;
                true
            }
        });
        if pending.is_empty() || Instant::now() >= until {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let report: Vec<String> = pending
        .iter()
        .map(|(c, why)| {
            format!(
                "  {}\n    expr:   {}\n    promql: {}\n    -> {why}",
                c.origin, c.raw, c.promql
            )
        })
        .collect();
    assert!(
        pending.is_empty(),
        "{} of {} dashboard expressions returned no data from Prometheus within {DASHBOARD_TIMEOUT:?}:\n{}",
        pending.len(),
        checks.len(),
        report.join("\n")
    );
    milestone(&format!(
        "all {} dashboard expressions returned data",
        checks.len()
    ));

    // 6b. Every rule group is loaded, and every rule has been evaluated
    // without error. The recording group runs every minute, so its first
    // evaluation may be up to a minute after Prometheus started.
    let mut expected: Vec<(String, usize)> = rule_groups_in(&alerts_yml);
    expected.extend(rule_groups_in(&rules_yml));
    expected.sort();
    let until = prom_started + RULES_TIMEOUT_AFTER_START;
    let mut state;
    loop {
        prometheus.assert_running();
        let data = prom_api(&prom_addr, "/api/v1/rules").unwrap_or_else(|e| panic!("{e}"));
        let groups = data["groups"].as_array().cloned().unwrap_or_default();
        let mut loaded: Vec<(String, usize)> = groups
            .iter()
            .map(|g| {
                (
                    g["name"].as_str().unwrap_or("").to_owned(),
                    g["rules"].as_array().map_or(0, |r| r.len()),
                )
            })
            .collect();
        loaded.sort();
        assert_eq!(loaded, expected, "rule groups loaded by Prometheus");
        let mut not_ok = Vec::new();
        for g in &groups {
            for r in g["rules"].as_array().into_iter().flatten() {
                let health = r["health"].as_str().unwrap_or("");
                assert_ne!(
                    health, "err",
                    "rule {} in group {} fails to evaluate: {}",
                    r["name"], g["name"], r["lastError"]
                );
                if health != "ok" {
                    not_ok.push(format!("{}/{}: {health:?}", g["name"], r["name"]));
                }
            }
        }
        state = not_ok;
        if state.is_empty() || Instant::now() >= until {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        state.is_empty(),
        "rules not evaluated with health \"ok\" within {RULES_TIMEOUT_AFTER_START:?} of Prometheus' start: {state:?}"
    );
    milestone(&format!(
        "all {} rule groups loaded, every rule health \"ok\"",
        expected.len()
    ));

    // 7. Processes are killed in the guards' Drop (also on panic); the temp
    // dir after them.
    drop(prometheus);
    drop(alertmanager);
    drop(exporter);
    drop(webhook);
    drop(demo);
    drop(rt);
    milestone("cleaned up");
}
