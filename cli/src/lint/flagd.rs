//! `lint`'s flagd checks. Each flagd document parameter (and each single-flag parameter, as the
//! one-flag document `{"flags": {name: flag}}` it stands for) is validated against flagd's
//! published JSON schema, vendored in `cli/schemas/` and compiled in; then what a schema cannot
//! see: targeting that can return a name that is no variant, a `defaultVariant` naming none, a
//! `fractional` whose weights are all zero. Beside them: names defined twice (one definition
//! hidden), and seed JSON flags that look like flagd (read as seed flags all the same).
//!
//! Fields: a schema finding names the failing instance by its JSON pointer in the document
//! (`/flags/checkout/state`); the other findings by the `flags` model's dotted path
//! (`flags.checkout.targeting.if[2]`, `$evaluators.gold.if[1]`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use flags::flagd::Definition;
use flags::{FlagValue, Format, ParameterKind};
use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, Validator};
use serde_json::{Map, Value};

use super::{Finding, NEAR_LIMIT, Severity};
use crate::param::STANDARD_LIMIT;
use crate::sources::{Flags, Loaded, Spec};

/// flagd's flag-definition schema (`cli/schemas/README.md` says where it comes from).
const FLAGS_SCHEMA: &str = include_str!("../../schemas/flags.json");
/// The targeting schema `flags.json` references (`./targeting.json`).
const TARGETING_SCHEMA: &str = include_str!("../../schemas/targeting.json");
/// `targeting.json`'s `$id`: registered under it, `flags.json`'s references resolve offline.
const TARGETING_ID: &str = "https://flagd.dev/schema/v0/targeting.json";
/// `flags.json`'s `$id`: the `$schema` a document declares to be read as flagd anywhere.
pub(super) const FLAGD_SCHEMA: &str = "https://flagd.dev/schema/v0/flags.json";

/// The compiled schema, or why it did not compile (a broken vendored file: a finding, not a
/// panic).
static SCHEMA: LazyLock<Result<Validator, String>> = LazyLock::new(compile);

fn compile() -> Result<Validator, String> {
    let parse = |text: &str, file: &str| {
        serde_json::from_str::<Value>(text).map_err(|e| format!("schemas/{file}: {e}"))
    };
    let (flags, targeting) = (
        parse(FLAGS_SCHEMA, "flags.json")?,
        parse(TARGETING_SCHEMA, "targeting.json")?,
    );
    let registry = jsonschema::Registry::new()
        .add(TARGETING_ID, targeting)
        .and_then(|builder| builder.prepare())
        .map_err(|e| format!("schemas/targeting.json: {e}"))?;
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .with_base_uri(FLAGD_SCHEMA)
        .with_registry(&registry)
        .offline()
        .build(&flags)
        .map_err(|e| format!("schemas/flags.json: {e}"))
}

/// The flagd findings of one source: every flagd parameter against the schema (once each,
/// whatever number of flags it holds), a document near its tier's size limit, and the names
/// defined twice.
pub(super) fn source_findings(source: &Flags) -> Vec<Finding> {
    let origin = source.spec.to_string();
    let format = format_of(&source.spec);
    let mut findings = Vec::new();
    let mut by_parameter: BTreeMap<&str, (&str, &Loaded)> = BTreeMap::new();
    for (name, loaded) in &source.flags {
        if !loaded.undecrypted && read_as_flagd(format, loaded) {
            by_parameter
                .entry(loaded.parameter.as_str())
                .or_insert((name.as_str(), loaded));
        }
    }
    for (parameter, (name, loaded)) in by_parameter {
        let secure = is_secure(loaded);
        let Some((subject, wrapped)) = subject(name, loaded) else {
            continue;
        };
        let finding = |severity, flag: String, field: Option<String>, message: String| Finding {
            severity,
            source: origin.clone(),
            flag,
            parameter: parameter.to_owned(),
            field,
            message,
        };
        match SCHEMA.as_ref() {
            Err(why) => findings.push(finding(
                Severity::Error,
                String::new(),
                None,
                format!("not checked against flagd's schema: it does not compile ({why})"),
            )),
            Ok(schema) => {
                for violation in violations(schema, &subject, secure) {
                    findings.push(finding(
                        Severity::Error,
                        flag_of(&violation.pointer),
                        Some(violation.pointer.clone()),
                        format!(
                            "parameter {parameter}: breaks flagd's schema at `{}`: {}",
                            display_pointer(&violation.pointer),
                            violation.message
                        ),
                    ));
                }
            }
        }
        // A document's flags share one SSM value: its size is said once, not once per flag
        // (`check` says it for a value that is one flag, or a document that failed whole).
        let limit = loaded
            .meta
            .as_ref()
            .map_or(STANDARD_LIMIT, |meta| meta.size_limit());
        if !wrapped
            && loaded.in_document
            && matches!(source.spec, Spec::Path(..))
            && loaded.raw.len() as f64 >= NEAR_LIMIT * limit as f64
        {
            findings.push(finding(
                Severity::Warning,
                String::new(),
                None,
                format!(
                    "parameter {parameter}: the flagd document is {} of its tier's {limit} bytes: SSM refuses a value over the limit; split it into several documents, each defining the `$evaluators` it uses",
                    loaded.raw.len()
                ),
            ));
        }
    }
    for shadowed in &source.shadowed {
        findings.push(Finding {
            severity: Severity::Warning,
            source: origin.clone(),
            flag: shadowed.flag.clone(),
            parameter: shadowed.hidden.clone(),
            field: None,
            message: format!(
                "`{}` is defined twice: the definition in {} is served and the one in {} is hidden; remove or rename one",
                shadowed.flag, shadowed.kept, shadowed.hidden
            ),
        });
    }
    findings
}

