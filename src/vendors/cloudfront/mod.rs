//! AWS CloudFront invalidations (`vendor: cloudfront`).
//!
//! One invalidation is one task: refresh_dir when any of its paths ends in
//! `*`, else refresh_file; its path count is `cdn_task_urls`. CloudFront
//! reports `InProgress` (running) and `Completed` (success) only: there is
//! no failed state, so the failed series stay 0 and `CdnTaskStuck` is the
//! alert that matters.
//!
//! Listing is `GET /2020-05-31/distribution/{Id}/invalidation`, newest
//! first, paged with `Marker`/`MaxItems`/`NextMarker`, one distribution after
//! the other within one listing (pages of distribution 1, then 2, ...). It
//! has no time filter: a listing of a window pages until the page's oldest
//! invalidation is older than the window. Summaries carry only Id,
//! CreateTime and Status, so each invalidation's paths come from one
//! `GetInvalidation` the first time it is seen — queued by the list parse
//! and sent with the re-checks of the same refresh — and later list pages
//! reuse what that call told. `InProgress` invalidations the head listing
//! does not return are re-checked until `Completed`, then never again: the
//! driver prices each refresh's mix of stretching the head listing further
//! back over them (100 a page) and one `GetInvalidation` each, and sends
//! the cheaper (the list has no time filter, so never an older window
//! alone).
//!
//! Quotas: CloudFront allows 3,000 file paths and 15 wildcard paths in
//! progress per distribution. `cdn_quota_limit`/`cdn_quota_remaining` for
//! refresh_file / refresh_dir are those limits and what the fullest
//! distribution has left, computed from the in-progress invalidations' paths
//! (no API call; reported only while every in-progress invalidation's paths
//! are known).
//!
//! Paging markers and path details live in the module (behind a mutex):
//! they are derived only from answers already parsed, never from a clock or
//! I/O, so build and parse stay deterministic for a given history.

pub mod api;
pub mod sign;

use super::{
    ApiError, ApiSpec, BuildError, OptionsError, Parsed, Query, Quota, Stream, Unfinished, Vendor,
    VendorContext, VendorKind, Window,
};
use crate::api::Rate;
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::task::{Task, TaskType};
use api::Detail;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Index of `ListInvalidations` in [`APIS`].
pub const LIST: usize = 0;
/// Index of `GetInvalidation`.
pub const GET: usize = 1;

/// The API version in every path.
pub const VERSION: &str = "2020-05-31";

/// AWS publishes no rate for these two reads. Our assumption: 5 requests/s
/// per API per account; the default safety_fraction (0.5) then spends
/// 2 requests/s on each. Throttling answers back off (see the driver).
pub const APIS: &[ApiSpec] = &[
    ApiSpec {
        name: "ListInvalidations",
        limit: Rate::new(5, Duration::from_secs(1)),
    },
    ApiSpec {
        name: "GetInvalidation",
        limit: Rate::new(5, Duration::from_secs(1)),
    },
];

/// Distributions the demo's simulated CloudFront serves.
pub const DEMO_DISTRIBUTIONS: &[&str] = &["EDEMO1EXAMPLE01", "EDEMO2EXAMPLE02"];

/// This module's entry in the vendor registry.
pub const SPEC: super::VendorSpec = super::VendorSpec {
    name: "cloudfront",
    title: "AWS CloudFront",
    apis: APIS,
    max_lookback: MAX_LOOKBACK,
    default_endpoint: DEFAULT_ENDPOINT,
    task_types: TASK_TYPES,
    build: |ctx, options| {
        let opts = parse_options(options)?;
        Ok(std::sync::Arc::new(CloudfrontVendor::new(ctx, opts)))
    },
    #[cfg(feature = "sim")]
    simulator: |s| {
        let sim = crate::sim::cloudfront::CloudfrontSim::new(
            s.world.clone(),
            &s.id,
            &s.secret,
            DEMO_DISTRIBUTIONS,
        )
        .with_clock(s.clock.clone());
        let truth: crate::sim::Truth = {
            let sim = sim.clone();
            std::sync::Arc::new(move |from| sim.truth(from))
        };
        crate::sim::Simulated {
            control: sim.control.clone(),
            router: sim.router(),
            truth,
        }
    },
    demo_options: "\n    options: { distribution_ids: [EDEMO1EXAMPLE01, EDEMO2EXAMPLE02] }",
    // Invalidations are rarer (each path costs money), and every new one
    // costs a GetInvalidation at 2/s: a twentieth of the others keeps the
    // demo's cold start under a minute.
    demo_traffic_share: 0.05,
};

