//! `lint`: every flag parsed as the extension parses it. Invalid flags are errors naming the
//! parameter and the field; legal but risky flags are warnings (a rollout without a salt, a
//! misspelt rule field that is silently kept as config, a user list near SSM's size limit, a
//! flag present in one environment and missing in the other). flagd flags are also checked
//! against flagd's published schema and for what a schema cannot see ([`flagd`]).

mod flagd;
mod powertools;

use std::collections::BTreeSet;

use flags::{FlagError, FlagValue, ParameterKind, Problem};
use serde::Serialize;

use crate::output;
use crate::param::STANDARD_LIMIT;
use crate::sources::{Flags, Loaded, Spec};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The flag is invalid: handlers read it as its default.
    Error,
    /// The flag is legal but risky.
    Warning,
}

/// One thing wrong with one flag.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// The source (path, profile or file).
    pub source: String,
    /// The flag's name.
    pub flag: String,
    /// The parameter (full SSM name, profile flag, or the flag's name in a file).
    pub parameter: String,
    /// The field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong, and what to do.
    pub message: String,
}

/// The fields the flag model reads; any other field is application config.
const RULE_FIELDS: [&str; 8] = [
    "enabled",
    "rollout_percentage",
    "allowed_regions",
    "allowed_user_ids",
    "excluded_user_ids",
    "allowed_attributes",
    "fallback_on_error",
    "salt",
];

/// Share of the tier's size limit from which a value is "near" it.
const NEAR_LIMIT: f64 = 0.8;

/// Every finding about the flags of `sources`; with two or more, also flags missing from some.
/// A source without a single flag is an error: a mistyped path lists nothing, and every
/// handler reading it would get its defaults.
pub fn lint(sources: &[Flags]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for source in sources {
        let origin = source.spec.to_string();
        if source.flags.is_empty() {
            findings.push(empty(source));
        }
        let start = findings.len();
        for (name, loaded) in &source.flags {
            findings.extend(check(&origin, name, loaded));
            findings.extend(flagd::flag_findings(&source.spec, name, loaded));
        }
        findings.extend(flagd::source_findings(source));
        // A flag's findings together (a document's schema findings come per parameter).
        findings[start..].sort_by(|a, b| a.flag.cmp(&b.flag));
    }
    if sources.len() > 1 {
        let all: BTreeSet<&String> = sources.iter().flat_map(|s| s.flags.keys()).collect();
        for name in all {
            let holders: Vec<String> = sources
                .iter()
                .filter(|s| s.flags.contains_key(name))
                .map(|s| s.spec.to_string())
                .collect();
            for source in sources.iter().filter(|s| !s.flags.contains_key(name)) {
                findings.push(Finding {
                    severity: Severity::Warning,
                    source: source.spec.to_string(),
                    flag: name.clone(),
                    parameter: name.clone(),
                    field: None,
                    message: format!(
                        "missing here, present in {}: handlers here read it as their default",
                        holders.join(", ")
                    ),
                });
            }
        }
    }
    findings
}

/// The finding about a source with no flags: `no flags under /typo/path`.
fn empty(source: &Flags) -> Finding {
    let message = match &source.spec {
        Spec::Path(path, _) => format!(
            "no flags under {path}: check the path (a mistyped path lists nothing, and handlers reading it get their defaults)"
        ),
        Spec::Profile(_) | Spec::File(_) => format!("no flags in {}", source.spec),
    };
    Finding {
        severity: Severity::Error,
        source: source.spec.to_string(),
        flag: String::new(),
        parameter: String::new(),
        field: None,
        message,
    }
}

