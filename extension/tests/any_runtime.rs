//! "Any runtime": a Python and a Node.js function (`examples/python-function`,
//! `examples/node-function`) read the flags through the layer with OpenFeature's published SDKs
//! and OFREP providers, each under the Lambda emulator with the real extension beside it, and
//! answer what the Rust `flag-check` function answers from the same flags in moto's SSM, for the
//! same users and regions.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::{Moto, PATH, ssm_client};
use lambda_simulator::FreezeMode;
use serde_json::{Value, json};
use testkit::{process, workspace};

/// The flags every function is asked for (names OFREP carries in a path as they are).
const FLAGS: [&str; 6] = [
    "dark-mode",
    "new-analytics",
    "new-checkout-flow",
    "new-payment-processor",
    "partner-api",
    "broken",
];

fn events() -> Vec<Value> {
    let mut users: Vec<String> = ["alice", "bob", "user-123", "user-456", "user-789"]
        .map(str::to_owned)
        .to_vec();
    users.extend((0..20).map(|i| format!("customer-{i}")));
    users
        .iter()
        .enumerate()
        .map(|(i, user)| {
            let region = ["us-east-1", "eu-west-1", "us-west-2"][i % 3];
            json!({"user_id": user, "region": region, "flags": FLAGS})
        })
        .collect()
}

/// A function's answer as flag → value.
fn values(answer: &Value, shape: &str) -> BTreeMap<String, Value> {
    answer["flags"]
        .as_object()
        .unwrap_or_else(|| panic!("{shape}: no flags in {answer}"))
        .iter()
        .map(|(name, v)| {
            let value = if v.is_object() {
                v["value"].clone()
            } else {
                v.clone()
            };
            (name.clone(), value)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_node_functions_read_the_layer_over_ofrep_as_rust_does() {
    let node_modules = workspace().join("examples/node-function/node_modules/@openfeature");
    assert!(
        node_modules.exists(),
        "{} not found: run `make node` (or `make test`)",
        node_modules.display()
    );
    let moto = Moto::start().await;
    let ssm = ssm_client(moto.port);
    common::seed(&ssm).await;
    let rust = common::start(moto.port, 60, FreezeMode::None).await;

    let python_root = workspace().join("examples/python-function");
    let python_root = python_root.to_str().expect("a UTF-8 path");
    let bootstrap = workspace().join("examples/python-runtime/bootstrap.py");
    let python = testkit::lambda::Function::start_program(
        moto.port,
        PATH,
        60,
        FreezeMode::None,
        &[
            ("LAMBDA_TASK_ROOT", python_root),
            ("_HANDLER", "app.handler"),
            ("PYTHONDONTWRITEBYTECODE", "1"),
        ],
        &process::python(),
        &[bootstrap.to_str().expect("a UTF-8 path")],
    )
    .await;

    let node_bootstrap: PathBuf = workspace().join("examples/node-function/bootstrap.mjs");
    let node = testkit::lambda::Function::start_program(
        moto.port,
        PATH,
        60,
        FreezeMode::None,
        &[],
        std::path::Path::new("node"),
        &[node_bootstrap.to_str().expect("a UTF-8 path")],
    )
    .await;

    let mut compared = 0;
    for event in events() {
        let expected = values(&rust.invoke(event.clone()).await, "rust");
        for (name, function) in [("python", &python), ("node", &node)] {
            let answer = function.invoke(event.clone()).await;
            assert_eq!(answer["runtime"], name, "{answer}");
            assert_eq!(
                values(&answer, name),
                expected,
                "{name} for {event}: {answer}\nextension log:\n{}",
                function.extension.log()
            );
            compared += FLAGS.len();
        }
    }
    // The seed's rules hold through every runtime: alice is on the allow list, bob is not.
    let alice = python.invoke(events()[0].clone()).await;
    assert_eq!(
        alice["flags"]["new-checkout-flow"]["value"], true,
        "{alice}"
    );
    assert_eq!(
        alice["flags"]["new-checkout-flow"]["reason"],
        "TARGETING_MATCH"
    );
    let bob = node.invoke(events()[1].clone()).await;
    assert_eq!(bob["flags"]["new-checkout-flow"]["value"], false, "{bob}");
    println!("{compared} answers from Python and Node equal the Rust function's");
}
