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
//! # Floors
//!
//! The modules stand on floors: the contract and the data at the bottom, then the store, then
//! the process-wide read path, then the handles, then the client. A module uses only modules on
//! floors below its own — never one beside or above it — so a change to one is read with the
//! floors under it alone. `tests/floors.rs` (part of `make test`) fails on any `crate::` path that
//! points sideways or up; a `pub use` that keeps an old public path where it was (`wire::read_file`,
//! `snapshot::Store`) is a re-export, not a dependency, and is allowed.
//!
//! | floor | module | what it is |
//! |---|---|---|
//! | 1 | [`env`](mod@env) | numbers read from environment variables, one rule for the extension and the client |
//! | 1 | [`file`](mod@file) | local files read without following links or blocking; private directories |
//! | 1 | [`path`] | flag paths, and a flag's name relative to its path |
//! | 2 | [`error`] | what is wrong with a flag, or with a snapshot document |
//! | 2 | [`experiment`] | experiments: exposures and conversions counted per scope (an invocation), written as CloudWatch EMF lines |
//! | 3 | [`flagd`] | OpenFeature's flag definition format (flagd's): definitions, targeting compiled at load, `fractional` buckets, resolution; Powertools feature-flags documents read into the same definitions (`flagd::powertools`) |
//! | 4 | [`format`](mod@format) | how a source's values are read: declared markers (`#flagd`, `#flagd-v2`, `#powertools`) and flagd's `$schema` |
//! | 4 | [`model`] | what an operator stores, parsed into [`FlagValue`]s and [`Rules`] |
//! | 5 | [`eval`] | targeting and the deterministic percentage rollout ([`bucket`]) |
//! | 5 | [`appconfig`] | flags from an AppConfig profile's document (freeform or feature flags) |
//! | 6 | [`wire`] | the contract with the extension: port, token header, paths, [`Status`], and every body's document (snapshot, evaluation, health, error) as plain data |
//! | 7 | [`endpoint`] | where the local API is: TCP on 127.0.0.1, or a Unix socket |
//! | 7 | [`token`] | the local API's token: what is valid, where it is configured, its file |
//! | 8 | [`snapshot`] | the immutable [`Snapshot`] and its [`FlagEntry`]s, how fetched parameters become them (`snapshot::assemble`: formats, precedence, shadowed names), what a flag evaluates to in it, and its conversions to and from the wire document (`snapshot::document`) |
//! | 9 | [`store`] | the lock-free [`Store`] that swaps snapshots, numbering its installs for readers that cache |
//! | 10 | `global` | the process-wide read path (private): the store [`get`] reads, each thread's view of it, and each thread's remembered answers (`global::answers`) |
//! | 11 | [`flag`] | the handles handlers read: [`CurrentFlag`] ([`get`]) and [`Flag`] (one snapshot) |
//! | 12 | `openfeature` | (feature `openfeature`) an OpenFeature provider over the snapshot |
//! | 12 | `client` | (feature `client`, on by default) [`sync`], [`watch`] and [`FlagsLayer`] keep the snapshot current from the `ssm-flags` extension: its connection (`client::connection`), the sync and watch policy (`client`), the tower layer (`client::layer`) |

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod appconfig;
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod client;
pub mod endpoint;
pub mod env;
pub mod error;
pub mod eval;
pub mod experiment;
pub mod file;
pub mod flag;
pub mod flagd;
pub mod format;
pub(crate) mod global;
pub mod model;
#[cfg(feature = "openfeature")]
#[cfg_attr(docsrs, doc(cfg(feature = "openfeature")))]
pub mod openfeature;
pub mod path;
pub mod snapshot;
pub mod store;
pub mod token;
pub mod wire;

use std::path::Path;
use std::sync::Arc;

#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub use client::{FlagsLayer, FlagsService, Synced, WatchError, sync, watch};
pub use error::{FlagError, LoadError, Problem};
pub use eval::{Context, Evaluation, Reason, bucket};
pub use flag::{ConfigError, CurrentFlag, Flag, ValueType, Variant};
pub use flagd::Bucketing;
pub use format::Format;
pub use model::{FlagValue, JsonFlag, Parameter, ParameterKind, Rules};
pub use path::FlagPath;
pub use snapshot::{FlagEntry, Snapshot};
pub use store::Store;
pub use wire::Status;

use global::GLOBAL;

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
    global::read_global(Snapshot::version)
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

/// Counts a conversion on `event` for the unit `context` names (its targeting key): one for
/// the variant each experiment flag gave that unit in this invocation ([`experiment::Scope`];
/// outside one, the process-wide scope), once per unit and event. Returns what it was
/// attributed to (empty: the unit saw no experiment here, or metrics are off).
///
/// ```
/// # let ctx = flags::Context::user("user-123");
/// let _ = flags::track("checkout-completed", &ctx);
/// ```
pub fn track(
    event: &str,
    context: &Context<'_>,
) -> Result<Vec<experiment::Attribution>, experiment::TrackError> {
    experiment::track_key(event, context.user_id(), None)
}

/// [`track`], with a value (an order's total, say) kept as a `ConversionValue` sample.
pub fn track_value(
    event: &str,
    context: &Context<'_>,
    value: f64,
) -> Result<Vec<experiment::Attribution>, experiment::TrackError> {
    experiment::track_key(event, context.user_id(), Some(value))
}

pub use experiment::flush_exposures;
