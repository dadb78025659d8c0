//! Powertools features evaluated in the handler vs hand-written Rust doing the same work,
//! measured in the same run.
//!
//! - `powertools/rule_*`: a boolean feature whose one rule has three conditions (`EQUALS` a
//!   tier, `STARTSWITH` an email prefix, `KEY_GREATER_THAN_OR_EQUAL_VALUE` a seat count) read
//!   with `snapshot.get(name).bool_for(&ctx)` on typed fields, vs one map lookup of the feature
//!   name and the same three comparisons written out on the same `serde_json::Map` (a number
//!   compared as `f64`, which is all the hand-written side needs for this context).
//! - `powertools/schedule_*`: a feature whose rule is a `SCHEDULE_BETWEEN_TIME_RANGE` in a
//!   named zone (Europe/Berlin), vs reading the clock and converting it to the zone's wall time
//!   with `jiff` by hand (the zone resolved once, outside the loop) and comparing minutes.
//!
//! The goal (issue 26): the three-condition feature within 3× its floor; a schedule condition
//! costs no allocation (`tests/flagd_alloc.rs` counts). Feature names are literals, contexts
//! opaque (`black_box`); every map on the floors' side uses foldhash, the snapshot index's own
//! hasher. `make bench` runs this and turns the medians into the ratios in `BENCHMARKS.md`.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use flags::{Context, FlagEntry, Snapshot, Status};
use serde_json::{Map, Value, json};

type FoldMap<V> = HashMap<String, V, foldhash::fast::RandomState>;

const RULE: &str = "admin_console";
const SCHEDULE: &str = "office_hours";

/// The benchmark's features and filler, so both sides search a map of realistic size.
fn document() -> String {
    let mut features = vec![
        format!(
            r#""{RULE}": {{"default": false, "rules": {{"admins with seats": {{"when_match": true, "conditions": [
                {{"action": "EQUALS", "key": "tier", "value": "gold"}},
                {{"action": "STARTSWITH", "key": "email", "value": "admin"}},
                {{"action": "KEY_GREATER_THAN_OR_EQUAL_VALUE", "key": "seats", "value": 10}}]}}}}}}"#
        ),
        format!(
            r#""{SCHEDULE}": {{"default": false, "rules": {{"all day": {{"when_match": true, "conditions": [
                {{"action": "SCHEDULE_BETWEEN_TIME_RANGE", "key": "CURRENT_TIME",
                  "value": {{"START": "00:00", "END": "23:59", "TIMEZONE": "Europe/Berlin"}}}}]}}}}}}"#
        ),
    ];
    for i in 0..28 {
        features.push(format!(r#""team_feature_{i}": {{"default": false}}"#));
    }
    format!("{{{}}}", features.join(","))
}

fn snapshot() -> Snapshot {
    let entries = FlagEntry::from_powertools_document("bench", 1, false, &document(), None)
        .expect("a Powertools document");
    assert!(entries.iter().all(|e| e.value().is_ok()));
    Snapshot::new(1, Status::Ok, entries)
}

/// The request's typed fields the rule reads.
fn fields() -> Map<String, Value> {
    match json!({"tier": "gold", "email": "admin@example.com", "seats": 12}) {
        Value::Object(map) => map,
        _ => unreachable!("an object literal"),
    }
}

fn names() -> Vec<String> {
    let mut names: Vec<String> = (0..28).map(|i| format!("team_feature_{i}")).collect();
    names.extend([RULE, SCHEDULE].map(str::to_owned));
    names
}

/// The floor's rule: the tier, the email prefix and the least seat count.
struct Rule {
    tier: &'static str,
    prefix: &'static str,
    seats: f64,
}

/// The floor's rule, by hand: the three comparisons, in order, each only if the last held.
fn rule_floor(rule: &Rule, fields: &Map<String, Value>) -> bool {
    let text = |key: &str| fields.get(key).and_then(Value::as_str);
    text("tier") == Some(rule.tier)
        && text("email").is_some_and(|email| email.starts_with(rule.prefix))
        && fields
            .get("seats")
            .and_then(Value::as_f64)
            .is_some_and(|seats| seats >= rule.seats)
}

/// The floor's schedule: the zone and the minutes of the day it covers.
struct Window {
    zone: jiff::tz::TimeZone,
    start: i32,
    end: i32,
}

fn window_floor(window: &Window) -> bool {
    let now = window.zone.to_datetime(jiff::Timestamp::now());
    let minute = i32::from(now.hour()) * 60 + i32::from(now.minute());
    window.start <= minute && minute <= window.end
}

fn bench_rule(c: &mut Criterion) {
    let snapshot = snapshot();
    let fields = fields();
    let floor: FoldMap<Rule> = names()
        .into_iter()
        .map(|name| {
            let rule = Rule {
                tier: "gold",
                prefix: "admin",
                seats: 10.0,
            };
            (name, rule)
        })
        .collect();
    let context = Context::new().with_fields(&fields);
    assert_eq!(
        snapshot.get(RULE).bool_for(&context),
        floor.get(RULE).map(|rule| rule_floor(rule, &fields))
    );
    let mut group = c.benchmark_group("powertools");
    group.bench_function("rule_floor", |b| {
        b.iter(|| {
            floor
                .get(RULE)
                .map(|rule| rule_floor(rule, black_box(&fields)))
        })
    });
    group.bench_function("rule_bool_for", |b| {
        b.iter(|| {
            snapshot
                .get(RULE)
                .bool_for(&Context::new().with_fields(black_box(&fields)))
        })
    });
    group.finish();
}

fn bench_schedule(c: &mut Criterion) {
    let snapshot = snapshot();
    let zone = jiff::tz::TimeZone::get("Europe/Berlin").expect("zone");
    let floor: FoldMap<Window> = names()
        .into_iter()
        .map(|name| {
            let window = Window {
                zone: zone.clone(),
                start: 0,
                end: 23 * 60 + 59,
            };
            (name, window)
        })
        .collect();
    let empty = Map::new();
    assert_eq!(
        snapshot
            .get(SCHEDULE)
            .bool_for(&Context::new().with_fields(&empty)),
        Some(true)
    );
    let mut group = c.benchmark_group("powertools");
    group.bench_function("schedule_floor", |b| {
        b.iter(|| floor.get(SCHEDULE).map(window_floor))
    });
    group.bench_function("schedule_bool_for", |b| {
        b.iter(|| {
            snapshot
                .get(SCHEDULE)
                .bool_for(&Context::new().with_fields(black_box(&empty)))
        })
    });
    group.finish();
}

criterion_group!(benches, bench_rule, bench_schedule);
criterion_main!(benches);
