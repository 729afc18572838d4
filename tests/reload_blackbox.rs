//! Black box: the real binary reloading its config files on SIGHUP and on
//! `POST /-/reload` (`--web.enable-lifecycle`), against simulated testing
//! vendors on loopback (one simulator per account, each counting the calls
//! it receives), and over TLS with certificates made by rcgen.

mod common;

use cdn_task_exporter::clock::SystemClock;
use cdn_task_exporter::sim::calls::CallCounter;
use cdn_task_exporter::sim::testing::TestingSim;
use cdn_task_exporter::sim::{serve, World};
use common::pki::{Ca, ExtendedKeyUsagePurpose};
use common::{eventually, parse_metrics, tempdir::TempDir, value, Exporter};
use std::path::PathBuf;
use std::time::Duration;

/// A testing-vendor simulator accepting `secret`; returns its call counter
/// and endpoint.
async fn sim(secret: &str) -> (CallCounter, String) {
    let world = World::new(std::sync::Arc::new(SystemClock));
    let calls = CallCounter::new();
    let router = calls.wrap(TestingSim::new(world, secret).router());
    let (addr, _) = serve(router).await.unwrap();
    (calls, format!("http://{addr}"))
}

/// One testing account: refreshed at most hourly, so that any call after
/// its first refresh comes from a restart, not from a due refresh.
fn account(name: &str, endpoint: &str, secret: &str) -> String {
    format!(
        "  - name: {name}\n    vendor: testing\n    endpoint: {endpoint}\n    \
         credentials: {{ id: {name}, secret: {secret} }}\n    min_refresh_interval: 1h\n"
    )
}

fn config(accounts: &[String]) -> String {
    format!("accounts:\n{}", accounts.concat())
}

fn hup(e: &Exporter) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &e.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn config_path(e: &Exporter) -> PathBuf {
    e.dir.path().join("config.yml")
}

fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let m = parse_metrics(text);
    if labels.is_empty() {
        return m.get(name).copied();
    }
    value(&m, name, labels)
}

fn up(text: &str, account: &str) -> Option<f64> {
    metric(
        text,
        "cdn_vendor_up",
        &[("vendor", "testing"), ("account", account)],
    )
}

fn list_ok(text: &str, account: &str) -> Option<f64> {
    metric(
        text,
        "cdn_vendor_api_requests_total",
        &[
            ("vendor", "testing"),
            ("account", account),
            ("api", "ListTasks"),
            ("outcome", "ok"),
        ],
    )
}

fn reload_ok(text: &str) -> Option<f64> {
    metric(text, "cdn_exporter_config_last_reload_successful", &[])
}

fn reload_at(text: &str) -> Option<f64> {
    metric(
        text,
        "cdn_exporter_config_last_reload_success_timestamp_seconds",
        &[],
    )
}

/// Scrapes until `done` holds for the exposition; returns it.
fn scrape_until(e: &Exporter, what: &str, mut done: impl FnMut(&str) -> bool) -> String {
    let mut text = String::new();
    let ok = eventually(Duration::from_secs(25), || {
        text = e.scrape(Some("5"));
        done(&text)
    });
    assert!(ok, "{what}: never seen.\n{text}\nlogs:\n{}", e.logs());
    text
}

