//! `payment`: the seed article's gradual rollout of a new payment processor.
//!
//! `new-payment-processor` is `{"enabled": true, "rollout_percentage": 5, "fallback_on_error": true}`:
//! users whose bucket is within the percentage are charged by the new processor. When the new
//! processor fails and the flag says `fallback_on_error`, the charge falls back to the legacy
//! processor; otherwise the error is returned. Raising the percentage (5 → 10 → 25 → 50 → 100)
//! needs no deploy; dropping it to 0 stops the rollout at once.

use flags::Context;
use lambda_runtime::tower::Layer;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde::{Deserialize, Serialize};

/// The charge request. `new_processor_down` simulates an outage of the new processor.
#[derive(Debug, Deserialize)]
struct Charge {
    user_id: String,
    amount_cents: u64,
    #[serde(default)]
    new_processor_down: bool,
}

/// The outcome of a charge.
#[derive(Debug, Serialize, PartialEq)]
struct Receipt {
    processor: &'static str,
    charge_id: String,
    amount_cents: u64,
    fell_back: bool,
    reason: String,
}

/// A processor refused or failed the charge.
#[derive(Debug, PartialEq, thiserror::Error)]
enum PaymentError {
    #[error("new payment processor failed for {user}: {cause} (fallback_on_error is off)")]
    NewProcessor { user: String, cause: String },
    #[error("amount must be positive")]
    ZeroAmount,
}

fn legacy_processor(charge: &Charge) -> Result<String, String> {
    Ok(format!("legacy-{}-{}", charge.user_id, charge.amount_cents))
}

fn new_processor(charge: &Charge) -> Result<String, String> {
    if charge.new_processor_down {
        return Err("upstream timeout after 800 ms".to_owned());
    }
    Ok(format!("np-{}-{}", charge.user_id, charge.amount_cents))
}

fn process(charge: &Charge, flag: &flags::Flag<'_>) -> Result<Receipt, PaymentError> {
    if charge.amount_cents == 0 {
        return Err(PaymentError::ZeroAmount);
    }
    let evaluation = flag.evaluate(&Context::user(&charge.user_id));
    let reason = evaluation.to_string();
    let receipt = |processor, charge_id, fell_back| Receipt {
        processor,
        charge_id,
        amount_cents: charge.amount_cents,
        fell_back,
        reason: reason.clone(),
    };
    if !evaluation.enabled {
        let id = legacy_processor(charge).map_err(|cause| PaymentError::NewProcessor {
            user: charge.user_id.clone(),
            cause,
        })?;
        return Ok(receipt("legacy", id, false));
    }
    match new_processor(charge) {
        Ok(id) => Ok(receipt("new", id, false)),
        Err(cause) if flag.fallback_on_error() => {
            tracing::warn!(user = %charge.user_id, %cause, "new processor failed, falling back to legacy");
            let id = legacy_processor(charge).map_err(|cause| PaymentError::NewProcessor {
                user: charge.user_id.clone(),
                cause,
            })?;
            Ok(receipt("legacy", id, true))
        }
        Err(cause) => Err(PaymentError::NewProcessor {
            user: charge.user_id.clone(),
            cause,
        }),
    }
}

async fn handler(event: LambdaEvent<Charge>) -> Result<Receipt, Error> {
    // One snapshot for the invocation: the rollout decision and `fallback_on_error` agree.
    let snapshot = flags::pin();
    Ok(process(&event.payload, &snapshot.get(FLAG))?)
}

/// The flag this handler reads.
const FLAG: &str = "new-payment-processor";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // Concurrent invocations on Lambda Managed Instances (AWS_LAMBDA_MAX_CONCURRENCY > 1), one
    // at a time elsewhere: the same binary runs on both.
    lambda_runtime::run_concurrent(flags::FlagsLayer.layer(service_fn(handler))).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use flags::Snapshot;

    fn snapshot(raw: &str) -> Snapshot {
        Snapshot::from_values([(FLAG, raw)])
    }

    fn charge(user: &str, down: bool) -> Charge {
        Charge {
            user_id: user.to_owned(),
            amount_cents: 1250,
            new_processor_down: down,
        }
    }

    const FIVE: &str = r#"{"enabled": true, "rollout_percentage": 5, "fallback_on_error": true}"#;

    #[test]
    fn users_in_the_rollout_use_the_new_processor() {
        // alice is bucket 1: within 5%.
        let r = process(&charge("alice", false), &snapshot(FIVE).get(FLAG)).expect("charged");
        assert_eq!((r.processor, r.fell_back), ("new", false));
        assert_eq!(r.charge_id, "np-alice-1250");
        assert_eq!(r.reason, "bucket 1 is within the 5% rollout");
    }

    #[test]
    fn users_outside_the_rollout_use_the_legacy_processor() {
        // bob is bucket 33.
        let r = process(&charge("bob", false), &snapshot(FIVE).get(FLAG)).expect("charged");
        assert_eq!((r.processor, r.fell_back), ("legacy", false));
        assert_eq!(r.reason, "bucket 33 is outside the 5% rollout");
    }

    #[test]
    fn a_failure_falls_back_when_the_flag_says_so() {
        let r = process(&charge("alice", true), &snapshot(FIVE).get(FLAG)).expect("fell back");
        assert_eq!((r.processor, r.fell_back), ("legacy", true));
    }

    #[test]
    fn a_failure_is_an_error_without_fallback_on_error() {
        let strict = snapshot(r#"{"enabled": true, "rollout_percentage": 5}"#);
        assert_eq!(
            process(&charge("alice", true), &strict.get(FLAG)),
            Err(PaymentError::NewProcessor {
                user: "alice".into(),
                cause: "upstream timeout after 800 ms".into()
            })
        );
    }

    #[test]
    fn zero_percent_stops_the_rollout_and_a_broken_flag_is_legacy() {
        let zero =
            snapshot(r#"{"enabled": true, "rollout_percentage": 0, "fallback_on_error": true}"#);
        assert_eq!(
            process(&charge("alice", false), &zero.get(FLAG)).map(|r| r.processor),
            Ok("legacy")
        );
        let broken = snapshot(r#"{"enabled": true, "rollout_percentage": "5"}"#);
        assert_eq!(
            process(&charge("alice", false), &broken.get(FLAG)).map(|r| r.processor),
            Ok("legacy")
        );
    }

    #[test]
    fn raising_the_percentage_adds_users_and_keeps_earlier_ones() {
        let at = |p: u32| {
            let f = snapshot(&format!(
                r#"{{"enabled": true, "rollout_percentage": {p}}}"#
            ));
            (0..1000)
                .filter(|i| {
                    process(&charge(&format!("user-{i}"), false), &f.get(FLAG))
                        .is_ok_and(|r| r.processor == "new")
                })
                .map(|i| i.to_string())
                .collect::<std::collections::HashSet<_>>()
        };
        let (five, fifty) = (at(5), at(50));
        assert!(
            five.is_subset(&fifty),
            "a rollout never takes the feature away from earlier users"
        );
        assert!(
            (30..=70).contains(&five.len()),
            "{} of 1000 at 5%",
            five.len()
        );
        assert!(
            (450..=550).contains(&fifty.len()),
            "{} of 1000 at 50%",
            fifty.len()
        );
    }
}
