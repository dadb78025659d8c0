//! Exposures through the handles handlers read: which evaluations count (an experiment flag,
//! decided by its split, for a targeting key; once per unit and scope), for every read that
//! takes a context, in both formats — and exactly, across threads and concurrent scopes.

use std::collections::BTreeMap;

use flags::experiment::{Counts, Scope};
use flags::wire::Status;
use flags::{Bucketing, Context, FlagEntry, Parameter, ParameterKind, Snapshot, ValueType};
use serde_json::json;

fn snapshot() -> Snapshot {
    let document = json!({"flags": {
        "checkout-flow": {"state": "ENABLED",
            "variants": {"classic": "classic", "one-page": "one-page", "express": "express"},
            "defaultVariant": "classic",
            "targeting": {"if": [{"==": [{"var": "tier"}, "staff"]}, "express",
                {"fractional": [["classic", 34], ["one-page", 33], ["express", 33]]}]},
            "metadata": {"experiment": true}},
        "bool-split": {"state": "ENABLED", "variants": {"on": true, "off": false},
            "defaultVariant": "off", "targeting": {"fractional": [["on", 50], ["off", 50]]},
            "metadata": {"experiment": true}},
        "not-an-experiment": {"state": "ENABLED", "variants": {"a": "a", "b": "b"},
            "defaultVariant": "a", "targeting": {"fractional": [["a", 50], ["b", 50]]}},
        "said-yes": {"state": "ENABLED", "variants": {"a": "a", "b": "b"},
            "defaultVariant": "a", "targeting": {"fractional": [["a", 50], ["b", 50]]},
            "metadata": {"experiment": "yes"}},
    }});
    let mut entries =
        FlagEntry::from_flagd_document("/app/flags", 3, false, &document, Bucketing::V3)
            .expect("a flag document");
    // The same split, from a SecureString.
    entries.extend(
        FlagEntry::from_flagd_document(
            "/app/secure",
            1,
            true,
            &json!({"flags": {"secure-split": document["flags"]["bool-split"].clone()}}),
            Bucketing::V3,
        )
        .expect("a flag document"),
    );
    let seed = |name: &str, value: &str| {
        FlagEntry::from_parameter(&Parameter {
            flag: name.to_owned(),
            name: format!("/app/flags/{name}"),
            kind: ParameterKind::String,
            value: value.to_owned(),
            version: 1,
        })
    };
    entries.push(seed(
        "new-checkout",
        r#"{"enabled": true, "rollout_percentage": 30, "experiment": true, "excluded_user_ids": ["banned"]}"#,
    ));
    entries.push(seed(
        "plain-rollout",
        r#"{"enabled": true, "rollout_percentage": 30}"#,
    ));
    Snapshot::new(1, Status::Ok, entries)
}

fn exposures(counts: &Counts, flag: &str) -> BTreeMap<String, u64> {
    counts
        .exposures
        .iter()
        .filter(|((f, _), _)| f == flag)
        .map(|((_, variant), n)| (variant.clone(), *n))
        .collect()
}

#[test]
fn every_read_with_a_context_counts_a_split_once_per_unit() {
    let s = snapshot();
    let scope = Scope::with_counting(true);
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    let mut seed_expected: BTreeMap<String, u64> = BTreeMap::new();
    scope.enter(|| {
        for i in 0..600 {
            let user = format!("user-{i}");
            let ctx = Context::user(&user);
            let flag = s.get("checkout-flow");
            // Every typed read counts, and only the first one per unit.
            let variant = flag.variant_for(&ctx).name.expect("a variant").into_owned();
            assert_eq!(flag.string_for(&ctx), Some(variant.as_str()));
            let _ = flag.resolve(&ctx, ValueType::String);
            let _ = flag.enabled_for(&ctx);
            *expected.entry(variant).or_default() += 1;
            let on = s.get("new-checkout").enabled_for(&ctx);
            let _ = s.get("new-checkout").evaluate(&ctx);
            *seed_expected
                .entry(if on { "on" } else { "off" }.to_owned())
                .or_default() += 1;
            let _ = s.get("bool-split").bool_for(&ctx);
            let _ = s.get("not-an-experiment").variant_for(&ctx);
            let _ = s.get("plain-rollout").enabled_for(&ctx);
            let _ = s.get("said-yes").variant_for(&ctx);
            let _ = s.get("secure-split").bool_for(&ctx);
        }
        // Not the split's: a targeting rule, no targeting key, an exclusion, explain.
        let staff = json!({"targetingKey": "staff-1", "tier": "staff"});
        let staff = staff.as_object().expect("an object");
        assert_eq!(
            s.get("checkout-flow")
                .string_for(&Context::new().with_fields(staff)),
            Some("express")
        );
        let _ = s.get("checkout-flow").variant_for(&Context::new());
        let _ = s.get("new-checkout").enabled_for(&Context::user("banned"));
        let _ = s.get("checkout-flow").explain(&Context::user("explained"));
        let _ = s.get("checkout-flow").enabled();
    });
    let counts = scope.take();
    assert_eq!(exposures(&counts, "checkout-flow"), expected);
    assert_eq!(expected.len(), 3, "all three variants drawn: {expected:?}");
    assert_eq!(exposures(&counts, "new-checkout"), seed_expected);
    let on = (0..600)
        .filter(|i| flags::bucket(&format!("user-{i}"), None) <= 30)
        .count() as u64;
    assert_eq!(
        seed_expected.get("on"),
        Some(&on),
        "the rollout's own buckets"
    );
    assert_eq!(exposures(&counts, "bool-split").values().sum::<u64>(), 600);
    for uncounted in [
        "not-an-experiment",
        "plain-rollout",
        "said-yes",
        "secure-split",
    ] {
        assert!(exposures(&counts, uncounted).is_empty(), "{uncounted}");
    }
    assert_eq!(counts.total_exposures(), 600 * 3);
}

