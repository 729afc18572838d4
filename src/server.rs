//! The HTTP server loop, plain and TLS: a cap on open connections, a
//! deadline from accept to a complete request head (TLS handshake
//! included), an idle keep-alive timeout, and limits on request heads and
//! bodies, so that slow or idle clients cannot hold the exporter's
//! connections (issue 17).
//!
//! A connection is *busy* from the moment its request head has been parsed
//! until its response body has been handed to hyper; otherwise it is
//! *idle* (waiting for its first request head, or for the next one on a
//! keep-alive connection). Busy connections are never closed by a limit.
//! When a new connection arrives at the cap, the server closes one idle
//! connection to make room — never-served connections first (oldest accept
//! first), then keep-alive connections (longest idle first); if every
//! connection is busy, the new connection waits and further ones stay in
//! the kernel's accept queue until one finishes.

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{header, Request, Response, StatusCode};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::time::Instant;

/// Request heads (request line and headers) larger than this get 431.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Request bodies declared larger than this get 413 (no endpoint takes a body).
pub const MAX_BODY_BYTES: u64 = 16 * 1024;
/// Lines about closed connections are logged at most this often.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// A wave's line waits this long after its first event, gathering counts.
const WAVE_GATHER: Duration = Duration::from_secs(1);
/// How long a keep-alive connection being closed may take to flush.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Limits of the HTTP server (`--web.read-header-timeout`,
/// `--web.idle-timeout`, `--web.max-connections`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From accept to a complete first request head, TLS handshake included.
    pub read_header_timeout: Duration,
    /// From the end of a response to the next complete request head on a
    /// keep-alive connection.
    pub idle_timeout: Duration,
    /// Open connections at most (those in a TLS handshake included).
    pub max_connections: usize,
}

impl Limits {
    pub const DEFAULT_READ_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
    pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            read_header_timeout: Self::DEFAULT_READ_HEADER_TIMEOUT,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Why the server closed a connection (the `reason` label of
/// `cdn_exporter_http_connections_rejected_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// An idle connection closed to make room for a new one at the cap.
    MaxConnections,
    /// No complete request head within the read-header timeout.
    HeaderTimeout,
    /// A keep-alive connection sent no next request within the idle timeout.
    IdleTimeout,
    /// The TLS handshake failed or did not finish within the read-header timeout.
    TlsHandshake,
    /// Request head over `MAX_HEADER_BYTES` or over 100 headers (answered 431).
    HeadTooLarge,
    /// Request body over `MAX_BODY_BYTES`, or of unknown length (answered 413/411).
    BodyTooLarge,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Reason::MaxConnections,
        Reason::HeaderTimeout,
        Reason::IdleTimeout,
        Reason::TlsHandshake,
        Reason::HeadTooLarge,
        Reason::BodyTooLarge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MaxConnections => "max_connections",
            Reason::HeaderTimeout => "header_timeout",
            Reason::IdleTimeout => "idle_timeout",
            Reason::TlsHandshake => "tls_handshake",
            Reason::HeadTooLarge => "head_too_large",
            Reason::BodyTooLarge => "body_too_large",
        }
    }
}

/// The TLS config new connections are accepted with. A reload swaps it
/// (certificate rotation without a restart); connections already open keep
/// the config they were accepted with.
#[derive(Clone)]
pub struct TlsSource(Arc<std::sync::RwLock<Arc<rustls::ServerConfig>>>);

impl TlsSource {
    /// A source serving `config` until [`TlsSource::set`].
    pub fn new(config: Arc<rustls::ServerConfig>) -> Self {
        TlsSource(Arc::new(std::sync::RwLock::new(config)))
    }

    /// The config for the next connection.
    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Serves `config` to connections accepted from now on.
    pub fn set(&self, config: Arc<rustls::ServerConfig>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = config;
    }
}

impl From<Arc<rustls::ServerConfig>> for TlsSource {
    fn from(config: Arc<rustls::ServerConfig>) -> Self {
        TlsSource::new(config)
    }
}

/// Process-wide counters (one server per process, like `process_*`).
static REJECTED: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// Connections closed for `reason` so far.
pub fn rejected(reason: Reason) -> u64 {
    REJECTED[reason as usize].load(Ordering::Relaxed)
}

/// Open HTTP connections, TLS handshakes included.
pub fn open_connections() -> usize {
    OPEN.load(Ordering::Relaxed)
}

/// Counts per reason since the last log line; one line per wave.
#[derive(Default)]
struct WaveLog {
    last: Option<Instant>,
    pending: [u64; 6],
    cap_hits: u64,
    accept_errors: u64,
    flush_scheduled: bool,
}

