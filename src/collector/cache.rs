//! The per-account task cache: what we know about every task created within
//! the lookback, kept compact so a million tasks fit in ~100 MB.
//!
//! Tasks are keyed by a keyed hash of their id (8 bytes instead of a string);
//! only still-unfinished tasks keep their id text, because only they are ever
//! requested again. Finished tasks never change, so they are never fetched
//! again — their entry only serves the counts and the dedupe.
//!
//! The key is SipHash-2-4 under a random per-cache seed: keyed, so vendor
//! ids cannot be chosen to collide, and a fixed algorithm, so a cache saved
//! to disk ([`TaskCache::export`]) keeps matching ids after a restart (and a
//! toolchain upgrade) when the seed is saved with it.

use crate::task::{Task, TaskStatus, TaskType};
use serde::{Deserialize, Serialize};
use std::collections::hash_map::{Entry, RandomState};
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// Keys are already uniformly distributed hashes: pass them through.
#[derive(Default)]
pub struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdentityHasher>>;

const NO_FINISH: u32 = u32::MAX;
const NO_PROGRESS: u16 = u16::MAX;

/// One cached task: 24 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedTask {
    pub created_at: i64,
    /// Seconds from creation to completion, `NO_FINISH` if unknown.
    finish_offset: u32,
    pub url_count: u32,
    /// Progress in 1/10000, `NO_PROGRESS` if not reported.
    progress: u16,
    task_type: u8,
    status: u8,
    /// Index of the stream that listed it.
    pub stream: u8,
}

impl CachedTask {
    fn from_task(t: &Task, stream: u8) -> Self {
        let finish_offset = t
            .finished_at
            .and_then(|f| u32::try_from(f - t.created_at).ok())
            .unwrap_or(NO_FINISH);
        CachedTask {
            created_at: t.created_at,
            finish_offset,
            url_count: t.url_count,
            progress: t
                .progress
                .filter(|p| p.is_finite())
                .map(|p| (p.clamp(0.0, 1.0) * 10_000.0).round() as u16)
                .unwrap_or(NO_PROGRESS),
            task_type: t.task_type.index() as u8,
            status: t.status.index() as u8,
            stream,
        }
    }

    /// The task type.
    pub fn task_type(&self) -> TaskType {
        TaskType::from_index(self.task_type.into()).unwrap_or(TaskType::RefreshFile)
    }

    /// The last status seen.
    pub fn status(&self) -> TaskStatus {
        TaskStatus::from_index(self.status.into()).unwrap_or(TaskStatus::Unknown)
    }

    /// Completion credit, as [`Task::completion`].
    pub fn completion(&self) -> f64 {
        if self.status().is_finished() {
            1.0
        } else if self.progress == NO_PROGRESS {
            0.0
        } else {
            f64::from(self.progress) / 10_000.0
        }
    }
}

/// A task seen finished for the first time (not part of the baseline).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Finished {
    pub task_type: TaskType,
    pub status: TaskStatus,
    /// Create→finish, when the vendor reported a finish time.
    pub duration_seconds: Option<f64>,
}

/// Counts over the cache, per task type × status.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Aggregates {
    pub tasks: [[u64; 5]; 5],
    pub urls: [[u64; 5]; 5],
    /// Creation time of the oldest unfinished task per type.
    pub oldest_unfinished: [Option<i64>; 5],
    /// Sum of completion credit per type.
    pub completion: [f64; 5],
    /// Creation times of the pending and running tasks per type (not
    /// `unknown`), ascending: `cdn_tasks_unfinished_older_than` counts them
    /// against the clock at render time.
    pub pending_running_created: [Vec<i64>; 5],
}

impl Aggregates {
    /// Pending or running tasks of type index `ty` created before `cutoff`.
    pub fn pending_running_before(&self, ty: usize, cutoff: i64) -> usize {
        self.pending_running_created[ty].partition_point(|&c| c < cutoff)
    }

    /// [`Aggregates::pending_running_before`], and the creation time of the
    /// first such task not counted (created at or after `cutoff`): the
    /// count changes once the cutoff passes it.
    pub fn pending_running_before_and_next(&self, ty: usize, cutoff: i64) -> (usize, Option<i64>) {
        let created = &self.pending_running_created[ty];
        let n = created.partition_point(|&c| c < cutoff);
        (n, created.get(n).copied())
    }
}

