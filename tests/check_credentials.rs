//! `check-credentials` on the real binary against the four simulated vendor
//! APIs: good keys pass (exit 0), bad keys and an unreachable endpoint fail
//! (exit 1) with the vendor's message, request id or the network error; one
//! request per account, through the budget (CDNetworks: never the scarce
//! fetch query); no secret in the output.

mod common;

use cdn_task_exporter::clock::{SharedClock, SystemClock};
use cdn_task_exporter::sim::{self, Control, Traffic, World};
use cdn_task_exporter::vendors::VendorKind;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

const ID: &str = "probe-access-key";
const SECRET: &str = "probe-secret-Zq7xW2";
const BAD: &str = "wrong-secret-Kp4vN9";

struct Sims {
    endpoints: Vec<(VendorKind, String)>,
    controls: Vec<(VendorKind, Arc<Control>)>,
}

async fn start_sims() -> Sims {
    let clock: SharedClock = Arc::new(SystemClock);
    let mut endpoints = Vec::new();
    let mut controls = Vec::new();
    for (i, kind) in VendorKind::real().enumerate() {
        let world = World::new(clock.clone());
        world.with_traffic(
            Traffic {
                seed: 7 + i as u64,
                tasks_per_hour: 600.0,
                task_types: kind.task_types().to_vec(),
                ..Traffic::default()
            },
            Duration::from_secs(3600),
        );
        let sim::Simulated {
            router, control, ..
        } = (kind.spec().simulator)(&sim::SimSetup {
            world,
            clock: clock.clone(),
            id: ID.into(),
            secret: SECRET.into(),
        });
        let (addr, _) = sim::serve(router).await.unwrap();
        endpoints.push((kind, format!("http://{addr}")));
        controls.push((kind, control));
    }
    Sims {
        endpoints,
        controls,
    }
}

/// A config with one account per simulated vendor, the secret from `$PROBE_SECRET_<VENDOR>`.
fn config(sims: &Sims, extra: &str) -> String {
    let mut y = String::from("accounts:\n");
    for (kind, endpoint) in &sims.endpoints {
        let options = kind.spec().demo_options;
        let var = kind.as_str().to_uppercase();
        y.push_str(&format!(
            "  - name: {kind}-acct\n    vendor: {kind}\n    endpoint: {endpoint}\n    credentials: {{ id: {ID}, secret: \"${{PROBE_SECRET_{var}}}\" }}{options}\n"
        ));
    }
    y.push_str(extra);
    y
}

fn check_credentials(config: &str, secrets: &[(&str, &str)]) -> Output {
    let dir = common::tempdir::TempDir::new("probe");
    let path = dir.path().join("config.yml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = Command::new(common::binary());
    cmd.arg("--config.file").arg(&path).arg("check-credentials");
    for (k, v) in secrets {
        cmd.env(k, v);
    }
    cmd.output().expect("run the binary")
}

fn secrets(bad: &[VendorKind]) -> Vec<(String, String)> {
    VendorKind::real()
        .map(|k| {
            (
                format!("PROBE_SECRET_{}", k.as_str().to_uppercase()),
                if bad.contains(&k) { BAD } else { SECRET }.to_string(),
            )
        })
        .collect()
}

/// The call each vendor's probe must make: its cheapest read, never a
/// scarce one. Every vendor of the registry must be here (checked), so a
/// new vendor fails this test until it names its own.
const CHEAPEST: &[(VendorKind, &str)] = &[
    (VendorKind::Volcengine, "ListContentTasks"),
    (VendorKind::Aliyun, "DescribeRefreshTasks"),
    (VendorKind::Ucloud, "DescribeNewUcdnRefreshCacheTask"),
    (VendorKind::Cdnetworks, "PurgeItemIdQuery"),
    (VendorKind::Tencent, "DescribePurgeTasks"),
    (VendorKind::Cloudfront, "ListInvalidations"),
];

async fn run(cfg: String, env: Vec<(String, String)>) -> (Option<i32>, String) {
    tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let out = check_credentials(&cfg, &env);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    })
    .await
    .unwrap()
}

