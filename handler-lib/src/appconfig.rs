//! Flags from an AWS AppConfig configuration profile: the document a client receives from
//! AppConfig's data API (`GetLatestConfiguration`), turned into the same [`Parameter`]s an SSM
//! path gives, so one definition of a valid flag applies to both. No I/O.
//!
//! Two shapes are read, both a JSON object of flag name → value:
//!
//! - **freeform** (`application/json`): each value in the flag format of an SSM parameter — a
//!   boolean, a JSON rules object (`{"enabled": true, "rollout_percentage": 25, …}`), a list of
//!   strings, or text;
//! - **`AWS.AppConfig.FeatureFlags`**, as clients receive it (flattened:
//!   `{"new-checkout": {"enabled": true, "allowed_user_ids": ["alice"]}}`): each flag's attributes
//!   map onto the rule fields of the same name, and any other attribute becomes a config field.
//!   That profile type limits what a flag can say: keys match `^[a-z][a-zA-Z\d_-]{0,63}$`,
//!   attributes are not nested (so no `allowed_attributes`), arrays hold at most 25 items, and a
//!   disabled flag carries no attributes. A freeform profile has none of these limits.
//!
//! A list item holding a comma cannot be carried (as with an SSM `StringList`): such a list is
//! read as text. A document that is not a JSON object (YAML, plain text, a multi-variant payload)
//! is an error naming the profile, never a crash.

use serde_json::Value;

use crate::error::kind_of;
use crate::format::Format;
use crate::model::{Parameter, ParameterKind};

/// Which shape a profile's document has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentShape {
    /// Every value is an object with a boolean `enabled`: the `AWS.AppConfig.FeatureFlags` type
    /// as clients receive it (also a valid freeform document of JSON rules flags).
    FeatureFlags,
    /// Anything else: values in the SSM flag format.
    Freeform,
    /// A flagd document (declared `#flagd`, or carrying flagd's `$schema`): one parameter for
    /// the whole document.
    Flagd,
    /// A Powertools feature-flags document (declared `#powertools`): one parameter for the
    /// whole document, its text as received (rules apply in document order).
    Powertools,
}

/// Why a profile's document cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// The content type says it is not JSON.
    #[error(
        "AppConfig profile {profile}: content type {content_type:?} is not JSON; ssm-flags reads freeform JSON and AWS.AppConfig.FeatureFlags profiles (YAML, text and multi-variant payloads are not supported)"
    )]
    NotJson {
        /// The profile (`application/environment/profile`).
        profile: String,
        /// The content type AppConfig sent.
        content_type: String,
    },
    /// The body is not a JSON object.
    #[error(
        "AppConfig profile {profile}: the configuration is not a JSON object of flag name to value: {reason}"
    )]
    NotAnObject {
        /// The profile.
        profile: String,
        /// What is wrong.
        reason: String,
    },
}

/// The flags of one profile version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileFlags {
    /// The shape detected.
    pub shape: DocumentShape,
    /// One parameter per flag, named `appconfig:{profile}/{flag}`, with `version` the profile's
    /// version counter.
    pub parameters: Vec<Parameter>,
}

/// The parameter name AppConfig flags are cited by (errors, audit lines).
pub fn parameter_name(profile: &str, flag: &str) -> String {
    format!("{PREFIX}{profile}/{flag}")
}

const PREFIX: &str = "appconfig:";

/// The profile (`application/environment/profile`) of a parameter named by [`parameter_name`]
/// or [`document_name`]; `None` for any other name (an SSM parameter's).
pub fn profile_of(parameter_name: &str) -> Option<&str> {
    let rest = parameter_name.strip_prefix(PREFIX)?;
    // The three parts hold no '/' (a name with one is given by its ID): the fourth '/' ends it.
    match rest.match_indices('/').nth(2) {
        Some((end, _)) => Some(&rest[..end]),
        None => (rest.matches('/').count() == 2).then_some(rest),
    }
}

/// The parameter name a whole profile's document (a flagd document) is cited by.
pub fn document_name(profile: &str) -> String {
    format!("{PREFIX}{profile}")
}

