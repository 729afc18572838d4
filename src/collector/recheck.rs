//! Pricing re-checks: per refresh and per stream, which unfinished tasks to
//! look up by id and which to learn by listing their window again.
//!
//! An id lookup costs one call per task (or a share of one, where a call
//! carries several ids); re-listing a window costs its pages, one per
//! `page_size` tasks the cache holds in it, finished ones included. Stalled
//! tasks spread thinly over days are cheaper by id; the many tasks still
//! running just behind the head are cheaper re-listed — usually for free,
//! by stretching the head listing back over them, since the head's page has
//! room (issue 19 part 5: Volcengine made 101 calls a minute, one per
//! unfinished task, where a head page and two more pages carried the same
//! answers). [`plan_stream`] finds the cheapest mix exactly, by dynamic
//! programming over the stream's unfinished tasks, newest first.

use crate::vendors::Window;

/// What [`plan_stream`] needs to know about one stream.
#[derive(Debug, Clone)]
pub struct StreamCosts<'a> {
    /// Creation time of every cached task of the stream, ascending.
    pub created: &'a [i64],
    /// Records per list page.
    pub page_size: u32,
    /// Longest window one listing may span, seconds.
    pub max_span: Option<i64>,
    /// The head about to be listed this refresh, if any.
    pub head: Option<Window>,
    /// False: only the head may be stretched; no window alone.
    pub any_window: bool,
    /// The stream's unfinished tasks older than the head, newest first:
    /// creation time and id-lookup cost (`None`: no id lookup).
    pub unfinished: &'a [(i64, Option<f64>)],
}

/// The cheapest re-check plan of one stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamPlan {
    /// The head listing starts here instead (stretched back over the
    /// newest unfinished tasks).
    pub head_from: Option<i64>,
    /// Windows to list again, newest first.
    pub windows: Vec<Window>,
    /// Indices (into `unfinished`) of the tasks to look up by id.
    pub by_id: Vec<usize>,
    /// The plan's estimated cost in calls.
    pub cost: f64,
}

/// How a prefix of the unfinished tasks ends in the cheapest plan.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// The last task by id.
    ById,
    /// The tasks from index `i` on, in one window.
    Window(usize),
    /// Every task so far, in the stretched head.
    Head,
    /// No way to cover it.
    None,
}

impl StreamCosts<'_> {
    /// Cached tasks created in `[from, to)`.
    fn count(&self, from: i64, to: i64) -> usize {
        let a = self.created.partition_point(|&c| c < from);
        let b = self.created.partition_point(|&c| c < to);
        b.saturating_sub(a)
    }

    /// Calls a listing of `n` records takes (an empty one still takes one).
    fn pages(&self, n: usize) -> f64 {
        n.div_ceil(self.page_size.max(1) as usize).max(1) as f64
    }

    fn span_ok(&self, from: i64, to: i64) -> bool {
        self.max_span.is_none_or(|s| to - from <= s)
    }
}

/// Inner-loop bound: windows reaching further back than this many
/// unfinished tasks are not priced (a huge backlog then costs more calls,
/// never unbounded planning time).
const MAX_WINDOW_TASKS: usize = 4096;

