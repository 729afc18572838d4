//! Simulated vendor APIs: real HTTP servers on loopback that speak each
//! vendor's wire format, check signatures and rate limits as the vendor does,
//! and serve tasks that progress (and sometimes fail or stall) over time.
//! Used by tests, the demo mode and the benchmarks; the ground truth they
//! hold is what black-box tests compare the exporter's output against.

pub mod aliyun;
pub mod calls;
pub mod cdnetworks;
pub mod cloudfront;
pub mod faults;
pub mod sigv4;
pub mod tencent;
pub mod testing;
pub mod ucloud;
pub mod volcengine;

use crate::api::Rate;
use crate::clock::SharedClock;
use crate::task::{TaskStatus, TaskType};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Deterministic pseudo-random numbers (splitmix64): seeded worlds replay
/// exactly, without a dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + (self.next_u64() % (hi - lo) as u64) as i64
    }
}

/// A task's life, fixed at creation: when it starts, how long it runs, how
/// it ends. Its status at any instant follows from that.
#[derive(Debug, Clone, PartialEq)]
pub struct SimTask {
    pub id: String,
    pub task_type: TaskType,
    pub created_at: i64,
    pub domain: String,
    pub urls: Vec<String>,
    /// Seconds queued before running.
    pub queued_for: i64,
    /// Seconds running; `None` stalls forever.
    pub runs_for: Option<i64>,
    pub fails: bool,
}

impl SimTask {
    /// Status at `now`.
    pub fn status_at(&self, now: i64) -> TaskStatus {
        let start = self.created_at + self.queued_for;
        if now < start {
            return TaskStatus::Pending;
        }
        match self.runs_for {
            Some(d) if now >= start + d => {
                if self.fails {
                    TaskStatus::Failed
                } else {
                    TaskStatus::Success
                }
            }
            _ => TaskStatus::Running,
        }
    }

    /// Finish time, once finished.
    pub fn finished_at(&self, now: i64) -> Option<i64> {
        let end = self.created_at + self.queued_for + self.runs_for?;
        (now >= end).then_some(end)
    }

    /// Progress 0–1 at `now` (linear while running; stalled tasks sit at 0.5).
    pub fn progress_at(&self, now: i64) -> f64 {
        let start = self.created_at + self.queued_for;
        match (self.status_at(now), self.runs_for) {
            (TaskStatus::Pending, _) => 0.0,
            (TaskStatus::Running, Some(d)) if d > 0 => {
                ((now - start) as f64 / d as f64).clamp(0.0, 0.99)
            }
            (TaskStatus::Running, _) => 0.5,
            _ => 1.0,
        }
    }

    /// Error text for failed tasks.
    pub fn error_at(&self, now: i64) -> Option<&'static str> {
        (self.status_at(now) == TaskStatus::Failed).then_some("Origin Return StatusCode 5XX")
    }
}

/// How generated traffic looks.
#[derive(Debug, Clone)]
pub struct Traffic {
    pub seed: u64,
    /// New tasks per hour (all types together).
    pub tasks_per_hour: f64,
    /// Share of tasks that fail.
    pub failure_rate: f64,
    /// Share of tasks that never finish.
    pub stall_rate: f64,
    /// Types to generate, uniformly.
    pub task_types: Vec<TaskType>,
    /// Most URLs per task.
    pub max_urls: u32,
}

/// What a vendor's [`crate::vendors::VendorSpec::simulator`] needs: the
/// world whose tasks it serves, the clock, and the credentials it accepts.
pub struct SimSetup {
    pub world: Arc<World>,
    pub clock: SharedClock,
    pub id: String,
    pub secret: String,
}

/// What [`crate::vendors::VendorSpec::simulator`] builds: the simulated
/// API and the handle tests inject faults through.
pub struct Simulated {
    pub router: axum::Router,
    pub control: Arc<Control>,
    /// Ground truth as the vendor shows it (its status words, its records:
    /// one per URL for Tencent and CDNetworks), of tasks created in
    /// `[from, now]`, by type × status.
    pub truth: Truth,
}

/// See [`Simulated::truth`].
pub type Truth = Arc<dyn Fn(i64) -> HashMap<(TaskType, TaskStatus), u64> + Send + Sync>;

impl Traffic {
    /// Seconds from one task to the next: around the mean gap, 0.5–1.5×.
    fn step(&self, rng: &mut Rng) -> i64 {
        let gap = (3600.0 / self.tasks_per_hour).max(1.0);
        (gap * (0.5 + rng.unit())).round().max(1.0) as i64
    }
}