/// Reads a configuration `body` of `profile` as its `format` says: a flagd profile (declared,
/// or a document carrying flagd's `$schema`) is one document parameter, named
/// [`document_name`], that [`crate::snapshot::assemble`] expands into its flags; any other is
/// read by [`parse_document`].
pub fn parse_profile(
    profile: &str,
    content_type: Option<&str>,
    body: &[u8],
    version: u64,
    format: Format,
) -> Result<ProfileFlags, DocumentError> {
    if format == Format::Powertools {
        return powertools_profile(profile, content_type, body, version);
    }
    let declared = matches!(format, Format::Flagd(_));
    if !declared && !body.windows(16).any(|w| w == b"flagd.dev/schema") {
        return parse_document(profile, content_type, body, version);
    }
    check_json(profile, content_type)?;
    let not_object = |reason: String| DocumentError::NotAnObject {
        profile: profile.to_owned(),
        reason,
    };
    let document: Value = serde_json::from_slice(body).map_err(|e| not_object(e.to_string()))?;
    if !declared && !crate::format::declares_flagd(&document) {
        return parse_document(profile, content_type, body, version);
    }
    if !document.is_object() {
        return Err(not_object(format!("it is {}", kind_of(&document))));
    }
    Ok(ProfileFlags {
        shape: DocumentShape::Flagd,
        parameters: vec![document_parameter(profile, document.to_string(), version)],
    })
}

/// The one parameter a whole-document profile is: named [`document_name`], its flag the
/// profile's last part (what a document that is not one at all is reported as).
fn document_parameter(profile: &str, value: String, version: u64) -> Parameter {
    Parameter {
        flag: profile.rsplit('/').next().unwrap_or(profile).to_owned(),
        name: document_name(profile),
        kind: ParameterKind::String,
        value,
        version,
    }
}

/// A Powertools profile: the document as one parameter, its text kept as received (the envelope
/// and the features are read by [`crate::snapshot::assemble`]).
fn powertools_profile(
    profile: &str,
    content_type: Option<&str>,
    body: &[u8],
    version: u64,
) -> Result<ProfileFlags, DocumentError> {
    check_json(profile, content_type)?;
    let not_object = |reason: String| DocumentError::NotAnObject {
        profile: profile.to_owned(),
        reason,
    };
    let text = std::str::from_utf8(body).map_err(|e| not_object(e.to_string()))?;
    serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| not_object(e.to_string()))?;
    Ok(ProfileFlags {
        shape: DocumentShape::Powertools,
        parameters: vec![document_parameter(profile, text.to_owned(), version)],
    })
}