/// The cheapest plan for one stream's unfinished tasks.
pub fn plan_stream(s: &StreamCosts<'_>) -> StreamPlan {
    let k = s.unfinished.len();
    let c = |i: usize| s.unfinished[i].0;
    // The head holds its own new tasks: price only the pages the stretch
    // adds. Its new tasks are unknown before listing; as many as the cache
    // holds in an equally long stretch before it is the estimate.
    let head_tasks = s
        .head
        .map(|h| s.count(h.from, h.to) + s.count(2 * h.from - h.to, h.from));
    let mut best = vec![f64::INFINITY; k + 1];
    let mut step = vec![Step::None; k + 1];
    best[0] = 0.0;
    for j in 1..=k {
        let oldest = c(j - 1);
        if let Some(w) = s.unfinished[j - 1].1 {
            if best[j - 1] + w < best[j] {
                best[j] = best[j - 1] + w;
                step[j] = Step::ById;
            }
        }
        if let (Some(h), Some(n)) = (s.head, head_tasks) {
            if s.span_ok(oldest, h.to) {
                let extra = s.pages(n + s.count(oldest, h.from)) - s.pages(n);
                if extra < best[j] {
                    best[j] = extra;
                    step[j] = Step::Head;
                }
            }
        }
        let nearest = if s.any_window {
            j.saturating_sub(MAX_WINDOW_TASKS)
        } else {
            j
        };
        for i in (nearest..j).rev() {
            let to = c(i) + 1;
            if !s.span_ok(oldest, to) {
                break;
            }
            let pages = s.pages(s.count(oldest, to));
            if pages >= best[j] {
                // Wider windows only cost more, and `best` only falls.
                break;
            }
            if best[i] + pages < best[j] {
                best[j] = best[i] + pages;
                step[j] = Step::Window(i);
            }
        }
    }
    let mut plan = StreamPlan {
        cost: best[k],
        ..StreamPlan::default()
    };
    let mut j = k;
    while j > 0 {
        match step[j] {
            Step::ById => {
                plan.by_id.push(j - 1);
                j -= 1;
            }
            Step::Window(i) => {
                plan.windows.push(Window {
                    from: c(j - 1),
                    to: c(i) + 1,
                });
                j = i;
            }
            Step::Head => {
                plan.head_from = Some(c(j - 1));
                j = 0;
            }
            // Neither an id lookup nor a window within the span: skipped
            // (a vendor with no id lookup always has a listing).
            Step::None => j -= 1,
        }
    }
    plan.windows.reverse();
    plan.by_id.reverse();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(from: i64, to: i64) -> Window {
        Window { from, to }
    }

    /// A task a second from `from` to `to` (exclusive), ascending.
    fn dense(from: i64, to: i64) -> Vec<i64> {
        (from..to).collect()
    }

    #[test]
    fn running_tasks_behind_the_head_ride_in_the_stretched_head() {
        // 1,000 s of one task a second; the head is the last 60 s; ten tasks
        // still running 100–200 s back. One page of 1,000 holds them all.
        let created = dense(0, 1000);
        let unfinished: Vec<(i64, Option<f64>)> =
            (0..10).map(|i| (900 - 10 * i, Some(1.0))).collect();
        let p = plan_stream(&StreamCosts {
            created: &created,
            page_size: 1000,
            max_span: None,
            head: Some(w(940, 1000)),
            any_window: true,
            unfinished: &unfinished,
        });
        assert_eq!(p.head_from, Some(810));
        assert!(p.windows.is_empty() && p.by_id.is_empty());
        assert_eq!(p.cost, 0.0);
    }

    #[test]
    fn sparse_stalled_tasks_go_by_id_and_a_dense_cluster_is_relisted() {
        // 10,000 tasks; page 100. A cluster of 30 unfinished within 50
        // tasks (one page), and three stalled far apart.
        let created = dense(0, 10_000);
        let mut unfinished: Vec<(i64, Option<f64>)> =
            (0..30).map(|i| (5_049 - i, Some(1.0))).collect();
        unfinished.extend([(3_000, Some(1.0)), (2_000, Some(1.0)), (10, Some(1.0))]);
        let p = plan_stream(&StreamCosts {
            created: &created,
            page_size: 100,
            max_span: None,
            head: Some(w(9_990, 10_000)),
            any_window: true,
            unfinished: &unfinished,
        });
        assert_eq!(p.head_from, None, "49 pages of stretch cost more");
        assert_eq!(p.windows, vec![w(5_020, 5_050)]);
        assert_eq!(p.by_id, vec![30, 31, 32]);
        assert_eq!(p.cost, 4.0);
    }

    #[test]
    fn batched_ids_beat_pages_and_no_id_lookup_forces_a_listing() {
        let created = dense(0, 1_000);
        let unfinished: Vec<(i64, Option<f64>)> =
            (0..20).map(|i| (800 - 20 * i, Some(0.1))).collect();
        let p = plan_stream(&StreamCosts {
            created: &created,
            page_size: 100,
            max_span: None,
            head: Some(w(990, 1_000)),
            any_window: true,
            unfinished: &unfinished,
        });
        assert_eq!(p.by_id.len(), 20, "two calls of ten ids");
        assert!((p.cost - 2.0).abs() < 1e-9);

        let none: Vec<(i64, Option<f64>)> = vec![(500, None), (100, None)];
        let p = plan_stream(&StreamCosts {
            created: &created,
            page_size: 100,
            max_span: Some(300),
            head: None,
            any_window: true,
            unfinished: &none,
        });
        assert_eq!(p.windows, vec![w(500, 501), w(100, 101)]);
        assert!(p.by_id.is_empty());
    }

    #[test]
    fn a_listing_without_time_filter_only_stretches_its_head() {
        let created = dense(0, 1_000);
        let unfinished: Vec<(i64, Option<f64>)> = [950, 920, 900, 100]
            .into_iter()
            .map(|c| (c, Some(1.0)))
            .collect();
        let p = plan_stream(&StreamCosts {
            created: &created,
            page_size: 100,
            max_span: None,
            head: Some(w(990, 1_000)),
            any_window: false,
            unfinished: &unfinished,
        });
        // Stretching to 920 is free and 900 then costs one lookup; to 900 is
        // one more page: either way 2, and never a window alone (it would
        // start at the newest).
        assert!(matches!(p.head_from, Some(900 | 920)), "{p:?}");
        assert!(p.windows.is_empty());
        assert!(p.by_id.contains(&3), "100 is nine pages back: by id");
        assert_eq!(p.cost, 2.0);
    }

    #[test]
    fn windows_stay_within_the_span() {
        let created = dense(0, 1_000);
        let unfinished: Vec<(i64, Option<f64>)> = vec![(900, Some(5.0)), (100, Some(5.0))];
        let p = plan_stream(&StreamCosts {
            created: &created,
            page_size: 10_000,
            max_span: Some(500),
            head: Some(w(950, 1_000)),
            any_window: true,
            unfinished: &unfinished,
        });
        assert_eq!(p.head_from, Some(900));
        assert_eq!(p.windows, vec![w(100, 101)]);
        assert_eq!(p.cost, 1.0);
    }
}
