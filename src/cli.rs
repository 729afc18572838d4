//! The command line: flags, subcommands and the exit-code convention.
//!
//! Exit codes: 0 success; 2 a usage or configuration problem (bad flags,
//! config file, web config or demo options — fix the input and retry); 1 a
//! runtime failure (cannot bind, runtime error).

use crate::{app, config, logging, probe, server, web_config};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Prometheus exporter for CDN purge and prefetch tasks.
#[derive(Debug, Parser)]
#[command(about, version = concat!(
    env!("CARGO_PKG_VERSION"), " (revision ", env!("CDN_EXPORTER_REVISION"),
    ", rustc ", env!("CDN_EXPORTER_RUSTC"), ")"
))]
pub struct Cli {
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
    /// Longest time from accepting a connection to a complete request head,
    /// TLS handshake included; slower clients are disconnected.
    #[arg(long = "web.read-header-timeout", default_value = "10s", value_parser = positive_duration, global = true)]
    pub read_header_timeout: Duration,
    /// Keep-alive connections idle this long are closed.
    #[arg(long = "web.idle-timeout", default_value = "2m", value_parser = positive_duration, global = true)]
    pub idle_timeout: Duration,
    /// Open connections at most; at the cap an idle connection is closed to
    /// make room, or new ones wait while every connection is busy.
    #[arg(long = "web.max-connections", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub max_connections: u32,
    /// The URL people reach the exporter under (Prometheus' flag), for the
    /// links the exporter prints. Links only: routes keep no prefix.
    #[arg(long = "web.external-url", value_parser = external_url, global = true)]
    pub external_url: Option<String>,
    /// Serve `POST /-/reload` (Prometheus' flag); SIGHUP reloads either way.
    #[arg(long = "web.enable-lifecycle", global = true)]
    pub enable_lifecycle: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

/// An absolute http(s) URL, kept without its trailing slash.
fn external_url(s: &str) -> Result<String, String> {
    let ok = (s.starts_with("http://") || s.starts_with("https://"))
        && s.split_once("://")
            .is_some_and(|(_, rest)| !rest.is_empty() && !rest.starts_with('/'))
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '<' || c == '>');
    if ok {
        Ok(s.trim_end_matches('/').to_owned())
    } else {
        Err(format!("{s:?} is not an absolute http:// or https:// URL"))
    }
}

fn positive_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d > Duration::ZERO => Ok(d),
        Ok(_) => Err("must be greater than zero".into()),
        Err(e) => Err(format!("{e} (examples: 10s, 2m, 500ms)")),
    }
}

impl Cli {
    /// Reads and validates the config and web config files, at start and
    /// on every reload (one loader, so a reload sees what a restart would).
    pub fn loader(&self) -> app::Reloader {
        let (path, web_path) = (self.config_file.clone(), self.web_config_file.clone());
        app::Reloader::new(move || {
            let config = config::load(&path).map_err(|e| e.to_string())?;
            let web = match &web_path {
                None => web_config::WebConfig::default(),
                Some(p) => web_config::load(p).map_err(|e| e.to_string())?,
            };
            Ok((config, web))
        })
    }

