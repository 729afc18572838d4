//! Simulated UCloud API (`vendors::ucloud`): `DescribeNewUcdnPrefetchCacheTask`
//! and `DescribeNewUcdnRefreshCacheTask` at `/`, by GET query or POST form.
//!
//! Like the gateway it answers HTTP 200 with `RetCode` for every error:
//! 160/161 for a missing/unknown Action, 170 for a missing signature, 172 for
//! an unknown PublicKey, 171 "Signature VerifyAC Error" when the signature
//! over the request's own params does not match, 153 when the (configurable)
//! rate limit is exceeded, 150 for injected server errors, 230 for bad params
//! (an `EndTime` without `BeginTime`, non-numeric numbers, ...).
//!
//! Tasks come from the shared [`World`]: each [`SimTask`] becomes one
//! `TaskInfo` whose URLs progress one after another, so per-URL `Progress`,
//! `Status` and `FinishTime` follow from the task's own progress. Tests can
//! make chosen tasks report UCloud's `unknow` status, and force any RetCode.

use super::{Control, Fault, SimTask, World};
use crate::api::Rate;
use crate::task::{TaskStatus, TaskType};
use crate::vendors::ucloud::api::{status_word, WireResponse, WireTask, WireUrl};
use crate::vendors::ucloud::{sign, APIS};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Test knobs shared by clones of one simulator.
#[derive(Debug, Default)]
struct Knobs {
    /// Task ids reported with status `unknow`.
    unknow: Mutex<HashSet<String>>,
    /// When set, every authenticated request gets this RetCode and Message.
    ret_code: Mutex<Option<(i64, String)>>,
    /// Every `TaskId.N` query: (Action, ids).
    id_queries: Mutex<Vec<(String, Vec<String>)>>,
}

