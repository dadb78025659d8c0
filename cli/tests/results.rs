//! `ssm-flags-ctl results`, end to end: experiment flags in moto's SSM (a flagd flag inside a
//! document under a `#flagd` path, a JSON flag of its own), their metrics written as
//! `flags::experiment::Emitter` writes them and published as CloudWatch Logs would
//! (`testkit::emf`), and the real binary reading them back. The numbers are checked against
//! the counts written and against statsmodels (`stats_reference.py`); the sample-ratio check
//! warns on a skewed split and not on a fair one; a change of the flag's own definition within
//! the window warns, another flag's change in the same document does not.

use std::time::{Duration, SystemTime};

use aws_sdk_ssm::types::ParameterType;
use flags::experiment::{Conversions, Counts, DEFAULT_NAMESPACE, Emitter, OFF, ON};
use serde_json::{Value, json};
use testkit::ctl::Ctl;
use testkit::lambda::{put, ssm_client};
use testkit::{Moto, emf, process, workspace};

const MARKED: &str = "/shop/prod/flagd#flagd";
const DOC: &str = "/shop/prod/flagd/doc-a";
const SEED_PATH: &str = "/shop/prod/flags";

/// A document holding the `layout` experiment (two variants split 50/50, a third outside the
/// split) and a flag that is no experiment.
fn document(classic: u32, banner_default: &str) -> String {
    json!({
        "flags": {
            "layout": {
                "state": "ENABLED",
                "metadata": {"experiment": true},
                "variants": {"classic": "classic", "one-page": "one-page", "two-page": "two-page"},
                "defaultVariant": "classic",
                "targeting": {"fractional": [["classic", classic], ["one-page", 100 - classic]]}
            },
            "banner": {"state": "ENABLED", "variants": {"on": true, "off": false},
                       "defaultVariant": banner_default}
        }
    })
    .to_string()
}

/// Counts of `flag`: each variant's exposures, and its conversions on `paid` with values.
fn counts(flag: &str, rows: &[(&str, u64, u64, &[f64])]) -> Counts {
    let mut counts = Counts::default();
    for (variant, exposures, conversions, values) in rows {
        counts
            .exposures
            .insert((flag.into(), (*variant).into()), *exposures);
        counts.conversions.insert(
            (flag.into(), (*variant).into(), "paid".into()),
            Conversions {
                count: *conversions,
                values: values.to_vec(),
            },
        );
    }
    counts
}

/// Publishes `counts` as a function of service `service` writes them, two minutes ago.
async fn publish(cw: &aws_sdk_cloudwatch::Client, namespace: &str, service: &str, counts: &Counts) {
    let at = SystemTime::now() - Duration::from_secs(120);
    let lines = Emitter::new(namespace, service)
        .lines(counts, at)
        .join("\n");
    emf::put(cw, &lines).await.expect("valid EMF");
}

/// statsmodels' answers for one variant against its control: the Wilson interval and the
/// z-test's p-value.
async fn reference(c1: u64, n1: u64, c0: u64, n0: u64) -> ((f64, f64), Option<f64>) {
    let script = workspace().join("cli/tests/stats_reference.py");
    let cases = json!({"wilson": [[c1, n1]], "ztest": [[c1, n1, c0, n0]], "chisquare": []});
    let ran = process::run(
        process::python(),
        &[script.to_str().expect("utf-8 path"), &cases.to_string()],
        None,
        &[],
    )
    .await;
    assert!(
        ran.success(),
        "statsmodels and scipy come from requirements-dev.txt (`make venv`): {}",
        ran.text()
    );
    let answer = ran.json();
    let wilson = &answer["wilson"][0];
    (
        (
            wilson[0].as_f64().expect("low"),
            wilson[1].as_f64().expect("high"),
        ),
        answer["ztest"][0][1].as_f64(),
    )
}