/// CloudFront keeps invalidation history without a documented end; seven
/// days is our choice (config clamps `lookback` to it).
pub const MAX_LOOKBACK: Duration = Duration::from_secs(7 * 86_400);

/// The global endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://cloudfront.amazonaws.com";

/// Invalidations are file or wildcard (directory) refreshes.
pub const TASK_TYPES: &[TaskType] = &[TaskType::RefreshFile, TaskType::RefreshDir];

/// Largest `MaxItems` we send (AWS documents no maximum; 100 keeps pages small).
pub const MAX_ITEMS: u32 = 100;

/// File paths in progress allowed per distribution.
pub const FILE_PATHS_IN_PROGRESS: u32 = 3_000;
/// Wildcard paths in progress allowed per distribution.
pub const WILDCARD_PATHS_IN_PROGRESS: u32 = 15;

/// Most invalidations whose details are remembered (older ones are dropped
/// first; a dropped one costs one more GetInvalidation if listed again).
const MAX_REMEMBERED: usize = 100_000;

/// Options of a CloudFront account (`options:` in config).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// Distributions to watch (required; no discovery with ListDistributions).
    pub distribution_ids: Vec<String>,
    /// `MaxItems` per list page, 1–100 (default 100).
    pub max_items: Option<u32>,
}

impl Options {
    fn max_items(&self) -> u32 {
        self.max_items.unwrap_or(MAX_ITEMS)
    }
}

/// Parses and validates an account's `options:`.
pub fn parse_options(value: serde_yaml::Value) -> Result<Options, OptionsError> {
    let o: Options = super::parse_options_as(value)?;
    if o.distribution_ids.is_empty() {
        return Err(OptionsError {
            path: "distribution_ids".into(),
            message: "list at least one distribution id (e.g. [EDFDVBD6EXAMPLE]); distributions are not discovered".into(),
        });
    }
    for (i, id) in o.distribution_ids.iter().enumerate() {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(OptionsError {
                path: format!("distribution_ids[{i}]"),
                message: format!("{id:?} is not a distribution id (letters and digits)"),
            });
        }
        if o.distribution_ids[..i].contains(id) {
            return Err(OptionsError {
                path: format!("distribution_ids[{i}]"),
                message: format!("{id} is listed twice"),
            });
        }
    }
    if !(1..=MAX_ITEMS).contains(&o.max_items()) {
        return Err(OptionsError {
            path: "max_items".into(),
            message: format!("{} is outside 1..=100", o.max_items()),
        });
    }
    Ok(o)
}

/// Where page N of a listing starts: a distribution and a marker.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    dist: usize,
    marker: Option<String>,
}

/// What one invalidation is known to be.
#[derive(Debug, Clone, Copy)]
struct Known {
    detail: Detail,
    dist: usize,
    created_at: i64,
    in_progress: bool,
}

/// Mutable knowledge derived from parsed answers.
#[derive(Debug, Default)]
struct State {
    /// Cursors of pages still to be requested, by (window, page).
    cursors: HashMap<(Window, u32), Cursor>,
    /// Invalidations whose paths are known, by task id.
    known: HashMap<String, Known>,
    /// Listed invalidations whose paths are not yet known: task id →
    /// (created_at, in progress).
    pending: HashMap<String, (i64, bool)>,
}

