//! `openfeature-check`: a handler that reads flags only through the vendor-neutral OpenFeature
//! API, with `flags::openfeature::SnapshotProvider` (no I/O per evaluation: `FlagsLayer` keeps
//! the in-process snapshot current, as for `flags::get`).
//!
//! Event: `{"user_id": "alice", "region": "us-east-1", "flags": ["new-checkout-flow"]}`.
//! Response: `{"flags": {"new-checkout-flow": {"value": true, "reason": "TargetingMatch",
//! "variant": "on"}}, "provider_status": "Ready"}`.

use std::collections::BTreeMap;

use lambda_runtime::tower::Layer;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use open_feature::{EvaluationContext, OpenFeature};
use serde::{Deserialize, Serialize};

/// The event: who to evaluate for, and which flags.
#[derive(Debug, Deserialize)]
struct Check {
    user_id: Option<String>,
    region: Option<String>,
    #[serde(default)]
    flags: Vec<String>,
}

/// One flag as OpenFeature resolved it.
#[derive(Debug, Serialize)]
struct Resolved {
    value: bool,
    reason: Option<String>,
    variant: Option<String>,
    error: Option<String>,
}

async fn handler(event: LambdaEvent<Check>) -> Result<serde_json::Value, Error> {
    let check = event.payload;
    let client = OpenFeature::singleton().await.create_client();
    let mut context = EvaluationContext::default();
    if let Some(user) = check.user_id {
        context = context.with_targeting_key(user);
    }
    if let Some(region) = check.region {
        context = context.with_custom_field("region", region);
    }
    let mut flags = BTreeMap::new();
    for name in check.flags {
        let resolved = match client.get_bool_details(&name, Some(&context), None).await {
            Ok(details) => Resolved {
                value: details.value,
                reason: details.reason.map(|r| format!("{r:?}")),
                variant: details.variant,
                error: None,
            },
            // The caller's default (false), and why.
            Err(error) => Resolved {
                value: false,
                reason: None,
                variant: None,
                error: Some(format!("{:?}", error.code)),
            },
        };
        flags.insert(name, resolved);
    }
    Ok(serde_json::json!({ "flags": flags }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    OpenFeature::singleton_mut()
        .await
        .set_provider(flags::openfeature::SnapshotProvider::new())
        .await;
    lambda_runtime::run_concurrent(flags::FlagsLayer.layer(service_fn(handler))).await
}
