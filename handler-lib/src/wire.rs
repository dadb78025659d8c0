//! The snapshot wire format, shared by the extension's local API, the handler client and
//! snapshot files:
//!
//! ```json
//! {"version": 4, "fetched_at": "2026-11-24T10:00:00Z", "stale": false,
//!  "flags": {"dark-mode": {"value": true, "version": 3},
//!            "broken": {"value": "{oops", "version": 1, "error": "parameter …: invalid JSON: …"}}}
//! ```
//!
//! `value` is a boolean for boolean flags, the object for JSON flags, an array for `StringList`,
//! else the string. In files every field but `flags` and `value` may be left out.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{FlagError, LoadError};
use crate::eval::Evaluation;
use crate::model::FlagValue;
use crate::snapshot::{FlagEntry, Snapshot, invalid};

/// A whole snapshot on the wire (`GET /v1/flags`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotDoc {
    /// Content version; increases whenever the flags change.
    #[serde(default)]
    pub version: u64,
    /// RFC 3339 time of the last successful fetch from SSM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched_at: Option<String>,
    /// Whether the last refresh failed and these are the last good flags.
    #[serde(default)]
    pub stale: bool,
    /// Every flag by name.
    pub flags: BTreeMap<String, FlagDoc>,
}

/// One flag on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlagDoc {
    /// The value (see the module docs); for an invalid flag, the raw string.
    pub value: Value,
    /// The SSM parameter version.
    #[serde(default)]
    pub version: u64,
    /// Why the value is invalid; present only then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One flag evaluated for a user (`GET /v1/flags/{name}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvaluationDoc<'a> {
    /// The flag's name.
    pub name: &'a str,
    /// Whether it is on for the given context.
    pub enabled: bool,
    /// The reason code (see [`crate::Reason::code`]).
    pub reason: &'static str,
    /// The outcome in words.
    pub detail: String,
    /// The flag's value, or `null` when it does not exist.
    pub value: Value,
}

impl<'a> EvaluationDoc<'a> {
    /// Describes an evaluation of `name`, whose value is `value`.
    pub fn new(name: &'a str, evaluation: Evaluation, value: Value) -> Self {
        Self {
            name,
            enabled: evaluation.enabled,
            reason: evaluation.reason.code(),
            detail: evaluation.to_string(),
            value,
        }
    }
}

impl FlagDoc {
    /// The wire form of an entry. An invalid entry carries its raw value and its error.
    pub fn from_entry(entry: &FlagEntry, raw: &str) -> Self {
        match entry.value() {
            Ok(value) => Self {
                value: value.to_json(),
                version: entry.ssm_version(),
                error: None,
            },
            Err(error) => Self {
                value: Value::String(raw.to_owned()),
                version: entry.ssm_version(),
                error: Some(error.to_string()),
            },
        }
    }

    fn into_entry(self, name: String) -> FlagEntry {
        let value = match self.error {
            Some(message) => Err(FlagError::Reported(message)),
            None => FlagValue::from_json(self.value).map_err(|problem| invalid(&name, problem)),
        };
        FlagEntry::new(name, self.version, value)
    }
}

impl SnapshotDoc {
    /// Decodes a snapshot document; `origin` names it in errors.
    pub fn from_slice(bytes: &[u8], origin: &str) -> Result<Self, LoadError> {
        serde_json::from_slice(bytes).map_err(|source| LoadError::Format {
            origin: origin.to_owned(),
            source,
        })
    }

    /// Builds the in-process snapshot. A flag whose value is invalid becomes an error entry;
    /// the others are unaffected.
    pub fn into_snapshot(self) -> Snapshot {
        let fetched_at = self
            .fetched_at
            .as_deref()
            .and_then(|at| humantime::parse_rfc3339(at).ok());
        Snapshot::new(
            self.version,
            fetched_at,
            self.stale,
            self.flags
                .into_iter()
                .map(|(name, doc)| doc.into_entry(name)),
        )
    }
}

