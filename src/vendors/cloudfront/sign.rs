//! AWS Signature Version 4 as botocore's `SigV4Auth` computes it, for the
//! CloudFront API (service `cloudfront`, region `us-east-1`: CloudFront is
//! a global service signed in us-east-1).
//!
//! The canonical request, key chain and `Authorization` header are the
//! shared V4 core ([`crate::vendors::sigv4`], Volcengine's too); what is
//! AWS-specific lives here: the `X-Amz-Date` / `X-Amz-Security-Token`
//! headers, botocore's rule for which headers are signed (every header but
//! a short blacklist, `User-Agent` among them), its whitespace folding of
//! header values, and the host without a default port.
//!
//! Time is a parameter; nothing here reads a clock or does I/O. The request
//! verifier lives in the simulator (`sim::cloudfront`), not here.

use crate::vendors::sigv4::{self, AWS4};
use chrono::{DateTime, Utc};

pub use crate::vendors::sigv4::{sha256_hex, signed_host};

/// The credential-scope region of CloudFront.
pub const REGION: &str = "us-east-1";
/// The credential-scope service name.
pub const SERVICE: &str = "cloudfront";

/// Headers botocore never signs (`botocore.auth.SIGNED_HEADERS_BLACKLIST`).
pub const UNSIGNED_HEADERS: &[&str] = &[
    "authorization",
    "baggage",
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "traceparent",
    "tracestate",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "x-amzn-trace-id",
];

/// What to sign.
pub struct SignInput<'a> {
    pub method: &'a str,
    /// The Host header value as sent (`:80`/`:443` are dropped when signing).
    pub host: &'a str,
    pub path: &'a str,
    /// Query parameters, in any order, not yet encoded.
    pub query: &'a [(String, String)],
    /// Headers the request carries before signing (Host excluded).
    pub headers: &'a [(String, String)],
    /// The exact body bytes (empty for CloudFront's GETs).
    pub body: &'a [u8],
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub session_token: Option<&'a str>,
    pub region: &'a str,
    pub service: &'a str,
    pub time: DateTime<Utc>,
}

/// Every stage of one signature, and the headers to add. `Debug` shows only
/// the public parts (the stages hold derived keys, the headers the token).
#[derive(Clone, PartialEq, Eq)]
pub struct Signed {
    pub x_amz_date: String,
    pub payload_hash: String,
    pub stages: sigv4::Stages,
    /// Headers to add (X-Amz-Date, X-Amz-Security-Token, Authorization), in
    /// the order botocore adds them.
    pub add_headers: Vec<(String, String)>,
}

impl std::fmt::Debug for Signed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signed")
            .field("x_amz_date", &self.x_amz_date)
            .field("signed_headers", &self.stages.signed_headers)
            .finish_non_exhaustive()
    }
}

/// `YYYYMMDD'T'HHMMSS'Z'`.
pub fn amz_date(time: DateTime<Utc>) -> String {
    time.format("%Y%m%dT%H%M%SZ").to_string()
}

/// True for a header botocore signs.
pub fn is_signed_header(name: &str) -> bool {
    !UNSIGNED_HEADERS.contains(&name.to_ascii_lowercase().as_str())
}

/// botocore's `_header_value`: surrounding whitespace dropped, runs of
/// whitespace folded to one space.
pub fn fold_value(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// (lowercase name, folded value) pairs as signed: repeated names joined
/// with `,` in order, the way botocore's canonical_headers does.
pub fn canonical_pairs<'a>(
    headers: impl Iterator<Item = (&'a str, &'a str)>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in headers {
        let k = k.to_ascii_lowercase();
        let v = fold_value(v);
        match out.iter_mut().find(|(n, _)| *n == k) {
            Some((_, have)) => {
                have.push(',');
                have.push_str(&v);
            }
            None => out.push((k, v)),
        }
    }
    out
}

