//! Wiring: config → collector → HTTP router, and the server loop.

use crate::auth::{self, BasicAuth};
use crate::clock::SharedClock;
use crate::collector::{Collector, ReloadSummary};
use crate::config::Config;
use crate::http::Transport;
use crate::metrics;
use crate::server;
use crate::web_config::WebConfig;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    pub collector: Arc<Collector>,
    /// Deadline when Prometheus sends no scrape timeout header.
    pub scrape_timeout: Duration,
    /// Answer this much before Prometheus' own deadline.
    pub scrape_timeout_margin: Duration,
    /// Keeps each account's rendered text until the account changes.
    pub renderer: Arc<metrics::Renderer>,
}

impl AppState {
    /// The handlers' state, with the renderer hooked to the collector's
    /// refreshes: each account's text is rendered when its refresh
    /// completes, not by the scrape that first shows it.
    pub fn new(
        collector: Arc<Collector>,
        scrape_timeout: Duration,
        scrape_timeout_margin: Duration,
    ) -> Self {
        let renderer = Arc::new(metrics::Renderer::new());
        let hooked = Arc::clone(&renderer);
        collector.on_publish(move |a| hooked.prerender(a));
        AppState {
            collector,
            scrape_timeout,
            scrape_timeout_margin,
            renderer,
        }
    }
}

/// How `serve` presents itself.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Answer /-/healthy and /-/ready without basic auth.
    pub health_without_auth: bool,
    /// Print the landing page and metrics URLs on stdout (demo).
    pub announce: bool,
    /// Connection limits and timeouts of the HTTP server.
    pub limits: server::Limits,
    /// `--web.external-url`: the base of the links the exporter prints.
    pub external_url: Option<String>,
    /// `--storage.path`: the state directory, `None` for no state.
    pub storage: Option<std::path::PathBuf>,
    /// Reads the config files again on SIGHUP and `POST /-/reload`; `None`
    /// (the demo) refuses reloads.
    pub reloader: Option<Reloader>,
    /// `--web.enable-lifecycle`: serve `POST /-/reload` (403 without it).
    pub enable_lifecycle: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            health_without_auth: true,
            announce: false,
            limits: server::Limits::default(),
            external_url: None,
            storage: None,
            reloader: None,
            enable_lifecycle: false,
        }
    }
}

/// Where the config comes from and how this replica cuts it: the file, its
/// shard and its budget share. One loader for `serve`, `check-config`,
/// `check-credentials` and a reload, so that all of them see the same
/// accounts with the same budgets.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    pub path: std::path::PathBuf,
    pub shard: crate::shard::Shard,
    /// `--budget.share`, in (0, 1].
    pub budget_share: f64,
}

impl ConfigSource {
    /// Reads and validates the file, then keeps only this shard's accounts
    /// with their budgets scaled by the share. The error is the whole
    /// message to print (file and key, or the flag at fault).
    pub fn load(&self) -> Result<Config, String> {
        let mut config = crate::config::load(&self.path).map_err(|e| e.to_string())?;
        crate::shard::partition(&mut config, self.shard, self.budget_share)
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        Ok(config)
    }
}

/// The loader of the config and web config files, the one used at start
/// (built in `cli`, with every step after `config::load` such as sharding),
/// so that a reload sees exactly what a restart would. Errors are complete
/// messages naming file and key.
#[derive(Clone)]
pub struct Reloader(Arc<LoadFn>);

type LoadFn = dyn Fn() -> Result<(Config, WebConfig), String> + Send + Sync;

impl Reloader {
    pub fn new(
        load: impl Fn() -> Result<(Config, WebConfig), String> + Send + Sync + 'static,
    ) -> Self {
        Reloader(Arc::new(load))
    }

    /// Reads and validates both files.
    pub fn load(&self) -> Result<(Config, WebConfig), String> {
        (self.0)()
    }
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reloader")
    }
}

