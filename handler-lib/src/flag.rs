//! The handles handlers read: [`Flag`], one flag in one snapshot (borrowed: reading through it
//! touches no shared counter), and [`CurrentFlag`], a flag by name in whatever snapshot is
//! current at each read (what [`crate::get`] returns).

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

mod variant;

pub use variant::{ValueType, Variant};

use crate::error::FlagError;
use crate::eval::{Context, Evaluation};
use crate::model::FlagValue;
use crate::snapshot::{FlagEntry, Snapshot};
use crate::store::Store;

/// A handle on one flag in one snapshot. Every read answers: a missing, broken or non-toggle flag
/// reads as its default (`false` unless set with [`Flag::default_to`] or [`crate::get_or`]).
///
/// It borrows its snapshot, so every read through it agrees, costs no reference count, and
/// config reads may borrow from the flag's document.
#[derive(Debug, Clone, Copy)]
pub struct Flag<'s> {
    snapshot: &'s Snapshot,
    entry: Option<&'s FlagEntry>,
    default: bool,
}

impl<'s> Flag<'s> {
    #[inline]
    pub(crate) fn new(snapshot: &'s Snapshot, entry: Option<&'s FlagEntry>) -> Self {
        Self {
            snapshot,
            entry,
            default: false,
        }
    }

    /// Sets what the flag reads as when it is missing, invalid, or not a toggle.
    #[inline]
    pub fn default_to(mut self, default: bool) -> Self {
        self.default = default;
        self
    }

