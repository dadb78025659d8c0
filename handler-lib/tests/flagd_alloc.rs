//! Evaluating a flagd flag allocates nothing: a counting allocator watches 1,000 evaluations of
//! each kind of variant through a pinned snapshot's [`flags::Flag`] (`bool_for`, `i64_for`,
//! `f64_for`, `string_for`), with and without targeting, and of the two rules `make bench`
//! measures (`benches/flagd.rs`): a 3-variant `fractional` and a rule of three conditions.
//!
//! Its own test binary: a `#[global_allocator]` is process-wide. The count is per thread (each
//! test runs on its own), so the tests may run in parallel.
//!
//! Where an evaluation allocates, `FLAGD_ALLOC_BACKTRACE=1 cargo test -p ssm-flags --test
//! flagd_alloc` prints a backtrace of the first allocation of each failing case.
#![allow(unsafe_code)] // implementing `GlobalAlloc` is unsafe by definition; it only forwards.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;

use flags::flagd::Bucketing;
use flags::{Context, FlagEntry, Snapshot, Status};
use serde_json::{Map, Value, json};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    /// Print a backtrace of the first allocation counted (set from `FLAGD_ALLOC_BACKTRACE`).
    static TRACE: Cell<bool> = const { Cell::new(false) };
    /// Inside the allocator's own backtrace: its allocations are not counted.
    static TRACING: Cell<bool> = const { Cell::new(false) };
}

impl Counting {
    fn count(&self) {
        if !COUNTING.with(Cell::get) || TRACING.with(Cell::get) {
            return;
        }
        let n = ALLOCATIONS.with(|n| {
            n.set(n.get() + 1);
            n.get()
        });
        if n == 1 && TRACE.with(Cell::get) {
            TRACING.with(|t| t.set(true));
            eprintln!(
                "first allocation during evaluation:\n{}",
                std::backtrace::Backtrace::force_capture()
            );
            TRACING.with(|t| t.set(false));
        }
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.count();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.count();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.count();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations on this thread while `f` runs.
fn allocations_during(f: impl FnOnce()) -> usize {
    let trace = std::env::var_os("FLAGD_ALLOC_BACKTRACE").is_some_and(|v| v != "0");
    TRACE.with(|t| t.set(trace));
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get)
}

const EVALUATIONS: usize = 1_000;

/// The flags under test: each kind of variant without targeting and with a rule reading the
/// context, and the benchmark's `fractional` and three-condition rule.
fn snapshot() -> Snapshot {
    let document = json!({"flags": {
        "bool-static": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"},
        "bool-targeted": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
            "targeting": {"if": [{"==": [{"var": "tier"}, "gold"]}, "on", "off"]}},
        "int-static": {"state": "ENABLED", "variants": {"small": 10, "big": 1000}, "defaultVariant": "big"},
        "int-targeted": {"state": "ENABLED", "variants": {"small": 10, "big": 1000}, "defaultVariant": "small",
            "targeting": {"if": [{"starts_with": [{"var": "email"}, "admin"]}, "big", "small"]}},
        "float-static": {"state": "ENABLED", "variants": {"low": 0.25, "high": 0.75}, "defaultVariant": "high"},
        "float-targeted": {"state": "ENABLED", "variants": {"low": 0.25, "high": 0.75}, "defaultVariant": "low",
            "targeting": {"if": [{">=": [{"var": "seats"}, 10]}, "high", "low"]}},
        "string-static": {"state": "ENABLED", "variants": {"red": "#f00", "blue": "#00f"}, "defaultVariant": "blue"},
        "string-targeted": {"state": "ENABLED", "variants": {"red": "#f00", "blue": "#00f"}, "defaultVariant": "blue",
            "targeting": {"if": [{"==": [{"var": "tier"}, "gold"]}, "red", "blue"]}},
        "checkout-split": {"state": "ENABLED", "variants": {"a": "a", "b": "b", "c": "c"}, "defaultVariant": "a",
            "targeting": {"fractional": [["a", 33], ["b", 33], ["c", 34]]}},
        "admin-rule": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
            "targeting": {"if": [{"and": [
                {"in": [{"var": "tier"}, ["gold", "platinum"]]},
                {"starts_with": [{"var": "email"}, "admin"]},
                {"sem_ver": [{"var": "app.version"}, ">=", "2.3.0"]}
            ]}, "on", "off"]}},
    }});
    let entries = FlagEntry::from_flagd_document("flagd_alloc", 1, false, &document, Bucketing::V3)
        .expect("a flag document");
    for entry in &entries {
        assert!(
            entry.value().is_ok(),
            "{}: {:?}",
            entry.name(),
            entry.value().err()
        );
    }
    Snapshot::new(1, Status::Ok, entries)
}

