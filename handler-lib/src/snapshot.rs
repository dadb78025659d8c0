//! Immutable, versioned snapshots of every flag, and the [`Store`] that swaps them atomically.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use crate::error::{FlagError, Problem};
use crate::flag::Flag;
use crate::model::{FlagValue, ParameterKind};

/// One flag in a snapshot: its name, SSM version and parsed value (or why it is invalid).
#[derive(Debug, Clone, PartialEq)]
pub struct FlagEntry {
    name: Box<str>,
    ssm_version: u64,
    value: Result<FlagValue, FlagError>,
}

impl FlagEntry {
    /// An entry from an already parsed value (or error).
    pub fn new(
        name: impl Into<Box<str>>,
        ssm_version: u64,
        value: Result<FlagValue, FlagError>,
    ) -> Self {
        Self {
            name: name.into(),
            ssm_version,
            value,
        }
    }

    /// Parses an SSM parameter's raw value into the flag `name`; an invalid value becomes an
    /// error entry naming `parameter` (the full SSM name).
    pub fn from_parameter(
        name: impl Into<Box<str>>,
        parameter: &str,
        kind: ParameterKind,
        raw: &str,
        ssm_version: u64,
    ) -> Self {
        let value = FlagValue::parse(kind, raw).map_err(|problem| invalid(parameter, problem));
        Self::new(name, ssm_version, value)
    }

    /// The flag's name (its parameter name relative to the configured path).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The SSM parameter version the value came from (0 when unknown).
    pub fn ssm_version(&self) -> u64 {
        self.ssm_version
    }

    /// The parsed value, or why it is invalid.
    pub fn value(&self) -> Result<&FlagValue, &FlagError> {
        self.value.as_ref()
    }
}

pub(crate) fn invalid(parameter: &str, problem: Problem) -> FlagError {
    FlagError::Invalid {
        parameter: parameter.to_owned(),
        problem,
    }
}

/// The index's hasher: flag names are chosen by the operator, not by callers, so a fast hash
/// (foldhash, hashbrown's default) is safe here and halves the cost of a lookup against SipHash.
type Index = HashMap<Box<str>, usize, foldhash::fast::RandomState>;

/// An immutable set of flags with a version that increases whenever the content changes.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    version: u64,
    fetched_at: Option<SystemTime>,
    stale: bool,
    entries: Vec<FlagEntry>,
    index: Index,
}

impl Snapshot {
    /// Builds a snapshot. When two entries share a name the later one wins.
    pub fn new(
        version: u64,
        fetched_at: Option<SystemTime>,
        stale: bool,
        entries: impl IntoIterator<Item = FlagEntry>,
    ) -> Self {
        let mut kept: Vec<FlagEntry> = Vec::new();
        let mut index = Index::default();
        for entry in entries {
            match index.get(entry.name()) {
                Some(&slot) => kept[slot] = entry,
                None => {
                    index.insert(entry.name.clone(), kept.len());
                    kept.push(entry);
                }
            }
        }
        Self {
            version,
            fetched_at,
            stale,
            entries: kept,
            index,
        }
    }

    /// A snapshot (version 1) of flags given as the raw values an operator would store, each
    /// classified like an SSM `String` parameter: for handlers' unit tests and local runs.
    ///
    /// ```
    /// let s = std::sync::Arc::new(flags::Snapshot::from_values([
    ///     ("dark-mode", "true"),
    ///     ("new-checkout-flow", r#"{"enabled": true, "allowed_user_ids": ["alice"]}"#),
    /// ]));
    /// assert!(s.get("dark-mode").enabled());
    /// ```
    pub fn from_values<'a>(values: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self::new(
            1,
            None,
            false,
            values.into_iter().map(|(name, raw)| {
                FlagEntry::from_parameter(name, name, ParameterKind::String, raw, 1)
            }),
        )
    }

    /// The empty snapshot (version 0): every flag reads as its default.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The content version: 0 for the empty snapshot, then increasing with each change.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// When the extension last fetched these flags from SSM successfully, if it has.
    pub fn fetched_at(&self) -> Option<SystemTime> {
        self.fetched_at
    }

    /// How old the flags are (time since [`Snapshot::fetched_at`]).
    pub fn age(&self) -> Option<Duration> {
        self.fetched_at
            .map(|at| SystemTime::now().duration_since(at).unwrap_or_default())
    }

    /// Whether the last refresh failed and these are the last good flags.
    pub fn is_stale(&self) -> bool {
        self.stale
    }

    /// The same flags with a different staleness mark (the version is unchanged).
    pub fn with_stale(mut self, stale: bool) -> Self {
        self.stale = stale;
        self
    }

    /// Number of flags, valid or not.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no flags at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry, in the order they were added.
    pub fn entries(&self) -> &[FlagEntry] {
        &self.entries
    }

    /// One entry by flag name.
    pub fn entry(&self, name: &str) -> Option<&FlagEntry> {
        self.index.get(name).map(|&slot| &self.entries[slot])
    }

    /// Whether both snapshots hold the same flags, ignoring version, time and staleness.
    pub fn same_flags(&self, other: &Snapshot) -> bool {
        self.entries.len() == other.entries.len()
            && self
                .entries
                .iter()
                .all(|entry| other.entry(entry.name()) == Some(entry))
    }

    /// A handle on one flag of this snapshot; all handles from one pinned snapshot agree.
    pub fn get(self: &Arc<Self>, name: &str) -> Flag {
        Flag::new(Arc::clone(self), self.index.get(name).copied())
    }
}

