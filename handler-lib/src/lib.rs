//! Runtime feature flags from SSM Parameter Store for Rust Lambda handlers.
//!
//! ```
//! use flags::Context;
//!
//! if flags::get("dark-mode").enabled() { /* … */ }
//! let user = Context::user("user-123").with_region("us-east-1");
//! if flags::get("new-checkout-flow").enabled_for(&user) { /* … */ }
//! let timeout_ms: u64 = flags::get("new-payment-processor").field_or("timeout_ms", 800);
//! let beta = flags::get_or("beta-banner", true); // on unless a flag says otherwise
//! # let _ = (timeout_ms, beta);
//! ```
//!
//! A lookup never does I/O and never fails: it reads an immutable snapshot held in memory,
//! swapped in atomically when the flags change. A missing or invalid flag reads as its default.
//!
//! Modules:
//! - [`model`]: what an operator stores in SSM, parsed into [`FlagValue`]s and [`Rules`];
//! - [`eval`]: targeting and the deterministic percentage rollout ([`bucket`]);
//! - [`snapshot`]: the immutable [`Snapshot`] and the lock-free [`Store`], read by each thread
//!   through its own view; `answers` (private): each thread's remembered answers to
//!   `flags::get(name).enabled()`, the hot read;
//! - [`flag`]: the handles handlers read: [`CurrentFlag`] ([`get`]) and [`Flag`] (one snapshot);
//! - [`wire`]: the contract with the extension: port, token header, endpoint paths, [`Status`],
//!   and the documents of every body (snapshot, evaluation, health, error), also used by files;
//! - [`path`]: flag paths, and a flag's name relative to its path;
//! - [`appconfig`]: flags from an AppConfig profile's document (freeform or feature flags);
//! - [`env`]: numbers read from environment variables, one rule for the extension and the client;
//! - [`endpoint`]: where the local API is: TCP on 127.0.0.1, or a Unix socket;
//! - [`error`]: what is wrong with a flag, or with a snapshot document;
//! - [`file`]: local files read without following links or blocking, and private directories;
//! - [`token`]: the local API's token: what is valid, where it is configured, its file;
//! - `openfeature` (feature `openfeature`): an OpenFeature provider over the snapshot;
//! - `client` (feature `client`, on by default): [`sync`], [`watch`] and [`FlagsLayer`] keep the
//!   snapshot current from the `ssm-flags` extension.

mod answers;
pub mod appconfig;
#[cfg(feature = "client")]
pub mod client;
pub mod endpoint;
pub mod env;
pub mod error;
pub mod eval;
pub mod file;
pub mod flag;
pub mod model;
#[cfg(feature = "openfeature")]
pub mod openfeature;
pub mod path;
pub mod snapshot;
pub mod token;
pub mod wire;

use std::path::Path;
use std::sync::Arc;

#[cfg(feature = "client")]
pub use client::{FlagsLayer, FlagsService, Synced, WatchError, sync, watch};
pub use error::{FlagError, LoadError, Problem};
pub use eval::{Context, Evaluation, Reason, bucket};
pub use flag::{ConfigError, CurrentFlag, Flag};
pub use model::{FlagValue, JsonFlag, Parameter, ParameterKind, Rules};
pub use path::FlagPath;
pub use snapshot::{FlagEntry, Snapshot, Store};
pub use wire::Status;

use snapshot::GLOBAL;

/// A handle on a flag in the current snapshot; it reads as `false` when missing or invalid.
/// Each read is a lock-free lookup that writes no memory shared with other threads.
#[inline]
pub fn get(name: &str) -> CurrentFlag<'_> {
    CurrentFlag::global(name)
}

/// A handle on a flag that reads as `default` when missing, invalid or not a toggle.
#[inline]
pub fn get_or(name: &str, default: bool) -> CurrentFlag<'_> {
    CurrentFlag::global(name).default_to(default)
}

/// Pins the current snapshot, so that every read of one invocation agrees.
pub fn pin() -> Arc<Snapshot> {
    GLOBAL.pin()
}

/// The version of the current snapshot (0 before any is installed).
pub fn version() -> u64 {
    GLOBAL.version()
}

/// Installs a snapshot as the current one, atomically; returns the one it replaced.
///
/// This is the seam through which flags get in: the extension client calls it, and tests or
/// local runs may call it directly.
pub fn install(snapshot: Snapshot) -> Arc<Snapshot> {
    GLOBAL.install(snapshot)
}

/// Loads a snapshot file (the [`wire`] format) and installs it as a [`Status::Fallback`]
/// snapshot (flags deployed with the code, not fetched); returns its number of flags.
pub fn load_file(path: impl AsRef<Path>) -> Result<usize, LoadError> {
    let snapshot = wire::read_file(path.as_ref())?.with_status(Status::Fallback);
    let count = snapshot.len();
    for entry in snapshot.entries() {
        if let Err(error) = entry.value() {
            // The error of a secure flag never quotes its value (see `Problem::redacted`).
            tracing::warn!(flag = entry.name(), secure = entry.is_secure(), %error, "invalid flag in snapshot file");
        }
    }
    install(snapshot);
    Ok(count)
}
