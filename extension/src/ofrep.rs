//! The OpenFeature Remote Evaluation Protocol (OFREP, open-feature/protocol
//! `service/openapi.yaml`, 0.3) on the local API, so every OpenFeature SDK's OFREP provider reads
//! the same flags, evaluated by the library:
//!
//! - `POST /ofrep/v1/evaluate/flags/{key}` `{"context": {…}}` → one evaluation;
//! - `POST /ofrep/v1/evaluate/flags` → every flag for one context, with an `ETag` covering the
//!   flags *and* the context (a client that switches user never gets another user's answer as a
//!   304), `If-None-Match` → 304.
//!
//! Context: `targetingKey` is the user id, `region` the region, every other field an attribute
//! (a value that is not a string matches `allowed_attributes` by its JSON text: `5`, `true`). A
//! context without a user is evaluated as the library evaluates it (off for a rollout or an
//! allow-list), never answered `TARGETING_KEY_MISSING`: that error makes the client return the
//! caller's own default, which may be `true`. A request without `context` (the Python provider
//! sends `{}` for an empty one) is evaluated with an empty context.
//!
//! Values and reasons (the README has the table): a toggle (boolean or JSON rules flag) resolves
//! as its boolean evaluation, variant `on` / `off`, its primitive config fields in the metadata; a
//! text flag as a string, a list as an array (variant `value`). Reasons: a boolean flag
//! `STATIC`; targeting rules that decided (allow-list, exclusion, region, attribute)
//! `TARGETING_MATCH`; a rollout `SPLIT`; disabled `DISABLED`; enabled with no rule restricting it
//! `STATIC`. Our own reason code and its words are in the metadata (`reason_code`, `detail`). A
//! missing flag is `FLAG_NOT_FOUND` (404), an invalid one `PARSE_ERROR`.
//!
//! The documents read and written are the types in [`wire`]; this module turns a request's
//! context and a snapshot into them.

use std::hash::Hasher;

use flags::{Context, FlagValue, Reason, Snapshot};
use serde::Serialize;
use serde_json::{Map, Value};

pub mod wire;

pub use wire::{
    ErrorCode, OfrepAnswer, OfrepBulk, OfrepBulkMetadata, OfrepError, OfrepEvaluation, OfrepRequest,
};

/// Every OFREP path starts so; only these accept `POST`.
pub const PATH_PREFIX: &str = "/ofrep/";
/// The path of one evaluation; the flag key follows (percent-encoded where needed).
pub const EVALUATE_FLAG_PREFIX: &str = "/ofrep/v1/evaluate/flags/";
/// The path of the bulk evaluation.
pub const EVALUATE_FLAGS: &str = "/ofrep/v1/evaluate/flags";
/// The largest request body accepted on the OFREP paths (a context).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A context as the request sent it, owned (the library's [`Context`] borrows from it).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RequestContext {
    user: Option<String>,
    region: Option<String>,
    attributes: Vec<(String, String)>,
    /// The context in a canonical form, for the bulk ETag.
    canonical: String,
}

/// Why a request could not be evaluated (400): the OFREP error code and details.
#[derive(Debug, PartialEq, Eq)]
pub struct BadRequest {
    /// `PARSE_ERROR` or `INVALID_CONTEXT`.
    pub code: ErrorCode,
    /// What is wrong.
    pub details: String,
}

impl BadRequest {
    /// The 400 answer's document; `key` is the flag asked for, if one was.
    pub fn into_doc(self, key: Option<String>) -> OfrepError {
        OfrepError {
            error_code: self.code,
            error_details: self.details,
            key,
        }
    }
}

impl RequestContext {
    /// Reads a request body `{"context": {…}}`.
    pub fn from_body(body: &[u8]) -> Result<Self, BadRequest> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        let request: Value = serde_json::from_slice(body).map_err(|e| BadRequest {
            code: ErrorCode::ParseError,
            details: format!("the request body is not JSON: {e}"),
        })?;
        let not_an_object = || BadRequest {
            code: ErrorCode::InvalidContext,
            details: "the request body must be a JSON object: {\"context\": {…}}".to_owned(),
        };
        if !request.is_object() {
            return Err(not_an_object());
        }
        // An object always reads as a request: every field is optional, others are ignored.
        let request: OfrepRequest = serde_json::from_value(request).map_err(|_| not_an_object())?;
        let context = match request.context {
            None | Some(Value::Null) => return Ok(Self::default()),
            Some(Value::Object(context)) => context,
            Some(_) => {
                return Err(BadRequest {
                    code: ErrorCode::InvalidContext,
                    details: "`context` must be an object".to_owned(),
                });
            }
        };
        let text = |value: &Value| match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let mut out = Self::default();
        let mut sorted: Vec<(&String, &Value)> = context.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        for (key, value) in sorted {
            match key.as_str() {
                "targetingKey" => match value {
                    Value::String(user) if !user.is_empty() => out.user = Some(user.clone()),
                    Value::String(_) | Value::Null => {}
                    _ => {
                        return Err(BadRequest {
                            code: ErrorCode::InvalidContext,
                            details: "`targetingKey` must be a string".to_owned(),
                        });
                    }
                },
                "region" => out.region = Some(text(value)),
                _ => out.attributes.push((key.clone(), text(value))),
            }
        }
        out.canonical = serde_json::to_string(&Canonical::of(&out)).unwrap_or_default();
        Ok(out)
    }
}