impl WaveLog {
    /// The counts since the last line, and whether they are only idle
    /// timeouts (routine: a scrape interval longer than the idle timeout).
    fn take_line(&mut self) -> Option<(String, bool)> {
        let quiet = self.cap_hits == 0
            && self.accept_errors == 0
            && Reason::ALL
                .iter()
                .all(|&r| r == Reason::IdleTimeout || self.pending[r as usize] == 0);
        let mut line = String::new();
        for r in Reason::ALL {
            let n = std::mem::take(&mut self.pending[r as usize]);
            if n > 0 {
                let _ = write!(line, " {}={n}", r.as_str());
            }
        }
        for (name, n) in [
            ("cap_hits", std::mem::take(&mut self.cap_hits)),
            ("accept_errors", std::mem::take(&mut self.accept_errors)),
        ] {
            if n > 0 {
                let _ = write!(line, " {name}={n}");
            }
        }
        (!line.is_empty()).then_some((line, quiet))
    }
}

/// What every connection task shares.
struct Shared {
    limits: Limits,
    router: Router,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    log: Mutex<WaveLog>,
    log_interval: Duration,
    shutdown: watch::Receiver<bool>,
}

/// One open connection.
struct Conn {
    accepted: Instant,
    /// Requests whose head was parsed and whose response body is not yet done.
    in_flight: AtomicUsize,
    /// Request heads parsed so far.
    served: AtomicU64,
    /// When the last response body finished (the idle timeout runs from here).
    idle_since: Mutex<Instant>,
    /// Asked to close to make room; cleared if it turned busy meanwhile.
    evicting: AtomicBool,
    evict: Notify,
    /// A request started or finished.
    changed: Notify,
}

impl Conn {
    fn is_busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    fn served(&self) -> u64 {
        self.served.load(Ordering::Acquire)
    }

    fn idle_since(&self) -> Instant {
        *self.idle_since.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When an idle connection is closed, and why; `None` while busy.
    fn deadline(&self, limits: &Limits) -> Option<(Instant, Reason)> {
        if self.is_busy() {
            None
        } else if self.served() == 0 {
            Some((
                self.accepted + limits.read_header_timeout,
                Reason::HeaderTimeout,
            ))
        } else {
            Some((self.idle_since() + limits.idle_timeout, Reason::IdleTimeout))
        }
    }
}

impl Shared {
    fn new(limits: Limits, router: Router, shutdown: watch::Receiver<bool>) -> Self {
        Shared {
            limits,
            router,
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            log: Mutex::new(WaveLog::default()),
            log_interval: LOG_INTERVAL,
            shutdown,
        }
    }

    /// Counts and logs (rate-limited) a connection closed for `reason`.
    fn reject(self: &Arc<Self>, reason: Reason) {
        REJECTED[reason as usize].fetch_add(1, Ordering::Relaxed);
        self.wave(|w| w.pending[reason as usize] += 1);
    }

    /// Records an event in the wave log. The line comes a moment after the
    /// first event of a wave (so that it carries the wave's counts), and at
    /// most once per interval.
    fn wave(self: &Arc<Self>, event: impl FnOnce(&mut WaveLog)) {
        let mut w = self.log.lock().unwrap_or_else(|e| e.into_inner());
        event(&mut w);
        if w.flush_scheduled {
            return;
        }
        w.flush_scheduled = true;
        let soon = Instant::now() + WAVE_GATHER;
        let at = match w.last {
            Some(last) => soon.max(last + self.log_interval),
            None => soon,
        };
        let shared = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            let mut w = shared.log.lock().unwrap_or_else(|e| e.into_inner());
            w.flush_scheduled = false;
            if let Some((line, quiet)) = w.take_line() {
                w.last = Some(Instant::now());
                log_wave(&line, quiet);
            }
        });
    }

    /// Asks the best idle connection to close: never-served ones first
    /// (oldest accept first), then keep-alive ones (longest idle first).
    /// Does nothing while an earlier eviction is still under way.
    fn evict_one(&self) {
        let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if conns.values().any(|c| c.evicting.load(Ordering::Acquire)) {
            return;
        }
        let victim = conns
            .values()
            .filter(|c| !c.is_busy())
            .min_by_key(|c| match c.served() {
                0 => (0, c.accepted),
                _ => (1, c.idle_since()),
            });
        if let Some(c) = victim {
            c.evicting.store(true, Ordering::Release);
            c.evict.notify_one();
        }
    }
}

fn log_wave(counts: &str, quiet: bool) {
    const MSG: &str =
        "HTTP server limits closed or delayed connections (counts since the last such line)";
    if quiet {
        tracing::info!(counts = counts.trim(), "{MSG}");
    } else {
        tracing::warn!(counts = counts.trim(), "{MSG}");
    }
}

