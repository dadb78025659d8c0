//! Changing a flagd flag: `set`, `kill` and `ramp` on a flag defined by a parameter of its own
//! (a single flag object) or inside a document parameter (`{"flags": {…}}`) under a path
//! marked `#flagd`. A flag inside a document is changed in its entry alone: every other byte of
//! the document stays as stored, so another flag's definition, the `$evaluators` and the
//! metadata are untouched. SSM has no conditional write: after writing, the version written must
//! be the one read + 1, else someone else wrote the document in between and the change is
//! reported as a concurrent edit (exit 1), naming both versions.

use flags::{Bucketing, FlagPath, Format};
use serde_json::Value;

use crate::change::{self, FieldChange};
use crate::edit;
use crate::error::{CtlError, Outcome};
use crate::output;
use crate::param::{self, Stored};

/// Where a flagd flag is defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The parameter holding it (a document, or the flag's own).
    pub parameter: String,
    /// The flag's key (its name).
    pub key: String,
    /// Inside a document (`flags.<key>`), or the whole parameter.
    pub in_document: bool,
    /// How the source buckets it.
    pub bucketing: Bucketing,
}

/// The flagd flag `flag` (a name under `path`, or a parameter's full name) of a path read as
/// flagd; `None` when the path is not marked flagd, or defines no such flagd flag.
pub async fn locate(
    aws: &crate::aws::Aws,
    path: Option<&FlagPath>,
    format: Format,
    flag: &str,
) -> Result<Option<Target>, CtlError> {
    let (Some(path), Format::Flagd(bucketing)) = (path, format) else {
        return Ok(None);
    };
    let spec = crate::sources::Spec::Path(path.clone(), format);
    let loaded = crate::sources::load(aws, &spec, false).await?;
    let key = path.flag_name(flag).unwrap_or(flag);
    let Some(found) = loaded.flags.get(key) else {
        return Ok(None);
    };
    let is_flagd = matches!(found.entry.value(), Ok(flags::FlagValue::Flagd(_)))
        || (found.entry.value().is_err() && (found.in_document || found.raw.contains("state")));
    Ok(is_flagd.then(|| Target {
        parameter: found.parameter.clone(),
        key: key.to_owned(),
        in_document: found.in_document,
        bucketing,
    }))
}

/// The flag's definition in the parameter's value `raw`.
pub fn definition(raw: &str, target: &Target) -> Result<Value, CtlError> {
    let value: Value = serde_json::from_str(raw)
        .map_err(|e| CtlError::refused(format!("{} is not JSON: {e}", target.parameter)))?;
    let flag = match target.in_document {
        true => value.get("flags").and_then(|f| f.get(&target.key)).cloned(),
        false => Some(value),
    };
    match flag {
        Some(flag @ Value::Object(_)) => Ok(flag),
        _ => Err(CtlError::refused(format!(
            "{} does not define the flag {:?} as an object",
            target.parameter, target.key
        ))),
    }
}

/// `raw` with the flag's definition replaced by `flag`: in a document only the bytes of
/// `flags.<key>` change; a parameter of its own is the definition.
pub fn replaced(raw: &str, target: &Target, flag: &Value) -> Result<String, CtlError> {
    let text = serde_json::to_string(flag).unwrap_or_default();
    if !target.in_document {
        return Ok(text);
    }
    let refuse = |e: edit::EditError| CtlError::refused(format!("{}: {e}", target.parameter));
    let top = edit::fields(raw).map_err(refuse)?;
    let Some(flags_field) = top.iter().rev().find(|f| f.key == "flags") else {
        return Err(CtlError::refused(format!(
            "{} has no `flags` object",
            target.parameter
        )));
    };
    let inner = &raw[flags_field.value.clone()];
    let edited = edit::set_field(inner, &target.key, &text).map_err(refuse)?;
    let mut out = raw.to_owned();
    out.replace_range(flags_field.value.clone(), &edited);
    Ok(out)
}

