//! A stream's pages go together once an answer's total makes their offsets
//! known (Volcengine, Aliyun, UCloud, Tencent): real HTTP on loopback to
//! each vendor's simulator under its published limits, every answer slowed
//! to 500 ms. Read at the vendor's side: as many pages overlap as keep the
//! budget busy, with a quarter to spare (N permits a window W at answer
//! time L: 1.25·N·L/(W+L), so 7 for Volcengine's 15 a second, 5 for
//! Tencent's 10, 3 for UCloud's 5, and Aliyun's 2 need one at a time),
//! never more than 8, the vendor refuses nothing for rate, and `cdn_tasks`
//! equals the simulator's ground truth.

mod common;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use cdn_task_exporter::clock::{SharedClock, SystemClock};
use cdn_task_exporter::sim::{Fault, SimSetup, Traffic};
use cdn_task_exporter::task::{TaskStatus, TaskType};
use cdn_task_exporter::vendors::VendorKind;
use common::{frozen_world, reqwest};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const ID: &str = "paging-key-id";
const SECRET: &str = "paging-secret-value";
/// `Account::paging_width`'s ceiling.
const MAX_WIDTH: usize = 8;

/// Requests in flight at the vendor: now and the most.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    most: AtomicUsize,
}

async fn count(State(f): State<Arc<InFlight>>, req: Request, next: Next) -> Response {
    let n = f.now.fetch_add(1, Ordering::SeqCst) + 1;
    f.most.fetch_max(n, Ordering::SeqCst);
    // `Fault::Slow` delays the answer inside the handler, so the body is
    // whole when it returns.
    let res = next.run(req).await;
    f.now.fetch_sub(1, Ordering::SeqCst);
    res
}

/// Small pages, so 600 tasks make dozens of them per stream.
fn options(kind: VendorKind) -> &'static str {
    match kind {
        VendorKind::Volcengine => {
            "\n    options: { cloud_account_ids: [demo-cloud-account], page_size: 20 }"
        }
        VendorKind::Tencent => "\n    options: { page_size: 50, quota: false }",
        // 2 permits a second at 0.5 s an answer: fewer pages, so the first
        // sync ends within the scrape's deadline.
        VendorKind::Aliyun => "\n    options: { page_size: 50 }",
        _ => "\n    options: { page_size: 20 }",
    }
}

async fn first_sync_pages_together(kind: VendorKind) {
    let spec = kind.spec();
    let clock: SharedClock = Arc::new(SystemClock);
    let world = frozen_world(
        clock.clone(),
        Traffic {
            seed: 11,
            tasks_per_hour: 100.0,
            task_types: spec.task_types.to_vec(),
            ..Traffic::default()
        },
        6,
    );
    let s = (spec.simulator)(&SimSetup {
        world: world.clone(),
        clock: clock.clone(),
        id: ID.into(),
        secret: SECRET.into(),
    });
    s.control.set_fault(Fault::Slow(Duration::from_millis(500)));
    let in_flight = Arc::new(InFlight::default());
    let router = s.router.layer(axum::middleware::from_fn_with_state(
        in_flight.clone(),
        count,
    ));
    let endpoint = common::sim_endpoint(router).await;
    let account = common::Account {
        vendor: kind.as_str(),
        name: "a",
    };
    let yaml = account.yaml(
        &endpoint,
        ID,
        SECRET,
        &format!("    lookback: 8h{}", options(kind)),
    );
    let c = common::collector(&yaml, reqwest(), clock);
    let (_, m) = common::scrape(&c).await;
    assert_eq!(account.up(&m), Some(1.0), "{kind}: up after the first sync");

    let received = s.control.received();
    // Every answer was slowed and none refused (a rate refusal is logged
    // as its error kind).
    let refused: Vec<&str> = received
        .iter()
        .map(|r| r.answer.as_str())
        .filter(|a| *a != "fault_slow")
        .collect();
    assert!(
        refused.is_empty(),
        "{kind}: the vendor refused {} of {}: {:?}",
        refused.len(),
        received.len(),
        &refused[..refused.len().min(5)]
    );
    let most = in_flight.most.load(Ordering::SeqCst);
    println!(
        "{kind}: {} requests, at most {most} in flight",
        received.len()
    );
    if kind == VendorKind::Aliyun {
        assert_eq!(most, 1, "{kind}: 2 a second are reached one at a time");
    } else {
        assert!(most >= 2, "{kind}: pages went one at a time ({most})");
    }
    assert!(most <= MAX_WIDTH, "{kind}: {most} in flight at once");

    let mut exported = HashMap::new();
    for &t in spec.task_types {
        for st in TaskStatus::ALL {
            let n = account
                .tasks(&m, t, st)
                .unwrap_or_else(|| panic!("{kind}: no cdn_tasks {t}/{st}"));
            if n > 0.0 {
                exported.insert((t, st), n as u64);
            }
        }
    }
    let truth: HashMap<(TaskType, TaskStatus), u64> = (s.truth)(world.now() - 8 * 3600)
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(
        exported, truth,
        "{kind}: cdn_tasks against the ground truth"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volcengine_pages_go_together_within_its_limit() {
    first_sync_pages_together(VendorKind::Volcengine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliyun_pages_one_at_a_time_as_its_budget_needs() {
    first_sync_pages_together(VendorKind::Aliyun).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ucloud_pages_go_together_within_its_limit() {
    first_sync_pages_together(VendorKind::Ucloud).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tencent_pages_go_together_within_its_limit() {
    first_sync_pages_together(VendorKind::Tencent).await;
}
