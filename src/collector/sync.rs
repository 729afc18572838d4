//! The refresh driver: plans the work of one refresh and executes it through
//! the budget. Order matters when permits are scarce:
//! 1. the newest uncovered window of every stream (fresh tasks first);
//! 2. re-checks of tasks still unfinished that the heads did not return;
//! 3. backfill of older gaps, newest first (cold start, earlier failures);
//! 4. quotas, when due.
//!
//! A missing permit defers the rest of that API's work to the next refresh
//! (paging resumes where it stopped); an error ends the refresh. A deferral
//! never hides a failure: a retry that finds the budget spent reports the
//! failure it was retrying, so the account reads down (issue: CDNetworks read
//! `up 1` through a whole outage because its one fetch permit per window was
//! always spent by the failed first attempt).
//!
//! Freshness is kept per stream: a stream's data is fresh as of a refresh
//! only when that failure-free refresh listed its head up to now. A stream
//! whose head was deferred (budget, or a relisting vendor's warm-up turn)
//! keeps its older success time, so data age describes the oldest data
//! served, not the fastest stream.

use super::budget::{Budget, Permit};
use super::{gate, Account, SyncState};
use crate::http::TransportError;
use crate::vendors::{ApiError, Outcome, Parsed, Query, Unfinished, Window};
use futures_util::stream::{FuturesOrdered, StreamExt};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The most pages of one listing in flight together
/// ([`Account::paging_width`]).
const MAX_PAGING_WIDTH: usize = 8;

/// Pages in flight beyond what keeps the budget busy on average
/// ([`Account::paging_width`]).
const HEADROOM: f64 = 1.25;

/// A permit that is released when dropped as well as after its answer: a
/// refresh aborted mid-exchange (a reload stopping its account) drops its
/// requests in flight, and their entries must still leave the budget's
/// window (a bare permit would count as in flight for ever).
struct Held<'a> {
    budget: &'a Budget,
    permit: Option<Permit>,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.permit.take() {
            self.budget.release(p);
        }
    }
}

/// How one API answers: its throttling answers in a row, for backoff
/// ([`Account::request`]), and its recent answer time, for the paging width
/// ([`Account::paging_width`]).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Pace {
    streak: u32,
    /// When the last answer that lengthened the streak came.
    learnt: Option<Instant>,
    /// Seconds per answer, smoothed (1/5 the newest).
    answer_secs: Option<f64>,
}

impl Pace {
    /// Only an answer to a request sent after the last throttling was
    /// learnt of counts: pages in flight together meet the same
    /// throttling, and eight of them must not make it a 2^7 pause.
    fn news(&self, sent_at: Instant) -> bool {
        self.learnt.is_none_or(|l| sent_at >= l)
    }
}

/// Why a query stopped early.
enum Stop {
    /// No permit within the wait limit: try again next refresh.
    Budget,
    /// A classified failure.
    Failed(ApiError),
}

/// Re-checks priced for one refresh ([`Account::price_rechecks`]).
#[derive(Debug, Default)]
struct Rechecks {
    /// Per stream: where its head listing starts instead.
    head_from: Vec<Option<i64>>,
    /// Windows to list again: (stream index, window).
    windows: Vec<(usize, Window)>,
    /// Per stream: creation times of the unfinished tasks a listing (the
    /// head or a window) re-checks, so they are not looked up by id too.
    relisted_from: Vec<Option<HashSet<i64>>>,
}

impl Rechecks {
    /// True when a listing of this refresh re-checks `u`, so it is not
    /// looked up by id as well.
    fn relisted(&self, st: &SyncState, u: &Unfinished) -> bool {
        st.streams
            .iter()
            .position(|s| *s == u.stream)
            .and_then(|i| self.relisted_from.get(i)?.as_ref())
            .is_some_and(|set| set.contains(&u.created_at))
    }
}

/// Per-refresh bookkeeping.
struct Run {
    now: i64,
    lookback_start: i64,
    /// APIs that ran out of permits this refresh.
    exhausted: HashSet<usize>,
    /// Keys of tasks returned during this refresh.
    seen: HashSet<u64>,
    /// Streams whose head was deferred: not fresh as of `now`.
    stale: HashSet<usize>,
    /// Requests that got a usable answer.
    answered: u32,
}

/// What a refresh that ended without a failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Synced {
    /// Requests that got a usable answer (0: nothing was affordable).
    pub answered: u32,
}

/// What [`Account::probe`] got back.
#[derive(Debug)]
pub enum ProbeResult {
    /// The vendor answered the probe with usable data.
    Ok(Parsed),
    /// The vendor (or the network) said no.
    Failed(ApiError),
    /// No permit within `max_permit_wait`: nothing was sent.
    Budget,
    /// The vendor has no probe call.
    Unsupported,
}

impl Account {
    /// Sends the vendor's probe query (see [`crate::vendors::Vendor::probe`])
    /// exactly as a refresh would: a permit from this account's budget, the
    /// shared transport, the account's timeout and retries. Returns the API
    /// name and what happened. Counts in the account's request statistics.
    pub async fn probe(&self) -> (Option<&'static str>, ProbeResult) {
        let Some(q) = self.vendor.probe(&self.task_types, self.clock.unix()) else {
            return (None, ProbeResult::Unsupported);
        };
        let api = self.api_names.get(q.api()).copied();
        // Held so a probe never runs beside a refresh.
        let _st = self.state.lock().await;
        let (_running, stop) = watch::channel(false);
        let result = match self.request(&q, 1, &stop).await {
            Ok(parsed) => ProbeResult::Ok(parsed),
            Err(Stop::Failed(e)) => ProbeResult::Failed(e),
            Err(Stop::Budget) => ProbeResult::Budget,
        };
        (api, result)
    }

    pub(super) async fn sync(&self, st: &mut SyncState, now: i64) -> Result<Synced, ApiError> {
        let lookback_start = now - self.settings.lookback.as_secs() as i64;
        let overlap = self.settings.overlap.as_secs() as i64;
        st.counting_since.get_or_insert(now);
        let relist = self.vendor.recheck_by_relisting();
        for c in &mut st.coverage {
            let resume = c.resume_point();
            c.advance(now, overlap, lookback_start);
            // A relisting vendor pages one call per budget window; a listing
            // that began at the lookback's edge keeps its place while the
            // edge moves on (the window is fixed, so its pages stay aligned).
            if let Some((w, page)) =
                resume.filter(|(w, _)| relist.is_some() && w.to > lookback_start)
            {
                c.pause_at(w, page);
            }
        }
        let mut run = Run {
            now,
            lookback_start,
            exhausted: HashSet::new(),
            seen: HashSet::new(),
            stale: HashSet::new(),
            answered: 0,
        };

        // Re-checks are priced before the heads: a head may be stretched
        // back over the unfinished tasks just behind it.
        let heads: Vec<Option<Window>> = (0..st.streams.len())
            .map(|i| st.coverage[i].chunks(self.span_of(st, i)).first().copied())
            .collect();
        let mut rechecks = match relist {
            Some(_) => Rechecks::default(),
            None => self.price_rechecks(st, &heads),
        };

        // 1. Heads. A stream is fresh only if the listing reached now.
        for i in 0..st.streams.len() {
            let span = self.span_of(st, i);
            let chunks = st.coverage[i].chunks(span);
            if let Some(head) = chunks.first().copied() {
                let w = match relist {
                    Some(page_size) => self.relisting_head(st, &run, i, &chunks, span, page_size),
                    None => Window {
                        from: rechecks
                            .head_from
                            .get(i)
                            .copied()
                            .flatten()
                            .map_or(head.from, |f| f.min(head.from)),
                        to: head.to,
                    },
                };
                let listed = self.run_list(st, &mut run, i, w).await?;
                if !listed || w.to < head.to {
                    run.stale.insert(i);
                }
            }
        }

        // 2. Re-checks of unfinished tasks the heads did not return: by id,
        // and by listing again the windows priced cheaper that way.
        let mut unfinished = self.unfinished(st, |k, _| !run.seen.contains(&k));
        if relist.is_none() {
            unfinished.retain(|u| !rechecks.relisted(st, u));
        }
        // Re-checks are best effort against the budget: a deferred one does
        // not make its stream stale (the head still carries every new task),
        // or a vendor with a scarce list API and one stuck task would read
        // stale for ever; `cdn_task_oldest_unfinished_age_seconds` shows them.
        let relistings = std::mem::take(&mut rechecks.windows)
            .into_iter()
            .map(|(i, window)| Query::List {
                stream: st.streams[i],
                window,
            });
        let queries: Vec<Query> = self
            .vendor
            .plan_rechecks(&unfinished)
            .into_iter()
            .chain(relistings)
            .collect();
        for q in queries {
            if run.exhausted.contains(&q.api()) {
                continue;
            }
            // Not resumable: a re-check listing is priced afresh each refresh.
            match self.run_query(st, &mut run, &q, 1, false).await {
                Ok(()) => {}
                Err(Stop::Budget) => {
                    run.exhausted.insert(q.api());
                }
                Err(Stop::Failed(e)) => return Err(e),
            }
        }

        // 3. Backfill.
        for i in 0..st.streams.len() {
            let span = self.span_of(st, i);
            for w in st.coverage[i].chunks(span) {
                if run.exhausted.contains(&st.streams[i].api) {
                    break;
                }
                self.run_list(st, &mut run, i, w).await?;
            }
        }

        // 4. Quotas.
        if st
            .last_quota
            .is_none_or(|t| t.elapsed() >= self.settings.quota_interval)
        {
            let mut complete = true;
            for q in self.vendor.quota_queries(&self.task_types) {
                if run.exhausted.contains(&q.api()) {
                    complete = false;
                    continue;
                }
                match self.run_query(st, &mut run, &q, 1, false).await {
                    Ok(()) => {}
                    Err(Stop::Budget) => {
                        complete = false;
                        run.exhausted.insert(q.api());
                    }
                    Err(Stop::Failed(e)) => return Err(e),
                }
            }
            if complete {
                st.last_quota = Some(Instant::now());
            }
        }
        for (i, fresh) in st.stream_success.iter_mut().enumerate() {
            if !run.stale.contains(&i) {
                *fresh = Some(now);
            }
        }
        Ok(Synced {
            answered: run.answered,
        })
    }

