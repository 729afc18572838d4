//! Tencent Cloud API 3.0 request signing (TC3-HMAC-SHA256), as a pure function.
//!
//! Exactly what `tencentcloud-sdk-python-common` computes
//! (`AbstractClient._get_tc3_signature`, `Sign.sign_tc3`): the canonical
//! request signs only `content-type` and `host` (the `X-TC-*` headers,
//! including `X-TC-Token`, are sent unsigned), the canonical query of a POST
//! is empty, the payload hash is that of the exact body bytes (or of the
//! literal `UNSIGNED-PAYLOAD` when `X-TC-Content-SHA256: UNSIGNED-PAYLOAD` is
//! sent), the credential scope is `<UTC date of X-TC-Timestamp>/<service>/
//! tc3_request`, and the key chain starts from `"TC3" + SecretKey`.
//!
//! Time is a parameter; nothing here reads a clock or does I/O. Every
//! intermediate stage is returned so the vector tests (from the official
//! Python SDK and the documentation's worked example) name the stage that
//! differs. The simulator verifies requests by calling [`sign`] again with
//! what it received (`sim::tencent`).

use crate::vendors::volcengine::sign::sha256_hex;
use chrono::DateTime;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The only algorithm.
pub const ALGORITHM: &str = "TC3-HMAC-SHA256";
/// The credential-scope service name of Tencent Cloud CDN.
pub const SERVICE: &str = "cdn";
/// The payload marker that skips hashing the body.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// The Content-Type the SDK sends with POST JSON.
pub const CONTENT_TYPE: &str = "application/json";

/// What to sign.
#[derive(Clone, Copy)]
pub struct SignInput<'a> {
    pub method: &'a str,
    /// The Host header value as sent.
    pub host: &'a str,
    /// `/` for API 3.0.
    pub path: &'a str,
    /// The Content-Type header value as sent.
    pub content_type: &'a str,
    /// The exact body bytes that will be sent.
    pub body: &'a [u8],
    pub secret_id: &'a str,
    pub secret_key: &'a str,
    pub service: &'a str,
    /// `X-TC-Timestamp`, Unix seconds.
    pub timestamp: i64,
    /// True when `X-TC-Content-SHA256: UNSIGNED-PAYLOAD` is sent.
    pub unsigned_payload: bool,
}

impl std::fmt::Debug for SignInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInput")
            .field("host", &self.host)
            .field("secret_id", &self.secret_id)
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}

/// Every stage of one signature, in computation order. Holds derived keys,
/// so `Debug` shows only the public parts.
#[derive(Clone, PartialEq, Eq)]
pub struct Signed {
    pub date: String,
    pub hashed_payload: String,
    pub canonical_headers: String,
    pub signed_headers: String,
    pub canonical_request: String,
    pub hashed_canonical_request: String,
    pub credential_scope: String,
    pub string_to_sign: String,
    pub secret_date: String,
    pub secret_service: String,
    pub secret_signing: String,
    pub signature: String,
    pub authorization: String,
}

impl std::fmt::Debug for Signed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signed")
            .field("credential_scope", &self.credential_scope)
            .field("signed_headers", &self.signed_headers)
            .finish_non_exhaustive()
    }
}

/// The UTC date of a timestamp, `YYYY-MM-DD` (never the local or Beijing date).
pub fn utc_date(timestamp: i64) -> String {
    DateTime::from_timestamp(timestamp, 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "1970-01-01".to_owned())
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Signs one request and returns every stage.
pub fn sign(input: &SignInput<'_>) -> Signed {
    let date = utc_date(input.timestamp);
    let hashed_payload = if input.unsigned_payload {
        sha256_hex(UNSIGNED_PAYLOAD.as_bytes())
    } else {
        sha256_hex(input.body)
    };
    let canonical_headers = format!("content-type:{}\nhost:{}\n", input.content_type, input.host);
    let signed_headers = "content-type;host".to_owned();
    let path = if input.path.is_empty() {
        "/"
    } else {
        input.path
    };
    // The canonical query of a POST is always empty.
    let canonical_request = format!(
        "{}\n{path}\n\n{canonical_headers}\n{signed_headers}\n{hashed_payload}",
        input.method
    );
    let hashed_canonical_request = sha256_hex(canonical_request.as_bytes());
    let credential_scope = format!("{date}/{}/tc3_request", input.service);
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{credential_scope}\n{hashed_canonical_request}",
        input.timestamp
    );
    let secret_date = hmac(
        format!("TC3{}", input.secret_key).as_bytes(),
        date.as_bytes(),
    );
    let secret_service = hmac(&secret_date, input.service.as_bytes());
    let secret_signing = hmac(&secret_service, b"tc3_request");
    let signature = hex::encode(hmac(&secret_signing, string_to_sign.as_bytes()));
    let authorization = format!(
        "{ALGORITHM} Credential={}/{credential_scope}, SignedHeaders={signed_headers}, Signature={signature}",
        input.secret_id
    );
    Signed {
        date,
        hashed_payload,
        canonical_headers,
        signed_headers,
        canonical_request,
        hashed_canonical_request,
        credential_scope,
        string_to_sign,
        secret_date: hex::encode(secret_date),
        secret_service: hex::encode(secret_service),
        secret_signing: hex::encode(secret_signing),
        signature,
        authorization,
    }
}

/// The common parameters of one call, sent as headers.
#[derive(Debug, Clone, Copy)]
pub struct Common<'a> {
    pub action: &'a str,
    pub version: &'a str,
    /// `X-TC-Region`, when the account sets one (CDN ignores it).
    pub region: Option<&'a str>,
    /// `X-TC-Token`, for temporary credentials.
    pub token: Option<&'a str>,
}