    #[inline]
    fn entry(&self) -> Option<&'s FlagEntry> {
        self.entry
    }

    #[inline]
    fn value(&self) -> Option<&'s FlagValue> {
        self.entry().and_then(|entry| entry.value().ok())
    }

    /// Whether the flag is on with no user (in the snapshot's default region): a boolean flag's
    /// value, or a JSON flag evaluated for an empty [`Context`].
    #[inline]
    pub fn enabled(&self) -> bool {
        // A boolean flag answers before any context is built; the rest is out of line.
        match self.boolean() {
            Some(on) => on,
            None => self.evaluated(&Context::new()),
        }
    }

    /// Whether the flag is on for this context.
    #[inline]
    pub fn enabled_for(&self, context: &Context<'_>) -> bool {
        match self.boolean() {
            Some(on) => on,
            None => self.evaluated(context),
        }
    }

    /// A boolean flag's value: the common case, read where the flag is read.
    #[inline(always)]
    fn boolean(&self) -> Option<bool> {
        match self.entry.map(FlagEntry::value) {
            Some(Ok(FlagValue::Bool(on))) => Some(*on),
            _ => None,
        }
    }

    /// Whether any other flag (JSON rules, missing, invalid, not a toggle) is on: out of line,
    /// so the boolean read stays small enough to be inlined into the caller's loop.
    #[inline(never)]
    fn evaluated(&self, context: &Context<'_>) -> bool {
        self.evaluate(context).enabled
    }

    /// Evaluates the flag for a context and says why it is on or off.
    #[inline]
    pub fn evaluate(&self, context: &Context<'_>) -> Evaluation {
        self.snapshot
            .evaluate_entry(self.entry, context, self.default)
    }

    /// Whether the flag exists in the snapshot (valid or not).
    #[inline]
    pub fn is_known(&self) -> bool {
        self.entry.is_some()
    }

    /// Why the flag's value is invalid, if it is.
    pub fn error(&self) -> Option<&'s FlagError> {
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
    pub fn json(&self) -> Option<&'s Value> {
        match self.value() {
            Some(FlagValue::Json(flag)) => Some(flag.document()),
            _ => None,
        }
    }

    /// Deserializes a JSON flag's whole document into the caller's type (borrowing is allowed).
    pub fn config<T: Deserialize<'s>>(&self) -> Result<T, ConfigError> {
        let document = self.json().ok_or(ConfigError::NotJson)?;
        T::deserialize(document).map_err(ConfigError::Shape)
    }

    /// Like [`Flag::config`], with a default when the flag is missing, invalid or of another shape.
    pub fn config_or<T: Deserialize<'s>>(&self, default: T) -> T {
        self.config().unwrap_or(default)
    }

    /// One field of a JSON flag, if present and of type `T`.
    pub fn field<T: Deserialize<'s>>(&self, name: &str) -> Option<T> {
        self.json()
            .and_then(|document| document.get(name))
            .and_then(|value| T::deserialize(value).ok())
    }

    /// One field of a JSON flag, or `default` when absent or of another type.
    pub fn field_or<T: Deserialize<'s>>(&self, name: &str, default: T) -> T {
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
    pub fn as_str(&self) -> Option<&'s str> {
        match self.value() {
            Some(FlagValue::Text(text)) => Some(text),
            _ => None,
        }
    }

    /// A `StringList` config value.
    pub fn as_list(&self) -> Option<&'s [String]> {
        match self.value() {
            Some(FlagValue::List(items)) => Some(items),
            _ => None,
        }
    }
    /// What the flag resolves to for `context`: the value, the variant's name, the reason and
    /// the error code ([`Variant`]). A flagd flag gives its variant; a boolean or seed JSON flag
    /// its toggle; a string or list flag its value.
    pub fn variant_for(&self, context: &Context<'_>) -> Variant<'s> {
        variant::resolve(self.snapshot, self.entry, context)
    }

    /// How a flagd flag resolves for `context`: the top-level `if`'s conditions, the branch
    /// taken and a `fractional`'s bucket ([`crate::flagd::Explanation`]); `None` for a flag of
    /// another format, or none.
    pub fn explain(&self, context: &Context<'_>) -> Option<crate::flagd::Explanation<'s>> {
        match self.value()? {
            FlagValue::Flagd(definition) => Some(definition.explain(context)),
            _ => None,
        }
    }

    /// [`Flag::variant_for`], checked against the type asked for (`TYPE_MISMATCH` otherwise).
    pub fn resolve(&self, context: &Context<'_>, wanted: ValueType) -> Variant<'s> {
        self.variant_for(context).expecting(wanted)
    }

    /// A boolean variant (or toggle) for `context`; `None`: use your default.
    pub fn bool_for(&self, context: &Context<'_>) -> Option<bool> {
        match self.answer(context)? {
            Answer::Bool(on) | Answer::Json(Value::Bool(on)) => Some(*on),
            Answer::Json(_) => None,
        }
    }

    /// A string variant (or string flag) for `context`, borrowed from the snapshot; `None`: use
    /// your default.
    pub fn string_for(&self, context: &Context<'_>) -> Option<&'s str> {
        match self.value()? {
            FlagValue::Text(text) => Some(text),
            _ => match self.answer(context)? {
                Answer::Json(Value::String(text)) => Some(text),
                _ => None,
            },
        }
    }

    /// An integer variant for `context` (a number written without a fraction); `None`: use your
    /// default.
    pub fn i64_for(&self, context: &Context<'_>) -> Option<i64> {
        match self.answer(context)? {
            Answer::Json(value) => value.as_i64(),
            Answer::Bool(_) => None,
        }
    }

    /// A number variant for `context`; `None`: use your default.
    pub fn f64_for(&self, context: &Context<'_>) -> Option<f64> {
        match self.answer(context)? {
            Answer::Json(value) => value.as_f64(),
            Answer::Bool(_) => None,
        }
    }

    /// What a typed read resolves to, without building a [`Variant`]: a flagd variant's value,
    /// or a toggle's answer; `None` for a config value, a missing or invalid flag, or the
    /// caller's default.
    #[inline]
    fn answer(&self, context: &Context<'_>) -> Option<Answer<'s>> {
        let entry = self.entry()?;
        match entry.value().ok()? {
            FlagValue::Flagd(definition) => {
                let resolution = definition.resolve(context);
                entry.expose_flagd(definition, context, &resolution);
                resolution.variant.map(|(_, value)| Answer::Json(value))
            }
            FlagValue::Bool(on) => Some(Answer::Bool(on)),
            FlagValue::Json(_) => Some(Answer::Bool(if self.evaluate(context).enabled {
                &true
            } else {
                &false
            })),
            FlagValue::Text(_) | FlagValue::List(_) => None,
        }
    }

    /// A variant deserialized into the caller's type (an object variant into a struct, say);
    /// `None` when there is none or it has another shape.
    pub fn value_for<T: DeserializeOwned>(&self, context: &Context<'_>) -> Option<T> {
        let value = self.variant_for(context).value?;
        T::deserialize(value.as_ref()).ok()
    }
}

/// What a typed read of a flag resolved to (see [`Flag::answer`]).
enum Answer<'s> {
    Json(&'s Value),
    Bool(&'s bool),
}

/// A flag by name, read in the snapshot that is current at each read: what [`crate::get`] and
/// [`crate::get_or`] return. Each read is a lock-free lookup with no shared counter touched (on
/// the process-wide store, through each thread's own view; on a store of one's own, through
/// [`Store::read`]); two reads may see two snapshots if one is installed in between — pin a
/// snapshot ([`crate::pin`]) when several reads must agree, or to borrow from a flag's value.
#[derive(Debug, Clone, Copy)]
pub struct CurrentFlag<'a> {
    /// `None`: the process-wide store, read without touching its `LazyLock` on the hot path.
    store: Option<&'a Store>,
    name: &'a str,
    default: bool,
}

impl<'a> CurrentFlag<'a> {
    #[inline]
    pub(crate) fn new(store: &'a Store, name: &'a str) -> Self {
        Self {
            store: Some(store),
            name,
            default: false,
        }
    }

    #[inline]
    pub(crate) fn global(name: &'a str) -> Self {
        Self {
            store: None,
            name,
            default: false,
        }
    }

    /// Sets what the flag reads as when it is missing, invalid, or not a toggle.
    #[inline]
    pub fn default_to(mut self, default: bool) -> Self {
        self.default = default;
        self
    }

    /// Runs `read` on the flag in the current snapshot: any read of [`Flag`], with no copy.
    pub fn read<R>(&self, read: impl FnOnce(Flag<'_>) -> R) -> R {
        let mut read = Some(read);
        self.look(|flag| read.take().map(|read| read(flag)))
            .unwrap_or_else(|| unreachable!("a read runs its closure exactly once"))
    }

    /// The hot path of every read: `read` runs once, on the flag in the current snapshot.
    #[inline(always)]
    fn look<R>(&self, mut read: impl FnMut(Flag<'_>) -> R) -> R {
        let (name, default) = (self.name, self.default);
        match self.store {
            None => crate::global::read_global_entry(name, |snapshot, entry| {
                read(Flag::new(snapshot, entry).default_to(default))
            }),
            Some(store) => {
                store.read(move |snapshot: &Snapshot| read(snapshot.get(name).default_to(default)))
            }
        }
    }

    /// Whether the flag is on with no user (see [`Flag::enabled`]). On the process-wide store
    /// this is the hot read: this thread's remembered answer, while the snapshot is the same.
    #[inline(always)]
    pub fn enabled(&self) -> bool {
        if self.store.is_none()
            && let Some(on) = crate::global::answers::enabled(self.name, self.default)
        {
            return on;
        }
        self.evaluated_for(&Context::new())
    }

    /// Whether the flag is on for this context. On the process-wide store, a flag whose answer
    /// is the same for every context (a boolean flag, a disabled one, a default) answers as
    /// [`CurrentFlag::enabled`] does, from the thread's remembered answer.
    #[inline(always)]
    pub fn enabled_for(&self, context: &Context<'_>) -> bool {
        if self.store.is_none()
            && let Some(on) = crate::global::answers::enabled_for_any(self.name, self.default)
        {
            return on;
        }
        self.evaluated_for(context)
    }

    /// [`CurrentFlag::enabled_for`] (and `enabled`, for an empty context) evaluated in the current
    /// snapshot: out of line, so the remembered answer stays small where flags are read.
    #[inline(never)]
    fn evaluated_for(&self, context: &Context<'_>) -> bool {
        self.look(|flag| flag.enabled_for(context))
    }

    /// Evaluates the flag for a context and says why it is on or off.
    #[inline]
    pub fn evaluate(&self, context: &Context<'_>) -> Evaluation {
        self.look(|flag| flag.evaluate(context))
    }

    /// Whether the flag exists in the current snapshot (valid or not).
    #[inline]
    pub fn is_known(&self) -> bool {
        self.look(|flag| flag.is_known())
    }

    /// Why the flag's value is invalid, if it is.
    pub fn error(&self) -> Option<FlagError> {
        self.look(|flag| flag.error().cloned())
    }

    /// The SSM parameter version of the value, if the flag exists.
    pub fn ssm_version(&self) -> Option<u64> {
        self.look(|flag| flag.ssm_version())
    }

    /// The version of the current snapshot.
    pub fn snapshot_version(&self) -> u64 {
        self.look(|flag| flag.snapshot_version())
    }

    /// `fallback_on_error` of a JSON flag (false otherwise).
    pub fn fallback_on_error(&self) -> bool {
        self.look(|flag| flag.fallback_on_error())
    }

    /// Deserializes a JSON flag's whole document into the caller's type (to borrow from it, read
    /// through a pinned snapshot: `flags::pin().get(name).config()`).
    pub fn config<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        self.look(|flag| flag.config())
    }

    /// Like [`CurrentFlag::config`], with a default when the flag is missing, invalid or of
    /// another shape.
    pub fn config_or<T: DeserializeOwned>(&self, default: T) -> T {
        self.config().unwrap_or(default)
    }

    /// One field of a JSON flag, if present and of type `T`.
    pub fn field<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        self.look(|flag| flag.field(name))
    }

    /// One field of a JSON flag, or `default` when absent or of another type.
    pub fn field_or<T: DeserializeOwned>(&self, name: &str, default: T) -> T {
        self.field(name).unwrap_or(default)
    }

    /// A plain string config value.
    pub fn as_string(&self) -> Option<String> {
        self.look(|flag| flag.as_str().map(str::to_owned))
    }

    /// A `StringList` config value.
    pub fn as_list(&self) -> Option<Vec<String>> {
        self.look(|flag| flag.as_list().map(<[String]>::to_vec))
    }
    /// What the flag resolves to for `context` (see [`Flag::variant_for`]), owned. To borrow
    /// it, read through a pinned snapshot: `flags::pin().get(name).variant_for(&context)`.
    pub fn variant_for(&self, context: &Context<'_>) -> Variant<'static> {
        self.look(|flag| flag.variant_for(context).into_owned())
    }

    /// [`CurrentFlag::variant_for`], checked against the type asked for.
    pub fn resolve(&self, context: &Context<'_>, wanted: ValueType) -> Variant<'static> {
        self.look(|flag| flag.resolve(context, wanted).into_owned())
    }

    /// A boolean variant (or toggle) for `context`; `None`: use your default.
    pub fn bool_for(&self, context: &Context<'_>) -> Option<bool> {
        self.look(|flag| flag.bool_for(context))
    }

    /// A string variant (or string flag) for `context`, copied; to borrow it (no allocation),
    /// read through a pinned snapshot: `flags::pin().get(name).string_for(&context)`.
    pub fn string_for(&self, context: &Context<'_>) -> Option<String> {
        self.look(|flag| flag.string_for(context).map(str::to_owned))
    }

    /// An integer variant for `context`; `None`: use your default.
    pub fn i64_for(&self, context: &Context<'_>) -> Option<i64> {
        self.look(|flag| flag.i64_for(context))
    }

    /// A number variant for `context`; `None`: use your default.
    pub fn f64_for(&self, context: &Context<'_>) -> Option<f64> {
        self.look(|flag| flag.f64_for(context))
    }

    /// A variant deserialized into the caller's type; `None` when there is none or it has
    /// another shape.
    pub fn value_for<T: DeserializeOwned>(&self, context: &Context<'_>) -> Option<T> {
        self.look(|flag| flag.value_for(context))
    }
}

impl Snapshot {
    /// A handle on one flag of this snapshot; all handles from one snapshot agree.
    #[inline]
    pub fn get(&self, name: &str) -> Flag<'_> {
        Flag::new(self, self.entry(name))
    }
}

impl Store {
    /// A handle on one flag by name; each read looks it up in the snapshot current then.
    #[inline]
    pub fn get<'a>(&'a self, name: &'a str) -> CurrentFlag<'a> {
        CurrentFlag::new(self, name)
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
    use crate::eval::Reason;
    use crate::model::ParameterKind;

    fn snapshot() -> Snapshot {
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
        Snapshot::new(
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
        )
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
        assert!(missing.default_to(true).enabled());
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
        assert!(broken.default_to(true).enabled());
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
