//! The flag model: what an operator stores in SSM, parsed once into typed values.
//!
//! A parameter's value is classified by these rules, in order:
//! 1. a `StringList` parameter is a [`FlagValue::List`] (items split on `,`, trimmed);
//! 2. `true` / `false` (trimmed, any case) is a [`FlagValue::Bool`];
//! 3. a value whose first non-blank character is `{` is a [`FlagValue::Json`] flag and must be a
//!    valid JSON object whose known fields have the right types (see [`Rules`]);
//! 4. anything else is a [`FlagValue::Text`] config value, kept verbatim.
//!
//! A value that breaks rule 3 is not guessed at: it becomes a [`Problem`] that names the field.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::error::Problem;
use crate::flagd::Definition;

/// The SSM parameter type a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParameterKind {
    /// `String`: classified by its content.
    String,
    /// `StringList`: always a list of strings.
    StringList,
    /// `SecureString`, already decrypted: classified like `String`, never logged.
    SecureString,
}

/// One parameter as a source fetched it, before parsing: the input of
/// [`crate::FlagEntry::from_parameter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    /// The flag's name: the parameter name relative to its path (see [`crate::path`]).
    pub flag: String,
    /// The full parameter name, which error messages cite.
    pub name: String,
    /// The parameter type.
    pub kind: ParameterKind,
    /// The raw value (decrypted for a `SecureString`: never log it).
    pub value: String,
    /// The parameter's version at the source.
    pub version: u64,
}

/// A parsed flag value.
#[derive(Debug, Clone, PartialEq)]
pub enum FlagValue {
    /// A boolean flag (`true` / `false`).
    Bool(bool),
    /// A JSON flag: targeting rules plus the whole document for config reads (boxed, so that
    /// every value — and the snapshot's table of them — stays small).
    Json(Box<JsonFlag>),
    /// A `StringList` parameter, readable as a config value.
    List(Vec<String>),
    /// Any other string, readable as a config value.
    Text(String),
    /// A flag in OpenFeature's flag definition format (flagd's): typed variants and targeting.
    Flagd(Arc<Definition>),
}

/// A JSON flag: its [`Rules`] and the document they were read from.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonFlag {
    rules: Rules,
    document: Value,
}

/// The targeting rules of a JSON flag (the seed article's fields, made exact).
///
/// Absent lists do not restrict; an absent `enabled` means disabled, as in the seed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rules {
    /// `enabled`: the master switch.
    pub enabled: bool,
    /// `rollout_percentage` (0–100): share of users, by deterministic bucket, who get the flag.
    pub rollout_percentage: Option<f64>,
    /// `allowed_regions`: the flag is on only in these regions.
    pub allowed_regions: Option<Vec<String>>,
    /// `allowed_user_ids`: the flag is on only for these users.
    pub allowed_user_ids: Option<HashSet<String>>,
    /// `excluded_user_ids`: the flag is always off for these users.
    pub excluded_user_ids: Option<HashSet<String>>,
    /// `allowed_attributes`: for each attribute, the values for which the flag is on.
    pub allowed_attributes: Option<Vec<(String, Vec<String>)>>,
    /// `fallback_on_error`: the application may fall back to the old path when the new one fails.
    pub fallback_on_error: bool,
    /// `salt`: buckets this flag independently of other flags (see [`crate::eval::bucket`]).
    pub salt: Option<String>,
    /// `experiment`: the rollout is an experiment, its exposures and conversions counted
    /// (see [`crate::experiment`]); variants `on` and `off`.
    pub experiment: bool,
}

impl FlagValue {
    /// Classifies and parses a raw parameter value. The problem with a `SecureString` value never
    /// quotes it.
    pub fn parse(kind: ParameterKind, raw: &str) -> Result<Self, Problem> {
        let parsed = Self::classify(kind, raw);
        match kind {
            ParameterKind::SecureString => parsed.map_err(Problem::redacted),
            _ => parsed,
        }
    }

