//! Experiments over HTTP on the real extension: single evaluations (OFREP's and
//! `GET /v1/flags/{name}`) count each unit once per scope, bulk evaluations never, and
//! `POST /v1/track` counts conversions for the variant the unit saw. The counts reach stdout as
//! EMF lines when the extension stops (SIGTERM as a sidecar, SHUTDOWN in Lambda): exactly what
//! was evaluated, none lost. On on-demand Lambda every INVOKE is a new scope.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ssm::types::ParameterType;
use common::{Moto, PATH, put};
use flags::wire::{TOKEN_HEADER, TRACK_PATH};
use serde_json::{Value, json};
use testkit::http_request;
use testkit::lambda::Proc;
use testkit::sidecar::{SIDECAR_TOKEN, Sidecar};

const CHECKOUT: &str = r#"{"$schema": "https://flagd.dev/schema/v0/flags.json", "flags": {
  "checkout-flow": {"state": "ENABLED",
    "variants": {"classic": "classic", "one-page": "one-page", "express": "express"},
    "defaultVariant": "classic",
    "targeting": {"if": [{"==": [{"var": "tier"}, "staff"]}, "express",
      {"fractional": [["classic", 34], ["one-page", 33], ["express", 33]]}]},
    "metadata": {"experiment": true}}}}"#;

/// Sums of the EMF lines in `log`: exposures by (flag, variant), conversions and values by
/// (flag, variant, event).
#[derive(Debug, Default)]
struct Emitted {
    exposures: BTreeMap<(String, String), u64>,
    conversions: BTreeMap<(String, String, String), u64>,
    values: BTreeMap<(String, String, String), Vec<f64>>,
    services: Vec<String>,
}

fn emitted(proc: &Proc) -> Emitted {
    let mut out = Emitted::default();
    // Through the parser the metrics go through (as CloudWatch Logs reads EMF lines).
    for datum in testkit::emf::parse(&proc.log()).expect("well-formed EMF lines") {
        let dimension = |name: &str| datum.dimension(name).map(str::to_owned);
        let Some(variant) = dimension("Variant") else {
            continue; // a freshness line
        };
        let (flag, event) = (
            dimension("Flag").unwrap_or_default(),
            dimension("Event").unwrap_or_default(),
        );
        match datum.name.as_str() {
            "Exposures" => {
                out.services.push(dimension("Service").unwrap_or_default());
                *out.exposures.entry((flag, variant)).or_default() += datum.sample.sum() as u64;
            }
            "Conversions" => {
                *out.conversions.entry((flag, variant, event)).or_default() +=
                    datum.sample.sum() as u64;
            }
            "ConversionValue" => {
                let values = match &datum.sample {
                    testkit::emf::Sample::One(v) => vec![*v],
                    testkit::emf::Sample::Many(values) => values
                        .iter()
                        .flat_map(|(v, n)| std::iter::repeat_n(*v, *n as usize))
                        .collect(),
                };
                out.values
                    .entry((flag, variant, event))
                    .or_default()
                    .extend(values);
            }
            _ => {}
        }
    }
    out
}