fn fields() -> Map<String, Value> {
    match json!({
        "tier": "gold",
        "email": "admin@example.com",
        "seats": 12,
        "app": {"version": "2.4.1"},
    }) {
        Value::Object(map) => map,
        _ => unreachable!("an object literal"),
    }
}

/// Evaluates `read` once to warm up (and checks its answer), then counts the allocations of
/// 1,000 more evaluations; the case, its answer and the count.
fn case<T: PartialEq + std::fmt::Debug>(
    name: &'static str,
    expected: T,
    mut read: impl FnMut() -> T,
) -> (&'static str, usize) {
    assert_eq!(read(), expected, "{name}: wrong answer");
    let allocations = allocations_during(|| {
        for _ in 0..EVALUATIONS {
            black_box(read());
        }
    });
    (name, allocations)
}

/// Fails naming every case that allocated, with its count over the 1,000 evaluations.
fn assert_none_allocated(cases: &[(&'static str, usize)]) {
    for (name, n) in cases {
        println!("{name}: {n} allocations in {EVALUATIONS} evaluations");
    }
    let allocating: Vec<String> = cases
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name}: {n} in {EVALUATIONS} evaluations"))
        .collect();
    assert!(
        allocating.is_empty(),
        "evaluations allocated ({}); FLAGD_ALLOC_BACKTRACE=1 shows where",
        allocating.join("; ")
    );
}

#[test]
fn variants_without_targeting_do_not_allocate() {
    let snapshot = snapshot();
    let fields = fields();
    let user = Context::user(black_box("user-123")).with_fields(&fields);
    assert_none_allocated(&[
        case("bool_for (static)", Some(true), || {
            snapshot.get(black_box("bool-static")).bool_for(&user)
        }),
        case("i64_for (static)", Some(1000), || {
            snapshot.get(black_box("int-static")).i64_for(&user)
        }),
        case("f64_for (static)", Some(0.75), || {
            snapshot.get(black_box("float-static")).f64_for(&user)
        }),
        case("string_for (static)", Some("#00f"), || {
            snapshot.get(black_box("string-static")).string_for(&user)
        }),
    ]);
}

#[test]
fn variants_chosen_by_targeting_do_not_allocate() {
    let snapshot = snapshot();
    let fields = fields();
    let user = Context::user(black_box("user-123")).with_fields(&fields);
    assert_none_allocated(&[
        case("bool_for (`==` rule)", Some(true), || {
            snapshot.get(black_box("bool-targeted")).bool_for(&user)
        }),
        case("i64_for (`starts_with` rule)", Some(1000), || {
            snapshot.get(black_box("int-targeted")).i64_for(&user)
        }),
        case("f64_for (`>=` rule)", Some(0.75), || {
            snapshot.get(black_box("float-targeted")).f64_for(&user)
        }),
        case("string_for (`==` rule)", Some("#f00"), || {
            snapshot.get(black_box("string-targeted")).string_for(&user)
        }),
    ]);
}

/// The bucket flagd v3 gives `user` of `flag` with weights 33/33/34, worked out by hand.
fn expected_bucket(flag: &str, user: &str) -> &'static str {
    let mut bytes = vec![0x82, 0x60 + flag.len() as u8];
    bytes.extend_from_slice(flag.as_bytes());
    bytes.push(0x60 + user.len() as u8);
    bytes.extend_from_slice(user.as_bytes());
    // What `flags::flagd::murmur3` computes (murmur3 x86_32, seed 0), from the crate itself.
    let hash = murmur3::murmur3_32(&mut bytes.as_slice(), 0).expect("murmur3 of memory");
    match (u64::from(hash) * 100) >> 32 {
        0..33 => "a",
        33..66 => "b",
        _ => "c",
    }
}

