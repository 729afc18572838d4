//! Issue 17: slow and idle clients cannot hold the exporter's connections.
//!
//! Black box: the real binary on loopback, attacked with more stalled or
//! idle connections than `--web.max-connections`, plain and TLS, while real
//! scrapes (a fresh connection each, as a restarted Prometheus would open)
//! keep answering 200 before their deadline; every attacking connection is
//! then seen closed from the client side (EOF or reset), and the exporter's
//! `cdn_exporter_http_connections_rejected_total` accounts for each one.
//! Latencies and closing times are printed as figures (`--nocapture`), never
//! asserted against the wall clock beyond generous deadlines.
//!
//! The tests run one at a time (they open hundreds of sockets each, and the
//! in-process ones read process-wide counters).

mod common;

use cdn_task_exporter::app::{self, AppState};
use cdn_task_exporter::clock::SystemClock;
use cdn_task_exporter::config;
use cdn_task_exporter::http::ReqwestTransport;
use cdn_task_exporter::server::{self, Limits};
use cdn_task_exporter::sim::testing::TestingSim;
use cdn_task_exporter::sim::{Traffic, World};
use common::{tempdir::TempDir, Exporter};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The vendor account points at a closed port: scrapes are quick, the
/// account is simply down.
const CONFIG: &str = "accounts:\n  - name: shop\n    vendor: testing\n    endpoint: http://127.0.0.1:9\n    credentials: { id: shop, secret: nothing }\n";

/// What a scrape may take (sent as Prometheus' timeout header, and the
/// client's own timeout): generous, so that a loaded machine cannot fail it.
const SCRAPE_DEADLINE: Duration = Duration::from_secs(10);

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A self-signed certificate for 127.0.0.1/localhost.
struct Tls {
    cert: rcgen::CertifiedKey<rcgen::KeyPair>,
    dir: TempDir,
}

impl Tls {
    fn new() -> Tls {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let dir = TempDir::new("limits-tls");
        std::fs::write(dir.path().join("tls.crt"), cert.cert.pem()).unwrap();
        std::fs::write(dir.path().join("tls.key"), cert.signing_key.serialize_pem()).unwrap();
        let web = format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
            dir.path().join("tls.crt").display(),
            dir.path().join("tls.key").display()
        );
        std::fs::write(dir.path().join("web.yml"), web).unwrap();
        Tls { cert, dir }
    }

    fn web_config(&self) -> String {
        self.dir.path().join("web.yml").display().to_string()
    }

    fn connector(&self) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.cert.der().clone()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

/// Scrapes with a fresh connection each time (no idle pool).
fn scrape_client(tls: Option<&Tls>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(SCRAPE_DEADLINE);
    if let Some(t) = tls {
        b = b.add_root_certificate(
            reqwest::Certificate::from_pem(t.cert.cert.pem().as_bytes()).unwrap(),
        );
    }
    b.build().unwrap()
}

