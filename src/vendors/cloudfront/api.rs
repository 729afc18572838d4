//! CloudFront wire types (REST-XML, API version 2020-05-31), response
//! parsing and error classification.
//!
//! XML goes through `quick-xml`'s serde support; every field is optional on
//! the way in, so a response lacking a field degrades one invalidation (or
//! becomes a parse error), never a panic. The same types serialize the
//! simulator's answers, so both sides of the wire are one definition.

use crate::http::HttpResponse;
use crate::task::{Task, TaskStatus, TaskType};
use crate::vendors::{outcome_for_status, ApiError, Outcome};
use serde::{Deserialize, Serialize};

/// The XML namespace of every answer.
pub const XMLNS: &str = "http://cloudfront.amazonaws.com/doc/2020-05-31/";

/// Error codes that mean "slow down".
pub const THROTTLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "SlowDown",
];

/// Error codes that mean the credentials, the signature or the permissions
/// are wrong.
pub const AUTH_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "ExpiredToken",
    "RequestExpired",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
];

/// Codes that mean the service failed.
pub const SERVER_CODES: &[&str] = &["InternalError", "InternalFailure", "ServiceUnavailable"];

/// `ListInvalidations` answer: `<InvalidationList>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename = "InvalidationList")]
pub struct InvalidationList {
    #[serde(rename = "@xmlns", default, skip_serializing_if = "Option::is_none")]
    pub xmlns: Option<String>,
    #[serde(rename = "Marker", default)]
    pub marker: Option<String>,
    #[serde(
        rename = "NextMarker",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub next_marker: Option<String>,
    #[serde(rename = "MaxItems", default)]
    pub max_items: Option<i64>,
    #[serde(rename = "IsTruncated", default)]
    pub is_truncated: Option<bool>,
    #[serde(rename = "Quantity", default)]
    pub quantity: Option<i64>,
    #[serde(rename = "Items", default, skip_serializing_if = "Option::is_none")]
    pub items: Option<SummaryItems>,
}

/// `<Items>` of a list: one `<InvalidationSummary>` per invalidation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SummaryItems {
    #[serde(rename = "InvalidationSummary", default)]
    pub summaries: Vec<InvalidationSummary>,
}

/// One invalidation as the list reports it: no paths.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InvalidationSummary {
    #[serde(rename = "Id", default)]
    pub id: Option<String>,
    /// ISO 8601, e.g. `2024-02-19T03:23:34.123Z`.
    #[serde(rename = "CreateTime", default)]
    pub create_time: Option<String>,
    #[serde(rename = "Status", default)]
    pub status: Option<String>,
}

/// `GetInvalidation` answer: `<Invalidation>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename = "Invalidation")]
pub struct Invalidation {
    #[serde(rename = "@xmlns", default, skip_serializing_if = "Option::is_none")]
    pub xmlns: Option<String>,
    #[serde(rename = "Id", default)]
    pub id: Option<String>,
    #[serde(rename = "Status", default)]
    pub status: Option<String>,
    #[serde(rename = "CreateTime", default)]
    pub create_time: Option<String>,
    #[serde(rename = "InvalidationBatch", default)]
    pub batch: Option<InvalidationBatch>,
}

/// `<InvalidationBatch>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InvalidationBatch {
    #[serde(rename = "Paths", default)]
    pub paths: Option<Paths>,
    #[serde(rename = "CallerReference", default)]
    pub caller_reference: Option<String>,
}

/// `<Paths>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Paths {
    #[serde(rename = "Quantity", default)]
    pub quantity: Option<i64>,
    #[serde(rename = "Items", default, skip_serializing_if = "Option::is_none")]
    pub items: Option<PathItems>,
}

/// `<Items>` of paths.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PathItems {
    #[serde(rename = "Path", default)]
    pub paths: Vec<String>,
}

/// `<ErrorResponse>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename = "ErrorResponse")]
pub struct ErrorResponse {
    #[serde(rename = "@xmlns", default, skip_serializing_if = "Option::is_none")]
    pub xmlns: Option<String>,
    #[serde(rename = "Error", default)]
    pub error: Option<WireError>,
    #[serde(rename = "RequestId", default)]
    pub request_id: Option<String>,
}

/// `<Error>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireError {
    /// `Sender` or `Receiver`.
    #[serde(rename = "Type", default)]
    pub kind: Option<String>,
    #[serde(rename = "Code", default)]
    pub code: Option<String>,
    #[serde(rename = "Message", default)]
    pub message: Option<String>,
}

