//! Shared helpers for black-box tests: run the real binary against a config,
//! scrape it over HTTP, parse the exposition, run promtool.
#![allow(dead_code)]

pub mod pki;
pub mod prom;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The exporter binary built by cargo for this test run.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cdn-task-exporter"))
}

/// A free loopback port (bound then released). Another process can take
/// it before the caller does: only for programs that cannot listen on port
/// 0 and say where they went (Prometheus, Alertmanager).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback port that refuses connections for as long as this value
/// lives: bound but never listening, so the kernel answers every connect
/// with a reset and no other process can take the port meanwhile (a port
/// bound and released could be reused by anything on the machine).
pub struct ClosedPort {
    _socket: tokio::net::TcpSocket,
    pub port: u16,
}

impl ClosedPort {
    pub fn new() -> ClosedPort {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.1:0".parse().unwrap())
            .expect("bind a loopback port");
        let port = socket.local_addr().expect("bound address").port();
        ClosedPort {
            _socket: socket,
            port,
        }
    }
}

/// A running exporter process; killed on drop. Its stderr goes to a file so
/// tests can assert on log lines.
pub struct Exporter {
    pub child: Child,
    pub addr: String,
    pub dir: tempdir::TempDir,
    pub log: PathBuf,
}

/// Minimal temp-dir helper (std only).
pub mod tempdir {
    use std::path::{Path, PathBuf};
    pub struct TempDir(PathBuf);
    impl TempDir {
        pub fn new(tag: &str) -> TempDir {
            let p = std::env::temp_dir().join(format!(
                "cdn-exporter-{tag}-{}-{}",
                std::process::id(),
                super::unique()
            ));
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

impl Exporter {
    /// Writes `config` to a temp file and starts the binary on a free port,
    /// waiting until `/-/ready` answers.
    pub fn start(config: &str, extra_args: &[&str]) -> Exporter {
        Self::start_with_env(config, extra_args, &[])
    }

    /// As [`Exporter::start`], with extra environment variables.
    pub fn start_with_env(config: &str, extra_args: &[&str], env: &[(&str, &str)]) -> Exporter {
        let dir = tempdir::TempDir::new("bin");
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, config).unwrap();
        let mut args: Vec<std::ffi::OsString> = vec!["--config.file".into(), cfg.into()];
        args.extend(extra_args.iter().map(Into::into));
        let mut e = Self::spawn_in(dir, &args, env);
        e.wait_ready();
        e
    }

    /// Starts the binary with `args` (files they name live in `dir`) on
    /// port 0 and returns once it has bound: the address is the one the
    /// exporter's "listening" log line reports, so no port is picked by the
    /// test and released for someone else to take first.
    pub fn spawn_in(
        dir: tempdir::TempDir,
        args: &[std::ffi::OsString],
        env: &[(&str, &str)],
    ) -> Exporter {
        let log = dir.path().join("stderr.log");
        let mut cmd = Command::new(binary());
        cmd.arg("--web.listen-address")
            .arg("127.0.0.1:0")
            .args(args_keeping_listening_line(args));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start exporter binary");
        let mut e = Exporter {
            child,
            addr: String::new(),
            dir,
            log,
        };
        e.addr = e.wait_bound_address();
        e
    }

    /// Polls the log until the "listening" line names the bound address.
    fn wait_bound_address(&mut self) -> String {
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            if let Some(addr) = listening_address(&self.logs()) {
                return addr;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("exporter exited early with {status}: {}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "exporter logged no listening address in 20s: {}",
            self.logs()
        );
    }

    /// Waits until `/-/ready` answers 200 over plain HTTP.
    pub fn wait_ready(&mut self) {
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("exporter exited early with {status}: {}", self.logs());
            }
            if http_get(&self.addr, "/-/ready", &[])
                .map(|(s, _)| s == 200)
                .unwrap_or(false)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("exporter not ready in 20s: {}", self.logs());
    }

    /// Scrapes `/metrics`, with an optional scrape-timeout header.
    pub fn scrape(&self, timeout_header: Option<&str>) -> String {
        let headers: Vec<(&str, &str)> = timeout_header
            .map(|t| ("X-Prometheus-Scrape-Timeout-Seconds", t))
            .into_iter()
            .collect();
        let (status, body) = http_get(&self.addr, "/metrics", &headers).expect("scrape");
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Scrapes until the account's first sync has completed (its
    /// last-success timestamp is set), returning that scrape; panics with
    /// the exporter's logs after `timeout`.
    pub fn scrape_until_synced(&self, labels: &[(&str, &str)], timeout: Duration) -> String {
        let mut text = String::new();
        let synced = eventually(timeout, || {
            text = self.scrape(Some("10"));
            value(
                &parse_metrics(&text),
                "cdn_vendor_last_success_timestamp_seconds",
                labels,
            )
            .is_some_and(|v| v > 0.0)
        });
        assert!(synced, "first sync never completed: {}", self.logs());
        text
    }

    /// Everything the exporter logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `args` with a `--log.level` that keeps the "listening" line (info,
/// target `cdn_task_exporter::app`) whatever level the test asked for.
fn args_keeping_listening_line(args: &[std::ffi::OsString]) -> Vec<std::ffi::OsString> {
    let mut level = "info".to_string();
    let mut kept = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--log.level" {
            level = it
                .next()
                .expect("--log.level value")
                .to_string_lossy()
                .into();
        } else {
            kept.push(a.clone());
        }
    }
    if ["warn", "error", "off"]
        .iter()
        .any(|quiet| level.contains(quiet))
    {
        level.push_str(",cdn_task_exporter::app=info");
    }
    kept.push("--log.level".into());
    kept.push(level.into());
    kept
}

/// The address in the exporter's "listening" log line, logfmt
/// (`address=127.0.0.1:1234`) or JSON (`"address":"127.0.0.1:1234"`).
pub fn listening_address(logs: &str) -> Option<String> {
    logs.lines()
        .filter(|l| l.contains("listening"))
        .find_map(|l| {
            let rest = l
                .split_once("address=")
                .or_else(|| l.split_once("\"address\":\""))?
                .1;
            let addr: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']'))
                .collect();
            (!addr.is_empty()).then_some(addr)
        })
}