/// Starts the binary with `args` and waits until `/-/ready` answers (over
/// TLS when `tls` is set).
async fn start(args_in: &[&str], tls: Option<&Tls>) -> Exporter {
    let dir = TempDir::new("limits");
    let cfg = dir.path().join("config.yml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let mut args: Vec<std::ffi::OsString> = vec!["--config.file".into(), cfg.into()];
    args.extend(args_in.iter().map(Into::into));
    if let Some(t) = tls {
        args.push("--web.config.file".into());
        args.push(t.web_config().into());
    }
    let mut e = tokio::task::spawn_blocking(move || Exporter::spawn_in(dir, &args, &[]))
        .await
        .unwrap();
    let client = scrape_client(tls);
    let url = format!("{}/-/ready", base(&e, tls));
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(status)) = e.child.try_wait() {
            panic!("exporter exited early with {status}: {}", e.logs());
        }
        if let Ok(r) = client.get(&url).send().await {
            if r.status() == 200 {
                // The first scrape waits for the (unreachable) vendor; later
                // ones are served from cache, so the figures measure the server.
                let (status, _) = scrape(&client, &format!("{}/metrics", base(&e, tls))).await;
                assert_eq!(status, Some(200), "{}", e.logs());
                return e;
            }
        }
        assert!(Instant::now() < until, "not ready in 20s: {}", e.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn base(e: &Exporter, tls: Option<&Tls>) -> String {
    match tls {
        Some(_) => format!("https://{}", e.addr),
        None => format!("http://{}", e.addr),
    }
}

/// One `/metrics` scrape: its status and latency (`None` on a transport
/// error or a timeout, i.e. no answer before the deadline).
async fn scrape(client: &reqwest::Client, url: &str) -> (Option<u16>, Duration) {
    let t = Instant::now();
    let r = client
        .get(url)
        .header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            SCRAPE_DEADLINE.as_secs().to_string(),
        )
        .send()
        .await;
    let status = match r {
        Ok(r) => {
            let s = r.status().as_u16();
            match r.text().await {
                Ok(body) if body.contains("cdn_exporter_build_info") => Some(s),
                Ok(_) if s != 200 => Some(s),
                _ => None,
            }
        }
        Err(_) => None,
    };
    (status, t.elapsed())
}

/// Scrapes every 100 ms until `stop`; returns each scrape's outcome.
fn scraper(
    client: reqwest::Client,
    url: String,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(Option<u16>, Duration)>> {
    tokio::spawn(async move {
        let mut out = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            out.push(scrape(&client, &url).await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        out
    })
}

/// How an attacking connection ended, seen from the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Read returned EOF or an error (reset, TLS alert or missing close_notify).
    Closed,
    /// Still open at the test's bound.
    Open,
}

/// Reads until the server closes the stream or `bound` passes; returns how
/// it ended and when (since `opened`).
async fn await_close<S: tokio::io::AsyncRead + Unpin>(
    mut s: S,
    opened: Instant,
    bound: Duration,
) -> (End, Duration) {
    let mut buf = [0u8; 1024];
    let end = tokio::time::timeout_at(opened + bound, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    let end = if end.is_ok() { End::Closed } else { End::Open };
    (end, opened.elapsed())
}

/// Half a request head, then silence.
const HALF_HEAD: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow";

type Attack = tokio::task::JoinHandle<(End, Duration)>;

/// Opens a plain connection, sends half a head and waits for the close.
async fn stalled_plain(addr: &str, bound: Duration) -> Attack {
    let opened = Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(HALF_HEAD).await.unwrap();
    tokio::spawn(await_close(s, opened, bound))
}

/// Opens a TCP connection to the TLS port and sends nothing.
async fn stalled_handshake(addr: &str, bound: Duration) -> Attack {
    let opened = Instant::now();
    let s = TcpStream::connect(addr).await.unwrap();
    tokio::spawn(await_close(s, opened, bound))
}

/// Completes a TLS handshake (in the background), sends half a head and
/// waits for the close. A handshake the server ends counts as closed.
async fn stalled_tls(addr: &str, tls: &tokio_rustls::TlsConnector, bound: Duration) -> Attack {
    let opened = Instant::now();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = tls.clone();
    tokio::spawn(async move {
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let handshake = tokio::time::timeout_at(opened + bound, tls.connect(name, tcp)).await;
        match handshake {
            Ok(Ok(mut s)) => {
                if s.write_all(HALF_HEAD).await.is_err() {
                    return (End::Closed, opened.elapsed());
                }
                let _ = s.flush().await;
                await_close(s, opened, bound).await
            }
            Ok(Err(_)) => (End::Closed, opened.elapsed()),
            Err(_) => (End::Open, opened.elapsed()),
        }
    })
}

/// Opens a keep-alive connection, completes one request, then idles; the
/// closing time counts from the end of the response.
async fn idle_keepalive(addr: &str, bound: Duration) -> Attack {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"Healthy\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => panic!(
                "idle client got no answer: {:?}",
                String::from_utf8_lossy(&got)
            ),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    let idle = Instant::now();
    tokio::spawn(await_close(s, idle, bound))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// The exporter's `cdn_exporter_http_connections_rejected_total` by reason.
async fn rejected(e: &Exporter, tls: Option<&Tls>) -> std::collections::HashMap<String, f64> {
    let client = scrape_client(tls);
    let text = client
        .get(format!("{}/metrics", base(e, tls)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let m = common::parse_metrics(&text);
    [
        "max_connections",
        "header_timeout",
        "idle_timeout",
        "tls_handshake",
        "head_too_large",
        "body_too_large",
    ]
    .into_iter()
    .map(|r| {
        let v = common::value(
            &m,
            "cdn_exporter_http_connections_rejected_total",
            &[("reason", r)],
        )
        .unwrap_or_else(|| panic!("no rejected_total for reason {r}"));
        (r.to_owned(), v)
    })
    .collect()
}

/// Runs one attack: `open` opens the attacking connections (all at once),
/// scrapes run until every one of them has been closed, and then the
/// figures are printed and the invariants checked. `bound` is how long a
/// connection may stay open (the timeout plus a generous allowance).
async fn attack(
    label: &str,
    e: &Exporter,
    tls: Option<&Tls>,
    timeout: Duration,
    attackers: Vec<Attack>,
    reasons: &[&str],
) {
    let n = attackers.len();
    let stop = Arc::new(AtomicBool::new(false));
    let scrapes = scraper(
        scrape_client(tls),
        format!("{}/metrics", base(e, tls)),
        stop.clone(),
    );
    let mut ends = Vec::new();
    for a in attackers {
        ends.push(a.await.unwrap());
    }
    // Scrape a little longer than the last close.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let scrapes = scrapes.await.unwrap();

    let open = ends.iter().filter(|(end, _)| *end == End::Open).count();
    let mut closes: Vec<Duration> = ends.iter().map(|(_, t)| *t).collect();
    closes.sort();
    let mut lat: Vec<Duration> = scrapes.iter().map(|(_, t)| *t).collect();
    lat.sort();
    let failed: Vec<_> = scrapes.iter().filter(|(s, _)| *s != Some(200)).collect();
    let after_timeout = closes.iter().filter(|t| **t >= timeout).count();
    eprintln!(
        "{label}: {n} connections; scrapes during the attack: {} (all 200: {}), latency p50 {}, max {}; \
         connections closed {} of {n}: first after {}, p50 {}, last after {} ({after_timeout} at or after the {timeout:?} timeout)",
        scrapes.len(),
        failed.is_empty(),
        ms(percentile(&lat, 0.5)),
        ms(*lat.last().unwrap()),
        n - open,
        ms(closes[0]),
        ms(percentile(&closes, 0.5)),
        ms(*closes.last().unwrap()),
    );
    assert!(
        failed.is_empty(),
        "{label}: scrapes that got no 200 before the {SCRAPE_DEADLINE:?} deadline: {failed:?}\n{}",
        e.logs()
    );
    assert!(
        scrapes.len() >= 3,
        "{label}: too few scrapes ran: {}",
        scrapes.len()
    );
    assert_eq!(open, 0, "{label}: connections still open at the bound");

    // Every attacking connection was closed by a limit, and counted so.
    let r = rejected(e, tls).await;
    eprintln!("{label}: rejected_total {r:?}");
    let counted: f64 = reasons.iter().map(|k| r[*k]).sum();
    assert_eq!(counted as usize, n, "{label}: {r:?}");
    if !reasons.contains(&"idle_timeout") {
        // The client opened each connection before the server accepted it,
        // so one closed by the read-header timeout is seen closed no sooner
        // than the timeout: only the ones evicted at the cap close earlier.
        assert!(
            n - after_timeout <= r["max_connections"] as usize,
            "{label}: {} closed before the timeout, only {} evicted",
            n - after_timeout,
            r["max_connections"]
        );
    }
    assert!(
        r["max_connections"] >= 1.0,
        "{label}: more connections than the cap, yet none closed to make room: {r:?}"
    );
    // One log line per wave, not one per connection.
    let lines = e
        .logs()
        .lines()
        .filter(|l| l.contains("HTTP server limits closed"))
        .count();
    assert!(
        (1..=4).contains(&lines),
        "{label}: {lines} log lines:\n{}",
        e.logs()
    );
}

const CAP: usize = 64;
const TIMEOUT: Duration = Duration::from_secs(2);
/// Longest a stalled connection may stay open in these tests (the timeout
/// plus a generous allowance for a loaded machine).
const BOUND: Duration = Duration::from_secs(20);

fn small_limits() -> Vec<String> {
    vec![
        format!("--web.max-connections={CAP}"),
        format!("--web.read-header-timeout={}s", TIMEOUT.as_secs()),
        format!("--web.idle-timeout={}s", TIMEOUT.as_secs()),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_plain_connections_over_the_cap_do_not_starve_scrapes() {
    let _serial = SERIAL.lock().await;
    let args = small_limits();
    let e = start(&strs(&args), None).await;
    let mut attackers = Vec::new();
    for _ in 0..CAP + 36 {
        attackers.push(stalled_plain(&e.addr, BOUND).await);
    }
    attack(
        "plain, stalled heads",
        &e,
        None,
        TIMEOUT,
        attackers,
        &["max_connections", "header_timeout"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_tls_connections_over_the_cap_do_not_starve_scrapes() {
    let _serial = SERIAL.lock().await;
    let tls = Tls::new();
    let args = small_limits();
    let e = start(&strs(&args), Some(&tls)).await;
    let connector = tls.connector();
    let mut attackers = Vec::new();
    // Half stall in the handshake, half after it, in the request head.
    for _ in 0..(CAP + 36) / 2 {
        attackers.push(stalled_handshake(&e.addr, BOUND).await);
    }
    for _ in 0..(CAP + 36) / 2 {
        attackers.push(stalled_tls(&e.addr, &connector, BOUND).await);
    }
    attack(
        "TLS, stalled handshakes and heads",
        &e,
        Some(&tls),
        TIMEOUT,
        attackers,
        &["max_connections", "header_timeout", "tls_handshake"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keepalive_connections_over_the_cap_do_not_starve_scrapes() {
    let _serial = SERIAL.lock().await;
    let args = small_limits();
    let e = start(&strs(&args), None).await;
    let mut attackers = Vec::new();
    for _ in 0..CAP + 36 {
        attackers.push(idle_keepalive(&e.addr, BOUND).await);
    }
    attack(
        "plain, idle keep-alive",
        &e,
        None,
        TIMEOUT,
        attackers,
        &["max_connections", "idle_timeout"],
    )
    .await;
}

/// The defaults as shipped (512 connections, 10 s to a complete head): more
/// stalled connections than the cap still leave scrapes answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defaults_hold_against_more_stalled_connections_than_the_cap() {
    let _serial = SERIAL.lock().await;
    let defaults = Limits::default();
    let e = start(&[], None).await;
    let mut attackers = Vec::new();
    for _ in 0..defaults.max_connections + 88 {
        attackers.push(stalled_plain(&e.addr, defaults.read_header_timeout + BOUND).await);
    }
    attack(
        "plain, stalled heads, default limits",
        &e,
        None,
        defaults.read_header_timeout,
        attackers,
        &["max_connections", "header_timeout"],
    )
    .await;
}

/// Sends raw bytes on a fresh connection and returns the response status.
async fn raw_status(addr: &str, request: &[u8]) -> u16 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got)).await;
    let text = String::from_utf8_lossy(&got);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_and_bodies_are_refused_with_their_status() {
    let _serial = SERIAL.lock().await;
    let e = start(&[], None).await;
    let big = "x".repeat(server::MAX_HEADER_BYTES + 1);
    let long_head = format!("GET /metrics HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n");
    assert_eq!(raw_status(&e.addr, long_head.as_bytes()).await, 431);
    let many: String = (0..101).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many_heads = format!("GET /metrics HTTP/1.1\r\nHost: a\r\n{many}\r\n");
    assert_eq!(raw_status(&e.addr, many_heads.as_bytes()).await, 431);
    // A head just under the limit is fine.
    let fits = "x".repeat(server::MAX_HEADER_BYTES - 200);
    let ok_head =
        format!("GET /-/healthy HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Big: {fits}\r\n\r\n");
    assert_eq!(raw_status(&e.addr, ok_head.as_bytes()).await, 200);
    let body = format!(
        "GET /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
        server::MAX_BODY_BYTES + 1
    );
    assert_eq!(raw_status(&e.addr, body.as_bytes()).await, 413);
    let chunked =
        "POST /metrics HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
    assert_eq!(raw_status(&e.addr, chunked.as_bytes()).await, 411);
    let small =
        "GET /-/healthy HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello";
    assert_eq!(raw_status(&e.addr, small.as_bytes()).await, 200);
    let r = rejected(&e, None).await;
    assert_eq!(r["head_too_large"], 2.0, "{r:?}");
    assert_eq!(r["body_too_large"], 2.0, "{r:?}");
}

/// Unknown paths get 404 and wrong methods 405, and neither reaches the
/// collector: the simulated vendor sees no request until a real scrape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_and_methods_do_not_reach_the_collector() {
    let _serial = SERIAL.lock().await;
    let world = World::new(Arc::new(SystemClock));
    world.with_traffic(
        Traffic {
            seed: 7,
            tasks_per_hour: 40.0,
            ..Traffic::default()
        },
        Duration::from_secs(3600),
    );
    let sim = TestingSim::new(world, "tok");
    let (vendor, _) = cdn_task_exporter::sim::serve(sim.clone().router())
        .await
        .unwrap();
    let yaml = format!(
        "accounts:\n  - name: shop\n    vendor: testing\n    endpoint: http://{vendor}\n    credentials: {{ id: shop, secret: tok }}\n"
    );
    let cfg = config::parse(&yaml, "test.yml", &|_| None, &|_| Err("no files".into())).unwrap();
    let collector = Arc::new(app::collector(
        &cfg,
        Arc::new(ReqwestTransport::new(1 << 20).unwrap()),
        Arc::new(SystemClock),
    ));
    let state = AppState::new(
        collector,
        Duration::from_secs(10),
        Duration::from_millis(500),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(server::serve(
        listener,
        None,
        app::router(state),
        Limits::default(),
        std::future::pending(),
    ));
    for (method, path, status) in [
        ("GET", "/nope", 404),
        ("GET", "/metrics/extra", 404),
        ("POST", "/metrics", 405),
        ("PUT", "/metrics", 405),
        ("DELETE", "/", 405),
        ("POST", "/-/healthy", 405),
    ] {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        );
        assert_eq!(
            raw_status(&addr, req.as_bytes()).await,
            status,
            "{method} {path}"
        );
    }
    assert_eq!(sim.control.count("ListTasks"), 0);
    assert_eq!(sim.control.count("GetQuota"), 0);
    // The probe can fail: a real scrape reaches the vendor.
    let scrape = b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    assert_eq!(raw_status(&addr, scrape).await, 200);
    assert!(sim.control.count("ListTasks") >= 1);
}

/// Graceful shutdown still lets an in-flight scrape finish and closes idle
/// connections at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_connections_and_returns() {
    let _serial = SERIAL.lock().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let router = axum::Router::new().route(
        "/slow",
        axum::routing::get(|| async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            "done\n"
        }),
    );
    let server = tokio::spawn(server::serve(
        listener,
        None,
        router,
        Limits::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let stalled = stalled_plain(&addr, BOUND).await;
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut got))
        .await
        .expect("in-flight request finishes and the connection closes")
        .unwrap();
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 200") && text.ends_with("done\n"),
        "{text}"
    );
    let (end, _) = stalled.await.unwrap();
    assert_eq!(end, End::Closed);
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("serve returns after shutdown")
        .unwrap()
        .unwrap();
}

/// At the cap with every connection busy, a new connection waits for a
/// slot: no in-flight request is closed to make room, and the waiting one
/// is answered once a slot frees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_with_all_busy_new_connections_wait_and_in_flight_ones_finish() {
    let _serial = SERIAL.lock().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let router = axum::Router::new()
        .route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_millis(800)).await;
                "slow\n"
            }),
        )
        .route("/fast", axum::routing::get(|| async { "fast\n" }));
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    tokio::spawn(server::serve(
        listener,
        None,
        router,
        limits,
        std::future::pending(),
    ));
    let evicted = server::rejected(server::Reason::MaxConnections);
    let get = |path: &'static str| {
        let addr = addr.clone();
        tokio::spawn(async move {
            let req = format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
            let mut s = TcpStream::connect(&addr).await.unwrap();
            s.write_all(req.as_bytes()).await.unwrap();
            let mut got = Vec::new();
            tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got))
                .await
                .expect("answered")
                .expect("not reset");
            String::from_utf8_lossy(&got).into_owned()
        })
    };
    let slow = [get("/slow"), get("/slow")];
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    let fast = get("/fast").await.unwrap();
    let waited = t.elapsed();
    assert!(
        fast.starts_with("HTTP/1.1 200") && fast.ends_with("fast\n"),
        "{fast}"
    );
    for s in slow {
        let s = s.await.unwrap();
        assert!(
            s.starts_with("HTTP/1.1 200") && s.ends_with("slow\n"),
            "{s}"
        );
    }
    assert_eq!(server::rejected(server::Reason::MaxConnections), evicted);
    eprintln!(
        "third connection at a cap of 2 busy ones waited {}",
        ms(waited)
    );
}