    /// The cached unfinished tasks `keep` admits (by cache key and task),
    /// oldest first.
    pub(super) fn unfinished(
        &self,
        st: &SyncState,
        keep: impl Fn(u64, &super::cache::CachedTask) -> bool,
    ) -> Vec<Unfinished> {
        let mut unfinished: Vec<Unfinished> = st
            .cache
            .unfinished()
            .filter(|(k, _, t)| keep(*k, t))
            .filter_map(|(_, id, t)| {
                st.streams.get(usize::from(t.stream)).map(|s| Unfinished {
                    id: id.to_owned(),
                    task_type: t.task_type(),
                    created_at: t.created_at,
                    stream: *s,
                })
            })
            .collect();
        unfinished.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        unfinished
    }

    /// Per stream with a known page size, the cheapest mix of id lookups
    /// and re-listed windows for its unfinished tasks older than its head
    /// (see [`super::recheck`]); tasks of other streams stay by id.
    fn price_rechecks(&self, st: &SyncState, heads: &[Option<Window>]) -> Rechecks {
        let n = st.streams.len();
        let mut out = Rechecks {
            head_from: vec![None; n],
            windows: Vec::new(),
            relisted_from: vec![None; n],
        };
        let page_sizes: Vec<Option<u32>> = st
            .streams
            .iter()
            .map(|s| self.vendor.list_page_size(s))
            .collect();
        let mut per_stream: Vec<Vec<Unfinished>> = vec![Vec::new(); n];
        for u in self.unfinished(st, |_, _| true) {
            if let Some(i) = st.streams.iter().position(|s| *s == u.stream) {
                let behind_head = heads[i].is_none_or(|h| u.created_at < h.from);
                if page_sizes[i].is_some() && behind_head {
                    per_stream[i].push(u);
                }
            }
        }
        if per_stream.iter().all(Vec::is_empty) {
            return out;
        }
        let mut created: Vec<Vec<i64>> = vec![Vec::new(); n];
        for t in st.cache.tasks() {
            if let Some(c) = created.get_mut(usize::from(t.stream)) {
                c.push(t.created_at);
            }
        }
        for (i, mut tasks) in per_stream.into_iter().enumerate() {
            let Some(page_size) = page_sizes[i].filter(|_| !tasks.is_empty()) else {
                continue;
            };
            tasks.reverse();
            created[i].sort_unstable();
            let costs = self.vendor.recheck_id_costs(&tasks);
            let priced: Vec<(i64, Option<f64>)> = tasks
                .iter()
                .zip(costs.into_iter().chain(std::iter::repeat(None)))
                .map(|(u, c)| (u.created_at, c))
                .collect();
            let plan = super::recheck::plan_stream(&super::recheck::StreamCosts {
                created: &created[i],
                page_size,
                max_span: self.span_of(st, i),
                head: heads[i],
                any_window: self.vendor.lists_any_window(),
                unfinished: &priced,
            });
            out.head_from[i] = plan.head_from;
            // The rest go by id, planned after the heads.
            let by_id: HashSet<usize> = plan.by_id.iter().copied().collect();
            out.relisted_from[i] = Some(
                (0..tasks.len())
                    .filter(|j| !by_id.contains(j))
                    .map(|j| tasks[j].created_at)
                    .collect(),
            );
            out.windows.extend(plan.windows.into_iter().map(|w| (i, w)));
        }
        out
    }

    /// The first listing of stream `i` for a vendor that re-checks by
    /// relisting ([`crate::vendors::Vendor::recheck_by_relisting`]): the head
    /// stretched back over the stream's unfinished tasks (within `span` and
    /// half a page of cached tasks); or
    /// the window whose paging stopped midway; or, when older gaps remain
    /// and the head was listed less than two budget windows ago, the newest
    /// older gap (so warm-up alternates with heads instead of starving
    /// behind them).
    fn relisting_head(
        &self,
        st: &SyncState,
        run: &Run,
        i: usize,
        chunks: &[Window],
        span: Option<i64>,
        page_size: u32,
    ) -> Window {
        let Some(&head) = chunks.first() else {
            return Window { from: 0, to: 0 };
        };
        // A listing that stopped midway goes on first: a head that grows by
        // every refresh would otherwise restart at page 1 forever.
        if let Some((w, _)) = st.coverage[i].resume_point() {
            return w;
        }
        let per = self.budget.rate(st.streams[i].api).per.as_secs() as i64;
        if let Some(&older) = chunks.get(1) {
            if head.len() < 2 * per {
                return older;
            }
        }
        let floor = span
            .map_or(run.lookback_start, |s| head.to - s)
            .max(run.lookback_start);
        // Stretch no further than half a page of cached tasks: the rest of
        // the page is room for new ones. Older unfinished tasks are left to
        // plan_rechecks.
        let room = (page_size / 2) as usize;
        let mut created: Vec<i64> = st
            .cache
            .tasks()
            .filter(|t| {
                usize::from(t.stream) == i && t.created_at >= floor && t.created_at < head.to
            })
            .map(|t| t.created_at)
            .collect();
        let floor = if created.len() > room {
            let (_, nth, _) = created.select_nth_unstable_by(room, |a, b| b.cmp(a));
            (*nth + 1).max(floor)
        } else {
            floor
        };
        let oldest = st
            .cache
            .unfinished()
            .filter(|(_, _, t)| usize::from(t.stream) == i)
            .map(|(_, _, t)| t.created_at)
            .filter(|&c| c >= floor && c < head.from)
            .min();
        Window {
            from: oldest.unwrap_or(head.from),
            to: head.to,
        }
    }

    fn span_of(&self, st: &SyncState, i: usize) -> Option<i64> {
        self.vendor
            .max_span(&st.streams[i])
            .map(|d| d.as_secs() as i64)
    }