#[test]
fn the_benchmarks_fractional_does_not_allocate() {
    let snapshot = snapshot();
    let fields = fields();
    let user = Context::user(black_box("user-123")).with_fields(&fields);
    let expected = expected_bucket("checkout-split", "user-123");
    assert_none_allocated(&[case(
        "string_for (3-variant fractional)",
        Some(expected),
        || snapshot.get(black_box("checkout-split")).string_for(&user),
    )]);
}

#[test]
fn the_benchmarks_three_condition_rule_does_not_allocate() {
    let snapshot = snapshot();
    let fields = fields();
    let user = Context::user(black_box("user-123")).with_fields(&fields);
    assert_none_allocated(&[case(
        "bool_for (in + starts_with + sem_ver)",
        Some(true),
        || snapshot.get(black_box("admin-rule")).bool_for(&user),
    )]);
}

/// The counter does count: otherwise every assertion above would pass vacuously.
#[test]
fn the_counter_sees_allocations() {
    let n = allocations_during(|| {
        black_box(format!("user-{}", black_box(123)));
    });
    assert!(n > 0, "the allocation counter saw nothing");
}

/// Powertools features read into the same definitions: the benchmark's three-condition rule
/// (`benches/powertools.rs`), a non-boolean feature, and each schedule condition in a named
/// zone — the clock is read and converted to wall time without allocating.
#[test]
fn powertools_features_and_schedules_do_not_allocate() {
    let document = r#"{
        "admin_console": {"default": false, "rules": {"admins": {"when_match": true, "conditions": [
            {"action": "EQUALS", "key": "tier", "value": "gold"},
            {"action": "STARTSWITH", "key": "email", "value": "admin"},
            {"action": "KEY_GREATER_THAN_OR_EQUAL_VALUE", "key": "seats", "value": 10}]}}},
        "banner": {"default": "plain", "boolean_type": false, "rules": {"listed": {"when_match": "gold",
            "conditions": [{"action": "ANY_IN_VALUE", "key": "tags", "value": ["a", "b"]},
                           {"action": "MODULO_RANGE", "key": "seats", "value": {"BASE": 5, "START": 0, "END": 4}}]}}},
        "all_day": {"default": false, "rules": {"r": {"when_match": true, "conditions": [
            {"action": "SCHEDULE_BETWEEN_TIME_RANGE", "key": "CURRENT_TIME",
             "value": {"START": "00:00", "END": "23:59", "TIMEZONE": "Europe/Berlin"}}]}}},
        "this_century": {"default": false, "rules": {"r": {"when_match": true, "conditions": [
            {"action": "SCHEDULE_BETWEEN_DATETIME_RANGE", "key": "CURRENT_DATETIME",
             "value": {"START": "2000-01-01T00:00", "END": "2099-12-31T23:59", "TIMEZONE": "Asia/Kolkata"}}]}}},
        "every_day": {"default": false, "rules": {"r": {"when_match": true, "conditions": [
            {"action": "SCHEDULE_BETWEEN_DAYS_OF_WEEK", "key": "CURRENT_DAY_OF_WEEK",
             "value": {"DAYS": ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"],
                       "TIMEZONE": "America/New_York"}}]}}}
    }"#;
    let entries = FlagEntry::from_powertools_document("powertools_alloc", 1, false, document, None)
        .expect("a Powertools document");
    assert!(entries.iter().all(|e| e.value().is_ok()));
    let snapshot = std::sync::Arc::new(Snapshot::new(1, Status::Ok, entries));
    let mut fields = fields();
    fields.insert("tags".into(), json!(["b"]));
    let context = Context::new().with_fields(&fields);
    let flag = |name| snapshot.get(name);
    assert_none_allocated(&[
        case("powertools rule", Some(true), || {
            flag("admin_console").bool_for(&context)
        }),
        case("powertools non-boolean", Some("gold"), || {
            flag("banner").string_for(&context)
        }),
        case("time range", Some(true), || {
            flag("all_day").bool_for(&context)
        }),
        case("datetime range", Some(true), || {
            flag("this_century").bool_for(&context)
        }),
        case("days of week", Some(true), || {
            flag("every_day").bool_for(&context)
        }),
    ]);
}
