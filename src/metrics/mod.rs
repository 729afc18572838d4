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
use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

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
/// for entries that are not cached), and the same strings gzip-compressed.
struct Block {
    text: Box<[String]>,
    /// One gzip member per string of at least [`MEMBER_MIN`] bytes (empty
    /// bytes for a shorter one),
    /// made by the first gzip scrape after the text was rendered: a gzip
    /// stream may be several members one after another, so a scrape sends
    /// these bytes as they are and compresses only what it writes fresh.
    gz: OnceLock<Box<[Vec<u8>]>>,
}

impl Block {
    fn new(text: Box<[String]>) -> Self {
        Block {
            text,
            gz: OnceLock::new(),
        }
    }
}

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
    /// Length of the last gzip exposition.
    last_gz_len: AtomicUsize,
    /// Deflate states to reuse: a new one allocates and clears ~300 KB.
    deflaters: Mutex<Vec<Compress>>,
}

/// One account during a scrape.
struct Current {
    labels: Arc<Labels>,
    snapshot: Arc<Snapshot>,
    block: Arc<Block>,
    /// The block was rendered by this scrape (the account changed).
    changed: bool,
}

/// Where a walk of [`FAMILIES`] writes: the text written fresh on this
/// scrape, and the accounts' cached parts.
trait Sink {
    /// The buffer fresh text is appended to.
    fn fresh(&mut self) -> &mut String;
    /// Appends family `i` of a cached block.
    fn cached(&mut self, block: &Block, i: usize);
}

/// The plain text exposition.
struct Plain(String);

impl Sink for Plain {
    fn fresh(&mut self) -> &mut String {
        &mut self.0
    }
    fn cached(&mut self, block: &Block, i: usize) {
        self.0.push_str(&block.text[i]);
    }
}

/// The gzip exposition: fresh text (and short cached families) is gathered
/// and compressed into one member whenever a cached member follows (and at
/// the end).
struct Gzip<'a> {
    out: Vec<u8>,
    pending: String,
    z: &'a mut Compress,
    /// Compress everything fresh, making no members: most accounts
    /// changed, and resetting the deflate state per member would cost more
    /// than compressing their text in long runs.
    whole: bool,
}

/// Fresh text is cut into members of about this size, so a scrape never
/// holds a second copy of the whole exposition.
const PENDING_MAX: usize = 1 << 20;

impl Gzip<'_> {
    fn flush(&mut self) {
        if !self.pending.is_empty() {
            gzip_member(self.z, self.pending.as_bytes(), &mut self.out);
            self.pending.clear();
        }
    }
}

impl Sink for Gzip<'_> {
    fn fresh(&mut self) -> &mut String {
        if self.pending.len() >= PENDING_MAX {
            self.flush();
        }
        &mut self.pending
    }
    fn cached(&mut self, block: &Block, i: usize) {
        let text = &block.text[i];
        if self.whole || text.len() < MEMBER_MIN {
            self.fresh().push_str(text);
            return;
        }
        let z = &mut *self.z;
        let gz = block.gz.get_or_init(|| {
            block
                .text
                .iter()
                .map(|t| {
                    let mut out = Vec::new();
                    if t.len() >= MEMBER_MIN {
                        gzip_member(z, t.as_bytes(), &mut out);
                    }
                    out
                })
                .collect()
        });
        self.flush();
        self.out.extend_from_slice(&gz[i]);
    }
}

/// Cached families shorter than this are compressed with the fresh text
/// of each scrape instead of as members of their own: a member costs a
/// deflate reset (~230 KB cleared, microseconds) and 18 bytes of framing,
/// more than a line or two of text is worth, and beside the other
/// accounts' lines the text compresses far better (`benches/render.rs`).
const MEMBER_MIN: usize = 2048;

/// The compression level of `/metrics` gzip: fast (level 1), since the
/// exposition is repetitive enough that higher levels gain little and a
/// scrape's CPU matters more (`benches/render.rs`, README *Benchmarks*).
pub const GZIP_LEVEL: u32 = 1;

