//! Fault injection for every simulated vendor, in one place.
//!
//! Each simulator (one per account) has one switch, its [`Control`]'s
//! [`Fault`]. The vendor modules answer throttling and authentication faults
//! in the vendor's own shape (through [`Control::throttled`] and
//! [`Control::auth_failing`]); every successful answer is written through
//! [`Control::deliver`], which applies the HTTP-level faults (hangs, slow
//! answers and drips, resets, short and oversized bodies, malformed,
//! mistyped and mislabelled bodies, gateway pages) the same way for all
//! vendors. [`FaultSwitch`] flips a simulator's fault at run time.

use super::{Control, Fault, World};
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;

/// The 502 page a gateway in front of the vendor sends.
pub const GATEWAY_PAGE: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

impl Fault {
    /// Short name, for logs and tables.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::None => "none",
            Fault::Hang => "hang",
            Fault::Garbage => "garbage",
            Fault::Html => "html",
            Fault::Truncated => "truncated",
            Fault::Huge(_) => "huge",
            Fault::Throttle => "throttle",
            Fault::ServerError => "5xx",
            Fault::ThrottleRetryAfter(_) => "throttle_retry_after",
            Fault::AuthFailure => "auth_failure",
            Fault::Slow(_) => "slow",
            Fault::Drip => "drip",
            Fault::Reset => "reset",
            Fault::ShortBody => "short_body",
            Fault::Malformed => "malformed_json",
            Fault::HugeValid(_) => "huge_valid",
            Fault::HtmlError => "html_error_page",
            Fault::WrongContentType => "wrong_content_type",
            Fault::Empty => "empty_body",
            Fault::WrongTypes => "wrong_json_types",
            Fault::SharedPages => "shared_pages",
        }
    }

    /// True for the vendor's throttling answer (with or without Retry-After).
    pub fn throttles(&self) -> bool {
        matches!(self, Fault::Throttle | Fault::ThrottleRetryAfter(_))
    }

    /// True when every answer under this fault is unusable (all but
    /// [`Fault::None`] and [`Fault::SharedPages`]).
    pub fn is_bad(&self) -> bool {
        !matches!(self, Fault::None | Fault::SharedPages)
    }
}

impl Control {
    /// True while the vendor should throttle every request.
    pub fn throttling(&self) -> bool {
        self.fault().throttles()
    }

    /// True while the vendor should refuse the credentials.
    pub fn auth_failing(&self) -> bool {
        self.fault() == Fault::AuthFailure
    }