/// One cached task on disk: key, created, finish offset, URLs, progress,
/// type, status, stream (a tuple: a JSON array, not an object, per task).
pub type SavedTask = (u64, i64, u32, u32, u16, u8, u8, u8);

/// A [`TaskCache`] on disk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheState {
    /// The key seed: the saved keys are only valid under it.
    pub seed: [u64; 2],
    pub tasks: Vec<SavedTask>,
    /// Id text of the unfinished tasks, by key.
    pub unfinished: Vec<(u64, String)>,
    pub dropped: u64,
}

/// The tasks of one account.
#[derive(Debug)]
pub struct TaskCache {
    seed: (u64, u64),
    tasks: IdMap<CachedTask>,
    /// Id text of unfinished tasks, for re-checks.
    unfinished: IdMap<Box<str>>,
    cap: usize,
    /// Tasks evicted because the cap was hit.
    pub dropped: u64,
}

impl TaskCache {
    /// A cache holding at most `cap` tasks.
    pub fn new(cap: usize) -> Self {
        TaskCache {
            seed: (
                RandomState::new().hash_one(0u8),
                RandomState::new().hash_one(1u8),
            ),
            tasks: IdMap::default(),
            unfinished: IdMap::default(),
            cap: cap.max(1),
            dropped: 0,
        }
    }

    /// Tasks held.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The key of a task id.
    pub fn key(&self, id: &str) -> u64 {
        #[allow(deprecated)] // SipHasher is SipHash-2-4, a fixed algorithm.
        let mut h = std::hash::SipHasher::new_with_keys(self.seed.0, self.seed.1);
        h.write(id.as_bytes());
        h.finish()
    }

    /// Everything the cache knows, for the state file.
    pub fn export(&self) -> CacheState {
        let mut tasks: Vec<SavedTask> = self
            .tasks
            .iter()
            .map(|(k, t)| {
                (
                    *k,
                    t.created_at,
                    t.finish_offset,
                    t.url_count,
                    t.progress,
                    t.task_type,
                    t.status,
                    t.stream,
                )
            })
            .collect();
        tasks.sort_unstable_by_key(|t| (t.1, t.0));
        let mut unfinished: Vec<(u64, String)> = self
            .unfinished
            .iter()
            .map(|(k, id)| (*k, id.to_string()))
            .collect();
        unfinished.sort_unstable();
        CacheState {
            seed: [self.seed.0, self.seed.1],
            tasks,
            unfinished,
            dropped: self.dropped,
        }
    }

    /// The cache `saved` describes, within `cap` (the oldest beyond it are
    /// evicted as usual). Entries out of range are skipped.
    pub fn restore(saved: CacheState, cap: usize) -> Self {
        let mut c = TaskCache::new(cap);
        c.seed = (saved.seed[0], saved.seed[1]);
        c.dropped = saved.dropped;
        for (key, created_at, finish_offset, url_count, progress, ty, status, stream) in saved.tasks
        {
            if TaskType::from_index(ty.into()).is_none()
                || TaskStatus::from_index(status.into()).is_none()
            {
                continue;
            }
            if c.tasks.len() >= c.cap {
                c.evict_oldest();
            }
            c.tasks.insert(
                key,
                CachedTask {
                    created_at,
                    finish_offset,
                    url_count,
                    progress,
                    task_type: ty,
                    status,
                    stream,
                },
            );
        }
        for (key, id) in saved.unfinished {
            if c.tasks.get(&key).is_some_and(|t| !t.status().is_finished()) {
                c.unfinished.insert(key, id.into_boxed_str());
            }
        }
        c
    }

    /// Inserts or updates a task. Returns the finish event when this is the
    /// first time the task is seen finished and it is not baseline: it was
    /// seen unfinished before, or created at/after `counting_since`.
    pub fn upsert(&mut self, task: &Task, stream: u8, counting_since: i64) -> Option<Finished> {
        let key = self.key(&task.id);
        let new = CachedTask::from_task(task, stream);
        let was_unfinished = match self.tasks.entry(key) {
            Entry::Occupied(mut e) => {
                let old = *e.get();
                if old.status().is_finished() {
                    // Finished tasks never change; ignore a late, stale read.
                    return None;
                }
                e.insert(new);
                Some(true)
            }
            Entry::Vacant(_) => None,
        };
        if was_unfinished.is_none() {
            if self.tasks.len() >= self.cap {
                self.evict_oldest();
            }
            self.tasks.insert(key, new);
        }
        if task.status.is_finished() {
            self.unfinished.remove(&key);
        } else {
            self.unfinished
                .entry(key)
                .or_insert_with(|| task.id.as_str().into());
        }
        let counts = task.status.is_finished()
            && (was_unfinished.is_some() || task.created_at >= counting_since);
        counts.then(|| Finished {
            task_type: task.task_type,
            status: task.status,
            duration_seconds: task
                .finished_at
                .map(|f| (f - task.created_at) as f64)
                .filter(|d| *d >= 0.0),
        })
    }

