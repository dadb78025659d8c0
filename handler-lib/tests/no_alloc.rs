//! The read path allocates nothing: a counting allocator watches `flags::get` and evaluation.
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

#[test]
fn reads_and_evaluations_do_not_allocate() {
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