    /// Records a throttled request to `api` and returns the vendor's
    /// throttling answer `resp`, with `Retry-After` when the fault says so.
    pub fn throttled(&self, api: &str, mut resp: Response) -> Response {
        self.record(api, "throttled");
        if let Fault::ThrottleRetryAfter(secs) = self.fault() {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }

    /// Records a request to `api` answered with `resp` (the vendor's normal
    /// answer) and returns it through the fault in force: the one place
    /// where every simulator's answers are damaged. The log's answer is
    /// `ok`, or `fault_NAME` when the answer was damaged.
    pub async fn deliver(&self, api: &str, detail: &str, resp: Response) -> Response {
        let fault = self.fault();
        let damages = !matches!(
            fault,
            Fault::None
                | Fault::SharedPages
                | Fault::Throttle
                | Fault::ThrottleRetryAfter(_)
                | Fault::ServerError
                | Fault::AuthFailure
        );
        if damages {
            self.record_detail(api, &format!("fault_{}", fault.name()), detail);
        } else {
            self.record_detail(api, "ok", detail);
        }
        match fault {
            Fault::Hang => std::future::pending().await,
            Fault::Slow(d) => {
                tokio::time::sleep(d).await;
                resp
            }
            f if damages => {
                let (parts, body) = resp.into_parts();
                let bytes = axum::body::to_bytes(body, usize::MAX)
                    .await
                    .unwrap_or_default();
                damage(&f, Response::from_parts(parts, Body::empty()), bytes)
            }
            _ => resp,
        }
    }
}

/// `head` (status and headers of the normal answer) with `body` damaged by
/// `fault`.
fn damage(fault: &Fault, mut head: Response, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body).into_owned();
    let half = body.len() / 2;
    let announce = |head: &mut Response, n: usize| {
        head.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    };
    let set_type = |head: &mut Response, t: &'static str| {
        head.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(t));
    };
    match fault {
        Fault::Garbage => *head.body_mut() = Body::from("\u{0}\u{1}not json at all{{{"),
        Fault::Html => {
            set_type(&mut head, "text/html");
            *head.body_mut() = Body::from(
                "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
            );
        }
        Fault::Truncated => {
            *head.body_mut() = Body::from(text.chars().take(text.len() / 2).collect::<String>())
        }
        Fault::Huge(n) => {
            *head.body_mut() = Body::from(format!("{{\"pad\":\"{}\"}}", "x".repeat(*n)))
        }
        Fault::Drip => {
            announce(&mut head, body.len());
            let stream = futures_util::stream::unfold(0usize, move |i| {
                let body = body.clone();
                async move {
                    if i >= body.len() {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    Some((Ok::<_, std::io::Error>(body.slice(i..i + 1)), i + 1))
                }
            });
            *head.body_mut() = Body::from_stream(stream);
        }
        Fault::Reset | Fault::ShortBody => {
            announce(&mut head, body.len());
            let reset = *fault == Fault::Reset;
            let first = body.slice(..half);
            let stream = futures_util::stream::unfold(0u8, move |step| {
                let first = first.clone();
                async move {
                    match step {
                        0 => Some((Ok(first), 1)),
                        1 if reset => {
                            // Let the first half reach the client first.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Some((
                                Err(std::io::Error::new(
                                    std::io::ErrorKind::ConnectionReset,
                                    "simulated reset",
                                )),
                                2,
                            ))
                        }
                        _ => None,
                    }
                }
            });
            *head.body_mut() = Body::from_stream(stream);
        }
        Fault::Malformed => {
            let broken = match text.rfind('}') {
                Some(i) => format!("{},{}", &text[..i], &text[i..]),
                None => format!("{text}{{"),
            };
            *head.body_mut() = Body::from(broken);
        }
        Fault::HugeValid(n) => {
            head.headers_mut().remove(header::CONTENT_LENGTH);
            const CHUNK: usize = 64 << 10;
            let pad = Bytes::from(vec![b' '; CHUNK]);
            let chunks = n.div_ceil(CHUNK);
            let stream = futures_util::stream::unfold(0usize, move |i| {
                let (pad, body) = (pad.clone(), body.clone());
                async move {
                    match i {
                        i if i < chunks => Some((Ok::<_, std::io::Error>(pad), i + 1)),
                        i if i == chunks => Some((Ok(body), i + 1)),
                        _ => None,
                    }
                }
            });
            *head.body_mut() = Body::from_stream(stream);
        }
        Fault::HtmlError => {
            return (
                StatusCode::BAD_GATEWAY,
                [(header::CONTENT_TYPE, "text/html")],
                GATEWAY_PAGE,
            )
                .into_response();
        }
        Fault::WrongContentType => {
            set_type(&mut head, "text/xml;charset=utf-8");
            *head.body_mut() = Body::from(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Status>OK</Status></Response>",
            );
        }
        Fault::Empty => *head.body_mut() = Body::empty(),
        Fault::WrongTypes => {
            let retyped = match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(mut v) => {
                    retype(&mut v);
                    v.to_string()
                }
                Err(_) => String::from("{\"not\":\"json\"}"),
            };
            *head.body_mut() = Body::from(retyped);
        }
        _ => *head.body_mut() = Body::from(body),
    }
    head
}

/// Gives every scalar in `v` the wrong JSON type.
pub fn retype(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::String(_) => *v = Value::Bool(true),
        Value::Number(_) => *v = Value::String("not a number".into()),
        Value::Bool(b) => *v = Value::from(u8::from(*b)),
        Value::Array(a) => a.iter_mut().for_each(retype),
        Value::Object(o) => o.values_mut().for_each(retype),
        Value::Null => {}
    }
}

/// A simulator's fault switch, flipped at run time by tests: the fault of
/// its [`Control`], plus the task churn of its [`World`] for
/// [`Fault::SharedPages`].
#[derive(Debug, Clone)]
pub struct FaultSwitch {
    pub control: Arc<Control>,
    pub world: Arc<World>,
}

impl FaultSwitch {
    /// The switch of the simulator with this control and world.
    pub fn new(control: Arc<Control>, world: Arc<World>) -> Self {
        FaultSwitch { control, world }
    }

    /// Puts `fault` in force for the following requests.
    pub fn set(&self, fault: Fault) {
        self.world.set_churn(fault == Fault::SharedPages);
        self.control.set_fault(fault);
    }

