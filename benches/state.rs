//! The state file (issue 13): its size per 100,000 cached tasks and the time
//! to write it (cache export, JSON, checksum, temp file, fsync, rename) and
//! to read it back, on the disk under `$TMPDIR`. Prints figures;
//! `cargo bench --bench state`.

use cdn_task_exporter::clock::SystemClock;
use cdn_task_exporter::collector::cache::{CacheState, TaskCache};
use cdn_task_exporter::state::StateStore;
use cdn_task_exporter::task::{Task, TaskStatus, TaskType};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// 100,000 tasks a day apart by 0.86 s, 1 % still unfinished (they keep
/// their id text, as in the cache).
fn cache(n: u64) -> TaskCache {
    let mut c = TaskCache::new(n as usize + 1);
    for i in 0..n {
        let status = if i % 100 == 0 {
            TaskStatus::Running
        } else {
            TaskStatus::Success
        };
        let t = Task {
            id: format!("{:016x}", 0x0123_4567_0000_0000u64 + i * 7919),
            task_type: TaskType::ALL[(i % 5) as usize],
            status,
            url_count: 1 + (i % 20) as u32,
            urls: Vec::new(),
            domain: None,
            created_at: 1_764_600_000 + (i * 86_400 / n) as i64,
            finished_at: status
                .is_finished()
                .then_some(1_764_600_100 + (i * 86_400 / n) as i64),
            progress: Some(1.0),
            error: None,
        };
        c.upsert(&t, (i % 3) as u8, 0);
    }
    c
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let dir = std::env::temp_dir().join(format!("cdn-state-bench-{}", std::process::id()));
    let store = StateStore::open(&dir, Arc::new(SystemClock)).expect("state dir");
    for n in [100_000u64, 1_000_000] {
        let c = cache(n);
        let (mut write, mut read) = (Vec::new(), Vec::new());
        let mut size = 0;
        for _ in 0..5 {
            let t0 = Instant::now();
            let body = serde_json::to_vec(&c.export()).expect("json");
            store.save("bench", "fp", &body).expect("write");
            write.push(t0.elapsed());
            size = std::fs::metadata(store.state_path("bench"))
                .expect("file")
                .len();
            let t0 = Instant::now();
            let body = store.load("bench", "fp").expect("valid").expect("present");
            let saved: CacheState = serde_json::from_slice(&body).expect("json");
            let back = TaskCache::restore(saved, n as usize + 1);
            read.push(t0.elapsed());
            assert_eq!(back.len(), c.len());
        }
        println!(
            "{n} tasks: state file {:.1} MB ({:.1} bytes/task; {:.2} MB per 100k tasks), write {:?} (median of 5), read+restore {:?}",
            size as f64 / 1e6,
            size as f64 / n as f64,
            size as f64 / n as f64 * 1e5 / 1e6,
            median(write),
            median(read),
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