/// Holds the current snapshot; readers never block and never see a half-applied update.
#[derive(Debug)]
pub struct Store {
    current: ArcSwap<Snapshot>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new(Snapshot::empty())
    }
}

impl Store {
    /// A store holding `initial`.
    pub fn new(initial: Snapshot) -> Self {
        Self {
            current: ArcSwap::from_pointee(initial),
        }
    }

    /// Pins the current snapshot: reads through it agree, whatever is installed meanwhile.
    pub fn pin(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// A handle on one flag of the current snapshot. Lock-free; no allocation, no I/O.
    pub fn get(&self, name: &str) -> Flag {
        let snapshot = self.current.load_full();
        let slot = snapshot.index.get(name).copied();
        Flag::new(snapshot, slot)
    }

    /// The current snapshot's version.
    pub fn version(&self) -> u64 {
        self.current.load().version
    }

    /// Installs `snapshot` atomically and returns the one it replaced.
    pub fn install(&self, snapshot: Snapshot) -> Arc<Snapshot> {
        self.current.swap(Arc::new(snapshot))
    }
}

/// The process-wide store read by [`crate::get`].
pub(crate) static GLOBAL: LazyLock<Store> = LazyLock::new(Store::default);

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, raw: &str) -> FlagEntry {
        FlagEntry::from_parameter(
            name,
            &format!("/app/features/{name}"),
            ParameterKind::String,
            raw,
            1,
        )
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
    }

    #[test]
    fn one_bad_flag_never_hides_the_others() {
        let snapshot = Arc::new(Snapshot::new(
            3,
            None,
            false,
            [
                entry("dark-mode", "true"),
                entry("broken", "{nope"),
                entry("checkout/v2", "false"),
            ],
        ));
        assert_eq!(snapshot.len(), 3);
        assert!(snapshot.get("dark-mode").enabled());
        assert!(snapshot.get("broken").error().is_some());
        assert!(snapshot.get("checkout/v2").is_known());
        assert!(!snapshot.get("checkout/v2").enabled());
    }

    #[test]
    fn later_duplicates_win() {
        let snapshot = Snapshot::new(1, None, false, [entry("a", "true"), entry("a", "false")]);
        assert_eq!(snapshot.len(), 1);
        assert_eq!(
            snapshot.entry("a").map(FlagEntry::value),
            Some(Ok(&FlagValue::Bool(false)))
        );
    }

    #[test]
    fn store_swaps_atomically_and_pins_hold() {
        let store = Store::default();
        assert_eq!(store.version(), 0);
        assert!(!store.get("dark-mode").enabled());
        let pinned = store.pin();
        let previous = store.install(Snapshot::new(1, None, false, [entry("dark-mode", "true")]));
        assert_eq!(previous.version(), 0);
        assert!(store.get("dark-mode").enabled());
        assert_eq!(store.version(), 1);
        // The pinned snapshot still answers as before the swap.
        assert!(!pinned.get("dark-mode").enabled());
    }

    #[test]
    fn same_flags_ignores_version_and_staleness() {
        let a = Snapshot::new(1, None, false, [entry("x", "true"), entry("y", "1")]);
        let b = Snapshot::new(
            7,
            Some(SystemTime::now()),
            true,
            [entry("y", "1"), entry("x", "true")],
        );
        let c = Snapshot::new(1, None, false, [entry("x", "false"), entry("y", "1")]);
        assert!(a.same_flags(&b));
        assert!(!a.same_flags(&c));
        assert!(!a.same_flags(&Snapshot::empty()));
    }

    #[test]
    fn age_counts_from_fetch_time() {
        let at = SystemTime::now() - Duration::from_secs(90);
        let age = Snapshot::new(1, Some(at), false, [])
            .age()
            .expect("fetched");
        assert!(
            age >= Duration::from_secs(90) && age < Duration::from_secs(120),
            "{age:?}"
        );
        assert_eq!(Snapshot::empty().age(), None);
    }
}
