//! The rate budget: the single place that decides whether a request may go.
//!
//! Every request the driver sends — a page, a re-check, a retry, a quota
//! call — takes a permit here first. Vendors count in sliding windows ("at
//! most N in any interval of W"), so this is a sliding-window log, not a
//! token bucket: a bucket with burst N can send almost 2N inside one window
//! (a full burst, then the refill), which is exactly what gets an account
//! throttled. `governor` (GCRA) has the same property unless paced at burst
//! 1, which wastes budget on paging; the log is exact and tiny (N entries).
//!
//! A permit's entry holds the *latest* instant the vendor can have received
//! the request: while the request is in flight, "now"; once it is answered
//! (or given up), the answer's time. The vendor's arrival time lies between
//! the permit and the answer, so measuring the window from the answer keeps
//! arrivals at most N per window however late the request left our process
//! (a loaded machine delayed one request by 0.7 s, and the next, on time,
//! reached the vendor 0.3 s after it in a 1 s window).
//!
//! Time is tokio's monotonic clock, so tests pause and advance it.
//!
//! With a state directory, every permit is also appended to the account's
//! journal ([`crate::state::Journal`]) before the permit is handed out —
//! fsynced for scarce APIs (a window of a minute or more) — and the next
//! process starts from it, so restarts cannot spend a window twice.

use crate::state::{Journal, Logged, Recorded};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

pub use crate::api::Rate;

/// Why no permit was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The next permit is further away than the caller will wait.
    #[error("rate budget exhausted: next request allowed in {0:?}")]
    Exhausted(Duration),
}

/// One request in the log.
#[derive(Debug, Clone, Copy)]
struct Entry {
    id: u64,
    /// Permit time, then the answer's time once [`Budget::release`]d.
    at: Instant,
    /// Not answered yet: the vendor may receive it at any moment.
    in_flight: bool,
}

/// A granted request; hand it back with [`Budget::release`] when the
/// exchange ends (answered, failed or timed out).
#[derive(Debug)]
#[must_use = "release the permit when the exchange ends"]
pub struct Permit {
    api: usize,
    id: u64,
}

/// Sliding-window log for one API of one account.
#[derive(Debug)]
struct Window {
    rate: Rate,
    /// The requests still inside the window, by `at`.
    sent: VecDeque<Entry>,
    next_id: u64,
    /// Set after a throttling answer: nothing goes before this instant.
    blocked_until: Option<Instant>,
}

impl Window {
    /// Vendors see our requests a little later or earlier than we send them;
    /// widen the window by 1% (at least 50 ms) so jitter never tips us over.
    fn span(&self) -> Duration {
        self.rate.per + (self.rate.per / 100).max(Duration::from_millis(50))
    }

    /// When an entry stops counting: a window after the last instant the
    /// vendor can have received it (in flight: not before now + a window).
    fn leaves(&self, e: &Entry, now: Instant) -> Instant {
        if e.in_flight {
            now.max(e.at) + self.span()
        } else {
            e.at + self.span()
        }
    }

    fn prune(&mut self, now: Instant) {
        let span = self.span();
        self.sent
            .retain(|e| e.in_flight || now.saturating_duration_since(e.at) < span);
    }

    /// The earliest instant a request may be sent.
    fn next_slot(&mut self, now: Instant) -> Instant {
        self.prune(now);
        let by_window = if (self.sent.len() as u32) < self.rate.requests {
            now
        } else {
            // Full: enough entries must leave the window first.
            let mut leaves: Vec<Instant> = self.sent.iter().map(|e| self.leaves(e, now)).collect();
            leaves.sort_unstable();
            leaves[self.sent.len() - self.rate.requests as usize]
        };
        match self.blocked_until {
            Some(b) if b > by_window => b,
            _ => by_window,
        }
    }
}

/// The budgets of one account: one sliding window per API (vendors such as
/// Aliyun limit each API separately).
#[derive(Debug)]
pub struct Budget {
    windows: Vec<Mutex<Window>>,
    journal: Option<Arc<Journal>>,
}

/// Windows this long or longer are scarce: their permits are fsynced to the
/// journal before the request goes (one lost CDNetworks fetch permit costs
/// five minutes of data; one second of Aliyun budget costs nothing).
pub const SCARCE: Duration = Duration::from_secs(60);