    fn classify(kind: ParameterKind, raw: &str) -> Result<Self, Problem> {
        if kind == ParameterKind::StringList {
            return Ok(Self::List(split_list(raw)));
        }
        let trimmed = raw.trim();
        if trimmed.eq_ignore_ascii_case("true") {
            Ok(Self::Bool(true))
        } else if trimmed.eq_ignore_ascii_case("false") {
            Ok(Self::Bool(false))
        } else if trimmed.starts_with('{') {
            let document: Value =
                serde_json::from_str(trimmed).map_err(|e| Problem::InvalidJson(e.to_string()))?;
            JsonFlag::from_document(document).map(|flag| Self::Json(Box::new(flag)))
        } else {
            Ok(Self::Text(raw.to_owned()))
        }
    }

    /// The value as the wire format carries it: a boolean, the JSON object, an array of strings,
    /// or the string.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Bool(b) => Value::Bool(*b),
            Self::Json(flag) => flag.document.clone(),
            Self::List(items) => Value::Array(items.iter().cloned().map(Value::String).collect()),
            Self::Text(text) => Value::String(text.clone()),
            Self::Flagd(definition) => definition.to_document(),
        }
    }

    /// Reads a value back from its wire form (see [`FlagValue::to_json`]).
    ///
    /// A string is classified again like a `String` parameter, which is idempotent for strings the
    /// extension sends and lets hand-written snapshot files use the operator's raw values.
    pub fn from_json(value: Value) -> Result<Self, Problem> {
        Self::from_json_or_return(value).map_err(|(problem, _)| problem)
    }

    /// [`FlagValue::from_json`], handing the value back with the problem.
    pub(crate) fn from_json_or_return(value: Value) -> Result<Self, (Problem, Value)> {
        match value {
            Value::Bool(b) => Ok(Self::Bool(b)),
            Value::Object(_) => {
                JsonFlag::from_document_or_return(value).map(|flag| Self::Json(Box::new(flag)))
            }
            Value::String(s) => {
                Self::parse(ParameterKind::String, &s).map_err(|p| (p, Value::String(s)))
            }
            Value::Array(items) => {
                if let Some(other) = items.iter().find(|item| !item.is_string()) {
                    let problem = Problem::WrongType {
                        field: "value",
                        expected: "an array of strings",
                        found: describe(other),
                    };
                    return Err((problem, Value::Array(items)));
                }
                Ok(Self::List(
                    items
                        .into_iter()
                        .filter_map(|item| match item {
                            Value::String(s) => Some(s),
                            _ => None,
                        })
                        .collect(),
                ))
            }
            other => Err((
                Problem::WrongType {
                    field: "value",
                    expected: "a boolean, an object, an array of strings or a string",
                    found: describe(&other),
                },
                other,
            )),
        }
    }
}

impl JsonFlag {
    /// Validates a JSON document as a flag: it must be an object whose known fields have the
    /// right types; other fields are kept as application config.
    pub fn from_document(document: Value) -> Result<Self, Problem> {
        Self::from_document_or_return(document).map_err(|(problem, _)| problem)
    }

    fn from_document_or_return(document: Value) -> Result<Self, (Problem, Value)> {
        match Self::rules_of(&document) {
            Ok(rules) => Ok(Self { rules, document }),
            Err(problem) => Err((problem, document)),
        }
    }

    fn rules_of(document: &Value) -> Result<Rules, Problem> {
        let Value::Object(map) = document else {
            return Err(Problem::NotAnObject(describe(document)));
        };
        Ok(Rules {
            enabled: bool_field(map, "enabled")?.unwrap_or(false),
            rollout_percentage: percentage_field(map)?,
            allowed_regions: string_list_field(map, "allowed_regions")?,
            allowed_user_ids: string_list_field(map, "allowed_user_ids")?
                .map(|ids| ids.into_iter().collect()),
            excluded_user_ids: string_list_field(map, "excluded_user_ids")?
                .map(|ids| ids.into_iter().collect()),
            allowed_attributes: attributes_field(map)?,
            fallback_on_error: bool_field(map, "fallback_on_error")?.unwrap_or(false),
            salt: string_field(map, "salt")?,
            experiment: bool_field(map, crate::experiment::MARKER)?.unwrap_or(false),
        })
    }

