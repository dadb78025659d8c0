//! Changing a flag: `set`, `kill` and `rollback` share one path. The new value is validated as
//! the extension parses it and refused when invalid; a change of kind (boolean → JSON, JSON →
//! text) is refused unless asked for; the old and new values are shown side by side (secrets
//! masked); the parameter keeps its type, KMS key and tier; the new version is printed.

use std::collections::{BTreeMap, BTreeSet};

use flags::{FlagValue, ParameterKind};
use serde::Serialize;
use serde_json::Value;

use crate::edit;
use crate::error::{CtlError, Outcome};
use crate::lint;
use crate::output::{self, HIDDEN};
use crate::param::{self, Stored};
use crate::sources::Loaded;

/// What a change is, for its messages: `set`, `kill`, `rollback`, `ramp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `set`.
    Set,
    /// `kill`.
    Kill,
    /// `rollback`.
    Rollback,
}

/// How to apply a change.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Validate and show, write nothing.
    pub dry_run: bool,
    /// Allow a change of kind.
    pub change_kind: bool,
    /// JSON output.
    pub json: bool,
}

/// One row of a side-by-side comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    /// The JSON field, or `value` for a whole value.
    pub field: String,
    /// The old text (`None`: absent).
    pub old: Option<String>,
    /// The new text (`None`: absent).
    pub new: Option<String>,
}

impl FieldChange {
    /// Whether the field changed.
    pub fn changed(&self) -> bool {
        self.old != self.new
    }
}

/// The fields of two raw values side by side: each top-level field of two JSON flags (in
/// [`edit::canonical`] form: keys sorted, numbers as written, so a 30-digit number shows as
/// stored), else the whole value. Secure values are compared but never shown.
pub fn compare(old: Option<&str>, new: Option<&str>, secure: bool) -> Vec<FieldChange> {
    // A key written twice reads as its last value, as every JSON reader here takes it.
    let object = |raw: Option<&str>| -> Option<BTreeMap<String, String>> {
        match raw {
            Some(text) if text.trim_start().starts_with('{') => {
                edit::fields(text).ok().map(|fields| {
                    fields
                        .into_iter()
                        .map(|field| {
                            let value = text
                                .get(field.value)
                                .map(edit::canonical)
                                .unwrap_or_default();
                            (field.key, value)
                        })
                        .collect()
                })
            }
            None => Some(BTreeMap::new()),
            _ => None,
        }
    };
    let mask = |text: Option<String>| text.map(|t| if secure { HIDDEN.to_owned() } else { t });
    let rows = match (object(old), object(new)) {
        (Some(a), Some(b)) if old.is_some() || new.is_some() => {
            let fields: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            fields
                .into_iter()
                .map(|field| FieldChange {
                    field: field.clone(),
                    old: a.get(field).cloned(),
                    new: b.get(field).cloned(),
                })
                .collect()
        }
        _ => vec![FieldChange {
            field: "value".to_owned(),
            old: old.map(str::to_owned),
            new: new.map(str::to_owned),
        }],
    };
    rows.into_iter()
        .map(|row| {
            let changed = row.changed();
            let (old, new) = (mask(row.old), mask(row.new));
            // Masked values still say whether they changed.
            let new = match (secure, changed) {
                (true, true) => new.map(|t| format!("{t} (changed)")),
                _ => new,
            };
            FieldChange {
                field: row.field,
                old,
                new,
            }
        })
        .collect()
}

/// Prints rows side by side, marking changed ones with `*`.
pub fn print_rows(rows: &[FieldChange]) {
    let mut table = output::table(["", "field", "old", "new"]);
    for row in rows {
        let marker = if row.changed() { "*" } else { "" };
        table.add_row([
            marker,
            row.field.as_str(),
            row.old.as_deref().unwrap_or("(absent)"),
            row.new.as_deref().unwrap_or("(absent)"),
        ]);
    }
    println!("{table}");
}

/// Parses `value` as the extension would for a parameter of `kind`; an invalid value is refused
/// with the problem (which never quotes a SecureString).
pub fn validate(name: &str, kind: ParameterKind, value: &str) -> Result<FlagValue, CtlError> {
    FlagValue::parse(kind, value).map_err(|problem| {
        CtlError::refused(format!(
            "the new value of {name} is invalid: {problem}; SSM is unchanged"
        ))
    })
}

/// Refuses a change of kind (boolean, JSON, list, text) unless `allowed`. An invalid old value
/// has no kind to keep.
pub fn check_kind(stored: &Stored, new: &FlagValue, allowed: bool) -> Result<(), CtlError> {
    let Ok(old) = stored.parsed() else {
        return Ok(());
    };
    let (from, to) = (output::value_kind(&old), output::value_kind(new));
    if from == to || allowed {
        return Ok(());
    }
    let base = stored.name.rsplit('/').next().unwrap_or(&stored.name);
    Err(CtlError::refused(format!(
        "{} is a {from} flag and the new value is a {to} value. Code already running reads the old shape and would read this one as its default: create a versioned flag instead ({base}-v2) and move handlers to it, or pass --change-kind if every reader is ready for the new shape. SSM is unchanged",
        stored.name
    )))
}