/// A context in the canonical form the bulk ETag hashes (fields in name order, attributes sorted
/// by name): the same context always hashes the same, however the request ordered it.
#[derive(Serialize)]
struct Canonical<'a> {
    attributes: &'a [(String, String)],
    region: Option<&'a str>,
    user: Option<&'a str>,
}

impl<'a> Canonical<'a> {
    fn of(context: &'a RequestContext) -> Self {
        Self {
            attributes: &context.attributes,
            region: context.region.as_deref(),
            user: context.user.as_deref(),
        }
    }
}

/// The answer to one evaluation: the HTTP status and the body.
pub fn evaluate_one(snapshot: &Snapshot, key: &str, context: &RequestContext) -> (u16, Value) {
    let body = to_json(&answer(snapshot, key, context));
    (status_of(&body), body)
}

/// The status of a single evaluation's answer: 200, 404 for `FLAG_NOT_FOUND`, 400 for any
/// other error (an invalid flag: `PARSE_ERROR`).
pub fn status_of(body: &Value) -> u16 {
    match body["errorCode"].as_str() {
        Some(code) if ErrorCode::FlagNotFound == code => 404,
        Some(_) => 400,
        None => 200,
    }
}

/// Every flag of `snapshot` evaluated for `context`, sorted by key, with the snapshot's version
/// and status as metadata.
pub fn evaluate_all(snapshot: &Snapshot, context: &RequestContext) -> Value {
    let mut keys: Vec<&str> = snapshot.entries().map(|e| e.name()).collect();
    keys.sort_unstable();
    to_json(&OfrepBulk {
        flags: keys
            .into_iter()
            .map(|key| answer(snapshot, key, context))
            .collect(),
        metadata: OfrepBulkMetadata {
            status: snapshot.status().to_string(),
            version: snapshot.version(),
        },
    })
}

/// A document as JSON. OFREP's documents hold strings, numbers and JSON values: they always
/// convert.
fn to_json(doc: &impl Serialize) -> Value {
    serde_json::to_value(doc).unwrap_or_default()
}

/// The bulk answer's ETag: the snapshot's content tag and the context, hashed.
pub fn bulk_etag(snapshot_etag: &str, context: &RequestContext) -> String {
    // SipHash with fixed keys: the same flags and context always get the same tag.
    let mut hasher = std::hash::DefaultHasher::new();
    hasher.write(snapshot_etag.as_bytes());
    hasher.write_u8(0);
    hasher.write(context.canonical.as_bytes());
    format!(
        "\"{}-{:016x}\"",
        snapshot_etag.trim_matches('"'),
        hasher.finish()
    )
}

/// One flag's answer for `request`: its evaluation, or why there is none.
fn answer(snapshot: &Snapshot, key: &str, request: &RequestContext) -> OfrepAnswer {
    match evaluation(snapshot, key, request) {
        Ok(evaluation) => OfrepAnswer::Evaluation(evaluation),
        Err(error) => OfrepAnswer::Error(error),
    }
}