    /// The HTTP server limits the flags ask for.
    pub fn limits(&self) -> server::Limits {
        server::Limits {
            read_header_timeout: self.read_header_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections as usize,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Logfmt,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the configuration and exit (non-zero on any problem).
    CheckConfig,
    /// Send each account's cheapest read call once and report whether its key
    /// works (exit 1 on any failure).
    CheckCredentials,
    /// Run against the simulated vendors on loopback (no credentials needed;
    /// builds with the `sim` feature only).
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

/// Exit status for usage and configuration problems.
const USAGE: u8 = 2;

/// Parses the process arguments and runs the chosen command.
pub fn main() -> ExitCode {
    run(Cli::parse())
}

/// Runs `cli`; errors are printed with their cause chain.
pub fn run(cli: Cli) -> ExitCode {
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let web = match cli.web_config_file.as_deref().map(web_config::load) {
        None => web_config::WebConfig::default(),
        Some(Ok(w)) => w,
        Some(Err(e)) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(USAGE));
        }
    };
    let serve_opts = app::ServeOptions {
        health_without_auth: cli.health_without_auth,
        announce: false,
        external_url: cli.external_url.clone(),
        limits: cli.limits(),
        reloader: None,
        enable_lifecycle: cli.enable_lifecycle,
    };
    match cli.command {
        Some(Command::Demo {
            seed,
            failure_rate,
            stall_rate,
            tasks_per_hour,
            refresh_interval,
        }) => demo(
            &cli,
            web,
            DemoFlags {
                seed,
                failure_rate,
                stall_rate,
                tasks_per_hour,
                refresh_interval,
            },
            serve_opts,
        ),
        Some(Command::CheckCredentials) => match config::load(&cli.config_file) {
            Ok(config) => probe::run(&config),
            Err(e) => {
                eprintln!("{e}");
                Ok(ExitCode::from(USAGE))
            }
        },
        Some(Command::CheckConfig) => {
            let config = match config::load(&cli.config_file) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return Ok(ExitCode::from(USAGE));
                }
            };
            for w in &config.warnings {
                eprintln!("warning: {w}");
            }
            println!(
                "{}: configuration OK ({} accounts)",
                cli.config_file.display(),
                config.accounts.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let loader = cli.loader();
            let (config, web) = match loader.load() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return Ok(ExitCode::from(USAGE));
                }
            };
            let serve_opts = app::ServeOptions {
                reloader: Some(loader),
                ..serve_opts
            };
            logging::init(&cli.log_level, cli.log_format)?;
            block_on(async {
                let listener = app::bind(&cli.listen_address).await?;
                app::serve(config, web, listener, serve_opts, app::shutdown_signal()).await
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The demo's flags, as given.
#[cfg_attr(not(feature = "sim"), allow(dead_code))]
struct DemoFlags {
    seed: u64,
    failure_rate: f64,
    stall_rate: f64,
    tasks_per_hour: f64,
    refresh_interval: std::time::Duration,
}

#[cfg(feature = "sim")]
fn demo(
    cli: &Cli,
    web: web_config::WebConfig,
    f: DemoFlags,
    serve_opts: app::ServeOptions,
) -> anyhow::Result<ExitCode> {
    let opts = crate::demo::DemoOptions {
        seed: f.seed,
        failure_rate: f.failure_rate,
        stall_rate: f.stall_rate,
        tasks_per_hour: f.tasks_per_hour,
        min_refresh_interval: f.refresh_interval,
        ..crate::demo::DemoOptions::default()
    };
    if let Err(e) = opts.validate() {
        eprintln!("{e}");
        return Ok(ExitCode::from(USAGE));
    }
    logging::init(&cli.log_level, cli.log_format)?;
    block_on(async {
        let listener = app::bind(&cli.listen_address).await?;
        crate::demo::run(opts, web, listener, serve_opts, app::shutdown_signal()).await
    })?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "sim"))]
fn demo(
    _: &Cli,
    _: web_config::WebConfig,
    _: DemoFlags,
    _: app::ServeOptions,
) -> anyhow::Result<ExitCode> {
    eprintln!("this build has no simulated vendors: build with `--features sim` to run the demo");
    Ok(ExitCode::from(USAGE))
}

fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    use anyhow::Context;
    tokio::runtime::Runtime::new()
        .context("cannot start the async runtime")?
        .block_on(f)
}
#[cfg(test)]
mod tests {

    #[test]
    fn external_url_must_be_absolute_http_and_loses_its_trailing_slash() {
        assert_eq!(
            external_url("https://cdn-exporter.example.com/").unwrap(),
            "https://cdn-exporter.example.com"
        );
        assert_eq!(external_url("http://h:10052").unwrap(), "http://h:10052");
        for bad in [
            "cdn-exporter.example.com",
            "ftp://h",
            "http://",
            "http:///x",
            "http://h/a b",
            "http://h/\"x",
        ] {
            assert!(external_url(bad).is_err(), "{bad}");
        }
    }

    use super::*;

    #[test]
    fn flag_defaults_are_the_server_defaults() {
        let cli = Cli::parse_from(["cdn-task-exporter"]);
        assert_eq!(cli.limits(), server::Limits::default());
    }

    #[test]
    fn zero_limits_are_refused() {
        for flag in [
            "--web.read-header-timeout=0s",
            "--web.idle-timeout=0s",
            "--web.max-connections=0",
            "--web.idle-timeout=soon",
        ] {
            assert!(
                Cli::try_parse_from(["cdn-task-exporter", flag]).is_err(),
                "{flag}"
            );
        }
    }
}