    /// Drops the oldest tenth of the cache (at least one task), counting them.
    fn evict_oldest(&mut self) {
        let mut created: Vec<i64> = self.tasks.values().map(|t| t.created_at).collect();
        let n = (created.len() / 10).max(1).min(created.len() - 1);
        let (_, threshold, _) = created.select_nth_unstable(n);
        let threshold = *threshold;
        let before = self.tasks.len();
        self.tasks.retain(|_, t| t.created_at > threshold);
        self.dropped += (before - self.tasks.len()) as u64;
        let tasks = &self.tasks;
        self.unfinished.retain(|k, _| tasks.contains_key(k));
    }

    /// Forgets tasks created before `start` (they left the lookback).
    pub fn expire(&mut self, start: i64) {
        self.tasks.retain(|_, t| t.created_at >= start);
        let tasks = &self.tasks;
        self.unfinished.retain(|k, _| tasks.contains_key(k));
    }

    /// The cached entry under `key`.
    pub fn get(&self, key: u64) -> Option<&CachedTask> {
        self.tasks.get(&key)
    }

    /// Every cached task.
    pub fn tasks(&self) -> impl Iterator<Item = &CachedTask> {
        self.tasks.values()
    }

    /// Unfinished tasks: (key, id, cached entry).
    pub fn unfinished(&self) -> impl Iterator<Item = (u64, &str, &CachedTask)> {
        self.unfinished
            .iter()
            .filter_map(|(k, id)| self.tasks.get(k).map(|t| (*k, &**id, t)))
    }

    /// Counts over every cached task.
    pub fn aggregate(&self) -> Aggregates {
        let mut a = Aggregates::default();
        for t in self.tasks.values() {
            let (ty, st) = (t.task_type as usize, t.status as usize);
            a.tasks[ty][st] += 1;
            a.urls[ty][st] += u64::from(t.url_count);
            a.completion[ty] += t.completion();
            if !t.status().is_finished() {
                let o = &mut a.oldest_unfinished[ty];
                if o.is_none_or(|o| t.created_at < o) {
                    *o = Some(t.created_at);
                }
                if t.status() != TaskStatus::Unknown {
                    a.pending_running_created[ty].push(t.created_at);
                }
            }
        }
        for v in &mut a.pending_running_created {
            v.sort_unstable();
        }
        a
    }

    /// Bytes the cache's tables hold (capacity, not length), for benchmarks.
    pub fn heap_bytes(&self) -> usize {
        // hashbrown: one control byte per bucket plus the (key, value) slots.
        let slot = std::mem::size_of::<(u64, CachedTask)>() + 1;
        let ids: usize = self.unfinished.values().map(|s| s.len()).sum();
        self.tasks.capacity() * slot
            + self.unfinished.capacity() * (std::mem::size_of::<(u64, Box<str>)>() + 1)
            + ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_and_restore_keep_keys_ids_and_the_counted_set() {
        let mut c = TaskCache::new(10);
        assert!(c
            .upsert(&task("done", TaskStatus::Success, 100), 0, 0)
            .is_some());
        assert!(c
            .upsert(&task("open", TaskStatus::Running, 100), 1, 0)
            .is_none());
        let saved = c.export();
        let json = serde_json::to_string(&saved).unwrap();
        let back: CacheState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, saved);
        let mut r = TaskCache::restore(back, 10);
        assert_eq!(r.len(), 2);
        assert_eq!(r.aggregate(), c.aggregate());
        let open: Vec<_> = r
            .unfinished()
            .map(|(_, id, t)| (id.to_owned(), t.stream))
            .collect();
        assert_eq!(open, vec![("open".to_owned(), 1)]);
        assert!(
            r.upsert(&task("done", TaskStatus::Success, 100), 0, 0)
                .is_none(),
            "a finish counted before the restart is not counted again"
        );
        assert!(
            r.upsert(&task("open", TaskStatus::Success, 100), 1, 1_000)
                .is_some(),
            "a task unfinished before the restart counts once when it finishes"
        );
        assert_eq!(TaskCache::restore(c.export(), 1).len(), 1, "the cap holds");
    }

