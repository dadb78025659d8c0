//! `powertools-catalogue`: the product catalogue's feature flags, read with `flags` from a
//! Powertools for AWS Lambda feature-flags document in AppConfig
//! (`SSM_FLAGS_APPCONFIG=<app>/<env>/<profile>#powertools`), served by the `ssm-flags` extension.
//!
//! The Rust half of a pair: `examples/powertools/python/app.py` is the same handler on
//! Powertools' own `FeatureFlags`, reading the same document (`examples/powertools/features.json`).
//! Both answer the same event with the same response (`extension/tests/powertools_examples.rs`).
//!
//! Event: `{"context": {"tier": "premium", "tenant_id": "acme-corp", "customer_number": 1042, …}}`,
//! the Powertools evaluation context (a missing or `null` `context` is an empty one).
//! Response: `{"features": {"premium_features": true, …, "checkout_banner": {…}}}`: every feature
//! of [`FEATURES`], a boolean feature as `true` or `false` (`false` when the document lacks it),
//! `checkout_banner` as the value its first matching rule (or its `default`) holds (`null` when
//! the document lacks it).

use std::collections::BTreeMap;

use flags::Context;
use lambda_runtime::tower::Layer;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How a feature is read.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A boolean feature (Powertools' default, `boolean_type` true): `enabled_for`.
    Boolean,
    /// `boolean_type: false`: any JSON value, `variant_for`.
    Value,
}

/// Each feature the handler reads (the Python handler's `FEATURES`).
const FEATURES: [(&str, Kind); 5] = [
    ("premium_features", Kind::Boolean),
    ("ten_percent_off_campaign", Kind::Boolean),
    ("checkout_banner", Kind::Value),
    ("night_maintenance", Kind::Boolean),
    ("weekend_specials", Kind::Boolean),
];

/// The event: Powertools' evaluation context.
#[derive(Debug, Deserialize)]
struct Request {
    /// The context's keys are what the rules' conditions read (any JSON value each); missing
    /// or `null`: an empty context, as the Python handler reads it.
    #[serde(default)]
    context: Option<Map<String, Value>>,
}

/// Each feature's answer, by name.
#[derive(Debug, Serialize)]
struct Features {
    features: BTreeMap<&'static str, Value>,
}

async fn handler(event: LambdaEvent<Request>) -> Result<Features, Error> {
    let fields = event.payload.context.unwrap_or_default();
    let ctx = Context::new().with_fields(&fields);
    let mut features = BTreeMap::new();
    for (name, kind) in FEATURES {
        let answer = match kind {
            Kind::Boolean => Value::Bool(flags::get(name).enabled_for(&ctx)),
            Kind::Value => {
                // The value, the variant (the matched rule's name, or "default") and the reason
                // (TARGETING_MATCH, DEFAULT, or STATIC for a feature without rules).
                let variant = flags::get(name).variant_for(&ctx);
                lambda_runtime::tracing::debug!(
                    feature = name,
                    variant = variant.name.as_deref().unwrap_or(""),
                    reason = variant.reason.as_str(),
                    "resolved"
                );
                variant
                    .value
                    .map_or(Value::Null, |value| value.into_owned())
            }
        };
        features.insert(name, answer);
    }
    Ok(Features { features })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // `FlagsLayer` makes the flags current before each invocation (one request to the extension
    // on loopback; none on Managed Instances, where a watch keeps them current); `flags::get`
    // then reads them lock-free.
    lambda_runtime::run_concurrent(flags::FlagsLayer.layer(service_fn(handler))).await
}