/// Appends `data` to `out` as one complete gzip member (RFC 1952), using
/// (and resetting) the deflate state `z`.
fn gzip_member(z: &mut Compress, data: &[u8], out: &mut Vec<u8>) {
    // No name, no mtime (the bytes depend only on the text), XFL 4 =
    // fastest, OS 255 = unknown.
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 0xff]);
    z.reset();
    loop {
        out.reserve(data.len() / 4 + 64);
        let consumed = z.total_in() as usize;
        let status = z
            .compress_vec(&data[consumed..], out, FlushCompress::Finish)
            .expect("deflate into a growing buffer cannot fail");
        if status == Status::StreamEnd {
            break;
        }
    }
    let mut crc = Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
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
                        changed: false,
                    };
                }
                let labels = mine.map_or_else(|| Arc::new(Labels::new(a)), |s| s.labels.clone());
                let sizes = mine.map(|s| &s.block).or(hint.as_ref());
                let block = Arc::new(Block::new(render_account(a, &labels, &snapshot, sizes)));
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
                    changed: true,
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
            .map(|r| r.block.text.iter().map(String::len).sum::<usize>())
            .sum();
        let size = self.last_len.load(Ordering::Relaxed).max(cached);
        let mut out = Plain(String::with_capacity(size + size / 16 + 4096));
        walk(c, &list, &accounts, now, &mut out);
        self.last_len.store(out.0.len(), Ordering::Relaxed);
        out.0
    }

    /// Renders every family as a gzip stream (several members; any gzip
    /// reader, Prometheus' included, reads them as one text). Cached
    /// families are compressed once per change of their account — unless
    /// more than half of the accounts changed since the last scrape: then
    /// everything is compressed in long runs, which is cheaper than
    /// making that many members.
    pub fn render_gzip(&self, c: &Collector, now: i64) -> Vec<u8> {
        let list = c.accounts();
        let accounts = self.accounts(&list);
        let mut z = self
            .deflaters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_else(|| Compress::new(Compression::new(GZIP_LEVEL), false));
        let changed = accounts.iter().filter(|r| r.changed).count();
        let mut out = Gzip {
            out: Vec::with_capacity(self.last_gz_len.load(Ordering::Relaxed) + 4096),
            pending: String::with_capacity(PENDING_MAX + (64 << 10)),
            z: &mut z,
            whole: changed * 2 > accounts.len(),
        };
        walk(c, &list, &accounts, now, &mut out);
        out.flush();
        let body = out.out;
        self.deflaters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(z);
        self.last_gz_len.store(body.len(), Ordering::Relaxed);
        body
    }
}

/// Writes every family of [`FAMILIES`] in order into `out`.
fn walk(c: &Collector, list: &[Arc<Account>], accounts: &[Current], now: i64, out: &mut impl Sink) {
    let scrape = Scrape {
        now,
        started: c.started,
        process: process::sample(),
        shard: c.placement().shard,
        owned: list.len(),
        reload: c.reload_status(),
    };
    for (i, f) in FAMILIES.iter().enumerate() {
        text::header(out.fresh(), f.name, f.kind.as_str(), f.help);
        match f.source {
            Source::Cached(_) => {
                for r in accounts {
                    out.cached(&r.block, i);
                }
            }
            Source::Live(write) => {
                let fresh = out.fresh();
                for (a, r) in list.iter().zip(accounts) {
                    let row = Row {
                        a,
                        l: &r.labels,
                        s: &r.snapshot,
                    };
                    write(fresh, f.name, &row, &scrape);
                }
            }
            Source::Global(write) => write(out.fresh(), f.name, &scrape),
        }
    }
}

/// Renders every family without reusing anything (tests, one-off dumps).
pub fn render(c: &Collector, now: i64) -> String {
    Renderer::new().render(c, now)
}

/// The cached families of one account; `sizes` is an earlier block whose
/// lengths size the new strings (growing them by doubling costs more than
/// writing them).
fn render_account(
    a: &Account,
    l: &Labels,
    s: &Snapshot,
    sizes: Option<&Arc<Block>>,
) -> Box<[String]> {
    let row = Row { a, l, s };
    FAMILIES
        .iter()
        .enumerate()
        .map(|(i, f)| match f.source {
            Source::Cached(write) => {
                let cap = sizes
                    .and_then(|b| b.text.get(i))
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
