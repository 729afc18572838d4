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
use bytes::Bytes;
use families::{Labels, Row, Scrape, Source};
use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
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

/// One account's cached families, one piece per [`FAMILIES`] entry (empty
/// for entries that are not cached), and the same pieces gzip-compressed.
/// Pieces are `Bytes`, so a scrape hands them to the response body by
/// reference count rather than copying them.
struct Block {
    /// Each piece is the UTF-8 text of a `String`.
    text: Box<[Bytes]>,
    /// One gzip member per piece of at least [`PIECE_MIN`] bytes (empty
    /// for a shorter one), made by the first gzip scrape after the text was
    /// rendered, or with the text once gzip scrapes are seen: a gzip
    /// stream may be several members one after another, so a scrape sends
    /// these bytes as they are and compresses only what it writes fresh.
    gz: OnceLock<Box<[Bytes]>>,
    /// The Unix second the time-dependent pieces ([`Source::Timed`]) were
    /// rendered at.
    at: i64,
    /// Per piece: the first second a time-dependent one no longer holds
    /// (`at` for the others: never served by time).
    until: Box<[i64]>,
    /// Unique for the process's life, unlike an address a freed block's
    /// successor may reuse ([`Runs`] tells blocks apart by it).
    id: u64,
}

/// The next [`Block::id`].
static NEXT_BLOCK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Block {
    fn new((text, until): (Box<[Bytes]>, Box<[i64]>), at: i64) -> Self {
        Block {
            id: NEXT_BLOCK.fetch_add(1, Ordering::Relaxed),
            text,
            gz: OnceLock::new(),
            at,
            until,
        }
    }

    /// Whether time-dependent piece `i` still reads right at `now`.
    fn holds(&self, i: usize, now: i64) -> bool {
        self.at <= now && now < self.until[i]
    }

    /// The gzip members of the pieces, made now if not yet.
    fn members(&self, z: &mut Compress) -> &[Bytes] {
        self.gz.get_or_init(|| {
            self.text
                .iter()
                .map(|t| {
                    let mut out = Vec::new();
                    if t.len() >= PIECE_MIN {
                        gzip_member(z, t, &mut out);
                    }
                    Bytes::from(out)
                })
                .collect()
        })
    }
}

/// A piece as text, for the short pieces a scrape copies.
fn piece_str(piece: &Bytes) -> &str {
    std::str::from_utf8(piece).expect("a piece is the text of a String")
}

/// An account's label sets and cached block, and the generation the block
/// was rendered at.
#[derive(Clone)]
struct Slot {
    /// The account the slot belongs to (the slot's key is its address), so
    /// a renderer never serves one account's text for another: after a
    /// reload replaced or removed accounts, or when handed another
    /// collector. Weak, so a removed account is freed, yet its address
    /// cannot be reused while the slot exists.
    account: Weak<Account>,
    generation: u64,
    labels: Arc<Labels>,
    block: Arc<Block>,
}

/// Renders `/metrics`, reusing each account's cached families while the
/// account is unchanged: most accounts are served from cache on most
/// scrapes, and their text is the same until they refresh. With
/// [`Renderer::prerender`] hooked to the collector's refreshes, an
/// account's families are rendered when its refresh completes, so a
/// scrape renders only the per-scrape families and concatenates the rest.
#[derive(Default)]
pub struct Renderer {
    /// By account address.
    slots: Mutex<HashMap<usize, Slot>>,
    /// Deflate states to reuse: a new one allocates and clears ~300 KB.
    deflaters: Mutex<Vec<Compress>>,
    /// A gzip scrape was served: blocks rendered at refresh time get
    /// their gzip members there too.
    gzip_seen: AtomicBool,
    /// The cached families' pieces of the last plain and the last gzip
    /// scrape.
    runs: [Mutex<Runs>; 2],
}

/// The pieces each cached family took in the last scrape of one encoding,
/// and the blocks they were made from. While no account changed, a scrape
/// hands the same pieces over again: the short families it would copy and
/// compress anew are the same bytes as last time.
#[derive(Default)]
struct Runs {
    /// Block ids, in account order.
    blocks: Vec<u64>,
    /// By family index: `None` until written (and for the per-scrape
    /// families).
    pieces: Vec<Option<Box<[Bytes]>>>,
}

