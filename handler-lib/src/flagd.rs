//! OpenFeature's flag definition format (flagd's): typed `variants`, a `defaultVariant`, a
//! `state`, JsonLogic `targeting` with flagd's operators (`fractional`, `sem_ver`,
//! `starts_with`, `ends_with`), shared `$evaluators` with `$ref`, flag and flag-set `metadata`.
//!
//! A [`Definition`] is parsed and its targeting compiled once, when a document is loaded
//! ([`parse_document`], [`parse_flag`]); a flag that breaks the format is an error naming the
//! flag and the field, and never hides the other flags of its document. Evaluation (through
//! [`crate::Flag::variant_for`] and the typed reads) follows flagd — the reasons, the error codes
//! and the buckets of the OpenFeature testbed's suites (`tests/flagd.rs`), and JsonLogic's
//! coercions as flagd's Python provider has them (`tests/flagd_differential.rs`):
//! - `DISABLED` → reason `DISABLED`, the caller's default;
//! - no targeting (absent or `{}`) → the default variant, reason `STATIC`;
//! - targeting naming a variant (a string; a boolean as `"true"`/`"false"`; anything else as
//!   Python's `str()` writes it) → that variant, reason `TARGETING_MATCH`, or `SPLIT` when a
//!   `fractional` chose it;
//! - targeting giving `null` → the default variant, reason `DEFAULT`;
//! - a name that is not a variant, a `defaultVariant` naming none, a division by zero → error
//!   `GENERAL`, the caller's default;
//! - no default variant (absent or `null`) where it would apply → the caller's default, `DEFAULT`.

mod logic;
mod ops;
pub mod powertools;
mod value;

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

pub(crate) use logic::Data;
pub use logic::{CompileError, MAX_DEPTH, MAX_NODES};
use logic::{Compiled, Compiler, Env};
pub use ops::{Bucketing, murmur3};
pub(crate) use value::Val;

use crate::error::{Problem, kind_of};
use crate::experiment::MAX_DIMENSION_LEN;

/// One flagd flag, parsed and compiled.
#[derive(Debug, PartialEq)]
pub struct Definition {
    key: Box<str>,
    enabled: bool,
    variants: Box<[(Box<str>, Value)]>,
    kind: Option<Kind>,
    default_variant: Option<usize>,
    /// A `defaultVariant` that names no variant: loaded, as flagd does, and an error (`GENERAL`)
    /// wherever it would apply.
    default_missing: bool,
    targeting: Option<Compiled>,
    /// A Powertools feature's rules, in place of targeting (see [`powertools`]).
    powertools: Option<Box<powertools::Feature>>,
    /// When the targeting is only a `fractional` over written buckets: each bucket's variant
    /// (`None`: it names none, an error), so a read goes from the hash to the variant.
    split: Option<Box<[Option<usize>]>>,
    metadata: Map<String, Value>,
    /// `metadata.experiment` is `true`: exposures and conversions are counted.
    experiment: bool,
    bucketing: Bucketing,
    /// The flag as a self-contained document, as compact JSON text: what it was read from, for
    /// the wire and export. Text, not a `Value`: a parsed tree costs a flag ~30 times its size
    /// (a map node per object) for a field no evaluation reads.
    source: Box<str>,
}

/// The type every variant of a flag shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `true` / `false` variants.
    Boolean,
    /// String variants.
    String,
    /// Number variants (integers, floats, or both).
    Number,
    /// Object variants.
    Object,
}

impl Kind {
    /// The type every value shares; `None` when they are of mixed types, or an array or
    /// `null` is among them.
    fn shared<'v>(values: impl IntoIterator<Item = &'v Value>) -> Option<Self> {
        let mut kind = None;
        for value in values {
            let this = match value {
                Value::Bool(_) => Self::Boolean,
                Value::String(_) => Self::String,
                Value::Number(_) => Self::Number,
                Value::Object(_) => Self::Object,
                Value::Array(_) | Value::Null => return None,
            };
            match kind {
                Some(kind) if kind != this => return None,
                _ => kind = Some(this),
            }
        }
        kind
    }
}

