//! A cap on requests in flight to one vendor endpoint, shared by every
//! account that talks to it.
//!
//! Why: the accounts' refreshes become due together (at start, and again
//! each interval), and each lists its streams at once, so without a cap the
//! shared connection pool opens one connection per request in flight: 2,055
//! at the first wave of 1,000 accounts, each keeping a read buffer grown to
//! the largest answer it read (most of a 362 MiB peak). With a cap the pool
//! never holds more connections to an endpoint than the cap.
//!
//! The slot is taken *before* the budget permit and given back after the
//! answer: waiting for a slot spends no budget, and a permitted request
//! leaves at once, so the budget's timing stays as the vendor sees it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// `max_in_flight_per_endpoint` when the config sets none.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 32;

/// One semaphore per endpoint origin (scheme, host and port).
#[derive(Debug)]
pub struct EndpointGates {
    limit: AtomicUsize,
    gates: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Default for EndpointGates {
    fn default() -> Self {
        EndpointGates::new(DEFAULT_MAX_IN_FLIGHT)
    }
}

impl EndpointGates {
    pub fn new(limit: usize) -> Self {
        EndpointGates {
            limit: AtomicUsize::new(limit.max(1)),
            gates: Mutex::new(HashMap::new()),
        }
    }

    /// The cap for endpoints not used yet; set it before the first request
    /// (an endpoint keeps the cap it was first used with).
    pub fn set_limit(&self, limit: usize) {
        self.limit.store(limit.max(1), Ordering::Relaxed);
    }

    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// The gate of `endpoint`'s origin, made on first use.
    pub fn gate(&self, endpoint: &str) -> Arc<Semaphore> {
        let key = origin(endpoint);
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(
            gates
                .entry(key)
                .or_insert_with(|| Arc::new(Semaphore::new(self.limit()))),
        )
    }
}

/// Waits for a slot at `gate`; held until the exchange ends.
pub async fn enter(gate: &Arc<Semaphore>) -> OwnedSemaphorePermit {
    Arc::clone(gate)
        .acquire_owned()
        .await
        .expect("endpoint gates are never closed")
}

/// `scheme://host:port` of a base URL, lower-cased; the whole text when it
/// does not parse (each such endpoint then has a gate of its own).
fn origin(endpoint: &str) -> String {
    match reqwest::Url::parse(endpoint) {
        Ok(u) => format!(
            "{}://{}:{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port_or_known_default().unwrap_or(0)
        )
        .to_ascii_lowercase(),
        Err(_) => endpoint.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_gate_per_origin() {
        let g = EndpointGates::new(2);
        let a = g.gate("https://cdn.aliyuncs.com");
        let b = g.gate("https://CDN.aliyuncs.com:443/");
        let c = g.gate("http://cdn.aliyuncs.com");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(a.available_permits(), 2);
    }

    #[tokio::test]
    async fn a_full_gate_waits_for_a_slot() {
        let g = EndpointGates::new(1);
        let gate = g.gate("http://127.0.0.1:9");
        let held = enter(&gate).await;
        let waiting = tokio::spawn({
            let gate = Arc::clone(&gate);
            async move { enter(&gate).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(held);
        let _second = waiting.await.unwrap();
        assert_eq!(gate.available_permits(), 0);
    }

    #[test]
    fn zero_means_one() {
        assert_eq!(EndpointGates::new(0).limit(), 1);
    }
}
