//! CDNetworks request signing, as pure functions (time is a parameter).
//!
//! Two schemes reach the same `/ccm/*` APIs:
//! - **API key** (the content-management doc): `Date` is an RFC 1123 GMT
//!   time, `password = Base64(HMAC-SHA1(apiKey, Date))`, and the request
//!   carries HTTP Basic `username:password`. The message is the Date string
//!   only: no method, path or body is signed.
//! - **AK/SK** (`CNC-HMAC-SHA256`, as in `wangsu-sdk-python` `AkSkAuth`): a
//!   canonical request over method, path, query, the signed headers and the
//!   body hash, signed with HMAC-SHA256 under the secret key.
//!
//! Every intermediate stage is returned so the vector tests compare stage by
//! stage (testdata/signing/cdnetworks*/).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The `Date` header format of the doc's `date -u "+%a, %d %b %Y %H:%M:%S GMT"`.
pub fn http_date(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// The Basic-auth password for a `Date` header value exactly as sent:
/// `Base64(HMAC-SHA1(apiKey, date))`.
pub fn api_key_password(api_key: &str, date: &str) -> String {
    B64.encode(hmac_sha1(api_key.as_bytes(), date.as_bytes()))
}

/// Every stage of an API-key signature.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeySignature {
    /// The `Date` header value.
    pub date: String,
    /// The HMAC message (identical to `date`).
    pub string_to_sign: String,
    pub hmac_sha1_hex: String,
    /// Base64 of the raw HMAC: the Basic-auth password.
    pub password: String,
    /// `username:password`.
    pub basic_credentials: String,
    pub basic_token: String,
    /// The `Authorization` header value.
    pub authorization: String,
}

/// Never prints the derived password (it authenticates for as long as the
/// Date is accepted).
impl std::fmt::Debug for ApiKeySignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeySignature")
            .field("date", &self.date)
            .finish_non_exhaustive()
    }
}

/// Signs with the API-key scheme at `at`.
pub fn sign_api_key(username: &str, api_key: &str, at: DateTime<Utc>) -> ApiKeySignature {
    let date = http_date(at);
    let raw = hmac_sha1(api_key.as_bytes(), date.as_bytes());
    let password = B64.encode(&raw);
    let basic_credentials = format!("{username}:{password}");
    let basic_token = B64.encode(basic_credentials.as_bytes());
    ApiKeySignature {
        string_to_sign: date.clone(),
        date,
        hmac_sha1_hex: hex::encode(&raw),
        password,
        basic_credentials,
        authorization: format!("Basic {basic_token}"),
        basic_token,
    }
}

/// Every stage of an AK/SK signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AkSkSignature {
    pub body_sha256_hex: String,
    pub signed_headers: String,
    pub canonical_request: String,
    pub canonical_request_sha256_hex: String,
    pub string_to_sign: String,
    pub signature: String,
    /// The `Authorization` header value.
    pub authorization: String,
}

/// What an AK/SK signature covers.
#[derive(Debug, Clone, Copy)]
pub struct AkSkInput<'a> {
    pub access_key: &'a str,
    pub method: &'a str,
    /// Path and query, e.g. `/ccm/fetch/ItemIdQuery`.
    pub uri: &'a str,
    /// Request headers as sent (names in any case).
    pub headers: &'a [(&'a str, &'a str)],
    /// `AkSkConfig.signed_headers`; `None` = `content-type;host`.
    pub signed_headers: Option<&'a str>,
    /// `x-cnc-timestamp`, Unix seconds as sent.
    pub timestamp: &'a str,
    pub body: &'a [u8],
}

