//! The [`Store`] that holds the current [`Snapshot`] and swaps in a new one atomically: readers
//! never block and never see a half-applied update; installs are one at a time, and a store
//! whose readers cache what they read numbers them (`Installs`) so that no reader on a thread
//! answers from older flags than it has seen.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::snapshot::Snapshot;

/// Holds the current snapshot; readers never block and never see a half-applied update.
#[derive(Debug)]
pub struct Store {
    current: ArcSwap<Snapshot>,
    default_region: Option<Arc<str>>,
    /// The count this store numbers its installs with, for readers that cache what they read
    /// (the process-wide store's, read through each thread's view: `crate::global`).
    installs: Option<&'static Installs>,
    /// Held by an install from its decision to its count: installs are decided and numbered in
    /// the order they swap snapshots in.
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
            installs: None,
            installing: Mutex::new(()),
        }
    }

    /// The same store, giving every snapshot installed from now on `region` as its default
    /// region (unless the snapshot has its own).
    pub fn with_default_region(mut self, region: Option<&str>) -> Self {
        self.default_region = region.filter(|r| !r.is_empty()).map(Arc::from);
        self
    }

    /// The same store, numbering its installs with `installs` (see [`Installs`]).
    pub(crate) fn with_installs(mut self, installs: &'static Installs) -> Self {
        self.installs = Some(installs);
        self
    }

    /// Pins the current snapshot: reads through it agree, whatever is installed meanwhile.
    /// (One reference-count increment: pin once per invocation, not per read.)
    pub fn pin(&self) -> Arc<Snapshot> {
        let snapshot = self.current.load_full();
        if let Some(installs) = self.installs {
            // An install swaps, then raises the count: a pin in between would hand out a
            // snapshot newer than the one `flags::get` answers from on this very thread.
            installs.caught_up(&snapshot);
        }
        snapshot
    }

    /// Runs `read` on the current snapshot, through an arc-swap guard. Lock-free; no
    /// allocation, no I/O. (The process-wide store is read through each thread's own view
    /// instead: `crate::global`.)
    #[inline]
    pub fn read<R>(&self, mut read: impl FnMut(&Snapshot) -> R) -> R {
        let snapshot = self.current.load();
        if let Some(installs) = self.installs {
            installs.caught_up(&snapshot);
        }
        read(&snapshot)
    }

    /// The current snapshot and the install count it is labelled with (see
    /// [`Installs::load_numbered`]); `None` for a store that does not number its installs.
    pub(crate) fn load_numbered(&self) -> Option<(u64, Arc<Snapshot>)> {
        self.installs
            .map(|installs| installs.load_numbered(|| self.current.load_full()))
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
        let Some(installs) = self.installs else {
            let installed = Arc::new(snapshot);
            return (self.current.swap(Arc::clone(&installed)), installed);
        };
        // Under the lock only installs raise the count past what is installed (a pin raises it
        // only to a snapshot already swapped in), so this is the next number.
        let number = installs.0.load(Ordering::Acquire) + 1;
        snapshot.installed_as = number;
        let installed = Arc::new(snapshot);
        let replaced = self.current.swap(Arc::clone(&installed));
        #[cfg(test)]
        tests::between_swap_and_count();
        // After the swap: a reader that sees the new count loads the new snapshot. `fetch_max`:
        // a reader that pinned the new snapshot may have raised it already.
        installs.0.fetch_max(number, Ordering::Release);
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

/// How many snapshots a store was given (starting at 1), for readers that cache what they read
/// and compare this count with the one they saw. A counter alone in its cache lines (128 bytes:
/// two lines, as adjacent-line prefetchers pair them), so no write to a neighbouring value
/// reaches the readers' caches; only an install writes it (or a reader helping one along).
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Installs(pub(crate) AtomicU64);

impl Installs {
    /// A count at 1: the store's first snapshot.
    pub(crate) const fn new() -> Self {
        Self(AtomicU64::new(1))
    }

    /// The current snapshot (`load`) and the install count it is labelled with. The count is
    /// loaded first, with Acquire: an install swaps the snapshot before it raises the count
    /// (Release), so the snapshot that loads next is the one of that count or a later one. A
    /// later one (loaded between another install's swap and its count) is labelled with its own
    /// number, and the count is raised to it ([`Installs::caught_up`]): answers a thread
    /// remembered at the older count are then out of date, so no read on that thread answers
    /// from flags older than it has seen.
    pub(crate) fn load_numbered(
        &self,
        load: impl FnOnce() -> Arc<Snapshot>,
    ) -> (u64, Arc<Snapshot>) {
        let counted = self.0.load(Ordering::Acquire);
        let snapshot = load();
        self.caught_up(&snapshot);
        (counted.max(snapshot.installed_as), snapshot)
    }

    /// Raises the count to `snapshot`'s number when a reader met it between its install's swap
    /// and count: from then on, every read on this thread answers from it or a later one. (A
    /// load that finds the count there already, at every read but one in that window.)
    #[inline]
    pub(crate) fn caught_up(&self, snapshot: &Snapshot) {
        if self.0.load(Ordering::Acquire) < snapshot.installed_as {
            self.0.fetch_max(snapshot.installed_as, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::snapshot::tests::entry;
    use crate::wire::Status;
    use std::cell::RefCell;

    thread_local! {
        /// Run by an install on this thread between its swap and its count (see `install`).
        pub(crate) static BETWEEN_SWAP_AND_COUNT: RefCell<Option<Box<dyn FnMut()>>> = const { RefCell::new(None) };
    }

    /// The test-only hook in [`Store::install`]: runs this thread's closure, if it set one.
    pub(crate) fn between_swap_and_count() {
        BETWEEN_SWAP_AND_COUNT.with(|hook| {
            if let Some(hook) = hook.borrow_mut().as_mut() {
                hook();
            }
        });
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