/// Serializes an answer with the XML declaration AWS puts first.
pub fn to_xml<T: Serialize>(v: &T) -> String {
    let body = quick_xml::se::to_string(v).unwrap_or_default();
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}")
}

/// Classifies an error by code, then by HTTP status.
pub fn classify(status: u16, code: Option<&str>) -> Outcome {
    match code {
        Some(c) if THROTTLE_CODES.contains(&c) => Outcome::Throttled,
        _ if status == 429 => Outcome::Throttled,
        Some(c) if AUTH_CODES.contains(&c) => Outcome::AuthError,
        Some(c) if SERVER_CODES.contains(&c) => Outcome::ServerError,
        _ if status >= 500 => Outcome::ServerError,
        Some(_) => Outcome::ClientError,
        None => match outcome_for_status(status) {
            Outcome::Ok => Outcome::ClientError,
            o => o,
        },
    }
}

/// AWS echoes the canonical request in signature errors, and with temporary
/// credentials that holds the session token: keep the first sentence only.
fn safe_message(code: Option<&str>, message: &str) -> String {
    let m = if code == Some("SignatureDoesNotMatch") {
        let cut = [
            ". The Canonical String",
            "\n",
            " The Canonical String",
            "The String-to-Sign",
        ]
        .iter()
        .filter_map(|p| message.find(p))
        .min()
        .unwrap_or(message.len());
        &message[..cut]
    } else {
        message
    };
    m.chars().take(300).collect()
}

/// The error a non-2xx answer stands for.
fn error_of(resp: &HttpResponse) -> ApiError {
    let header_id = resp.header("x-amz-request-id").map(str::to_owned);
    match quick_xml::de::from_str::<ErrorResponse>(&String::from_utf8_lossy(&resp.body)) {
        Ok(ErrorResponse {
            error: Some(err),
            request_id,
            ..
        }) => {
            let code = err.code.filter(|c| !c.is_empty());
            let message = err
                .message
                .filter(|m| !m.is_empty())
                .map(|m| safe_message(code.as_deref(), &m))
                .unwrap_or_else(|| format!("HTTP {}", resp.status));
            let mut e = ApiError::new(classify(resp.status, code.as_deref()), message)
                .with_request_id(request_id.filter(|r| !r.is_empty()).or(header_id))
                .with_retry_after(resp.retry_after());
            if let Some(c) = code {
                e = e.with_code(c);
            }
            e
        }
        // An error page from a proxy or a load balancer: the status says enough.
        _ => ApiError::new(
            classify(resp.status, None),
            format!(
                "HTTP {} with a body that is not a CloudFront error",
                resp.status
            ),
        )
        .with_request_id(header_id)
        .with_retry_after(resp.retry_after()),
    }
}

/// Parses a 2xx answer of type `T`, or classifies the error.
fn answer<T: serde::de::DeserializeOwned>(resp: &HttpResponse, what: &str) -> Result<T, ApiError> {
    if !(200..300).contains(&resp.status) {
        return Err(error_of(resp));
    }
    let text = std::str::from_utf8(&resp.body)
        .map_err(|_| ApiError::parse(format!("{what} answer is not UTF-8"), &resp.body))?;
    quick_xml::de::from_str::<T>(text)
        .map_err(|e| ApiError::parse(format!("bad {what} XML: {e}"), &resp.body))
}

/// Parses a `ListInvalidations` answer.
pub fn parse_list(resp: &HttpResponse) -> Result<InvalidationList, ApiError> {
    let l: InvalidationList = answer(resp, "ListInvalidations")?;
    if l.is_truncated.is_none() && l.quantity.is_none() {
        return Err(ApiError::parse(
            "ListInvalidations answer without IsTruncated or Quantity",
            &resp.body,
        ));
    }
    Ok(l)
}

/// Parses a `GetInvalidation` answer.
pub fn parse_get(resp: &HttpResponse) -> Result<Invalidation, ApiError> {
    let inv: Invalidation = answer(resp, "GetInvalidation")?;
    if inv.id.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::parse(
            "GetInvalidation answer without Id",
            &resp.body,
        ));
    }
    Ok(inv)
}

/// Unix seconds of an ISO 8601 timestamp.
pub fn parse_time(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.timestamp())
}

