//! `checkout`: the seed article's `new-checkout-flow` flag, in a handler.
//!
//! The flag (`{"enabled": true, "allowed_user_ids": [...]}`) sends allowed users through the new
//! flow and everyone else through the legacy one. The response says which flow ran and why, so
//! an operator can check a user's path without reading logs.

use flags::Context;
use lambda_runtime::tower::Layer;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde::{Deserialize, Serialize};

/// One cart line.
#[derive(Debug, Deserialize)]
struct Item {
    sku: String,
    quantity: u32,
    unit_price_cents: u64,
}

/// The checkout request.
#[derive(Debug, Deserialize)]
struct Checkout {
    user_id: String,
    #[serde(default)]
    items: Vec<Item>,
}

/// The result: which flow ran, why, and the order.
#[derive(Debug, Serialize, PartialEq)]
struct Order {
    flow: &'static str,
    reason: String,
    lines: usize,
    total_cents: u64,
    /// Set by the new flow only: the new flow quotes delivery up front.
    delivery_estimate_days: Option<u32>,
}

fn total(items: &[Item]) -> u64 {
    items
        .iter()
        .map(|i| u64::from(i.quantity).saturating_mul(i.unit_price_cents))
        .fold(0, u64::saturating_add)
}

fn legacy_checkout(items: &[Item]) -> Order {
    Order {
        flow: "legacy",
        reason: String::new(),
        lines: items.len(),
        total_cents: total(items),
        delivery_estimate_days: None,
    }
}

fn new_checkout(items: &[Item]) -> Order {
    // The new flow groups lines by SKU and quotes delivery: 2 days, 5 for large orders.
    let mut skus: Vec<&str> = items.iter().map(|i| i.sku.as_str()).collect();
    skus.sort_unstable();
    skus.dedup();
    let units: u32 = items.iter().map(|i| i.quantity).sum();
    Order {
        flow: "new",
        reason: String::new(),
        lines: skus.len(),
        total_cents: total(items),
        delivery_estimate_days: Some(if units > 10 { 5 } else { 2 }),
    }
}

fn checkout(request: &Checkout, flag: &flags::Flag<'_>) -> Order {
    let evaluation = flag.evaluate(&Context::user(&request.user_id));
    let mut order = if evaluation.enabled {
        new_checkout(&request.items)
    } else {
        legacy_checkout(&request.items)
    };
    order.reason = evaluation.to_string();
    order
}

async fn handler(event: LambdaEvent<Checkout>) -> Result<Order, Error> {
    let snapshot = flags::pin();
    Ok(checkout(&event.payload, &snapshot.get("new-checkout-flow")))
}

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
        Snapshot::from_values([("new-checkout-flow", raw)])
    }

    fn request(user: &str) -> Checkout {
        serde_json::from_value(serde_json::json!({"user_id": user, "items": [
            {"sku": "A", "quantity": 2, "unit_price_cents": 500},
            {"sku": "A", "quantity": 1, "unit_price_cents": 500},
            {"sku": "B", "quantity": 1, "unit_price_cents": 1999}
        ]}))
        .expect("valid request")
    }

    #[test]
    fn allowed_users_get_the_new_flow() {
        let s = snapshot(r#"{"enabled": true, "allowed_user_ids": ["alice"]}"#);
        let order = checkout(&request("alice"), &s.get("new-checkout-flow"));
        assert_eq!(order.flow, "new");
        assert_eq!(order.reason, "user is in `allowed_user_ids`");
        assert_eq!((order.lines, order.total_cents), (2, 3499));
        assert_eq!(order.delivery_estimate_days, Some(2));
    }

    #[test]
    fn everyone_else_gets_the_legacy_flow() {
        let s = snapshot(r#"{"enabled": true, "allowed_user_ids": ["alice"]}"#);
        let order = checkout(&request("bob"), &s.get("new-checkout-flow"));
        assert_eq!(order.flow, "legacy");
        assert_eq!(order.reason, "user is not in `allowed_user_ids`");
        assert_eq!((order.lines, order.total_cents), (3, 3499));
    }

    #[test]
    fn a_missing_or_broken_flag_means_legacy() {
        let broken = snapshot(r#"{"enabled": tru"#);
        assert_eq!(
            checkout(&request("alice"), &broken.get("new-checkout-flow")).flow,
            "legacy"
        );
        assert_eq!(
            checkout(&request("alice"), &broken.get("other")).flow,
            "legacy"
        );
    }
}