fn close(ours: &Value, theirs: f64) {
    let ours = ours.as_f64().unwrap_or_else(|| panic!("a number: {ours}"));
    assert!(
        (ours - theirs).abs() <= 1e-9 * theirs.abs().max(1e-300),
        "ours {ours}, statsmodels {theirs}"
    );
}

fn row<'a>(report: &'a Value, variant: &str) -> &'a Value {
    report["variants"]
        .as_array()
        .expect("variants")
        .iter()
        .find(|r| r["variant"] == variant)
        .unwrap_or_else(|| panic!("a row for {variant}: {report:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flagd_experiment_in_a_document() {
    let moto = Moto::start().await;
    let ssm = ssm_client(moto.port);
    let cw = emf::client(moto.port);
    put(&ssm, DOC, &document(50, "on"), ParameterType::String).await;
    let one_page_values: Vec<f64> = (0..310).map(|i| 20.0 + f64::from(i % 40)).collect();
    let classic_values = [35.5, 12.25, 80.0];
    publish(
        &cw,
        DEFAULT_NAMESPACE,
        "checkout",
        &counts(
            "layout",
            &[
                ("classic", 5030, 250, &classic_values),
                ("one-page", 4970, 310, &one_page_values),
            ],
        ),
    )
    .await;
    // The same experiment in another service, split 54/46: a mismatch.
    publish(
        &cw,
        DEFAULT_NAMESPACE,
        "checkout-skewed",
        &counts(
            "layout",
            &[("classic", 5400, 270, &[]), ("one-page", 4600, 280, &[])],
        ),
    )
    .await;
    let ctl = Ctl::new(moto.port).env("SSM_FLAGS_PATH", MARKED);
    let results = |service: &'static str, json: bool| {
        let mut args = vec!["results", "layout", "--event", "paid", "--service", service];
        if json {
            args.push("--json");
        }
        let ctl = ctl.clone();
        async move { ctl.run(&args).await }
    };

    let ran = results("checkout", true).await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    let report = ran.json();
    assert_eq!(report["flag"], "layout");
    assert_eq!(report["kind"], "flagd");
    assert_eq!(report["parameter"], DOC);
    assert_eq!(report["control"], "classic");
    assert_eq!(report["service"], "checkout");
    assert_eq!(report["namespace"], DEFAULT_NAMESPACE);
    let names: Vec<&str> = report["variants"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["variant"].as_str())
        .collect();
    assert_eq!(
        names,
        ["classic", "one-page", "two-page"],
        "the control first"
    );

    let classic = row(&report, "classic");
    assert_eq!(classic["control"], true);
    assert_eq!(
        (
            classic["exposures"].as_u64(),
            classic["conversions"].as_u64()
        ),
        (Some(5030), Some(250))
    );
    assert_eq!(classic["rate"].as_f64(), Some(250.0 / 5030.0));
    assert_eq!(classic["value_count"], 3);
    assert_eq!(classic["value_sum"].as_f64(), Some(127.75));
    assert_eq!(classic["value_mean"].as_f64(), Some(127.75 / 3.0));
    assert!(classic["difference"].is_null() && classic["p_value"].is_null());
    let ((low, high), _) = reference(250, 5030, 250, 5030).await;
    close(&classic["rate_low"], low);
    close(&classic["rate_high"], high);

    let one_page = row(&report, "one-page");
    assert_eq!(
        (
            one_page["exposures"].as_u64(),
            one_page["conversions"].as_u64()
        ),
        (Some(4970), Some(310))
    );
    let value_sum: f64 = one_page_values.iter().sum();
    assert_eq!(one_page["value_sum"].as_f64(), Some(value_sum));
    assert_eq!(one_page["value_count"], 310);
    let difference = 310.0 / 4970.0 - 250.0 / 5030.0;
    close(&one_page["difference"], difference);
    close(
        &one_page["relative_difference"],
        difference / (250.0 / 5030.0),
    );
    let ((low, high), p) = reference(310, 4970, 250, 5030).await;
    close(&one_page["rate_low"], low);
    close(&one_page["rate_high"], high);
    close(&one_page["p_value"], p.expect("a defined test"));

    // A variant of the definition without data: a row of zeros.
    let two_page = row(&report, "two-page");
    assert_eq!(
        (
            two_page["exposures"].as_u64(),
            two_page["conversions"].as_u64()
        ),
        (Some(0), Some(0))
    );
    assert!(
        two_page["rate"].is_null() && two_page["p_value"].is_null(),
        "{two_page}"
    );
    assert_eq!(two_page["value_sum"].to_string(), "0.0", "not -0.0");

    let ratio = &report["sample_ratio"];
    assert_eq!(ratio["checked"], true, "{ratio}");
    assert_eq!(ratio["mismatch"], false);
    assert_eq!(ratio["df"], 1);
    assert_eq!(
        ratio["weights"],
        json!([{"variant": "classic", "weight": 50.0, "exposures": 5030},
               {"variant": "one-page", "weight": 50.0, "exposures": 4970}])
    );
    assert_eq!(
        report["definition"],
        json!({"checked": true, "changes": []})
    );
    assert_eq!(report["warnings"], json!([]), "{report:#}");

    // The table says the same.
    let ran = results("checkout", false).await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    let line = |variant: &str| {
        ran.stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(variant))
            .unwrap_or_else(|| panic!("a {variant} row: {}", ran.stdout))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        line("classic")[..5],
        [
            "classic",
            "5030",
            "250",
            "4.97%",
            &format!("{:.2}%–{:.2}%", low_of(250, 5030), high_of(250, 5030))
        ]
    );
    let one_page_line = line("one-page");
    assert_eq!(one_page_line[..4], ["one-page", "4970", "310", "6.24%"]);
    assert_eq!(one_page_line[5], format!("{:+.2}", difference * 100.0));
    assert_eq!(line("two-page")[..4], ["two-page", "0", "0", "-"]);
    assert!(
        ran.stdout
            .contains("control: classic (the flag's defaultVariant)"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout
            .contains("sample ratio: ok against the split classic 50, one-page 50"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("definition: unchanged since"),
        "{}",
        ran.stdout
    );

    // A skewed split: a warning, exit 1, with the numbers still shown.
    let ran = results("checkout-skewed", true).await;
    assert_eq!(ran.code, Some(1), "{}", ran.text());
    let report = ran.json();
    assert_eq!(report["sample_ratio"]["mismatch"], true);
    assert!(report["sample_ratio"]["p_value"].as_f64().expect("p") < 0.001);
    let warnings = report["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].as_str().expect("text").starts_with("sample ratio mismatch: exposures (classic 5400, one-page 4600) do not fit the configured split (classic 50, one-page 50)"),
        "{warnings:?}"
    );
    let ran = results("checkout-skewed", false).await;
    assert_eq!(ran.code, Some(1), "{}", ran.text());
    assert!(
        ran.stdout.contains("sample ratio: MISMATCH"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("warning: sample ratio mismatch"),
        "{}",
        ran.stdout
    );

    // Another flag of the document changes: not this experiment's change.
    put(&ssm, DOC, &document(50, "off"), ParameterType::String).await;
    let ran = results("checkout", true).await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    assert_eq!(ran.json()["definition"]["changes"], json!([]));
    // This flag's split changes (version 3): a warning naming the version.
    put(&ssm, DOC, &document(60, "off"), ParameterType::String).await;
    let ran = results("checkout", true).await;
    assert_eq!(ran.code, Some(1), "{}", ran.text());
    let report = ran.json();
    let changes = report["definition"]["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["version"], 3);
    assert!(
        report["warnings"]
            .as_array()
            .expect("warnings")
            .iter()
            .any(|w| w
                .as_str()
                .is_some_and(|w| w
                    .starts_with("the definition of layout changed within the window: version 3"))),
        "{report:#}"
    );

    // Not an experiment; no service.
    let ran = ctl
        .run(&[
            "results",
            "banner",
            "--event",
            "paid",
            "--service",
            "checkout",
        ])
        .await;
    assert_eq!(ran.code, Some(2), "{}", ran.text());
    assert!(
        ran.stderr.contains("banner is not an experiment"),
        "{}",
        ran.stderr
    );
    let ran = ctl.run(&["results", "layout", "--event", "paid"]).await;
    assert_eq!(ran.code, Some(2), "{}", ran.text());
    assert!(
        ran.stderr.contains("--service") && ran.stderr.contains("SSM_FLAGS_SERVICE"),
        "{}",
        ran.stderr
    );
    let ran = ctl
        .clone()
        .env("SSM_FLAGS_SERVICE", "checkout")
        .run(&["results", "layout", "--event", "paid", "--control", "nope"])
        .await;
    assert_eq!(ran.code, Some(2), "{}", ran.text());
    assert!(
        ran.stderr.contains("has no variant \"nope\""),
        "{}",
        ran.stderr
    );
}

/// The Wilson interval's bounds in percent, as the table rounds them (the formula, written out
/// here independently of the CLI's).
fn low_of(c: u64, n: u64) -> f64 {
    wilson(c, n).0 * 100.0
}

fn high_of(c: u64, n: u64) -> f64 {
    wilson(c, n).1 * 100.0
}

fn wilson(c: u64, n: u64) -> (f64, f64) {
    let z: f64 = 1.959_963_984_540_054;
    let (n, q) = (n as f64, c as f64 / n as f64);
    let d = 1.0 + z * z / n;
    let center = (q + z * z / (2.0 * n)) / d;
    let half = z * (q * (1.0 - q) / n + z * z / (4.0 * n * n)).sqrt() / d;
    (center - half, center + half)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_experiment_is_on_against_off() {
    let moto = Moto::start().await;
    let ssm = ssm_client(moto.port);
    let cw = emf::client(moto.port);
    let name = format!("{SEED_PATH}/new-flow");
    let flag = |salt: &str| {
        json!({"enabled": true, "rollout_percentage": 20, "experiment": true, "salt": salt})
            .to_string()
    };
    put(&ssm, &name, &flag("a"), ParameterType::String).await;
    put(
        &ssm,
        &format!("{SEED_PATH}/dark-mode"),
        r#"{"enabled": true, "rollout_percentage": 20}"#,
        ParameterType::String,
    )
    .await;
    // In a namespace of its own, as SSM_FLAGS_METRICS_NAMESPACE would set it.
    publish(
        &cw,
        "shop-metrics",
        "checkout",
        &counts("new-flow", &[(OFF, 8040, 400, &[]), (ON, 1960, 120, &[])]),
    )
    .await;
    let ctl = Ctl::new(moto.port)
        .env("SSM_FLAGS_PATH", SEED_PATH)
        .env("SSM_FLAGS_SERVICE", "checkout")
        .env("SSM_FLAGS_METRICS_NAMESPACE", "shop-metrics");
    let args = [
        "results", "new-flow", "--event", "paid", "--since", "1d", "--json",
    ];

    let ran = ctl.run(&args).await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    let report = ran.json();
    assert_eq!(report["kind"], "json");
    assert_eq!(report["control"], OFF);
    assert_eq!(report["namespace"], "shop-metrics");
    assert_eq!(report["since"], "1day");
    assert_eq!(report["parameter"], name);
    let on = row(&report, ON);
    assert_eq!(
        (on["exposures"].as_u64(), on["conversions"].as_u64()),
        (Some(1960), Some(120))
    );
    assert!(on["value_mean"].is_null(), "no values tracked");
    let ((low, high), p) = reference(120, 1960, 400, 8040).await;
    close(&on["rate_low"], low);
    close(&on["rate_high"], high);
    close(&on["p_value"], p.expect("defined"));
    assert_eq!(report["variants"][0]["variant"], OFF, "the control first");
    let ratio = &report["sample_ratio"];
    assert_eq!(
        ratio["weights"],
        json!([{"variant": "off", "weight": 80.0, "exposures": 8040},
               {"variant": "on", "weight": 20.0, "exposures": 1960}])
    );
    assert_eq!(ratio["mismatch"], false, "{ratio}");

    // --control on: the comparison turns around.
    let mut turned = args.to_vec();
    turned.extend(["--control", ON]);
    let ran = ctl.run(&turned).await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    let report = ran.json();
    assert_eq!(report["control"], ON);
    close(
        &row(&report, OFF)["difference"],
        400.0 / 8040.0 - 120.0 / 1960.0,
    );

    // A change of the flag's definition (its salt: the split holds, the units move): a warning.
    put(&ssm, &name, &flag("b"), ParameterType::String).await;
    let ran = ctl.run(&args).await;
    assert_eq!(ran.code, Some(1), "{}", ran.text());
    let report = ran.json();
    assert_eq!(report["sample_ratio"]["mismatch"], false);
    assert_eq!(
        report["definition"]["changes"][0]["version"], 2,
        "{report:#}"
    );
    let warnings = report["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0]
            .as_str()
            .expect("text")
            .starts_with("the definition of new-flow changed within the window: version 2 at "),
        "{warnings:?}"
    );

    // Not an experiment: the error names the flag and the marker.
    let ran = ctl.run(&["results", "dark-mode", "--event", "paid"]).await;
    assert_eq!(ran.code, Some(2), "{}", ran.text());
    assert!(
        ran.stderr.contains("dark-mode is not an experiment")
            && ran.stderr.contains("\"experiment\": true"),
        "{}",
        ran.stderr
    );
    // Without the namespace the metrics are elsewhere: zeros, and a note that says where it looked.
    let ran = ctl
        .clone()
        .without("SSM_FLAGS_METRICS_NAMESPACE")
        .run(&[
            "results",
            "new-flow",
            "--event",
            "paid",
            "--service",
            "nobody",
        ])
        .await;
    assert!(
        ran.stdout.contains(
            "note: no exposures of new-flow for service \"nobody\" in namespace \"ssm-flags\""
        ),
        "{}",
        ran.text()
    );
    assert!(
        ran.stdout
            .contains("sample ratio: not checked: no exposures within the window"),
        "{}",
        ran.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_has_examples_and_a_missing_credential_is_named() {
    let ran = Ctl::new(1).run(&["results", "--help"]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    assert!(
        ran.stdout.contains("Examples:") && ran.stdout.contains(" results new-flow --event"),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("exits 1"), "{}", ran.stdout);
    let ran = Ctl::new(1).run(&["results", "new-flow"]).await;
    assert_eq!(ran.code, Some(2), "--event is required: {}", ran.text());

    let moto = Moto::start().await;
    put(
        &ssm_client(moto.port),
        &format!("{SEED_PATH}/new-flow"),
        r#"{"enabled": true, "rollout_percentage": 20, "experiment": true}"#,
        ParameterType::String,
    )
    .await;
    let dir = std::env::temp_dir().join(format!("results-no-credentials-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (config, credentials) = (dir.join("config"), dir.join("credentials"));
    std::fs::write(&config, "").expect("config");
    std::fs::write(&credentials, "").expect("credentials");
    let ran = Ctl::new(moto.port)
        .without("AWS_ACCESS_KEY_ID")
        .without("AWS_SECRET_ACCESS_KEY")
        .env("AWS_CONFIG_FILE", config.to_str().expect("utf-8"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            credentials.to_str().expect("utf-8"),
        )
        .env("HOME", dir.to_str().expect("utf-8"))
        .run(&[
            "--path",
            SEED_PATH,
            "results",
            "new-flow",
            "--event",
            "paid",
            "--service",
            "shop",
        ])
        .await;
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(ran.code, Some(2), "{}", ran.text());
    assert!(
        ran.stderr.contains("no AWS credentials") && ran.stderr.contains("--profile"),
        "{}",
        ran.stderr
    );
}
