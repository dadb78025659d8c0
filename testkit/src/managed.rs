//! Lambda Managed Instances, modelled on AWS's documentation, on top of `lambda-simulator`
//! (which models on-demand Lambda only). What Managed Instances change, and how it is modelled:
//!
//! - "an extension may register for `SHUTDOWN` only": [`Gate`], a proxy in front of the
//!   simulator's Extensions API, refuses a registration that asks for `INVOKE` (AWS's
//!   documentation and honeycombio/honeycomb-lambda-extension PR 170: the registration fails and
//!   the function's init with it). The status AWS answers is not documented; any non-2xx fails
//!   an extension's registration the same way, so the gate answers 403 with a Lambda error body.
//! - the environment sets `AWS_LAMBDA_INITIALIZATION_TYPE=lambda-managed-instances` and
//!   `AWS_LAMBDA_MAX_CONCURRENCY` ([`managed_env`]);
//! - nothing is frozen between invocations (`FreezeMode::None`), and several invocations run at
//!   once: the runtime (`lambda_runtime::run_concurrent`) polls `/next` from that many tasks and
//!   the simulator hands each queued invocation to one of them;
//! - SHUTDOWN ends the environment as on-demand Lambda does.
//!
//! Sources: AWS Lambda developer guide, "Lambda Managed Instances" and "Understanding the Lambda
//! Managed Instances execution environment"; aws-lambda-rust-runtime PR 1067 (`run_concurrent`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lambda_simulator::{FreezeMode, Simulator};
use serde_json::Value;
use tokio::net::TcpListener;

use crate::fault::forward;
use crate::free_port;
use crate::lambda::{
    Proc, binary, extension_binary, function_env, simulator, spawn, wait_complete,
};

/// `AWS_LAMBDA_INITIALIZATION_TYPE` on Managed Instances.
pub const INITIALIZATION_TYPE: &str = "lambda-managed-instances";

/// The variables Managed Instances add to the environment of every process of the function.
pub fn managed_env(max_concurrency: u32) -> Vec<(String, String)> {
    vec![
        (
            "AWS_LAMBDA_INITIALIZATION_TYPE".to_owned(),
            INITIALIZATION_TYPE.to_owned(),
        ),
        (
            "AWS_LAMBDA_MAX_CONCURRENCY".to_owned(),
            max_concurrency.to_string(),
        ),
    ]
}

/// The Extensions API of Managed Instances: the simulator's, refusing `INVOKE` registrations.
pub struct Gate {
    /// Its port; extensions get `AWS_LAMBDA_RUNTIME_API=127.0.0.1:{port}`.
    pub port: u16,
    refused: Arc<AtomicU64>,
}

impl Gate {
    /// A gate in front of the simulator at `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind gate");
        let port = listener.local_addr().expect("gate addr").port();
        let refused = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&refused);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let counter = Arc::clone(&counter);
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                handle(upstream, &counter, request).await,
                            )
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { port, refused }
    }

    /// `AWS_LAMBDA_RUNTIME_API` for processes behind the gate.
    pub fn runtime_api(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Registrations refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

async fn handle(
    upstream: SocketAddr,
    refused: &AtomicU64,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if parts.uri.path().ends_with("/extension/register") {
        let asks_invoke = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["events"].as_array().cloned())
            .is_some_and(|events| events.iter().any(|e| e == "INVOKE"));
        if asks_invoke {
            refused.fetch_add(1, Ordering::Relaxed);
            let mut response = Response::new(Full::new(Bytes::from_static(
                br#"{"errorMessage":"INVOKE events are not supported on Lambda Managed Instances: register for SHUTDOWN only","errorType":"Extension.InvalidEvent"}"#,
            )));
            *response.status_mut() = StatusCode::FORBIDDEN;
            response
                .headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            return response;
        }
    }
    match forward(upstream, Request::from_parts(parts, body)).await {
        Some(response) => response,
        None => {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            response
        }
    }
}

/// A function on Managed Instances: the simulator (never freezing), the gate, the real
/// extension registered through the gate, and `flag-check` running `max_concurrency`
/// invocations at once.
pub struct ManagedFunction {
    /// The Lambda emulator.
    pub sim: Simulator,
    /// The Extensions API as Managed Instances serve it.
    pub gate: Gate,
    /// The `ssm-flags` extension.
    pub extension: Proc,
    /// The `flag-check` runtime.
    pub runtime: Proc,
    /// The extension's local API port.
    pub flags_port: u16,
    /// Time from spawning the extension to its first `/next`.
    pub ready_in: Duration,
}

impl ManagedFunction {
    /// Starts it with the flags under `path` from the endpoint on `ssm_port`; `extra` is added to
    /// both processes' environment, `function_extra` to the function's only (later values win).
    pub async fn start(
        ssm_port: u16,
        path: &str,
        max_age_s: u64,
        max_concurrency: u32,
        extra: &[(&str, &str)],
        function_extra: &[(&str, &str)],
    ) -> Self {
        Self::start_runtime(
            ssm_port,
            path,
            max_age_s,
            max_concurrency,
            extra,
            function_extra,
            "flag-check",
        )
        .await
    }

    /// [`ManagedFunction::start`] running the workspace binary `runtime` as the function.
    pub async fn start_runtime(
        ssm_port: u16,
        path: &str,
        max_age_s: u64,
        max_concurrency: u32,
        extra: &[(&str, &str)],
        function_extra: &[(&str, &str)],
        runtime: &str,
    ) -> Self {
        let sim = simulator(FreezeMode::None).await;
        let gate = Gate::start(sim.addr()).await;
        let flags_port = free_port();
        let mut env = function_env(ssm_port, path, flags_port, max_age_s);
        env.extend(managed_env(max_concurrency));
        env.extend(owned(extra));
        let mut extension_env = env.clone();
        extension_env.push(("AWS_LAMBDA_RUNTIME_API".to_owned(), gate.runtime_api()));
        let started = Instant::now();
        let extension = spawn(&sim, &extension_binary(), &extension_env, "mi-ext");
        crate::first_next(&sim, Duration::from_secs(15))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{e} (registrations refused by the gate: {}):\n{}",
                    gate.refused(),
                    extension.log()
                )
            });
        let ready_in = started.elapsed();
        env.extend(owned(function_extra));
        let runtime = spawn(&sim, &binary(runtime), &env, "mi-fn");
        Self {
            sim,
            gate,
            extension,
            runtime,
            flags_port,
            ready_in,
        }
    }

    /// Queues one `flag-check` invocation per event at once, and returns their responses in the
    /// same order once all are complete.
    pub async fn invoke_all(&self, events: Vec<Value>) -> Vec<Value> {
        let mut ids = Vec::with_capacity(events.len());
        for event in events {
            ids.push(self.sim.enqueue_payload(event).await);
        }
        let mut responses = Vec::with_capacity(ids.len());
        for id in ids {
            let state = wait_complete(&self.sim, &id, Duration::from_secs(30))
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "invocation did not complete: {e}\nextension log:\n{}\nruntime log:\n{}",
                        self.extension.log(),
                        self.runtime.log()
                    )
                });
            responses.push(
                state
                    .response
                    .map(|r| r.payload)
                    .unwrap_or_else(|| panic!("invocation failed: {:?}", state.error)),
            );
        }
        responses
    }
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}