    /// Lists window `w` of stream `i`, resuming paging where it stopped.
    /// `Ok(false)`: deferred for lack of budget (no failure was seen).
    ///
    /// A stream's first listing runs up to now, so no page of it is
    /// [settled](Self::settled): it is split at `overlap` before the
    /// refresh, the newest part paged one at a time, the rest (nearly all
    /// of a first sync) several pages at a time. One extra call, once.
    async fn run_list(
        &self,
        st: &mut SyncState,
        run: &mut Run,
        i: usize,
        w: Window,
    ) -> Result<bool, ApiError> {
        let stream = st.streams[i];
        let cut = run.now - self.settings.overlap.as_secs() as i64;
        let split = st.stream_success[i].is_none()
            && self.vendor.tells_totals()
            // One permit a window (CDNetworks) never pages wider than 1.
            && self.budget.rate(stream.api).requests > 1
            && w.from < cut
            && cut < w.to;
        let parts = if split {
            vec![
                Window {
                    from: cut,
                    to: w.to,
                },
                Window {
                    from: w.from,
                    to: cut,
                },
            ]
        } else {
            vec![w]
        };
        for part in parts {
            if run.exhausted.contains(&stream.api) {
                return Ok(false);
            }
            let start = st.coverage[i].start_page(part);
            let q = Query::List {
                stream,
                window: part,
            };
            match self.run_query(st, run, &q, start, true).await {
                Ok(()) => st.coverage[i].cover(part),
                Err(Stop::Budget) => {
                    run.exhausted.insert(stream.api);
                    return Ok(false);
                }
                Err(Stop::Failed(e)) => return Err(e),
            }
        }
        Ok(true)
    }

    /// True when no task can join `q`'s answers while its pages are read,
    /// so they may go together: a lookup by id, or a listing of a window
    /// that ended `overlap` or more before the refresh (tasks are created
    /// now, and `overlap` is how late one may already show up). With
    /// offset paging, a task created meanwhile shifts every later page by
    /// one; pages answered out of order would then skip the tasks shifted
    /// across their boundaries (the fault matrix's `shared_pages`).
    fn settled(&self, q: &Query, now: i64) -> bool {
        match q {
            Query::List { window, .. } => window.to <= now - self.settings.overlap.as_secs() as i64,
            Query::ById { .. } => true,
            Query::Quota { .. } => false,
        }
    }

    /// Runs every page of `q` from `page`. On a budget stop mid-listing the
    /// page to resume at is remembered when `resumable`.
    ///
    /// Once an answer tells the last page ([`Parsed::known_last_page`]), the
    /// pages up to it of a [settled](Self::settled) query go
    /// [`Account::paging_width`] at a time: one after
    /// another, a stream is bound by its answer time wherever answers are
    /// slower than its budget, and the budget still decides when each one
    /// leaves. Answers are folded
    /// in page order, so a stop leaves every page before it merged.
    async fn run_query(
        &self,
        st: &mut SyncState,
        run: &mut Run,
        q: &Query,
        page: u32,
        resumable: bool,
    ) -> Result<(), Stop> {
        let settled = self.vendor.tells_totals() && self.settled(q, run.now);
        let max_pages = self.settings.max_pages;
        // Set when the listing ends: pages not sent yet are not sent, and
        // the ones in flight are awaited, so every answer the vendor gave
        // is counted (a throttled sibling included) and its permit released.
        let (end, stop) = watch::channel(false);
        let stop = &stop;
        let mut in_flight = FuturesOrdered::new();
        let mut to_send = page;
        let mut known_last = 0u32;
        let result = loop {
            // Measured again as answers come (the first page of the first
            // listing has no answer time to go by).
            let width = if settled {
                self.paging_width(q.api())
            } else {
                1
            };
            while in_flight.is_empty()
                || (in_flight.len() < width && to_send <= known_last.min(max_pages))
            {
                let p = to_send;
                in_flight.push_back(async move { (p, self.request(q, p, stop).await) });
                to_send = to_send.saturating_add(1);
            }
            let Some((page, answer)) = in_flight.next().await else {
                break Ok(());
            };
            let parsed = match answer {
                Ok(p) => {
                    run.answered += 1;
                    p
                }
                Err(Stop::Budget) => {
                    if let Query::List { stream, window } = q {
                        if page > 1 && resumable {
                            if let Some(i) = st.streams.iter().position(|s| s == stream) {
                                st.coverage[i].pause_at(*window, page);
                            }
                        }
                    }
                    break Err(Stop::Budget);
                }
                Err(e) => break Err(e),
            };
            let next = parsed.next_page;
            known_last = known_last.max(parsed.known_last_page.unwrap_or(0));
            self.merge(st, run, q, parsed);
            match next {
                Some(n) if n > page && n <= max_pages => {
                    if n != page + 1 {
                        // Not the page after (a cursor): nothing else can
                        // be in flight, as no total was told.
                        to_send = n;
                    }
                }
                Some(n) if n > max_pages => {
                    break Err(Stop::Failed(ApiError::new(
                        Outcome::ParseError,
                        format!("listing claims more than {max_pages} pages"),
                    )))
                }
                _ => break Ok(()),
            }
        };
        end.send_replace(true);
        // A failed answer among them is kept: the listing ending (its last
        // page, or the budget) does not make that answer usable.
        let mut result = result;
        while let Some((_, answer)) = in_flight.next().await {
            if let (Err(Stop::Failed(e)), Ok(()) | Err(Stop::Budget)) = (answer, &result) {
                result = Err(Stop::Failed(e));
            }
        }
        result
    }

    /// How many pages of one listing may be in flight together: as many as
    /// keep the budget busy, by Little's law. A permit counts from its
    /// answer, so each request holds its place in the window for its answer
    /// time L and the window W after it: N permits a window allow N/(W+L)
    /// requests a second, one page at a time 1/L. N·L/(W+L) in flight reach
    /// the budget; more would only lengthen a loaded vendor's answers (and
    /// with them every permit's stay). L is the API's recent answer time;
    /// none yet, one page. A quarter more than that, as answer times vary
    /// and the smoothed one lags (Volcengine's 79 ms pages against its 15
    /// permits a second came to 1.05, and one at a time left the budget a
    /// tenth idle). At most [`MAX_PAGING_WIDTH`], so one account does not
    /// take its endpoint's in-flight cap. CDNetworks (1 call in 10 minutes)
    /// always pages one at a time.
    fn paging_width(&self, api: usize) -> usize {
        let Some(l) = self.pace()[api].answer_secs else {
            return 1;
        };
        let n = f64::from(self.budget.rate(api).requests);
        let w = self.budget.span(api).as_secs_f64();
        ((HEADROOM * n * l / (w + l)).ceil() as usize).clamp(1, MAX_PAGING_WIDTH)
    }