/// Why a flagd evaluation came out as it did: OpenFeature's resolution reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No targeting: the default variant.
    Static,
    /// Targeting chose a variant.
    TargetingMatch,
    /// A `fractional` in the targeting chose the variant.
    Split,
    /// Targeting chose nothing (or there is no default variant to use): the default variant,
    /// or the caller's default.
    Default,
    /// The flag is `DISABLED`: the caller's default.
    Disabled,
    /// An error (see [`ErrorCode`]): the caller's default.
    Error,
}

impl Reason {
    /// The OpenFeature name: `STATIC`, `TARGETING_MATCH`, `SPLIT`, `DEFAULT`, `DISABLED`, `ERROR`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Static => "STATIC",
            Self::TargetingMatch => "TARGETING_MATCH",
            Self::Split => "SPLIT",
            Self::Default => "DEFAULT",
            Self::Disabled => "DISABLED",
            Self::Error => "ERROR",
        }
    }
}

/// OpenFeature's error codes, as flagd reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The flag's definition is invalid.
    ParseError,
    /// The variant's value is not of the type asked for.
    TypeMismatch,
    /// No flag has this name.
    FlagNotFound,
    /// Targeting (or `defaultVariant`) named a variant the flag does not have, or an operator
    /// failed (a division by zero).
    General,
}

impl ErrorCode {
    /// The OpenFeature name: `PARSE_ERROR`, `TYPE_MISMATCH`, `FLAG_NOT_FOUND`, `GENERAL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ParseError => "PARSE_ERROR",
            Self::TypeMismatch => "TYPE_MISMATCH",
            Self::FlagNotFound => "FLAG_NOT_FOUND",
            Self::General => "GENERAL",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a flag resolved to: the variant (`None` when the caller's default applies), why, and
/// the error if there was one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resolution<'f> {
    /// The chosen variant's name and value; `None`: the caller's default.
    pub variant: Option<(&'f str, &'f Value)>,
    /// Why.
    pub reason: Reason,
    /// What went wrong, with [`Reason::Error`].
    pub error: Option<ErrorCode>,
}

/// How a flag resolved (`ssm-flags-ctl explain`): the resolution, the top-level `if`'s
/// conditions evaluated in order (each field and whether it held) up to the one that did, the
/// branch whose result named the variant (`targeting.if[3]`, or `targeting`), and the bucket a
/// `fractional` placed the evaluation in: its point in `0..total`.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation<'f> {
    /// What the flag resolved to.
    pub resolution: Resolution<'f>,
    /// The top-level `if`'s conditions, in order, each with whether it held.
    pub conditions: Vec<(String, bool)>,
    /// The branch taken.
    pub branch: Option<String>,
    /// A `fractional`'s point and total weight.
    pub bucket: Option<(u64, u64)>,
}

impl Resolution<'_> {
    /// An error: the caller's default.
    pub fn error(code: ErrorCode) -> Self {
        Self {
            variant: None,
            reason: Reason::Error,
            error: Some(code),
        }
    }
}

/// One flag of a document: its definition, or what is wrong with it.
pub type Parsed = Result<Arc<Definition>, Problem>;

/// A flag document: `{"flags": {…}, "$evaluators": {…}, "metadata": {…}}` (and `$schema`).
/// Each flag is parsed on its own: a broken one is an error naming it and its field, and the
/// rest still load. A document that is not one at all is a [`Problem`].
pub fn parse_document(
    document: &Value,
    bucketing: Bucketing,
) -> Result<Vec<(String, Parsed)>, Problem> {
    let Value::Object(top) = document else {
        return Err(invalid(
            "",
            format!(
                "a flag document must be an object, got {}",
                kind_of(document)
            ),
        ));
    };
    for key in top.keys() {
        if !matches!(
            key.as_str(),
            "flags" | "$evaluators" | "metadata" | "$schema"
        ) {
            return Err(invalid(
                key,
                "is not a field of a flag document ($schema, flags, $evaluators, metadata)".into(),
            ));
        }
    }
    let Some(Value::Object(flags)) = top.get("flags") else {
        return Err(invalid("flags", "must be an object of flags by key".into()));
    };
    let evaluators = match top.get("$evaluators") {
        None => None,
        Some(Value::Object(map)) => Some(map),
        Some(other) => {
            return Err(invalid(
                "$evaluators",
                format!("must be an object, got {}", kind_of(other)),
            ));
        }
    };
    let set_metadata = match top.get("metadata") {
        None => None,
        Some(metadata) => Some(metadata_of(metadata, "metadata")?),
    };
    let mut compiler = Compiler::new(evaluators);
    Ok(flags
        .iter()
        .map(|(key, flag)| {
            let parsed = Definition::parse(
                key,
                flag,
                &mut compiler,
                set_metadata.clone(),
                bucketing,
                || self_contained(top, key, flag),
            );
            (key.clone(), parsed.map(Arc::new))
        })
        .collect())
}