/// The flagd findings about one flag: what its definition allows that flagd's schema cannot
/// see, or a seed JSON flag that looks like flagd.
pub(super) fn flag_findings(spec: &Spec, name: &str, loaded: &Loaded) -> Vec<Finding> {
    let found: Vec<(Severity, Option<String>, String)> = match loaded.entry.value() {
        _ if loaded.undecrypted => Vec::new(),
        Ok(FlagValue::Flagd(definition)) if definition.is_powertools() => {
            super::powertools::findings(definition)
        }
        Ok(FlagValue::Flagd(definition)) => semantics(definition, is_secure(loaded))
            .into_iter()
            .map(|(severity, field, message)| {
                let message = format!("parameter {}: {message}", loaded.parameter);
                (severity, field, message)
            })
            .collect(),
        Ok(FlagValue::Json(flag)) => flag
            .document()
            .as_object()
            .filter(|document| looks_like_flagd(document))
            .map(|document| vec![(Severity::Warning, None, seed_lookalike(spec, document))])
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    found
        .into_iter()
        .map(|(severity, field, message)| Finding {
            severity,
            source: spec.to_string(),
            flag: name.to_owned(),
            parameter: loaded.parameter.clone(),
            field,
            message,
        })
        .collect()
}

/// The format a source declares (a file's flagd document declares itself, as any value may).
fn format_of(spec: &Spec) -> Format {
    match spec {
        Spec::Path(_, format) => *format,
        Spec::Profile(id) => id.format,
        Spec::File(file)
            if file
                .to_string_lossy()
                .ends_with(Format::Powertools.marker()) =>
        {
            Format::Powertools
        }
        Spec::File(_) => Format::Seed,
    }
}

/// Whether the flag was read as flagd: its source is marked, its value declares flagd's
/// `$schema` (as `flags::snapshot::assemble` decides), or it loaded as a flagd definition.
fn read_as_flagd(format: Format, loaded: &Loaded) -> bool {
    if format == Format::Powertools
        || matches!(loaded.entry.value(), Ok(FlagValue::Flagd(d)) if d.is_powertools())
    {
        return false;
    }
    matches!(format, Format::Flagd(_))
        || matches!(loaded.entry.value(), Ok(FlagValue::Flagd(_)))
        || flags::format::raw_declares_flagd(&loaded.raw)
}

fn is_secure(loaded: &Loaded) -> bool {
    loaded.kind == ParameterKind::SecureString || loaded.entry.is_secure()
}

/// What the schema validates for a flag's parameter, and whether it is a single flag wrapped
/// as a one-flag document: a document as stored; a single flag object as
/// `{"flags": {name: flag}}`; a flag with no stored value (a snapshot file's flagd field) as
/// its self-contained document. `None`: not JSON, or neither (the model already says so).
fn subject(name: &str, loaded: &Loaded) -> Option<(Value, bool)> {
    let value = match serde_json::from_str::<Value>(&loaded.raw) {
        Ok(value) => value,
        Err(_) => {
            return match loaded.entry.value() {
                Ok(FlagValue::Flagd(definition)) if loaded.raw.is_empty() => {
                    Some((definition.to_document(), false))
                }
                _ => None,
            };
        }
    };
    if value.get("flags").is_some() || flags::format::declares_flagd(&value) {
        return Some((value, false));
    }
    value.is_object().then(|| {
        let flags = Map::from_iter([(name.to_owned(), value)]);
        (
            Value::Object(Map::from_iter([("flags".to_owned(), Value::Object(flags))])),
            true,
        )
    })
}

/// One schema violation: where (a JSON pointer into the validated document) and what.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Violation {
    pointer: String,
    message: String,
}

