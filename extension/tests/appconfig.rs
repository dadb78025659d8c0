//! The real extension and `flag-check` with flags from an AppConfig profile (the testkit
//! stand-in of the data API, proven wire-exact by boto3 in `testkit/tests/appconfig_boto3.rs`)
//! beside an SSM path (moto).

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use aws_sdk_ssm::types::ParameterType;
use common::{Function, Moto, put};
use flags::wire::HEALTH_PATH;
use lambda_simulator::FreezeMode;
use serde_json::Value;
use testkit::appconfig::{AppConfigData, AppConfigFault, profile_key};

const PROFILE: &str = "flags-app/prod/feature-flags";
/// A second profile, listed after the first: it wins a name both have.
const OVERRIDES: &str = "flags-app/prod/overrides";
const NAMES: [&str; 5] = [
    "dark-mode",
    "new-checkout-flow",
    "shared",
    "ssm-only",
    "overridden",
];

fn names() -> Vec<String> {
    NAMES.iter().map(|n| (*n).to_owned()).collect()
}

fn deploy(standin: &AppConfigData, dark_mode: bool, label: &str) {
    let document = format!(
        r#"{{"dark-mode": {{"enabled": {dark_mode}}},
            "new-checkout-flow": {{"enabled": true, "allowed_user_ids": ["alice"]}},
            "shared": {{"enabled": true}}, "overridden": {{"enabled": false}}}}"#
    );
    standin.deploy(
        &profile_key("flags-app", "prod", "feature-flags"),
        &document,
        "application/json",
        Some(label),
    );
}

