//! An OpenFeature provider (`open-feature` crate, feature `openfeature`) over the in-process
//! snapshot: handlers that read flags through the vendor-neutral OpenFeature API get the same
//! values as `flags::get`, with no I/O per evaluation (the snapshot is kept current by
//! [`crate::FlagsLayer`], [`crate::sync`] or [`crate::watch`], as for any read).
//!
//! ```no_run
//! # async fn main_() {
//! let mut api = open_feature::OpenFeature::singleton_mut().await;
//! api.set_provider(flags::openfeature::SnapshotProvider::new()).await;
//! # }
//! ```
//!
//! Resolution follows the OFREP mapping of the extension (README, "OpenFeature"): a toggle
//! (boolean or JSON rules flag) resolves as a bool, with variant `on` / `off` and the reason
//! `STATIC`, `TARGETING_MATCH`, `SPLIT` or `DISABLED`; a text flag as a string (and as an int or
//! float when it reads as one); a JSON flag's document as a struct (its config). A missing flag is
//! `FLAG_NOT_FOUND`, an invalid one `PARSE_ERROR`, another type `TYPE_MISMATCH`. The context's
//! targeting key is the user id, its `region` field the region, every other field an attribute
//! (by its string form). The provider's status follows the snapshot: `ok` → ready, `stale` or
//! `fallback` → stale, `degraded` (no flags yet) → error.

use std::sync::Arc;

use open_feature::provider::{
    FeatureProvider, ProviderMetadata, ProviderStatus, ResolutionDetails,
};
use open_feature::{
    EvaluationContext, EvaluationContextFieldValue, EvaluationError, EvaluationErrorCode,
    EvaluationReason, EvaluationResult, FlagMetadata, StructValue, Value,
};

use crate::eval::{Context, Reason};
use crate::global::GLOBAL;
use crate::model::FlagValue;
use crate::snapshot::Snapshot;
use crate::store::Store;
use crate::wire::Status;

/// Where the provider reads flags.
#[derive(Debug, Clone)]
enum Source {
    /// The process-wide snapshot (`flags::get`'s).
    Global,
    /// A store of its own (tests, several flag sets in one process).
    Store(Arc<Store>),
}

/// An OpenFeature provider reading the in-process snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotProvider {
    metadata: ProviderMetadata,
    source: Source,
}

impl Default for SnapshotProvider {
    fn default() -> Self {
        Self::new()
    }
}

impl SnapshotProvider {
    /// A provider over the process-wide snapshot.
    pub fn new() -> Self {
        Self {
            metadata: ProviderMetadata::new("ssm-flags"),
            source: Source::Global,
        }
    }

    /// A provider over `store`.
    pub fn with_store(store: Arc<Store>) -> Self {
        Self {
            metadata: ProviderMetadata::new("ssm-flags"),
            source: Source::Store(store),
        }
    }

    fn pin(&self) -> Arc<Snapshot> {
        match &self.source {
            Source::Global => GLOBAL.pin(),
            Source::Store(store) => store.pin(),
        }
    }
}

fn error(code: EvaluationErrorCode, message: String) -> EvaluationError {
    EvaluationError {
        code,
        message: Some(message),
    }
}

/// The flag's value, or `FLAG_NOT_FOUND` / `PARSE_ERROR`.
fn value_of<'s>(snapshot: &'s Snapshot, key: &str) -> EvaluationResult<&'s FlagValue> {
    let entry = snapshot.entry(key).ok_or_else(|| {
        error(
            EvaluationErrorCode::FlagNotFound,
            format!("flag {key:?} not found"),
        )
    })?;
    entry
        .value()
        .map_err(|e| error(EvaluationErrorCode::ParseError, e.to_string()))
}

