//! Where the extension runs, and everything that differs between those places. This is the one
//! home of those differences: the lifecycle asks the [`Host`], never the environment.
//!
//! | | events registered | refresh | freshness bound |
//! |---|---|---|---|
//! | on-demand Lambda | `INVOKE`, `SHUTDOWN` | at an INVOKE, once older than the max age | max age + time between invocations (frozen meanwhile) |
//! | Lambda Managed Instances | `SHUTDOWN` only | on a timer, every max age (jittered) | max age |
//! | sidecar (containers, EC2) | none: no Extensions API | on a timer, every max age (jittered) | max age |
//!
//! Managed Instances facts (AWS's "Lambda Managed Instances" and "Understanding the Lambda
//! Managed Instances execution environment" guides; honeycombio/honeycomb-lambda-extension
//! PR 170): the environment sets `AWS_LAMBDA_INITIALIZATION_TYPE=lambda-managed-instances`; an
//! extension that registers for `INVOKE` is refused and the function's init fails; nothing is
//! frozen between invocations; one environment runs up to `AWS_LAMBDA_MAX_CONCURRENCY`
//! invocations at once; environments live for hours.

use std::time::Duration;

/// `AWS_LAMBDA_INITIALIZATION_TYPE` on Lambda Managed Instances.
pub const MANAGED_INSTANCES: &str = "lambda-managed-instances";

/// The shortest pause between two timer refreshes, whatever `SSM_FLAGS_MAX_AGE` says (0 means
/// "at every invocation" on on-demand Lambda; a timer cannot spin).
pub const MIN_TIMER_INTERVAL: Duration = Duration::from_secs(1);

/// The share of the max age by which a timer refresh comes early, at random: a fleet started
/// together does not call SSM in step, and flags are never older than the max age.
pub const TIMER_JITTER: f64 = 0.1;

/// `SSM_FLAGS_MODE`: how the binary is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `lambda` (default): a Lambda extension; without the Extensions API it refuses to start,
    /// so a misconfigured function never silently turns into a daemon.
    Lambda,
    /// `sidecar`: a long-running agent beside a service (ECS task, Kubernetes pod, EC2 host).
    Sidecar,
}

/// What starts a refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// An INVOKE, when the flags are older than the max age (the environment is frozen between
    /// invocations: a timer would fire into a frozen process).
    Invoke,
    /// A timer, every max age: nothing is frozen.
    Timer,
}

/// Where the extension runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// On-demand Lambda: one invocation at a time, frozen between them.
    OnDemand,
    /// Lambda Managed Instances: concurrent invocations, never frozen, `SHUTDOWN` only.
    ManagedInstances,
    /// A sidecar or host agent: no Lambda at all.
    Sidecar,
}

impl Host {
    /// The host for `mode`, given `AWS_LAMBDA_INITIALIZATION_TYPE` (ignored by a sidecar).
    pub fn detect(mode: Mode, initialization_type: Option<&str>) -> Self {
        match mode {
            Mode::Sidecar => Self::Sidecar,
            Mode::Lambda if initialization_type.map(str::trim) == Some(MANAGED_INSTANCES) => {
                Self::ManagedInstances
            }
            Mode::Lambda => Self::OnDemand,
        }
    }

    /// The Extensions API events to register for; `None`: no Extensions API.
    pub fn events(self) -> Option<&'static [&'static str]> {
        match self {
            Self::OnDemand => Some(&["INVOKE", "SHUTDOWN"]),
            // Asking for INVOKE here is refused, and the function's init with it.
            Self::ManagedInstances => Some(&["SHUTDOWN"]),
            Self::Sidecar => None,
        }
    }

    /// Where an experiment scope ends: each INVOKE on on-demand Lambda (one invocation at a
    /// time); elsewhere, where no INVOKE comes, each flush.
    pub fn experiment_scope(self) -> crate::experiments::ScopeEnd {
        match self {
            Self::OnDemand => crate::experiments::ScopeEnd::Invocation,
            Self::ManagedInstances | Self::Sidecar => crate::experiments::ScopeEnd::Flush,
        }
    }

    /// What starts a refresh.
    pub fn trigger(self) -> Trigger {
        match self {
            Self::OnDemand => Trigger::Invoke,
            Self::ManagedInstances | Self::Sidecar => Trigger::Timer,
        }
    }

    /// The name used in logs and in the README.
    pub fn name(self) -> &'static str {
        match self {
            Self::OnDemand => "lambda",
            Self::ManagedInstances => "lambda-managed-instances",
            Self::Sidecar => "sidecar",
        }
    }

    /// The pause before the next timer refresh, `due` from now by the refresh policy: early by a
    /// random share (up to [`TIMER_JITTER`]) of `max_age`, never below [`MIN_TIMER_INTERVAL`]
    /// unless a fetch is still in progress (`resume`), which continues at once.
    pub fn timer_pause(due: Duration, max_age: Duration, resume: bool, random: f64) -> Duration {
        if resume {
            return Duration::ZERO;
        }
        let early = max_age.mul_f64(TIMER_JITTER * random.clamp(0.0, 1.0));
        due.saturating_sub(early).max(MIN_TIMER_INTERVAL)
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_instances_are_detected_and_register_for_shutdown_only() {
        let host = Host::detect(Mode::Lambda, Some("lambda-managed-instances"));
        assert_eq!(host, Host::ManagedInstances);
        assert_eq!(host.events(), Some(&["SHUTDOWN"][..]));
        assert_eq!(host.trigger(), Trigger::Timer);
        for other in [
            None,
            Some("on-demand"),
            Some("provisioned-concurrency"),
            Some("snap-start"),
        ] {
            let host = Host::detect(Mode::Lambda, other);
            assert_eq!(host, Host::OnDemand, "{other:?}");
            assert_eq!(host.events(), Some(&["INVOKE", "SHUTDOWN"][..]));
            assert_eq!(host.trigger(), Trigger::Invoke);
        }
    }

    #[test]
    fn a_sidecar_has_no_extensions_api_whatever_lambda_says() {
        let host = Host::detect(Mode::Sidecar, Some("lambda-managed-instances"));
        assert_eq!(host, Host::Sidecar);
        assert_eq!(host.events(), None);
        assert_eq!(host.trigger(), Trigger::Timer);
    }

    #[test]
    fn a_timer_comes_early_by_at_most_a_tenth_of_the_max_age_and_never_spins() {
        let max_age = Duration::from_secs(60);
        let due = Duration::from_secs(60);
        assert_eq!(Host::timer_pause(due, max_age, false, 0.0), due);
        assert_eq!(
            Host::timer_pause(due, max_age, false, 1.0),
            Duration::from_secs(54)
        );
        let mid = Host::timer_pause(due, max_age, false, 0.5);
        assert!(mid > Duration::from_secs(54) && mid < due, "{mid:?}");
        // Max age 0 (refresh at every invocation on on-demand Lambda): once a second.
        assert_eq!(
            Host::timer_pause(Duration::ZERO, Duration::ZERO, false, 0.3),
            MIN_TIMER_INTERVAL
        );
        // A fetch still reading pages continues at once.
        assert_eq!(Host::timer_pause(due, max_age, true, 0.3), Duration::ZERO);
    }
}
