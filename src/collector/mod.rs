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

mod backlog;
pub mod budget;
pub mod cache;
pub mod coverage;
pub mod details;
pub mod gate;
mod persist;
mod recheck;
pub mod stats;
mod sync;

pub use backlog::Backlog;
pub use sync::ProbeResult;

use crate::clock::SharedClock;
use crate::config::AccountConfig;
use crate::http::Transport;
use crate::state::StateStore;
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
    /// Per watched task type: the lookback still to list (warm-up).
    pub backlog: Vec<(TaskType, Backlog)>,
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

/// Called on the refresh task after each refresh an account publishes, so
/// work that depends only on the new data (the renderer's per-account
/// text) is done there, off the scrape path.
pub type PublishHook = dyn Fn(&Arc<Account>) + Send + Sync;

/// The hook all accounts of one collector share; set once, after the
/// collector is built (the renderer is made later, in the wiring).
type SharedHook = Arc<std::sync::OnceLock<Box<PublishHook>>>;

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
    /// Per stream: start of the last refresh that left it fresh.
    stream_success: Vec<Option<i64>>,
    /// Per stream: the most watched tasks a page with a next page held
    /// (the vendor's page size, as seen in the cache's units), for the
    /// backlog estimate.
    full_page: Vec<Option<u32>>,
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
    /// Shared with the account's successor when a reload restarts it with
    /// the same vendor and rates, so the two never overspend together.
    budget: Arc<Budget>,
    /// Per API, how it answers (throttling in a row, answer time). Outside
    /// the sync state: a stream's pages may be in flight together.
    pace: Mutex<Vec<sync::Pace>>,
    /// What the account was built from; a reload keeps the account when the
    /// new config says the same.
    setup: AccountConfig,
    transport: Arc<dyn Transport>,
    /// The in-flight cap of the account's endpoint, shared with every
    /// account on it; resolved at the first request.
    gates: Arc<gate::EndpointGates>,
    gate: std::sync::OnceLock<Arc<tokio::sync::Semaphore>>,
    clock: SharedClock,
    state: tokio::sync::Mutex<SyncState>,
    snapshot: RwLock<Arc<Snapshot>>,
    /// A refresh has published a snapshot: the account has data to serve,
    /// so a scrape need not wait for it.
    published: AtomicBool,
    /// Failed, unfinished and recent tasks with their URLs (`/api/v1/tasks`).
    pub details: Mutex<details::DetailStore>,
    flight: Mutex<Flight>,
    /// The state directory and this account's config fingerprint.
    store: Option<(Arc<StateStore>, String)>,
    on_publish: SharedHook,
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
    fn new(
        setup: AccountConfig,
        budget: Option<Arc<Budget>>,
        transport: Arc<dyn Transport>,
        gates: Arc<gate::EndpointGates>,
        clock: SharedClock,
        store: Option<&Arc<StateStore>>,
        on_publish: SharedHook,
    ) -> Self {
        let apis = setup.kind.apis();
        let streams = setup.vendor.streams(&setup.task_types);
        let store = store.map(|s| (s.clone(), persist::fingerprint(&setup, streams.len())));
        // A reload that restarts an account hands over the running budget
        // (its journal included); otherwise a new one, journalled when
        // there is a state store.
        let budget = budget.unwrap_or_else(|| {
            let mut b = Budget::new(setup.rates.iter().copied());
            if let Some((s, fp)) = &store {
                let (journal, recorded) = s.journal(&setup.name, fp, setup.rates.len());
                b = b.with_journal(Arc::new(journal), &recorded);
            }
            Arc::new(b)
        });
        let mut account = Account {
            api_names: apis.iter().map(|a| a.name).collect(),
            stream_types: streams
                .iter()
                .map(|s| setup.vendor.stream_task_types(s, &setup.task_types))
                .collect(),
            stats: ApiStats::new(apis.len()),
            durations: TaskDurations::new(&setup.task_types),
            budget,
            state: tokio::sync::Mutex::new(SyncState {
                cache: TaskCache::new(setup.settings.max_tasks),
                coverage: vec![Coverage::default(); streams.len()],
                stream_success: vec![None; streams.len()],
                full_page: vec![None; streams.len()],
                streams,
                counting_since: None,
                finished: [[0; 2]; 5],
                quotas: Vec::new(),
                last_quota: None,
            }),
            pace: Mutex::new(vec![sync::Pace::default(); apis.len()]),
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            published: AtomicBool::new(false),
            details: Mutex::new(details::DetailStore::new(setup.settings.details.clone())),
            flight: Mutex::new(Flight::default()),
            name: setup.name.clone(),
            kind: setup.kind,
            task_types: setup.task_types.clone(),
            settings: setup.settings.clone(),
            vendor: Arc::clone(&setup.vendor),
            setup,
            transport,
            gates,
            gate: std::sync::OnceLock::new(),
            clock,
            store,
            on_publish,
        };
        if let Some((s, fp)) = &account.store {
            let max_tasks = account.settings.max_tasks;
            let st = account.state.get_mut();
            if persist::restore(s, &account.name, fp, st, max_tasks) {
                // Serve the restored cache at once, as old as it is: up stays
                // 0 and data age counts from the saved success times until a
                // refresh answers.
                let stream_success = st.stream_success.clone();
                let (type_last_success, last_success) = account.success_times(&stream_success);
                let backlog = account.initial_backlog();
                let st = account.state.get_mut();
                let snap = Snapshot {
                    aggregates: st.cache.aggregate(),
                    cache_tasks: st.cache.len(),
                    cache_dropped: st.cache.dropped,
                    type_last_success,
                    last_success,
                    backlog,
                    ..Snapshot::default()
                };
                *account
                    .snapshot
                    .get_mut()
                    .unwrap_or_else(|p| p.into_inner()) = Arc::new(snap);
                return account;
            }
        }
        // Nothing listed yet: the whole lookback is the backlog.
        let backlog = account.initial_backlog();
        *account
            .snapshot
            .get_mut()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(Snapshot {
            backlog,
            ..Snapshot::default()
        });
        account
    }

    /// The backlog before the first refresh (of a restored state, or all of
    /// the lookback). Nothing else holds the state yet.
    fn initial_backlog(&self) -> Vec<(TaskType, Backlog)> {
        match self.state.try_lock() {
            Ok(st) => self.backlog(&st, self.clock.unix()),
            Err(_) => Vec::new(),
        }
    }

    /// Per watched task type, the oldest success time of the streams
    /// holding it; and the oldest of those.
    fn success_times(
        &self,
        stream_success: &[Option<i64>],
    ) -> (Vec<(TaskType, Option<i64>)>, Option<i64>) {
        let by_type: Vec<(TaskType, Option<i64>)> = self
            .task_types
            .iter()
            .map(|t| {
                let holding = self
                    .stream_types
                    .iter()
                    .zip(stream_success)
                    .filter(|(types, _)| types.contains(t))
                    .map(|(_, s)| *s);
                (*t, oldest(holding))
            })
            .collect();
        let last = oldest(by_type.iter().map(|(_, s)| *s));
        (by_type, last)
    }

    /// Cancels the refresh in flight, if any (shutdown: the state is then
    /// saved as of the last completed request; a cancelled listing is
    /// listed again after the restart).
    pub fn stop_refresh(&self) {
        let f = self.flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((handle, _)) = &f.running {
            handle.abort();
        }
    }

    /// Unix seconds on the account's clock.
    pub fn now(&self) -> i64 {
        self.clock.unix()
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
            // Before the waiters wake: a scrape waiting for this refresh
            // then finds the work done.
            if let Some(hook) = me.on_publish.get() {
                hook(&me);
            }
            let _ = tx.send(true);
        });
        f.running = Some((handle, rx.clone()));
        Some(rx)
    }

    /// Aborts the refresh in flight, if any (the account was removed).
    fn stop(&self) {
        let mut f = self.flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((handle, _)) = f.running.take() {
            handle.abort();
        }
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
        let (type_last_success, last_success) = self.success_times(&st.stream_success);
        let backlog = self.backlog(&st, started);
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
            backlog,
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
    /// Swapped whole on reload; a scrape works on the set it started with.
    accounts: RwLock<Arc<Vec<Arc<Account>>>>,
    /// Builds the accounts a reload adds or restarts.
    transport: Arc<dyn Transport>,
    /// Requests in flight per vendor endpoint, across all accounts.
    gates: Arc<gate::EndpointGates>,
    pub clock: SharedClock,
    /// Unix time the collector started.
    pub started: i64,
    /// This replica's shard and the accounts other shards poll.
    placement: RwLock<crate::shard::Placement>,
    /// Accounts a reload removed, until their last requests have left every
    /// budget window: re-added meanwhile, they wait for that first.
    retired: Mutex<Vec<Retired>>,
    /// The last reload: (succeeded, Unix time of the last success). Starts
    /// as (true, start time), as Prometheus' own gauges do.
    reload: Mutex<(bool, i64)>,
    /// Where accounts a reload adds or restarts keep their state.
    store: Option<Arc<StateStore>>,
    on_publish: SharedHook,
}