fn mismatch(key: &str, asked: &str, value: &FlagValue) -> EvaluationError {
    let kind = match value {
        FlagValue::Bool(_) => "a boolean",
        FlagValue::Json(_) => "a JSON rules flag",
        FlagValue::List(_) => "a list",
        FlagValue::Text(_) => "text",
        FlagValue::Flagd(_) => "a flagd flag",
    };
    error(
        EvaluationErrorCode::TypeMismatch,
        format!("flag {key:?} is {kind}, not {asked}"),
    )
}

/// Our reason, as the `open-feature` crate's ([`Reason::openfeature`]).
fn reason_of(reason: &Reason) -> EvaluationReason {
    match reason.openfeature() {
        "STATIC" => EvaluationReason::Static,
        "DISABLED" => EvaluationReason::Disabled,
        "TARGETING_MATCH" => EvaluationReason::TargetingMatch,
        "SPLIT" => EvaluationReason::Split,
        "DEFAULT" => EvaluationReason::Default,
        "ERROR" => EvaluationReason::Error,
        other => EvaluationReason::Other(other.to_owned()),
    }
}

fn static_details<T>(value: T) -> ResolutionDetails<T> {
    ResolutionDetails {
        value,
        variant: Some("value".to_owned()),
        reason: Some(EvaluationReason::Static),
        flag_metadata: None,
    }
}

/// The context's fields as the library's: the attributes by their string form.
fn attributes(context: &EvaluationContext) -> Vec<(String, String)> {
    context
        .custom_fields
        .iter()
        .filter(|(key, _)| key.as_str() != "region")
        .filter_map(|(key, value)| {
            let text = match value {
                EvaluationContextFieldValue::Bool(b) => b.to_string(),
                EvaluationContextFieldValue::Int(i) => i.to_string(),
                EvaluationContextFieldValue::Float(f) => f.to_string(),
                EvaluationContextFieldValue::String(s) => s.clone(),
                EvaluationContextFieldValue::DateTime(t) => t.to_string(),
                EvaluationContextFieldValue::Struct(_) => return None,
            };
            Some((key.clone(), text))
        })
        .collect()
}

fn json_to_value(json: &serde_json::Value) -> Option<Value> {
    Some(match json {
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64()?),
        },
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(items) => {
            Value::Array(items.iter().filter_map(json_to_value).collect())
        }
        serde_json::Value::Object(fields) => Value::Struct(StructValue {
            fields: fields
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), json_to_value(v)?)))
                .collect(),
        }),
        serde_json::Value::Null => return None,
    })
}

#[async_trait::async_trait]
impl FeatureProvider for SnapshotProvider {
    fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    fn status(&self) -> ProviderStatus {
        match self.pin().status() {
            Status::Ok => ProviderStatus::Ready,
            Status::Stale | Status::Fallback => ProviderStatus::STALE,
            Status::Degraded => ProviderStatus::Error,
        }
    }