impl Runs {
    /// Forgets the pieces unless `accounts` have the same blocks as when
    /// they were made.
    fn keep_if_same(&mut self, accounts: &[Current]) {
        let same = self.blocks.len() == accounts.len()
            && self
                .blocks
                .iter()
                .zip(accounts)
                .all(|(b, a)| *b == a.block.id);
        if !same {
            self.blocks = accounts.iter().map(|a| a.block.id).collect();
            self.pieces.clear();
        }
        self.pieces.resize(FAMILIES.len(), None);
    }
}

/// One account during a scrape.
struct Current {
    labels: Arc<Labels>,
    snapshot: Arc<Snapshot>,
    block: Arc<Block>,
    /// The block was rendered by this scrape (the account changed since
    /// its last render).
    changed: bool,
}

/// A `/metrics` body: the exposition as pieces, most of them accounts'
/// cached text shared with the renderer. As an HTTP body its length is
/// known up front (sent as `Content-Length`), and each piece is one frame.
#[derive(Debug, Default, Clone)]
pub struct Exposition {
    pieces: std::collections::VecDeque<Bytes>,
    len: u64,
}

impl Exposition {
    fn push(&mut self, piece: Bytes) {
        if !piece.is_empty() {
            self.len += piece.len() as u64;
            self.pieces.push_back(piece);
        }
    }

    /// Total bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Pieces (frames of the body).
    pub fn pieces(&self) -> usize {
        self.pieces.len()
    }

    /// The whole body in one buffer (tests and tools; the server streams).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        for p in &self.pieces {
            out.extend_from_slice(p);
        }
        out
    }
}

impl http_body::Body for Exposition {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let next = self.pieces.pop_front();
        if let Some(p) = &next {
            self.len -= p.len() as u64;
        }
        std::task::Poll::Ready(next.map(|p| Ok(http_body::Frame::data(p))))
    }

    fn is_end_stream(&self) -> bool {
        self.pieces.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.len)
    }
}

/// Where a walk of [`FAMILIES`] writes: the text written fresh on this
/// scrape, and the accounts' cached parts.
trait Sink {
    /// The buffer fresh text is appended to.
    fn fresh(&mut self) -> &mut String;
    /// Appends family `i` of a cached block.
    fn cached(&mut self, block: &Block, i: usize);
    /// Moves everything written so far into the body.
    fn flush(&mut self);
    /// The body so far.
    fn body(&mut self) -> &mut Exposition;
    /// Whether the cached families' pieces are kept for the next scrape
    /// ([`Runs`]); cutting the body at each family has a price where one
    /// long run is cheaper.
    fn keeps_runs(&self) -> bool {
        true
    }
}

/// The plain text exposition: fresh text and short cached pieces are
/// gathered into pieces of their own; cached pieces of [`PIECE_MIN`] bytes
/// or more go into the body as they are.
struct Plain {
    out: Exposition,
    fresh: String,
}

impl Sink for Plain {
    fn flush(&mut self) {
        if !self.fresh.is_empty() {
            let cap = self.fresh.capacity();
            let text = std::mem::replace(&mut self.fresh, String::with_capacity(cap));
            self.out.push(Bytes::from(text));
        }
    }
    fn body(&mut self) -> &mut Exposition {
        &mut self.out
    }
    fn fresh(&mut self) -> &mut String {
        &mut self.fresh
    }
    fn cached(&mut self, block: &Block, i: usize) {
        let piece = &block.text[i];
        if piece.len() < PIECE_MIN {
            self.fresh.push_str(piece_str(piece));
        } else {
            self.flush();
            self.out.push(piece.clone());
        }
    }
}

/// The gzip exposition: fresh text (and short cached families) is gathered
/// and compressed into one member whenever a cached member follows (and at
/// the end).
struct Gzip<'a> {
    out: Exposition,
    /// Compressed fresh text not yet in `out`.
    run: Vec<u8>,
    pending: String,
    z: &'a mut Compress,
    /// Compress everything fresh, making no members: most accounts
    /// changed, and resetting the deflate state per member would cost
    /// more than compressing their text in long runs.
    whole: bool,
}

/// Fresh text is cut into members of about this size, so a scrape never
/// holds a second copy of the whole exposition.
const PENDING_MAX: usize = 1 << 20;

impl Gzip<'_> {
    /// Compresses the pending text into `run`.
    fn compress(&mut self) {
        if !self.pending.is_empty() {
            gzip_member(self.z, self.pending.as_bytes(), &mut self.run);
            self.pending.clear();
        }
    }
}

