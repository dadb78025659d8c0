//! Experiments: who was assigned which variant (exposures), what they did (conversions), as
//! CloudWatch Embedded Metric Format lines — no API call, no added latency.
//!
//! A flag is an experiment when its definition says `"experiment": true` ([`MARKER`]): a flagd
//! flag in its `metadata` (or its flag set's), a seed JSON flag as a top-level field. Only
//! experiments are counted.
//!
//! **The unit is a targeting key** (the context's user id). An exposure is the first
//! evaluation of an experiment flag for a key within one [`Scope`] — an invocation, under
//! [`crate::FlagsLayer`] — counted only when the split decided it (`SPLIT`: a `fractional`, or
//! a seed flag's `rollout_percentage`); a unit routed by a targeting rule is not in the
//! experiment. [`crate::track`] counts a conversion for the variant each experiment flag gave
//! that key in the same scope, once per unit and event (every value it carries is kept).
//!
//! Evaluations outside any scope (a spawned task) are counted in the process-wide scope, which
//! [`flush_exposures`] writes out, as does the end of the next [`Scope`].
//!
//! The counting is the same everywhere; only where the counts go differs: a handler writes them
//! on stdout ([`Emitter`]); the extension counts the single evaluations it answers over HTTP
//! in a [`Scope`] of its own, and nothing outside it ([`count_outside_scopes`]).

mod emf;
mod tally;

pub use emf::{Emitter, MetricsSetting};
pub use tally::{
    Attribution, Conversions, Counts, MAX_EVENTS, MAX_VALUES, Tally, TrackError, validate_event,
    validate_value,
};

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context as TaskContext, Poll};

/// The key that makes a flag an experiment: `"experiment": true` in a flagd flag's (or flag
/// set's) `metadata`, or at the top level of a seed JSON flag.
pub const MARKER: &str = "experiment";
/// The variant a seed JSON flag's rollout gives a unit inside the rollout.
pub const ON: &str = "on";
/// The variant a seed JSON flag's rollout gives a unit outside it: its control.
pub const OFF: &str = "off";

/// Metric: units exposed, per flag and variant.
pub const EXPOSURES: &str = "Exposures";
/// Metric: units that converted, per flag, variant and event.
pub const CONVERSIONS: &str = "Conversions";
/// Metric: the values tracked conversions carried (one sample each), per flag, variant, event.
pub const CONVERSION_VALUE: &str = "ConversionValue";
/// Dimension: the service (`SSM_FLAGS_SERVICE`, by default the function's name).
pub const SERVICE: &str = "Service";
/// Dimension: the flag.
pub const FLAG: &str = "Flag";
/// Dimension: the variant.
pub const VARIANT: &str = "Variant";
/// Dimension: the tracked event (conversions only).
pub const EVENT: &str = "Event";
/// Default `SSM_FLAGS_METRICS_NAMESPACE`, for freshness and experiment metrics alike.
pub const DEFAULT_NAMESPACE: &str = "ssm-flags";

/// The longest flag or variant name counted (CloudWatch's limit for a dimension value).
pub const MAX_DIMENSION_LEN: usize = 1024;

/// CloudWatch's rule for a dimension value, at most `max` bytes: printable ASCII, not empty or
/// all spaces. Event names, the service, and the flag and variant names of a counted experiment
/// all follow it (a line breaking it would be dropped by CloudWatch, counts and all).
pub fn dimension_value(value: &str, max: usize) -> Result<(), &'static str> {
    if value.trim().is_empty() {
        Err("must not be empty")
    } else if value.len() > max {
        Err("is too long for a CloudWatch dimension value")
    } else if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        Err("must be printable ASCII (a CloudWatch dimension value)")
    } else {
        Ok(())
    }
}

/// Units a scope remembers before it writes its counts early and starts over: bounds the
/// memory of a process that never ends a scope.
pub const MAX_UNITS: usize = 65_536;