/// Formats a time as RFC 3339 (UTC, whole seconds), as `fetched_at` carries it.
pub fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// Reads a snapshot file in the wire format.
pub fn read_file(path: &Path) -> Result<Snapshot, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
        path: path.to_owned(),
        source,
    })?;
    SnapshotDoc::from_slice(&bytes, &path.display().to_string()).map(SnapshotDoc::into_snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ParameterKind;
    use std::sync::Arc;

    #[test]
    fn a_hand_written_file_needs_only_values() {
        let doc = SnapshotDoc::from_slice(
            br#"{"flags": {
                "dark-mode": {"value": true},
                "new-checkout-flow": {"value": {"enabled": true, "allowed_user_ids": ["u1"]}},
                "raw-bool": {"value": "TRUE"},
                "numbers": {"value": 5}
            }}"#,
            "test.json",
        )
        .expect("valid document");
        let snapshot = Arc::new(doc.into_snapshot());
        assert_eq!(snapshot.version(), 0);
        assert!(snapshot.get("dark-mode").enabled());
        assert!(snapshot.get("raw-bool").enabled());
        assert!(
            snapshot
                .get("new-checkout-flow")
                .enabled_for(&crate::Context::user("u1"))
        );
        assert_eq!(
            snapshot
                .get("numbers")
                .error()
                .map(ToString::to_string)
                .as_deref(),
            Some(
                "parameter numbers: field `value` must be a boolean, an object, an array of strings or a string, got number 5"
            )
        );
    }

    #[test]
    fn round_trip_keeps_values_versions_errors_and_time() {
        let at = humantime::parse_rfc3339("2026-11-24T10:00:00Z").expect("time");
        let entries = [
            ("a", "true"),
            ("b", r#"{"enabled": true, "rollout_percentage": 50}"#),
            ("c", "{broken"),
        ]
        .map(|(name, raw)| {
            (
                FlagEntry::from_parameter(
                    name,
                    &format!("/x/{name}"),
                    ParameterKind::String,
                    raw,
                    4,
                ),
                raw,
            )
        });
        let doc = SnapshotDoc {
            version: 12,
            fetched_at: Some(rfc3339(at)),
            stale: true,
            flags: entries
                .iter()
                .map(|(entry, raw)| (entry.name().to_owned(), FlagDoc::from_entry(entry, raw)))
                .collect(),
        };
        let json = serde_json::to_vec(&doc).expect("serialize");
        let back = SnapshotDoc::from_slice(&json, "round trip").expect("decode");
        assert_eq!(back, doc);
        assert_eq!(doc.fetched_at.as_deref(), Some("2026-11-24T10:00:00Z"));
        let snapshot = back.into_snapshot();
        assert_eq!(snapshot.version(), 12);
        assert!(snapshot.is_stale());
        assert_eq!(snapshot.fetched_at(), Some(at));
        let c = snapshot.entry("c").expect("c");
        assert_eq!(c.ssm_version(), 4);
        assert!(
            c.value()
                .expect_err("invalid")
                .to_string()
                .starts_with("parameter /x/c: invalid JSON")
        );
        assert_eq!(
            snapshot.entry("a").map(FlagEntry::value),
            Some(Ok(&FlagValue::Bool(true)))
        );
    }

    #[test]
    fn a_document_that_is_not_a_snapshot_names_its_origin() {
        let err = SnapshotDoc::from_slice(b"{\"flags\": 3}", "flags.json").expect_err("bad");
        assert!(
            err.to_string()
                .starts_with("flags.json is not a valid flag snapshot: "),
            "{err}"
        );
    }

    #[test]
    fn evaluation_doc_serializes_reason_code_and_detail() {
        let doc = EvaluationDoc::new(
            "x",
            Evaluation {
                enabled: false,
                reason: crate::Reason::Excluded,
            },
            Value::Null,
        );
        assert_eq!(
            serde_json::to_value(&doc).expect("serialize"),
            serde_json::json!({"name": "x", "enabled": false, "reason": "excluded",
                               "detail": "user is in `excluded_user_ids`", "value": null})
        );
    }
}
