//! flagd conformance through the Rust API: every row of the OpenFeature testbed's evaluator
//! suite and of its provider targeting suite (`tests/flagd/*-cases.json`, each suite with its own
//! flag set), evaluated with `Snapshot::get(flag).resolve(&context, type)`. `@fractional-v1`
//! rows are skipped (a bucketing no evaluator uses any more); `@fractional-v2` rows run with v2
//! bucketing, `@fractional-v3` rows and untagged ones with v3 (the default), and rows that no
//! bucketing decides run under both.

use std::path::Path;

use flags::flagd::Bucketing;
use flags::{Context, FlagEntry, Snapshot, Status, ValueType};
use serde_json::{Map, Value};
use testkit::flagd::{self, Answer, Run};

/// One suite's flags as a snapshot with the given bucketing.
fn snapshot(flags_file: &str, bucketing: Bucketing) -> Snapshot {
    let document: Value = serde_json::from_str(&read(flags_file)).expect("flags file is JSON");
    let entries = FlagEntry::from_flagd_document(flags_file, 1, false, &document, bucketing)
        .expect("a flag document");
    Snapshot::new(1, Status::Ok, entries)
}

fn read(name: &str) -> String {
    let path = testkit::flagd::dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One row through the Rust API: `resolve(&context, type)`, the caller's default when it gives
/// no value.
fn answer(snapshot: &Snapshot, case: &Value) -> Answer {
    let (flag, kind, default) = flagd::asked(case);
    let wanted: ValueType = kind.parse().expect("a type");
    let fields = flagd::context(case);
    let got = snapshot
        .get(flag)
        .resolve(&Context::new().with_fields(&fields), wanted);
    Answer {
        value: got.value.as_deref().unwrap_or(default).clone(),
        variant: got.name.as_deref().map(str::to_owned),
        reason: got.reason.as_str().to_owned(),
        error_code: got.error.map(|e| e.as_str().to_owned()),
        metadata: got.metadata.as_deref().cloned().unwrap_or_default(),
    }
}

/// Runs a suite; returns the rows run per bucketing, and panics listing every failing row.
fn run_suite(cases_file: &str, flags_file: &str) -> [usize; 2] {
    let v3 = snapshot(flags_file, Bucketing::V3);
    let v2 = snapshot(flags_file, Bucketing::V2);
    let mut failures = Vec::new();
    let mut ran = [0, 0];
    for case in flagd::cases(cases_file) {
        for run in flagd::runs(&case) {
            let (snapshot, at) = match run {
                Run::V3 => (&v3, 0),
                Run::V2 => (&v2, 1),
            };
            ran[at] += 1;
            if let Err(why) = flagd::check(&case, &answer(snapshot, &case)) {
                failures.push(format!("[{run:?}] {why}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cases_file}'s rows fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
    ran
}

#[test]
fn the_testbeds_evaluator_suite_passes() {
    let [v3, v2] = run_suite("evaluator-cases.json", "evaluator-flags.json");
    // 140 rows: 15 @fractional-v1 skipped, 21 @fractional-v2 with v2, the rest with v3 (and the
    // rows no bucketing decides also with v2).
    assert_eq!(v3, 104, "rows run with v3");
    assert!(v2 >= 21, "rows run with v2: {v2}");
}

#[test]
fn the_testbeds_provider_targeting_suite_passes() {
    let [v3, v2] = run_suite("provider-cases.json", "provider-flags.json");
    assert!(v3 >= 132, "rows run with v3: {v3}");
    assert!(v2 >= 21, "rows run with v2: {v2}");
}

/// The README's three stories (`examples/flagd/stories.json`): tenant and semver targeting, a
/// sticky 33/33/34 split, a launch at a time in a time zone.
#[test]
fn the_readme_stories_evaluate_as_told() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/flagd/stories.json");
    let text = std::fs::read_to_string(&path).expect("the stories");
    let document: Value = serde_json::from_str(&text).expect("JSON");
    let entries =
        FlagEntry::from_flagd_document("stories.json", 1, false, &document, Bucketing::V3)
            .expect("a flag document");
    let snapshot = Snapshot::new(1, Status::Ok, entries);
    let fields = |json: Value| json.as_object().cloned().unwrap_or_default();

    let gold = fields(serde_json::json!({"tier": "gold", "app": {"version": "2.4.1"}}));
    let checkout = snapshot.get("checkout");
    let got = checkout.variant_for(&Context::user("tenant-9").with_fields(&gold));
    assert_eq!(got.name.as_deref(), Some("new"));
    assert_eq!(got.reason.as_str(), "TARGETING_MATCH");
    assert_eq!(
        got.metadata.as_deref().and_then(|m| m.get("team")),
        Some(&Value::from("checkout"))
    );

    // Gold on an older app, and everyone else: split 33/33/34, the same variant every time.
    let old_app = fields(serde_json::json!({"tier": "gold", "app": {"version": "2.2.9"}}));
    let mut counts = std::collections::HashMap::<String, u32>::new();
    for i in 0..30_000 {
        let user = format!("user-{i}");
        let attributes = if i % 2 == 0 {
            &old_app
        } else {
            &empty_fields()
        };
        let context = Context::user(&user).with_fields(attributes);
        let first = checkout.string_for(&context).expect("a string variant");
        assert_eq!(
            checkout.string_for(&context),
            Some(first),
            "sticky per user"
        );
        assert_eq!(checkout.variant_for(&context).reason.as_str(), "SPLIT");
        *counts.entry(first.to_owned()).or_default() += 1;
    }
    for (variant, share) in [("classic", 0.33), ("compact", 0.33), ("express", 0.34)] {
        let got = f64::from(counts[variant]) / 30_000.0;
        assert!(
            (got - share).abs() < 0.015,
            "{variant}: {got:.3} of users, not {share}"
        );
    }

    // The banner opens at Friday 2027-01-08 09:00 in Berlin: before then, off for everyone.
    let banner = snapshot.get("holiday-banner");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    assert_eq!(banner.enabled(), now >= 1_799_395_200);
    assert_eq!(
        banner.bool_for(&Context::user("u")),
        Some(now >= 1_799_395_200)
    );
}

fn empty_fields() -> Map<String, Value> {
    Map::new()
}
