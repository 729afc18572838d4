//! Log setup: structured events to stderr, logfmt or JSON.

use crate::cli::LogFormat;
use anyhow::Context;

/// Installs the global subscriber at `level` (an `EnvFilter` directive).
pub fn init(level: &str, format: LogFormat) -> anyhow::Result<()> {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .with_context(|| format!("bad --log.level {level:?}"))?;
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Logfmt => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(tracing_logfmt::EventsFormatter::default())
                    .fmt_fields(tracing_logfmt::FieldsFormatter::default())
                    .with_writer(std::io::stderr),
            )
            .try_init()?,
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init()?,
    }
    Ok(())
}
