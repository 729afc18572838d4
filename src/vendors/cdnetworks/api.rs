//! CDNetworks ItemIdQuery wire format: the request body, lenient parsing of
//! the answer, and error classification.
//!
//! The answer is read through `serde_json::Value` rather than a derived
//! struct because the vendor's own doc disagrees with itself (`Message` in
//! the field table, `message` in the example; numbers typed as strings) and a
//! record with one odd field must not sink a page. Nothing here panics on any
//! bytes.

use crate::http::HttpResponse;
use crate::task::{TaskStatus, TaskType};
use crate::vendors::{outcome_for_status, ApiError, Outcome};
use chrono::{FixedOffset, NaiveDateTime, TimeZone};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The wire format of times: `yyyy-MM-dd HH:mm:ss` in `X-Time-Zone`.
pub const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Seconds east of UTC of the zone we send (`GMT+08:00`, the vendor default:
/// if a proxy dropped the header, the vendor would still read the same zone).
pub const ZONE_OFFSET_SECONDS: i32 = 8 * 3600;

/// The `X-Time-Zone` header value matching [`ZONE_OFFSET_SECONDS`].
pub const ZONE_HEADER: &str = "GMT+08:00";

/// Formats Unix seconds as a wire time in the zone `offset_seconds` east.
pub fn format_time(unix: i64, offset_seconds: i32) -> Option<String> {
    let zone = FixedOffset::east_opt(offset_seconds)?;
    let t = zone.timestamp_opt(unix, 0).single()?;
    Some(t.format(TIME_FORMAT).to_string())
}

/// Parses a wire time in the zone `offset_seconds` east into Unix seconds.
pub fn parse_time(s: &str, offset_seconds: i32) -> Option<i64> {
    let naive = NaiveDateTime::parse_from_str(s.trim(), TIME_FORMAT).ok()?;
    let zone = FixedOffset::east_opt(offset_seconds)?;
    zone.from_local_datetime(&naive)
        .single()
        .map(|t| t.timestamp())
}

/// The ItemIdQuery request body (both APIs). Numbers are sent as numbers,
/// as the doc's example does (its table types them as String).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_no: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_size: Option<Value>,
}

/// One URL record of an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub url: String,
    /// Unix seconds (UTC).
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub status: TaskStatus,
    /// 0–1, from `rate`.
    pub progress: Option<f64>,
    /// Purge only: 0 file, 1 regex, 2 directory, 3 tag.
    pub is_dir: Option<i64>,
    pub item_id: Option<String>,
}

/// A successful page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// Total records matching (all pages).
    pub count: u64,
    pub records: Vec<Record>,
    /// Records without a usable createTime or url, skipped.
    pub skipped: usize,
}

/// The vendor's status words; unknown ones stay visible as `unknown`.
pub fn map_status(s: &str) -> TaskStatus {
    match s.trim().to_ascii_lowercase().as_str() {
        "wait" | "init" => TaskStatus::Pending,
        "run" => TaskStatus::Running,
        "success" => TaskStatus::Success,
        "failure" | "fail" | "failed" => TaskStatus::Failed,
        _ => TaskStatus::Unknown,
    }
}

/// Purge `isDir` → task type. A missing or unknown value counts as a file
/// purge (the doc's default kind).
pub fn purge_type(is_dir: Option<i64>) -> TaskType {
    match is_dir {
        Some(1) => TaskType::RefreshRegex,
        Some(2) => TaskType::RefreshDir,
        Some(3) => TaskType::RefreshTag,
        _ => TaskType::RefreshFile,
    }
}

/// A field that may be a number or a numeric string.
fn number(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().trim_end_matches('%').trim().parse().ok(),
        _ => None,
    }
}

fn text(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
}

/// `Message` or `message`, whichever the vendor sent.
fn message(obj: &serde_json::Map<String, Value>) -> Option<String> {
    text(obj.get("Message"))
        .or_else(|| text(obj.get("message")))
        .map(str::to_owned)
}

/// Classifies a `Code: 0` message (the doc lists them; all come with HTTP 200).
pub fn classify_message(msg: &str) -> Outcome {
    let m = msg.to_ascii_lowercase();
    if m.contains("username is invalid")
        || m.contains("unauthorized")
        || m.contains("authenticat")
        || m.contains("signature")
        || m.contains("password")
    {
        Outcome::AuthError
    } else if m.contains("too many")
        || m.contains("frequen")
        || m.contains("rate limit")
        || m.contains("exceed")
        || m.contains("throttl")
    {
        Outcome::Throttled
    } else if m.contains("system error") || m.contains("internal") || m.contains("busy") {
        Outcome::ServerError
    } else {
        // parse json error, time/page/status errors, and anything unknown:
        // retrying the same request would get the same answer.
        Outcome::ClientError
    }
}

