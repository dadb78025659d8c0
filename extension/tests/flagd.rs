//! flagd flags served by the real binary (sidecar mode): the OpenFeature testbed's rows over
//! OFREP, with each suite's flags stored in moto SSM as split document parameters (each at most
//! 8 KB, SSM's Advanced tier, self-contained) under a `#flagd` path — `#flagd-v2` for the v2
//! rows — and from an AppConfig profile (the `testkit` stand-in) marked the same way. A row's
//! answer is read as an OFREP provider reads it: an error answer or a value of another type than
//! the one asked for is the caller's default with that error code, an answer without a value
//! is the caller's default. The published Python and Node providers are run on the flags served
//! without a value (`DISABLED`, no default variant): they return the caller's default.

mod common;

use std::path::Path;

use aws_sdk_ssm::types::{ParameterTier, ParameterType};
use common::Moto;
use flags::ValueType;
use flags::wire::TOKEN_HEADER;
use serde_json::{Value, json};
use testkit::appconfig::{AppConfigData, profile_key};
use testkit::flagd::{self, Answer, Run, SUITES};
use testkit::sidecar::{SIDECAR_TOKEN, Sidecar};
use testkit::{http_request, process, workspace};

/// SSM's Advanced tier: the most a parameter holds.
const MAX_VALUE_BYTES: usize = 8 * 1024;

/// Stores `document` under `path` as self-contained document parameters of at most 8 KB.
async fn store_split(ssm: &aws_sdk_ssm::Client, path: &str, document: &Value) -> usize {
    let documents = flagd::split(document, MAX_VALUE_BYTES);
    for (i, document) in documents.iter().enumerate() {
        ssm.put_parameter()
            .name(format!("{path}/doc-{i:02}"))
            .value(document.to_string())
            .r#type(ParameterType::String)
            .tier(ParameterTier::Advanced)
            .overwrite(true)
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {path}/doc-{i:02}: {e:?}"));
    }
    documents.len()
}

/// One row over OFREP, read as a provider reads the answer.
async fn over_ofrep(port: u16, case: &Value) -> Answer {
    let (flag, kind, default) = flagd::asked(case);
    let wanted: ValueType = kind.parse().expect("a type");
    let body = json!({ "context": flagd::context(case) }).to_string();
    let path = format!("/ofrep/v1/evaluate/flags/{flag}");
    let (status, _, text) = http_request(
        port,
        "POST",
        &path,
        &[
            (TOKEN_HEADER, SIDECAR_TOKEN),
            ("Content-Type", "application/json"),
        ],
        &body,
    )
    .await
    .expect("the sidecar answers");
    let answer: Value = serde_json::from_str(&text).expect("a JSON answer");
    let error = |code: &str| Answer {
        value: default.clone(),
        variant: None,
        reason: "ERROR".into(),
        error_code: Some(code.to_owned()),
        metadata: Default::default(),
    };
    if let Some(code) = answer["errorCode"].as_str() {
        assert_ne!(status, 200, "an error answer is not a 200: {text}");
        return error(code);
    }
    assert_eq!(status, 200, "{text}");
    let value = match answer.get("value") {
        Some(value) if !wanted.admits(value) => return error("TYPE_MISMATCH"),
        Some(value) => value.clone(),
        None => default.clone(),
    };
    Answer {
        value,
        variant: answer["variant"].as_str().map(str::to_owned),
        reason: answer["reason"].as_str().unwrap_or_default().to_owned(),
        error_code: None,
        metadata: answer["metadata"].as_object().cloned().unwrap_or_default(),
    }
}

