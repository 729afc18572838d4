//! What the real-binary benches share: starting the release exporter on a
//! free loopback port with its log in a file.

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Starts `command` (the exporter, possibly behind a wrapper such as
/// `heaptrack -o FILE`) with `config`, listening on a free loopback port,
/// warnings and errors to `log`. Returns the process and its base URL.
pub fn start_exporter(command: &[String], config: &Path, log: &Path) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    let log = std::fs::File::create(log).expect("the exporter's log file");
    let child = Command::new(&command[0])
        .args(&command[1..])
        .arg("--config.file")
        .arg(config)
        .arg("--web.listen-address")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--log.level")
        .arg("warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("cannot start the exporter");
    (child, format!("http://127.0.0.1:{port}"))
}

/// A knob from the environment, or `default` when unset or unparsable.
pub fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `BENCH_VENDORS`: a comma-separated list of vendor names, `default` when unset.
pub fn vendors(default: &str) -> Vec<cdn_task_exporter::vendors::VendorKind> {
    env("BENCH_VENDORS", default.to_owned())
        .split(',')
        .map(|v| {
            cdn_task_exporter::vendors::VendorKind::real()
                .find(|k| k.as_str() == v.trim())
                .unwrap_or_else(|| panic!("unknown vendor {v}"))
        })
        .collect()
}