fn line<'a>(out: &'a str, account: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{account} (")))
        .unwrap_or_else(|| panic!("no line for {account}:\n{out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_keys_pass_with_one_cheap_call_per_account() {
    let sims = start_sims().await;
    let (code, out) = run(config(&sims, ""), secrets(&[])).await;
    eprintln!("{out}");
    assert_eq!(code, Some(0), "{out}");
    let vendors = VendorKind::real().count();
    for kind in VendorKind::real() {
        let api = CHEAPEST
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, api)| *api)
            .unwrap_or_else(|| panic!("{kind}: add its cheapest read call to CHEAPEST"));
        let l = line(&out, &format!("{kind}-acct"));
        assert!(
            l.starts_with(&format!("{kind}-acct ({kind}, {api}): OK")),
            "{l}"
        );
    }
    assert!(
        out.contains(&format!("{vendors} of {vendors} account(s) OK")),
        "{out}"
    );
    assert!(!out.contains(SECRET), "secret printed:\n{out}");
    // Vendor side: exactly one request per account, every one answered ok, and
    // CDNetworks' fetch query (one call per 5 minutes) never used.
    for (kind, control) in &sims.controls {
        let got = control.received();
        assert_eq!(got.len(), 1, "{kind}: {got:?}");
        assert_eq!(got[0].answer, "ok", "{kind}: {got:?}");
    }
    let cdn = &sims.controls[3].1;
    assert_eq!(sims.controls[3].0, VendorKind::Cdnetworks);
    assert_eq!(cdn.count("FetchItemIdQuery"), 0);
    assert_eq!(cdn.count("PurgeItemIdQuery"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_keys_and_unreachable_endpoints_fail_with_the_vendors_words() {
    let sims = start_sims().await;
    let closed = common::ClosedPort::new();
    let extra = format!(
        "  - name: unreachable\n    vendor: aliyun\n    endpoint: http://127.0.0.1:{}\n    credentials: {{ id: {ID}, secret: \"${{PROBE_SECRET_ALIYUN}}\" }}\n    retries: 0\n",
        closed.port
    );
    // Every vendor's key is wrong but CDNetworks'.
    let bad: Vec<VendorKind> = VendorKind::real()
        .filter(|k| *k != VendorKind::Cdnetworks)
        .collect();
    let (code, out) = run(config(&sims, &extra), secrets(&bad)).await;
    eprintln!("{out}");
    assert_eq!(code, Some(1), "{out}");
    for kind in &bad {
        let l = line(&out, &format!("{kind}-acct"));
        assert!(l.contains("): auth_error"), "{l}");
        assert!(l.contains("README: Permissions"), "{l}");
    }
    // The vendor's request id, where the vendor sends one.
    for kind in ["volcengine", "aliyun", "tencent"] {
        let l = line(&out, &format!("{kind}-acct"));
        assert!(l.contains("[request id "), "{l}");
    }
    assert!(line(&out, "cdnetworks-acct").contains("): OK"), "{out}");
    let l = line(&out, "unreachable");
    assert!(l.contains("): network error: "), "{l}");
    let accounts = bad.len() + 2;
    assert!(
        out.contains(&format!("1 of {accounts} account(s) OK")),
        "{out}"
    );
    assert!(
        !out.contains(SECRET) && !out.contains(BAD),
        "secret printed:\n{out}"
    );
    for (kind, control) in &sims.controls {
        let got = control.received();
        assert_eq!(
            got.len(),
            1,
            "{kind}: one request, no retry of an auth error: {got:?}"
        );
    }
}

#[test]
fn an_invalid_config_exits_2_before_sending_anything() {
    let out = check_credentials(
        "accounts:\n  - name: a\n    vendor: aliyun\n    credentials: { id: x, secret: \"${UNSET_PROBE_VAR}\" }\n",
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("UNSET_PROBE_VAR"));
}
