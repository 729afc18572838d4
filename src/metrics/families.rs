//! The table of metric families: one entry per family, in exposition order.
//!
//! An entry says what the family is (name, type, HELP, label names) and how
//! its samples are written. Whether a family is cached per account or written
//! live on every scrape is a property of the entry ([`Source`]); the renderer
//! in `mod.rs` only walks the table.

use super::process;
use super::text::{histogram, line, line_f};
use crate::api::Outcome;
use crate::collector::details::Set;
use crate::collector::stats::SkipReason;
use crate::collector::{Account, Snapshot};
use crate::server;
use crate::task::{TaskStatus, TaskType};
use std::sync::LazyLock;

/// The family type, as written after `# TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
    Histogram,
}

impl Kind {
    /// The text-format spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric family.
pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    /// Label names of every sample, in order (`le` of histogram buckets
    /// not included).
    pub labels: &'static [&'static str],
    pub(super) source: Source,
}

impl Family {
    /// True when the family is rendered per account and reused until the
    /// account changes (or, for a time-dependent one, its samples would
    /// change); false when it is written on every scrape.
    pub fn cached(&self) -> bool {
        matches!(self.source, Source::Cached(_) | Source::Timed(_))
    }
}

/// Writes the samples of family `name`.
pub(super) enum Source {
    /// Per account, from its snapshot and counters only: rendered when the
    /// account's generation changes and reused until then.
    Cached(fn(&mut String, &'static str, &Row<'_>)),
    /// Per account, from its snapshot and the scrape time (Unix seconds),
    /// returning the first second at which the samples would read
    /// otherwise: cached like [`Source::Cached`] and reused by the scrapes
    /// before that second.
    Timed(fn(&mut String, &'static str, &Row<'_>, i64) -> i64),
    /// Per account, on every scrape: depends on the scrape time or on values
    /// that change without bumping the generation.
    Live(fn(&mut String, &'static str, &Row<'_>, &Scrape)),
    /// Once per scrape, not per account.
    Global(fn(&mut String, &'static str, &Scrape)),
}

/// What a scrape knows beyond the accounts.
pub(super) struct Scrape {
    /// Unix seconds.
    pub now: i64,
    /// Unix time the collector started.
    pub started: i64,
    pub process: process::Sample,
    /// This replica's shard (`0/1` when not sharded).
    pub shard: crate::shard::Shard,
    /// Accounts this replica polls.
    pub owned: usize,
    /// The last config reload: (succeeded, Unix time of the last success).
    pub reload: (bool, i64),
}

/// One account as the family writers see it.
pub(super) struct Row<'a> {
    pub a: &'a Account,
    pub l: &'a Labels,
    pub s: &'a Snapshot,
}

/// Pre-escaped label sets of one account.
pub(super) struct Labels {
    /// `vendor="…",account="…"`
    pub account: String,
    /// `vendor="…",account="…",task_type="…"` per watched type.
    pub by_type: Vec<(TaskType, String)>,
    /// `vendor="…",account="…",api="…"` per API.
    pub by_api: Vec<String>,
}

impl Labels {
    pub fn new(a: &Account) -> Self {
        let account = super::account_labels(a);
        Labels {
            by_type: a
                .task_types
                .iter()
                .map(|t| (*t, format!("{account},task_type=\"{}\"", t.as_str())))
                .collect(),
            by_api: a
                .api_names
                .iter()
                .map(|api| format!("{account},api=\"{}\"", super::escape_label(api)))
                .collect(),
            account,
        }
    }
}

/// `,name="value"` per item, indexed by `index(item)`.
fn extra<T: Copy, const N: usize>(
    name: &str,
    all: [T; N],
    index: fn(T) -> usize,
    value: fn(T) -> &'static str,
) -> [String; N] {
    let mut out: [String; N] = std::array::from_fn(|_| String::new());
    for t in all {
        out[index(t)] = format!(",{name}=\"{}\"", value(t));
    }
    out
}

/// `,status="…"` per [`TaskStatus::index`].
static STATUS: LazyLock<[String; 5]> = LazyLock::new(|| {
    extra(
        "status",
        TaskStatus::ALL,
        TaskStatus::index,
        TaskStatus::as_str,
    )
});

/// `,outcome="…"` per [`Outcome::index`].
static OUTCOME: LazyLock<[String; 8]> =
    LazyLock::new(|| extra("outcome", Outcome::ALL, Outcome::index, Outcome::as_str));

/// `,reason="…"` per skip reason.
static REASON: LazyLock<[String; 2]> = LazyLock::new(|| {
    extra(
        "reason",
        SkipReason::ALL,
        |r| r as usize,
        SkipReason::as_str,
    )
});

/// The ages `cdn_tasks_unfinished_older_than` reports, in seconds: the
/// thresholds a stuck-task alert can choose from (15m … 1d).
pub const UNFINISHED_AGES: [i64; 5] = [900, 1_800, 3_600, 21_600, 86_400];

/// `,older_than="…"` per [`UNFINISHED_AGES`] entry.
static OLDER_THAN: LazyLock<[String; 5]> =
    LazyLock::new(|| UNFINISHED_AGES.map(|a| format!(",older_than=\"{a}\"")));

/// `,reason="…"` per HTTP server limit.
static DETAIL_SET: LazyLock<[String; 3]> =
    LazyLock::new(|| extra("set", Set::ALL, |s| s as usize, Set::as_str));

static HTTP_REASON: LazyLock<[String; 6]> = LazyLock::new(|| {
    extra(
        "reason",
        server::Reason::ALL,
        |r| r as usize,
        server::Reason::as_str,
    )
});

/// `,task_type="…"` per [`TaskType::index`].
static TASK_TYPE: LazyLock<[String; 5]> = LazyLock::new(|| {
    extra(
        "task_type",
        TaskType::ALL,
        TaskType::index,
        TaskType::as_str,
    )
});

/// The statuses a finished task ends in, in the order written, with their
/// column in `Snapshot::finished`.
const FINAL: [(TaskStatus, usize); 2] = [(TaskStatus::Success, 0), (TaskStatus::Failed, 1)];

/// The end of a cached family's HELP.
macro_rules! cached {
    () => {
        "Cached: refreshed from the vendor API at most every min_refresh_interval and within the rate budget; cdn_vendor_data_age_seconds says how old."
    };
}

/// The end of a quota family's HELP.
macro_rules! quota_cached {
    () => {
        "Cached: refreshed from the vendor API at most every quota_interval; cdn_vendor_data_age_seconds says how old."
    };
}

const ACCOUNT: &[&str] = &["vendor", "account"];
const BY_TYPE: &[&str] = &["vendor", "account", "task_type"];
const BY_STATUS: &[&str] = &["vendor", "account", "task_type", "status"];
const BY_API: &[&str] = &["vendor", "account", "api"];

/// Every family, in exposition order.
pub static FAMILIES: [Family; 37] = [
    Family {
        name: "cdn_tasks",
        kind: Kind::Gauge,
        help: concat!(
            "Tasks created within the lookback window, by current status. ",
            cached!()
        ),
        labels: BY_STATUS,
        source: Source::Cached(|out, name, r| {
            for (t, lt) in &r.l.by_type {
                for st in TaskStatus::ALL {
                    let v = r.s.aggregates.tasks[t.index()][st.index()];
                    line(out, name, lt, &STATUS[st.index()], v);
                }
            }
        }),
    },
    Family {
        name: "cdn_task_urls",
        kind: Kind::Gauge,
        help: concat!("URLs in the tasks counted by cdn_tasks. ", cached!()),
        labels: BY_STATUS,
        source: Source::Cached(|out, name, r| {
            for (t, lt) in &r.l.by_type {
                for st in TaskStatus::ALL {
                    let v = r.s.aggregates.urls[t.index()][st.index()];
                    line(out, name, lt, &STATUS[st.index()], v);
                }
            }
        }),
    },
    Family {
        name: "cdn_tasks_finished_total",
        kind: Kind::Counter,
        help: "Tasks seen finished for the first time, by final status. Tasks already finished when the exporter first synced an account are a baseline and not counted.",
        labels: BY_STATUS,
        source: Source::Cached(|out, name, r| {
            for (t, lt) in &r.l.by_type {
                for (st, col) in FINAL {
                    let v = r.s.finished[t.index()][col];
                    line(out, name, lt, &STATUS[st.index()], v);
                }
            }
        }),
    },
    Family {
        name: "cdn_task_duration_seconds",
        kind: Kind::Histogram,
        help: "Create-to-finish time of tasks counted by cdn_tasks_finished_total, observed once per task.",
        labels: BY_TYPE,
        source: Source::Cached(|out, name, r| {
            for (t, lt) in &r.l.by_type {
                if let Some(h) = r.a.durations.get(*t) {
                    histogram(out, name, lt, h);
                }
            }
        }),
    },
    Family {
        name: "cdn_task_oldest_unfinished_age_seconds",
        kind: Kind::Gauge,
        help: concat!(
            "Age of the oldest task still pending, running or unknown; 0 when none. ",
            cached!()
        ),
        labels: BY_TYPE,
        source: Source::Timed(|out, name, r, now| {
            let mut until = i64::MAX;
            for (t, lt) in &r.l.by_type {
                let oldest = r.s.aggregates.oldest_unfinished[t.index()];
                if oldest.is_some() {
                    until = now + 1;
                }
                let age = oldest.map(|c| (now - c).max(0)).unwrap_or(0);
                line(out, name, lt, "", age as u64);
            }
            until
        }),
    },
    Family {
        name: "cdn_tasks_unfinished_older_than",
        kind: Kind::Gauge,
        help: concat!(
            "Tasks still pending or running (not unknown) created more than older_than seconds ago. ",
            cached!()
        ),
        labels: &["vendor", "account", "task_type", "older_than"],
        source: Source::Timed(|out, name, r, now| {
            let mut until = i64::MAX;
            for (t, lt) in &r.l.by_type {
                for (age, extra) in UNFINISHED_AGES.iter().zip(OLDER_THAN.iter()) {
                    let (n, next) = r.s.aggregates.pending_running_before_and_next(t.index(), now - age);
                    // The count grows when `now - age` passes the next
                    // creation time.
                    if let Some(c) = next {
                        until = until.min(c.saturating_add(age + 1));
                    }
                    line(out, name, lt, extra, n as u64);
                }
            }
            until
        }),
    },
    Family {
        name: "cdn_task_completion_ratio",
        kind: Kind::Gauge,
        help: concat!(
            "Finished share of the tasks in the window, crediting vendor-reported progress of unfinished ones; NaN when there are none. ",
            cached!()
        ),
        labels: BY_TYPE,
        source: Source::Cached(|out, name, r| {
            for (t, lt) in &r.l.by_type {
                let total: u64 = r.s.aggregates.tasks[t.index()].iter().sum();
                let v = if total == 0 {
                    f64::NAN
                } else {
                    r.s.aggregates.completion[t.index()] / total as f64
                };
                line_f(out, name, lt, "", v);
            }
        }),
    },
    Family {
        name: "cdn_task_success_ratio",
        kind: Kind::Gauge,
        help: concat!(
            "Successful share of the finished tasks in the window; NaN when none finished. ",
            cached!()
        ),
        labels: BY_TYPE,
        source: Source::Cached(|out, name, r| {
            for (t, lt) in &r.l.by_type {
                let row = &r.s.aggregates.tasks[t.index()];
                let ok = row[TaskStatus::Success.index()];
                let failed = row[TaskStatus::Failed.index()];
                let v = if ok + failed == 0 {
                    f64::NAN
                } else {
                    ok as f64 / (ok + failed) as f64
                };
                line_f(out, name, lt, "", v);
            }
        }),
    },
    Family {
        name: "cdn_quota_limit",
        kind: Kind::Gauge,
        help: concat!(
            "Daily task quota the vendor grants, where it reports one. ",
            quota_cached!()
        ),
        labels: BY_TYPE,
        source: Source::Cached(|out, name, r| {
            for q in &r.s.quotas {
                line_f(out, name, &r.l.account, &TASK_TYPE[q.task_type.index()], q.limit);
            }
        }),
    },
    Family {
        name: "cdn_quota_remaining",
        kind: Kind::Gauge,
        help: concat!(
            "Daily task quota left, where the vendor reports it. ",
            quota_cached!()
        ),
        labels: BY_TYPE,
        source: Source::Cached(|out, name, r| {
            for q in &r.s.quotas {
                let extra = &TASK_TYPE[q.task_type.index()];
                line_f(out, name, &r.l.account, extra, q.remaining);
            }
        }),
    },
    Family {
        name: "cdn_vendor_up",
        kind: Kind::Gauge,
        help: "1 if the last refresh of the account reached the vendor and every answer was usable (throttling leaves it unchanged).",
        labels: ACCOUNT,
        source: Source::Cached(|out, name, r| line(out, name, &r.l.account, "", u64::from(r.s.up))),
    },
    Family {
        name: "cdn_vendor_last_success_timestamp_seconds",
        kind: Kind::Gauge,
        help: "Unix time the oldest data the account serves was fresh: the earliest of cdn_task_last_success_timestamp_seconds; 0 before every task type has been fresh once.",
        labels: ACCOUNT,
        source: Source::Cached(|out, name, r| {
            let v = r.s.last_success.unwrap_or(0).max(0) as u64;
            line(out, name, &r.l.account, "", v);
        }),
    },
    Family {
        name: "cdn_vendor_data_age_seconds",
        kind: Kind::Gauge,
        help: "Seconds since the oldest data the account serves was fresh: the worst of cdn_task_data_age_seconds (since exporter start before the first refresh).",
        labels: ACCOUNT,
        source: Source::Live(|out, name, r, sc| {
            let v = crate::collector::age(sc.now, r.s.last_success, sc.started);
            line_f(out, name, &r.l.account, "", v);
        }),
    },
    Family {
        name: "cdn_task_data_age_seconds",
        kind: Kind::Gauge,
        help: "Seconds since the data of this task type was fresh: the start of the last failure-free refresh that listed its streams up to then and re-checked its unfinished tasks (since exporter start before that).",
        labels: BY_TYPE,
        source: Source::Live(|out, name, r, sc| {
            for (t, lt) in &r.l.by_type {
                let v = crate::collector::age(sc.now, type_success(r.s, *t), sc.started);
                line_f(out, name, lt, "", v);
            }
        }),
    },
    Family {
        name: "cdn_task_last_success_timestamp_seconds",
        kind: Kind::Gauge,
        help: "Unix time the data of this task type was last fresh (see cdn_task_data_age_seconds); 0 before that.",
        labels: BY_TYPE,
        source: Source::Cached(|out, name, r| {
            for (t, lt) in &r.l.by_type {
                let v = type_success(r.s, *t).unwrap_or(0).max(0) as u64;
                line(out, name, lt, "", v);
            }
        }),
    },
    Family {
        name: "cdn_task_backlog_seconds",
        kind: Kind::Gauge,
        help: concat!(
            "Seconds of the lookback window not yet listed from the vendor: all of it before the first listing, 0 once synced. Above 0 the account is warming up and cdn_tasks is incomplete, not quiet. ",
            cached!()
        ),
        labels: BY_TYPE,
        source: Source::Cached(|out, name, r| {
            for (t, lt) in &r.l.by_type {
                let v = backlog(r, *t).map_or(r.a.settings.lookback.as_secs(), |b| b.seconds.max(0) as u64);
                line(out, name, lt, "", v);
            }
        }),
    },
    Family {
        name: "cdn_task_backlog_completion_estimate_timestamp_seconds",
        kind: Kind::Gauge,
        help: "Estimated Unix time cdn_task_backlog_seconds reaches 0: the calls still needed (at the density listed so far, new tasks included) over the account's rate budget. Absent when there is no backlog, before the first page was listed, and when the budget cannot keep up with new tasks.",
        labels: BY_TYPE,
        source: Source::Cached(|out, name, r| {
            for (t, lt) in &r.l.by_type {
                if let Some(at) = backlog(r, *t).and_then(|b| b.complete_at) {
                    line(out, name, lt, "", at.max(0) as u64);
                }
            }
        }),
    },
    Family {
        name: "cdn_vendor_api_requests_total",
        kind: Kind::Counter,
        help: "Requests sent to the vendor API, by API and outcome.",
        labels: &["vendor", "account", "api", "outcome"],
        source: Source::Cached(|out, name, r| {
            for (i, la) in r.l.by_api.iter().enumerate() {
                for o in Outcome::ALL {
                    line(out, name, la, &OUTCOME[o.index()], r.a.stats.get(i, o));
                }
            }
        }),
    },
    Family {
        name: "cdn_vendor_api_request_duration_seconds",
        kind: Kind::Histogram,
        help: "Duration of vendor API requests, body included.",
        labels: BY_API,
        source: Source::Cached(|out, name, r| {
            for (la, h) in r.l.by_api.iter().zip(&r.a.stats.latency) {
                histogram(out, name, la, h);
            }
        }),
    },
    Family {
        name: "cdn_vendor_refresh_skipped_total",
        kind: Kind::Counter,
        help: "Scrapes that served an account from cache without refreshing: data still fresh, or no rate budget left.",
        labels: &["vendor", "account", "reason"],
        source: Source::Live(|out, name, r, _| {
            for reason in SkipReason::ALL {
                let n = r.a.stats.skipped[reason as usize].load(std::sync::atomic::Ordering::Relaxed);
                line(out, name, &r.l.account, &REASON[reason as usize], n);
            }
        }),
    },
    Family {
        name: "cdn_vendor_scrape_duration_seconds",
        kind: Kind::Gauge,
        help: "Seconds the last scrape waited for this account's refresh; 0 when served from cache.",
        labels: ACCOUNT,
        source: Source::Live(|out, name, r, _| {
            line_f(out, name, &r.l.account, "", r.a.stats.scrape_seconds.get());
        }),
    },
    Family {
        name: "cdn_cache_tasks",
        kind: Kind::Gauge,
        help: "Tasks held in the account's cache.",
        labels: ACCOUNT,
        source: Source::Cached(|out, name, r| {
            line(out, name, &r.l.account, "", r.s.cache_tasks as u64);
        }),
    },
    Family {
        name: "cdn_cache_tasks_dropped_total",
        kind: Kind::Counter,
        help: "Tasks evicted because the account's cache hit max_tasks.",
        labels: ACCOUNT,
        source: Source::Cached(|out, name, r| line(out, name, &r.l.account, "", r.s.cache_dropped)),
    },
    Family {
        name: "cdn_task_details_evicted_total",
        kind: Kind::Counter,
        help: "Tasks the details store (/api/v1/tasks) evicted, oldest first, because a task_details cap was hit, by set (failed, unfinished, recent).",
        labels: &["vendor", "account", "set"],
        // Cached: evictions happen inside a refresh, whose end bumps the
        // generation (a scrape during the refresh may show the count as of
        // its last request until then).
        source: Source::Cached(|out, name, r| {
            let evicted = r.a.details().evicted;
            for set in Set::ALL {
                line(out, name, &r.l.account, &DETAIL_SET[set as usize], evicted[set as usize]);
            }
        }),
    },
    Family {
        name: "cdn_exporter_config_last_reload_successful",
        kind: Kind::Gauge,
        help: "Whether the last configuration reload attempt was successful.",
        labels: &[],
        source: Source::Global(|out, name, sc| line(out, name, "", "", u64::from(sc.reload.0))),
    },
    Family {
        name: "cdn_exporter_config_last_reload_success_timestamp_seconds",
        kind: Kind::Gauge,
        help: "Timestamp of the last successful configuration reload (the start, before any).",
        labels: &[],
        source: Source::Global(|out, name, sc| line_f(out, name, "", "", sc.reload.1 as f64)),
    },
    Family {
        name: "cdn_exporter_build_info",
        kind: Kind::Gauge,
        help: "Build of the running exporter; always 1.",
        labels: &["version", "revision", "rustc"],
        source: Source::Global(|out, name, _| {
            let labels = concat!(
                "version=\"",
                env!("CARGO_PKG_VERSION"),
                "\",revision=\"",
                env!("CDN_EXPORTER_REVISION"),
                "\",rustc=\"",
                env!("CDN_EXPORTER_RUSTC"),
                "\""
            );
            line(out, name, labels, "", 1);
        }),
    },
    Family {
        name: "cdn_exporter_shard_accounts",
        kind: Kind::Gauge,
        help: "Accounts this replica polls, by its shard (index/count; 0/1 when not sharded).",
        labels: &["shard"],
        source: Source::Global(|out, name, sc| {
            line(out, name, &format!("shard=\"{}\"", sc.shard), "", sc.owned as u64);
        }),
    },
    Family {
        name: "cdn_exporter_http_connections_rejected_total",
        kind: Kind::Counter,
        help: "HTTP connections the exporter closed or refused because of a server limit, by reason.",
        labels: &["reason"],
        source: Source::Global(|out, name, _| {
            for r in server::Reason::ALL {
                line(out, name, "", &HTTP_REASON[r as usize], server::rejected(r));
            }
        }),
    },
    Family {
        name: "cdn_exporter_http_connections",
        kind: Kind::Gauge,
        help: "Open HTTP connections, TLS handshakes included.",
        labels: &[],
        source: Source::Global(|out, name, _| {
            line(out, name, "", "", server::open_connections() as u64);
        }),
    },
    Family {
        name: "process_cpu_seconds_total",
        kind: Kind::Counter,
        help: "Total user and system CPU time spent in seconds.",
        labels: &[],
        source: Source::Global(|out, name, sc| opt(out, name, sc.process.cpu_seconds)),
    },
    Family {
        name: "process_max_fds",
        kind: Kind::Gauge,
        help: "Maximum number of open file descriptors.",
        labels: &[],
        source: Source::Global(|out, name, sc| opt(out, name, sc.process.max_fds)),
    },
    Family {
        name: "process_open_fds",
        kind: Kind::Gauge,
        help: "Number of open file descriptors.",
        labels: &[],
        source: Source::Global(|out, name, sc| opt(out, name, sc.process.open_fds)),
    },
    Family {
        name: "process_resident_memory_bytes",
        kind: Kind::Gauge,
        help: "Resident memory size in bytes.",
        labels: &[],
        source: Source::Global(|out, name, sc| opt(out, name, sc.process.resident_memory_bytes)),
    },
    Family {
        name: "process_start_time_seconds",
        kind: Kind::Gauge,
        help: "Start time of the process since unix epoch in seconds.",
        labels: &[],
        source: Source::Global(|out, name, sc| opt(out, name, sc.process.start_time_seconds)),
    },
    Family {
        name: "process_threads",
        kind: Kind::Gauge,
        help: "Number of OS threads in the process.",
        labels: &[],
        source: Source::Global(|out, name, sc| opt(out, name, sc.process.threads)),
    },
    Family {
        name: "process_virtual_memory_bytes",
        kind: Kind::Gauge,
        help: "Virtual memory size in bytes.",
        labels: &[],
        source: Source::Global(|out, name, sc| opt(out, name, sc.process.virtual_memory_bytes)),
    },
];

/// The last time data of type `t` was fresh.
fn type_success(s: &Snapshot, t: TaskType) -> Option<i64> {
    s.type_last_success
        .iter()
        .find(|(x, _)| *x == t)
        .and_then(|(_, v)| *v)
}

/// The backlog of type `t`, once the account has computed one.
fn backlog(r: &Row<'_>, t: TaskType) -> Option<crate::collector::Backlog> {
    r.s.backlog.iter().find(|(x, _)| *x == t).map(|(_, b)| *b)
}

/// A label-less sample, when the platform has the value.
fn opt(out: &mut String, name: &str, v: Option<f64>) {
    if let Some(v) = v {
        line_f(out, name, "", "", v);
    }
}