/// Signs with the AK/SK scheme (the SDK's `AkSkAuth.get_signature`).
pub fn sign_aksk(input: &AkSkInput<'_>, secret_key: &str) -> AkSkSignature {
    let mut names: Vec<String> = input
        .signed_headers
        .unwrap_or("content-type;host")
        .split(';')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    names.sort();
    names.dedup();
    let signed_headers = names.join(";");
    let (path, query) = match input.uri.split_once('?') {
        Some((p, q)) => (p, q),
        None => (input.uri, ""),
    };
    let query = if input.method.eq_ignore_ascii_case("POST") {
        ""
    } else {
        query
    };
    let mut canonical_headers = String::new();
    for name in &names {
        let value = input
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_lowercase())
            .unwrap_or_default();
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(&value);
        canonical_headers.push('\n');
    }
    let body_sha256_hex = hex::encode(Sha256::digest(input.body));
    let canonical_request = format!(
        "{}\n{path}\n{query}\n{canonical_headers}\n{signed_headers}\n{body_sha256_hex}",
        input.method.to_ascii_uppercase()
    );
    let canonical_request_sha256_hex = hex::encode(Sha256::digest(canonical_request.as_bytes()));
    let string_to_sign = format!(
        "CNC-HMAC-SHA256\n{}\n{canonical_request_sha256_hex}",
        input.timestamp
    );
    let signature = hex::encode(hmac_sha256(
        secret_key.as_bytes(),
        string_to_sign.as_bytes(),
    ));
    AkSkSignature {
        authorization: format!(
            "CNC-HMAC-SHA256 Credential={}, SignedHeaders={signed_headers}, Signature={signature}",
            input.access_key
        ),
        body_sha256_hex,
        signed_headers,
        canonical_request,
        canonical_request_sha256_hex,
        string_to_sign,
        signature,
    }
}

fn hmac_sha1(key: &[u8], msg: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length; the error arm is unreachable.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key) else {
        return Vec::new();
    };
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return Vec::new();
    };
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vendors::vectors;
    use chrono::TimeZone;
    use serde_json::Value;

    fn s<'a>(v: &'a Value, section: &str, key: &str) -> &'a str {
        v[section][key]
            .as_str()
            .unwrap_or_else(|| panic!("{section}.{key} missing"))
    }

    #[test]
    fn api_key_vectors_from_the_doc_pipeline() {
        for case in &vectors::load("cdnetworks", 6) {
            let (name, c) = (&case.name, &case.doc);
            let epoch = c["input"]["epoch_seconds"].as_i64().expect("epoch");
            let at = Utc.timestamp_opt(epoch, 0).single().expect("valid epoch");
            let got = sign_api_key(s(c, "input", "username"), s(c, "input", "api_key"), at);
            let stages = [
                ("date", &got.date),
                ("string_to_sign", &got.string_to_sign),
                ("hmac_sha1_hex", &got.hmac_sha1_hex),
                ("password", &got.password),
                ("basic_credentials", &got.basic_credentials),
                ("basic_token", &got.basic_token),
                ("authorization", &got.authorization),
            ];
            for (stage, value) in stages {
                assert_eq!(
                    value.as_str(),
                    s(c, "expected", stage),
                    "case {name}: stage {stage} differs"
                );
            }
            assert_eq!(
                format!("Date: {}", got.date),
                s(c, "expected", "date_header_line"),
                "case {name}: stage date_header_line differs"
            );
            assert_eq!(
                format!("Authorization: {}", got.authorization),
                s(c, "expected", "authorization_header_line"),
                "case {name}: stage authorization_header_line differs"
            );
        }
    }

    #[test]
    fn aksk_vectors_from_wangsu_sdk_python() {
        for case in &vectors::load("cdnetworks-aksk", 5) {
            let (name, c) = (&case.name, &case.doc);
            let headers: serde_json::Map<String, Value> =
                serde_json::from_str(s(c, "expected", "request_headers_json"))
                    .expect("request_headers_json is a JSON object");
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("authorization"))
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
                .collect();
            let input = AkSkInput {
                access_key: s(c, "input", "access_key"),
                method: s(c, "input", "method"),
                uri: s(c, "input", "uri"),
                headers: &headers,
                signed_headers: c["input"]["signed_headers_config"].as_str(),
                timestamp: s(c, "input", "timestamp"),
                body: s(c, "input", "body").as_bytes(),
            };
            let got = sign_aksk(&input, s(c, "input", "secret_key"));
            let stages = [
                ("body_sha256_hex", &got.body_sha256_hex),
                ("signed_headers", &got.signed_headers),
                ("canonical_request", &got.canonical_request),
                (
                    "canonical_request_sha256_hex",
                    &got.canonical_request_sha256_hex,
                ),
                ("string_to_sign", &got.string_to_sign),
                ("signature", &got.signature),
                ("authorization", &got.authorization),
            ];
            for (stage, value) in stages {
                assert_eq!(
                    value.as_str(),
                    s(c, "expected", stage),
                    "case {name}: stage {stage} differs"
                );
            }
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let sig = sign_api_key("u", "k", Utc.timestamp_opt(0, 0).single().expect("epoch"));
        let dbg = format!("{sig:?}");
        assert!(!dbg.contains(&sig.password) && !dbg.contains(&sig.basic_token));
    }
}
