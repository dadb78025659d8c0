//! [`FlagsLayer`]: the tower layer that makes the flags current before every invocation of a
//! `lambda_runtime` service — a [`sync`] on on-demand Lambda, the [`watch`] on Managed Instances.

use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context as TaskContext, Poll};

use super::{CLIENT, sync, watch};

/// Whether this process runs on Lambda Managed Instances (concurrent invocations, never frozen):
/// there [`FlagsLayer`] keeps the snapshot current with [`watch`].
fn managed_instances() -> bool {
    static MANAGED: LazyLock<bool> = LazyLock::new(|| {
        std::env::var("AWS_LAMBDA_INITIALIZATION_TYPE")
            .is_ok_and(|v| v.trim() == "lambda-managed-instances")
    });
    *MANAGED
}

/// Makes the process-wide snapshot current for the invocation about to run: on Managed
/// Instances, through the [`watch`] (a sync only while it has no answer); elsewhere, a [`sync`].
async fn before_invocation() {
    if managed_instances() {
        let _ = watch();
        if CLIENT.watch_is_live() {
            return;
        }
    }
    sync().await;
}

/// A tower layer that makes the flags current before every invocation of the wrapped service:
/// a [`sync`] on on-demand Lambda; on Managed Instances, where invocations run concurrently and
/// nothing is frozen, a [`watch`] started at the first invocation keeps them current and an
/// invocation makes no request at all. Works with `lambda_runtime::run` and `run_concurrent`.
///
/// Each invocation is an experiment [`crate::experiment::Scope`]: its exposures and
/// conversions are written as EMF lines when it ends.
///
/// ```no_run
/// # async fn handler(_: lambda_runtime::LambdaEvent<serde_json::Value>) -> Result<(), lambda_runtime::Error> { Ok(()) }
/// use lambda_runtime::tower::Layer;
/// # async fn main_() -> Result<(), lambda_runtime::Error> {
/// lambda_runtime::run(flags::FlagsLayer.layer(lambda_runtime::service_fn(handler))).await
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct FlagsLayer;

impl<S> tower_layer::Layer<S> for FlagsLayer {
    type Service = FlagsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FlagsService { inner }
    }
}

/// The service made by [`FlagsLayer`].
#[derive(Debug, Clone)]
pub struct FlagsService<S> {
    inner: S,
}

impl<S> FlagsService<S> {
    /// Wraps `inner` so that every call syncs the flags first (same as `FlagsLayer.layer(inner)`).
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S, R> tower_service::Service<R> for FlagsService<S>
where
    S: tower_service::Service<R> + Clone + Send + 'static,
    S::Future: Send,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        // The clone is ready-less; keep the service that was polled ready, as tower requires.
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            before_invocation().await;
            // The invocation's exposures are counted in a scope of their own (concurrent
            // invocations never share one), written when it ends with the process-wide ones.
            let scope = crate::experiment::Scope::new();
            let response = scope.run(async move { ready.call(request).await }).await;
            scope.finish();
            response
        })
    }
}