/// The simulated UCloud API.
#[derive(Clone)]
pub struct UcloudSim {
    pub world: Arc<World>,
    pub control: Arc<Control>,
    /// PublicKey → PrivateKey of the known users.
    keys: Arc<HashMap<String, String>>,
    knobs: Arc<Knobs>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl UcloudSim {
    /// A simulator knowing one user, rate-limited at the ceiling the
    /// exporter assumes ([`APIS`]).
    pub fn new(world: Arc<World>, public_key: &str, private_key: &str) -> Self {
        let control = Control::new();
        for api in APIS {
            control.limit(api.name, api.limit);
        }
        UcloudSim {
            world,
            control,
            keys: Arc::new(HashMap::from([(
                public_key.to_owned(),
                private_key.to_owned(),
            )])),
            knobs: Arc::new(Knobs::default()),
        }
    }

    /// Replaces the rate limit of both APIs (answered with RetCode 153).
    pub fn with_rate_limit(self, rate: Rate) -> Self {
        for api in APIS {
            self.control.limit(api.name, rate);
        }
        self
    }

    /// Its routes.
    pub fn router(self) -> Router {
        Router::new()
            .route("/", get(handle).post(handle))
            .with_state(self)
    }

    /// Makes these tasks report `unknow` (task and URLs) from now on.
    pub fn report_unknow(&self, ids: impl IntoIterator<Item = String>) {
        lock(&self.knobs.unknow).extend(ids);
    }

    /// Answers every authenticated request with this RetCode (None: normal).
    pub fn set_ret_code(&self, code: Option<(i64, &str)>) {
        *lock(&self.knobs.ret_code) = code.map(|(c, m)| (c, m.to_owned()));
    }

    /// Every query by `TaskId.N` so far: (Action, ids).
    pub fn id_queries(&self) -> Vec<(String, Vec<String>)> {
        lock(&self.knobs.id_queries).clone()
    }

    fn is_unknow(&self, id: &str) -> bool {
        lock(&self.knobs.unknow).contains(id)
    }

    /// The status UCloud reports for `t` at `now`.
    pub fn status_of(&self, t: &SimTask, now: i64) -> TaskStatus {
        if self.is_unknow(&t.id) {
            TaskStatus::Unknown
        } else {
            t.status_at(now)
        }
    }

    /// Tasks UCloud would list, created in `[from, now]`.
    fn ucloud_tasks(&self, from: i64) -> (i64, Vec<SimTask>) {
        let now = self.world.now();
        let tasks = self
            .world
            .list(from, now + 1, None, None)
            .into_iter()
            .filter(|t| crate::vendors::ucloud::TASK_TYPES.contains(&t.task_type))
            .collect();
        (now, tasks)
    }

    /// Ground truth: tasks created in `[from, now]` by type × status, as
    /// UCloud reports them (`unknow` included).
    pub fn truth(&self, from: i64) -> HashMap<(TaskType, TaskStatus), u64> {
        let (now, tasks) = self.ucloud_tasks(from);
        let mut m = HashMap::new();
        for t in tasks {
            *m.entry((t.task_type, self.status_of(&t, now))).or_insert(0) += 1;
        }
        m
    }

    /// Ground truth of the completion ratio of `task_type` over tasks created
    /// in `[from, now]`: finished tasks count 1, others the mean of their
    /// URLs' `Progress` / 100. `None` when there are no such tasks.
    pub fn completion_truth(&self, task_type: TaskType, from: i64) -> Option<f64> {
        let (now, tasks) = self.ucloud_tasks(from);
        let (mut sum, mut n) = (0.0, 0u32);
        for t in tasks.iter().filter(|t| t.task_type == task_type) {
            n += 1;
            let w = self.wire(t, now);
            sum += if self.status_of(t, now).is_finished() {
                1.0
            } else {
                let urls = w.url_lists.unwrap_or_default();
                if urls.is_empty() {
                    0.0
                } else {
                    urls.iter().filter_map(|u| u.progress).sum::<f64>() / urls.len() as f64 / 100.0
                }
            };
        }
        (n > 0).then(|| sum / f64::from(n))
    }

    /// `TaskInfo` of `t` at `now`. URLs run one after another over the
    /// task's running time: URL `i` of `n` holds `clamp(p·n − i, 0, 1)` of
    /// the task's progress `p`, in whole percent, and finishes at
    /// `start + runs_for·(i+1)/n` (the last one at the task's finish).
    pub fn wire(&self, t: &SimTask, now: i64) -> WireTask {
        let unknow = self.is_unknow(&t.id);
        let status = t.status_at(now);
        let p = t.progress_at(now);
        let n = t.urls.len();
        let start = t.created_at + t.queued_for;
        let urls = t
            .urls
            .iter()
            .enumerate()
            .map(|(i, url)| {
                let share = (p * n as f64 - i as f64).clamp(0.0, 1.0);
                let pct = (share * 100.0 + 1e-6).floor();
                let last = i + 1 == n;
                let done = pct >= 100.0;
                let url_status = if unknow {
                    TaskStatus::Unknown
                } else if status == TaskStatus::Failed && last {
                    TaskStatus::Failed
                } else if done {
                    TaskStatus::Success
                } else if pct > 0.0
                    || (status == TaskStatus::Running && i == (p * n as f64) as usize)
                {
                    TaskStatus::Running
                } else {
                    TaskStatus::Pending
                };
                let finish = match t.runs_for {
                    Some(d) if done => start + d * (i as i64 + 1) / n as i64,
                    _ => 0,
                };
                WireUrl {
                    url: Some(url.clone()),
                    create_time: Some(t.created_at),
                    finish_time: Some(finish),
                    status: Some(status_word(url_status).to_owned()),
                    progress: Some(pct),
                }
            })
            .collect();
        WireTask {
            task_id: Some(t.id.clone()),
            create_time: Some(t.created_at),
            status: Some(status_word(if unknow { TaskStatus::Unknown } else { status }).to_owned()),
            kind: match t.task_type {
                TaskType::RefreshDir => Some("dir".to_owned()),
                TaskType::Prefetch => None,
                _ => Some("file".to_owned()),
            },
            url_lists: Some(urls),
        }
    }
}

/// An error answer: HTTP 200, RetCode and Message, as the gateway sends.
fn error(action: &str, code: i64, message: &str) -> Response {
    json(&WireResponse {
        action: Some(format!("{action}Response")),
        ret_code: code,
        message: Some(message.to_owned()),
        ..WireResponse::default()
    })
}

fn json(r: &WireResponse) -> Response {
    (
        [("content-type", "application/json; charset=utf-8")],
        serde_json::to_string(r).unwrap_or_default(),
    )
        .into_response()
}

async fn handle(State(s): State<UcloudSim>, method: Method, uri: Uri, body: Bytes) -> Response {
    let mut params = parse_form(uri.query().unwrap_or(""));
    if method == Method::POST {
        params.extend(parse_form(&String::from_utf8_lossy(&body)));
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let Some(action) = get("Action").map(str::to_owned) else {
        s.control.record("-", "client_error");
        return error("", 160, "Missing Action");
    };
    let Some(api) = APIS.iter().find(|a| a.name == action) else {
        s.control.record(&action, "client_error");
        return error(&action, 161, &format!("Action [{action}] not found"));
    };
    let api = api.name;
    let (Some(public), Some(_)) = (get("PublicKey"), get("Signature")) else {
        s.control.record(api, "auth_error");
        return error(api, 170, "Missing signature");
    };
    let Some(private) = s.keys.get(public) else {
        s.control.record(api, "auth_error");
        return error(api, 172, "User not exists");
    };
    if !verify(&params, public, private) {
        s.control.record(api, "auth_error");
        return error(api, 171, "Signature VerifyAC Error");
    }
    if s.control.auth_failing() {
        s.control.record(api, "auth_error");
        return error(api, 172, "User not exists");
    }
    if !s.control.admit(api) || s.control.throttling() {
        return s
            .control
            .throttled(api, error(api, 153, "Request Frequency Limit"));
    }
    if s.control.fault() == Fault::ServerError {
        s.control.record(api, "server_error");
        return error(api, 150, "Service Unavailable");
    }
    let forced = lock(&s.knobs.ret_code).clone();
    if let Some((code, message)) = forced {
        s.control.record(api, &format!("retcode_{code}"));
        return error(api, code, &message);
    }
    // Params, checked as the API documents them.
    let mut bad = None;
    let mut num = |k: &str| -> Option<i64> {
        let v = get(k)?;
        match v.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => {
                bad.get_or_insert_with(|| k.to_owned());
                None
            }
        }
    };
    let (begin, end, offset, limit) = (
        num("BeginTime"),
        num("EndTime"),
        num("Offset"),
        num("Limit"),
    );
    if get("IsDcdn").is_some_and(|v| v != "true" && v != "false") {
        bad.get_or_insert_with(|| "IsDcdn".to_owned());
    }
    let status_filter = get("Status");
    if status_filter
        .is_some_and(|v| !["success", "wait", "process", "failure", "unknow"].contains(&v))
    {
        bad.get_or_insert_with(|| "Status".to_owned());
    }
    if end.is_some() && begin.is_none() && get("BeginTime").is_none() {
        bad.get_or_insert_with(|| "BeginTime".to_owned());
    }
    if let Some(k) = bad {
        s.control.record(api, "client_error");
        return error(api, 230, &format!("Params [{k}] not available"));
    }
    let now = s.world.now();
    let end = end.unwrap_or(now);
    let begin = begin.unwrap_or(end - 86_400);
    let mut ids: Vec<(usize, String)> = params
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("TaskId.")
                .and_then(|i| i.parse::<usize>().ok())
                .map(|i| (i, v.clone()))
        })
        .collect();
    ids.sort();
    let ids: Vec<String> = ids.into_iter().map(|(_, v)| v).collect();
    if !ids.is_empty() {
        lock(&s.knobs.id_queries).push((api.to_owned(), ids.clone()));
    }
    let prefetch = api == APIS[crate::vendors::ucloud::PREFETCH].name;
    let dcdn = get("IsDcdn") == Some("true");
    // The world holds CDN tasks only: a DCDN listing is empty.
    let all: Vec<WireTask> = if dcdn {
        Vec::new()
    } else {
        s.world
            .list(begin, end.saturating_add(1), None, None)
            .iter()
            .filter(|t| {
                if prefetch {
                    t.task_type == TaskType::Prefetch
                } else {
                    matches!(t.task_type, TaskType::RefreshFile | TaskType::RefreshDir)
                }
            })
            .filter(|t| ids.is_empty() || ids.contains(&t.id))
            .map(|t| s.wire(t, now))
            .filter(|w| status_filter.is_none_or(|f| w.status.as_deref() == Some(f)))
            .collect()
    };
    let total = all.len() as u64;
    let offset = usize::try_from(offset.unwrap_or(0)).unwrap_or(usize::MAX);
    let page: Vec<WireTask> = match limit {
        // No Limit (or 0): everything from Offset on.
        None | Some(0) => all.into_iter().skip(offset).collect(),
        Some(l) => all
            .into_iter()
            .skip(offset)
            .take(usize::try_from(l).unwrap_or(usize::MAX))
            .collect(),
    };
    let body = serde_json::to_string(&WireResponse {
        action: Some(format!("{api}Response")),
        ret_code: 0,
        message: None,
        total_count: Some(total),
        task_list: Some(page),
    })
    .unwrap_or_default();
    s.control
        .deliver(
            api,
            "",
            ([("content-type", "application/json; charset=utf-8")], body).into_response(),
        )
        .await
}

