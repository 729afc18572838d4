//! The command line: flags, subcommands and the exit-code convention.
//!
//! Exit codes: 0 success; 2 a usage or configuration problem (bad flags,
//! config file, web config or demo options — fix the input and retry); 1 a
//! runtime failure (cannot bind, runtime error).

use crate::config::Config;
use crate::shard::Shard;
use crate::{app, logging, probe, server, web_config};
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
    /// This replica's shard, numbered from 0 (below --shard.count). Each
    /// shard polls only the accounts it owns.
    #[arg(
        long = "shard.index",
        global = true,
        conflicts_with = "shard_index_from_hostname"
    )]
    shard_index: Option<u32>,
    /// Number of shards the accounts are split across (rendezvous hashing
    /// of the account name).
    #[arg(long = "shard.count", default_value_t = 1, global = true)]
    shard_count: u32,
    /// Take --shard.index from the trailing -<n> of the hostname (a
    /// StatefulSet pod's ordinal), so one manifest serves every replica.
    #[arg(long = "shard.index-from-hostname", global = true)]
    shard_index_from_hostname: bool,
    /// Part of every account's vendor limit this replica may use,
    /// 0 < F <= 1: 1/R when R replicas poll the same shard.
    #[arg(long = "budget.share", default_value_t = 1.0, global = true)]
    budget_share: f64,
    /// Directory of the state that survives restarts (cache, covered
    /// windows, budget journal); Prometheus' flag name. Default: `data/`
    /// beside the config file. `--storage.path=""` keeps no state.
    #[arg(long = "storage.path", value_parser = storage_path, global = true)]
    pub storage_path: Option<PathBuf>,
    /// Serve `POST /-/reload` (Prometheus' flag); SIGHUP reloads either way.
    #[arg(long = "web.enable-lifecycle", global = true)]
    pub enable_lifecycle: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

/// The name this host goes by: `$HOSTNAME` (set in every Kubernetes pod),
/// else the kernel's.
fn hostname() -> Result<String, String> {
    if let Some(h) = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
    {
        return Ok(h.trim().to_owned());
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            "--shard.index-from-hostname: cannot read the hostname ($HOSTNAME is unset and \
             /proc/sys/kernel/hostname unreadable); pass --shard.index instead"
                .to_owned()
        })
}

/// The config file and this replica's cut of it, from the flags.
pub fn config_source(cli: &Cli) -> Result<app::ConfigSource, String> {
    let f = cli.budget_share;
    if !(f > 0.0 && f <= 1.0) {
        return Err(format!(
            "--budget.share {f} is outside (0, 1]: give 1/R for R replicas of one shard"
        ));
    }
    let shard = if cli.shard_index_from_hostname {
        Shard::from_hostname(&hostname()?, cli.shard_count)?
    } else {
        Shard::new(cli.shard_index.unwrap_or(0), cli.shard_count)?
    };
    Ok(app::ConfigSource {
        path: cli.config_file.clone(),
        shard,
        budget_share: f,
    })
}

/// Loads the config the flags name, cut to this replica's shard and
/// budget share: what `serve`, `check-config` and `check-credentials` run on.
pub fn load_config(cli: &Cli) -> Result<Config, String> {
    config_source(cli)?.load()
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

/// Any path, the empty one included (it turns the state off; clap's path
/// parser refuses it).
fn storage_path(s: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(s))
}

fn positive_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d > Duration::ZERO => Ok(d),
        Ok(_) => Err("must be greater than zero".into()),
        Err(e) => Err(format!("{e} (examples: 10s, 2m, 500ms)")),
    }
}

impl Cli {
    /// The state directory: `--storage.path`, else `data/` beside the
    /// config file; `None` when turned off with an empty value.
    pub fn storage(&self) -> Option<PathBuf> {
        match &self.storage_path {
            Some(p) if p.as_os_str().is_empty() => None,
            Some(p) => Some(p.clone()),
            None => Some(
                self.config_file
                    .parent()
                    .unwrap_or(std::path::Path::new(""))
                    .join("data"),
            ),
        }
    }

    /// Reads and validates the config and web config files, at start and
    /// on every reload (one loader, so a reload sees what a restart would).
    pub fn loader(&self, source: app::ConfigSource) -> app::Reloader {
        let web_path = self.web_config_file.clone();
        app::Reloader::new(move || {
            let config = source.load()?;
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
        storage: None,
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
        Some(Command::CheckCredentials) => match load_config(&cli) {
            Ok(config) => probe::run(&config),
            Err(e) => {
                eprintln!("{e}");
                Ok(ExitCode::from(USAGE))
            }
        },
        Some(Command::CheckConfig) => {
            let config = match load_config(&cli) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return Ok(ExitCode::from(USAGE));
                }
            };
            for w in &config.warnings {
                eprintln!("warning: {w}");
            }
            let p = &config.placement;
            if p.shard.count > 1 {
                println!(
                    "{}: configuration OK ({} accounts; shard {} owns {}, {} owned by other shards)",
                    cli.config_file.display(),
                    config.accounts.len() + p.unowned.len(),
                    p.shard,
                    config.accounts.len(),
                    p.unowned.len()
                );
            } else {
                println!(
                    "{}: configuration OK ({} accounts)",
                    cli.config_file.display(),
                    config.accounts.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let loader = match config_source(&cli) {
                Ok(source) => cli.loader(source),
                Err(e) => {
                    eprintln!("{e}");
                    return Ok(ExitCode::from(USAGE));
                }
            };
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
            let serve_opts = app::ServeOptions {
                storage: cli.storage(),
                ..serve_opts
            };
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
    fn shard_flags_name_themselves_when_wrong() {
        let src = |args: &[&str]| {
            let mut all = vec!["cdn-task-exporter"];
            all.extend_from_slice(args);
            config_source(&Cli::try_parse_from(all).unwrap())
        };
        let s = src(&["--shard.index=2", "--shard.count=3", "--budget.share=0.5"]).unwrap();
        assert_eq!(s.shard, Shard::new(2, 3).unwrap());
        assert_eq!(s.budget_share, 0.5);
        assert_eq!(src(&[]).unwrap().shard, Shard::default());
        let e = src(&["--shard.index=3", "--shard.count=3"]).unwrap_err();
        assert!(
            e.contains("--shard.index 3") && e.contains("--shard.count 3"),
            "{e}"
        );
        assert!(src(&["--shard.count=0"])
            .unwrap_err()
            .contains("--shard.count"));
        for bad in ["0", "1.5", "-0.5", "NaN"] {
            let e = src(&[&format!("--budget.share={bad}")]).unwrap_err();
            assert!(e.contains("--budget.share"), "{bad}: {e}");
        }
        assert!(
            Cli::try_parse_from([
                "cdn-task-exporter",
                "--shard.index=1",
                "--shard.index-from-hostname"
            ])
            .is_err(),
            "one way to give the index"
        );
    }

    #[test]
    fn storage_defaults_beside_the_config_and_an_empty_path_turns_it_off() {
        let cli = Cli::parse_from(["x", "--config.file", "/etc/e/c.yml"]);
        assert_eq!(cli.storage(), Some(PathBuf::from("/etc/e/data")));
        let cli = Cli::parse_from(["x"]);
        assert_eq!(cli.storage(), Some(PathBuf::from("data")));
        let cli = Cli::parse_from(["x", "--storage.path=/var/lib/x"]);
        assert_eq!(cli.storage(), Some(PathBuf::from("/var/lib/x")));
        let cli = Cli::parse_from(["x", "--storage.path="]);
        assert_eq!(cli.storage(), None);
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
