//! Which created-time ranges of one stream are already listed.
//!
//! Incremental sync asks only for what is not covered: the new head since the
//! last sync (with a small overlap for late-appearing tasks), and any gaps
//! left by a failure, a budget stop or a cold start (CDNetworks warms up a
//! 3-day history one call at a time, newest first).

use crate::vendors::Window;

/// Uncovered windows of one stream, newest first after [`Coverage::advance`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Coverage {
    gaps: Vec<Window>,
    synced_until: Option<i64>,
    /// A window whose paging stopped midway, and the next page to fetch.
    resume: Option<(Window, u32)>,
}

impl Coverage {
    /// Adds the new head `[synced_until - overlap, now)` (all of
    /// `[lookback_start, now)` on the first call) and drops what fell out of
    /// the lookback.
    pub fn advance(&mut self, now: i64, overlap: i64, lookback_start: i64) {
        let from = match self.synced_until {
            None => lookback_start,
            Some(s) => (s - overlap).max(lookback_start),
        };
        self.add(Window { from, to: now });
        self.synced_until = Some(now);
        for g in &mut self.gaps {
            g.from = g.from.max(lookback_start);
        }
        self.gaps.retain(|g| !g.is_empty());
        if self.resume.is_some_and(|(w, _)| w.from < lookback_start) {
            self.resume = None;
        }
    }

    fn add(&mut self, w: Window) {
        if w.is_empty() {
            return;
        }
        self.gaps.push(w);
        self.gaps.sort_by_key(|g| std::cmp::Reverse(g.to));
        let mut merged: Vec<Window> = Vec::with_capacity(self.gaps.len());
        for g in self.gaps.drain(..) {
            match merged.last_mut() {
                Some(m) if g.to >= m.from => m.from = m.from.min(g.from),
                _ => merged.push(g),
            }
        }
        self.gaps = merged;
    }

    /// Marks `w` listed completely.
    pub fn cover(&mut self, w: Window) {
        let mut out = Vec::with_capacity(self.gaps.len() + 1);
        for g in self.gaps.drain(..) {
            if g.to <= w.from || g.from >= w.to {
                out.push(g);
                continue;
            }
            if g.to > w.to {
                out.push(Window {
                    from: w.to,
                    to: g.to,
                });
            }
            if g.from < w.from {
                out.push(Window {
                    from: g.from,
                    to: w.from,
                });
            }
        }
        self.gaps = out;
        if self.resume.is_some_and(|(r, _)| r == w) {
            self.resume = None;
        }
    }

    /// The uncovered windows cut into query-sized chunks, newest first.
    pub fn chunks(&self, max_span: Option<i64>) -> Vec<Window> {
        let mut out = Vec::new();
        for g in &self.gaps {
            let mut to = g.to;
            while to > g.from {
                let from = match max_span {
                    Some(s) if s > 0 => (to - s).max(g.from),
                    _ => g.from,
                };
                out.push(Window { from, to });
                to = from;
            }
        }
        out
    }

    /// Where paging of `w` stopped last time (page 1 if it did not).
    pub fn start_page(&self, w: Window) -> u32 {
        match self.resume {
            Some((r, page)) if r == w => page,
            _ => 1,
        }
    }

    /// The window whose paging stopped midway and the page to go on at.
    pub fn resume_point(&self) -> Option<(Window, u32)> {
        self.resume
    }

    /// Remembers that paging of `w` must continue at `page`.
    pub fn pause_at(&mut self, w: Window, page: u32) {
        self.resume = Some((w, page));
    }

    /// Seconds still uncovered.
    pub fn uncovered_seconds(&self) -> i64 {
        self.gaps.iter().map(Window::len).sum()
    }

    /// Seconds of `[lookback_start, until)` no listing has covered: all of
    /// it before the first sync, else the gaps (a window still paging
    /// counts whole). The caller ends `until` where the stream was last
    /// fresh: newer time is the head, which data age describes.
    pub fn backlog_seconds(&self, lookback_start: i64, until: i64) -> i64 {
        if self.synced_until.is_none() {
            return (until - lookback_start).max(0);
        }
        self.uncovered_within(Window {
            from: lookback_start,
            to: until,
        })
    }

    /// Seconds of `w` inside a gap.
    pub fn uncovered_within(&self, w: Window) -> i64 {
        self.gaps
            .iter()
            .map(|g| (g.to.min(w.to) - g.from.max(w.from)).max(0))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(from: i64, to: i64) -> Window {
        Window { from, to }
    }

    #[test]
    fn first_sync_covers_the_lookback_then_only_the_head() {
        let mut c = Coverage::default();
        c.advance(1000, 10, 0);
        assert_eq!(c.chunks(None), vec![w(0, 1000)]);
        c.cover(w(0, 1000));
        assert_eq!(c.uncovered_seconds(), 0);
        c.advance(1100, 10, 100);
        assert_eq!(c.chunks(None), vec![w(990, 1100)]);
    }

    #[test]
    fn chunks_newest_first_within_span() {
        let mut c = Coverage::default();
        c.advance(250, 0, 0);
        assert_eq!(c.chunks(Some(100)), vec![w(150, 250), w(50, 150), w(0, 50)]);
        c.cover(w(150, 250));
        c.advance(300, 20, 0);
        // head [230,300) merges with nothing: the gap below 150 stays.
        assert_eq!(c.chunks(Some(100)), vec![w(230, 300), w(50, 150), w(0, 50)]);
    }

    #[test]
    fn failures_leave_gaps_that_merge_with_the_next_head() {
        let mut c = Coverage::default();
        c.advance(100, 0, 0);
        c.cover(w(0, 100));
        c.advance(200, 10, 0); // head [90,200) fails: not covered
        c.advance(300, 10, 0);
        assert_eq!(c.chunks(None), vec![w(90, 300)]);
    }

    #[test]
    fn backlog_is_the_whole_lookback_until_listed_then_the_gaps() {
        let mut c = Coverage::default();
        assert_eq!(c.backlog_seconds(100, 1000), 900, "nothing listed yet");
        c.advance(1000, 0, 100);
        assert_eq!(c.backlog_seconds(100, 1000), 900);
        c.cover(w(500, 1000));
        assert_eq!(c.backlog_seconds(100, 1000), 400);
        // The lookback moves on: what fell out of it is no longer owed.
        assert_eq!(c.backlog_seconds(200, 1100), 300);
        c.cover(w(100, 500));
        // A head not listed yet is newer than `until`: not backlog.
        c.advance(1100, 10, 200);
        assert_eq!(c.backlog_seconds(200, 990), 0);
        assert_eq!(c.backlog_seconds(200, 1100), 110);
    }

    #[test]
    fn lookback_trims_gaps_and_resume() {
        let mut c = Coverage::default();
        c.advance(100, 0, 0);
        c.pause_at(w(0, 100), 3);
        assert_eq!(c.start_page(w(0, 100)), 3);
        assert_eq!(c.start_page(w(0, 99)), 1);
        assert_eq!(c.resume_point(), Some((w(0, 100), 3)));
        c.advance(200, 0, 50);
        assert_eq!(c.chunks(None), vec![w(50, 200)]);
        assert_eq!(c.start_page(w(0, 100)), 1);
    }
}
