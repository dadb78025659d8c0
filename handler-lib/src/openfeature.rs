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
//! (by its string form). A flagd flag resolves as flagd does, for every type: its variant's
//! value and name, flagd's reason and the flag's metadata, the context's fields with their types
//! (a nested object given as a `serde_json::Value` in a struct field); where the caller's default
//! applies (`DISABLED`, no default variant) the provider answers `GENERAL` with the reason as its
//! code (`"DISABLED"`, `"DEFAULT"`): the SDK has no other way to return the default. The
//! provider's status follows the snapshot: `ok` → ready, `stale` or
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
use crate::flag::ValueType;
use crate::flagd;
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

/// The context as a flagd flag reads it: every field with its type (a date-time as its Unix
/// time in seconds, comparable with `$flagd.timestamp`; a struct given as a `serde_json::Value` or `Map` with
/// [`EvaluationContextFieldValue::new_struct`]), and the targeting key as `targetingKey`.
fn flagd_fields(context: &EvaluationContext) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::Value as Json;
    let mut fields: serde_json::Map<String, Json> = context
        .custom_fields
        .iter()
        .filter_map(|(key, value)| {
            let json = match value {
                EvaluationContextFieldValue::Bool(b) => Json::Bool(*b),
                EvaluationContextFieldValue::Int(i) => Json::from(*i),
                EvaluationContextFieldValue::Float(f) => {
                    serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number)
                }
                EvaluationContextFieldValue::String(s) => Json::String(s.clone()),
                EvaluationContextFieldValue::DateTime(t) => Json::from(t.unix_timestamp()),
                EvaluationContextFieldValue::Struct(any) => {
                    if let Some(json) = any.downcast_ref::<Json>() {
                        json.clone()
                    } else if let Some(map) = any.downcast_ref::<serde_json::Map<String, Json>>() {
                        Json::Object(map.clone())
                    } else {
                        return None;
                    }
                }
            };
            Some((key.clone(), json))
        })
        .collect();
    if let Some(key) = context.targeting_key.as_deref().filter(|k| !k.is_empty()) {
        fields.insert("targetingKey".into(), Json::String(key.to_owned()));
    }
    fields
}

/// A flagd flag resolved as `wanted`: its variant's value, name, reason and metadata. When the
/// caller's default applies (`DISABLED`, no default variant) the SDK needs an error to return
/// it: `General("DISABLED")` or `General("DEFAULT")`, saying so.
fn resolve_flagd(
    snapshot: &Snapshot,
    key: &str,
    context: &EvaluationContext,
    wanted: ValueType,
) -> EvaluationResult<ResolutionDetails<serde_json::Value>> {
    let fields = flagd_fields(context);
    let resolved = snapshot
        .get(key)
        .resolve(&Context::new().with_fields(&fields), wanted);
    if let Some(code) = resolved.error {
        let code = match code {
            flagd::ErrorCode::ParseError => EvaluationErrorCode::ParseError,
            flagd::ErrorCode::TypeMismatch => EvaluationErrorCode::TypeMismatch,
            flagd::ErrorCode::FlagNotFound => EvaluationErrorCode::FlagNotFound,
            flagd::ErrorCode::General => EvaluationErrorCode::General("GENERAL".into()),
        };
        return Err(error(
            code,
            format!("flag {key:?}: {}", code_words(&resolved)),
        ));
    }
    let Some(value) = resolved.value else {
        let reason = resolved.reason.as_str();
        return Err(error(
            EvaluationErrorCode::General(reason.to_owned()),
            format!("flag {key:?} resolved to no variant ({reason}): the caller's default applies"),
        ));
    };
    let mut metadata = FlagMetadata::default();
    for (field, v) in resolved.metadata.as_deref().into_iter().flatten() {
        if let Some(entry) = metadata_value(v) {
            metadata.values.insert(field.clone(), entry);
        }
    }
    Ok(ResolutionDetails {
        value: value.into_owned(),
        variant: resolved.name.map(|n| n.into_owned()),
        reason: Some(match resolved.reason {
            flagd::Reason::Static => EvaluationReason::Static,
            flagd::Reason::Default => EvaluationReason::Default,
            flagd::Reason::TargetingMatch => EvaluationReason::TargetingMatch,
            flagd::Reason::Split => EvaluationReason::Split,
            flagd::Reason::Disabled => EvaluationReason::Disabled,
            flagd::Reason::Error => EvaluationReason::Error,
        }),
        flag_metadata: Some(metadata),
    })
}

