//! State on disk (`--storage.path`): what lets a restart lose no task, count
//! nothing twice and never spend the vendor budget twice.
//!
//! Per account, two files:
//! - `<account>.state`: the sync state (cache, coverage, counting baseline),
//!   replaced atomically — written to a temp file, fsynced, renamed over the
//!   old one, directory fsynced — so a crash at any moment leaves either the
//!   previous good file or the new one, never a torn one. A header carries a
//!   magic, the format version, the account's config fingerprint and a
//!   SHA-256 of the body, so a truncated, corrupt, foreign or other-config
//!   file is recognised and dropped with one log line (the account starts
//!   fresh) instead of being half-read.
//! - `<account>.journal`: the budget log, appended *before* each request is
//!   sent (fsynced for scarce APIs, whose window is a minute or longer), so a
//!   SIGKILL between two state writes cannot make the next process spend a
//!   CDNetworks fetch permit (1 per 5 minutes) again. It is compacted to the
//!   permits still inside their window at start and at every state write.
//!
//! Why files and not an embedded database (redb, sled): the state is one
//! small document per account, written whole every minute and read once at
//! start; an atomic rename gives the same crash safety with no new crate, no
//! file locking and a format `jq` can read (the body is JSON). The journal is
//! a few lines per request, which no database makes cheaper than `write` +
//! `fsync`.
//!
//! Nothing here is a secret: the fingerprint is a hash of the vendor,
//! endpoint and key *id* (never the key), and task ids are the vendor's.

use crate::clock::SharedClock;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// First word of a state file.
const STATE_MAGIC: &str = "cdn-task-exporter-state";
/// First word of a journal.
const JOURNAL_MAGIC: &str = "cdn-task-exporter-journal";
/// Format version this build reads and writes.
pub const VERSION: u32 = 1;

/// Why a state file was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    #[error("cannot read it: {0}")]
    Unreadable(String),
    #[error("it is not a cdn-task-exporter state file")]
    Foreign,
    #[error("it has format version {0}; this build reads version {VERSION}")]
    Version(String),
    #[error("it was written for another configuration of this account (vendor, endpoint, key id or task types changed)")]
    OtherConfig,
    #[error("it is truncated: {got} of {want} body bytes")]
    Truncated { got: usize, want: usize },
    #[error("its checksum does not match its contents (corrupt)")]
    Checksum,
    #[error("its body cannot be read: {0}")]
    Body(String),
}

/// Wraps `body` in the versioned, checksummed format:
/// `cdn-task-exporter-state 1 <fingerprint> <sha256 hex> <length>\n<body>`.
pub fn encode(fingerprint: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{STATE_MAGIC} {VERSION} {fingerprint} {} {}\n",
        hex::encode(Sha256::digest(body)),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The body of a file written by [`encode`] for `fingerprint`, or why not.
pub fn decode<'a>(fingerprint: &str, bytes: &'a [u8]) -> Result<&'a [u8], Unusable> {
    let nl = bytes
        .iter()
        .position(|b| *b == b'\n')
        .ok_or(Unusable::Foreign)?;
    let header = std::str::from_utf8(&bytes[..nl]).map_err(|_| Unusable::Foreign)?;
    let body = &bytes[nl + 1..];
    let mut words = header.split(' ');
    check_magic_and_version(&mut words, STATE_MAGIC)?;
    let (Some(fp), Some(sum), Some(len), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(Unusable::Foreign);
    };
    let want: usize = len.parse().map_err(|_| Unusable::Foreign)?;
    if fp != fingerprint {
        return Err(Unusable::OtherConfig);
    }
    if body.len() < want {
        return Err(Unusable::Truncated {
            got: body.len(),
            want,
        });
    }
    if body.len() > want || hex::encode(Sha256::digest(body)) != sum {
        return Err(Unusable::Checksum);
    }
    Ok(body)
}

