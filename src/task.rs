//! The normalized task model every vendor module maps its wire format into.
//!
//! Vendors disagree on what a "task" is (a multi-cloud task, an object path, a
//! batch, a URL record); this module is the one vocabulary the collector,
//! cache and metrics speak, so none of them knows any vendor.

use std::fmt;

/// What kind of cache operation a task performs. Bounded set: safe as a label.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum TaskType {
    RefreshFile,
    RefreshDir,
    RefreshRegex,
    RefreshTag,
    Prefetch,
}

impl TaskType {
    /// Every task type, in label order.
    pub const ALL: [TaskType; 5] = [
        TaskType::RefreshFile,
        TaskType::RefreshDir,
        TaskType::RefreshRegex,
        TaskType::RefreshTag,
        TaskType::Prefetch,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskType::RefreshFile => "refresh_file",
            TaskType::RefreshDir => "refresh_dir",
            TaskType::RefreshRegex => "refresh_regex",
            TaskType::RefreshTag => "refresh_tag",
            TaskType::Prefetch => "prefetch",
        }
    }

    /// Dense index for per-type arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Inverse of [`TaskType::index`].
    pub fn from_index(i: usize) -> Option<TaskType> {
        Self::ALL.get(i).copied()
    }

    /// Parses a label value.
    pub fn parse(s: &str) -> Option<TaskType> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Purges, as opposed to prefetches.
    pub fn is_refresh(self) -> bool {
        self != TaskType::Prefetch
    }
}

impl fmt::Display for TaskType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a task stands. `Unknown` exists because UCloud reports `unknow`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Pending,
    Running,
    Success,
    Failed,
    Unknown,
}

impl TaskStatus {
    /// Every status, in label order.
    pub const ALL: [TaskStatus; 5] = [
        TaskStatus::Pending,
        TaskStatus::Running,
        TaskStatus::Success,
        TaskStatus::Failed,
        TaskStatus::Unknown,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Running => "running",
            TaskStatus::Success => "success",
            TaskStatus::Failed => "failed",
            TaskStatus::Unknown => "unknown",
        }
    }

    /// Dense index for per-status arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Inverse of [`TaskStatus::index`].
    pub fn from_index(i: usize) -> Option<TaskStatus> {
        Self::ALL.get(i).copied()
    }

    /// Finished tasks never change again, so they are never re-requested.
    /// `Unknown` is not finished: the vendor may still resolve it.
    pub fn is_finished(self) -> bool {
        matches!(self, TaskStatus::Success | TaskStatus::Failed)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One task as a vendor module reports it. The vendor and account it belongs
/// to are those of the account that fetched it.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Vendor task id (for CDNetworks, a synthetic key: records have no id).
    pub id: String,
    pub task_type: TaskType,
    pub status: TaskStatus,
    /// URLs (or paths) the task covers.
    pub url_count: u32,
    /// The URLs themselves, as far as the answer listed them (may be fewer
    /// than `url_count`); kept only in the details store, never a label.
    pub urls: Vec<String>,
    /// Domain, where the vendor reports one; used for logs only (never a label).
    pub domain: Option<String>,
    /// Creation time, Unix seconds UTC.
    pub created_at: i64,
    /// Completion time, Unix seconds UTC, where known.
    pub finished_at: Option<i64>,
    /// Vendor-reported progress 0–1, where given.
    pub progress: Option<f64>,
    /// Vendor error text for failed tasks; logs only, never a label.
    pub error: Option<String>,
}

/// The lower-cased host of an absolute URL (`scheme://host[:port]/...`).
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?.split(':').next()?;
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// `url` without its query string and fragment: URLs can carry signed
/// tokens, so the details store keeps them stripped unless told otherwise.
pub fn strip_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

impl Task {
    /// Progress to credit toward the completion ratio: finished tasks count 1,
    /// unfinished ones what the vendor reported (clamped), else 0.
    pub fn completion(&self) -> f64 {
        if self.status.is_finished() {
            1.0
        } else {
            self.progress.unwrap_or(0.0).clamp(0.0, 1.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip() {
        for t in TaskType::ALL {
            assert_eq!(TaskType::parse(t.as_str()), Some(t));
            assert_eq!(TaskType::from_index(t.index()), Some(t));
        }
        for s in TaskStatus::ALL {
            assert_eq!(TaskStatus::from_index(s.index()), Some(s));
        }
        assert_eq!(TaskType::parse("purge"), None);
    }

    #[test]
    fn completion_credits_finished_and_clamps_progress() {
        let mut t = Task {
            id: "1".into(),
            task_type: TaskType::Prefetch,
            status: TaskStatus::Running,
            url_count: 1,
            urls: Vec::new(),
            domain: None,
            created_at: 0,
            finished_at: None,
            progress: Some(1.7),
            error: None,
        };
        assert_eq!(t.completion(), 1.0);
        t.progress = Some(0.25);
        assert_eq!(t.completion(), 0.25);
        t.progress = None;
        assert_eq!(t.completion(), 0.0);
        t.status = TaskStatus::Failed;
        assert_eq!(t.completion(), 1.0);
    }
}