impl Budget {
    /// One window per API, in the vendor's API order.
    pub fn new(rates: impl IntoIterator<Item = Rate>) -> Self {
        Budget {
            windows: rates
                .into_iter()
                .map(|rate| {
                    Mutex::new(Window {
                        rate,
                        sent: VecDeque::with_capacity(rate.requests.min(64) as usize),
                        next_id: 0,
                        blocked_until: None,
                    })
                })
                .collect(),
            journal: None,
        }
    }

    /// Journals every permit from now on, starting from what `recorded`
    /// says the previous process spent (wall-clock times mapped onto the
    /// monotonic clock; an entry older than the clock's origin has left
    /// every window anyway). Compacts the journal to that.
    pub fn with_journal(mut self, journal: Arc<Journal>, recorded: &Recorded) -> Self {
        let now = Instant::now();
        let now_ms = journal.now_ms();
        let to_instant = |ms: i64| {
            let ago = Duration::from_millis(u64::try_from(now_ms - ms).unwrap_or(0));
            now.checked_sub(ago)
        };
        for (api, w) in self.windows.iter_mut().enumerate() {
            let w = w.get_mut().unwrap_or_else(|p| p.into_inner());
            for &ms in recorded.sent.get(api).into_iter().flatten() {
                if let Some(at) = to_instant(ms) {
                    let id = w.next_id;
                    w.next_id += 1;
                    w.sent.push_back(Entry {
                        id,
                        at,
                        in_flight: false,
                    });
                }
            }
            w.sent.make_contiguous().sort_by_key(|e| e.at);
            w.prune(now);
            if let Some(Some(until)) = recorded.blocked_until.get(api) {
                let ahead = Duration::from_millis(u64::try_from(until - now_ms).unwrap_or(0));
                w.blocked_until = Some(now + ahead);
            }
        }
        self.journal = Some(journal);
        self.compact_journal();
        self
    }

    /// Rewrites the journal with the permits still inside their windows.
    pub fn compact_journal(&self) {
        let Some(j) = &self.journal else {
            return;
        };
        let now = Instant::now();
        let now_ms = j.now_ms();
        let ms = |at: Instant| {
            if at >= now {
                now_ms + (at - now).as_millis() as i64
            } else {
                now_ms - (now - at).as_millis() as i64
            }
        };
        let mut log = Vec::new();
        let mut blocked = Vec::new();
        for (api, w) in self.windows.iter().enumerate() {
            let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
            w.prune(now);
            log.extend(w.sent.iter().map(|e| Logged {
                api,
                id: e.id,
                at_ms: ms(e.at),
                in_flight: e.in_flight,
            }));
            if let Some(b) = w.blocked_until.filter(|b| *b > now) {
                blocked.push((api, ms(b)));
            }
        }
        if let Err(e) = j.compact(&log, &blocked) {
            tracing::warn!(error = %e, journal = ?j, "cannot compact the budget journal");
        }
    }

    fn window(&self, api: usize) -> std::sync::MutexGuard<'_, Window> {
        // A poisoned lock only means another thread panicked mid-update of a
        // VecDeque of instants; the data is still a valid (conservative) log.
        self.windows[api].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The rate configured for `api`.
    pub fn rate(&self, api: usize) -> Rate {
        self.window(api).rate
    }

    /// How long a permit of `api` counts after its answer (the rate's
    /// window, widened against jitter).
    pub fn span(&self, api: usize) -> Duration {
        self.window(api).span()
    }

    /// Number of APIs.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// True when there are no APIs.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// How long until `api` could send, without taking a permit.
    pub fn wait_time(&self, api: usize) -> Duration {
        let now = Instant::now();
        self.window(api)
            .next_slot(now)
            .saturating_duration_since(now)
    }

    /// Takes a permit for `api`, waiting for it if it comes within
    /// `max_wait`. The check and the record happen under one lock, so
    /// concurrent callers can never overspend.
    pub async fn acquire(&self, api: usize, max_wait: Duration) -> Result<Permit, Denied> {
        loop {
            let slot = {
                let now = Instant::now();
                let mut w = self.window(api);
                let slot = w.next_slot(now);
                if slot <= now {
                    let id = w.next_id;
                    w.next_id += 1;
                    w.sent.push_back(Entry {
                        id,
                        at: now,
                        in_flight: true,
                    });
                    let durable = w.rate.per >= SCARCE;
                    drop(w);
                    // On disk before the request can leave.
                    if let Some(j) = &self.journal {
                        j.acquired(api, id, durable);
                    }
                    return Ok(Permit { api, id });
                }
                let wait = slot - now;
                if wait > max_wait {
                    return Err(Denied::Exhausted(wait));
                }
                slot
            };
            tokio::time::sleep_until(slot).await;
        }
    }

