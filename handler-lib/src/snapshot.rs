//! Immutable, versioned snapshots of every flag: [`Snapshot`], its [`FlagEntry`]s and their
//! index, and what a flag evaluates to in a snapshot. The [`Store`] that swaps them is one floor
//! up ([`crate::store`]); the snapshot document's conversions are in `document`.
//!
//! A snapshot's content (flags, version, [`Status`]) never changes once built. Its freshness —
//! when the source last confirmed it — moves on by itself ([`Snapshot::mark_fetched`]), so an
//! unchanged snapshot never has to be rebuilt or re-sent to stay current.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::error::{FlagError, Problem};
use crate::eval::{self, Context, Evaluation, Reason};
use crate::flagd::{self, Bucketing, Definition};
use crate::model::{FlagValue, Parameter, ParameterKind};
use crate::wire::Status;

pub mod assemble;
mod document;

pub use document::{POWERTOOLS_ENVELOPE_VAR, read_file, read_file_with};
// The store's old path, `flags::snapshot::Store` (a re-export, not a dependency: see the floor
// table in `lib.rs`).
pub use crate::store::Store;

/// One flag in a snapshot: its name, source version and parsed value (or why it is invalid).
#[derive(Debug, Clone, PartialEq)]
pub struct FlagEntry {
    name: Box<str>,
    ssm_version: u64,
    secure: bool,
    value: Result<FlagValue, FlagError>,
    /// The raw value of an invalid entry, served as it is so the operator sees what is wrong.
    invalid_raw: Option<Box<str>>,
}

impl FlagEntry {
    /// Parses a fetched parameter into its flag; an invalid value becomes an error entry naming
    /// the parameter, without quoting a `SecureString`'s value.
    pub fn from_parameter(parameter: &Parameter) -> Self {
        let secure = parameter.kind == ParameterKind::SecureString;
        match FlagValue::parse(parameter.kind, &parameter.value) {
            Ok(value) => Self::valid(parameter.flag.as_str(), parameter.version, secure, value),
            Err(problem) => Self::invalid(
                parameter.flag.as_str(),
                parameter.version,
                secure,
                parameter.value.as_str(),
                invalid(&parameter.name, problem),
            ),
        }
    }

    /// A valid entry.
    pub fn valid(
        name: impl Into<Box<str>>,
        ssm_version: u64,
        secure: bool,
        value: FlagValue,
    ) -> Self {
        Self {
            name: name.into(),
            ssm_version,
            secure,
            value: Ok(value),
            invalid_raw: None,
        }
    }

    /// An entry whose raw value `raw` is invalid for the reason `error`.
    pub fn invalid(
        name: impl Into<Box<str>>,
        ssm_version: u64,
        secure: bool,
        raw: impl Into<Box<str>>,
        error: FlagError,
    ) -> Self {
        Self {
            name: name.into(),
            ssm_version,
            secure,
            value: Err(error),
            invalid_raw: Some(raw.into()),
        }
    }

    /// An entry from a value in its wire form (see [`FlagValue::from_json`]).
    pub(crate) fn from_json(name: String, ssm_version: u64, secure: bool, value: Value) -> Self {
        match FlagValue::from_json_or_return(value) {
            Ok(value) => Self::valid(name, ssm_version, secure, value),
            Err((problem, raw)) => {
                let problem = if secure { problem.redacted() } else { problem };
                let raw = match raw {
                    Value::String(raw) => raw,
                    other => other.to_string(),
                };
                let error = invalid(&name, problem);
                Self::invalid(name, ssm_version, secure, raw, error)
            }
        }
    }

    /// The entries of a Powertools feature-flags document (JSON text of an object of features)
    /// read from `source`, one per feature, named by its key: a feature Powertools' validator
    /// rejects is an invalid entry naming its rule and condition, beside the valid ones (see
    /// [`crate::flagd::powertools`]). `envelope` first selects the document from a larger one.
    /// Text that is not such a document is a [`Problem`].
    pub fn from_powertools_document(
        source: &str,
        ssm_version: u64,
        secure: bool,
        text: &str,
        envelope: Option<&crate::flagd::powertools::Envelope>,
    ) -> Result<Vec<Self>, Problem> {
        let hide = |problem: Problem| if secure { problem.redacted() } else { problem };
        let features = crate::flagd::powertools::parse_enveloped(text, envelope).map_err(hide)?;
        Ok(features
            .into_iter()
            .map(|(key, parsed, raw)| match parsed {
                Ok(definition) => {
                    Self::valid(key, ssm_version, secure, FlagValue::Flagd(definition))
                }
                Err(problem) => {
                    let raw = if secure { String::new() } else { raw };
                    let error = invalid(source, hide(problem));
                    Self::invalid(key, ssm_version, secure, raw, error)
                }
            })
            .collect())
    }

