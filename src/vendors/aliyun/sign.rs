//! Alibaba Cloud request signing, as pure functions: every input (time and
//! nonce included) is a parameter, and every intermediate stage is returned
//! so the vectors in `testdata/signing/aliyun*/` can be compared stage by
//! stage. No clock, no randomness, no I/O.
//!
//! Two schemes:
//! - RPC signature v1 (HMAC-SHA1 over the sorted, percent-encoded
//!   parameters), what the classic SDK sends;
//! - ACS3-HMAC-SHA256, the default of the current `alibabacloud-cdn20180510`
//!   SDK (canonical request over query and signed headers).

use crate::secret::Secret;
use base64::Engine;
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

/// Everything but `A–Z a–z 0–9 - _ . ~` is encoded (RFC 3986 unreserved):
/// space is `%20`, `*` is `%2A`, `~` stays.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Aliyun's percent-encoding (the same in v1 and ACS3).
pub fn percent_encode(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

/// Form encoding as `DaraCore.compose_url` sends ACS3 queries: like
/// [`percent_encode`], but a space travels as `+` (it is still signed as `%20`).
pub fn form_encode(s: &str) -> String {
    percent_encode(s).replace("%20", "+")
}

/// The stages of an RPC v1 signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcV1Signed {
    /// Every signed parameter, sorted by encoded name.
    pub signed_params: Vec<(String, String)>,
    /// Encoded `name=value` pairs joined with `&`.
    pub canonicalized_query_string: String,
    /// `METHOD&%2F&` + the encoded canonicalized query string.
    pub string_to_sign: String,
    /// `AccessKeySecret + "&"` (redacted in `Debug`).
    pub hmac_key: Secret,
    /// Base64 HMAC-SHA1.
    pub signature: String,
    /// The query to send: the parameters in the order given, then `Signature`.
    pub signed_url_query: String,
}

/// Signs RPC v1 parameters. `params` are every parameter to send (common and
/// business, in the order they should appear on the URL), without
/// `Signature`.
pub fn sign_rpc_v1(method: &str, params: &[(String, String)], secret: &Secret) -> RpcV1Signed {
    let mut encoded: Vec<(String, String, &String, &String)> = params
        .iter()
        .map(|(k, v)| (percent_encode(k), percent_encode(v), k, v))
        .collect();
    encoded.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    let signed_params = encoded
        .iter()
        .map(|(_, _, k, v)| ((*k).clone(), (*v).clone()))
        .collect();
    let canonicalized_query_string = encoded
        .iter()
        .map(|(k, v, _, _)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let string_to_sign = format!(
        "{method}&{}&{}",
        percent_encode("/"),
        percent_encode(&canonicalized_query_string)
    );
    let hmac_key = Secret::new(format!("{}&", secret.expose()));
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(hmac_key.expose().as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let mut signed_url_query = params
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>();
    signed_url_query.push(format!("Signature={}", percent_encode(&signature)));
    RpcV1Signed {
        signed_params,
        canonicalized_query_string,
        string_to_sign,
        hmac_key,
        signature,
        signed_url_query: signed_url_query.join("&"),
    }
}

/// The stages of an ACS3-HMAC-SHA256 signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acs3Signed {
    /// Hex SHA-256 of the body.
    pub x_acs_content_sha256: String,
    pub canonical_query_string: String,
    /// `name:value\n` per signed header, sorted.
    pub canonical_headers: String,
    /// Signed header names, sorted, joined with `;`.
    pub signed_headers: String,
    pub canonical_request: String,
    pub hashed_canonical_request: String,
    /// `ACS3-HMAC-SHA256\n` + the hashed canonical request.
    pub string_to_sign: String,
    /// Hex HMAC-SHA256 keyed with the bare secret.
    pub signature: String,
    /// The `Authorization` header value.
    pub authorization: String,
}

/// The ACS3 algorithm name.
pub const ACS3: &str = "ACS3-HMAC-SHA256";

/// Hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Signs an ACS3 request. `headers` are every header to sign (names any
/// case), without `Authorization`; `query` the query parameters.
pub fn sign_acs3(
    method: &str,
    path: &str,
    query: &[(String, String)],
    headers: &[(String, String)],
    body: &[u8],
    access_key_id: &str,
    secret: &Secret,
) -> Acs3Signed {
    let x_acs_content_sha256 = sha256_hex(body);
    let mut q: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (percent_encode(k), percent_encode(v)))
        .collect();
    q.sort();
    let canonical_query_string = q
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut h: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    h.sort();
    h.dedup_by(|a, b| a.0 == b.0);
    let canonical_headers: String = h.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = h
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request = format!(
        "{method}\n{path}\n{canonical_query_string}\n{canonical_headers}\n{signed_headers}\n{x_acs_content_sha256}"
    );
    let hashed_canonical_request = sha256_hex(canonical_request.as_bytes());
    let string_to_sign = format!("{ACS3}\n{hashed_canonical_request}");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    let authorization = format!(
        "{ACS3} Credential={access_key_id},SignedHeaders={signed_headers},Signature={signature}"
    );
    Acs3Signed {
        x_acs_content_sha256,
        canonical_query_string,
        canonical_headers,
        signed_headers,
        canonical_request,
        hashed_canonical_request,
        string_to_sign,
        signature,
        authorization,
    }
}

