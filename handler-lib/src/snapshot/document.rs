//! The conversions between a [`Snapshot`] and its wire document ([`SnapshotDoc`], [`FlagDoc`]):
//! the document types are plain data in [`crate::wire`]; turning them into flags, and flags back
//! into them, is the snapshot's business.

use std::path::Path;

use serde_json::Value;

use crate::error::{FlagError, LoadError};
use crate::snapshot::{FlagEntry, Snapshot};
use crate::wire::{FlagDoc, MAX_SNAPSHOT_FILE_BYTES, SnapshotDoc, Status, parse_time, rfc3339};

impl FlagDoc {
    /// The wire form of an entry. An invalid entry carries its raw value and its error.
    pub fn from_entry(entry: &FlagEntry) -> Self {
        let (value, error) = match entry.value() {
            Ok(value) => (value.to_json(), None),
            Err(error) => (
                Value::String(entry.invalid_raw().unwrap_or_default().to_owned()),
                Some(error.to_string()),
            ),
        };
        Self {
            value,
            version: entry.ssm_version(),
            secure: entry.is_secure(),
            error,
        }
    }

    fn into_entry(self, name: String) -> FlagEntry {
        match self.error {
            Some(message) => {
                let raw = match self.value {
                    Value::String(raw) => raw,
                    other => other.to_string(),
                };
                FlagEntry::invalid(
                    name,
                    self.version,
                    self.secure,
                    raw,
                    FlagError::Reported(message),
                )
            }
            None => FlagEntry::from_json(name, self.version, self.secure, self.value),
        }
    }
}

impl SnapshotDoc {
    /// The document of a snapshot (fetch time as of now, the status it carries).
    pub fn from_snapshot(snapshot: &Snapshot) -> Self {
        let status = snapshot.status();
        Self {
            version: snapshot.version(),
            fetched_at: snapshot.fetched_at().map(rfc3339),
            status: Some(status),
            stale: status == Status::Stale,
            flags: snapshot
                .entries()
                .map(|entry| (entry.name().to_owned(), FlagDoc::from_entry(entry)))
                .collect(),
        }
    }

    /// Builds the in-process snapshot. A flag whose value is invalid becomes an error entry;
    /// the others are unaffected.
    pub fn into_snapshot(self) -> Snapshot {
        let status = self.status();
        let fetched_at = self.fetched_at.as_deref().and_then(parse_time);
        Snapshot::new(
            self.version,
            status,
            self.flags
                .into_iter()
                .map(|(name, doc)| doc.into_entry(name)),
        )
        .with_fetched_at(fetched_at)
    }
}

/// Reads a snapshot file in the wire format.
pub fn read_file(path: &Path) -> Result<Snapshot, LoadError> {
    let bytes = crate::file::read_regular(path, MAX_SNAPSHOT_FILE_BYTES)?;
    SnapshotDoc::from_slice(&bytes, &path.display().to_string()).map(SnapshotDoc::into_snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FlagValue, Parameter, ParameterKind};
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
        assert_eq!(doc.status(), Status::Ok, "flags without a status are ok");
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

    fn parameter(flag: &str, raw: &str, kind: ParameterKind) -> Parameter {
        Parameter {
            flag: flag.to_owned(),
            name: format!("/x/{flag}"),
            kind,
            value: raw.to_owned(),
            version: 4,
        }
    }

    #[test]
    fn round_trip_keeps_values_versions_errors_secrets_status_and_time() {
        let at = humantime::parse_rfc3339("2026-11-24T10:00:00.250Z").expect("time");
        let parameters = [
            parameter("a", "true", ParameterKind::String),
            parameter(
                "b",
                r#"{"enabled": true, "rollout_percentage": 50}"#,
                ParameterKind::String,
            ),
            parameter("c", "{broken", ParameterKind::String),
            parameter("s", r#"{"enabled": true}"#, ParameterKind::SecureString),
        ];
        let snapshot = Snapshot::new(
            12,
            Status::Stale,
            parameters.iter().map(FlagEntry::from_parameter),
        )
        .with_fetched_at(Some(at));
        let doc = SnapshotDoc::from_snapshot(&snapshot);
        assert_eq!(doc.fetched_at.as_deref(), Some("2026-11-24T10:00:00.250Z"));
        assert!(doc.stale, "older clients still see `stale`");
        assert_eq!(doc.flags["c"].value, Value::String("{broken".into()));
        assert!(doc.flags["s"].secure && !doc.flags["a"].secure);
        let back = SnapshotDoc::from_slice(&doc.to_bytes(), "round trip").expect("decode");
        assert_eq!(back, doc);
        let snapshot = back.into_snapshot();
        assert_eq!(snapshot.version(), 12);
        assert_eq!(snapshot.status(), Status::Stale);
        assert_eq!(snapshot.fetched_at(), Some(at));
        let c = snapshot.entry("c").expect("c");
        assert_eq!(c.ssm_version(), 4);
        assert_eq!(c.invalid_raw(), Some("{broken"));
        assert!(
            c.value()
                .expect_err("invalid")
                .to_string()
                .starts_with("parameter /x/c: invalid JSON")
        );
        assert!(snapshot.entry("s").is_some_and(FlagEntry::is_secure));
        assert_eq!(
            snapshot.entry("a").map(FlagEntry::value),
            Some(Ok(&FlagValue::Bool(true)))
        );
        // Rendering the decoded snapshot again gives the same document.
        assert_eq!(SnapshotDoc::from_snapshot(&snapshot), doc);
    }
}
