//! Real Prometheus (and other tools) as child processes of a test: spawn
//! them with their log in a file, wait until ready, query the HTTP API.
//! Shared by tests/e2e.rs and tests/shard.rs.

use super::http_get;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- processes

/// A child process that is killed and reaped on drop, even when the test
/// panics. Its stdout and stderr go to a log file.
pub struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &'static str, program: &str, args: &[String], log: PathBuf) -> Proc {
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}; run scripts/install-deps.sh"));
        Proc { name, child, log }
    }

    /// The last lines the process logged.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(30);
        format!(
            "--- last lines of {} log ({}) ---\n{}",
            self.name,
            self.log.display(),
            lines[from..].join("\n")
        )
    }

    /// Panics (with its log) if the process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited with {status}\n{}", self.name, self.log_tail());
        }
    }

    /// Waits until `GET path` on `addr` answers 200.
    pub fn wait_ready(&mut self, addr: &str, path: &str, timeout: Duration) {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            self.assert_running();
            if matches!(http_get(addr, path, &[]), Ok((200, _))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "{} not ready on {addr} within {timeout:?}\n{}",
            self.name,
            self.log_tail()
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

// --------------------------------------------------------------- Prometheus

/// `GET /api/v1/...` on Prometheus, parsed; `Err` with the reason otherwise.
pub fn prom_api(addr: &str, path: &str) -> Result<Value, String> {
    let (status, body) = http_get(addr, path, &[]).map_err(|e| format!("GET {path}: {e}"))?;
    let v: Value =
        serde_json::from_str(&body).map_err(|e| format!("GET {path}: {status}, {e}: {body}"))?;
    if status != 200 || v["status"] != "success" {
        return Err(format!("GET {path}: {status}: {body}"));
    }
    Ok(v["data"].clone())
}

/// The result of an instant query (vector or matrix series).
pub fn prom_query(addr: &str, expr: &str) -> Result<Vec<Value>, String> {
    let q = percent_encoding::utf8_percent_encode(expr, percent_encoding::NON_ALPHANUMERIC);
    let data = prom_api(addr, &format!("/api/v1/query?query={q}"))?;
    match data["resultType"].as_str() {
        Some("vector") | Some("matrix") => {
            Ok(data["result"].as_array().cloned().unwrap_or_default())
        }
        // A scalar or string is always one value.
        Some(_) => Ok(vec![data["result"].clone()]),
        None => Err(format!("no resultType in {data}")),
    }
}