impl Default for Traffic {
    fn default() -> Self {
        Traffic {
            seed: 1,
            tasks_per_hour: 120.0,
            failure_rate: 0.03,
            stall_rate: 0.01,
            task_types: TaskType::ALL.to_vec(),
            max_urls: 5,
        }
    }
}

/// The simulated vendor's task store.
pub struct World {
    clock: SharedClock,
    inner: Mutex<WorldInner>,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World").finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct WorldInner {
    tasks: Vec<SimTask>,
    /// Generated traffic: its shape, its random source, and the creation
    /// time of the next task (drawn ahead; the task exists from then on).
    traffic: Option<(Traffic, Rng, i64)>,
    next_id: u64,
    /// When set, time stands still at this instant for the tasks.
    frozen: Option<i64>,
    /// When set, every head listing first adds one finished task per task
    /// type present, at the head (newest first), shifting later pages.
    churn: bool,
    /// Tasks added by churn.
    churned: u64,
}

impl WorldInner {
    fn add_churn(&mut self, created_at: i64) {
        let mut types: Vec<TaskType> = self.tasks.iter().map(|t| t.task_type).collect();
        types.sort_by_key(|t| t.index());
        types.dedup();
        for task_type in types {
            self.next_id += 1;
            self.churned += 1;
            let domain = "www1.example.com".to_owned();
            self.tasks.push(SimTask {
                id: format!("churn{:011x}", self.next_id),
                task_type,
                created_at,
                urls: vec![format!("https://{domain}/churn/{}.js", self.next_id)],
                domain,
                queued_for: 0,
                runs_for: Some(0),
                fails: false,
            });
        }
    }
}

