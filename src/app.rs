//! Wiring: config → collector → HTTP router, and the server loop.

use crate::auth::{self, BasicAuth};
use crate::clock::SharedClock;
use crate::collector::Collector;
use crate::config::Config;
use crate::http::Transport;
use crate::metrics;
use crate::server;
use crate::web_config::WebConfig;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::future::Future;
use std::sync::Arc;
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
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            health_without_auth: true,
            announce: false,
            limits: server::Limits::default(),
            external_url: None,
        }
    }
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
    let collector = Arc::new(collector(
        &config,
        transport,
        Arc::new(crate::clock::SystemClock),
    ));
    let state = AppState {
        collector,
        scrape_timeout: config.scrape_timeout,
        scrape_timeout_margin: config.scrape_timeout_margin,
        renderer: Default::default(),
    };
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
        tls = web.tls.is_some(),
        basic_auth = !web.basic_auth_users.is_empty(),
        read_header_timeout = ?opts.limits.read_header_timeout,
        idle_timeout = ?opts.limits.idle_timeout,
        max_connections = opts.limits.max_connections,
        "listening"
    );
    let router = secure(router(state), &web, opts.health_without_auth);
    server::serve(listener, web.tls, router, opts.limits, shutdown).await?;
    Ok(())
}

/// Builds the collector for a validated config.
pub fn collector(config: &Config, transport: Arc<dyn Transport>, clock: SharedClock) -> Collector {
    let mut c = Collector::new(config.accounts.clone(), transport, clock);
    c.placement = config.placement.clone();
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
        let body = s.renderer.render_gzip(&s.collector, now);
        tracing::debug!(
            event = "scrape",
            encoding = "gzip",
            bytes = body.len(),
            "metrics served"
        );
        (
            [
                (header::CONTENT_TYPE, metrics::CONTENT_TYPE),
                (header::CONTENT_ENCODING, "gzip"),
                vary,
            ],
            body,
        )
            .into_response()
    } else {
        let body = s.renderer.render(&s.collector, now);
        tracing::debug!(
            event = "scrape",
            encoding = "identity",
            bytes = body.len(),
            "metrics served"
        );
        ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE), vary], body).into_response()
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
    let mut router = router;
    if !web.basic_auth_users.is_empty() {
        let auth = Arc::new(BasicAuth::new(
            web.basic_auth_users.clone(),
            health_without_auth,
        ));
        router = router.layer(axum::middleware::from_fn_with_state(auth, auth::require));
    }
    if !web.headers.is_empty() {
        let headers = web.headers.clone();
        router = router.layer(axum::middleware::map_response(move |mut res: Response| {
            let headers = headers.clone();
            async move {
                for (name, value) in headers {
                    res.headers_mut().insert(name, value);
                }
                res
            }
        }));
    }
    router
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
        Some(tls),
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