fn evaluation(
    snapshot: &Snapshot,
    key: &str,
    request: &RequestContext,
) -> Result<OfrepEvaluation, OfrepError> {
    let Some(entry) = snapshot.entry(key) else {
        return Err(OfrepError::for_key(
            key,
            ErrorCode::FlagNotFound,
            format!("flag {key:?} not found"),
        ));
    };
    let value = match entry.value() {
        Ok(value) => value,
        Err(error) => {
            return Err(OfrepError::for_key(
                key,
                ErrorCode::ParseError,
                error.to_string(),
            ));
        }
    };
    if let FlagValue::Flagd(_) = value {
        return Err(OfrepError::for_key(
            key,
            ErrorCode::General,
            "a flag in flagd's format: this version evaluates it in-process only (flags::get)"
                .to_owned(),
        ));
    }
    let attributes: Vec<(&str, &str)> = request
        .attributes
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut context = Context::new().with_attributes(&attributes);
    if let Some(user) = request.user.as_deref() {
        context = context.with_user(user);
    }
    if let Some(region) = request.region.as_deref() {
        context = context.with_region(region);
    }
    let evaluated = snapshot.get(key).evaluate(&context);
    let mut metadata = Map::new();
    metadata.insert("reason_code".into(), evaluated.reason.code().into());
    metadata.insert("detail".into(), evaluated.to_string().into());
    for (field, v) in entry.metadata_fields() {
        if !metadata.contains_key(field) {
            metadata.insert(field.to_owned(), v.clone());
        }
    }
    let (value, variant, reason) = match value {
        FlagValue::Bool(_) | FlagValue::Json(_) => {
            let on = evaluated.enabled;
            (
                Value::Bool(on),
                if on { "on" } else { "off" },
                reason_of(&evaluated.reason),
            )
        }
        FlagValue::Text(text) => (Value::String(text.clone()), "value", "STATIC"),
        FlagValue::List(items) => (
            Value::Array(items.iter().cloned().map(Value::String).collect()),
            "value",
            "STATIC",
        ),
        FlagValue::Flagd(_) => unreachable!("answered above"),
    };
    Ok(OfrepEvaluation {
        key: key.to_owned(),
        metadata,
        reason,
        value,
        variant,
    })
}

