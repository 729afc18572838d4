//! Configuration: raw YAML → validated [`Config`].
//!
//! Every problem is collected, not just the first, and each message names
//! the file, the account and the key, so one edit fixes them all. Secrets are
//! never echoed: messages about credentials name the variable or file, not
//! the value.
//!
//! ```yaml
//! scrape_timeout: 10s          # when Prometheus sends no X-Prometheus-Scrape-Timeout-Seconds
//! defaults:                    # any per-account tuning key
//!   min_refresh_interval: 60s
//! accounts:
//!   - name: prod
//!     vendor: aliyun
//!     credentials: { id: LTAI..., secret: "${ALIYUN_SECRET}" }
//! ```

pub(crate) mod raw;

use crate::api::Rate;
use crate::secret::Secret;
use crate::task::TaskType;
use crate::vendors::{Credentials, Vendor, VendorContext, VendorKind};
use raw::{
    deserialize_all, tuning_keys, RawAccount, RawCredentials, RawError, RawTaskDetails, RawTop,
    RawTuning,
};
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// `max_response_bytes` when the config sets none.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 << 20;

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Scrape deadline used when Prometheus does not send one.
    pub scrape_timeout: Duration,
    /// Subtracted from the scrape deadline, to answer before Prometheus gives up.
    pub scrape_timeout_margin: Duration,
    /// Largest vendor response body accepted.
    pub max_response_bytes: usize,
    /// Requests in flight to one vendor endpoint, across all accounts
    /// ([`crate::collector::gate`]).
    pub max_in_flight_per_endpoint: usize,
    /// How often the state files are written (`--storage.path`); they are
    /// also written on shutdown. A SIGKILL loses at most this much: finishes
    /// seen since the last write may be counted again after the restart.
    pub state_interval: Duration,
    pub accounts: Vec<AccountConfig>,
    /// Non-fatal adjustments (e.g. a lookback clamped to the vendor's limit).
    pub warnings: Vec<String>,
    /// Where the accounts other shards poll went ([`crate::shard::partition`]).
    pub placement: crate::shard::Placement,
}

/// One validated account: everything the collector needs to run it.
#[derive(Debug, Clone)]
pub struct AccountConfig {
    pub name: String,
    pub kind: VendorKind,
    /// Endpoint, credentials and domain the vendor module was built from.
    pub context: VendorContext,
    /// The vendor module, built from the context and the validated options.
    pub vendor: Arc<dyn Vendor>,
    /// The `options:` block the vendor was built from, so that a reload
    /// can tell whether the vendor changed.
    pub options: serde_yaml::Value,
    pub task_types: Vec<TaskType>,
    pub settings: Settings,
    /// Budget per vendor API, in the vendor's API order.
    pub rates: Vec<Rate>,
}

/// Equal when a reload may keep the running account: every input the
/// account was built from is the same. The vendor module is compared
/// through what built it (kind, context, options).
impl PartialEq for AccountConfig {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.kind == other.kind
            && self.context == other.context
            && self.options == other.options
            && self.task_types == other.task_types
            && self.settings == other.settings
            && self.rates == other.rates
    }
}

/// Per-account timing and size settings (validated config).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// How far back tasks are listed and kept (clamped to the vendor's limit).
    pub lookback: Duration,
    /// Data younger than this is served from cache without asking the vendor.
    pub min_refresh_interval: Duration,
    /// Each head listing starts this far before the previous one ended, to
    /// catch tasks that appear late; duplicates are merged by id.
    pub overlap: Duration,
    /// The longest a refresh waits for a budget permit before deferring the
    /// rest of its work to the next refresh.
    pub max_permit_wait: Duration,
    /// Deadline for one whole HTTP exchange, body included.
    pub request_timeout: Duration,
    /// Extra attempts after a transient failure (5xx, timeout, network).
    pub retries: u32,
    /// How often quotas are read.
    pub quota_interval: Duration,
    /// Most tasks cached; beyond it the oldest are evicted and counted.
    pub max_tasks: usize,
    /// Most pages one listing may claim, against a vendor that never ends.
    pub max_pages: u32,
    /// What the task details store keeps (the top-level `task_details:`).
    pub details: DetailSettings,
    /// How long a scrape waits for the refresh of an account that already
    /// has data (capped by the scrape deadline). 0: answer from the cache at
    /// once, at the cost of data up to one scrape interval older; an
    /// account with no data yet is always waited for up to the deadline.
    pub scrape_wait: Duration,
}

