//! The wire contract between the extension and everyone who reads it (the handler client, other
//! languages over HTTP, snapshot files, the operator tools): the port, the token header, the
//! endpoint paths, the freshness [`Status`] and a typed document for every body the API sends.
//!
//! A snapshot document (`GET /v1/flags`, and the snapshot file format):
//!
//! ```json
//! {"version": 4, "fetched_at": "2026-11-24T10:00:00.000Z", "status": "ok", "stale": false,
//!  "flags": {"dark-mode": {"value": true, "version": 3},
//!            "partner-api": {"value": {"enabled": true}, "version": 2, "secure": true},
//!            "broken": {"value": "{oops", "version": 1, "error": "parameter …: invalid JSON: …"}}}
//! ```
//!
//! `value` is a boolean for boolean flags, the object for JSON flags, an array for `StringList`,
//! else the string. `secure` marks a value that came from a `SecureString`: whoever logs, writes
//! or exports a document must mask it. In files every field but `flags` and `value` may be left out.
//!
//! # Compatibility
//! The extension (a layer) and the `flags` crate are upgraded separately, so the contract only
//! grows: fields are added, never renamed, removed or given a new meaning, and every reader
//! ignores fields it does not know. An older client reading a newer extension's document sees
//! the fields it knows (`stale` is still sent beside `status` for it). A newer client reading an
//! older extension's document derives the status from `stale` ([`SnapshotDoc::status`]) and,
//! without the [`FETCHED_AT_HEADER`], keeps the body's `fetched_at`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::LoadError;
use crate::eval::Evaluation;

/// The extension's default port on 127.0.0.1 (2772 and 2773 belong to AWS's own extensions).
pub const DEFAULT_PORT: u16 = 2774;
/// The request header that must carry the API token (HTTP header names are case-insensitive).
pub const TOKEN_HEADER: &str = "x-ssm-flags-token";
/// The API token, when set, for the extension and every client (what a sidecar and its
/// neighbour containers share).
pub const TOKEN_VAR: &str = "SSM_FLAGS_TOKEN";
/// Where the extension writes the token it generates when none is configured, and where clients
/// read it: a file only the function's user can read.
pub const TOKEN_FILE_VAR: &str = "SSM_FLAGS_TOKEN_FILE";
/// The default token file.
pub const DEFAULT_TOKEN_FILE: &str = "/tmp/ssm-flags/token";
/// The response header carrying the time of the last successful fetch (RFC 3339), on every
/// snapshot answer, 304 included: freshness travels apart from the content and its ETag.
pub const FETCHED_AT_HEADER: &str = "x-ssm-flags-fetched-at";
/// The whole snapshot: [`SnapshotDoc`], with an `ETag`; `If-None-Match` answers 304.
pub const FLAGS_PATH: &str = "/v1/flags";
/// One flag evaluated for a user: `{FLAG_PATH_PREFIX}{name}?user_id=…&region=…` →
/// [`EvaluationDoc`]. The name is percent-encoded where needed (`checkout%2Fv2` or `checkout/v2`).
pub const FLAG_PATH_PREFIX: &str = "/v1/flags/";
/// How current the served flags are: [`HealthDoc`].
pub const HEALTH_PATH: &str = "/v1/health";
/// `POST`: a conversion for an experiment ([`TrackDoc`] in, [`TrackedDoc`] out).
pub const TRACK_PATH: &str = "/v1/track";
/// The largest `POST /v1/track` body the extension reads.
pub const MAX_TRACK_BODY_BYTES: usize = 16 * 1024;
/// The request header of a long poll (RFC 7240): `Prefer: wait=N` on a `GET` of [`FLAGS_PATH`]
/// with `If-None-Match` holds the request until the snapshot changes (200) or `N` seconds pass
/// (304).
pub const PREFER_HEADER: &str = "prefer";
/// The response header saying a long poll was held: `Preference-Applied: wait=N`. A 304 without
/// it was answered at once (an extension before 0.2, or too many held requests): the client
/// pauses before asking again.
pub const PREFERENCE_APPLIED_HEADER: &str = "preference-applied";
/// The longest wait the extension applies; a longer one is cut to it.
pub const MAX_WAIT_SECONDS: u64 = 300;

/// How current a snapshot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The last fetch succeeded.
    Ok,
    /// The last fetch failed: these are the last good flags.
    Stale,
    /// No fetch has succeeded yet: there are no flags, every flag reads as its default.
    #[default]
    Degraded,
    /// Flags from a deployed file, not (yet) from the source.
    Fallback,
}

