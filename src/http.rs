//! The HTTP boundary: vendor modules build [`HttpRequest`]s and parse
//! [`HttpResponse`]s; only the [`Transport`] touches the network.
//!
//! The transport bounds the *whole* exchange by one deadline (a vendor that
//! drips one byte a second is as dead as one that never answers) and caps
//! the body size (a 100 MB answer must not take the exporter down).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A fully built, signed request.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: Method,
    /// Absolute URL including the query string.
    pub url: String,
    /// Header names and values, exactly as signed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Deliberately not derived: headers carry signatures and tokens.
impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = self.url.split('?').next().unwrap_or("");
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &path)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// The two methods vendor task APIs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    /// Upper-case name, as it appears in canonical requests.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// A response, whatever its status.
#[derive(Debug, Clone, Default)]
pub struct HttpResponse {
    pub status: u16,
    /// Lower-case header names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// First header named `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `Retry-After` in seconds, when present (HTTP-date form is ignored).
    pub fn retry_after(&self) -> Option<Duration> {
        self.header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
    }
}

/// Why no response came back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    #[error("network error: {0}")]
    Network(String),
    #[error("response body larger than {0} bytes")]
    TooLarge(usize),
}

/// Boxed future returned by [`Transport::send`].
pub type SendFuture<'a> =
    Pin<Box<dyn Future<Output = Result<HttpResponse, TransportError>> + Send + 'a>>;

/// Sends requests. Injected so tests can script a vendor without sockets;
/// production and most tests use [`ReqwestTransport`] over real HTTP.
pub trait Transport: Send + Sync + 'static {
    /// Sends `req`; the whole exchange, body included, ends by `timeout`.
    fn send(&self, req: HttpRequest, timeout: Duration) -> SendFuture<'_>;
}

/// The production transport: reqwest with rustls.
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
    max_body_bytes: usize,
}

impl ReqwestTransport {
    /// A client that refuses bodies over `max_body_bytes`.
    pub fn new(max_body_bytes: usize) -> Result<Self, TransportError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("cdn-task-exporter/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(90))
            // Redirects would re-send signed requests to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| TransportError::Network(e.to_string()))?;
        Ok(ReqwestTransport {
            client,
            max_body_bytes,
        })
    }

    async fn exchange(&self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        let method = match req.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
        };
        let mut builder = self.client.request(method, &req.url);
        for (k, v) in &req.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        if !req.body.is_empty() {
            builder = builder.body(req.body);
        }
        let mut resp = builder.send().await.map_err(network_error)?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        if resp
            .content_length()
            .is_some_and(|n| n > self.max_body_bytes as u64)
        {
            return Err(TransportError::TooLarge(self.max_body_bytes));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(network_error)? {
            if body.len() + chunk.len() > self.max_body_bytes {
                return Err(TransportError::TooLarge(self.max_body_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

/// reqwest errors can embed the URL, whose query may carry a signature or
/// access key id: keep only the kind of failure.
fn network_error(e: reqwest::Error) -> TransportError {
    let kind = if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "body read failed"
    } else if e.is_request() {
        "request failed"
    } else {
        "transport failed"
    };
    let mut source = std::error::Error::source(&e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        TransportError::Network(kind.to_owned())
    } else {
        TransportError::Network(format!("{kind}: {detail}"))
    }
}

impl Transport for ReqwestTransport {
    fn send(&self, req: HttpRequest, timeout: Duration) -> SendFuture<'_> {
        Box::pin(async move {
            match tokio::time::timeout(timeout, self.exchange(req)).await {
                Ok(r) => r,
                Err(_) => Err(TransportError::Timeout(timeout)),
            }
        })
    }
}
