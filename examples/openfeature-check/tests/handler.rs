//! The real `openfeature-check` binary (flags read only through OpenFeature) beside the real
//! extension under the Lambda emulator, moto as SSM: its answers equal the library's.

use std::time::Duration;

use aws_sdk_ssm::types::ParameterType;
use lambda_simulator::FreezeMode;
use serde_json::json;
use testkit::Moto;
use testkit::lambda::{
    binary, extension_binary, function_env, put, simulator, spawn, ssm_client, wait_complete,
};

const PATH: &str = "/of/test/features";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_reading_flags_through_openfeature_gets_the_librarys_answers() {
    let moto = Moto::start().await;
    let ssm = ssm_client(moto.port);
    let s = ParameterType::String;
    put(&ssm, &format!("{PATH}/dark-mode"), "true", s.clone()).await;
    put(
        &ssm,
        &format!("{PATH}/new-checkout-flow"),
        r#"{"enabled": true, "allowed_user_ids": ["alice"]}"#,
        s.clone(),
    )
    .await;
    put(
        &ssm,
        &format!("{PATH}/new-payment-processor"),
        r#"{"enabled": true, "rollout_percentage": 50}"#,
        s,
    )
    .await;
    let sim = simulator(FreezeMode::None).await;
    let env = function_env(moto.port, PATH, testkit::free_port(), 60);
    let extension = spawn(&sim, &extension_binary(), &env, "of-ext");
    testkit::first_next(&sim, Duration::from_secs(15))
        .await
        .unwrap_or_else(|e| panic!("{e}:\n{}", extension.log()));
    let function = spawn(&sim, &binary("openfeature-check"), &env, "of-fn");
    let names = [
        "dark-mode",
        "new-checkout-flow",
        "new-payment-processor",
        "missing",
    ];
    for user in ["alice", "bob"] {
        let id = sim
            .enqueue_payload(json!({"user_id": user, "region": "us-east-1", "flags": names}))
            .await;
        let state = wait_complete(&sim, &id, Duration::from_secs(20))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}\n{}", extension.log(), function.log()));
        let answer = state.response.expect("answered").payload;
        let flags = &answer["flags"];
        assert_eq!(flags["dark-mode"]["value"], true, "{answer}");
        assert_eq!(flags["dark-mode"]["reason"], "Static");
        assert_eq!(
            flags["new-checkout-flow"]["value"],
            user == "alice",
            "{answer}"
        );
        assert_eq!(flags["new-checkout-flow"]["reason"], "TargetingMatch");
        assert_eq!(
            flags["new-payment-processor"]["value"],
            flags::bucket(user, None) <= 50,
            "{answer}"
        );
        assert_eq!(flags["new-payment-processor"]["reason"], "Split");
        assert_eq!(flags["missing"]["value"], false);
        assert_eq!(flags["missing"]["error"], "FlagNotFound", "{answer}");
    }
}