/// Parses any response to an ItemIdQuery, in the zone `offset_seconds`.
pub fn parse_page(resp: &HttpResponse, offset_seconds: i32) -> Result<Page, ApiError> {
    let request_id = resp.header("x-cnc-request-id").map(str::to_owned);
    let json: Option<Value> = serde_json::from_slice(&resp.body).ok();
    let obj = json.as_ref().and_then(Value::as_object);
    // Any 2xx is read as an answer: `outcome_for_status` calls every 2xx
    // `Ok`, and an error must never be counted as an ok request.
    if !(200..300).contains(&resp.status) {
        let msg = obj
            .and_then(message)
            .unwrap_or_else(|| format!("HTTP {}", resp.status));
        let mut outcome = outcome_for_status(resp.status);
        if outcome == Outcome::ClientError && classify_message(&msg) == Outcome::Throttled {
            outcome = Outcome::Throttled;
        }
        let mut e = ApiError::new(outcome, msg)
            .with_retry_after(resp.retry_after())
            .with_request_id(request_id);
        if let Some(c) = obj.and_then(|o| number(o.get("Code").or_else(|| o.get("code")))) {
            e = e.with_code(format!("{c}"));
        }
        return Err(e);
    }
    let Some(obj) = obj else {
        return Err(
            ApiError::parse("answer is not a JSON object", &resp.body).with_request_id(request_id)
        );
    };
    let code = number(obj.get("Code").or_else(|| obj.get("code")));
    match code {
        Some(1.0) => {}
        Some(c) => {
            let msg = message(obj).unwrap_or_else(|| "Code 0 without a message".to_owned());
            return Err(ApiError::new(classify_message(&msg), msg)
                .with_code(format!("{c}"))
                .with_retry_after(resp.retry_after())
                .with_request_id(request_id));
        }
        None => {
            return Err(
                ApiError::parse("answer has no Code", &resp.body).with_request_id(request_id)
            )
        }
    }
    let details = match obj.get("resultDetail") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(a)) => a.as_slice(),
        Some(_) => {
            return Err(ApiError::parse("resultDetail is not a list", &resp.body)
                .with_request_id(request_id))
        }
    };
    let mut records = Vec::with_capacity(details.len());
    let mut skipped = 0;
    for d in details {
        match record(d, offset_seconds) {
            Some(r) => records.push(r),
            None => skipped += 1,
        }
    }
    let count = number(obj.get("count"))
        .filter(|c| c.is_finite() && *c >= 0.0)
        .map(|c| c as u64)
        .unwrap_or(records.len() as u64);
    Ok(Page {
        count,
        records,
        skipped,
    })
}