async fn until(f: &Function, limit: Duration, done: impl Fn(&Value) -> bool) -> (Value, Duration) {
    let names = names();
    let who = ("alice", "us-east-1", names.as_slice());
    f.check_until(who, limit, Duration::from_millis(100), done)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_beside_a_path_polls_at_its_interval_renews_sessions_and_survives_outages() {
    let moto = Moto::start().await;
    let ssm = common::ssm_client(moto.port);
    put(&ssm, "ssm-only", "true", ParameterType::String).await;
    put(&ssm, "shared", "false", ParameterType::String).await;
    let standin = AppConfigData::start().await;
    standin.set_poll_interval(2);
    deploy(&standin, true, "v1");
    standin.deploy(
        &profile_key("flags-app", "prod", "overrides"),
        r#"{"overridden": true}"#,
        "application/json",
        None,
    );
    let endpoint = standin.endpoint();
    let profiles = format!("{PROFILE},{OVERRIDES}");
    let f = common::start_with(
        moto.port,
        1,
        FreezeMode::None,
        &[
            ("SSM_FLAGS_APPCONFIG", profiles.as_str()),
            ("AWS_ENDPOINT_URL_APPCONFIGDATA", endpoint.as_str()),
        ],
    )
    .await;

    // Loaded at init from every source; a profile wins a name the path has, and the later
    // profile a name the earlier one has.
    let response = f.check("alice", "us-east-1", &names()).await;
    assert_eq!(response["status"], "ok", "{response}");
    for name in NAMES {
        assert_eq!(response["flags"][name], true, "{name}: {response}");
    }
    assert!(
        f.extension.log().contains("\"version_label\":\"v1\""),
        "{}",
        f.extension.log()
    );

    // A new version reaches the handler, never by polling faster than announced.
    deploy(&standin, false, "v2");
    let (_, took) = until(&f, Duration::from_secs(15), |r| {
        r["flags"]["dark-mode"] == false
    })
    .await;
    println!("AppConfig v2 reached the handler in {took:?} (poll interval 2 s)");
    // The audit line carries AppConfig's Version-Label.
    let audit = f
        .extension
        .json_lines()
        .into_iter()
        .find(|l| {
            l["target"] == "ssm_flags::audit"
                && l["flag"] == "dark-mode"
                && l["change"] == "changed"
        })
        .unwrap_or_else(|| panic!("no audit line:\n{}", f.extension.log()));
    assert_eq!(audit["version_label"], "v2", "{audit}");
    assert_eq!(
        audit["parameter"],
        "appconfig:flags-app/prod/feature-flags/dark-mode"
    );

    // Expired tokens: a new session, the flags stay.
    standin.expire_tokens();
    let sessions = standin.counts().sessions.load(Relaxed);
    deploy(&standin, true, "v3");
    until(&f, Duration::from_secs(15), |r| {
        r["flags"]["dark-mode"] == true
    })
    .await;
    assert_eq!(
        standin.counts().sessions.load(Relaxed),
        sessions + 2,
        "one new session per profile"
    );

    // AppConfig down: its last good stays (stale, naming the profile), and SSM changes still
    // arrive: one failing source never holds the other back or drops its flags.
    standin.set_fault(AppConfigFault::ServerError);
    deploy(&standin, false, "v4");
    put(&ssm, "ssm-only", "false", ParameterType::String).await;
    let (response, _) = until(&f, Duration::from_secs(15), |r| {
        r["flags"]["ssm-only"] == false && r["status"] == "stale"
    })
    .await;
    assert_eq!(
        response["flags"]["dark-mode"], true,
        "AppConfig's last good: {response}"
    );
    assert_eq!(response["flags"]["new-checkout-flow"], true, "{response}");
    let (_, health) = f.api(HEALTH_PATH).await;
    assert!(
        health["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("AppConfig profile flags-app/prod/feature-flags")),
        "{health}"
    );

    // Back: v4 arrives, current again.
    standin.set_fault(AppConfigFault::None);
    let (response, took) = until(&f, Duration::from_secs(20), |r| {
        r["flags"]["dark-mode"] == false && r["status"] == "ok"
    })
    .await;
    println!(
        "AppConfig recovered {took:?} after its outage: {}",
        response["status"]
    );
    assert_eq!(
        standin.counts().early_polls.load(Relaxed),
        0,
        "never polled before the announced interval"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_start_with_appconfig_down_serves_the_deployed_fallback() {
    let standin = AppConfigData::start().await;
    deploy(&standin, true, "v1");
    standin.set_fault(AppConfigFault::Throttle);
    let dir = std::env::temp_dir().join(format!("ssm-flags-ac-fallback-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("fallback.json");
    std::fs::write(
        &file,
        r#"{"flags": {"dark-mode": {"value": true}, "new-checkout-flow": {"value": {"enabled": true, "allowed_user_ids": ["alice"]}}}}"#,
    )
    .expect("write");
    let endpoint = standin.endpoint();
    let path = file.to_str().expect("utf-8");
    // AppConfig alone: no SSM path.
    let f = common::start_with(
        testkit::free_port(),
        1,
        FreezeMode::None,
        &[
            ("SSM_FLAGS_PATH", ""),
            ("SSM_FLAGS_APPCONFIG", PROFILE),
            ("AWS_ENDPOINT_URL_APPCONFIGDATA", endpoint.as_str()),
            ("SSM_FLAGS_FALLBACK_FILE", path),
        ],
    )
    .await;
    let response = f.check("alice", "us-east-1", &names()).await;
    assert_eq!(
        response["status"],
        "fallback",
        "{response}\n{}",
        f.extension.log()
    );
    assert_eq!(response["flags"]["dark-mode"], true);
    assert_eq!(response["flags"]["new-checkout-flow"], true);

    standin.set_fault(AppConfigFault::None);
    let (response, _) = until(&f, Duration::from_secs(15), |r| r["status"] == "ok").await;
    assert_eq!(
        response["flags"]["shared"], true,
        "the profile's flags: {response}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Polls until `done` holds; panics with `what` after `limit`.
async fn wait_for(what: &str, limit: Duration, done: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Issue 21 §6: a throttled poll keeps the session (no new session, no re-download counted as
/// changes); a new session's document is diffed by content; one changed flag is one change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_poll_keeps_the_session_and_only_changed_flags_are_changes() {
    let standin = AppConfigData::start().await;
    standin.set_poll_interval(1);
    deploy(&standin, true, "v1");
    let endpoint = standin.endpoint();
    let sidecar = testkit::sidecar::Sidecar::start(
        testkit::free_port(),
        "",
        1,
        &[
            ("SSM_FLAGS_PATH", ""),
            ("SSM_FLAGS_APPCONFIG", PROFILE),
            ("AWS_ENDPOINT_URL_APPCONFIGDATA", endpoint.as_str()),
        ],
    )
    .await;
    let health = sidecar.health().await.expect("health");
    assert_eq!(
        (
            health["status"].as_str(),
            health["flags"].as_u64(),
            health["version"].as_u64()
        ),
        (Some("ok"), Some(4), Some(1)),
        "{health}"
    );
    let audit = || -> Vec<Value> {
        sidecar
            .proc
            .json_lines()
            .into_iter()
            .filter(|l| l["target"] == "ssm_flags::audit" && l["change"] != "added")
            .collect()
    };
    let counts = standin.counts();
    assert_eq!(counts.sessions.load(Relaxed), 1);

    // One throttled poll, then AppConfig answers again: the same session goes on.
    standin.set_fault(AppConfigFault::Throttle);
    wait_for("a throttled poll", Duration::from_secs(5), || {
        counts.throttled.load(Relaxed) >= 1
    })
    .await;
    standin.set_fault(AppConfigFault::None);
    let polls = counts.polls.load(Relaxed);
    wait_for(
        "two polls after the throttling",
        Duration::from_secs(10),
        || counts.polls.load(Relaxed) >= polls + 2,
    )
    .await;
    assert_eq!(
        counts.sessions.load(Relaxed),
        1,
        "the session token was kept across the throttled poll"
    );
    let health = sidecar.health().await.expect("health");
    assert_eq!(health["version"], 1, "no new snapshot: {health}");
    assert!(audit().is_empty(), "{:#?}", audit());

    // Expired tokens: a new session, whose document is the same content: no change.
    standin.expire_tokens();
    let (sessions, changed) = (counts.sessions.load(Relaxed), counts.changed.load(Relaxed));
    wait_for("a new session's document", Duration::from_secs(10), || {
        counts.changed.load(Relaxed) > changed
    })
    .await;
    assert_eq!(counts.sessions.load(Relaxed), sessions + 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let health = sidecar.health().await.expect("health");
    assert_eq!(
        health["version"], 1,
        "same content, same snapshot: {health}"
    );
    assert!(audit().is_empty(), "{:#?}", audit());

    // One flag changed: one change, the others keep their versions.
    deploy(&standin, false, "v2");
    wait_for("the change", Duration::from_secs(10), || {
        !audit().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let changes = audit();
    assert_eq!(changes.len(), 1, "{changes:#?}");
    assert_eq!(
        (changes[0]["flag"].as_str(), changes[0]["change"].as_str()),
        (Some("dark-mode"), Some("changed"))
    );
    assert_eq!(changes[0]["previous_ssm_version"], 1, "{}", changes[0]);
    let health = sidecar.health().await.expect("health");
    assert_eq!(health["version"], 2, "{health}");
}
