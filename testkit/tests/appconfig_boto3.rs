//! The AppConfig data-API stand-in is wire-exact: boto3's `appconfigdata` client, which parses
//! with AWS's published service model, drives it through sessions, polls, unchanged answers (an
//! empty 200 and a 204), a new version, token reuse and expiry, throttling, server errors and an
//! unknown profile (`appconfig_boto3.py`).

use testkit::appconfig::AppConfigData;
use testkit::{process, workspace};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_parses_every_answer_of_the_appconfig_stand_in() {
    let standin = AppConfigData::start().await;
    let script = workspace().join("testkit/tests/appconfig_boto3.py");
    let endpoint = standin.endpoint();
    let script = script.to_str().expect("utf-8 path");
    let ran = process::run(
        process::python(),
        &[script, &endpoint],
        None,
        &[("AWS_EC2_METADATA_DISABLED", "true")],
    )
    .await;
    assert!(ran.success(), "{}", ran.text());
    assert!(ran.text().contains("every answer parsed"), "{}", ran.text());
    let counts = standin.counts();
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(
        counts.sessions.load(Relaxed),
        2,
        "the session and the unknown profile"
    );
    assert_eq!(counts.changed.load(Relaxed), 2, "two versions delivered");
}