impl Status {
    /// The lowercase name, as on the wire: `ok`, `stale`, `degraded` or `fallback`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Stale => "stale",
            Self::Degraded => "degraded",
            Self::Fallback => "fallback",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A whole snapshot on the wire (`GET /v1/flags`) and in snapshot files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotDoc {
    /// Content version; increases whenever the flags change.
    #[serde(default)]
    pub version: u64,
    /// RFC 3339 time of the last successful fetch from the source, as of rendering (the
    /// [`FETCHED_AT_HEADER`] is newer when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched_at: Option<String>,
    /// How current the flags are; absent from documents of extensions before 0.2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// `status == stale`, kept for clients before 0.2.
    #[serde(default)]
    pub stale: bool,
    /// Every flag by name, except flagd's.
    pub flags: BTreeMap<String, FlagDoc>,
    /// Flags in OpenFeature's flag definition format (flagd's), by name. A field of their own:
    /// a client that predates them reads them as unknown (its caller's default), never as a
    /// seed JSON flag that reads off. Absent when none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub flagd: BTreeMap<String, FlagdDoc>,
}

/// One flagd flag on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlagdDoc {
    /// A one-flag flagd document: the flag under `flags` (by its name), the `$evaluators` it
    /// uses and the flag set's `metadata` — or, with `bucketing: "powertools"`, a one-feature
    /// Powertools document (`{"name": {"default": …, "rules": …}}`, rules in document order).
    /// Kept as its JSON text: a snapshot of a thousand flags
    /// is rendered without a parsed tree per flag (they cost 30 times the text).
    pub definition: Box<serde_json::value::RawValue>,
    /// How its `fractional` buckets: `v3` (absent) or `v2`; `powertools` for a Powertools
    /// feature (a client that predates them reports that flag as an error, nothing else); any
    /// other is an error for this flag.
    #[serde(default = "v3", skip_serializing_if = "is_v3")]
    pub bucketing: String,
    /// The source's version of the parameter or profile.
    #[serde(default)]
    pub version: u64,
    /// The definition came from a `SecureString`: never log or export it unmasked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secure: bool,
}

impl PartialEq for FlagdDoc {
    fn eq(&self, other: &Self) -> bool {
        (
            self.definition.get(),
            &self.bucketing,
            self.version,
            self.secure,
        ) == (
            other.definition.get(),
            &other.bucketing,
            other.version,
            other.secure,
        )
    }
}

fn v3() -> String {
    "v3".to_owned()
}

fn is_v3(bucketing: &str) -> bool {
    bucketing == "v3"
}

/// One flag on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlagDoc {
    /// The value (see the module docs); for an invalid flag, the raw string.
    pub value: Value,
    /// The SSM parameter version.
    #[serde(default)]
    pub version: u64,
    /// The value came from a `SecureString`: never log or export it unmasked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secure: bool,
    /// Why the value is invalid; present only then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One flag evaluated for a user (`GET /v1/flags/{name}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationDoc {
    /// The flag's name.
    pub name: String,
    /// Whether it is on for the given context.
    pub enabled: bool,
    /// The reason code (see [`crate::Reason::code`]).
    pub reason: String,
    /// The outcome in words.
    pub detail: String,
    /// The flag's value, or `null` when it is invalid; a flagd flag's: the resolved variant's
    /// value (`null`: the caller's default applies).
    pub value: Value,
    /// A flagd flag's resolved variant, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// How current the served flags are (`GET /v1/health`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthDoc {
    /// The snapshot's status.
    pub status: Status,
    /// The content version.
    pub version: u64,
    /// Seconds since the last successful fetch; `null` before any.
    pub age_seconds: Option<f64>,
    /// Number of flags, valid or not.
    pub flags: usize,
    /// Number of flags whose value is invalid.
    pub invalid: usize,
    /// Why the last refresh failed (while degraded or stale), or why some SecureString flags
    /// could not be decrypted.
    pub last_error: Option<String>,
    /// SecureString flags SSM would not decrypt at the last refresh: served from their last good
    /// value, or as their default if never decrypted. Absent when there are none; at most
    /// [`HealthDoc::MAX_LISTED`] names (all of them are counted in `undecryptable_count`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub undecryptable: Vec<String>,
    /// How many SecureString flags SSM would not decrypt, listed or not. Absent when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub undecryptable_count: usize,
    /// Definitions hidden by another of the same name (a later source, a parameter of its own
    /// over a document, a document whose name sorts later): at most
    /// [`HealthDoc::MAX_LISTED`], all counted in `shadowed_count`. Absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shadowed: Vec<Shadowed>,
    /// How many definitions are hidden, listed or not. Absent when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shadowed_count: usize,
}