/// The findings about one flag.
pub fn check(source: &str, name: &str, loaded: &Loaded) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut add = |severity, field: Option<&str>, message: String| {
        findings.push(Finding {
            severity,
            source: source.to_owned(),
            flag: name.to_owned(),
            parameter: loaded.parameter.clone(),
            field: field.map(str::to_owned),
            message,
        });
    };
    if loaded.undecrypted {
        add(
            Severity::Warning,
            None,
            "not checked: SSM would not decrypt this SecureString (the caller needs kms:Decrypt on its key)".to_owned(),
        );
        return findings;
    }
    // A SecureString's findings never quote its value (region names, user ids, the text).
    let secure = loaded.kind == ParameterKind::SecureString || loaded.entry.is_secure();
    let limit = loaded
        .meta
        .as_ref()
        .map_or(STANDARD_LIMIT, |meta| meta.size_limit());
    match loaded.entry.value() {
        Err(error) => add(Severity::Error, field_of(error), error.to_string()),
        Ok(FlagValue::Json(flag)) => {
            for (severity, field, message) in
                json_risks(name, flag, loaded.raw.len(), limit, secure)
            {
                add(severity, field, message);
            }
        }
        Ok(FlagValue::Text(text)) if loaded.kind != ParameterKind::StringList => {
            if let Some(message) = near_boolean(text, secure) {
                add(Severity::Warning, None, message);
            }
        }
        Ok(_) => {}
    }
    // A flagd document's size is said once for the document (`flagd::source_findings`).
    if !loaded.in_document
        && loaded.raw.len() as f64 >= NEAR_LIMIT * limit as f64
        && !matches!(loaded.entry.value(), Ok(FlagValue::Json(f)) if f.rules().allowed_user_ids.is_some())
    {
        add(
            Severity::Warning,
            None,
            format!(
                "the value is {} of its tier's {limit} bytes: SSM refuses a value over the limit",
                loaded.raw.len()
            ),
        );
    }
    findings
}

type Risk = (Severity, Option<&'static str>, String);

fn json_risks(
    name: &str,
    flag: &flags::JsonFlag,
    size: usize,
    limit: usize,
    secure: bool,
) -> Vec<Risk> {
    let quote = |text: &str| {
        if secure {
            "a value".to_owned()
        } else {
            format!("{text:?}")
        }
    };
    let mut risks = Vec::new();
    let rules = flag.rules();
    let Some(document) = flag.document().as_object() else {
        return risks;
    };
    for field in document.keys() {
        if let Some(meant) = misspelt_rule(field) {
            risks.push((
                Severity::Warning,
                None,
                format!(
                    "unknown field `{field}`: did you mean `{meant}`? As written it is config the rules never read"
                ),
            ));
        }
    }
    if !document.contains_key("enabled") {
        risks.push((
            Severity::Warning,
            Some("enabled"),
            "no `enabled` field: the flag is off for everyone (an absent `enabled` means disabled)"
                .to_owned(),
        ));
    }
    if let Some(p) = rules.rollout_percentage
        && p < 100.0
        && rules.salt.is_none()
    {
        risks.push((
            Severity::Warning,
            Some("salt"),
            format!(
                "a rollout without a `salt`: its {} are the same users as every other unsalted rollout's (bucket = md5(user id)); set \"salt\": \"{name}\" before the rollout starts (adding one later reshuffles who has it)",
                if p > 0.0 { format!("first {}", output::percent(p)) } else { "users".to_owned() }
            ),
        ));
    }
    if rules.experiment && rules.rollout_percentage.is_none() {
        risks.push((
            Severity::Warning,
            Some(flags::experiment::MARKER),
            "an experiment without a `rollout_percentage`: no evaluation is decided by a split (reason SPLIT), so no exposure is ever counted".to_owned(),
        ));
    }
    if rules.experiment && secure {
        risks.push((
            Severity::Warning,
            Some(flags::experiment::MARKER),
            "an experiment in a SecureString is never counted (its variants would reach the metrics): keep it in a String parameter".to_owned(),
        ));
    }
    if let Some(users) = &rules.allowed_user_ids
        && size as f64 >= NEAR_LIMIT * limit as f64
    {
        risks.push((
            Severity::Warning,
            Some("allowed_user_ids"),
            format!(
                "`allowed_user_ids` holds {} ids and the value is {size} of its tier's {limit} bytes: SSM refuses a value over the limit; use a rollout or an attribute rule",
                users.len()
            ),
        ));
    }
    if let Some(regions) = &rules.allowed_regions {
        for region in regions.iter().filter(|r| !looks_like_region(r)) {
            risks.push((
                Severity::Warning,
                Some("allowed_regions"),
                format!(
                    "{} is not an AWS region name (like us-east-1): no request will match it",
                    quote(region)
                ),
            ));
        }
    }
    if let (Some(allowed), Some(excluded)) = (&rules.allowed_user_ids, &rules.excluded_user_ids) {
        let both: BTreeSet<&String> = allowed.intersection(excluded).collect();
        if !both.is_empty() {
            risks.push((
                Severity::Warning,
                Some("excluded_user_ids"),
                format!(
                    "{} user(s) both allowed and excluded (excluded wins), e.g. {}",
                    both.len(),
                    quote(both.iter().next().map(|s| s.as_str()).unwrap_or_default())
                ),
            ));
        }
    }
    risks
}

/// The field a problem is about: a rule field, or where a flagd definition breaks the format
/// (`flags.checkout.targeting.if[0]`, as the model names it).
fn field_of(error: &FlagError) -> Option<&str> {
    match error {
        FlagError::Invalid { problem, .. } => match problem {
            Problem::WrongType { field, .. } => Some(field),
            Problem::PercentageOutOfRange(_) => Some("rollout_percentage"),
            Problem::Definition { field, .. } if !field.is_empty() => Some(field),
            Problem::InvalidJson(_) | Problem::NotAnObject(_) | Problem::Definition { .. } => None,
        },
        FlagError::Reported(_) => None,
    }
}

/// The rule field `field` was probably meant to be, when it is not one but nearly is.
fn misspelt_rule(field: &str) -> Option<&'static str> {
    if RULE_FIELDS.contains(&field) {
        return None;
    }
    let lower = field.to_ascii_lowercase().replace('-', "_");
    RULE_FIELDS.iter().copied().find(|rule| {
        lower == *rule
            || distance(&lower, rule) <= 2
            || (lower.len() >= 6 && rule.starts_with(&lower))
    })
}