/// Parses the new value as the extension will: the flag must load; in a document, every flag
/// that loaded before still does.
fn validate(old_raw: &str, new_raw: &str, target: &Target) -> Result<(), CtlError> {
    let read = |raw: &str| -> Result<Vec<flags::FlagEntry>, String> {
        let value: Value = serde_json::from_str(raw).map_err(|e| e.to_string())?;
        if target.in_document {
            flags::FlagEntry::from_flagd_document(
                &target.parameter,
                0,
                false,
                &value,
                target.bucketing,
            )
            .map_err(|p| p.to_string())
        } else {
            flags::flagd::parse_flag(&target.key, &value, target.bucketing)
                .map(|_| Vec::new())
                .map_err(|p| format!("{}: {p}", target.parameter))
        }
    };
    let refuse = |why: String| {
        CtlError::refused(format!(
            "the new definition of {} is invalid: {why}; SSM is unchanged",
            target.key
        ))
    };
    let new = read(new_raw).map_err(refuse)?;
    if !target.in_document {
        return Ok(());
    }
    let old = read(old_raw).unwrap_or_default();
    for entry in &new {
        let Err(error) = entry.value() else { continue };
        let was_valid = old
            .iter()
            .any(|o| o.name() == entry.name() && o.value().is_ok());
        if entry.name() == target.key || was_valid {
            return Err(refuse(error.to_string()));
        }
    }
    Ok(())
}

/// Refuses a change of the variants' type (boolean → string, say) unless `allowed`: code
/// already running asks for the old type and would read `TYPE_MISMATCH`, its default.
fn check_kind(old: &Value, new: &Value, target: &Target, allowed: bool) -> Result<(), CtlError> {
    let kind = |flag: &Value| {
        flags::flagd::parse_flag(&target.key, flag, target.bucketing)
            .ok()
            .and_then(|d| d.kind())
    };
    match (kind(old), kind(new)) {
        (Some(from), Some(to)) if from != to && !allowed => Err(CtlError::refused(format!(
            "{}'s variants are {from:?} and the new ones {to:?}: code already running asks for the old type and would read TYPE_MISMATCH (its default). Create a new flag ({}-v2) and move readers to it, or pass --change-kind if every reader is ready; SSM is unchanged",
            target.key, target.key
        ))),
        _ => Ok(()),
    }
}

/// Validates a definition for a flag of its own about to be created or replaced under a flagd
/// path: it must load as the extension reads it.
pub fn check_new(key: &str, text: &str, bucketing: Bucketing) -> Result<(), CtlError> {
    let flag = parse_definition(text, key)?;
    flags::flagd::parse_flag(key, &flag, bucketing)
        .map(|_| ())
        .map_err(|problem| {
            CtlError::refused(format!(
                "the new definition of {key} is invalid: {problem}; SSM is unchanged"
            ))
        })
}

/// What a change is called in its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `set`.
    Set,
    /// `kill`.
    Kill,
}

/// Validates and writes `new_flag` as the flag's definition, showing the change field by field;
/// after the write, checks the version is the one read + 1 (else: a concurrent edit, exit 1).
/// `undo` is printed after a write.
pub async fn write(
    ssm: &aws_sdk_ssm::Client,
    stored: &Stored,
    target: &Target,
    new_flag: &Value,
    action: Action,
    options: change::Options,
    undo: Option<String>,
) -> Outcome {
    let old_flag = definition(&stored.value, target)?;
    let new_raw = replaced(&stored.value, target, new_flag)?;
    validate(&stored.value, &new_raw, target)?;
    check_kind(&old_flag, new_flag, target, options.change_kind)?;
    let secure = stored.is_secure();
    let rows = field_rows(&old_flag, new_flag, secure);
    let unchanged = old_flag == *new_flag;
    let new_version = if options.dry_run || unchanged {
        None
    } else {
        Some(param::overwrite(ssm, stored, &new_raw).await?)
    };
    let concurrent = new_version.filter(|v| *v != stored.meta.version + 1);
    let action_name = match action {
        Action::Set => "set",
        Action::Kill => "kill",
    };
    if options.json {
        output::print_json(&serde_json::json!({
            "parameter": stored.name, "flag": target.key, "in_document": target.in_document,
            "action": action_name, "dry_run": options.dry_run,
            "old_version": stored.meta.version, "new_version": new_version,
            "changes": rows, "concurrent_edit": concurrent.is_some(),
        }));
    } else {
        let place = match target.in_document {
            true => format!("{} in document {}", target.key, stored.name),
            false => stored.name.clone(),
        };
        println!("{place} (flagd, version {})", stored.meta.version);
        change::print_rows(&rows);
        match new_version {
            _ if unchanged => {
                println!("unchanged: the definition is already this; nothing written")
            }
            None => println!("dry run: valid, nothing written"),
            Some(version) => {
                println!("written: version {version}");
                if let Some(undo) = &undo {
                    println!("undo: {undo}");
                }
            }
        }
    }
    if let Some(version) = concurrent {
        return Err(CtlError::Stopped(format!(
            "concurrent edit: {} was at version {} when read, and this write made version {version}: someone else wrote it in between, and this write (the whole document) replaced theirs. Check `ssm-flags-ctl history {}` and redo their change",
            stored.name, stored.meta.version, stored.name
        )));
    }
    Ok(false)
}

