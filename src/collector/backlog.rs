//! How much of the lookback is still to list, and about when it will be.
//!
//! A warming account must not read as a quiet one: CDNetworks at 100,000
//! fetch records a day pages one call per budget window (10 minutes at the
//! default safety fraction) for half a day to days before `cdn_tasks` holds
//! the whole lookback (README, *Busy accounts*). The backlog says how much is missing; the estimate says
//! when the budget lets it be done.

use super::{window_span, Account, SyncState};
use crate::task::TaskType;
use crate::vendors::Window;

/// The backlog of one watched task type, as of a refresh.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Seconds of the lookback no listing has covered yet.
    pub seconds: i64,
    /// Estimated Unix time the lookback is fully listed; `None` when
    /// nothing is left, before any page of the history was seen, or when
    /// the budget cannot keep up (`outpaced`).
    pub complete_at: Option<i64>,
    /// New tasks (or heads and re-checks) need at least the whole budget
    /// of an API this type is listed from, or a head that restarts at every
    /// refresh stopped paging: the backlog never shrinks.
    pub outpaced: bool,
}

/// One stream's share: seconds uncovered, calls still needed and calls per
/// second that new tasks cost (`None`: nothing listed yet, so the history's
/// density is unknown).
struct Owed {
    seconds: i64,
    need: Option<(f64, f64)>,
}

impl Account {
    /// Per watched task type, the backlog as of Unix time `now`.
    pub(super) fn backlog(&self, st: &SyncState, now: i64) -> Vec<(TaskType, Backlog)> {
        let lookback = self.settings.lookback.as_secs() as i64;
        let lookback_start = now - lookback;
        let owed: Vec<Owed> = (0..st.streams.len())
            .map(|i| self.owed(st, i, now, lookback_start))
            .collect();
        // Streams of one API share its permits. New tasks keep arriving
        // while the backlog is paged, so the API's time is its pages over
        // what its rate leaves after them: None when unknown, infinite when
        // they need it all. A vendor that does not relist lists every
        // stream's head first at each refresh, synced or not, then re-checks
        // the unfinished tasks older than the head: those calls come before
        // any older window.
        let refresh = self.settings.min_refresh_interval.as_secs_f64();
        let relisting = self.vendor.recheck_by_relisting().is_some();
        let heads = if !relisting && refresh > 0.0 {
            1.0 / refresh
        } else {
            0.0
        };
        let mut api_need: Vec<Option<(f64, f64)>> = vec![Some((0.0, 0.0)); self.budget.len()];
        if heads > 0.0 {
            let head_from = now - self.settings.overlap.as_secs() as i64;
            let unfinished = self.unfinished(st, |_, t| t.created_at < head_from);
            for q in self.vendor.plan_rechecks(&unfinished) {
                if let Some(Some((_, a))) = api_need.get_mut(q.api()) {
                    *a += heads;
                }
            }
        }
        for (s, o) in st.streams.iter().zip(&owed) {
            if let Some(n) = api_need.get_mut(s.api) {
                *n = match (*n, o.need) {
                    (Some((p, a)), Some((q, b))) => Some((p + q, a + b.max(heads))),
                    (Some((p, a)), None) if o.seconds == 0 => Some((p, a + heads)),
                    _ => None,
                };
            }
        }
        let api_seconds = |api: usize| -> Option<f64> {
            let (pages, arrival) = api_need.get(api).copied().flatten()?;
            let capacity = self.calls_per_second(api);
            Some(if capacity > arrival {
                pages / (capacity - arrival)
            } else {
                f64::INFINITY
            })
        };
        self.task_types
            .iter()
            .map(|t| {
                let mut b = Backlog::default();
                let mut known = true;
                let mut longest = 0.0f64;
                for (i, o) in owed.iter().enumerate() {
                    if o.seconds == 0 || !self.stream_types[i].contains(t) {
                        continue;
                    }
                    b.seconds = b.seconds.max(o.seconds);
                    match api_seconds(st.streams[i].api) {
                        Some(s) => longest = longest.max(s),
                        None => known = false,
                    }
                }
                if b.seconds > 0 && known {
                    if longest.is_finite() {
                        b.complete_at = Some(now + longest.ceil() as i64);
                    } else {
                        b.outpaced = true;
                    }
                }
                (*t, b)
            })
            .collect()
    }

