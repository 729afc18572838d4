//! The signing vectors, loaded one way for every signer's tests.
//!
//! A vector set is `testdata/signing/<set>/<case>/case.json` holding `input`
//! (what the vendor's SDK, or the doc's worked example, was given) and
//! `expected` (every stage it produced), written by `tools/vectors/` from a
//! throwaway venv with the official SDK. The signers are compared with them
//! stage by stage, so a mismatch names the first stage that differs.

use serde_json::Value;
use std::path::Path;

/// One vector.
pub struct Case {
    /// The case's folder, for messages.
    pub name: String,
    /// The whole file: `input` and `expected`.
    pub doc: Value,
}

impl Case {
    pub fn input(&self) -> &Value {
        &self.doc["input"]
    }

    pub fn expected(&self) -> &Value {
        &self.doc["expected"]
    }
}

/// Every case of `set`, by folder name. Panics unless there are exactly
/// `count`: a lost or unreadable file must fail the test, not shrink it.
pub fn load(set: &str, count: usize) -> Vec<Case> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/signing")
        .join(set);
    let mut paths: Vec<_> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.expect("readable folder entry").path().join("case.json"))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    let cases: Vec<Case> = paths
        .iter()
        .map(|p| {
            let doc = serde_json::from_slice(&std::fs::read(p).expect("readable case.json"))
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            Case {
                name: p.parent().unwrap().display().to_string(),
                doc,
            }
        })
        .collect();
    assert_eq!(
        cases.len(),
        count,
        "expected {count} cases in {}",
        root.display()
    );
    cases
}

/// The string at `key`; panics naming the key.
pub fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string: {v}"))
}

/// A list of `[name, value]` pairs (headers, query, form).
pub fn pairs(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list of pairs: {v}"))
        .iter()
        .map(|p| (text_at(p, 0).to_owned(), text_at(p, 1).to_owned()))
        .collect()
}

fn text_at(v: &Value, i: usize) -> &str {
    v[i].as_str()
        .unwrap_or_else(|| panic!("item {i} is not a string: {v}"))
}

/// Asserts one stage, naming the case and the stage.
pub fn stage(case: &str, name: &str, got: &str, want: &str) {
    assert_eq!(
        got, want,
        "case {case}: stage {name} differs\n got: {got}\nwant: {want}"
    );
}