/// The definition's top-level fields side by side (each as compact JSON; secure ones masked).
fn field_rows(old: &Value, new: &Value, secure: bool) -> Vec<FieldChange> {
    let text = |v: &Value| serde_json::to_string(v).unwrap_or_default();
    let (old, new) = (text(old), text(new));
    change::compare(Some(&old), Some(&new), secure)
}

/// A kill: `defaultVariant` set to the off variant and `targeting` removed. The off variant is
/// `variant` if given, else a boolean flag's `false` variant; a flag with no such variant, or
/// a named one it does not have, is refused.
pub fn killed(flag: &Value, variant: Option<&str>, key: &str) -> Result<Value, CtlError> {
    let variants = flag
        .get("variants")
        .and_then(Value::as_object)
        .ok_or_else(|| CtlError::refused(format!("{key} has no `variants`")))?;
    let off = match variant {
        Some(name) if variants.contains_key(name) => name.to_owned(),
        Some(name) => {
            let names: Vec<&str> = variants.keys().map(String::as_str).collect();
            return Err(CtlError::refused(format!(
                "{key} has no variant {name:?} (it has {})",
                names.join(", ")
            )));
        }
        None => match variants.iter().find(|(_, v)| **v == Value::Bool(false)) {
            Some((name, _)) => name.clone(),
            None => {
                return Err(CtlError::refused(format!(
                    "{key} has no `false` variant: name the variant that turns it off with --variant"
                )));
            }
        },
    };
    let mut killed = flag.clone();
    if let Some(object) = killed.as_object_mut() {
        object.insert("defaultVariant".into(), Value::String(off));
        object.remove("targeting");
    }
    Ok(killed)
}

/// The only `fractional` of a flag's targeting, by its path of keys and indexes; refused when
/// there is none or more than one (naming the count).
fn only_fractional(flag: &Value, key: &str) -> Result<Vec<PathStep>, CtlError> {
    fractional_path(flag).map_err(|missing| {
        CtlError::refused(match missing {
            NoFractional::SharedEvaluator => format!(
                "{key}'s targeting uses a shared evaluator ($ref): a ramp edits the flag's own targeting only, and cannot count the `fractional` operators an evaluator holds"
            ),
            NoFractional::Count(n) => format!(
                "{key}'s targeting holds {n} `fractional` operators: a ramp changes one variant's weight only where there is exactly one"
            ),
        })
    })
}

/// Why a targeting has no single `fractional` to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NoFractional {
    /// It uses a shared evaluator (`$ref`), which may hold (another) `fractional`: the count
    /// would be a guess.
    SharedEvaluator,
    /// It holds this many (not one).
    Count(usize),
}

/// The path of the only `fractional` of a flag's targeting.
fn fractional_path(flag: &Value) -> Result<Vec<PathStep>, NoFractional> {
    let mut found = Vec::new();
    if let Some(targeting) = flag.get("targeting") {
        if targeting.to_string().contains("\"$ref\"") {
            return Err(NoFractional::SharedEvaluator);
        }
        let mut path = vec![PathStep::Key("targeting".into())];
        collect_fractionals(targeting, &mut path, &mut found);
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        n => Err(NoFractional::Count(n)),
    }
}

/// The split a flag's only `fractional` configures: each variant with its weight (summed over
/// its buckets), in the order the buckets name them. `Err` says why there is no single split to
/// read: no `fractional` or several, a shared evaluator (`$ref`), a weight that is not a whole
/// number (the evaluator ignores such a bucket).
pub fn split_weights(flag: &Value, key: &str) -> Result<Vec<(String, u64)>, String> {
    let path = fractional_path(flag).map_err(|missing| match missing {
        NoFractional::SharedEvaluator => format!(
            "{key}'s targeting uses a shared evaluator ($ref), which may hold `fractional` operators of its own"
        ),
        NoFractional::Count(n) => {
            format!("{key}'s targeting holds {n} `fractional` operators, not exactly one")
        }
    })?;
    let mut flag = flag.clone();
    let args = at_mut(&mut flag, &path)
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    let buckets = buckets(&args, key).map_err(|e| match e {
        CtlError::Refused(why) => why,
        other => other.to_string(),
    })?;
    let mut weights: Vec<(String, u64)> = Vec::new();
    for (_, name, weight) in buckets {
        match weights.iter_mut().find(|(n, _)| *n == name) {
            Some((_, total)) => *total += weight,
            None => weights.push((name, weight)),
        }
    }
    Ok(weights)
}