    /// The entries of a flagd flag document (`{"flags": {…}, "$evaluators": …}`) read from
    /// `source` (a parameter's full name, a profile, a file: what errors cite), one per flag,
    /// named by its key: a broken flag is an invalid entry naming its field, beside the valid
    /// ones. A value that is not a flag document at all is a [`Problem`].
    pub fn from_flagd_document(
        source: &str,
        ssm_version: u64,
        secure: bool,
        document: &Value,
        bucketing: Bucketing,
    ) -> Result<Vec<Self>, Problem> {
        let flags = flagd::parse_document(document, bucketing)
            .map_err(|problem| if secure { problem.redacted() } else { problem })?;
        Ok(flags
            .into_iter()
            .map(|(key, parsed)| match parsed {
                Ok(definition) => {
                    Self::valid(key, ssm_version, secure, FlagValue::Flagd(definition))
                }
                Err(problem) => {
                    let problem = if secure { problem.redacted() } else { problem };
                    let raw = if secure {
                        String::new()
                    } else {
                        document
                            .get("flags")
                            .and_then(|flags| flags.get(&key))
                            .map(Value::to_string)
                            .unwrap_or_default()
                    };
                    let error = invalid(source, problem);
                    Self::invalid(key, ssm_version, secure, raw, error)
                }
            })
            .collect())
    }

    /// The flag's name (its parameter name relative to the configured path).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The source version the value came from (0 when unknown).
    pub fn ssm_version(&self) -> u64 {
        self.ssm_version
    }

    /// Whether the value came from a `SecureString`: never log or export it unmasked.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// Counts an exposure of this flagd flag ([`crate::experiment::expose`]) when it is an
    /// experiment, its split decided `resolution`, and `context` has a targeting key. A
    /// SecureString flag is never counted: its variant names would reach the metrics.
    #[inline]
    pub(crate) fn expose_flagd(
        &self,
        definition: &Definition,
        context: &Context<'_>,
        resolution: &crate::flagd::Resolution<'_>,
    ) {
        if definition.is_experiment()
            && resolution.reason == crate::flagd::Reason::Split
            && !self.secure
            && self.name.len() <= crate::experiment::MAX_DIMENSION_LEN
            && let (Some(key), Some((variant, _))) = (context.user_id(), resolution.variant)
        {
            crate::experiment::expose(&self.name, key, variant);
        }
    }

    /// Counts an exposure of this seed JSON flag (variant `on` or `off`) when its rollout
    /// decided `evaluation` for a user and its name is a CloudWatch dimension value; the caller
    /// checked that it is an experiment.
    #[cold]
    fn expose_seed(&self, context: &Context<'_>, evaluation: &Evaluation) {
        if let (
            Reason::Rollout {
                bucket: Some(_), ..
            },
            Some(key),
            false,
        ) = (evaluation.reason, context.user_id(), self.secure)
            && crate::experiment::dimension_value(&self.name, crate::experiment::MAX_DIMENSION_LEN)
                .is_ok()
        {
            let variant = if evaluation.enabled {
                crate::experiment::ON
            } else {
                crate::experiment::OFF
            };
            crate::experiment::expose(&self.name, key, variant);
        }
    }

    /// What an OpenFeature answer (OFREP, the provider) carries as this flag's metadata beyond
    /// its evaluation: a JSON flag's top-level boolean, number and string fields. A
    /// `SecureString` flag's fields may be secrets (an API key beside `enabled`) and metadata is
    /// what logging hooks write out: for it, only `secure: true`.
    pub fn metadata_fields(&self) -> impl Iterator<Item = (&str, &Value)> {
        static SECURE: Value = Value::Bool(true);
        let secure = self.secure.then_some(("secure", &SECURE));
        let document = match &self.value {
            Ok(FlagValue::Json(flag)) if !self.secure => flag.document().as_object(),
            _ => None,
        };
        let fields = document.into_iter().flatten().filter_map(|(field, value)| {
            matches!(value, Value::Bool(_) | Value::Number(_) | Value::String(_))
                .then_some((field.as_str(), value))
        });
        secure.into_iter().chain(fields)
    }

