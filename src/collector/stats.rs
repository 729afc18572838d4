//! Lock-free counters and histograms the driver updates as requests happen,
//! read by the renderer on every scrape.

use std::sync::atomic::{AtomicU64, Ordering};

/// A cumulative histogram with fixed buckets.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Non-cumulative counts per bucket, plus one for +Inf.
    counts: Vec<AtomicU64>,
    /// Sum in microseconds-equivalent fixed point (value × 1e6).
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Buckets with these upper bounds (ascending).
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Records one value.
    pub fn observe(&self, v: f64) {
        let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
        let i = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((v * 1e6) as u64, Ordering::Relaxed);
    }

    /// The upper bounds of the buckets (+Inf not included).
    pub fn bounds(&self) -> &'static [f64] {
        self.bounds
    }

    /// Calls `f(bucket index, cumulative count)` per bucket, without
    /// allocating (the renderer writes ~110,000 bucket lines per scrape);
    /// returns the total count and the sum.
    pub fn each_bucket(&self, mut f: impl FnMut(usize, u64)) -> (u64, f64) {
        let mut acc = 0;
        for i in 0..self.bounds.len() {
            acc += self.counts[i].load(Ordering::Relaxed);
            f(i, acc);
        }
        acc += self.counts[self.bounds.len()].load(Ordering::Relaxed);
        (acc, self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6)
    }

    /// (upper bound, cumulative count) per bucket, then the total count and sum.
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let mut acc = 0;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (i, b) in self.bounds.iter().enumerate() {
            acc += self.counts[i].load(Ordering::Relaxed);
            buckets.push((*b, acc));
        }
        acc += self.counts[self.bounds.len()].load(Ordering::Relaxed);
        (
            buckets,
            acc,
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        )
    }
}

/// Buckets for vendor API latency, seconds.
pub const API_LATENCY_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Buckets for task create→finish, seconds (seconds to a day).
pub const TASK_DURATION_BUCKETS: &[f64] = &[
    5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0,
];

/// A float gauge stored as bits.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
    /// Reads the value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// Per-account API statistics.
#[derive(Debug)]
pub struct ApiStats {
    /// requests[api][outcome]
    pub requests: Vec<[AtomicU64; 8]>,
    /// Latency per API.
    pub latency: Vec<Histogram>,
    /// Skipped refreshes: [fresh, budget].
    pub skipped: [AtomicU64; 2],
    /// Seconds the last scrape spent on this account.
    pub scrape_seconds: Gauge,
    /// Bumped whenever a request is counted or a refresh publishes, so the
    /// renderer re-renders only accounts that changed.
    generation: AtomicU64,
}

impl ApiStats {
    /// Zeroed statistics for `apis` APIs; every series exists from the start
    /// so `increase()` sees the first failure.
    pub fn new(apis: usize) -> Self {
        ApiStats {
            requests: (0..apis).map(|_| Default::default()).collect(),
            latency: (0..apis)
                .map(|_| Histogram::new(API_LATENCY_BUCKETS))
                .collect(),
            skipped: Default::default(),
            scrape_seconds: Gauge::default(),
            generation: AtomicU64::new(1),
        }
    }

    /// Counts one request.
    pub fn count(&self, api: usize, outcome: crate::vendors::Outcome) {
        self.requests[api][outcome.index()].fetch_add(1, Ordering::Relaxed);
        self.touch();
    }

    /// Marks the account changed (see [`ApiStats::generation`]).
    pub fn touch(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Changes whenever the counted requests or the published snapshot do.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Requests of `api` with `outcome` so far.
    pub fn get(&self, api: usize, outcome: crate::vendors::Outcome) -> u64 {
        self.requests[api][outcome.index()].load(Ordering::Relaxed)
    }

    /// Requests of any API and outcome so far.
    pub fn total(&self) -> u64 {
        self.requests
            .iter()
            .flatten()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

/// Why a stale account was not refreshed: the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Data younger than the minimum refresh interval.
    Fresh = 0,
    /// The rate budget had no permit.
    Budget = 1,
}

impl SkipReason {
    /// Every reason, in index order.
    pub const ALL: [SkipReason; 2] = [SkipReason::Fresh, SkipReason::Budget];

    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Fresh => "fresh",
            SkipReason::Budget => "budget",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let h = Histogram::new(&[1.0, 10.0]);
        h.observe(0.5);
        h.observe(5.0);
        h.observe(50.0);
        h.observe(f64::NAN);
        let (b, count, sum) = h.snapshot();
        assert_eq!(b, vec![(1.0, 2), (10.0, 3)]);
        assert_eq!(count, 4);
        assert!((sum - 55.5).abs() < 1e-6);
    }
}