/// Runs every row of every suite against `sidecars[suite][bucketing]`; returns the rows run
/// per suite and panics listing every failing row.
async fn run_suites(sidecars: &[[Sidecar; 2]; 2], source: &str) -> [usize; 2] {
    let mut failures = Vec::new();
    let mut ran = [0, 0];
    for (suite, (cases_file, _)) in SUITES.iter().enumerate() {
        for case in flagd::cases(cases_file) {
            for run in flagd::runs(&case) {
                let sidecar = &sidecars[suite][usize::from(*run == Run::V2)];
                ran[suite] += 1;
                if let Err(why) = flagd::check(&case, &over_ofrep(sidecar.port, &case).await) {
                    failures.push(format!("{source} {cases_file} [{run:?}] {why}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows fail over OFREP:\n{}",
        failures.len(),
        failures.join("\n")
    );
    ran
}

/// The evaluator suite's 125 rows (15 `@fractional-v1` skipped) and the provider suite's 230
/// (the same), with the rows no bucketing decides run under both.
fn assert_counts(ran: [usize; 2]) {
    assert!(ran[0] >= 125, "evaluator rows run: {}", ran[0]);
    assert!(ran[1] >= 230, "provider rows run: {}", ran[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_testbed_passes_over_ofrep_from_split_documents_in_ssm() {
    let moto = Moto::start().await;
    let ssm = common::ssm_client(moto.port);
    let mut documents = 0;
    for (i, (_, flags_file)) in SUITES.iter().enumerate() {
        documents += store_split(
            &ssm,
            &format!("/testbed/suite-{i}"),
            &flagd::read(flags_file),
        )
        .await;
    }
    assert!(
        documents >= 4,
        "each suite is split across documents: {documents}"
    );
    let start = |suite: usize, marker: &'static str| {
        let path = format!("/testbed/suite-{suite}{marker}");
        async move { Sidecar::start(moto.port, &path, 3600, &[]).await }
    };
    let sidecars = [
        [start(0, "#flagd").await, start(0, "#flagd-v2").await],
        [start(1, "#flagd").await, start(1, "#flagd-v2").await],
    ];
    for (pair, (_, flags_file)) in sidecars.iter().zip(SUITES) {
        // As many flags, and as many invalid ones (the testbed's deliberately broken flags), as
        // the whole document read in-process: splitting lost nothing.
        let whole = flags::FlagEntry::from_flagd_document(
            flags_file,
            1,
            false,
            &flagd::read(flags_file),
            flags::Bucketing::V3,
        )
        .expect("a flag document");
        let invalid = whole.iter().filter(|e| e.value().is_err()).count();
        for sidecar in pair {
            let health = sidecar.health().await.expect("health");
            assert_eq!(health["status"], "ok", "{health}");
            assert_eq!(health["flags"], whole.len(), "{health}");
            assert_eq!(health["invalid"], invalid, "{health}");
            assert!(health.get("shadowed").is_none(), "{health}");
        }
    }
    let ran = run_suites(&sidecars, "ssm").await;
    assert_counts(ran);
    println!("SSM ({documents} document parameters): rows run per suite {ran:?}, all pass");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_testbed_passes_over_ofrep_from_appconfig_profiles() {
    let moto = Moto::start().await;
    let standin = AppConfigData::start().await;
    for (i, (_, flags_file)) in SUITES.iter().enumerate() {
        let document = flagd::read(flags_file).to_string();
        let key = profile_key("testbed", "test", &format!("suite-{i}"));
        standin.deploy(&key, &document, "application/json", Some("v1"));
    }
    let endpoint = standin.endpoint();
    let start = |suite: usize, marker: &'static str| {
        let profile = format!("testbed/test/suite-{suite}{marker}");
        let endpoint = endpoint.clone();
        async move {
            let extra = [
                ("SSM_FLAGS_PATH", ""),
                ("SSM_FLAGS_APPCONFIG", profile.as_str()),
                ("AWS_ENDPOINT_URL_APPCONFIGDATA", endpoint.as_str()),
            ];
            Sidecar::start(moto.port, "", 3600, &extra).await
        }
    };
    let sidecars = [
        [start(0, "#flagd").await, start(0, "#flagd-v2").await],
        [start(1, "#flagd").await, start(1, "#flagd-v2").await],
    ];
    let ran = run_suites(&sidecars, "appconfig").await;
    assert_counts(ran);
    println!("AppConfig: rows run per suite {ran:?}, all pass");
}

/// Flags that are `DISABLED` or have no default variant are served without a value: OFREP's
/// published providers (Python and Node) return the caller's default for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_providers_return_the_callers_default_for_an_answer_without_a_value() {
    let moto = Moto::start().await;
    let ssm = common::ssm_client(moto.port);
    let document = json!({
        "flags": {
            "disabled-flag": {"state": "DISABLED", "variants": {"on": true, "off": false},
                              "defaultVariant": "on"},
            "no-default": {"state": "ENABLED", "variants": {"red": "#f00"},
                           "defaultVariant": null},
            "served": {"state": "ENABLED", "variants": {"red": "#f00", "blue": "#00f"},
                       "defaultVariant": "blue"}
        }
    });
    testkit::lambda::put(
        &ssm,
        "/providers/flags/doc",
        &document.to_string(),
        ParameterType::String,
    )
    .await;
    let sidecar = Sidecar::start(moto.port, "/providers/flags#flagd", 3600, &[]).await;
    let base = format!("http://127.0.0.1:{}", sidecar.port);
    let python = workspace().join("extension/tests/flagd_providers.py");
    let node = workspace().join("extension/tests/ofrep-node");
    assert!(
        node.join("node_modules/@openfeature/ofrep-provider")
            .exists(),
        "{}/node_modules not installed: run `make node` (or `make test`)",
        node.display()
    );
    let python_script = python.to_str().expect("utf-8 path");
    for (program, args, dir) in [
        (process::python(), vec![python_script], None),
        (
            Path::new("node").to_path_buf(),
            vec!["flagd.mjs"],
            Some(node.as_path()),
        ),
    ] {
        let args: Vec<&str> = args
            .into_iter()
            .chain([base.as_str(), SIDECAR_TOKEN])
            .collect();
        let ran = process::run(&program, &args, dir, &[]).await;
        assert!(ran.success(), "{}\n{}", ran.text(), sidecar.proc.log());
        assert!(
            ran.text().contains("callers' defaults returned"),
            "{}",
            ran.text()
        );
        println!("{}", ran.text().trim());
    }
}

/// Names defined twice: a later path wins, a parameter of its own beats a document, and the
/// document whose name sorts last wins among documents; every hidden definition is in health
/// (`shadowed`) and in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadowed_definitions_follow_the_precedence_and_are_never_silent() {
    let moto = Moto::start().await;
    let ssm = common::ssm_client(moto.port);
    let toggle = |on: bool| {
        json!({"state": "ENABLED", "variants": {"on": true, "off": false},
               "defaultVariant": if on { "on" } else { "off" }})
    };
    let put = |name: &'static str, value: Value| {
        let ssm = ssm.clone();
        async move {
            testkit::lambda::put(&ssm, name, &value.to_string(), ParameterType::String).await;
        }
    };
    put(
        "/shadow/flags/doc-a",
        json!({"flags": {"x": toggle(true), "y": toggle(true), "z": toggle(false)}}),
    )
    .await;
    put(
        "/shadow/flags/doc-b",
        json!({"flags": {"x": toggle(false), "z": toggle(true)}}),
    )
    .await;
    put("/shadow/flags/y", toggle(false)).await;
    put("/shadow/later/x", json!(true)).await;
    let sidecar = Sidecar::start(moto.port, "/shadow/flags#flagd,/shadow/later", 3600, &[]).await;

    let value = |flag: &'static str| {
        let port = sidecar.port;
        async move {
            let path = format!("/ofrep/v1/evaluate/flags/{flag}");
            let (_, _, text) =
                http_request(port, "POST", &path, &[(TOKEN_HEADER, SIDECAR_TOKEN)], "{}")
                    .await
                    .expect("answers");
            let answer: Value = serde_json::from_str(&text).expect("JSON");
            answer["value"].clone()
        }
    };
    assert_eq!(
        value("x").await,
        json!(true),
        "the later path's seed flag wins"
    );
    assert_eq!(
        value("y").await,
        json!(false),
        "the parameter of its own beats a document"
    );
    assert_eq!(value("z").await, json!(true), "doc-b sorts after doc-a");

    let health = sidecar.health().await.expect("health");
    assert_eq!(health["shadowed_count"], 4, "{health}");
    assert_eq!(
        health["shadowed"],
        json!([
            {"flag": "x", "kept": "/shadow/later/x", "hidden": "/shadow/flags/doc-a"},
            {"flag": "x", "kept": "/shadow/later/x", "hidden": "/shadow/flags/doc-b"},
            {"flag": "y", "kept": "/shadow/flags/y", "hidden": "/shadow/flags/doc-a"},
            {"flag": "z", "kept": "/shadow/flags/doc-b", "hidden": "/shadow/flags/doc-a"},
        ])
    );
    let log = sidecar.proc.log();
    let warned = log
        .lines()
        .filter(|l| l.contains("flag defined twice") && l.contains("\"hidden\""))
        .count();
    assert_eq!(warned, 4, "{log}");
}

/// The README's stories, stored in SSM under a `#flagd` path, read by the `flag-check` example
/// under the Lambda emulator with the real extension: typed attributes reach the rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_handler_reads_the_stories_from_a_flagd_path() {
    let moto = Moto::start().await;
    let ssm = common::ssm_client(moto.port);
    let stories = std::fs::read_to_string(workspace().join("examples/flagd/stories.json"))
        .expect("the stories");
    testkit::lambda::put(
        &ssm,
        "/stories/flagd/stories",
        &stories,
        ParameterType::String,
    )
    .await;
    let function = common::Function::start(
        moto.port,
        "/stories/flagd#flagd",
        60,
        lambda_simulator::FreezeMode::None,
    )
    .await;
    let names = ["checkout", "holiday-banner"];
    let gold = function
        .invoke(json!({"user_id": "tenant-9", "flags": names,
                       "attributes": {"tier": "gold", "app": {"version": "2.4.1"}}}))
        .await;
    assert_eq!(
        gold["variants"]["checkout"],
        json!({"value": "new", "variant": "new", "reason": "TARGETING_MATCH"}),
        "{gold}"
    );
    let other = function
        .invoke(json!({"user_id": "user-7", "flags": names}))
        .await;
    let checkout = &other["variants"]["checkout"];
    assert_eq!(checkout["reason"], "SPLIT", "{other}");
    let again = function
        .invoke(json!({"user_id": "user-7", "flags": names}))
        .await;
    assert_eq!(again["variants"]["checkout"], *checkout, "sticky per user");
    let banner = &other["variants"]["holiday-banner"];
    assert_eq!(banner["reason"], "TARGETING_MATCH", "{other}");
    // Off before 2027-01-08 09:00 Berlin (1799395200), on from then.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let open = now >= 1_799_395_200;
    assert_eq!(banner["value"], json!(open), "{other}");
    assert_eq!(banner["variant"], if open { "on" } else { "off" });
    assert_eq!(other["flags"]["holiday-banner"], json!(open), "{other}");
}

/// `template.yaml` carries the stories as a flagd document parameter, and an AppConfig profile
/// holding a flagd document: both load, every flag valid.
#[test]
fn the_template_carries_flagd_documents_that_load() {
    let value = &testkit::template::parameter_value("FlagdStoriesDocument");
    let in_template: Value = serde_json::from_str(value).expect("JSON");
    let stories: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace().join("examples/flagd/stories.json")).expect("stories"),
    )
    .expect("JSON");
    assert_eq!(
        in_template, stories,
        "the template holds the README's stories"
    );
    assert!(
        value.len() <= 4096,
        "fits SSM's Standard tier: {} bytes",
        value.len()
    );

    let content = testkit::template::block_scalar("FlagdVersion", "Content");
    let profile: Value = serde_json::from_str(&content).expect("the profile's content is JSON");
    assert!(flags::format::declares_flagd(&profile));
    for document in [&in_template, &profile] {
        let entries = flags::FlagEntry::from_flagd_document(
            "template.yaml",
            1,
            false,
            document,
            flags::Bucketing::V3,
        )
        .expect("a flag document");
        assert!(
            entries.iter().all(|e| e.value().is_ok()),
            "every flag loads"
        );
    }
}

