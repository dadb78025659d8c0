//! How flags are shown: their kind and state in a word, values with secrets masked, tables for
//! people and JSON for scripts.

use comfy_table::{Table, presets};
use flags::{FlagEntry, FlagValue, JsonFlag, Rules};
use serde::Serialize;

/// What stands for a SecureString's value wherever values are shown.
pub const HIDDEN: &str = "(SecureString: not shown)";

/// A table with a header and no borders: columns line up, lines stay greppable.
pub fn table<I, S>(header: I) -> Table
where
    I: IntoIterator<Item = S>,
    S: Into<comfy_table::Cell>,
{
    let mut table = Table::new();
    table.load_preset(presets::NOTHING).set_header(header);
    table
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &impl Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(error) => eprintln!("ssm-flags-ctl: cannot encode the answer as JSON: {error}"),
    }
}

/// The kind of a flag in a word: `boolean`, `json`, `list`, `text`, `flagd` or `invalid`.
pub fn kind(entry: &FlagEntry) -> &'static str {
    match entry.value() {
        Ok(value) => value_kind(value),
        Err(_) => "invalid",
    }
}

/// The kind of a parsed value in a word.
pub fn value_kind(value: &FlagValue) -> &'static str {
    match value {
        FlagValue::Bool(_) => "boolean",
        FlagValue::Json(_) => "json",
        FlagValue::List(_) => "list",
        FlagValue::Text(_) => "text",
        FlagValue::Flagd(_) => "flagd",
    }
}

/// The state of a flag in a few words: `on`, `off`, `25%`, `rules: …`, `value`, `invalid`.
pub fn state(entry: &FlagEntry) -> String {
    match entry.value() {
        Ok(FlagValue::Bool(true)) => "on".to_owned(),
        Ok(FlagValue::Bool(false)) => "off".to_owned(),
        Ok(FlagValue::Json(flag)) => json_state(flag, entry.is_secure()),
        Ok(FlagValue::List(items)) => format!("value ({} items)", items.len()),
        Ok(FlagValue::Text(_)) => "value".to_owned(),
        Ok(FlagValue::Flagd(definition)) => flagd_state(definition),
        Err(_) => "INVALID (reads as its default)".to_owned(),
    }
}

/// A flagd flag's state: `disabled`, or its default variant and whether targeting may choose
/// another (variant names only: never a value).
fn flagd_state(definition: &flags::flagd::Definition) -> String {
    if !definition.is_enabled() {
        return "disabled".to_owned();
    }
    let default = definition.default_variant().unwrap_or("(caller's default)");
    match definition.is_constant() {
        true => format!("variant {default}"),
        false => format!("targeting, else variant {default}"),
    }
}

/// A secure flag's state never names the values in its rules (regions): only how many.
fn json_state(flag: &JsonFlag, secure: bool) -> String {
    let rules: &Rules = flag.rules();
    if !rules.enabled {
        return "off".to_owned();
    }
    let mut parts = Vec::new();
    if let Some(regions) = &rules.allowed_regions {
        parts.push(match secure {
            true => format!("{} regions", regions.len()),
            false => format!("regions {}", regions.join(",")),
        });
    }
    if let Some(users) = &rules.allowed_user_ids {
        parts.push(format!("{} allowed users", users.len()));
    }
    if let Some(attributes) = &rules.allowed_attributes {
        let names: Vec<&str> = attributes.iter().map(|(name, _)| name.as_str()).collect();
        parts.push(format!("attributes {}", names.join(",")));
    }
    if let Some(excluded) = &rules.excluded_user_ids {
        parts.push(format!("{} excluded", excluded.len()));
    }
    let rollout = rules.rollout_percentage.map(percent);
    match (rollout, parts.is_empty()) {
        (None, true) => "on".to_owned(),
        (Some(p), true) => p,
        (rollout, false) => {
            let mut all: Vec<String> = rollout.into_iter().collect();
            all.extend(parts);
            format!("rules: {}", all.join(", "))
        }
    }
}

/// `25%`, `12.5%`.
pub fn percent(p: f64) -> String {
    format!("{p}%")
}

/// A flag's value as shown to a person: the raw text, or [`HIDDEN`].
pub fn shown(raw: &str, secure: bool) -> String {
    if secure {
        HIDDEN.to_owned()
    } else {
        raw.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flags::{Parameter, ParameterKind};

    fn entry(raw: &str) -> FlagEntry {
        FlagEntry::from_parameter(&Parameter {
            flag: "f".into(),
            name: "/p/f".into(),
            kind: ParameterKind::String,
            value: raw.into(),
            version: 1,
        })
    }

    #[test]
    fn states_read_as_an_operator_says_them() {
        assert_eq!(state(&entry("true")), "on");
        assert_eq!(state(&entry("false")), "off");
        assert_eq!(
            state(&entry(r#"{"enabled": false, "rollout_percentage": 50}"#)),
            "off"
        );
        assert_eq!(state(&entry(r#"{"enabled": true}"#)), "on");
        assert_eq!(
            state(&entry(r#"{"enabled": true, "rollout_percentage": 12.5}"#)),
            "12.5%"
        );
        assert_eq!(
            state(&entry(
                r#"{"enabled": true, "rollout_percentage": 25, "allowed_regions": ["us-east-1"], "excluded_user_ids": ["a", "b"]}"#
            )),
            "rules: 25%, regions us-east-1, 2 excluded"
        );
        assert_eq!(state(&entry("https://x")), "value");
        assert!(state(&entry("{oops")).starts_with("INVALID"));
        assert_eq!(kind(&entry("{oops")), "invalid");
        assert_eq!(kind(&entry("true")), "boolean");
    }
}