    /// One request: permit, build, send, classify; retries transient
    /// failures, each retry taking its own permit. A retry that finds no
    /// permit reports the failure it was retrying: running out of budget
    /// afterwards does not make a failed answer usable.
    /// Once `stop` reads true (the listing ended), nothing more is sent.
    async fn request(
        &self,
        q: &Query,
        page: u32,
        stop: &watch::Receiver<bool>,
    ) -> Result<Parsed, Stop> {
        let api = q.api();
        let mut attempt = 0u32;
        let mut failure: Option<ApiError> = None;
        let gate = self
            .gate
            .get_or_init(|| self.gates.gate(&self.setup.context.endpoint));
        loop {
            // The budget's next permit is waited for first, holding
            // nothing; then the endpoint's slot (see `gate`), then the
            // permit itself, so a permitted request leaves at once and an
            // account waiting on its own budget holds no other account's
            // slot.
            let max_wait = self.settings.max_permit_wait;
            if *stop.borrow() {
                return Err(failure.map_or(Stop::Budget, Stop::Failed));
            }
            let ready = self.budget.wait_time(api);
            if ready > max_wait {
                return Err(failure.map_or(Stop::Budget, Stop::Failed));
            }
            let waited = async {
                if !ready.is_zero() {
                    tokio::time::sleep(ready).await;
                }
                let slot = gate::enter(gate).await;
                let permit = self
                    .budget
                    .acquire(api, max_wait.saturating_sub(ready))
                    .await;
                (slot, permit)
            };
            // A listing that ends stops the waits of its pages not yet sent
            // (cancelling one takes no permit: `acquire` records a permit
            // and returns it in one step).
            let mut ended = stop.clone();
            let (slot, permit) = tokio::select! {
                biased;
                _ = ended.wait_for(|e| *e) => {
                    return Err(failure.map_or(Stop::Budget, Stop::Failed));
                }
                w = waited => w,
            };
            let Ok(permit) = permit else {
                return Err(failure.map_or(Stop::Budget, Stop::Failed));
            };
            let held = Held {
                budget: &self.budget,
                permit: Some(permit),
            };
            let sent_at = Instant::now();
            let req = match self.vendor.build(q, page, self.clock.now()) {
                Ok(r) => r,
                Err(e) => {
                    drop(held);
                    return Err(Stop::Failed(ApiError::new(
                        Outcome::ClientError,
                        e.to_string(),
                    )));
                }
            };
            let t0 = Instant::now();
            let sent = self
                .transport
                .send(req, self.settings.request_timeout)
                .await;
            drop(held);
            drop(slot);
            let took = t0.elapsed().as_secs_f64();
            self.stats.latency[api].observe(took);
            let result = match sent {
                Ok(resp) => self.vendor.parse(q, page, &resp),
                Err(TransportError::Timeout(d)) => Err(ApiError::new(
                    Outcome::Timeout,
                    format!("no complete answer within {d:?}"),
                )),
                Err(TransportError::Network(m)) => Err(ApiError::new(Outcome::Network, m)),
                Err(e @ TransportError::TooLarge(_)) => {
                    Err(ApiError::new(Outcome::ParseError, e.to_string()))
                }
            };
            match result {
                Ok(parsed) => {
                    self.stats.count(api, Outcome::Ok);
                    let t = &mut self.pace()[api];
                    if t.news(sent_at) {
                        t.streak = 0;
                    }
                    t.answer_secs = Some(t.answer_secs.map_or(took, |a| 0.8 * a + 0.2 * took));
                    return Ok(parsed);
                }
                Err(e) => {
                    self.stats.count(api, e.outcome);
                    tracing::debug!(vendor = %self.kind, account = %self.name, api = self.api_names[api], outcome = e.outcome.as_str(), error = %e, "request failed");
                    if e.outcome == Outcome::Throttled {
                        let streak = {
                            let t = &mut self.pace()[api];
                            if t.news(sent_at) {
                                t.streak += 1;
                                t.learnt = Some(Instant::now());
                            }
                            t.streak.saturating_sub(1).min(6)
                        };
                        let per = self.budget.rate(api).per.max(Duration::from_secs(1));
                        let pause = e
                            .retry_after
                            .unwrap_or(per * 2u32.pow(streak))
                            .min(Duration::from_secs(3600));
                        self.budget.block_for(api, pause);
                        return Err(Stop::Failed(e));
                    }
                    if e.outcome.is_transient() && attempt < self.settings.retries {
                        attempt += 1;
                        failure = Some(e);
                        tokio::time::sleep(Duration::from_millis(500) * 2u32.pow(attempt)).await;
                        continue;
                    }
                    return Err(Stop::Failed(e));
                }
            }
        }
    }

    fn pace(&self) -> std::sync::MutexGuard<'_, Vec<Pace>> {
        self.pace.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Folds one response into the cache, counting first-seen finishes.
    fn merge(&self, st: &mut SyncState, run: &mut Run, q: &Query, parsed: Parsed) {
        let counting_since = st.counting_since.unwrap_or(run.now);
        let list_stream = match q {
            Query::List { stream, .. } => st.streams.iter().position(|s| s == stream),
            _ => None,
        };
        let mut details = self.details();
        let mut kept = 0u32;
        for task in &parsed.tasks {
            if !self.task_types.contains(&task.task_type) || task.created_at < run.lookback_start {
                continue;
            }
            kept += 1;
            let key = st.cache.key(&task.id);
            run.seen.insert(key);
            let stream = list_stream
                .or_else(|| st.cache.get(key).map(|t| usize::from(t.stream)))
                .unwrap_or(0) as u8;
            details.observe(task, run.now);
            if let Some(f) = st.cache.upsert(task, stream, counting_since) {
                let col = usize::from(f.status == crate::task::TaskStatus::Failed);
                st.finished[f.task_type.index()][col] += 1;
                if let Some(d) = f.duration_seconds {
                    self.durations.observe(f.task_type, d);
                }
                if f.status == crate::task::TaskStatus::Failed {
                    // Once per task: the cache reports a finish only the
                    // first time, and never for the baseline.
                    tracing::warn!(
                        event = "task_failed",
                        vendor = %self.kind,
                        account = %self.name,
                        task_id = super::details::shown_id(&task.id, false),
                        task_type = %f.task_type,
                        url_count = task.url_count,
                        url = details
                            .failed(&task.id)
                            .map_or("", super::details::first_url_for_log),
                        error = task.error.as_deref().unwrap_or(""),
                        "task failed"
                    );
                }
            }
        }
        drop(details);
        if let (Some(i), Some(_)) = (list_stream, parsed.next_page) {
            st.full_page[i] = Some(st.full_page[i].map_or(kept, |p| p.max(kept)));
        }
        for quota in parsed.quotas {
            st.quotas.retain(|q| q.task_type != quota.task_type);
            st.quotas.push(quota);
        }
        st.quotas.sort_by_key(|q| q.task_type);
    }
}

/// One account `a` of the testing kind with a scripted vendor and
/// transport, on a clock from `t0` (paused time), for the driver's tests.
#[cfg(test)]
fn scripted_account(
    vendor: std::sync::Arc<dyn crate::vendors::Vendor>,
    transport: std::sync::Arc<dyn crate::http::Transport>,
    rates: Vec<crate::api::Rate>,
    task_types: Vec<crate::task::TaskType>,
    settings: super::Settings,
    t0: i64,
) -> super::Collector {
    super::Collector::new(
        vec![crate::config::AccountConfig {
            context: Default::default(),
            name: "a".into(),
            kind: crate::vendors::VendorKind::Testing,
            vendor,
            options: Default::default(),
            rates,
            task_types,
            settings,
        }],
        transport,
        std::sync::Arc::new(crate::clock::TokioClock::starting_at(t0)),
    )
}

#[cfg(test)]
mod tests {
    //! The driver's `recheck_by_relisting` behaviour, with a scripted vendor
    //! whose list API allows one call per 5 minutes.
    use super::super::{Collector, Settings};
    use crate::api::Rate;
    use crate::http::{HttpRequest, HttpResponse, Method, SendFuture, Transport};
    use crate::task::{Task, TaskStatus, TaskType};
    use crate::vendors::{
        ApiError, BuildError, Parsed, Query, Stream, Unfinished, Vendor, VendorKind, Window,
    };
    use chrono::{DateTime, Utc};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    const T0: i64 = 1_700_000_000;
    const DAY: i64 = 86_400;

    #[derive(Debug)]
    struct Relisting;

    impl Vendor for Relisting {
        fn kind(&self) -> VendorKind {
            VendorKind::Testing
        }
        fn streams(&self, _: &[TaskType]) -> Vec<Stream> {
            vec![Stream {
                api: 0,
                task_type: None,
            }]
        }
        fn max_span(&self, _: &Stream) -> Option<Duration> {
            Some(Duration::from_secs(DAY as u64))
        }
        fn recheck_by_relisting(&self) -> Option<u32> {
            Some(1000)
        }
        fn plan_rechecks(&self, _: &[Unfinished]) -> Vec<Query> {
            Vec::new()
        }
        fn build(&self, q: &Query, page: u32, _: DateTime<Utc>) -> Result<HttpRequest, BuildError> {
            let Query::List { window, .. } = q else {
                return Err(BuildError("lists only".into()));
            };
            Ok(HttpRequest {
                method: Method::Get,
                url: format!("http://sim/{page}/{}/{}", window.from, window.to),
                headers: vec![],
                body: vec![],
            })
        }
        fn parse(&self, q: &Query, page: u32, r: &HttpResponse) -> Result<Parsed, ApiError> {
            // Day-long windows hold three pages when `PAGED` is set.
            let paged = matches!(q, Query::List { window, .. } if window.len() >= DAY)
                && r.headers.iter().any(|(k, _)| k == "x-paged");
            let tasks: Vec<(i64, bool)> = serde_json::from_slice(&r.body).unwrap_or_default();
            Ok(Parsed {
                tasks: tasks
                    .into_iter()
                    .map(|(created_at, done)| Task {
                        id: format!("t{created_at}"),
                        task_type: TaskType::Prefetch,
                        status: if done {
                            TaskStatus::Success
                        } else {
                            TaskStatus::Running
                        },
                        url_count: 1,
                        urls: Vec::new(),
                        domain: None,
                        created_at,
                        finished_at: None,
                        progress: None,
                        error: None,
                    })
                    .collect(),
                quotas: vec![],
                next_page: (paged && page < 3).then_some(page + 1),
                known_last_page: None,
            })
        }
    }