#[test]
fn a_conversion_goes_to_the_variant_the_unit_saw_in_its_scope() {
    let s = snapshot();
    let scope = Scope::with_counting(true);
    let variant = scope.enter(|| {
        let ctx = Context::user("buyer");
        let variant = s.get("checkout-flow").string_for(&ctx).expect("a variant");
        let attributed = flags::track_value("checkout-completed", &ctx, 42.5).expect("tracked");
        assert_eq!(attributed.len(), 1, "{attributed:?}");
        assert_eq!(attributed[0].flag, "checkout-flow");
        assert_eq!(attributed[0].variant, variant);
        // A unit that saw no experiment here converts nothing.
        assert!(
            flags::track("checkout-completed", &Context::user("walk-in"))
                .expect("valid")
                .is_empty()
        );
        variant.to_owned()
    });
    let counts = scope.take();
    let series = &counts.conversions[&(
        "checkout-flow".to_owned(),
        variant,
        "checkout-completed".to_owned(),
    )];
    assert_eq!((series.count, series.values.as_slice()), (1, &[42.5][..]));
}

#[test]
fn concurrent_scopes_count_exactly_what_each_evaluated() {
    let s = snapshot();
    let per_thread = 2_000;
    let totals: Vec<Counts> = std::thread::scope(|threads| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let s = &s;
                threads.spawn(move || {
                    let mut merged = Counts::default();
                    // A scope per "invocation" of 100 units, all on this thread.
                    for batch in 0..per_thread / 100 {
                        let scope = Scope::with_counting(true);
                        scope.enter(|| {
                            for i in 0..100 {
                                let user = format!("t{t}-b{batch}-u{i}");
                                let ctx = Context::user(&user);
                                let _ = s.get("checkout-flow").string_for(&ctx);
                                let _ = s.get("checkout-flow").string_for(&ctx);
                            }
                        });
                        merged.merge(scope.take());
                    }
                    merged
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no panic"))
            .collect()
    });
    for counts in &totals {
        assert_eq!(counts.total_exposures(), per_thread as u64);
    }
}

#[test]
fn evaluations_outside_every_scope_count_process_wide_until_taken() {
    // The only test in this binary that evaluates outside a scope.
    let s = snapshot();
    let ctx = Context::user("spawned-task-user");
    let variant = s
        .get("checkout-flow")
        .string_for(&ctx)
        .expect("a variant")
        .to_owned();
    let _ = s.get("checkout-flow").string_for(&ctx);
    let attributed = flags::track("checkout-completed", &ctx).expect("valid");
    assert_eq!(attributed.len(), 1, "{attributed:?}");
    let counts = flags::experiment::take_process_wide();
    assert_eq!(
        exposures(&counts, "checkout-flow"),
        BTreeMap::from([(variant.clone(), 1)])
    );
    assert_eq!(counts.conversions.len(), 1);
    // Taken: the units are forgotten, the next read is an exposure again.
    let _ = s.get("checkout-flow").string_for(&ctx);
    let again = flags::experiment::take_process_wide();
    assert_eq!(
        exposures(&again, "checkout-flow"),
        BTreeMap::from([(variant, 1)])
    );
}

/// Tasks that move between a multi-threaded runtime's workers at every await: each scope counts
/// exactly its own units, whether a scope is a task's own (an invocation) or shared by many
/// tasks at once (the extension's).
#[test]
fn scopes_follow_their_tasks_across_worker_threads() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("a runtime");
    let s = std::sync::Arc::new(snapshot());
    runtime.block_on(async {
        let shared = std::sync::Arc::new(Scope::with_counting(true));
        let tasks: Vec<_> = (0..40)
            .map(|t| {
                let (s, shared) = (std::sync::Arc::clone(&s), std::sync::Arc::clone(&shared));
                tokio::spawn(async move {
                    let own = Scope::with_counting(true);
                    let work = |s: std::sync::Arc<Snapshot>, prefix: &'static str| async move {
                        for u in 0..20 {
                            let user = format!("{prefix}-{t}-{u}");
                            let _ = s.get("checkout-flow").string_for(&Context::user(&user));
                            tokio::task::yield_now().await;
                            let _ = s.get("checkout-flow").string_for(&Context::user(&user));
                            tokio::task::yield_now().await;
                        }
                    };
                    own.run(work(std::sync::Arc::clone(&s), "own")).await;
                    shared.run(work(s, "shared")).await;
                    own.take().total_exposures()
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.expect("no panic"), 20, "each task's own scope");
        }
        assert_eq!(shared.take().total_exposures(), 40 * 20, "the shared scope");
    });
}