    /// Back to normal answers.
    pub fn clear(&self) {
        self.set(Fault::None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(fault: Fault) -> (StatusCode, Vec<(String, String)>, Result<Bytes, String>) {
        let c = Control::new();
        c.set_fault(fault);
        let normal = (
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"a":"x","n":1,"b":true,"l":[{"id":"t"}]}"#,
        )
            .into_response();
        let r = c.deliver("Api", "", normal).await;
        let status = r.status();
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .map_err(|e| e.to_string());
        (status, headers, body)
    }

    #[tokio::test]
    async fn each_fault_damages_the_answer_as_documented() {
        let (s, _, b) = answer(Fault::None).await;
        assert_eq!(s, StatusCode::OK);
        let good: serde_json::Value = serde_json::from_slice(&b.unwrap()).unwrap();
        assert_eq!(good["n"], 1);
        let (_, _, b) = answer(Fault::Malformed).await;
        assert!(serde_json::from_slice::<serde_json::Value>(&b.unwrap()).is_err());
        let (_, _, b) = answer(Fault::WrongTypes).await;
        let v: serde_json::Value = serde_json::from_slice(&b.unwrap()).unwrap();
        assert_eq!(v["a"], true);
        assert_eq!(v["n"], "not a number");
        assert_eq!(v["b"], 1);
        assert_eq!(v["l"][0]["id"], true);
        let (_, h, b) = answer(Fault::HugeValid(200_000)).await;
        let b = b.unwrap();
        assert!(b.len() > 200_000);
        assert!(!h.iter().any(|(k, _)| k == "content-length"));
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v, good, "padding keeps the answer valid");
        let (s, h, b) = answer(Fault::HtmlError).await;
        assert_eq!(s, StatusCode::BAD_GATEWAY);
        assert!(h.contains(&("content-type".into(), "text/html".into())));
        assert!(b.unwrap().starts_with(b"<html>"));
        let (_, h, b) = answer(Fault::WrongContentType).await;
        assert!(h
            .iter()
            .any(|(k, v)| k == "content-type" && v.starts_with("text/xml")));
        assert!(b.unwrap().starts_with(b"<?xml"));
        let (_, _, b) = answer(Fault::Empty).await;
        assert!(b.unwrap().is_empty());
        let (_, h, b) = answer(Fault::ShortBody).await;
        let announced: usize = h
            .iter()
            .find(|(k, _)| k == "content-length")
            .map(|(_, v)| v.parse().unwrap())
            .unwrap();
        assert!(b.unwrap().len() < announced, "short of its Content-Length");
        let (_, _, b) = answer(Fault::Reset).await;
        assert!(b.is_err(), "the body fails mid-way");
    }

    #[tokio::test(start_paused = true)]
    async fn drip_sends_one_byte_a_second_and_hang_never_answers() {
        let t0 = tokio::time::Instant::now();
        let (_, _, b) = answer(Fault::Drip).await;
        let n = b.unwrap().len();
        assert_eq!(t0.elapsed(), Duration::from_secs(n as u64));
        let c = Control::new();
        c.set_fault(Fault::Hang);
        let hung = tokio::time::timeout(
            Duration::from_secs(3600),
            c.deliver("Api", "", "x".into_response()),
        )
        .await;
        assert!(hung.is_err());
        assert_eq!(
            c.received()[0].answer,
            "fault_hang",
            "logged before hanging"
        );
        c.set_fault(Fault::ThrottleRetryAfter(7));
        let r = c.throttled("Api", StatusCode::TOO_MANY_REQUESTS.into_response());
        assert_eq!(r.headers()["retry-after"], "7");
        c.set_fault(Fault::Throttle);
        let r = c.throttled("Api", StatusCode::TOO_MANY_REQUESTS.into_response());
        assert!(!r.headers().contains_key("retry-after"));
    }

    #[test]
    fn shared_pages_churn_shifts_listings() {
        use crate::clock::SystemClock;
        use crate::task::TaskType;
        let w = World::new(Arc::new(SystemClock));
        let now = w.now();
        for i in 0..4 {
            w.add(crate::sim::SimTask {
                id: format!("t{i}"),
                task_type: TaskType::Prefetch,
                created_at: now - 100 + i,
                domain: "d".into(),
                urls: vec!["u".into()],
                queued_for: 0,
                runs_for: Some(1),
                fails: false,
            });
        }
        let s = FaultSwitch::new(Control::new(), w.clone());
        s.set(Fault::SharedPages);
        let page1: Vec<String> = w.list(0, now + 1, None, None)[..2]
            .iter()
            .map(|t| t.id.clone())
            .collect();
        let page2: Vec<String> = w.list(0, now + 1, None, None)[2..4]
            .iter()
            .map(|t| t.id.clone())
            .collect();
        assert_eq!(page1[1], page2[0], "neighbouring pages share a task");
        assert_eq!(w.churned(), 2);
        s.clear();
        assert_eq!(w.list(0, now + 1, None, None).len(), 6);
        assert_eq!(w.truth(0).values().sum::<u64>(), 6);
        assert_eq!(w.churned(), 2);
    }
}