/// Signs a request as botocore does: adds `X-Amz-Date` and (with temporary
/// credentials) `X-Amz-Security-Token`, signs them with Host and every other
/// header not on botocore's blacklist, and returns every stage plus the
/// headers to add.
pub fn sign(input: &SignInput<'_>) -> Signed {
    let x_amz_date = amz_date(input.time);
    let payload_hash = sha256_hex(input.body);
    let mut added = vec![("X-Amz-Date".to_owned(), x_amz_date.clone())];
    // botocore tests the token for truth: an empty one is none.
    if let Some(t) = input.session_token.filter(|t| !t.is_empty()) {
        added.push(("X-Amz-Security-Token".to_owned(), t.to_owned()));
    }
    let host = signed_host(input.host).to_ascii_lowercase();
    let mut signed = canonical_pairs(
        input
            .headers
            .iter()
            .chain(added.iter())
            .filter(|(k, _)| is_signed_header(k) && !k.eq_ignore_ascii_case("host"))
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    signed.push(("host".to_owned(), host));
    let stages = sigv4::stages(
        &AWS4,
        &sigv4::Request {
            method: input.method,
            path: input.path,
            query: input.query,
            signed: &signed,
            body_hash: &payload_hash,
            x_date: &x_amz_date,
            access_key_id: input.access_key_id,
            secret: input.secret_access_key,
            region: input.region,
            service: input.service,
        },
    );
    added.push(("Authorization".to_owned(), stages.authorization.clone()));
    Signed {
        x_amz_date,
        payload_hash,
        stages,
        add_headers: added,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vendors::vectors::{self, pairs, text};

    #[test]
    fn every_botocore_vector_matches_stage_by_stage() {
        let mut kinds = Vec::new();
        for case in vectors::load("cloudfront", 10) {
            let (i, e) = (case.input(), case.expected());
            let name = text(i, "case_name");
            kinds.push(text(i, "kind").to_owned());
            let headers = pairs(&i["headers"]);
            let query = pairs(&i["query"]);
            let time = DateTime::parse_from_rfc3339(text(i, "timestamp"))
                .expect("timestamp")
                .with_timezone(&Utc);
            let (method, host, path) = (text(i, "method"), text(i, "host"), text(i, "path"));
            let (ak, sk) = (text(i, "access_key_id"), text(i, "secret_access_key"));
            let token = i["session_token"].as_str().map(str::to_owned);
            let (region, service) = (text(i, "region"), text(i, "service"));
            let got = sign(&SignInput {
                method,
                host,
                path,
                query: &query,
                headers: &headers,
                body: b"",
                access_key_id: ak,
                secret_access_key: sk,
                session_token: token.as_deref(),
                region,
                service,
                time,
            });
            let st = &got.stages;
            let stages: [(&str, &str); 15] = [
                ("x_amz_date", &got.x_amz_date),
                ("payload_hash", &got.payload_hash),
                ("canonical_query", &st.canonical_query),
                ("canonical_headers", &st.canonical_headers),
                ("signed_headers", &st.signed_headers),
                ("canonical_request", &st.canonical_request),
                ("hashed_canonical_request", &st.hashed_canonical_request),
                ("credential_scope", &st.credential_scope),
                ("string_to_sign", &st.string_to_sign),
                ("k_date", &st.k_date),
                ("k_region", &st.k_region),
                ("k_service", &st.k_service),
                ("k_signing", &st.k_signing),
                ("signature", &st.signature),
                ("authorization", &st.authorization),
            ];
            for (stage, value) in stages {
                assert_eq!(value, text(e, stage), "case {name}: stage {stage} differs");
            }
            // AWS's published values, where the case is a documented example.
            if let Some(doc) = e["documented"].as_object() {
                for (k, v) in doc {
                    assert_eq!(Some(v), e.get(k), "case {name}: documented {k}");
                }
            }
            // The headers we add are the ones botocore added, in its order.
            let sent = pairs(&e["headers_sent"]);
            let sdk_added: Vec<(String, String)> = sent
                .iter()
                .filter(|(k, _)| {
                    ["X-Amz-Date", "X-Amz-Security-Token", "Authorization"].contains(&k.as_str())
                })
                .cloned()
                .collect();
            assert_eq!(got.add_headers, sdk_added, "case {name}: headers_sent");
        }
        for kind in ["signer", "client", "doc"] {
            assert!(kinds.iter().any(|k| *k == kind), "no {kind} case");
        }
    }

    #[test]
    fn token_is_signed_and_debug_hides_secrets() {
        let time = DateTime::parse_from_rfc3339("2024-02-19T03:23:34Z")
            .expect("time")
            .with_timezone(&Utc);
        let got = sign(&SignInput {
            method: "GET",
            host: "127.0.0.1:443",
            path: "/2020-05-31/distribution/E1/invalidation",
            query: &[],
            headers: &[
                ("User-Agent".into(), "x".into()),
                ("X-Custom".into(), "  a   b ".into()),
            ],
            body: b"",
            access_key_id: "AK",
            secret_access_key: "the-secret",
            session_token: Some("the-token"),
            region: REGION,
            service: SERVICE,
            time,
        });
        assert_eq!(
            got.stages.signed_headers,
            "host;x-amz-date;x-amz-security-token;x-custom"
        );
        assert!(got.stages.canonical_headers.contains("host:127.0.0.1\n"));
        assert!(got.stages.canonical_headers.contains("x-custom:a b\n"));
        let dbg = format!("{got:?}");
        assert!(!dbg.contains("the-token") && !dbg.contains(&got.stages.k_signing));
        let none = sign(&SignInput {
            session_token: Some(""),
            headers: &[],
            host: "h",
            method: "GET",
            path: "/",
            query: &[],
            body: b"",
            access_key_id: "AK",
            secret_access_key: "the-secret",
            region: REGION,
            service: SERVICE,
            time,
        });
        assert_eq!(none.add_headers.len(), 2);
    }
}
