//! Differential: the published `aws-lambda-powertools` 3.37.0 (pinned in `requirements-dev.txt`)
//! and `flags` read the same generated feature-flags documents and evaluate the same contexts,
//! and must agree on every answer and on which features are rejected.
//!
//! `tests/powertools_reference.py` generates seeded documents — every action, boolean and
//! non-boolean features, loose `boolean_type`s, missing and mistyped keys, lists, numbers, schedule
//! conditions in several time zones kept far from their boundaries, and invalid features of every
//! kind — and records what Powertools' validator rejects (feature by feature) and what
//! `FeatureFlags.evaluate` answers. Here each document is read as `flags` reads a `#powertools`
//! source (`FlagEntry::from_powertools_document`) and each case evaluated through the public API
//! (`Flag::variant_for` with the context as fields).
//!
//! Both sides resolve zone names from this host's zoneinfo (`/usr/share/zoneinfo`), as both do
//! in production.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use flags::{Context, FlagEntry, Snapshot, Status};
use serde_json::Value;
use testkit::powertools::ABSENT;

/// The generator's seed (`POWERTOOLS_DIFF_SEED` picks another, to explore).
fn seed() -> u64 {
    std::env::var("POWERTOOLS_DIFF_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_261_207)
}
/// Documents generated (about 42 cases each): `POWERTOOLS_DIFF_DOCUMENTS` lowers it for a quick
/// local run; `make test` runs the full count.
fn documents() -> usize {
    std::env::var("POWERTOOLS_DIFF_DOCUMENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300)
}

#[test]
fn flags_answers_as_powertools_on_every_generated_case() {
    let reference = testkit::powertools::reference(seed(), documents());
    let summary = reference.summary;
    let (mut cases, mut rejected, mut differences) = (0usize, 0usize, Vec::new());
    for (number, line) in reference.lines.iter().enumerate() {
        let entries =
            FlagEntry::from_powertools_document("reference", 1, false, line.document.get(), None)
                .expect("a Powertools document");
        let ours: BTreeSet<String> = entries
            .iter()
            .filter(|e| e.value().is_err())
            .map(|e| e.name().to_owned())
            .collect();
        rejected += ours.len();
        if ours != line.rejected {
            differences.push(format!(
                "document {number}: rejected {ours:?}, Powertools {:?}\n{}",
                line.rejected,
                line.document.get()
            ));
        }
        let snapshot = Arc::new(Snapshot::new(1, Status::Ok, entries));
        for case in &line.cases {
            cases += 1;
            let context = Context::new().with_fields(&case.context);
            let variant = snapshot.get(&case.feature).variant_for(&context);
            let ours = match (&variant.value, variant.error) {
                (Some(value), None) => value.as_ref().clone(),
                _ => Value::String(ABSENT.to_owned()),
            };
            if ours != case.value {
                let feature = serde_json::from_str::<Value>(line.document.get())
                    .ok()
                    .and_then(|d| d.get(&case.feature).cloned());
                differences.push(format!(
                    "document {number}, feature {:?}, context {}: flags {ours}, Powertools {}\n{}",
                    case.feature,
                    Value::Object(case.context.clone()),
                    case.value,
                    feature.unwrap_or_default()
                ));
            }
        }
    }
    let per_action: BTreeMap<String, u64> = summary["per_action"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    println!(
        "{cases} cases, {rejected} features rejected, {} differences; per action: {per_action:?}",
        differences.len()
    );
    assert!(
        differences.is_empty(),
        "{} differences; the first:\n{}",
        differences.len(),
        differences
            .iter()
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
    assert_eq!(summary["cases"].as_u64(), Some(cases as u64));
    if documents() >= 300 {
        assert!(cases >= 10_000, "{cases} cases");
        assert_eq!(per_action.len(), flags::flagd::powertools::ACTIONS.len());
        assert!(per_action.values().all(|&n| n >= 500), "{per_action:?}");
    }
}