/// A document broken as a whole (bad JSON, a broken top level) never takes its flags out, nor
/// brings back what they hid: its last good version is served, the source stale and saying why,
/// until it is fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_document_keeps_its_last_good_version_served() {
    let moto = Moto::start().await;
    let ssm = common::ssm_client(moto.port);
    let kill = json!({"flags": {"payments": {"state": "ENABLED",
        "variants": {"on": true, "off": false}, "defaultVariant": "off"}}});
    testkit::lambda::put(&ssm, "/broken/base/payments", "true", ParameterType::String).await;
    testkit::lambda::put(
        &ssm,
        "/broken/kill/switches",
        &kill.to_string(),
        ParameterType::String,
    )
    .await;
    let sidecar = Sidecar::start(moto.port, "/broken/base,/broken/kill#flagd", 1, &[]).await;
    let payments = || async {
        let (_, _, text) = http_request(
            sidecar.port,
            "POST",
            "/ofrep/v1/evaluate/flags/payments",
            &[(TOKEN_HEADER, SIDECAR_TOKEN)],
            "{}",
        )
        .await
        .expect("answers");
        serde_json::from_str::<Value>(&text).expect("JSON")["value"].clone()
    };
    assert_eq!(
        payments().await,
        json!(false),
        "the kill switch's document wins"
    );

    // Broken: a typo in the JSON. The kill switch stays served; the source is stale, saying why.
    testkit::lambda::put(
        &ssm,
        "/broken/kill/switches",
        "{\"flags\": {",
        ParameterType::String,
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let health = loop {
        let health = sidecar.health().await.expect("health");
        if health["status"] == "stale" {
            break health;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never stale: {health}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let why = health["last_error"].as_str().unwrap_or_default();
    assert!(
        why.contains("/broken/kill/switches (version 2)") && why.contains("version 1 is served"),
        "{health}"
    );
    assert_eq!(
        payments().await,
        json!(false),
        "still the kill switch, never the base's true"
    );

    // Fixed: current again.
    let fixed = kill
        .to_string()
        .replace("\"off\"}}", "\"off\", \"metadata\": {\"fixed\": true}}}");
    testkit::lambda::put(&ssm, "/broken/kill/switches", &fixed, ParameterType::String).await;
    loop {
        let health = sidecar.health().await.expect("health");
        if health["status"] == "ok" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never ok again: {health}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(payments().await, json!(false));
}
