//! `checkout-experiment`: an A/B/C test of three checkout flows.
//!
//! The flagd flag `checkout-flow` (variants `classic`, `one-page`, `express`, split by
//! `fractional`, `"metadata": {"experiment": true}`) picks the flow for each customer. Reading
//! it counts the customer's exposure; an order that completes is tracked as the conversion
//! `checkout-completed`, its total as the value. `flags::FlagsLayer` writes the invocation's
//! counts as CloudWatch EMF lines when it ends; `ssm-flags-ctl results checkout-flow --event
//! checkout-completed` reads them back with the statistics.

use flags::Context;
use lambda_runtime::tower::Layer;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde::{Deserialize, Serialize};

/// The experiment flag.
const FLAG: &str = "checkout-flow";
/// The conversion event.
const COMPLETED: &str = "checkout-completed";

/// One cart line.
#[derive(Debug, Deserialize)]
struct Item {
    quantity: u32,
    unit_price_cents: u64,
}

/// A checkout: the customer, the cart, and whether they confirmed the payment on the flow's
/// last step (a customer may abandon it).
#[derive(Debug, Deserialize)]
struct Checkout {
    user_id: String,
    #[serde(default)]
    items: Vec<Item>,
    #[serde(default)]
    confirmed: bool,
}

/// What happened: the flow shown, its steps, and whether the order completed.
#[derive(Debug, Serialize, PartialEq)]
struct Outcome {
    flow: String,
    steps: u8,
    completed: bool,
    total_cents: u64,
}

/// The steps of each flow; an unknown or missing variant falls back to the classic flow.
fn steps(flow: &str) -> u8 {
    match flow {
        "one-page" => 1,
        "express" => 2,
        _ => 4,
    }
}

fn total(items: &[Item]) -> u64 {
    items
        .iter()
        .map(|i| u64::from(i.quantity).saturating_mul(i.unit_price_cents))
        .fold(0, u64::saturating_add)
}

/// Runs one checkout against the flag in `snapshot`: the exposure is counted by the read, the
/// conversion by [`flags::track_value`] when the order completes.
fn checkout(request: &Checkout, snapshot: &flags::Snapshot) -> Outcome {
    let customer = Context::user(&request.user_id);
    let flow = snapshot
        .get(FLAG)
        .string_for(&customer)
        .unwrap_or("classic")
        .to_owned();
    let total_cents = total(&request.items);
    let completed = request.confirmed && !request.items.is_empty();
    if completed {
        // Dollars, as the dashboards show them. An invalid event name is a bug of ours, not
        // the customer's: the order stands either way.
        if let Err(error) = flags::track_value(COMPLETED, &customer, total_cents as f64 / 100.0) {
            tracing::warn!(%error, "conversion not tracked");
        }
    }
    Outcome {
        steps: steps(&flow),
        flow,
        completed,
        total_cents,
    }
}

async fn handler(event: LambdaEvent<Checkout>) -> Result<Outcome, Error> {
    Ok(checkout(&event.payload, &flags::pin()))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run_concurrent(flags::FlagsLayer.layer(service_fn(handler))).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use flags::experiment::Scope;
    use flags::wire::Status;
    use flags::{Bucketing, FlagEntry, Snapshot};

    fn snapshot() -> Snapshot {
        let document = serde_json::json!({"flags": {FLAG: {"state": "ENABLED",
            "variants": {"classic": "classic", "one-page": "one-page", "express": "express"},
            "defaultVariant": "classic",
            "targeting": {"fractional": [["classic", 34], ["one-page", 33], ["express", 33]]},
            "metadata": {"experiment": true}}}});
        let entries =
            FlagEntry::from_flagd_document("/shop/flags", 1, false, &document, Bucketing::V3)
                .expect("a flag document");
        Snapshot::new(1, Status::Ok, entries)
    }

    fn request(user: &str, confirmed: bool) -> Checkout {
        serde_json::from_value(serde_json::json!({"user_id": user, "confirmed": confirmed,
            "items": [{"quantity": 2, "unit_price_cents": 1250}]}))
        .expect("valid request")
    }

    #[test]
    fn a_completed_order_is_a_conversion_for_the_flow_shown() {
        let s = snapshot();
        let scope = Scope::with_counting(true);
        let outcome = scope.enter(|| checkout(&request("customer-7", true), &s));
        assert!(outcome.completed);
        assert_eq!(outcome.steps, steps(&outcome.flow));
        let counts = scope.take();
        assert_eq!(
            counts.exposures[&(FLAG.to_owned(), outcome.flow.clone())],
            1
        );
        let conversion =
            &counts.conversions[&(FLAG.to_owned(), outcome.flow, COMPLETED.to_owned())];
        assert_eq!(
            (conversion.count, conversion.values.as_slice()),
            (1, &[25.0][..])
        );
    }

    #[test]
    fn an_abandoned_order_is_an_exposure_only() {
        let s = snapshot();
        let scope = Scope::with_counting(true);
        let outcome = scope.enter(|| checkout(&request("customer-8", false), &s));
        assert!(!outcome.completed);
        let counts = scope.take();
        assert_eq!(counts.total_exposures(), 1);
        assert!(counts.conversions.is_empty());
    }
}
