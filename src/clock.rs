//! The one place that reads wall-clock time.
//!
//! Vendor APIs want wall-clock times (signatures, query windows); timers and
//! budgets use tokio's monotonic, pausable clock. Tests inject [`TokioClock`]
//! so wall time advances exactly with `tokio::time::advance`.

use chrono::{DateTime, TimeZone, Utc};
use std::sync::Arc;

/// A source of wall-clock time.
pub trait Clock: Send + Sync + 'static {
    /// Current UTC time.
    fn now(&self) -> DateTime<Utc>;

    /// Current Unix time in whole seconds.
    fn unix(&self) -> i64 {
        self.now().timestamp()
    }
}

/// Shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The real system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Wall time that follows tokio's clock from a fixed anchor, so paused-time
/// tests are deterministic and simulated hours pass instantly.
#[derive(Debug, Clone)]
pub struct TokioClock {
    anchor_wall: DateTime<Utc>,
    anchor_mono: tokio::time::Instant,
}

impl TokioClock {
    /// Starts at `unix_seconds` now (in tokio time).
    pub fn starting_at(unix_seconds: i64) -> Self {
        TokioClock {
            anchor_wall: Utc
                .timestamp_opt(unix_seconds, 0)
                .single()
                .unwrap_or_default(),
            anchor_mono: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = tokio::time::Instant::now() - self.anchor_mono;
        self.anchor_wall + chrono::Duration::from_std(elapsed).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let c = TokioClock::starting_at(1_700_000_000);
        assert_eq!(c.unix(), 1_700_000_000);
        tokio::time::advance(std::time::Duration::from_secs(90)).await;
        assert_eq!(c.unix(), 1_700_000_090);
    }
}