/// A removed account's last budget windows.
struct Retired {
    name: String,
    kind: VendorKind,
    /// Per API: when the last request the account can have sent stops
    /// counting.
    clear_at: Vec<Instant>,
}

/// What a reload did, by account name (config order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Same config: the running account, with its cache, budget, counters
    /// and details.
    pub kept: Vec<String>,
    /// Changed config: a new account replaced the running one.
    pub restarted: Vec<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

/// At least as long as the budget's window for `rate` (it widens the
/// window by 1%, at least 50 ms): a request sent now has stopped counting
/// after this.
fn window_span(rate: Rate) -> std::time::Duration {
    rate.per + rate.per / 100 + std::time::Duration::from_millis(50)
}

/// A fresh budget for `rates` that sends nothing on an API before its
/// `clear_at`, when a predecessor's requests stop counting.
fn held_budget(rates: &[Rate], clear_at: &[Instant], now: Instant) -> Arc<Budget> {
    let budget = Budget::new(rates.iter().copied());
    for (api, at) in clear_at.iter().enumerate().take(rates.len()) {
        if *at > now {
            budget.block_for(api, *at - now);
        }
    }
    Arc::new(budget)
}

impl Collector {
    /// Builds the accounts; nothing is requested until the first scrape.
    pub fn new(
        setups: Vec<AccountConfig>,
        transport: Arc<dyn Transport>,
        clock: SharedClock,
    ) -> Self {
        Self::with_state(setups, transport, clock, None)
    }

