//! Typed evaluation: what a flag resolves to for a context — its value, the variant's name, the
//! OpenFeature reason and error code, and the flag's metadata ([`Variant`]).

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::eval::{Context, Reason};
use crate::flagd::{self, ErrorCode};
use crate::model::FlagValue;
use crate::snapshot::{FlagEntry, Snapshot};

/// What a flag resolves to for a context: OpenFeature's resolution details.
///
/// Read from a [`crate::Flag`] it borrows from the snapshot; from a [`crate::CurrentFlag`] it
/// is owned (`Variant<'static>`).
#[derive(Debug, Clone, PartialEq)]
pub struct Variant<'s> {
    /// The value; `None` when the caller's default applies (missing, disabled, no default
    /// variant, an error).
    pub value: Option<Cow<'s, Value>>,
    /// The chosen variant's name (flagd flags only).
    pub name: Option<Cow<'s, str>>,
    /// Why: OpenFeature's reason.
    pub reason: flagd::Reason,
    /// What went wrong, with [`flagd::Reason::Error`].
    pub error: Option<ErrorCode>,
    /// The flag's metadata (a flagd flag's: its flag set's, overridden by its own).
    pub metadata: Option<Cow<'s, Map<String, Value>>>,
}

/// The type a caller asks a flag for (OpenFeature's resolution types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// `true` / `false`.
    Boolean,
    /// A string.
    String,
    /// An integer (a number with no fraction, as JSON wrote it).
    Integer,
    /// Any number.
    Float,
    /// A JSON object.
    Object,
}

impl std::str::FromStr for ValueType {
    type Err = String;

    /// OpenFeature's name of the type: `boolean`, `string`, `integer`, `float` or `object`.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Ok(match name {
            "boolean" => Self::Boolean,
            "string" => Self::String,
            "integer" => Self::Integer,
            "float" => Self::Float,
            "object" => Self::Object,
            other => {
                return Err(format!(
                    "unknown flag type {other:?}: boolean, string, integer, float or object"
                ));
            }
        })
    }
}

impl ValueType {
    /// Whether `value` is of this type.
    pub fn admits(self, value: &Value) -> bool {
        match (self, value) {
            (Self::Boolean, Value::Bool(_)) | (Self::String, Value::String(_)) => true,
            (Self::Integer, Value::Number(n)) => n.is_i64() || n.is_u64(),
            (Self::Float, Value::Number(_)) => true,
            (Self::Object, Value::Object(_) | Value::Array(_)) => true,
            _ => false,
        }
    }
}

impl<'s> Variant<'s> {
    /// An error: the caller's default.
    pub fn error(code: ErrorCode) -> Self {
        Self {
            value: None,
            name: None,
            reason: flagd::Reason::Error,
            error: Some(code),
            metadata: None,
        }
    }

    /// The same resolution checked against the type the caller asked for: a value of another
    /// type becomes `TYPE_MISMATCH` (the caller's default).
    pub fn expecting(self, wanted: ValueType) -> Self {
        match &self.value {
            Some(value) if !wanted.admits(value) => Self {
                metadata: self.metadata,
                ..Self::error(ErrorCode::TypeMismatch)
            },
            _ => self,
        }
    }

    /// A copy that borrows nothing.
    pub fn into_owned(self) -> Variant<'static> {
        Variant {
            value: self.value.map(|v| Cow::Owned(v.into_owned())),
            name: self.name.map(|n| Cow::Owned(n.into_owned())),
            reason: self.reason,
            error: self.error,
            metadata: self.metadata.map(|m| Cow::Owned(m.into_owned())),
        }
    }
}

/// What the flag `entry` of `snapshot` resolves to for `context`.
pub(super) fn resolve<'s>(
    snapshot: &'s Snapshot,
    entry: Option<&'s FlagEntry>,
    context: &Context<'_>,
) -> Variant<'s> {
    let Some(entry) = entry else {
        return Variant::error(ErrorCode::FlagNotFound);
    };
    let decided = |value: Value, reason: flagd::Reason| Variant {
        value: Some(Cow::Owned(value)),
        name: None,
        reason,
        error: None,
        metadata: None,
    };
    match entry.value() {
        Err(_) => Variant::error(ErrorCode::ParseError),
        Ok(FlagValue::Flagd(definition)) => {
            let resolution = definition.resolve(context);
            entry.expose_flagd(definition, context, &resolution);
            Variant {
                value: resolution.variant.map(|(_, value)| Cow::Borrowed(value)),
                name: resolution.variant.map(|(name, _)| Cow::Borrowed(name)),
                reason: resolution.reason,
                error: resolution.error,
                metadata: Some(if entry.is_secure() {
                    // A SecureString's definition may hold secrets, and metadata is what
                    // logging hooks write out: only `secure: true`.
                    Cow::Owned(Map::from_iter([("secure".to_owned(), Value::Bool(true))]))
                } else if definition.is_powertools() {
                    // A Powertools feature says which rule matched (none: the default).
                    let rule = match (resolution.reason, resolution.variant) {
                        (flagd::Reason::TargetingMatch, Some((name, _))) => {
                            Map::from_iter([("rule".to_owned(), Value::String(name.to_owned()))])
                        }
                        _ => Map::new(),
                    };
                    Cow::Owned(rule)
                } else {
                    Cow::Borrowed(definition.metadata())
                }),
            }
        }
        Ok(FlagValue::Bool(on)) => decided(Value::Bool(*on), flagd::Reason::Static),
        Ok(FlagValue::Json(_)) => {
            let evaluation = snapshot.evaluate_entry(Some(entry), context, false);
            decided(
                Value::Bool(evaluation.enabled),
                seed_reason(evaluation.reason),
            )
        }
        Ok(FlagValue::Text(text)) => decided(Value::String(text.clone()), flagd::Reason::Static),
        Ok(FlagValue::List(items)) => decided(
            Value::Array(items.iter().cloned().map(Value::String).collect()),
            flagd::Reason::Static,
        ),
    }
}

/// A seed JSON flag's reason as OpenFeature names it (see [`Reason::openfeature`]).
fn seed_reason(reason: Reason) -> flagd::Reason {
    match reason.openfeature() {
        "DISABLED" => flagd::Reason::Disabled,
        "TARGETING_MATCH" => flagd::Reason::TargetingMatch,
        "SPLIT" => flagd::Reason::Split,
        "DEFAULT" => flagd::Reason::Default,
        "ERROR" => flagd::Reason::Error,
        _ => flagd::Reason::Static,
    }
}
