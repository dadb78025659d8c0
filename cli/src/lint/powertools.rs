//! Findings about Powertools features that load. A feature Powertools' schema validator rejects
//! is already an error naming its feature, rule and condition (the entry is invalid, read by
//! `flags` with the validator's rules); these are the warnings on valid ones: what Powertools
//! itself warns about, and what loads but cannot mean what it says.

use flags::flagd::Definition;
use serde_json::Value;

use super::Severity;

/// The warnings about one valid Powertools feature: severity, field, message.
pub(super) fn findings(definition: &Definition) -> Vec<(Severity, Option<String>, String)> {
    let name = definition.key();
    let Some(feature) = serde_json::from_str::<Value>(definition.source())
        .ok()
        .and_then(|document| document.get(name).cloned())
    else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut warn = |field: String, message: String| {
        found.push((Severity::Warning, Some(field), message));
    };
    match feature.get("boolean_type") {
        None | Some(Value::Bool(_)) => {}
        Some(other) => warn(
            format!("{name}.boolean_type"),
            format!(
                "is {other}: Powertools reads its truthiness (the feature is {}); write true or false",
                if truthy(other) {
                    "boolean"
                } else {
                    "non-boolean"
                }
            ),
        ),
    }
    match feature.get("rules") {
        Some(Value::Object(rules)) if rules.is_empty() => warn(
            format!("{name}.rules"),
            "is empty: the feature always answers its default (Powertools warns the same)".into(),
        ),
        Some(Value::Object(_)) | None => {}
        Some(other) => warn(
            format!("{name}.rules"),
            format!(
                "is {other}, read as no rules: the feature always answers its default (Powertools warns the same)"
            ),
        ),
    }
    let rules = feature
        .get("rules")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (rule, body) in &rules {
        let conditions = body
            .get("conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (i, condition) in conditions.iter().enumerate() {
            let at = format!("{name}.rules.{rule}.conditions[{i}].value");
            let action = condition["action"].as_str().unwrap_or_default();
            let value = &condition["value"];
            if action.starts_with("SCHEDULE_") {
                let meaning = match value.get("TIMEZONE") {
                    Some(Value::String(zone)) if !zone.is_empty() => None,
                    None => None,
                    Some(Value::String(_) | Value::Null) => {
                        Some("the host's local zone (TZ; UTC on Lambda)")
                    }
                    Some(Value::Bool(false) | Value::Number(_)) => Some(
                        "the host's zone where TZ is set (UTC on Lambda), and where it is not, the rule never holds",
                    ),
                    Some(_) => Some("an error in Python at every evaluation: the rule never holds"),
                };
                if let Some(meaning) = meaning {
                    warn(
                        format!("{at}.TIMEZONE"),
                        format!(
                            "is {}: Powertools validates it as UTC but evaluates it as {meaning}; write \"UTC\" or leave it out",
                            value["TIMEZONE"]
                        ),
                    );
                }
            }
            match action {
                "SCHEDULE_BETWEEN_TIME_RANGE" if value["START"] == value["END"] => warn(
                    at,
                    format!(
                        "START and END are both {}: the rule holds during that one minute only",
                        value["START"]
                    ),
                ),
                "SCHEDULE_BETWEEN_DATETIME_RANGE"
                    if ["START", "END"]
                        .iter()
                        .any(|b| value[*b].as_str().is_some_and(|t| t.contains('Z'))) =>
                {
                    warn(
                        at,
                        "a bound holds `Z`: Powertools validates it read as +00:00 but evaluates the text as written, which Python cannot read: the rule never holds".into(),
                    );
                }
                "SCHEDULE_BETWEEN_DATETIME_RANGE" => {
                    if let (Some(start), Some(end)) =
                        (value["START"].as_str(), value["END"].as_str())
                        && start.len() == end.len()
                        && start > end
                    {
                        warn(
                            at,
                            format!("START {start:?} is after END {end:?}: the rule never holds"),
                        );
                    }
                }
                "SCHEDULE_BETWEEN_DAYS_OF_WEEK"
                    if value["DAYS"].as_array().is_some_and(Vec::is_empty) =>
                {
                    warn(at, "DAYS is empty: the rule never holds".into());
                }
                _ => {}
            }
        }
    }
    found
}

/// Python's truthiness of a JSON value.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}