/// Refuses a content type that says the body is not JSON.
fn check_json(profile: &str, content_type: Option<&str>) -> Result<(), DocumentError> {
    let Some(content_type) = content_type else {
        return Ok(());
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence != "application/json" && !essence.ends_with("+json") {
        return Err(DocumentError::NotJson {
            profile: profile.to_owned(),
            content_type: content_type.to_owned(),
        });
    }
    Ok(())
}

/// Reads a configuration `body` of `profile` (`application/environment/profile`), sent with
/// `content_type`, as flags with `version`.
pub fn parse_document(
    profile: &str,
    content_type: Option<&str>,
    body: &[u8],
    version: u64,
) -> Result<ProfileFlags, DocumentError> {
    check_json(profile, content_type)?;
    let not_object = |reason: String| DocumentError::NotAnObject {
        profile: profile.to_owned(),
        reason,
    };
    let document: Value = serde_json::from_slice(body).map_err(|e| not_object(e.to_string()))?;
    let Value::Object(flags) = document else {
        return Err(not_object(format!("it is {}", kind_of(&document))));
    };
    let shape = if !flags.is_empty()
        && flags
            .values()
            .all(|v| v.get("enabled").is_some_and(Value::is_boolean))
    {
        DocumentShape::FeatureFlags
    } else {
        DocumentShape::Freeform
    };
    let parameters = flags
        .into_iter()
        .map(|(flag, value)| {
            let (kind, value) = raw_value(value);
            Parameter {
                name: parameter_name(profile, &flag),
                flag,
                kind,
                value,
                version,
            }
        })
        .collect();
    Ok(ProfileFlags { shape, parameters })
}

/// A JSON value as the raw value of an SSM parameter of the same meaning.
fn raw_value(value: Value) -> (ParameterKind, String) {
    match value {
        Value::Bool(b) => (ParameterKind::String, b.to_string()),
        Value::String(text) => (ParameterKind::String, text),
        Value::Array(items) => {
            let strings: Option<Vec<String>> = items
                .iter()
                .map(|item| {
                    item.as_str()
                        .filter(|s| !s.contains(','))
                        .map(str::to_owned)
                })
                .collect();
            match strings {
                Some(strings) => (ParameterKind::StringList, strings.join(",")),
                None => (ParameterKind::String, Value::Array(items).to_string()),
            }
        }
        Value::Null => (ParameterKind::String, String::new()),
        other => (ParameterKind::String, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FlagEntry, FlagValue};

    fn entries(flags: &ProfileFlags) -> Vec<FlagEntry> {
        flags
            .parameters
            .iter()
            .map(FlagEntry::from_parameter)
            .collect()
    }

    #[test]
    fn a_feature_flags_profile_maps_attributes_onto_rule_fields() {
        let body = br#"{
            "new-checkout": {"enabled": true, "allowed_user_ids": ["alice", "user-123"]},
            "new-analytics": {"enabled": true, "rollout_percentage": 25, "allowed_regions": ["us-east-1"], "timeout_ms": 800},
            "kill-switch": {"enabled": false}
        }"#;
        let flags =
            parse_document("app/prod/flags", Some("application/json"), body, 3).expect("valid");
        assert_eq!(flags.shape, DocumentShape::FeatureFlags);
        let snapshot = crate::Snapshot::new(1, crate::Status::Ok, entries(&flags));
        let alice = crate::Context::user("alice").with_region("us-east-1");
        assert!(snapshot.get("new-checkout").enabled_for(&alice));
        assert!(
            !snapshot
                .get("new-checkout")
                .enabled_for(&crate::Context::user("bob"))
        );
        assert!(!snapshot.get("kill-switch").enabled());
        assert_eq!(
            snapshot.get("new-analytics").field_or("timeout_ms", 0u64),
            800
        );
        let p = &flags.parameters[0];
        assert!(
            p.name.starts_with("appconfig:app/prod/flags/"),
            "{}",
            p.name
        );
        assert_eq!(p.version, 3);
    }

    #[test]
    fn a_freeform_profile_holds_every_kind_of_flag() {
        let body = br#"{"dark-mode": true, "beta": "false", "origins": ["a.example.com", "b.example.com"],
                        "greeting": "hello", "limit": 5, "rules": {"enabled": true, "rollout_percentage": 50},
                        "commas": ["a,b", "c"], "broken": {"enabled": true, "rollout_percentage": 150}}"#;
        let flags = parse_document("app/prod/free", None, body, 1).expect("valid");
        assert_eq!(flags.shape, DocumentShape::Freeform);
        let snapshot = crate::Snapshot::new(1, crate::Status::Ok, entries(&flags));
        assert!(snapshot.get("dark-mode").enabled());
        assert!(!snapshot.get("beta").enabled());
        let value = |name: &str| snapshot.entry(name).and_then(|e| e.value().ok().cloned());
        assert_eq!(
            value("origins"),
            Some(FlagValue::List(vec![
                "a.example.com".into(),
                "b.example.com".into()
            ]))
        );
        assert_eq!(value("greeting"), Some(FlagValue::Text("hello".into())));
        assert_eq!(value("limit"), Some(FlagValue::Text("5".into())));
        assert!(matches!(value("rules"), Some(FlagValue::Json(_))));
        assert_eq!(
            value("commas"),
            Some(FlagValue::Text(r#"["a,b","c"]"#.into()))
        );
        // One invalid flag is reported by name; the others are served.
        let broken = snapshot.entry("broken").expect("present");
        let error = broken.value().expect_err("invalid").to_string();
        assert!(error.contains("rollout_percentage"), "{error}");
        assert_eq!(snapshot.len(), 8);
    }

    #[test]
    fn the_profile_of_a_parameter_name() {
        let name = parameter_name("app/prod/flags", "checkout/v2");
        assert_eq!(profile_of(&name), Some("app/prod/flags"));
        assert_eq!(profile_of("/myapp/prod/features/dark-mode"), None);
        assert_eq!(profile_of("appconfig:app/prod"), None);
    }

    #[test]
    fn a_document_that_is_not_a_json_object_names_the_profile() {
        let cases: [(Option<&str>, &[u8], &str); 4] = [
            (
                Some("application/x-yaml"),
                b"dark-mode: true",
                "content type \"application/x-yaml\" is not JSON",
            ),
            (Some("application/json"), b"[1, 2]", "it is an array"),
            (None, b"not json", "expected"),
            (
                Some("multipart/mixed; boundary=x"),
                b"--x\r\n",
                "multi-variant payloads are not supported",
            ),
        ];
        for (content_type, body, expected) in cases {
            let err = parse_document("app/prod/flags", content_type, body, 1).expect_err("invalid");
            let text = err.to_string();
            assert!(
                text.starts_with("AppConfig profile app/prod/flags: "),
                "{text}"
            );
            assert!(text.contains(expected), "{text}");
        }
        // An empty object is a valid, empty profile.
        let empty = parse_document("a/b/c", Some("application/json"), b"{}", 1).expect("valid");
        assert!(empty.parameters.is_empty());
    }
}
