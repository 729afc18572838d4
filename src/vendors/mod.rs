//! The vendor contract and the registry of vendor modules.
//!
//! A vendor module is pure and synchronous: it plans queries, builds signed
//! requests for them, and parses responses into normalized [`Task`]s. It
//! never sends anything, sleeps, or reads the clock: the collector's driver
//! owns I/O, timing, retries and the rate budget, so those live in one place.
//!
//! Adding a vendor: one folder here, one [`VendorKind`] variant, one arm in
//! each `match` below (the compiler lists them), its vectors and its
//! simulator module.

pub mod aliyun;
pub mod cdnetworks;
pub mod testing;
pub mod ucloud;
pub mod volcengine;

use crate::collector::budget::Rate;
use crate::http::{HttpRequest, HttpResponse};
use crate::secret::Secret;
use crate::task::{Task, TaskType};
use chrono::{DateTime, Utc};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The supported vendors. The label value is [`VendorKind::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VendorKind {
    /// The exporter's own minimal vendor, used by tests of the core.
    Testing,
    /// UCloud UCDN.
    Ucloud,
    /// Alibaba Cloud CDN.
    Aliyun,
    /// Volcengine multi-cloud CDN (MCDN).
    Volcengine,
    /// CDNetworks (Wangsu) content management.
    Cdnetworks,
}

impl VendorKind {
    /// Names accepted in config, for error messages.
    pub const NAMES: &'static str = "testing, volcengine, aliyun, ucloud, cdnetworks";

    /// The `vendor` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            VendorKind::Testing => "testing",
            VendorKind::Ucloud => "ucloud",
            VendorKind::Aliyun => "aliyun",
            VendorKind::Volcengine => "volcengine",
            VendorKind::Cdnetworks => "cdnetworks",
        }
    }

    /// The APIs an account of this vendor calls, each with its published limit.
    pub fn apis(self) -> &'static [ApiSpec] {
        match self {
            VendorKind::Testing => testing::APIS,
            VendorKind::Ucloud => ucloud::APIS,
            VendorKind::Aliyun => aliyun::APIS,
            VendorKind::Volcengine => volcengine::APIS,
            VendorKind::Cdnetworks => cdnetworks::APIS,
        }
    }

    /// How far back the vendor lets us list tasks.
    pub fn max_lookback(self) -> Duration {
        match self {
            VendorKind::Testing => testing::MAX_LOOKBACK,
            VendorKind::Ucloud => ucloud::MAX_LOOKBACK,
            VendorKind::Aliyun => aliyun::MAX_LOOKBACK,
            VendorKind::Volcengine => volcengine::MAX_LOOKBACK,
            VendorKind::Cdnetworks => cdnetworks::MAX_LOOKBACK,
        }
    }

    /// The public endpoint used when the account sets none.
    pub fn default_endpoint(self) -> &'static str {
        match self {
            VendorKind::Testing => "http://127.0.0.1:1",
            VendorKind::Ucloud => ucloud::DEFAULT_ENDPOINT,
            VendorKind::Aliyun => aliyun::DEFAULT_ENDPOINT,
            VendorKind::Volcengine => volcengine::DEFAULT_ENDPOINT,
            VendorKind::Cdnetworks => cdnetworks::DEFAULT_ENDPOINT,
        }
    }

    /// Task types the vendor can report; config rejects others.
    pub fn task_types(self) -> &'static [TaskType] {
        match self {
            VendorKind::Testing => &TaskType::ALL,
            VendorKind::Ucloud => ucloud::TASK_TYPES,
            VendorKind::Aliyun => aliyun::TASK_TYPES,
            VendorKind::Volcengine => volcengine::TASK_TYPES,
            VendorKind::Cdnetworks => cdnetworks::TASK_TYPES,
        }
    }

    /// Validates the account's `options:` block.
    pub fn parse_options(self, options: serde_yaml::Value) -> Result<VendorOptions, OptionsError> {
        match self {
            VendorKind::Testing => parse_options_as(options).map(VendorOptions::Testing),
            VendorKind::Ucloud => parse_options_as(options).map(VendorOptions::Ucloud),
            VendorKind::Aliyun => parse_options_as(options).map(VendorOptions::Aliyun),
            VendorKind::Volcengine => {
                volcengine::parse_options(options).map(VendorOptions::Volcengine)
            }
            VendorKind::Cdnetworks => parse_options_as(options).map(VendorOptions::Cdnetworks),
        }
    }
}

impl fmt::Display for VendorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Vendor-specific account options, validated at startup.
#[derive(Debug, Clone)]
pub enum VendorOptions {
    Testing(testing::Options),
    Ucloud(ucloud::Options),
    Aliyun(aliyun::Options),
    Volcengine(volcengine::Options),
    Cdnetworks(cdnetworks::Options),
}

/// An invalid `options:` key: the dotted path below `options` and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionsError {
    pub path: String,
    pub message: String,
}

/// Deserializes a vendor's options struct (which should use
/// `deny_unknown_fields`), keeping the path of the offending key.
pub fn parse_options_as<T: serde::de::DeserializeOwned + Default>(
    value: serde_yaml::Value,
) -> Result<T, OptionsError> {
    if value.is_null() {
        return Ok(T::default());
    }
    serde_path_to_error::deserialize(value).map_err(|e| OptionsError {
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

/// One API a vendor exposes, with the limit its documentation publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiSpec {
    /// The vendor's action name (the `api` label value).
    pub name: &'static str,
    /// The documented per-account limit.
    pub limit: Rate,
}

/// Credentials of one account. Field names are generic; README maps them
/// to each vendor's terms (AccessKeyId, PublicKey, username, ...).
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// The public half: access key id, public key, or user name.
    pub id: String,
    /// The private half: secret key, private key, or API key.
    pub secret: Secret,
    /// STS session / security token, where the vendor supports one.
    pub session_token: Option<Secret>,
}

/// What a vendor module needs to build requests for one account.
#[derive(Debug, Clone)]
pub struct VendorContext {
    /// Base URL, e.g. `https://cdn.aliyuncs.com` (no trailing slash).
    pub endpoint: String,
    pub credentials: Credentials,
    /// Only tasks of this domain, where the vendor can filter.
    pub domain: Option<String>,
    pub options: VendorOptions,
}

