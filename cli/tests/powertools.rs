//! `ssm-flags-ctl` on Powertools feature-flags documents, as the binary runs: `lint` applies
//! Powertools' schema validator (naming feature, rule and condition) and its warnings, from a
//! file and from an AppConfig profile (the `testkit` stand-in) through the envelope; `explain`
//! names the rule that matched; `export` (of a profile) writes a snapshot `flags::load_file`
//! reads back to the same answers; `diff` sees a change of rule order.

use serde_json::{Value, json};
use testkit::ctl::Ctl;

/// Rules written in reverse alphabetical order (the first written wins), one valid feature
/// with a warning, one rejected by Powertools' validator.
const DOCUMENT: &str = r#"{
  "premium_features": {
    "default": false,
    "rules": {
      "tier is premium": {"when_match": true, "conditions": [
        {"action": "EQUALS", "key": "tier", "value": "premium"}]},
      "beta tenants": {"when_match": true, "conditions": [
        {"action": "KEY_IN_VALUE", "key": "tenant_id", "value": ["t-1", "t-2"]},
        {"action": "KEY_GREATER_THAN_OR_EQUAL_VALUE", "key": "seats", "value": 10}]}
    }
  },
  "banner": {"default": "plain", "boolean_type": false, "rules": {
      "z-gold": {"when_match": "gold", "conditions": [{"action": "STARTSWITH", "key": "tier", "value": "gold"}]},
      "a-any": {"when_match": "any", "conditions": [{"action": "KEY_IN_VALUE", "key": "tier", "value": ["gold", "silver"]}]}}},
  "quiet": {"default": true, "rules": {}},
  "broken": {"default": true, "rules": {"night": {"when_match": true, "conditions": [
      {"action": "SCHEDULE_BETWEEN_TIME_RANGE", "key": "CURRENT_TIME", "value": {"START": "22:00", "END": "6:00"}}]}}}
}"#;

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let file = dir.join(name);
    std::fs::write(&file, text).expect("write");
    format!("{}#powertools", file.display())
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ctl-powertools-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lint_applies_powertools_validator_and_names_feature_rule_and_condition() {
    let dir = temp_dir("lint");
    let file = write(&dir, "features.json", DOCUMENT);
    let ctl = Ctl::new(1);
    let ran = ctl.run(&["--json", "lint", &file]).await;
    assert_eq!(ran.code, Some(1), "an error exits 1: {}", ran.text());
    let report = ran.json();
    let findings = report["findings"].as_array().expect("findings");
    let broken: Vec<&Value> = findings.iter().filter(|f| f["flag"] == "broken").collect();
    assert_eq!(broken.len(), 1, "{report}");
    assert_eq!(broken[0]["severity"], "error");
    let message = broken[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("broken.rules.night.conditions[0].value") && message.contains("HH:MM"),
        "{message}"
    );
    let quiet: Vec<&Value> = findings.iter().filter(|f| f["flag"] == "quiet").collect();
    assert_eq!(quiet.len(), 1, "{report}");
    assert_eq!(quiet[0]["severity"], "warning");
    assert_eq!(quiet[0]["field"], "quiet.rules");
    // The valid features have no findings, and no flagd schema check runs on them.
    assert!(
        findings
            .iter()
            .all(|f| f["flag"] != "premium_features" && f["flag"] != "banner"),
        "{report}"
    );

    // Fixed, the document lints with a warning only (exit 0).
    let fixed = write(
        &dir,
        "fixed.json",
        &DOCUMENT.replace("\"6:00\"", "\"06:00\""),
    );
    let ran = ctl.run(&["lint", &fixed]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_names_the_rule_that_matched() {
    let dir = temp_dir("explain");
    let file = write(&dir, "features.json", DOCUMENT);
    let ctl = Ctl::new(1);
    let explain = |context: Value| {
        let ctl = ctl.clone();
        let file = file.clone();
        async move {
            let context = context.to_string();
            let args = [
                "--json",
                "explain",
                "banner",
                "--from",
                &file,
                "--context",
                &context,
            ];
            ctl.run(&args).await
        }
    };
    let ran = explain(json!({"tier": "gold"})).await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    let answer = ran.json();
    assert_eq!(
        (&answer["value"], &answer["variant"], &answer["reason"]),
        (&json!("gold"), &json!("z-gold"), &json!("TARGETING_MATCH")),
        "the first rule written wins: {answer}"
    );
    assert_eq!(answer["branch"], "rules.z-gold");
    assert_eq!(
        answer["conditions"],
        json!([{"field": "rules.z-gold.conditions[0]", "held": true}])
    );
    let ran = explain(json!({"tier": "bronze"})).await;
    let answer = ran.json();
    assert_eq!(
        (&answer["value"], &answer["variant"], &answer["reason"]),
        (&json!("plain"), &json!("default"), &json!("DEFAULT")),
        "{answer}"
    );
    // The text form says which rule matched.
    let context = json!({"tenant_id": "t-2", "seats": 12}).to_string();
    let ran = ctl
        .run(&[
            "explain",
            "premium_features",
            "--from",
            &file,
            "--context",
            &context,
        ])
        .await;
    assert!(
        ran.stdout.contains("rule matched: \"beta tenants\""),
        "{}",
        ran.text()
    );

    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_sees_a_change_of_rule_order() {
    let dir = temp_dir("diff");
    let a = write(&dir, "a.json", DOCUMENT);
    // The same rules of `banner`, in the other order (and nothing else changed).
    let swapped = DOCUMENT
        .replace("\"z-gold\"", "\"__first\"")
        .replace(
            r#""__first": {"when_match": "gold", "conditions": [{"action": "STARTSWITH", "key": "tier", "value": "gold"}]},
      "a-any": {"when_match": "any", "conditions": [{"action": "KEY_IN_VALUE", "key": "tier", "value": ["gold", "silver"]}]}"#,
            r#""a-any": {"when_match": "any", "conditions": [{"action": "KEY_IN_VALUE", "key": "tier", "value": ["gold", "silver"]}]},
      "z-gold": {"when_match": "gold", "conditions": [{"action": "STARTSWITH", "key": "tier", "value": "gold"}]}"#,
        );
    assert_ne!(swapped, DOCUMENT);
    let b = write(&dir, "b.json", &swapped);
    let ran = Ctl::new(1).run(&["--json", "diff", &a, &b]).await;
    let report = ran.json();
    let changed: Vec<&str> = report["changed"]
        .as_array()
        .expect("changed")
        .iter()
        .filter_map(|c| c["flag"].as_str().or_else(|| c.as_str()))
        .collect();
    assert_eq!(changed, ["banner"], "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_appconfig_profile_is_linted_through_the_envelope() {
    let standin = testkit::appconfig::AppConfigData::start().await;
    let configuration = format!(r#"{{"service": {{"features": {DOCUMENT}}}, "unrelated": 1}}"#);
    standin.deploy(
        &testkit::appconfig::profile_key("catalogue", "prod", "config"),
        &configuration,
        "application/json",
        Some("v3"),
    );
    let ctl = Ctl::new(1).env("AWS_ENDPOINT_URL_APPCONFIGDATA", &standin.endpoint());
    let profile = "appconfig:catalogue/prod/config#powertools";
    let with_envelope = ctl
        .clone()
        .env("SSM_FLAGS_POWERTOOLS_ENVELOPE", "service.features");
    let ran = with_envelope.run(&["--json", "lint", profile]).await;
    assert_eq!(ran.code, Some(1), "{}", ran.text());
    let report = ran.json();
    let flagged: Vec<&str> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["flag"].as_str())
        .collect();
    assert_eq!(flagged, ["broken", "quiet"], "{report}");
    // Export through the envelope, then read the snapshot back with the library: the answers
    // of the document itself.
    let dir = temp_dir("export");
    let file = write(&dir, "features.json", DOCUMENT);
    let out = dir.join("snapshot.json");
    let ran = with_envelope
        .run(&["export", profile, "--output", &out.display().to_string()])
        .await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    let snapshot =
        std::sync::Arc::new(flags::wire::read_file(&out).expect("the export reads back"));
    let source = std::sync::Arc::new(
        flags::wire::read_file(std::path::Path::new(&file)).expect("the document"),
    );
    for context in [
        json!({"tier": "gold"}),
        json!({"tier": "silver"}),
        json!({"tier": "premium"}),
        json!({"tenant_id": "t-1", "seats": 10}),
        json!({"tenant_id": "t-1", "seats": 9.5}),
    ] {
        let fields = context.as_object().expect("object");
        let ctx = flags::Context::new().with_fields(fields);
        for name in ["banner", "premium_features", "quiet", "broken"] {
            let exported = snapshot.get(name).variant_for(&ctx);
            let original = source.get(name).variant_for(&ctx);
            assert_eq!(
                (exported.value, exported.name, exported.reason),
                (original.value, original.name, original.reason),
                "{name} {context}"
            );
        }
    }
    assert!(snapshot.get("broken").error().is_some());
    let _ = std::fs::remove_dir_all(&dir);

    // Without the envelope the top level is read as features: both are rejected, by name.
    let ran = ctl.run(&["--json", "lint", profile]).await;
    let text = ran.stdout.clone();
    assert!(
        text.contains("service") && text.contains("unrelated"),
        "{}",
        ran.text()
    );
    // An envelope that is not JMESPath is a usage error naming the variable.
    let ran = ctl
        .env("SSM_FLAGS_POWERTOOLS_ENVELOPE", "service.[")
        .run(&["lint", profile])
        .await;
    assert_eq!(ran.code, Some(2), "{}", ran.text());
    assert!(
        ran.stderr.contains("SSM_FLAGS_POWERTOOLS_ENVELOPE"),
        "{}",
        ran.stderr
    );
}