/// A single flag object (`{"state": …, "variants": …}`) named `key`, with no shared evaluators.
pub fn parse_flag(key: &str, flag: &Value, bucketing: Bucketing) -> Result<Definition, Problem> {
    let mut compiler = Compiler::new(None);
    Definition::parse(key, flag, &mut compiler, None, bucketing, || {
        let mut flags = Map::new();
        flags.insert(key.to_owned(), flag.clone());
        Value::Object(Map::from_iter([("flags".to_owned(), Value::Object(flags))]))
    })
}

/// A one-flag document holding `flag` and what it needs from `top`: the evaluators it uses
/// (through others too) and the flag-set metadata.
fn self_contained(top: &Map<String, Value>, key: &str, flag: &Value) -> Value {
    let mut document = Map::new();
    document.insert(
        "flags".into(),
        Value::Object(Map::from_iter([(key.to_owned(), flag.clone())])),
    );
    if let Some(Value::Object(evaluators)) = top.get("$evaluators") {
        let mut used = Map::new();
        let mut pending = Vec::new();
        references(flag, &mut pending);
        while let Some(name) = pending.pop() {
            if used.contains_key(&name) {
                continue;
            }
            if let Some(rule) = evaluators.get(&name) {
                references(rule, &mut pending);
                used.insert(name, rule.clone());
            }
        }
        if !used.is_empty() {
            document.insert("$evaluators".into(), Value::Object(used));
        }
    }
    if let Some(metadata) = top.get("metadata") {
        document.insert("metadata".into(), metadata.clone());
    }
    Value::Object(document)
}

/// The evaluators `value` names in a `{"$ref": name}`.
fn references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => match (map.len(), map.get("$ref")) {
            (1, Some(Value::String(name))) => found.push(name.clone()),
            _ => map.values().for_each(|v| references(v, found)),
        },
        Value::Array(items) => items.iter().for_each(|v| references(v, found)),
        _ => {}
    }
}