/// A definition of a flag hidden by another of the same name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shadowed {
    /// The flag's name.
    pub flag: String,
    /// Where the definition served comes from (a parameter's full name, or a profile's).
    pub kept: String,
    /// Where the hidden definition comes from.
    pub hidden: String,
}

impl HealthDoc {
    /// The most flag names a health document lists: it stays small however many flags fail.
    pub const MAX_LISTED: usize = 100;

    /// Sets the undecryptable flags: at most [`HealthDoc::MAX_LISTED`] names, and their count.
    pub fn with_undecryptable(mut self, names: &[String]) -> Self {
        self.undecryptable = names.iter().take(Self::MAX_LISTED).cloned().collect();
        self.undecryptable_count = names.len();
        self
    }

    /// Sets the hidden definitions: at most [`HealthDoc::MAX_LISTED`], and their count.
    pub fn with_shadowed(mut self, shadowed: &[Shadowed]) -> Self {
        self.shadowed = shadowed.iter().take(Self::MAX_LISTED).cloned().collect();
        self.shadowed_count = shadowed.len();
        self
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The body of `POST /v1/track`: a conversion on `event` for the unit `context` names (its
/// `targetingKey`), with an optional `value` — the shape of OpenFeature's tracking API
/// (`track(eventName, context, details)`).
///
/// ```json
/// {"event": "checkout-completed", "context": {"targetingKey": "user-123"}, "value": 42.5}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackDoc {
    /// The event's name (a CloudWatch dimension value: printable ASCII, 1–255 characters).
    pub event: String,
    /// The evaluation context: its string `targetingKey` names the unit.
    pub context: serde_json::Map<String, Value>,
    /// A number kept as a `ConversionValue` sample (an order's total).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

/// The answer to `POST /v1/track`: the experiment flags (and the variants) the conversion was
/// attributed to — empty when the unit was exposed to none in the current scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackedDoc {
    /// One per experiment flag the unit was exposed to.
    pub attributed: Vec<crate::experiment::Attribution>,
}

/// The body of every error answer (4xx).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDoc {
    /// What went wrong, and what to do.
    pub error: String,
    /// The flag asked for, when the error is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl EvaluationDoc {
    /// Describes an evaluation of `name`, whose value is `value`.
    pub fn new(name: &str, evaluation: Evaluation, value: Value) -> Self {
        Self {
            name: name.to_owned(),
            enabled: evaluation.enabled,
            reason: evaluation.reason.code().to_owned(),
            detail: evaluation.to_string(),
            value,
            variant: None,
        }
    }
}

impl ErrorDoc {
    /// An error about the request as a whole.
    pub fn new(error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            name: None,
        }
    }

    /// An error about one flag.
    pub fn for_flag(error: impl Into<String>, name: &str) -> Self {
        Self {
            error: error.into(),
            name: Some(name.to_owned()),
        }
    }
}

impl SnapshotDoc {
    /// Decodes a snapshot document; `origin` names it in errors.
    pub fn from_slice(bytes: &[u8], origin: &str) -> Result<Self, LoadError> {
        serde_json::from_slice(bytes).map_err(|cause| LoadError::Format {
            origin: origin.to_owned(),
            cause,
        })
    }

    /// Encodes the document as JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Strings, integers and JSON values with string keys always serialize.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The status: the one sent, or for documents without one (extensions before 0.2), `stale`
    /// when marked so, `degraded` when empty and never fetched, else `ok`.
    pub fn status(&self) -> Status {
        match self.status {
            Some(status) => status,
            None if self.stale => Status::Stale,
            None if self.fetched_at.is_none() && self.flags.is_empty() => Status::Degraded,
            None => Status::Ok,
        }
    }
}

/// The largest snapshot file read ([`read_file`]: `flags::load_file`, `SSM_FLAGS_FALLBACK_FILE`).
pub const MAX_SNAPSHOT_FILE_BYTES: u64 = 64 * 1024 * 1024;

// `flags::wire::read_file`'s old path (a re-export, not a dependency: see the floor table in
// `lib.rs`). The conversions between a snapshot and its document live with the snapshot.
pub use crate::snapshot::read_file;