/// Scope ids: each scope's own, never reused (0 is the process-wide scope's, [`INERT`] an
/// inert scope's).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// The id of an inert scope on a thread's [`CURRENT_ID`].
const INERT: u64 = u64::MAX;
/// The id of the process-wide scope.
const PROCESS_WIDE: u64 = 0;
/// How many times any scope has started over (its units forgotten): a thread's remembered last
/// exposure holds only while this has not moved.
static DRAINS: AtomicU64 = AtomicU64::new(0);

/// Whether evaluations outside every [`Scope`] count (in the process-wide scope).
static OUTSIDE: AtomicBool = AtomicBool::new(true);

/// The process-wide scope: evaluations outside every [`Scope`]. Its id changes whenever it
/// starts over (its units forgotten).
fn global() -> &'static ScopeState {
    static GLOBAL: OnceLock<ScopeState> = OnceLock::new();
    GLOBAL.get_or_init(|| ScopeState::with_id(PROCESS_WIDE, true))
}

/// A tally's lock: counting never panics while it holds it, and a poisoned one still counts.
fn lock(tally: &Mutex<Tally>) -> MutexGuard<'_, Tally> {
    tally.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The emitter this process writes with: from the environment, once (`None`: metrics off).
fn emitter() -> Option<&'static Emitter> {
    static EMITTER: OnceLock<Option<Emitter>> = OnceLock::new();
    EMITTER
        .get_or_init(|| match Emitter::from_env() {
            Ok(emitter) => emitter,
            Err(problem) => {
                tracing::warn!(error = %problem, "experiment metrics are off");
                None
            }
        })
        .as_ref()
}

/// Whether this process writes experiment metrics: `SSM_FLAGS_METRICS` is not `off`.
#[inline]
pub fn metrics_on() -> bool {
    emitter().is_some()
}

/// Whether evaluations outside every [`Scope`] are counted, in the process-wide scope (by
/// default they are). The extension turns it off: it counts only the single evaluations it
/// answers, in a scope of its own, never the bulk ones.
pub fn count_outside_scopes(on: bool) {
    OUTSIDE.store(on, Ordering::Relaxed);
}

thread_local! {
    /// The scope of the task being polled on this thread, if any.
    static CURRENT: RefCell<Option<Arc<ScopeState>>> = const { RefCell::new(None) };
    /// Its id ([`PROCESS_WIDE`] when none, [`INERT`] when it does not count): read on every
    /// counted evaluation, so a plain `Cell` (no destructor, no borrow flag).
    static CURRENT_ID: Cell<u64> = const { Cell::new(PROCESS_WIDE) };
    /// The last exposure this thread recorded: (scope id, [`DRAINS`] then, hash of the flag and
    /// the key). A repeated evaluation of the same flag for the same unit in the same scope
    /// stops here, before any lock.
    static LAST: Cell<(u64, u64, u64)> = const { Cell::new((INERT, 0, 0)) };
}

/// What a thread remembers of a (flag, key) pair: its hash (64 bits: two pairs that collide
/// would need 2^32 distinct units in one scope to be likely, and cost one exposure uncounted).
#[inline]
fn unit_hash(flag: &str, key: &str) -> u64 {
    foldhash::fast::FixedState::with_seed(0x5eed).hash_one((flag, key))
}

/// Counts an exposure of `flag`'s `variant` to the unit `key`: in the current [`Scope`], or
/// the process-wide one. Called by the evaluations that take a context, only for an experiment
/// flag whose split decided.
#[inline]
pub(crate) fn expose(flag: &str, key: &str, variant: &str) {
    let scope = CURRENT_ID.with(Cell::get);
    if scope == INERT
        || (scope == PROCESS_WIDE && !(OUTSIDE.load(Ordering::Relaxed) && metrics_on()))
    {
        return;
    }
    // Read before recording: a drain after this read makes the remembered exposure stale.
    let drains = DRAINS.load(Ordering::Acquire);
    let unit = unit_hash(flag, key);
    if LAST.with(Cell::get) == (scope, drains, unit) {
        return;
    }
    CURRENT.with(|current| match current.borrow().as_deref() {
        Some(state) => record(state, flag, key, variant),
        None => record(global(), flag, key, variant),
    });
    LAST.with(|last| last.set((scope, drains, unit)));
}