/// Serves `router` on `listener` (over TLS when `tls` is set) within
/// `limits` until `shutdown` resolves; then stops accepting, closes idle
/// connections, lets in-flight requests finish and returns.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsSource>,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if limits.max_connections == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "max_connections must be at least 1",
        ));
    }
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let shared = Arc::new(Shared::new(limits, router, stopped.clone()));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut stopped = stopped;
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(error) => {
                    // Typically out of file descriptors: back off, as axum does.
                    tracing::debug!(%error, "accept failed");
                    shared.wave(|w| w.accept_errors += 1);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = until_stopped(&mut stopped) => break,
        };
        let accepted = Instant::now();
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                shared.wave(|w| w.cap_hits += 1);
                // Make room by closing an idle connection; while every
                // connection is busy, wait (new ones queue in the kernel).
                let permit = loop {
                    shared.evict_one();
                    tokio::select! {
                        p = slots.clone().acquire_owned() => break p.ok(),
                        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                        _ = until_stopped(&mut stopped) => break None,
                    }
                };
                match permit {
                    Some(p) => p,
                    None => break,
                }
            }
        };
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            accepted,
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            idle_since: Mutex::new(accepted),
            evicting: AtomicBool::new(false),
            evict: Notify::new(),
            changed: Notify::new(),
        });
        shared
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, conn.clone());
        OPEN.fetch_add(1, Ordering::Relaxed);
        let shared = shared.clone();
        let tls = tls
            .as_ref()
            .map(|t| tokio_rustls::TlsAcceptor::from(t.current()));
        tokio::spawn(async move {
            let _slot = permit;
            let _registered = Registered(shared.clone(), id);
            connection(tcp, peer, tls, shared, conn).await;
        });
    }
    drop(listener);
    // Every connection task holds a slot until it ends.
    let _ = slots
        .acquire_many(limits.max_connections.try_into().unwrap_or(u32::MAX))
        .await;
    Ok(())
}

/// Resolves once shutdown has begun (never holds the watch's lock across
/// an await, which would make the server future `!Send`).
async fn until_stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Removes a connection from the registry when its task ends.
struct Registered(Arc<Shared>, u64);

impl Drop for Registered {
    fn drop(&mut self) {
        self.0
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.1);
        OPEN.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    conn: Arc<Conn>,
) {
    let Some(tls) = tls else {
        return http(tcp, shared, conn).await;
    };
    let deadline = conn.accepted + shared.limits.read_header_timeout;
    let mut stopped = shared.shutdown.clone();
    // Decide first, serve after: no notification may go to a future left
    // behind in a finished `select!`.
    let stream = tokio::select! {
        r = tokio::time::timeout_at(deadline, tls.accept(tcp)) => match r {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(error)) => {
                tracing::debug!(%peer, %error, "TLS handshake failed");
                shared.reject(Reason::TlsHandshake);
                None
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                shared.reject(Reason::TlsHandshake);
                None
            }
        },
        _ = conn.evict.notified() => {
            shared.reject(Reason::MaxConnections);
            None
        }
        _ = until_stopped(&mut stopped) => None,
    };
    if let Some(stream) = stream {
        http(stream, shared, conn).await;
    }
}

/// Serves HTTP/1.1 on an established stream until the client or a limit
/// ends it.
async fn http<I>(io: I, shared: Arc<Shared>, conn: Arc<Conn>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = {
        let (shared, conn) = (shared.clone(), conn.clone());
        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let guard = InFlight::start(conn.clone());
            let shared = shared.clone();
            async move {
                let res = match body_refusal(&req) {
                    Some(res) => {
                        shared.reject(Reason::BodyTooLarge);
                        res
                    }
                    None => {
                        let router = shared.router.clone();
                        let Ok(res) = tower::ServiceExt::oneshot(router, req).await;
                        res
                    }
                };
                Ok::<_, std::convert::Infallible>(res.map(|inner| Guarded {
                    inner,
                    _guard: guard,
                }))
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // Our own deadlines below cover the head; hyper's would race them.
        .header_read_timeout(None)
        .max_header_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    let http = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(http);
    let mut stopped = shared.shutdown.clone();
    let mut draining = false;
    loop {
        let deadline = conn.deadline(&shared.limits);
        let wake = deadline.map(|(at, _)| at);
        tokio::select! {
            r = http.as_mut() => {
                if let Err(e) = r {
                    if e.is_parse_too_large() {
                        shared.reject(Reason::HeadTooLarge);
                    } else {
                        tracing::debug!(error = %e, "HTTP connection ended with an error");
                    }
                }
                return;
            }
            _ = conn.changed.notified() => {}
            _ = async { tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)).await }, if wake.is_some() => {
                if let Some((at, reason)) = conn.deadline(&shared.limits) {
                    if Instant::now() >= at {
                        shared.reject(reason);
                        break;
                    }
                }
            }
            _ = conn.evict.notified() => {
                if conn.is_busy() {
                    conn.evicting.store(false, Ordering::Release);
                } else {
                    shared.reject(Reason::MaxConnections);
                    break;
                }
            }
            _ = until_stopped(&mut stopped), if !draining => {
                draining = true;
                if conn.served() == 0 && !conn.is_busy() {
                    return;
                }
                // Idle keep-alive connections close, in-flight requests finish.
                http.as_mut().graceful_shutdown();
            }
        }
    }
    // Closing an idle connection: one that never completed a request has
    // nothing to flush; a keep-alive one may still be flushing its last
    // response, so let hyper close it cleanly, briefly.
    if conn.served() > 0 {
        http.as_mut().graceful_shutdown();
        let _ = tokio::time::timeout(CLOSE_GRACE, http.as_mut()).await;
    }
}

