//! Volcengine "V4" request signing (HMAC-SHA256), as a pure function.
//!
//! Like AWS SigV4 with three differences that matter: the key chain starts
//! from the raw secret (no `AWS4` prefix), ends with `request` (not
//! `aws4_request`), and the time header is `X-Date`. The official SDK signs
//! `Content-Type`, `Content-Md5`, `Host` and every `X-*` header it sends, and
//! hashes the exact body bytes (also sent as `X-Content-Sha256`).
//!
//! Time is a parameter; nothing here reads a clock or does I/O. Every
//! intermediate stage is returned, so the vector tests (from the official
//! Python SDK) can say which stage differs. The simulator verifies requests
//! with [`signature_for`], from the headers the client says it signed.

use super::super::sigv4::{self, VOLCENGINE};
use chrono::{DateTime, Utc};

pub use super::super::sigv4::{canonical_query, sha256_hex, signed_host};

/// The credential-scope region of MCDN (a global service).
pub const REGION: &str = "cn-north-1";
/// The credential-scope service name of MCDN.
pub const SERVICE: &str = "mcdn";

/// What to sign.
pub struct SignInput<'a> {
    pub method: &'a str,
    /// The Host header value as sent (`:80`/`:443` are dropped when signing).
    pub host: &'a str,
    pub path: &'a str,
    /// Query parameters, in any order.
    pub query: &'a [(String, String)],
    /// Headers the request carries before signing (Host excluded: it is
    /// [`SignInput::host`]).
    pub headers: &'a [(String, String)],
    /// The exact body bytes that will be sent.
    pub body: &'a [u8],
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub session_token: Option<&'a str>,
    pub region: &'a str,
    pub service: &'a str,
    pub time: DateTime<Utc>,
}

/// Every stage of one signature, in computation order. Holds derived keys and
/// the session token, so `Debug` shows only the public parts.
#[derive(Clone, PartialEq, Eq)]
pub struct Signed {
    pub x_date: String,
    pub x_content_sha256: String,
    pub canonical_query: String,
    pub canonical_headers: String,
    pub signed_headers: String,
    pub canonical_request: String,
    pub hashed_canonical_request: String,
    pub credential_scope: String,
    pub string_to_sign: String,
    pub k_date: String,
    pub k_region: String,
    pub k_service: String,
    pub k_signing: String,
    pub signature: String,
    pub authorization: String,
    /// Headers to add to the request (X-Date, X-Content-Sha256,
    /// X-Security-Token, Authorization), in that order.
    pub add_headers: Vec<(String, String)>,
}

impl std::fmt::Debug for Signed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signed")
            .field("x_date", &self.x_date)
            .field("signed_headers", &self.signed_headers)
            .finish_non_exhaustive()
    }
}

/// True for headers the SDK signs: `Content-Type`, `Content-Md5`, `Host`
/// and every `X-*` header.
pub fn is_signed_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "content-type" || n == "content-md5" || n == "host" || n.starts_with("x-")
}

/// `YYYYMMDD'T'HHMMSS'Z'`.
pub fn x_date(time: DateTime<Utc>) -> String {
    time.format("%Y%m%dT%H%M%SZ").to_string()
}

/// The stages after the headers are chosen. `signed` are (lowercase name,
/// value) pairs, host included; order does not matter.
#[allow(clippy::too_many_arguments)]
pub fn stages(
    method: &str,
    path: &str,
    query: &[(String, String)],
    signed: &[(String, String)],
    body_hash: &str,
    x_date: &str,
    access_key_id: &str,
    secret: &str,
    region: &str,
    service: &str,
) -> Signed {
    let st = sigv4::stages(
        &VOLCENGINE,
        &sigv4::Request {
            method,
            path,
            query,
            signed,
            body_hash,
            x_date,
            access_key_id,
            secret,
            region,
            service,
        },
    );
    Signed {
        x_date: x_date.to_owned(),
        x_content_sha256: body_hash.to_owned(),
        canonical_query: st.canonical_query,
        canonical_headers: st.canonical_headers,
        signed_headers: st.signed_headers,
        canonical_request: st.canonical_request,
        hashed_canonical_request: st.hashed_canonical_request,
        credential_scope: st.credential_scope,
        string_to_sign: st.string_to_sign,
        k_date: st.k_date,
        k_region: st.k_region,
        k_service: st.k_service,
        k_signing: st.k_signing,
        signature: st.signature,
        authorization: st.authorization,
        add_headers: Vec::new(),
    }
}

