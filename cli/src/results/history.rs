//! Whether an experiment's definition changed within the window: units counted before and
//! after a change saw different experiments (another split, another variant), and adding them
//! up mixes the two. Read from the parameter's history (`GetParameterHistory`): each version
//! written within the window is compared with the one before it — the flag's own definition
//! only, as `diff` compares it, so another flag's change in the same document does not count.

use aws_sdk_ssm::primitives::{DateTime, DateTimeFormat};
use flags::snapshot::assemble::Assembler;
use flags::{Format, Parameter, ParameterKind};
use serde::Serialize;

use crate::diff;
use crate::error::CtlError;
use crate::param::{self, Version};

/// A version that changed the flag's definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The parameter's version.
    pub version: i64,
    /// When it was written (RFC 3339).
    pub modified: String,
    /// Who wrote it.
    pub user: Option<String>,
}

/// The versions of `parameter` written at or after `start` (seconds since the epoch) that
/// changed the definition of `flag`, read in `format`, oldest first.
pub async fn changes(
    ssm: &aws_sdk_ssm::Client,
    parameter: &str,
    format: Format,
    flag: &str,
    start: i64,
) -> Result<Vec<Change>, CtlError> {
    let versions = param::history(ssm, parameter).await?;
    Ok(changed(&versions, parameter, format, flag, start))
}

/// [`changes`] over versions already read (oldest first). A version whose predecessor does
/// not define the flag is its start, not a change.
fn changed(
    versions: &[Version],
    parameter: &str,
    format: Format,
    flag: &str,
    start: i64,
) -> Vec<Change> {
    let written = |v: &Version| {
        v.modified
            .as_deref()
            .and_then(|m| DateTime::from_str(m, DateTimeFormat::DateTime).ok())
            .map(|at| at.secs())
    };
    versions
        .windows(2)
        .filter(|pair| written(&pair[1]).is_some_and(|at| at >= start))
        .filter(|pair| {
            match (
                definition(&pair[0], parameter, format, flag),
                definition(&pair[1], parameter, format, flag),
            ) {
                (Some(before), after) => after.as_ref() != Some(&before),
                (None, _) => false,
            }
        })
        .map(|pair| Change {
            version: pair[1].version,
            modified: pair[1].modified.clone().unwrap_or_default(),
            user: pair[1].user.clone(),
        })
        .collect()
}

/// The definition of `flag` in one version, as `diff` compares it; `None` when that version
/// does not define it (or its value was not read).
fn definition(version: &Version, parameter: &str, format: Format, flag: &str) -> Option<String> {
    let value = version.value.as_deref()?;
    let kind = match version.kind {
        "StringList" => ParameterKind::StringList,
        _ => ParameterKind::String,
    };
    let mut assembler = Assembler::new();
    assembler.add(
        0,
        format,
        &Parameter {
            flag: flag.to_owned(),
            name: parameter.to_owned(),
            kind,
            value: value.to_owned(),
            version: u64::try_from(version.version).unwrap_or(0),
        },
    );
    let assembly = assembler.finish();
    let (entry, origin) = assembly
        .entries
        .iter()
        .zip(&assembly.origins)
        .find(|(entry, _)| entry.name() == flag)?;
    // An invalid flag compares by its own text: in a document, its entry alone.
    let raw = match origin.in_document {
        true => serde_json::from_str::<serde_json::Value>(value)
            .map(|doc| doc["flags"][flag].to_string())
            .unwrap_or_default(),
        false => value.to_owned(),
    };
    Some(diff::definition_text(entry, &raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(version: i64, modified: &str, value: &str) -> Version {
        Version {
            version,
            modified: Some(modified.to_owned()),
            user: Some("arn:aws:iam::1:user/ann".to_owned()),
            labels: Vec::new(),
            value: Some(value.to_owned()),
            kind: "String",
        }
    }

    /// 2026-12-01T00:00:00Z.
    const START: i64 = 1_796_083_200;

    #[test]
    fn only_this_flags_changes_within_the_window_count() {
        let doc = |a_weight: u32, other: &str| {
            format!(
                r#"{{"flags": {{"exp": {{"state": "ENABLED", "metadata": {{"experiment": true}}, "variants": {{"a": 1, "b": 2}}, "defaultVariant": "a", "targeting": {{"fractional": [["a", {a_weight}], ["b", {}]]}}}}, "other": {other}}}}}"#,
                100 - a_weight
            )
        };
        let on = r#"{"state": "ENABLED", "variants": {"x": true}, "defaultVariant": "x"}"#;
        let off = r#"{"state": "DISABLED", "variants": {"x": true}, "defaultVariant": "x"}"#;
        let format = Format::Flagd(flags::Bucketing::V3);
        let versions = [
            version(1, "2026-11-20T00:00:00Z", &doc(50, on)),
            // Before the window: a change that does not count.
            version(2, "2026-11-25T00:00:00Z", &doc(60, on)),
            // Within: another flag of the document; then the same definition reformatted.
            version(3, "2026-12-02T00:00:00Z", &doc(60, off)),
            version(4, "2026-12-02T01:00:00Z", &doc(60, off).replace(", ", ",")),
            // Within: this flag's split.
            version(5, "2026-12-03T00:00:00Z", &doc(50, off)),
        ];
        let found = changed(&versions, "/app/flagd/doc", format, "exp", START);
        assert_eq!(
            found,
            [Change {
                version: 5,
                modified: "2026-12-03T00:00:00Z".into(),
                user: Some("arn:aws:iam::1:user/ann".into()),
            }]
        );
        assert!(changed(&versions[..4], "/app/flagd/doc", format, "exp", START).is_empty());
    }

    #[test]
    fn a_json_flag_compares_by_its_value_and_its_start_is_no_change() {
        let versions = [
            version(1, "2026-12-02T00:00:00Z", "no flag yet"),
            version(
                2,
                "2026-12-02T01:00:00Z",
                r#"{"enabled": true, "rollout_percentage": 10, "experiment": true}"#,
            ),
            version(
                3,
                "2026-12-02T02:00:00Z",
                r#"{ "enabled": true, "rollout_percentage": 10, "experiment": true }"#,
            ),
            version(
                4,
                "2026-12-02T03:00:00Z",
                r#"{"enabled": true, "rollout_percentage": 20, "experiment": true}"#,
            ),
        ];
        // Version 1 is a text flag: 1 → 2 changes its kind. Reformatting (3) is no change.
        let found = changed(&versions, "/app/flags/exp", Format::Seed, "exp", START);
        let numbers: Vec<i64> = found.iter().map(|c| c.version).collect();
        assert_eq!(numbers, [2, 4]);
        let doc_without = [
            version(1, "2026-12-02T00:00:00Z", r#"{"flags": {}}"#),
            version(
                2,
                "2026-12-02T01:00:00Z",
                r#"{"flags": {"exp": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a"}}}"#,
            ),
        ];
        let flagd = Format::Flagd(flags::Bucketing::V3);
        assert!(
            changed(&doc_without, "/d", flagd, "exp", START).is_empty(),
            "its start"
        );
    }
}
