//! `ssm-flags-ctl` end to end: the real binary against moto (SSM and CloudWatch alarms), through
//! the fault proxy where moto lacks something (who changed a parameter, a denied permission),
//! and beside the real extension (what `export` writes is what the extension serves).

use std::time::{Duration, Instant};

use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue, Statistic};
use aws_sdk_ssm::types::{ParameterTier, ParameterType};
use serde_json::{Value, json};
use testkit::ctl::{Ctl, finish};
use testkit::fault::{Fault, FaultProxy};
use testkit::lambda::{put, ssm_client};
use testkit::sidecar::Sidecar;
use testkit::{Moto, endpoint};

const PATH: &str = "/shop/prod/flags";
const WHO: &str = "arn:aws:sts::123456789012:assumed-role/ops/ann";

fn cloudwatch(port: u16) -> aws_sdk_cloudwatch::Client {
    let config = aws_sdk_cloudwatch::Config::builder()
        .behavior_version(aws_sdk_cloudwatch::config::BehaviorVersion::latest())
        .region(aws_sdk_cloudwatch::config::Region::new(
            testkit::lambda::REGION,
        ))
        .endpoint_url(endpoint(port))
        .credentials_provider(aws_sdk_cloudwatch::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .build();
    aws_sdk_cloudwatch::Client::from_conf(config)
}

async fn alarm(cw: &aws_sdk_cloudwatch::Client, name: &str, state: StateValue) {
    cw.put_metric_alarm()
        .alarm_name(name)
        .namespace("Shop")
        .metric_name("PaymentErrors")
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("PutMetricAlarm");
    set_alarm(cw, name, state).await;
}

async fn set_alarm(cw: &aws_sdk_cloudwatch::Client, name: &str, state: StateValue) {
    cw.set_alarm_state()
        .alarm_name(name)
        .state_value(state)
        .state_reason("set by the test")
        .send()
        .await
        .expect("SetAlarmState");
}

async fn value(ssm: &aws_sdk_ssm::Client, name: &str) -> (String, i64) {
    let answer = ssm
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .expect("GetParameter");
    let p = answer.parameter().expect("parameter");
    (p.value().unwrap_or_default().to_owned(), p.version())
}

async fn rollout(ssm: &aws_sdk_ssm::Client, name: &str) -> Option<f64> {
    let (raw, _) = value(ssm, name).await;
    serde_json::from_str::<Value>(&raw).ok()?["rollout_percentage"].as_f64()
}

/// Waits (generously: a busy 2-core machine) until the flag's rollout is `p`.
async fn until_rollout(ssm: &aws_sdk_ssm::Client, name: &str, p: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while rollout(ssm, name).await != Some(p) {
        assert!(Instant::now() < deadline, "{name} never reached {p}%");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn labels(ssm: &aws_sdk_ssm::Client, name: &str) -> Vec<(i64, Vec<String>)> {
    let answer = ssm
        .get_parameter_history()
        .name(name)
        .send()
        .await
        .expect("GetParameterHistory");
    answer
        .parameters()
        .iter()
        .filter(|p| !p.labels().is_empty())
        .map(|p| (p.version(), p.labels().to_vec()))
        .collect()
}

/// Puts each (name, value, type).
async fn seed(ssm: &aws_sdk_ssm::Client, parameters: &[(&str, &str, ParameterType)]) {
    for (name, value, kind) in parameters {
        put(ssm, name, value, kind.clone()).await;
    }
}

fn flag(name: &str) -> String {
    format!("{PATH}/{name}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lint_reports_invalid_flags_by_parameter_and_field_and_exits_by_severity() {
    let moto = Moto::start().await;
    let ssm = ssm_client(moto.port);
    seed(
        &ssm,
        &[
            (&flag("dark-mode"), "true", ParameterType::String),
            (
                &flag("checkout"),
                r#"{"enabled": true, "rollout_percentage": "25"}"#,
                ParameterType::String,
            ),
            (
                &flag("payments"),
                r#"{"enabled": true, "rollout_percentage": 5}"#,
                ParameterType::String,
            ),
            (
                "/shop/staging/flags/dark-mode",
                "true",
                ParameterType::String,
            ),
        ],
    )
    .await;
    let ctl = Ctl::new(moto.port);

    let ran = ctl.run(&["--json", "lint", PATH]).await;
    assert_eq!(ran.code, Some(1), "an invalid flag exits 1: {}", ran.text());
    let report = ran.json();
    assert_eq!(report["errors"], 1, "{report}");
    let findings = report["findings"].as_array().expect("findings");
    let error = findings
        .iter()
        .find(|f| f["severity"] == "error")
        .expect("the error");
    assert_eq!(error["parameter"], flag("checkout"));
    assert_eq!(error["field"], "rollout_percentage");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("got string \"25\"")),
        "{error}"
    );
    let warning = findings
        .iter()
        .find(|f| f["flag"] == "payments")
        .expect("unsalted rollout");
    assert_eq!(
        (warning["severity"].as_str(), warning["field"].as_str()),
        (Some("warning"), Some("salt"))
    );

    // Fixed: warnings alone exit 0, or 1 under --strict.
    put(
        &ssm,
        &flag("checkout"),
        r#"{"enabled": true, "rollout_percentage": 25, "salt": "c"}"#,
        ParameterType::String,
    )
    .await;
    let ran = ctl.run(&["lint", PATH]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    assert!(
        ran.stdout
            .contains("3 flag(s) checked: 0 error(s), 1 warning(s)"),
        "{}",
        ran.stdout
    );
    assert_eq!(ctl.run(&["lint", "--strict", PATH]).await.code, Some(1));

    // Two environments: a flag missing from one is named.
    let ran = ctl
        .run(&["--json", "lint", "/shop/staging/flags", PATH])
        .await;
    let report = ran.json();
    let missing: Vec<&Value> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| {
            f["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("missing here"))
        })
        .collect();
    assert_eq!(
        missing.len(),
        2,
        "checkout and payments missing from staging: {missing:?}"
    );
    assert!(missing.iter().all(|f| f["source"] == "/shop/staging/flags"));

    // A local snapshot file is linted the same way.
    let dir = std::env::temp_dir().join(format!("ctl-lint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("flags.json");
    std::fs::write(
        &file,
        r#"{"flags": {"a": {"value": {"enabled": true, "allowed_regions": "us-east-1"}}}}"#,
    )
    .expect("write");
    let ran = ctl.run(&["lint", file.to_str().expect("utf-8")]).await;
    assert_eq!(ran.code, Some(1), "{}", ran.text());
    assert!(ran.stdout.contains("allowed_regions"), "{}", ran.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_get_and_history_show_state_versions_and_who_changed_them() {
    let moto = Moto::start().await;
    let ssm = ssm_client(moto.port);
    seed(
        &ssm,
        &[
            (&flag("dark-mode"), "true", ParameterType::String),
            (
                &flag("checkout"),
                r#"{"enabled": true, "rollout_percentage": 25, "salt": "c"}"#,
                ParameterType::String,
            ),
            (
                &flag("checkout"),
                r#"{"enabled": true, "rollout_percentage": 50, "salt": "c"}"#,
                ParameterType::String,
            ),
            (
                &flag("partner"),
                r#"{"enabled": true, "api_key": "sk_live_9"}"#,
                ParameterType::SecureString,
            ),
        ],
    )
    .await;
    // moto records no LastModifiedUser: the proxy stamps what real SSM would.
    let proxy = FaultProxy::start(moto.port).await;
    proxy.set(Fault::ModifiedBy(WHO));
    let ctl = Ctl::new(proxy.port).env("SSM_FLAGS_PATH", PATH);

    let ran = ctl.run(&["--json", "list"]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    let rows = ran.json();
    let row = |name: &str| {
        rows.as_array()
            .and_then(|r| r.iter().find(|r| r["flag"] == name))
            .cloned()
            .expect(name)
    };
    assert_eq!(row("checkout")["state"], "50%");
    assert_eq!(row("checkout")["version"], 2);
    assert_eq!(row("dark-mode")["state"], "on");
    assert_eq!(row("partner")["type"], "SecureString");
    assert_eq!(row("checkout")["last_modified_by"], WHO);
    assert!(
        row("checkout")["last_modified"]
            .as_str()
            .is_some_and(|t| t.starts_with("20"))
    );
    assert!(!ran.stdout.contains("sk_live"), "list never shows a secret");

    let ran = ctl.run(&["list"]).await;
    assert!(
        ran.stdout.contains(WHO) && ran.stdout.contains("50%"),
        "{}",
        ran.stdout
    );

    let ran = ctl.run(&["get", "partner"]).await;
    assert!(!ran.text().contains("sk_live"), "{}", ran.text());
    assert!(
        ran.stdout.contains("SecureString: not shown"),
        "{}",
        ran.stdout
    );
    let ran = ctl
        .run(&["--json", "get", "partner", "--show-secret"])
        .await;
    assert!(
        ran.json()["value"]
            .as_str()
            .is_some_and(|v| v.contains("sk_live_9"))
    );

    let ran = ctl.run(&["--json", "history", "checkout"]).await;
    let versions = ran.json();
    assert_eq!(versions.as_array().map(Vec::len), Some(2), "{versions}");
    assert_eq!(versions[1]["user"], WHO);
    assert!(
        versions[0]["value"]
            .as_str()
            .is_some_and(|v| v.contains("25"))
    );
    let ran = ctl.run(&["--json", "history", "partner"]).await;
    assert_eq!(
        ran.json()[0]["value"],
        Value::Null,
        "SecureString history is masked"
    );
    assert!(!ran.text().contains("sk_live"));

    let ran = ctl.run(&["get", "nope"]).await;
    assert_eq!(ran.code, Some(2), "{}", ran.text());
    assert!(
        ran.stderr
            .contains(&format!("parameter {} not found", flag("nope"))),
        "{}",
        ran.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_validates_first_keeps_type_key_and_tier_and_refuses_a_change_of_kind() {
    let moto = Moto::start().await;
    let ssm = ssm_client(moto.port);
    put(&ssm, &flag("dark-mode"), "true", ParameterType::String).await;
    ssm.put_parameter()
        .name(flag("partner"))
        .value(r#"{"enabled": false, "api_key": "sk_live_1"}"#)
        .r#type(ParameterType::SecureString)
        .key_id("alias/flags-key")
        .tier(ParameterTier::Advanced)
        .description("partner API rollout")
        .send()
        .await
        .expect("put partner");
    let ctl = Ctl::new(moto.port).env("SSM_FLAGS_PATH", PATH);

    // An invalid value is refused and SSM is left unchanged.
    let ran = ctl.run(&["set", "partner", r#"{"enabled": "yes"}"#]).await;
    assert_eq!(ran.code, Some(1), "{}", ran.text());
    assert!(
        ran.stderr.contains("field `enabled` must be true or false"),
        "{}",
        ran.stderr
    );
    assert!(
        !ran.text().contains("\"yes\""),
        "a SecureString's value is never quoted: {}",
        ran.text()
    );
    assert_eq!(
        value(&ssm, &flag("partner")).await.1,
        1,
        "version unchanged"
    );

    // A valid one keeps the type, the KMS key, the tier and the description.
    let ran = ctl
        .run(&[
            "--json",
            "set",
            "partner",
            r#"{"enabled": true, "api_key": "sk_live_2"}"#,
        ])
        .await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    let report = ran.json();
    assert_eq!(
        (
            report["old_version"].as_i64(),
            report["new_version"].as_i64()
        ),
        (Some(1), Some(2))
    );
    assert!(!ran.text().contains("sk_live"), "{}", ran.text());
    let described = ssm
        .describe_parameters()
        .parameter_filters(
            aws_sdk_ssm::types::ParameterStringFilter::builder()
                .key("Name")
                .values(flag("partner"))
                .build()
                .expect("filter"),
        )
        .send()
        .await
        .expect("DescribeParameters");
    let meta = &described.parameters()[0];
    assert_eq!(meta.r#type(), Some(&ParameterType::SecureString));
    assert_eq!(meta.key_id(), Some("alias/flags-key"));
    assert_eq!(meta.tier(), Some(&ParameterTier::Advanced));
    assert_eq!(meta.description(), Some("partner API rollout"));
    assert!(value(&ssm, &flag("partner")).await.0.contains("sk_live_2"));

    // Boolean → JSON is refused with the seed's advice, unless asked for.
    let ran = ctl.run(&["set", "dark-mode", r#"{"enabled": true}"#]).await;
    assert_eq!(ran.code, Some(1), "{}", ran.text());
    assert!(ran.stderr.contains("dark-mode-v2"), "{}", ran.stderr);
    assert_eq!(
        value(&ssm, &flag("dark-mode")).await,
        ("true".to_owned(), 1)
    );
    let ran = ctl
        .run(&["set", "dark-mode", r#"{"enabled": true}"#, "--change-kind"])
        .await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    assert!(ran.stdout.contains("written: version 2"), "{}", ran.stdout);

    // A dry run validates and writes nothing; --file reads the value.
    let file = std::env::temp_dir().join(format!("ctl-set-{}.json", std::process::id()));
    std::fs::write(&file, r#"{"enabled": false}"#).expect("write");
    let ran = ctl
        .run(&[
            "set",
            "dark-mode",
            "--file",
            file.to_str().expect("utf-8"),
            "--dry-run",
        ])
        .await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    assert!(ran.stdout.contains("dry run"), "{}", ran.stdout);
    assert_eq!(value(&ssm, &flag("dark-mode")).await.1, 2);

    // A typo never creates a flag; --create does.
    let ran = ctl.run(&["set", "dark-mod", "false"]).await;
    assert_eq!(ran.code, Some(2), "{}", ran.text());
    assert!(ran.stderr.contains("--create"), "{}", ran.stderr);
    let ran = ctl.run(&["set", "beta-banner", "false", "--create"]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    assert_eq!(
        value(&ssm, &flag("beta-banner")).await,
        ("false".to_owned(), 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_switches_off_keeping_every_field_and_rollback_undoes_it() {
    let moto = Moto::start().await;
    let ssm = ssm_client(moto.port);
    let original =
        r#"{"enabled": true, "rollout_percentage": 25, "salt": "pp", "timeout_ms": 800}"#;
    seed(
        &ssm,
        &[
            (
                &flag("new-payment-processor"),
                original,
                ParameterType::String,
            ),
            (&flag("dark-mode"), "true", ParameterType::String),
            (
                &flag("endpoint"),
                "https://pay.example",
                ParameterType::String,
            ),
        ],
    )
    .await;
    let ctl = Ctl::new(moto.port).env("SSM_FLAGS_PATH", PATH);

    let ran = ctl.run(&["kill", "new-payment-processor"]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    assert!(
        ran.stdout
            .contains("rollback /shop/prod/flags/new-payment-processor --to-version 1"),
        "{}",
        ran.stdout
    );
    let (killed, version) = value(&ssm, &flag("new-payment-processor")).await;
    assert_eq!(version, 2);
    let killed: Value = serde_json::from_str(&killed).expect("json");
    assert_eq!(
        killed,
        json!({"enabled": false, "rollout_percentage": 25, "salt": "pp", "timeout_ms": 800})
    );

    // Already off: nothing written. Not a toggle: refused.
    let ran = ctl.run(&["kill", "new-payment-processor"]).await;
    assert_eq!(ran.code, Some(0));
    assert!(ran.stdout.contains("already off"), "{}", ran.stdout);
    assert_eq!(value(&ssm, &flag("new-payment-processor")).await.1, 2);
    assert_eq!(ctl.run(&["kill", "endpoint"]).await.code, Some(1));
    ctl.run(&["kill", "dark-mode"]).await;
    assert_eq!(value(&ssm, &flag("dark-mode")).await.0, "false");

    let ran = ctl
        .run(&["rollback", "new-payment-processor", "--to-version", "1"])
        .await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    assert_eq!(
        value(&ssm, &flag("new-payment-processor")).await,
        (original.to_owned(), 3)
    );
    let ran = ctl
        .run(&["rollback", "new-payment-processor", "--to-version", "9"])
        .await;
    assert_eq!(ran.code, Some(2), "{}", ran.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_gives_the_handlers_decision_and_reason() {
    let moto = Moto::start().await;
    let ssm = ssm_client(moto.port);
    let raw = r#"{"enabled": true, "rollout_percentage": 25, "allowed_regions": ["us-east-1"], "excluded_user_ids": ["user-456"]}"#;
    put(&ssm, &flag("new-analytics"), raw, ParameterType::String).await;
    let ctl = Ctl::new(moto.port).env("SSM_FLAGS_PATH", PATH);
    let snapshot = std::sync::Arc::new(flags::Snapshot::from_values([("new-analytics", raw)]));

    for user in ["user-123", "user-456", "alice", "bob", "carol"] {
        let ran = ctl
            .run(&[
                "--json",
                "explain",
                "new-analytics",
                "--user",
                user,
                "--attr",
                "region=us-east-1",
            ])
            .await;
        assert_eq!(ran.code, Some(0), "{}", ran.text());
        let answer = ran.json();
        let context = flags::Context::user(user).with_region("us-east-1");
        let expected = snapshot.get("new-analytics").evaluate(&context);
        assert_eq!(answer["enabled"], expected.enabled, "{user}: {answer}");
        assert_eq!(answer["reason"], expected.reason.code(), "{user}: {answer}");
        assert_eq!(answer["detail"], expected.to_string());
    }
    let ran = ctl
        .run(&[
            "explain",
            "new-analytics",
            "--user",
            "user-123",
            "--attr",
            "region=eu-west-1",
        ])
        .await;
    assert!(
        ran.stdout.contains("OFF") && ran.stdout.contains("region"),
        "{}",
        ran.stdout
    );

    let ran = ctl
        .run(&[
            "--json",
            "explain",
            "new-analytics",
            "--sample",
            "10000",
            "--attr",
            "region=us-east-1",
        ])
        .await;
    let share = ran.json()["sample"]["share_percent"]
        .as_f64()
        .expect("share");
    assert!(
        (22.0..=28.0).contains(&share),
        "25% rollout, sampled {share}%"
    );

    // A flag whose name holds `/`, by its name under the path, in full, and from a file.
    put(
        &ssm,
        &flag("checkout/v2"),
        r#"{"enabled": true, "allowed_user_ids": ["alice"]}"#,
        ParameterType::String,
    )
    .await;
    for name in ["checkout/v2", "/shop/prod/flags/checkout/v2"] {
        let answer = ctl
            .run(&["--json", "explain", name, "--user", "alice"])
            .await
            .json();
        assert_eq!(
            (answer["flag"].as_str(), answer["enabled"].as_bool()),
            (Some("checkout/v2"), Some(true)),
            "{answer}"
        );
    }
    let answer = ctl
        .run(&[
            "--json",
            "explain",
            &flag("checkout/v2"),
            "--user",
            "bob",
            "--from",
            PATH,
        ])
        .await
        .json();
    assert_eq!(
        (answer["flag"].as_str(), answer["reason"].as_str()),
        (Some("checkout/v2"), Some("allow_list")),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_writes_what_the_extension_serves_and_secrets_only_when_asked() {
    let moto = Moto::start().await;
    let ssm = ssm_client(moto.port);
    seed(
        &ssm,
        &[
            (&flag("dark-mode"), "true", ParameterType::String),
            (
                &flag("checkout"),
                r#"{"enabled": true, "rollout_percentage": 25}"#,
                ParameterType::String,
            ),
            (
                &flag("regions"),
                "us-east-1, eu-west-1",
                ParameterType::StringList,
            ),
            (&flag("broken"), "{oops", ParameterType::String),
            (
                &flag("partner"),
                r#"{"enabled": true, "api_key": "sk_live_3"}"#,
                ParameterType::SecureString,
            ),
        ],
    )
    .await;
    let ctl = Ctl::new(moto.port);
    let dir = std::env::temp_dir().join(format!("ctl-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let public = dir.join("flags.json");
    let all = dir.join("all.json");

    let ran = ctl
        .run(&["export", PATH, "-o", public.to_str().expect("utf-8")])
        .await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    assert!(
        ran.stderr
            .contains("left out 1 SecureString flag(s): partner"),
        "{}",
        ran.stderr
    );
    let text = std::fs::read_to_string(&public).expect("exported");
    assert!(!text.contains("sk_live"), "{text}");
    let ran = ctl
        .run(&[
            "export",
            PATH,
            "-o",
            all.to_str().expect("utf-8"),
            "--include-secure",
        ])
        .await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());

    // What the extension serves for the same path.
    let sidecar = Sidecar::start(moto.port, PATH, 60, &[]).await;
    let (status, served) = sidecar.api("/v1/flags").await;
    assert_eq!(status, 200);
    let served = served["flags"].as_object().cloned().expect("flags");
    let flags_of = |file: &std::path::Path| -> serde_json::Map<String, Value> {
        let doc: Value =
            serde_json::from_str(&std::fs::read_to_string(file).expect("read")).expect("json");
        doc["flags"].as_object().cloned().expect("flags")
    };
    let mut public_served = served.clone();
    public_served.retain(|_, flag| flag.get("secure") != Some(&Value::Bool(true)));
    assert_eq!(
        flags_of(&public),
        public_served,
        "non-secret flags equal the extension's"
    );
    assert_eq!(flags_of(&all), served, "every flag equals the extension's");
    assert_eq!(served["partner"]["secure"], true);

    // And the file loads where handlers and the deployed fallback read it.
    assert_eq!(flags::load_file(&all).expect("loads"), 5);
    assert!(flags::get("dark-mode").enabled());
    assert_eq!(
        flags::get("partner").field::<String>("api_key").as_deref(),
        Some("sk_live_3")
    );
    assert!(flags::get("broken").error().is_some());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&all).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "a file holding secrets is the owner's only");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_shows_added_removed_and_changed_fields_and_exits_1() {
    let moto = Moto::start().await;
    let ssm = ssm_client(moto.port);
    for (env, checkout) in [("staging", 50), ("prod", 10)] {
        let raw = format!(r#"{{"enabled": true, "rollout_percentage": {checkout}, "salt": "c"}}"#);
        put(
            &ssm,
            &format!("/shop/{env}/flags/checkout"),
            &raw,
            ParameterType::String,
        )
        .await;
        put(
            &ssm,
            &format!("/shop/{env}/flags/dark-mode"),
            "true",
            ParameterType::String,
        )
        .await;
    }
    seed(
        &ssm,
        &[
            (
                "/shop/staging/flags/new-search",
                "true",
                ParameterType::String,
            ),
            (
                "/shop/prod/flags/old-banner",
                "false",
                ParameterType::String,
            ),
        ],
    )
    .await;
    let ctl = Ctl::new(moto.port);

    let ran = ctl
        .run(&["--json", "diff", "/shop/prod/flags", "/shop/staging/flags"])
        .await;
    assert_eq!(ran.code, Some(1), "differences exit 1: {}", ran.text());
    let report = ran.json();
    assert_eq!(report["added"], json!(["new-search"]));
    assert_eq!(report["removed"], json!(["old-banner"]));
    assert_eq!(
        report["changed"],
        json!([{"flag": "checkout", "changes": [{"field": "rollout_percentage", "old": "10", "new": "50"}]}])
    );
    let ran = ctl
        .run(&["diff", "/shop/prod/flags", "/shop/prod/flags"])
        .await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    assert!(
        ran.stdout.contains("0 added, 0 removed, 0 changed"),
        "{}",
        ran.stdout
    );
}

/// A ramp's world: moto as SSM and CloudWatch, a JSON flag at 0% (salted) and an alarm.
struct RampRig {
    moto: Moto,
    ssm: aws_sdk_ssm::Client,
    cw: aws_sdk_cloudwatch::Client,
    name: String,
    start: String,
}

impl RampRig {
    async fn start(flag_name: &str, alarm_name: &str, state: StateValue) -> Self {
        let moto = Moto::start().await;
        let ssm = ssm_client(moto.port);
        let cw = cloudwatch(moto.port);
        let start =
            format!(r#"{{"enabled": true, "rollout_percentage": 0, "salt": "{flag_name}"}}"#);
        let name = flag(flag_name);
        put(&ssm, &name, &start, ParameterType::String).await;
        alarm(&cw, alarm_name, state).await;
        Self {
            moto,
            ssm,
            cw,
            name,
            start,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ramp_steps_up_and_an_alarm_rolls_it_back_to_the_start() {
    let RampRig {
        moto,
        ssm,
        cw,
        name,
        start,
    } = RampRig::start("new-payment-processor", "payments-5xx", StateValue::Ok).await;
    let ctl = Ctl::new(moto.port).env("SSM_FLAGS_PATH", PATH);

    // An alarm that does not exist is an error before anything changes.
    let ran = ctl
        .run(&[
            "ramp",
            "new-payment-processor",
            "--steps",
            "5,100",
            "--every",
            "1s",
            "--alarm",
            "payments-5xx",
            "--alarm",
            "nope",
        ])
        .await;
    assert_eq!(ran.code, Some(2), "{}", ran.text());
    assert!(ran.stderr.contains("\"nope\""), "{}", ran.stderr);
    assert_eq!(value(&ssm, &name).await.1, 1, "nothing changed");

    let child = ctl.spawn(&[
        "--json",
        "ramp",
        "new-payment-processor",
        "--steps",
        "5,10,25,50,100",
        "--every",
        "3s",
        "--check-every",
        "100ms",
        "--alarm",
        "payments-5xx",
    ]);
    until_rollout(&ssm, &name, 10.0).await;
    assert_eq!(
        labels(&ssm, &name).await,
        vec![(1, vec!["flags-ramp-start".to_owned()])]
    );
    set_alarm(&cw, "payments-5xx", StateValue::Alarm).await;
    let ran = finish(child).await;
    assert_eq!(ran.code, Some(1), "an alarm exits 1: {}", ran.text());
    let report = ran.json();
    assert_eq!(report["outcome"], "rolled_back", "{report}");
    assert_eq!(
        report["steps"].as_array().map(Vec::len),
        Some(2),
        "{report}"
    );
    assert!(
        ran.stderr.contains("rolled") && ran.stderr.contains("payments-5xx"),
        "{}",
        ran.stderr
    );
    let (now, version) = value(&ssm, &name).await;
    assert_eq!(now, start, "the value the ramp started from");
    assert_eq!(version, 4, "start, 5%, 10%, rollback");
    assert_eq!(
        labels(&ssm, &name).await,
        vec![],
        "the start label is removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_ramp_continues_and_still_rolls_back_to_the_true_start() {
    let RampRig {
        moto,
        ssm,
        cw,
        name,
        start,
    } = RampRig::start("checkout", "checkout-errors", StateValue::Ok).await;
    let ctl = Ctl::new(moto.port).env("SSM_FLAGS_PATH", PATH);
    let args = [
        "ramp",
        "checkout",
        "--steps",
        "5,10,25",
        "--every",
        "3s",
        "--check-every",
        "100ms",
        "--alarm",
        "checkout-errors",
    ];

    let mut first = ctl.spawn(&args);
    until_rollout(&ssm, &name, 5.0).await;
    first.kill().await.expect("interrupt the ramp");
    assert_eq!(
        labels(&ssm, &name).await,
        vec![(1, vec!["flags-ramp-start".to_owned()])]
    );

    let second = ctl.spawn(&args);
    until_rollout(&ssm, &name, 10.0).await;
    set_alarm(&cw, "checkout-errors", StateValue::Alarm).await;
    let ran = finish(second).await;
    assert_eq!(ran.code, Some(1), "{}", ran.text());
    assert!(
        ran.stdout
            .contains("continuing the ramp that started at version 1"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("from 5%"),
        "it continues from the current percentage: {}",
        ran.stdout
    );
    assert_eq!(
        value(&ssm, &name).await.0,
        start,
        "rolled back to the true start, not to 5%"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ramp_stops_without_writing_when_someone_else_changes_the_flag() {
    let RampRig {
        moto, ssm, name, ..
    } = RampRig::start("search", "search-errors", StateValue::Ok).await;
    let proxy = FaultProxy::start(moto.port).await;
    proxy.set(Fault::ModifiedBy(WHO));
    let ctl = Ctl::new(proxy.port).env("SSM_FLAGS_PATH", PATH);

    let child = ctl.spawn(&[
        "ramp",
        "search",
        "--steps",
        "5,10",
        "--every",
        "30s",
        "--check-every",
        "100ms",
        "--alarm",
        "search-errors",
    ]);
    until_rollout(&ssm, &name, 5.0).await;
    let theirs = r#"{"enabled": false, "rollout_percentage": 5, "salt": "s"}"#;
    put(&ssm, &name, theirs, ParameterType::String).await;
    let ran = finish(child).await;
    assert_eq!(ran.code, Some(1), "{}", ran.text());
    assert!(
        ran.stderr.contains("changed under the ramp") && ran.stderr.contains(WHO),
        "{}",
        ran.stderr
    );
    assert_eq!(
        value(&ssm, &name).await,
        (theirs.to_owned(), 3),
        "their change stands"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ramp_holds_while_an_alarm_has_insufficient_data() {
    let RampRig {
        moto,
        ssm,
        cw,
        name,
        ..
    } = RampRig::start("banner", "banner-errors", StateValue::InsufficientData).await;
    let ctl = Ctl::new(moto.port).env("SSM_FLAGS_PATH", PATH);

    let child = ctl.spawn(&[
        "ramp",
        "banner",
        "--steps",
        "50",
        "--every",
        "1s",
        "--check-every",
        "100ms",
        "--alarm",
        "banner-errors",
    ]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        value(&ssm, &name).await.1,
        1,
        "no step while the alarm has no data"
    );
    set_alarm(&cw, "banner-errors", StateValue::Ok).await;
    let ran = finish(child).await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    assert!(
        ran.stdout
            .contains("holding: alarm banner-errors has INSUFFICIENT_DATA"),
        "{}",
        ran.stdout
    );
    assert_eq!(rollout(&ssm, &name).await, Some(50.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_errors_name_the_missing_permission_and_exit_2() {
    let moto = Moto::start().await;
    let ssm = ssm_client(moto.port);
    put(&ssm, &flag("dark-mode"), "true", ParameterType::String).await;
    let proxy = FaultProxy::start(moto.port).await;
    proxy.set(Fault::Deny("PutParameter"));
    let ctl = Ctl::new(proxy.port).env("SSM_FLAGS_PATH", PATH);

    let ran = ctl.run(&["set", "dark-mode", "false"]).await;
    assert_eq!(ran.code, Some(2), "{}", ran.text());
    assert!(
        ran.stderr.contains("ssm:PutParameter")
            && ran
                .stderr
                .contains("arn:aws:ssm:us-east-1:123456789012:parameter/shop/prod/flags/dark-mode"),
        "{}",
        ran.stderr
    );
    // A usage error exits 2 as well, and says what is wrong.
    let ran = Ctl::new(moto.port).run(&["get", "dark-mode"]).await;
    assert_eq!(ran.code, Some(2));
    assert!(ran.stderr.contains("--path"), "{}", ran.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_come_from_profiles_as_the_aws_cli_reads_them() {
    let moto = Moto::start().await;
    let ssm = ssm_client(moto.port);
    put(&ssm, &flag("dark-mode"), "true", ParameterType::String).await;
    let dir = std::env::temp_dir().join(format!("ctl-profiles-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("config");
    // credential_process runs a program that prints the credentials' JSON, as `aws configure
    // export-credentials` or a vault helper does.
    let helper = dir.join("creds");
    std::fs::write(
        &helper,
        "#!/bin/sh\necho '{\"Version\":1,\"AccessKeyId\":\"AKIAOPS\",\"SecretAccessKey\":\"s\"}'\n",
    )
    .expect("helper");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    std::fs::write(
        &config,
        format!(
            "[profile ops]\nregion = us-east-1\ncredential_process = {}\n\n[profile sso]\nregion = us-east-1\nsso_start_url = https://example.awsapps.com/start\nsso_region = us-east-1\nsso_account_id = 123456789012\nsso_role_name = FlagOperator\n",
            helper.display()
        ),
    )
    .expect("config");
    let ctl = Ctl::new(moto.port)
        .without("AWS_ACCESS_KEY_ID")
        .without("AWS_SECRET_ACCESS_KEY")
        .without("AWS_REGION")
        .env("AWS_CONFIG_FILE", config.to_str().expect("utf-8"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.join("none").to_str().expect("utf-8"),
        )
        .env("HOME", dir.to_str().expect("utf-8"));

    let ran = ctl
        .run(&["--profile", "ops", "get", &flag("dark-mode")])
        .await;
    assert_eq!(
        ran.code,
        Some(0),
        "a credential_process profile works: {}",
        ran.text()
    );
    // An SSO profile is understood (the feature is built in); without a login it says so.
    let ran = ctl
        .run(&["--profile", "sso", "get", &flag("dark-mode")])
        .await;
    assert_eq!(ran.code, Some(2), "{}", ran.text());
    assert!(ran.stderr.contains("no AWS credentials"), "{}", ran.stderr);
    assert!(
        !ran.stderr.contains("feature"),
        "SSO support is compiled in: {}",
        ran.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_has_help_with_an_example() {
    let ctl = Ctl::new(1);
    for command in [
        "lint", "list", "get", "explain", "set", "ramp", "kill", "export", "diff", "history",
        "rollback", "results",
    ] {
        let ran = ctl.run(&[command, "--help"]).await;
        assert_eq!(ran.code, Some(0), "{command}: {}", ran.text());
        assert!(
            ran.stdout.contains("Example"),
            "{command} --help has no example: {}",
            ran.stdout
        );
        assert!(
            ran.stdout.contains(&format!("ssm-flags-ctl {command}"))
                || ran.stdout.contains(&format!(" {command} ")),
            "{command}: {}",
            ran.stdout
        );
    }
    let ran = ctl.run(&["ramp", "x"]).await;
    assert_eq!(ran.code, Some(2), "a usage error exits 2: {}", ran.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_appconfig_profile_is_linted_listed_and_exported_as_the_extension_reads_it() {
    let standin = testkit::appconfig::AppConfigData::start().await;
    standin.deploy(
        &testkit::appconfig::profile_key("flags-app", "prod", "feature-flags"),
        r#"{"dark-mode": {"enabled": true}, "checkout": {"enabled": true, "rollout_percentage": "ten"}}"#,
        "application/json",
        Some("v7"),
    );
    let ctl = Ctl::new(1).env("AWS_ENDPOINT_URL_APPCONFIGDATA", &standin.endpoint());
    let profile = "appconfig:flags-app/prod/feature-flags";

    let ran = ctl.run(&["--json", "lint", profile]).await;
    assert_eq!(ran.code, Some(1), "{}", ran.text());
    let report = ran.json();
    let error = &report["findings"][0];
    assert_eq!(error["flag"], "checkout", "{report}");
    assert_eq!(error["field"], "rollout_percentage");
    assert_eq!(
        error["parameter"],
        "appconfig:flags-app/prod/feature-flags/checkout"
    );

    let ran = ctl.run(&["--json", "list", profile]).await;
    let states: Vec<(String, String)> = ran
        .json()
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["flag"].as_str().unwrap_or_default().to_owned(),
                r["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states[1],
        ("dark-mode".to_owned(), "on".to_owned()),
        "{states:?}"
    );

    let ran = ctl.run(&["export", profile]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    let doc: Value = serde_json::from_str(&ran.stdout).expect("a snapshot on stdout");
    assert_eq!(doc["flags"]["dark-mode"]["value"], json!({"enabled": true}));
    assert!(doc["flags"]["checkout"]["error"].is_string());

    // Unknown profile: an AWS error, exit 2, naming it.
    let ran = ctl.run(&["lint", "appconfig:flags-app/prod/nope"]).await;
    assert_eq!(ran.code, Some(2), "{}", ran.text());
    assert!(ran.stderr.contains("flags-app/prod/nope"), "{}", ran.stderr);
}

/// A JSON flag as people write them by hand: a number no `f64` holds, keys in no order, odd
/// whitespace, unicode escapes, a nested `enabled` that is not the flag's.
const HAND_WRITTEN: &str = "{ \"zeta\" :123456789012345678901234567890,\"en\\u0061bled\":\ttrue ,\n  \"name\": \"caf\\u00e9 \u{2615}\", \"rollout_percentage\" : 5 , \"nested\": {\"enabled\": true}\n}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_ramp_keep_every_byte_outside_the_field_they_change() {
    let moto = Moto::start().await;
    let ssm = ssm_client(moto.port);
    seed(
        &ssm,
        &[
            (&flag("killed"), HAND_WRITTEN, ParameterType::String),
            (&flag("ramped"), HAND_WRITTEN, ParameterType::String),
        ],
    )
    .await;
    let ctl = Ctl::new(moto.port).env("SSM_FLAGS_PATH", PATH);

    let ran = ctl.run(&["kill", "killed"]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    let (stored, version) = value(&ssm, &flag("killed")).await;
    assert_eq!(version, 2);
    let expected = HAND_WRITTEN.replacen("\ttrue ,", "\tfalse ,", 1);
    assert_ne!(expected, HAND_WRITTEN);
    assert_eq!(stored, expected, "only the value of enabled changed");
    // The table shows the number as written, on both sides, unchanged.
    let row = ran
        .stdout
        .lines()
        .find(|l| l.contains("zeta"))
        .unwrap_or_default();
    assert_eq!(
        row.matches("123456789012345678901234567890").count(),
        2,
        "{}",
        ran.stdout
    );
    assert!(!ran.stdout.contains("e+29"), "{}", ran.stdout);
    assert!(!row.trim_start().starts_with('*'), "{}", ran.stdout);

    let ran = ctl
        .run(&["ramp", "ramped", "--steps", "10,25", "--every", "0s"])
        .await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    let (stored, version) = value(&ssm, &flag("ramped")).await;
    assert_eq!(version, 3, "two steps");
    assert_eq!(
        stored,
        HAND_WRITTEN.replacen("\" : 5 ,", "\" : 25 ,", 1),
        "only the percentage changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lint_on_a_path_without_flags_is_a_finding() {
    let moto = Moto::start().await;
    put(
        &ssm_client(moto.port),
        &flag("dark-mode"),
        "true",
        ParameterType::String,
    )
    .await;
    let ctl = Ctl::new(moto.port);

    let ran = ctl.run(&["lint", "/typo/path"]).await;
    assert_eq!(ran.code, Some(1), "{}", ran.text());
    assert!(
        ran.stdout.contains("no flags under /typo/path"),
        "{}",
        ran.stdout
    );
    let report = ctl.run(&["--json", "lint", "/typo/path"]).await.json();
    assert_eq!(report["errors"], 1, "{report}");
    assert_eq!(ctl.run(&["lint", PATH]).await.code, Some(0));
}

/// A CLI with no credentials anywhere: none in the environment, empty config and credentials
/// files, no instance metadata.
fn without_credentials(ctl: Ctl, dir: &std::path::Path) -> Ctl {
    std::fs::create_dir_all(dir).expect("dir");
    let (config, credentials) = (dir.join("config"), dir.join("credentials"));
    std::fs::write(&config, "").expect("config");
    std::fs::write(&credentials, "").expect("credentials");
    ctl.without("AWS_ACCESS_KEY_ID")
        .without("AWS_SECRET_ACCESS_KEY")
        .env("AWS_CONFIG_FILE", config.to_str().expect("utf-8"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            credentials.to_str().expect("utf-8"),
        )
        .env("HOME", dir.to_str().expect("utf-8"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_commands_say_credentials_or_region_not_unreachable() {
    let moto = Moto::start().await;
    put(
        &ssm_client(moto.port),
        &flag("dark-mode"),
        "true",
        ParameterType::String,
    )
    .await;
    let dir = std::env::temp_dir().join(format!("ctl-no-credentials-{}", std::process::id()));
    let reads: [&[&str]; 6] = [
        &["list", PATH],
        &["lint", PATH],
        &["export", PATH],
        &["diff", PATH, "/shop/staging/flags"],
        &["get", &flag("dark-mode")],
        &["list", "appconfig:shop/prod/flags"],
    ];

    let no_credentials = without_credentials(Ctl::new(moto.port), &dir);
    for args in reads {
        let ran = no_credentials.run(args).await;
        assert_eq!(ran.code, Some(2), "{args:?}: {}", ran.text());
        assert!(
            ran.stderr.contains("no AWS credentials")
                && ran.stderr.contains("--profile")
                && !ran.stderr.contains("cannot reach"),
            "{args:?}: {}",
            ran.stderr
        );
    }

    // No region: with an endpoint (the signer has none) and without one (nor the endpoint).
    let with_endpoint = Ctl::new(moto.port).without("AWS_REGION");
    let without_endpoint = with_endpoint.clone().without("AWS_ENDPOINT_URL");
    for ctl in [
        without_credentials(with_endpoint, &dir)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test"),
        without_credentials(without_endpoint, &dir)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test"),
    ] {
        for args in reads {
            let ran = ctl.run(args).await;
            assert_eq!(ran.code, Some(2), "{args:?}: {}", ran.text());
            assert!(
                ran.stderr.contains("no AWS region")
                    && ran.stderr.contains("--region")
                    && !ran.stderr.contains("cannot reach"),
                "{args:?}: {}",
                ran.stderr
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