impl Sink for Gzip<'_> {
    /// Compresses the pending text and moves it into the body.
    fn flush(&mut self) {
        self.compress();
        if !self.run.is_empty() {
            self.out.push(Bytes::from(std::mem::take(&mut self.run)));
        }
    }
    fn body(&mut self) -> &mut Exposition {
        &mut self.out
    }
    /// Not when compressing everything in long runs: most accounts
    /// changed, so the next scrape could reuse little.
    fn keeps_runs(&self) -> bool {
        !self.whole
    }
    fn fresh(&mut self) -> &mut String {
        if self.pending.len() >= PENDING_MAX {
            self.compress();
        }
        &mut self.pending
    }
    fn cached(&mut self, block: &Block, i: usize) {
        let piece = &block.text[i];
        if self.whole || piece.len() < PIECE_MIN {
            self.fresh().push_str(piece_str(piece));
            return;
        }
        let member = block.members(&mut *self.z)[i].clone();
        self.flush();
        self.out.push(member);
    }
}

/// Cached families shorter than this are copied (and compressed) with the
/// fresh text of each scrape instead of being pieces of their own: a
/// piece is a frame of the body (hyper writes at most 16 per system call),
/// a gzip member costs a deflate reset (~230 KB cleared, microseconds) and
/// 18 bytes of framing, more than a line or two of text is worth, and
/// beside the other accounts' lines the text compresses far better
/// (`benches/render.rs`).
const PIECE_MIN: usize = 2048;

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

    fn deflater(&self) -> Compress {
        self.deflaters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_else(|| Compress::new(Compression::new(GZIP_LEVEL), false))
    }

    fn give_back(&self, z: Compress) {
        self.deflaters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(z);
    }

    /// Renders the cached families of `a` now, if they changed since they
    /// were last rendered (and their gzip members, once gzip scrapes are
    /// seen). Meant for the collector's publish hook: it runs on the
    /// refresh task when a refresh completes, so a later scrape finds the
    /// text made. A request counted later (the next refresh) makes the
    /// scrape render the account again, as without this.
    pub fn prerender(&self, a: &Arc<Account>) {
        let key = Arc::as_ptr(a) as usize;
        // Read the generation before the data, as a scrape does.
        let generation = a.stats.generation();
        let snapshot = a.snapshot();
        let (labels, sizes) = {
            let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            match slots.get(&key) {
                Some(s) if s.generation == generation => return,
                Some(s) => (s.labels.clone(), Some(s.block.clone())),
                None => (
                    Arc::new(Labels::new(a)),
                    slots.values().next().map(|s| s.block.clone()),
                ),
            }
        };
        let now = a.now();
        let block = Block::new(
            render_account(a, &labels, &snapshot, sizes.as_ref(), now),
            now,
        );
        if self.gzip_seen.load(Ordering::Relaxed) {
            let mut z = self.deflater();
            block.members(&mut z);
            self.give_back(z);
        }
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        // A scrape may have rendered a newer generation meanwhile.
        if slots.get(&key).is_some_and(|s| s.generation >= generation) {
            return;
        }
        slots.insert(
            key,
            Slot {
                account: Arc::downgrade(a),
                generation,
                labels,
                block: Arc::new(block),
            },
        );
    }

    fn accounts(&self, list: &[Arc<Account>], now: i64) -> Vec<Current> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        // Slots of accounts no longer configured (removed by a reload) go,
        // with their text.
        if slots.len() > list.len() {
            let now: HashSet<usize> = list.iter().map(|a| Arc::as_ptr(a) as usize).collect();
            slots.retain(|k, _| now.contains(k));
        }
        // Sizes a new block like one rendered before (accounts are alike).
        let mut hint: Option<Arc<Block>> = slots.values().next().map(|s| s.block.clone());
        list.iter()
            .map(|a| {
                let key = Arc::as_ptr(a) as usize;
                // Read the generation before the data: a change during
                // rendering makes the next scrape render again.
                let generation = a.stats.generation();
                let snapshot = a.snapshot();
                let mine = slots.get(&key);
                if let Some(s) = mine.filter(|s| s.generation == generation) {
                    debug_assert!(std::ptr::eq(s.account.as_ptr(), Arc::as_ptr(a)));
                    return Current {
                        labels: s.labels.clone(),
                        snapshot,
                        block: s.block.clone(),
                        changed: false,
                    };
                }
                let labels = mine.map_or_else(|| Arc::new(Labels::new(a)), |s| s.labels.clone());
                let sizes = mine.map(|s| s.block.clone()).or(hint.take());
                let block = Arc::new(Block::new(
                    render_account(a, &labels, &snapshot, sizes.as_ref(), now),
                    now,
                ));
                hint = Some(block.clone());
                slots.insert(
                    key,
                    Slot {
                        account: Arc::downgrade(a),
                        generation,
                        labels: labels.clone(),
                        block: block.clone(),
                    },
                );
                Current {
                    labels,
                    snapshot,
                    block,
                    changed: true,
                }
            })
            .collect()
    }

    /// The plain text exposition as a body of pieces. `now` is Unix
    /// seconds.
    pub fn exposition(&self, c: &Collector, now: i64) -> Exposition {
        let list = c.accounts();
        let accounts = self.accounts(&list, now);
        let mut out = Plain {
            out: Exposition::default(),
            fresh: String::with_capacity(64 << 10),
        };
        let mut runs = self.runs[0].lock().unwrap_or_else(|p| p.into_inner());
        walk(c, &list, &accounts, now, &mut runs, &mut out);
        drop(runs);
        out.flush();
        out.out
    }

    /// Renders every family. `now` is Unix seconds.
    pub fn render(&self, c: &Collector, now: i64) -> String {
        String::from_utf8(self.exposition(c, now).to_vec()).expect("the pieces are UTF-8 text")
    }

    /// The exposition as a gzip stream (several members; any gzip reader,
    /// Prometheus' included, reads them as one text). Cached families are
    /// compressed once per change of their account (at refresh time, once
    /// gzip scrapes are seen) — unless this scrape rendered more than half
    /// of the accounts (they changed since their last render): then everything is compressed in long runs, which
    /// is cheaper than making that many members.
    pub fn exposition_gzip(&self, c: &Collector, now: i64) -> Exposition {
        self.gzip_seen.store(true, Ordering::Relaxed);
        let list = c.accounts();
        let accounts = self.accounts(&list, now);
        let mut z = self.deflater();
        let changed = accounts.iter().filter(|r| r.changed).count();
        let mut out = Gzip {
            out: Exposition::default(),
            run: Vec::new(),
            pending: String::with_capacity(PENDING_MAX + (64 << 10)),
            z: &mut z,
            whole: changed * 2 > accounts.len(),
        };
        let mut runs = self.runs[1].lock().unwrap_or_else(|p| p.into_inner());
        walk(c, &list, &accounts, now, &mut runs, &mut out);
        drop(runs);
        out.flush();
        let body = out.out;
        self.give_back(z);
        body
    }

    /// [`Renderer::exposition_gzip`] in one buffer.
    pub fn render_gzip(&self, c: &Collector, now: i64) -> Vec<u8> {
        self.exposition_gzip(c, now).to_vec()
    }
}

