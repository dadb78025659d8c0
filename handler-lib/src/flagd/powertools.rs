//! Powertools for AWS Lambda's feature-flags schema (`aws_lambda_powertools.utilities.
//! feature_flags`, matched to 3.37.0): a document of features, each a `default`, an optional
//! `boolean_type` and `rules` whose `conditions` must all hold — read into the same
//! [`Definition`]s as flagd's flags. Each rule is a variant named by the rule, holding its
//! `when_match`; `default` is the variant named `default`. A read goes through the same
//! resolution: `TARGETING_MATCH` (the first rule, in document order, whose conditions hold),
//! `DEFAULT` (none did), `STATIC` (no rules).
//!
//! Validation is Powertools' schema validator, rule for rule, with one deliberate difference:
//! Powertools rejects the whole document when one feature is invalid; here only that feature is
//! rejected (an error naming the feature, rule and condition) and the others load.
//!
//! Conditions compare as Python does (`python`); schedules resolve zones and read the clock as
//! `dateutil` and `datetime` do (`schedule`, `isoformat`). The book's chapter "Powertools
//! documents" (`docs/src/powertools.md`) lists the quirks kept on purpose.
//!
//! ```
//! use std::sync::Arc;
//! use flags::{Context, FlagEntry, Snapshot, Status};
//! use serde_json::json;
//!
//! let document = r#"{
//!   "premium_features": {"default": false, "rules": {"customer tier equals premium": {
//!     "when_match": true, "conditions": [{"action": "EQUALS", "key": "tier", "value": "premium"}]}}},
//!   "checkout_banner": {"default": "standard", "boolean_type": false, "rules": {
//!     "eu storefronts": {"when_match": "eu-banner",
//!       "conditions": [{"action": "STARTSWITH", "key": "storefront", "value": "eu-"}]}}}
//! }"#;
//! let entries = FlagEntry::from_powertools_document("features.json", 1, false, document, None)?;
//! let snapshot = Arc::new(Snapshot::new(1, Status::Ok, entries));
//!
//! let request = json!({"tier": "premium", "storefront": "eu-west"});
//! let ctx_fields = request.as_object().cloned().unwrap_or_default();
//! let ctx = Context::new().with_fields(&ctx_fields);
//! assert!(snapshot.get("premium_features").enabled_for(&ctx));
//! let banner = snapshot.get("checkout_banner").variant_for(&ctx);
//! assert_eq!(banner.value.as_deref(), Some(&json!("eu-banner")));
//! assert_eq!(banner.name.as_deref(), Some("eu storefronts"));
//! assert_eq!(banner.reason.as_str(), "TARGETING_MATCH");
//! // In a handler, with the extension serving the document: `flags::get(name)` alike.
//! let _ = flags::get("premium_features").enabled_for(&ctx);
//! # Ok::<(), flags::Problem>(())
//! ```

mod document;
mod isoformat;
mod python;
mod schedule;

use std::cell::Cell;
use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::DateTime;
use serde_json::Value;

pub(crate) use document::Node;
pub use document::{Envelope, EnvelopeError};
use python::{Cmp, Py};
use schedule::Zone;

use super::{Data, Definition, Parsed};
use crate::error::Problem;

/// The format marker that declares Powertools documents (`app/env/profile#powertools`).
pub const MARKER: &str = "powertools";

/// The name of the variant a feature's `default` is.
pub const DEFAULT_VARIANT: &str = "default";

/// A feature's rules, compiled.
#[derive(Debug, PartialEq)]
pub(crate) struct Feature {
    rules: Box<[Rule]>,
}

#[derive(Debug, PartialEq)]
struct Rule {
    name: Box<str>,
    conditions: Box<[Condition]>,
}

#[derive(Debug, PartialEq)]
enum Condition {
    /// A comparison with the context's value of `key` (a missing key never holds).
    Context { key: Box<str>, test: Test },
    /// `SCHEDULE_BETWEEN_TIME_RANGE`: minutes since midnight.
    TimeRange { zone: Zone, start: u16, end: u16 },
    /// `SCHEDULE_BETWEEN_DATETIME_RANGE`: wall times (`None`: Python cannot read a bound at
    /// evaluation, and the condition never holds).
    DateTimeRange {
        zone: Zone,
        range: Option<(DateTime, DateTime)>,
    },
    /// `SCHEDULE_BETWEEN_DAYS_OF_WEEK`: one bit per weekday.
    Days { zone: Zone, days: u8 },
}