    /// The targeting rules.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The whole JSON object, including fields the rules do not use.
    pub fn document(&self) -> &Value {
        &self.document
    }
}

fn split_list(raw: &str) -> Vec<String> {
    raw.split(',').map(|item| item.trim().to_owned()).collect()
}

/// A short description of a JSON value for error messages: its type and, if small, the value.
fn describe(value: &Value) -> String {
    let kind = match value {
        Value::Null => return "null".to_owned(),
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let text = value.to_string();
    if text.len() <= 40 {
        format!("{kind} {text}")
    } else {
        kind.to_owned()
    }
}

fn wrong_type(field: &'static str, expected: &'static str, found: &Value) -> Problem {
    Problem::WrongType {
        field,
        expected,
        found: describe(found),
    }
}

fn bool_field(map: &Map<String, Value>, field: &'static str) -> Result<Option<bool>, Problem> {
    match map.get(field) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(wrong_type(field, "true or false", other)),
    }
}

fn string_field(map: &Map<String, Value>, field: &'static str) -> Result<Option<String>, Problem> {
    match map.get(field) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(wrong_type(field, "a string", other)),
    }
}

fn string_list_field(
    map: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<Vec<String>>, Problem> {
    match map.get(field) {
        None => Ok(None),
        Some(value @ Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                _ => Err(wrong_type(field, "an array of strings", value)),
            })
            .collect::<Result<_, _>>()
            .map(Some),
        Some(other) => Err(wrong_type(field, "an array of strings", other)),
    }
}

fn percentage_field(map: &Map<String, Value>) -> Result<Option<f64>, Problem> {
    const FIELD: &str = "rollout_percentage";
    match map.get(FIELD) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(p) if (0.0..=100.0).contains(&p) => Ok(Some(p)),
            _ => Err(Problem::PercentageOutOfRange(n.to_string())),
        },
        Some(other) => Err(wrong_type(FIELD, "a number from 0 to 100", other)),
    }
}

type AttributeRules = Vec<(String, Vec<String>)>;