    /// The exchange of `permit` ended now: from here on its entry counts
    /// from this instant, the latest the vendor can have received it.
    pub fn release(&self, permit: Permit) {
        let now = Instant::now();
        let mut w = self.window(permit.api);
        if let Some(e) = w.sent.iter_mut().find(|e| e.id == permit.id) {
            e.at = e.at.max(now);
            e.in_flight = false;
        }
        w.sent.make_contiguous().sort_by_key(|e| e.at);
        drop(w);
        if let Some(j) = &self.journal {
            j.released(permit.api, permit.id);
        }
    }

    /// After a throttling answer: send nothing on `api` for `pause`.
    pub fn block_for(&self, api: usize, pause: Duration) {
        let until = Instant::now() + pause;
        let mut w = self.window(api);
        if w.blocked_until.is_none_or(|b| b < until) {
            w.blocked_until = Some(until);
            let durable = w.rate.per >= SCARCE;
            drop(w);
            if let Some(j) = &self.journal {
                j.blocked(api, j.now_ms() + pause.as_millis() as i64, durable);
            }
        }
    }
}

/// `--budget.share`: the part of each vendor limit this replica may use, so
/// that replicas polling the same accounts (an HA pair of one shard) stay
/// within the limit together. Replicas' windows are not aligned, so the
/// share must leave at least one whole request per window: a 1-per-5-minutes
/// API at 0.5 would be stretched to 1 per 10 minutes, and two replicas could
/// still both send inside one 5-minute window. Such a share is refused.
pub fn share(rate: Rate, share: f64, what: &str) -> Result<Rate, String> {
    if !(share > 0.0 && share <= 1.0) {
        return Err(format!("--budget.share {share} is outside (0, 1]"));
    }
    if share == 1.0 {
        return Ok(rate);
    }
    let exact = f64::from(rate.requests) * share;
    if exact < 1.0 {
        return Err(format!(
            "--budget.share {share}: {what} allows {rate}, which leaves less than one request \
             per window for each replica; replicas' windows are not aligned, so together they \
             could exceed the vendor limit. Run one replica per shard for this account \
             (--budget.share 1), or use a share of at least {:.3}",
            1.0 / f64::from(rate.requests)
        ));
    }
    Ok(rate.scaled(share))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_keeps_headroom_and_stretches_small_rates() {
        let five = Rate::new(5, Duration::from_secs(1));
        assert_eq!(five.scaled(0.5), Rate::new(2, Duration::from_secs(1)));
        assert_eq!(five.scaled(1.0), five);
        let cdn = Rate::new(1, Duration::from_secs(300));
        assert_eq!(cdn.scaled(0.5), Rate::new(1, Duration::from_secs(600)));
        assert_eq!(cdn.scaled(1.0), cdn);
    }

    #[test]
    fn shares_split_the_limit_and_refuse_a_rounded_up_share() {
        let five = Rate::new(5, Duration::from_secs(1));
        assert_eq!(share(five, 1.0, "x").unwrap(), five);
        assert_eq!(
            share(five, 0.5, "x").unwrap(),
            Rate::new(2, Duration::from_secs(1))
        );
        assert_eq!(
            share(five, 0.2, "x").unwrap(),
            Rate::new(1, Duration::from_secs(1))
        );
        let one = Rate::new(1, Duration::from_secs(300));
        assert_eq!(share(one, 1.0, "x").unwrap(), one);
        let e = share(one, 0.5, "account a API list").unwrap_err();
        assert!(
            e.contains("account a API list") && e.contains("--budget.share 1"),
            "{e}"
        );
        assert!(share(five, 0.19, "x").is_err());
        for bad in [0.0, -1.0, 1.5, f64::NAN] {
            assert!(
                share(five, bad, "x").unwrap_err().contains("outside"),
                "{bad}"
            );
        }
    }

    #[test]
    fn parses_rates() {
        assert_eq!(
            Rate::parse("2/1s").unwrap(),
            Rate::new(2, Duration::from_secs(1))
        );
        assert_eq!(
            Rate::parse("1/5m").unwrap(),
            Rate::new(1, Duration::from_secs(300))
        );
        assert!(Rate::parse("0/1s").is_err());
        assert!(Rate::parse("two/1s").is_err());
        assert!(Rate::parse("2/fast").is_err());
        assert!(Rate::parse("2").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn never_more_than_n_in_any_window() {
        let b = Budget::new([Rate::new(3, Duration::from_secs(1))]);
        let start = Instant::now();
        let mut sent = Vec::new();
        for _ in 0..10 {
            let p = b.acquire(0, Duration::from_secs(5)).await.unwrap();
            b.release(p);
            sent.push(Instant::now() - start);
        }
        for (i, t) in sent.iter().enumerate() {
            let in_window = sent[i..]
                .iter()
                .filter(|u| **u - *t < Duration::from_secs(1))
                .count();
            assert!(
                in_window <= 3,
                "{in_window} requests within 1s starting at {t:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn refuses_when_the_wait_is_too_long() {
        let b = Budget::new([Rate::new(1, Duration::from_secs(300))]);
        let p = b.acquire(0, Duration::ZERO).await.unwrap();
        b.release(p);
        let err = b.acquire(0, Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(err, Denied::Exhausted(w) if w > Duration::from_secs(299)));
        tokio::time::advance(Duration::from_secs(304)).await;
        let _ = b.acquire(0, Duration::ZERO).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_blocks_the_api() {
        let b = Budget::new([
            Rate::new(100, Duration::from_secs(1)),
            Rate::new(100, Duration::from_secs(1)),
        ]);
        b.block_for(0, Duration::from_secs(30));
        assert!(b.acquire(0, Duration::from_secs(1)).await.is_err());
        assert!(
            b.acquire(1, Duration::ZERO).await.is_ok(),
            "other APIs are unaffected"
        );
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(b.acquire(0, Duration::ZERO).await.is_ok());
    }

    /// Regression (fault matrix): a request that left our process late must
    /// not let the next one reach the vendor inside the same window. The
    /// window counts from the answer, and nothing goes while one is in flight.
    #[tokio::test(start_paused = true)]
    async fn a_late_request_cannot_crowd_the_vendors_window() {
        let b = Budget::new([Rate::new(1, Duration::from_secs(1))]);
        let start = Instant::now();
        let p = b.acquire(0, Duration::ZERO).await.unwrap();
        // In flight for 0.7 s (the vendor may receive it at any moment).
        tokio::time::advance(Duration::from_millis(700)).await;
        assert!(
            b.acquire(0, Duration::from_millis(100)).await.is_err(),
            "no permit while the request is in flight"
        );
        b.release(p);
        let p = b.acquire(0, Duration::from_secs(5)).await.unwrap();
        let waited = Instant::now() - start;
        assert!(
            waited >= Duration::from_millis(1700),
            "next permit a full window after the answer, got {waited:?}"
        );
        b.release(p);
        assert!(b.wait_time(0) >= Duration::from_secs(1));
    }

    /// The crash-loop invariant in one process lifetime: a permit taken by
    /// a process that then dies (never released) still holds the window in
    /// the next one, which starts from the journal.
    #[tokio::test(start_paused = true)]
    async fn a_restarted_budget_starts_from_the_journal() {
        use crate::clock::{SharedClock, TokioClock};
        let dir = std::env::temp_dir().join(format!("budget-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let clock: SharedClock = Arc::new(TokioClock::starting_at(1_700_000_000));
        let store = crate::state::StateStore::open(&dir, clock).unwrap();
        let rates = [Rate::new(1, Duration::from_secs(300))];
        let open = || {
            let (j, rec) = store.journal("cn", "fp", 1);
            Budget::new(rates).with_journal(Arc::new(j), &rec)
        };
        let first = open();
        let permit = first.acquire(0, Duration::ZERO).await.unwrap();
        let _killed_in_flight = permit; // never released
        drop(first);
        tokio::time::advance(Duration::from_secs(100)).await;
        let second = open();
        let wait = second.wait_time(0);
        assert!(
            wait >= Duration::from_secs(300),
            "in flight at the stop: a full window from the restart, got {wait:?}"
        );
        tokio::time::advance(wait).await;
        let p = second.acquire(0, Duration::ZERO).await.unwrap();
        second.release(p);
        tokio::time::advance(Duration::from_secs(10)).await;
        let third = open();
        let wait = third.wait_time(0);
        assert!(
            wait > Duration::from_secs(290) && wait <= Duration::from_secs(294),
            "released: the window counts from the answer, got {wait:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