/// A minimal HTTP/1.1 GET over loopback (std only, so the harness does not
/// depend on the crate under test). Returns (status, body).
pub fn http_get(
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String)> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Parses exposition text into `name{labels}` → value, labels sorted.
pub fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut m = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = match value {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap(),
        };
        let key = match series.split_once('{') {
            Some((name, labels)) => {
                let mut parts: Vec<&str> = split_labels(labels.trim_end_matches('}'));
                parts.sort();
                format!("{name}{{{}}}", parts.join(","))
            }
            None => series.to_owned(),
        };
        m.insert(key, value);
    }
    m
}

fn split_labels(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut in_quotes, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            '\\' if in_quotes => escaped = !escaped,
            '"' if !escaped => in_quotes = !in_quotes,
            ',' if !in_quotes => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => escaped = false,
        }
        if c != '\\' {
            escaped = false;
        }
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// The value of one series; labels in any order, e.g.
/// `value(&m, "cdn_vendor_up", &[("account", "a"), ("vendor", "aliyun")])`.
pub fn value(m: &HashMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    parts.sort();
    m.get(&format!("{name}{{{}}}", parts.join(","))).copied()
}

/// Runs `promtool check metrics` on `text`; panics with its findings.
pub fn promtool_check_metrics(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is not on PATH; run scripts/install-deps.sh");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && findings.trim().is_empty(),
        "promtool check metrics found:\n{findings}"
    );
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Path inside the repository.
pub fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// A collector for test config text (no env vars, no files).
pub fn collector(
    yaml: &str,
    transport: std::sync::Arc<dyn cdn_task_exporter::http::Transport>,
    clock: cdn_task_exporter::clock::SharedClock,
) -> cdn_task_exporter::collector::Collector {
    let cfg =
        cdn_task_exporter::config::parse(yaml, "test.yml", &|_| None, &|_| Err("no files".into()))
            .unwrap_or_else(|e| panic!("{e}"));
    cdn_task_exporter::app::collector(&cfg, transport, clock)
}

/// The real HTTP transport, 1 MiB body cap.
pub fn reqwest() -> std::sync::Arc<dyn cdn_task_exporter::http::Transport> {
    std::sync::Arc::new(cdn_task_exporter::http::ReqwestTransport::new(1 << 20).expect("client"))
}

