//! The audit trail: what changed between two fetches, logged one structured line per flag
//! (target `ssm_flags::audit`), with the source version, and never a `SecureString` value.

use std::collections::HashMap;

use flags::{Parameter, ParameterKind, Snapshot};

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

/// Logs one structured line per change: the audit trail in the function's logs. A flag from an
/// AppConfig profile carries its version's `Version-Label` (from `labels`, by profile) beside
/// the version counter.
pub fn log_changes(changes: &[Change<'_>], labels: &HashMap<String, String>) {
    let label = |p: &Parameter| {
        flags::appconfig::profile_of(&p.name)
            .and_then(|profile| labels.get(profile))
            .map(String::as_str)
    };
    for change in changes {
        match change {
            Change::Added(p) => tracing::info!(
                target: "ssm_flags::audit",
                change = "added",
                flag = %p.flag,
                parameter = %p.name,
                ssm_version = p.version,
                version_label = label(p),
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
                version_label = label(new),
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

/// Logs each added or changed flag whose value is invalid (it reads as its default). A secure
/// flag's error never quotes its value (see [`flags::error::Problem::redacted`]).
pub fn log_invalid(changes: &[Change<'_>], snapshot: &Snapshot) {
    for change in changes {
        let p = match change {
            Change::Added(p) | Change::Changed { new: p, .. } => p,
            Change::Removed(_) => continue,
        };
        if let Some(Err(error)) = snapshot.entry(&p.flag).map(flags::FlagEntry::value) {
            tracing::warn!(flag = %p.flag, ssm_version = p.version, %error, "invalid flag value: it reads as its default");
        }
    }
}

/// Logs every definition hidden by another of the same name (at each change of the set): the
/// served one and the hidden one, by parameter. Health lists them too (`shadowed`).
pub fn log_shadowed(shadowed: &[flags::snapshot::assemble::Shadowed]) {
    for s in shadowed {
        tracing::warn!(
            flag = %s.flag,
            kept = %s.kept,
            hidden = %s.hidden,
            "flag defined twice: one definition is served, the other hidden"
        );
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
}