    fn task(id: &str, status: TaskStatus, created: i64) -> Task {
        Task {
            id: id.into(),
            task_type: TaskType::Prefetch,
            status,
            url_count: 2,
            urls: Vec::new(),
            domain: None,
            created_at: created,
            finished_at: status.is_finished().then_some(created + 30),
            progress: None,
            error: None,
        }
    }

    #[test]
    fn cached_task_is_small() {
        assert_eq!(std::mem::size_of::<CachedTask>(), 24);
    }

    #[test]
    fn baseline_is_not_counted_but_transitions_and_new_tasks_are() {
        let mut c = TaskCache::new(100);
        // Before counting_since (1000) and already finished: baseline.
        assert_eq!(
            c.upsert(&task("old", TaskStatus::Success, 900), 0, 1000),
            None
        );
        // Seen running, later finished: counted once.
        assert_eq!(
            c.upsert(&task("a", TaskStatus::Running, 900), 0, 1000),
            None
        );
        let f = c
            .upsert(&task("a", TaskStatus::Failed, 900), 0, 1000)
            .unwrap();
        assert_eq!(
            (f.status, f.duration_seconds),
            (TaskStatus::Failed, Some(30.0))
        );
        assert_eq!(
            c.upsert(&task("a", TaskStatus::Failed, 900), 0, 1000),
            None,
            "counted once"
        );
        // Created after counting started and first seen finished: counted.
        assert!(c
            .upsert(&task("b", TaskStatus::Success, 1100), 0, 1000)
            .is_some());
        assert_eq!(c.len(), 3);
        assert_eq!(c.unfinished().count(), 0);
    }

    #[test]
    fn finished_tasks_never_regress() {
        let mut c = TaskCache::new(10);
        c.upsert(&task("a", TaskStatus::Success, 1), 0, 0);
        c.upsert(&task("a", TaskStatus::Running, 1), 0, 0);
        assert_eq!(
            c.aggregate().tasks[TaskType::Prefetch.index()][TaskStatus::Success.index()],
            1
        );
    }

    #[test]
    fn cap_evicts_oldest_and_counts() {
        let mut c = TaskCache::new(10);
        for i in 0..25 {
            c.upsert(&task(&format!("t{i}"), TaskStatus::Running, i), 0, 0);
        }
        assert!(c.len() <= 10);
        assert_eq!(c.dropped as usize + c.len(), 25);
        assert!(c.unfinished().all(|(_, id, _)| id >= "t15" || id.len() > 2));
        assert_eq!(c.unfinished().count(), c.len());
    }

    #[test]
    fn expire_and_aggregate() {
        let mut c = TaskCache::new(100);
        c.upsert(&task("a", TaskStatus::Running, 10), 0, 0);
        c.upsert(&task("b", TaskStatus::Running, 20), 0, 0);
        c.upsert(&task("c", TaskStatus::Success, 30), 0, 0);
        let a = c.aggregate();
        let p = TaskType::Prefetch.index();
        assert_eq!(a.tasks[p][TaskStatus::Running.index()], 2);
        assert_eq!(a.urls[p][TaskStatus::Running.index()], 4);
        assert_eq!(a.oldest_unfinished[p], Some(10));
        assert_eq!(a.completion[p], 1.0);
        c.expire(15);
        assert_eq!(c.len(), 2);
        assert_eq!(c.aggregate().oldest_unfinished[p], Some(20));
        assert_eq!(c.unfinished().count(), 1);
    }

    #[test]
    fn pending_running_ages_exclude_unknown_and_finished() {
        let mut c = TaskCache::new(100);
        c.upsert(&task("a", TaskStatus::Pending, 100), 0, 0);
        c.upsert(&task("b", TaskStatus::Running, 50), 0, 0);
        c.upsert(&task("c", TaskStatus::Unknown, 10), 0, 0);
        c.upsert(&task("d", TaskStatus::Failed, 5), 0, 0);
        let a = c.aggregate();
        let p = TaskType::Prefetch.index();
        assert_eq!(a.pending_running_created[p], vec![50, 100]);
        assert_eq!(
            a.oldest_unfinished[p],
            Some(10),
            "unknown still counts there"
        );
        assert_eq!(a.pending_running_before(p, 50), 0);
        assert_eq!(a.pending_running_before(p, 51), 1);
        assert_eq!(a.pending_running_before(p, 1_000), 2);
    }
}