/// The settings a reload cannot change (they are built into the transport
/// and the handlers' state at start); a change is logged, not applied.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Fixed {
    scrape_timeout: Duration,
    scrape_timeout_margin: Duration,
    max_response_bytes: usize,
    max_in_flight_per_endpoint: usize,
}

impl Fixed {
    fn of(c: &Config) -> Self {
        Fixed {
            scrape_timeout: c.scrape_timeout,
            scrape_timeout_margin: c.scrape_timeout_margin,
            max_response_bytes: c.max_response_bytes,
            max_in_flight_per_endpoint: c.max_in_flight_per_endpoint,
        }
    }
}

/// What a reload swaps, and the lock that runs reloads one at a time.
pub struct Reload {
    loader: Option<Reloader>,
    collector: Arc<Collector>,
    guard: Arc<Guard>,
    tls: Option<server::TlsSource>,
    fixed: Mutex<Fixed>,
    lifecycle: bool,
}

impl Reload {
    /// Reads the files again and applies them, or keeps everything as it
    /// runs when either is bad. Blocking (file reads): call it off the
    /// async runtime.
    pub fn run(&self) -> Result<ReloadSummary, String> {
        let fixed = self.fixed.lock().unwrap_or_else(|p| p.into_inner());
        let result = match &self.loader {
            None => Err("this exporter cannot reload its configuration (demo)".to_owned()),
            Some(l) => l.load().and_then(|(config, web)| {
                if web.tls.is_some() != self.tls.is_some() {
                    Err("--web.config.file: key \"tls_server_config\": a reload cannot turn TLS on or off; restart the exporter".to_owned())
                } else {
                    Ok((config, web))
                }
            }),
        };
        let now = self.collector.clock.unix();
        let (config, web) = match result {
            Ok(v) => v,
            Err(e) => {
                self.collector.record_reload(false, now);
                tracing::error!(error = %e, "configuration reload failed; the running configuration stays");
                return Err(e);
            }
        };
        for w in &config.warnings {
            tracing::warn!(warning = %w, "config adjusted");
        }
        if Fixed::of(&config) != *fixed {
            tracing::warn!("scrape_timeout, scrape_timeout_margin, max_response_bytes and max_in_flight_per_endpoint take effect on restart, not on reload");
        }
        let summary = self.collector.reconfigure(config.accounts);
        self.collector.set_placement(config.placement);
        self.guard.set(&web);
        if let (Some(source), Some(tls)) = (&self.tls, web.tls) {
            source.set(tls);
        }
        self.collector.record_reload(true, now);
        tracing::info!(
            kept = summary.kept.len(),
            restarted = summary.restarted.len(),
            added = summary.added.len(),
            removed = summary.removed.len(),
            tls = self.tls.is_some(),
            basic_auth = !web.basic_auth_users.is_empty(),
            "configuration reloaded"
        );
        Ok(summary)
    }

    /// [`Reload::run`] on a blocking thread.
    pub async fn run_async(self: &Arc<Self>) -> Result<ReloadSummary, String> {
        let me = Arc::clone(self);
        tokio::task::spawn_blocking(move || me.run())
            .await
            .unwrap_or_else(|e| Err(format!("reload failed: {e}")))
    }
}

/// `/-/reload`: POST or PUT reloads (with `--web.enable-lifecycle`), as
/// Prometheus' endpoint does.
async fn reload_handler(State(r): State<Arc<Reload>>) -> Response {
    if !r.lifecycle {
        return (StatusCode::FORBIDDEN, "Lifecycle API is not enabled.\n").into_response();
    }
    match r.run_async().await {
        Ok(s) => format!(
            "configuration reloaded: {} kept, {} restarted, {} added, {} removed\n",
            s.kept.len(),
            s.restarted.len(),
            s.added.len(),
            s.removed.len()
        )
        .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

async fn reload_wrong_method() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, "POST, PUT")],
        "Only POST or PUT requests allowed\n",
    )
        .into_response()
}