/// One step of a path into a JSON value.
#[derive(Debug, Clone)]
enum PathStep {
    Key(String),
    Index(usize),
}

fn collect_fractionals(value: &Value, path: &mut Vec<PathStep>, found: &mut Vec<Vec<PathStep>>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                path.push(PathStep::Key(k.clone()));
                if k == "fractional" {
                    found.push(path.clone());
                }
                collect_fractionals(v, path, found);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                path.push(PathStep::Index(i));
                collect_fractionals(v, path, found);
                path.pop();
            }
        }
        _ => {}
    }
}

fn at_mut<'v>(value: &'v mut Value, path: &[PathStep]) -> Option<&'v mut Value> {
    path.iter().try_fold(value, |at, step| match step {
        PathStep::Key(k) => at.get_mut(k.as_str()),
        PathStep::Index(i) => at.get_mut(*i),
    })
}

/// The buckets (`[variant, weight]`) of a fractional's arguments, by index in them; a weight
/// that is not a whole number is refused (it could not be rescaled to a total of 100).
fn buckets(args: &[Value], key: &str) -> Result<Vec<(usize, String, u64)>, CtlError> {
    let mut buckets = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        let Some(items) = arg.as_array() else {
            continue;
        };
        let Some(name) = items.first().and_then(Value::as_str) else {
            continue;
        };
        let weight = match items.get(1) {
            None => 1,
            Some(w) => w.as_u64().ok_or_else(|| {
                CtlError::refused(format!(
                    "{key}'s fractional weight {w} for {name:?} is not a whole number"
                ))
            })?,
        };
        buckets.push((i, name.to_owned(), weight));
    }
    Ok(buckets)
}

/// The variant a ramp moves: `variant` if given, else a boolean flag's `true` variant.
pub fn ramped_variant(flag: &Value, variant: Option<&str>, key: &str) -> Result<String, CtlError> {
    if let Some(name) = variant {
        return Ok(name.to_owned());
    }
    flag.get("variants")
        .and_then(Value::as_object)
        .and_then(|v| v.iter().find(|(_, v)| **v == Value::Bool(true)))
        .map(|(name, _)| name.clone())
        .ok_or_else(|| {
            CtlError::usage(format!(
                "{key} is not a boolean flag: name the variant to ramp with --variant"
            ))
        })
}

/// `variant`'s share of the flag's only `fractional`, in percent of its total weight.
pub fn share(flag: &Value, variant: &str, key: &str) -> Result<f64, CtlError> {
    let path = only_fractional(flag, key)?;
    let mut flag = flag.clone();
    let args = at_mut(&mut flag, &path)
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    let buckets = buckets(&args, key)?;
    let total: u64 = buckets.iter().map(|(_, _, w)| w).sum();
    let mine = buckets
        .iter()
        .find(|(_, name, _)| name == variant)
        .map(|(_, _, w)| *w)
        .ok_or_else(|| {
            CtlError::refused(format!("{key}'s fractional has no bucket for {variant:?}"))
        })?;
    if total == 0 {
        return Err(CtlError::refused(format!(
            "{key}'s fractional weights are all zero"
        )));
    }
    Ok(mine as f64 * 100.0 / total as f64)
}

