//! A flag read in the handler vs its physical floor, measured in the same run.
//!
//! - `bool/*`: `flags::get` of a boolean flag vs a `HashMap<String, bool>` lookup of the same key,
//!   with both hashers: std's SipHash (`hashmap_floor`) and foldhash (`hashmap_foldhash_floor`),
//!   the snapshot index's own hasher — the faster, harder floor, which the headline ratio uses.
//!   `enabled()` answers from the thread's remembered answers, and so does `enabled_for` a user
//!   of a boolean flag (`flags_get_for_user`: every user gets the same answer); a 42-byte name,
//!   past the 32 bytes remembered (`flags_get_long_name`, against the floor for that name),
//!   shows the path underneath: the thread's view of the snapshot and its bucket memo.
//!   `*_five`: five names read in turn, as a handler reads its flags for one request.
//! - `rollout/*`: a JSON rollout flag evaluated for a user vs that lookup plus one md5 of the id.
//!
//! Flag names are literals, as in a handler; both sides still hash them at run time (seeded
//! hashers). User ids and regions come from requests, so they are opaque (`black_box`).
//!
//! `make bench` runs this and turns the medians into the ratios in `BENCHMARKS.md`.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use flags::{Context, FlagEntry, Parameter, ParameterKind, Snapshot, Status};
use md5::{Digest, Md5};

/// Five flags a handler might read for one request.
const FIVE: [&str; 5] = [
    "dark-mode",
    "new-checkout-flow",
    "new-analytics",
    "team/feature-1",
    "team/feature-7",
];

/// A long name: 42 bytes, past the 32 whose answers a thread remembers.
const LONG_NAME: &str = "platform/checkout/new-payment-processor-v2";

/// The seed's flags plus filler, so both sides search a map of realistic size.
fn parameters() -> Vec<(String, String)> {
    let mut params = vec![
        ("dark-mode".to_owned(), "true".to_owned()),
        (LONG_NAME.to_owned(), "true".to_owned()),
        (
            "new-analytics".to_owned(),
            r#"{"enabled": true, "rollout_percentage": 25, "allowed_regions": ["us-east-1", "us-west-2"], "excluded_user_ids": ["user-123", "user-456"]}"#.to_owned(),
        ),
        (
            "new-payment-processor".to_owned(),
            r#"{"enabled": true, "rollout_percentage": 50, "fallback_on_error": true}"#.to_owned(),
        ),
        (
            "new-checkout-flow".to_owned(),
            r#"{"enabled": true, "allowed_user_ids": ["user-1", "user-2"]}"#.to_owned(),
        ),
    ];
    params.extend((0..25).map(|i| (format!("team/feature-{i}"), "false".to_owned())));
    params
}

fn install() {
    let entries = parameters()
        .into_iter()
        .enumerate()
        .map(|(i, (name, raw))| {
            FlagEntry::from_parameter(&Parameter {
                name: format!("/myapp/prod/features/{name}"),
                flag: name,
                kind: ParameterKind::String,
                value: raw,
                version: i as u64 + 1,
            })
        });
    flags::install(Snapshot::new(1, Status::Ok, entries));
}

fn bucket_floor(user_id: &str) -> u8 {
    let digest: [u8; 16] = Md5::digest(user_id.as_bytes()).into();
    (u128::from_be_bytes(digest) % 100) as u8 + 1
}

fn bench_bool(c: &mut Criterion) {
    install();
    let floor: HashMap<String, bool> = parameters()
        .into_iter()
        .map(|(name, raw)| (name, raw == "true"))
        .collect();
    let fast_floor: HashMap<String, bool, foldhash::fast::RandomState> =
        floor.iter().map(|(k, v)| (k.clone(), *v)).collect();
    let mut group = c.benchmark_group("bool");
    group.bench_function("hashmap_floor", |b| {
        b.iter(|| floor.get("dark-mode").copied().unwrap_or(false))
    });
    group.bench_function("hashmap_foldhash_floor", |b| {
        b.iter(|| fast_floor.get("dark-mode").copied().unwrap_or(false))
    });
    group.bench_function("flags_get", |b| {
        b.iter(|| flags::get("dark-mode").enabled())
    });
    group.bench_function("flags_get_for_user", |b| {
        let user = Context::user(black_box("user-123"));
        b.iter(|| flags::get("dark-mode").enabled_for(&user))
    });
    // A handler reads several flags per request: five in turn, each side the same five names.
    group.bench_function("hashmap_foldhash_floor_five", |b| {
        b.iter(|| FIVE.map(|name| fast_floor.get(name).copied().unwrap_or(false)))
    });
    group.bench_function("flags_get_five", |b| {
        b.iter(|| FIVE.map(|name| flags::get(name).enabled()))
    });
    group.bench_function("hashmap_foldhash_floor_long_name", |b| {
        b.iter(|| fast_floor.get(LONG_NAME).copied().unwrap_or(false))
    });
    group.bench_function("flags_get_long_name", |b| {
        b.iter(|| flags::get(LONG_NAME).enabled())
    });
    let pinned = flags::pin();
    group.bench_function("pinned_get", |b| {
        b.iter(|| pinned.get("dark-mode").enabled())
    });
    group.finish();
}

fn bench_rollout(c: &mut Criterion) {
    install();
    let floor: HashMap<String, u8> = parameters()
        .into_iter()
        .map(|(name, _)| (name, 50))
        .collect();
    let mut group = c.benchmark_group("rollout");
    group.bench_function("hashmap_md5_floor", |b| {
        b.iter(|| {
            let percentage = floor.get("new-payment-processor").copied();
            percentage.is_some_and(|p| bucket_floor(black_box("user-123")) <= p)
        })
    });
    group.bench_function("flags_eval", |b| {
        b.iter(|| {
            flags::get("new-payment-processor").enabled_for(&Context::user(black_box("user-123")))
        })
    });
    group.bench_function("flags_eval_all_rules", |b| {
        b.iter(|| {
            flags::get("new-analytics").enabled_for(
                &Context::user(black_box("user-789")).with_region(black_box("us-east-1")),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench_bool, bench_rollout);
criterion_main!(benches);
