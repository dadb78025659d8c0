//! Experiments end to end, through the real binaries: the `checkout-experiment` handler (with
//! `flags::FlagsLayer`) beside the extension under the Lambda emulator, its EMF lines turned into
//! CloudWatch metrics as CloudWatch Logs would (`testkit::emf`, into moto), read back by
//! `ssm-flags-ctl results`.
//!
//! - A simulated experiment with a fixed seed: customers with known true conversion rates per
//!   flow; `results` recovers every rate within its 95% interval, and finds no sample-ratio
//!   mismatch for the fair split — and finds one when a quarter of one variant's exposures are
//!   dropped.
//! - Counts are exact: the exposures and conversions written equal what was evaluated and
//!   tracked, also on Managed Instances with invocations overlapping in one process.

mod common;

use std::collections::BTreeMap;

use aws_sdk_ssm::types::ParameterType;
use common::{Moto, PATH, put};
use flags::{Bucketing, Context, FlagEntry, Snapshot, Status};
use serde_json::{Value, json};
use testkit::lambda::{Function, Proc};
use testkit::managed::ManagedFunction;

const FLAG: &str = "checkout-flow";
const EVENT: &str = "checkout-completed";

/// The experiment's flag document, as `template.yaml` deploys it.
fn document() -> String {
    testkit::template::parameter_value("CheckoutFlowExperiment")
}

/// The flow each customer will see, worked out by the test on its own (the split is
/// deterministic): the simulated customer's behaviour depends on it.
fn predictor() -> Snapshot {
    let document: Value = serde_json::from_str(&document()).expect("JSON");
    let entries = FlagEntry::from_flagd_document("test", 1, false, &document, Bucketing::V3)
        .expect("a flag document");
    Snapshot::new(1, Status::Ok, entries)
}

/// What the test expects the metrics to hold.
#[derive(Debug, Default, PartialEq)]
struct Expected {
    exposures: BTreeMap<String, u64>,
    conversions: BTreeMap<String, u64>,
    values: BTreeMap<String, f64>,
}

/// Sums of the EMF lines in `proc`'s output, per variant, through the parser the metrics go
/// through.
fn written(proc: &Proc) -> Expected {
    let mut out = Expected::default();
    for datum in testkit::emf::parse(&proc.log()).expect("well-formed EMF lines") {
        let dimension = |name: &str| datum.dimension(name).map(str::to_owned);
        if dimension("Flag").as_deref() != Some(FLAG) {
            continue;
        }
        let variant = dimension("Variant").unwrap_or_default();
        let sum = datum.sample.sum();
        match datum.name.as_str() {
            "Exposures" => *out.exposures.entry(variant).or_default() += sum as u64,
            "Conversions" => *out.conversions.entry(variant).or_default() += sum as u64,
            "ConversionValue" => *out.values.entry(variant).or_default() += sum,
            _ => {}
        }
    }
    out
}

/// moto, holding the experiment's flag document under [`PATH`].
async fn moto_with_the_experiment() -> Moto {
    let moto = Moto::start().await;
    put(
        &common::ssm_client(moto.port),
        "checkout-experiment",
        &document(),
        ParameterType::String,
    )
    .await;
    moto
}

