//! Immutable, versioned snapshots of every flag, and the [`Store`] that swaps them atomically.
//!
//! A snapshot's content (flags, version, [`Status`]) never changes once built. Its freshness —
//! when the source last confirmed it — moves on by itself ([`Snapshot::mark_fetched`]), so an
//! unchanged snapshot never has to be rebuilt or re-sent to stay current.

use std::cell::RefCell;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use serde_json::Value;

use crate::error::{FlagError, Problem};
use crate::eval::{Context, Evaluation};
use crate::flag::{CurrentFlag, Flag};
use crate::model::{FlagValue, Parameter, ParameterKind};
use crate::wire::Status;

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

fn invalid(parameter: &str, problem: Problem) -> FlagError {
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
    default_region: Option<Arc<str>>,
    flags: Index,
    /// The [`GLOBAL_INSTALLS`] count [`GLOBAL`] gave it when installed (0 for any other store):
    /// a reader that pins it raises the count to it, so the thread never reads older flags
    /// after it (see [`Store::pin`]).
    installed_as: u64,
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

    /// A handle on one flag of this snapshot; all handles from one snapshot agree.
    #[inline]
    pub fn get(&self, name: &str) -> Flag<'_> {
        Flag::new(self, self.flags.get(name))
    }

    /// The entry named `name`, looked for first where `memo` last found it (any snapshot's
    /// bucket is only a hint: the entry there must carry that very name); `memo` learns where
    /// it is.
    #[inline(always)]
    fn find(&self, name: &str, memo: &mut Memo) -> Option<&FlagEntry> {
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

/// Where this thread last found names: buckets of the snapshot's index, in slots picked by
/// the name's address. Only a hint, checked against the entry's own name: a slot two names share,
/// a name's memory reused for another, a new snapshot with other positions — each just costs one
/// hashed lookup.
struct Memo([u32; MEMO_SLOTS]);

/// A handler reads a handful of flags by literal names; 16 slots keep them apart.
const MEMO_SLOTS: usize = 16;

impl Memo {
    const fn new() -> Self {
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

/// Holds the current snapshot; readers never block and never see a half-applied update.
#[derive(Debug)]
pub struct Store {
    current: ArcSwap<Snapshot>,
    default_region: Option<Arc<str>>,
    /// Reads go through the per-thread cache ([`THREAD_CACHE`]): only the process-wide store.
    thread_cached: bool,
    /// Held by an install from its decision to its count: installs are decided and numbered
    /// ([`GLOBAL`]'s) in the order they swap snapshots in.
    installing: Mutex<()>,
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
            default_region: None,
            thread_cached: false,
            installing: Mutex::new(()),
        }
    }

    /// The same store, giving every snapshot installed from now on `region` as its default
    /// region (unless the snapshot has its own).
    pub fn with_default_region(mut self, region: Option<&str>) -> Self {
        self.default_region = region.filter(|r| !r.is_empty()).map(Arc::from);
        self
    }

    /// Pins the current snapshot: reads through it agree, whatever is installed meanwhile.
    /// (One reference-count increment: pin once per invocation, not per read.)
    pub fn pin(&self) -> Arc<Snapshot> {
        let snapshot = self.current.load_full();
        if self.thread_cached {
            // An install swaps, then raises the count: a pin in between would hand out a
            // snapshot newer than the one `flags::get` answers from on this very thread.
            caught_up(&snapshot);
        }
        snapshot
    }

    /// A handle on one flag by name; each read looks it up in the snapshot current then.
    #[inline]
    pub fn get<'a>(&'a self, name: &'a str) -> CurrentFlag<'a> {
        CurrentFlag::new(self, name)
    }

    /// Runs `read` on the current snapshot. Lock-free; no allocation, no I/O, and no write to
    /// memory shared with other readers, so reads scale with threads.
    #[inline]
    pub fn read<R>(&self, read: impl FnMut(&Snapshot) -> R) -> R {
        // Why a per-thread cache: pinning the snapshot on each read (`load_full`) increments and
        // decrements one reference count that every reader on every core writes, so reads slowed
        // down as threads were added. Each thread keeps its own `Arc` of the current snapshot
        // with the store's install count (`generation`) when it took it; at each read it compares
        // that count with the store's (one load of a cache line that only an install writes): a
        // swap is seen at the very next read, and nothing shared is written. (arc-swap's `Cache`
        // does the same with the pointer; its reload path, inlined into every read, kept the read
        // from being inlined where flags are read, which cost a call per read.) arc-swap's
        // `Guard`s (`load`) are the fallback: cheap too, but they take one of a few per-thread
        // slots and are not to be held, so no handle keeps one. A thread keeps the snapshot it
        // last read alive until its next read (at most one old snapshot per idle thread).
        // `flags::get` goes further. Its reads (`read_global_flag`) also remember in which
        // bucket each name was found and check that entry's name before hashing: a hint checked
        // against the entry itself, never wrong, only sometimes useless. And its hottest read,
        // `enabled()` with no user, answers from the thread's remembered answers
        // (`crate::answers`), checked against the same install count: no destructor and no
        // `RefCell` on that path, so it inlines where flags are read. Everything but the hit
        // (setup, reload, a hashed lookup, working an answer out, the fallback) is out of line.
        if self.thread_cached {
            return read_global(read);
        }
        read_guarded(self, read)
    }

    /// The current snapshot's version.
    pub fn version(&self) -> u64 {
        self.read(Snapshot::version)
    }

    /// Installs `snapshot` atomically and returns the one it replaced.
    pub fn install(&self, snapshot: Snapshot) -> Arc<Snapshot> {
        let _one_at_a_time = self.one_at_a_time();
        self.swap_in(snapshot).0
    }

    /// Installs `snapshot` only if it [supersedes](Snapshot::supersedes) the one held, deciding
    /// and installing as one step: two sources offering at once (a watch's answer and a sync's)
    /// can never put the older one over the newer.
    #[cfg(feature = "client")]
    pub(crate) fn offer(&self, snapshot: Snapshot) -> Offered {
        let _one_at_a_time = self.one_at_a_time();
        let held = self.current.load_full();
        if snapshot.same_content(&held) {
            // The same flags again (a watch's first answer after a sync): no swap, which would
            // make every thread work its answers out anew for nothing.
            if let Some(at) = snapshot.fetched_at() {
                held.mark_fetched(at);
            }
            return Offered::Same { held };
        }
        if !snapshot.supersedes(&held) {
            return Offered::Declined { held };
        }
        let (replaced, installed) = self.swap_in(snapshot);
        Offered::Installed {
            replaced,
            installed,
        }
    }

    /// The install lock. (A std mutex: held for a comparison, a swap and two atomic operations,
    /// never across I/O or an await; a panic while held leaves nothing half-done.)
    fn one_at_a_time(&self) -> std::sync::MutexGuard<'_, ()> {
        self.installing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Swaps `snapshot` in (the install lock held); returns the replaced and the installed one.
    fn swap_in(&self, mut snapshot: Snapshot) -> (Arc<Snapshot>, Arc<Snapshot>) {
        if snapshot.default_region.is_none() {
            snapshot.default_region = self.default_region.clone();
        }
        if !self.thread_cached {
            let installed = Arc::new(snapshot);
            return (self.current.swap(Arc::clone(&installed)), installed);
        }
        // Under the lock only installs raise the count past what is installed (a pin raises it
        // only to a snapshot already swapped in), so this is the next number.
        let number = GLOBAL_INSTALLS.0.load(Ordering::Acquire) + 1;
        snapshot.installed_as = number;
        let installed = Arc::new(snapshot);
        let replaced = self.current.swap(Arc::clone(&installed));
        #[cfg(test)]
        tests::between_swap_and_count();
        // After the swap: a reader that sees the new count loads the new snapshot. `fetch_max`:
        // a reader that pinned the new snapshot may have raised it already.
        GLOBAL_INSTALLS.0.fetch_max(number, Ordering::Release);
        (replaced, installed)
    }
}

/// What [`Store::offer`] did.
#[cfg(feature = "client")]
#[derive(Debug)]
pub(crate) enum Offered {
    /// The offered snapshot is installed.
    Installed {
        /// The one it replaced.
        replaced: Arc<Snapshot>,
        /// The offered one, as installed.
        installed: Arc<Snapshot>,
    },
    /// The held snapshot has the same content: it stays, its fetch time moved on.
    Same {
        /// The snapshot held.
        held: Arc<Snapshot>,
    },
    /// The held snapshot is better: it stays.
    Declined {
        /// The snapshot held.
        held: Arc<Snapshot>,
    },
}

/// The process-wide store read by [`crate::get`]. A context without a region is evaluated in the
/// function's own region, `AWS_REGION`, read here once.
pub(crate) static GLOBAL: LazyLock<Store> = LazyLock::new(|| {
    let region = std::env::var("AWS_REGION").ok();
    let mut store = Store::default().with_default_region(region.as_deref());
    store.thread_cached = true;
    store
});

/// How many snapshots [`GLOBAL`] was given (starting at 1): each thread compares it with the count
/// it saw when it took its snapshot ([`ThreadView`]) or worked out an answer
/// ([`crate::answers`]). Outside the `LazyLock`, so a read loads it without touching the lock,
/// and alone in its cache lines, so no write to a neighbouring value reaches the readers' caches.
pub(crate) static GLOBAL_INSTALLS: Installs = Installs(AtomicU64::new(1));

/// A counter alone in its cache lines (128 bytes: two lines, as adjacent-line prefetchers pair
/// them).
#[repr(align(128))]
pub(crate) struct Installs(pub(crate) AtomicU64);

/// A thread's view of [`GLOBAL`]: its current snapshot, and where it found names.
struct ThreadView {
    /// [`GLOBAL_INSTALLS`] when `snapshot` was loaded.
    generation: u64,
    snapshot: Arc<Snapshot>,
    memo: Memo,
}

/// Runs `read` on [`GLOBAL`]'s current snapshot through this thread's cache (see [`Store::read`]).
/// `FnMut`, called by reference: moving a handle into the call costs more than the read itself.
#[inline(always)]
pub(crate) fn read_global<R>(mut read: impl FnMut(&Snapshot) -> R) -> R {
    match with_view(|view| read(view.current())) {
        Some(result) => result,
        None => read_guarded(&GLOBAL, read),
    }
}

/// Runs `read` on this thread's view of [`GLOBAL`], set up on the thread's first read; `None`
/// when the view is busy — a read inside a read (say, a config type reading a flag as it
/// deserializes) — or gone (the thread is exiting): the caller then reads through a guard.
#[inline(always)]
fn with_view<R>(read: impl FnOnce(&mut ThreadView) -> R) -> Option<R> {
    THREAD_CACHE
        .try_with(|cell| {
            let mut cache = cell.try_borrow_mut().ok()?;
            let view = match &mut *cache {
                Some(view) => view,
                None => ThreadView::install(&mut cache),
            };
            Some(read(view))
        })
        .ok()
        .flatten()
}

/// Runs `read` on the flag `name` of [`GLOBAL`]'s current snapshot through this thread's view:
/// the hot path of `flags::get(name)`, found through the thread's memo when it can be.
#[inline(always)]
pub(crate) fn read_global_flag<R>(
    name: &str,
    default: bool,
    mut read: impl FnMut(Flag<'_>) -> R,
) -> R {
    match with_view(|view| read(view.flag(name).default_to(default))) {
        Some(result) => result,
        None => read_flag_guarded(name, default, read),
    }
}

/// The flag `name` of [`GLOBAL`]'s current snapshot evaluated with no context (default `false`),
/// with the install count it was read at: `None` when this thread's view was busy or gone (the
/// answer then comes from an arc-swap guard, and is not to be remembered).
pub(crate) fn global_evaluation(name: &str) -> (Option<u64>, Evaluation) {
    let viewed = with_view(|view| {
        let evaluation = view.flag(name).evaluate(&Context::new());
        (view.generation, evaluation)
    });
    match viewed {
        Some((generation, evaluation)) => (Some(generation), evaluation),
        None => (
            None,
            read_guarded(&GLOBAL, |snapshot| {
                snapshot.get(name).evaluate(&Context::new())
            }),
        ),
    }
}

/// [`read_global_flag`] when this thread's view is busy or gone: out of line, so the read path
/// stays small enough to be inlined where flags are read.
#[cold]
#[inline(never)]
fn read_flag_guarded<R>(name: &str, default: bool, mut read: impl FnMut(Flag<'_>) -> R) -> R {
    read_guarded(&GLOBAL, |snapshot| {
        read(snapshot.get(name).default_to(default))
    })
}

impl ThreadView {
    /// Sets up this thread's view, once per thread: out of line, so the read path stays small.
    #[cold]
    #[inline(never)]
    fn install(slot: &mut Option<ThreadView>) -> &mut ThreadView {
        slot.insert(Self::new())
    }

    fn new() -> Self {
        let (generation, snapshot) = load_current();
        Self {
            generation,
            snapshot,
            memo: Memo::new(),
        }
    }

    /// Brings the view up to the store's current snapshot: one load of a counter only an
    /// install writes, compared with the one seen.
    #[inline(always)]
    fn refresh(&mut self) {
        // Relaxed: only a change matters here, and `reload` loads the count again with Acquire.
        if GLOBAL_INSTALLS.0.load(Ordering::Relaxed) != self.generation {
            self.reload();
        }
    }

    /// The flag `name` in the view's snapshot, brought up to date, found through the memo.
    #[inline(always)]
    fn flag(&mut self, name: &str) -> Flag<'_> {
        self.refresh();
        let entry = self.snapshot.find(name, &mut self.memo);
        Flag::new(&self.snapshot, entry)
    }

    /// The view's snapshot, brought up to date.
    #[inline(always)]
    fn current(&mut self) -> &Snapshot {
        self.refresh();
        &self.snapshot
    }

    /// Loads the current snapshot and the install count it is at least as new as (see
    /// [`load_current`]). Out of line: it runs once per install per thread, and drops the
    /// snapshot the thread held.
    #[cold]
    #[inline(never)]
    fn reload(&mut self) {
        (self.generation, self.snapshot) = load_current();
    }
}

/// [`GLOBAL`]'s current snapshot and the install count it is labelled with. The count is loaded
/// first, with Acquire: an install swaps the snapshot before it raises the count (Release), so
/// the snapshot that loads next is the one of that count or a later one. A later one (loaded
/// between another install's swap and its count) is labelled with its own number, and the
/// count is raised to it ([`caught_up`]): answers this thread remembered at the older count are
/// then out of date, so no read on this thread answers from flags older than it has seen.
fn load_current() -> (u64, Arc<Snapshot>) {
    let counted = GLOBAL_INSTALLS.0.load(Ordering::Acquire);
    let snapshot = GLOBAL.current.load_full();
    caught_up(&snapshot);
    (counted.max(snapshot.installed_as), snapshot)
}

/// Raises [`GLOBAL_INSTALLS`] to `snapshot`'s number when a reader met it between its install's
/// swap and count: from then on, every read on this thread answers from it or a later one.
/// (A load that finds the count there already, at every pin but one in that window.)
#[inline]
fn caught_up(snapshot: &Snapshot) {
    if GLOBAL_INSTALLS.0.load(Ordering::Acquire) < snapshot.installed_as {
        GLOBAL_INSTALLS
            .0
            .fetch_max(snapshot.installed_as, Ordering::AcqRel);
    }
}

/// A read through an arc-swap guard: stores other than [`GLOBAL`], and [`GLOBAL`] when this
/// thread's cache is busy or gone.
fn read_guarded<R>(store: &Store, mut read: impl FnMut(&Snapshot) -> R) -> R {
    let snapshot = store.current.load();
    if store.thread_cached {
        caught_up(&snapshot);
    }
    read(&snapshot)
}

thread_local! {
    /// Each thread's view of [`GLOBAL`]'s current snapshot (see [`Store::read`]).
    static THREAD_CACHE: RefCell<Option<ThreadView>> = const { RefCell::new(None) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, raw: &str) -> FlagEntry {
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
    fn store_swaps_atomically_and_pins_hold() {
        let store = Store::default();
        assert_eq!(store.version(), 0);
        assert_eq!(store.pin().status(), Status::Degraded, "no flags yet");
        assert!(!store.get("dark-mode").enabled());
        let pinned = store.pin();
        let previous = store.install(Snapshot::new(1, Status::Ok, [entry("dark-mode", "true")]));
        assert_eq!(previous.version(), 0);
        assert!(store.get("dark-mode").enabled());
        assert_eq!(store.version(), 1);
        // The pinned snapshot still answers as before the swap.
        assert!(!pinned.get("dark-mode").enabled());
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

    #[test]
    fn the_store_gives_its_region_to_snapshots_without_one() {
        let flag = r#"{"enabled": true, "allowed_regions": ["eu-west-1"]}"#;
        let store = Store::default().with_default_region(Some("eu-west-1"));
        store.install(Snapshot::new(1, Status::Ok, [entry("eu", flag)]));
        assert!(store.get("eu").enabled(), "no region given: the store's");
        assert!(
            !store
                .get("eu")
                .enabled_for(&crate::Context::new().with_region("us-east-1"))
        );
        store.install(
            Snapshot::new(2, Status::Ok, [entry("eu", flag)])
                .with_default_region(Some("us-east-1")),
        );
        assert!(!store.get("eu").enabled(), "the snapshot's own region wins");
        let plain = Store::default();
        plain.install(Snapshot::new(1, Status::Ok, [entry("eu", flag)]));
        assert!(
            !plain.get("eu").enabled(),
            "no region anywhere: not allowed"
        );
    }

    /// One of the unit tests that touch the process-wide store (most use their own).
    #[test]
    fn the_global_store_serves_reads_inside_reads_and_every_swap_at_the_next_read() {
        let _global = GLOBAL_TESTS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        GLOBAL.install(Snapshot::from_values([("a", "true"), ("b", "false")]));
        assert!(crate::get("a").enabled());
        // A read inside a read (the thread's cache is in use): served through a guard.
        let both = crate::get("a").read(|a| (a.enabled(), crate::get("b").enabled()));
        assert_eq!(both, (true, false));
        let inner_version = crate::get("a").read(|_| crate::version());
        assert_eq!(inner_version, 1);
        // A swap is seen at the very next read, on this thread and on a new one.
        let next = Snapshot::new(2, Status::Ok, [entry("a", "false")]);
        GLOBAL.install(next);
        assert!(!crate::get("a").enabled());
        assert_eq!(crate::version(), 2);
        let elsewhere = std::thread::spawn(|| (crate::version(), crate::get("a").enabled()));
        assert_eq!(elsewhere.join().ok(), Some((2, false)));
    }

    /// Held by the tests here that install into the process-wide store and expect to read back
    /// what they installed (`answers`' tests tolerate installs meanwhile).
    static GLOBAL_TESTS: Mutex<()> = Mutex::new(());

    thread_local! {
        /// Run by an install on this thread between its swap and its count (see `install`).
        static BETWEEN_SWAP_AND_COUNT: RefCell<Option<Box<dyn FnMut()>>> = const { RefCell::new(None) };
    }

    /// The test-only hook in [`Store::install`]: runs this thread's closure, if it set one.
    pub(super) fn between_swap_and_count() {
        BETWEEN_SWAP_AND_COUNT.with(|hook| {
            if let Some(hook) = hook.borrow_mut().as_mut() {
                hook();
            }
        });
    }

    #[test]
    fn a_thread_never_reads_older_flags_than_it_has_seen() {
        use std::sync::mpsc;
        let _global = GLOBAL_TESTS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Names within and past the 32 bytes remembered answers cover.
        let names = ["order/short", "order/a-name-well-past-the-thirty-two-bytes"];
        let build = move |version: u64, raw: &str| {
            Snapshot::new(version, Status::Ok, names.iter().map(|n| entry(n, raw)))
        };
        let older = 900_001;
        let newer = 900_002;
        GLOBAL.install(build(older, "false"));
        // This thread remembers its answers from the older snapshot.
        for name in names {
            assert!(!crate::get(name).enabled(), "{name}");
        }
        // Another thread installs the newer one and stops between the swap and the count.
        let (swapped_tx, swapped) = mpsc::channel();
        let (go, go_rx) = mpsc::channel::<()>();
        let writer = std::thread::spawn(move || {
            BETWEEN_SWAP_AND_COUNT.with(|hook| {
                *hook.borrow_mut() = Some(Box::new(move || {
                    let _ = swapped_tx.send(());
                    let _ = go_rx.recv();
                }));
            });
            GLOBAL.install(build(newer, "true"));
        });
        swapped.recv().expect("the writer swapped");
        // Installs are one at a time: nothing else is installed while the writer is held.
        let pinned = crate::pin();
        assert_eq!(
            pinned.version(),
            newer,
            "pin returns the swapped-in snapshot"
        );
        for name in names {
            assert!(
                pinned.get(name).enabled(),
                "{name}: the pinned snapshot is the new one"
            );
            assert!(
                crate::get(name).enabled(),
                "{name}: flags::get answered from an older snapshot than pin() returned"
            );
        }
        assert_eq!(crate::version(), newer);
        // A thread that starts reading inside the window sees the new flags too.
        let fresh = std::thread::spawn(move || names.map(|n| crate::get(n).enabled()));
        assert_eq!(fresh.join().ok(), Some([true, true]));
        go.send(()).expect("release the writer");
        writer.join().expect("writer");
    }

    #[test]
    fn a_store_of_ones_own_reads_through_guards() {
        let store = Store::new(Snapshot::from_values([("x", "true")]));
        let flag = store.get("x");
        assert!(flag.enabled());
        store.install(Snapshot::new(2, Status::Ok, [entry("x", "false")]));
        assert!(!flag.enabled(), "the same handle reads the new snapshot");
        assert_eq!(store.read(|s| s.version()), 2);
        assert_eq!(flag.read(|f| f.snapshot_version()), 2);
    }
}
