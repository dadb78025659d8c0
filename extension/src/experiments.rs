//! Experiments over HTTP: the single evaluations the local API answers (OFREP's
//! `/ofrep/v1/evaluate/flags/{key}`, `GET /v1/flags/{name}`) count exposures, and
//! `POST /v1/track` counts conversions, as [`flags::experiment`] does in a handler. Bulk
//! evaluations are not exposures.
//!
//! The scope (what "first evaluation for a key" is within): on on-demand Lambda an invocation
//! (the units are forgotten at each INVOKE); where no INVOKE comes (Managed Instances,
//! containers, EC2) the flush period (`SSM_FLAGS_METRICS_INTERVAL`, default a minute). The
//! INVOKE reaches the extension at the moment the handler starts: a request of the handler's
//! first instant may arrive before it is read, and count with the previous invocation's. A
//! conversion therefore finds its unit in the current scope or the one before. The counts are
//! written as EMF lines every flush period and when the extension stops (SHUTDOWN, SIGTERM):
//! none is lost.

use std::time::Duration;

use flags::experiment::{Attribution, Emitter, Scope, TrackError};
use flags::wire::TrackDoc;

/// How often the counts are written by default (`SSM_FLAGS_METRICS_INTERVAL`; CloudWatch's
/// standard resolution is a minute).
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(60);

/// Where the scope ends: at each INVOKE, or at each flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeEnd {
    /// On-demand Lambda: every INVOKE starts a new scope.
    Invocation,
    /// Elsewhere: every flush starts a new scope.
    Flush,
}

/// The extension's experiment counts and where they go.
#[derive(Debug)]
pub struct Experiments {
    scope: Scope,
    emitter: Option<Emitter>,
    end: ScopeEnd,
}

impl Experiments {
    /// Counts written by `emitter` (`None`: metrics off — nothing is counted), in scopes that
    /// end as `end` says.
    pub fn new(emitter: Option<Emitter>, end: ScopeEnd) -> Self {
        Self {
            scope: Scope::with_counting(emitter.is_some()),
            emitter,
            end,
        }
    }

    /// Nothing counted, nothing written.
    pub fn off() -> Self {
        Self::new(None, ScopeEnd::Flush)
    }

    /// Runs a single evaluation with its exposure counted.
    pub fn counted<R>(&self, evaluation: impl FnOnce() -> R) -> R {
        self.scope.enter(evaluation)
    }

    /// Counts `POST /v1/track`'s conversion.
    pub fn track(&self, doc: &TrackDoc) -> Result<Vec<Attribution>, TrackError> {
        let key = match doc.context.get("targetingKey") {
            Some(serde_json::Value::String(key)) if !key.is_empty() => Some(key.as_str()),
            _ => None,
        };
        self.scope.track(&doc.event, key, doc.value)
    }

    /// An INVOKE: on on-demand Lambda, a new scope.
    pub fn invocation(&self) {
        if self.end == ScopeEnd::Invocation {
            self.scope.forget_units();
        }
    }

    /// Writes the counts so far; where the flush ends the scope, starts a new one (in one step:
    /// no unit is counted in both).
    pub fn flush(&self) {
        let counts = match self.end {
            ScopeEnd::Flush => self.scope.drain(),
            ScopeEnd::Invocation => self.scope.take(),
        };
        if let Some(emitter) = &self.emitter
            && !counts.is_empty()
        {
            emitter.write(&counts);
        }
    }
}

impl Drop for Experiments {
    /// What was counted after the last flush (a request answered while the extension stopped)
    /// is written when the last holder lets go.
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(event: &str, key: serde_json::Value, value: Option<f64>) -> TrackDoc {
        TrackDoc {
            event: event.to_owned(),
            context: serde_json::Map::from_iter([("targetingKey".to_owned(), key)]),
            value,
        }
    }

    #[test]
    fn a_tracked_event_needs_a_string_targeting_key() {
        let experiments = Experiments::new(Some(Emitter::new("ns", "svc")), ScopeEnd::Flush);
        assert_eq!(
            experiments.track(&doc("paid", 7.into(), None)),
            Err(TrackError::NoTargetingKey)
        );
        assert_eq!(
            experiments.track(&doc("paid", "u".into(), None)),
            Ok(Vec::new())
        );
    }

    #[test]
    fn an_invoke_ends_the_scope_only_on_demand() {
        let snapshot = flags::Snapshot::from_values([(
            "split",
            r#"{"enabled": true, "rollout_percentage": 50, "experiment": true}"#,
        )]);
        let evaluate = || snapshot.get("split").evaluate(&flags::Context::user("k"));
        for (end, counted) in [(ScopeEnd::Invocation, 2), (ScopeEnd::Flush, 1)] {
            let experiments = Experiments::new(Some(Emitter::new("ns", "svc")), end);
            experiments.counted(evaluate);
            experiments.invocation();
            experiments.counted(evaluate);
            assert_eq!(
                experiments.scope.take().total_exposures(),
                counted,
                "{end:?}"
            );
            // A conversion right after a new scope began still finds the unit.
            assert_eq!(
                experiments
                    .track(&doc("paid", "k".into(), None))
                    .map(|a| a.len()),
                Ok(1),
                "{end:?}"
            );
        }
    }
}