/// The JSON answer of a change.
#[derive(Debug, Serialize)]
struct Report<'a> {
    parameter: &'a str,
    action: &'static str,
    dry_run: bool,
    old_version: i64,
    new_version: Option<i64>,
    #[serde(rename = "type")]
    kind: &'static str,
    changes: Vec<FieldChange>,
    warnings: Vec<String>,
}

/// Validates and writes `new_value` over `stored`, showing the change; prints the new version
/// and how to undo it.
pub async fn apply(
    ssm: &aws_sdk_ssm::Client,
    stored: &Stored,
    new_value: &str,
    action: Action,
    options: Options,
) -> Outcome {
    let parsed = validate(&stored.name, stored.kind, new_value)?;
    check_kind(stored, &parsed, options.change_kind)?;
    let secure = stored.is_secure();
    let changes = compare(Some(&stored.value), Some(new_value), secure);
    let mut warnings = warnings_for(stored, new_value);
    let unchanged = stored.value == new_value;
    let new_version = if options.dry_run || unchanged {
        None
    } else {
        Some(param::overwrite(ssm, stored, new_value).await?)
    };
    // SSM has no conditional write: a version further on than the next means someone else
    // wrote in between, and this write replaced theirs.
    if let Some(version) = new_version
        && version != stored.meta.version + 1
    {
        warnings.push(format!(
            "someone else wrote {} between this read (version {}) and this write (version {version}): check `ssm-flags-ctl history`",
            stored.name, stored.meta.version
        ));
    }
    if options.json {
        output::print_json(&Report {
            parameter: &stored.name,
            action: match action {
                Action::Set => "set",
                Action::Kill => "kill",
                Action::Rollback => "rollback",
            },
            dry_run: options.dry_run,
            old_version: stored.meta.version,
            new_version,
            kind: param::type_name(stored.kind),
            changes,
            warnings,
        });
        return Ok(false);
    }
    println!(
        "{} ({}, version {})",
        stored.name,
        param::type_name(stored.kind),
        stored.meta.version
    );
    print_rows(&changes);
    for warning in &warnings {
        println!("warning: {warning}");
    }
    match new_version {
        _ if unchanged => println!("unchanged: the value is already this; nothing written"),
        None => println!("dry run: valid, nothing written"),
        Some(version) => {
            println!("written: version {version}");
            println!(
                "undo: ssm-flags-ctl rollback {} --to-version {}",
                stored.name, stored.meta.version
            );
        }
    }
    Ok(false)
}

/// Lint's warnings about a value about to be written (the write goes ahead).
fn warnings_for(stored: &Stored, value: &str) -> Vec<String> {
    let name = stored.name.rsplit('/').next().unwrap_or(&stored.name);
    let parameter = flags::Parameter {
        flag: name.to_owned(),
        name: stored.name.clone(),
        kind: stored.kind,
        value: value.to_owned(),
        version: 0,
    };
    let loaded = Loaded {
        entry: flags::FlagEntry::from_parameter(&parameter),
        parameter: stored.name.clone(),
        raw: value.to_owned(),
        kind: stored.kind,
        undecrypted: false,
        meta: Some(stored.meta.clone()),
        in_document: false,
    };
    lint::check("", name, &loaded)
        .into_iter()
        .map(|finding| finding.message)
        .collect()
}