impl World {
    /// An empty world.
    pub fn new(clock: SharedClock) -> Arc<Self> {
        Arc::new(World {
            clock,
            inner: Mutex::new(WorldInner {
                tasks: Vec::new(),
                traffic: None,
                next_id: 1,
                frozen: None,
                churn: false,
                churned: 0,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WorldInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Now, per the world's clock (or the instant it was frozen at).
    pub fn now(&self) -> i64 {
        self.lock().frozen.unwrap_or_else(|| self.clock.unix())
    }

    /// Stops time for the tasks and stops new traffic, so a black-box test
    /// can compare the exporter against a ground truth that holds still.
    pub fn freeze(&self) {
        let now = self.clock.unix();
        let mut g = self.lock();
        g.traffic = None;
        g.frozen = Some(now);
    }

    /// Adds one task.
    pub fn add(&self, task: SimTask) {
        self.lock().tasks.push(task);
    }

    /// A fresh id, unique in this world.
    pub fn next_id(&self) -> u64 {
        let mut g = self.lock();
        g.next_id += 1;
        g.next_id
    }

    /// Generates steady traffic: `backfill` worth of history now, then new
    /// tasks as time passes (on every [`World::tick`]).
    pub fn with_traffic(&self, traffic: Traffic, backfill: Duration) {
        let now = self.now();
        let mut rng = Rng::new(traffic.seed);
        let start = now - backfill.as_secs() as i64;
        let next = start.saturating_add(traffic.step(&mut rng));
        self.lock().traffic = Some((traffic, rng, next));
        self.generate(Some(start));
    }

    /// Creates the traffic due up to now.
    pub fn tick(&self) {
        self.generate(None);
    }

    /// Creates the traffic due up to now. `backfill_from`: the history laid
    /// by [`World::with_traffic`], which starts there and, as it always has,
    /// stops at the first task created within a mean gap of now (so the
    /// seeded histories tests pin stay as they were).
    fn generate(&self, backfill_from: Option<i64>) {
        let now = self.now();
        let mut g = self.lock();
        let WorldInner {
            tasks,
            traffic,
            next_id,
            ..
        } = &mut *g;
        let Some((t, rng, next)) = traffic.as_mut() else {
            return;
        };
        if t.tasks_per_hour <= 0.0 || t.task_types.is_empty() {
            return;
        }
        let gap = (3600.0 / t.tasks_per_hour).max(1.0);
        let mut last = backfill_from;
        // After the backfill a task exists from its creation time on, never
        // later: a listing at `now` sees every task created before it (the
        // next creation time is drawn ahead, so no task appears backdated,
        // created before a listing that could not yet see it; the old loop
        // made a task only a mean gap after the previous one, so a shorter
        // gap backdated it).
        while *next <= now && last.is_none_or(|l| (l as f64) + gap <= now as f64) {
            let until = *next;
            if let Some(l) = last.as_mut() {
                *l = until;
            }
            *next_id += 1;
            let task_type = t.task_types[rng.range(0, t.task_types.len() as i64) as usize];
            let n = rng.range(1, i64::from(t.max_urls.max(1)) + 1);
            let roll = rng.unit();
            let domain = format!("www{}.example.com", rng.range(1, 4));
            tasks.push(SimTask {
                id: format!("{:016x}", rng.next_u64() ^ *next_id),
                task_type,
                created_at: until,
                urls: (0..n)
                    .map(|i| format!("https://{domain}/static/{next_id}/{i}.js"))
                    .collect(),
                domain,
                queued_for: rng.range(0, 30),
                runs_for: (roll >= t.stall_rate).then(|| rng.range(20, 600)),
                fails: roll < t.stall_rate + t.failure_rate && roll >= t.stall_rate,
            });
            *next = until.saturating_add(t.step(rng));
        }
    }

    /// Tasks created in `[from, to)` (optionally of one type and domain),
    /// newest first, as of now.
    pub fn list(
        &self,
        from: i64,
        to: i64,
        task_type: Option<TaskType>,
        domain: Option<&str>,
    ) -> Vec<SimTask> {
        self.list_as(from, to, task_type, domain, true)
    }

    fn list_as(
        &self,
        from: i64,
        to: i64,
        task_type: Option<TaskType>,
        domain: Option<&str>,
        churn: bool,
    ) -> Vec<SimTask> {
        self.tick();
        let now = self.now();
        let mut g = self.lock();
        // Only a head listing (a window ending about now) sees new tasks:
        // the next head listing, which overlaps, finds them.
        if churn && g.churn && to > from && to >= now - 60 {
            g.add_churn((to - 1).min(now));
        }
        let mut v: Vec<SimTask> = g
            .tasks
            .iter()
            .filter(|t| t.created_at >= from && t.created_at < to)
            .filter(|t| task_type.is_none_or(|ty| t.task_type == ty))
            .filter(|t| domain.is_none_or(|d| t.domain == d))
            .cloned()
            .collect();
        v.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        v
    }

    /// Tasks with these ids.
    pub fn by_ids(&self, ids: &[&str]) -> Vec<SimTask> {
        self.tick();
        let g = self.lock();
        g.tasks
            .iter()
            .filter(|t| ids.contains(&t.id.as_str()))
            .cloned()
            .collect()
    }

    /// Ground truth: tasks created in `[from, now)` by type × status.
    pub fn truth(&self, from: i64) -> HashMap<(TaskType, TaskStatus), u64> {
        let now = self.now();
        let mut m = HashMap::new();
        for t in self.list_as(from, now + 1, None, None, false) {
            *m.entry((t.task_type, t.status_at(now))).or_insert(0) += 1;
        }
        m
    }

    /// While on, every [`World::list`] of a window ending within the last
    /// minute first adds one finished task per task type present, created
    /// in the window's last second: tasks appearing at the head of a
    /// newest-first listing while a client pages through it, so the next
    /// page repeats the previous page's last tasks.
    pub fn set_churn(&self, on: bool) {
        self.lock().churn = on;
    }

    /// How many tasks churn has added.
    pub fn churned(&self) -> u64 {
        self.lock().churned
    }

    /// Finishes every unfinished task matching `f` now (successfully), as
    /// if its run had been exactly long enough: for restart tests, where
    /// tasks finish while the exporter is down.
    pub fn finish(&self, f: impl Fn(&SimTask) -> bool) {
        let mut g = self.lock();
        let now = g.frozen.unwrap_or_else(|| self.clock.unix());
        for t in &mut g.tasks {
            if f(t) && !t.status_at(now).is_finished() {
                let start = t.created_at + t.queued_for;
                t.queued_for = t.queued_for.min(now - t.created_at).max(0);
                t.runs_for = Some((now - start.min(now)).max(0));
                t.fails = false;
            }
        }
    }

    /// Makes every task matching `f` fail at its finish (for alert tests).
    pub fn set_failing(&self, f: impl Fn(&SimTask) -> bool) {
        for t in &mut self.lock().tasks {
            if f(t) {
                t.fails = true;
            }
        }
    }
}

/// What a simulated API does to the next requests, set by tests (one switch
/// per simulator, i.e. per account; flip it at run time with
/// [`Control::set_fault`] or [`faults::FaultSwitch`]). Throttling and auth
/// failures answer in each vendor's own shape (its sim module); everything
/// else is applied to the answer in one place, [`Control::deliver`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Fault {
    /// Answer normally.
    #[default]
    None,
    /// Never answer (the request is logged, no byte of an answer is sent).
    Hang,
    /// Answer 200 with bytes that are not the vendor's format.
    Garbage,
    /// Answer 200 with an HTML error page.
    Html,
    /// Answer 200 with a valid-looking body cut short (its Content-Length
    /// matches the cut: the bytes are complete, the JSON is not).
    Truncated,
    /// Answer with a body of this many bytes.
    Huge(usize),
    /// Answer with the vendor's throttling error.
    Throttle,
    /// Answer with the vendor's server error.
    ServerError,
    /// The vendor's throttling error with `Retry-After: N` (seconds).
    ThrottleRetryAfter(u64),
    /// The vendor's authentication error (the key was revoked), although
    /// the request is correctly signed.
    AuthFailure,
    /// The normal answer, after this delay.
    Slow(Duration),
    /// The normal answer's headers, then its body at one byte per second.
    Drip,
    /// Headers announcing the whole body, half of it, then the connection
    /// is dropped (the body stream fails, so the server aborts it).
    Reset,
    /// Headers announcing the whole body, half of it, then the body ends:
    /// the answer is short of its Content-Length.
    ShortBody,
    /// The normal answer with a JSON syntax error (a trailing comma).
    Malformed,
    /// The normal answer preceded by this many bytes of whitespace (still
    /// valid JSON), sent chunked, without a Content-Length.
    HugeValid(usize),
    /// A 502 gateway page in HTML.
    HtmlError,
    /// 200 with `Content-Type: text/xml` and an XML document.
    WrongContentType,
    /// 200 with an empty body.
    Empty,
    /// The normal answer with every value of the wrong JSON type (strings
    /// become booleans, numbers strings, booleans numbers).
    WrongTypes,
    /// Answer normally, but every listing adds new tasks at the head first,
    /// so neighbouring pages share tasks (see [`World::set_churn`]); set
    /// through [`faults::FaultSwitch`].
    SharedPages,
}

/// One request a simulated API received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub api: String,
    /// What the simulator answered: "ok", or the error kind it sent.
    pub answer: String,
    /// Request details a test may check (window, ids), empty if none.
    pub detail: String,
}

/// Shared behaviour of every simulated API: the request log, the vendor's
/// rate limit, injected faults.
#[derive(Debug, Default)]
pub struct Control {
    log: Mutex<Vec<Received>>,
    limits: Mutex<HashMap<String, (Rate, VecDeque<Instant>)>>,
    fault: Mutex<Fault>,
}

impl Control {
    /// New, shareable.
    pub fn new() -> Arc<Self> {
        Arc::new(Control::default())
    }

    /// Enforces `rate` on `api` as the vendor would (sliding window).
    pub fn limit(&self, api: &str, rate: Rate) {
        self.limits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(api.to_owned(), (rate, VecDeque::new()));
    }

    /// Sets the fault for the following requests.
    pub fn set_fault(&self, f: Fault) {
        *self.fault.lock().unwrap_or_else(|p| p.into_inner()) = f;
    }

    /// The fault in force.
    pub fn fault(&self) -> Fault {
        self.fault.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// True if this request to `api` is within the vendor's limit (and
    /// counts it).
    pub fn admit(&self, api: &str) -> bool {
        let now = Instant::now();
        let mut g = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        let Some((rate, sent)) = g.get_mut(api) else {
            return true;
        };
        while sent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= rate.per)
        {
            sent.pop_front();
        }
        if sent.len() as u32 >= rate.requests {
            return false;
        }
        sent.push_back(now);
        true
    }

    /// Records a request and its answer.
    pub fn record(&self, api: &str, answer: &str) {
        self.record_detail(api, answer, "");
    }

    /// Records a request, its answer, and details for tests (window, ids).
    /// The instant logged is when the request arrived (see [`serve`]), so
    /// the time a handler spends building its answer does not move it.
    pub fn record_detail(&self, api: &str, answer: &str, detail: &str) {
        let at = ARRIVED.try_with(|t| *t).unwrap_or_else(|_| Instant::now());
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Received {
                at,
                api: api.to_owned(),
                answer: answer.to_owned(),
                detail: detail.to_owned(),
            });
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Requests received for `api`.
    pub fn count(&self, api: &str) -> usize {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|r| r.api == api)
            .count()
    }
}

/// Checks the log: at most `rate.requests` requests to `api` in any window
/// of `rate.per`. Returns the worst window found.
pub fn max_in_window(received: &[Received], api: &str, per: Duration) -> usize {
    let times: Vec<Instant> = received
        .iter()
        .filter(|r| r.api == api)
        .map(|r| r.at)
        .collect();
    let mut worst = 0;
    for (i, t) in times.iter().enumerate() {
        let n = times[i..]
            .iter()
            .take_while(|u| u.saturating_duration_since(*t) < per)
            .count();
        worst = worst.max(n);
    }
    worst
}

tokio::task_local! {
    /// When the request being handled arrived.
    static ARRIVED: Instant;
}

/// Stamps each request with its arrival instant, for the request log.
async fn stamp_arrival(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    ARRIVED.scope(Instant::now(), next.run(req)).await
}

/// Binds `router` on 127.0.0.1 (any free port) and serves it in the
/// background; the request log records arrival instants.
pub async fn serve(
    router: axum::Router,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let router = router.layer(axum::middleware::from_fn(stamp_arrival));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok((addr, handle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TokioClock;

    #[test]
    fn task_life() {
        let t = SimTask {
            id: "a".into(),
            task_type: TaskType::Prefetch,
            created_at: 100,
            domain: "d".into(),
            urls: vec![],
            queued_for: 10,
            runs_for: Some(100),
            fails: true,
        };
        assert_eq!(t.status_at(105), TaskStatus::Pending);
        assert_eq!(t.status_at(160), TaskStatus::Running);
        assert!((t.progress_at(160) - 0.5).abs() < 1e-9);
        assert_eq!(t.status_at(210), TaskStatus::Failed);
        assert_eq!(t.finished_at(300), Some(210));
    }

    #[tokio::test(start_paused = true)]
    async fn traffic_is_deterministic_and_steady() {
        let mk = || {
            let w = World::new(Arc::new(TokioClock::starting_at(1_700_000_000)));
            w.with_traffic(
                Traffic {
                    seed: 7,
                    ..Traffic::default()
                },
                Duration::from_secs(3600),
            );
            w
        };
        let (a, b) = (mk(), mk());
        let la = a.list(0, i64::MAX, None, None);
        assert_eq!(la, b.list(0, i64::MAX, None, None));
        assert!(
            (80..=160).contains(&la.len()),
            "{} tasks in an hour at 120/h",
            la.len()
        );
        tokio::time::advance(Duration::from_secs(1800)).await;
        assert!(a.list(0, i64::MAX, None, None).len() > la.len());
    }
}

/// A [`Transport`](crate::http::Transport) that hands requests straight to a
/// simulator's router, without sockets. With tokio's paused clock this makes
/// long simulated runs (hours of scrapes) exact and instant; everything else
/// uses real HTTP over loopback.
#[derive(Clone)]
pub struct RouterTransport {
    router: axum::Router,
    max_body_bytes: usize,
}

impl RouterTransport {
    /// Routes every request to `router`, whatever its host.
    pub fn new(router: axum::Router) -> Self {
        RouterTransport {
            router,
            max_body_bytes: 16 << 20,
        }
    }
}

impl crate::http::Transport for RouterTransport {
    fn send(
        &self,
        req: crate::http::HttpRequest,
        timeout: Duration,
    ) -> crate::http::SendFuture<'_> {
        use tower::ServiceExt;
        Box::pin(async move {
            let path = req
                .url
                .splitn(4, '/')
                .nth(3)
                .map(|p| format!("/{p}"))
                .unwrap_or_else(|| "/".to_owned());
            let host = req.url.split('/').nth(2).unwrap_or("localhost").to_owned();
            let mut b = axum::http::Request::builder()
                .method(req.method.as_str())
                .uri(path)
                .header("host", host);
            for (k, v) in &req.headers {
                b = b.header(k.as_str(), v.as_str());
            }
            let request = b
                .body(axum::body::Body::from(req.body))
                .map_err(|e| crate::http::TransportError::Network(e.to_string()))?;
            let call = async {
                let resp = self
                    .router
                    .clone()
                    .oneshot(request)
                    .await
                    .map_err(|e| crate::http::TransportError::Network(e.to_string()))?;
                let status = resp.status().as_u16();
                let headers = resp
                    .headers()
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().to_owned(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect();
                let body = axum::body::to_bytes(resp.into_body(), self.max_body_bytes)
                    .await
                    .map_err(|_| crate::http::TransportError::TooLarge(self.max_body_bytes))?;
                Ok(crate::http::HttpResponse {
                    status,
                    headers,
                    body: body.to_vec(),
                })
            };
            match tokio::time::timeout(timeout, call).await {
                Ok(r) => r,
                Err(_) => Err(crate::http::TransportError::Timeout(timeout)),
            }
        })
    }
}
