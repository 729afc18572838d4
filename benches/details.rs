//! Bytes per kept task of the task details store (issue 14): the store full
//! at its default caps (1000 failed, 1000 unfinished, 100 recent per
//! account), every task with 20 URLs of a realistic length, and the same
//! with `urls: false`. Prints figures; `cargo bench --bench details`.

use cdn_task_exporter::collector::details::{DetailStore, Set};
use cdn_task_exporter::config::DetailSettings;
use cdn_task_exporter::task::{Task, TaskStatus, TaskType};

fn task(i: u64, status: TaskStatus, urls: usize) -> Task {
    Task {
        id: format!("{:016x}", 0x0123_4567_0000_0000u64 + i),
        task_type: TaskType::RefreshFile,
        status,
        url_count: urls as u32,
        urls: (0..urls)
            .map(|u| format!("https://www.example.com/static/assets/{i}/bundle-{u:04}.min.js?auth_key=1764678000-0-0-9f3a2b"))
            .collect(),
        domain: Some("www.example.com".into()),
        created_at: 1_764_600_000 + i as i64,
        finished_at: status.is_finished().then_some(1_764_600_100 + i as i64),
        progress: Some(1.0),
        error: (status == TaskStatus::Failed).then(|| "Origin Return StatusCode 5XX".into()),
    }
}

fn fill(settings: DetailSettings) -> (usize, usize, std::time::Duration) {
    let mut s = DetailStore::new(settings);
    let t0 = std::time::Instant::now();
    let mut n = 0u64;
    for (status, count) in [
        (TaskStatus::Failed, 1000),
        (TaskStatus::Running, 1000),
        (TaskStatus::Success, 100),
    ] {
        for _ in 0..count {
            n += 1;
            s.observe(&task(n, status, 25), 1_764_700_000);
        }
    }
    let took = t0.elapsed();
    let kept = Set::ALL.iter().map(|x| s.len(*x)).sum();
    (kept, s.heap_bytes(), took)
}

fn main() {
    for (name, settings) in [
        (
            "defaults (20 URLs kept of 25, queries stripped)",
            DetailSettings::default(),
        ),
        (
            "urls: false",
            DetailSettings {
                urls: false,
                ..DetailSettings::default()
            },
        ),
    ] {
        let (kept, bytes, took) = fill(settings);
        println!(
            "details store, {name}: {kept} tasks, {bytes} bytes ({} bytes per kept task), filled in {took:?}",
            bytes / kept.max(1)
        );
    }
}