async fn post(addr: &str, path: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_keeps_unchanged_accounts_restarts_changed_adds_and_removes() {
    let (keep_calls, keep) = sim("k-secret").await;
    let (gone_calls, gone) = sim("g-secret").await;
    let (_, change) = sim("c-right").await;
    let (_, new) = sim("n-secret").await;
    let v1 = config(&[
        account("keep", &keep, "k-secret"),
        account("gone", &gone, "g-secret"),
        account("change", &change, "c-wrong"),
    ]);
    let e = tokio::task::spawn_blocking(move || Exporter::start(&v1, &[]))
        .await
        .unwrap();
    let before = tokio::task::block_in_place(|| {
        scrape_until(&e, "first refreshes", |t| {
            up(t, "keep") == Some(1.0) && up(t, "gone") == Some(1.0) && up(t, "change") == Some(0.0)
        })
    });
    assert_eq!(reload_ok(&before), Some(1.0));
    let started = reload_at(&before).unwrap();
    assert!(started > 1.7e9, "the start time: {started}");
    let keep_listed = list_ok(&before, "keep").unwrap();
    assert!(keep_listed >= 1.0);
    let keep_seen = keep_calls.get();
    let gone_seen = gone_calls.get();

    let v2 = config(&[
        account("keep", &keep, "k-secret"),
        account("change", &change, "c-right"),
        account("new", &new, "n-secret"),
    ]);
    std::fs::write(config_path(&e), v2).unwrap();
    hup(&e);
    let after = tokio::task::block_in_place(|| {
        scrape_until(&e, "the reloaded accounts", |t| {
            up(t, "change") == Some(1.0) && up(t, "new") == Some(1.0)
        })
    });
    // Removed: none of its series is left, and it is not asked again.
    assert!(
        !after.contains("account=\"gone\""),
        "series of the removed account remain:\n{after}"
    );
    assert_eq!(gone_calls.get(), gone_seen);
    // Kept: the same account, counters and all; it asked the vendor
    // nothing (its data is younger than min_refresh_interval).
    assert_eq!(list_ok(&after, "keep"), Some(keep_listed));
    assert_eq!(up(&after, "keep"), Some(1.0));
    assert_eq!(
        keep_calls.get(),
        keep_seen,
        "the kept account was restarted"
    );
    assert_eq!(reload_ok(&after), Some(1.0));
    assert!(reload_at(&after).unwrap() >= started);
    let logs = e.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("configuration reloaded"))
        .unwrap_or_else(|| panic!("no reload line:\n{logs}"));
    for want in ["kept=1", "restarted=1", "added=1", "removed=1"] {
        assert!(line.contains(want), "{want} missing: {line}");
    }
    for secret in ["k-secret", "c-right", "c-wrong", "n-secret", "g-secret"] {
        assert!(!logs.contains(secret), "a secret in the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_endpoint_needs_the_lifecycle_flag() {
    let (_, endpoint) = sim("s").await;
    let v1 = config(&[account("shop", &endpoint, "s")]);
    let e = tokio::task::spawn_blocking(move || Exporter::start(&v1, &[]))
        .await
        .unwrap();
    let (status, body) = post(&e.addr, "/-/reload").await;
    assert_eq!(status, 403);
    assert_eq!(body.trim(), "Lifecycle API is not enabled.");
    let (status, _) =
        tokio::task::block_in_place(|| common::http_get(&e.addr, "/-/reload", &[])).unwrap();
    assert_eq!(status, 405);
    // SIGHUP reloads without the flag.
    std::fs::write(
        config_path(&e),
        config(&[
            account("shop", &endpoint, "s"),
            account("more", &endpoint, "s"),
        ]),
    )
    .unwrap();
    hup(&e);
    tokio::task::block_in_place(|| {
        scrape_until(&e, "the account SIGHUP added", |t| {
            t.contains("account=\"more\"")
        })
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_is_rejected_and_the_running_one_stays() {
    let (calls, endpoint) = sim("s").await;
    let good = config(&[account("shop", &endpoint, "s")]);
    let v1 = good.clone();
    let e = tokio::task::spawn_blocking(move || Exporter::start(&v1, &["--web.enable-lifecycle"]))
        .await
        .unwrap();
    let before = tokio::task::block_in_place(|| {
        scrape_until(&e, "first refresh", |t| up(t, "shop") == Some(1.0))
    });
    let started = reload_at(&before).unwrap();
    let seen = calls.get();

    let bad = good.replace("min_refresh_interval: 1h", "min_refresh_interval: soon")
        + &account("other", &endpoint, "s");
    std::fs::write(config_path(&e), bad).unwrap();
    let (status, body) = post(&e.addr, "/-/reload").await;
    assert_eq!(status, 500, "{body}");
    let file = config_path(&e).display().to_string();
    assert!(
        body.contains(&file) && body.contains("min_refresh_interval"),
        "the error names neither file nor key: {body}"
    );
    let text = e.scrape(Some("5"));
    assert_eq!(reload_ok(&text), Some(0.0));
    assert_eq!(reload_at(&text), Some(started));
    // The running config stays: the same account, untouched.
    assert_eq!(up(&text, "shop"), Some(1.0));
    assert!(!text.contains("account=\"other\""));
    assert_eq!(calls.get(), seen);
    let logs = e.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("configuration reload failed")
                && l.contains("min_refresh_interval")
                && l.contains("config.yml")),
        "no log line naming file and key:\n{logs}"
    );

    // Fixed: applied, and the gauges say so.
    std::fs::write(
        config_path(&e),
        good.clone() + &account("other", &endpoint, "s"),
    )
    .unwrap();
    let (status, body) = post(&e.addr, "/-/reload").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("1 kept") && body.contains("1 added"),
        "{body}"
    );
    let text = e.scrape(Some("5"));
    assert_eq!(reload_ok(&text), Some(1.0));
    assert!(reload_at(&text).unwrap() >= started);
    assert!(text.contains("account=\"other\""));
}

// --- TLS and basic auth ---

/// A server certificate for 127.0.0.1: (certificate PEM, its DER, key PEM).
fn server_cert(ca: &Ca) -> (String, Vec<u8>, String) {
    let l = ca.leaf(
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    (l.pem, l.der, l.key_pem)
}

/// A client trusting `cas`, on a new connection for every request (so each
/// request sees the certificate served now), reporting the peer certificate.
fn tls_client(cas: &[&Ca]) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .tls_info(true)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(20));
    for ca in cas {
        b = b.add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

/// The DER of the certificate the exporter serves now, and the status of
/// an authenticated `/metrics`.
async fn served(c: &reqwest::Client, addr: &str, user: &str, password: &str) -> (Vec<u8>, u16) {
    let r = c
        .get(format!("https://{addr}/metrics"))
        .header("X-Prometheus-Scrape-Timeout-Seconds", "3")
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap();
    let der = r
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .unwrap()
        .to_vec();
    (der, r.status().as_u16())
}

fn web_config(dir: &std::path::Path, user: &str, password: &str) -> String {
    format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  {user}: {}\n",
        dir.join("server.crt").display(),
        dir.join("server.key").display(),
        bcrypt::hash(password, 4).unwrap()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_and_new_users_are_served_after_a_reload() {
    let (ca1, ca2) = (Ca::new("first CA"), Ca::new("second CA"));
    let (cert1, der1, key1) = server_cert(&ca1);
    let (cert2, der2, key2) = server_cert(&ca2);
    let dir = TempDir::new("reload-tls");
    let path = |n: &str| dir.path().join(n);
    std::fs::write(path("server.crt"), &cert1).unwrap();
    std::fs::write(path("server.key"), &key1).unwrap();
    std::fs::write(
        path("config.yml"),
        "accounts:\n  - name: shop\n    vendor: testing\n    endpoint: http://127.0.0.1:9\n    credentials: { id: shop, secret: nothing }\n",
    )
    .unwrap();
    std::fs::write(path("web.yml"), web_config(dir.path(), "prom", "one")).unwrap();
    let args: Vec<std::ffi::OsString> = vec![
        "--config.file".into(),
        path("config.yml").into(),
        "--web.config.file".into(),
        path("web.yml").into(),
        "--web.enable-lifecycle".into(),
    ];
    let (web_file, cert_file, key_file) = (path("web.yml"), path("server.crt"), path("server.key"));
    let e = tokio::task::spawn_blocking(move || Exporter::spawn_in(dir, &args, &[]))
        .await
        .unwrap();
    let both = tls_client(&[&ca1, &ca2]);
    assert_eq!(
        served(&both, &e.addr, "prom", "one").await,
        (der1.clone(), 200)
    );

    // A web config that cannot load (the key file is missing) is rejected;
    // the running certificate and users stay.
    std::fs::write(
        &web_file,
        web_config(e.dir.path(), "prom", "one").replace("server.key", "missing.key"),
    )
    .unwrap();
    let reload = |c: &reqwest::Client| {
        c.post(format!("https://{}/-/reload", e.addr))
            .basic_auth("prom", Some("one"))
            .send()
    };
    let r = reload(&both).await.unwrap();
    assert_eq!(r.status().as_u16(), 500);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("web.yml") && body.contains("key_file"),
        "the error names neither file nor key: {body}"
    );
    assert_eq!(
        served(&both, &e.addr, "prom", "one").await,
        (der1.clone(), 200)
    );

    // Rotated on disk, with a new user: served after the reload, no restart.
    std::fs::write(&cert_file, &cert2).unwrap();
    std::fs::write(&key_file, &key2).unwrap();
    std::fs::write(&web_file, web_config(e.dir.path(), "scraper", "two")).unwrap();
    let r = reload(&both).await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    assert_eq!(served(&both, &e.addr, "scraper", "two").await, (der2, 200));
    assert_eq!(served(&both, &e.addr, "prom", "one").await.1, 401);
    // A client trusting only the old CA no longer connects.
    let old_only = tls_client(&[&ca1]);
    assert!(old_only
        .get(format!("https://{}/-/healthy", e.addr))
        .send()
        .await
        .is_err());
    let text = String::from_utf8(
        both.get(format!("https://{}/metrics", e.addr))
            .basic_auth("scraper", Some("two"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert_eq!(reload_ok(&text), Some(1.0));
}