/// The URL an ACS3 request is sent to: query in the order given, form-encoded.
pub fn acs3_url(base: &str, path: &str, query: &[(String, String)]) -> String {
    let mut url = format!("{base}{path}");
    if !query.is_empty() {
        url.push('?');
        url.push_str(
            &query
                .iter()
                .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
                .collect::<Vec<_>>()
                .join("&"),
        );
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vendors::vectors::{self, pairs, stage, text};
    use serde_json::Value;

    /// The parameters in the order the SDK put them on the URL. Signer cases
    /// follow `RpcRequest`'s order; for the published cases (a Python dict in
    /// the doc's own order) the names are taken from the expected URL and the
    /// values from the inputs, so `signed_params` is still checked
    /// independently.
    fn sdk_params(input: &Value, expected: &Value) -> Vec<(String, String)> {
        let business = pairs(&input["params"]);
        let token = input["security_token"].as_str();
        let value_of = |name: &str| -> String {
            match name {
                "AccessKeyId" => text(input, "access_key_id").into(),
                "Action" => text(input, "action").into(),
                "Format" => text(input, "format").into(),
                "Version" => text(input, "version").into(),
                "SignatureMethod" => "HMAC-SHA1".into(),
                "SignatureVersion" => "1.0".into(),
                "SignatureNonce" => text(input, "signature_nonce").into(),
                "Timestamp" | "TimeStamp" => text(input, "timestamp").into(),
                "SecurityToken" => token.expect("token").into(),
                other => business
                    .iter()
                    .find(|(k, _)| k == other)
                    .unwrap_or_else(|| panic!("no value for {other}"))
                    .1
                    .clone(),
            }
        };
        if text(input, "source").starts_with("vendor-published") {
            return text(expected, "signed_url_query")
                .split('&')
                .map(|kv| kv.split('=').next().unwrap())
                .filter(|k| *k != "Signature")
                .map(|k| (k.to_owned(), value_of(k)))
                .collect();
        }
        let mut p = business.clone();
        if token.is_some() {
            p.push(("SecurityToken".into(), value_of("SecurityToken")));
        }
        for k in ["Version", "Action", "Format"] {
            p.push((k.into(), value_of(k)));
        }
        if let Some(r) = input["region_id"].as_str() {
            if !business.iter().any(|(k, _)| k == "RegionId") {
                p.push(("RegionId".into(), r.into()));
            }
        }
        p.push(("Timestamp".into(), value_of("Timestamp")));
        p.push(("SignatureMethod".into(), "HMAC-SHA1".into()));
        p.push(("SignatureType".into(), String::new()));
        p.push(("SignatureVersion".into(), "1.0".into()));
        p.push(("SignatureNonce".into(), value_of("SignatureNonce")));
        p.push(("AccessKeyId".into(), value_of("AccessKeyId")));
        p
    }

    #[test]
    fn rpc_v1_vectors_match_stage_by_stage() {
        let all = vectors::load("aliyun", 9);
        let mut published = 0;
        for vector in &all {
            let (case, input, expected) = (vector.name.as_str(), vector.input(), vector.expected());
            let params = sdk_params(input, expected);
            let secret = Secret::new(text(input, "access_key_secret"));
            let got = sign_rpc_v1(text(input, "method"), &params, &secret);
            assert_eq!(
                got.signed_params,
                pairs(&expected["signed_params"]),
                "case {case}: stage signed_params differs"
            );
            stage(
                case,
                "canonicalized_query_string",
                &got.canonicalized_query_string,
                text(expected, "canonicalized_query_string"),
            );
            stage(
                case,
                "string_to_sign",
                &got.string_to_sign,
                text(expected, "string_to_sign"),
            );
            stage(
                case,
                "hmac_key",
                got.hmac_key.expose(),
                text(expected, "hmac_key"),
            );
            stage(
                case,
                "signature",
                &got.signature,
                text(expected, "signature"),
            );
            stage(
                case,
                "signed_url_query",
                &got.signed_url_query,
                text(expected, "signed_url_query"),
            );
            let url = format!(
                "{}://{}{}?{}",
                text(input, "scheme"),
                text(input, "host"),
                text(input, "path"),
                got.signed_url_query
            );
            stage(case, "url", &url, text(expected, "url"));
            if let Some(p) = input["published_signature"].as_str() {
                stage(case, "published_signature", &got.signature, p);
                published += 1;
            }
        }
        assert_eq!(published, 3, "three vendor-published examples");
        assert!(all
            .iter()
            .any(|c| c.expected()["signature"] == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="));
    }

    #[test]
    fn acs3_vectors_match_stage_by_stage() {
        let all = vectors::load("aliyun-acs3", 5);
        for vector in &all {
            let (case, input, expected) = (vector.name.as_str(), vector.input(), vector.expected());
            let query = pairs(&input["query"]);
            let headers = pairs(&input["headers"]);
            let secret = Secret::new(text(input, "access_key_secret"));
            let got = sign_acs3(
                text(input, "method"),
                text(input, "path"),
                &query,
                &headers,
                text(input, "body").as_bytes(),
                text(input, "access_key_id"),
                &secret,
            );
            for (name, g) in [
                ("x_acs_content_sha256", &got.x_acs_content_sha256),
                ("canonical_query_string", &got.canonical_query_string),
                ("canonical_headers", &got.canonical_headers),
                ("signed_headers", &got.signed_headers),
                ("canonical_request", &got.canonical_request),
                ("hashed_canonical_request", &got.hashed_canonical_request),
                ("string_to_sign", &got.string_to_sign),
                ("signature", &got.signature),
                ("authorization", &got.authorization),
            ] {
                stage(case, name, g, text(expected, name));
            }
            let mut sent = headers.clone();
            sent.push(("Authorization".into(), got.authorization.clone()));
            assert_eq!(
                sent,
                pairs(&expected["headers_sent"]),
                "case {case}: stage headers_sent differs"
            );
            let base = format!("{}://{}", text(input, "scheme"), text(input, "host"));
            stage(
                case,
                "url",
                &acs3_url(&base, text(input, "path"), &query),
                text(expected, "url"),
            );
            if let Some(p) = input["published_signature"].as_str() {
                stage(case, "published_signature", &got.signature, p);
            }
        }
    }

    #[test]
    fn hmac_key_never_prints() {
        let got = sign_rpc_v1("GET", &[], &Secret::new("very-secret"));
        assert!(!format!("{got:?}").contains("very-secret"));
    }
}