    /// One unfinished task created an hour before start; it finishes when
    /// `done` is set. Every listed window is logged.
    #[derive(Clone, Default)]
    struct Script {
        log: Arc<Mutex<Vec<Window>>>,
        pages: Arc<Mutex<Vec<u32>>>,
        done: Arc<Mutex<bool>>,
        paged: bool,
    }

    impl Transport for Script {
        fn send(&self, req: HttpRequest, _: Duration) -> SendFuture<'_> {
            let mut parts = req.url.rsplit('/');
            let to: i64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            let from: i64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            let page: u32 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            self.log.lock().unwrap().push(Window { from, to });
            self.pages.lock().unwrap().push(page);
            let paged = self.paged;
            let created = T0 - 3600;
            let body = if (from..to).contains(&created) {
                serde_json::to_vec(&[(created, *self.done.lock().unwrap())]).unwrap()
            } else {
                b"[]".to_vec()
            };
            Box::pin(async move {
                Ok(HttpResponse {
                    status: 200,
                    headers: if paged {
                        vec![("x-paged".into(), "1".into())]
                    } else {
                        vec![]
                    },
                    body,
                })
            })
        }
    }

    fn collector(script: &Script, lookback_days: u64) -> Collector {
        super::scripted_account(
            Arc::new(Relisting),
            Arc::new(script.clone()),
            vec![Rate::new(1, Duration::from_secs(300))],
            vec![TaskType::Prefetch],
            Settings {
                lookback: Duration::from_secs(lookback_days * DAY as u64),
                overlap: Duration::from_secs(120),
                ..Settings::default()
            },
            T0,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn relisting_alternates_warm_up_and_stretches_heads_over_unfinished() {
        let script = Script::default();
        let collector = collector(&script, 3);
        let account = &collector.accounts()[0];
        let mut windows = Vec::new();
        for n in 0..6 {
            if n == 4 {
                *script.done.lock().unwrap() = true;
            }
            account.refresh().await;
            windows.push(script.log.lock().unwrap().last().copied().unwrap());
            tokio::time::advance(Duration::from_secs(310)).await;
        }
        assert_eq!(script.log.lock().unwrap().len(), 6, "one call per refresh");
        let at = |n: i64| T0 + 310 * n;
        let w = |from, to| Window { from, to };
        assert_eq!(
            windows,
            vec![
                // The newest day first.
                w(T0 - DAY, T0),
                // Backfill's turn: the head was listed one window ago.
                w(T0 - 2 * DAY, T0 - DAY),
                // The head, stretched back over the unfinished task.
                w(T0 - 3600, at(2)),
                // Backfill again: warm-up completes.
                w(T0 - 3 * DAY + 3 * 310, T0 - 2 * DAY),
                // Heads only from here; the task finishes in this listing...
                w(T0 - 3600, at(4)),
                // ...so the next head is just the new part plus the overlap.
                w(at(4) - 120, at(5)),
            ]
        );
        assert!(account.snapshot().up);
    }

    #[tokio::test(start_paused = true)]
    async fn relisting_resumes_paging_of_a_window_at_the_lookback_edge() {
        let script = Script {
            paged: true,
            ..Script::default()
        };
        let collector = collector(&script, 1);
        let account = &collector.accounts()[0];
        for _ in 0..4 {
            account.refresh().await;
            tokio::time::advance(Duration::from_secs(310)).await;
        }
        let log = script.log.lock().unwrap().clone();
        let pages = script.pages.lock().unwrap().clone();
        let first = Window {
            from: T0 - DAY,
            to: T0,
        };
        // The first window starts at the lookback's edge, which moves on by
        // 310 s per refresh; its pages 2 and 3 still follow, then the head.
        assert_eq!(pages, vec![1, 2, 3, 1]);
        assert_eq!(&log[..3], &[first, first, first]);
        assert_eq!(log[3].to, T0 + 3 * 310);
        assert!(
            log[3].from <= T0 - 3600,
            "stretched over the unfinished task"
        );
    }
}

#[cfg(test)]
mod health {
    //! Regression tests for paths where a failure could be swallowed or
    //! freshness overstated. The scripted vendor has two list APIs — a
    //! scarce one for prefetches (1 call / 5 min, like CDNetworks fetch) and
    //! a plentiful one for refreshes — by-id re-checks, and a quota API.
    use super::super::{Account, Collector, Settings};
    use crate::api::Rate;
    use crate::clock::TokioClock;
    use crate::config::AccountConfig as AccountSetup;
    use crate::http::{HttpRequest, HttpResponse, Method, SendFuture, Transport, TransportError};
    use crate::task::{Task, TaskStatus, TaskType};
    use crate::vendors::{
        outcome_for_status, ApiError, BuildError, Parsed, Query, Quota, Stream, Unfinished, Vendor,
        VendorKind,
    };
    use chrono::{DateTime, Utc};
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    const T0: i64 = 1_700_000_000;
    const SCARCE: usize = 0;
    const PLENTY: usize = 1;
    /// Re-checks and quota share the third API (the testing kind has three).
    const BY_ID: usize = 2;
    const QUOTA: usize = 2;
    const PATHS: [&str; 4] = ["scarce", "plenty", "byid", "quota"];

    #[derive(Debug)]
    struct TwoApis;

    impl Vendor for TwoApis {
        fn kind(&self) -> VendorKind {
            VendorKind::Testing
        }
        fn streams(&self, watched: &[TaskType]) -> Vec<Stream> {
            [
                Stream {
                    api: SCARCE,
                    task_type: Some(TaskType::Prefetch),
                },
                Stream {
                    api: PLENTY,
                    task_type: Some(TaskType::RefreshFile),
                },
            ]
            .into_iter()
            .filter(|s| s.task_type.is_some_and(|t| watched.contains(&t)))
            .collect()
        }
        fn plan_rechecks(&self, unfinished: &[Unfinished]) -> Vec<Query> {
            unfinished
                .iter()
                .map(|u| Query::ById {
                    api: BY_ID,
                    task_type: Some(u.task_type),
                    ids: vec![u.id.clone()],
                })
                .collect()
        }
        fn quota_queries(&self, _: &[TaskType]) -> Vec<Query> {
            vec![Query::Quota { api: QUOTA }]
        }
        fn build(&self, q: &Query, page: u32, _: DateTime<Utc>) -> Result<HttpRequest, BuildError> {
            let (path, arg) = match q {
                Query::List { stream, window } => {
                    (PATHS[stream.api], format!("{}-{}", window.from, window.to))
                }
                Query::ById { ids, .. } => (PATHS[2], ids.join(",")),
                Query::Quota { .. } => (PATHS[3], String::new()),
            };
            Ok(HttpRequest {
                method: Method::Get,
                url: format!("http://sim/{path}/{page}/{arg}"),
                headers: vec![],
                body: vec![],
            })
        }
        fn parse(&self, q: &Query, page: u32, r: &HttpResponse) -> Result<Parsed, ApiError> {
            if r.status != 200 {
                return Err(ApiError::new(
                    outcome_for_status(r.status),
                    "scripted error",
                ));
            }
            let tasks: Vec<ScriptTask> =
                serde_json::from_slice(&r.body).map_err(|e| ApiError::parse(e, &r.body))?;
            Ok(Parsed {
                tasks: tasks
                    .into_iter()
                    .map(|(id, ty, created_at, done)| Task {
                        id,
                        task_type: if ty == 0 {
                            TaskType::Prefetch
                        } else {
                            TaskType::RefreshFile
                        },
                        status: if done {
                            TaskStatus::Success
                        } else {
                            TaskStatus::Running
                        },
                        url_count: 1,
                        urls: Vec::new(),
                        domain: None,
                        created_at,
                        finished_at: None,
                        progress: None,
                        error: None,
                    })
                    .collect(),
                quotas: match q {
                    Query::Quota { .. } => vec![Quota {
                        task_type: TaskType::RefreshFile,
                        limit: 100.0,
                        remaining: 90.0,
                    }],
                    _ => vec![],
                },
                // `endless` pages never stop.
                next_page: r
                    .headers
                    .iter()
                    .any(|(k, _)| k == "x-endless")
                    .then_some(page + 1),
                known_last_page: None,
            })
        }
    }

    /// What the scripted vendor answers, per path.
    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Answer {
        Ok,
        Status(u16),
        Timeout,
        Reset,
        Endless,
    }

    /// (id, type 0 prefetch / 1 refresh, created, done).
    type ScriptTask = (String, u8, i64, bool);

    #[derive(Clone, Default)]
    struct Script {
        answers: Arc<Mutex<HashMap<&'static str, Answer>>>,
        tasks: Arc<Mutex<Vec<ScriptTask>>>,
        log: Arc<Mutex<Vec<String>>>,
    }

    impl Script {
        fn answer(&self, path: &'static str, a: Answer) {
            self.answers.lock().unwrap().insert(path, a);
        }
        fn calls(&self, path: &str) -> usize {
            let prefix = format!("{path}/");
            self.log
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.starts_with(&prefix))
                .count()
        }
    }

    impl Transport for Script {
        fn send(&self, req: HttpRequest, timeout: Duration) -> SendFuture<'_> {
            let rest = req.url.trim_start_matches("http://sim/").to_owned();
            self.log.lock().unwrap().push(rest.clone());
            let mut parts = rest.splitn(3, '/');
            let path = parts.next().unwrap_or("").to_owned();
            let _page = parts.next();
            let arg = parts.next().unwrap_or("").to_owned();
            let answer = PATHS
                .iter()
                .find(|p| **p == path)
                .and_then(|p| self.answers.lock().unwrap().get(p).copied())
                .unwrap_or(Answer::Ok);
            let tasks = self.tasks.lock().unwrap().clone();
            let body: Vec<_> = match path.as_str() {
                "scarce" | "plenty" => {
                    let ty = u8::from(path == "plenty");
                    let (from, to) = arg.split_once('-').unwrap_or(("0", "0"));
                    let (from, to): (i64, i64) =
                        (from.parse().unwrap_or(0), to.parse().unwrap_or(0));
                    tasks
                        .into_iter()
                        .filter(|t| t.1 == ty && (from..to).contains(&t.2))
                        .collect()
                }
                "byid" => tasks
                    .into_iter()
                    .filter(|t| arg.split(',').any(|id| id == t.0))
                    .collect(),
                _ => vec![],
            };
            Box::pin(async move {
                match answer {
                    Answer::Timeout => Err(TransportError::Timeout(timeout)),
                    Answer::Reset => Err(TransportError::Network("connection reset".into())),
                    Answer::Status(s) => Ok(HttpResponse {
                        status: s,
                        headers: vec![],
                        body: b"<html>bad gateway</html>".to_vec(),
                    }),
                    Answer::Ok | Answer::Endless => Ok(HttpResponse {
                        status: 200,
                        headers: if answer == Answer::Endless {
                            vec![("x-endless".into(), "1".into())]
                        } else {
                            vec![]
                        },
                        body: serde_json::to_vec(&body).unwrap(),
                    }),
                }
            })
        }
    }

    fn collector(script: &Script, settings: Settings) -> Collector {
        super::scripted_account(
            Arc::new(TwoApis),
            Arc::new(script.clone()),
            vec![
                Rate::new(1, Duration::from_secs(300)),
                Rate::new(10, Duration::from_secs(1)),
                Rate::new(10, Duration::from_secs(1)),
            ],
            vec![TaskType::Prefetch, TaskType::RefreshFile],
            Settings {
                lookback: Duration::from_secs(86_400),
                max_permit_wait: Duration::from_secs(1),
                ..settings
            },
            T0,
        )
    }

    fn type_success(a: &Account, t: TaskType) -> Option<i64> {
        a.snapshot()
            .type_last_success
            .iter()
            .find(|(x, _)| *x == t)
            .and_then(|(_, s)| *s)
    }

    /// The reported defect: every answer of the scarce API fails, the retry
    /// finds the one permit spent, and the failure used to be dropped as
    /// "deferred" — the account read up with fresh data through an outage.
    #[tokio::test(start_paused = true)]
    async fn retry_that_finds_the_budget_spent_keeps_the_failure() {
        for answer in [Answer::Status(500), Answer::Reset, Answer::Timeout] {
            let script = Script::default();
            script.answer("scarce", answer);
            let c = collector(&script, Settings::default());
            let a = &c.accounts()[0];
            let mut ages = Vec::new();
            for _ in 0..4 {
                a.refresh().await;
                let s = a.snapshot();
                assert!(!s.up, "{answer:?}: up during the outage");
                assert_eq!(s.last_success, None, "{answer:?}");
                assert!(s.last_error.is_some(), "{answer:?}");
                ages.push(a.data_age(c.clock.unix(), c.started));
                tokio::time::advance(Duration::from_secs(310)).await;
            }
            assert!(
                ages.windows(2).all(|w| w[1] > w[0]),
                "{answer:?}: data age grows through the outage: {ages:?}"
            );
            // Exactly one scarce call per 5 minutes, failures included.
            assert_eq!(script.calls("scarce"), 4, "{answer:?}");
            // The vendor recovers: the next refresh is up and fresh.
            script.answer("scarce", Answer::Ok);
            a.refresh().await;
            assert!(a.snapshot().up, "{answer:?}: recovers");
            assert_eq!(a.snapshot().last_success, Some(c.clock.unix()));
        }
    }

    /// Budget alone deferring work is not a failure, but the deferred
    /// stream's data is as old as its last complete listing, and the
    /// account's figure is the worst of its task types.
    #[tokio::test(start_paused = true)]
    async fn data_age_follows_the_oldest_stream() {
        let script = Script::default();
        let c = collector(&script, Settings::default());
        let a = &c.accounts()[0];
        a.refresh().await;
        assert!(a.snapshot().up);
        assert_eq!(a.snapshot().last_success, Some(T0));
        for n in 1..=4 {
            tokio::time::advance(Duration::from_secs(60)).await;
            a.refresh().await;
            let s = a.snapshot();
            assert!(s.up, "deferral for budget is not a failure");
            assert_eq!(type_success(a, TaskType::RefreshFile), Some(T0 + 60 * n));
            assert_eq!(
                type_success(a, TaskType::Prefetch),
                Some(T0),
                "scarce API deferred"
            );
            assert_eq!(s.last_success, Some(T0), "worst of the task types");
            assert_eq!(a.data_age(c.clock.unix(), c.started), (60 * n) as f64);
        }
        tokio::time::advance(Duration::from_secs(70)).await;
        a.refresh().await;
        assert_eq!(type_success(a, TaskType::Prefetch), Some(T0 + 310));
        assert_eq!(a.snapshot().last_success, Some(T0 + 310));
    }

    /// A re-check that fails marks the account down and moves no success time.
    #[tokio::test(start_paused = true)]
    async fn failed_recheck_marks_the_account_down() {
        let script = Script::default();
        script
            .tasks
            .lock()
            .unwrap()
            .push(("old".into(), 1, T0 - 3600, false));
        let c = collector(&script, Settings::default());
        let a = &c.accounts()[0];
        a.refresh().await;
        assert!(a.snapshot().up);
        script.answer("byid", Answer::Status(503));
        tokio::time::advance(Duration::from_secs(60)).await;
        a.refresh().await;
        assert!(
            script.calls("byid") >= 1,
            "the head no longer holds the task"
        );
        assert!(!a.snapshot().up, "failed re-check");
        assert_eq!(
            type_success(a, TaskType::RefreshFile),
            Some(T0),
            "not fresh"
        );
    }

    /// A failed quota read marks the account down.
    #[tokio::test(start_paused = true)]
    async fn failed_quota_read_marks_the_account_down() {
        let script = Script::default();
        script.answer("quota", Answer::Status(500));
        let c = collector(&script, Settings::default());
        let a = &c.accounts()[0];
        a.refresh().await;
        assert!(script.calls("quota") >= 1);
        assert!(!a.snapshot().up);
        assert_eq!(a.snapshot().last_success, None);
    }

    /// A listing that never ends is a parse error, not a success.
    #[tokio::test(start_paused = true)]
    async fn listing_that_never_ends_marks_the_account_down() {
        let script = Script::default();
        script.answer("plenty", Answer::Endless);
        let c = collector(
            &script,
            Settings {
                max_pages: 3,
                ..Settings::default()
            },
        );
        let a = &c.accounts()[0];
        a.refresh().await;
        assert_eq!(script.calls("plenty"), 3);
        assert!(!a.snapshot().up);
        assert!(a
            .snapshot()
            .last_error
            .clone()
            .unwrap()
            .contains("more than 3 pages"));
    }

    /// Pace leaves health as it was and moves no success time; a
    /// failure before it is not forgotten.
    #[tokio::test(start_paused = true)]
    async fn throttling_leaves_health_as_it_was_and_moves_no_success_time() {
        let script = Script::default();
        let c = collector(&script, Settings::default());
        let a = &c.accounts()[0];
        a.refresh().await;
        assert!(a.snapshot().up);
        tokio::time::advance(Duration::from_secs(310)).await;
        script.answer("scarce", Answer::Status(429));
        a.refresh().await;
        assert!(a.snapshot().up, "throttling alone keeps up");
        assert_eq!(a.snapshot().last_success, Some(T0));
        // Down first, then throttled: stays down.
        script.answer("scarce", Answer::Status(500));
        tokio::time::advance(Duration::from_secs(3700)).await;
        a.refresh().await;
        assert!(!a.snapshot().up);
        script.answer("scarce", Answer::Status(429));
        tokio::time::advance(Duration::from_secs(3700)).await;
        a.refresh().await;
        assert!(
            !a.snapshot().up,
            "throttling does not make a down account up"
        );
    }

    /// A refresh that could afford no request at all says nothing new:
    /// neither a down account nor an up one changes.
    #[tokio::test(start_paused = true)]
    async fn refresh_that_affords_nothing_keeps_health_as_it_was() {
        let script = Script::default();
        let c = Collector::new(
            vec![AccountSetup {
                context: Default::default(),
                name: "a".into(),
                kind: VendorKind::Testing,
                vendor: Arc::new(TwoApis),
                options: Default::default(),
                rates: vec![Rate::new(1, Duration::from_secs(300)); 3],
                task_types: vec![TaskType::Prefetch],
                settings: Settings {
                    max_permit_wait: Duration::from_secs(1),
                    quota_interval: Duration::from_secs(3600),
                    ..Settings::default()
                },
            }],
            Arc::new(script.clone()),
            Arc::new(TokioClock::starting_at(T0)),
        );
        let a = &c.accounts()[0];
        a.refresh().await;
        assert!(a.snapshot().up);
        tokio::time::advance(Duration::from_secs(10)).await;
        a.refresh().await;
        assert_eq!(script.calls("scarce"), 1, "no permit");
        assert!(a.snapshot().up, "nothing asked: still up");
        tokio::time::advance(Duration::from_secs(300)).await;
        script.answer("scarce", Answer::Status(500));
        a.refresh().await;
        assert!(!a.snapshot().up);
        tokio::time::advance(Duration::from_secs(10)).await;
        script.answer("scarce", Answer::Ok);
        a.refresh().await;
        assert_eq!(script.calls("scarce"), 2, "no permit");
        assert!(!a.snapshot().up, "nothing asked: still down");
    }
}

