//! When a refresh is due: after the max age since the last success, and never during the
//! backoff after a failure (doubling, capped at the max age, with jitter). Plain data: no I/O,
//! no clock of its own (every method is given `now`), so the rules are tested without waiting.

use std::time::{Duration, Instant};

/// The first retry delay after a failure.
const BASE_BACKOFF: Duration = Duration::from_secs(1);

/// When the next refresh is due: after `max_age` since the last success, and never before the
/// backoff after a failure has passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshPolicy {
    max_age: Duration,
    failures: u32,
    last_success: Option<Instant>,
    next_attempt: Option<Instant>,
    backoff: bool,
}

impl RefreshPolicy {
    /// A policy that refreshes flags older than `max_age`.
    pub fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            failures: 0,
            last_success: None,
            next_attempt: None,
            backoff: true,
        }
    }

    /// The same policy without backoff or jitter: after a failure, the next INVOKE retries.
    /// Only for measuring what backoff buys (the storm test); the extension always backs off.
    pub fn without_backoff(mut self) -> Self {
        self.backoff = false;
        self
    }

    /// Whether a refresh should run now.
    pub fn is_due(&self, now: Instant) -> bool {
        if self.next_attempt.is_some_and(|next| now < next) {
            return false;
        }
        self.last_success
            .is_none_or(|at| now.saturating_duration_since(at) >= self.max_age)
    }

    /// How long until a refresh is due (zero: now): the backoff after a failure, else the max
    /// age since the last success.
    pub fn due_in(&self, now: Instant) -> Duration {
        if let Some(next) = self.next_attempt {
            return next.saturating_duration_since(now);
        }
        self.last_success.map_or(Duration::ZERO, |at| {
            (at + self.max_age).saturating_duration_since(now)
        })
    }

    /// Failures in a row since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The ceiling of the next retry delay: doubling from 1 s per failure in a row, capped at the
    /// max age (at least 1 s), so flags recover within one max age of SSM coming back.
    pub fn backoff(&self) -> Duration {
        let cap = self.max_age.max(BASE_BACKOFF);
        let doublings = self.failures.saturating_sub(1).min(16);
        BASE_BACKOFF.saturating_mul(1 << doublings).min(cap)
    }

    /// Records a successful refresh.
    pub fn successful_refresh(&mut self, now: Instant) {
        self.failures = 0;
        self.last_success = Some(now);
        self.next_attempt = None;
    }

    /// Records a failed refresh; returns the delay before the next attempt: "equal jitter",
    /// half the backoff plus a random share of the other half, so a fleet does not retry in step.
    pub fn failed_refresh(&mut self, now: Instant) -> Duration {
        self.failures = self.failures.saturating_add(1);
        if !self.backoff {
            self.next_attempt = None;
            return Duration::ZERO;
        }
        let ceiling = self.backoff();
        let half = ceiling / 2;
        let jitter = half.mul_f64(fastrand::f64());
        let delay = half + jitter;
        self.next_attempt = Some(now + delay);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_after_max_age_and_not_during_backoff() {
        let t0 = Instant::now();
        let mut p = RefreshPolicy::new(Duration::from_secs(60));
        assert!(p.is_due(t0), "never loaded: due");
        p.successful_refresh(t0);
        assert!(!p.is_due(t0 + Duration::from_secs(59)));
        assert!(p.is_due(t0 + Duration::from_secs(60)));
        let t1 = t0 + Duration::from_secs(61);
        let delay = p.failed_refresh(t1);
        assert!(
            delay >= Duration::from_millis(500) && delay <= Duration::from_secs(1),
            "{delay:?}"
        );
        assert!(!p.is_due(t1 + delay - Duration::from_millis(1)));
        assert!(p.is_due(t1 + delay));
    }

    #[test]
    fn a_timer_waits_as_long_as_is_due_says() {
        let t0 = Instant::now();
        let mut p = RefreshPolicy::new(Duration::from_secs(60));
        assert_eq!(p.due_in(t0), Duration::ZERO, "never loaded");
        p.successful_refresh(t0);
        assert_eq!(
            p.due_in(t0 + Duration::from_secs(15)),
            Duration::from_secs(45)
        );
        assert_eq!(p.due_in(t0 + Duration::from_secs(90)), Duration::ZERO);
        let t1 = t0 + Duration::from_secs(61);
        let delay = p.failed_refresh(t1);
        assert_eq!(p.due_in(t1), delay, "the backoff, not the max age");
        assert!(p.is_due(t1 + p.due_in(t1)));
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps_at_max_age() {
        let mut p = RefreshPolicy::new(Duration::from_secs(20));
        let now = Instant::now();
        let mut ceilings = Vec::new();
        for _ in 0..8 {
            let delay = p.failed_refresh(now);
            let ceiling = p.backoff();
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{delay:?} vs {ceiling:?}"
            );
            ceilings.push(ceiling.as_secs());
        }
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 20, 20, 20]);
        p.successful_refresh(now);
        assert_eq!(p.failures(), 0);
        assert_eq!(p.backoff(), Duration::from_secs(1));
    }

    #[test]
    fn jitter_spreads_retries() {
        let now = Instant::now();
        let delays: std::collections::HashSet<Duration> = (0..50)
            .map(|_| {
                let mut p = RefreshPolicy::new(Duration::from_secs(60));
                for _ in 0..4 {
                    p.failed_refresh(now);
                }
                p.failed_refresh(now)
            })
            .collect();
        assert!(
            delays.len() > 40,
            "only {} distinct delays of 50",
            delays.len()
        );
    }

    #[test]
    fn zero_max_age_refreshes_on_every_invoke_but_still_backs_off() {
        let now = Instant::now();
        let mut p = RefreshPolicy::new(Duration::ZERO);
        p.successful_refresh(now);
        assert!(p.is_due(now));
        let delay = p.failed_refresh(now);
        assert!(delay >= Duration::from_millis(500), "{delay:?}");
    }
}