fn record(v: &Value, offset_seconds: i32) -> Option<Record> {
    let o = v.as_object()?;
    let url = text(o.get("url"))?.to_owned();
    let created_at = parse_time(text(o.get("createTime"))?, offset_seconds)?;
    let status = map_status(text(o.get("status")).unwrap_or(""));
    let finished_at = if status.is_finished() {
        text(o.get("finishTime")).and_then(|s| parse_time(s, offset_seconds))
    } else {
        None
    };
    let progress = match status {
        TaskStatus::Success | TaskStatus::Failed => Some(1.0),
        _ => number(o.get("rate")).map(|r| (r / 100.0).clamp(0.0, 1.0)),
    }
    .filter(|p| p.is_finite());
    Some(Record {
        url,
        created_at,
        finished_at,
        status,
        progress,
        is_dir: number(o.get("isDir")).map(|n| n as i64),
        item_id: text(o.get("itemId")).map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("x-cnc-request-id".into(), "rid-1".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    fn fixture(name: &str) -> String {
        let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/responses/cdnetworks")
            .join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn zone_round_trip_across_midnight_utc8() {
        // 2024-12-31 16:30:00 UTC is 2025-01-01 00:30:00 in UTC+8.
        let t = 1_735_662_600;
        assert_eq!(
            format_time(t, ZONE_OFFSET_SECONDS).as_deref(),
            Some("2025-01-01 00:30:00")
        );
        assert_eq!(
            parse_time("2025-01-01 00:30:00", ZONE_OFFSET_SECONDS),
            Some(t)
        );
        assert_eq!(format_time(t, 0).as_deref(), Some("2024-12-31 16:30:00"));
        assert_eq!(parse_time("not a time", 0), None);
    }

    /// Fuzzing found it: a 2xx other than 200 (204 with any body) became an
    /// error whose outcome was `ok`, counted as an ok request.
    #[test]
    fn other_2xx_is_read_as_an_answer_never_an_ok_error() {
        for status in [201, 204, 299] {
            let e = parse_page(&resp(status, "pegaNo"), ZONE_OFFSET_SECONDS).unwrap_err();
            assert_eq!(e.outcome, Outcome::ParseError, "{status}");
            let p = parse_page(
                &resp(status, r#"{"Code":1,"count":0,"resultDetail":[]}"#),
                ZONE_OFFSET_SECONDS,
            )
            .unwrap();
            assert_eq!(p.count, 0);
        }
    }

    #[test]
    fn doc_example_parses_with_lowercase_message() {
        let p = parse_page(
            &resp(200, &fixture("fetch-success-doc-example.json")),
            ZONE_OFFSET_SECONDS,
        )
        .expect("the doc's example parses");
        assert_eq!(p.count, 282);
        assert_eq!(p.records.len(), 2);
        let r = &p.records[0];
        assert_eq!(r.status, TaskStatus::Success);
        assert_eq!(r.progress, Some(1.0));
        // 2017-01-11 16:17:03 +08:00
        assert_eq!(r.created_at, 1_484_122_623);
        assert_eq!(r.finished_at, Some(1_484_122_624));
    }

    #[test]
    fn purge_records_carry_is_dir_and_unfinished_rates() {
        let p = parse_page(
            &resp(200, &fixture("purge-success.json")),
            ZONE_OFFSET_SECONDS,
        )
        .expect("parses");
        let kinds: Vec<_> = p.records.iter().map(|r| purge_type(r.is_dir)).collect();
        assert_eq!(
            kinds,
            [
                TaskType::RefreshFile,
                TaskType::RefreshRegex,
                TaskType::RefreshDir,
                TaskType::RefreshTag
            ]
        );
        let st: Vec<_> = p.records.iter().map(|r| r.status).collect();
        assert_eq!(
            st,
            [
                TaskStatus::Pending,
                TaskStatus::Running,
                TaskStatus::Failed,
                TaskStatus::Pending
            ]
        );
        assert_eq!(p.records[1].progress, Some(0.42));
        assert_eq!(
            p.records[1].finished_at, None,
            "unfinished: finishTime ignored"
        );
        assert_eq!(p.records[0].item_id.as_deref(), Some("b1"));
    }

    #[test]
    fn code_zero_messages_are_classified() {
        let cases = [
            ("error-username-invalid.json", Outcome::AuthError),
            ("error-parse-json.json", Outcome::ClientError),
            ("error-before-3-days.json", Outcome::ClientError),
            ("error-query-time.json", Outcome::ClientError),
            ("error-page-size.json", Outcome::ClientError),
            ("error-status.json", Outcome::ClientError),
        ];
        for (f, outcome) in cases {
            let e = parse_page(&resp(200, &fixture(f)), 0).expect_err(f);
            assert_eq!(e.outcome, outcome, "{f}: {e}");
            assert_eq!(e.code.as_deref(), Some("0"), "{f}");
            assert_eq!(e.request_id.as_deref(), Some("rid-1"), "{f}");
            assert!(!e.message.is_empty(), "{f}");
        }
    }

    #[test]
    fn http_errors_keep_status_class_retry_after_and_request_id() {
        let mut r = resp(429, &fixture("error-throttled-429.json"));
        r.headers.push(("retry-after".into(), "120".into()));
        let e = parse_page(&r, 0).expect_err("429");
        assert_eq!(e.outcome, Outcome::Throttled);
        assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(120)));
        assert_eq!(e.request_id.as_deref(), Some("rid-1"));
        let e =
            parse_page(&resp(401, &fixture("error-unauthorized-401.json")), 0).expect_err("401");
        assert_eq!(e.outcome, Outcome::AuthError);
        let e = parse_page(&resp(502, "<html>bad gateway</html>"), 0).expect_err("502");
        assert_eq!(e.outcome, Outcome::ServerError);
        assert_eq!(e.message, "HTTP 502");
    }

    #[test]
    fn malformed_bodies_never_panic() {
        let bodies: &[&[u8]] = &[
            b"",
            b"\x00\x01not json{{{",
            b"[]",
            b"null",
            b"{\"Code\":1,\"resultDetail\":{}}",
            b"{\"Code\":\"1\",\"count\":\"-5\",\"resultDetail\":[1,null,{\"url\":3},{\"url\":\"u\",\"createTime\":\"2024-02-30 00:00:00\"}]}",
            b"{\"Code\":1,\"count\":1e400,\"resultDetail\":[{\"url\":\"u\",\"createTime\":\"2024-01-01 00:00:00\",\"rate\":\"NaN\",\"isDir\":\"x\"}]}",
            b"{\"Code\":1,\"count\":3,\"resultDetail\":[{\"url\":\"u\",\"createTime\":\"2024-01-01 00:00:00\",\"status\":\"success\",\"finishTime\":\"\"}]}",
            b"{\"Code\":1,\"resultDetail\":[{\"url\":\"u\",\"createTime\":\"2024-01-01",
            b"{\"pad\":\"xxxxxxxx\"}",
            b"{\"Code\":0}",
        ];
        for b in bodies {
            let r = HttpResponse {
                status: 200,
                headers: vec![],
                body: b.to_vec(),
            };
            let _ = parse_page(&r, ZONE_OFFSET_SECONDS);
        }
        // Odd records are skipped, not fatal.
        let r = resp(200, std::str::from_utf8(bodies[5]).expect("utf8"));
        let p = parse_page(&r, 0).expect("page with odd records");
        assert_eq!((p.records.len(), p.skipped), (0, 4));
        assert!(parse_page(&resp(200, "{\"Code\":0}"), 0).is_err());
    }
}
