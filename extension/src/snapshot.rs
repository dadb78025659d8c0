//! What the local API serves: the flags snapshot, its JSON body rendered once per change, its
//! ETag and its health. Readers never block; the refresher swaps a new one in atomically.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use bytes::Bytes;
use flags::wire::{FlagDoc, SnapshotDoc, rfc3339};
use flags::{FlagEntry, ParameterKind, Snapshot};
use serde::Serialize;

use crate::source::Parameter;

/// How current the served flags are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The last refresh succeeded.
    Ok,
    /// No fetch has succeeded yet: an empty snapshot is served, every flag reads as its default.
    Degraded,
    /// The last refresh failed: the last good flags are served.
    Stale,
}

/// One snapshot as served: parsed for evaluation, rendered for `GET /v1/flags`.
#[derive(Debug)]
pub struct Served {
    /// The parsed flags (evaluation endpoint).
    pub snapshot: Arc<Snapshot>,
    /// The `GET /v1/flags` body.
    pub body: Bytes,
    /// The body's ETag (quoted).
    pub etag: String,
    /// How current the flags are.
    pub status: Status,
    /// Why the last refresh failed, while degraded or stale.
    pub last_error: Option<String>,
    /// Flags whose value is invalid.
    pub invalid: usize,
}

impl Served {
    /// Renders a snapshot of `parameters`. `instance` makes ETags unique to this process, so a
    /// handler never mistakes a restarted extension's snapshot for the one it holds.
    pub fn render(
        instance: u64,
        version: u64,
        fetched_at: Option<SystemTime>,
        status: Status,
        last_error: Option<String>,
        parameters: &[Parameter],
    ) -> Self {
        let stale = status == Status::Stale;
        let entries: Vec<(FlagEntry, &str)> = parameters
            .iter()
            .map(|p| {
                let entry = FlagEntry::from_parameter(
                    p.flag.as_str(),
                    &p.name,
                    p.kind,
                    &p.value,
                    p.version,
                );
                (entry, p.value.as_str())
            })
            .collect();
        let doc = SnapshotDoc {
            version,
            fetched_at: fetched_at.map(rfc3339),
            stale,
            flags: entries
                .iter()
                .map(|(entry, raw)| (entry.name().to_owned(), FlagDoc::from_entry(entry, raw)))
                .collect(),
        };
        // Serializing owned strings and JSON values cannot fail.
        let body = Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
        let invalid = entries.iter().filter(|(e, _)| e.value().is_err()).count();
        let snapshot = Snapshot::new(
            version,
            fetched_at,
            stale,
            entries.into_iter().map(|(entry, _)| entry),
        );
        Self {
            snapshot: Arc::new(snapshot),
            body,
            etag: format!("\"{instance:x}-{version}-{}\"", status_tag(status)),
            status,
            last_error,
            invalid,
        }
    }
}

fn status_tag(status: Status) -> &'static str {
    match status {
        Status::Ok => "ok",
        Status::Degraded => "degraded",
        Status::Stale => "stale",
    }
}

/// The served snapshot, shared between the refresher (writer) and the server (readers).
#[derive(Debug, Clone)]
pub struct Shared(Arc<ArcSwap<Served>>);

impl Shared {
    /// Shares `served`.
    pub fn new(served: Served) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(served)))
    }

    /// The snapshot served now.
    pub fn load(&self) -> Arc<Served> {
        self.0.load_full()
    }

    /// Serves `served` from now on.
    pub fn publish(&self, served: Served) {
        self.0.store(Arc::new(served));
    }
}

