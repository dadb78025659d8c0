//! What counting exposures costs the evaluations that take a context, measured in one run:
//!
//! - `experiment/split_uncounted`: an experiment flag's 3-variant `fractional` read with
//!   `string_for(&user)` where nothing counts (metrics off: an inert scope) — the baseline;
//! - `experiment/split_counted`: the same read in a counting scope, the unit already exposed —
//!   every read of a handler after its first for that user (the goal: ≤ 5 ns over the baseline);
//! - `experiment/split_first_exposure`: the same read for a new unit each time (the unit
//!   remembered, its variant counted: one insert), for reference;
//! - `experiment/plain_split`: the same split on a flag that is not an experiment (a name of the same length), counting on:
//!   a flag without the marker pays one branch.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use flags::experiment::Scope;
use flags::flagd::Bucketing;
use flags::{Context, FlagEntry, Snapshot, Status};
use serde_json::json;

fn snapshot() -> Snapshot {
    let split = |experiment: bool| {
        json!({"state": "ENABLED", "variants": {"a": "a", "b": "b", "c": "c"}, "defaultVariant": "a",
               "targeting": {"fractional": [["a", 33], ["b", 33], ["c", 34]]},
               "metadata": {"experiment": experiment}})
    };
    let document =
        json!({"flags": {"checkout-split": split(true), "checkout-plain": split(false)}});
    let entries = FlagEntry::from_flagd_document("bench", 1, false, &document, Bucketing::V3)
        .expect("a flag document");
    Snapshot::new(1, Status::Ok, entries)
}

fn bench(c: &mut Criterion) {
    let snapshot = snapshot();
    let (inert, counting) = (Scope::with_counting(false), Scope::with_counting(true));
    // The counting scope does count, the inert one does not, before anything is timed.
    counting.enter(|| {
        snapshot
            .get("checkout-split")
            .string_for(&Context::user("user-123"))
    });
    assert_eq!(counting.take().total_exposures(), 1);
    inert.enter(|| {
        snapshot
            .get("checkout-split")
            .string_for(&Context::user("user-123"))
    });
    assert!(inert.take().is_empty());

    let mut group = c.benchmark_group("experiment");
    group.bench_function("split_uncounted", |b| {
        inert.enter(|| {
            b.iter(|| {
                snapshot
                    .get("checkout-split")
                    .string_for(&Context::user(black_box("user-123")))
            })
        })
    });
    group.bench_function("split_counted", |b| {
        counting.enter(|| {
            b.iter(|| {
                snapshot
                    .get("checkout-split")
                    .string_for(&Context::user(black_box("user-123")))
            })
        })
    });
    group.bench_function("plain_split", |b| {
        counting.enter(|| {
            b.iter(|| {
                snapshot
                    .get("checkout-plain")
                    .string_for(&Context::user(black_box("user-123")))
            })
        })
    });
    let users: Vec<String> = (0..4096).map(|i| format!("user-{i}")).collect();
    group.bench_function("split_first_exposure", |b| {
        b.iter_custom(|iterations| {
            let mut spent = Duration::ZERO;
            let mut done = 0;
            while done < iterations {
                // A fresh scope per pass over the users: each read is a unit's first.
                let scope = Scope::with_counting(true);
                let pass = (iterations - done).min(users.len() as u64) as usize;
                let started = Instant::now();
                scope.enter(|| {
                    for user in &users[..pass] {
                        black_box(
                            snapshot
                                .get("checkout-split")
                                .string_for(&Context::user(user)),
                        );
                    }
                });
                spent += started.elapsed();
                drop(scope.take());
                done += pass as u64;
            }
            spent
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