/// The CloudFront module of one account.
#[derive(Debug)]
pub struct CloudfrontVendor {
    ctx: VendorContext,
    opts: Options,
    state: Mutex<State>,
}

/// `DISTRIBUTION/INVALIDATION`: the task id (unique across distributions).
pub fn task_id(dist: &str, inv: &str) -> String {
    format!("{dist}/{inv}")
}

impl CloudfrontVendor {
    /// For one account.
    pub fn new(ctx: VendorContext, opts: Options) -> Self {
        CloudfrontVendor {
            ctx,
            opts,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn dist_index(&self, id: &str) -> Option<usize> {
        self.opts.distribution_ids.iter().position(|d| d == id)
    }

    /// Signs a GET of `path` (below the endpoint) with `query`.
    fn get(
        &self,
        path: &str,
        query: Vec<(String, String)>,
        now: DateTime<Utc>,
    ) -> Result<HttpRequest, BuildError> {
        let endpoint = self.ctx.endpoint.trim_end_matches('/');
        let (_, rest) = endpoint
            .split_once("://")
            .ok_or_else(|| BuildError(format!("endpoint {endpoint:?} has no scheme")))?;
        let (host, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if host.is_empty() {
            return Err(BuildError(format!("endpoint {endpoint:?} has no host")));
        }
        let path = format!("{prefix}{path}");
        let creds = &self.ctx.credentials;
        let signed = sign::sign(&sign::SignInput {
            method: "GET",
            host,
            path: &path,
            query: &query,
            headers: &[],
            body: b"",
            access_key_id: &creds.id,
            secret_access_key: creds.secret.expose(),
            session_token: creds.session_token.as_ref().map(|t| t.expose()),
            region: sign::REGION,
            service: sign::SERVICE,
            time: now,
        });
        let q = super::sigv4::canonical_query(&query);
        let base = &endpoint[..endpoint.len() - prefix.len()];
        Ok(HttpRequest {
            method: Method::Get,
            url: if q.is_empty() {
                format!("{base}{path}")
            } else {
                format!("{base}{path}?{q}")
            },
            headers: signed.add_headers,
            body: Vec::new(),
        })
    }

    /// The in-progress quotas, or none while an in-progress invalidation's
    /// paths are unknown (the figure would read better than it is).
    fn quotas(st: &State, n_dists: usize) -> Vec<Quota> {
        if st.pending.values().any(|(_, in_progress)| *in_progress) {
            return Vec::new();
        }
        let mut used = vec![(0u32, 0u32); n_dists];
        for k in st.known.values().filter(|k| k.in_progress) {
            if let Some(u) = used.get_mut(k.dist) {
                u.0 = u.0.saturating_add(k.detail.file_paths);
                u.1 = u.1.saturating_add(k.detail.wildcard_paths);
            }
        }
        let files = used.iter().map(|u| u.0).max().unwrap_or(0);
        let wild = used.iter().map(|u| u.1).max().unwrap_or(0);
        vec![
            Quota {
                task_type: TaskType::RefreshFile,
                limit: f64::from(FILE_PATHS_IN_PROGRESS),
                remaining: f64::from(FILE_PATHS_IN_PROGRESS.saturating_sub(files)),
            },
            Quota {
                task_type: TaskType::RefreshDir,
                limit: f64::from(WILDCARD_PATHS_IN_PROGRESS),
                remaining: f64::from(WILDCARD_PATHS_IN_PROGRESS.saturating_sub(wild)),
            },
        ]
    }

    /// Drops the oldest remembered invalidations beyond the cap.
    fn prune(st: &mut State) {
        if st.known.len() <= MAX_REMEMBERED {
            return;
        }
        let mut created: Vec<i64> = st.known.values().map(|k| k.created_at).collect();
        let cut = created.len() - MAX_REMEMBERED * 9 / 10;
        let (_, nth, _) = created.select_nth_unstable(cut);
        let nth = *nth;
        st.known.retain(|_, k| k.created_at > nth);
    }

    fn parse_list_page(
        &self,
        window: Window,
        page: u32,
        resp: &HttpResponse,
    ) -> Result<Parsed, ApiError> {
        let list = api::parse_list(resp)?;
        let mut st = self.lock();
        let cursor = st.cursors.remove(&(window, page)).unwrap_or(Cursor {
            dist: 0,
            marker: None,
        });
        let dist_name = self
            .opts
            .distribution_ids
            .get(cursor.dist)
            .cloned()
            .unwrap_or_default();
        let summaries = list.items.map(|i| i.summaries).unwrap_or_default();
        let mut tasks = Vec::new();
        let mut oldest: Option<i64> = None;
        for s in &summaries {
            let (Some(inv), Some(created)) = (
                s.id.as_deref().filter(|i| !i.is_empty()),
                s.create_time.as_deref().and_then(api::parse_time),
            ) else {
                continue;
            };
            oldest = Some(oldest.map_or(created, |o: i64| o.min(created)));
            let status = api::parse_status(s.status.as_deref());
            let id = task_id(&dist_name, inv);
            match st.known.get_mut(&id) {
                Some(k) => {
                    k.in_progress = !status.is_finished();
                    tasks.push(api::to_task(id, created, status, &k.detail));
                }
                // Paths unknown: one GetInvalidation (planned with the
                // re-checks). Older than the window: not ours to fetch.
                None if created >= window.from => {
                    st.pending.insert(id, (created, !status.is_finished()));
                }
                None => {}
            }
        }
        let more_here = list.is_truncated == Some(true)
            && !summaries.is_empty()
            && oldest.is_some_and(|o| o >= window.from);
        let next = match list.next_marker.filter(|m| !m.is_empty()) {
            Some(m) if more_here => Some(Cursor {
                dist: cursor.dist,
                marker: Some(m),
            }),
            _ if cursor.dist + 1 < self.opts.distribution_ids.len() => Some(Cursor {
                dist: cursor.dist + 1,
                marker: None,
            }),
            _ => None,
        };
        let next_page = next.map(|c| {
            let n = page.saturating_add(1);
            st.cursors.insert((window, n), c);
            n
        });
        // Cursors of listings that were abandoned (errors, windows that
        // moved on) must not pile up.
        if st.cursors.len() > 1_000 {
            st.cursors.clear();
        }
        Ok(Parsed {
            tasks,
            quotas: Self::quotas(&st, self.opts.distribution_ids.len()),
            next_page,
            known_last_page: None,
        })
    }

    fn parse_get(&self, id: &str, resp: &HttpResponse) -> Result<Parsed, ApiError> {
        let inv = api::parse_get(resp)?;
        let (dist, inv_id) = id.split_once('/').unwrap_or(("", id));
        if inv.id.as_deref() != Some(inv_id) {
            return Err(ApiError::parse(
                format!("GetInvalidation for {inv_id} answered another id"),
                &resp.body,
            ));
        }
        let mut st = self.lock();
        let pending = st.pending.remove(id);
        let created = inv
            .create_time
            .as_deref()
            .and_then(api::parse_time)
            .or(pending.map(|p| p.0))
            .ok_or_else(|| {
                ApiError::parse("GetInvalidation answer without CreateTime", &resp.body)
            })?;
        let status = api::parse_status(inv.status.as_deref());
        let detail = api::detail(&inv);
        if let Some(d) = self.dist_index(dist) {
            st.known.insert(
                id.to_owned(),
                Known {
                    detail,
                    dist: d,
                    created_at: created,
                    in_progress: !status.is_finished(),
                },
            );
            Self::prune(&mut st);
        }
        let mut task: Task = api::to_task(id.to_owned(), created, status, &detail);
        // The paths are in this answer only; later listings carry the cached
        // detail, so the details store keeps what it saw here.
        task.urls = api::paths(&inv);
        Ok(Parsed {
            tasks: vec![task],
            quotas: Self::quotas(&st, self.opts.distribution_ids.len()),
            next_page: None,
            known_last_page: None,
        })
    }
}

impl Vendor for CloudfrontVendor {
    fn kind(&self) -> VendorKind {
        VendorKind::Cloudfront
    }

    /// Re-listing is priced as the head listing paged further back (100
    /// invalidations a page): the list has no time filter.
    fn list_page_size(&self, _stream: &Stream) -> Option<u32> {
        Some(self.opts.max_items())
    }

    fn lists_any_window(&self) -> bool {
        false
    }

    /// One listing: every distribution, newest first, all types (the list
    /// cannot filter by type).
    fn streams(&self, watched: &[TaskType]) -> Vec<Stream> {
        if TASK_TYPES.iter().any(|t| watched.contains(t)) {
            vec![Stream {
                api: LIST,
                task_type: None,
            }]
        } else {
            Vec::new()
        }
    }

    /// First the paths of invalidations listed but not yet fetched (newest
    /// first), then the unfinished ones, one GetInvalidation each.
    fn plan_rechecks(&self, unfinished: &[Unfinished]) -> Vec<Query> {
        let st = self.lock();
        let mut pending: Vec<(&String, i64)> =
            st.pending.iter().map(|(id, (c, _))| (id, *c)).collect();
        pending.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let mut out: Vec<Query> = pending
            .into_iter()
            .map(|(id, _)| Query::ById {
                api: GET,
                task_type: None,
                ids: vec![id.clone()],
            })
            .collect();
        out.extend(
            unfinished
                .iter()
                .filter(|u| !st.pending.contains_key(&u.id))
                .map(|u| Query::ById {
                    api: GET,
                    task_type: Some(u.task_type),
                    ids: vec![u.id.clone()],
                }),
        );
        out
    }

    fn build(
        &self,
        query: &Query,
        page: u32,
        now: DateTime<Utc>,
    ) -> Result<HttpRequest, BuildError> {
        match query {
            Query::List { window, .. } => {
                let cursor = if page <= 1 {
                    None
                } else {
                    self.lock().cursors.get(&(*window, page)).cloned()
                };
                // A page whose cursor is unknown starts over from the newest:
                // duplicates merge by id, nothing is skipped.
                let cursor = cursor.unwrap_or(Cursor {
                    dist: 0,
                    marker: None,
                });
                let dist = self
                    .opts
                    .distribution_ids
                    .get(cursor.dist)
                    .ok_or_else(|| BuildError("no distribution ids configured".into()))?;
                let mut q = vec![("MaxItems".to_owned(), self.opts.max_items().to_string())];
                if let Some(m) = cursor.marker {
                    q.push(("Marker".to_owned(), m));
                }
                self.get(
                    &format!("/{VERSION}/distribution/{dist}/invalidation"),
                    q,
                    now,
                )
            }
            Query::ById { ids, .. } => {
                let [id] = ids.as_slice() else {
                    return Err(BuildError(format!(
                        "GetInvalidation takes one id per request, got {}",
                        ids.len()
                    )));
                };
                let (dist, inv) = id
                    .split_once('/')
                    .filter(|(d, i)| !d.is_empty() && !i.is_empty())
                    .ok_or_else(|| BuildError(format!("task id {id:?} is not DISTRIBUTION/ID")))?;
                self.get(
                    &format!("/{VERSION}/distribution/{dist}/invalidation/{inv}"),
                    Vec::new(),
                    now,
                )
            }
            Query::Quota { .. } => Err(BuildError(
                "CloudFront has no quota API: quotas come from in-progress invalidations".into(),
            )),
        }
    }

    fn parse(&self, query: &Query, page: u32, resp: &HttpResponse) -> Result<Parsed, ApiError> {
        match query {
            Query::List { window, .. } => self.parse_list_page(*window, page, resp),
            Query::ById { ids, .. } => match ids.as_slice() {
                [id] => self.parse_get(id, resp),
                _ => Err(ApiError::parse("re-check of several ids", &resp.body)),
            },
            Query::Quota { .. } => Ok(Parsed::default()),
        }
    }
}

#[cfg(test)]
mod tests;
