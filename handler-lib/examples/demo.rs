//! A tour of the `flags` library on the seed article's flags, embedded: no AWS, no extension.
//!
//! Run: `cargo run -p ssm-flags --example demo`.

use flags::wire::SnapshotDoc;
use flags::{Context, FlagEntry, Parameter, ParameterKind, Snapshot, Status};

const SEED: &[u8] = include_bytes!("seed-flags.json");
const USERS: [(&str, &str); 5] = [
    ("alice", "us-east-1"),
    ("bob", "us-west-2"),
    ("user-123", "us-east-1"),
    ("carol", "eu-west-1"),
    ("dave", "us-east-1"),
];
const FLAGS: [&str; 5] = [
    "dark-mode",
    "new-analytics",
    "new-checkout-flow",
    "new-payment-processor",
    "checkout/max-items",
];

fn table() {
    for (user, region) in USERS {
        let context = Context::user(user).with_region(region);
        println!("  {user} ({region}), bucket {}:", flags::bucket(user, None));
        for name in FLAGS {
            let e = flags::get(name).evaluate(&context);
            let mark = if e.enabled { "on " } else { "off" };
            println!("    {mark} {name:<22} {e}");
        }
    }
}

fn main() -> Result<(), flags::LoadError> {
    let snapshot = SnapshotDoc::from_slice(SEED, "seed-flags.json")?.into_snapshot();
    println!(
        "Loaded {} flags (snapshot version {}).",
        snapshot.len(),
        snapshot.version()
    );
    for entry in snapshot.entries() {
        if let Err(error) = entry.value() {
            println!("  invalid, served as its default: {error}");
        }
    }
    flags::install(snapshot);
    println!("\nWho sees what:");
    table();

    // An operator runs: aws ssm put-parameter --overwrite --name .../new-payment-processor
    //   --value '{"enabled": true, "rollout_percentage": 50, "fallback_on_error": true}'
    let current = flags::pin();
    let raw = r#"{"enabled": true, "rollout_percentage": 50, "fallback_on_error": true}"#;
    let entries = current
        .entries()
        .filter(|e| e.name() != "new-payment-processor")
        .cloned()
        .chain([FlagEntry::from_parameter(&Parameter {
            flag: "new-payment-processor".to_owned(),
            name: "/myapp/dev/features/new-payment-processor".to_owned(),
            kind: ParameterKind::String,
            value: raw.to_owned(),
            version: 3,
        })]);
    flags::install(Snapshot::new(current.version() + 1, Status::Ok, entries));
    println!(
        "\nnew-payment-processor: 5% -> 50% (snapshot version {}):",
        flags::version()
    );
    for (user, _) in USERS {
        let was = current
            .get("new-payment-processor")
            .enabled_for(&Context::user(user));
        let now = flags::get("new-payment-processor").enabled_for(&Context::user(user));
        let change = if was == now { "" } else { "  <- changed" };
        println!("  {user:<9} {was:>5} -> {now:<5}{change}");
    }
    Ok(())
}