/// Every violation of `document`, each at the most precise place the schema allows: where the
/// schema offers alternatives (`anyOf`: a boolean, string, number or object flag; the JsonLogic
/// rules), the alternative that came closest speaks.
fn violations(schema: &Validator, document: &Value, secure: bool) -> Vec<Violation> {
    let found: BTreeSet<Violation> = schema
        .iter_errors(document)
        .flat_map(|error| closest(&error, secure))
        .collect();
    found.into_iter().collect()
}

/// How many alternatives a message names at most, when several fail alike.
const ALTERNATIVES_SHOWN: usize = 2;

fn closest(error: &ValidationError<'_>, secure: bool) -> Vec<Violation> {
    let here = error.instance_path().as_str().to_owned();
    let context = match error.kind() {
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            context
        }
        _ => {
            let message = match secure {
                true => error.masked().to_string(),
                false => error.to_string(),
            };
            return vec![Violation {
                pointer: here,
                message,
            }];
        }
    };
    // Each alternative's own violations. The closest fits this value's shape (every violation
    // lies deeper: a boolean flag whose `state` is wrong, not an `in` rule for a `fractional`
    // one), then breaks fewest rules, then reaches deepest.
    let branches: Vec<Vec<Violation>> = context
        .iter()
        .map(|branch| branch.iter().flat_map(|e| closest(e, secure)).collect())
        .filter(|branch: &Vec<Violation>| !branch.is_empty())
        .collect();
    let score = |branch: &Vec<Violation>| {
        let fits = branch.iter().all(|v| depth(&v.pointer) > depth(&here));
        let deepest = branch.iter().map(|v| depth(&v.pointer)).max().unwrap_or(0);
        (fits, std::cmp::Reverse(branch.len()), deepest)
    };
    let Some(best) = branches.iter().map(score).max() else {
        return vec![Violation {
            pointer: here,
            message: "matches none of the forms flagd's schema allows here".to_owned(),
        }];
    };
    // Alternatives that fail alike (every flag type on an empty `variants`) are one.
    let mut tied: Vec<&Vec<Violation>> = Vec::new();
    for branch in branches.iter().filter(|b| score(b) == best) {
        if !tied.contains(&branch) {
            tied.push(branch);
        }
    }
    if tied.len() == 1 {
        return tied.remove(0).clone();
    }
    // A flag fits none of the four flag types for its variants alone: say that.
    let variants = format!("{here}/variants");
    if !flag_of(&here).is_empty()
        && depth(&here) == 2
        && tied.iter().all(|branch| {
            branch
                .iter()
                .all(|v| v.pointer.starts_with(&format!("{variants}/")))
        })
    {
        return vec![Violation {
            pointer: variants,
            message: "the variants fit none of flagd's flag types: a flag's variants are all booleans, all strings, all numbers or all objects (never arrays or null)".to_owned(),
        }];
    }
    let shown: Vec<String> = tied
        .iter()
        .take(ALTERNATIVES_SHOWN)
        .filter_map(|branch| branch.first())
        .map(|v| match v.pointer == here {
            true => v.message.clone(),
            false => format!("`{}` {}", display_pointer(&v.pointer), v.message),
        })
        .collect();
    let more = match tied.len() > ALTERNATIVES_SHOWN {
        true => format!(" ({} forms fail alike)", tied.len()),
        false => String::new(),
    };
    vec![Violation {
        pointer: here,
        message: format!(
            "matches none of the forms flagd's schema allows here{more}; the closest: {}",
            shown.join("; or ")
        ),
    }]
}

fn depth(pointer: &str) -> usize {
    pointer.matches('/').count()
}

fn display_pointer(pointer: &str) -> &str {
    match pointer {
        "" => "/",
        pointer => pointer,
    }
}

/// The flag a pointer is about: `/flags/<key>/…` names `<key>`; anything else is the document.
fn flag_of(pointer: &str) -> String {
    let mut segments = pointer.split('/').skip(1);
    match (segments.next(), segments.next()) {
        (Some("flags"), Some(key)) => key.replace("~1", "/").replace("~0", "~"),
        _ => String::new(),
    }
}

