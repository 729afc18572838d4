//! The task details store: which task failed, which URLs, what the vendor
//! said. Metrics carry no ids or URLs (cardinality); this per-account store
//! keeps them beside the metrics for `/api/v1/tasks` and `/tasks`, filled
//! only from answers the collector already received (never an extra call).
//!
//! Bounded: at most `max_failed` failed tasks, `max_failed` unfinished ones
//! and `max_recent` successful ones per account, each with at most
//! `max_urls_per_task` URLs (the total is kept). The oldest are evicted
//! first and counted (`cdn_task_details_evicted_total{set}`).

use crate::config::DetailSettings;
use crate::task::{strip_query, Task, TaskStatus, TaskType};
use std::collections::{HashMap, VecDeque};

/// The sets the store keeps, in `set` label order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Set {
    Failed,
    Unfinished,
    Recent,
}

impl Set {
    /// Every set, in label order.
    pub const ALL: [Set; 3] = [Set::Failed, Set::Unfinished, Set::Recent];

    /// The `set` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Set::Failed => "failed",
            Set::Unfinished => "unfinished",
            Set::Recent => "recent",
        }
    }
}

/// One kept task, as `/api/v1/tasks` shows it (vendor and account added by
/// the caller: they are the account's).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TaskDetail {
    pub task_id: String,
    pub task_type: TaskType,
    pub status: TaskStatus,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    /// Create→finish seconds, where the vendor gave a finish time.
    pub duration_seconds: Option<i64>,
    pub progress: Option<f64>,
    /// URLs the task covers (the total, even when fewer are kept).
    pub url_count: u32,
    /// The first `max_urls_per_task` URLs, query strings stripped unless
    /// `keep_query`; empty when `urls: false`.
    pub urls: Vec<String>,
    pub domain: Option<String>,
    pub error: Option<String>,
    /// Unix time the exporter first saw this task.
    pub first_seen: i64,
    #[serde(skip)]
    stuck_reported: bool,
}