/// The `kill` value of a flag: `false` for a boolean; for a JSON flag its text with only the
/// value of `enabled` replaced by `false` (appended when absent), every other byte kept.
/// `Ok(None)`: already off.
pub fn killed(stored: &Stored) -> Result<Option<String>, CtlError> {
    match stored.parsed() {
        Ok(FlagValue::Bool(false)) => Ok(None),
        Ok(FlagValue::Bool(true)) => Ok(Some("false".to_owned())),
        Ok(FlagValue::Json(flag)) => {
            if !flag.rules().enabled && flag.document().get("enabled") == Some(&Value::Bool(false))
            {
                return Ok(None);
            }
            edit::set_field(&stored.value, "enabled", "false")
                .map(Some)
                .map_err(|e| CtlError::refused(format!("{}: {e}", stored.name)))
        }
        Ok(other) => Err(CtlError::refused(format!(
            "{} is a {} value, not a toggle: there is nothing to switch off (use `set`)",
            stored.name,
            output::value_kind(&other)
        ))),
        Err(problem) => Err(CtlError::refused(format!(
            "{} is invalid ({problem}) and already reads as its default everywhere; fix it with `set` or `rollback`",
            stored.name
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::param::Meta;

    fn stored(value: &str) -> Stored {
        Stored {
            name: "/app/flags/checkout-flow".into(),
            value: value.into(),
            kind: ParameterKind::String,
            meta: Meta::default(),
        }
    }

    #[test]
    fn json_values_compare_field_by_field() {
        let rows = compare(
            Some(r#"{"enabled": true, "rollout_percentage": 5, "salt": "s"}"#),
            Some(r#"{"enabled": true, "rollout_percentage": 10, "salt": "s"}"#),
            false,
        );
        let changed: Vec<&str> = rows
            .iter()
            .filter(|r| r.changed())
            .map(|r| r.field.as_str())
            .collect();
        assert_eq!(changed, ["rollout_percentage"]);
        assert_eq!(rows.len(), 3);
        let row = rows
            .iter()
            .find(|r| r.field == "rollout_percentage")
            .expect("row");
        assert_eq!(
            (row.old.as_deref(), row.new.as_deref()),
            (Some("5"), Some("10"))
        );
    }

    #[test]
    fn the_table_shows_numbers_and_fields_as_written() {
        let old = "{\"id\": 123456789012345678901234567890,\n \"enabled\" : true, \"ids\": [ \"a\", \"b c\" ]}";
        let killed = killed(&stored(old)).expect("killable").expect("a change");
        let rows = compare(Some(old), Some(&killed), false);
        let row = |field: &str| {
            rows.iter()
                .find(|r| r.field == field)
                .map(|r| (r.old.as_deref(), r.new.as_deref(), r.changed()))
        };
        assert_eq!(
            row("id"),
            Some((
                Some("123456789012345678901234567890"),
                Some("123456789012345678901234567890"),
                false
            ))
        );
        assert_eq!(row("enabled"), Some((Some("true"), Some("false"), true)));
        assert_eq!(
            row("ids"),
            Some((Some(r#"["a","b c"]"#), Some(r#"["a","b c"]"#), false))
        );
        // Two numbers no f64 tells apart are still two values.
        let rows = compare(
            Some(r#"{"id": 123456789012345678901234567890}"#),
            Some(r#"{"id": 123456789012345678901234567891}"#),
            false,
        );
        assert!(rows[0].changed(), "{rows:?}");
        // Nested keys in another order, a string escaped otherwise: the same value.
        let rows = compare(
            Some(r#"{"rules": {"x": 1, "y": "caf\u00e9"}}"#),
            Some(r#"{"rules": {"y": "café", "x": 1}}"#),
            false,
        );
        assert!(!rows[0].changed(), "{rows:?}");
    }

    #[test]
    fn kill_keeps_every_byte_but_the_value_of_enabled() {
        let old = "{ \"zeta\":123456789012345678901234567890 ,\"en\\u0061bled\":\ttrue,\n\"name\":\"caf\\u00e9\"}";
        assert_eq!(
            killed(&stored(old)).ok().flatten().as_deref(),
            Some(
                "{ \"zeta\":123456789012345678901234567890 ,\"en\\u0061bled\":\tfalse,\n\"name\":\"caf\\u00e9\"}"
            )
        );
        // Without `enabled`: appended, nothing else moves.
        assert_eq!(
            killed(&stored(r#"{"rollout_percentage": 5,"salt": "s"}"#))
                .ok()
                .flatten()
                .as_deref(),
            Some(r#"{"rollout_percentage": 5,"salt": "s","enabled": false}"#)
        );
    }

    #[test]
    fn secure_values_are_masked_but_say_they_changed() {
        let rows = compare(
            Some(r#"{"api_key": "sk_1"}"#),
            Some(r#"{"api_key": "sk_2"}"#),
            true,
        );
        let text = format!("{rows:?}");
        assert!(!text.contains("sk_"), "{text}");
        assert!(rows[0].changed(), "{rows:?}");
        assert!(
            rows[0]
                .new
                .as_deref()
                .is_some_and(|n| n.ends_with("(changed)"))
        );
        let rows = compare(Some("a"), Some("b"), true);
        assert_eq!(rows[0].field, "value");
        assert!(!format!("{rows:?}").contains("\"a\""));
    }

    #[test]
    fn a_change_of_kind_is_refused_with_the_seed_advice() {
        let old = stored("true");
        let new = validate("x", ParameterKind::String, r#"{"enabled": true}"#).expect("valid");
        let error = check_kind(&old, &new, false)
            .expect_err("refused")
            .to_string();
        assert!(
            error.contains("boolean flag and the new value is a json value"),
            "{error}"
        );
        assert!(error.contains("checkout-flow-v2"), "{error}");
        assert!(check_kind(&old, &new, true).is_ok());
        // Broken values may be replaced by anything.
        assert!(check_kind(&stored("{oops"), &new, false).is_ok());
    }

    #[test]
    fn kill_switches_off_and_keeps_every_other_field() {
        let killed_json = killed(&stored(
            r#"{"enabled": true, "rollout_percentage": 50, "timeout_ms": 300, "salt": "s"}"#,
        ))
        .expect("killable")
        .expect("a change");
        let document: Value = serde_json::from_str(&killed_json).expect("json");
        assert_eq!(document["enabled"], false);
        assert_eq!(document["rollout_percentage"], 50);
        assert_eq!(document["timeout_ms"], 300);
        assert_eq!(document["salt"], "s");
        assert_eq!(
            killed(&stored("TRUE")).ok().flatten().as_deref(),
            Some("false")
        );
        assert_eq!(killed(&stored("false")).ok().flatten(), None);
        assert_eq!(
            killed(&stored(r#"{"enabled": false, "x": 1}"#))
                .ok()
                .flatten(),
            None
        );
        assert!(killed(&stored("https://x")).is_err());
    }
}
