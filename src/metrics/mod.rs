//! Renders `/metrics` from the collector's snapshots.
//!
//! Every family is one entry of [`FAMILIES`] (name, type, HELP, labels and
//! how its samples are written); the exposition is the table in order. The
//! per-account families are written by hand rather than through the
//! `prometheus` crate's registry: at 1,000 accounts that is ~220,000 series,
//! and `benches/render.rs` measures both ways on the same data (README,
//! Benchmarks). Label prefixes are pre-escaped once per account, and the
//! families an entry marks cached are kept per account and reused until the
//! account's generation changes.
//!
//! Vanishing series: every configured account × watched task type × status
//! (and every API × outcome) is always written, at 0 when empty, so
//! `increase()` and absent-based alerts behave.

mod families;
mod process;
mod text;

pub use families::{Family, Kind, FAMILIES, UNFINISHED_AGES};
pub use process::cpu_seconds;
pub use text::escape_label;

use crate::collector::{Account, Collector, Snapshot};
use crate::task::TaskType;
use families::{Labels, Row, Scrape, Source};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// The exposition format we write.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `vendor="…",account="…"`, escaped.
pub fn account_labels(a: &Account) -> String {
    format!(
        "vendor=\"{}\",account=\"{}\"",
        a.kind.as_str(),
        escape_label(&a.name)
    )
}

/// One account's cached families, one string per [`FAMILIES`] entry (empty
/// for entries that are not cached).
type Block = Box<[String]>;

/// An account's label sets and cached block, and the generation the block
/// was rendered at.
#[derive(Clone)]
struct Slot {
    /// The account the slot belongs to, so a renderer never serves one
    /// account's text for another: after a reload replaced or removed
    /// accounts, or when handed another collector. Weak, so a removed
    /// account is freed, yet its address cannot be reused while the slot
    /// exists.
    account: Weak<Account>,
    generation: u64,
    labels: Arc<Labels>,
    block: Arc<Block>,
}

/// Renders `/metrics`, reusing each account's cached families while the
/// account is unchanged: most accounts are served from cache on most
/// scrapes, and their text is the same until they refresh.
#[derive(Default)]
pub struct Renderer {
    slots: Mutex<Vec<Option<Slot>>>,
    /// Length of the last exposition, to size the next one.
    last_len: AtomicUsize,
}

/// One account during a scrape.
struct Current {
    labels: Arc<Labels>,
    snapshot: Arc<Snapshot>,
    block: Arc<Block>,
}

impl Renderer {
    /// An empty renderer.
    pub fn new() -> Self {
        Renderer::default()
    }

    fn accounts(&self, list: &[Arc<Account>]) -> Vec<Current> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        // Slots beyond the accounts now configured (removed by a reload)
        // go, with their text.
        slots.resize(list.len(), None);
        // Sizes a new block like the last one rendered (accounts are alike).
        let mut hint: Option<Arc<Block>> = slots.iter().flatten().last().map(|s| s.block.clone());
        list.iter()
            .zip(slots.iter_mut())
            .map(|(a, slot)| {
                // Read the generation before the data: a change during
                // rendering makes the next scrape render again.
                let generation = a.stats.generation();
                let snapshot = a.snapshot();
                let mine = slot
                    .as_ref()
                    .filter(|s| std::ptr::eq(s.account.as_ptr(), Arc::as_ptr(a)));
                if let Some(s) = mine.filter(|s| s.generation == generation) {
                    return Current {
                        labels: s.labels.clone(),
                        snapshot,
                        block: s.block.clone(),
                    };
                }
                let labels = mine.map_or_else(|| Arc::new(Labels::new(a)), |s| s.labels.clone());
                let sizes = mine.map(|s| &s.block).or(hint.as_ref());
                let block = Arc::new(render_account(a, &labels, &snapshot, sizes));
                hint = Some(block.clone());
                *slot = Some(Slot {
                    account: Arc::downgrade(a),
                    generation,
                    labels: labels.clone(),
                    block: block.clone(),
                });
                Current {
                    labels,
                    snapshot,
                    block,
                }
            })
            .collect()
    }

    /// Renders every family. `now` is Unix seconds.
    pub fn render(&self, c: &Collector, now: i64) -> String {
        let list = c.accounts();
        let accounts = self.accounts(&list);
        let cached: usize = accounts
            .iter()
            .map(|r| r.block.iter().map(String::len).sum::<usize>())
            .sum();
        let size = self.last_len.load(Ordering::Relaxed).max(cached);
        let mut out = String::with_capacity(size + size / 16 + 4096);
        let scrape = Scrape {
            now,
            started: c.started,
            process: process::sample(),
            shard: c.placement().shard,
            owned: c.accounts().len(),
            reload: c.reload_status(),
        };
        for (i, f) in FAMILIES.iter().enumerate() {
            text::header(&mut out, f.name, f.kind.as_str(), f.help);
            match f.source {
                Source::Cached(_) => {
                    for r in &accounts {
                        out.push_str(&r.block[i]);
                    }
                }
                Source::Live(write) => {
                    for (a, r) in list.iter().zip(&accounts) {
                        let row = Row {
                            a,
                            l: &r.labels,
                            s: &r.snapshot,
                        };
                        write(&mut out, f.name, &row, &scrape);
                    }
                }
                Source::Global(write) => write(&mut out, f.name, &scrape),
            }
        }
        self.last_len.store(out.len(), Ordering::Relaxed);
        out
    }
}