/// Our status for CloudFront's. CloudFront has no failed state.
pub fn parse_status(s: Option<&str>) -> TaskStatus {
    match s {
        Some("InProgress") => TaskStatus::Running,
        Some("Completed") => TaskStatus::Success,
        _ => TaskStatus::Unknown,
    }
}

/// A wildcard path (`/images/*`) counts against the 15-in-progress limit and
/// makes its invalidation a directory refresh.
pub fn is_wildcard(path: &str) -> bool {
    path.ends_with('*')
}

/// What GetInvalidation tells beyond the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detail {
    pub task_type: TaskType,
    /// `Paths.Quantity`.
    pub paths: u32,
    pub file_paths: u32,
    pub wildcard_paths: u32,
}

/// The paths of an invalidation: refresh_dir when any path ends in `*`.
/// The count is `Paths.Quantity` (the items when it is missing); file and
/// wildcard paths are counted from the items.
pub fn detail(inv: &Invalidation) -> Detail {
    let paths = inv.batch.as_ref().and_then(|b| b.paths.as_ref());
    let items: &[String] = paths
        .and_then(|p| p.items.as_ref())
        .map(|i| i.paths.as_slice())
        .unwrap_or(&[]);
    let wildcard = items.iter().filter(|p| is_wildcard(p)).count();
    let n = paths
        .and_then(|p| p.quantity)
        .and_then(|q| u32::try_from(q).ok())
        .unwrap_or(items.len() as u32);
    let wildcard_paths = u32::try_from(wildcard).unwrap_or(u32::MAX);
    Detail {
        task_type: if wildcard > 0 {
            TaskType::RefreshDir
        } else {
            TaskType::RefreshFile
        },
        paths: n,
        file_paths: n.saturating_sub(wildcard_paths),
        wildcard_paths,
    }
}

/// The listed paths of an invalidation (its `Paths.Items`).
pub fn paths(inv: &Invalidation) -> Vec<String> {
    inv.batch
        .as_ref()
        .and_then(|b| b.paths.as_ref())
        .and_then(|p| p.items.as_ref())
        .map(|i| i.paths.clone())
        .unwrap_or_default()
}

