//! `/metrics` gzip (issue 19 part 2): served when `Accept-Encoding` admits
//! it, as several concatenated gzip members (each account's cached families
//! compressed once, the rest per scrape), which decompress to the plain
//! exposition.

mod common;

use cdn_task_exporter::clock::{SharedClock, SystemClock, TokioClock};
use cdn_task_exporter::collector::Collector;
use cdn_task_exporter::metrics;
use cdn_task_exporter::sim::testing::TestingSim;
use cdn_task_exporter::sim::{Fault, RouterTransport, Traffic, World};
use flate2::read::{GzDecoder, MultiGzDecoder};
use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    MultiGzDecoder::new(bytes)
        .read_to_string(&mut text)
        .expect("a valid gzip stream of UTF-8 text");
    text
}

/// Lines that legitimately differ between two renders a moment apart: the
/// process' own figures and the HTTP server's connection families (moved
/// by the scrapes themselves).
fn steady(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("process_") && !l.starts_with("cdn_exporter_http_"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn world(clock: SharedClock) -> Arc<World> {
    let world = World::new(clock);
    world.with_traffic(
        Traffic {
            seed: 3,
            tasks_per_hour: 600.0,
            ..Traffic::default()
        },
        Duration::from_secs(3600),
    );
    world
}

fn accounts_yaml(names: &[&str]) -> String {
    let mut yaml = String::from("accounts:\n");
    for n in names {
        yaml.push_str(&format!(
            "  - name: {n}\n    vendor: testing\n    endpoint: http://sim\n    credentials: {{ id: {n}, secret: tok }}\n    min_refresh_interval: 30s\n"
        ));
    }
    yaml
}

/// Bytes in the first gzip member of `gz` once decompressed (a
/// single-member reader stops there).
fn first_member_len(gz: &[u8]) -> usize {
    let mut first = String::new();
    let _ = GzDecoder::new(gz).read_to_string(&mut first);
    first.len()
}

/// On the same data and the same second, the gzip exposition decompresses
/// to the plain one byte for byte — after every kind of change (refresh,
/// failure, untouched accounts reusing their compressed members, most
/// accounts changed and everything compressed afresh).
#[tokio::test(start_paused = true)]
async fn gzip_decompresses_to_the_plain_exposition_as_accounts_change() {
    let clock: SharedClock = Arc::new(TokioClock::starting_at(T0));
    let sim = TestingSim::new(world(clock.clone()), "tok");
    let c = common::collector(
        &accounts_yaml(&["a", "b", "c"]),
        Arc::new(RouterTransport::new(sim.clone().router())),
        clock.clone(),
    );
    let renderer = metrics::Renderer::new();
    let same = |what: &str| {
        let now = clock.unix();
        let gz = renderer.render_gzip(&c, now);
        let unzipped = gunzip(&gz);
        let plain = renderer.render(&c, now);
        assert_eq!(steady(&unzipped), steady(&plain), "{what}");
        assert!(plain.contains("cdn_tasks{vendor=\"testing\",account=\"c\""));
        assert!(
            gz.len() * 4 < plain.len(),
            "{what}: compressed, {} of {} bytes",
            gz.len(),
            plain.len()
        );
        (first_member_len(&gz), unzipped.len())
    };
    for step in 0..12 {
        sim.control.set_fault(if step % 5 == 2 {
            Fault::ServerError
        } else {
            Fault::None
        });
        c.collect(Instant::now() + Duration::from_secs(9)).await;
        same(&format!("step {step}"));
        tokio::time::advance(Duration::from_secs(13)).await;
    }
    // Nothing changed: the accounts' cached members are sent as they are.
    let (first, all) = same("unchanged");
    assert!(
        first < all / 2,
        "several members ({first} of {all} bytes in the first)"
    );
    // One account of three changed: its members are made again.
    c.accounts()[1].stats.touch();
    let (first, all) = same("one changed");
    assert!(
        first < all / 2,
        "several members ({first} of {all} bytes in the first)"
    );
    // Every account changed: compressed afresh in long runs, here one.
    for a in c.accounts().iter() {
        a.stats.touch();
    }
    let (first, all) = same("all changed");
    assert_eq!(first, all, "one member");
    let (first, all) = same("unchanged again");
    assert!(first < all / 2, "members made for the unchanged accounts");
}

async fn get(addr: std::net::SocketAddr, accept: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(format!("http://{addr}/metrics"));
    if let Some(a) = accept {
        req = req.header("Accept-Encoding", a);
    }
    req.send().await.expect("scrape")
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Families whose values move with the clock or with the scrapes
/// themselves (each scrape of fresh data counts a `fresh` skip); every
/// other series keeps its value between two scrapes of a frozen world.
fn moving(series: &str) -> bool {
    series.starts_with("process_")
        || series.starts_with("cdn_exporter_http_")
        || series.contains("age_seconds")
        || series.starts_with("cdn_vendor_scrape_duration_seconds")
        || series.starts_with("cdn_vendor_refresh_skipped_total")
}

/// Over HTTP: `Accept-Encoding: gzip` (as Prometheus sends it) gets a gzip
/// body with `Content-Encoding`, `Vary` and its `Content-Length`; it holds
/// the same series as the plain answer and passes promtool. No header, or
/// `gzip;q=0`, gets plain text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_serves_gzip_when_asked_and_plain_otherwise() {
    let clock: SharedClock = Arc::new(SystemClock);
    let w = world(clock.clone());
    w.freeze();
    let sim = TestingSim::new(w, "tok");
    let c: Arc<Collector> = Arc::new(common::collector(
        &accounts_yaml(&["shop", "blog"]),
        Arc::new(RouterTransport::new(sim.router())),
        clock,
    ));
    let addr = common::serve_app(c.clone()).await;

    let plain = get(addr, None).await;
    assert_eq!(plain.status(), 200);
    assert_eq!(header(&plain, "content-encoding"), None);
    assert_eq!(header(&plain, "vary"), Some("Accept-Encoding"));
    let plain = plain.text().await.unwrap();
    assert!(plain.contains("cdn_vendor_up{vendor=\"testing\",account=\"shop\"} 1"));

    let zipped = get(addr, Some("gzip")).await;
    assert_eq!(zipped.status(), 200);
    assert_eq!(header(&zipped, "content-encoding"), Some("gzip"));
    assert_eq!(header(&zipped, "vary"), Some("Accept-Encoding"));
    assert_eq!(header(&zipped, "content-type"), Some(metrics::CONTENT_TYPE));
    let length: usize = header(&zipped, "content-length")
        .expect("Content-Length")
        .parse()
        .unwrap();
    let bytes = zipped.bytes().await.unwrap();
    assert_eq!(bytes.len(), length);
    assert_eq!(&bytes[..2], [0x1f, 0x8b], "gzip magic");
    let text = gunzip(&bytes);
    assert!(
        bytes.len() * 4 < text.len(),
        "{} of {} bytes",
        bytes.len(),
        text.len()
    );

    let (p, z) = (common::parse_metrics(&plain), common::parse_metrics(&text));
    let keys = |m: &HashMap<String, f64>| m.keys().cloned().collect::<BTreeSet<_>>();
    assert_eq!(keys(&p), keys(&z), "the same series");
    assert!(p.len() > 200, "{} series", p.len());
    for (k, v) in &p {
        if !moving(k) {
            assert_eq!(Some(v), z.get(k), "{k}");
        }
    }
    tokio::task::block_in_place(|| common::promtool_check_metrics(&text));

    for refused in ["gzip;q=0", "identity", "br, deflate", "*;q=0"] {
        let r = get(addr, Some(refused)).await;
        assert_eq!(header(&r, "content-encoding"), None, "{refused}");
        assert_eq!(header(&r, "vary"), Some("Accept-Encoding"));
        let body = r.text().await.unwrap();
        assert!(body.starts_with("# HELP "), "{refused}: plain text");
    }
    let r = get(addr, Some("deflate;q=1, gzip;q=0.5")).await;
    assert_eq!(header(&r, "content-encoding"), Some("gzip"));
}
