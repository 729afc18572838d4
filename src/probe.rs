//! `check-credentials`: one cheap read call per account, to test keys and
//! their permissions before deploying.
//!
//! Each account sends its vendor's [`probe`](crate::vendors::Vendor::probe)
//! query through the same path a refresh uses — the account's budget, the
//! production transport, its timeout and retries — so a probe can never
//! exceed the account's rate budget. Which call each vendor uses is listed in
//! README (*Check credentials*). Nothing printed contains a secret: the lines
//! hold the account name, the vendor, the API and the vendor's own error text
//! and request id.

use crate::app;
use crate::clock::SystemClock;
use crate::collector::{Collector, ProbeResult};
use crate::config::Config;
use crate::http::ReqwestTransport;
use crate::vendors::{ApiError, Outcome, VendorKind, PROBE_WINDOW};
use std::fmt;
use std::process::ExitCode;
use std::sync::Arc;

/// What one account's probe found.
#[derive(Debug)]
pub struct Report {
    pub account: String,
    pub vendor: VendorKind,
    /// The API called, when there was one.
    pub api: Option<&'static str>,
    pub verdict: Verdict,
}

/// The outcome of one probe.
#[derive(Debug)]
pub enum Verdict {
    /// The vendor accepted the key; `tasks` were listed in the probe window.
    Ok { tasks: usize },
    /// The vendor or the network refused.
    Failed(ApiError),
    /// The account's budget had no permit within `max_permit_wait`.
    Budget,
    /// The vendor has no probe call.
    Unsupported,
}

impl Report {
    /// True when the key works.
    pub fn is_ok(&self) -> bool {
        matches!(self.verdict, Verdict::Ok { .. })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}", self.account, self.vendor)?;
        if let Some(api) = self.api {
            write!(f, ", {api}")?;
        }
        write!(f, "): ")?;
        match &self.verdict {
            Verdict::Ok { tasks } => write!(
                f,
                "OK ({tasks} task(s) in the last {} minutes)",
                PROBE_WINDOW / 60
            ),
            Verdict::Failed(e) => {
                match e.outcome {
                    Outcome::Network => write!(f, "network error: {}", e.message)?,
                    _ => write!(f, "{e}")?,
                }
                match e.outcome {
                    Outcome::AuthError => write!(
                        f,
                        " — check the key pair and the permission it needs (README: Permissions)"
                    ),
                    Outcome::Network | Outcome::Timeout => {
                        write!(f, " — check the endpoint and egress (proxy, firewall, DNS)")
                    }
                    _ => Ok(()),
                }
            }
            Verdict::Budget => write!(
                f,
                "not sent: no permit in the account's rate budget within max_permit_wait"
            ),
            Verdict::Unsupported => write!(f, "not checked: the vendor has no probe call"),
        }
    }
}

/// Probes every account of `collector` concurrently; reports in config order.
pub async fn probe_all(collector: &Collector) -> Vec<Report> {
    let accounts = collector.accounts();
    let handles: Vec<_> = accounts
        .iter()
        .map(|a| {
            let a = Arc::clone(a);
            tokio::spawn(async move {
                let (api, result) = a.probe().await;
                let verdict = match result {
                    ProbeResult::Ok(parsed) => Verdict::Ok {
                        tasks: parsed.tasks.len(),
                    },
                    ProbeResult::Failed(e) => Verdict::Failed(e),
                    ProbeResult::Budget => Verdict::Budget,
                    ProbeResult::Unsupported => Verdict::Unsupported,
                };
                Report {
                    account: a.name.clone(),
                    vendor: a.kind,
                    api,
                    verdict,
                }
            })
        })
        .collect();
    let mut reports = Vec::with_capacity(handles.len());
    for (h, a) in handles.into_iter().zip(accounts.iter()) {
        reports.push(h.await.unwrap_or_else(|e| Report {
            account: a.name.clone(),
            vendor: a.kind,
            api: None,
            verdict: Verdict::Failed(ApiError::new(
                Outcome::ClientError,
                format!("probe task failed: {e}"),
            )),
        }));
    }
    reports
}

/// The `check-credentials` subcommand: probes every account of a validated
/// config over the network, prints one line per account and a summary.
/// Exit status 0 when every key works, 1 otherwise.
pub fn run(config: &Config) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    let reports = runtime.block_on(async {
        let transport = Arc::new(ReqwestTransport::new(config.max_response_bytes)?);
        let collector = app::collector(config, transport, Arc::new(SystemClock));
        anyhow::Ok(probe_all(&collector).await)
    })?;
    let ok = reports.iter().filter(|r| r.is_ok()).count();
    for r in &reports {
        println!("{r}");
    }
    println!("{ok} of {} account(s) OK", reports.len());
    Ok(if ok == reports.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
