//! Errors: what is wrong with one flag's value, and why a snapshot could not be loaded.

/// What is wrong with a flag's value. Its text says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The value starts with `{` but is not valid JSON.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// The JSON document is not an object.
    #[error("a JSON flag must be an object, got {0}")]
    NotAnObject(String),
    /// A known field has the wrong type.
    #[error("field `{field}` must be {expected}, got {found}")]
    WrongType {
        /// The field, as written in the document.
        field: &'static str,
        /// What the field must hold.
        expected: &'static str,
        /// What it held.
        found: String,
    },
    /// `rollout_percentage` is a number outside 0–100.
    #[error("field `rollout_percentage` must be a number from 0 to 100, got {0}")]
    PercentageOutOfRange(String),
    /// A flagd flag definition breaks the format at `field` (a JSON path such as
    /// `flags.checkout.targeting.if[0].sem_ver`).
    #[error("`{field}` {problem}")]
    Definition {
        /// Where, as a JSON path from the document.
        field: String,
        /// What is wrong there.
        problem: String,
    },
}

impl Problem {
    /// The same problem without any quote of the value, for a value that must never be shown
    /// (a `SecureString`). JSON syntax errors only give a position, never the text, and stay.
    pub fn redacted(self) -> Self {
        const HIDDEN: &str = "a value not shown (SecureString)";
        match self {
            Self::InvalidJson(_) => self,
            Self::NotAnObject(_) => Self::NotAnObject(HIDDEN.to_owned()),
            Self::WrongType {
                field, expected, ..
            } => Self::WrongType {
                field,
                expected,
                found: HIDDEN.to_owned(),
            },
            Self::PercentageOutOfRange(_) => Self::PercentageOutOfRange(HIDDEN.to_owned()),
            Self::Definition { field, .. } => Self::Definition {
                field,
                problem: format!("is invalid: {HIDDEN}"),
            },
        }
    }
}

/// A JSON value's kind in words, for errors: `null`, `a boolean`, `a number`, `a string`, `an
/// array`, `an object`.
pub(crate) fn kind_of(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A flag in an error state: it behaves as its default, and says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    /// The value of this SSM parameter is invalid.
    #[error("parameter {parameter}: {problem}")]
    Invalid {
        /// The parameter's full SSM name (or the flag name, for snapshot files).
        parameter: String,
        /// What is wrong.
        problem: Problem,
    },
    /// The extension reported this flag as invalid, with this message.
    #[error("{0}")]
    Reported(String),
}

/// Why a snapshot could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The snapshot file could not be read (missing, a link, not a regular file, too large).
    #[error("cannot read flag snapshot file {0}")]
    File(#[from] crate::file::FileError),
    /// The document is not a snapshot (see the README's snapshot format). The message gives
    /// where, never what: a snapshot holds SecureString values.
    #[error(
        "{origin} is not a valid flag snapshot: {} at line {}, column {}",
        what_went_wrong(.cause),
        .cause.line(),
        .cause.column()
    )]
    Format {
        /// Where the document came from (a path, or "the extension's response").
        origin: String,
        /// The decoding error (its own message may quote a value: not shown).
        cause: serde_json::Error,
    },
    /// A document declaring flagd's `$schema` that is not a flag document.
    #[error("{origin} is not a valid flagd document: {problem}")]
    Flagd {
        /// Where the document came from.
        origin: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A file declared `#powertools` that is not a Powertools document (or whose envelope,
    /// `SSM_FLAGS_POWERTOOLS_ENVELOPE`, is invalid or selects nothing).
    #[error("{origin} is not a valid Powertools feature-flags document: {problem}")]
    Powertools {
        /// Where the document came from.
        origin: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// What kind of decoding error `error` is, in words that quote nothing from the document.
fn what_went_wrong(error: &serde_json::Error) -> &'static str {
    match error.classify() {
        serde_json::error::Category::Syntax => "malformed JSON",
        serde_json::error::Category::Eof => "the document ends too early",
        serde_json::error::Category::Data => "a field is missing or has the wrong type",
        serde_json::error::Category::Io => "it could not be read",
    }
}
