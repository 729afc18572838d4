//! Counts the calls a simulated API receives, whatever the vendor: the
//! re-check and sync benchmarks compare this figure, taken on the vendor's
//! side of the wire, against the fewest calls the same data needs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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
}