/// The `task_details:` block: what `/api/v1/tasks` and `/tasks` can show.
/// Caps are per account, so one busy account cannot crowd out the others.
#[derive(Debug, Clone, PartialEq)]
pub struct DetailSettings {
    /// Failed tasks kept (oldest evicted first). 1000 covers a day of a
    /// badly failing account while staying well under a megabyte.
    pub max_failed: usize,
    /// Most recent successful tasks kept, for "did my purge succeed?".
    pub max_recent: usize,
    /// URLs kept per task (the total is kept beside them).
    pub max_urls_per_task: usize,
    /// Keep query strings (they can carry signed tokens).
    pub keep_query: bool,
    /// Keep URLs at all.
    pub urls: bool,
    /// An unfinished task older than this is stuck (as `CdnTaskStuck`).
    pub stuck_after: Duration,
}

impl Default for DetailSettings {
    fn default() -> Self {
        DetailSettings {
            max_failed: 1000,
            max_recent: 100,
            max_urls_per_task: 20,
            keep_query: false,
            urls: true,
            stuck_after: Duration::from_secs(3600),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            lookback: Duration::from_secs(86_400),
            min_refresh_interval: Duration::from_secs(60),
            overlap: Duration::from_secs(120),
            max_permit_wait: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            retries: 2,
            quota_interval: Duration::from_secs(300),
            max_tasks: 500_000,
            max_pages: 1_000,
            details: DetailSettings::default(),
            scrape_wait: Duration::ZERO,
        }
    }
}

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub account: Option<String>,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file)?;
        if let Some(a) = &self.account {
            write!(f, "account {a:?}: ")?;
        }
        if self.key.is_empty() {
            // The file, or the whole account, rather than one key.
            write!(f, "{}", self.message)
        } else {
            write!(f, "key {:?}: {}", self.key, self.message)
        }
    }
}

/// All problems found in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid configuration ({} problem{}):",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads and validates `path`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.clone(),
            account: None,
            key: String::new(),
            message: format!("cannot read file: {e}"),
        }])
    })?;
    parse(&text, &file, &|k| std::env::var(k).ok(), &|p| {
        std::fs::read_to_string(p).map_err(|e| e.to_string())
    })
}

/// Validates config text. `env` and `read_file` are injected for tests.
pub fn parse(
    text: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
    read_file: &dyn Fn(&str) -> Result<String, String>,
) -> Result<Config, ConfigErrors> {
    let mut v = Validator {
        file,
        errors: Vec::new(),
        warnings: Vec::new(),
        account: None,
        max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
    };
    let top: RawTop = match serde_yaml::from_str::<serde_yaml::Value>(text) {
        Err(e) => {
            v.error("", format!("not valid YAML: {e}"));
            return Err(ConfigErrors(v.errors));
        }
        Ok(value) if !value.is_mapping() => {
            v.error(
                "",
                "the file must be a mapping with an `accounts:` list (see the README's config reference)".into(),
            );
            return Err(ConfigErrors(v.errors));
        }
        Ok(value) => {
            let (top, errors) = deserialize_all::<RawTop>(value);
            v.raw_errors("", errors);
            match top {
                Some(t) => t,
                None => return Err(ConfigErrors(v.errors)),
            }
        }
    };
    let scrape_timeout = v.duration(
        "scrape_timeout",
        top.scrape_timeout.as_deref(),
        Duration::from_secs(10),
    );
    let scrape_timeout_margin = v.duration(
        "scrape_timeout_margin",
        top.scrape_timeout_margin.as_deref(),
        Duration::from_millis(500),
    );
    let state_interval = v.duration(
        "state_interval",
        top.state_interval.as_deref(),
        Duration::from_secs(60),
    );
    let max_response_bytes = top.max_response_bytes.unwrap_or(DEFAULT_MAX_RESPONSE_BYTES);
    if !(1024..=1 << 30).contains(&max_response_bytes) {
        v.error(
            "max_response_bytes",
            format!("{max_response_bytes} is outside 1024..=1073741824"),
        );
    } else {
        v.max_response_bytes = max_response_bytes;
    }
    let max_in_flight_per_endpoint = top
        .max_in_flight_per_endpoint
        .unwrap_or(crate::collector::gate::DEFAULT_MAX_IN_FLIGHT);
    if !(1..=10_000).contains(&max_in_flight_per_endpoint) {
        v.error(
            "max_in_flight_per_endpoint",
            format!("{max_in_flight_per_endpoint} is outside 1..=10000"),
        );
    }
    let defaults: RawTuning = if top.defaults.is_null() {
        RawTuning::default()
    } else {
        let (d, errors) = deserialize_all::<RawTuning>(top.defaults);
        v.raw_errors("defaults", errors);
        d.unwrap_or_default()
    };
    let details = v.task_details(top.task_details);
    if top.accounts.is_empty() {
        v.error("accounts", "at least one account is required".into());
    }
    let mut names = HashSet::new();
    let mut accounts = Vec::new();
    for (i, raw) in top.accounts.into_iter().enumerate() {
        if let Some(a) = v.account(i, raw, &defaults, env, read_file) {
            if !names.insert(a.name.clone()) {
                v.account = Some(a.name.clone());
                v.error("name", "duplicate account name".into());
            } else {
                accounts.push(a);
            }
        }
    }
    for a in &mut accounts {
        a.settings.details = details.clone();
    }
    if v.errors.is_empty() {
        Ok(Config {
            scrape_timeout,
            scrape_timeout_margin,
            max_response_bytes,
            max_in_flight_per_endpoint,
            state_interval,
            accounts,
            warnings: v.warnings,
            placement: Default::default(),
        })
    } else {
        Err(ConfigErrors(v.errors))
    }
}