#[derive(Debug, PartialEq)]
enum Test {
    Eq(Value, bool),
    Order(Cmp, Value),
    Affix(Value, bool),
    /// `key in value` (negated with `true`).
    KeyIn(Value, bool),
    /// `value in key` (negated with `true`).
    ValueIn(Value, bool),
    /// `ALL_IN_VALUE`, `ANY_IN_VALUE`, `NONE_IN_VALUE`.
    List(ListTest, Value),
    Modulo {
        base: i128,
        start: i128,
        end: i128,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListTest {
    All,
    Any,
    None,
}

/// Every action Powertools 3.37 knows.
pub const ACTIONS: [&str; 21] = [
    "EQUALS",
    "NOT_EQUALS",
    "KEY_GREATER_THAN_VALUE",
    "KEY_GREATER_THAN_OR_EQUAL_VALUE",
    "KEY_LESS_THAN_VALUE",
    "KEY_LESS_THAN_OR_EQUAL_VALUE",
    "STARTSWITH",
    "ENDSWITH",
    "IN",
    "NOT_IN",
    "KEY_IN_VALUE",
    "KEY_NOT_IN_VALUE",
    "VALUE_IN_KEY",
    "VALUE_NOT_IN_KEY",
    "ALL_IN_VALUE",
    "ANY_IN_VALUE",
    "NONE_IN_VALUE",
    "SCHEDULE_BETWEEN_TIME_RANGE",
    "SCHEDULE_BETWEEN_DATETIME_RANGE",
    "SCHEDULE_BETWEEN_DAYS_OF_WEEK",
    "MODULO_RANGE",
];

/// One evaluation's clock: read once, when a schedule asks.
struct Clock(Cell<Option<Timestamp>>);

impl Clock {
    fn now(&self) -> Timestamp {
        match self.0.get() {
            Some(now) => now,
            None => {
                let now = Timestamp::now();
                self.0.set(Some(now));
                now
            }
        }
    }
}

impl Feature {
    /// Whether the feature has rules (else its resolution is `STATIC`).
    pub(crate) fn has_rules(&self) -> bool {
        !self.rules.is_empty()
    }

    /// Whether a condition reads the clock.
    pub(crate) fn reads_time(&self) -> bool {
        self.rules.iter().any(|rule| {
            rule.conditions
                .iter()
                .any(|c| !matches!(c, Condition::Context { .. }))
        })
    }

    /// The index of the first rule whose conditions all hold.
    #[inline]
    pub(crate) fn matching_rule<D: Data + ?Sized>(&self, data: &D) -> Option<usize> {
        let clock = Clock(Cell::new(None));
        self.rules.iter().position(|rule| {
            rule.conditions
                .iter()
                .all(|condition| condition.holds(data, &clock))
        })
    }

    /// Each rule's conditions as evaluated, in order, up to the first that failed, and up to
    /// the rule that matched (`explain`).
    pub(crate) fn explain<D: Data + ?Sized>(&self, data: &D) -> Vec<(String, bool)> {
        let clock = Clock(Cell::new(None));
        let mut steps = Vec::new();
        for rule in &*self.rules {
            let mut all = true;
            for (at, condition) in rule.conditions.iter().enumerate() {
                let held = condition.holds(data, &clock);
                steps.push((format!("rules.{}.conditions[{at}]", rule.name), held));
                if !held {
                    all = false;
                    break;
                }
            }
            if all {
                break;
            }
        }
        steps
    }
}

impl Condition {
    #[inline]
    fn holds<D: Data + ?Sized>(&self, data: &D, clock: &Clock) -> bool {
        match self {
            Self::Context { key, test } => {
                // The context's own field first (`targetingKey: ""` is a value); a context
                // built with a user id (`Context::user`) answers `targetingKey` with it.
                let found = match data.attribute(key) {
                    None if &**key == "targetingKey" => data.targeting_key(),
                    found => found,
                };
                found.is_some_and(|value| test.holds(Py::of_val(&value)))
            }
            Self::TimeRange { zone, start, end } => zone
                .now(clock.now())
                .is_some_and(|now| schedule::in_time_range(now, *start, *end)),
            Self::DateTimeRange { zone, range } => match (zone.now(clock.now()), range) {
                (Some(now), Some((start, end))) => *start <= now && now <= *end,
                _ => false,
            },
            Self::Days { zone, days } => zone
                .now(clock.now())
                .is_some_and(|now| days & schedule::day_bit(now.weekday()) != 0),
        }
    }
}

impl Test {
    #[inline]
    fn holds(&self, context: Py<'_>) -> bool {
        match self {
            Self::Eq(value, negate) => python::eq(context, Py::of(value)) != *negate,
            Self::Order(op, value) => python::compare(context, *op, Py::of(value)) == Ok(true),
            Self::Affix(value, starts) => {
                python::affix(context, Py::of(value), *starts) == Ok(true)
            }
            Self::KeyIn(value, negate) => {
                python::contains(Py::of(value), context).is_ok_and(|found| found != *negate)
            }
            Self::ValueIn(value, negate) => {
                python::contains(context, Py::of(value)).is_ok_and(|found| found != *negate)
            }
            Self::List(test, value) => {
                let Py::List(items) = context else {
                    return false;
                };
                let listed =
                    |item: &Value| python::contains(Py::of(value), Py::of(item)) == Ok(true);
                match test {
                    ListTest::All => items.iter().all(listed),
                    ListTest::Any => items.iter().any(listed),
                    ListTest::None => !items.iter().any(listed),
                }
            }
            Self::Modulo { base, start, end } => {
                python::modulo_between(context, *base, *start, *end) == Ok(true)
            }
        }
    }
}

/// Why a feature is rejected: where, and what Powertools' validator would say.
fn invalid(field: String, problem: impl Into<String>) -> Problem {
    Problem::Definition {
        field,
        problem: problem.into(),
    }
}

/// Reads a Powertools document (the JSON text of an object of features by name): each feature
/// validated and compiled on its own. A document that is not an object is a [`Problem`].
pub fn parse_document(text: &str) -> Result<Vec<(String, Parsed)>, Problem> {
    let node =
        Node::parse(text).map_err(|e| invalid(String::new(), format!("is not JSON: {e}")))?;
    parse_node(&node)
}

/// The document `text` holds, after `envelope` selected it: an object of features, or why the
/// whole document cannot be read (not JSON, an envelope selecting nothing, not an object).
pub(crate) fn select_document(text: &str, envelope: Option<&Envelope>) -> Result<Node, Problem> {
    let node =
        Node::parse(text).map_err(|e| invalid(String::new(), format!("is not JSON: {e}")))?;
    let node = match envelope {
        Some(envelope) => {
            let selected = envelope.select(&node).map_err(|e| {
                invalid(
                    String::new(),
                    format!("the envelope {:?} failed: {e}", envelope.as_str()),
                )
            })?;
            if selected == Node::Null {
                return Err(invalid(
                    String::new(),
                    format!(
                        "the envelope {:?} selects nothing in this document",
                        envelope.as_str()
                    ),
                ));
            }
            selected
        }
        None => node,
    };
    match node {
        Node::Object(_) => Ok(node),
        other => Err(invalid(
            String::new(),
            format!(
                "a Powertools document must be an object of features by name, got {}",
                other.kind()
            ),
        )),
    }
}

/// A document's features, each with its text (what an invalid entry keeps), after `envelope`
/// selected the document. An envelope selecting nothing (`null`) is an error, as in Powertools.
pub(crate) fn parse_enveloped(
    text: &str,
    envelope: Option<&Envelope>,
) -> Result<Vec<(String, Parsed, String)>, Problem> {
    let node = select_document(text, envelope)?;
    let parsed = parse_node(&node)?;
    let Node::Object(features) = node else {
        return Ok(Vec::new());
    };
    Ok(parsed
        .into_iter()
        .zip(features)
        .map(|((name, parsed), (_, feature))| (name, parsed, feature.to_text()))
        .collect())
}

/// [`parse_document`] over a parsed document.
pub(crate) fn parse_node(document: &Node) -> Result<Vec<(String, Parsed)>, Problem> {
    let Node::Object(features) = document else {
        return Err(invalid(
            String::new(),
            format!(
                "a Powertools document must be an object of features by name, got {}",
                document.kind()
            ),
        ));
    };
    Ok(features
        .iter()
        .map(|(name, feature)| (name.clone(), parse_feature(name, feature).map(Arc::new)))
        .collect())
}

/// One feature: validated as Powertools' `SchemaValidator` validates it, then compiled.
pub(crate) fn parse_feature(name: &str, feature: &Node) -> Result<Definition, Problem> {
    let Node::Object(fields) = feature else {
        return Err(invalid(
            name.to_owned(),
            format!(
                "a feature must be a non-empty object, got {}",
                feature.kind()
            ),
        ));
    };
    if fields.is_empty() {
        return Err(invalid(
            name.to_owned(),
            "a feature must be a non-empty object",
        ));
    }
    let at = |field: &str| format!("{name}.{field}");
    let boolean = feature.get("boolean_type").is_none_or(Node::truthy);
    let default = match feature.get("default") {
        None | Some(Node::Null) => {
            return Err(invalid(at("default"), "is required and must not be null"));
        }
        Some(value @ Node::Bool(_)) => value,
        Some(other) if boolean => {
            return Err(invalid(
                at("default"),
                format!(
                    "must be true or false in a boolean feature, got {} (boolean_type: false allows any value)",
                    other.kind()
                ),
            ));
        }
        Some(other) => other,
    };
    let mut rules = Vec::new();
    let mut variants = Vec::new();
    match feature.get("rules") {
        Some(Node::Object(list)) => {
            for (rule_name, rule) in list {
                let (compiled, when_match) = parse_rule(name, rule_name, rule, boolean)?;
                rules.push(compiled);
                variants.push((rule_name.as_str().into(), when_match));
            }
        }
        // Powertools reads a falsy `rules` as none (a warning).
        Some(other) if other.truthy() => {
            return Err(invalid(
                at("rules"),
                format!("must be an object of rules by name, got {}", other.kind()),
            ));
        }
        _ => {}
    }
    variants.push((DEFAULT_VARIANT.into(), default.to_value()));
    let source = Node::Object(vec![(name.to_owned(), feature.clone())]).to_text();
    Ok(Definition::powertools(
        name,
        variants,
        Feature {
            rules: rules.into_boxed_slice(),
        },
        source,
    ))
}

fn parse_rule(
    feature: &str,
    rule_name: &str,
    rule: &Node,
    boolean: bool,
) -> Result<(Rule, Value), Problem> {
    let at = |field: &str| format!("{feature}.rules.{rule_name}{field}");
    match rule {
        Node::Object(fields) if !fields.is_empty() => {}
        other => {
            return Err(invalid(
                at(""),
                format!("a rule must be a non-empty object, got {}", other.kind()),
            ));
        }
    }
    if rule_name.is_empty() {
        return Err(invalid(at(""), "a rule's name must be a non-empty string"));
    }
    let when_match = rule.get("when_match").unwrap_or(&Node::Null);
    if boolean && !matches!(when_match, Node::Bool(_)) {
        return Err(invalid(
            at(".when_match"),
            format!(
                "must be true or false in a boolean feature, got {}",
                when_match.kind()
            ),
        ));
    }
    let conditions = match rule.get("conditions") {
        Some(Node::Array(items)) if !items.is_empty() => items,
        Some(other) => {
            return Err(invalid(
                at(".conditions"),
                format!(
                    "must be a non-empty array of conditions, got {}",
                    other.kind()
                ),
            ));
        }
        None => {
            return Err(invalid(
                at(".conditions"),
                "is required: a non-empty array of conditions",
            ));
        }
    };
    let conditions = conditions
        .iter()
        .enumerate()
        .map(|(i, c)| parse_condition(&at(&format!(".conditions[{i}]")), c))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((
        Rule {
            name: rule_name.into(),
            conditions: conditions.into_boxed_slice(),
        },
        when_match.to_value(),
    ))
}

fn parse_condition(at: &str, condition: &Node) -> Result<Condition, Problem> {
    let field = |f: &str| format!("{at}.{f}");
    match condition {
        Node::Object(fields) if !fields.is_empty() => {}
        other => {
            return Err(invalid(
                at.to_owned(),
                format!(
                    "a condition must be a non-empty object, got {}",
                    other.kind()
                ),
            ));
        }
    }
    let action = match condition.get("action") {
        Some(Node::String(action)) if ACTIONS.contains(&action.as_str()) => action.as_str(),
        other => {
            return Err(invalid(
                field("action"),
                format!(
                    "must be one of {}, got {}",
                    ACTIONS.join(", "),
                    other.map_or_else(|| "nothing".to_owned(), Node::to_text)
                ),
            ));
        }
    };
    let key = match condition.get("key") {
        Some(Node::String(key)) if !key.is_empty() => key.as_str(),
        _ => return Err(invalid(field("key"), "must be a non-empty string")),
    };
    let schedule_key = match action {
        "SCHEDULE_BETWEEN_TIME_RANGE" => Some("CURRENT_TIME"),
        "SCHEDULE_BETWEEN_DATETIME_RANGE" => Some("CURRENT_DATETIME"),
        "SCHEDULE_BETWEEN_DAYS_OF_WEEK" => Some("CURRENT_DAY_OF_WEEK"),
        _ => None,
    };
    if let Some(expected) = schedule_key
        && key != expected
    {
        return Err(invalid(
            field("key"),
            format!("must be {expected} with the action {action}, got {key:?}"),
        ));
    }
    let value = match condition.get("value") {
        None | Some(Node::Null) => {
            return Err(invalid(field("value"), "is required and must not be null"));
        }
        Some(value) => value.to_value(),
    };
    let bad = |problem: String| invalid(field("value"), problem);
    let context = |test| {
        Ok(Condition::Context {
            key: key.into(),
            test,
        })
    };
    match action {
        "EQUALS" => context(Test::Eq(value, false)),
        "NOT_EQUALS" => context(Test::Eq(value, true)),
        "KEY_GREATER_THAN_VALUE" => context(Test::Order(Cmp::Gt, value)),
        "KEY_GREATER_THAN_OR_EQUAL_VALUE" => context(Test::Order(Cmp::Ge, value)),
        "KEY_LESS_THAN_VALUE" => context(Test::Order(Cmp::Lt, value)),
        "KEY_LESS_THAN_OR_EQUAL_VALUE" => context(Test::Order(Cmp::Le, value)),
        "STARTSWITH" => context(Test::Affix(value, true)),
        "ENDSWITH" => context(Test::Affix(value, false)),
        "IN" | "KEY_IN_VALUE" => context(Test::KeyIn(value, false)),
        "NOT_IN" | "KEY_NOT_IN_VALUE" => context(Test::KeyIn(value, true)),
        "VALUE_IN_KEY" => context(Test::ValueIn(value, false)),
        "VALUE_NOT_IN_KEY" => context(Test::ValueIn(value, true)),
        "ALL_IN_VALUE" | "ANY_IN_VALUE" | "NONE_IN_VALUE" => {
            if !value.is_array() {
                return Err(bad(format!("{action} needs an array value")));
            }
            let test = match action {
                "ALL_IN_VALUE" => ListTest::All,
                "ANY_IN_VALUE" => ListTest::Any,
                _ => ListTest::None,
            };
            context(Test::List(test, value))
        }
        "MODULO_RANGE" => {
            let int = |name: &str| match value.get(name) {
                Some(Value::Bool(b)) => Some(i128::from(*b)),
                Some(Value::Number(n)) => n
                    .as_i64()
                    .map(i128::from)
                    .or_else(|| n.as_u64().map(i128::from)),
                _ => None,
            };
            let shape = "MODULO_RANGE needs an object with integer BASE, START and END";
            if !value.is_object() {
                return Err(bad(shape.into()));
            }
            let (Some(base), Some(start), Some(end)) = (int("BASE"), int("START"), int("END"))
            else {
                return Err(bad(shape.into()));
            };
            if !(0 <= start && start <= end && end < base) {
                return Err(bad(format!(
                    "MODULO_RANGE needs 0 <= START <= END <= BASE-1, got BASE {base}, START {start}, END {end}"
                )));
            }
            context(Test::Modulo { base, start, end })
        }
        "SCHEDULE_BETWEEN_TIME_RANGE" => {
            let Value::Object(map) = &value else {
                return Err(bad(format!("{action} needs an object with START and END")));
            };
            let bound = |name: &str| match map.get(name) {
                None => Ok(None),
                Some(Value::String(text)) => Ok(schedule::hh_mm(text)),
                Some(_) => Err(bad("START and END must be strings".into())),
            };
            let (Some(start), Some(end)) = (bound("START")?, bound("END")?) else {
                return Err(bad(
                    "START and END must be times written HH:MM (24-hour)".into()
                ));
            };
            let zone = zone(map).map_err(bad)?;
            Ok(Condition::TimeRange { zone, start, end })
        }
        "SCHEDULE_BETWEEN_DATETIME_RANGE" => {
            let Value::Object(map) = &value else {
                return Err(bad(format!("{action} needs an object with START and END")));
            };
            let mut bounds = Vec::with_capacity(2);
            for name in ["START", "END"] {
                let text = match map.get(name) {
                    None => "",
                    Some(Value::String(text)) => text.as_str(),
                    Some(_) => return Err(bad("START and END must be strings".into())),
                };
                // Validation reads `Z` as `+00:00`; evaluation reads the text as written.
                match isoformat::parse(&text.replace('Z', "+00:00")) {
                    None => {
                        return Err(bad(format!(
                            "{name} {text:?} is not an ISO 8601 date-time Python's datetime.fromisoformat reads"
                        )));
                    }
                    Some(parsed) if parsed.has_offset => {
                        return Err(bad(format!(
                            "{name} {text:?} must not carry an offset: set TIMEZONE instead"
                        )));
                    }
                    Some(_) => bounds.push(isoformat::parse(text)),
                }
            }
            let zone = zone(map).map_err(bad)?;
            let range = match bounds.as_slice() {
                [Some(start), Some(end)] if !start.has_offset && !end.has_offset => {
                    Some((start.datetime, end.datetime))
                }
                _ => None,
            };
            Ok(Condition::DateTimeRange { zone, range })
        }
        "SCHEDULE_BETWEEN_DAYS_OF_WEEK" => {
            let shape = "SCHEDULE_BETWEEN_DAYS_OF_WEEK needs an object with DAYS (a list of MONDAY … SUNDAY) and an optional TIMEZONE";
            let Value::Object(map) = &value else {
                return Err(bad(shape.into()));
            };
            let Some(Value::Array(days)) = map.get("DAYS") else {
                return Err(bad(shape.into()));
            };
            let mut bits = 0u8;
            for day in days {
                // Powertools' list of day names holds `DAYS` too (its enum's member): valid,
                // never today.
                let found = day.as_str().and_then(|name| match name {
                    "DAYS" => Some(0),
                    _ => schedule::DAYS
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, d)| schedule::day_bit(*d)),
                });
                match found {
                    Some(bit) => bits |= bit,
                    None => {
                        return Err(bad(format!(
                            "DAYS holds {day}, not a day of the week (MONDAY … SUNDAY)"
                        )));
                    }
                }
            }
            let zone = zone(map).map_err(bad)?;
            Ok(Condition::Days { zone, days: bits })
        }
        // Every action is one of the above (checked against ACTIONS).
        _ => Err(bad(format!("unknown action {action}"))),
    }
}

