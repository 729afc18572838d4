//! The raw layer of the config: what the YAML says, before validation.
//!
//! Deserializing stops at the first error, which would report one problem
//! per run; [`deserialize_all`] instead records the error, removes the key it
//! names and tries again, so every bad key of a block is reported at once,
//! in user terms (no Rust type names).

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::Deserialize as DeriveDeserialize;
use serde_path_to_error::Segment;
use std::collections::BTreeMap;

/// Per-account tuning keys, also accepted under `defaults:`.
#[derive(Debug, Clone, Default, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTuning {
    pub lookback: Option<String>,
    pub min_refresh_interval: Option<String>,
    pub safety_fraction: Option<f64>,
    pub overlap: Option<String>,
    pub max_permit_wait: Option<String>,
    pub request_timeout: Option<String>,
    pub retries: Option<u32>,
    pub quota_interval: Option<String>,
    pub max_tasks: Option<usize>,
    pub scrape_wait: Option<String>,
}

/// The `task_details:` block (what the details store keeps).
#[derive(Debug, Clone, Default, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTaskDetails {
    pub max_failed: Option<usize>,
    pub max_recent: Option<usize>,
    pub max_urls_per_task: Option<usize>,
    pub keep_query: Option<bool>,
    pub urls: Option<bool>,
    pub stuck_after: Option<String>,
}

/// The tuning keys, read from [`RawTuning`] itself so the two can never
/// disagree.
pub fn tuning_keys() -> &'static [&'static str] {
    struct_fields::<RawTuning>()
}

#[derive(Debug, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTop {
    pub scrape_timeout: Option<String>,
    pub scrape_timeout_margin: Option<String>,
    pub max_response_bytes: Option<usize>,
    pub max_in_flight_per_endpoint: Option<usize>,
    pub state_interval: Option<String>,
    #[serde(default)]
    pub defaults: serde_yaml::Value,
    #[serde(default)]
    pub task_details: serde_yaml::Value,
    #[serde(default)]
    pub accounts: Vec<serde_yaml::Value>,
}

#[derive(Debug, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccount {
    pub name: String,
    pub vendor: String,
    pub credentials: RawCredentials,
    pub endpoint: Option<String>,
    #[serde(default)]
    pub options: serde_yaml::Value,
    pub task_types: Option<Vec<String>>,
    pub domain: Option<String>,
    pub rate_budget: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCredentials {
    pub id: Option<String>,
    pub id_file: Option<String>,
    pub secret: Option<String>,
    pub secret_file: Option<String>,
    pub session_token: Option<String>,
    pub session_token_file: Option<String>,
}

/// One problem in a block: the dotted path below the block, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawError {
    pub path: String,
    pub message: String,
}

/// Deserializes `value` as `T`, collecting every error: after each one the
/// offending key (or list item) is removed and deserializing starts again.
/// Returns what is left once every bad key is gone (`None` when the block
/// itself is unusable, e.g. a required key is missing), and the errors.
pub fn deserialize_all<T: DeserializeOwned>(
    mut value: serde_yaml::Value,
) -> (Option<T>, Vec<RawError>) {
    let mut errors = Vec::new();
    // Each round removes one key, so this ends; the cap is a safety net.
    for _ in 0..256 {
        match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(t) => return (Some(t), errors),
            Err(e) => {
                let message = e.inner().to_string();
                let mut segments: Vec<Segment> = e.path().iter().cloned().collect();
                // An unknown key is reported at its parent: name the key.
                if let Some(key) = between(&message, "unknown field `", "`") {
                    let named =
                        matches!(segments.last(), Some(Segment::Map { key: k }) if k == key);
                    if !named {
                        segments.push(Segment::Map {
                            key: key.to_owned(),
                        });
                    }
                }
                errors.push(RawError {
                    path: dotted(&segments),
                    message: humanize(&message),
                });
                if !remove(&mut value, &segments) {
                    return (None, errors);
                }
            }
        }
    }
    (None, errors)
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = &s[s.find(start)? + start.len()..];
    Some(&rest[..rest.find(end)?])
}

fn dotted(segments: &[Segment]) -> String {
    let mut out = String::new();
    for s in segments {
        match s {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Enum { variant } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(variant);
            }
            Segment::Unknown => out.push_str(".?"),
        }
    }
    out
}