fn attributes_field(map: &Map<String, Value>) -> Result<Option<AttributeRules>, Problem> {
    const FIELD: &str = "allowed_attributes";
    const EXPECTED: &str = "an object mapping attribute names to arrays of strings";
    match map.get(FIELD) {
        None => Ok(None),
        Some(Value::Object(rules)) => rules
            .iter()
            .map(|(name, allowed)| match allowed {
                Value::Array(items) => items
                    .iter()
                    .map(|item| item.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .map(|values| (name.clone(), values))
                    .ok_or_else(|| wrong_type(FIELD, EXPECTED, allowed)),
                other => Err(wrong_type(FIELD, EXPECTED, other)),
            })
            .collect::<Result<_, _>>()
            .map(Some),
        Some(other) => Err(wrong_type(FIELD, EXPECTED, other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<FlagValue, Problem> {
        FlagValue::parse(ParameterKind::String, raw)
    }

    fn rules(raw: &str) -> Rules {
        match parse(raw) {
            Ok(FlagValue::Json(flag)) => flag.rules,
            other => panic!("expected a JSON flag from {raw}, got {other:?}"),
        }
    }

    fn problem(raw: &str) -> String {
        match parse(raw) {
            Err(problem) => problem.to_string(),
            Ok(value) => panic!("expected {raw} to be rejected, got {value:?}"),
        }
    }

    #[test]
    fn booleans_are_trimmed_and_case_insensitive() {
        for raw in ["true", "TRUE", " True\n", "\ttRuE "] {
            assert_eq!(parse(raw), Ok(FlagValue::Bool(true)), "{raw:?}");
        }
        for raw in ["false", "FALSE", " False "] {
            assert_eq!(parse(raw), Ok(FlagValue::Bool(false)), "{raw:?}");
        }
    }

    #[test]
    fn secure_strings_are_classified_like_strings() {
        assert_eq!(
            FlagValue::parse(ParameterKind::SecureString, "true"),
            Ok(FlagValue::Bool(true))
        );
    }

    #[test]
    fn problems_with_secure_strings_never_quote_the_value() {
        for raw in [
            r#"{"enabled": "sk_live_51Hxyz"}"#,
            r#"{"enabled": true, "rollout_percentage": 4242}"#,
            r#"{"enabled": true, "allowed_regions": "sk_live_51Hxyz"}"#,
            r#"{"enabled": true, "sk_live_51Hxyz": 1,"#,
        ] {
            let secure = FlagValue::parse(ParameterKind::SecureString, raw)
                .expect_err("invalid")
                .to_string();
            assert!(
                !secure.contains("sk_live") && !secure.contains("4242"),
                "{secure}"
            );
        }
        // The same value in a String is quoted, to help the operator fix it.
        assert!(problem(r#"{"enabled": "sk_live_51Hxyz"}"#).contains("sk_live_51Hxyz"));
    }

    #[test]
    fn near_booleans_are_text_not_guesses() {
        for raw in ["yes", "1", "on", "truee", "t"] {
            assert_eq!(parse(raw), Ok(FlagValue::Text(raw.to_owned())), "{raw:?}");
        }
    }

    #[test]
    fn plain_strings_are_kept_verbatim() {
        assert_eq!(
            parse("  https://example.com/a,b  "),
            Ok(FlagValue::Text("  https://example.com/a,b  ".to_owned()))
        );
        assert_eq!(parse("[1, 2]"), Ok(FlagValue::Text("[1, 2]".to_owned())));
    }

    #[test]
    fn string_lists_split_on_commas_and_trim() {
        assert_eq!(
            FlagValue::parse(ParameterKind::StringList, "us-east-1, us-west-2,eu-west-1"),
            Ok(FlagValue::List(vec![
                "us-east-1".to_owned(),
                "us-west-2".to_owned(),
                "eu-west-1".to_owned()
            ]))
        );
        // A StringList is a list even when it looks like a boolean.
        assert_eq!(
            FlagValue::parse(ParameterKind::StringList, "true"),
            Ok(FlagValue::List(vec!["true".to_owned()]))
        );
    }

    #[test]
    fn the_seed_new_analytics_flag_parses_every_field() {
        let r = rules(
            r#"{
            "enabled": true,
            "rollout_percentage": 25,
            "allowed_regions": ["us-east-1", "us-west-2"],
            "excluded_user_ids": ["user-123", "user-456"]
        }"#,
        );
        assert!(r.enabled);
        assert_eq!(r.rollout_percentage, Some(25.0));
        assert_eq!(
            r.allowed_regions,
            Some(vec!["us-east-1".to_owned(), "us-west-2".to_owned()])
        );
        let excluded = r.excluded_user_ids.expect("excluded ids");
        assert!(excluded.contains("user-123") && excluded.contains("user-456"));
        assert_eq!(excluded.len(), 2);
        assert_eq!(r.allowed_user_ids, None);
        assert!(!r.fallback_on_error);
    }

    #[test]
    fn json_flag_keeps_config_fields_and_optional_rules() {
        let value = parse(
            r#"{"enabled": false, "fallback_on_error": true, "salt": "pp-2026",
                "allowed_user_ids": ["a"], "timeout_ms": 300,
                "allowed_attributes": {"plan": ["pro", "team"]}}"#,
        )
        .expect("valid");
        let FlagValue::Json(flag) = value else {
            panic!("expected JSON flag")
        };
        assert!(!flag.rules.enabled);
        assert!(flag.rules.fallback_on_error);
        assert_eq!(flag.rules.salt.as_deref(), Some("pp-2026"));
        assert_eq!(flag.document["timeout_ms"], 300);
        assert_eq!(
            flag.rules.allowed_attributes,
            Some(vec![(
                "plan".to_owned(),
                vec!["pro".to_owned(), "team".to_owned()]
            )])
        );
    }

    #[test]
    fn absent_enabled_means_disabled() {
        assert!(!rules(r#"{"rollout_percentage": 100}"#).enabled);
    }

    #[test]
    fn percentage_bounds_are_inclusive_and_fractions_allowed() {
        assert_eq!(
            rules(r#"{"rollout_percentage": 0}"#).rollout_percentage,
            Some(0.0)
        );
        assert_eq!(
            rules(r#"{"rollout_percentage": 100}"#).rollout_percentage,
            Some(100.0)
        );
        assert_eq!(
            rules(r#"{"rollout_percentage": 12.5}"#).rollout_percentage,
            Some(12.5)
        );
    }

    #[test]
    fn broken_json_says_where() {
        let msg = problem(r#"{"enabled": true,"#);
        assert!(msg.starts_with("invalid JSON: "), "{msg}");
        assert!(msg.contains("line 1"), "{msg}");
    }

    #[test]
    fn percentage_out_of_range_is_rejected() {
        assert_eq!(
            problem(r#"{"enabled": true, "rollout_percentage": 150}"#),
            "field `rollout_percentage` must be a number from 0 to 100, got 150"
        );
        assert_eq!(
            problem(r#"{"rollout_percentage": -1}"#),
            "field `rollout_percentage` must be a number from 0 to 100, got -1"
        );
    }

    #[test]
    fn wrong_field_types_name_the_field_and_what_was_found() {
        let cases = [
            (
                r#"{"enabled": "true"}"#,
                "field `enabled` must be true or false, got string \"true\"",
            ),
            (
                r#"{"rollout_percentage": "25"}"#,
                "field `rollout_percentage` must be a number from 0 to 100, got string \"25\"",
            ),
            (
                r#"{"allowed_regions": "us-east-1"}"#,
                "field `allowed_regions` must be an array of strings, got string \"us-east-1\"",
            ),
            (
                r#"{"allowed_user_ids": [1, 2]}"#,
                "field `allowed_user_ids` must be an array of strings, got array [1,2]",
            ),
            (
                r#"{"excluded_user_ids": null}"#,
                "field `excluded_user_ids` must be an array of strings, got null",
            ),
            (
                r#"{"fallback_on_error": 1}"#,
                "field `fallback_on_error` must be true or false, got number 1",
            ),
            (
                r#"{"salt": 7}"#,
                "field `salt` must be a string, got number 7",
            ),
            (
                r#"{"allowed_attributes": {"plan": "pro"}}"#,
                "field `allowed_attributes` must be an object mapping attribute names to arrays of strings, got string \"pro\"",
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(problem(raw), expected, "{raw}");
        }
    }

    #[test]
    fn wire_form_round_trips_every_kind() {
        let values = [
            FlagValue::Bool(true),
            parse(r#"{"enabled": true, "rollout_percentage": 5, "x": [1]}"#).expect("json"),
            FlagValue::List(vec!["a".to_owned(), "b".to_owned()]),
            FlagValue::Text("hello".to_owned()),
        ];
        for value in values {
            assert_eq!(FlagValue::from_json(value.to_json()).as_ref(), Ok(&value));
        }
    }

    #[test]
    fn wire_strings_are_classified_like_parameters() {
        assert_eq!(
            FlagValue::from_json(Value::String("TRUE".into())),
            Ok(FlagValue::Bool(true))
        );
        assert!(FlagValue::from_json(Value::String("{oops".into())).is_err());
    }

    #[test]
    fn wire_values_of_other_types_are_rejected() {
        assert_eq!(
            FlagValue::from_json(serde_json::json!(5))
                .expect_err("number")
                .to_string(),
            "field `value` must be a boolean, an object, an array of strings or a string, got number 5"
        );
        assert!(FlagValue::from_json(Value::Null).is_err());
        assert!(FlagValue::from_json(serde_json::json!(["a", 1])).is_err());
    }

    #[test]
    fn long_values_are_not_echoed_into_messages() {
        let long = format!(r#"{{"enabled": "{}"}}"#, "x".repeat(100));
        assert_eq!(
            problem(&long),
            "field `enabled` must be true or false, got string"
        );
    }
}