/// What a definition's JSON allows that flagd's schema cannot see.
fn semantics(definition: &Definition, secure: bool) -> Vec<(Severity, Option<String>, String)> {
    let document = definition.to_document();
    let key = definition.key();
    let Some(flag) = document.get("flags").and_then(|flags| flags.get(key)) else {
        return Vec::new();
    };
    let variants: BTreeSet<&str> = definition.variants().map(|(name, _)| name).collect();
    let listed = || match secure {
        true => format!("{} variants", variants.len()),
        false => format!(
            "variants: {}",
            variants
                .iter()
                .map(|v| format!("{v:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let quote = |name: &str| match secure {
        true => "a name".to_owned(),
        false => format!("{name:?}"),
    };
    let mut found = Vec::new();
    if let Some(default) = flag.get("defaultVariant").and_then(Value::as_str)
        && !default.is_empty()
        && !variants.contains(default)
    {
        found.push((
            Severity::Error,
            Some(format!("flags.{key}.defaultVariant")),
            format!(
                "`defaultVariant` {} names no variant ({}): wherever the default applies, handlers get their own default (GENERAL)",
                quote(default),
                listed()
            ),
        ));
    }
    let marker = flags::experiment::MARKER;
    if let Some(value) = definition.metadata().get(marker)
        && !value.is_boolean()
    {
        found.push((
            Severity::Warning,
            Some(format!("flags.{key}.metadata.{marker}")),
            format!(
                "`{marker}` is {}, not true: the flag is not counted as an experiment (write \"{marker}\": true)",
                if secure { "a value".to_owned() } else { value.to_string() }
            ),
        ));
    }
    if definition.metadata().get(marker) == Some(&Value::Bool(true)) && !definition.is_experiment()
    {
        found.push((
            Severity::Warning,
            Some(format!("flags.{key}.variants")),
            "an experiment whose key or variant names are not CloudWatch dimension values (1–1,024 printable ASCII characters, not blank) is never counted: CloudWatch would drop its metrics; rename them".to_owned(),
        ));
    }
    if definition.is_experiment() && secure {
        found.push((
            Severity::Warning,
            Some(format!("flags.{key}.metadata.{marker}")),
            "an experiment in a SecureString is never counted (its variant names would reach the metrics): keep the experiment in a String parameter".to_owned(),
        ));
    }
    let no_split = || {
        (
            Severity::Warning,
            Some(format!("flags.{key}.targeting")),
            "an experiment without a `fractional`: no evaluation is decided by a split (reason SPLIT), so no exposure is ever counted".to_owned(),
        )
    };
    let Some(targeting) = flag
        .get("targeting")
        .filter(|t| t.as_object().is_some_and(|o| !o.is_empty()))
    else {
        if definition.is_experiment() {
            found.push(no_split());
        }
        return found;
    };
    let mut walk = Walk {
        evaluators: document.get("$evaluators").and_then(Value::as_object),
        open: Vec::new(),
        returned: BTreeSet::new(),
        zero_weights: BTreeSet::new(),
        fractionals: 0,
        visited: BTreeSet::new(),
    };
    let at = format!("flags.{key}.targeting");
    walk.results(targeting, &at);
    walk.open.clear();
    walk.every_fractional(targeting, &at);
    if definition.is_experiment() && walk.fractionals == 0 {
        found.push(no_split());
    }
    for (field, name) in walk.returned {
        if !variants.contains(name.as_str()) {
            found.push((
                Severity::Error,
                Some(field),
                format!(
                    "targeting can return {}, which names no variant ({}): whoever it reaches gets the handler's default (GENERAL)",
                    quote(&name),
                    listed()
                ),
            ));
        }
    }
    for field in walk.zero_weights {
        found.push((
            Severity::Error,
            Some(field),
            "every bucket of this `fractional` weighs 0: it places no one and gives null, so the split never happens (everyone gets the default variant); give the buckets weights".to_owned(),
        ));
    }
    found
}

/// A walk through a flag's targeting, into the shared evaluators it `$ref`s.
struct Walk<'d> {
    evaluators: Option<&'d Map<String, Value>>,
    /// The evaluators being walked, innermost last: a `$ref` back to one is a cycle (the model
    /// refuses those; the walk just stops).
    open: Vec<&'d str>,
    /// Names the targeting can return, written as literals: (where, name).
    returned: BTreeSet<(String, String)>,
    /// Every `fractional` whose buckets all weigh 0.
    zero_weights: BTreeSet<String>,
    /// How many `fractional`s the targeting holds (through its evaluators).
    fractionals: usize,
    /// Evaluators already walked for `fractional`s.
    visited: BTreeSet<&'d str>,
}

impl<'d> Walk<'d> {
    /// The literal names `rule` can give as the targeting's answer: a string (or a boolean,
    /// which names the variant `"true"`/`"false"`), an `if`'s branches, a `fractional`'s
    /// buckets, a `$ref`'d evaluator's answers. Anything computed is not followed.
    fn results(&mut self, rule: &'d Value, at: &str) {
        match rule {
            Value::String(name) => {
                self.returned.insert((at.to_owned(), name.clone()));
            }
            Value::Bool(b) => {
                self.returned.insert((at.to_owned(), b.to_string()));
            }
            Value::Object(map) if map.len() == 1 => {
                let Some((op, args)) = map.iter().next() else {
                    return;
                };
                match (op.as_str(), args) {
                    ("if" | "?:", Value::Array(args)) => {
                        let last = args.len().saturating_sub(1);
                        for (i, arg) in args.iter().enumerate() {
                            // [condition, then, condition, then, …, else]
                            if i % 2 == 1 || (i == last && args.len() % 2 == 1) {
                                self.results(arg, &format!("{at}.{op}[{i}]"));
                            }
                        }
                    }
                    ("fractional", Value::Array(args)) => {
                        for (i, bucket) in args.iter().enumerate() {
                            if let Some(name) = bucket.as_array().and_then(|b| b.first()) {
                                self.results(name, &format!("{at}.fractional[{i}][0]"));
                            }
                        }
                    }
                    ("$ref", Value::String(name)) => {
                        if let Some((name, rule)) = self.evaluator(name) {
                            self.open.push(name);
                            self.results(rule, &format!("$evaluators.{name}"));
                            self.open.pop();
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// Every `fractional` anywhere in `rule` (through `$ref`s), for weights that are all 0.
    fn every_fractional(&mut self, rule: &'d Value, at: &str) {
        match rule {
            Value::Object(map) => {
                for (op, args) in map {
                    let here = format!("{at}.{op}");
                    if op == "fractional" {
                        self.fractionals += 1;
                    }
                    match (op.as_str(), args) {
                        ("fractional", Value::Array(args)) if all_weights_zero(args) => {
                            self.zero_weights.insert(here.clone());
                        }
                        ("$ref", Value::String(name)) if map.len() == 1 => {
                            if let Some((name, rule)) = self.evaluator(name)
                                && self.visited.insert(name)
                            {
                                self.open.push(name);
                                self.every_fractional(rule, &format!("$evaluators.{name}"));
                                self.open.pop();
                            }
                            continue;
                        }
                        _ => {}
                    }
                    self.every_fractional(args, &here);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.every_fractional(item, &format!("{at}[{i}]"));
                }
            }
            _ => {}
        }
    }

    /// The evaluator `name`, unless it is unknown or already open (a cycle).
    fn evaluator(&self, name: &str) -> Option<(&'d str, &'d Value)> {
        let (name, rule) = self.evaluators?.get_key_value(name)?;
        (!self.open.contains(&name.as_str())).then_some((name.as_str(), rule))
    }
}

/// Whether a `fractional`'s buckets are written and every one weighs 0 (a bucket without a
/// weight weighs 1; a negative weight counts as 0, as in flagd's evaluators).
fn all_weights_zero(args: &[Value]) -> bool {
    let buckets: Vec<&Vec<Value>> = args.iter().filter_map(Value::as_array).collect();
    !buckets.is_empty()
        && buckets.len() + 1 >= args.len()
        && buckets.iter().all(|bucket| {
            matches!(bucket.as_slice(), [_, weight] if weight.as_f64().is_some_and(|w| w <= 0.0))
        })
}

/// Whether a seed JSON flag's fields are flagd's: a flag (`variants` with `state` or
/// `defaultVariant`), or a document (`flags` holding flags with `variants`, or `$evaluators`).
fn looks_like_flagd(document: &Map<String, Value>) -> bool {
    let object = |field: &str| document.get(field).and_then(Value::as_object);
    let flag = object("variants").is_some()
        && (document.contains_key("state") || document.contains_key("defaultVariant"));
    let flags = object("flags")
        .is_some_and(|flags| flags.values().any(|flag| flag.get("variants").is_some()));
    flag || flags || object("$evaluators").is_some()
}

/// What to say about a seed flag that looks like flagd: how it is read, and how to declare it.
fn seed_lookalike(spec: &Spec, document: &Map<String, Value>) -> String {
    let what = match document.contains_key("flags") {
        true => "a flagd document (`flags`)",
        false => "a flagd flag (`state`, `variants`, `defaultVariant`)",
    };
    let declare = match spec {
        Spec::Path(path, _) => format!(
            "mark the path `#flagd` (SSM_FLAGS_PATH={path}#flagd, `ssm-flags-ctl lint {path}#flagd`)"
        ),
        Spec::Profile(id) => format!("mark the profile `#flagd` (appconfig:{id}#flagd)"),
        Spec::File(_) => "keep it in a flagd document file of its own".to_owned(),
    };
    format!(
        "looks like {what} but this source is not declared flagd: it is read as a seed JSON flag (its fields are config; without `enabled` it is off). To read it as flagd, {declare} or add flagd's `$schema` (\"{FLAGD_SCHEMA}\") to the value"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use flags::{Bucketing, FlagEntry, Parameter};
    use serde_json::json;

    fn schema() -> &'static Validator {
        SCHEMA.as_ref().expect("the vendored schema compiles")
    }

    fn violated(document: Value) -> Vec<(String, String)> {
        violations(schema(), &document, false)
            .into_iter()
            .map(|v| (v.pointer, v.message))
            .collect()
    }

    fn definition(flag: Value) -> Definition {
        flags::flagd::parse_flag("f", &flag, Bucketing::V3).expect("loads")
    }

    fn semantic(flag: Value) -> Vec<(Option<String>, String)> {
        semantics(&definition(flag), false)
            .into_iter()
            .map(|(severity, field, message)| {
                assert_eq!(severity, Severity::Error);
                (field, message)
            })
            .collect()
    }

    #[test]
    fn experiments_that_count_nothing_are_warned() {
        let warnings = |flag: Value, secure: bool| -> Vec<String> {
            semantics(&definition(flag), secure)
                .into_iter()
                .map(|(severity, field, message)| {
                    assert_eq!(severity, Severity::Warning, "{message}");
                    format!("{}: {message}", field.unwrap_or_default())
                })
                .collect()
        };
        let split = json!({"fractional": [["a", 50], ["b", 50]]});
        let flag = |metadata: Value, targeting: Value| {
            json!({"state": "ENABLED", "variants": {"a": "a", "b": "b"}, "defaultVariant": "a",
                   "targeting": targeting, "metadata": metadata})
        };
        assert!(warnings(flag(json!({"experiment": true}), split.clone()), false).is_empty());
        let said_yes = warnings(flag(json!({"experiment": "yes"}), split.clone()), false);
        assert_eq!(said_yes.len(), 1, "{said_yes:?}");
        assert!(
            said_yes[0].starts_with("flags.f.metadata.experiment: `experiment` is \"yes\""),
            "{said_yes:?}"
        );
        let no_split = warnings(
            flag(
                json!({"experiment": true}),
                json!({"if": [{"==": [{"var": "t"}, 1]}, "a", "b"]}),
            ),
            false,
        );
        assert_eq!(no_split.len(), 1, "{no_split:?}");
        assert!(
            no_split[0].contains("without a `fractional`"),
            "{no_split:?}"
        );
        let untargeted = warnings(flag(json!({"experiment": true}), json!({})), false);
        assert!(
            untargeted[0].contains("without a `fractional`"),
            "{untargeted:?}"
        );
        let accented = json!({"state": "ENABLED", "variants": {"caf\u{e9}": "a", "b": "b"},
            "defaultVariant": "b", "targeting": {"fractional": [["caf\u{e9}", 50], ["b", 50]]},
            "metadata": {"experiment": true}});
        let renamed = warnings(accented, false);
        assert!(
            renamed.iter().any(|w| w.contains("never counted")),
            "{renamed:?}"
        );
        let secure = warnings(flag(json!({"experiment": true}), split), true);
        assert!(secure[0].contains("never counted"), "{secure:?}");
    }

    #[test]
    fn the_vendored_schema_is_flagds_and_resolves_offline() {
        let id = serde_json::from_str::<Value>(FLAGS_SCHEMA).expect("json")["$id"].clone();
        assert_eq!(id, FLAGD_SCHEMA);
        assert!(flags::format::is_flagd_schema(FLAGD_SCHEMA));
        let id = serde_json::from_str::<Value>(TARGETING_SCHEMA).expect("json")["$id"].clone();
        assert_eq!(id, TARGETING_ID);
        // The README's stories validate (targeting.json reached through `./targeting.json`).
        let stories: Value =
            serde_json::from_str(include_str!("../../../examples/flagd/stories.json"))
                .expect("stories");
        assert_eq!(violated(stories), vec![]);
        // And targeting.json is really applied: an unknown operator breaks it.
        let broken = json!({"flags": {"f": {"state": "ENABLED", "variants": {"a": true},
            "defaultVariant": "a", "targeting": {"fractional": [["a", "ten"]]}}}});
        assert!(!violated(broken).is_empty());
    }

    #[test]
    fn violations_name_the_closest_pointer() {
        let found = violated(json!({"flags": {"f": {
            "state": "ON", "variants": {"on": true, "off": false}, "defaultVariant": "on"}}}));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "/flags/f/state");
        assert!(found[0].1.contains("\"ON\""), "{found:?}");

        let found = violated(json!({"flags": {"f": {"state": "ENABLED", "variants": {}}}}));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "/flags/f/variants");

        // Mixed types fit none of the four flag types: said once, at the variants.
        let found = violated(json!({"flags": {"f": {
            "state": "ENABLED", "variants": {"a": true, "b": "x"}, "defaultVariant": "a"}}}));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "/flags/f/variants");
        assert!(
            found[0].1.contains("all booleans, all strings"),
            "{found:?}"
        );

        // Alternatives of a JsonLogic rule: the one that fits the rule's shape speaks.
        let rule = |targeting: Value| {
            violated(
                json!({"flags": {"f": {"state": "ENABLED", "defaultVariant": "a",
                "variants": {"a": "a", "b": "b"}, "targeting": targeting}}}),
            )
        };
        let found = rule(json!({"fractional": [["a", "ten"], ["b", 5]]}));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "/flags/f/targeting/fractional/0/1");
        assert!(
            found[0].1.contains("\"ten\" is not of type \"number\""),
            "{found:?}"
        );
        let found = rule(json!({"if": [{"sem_ver": [{"var": "v"}, "~~", "1.0.0"]}, "a", "b"]}));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "/flags/f/targeting/if/0/sem_ver/1");
        let found = rule(json!({"ifx": [true, "a", "b"]}));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].1.contains("'ifx' was unexpected"), "{found:?}");

        let found = violated(json!({"flags": {"f": {"state": "ENABLED",
            "variants": {"a": true}, "metadata": {"owner": ["x"]}}}, "metadata": {"tags": {}}}));
        let pointers: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert!(pointers.contains(&"/metadata/tags"), "{found:?}");
        assert!(pointers.contains(&"/flags/f/metadata/owner"), "{found:?}");

        let found = violated(json!({"flag": {}}));
        assert_eq!(found[0].0, "", "{found:?}");
        assert!(found[0].1.contains("\"flags\""), "{found:?}");
    }

    #[test]
    fn a_secure_documents_violations_quote_nothing() {
        let document =
            json!({"flags": {"f": {"state": "sk_live_9", "variants": {"a": "sk_live_8", "b": 1}}}});
        for violation in violations(schema(), &document, true) {
            assert!(!violation.message.contains("sk_live"), "{violation:?}");
        }
    }

    #[test]
    fn pointers_name_their_flag() {
        assert_eq!(flag_of("/flags/checkout/state"), "checkout");
        assert_eq!(flag_of("/flags/a~1b~0c"), "a/b~c");
        assert_eq!(flag_of("/metadata/version"), "");
        assert_eq!(flag_of(""), "");
    }

    #[test]
    fn targeting_returning_no_variant_is_an_error_at_the_literal() {
        let found = semantic(json!({"state": "ENABLED", "defaultVariant": "off",
            "variants": {"on": true, "off": false},
            "targeting": {"if": [{"==": [{"var": "tier"}, "gold"]}, "gold",
                {"if": [{"var": "beta"}, "on", "of"]}]}}));
        let fields: Vec<&str> = found.iter().filter_map(|(f, _)| f.as_deref()).collect();
        assert_eq!(
            fields,
            ["flags.f.targeting.if[1]", "flags.f.targeting.if[2].if[2]"],
            "{found:?}"
        );
        assert!(found[0].1.contains("\"gold\""), "{found:?}");
        assert!(found[0].1.contains("\"off\", \"on\""), "{found:?}");

        // A boolean names "true"/"false"; fractional buckets are names too; `$ref`s are followed.
        let definition = flags::flagd::parse_document(
            &json!({"$evaluators": {"beta": {"if": [{"var": "beta"}, "new", null]}},
                "flags": {"f": {"state": "ENABLED", "defaultVariant": "a",
                "variants": {"a": 1, "true": 2},
                "targeting": {"if": [{"var": "vip"}, {"$ref": "beta"}, {"$ref": "beta"}, true,
                    {"fractional": [{"var": "org"}, ["a", 50], ["b", 50]]}]}}}}),
            Bucketing::V3,
        )
        .expect("document")
        .remove(0)
        .1
        .expect("loads");
        let found = semantics(&definition, false);
        let fields: Vec<&str> = found.iter().filter_map(|(_, f, _)| f.as_deref()).collect();
        assert_eq!(
            fields,
            [
                "$evaluators.beta.if[1]",
                "flags.f.targeting.if[4].fractional[2][0]"
            ],
            "{found:?}"
        );

        assert_eq!(
            semantic(json!({"state": "ENABLED", "defaultVariant": "on",
                "variants": {"on": true, "off": false},
                "targeting": {"if": [{"var": "x"}, "on", {"var": "y"}]}})),
            vec![]
        );
    }

    #[test]
    fn a_default_variant_naming_none_is_an_error() {
        let found = semantic(json!({"state": "ENABLED", "defaultVariant": "of",
            "variants": {"on": true, "off": false}}));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0.as_deref(), Some("flags.f.defaultVariant"));
        assert!(found[0].1.contains("\"of\" names no variant"), "{found:?}");
        for default in [json!(null), json!("")] {
            assert_eq!(
                semantic(json!({"state": "ENABLED", "defaultVariant": default,
                    "variants": {"on": true}})),
                vec![]
            );
        }
    }

    #[test]
    fn a_fractional_weighing_nothing_is_an_error() {
        let found = semantic(json!({"state": "ENABLED", "defaultVariant": "a",
            "variants": {"a": "a", "b": "b"},
            "targeting": {"fractional": [["a", 0], ["b", 0]]}}));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0.as_deref(), Some("flags.f.targeting.fractional"));
        assert!(found[0].1.contains("weighs 0"), "{found:?}");
        assert!(all_weights_zero(&[
            json!({"var": "org"}),
            json!(["a", 0]),
            json!(["b", -1])
        ]));
        for fine in [
            json!([["a", 0], ["b", 1]]),
            json!([["a", 0], ["b"]]),
            json!([{"var": "org"}]),
            json!([]),
        ] {
            assert!(!all_weights_zero(fine.as_array().expect("array")), "{fine}");
        }
    }

    #[test]
    fn seed_flags_that_look_like_flagd_are_told_apart_from_config() {
        let object = |v: Value| v.as_object().cloned().expect("object");
        for flagd in [
            json!({"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on"}),
            json!({"variants": {"on": true}, "defaultVariant": "on"}),
            json!({"flags": {"x": {"state": "ENABLED", "variants": {"on": true}}}}),
        ] {
            assert!(looks_like_flagd(&object(flagd.clone())), "{flagd}");
        }
        for seed in [
            json!({"enabled": true, "variants": ["a", "b"]}),
            json!({"enabled": true, "variants": {"a": 1}}),
            json!({"enabled": true, "state": "on"}),
            json!({"enabled": true, "flags": {"beta": true}}),
        ] {
            assert!(!looks_like_flagd(&object(seed.clone())), "{seed}");
        }
    }

    #[test]
    fn flagd_parameters_are_checked_once_and_shadowed_names_warned() {
        let spec = Spec::parse("/app/flags#flagd").expect("spec");
        let parameter = |name: &str, flag: &str, value: &str| Parameter {
            flag: flag.into(),
            name: name.into(),
            kind: ParameterKind::String,
            value: value.into(),
            version: 1,
        };
        let document = r#"{"flags": {"a": {"state": "ON", "variants": {"x": 1}},
            "b": {"state": "ENABLED", "variants": {"x": 1}}}}"#;
        let single = r#"{"state": "ENABLED", "variants": {"x": 1, "y": "two"}}"#;
        let mut assembler = flags::snapshot::assemble::Assembler::new();
        let format = Format::Flagd(Bucketing::V3);
        let parameters = [
            parameter("/app/flags/doc", "doc", document),
            parameter("/app/flags/b", "b", single),
        ];
        for p in &parameters {
            assembler.add(0, format, p);
        }
        let assembly = assembler.finish();
        let loaded = assembly
            .entries
            .into_iter()
            .zip(assembly.origins)
            .map(|(entry, origin)| {
                let raw = parameters
                    .iter()
                    .find(|p| p.name == origin.parameter)
                    .map(|p| p.value.clone())
                    .unwrap_or_default();
                let loaded = Loaded {
                    parameter: origin.parameter,
                    raw,
                    kind: ParameterKind::String,
                    undecrypted: false,
                    meta: None,
                    in_document: origin.in_document,
                    entry,
                };
                (loaded.entry.name().to_owned(), loaded)
            })
            .collect();
        let source = Flags {
            spec,
            flags: loaded,
            shadowed: assembly.shadowed,
        };
        let found = source_findings(&source);
        let summary: Vec<(Severity, &str, &str, Option<&str>)> = found
            .iter()
            .map(|f| {
                (
                    f.severity,
                    f.flag.as_str(),
                    f.parameter.as_str(),
                    f.field.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    Severity::Error,
                    "b",
                    "/app/flags/b",
                    Some("/flags/b/variants"),
                ),
                (
                    Severity::Error,
                    "a",
                    "/app/flags/doc",
                    Some("/flags/a/state"),
                ),
                (Severity::Warning, "b", "/app/flags/doc", None),
            ],
            "{found:#?}"
        );
        assert!(
            found[1]
                .message
                .starts_with("parameter /app/flags/doc: breaks flagd's schema at `/flags/a/state`"),
            "{}",
            found[1].message
        );
        assert!(
            found[2].message.contains(
                "the definition in /app/flags/b is served and the one in /app/flags/doc is hidden"
            ),
            "{}",
            found[2].message
        );
    }

    #[test]
    fn a_seed_lookalike_is_a_warning_saying_how_to_declare_it() {
        let spec = Spec::parse("/app/flags").expect("spec");
        let raw = r#"{"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}"#;
        let parameter = Parameter {
            flag: "f".into(),
            name: "/app/flags/f".into(),
            kind: ParameterKind::String,
            value: raw.into(),
            version: 1,
        };
        let loaded = Loaded {
            entry: FlagEntry::from_parameter(&parameter),
            parameter: parameter.name.clone(),
            raw: raw.into(),
            kind: ParameterKind::String,
            undecrypted: false,
            meta: None,
            in_document: false,
        };
        let found = flag_findings(&spec, "f", &loaded);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].severity, Severity::Warning);
        assert!(
            found[0].message.contains("/app/flags#flagd")
                && found[0].message.contains(FLAGD_SCHEMA),
            "{}",
            found[0].message
        );
    }
}
