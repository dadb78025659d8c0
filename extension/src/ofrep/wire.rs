//! OFREP's documents (open-feature/protocol `service/openapi.yaml`, 0.3) as types: the request
//! body, one evaluation, an error, and the bulk answer. Every OFREP body the extension reads or
//! writes is one of these; no handler builds one by hand.
//!
//! Fields are declared in the order of their JSON names, so a document serializes with its keys
//! sorted, as the answers always have.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A request body: `{"context": {…}}`. The context is read field by field by
/// [`super::RequestContext`] (what each field means, and what is refused, is there).
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
pub struct OfrepRequest {
    /// The evaluation context; absent or `null`: an empty one.
    #[serde(default)]
    pub context: Option<Value>,
}

/// An OFREP error code (the spec's `errorCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// No flag by that key (404).
    FlagNotFound,
    /// The flag's value, or the request body, does not parse.
    ParseError,
    /// The request's context is not an object, or a field of it has the wrong type.
    InvalidContext,
    /// A flagd flag's evaluation failed (a division by zero in its targeting, say).
    General,
    /// A flagd variant's type is not the one asked for (not sent by this server: OFREP asks
    /// for no type; named for completeness).
    TypeMismatch,
}

impl From<flags::flagd::ErrorCode> for ErrorCode {
    fn from(code: flags::flagd::ErrorCode) -> Self {
        match code {
            flags::flagd::ErrorCode::FlagNotFound => Self::FlagNotFound,
            flags::flagd::ErrorCode::ParseError => Self::ParseError,
            flags::flagd::ErrorCode::TypeMismatch => Self::TypeMismatch,
            flags::flagd::ErrorCode::General => Self::General,
        }
    }
}

impl ErrorCode {
    /// The code as it is written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FlagNotFound => "FLAG_NOT_FOUND",
            Self::ParseError => "PARSE_ERROR",
            Self::InvalidContext => "INVALID_CONTEXT",
            Self::General => "GENERAL",
            Self::TypeMismatch => "TYPE_MISMATCH",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One flag evaluated (the spec's success answer, and an entry of the bulk answer's `flags`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OfrepEvaluation {
    /// The flag's key.
    pub key: String,
    /// A seed flag's: our reason code and its words (`reason_code`, `detail`), then its
    /// primitive config fields. A flagd flag's: its metadata (flag set's, overridden by the
    /// flag's). Never a SecureString's fields: for those, only `secure: true`.
    pub metadata: Map<String, Value>,
    /// `STATIC`, `TARGETING_MATCH`, `SPLIT`, `DISABLED`, `DEFAULT` (a flagd flag without a
    /// default variant) or `UNKNOWN`.
    pub reason: &'static str,
    /// The resolved value: a boolean for a toggle, a string or an array for a config flag, a
    /// flagd flag's variant. Absent when the caller's default applies (a flagd flag that is
    /// `DISABLED`, or has no default variant): the server cannot know that default, and
    /// OFREP's providers return it for an answer without a value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// `on` / `off` for a toggle, `value` for a config flag, a flagd flag's variant name;
    /// absent with the value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An evaluation that failed (the spec's error answer, and an entry of the bulk answer's `flags`),
/// or a request refused before any evaluation (then `key` is the one asked for, if any).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OfrepError {
    /// What went wrong.
    pub error_code: ErrorCode,
    /// Said for a person.
    pub error_details: String,
    /// The flag's key; absent when the request named none (the bulk endpoint).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl OfrepError {
    /// An error about the flag `key`.
    pub fn for_key(key: &str, error_code: ErrorCode, error_details: String) -> Self {
        Self {
            error_code,
            error_details,
            key: Some(key.to_owned()),
        }
    }
}

/// One flag's answer: its evaluation or its error.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OfrepAnswer {
    /// Evaluated.
    Evaluation(OfrepEvaluation),
    /// Missing or invalid.
    Error(OfrepError),
}

/// The bulk answer: every flag for one context, sorted by key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OfrepBulk {
    /// Each flag's answer.
    pub flags: Vec<OfrepAnswer>,
    /// The snapshot the answers come from.
    pub metadata: OfrepBulkMetadata,
}

/// The bulk answer's metadata: which snapshot answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OfrepBulkMetadata {
    /// `ok`, `stale`, `degraded` or `fallback`.
    pub status: String,
    /// The snapshot's version.
    pub version: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_have_the_specs_names_and_sorted_keys() {
        let error = OfrepError {
            error_code: ErrorCode::InvalidContext,
            error_details: "`context` must be an object".into(),
            key: None,
        };
        assert_eq!(
            serde_json::to_string(&error).expect("serializes"),
            r#"{"errorCode":"INVALID_CONTEXT","errorDetails":"`context` must be an object"}"#
        );
        let bulk = OfrepBulk {
            flags: vec![
                OfrepAnswer::Error(OfrepError::for_key(
                    "a",
                    ErrorCode::ParseError,
                    "bad".into(),
                )),
                OfrepAnswer::Evaluation(OfrepEvaluation {
                    key: "b".into(),
                    metadata: Map::new(),
                    reason: "STATIC",
                    value: Some(json!(true)),
                    variant: Some("on".into()),
                }),
            ],
            metadata: OfrepBulkMetadata {
                status: "ok".into(),
                version: 3,
            },
        };
        let text = serde_json::to_string(&bulk).expect("serializes");
        // The same bytes as the document built as a `Value` (whose keys are sorted).
        let value = serde_json::to_value(&bulk).expect("serializes");
        assert_eq!(text, value.to_string());
        assert_eq!(
            text,
            r#"{"flags":[{"errorCode":"PARSE_ERROR","errorDetails":"bad","key":"a"},{"key":"b","metadata":{},"reason":"STATIC","value":true,"variant":"on"}],"metadata":{"status":"ok","version":3}}"#
        );
        assert_eq!(ErrorCode::FlagNotFound, "FLAG_NOT_FOUND");
    }
}