/// Records one exposure in `state`; a full tally writes its counts first and starts over (a
/// new id, under the lock: no thread's remembered last exposure hides the unit's next one).
fn record(state: &ScopeState, flag: &str, key: &str, variant: &str) {
    let mut held = lock(&state.tally);
    if !held.expose(flag, key, variant) {
        let counts = state.drain(&mut held);
        held.expose(flag, key, variant);
        drop(held);
        tracing::warn!(
            units = MAX_UNITS,
            "experiment counts written early: a scope remembers at most this many units"
        );
        write(&counts);
    }
}

/// Counts a conversion for `key` (see [`crate::track`]) in the current scope, or the
/// process-wide one; what it was attributed to.
pub fn track_key(
    event: &str,
    key: Option<&str>,
    value: Option<f64>,
) -> Result<Vec<Attribution>, TrackError> {
    validate_event(event)?;
    if let Some(value) = value {
        validate_value(value)?;
    }
    let key = key.ok_or(TrackError::NoTargetingKey)?;
    CURRENT.with(|current| match current.borrow().as_deref() {
        Some(scope) if scope.active => scope.track(event, key, value),
        None if OUTSIDE.load(Ordering::Relaxed) && metrics_on() => {
            global().track(event, key, value)
        }
        _ => Ok(Vec::new()),
    })
}

/// Writes the process-wide scope's counts (evaluations outside every [`Scope`]) and starts it
/// over; call it where a process without [`crate::FlagsLayer`] ends a unit of work, or before
/// it exits. The end of a [`Scope`] does the same.
pub fn flush_exposures() {
    write(&take_process_wide());
}

/// The process-wide scope's counts, taken, and its units forgotten: for a process that sends
/// them elsewhere than stdout.
pub fn take_process_wide() -> Counts {
    let global = global();
    global.drain(&mut lock(&global.tally))
}

/// Writes `counts` as EMF lines on stdout, when metrics are on and there is anything.
fn write(counts: &Counts) {
    if let Some(emitter) = emitter()
        && !counts.is_empty()
    {
        emitter.write(counts);
    }
}

struct ScopeState {
    /// Its id, for the threads' remembered last exposure.
    id: u64,
    /// Whether it counts (metrics are on).
    active: bool,
    tally: Mutex<Tally>,
}

impl ScopeState {
    fn new(active: bool) -> Self {
        Self::with_id(NEXT_ID.fetch_add(1, Ordering::Relaxed), active)
    }

    fn with_id(id: u64, active: bool) -> Self {
        Self {
            id,
            active,
            tally: Mutex::new(Tally::default()),
        }
    }

    /// Starts over: the counts taken and the units forgotten, and every thread's remembered
    /// last exposure made stale ([`DRAINS`]), all under the lock `held` (of this scope's tally).
    fn drain(&self, held: &mut Tally) -> Counts {
        let counts = held.take();
        held.forget_units();
        DRAINS.fetch_add(1, Ordering::AcqRel);
        counts
    }

    fn track(
        &self,
        event: &str,
        key: &str,
        value: Option<f64>,
    ) -> Result<Vec<Attribution>, TrackError> {
        lock(&self.tally).track(event, key, value)
    }
}

impl Drop for ScopeState {
    /// Counts made after [`Scope::finish`] (a task of the scope still running) are written
    /// when the last of them ends: none is lost.
    fn drop(&mut self) {
        let counts = self
            .tally
            .get_mut()
            .map_or_else(|e| e.into_inner().take(), Tally::take);
        write(&counts);
    }
}

