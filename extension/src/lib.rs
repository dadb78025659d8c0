//! `ssm-flags`: a Lambda external extension (or a sidecar) that loads feature flags from SSM
//! Parameter Store at start, refreshes them once they are older than a max age (at an INVOKE on
//! on-demand Lambda, on a timer on Managed Instances and as a sidecar), keeps the last good
//! flags when AWS fails, and serves them on 127.0.0.1 (or a Unix socket) to the function's handler.
//!
//! The wire contract (port, header, paths, documents, statuses) and flag naming live in the
//! `flags` crate, shared with every client.
//!
//! Modules:
//! - [`config`]: the environment, parsed and validated once;
//! - [`source`]: `GetParametersByPath` over every page, bounded, and confirmation by name;
//!   `source::error`: AWS errors classified once (throttled, denied, KMS, credentials, region);
//! - [`appconfig`]: AppConfig profiles through the data API, and paths and profiles as one source;
//! - [`snapshot`]: what is served (rendered once per change, re-marked on failure);
//! - [`audit`]: what changed between fetches, one log line per flag, secrets never shown;
//! - [`refresh`]: the refresher (fetch within a budget, confirm what vanished, publish, the
//!   deployed fallback, undecryptable SecureStrings); [`refresh::policy`]: when to refresh (max
//!   age, backoff with jitter), plain data;
//! - [`metrics`]: freshness as CloudWatch Embedded Metric Format lines;
//! - [`experiments`]: exposures of single evaluations and `POST /v1/track`'s conversions,
//!   written as EMF lines every minute and at the end;
//! - [`server`]: the local HTTP API: the accept loop, connections, host and token checks, routing;
//!   [`server::handlers`]: its endpoints (the snapshot, one flag, health, long polls, OFREP's);
//! - [`ofrep`]: the OpenFeature Remote Evaluation Protocol on the same API; [`ofrep::wire`]: its
//!   request and answer documents, as types;
//! - [`listener`]: where the API listens: TCP on loopback, or a Unix socket (`SSM_FLAGS_SOCKET`);
//! - [`guard`]: what a client may hold: the time to send headers and to authenticate, and slots;
//! - [`host`]: on-demand Lambda, Managed Instances or sidecar, and all that differs between them;
//! - [`lifecycle`]: registration, the load at start, refreshes, SHUTDOWN and signals;
//! - [`health`]: `ssm-flags --health-check`, for container orchestrators;
//! - [`logging`]: JSON or text logs.

pub mod appconfig;
pub mod audit;
pub mod config;
pub mod experiments;
pub mod guard;
pub mod health;
pub mod host;
pub mod lifecycle;
pub mod listener;
pub mod logging;
pub mod metrics;
pub mod ofrep;
pub mod refresh;
pub mod server;
pub mod snapshot;
pub mod source;