/// A created-time window `[from, to)`, Unix seconds UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    pub from: i64,
    pub to: i64,
}

impl Window {
    /// Length in seconds (0 if inverted).
    pub fn len(&self) -> i64 {
        (self.to - self.from).max(0)
    }

    /// True when the window holds no instant.
    pub fn is_empty(&self) -> bool {
        self.to <= self.from
    }
}

/// One listing the driver runs page by page: an API, optionally filtered to
/// a task type (Aliyun ObjectType, Volcengine TaskType, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stream {
    /// Index into [`Vendor::apis`].
    pub api: usize,
    /// Type filter sent to the vendor, or `None` for all types.
    pub task_type: Option<TaskType>,
}

/// A task still unfinished in the cache, to be re-checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfinished {
    pub id: String,
    pub task_type: TaskType,
    pub created_at: i64,
    /// The stream that listed it (re-checks often go to the same API).
    pub stream: Stream,
}

/// A unit of work the driver executes (each page costs one permit of
/// [`Query::api`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// Tasks created in a window.
    List { stream: Stream, window: Window },
    /// Specific tasks by id.
    ById {
        api: usize,
        task_type: Option<TaskType>,
        ids: Vec<String>,
    },
    /// Remaining daily quota.
    Quota { api: usize },
}

impl Query {
    /// The API whose budget this query spends.
    pub fn api(&self) -> usize {
        match self {
            Query::List { stream, .. } => stream.api,
            Query::ById { api, .. } | Query::Quota { api } => *api,
        }
    }
}

/// A daily quota as the vendor reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    pub task_type: TaskType,
    pub limit: f64,
    pub remaining: f64,
}

/// What one response contained.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub tasks: Vec<Task>,
    pub quotas: Vec<Quota>,
    /// The next page to request, or `None` when this was the last.
    pub next_page: Option<u32>,
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

/// A failed request, classified. The message is the vendor's own text and
/// must never contain a credential (vendors echo the string-to-sign in
/// signature errors, never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub outcome: Outcome,
    /// The vendor's error code (`Throttling`, `171`, ...), for logs.
    pub code: Option<String>,
    pub message: String,
    /// How long the vendor asked us to wait, when it said.
    pub retry_after: Option<Duration>,
    /// The vendor's request id, for support tickets.
    pub request_id: Option<String>,
}

impl ApiError {
    /// An error of `outcome` with a message.
    pub fn new(outcome: Outcome, message: impl Into<String>) -> Self {
        ApiError {
            outcome,
            code: None,
            message: message.into(),
            retry_after: None,
            request_id: None,
        }
    }

    /// A body we could not understand. Only a short, sanitized prefix of the
    /// body is kept: enough to recognise an HTML error page.
    pub fn parse(what: impl fmt::Display, body: &[u8]) -> Self {
        let snippet: String = String::from_utf8_lossy(&body[..body.len().min(80)])
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        ApiError::new(
            Outcome::ParseError,
            format!("{what}; body starts {snippet:?}"),
        )
    }

    /// Sets the vendor code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Sets the request id.
    pub fn with_request_id(mut self, id: Option<String>) -> Self {
        self.request_id = id;
        self
    }