/// Removes what `path` points at; false when there is nothing to remove
/// (the error is about the block itself, e.g. a missing key).
fn remove(value: &mut serde_yaml::Value, path: &[Segment]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut v = value;
    for s in parents {
        v = match (s, v) {
            (Segment::Map { key }, serde_yaml::Value::Mapping(m)) => {
                match m.get_mut(key.as_str()) {
                    Some(x) => x,
                    None => return false,
                }
            }
            (Segment::Seq { index }, serde_yaml::Value::Sequence(q)) => match q.get_mut(*index) {
                Some(x) => x,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, v) {
        (Segment::Map { key }, serde_yaml::Value::Mapping(m)) => m.remove(key.as_str()).is_some(),
        (Segment::Seq { index }, serde_yaml::Value::Sequence(q)) if *index < q.len() => {
            // Keep later indexes stable in messages: blank the item instead
            // of shifting, unless it is already blank.
            if q[*index].is_null() {
                q.remove(*index);
            } else {
                q[*index] = serde_yaml::Value::Null;
            }
            true
        }
        _ => false,
    }
}

/// serde's wording, in the user's terms: no Rust type names.
pub fn humanize(message: &str) -> String {
    let mut m = message.to_owned();
    for (from, to) in [
        ("invalid type: ", "got "),
        ("invalid value: ", "got "),
        ("a sequence", "a list"),
        ("got sequence", "got a list"),
        ("got map", "got a mapping"),
        ("expected a map", "expected a mapping"),
        ("expected u32", "expected a whole number"),
        ("expected u64", "expected a whole number"),
        ("expected usize", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("integer `", "number `"),
        ("floating point `", "number `"),
        ("unit value", "nothing (null)"),
        ("unknown field", "unknown key"),
    ] {
        m = m.replace(from, to);
    }
    // `expected struct RawAccount` and the like.
    while let Some(i) = m.find("struct Raw") {
        let end = m[i..]
            .find(|c: char| !(c.is_alphanumeric() || c == ' '))
            .map_or(m.len(), |e| i + e);
        m.replace_range(i..end, "a mapping");
    }
    m = m.replace("a a mapping", "a mapping");
    m
}

/// The field names serde knows for `T` (a struct), so lists of keys are
/// never kept by hand.
pub fn struct_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Spy(Option<&'static [&'static str]>);
    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("stop")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    impl<'de> Deserializer<'de> for &mut Spy {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0 = Some(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut spy = Spy(None);
    let _ = T::deserialize(&mut spy);
    spy.0.unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuning_keys_are_raw_tunings_fields() {
        assert_eq!(
            tuning_keys(),
            [
                "lookback",
                "min_refresh_interval",
                "safety_fraction",
                "overlap",
                "max_permit_wait",
                "request_timeout",
                "retries",
                "quota_interval",
                "max_tasks",
                "scrape_wait",
            ]
        );
    }

    #[test]
    fn every_bad_key_of_a_block_is_reported_at_once() {
        let v: serde_yaml::Value = serde_yaml::from_str(
            "{lookback: 7, retries: many, max_tasks: [1], bogus: 1, overlap: 2m}",
        )
        .unwrap();
        let (rest, errs) = deserialize_all::<RawTuning>(v);
        assert_eq!(
            rest.unwrap().overlap.as_deref(),
            Some("2m"),
            "good keys kept"
        );
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["lookback", "retries", "bogus", "max_tasks"],
            "{errs:?}"
        );
        for e in &errs {
            assert!(!e.message.contains("Raw"), "{e:?}");
            assert!(
                !e.message.contains("u32") && !e.message.contains("usize"),
                "{e:?}"
            );
        }
        assert!(errs[1].message.contains("whole number"), "{errs:?}");
    }

    #[test]
    fn nested_keys_and_type_names_read_in_user_terms() {
        let v: serde_yaml::Value =
            serde_yaml::from_str("{name: a, vendor: b, credentials: {id: [1], secret: {x: 1}}}")
                .unwrap();
        let (_, errs) = deserialize_all::<RawAccount>(v);
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["credentials.id", "credentials.secret"], "{errs:?}");
        let (none, top) = deserialize_all::<RawTop>(serde_yaml::from_str("[1]").unwrap());
        assert!(none.is_none());
        assert_eq!(top[0].message, "got a list, expected a mapping", "{top:?}");
    }
}