/// The headers the client sends besides Host, in the SDK's order:
/// Content-Type, X-TC-Action, X-TC-Timestamp, X-TC-Version, X-TC-Region,
/// X-TC-Token, Authorization. Unsigned payloads are not used by the client.
pub fn request_headers(input: &SignInput<'_>, common: &Common<'_>) -> Vec<(String, String)> {
    let signed = sign(input);
    let mut h = vec![
        ("Content-Type".to_owned(), input.content_type.to_owned()),
        ("X-TC-Action".to_owned(), common.action.to_owned()),
        ("X-TC-Timestamp".to_owned(), input.timestamp.to_string()),
        ("X-TC-Version".to_owned(), common.version.to_owned()),
    ];
    if input.unsigned_payload {
        h.push((
            "X-TC-Content-SHA256".to_owned(),
            UNSIGNED_PAYLOAD.to_owned(),
        ));
    }
    if let Some(r) = common.region.filter(|r| !r.is_empty()) {
        h.push(("X-TC-Region".to_owned(), r.to_owned()));
    }
    // The SDK treats an empty token as none.
    if let Some(t) = common.token.filter(|t| !t.is_empty()) {
        h.push(("X-TC-Token".to_owned(), t.to_owned()));
    }
    h.push(("Authorization".to_owned(), signed.authorization));
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vendors::vectors::{self, text};

    #[test]
    fn every_vector_matches_stage_by_stage() {
        let mut from_doc = 0;
        for case in vectors::load("tencent", 12) {
            let (i, e) = (case.input(), case.expected());
            let name = text(i, "case_name");
            let body = text(i, "body");
            let (method, host, path, ct) = (
                text(i, "method"),
                text(i, "host"),
                text(i, "path"),
                text(i, "content_type"),
            );
            let (id, key) = (text(i, "secret_id"), text(i, "secret_key"));
            let scope = text(e, "credential_scope");
            let input = SignInput {
                method,
                host,
                path,
                content_type: ct,
                body: body.as_bytes(),
                secret_id: id,
                secret_key: key,
                service: scope.split('/').nth(1).expect("service"),
                timestamp: i["timestamp"].as_i64().expect("timestamp"),
                unsigned_payload: i["unsigned_payload"].as_bool().expect("flag"),
            };
            let got = sign(&input);
            let stages: [(&str, &str); 13] = [
                ("date", &got.date),
                ("hashed_payload", &got.hashed_payload),
                ("canonical_headers", &got.canonical_headers),
                ("signed_headers", &got.signed_headers),
                ("canonical_request", &got.canonical_request),
                ("hashed_canonical_request", &got.hashed_canonical_request),
                ("credential_scope", &got.credential_scope),
                ("string_to_sign", &got.string_to_sign),
                ("secret_date", &got.secret_date),
                ("secret_service", &got.secret_service),
                ("secret_signing", &got.secret_signing),
                ("signature", &got.signature),
                ("authorization", &got.authorization),
            ];
            for (stage, value) in stages {
                assert_eq!(value, text(e, stage), "case {name}: stage {stage} differs");
            }
            if text(i, "source") != "sdk" {
                from_doc += 1;
                continue;
            }
            // The headers we send are exactly the SDK's, for every name we
            // send (the SDK adds X-TC-TraceId, X-TC-RequestClient and
            // X-TC-Language, none of them signed).
            let sent: Vec<(String, String)> = e["headers_sent"]
                .as_array()
                .expect("headers_sent")
                .iter()
                .map(|p| {
                    (
                        p[0].as_str().expect("name").to_owned(),
                        p[1].as_str().expect("value").to_owned(),
                    )
                })
                .collect();
            let ours = request_headers(
                &input,
                &Common {
                    action: text(i, "action"),
                    version: text(i, "version"),
                    region: i["region"].as_str(),
                    token: i["token"].as_str(),
                },
            );
            let names: Vec<&str> = ours.iter().map(|(k, _)| k.as_str()).collect();
            let sdk: Vec<(String, String)> = sent
                .iter()
                .filter(|(k, _)| names.contains(&k.as_str()))
                .cloned()
                .collect();
            assert_eq!(ours, sdk, "case {name}: stage headers_sent");
            for (k, _) in &sent {
                assert!(
                    names.contains(&k.as_str())
                        || [
                            "Host",
                            "X-TC-TraceId",
                            "X-TC-RequestClient",
                            "X-TC-Language"
                        ]
                        .contains(&k.as_str()),
                    "case {name}: the SDK sends {k}, we do not"
                );
            }
            assert_eq!(text(e, "body_sent"), body, "case {name}: body_sent");
        }
        assert_eq!(from_doc, 1, "the documentation's worked example is a case");
    }

    #[test]
    fn the_scope_date_is_utc() {
        // 2019-02-26 00:44:25 in Beijing is still 2019-02-25 in UTC (the
        // documentation's own warning).
        assert_eq!(utc_date(1_551_113_065), "2019-02-25");
        assert_eq!(utc_date(1_551_139_199), "2019-02-25");
        assert_eq!(utc_date(1_551_139_200), "2019-02-26");
    }

    #[test]
    fn debug_shows_no_key_material() {
        let i = SignInput {
            method: "POST",
            host: "cdn.tencentcloudapi.com",
            path: "/",
            content_type: CONTENT_TYPE,
            body: b"{}",
            secret_id: "AKIDx",
            secret_key: "very-secret",
            service: SERVICE,
            timestamp: 1_700_000_000,
            unsigned_payload: false,
        };
        let got = sign(&i);
        let dbg = format!("{got:?} {i:?}");
        assert!(!dbg.contains("very-secret") && !dbg.contains(&got.secret_signing));
        assert!(!got.authorization.contains("very-secret"));
    }
}