    /// As [`Collector::new`], with the accounts' state restored from (and
    /// their budgets journalled to) `store`; state of accounts no longer
    /// configured is removed.
    pub fn with_state(
        setups: Vec<AccountConfig>,
        transport: Arc<dyn Transport>,
        clock: SharedClock,
        store: Option<Arc<StateStore>>,
    ) -> Self {
        let started = clock.unix();
        if let Some(s) = &store {
            s.prune(&setups.iter().map(|a| a.name.as_str()).collect::<Vec<_>>());
        }
        let on_publish = SharedHook::default();
        let gates = Arc::new(gate::EndpointGates::default());
        let accounts = setups
            .into_iter()
            .map(|s| {
                Arc::new(Account::new(
                    s,
                    None,
                    Arc::clone(&transport),
                    Arc::clone(&gates),
                    Arc::clone(&clock),
                    store.as_ref(),
                    Arc::clone(&on_publish),
                ))
            })
            .collect();
        Collector {
            accounts: RwLock::new(Arc::new(accounts)),
            transport,
            gates,
            clock,
            started,
            placement: Default::default(),
            retired: Mutex::new(Vec::new()),
            reload: Mutex::new((true, started)),
            store,
            on_publish,
        }
    }

    /// Runs `hook` on the refresh task after every refresh an account of
    /// this collector publishes (accounts a reload adds included). Set
    /// once; a second call is ignored and returns false.
    pub fn on_publish(&self, hook: impl Fn(&Arc<Account>) + Send + Sync + 'static) -> bool {
        self.on_publish.set(Box::new(hook)).is_ok()
    }

    /// Writes every account's state file (a failure is logged and the
    /// others are still written).
    pub async fn save_state(&self) {
        for a in self.accounts().iter() {
            if let Err(e) = a.save_state().await {
                tracing::warn!(account = %a.name, error = %e, "cannot write the state file");
            }
        }
    }

