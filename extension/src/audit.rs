//! The audit trail: what changed between two fetches, logged one structured line per flag
//! (target `ssm_flags::audit`), with the source version, and never a `SecureString` value.

use std::collections::HashMap;

use flags::{Parameter, ParameterKind};

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

/// The changes from `old` to `new`, by parameter (its full name): added and changed in `new`'s
/// order, then removed in `old`'s order. By parameter, not by flag name: two paths (or a
/// profile) may hold parameters of the same relative name — documents named `doc-01` under two
/// `#flagd` paths — and a change to either is a change to serve.
pub fn diff<'a>(old: &'a [Parameter], new: &'a [Parameter]) -> Vec<Change<'a>> {
    let before: HashMap<&str, &Parameter> = old.iter().map(|p| (p.name.as_str(), p)).collect();
    let after: HashMap<&str, &Parameter> = new.iter().map(|p| (p.name.as_str(), p)).collect();
    let mut changes: Vec<Change<'a>> = Vec::new();
    for p in new {
        match before.get(p.name.as_str()) {
            None => changes.push(Change::Added(p)),
            Some(o) if (o.version, o.kind, &o.value) != (p.version, p.kind, &p.value) => {
                changes.push(Change::Changed { old: o, new: p });
            }
            Some(_) => {}
        }
    }
    for p in old {
        if !after.contains_key(p.name.as_str()) {
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

/// Logs each invalid flag (it reads as its default) defined by an added or changed parameter,
/// a flag inside a document included: `invalid` holds each invalid entry's name, origin
/// parameter, version and error. A secure flag's error never quotes its value (see
/// [`flags::error::Problem::redacted`]).
pub fn log_invalid(changes: &[Change<'_>], invalid: &[(String, String, u64, String)]) {
    let changed: std::collections::HashSet<&str> = changes
        .iter()
        .filter_map(|change| match change {
            Change::Added(p) | Change::Changed { new: p, .. } => Some(p.name.as_str()),
            Change::Removed(_) => None,
        })
        .collect();
    for (flag, parameter, version, error) in invalid {
        if changed.contains(parameter.as_str()) {
            tracing::warn!(flag = %flag, parameter = %parameter, ssm_version = version, %error, "invalid flag value: it reads as its default");
        }
    }
}

/// The invalid entries of an assembly: name, origin parameter, version, error.
pub fn invalid_of(
    assembly: &flags::snapshot::assemble::Assembly,
) -> Vec<(String, String, u64, String)> {
    assembly
        .entries
        .iter()
        .zip(&assembly.origins)
        .filter_map(|(entry, origin)| {
            let error = entry.value().err()?;
            Some((
                entry.name().to_owned(),
                origin.parameter.clone(),
                entry.ssm_version(),
                error.to_string(),
            ))
        })
        .collect()
}

/// Logs every definition hidden by another of the same name (at each change of the set): the
/// served one and the hidden one, by parameter. Health lists them too (`shadowed`).
pub fn log_shadowed(shadowed: &[flags::snapshot::assemble::Shadowed]) {
    // As health lists them: at most 100 lines, and a count of the rest.
    const MAX_LOGGED: usize = flags::wire::HealthDoc::MAX_LISTED;
    if shadowed.len() > MAX_LOGGED {
        tracing::warn!(
            shadowed = shadowed.len(),
            logged = MAX_LOGGED,
            "flags defined twice: the first {MAX_LOGGED} hidden definitions follow; /v1/health counts them all"
        );
    }
    for s in shadowed.iter().take(MAX_LOGGED) {
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
