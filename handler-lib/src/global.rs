//! The process-wide read path: the store [`crate::get`] reads ([`GLOBAL`]), each thread's view
//! of it, and each thread's remembered answers ([`answers`]) — one room, the hot read.
//!
//! Why a view per thread: pinning the snapshot on each read (`load_full`) increments and
//! decrements one reference count that every reader on every core writes, so reads slowed down
//! as threads were added. Each thread keeps its own `Arc` of the current snapshot with the
//! store's install count (`generation`) when it took it; at each read it compares that count
//! with the store's (one load of a cache line that only an install writes): a swap is seen at
//! the very next read, and nothing shared is written. (arc-swap's `Cache` does the same with the
//! pointer; its reload path, inlined into every read, kept the read from being inlined where
//! flags are read, which cost a call per read.) arc-swap's `Guard`s ([`Store::read`]) are the
//! fallback: cheap too, but they take one of a few per-thread slots and are not to be held, so
//! no handle keeps one. A thread keeps the snapshot it last read alive until its next read (at
//! most one old snapshot per idle thread). `flags::get` goes further. Its reads
//! ([`read_global_entry`]) also remember in which bucket each name was found and check that
//! entry's name before hashing: a hint checked against the entry itself, never wrong, only
//! sometimes useless. And its hottest read, `enabled()` with no user, answers from the thread's
//! remembered answers ([`answers`]), checked against the same install count: no destructor and
//! no `RefCell` on that path, so it inlines where flags are read. Everything but the hit (setup,
//! reload, a hashed lookup, working an answer out, the fallback) is out of line.

use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};

use crate::eval::{Context, Evaluation};
use crate::snapshot::{FlagEntry, Memo, Snapshot};
use crate::store::{Installs, Store};

pub(crate) mod answers;

/// The process-wide store read by [`crate::get`]. A context without a region is evaluated in the
/// function's own region, `AWS_REGION`, read here once.
pub(crate) static GLOBAL: LazyLock<Store> = LazyLock::new(|| {
    let region = std::env::var("AWS_REGION").ok();
    Store::default()
        .with_default_region(region.as_deref())
        .with_installs(&GLOBAL_INSTALLS)
});

/// How many snapshots [`GLOBAL`] was given (starting at 1): each thread compares it with the count
/// it saw when it took its snapshot ([`ThreadView`]) or worked out an answer ([`answers`]).
/// Outside the `LazyLock`, so a read loads it without touching the lock.
pub(crate) static GLOBAL_INSTALLS: Installs = Installs::new();

/// A thread's view of [`GLOBAL`]: its current snapshot, and where it found names.
struct ThreadView {
    /// [`GLOBAL_INSTALLS`] when `snapshot` was loaded.
    generation: u64,
    snapshot: Arc<Snapshot>,
    memo: Memo,
}

/// Runs `read` on [`GLOBAL`]'s current snapshot through this thread's view (see the module docs).
/// `FnMut`, called by reference: moving a handle into the call costs more than the read itself.
#[inline(always)]
pub(crate) fn read_global<R>(mut read: impl FnMut(&Snapshot) -> R) -> R {
    match with_view(|view| read(view.current())) {
        Some(result) => result,
        None => GLOBAL.read(read),
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

/// Runs `read` on [`GLOBAL`]'s current snapshot and its entry `name` through this thread's view:
/// the hot path of `flags::get(name)`, found through the thread's memo when it can be.
#[inline(always)]
pub(crate) fn read_global_entry<R>(
    name: &str,
    mut read: impl FnMut(&Snapshot, Option<&FlagEntry>) -> R,
) -> R {
    match with_view(|view| {
        let (snapshot, entry) = view.entry(name);
        read(snapshot, entry)
    }) {
        Some(result) => result,
        None => read_entry_guarded(name, read),
    }
}

/// The flag `name` of [`GLOBAL`]'s current snapshot evaluated with no context (default `false`),
/// with the install count it was read at: `None` when this thread's view was busy or gone (the
/// answer then comes from an arc-swap guard, and is not to be remembered).
pub(crate) fn global_evaluation(name: &str) -> (Option<u64>, Evaluation) {
    let viewed = with_view(|view| {
        let evaluation = {
            let (snapshot, entry) = view.entry(name);
            snapshot.evaluate_entry(entry, &Context::new(), false)
        };
        // `entry` brought the view up to date: its count is the one the answer was read at.
        (view.generation, evaluation)
    });
    match viewed {
        Some((generation, evaluation)) => (Some(generation), evaluation),
        None => (
            None,
            GLOBAL.read(|snapshot| {
                snapshot.evaluate_entry(snapshot.entry(name), &Context::new(), false)
            }),
        ),
    }
}

/// [`read_global_entry`] when this thread's view is busy or gone: out of line, so the read path
/// stays small enough to be inlined where flags are read.
#[cold]
#[inline(never)]
fn read_entry_guarded<R>(
    name: &str,
    mut read: impl FnMut(&Snapshot, Option<&FlagEntry>) -> R,
) -> R {
    GLOBAL.read(|snapshot| read(snapshot, snapshot.entry(name)))
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

    /// The view's snapshot, brought up to date, and its entry `name`, found through the memo.
    #[inline(always)]
    fn entry(&mut self, name: &str) -> (&Snapshot, Option<&FlagEntry>) {
        self.refresh();
        let entry = self.snapshot.find(name, &mut self.memo);
        (&self.snapshot, entry)
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

/// [`GLOBAL`]'s current snapshot and the install count it is labelled with (see
/// [`Installs::load_numbered`]).
fn load_current() -> (u64, Arc<Snapshot>) {
    GLOBAL
        .load_numbered()
        .unwrap_or_else(|| (GLOBAL_INSTALLS.0.load(Ordering::Acquire), GLOBAL.pin()))
}

thread_local! {
    /// Each thread's view of [`GLOBAL`]'s current snapshot (see the module docs).
    static THREAD_CACHE: RefCell<Option<ThreadView>> = const { RefCell::new(None) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::tests::entry;
    use crate::store::tests::BETWEEN_SWAP_AND_COUNT;
    use crate::wire::Status;
    use std::sync::Mutex;

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

    /// Held by the tests here that install into the process-wide store and expect to read back
    /// what they installed (`answers`' tests tolerate installs meanwhile).
    static GLOBAL_TESTS: Mutex<()> = Mutex::new(());
}
