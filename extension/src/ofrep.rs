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
//! flagd flags (see [`flags::flagd`]) answer as flagd's own OFREP does: the context's fields
//! with their JSON types (a `targetingKey` that is not a string is evaluated, not refused), the
//! variant's value and name, flagd's reason (`STATIC`, `TARGETING_MATCH`, `SPLIT`, `DEFAULT`,
//! `DISABLED`) and the flag's metadata; `DISABLED` or no default variant is an answer without a
//! `value` (the providers then return their caller's default); `PARSE_ERROR` and `GENERAL` are
//! error answers (400). A bulk answer holding a flag that reads `$flagd.timestamp` is tagged by
//! its values as well, so a schedule that flips is never a 304.
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
#[derive(Debug, Default, PartialEq)]
pub struct RequestContext {
    user: Option<String>,
    region: Option<String>,
    attributes: Vec<(String, String)>,
    /// Every field with its JSON type: a flagd flag's context.
    fields: Map<String, Value>,
    /// Why a seed flag cannot be evaluated with this context (a `targetingKey` that is not a
    /// string): its answer is `INVALID_CONTEXT`. A flagd flag evaluates it, as flagd does.
    invalid: Option<String>,
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
        let mut out = Self {
            // The fields in name order (a map sorted by key): the same context always renders
            // the same, however the request ordered it.
            canonical: serde_json::to_string(&context).unwrap_or_default(),
            ..Self::default()
        };
        let mut sorted: Vec<(&String, &Value)> = context.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        for (key, value) in sorted {
            match key.as_str() {
                "targetingKey" => match value {
                    Value::String(user) if !user.is_empty() => out.user = Some(user.clone()),
                    Value::String(_) | Value::Null => {}
                    _ => out.invalid = Some("`targetingKey` must be a string".to_owned()),
                },
                "region" => out.region = Some(text(value)),
                _ => out.attributes.push((key.clone(), text(value))),
            }
        }
        out.fields = context;
        Ok(out)
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

/// The bulk answer's ETag: the snapshot's content tag and the context, hashed — and, when the
/// snapshot holds flags whose answer depends on the time (a flagd `$flagd.timestamp` schedule),
/// the answer itself (`body`): a schedule that flips never gets a 304.
pub fn bulk_etag(
    snapshot: &Snapshot,
    snapshot_etag: &str,
    context: &RequestContext,
    body: &Value,
) -> String {
    // SipHash with fixed keys: the same flags and context always get the same tag.
    let mut hasher = std::hash::DefaultHasher::new();
    hasher.write(snapshot_etag.as_bytes());
    hasher.write_u8(0);
    hasher.write(context.canonical.as_bytes());
    if reads_time(snapshot) {
        hasher.write_u8(0);
        hasher.write(body.to_string().as_bytes());
    }
    format!(
        "\"{}-{:016x}\"",
        snapshot_etag.trim_matches('"'),
        hasher.finish()
    )
}

/// Whether any flag's answer depends on the time.
fn reads_time(snapshot: &Snapshot) -> bool {
    snapshot.entries().any(|entry| {
        matches!(entry.value(), Ok(FlagValue::Flagd(definition)) if definition.reads_time())
    })
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
        return flagd_evaluation(snapshot, key, request);
    }
    if let Some(invalid) = &request.invalid {
        return Err(OfrepError::for_key(
            key,
            ErrorCode::InvalidContext,
            invalid.clone(),
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
        FlagValue::Bool(_) | FlagValue::Json(_) | FlagValue::Flagd(_) => {
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
    };
    Ok(OfrepEvaluation {
        key: key.to_owned(),
        metadata,
        reason,
        value: Some(value),
        variant: Some(variant.to_owned()),
    })
}

/// A flagd flag evaluated as flagd's OFREP answers it: the context's fields with their JSON
/// types (a string `targetingKey` is the targeting key), the variant's value and name, flagd's
/// reason and the flag's metadata; no value when the caller's default applies (`DISABLED`, no
/// default variant); flagd's error codes as error answers (400).
fn flagd_evaluation(
    snapshot: &Snapshot,
    key: &str,
    request: &RequestContext,
) -> Result<OfrepEvaluation, OfrepError> {
    let context = Context::new().with_fields(&request.fields);
    let variant = snapshot.get(key).variant_for(&context);
    if let Some(code) = variant.error {
        let details = match code {
            flags::flagd::ErrorCode::ParseError => format!("error parsing the flag {key:?}"),
            flags::flagd::ErrorCode::FlagNotFound => format!("flag {key:?} not found"),
            _ => format!("flag {key:?} could not be evaluated for this context"),
        };
        return Err(OfrepError::for_key(key, ErrorCode::from(code), details));
    }
    Ok(OfrepEvaluation {
        key: key.to_owned(),
        metadata: variant.metadata.map(|m| m.into_owned()).unwrap_or_default(),
        reason: variant.reason.as_str(),
        value: variant.value.map(|v| v.into_owned()),
        variant: variant.name.map(|n| n.into_owned()),
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
        // A targeting key that is not a string: a seed flag cannot use it (400), a flagd flag
        // evaluates it as flagd does.
        let seven =
            RequestContext::from_body(br#"{"context": {"targetingKey": 7}}"#).expect("a context");
        let (status, answer) = evaluate_one(&snapshot(), "checkout", &seven);
        assert_eq!(
            (status, answer["errorCode"].as_str()),
            (400, Some("INVALID_CONTEXT"))
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
        let s = snapshot();
        let tag = |etag: &str, c: &RequestContext| bulk_etag(&s, etag, c, &evaluate_all(&s, c));
        assert_eq!(tag("\"x-3-ok\"", &a), tag("\"x-3-ok\"", &a_again));
        assert_ne!(tag("\"x-3-ok\"", &a), tag("\"x-3-ok\"", &b));
        assert_ne!(tag("\"x-3-ok\"", &a), tag("\"x-4-ok\"", &a));
        // A typed field is not its text: 5 and "5" are two contexts.
        let five = ctx(r#"{"context": {"targetingKey": "alice", "n": 5}}"#);
        let five_text = ctx(r#"{"context": {"targetingKey": "alice", "n": "5"}}"#);
        assert_ne!(tag("\"x-3-ok\"", &five), tag("\"x-3-ok\"", &five_text));
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

    fn flagd_snapshot() -> Snapshot {
        use flags::snapshot::assemble::Assembler;
        let document = json!({
            "flags": {
                "color": {
                    "state": "ENABLED",
                    "variants": {"red": "#f00", "blue": "#00f"},
                    "defaultVariant": "blue",
                    "targeting": {"if": [{"==": [{"var": "tier"}, 7]}, "red", null]},
                    "metadata": {"owner": "web"}
                },
                "split": {
                    "state": "ENABLED",
                    "variants": {"a": 1, "b": 2},
                    "defaultVariant": "a",
                    "targeting": {"fractional": [["a", 50], ["b", 50]]}
                },
                "off": {"state": "DISABLED", "variants": {"on": true}, "defaultVariant": "on"},
                "nodefault": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": null},
                "divide": {
                    "state": "ENABLED",
                    "variants": {"on": true, "off": false},
                    "defaultVariant": "on",
                    "targeting": {"if": [{"/": [1, 0]}, "on", "off"]}
                },
                "clock": {
                    "state": "ENABLED",
                    "variants": {"before": "b", "after": "a"},
                    "defaultVariant": "before",
                    "targeting": {"if": [{">": [{"var": "$flagd.timestamp"}, 0]}, "after", "before"]}
                }
            },
            "metadata": {"flagSetId": "web", "owner": "platform"}
        });
        let mut assembler = Assembler::new();
        let parameter = |flag: &str, value: String, kind| flags::Parameter {
            flag: flag.into(),
            name: format!("/f/{flag}"),
            kind,
            value,
            version: 2,
        };
        let flagd = flags::Format::Flagd(flags::Bucketing::V3);
        assembler.add(
            0,
            flagd,
            &parameter("doc", document.to_string(), flags::ParameterKind::String),
        );
        let secret = json!({"state": "ENABLED", "variants": {"k": "sk_live"}, "defaultVariant": "k",
                            "metadata": {"note": "rotate monthly"}});
        assembler.add(
            0,
            flagd,
            &parameter(
                "secret",
                secret.to_string(),
                flags::ParameterKind::SecureString,
            ),
        );
        assembler.add(
            0,
            flags::Format::Seed,
            &parameter("dark-mode", "true".into(), flags::ParameterKind::String),
        );
        Snapshot::new(4, Status::Ok, assembler.finish().entries)
    }

    #[test]
    fn a_flagd_flag_answers_as_flagds_ofrep_does() {
        let s = flagd_snapshot();
        let gold = ctx(r#"{"context": {"targetingKey": "u1", "tier": 7}}"#);
        let (status, answer) = evaluate_one(&s, "color", &gold);
        assert_eq!(status, 200);
        assert_eq!(
            answer,
            json!({"key": "color", "value": "#f00", "variant": "red", "reason": "TARGETING_MATCH",
                   "metadata": {"flagSetId": "web", "owner": "web"}})
        );
        let (_, answer) = evaluate_one(&s, "color", &ctx(r#"{"context": {"tier": 8}}"#));
        assert_eq!(
            (answer["value"].as_str(), answer["reason"].as_str()),
            (Some("#00f"), Some("DEFAULT"))
        );
        let (_, answer) = evaluate_one(&s, "split", &gold);
        assert_eq!(answer["reason"], "SPLIT");
        assert!(answer["value"] == 1 || answer["value"] == 2, "{answer}");
    }

    #[test]
    fn the_callers_default_is_an_answer_without_a_value() {
        let s = flagd_snapshot();
        let (status, answer) = evaluate_one(&s, "off", &ctx("{}"));
        assert_eq!(status, 200);
        let set = json!({"flagSetId": "web", "owner": "platform"});
        assert_eq!(
            answer,
            json!({"key": "off", "reason": "DISABLED", "metadata": set})
        );
        let (status, answer) = evaluate_one(&s, "nodefault", &ctx("{}"));
        assert_eq!(status, 200);
        assert_eq!(
            answer,
            json!({"key": "nodefault", "reason": "DEFAULT", "metadata": set})
        );
    }

    #[test]
    fn flagd_errors_are_error_answers_and_a_number_targeting_key_is_evaluated() {
        let s = flagd_snapshot();
        let (status, answer) = evaluate_one(&s, "divide", &ctx("{}"));
        assert_eq!(
            (status, answer["errorCode"].as_str()),
            (400, Some("GENERAL"))
        );
        assert_eq!(answer["key"], "divide");
        let seven = ctx(r#"{"context": {"targetingKey": 7, "tier": 7}}"#);
        let (status, answer) = evaluate_one(&s, "color", &seven);
        assert_eq!(
            (status, answer["variant"].as_str()),
            (200, Some("red")),
            "{answer}"
        );
        // In bulk, the seed flag alone is refused that context.
        let all = evaluate_all(&s, &seven);
        let dark = all["flags"]
            .as_array()
            .and_then(|f| f.iter().find(|a| a["key"] == "dark-mode"));
        assert_eq!(
            dark.map(|a| a["errorCode"].clone()),
            Some(json!("INVALID_CONTEXT"))
        );
    }

    #[test]
    fn a_secure_flagd_flags_metadata_is_only_secure() {
        let s = flagd_snapshot();
        let (_, answer) = evaluate_one(&s, "secret", &ctx("{}"));
        assert_eq!(answer["metadata"], json!({"secure": true}));
        assert_eq!(answer["value"], "sk_live", "the value is the flag's answer");
    }

    #[test]
    fn an_answer_holding_a_schedule_is_tagged_by_its_values() {
        let s = flagd_snapshot();
        let c = ctx("{}");
        let body = evaluate_all(&s, &c);
        let mut flipped = body.clone();
        flipped["flags"][0]["value"] = json!("flipped");
        assert_ne!(
            bulk_etag(&s, "\"x-4-ok\"", &c, &body),
            bulk_etag(&s, "\"x-4-ok\"", &c, &flipped),
            "a snapshot with a time-dependent flag is tagged by what it answered"
        );
        let plain = snapshot();
        assert_eq!(
            bulk_etag(&plain, "\"x-3-ok\"", &c, &body),
            bulk_etag(&plain, "\"x-3-ok\"", &c, &flipped),
            "without one, by the flags and the context alone"
        );
    }
}