/// A fingerprint of what an account's state depends on, without secrets:
/// SHA-256 over the given parts (vendor, endpoint, key id, task types).
pub fn fingerprint(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

/// The state directory.
#[derive(Clone)]
pub struct StateStore {
    dir: PathBuf,
    clock: SharedClock,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl StateStore {
    /// Uses `dir`, creating it if needed, and removes temp files a crash
    /// during a write left behind.
    pub fn open(dir: &Path, clock: SharedClock) -> io::Result<StateStore> {
        fs::create_dir_all(dir)?;
        let probe = dir.join(".write-test.tmp");
        File::create(&probe)?;
        let _ = fs::remove_file(&probe);
        for entry in fs::read_dir(dir)?.flatten() {
            if entry.path().extension().is_some_and(|e| e == "tmp") {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(StateStore {
            dir: dir.to_owned(),
            clock,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// File name stem of `account`: its name with anything but
    /// `[A-Za-z0-9_-]` replaced, plus a short hash so that two names
    /// differing only in replaced characters never share a file.
    pub fn stem(account: &str) -> String {
        let safe: String = account
            .chars()
            .take(64)
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!(
            "{safe}-{}",
            &hex::encode(Sha256::digest(account.as_bytes()))[..8]
        )
    }

    /// Path of the state file of `account`.
    pub fn state_path(&self, account: &str) -> PathBuf {
        self.dir.join(format!("{}.state", Self::stem(account)))
    }

    /// Path of the budget journal of `account`.
    pub fn journal_path(&self, account: &str) -> PathBuf {
        self.dir.join(format!("{}.journal", Self::stem(account)))
    }

    /// The saved body of `account`; `Ok(None)` when there is none.
    pub fn load(&self, account: &str, fingerprint: &str) -> Result<Option<Vec<u8>>, Unusable> {
        let bytes = match fs::read(self.state_path(account)) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Unusable::Unreadable(e.to_string())),
        };
        decode(fingerprint, &bytes).map(|b| Some(b.to_vec()))
    }

    /// Replaces the state of `account` atomically.
    pub fn save(&self, account: &str, fingerprint: &str, body: &[u8]) -> io::Result<()> {
        replace(&self.state_path(account), &encode(fingerprint, body), true)
    }

    /// Removes the files of accounts not in `configured`: their state would
    /// only be stale by the time they came back.
    pub fn prune(&self, configured: &[&str]) {
        let keep: Vec<String> = configured.iter().map(|a| Self::stem(a)).collect();
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let ours = path
                .extension()
                .is_some_and(|e| e == "state" || e == "journal");
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            if ours && !keep.iter().any(|k| k == stem) {
                match fs::remove_file(&path) {
                    Ok(()) => {
                        tracing::info!(file = %path.display(), "removed the state of an account no longer configured")
                    }
                    Err(e) => {
                        tracing::warn!(file = %path.display(), error = %e, "cannot remove the state of an account no longer configured")
                    }
                }
            }
        }
    }

    /// Opens the budget journal of `account` and returns what it recorded
    /// (one clear log line if it was unusable; the budget then starts empty).
    pub fn journal(&self, account: &str, fingerprint: &str, apis: usize) -> (Journal, Recorded) {
        let path = self.journal_path(account);
        let now_ms = self.clock.now().timestamp_millis();
        let recorded = match fs::read(&path) {
            Ok(bytes) => match parse_journal(&bytes, fingerprint, apis, now_ms) {
                Ok(r) => r,
                Err(why) => {
                    tracing::warn!(account = %account, file = %path.display(), problem = %why, "budget journal unusable; the account's budget starts empty");
                    Recorded::default()
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Recorded::default(),
            Err(e) => {
                tracing::warn!(account = %account, file = %path.display(), error = %e, "cannot read the budget journal; the account's budget starts empty");
                Recorded::default()
            }
        };
        let journal = Journal {
            path,
            header: format!("{JOURNAL_MAGIC} {VERSION} {fingerprint}\n"),
            clock: self.clock.clone(),
            file: Mutex::new(None),
            account: account.to_owned(),
            warned: std::sync::atomic::AtomicBool::new(false),
        };
        (journal, recorded)
    }
}

/// Writes `bytes` to `path` so that a crash leaves the old or the new file:
/// temp file, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, false)
}

/// [`write_atomic`]; `state_file` writes are the ones fault injection counts.
fn replace(path: &Path, bytes: &[u8], state_file: bool) -> io::Result<()> {
    // A temp name of its own per write: the state file and the journal of
    // an account, or two writes of one file, never share a temp file.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    let tmp = path.with_file_name(format!("{name}.{n}.tmp"));
    {
        let mut f = File::create(&tmp)?;
        if state_file {
            fault::write(&mut f, bytes)?;
        } else {
            f.write_all(bytes)?;
        }
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        // Makes the rename itself durable; not possible on every platform.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Fault injection for the crash tests: `CDN_EXPORTER_STATE_FAULT=abort:N`
/// makes the N-th state file write stop the process half-way through
/// writing its temp file. Honoured only in builds with the simulators (`sim` feature).
mod fault {
    use std::io::{self, Write};

    #[cfg(feature = "sim")]
    pub fn write(f: &mut std::fs::File, bytes: &[u8]) -> io::Result<()> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let n = WRITES.fetch_add(1, Ordering::SeqCst) + 1;
        let abort_at = std::env::var("CDN_EXPORTER_STATE_FAULT")
            .ok()
            .and_then(|v| v.strip_prefix("abort:").and_then(|n| n.parse::<u64>().ok()));
        if abort_at == Some(n) {
            f.write_all(&bytes[..bytes.len() / 2])?;
            f.sync_all()?;
            eprintln!("state fault injected: aborting during state write {n}");
            std::process::abort();
        }
        f.write_all(bytes)
    }

    #[cfg(not(feature = "sim"))]
    pub fn write(f: &mut std::fs::File, bytes: &[u8]) -> io::Result<()> {
        f.write_all(bytes)
    }
}

/// What a journal recorded, per API: the permits still possibly inside a
/// window, as Unix milliseconds of the latest instant the vendor can have
/// received each, and the latest throttling block.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Recorded {
    pub sent: Vec<Vec<i64>>,
    pub blocked_until: Vec<Option<i64>>,
}

/// Reads a journal. A permit taken but never released was in flight when
/// the process stopped: the vendor can have received it until then, so it
/// counts from now (the latest possible). Times in the future (the wall
/// clock went back) count from now too: never earlier than recorded.
/// A torn last line (a crash mid-append) is skipped.
fn parse_journal(
    bytes: &[u8],
    fingerprint: &str,
    apis: usize,
    now_ms: i64,
) -> Result<Recorded, Unusable> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.split('\n');
    let header = lines.next().unwrap_or("");
    let mut words = header.split(' ');
    check_magic_and_version(&mut words, JOURNAL_MAGIC)?;
    if words.next() != Some(fingerprint) {
        return Err(Unusable::OtherConfig);
    }
    let mut acquired: HashMap<(usize, u64), i64> = HashMap::new();
    let mut released: HashMap<(usize, u64), i64> = HashMap::new();
    let mut out = Recorded {
        sent: vec![Vec::new(); apis],
        blocked_until: vec![None; apis],
    };
    for line in lines {
        let w: Vec<&str> = line.split(' ').collect();
        let num = |i: usize| w.get(i).and_then(|v| v.parse::<i64>().ok());
        let (Some(api), Some(last)) = (num(1), num(w.len().saturating_sub(1))) else {
            continue;
        };
        let Ok(api) = usize::try_from(api) else {
            continue;
        };
        if api >= apis {
            continue;
        }
        match (w[0], w.len(), num(2)) {
            ("a", 4, Some(id)) => {
                acquired.insert((api, id as u64), last);
            }
            ("r", 4, Some(id)) => {
                released.insert((api, id as u64), last);
            }
            ("b", 3, _) => {
                let b = &mut out.blocked_until[api];
                *b = Some(b.map_or(last, |x| x.max(last)));
            }
            _ => {}
        }
    }
    for ((api, id), at) in acquired {
        let latest = released.get(&(api, id)).copied().unwrap_or(now_ms).max(at);
        out.sent[api].push(latest.min(now_ms));
    }
    for s in &mut out.sent {
        s.sort_unstable();
    }
    for b in &mut out.blocked_until {
        *b = b.filter(|until| *until > now_ms);
    }
    Ok(out)
}

/// The budget journal of one account: the permit log as it happens.
pub struct Journal {
    path: PathBuf,
    header: String,
    clock: SharedClock,
    file: Mutex<Option<File>>,
    account: String,
    warned: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// One permit of the budget's log, for [`Journal::compact`].
#[derive(Debug, Clone, Copy)]
pub struct Logged {
    pub api: usize,
    pub id: u64,
    /// Unix ms: the permit's time, or the answer's once released.
    pub at_ms: i64,
    pub in_flight: bool,
}

impl Journal {
    /// Now, Unix milliseconds, by the account's clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    fn append(&self, line: &str, durable: bool) {
        let mut g = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let result = (|| {
            if g.is_none() {
                let mut f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?;
                if f.metadata()?.len() == 0 {
                    f.write_all(self.header.as_bytes())?;
                }
                *g = Some(f);
            }
            let f = g.as_mut().expect("opened above");
            f.write_all(line.as_bytes())?;
            if durable {
                f.sync_data()?;
            }
            Ok::<(), io::Error>(())
        })();
        if let Err(e) = result {
            *g = None;
            // Once per process: a full or read-only disk would otherwise log
            // on every request. The request still goes; a restart may then
            // spend this permit again.
            if !self.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(account = %self.account, file = %self.path.display(), error = %e, "cannot write the budget journal; a restart may spend these permits again");
            }
        }
    }

    /// A permit was taken; `durable` (scarce APIs) fsyncs before returning,
    /// so the record is on disk before the request leaves.
    pub fn acquired(&self, api: usize, id: u64, durable: bool) {
        self.append(&format!("a {api} {id} {}\n", self.now_ms()), durable);
    }

    /// The exchange of a permit ended (not fsynced: losing it only makes
    /// the next process count the permit from its start, later).
    pub fn released(&self, api: usize, id: u64) {
        self.append(&format!("r {api} {id} {}\n", self.now_ms()), false);
    }

    /// A throttling answer blocked `api` until `until_ms`.
    pub fn blocked(&self, api: usize, until_ms: i64, durable: bool) {
        self.append(&format!("b {api} {until_ms}\n"), durable);
    }

    /// Rewrites the journal with only `log` (the permits still in their
    /// windows) and `blocked`, atomically. Holds the journal's lock, so no
    /// append lands in the replaced file.
    pub fn compact(&self, log: &[Logged], blocked: &[(usize, i64)]) -> io::Result<()> {
        let mut g = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let mut text = self.header.clone();
        for e in log {
            text.push_str(&format!("a {} {} {}\n", e.api, e.id, e.at_ms));
            if !e.in_flight {
                text.push_str(&format!("r {} {} {}\n", e.api, e.id, e.at_ms));
            }
        }
        for (api, until) in blocked {
            text.push_str(&format!("b {api} {until}\n"));
        }
        *g = None;
        write_atomic(&self.path, text.as_bytes())
    }
}

/// The first two words of a header: our magic, then our format version.
fn check_magic_and_version<'a>(
    words: &mut impl Iterator<Item = &'a str>,
    magic: &str,
) -> Result<(), Unusable> {
    if words.next() != Some(magic) {
        return Err(Unusable::Foreign);
    }
    match words.next() {
        Some(v) if v == VERSION.to_string() => Ok(()),
        v => Err(Unusable::Version(
            v.unwrap_or("").chars().take(20).collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TokioClock;
    use std::sync::Arc;

    const FP: &str = "0123456789abcdef";

    #[test]
    fn round_trip() {
        let body = br#"{"tasks":[1,2,3]}"#;
        let bytes = encode(FP, body);
        assert_eq!(decode(FP, &bytes).unwrap(), body);
        assert_eq!(decode(FP, &encode(FP, b"")).unwrap(), b"");
    }

    #[test]
    fn every_kind_of_damage_is_named() {
        let bytes = encode(FP, b"{\"a\":1}");
        let cut = &bytes[..bytes.len() - 2];
        assert_eq!(
            decode(FP, cut),
            Err(Unusable::Truncated { got: 5, want: 7 })
        );
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(decode(FP, &flipped), Err(Unusable::Checksum));
        let mut longer = bytes.clone();
        longer.push(b' ');
        assert_eq!(decode(FP, &longer), Err(Unusable::Checksum));
        assert_eq!(decode("ffff", &bytes), Err(Unusable::OtherConfig));
        let v2 = String::from_utf8(bytes.clone())
            .unwrap()
            .replacen(" 1 ", " 2 ", 1);
        assert_eq!(
            decode(FP, v2.as_bytes()),
            Err(Unusable::Version("2".into()))
        );
        for foreign in [&b""[..], b"{\"a\":1}", b"PK\x03\x04\n", &bytes[..10]] {
            assert_eq!(decode(FP, foreign), Err(Unusable::Foreign), "{foreign:?}");
        }
        // The header alone: every body byte lost.
        let header_only = &bytes[..bytes.iter().position(|b| *b == b'\n').unwrap() + 1];
        assert!(matches!(
            decode(FP, header_only),
            Err(Unusable::Truncated { got: 0, .. })
        ));
    }

    #[test]
    fn fingerprints_differ_by_part_and_hide_their_input() {
        let a = fingerprint(&["aliyun", "https://cdn.aliyuncs.com", "LTAIkey"]);
        assert_eq!(a.len(), 32);
        assert_ne!(
            a,
            fingerprint(&["aliyun", "https://cdn.aliyuncs.com", "LTAIkez"])
        );
        assert_ne!(fingerprint(&["ab", "c"]), fingerprint(&["a", "bc"]));
        assert!(!a.contains("LTAI"));
    }

    #[test]
    fn stems_are_safe_and_distinct() {
        assert!(StateStore::stem("prod").starts_with("prod-"));
        let odd = StateStore::stem("../x y");
        assert!(odd.starts_with("___x_y-"), "{odd}");
        assert_ne!(StateStore::stem("a b"), StateStore::stem("a_b"));
    }

    #[test]
    fn journal_keeps_in_flight_permits_at_now_and_never_earlier() {
        let now = 1_000_000;
        let j = format!(
            "{JOURNAL_MAGIC} 1 {FP}\na 0 1 900000\nr 0 1 900500\na 0 2 990000\n\
             a 1 0 2000000\nr 1 0 2000001\nb 0 1005000\nb 1 10\na 7 0 5\nr 0 9"
        );
        let r = parse_journal(j.as_bytes(), FP, 2, now).unwrap();
        // Released: from the answer. In flight at the stop: from now.
        // From the future (clock went back): from now.
        assert_eq!(r.sent, vec![vec![900_500, now], vec![now]]);
        assert_eq!(r.blocked_until, vec![Some(1_005_000), None]);
        let other = format!("{JOURNAL_MAGIC} 1 other\na 0 1 900000\n");
        assert_eq!(
            parse_journal(other.as_bytes(), FP, 2, now),
            Err(Unusable::OtherConfig)
        );
        assert_eq!(
            parse_journal(b"garbage", FP, 2, now),
            Err(Unusable::Foreign)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn journal_appends_and_compacts_atomically() {
        let dir = std::env::temp_dir().join(format!("state-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let clock: SharedClock = Arc::new(TokioClock::starting_at(1_700_000_000));
        let store = StateStore::open(&dir, clock).unwrap();
        let (j, rec) = store.journal("a", FP, 1);
        assert_eq!(rec, Recorded::default());
        j.acquired(0, 0, true);
        tokio::time::advance(std::time::Duration::from_millis(1500)).await;
        j.released(0, 0);
        j.acquired(0, 1, true);
        let (_, rec) = store.journal("a", FP, 1);
        let now = 1_700_000_001_500;
        assert_eq!(rec.sent, vec![vec![now, now]]);
        j.compact(
            &[Logged {
                api: 0,
                id: 5,
                at_ms: now - 10,
                in_flight: false,
            }],
            &[(0, now + 60_000)],
        )
        .unwrap();
        j.acquired(0, 6, false);
        let (_, rec) = store.journal("a", FP, 1);
        assert_eq!(rec.sent, vec![vec![now - 10, now]]);
        assert_eq!(rec.blocked_until, vec![Some(now + 60_000)]);
        store.prune(&["b"]);
        assert!(!store.journal_path("a").exists());
        let _ = fs::remove_dir_all(&dir);
    }
}