/// The token file: [`TOKEN_FILE_VAR`], else [`DEFAULT_TOKEN_FILE`].
pub fn token_file(get: impl Fn(&str) -> Option<String>) -> std::path::PathBuf {
    get(TOKEN_FILE_VAR)
        .filter(|path| !path.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_TOKEN_FILE.to_owned())
        .into()
}

/// Formats a time as RFC 3339 (UTC, milliseconds), as `fetched_at` and the
/// [`FETCHED_AT_HEADER`] carry it.
pub fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

/// Parses an RFC 3339 time as [`rfc3339`] writes it (any precision).
pub fn parse_time(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_without_a_status_derive_it() {
        let old = |json: &str| SnapshotDoc::from_slice(json.as_bytes(), "old").expect("doc");
        assert_eq!(
            old(r#"{"version": 0, "stale": false, "flags": {}}"#).status(),
            Status::Degraded
        );
        assert_eq!(
            old(r#"{"version": 3, "stale": true, "fetched_at": "2026-11-24T10:00:00Z", "flags": {}}"#)
                .status(),
            Status::Stale
        );
        assert_eq!(
            old(r#"{"version": 3, "fetched_at": "2026-11-24T10:00:00Z", "flags": {}}"#).status(),
            Status::Ok
        );
        assert_eq!(
            old(r#"{"status": "fallback", "flags": {}}"#).status(),
            Status::Fallback
        );
    }

    #[test]
    fn a_document_that_is_not_a_snapshot_names_its_origin() {
        let err = SnapshotDoc::from_slice(b"{\"flags\": 3}", "flags.json").expect_err("bad");
        assert!(
            err.to_string()
                .starts_with("flags.json is not a valid flag snapshot: "),
            "{err}"
        );
        let err = SnapshotDoc::from_slice(br#"{"status": "fine", "flags": {}}"#, "f.json")
            .expect_err("unknown status");
        // Where, never what: a snapshot document holds SecureString values.
        assert_eq!(
            err.to_string(),
            "f.json is not a valid flag snapshot: a field is missing or has the wrong type at line 1, column 17"
        );
        let err = SnapshotDoc::from_slice(
            br#"{"flags": {"key": {"value": "sk_live_123", "version": "sk_live_456"}}}"#,
            "f.json",
        )
        .expect_err("a string version");
        assert!(!err.to_string().contains("sk_live"), "{err}");
    }

    #[test]
    fn evaluation_health_and_error_docs_have_stable_shapes() {
        let doc = EvaluationDoc::new(
            "x",
            Evaluation {
                enabled: false,
                reason: crate::Reason::Excluded,
            },
            Value::Null,
        );
        assert_eq!(
            serde_json::to_value(&doc).expect("serialize"),
            serde_json::json!({"name": "x", "enabled": false, "reason": "excluded",
                               "detail": "user is in `excluded_user_ids`", "value": null})
        );
        let health = HealthDoc {
            status: Status::Degraded,
            version: 0,
            age_seconds: None,
            flags: 0,
            invalid: 0,
            last_error: Some("down".into()),
            undecryptable: Vec::new(),
            undecryptable_count: 0,
            shadowed: Vec::new(),
            shadowed_count: 0,
        };
        assert_eq!(
            serde_json::to_value(&health).expect("serialize"),
            serde_json::json!({"status": "degraded", "version": 0, "age_seconds": null,
                               "flags": 0, "invalid": 0, "last_error": "down"})
        );
        assert_eq!(
            serde_json::to_value(ErrorDoc::for_flag("flag \"y\" not found", "y"))
                .expect("serialize"),
            serde_json::json!({"error": "flag \"y\" not found", "name": "y"})
        );
        assert_eq!(
            serde_json::to_value(ErrorDoc::new("no")).expect("serialize"),
            serde_json::json!({"error": "no"})
        );
    }

    #[test]
    fn the_token_file_is_ssm_flags_token_file_else_the_default() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |var: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == var)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(
            token_file(env(&[])),
            std::path::PathBuf::from(DEFAULT_TOKEN_FILE)
        );
        let custom = env(&[("SSM_FLAGS_TOKEN_FILE", "/run/flags/token")]);
        assert_eq!(
            token_file(custom),
            std::path::PathBuf::from("/run/flags/token")
        );
    }

    #[test]
    fn times_round_trip_at_millisecond_precision() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_764_000_000_123);
        assert_eq!(parse_time(&rfc3339(at)), Some(at));
        assert_eq!(
            parse_time("2026-11-24T10:00:00Z"),
            humantime::parse_rfc3339("2026-11-24T10:00:00Z").ok()
        );
        assert_eq!(parse_time("yesterday"), None);
    }
}