/// Reloads on every SIGHUP, for as long as the server runs.
fn reload_on_sighup(reload: Arc<Reload>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::hangup()) {
            Ok(mut hup) => {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        tracing::info!("SIGHUP: reloading the configuration");
                        let _ = reload.run_async().await;
                    }
                });
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP; reload with POST /-/reload")
            }
        }
    }
    #[cfg(not(unix))]
    drop(reload);
}

/// Binds the listen address (`host:port`; port 0 picks a free one, and the
/// bound address is logged by `serve`).
pub async fn bind(address: &str) -> anyhow::Result<tokio::net::TcpListener> {
    use anyhow::Context;
    tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))
}

/// Runs the exporter for a validated config on `listener` until `shutdown`
/// completes: the collector, the routes, TLS and basic auth per `web`.
pub async fn serve(
    config: Config,
    web: WebConfig,
    listener: tokio::net::TcpListener,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    for w in &config.warnings {
        tracing::warn!(warning = %w, "config adjusted");
    }
    let transport = Arc::new(crate::http::ReqwestTransport::new(
        config.max_response_bytes,
    )?);
    let clock: crate::clock::SharedClock = Arc::new(crate::clock::SystemClock);
    let store = opts.storage.as_deref().and_then(|dir| {
        match crate::state::StateStore::open(dir, clock.clone()) {
            Ok(s) => {
                tracing::info!(path = %dir.display(), interval = ?config.state_interval, "state directory");
                Some(Arc::new(s))
            }
            Err(e) => {
                tracing::warn!(path = %dir.display(), error = %e, "cannot use the state directory; running without state (restarts start fresh)");
                None
            }
        }
    });
    let c = Collector::with_state(config.accounts.clone(), transport, clock, store.clone());
    c.set_max_in_flight_per_endpoint(config.max_in_flight_per_endpoint);
    c.set_placement(config.placement.clone());
    let collector = Arc::new(c);
    // The state writer: every state_interval, and once more at shutdown
    // after the refreshes in flight are cancelled. One task does both, so
    // two writes of one file never overlap (an older one could land last).
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let writer = store.is_some().then(|| {
        let collector = collector.clone();
        let every = config.state_interval;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => collector.save_state().await,
                    _ = stopped.changed() => break,
                }
            }
            for a in collector.accounts().iter() {
                a.stop_refresh();
            }
            collector.save_state().await;
            tracing::info!("state saved");
        })
    });
    let state = AppState::new(
        collector,
        config.scrape_timeout,
        config.scrape_timeout_margin,
    );
    let addr = listener.local_addr()?;
    if opts.announce {
        let base = opts
            .external_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        println!("exporter landing page: {base}/");
        println!("exporter tasks:        {base}/tasks");
        println!("exporter metrics:      {base}/metrics");
    }
    tracing::info!(
        address = %addr,
        accounts = config.accounts.len(),
        shard = %config.placement.shard,
        other_shards_accounts = config.placement.unowned.len(),
        tls = web.tls.is_some(),
        basic_auth = !web.basic_auth_users.is_empty(),
        read_header_timeout = ?opts.limits.read_header_timeout,
        idle_timeout = ?opts.limits.idle_timeout,
        max_connections = opts.limits.max_connections,
        "listening"
    );
    let guard = Guard::new(&web, opts.health_without_auth);
    let tls = web.tls.clone().map(server::TlsSource::new);
    let reload = Arc::new(Reload {
        loader: opts.reloader.clone(),
        collector: Arc::clone(&state.collector),
        guard: Arc::clone(&guard),
        tls: tls.clone(),
        fixed: Mutex::new(Fixed::of(&config)),
        lifecycle: opts.enable_lifecycle,
    });
    reload_on_sighup(Arc::clone(&reload));
    let routes = router(state).merge(
        Router::new()
            .route(
                "/-/reload",
                axum::routing::post(reload_handler)
                    .put(reload_handler)
                    .fallback(reload_wrong_method),
            )
            .with_state(reload),
    );
    let router = secure_with(routes, guard);
    let served = server::serve(listener, tls, router, opts.limits, shutdown).await;
    if let Some(w) = writer {
        let _ = stop.send(true);
        let _ = w.await;
    }
    served?;
    Ok(())
}

