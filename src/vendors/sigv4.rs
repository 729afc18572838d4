//! The HMAC-SHA256 "V4" signing core that AWS SigV4 and Volcengine's V4
//! share: canonical request, string to sign, the date/region/service key
//! chain and the `Authorization` header. The two schemes differ only in the
//! algorithm name, the prefix of the first key and the scope terminator
//! ([`Scheme`]); which headers are signed and how they are added to the
//! request stay with each vendor's `sign.rs`.
//!
//! Pure: time is a parameter, nothing here reads a clock or does I/O. Every
//! stage is returned so vector tests can say which one differs.

use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

/// Bytes left as is in canonical query names and values (RFC 3986
/// unreserved: `A–Z a–z 0–9 - _ . ~`).
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// As [`QUERY`], with `/` also kept: the canonical URI.
const PATH: &AsciiSet = &QUERY.remove(b'/');

/// What distinguishes one V4 flavour from another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheme {
    /// First line of the string to sign and first word of `Authorization`.
    pub algorithm: &'static str,
    /// Prepended to the secret for the first key of the chain.
    pub key_prefix: &'static str,
    /// Last element of the credential scope (and of the key chain).
    pub terminator: &'static str,
}

/// AWS Signature Version 4.
pub const AWS4: Scheme = Scheme {
    algorithm: "AWS4-HMAC-SHA256",
    key_prefix: "AWS4",
    terminator: "aws4_request",
};

/// Volcengine's V4: no key prefix, scope ends in `request`.
pub const VOLCENGINE: Scheme = Scheme {
    algorithm: "HMAC-SHA256",
    key_prefix: "",
    terminator: "request",
};

/// Every stage after the signed headers are chosen, in computation order.
/// Holds derived keys, so `Debug` shows only the public parts.
#[derive(Clone, PartialEq, Eq)]
pub struct Stages {
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
}

impl std::fmt::Debug for Stages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stages")
            .field("signed_headers", &self.signed_headers)
            .field("credential_scope", &self.credential_scope)
            .finish_non_exhaustive()
    }
}

/// What the stages are computed from.
pub struct Request<'a> {
    pub method: &'a str,
    /// The path as sent (percent-encoded here, `/` kept).
    pub path: &'a str,
    /// Query parameters, in any order, not yet encoded.
    pub query: &'a [(String, String)],
    /// (lowercase name, value) pairs to sign, host included; any order.
    pub signed: &'a [(String, String)],
    /// Lowercase hex SHA-256 of the body (or the scheme's stand-in).
    pub body_hash: &'a str,
    /// `YYYYMMDD'T'HHMMSS'Z'`.
    pub x_date: &'a str,
    pub access_key_id: &'a str,
    pub secret: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// HMAC-SHA256.
pub fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Sorted, RFC 3986-encoded `name=value` pairs joined by `&`.
pub fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| {
            (
                utf8_percent_encode(k, QUERY).to_string(),
                utf8_percent_encode(v, QUERY).to_string(),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The path as canonicalized (`/` for an empty one).
pub fn canonical_path(path: &str) -> String {
    let path = if path.is_empty() { "/" } else { path };
    utf8_percent_encode(path, PATH).to_string()
}

/// The host as signed: the value sent, minus a default port.
pub fn signed_host(host: &str) -> &str {
    host.strip_suffix(":80")
        .or_else(|| host.strip_suffix(":443"))
        .unwrap_or(host)
}

/// The key chain: kDate, kRegion, kService, kSigning.
fn key_chain(
    scheme: &Scheme,
    secret: &str,
    date: &str,
    region: &str,
    service: &str,
) -> [Vec<u8>; 4] {
    let first = format!("{}{secret}", scheme.key_prefix);
    let k_date = hmac(first.as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    let k_signing = hmac(&k_service, scheme.terminator.as_bytes());
    [k_date, k_region, k_service, k_signing]
}

/// Computes every stage of one signature.
pub fn stages(scheme: &Scheme, r: &Request<'_>) -> Stages {
    let mut signed: Vec<(String, String)> = r.signed.to_vec();
    signed.sort();
    let canonical_query = canonical_query(r.query);
    let canonical_headers: String = signed.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = signed
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request = format!(
        "{}\n{}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{}",
        r.method,
        canonical_path(r.path),
        r.body_hash
    );
    let hashed_canonical_request = sha256_hex(canonical_request.as_bytes());
    let date = r.x_date.get(..8).unwrap_or(r.x_date);
    let credential_scope = format!("{date}/{}/{}/{}", r.region, r.service, scheme.terminator);
    let string_to_sign = format!(
        "{}\n{}\n{credential_scope}\n{hashed_canonical_request}",
        scheme.algorithm, r.x_date
    );
    let [k_date, k_region, k_service, k_signing] =
        key_chain(scheme, r.secret, date, r.region, r.service);
    let signature = hex::encode(hmac(&k_signing, string_to_sign.as_bytes()));
    let authorization = format!(
        "{} Credential={}/{credential_scope}, SignedHeaders={signed_headers}, Signature={signature}",
        scheme.algorithm, r.access_key_id
    );
    Stages {
        canonical_query,
        canonical_headers,
        signed_headers,
        canonical_request,
        hashed_canonical_request,
        credential_scope,
        string_to_sign,
        k_date: hex::encode(k_date),
        k_region: hex::encode(k_region),
        k_service: hex::encode(k_service),
        k_signing: hex::encode(k_signing),
        signature,
        authorization,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::sigv4::parse_authorization;

    #[test]
    fn schemes_differ_only_in_their_constants() {
        let q = vec![
            ("b".to_owned(), "x y".to_owned()),
            ("a".to_owned(), "1".to_owned()),
        ];
        let h = vec![("host".to_owned(), "h".to_owned())];
        let r = Request {
            method: "GET",
            path: "/p q",
            query: &q,
            signed: &h,
            body_hash: "00",
            x_date: "20240219T032334Z",
            access_key_id: "AK",
            secret: "SK",
            region: "r",
            service: "s",
        };
        let a = stages(&AWS4, &r);
        let v = stages(&VOLCENGINE, &r);
        assert_eq!(a.canonical_request, v.canonical_request);
        assert_eq!(a.canonical_query, "a=1&b=x%20y");
        assert!(a.canonical_request.starts_with("GET\n/p%20q\n"));
        assert_eq!(a.credential_scope, "20240219/r/s/aws4_request");
        assert_eq!(v.credential_scope, "20240219/r/s/request");
        assert_ne!(a.k_date, v.k_date);
        let pa = parse_authorization(&AWS4, &a.authorization).expect("aws");
        assert_eq!(pa.signature, a.signature);
        assert_eq!(pa.signed_headers, vec!["host"]);
        assert!(parse_authorization(&VOLCENGINE, &a.authorization).is_none());
        assert!(parse_authorization(&AWS4, &v.authorization).is_none());
        assert!(!format!("{a:?}").contains(&a.k_signing));
    }
}