impl Definition {
    fn parse(
        key: &str,
        flag: &Value,
        compiler: &mut Compiler<'_>,
        set_metadata: Option<Map<String, Value>>,
        bucketing: Bucketing,
        source: impl FnOnce() -> Value,
    ) -> Result<Self, Problem> {
        let at = |field: &str| format!("flags.{key}.{field}");
        let Value::Object(map) = flag else {
            return Err(invalid(
                &format!("flags.{key}"),
                format!("a flag must be an object, got {}", kind_of(flag)),
            ));
        };
        for field in map.keys() {
            if !matches!(
                field.as_str(),
                "state"
                    | "variants"
                    | "defaultVariant"
                    | "targeting"
                    | "metadata"
                    | "source"
                    | "selector"
            ) {
                return Err(invalid(&at(field), "is not a field of a flag (state, variants, defaultVariant, targeting, metadata)".into()));
            }
        }
        let enabled = match map.get("state") {
            Some(Value::String(s)) if s == "ENABLED" => true,
            Some(Value::String(s)) if s == "DISABLED" => false,
            Some(other) => {
                return Err(invalid(
                    &at("state"),
                    format!(
                        "must be \"ENABLED\" or \"DISABLED\", got {}",
                        kind_of(other)
                    ),
                ));
            }
            None => return Err(invalid(&at("state"), "is required".into())),
        };
        let Some(Value::Object(variant_map)) = map.get("variants") else {
            return Err(invalid(
                &at("variants"),
                "is required: an object of variants by name".into(),
            ));
        };
        // Variants of mixed types, `null` ones and arrays break flagd's schema (`lint` says so)
        // but load, as in flagd's evaluators: a caller asking for a type gets `TYPE_MISMATCH`,
        // and a `null` variant is an error (`GENERAL`) when chosen.
        let variants: Vec<(Box<str>, Value)> = variant_map
            .iter()
            .map(|(name, value)| (Box::<str>::from(name.as_str()), value.clone()))
            .collect();
        if variants.is_empty() {
            return Err(invalid(
                &at("variants"),
                "must hold at least one variant".into(),
            ));
        }
        let kind = Kind::shared(variants.iter().map(|(_, value)| value));
        let mut default_missing = false;
        let default_variant = match map.get("defaultVariant") {
            None | Some(Value::Null) => None,
            Some(Value::String(name)) if name.is_empty() => None,
            Some(Value::String(name)) => {
                let at = variants.iter().position(|(n, _)| **n == **name);
                default_missing = at.is_none();
                at
            }
            Some(other) => {
                return Err(invalid(
                    &at("defaultVariant"),
                    format!("must be a variant name or null, got {}", kind_of(other)),
                ));
            }
        };
        let targeting = match map.get("targeting") {
            None => None,
            Some(Value::Object(rule)) if rule.is_empty() => None,
            Some(rule @ Value::Object(_)) => Some(
                compiler
                    .compile(rule, &at("targeting"))
                    .map_err(|e| Problem::Definition {
                        field: e.field,
                        problem: e.problem,
                    })?,
            ),
            Some(other) => {
                return Err(invalid(
                    &at("targeting"),
                    format!("must be an object, got {}", kind_of(other)),
                ));
            }
        };
        let split = targeting
            .as_ref()
            .and_then(Compiled::plain_split)
            .and_then(|(names, _, _)| {
                names
                    .iter()
                    .map(|name| {
                        let name = name.as_str()?;
                        Some(
                            variants
                                .iter()
                                .position(|(n, v)| **n == *name && !n.is_empty() && !v.is_null()),
                        )
                    })
                    .collect::<Option<Box<[Option<usize>]>>>()
            });
        let mut metadata = set_metadata.unwrap_or_default();
        if let Some(flag_metadata) = map.get("metadata") {
            metadata.extend(metadata_of(flag_metadata, &at("metadata"))?);
        }
        // A `Value` always serializes (its keys are strings); what is written must read back
        // (the wire and export carry it): a variant nested past what JSON readers accept (128
        // levels, with the document around it) is refused here, at load.
        let source = serde_json::to_string(&source()).unwrap_or_default();
        if let Err(e) = serde_json::from_str::<Value>(&source) {
            return Err(invalid(
                &at("variants"),
                format!("nest deeper than a JSON reader accepts ({e})"),
            ));
        }
        // Counted only when every name the metrics would carry is a CloudWatch dimension value:
        // a line breaking the rule would be dropped, counts and all.
        let experiment = metadata.get(crate::experiment::MARKER) == Some(&Value::Bool(true))
            && crate::experiment::dimension_value(key, MAX_DIMENSION_LEN).is_ok()
            && variants.iter().all(|(name, _)| {
                crate::experiment::dimension_value(name, MAX_DIMENSION_LEN).is_ok()
            });
        Ok(Self {
            key: key.into(),
            enabled,
            variants: variants.into_boxed_slice(),
            kind,
            default_variant,
            default_missing,
            targeting,
            powertools: None,
            split,
            experiment,
            metadata,
            bucketing,
            source: source.into(),
        })
    }

    /// A Powertools feature: its rules' variants in order, then `default` (the default
    /// variant), resolved by `feature`; `source` is the feature as a one-feature document.
    pub(crate) fn powertools(
        key: &str,
        variants: Vec<(Box<str>, Value)>,
        feature: powertools::Feature,
        source: String,
    ) -> Self {
        Self {
            key: key.into(),
            enabled: true,
            default_variant: Some(variants.len().saturating_sub(1)),
            kind: Kind::shared(variants.iter().map(|(_, value)| value)),
            variants: variants.into_boxed_slice(),
            default_missing: false,
            targeting: None,
            powertools: Some(Box::new(feature)),
            split: None,
            metadata: Map::new(),
            experiment: false,
            bucketing: Bucketing::V3,
            source: source.into(),
        }
    }