/// Writes every family of [`FAMILIES`] in order into `out`.
fn walk(
    c: &Collector,
    list: &[Arc<Account>],
    accounts: &[Current],
    now: i64,
    runs: &mut Runs,
    out: &mut impl Sink,
) {
    runs.keep_if_same(accounts);
    let scrape = Scrape {
        now,
        started: c.started,
        process: process::sample(),
        shard: c.placement().shard,
        owned: list.len(),
        reload: c.reload_status(),
    };
    for (i, f) in FAMILIES.iter().enumerate() {
        if matches!(f.source, Source::Cached(_)) && out.keeps_runs() {
            out.flush();
            if let Some(pieces) = &runs.pieces[i] {
                for p in pieces.iter() {
                    out.body().push(p.clone());
                }
                continue;
            }
            let from = out.body().pieces.len();
            text::header(out.fresh(), f.name, f.kind.as_str(), f.help);
            for r in accounts {
                out.cached(&r.block, i);
            }
            out.flush();
            runs.pieces[i] = Some(out.body().pieces.range(from..).cloned().collect());
            continue;
        }
        text::header(out.fresh(), f.name, f.kind.as_str(), f.help);
        match f.source {
            Source::Cached(_) => {
                for r in accounts {
                    out.cached(&r.block, i);
                }
            }
            Source::Timed(write) => {
                for (a, r) in list.iter().zip(accounts) {
                    if r.block.holds(i, now) {
                        out.cached(&r.block, i);
                    } else {
                        let row = Row {
                            a,
                            l: &r.labels,
                            s: &r.snapshot,
                        };
                        write(out.fresh(), f.name, &row, now);
                    }
                }
            }
            Source::Live(write) => {
                for (a, r) in list.iter().zip(accounts) {
                    let row = Row {
                        a,
                        l: &r.labels,
                        s: &r.snapshot,
                    };
                    write(out.fresh(), f.name, &row, &scrape);
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

/// The cached families of one account, and until when each holds (see
/// [`Block::until`]); `sizes` is an earlier block whose lengths size the new
/// strings (growing them by doubling costs more than writing them). `now`
/// is Unix seconds, for the time-dependent families.
fn render_account(
    a: &Account,
    l: &Labels,
    s: &Snapshot,
    sizes: Option<&Arc<Block>>,
    now: i64,
) -> (Box<[Bytes]>, Box<[i64]>) {
    let row = Row { a, l, s };
    let (text, until): (Vec<Bytes>, Vec<i64>) = FAMILIES
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let cap = || {
                sizes
                    .and_then(|b| b.text.get(i))
                    .map_or(256, |s| s.len() + s.len() / 8 + 64)
            };
            match f.source {
                Source::Cached(write) => {
                    let mut out = String::with_capacity(cap());
                    write(&mut out, f.name, &row);
                    (kept(out), now)
                }
                Source::Timed(write) => {
                    let mut out = String::with_capacity(cap());
                    let until = write(&mut out, f.name, &row, now);
                    (kept(out), until)
                }
                Source::Live(_) | Source::Global(_) => (Bytes::new(), now),
            }
        })
        .unzip();
    (text.into(), until.into())
}

/// `text` as a piece to keep: without the capacity left over from sizing
/// it (an eighth of 26 MB at 1,000 accounts).
fn kept(mut text: String) -> Bytes {
    text.shrink_to_fit();
    Bytes::from(text)
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

    #[test]
    fn a_steady_scrape_hands_over_the_same_pieces_and_a_change_is_never_served_stale() {
        let text = "accounts:\n  - { name: a, vendor: testing, credentials: { id: a, secret: x } }\n  - { name: b, vendor: testing, credentials: { id: b, secret: x } }\n";
        let setups = crate::config::parse(text, "cfg.yml", &|_| None, &|_| Err("none".into()))
            .unwrap()
            .accounts;
        let c = Collector::new(
            setups,
            Arc::new(crate::http::ReqwestTransport::new(1 << 20).unwrap()),
            Arc::new(crate::clock::SystemClock),
        );
        let renderer = Renderer::new();
        let shared = |x: &Exposition, y: &Exposition| {
            x.pieces
                .iter()
                .filter(|p| y.pieces.iter().any(|q| q.as_ptr() == p.as_ptr()))
                .count()
        };
        // Accounts' lines only: the process families change between scrapes.
        let lines = |t: &str| {
            t.lines()
                .filter(|l| l.contains("account="))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let text = |e: &Exposition| String::from_utf8(e.to_vec()).unwrap();
        let first = renderer.exposition(&c, 0);
        let second = renderer.exposition(&c, 0);
        assert!(lines(&text(&first)) == lines(&text(&second)));
        assert!(
            shared(&second, &first) >= 10,
            "the cached families' pieces are handed over again"
        );
        // A request counted: account a's text changes, and the scrape
        // writes it, not the pieces of before.
        let a = &c.accounts()[0];
        a.stats.count(0, crate::vendors::Outcome::Throttled);
        let third = text(&renderer.exposition(&c, 0));
        assert!(third.contains(
            "cdn_vendor_api_requests_total{vendor=\"testing\",account=\"a\",api=\"ListTasks\",outcome=\"throttled\"} 1"
        ));
        assert!(lines(&third) == lines(&render(&c, 0)));
        let gz = |e: Exposition| {
            let mut out = String::new();
            std::io::Read::read_to_string(
                &mut flate2::read::MultiGzDecoder::new(&e.to_vec()[..]),
                &mut out,
            )
            .unwrap();
            out
        };
        let g1 = gz(renderer.exposition_gzip(&c, 0));
        a.stats.count(0, crate::vendors::Outcome::Throttled);
        let g2 = gz(renderer.exposition_gzip(&c, 0));
        assert!(g2.contains("outcome=\"throttled\"} 2"));
        assert!(lines(&g1) != lines(&g2));
        assert!(lines(&g2) == lines(&gz(renderer.exposition_gzip(&c, 0))));
        assert!(lines(&g2) == lines(&render(&c, 0)));
    }
}
