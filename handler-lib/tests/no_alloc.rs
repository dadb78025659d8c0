//! The read path allocates nothing: a counting allocator watches `flags::get` and evaluation, on
//! one thread and on several reading at once while snapshots are swapped.
//!
//! One allocation is allowed per thread, once: the first read on a thread sets up that thread's
//! view of the current snapshot (arc-swap's per-thread node, reused by later threads once this
//! one exits). It is acceptable: bounded by the number of threads, paid before the thread's
//! first answer, never again on that thread, however many reads or swaps follow.
#![allow(unsafe_code)] // implementing `GlobalAlloc` is unsafe by definition; it only forwards.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use flags::{Context, Snapshot};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

/// One test owns the process-wide store: the scenarios run in order.
#[test]
fn reads_and_evaluations_do_not_allocate() {
    one_thread();
    several_threads_while_snapshots_are_swapped();
}

fn one_thread() {
    let flags = [
        ("dark-mode", "true"),
        (
            "new-analytics",
            r#"{"enabled": true, "rollout_percentage": 25, "allowed_regions": ["us-east-1"],
                "excluded_user_ids": ["user-123"], "allowed_attributes": {"plan": ["pro"]},
                "salt": "s", "max_items": 50}"#,
        ),
        ("broken", "{"),
    ];
    flags::install(Snapshot::from_values(flags));
    // Warm up the lazily initialised global store outside the count.
    let _ = flags::get("dark-mode").enabled();

    let mut seen = Vec::with_capacity(8);
    let n = allocations_during(|| {
        seen.push(flags::get("dark-mode").enabled());
        seen.push(flags::get("missing").enabled());
        seen.push(flags::get_or("broken", true).enabled());
        // user-789 passes every rule and reaches the salted md5 rollout.
        let user = Context::user("user-789")
            .with_region("us-east-1")
            .with_attributes(&[("plan", "pro")]);
        let analytics = flags::get("new-analytics");
        seen.push(analytics.enabled_for(&user));
        seen.push(analytics.evaluate(&user).enabled);
        seen.push(analytics.field::<u32>("max_items") == Some(50));
        let pinned = flags::pin();
        seen.push(pinned.get("dark-mode").enabled());
    });
    assert_eq!(n, 0, "the read path allocated {n} times");
    let in_rollout = flags::bucket("user-789", Some("s")) <= 25;
    assert_eq!(
        seen,
        [true, false, true, in_rollout, in_rollout, true, true]
    );

    // The counter does count: a flag name built with `format!` allocates.
    let n = allocations_during(|| {
        assert!(flags::get(&format!("dark-{}", "mode")).enabled());
    });
    assert!(n > 0, "the allocation counter saw nothing");
}

fn several_threads_while_snapshots_are_swapped() {
    use std::sync::{Arc, Barrier};

    const THREADS: usize = 4;
    const SWAPS: u64 = 3;
    flags::install(Snapshot::from_values([("dark-mode", "false")]));
    // Two barriers per swap: every reader has read the old snapshot, then the new one is in.
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let readers: Vec<_> = (0..THREADS)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let first = allocations_during(|| {
                    let _ = flags::get("dark-mode").enabled();
                });
                let mut seen = Vec::with_capacity(SWAPS as usize);
                let mut allocations = 0;
                for _ in 0..SWAPS {
                    barrier.wait(); // a swap is being made
                    barrier.wait(); // it is made: the very next read must see it
                    allocations += allocations_during(|| {
                        for _ in 0..1_000 {
                            let _ = flags::get("dark-mode").enabled();
                        }
                        seen.push((flags::version(), flags::get("dark-mode").enabled()));
                    });
                }
                (first, allocations, seen)
            })
        })
        .collect();
    for swap in 0..SWAPS {
        barrier.wait();
        let value = if swap % 2 == 0 { "true" } else { "false" };
        let entries = Snapshot::from_values([("dark-mode", value)])
            .entries()
            .cloned()
            .collect::<Vec<_>>();
        flags::install(Snapshot::new(10 + swap, flags::Status::Ok, entries));
        barrier.wait();
    }
    let expected: Vec<(u64, bool)> = (0..SWAPS).map(|s| (10 + s, s % 2 == 0)).collect();
    for reader in readers {
        let (first, allocations, seen) = reader.join().expect("reader thread");
        println!(
            "a new thread's first read allocated {first} time(s); its later reads {allocations}"
        );
        assert!(
            first <= 1,
            "a thread's first read allocated {first} times (its per-thread setup: at most once)"
        );
        assert_eq!(
            allocations, 0,
            "reads after the first allocated {allocations} times"
        );
        assert_eq!(seen, expected, "each swap is seen at the next read");
    }
}
