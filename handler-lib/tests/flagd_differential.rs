//! Differential: OpenFeature's published Python flagd provider (in-process, from a file) and
//! `flags` evaluate the same flags for the same generated contexts, and must agree — value,
//! variant, reason, error code and metadata — on every one.
//!
//! `tests/flagd/differential.py` (run by the pinned providers `make flagd-ref` installs in
//! `.venv-flagd/`: 0.6.1 computes v3 buckets, 0.5.2 v2) generates 10,000 seeded contexts — typed,
//! missing and mistyped attributes, nested objects, unicode — and writes what the provider
//! answers for every flag of a document, one JSON line each, streamed here. Three documents: the
//! generated flags (`differential-flags.json`: every operator, one concern per flag) and both
//! testbed suites' flag sets.
//!
//! Where the two may differ by design, and only there, the comparison knows it:
//! - flagd's Python evaluator never answers `SPLIT`; `flags` does when a `fractional` chose the
//!   variant (OpenFeature's reason for a split) — compared as `TARGETING_MATCH`;
//! - on an error the Python SDK drops the flag's metadata: metadata is compared on successes;
//! - `quirk-float-bool-variant`: Python accepts a boolean variant asked for as a float (a
//!   `bool` is an `int` there) and answers 1.0; `flags` answers `TYPE_MISMATCH`, as flagd's
//!   other evaluators do. That flag's float answers are left out, nothing else of it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use flags::flagd::Bucketing;
use flags::{Context, FlagEntry, Snapshot, Status, ValueType};
use serde_json::{Map, Value};

/// Contexts per document (`FLAGD_DIFF_CONTEXTS` lowers it for a quick local run; `make test`
/// runs the full count).
fn contexts() -> usize {
    std::env::var("FLAGD_DIFF_CONTEXTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}
const SEED: u64 = 20261207;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/flagd")
}

fn python(version: &str) -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.venv-flagd")
        .join(version)
        .join("bin/python");
    assert!(
        python.exists(),
        "{} not found: run `make flagd-ref` (or `make test`), which installs the pinned Python flagd providers",
        python.display()
    );
    python
}

fn snapshot(flags_file: &Path, bucketing: Bucketing) -> Snapshot {
    let text = std::fs::read_to_string(flags_file).expect("flags file");
    let document: Value = serde_json::from_str(&text).expect("flags file is JSON");
    let source = flags_file.display().to_string();
    let entries = FlagEntry::from_flagd_document(&source, 1, false, &document, bucketing)
        .expect("a flag document");
    Snapshot::new(1, Status::Ok, entries)
}

/// Numbers by value (Python answers a float flag's integer variant as a float).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// How `flags` answers one line's question, and how that differs from the line's answer.
fn compare(snapshot: &Snapshot, fields: &Map<String, Value>, line: &Value) -> Option<String> {
    let flag = line["flag"].as_str()?;
    let wanted = line["type"].as_str()?;
    if flag == "quirk-float-bool-variant" && wanted == "float" {
        return None;
    }
    let context = Context::new().with_fields(fields);
    let as_type: ValueType = wanted.parse().expect("a known flag type");
    let got = snapshot.get(flag).resolve(&context, as_type);
    let value = got.value.as_deref().unwrap_or(&line["default"]);
    let reason = match got.reason.as_str() {
        "SPLIT" => "TARGETING_MATCH",
        other => other,
    };
    let mut wrong = Vec::new();
    if !same(value, &line["value"]) {
        wrong.push(format!("value {value} vs {}", line["value"]));
    }
    if got.name.as_deref() != line["variant"].as_str() {
        wrong.push(format!("variant {:?} vs {}", got.name, line["variant"]));
    }
    if Some(reason) != line["reason"].as_str() {
        wrong.push(format!("reason {reason} vs {}", line["reason"]));
    }
    if got.error.map(|e| e.as_str()) != line["error_code"].as_str() {
        wrong.push(format!("error {:?} vs {}", got.error, line["error_code"]));
    }
    if got.error.is_none() {
        let metadata = got.metadata.as_deref().cloned().unwrap_or_default();
        if !same(&Value::Object(metadata.clone()), &line["metadata"]) {
            wrong.push(format!("metadata {metadata:?} vs {}", line["metadata"]));
        }
    }
    (!wrong.is_empty()).then(|| {
        format!(
            "{flag} ({wanted}) for {}: {}",
            Value::Object(fields.clone()),
            wrong.join("; ")
        )
    })
}

/// Streams the provider's answers for one document and compares each; returns how many lines
/// were compared and the differences (the first few, and their count).
fn run(version: &str, bucketing: Bucketing, flags_file: &str, extra: bool) -> (usize, Vec<String>) {
    let flags_path = dir().join(flags_file);
    let snapshot = snapshot(&flags_path, bucketing);
    let mut command = Command::new(python(version));
    command
        .arg(dir().join("differential.py"))
        .arg("--flags")
        .arg(&flags_path)
        .args([
            "--contexts",
            &contexts().to_string(),
            "--seed",
            &SEED.to_string(),
        ])
        .args(["--out", "-", "--compact"])
        .stdout(Stdio::piped());
    if !extra {
        command.arg("--no-extra");
    }
    let mut child = command.spawn().expect("the reference provider starts");
    let stdout = child.stdout.take().expect("piped");
    let (mut compared, mut differences, mut count) = (0, Vec::new(), 0);
    let mut fields = Map::new();
    for line in BufReader::new(stdout).lines() {
        let line: Value = serde_json::from_str(&line.expect("a line")).expect("a JSON line");
        if let Some(Value::Object(context)) = line.get("context") {
            fields = context.clone();
        }
        compared += 1;
        if let Some(difference) = compare(&snapshot, &fields, &line) {
            count += 1;
            if differences.len() < 25 {
                differences.push(difference);
            }
        }
    }
    let status = child.wait().expect("the reference provider ends");
    assert!(status.success(), "differential.py failed: {status}");
    if count > differences.len() {
        differences.push(format!("… {count} differences in all"));
    }
    (compared, differences)
}

fn differential(version: &str, bucketing: Bucketing) {
    let mut failures = Vec::new();
    let mut total = 0;
    for (file, extra) in [
        ("differential-flags.json", true),
        ("evaluator-flags.json", false),
        ("provider-flags.json", false),
    ] {
        let (compared, differences) = run(version, bucketing, file, extra);
        assert!(
            compared >= contexts(),
            "{file}: only {compared} answers compared"
        );
        total += compared;
        failures.extend(differences.into_iter().map(|d| format!("[{file}] {d}")));
    }
    assert!(
        failures.is_empty(),
        "{} differences from the Python flagd provider ({version}) over {total} answers:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "{version}: {total} answers over {} contexts, 0 differences",
        contexts()
    );
}

#[test]
fn flags_agrees_with_the_python_flagd_provider_under_v3_bucketing() {
    differential("v3", Bucketing::V3);
}

#[test]
fn flags_agrees_with_the_python_flagd_provider_under_v2_bucketing() {
    differential("v2", Bucketing::V2);
}
