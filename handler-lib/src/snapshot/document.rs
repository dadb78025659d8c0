//! The conversions between a [`Snapshot`] and its wire document ([`SnapshotDoc`], [`FlagDoc`]):
//! the document types are plain data in [`crate::wire`]; turning them into flags, and flags back
//! into them, is the snapshot's business.

use std::path::Path;

use serde_json::Value;

use std::collections::BTreeMap;

use crate::error::{FlagError, LoadError, Problem};
use crate::flagd::{Bucketing, Definition};
use crate::format;
use crate::model::FlagValue;
use crate::snapshot::{FlagEntry, Snapshot, invalid};
use crate::wire::{
    FlagDoc, FlagdDoc, MAX_SNAPSHOT_FILE_BYTES, SnapshotDoc, Status, parse_time, rfc3339,
};

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

impl FlagdDoc {
    /// The wire form of a flagd flag's entry.
    pub fn from_definition(entry: &FlagEntry, definition: &Definition) -> Self {
        Self {
            // The text was written by serde_json at load: it is JSON.
            definition: serde_json::value::RawValue::from_string(definition.source().to_owned())
                .unwrap_or_default(),
            bucketing: if definition.is_powertools() {
                crate::flagd::powertools::MARKER.to_owned()
            } else {
                definition.bucketing().name().to_owned()
            },
            version: entry.ssm_version(),
            secure: entry.is_secure(),
        }
    }

    fn into_entry(self, name: String) -> FlagEntry {
        let bucketing = match self.bucketing.as_str() {
            "v3" => Bucketing::V3,
            "v2" => Bucketing::V2,
            crate::flagd::powertools::MARKER => return self.into_powertools_entry(name),
            other => {
                let problem = Problem::Definition {
                    field: "bucketing".into(),
                    problem: format!(
                        "{other:?} is not a bucketing this client knows (v3, v2, powertools)"
                    ),
                };
                let error = invalid(&name, problem);
                return FlagEntry::invalid(name, self.version, self.secure, "", error);
            }
        };
        let entries = serde_json::from_str::<Value>(self.definition.get())
            .map_err(|e| Problem::Definition {
                field: "definition".into(),
                problem: format!("is not JSON: {e}"),
            })
            .and_then(|definition| {
                FlagEntry::from_flagd_document(
                    &name,
                    self.version,
                    self.secure,
                    &definition,
                    bucketing,
                )
            });
        let problem = match entries {
            Ok(entries) => match entries.into_iter().find(|e| e.name() == name) {
                Some(entry) => return entry,
                None => Problem::Definition {
                    field: "flags".into(),
                    problem: format!("does not define {name:?}"),
                },
            },
            Err(problem) => problem,
        };
        let error = invalid(&name, problem);
        FlagEntry::invalid(name, self.version, self.secure, "", error)
    }
}

impl FlagdDoc {
    /// A Powertools feature: its definition is a one-feature document.
    fn into_powertools_entry(self, name: String) -> FlagEntry {
        let found = FlagEntry::from_powertools_document(
            &name,
            self.version,
            self.secure,
            self.definition.get(),
            None,
        )
        .and_then(|entries| {
            entries
                .into_iter()
                .find(|e| e.name() == name)
                .ok_or_else(|| Problem::Definition {
                    field: String::new(),
                    problem: format!("does not define {name:?}"),
                })
        });
        match found {
            Ok(entry) => entry,
            Err(problem) => {
                let error = invalid(&name, problem);
                FlagEntry::invalid(name, self.version, self.secure, "", error)
            }
        }
    }
}

impl SnapshotDoc {
    /// The document of a snapshot (fetch time as of now, the status it carries).
    pub fn from_snapshot(snapshot: &Snapshot) -> Self {
        let status = snapshot.status();
        let mut flags = BTreeMap::new();
        let mut flagd = BTreeMap::new();
        for entry in snapshot.entries() {
            let name = entry.name().to_owned();
            match entry.value() {
                Ok(FlagValue::Flagd(definition)) => {
                    flagd.insert(name, FlagdDoc::from_definition(entry, definition));
                }
                _ => {
                    flags.insert(name, FlagDoc::from_entry(entry));
                }
            }
        }
        Self {
            version: snapshot.version(),
            fetched_at: snapshot.fetched_at().map(rfc3339),
            status: Some(status),
            stale: status == Status::Stale,
            flags,
            flagd,
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
                .map(|(name, doc)| doc.into_entry(name))
                .chain(
                    self.flagd
                        .into_iter()
                        .map(|(name, doc)| doc.into_entry(name)),
                ),
        )
        .with_fetched_at(fetched_at)
    }
}

/// The variable naming the JMESPath envelope of Powertools documents.
pub const POWERTOOLS_ENVELOPE_VAR: &str = "SSM_FLAGS_POWERTOOLS_ENVELOPE";

/// Reads a snapshot file: the wire format, or a flagd document carrying flagd's `$schema`
/// (every flag in it, v3 bucketing; version 0, status `ok`), or — when the path ends in
/// `#powertools` (`flags.json#powertools`) — a Powertools feature-flags document, selected by
/// the envelope in `SSM_FLAGS_POWERTOOLS_ENVELOPE` when it is set.
pub fn read_file(path: &Path) -> Result<Snapshot, LoadError> {
    let envelope = match std::env::var(POWERTOOLS_ENVELOPE_VAR) {
        Ok(text) if !text.trim().is_empty() => Some(
            crate::flagd::powertools::Envelope::new(text.trim()).map_err(|e| {
                LoadError::Powertools {
                    origin: path.display().to_string(),
                    problem: format!("{POWERTOOLS_ENVELOPE_VAR}: {e}"),
                }
            })?,
        ),
        _ => None,
    };
    read_file_with(path, envelope.as_ref())
}

