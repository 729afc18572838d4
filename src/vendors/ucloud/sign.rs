//! UCloud's request signature (`verify_ac` in the official SDKs), as a pure
//! function: parameters and keys in, every stage out. No clock, no nonce:
//! UCloud signs neither, so a signed request never expires.
//!
//! 1. every parameter except `Signature`, plus `PublicKey`;
//! 2. sorted by name in byte order (`TaskId.10` sorts before `TaskId.2`);
//! 3. `name + value` concatenated with no separator and no URL-encoding,
//!    then the private key appended;
//! 4. `Signature` = lowercase hex SHA-1 of those UTF-8 bytes (not an HMAC).
//!
//! Values are signed and sent as the same strings (booleans `true`/`false`,
//! arrays flattened to `Name.0`, `Name.1`, ...), so the encoding can never
//! drift between what is signed and what is sent.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha1::{Digest, Sha1};
use std::fmt;

/// Every stage of one signature. `string_to_sign` holds the private key, so
/// `Debug` redacts it; production code uses only `signature` and `form_body`.
#[derive(Clone, PartialEq, Eq)]
pub struct Signed {
    /// Names of the signed params after sorting, comma-joined.
    pub sorted_param_names: String,
    /// `name + value` over the sorted params.
    pub canonical_params: String,
    /// `canonical_params + private_key`.
    pub string_to_sign: String,
    /// Lowercase hex SHA-1 of `string_to_sign`.
    pub signature: String,
    /// `application/x-www-form-urlencoded` body: the params in the order
    /// given, then `PublicKey`, then `Signature` (Python `quote_plus` escaping,
    /// as the SDK's `requests` produces).
    pub form_body: String,
}

impl fmt::Debug for Signed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signed")
            .field("sorted_param_names", &self.sorted_param_names)
            .field("signature", &self.signature)
            .finish_non_exhaustive()
    }
}

/// Characters `quote_plus` leaves alone: ASCII alphanumerics and `_.-~`.
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~');

/// Form-encodes one name or value (space → `+`).
pub fn form_encode(s: &str) -> String {
    s.split(' ')
        .map(|part| utf8_percent_encode(part, FORM).to_string())
        .collect::<Vec<_>>()
        .join("+")
}

/// The string-to-sign's parameter part: `PublicKey` added, `Signature`
/// dropped, sorted by name in byte order.
fn sorted(params: &[(String, String)], public_key: &str) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "Signature" && k != "PublicKey")
        .cloned()
        .collect();
    all.push(("PublicKey".to_owned(), public_key.to_owned()));
    // `String`'s order is byte order, which is the SDK's (Python str) order
    // for the UTF-8 names UCloud uses.
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// Signs `params` (without `PublicKey`/`Signature`) for `public_key`.
pub fn sign(params: &[(String, String)], public_key: &str, private_key: &str) -> Signed {
    let all = sorted(params, public_key);
    let sorted_param_names = all
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let canonical_params: String = all.iter().map(|(k, v)| format!("{k}{v}")).collect();
    let string_to_sign = format!("{canonical_params}{private_key}");
    let signature = hex::encode(Sha1::digest(string_to_sign.as_bytes()));
    let form_body = params
        .iter()
        .filter(|(k, _)| k != "Signature" && k != "PublicKey")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain([("PublicKey", public_key), ("Signature", signature.as_str())])
        .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    Signed {
        sorted_param_names,
        canonical_params,
        string_to_sign,
        signature,
        form_body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::ucloud::{parse_form, verify};
    use crate::vendors::vectors::{self, pairs, text};

    /// One vector from testdata/signing/ucloud/<case>/case.json.
    struct Case {
        name: String,
        public_key: String,
        private_key: String,
        params: Vec<(String, String)>,
        published: Option<String>,
        expected: serde_json::Value,
    }

    fn load_cases() -> Vec<Case> {
        vectors::load("ucloud", 10)
            .into_iter()
            .map(|c| {
                let input = c.input();
                Case {
                    name: text(input, "case_name").to_owned(),
                    public_key: text(input, "public_key").to_owned(),
                    private_key: text(input, "private_key").to_owned(),
                    params: pairs(&input["params"]),
                    published: input["published_signature"].as_str().map(str::to_owned),
                    expected: c.expected().clone(),
                }
            })
            .collect()
    }

    #[test]
    fn every_vector_matches_stage_by_stage() {
        let cases = load_cases();
        for c in &cases {
            let got = sign(&c.params, &c.public_key, &c.private_key);
            let utf8_hex = hex::encode(got.string_to_sign.as_bytes());
            for (stage, value) in [
                ("sorted_param_names", &got.sorted_param_names),
                ("canonical_params", &got.canonical_params),
                ("string_to_sign", &got.string_to_sign),
                ("string_to_sign_utf8_hex", &utf8_hex),
                ("signature", &got.signature),
                ("form_body", &got.form_body),
            ] {
                let want = c.expected[stage]
                    .as_str()
                    .unwrap_or_else(|| panic!("case {}: no expected {stage}", c.name));
                assert_eq!(value, want, "case {}: stage {stage} differs", c.name);
            }
            if let Some(p) = &c.published {
                assert_eq!(
                    &got.signature, p,
                    "case {}: vendor-published signature",
                    c.name
                );
            }
            assert!(verify(
                &parse_form(&got.form_body),
                &c.public_key,
                &c.private_key
            ));
        }
    }

    #[test]
    fn published_example_reproduces() {
        let params = [
            ("Action", "DescribeUHostInstance"),
            ("Region", "cn-bj2"),
            ("Limit", "10"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let s = sign(
            &params,
            "ucloudsomeone@example.com1296235120854146120",
            "46f09bb9fab4f12dfc160dae12273d5332b5debe",
        );
        assert_eq!(s.signature, "cba5cf5ec4d4233d206b1b54951e3787350a642f");
    }

    #[test]
    fn form_round_trips_and_verify_rejects_changes() {
        let params = [
            ("Action", "A"),
            ("ProjectId", "org 项目+&="),
            ("IsDcdn", "true"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let s = sign(&params, "pub", "priv");
        let back = parse_form(&s.form_body);
        assert_eq!(back[1], ("ProjectId".into(), "org 项目+&=".into()));
        assert!(verify(&back, "pub", "priv"));
        assert!(!verify(&back, "pub", "other"));
        let mut tampered = back.clone();
        tampered[2].1 = "True".into();
        assert!(!verify(&tampered, "pub", "priv"), "True is not true");
        assert!(!verify(&back[..3], "pub", "priv"), "no Signature");
    }

    #[test]
    fn debug_redacts_the_string_to_sign() {
        let s = sign(&[], "pub", "very-private");
        assert!(!format!("{s:?}").contains("very-private"));
    }
}