#[cfg(test)]
mod paging {
    //! Pages whose offsets an answer's total makes known go together
    //! ([`Account::paging_width`]), are folded in page order, and leave the
    //! budget as they would one at a time. The scripted vendor holds
    //! `pages` full pages of 10 tasks and claims `claimed` in its total;
    //! `asked` logs the pages of the window that holds them (a first sync
    //! also lists its newest `overlap` apart, which holds none).
    use super::super::{budget::Budget, Collector, Settings};
    use super::Held;
    use crate::api::Rate;
    use crate::http::{HttpRequest, HttpResponse, Method, SendFuture, Transport};
    use crate::task::{Task, TaskStatus, TaskType};
    use crate::vendors::{
        ApiError, BuildError, Outcome, Parsed, Query, Stream, Unfinished, Vendor, VendorKind,
    };
    use chrono::{DateTime, Utc};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    const T0: i64 = 1_700_000_000;
    const PER_PAGE: usize = 10;

    #[derive(Debug)]
    struct Totalled;

    impl Vendor for Totalled {
        fn kind(&self) -> VendorKind {
            VendorKind::Testing
        }
        fn streams(&self, _: &[TaskType]) -> Vec<Stream> {
            vec![Stream {
                api: 0,
                task_type: Some(TaskType::Prefetch),
            }]
        }
        fn tells_totals(&self) -> bool {
            true
        }
        fn plan_rechecks(&self, _: &[Unfinished]) -> Vec<Query> {
            Vec::new()
        }
        fn build(&self, q: &Query, page: u32, _: DateTime<Utc>) -> Result<HttpRequest, BuildError> {
            let Query::List { window, .. } = q else {
                return Err(BuildError("lists only".into()));
            };
            Ok(HttpRequest {
                method: Method::Get,
                url: format!("http://sim/{}/{}/{page}", window.from, window.to),
                headers: vec![],
                body: vec![],
            })
        }
        fn parse(&self, _: &Query, page: u32, r: &HttpResponse) -> Result<Parsed, ApiError> {
            if r.status == 429 {
                return Err(ApiError::new(Outcome::Throttled, "slow down"));
            }
            if r.status == 500 {
                return Err(ApiError::new(Outcome::ServerError, "broken"));
            }
            let header = |name: &str| {
                r.headers
                    .iter()
                    .find(|(k, _)| k == name)
                    .and_then(|(_, v)| v.parse::<u32>().ok())
            };
            let ids: Vec<i64> = serde_json::from_slice(&r.body).unwrap_or_default();
            Ok(Parsed {
                tasks: ids
                    .into_iter()
                    .map(|n| Task {
                        id: format!("t{n}"),
                        task_type: TaskType::Prefetch,
                        status: TaskStatus::Success,
                        url_count: 1,
                        urls: Vec::new(),
                        domain: None,
                        created_at: T0 - 3600 + n,
                        finished_at: None,
                        progress: None,
                        error: None,
                    })
                    .collect(),
                quotas: vec![],
                next_page: header("x-more").map(|_| page + 1),
                known_last_page: header("x-total")
                    .and_then(|t| crate::vendors::pages_of(t.into(), PER_PAGE as u64)),
            })
        }
    }

