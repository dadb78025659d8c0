//! The Powertools example pair, end to end: one AppConfig profile (the `testkit` stand-in)
//! holds `examples/powertools/features.json`; the Rust handler `powertools-catalogue` reads it
//! through the real extension (`SSM_FLAGS_APPCONFIG=…#powertools`) and `flags`, the Python
//! handler `examples/powertools/python/app.py` through Powertools' own `AppConfigStore` and
//! `FeatureFlags` (aws-lambda-powertools 3.37.0, boto3 against the same stand-in), each under
//! the Lambda emulator (the Python one behind a stdlib Runtime API loop). The same events —
//! tiers, tenants, customer numbers (negative, fractional, boolean, beyond `i64`), storefronts,
//! baskets, missing keys, mistyped values, lists — go to both, and the answers must be identical;
//! a few are checked by hand.
//!
//! Two features read the clock (a time range in Berlin, weekdays in New York): both functions
//! read it within milliseconds of each other, and an event whose two invocations straddle one
//! of their boundaries is sent again.
//!
//! Needs the workspace's binaries (`cargo build --workspace --bins`) and `.venv` (`make venv`).

use std::time::{Duration, Instant};

use flags::{Context, FlagEntry, Snapshot, Status};
use lambda_simulator::FreezeMode;
use serde_json::{Map, Value, json};
use testkit::appconfig::{AppConfigData, profile_key};
use testkit::lambda::{Function, aws_env};
use testkit::runtime::CommandFunction;
use testkit::{process, workspace};

const APPLICATION: &str = "catalogue";
const ENVIRONMENT: &str = "prod";
const PROFILE: &str = "features";

/// The features both handlers answer, in their order.
const FEATURES: [&str; 5] = [
    "premium_features",
    "ten_percent_off_campaign",
    "checkout_banner",
    "night_maintenance",
    "weekend_specials",
];

fn document() -> String {
    std::fs::read_to_string(workspace().join("examples/powertools/features.json"))
        .expect("examples/powertools/features.json")
}

/// The contexts sent: each key's interesting values alone, then mixed.
fn events() -> Vec<Value> {
    let mut events = vec![
        // No context at all, a null one, an empty one.
        json!({}),
        json!({"context": null}),
        json!({"context": {}}),
    ];
    let single: [(&str, Vec<Value>); 7] = [
        (
            "tier",
            vec![
                json!("premium"),
                json!("Premium"),
                json!("premium "),
                json!("standard"),
                json!(""),
                json!(1),
                json!(null),
                json!(["premium"]),
                json!({"name": "premium"}),
            ],
        ),
        (
            "tenant_id",
            vec![
                json!("acme-corp"),
                json!("globex"),
                json!("ACME-CORP"),
                json!("acme-corp\u{0}"),
                json!("acme"),
                json!(["acme-corp"]),
                json!(null),
                json!(42),
            ],
        ),
        (
            "customer_number",
            vec![
                json!(0),
                json!(9),
                json!(10),
                json!(1005),
                json!(1042),
                json!(-3),
                json!(-95),
                json!(-100),
                json!(-101),
                json!(7.5),
                json!(9.5),
                json!(-0.5),
                json!(true),
                json!(false),
                json!("7"),
                json!("%d"),
                json!(null),
                json!([7]),
                json!({"n": 7}),
                json!(u64::MAX - 10),
                json!(u64::MAX),
                json!(i64::MIN),
                json!(1e300),
                json!(1e20),
                json!(-1e-300),
                json!(5e-324),
                json!(-0.0),
                json!(12_345_678_901_234_567_u64),
            ],
        ),
        (
            "storefront",
            vec![
                json!("eu-de"),
                json!("eu-ß"),
                json!("eu\u{2010}de"),
                json!("eu-"),
                json!("EU-de"),
                json!("eu"),
                json!("us-east"),
                json!(42),
                json!(["eu-fr"]),
                json!(null),
            ],
        ),
        (
            "basket_total",
            vec![
                json!(150),
                json!(100),
                json!(100.01),
                json!(100.0),
                json!(99.99),
                json!(1e3),
                json!(1e308),
                json!(-5),
                json!("150"),
                json!(true),
                json!(null),
                json!([200]),
            ],
        ),
        (
            "basket_categories",
            vec![
                json!(["books"]),
                json!(["garden", "toys"]),
                json!([]),
                json!("toys"),
                json!(["Toys"]),
                json!([["toys"]]),
                json!([1, "jewellery"]),
                json!([true, null]),
                json!({"toys": 1}),
                json!(null),
            ],
        ),
        (
            "loyalty_member",
            vec![
                json!(true),
                json!(false),
                json!(1),
                json!(0),
                json!(1.0),
                json!("true"),
                json!([true]),
                json!(null),
            ],
        ),
    ];
    for (key, values) in &single {
        for value in values {
            events.push(json!({"context": {*key: value}}));
        }
    }
    // Mixed: every key at once, each value taken in turn (lengths differ, so the combinations
    // vary), some keys left out.
    for i in 0..30usize {
        let mut context = Map::new();
        for (k, (key, values)) in single.iter().enumerate() {
            if (i + k) % 4 == 3 {
                continue;
            }
            context.insert(
                (*key).to_owned(),
                values[(i * (k + 1)) % values.len()].clone(),
            );
        }
        events.push(json!({"context": context}));
    }
    events.extend([
        json!({"context": {"storefront": "eu-fr", "basket_total": 500}}),
        json!({"context": {"basket_total": 150, "basket_categories": ["toys"]}}),
        json!({"context": {"tier": "standard", "tenant_id": "initech", "customer_number": 2009}}),
        json!({"context": {"targetingKey": "user-7", "tier": "premium",
                           "customer_number": 4, "loyalty_member": true}}),
    ]);
    events
}