/// One unit of work whose exposures are counted together — an invocation: the first
/// evaluation of a flag for a key within it is the exposure. [`crate::FlagsLayer`] opens one per
/// invocation; a service of another kind (an HTTP server, a queue consumer) opens one per
/// request with [`Scope::run`] and ends it with [`Scope::finish`].
///
/// ```
/// # async fn handle() {}
/// # async fn demo() {
/// let scope = flags::experiment::Scope::new();
/// scope.run(handle()).await;
/// scope.finish(); // this scope's lines, and the process-wide scope's
/// # }
/// ```
pub struct Scope {
    state: Arc<ScopeState>,
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope").field("id", &self.state.id).finish()
    }
}

impl Default for Scope {
    fn default() -> Self {
        Self::new()
    }
}

impl Scope {
    /// A new, empty scope; inert when metrics are off ([`metrics_on`]).
    pub fn new() -> Self {
        Self::with_counting(metrics_on())
    }

    /// A new, empty scope that counts (or not) whatever the environment says.
    pub fn with_counting(active: bool) -> Self {
        Self {
            state: Arc::new(ScopeState::new(active)),
        }
    }

    /// `future`, with every evaluation made while it is polled counted in this scope (a task
    /// it spawns is not: that counts process-wide).
    pub fn run<F: Future>(&self, future: F) -> Scoped<F> {
        Scoped {
            state: Arc::clone(&self.state),
            future: Box::pin(future),
        }
    }

    /// Runs `work` with its evaluations counted in this scope.
    pub fn enter<R>(&self, work: impl FnOnce() -> R) -> R {
        let _entered = Entered::new(&self.state);
        work()
    }

    /// This scope's counts so far, taken (they will not be written again).
    pub fn take(&self) -> Counts {
        lock(&self.state.tally).take()
    }

    /// Forgets the units seen: the next evaluation of a flag for any key is an exposure again
    /// (a scope reused for the next invocation, or the next period).
    pub fn forget_units(&self) {
        let mut tally = lock(&self.state.tally);
        let counts = tally.take();
        self.state.drain(&mut tally);
        // The counts stay: only the units are forgotten.
        tally.restore(counts);
    }

    /// This scope's counts so far, taken, and its units forgotten, in one step: the next
    /// period's scope (the extension's flush).
    pub fn drain(&self) -> Counts {
        self.state.drain(&mut lock(&self.state.tally))
    }

    /// Counts a conversion on `event` for `key` in this scope (see [`crate::track`]).
    pub fn track(
        &self,
        event: &str,
        key: Option<&str>,
        value: Option<f64>,
    ) -> Result<Vec<Attribution>, TrackError> {
        self.enter(|| track_key(event, key, value))
    }

    /// Ends the scope: writes its counts with the process-wide scope's (one set of lines), when
    /// metrics are on.
    pub fn finish(self) {
        if !self.state.active {
            return;
        }
        let mut counts = self.take();
        counts.merge(take_process_wide());
        write(&counts);
    }
}

/// Restores the thread's previous scope when dropped (also on a panic).
struct Entered {
    previous: Option<Arc<ScopeState>>,
    previous_id: u64,
}

impl Entered {
    fn new(state: &Arc<ScopeState>) -> Self {
        let id = if state.active { state.id } else { INERT };
        Self {
            previous: CURRENT.with(|current| current.replace(Some(Arc::clone(state)))),
            previous_id: CURRENT_ID.with(|current| current.replace(id)),
        }
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|current| *current.borrow_mut() = previous);
        CURRENT_ID.with(|current| current.set(self.previous_id));
    }
}

/// A future polled in a [`Scope`] ([`Scope::run`]).
pub struct Scoped<F> {
    state: Arc<ScopeState>,
    future: Pin<Box<F>>,
}