/// Requests with a body we would not read: declared over the limit (413),
/// or of unknown length (411; no endpoint takes a body).
fn body_refusal<B>(req: &Request<B>) -> Option<Response<Body>> {
    let status = if req.headers().contains_key(header::TRANSFER_ENCODING) {
        StatusCode::LENGTH_REQUIRED
    } else {
        let length = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())?;
        if length <= MAX_BODY_BYTES {
            return None;
        }
        StatusCode::PAYLOAD_TOO_LARGE
    };
    let mut res = Response::new(Body::from(format!(
        "{}\n",
        status.canonical_reason().unwrap_or("refused")
    )));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    Some(res)
}

/// Marks a connection busy from request head to the end of the response body.
struct InFlight(Arc<Conn>);

impl InFlight {
    fn start(conn: Arc<Conn>) -> Self {
        conn.served.fetch_add(1, Ordering::AcqRel);
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        conn.changed.notify_one();
        InFlight(conn)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.idle_since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_one();
    }
}

/// A response body that keeps its connection busy until it is done.
struct Guarded {
    inner: Body,
    _guard: InFlight,
}

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captures formatted log lines.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Lines {
        fn take(&self) -> Vec<String> {
            let text = String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap();
            text.lines().map(str::to_owned).collect()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_log_line_per_wave_with_counts_at_most_every_interval() {
        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let (_stop, stopped) = watch::channel(false);
        let shared = Arc::new(Shared::new(Limits::default(), Router::new(), stopped));

        // A wave: one line a moment later, with every count of the wave.
        for _ in 0..3 {
            shared.reject(Reason::HeaderTimeout);
        }
        shared.wave(|w| w.cap_hits += 1);
        shared.reject(Reason::MaxConnections);
        tokio::time::sleep(WAVE_GATHER / 2).await;
        assert!(
            lines.take().is_empty(),
            "logged before the wave was gathered"
        );
        tokio::time::sleep(WAVE_GATHER).await;
        let got = lines.take();
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("WARN"), "{got:?}");
        assert!(
            got[0].contains("max_connections=1 header_timeout=3 cap_hits=1"),
            "{got:?}"
        );

        // The next wave, 2 s later, waits for the interval to pass.
        tokio::time::sleep(Duration::from_secs(2)).await;
        for _ in 0..5 {
            shared.reject(Reason::IdleTimeout);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert!(lines.take().is_empty(), "two lines within {LOG_INTERVAL:?}");
        tokio::time::sleep(LOG_INTERVAL).await;
        let got = lines.take();
        assert_eq!(got.len(), 1, "{got:?}");
        // Idle timeouts alone are routine: info, not warn.
        assert!(
            got[0].contains("INFO") && got[0].contains("idle_timeout=5"),
            "{got:?}"
        );
        tokio::time::sleep(LOG_INTERVAL * 3).await;
        assert!(lines.take().is_empty(), "a line without events");
    }

    #[test]
    fn defaults_are_safe() {
        let d = Limits::default();
        // A scrape's head arrives in milliseconds; a stalled client gives
        // its slot back within Prometheus' default scrape timeout (10 s).
        assert!(d.read_header_timeout <= Duration::from_secs(10));
        // Prometheus reuses its connection at intervals up to a minute.
        assert!(d.idle_timeout > Duration::from_secs(60));
        // Far below a usual 1024 open-file limit, far above a few Prometheus
        // servers and a browser.
        assert!((64..=1000).contains(&d.max_connections));
    }
}
