//! `flag-check`: what does this user see?
//!
//! Event: `{"user_id": "alice", "region": "us-east-1", "flags": ["dark-mode", "new-analytics"]}`,
//! optionally with typed `"attributes": {"tier": "gold", "app": {"version": "2.4.1"}}` (what
//! flagd rules read).
//! Response: `{"snapshot_version": 3, "status": "ok", "age_seconds": 1.2,
//! "flags": {"dark-mode": true, …},
//! "reasons": {"dark-mode": "boolean flag set to true", …},
//! "variants": {"checkout": {"value": "new", "variant": "new", "reason": "TARGETING_MATCH"}}}`:
//! every requested flag appears in `flags`, `false` when missing, broken or not a boolean, with
//! the reason; a flagd flag also in `variants`, with its typed value.

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
    /// Typed attributes (any JSON value), read by flagd rules.
    #[serde(default)]
    attributes: serde_json::Map<String, serde_json::Value>,
}

/// A flagd flag's answer.
#[derive(Debug, Serialize)]
struct Resolved {
    /// The variant's value (`null`: the caller's default applies).
    value: serde_json::Value,
    variant: Option<String>,
    /// OpenFeature's reason.
    reason: &'static str,
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
    /// flagd flags only.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    variants: BTreeMap<String, Resolved>,
}

async fn handler(event: LambdaEvent<Check>) -> Result<Seen, Error> {
    let check = event.payload;
    // One snapshot for the whole invocation: every answer agrees.
    let snapshot = flags::pin();
    let mut context = Context::new().with_fields(&check.attributes);
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
        variants: BTreeMap::new(),
    };
    for name in check.flags {
        let flag = snapshot.get(&name);
        let evaluation = flag.evaluate(&context);
        if matches!(evaluation.reason, flags::Reason::Flagd { .. }) {
            let resolved = flag.variant_for(&context);
            seen.variants.insert(
                name.clone(),
                Resolved {
                    value: resolved
                        .value
                        .map_or(serde_json::Value::Null, |v| v.into_owned()),
                    variant: resolved.name.map(|n| n.into_owned()),
                    reason: resolved.reason.as_str(),
                },
            );
        }
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