/// [`read_file`] with the Powertools envelope given.
pub fn read_file_with(
    path: &Path,
    envelope: Option<&crate::flagd::powertools::Envelope>,
) -> Result<Snapshot, LoadError> {
    let text = path.to_string_lossy();
    if let Some(file) = text.strip_suffix(format::Format::Powertools.marker())
        && !path.is_file()
    {
        let file = Path::new(file);
        let bytes = crate::file::read_regular(file, MAX_SNAPSHOT_FILE_BYTES)?;
        let origin = file.display().to_string();
        let problem = |problem: String| LoadError::Powertools {
            origin: origin.clone(),
            problem,
        };
        let text = std::str::from_utf8(&bytes).map_err(|e| problem(e.to_string()))?;
        let entries = FlagEntry::from_powertools_document(&origin, 0, false, text, envelope)
            .map_err(|e| problem(e.to_string()))?;
        return Ok(Snapshot::new(0, Status::Ok, entries));
    }
    let bytes = crate::file::read_regular(path, MAX_SNAPSHOT_FILE_BYTES)?;
    let origin = path.display().to_string();
    let value: Value = serde_json::from_slice(&bytes).map_err(|cause| LoadError::Format {
        origin: origin.clone(),
        cause,
    })?;
    if format::declares_flagd(&value) {
        return match FlagEntry::from_flagd_document(&origin, 0, false, &value, Bucketing::V3) {
            Ok(entries) => Ok(Snapshot::new(0, Status::Ok, entries)),
            Err(problem) => Err(LoadError::Flagd {
                origin,
                problem: problem.to_string(),
            }),
        };
    }
    SnapshotDoc::from_slice(&bytes, &origin).map(SnapshotDoc::into_snapshot)
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

    #[test]
    fn a_file_declaring_flagds_schema_is_a_flagd_document_and_a_broken_one_names_the_file() {
        let dir = std::env::temp_dir().join(format!("flagd-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let good = dir.join("flags.json");
        std::fs::write(
            &good,
            r#"{"$schema": "https://flagd.dev/schema/v0/flags.json", "flags": {
                "banner": {"state": "ENABLED", "variants": {"a": "red", "b": "blue"},
                           "defaultVariant": "b"},
                "bad": {"state": "ENABLED", "variants": {}, "defaultVariant": "x"}}}"#,
        )
        .expect("write");
        let snapshot = Arc::new(read_file(&good).expect("a flagd document"));
        let user = crate::Context::user("u");
        assert_eq!(snapshot.get("banner").string_for(&user), Some("blue"));
        let error = snapshot.get("bad").error().map(ToString::to_string);
        assert!(
            error.is_some_and(|e| e.contains("flags.json")),
            "names the file"
        );

        let broken = dir.join("broken.json");
        std::fs::write(
            &broken,
            r#"{"$schema": "https://flagd.dev/schema/v0/flags.json", "flags": []}"#,
        )
        .expect("write");
        let error = read_file(&broken).expect_err("not a document").to_string();
        assert!(
            error.contains("broken.json") && error.contains("flags"),
            "{error}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn flagd_flags_travel_in_their_own_field_and_read_back_the_same() {
        let document = serde_json::json!({
            "flags": {"split": {"state": "ENABLED", "variants": {"a": 1, "b": 2},
                                "defaultVariant": "a",
                                "targeting": {"fractional": [["a", 50], ["b", 50]]}}},
        });
        let mut entries =
            FlagEntry::from_flagd_document("/p/doc", 5, true, &document, Bucketing::V2)
                .expect("a document");
        entries.push(FlagEntry::from_parameter(&Parameter {
            flag: "plain".into(),
            name: "/p/plain".into(),
            kind: ParameterKind::String,
            value: "true".into(),
            version: 1,
        }));
        let snapshot = Snapshot::new(2, Status::Ok, entries);
        let doc = SnapshotDoc::from_snapshot(&snapshot);
        assert_eq!(doc.flags.keys().collect::<Vec<_>>(), ["plain"]);
        let split = &doc.flagd["split"];
        assert_eq!(
            (split.bucketing.as_str(), split.version, split.secure),
            ("v2", 5, true)
        );
        let bytes = doc.to_bytes();
        let back = Arc::new(
            SnapshotDoc::from_slice(&bytes, "t")
                .expect("decodes")
                .into_snapshot(),
        );
        let original = Arc::new(snapshot);
        for user in ["u1", "u2", "u3", "u4", "u5", "u6"] {
            let ctx = crate::Context::user(user);
            assert_eq!(
                back.get("split").i64_for(&ctx),
                original.get("split").i64_for(&ctx)
            );
        }
        assert!(back.entry("split").is_some_and(FlagEntry::is_secure));
        // A bucketing this client does not know is an error for that flag alone.
        let mut future = SnapshotDoc::from_slice(&bytes, "t").expect("decodes");
        if let Some(split) = future.flagd.get_mut("split") {
            split.bucketing = "v4".into();
        }
        let future = Arc::new(future.into_snapshot());
        let error = future.get("split").error().map(ToString::to_string);
        assert!(error.is_some_and(|e| e.contains("\"v4\"")));
        assert!(future.get("plain").enabled());
    }
}