/// What the clock-reading features answer now, read through `flags` from the same document:
/// an event is compared only when this is the same before and after its two invocations.
fn clock_state(snapshot: &Snapshot) -> (bool, bool) {
    let member: Map<String, Value> = [("loyalty_member".to_owned(), json!(true))]
        .into_iter()
        .collect();
    let ctx = Context::new().with_fields(&member);
    (
        snapshot.get("night_maintenance").enabled_for(&ctx),
        snapshot.get("weekend_specials").enabled_for(&ctx),
    )
}

/// The answer for each feature `flags` gives when the document is read locally (what the Rust
/// handler must answer if the extension carried the document intact).
fn local_answers(snapshot: &Snapshot, event: &Value) -> Value {
    let fields = event["context"].as_object().cloned().unwrap_or_default();
    let ctx = Context::new().with_fields(&fields);
    let features: Map<String, Value> = FEATURES
        .iter()
        .map(|&name| {
            let flag = snapshot.get(name);
            let answer = if name == "checkout_banner" {
                flag.variant_for(&ctx)
                    .value
                    .map_or(Value::Null, |v| v.into_owned())
            } else {
                Value::Bool(flag.enabled_for(&ctx))
            };
            (name.to_owned(), answer)
        })
        .collect();
    json!({ "features": features })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_and_rust_examples_answer_alike() {
    let started = Instant::now();
    let document = document();
    let snapshot = Snapshot::new(
        1,
        Status::Ok,
        FlagEntry::from_powertools_document("features.json", 1, false, &document, None)
            .expect("a Powertools document"),
    );
    assert!(
        FEATURES
            .iter()
            .all(|name| snapshot.get(name).error().is_none() && snapshot.get(name).is_known()),
        "every feature of features.json loads"
    );
    let standin = AppConfigData::start().await;
    standin.deploy(
        &profile_key(APPLICATION, ENVIRONMENT, PROFILE),
        &document,
        "application/json",
        Some("v1"),
    );
    let endpoint = standin.endpoint();

    let source = format!("{APPLICATION}/{ENVIRONMENT}/{PROFILE}#powertools");
    let rust = Function::start_runtime(
        0,
        "",
        3600,
        FreezeMode::None,
        &[
            ("SSM_FLAGS_PATH", ""),
            ("SSM_FLAGS_APPCONFIG", source.as_str()),
            ("AWS_ENDPOINT_URL_APPCONFIGDATA", endpoint.as_str()),
        ],
        "powertools-catalogue",
    )
    .await;

    let bootstrap = workspace().join("examples/python-runtime/bootstrap.py");
    let task_root = workspace().join("examples/powertools/python");
    let task_root = task_root.to_str().expect("a UTF-8 path");
    let mut env: Vec<(String, String)> = aws_env(standin.port);
    env.extend(
        [
            ("AWS_ENDPOINT_URL_APPCONFIGDATA", endpoint.as_str()),
            // Nothing of a developer's own AWS configuration.
            ("AWS_CONFIG_FILE", "/dev/null"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
            ("APPCONFIG_APPLICATION", APPLICATION),
            ("APPCONFIG_ENVIRONMENT", ENVIRONMENT),
            ("APPCONFIG_PROFILE", PROFILE),
            ("FEATURES_MAX_AGE_SECONDS", "300"),
            ("_HANDLER", "app.handler"),
            ("LAMBDA_TASK_ROOT", task_root),
            // No __pycache__ in the examples' directory.
            ("PYTHONDONTWRITEBYTECODE", "1"),
            ("PYTHONUNBUFFERED", "1"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let python = CommandFunction::start(
        &process::python(),
        &[bootstrap.to_str().expect("a UTF-8 path")],
        &env,
    )
    .await;
    // The first invocation of each loads its libraries and the document (compared below).
    tokio::join!(
        rust.invoke(json!({"context": {}})),
        python.invoke(json!({"context": {}}))
    );
    let ready = started.elapsed();

    let events = events();
    assert!(events.len() >= 50, "{} events", events.len());
    let (mut differences, mut retried) = (Vec::new(), 0);
    let mut answers = Vec::with_capacity(events.len());
    let compared = Instant::now();
    for event in &events {
        let (ours, theirs) = loop {
            let before = clock_state(&snapshot);
            let (ours, theirs) =
                tokio::join!(rust.invoke(event.clone()), python.invoke(event.clone()));
            if clock_state(&snapshot) == before {
                break (ours, theirs);
            }
            retried += 1;
            assert!(retried < 5, "the clock keeps crossing a boundary");
        };
        if ours != theirs {
            differences.push(format!(
                "event {event}:\n  Rust   {ours}\n  Python {theirs}"
            ));
        }
        let local = local_answers(&snapshot, event);
        if ours != local {
            differences.push(format!(
                "event {event}: the Rust handler {ours}, `flags` on the document read locally {local}"
            ));
        }
        answers.push((event.clone(), ours));
    }
    let compared = compared.elapsed();
    assert!(
        differences.is_empty(),
        "{} differences:\n{}\nPython's log:\n{}",
        differences.len(),
        differences.join("\n"),
        python.runtime.log()
    );

    // By hand: what the document's rules say.
    let answer = |context: Value| {
        let event = json!({ "context": context });
        answers
            .iter()
            .find(|(e, _)| *e == event)
            .map(|(_, a)| a["features"].clone())
            .unwrap_or_else(|| panic!("{event} was sent"))
    };
    let default_banner = json!({"message": "Free delivery on orders over $50", "style": "info"});
    let eu_banner =
        json!({"message": "Free returns within 30 days", "style": "info", "locale": "eu"});
    let big_basket = json!({"message": "Your order ships express, free", "style": "success"});
    for (context, feature, expected) in [
        (json!({}), "premium_features", json!(false)),
        (json!({}), "checkout_banner", default_banner.clone()),
        (json!({}), "weekend_specials", json!(false)),
        (json!({"tier": "premium"}), "premium_features", json!(true)),
        (json!({"tier": "Premium"}), "premium_features", json!(false)),
        (
            json!({"tier": ["premium"]}),
            "premium_features",
            json!(false),
        ),
        (
            json!({"tenant_id": "globex"}),
            "premium_features",
            json!(true),
        ),
        (
            json!({"tenant_id": ["acme-corp"]}),
            "premium_features",
            json!(false),
        ),
        (
            json!({"customer_number": 1005}),
            "ten_percent_off_campaign",
            json!(true),
        ),
        (
            json!({"customer_number": 1042}),
            "ten_percent_off_campaign",
            json!(false),
        ),
        // Python's modulo takes the divisor's sign: -95 % 100 == 5, -3 % 100 == 97.
        (
            json!({"customer_number": -95}),
            "ten_percent_off_campaign",
            json!(true),
        ),
        (
            json!({"customer_number": -3}),
            "ten_percent_off_campaign",
            json!(false),
        ),
        (
            json!({"customer_number": 7.5}),
            "ten_percent_off_campaign",
            json!(true),
        ),
        (
            json!({"customer_number": true}),
            "ten_percent_off_campaign",
            json!(true),
        ),
        (
            json!({"customer_number": "7"}),
            "ten_percent_off_campaign",
            json!(false),
        ),
        (
            json!({"customer_number": u64::MAX - 10}),
            "ten_percent_off_campaign",
            json!(true),
        ),
        (
            json!({"storefront": "eu-de"}),
            "checkout_banner",
            eu_banner.clone(),
        ),
        (
            json!({"storefront": "EU-de"}),
            "checkout_banner",
            default_banner.clone(),
        ),
        (
            json!({"basket_total": 100.01}),
            "checkout_banner",
            big_basket.clone(),
        ),
        (
            json!({"basket_total": 100}),
            "checkout_banner",
            default_banner.clone(),
        ),
        (
            json!({"basket_total": "150"}),
            "checkout_banner",
            default_banner.clone(),
        ),
        (
            json!({"basket_categories": ["garden", "toys"]}),
            "checkout_banner",
            json!("gift-wrap-offer"),
        ),
        (
            json!({"basket_categories": "toys"}),
            "checkout_banner",
            default_banner.clone(),
        ),
        (
            json!({"loyalty_member": false}),
            "weekend_specials",
            json!(false),
        ),
    ] {
        let features = answer(context.clone());
        assert_eq!(features[feature], expected, "{feature} for {context}");
    }
    // Rules apply in document order: an EU storefront's big basket gets the EU banner, a big
    // basket of toys the express shipping.
    let eu_big = answer(json!({"storefront": "eu-fr", "basket_total": 500}));
    assert_eq!(eu_big["checkout_banner"], eu_banner);
    let big_toys = answer(json!({"basket_total": 150, "basket_categories": ["toys"]}));
    assert_eq!(big_toys["checkout_banner"], big_basket);
    let partner =
        answer(json!({"tier": "standard", "tenant_id": "initech", "customer_number": 2009}));
    assert_eq!(
        (
            &partner["premium_features"],
            &partner["ten_percent_off_campaign"]
        ),
        (&json!(true), &json!(true)),
        "{partner}"
    );

    let per_event = compared / events.len() as u32;
    println!(
        "{} events, identical answers from Python (Powertools 3.37.0) and Rust (flags); both ready in {ready:?}, {per_event:?} per event (both invocations), {retried} sent again at a clock boundary, {:?} in all",
        events.len(),
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}