/// The flag with `variant`'s weight set to `p` (a whole percentage) and the other buckets'
/// weights rescaled to share the rest, so the weights total 100: a user keeps their bucket
/// position, and raising `p` only moves users into `variant`.
pub fn with_share(flag: &Value, variant: &str, p: f64, key: &str) -> Result<Value, CtlError> {
    if p.fract() != 0.0 || !(0.0..=100.0).contains(&p) {
        return Err(CtlError::usage(format!(
            "{p}: a fractional weight is a whole number; use whole percentages"
        )));
    }
    let p = p as u64;
    let path = only_fractional(flag, key)?;
    let mut out = flag.clone();
    let Some(Value::Array(args)) = at_mut(&mut out, &path) else {
        return Err(CtlError::refused(format!(
            "{key}'s fractional is not a list"
        )));
    };
    let buckets = buckets(args, key)?;
    if !buckets.iter().any(|(_, name, _)| name == variant) {
        return Err(CtlError::refused(format!(
            "{key}'s fractional has no bucket for {variant:?}"
        )));
    }
    let others: Vec<&(usize, String, u64)> = buckets
        .iter()
        .filter(|(_, name, _)| name != variant)
        .collect();
    let others_total: u64 = others.iter().map(|(_, _, w)| w).sum();
    let rest = 100 - p;
    if rest > 0 && others_total == 0 {
        return Err(CtlError::refused(format!(
            "{key}: no other bucket has weight to take the remaining {rest}%"
        )));
    }
    // Largest remainder: the others keep their proportions, summing to `rest` exactly.
    let mut shares: Vec<(usize, u64, u64)> = others
        .iter()
        .map(|(i, _, w)| {
            let exact = u128::from(*w) * u128::from(rest);
            let total = u128::from(others_total.max(1));
            (*i, (exact / total) as u64, (exact % total) as u64)
        })
        .collect();
    let assigned: u64 = shares.iter().map(|(_, s, _)| s).sum();
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by(|a, b| shares[*b].2.cmp(&shares[*a].2).then(a.cmp(b)));
    for k in order.into_iter().take((rest - assigned) as usize) {
        shares[k].1 += 1;
    }
    for (i, name, _) in &buckets {
        let weight = match name == variant {
            true => p,
            false => shares
                .iter()
                .find(|(j, _, _)| j == i)
                .map_or(0, |(_, s, _)| *s),
        };
        args[*i] = Value::Array(vec![Value::String(name.clone()), Value::from(weight)]);
    }
    Ok(out)
}

