//! `flag-check`: what does this user see?
//!
//! Event: `{"user_id": "alice", "region": "us-east-1", "flags": ["dark-mode", "new-analytics"]}`.
//! Response: `{"snapshot_version": 3, "status": "ok", "age_seconds": 1.2,
//! "flags": {"dark-mode": true, …},
//! "reasons": {"dark-mode": "boolean flag set to true", …}}`: every requested flag appears,
//! `false` when missing or broken, with the reason.

use std::collections::BTreeMap;

use flags::Context;
use lambda_runtime::tower::Layer;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde::{Deserialize, Serialize};

/// The event: who to evaluate for, and which flags.
#[derive(Debug, Deserialize)]
struct Check {
    user_id: Option<String>,
    region: Option<String>,
    #[serde(default)]
    flags: Vec<String>,
}

/// What the user sees.
#[derive(Debug, Serialize)]
struct Seen {
    snapshot_version: u64,
    /// `ok`, `stale`, `degraded` (no flags yet) or `fallback`.
    status: flags::Status,
    /// Seconds since the extension last fetched the flags (`null` before any fetch).
    age_seconds: Option<f64>,
    flags: BTreeMap<String, bool>,
    reasons: BTreeMap<String, String>,
}

async fn handler(event: LambdaEvent<Check>) -> Result<Seen, Error> {
    let check = event.payload;
    // One snapshot for the whole invocation: every answer agrees.
    let snapshot = flags::pin();
    let mut context = Context::new();
    if let Some(user) = check.user_id.as_deref() {
        context = context.with_user(user);
    }
    if let Some(region) = check.region.as_deref() {
        context = context.with_region(region);
    }
    let mut seen = Seen {
        snapshot_version: snapshot.version(),
        status: snapshot.status(),
        age_seconds: snapshot.age().map(|age| age.as_secs_f64()),
        flags: BTreeMap::new(),
        reasons: BTreeMap::new(),
    };
    for name in check.flags {
        let evaluation = snapshot.get(&name).evaluate(&context);
        seen.reasons.insert(name.clone(), evaluation.to_string());
        seen.flags.insert(name, evaluation.enabled);
    }
    Ok(seen)
}

// Several threads: on Managed Instances, concurrent invocations read the flags from every core.
#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // Concurrent invocations on Lambda Managed Instances (AWS_LAMBDA_MAX_CONCURRENCY > 1), one
    // at a time elsewhere: the same binary runs on both.
    lambda_runtime::run_concurrent(flags::FlagsLayer.layer(service_fn(handler))).await
}