    /// Whether this is a Powertools feature (its variants are its rules and `default`).
    pub fn is_powertools(&self) -> bool {
        self.powertools.is_some()
    }

    /// The flag's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The type every variant has; `None` when they differ (or one is `null` or an array).
    pub fn kind(&self) -> Option<Kind> {
        self.kind
    }

    /// Whether its `state` is `ENABLED`.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Its variants, in the order they were defined.
    pub fn variants(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> {
        self.variants.iter().map(|(name, value)| (&**name, value))
    }

    /// Its default variant's name, if it has one.
    pub fn default_variant(&self) -> Option<&str> {
        self.default_variant.map(|i| &*self.variants[i].0)
    }

    /// Its metadata: the flag set's, overridden by the flag's own.
    pub fn metadata(&self) -> &Map<String, Value> {
        &self.metadata
    }

    /// Whether it is an experiment: its metadata says `"experiment": true`
    /// ([`crate::experiment::MARKER`]), and its key and variant names are CloudWatch dimension
    /// values ([`crate::experiment::dimension_value`]).
    #[inline]
    pub fn is_experiment(&self) -> bool {
        self.experiment
    }

    /// The bucketing `fractional` uses for this flag.
    pub fn bucketing(&self) -> Bucketing {
        self.bucketing
    }

    /// Whether the answer may differ between contexts (the targeting reads the context).
    pub fn reads_context(&self) -> bool {
        if let Some(feature) = &self.powertools {
            return feature.has_rules();
        }
        self.enabled
            && self
                .targeting
                .as_ref()
                .is_some_and(|t| t.reads_context || t.reads_time)
    }

    /// Whether the answer may change with time alone (the targeting reads `$flagd.timestamp`).
    pub fn reads_time(&self) -> bool {
        if let Some(feature) = &self.powertools {
            return feature.reads_time();
        }
        self.enabled && self.targeting.as_ref().is_some_and(|t| t.reads_time)
    }

    /// Whether every context, at every time, gets the same answer.
    pub fn is_constant(&self) -> bool {
        if let Some(feature) = &self.powertools {
            return !feature.has_rules();
        }
        !self.enabled || self.targeting.is_none()
    }

    /// The flag as a self-contained document (`flags` holding it alone, with the evaluators and
    /// flag-set metadata of the document it came from), as compact JSON text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// [`Definition::source`], parsed.
    pub fn to_document(&self) -> Value {
        serde_json::from_str(&self.source).unwrap_or(Value::Null)
    }

    /// Resolves the flag for the data a rule reads.
    pub(crate) fn resolve<D: Data + ?Sized>(&self, data: &D) -> Resolution<'_> {
        if let Some(feature) = &self.powertools {
            return match feature.matching_rule(data) {
                Some(at) => {
                    let (name, value) = &self.variants[at];
                    Resolution {
                        variant: Some((name, value)),
                        reason: Reason::TargetingMatch,
                        error: None,
                    }
                }
                None if feature.has_rules() => self.default_resolution(Reason::Default),
                None => self.default_resolution(Reason::Static),
            };
        }
        if !self.enabled {
            return Resolution {
                variant: None,
                reason: Reason::Disabled,
                error: None,
            };
        }
        let Some(targeting) = &self.targeting else {
            return self.default_resolution(Reason::Static);
        };
        if let (Some(variants), Some((_, cumulative, total))) =
            (&self.split, targeting.plain_split())
        {
            return self.split_resolution(data, variants, cumulative, total);
        }
        let env = self.env(targeting, data);
        let chosen = env.eval(&targeting.expr);
        if env.failed.get() {
            return Resolution::error(ErrorCode::General);
        }
        // A result names a variant: a string as it is, a boolean as `true`/`false`, anything
        // else as Python's `str()` writes it (flagd's Python evaluator, which the differential
        // test pins); `null` names none.
        let owned;
        let name = match &chosen {
            Val::Null => return self.default_resolution(Reason::Default),
            Val::Str(name) => &**name,
            Val::Bool(true) => "true",
            Val::Bool(false) => "false",
            other => {
                owned = other.python_str();
                &owned
            }
        };
        match self
            .variants
            .iter()
            .find(|(n, v)| same_name(n, name) && !n.is_empty() && !v.is_null())
        {
            Some((name, value)) => Resolution {
                variant: Some((name, value)),
                reason: if env.split.get() {
                    Reason::Split
                } else {
                    Reason::TargetingMatch
                },
                error: None,
            },
            None => Resolution::error(ErrorCode::General),
        }
    }