struct Validator<'a> {
    file: &'a str,
    errors: Vec<ConfigError>,
    warnings: Vec<String>,
    account: Option<String>,
    /// The top-level `max_response_bytes`, for the vendor modules.
    max_response_bytes: usize,
}

impl Validator<'_> {
    /// Records raw-layer errors found below `prefix`.
    fn raw_errors(&mut self, prefix: &str, errors: Vec<RawError>) {
        for e in errors {
            let key = match (prefix.is_empty(), e.path.is_empty()) {
                (true, _) => e.path,
                (false, true) => prefix.to_owned(),
                (false, false) => format!("{prefix}.{}", e.path),
            };
            self.error(&key, e.message);
        }
    }

    fn error(&mut self, key: &str, message: String) {
        // One message per key: a value of the wrong type is not also "missing".
        if !key.is_empty()
            && self
                .errors
                .iter()
                .any(|e| e.key == key && e.account == self.account)
        {
            return;
        }
        self.errors.push(ConfigError {
            file: self.file.into(),
            account: self.account.clone(),
            key: key.into(),
            message,
        });
    }

    /// Validates the `task_details:` block.
    fn task_details(&mut self, raw: serde_yaml::Value) -> DetailSettings {
        let d = DetailSettings::default();
        if raw.is_null() {
            return d;
        }
        let (r, errors) = deserialize_all::<RawTaskDetails>(raw);
        self.raw_errors("task_details", errors);
        let r = r.unwrap_or_default();
        let mut cap = |key: &str, v: Option<usize>, default: usize, max: usize| {
            let v = v.unwrap_or(default);
            if v > max {
                self.error(
                    &format!("task_details.{key}"),
                    format!("{v} is outside 0..={max}"),
                );
            }
            v.min(max)
        };
        let max_failed = cap("max_failed", r.max_failed, d.max_failed, 1_000_000);
        let max_recent = cap("max_recent", r.max_recent, d.max_recent, 1_000_000);
        let max_urls_per_task = cap(
            "max_urls_per_task",
            r.max_urls_per_task,
            d.max_urls_per_task,
            10_000,
        );
        let stuck_after = self.duration(
            "task_details.stuck_after",
            r.stuck_after.as_deref(),
            d.stuck_after,
        );
        DetailSettings {
            max_failed,
            max_recent,
            max_urls_per_task,
            keep_query: r.keep_query.unwrap_or(d.keep_query),
            urls: r.urls.unwrap_or(d.urls),
            stuck_after,
        }
    }

    fn duration(&mut self, key: &str, raw: Option<&str>, default: Duration) -> Duration {
        match raw {
            None => default,
            Some(s) => {
                match humantime::parse_duration(s.trim()) {
                    Ok(d) if !d.is_zero() => d,
                    Ok(_) => {
                        self.error(key, "must be greater than zero".into());
                        default
                    }
                    Err(_) if s.trim_start().starts_with('-') => {
                        self.error(
                        key,
                        format!("bad duration {s:?}: durations cannot be negative; use e.g. 30s, 5m, 1h"),
                    );
                        default
                    }
                    Err(e) => {
                        let why = e.to_string();
                        let message = if why.starts_with("expected number") {
                            format!("bad duration {s:?}: not a number with a unit; use e.g. 30s, 5m, 1h")
                        } else {
                            format!("bad duration {s:?} ({why}); use e.g. 30s, 5m, 1h")
                        };
                        self.error(key, message);
                        default
                    }
                }
            }
        }
    }

    fn account(
        &mut self,
        index: usize,
        raw: serde_yaml::Value,
        defaults: &RawTuning,
        env: &dyn Fn(&str) -> Option<String>,
        read_file: &dyn Fn(&str) -> Result<String, String>,
    ) -> Option<AccountConfig> {
        let name = raw.get("name").and_then(|n| n.as_str()).map(str::to_owned);
        self.account = Some(name.clone().unwrap_or_else(|| format!("#{}", index + 1)));
        let serde_yaml::Value::Mapping(mut map) = raw else {
            self.error(
                "",
                "an account must be a mapping of keys (name, vendor, credentials, ...)".into(),
            );
            return None;
        };
        let mut tuning_map = serde_yaml::Mapping::new();
        for k in tuning_keys() {
            if let Some(val) = map.remove(*k) {
                tuning_map.insert((*k).into(), val);
            }
        }
        let (tuning, errors) = deserialize_all::<RawTuning>(serde_yaml::Value::Mapping(tuning_map));
        self.raw_errors("", errors);
        let tuning = tuning.unwrap_or_default();
        let (acct, errors) = deserialize_all::<RawAccount>(serde_yaml::Value::Mapping(map));
        let errors = errors
            .into_iter()
            .map(|mut e| {
                if e.message.starts_with("unknown key") {
                    e.message = format!("{}, {}", e.message, tuning_keys().join(", "));
                }
                e
            })
            .collect();
        self.raw_errors("", errors);
        let acct = acct?;
        if acct.name.trim().is_empty() {
            self.error("name", "must not be empty".into());
        }
        let Some(kind) = vendor_kind(&acct.vendor) else {
            self.error(
                "vendor",
                format!(
                    "unknown vendor {:?}; expected one of {}",
                    acct.vendor,
                    VendorKind::names()
                ),
            );
            return None;
        };

        let credentials = self.credentials(&acct.credentials, env, read_file);
        let endpoint = acct
            .endpoint
            .clone()
            .unwrap_or_else(|| kind.default_endpoint().to_owned());
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            self.error(
                "endpoint",
                format!("{endpoint:?} must start with http:// or https://"),
            );
        }
        let context = VendorContext {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            credentials: credentials.clone().unwrap_or_default(),
            domain: acct.domain.clone(),
            max_response_bytes: self.max_response_bytes,
        };
        let options = acct.options.clone();
        let vendor = match kind.build(context.clone(), acct.options) {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(&format!("options.{}", e.path), e.message);
                None
            }
        };
        let task_types = self.task_types(kind, acct.task_types.as_deref());
        if acct.domain.as_deref().is_some_and(|d| d.trim().is_empty()) {
            self.error("domain", "must not be empty when given".into());
        }
        let settings = self.settings(kind, &tuning, defaults);
        let fraction = tuning
            .safety_fraction
            .or(defaults.safety_fraction)
            .unwrap_or(0.5);
        let fraction_key = if tuning.safety_fraction.is_some() {
            "safety_fraction"
        } else {
            "defaults.safety_fraction"
        };
        let fraction = if fraction > 0.0 && fraction <= 1.0 {
            fraction
        } else {
            self.error(fraction_key, format!("{fraction} is outside (0, 1]"));
            0.5
        };
        let rates = self.rates(kind, fraction, acct.rate_budget.as_ref());
        credentials?;
        Some(AccountConfig {
            name: acct.name,
            kind,
            context,
            vendor: vendor?,
            options,
            task_types,
            settings,
            rates,
        })
    }

    fn credentials(
        &mut self,
        raw: &RawCredentials,
        env: &dyn Fn(&str) -> Option<String>,
        read_file: &dyn Fn(&str) -> Result<String, String>,
    ) -> Option<Credentials> {
        let id = self.credential(
            "credentials.id",
            raw.id.as_deref(),
            raw.id_file.as_deref(),
            true,
            env,
            read_file,
        );
        let secret = self.credential(
            "credentials.secret",
            raw.secret.as_deref(),
            raw.secret_file.as_deref(),
            true,
            env,
            read_file,
        );
        let token = self.credential(
            "credentials.session_token",
            raw.session_token.as_deref(),
            raw.session_token_file.as_deref(),
            false,
            env,
            read_file,
        );
        Some(Credentials {
            id: id??.expose().to_owned(),
            secret: secret??,
            session_token: token?,
        })
    }

    /// Resolves an inline, `${ENV}` or `*_file` credential. Outer `None`: an
    /// error was reported; inner `None`: absent and optional.
    fn credential(
        &mut self,
        key: &str,
        inline: Option<&str>,
        file: Option<&str>,
        required: bool,
        env: &dyn Fn(&str) -> Option<String>,
        read_file: &dyn Fn(&str) -> Result<String, String>,
    ) -> Option<Option<Secret>> {
        let value = match (inline, file) {
            (Some(_), Some(_)) => {
                self.error(key, format!("set either {key} or {key}_file, not both"));
                return None;
            }
            (Some(s), None) => match expand_env(s, env) {
                Ok(v) => v,
                Err(var) => {
                    self.error(key, format!("environment variable {var} is not set"));
                    return None;
                }
            },
            (None, Some(path)) => match read_file(path) {
                Ok(v) => v.trim_end_matches(['\n', '\r']).to_owned(),
                Err(e) => {
                    self.error(&format!("{key}_file"), format!("cannot read {path:?}: {e}"));
                    return None;
                }
            },
            (None, None) if required => {
                self.error(
                    key,
                    format!("missing: set {key} (inline or \"${{ENV_VAR}}\") or {key}_file"),
                );
                return None;
            }
            (None, None) => return Some(None),
        };
        if value.is_empty() {
            if required {
                self.error(key, "is empty".into());
                return None;
            }
            return Some(None);
        }
        Some(Some(Secret::new(value)))
    }

    fn task_types(&mut self, kind: VendorKind, raw: Option<&[String]>) -> Vec<TaskType> {
        let supported = kind.task_types();
        let Some(raw) = raw else {
            return supported.to_vec();
        };
        let mut out = Vec::new();
        for (i, s) in raw.iter().enumerate() {
            match TaskType::parse(s) {
                Some(t) if supported.contains(&t) => {
                    if !out.contains(&t) {
                        out.push(t);
                    }
                }
                Some(_) => self.error(&format!("task_types[{i}]"), format!("{kind} does not report {s} tasks")),
                None => self.error(
                    &format!("task_types[{i}]"),
                    format!("unknown task type {s:?}; expected refresh_file, refresh_dir, refresh_regex, refresh_tag or prefetch"),
                ),
            }
        }
        if raw.is_empty() {
            self.error("task_types", "must list at least one task type".into());
        }
        out.sort();
        out
    }

    fn settings(&mut self, kind: VendorKind, t: &RawTuning, d: &RawTuning) -> Settings {
        let base = Settings::default();
        let pick = |this: &mut Self,
                    key: &str,
                    own: &Option<String>,
                    def: &Option<String>,
                    fallback: Duration| {
            match (own, def) {
                (Some(s), _) => this.duration(key, Some(s), fallback),
                (None, Some(s)) => this.duration(&format!("defaults.{key}"), Some(s), fallback),
                (None, None) => fallback,
            }
        };
        let mut lookback = pick(self, "lookback", &t.lookback, &d.lookback, base.lookback);
        let max = kind.max_lookback();
        if lookback > max {
            self.warnings.push(format!(
                "{}: account {:?}: lookback {} clamped to {}, the most {kind} allows",
                self.file,
                self.account.as_deref().unwrap_or(""),
                humantime::format_duration(lookback),
                humantime::format_duration(max)
            ));
            lookback = max;
        }
        let min_refresh_interval = pick(
            self,
            "min_refresh_interval",
            &t.min_refresh_interval,
            &d.min_refresh_interval,
            base.min_refresh_interval,
        );
        if min_refresh_interval < Duration::from_secs(1) {
            self.error("min_refresh_interval", "must be at least 1s".into());
        }
        let s = Settings {
            lookback,
            min_refresh_interval,
            overlap: pick(self, "overlap", &t.overlap, &d.overlap, base.overlap),
            max_permit_wait: pick(
                self,
                "max_permit_wait",
                &t.max_permit_wait,
                &d.max_permit_wait,
                base.max_permit_wait,
            ),
            request_timeout: pick(
                self,
                "request_timeout",
                &t.request_timeout,
                &d.request_timeout,
                base.request_timeout,
            ),
            retries: t.retries.or(d.retries).unwrap_or(base.retries),
            quota_interval: pick(
                self,
                "quota_interval",
                &t.quota_interval,
                &d.quota_interval,
                base.quota_interval,
            ),
            max_tasks: t.max_tasks.or(d.max_tasks).unwrap_or(base.max_tasks),
            max_pages: base.max_pages,
            details: DetailSettings::default(),
            scrape_wait: self.scrape_wait(t, d),
        };
        if s.retries > 5 {
            self.error("retries", format!("{} is more than 5", s.retries));
        }
        if !(100..=50_000_000).contains(&s.max_tasks) {
            self.error(
                "max_tasks",
                format!("{} is outside 100..=50000000", s.max_tasks),
            );
        }
        if s.overlap > lookback {
            self.error("overlap", "must not exceed lookback".into());
        }
        s
    }

    /// `scrape_wait`: like the other durations, but `0s` (the default) is
    /// allowed; it means "never wait for an account that has data". Values
    /// above the scrape deadline wait the whole deadline.
    fn scrape_wait(&mut self, t: &RawTuning, d: &RawTuning) -> Duration {
        let (key, raw) = match (&t.scrape_wait, &d.scrape_wait) {
            (Some(s), _) => ("scrape_wait".to_string(), s),
            (None, Some(s)) => ("defaults.scrape_wait".to_string(), s),
            (None, None) => return Duration::ZERO,
        };
        match humantime::parse_duration(raw.trim()) {
            Ok(d) if d.is_zero() => Duration::ZERO,
            _ => self.duration(&key, Some(raw), Duration::ZERO),
        }
    }

    fn rates(
        &mut self,
        kind: VendorKind,
        fraction: f64,
        overrides: Option<&BTreeMap<String, String>>,
    ) -> Vec<Rate> {
        let apis = kind.apis();
        let mut rates: Vec<Rate> = apis.iter().map(|a| a.limit.scaled(fraction)).collect();
        for (api, raw) in overrides.into_iter().flatten() {
            let key = format!("rate_budget.{api}");
            let Some(i) = apis.iter().position(|a| a.name == api) else {
                let known: Vec<_> = apis.iter().map(|a| a.name).collect();
                self.error(
                    &key,
                    format!(
                        "{kind} has no API {api:?}; expected one of {}",
                        known.join(", ")
                    ),
                );
                continue;
            };
            match Rate::parse(raw) {
                Ok(r) if exceeds(r, apis[i].limit) => self.error(
                    &key,
                    format!(
                        "budget {r} exceeds the vendor limit {} for {api}",
                        apis[i].limit
                    ),
                ),
                Ok(r) => rates[i] = r,
                Err(e) => self.error(&key, e),
            }
        }
        rates
    }
}