/// Builds the collector for a validated config.
pub fn collector(config: &Config, transport: Arc<dyn Transport>, clock: SharedClock) -> Collector {
    let c = Collector::new(config.accounts.clone(), transport, clock);
    c.set_max_in_flight_per_endpoint(config.max_in_flight_per_endpoint);
    c.set_placement(config.placement.clone());
    c
}

/// The exporter's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/-/healthy", get(|| async { "Healthy\n" }))
        .route("/-/ready", get(|| async { "Ready\n" }))
        .route("/", get(crate::web::landing::page))
        .route("/tasks", get(crate::web::tasks::page))
        .route("/api/v1/tasks", get(crate::web::tasks::api))
        .with_state(state)
}

/// The scrape deadline: Prometheus' own timeout header minus the margin,
/// else the configured default minus the margin.
pub fn scrape_deadline(headers: &HeaderMap, default: Duration, margin: Duration) -> Duration {
    let timeout = headers
        .get("x-prometheus-scrape-timeout-seconds")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v > 0.0)
        .map(|v| Duration::from_secs_f64(v.min(3600.0)))
        .unwrap_or(default);
    timeout.saturating_sub(margin)
}

/// True when `Accept-Encoding` admits gzip: listed (or `*`, when gzip is
/// not listed) with a q-value above 0. A q-value that does not parse counts
/// as 0: plain text is always acceptable, so doubt falls back to it.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1.0), |(_, v)| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0);
            let ok = q > 0.0 && q.is_finite();
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                gzip = Some(gzip.unwrap_or(false) || ok);
            } else if coding == "*" {
                any = Some(ok);
            }
        }
    }
    gzip.or(any).unwrap_or(false)
}