/// One checkout event: `confirmed` decided by the customer's true rate for the flow they see.
fn event(user: &str, confirmed: bool, cents: u64, payment_ms: u64) -> Value {
    json!({"user_id": user, "confirmed": confirmed, "payment_ms": payment_ms,
           "items": [{"quantity": 1, "unit_price_cents": cents}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_invocations_on_managed_instances_count_exactly() {
    let moto = moto_with_the_experiment().await;
    let function = ManagedFunction::start_runtime(
        moto.port,
        PATH,
        60,
        8,
        &[("SSM_FLAGS_SERVICE", "checkout")],
        &[],
        "checkout-experiment",
    )
    .await;
    let predictor = predictor();
    let mut expected = Expected::default();
    let mut rng = fastrand::Rng::with_seed(7);
    for batch in 0..4 {
        let mut events = Vec::new();
        for i in 0..40 {
            let user = format!("mi-{batch}-{i}");
            let flow = predictor
                .get(FLAG)
                .string_for(&Context::user(&user))
                .expect("a flow")
                .to_owned();
            let confirmed = rng.bool();
            let cents = rng.u64(500..20_000);
            *expected.exposures.entry(flow.clone()).or_default() += 1;
            if confirmed {
                *expected.conversions.entry(flow.clone()).or_default() += 1;
                *expected.values.entry(flow).or_default() += cents as f64 / 100.0;
            }
            // The payment takes a while: eight invocations overlap in the process.
            events.push(event(&user, confirmed, cents, rng.u64(5..40)));
        }
        for response in function.invoke_all(events).await {
            assert!(response["flow"].is_string(), "{response}");
        }
    }
    let got = written(&function.runtime);
    assert_eq!(
        got.exposures,
        expected.exposures,
        "{}",
        function.runtime.log()
    );
    assert_eq!(got.conversions, expected.conversions);
    for (variant, value) in &expected.values {
        let sum = got.values.get(variant).copied().unwrap_or_default();
        assert!((sum - value).abs() < 1e-6, "{variant}: {sum} vs {value}");
    }
}

/// The true conversion rate of each flow: what the simulated customers do.
const TRUE_RATES: [(&str, f64); 3] = [("classic", 0.10), ("one-page", 0.16), ("express", 0.12)];

/// Every variant's row of `results --json`, by name.
fn rows(report: &Value) -> BTreeMap<String, Value> {
    report["variants"]
        .as_array()
        .expect("variants")
        .iter()
        .map(|row| {
            (
                row["variant"].as_str().unwrap_or_default().to_owned(),
                row.clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_experiment_is_recovered_by_results() {
    let moto = moto_with_the_experiment().await;
    let function = Function::start_runtime(
        moto.port,
        PATH,
        60,
        lambda_simulator::FreezeMode::None,
        &[("SSM_FLAGS_SERVICE", "checkout")],
        "checkout-experiment",
    )
    .await;
    let predictor = predictor();
    let rate = |flow: &str| {
        TRUE_RATES
            .iter()
            .find(|(v, _)| *v == flow)
            .map_or(0.0, |(_, r)| *r)
    };
    let mut expected = Expected::default();
    let mut rng = fastrand::Rng::with_seed(2026);
    let customers = 3_000;
    for i in 0..customers {
        let user = format!("customer-{i}");
        let flow = predictor
            .get(FLAG)
            .string_for(&Context::user(&user))
            .expect("a flow")
            .to_owned();
        let confirmed = rng.f64() < rate(&flow);
        let cents = rng.u64(1_000..15_000);
        let outcome = function.invoke(event(&user, confirmed, cents, 0)).await;
        assert_eq!(outcome["flow"], flow.as_str(), "{user}: {outcome}");
        *expected.exposures.entry(flow.clone()).or_default() += 1;
        if confirmed {
            *expected.conversions.entry(flow.clone()).or_default() += 1;
            *expected.values.entry(flow).or_default() += cents as f64 / 100.0;
        }
    }
    let testkit::lambda::Function { sim, runtime, .. } = function;
    sim.graceful_shutdown(lambda_simulator::ShutdownReason::Spindown)
        .await;
    let runtime = runtime.expect("the runtime");
    // Exact: every invocation's exposure and conversion, written once.
    let got = written(&runtime);
    assert_eq!(got.exposures, expected.exposures, "{}", runtime.log());
    assert_eq!(got.conversions, expected.conversions);

    // CloudWatch Logs turns the lines into metrics; `results` reads them back.
    let log = runtime.log();
    let cloudwatch = testkit::emf::client(moto.port);
    testkit::emf::put(&cloudwatch, &log)
        .await
        .expect("published");
    let ctl = testkit::ctl::Ctl::new(moto.port).env("SSM_FLAGS_PATH", PATH);
    let ran = ctl
        .run(&[
            "results",
            FLAG,
            "--event",
            EVENT,
            "--service",
            "checkout",
            "--since",
            "1d",
            "--json",
        ])
        .await;
    assert_eq!(
        ran.code,
        Some(0),
        "a fair split, no warning: {}",
        ran.text()
    );
    let report = ran.json();
    assert_eq!(report["control"], "classic", "the defaultVariant");
    assert_eq!(report["sample_ratio"]["checked"], true, "{report}");
    assert_eq!(report["sample_ratio"]["mismatch"], false, "{report}");
    let rows = rows(&report);
    for (variant, true_rate) in TRUE_RATES {
        let row = &rows[variant];
        assert_eq!(row["exposures"], expected.exposures[variant], "{row}");
        assert_eq!(row["conversions"], expected.conversions[variant], "{row}");
        let (low, high) = (
            row["rate_low"].as_f64().expect("low"),
            row["rate_high"].as_f64().expect("high"),
        );
        assert!(
            low <= true_rate && true_rate <= high,
            "{variant}: the true rate {true_rate} outside [{low}, {high}]"
        );
        let sum = row["value_sum"].as_f64().expect("a value sum");
        assert!((sum - expected.values[variant]).abs() < 1e-6, "{row}");
        assert_eq!(row["value_count"], expected.conversions[variant], "{row}");
    }
    // one-page's lift over classic (16% vs 10%) is found at this size.
    let lift = &rows["one-page"];
    assert!(
        lift["difference"].as_f64().expect("difference") > 0.0,
        "{lift}"
    );
    assert!(lift["p_value"].as_f64().expect("p") < 0.05, "{lift}");
    let text = ctl
        .run(&[
            "results",
            FLAG,
            "--event",
            EVENT,
            "--service",
            "checkout",
            "--since",
            "1d",
        ])
        .await;
    assert_eq!(text.code, Some(0), "{}", text.text());
    println!("{}", text.stdout);

    // A broken split: a quarter of express's exposures never reach CloudWatch (a variant that
    // crashes before its counts are written, say). The same counts under another service.
    let mut dropped = 0;
    let broken: String = log
        .lines()
        .filter_map(|line| {
            if !line.contains("\"_aws\"") || !line.contains("\"Variant\":\"express\"") {
                return Some(line.replace(
                    "\"Service\":\"checkout\"",
                    "\"Service\":\"checkout-broken\"",
                ));
            }
            let exposure = line.contains("\"Exposures\":");
            if exposure {
                dropped += 1;
                if dropped % 4 == 0 {
                    return None;
                }
            }
            Some(line.replace(
                "\"Service\":\"checkout\"",
                "\"Service\":\"checkout-broken\"",
            ))
        })
        .map(|line| line + "\n")
        .collect();
    testkit::emf::put(&cloudwatch, &broken)
        .await
        .expect("published");
    let ran = ctl
        .run(&[
            "results",
            FLAG,
            "--event",
            EVENT,
            "--service",
            "checkout-broken",
            "--since",
            "1d",
            "--json",
        ])
        .await;
    assert_eq!(ran.code, Some(1), "a warning: {}", ran.text());
    let report = ran.json();
    assert_eq!(report["sample_ratio"]["mismatch"], true, "{report}");
    assert!(
        report["warnings"].as_array().is_some_and(|w| w
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("sample ratio")))),
        "{report}"
    );
}