/// True when `budget` could send more than `limit` allows in some window of
/// the limit's length (a same-rate budget with a longer window still bursts).
pub fn exceeds(budget: Rate, limit: Rate) -> bool {
    let windows = (limit.per.as_secs_f64() / budget.per.as_secs_f64() - 1e-9)
        .ceil()
        .max(1.0);
    f64::from(budget.requests) * windows > f64::from(limit.requests)
}

fn vendor_kind(s: &str) -> Option<VendorKind> {
    VendorKind::from_name(s)
}

/// Expands `${NAME}` references; `Err(NAME)` for an unset variable.
fn expand_env(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = &after[..end];
        out.push_str(&env(name).ok_or_else(|| name.to_owned())?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        (k == "TEST_SECRET").then(|| "s3cr3t-value".to_owned())
    }

    fn no_files(p: &str) -> Result<String, String> {
        if p == "/run/secret" {
            Ok("file-secret\n".into())
        } else {
            Err("No such file or directory".into())
        }
    }

    fn check(text: &str) -> Result<Config, ConfigErrors> {
        parse(text, "cfg.yml", &env, &no_files)
    }

    const GOOD: &str = r#"
defaults:
  min_refresh_interval: 30s
accounts:
  - name: a
    vendor: testing
    credentials: { id: acct, secret: "${TEST_SECRET}" }
    endpoint: http://127.0.0.1:9/
    lookback: 30d
  - name: b
    vendor: testing
    credentials: { id: acct, secret_file: /run/secret }
    task_types: [prefetch, refresh_file, prefetch]
    rate_budget: { ListTasks: 4/1s }
"#;

    #[test]
    fn accepts_a_good_config() {
        let c = check(GOOD).unwrap();
        assert_eq!(c.accounts.len(), 2);
        let a = &c.accounts[0];
        assert_eq!(a.context.credentials.secret.expose(), "s3cr3t-value");
        assert_eq!(a.context.endpoint, "http://127.0.0.1:9");
        assert_eq!(a.settings.min_refresh_interval, Duration::from_secs(30));
        assert_eq!(
            a.settings.lookback,
            VendorKind::Testing.max_lookback(),
            "clamped"
        );
        assert_eq!(c.warnings.len(), 1);
        assert_eq!(
            a.rates[0],
            Rate::new(5, Duration::from_secs(1)),
            "10/s x 0.5"
        );
        let b = &c.accounts[1];
        assert_eq!(b.context.credentials.secret.expose(), "file-secret");
        assert_eq!(
            b.task_types,
            vec![TaskType::RefreshFile, TaskType::Prefetch]
        );
        assert_eq!(b.rates[0], Rate::new(4, Duration::from_secs(1)));
        assert!(
            !format!("{c:?}").contains("s3cr3t"),
            "Debug must not leak secrets"
        );
    }

    #[test]
    fn scrape_wait_defaults_to_zero_and_is_read_per_account_or_from_defaults() {
        let c = check(GOOD).unwrap();
        assert_eq!(c.accounts[0].settings.scrape_wait, Duration::ZERO);
        let yaml = "defaults:\n  scrape_wait: 2s\naccounts:\n  - name: a\n    vendor: testing\n    credentials: { id: x, secret: y }\n  - name: b\n    vendor: testing\n    credentials: { id: x, secret: y }\n    scrape_wait: 0s\n";
        let c = check(yaml).unwrap();
        assert_eq!(c.accounts[0].settings.scrape_wait, Duration::from_secs(2));
        assert_eq!(c.accounts[1].settings.scrape_wait, Duration::ZERO);
        let bad = "accounts:\n  - name: a\n    vendor: testing\n    credentials: { id: x, secret: y }\n    scrape_wait: -1s\n";
        let errs = errors(bad);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with(r#"cfg.yml: account "a": key "scrape_wait": bad duration"#),
            "{errs:?}"
        );
    }

    fn errors(text: &str) -> Vec<String> {
        check(text)
            .unwrap_err()
            .0
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn max_in_flight_per_endpoint_defaults_to_32_and_is_bounded() {
        assert_eq!(check(GOOD).unwrap().max_in_flight_per_endpoint, 32);
        let body =
            "accounts:\n  - name: a\n    vendor: testing\n    credentials: { id: x, secret: y }\n";
        let c = check(&format!("max_in_flight_per_endpoint: 4\n{body}")).unwrap();
        assert_eq!(c.max_in_flight_per_endpoint, 4);
        for bad in ["0", "10001"] {
            let errs = errors(&format!("max_in_flight_per_endpoint: {bad}\n{body}"));
            assert_eq!(
                errs,
                vec![format!(
                    r#"cfg.yml: key "max_in_flight_per_endpoint": {bad} is outside 1..=10000"#
                )]
            );
        }
    }

    #[test]
    fn state_interval_defaults_to_a_minute_and_must_be_positive() {
        let base = "accounts: [{name: a, vendor: testing, credentials: {id: x, secret: y}}]\n";
        assert_eq!(check(base).unwrap().state_interval, Duration::from_secs(60));
        let c = check(&format!("state_interval: 15s\n{base}")).unwrap();
        assert_eq!(c.state_interval, Duration::from_secs(15));
        let errs = errors(&format!("state_interval: 0s\n{base}"));
        assert!(
            errs.iter()
                .any(|e| e.contains("state_interval") && e.contains("greater than zero")),
            "{errs:?}"
        );
    }

    #[test]
    fn every_error_names_file_account_and_key_and_all_are_reported() {
        let errs = errors(
            r#"
accounts:
  - name: a
    vendor: testing
    credentials: { id: x, secret: "${MISSING_VAR}" }
    lookback: 3 fortnights
    rate_budget: { ListTasks: 11/1s, Nope: 1/1s }
  - name: b
    vendor: testing
    credentials: { id: x }
    min_refresh_interval: soon
  - name: c
    vendor: testing
    colour: blue
    credentials: { id: x, secret: y }
  - name: d
    vendor: akamai
    credentials: { id: x, secret: y }
"#,
        );
        let expect = [
            r#"cfg.yml: account "a": key "credentials.secret": environment variable MISSING_VAR is not set"#,
            r#"cfg.yml: account "a": key "lookback": bad duration"#,
            r#"cfg.yml: account "a": key "rate_budget.ListTasks": budget 11/1s exceeds the vendor limit 10/1s"#,
            r#"cfg.yml: account "a": key "rate_budget.Nope": testing has no API"#,
            r#"cfg.yml: account "b": key "credentials.secret": missing"#,
            r#"cfg.yml: account "b": key "min_refresh_interval": bad duration"#,
            r#"cfg.yml: account "c": key "colour": unknown key `colour`"#,
            r#"cfg.yml: account "d": key "vendor": unknown vendor "akamai""#,
        ];
        for e in expect {
            assert!(
                errs.iter().any(|got| got.starts_with(e)),
                "missing {e:?} in {errs:#?}"
            );
        }
        assert_eq!(errs.len(), expect.len(), "{errs:#?}");
    }

    #[test]
    fn bad_yaml_and_top_level_keys() {
        let e = errors("accounts: [\n");
        assert!(e[0].starts_with("cfg.yml: not valid YAML"), "{e:?}");
        let e = errors("acounts: []\n");
        assert!(e[0].contains("unknown key `acounts`"), "{e:?}");
        let e = errors("accounts: []\n");
        assert!(e[0].contains("at least one account"), "{e:?}");
    }

    #[test]
    fn secrets_never_appear_in_errors() {
        let text = r#"
accounts:
  - name: a
    vendor: testing
    credentials: { id: x, secret: "${TEST_SECRET}" }
    retries: 9
    safety_fraction: 2
"#;
        let all = check(text).unwrap_err().to_string();
        assert!(!all.contains("s3cr3t"), "{all}");
        assert!(
            all.contains("key \"retries\"") && all.contains("key \"safety_fraction\""),
            "{all}"
        );
    }

    #[test]
    fn burst_aware_budget_check() {
        let limit = Rate::new(5, Duration::from_secs(1));
        assert!(!exceeds(Rate::new(2, Duration::from_secs(1)), limit));
        assert!(
            exceeds(Rate::new(10, Duration::from_secs(2)), limit),
            "same rate, bigger burst"
        );
        let cdn = Rate::new(1, Duration::from_secs(300));
        assert!(!exceeds(Rate::new(1, Duration::from_secs(600)), cdn));
        assert!(exceeds(Rate::new(1, Duration::from_secs(200)), cdn));
    }

    #[test]
    fn env_expansion() {
        assert_eq!(
            expand_env("a${TEST_SECRET}b", &env).unwrap(),
            "as3cr3t-valueb"
        );
        assert_eq!(expand_env("${NOPE}", &env).unwrap_err(), "NOPE");
        assert_eq!(expand_env("plain", &env).unwrap(), "plain");
    }
}

#[cfg(test)]
mod all_errors {
    use super::parse;

    /// Issue 18: type errors stopped at the first (six bad values reported
    /// one), and messages named Rust types and the test vendor.
    #[test]
    fn every_type_error_is_reported_at_once_in_user_terms() {
        let yaml = "scrape_timeout: -10s\ndefaults:\n  lookback: 7\n  retries: many\naccounts:\n  - name: a\n    vendor: aliyun\n    credentials: { id: x, secret: y }\n    min_refresh_interval: [1]\n    max_tasks: lots\n    task_types: refresh_file\n  - name: c\n    vendor: ucloud\n    credentials: { id: [1], secret: y }\n    options: { page_size: big }\n  - name: d\n    vendor: nosuch\n    credentials: { id: x, secret: y }\n";
        let errs = parse(yaml, "f.yml", &|_| None, &|_| Err("no".into()))
            .unwrap_err()
            .0;
        let keys: Vec<(Option<&str>, &str)> = errs
            .iter()
            .map(|e| (e.account.as_deref(), e.key.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                (None, "scrape_timeout"),
                (None, "defaults.lookback"),
                (None, "defaults.retries"),
                (Some("a"), "min_refresh_interval"),
                (Some("a"), "max_tasks"),
                (Some("a"), "task_types"),
                (Some("c"), "credentials.id"),
                (Some("c"), "options.page_size"),
                (Some("d"), "vendor"),
            ],
            "{errs:#?}"
        );
        for e in &errs {
            let m = e.to_string();
            assert!(m.starts_with("f.yml: "), "{m}");
            for internal in [
                "Raw",
                "struct",
                "u32",
                "usize",
                "testing",
                "sequence",
                "expected number at",
            ] {
                assert!(!m.contains(internal), "{internal:?} in {m}");
            }
        }
        assert!(
            errs[0].message.contains("cannot be negative"),
            "{:?}",
            errs[0]
        );
    }

    #[test]
    fn a_file_that_is_not_a_mapping_or_not_yaml_says_so_without_a_key() {
        for text in ["- a\n", "accounts: [\n", "42"] {
            let errs = parse(text, "f.yml", &|_| None, &|_| Err("no".into()))
                .unwrap_err()
                .0;
            assert_eq!(errs.len(), 1, "{errs:?}");
            let m = errs[0].to_string();
            assert!(!m.contains("key "), "{m}");
            assert!(!m.contains("RawTop") && !m.contains("\".\""), "{m}");
        }
    }
}