/// One scrape's worth of collection (25 s deadline), then the rendered
/// metrics and their parsed series.
pub async fn scrape(c: &cdn_task_exporter::collector::Collector) -> (String, HashMap<String, f64>) {
    c.collect(tokio::time::Instant::now() + Duration::from_secs(25))
        .await;
    let text = cdn_task_exporter::metrics::render(c, c.clock.unix());
    let m = parse_metrics(&text);
    (text, m)
}

/// Serves the exporter's routes for `c` on a free loopback port (in
/// process, real HTTP); returns the bound address.
pub async fn serve_app(
    c: std::sync::Arc<cdn_task_exporter::collector::Collector>,
) -> std::net::SocketAddr {
    let state = cdn_task_exporter::app::AppState::new(
        c,
        Duration::from_secs(10),
        Duration::from_millis(500),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(cdn_task_exporter::app::run(
        listener,
        cdn_task_exporter::app::router(state),
        std::future::pending(),
    ));
    addr
}

/// One account's series in a parsed exposition, found by its `vendor` and
/// `account` labels, so each vendor's tests name the account once.
#[derive(Debug, Clone, Copy)]
pub struct Account {
    pub vendor: &'static str,
    pub name: &'static str,
}

impl Account {
    /// The value of `metric` with this account's labels plus `extra`.
    pub fn series(
        &self,
        m: &HashMap<String, f64>,
        metric: &str,
        extra: &[(&str, &str)],
    ) -> Option<f64> {
        let mut labels = vec![("vendor", self.vendor), ("account", self.name)];
        labels.extend_from_slice(extra);
        value(m, metric, &labels)
    }

    /// `cdn_vendor_up`.
    pub fn up(&self, m: &HashMap<String, f64>) -> Option<f64> {
        self.series(m, "cdn_vendor_up", &[])
    }

    /// `cdn_vendor_api_requests_total` of one API and outcome. The exporter
    /// exports every outcome from the start, so a missing series is a
    /// failure of the test, named here.
    pub fn requests(&self, m: &HashMap<String, f64>, api: &str, outcome: &str) -> f64 {
        self.series(
            m,
            "cdn_vendor_api_requests_total",
            &[("api", api), ("outcome", outcome)],
        )
        .unwrap_or_else(|| {
            panic!(
                "no cdn_vendor_api_requests_total for {}/{} api={api} outcome={outcome}",
                self.vendor, self.name
            )
        })
    }

    /// `cdn_tasks` of one type and status.
    pub fn tasks(
        &self,
        m: &HashMap<String, f64>,
        t: cdn_task_exporter::task::TaskType,
        s: cdn_task_exporter::task::TaskStatus,
    ) -> Option<f64> {
        self.series(
            m,
            "cdn_tasks",
            &[("task_type", t.as_str()), ("status", s.as_str())],
        )
    }

    /// Config text with this one account: `settings` are further keys of
    /// the account, each line indented by four spaces.
    pub fn yaml(&self, endpoint: &str, id: &str, secret: &str, settings: &str) -> String {
        format!(
            "accounts:\n  - name: {}\n    vendor: {}\n    endpoint: {endpoint}\n    credentials: {{ id: \"{id}\", secret: \"{secret}\" }}\n{settings}\n",
            self.name, self.vendor
        )
    }
}

/// A world on `clock` holding `hours` of `traffic`, frozen (no new tasks
/// arrive while the test runs).
pub fn frozen_world(
    clock: cdn_task_exporter::clock::SharedClock,
    traffic: cdn_task_exporter::sim::Traffic,
    hours: u64,
) -> std::sync::Arc<cdn_task_exporter::sim::World> {
    let w = cdn_task_exporter::sim::World::new(clock);
    w.with_traffic(traffic, Duration::from_secs(hours * 3600));
    w.freeze();
    w
}

/// Serves a simulator's router on a free loopback port; its base URL.
pub async fn sim_endpoint(router: axum::Router) -> String {
    let (addr, _) = cdn_task_exporter::sim::serve(router)
        .await
        .expect("bind simulator");
    format!("http://{addr}")
}

/// The traffic the vendor tests use: 15 % of tasks fail, 5 % never finish.
pub fn traffic(
    seed: u64,
    per_hour: f64,
    types: &[cdn_task_exporter::task::TaskType],
) -> cdn_task_exporter::sim::Traffic {
    cdn_task_exporter::sim::Traffic {
        seed,
        tasks_per_hour: per_hour,
        failure_rate: 0.15,
        stall_rate: 0.05,
        task_types: types.to_vec(),
        max_urls: 5,
    }
}

/// The malformed bodies every vendor must turn into a `parse_error`:
/// garbage, HTML, a truncated answer and one of `huge` bytes (past the
/// account's response cap).
pub fn bad_bodies(huge: usize) -> [cdn_task_exporter::sim::Fault; 4] {
    use cdn_task_exporter::sim::Fault;
    [
        Fault::Garbage,
        Fault::Html,
        Fault::Truncated,
        Fault::Huge(huge),
    ]
}

/// Under each of [`bad_bodies`], a fresh collector from `collector` counts
/// one `parse_error` (and no `ok`) on `api`, marks `account` down and still
/// renders its metrics — never a panic. Leaves the simulator without fault.
pub async fn assert_bad_bodies_are_parse_errors(
    control: &cdn_task_exporter::sim::Control,
    account: Account,
    api: &str,
    huge: usize,
    collector: impl Fn() -> cdn_task_exporter::collector::Collector,
) {
    for fault in bad_bodies(huge) {
        control.set_fault(fault.clone());
        let (text, m) = scrape(&collector()).await;
        assert_eq!(account.requests(&m, api, "parse_error"), 1.0, "{fault:?}");
        assert_eq!(account.requests(&m, api, "ok"), 0.0, "{fault:?}");
        assert_eq!(account.up(&m), Some(0.0), "{fault:?}");
        assert!(
            text.contains("cdn_tasks{"),
            "{fault:?}: metrics still render"
        );
    }
    control.set_fault(cdn_task_exporter::sim::Fault::None);
}

/// What the simulator's log of `api` shows after it throttled: each
/// throttled answer was counted by the exporter as `throttled`, the next
/// request on that API came at least `min_gap` after it, and no second held
/// more than `budget` requests. Returns (requests, throttled, worst second)
/// for the test's report.
pub fn assert_throttling_handled(
    log: &[cdn_task_exporter::sim::Received],
    m: &HashMap<String, f64>,
    account: Account,
    api: &str,
    min_gap: Duration,
    budget: usize,
) -> (usize, usize, usize) {
    let calls: Vec<_> = log.iter().filter(|r| r.api == api).collect();
    let throttled = calls.iter().filter(|r| r.answer == "throttled").count();
    assert!(throttled > 0, "the simulator throttled {api}");
    assert_eq!(
        account.requests(m, api, "throttled"),
        throttled as f64,
        "every throttled answer is counted"
    );
    for pair in calls.windows(2) {
        if pair[0].answer == "throttled" {
            let gap = pair[1].at.duration_since(pair[0].at);
            assert!(gap >= min_gap, "{api}: retried after {gap:?}");
        }
    }
    let worst = cdn_task_exporter::sim::max_in_window(log, api, Duration::from_secs(1));
    assert!(
        worst <= budget,
        "{api}: {worst} requests in one second, budget {budget}/s"
    );
    (calls.len(), throttled, worst)
}

/// Adds `n` finished one-URL tasks of type `ty`, one a second from
/// `from`, ids `{prefix}{i:04}` — the finished tasks a listing pays pages
/// for, placed where a test needs re-listing to cost more than id lookups.
pub fn add_finished_tasks(
    world: &cdn_task_exporter::sim::World,
    ty: cdn_task_exporter::task::TaskType,
    from: i64,
    n: i64,
    prefix: &str,
) {
    for j in 0..n {
        world.add(cdn_task_exporter::sim::SimTask {
            id: format!("{prefix}{j:04}"),
            task_type: ty,
            created_at: from + j,
            domain: "www.example.com".into(),
            urls: vec![format!("https://www.example.com/{prefix}/f{j}.js")],
            queued_for: 0,
            runs_for: Some(1),
            fails: false,
        });
    }
}
