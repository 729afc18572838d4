//! `/-/ready` means "configuration loaded and serving", not "vendor data has
//! arrived": refreshes are triggered by scrapes, so a readiness gate that
//! waited for data would never open. README (*Troubleshooting*) documents it.

mod common;

use common::{http_get, parse_metrics, value, Exporter};

#[test]
fn ready_answers_before_any_refresh_and_data_arrival_is_visible_elsewhere() {
    // A testing account whose endpoint is a closed port: no refresh can succeed.
    let closed = common::ClosedPort::new();
    let config = format!(
        "accounts:\n  - name: a\n    vendor: testing\n    endpoint: http://127.0.0.1:{}\n    credentials: {{ id: a, secret: tok }}\n    retries: 0\n",
        closed.port
    );
    // Exporter::start returns once /-/ready answers 200; nothing has scraped yet.
    let exp = Exporter::start(&config, &[]);
    let (status, body) = http_get(&exp.addr, "/-/ready", &[]).unwrap();
    assert_eq!((status, body.as_str()), (200, "Ready\n"));
    let (_, landing) = http_get(&exp.addr, "/", &[]).unwrap();
    assert!(landing.contains("not yet refreshed"), "{landing}");
    // The first scrape triggers the refresh; it fails, the account is down,
    // and readiness does not change (it is about serving, not about data).
    let text = exp.scrape(Some("5"));
    let m = parse_metrics(&text);
    let labels = [("vendor", "testing"), ("account", "a")];
    assert_eq!(value(&m, "cdn_vendor_up", &labels), Some(0.0));
    assert_eq!(
        value(&m, "cdn_vendor_last_success_timestamp_seconds", &labels),
        Some(0.0),
        "no data has arrived"
    );
    let (status, _) = http_get(&exp.addr, "/-/ready", &[]).unwrap();
    assert_eq!(status, 200);
}
