//! `cdn_tasks_unfinished_older_than`: pending/running tasks counted by age
//! against the clock at each scrape (the stuck-task alert's input).

use cdn_task_exporter::app;
use cdn_task_exporter::clock::{SharedClock, TokioClock};
use cdn_task_exporter::collector::Collector;
use cdn_task_exporter::config;
use cdn_task_exporter::metrics;
use cdn_task_exporter::sim::testing::TestingSim;
use cdn_task_exporter::sim::{RouterTransport, SimTask, World};
use cdn_task_exporter::task::TaskType;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fn task(id: &str, created: i64, runs: Option<i64>) -> SimTask {
    SimTask {
        id: id.into(),
        task_type: TaskType::RefreshFile,
        created_at: created,
        domain: "example.com".into(),
        urls: vec!["https://example.com/a".into()],
        queued_for: 0,
        runs_for: runs,
        fails: false,
    }
}

fn older_than(c: &Collector, age: u32) -> f64 {
    let series = format!(
        "cdn_tasks_unfinished_older_than{{vendor=\"testing\",account=\"a\",task_type=\"refresh_file\",older_than=\"{age}\"}}"
    );
    let text = metrics::render(c, c.clock.unix());
    text.lines()
        .find(|l| l.starts_with(&series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{series} missing"))
}

#[tokio::test(start_paused = true)]
async fn unfinished_tasks_are_counted_by_age_at_each_scrape() {
    let clock: SharedClock = Arc::new(TokioClock::starting_at(T0));
    let world = World::new(clock.clone());
    world.add(task("slow-2h", T0 - 7_200, Some(6 * 3600))); // finishes at T0+4h
    world.add(task("stalled-40m", T0 - 2_400, None));
    world.add(task("finished", T0 - 9_000, Some(60)));
    let sim = TestingSim::new(world.clone(), "tok");
    let yaml = "accounts:\n  - name: a\n    vendor: testing\n    endpoint: http://sim\n    credentials: { id: a, secret: tok }\n    lookback: 3d\n";
    let cfg = config::parse(yaml, "t.yml", &|_| None, &|_| Err("no files".into())).unwrap();
    let c = app::collector(
        &cfg,
        Arc::new(RouterTransport::new(sim.router())),
        clock.clone(),
    );
    c.collect(Instant::now() + Duration::from_secs(9)).await;
    let ages = |c: &Collector| [900, 1800, 3600, 21600, 86400].map(|a| older_than(c, a));
    assert_eq!(ages(&c), [2.0, 2.0, 1.0, 0.0, 0.0]);

    // Three hours later, without a refresh in between: the ages move with the clock.
    tokio::time::advance(Duration::from_secs(3 * 3600)).await;
    assert_eq!(ages(&c), [2.0, 2.0, 2.0, 0.0, 0.0]);
    // At T0+5h a refresh sees the slow task finished: it leaves every bucket.
    tokio::time::advance(Duration::from_secs(2 * 3600)).await;
    c.collect(Instant::now() + Duration::from_secs(9)).await;
    assert_eq!(ages(&c), [1.0, 1.0, 1.0, 0.0, 0.0]);
    // The stalled task passes six hours.
    tokio::time::advance(Duration::from_secs(2 * 3600)).await;
    assert_eq!(ages(&c), [1.0, 1.0, 1.0, 1.0, 0.0]);
}