    async fn resolve_bool_value(
        &self,
        key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<bool>> {
        let snapshot = self.pin();
        let value = value_of(&snapshot, key)?;
        if !matches!(value, FlagValue::Bool(_) | FlagValue::Json(_)) {
            return Err(mismatch(key, "a boolean", value));
        }
        let attributes = attributes(context);
        let pairs: Vec<(&str, &str)> = attributes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut ctx = Context::new().with_attributes(&pairs);
        if let Some(user) = context.targeting_key.as_deref().filter(|u| !u.is_empty()) {
            ctx = ctx.with_user(user);
        }
        if let Some(EvaluationContextFieldValue::String(region)) =
            context.custom_fields.get("region")
        {
            ctx = ctx.with_region(region);
        }
        let evaluation = snapshot.get(key).evaluate(&ctx);
        let mut metadata = FlagMetadata::default()
            .with_value("reason_code", evaluation.reason.code())
            .with_value("detail", evaluation.to_string());
        if let Some(entry) = snapshot.entry(key) {
            for (field, v) in entry.metadata_fields() {
                let entry = match v {
                    serde_json::Value::Bool(b) => Some(open_feature::FlagMetadataValue::Bool(*b)),
                    serde_json::Value::Number(n) => n
                        .as_i64()
                        .map(open_feature::FlagMetadataValue::Int)
                        .or_else(|| n.as_f64().map(open_feature::FlagMetadataValue::Float)),
                    serde_json::Value::String(s) => {
                        Some(open_feature::FlagMetadataValue::String(s.clone()))
                    }
                    _ => None,
                };
                if let Some(entry) = entry
                    && !metadata.values.contains_key(field)
                {
                    metadata.values.insert(field.to_owned(), entry);
                }
            }
        }
        Ok(ResolutionDetails {
            value: evaluation.enabled,
            variant: Some(if evaluation.enabled { "on" } else { "off" }.to_owned()),
            reason: Some(reason_of(&evaluation.reason)),
            flag_metadata: Some(metadata),
        })
    }

    async fn resolve_int_value(
        &self,
        key: &str,
        _context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<i64>> {
        let snapshot = self.pin();
        match value_of(&snapshot, key)? {
            FlagValue::Text(text) => text.trim().parse().map(static_details).map_err(|_| {
                error(
                    EvaluationErrorCode::TypeMismatch,
                    format!("flag {key:?} is text that is not an integer"),
                )
            }),
            other => Err(mismatch(key, "an integer", other)),
        }
    }

    async fn resolve_float_value(
        &self,
        key: &str,
        _context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<f64>> {
        let snapshot = self.pin();
        match value_of(&snapshot, key)? {
            FlagValue::Text(text) => text.trim().parse().map(static_details).map_err(|_| {
                error(
                    EvaluationErrorCode::TypeMismatch,
                    format!("flag {key:?} is text that is not a number"),
                )
            }),
            other => Err(mismatch(key, "a number", other)),
        }
    }

    async fn resolve_string_value(
        &self,
        key: &str,
        _context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<String>> {
        let snapshot = self.pin();
        match value_of(&snapshot, key)? {
            FlagValue::Text(text) => Ok(static_details(text.clone())),
            other => Err(mismatch(key, "a string", other)),
        }
    }

    async fn resolve_struct_value(
        &self,
        key: &str,
        _context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<StructValue>> {
        let snapshot = self.pin();
        match value_of(&snapshot, key)? {
            FlagValue::Json(flag) => match json_to_value(flag.document()) {
                Some(Value::Struct(fields)) => Ok(static_details(fields)),
                _ => Err(error(
                    EvaluationErrorCode::ParseError,
                    format!("flag {key:?} is not an object"),
                )),
            },
            other => Err(mismatch(key, "a struct", other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(status: Status) -> SnapshotProvider {
        let params = [
            ("dark-mode", "true"),
            (
                "checkout",
                r#"{"enabled": true, "allowed_user_ids": ["alice"], "timeout_ms": 800}"#,
            ),
            (
                "payment",
                r#"{"enabled": true, "rollout_percentage": 50, "fallback_on_error": true}"#,
            ),
            ("greeting", "hello"),
            ("limit", "25"),
            ("broken", "{nope"),
        ];
        let snapshot = Snapshot::from_values(params).with_status(status);
        SnapshotProvider::with_store(Arc::new(Store::new(snapshot)))
    }

    fn user(id: &str) -> EvaluationContext {
        EvaluationContext::default()
            .with_targeting_key(id)
            .with_custom_field("region", "us-east-1")
    }

    #[tokio::test]
    async fn a_secure_flags_config_fields_never_reach_the_metadata() {
        let secret = crate::Parameter {
            flag: "payments".into(),
            name: "/app/features/payments".into(),
            kind: crate::ParameterKind::SecureString,
            value: r#"{"enabled": true, "api_key": "sk_live_123", "timeout_ms": 800}"#.into(),
            version: 1,
        };
        let snapshot = Snapshot::new(1, Status::Ok, [crate::FlagEntry::from_parameter(&secret)]);
        let p = SnapshotProvider::with_store(Arc::new(Store::new(snapshot)));
        let details = p
            .resolve_bool_value("payments", &user("alice"))
            .await
            .expect("resolves");
        assert!(details.value, "still evaluated");
        let metadata = details.flag_metadata.expect("metadata");
        assert_eq!(
            metadata.values.get("secure"),
            Some(&open_feature::FlagMetadataValue::Bool(true))
        );
        assert!(!metadata.values.contains_key("api_key"), "{metadata:?}");
        assert!(!metadata.values.contains_key("timeout_ms"), "{metadata:?}");
    }

    #[tokio::test]
    async fn every_resolution_type_reasons_and_errors() {
        let p = provider(Status::Ok);
        let alice = user("alice");
        let checkout = p
            .resolve_bool_value("checkout", &alice)
            .await
            .expect("resolves");
        assert!(checkout.value);
        assert_eq!(checkout.reason, Some(EvaluationReason::TargetingMatch));
        assert_eq!(checkout.variant.as_deref(), Some("on"));
        let metadata = checkout.flag_metadata.expect("metadata");
        assert_eq!(
            metadata.values.get("timeout_ms"),
            Some(&open_feature::FlagMetadataValue::Int(800))
        );
        let bob = p
            .resolve_bool_value("checkout", &user("bob"))
            .await
            .expect("resolves");
        assert!(!bob.value);
        let payment = p
            .resolve_bool_value("payment", &alice)
            .await
            .expect("resolves");
        assert_eq!(payment.reason, Some(EvaluationReason::Split));
        assert_eq!(payment.value, crate::bucket("alice", None) <= 50);
        assert_eq!(
            p.resolve_bool_value("dark-mode", &alice)
                .await
                .expect("resolves")
                .reason,
            Some(EvaluationReason::Static)
        );
        assert_eq!(
            p.resolve_string_value("greeting", &alice)
                .await
                .expect("text")
                .value,
            "hello"
        );
        assert_eq!(
            p.resolve_int_value("limit", &alice)
                .await
                .expect("int")
                .value,
            25
        );
        assert_eq!(
            p.resolve_float_value("limit", &alice)
                .await
                .expect("float")
                .value,
            25.0
        );
        let config = p
            .resolve_struct_value("checkout", &alice)
            .await
            .expect("struct")
            .value;
        assert_eq!(config.fields.get("timeout_ms"), Some(&Value::Int(800)));
        let code = |r: EvaluationResult<ResolutionDetails<bool>>| r.expect_err("error").code;
        assert_eq!(
            code(p.resolve_bool_value("nope", &alice).await),
            EvaluationErrorCode::FlagNotFound
        );
        assert_eq!(
            code(p.resolve_bool_value("broken", &alice).await),
            EvaluationErrorCode::ParseError
        );
        assert_eq!(
            code(p.resolve_bool_value("greeting", &alice).await),
            EvaluationErrorCode::TypeMismatch
        );
        assert_eq!(
            p.resolve_string_value("dark-mode", &alice)
                .await
                .expect_err("mismatch")
                .code,
            EvaluationErrorCode::TypeMismatch
        );
    }

    #[tokio::test]
    async fn no_user_is_evaluated_as_the_library_does() {
        let p = provider(Status::Ok);
        let anonymous = EvaluationContext::default().with_custom_field("region", "us-east-1");
        let checkout = p
            .resolve_bool_value("checkout", &anonymous)
            .await
            .expect("no error");
        assert!(!checkout.value);
    }

    #[test]
    fn the_status_follows_the_snapshot() {
        assert_eq!(provider(Status::Ok).status(), ProviderStatus::Ready);
        assert_eq!(provider(Status::Stale).status(), ProviderStatus::STALE);
        assert_eq!(provider(Status::Fallback).status(), ProviderStatus::STALE);
        assert_eq!(provider(Status::Degraded).status(), ProviderStatus::Error);
    }
}