/// Renders every family without reusing anything (tests, one-off dumps).
pub fn render(c: &Collector, now: i64) -> String {
    Renderer::new().render(c, now)
}

/// The cached families of one account; `sizes` is an earlier block whose
/// lengths size the new strings (growing them by doubling costs more than
/// writing them).
fn render_account(a: &Account, l: &Labels, s: &Snapshot, sizes: Option<&Arc<Block>>) -> Block {
    let row = Row { a, l, s };
    FAMILIES
        .iter()
        .enumerate()
        .map(|(i, f)| match f.source {
            Source::Cached(write) => {
                let cap = sizes
                    .and_then(|b| b.get(i))
                    .map_or(256, |s| s.len() + s.len() / 8 + 64);
                let mut out = String::with_capacity(cap);
                write(&mut out, f.name, &row);
                out
            }
            Source::Live(_) | Source::Global(_) => String::new(),
        })
        .collect()
}

/// The task types of `a` (used by the landing page).
pub fn watched(a: &Account) -> String {
    a.task_types
        .iter()
        .map(|t: &TaskType| t.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn the_table_has_one_entry_per_family_with_valid_names() {
        let mut names = HashSet::new();
        for f in &FAMILIES {
            assert!(names.insert(f.name), "{} twice", f.name);
            let valid = |s: &str| {
                s.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            };
            assert!(valid(f.name), "{}", f.name);
            assert!(
                f.labels.iter().all(|l| valid(l) && *l != "le"),
                "{}",
                f.name
            );
            assert_eq!(
                f.kind == Kind::Counter,
                f.name.ends_with("_total"),
                "{}: counters and only counters end in _total",
                f.name
            );
            assert!(!f.help.is_empty() && !f.help.contains('\n'), "{}", f.name);
            // Per-account families carry vendor and account first; the
            // exporter's own (cdn_exporter_*) and process_* carry neither.
            let per_account = f.name.starts_with("cdn_") && !f.name.starts_with("cdn_exporter_");
            assert_eq!(
                f.labels.starts_with(&["vendor", "account"]),
                per_account,
                "{}",
                f.name
            );
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_cpu_seconds_total_is_written_with_its_fraction() {
        process::tests::burn(0.05);
        let f = FAMILIES
            .iter()
            .find(|f| f.name == "process_cpu_seconds_total")
            .unwrap();
        let Source::Global(write) = f.source else {
            panic!("process_cpu_seconds_total is written once per scrape");
        };
        let scrape = Scrape {
            now: 0,
            started: 0,
            process: process::sample(),
            shard: Default::default(),
            owned: 0,
            reload: (true, 0),
        };
        let mut out = String::new();
        write(&mut out, f.name, &scrape);
        let value = out
            .strip_prefix("process_cpu_seconds_total ")
            .and_then(|v| v.trim_end().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{out:?}"));
        assert!(value >= 0.05 && value.fract() != 0.0, "{out:?}");
        assert!(out.trim_end().contains('.'), "{out:?}");
    }

    /// A reload removes `a` and adds `c`: the renderer, reusing cached text
    /// per account, shows exactly the accounts now configured.
    #[test]
    fn a_reload_leaves_no_cached_text_of_removed_accounts() {
        let setups = |names: &[&str]| {
            let mut text = String::from("accounts:\n");
            for n in names {
                text.push_str(&format!(
                    "  - {{ name: {n}, vendor: testing, credentials: {{ id: {n}, secret: x }} }}\n"
                ));
            }
            crate::config::parse(&text, "cfg.yml", &|_| None, &|_| Err("none".into()))
                .unwrap()
                .accounts
        };
        let c = Collector::new(
            setups(&["a", "b"]),
            Arc::new(crate::http::ReqwestTransport::new(1 << 20).unwrap()),
            Arc::new(crate::clock::SystemClock),
        );
        let renderer = Renderer::new();
        let before = renderer.render(&c, 0);
        assert!(before.contains("account=\"a\"") && before.contains("account=\"b\""));
        let s = c.reconfigure(setups(&["b", "c"]));
        assert_eq!((s.kept.len(), s.added.len(), s.removed.len()), (1, 1, 1));
        let after = renderer.render(&c, 0);
        assert!(!after.contains("account=\"a\""), "{after}");
        assert!(after.contains("account=\"b\"") && after.contains("account=\"c\""));
        // Same text as a renderer that never saw the old set.
        assert_eq!(
            after
                .lines()
                .filter(|l| l.contains("account="))
                .collect::<Vec<_>>(),
            render(&c, 0)
                .lines()
                .filter(|l| l.contains("account="))
                .collect::<Vec<_>>()
        );
    }
}