/// A schedule's zone: validated as Powertools validates `TIMEZONE` (a falsy value reads as
/// `UTC`), resolved as its evaluation resolves it.
fn zone(value: &serde_json::Map<String, Value>) -> Result<Zone, String> {
    schedule::zone_of(value.get("TIMEZONE"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn features(document: Value) -> Vec<(String, Parsed)> {
        parse_document(&document.to_string()).expect("a document")
    }

    fn evaluate(definition: &Definition, context: &Value) -> (Option<Value>, &'static str) {
        let map = context.as_object().cloned().unwrap_or_default();
        let ctx = crate::eval::Context::new().with_fields(&map);
        let resolution = definition.resolve(&ctx);
        (
            resolution.variant.map(|(_, v)| v.clone()),
            resolution.reason.as_str(),
        )
    }

    #[test]
    fn rules_apply_in_document_order_and_the_reason_says_which() {
        let text = r#"{"premium": {"default": false, "rules": {
            "z first": {"when_match": true, "conditions": [{"action": "EQUALS", "key": "tier", "value": "premium"}]},
            "a second": {"when_match": false, "conditions": [{"action": "STARTSWITH", "key": "tier", "value": "prem"}]}}},
            "plain": {"default": true}}"#;
        let parsed = parse_document(text).expect("document");
        let premium = parsed[0].1.as_ref().expect("valid");
        let (value, reason) = evaluate(premium, &json!({"tier": "premium"}));
        assert_eq!((value, reason), (Some(json!(true)), "TARGETING_MATCH"));
        assert_eq!(
            premium
                .resolve(
                    &crate::eval::Context::new()
                        .with_fields(json!({"tier": "premium"}).as_object().expect("object"))
                )
                .variant
                .map(|(name, _)| name),
            Some("z first")
        );
        assert_eq!(
            evaluate(premium, &json!({"tier": "prem"})).0,
            Some(json!(false))
        );
        assert_eq!(
            evaluate(premium, &json!({})),
            (Some(json!(false)), "DEFAULT")
        );
        let plain = parsed[1].1.as_ref().expect("valid");
        assert_eq!(evaluate(plain, &json!({})), (Some(json!(true)), "STATIC"));
    }

    #[test]
    fn one_invalid_feature_is_rejected_alone_and_named() {
        let parsed = features(json!({
            "good": {"default": 1, "boolean_type": false},
            "no-default": {"rules": {}},
            "bad-action": {"default": true, "rules": {"r": {"when_match": true,
                "conditions": [{"action": "LIKE", "key": "k", "value": 1}]}}},
            "bad-modulo": {"default": true, "rules": {"r": {"when_match": true,
                "conditions": [{"action": "MODULO_RANGE", "key": "k", "value": {"BASE": 3, "START": 2, "END": 3}}]}}},
            "bad-time": {"default": true, "rules": {"r": {"when_match": true,
                "conditions": [{"action": "SCHEDULE_BETWEEN_TIME_RANGE", "key": "CURRENT_TIME", "value": {"START": "7:00", "END": "09:00"}}]}}},
        }));
        let errors: Vec<(String, String)> = parsed
            .iter()
            .filter_map(|(name, p)| p.as_ref().err().map(|e| (name.clone(), e.to_string())))
            .collect();
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(parsed.iter().any(|(n, p)| n == "good" && p.is_ok()));
        let of = |name: &str| {
            errors
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, e)| e.clone())
                .unwrap_or_default()
        };
        assert!(
            of("no-default").contains("no-default.default"),
            "{}",
            of("no-default")
        );
        assert!(
            of("bad-action").contains("bad-action.rules.r.conditions[0].action"),
            "{}",
            of("bad-action")
        );
        assert!(of("bad-modulo").contains("0 <= START <= END <= BASE-1"));
        assert!(of("bad-time").contains("HH:MM"));
    }

    #[test]
    fn schedules_hold_now_in_their_zone() {
        let now = jiff::tz::TimeZone::UTC.to_datetime(Timestamp::now());
        let today = schedule::DAYS
            .iter()
            .find(|(_, d)| *d == now.weekday())
            .map(|(n, _)| *n)
            .unwrap_or_default();
        let parsed = features(json!({
            "weekday": {"default": false, "rules": {"today": {"when_match": true, "conditions": [
                {"action": "SCHEDULE_BETWEEN_DAYS_OF_WEEK", "key": "CURRENT_DAY_OF_WEEK",
                 "value": {"DAYS": [today], "TIMEZONE": "UTC"}}]}}},
            "all-day": {"default": false, "rules": {"always": {"when_match": true, "conditions": [
                {"action": "SCHEDULE_BETWEEN_TIME_RANGE", "key": "CURRENT_TIME",
                 "value": {"START": "00:00", "END": "23:59", "TIMEZONE": "Asia/Kolkata"}}]}}},
            "this-century": {"default": false, "rules": {"c": {"when_match": true, "conditions": [
                {"action": "SCHEDULE_BETWEEN_DATETIME_RANGE", "key": "CURRENT_DATETIME",
                 "value": {"START": "2000-01-01", "END": "2099-12-31T23:59:59"}}]}}},
        }));
        for (name, parsed) in &parsed {
            let definition = parsed.as_ref().expect("valid");
            // Near midnight UTC the day may turn between the two reads.
            if name == "weekday" && now.hour() == 23 && now.minute() == 59 {
                continue;
            }
            assert_eq!(
                evaluate(definition, &json!({})).0,
                Some(json!(true)),
                "{name}"
            );
        }
    }

    #[test]
    fn missing_keys_never_hold_and_python_exceptions_are_false() {
        let parsed = features(json!({
            "not-equals": {"default": false, "rules": {"r": {"when_match": true, "conditions": [
                {"action": "NOT_EQUALS", "key": "tier", "value": "free"}]}}},
            "not-in": {"default": false, "rules": {"r": {"when_match": true, "conditions": [
                {"action": "NOT_IN", "key": "tier", "value": 5}]}}},
        }));
        let not_equals = parsed[0].1.as_ref().expect("valid");
        assert_eq!(evaluate(not_equals, &json!({})).0, Some(json!(false)));
        assert_eq!(
            evaluate(not_equals, &json!({"tier": null})).0,
            Some(json!(true))
        );
        let not_in = parsed[1].1.as_ref().expect("valid");
        assert_eq!(
            evaluate(not_in, &json!({"tier": "x"})).0,
            Some(json!(false)),
            "TypeError"
        );
    }

    #[test]
    fn the_reviews_edge_cases_answer_as_powertools() {
        let parsed = features(json!({
            "empty-key": {"default": false, "rules": {"r": {"when_match": true, "conditions": [
                {"action": "EQUALS", "key": "targetingKey", "value": ""}]}}},
            "days-member": {"default": false, "rules": {"r": {"when_match": true, "conditions": [
                {"action": "SCHEDULE_BETWEEN_DAYS_OF_WEEK", "key": "CURRENT_DAY_OF_WEEK",
                 "value": {"DAYS": ["DAYS"]}}]}}},
            "big-base": {"default": false, "rules": {"r": {"when_match": true, "conditions": [
                {"action": "MODULO_RANGE", "key": "uid",
                 "value": {"BASE": 10_000_000_000_000_000_000_u64, "START": 0, "END": 5}}]}}},
            "huge-zone": {"default": false, "rules": {"r": {"when_match": true, "conditions": [
                {"action": "SCHEDULE_BETWEEN_TIME_RANGE", "key": "CURRENT_TIME",
                 "value": {"START": "00:00", "END": "23:59", "TIMEZONE": "UTC+3:999999999999999999"}}]}}},
        }));
        let get = |name: &str| {
            parsed
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, p)| p.as_ref().map_err(ToString::to_string))
        };
        // A `targetingKey` field holding "" is a value, as in Python.
        let empty = get("empty-key").and_then(Result::ok).expect("valid");
        assert_eq!(
            evaluate(empty, &json!({"targetingKey": ""})).0,
            Some(json!(true))
        );
        assert_eq!(evaluate(empty, &json!({})).0, Some(json!(false)));
        // `DAYS` is a name Powertools' validator accepts; it is never today.
        let days = get("days-member").and_then(Result::ok).expect("valid");
        assert_eq!(evaluate(days, &json!({})).0, Some(json!(false)));
        let big = get("big-base")
            .and_then(Result::ok)
            .expect("a u64 BASE is an integer");
        assert_eq!(evaluate(big, &json!({"uid": 3})).0, Some(json!(true)));
        // A TZ string whose numbers overflow is refused, not a panic.
        assert!(get("huge-zone").is_some_and(|p| p.is_err()));
    }

    #[test]
    fn a_large_object_is_indexed_and_a_repeated_key_keeps_its_last_value() {
        let mut text = String::from("{");
        for i in 0..100_000 {
            text.push_str(&format!("\"t-{i}\": {i},"));
        }
        text.push_str("\"t-5\": -1}");
        let node = Node::parse(&text).expect("json");
        let Node::Object(fields) = &node else {
            panic!("an object");
        };
        assert_eq!(fields.len(), 100_000);
        assert_eq!(node.get("t-5"), Some(&Node::Number((-1).into())));
        assert_eq!(fields[5].0, "t-5", "a repeated key keeps its first place");
    }
}