/// Levenshtein distance (short strings only).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `ap-southeast-5`.
fn looks_like_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts.iter().all(|p| !p.is_empty())
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
}

/// A text value an operator probably meant as a boolean.
fn near_boolean(text: &str, secure: bool) -> Option<String> {
    const MEANT: [&str; 12] = [
        "yes", "no", "on", "off", "1", "0", "enabled", "disabled", "ture", "flase", "y", "n",
    ];
    let trimmed = text.trim().to_ascii_lowercase();
    let trimmed = trimmed.trim_matches(|c| c == '"' || c == '\'');
    (MEANT.contains(&trimmed) || trimmed == "true" || trimmed == "false").then(|| {
        let shown = if secure { "the value".to_owned() } else { format!("{text:?}") };
        format!(
            "{shown} is a text value, not a boolean: `enabled()` reads it as off; write true or false"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flags::{FlagEntry, Parameter};

    fn loaded(raw: &str) -> Loaded {
        let parameter = Parameter {
            flag: "f".into(),
            name: "/app/flags/f".into(),
            kind: ParameterKind::String,
            value: raw.into(),
            version: 1,
        };
        Loaded {
            entry: FlagEntry::from_parameter(&parameter),
            parameter: parameter.name,
            raw: raw.into(),
            kind: ParameterKind::String,
            undecrypted: false,
            meta: None,
            in_document: false,
        }
    }

    fn messages(raw: &str) -> Vec<(Severity, Option<String>, String)> {
        check("/app/flags", "f", &loaded(raw))
            .into_iter()
            .map(|f| (f.severity, f.field, f.message))
            .collect()
    }

    #[test]
    fn a_source_without_flags_is_an_error() {
        let flags = |spec: &str, with: bool| Flags {
            spec: Spec::parse(spec).expect("spec"),
            flags: match with {
                true => [("f".to_owned(), loaded("true"))].into(),
                false => Default::default(),
            },
            shadowed: Vec::new(),
        };
        let found = lint(&[flags("/typo/path", false)]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].severity, Severity::Error);
        assert!(
            found[0].message.starts_with("no flags under /typo/path"),
            "{found:?}"
        );
        assert!(lint(&[flags("/app/flags", true)]).is_empty());
        assert_eq!(
            lint(&[flags("empty.json", false)])
                .first()
                .map(|f| f.message.as_str()),
            Some("no flags in empty.json")
        );
    }

    #[test]
    fn invalid_flags_are_errors_naming_parameter_and_field() {
        let found = messages(r#"{"enabled": true, "rollout_percentage": "25"}"#);
        assert_eq!(found.len(), 1, "{found:?}");
        let (severity, field, message) = &found[0];
        assert_eq!(*severity, Severity::Error);
        assert_eq!(field.as_deref(), Some("rollout_percentage"));
        assert!(
            message.starts_with("parameter /app/flags/f: field `rollout_percentage`"),
            "{message}"
        );
        let (severity, _, message) = &messages(r#"{"enabled": true,"#)[0];
        assert_eq!(*severity, Severity::Error);
        assert!(message.contains("invalid JSON"), "{message}");
    }

    #[test]
    fn clean_flags_have_no_findings() {
        for raw in [
            "true",
            "FALSE",
            "https://example.com",
            r#"{"enabled": true, "rollout_percentage": 100}"#,
            r#"{"enabled": true, "rollout_percentage": 5, "salt": "f", "timeout_ms": 300}"#,
        ] {
            assert_eq!(messages(raw), vec![], "{raw}");
        }
    }

    #[test]
    fn an_experiment_without_a_rollout_is_a_warning() {
        let none = messages(r#"{"enabled": true, "experiment": true}"#);
        assert_eq!(none.len(), 1, "{none:?}");
        assert_eq!(none[0].1.as_deref(), Some("experiment"));
        assert!(
            none[0].2.contains("without a `rollout_percentage`"),
            "{none:?}"
        );
        let split = messages(
            r#"{"enabled": true, "rollout_percentage": 50, "salt": "s", "experiment": true}"#,
        );
        assert!(split.is_empty(), "{split:?}");
    }

    #[test]
    fn risky_flags_are_warnings() {
        let unsalted = messages(r#"{"enabled": true, "rollout_percentage": 25}"#);
        assert_eq!(unsalted.len(), 1, "{unsalted:?}");
        assert_eq!(unsalted[0].0, Severity::Warning);
        assert!(unsalted[0].2.contains("first 25%"), "{unsalted:?}");

        let typo = messages(r#"{"enabeld": true}"#);
        assert!(
            typo.iter()
                .any(|(_, _, m)| m.contains("`enabeld`: did you mean `enabled`")),
            "{typo:?}"
        );
        assert!(
            typo.iter().any(|(_, f, _)| f.as_deref() == Some("enabled")),
            "{typo:?}"
        );
        let typo = messages(r#"{"enabled": true, "rollout_percent": 5, "salt": "x"}"#);
        assert!(
            typo.iter()
                .any(|(_, _, m)| m.contains("did you mean `rollout_percentage`")),
            "{typo:?}"
        );

        let region = messages(r#"{"enabled": true, "allowed_regions": ["us-east1", "eu-west-1"]}"#);
        assert_eq!(region.len(), 1, "{region:?}");
        assert!(region[0].2.contains("\"us-east1\""), "{region:?}");

        let text = messages("yes");
        assert_eq!(text.len(), 1, "{text:?}");
        assert!(text[0].2.contains("not a boolean"), "{text:?}");
    }

    #[test]
    fn findings_about_a_secure_string_never_quote_it() {
        for raw in [
            "yes",
            r#"{"enabled": true, "allowed_regions": ["sk_live_9"]}"#,
            r#"{"enabled": true, "allowed_user_ids": ["sk_9"], "excluded_user_ids": ["sk_9"]}"#,
            r#"{"enabled": "sk_9"}"#,
        ] {
            let mut secure = loaded(raw);
            secure.kind = ParameterKind::SecureString;
            secure.entry = FlagEntry::from_parameter(&Parameter {
                flag: "f".into(),
                name: "/app/flags/f".into(),
                kind: ParameterKind::SecureString,
                value: raw.into(),
                version: 1,
            });
            let found = check("/app/flags", "f", &secure);
            assert!(!found.is_empty(), "{raw}");
            for finding in found {
                assert!(
                    !finding.message.contains("sk") && !finding.message.contains("yes"),
                    "{}",
                    finding.message
                );
            }
        }
    }

    #[test]
    fn a_user_list_near_the_size_limit_is_a_warning() {
        let ids: Vec<String> = (0..300).map(|i| format!("\"user-{i:05}\"")).collect();
        let raw = format!(
            r#"{{"enabled": true, "allowed_user_ids": [{}]}}"#,
            ids.join(",")
        );
        assert!(raw.len() > 3300 && raw.len() < 4096, "{}", raw.len());
        let found = messages(&raw);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].1.as_deref(), Some("allowed_user_ids"));
        assert!(found[0].2.contains("holds 300 ids"), "{found:?}");
    }

    #[test]
    fn misspellings_are_caught_and_config_fields_are_not() {
        assert_eq!(misspelt_rule("enable"), Some("enabled"));
        assert_eq!(misspelt_rule("Enabled"), Some("enabled"));
        assert_eq!(misspelt_rule("allowed_region"), Some("allowed_regions"));
        assert_eq!(misspelt_rule("allowed-user-ids"), Some("allowed_user_ids"));
        assert_eq!(misspelt_rule("rollout"), Some("rollout_percentage"));
        for config in [
            "timeout_ms",
            "endpoint",
            "variant",
            "max_retries",
            "salty_snacks_limit",
        ] {
            assert_eq!(misspelt_rule(config), None, "{config}");
        }
    }
}
