//! The OpenFeature flagd testbed's rows as this project's data (`handler-lib/tests/flagd/`:
//! each suite's cases and its own flag set), and one rule for checking an answer against a row,
//! shared by the in-process suite (`flags`' Rust API) and the OFREP suite (the real sidecar).
//! Plain JSON in and out: no type of `flags` crosses this module.

use std::path::PathBuf;

use serde_json::{Map, Value};

/// The testbed's two suites: (cases file, flags file).
pub const SUITES: [(&str, &str); 2] = [
    ("evaluator-cases.json", "evaluator-flags.json"),
    ("provider-cases.json", "provider-flags.json"),
];

/// Which bucketing a row runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    /// flagd's v3 (CBOR) bucketing, the default.
    V3,
    /// flagd's v2 (string) bucketing.
    V2,
}

/// What a flag answered, in OpenFeature's terms, with the caller's default already applied.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Answer {
    /// The value the caller gets.
    pub value: Value,
    /// The variant's name, if any.
    pub variant: Option<String>,
    /// OpenFeature's reason (`STATIC`, `TARGETING_MATCH`, …, `ERROR`).
    pub reason: String,
    /// The error code, if any.
    pub error_code: Option<String>,
    /// The flag's metadata.
    pub metadata: Map<String, Value>,
}

/// The directory of the testbed's data.
pub fn dir() -> PathBuf {
    crate::workspace().join("handler-lib/tests/flagd")
}

/// Reads a JSON file of the testbed's data.
pub fn read(name: &str) -> Value {
    let path = dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A suite's rows.
pub fn cases(cases_file: &str) -> Vec<Value> {
    match read(cases_file).get_mut("cases").map(Value::take) {
        Some(Value::Array(cases)) => cases,
        _ => panic!("{cases_file}: no `cases` array"),
    }
}

/// The bucketings a row runs with: `@fractional-v1` rows none (a bucketing no evaluator uses
/// any more), `@fractional-v2` rows v2, `@fractional-v3` and other fractional rows v3, and rows
/// that no bucketing decides both.
pub fn runs(case: &Value) -> &'static [Run] {
    let tags: Vec<&str> = case["tags"]
        .as_array()
        .map(|t| t.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    match case["fractional"].as_str() {
        Some("v1") => &[],
        Some("v2") => &[Run::V2],
        Some("v3") => &[Run::V3],
        _ if tags.contains(&"fractional") => &[Run::V3],
        _ => &[Run::V3, Run::V2],
    }
}

/// The row's context (an object; empty when it has none).
pub fn context(case: &Value) -> Map<String, Value> {
    case["context"].as_object().cloned().unwrap_or_default()
}

/// The row's flag key, the type it asks for (OpenFeature's name) and the caller's default.
pub fn asked(case: &Value) -> (&str, &str, &Value) {
    let flag = case["flag"].as_str().expect("a row names its flag");
    let kind = case["type"].as_str().expect("a row names its type");
    (flag, kind, &case["default"])
}

/// Numbers compare by value (the cases write `0.0` where a variant holds `0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Checks `got` against the row's expectations; `Err` says every way it differs.
pub fn check(case: &Value, got: &Answer) -> Result<(), String> {
    let expect = &case["expect"];
    let mut wrong = Vec::new();
    if let Some(expected) = expect.get("value")
        && !same(&got.value, expected)
    {
        wrong.push(format!("value {} (expected {expected})", got.value));
    }
    if let Some(expected) = expect.get("variant")
        && got.variant.as_deref() != expected.as_str()
    {
        wrong.push(format!("variant {:?} (expected {expected})", got.variant));
    }
    if let Some(expected) = expect.get("reason")
        && Some(got.reason.as_str()) != expected.as_str()
    {
        wrong.push(format!("reason {} (expected {expected})", got.reason));
    }
    if let Some(expected) = expect.get("error_code")
        && got.error_code.as_deref() != expected.as_str()
    {
        wrong.push(format!("error {:?} (expected {expected})", got.error_code));
    }
    if let Some(Value::Object(expected)) = expect.get("metadata") {
        for (key, value) in expected {
            if !got.metadata.get(key).is_some_and(|v| same(v, value)) {
                wrong.push(format!(
                    "metadata {key} = {:?} (expected {value})",
                    got.metadata.get(key)
                ));
            }
        }
    }
    if expect.get("metadata_empty") == Some(&Value::Bool(true)) && !got.metadata.is_empty() {
        wrong.push(format!("metadata {:?} (expected none)", got.metadata));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            case["name"].as_str().unwrap_or("?"),
            wrong.join("; ")
        ))
    }
}

/// Splits a flag document into self-contained documents of at most `max_bytes` each (SSM's
/// Advanced tier holds 8 KB): flags in key order, each document with the `$evaluators` its flags
/// use (through one another too) and the flag set's `metadata`.
pub fn split(document: &Value, max_bytes: usize) -> Vec<Value> {
    let flags = document["flags"].as_object().cloned().unwrap_or_default();
    let evaluators = document["$evaluators"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let metadata = document.get("metadata").cloned();
    let build = |flags: &Map<String, Value>| {
        let mut out = Map::new();
        out.insert("flags".into(), Value::Object(flags.clone()));
        let used = used_evaluators(&Value::Object(flags.clone()), &evaluators);
        if !used.is_empty() {
            out.insert("$evaluators".into(), Value::Object(used));
        }
        if let Some(metadata) = &metadata {
            out.insert("metadata".into(), metadata.clone());
        }
        Value::Object(out)
    };
    let mut documents = Vec::new();
    let mut current = Map::new();
    for (key, flag) in flags {
        let mut candidate = current.clone();
        candidate.insert(key.clone(), flag.clone());
        if !current.is_empty() && build(&candidate).to_string().len() > max_bytes {
            documents.push(build(&current));
            current = Map::from_iter([(key, flag)]);
        } else {
            current = candidate;
        }
    }
    if !current.is_empty() {
        documents.push(build(&current));
    }
    for document in &documents {
        let size = document.to_string().len();
        assert!(size <= max_bytes, "one flag alone is {size} bytes");
    }
    documents
}

/// The evaluators `value` refers to with `$ref`, and those they refer to.
fn used_evaluators(value: &Value, evaluators: &Map<String, Value>) -> Map<String, Value> {
    let mut used = Map::new();
    let mut pending = vec![value.clone()];
    while let Some(value) = pending.pop() {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(name)) = map.get("$ref")
                    && !used.contains_key(name)
                    && let Some(evaluator) = evaluators.get(name)
                {
                    used.insert(name.clone(), evaluator.clone());
                    pending.push(evaluator.clone());
                }
                pending.extend(map.into_iter().map(|(_, v)| v));
            }
            Value::Array(items) => pending.extend(items),
            _ => {}
        }
    }
    used
}