impl TaskDetail {
    fn from_task(t: &Task, s: &DetailSettings, now: i64) -> Self {
        let urls = if s.urls {
            t.urls
                .iter()
                .take(s.max_urls_per_task)
                .map(|u| {
                    if s.keep_query {
                        u.clone()
                    } else {
                        strip_query(u).to_owned()
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        TaskDetail {
            task_id: shown_id(&t.id, s.keep_query).to_owned(),
            task_type: t.task_type,
            status: t.status,
            created_at: t.created_at,
            finished_at: t.finished_at,
            duration_seconds: t.finished_at.map(|f| f - t.created_at).filter(|d| *d >= 0),
            progress: t.progress.filter(|p| p.is_finite()),
            url_count: t
                .url_count
                .max(u32::try_from(t.urls.len()).unwrap_or(u32::MAX)),
            urls,
            domain: t.domain.clone(),
            error: t.error.clone(),
            first_seen: now,
            stuck_reported: false,
        }
    }

    /// Refreshes what a later answer says, keeping URLs a sparser answer
    /// (a re-check that lists no URLs) would lose.
    fn update(&mut self, newer: TaskDetail) {
        let keep_urls = newer.urls.is_empty() && !self.urls.is_empty();
        let urls = if keep_urls {
            std::mem::take(&mut self.urls)
        } else {
            newer.urls
        };
        let (first_seen, stuck) = (self.first_seen, self.stuck_reported);
        *self = TaskDetail {
            urls,
            url_count: newer
                .url_count
                .max(if keep_urls { self.url_count } else { 0 }),
            domain: newer.domain.or(self.domain.take()),
            first_seen,
            stuck_reported: stuck,
            ..newer
        };
    }

    /// True when unfinished for at least `stuck_after` seconds at `now`.
    pub fn is_stuck(&self, now: i64, stuck_after: i64) -> bool {
        !self.status.is_finished() && now - self.created_at >= stuck_after
    }

    /// Bytes this entry holds on the heap (for the benchmark).
    pub fn heap_bytes(&self) -> usize {
        self.task_id.capacity()
            + self.urls.capacity() * std::mem::size_of::<String>()
            + self.urls.iter().map(|u| u.capacity()).sum::<usize>()
            + self.domain.as_ref().map_or(0, |d| d.capacity())
            + self.error.as_ref().map_or(0, |e| e.capacity())
    }
}

/// What one observation changed, for the log events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing worth an event.
    None,
    /// The task is failed and was not kept as failed before.
    NewlyFailed,
}

/// One account's kept tasks.
#[derive(Debug)]
pub struct DetailStore {
    settings: DetailSettings,
    /// Failed tasks by id, with their order of arrival for eviction.
    failed: HashMap<String, TaskDetail>,
    failed_order: VecDeque<(i64, String)>,
    unfinished: HashMap<String, TaskDetail>,
    /// Unfinished tasks pushed out of `unfinished` (id → created), so that
    /// the re-checks that see them again every refresh do not count them
    /// again: one eviction each, until one is kept again.
    unfinished_evicted: HashMap<String, i64>,
    /// The same for successes pushed out of `recent` (a listing that
    /// re-checks unfinished tasks shows the finished ones around them).
    recent_evicted: HashMap<String, i64>,
    /// Most recent successes, newest at the back.
    recent: VecDeque<TaskDetail>,
    /// Evictions per [`Set`], since start.
    pub evicted: [u64; 3],
}

/// Notes an evicted task, keeping at most four times the set's cap of
/// them (the oldest forgotten first): a busy account pushes out nearly
/// every success, and only the ones around unfinished tasks are seen
/// again. One forgotten and seen again is counted again.
fn remember(evicted: &mut HashMap<String, i64>, id: String, created_at: i64, cap: usize) {
    evicted.insert(id, created_at);
    if evicted.len() > cap.saturating_mul(4).max(16) {
        if let Some(oldest) = evicted
            .iter()
            .min_by(|(ka, a), (kb, b)| a.cmp(b).then_with(|| ka.cmp(kb)))
            .map(|(k, _)| k.clone())
        {
            evicted.remove(&oldest);
        }
    }
}

impl DetailStore {
    /// An empty store keeping what `settings` allow.
    pub fn new(settings: DetailSettings) -> Self {
        DetailStore {
            settings,
            failed: HashMap::new(),
            failed_order: VecDeque::new(),
            unfinished: HashMap::new(),
            unfinished_evicted: HashMap::new(),
            recent_evicted: HashMap::new(),
            recent: VecDeque::new(),
            evicted: [0; 3],
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &DetailSettings {
        &self.settings
    }

    /// Folds one task from a vendor answer in.
    pub fn observe(&mut self, task: &Task, now: i64) -> Change {
        let mut detail = TaskDetail::from_task(task, &self.settings, now);
        let earlier = self.unfinished.remove(&task.id);
        let was_kept = earlier.is_some();
        if !matches!(
            task.status,
            TaskStatus::Pending | TaskStatus::Running | TaskStatus::Unknown
        ) {
            self.unfinished_evicted.remove(&task.id);
        }
        if let Some(mut e) = earlier {
            e.update(detail);
            detail = e;
        }
        match task.status {
            TaskStatus::Failed => {
                if let Some(kept) = self.failed.get_mut(&task.id) {
                    kept.update(detail);
                    return Change::None;
                }
                if self.settings.max_failed == 0 {
                    self.evicted[Set::Failed as usize] += 1;
                    return Change::NewlyFailed;
                }
                self.failed_order
                    .push_back((detail.created_at, task.id.clone()));
                self.failed.insert(task.id.clone(), detail);
                while self.failed.len() > self.settings.max_failed {
                    self.evict_oldest_failed();
                }
                Change::NewlyFailed
            }
            TaskStatus::Success => {
                if let Some(kept) = self.recent.iter_mut().find(|r| r.task_id == detail.task_id) {
                    kept.update(detail);
                    return Change::None;
                }
                if self.settings.max_recent == 0 {
                    return Change::None;
                }
                if self.recent.len() >= self.settings.max_recent
                    && self.recent_evicted.contains_key(&detail.task_id)
                    && self
                        .recent
                        .front()
                        .is_some_and(|oldest| oldest.created_at > detail.created_at)
                {
                    // Pushed out before and still the oldest: counted once.
                    return Change::None;
                }
                self.recent_evicted.remove(&detail.task_id);
                // Keep newest-created at the back.
                let at = self
                    .recent
                    .partition_point(|r| r.created_at <= detail.created_at);
                self.recent.insert(at, detail);
                while self.recent.len() > self.settings.max_recent {
                    if let Some(d) = self.recent.pop_front() {
                        let cap = self.settings.max_recent;
                        remember(
                            &mut self.recent_evicted,
                            d.task_id.clone(),
                            d.created_at,
                            cap,
                        );
                    }
                    self.evicted[Set::Recent as usize] += 1;
                }
                Change::None
            }
            _ => {
                if self.settings.max_failed == 0 {
                    return Change::None;
                }
                if !was_kept
                    && self.unfinished_evicted.contains_key(&task.id)
                    && self.unfinished.len() >= self.settings.max_failed
                    && self
                        .unfinished
                        .iter()
                        .all(|(k, d)| (d.created_at, k) > (detail.created_at, &task.id))
                {
                    // Pushed out before and still the oldest: it would be
                    // pushed out again at once. Counted once already.
                    return Change::None;
                }
                self.unfinished_evicted.remove(&task.id);
                self.unfinished.insert(task.id.clone(), detail);
                while self.unfinished.len() > self.settings.max_failed {
                    let oldest = self
                        .unfinished
                        .iter()
                        .min_by(|(ka, a), (kb, b)| {
                            a.created_at.cmp(&b.created_at).then_with(|| ka.cmp(kb))
                        })
                        .map(|(k, _)| k.clone());
                    if let Some(id) = oldest {
                        if let Some(d) = self.unfinished.remove(&id) {
                            let cap = self.settings.max_failed;
                            remember(&mut self.unfinished_evicted, id, d.created_at, cap);
                        }
                        self.evicted[Set::Unfinished as usize] += 1;
                    }
                }
                Change::None
            }
        }
    }

    fn evict_oldest_failed(&mut self) {
        // Arrival order approximates age; pick the oldest created among the
        // front entries still present.
        self.failed_order.make_contiguous().sort();
        while let Some((_, id)) = self.failed_order.pop_front() {
            if self.failed.remove(&id).is_some() {
                self.evicted[Set::Failed as usize] += 1;
                return;
            }
        }
    }

    /// Forgets failed and unfinished tasks created before `start` (they left
    /// the lookback, as in the metrics); successes stay until displaced.
    pub fn expire(&mut self, start: i64) {
        self.failed.retain(|_, d| d.created_at >= start);
        let failed = &self.failed;
        self.failed_order.retain(|(_, id)| failed.contains_key(id));
        self.unfinished.retain(|_, d| d.created_at >= start);
        self.unfinished_evicted
            .retain(|_, created| *created >= start);
        self.recent_evicted.retain(|_, created| *created >= start);
    }

    /// Unfinished tasks that became stuck at `now` and were not reported
    /// yet; each is returned once. Baseline rule, as for the failure
    /// counter: a task created before `counting_since` that was already
    /// stuck when first seen is marked but not returned.
    pub fn newly_stuck(&mut self, now: i64, counting_since: i64) -> Vec<TaskDetail> {
        let after = self.settings.stuck_after.as_secs() as i64;
        let mut out = Vec::new();
        for d in self.unfinished.values_mut() {
            if !d.stuck_reported && d.is_stuck(now, after) {
                d.stuck_reported = true;
                if d.created_at >= counting_since || !d.is_stuck(d.first_seen, after) {
                    out.push(d.clone());
                }
            }
        }
        out.sort_by_key(|d| d.created_at);
        out
    }

    /// Every kept task.
    pub fn iter(&self) -> impl Iterator<Item = &TaskDetail> {
        self.failed
            .values()
            .chain(self.unfinished.values())
            .chain(self.recent.iter())
    }

    /// The failed task `id`, if kept.
    pub fn failed(&self, id: &str) -> Option<&TaskDetail> {
        self.failed.get(id)
    }

    /// Tasks kept per set.
    pub fn len(&self, set: Set) -> usize {
        match set {
            Set::Failed => self.failed.len(),
            Set::Unfinished => self.unfinished.len(),
            Set::Recent => self.recent.len(),
        }
    }

    /// Bytes held by the kept tasks (entries and their heap), for benchmarks.
    pub fn heap_bytes(&self) -> usize {
        let entry = std::mem::size_of::<TaskDetail>() + std::mem::size_of::<String>() + 1;
        self.iter().map(|d| d.heap_bytes()).sum::<usize>()
            + (self.failed.capacity() + self.unfinished.capacity()) * entry
            + self.recent.capacity() * std::mem::size_of::<TaskDetail>()
            + self.failed_order.capacity() * std::mem::size_of::<(i64, String)>()
            + [&self.unfinished_evicted, &self.recent_evicted]
                .iter()
                .map(|m| {
                    m.capacity() * (std::mem::size_of::<(String, i64)>() + 1)
                        + m.keys().map(String::capacity).sum::<usize>()
                })
                .sum::<usize>()
    }
}

/// A task id as shown: ids that embed a URL (Tencent's `TASKID|URL`) lose
/// its query string too unless `keep_query`, or the token would leak there.
pub fn shown_id(id: &str, keep_query: bool) -> &str {
    if keep_query || !id.contains("://") {
        id
    } else {
        strip_query(id)
    }
}

/// The first URL of a task, query stripped whatever `keep_query` says: log
/// lines travel further than the API.
pub fn first_url_for_log(d: &TaskDetail) -> &str {
    d.urls.first().map_or("", |u| strip_query(u))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn task(id: &str, status: TaskStatus, created: i64, urls: &[&str]) -> Task {
        Task {
            id: id.into(),
            task_type: TaskType::RefreshFile,
            status,
            url_count: urls.len() as u32,
            urls: urls.iter().map(|u| u.to_string()).collect(),
            domain: None,
            created_at: created,
            finished_at: None,
            progress: None,
            error: (status == TaskStatus::Failed).then(|| "origin 502".into()),
        }
    }

    fn settings() -> DetailSettings {
        DetailSettings {
            max_failed: 2,
            max_recent: 2,
            max_urls_per_task: 2,
            ..DetailSettings::default()
        }
    }

    #[test]
    fn strips_queries_caps_urls_and_keeps_the_total() {
        let mut s = DetailStore::new(settings());
        let t = task(
            "a",
            TaskStatus::Failed,
            10,
            &["https://x/a?token=s3cret", "https://x/b#f", "https://x/c"],
        );
        assert_eq!(s.observe(&t, 100), Change::NewlyFailed);
        let d = s.failed("a").unwrap();
        assert_eq!(d.urls, vec!["https://x/a", "https://x/b"]);
        assert_eq!(d.url_count, 3);
        assert_eq!(s.observe(&t, 101), Change::None, "failed once only");

        let mut keep = DetailStore::new(DetailSettings {
            keep_query: true,
            ..settings()
        });
        keep.observe(&t, 100);
        assert_eq!(
            keep.failed("a").unwrap().urls[0],
            "https://x/a?token=s3cret"
        );
        let mut none = DetailStore::new(DetailSettings {
            urls: false,
            ..settings()
        });
        none.observe(&t, 100);
        assert!(none.failed("a").unwrap().urls.is_empty());
        assert_eq!(none.failed("a").unwrap().url_count, 3);
    }

    #[test]
    fn ids_embedding_a_url_lose_its_query() {
        let mut s = DetailStore::new(settings());
        let t = task(
            "t1|https://x/a?sign=tok",
            TaskStatus::Failed,
            10,
            &["https://x/a?sign=tok"],
        );
        s.observe(&t, 100);
        assert_eq!(
            s.failed("t1|https://x/a?sign=tok").unwrap().task_id,
            "t1|https://x/a"
        );
        assert_eq!(
            shown_id("t1|https://x/a?sign=tok", true),
            "t1|https://x/a?sign=tok"
        );
        assert_eq!(shown_id("plain?id", false), "plain?id");
    }

    #[test]
    fn evicts_oldest_first_and_counts() {
        let mut s = DetailStore::new(settings());
        for (i, c) in [(1, 30), (2, 10), (3, 20)] {
            s.observe(&task(&i.to_string(), TaskStatus::Failed, c, &[]), 100);
        }
        assert_eq!(s.len(Set::Failed), 2);
        assert!(s.failed("2").is_none(), "the oldest created goes first");
        assert_eq!(s.evicted, [1, 0, 0]);
        for (i, c) in [(4, 5), (5, 7), (6, 6)] {
            s.observe(&task(&i.to_string(), TaskStatus::Success, c, &[]), 100);
        }
        let kept: Vec<_> = s.recent.iter().map(|d| d.task_id.as_str()).collect();
        assert_eq!(kept, ["6", "5"]);
        assert_eq!(s.evicted, [1, 0, 1]);
        s.observe(&task("4", TaskStatus::Success, 5, &[]), 100);
        assert_eq!(s.evicted, [1, 0, 1], "seen again, still the oldest: once");
        for (i, c) in [(7, 5), (8, 7), (9, 6)] {
            s.observe(&task(&i.to_string(), TaskStatus::Running, c, &[]), 100);
        }
        assert_eq!(s.len(Set::Unfinished), 2);
        assert_eq!(s.evicted, [1, 1, 1]);
        // Re-checks see every unfinished task again each refresh: the one
        // pushed out is not counted again while it stays the oldest.
        for _ in 0..3 {
            for (i, c) in [(7, 5), (8, 7), (9, 6)] {
                s.observe(&task(&i.to_string(), TaskStatus::Running, c, &[]), 100);
            }
        }
        assert_eq!(s.evicted, [1, 1, 1]);
        assert_eq!(s.len(Set::Unfinished), 2);
        // Once a kept one finishes, the pushed-out one is kept again.
        s.observe(&task("8", TaskStatus::Success, 7, &[]), 100);
        s.observe(&task("7", TaskStatus::Running, 5, &[]), 100);
        assert_eq!(s.len(Set::Unfinished), 2);
        assert_eq!(s.evicted, [1, 1, 2], "a success pushed one out of recent");
    }

    #[test]
    fn unfinished_moves_to_failed_keeping_its_urls_and_reports_stuck_once() {
        let mut s = DetailStore::new(DetailSettings {
            stuck_after: Duration::from_secs(60),
            max_failed: 10,
            ..settings()
        });
        s.observe(&task("a", TaskStatus::Running, 0, &["https://x/a"]), 10);
        s.observe(&task("b", TaskStatus::Running, 50, &[]), 10);
        // Baseline: "c" was created before counting started and already
        // stuck when first seen.
        s.observe(&task("c", TaskStatus::Pending, -100, &[]), 10);
        assert!(s.newly_stuck(30, 5).is_empty());
        let stuck = s.newly_stuck(70, 5);
        assert_eq!(stuck.len(), 1, "{stuck:?}");
        assert_eq!(stuck[0].task_id, "a");
        assert!(s.newly_stuck(80, 5).is_empty(), "once only");
        let later = s.newly_stuck(200, 5);
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].task_id, "b");
        // A re-check that lists no URLs keeps the ones seen before.
        assert_eq!(
            s.observe(&task("a", TaskStatus::Failed, 0, &[]), 400),
            Change::NewlyFailed
        );
        assert_eq!(s.failed("a").unwrap().urls, vec!["https://x/a"]);
        assert_eq!(s.failed("a").unwrap().first_seen, 10);
        assert_eq!(s.len(Set::Unfinished), 2);
        s.expire(60);
        assert_eq!(s.len(Set::Failed), 0);
        assert_eq!(s.len(Set::Unfinished), 0);
    }
}
