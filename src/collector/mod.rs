//! Scrape-triggered collection.
//!
//! A scrape asks every account to be fresh. An account refreshes only when
//! its data is older than its minimum refresh interval *and* its budget has a
//! permit; concurrent scrapes (HA Prometheus pairs) share the one refresh in
//! flight. Refreshes run as their own tasks. A scrape ([`Collector::scrape`])
//! waits only for accounts that have no data yet (up to its deadline) and
//! answers from the cache for the others (after `scrape_wait`, 0 by
//! default), so a slow or hanging vendor does not hold every scrape for the
//! whole deadline; the refresh completes in the background. Every request
//! goes through [`budget::Budget`] — the single place the rate invariant is
//! enforced.

pub mod budget;
pub mod cache;
pub mod coverage;
pub mod details;
pub mod stats;
mod sync;

pub use sync::ProbeResult;

use crate::clock::SharedClock;
use crate::config::AccountConfig;
use crate::http::Transport;
use crate::task::TaskType;
use crate::vendors::{Quota, Stream, Vendor, VendorKind};
use budget::{Budget, Rate};
use cache::{Aggregates, TaskCache};
use coverage::Coverage;
use stats::{ApiStats, Histogram, SkipReason, TASK_DURATION_BUCKETS};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use crate::config::Settings;

/// What the renderer shows for an account: replaced whole after each refresh.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub aggregates: Aggregates,
    /// finished[task_type][0 = success, 1 = failed], since start.
    pub finished: [[u64; 2]; 5],
    pub quotas: Vec<Quota>,
    /// The last refresh reached the vendor and every answer was usable.
    pub up: bool,
    /// Unix time the oldest data served was fresh: the earliest of the
    /// watched task types' `type_last_success` (`None` until all have one).
    pub last_success: Option<i64>,
    /// Per watched task type: the start of the last refresh that listed
    /// every stream holding that type up to its start and re-checked its
    /// unfinished tasks. Data of one type can be older than another's when
    /// its API has a scarcer budget (CDNetworks fetch against purge).
    pub type_last_success: Vec<(TaskType, Option<i64>)>,
    pub cache_tasks: usize,
    pub cache_dropped: u64,
    /// The last error, for the landing page (never contains a secret).
    pub last_error: Option<String>,
}

/// Create→finish histograms of one account, one per watched task type.
#[derive(Debug)]
pub struct TaskDurations {
    by_type: Vec<(TaskType, Histogram)>,
}

impl TaskDurations {
    /// Empty histograms for these task types, so their series exist at 0.
    pub fn new(types: &[TaskType]) -> Self {
        TaskDurations {
            by_type: types
                .iter()
                .map(|t| (*t, Histogram::new(TASK_DURATION_BUCKETS)))
                .collect(),
        }
    }

    fn observe(&self, t: TaskType, seconds: f64) {
        if let Some((_, h)) = self.by_type.iter().find(|(x, _)| *x == t) {
            h.observe(seconds);
        }
    }

    /// The histogram of task type `t`, if watched.
    pub fn get(&self, t: TaskType) -> Option<&Histogram> {
        self.by_type.iter().find(|(x, _)| *x == t).map(|(_, h)| h)
    }
}

/// Mutable sync state; held only by the refresh in flight.
struct SyncState {
    cache: TaskCache,
    streams: Vec<Stream>,
    coverage: Vec<Coverage>,
    /// Tasks created before this (first sync start) are the baseline.
    counting_since: Option<i64>,
    finished: [[u64; 2]; 5],
    quotas: Vec<Quota>,
    last_quota: Option<Instant>,
    /// Consecutive throttling answers per API, for backoff.
    throttle_streak: Vec<u32>,
    /// Per stream: start of the last refresh that left it fresh.
    stream_success: Vec<Option<i64>>,
}

#[derive(Default)]
struct Flight {
    running: Option<(JoinHandle<()>, watch::Receiver<bool>)>,
    last_start: Option<Instant>,
}