    /// The parsed value, or why it is invalid.
    #[inline]
    pub fn value(&self) -> Result<&FlagValue, &FlagError> {
        self.value.as_ref()
    }

    /// The raw value of an invalid entry.
    pub fn invalid_raw(&self) -> Option<&str> {
        self.invalid_raw.as_deref()
    }
}

pub(crate) fn invalid(parameter: &str, problem: Problem) -> FlagError {
    FlagError::Invalid {
        parameter: parameter.to_owned(),
        problem,
    }
}

/// The flags, in a hash table keyed by each entry's name. Entries sit in the table itself: a
/// lookup finds the value beside the key, with no second indirection. A thread also remembers in
/// which bucket it found a name ([`Memo`]) and, at its next read of that name, checks that
/// entry's name instead of hashing. The hasher: flag names are chosen by the operator, not by
/// callers, so a fast hash (foldhash, hashbrown's default) is safe here and a third of SipHash's
/// cost.
#[derive(Debug, Clone, Default)]
struct Index {
    table: hashbrown::HashTable<FlagEntry>,
    hasher: foldhash::fast::RandomState,
}

impl Index {
    #[inline(always)]
    fn hash(&self, name: &str) -> u64 {
        self.hasher.hash_one(name)
    }

    /// Adds `entry`; a later entry replaces an earlier one of the same name.
    fn insert(&mut self, entry: FlagEntry) {
        let hash = self.hash(&entry.name);
        let hasher = &self.hasher;
        match self.table.entry(
            hash,
            |held| held.name == entry.name,
            |held| hasher.hash_one(&*held.name),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut held) => *held.get_mut() = entry,
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert(entry);
            }
        }
    }

    #[inline(always)]
    fn get(&self, name: &str) -> Option<&FlagEntry> {
        self.table
            .find(self.hash(name), |entry| &*entry.name == name)
    }

    /// The entry and its bucket.
    #[inline(always)]
    fn get_full(&self, name: &str) -> Option<(usize, &FlagEntry)> {
        let at = self
            .table
            .find_bucket_index(self.hash(name), |entry| &*entry.name == name)?;
        self.table.get_bucket(at).map(|entry| (at, entry))
    }
}

/// An immutable set of flags with a version that increases whenever the content changes.
#[derive(Debug, Default)]
pub struct Snapshot {
    version: u64,
    status: Status,
    /// Milliseconds since the Unix epoch of the last successful fetch; 0 when never fetched.
    fetched_at_ms: AtomicU64,
    pub(crate) default_region: Option<Arc<str>>,
    flags: Index,
    /// The number a numbered store gave it when installed (0 otherwise): a reader that meets it
    /// raises the store's count to it, so the thread never reads older flags after it (see
    /// [`crate::store::Installs`]).
    pub(crate) installed_as: u64,
}

impl Clone for Snapshot {
    fn clone(&self) -> Self {
        Self {
            version: self.version,
            status: self.status,
            fetched_at_ms: AtomicU64::new(self.fetched_at_ms.load(Ordering::Relaxed)),
            default_region: self.default_region.clone(),
            flags: self.flags.clone(),
            installed_as: 0,
        }
    }
}

impl Snapshot {
    /// Builds a snapshot, never fetched (see [`Snapshot::with_fetched_at`]). When two entries
    /// share a name the later one wins.
    pub fn new(version: u64, status: Status, entries: impl IntoIterator<Item = FlagEntry>) -> Self {
        let mut flags = Index::default();
        for entry in entries {
            flags.insert(entry);
        }
        Self {
            version,
            status,
            fetched_at_ms: AtomicU64::new(0),
            default_region: None,
            flags,
            installed_as: 0,
        }
    }