    /// The calls per second the budget of `api` lets refreshes make: its
    /// rate, but a window longer than `max_permit_wait` is only used again
    /// at the first refresh after it (scrapes at least every
    /// `min_refresh_interval` assumed): CDNetworks fetch at 1 per 10 min
    /// 6 s calls every 11 minutes with 60 s refreshes.
    fn calls_per_second(&self, api: usize) -> f64 {
        let rate = self.budget.rate(api);
        let span = window_span(rate).as_secs_f64();
        let wait = self.settings.max_permit_wait.as_secs_f64();
        let refresh = self.settings.min_refresh_interval.as_secs_f64();
        // Never faster than the window: a refresh due a little before the
        // permit waits for it (up to `max_permit_wait`).
        let period = if span <= wait || refresh <= 0.0 {
            span
        } else {
            (((span - wait) / refresh).ceil() * refresh).max(span)
        };
        f64::from(rate.requests) / period.max(span.min(1e-3))
    }

    /// What stream `i` still owes: the uncovered lookback older than its
    /// last fresh head (all of it before that), less what the fetched pages
    /// of a window whose paging stopped midway cover. The pages still
    /// needed assume the rest of the history is as dense as what was
    /// listed, at least one call per query-sized chunk; new tasks arriving
    /// meanwhile cost their pages too.
    fn owed(&self, st: &SyncState, i: usize, now: i64, lookback_start: i64) -> Owed {
        let cov = &st.coverage[i];
        // Time after the stream was last fresh (less the overlap its next
        // head lists again) is the head: data age, not backlog.
        let overlap = self.settings.overlap.as_secs() as i64;
        let until = st.stream_success[i].map_or(now, |f| (f - overlap).max(lookback_start));
        let mut seconds = cov.backlog_seconds(lookback_start, until);
        if seconds == 0 {
            return Owed {
                seconds,
                need: None,
            };
        }
        let relist = self.vendor.recheck_by_relisting();
        // Tasks per page as cached (a page also holds types not watched):
        // as seen, else the relisting vendor's page size.
        let page_size = st
            .full_page
            .get(i)
            .copied()
            .flatten()
            .or(relist)
            .filter(|p| *p > 0);
        let stream = i as u8;
        let resume = cov.resume_point();
        let mut listed = 0u64;
        let mut in_resumed = Vec::new();
        for t in st.cache.tasks() {
            if t.stream != stream || t.created_at < lookback_start {
                continue;
            }
            listed += 1;
            if resume.is_some_and(|(w, _)| t.created_at >= w.from && t.created_at < w.to) {
                in_resumed.push(t.created_at);
            }
        }
        // The pages of a paused window fetched so far are its newest tasks
        // (vendors list newest first): they cover it down to the oldest of
        // them. Cached tasks further down (a head stretched over older
        // ones) are not part of that.
        let mut beyond = 0;
        let mut past_start = 0u64;
        if let (Some((w, page)), Some(ps)) = (resume, page_size) {
            let fetched = (u64::from(page.saturating_sub(1)) * u64::from(ps)) as usize;
            if fetched > 0 {
                // More fetched than the lookback holds: paging went on past
                // its start (those tasks are not cached), so the window is
                // listed down to it.
                let lo = if fetched > in_resumed.len() {
                    past_start = (fetched - in_resumed.len()) as u64;
                    lookback_start
                } else {
                    let (_, lo, _) =
                        in_resumed.select_nth_unstable_by(fetched - 1, |a, b| b.cmp(a));
                    *lo
                };
                let paged = cov.uncovered_within(Window {
                    from: lo.max(lookback_start),
                    to: w.to.min(until),
                });
                seconds = (seconds - paged).max(0);
                // Past the lookback's start the window keeps paging (its
                // pages stay aligned): those calls are owed too, though no
                // backlog second is left there.
                beyond = (lo.min(lookback_start) - w.from).max(0);
            }
        }
        let covered = (now - lookback_start) - seconds;
        if covered <= 0 {
            return Owed {
                seconds,
                need: None,
            };
        }
        let span = self
            .vendor
            .max_span(&st.streams[i])
            .map(|d| d.as_secs() as i64);
        let chunks = cov.chunks(span).len().max(1) as f64;
        let density = listed as f64 / covered as f64;
        let (pages, arrival) = match page_size {
            Some(p) => (
                ((density * (seconds + beyond) as f64 - past_start as f64).max(0.0) / f64::from(p))
                    .ceil(),
                density / f64::from(p),
            ),
            None => (0.0, 0.0),
        };
        // A vendor that does not relist starts the head at page 1 at every
        // refresh: a head that stopped paging for lack of budget never ends.
        let head_stopped = relist.is_none() && resume.is_some_and(|(w, _)| w.to >= now);
        let arrival = if head_stopped { f64::INFINITY } else { arrival };
        Owed {
            seconds,
            need: Some((pages.max(chunks), arrival)),
        }
    }
}
