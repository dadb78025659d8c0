//! flagd flag definitions evaluated in the handler vs hand-written Rust doing the same work,
//! measured in the same run.
//!
//! - `flagd/fractional_*`: a 3-variant `fractional` (weights 33/33/34, sticky per user, v3
//!   bucketing) read with `snapshot.get(name).string_for(&user)`, vs one map lookup of the flag
//!   name, one murmur3 of the bytes v3 hashes (the CBOR array `[flagKey, targetingKey]`, laid
//!   out by hand in a stack buffer) and the scan of `(hash × 100) >> 32` against the cumulative
//!   weights.
//! - `flagd/rule_*`: `if` of an `and` of three conditions (`in` a list, `starts_with`,
//!   `sem_ver >=`) read with `snapshot.get(name).bool_for(&user)` on typed fields, vs one map
//!   lookup of the flag name and the same three comparisons written out on the same
//!   `serde_json::Map` (the version parsed into (major, minor, patch) and compared as a tuple).
//! - `flagd/get_enabled*`: `flags::get(name).enabled()` of an installed boolean flagd flag with
//!   no targeting, vs a `HashMap<String, bool>` lookup with foldhash (the floor
//!   `benches/lookup.rs` uses for `flags::get`; std's SipHash beside it for reference).
//!
//! Flag names are literals, as in a handler; user ids and fields come from requests, so they
//! are opaque (`black_box`). Every map on the floors' side uses foldhash, the snapshot index's
//! own hasher. `make bench` runs this and turns the medians into the ratios in `BENCHMARKS.md`.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use flags::flagd::Bucketing;
use flags::{Context, FlagEntry, Snapshot, Status};
use serde_json::{Map, Value, json};

type FoldMap<V> = HashMap<String, V, foldhash::fast::RandomState>;

const SPLIT: &str = "checkout-split";
const RULE: &str = "admin-console";
const TOGGLE: &str = "dark-mode";

/// The benchmark's flags and filler, so both sides search a map of realistic size.
fn document() -> Value {
    let mut flags = Map::new();
    flags.insert(
        SPLIT.into(),
        json!({"state": "ENABLED", "variants": {"a": "a", "b": "b", "c": "c"}, "defaultVariant": "a",
               "targeting": {"fractional": [["a", 33], ["b", 33], ["c", 34]]}}),
    );
    flags.insert(
        RULE.into(),
        json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
               "targeting": {"if": [{"and": [
                   {"in": [{"var": "tier"}, ["gold", "platinum"]]},
                   {"starts_with": [{"var": "email"}, "admin"]},
                   {"sem_ver": [{"var": "app.version"}, ">=", "2.3.0"]}
               ]}, "on", "off"]}}),
    );
    flags.insert(
        TOGGLE.into(),
        json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}),
    );
    for i in 0..27 {
        flags.insert(
            format!("team/feature-{i}"),
            json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}),
        );
    }
    json!({ "flags": flags })
}

fn snapshot() -> Snapshot {
    let entries = FlagEntry::from_flagd_document("bench", 1, false, &document(), Bucketing::V3)
        .expect("a flag document");
    Snapshot::new(1, Status::Ok, entries)
}

/// The request's typed fields the rule reads.
fn fields() -> Map<String, Value> {
    match json!({"tier": "gold", "email": "admin@example.com", "app": {"version": "2.4.1"}}) {
        Value::Object(map) => map,
        _ => unreachable!("an object literal"),
    }
}

/// The filler names, for the floors' maps.
fn names() -> Vec<String> {
    let mut names: Vec<String> = (0..27).map(|i| format!("team/feature-{i}")).collect();
    names.extend([SPLIT, RULE, TOGGLE].map(str::to_owned));
    names
}

/// murmur3 x86_32, seed 0: the same function the engine hashes with, so the ratio measures
/// everything else.
fn murmur3(bytes: &[u8]) -> Option<u32> {
    Some(flags::flagd::murmur3(bytes))
}

