//! The vendor contract and the registry of vendor modules.
//!
//! A vendor module is pure and synchronous: it plans queries, builds signed
//! requests for them, and parses responses into normalized [`Task`]s. It
//! never sends anything, sleeps, or reads the clock: the collector's driver
//! owns I/O, timing, retries and the rate budget, so those live in one place.
//!
//! The registry is the `registry!` block below: one line per vendor makes
//! the [`VendorKind`] variant, its place in [`VendorKind::ALL`] and its arm
//! in [`VendorKind::spec`]. Everything else — config names, limits,
//! endpoints, task types, option parsing, construction, the simulator and
//! the demo — comes from the vendor module's [`VendorSpec`]. Adding a vendor:
//! its folder here (`pub mod` + a `SPEC`), its simulator file in `src/sim`
//! (`pub mod`), one registry line, its signing vectors.

pub mod aliyun;
pub mod cdnetworks;
pub mod cloudfront;
pub mod sigv4;
pub mod tencent;
#[cfg(feature = "sim")]
pub mod testing;
pub mod ucloud;
#[cfg(test)]
pub(crate) mod vectors;
pub mod volcengine;

pub use crate::api::{ApiSpec, Outcome, Rate};
use crate::http::{HttpRequest, HttpResponse};
use crate::secret::Secret;
use crate::task::{Task, TaskType};
use chrono::{DateTime, Utc};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Declares the registry: the [`VendorKind`] enum, [`VendorKind::ALL`] and
/// the one match in [`VendorKind::spec`], from one line per vendor, so no
/// list can fall out of step with another.
macro_rules! registry {
    ($($(#[doc = $doc:expr])* $(#[cfg($cfg:meta)])? $variant:ident => $module:ident,)*) => {
        /// The supported vendors. The label value is [`VendorKind::as_str`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum VendorKind {
            $($(#[doc = $doc])* $(#[cfg($cfg)])? $variant,)*
        }

        impl VendorKind {
            /// Every vendor, in registry order.
            pub const ALL: &'static [VendorKind] = &[$($(#[cfg($cfg)])? VendorKind::$variant,)*];

            /// The vendor module's description.
            pub fn spec(self) -> &'static VendorSpec {
                match self {
                    $($(#[cfg($cfg)])? VendorKind::$variant => &$module::SPEC,)*
                }
            }
        }
    };
}

registry! {
    /// The exporter's own minimal vendor, used by tests of the core. Only in
    /// builds with the `sim` feature: production config cannot name it.
    #[cfg(feature = "sim")]
    Testing => testing,
    /// Volcengine multi-cloud CDN (MCDN).
    Volcengine => volcengine,
    /// Alibaba Cloud CDN.
    Aliyun => aliyun,
    /// UCloud UCDN.
    Ucloud => ucloud,
    /// CDNetworks (Wangsu) content management.
    Cdnetworks => cdnetworks,
    /// Tencent Cloud CDN.
    Tencent => tencent,
    /// AWS CloudFront invalidations.
    Cloudfront => cloudfront,
}

/// Everything the rest of the exporter needs to know about one vendor.
pub struct VendorSpec {
    /// The `vendor:` config value and `vendor` label.
    pub name: &'static str,
    /// The product's name, for pages and docs.
    pub title: &'static str,
    /// The APIs an account calls, in the module's index order, each with its
    /// published limit.
    pub apis: &'static [ApiSpec],
    /// How far back the vendor lets us list tasks.
    pub max_lookback: Duration,
    /// The public endpoint used when the account sets none.
    pub default_endpoint: &'static str,
    /// Task types the vendor can report; config rejects others.
    pub task_types: &'static [TaskType],
    /// Validates the account's `options:` block and builds the module.
    pub build: fn(VendorContext, serde_yaml::Value) -> Result<Arc<dyn Vendor>, OptionsError>,
    /// The simulated API of this vendor (demo, tests, benchmarks) and its
    /// fault controls, so tests can start every vendor from the registry.
    #[cfg(feature = "sim")]
    pub simulator: fn(&crate::sim::SimSetup) -> crate::sim::Simulated,
    /// Extra account YAML (`options:`) the demo's simulator needs, or "".
    pub demo_options: &'static str,
    /// The demo's task rate for this vendor, as a share of the others'.
    pub demo_traffic_share: f64,
}

impl VendorKind {
    /// Real vendors (what the demo simulates and the docs list).
    pub fn real() -> impl Iterator<Item = VendorKind> {
        Self::ALL.iter().copied().filter(|k| k.is_real())
    }

    /// False only for the testing vendor.
    pub fn is_real(self) -> bool {
        #[cfg(feature = "sim")]
        if self == VendorKind::Testing {
            return false;
        }
        true
    }

    /// The kind named `name` in config.
    pub fn from_name(name: &str) -> Option<VendorKind> {
        Self::ALL.iter().copied().find(|k| k.as_str() == name)
    }

    /// Names accepted in config, for error messages (real vendors only).
    pub fn names() -> String {
        Self::real()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The `vendor` label value.
    pub fn as_str(self) -> &'static str {
        self.spec().name
    }

    /// See [`VendorSpec::apis`].
    pub fn apis(self) -> &'static [ApiSpec] {
        self.spec().apis
    }

    /// See [`VendorSpec::max_lookback`].
    pub fn max_lookback(self) -> Duration {
        self.spec().max_lookback
    }

    /// See [`VendorSpec::default_endpoint`].
    pub fn default_endpoint(self) -> &'static str {
        self.spec().default_endpoint
    }

    /// See [`VendorSpec::task_types`].
    pub fn task_types(self) -> &'static [TaskType] {
        self.spec().task_types
    }

    /// Validates `options` and builds the vendor module for one account.
    pub fn build(
        self,
        ctx: VendorContext,
        options: serde_yaml::Value,
    ) -> Result<Arc<dyn Vendor>, OptionsError> {
        (self.spec().build)(ctx, options)
    }
}

impl fmt::Display for VendorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An invalid `options:` key: the dotted path below `options` and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionsError {
    pub path: String,
    pub message: String,
}

/// [`VendorSpec::build`] for a module whose options need only serde:
/// parse `T`, then construct with `new`.
pub fn build_with<T: serde::de::DeserializeOwned + Default>(
    value: serde_yaml::Value,
    new: impl FnOnce(T) -> Arc<dyn Vendor>,
) -> Result<Arc<dyn Vendor>, OptionsError> {
    parse_options_as(value).map(new)
}

/// Deserializes a vendor's options struct (which should use
/// `deny_unknown_fields`), keeping the path of the offending key.
pub fn parse_options_as<T: serde::de::DeserializeOwned + Default>(
    value: serde_yaml::Value,
) -> Result<T, OptionsError> {
    if value.is_null() {
        return Ok(T::default());
    }
    let (options, errors) = crate::config::raw::deserialize_all::<T>(value);
    match (options, errors.into_iter().next()) {
        (Some(o), None) => Ok(o),
        (_, Some(e)) => Err(OptionsError {
            path: e.path,
            message: e.message,
        }),
        (None, None) => Err(OptionsError {
            path: String::new(),
            message: "not a valid options block".into(),
        }),
    }
}

/// Credentials of one account. Field names are generic; README maps them
/// to each vendor's terms (AccessKeyId, PublicKey, username, ...).
/// Equality compares secrets by value (a reload restarts an account whose
/// key changed); it never prints them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Credentials {
    /// The public half: access key id, public key, or user name.
    pub id: String,
    /// The private half: secret key, private key, or API key.
    pub secret: Secret,
    /// STS session / security token, where the vendor supports one.
    pub session_token: Option<Secret>,
}

