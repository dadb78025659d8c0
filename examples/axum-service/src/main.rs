//! `axum-service`: a long-running HTTP service that reads feature flags through the `flags`
//! crate, kept current by the `ssm-flags` sidecar (`SSM_FLAGS_MODE=sidecar`) on the same host,
//! task or pod.
//!
//! At start it takes the sidecar's snapshot ([`flags::sync`], bounded) and starts
//! [`flags::watch`]: one long poll held by the sidecar, answered the moment the flags change.
//! Requests only read the in-process snapshot: no I/O per request, no polling.
//!
//! - `GET /checkout?user_id=alice&region=us-east-1`: which checkout flow this user gets (the
//!   seed's `new-checkout-flow`), and why;
//! - `GET /flags/{name}?user_id=…&region=…`: any flag, evaluated for the user;
//! - `GET /healthz`: the service's own health, with the flags' status and age.
//!
//! Environment: `PORT` (default 8080; the service listens on 0.0.0.0), and the `flags` client's
//! (`SSM_FLAGS_PORT`, `SSM_FLAGS_TOKEN` or `SSM_FLAGS_TOKEN_FILE`, `SSM_FLAGS_CLIENT_WAIT_S`).

use axum::extract::{Path, Query};
use axum::routing::get;
use axum::{Json, Router};
use flags::Context;
use serde::{Deserialize, Serialize};

/// Who a flag is evaluated for.
#[derive(Debug, Deserialize)]
struct Who {
    user_id: Option<String>,
    region: Option<String>,
}

impl Who {
    fn context(&self) -> Context<'_> {
        let mut context = Context::new();
        if let Some(user) = self.user_id.as_deref() {
            context = context.with_user(user);
        }
        if let Some(region) = self.region.as_deref() {
            context = context.with_region(region);
        }
        context
    }
}

/// One flag's decision.
#[derive(Debug, Serialize)]
struct Decision {
    flag: String,
    enabled: bool,
    reason: String,
    /// The snapshot the decision was read from.
    version: u64,
}

fn decide(name: &str, who: &Who) -> Decision {
    // One snapshot for the whole answer: the version and the decision agree.
    let snapshot = flags::pin();
    let evaluation = snapshot.get(name).evaluate(&who.context());
    Decision {
        flag: name.to_owned(),
        enabled: evaluation.enabled,
        reason: evaluation.to_string(),
        version: snapshot.version(),
    }
}

async fn checkout(Query(who): Query<Who>) -> Json<serde_json::Value> {
    let decision = decide("new-checkout-flow", &who);
    let flow = if decision.enabled { "new" } else { "legacy" };
    Json(serde_json::json!({ "flow": flow, "decision": decision }))
}

async fn flag(Path(name): Path<String>, Query(who): Query<Who>) -> Json<Decision> {
    Json(decide(&name, &who))
}

async fn healthz() -> Json<serde_json::Value> {
    let snapshot = flags::pin();
    Json(serde_json::json!({
        "ok": true,
        "flags": {
            "status": snapshot.status(),
            "version": snapshot.version(),
            "age_seconds": snapshot.age().map(|a| a.as_secs_f64()),
        }
    }))
}

fn app() -> Router {
    Router::new()
        .route("/checkout", get(checkout))
        .route("/flags/{*name}", get(flag))
        .route("/healthz", get(healthz))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().json().init();
    let port: u16 = match std::env::var("PORT") {
        Ok(raw) => raw
            .trim()
            .parse()
            .map_err(|_| format!("PORT={raw:?} is not a port number"))?,
        Err(_) => 8080,
    };
    // The sidecar's snapshot before the first request (bounded: defaults if it is not up yet),
    // then kept current by a long poll.
    let synced = flags::sync().await;
    flags::watch()?;
    tracing::info!(?synced, version = flags::version(), "flags watched");
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await?;
    tracing::info!(port, "listening");
    axum::serve(listener, app())
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}