    /// Sets the requested pause.
    pub fn with_retry_after(mut self, d: Option<Duration>) -> Self {
        self.retry_after = d;
        self
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.outcome.as_str())?;
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(id) = &self.request_id {
            write!(f, " [request id {id}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// A request that could not be built (a bug or a bad option, never I/O).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot build request: {0}")]
pub struct BuildError(pub String);

/// The vendor contract: pure planning, building and parsing.
pub trait Vendor: Send + Sync + 'static {
    /// Which vendor this is.
    fn kind(&self) -> VendorKind;

    /// Listings that together cover the watched task types.
    fn streams(&self, watched: &[TaskType]) -> Vec<Stream>;

    /// The watched task types whose data `stream` holds, so freshness can be
    /// told per task type. Default: its type filter, or every watched type.
    fn stream_task_types(&self, stream: &Stream, watched: &[TaskType]) -> Vec<TaskType> {
        match stream.task_type {
            Some(t) => vec![t],
            None => watched.to_vec(),
        }
    }

    /// The longest window one list query of `stream` may span
    /// (CDNetworks fetch: one day). `None`: no limit.
    fn max_span(&self, _stream: &Stream) -> Option<Duration> {
        None
    }

    /// Queries that re-check these unfinished tasks (by id where the vendor
    /// can, else by the narrowest window that holds them).
    fn plan_rechecks(&self, unfinished: &[Unfinished]) -> Vec<Query>;

    /// `Some(records per page)` for vendors that can re-check only by
    /// listing windows again and whose list budget is too scarce for
    /// separate re-check calls (CDNetworks fetch: one call per 5 minutes).
    /// The driver then stretches each head listing back over the stream's
    /// unfinished tasks (within [`Vendor::max_span`], and no further than
    /// half a page of cached tasks, so the head stays one call); continues a
    /// listing whose paging stopped before anything else; and while older
    /// gaps remain gives every other call to the newest of them, so a cold
    /// start's backfill is not starved by heads.
    fn recheck_by_relisting(&self) -> Option<u32> {
        None
    }

    /// The one cheapest read call that proves this account's key and its
    /// permission (`check-credentials`), at Unix time `now`. The default: the
    /// first listing of the watched types over the last [`PROBE_WINDOW`]
    /// seconds. `None`: the vendor has no call to spare.
    fn probe(&self, watched: &[TaskType], now: i64) -> Option<Query> {
        self.streams(watched)
            .first()
            .map(|&stream| probe_listing(stream, now))
    }

    /// Quota queries, if the vendor has a quota API.
    fn quota_queries(&self, _watched: &[TaskType]) -> Vec<Query> {
        Vec::new()
    }

    /// Builds and signs the request for `page` (1-based) of `query` at `now`.
    fn build(
        &self,
        query: &Query,
        page: u32,
        now: DateTime<Utc>,
    ) -> Result<HttpRequest, BuildError>;

    /// Parses any response to `query`: tasks, quotas and paging, or a
    /// classified error. Must never panic, whatever the bytes.
    fn parse(&self, query: &Query, page: u32, response: &HttpResponse) -> Result<Parsed, ApiError>;
}

/// Seconds of history a probe lists: small, so its answer is one page.
pub const PROBE_WINDOW: i64 = 300;

/// A listing of `stream` over the last [`PROBE_WINDOW`] seconds before `now`.
pub fn probe_listing(stream: Stream, now: i64) -> Query {
    Query::List {
        stream,
        window: Window {
            from: now - PROBE_WINDOW,
            to: now,
        },
    }
}

/// Builds the vendor module for one account. The options variant decides
/// the vendor, so a kind can never be paired with another vendor's options.
pub fn instantiate(ctx: VendorContext) -> Arc<dyn Vendor> {
    match ctx.options.clone() {
        VendorOptions::Testing(opts) => Arc::new(testing::TestingVendor::new(ctx, opts)),
        VendorOptions::Ucloud(opts) => Arc::new(ucloud::UcloudVendor::new(ctx, opts)),
        VendorOptions::Aliyun(opts) => Arc::new(aliyun::AliyunVendor::new(ctx, opts)),
        VendorOptions::Volcengine(opts) => Arc::new(volcengine::VolcengineVendor::new(ctx, opts)),
        VendorOptions::Cdnetworks(opts) => Arc::new(cdnetworks::CdnetworksVendor::new(ctx, opts)),
    }
}

/// Classifies an HTTP status when the body says nothing more specific.
pub fn outcome_for_status(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Ok,
        429 => Outcome::Throttled,
        401 | 403 => Outcome::AuthError,
        400..=499 => Outcome::ClientError,
        _ => Outcome::ServerError,
    }
}