/// One configured account and its live state.
pub struct Account {
    pub name: String,
    pub kind: VendorKind,
    pub task_types: Vec<TaskType>,
    pub settings: Settings,
    /// API names, in the vendor's order (the `api` label).
    pub api_names: Vec<&'static str>,
    /// Per stream, the watched task types whose data it holds.
    stream_types: Vec<Vec<TaskType>>,
    pub stats: ApiStats,
    /// Create→finish times of the tasks counted in `finished`.
    pub durations: TaskDurations,
    vendor: Arc<dyn Vendor>,
    budget: Budget,
    transport: Arc<dyn Transport>,
    clock: SharedClock,
    state: tokio::sync::Mutex<SyncState>,
    snapshot: RwLock<Arc<Snapshot>>,
    /// A refresh has published a snapshot: the account has data to serve,
    /// so a scrape need not wait for it.
    published: AtomicBool,
    /// Failed, unfinished and recent tasks with their URLs (`/api/v1/tasks`).
    pub details: Mutex<details::DetailStore>,
    flight: Mutex<Flight>,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Account {
    fn new(setup: AccountConfig, transport: Arc<dyn Transport>, clock: SharedClock) -> Self {
        let apis = setup.kind.apis();
        let streams = setup.vendor.streams(&setup.task_types);
        Account {
            api_names: apis.iter().map(|a| a.name).collect(),
            stream_types: streams
                .iter()
                .map(|s| setup.vendor.stream_task_types(s, &setup.task_types))
                .collect(),
            stats: ApiStats::new(apis.len()),
            durations: TaskDurations::new(&setup.task_types),
            budget: Budget::new(setup.rates.iter().copied()),
            state: tokio::sync::Mutex::new(SyncState {
                cache: TaskCache::new(setup.settings.max_tasks),
                coverage: vec![Coverage::default(); streams.len()],
                stream_success: vec![None; streams.len()],
                streams,
                counting_since: None,
                finished: [[0; 2]; 5],
                quotas: Vec::new(),
                last_quota: None,
                throttle_streak: vec![0; apis.len()],
            }),
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            published: AtomicBool::new(false),
            details: Mutex::new(details::DetailStore::new(setup.settings.details.clone())),
            flight: Mutex::new(Flight::default()),
            name: setup.name,
            kind: setup.kind,
            task_types: setup.task_types,
            settings: setup.settings,
            vendor: setup.vendor,
            transport,
            clock,
        }
    }

    /// The data the last refresh left.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// True once a refresh has published a snapshot (failed or not): from
    /// then on a scrape can answer for the account from the cache.
    pub fn has_data(&self) -> bool {
        self.published.load(Ordering::Acquire)
    }

    /// The details store, locked (held briefly: no await inside).
    pub fn details(&self) -> std::sync::MutexGuard<'_, details::DetailStore> {
        self.details.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The rate budget of `api`.
    pub fn rate(&self, api: usize) -> Rate {
        self.budget.rate(api)
    }

    /// Seconds since the oldest data served was fresh (since the exporter
    /// started, before that).
    pub fn data_age(&self, now: i64, started: i64) -> f64 {
        age(now, self.snapshot().last_success, started)
    }

    /// Starts a refresh if one is due and affordable. Returns a receiver that
    /// turns true when the refresh in flight (new or already running) ends.
    pub fn ensure_fresh(self: &Arc<Self>) -> Option<watch::Receiver<bool>> {
        let mut f = self.flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((handle, rx)) = &f.running {
            if !handle.is_finished() {
                return Some(rx.clone());
            }
        }
        f.running = None;
        if f.last_start
            .is_some_and(|t| t.elapsed() < self.settings.min_refresh_interval)
        {
            self.skip(SkipReason::Fresh);
            return None;
        }
        if (0..self.budget.len()).all(|api| !self.budget.wait_time(api).is_zero()) {
            self.skip(SkipReason::Budget);
            return None;
        }
        f.last_start = Some(Instant::now());
        let (tx, rx) = watch::channel(false);
        let me = Arc::clone(self);
        let handle = tokio::spawn(async move {
            me.refresh().await;
            let _ = tx.send(true);
        });
        f.running = Some((handle, rx.clone()));
        Some(rx)
    }

    fn skip(&self, reason: SkipReason) {
        self.stats.skipped[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Runs one refresh to completion and publishes a new snapshot.
    ///
    /// Health rule: `up` is 1 only when the refresh made at least one
    /// request and every request got a usable answer; any failure makes it
    /// 0, even if the budget ran out afterwards; throttling leaves it as it
    /// was; a refresh that could afford no request at all leaves it as it
    /// was. Success times move only for streams a failure-free refresh left
    /// fresh (see `sync`).
    pub async fn refresh(&self) {
        let mut st = self.state.lock().await;
        let started = self.clock.unix();
        let before = st.stream_success.clone();
        let result = self.sync(&mut st, started).await;
        if result.is_err() {
            // A refresh that failed part-way proves nothing fresh.
            st.stream_success = before;
        }
        let lookback_start = started - self.settings.lookback.as_secs() as i64;
        st.cache.expire(lookback_start);
        {
            let mut details = self.details();
            details.expire(lookback_start);
            let counting_since = st.counting_since.unwrap_or(started);
            for d in details.newly_stuck(self.clock.unix(), counting_since) {
                tracing::warn!(
                    event = "task_stuck",
                    vendor = %self.kind,
                    account = %self.name,
                    task_id = %d.task_id,
                    task_type = %d.task_type,
                    status = %d.status,
                    url_count = d.url_count,
                    url = details::first_url_for_log(&d),
                    error = d.error.as_deref().unwrap_or(""),
                    "task stuck"
                );
            }
        }
        let prev = self.snapshot();
        let (up, last_error) = match &result {
            Ok(s) if s.answered == 0 => (prev.up, prev.last_error.clone()),
            Ok(_) => (true, None),
            // Throttling says nothing about the vendor's health.
            Err(e) if e.outcome == crate::vendors::Outcome::Throttled => {
                (prev.up, Some(e.to_string()))
            }
            Err(e) => (false, Some(e.to_string())),
        };
        let type_last_success: Vec<(TaskType, Option<i64>)> = self
            .task_types
            .iter()
            .map(|t| {
                let holding = self
                    .stream_types
                    .iter()
                    .zip(&st.stream_success)
                    .filter(|(types, _)| types.contains(t))
                    .map(|(_, s)| *s);
                (*t, oldest(holding))
            })
            .collect();
        let last_success = oldest(type_last_success.iter().map(|(_, s)| *s));
        if let Err(e) = &result {
            tracing::warn!(vendor = %self.kind, account = %self.name, outcome = e.outcome.as_str(), error = %e, "refresh failed");
        } else {
            tracing::debug!(vendor = %self.kind, account = %self.name, tasks = st.cache.len(), "refresh done");
        }
        let snap = Snapshot {
            aggregates: st.cache.aggregate(),
            finished: st.finished,
            quotas: st.quotas.clone(),
            up,
            last_success,
            type_last_success,
            cache_tasks: st.cache.len(),
            cache_dropped: st.cache.dropped,
            last_error,
        };
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snap);
        self.published.store(true, Ordering::Release);
        self.stats.touch();
    }
}

/// The earliest of some success times; `None` if any is `None` (that data
/// was never fresh) or there are none.
fn oldest(times: impl Iterator<Item = Option<i64>>) -> Option<i64> {
    let mut out: Option<i64> = None;
    for t in times {
        let t = t?;
        out = Some(out.map_or(t, |o| o.min(t)));
    }
    out
}

/// Seconds from `since` (or `started`, when never) to `now`, never negative.
pub fn age(now: i64, since: Option<i64>, started: i64) -> f64 {
    (now - since.unwrap_or(started)).max(0) as f64
}

/// All accounts, and what a scrape does with them.
pub struct Collector {
    pub accounts: Vec<Arc<Account>>,
    pub clock: SharedClock,
    /// Unix time the collector started.
    pub started: i64,
    /// This replica's shard and the accounts other shards poll.
    pub placement: crate::shard::Placement,
}

impl Collector {
    /// Builds the accounts; nothing is requested until the first scrape.
    pub fn new(
        setups: Vec<AccountConfig>,
        transport: Arc<dyn Transport>,
        clock: SharedClock,
    ) -> Self {
        let started = clock.unix();
        let accounts = setups
            .into_iter()
            .map(|s| Arc::new(Account::new(s, Arc::clone(&transport), Arc::clone(&clock))))
            .collect();
        Collector {
            accounts,
            clock,
            started,
            placement: Default::default(),
        }
    }

    /// Refreshes what is due, waiting at most until `deadline` for every
    /// refresh; those still running then finish in the background. For
    /// callers that want the freshest data (tests, tools); `/metrics` uses
    /// [`Collector::scrape`].
    pub async fn collect(&self, deadline: Instant) {
        self.gather(deadline, |_| Duration::MAX).await
    }

    /// What a `/metrics` scrape does: starts the refreshes that are due,
    /// waits up to `deadline` for accounts with no data yet, and up to
    /// their `scrape_wait` (0 by default: not at all) for the others, then
    /// returns; the cache answers for them. Health still follows the
    /// answers: a refresh that fails later publishes `up 0`, which the next
    /// scrape shows.
    pub async fn scrape(&self, deadline: Instant) {
        self.gather(deadline, |a| {
            if a.has_data() {
                a.settings.scrape_wait
            } else {
                Duration::MAX
            }
        })
        .await
    }

    /// Triggers every due refresh, then waits for each account's refresh in
    /// flight up to `wait(account)` after the start (never past `deadline`),
    /// all at once. `scrape_seconds` is how long this scrape waited for that
    /// account: 0 when it did not wait.
    async fn gather(&self, deadline: Instant, wait: impl Fn(&Account) -> Duration) {
        let t0 = Instant::now();
        let flights: Vec<_> = self.accounts.iter().map(|a| a.ensure_fresh()).collect();
        let waits = self.accounts.iter().zip(flights).map(|(account, flight)| {
            let until = t0
                .checked_add(wait(account))
                .map_or(deadline, |t| t.min(deadline));
            async move {
                match flight {
                    Some(mut rx) if until > t0 => {
                        let _ = tokio::time::timeout_at(until, rx.wait_for(|done| *done)).await;
                        account.stats.scrape_seconds.set(t0.elapsed().as_secs_f64());
                    }
                    _ => account.stats.scrape_seconds.set(0.0),
                }
            }
        });
        futures_util::future::join_all(waits).await;
    }
}
