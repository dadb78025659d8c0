//! The flags the extension's integration tests seed, and what a handler must answer for them.
//! The simulated Lambda environment itself is `testkit::lambda`.
#![allow(dead_code)] // each test binary uses a different part

use aws_sdk_ssm::types::ParameterType;
use lambda_simulator::FreezeMode;

#[allow(unused_imports)] // each test binary uses a different part
pub use testkit::lambda::{Function, Proc, TOKEN, function_env, spawn, ssm_client};
#[allow(unused_imports)]
pub use testkit::{Moto, endpoint, free_port, http_get};

/// The flags path every test uses.
pub const PATH: &str = "/myapp/test/features";

/// Creates or overwrites the flag `name` under [`PATH`].
pub async fn put(ssm: &aws_sdk_ssm::Client, name: &str, value: &str, kind: ParameterType) {
    testkit::lambda::put(ssm, &format!("{PATH}/{name}"), value, kind).await;
}

/// Starts a simulated function reading [`PATH`] from the endpoint on `ssm_port`.
pub async fn start(ssm_port: u16, max_age_s: u64, freeze: FreezeMode) -> Function {
    Function::start(ssm_port, PATH, max_age_s, freeze).await
}

/// [`start`] with extra environment for both processes.
pub async fn start_with(
    ssm_port: u16,
    max_age_s: u64,
    freeze: FreezeMode,
    extra: &[(&str, &str)],
) -> Function {
    Function::start_with(ssm_port, PATH, max_age_s, freeze, extra).await
}

/// The seed article's flags, plus 25 more under nested names (pagination), a nested
/// `checkout/v2`, a SecureString JSON flag and a malformed one: 32 parameters.
pub async fn seed(ssm: &aws_sdk_ssm::Client) {
    let s = ParameterType::String;
    put(ssm, "dark-mode", "true", s.clone()).await;
    put(
        ssm,
        "new-analytics",
        r#"{"enabled": true, "rollout_percentage": 25, "allowed_regions": ["us-east-1", "us-west-2"], "excluded_user_ids": ["user-123", "user-456"]}"#,
        s.clone(),
    )
    .await;
    put(
        ssm,
        "new-checkout-flow",
        r#"{"enabled": true, "allowed_user_ids": ["alice", "user-123"]}"#,
        s.clone(),
    )
    .await;
    put(
        ssm,
        "new-payment-processor",
        r#"{"enabled": true, "rollout_percentage": 5, "fallback_on_error": true}"#,
        s.clone(),
    )
    .await;
    put(ssm, "checkout/v2", "false", s.clone()).await;
    put(
        ssm,
        "partner-api",
        r#"{"enabled": true, "api_key": "sk-live-DO-NOT-LOG-91c2"}"#,
        ParameterType::SecureString,
    )
    .await;
    put(
        ssm,
        "broken",
        r#"{"enabled": true, "rollout_percentage": 150}"#,
        s.clone(),
    )
    .await;
    for i in 0..25 {
        let value = if i % 2 == 0 { "true" } else { "false" };
        put(
            ssm,
            &format!("team-{}/feature-{i:02}", i % 3),
            value,
            s.clone(),
        )
        .await;
    }
}

/// The flag names [`seed`] creates, with what `flag-check` must answer for user `alice` in
/// us-east-1 (bucket 1).
pub fn seeded_expectations() -> Vec<(String, bool)> {
    let mut all: Vec<(String, bool)> = [
        ("dark-mode", true),
        ("new-analytics", true),
        ("new-checkout-flow", true),
        ("new-payment-processor", true),
        ("checkout/v2", false),
        ("partner-api", true),
        ("broken", false),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_owned(), v))
    .collect();
    all.extend((0..25).map(|i| (format!("team-{}/feature-{i:02}", i % 3), i % 2 == 0)));
    all
}
