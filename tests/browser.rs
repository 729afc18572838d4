//! `/tasks` in a real browser: Debian's `chromium` (scripts/install-deps.sh),
//! headless, against the running demo binary. The table matches the JSON, a
//! filter submitted through the page's own form narrows it, a screenshot is
//! written; with basic auth on, the page needs credentials.
//!
//! The form is submitted without a driver (no CDP): its GET URL is built
//! from the form as the browser renders it (action, and every field's name
//! and value in document order, the checked box included), exactly what a
//! submit navigates to, and that URL is loaded in Chromium.

mod common;

use common::{http_get, Exporter};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn chromium(args: &[&str]) -> String {
    // One profile per call: Chromium refuses a profile another instance holds.
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let profile = out_dir().join(format!("profile-{}-{n}", std::process::id()));
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium is installed by scripts/install-deps.sh");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&profile);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn dump_dom(url: &str) -> String {
    chromium(&["--dump-dom", url])
}

/// Task ids of the table rows, in order.
fn row_ids(dom: &str) -> Vec<String> {
    dom.split("<tr class=\"task\" data-task-id=\"")
        .skip(1)
        .map(|r| r.split('"').next().unwrap().to_owned())
        .collect()
}

fn row_statuses(dom: &str) -> Vec<String> {
    dom.split("<tr class=\"task\"")
        .skip(1)
        .map(|r| {
            let cells: Vec<&str> = r.split("<td").collect();
            // cells[6] is the Status column.
            let c = cells[6];
            c[c.find('>').unwrap() + 1..c.find("</td>").unwrap()].to_owned()
        })
        .collect()
}

fn json_ids(body: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap().to_owned())
        .collect()
}

/// The GET URL submitting `form` navigates to, with the checkbox
/// `status=<check>` ticked: inputs and selects in document order.
fn submit_url(base: &str, dom: &str, check: &str) -> String {
    let form = &dom[dom.find("<form").expect("a form")..dom.find("</form>").unwrap()];
    assert!(
        form.contains("method=\"get\"") && form.contains("action=\"/tasks\""),
        "{form}"
    );
    let mut pairs: Vec<(String, String)> = Vec::new();
    let attr = |tag: &str, name: &str| -> Option<String> {
        let key = format!(" {name}=\"");
        let at = tag.find(&key)? + key.len();
        Some(tag[at..at + tag[at..].find('"')?].to_owned())
    };
    for piece in form.split('<').skip(1) {
        let tag = &piece[..piece.find('>').unwrap_or(piece.len())];
        if tag.starts_with("select") {
            // The selected option (none chosen: the first, "any" = "").
            pairs.push((attr(tag, "name").unwrap(), String::new()));
        } else if tag.starts_with("input") {
            let name = attr(tag, "name").unwrap();
            let value = attr(tag, "value").unwrap_or_default();
            if tag.contains("type=\"checkbox\"") {
                if value == check || tag.contains(" checked") {
                    pairs.push((name, value));
                }
            } else {
                pairs.push((name, value));
            }
        }
    }
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{base}/tasks?{query}")
}

fn out_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn tasks_page_in_headless_chromium_matches_the_json_and_filters_through_its_form() {
    let exp = Exporter::start("", &["demo", "--failure-rate", "0.1"]);
    let base = format!("http://{}", exp.addr);
    // Opening the landing page starts the refreshes (nothing scrapes here).
    let ok = common::eventually(Duration::from_secs(60), || {
        let _ = http_get(&exp.addr, "/", &[]);
        let (_, body) = http_get(&exp.addr, "/api/v1/tasks?status=failed", &[]).unwrap();
        !json_ids(&body).is_empty()
    });
    assert!(ok, "no failed task reached /api/v1/tasks: {}", exp.logs());
    // The overview links each account's failures into /tasks.
    let (_, landing) = http_get(&exp.addr, "/", &[]).unwrap();
    assert!(
        landing.contains("&amp;status=failed\">")
            && landing.contains("href=\"/tasks?account=demo-"),
        "{landing}"
    );

    // The table equals the JSON (retried while a refresh moves the data).
    let mut matched = false;
    for _ in 0..5 {
        let (_, before) = http_get(&exp.addr, "/api/v1/tasks", &[]).unwrap();
        let dom = dump_dom(&format!("{base}/tasks"));
        let (_, after) = http_get(&exp.addr, "/api/v1/tasks", &[]).unwrap();
        if json_ids(&before) == json_ids(&after) {
            assert_eq!(row_ids(&dom), json_ids(&before), "table vs JSON");
            assert!(!row_ids(&dom).is_empty());
            // Submit the form with status=failed ticked.
            let url = submit_url(&base, &dom, "failed");
            let api = url[base.len()..].replace("/tasks?", "/api/v1/tasks?");
            let (_, json) = http_get(&exp.addr, &api, &[]).unwrap();
            let filtered = dump_dom(&url);
            let (_, json_after) = http_get(&exp.addr, &api, &[]).unwrap();
            if json_ids(&json) != json_ids(&json_after) {
                // A refresh moved the failed set while the page loaded.
                continue;
            }
            let statuses = row_statuses(&filtered);
            assert!(!statuses.is_empty(), "{url}");
            assert!(statuses.iter().all(|s| s == "failed"), "{statuses:?}");
            let all_statuses = row_statuses(&dom);
            assert!(
                all_statuses.iter().any(|s| s != "failed"),
                "the unfiltered table holds other statuses too: {all_statuses:?}"
            );
            assert_eq!(
                row_ids(&filtered),
                json_ids(&json),
                "filtered table vs JSON"
            );
            matched = true;
            break;
        }
    }
    assert!(matched, "the data never held still for one comparison");

    let shot = out_dir().join("tasks-page.png");
    let _ = std::fs::remove_file(&shot);
    chromium(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1400,900",
        "--hide-scrollbars",
        &format!("{base}/tasks?status=failed&status=stuck&limit=12"),
    ]);
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    if std::env::var_os("UPDATE_SCREENSHOT").is_some() {
        std::fs::copy(&shot, common::repo("docs/tasks-page.png")).unwrap();
    }
}

#[test]
fn tasks_page_needs_credentials_when_basic_auth_is_on() {
    let dir = out_dir();
    let web = dir.join("web-auth.yml");
    let hash = bcrypt::hash("s3cret-pass", 4).unwrap();
    std::fs::write(&web, format!("basic_auth_users:\n  alice: \"{hash}\"\n")).unwrap();
    let exp = Exporter::start("", &["--web.config.file", web.to_str().unwrap(), "demo"]);
    for path in ["/tasks", "/api/v1/tasks", "/"] {
        let (status, _) = http_get(&exp.addr, path, &[]).unwrap();
        assert_eq!(status, 401, "{path} without credentials");
        let (status, _) = http_get(
            &exp.addr,
            path,
            &[("Authorization", "Basic YWxpY2U6czNjcmV0LXBhc3M=")],
        )
        .unwrap();
        assert_eq!(status, 200, "{path} with alice's credentials");
    }
    // The browser without credentials sees no task table.
    let dom = dump_dom(&format!("http://{}/tasks", exp.addr));
    assert!(!dom.contains("<table id=\"tasks\""), "{dom}");
}