/// Signs a request as the official SDK does: adds `X-Date`,
/// `X-Content-Sha256` and (with STS) `X-Security-Token`, signs them with
/// `Content-Type`, `Content-Md5`, `Host` and every other `X-*` header, and
/// returns every stage plus the headers to add.
pub fn sign(input: &SignInput<'_>) -> Signed {
    let x_date = x_date(input.time);
    let body_hash = sha256_hex(input.body);
    let mut added = vec![
        ("X-Date".to_owned(), x_date.clone()),
        ("X-Content-Sha256".to_owned(), body_hash.clone()),
    ];
    // The SDK treats an empty token as none.
    if let Some(t) = input.session_token.filter(|t| !t.is_empty()) {
        added.push(("X-Security-Token".to_owned(), t.to_owned()));
    }
    let mut signed: Vec<(String, String)> = input
        .headers
        .iter()
        .chain(added.iter())
        .filter(|(k, _)| is_signed_header(k) && !k.eq_ignore_ascii_case("host"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    signed.push(("host".to_owned(), signed_host(input.host).to_owned()));
    let mut out = stages(
        input.method,
        input.path,
        input.query,
        &signed,
        &body_hash,
        &x_date,
        input.access_key_id,
        input.secret_access_key,
        input.region,
        input.service,
    );
    added.push(("Authorization".to_owned(), out.authorization.clone()));
    out.add_headers = added;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::volcengine::{parse_authorization, signature_for};
    use crate::vendors::vectors::{self, pairs, text};

    #[test]
    fn every_sdk_vector_matches_stage_by_stage() {
        for case in vectors::load("volcengine", 10) {
            let (i, e) = (case.input(), case.expected());
            let name = text(i, "case_name");
            let headers: Vec<(String, String)> = pairs(&i["headers"])
                .into_iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
                .collect();
            let time = DateTime::parse_from_rfc3339(text(i, "timestamp"))
                .expect("timestamp")
                .with_timezone(&Utc);
            let body = text(i, "body");
            let query = pairs(&i["query"]);
            let host = text(i, "host");
            let (ak, sk) = (text(i, "access_key_id"), text(i, "secret_access_key"));
            let token = i["session_token"].as_str().map(str::to_owned);
            let (method, path, region, service) = (
                text(i, "method"),
                text(i, "path"),
                text(i, "region"),
                text(i, "service"),
            );
            let got = sign(&SignInput {
                method,
                host,
                path,
                query: &query,
                headers: &headers,
                body: body.as_bytes(),
                access_key_id: ak,
                secret_access_key: sk,
                session_token: token.as_deref(),
                region,
                service,
                time,
            });
            let stages: [(&str, &str); 15] = [
                ("x_date", &got.x_date),
                ("x_content_sha256", &got.x_content_sha256),
                ("canonical_query", &got.canonical_query),
                ("canonical_headers", &got.canonical_headers),
                ("signed_headers", &got.signed_headers),
                ("canonical_request", &got.canonical_request),
                ("hashed_canonical_request", &got.hashed_canonical_request),
                ("credential_scope", &got.credential_scope),
                ("string_to_sign", &got.string_to_sign),
                ("k_date", &got.k_date),
                ("k_region", &got.k_region),
                ("k_service", &got.k_service),
                ("k_signing", &got.k_signing),
                ("signature", &got.signature),
                ("authorization", &got.authorization),
            ];
            for (stage, value) in stages {
                assert_eq!(value, text(e, stage), "case {name}: stage {stage} differs");
            }
            assert_eq!(
                got.signature,
                text(e, "classic_volcengine_signature"),
                "case {name}: classic SDK signature"
            );
            // The headers we add are exactly those the SDK added, in order.
            let sent = pairs(&e["headers_sent"]);
            let sdk_added: Vec<(String, String)> = sent
                .iter()
                .filter(|(k, _)| {
                    [
                        "X-Date",
                        "X-Content-Sha256",
                        "X-Security-Token",
                        "Authorization",
                    ]
                    .contains(&k.as_str())
                })
                .cloned()
                .collect();
            assert_eq!(
                got.add_headers, sdk_added,
                "case {name}: stage headers_sent"
            );
            assert_eq!(text(e, "body_sent"), body, "case {name}: body_sent");

            // The verifier recomputes the same signature from what was sent.
            let auth = parse_authorization(&got.authorization).expect("parse own authorization");
            let lookup = |n: &str| {
                sent.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(n))
                    .map(|(_, v)| v.clone())
            };
            let verified = signature_for(method, path, &query, &auth, &lookup, body.as_bytes(), sk)
                .unwrap_or_else(|| panic!("case {name}: verifier found the request malformed"));
            assert_eq!(verified.signature, got.signature, "case {name}: verifier");
        }
    }

    #[test]
    fn verifier_rejects_a_changed_body_and_a_wrong_secret() {
        let q = vec![
            ("Action".to_owned(), "ListContentTasks".to_owned()),
            ("Version".to_owned(), "2022-03-01".to_owned()),
        ];
        let h = vec![("Content-Type".to_owned(), "application/json".to_owned())];
        let time = DateTime::parse_from_rfc3339("2024-02-19T03:23:34Z")
            .expect("time")
            .with_timezone(&Utc);
        let got = sign(&SignInput {
            method: "POST",
            host: "127.0.0.1:8080",
            path: "/",
            query: &q,
            headers: &h,
            body: b"{}",
            access_key_id: "AK",
            secret_access_key: "SK",
            session_token: None,
            region: REGION,
            service: SERVICE,
            time,
        });
        let mut sent = h.clone();
        sent.extend(got.add_headers.iter().cloned());
        sent.push(("Host".into(), "127.0.0.1:8080".into()));
        let lookup = |n: &str| {
            sent.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let auth = parse_authorization(&got.authorization).expect("parse");
        assert_eq!(auth.access_key_id, "AK");
        let ok = signature_for("POST", "/", &q, &auth, &lookup, b"{}", "SK").expect("ok");
        assert_eq!(ok.signature, auth.signature);
        let other = signature_for("POST", "/", &q, &auth, &lookup, b"{ }", "SK").expect("ok");
        assert_ne!(other.signature, auth.signature);
        let wrong = signature_for("POST", "/", &q, &auth, &lookup, b"{}", "SK2").expect("ok");
        assert_ne!(wrong.signature, auth.signature);
        assert!(!format!("{got:?}").contains(&got.k_signing));
    }

    #[test]
    fn default_ports_are_not_signed() {
        assert_eq!(signed_host("a.com:443"), "a.com");
        assert_eq!(signed_host("a.com:80"), "a.com");
        assert_eq!(signed_host("127.0.0.1:8443"), "127.0.0.1:8443");
    }
}