    /// A snapshot (version 1, `ok`) of flags given as the raw values an operator would store,
    /// each classified like an SSM `String` parameter: for handlers' unit tests and local runs.
    ///
    /// ```
    /// let s = std::sync::Arc::new(flags::Snapshot::from_values([
    ///     ("dark-mode", "true"),
    ///     ("new-checkout-flow", r#"{"enabled": true, "allowed_user_ids": ["alice"]}"#),
    /// ]));
    /// assert!(s.get("dark-mode").enabled());
    /// ```
    pub fn from_values<'a>(values: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let entries = values.into_iter().map(|(name, raw)| {
            FlagEntry::from_parameter(&Parameter {
                flag: name.to_owned(),
                name: name.to_owned(),
                kind: ParameterKind::String,
                value: raw.to_owned(),
                version: 1,
            })
        });
        Self::new(1, Status::Ok, entries)
    }

    /// The empty snapshot (version 0, `degraded`): every flag reads as its default.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The same snapshot, last fetched at `at`.
    pub fn with_fetched_at(self, at: Option<SystemTime>) -> Self {
        self.fetched_at_ms
            .store(at.map_or(0, epoch_ms), Ordering::Relaxed);
        self
    }

    /// The same snapshot, evaluating contexts without a region in `region` (the function's own).
    pub fn with_default_region(mut self, region: Option<&str>) -> Self {
        self.default_region = region.filter(|r| !r.is_empty()).map(Arc::from);
        self
    }

    /// The same flags and version with another status (a copy: no value is parsed again).
    pub fn with_status(&self, status: Status) -> Self {
        let mut copy = self.clone();
        copy.status = status;
        copy
    }

    /// Records that the source confirmed this content at `at` (ignored if older than what is
    /// recorded): the content, version and status are unchanged.
    pub fn mark_fetched(&self, at: SystemTime) {
        self.fetched_at_ms
            .fetch_max(epoch_ms(at), Ordering::Relaxed);
    }

    /// Whether this snapshot should replace `held`: a handler keeps what it has unless it gets
    /// something better. Fetched snapshots (`ok`, `stale`) rank above a deployed file
    /// (`fallback`), which ranks above no flags (`degraded`); among fetched ones, the later last
    /// successful fetch wins (a tie goes to the newcomer: same fetch, newer status). Version
    /// counters are not compared: they restart with the extension. So a restarted extension's
    /// empty, degraded snapshot never replaces flags a handler holds, and a stale one replaces
    /// only an older one.
    pub fn supersedes(&self, held: &Snapshot) -> bool {
        let rank = |s: &Snapshot| match s.status {
            Status::Degraded if s.is_empty() => (0, None),
            Status::Degraded | Status::Fallback => (1, None),
            Status::Ok | Status::Stale => (2, s.fetched_at()),
        };
        rank(self) >= rank(held)
    }

    /// Whether `other` holds the same content: version, status and every flag (the fetch time
    /// aside).
    pub fn same_content(&self, other: &Snapshot) -> bool {
        self.version == other.version
            && self.status == other.status
            && self.len() == other.len()
            && self
                .entries()
                .all(|entry| other.entry(entry.name()) == Some(entry))
    }

    /// The content version: 0 for the empty snapshot, then increasing with each change.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// How current these flags are.
    pub fn status(&self) -> Status {
        self.status
    }

    /// When the source last confirmed these flags, if it has.
    pub fn fetched_at(&self) -> Option<SystemTime> {
        match self.fetched_at_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(SystemTime::UNIX_EPOCH + Duration::from_millis(ms)),
        }
    }

    /// How old the flags are (time since [`Snapshot::fetched_at`]).
    pub fn age(&self) -> Option<Duration> {
        self.fetched_at()
            .map(|at| SystemTime::now().duration_since(at).unwrap_or_default())
    }

    /// The region used for a context that sets none.
    #[inline]
    pub fn default_region(&self) -> Option<&str> {
        self.default_region.as_deref()
    }

    /// Number of flags, valid or not.
    pub fn len(&self) -> usize {
        self.flags.table.len()
    }

    /// Whether there are no flags at all.
    pub fn is_empty(&self) -> bool {
        self.flags.table.is_empty()
    }

    /// Every entry, in no particular order.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = &FlagEntry> {
        self.flags.table.iter()
    }

    /// One entry by flag name.
    #[inline]
    pub fn entry(&self, name: &str) -> Option<&FlagEntry> {
        self.flags.get(name)
    }

    /// What the flag `entry` of this snapshot evaluates to for `context`, reading as `default`
    /// when missing, invalid or not a toggle: the one evaluation every handle and the
    /// process-wide read path use.
    #[inline]
    pub(crate) fn evaluate_entry(
        &self,
        entry: Option<&FlagEntry>,
        context: &Context<'_>,
        default: bool,
    ) -> Evaluation {
        let fallback = |reason| Evaluation {
            enabled: default,
            reason,
        };
        let Some(entry) = entry else {
            return fallback(Reason::Default);
        };
        match entry.value() {
            Ok(FlagValue::Bool(on)) => Evaluation {
                enabled: *on,
                reason: Reason::Static,
            },
            Ok(FlagValue::Json(flag)) => {
                let evaluation = eval::evaluate(flag.rules(), context, self.default_region());
                if flag.rules().experiment {
                    entry.expose_seed(context, &evaluation);
                }
                evaluation
            }
            Ok(FlagValue::List(_) | FlagValue::Text(_)) => fallback(Reason::Config),
            Ok(FlagValue::Flagd(definition)) => flagd_toggle(entry, definition, context, default),
            Err(_) => fallback(Reason::Error),
        }
    }

    /// The entry named `name`, looked for first where `memo` last found it (any snapshot's
    /// bucket is only a hint: the entry there must carry that very name); `memo` learns where
    /// it is.
    #[inline(always)]
    pub(crate) fn find(&self, name: &str, memo: &mut Memo) -> Option<&FlagEntry> {
        let slot = Memo::slot(name);
        match self.flags.table.get_bucket(memo.0[slot] as usize) {
            Some(entry) if same_name(&entry.name, name) => Some(entry),
            _ => self.find_and_remember(name, &mut memo.0[slot]),
        }
    }

    /// A hashed lookup that remembers the bucket in `slot`: out of line, so the memo's hit, the
    /// common case, stays small enough to be inlined where flags are read.
    #[inline(never)]
    fn find_and_remember(&self, name: &str, slot: &mut u32) -> Option<&FlagEntry> {
        let (at, entry) = self.flags.get_full(name)?;
        *slot = u32::try_from(at).unwrap_or(u32::MAX);
        Some(entry)
    }
}

