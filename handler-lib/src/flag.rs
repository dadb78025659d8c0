//! [`Flag`]: a handle on one flag that never fails.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use crate::error::FlagError;
use crate::eval::{self, Context, Evaluation, Reason};
use crate::model::FlagValue;
use crate::snapshot::{FlagEntry, Snapshot};

/// A handle on one flag in one snapshot. Every read answers: a missing, broken or non-toggle flag
/// reads as its default (`false` unless set with [`Flag::default_to`] or [`crate::get_or`]).
///
/// The handle keeps its snapshot alive, so repeated reads through it agree.
#[derive(Debug, Clone)]
pub struct Flag {
    snapshot: Arc<Snapshot>,
    slot: Option<usize>,
    default: bool,
}

impl Flag {
    pub(crate) fn new(snapshot: Arc<Snapshot>, slot: Option<usize>) -> Self {
        Self {
            snapshot,
            slot,
            default: false,
        }
    }

    /// Sets what the flag reads as when it is missing, invalid, or not a toggle.
    pub fn default_to(mut self, default: bool) -> Self {
        self.default = default;
        self
    }

    fn entry(&self) -> Option<&FlagEntry> {
        self.slot.and_then(|slot| self.snapshot.entries().get(slot))
    }

    fn value(&self) -> Option<&FlagValue> {
        self.entry().and_then(|entry| entry.value().ok())
    }

    /// Whether the flag is on with no user (in the snapshot's default region): a boolean flag's value,
    /// or a JSON flag evaluated for an empty [`Context`].
    pub fn enabled(&self) -> bool {
        self.evaluate(&Context::new()).enabled
    }

    /// Whether the flag is on for this context.
    pub fn enabled_for(&self, context: &Context<'_>) -> bool {
        self.evaluate(context).enabled
    }

    /// Evaluates the flag for a context and says why it is on or off.
    pub fn evaluate(&self, context: &Context<'_>) -> Evaluation {
        let Some(entry) = self.entry() else {
            return self.fallback(Reason::Default);
        };
        match entry.value() {
            Ok(FlagValue::Bool(on)) => Evaluation {
                enabled: *on,
                reason: Reason::Static,
            },
            Ok(FlagValue::Json(flag)) => {
                eval::evaluate(flag.rules(), context, self.snapshot.default_region())
            }
            Ok(FlagValue::List(_) | FlagValue::Text(_)) => self.fallback(Reason::Config),
            Err(_) => self.fallback(Reason::Error),
        }
    }

    fn fallback(&self, reason: Reason) -> Evaluation {
        Evaluation {
            enabled: self.default,
            reason,
        }
    }

    /// Whether the flag exists in the snapshot (valid or not).
    pub fn is_known(&self) -> bool {
        self.slot.is_some()
    }

    /// Why the flag's value is invalid, if it is.
    pub fn error(&self) -> Option<&FlagError> {
        self.entry().and_then(|entry| entry.value().err())
    }

    /// The SSM parameter version of the value, if the flag exists.
    pub fn ssm_version(&self) -> Option<u64> {
        self.entry().map(FlagEntry::ssm_version)
    }

    /// The version of the snapshot this handle reads.
    pub fn snapshot_version(&self) -> u64 {
        self.snapshot.version()
    }

    /// The JSON document of a JSON flag.
    pub fn json(&self) -> Option<&Value> {
        match self.value() {
            Some(FlagValue::Json(flag)) => Some(flag.document()),
            _ => None,
        }
    }

    /// Deserializes a JSON flag's whole document into the caller's type (borrowing is allowed).
    pub fn config<'a, T: Deserialize<'a>>(&'a self) -> Result<T, ConfigError> {
        let document = self.json().ok_or(ConfigError::NotJson)?;
        T::deserialize(document).map_err(ConfigError::Shape)
    }

    /// Like [`Flag::config`], with a default when the flag is missing, invalid or of another shape.
    pub fn config_or<'a, T: Deserialize<'a>>(&'a self, default: T) -> T {
        self.config().unwrap_or(default)
    }

    /// One field of a JSON flag, if present and of type `T`.
    pub fn field<'a, T: Deserialize<'a>>(&'a self, name: &str) -> Option<T> {
        self.json()
            .and_then(|document| document.get(name))
            .and_then(|value| T::deserialize(value).ok())
    }

    /// One field of a JSON flag, or `default` when absent or of another type.
    pub fn field_or<'a, T: Deserialize<'a>>(&'a self, name: &str, default: T) -> T {
        self.field(name).unwrap_or(default)
    }

    /// `fallback_on_error` of a JSON flag (false otherwise): whether the application may fall back
    /// to its old path when the new one fails.
    pub fn fallback_on_error(&self) -> bool {
        match self.value() {
            Some(FlagValue::Json(flag)) => flag.rules().fallback_on_error,
            _ => false,
        }
    }

    /// A plain string config value.
    pub fn as_str(&self) -> Option<&str> {
        match self.value() {
            Some(FlagValue::Text(text)) => Some(text),
            _ => None,
        }
    }

    /// A `StringList` config value.
    pub fn as_list(&self) -> Option<&[String]> {
        match self.value() {
            Some(FlagValue::List(items)) => Some(items),
            _ => None,
        }
    }
}

