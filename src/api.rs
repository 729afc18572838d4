//! What every vendor API has in common, below both the vendor modules and
//! the collector: its published rate limit and the outcome classes of one
//! request. Vendors, config, the collector, metrics and the simulators all
//! use these; none of them needs another's module for it.

use std::fmt;
use std::time::Duration;

/// A request rate: at most `requests` in any window of length `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub requests: u32,
    pub per: Duration,
}

impl Rate {
    /// `requests` per `per`.
    pub const fn new(requests: u32, per: Duration) -> Self {
        Rate { requests, per }
    }

    /// Scales a vendor limit by a safety fraction in (0, 1]. When the scaled
    /// count drops below one request (CDNetworks: 1 per 5 min × 0.5), the
    /// window is stretched instead: 1 per 10 min.
    pub fn scaled(self, fraction: f64) -> Rate {
        let exact = f64::from(self.requests) * fraction;
        if exact >= 1.0 {
            Rate::new(exact.floor() as u32, self.per)
        } else {
            let per = self.per.as_secs_f64() / exact.max(1e-9);
            Rate::new(1, Duration::from_secs_f64(per.min(86_400.0 * 365.0)))
        }
    }

    /// Requests per second, for comparing budgets with vendor limits.
    pub fn per_second(self) -> f64 {
        f64::from(self.requests) / self.per.as_secs_f64()
    }

    /// Parses `N/DURATION`, e.g. `2/1s`, `1/5m`.
    pub fn parse(s: &str) -> Result<Rate, String> {
        let (n, per) = s
            .split_once('/')
            .ok_or_else(|| format!("rate {s:?} is not of the form N/DURATION, e.g. 2/1s"))?;
        let requests: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("rate {s:?}: {n:?} is not a whole number"))?;
        let per = humantime::parse_duration(per.trim())
            .map_err(|e| format!("rate {s:?}: bad duration {per:?}: {e}"))?;
        if requests == 0 || per.is_zero() {
            return Err(format!(
                "rate {s:?} must allow at least one request per non-zero window"
            ));
        }
        Ok(Rate::new(requests, per))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.requests,
            humantime::format_duration(self.per)
        )
    }
}

/// One API a vendor exposes, with the limit its documentation publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiSpec {
    /// The vendor's action name (the `api` label value).
    pub name: &'static str,
    /// The documented per-account limit.
    pub limit: Rate,
}

/// The outcome of one API request: the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ok,
    Throttled,
    AuthError,
    ClientError,
    ServerError,
    Timeout,
    Network,
    ParseError,
}

impl Outcome {
    /// Every outcome, in label order.
    pub const ALL: [Outcome; 8] = [
        Outcome::Ok,
        Outcome::Throttled,
        Outcome::AuthError,
        Outcome::ClientError,
        Outcome::ServerError,
        Outcome::Timeout,
        Outcome::Network,
        Outcome::ParseError,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Throttled => "throttled",
            Outcome::AuthError => "auth_error",
            Outcome::ClientError => "client_error",
            Outcome::ServerError => "server_error",
            Outcome::Timeout => "timeout",
            Outcome::Network => "network",
            Outcome::ParseError => "parse_error",
        }
    }

    /// Dense index.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Worth one more try after a pause: the next attempt may succeed.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Outcome::ServerError | Outcome::Timeout | Outcome::Network
        )
    }
}
