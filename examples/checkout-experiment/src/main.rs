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
    /// How long the payment provider takes to charge the card, in milliseconds (a stand-in for
    /// its call: local runs and tests set it to make invocations overlap).
    #[serde(default)]
    payment_ms: u64,
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

/// The flow `snapshot`'s flag shows the customer: reading it counts their exposure.
fn flow_for(customer: &Context<'_>, snapshot: &flags::Snapshot) -> String {
    snapshot
        .get(FLAG)
        .string_for(customer)
        .unwrap_or("classic")
        .to_owned()
}

/// The order completed: its conversion, with the total in dollars as the value.
fn completed(customer: &Context<'_>, total_cents: u64) {
    // An invalid event name is a bug of ours, not the customer's: the order stands either way.
    if let Err(error) = flags::track_value(COMPLETED, customer, total_cents as f64 / 100.0) {
        tracing::warn!(%error, "conversion not tracked");
    }
}

async fn handler(event: LambdaEvent<Checkout>) -> Result<Outcome, Error> {
    let request = event.payload;
    let customer = Context::user(&request.user_id);
    let flow = flow_for(&customer, &flags::pin());
    let total_cents = total(&request.items);
    let completed_order = request.confirmed && !request.items.is_empty();
    if completed_order {
        // The charge: other invocations run meanwhile on Managed Instances.
        tokio::time::sleep(std::time::Duration::from_millis(request.payment_ms)).await;
        completed(&customer, total_cents);
    }
    Ok(Outcome {
        steps: steps(&flow),
        flow,
        completed: completed_order,
        total_cents,
    })
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

    #[test]
    fn a_completed_order_is_a_conversion_for_the_flow_shown() {
        let s = snapshot();
        let scope = Scope::with_counting(true);
        let customer = Context::user("customer-7");
        let flow = scope.enter(|| {
            let flow = flow_for(&customer, &s);
            completed(&customer, 2500);
            flow
        });
        assert!(["classic", "one-page", "express"].contains(&flow.as_str()));
        let counts = scope.take();
        assert_eq!(counts.exposures[&(FLAG.to_owned(), flow.clone())], 1);
        let conversion = &counts.conversions[&(FLAG.to_owned(), flow, COMPLETED.to_owned())];
        assert_eq!(
            (conversion.count, conversion.values.as_slice()),
            (1, &[25.0][..])
        );
    }

    #[test]
    fn an_abandoned_order_is_an_exposure_only() {
        let s = snapshot();
        let scope = Scope::with_counting(true);
        scope.enter(|| flow_for(&Context::user("customer-8"), &s));
        let counts = scope.take();
        assert_eq!(counts.total_exposures(), 1);
        assert!(counts.conversions.is_empty());
    }
}
