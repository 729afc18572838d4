//! The `cdn-task-exporter` binary: parse flags, set up logging, load config,
//! and hand over to `app`.

use anyhow::Context;
use cdn_task_exporter::{app, clock, config, demo, http, probe, web_config};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Prometheus exporter for CDN purge and prefetch tasks.
#[derive(Debug, Parser)]
#[command(about, version = concat!(
    env!("CARGO_PKG_VERSION"), " (revision ", env!("CDN_EXPORTER_REVISION"),
    ", rustc ", env!("CDN_EXPORTER_RUSTC"), ")"
))]
struct Cli {
    /// Path to the YAML configuration.
    #[arg(
        long = "config.file",
        default_value = "cdn-task-exporter.yml",
        global = true
    )]
    config_file: PathBuf,
    /// Address to listen on.
    #[arg(
        long = "web.listen-address",
        default_value = "0.0.0.0:10052",
        global = true
    )]
    listen_address: String,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long = "log.level", default_value = "info", global = true)]
    log_level: String,
    /// Log format.
    #[arg(long = "log.format", value_enum, default_value_t = LogFormat::Logfmt, global = true)]
    log_format: LogFormat,
    /// Path to a web config (TLS, basic auth, response headers) in the
    /// Prometheus exporter-toolkit format.
    #[arg(long = "web.config.file", global = true)]
    web_config_file: Option<PathBuf>,
    /// Answer /-/healthy and /-/ready without basic auth, so that liveness
    /// probes need no credentials. `--web.health-without-auth=false` protects them too.
    #[arg(long = "web.health-without-auth", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    health_without_auth: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Logfmt,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the configuration and exit (non-zero on any problem).
    CheckConfig,
    /// Send each account's cheapest read call once and report whether its key works (non-zero on any failure).
    CheckCredentials,
    /// Run against the four simulated vendors on loopback (no credentials needed).
    Demo {
        /// Seed of the simulated traffic.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Share of tasks that fail (0-1).
        #[arg(long = "failure-rate", default_value_t = 0.03)]
        failure_rate: f64,
        /// Share of tasks that never finish (0-1).
        #[arg(long = "stall-rate", default_value_t = 0.01)]
        stall_rate: f64,
        /// New tasks per hour per vendor.
        #[arg(long = "tasks-per-hour", default_value_t = 240.0)]
        tasks_per_hour: f64,
        /// Minimum refresh interval of the demo accounts.
        #[arg(long = "refresh-interval", default_value = "15s", value_parser = humantime::parse_duration)]
        refresh_interval: std::time::Duration,
    },
}

fn init_logging(level: &str, format: LogFormat) -> anyhow::Result<()> {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let web = match cli.web_config_file.as_deref().map(web_config::load) {
        None => web_config::WebConfig::default(),
        Some(Ok(w)) => w,
        Some(Err(e)) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    if let Some(Command::Demo {
        seed,
        failure_rate,
        stall_rate,
        tasks_per_hour,
        refresh_interval,
    }) = cli.command
    {
        for (name, v) in [
            ("--failure-rate", failure_rate),
            ("--stall-rate", stall_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                anyhow::bail!("{name} {v} is outside 0..=1");
            }
        }
        init_logging(&cli.log_level, cli.log_format)?;
        let opts = demo::DemoOptions {
            seed,
            failure_rate,
            stall_rate,
            tasks_per_hour,
            min_refresh_interval: refresh_interval,
            ..demo::DemoOptions::default()
        };
        let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
        return runtime.block_on(async {
            let d = demo::start(&opts)
                .await
                .context("cannot start the simulated vendors")?;
            for (kind, addr) in &d.addresses {
                println!("simulated {kind:<11} API: http://{addr}");
            }
            let config = config::parse(&d.config_yaml, "<demo>", &|_| None, &|_| {
                Err("no files in demo".into())
            })
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            serve(config, &cli, web, true).await?;
            Ok(ExitCode::SUCCESS)
        });
    }
    let config = match config::load(&cli.config_file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    if let Some(Command::CheckCredentials) = cli.command {
        return probe::run(&config);
    }
    if let Some(Command::CheckConfig) = cli.command {
        for w in &config.warnings {
            eprintln!("warning: {w}");
        }
        println!(
            "{}: configuration OK ({} accounts)",
            cli.config_file.display(),
            config.accounts.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    init_logging(&cli.log_level, cli.log_format)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(serve(config, &cli, web, false))?;
    Ok(ExitCode::SUCCESS)
}

/// Builds the collector and serves until SIGTERM/SIGINT.
async fn serve(
    config: config::Config,
    cli: &Cli,
    web: web_config::WebConfig,
    announce: bool,
) -> anyhow::Result<()> {
    let listen_address = cli.listen_address.as_str();
    for w in &config.warnings {
        tracing::warn!(warning = %w, "config adjusted");
    }
    let transport = Arc::new(http::ReqwestTransport::new(config.max_response_bytes)?);
    let collector = Arc::new(app::collector(
        &config,
        transport,
        Arc::new(clock::SystemClock),
    ));
    let state = app::AppState {
        collector,
        scrape_timeout: config.scrape_timeout,
        scrape_timeout_margin: config.scrape_timeout_margin,
        renderer: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind(listen_address)
        .await
        .with_context(|| format!("cannot listen on {listen_address}"))?;
    let addr = listener.local_addr()?;
    if announce {
        println!("exporter landing page: http://{addr}/");
        println!("exporter metrics:      http://{addr}/metrics");
    }
    tracing::info!(
        address = %addr,
        accounts = config.accounts.len(),
        tls = web.tls.is_some(),
        basic_auth = !web.basic_auth_users.is_empty(),
        "listening"
    );
    let router = app::secure(app::router(state), &web, cli.health_without_auth);
    match web.tls {
        Some(tls) => app::run_tls(listener, tls, router, app::shutdown_signal()).await?,
        None => app::run(listener, router, app::shutdown_signal()).await?,
    }
    Ok(())
}
