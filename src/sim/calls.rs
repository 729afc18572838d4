//! Counts the calls a simulated API receives, whatever the vendor: the
//! re-check and sync benchmarks compare this figure, taken on the vendor's
//! side of the wire, against the fewest calls the same data needs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// Calls received by the routers it wrapped. Cheap to clone; clones share
/// the count.
#[derive(Debug, Clone, Default)]
pub struct CallCounter(Arc<AtomicU64>);

impl CallCounter {
    /// A counter at 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// `router` with every request it receives counted here (before the
    /// vendor's own checks: a rejected call is still a call).
    pub fn wrap(&self, router: axum::Router) -> axum::Router {
        let count = self.0.clone();
        router.layer(axum::middleware::map_request(
            move |req: axum::extract::Request| {
                count.fetch_add(1, Ordering::Relaxed);
                std::future::ready(req)
            },
        ))
    }

    /// Calls so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One call a [`CallLog`] saw.
#[derive(Debug, Clone)]
pub struct Call {
    /// When it arrived (tokio's clock, so paused-time tests can use it).
    pub at: Instant,
    /// The value of the log's header (empty when the request had none).
    pub key: String,
    /// Path and query.
    pub uri: String,
}

/// Every call the routers it wrapped received, with the value of one
/// request header: several accounts sharing one simulator (the testing
/// vendor's `X-Account-Id`) are told apart on the vendor's side of the
/// wire, as a vendor counts its limit per account.
#[derive(Debug, Clone)]
pub struct CallLog {
    header: &'static str,
    log: Arc<Mutex<Vec<Call>>>,
}

impl CallLog {
    /// A log keyed by `header` (a lower-case header name).
    pub fn by_header(header: &'static str) -> Self {
        CallLog {
            header,
            log: Arc::default(),
        }
    }

    /// `router` with every request it receives logged here (before the
    /// vendor's own checks: a rejected call is still a call).
    pub fn wrap(&self, router: axum::Router) -> axum::Router {
        let this = self.clone();
        router.layer(axum::middleware::map_request(
            move |req: axum::extract::Request| {
                let key = req
                    .headers()
                    .get(this.header)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let uri = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default();
                this.log
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Call {
                        at: Instant::now(),
                        key,
                        uri,
                    });
                std::future::ready(req)
            },
        ))
    }

    /// Every call so far, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Calls so far per key.
    pub fn per_key(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for c in self.log.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            *out.entry(c.key.clone()).or_default() += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Transport;

    #[tokio::test]
    async fn counts_every_request_the_router_receives() {
        let counter = CallCounter::new();
        let router =
            counter.wrap(axum::Router::new().route("/", axum::routing::get(|| async { "ok" })));
        let t = crate::sim::RouterTransport::new(router);
        for n in 1..=3 {
            let req = crate::http::HttpRequest {
                method: crate::http::Method::Get,
                url: "http://sim/".into(),
                headers: vec![],
                body: vec![],
            };
            t.send(req, std::time::Duration::from_secs(1))
                .await
                .unwrap();
            assert_eq!(counter.get(), n);
        }
        assert_eq!(counter.clone().get(), 3, "clones share the count");
    }

    #[tokio::test]
    async fn logs_each_call_under_its_header() {
        let log = CallLog::by_header("x-account-id");
        let router =
            log.wrap(axum::Router::new().route("/v1/x", axum::routing::get(|| async { "ok" })));
        let t = crate::sim::RouterTransport::new(router);
        for (who, n) in [("a", 2), ("b", 1), ("", 1)] {
            for _ in 0..n {
                let headers = if who.is_empty() {
                    vec![]
                } else {
                    vec![("X-Account-Id".to_owned(), who.to_owned())]
                };
                let req = crate::http::HttpRequest {
                    method: crate::http::Method::Get,
                    url: "http://sim/v1/x?page=2".into(),
                    headers,
                    body: vec![],
                };
                t.send(req, std::time::Duration::from_secs(1))
                    .await
                    .unwrap();
            }
        }
        let per: Vec<(String, u64)> = log.per_key().into_iter().collect();
        assert_eq!(
            per,
            [("".to_owned(), 1), ("a".to_owned(), 2), ("b".to_owned(), 1)]
        );
        assert!(log.calls().iter().all(|c| c.uri == "/v1/x?page=2"));
    }
}