    /// A plain split, from the hash straight to the variant: what evaluating its `fractional`
    /// gives (no targeting key → the default variant; a bucket naming no variant → `GENERAL`).
    #[inline]
    fn split_resolution<D: Data + ?Sized>(
        &self,
        data: &D,
        variants: &[Option<usize>],
        cumulative: &[u64],
        total: u64,
    ) -> Resolution<'_> {
        let hash = match data.targeting_key() {
            Some(Val::Str(key)) if !key.is_empty() => {
                ops::hash_keys(self.bucketing, &self.key, &key)
            }
            _ => return self.default_resolution(Reason::Default),
        };
        let point = (u64::from(hash) * total) >> 32;
        match cumulative
            .iter()
            .position(|&c| point < c)
            .map(|at| variants.get(at))
        {
            Some(Some(Some(index))) => {
                let (name, value) = &self.variants[*index];
                Resolution {
                    variant: Some((name, value)),
                    reason: Reason::Split,
                    error: None,
                }
            }
            Some(Some(None)) => Resolution::error(ErrorCode::General),
            _ => self.default_resolution(Reason::Default),
        }
    }

    /// Resolves the flag and says how: the top-level `if`'s conditions in order, the branch
    /// whose result named the variant, and a `fractional`'s bucket point.
    pub(crate) fn explain<D: Data + ?Sized>(&self, data: &D) -> Explanation<'_> {
        let resolution = self.resolve(data);
        let mut explanation = Explanation {
            resolution,
            conditions: Vec::new(),
            branch: None,
            bucket: None,
        };
        if let Some(feature) = &self.powertools {
            explanation.conditions = feature.explain(data);
            if let (Reason::TargetingMatch, Some((name, _))) =
                (resolution.reason, resolution.variant)
            {
                explanation.branch = Some(format!("rules.{name}"));
            }
            return explanation;
        }
        let (true, Some(targeting)) = (self.enabled, &self.targeting) else {
            return explanation;
        };
        let env = self.env(targeting, data);
        match targeting.root_if() {
            Some(args) => {
                let mut pairs = args.chunks_exact(2);
                let mut at = 0;
                let mut taken = None;
                for pair in pairs.by_ref() {
                    let held = env.holds(&pair[0]);
                    explanation
                        .conditions
                        .push((format!("targeting.if[{at}]"), held));
                    if held {
                        taken = Some((at + 1, &pair[1]));
                        break;
                    }
                    at += 2;
                }
                if taken.is_none()
                    && let [otherwise] = pairs.remainder()
                {
                    taken = Some((args.len() - 1, otherwise));
                }
                if let Some((index, branch)) = taken {
                    explanation.branch = Some(format!("targeting.if[{index}]"));
                    env.eval(branch);
                }
            }
            None => {
                explanation.branch = Some("targeting".to_owned());
                match (&self.split, targeting.plain_split()) {
                    (Some(_), Some((_, _, total))) => {
                        if let Some(Val::Str(key)) = data.targeting_key()
                            && !key.is_empty()
                        {
                            let hash = ops::hash_keys(self.bucketing, &self.key, &key);
                            env.point
                                .set(Some(((u64::from(hash) * total) >> 32, total)));
                        }
                    }
                    _ => {
                        env.eval(&targeting.expr);
                    }
                }
            }
        }
        explanation.bucket = env.point.get();
        explanation
    }

    /// An evaluation of `targeting` for `data`, the clock read once if the rule reads it.
    #[inline]
    fn env<'a, D: Data + ?Sized>(&'a self, targeting: &Compiled, data: &'a D) -> Env<'a, D> {
        Env {
            data,
            flag_key: &self.key,
            timestamp: if targeting.reads_time { now() } else { 0 },
            bucketing: self.bucketing,
            split: Cell::new(false),
            failed: Cell::new(false),
            point: Cell::new(None),
        }
    }

    fn default_resolution(&self, reason: Reason) -> Resolution<'_> {
        if self.default_missing {
            return Resolution::error(ErrorCode::General);
        }
        Resolution {
            variant: self.default_variant.map(|i| {
                let (name, value) = &self.variants[i];
                (&**name, value)
            }),
            reason: if self.default_variant.is_some() {
                reason
            } else {
                Reason::Default
            },
            error: None,
        }
    }
}