/// The floor's fractional: variants with their weights, in order.
struct Split {
    buckets: [(&'static str, u64); 3],
}

/// The floor's fractional, by hand: the CBOR array `[flagKey, targetingKey]` (both short text
/// strings) in a stack buffer, its murmur3, and the weight scan.
fn split_floor(split: &Split, flag_key: &str, targeting_key: &str) -> Option<&'static str> {
    let mut buf = [0u8; 64];
    let (flag, key) = (flag_key.as_bytes(), targeting_key.as_bytes());
    let len = 3 + flag.len() + key.len();
    if flag.len() > 23 || key.len() > 23 {
        return None; // not a short CBOR string: out of this floor's scope
    }
    buf[0] = 0x82;
    buf[1] = 0x60 + flag.len() as u8;
    buf[2..2 + flag.len()].copy_from_slice(flag);
    buf[2 + flag.len()] = 0x60 + key.len() as u8;
    buf[3 + flag.len()..len].copy_from_slice(key);
    let hash = murmur3(&buf[..len])?;
    let point = (u64::from(hash) * 100) >> 32;
    let mut cumulative = 0;
    for (variant, weight) in split.buckets {
        cumulative += weight;
        if point < cumulative {
            return Some(variant);
        }
    }
    None
}

/// The floor's rule: the tiers, the email prefix and the least version.
struct Rule {
    tiers: [&'static str; 2],
    prefix: &'static str,
    least: (u64, u64, u64),
}

/// `major.minor.patch`, each a number.
fn version(text: &str) -> Option<(u64, u64, u64)> {
    let mut parts = text.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((major, minor, patch))
}

/// The floor's rule, by hand: the three comparisons, in order, each only if the last held.
fn rule_floor(rule: &Rule, fields: &Map<String, Value>) -> bool {
    let text = |key: &str| fields.get(key).and_then(Value::as_str);
    text("tier").is_some_and(|tier| rule.tiers.contains(&tier))
        && text("email").is_some_and(|email| email.starts_with(rule.prefix))
        && fields
            .get("app")
            .and_then(|app| app.get("version"))
            .and_then(Value::as_str)
            .and_then(version)
            .is_some_and(|v| v >= rule.least)
}

fn bench_fractional(c: &mut Criterion) {
    let snapshot = snapshot();
    let floor: FoldMap<Split> = names()
        .into_iter()
        .map(|name| {
            let buckets = [("a", 33), ("b", 33), ("c", 34)];
            (name, Split { buckets })
        })
        .collect();
    // Both sides agree before either is timed.
    for user in ["user-123", "user-456", "user-789", "u"] {
        assert_eq!(
            snapshot.get(SPLIT).string_for(&Context::user(user)),
            floor.get(SPLIT).and_then(|s| split_floor(s, SPLIT, user)),
            "{user}"
        );
    }
    let mut group = c.benchmark_group("flagd");
    group.bench_function("fractional_floor", |b| {
        b.iter(|| {
            floor
                .get(SPLIT)
                .and_then(|split| split_floor(split, SPLIT, black_box("user-123")))
        })
    });
    group.bench_function("fractional_string_for", |b| {
        b.iter(|| {
            snapshot
                .get(SPLIT)
                .string_for(&Context::user(black_box("user-123")))
        })
    });
    group.finish();
}

fn bench_rule(c: &mut Criterion) {
    let snapshot = snapshot();
    let fields = fields();
    let floor: FoldMap<Rule> = names()
        .into_iter()
        .map(|name| {
            let rule = Rule {
                tiers: ["gold", "platinum"],
                prefix: "admin",
                least: (2, 3, 0),
            };
            (name, rule)
        })
        .collect();
    let user = Context::user("user-123").with_fields(&fields);
    assert_eq!(snapshot.get(RULE).bool_for(&user), Some(true));
    assert!(
        floor
            .get(RULE)
            .is_some_and(|rule| rule_floor(rule, &fields))
    );
    let mut group = c.benchmark_group("flagd");
    group.bench_function("rule_floor", |b| {
        b.iter(|| {
            floor
                .get(RULE)
                .map(|rule| rule_floor(rule, black_box(&fields)))
        })
    });
    group.bench_function("rule_bool_for", |b| {
        b.iter(|| {
            let user = Context::user(black_box("user-123")).with_fields(black_box(&fields));
            snapshot.get(RULE).bool_for(&user)
        })
    });
    group.finish();
}

fn bench_enabled(c: &mut Criterion) {
    flags::install(snapshot());
    let floor: HashMap<String, bool> = names()
        .into_iter()
        .map(|name| {
            let on = name == TOGGLE;
            (name, on)
        })
        .collect();
    let fast_floor: FoldMap<bool> = floor.iter().map(|(k, v)| (k.clone(), *v)).collect();
    assert!(flags::get(TOGGLE).enabled());
    let mut group = c.benchmark_group("flagd");
    group.bench_function("hashmap_floor", |b| {
        b.iter(|| floor.get(TOGGLE).copied().unwrap_or(false))
    });
    group.bench_function("hashmap_foldhash_floor", |b| {
        b.iter(|| fast_floor.get(TOGGLE).copied().unwrap_or(false))
    });
    group.bench_function("get_enabled", |b| b.iter(|| flags::get(TOGGLE).enabled()));
    group.finish();
}

criterion_group!(benches, bench_fractional, bench_rule, bench_enabled);
criterion_main!(benches);