    /// Whether the last reload succeeded, and the Unix time of the last
    /// successful one (the start, before any).
    pub fn reload_status(&self) -> (bool, i64) {
        *self.reload.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a reload's outcome (at Unix time `at`).
    pub fn record_reload(&self, ok: bool, at: i64) {
        let mut r = self.reload.lock().unwrap_or_else(|p| p.into_inner());
        r.0 = ok;
        if ok {
            r.1 = at;
        }
    }

    /// This replica's shard and the accounts other shards poll.
    pub fn placement(&self) -> crate::shard::Placement {
        self.placement
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the placement (at start and on reload).
    /// Caps the requests in flight to each vendor endpoint, across all
    /// accounts (`max_in_flight_per_endpoint`). Call before the first
    /// scrape: an endpoint keeps the cap it was first used with.
    pub fn set_max_in_flight_per_endpoint(&self, limit: usize) {
        self.gates.set_limit(limit);
    }

    pub fn set_placement(&self, placement: crate::shard::Placement) {
        *self.placement.write().unwrap_or_else(|p| p.into_inner()) = placement;
    }

    /// Applies a reloaded config. An account whose config is unchanged
    /// (same name, equal [`AccountConfig`]) is kept as it runs; a changed
    /// one is replaced by a new account; new names start, missing ones stop
    /// (their refresh in flight is aborted) and leave the exposition.
    ///
    /// The rate budget survives a restart: with the same vendor and rates
    /// the new account shares the old one's budget, and the old refresh in
    /// flight finishes against it (aborting it would leave its permits
    /// unreleased); with other rates the old refresh is aborted and the new
    /// budget sends nothing until the old requests left their windows. A
    /// removed account re-added before that waits likewise.
    pub fn reconfigure(&self, setups: Vec<AccountConfig>) -> ReloadSummary {
        let now = Instant::now();
        let mut list = self.accounts.write().unwrap_or_else(|p| p.into_inner());
        let mut retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        retired.retain(|r| r.clear_at.iter().any(|t| *t > now));
        let old = Arc::clone(&list);
        let mut summary = ReloadSummary::default();
        let mut next = Vec::with_capacity(setups.len());
        for setup in setups {
            let name = setup.name.clone();
            let prev = old.iter().find(|a| a.name == name);
            let budget = match prev {
                Some(a) if a.setup == setup => {
                    summary.kept.push(name);
                    next.push(Arc::clone(a));
                    continue;
                }
                Some(a) if a.kind == setup.kind && a.setup.rates == setup.rates => {
                    summary.restarted.push(name);
                    Some(Arc::clone(&a.budget))
                }
                Some(a) => {
                    summary.restarted.push(name);
                    a.stop();
                    (a.kind == setup.kind).then(|| {
                        let clear: Vec<Instant> = a
                            .setup
                            .rates
                            .iter()
                            .map(|r| now + window_span(*r))
                            .collect();
                        held_budget(&setup.rates, &clear, now)
                    })
                }
                None => {
                    summary.added.push(name.clone());
                    let gone = retired.iter().position(|r| r.name == name);
                    gone.map(|i| retired.swap_remove(i))
                        .filter(|r| r.kind == setup.kind)
                        .map(|r| held_budget(&setup.rates, &r.clear_at, now))
                }
            };
            next.push(Arc::new(Account::new(
                setup,
                budget,
                Arc::clone(&self.transport),
                Arc::clone(&self.gates),
                Arc::clone(&self.clock),
                self.store.as_ref(),
                Arc::clone(&self.on_publish),
            )));
        }
        for a in old.iter() {
            if !next.iter().any(|n| n.name == a.name) {
                a.stop();
                summary.removed.push(a.name.clone());
                retired.push(Retired {
                    name: a.name.clone(),
                    kind: a.kind,
                    clear_at: a
                        .setup
                        .rates
                        .iter()
                        .map(|r| now + window_span(*r))
                        .collect(),
                });
            }
        }
        *list = Arc::new(next);
        summary
    }

    /// The accounts now configured, in config order. A reload swaps the
    /// set; holders of an older one keep a consistent view.
    pub fn accounts(&self) -> Arc<Vec<Arc<Account>>> {
        self.accounts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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
        let accounts = self.accounts();
        let flights: Vec<_> = accounts.iter().map(|a| a.ensure_fresh()).collect();
        let waits = accounts.iter().zip(flights).map(|(account, flight)| {
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

#[cfg(test)]
mod reload_tests {
    use super::*;
    use crate::clock::TokioClock;
    use crate::http::{HttpRequest, HttpResponse, SendFuture};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    /// Answers every testing-vendor call with an empty list (or quota) and
    /// logs `(account id, path)`; calls of the account id in `hang` never
    /// answer, and `dropped` turns true when such a call is abandoned.
    #[derive(Default)]
    struct Vendor {
        log: Mutex<Vec<(String, String)>>,
        hang: Mutex<Option<String>>,
        dropped: Arc<AtomicBool>,
    }

    struct OnDrop(Arc<AtomicBool>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    impl Vendor {
        fn lists(&self, id: &str) -> usize {
            let log = self.log.lock().unwrap();
            log.iter()
                .filter(|(a, p)| a == id && p.contains("from="))
                .count()
        }
    }

    impl Transport for Vendor {
        fn send(&self, req: HttpRequest, _: Duration) -> SendFuture<'_> {
            let id = req
                .headers
                .iter()
                .find(|(k, _)| k == "x-account-id")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let path = req.url.split_once("/v1/").map_or("", |(_, p)| p).to_owned();
            self.log.lock().unwrap().push((id.clone(), path.clone()));
            let hang = self.hang.lock().unwrap().as_deref() == Some(id.as_str());
            let guard = OnDrop(Arc::clone(&self.dropped));
            Box::pin(async move {
                if hang {
                    let _guard = guard;
                    std::future::pending::<()>().await;
                }
                let body = if path.starts_with("quota") {
                    r#"{"quotas":[]}"#
                } else {
                    r#"{"tasks":[],"total":0}"#
                };
                Ok(HttpResponse {
                    status: 200,
                    headers: vec![],
                    body: body.as_bytes().to_vec(),
                })
            })
        }
    }

    /// Accounts `names` of the testing vendor, account id = name.
    fn setups(names: &[&str]) -> Vec<AccountConfig> {
        let mut text = String::from("accounts:\n");
        for n in names {
            text.push_str(&format!(
                "  - {{ name: {n}, vendor: testing, credentials: {{ id: {n}, secret: s-{n} }}, \
                 rate_budget: {{ ListTasks: 1/300s }} }}\n"
            ));
        }
        crate::config::parse(&text, "cfg.yml", &|_| None, &|_| Err("no files".into()))
            .unwrap()
            .accounts
    }

    fn collector(names: &[&str], vendor: &Arc<Vendor>) -> Collector {
        Collector::new(
            setups(names),
            Arc::clone(vendor) as Arc<dyn Transport>,
            Arc::new(TokioClock::starting_at(1_700_000_000)),
        )
    }

    fn names(c: &Collector) -> Vec<String> {
        c.accounts().iter().map(|a| a.name.clone()).collect()
    }

    fn by_name(c: &Collector, n: &str) -> Arc<Account> {
        Arc::clone(c.accounts().iter().find(|a| a.name == n).unwrap())
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn keeps_unchanged_restarts_changed_adds_and_removes() {
        let vendor = Arc::new(Vendor::default());
        let c = collector(&["a", "b", "c"], &vendor);
        for a in c.accounts().iter() {
            a.refresh().await;
        }
        let (a0, b0) = (by_name(&c, "a"), by_name(&c, "b"));
        assert!(a0.snapshot().up);

        let mut next = setups(&["a", "b", "d"]);
        next[1].context.credentials.secret = crate::secret::Secret::new("rotated");
        let summary = c.reconfigure(next);
        assert_eq!(
            summary,
            ReloadSummary {
                kept: strings(&["a"]),
                restarted: strings(&["b"]),
                added: strings(&["d"]),
                removed: strings(&["c"]),
            }
        );
        assert_eq!(names(&c), ["a", "b", "d"]);
        // The kept account is the same one, with its data.
        let a1 = by_name(&c, "a");
        assert!(Arc::ptr_eq(&a0, &a1));
        assert!(a1.snapshot().up);
        // The restarted one is new: nothing refreshed yet.
        let b1 = by_name(&c, "b");
        assert!(!Arc::ptr_eq(&b0, &b1));
        assert!(!b1.snapshot().up && b1.snapshot().last_success.is_none());

        // The same config again keeps everything.
        let again = c.reconfigure(c.accounts().iter().map(|a| a.setup.clone()).collect());
        assert_eq!(again.kept, strings(&["a", "b", "d"]));
        assert!(again.restarted.is_empty() && again.added.is_empty() && again.removed.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_account_lists_no_window_it_already_covered() {
        let vendor = Arc::new(Vendor::default());
        let c = collector(&["a"], &vendor);
        let a = by_name(&c, "a");
        a.refresh().await;
        let first = vendor.lists("a");
        assert!(first >= 1);
        c.reconfigure(setups(&["a"]));
        tokio::time::advance(Duration::from_secs(301)).await;
        by_name(&c, "a").refresh().await;
        let log = vendor.log.lock().unwrap().clone();
        let heads: Vec<&String> = log
            .iter()
            .filter(|(id, p)| id == "a" && p.contains("from="))
            .map(|(_, p)| p)
            .collect();
        // The second listing starts near the first's end (the overlap), not
        // at the lookback start again.
        let from = |p: &str| -> i64 {
            p.split(['?', '&'])
                .find_map(|kv| kv.strip_prefix("from="))
                .unwrap()
                .parse()
                .unwrap()
        };
        assert!(heads.len() > first, "{heads:?}");
        assert!(
            from(heads[first]) > from(heads[0]) + 3600,
            "relisted from the start after a reload that kept the account: {heads:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_inherits_the_budget_spent() {
        let vendor = Arc::new(Vendor::default());
        let c = collector(&["a", "b"], &vendor);
        for a in c.accounts().iter() {
            a.refresh().await;
        }
        assert_eq!((vendor.lists("a"), vendor.lists("b")), (1, 1));
        // a: only a setting changes (same rates: the budget is shared);
        // b: its rate changes (a fresh budget that waits out the old one).
        let mut next = setups(&["a", "b"]);
        next[0].settings.retries = 0;
        next[1].rates[0] = Rate::new(2, Duration::from_secs(300));
        let s = c.reconfigure(next);
        assert_eq!(s.restarted, strings(&["a", "b"]));
        tokio::time::advance(Duration::from_secs(120)).await;
        for a in c.accounts().iter() {
            a.refresh().await;
        }
        assert_eq!(
            (vendor.lists("a"), vendor.lists("b")),
            (1, 1),
            "a restarted account listed again inside the window its predecessor used"
        );
        tokio::time::advance(Duration::from_secs(200)).await;
        for a in c.accounts().iter() {
            a.refresh().await;
        }
        assert_eq!((vendor.lists("a"), vendor.lists("b")), (2, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_removed_account_stops_and_a_quick_comeback_waits_for_its_budget() {
        let vendor = Arc::new(Vendor::default());
        *vendor.hang.lock().unwrap() = Some("b".into());
        let c = collector(&["a", "b"], &vendor);
        let b = by_name(&c, "b");
        let wait = b.ensure_fresh().expect("a refresh starts");
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(vendor.lists("b"), 1);
        assert!(!*wait.borrow());
        let s = c.reconfigure(setups(&["a"]));
        assert_eq!(s.removed, strings(&["b"]));
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(
            vendor.dropped.load(Ordering::SeqCst),
            "the removed account's request in flight was not abandoned"
        );
        assert_eq!(names(&c), ["a"]);

        // Back within its budget window: no request before the old one left it.
        *vendor.hang.lock().unwrap() = None;
        c.reconfigure(setups(&["a", "b"]));
        by_name(&c, "b").refresh().await;
        assert_eq!(vendor.lists("b"), 1);
        tokio::time::advance(Duration::from_secs(310)).await;
        by_name(&c, "b").refresh().await;
        assert_eq!(vendor.lists("b"), 2);
    }
}