/// Why [`Flag::config`] could not produce a value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The flag is missing, invalid, or not a JSON flag.
    #[error("the flag is not a valid JSON flag")]
    NotJson,
    /// The document does not have the shape of the requested type.
    #[error("the flag's JSON does not match the requested type: {0}")]
    Shape(serde_json::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ParameterKind;

    fn snapshot() -> Arc<Snapshot> {
        let raw = [
            ("dark-mode", ParameterKind::String, "true"),
            ("off", ParameterKind::String, "false"),
            (
                "new-payment-processor",
                ParameterKind::String,
                r#"{"enabled": true, "rollout_percentage": 5, "fallback_on_error": true,
                    "processor": {"name": "stripe-v2", "timeout_ms": 800}}"#,
            ),
            ("broken", ParameterKind::String, r#"{"enabled": "yes"}"#),
            ("api-url", ParameterKind::String, "https://api.example.com"),
            ("regions", ParameterKind::StringList, "us-east-1,eu-west-1"),
        ];
        Arc::new(Snapshot::new(
            9,
            crate::wire::Status::Ok,
            raw.into_iter().map(|(name, kind, value)| {
                FlagEntry::from_parameter(&crate::model::Parameter {
                    flag: name.to_owned(),
                    name: format!("/p/{name}"),
                    kind,
                    value: value.to_owned(),
                    version: 2,
                })
            }),
        ))
    }

    #[test]
    fn boolean_flags_read_their_value() {
        let s = snapshot();
        assert!(s.get("dark-mode").enabled());
        assert!(!s.get("off").enabled());
        assert!(
            !s.get("off").default_to(true).enabled(),
            "a set flag ignores the default"
        );
        assert_eq!(
            s.get("dark-mode").evaluate(&Context::new()).reason,
            Reason::Static
        );
    }

    #[test]
    fn missing_flags_read_as_their_default() {
        let s = snapshot();
        let missing = s.get("nope");
        assert!(!missing.is_known());
        assert!(!missing.enabled());
        assert!(missing.clone().default_to(true).enabled());
        assert_eq!(missing.evaluate(&Context::new()).reason, Reason::Default);
        assert_eq!(missing.ssm_version(), None);
        assert_eq!(missing.field_or("x", 5), 5);
    }

    #[test]
    fn broken_flags_read_as_their_default_and_say_why() {
        let s = snapshot();
        let broken = s.get("broken");
        assert!(broken.is_known());
        assert!(!broken.enabled());
        assert!(broken.clone().default_to(true).enabled());
        let e = broken.evaluate(&Context::user("alice"));
        assert_eq!(e.reason, Reason::Error);
        assert_eq!(
            broken.error().map(ToString::to_string).as_deref(),
            Some("parameter /p/broken: field `enabled` must be true or false, got string \"yes\"")
        );
    }

    #[test]
    fn config_values_are_not_toggles() {
        let s = snapshot();
        assert_eq!(s.get("api-url").as_str(), Some("https://api.example.com"));
        assert_eq!(
            s.get("regions").as_list(),
            Some(&["us-east-1".to_owned(), "eu-west-1".to_owned()][..])
        );
        assert_eq!(
            s.get("api-url").evaluate(&Context::new()).reason,
            Reason::Config
        );
        assert!(s.get("regions").default_to(true).enabled());
        assert_eq!(s.get("dark-mode").as_str(), None);
    }

    #[test]
    fn typed_config_and_fields() {
        #[derive(Deserialize, Debug, PartialEq)]
        struct Processor<'a> {
            name: &'a str,
            timeout_ms: u32,
        }
        #[derive(Deserialize)]
        struct Payment<'a> {
            rollout_percentage: u8,
            #[serde(borrow)]
            processor: Processor<'a>,
        }
        let s = snapshot();
        let flag = s.get("new-payment-processor");
        let cfg: Payment<'_> = flag.config().expect("shape");
        assert_eq!(cfg.rollout_percentage, 5);
        assert_eq!(
            cfg.processor,
            Processor {
                name: "stripe-v2",
                timeout_ms: 800
            }
        );
        assert_eq!(flag.field::<u32>("rollout_percentage"), Some(5));
        assert_eq!(flag.field::<String>("rollout_percentage"), None);
        assert_eq!(flag.field_or("retries", 3), 3);
        assert!(flag.fallback_on_error());
        assert_eq!(flag.ssm_version(), Some(2));
        assert_eq!(flag.snapshot_version(), 9);
    }

    #[test]
    fn config_errors_say_what_is_wrong() {
        let s = snapshot();
        assert!(matches!(
            s.get("dark-mode").config::<Value>(),
            Err(ConfigError::NotJson)
        ));
        let shape = s
            .get("new-payment-processor")
            .config::<Vec<u8>>()
            .expect_err("not an array");
        assert!(
            shape
                .to_string()
                .starts_with("the flag's JSON does not match"),
            "{shape}"
        );
        assert_eq!(s.get("broken").config_or(7u8), 7);
    }

    #[test]
    fn json_rollout_evaluates_per_user() {
        let s = snapshot();
        let flag = s.get("new-payment-processor");
        // alice is bucket 1 (in at 5%), bob is bucket 33 (out).
        assert!(flag.enabled_for(&Context::user("alice")));
        assert!(!flag.enabled_for(&Context::user("bob")));
        assert!(!flag.enabled(), "no user: rollout cannot place it");
    }
}
