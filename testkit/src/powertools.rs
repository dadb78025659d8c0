//! The reference side of the Powertools differential tests: `handler-lib/tests/
//! powertools_reference.py` run on the venv's published `aws-lambda-powertools` (3.37.0), and
//! what it answered, one [`Line`] per generated document.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// The answer Python records for a feature the document does not have.
pub const ABSENT: &str = "__ssm_flags_absent__";

/// One generated document and Powertools' answers on it.
#[derive(Debug, Deserialize)]
pub struct Line {
    /// The document, kept as written: rules apply in document order.
    pub document: Box<RawValue>,
    /// The features Powertools' schema validator rejects (each validated on its own).
    pub rejected: BTreeSet<String>,
    /// The evaluations.
    pub cases: Vec<Case>,
}

/// One evaluation: a feature, a context, and what `FeatureFlags.evaluate` returned.
#[derive(Debug, Deserialize)]
pub struct Case {
    /// The feature's name ([`ABSENT`]'s cases name one the document does not have).
    pub feature: String,
    /// Powertools' context.
    pub context: Map<String, Value>,
    /// The answer ([`ABSENT`] for a feature the document does not have).
    pub value: Value,
}

impl Line {
    /// The names of the document's features.
    pub fn names(&self) -> BTreeSet<String> {
        serde_json::from_str::<Map<String, Value>>(self.document.get())
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// What the reference generated and answered: its summary (`cases`, `per_action`, …) and the
/// documents.
#[derive(Debug)]
pub struct Reference {
    /// The script's summary line.
    pub summary: Value,
    /// One line per document.
    pub lines: Vec<Line>,
}

/// Runs the reference for `documents` documents generated from `seed`.
pub fn reference(seed: u64, documents: usize) -> Reference {
    let out = std::env::temp_dir().join(format!(
        "powertools-ref-{}-{seed}-{documents}.jsonl",
        std::process::id()
    ));
    let output = std::process::Command::new(crate::process::python())
        .arg(crate::workspace().join("handler-lib/tests/powertools_reference.py"))
        .args(["--seed", &seed.to_string()])
        .args(["--documents", &documents.to_string()])
        .arg("--out")
        .arg(&out)
        .output()
        .expect("the reference runs");
    assert!(
        output.status.success(),
        "powertools_reference.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = serde_json::from_slice(&output.stdout).expect("a JSON summary");
    let text = std::fs::read_to_string(&out).expect("the reference's answers");
    let _ = std::fs::remove_file(&out);
    let lines = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("a reference line"))
        .collect();
    Reference { summary, lines }
}
