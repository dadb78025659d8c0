//! `ssm-flags`: a Lambda external extension that loads feature flags from SSM Parameter Store
//! at init, refreshes them on INVOKE once they are older than a max age, keeps the last good
//! flags when AWS fails, and serves them on 127.0.0.1 to the function's handler.
//!
//! Modules:
//! - [`config`]: the environment, parsed and validated once;
//! - [`source`]: `GetParametersByPath` over every page, with errors classified;
//! - [`snapshot`]: what is served (rendered once per change), and the audit-log diff;
//! - [`refresh`]: when to refresh (max age, backoff with jitter) and the refresher;
//! - [`server`]: the local HTTP API, token-checked;
//! - [`lifecycle`]: registration, init load, the INVOKE / SHUTDOWN loop;
//! - [`logging`]: JSON or text logs.

pub mod config;
pub mod lifecycle;
pub mod logging;
pub mod refresh;
pub mod server;
pub mod snapshot;
pub mod source;