// Server side of UCloud signing: the gateway's parsing and check.

/// Decodes one form-encoded name or value (`+` → space); invalid UTF-8 is
/// replaced, never a panic.
pub fn form_decode(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

/// Parses a query string or form body into pairs, in order.
pub fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (form_decode(k), form_decode(v)),
            None => (form_decode(p), String::new()),
        })
        .collect()
}

/// Checks a received request's own params (as the gateway does): the
/// signature over everything but `Signature`, with the private key of the
/// `PublicKey` it names. Constant-time comparison is not needed for a
/// simulator, but the length check keeps it exact.
pub fn verify(params: &[(String, String)], public_key: &str, private_key: &str) -> bool {
    let Some((_, given)) = params.iter().find(|(k, _)| k == "Signature") else {
        return false;
    };
    let expected = sign::sign(params, public_key, private_key).signature;
    given.len() == expected.len() && given.eq_ignore_ascii_case(&expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TokioClock;
    use tower::ServiceExt;

    fn task(id: &str, ty: TaskType, urls: usize, fails: bool) -> SimTask {
        SimTask {
            id: id.into(),
            task_type: ty,
            created_at: 1_000,
            domain: "d.example.com".into(),
            urls: (0..urls)
                .map(|i| format!("https://d.example.com/{i}"))
                .collect(),
            queued_for: 10,
            runs_for: Some(100),
            fails,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn url_progress_follows_the_task() {
        let world = World::new(Arc::new(TokioClock::starting_at(2_000)));
        let sim = UcloudSim::new(world, "pub", "priv");
        let t = task("a", TaskType::Prefetch, 4, false);
        // Running at 60%: URLs 0 and 1 done, URL 2 at 40%, URL 3 waiting.
        let w = sim.wire(&t, 1_070);
        assert_eq!(w.status.as_deref(), Some("process"));
        let urls = w.url_lists.unwrap();
        let pct: Vec<f64> = urls.iter().map(|u| u.progress.unwrap()).collect();
        assert_eq!(pct, [100.0, 100.0, 40.0, 0.0]);
        let st: Vec<&str> = urls.iter().map(|u| u.status.as_deref().unwrap()).collect();
        assert_eq!(st, ["success", "success", "process", "wait"]);
        assert_eq!(urls[0].finish_time, Some(1_035));
        assert_eq!(urls[2].finish_time, Some(0));
        assert_eq!(w.kind, None, "prefetch has no Type");
        // Finished: the last URL finishes at the task's finish time.
        let f = task("b", TaskType::RefreshDir, 3, true);
        let w = sim.wire(&f, 5_000);
        assert_eq!(w.status.as_deref(), Some("failure"));
        assert_eq!(w.kind.as_deref(), Some("dir"));
        let urls = w.url_lists.unwrap();
        assert_eq!(urls[2].finish_time, f.finished_at(5_000));
        assert_eq!(urls[2].status.as_deref(), Some("failure"));
        sim.report_unknow(["b".to_owned()]);
        assert_eq!(sim.wire(&f, 5_000).status.as_deref(), Some("unknow"));
        assert_eq!(sim.status_of(&f, 5_000), TaskStatus::Unknown);
    }

    async fn call(sim: &UcloudSim, params: &[(&str, &str)], private: &str) -> WireResponse {
        let owned: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let body = sign::sign(&owned, "pub", private).form_body;
        let req = axum::http::Request::post("/")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(body))
            .unwrap();
        let resp = sim.clone().router().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn gateway_errors_use_ret_codes() {
        let world = World::new(Arc::new(TokioClock::starting_at(2_000)));
        world.add(task("p1", TaskType::Prefetch, 2, false));
        world.add(task("r1", TaskType::RefreshFile, 1, false));
        let sim = UcloudSim::new(world, "pub", "priv")
            .with_rate_limit(Rate::new(3, std::time::Duration::from_secs(1)));
        let prefetch = "DescribeNewUcdnPrefetchCacheTask";
        let ok = call(&sim, &[("Action", prefetch), ("BeginTime", "0")], "priv").await;
        assert_eq!(ok.ret_code, 0);
        assert_eq!(
            ok.action.as_deref(),
            Some("DescribeNewUcdnPrefetchCacheTaskResponse")
        );
        assert_eq!(ok.total_count, Some(1));
        let r = call(&sim, &[("Action", prefetch)], "wrong").await;
        assert_eq!(
            (r.ret_code, r.message.as_deref()),
            (171, Some("Signature VerifyAC Error"))
        );
        let r = call(&sim, &[("Action", prefetch), ("EndTime", "5000")], "priv").await;
        assert_eq!(r.ret_code, 230, "EndTime without BeginTime");
        let r = call(&sim, &[("Action", "Nope")], "priv").await;
        assert_eq!(r.ret_code, 161);
        let r = call(&sim, &[("Action", prefetch), ("BeginTime", "0")], "priv").await;
        assert_eq!(r.ret_code, 0);
        let r = call(&sim, &[("Action", prefetch), ("BeginTime", "0")], "priv").await;
        assert_eq!(
            r.ret_code, 153,
            "fourth admitted request within a second is over 3/s: {r:?}"
        );
        tokio::time::advance(std::time::Duration::from_secs(2)).await;
        sim.set_ret_code(Some((299, "IAM denied")));
        let r = call(&sim, &[("Action", prefetch), ("BeginTime", "0")], "priv").await;
        assert_eq!(r.ret_code, 299);
    }
}