    /// The vendor's side: pages asked for in order of arrival, and the most
    /// in flight at once. Answers take 2 s (8 permits a second then keep
    /// 8·2/(1.05+2), about 6, in flight); pages past the real ones (when the
    /// total overstates) take 5 s, so they are still in flight when the
    /// listing ends.
    #[derive(Clone, Default)]
    struct Script {
        pages: usize,
        claimed: usize,
        asked: Arc<Mutex<Vec<u32>>>,
        now: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
        /// Pages after the first are answered 429 while set.
        throttle: Arc<AtomicBool>,
        /// Pages past the real ones are answered 500 while set.
        fail_past_end: Arc<AtomicBool>,
    }

    impl Transport for Script {
        fn send(&self, req: HttpRequest, _: Duration) -> SendFuture<'_> {
            let parts: Vec<i64> = req
                .url
                .trim_start_matches("http://sim/")
                .split('/')
                .filter_map(|p| p.parse().ok())
                .collect();
            let (from, to, page) = (parts[0], parts[1], parts[2] as u32);
            // All tasks lie in the minute from `T0 - 3600`; a window holds
            // all of them or none (the newest part of a split first sync).
            if to <= T0 - 3600 || from > T0 - 3600 {
                let empty = HttpResponse {
                    status: 200,
                    headers: vec![("x-total".into(), "0".into())],
                    body: b"[]".to_vec(),
                };
                return Box::pin(async move {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    Ok(empty)
                });
            }
            self.asked.lock().unwrap().push(page);
            let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(n, Ordering::SeqCst);
            let real = page as usize <= self.pages;
            let ids: Vec<i64> = if real {
                let first = (page as usize - 1) * PER_PAGE;
                (first..first + PER_PAGE).map(|i| i as i64).collect()
            } else {
                Vec::new()
            };
            let mut headers = vec![("x-total".into(), (self.claimed * PER_PAGE).to_string())];
            if (page as usize) < self.pages {
                headers.push(("x-more".into(), "1".into()));
            }
            let status = if page > 1 && self.throttle.load(Ordering::SeqCst) {
                429
            } else if !real && self.fail_past_end.load(Ordering::SeqCst) {
                500
            } else {
                200
            };
            Box::pin(async move {
                let wait = if real { 2000 } else { 5000 };
                tokio::time::sleep(Duration::from_millis(wait)).await;
                self.now.fetch_sub(1, Ordering::SeqCst);
                Ok(HttpResponse {
                    status,
                    headers,
                    body: serde_json::to_vec(&ids).unwrap(),
                })
            })
        }
    }

    impl Script {
        fn new(pages: usize, claimed: usize) -> Self {
            Script {
                pages,
                claimed,
                ..Script::default()
            }
        }
        fn take_asked(&self) -> Vec<u32> {
            std::mem::take(&mut *self.asked.lock().unwrap())
        }
    }

    fn collector(script: &Script, rate: Rate, max_permit_wait: Duration) -> Collector {
        super::scripted_account(
            Arc::new(Totalled),
            Arc::new(script.clone()),
            vec![rate],
            vec![TaskType::Prefetch],
            Settings {
                lookback: Duration::from_secs(7200),
                max_permit_wait,
                ..Settings::default()
            },
            T0,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn pages_a_total_makes_known_go_together_and_all_are_folded() {
        let script = Script::new(6, 6);
        let c = collector(
            &script,
            Rate::new(8, Duration::from_secs(1)),
            Duration::from_secs(5),
        );
        let a = &c.accounts()[0];
        a.refresh().await;
        let s = a.snapshot();
        assert!(s.up && s.last_error.is_none(), "{:?}", s.last_error);
        assert_eq!(s.cache_tasks, 6 * PER_PAGE);
        let mut asked = script.take_asked();
        assert_eq!(asked[0], 1, "the first page tells the total");
        asked.sort_unstable();
        assert_eq!(asked, vec![1, 2, 3, 4, 5, 6], "each page once");
        assert_eq!(
            script.most.load(Ordering::SeqCst),
            5,
            "pages 2 to 6 in flight together"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn one_page_at_a_time_when_the_budget_allows_under_one_a_second() {
        let script = Script::new(4, 4);
        let c = collector(
            &script,
            Rate::new(10, Duration::from_secs(60)),
            Duration::from_secs(60),
        );
        let a = &c.accounts()[0];
        a.refresh().await;
        assert_eq!(a.snapshot().cache_tasks, 4 * PER_PAGE);
        assert_eq!(script.take_asked(), vec![1, 2, 3, 4]);
        assert_eq!(script.most.load(Ordering::SeqCst), 1);
    }

    /// A total that overstates: paging ends at the answer with no next
    /// page; the pages already sent past it are awaited, so their answers
    /// are counted and their permits released, and none more is sent.
    #[tokio::test(start_paused = true)]
    async fn an_overstated_total_ends_where_an_answer_has_no_next_page() {
        let script = Script::new(3, 8);
        let rate = Rate::new(8, Duration::from_secs(1));
        let c = collector(&script, rate, Duration::from_secs(5));
        let a = &c.accounts()[0];
        a.refresh().await;
        let s = a.snapshot();
        assert!(s.up && s.last_error.is_none(), "{:?}", s.last_error);
        assert_eq!(s.cache_tasks, 3 * PER_PAGE);
        // The first sync's newest `overlap`, page 1, then 2 to 7 together
        // (6 wide); page 3 ends the listing while 4 to 7 (and 8, if a
        // permit came in time) are still out.
        let mut asked = script.take_asked();
        asked.sort_unstable();
        assert_eq!(&asked[..7], &[1, 2, 3, 4, 5, 6, 7]);
        let answered = a.stats.get(0, Outcome::Ok);
        assert_eq!(answered, asked.len() as u64 + 1, "every answer counted");
    }

    /// The listing ends at page 3 while pages past it are out; one of them
    /// fails: that failed answer is not dropped with the listing, the
    /// account reads down.
    #[tokio::test(start_paused = true)]
    async fn a_page_failing_after_the_listing_ended_still_reads_down() {
        let script = Script::new(3, 8);
        script.fail_past_end.store(true, Ordering::SeqCst);
        let rate = Rate::new(8, Duration::from_secs(1));
        let c = collector(&script, rate, Duration::from_secs(5));
        let a = &c.accounts()[0];
        a.refresh().await;
        let s = a.snapshot();
        assert!(!s.up, "a failed answer was dropped");
        assert!(s.last_error.is_some());
        assert!(a.stats.get(0, Outcome::ServerError) >= 1);
    }

    /// Out of budget mid-listing (no wait allowed): the pages before the
    /// first one refused are folded and none after it, and the deferral is
    /// not a failure. 4 permits in 4 s: the first sync's newest `overlap`,
    /// page 1, then 2 and 3 together (2 wide); page 4 would have to wait.
    #[tokio::test(start_paused = true)]
    async fn a_budget_stop_mid_listing_folds_the_pages_before_it() {
        let script = Script::new(6, 6);
        let c = collector(
            &script,
            Rate::new(4, Duration::from_secs(4)),
            Duration::ZERO,
        );
        let a = &c.accounts()[0];
        a.refresh().await;
        let s = a.snapshot();
        assert!(s.last_error.is_none(), "{:?}", s.last_error);
        let mut asked = script.take_asked();
        asked.sort_unstable();
        assert_eq!(asked, vec![1, 2, 3]);
        assert_eq!(script.most.load(Ordering::SeqCst), 2);
        assert_eq!(s.cache_tasks, 3 * PER_PAGE);
    }

    /// Five pages in flight together are all throttled: that is one
    /// throttling, paused for one window, not five in a row (2^4 windows).
    #[tokio::test(start_paused = true)]
    async fn pages_throttled_together_pause_the_api_once() {
        let script = Script::new(6, 6);
        script.throttle.store(true, Ordering::SeqCst);
        let rate = Rate::new(8, Duration::from_secs(1));
        let c = collector(&script, rate, Duration::from_secs(5));
        let a = &c.accounts()[0];
        a.refresh().await;
        assert_eq!(script.most.load(Ordering::SeqCst), 5);
        assert_eq!(a.stats.get(0, Outcome::Throttled), 5);
        script.throttle.store(false, Ordering::SeqCst);
        script.take_asked();
        // One window's pause, then the budget's own wait: the next refresh
        // 1.5 s later gets every page; after a 16 s pause it would send
        // nothing (more than `max_permit_wait` away).
        tokio::time::advance(Duration::from_millis(1500)).await;
        a.refresh().await;
        assert_eq!(script.take_asked().len(), 6);
        assert_eq!(a.snapshot().cache_tasks, 6 * PER_PAGE);
    }

    /// The guard behind the overstated total: a permit dropped in flight still
    /// leaves the window (a bare `Permit` would count as in flight for
    /// ever and hold one slot of the budget).
    #[tokio::test(start_paused = true)]
    async fn a_permit_dropped_in_flight_leaves_the_window() {
        let budget = Budget::new([Rate::new(1, Duration::from_secs(1))]);
        let permit = budget.acquire(0, Duration::ZERO).await.expect("a permit");
        drop(Held {
            budget: &budget,
            permit: Some(permit),
        });
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(budget.wait_time(0), Duration::ZERO);
        let _kept = budget.acquire(0, Duration::ZERO).await.expect("a permit");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(
            budget.wait_time(0) > Duration::ZERO,
            "an unreleased permit holds its slot"
        );
    }
}