/// Our reason, as an OFREP success reason ([`Reason::openfeature`]). OFREP's successes have no
/// `DEFAULT` or `ERROR` (a missing or invalid flag is an error answer before any evaluation):
/// those read `UNKNOWN`.
pub fn reason_of(reason: &Reason) -> &'static str {
    match reason.openfeature() {
        "DEFAULT" | "ERROR" => "UNKNOWN",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flags::wire::Status;
    use serde_json::json;

    fn snapshot() -> Snapshot {
        let params = [
            ("dark-mode", "true"),
            (
                "checkout",
                r#"{"enabled": true, "allowed_user_ids": ["alice"], "timeout_ms": 800}"#,
            ),
            ("rollout", r#"{"enabled": true, "rollout_percentage": 50}"#),
            ("off", r#"{"enabled": false}"#),
            ("open", r#"{"enabled": true}"#),
            ("greeting", "hello"),
            ("broken", "{nope"),
            (
                "plan",
                r#"{"enabled": true, "allowed_attributes": {"tier": ["5"]}}"#,
            ),
        ];
        Snapshot::new(
            3,
            Status::Ok,
            Snapshot::from_values(params).entries().cloned(),
        )
    }

    fn ctx(body: &str) -> RequestContext {
        RequestContext::from_body(body.as_bytes()).expect("valid")
    }

    #[test]
    fn reasons_variants_and_metadata_map_onto_openfeatures() {
        let s = snapshot();
        let alice = ctx(r#"{"context": {"targetingKey": "alice", "region": "us-east-1"}}"#);
        let (status, body) = evaluate_one(&s, "checkout", &alice);
        assert_eq!(status, 200);
        assert_eq!(
            (
                body["value"].clone(),
                body["reason"].clone(),
                body["variant"].clone()
            ),
            (json!(true), json!("TARGETING_MATCH"), json!("on"))
        );
        assert_eq!(body["metadata"]["timeout_ms"], 800);
        assert_eq!(body["metadata"]["reason_code"], "allow_list");
        let (_, body) = evaluate_one(&s, "dark-mode", &alice);
        assert_eq!(
            (body["reason"].as_str(), body["variant"].as_str()),
            (Some("STATIC"), Some("on"))
        );
        let (_, body) = evaluate_one(&s, "rollout", &alice);
        assert_eq!(body["reason"], "SPLIT");
        assert_eq!(body["value"], flags::bucket("alice", None) <= 50);
        let (_, body) = evaluate_one(&s, "off", &alice);
        assert_eq!(
            (body["reason"].as_str(), body["value"].as_bool()),
            (Some("DISABLED"), Some(false))
        );
        let (_, body) = evaluate_one(&s, "open", &alice);
        assert_eq!(body["reason"], "STATIC");
        let (_, body) = evaluate_one(&s, "greeting", &alice);
        assert_eq!(
            (body["value"].as_str(), body["variant"].as_str()),
            (Some("hello"), Some("value"))
        );
        let (status, body) = evaluate_one(&s, "nope", &alice);
        assert_eq!(
            (status, body["errorCode"].as_str()),
            (404, Some("FLAG_NOT_FOUND"))
        );
        let (_, body) = evaluate_one(&s, "broken", &alice);
        assert_eq!(status_of(&body), 400);
        assert_eq!(body["errorCode"], "PARSE_ERROR");
    }

    #[test]
    fn no_user_is_evaluated_as_the_library_does_never_an_error() {
        let s = snapshot();
        for body in [
            "",
            "{}",
            r#"{"context": {}}"#,
            r#"{"context": {"targetingKey": ""}}"#,
        ] {
            let (status, answer) = evaluate_one(&s, "checkout", &ctx(body));
            assert_eq!(status, 200, "{body}");
            assert_eq!(answer["value"], false, "{body}: {answer}");
            assert_eq!(answer["variant"], "off");
        }
    }

    #[test]
    fn attributes_that_are_not_strings_match_by_their_json_text() {
        let s = snapshot();
        let (_, answer) = evaluate_one(
            &s,
            "plan",
            &ctx(r#"{"context": {"targetingKey": "u", "tier": 5}}"#),
        );
        assert_eq!(answer["value"], true, "{answer}");
        let (_, answer) = evaluate_one(
            &s,
            "plan",
            &ctx(r#"{"context": {"targetingKey": "u", "tier": 4}}"#),
        );
        assert_eq!(answer["value"], false, "{answer}");
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        assert_eq!(
            RequestContext::from_body(b"{nope")
                .expect_err("invalid")
                .code,
            "PARSE_ERROR"
        );
        assert_eq!(
            RequestContext::from_body(br#"{"context": 5}"#)
                .expect_err("invalid")
                .code,
            "INVALID_CONTEXT"
        );
        assert_eq!(
            RequestContext::from_body(br#"{"context": {"targetingKey": 7}}"#)
                .expect_err("invalid")
                .code,
            "INVALID_CONTEXT"
        );
        // JSON, but not an object: never evaluated as an empty context.
        for body in [&b"[1,2]"[..], b"\"x\"", b"5", b"null", b"true"] {
            let bad = RequestContext::from_body(body).expect_err("not an object");
            assert_eq!(
                bad.code,
                "INVALID_CONTEXT",
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn a_secure_flags_config_fields_never_reach_the_metadata() {
        let secret = flags::Parameter {
            flag: "payments".into(),
            name: "/app/features/payments".into(),
            kind: flags::ParameterKind::SecureString,
            value: r#"{"enabled": true, "api_key": "sk_live_123", "timeout_ms": 800}"#.into(),
            version: 1,
        };
        let plain = flags::Parameter {
            flag: "checkout".into(),
            kind: flags::ParameterKind::String,
            value: r#"{"enabled": true, "api_key": "pk_public"}"#.into(),
            ..secret.clone()
        };
        let secret_text = flags::Parameter {
            flag: "token".into(),
            value: "sk_live_456".into(),
            ..secret.clone()
        };
        let snapshot = Snapshot::new(
            1,
            Status::Ok,
            [&secret, &plain, &secret_text].map(flags::FlagEntry::from_parameter),
        );
        let (status, body) = evaluate_one(&snapshot, "payments", &ctx("{}"));
        assert_eq!(status, 200);
        assert_eq!(body["value"], true, "still evaluated");
        assert_eq!(body["metadata"]["secure"], true);
        assert!(body["metadata"].get("api_key").is_none(), "{body}");
        assert!(body["metadata"].get("timeout_ms").is_none(), "{body}");
        assert_eq!(
            evaluate_one(&snapshot, "token", &ctx("{}")).1["metadata"]["secure"],
            true
        );
        let all = evaluate_all(&snapshot, &ctx("{}")).to_string();
        assert!(!all.contains("sk_live_123"), "{all}");
        // The same fields of a String flag are config, served as metadata.
        let (_, checkout) = evaluate_one(&snapshot, "checkout", &ctx("{}"));
        assert_eq!(checkout["metadata"]["api_key"], "pk_public");
        assert!(checkout["metadata"].get("secure").is_none());
    }

    #[test]
    fn the_bulk_etag_covers_the_context_as_well_as_the_flags() {
        let a = ctx(r#"{"context": {"targetingKey": "alice", "plan": "pro"}}"#);
        let a_again = ctx(r#"{"context": {"plan": "pro", "targetingKey": "alice"}}"#);
        let b = ctx(r#"{"context": {"targetingKey": "bob", "plan": "pro"}}"#);
        assert_eq!(
            bulk_etag("\"x-3-ok\"", &a),
            bulk_etag("\"x-3-ok\"", &a_again)
        );
        assert_ne!(bulk_etag("\"x-3-ok\"", &a), bulk_etag("\"x-3-ok\"", &b));
        assert_ne!(bulk_etag("\"x-3-ok\"", &a), bulk_etag("\"x-4-ok\"", &a));
        let all = evaluate_all(&snapshot(), &a);
        let keys: Vec<&str> = all["flags"]
            .as_array()
            .expect("flags")
            .iter()
            .filter_map(|f| f["key"].as_str())
            .collect();
        assert_eq!(keys.len(), 8);
        assert!(keys.windows(2).all(|w| w[0] <= w[1]), "sorted");
        assert_eq!(all["metadata"]["version"], 3);
    }
}