/// A flagd flag read as a toggle: its boolean variant, else the caller's default (a flag of
/// another type is `TYPE_MISMATCH`, as an OpenFeature boolean resolution of it would be).
#[inline(never)]
fn flagd_toggle(
    entry: &FlagEntry,
    definition: &Definition,
    context: &Context<'_>,
    default: bool,
) -> Evaluation {
    let resolution = definition.resolve(context);
    entry.expose_flagd(definition, context, &resolution);
    let (enabled, reason, error) = match resolution.variant {
        Some((_, Value::Bool(on))) => (Some(*on), resolution.reason, resolution.error),
        Some(_) => (
            None,
            flagd::Reason::Error,
            Some(flagd::ErrorCode::TypeMismatch),
        ),
        None => (None, resolution.reason, resolution.error),
    };
    Evaluation {
        enabled: enabled.unwrap_or(default),
        reason: Reason::Flagd {
            reason,
            error,
            decided: enabled.is_some(),
            constant: definition.is_constant(),
        },
    }
}

/// Where this thread last found names: buckets of the snapshot's index, in slots picked by
/// the name's address. Only a hint, checked against the entry's own name: a slot two names share,
/// a name's memory reused for another, a new snapshot with other positions — each just costs one
/// hashed lookup.
pub(crate) struct Memo([u32; MEMO_SLOTS]);

/// A handler reads a handful of flags by literal names; 16 slots keep them apart.
const MEMO_SLOTS: usize = 16;

impl Memo {
    pub(crate) const fn new() -> Self {
        Self([u32::MAX; MEMO_SLOTS])
    }

    #[inline(always)]
    fn slot(name: &str) -> usize {
        let at = name.as_ptr().addr();
        ((at >> 3) ^ (at >> 8) ^ name.len()) & (MEMO_SLOTS - 1)
    }
}

/// `a == b`, with the common flag-name lengths (8 to 16 bytes) compared as two words rather than
/// through a call to `memcmp`.
#[inline(always)]
fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    match (
        a.first_chunk::<8>(),
        a.last_chunk::<8>(),
        b.first_chunk::<8>(),
        b.last_chunk::<8>(),
    ) {
        (Some(a1), Some(a2), Some(b1), Some(b2)) if a.len() <= 16 => a1 == b1 && a2 == b2,
        _ => a == b,
    }
}