/// The task of an invalidation, `id` being `DISTRIBUTION/INVALIDATION`.
/// CloudFront reports no completion time and no progress.
pub fn to_task(id: String, created_at: i64, status: TaskStatus, d: &Detail) -> Task {
    Task {
        id,
        task_type: d.task_type,
        status,
        url_count: d.paths,
        urls: Vec::new(),
        domain: None,
        created_at,
        finished_at: None,
        progress: None,
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("testdata/responses/cloudfront")
                .join(name),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn resp(status: u16, body: Vec<u8>) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("x-amz-request-id".into(), "hdr-id".into())],
            body,
        }
    }

    #[test]
    fn list_fixture_parses() {
        let l = parse_list(&resp(200, fixture("list_invalidations.xml"))).expect("ok");
        assert_eq!(l.is_truncated, Some(true));
        assert_eq!(l.next_marker.as_deref(), Some("I1XRWFOAVAXSPB"));
        assert_eq!(l.max_items, Some(3));
        let s = &l.items.as_ref().expect("items").summaries;
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].id.as_deref(), Some("I2J0I21PCUYOIK"));
        assert_eq!(parse_status(s[0].status.as_deref()), TaskStatus::Running);
        assert_eq!(parse_status(s[1].status.as_deref()), TaskStatus::Success);
        assert_eq!(
            parse_time(s[0].create_time.as_deref().expect("time")),
            Some(1_708_313_014)
        );
        // An empty list: no Items at all, or an empty element.
        for body in [
            "<InvalidationList><IsTruncated>false</IsTruncated><Marker></Marker><MaxItems>100</MaxItems><Quantity>0</Quantity></InvalidationList>",
            "<InvalidationList><IsTruncated>false</IsTruncated><Marker/><MaxItems>100</MaxItems><Quantity>0</Quantity><Items/></InvalidationList>",
        ] {
            let l = parse_list(&resp(200, body.into())).expect(body);
            assert!(l.items.is_none_or(|i| i.summaries.is_empty()));
        }
    }

    #[test]
    fn get_fixture_parses_and_types_by_wildcard() {
        let inv = parse_get(&resp(200, fixture("get_invalidation.xml"))).expect("ok");
        assert_eq!(inv.status.as_deref(), Some("InProgress"));
        let d = detail(&inv);
        assert_eq!(d.task_type, TaskType::RefreshDir);
        assert_eq!(d.paths, 3);
        assert_eq!(d.wildcard_paths, 1);
        assert_eq!(d.file_paths, 2);
        let files = Invalidation {
            batch: Some(InvalidationBatch {
                paths: Some(Paths {
                    quantity: Some(2),
                    items: Some(PathItems {
                        paths: vec!["/a.js".into(), "/b*c.css".into()],
                    }),
                }),
                caller_reference: None,
            }),
            ..Invalidation::default()
        };
        assert_eq!(detail(&files).task_type, TaskType::RefreshFile);
        // Round trip through our own serializer (the simulator's).
        let back = parse_get(&resp(200, to_xml(&inv).into_bytes())).expect("round trip");
        assert_eq!(back, inv);
    }

    #[test]
    fn error_shapes_are_classified() {
        let cases = [
            (
                "error_throttling.xml",
                400,
                Outcome::Throttled,
                "Throttling",
            ),
            (
                "error_throttling.xml",
                503,
                Outcome::Throttled,
                "Throttling",
            ),
            (
                "error_request_limit.xml",
                429,
                Outcome::Throttled,
                "RequestLimitExceeded",
            ),
            (
                "error_access_denied.xml",
                403,
                Outcome::AuthError,
                "AccessDenied",
            ),
            (
                "error_invalid_client_token.xml",
                403,
                Outcome::AuthError,
                "InvalidClientTokenId",
            ),
            (
                "error_signature.xml",
                403,
                Outcome::AuthError,
                "SignatureDoesNotMatch",
            ),
            (
                "error_no_such_distribution.xml",
                404,
                Outcome::ClientError,
                "NoSuchDistribution",
            ),
            (
                "error_internal.xml",
                500,
                Outcome::ServerError,
                "InternalError",
            ),
        ];
        for (file, status, outcome, code) in cases {
            let e = parse_list(&resp(status, fixture(file))).expect_err(file);
            assert_eq!(e.outcome, outcome, "{file}");
            assert_eq!(e.code.as_deref(), Some(code), "{file}");
            assert!(e.request_id.is_some(), "{file}");
            assert!(!e.message.is_empty(), "{file}");
        }
        // The signature error's echoed canonical request (which would hold a
        // session token) is cut off.
        let e = parse_list(&resp(403, fixture("error_signature.xml"))).expect_err("sig");
        assert!(!e.message.contains("x-amz-security-token"), "{}", e.message);
        assert!(!e.message.contains("Canonical String"), "{}", e.message);
    }

    #[test]
    fn garbage_never_panics() {
        let bodies: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"\x00\x01not xml<<<".to_vec(),
            b"<html><body>502 Bad Gateway</body></html>".to_vec(),
            b"<InvalidationList><Items><InvalidationSummary>".to_vec(),
            b"{\"pad\":\"xxxx\"}".to_vec(),
            b"<Invalidation><InvalidationBatch><Paths><Quantity>-4</Quantity></Paths></InvalidationBatch></Invalidation>".to_vec(),
            vec![0xff; 4096],
        ];
        for b in &bodies {
            for status in [200, 400, 403, 429, 502, 503] {
                let _ = parse_list(&resp(status, b.clone()));
                if let Ok(inv) = parse_get(&resp(status, b.clone())) {
                    let _ = detail(&inv);
                }
            }
        }
        for b in ["<html>502</html>", "not xml", "{\"pad\":\"x\"}", ""] {
            let e = parse_list(&resp(200, b.into())).expect_err(b);
            assert_eq!(e.outcome, Outcome::ParseError, "{b}");
            let e = parse_get(&resp(200, b.into())).expect_err(b);
            assert_eq!(e.outcome, Outcome::ParseError, "{b}");
        }
        let e = parse_list(&resp(502, b"<html>502</html>".to_vec())).expect_err("html");
        assert_eq!(e.outcome, Outcome::ServerError);
        assert_eq!(e.request_id.as_deref(), Some("hdr-id"));
        let e = parse_list(&resp(429, b"slow down".to_vec())).expect_err("429");
        assert_eq!(e.outcome, Outcome::Throttled);
        let e = parse_list(&resp(403, b"<html>denied</html>".to_vec())).expect_err("403");
        assert_eq!(e.outcome, Outcome::AuthError);
    }
}