/// A shell-safe single-quoted argument.
pub fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// The JSON object `text` must be for a definition.
pub fn parse_definition(text: &str, key: &str) -> Result<Value, CtlError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(Value::Object(map)),
        Ok(_) => Err(CtlError::refused(format!(
            "the new definition of {key} must be a flagd flag object ({{\"state\": …, \"variants\": …}})"
        ))),
        Err(e) => Err(CtlError::refused(format!(
            "the new definition of {key} is not JSON: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn target(in_document: bool) -> Target {
        Target {
            parameter: "/f/doc".into(),
            key: "b".into(),
            in_document,
            bucketing: Bucketing::V3,
        }
    }

    #[test]
    fn a_document_flag_is_replaced_in_its_entry_alone() {
        let raw = "{\n  \"flags\": {\n    \"a\": {\"state\":\"ENABLED\", \"variants\": {\"x\": 1}, \"defaultVariant\": \"x\"},\n    \"b\": {\"state\": \"ENABLED\", \"variants\": {\"on\": true, \"off\": false}, \"defaultVariant\": \"on\"}\n  },\n  \"metadata\": {\"id\": 123456789012345678901234567890}\n}";
        let flag = definition(raw, &target(true)).expect("b");
        let killed = killed(&flag, None, "b").expect("a false variant");
        let out = replaced(raw, &target(true), &killed).expect("replaced");
        let a =
            "\"a\": {\"state\":\"ENABLED\", \"variants\": {\"x\": 1}, \"defaultVariant\": \"x\"}";
        assert!(out.contains(a), "{out}");
        assert!(out.contains("123456789012345678901234567890"), "{out}");
        assert_eq!(
            definition(&out, &target(true)).expect("b")["defaultVariant"],
            "off"
        );
        validate(raw, &out, &target(true)).expect("valid");
    }

    #[test]
    fn kill_picks_the_false_variant_or_the_named_one_and_drops_targeting() {
        let flag = json!({"state": "ENABLED", "variants": {"on": true, "off": false},
                          "defaultVariant": "on", "targeting": {"if": [true, "on"]}});
        let k = killed(&flag, None, "f").expect("killed");
        assert_eq!(k["defaultVariant"], "off");
        assert!(k.get("targeting").is_none());
        let colors = json!({"variants": {"red": 1, "blue": 2}, "defaultVariant": "red"});
        assert!(
            killed(&colors, None, "f").is_err(),
            "no false variant: --variant"
        );
        assert_eq!(
            killed(&colors, Some("blue"), "f").expect("named")["defaultVariant"],
            "blue"
        );
        assert!(killed(&colors, Some("green"), "f").is_err());
    }

    #[test]
    fn a_ramp_moves_one_variants_share_and_rescales_the_others() {
        let flag = json!({"state": "ENABLED", "variants": {"a": 1, "b": 2, "c": 3},
            "defaultVariant": "a",
            "targeting": {"if": [{"==": [1, 1]}, {"fractional": [{"var": "id"}, ["a", 80], ["b", 10], ["c", 10]]}]}});
        assert_eq!(share(&flag, "b", "f").expect("share"), 10.0);
        let raised = with_share(&flag, "b", 25.0, "f").expect("raised");
        let args = &raised["targeting"]["if"][1]["fractional"];
        assert_eq!(
            *args,
            json!([{"var": "id"}, ["a", 67], ["b", 25], ["c", 8]])
        );
        assert_eq!(share(&raised, "b", "f").expect("share"), 25.0);
        assert!(
            with_share(&flag, "b", 12.5, "f").is_err(),
            "whole percentages"
        );
        let two = json!({"targeting": {"if": [true, {"fractional": [["a", 1]]}, {"fractional": [["a", 1]]}]}});
        let error = with_share(&two, "a", 10.0, "f")
            .expect_err("two")
            .to_string();
        assert!(error.contains("holds 2 `fractional`"), "{error}");
        let none = json!({"targeting": {"if": [true, "a", "b"]}});
        assert!(
            share(&none, "a", "f")
                .expect_err("none")
                .to_string()
                .contains("holds 0")
        );
    }

    #[test]
    fn a_split_reads_as_each_variants_summed_weight_or_says_why_not() {
        let flag = json!({"targeting": {"if": [{"==": [1, 1]},
            {"fractional": [{"var": "id"}, ["a", 30], ["b"], ["a", 20], ["c", 0]]}, "a"]}});
        assert_eq!(
            split_weights(&flag, "f"),
            Ok(vec![("a".into(), 50), ("b".into(), 1), ("c".into(), 0)])
        );
        let two = json!({"targeting": {"if": [true, {"fractional": [["a", 1]]}, {"fractional": [["a", 1]]}]}});
        let none = json!({"variants": {"a": 1}});
        let shared = json!({"targeting": {"if": [{"$ref": "x"}, {"fractional": [["a", 1]]}, "a"]}});
        let halves = json!({"targeting": {"fractional": [["a", 33.5], ["b", 66.5]]}});
        for (flag, why) in [
            (two, "holds 2 `fractional` operators, not exactly one"),
            (none, "holds 0"),
            (shared, "shared evaluator ($ref)"),
            (halves, "not a whole number"),
        ] {
            let error = split_weights(&flag, "f").expect_err(why);
            assert!(error.contains(why), "{error}");
        }
    }

    #[test]
    fn a_ramp_refuses_what_it_cannot_rescale_or_count() {
        let shared = json!({"targeting": {"if": [{"$ref": "ab"}, {"fractional": [["a", 50], ["b", 50]]}, "a"]}});
        let error = share(&shared, "a", "f").expect_err("a $ref").to_string();
        assert!(error.contains("$ref"), "{error}");
        let halves = json!({"targeting": {"fractional": [["a", 33.5], ["b", 66.5]]}});
        let error = with_share(&halves, "a", 50.0, "f")
            .expect_err("not whole")
            .to_string();
        assert!(error.contains("not a whole number"), "{error}");
    }

    #[test]
    fn a_change_of_variant_type_needs_change_kind() {
        let old = json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"});
        let new = json!({"state": "ENABLED", "variants": {"on": "yes", "off": "no"}, "defaultVariant": "on"});
        let error = check_kind(&old, &new, &target(false), false)
            .expect_err("refused")
            .to_string();
        assert!(
            error.contains("TYPE_MISMATCH") && error.contains("--change-kind"),
            "{error}"
        );
        check_kind(&old, &new, &target(false), true).expect("allowed");
        check_kind(&old, &old, &target(false), false).expect("same kind");
        assert!(check_new("f", r#"{"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a", "targeting": {"like": 1}}"#, Bucketing::V3).is_err());
        check_new("f", &old.to_string(), Bucketing::V3).expect("valid");
    }
}
