//! `diff`: two sources side by side (staging against prod, a file against a path): flags added,
//! removed and changed, field by field, secrets masked. Differences exit 1, as `diff` does.

use std::collections::BTreeSet;

use flags::wire::FlagDoc;
use serde::Serialize;

use crate::change::{self, FieldChange};
use crate::error::Outcome;
use crate::output;
use crate::sources::{Flags, Loaded};

#[derive(Debug, Serialize)]
struct Changed {
    flag: String,
    changes: Vec<FieldChange>,
}

#[derive(Debug, Serialize)]
struct Report {
    a: String,
    b: String,
    added: Vec<String>,
    removed: Vec<String>,
    changed: Vec<Changed>,
}

/// The value of a flag as compared: its wire value (so `{"a":1}` and `{ "a": 1 }` are equal),
/// or its raw text when invalid.
fn compared(loaded: &Loaded) -> String {
    definition_text(&loaded.entry, &loaded.raw)
}

/// A flag's definition as compared — by `diff`, and by `results` across a parameter's versions:
/// its wire value (so `{"a":1}` and `{ "a": 1 }` are equal); for a flagd flag its own fields,
/// the evaluators it uses and the flag set's metadata (another flag of its document is not
/// part of it); `raw` (the text as stored) when invalid.
pub fn definition_text(entry: &flags::FlagEntry, raw: &str) -> String {
    if let Ok(flags::FlagValue::Flagd(definition)) = entry.value() {
        if definition.is_powertools() {
            return powertools_fields(definition);
        }
        return flagd_fields(&definition.to_document(), entry.name());
    }
    let doc = FlagDoc::from_entry(entry);
    match (&doc.error, doc.value) {
        (None, serde_json::Value::String(text)) => text,
        (None, value) => value.to_string(),
        // A flag of a document: its own text, not the document's.
        (Some(_), _) => entry
            .invalid_raw()
            .filter(|own| !own.is_empty())
            .unwrap_or(raw)
            .to_owned(),
    }
}

/// A Powertools feature compared by its fields and the order of its rules (the first rule that
/// matches wins: the same rules in another order are another feature).
fn powertools_fields(definition: &flags::flagd::Definition) -> String {
    let feature = serde_json::from_str::<serde_json::Value>(definition.source())
        .ok()
        .and_then(|document| document.get(definition.key()).cloned())
        .unwrap_or_default();
    let order: Vec<&str> = definition.variants().map(|(name, _)| name).collect();
    serde_json::json!({"feature": feature, "rule_order": order}).to_string()
}

/// Compares `a` with `b`: what `b` adds, removes and changes.
/// A flagd flag compared field by field: its definition's fields (`state`, `variants`,
/// `defaultVariant`, `targeting`, `metadata`), and the shared `$evaluators` it uses and the
/// flag set's metadata (`$flagSetMetadata`) from the document it came from — wherever either
/// source keeps it (a document, or a parameter of its own).
fn flagd_fields(document: &serde_json::Value, name: &str) -> String {
    let mut fields = document["flags"][name]
        .as_object()
        .cloned()
        .unwrap_or_default();
    if let Some(evaluators) = document.get("$evaluators") {
        fields.insert("$evaluators".into(), evaluators.clone());
    }
    if let Some(metadata) = document.get("metadata") {
        fields.insert("$flagSetMetadata".into(), metadata.clone());
    }
    serde_json::Value::Object(fields).to_string()
}

pub fn diff(a: &Flags, b: &Flags, json: bool) -> Outcome {
    let names: BTreeSet<&String> = a.flags.keys().chain(b.flags.keys()).collect();
    let mut report = Report {
        a: a.spec.to_string(),
        b: b.spec.to_string(),
        added: Vec::new(),
        removed: Vec::new(),
        changed: Vec::new(),
    };
    for name in names {
        match (a.flags.get(name), b.flags.get(name)) {
            (None, Some(_)) => report.added.push(name.clone()),
            (Some(_), None) => report.removed.push(name.clone()),
            (Some(old), Some(new)) => {
                let secure = old.entry.is_secure() || new.entry.is_secure();
                let (old_value, new_value) = (compared(old), compared(new));
                let mut changes: Vec<FieldChange> =
                    change::compare(Some(&old_value), Some(&new_value), secure)
                        .into_iter()
                        .filter(FieldChange::changed)
                        .collect();
                if old.entry.is_secure() != new.entry.is_secure() {
                    changes.push(FieldChange {
                        field: "type".to_owned(),
                        old: Some(crate::param::type_name(old.kind).to_owned()),
                        new: Some(crate::param::type_name(new.kind).to_owned()),
                    });
                }
                if !changes.is_empty() {
                    report.changed.push(Changed {
                        flag: name.clone(),
                        changes,
                    });
                }
            }
            (None, None) => {}
        }
    }
    let differ =
        !(report.added.is_empty() && report.removed.is_empty() && report.changed.is_empty());
    if json {
        output::print_json(&report);
        return Ok(differ);
    }
    println!("a: {}\nb: {}", report.a, report.b);
    let mut table = output::table(["", "FLAG", "FIELD", "A", "B"]);
    for name in &report.added {
        table.add_row(["+", name, "", "(absent)", "added"]);
    }
    for name in &report.removed {
        table.add_row(["-", name, "", "", "(absent)"]);
    }
    for changed in &report.changed {
        for c in &changed.changes {
            table.add_row([
                "~",
                changed.flag.as_str(),
                c.field.as_str(),
                c.old.as_deref().unwrap_or("(absent)"),
                c.new.as_deref().unwrap_or("(absent)"),
            ]);
        }
    }
    if differ {
        println!("{table}");
    }
    println!(
        "{} added, {} removed, {} changed",
        report.added.len(),
        report.removed.len(),
        report.changed.len()
    );
    Ok(differ)
}