async fn metrics_handler(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let budget = scrape_deadline(&headers, s.scrape_timeout, s.scrape_timeout_margin);
    s.collector
        .scrape(tokio::time::Instant::now() + budget)
        .await;
    let now = s.collector.clock.unix();
    // Whether the body is compressed depends on this header: caches must
    // key on it.
    let vary = (header::VARY, "Accept-Encoding");
    if accepts_gzip(&headers) {
        let body = s.renderer.exposition_gzip(&s.collector, now);
        tracing::debug!(
            event = "scrape",
            encoding = "gzip",
            bytes = body.len(),
            pieces = body.pieces(),
            "metrics served"
        );
        (
            [
                (header::CONTENT_TYPE, metrics::CONTENT_TYPE),
                (header::CONTENT_ENCODING, "gzip"),
                vary,
            ],
            axum::body::Body::new(body),
        )
            .into_response()
    } else {
        let body = s.renderer.exposition(&s.collector, now);
        tracing::debug!(
            event = "scrape",
            encoding = "identity",
            bytes = body.len(),
            pieces = body.pieces(),
            "metrics served"
        );
        (
            [(header::CONTENT_TYPE, metrics::CONTENT_TYPE), vary],
            axum::body::Body::new(body),
        )
            .into_response()
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, within the
/// default [`server::Limits`].
pub async fn run(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::serve(listener, None, router, server::Limits::default(), shutdown).await
}

/// Wraps `router` in what the web config asks for: basic auth (health
/// paths exempt when `health_without_auth`) and extra response headers,
/// which are added to every response, a 401 included.
pub fn secure(router: Router, web: &WebConfig, health_without_auth: bool) -> Router {
    secure_with(router, Guard::new(web, health_without_auth))
}

/// [`secure`] with the protection taken from `guard` per request, so that
/// a reload can swap users and headers.
pub fn secure_with(router: Router, guard: Arc<Guard>) -> Router {
    router.layer(axum::middleware::from_fn_with_state(guard, protect))
}

/// Basic auth and response headers of the current web config.
pub struct Guard {
    current: RwLock<Arc<Protection>>,
    health_without_auth: bool,
}

struct Protection {
    auth: Option<Arc<BasicAuth>>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Guard {
    /// Protection as `web` asks.
    pub fn new(web: &WebConfig, health_without_auth: bool) -> Arc<Guard> {
        let g = Guard {
            current: RwLock::new(Arc::new(Protection {
                auth: None,
                headers: Vec::new(),
            })),
            health_without_auth,
        };
        g.set(web);
        Arc::new(g)
    }

    /// Protects requests from now on as `web` asks (a new user list also
    /// forgets the remembered successful checks).
    pub fn set(&self, web: &WebConfig) {
        let p = Protection {
            auth: (!web.basic_auth_users.is_empty()).then(|| {
                Arc::new(BasicAuth::new(
                    web.basic_auth_users.clone(),
                    self.health_without_auth,
                ))
            }),
            headers: web.headers.clone(),
        };
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(p);
    }

    fn current(&self) -> Arc<Protection> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

async fn protect(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let p = guard.current();
    let mut res = match &p.auth {
        Some(auth) => auth::guard(Arc::clone(auth), req, next).await,
        None => next.run(req).await,
    };
    for (name, value) in &p.headers {
        res.headers_mut().insert(name.clone(), value.clone());
    }
    res
}

/// Serves `router` over TLS on `listener` until `shutdown` resolves, within
/// the default [`server::Limits`].
pub async fn run_tls(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::serve(
        listener,
        Some(tls.into()),
        router,
        server::Limits::default(),
        shutdown,
    )
    .await
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_served_only_when_accept_encoding_admits_it() {
        let with = |v: &[&str]| {
            let mut h = HeaderMap::new();
            for v in v {
                h.append(header::ACCEPT_ENCODING, v.parse().unwrap());
            }
            accepts_gzip(&h)
        };
        assert!(!with(&[]));
        // Prometheus' own header.
        assert!(with(&["gzip"]));
        assert!(with(&["deflate, GZIP;q=0.5"]));
        assert!(with(&["br", "gzip"]), "every header line counts");
        assert!(with(&["*"]));
        assert!(with(&["x-gzip"]));
        assert!(!with(&["gzip;q=0"]));
        assert!(!with(&["gzip; q=0.000"]));
        assert!(!with(&["identity"]));
        assert!(!with(&["deflate, br"]));
        assert!(!with(&["*;q=0"]));
        assert!(!with(&["*, gzip;q=0"]), "gzip's own q-value wins over *");
        assert!(!with(&["gzip;q=bogus"]), "doubt falls back to plain");
    }

    #[test]
    fn deadline_honours_prometheus_header() {
        let mut h = HeaderMap::new();
        let d = Duration::from_secs(10);
        let m = Duration::from_millis(500);
        assert_eq!(scrape_deadline(&h, d, m), Duration::from_millis(9500));
        h.insert(
            "x-prometheus-scrape-timeout-seconds",
            "2.5".parse().unwrap(),
        );
        assert_eq!(scrape_deadline(&h, d, m), Duration::from_secs(2));
        h.insert(
            "x-prometheus-scrape-timeout-seconds",
            "garbage".parse().unwrap(),
        );
        assert_eq!(scrape_deadline(&h, d, m), Duration::from_millis(9500));
        h.insert(
            "x-prometheus-scrape-timeout-seconds",
            "0.2".parse().unwrap(),
        );
        assert_eq!(scrape_deadline(&h, d, m), Duration::ZERO);
    }
}
