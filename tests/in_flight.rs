//! `max_in_flight_per_endpoint`: the accounts on one vendor endpoint share a
//! cap on requests in flight, so their refreshes, due together, never open
//! more connections than the cap (real HTTP on loopback, counted at the
//! simulated vendor's side).

mod common;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use cdn_task_exporter::api::Rate;
use cdn_task_exporter::clock::SystemClock;
use cdn_task_exporter::sim::aliyun::AliyunSim;
use cdn_task_exporter::sim::{Fault, Traffic};
use cdn_task_exporter::vendors::aliyun::APIS;
use common::{collector, frozen_world, reqwest, value};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const AK: &str = "LTAI5tSimAccessKeyId";
const SECRET: &str = "sim-secret-7f3a9c";
const ACCOUNTS: usize = 12;

/// What the vendor's side saw: requests in flight at once (the most) and
/// the connections they came on.
#[derive(Default)]
struct Seen {
    now: AtomicUsize,
    most: AtomicUsize,
    requests: AtomicUsize,
    peers: Mutex<HashSet<SocketAddr>>,
}

async fn count(
    State(seen): State<Arc<Seen>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    seen.peers.lock().unwrap().insert(peer);
    seen.requests.fetch_add(1, Ordering::SeqCst);
    let n = seen.now.fetch_add(1, Ordering::SeqCst) + 1;
    seen.most.fetch_max(n, Ordering::SeqCst);
    // The simulator answers slowly (`Fault::Slow`), so the body is whole
    // by the time the handler returns.
    let res = next.run(req).await;
    seen.now.fetch_sub(1, Ordering::SeqCst);
    res
}

/// `ACCOUNTS` Aliyun accounts on one simulated endpoint that answers every
/// request after 100 ms; the vendor's per-key limit lifted, since the
/// accounts share one key here and the cap, not the budget, is under test.
/// Returns what the vendor saw once every account is up.
async fn run(cap: usize) -> Arc<Seen> {
    let clock = Arc::new(SystemClock);
    let world = frozen_world(
        clock.clone(),
        Traffic {
            seed: 7,
            tasks_per_hour: 20.0,
            ..Traffic::default()
        },
        6,
    );
    let sim = AliyunSim::new(world, AK, SECRET);
    for api in APIS {
        sim.control
            .limit(api.name, Rate::new(100_000, Duration::from_secs(1)));
    }
    sim.control
        .set_fault(Fault::Slow(Duration::from_millis(100)));
    let seen = Arc::new(Seen::default());
    let router = sim
        .router()
        .layer(axum::middleware::from_fn_with_state(seen.clone(), count));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    let mut yaml = format!("max_in_flight_per_endpoint: {cap}\naccounts:\n");
    for i in 0..ACCOUNTS {
        yaml.push_str(&format!(
            "  - name: a{i}\n    vendor: aliyun\n    endpoint: {endpoint}\n    credentials: {{ id: \"{AK}\", secret: \"{SECRET}\" }}\n    lookback: 6h\n"
        ));
    }
    let c = collector(&yaml, reqwest(), clock);
    let (_, m) = common::scrape(&c).await;
    for i in 0..ACCOUNTS {
        let name = format!("a{i}");
        assert_eq!(
            value(
                &m,
                "cdn_vendor_up",
                &[("vendor", "aliyun"), ("account", &name)]
            ),
            Some(1.0),
            "account {name} is up with cap {cap}"
        );
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_on_one_endpoint_share_its_in_flight_cap() {
    let seen = run(3).await;
    let requests = seen.requests.load(Ordering::SeqCst);
    let most = seen.most.load(Ordering::SeqCst);
    let peers = seen.peers.lock().unwrap().len();
    println!("cap 3: {requests} requests, at most {most} in flight, {peers} connections");
    assert!(
        requests >= 2 * ACCOUNTS,
        "every account listed: {requests} requests"
    );
    assert_eq!(most, 3, "the cap is reached and never passed");
    assert!(peers <= 3, "{peers} connections for a cap of 3");
}

/// The same accounts without a binding cap go well past 3 at once, so the
/// test above measures the cap, not the accounts' own pace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_binding_cap_the_same_refreshes_overlap_more() {
    let seen = run(1000).await;
    let most = seen.most.load(Ordering::SeqCst);
    let peers = seen.peers.lock().unwrap().len();
    println!("cap 1000: at most {most} in flight, {peers} connections");
    assert!(most > 3, "{most} in flight at once");
    assert!(peers > 3, "{peers} connections");
}