async fn post(port: u16, path: &str, token: &str, body: &str) -> (u16, Value) {
    let headers = [(TOKEN_HEADER, token), ("Content-Type", "application/json")];
    let (status, _, body) = http_request(port, "POST", path, &headers, body)
        .await
        .expect("answer");
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_evaluations_and_tracked_events_reach_the_metrics_exactly() {
    let moto = Moto::start().await;
    let ssm = common::ssm_client(moto.port);
    put(&ssm, "checkout", CHECKOUT, ParameterType::String).await;
    put(
        &ssm,
        "new-search",
        r#"{"enabled": true, "rollout_percentage": 40, "experiment": true}"#,
        ParameterType::String,
    )
    .await;
    let mut sidecar = Sidecar::start(
        moto.port,
        PATH,
        60,
        // One period for the whole test, however slow the machine: a unit evaluated twice is
        // one exposure.
        &[
            ("SSM_FLAGS_SERVICE", "shop"),
            ("SSM_FLAGS_METRICS_INTERVAL", "3600"),
        ],
    )
    .await;
    let port = sidecar.port;

    let mut exposures: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut conversions: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    let mut values: BTreeMap<(String, String, String), Vec<f64>> = BTreeMap::new();
    for i in 0..120 {
        let user = format!("user-{i}");
        let body = json!({"context": {"targetingKey": user}}).to_string();
        let path = "/ofrep/v1/evaluate/flags/checkout-flow";
        let (status, first) = post(port, path, SIDECAR_TOKEN, &body).await;
        assert_eq!(status, 200, "{first}");
        assert_eq!(first["reason"], "SPLIT", "{first}");
        let variant = first["variant"].as_str().expect("a variant").to_owned();
        // Evaluated again (another OFREP call, and the bulk endpoint): not another exposure.
        let (_, again) = post(port, path, SIDECAR_TOKEN, &body).await;
        assert_eq!(again["variant"], variant.as_str());
        let (status, _) = post(port, "/ofrep/v1/evaluate/flags", SIDECAR_TOKEN, &body).await;
        assert_eq!(status, 200);
        *exposures
            .entry(("checkout-flow".into(), variant.clone()))
            .or_default() += 1;

        let (status, seed) = sidecar
            .api(&format!("/v1/flags/new-search?user_id={user}"))
            .await;
        assert_eq!(status, 200, "{seed}");
        let on = if seed["enabled"] == true { "on" } else { "off" };
        *exposures
            .entry(("new-search".into(), on.into()))
            .or_default() += 1;

        if i % 3 == 0 {
            let value = f64::from(i) + 0.5;
            let track = json!({"event": "checkout-completed", "context": {"targetingKey": user}, "value": value});
            let (status, tracked) = post(port, TRACK_PATH, SIDECAR_TOKEN, &track.to_string()).await;
            assert_eq!(status, 200, "{tracked}");
            let attributed = tracked["attributed"].as_array().expect("attributed");
            assert_eq!(attributed.len(), 2, "both experiments: {tracked}");
            for (flag, variant) in [("checkout-flow", variant.as_str()), ("new-search", on)] {
                assert!(
                    attributed.iter().any(|a| a["flag"] == flag
                        && a["variant"] == variant
                        && a["counted"] == true),
                    "{flag}/{variant} in {tracked}"
                );
                let series = (
                    flag.to_owned(),
                    variant.to_owned(),
                    "checkout-completed".to_owned(),
                );
                *conversions.entry(series.clone()).or_default() += 1;
                values.entry(series).or_default().push(value);
            }
        }
    }
    // Routed by a rule, not the split: not in the experiment.
    let staff = json!({"context": {"targetingKey": "staff-1", "tier": "staff"}}).to_string();
    let (_, answer) = post(
        port,
        "/ofrep/v1/evaluate/flags/checkout-flow",
        SIDECAR_TOKEN,
        &staff,
    )
    .await;
    assert_eq!(answer["reason"], "TARGETING_MATCH", "{answer}");

    // Tracking: a unit with no exposure attributes nothing; bad bodies say what is wrong.
    let stranger = json!({"event": "checkout-completed", "context": {"targetingKey": "nobody"}});
    let (status, tracked) = post(port, TRACK_PATH, SIDECAR_TOKEN, &stranger.to_string()).await;
    assert_eq!((status, tracked), (200, json!({"attributed": []})));
    for (body, needle) in [
        (
            json!({"event": "paid", "context": {}}).to_string(),
            "targeting key",
        ),
        (
            json!({"event": "paid", "context": {"targetingKey": 7}}).to_string(),
            "targeting key",
        ),
        (
            json!({"event": "", "context": {"targetingKey": "u"}}).to_string(),
            "event",
        ),
        (
            json!({"event": "paid", "context": {"targetingKey": "u"}, "details": {}}).to_string(),
            "unknown field",
        ),
        ("not json".to_owned(), "the body must be"),
    ] {
        let (status, answer) = post(port, TRACK_PATH, SIDECAR_TOKEN, &body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| e.contains(needle)),
            "{body}: {answer}"
        );
    }
    let (status, _) = post(port, TRACK_PATH, "wrong-token", &stranger.to_string()).await;
    assert_eq!(status, 401, "the token is required");
    let big = json!({"event": "paid", "context": {"targetingKey": "x".repeat(20_000)}}).to_string();
    let (status, _) = post(port, TRACK_PATH, SIDECAR_TOKEN, &big).await;
    assert_eq!(status, 413, "bodies are bounded");

    // Nothing is written before the flush; SIGTERM writes everything.
    assert!(
        emitted(&sidecar.proc).exposures.is_empty(),
        "{}",
        sidecar.proc.log()
    );
    sidecar.proc.terminate();
    let status = sidecar
        .proc
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("exits");
    assert!(status.success(), "{}", sidecar.proc.log());
    let out = emitted(&sidecar.proc);
    assert_eq!(out.exposures, exposures, "{}", sidecar.proc.log());
    assert_eq!(out.conversions, conversions);
    assert_eq!(out.values, values);
    assert!(
        out.services.iter().all(|s| s == "shop"),
        "{:?}",
        out.services
    );
    assert_eq!(
        exposures
            .keys()
            .filter(|(f, _)| f == "checkout-flow")
            .count(),
        3,
        "all three variants drawn: {exposures:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_every_invoke_is_a_new_scope_and_shutdown_writes_the_counts() {
    let moto = Moto::start().await;
    let ssm = common::ssm_client(moto.port);
    put(&ssm, "checkout", CHECKOUT, ParameterType::String).await;
    let function = testkit::lambda::Function::start_with(
        moto.port,
        PATH,
        60,
        lambda_simulator::FreezeMode::None,
        &[("SSM_FLAGS_SERVICE", "shop")],
    )
    .await;
    let port = function.flags_port;
    let token = testkit::lambda::TOKEN;
    let body = json!({"context": {"targetingKey": "returning-user"}}).to_string();
    let mut variant = String::new();
    for _ in 0..3 {
        // The test drives the invocations; each is a new scope for the extension.
        function
            .invoke(json!({"user_id": "someone", "flags": []}))
            .await;
        for _ in 0..2 {
            let (status, answer) =
                post(port, "/ofrep/v1/evaluate/flags/checkout-flow", token, &body).await;
            assert_eq!(status, 200, "{answer}");
            variant = answer["variant"].as_str().expect("a variant").to_owned();
        }
    }
    let testkit::lambda::Function {
        sim, mut extension, ..
    } = function;
    sim.graceful_shutdown(lambda_simulator::ShutdownReason::Spindown)
        .await;
    extension
        .wait_exit(Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("no exit after SHUTDOWN:\n{}", extension.log()));
    let out = emitted(&extension);
    assert_eq!(
        out.exposures,
        BTreeMap::from([(("checkout-flow".to_owned(), variant), 3)]),
        "one exposure per invocation:\n{}",
        extension.log()
    );
}

/// A Python service (OpenFeature's published SDK and OFREP provider, and the README's `track`
/// snippet) in the same experiment: the extension's metrics hold exactly its exposures and
/// conversions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_service_counts_through_ofrep_and_the_track_snippet() {
    let moto = Moto::start().await;
    let ssm = common::ssm_client(moto.port);
    put(&ssm, "checkout", CHECKOUT, ParameterType::String).await;
    let mut sidecar = Sidecar::start(
        moto.port,
        PATH,
        60,
        // One period for the whole test, however slow the machine: a unit evaluated twice is
        // one exposure.
        &[
            ("SSM_FLAGS_SERVICE", "shop"),
            ("SSM_FLAGS_METRICS_INTERVAL", "3600"),
        ],
    )
    .await;
    let script = testkit::workspace().join("extension/tests/experiments_python.py");
    let base = format!("http://127.0.0.1:{}", sidecar.port);
    let ran = testkit::process::run(
        &testkit::process::python(),
        &[script.to_str().expect("utf-8 path"), &base, SIDECAR_TOKEN],
        None,
        &[],
    )
    .await;
    assert!(ran.success(), "{}\n{}", ran.text(), sidecar.proc.log());
    let did: Value = serde_json::from_str(ran.stdout.trim()).expect("the script's JSON");
    sidecar.proc.terminate();
    sidecar
        .proc
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("exits");
    let out = emitted(&sidecar.proc);
    let by_variant = |counts: &Value| -> BTreeMap<String, u64> {
        counts
            .as_object()
            .expect("an object")
            .iter()
            .map(|(variant, n)| (variant.clone(), n.as_u64().expect("a count")))
            .collect()
    };
    let exposures: BTreeMap<String, u64> = out
        .exposures
        .iter()
        .map(|((_, variant), n)| (variant.clone(), *n))
        .collect();
    let conversions: BTreeMap<String, u64> = out
        .conversions
        .iter()
        .map(|((_, variant, _), n)| (variant.clone(), *n))
        .collect();
    assert_eq!(
        exposures,
        by_variant(&did["exposures"]),
        "{}",
        sidecar.proc.log()
    );
    assert_eq!(conversions, by_variant(&did["conversions"]));
    assert_eq!(exposures.values().sum::<u64>(), 90);
}

