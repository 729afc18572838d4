//! The standard `process_*` values.
//!
//! Memory, file descriptors, threads and start time come from the
//! `prometheus` crate's process collector, registered once for the life of
//! the process. CPU time does not: that collector (0.14) divides clock ticks
//! by the tick rate in integers, so `process_cpu_seconds_total` moved only in
//! whole seconds and `rate()` over it was a staircase. We read
//! `CLOCK_PROCESS_CPUTIME_ID` instead — user + system time of every thread,
//! the same quantity, in nanoseconds.

/// One reading of the process values; `None` where the platform has none.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Sample {
    pub cpu_seconds: Option<f64>,
    pub max_fds: Option<f64>,
    pub open_fds: Option<f64>,
    pub resident_memory_bytes: Option<f64>,
    pub start_time_seconds: Option<f64>,
    pub threads: Option<f64>,
    pub virtual_memory_bytes: Option<f64>,
}

#[cfg(target_os = "linux")]
static REGISTRY: std::sync::LazyLock<prometheus::Registry> = std::sync::LazyLock::new(|| {
    let registry = prometheus::Registry::new();
    let collector = prometheus::process_collector::ProcessCollector::for_self();
    if let Err(e) = registry.register(Box::new(collector)) {
        tracing::warn!(error = %e, "process metrics unavailable");
    }
    registry
});

/// Reads the process values now.
pub(super) fn sample() -> Sample {
    let mut s = Sample {
        cpu_seconds: cpu_seconds(),
        ..Sample::default()
    };
    #[cfg(target_os = "linux")]
    for family in REGISTRY.gather() {
        let Some(m) = family.get_metric().first() else {
            continue;
        };
        let value = Some(match family.get_field_type() {
            prometheus::proto::MetricType::COUNTER => m.get_counter().get_value(),
            _ => m.get_gauge().get_value(),
        });
        match family.name() {
            "process_max_fds" => s.max_fds = value,
            "process_open_fds" => s.open_fds = value,
            "process_resident_memory_bytes" => s.resident_memory_bytes = value,
            "process_start_time_seconds" => s.start_time_seconds = value,
            "process_threads" => s.threads = value,
            "process_virtual_memory_bytes" => s.virtual_memory_bytes = value,
            _ => {}
        }
    }
    s
}

/// User + system CPU time of the whole process, in seconds (ns resolution).
pub fn cpu_seconds() -> Option<f64> {
    #[cfg(unix)]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
        Some(t.tv_sec as f64 + t.tv_nsec as f64 / 1e9)
    }
    #[cfg(not(unix))]
    None
}

#[cfg(all(test, target_os = "linux"))]
pub(super) mod tests {
    use super::*;

    /// Spins until the process has used at least `seconds` more CPU.
    pub(crate) fn burn(seconds: f64) {
        let start = cpu_seconds().unwrap();
        let mut x = 0u64;
        while cpu_seconds().unwrap() - start < seconds {
            for i in 0..10_000u64 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
            }
            std::hint::black_box(x);
        }
    }

    #[test]
    fn cpu_seconds_has_a_fraction_and_agrees_with_the_tick_count() {
        burn(0.05);
        let before = cpu_seconds().unwrap();
        burn(0.05);
        let after = cpu_seconds().unwrap();
        assert!(after - before >= 0.05, "{before} → {after}");
        assert!(after.fract() != 0.0, "whole seconds only: {after}");
        // The other collector's integer count (utime + stime in ticks,
        // truncated) is never ahead of ours by a second, nor far behind.
        let s = sample();
        let ours = s.cpu_seconds.unwrap();
        let registry: f64 = REGISTRY
            .gather()
            .iter()
            .find(|f| f.name() == "process_cpu_seconds_total")
            .map(|f| f.get_metric()[0].get_counter().get_value())
            .unwrap();
        assert!(
            ours > registry - 1.0 && ours < registry + 2.0,
            "clock {ours} s against ticks {registry} s"
        );
    }

    #[test]
    fn the_process_collector_is_registered_once_and_reads_every_value() {
        let (a, b) = (sample(), sample());
        for s in [a, b] {
            for v in [
                s.max_fds,
                s.open_fds,
                s.resident_memory_bytes,
                s.start_time_seconds,
                s.threads,
                s.virtual_memory_bytes,
            ] {
                assert!(v.is_some_and(|v| v > 0.0), "{s:?}");
            }
        }
        assert_eq!(a.start_time_seconds, b.start_time_seconds);
        // A second registration of the same collector would fail: the one in
        // REGISTRY is the only one and is reused by every scrape.
        let again = prometheus::process_collector::ProcessCollector::for_self();
        assert!(REGISTRY.register(Box::new(again)).is_err());
    }
}