/// `a == b` for variant names, which are short: compared in line, not through `memcmp`.
#[inline]
fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// Seconds since the Unix epoch: `$flagd.timestamp`.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn metadata_of(value: &Value, field: &str) -> Result<Map<String, Value>, Problem> {
    let Value::Object(map) = value else {
        return Err(invalid(
            field,
            format!("must be an object, got {}", kind_of(value)),
        ));
    };
    for (key, item) in map {
        if !matches!(item, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
            return Err(invalid(
                &format!("{field}.{key}"),
                format!("must be a string, number or boolean, got {}", kind_of(item)),
            ));
        }
    }
    Ok(map.clone())
}

fn invalid(field: &str, problem: String) -> Problem {
    Problem::Definition {
        field: field.to_owned(),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::Context;
    use serde_json::json;

    fn flag(targeting: Value) -> Value {
        json!({"state": "ENABLED", "variants": {"a": "a", "b": "b"}, "defaultVariant": "a", "targeting": targeting})
    }

    fn problem(document: Value) -> String {
        let parsed = parse_document(&document, Bucketing::V3).expect("a document");
        let broken: Vec<String> = parsed
            .into_iter()
            .filter_map(|(key, result)| result.err().map(|p| format!("{key}: {p}")))
            .collect();
        broken.join("\n")
    }

    #[test]
    fn one_broken_flag_names_its_field_and_the_others_load() {
        let document = json!({"flags": {
            "good": flag(json!({"if": [{"==": [{"var": "plan"}, "pro"]}, "b", "a"]})),
            "unknown-op": flag(json!({"if": [{"like": [{"var": "plan"}, "p%"]}, "b", "a"]})),
            "bad-state": {"state": "ON", "variants": {"a": 1}},
        }});
        let parsed = parse_document(&document, Bucketing::V3).expect("a document");
        assert!(parsed.iter().any(|(k, r)| k == "good" && r.is_ok()));
        let text = problem(document);
        assert!(
            text.contains(
                "unknown-op: `flags.unknown-op.targeting.if[0].like` unknown operator `like`"
            ),
            "{text}"
        );
        assert!(
            text.contains("bad-state: `flags.bad-state.state` must be"),
            "{text}"
        );
    }

    #[test]
    fn refs_must_be_defined_and_acyclic() {
        let text = problem(json!({
            "flags": {"f": flag(json!({"$ref": "nowhere"}))}
        }));
        assert!(
            text.contains("evaluator `nowhere`, which `$evaluators` does not define"),
            "{text}"
        );
        let text = problem(json!({
            "$evaluators": {"x": {"$ref": "y"}, "y": {"or": [{"$ref": "x"}]}},
            "flags": {"f": flag(json!({"$ref": "x"}))}
        }));
        assert!(text.contains("`$ref` cycle: x → y → x"), "{text}");
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        // Documents arrive as text, and serde_json refuses one nested past 128 levels; anything
        // it accepts deeper than the bound is refused at load.
        let deep = format!(
            "{}{{\"var\": \"x\"}}{}",
            "{\"!\": [".repeat(60),
            "]}".repeat(60)
        );
        let deep: Value = serde_json::from_str(&deep).expect("60 levels parse");
        let text = problem(json!({"flags": {"deep": flag(deep)}}));
        assert!(
            text.contains(&format!("nests deeper than {MAX_DEPTH} levels")),
            "{text}"
        );
        // A chain of evaluators, each shallow, is bounded too.
        let mut evaluators = Map::new();
        for i in 0..200 {
            evaluators.insert(
                format!("e{i}"),
                json!({"!": [{"$ref": format!("e{}", i + 1)}]}),
            );
        }
        evaluators.insert("e200".into(), json!({"var": "x"}));
        let text = problem(
            json!({"$evaluators": evaluators, "flags": {"f": flag(json!({"$ref": "e0"}))}}),
        );
        assert!(text.contains("nests deeper than"), "{text}");
    }

    #[test]
    fn a_tree_too_large_to_evaluate_is_refused_even_through_shared_refs() {
        // Evaluators that use the one before twice: each compiled once (no blow-up in memory),
        // but an evaluation would walk 2^20 nodes, so the node bound counts every use.
        let mut evaluators = Map::new();
        evaluators.insert("d0".into(), json!({"==": [{"var": "x"}, 1]}));
        for i in 1..=20 {
            evaluators.insert(
                format!("d{i}"),
                json!({"and": [{"$ref": format!("d{}", i - 1)}, {"$ref": format!("d{}", i - 1)}]}),
            );
        }
        let document = json!({"$evaluators": evaluators, "flags": {"f": flag(json!({"if": [{"$ref": "d20"}, "b", "a"]}))}});
        let text = problem(document);
        assert!(text.contains(&format!("more than {MAX_NODES}")), "{text}");
        // One literal tree past the bound is refused too.
        let wide: Vec<Value> = (0..MAX_NODES)
            .map(|i| json!({"==": [{"var": "x"}, i]}))
            .collect();
        let text = problem(json!({"flags": {"wide": flag(json!({"or": wide}))}}));
        assert!(text.contains(&format!("more than {MAX_NODES}")), "{text}");
    }

    #[test]
    fn resolutions_follow_flagd() {
        let document = json!({"flags": {
            "off": {"state": "DISABLED", "variants": {"a": 1}, "defaultVariant": "a"},
            "static": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a"},
            "no-default": {"state": "ENABLED", "variants": {"a": 1}},
            "split": {"state": "ENABLED", "variants": {"a": 1, "b": 2}, "defaultVariant": "a",
                      "targeting": {"fractional": [["a", 50], ["b", 50]]}},
            "unknown": flag(json!("nope")),
            "zero": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a",
                     "targeting": {"/": [1, 0]}},
        }});
        let flags: std::collections::HashMap<String, Arc<Definition>> =
            parse_document(&document, Bucketing::V3)
                .expect("a document")
                .into_iter()
                .filter_map(|(k, r)| r.ok().map(|d| (k, d)))
                .collect();
        let user = Context::user("u-1");
        let reason = |name: &str| {
            let r = flags[name].resolve(&user);
            (r.reason, r.error, r.variant.map(|(n, _)| n.to_owned()))
        };
        assert_eq!(reason("off"), (Reason::Disabled, None, None));
        assert_eq!(reason("static"), (Reason::Static, None, Some("a".into())));
        assert_eq!(reason("no-default"), (Reason::Default, None, None));
        assert_eq!(reason("split").0, Reason::Split);
        assert_eq!(
            reason("zero"),
            (Reason::Error, Some(ErrorCode::General), None)
        );
        assert!(
            !flags.contains_key("unknown"),
            "targeting that is not an object is refused"
        );
        assert!(flags["static"].is_constant() && !flags["split"].is_constant());
        assert!(!flags["split"].reads_time());
    }

    #[test]
    fn a_flag_carries_the_evaluators_it_uses_and_no_others() {
        let document = json!({
            "$evaluators": {"a": {"$ref": "b"}, "b": {"==": [{"var": "x"}, 1]}, "unused": true},
            "metadata": {"team": "t"},
            "flags": {"f": flag(json!({"if": [{"$ref": "a"}, "b", "a"]}))}
        });
        let parsed = parse_document(&document, Bucketing::V3).expect("a document");
        let definition = parsed[0].1.as_ref().expect("valid");
        let own = definition.to_document();
        assert_eq!(
            own["$evaluators"],
            json!({"a": {"$ref": "b"}, "b": {"==": [{"var": "x"}, 1]}})
        );
        assert_eq!(own["metadata"], json!({"team": "t"}));
        // The one-flag document reads back as the same flag.
        let again = parse_document(&own, Bucketing::V3).expect("a document");
        assert_eq!(again[0].1.as_ref().ok(), Some(definition));
    }
}