/// What a vendor module needs to build requests for one account.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VendorContext {
    /// Base URL, e.g. `https://cdn.aliyuncs.com` (no trailing slash).
    pub endpoint: String,
    pub credentials: Credentials,
    /// Only tasks of this domain, where the vendor can filter.
    pub domain: Option<String>,
    /// The largest response body the exporter accepts
    /// (`max_response_bytes`), so a module whose page size is open (UCloud
    /// `Limit`) sizes pages that fit. 0: not given, the config default.
    pub max_response_bytes: usize,
}

/// A created-time window `[from, to)`, Unix seconds UTC.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
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
    /// The last page the answer's total shows to exist, when it tells one:
    /// the pages up to it may be asked for at once (their offsets are
    /// known), where `next_page` alone allows one after another. A lower
    /// bound: paging still ends only where an answer has no next page.
    pub known_last_page: Option<u32>,
}

/// The pages `total` records fill at `page_size` a page (`None` for an
/// empty listing or a zero page size), for [`Parsed::known_last_page`].
pub fn pages_of(total: u64, page_size: u64) -> Option<u32> {
    (total > 0 && page_size > 0)
        .then(|| u32::try_from(total.div_ceil(page_size)).unwrap_or(u32::MAX))
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
pub trait Vendor: fmt::Debug + Send + Sync + 'static {
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

    /// Queries that re-check these unfinished tasks by id (the driver has
    /// already moved the tasks that are cheaper to re-list into listings, see
    /// [`Vendor::list_page_size`]).
    fn plan_rechecks(&self, unfinished: &[Unfinished]) -> Vec<Query>;

    /// Records one page of a listing of `stream` holds (the page size the
    /// module asks for). With it the driver prices re-listing the window
    /// that holds unfinished tasks (pages of the cached tasks in it) against
    /// looking them up by id ([`Vendor::recheck_id_costs`]), per refresh, and
    /// plans the cheaper. `None`: re-check by id only.
    fn list_page_size(&self, _stream: &Stream) -> Option<u32> {
        None
    }

    /// False when a listing always starts at the newest task, whatever its
    /// window (CloudFront has no time filter): re-listing is then priced
    /// only as the head stretched back, never as an older window alone.
    fn lists_any_window(&self) -> bool {
        true
    }

    /// What looking up each of `unfinished` by id costs, in calls: a share
    /// of a call where one call carries several ids (Aliyun: 10 ids, 0.1
    /// each), `None` for a task that has no id lookup. Default: one call each.
    fn recheck_id_costs(&self, unfinished: &[Unfinished]) -> Vec<Option<f64>> {
        vec![Some(1.0); unfinished.len()]
    }

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

    /// True when list answers give their total ([`Parsed::known_last_page`]):
    /// the driver then asks for the later pages of a settled window
    /// together, and lists a stream's first window in two parts, its newest
    /// `overlap` apart, so the rest is settled (one call more, once).
    fn tells_totals(&self) -> bool {
        false
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