/// An error's words for the message.
fn code_words(resolved: &crate::flag::Variant<'_>) -> String {
    match resolved.error {
        Some(code) => code.as_str().to_owned(),
        None => resolved.reason.as_str().to_owned(),
    }
}

/// A metadata value OpenFeature carries (boolean, number, string).
fn metadata_value(v: &serde_json::Value) -> Option<open_feature::FlagMetadataValue> {
    match v {
        serde_json::Value::Bool(b) => Some(open_feature::FlagMetadataValue::Bool(*b)),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(open_feature::FlagMetadataValue::Int)
            .or_else(|| n.as_f64().map(open_feature::FlagMetadataValue::Float)),
        serde_json::Value::String(s) => Some(open_feature::FlagMetadataValue::String(s.clone())),
        _ => None,
    }
}

/// A resolved flagd value as `T`; `resolve` already checked its type.
fn typed<T>(
    details: ResolutionDetails<serde_json::Value>,
    convert: impl FnOnce(&serde_json::Value) -> Option<T>,
) -> EvaluationResult<ResolutionDetails<T>> {
    let value = convert(&details.value).ok_or_else(|| {
        error(
            EvaluationErrorCode::TypeMismatch,
            format!(
                "variant value {} is not of the type asked for",
                details.value
            ),
        )
    })?;
    Ok(ResolutionDetails {
        value,
        variant: details.variant,
        reason: details.reason,
        flag_metadata: details.flag_metadata,
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
        if let FlagValue::Flagd(_) = value {
            let details = resolve_flagd(&snapshot, key, context, ValueType::Boolean)?;
            return typed(details, serde_json::Value::as_bool);
        }
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
                if let Some(entry) = metadata_value(v)
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
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<i64>> {
        let snapshot = self.pin();
        match value_of(&snapshot, key)? {
            FlagValue::Text(text) => text.trim().parse().map(static_details).map_err(|_| {
                error(
                    EvaluationErrorCode::TypeMismatch,
                    format!("flag {key:?} is text that is not an integer"),
                )
            }),
            FlagValue::Flagd(_) => typed(
                resolve_flagd(&snapshot, key, context, ValueType::Integer)?,
                serde_json::Value::as_i64,
            ),
            other => Err(mismatch(key, "an integer", other)),
        }
    }

    async fn resolve_float_value(
        &self,
        key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<f64>> {
        let snapshot = self.pin();
        match value_of(&snapshot, key)? {
            FlagValue::Text(text) => text.trim().parse().map(static_details).map_err(|_| {
                error(
                    EvaluationErrorCode::TypeMismatch,
                    format!("flag {key:?} is text that is not a number"),
                )
            }),
            FlagValue::Flagd(_) => typed(
                resolve_flagd(&snapshot, key, context, ValueType::Float)?,
                serde_json::Value::as_f64,
            ),
            other => Err(mismatch(key, "a number", other)),
        }
    }

    async fn resolve_string_value(
        &self,
        key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<String>> {
        let snapshot = self.pin();
        match value_of(&snapshot, key)? {
            FlagValue::Text(text) => Ok(static_details(text.clone())),
            FlagValue::Flagd(_) => typed(
                resolve_flagd(&snapshot, key, context, ValueType::String)?,
                |v| v.as_str().map(str::to_owned),
            ),
            other => Err(mismatch(key, "a string", other)),
        }
    }

    async fn resolve_struct_value(
        &self,
        key: &str,
        context: &EvaluationContext,
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
            FlagValue::Flagd(_) => typed(
                resolve_flagd(&snapshot, key, context, ValueType::Object)?,
                |v| match json_to_value(v) {
                    Some(Value::Struct(fields)) => Some(fields),
                    // An array variant: the SDK's structs hold fields only.
                    _ => None,
                },
            ),
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

    fn flagd_provider() -> SnapshotProvider {
        let document = serde_json::json!({
            "flags": {
                "enabled": {"state": "ENABLED", "variants": {"on": true, "off": false},
                            "defaultVariant": "off",
                            "targeting": {"if": [{"in": [{"var": "tier"}, ["gold"]]}, "on", null]}},
                "color": {"state": "ENABLED", "variants": {"red": "#f00", "blue": "#00f"},
                          "defaultVariant": "blue"},
                "seats": {"state": "ENABLED", "variants": {"few": 5, "many": 500},
                          "defaultVariant": "few",
                          "targeting": {"if": [{">": [{"var": "org.size"}, 100]}, "many", null]}},
                "ratio": {"state": "ENABLED", "variants": {"half": 0.5}, "defaultVariant": "half"},
                "layout": {"state": "ENABLED", "variants": {"grid": {"columns": 3}},
                           "defaultVariant": "grid"},
                "off": {"state": "DISABLED", "variants": {"on": true}, "defaultVariant": "on"}
            },
            "metadata": {"team": "web", "version": 3}
        });
        let entries = crate::FlagEntry::from_flagd_document(
            "/f/doc",
            1,
            false,
            &document,
            crate::Bucketing::V3,
        )
        .expect("a document");
        let snapshot = Snapshot::new(1, Status::Ok, entries);
        SnapshotProvider::with_store(Arc::new(Store::new(snapshot)))
    }

    #[tokio::test]
    async fn flagd_flags_resolve_every_type_with_variants_and_metadata() {
        let p = flagd_provider();
        let gold = EvaluationContext::default()
            .with_targeting_key("u1")
            .with_custom_field("tier", "gold");
        let on = p.resolve_bool_value("enabled", &gold).await.expect("bool");
        assert!(on.value);
        assert_eq!(on.variant.as_deref(), Some("on"));
        assert_eq!(on.reason, Some(EvaluationReason::TargetingMatch));
        let metadata = on.flag_metadata.expect("metadata");
        assert_eq!(
            metadata.values.get("team"),
            Some(&open_feature::FlagMetadataValue::String("web".into()))
        );
        assert_eq!(
            metadata.values.get("version"),
            Some(&open_feature::FlagMetadataValue::Int(3))
        );
        let plain = EvaluationContext::default().with_targeting_key("u1");
        let off = p.resolve_bool_value("enabled", &plain).await.expect("bool");
        assert_eq!(
            (off.value, off.reason),
            (false, Some(EvaluationReason::Default))
        );

        let color = p
            .resolve_string_value("color", &plain)
            .await
            .expect("string");
        assert_eq!(
            (color.value.as_str(), color.variant.as_deref()),
            ("#00f", Some("blue"))
        );
        assert_eq!(color.reason, Some(EvaluationReason::Static));

        // A nested attribute, given as a struct holding JSON.
        let big = plain.clone().with_custom_field(
            "org",
            EvaluationContextFieldValue::new_struct(serde_json::json!({"size": 250})),
        );
        let seats = p.resolve_int_value("seats", &big).await.expect("int");
        assert_eq!((seats.value, seats.variant.as_deref()), (500, Some("many")));
        assert_eq!(
            p.resolve_int_value("seats", &plain)
                .await
                .expect("int")
                .value,
            5
        );
        assert_eq!(
            p.resolve_float_value("ratio", &plain)
                .await
                .expect("float")
                .value,
            0.5
        );
        assert_eq!(
            p.resolve_float_value("seats", &plain)
                .await
                .expect("float")
                .value,
            5.0
        );
        let layout = p
            .resolve_struct_value("layout", &plain)
            .await
            .expect("struct");
        assert_eq!(layout.value.fields.get("columns"), Some(&Value::Int(3)));

        let mismatch = p
            .resolve_int_value("color", &plain)
            .await
            .expect_err("a string");
        assert_eq!(mismatch.code, EvaluationErrorCode::TypeMismatch);
        let disabled = p
            .resolve_bool_value("off", &plain)
            .await
            .expect_err("the default");
        assert_eq!(
            disabled.code,
            EvaluationErrorCode::General("DISABLED".into())
        );
        let missing = p
            .resolve_string_value("nope", &plain)
            .await
            .expect_err("missing");
        assert_eq!(missing.code, EvaluationErrorCode::FlagNotFound);
    }
}