fn epoch_ms(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .max(1)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A flag stored as a `String` parameter under `/app/features` (the other modules' tests use it too).
    pub(crate) fn entry(name: &str, raw: &str) -> FlagEntry {
        FlagEntry::from_parameter(&Parameter {
            flag: name.to_owned(),
            name: format!("/app/features/{name}"),
            kind: ParameterKind::String,
            value: raw.to_owned(),
            version: 1,
        })
    }

    fn names_of(entry: Option<&FlagEntry>) -> Option<&str> {
        entry.map(FlagEntry::name)
    }

    #[test]
    fn the_memo_is_only_a_hint_and_never_finds_another_flag() {
        let names: Vec<String> = (0..200).map(|i| format!("team/feature-{i}")).collect();
        let a = Snapshot::new(1, Status::Ok, names.iter().map(|n| entry(n, "true")));
        let mut memo = Memo::new();
        // Every name, twice (found by hashing, then through the memo), from fresh heap strings.
        for _ in 0..2 {
            for name in &names {
                assert_eq!(
                    names_of(a.find(&name.clone(), &mut memo)),
                    Some(name.as_str())
                );
            }
        }
        // One buffer, same address and length, other content: never the first name's entry.
        let mut reused = String::with_capacity(32);
        for name in ["team/feature-11", "team/feature-12", "team/feature-13"] {
            reused.clear();
            reused.push_str(name);
            assert_eq!(names_of(a.find(&reused, &mut memo)), Some(name));
        }
        reused.clear();
        reused.push_str("team/feature-xx");
        assert_eq!(a.find(&reused, &mut memo).map(FlagEntry::name), None);
        // Another snapshot puts the names in other buckets: the memo's hints fail and are fixed.
        let b = Snapshot::new(
            2,
            Status::Ok,
            names
                .iter()
                .rev()
                .chain(["x".to_owned()].iter())
                .map(|n| entry(n, "false")),
        );
        for name in &names {
            let found = b.find(name, &mut memo);
            assert_eq!(names_of(found), Some(name.as_str()));
            assert!(found.is_some_and(|e| e.value() == Ok(&FlagValue::Bool(false))));
        }
        // Names of every length around the word-compare fast path.
        let odd: Vec<String> = (1..=40).map(|n| "n".repeat(n)).collect();
        let c = Snapshot::new(3, Status::Ok, odd.iter().map(|n| entry(n, "true")));
        for name in &odd {
            assert_eq!(names_of(c.find(name, &mut memo)), Some(name.as_str()));
            assert_eq!(
                names_of(c.find(&format!("{name}n"), &mut memo)).is_some(),
                name.len() < 40
            );
        }
    }

    #[test]
    fn names_compare_equal_only_when_equal() {
        for (a, b, same) in [
            ("dark-mode", "dark-mode", true),
            ("dark-mode", "dark-modf", false),
            ("dark-mode", "eark-mode", false),
            ("a-sixteen-bytes!", "a-sixteen-bytes!", true),
            ("a-sixteen-bytes!", "a-sixteen-bytes?", false),
            ("short", "short", true),
            ("short", "shorT", false),
            (
                "a-name-longer-than-sixteen",
                "a-name-longer-than-sixteen",
                true,
            ),
            (
                "a-name-longer-than-sixteen",
                "a-name-longer-than-sixteeN",
                false,
            ),
            (
                "a-name-longer-than-sixteen",
                "a-name-lXnger-than-sixteen",
                false,
            ),
            ("abc", "abcd", false),
        ] {
            assert_eq!(same_name(a, b), same, "{a} vs {b}");
        }
    }

    #[test]
    fn invalid_values_are_error_entries_naming_the_parameter() {
        let bad = entry(
            "new-analytics",
            r#"{"enabled": true, "rollout_percentage": 101}"#,
        );
        let err = bad.value().expect_err("invalid");
        assert_eq!(
            err.to_string(),
            "parameter /app/features/new-analytics: field `rollout_percentage` must be a number from 0 to 100, got 101"
        );
        assert_eq!(
            bad.invalid_raw(),
            Some(r#"{"enabled": true, "rollout_percentage": 101}"#)
        );
        assert_eq!(entry("ok", "true").invalid_raw(), None);
    }

    #[test]
    fn secure_entries_are_marked_and_their_errors_quote_nothing() {
        let secret = FlagEntry::from_parameter(&Parameter {
            flag: "partner".into(),
            name: "/app/features/partner".into(),
            kind: ParameterKind::SecureString,
            value: r#"{"enabled": "sk_live_123"}"#.into(),
            version: 2,
        });
        assert!(secret.is_secure());
        let message = secret.value().expect_err("invalid").to_string();
        assert!(!message.contains("sk_live"), "{message}");
        assert!(!entry("plain", "true").is_secure());
    }

    #[test]
    fn one_bad_flag_never_hides_the_others() {
        let snapshot = Snapshot::new(
            3,
            Status::Ok,
            [
                entry("dark-mode", "true"),
                entry("broken", "{nope"),
                entry("checkout/v2", "false"),
            ],
        );
        assert_eq!(snapshot.len(), 3);
        assert!(snapshot.get("dark-mode").enabled());
        assert!(snapshot.get("broken").error().is_some());
        assert!(snapshot.get("checkout/v2").is_known());
        assert!(!snapshot.get("checkout/v2").enabled());
    }

    #[test]
    fn later_duplicates_win() {
        let snapshot = Snapshot::new(1, Status::Ok, [entry("a", "true"), entry("a", "false")]);
        assert_eq!(snapshot.len(), 1);
        assert_eq!(
            snapshot.entry("a").map(FlagEntry::value),
            Some(Ok(&FlagValue::Bool(false)))
        );
    }

    #[test]
    fn a_handler_keeps_what_it_has_unless_it_gets_something_better() {
        let at = |s: u64| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000 + s));
        let ok = |v, t| Snapshot::new(v, Status::Ok, [entry("x", "true")]).with_fetched_at(at(t));
        let stale =
            |v, t| Snapshot::new(v, Status::Stale, [entry("x", "true")]).with_fetched_at(at(t));
        let degraded = Snapshot::empty();
        let fallback = Snapshot::new(1, Status::Fallback, [entry("x", "false")]);
        // A restarted extension with nothing yet never replaces held flags, whatever its version.
        assert!(!degraded.supersedes(&ok(7, 10)));
        assert!(!degraded.supersedes(&fallback));
        assert!(ok(1, 10).supersedes(&degraded));
        // A stale snapshot replaces only an older one; fetch times decide, not versions.
        assert!(!stale(9, 5).supersedes(&ok(2, 10)));
        assert!(
            stale(1, 10).supersedes(&ok(2, 10)),
            "same fetch, now known stale"
        );
        assert!(stale(1, 20).supersedes(&ok(2, 10)));
        assert!(
            ok(1, 20).supersedes(&stale(5, 10)),
            "a restarted extension's fresh fetch"
        );
        // Any fetched snapshot ranks above a deployed file, which ranks above nothing.
        assert!(stale(1, 0).supersedes(&fallback));
        assert!(!fallback.supersedes(&ok(1, 0)));
        assert!(fallback.supersedes(&degraded));
    }

    #[test]
    fn a_status_change_keeps_flags_and_version() {
        let at = SystemTime::now() - Duration::from_secs(30);
        let ok = Snapshot::new(4, Status::Ok, [entry("x", "true"), entry("bad", "{")])
            .with_fetched_at(Some(at));
        let stale = ok.with_status(Status::Stale);
        assert_eq!((stale.status(), stale.version()), (Status::Stale, 4));
        assert!(stale.entries().all(|e| ok.entry(e.name()) == Some(e)));
        assert_eq!(stale.len(), ok.len());
        assert_eq!(stale.fetched_at(), ok.fetched_at());
        assert_eq!(ok.status(), Status::Ok, "the original is untouched");
    }

    #[test]
    fn freshness_moves_forward_without_touching_the_content() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_000_000_500);
        let snapshot = Snapshot::new(2, Status::Ok, [entry("x", "true")]).with_fetched_at(Some(at));
        assert_eq!(snapshot.fetched_at(), Some(at));
        let later = at + Duration::from_secs(60);
        snapshot.mark_fetched(later);
        assert_eq!(snapshot.fetched_at(), Some(later));
        snapshot.mark_fetched(at);
        assert_eq!(snapshot.fetched_at(), Some(later), "never moves back");
        assert_eq!(snapshot.version(), 2);
        assert_eq!(Snapshot::empty().fetched_at(), None);
    }

    #[test]
    fn age_counts_from_fetch_time() {
        let at = SystemTime::now() - Duration::from_secs(90);
        let age = Snapshot::new(1, Status::Ok, [])
            .with_fetched_at(Some(at))
            .age()
            .expect("fetched");
        assert!(
            age >= Duration::from_secs(90) && age < Duration::from_secs(120),
            "{age:?}"
        );
        assert_eq!(Snapshot::empty().age(), None);
    }
}