impl<F> std::fmt::Debug for Scoped<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scoped")
            .field("scope", &self.state.id)
            .finish()
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let _entered = Entered::new(&self.state);
        self.future.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn exposures(counts: &Counts) -> Vec<(String, String, u64)> {
        counts
            .exposures
            .iter()
            .map(|((flag, variant), n)| (flag.clone(), variant.clone(), *n))
            .collect()
    }

    #[test]
    fn a_scope_counts_the_first_evaluation_of_a_flag_for_a_key() {
        let scope = Scope::with_counting(true);
        scope.enter(|| {
            for _ in 0..3 {
                expose("checkout", "alice", "one-page");
            }
            expose("checkout", "bob", "classic");
            expose("other", "alice", "b");
            expose("checkout", "alice", "one-page");
        });
        let counts = scope.take();
        assert_eq!(
            exposures(&counts),
            [
                ("checkout".into(), "classic".into(), 1),
                ("checkout".into(), "one-page".into(), 1),
                ("other".into(), "b".into(), 1),
            ]
        );
    }

    #[test]
    fn two_scopes_count_the_same_unit_once_each_and_track_their_own() {
        let (a, b) = (Scope::with_counting(true), Scope::with_counting(true));
        a.enter(|| expose("exp-two-scopes", "u1", "x"));
        b.enter(|| expose("exp-two-scopes", "u1", "x"));
        a.enter(|| expose("exp-two-scopes", "u1", "x"));
        let tracked = b
            .enter(|| track_key("paid", Some("u1"), Some(12.5)))
            .expect("valid");
        assert_eq!(tracked.len(), 1);
        let (ca, cb) = (a.take(), b.take());
        assert_eq!(exposures(&ca), [("exp-two-scopes".into(), "x".into(), 1)]);
        assert_eq!(exposures(&cb), [("exp-two-scopes".into(), "x".into(), 1)]);
        assert!(ca.conversions.is_empty());
        let paid = &cb.conversions[&("exp-two-scopes".into(), "x".into(), "paid".into())];
        assert_eq!((paid.count, paid.values.as_slice()), (1, &[12.5][..]));
    }

    #[test]
    fn a_scoped_future_counts_in_its_scope_across_polls_and_restores_the_thread() {
        let scope = Scope::with_counting(true);
        let mut yielded = false;
        let future = scope.run(std::future::poll_fn(move |cx| {
            expose("exp-polls", "k", "v1");
            if yielded {
                Poll::Ready(())
            } else {
                yielded = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }));
        let mut future = std::pin::pin!(future);
        let mut cx = TaskContext::from_waker(Waker::noop());
        assert!(future.as_mut().poll(&mut cx).is_pending());
        assert!(
            CURRENT.with(|c| c.borrow().is_none()),
            "restored between polls"
        );
        assert!(future.as_mut().poll(&mut cx).is_ready());
        assert_eq!(
            exposures(&scope.take()),
            [("exp-polls".into(), "v1".into(), 1)]
        );
    }

    #[test]
    fn a_forgetting_scope_counts_a_unit_again_and_an_inert_one_counts_nothing() {
        let scope = Scope::with_counting(true);
        scope.enter(|| expose("exp-forget", "k", "a"));
        scope.enter(|| expose("exp-forget", "k", "a"));
        scope.forget_units();
        // The same thread, flag and key: the remembered last exposure must not hide it.
        scope.enter(|| expose("exp-forget", "k", "a"));
        assert_eq!(
            exposures(&scope.take()),
            [("exp-forget".into(), "a".into(), 2)]
        );
        let inert = Scope::with_counting(false);
        inert.enter(|| expose("exp-forget", "k", "a"));
        assert!(inert.take().is_empty());
        assert!(
            inert
                .track("paid", Some("k"), None)
                .expect("valid")
                .is_empty(),
            "nothing to attribute"
        );
    }

    #[test]
    fn tracking_needs_a_key_a_valid_event_and_a_finite_value() {
        assert!(matches!(
            track_key("paid", None, None),
            Err(TrackError::NoTargetingKey)
        ));
        assert!(matches!(
            track_key("", Some("k"), None),
            Err(TrackError::Event { .. })
        ));
        assert!(matches!(
            track_key("paid", Some("k"), Some(f64::NAN)),
            Err(TrackError::Value(_))
        ));
    }
}