/// What happened to one flag between two fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change<'a> {
    /// A new flag.
    Added(&'a Parameter),
    /// A flag whose value, type or version changed.
    Changed {
        /// Before.
        old: &'a Parameter,
        /// After.
        new: &'a Parameter,
    },
    /// A flag that is gone.
    Removed(&'a Parameter),
}

/// The changes from `old` to `new`, by flag name: added and changed in `new`'s order, then
/// removed in `old`'s order.
pub fn diff<'a>(old: &'a [Parameter], new: &'a [Parameter]) -> Vec<Change<'a>> {
    let before: HashMap<&str, &Parameter> = old.iter().map(|p| (p.flag.as_str(), p)).collect();
    let after: HashMap<&str, &Parameter> = new.iter().map(|p| (p.flag.as_str(), p)).collect();
    let mut changes: Vec<Change<'a>> = Vec::new();
    for p in new {
        // With duplicate names (several paths), only the one that wins is compared.
        if !after
            .get(p.flag.as_str())
            .is_some_and(|w| std::ptr::eq(*w, p))
        {
            continue;
        }
        match before.get(p.flag.as_str()) {
            None => changes.push(Change::Added(p)),
            Some(o)
                if (o.version, o.kind, &o.value, &o.name)
                    != (p.version, p.kind, &p.value, &p.name) =>
            {
                changes.push(Change::Changed { old: o, new: p });
            }
            Some(_) => {}
        }
    }
    for p in old {
        if !after.contains_key(p.flag.as_str())
            && before
                .get(p.flag.as_str())
                .is_some_and(|w| std::ptr::eq(*w, p))
        {
            changes.push(Change::Removed(p));
        }
    }
    changes
}

/// A value as the audit log may show it: never a `SecureString`, and at most 200 characters.
pub fn loggable_value(parameter: &Parameter) -> String {
    if parameter.kind == ParameterKind::SecureString {
        return "(SecureString: not logged)".to_owned();
    }
    const MAX: usize = 200;
    match parameter.value.char_indices().nth(MAX) {
        Some((cut, _)) => format!(
            "{}… ({} bytes)",
            &parameter.value[..cut],
            parameter.value.len()
        ),
        None => parameter.value.clone(),
    }
}

/// Logs one structured line per change: the audit trail in the function's logs.
pub fn log_changes(changes: &[Change<'_>]) {
    for change in changes {
        match change {
            Change::Added(p) => tracing::info!(
                target: "ssm_flags::audit",
                change = "added",
                flag = %p.flag,
                parameter = %p.name,
                ssm_version = p.version,
                kind = ?p.kind,
                value = %loggable_value(p),
                "flag added"
            ),
            Change::Changed { old, new } => tracing::info!(
                target: "ssm_flags::audit",
                change = "changed",
                flag = %new.flag,
                parameter = %new.name,
                ssm_version = new.version,
                previous_ssm_version = old.version,
                kind = ?new.kind,
                value = %loggable_value(new),
                "flag changed"
            ),
            Change::Removed(p) => tracing::info!(
                target: "ssm_flags::audit",
                change = "removed",
                flag = %p.flag,
                parameter = %p.name,
                ssm_version = p.version,
                "flag removed"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(flag: &str, value: &str, version: u64) -> Parameter {
        Parameter {
            flag: flag.to_owned(),
            name: format!("/app/features/{flag}"),
            kind: ParameterKind::String,
            value: value.to_owned(),
            version,
        }
    }

    #[test]
    fn diff_reports_added_changed_removed() {
        let old = [
            param("a", "true", 1),
            param("b", "false", 1),
            param("c", "x", 3),
        ];
        let new = [
            param("a", "true", 1),
            param("b", "true", 2),
            param("d", "1", 1),
        ];
        let changes = diff(&old, &new);
        assert_eq!(
            changes,
            [
                Change::Changed {
                    old: &old[1],
                    new: &new[1]
                },
                Change::Added(&new[2]),
                Change::Removed(&old[2]),
            ]
        );
        assert!(diff(&new, &new).is_empty());
    }

    #[test]
    fn secure_values_are_never_logged_and_long_ones_are_cut() {
        let mut secret = param("s", "hunter2", 1);
        secret.kind = ParameterKind::SecureString;
        assert_eq!(loggable_value(&secret), "(SecureString: not logged)");
        let long = param("l", &"é".repeat(300), 1);
        let shown = loggable_value(&long);
        assert!(
            shown.starts_with(&"é".repeat(200)) && shown.ends_with("… (600 bytes)"),
            "{shown}"
        );
    }

    #[test]
    fn render_serves_every_flag_and_counts_invalid_ones() {
        let params = [param("dark-mode", "true", 2), param("broken", "{", 1)];
        let served = Served::render(0xab, 5, None, Status::Ok, None, &params);
        assert_eq!(served.invalid, 1);
        assert_eq!(served.etag, "\"ab-5-ok\"");
        let doc: serde_json::Value = serde_json::from_slice(&served.body).expect("JSON body");
        assert_eq!(doc["version"], 5);
        assert_eq!(doc["stale"], false);
        assert_eq!(
            doc["flags"]["dark-mode"],
            serde_json::json!({"value": true, "version": 2})
        );
        assert_eq!(doc["flags"]["broken"]["value"], "{");
        assert!(
            doc["flags"]["broken"]["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("parameter /app/features/broken: invalid JSON"))
        );
        assert!(served.snapshot.get("dark-mode").enabled());
        let stale = Served::render(0xab, 5, None, Status::Stale, Some("down".into()), &params);
        assert_ne!(
            stale.etag, served.etag,
            "staleness changes the body, so the tag"
        );
    }
}