/// Where no INVOKE comes, the counts are written every `SSM_FLAGS_METRICS_INTERVAL`, each
/// period a scope of its own: a unit evaluated in two periods is exposed in each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_writes_its_counts_every_interval() {
    let moto = Moto::start().await;
    let ssm = common::ssm_client(moto.port);
    put(&ssm, "checkout", CHECKOUT, ParameterType::String).await;
    let sidecar = Sidecar::start(
        moto.port,
        PATH,
        60,
        &[
            ("SSM_FLAGS_SERVICE", "shop"),
            ("SSM_FLAGS_METRICS_INTERVAL", "1"),
        ],
    )
    .await;
    let body = json!({"context": {"targetingKey": "periodic"}}).to_string();
    let path = "/ofrep/v1/evaluate/flags/checkout-flow";
    let (status, answer) = post(sidecar.port, path, SIDECAR_TOKEN, &body).await;
    assert_eq!(status, 200, "{answer}");
    let exposed = |proc: &Proc| emitted(proc).exposures.values().sum::<u64>();
    // Written without any stop, within a generous bound for a busy machine.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while exposed(&sidecar.proc) < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "no periodic write:\n{}",
            sidecar.proc.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The next period is a new scope: the same unit again is a new exposure.
    let _ = post(sidecar.port, path, SIDECAR_TOKEN, &body).await;
    while exposed(&sidecar.proc) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no second write:\n{}",
            sidecar.proc.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(exposed(&sidecar.proc), 2, "{}", sidecar.proc.log());
}
