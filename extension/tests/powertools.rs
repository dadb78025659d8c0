//! Powertools documents served by the real binary (sidecar mode) from AppConfig profiles (the
//! `testkit` stand-in) declared `#powertools`: a share of the differential test's generated
//! documents (`handler-lib/tests/powertools_reference.py`, run here on the published
//! `aws-lambda-powertools` 3.37.0) evaluated over OFREP, single and bulk, must give Powertools'
//! answers; a feature Powertools rejects answers `PARSE_ERROR`; the reason and `metadata.rule`
//! say which rule matched. Then an envelope (`SSM_FLAGS_POWERTOOLS_ENVELOPE`) selecting the
//! document from a larger configuration.

use std::collections::{BTreeMap, BTreeSet};

use flags::wire::TOKEN_HEADER;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};
use testkit::appconfig::{AppConfigData, profile_key};
use testkit::http_request;
use testkit::powertools::ABSENT;
use testkit::sidecar::{SIDECAR_TOKEN, Sidecar};

/// The share of the differential run served over OFREP (about 42 cases a document).
const DOCUMENTS: usize = 30;

async fn post(port: u16, path: &str, body: &Value) -> (u16, Value) {
    let (status, _, text) = http_request(
        port,
        "POST",
        path,
        &[
            (TOKEN_HEADER, SIDECAR_TOKEN),
            ("Content-Type", "application/json"),
        ],
        &body.to_string(),
    )
    .await
    .expect("the sidecar answers");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_documents_answer_over_ofrep_as_powertools_does() {
    let lines = testkit::powertools::reference(20_261_208, DOCUMENTS).lines;
    let standin = AppConfigData::start().await;
    // Documents whose feature names are disjoint share a sidecar (one profile each).
    let mut groups: Vec<(BTreeSet<String>, Vec<usize>)> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let ours = line.names();
        match groups
            .iter_mut()
            .find(|(taken, _)| taken.is_disjoint(&ours))
        {
            Some((taken, members)) => {
                taken.extend(ours);
                members.push(i);
            }
            None => groups.push((ours, vec![i])),
        }
        let key = profile_key("pt", "test", &format!("doc-{i}"));
        standin.deploy(&key, line.document.get(), "application/json", Some("v1"));
    }
    let endpoint = standin.endpoint();
    let (mut single, mut bulk, mut rejected, mut differences) = (0, 0, 0, Vec::new());
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for (_, members) in &groups {
        let profiles: Vec<String> = members
            .iter()
            .map(|i| format!("pt/test/doc-{i}#powertools"))
            .collect();
        let profiles = profiles.join(",");
        let sidecar = Sidecar::start(
            0,
            "",
            3600,
            &[
                ("SSM_FLAGS_PATH", ""),
                ("SSM_FLAGS_APPCONFIG", profiles.as_str()),
                ("AWS_ENDPOINT_URL_APPCONFIGDATA", endpoint.as_str()),
            ],
        )
        .await;
        for &i in members {
            let line = &lines[i];
            for name in &line.rejected {
                if name.is_empty() {
                    continue;
                }
                let path = format!(
                    "/ofrep/v1/evaluate/flags/{}",
                    utf8_percent_encode(name, NON_ALPHANUMERIC)
                );
                let (status, answer) = post(sidecar.port, &path, &json!({"context": {}})).await;
                rejected += 1;
                if answer["errorCode"] != "PARSE_ERROR" || status != 400 {
                    differences.push(format!("rejected {name:?}: {status} {answer}"));
                }
            }
            for (n, case) in line.cases.iter().enumerate() {
                // An empty name cannot be addressed in a path.
                if case.feature.is_empty() {
                    continue;
                }
                let context = Value::Object(case.context.clone());
                let path = format!(
                    "/ofrep/v1/evaluate/flags/{}",
                    utf8_percent_encode(&case.feature, NON_ALPHANUMERIC)
                );
                let (status, answer) =
                    post(sidecar.port, &path, &json!({"context": context})).await;
                single += 1;
                let ours = if case.value == ABSENT {
                    if answer["errorCode"] == "FLAG_NOT_FOUND" && status == 404 {
                        Value::String(ABSENT.into())
                    } else {
                        answer.clone()
                    }
                } else {
                    answer.get("value").cloned().unwrap_or(Value::Null)
                };
                if ours != case.value {
                    differences.push(format!(
                        "document {i} {:?} {context}: OFREP {status} {answer}, Powertools {}",
                        case.feature, case.value
                    ));
                    continue;
                }
                if case.value == ABSENT {
                    continue;
                }
                let reason = answer["reason"].as_str().unwrap_or_default().to_owned();
                let variant = answer["variant"].as_str().unwrap_or_default();
                let rule = answer["metadata"]["rule"].as_str();
                let consistent = match reason.as_str() {
                    "TARGETING_MATCH" => rule == Some(variant),
                    "DEFAULT" | "STATIC" => rule.is_none() && variant == "default",
                    _ => false,
                };
                if !consistent {
                    differences.push(format!("{:?}: inconsistent answer {answer}", case.feature));
                }
                *reasons.entry(reason).or_default() += 1;
                // Every fifth case also through the bulk evaluation, with the same context.
                if n % 5 == 0 {
                    let (_, all) = post(
                        sidecar.port,
                        "/ofrep/v1/evaluate/flags",
                        &json!({"context": context}),
                    )
                    .await;
                    let entry = all["flags"]
                        .as_array()
                        .and_then(|flags| flags.iter().find(|f| f["key"] == case.feature.as_str()));
                    bulk += 1;
                    if entry.and_then(|e| e.get("value")) != Some(&case.value) {
                        differences.push(format!(
                            "bulk {:?} {context}: {entry:?}, Powertools {}",
                            case.feature, case.value
                        ));
                    }
                }
            }
        }
    }
    println!(
        "{single} single and {bulk} bulk evaluations, {rejected} rejected features, {} sidecars; reasons {reasons:?}",
        groups.len()
    );
    assert!(
        differences.is_empty(),
        "{} differences:\n{}",
        differences.len(),
        differences
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(single >= 1_000, "{single}");
    assert!(reasons.len() == 3, "every reason seen: {reasons:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envelope_selects_the_document_and_keeps_rule_order() {
    let standin = AppConfigData::start().await;
    // Rules in reverse alphabetical order: the first written must win (the text is kept as
    // written; a `serde_json` map would sort the keys).
    let ordered = r#"{"service": {"feature_flags": {
        "banner": {"default": "none", "boolean_type": false, "rules": {
            "z-gold": {"when_match": "gold", "conditions": [{"action": "EQUALS", "key": "tier", "value": "gold"}]},
            "a-any-tier": {"when_match": "any", "conditions": [{"action": "KEY_IN_VALUE", "key": "tier", "value": ["gold", "silver"]}]}}},
        "broken": {"default": "not a boolean"}}},
        "other": {"banner": {"default": true}}}"#;
    standin.deploy(
        &profile_key("svc", "prod", "config"),
        ordered,
        "application/json",
        Some("v1"),
    );
    let endpoint = standin.endpoint();
    let sidecar = Sidecar::start(
        0,
        "",
        3600,
        &[
            ("SSM_FLAGS_PATH", ""),
            ("SSM_FLAGS_APPCONFIG", "svc/prod/config#powertools"),
            ("SSM_FLAGS_POWERTOOLS_ENVELOPE", "service.feature_flags"),
            ("AWS_ENDPOINT_URL_APPCONFIGDATA", endpoint.as_str()),
        ],
    )
    .await;
    let ask = |tier: &'static str| {
        let port = sidecar.port;
        async move {
            post(
                port,
                "/ofrep/v1/evaluate/flags/banner",
                &json!({"context": {"tier": tier}}),
            )
            .await
            .1
        }
    };
    let gold = ask("gold").await;
    assert_eq!(
        (
            &gold["value"],
            &gold["variant"],
            &gold["reason"],
            &gold["metadata"]["rule"]
        ),
        (
            &json!("gold"),
            &json!("z-gold"),
            &json!("TARGETING_MATCH"),
            &json!("z-gold")
        ),
        "{gold}"
    );
    let silver = ask("silver").await;
    assert_eq!(silver["value"], "any", "{silver}");
    let bronze = ask("bronze").await;
    assert_eq!(
        (&bronze["value"], &bronze["reason"]),
        (&json!("none"), &json!("DEFAULT")),
        "{bronze}"
    );
    let (status, broken) = post(
        sidecar.port,
        "/ofrep/v1/evaluate/flags/broken",
        &json!({"context": {}}),
    )
    .await;
    assert_eq!(
        (status, &broken["errorCode"]),
        (400, &json!("PARSE_ERROR")),
        "{broken}"
    );
    let details = broken["errorDetails"].as_str().unwrap_or_default();
    assert!(details.contains("broken.default"), "{broken}");
    let health = sidecar.health().await.expect("health");
    assert_eq!(health["flags"], 2, "{health}");
}
