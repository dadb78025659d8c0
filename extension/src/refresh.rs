//! The [`Refresher`]: fetches within a budget, confirms flags left out of a listing are really
//! gone, diffs, logs and publishes; serves the deployed fallback until a fetch succeeds, and
//! keeps the last good value of a SecureString SSM would not decrypt. When it is asked to is the
//! [`RefreshPolicy`]'s business ([`policy`]).
//!
//! A refresh is bounded by the refresh timeout. On on-demand Lambda it runs only inside a
//! lifecycle step (init, or an INVOKE before the extension asks for the next event): Lambda
//! freezes the environment once everyone has asked for the next event, so nothing may be left
//! in flight. Where nothing is frozen (Managed Instances, sidecar) a timer starts it (see
//! [`crate::host`]).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use flags::snapshot::assemble::{Assembler, Declared, broken_document};
use flags::wire::Status;
use flags::{FlagEntry, FlagError, Parameter, Snapshot};

use crate::audit::{diff, invalid_of, log_changes, log_invalid, log_shadowed};
use crate::metrics::{Emf, Freshness};
use crate::snapshot::{Served, Shared};
use crate::source::{Fetched, Progress, Source, SourceError, VERIFY_AT_MOST};

pub mod policy;

pub use policy::RefreshPolicy;

/// The outcome of one refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    /// Fetched; `changes` flags were added, changed or removed.
    Fetched {
        /// Flags added, changed or removed.
        changes: usize,
        /// SSM calls made.
        calls: u32,
    },
    /// The fetch read pages but did not finish within the budget: it resumes at the next
    /// refresh; the flags served are unchanged.
    Continues {
        /// Parameters read so far.
        read: usize,
        /// SSM calls made so far.
        calls: u32,
    },
    /// The fetch failed; the previous flags are served, marked stale (or degraded).
    Failed(SourceError),
}

/// Counters since start, reported by `/v1/health`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Successful fetches.
    pub fetches: u64,
    /// Failed fetches.
    pub failures: u64,
    /// `GetParametersByPath` calls in successful fetches.
    pub ssm_calls: u64,
}

/// Owns the source and the published snapshot; fetches on request, never on its own.
pub struct Refresher<S> {
    source: S,
    shared: Shared,
    policy: RefreshPolicy,
    timeout: Duration,
    instance: u64,
    version: u64,
    default_region: Option<String>,
    /// The parameters of the last successful fetch (the audit diff's "before"); the parsed
    /// snapshot of them is the one published.
    last_good: Option<Vec<Parameter>>,
    /// SecureStrings in `last_good` that SSM has never decrypted (their value is ciphertext).
    never_decrypted: HashSet<String>,
    metrics: Option<Emf>,
    /// A fetch that did not finish within its budget, resumed by the next refresh.
    progress: Option<Progress>,
    /// The flags deployed with the function (`SSM_FLAGS_FALLBACK_FILE`), until served.
    fallback: Option<Snapshot>,
    /// Whether the deployed fallback is what is served (no fetch has succeeded yet).
    on_fallback: bool,
    /// Each source's declared format and precedence.
    declared: Declared,
    stats: Stats,
}

impl<S: Source> Refresher<S> {
    /// A refresher that starts by serving an empty, degraded snapshot.
    pub fn new(source: S, max_age: Duration, timeout: Duration) -> Self {
        // Unique per process: ETags from a restarted extension never match an old one.
        let instance = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()).rotate_left(40);
        let empty = Served::new(instance, Snapshot::empty(), None);
        Self {
            source,
            shared: Shared::new(empty),
            policy: RefreshPolicy::new(max_age),
            timeout,
            instance,
            version: 0,
            default_region: None,
            last_good: None,
            never_decrypted: HashSet::new(),
            metrics: None,
            progress: None,
            fallback: None,
            on_fallback: false,
            declared: Declared::default(),
            stats: Stats::default(),
        }
    }

    /// Serves `fallback` (flags deployed with the function), marked `fallback`, when the first
    /// load fails or does not finish within its budget, until a fetch succeeds: a cold start
    /// during an outage serves the deployed values, not every flag's code default.
    pub fn with_fallback(mut self, fallback: Option<Snapshot>) -> Self {
        self.fallback = fallback;
        self
    }

    /// Reads each source's parameters in its declared format, names defined twice resolved by
    /// the documented precedence (see [`flags::snapshot::assemble`]).
    pub fn with_declared(mut self, declared: Declared) -> Self {
        self.declared = declared;
        self
    }

    /// Emits freshness metrics after every refresh (see [`crate::metrics`]).
    pub fn with_metrics(mut self, metrics: Option<Emf>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Evaluates contexts without a region in `region` (the function's `AWS_REGION`).
    pub fn with_default_region(mut self, region: Option<String>) -> Self {
        self.default_region = region;
        self
    }

    /// Replaces the refresh policy (see [`RefreshPolicy::without_backoff`]).
    pub fn with_policy(mut self, policy: RefreshPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The published snapshot, for the server.
    pub fn shared(&self) -> Shared {
        self.shared.clone()
    }

    /// Counters since start.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// How long until the policy wants a refresh (see [`RefreshPolicy::due_in`]).
    pub fn due_in(&self, now: Instant) -> Duration {
        self.policy.due_in(now)
    }

    /// Whether a fetch that did not finish within its budget waits to be resumed.
    pub fn is_resuming(&self) -> bool {
        self.progress.is_some()
    }

    /// Refreshes if the policy says so, or a fetch is still in progress, within `budget` (an
    /// INVOKE calls this with what is left of the refresh timeout before its deadline).
    pub async fn refresh_if_due(&mut self, budget: Duration) -> Option<Refreshed> {
        if self.progress.is_some() || self.policy.is_due(Instant::now()) {
            Some(self.refresh_within(budget).await)
        } else {
            None
        }
    }

    /// Fetches now, bounded by the refresh timeout, and publishes the result.
    pub async fn refresh(&mut self) -> Refreshed {
        self.refresh_within(self.timeout).await
    }

    /// Fetches for at most `budget` and publishes the result. A fetch that reads pages but does
    /// not finish within the budget is kept and resumes at the next refresh; it is published only
    /// once complete. A budget in which not one page arrives is a failure (SSM hangs).
    pub async fn refresh_within(&mut self, budget: Duration) -> Refreshed {
        let started = Instant::now();
        let mut progress = self.progress.take().unwrap_or_default();
        let calls_before = progress.calls();
        let (source, last_good) = (&self.source, self.last_good.as_deref());
        let outcome = tokio::time::timeout(budget, async {
            source.fetch_into(&mut progress).await?;
            verify_vanished(source, last_good, &mut progress).await
        })
        .await;
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let outcome = match outcome {
            Ok(Ok(())) => self.fetched(progress.into_fetched(), elapsed_ms),
            Ok(Err(error)) => self.failed(error, elapsed_ms),
            // At least one call came back within the budget: SSM is answering, just not all yet.
            Err(_) if progress.calls() > calls_before => {
                let (calls, read) = (progress.calls(), progress.parameters());
                tracing::info!(
                    parameters_read = read,
                    ssm_calls = calls,
                    complete = progress.is_complete(),
                    budget_ms = budget.as_millis() as u64,
                    "fetch not finished within this refresh's budget: it resumes at the next; the flags served stay as they are"
                );
                self.progress = Some(progress);
                self.serve_fallback_if_nothing_else(&format!(
                    "the first load did not finish within {} ms",
                    budget.as_millis()
                ));
                Refreshed::Continues { read, calls }
            }
            Err(_) => self.failed(SourceError::Timeout(budget), elapsed_ms),
        };
        if let Some(metrics) = &self.metrics {
            let served = self.shared.load();
            metrics.emit(&Freshness {
                status: served.status(),
                age_seconds: served.snapshot.age().map(|age| age.as_secs_f64()),
                flags: served.snapshot.len(),
                invalid: served.invalid,
                ssm_calls: match &outcome {
                    Refreshed::Fetched { calls, .. } | Refreshed::Continues { calls, .. } => *calls,
                    Refreshed::Failed(_) => 0,
                },
                failed: matches!(outcome, Refreshed::Failed(_)),
            });
        }
        outcome
    }

    /// Publishes a successful fetch: a new snapshot when the flags changed, else the one served
    /// with its fetch time moved on (and its status back to `ok`).
    fn fetched(&mut self, mut fetched: Fetched, elapsed_ms: f64) -> Refreshed {
        let now = SystemTime::now();
        self.policy.successful_refresh(Instant::now());
        self.stats.fetches += 1;
        self.stats.ssm_calls += u64::from(fetched.calls);
        let undecryptable = self.keep_undecrypted(&mut fetched);
        if std::mem::take(&mut self.on_fallback) {
            tracing::info!(
                "first successful fetch: the deployed fallback's flags are replaced by the fetched ones"
            );
        }
        self.keep_good_documents(&mut fetched);
        let previous = self.last_good.as_deref().unwrap_or_default();
        let changes = diff(previous, &fetched.parameters);
        let count = changes.len();
        let current = self.shared.load();
        if self.last_good.is_none() || count > 0 {
            self.version += 1;
            let mut assembler = Assembler::new().with_envelope(self.declared.envelope().cloned());
            for p in &fetched.parameters {
                let (source, format) = self.declared.of(&p.name);
                if self.never_decrypted.contains(&p.name) {
                    assembler.add_entry(source, &p.name, undecryptable_entry(p));
                } else {
                    assembler.add(source, format, p);
                }
            }
            let assembly = assembler.finish();
            let invalid = invalid_of(&assembly);
            if assembly.shadowed != current.shadowed {
                log_shadowed(&assembly.shadowed);
            }
            let snapshot = Snapshot::new(self.version, Status::Ok, assembly.entries)
                .with_fetched_at(Some(now))
                .with_default_region(self.default_region.as_deref());
            log_changes(&changes, &fetched.labels);
            log_invalid(&changes, &invalid);
            let served = Served::new(self.instance, snapshot, fetched.decryption_error.clone())
                .with_shadowed(assembly.shadowed);
            self.shared
                .publish(served.with_undecryptable(undecryptable));
        } else {
            // Same content: nothing to parse or render unless the status changes.
            current.snapshot.mark_fetched(now);
            if current.status() != Status::Ok || current.undecryptable != undecryptable {
                let served = current
                    .remark(self.instance, Status::Ok, fetched.decryption_error.clone())
                    .with_undecryptable(undecryptable);
                served.snapshot.mark_fetched(now);
                self.shared.publish(served);
            }
        }
        if !fetched.stale.is_empty() {
            // Some source failed and is served from its own last good: stale, naming it.
            let why = fetched.stale.join("; ");
            tracing::warn!(error = %why, "a source failed: its last good flags are served, the others are current");
            let served = self
                .shared
                .load()
                .remark(self.instance, Status::Stale, Some(why));
            self.shared.publish(served);
        }
        let served = self.shared.load();
        tracing::info!(
            flags = served.snapshot.len(),
            invalid = served.invalid,
            changes = count,
            version = self.version,
            ssm_calls = fetched.calls,
            elapsed_ms,
            "flags refreshed"
        );
        self.last_good = Some(fetched.parameters);
        Refreshed::Fetched {
            changes: count,
            calls: fetched.calls,
        }
    }

    /// A flag document that cannot be read at all (broken JSON, a broken top level) would take
    /// every flag it defines out of the snapshot — and bring back what they hid: its last good
    /// version is served instead, and the source is stale, saying why, until it is fixed. A
    /// document never read well before stays an invalid entry named after its parameter.
    fn keep_good_documents(&self, fetched: &mut Fetched) {
        let previous: HashMap<&str, &Parameter> = self
            .last_good
            .iter()
            .flatten()
            .map(|p| (p.name.as_str(), p))
            .collect();
        for parameter in &mut fetched.parameters {
            let (_, format) = self.declared.of(&parameter.name);
            let envelope = self.declared.envelope();
            let Some(problem) = broken_document(format, parameter, envelope) else {
                continue;
            };
            let Some(good) = previous
                .get(parameter.name.as_str())
                .filter(|good| broken_document(format, good, envelope).is_none())
            else {
                continue;
            };
            fetched.stale.push(format!(
                "{} (version {}) is not a readable flag document: it {problem}; its last good version {} is served",
                parameter.name, parameter.version, good.version
            ));
            *parameter = (*good).clone();
        }
    }

    /// SecureStrings SSM would not decrypt keep their last good value; one never decrypted reads
    /// as its default (an error entry naming the missing permission), never as its ciphertext.
    /// Returns the flag names concerned, sorted, for health and the log.
    fn keep_undecrypted(&mut self, fetched: &mut Fetched) -> Vec<String> {
        let undecrypted: HashSet<&str> = fetched.undecrypted.iter().map(String::as_str).collect();
        let last_good: HashMap<&str, &Parameter> = self
            .last_good
            .iter()
            .flatten()
            .filter(|p| !self.never_decrypted.contains(&p.name))
            .map(|p| (p.name.as_str(), p))
            .collect();
        let mut never = HashSet::new();
        let mut flags = Vec::new();
        for parameter in &mut fetched.parameters {
            if !undecrypted.contains(parameter.name.as_str()) {
                continue;
            }
            flags.push(parameter.flag.clone());
            match last_good.get(parameter.name.as_str()) {
                Some(good) => *parameter = (*good).clone(),
                None => {
                    never.insert(parameter.name.clone());
                }
            }
        }
        flags.sort_unstable();
        if let Some(error) = &fetched.decryption_error {
            tracing::warn!(
                %error,
                flags = ?flags,
                never_decrypted = never.len(),
                "cannot decrypt some SecureString flags: serving their last good values (defaults for any never decrypted); other flags are current"
            );
        }
        self.never_decrypted = never;
        flags
    }

    /// Serves the deployed fallback when nothing has been fetched yet and it is not served yet.
    fn serve_fallback_if_nothing_else(&mut self, reason: &str) {
        if self.last_good.is_some() || self.on_fallback {
            return;
        }
        let Some(fallback) = self.fallback.take() else {
            return;
        };
        self.version += 1;
        let snapshot = Snapshot::new(self.version, Status::Fallback, fallback.entries().cloned())
            .with_fetched_at(fallback.fetched_at())
            .with_default_region(self.default_region.as_deref());
        let flags = snapshot.len();
        self.shared.publish(Served::new(
            self.instance,
            snapshot,
            Some(reason.to_owned()),
        ));
        self.on_fallback = true;
        tracing::warn!(
            flags,
            version = self.version,
            reason,
            "serving the deployed fallback file's flags (SSM_FLAGS_FALLBACK_FILE), marked fallback, until a fetch succeeds"
        );
    }

    /// Publishes a failed fetch: the flags served stay, marked stale (`fallback` while the
    /// deployed fallback is served; `degraded` if there are no flags).
    fn failed(&mut self, error: SourceError, elapsed_ms: f64) -> Refreshed {
        let retry_in = self.policy.failed_refresh(Instant::now());
        self.stats.failures += 1;
        self.serve_fallback_if_nothing_else(&error.to_string());
        let status = match (&self.last_good, self.on_fallback) {
            (Some(_), _) => Status::Stale,
            (None, true) => Status::Fallback,
            (None, false) => Status::Degraded,
        };
        let served = self
            .shared
            .load()
            .remark(self.instance, status, Some(error.to_string()));
        let age_s = served.snapshot.age().map(|a| a.as_secs());
        tracing::warn!(
            %error,
            transient = error.is_transient(),
            %status,
            serving_version = self.version,
            age_s,
            failures_in_a_row = self.policy.failures(),
            retry_in_ms = retry_in.as_millis() as u64,
            elapsed_ms,
            "flag refresh failed: serving the last good flags"
        );
        self.shared.publish(served);
        Refreshed::Failed(error)
    }
}

/// The entry of a SecureString SSM has never decrypted: its default, with an error naming the
/// missing permission (and never its ciphertext).
fn undecryptable_entry(parameter: &Parameter) -> FlagEntry {
    let error = FlagError::Reported(format!(
        "parameter {}: SSM could not decrypt it (the role needs kms:Decrypt on its KMS key); it reads as its default until it can",
        parameter.name
    ));
    FlagEntry::invalid(parameter.flag.as_str(), parameter.version, true, "", error)
}

/// A fetch that left out flags the last good fetch had is taken as the whole truth only when
/// SSM, asked for every one of those flags by name, confirms each is gone (`GetParameters` lists
/// it in `InvalidParameters`): a listing cut short, emptied or mangled by any fault, for any
/// length of time, never removes a flag that exists, while a real deletion takes effect at the
/// next fetch. The names are asked for in name order, [`VERIFY_AT_MOST`] a call (⌈n/10⌉ calls);
/// each confirmation is kept in `progress` as it arrives, so a check longer than one refresh's
/// budget goes on at the next without asking twice. If any still exists, the fetch fails as
/// incomplete; an answer that neither returns a name nor lists it as invalid fails it too.
async fn verify_vanished<S: Source>(
    source: &S,
    last_good: Option<&[Parameter]>,
    progress: &mut Progress,
) -> Result<(), SourceError> {
    let Some(last_good) = last_good else {
        return Ok(());
    };
    let listed: HashSet<&str> = progress
        .fetched()
        .parameters
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    // Only SSM parameters (names start with '/'): an AppConfig version replaces the previous one
    // whole, as AppConfig validated and deployed it.
    let mut vanished: Vec<String> = last_good
        .iter()
        .map(|p| p.name.as_str())
        .filter(|name| name.starts_with('/') && !listed.contains(name))
        .map(str::to_owned)
        .collect();
    vanished.sort_unstable();
    vanished.dedup();
    let total = vanished.len();
    vanished.retain(|name| !progress.is_confirmed_gone(name));
    if total > 0 {
        tracing::debug!(
            vanished = total,
            to_check = vanished.len(),
            "flags left out of the listing: asking SSM for each by name"
        );
    }
    for asked in vanished.chunks(VERIFY_AT_MOST) {
        let answer = source.look_up(asked).await;
        // From here on nothing awaits: a confirmation is kept whole or not at all.
        progress.count_call();
        let answer = answer?;
        if let Some(example) = answer.found.into_iter().next() {
            return Err(SourceError::Incomplete {
                vanished: total,
                example,
            });
        }
        let invalid: HashSet<&str> = answer.invalid.iter().map(String::as_str).collect();
        if let Some(name) = asked.iter().find(|name| !invalid.contains(name.as_str())) {
            return Err(SourceError::Unconfirmed { name: name.clone() });
        }
        for name in asked {
            progress.confirm_gone(name.clone());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    use crate::source::LookedUp;

    use flags::ParameterKind;

    /// A scripted source: unit tests of the refresher's bookkeeping (SSM itself is exercised
    /// against moto in `tests/`).
    struct Script {
        fetches: Mutex<Vec<Result<Vec<Parameter>, SourceError>>>,
        /// The parameter names SSM still has when asked by name.
        present: Mutex<HashSet<String>>,
        /// Names the answer by name leaves out of both arrays.
        unanswered: Mutex<HashSet<String>>,
        /// How an answer by name fails, if it does.
        look_up_error: Mutex<Option<SourceError>>,
        /// The names of each `look_up` call.
        asked: Mutex<Vec<Vec<String>>>,
    }

    impl Script {
        fn new(fetches: Vec<Result<Vec<Parameter>, SourceError>>) -> Self {
            Self {
                fetches: Mutex::new(fetches),
                present: Mutex::new(HashSet::new()),
                unanswered: Mutex::new(HashSet::new()),
                look_up_error: Mutex::new(None),
                asked: Mutex::new(Vec::new()),
            }
        }

        fn asked(&self) -> Vec<Vec<String>> {
            self.asked.lock().map(|a| a.clone()).unwrap_or_default()
        }

        fn set_present(&self, flags: &[&str]) {
            if let Ok(mut present) = self.present.lock() {
                *present = flags.iter().map(|f| format!("/f/{f}")).collect();
            }
        }
    }

    impl Source for Script {
        async fn fetch_into(&self, progress: &mut Progress) -> Result<(), SourceError> {
            let next = self.fetches.lock().map(|mut s| s.remove(0));
            let parameters = next.unwrap_or(Err(SourceError::Timeout(Duration::ZERO)))?;
            *progress = Progress::complete(Fetched {
                parameters,
                calls: 1,
                ..Fetched::default()
            });
            Ok(())
        }

        async fn look_up(&self, names: &[String]) -> Result<LookedUp, SourceError> {
            assert!(
                names.len() <= VERIFY_AT_MOST,
                "{} names in one call",
                names.len()
            );
            if let Ok(mut asked) = self.asked.lock() {
                asked.push(names.to_vec());
            }
            if let Some(error) = self.look_up_error.lock().ok().and_then(|e| e.clone()) {
                return Err(error);
            }
            let present = self.present.lock().map(|p| p.clone()).unwrap_or_default();
            let unanswered = self
                .unanswered
                .lock()
                .map(|u| u.clone())
                .unwrap_or_default();
            let (found, invalid) = names
                .iter()
                .filter(|n| !unanswered.contains(*n))
                .cloned()
                .partition(|n| present.contains(n));
            Ok(LookedUp { found, invalid })
        }
    }

    fn param(flag: &str, value: &str, version: u64) -> Parameter {
        Parameter {
            flag: flag.into(),
            name: format!("/f/{flag}"),
            kind: ParameterKind::String,
            value: value.into(),
            version,
        }
    }

    fn down() -> SourceError {
        SourceError::Unreachable {
            path: "/f".into(),
            message: "connection refused".into(),
        }
    }

    fn fallback_file() -> Snapshot {
        Snapshot::new(
            9,
            Status::Fallback,
            [
                param("kill-switch", "true", 4),
                param(
                    "rollout",
                    r#"{"enabled": true, "rollout_percentage": 50}"#,
                    2,
                ),
            ]
            .iter()
            .map(FlagEntry::from_parameter),
        )
    }

    #[tokio::test]
    async fn a_first_load_that_fails_serves_the_deployed_fallback_until_a_fetch_succeeds() {
        let script = Script::new(vec![
            Err(down()),
            Err(down()),
            Ok(vec![param("kill-switch", "false", 5)]),
            Err(down()),
        ]);
        let mut r = Refresher::new(script, Duration::ZERO, Duration::from_secs(1))
            .with_fallback(Some(fallback_file()));
        let shared = r.shared();

        assert!(matches!(r.refresh().await, Refreshed::Failed(_)));
        let s = shared.load();
        assert_eq!(
            (s.status(), s.snapshot.version(), s.snapshot.len()),
            (Status::Fallback, 1, 2)
        );
        assert!(
            s.snapshot.get("kill-switch").enabled(),
            "the deployed value, not the default"
        );
        assert!(
            s.last_error
                .as_deref()
                .is_some_and(|e| e.contains("connection refused"))
        );

        // Failing again: still the fallback, same content and tag.
        let etag = s.etag.clone();
        assert!(matches!(r.refresh().await, Refreshed::Failed(_)));
        let s = shared.load();
        assert_eq!(
            (s.status(), s.snapshot.version(), s.etag.clone()),
            (Status::Fallback, 1, etag)
        );

        // The first success replaces it whole (the fallback's other flag is gone).
        assert!(matches!(r.refresh().await, Refreshed::Fetched { .. }));
        let s = shared.load();
        assert_eq!(
            (s.status(), s.snapshot.version(), s.snapshot.len()),
            (Status::Ok, 2, 1)
        );
        assert!(!s.snapshot.get("kill-switch").enabled());

        // Later failures keep the fetched flags, stale: the fallback never comes back.
        assert!(matches!(r.refresh().await, Refreshed::Failed(_)));
        let s = shared.load();
        assert_eq!((s.status(), s.snapshot.version()), (Status::Stale, 2));
        assert!(!s.snapshot.get("kill-switch").enabled());
    }

    #[tokio::test]
    async fn without_a_fallback_a_failed_first_load_is_degraded() {
        let mut r = Refresher::new(
            Script::new(vec![Err(down())]),
            Duration::ZERO,
            Duration::from_secs(1),
        )
        .with_fallback(None);
        assert!(matches!(r.refresh().await, Refreshed::Failed(_)));
        assert_eq!(r.shared().load().status(), Status::Degraded);
    }

    #[tokio::test]
    async fn versions_move_only_on_change_and_failures_keep_the_last_good() {
        let script = Script::new(vec![
            Err(down()),
            Ok(vec![param("a", "true", 1)]),
            Ok(vec![param("a", "true", 1)]),
            Err(down()),
            Ok(vec![param("a", "false", 2)]),
        ]);
        let mut r = Refresher::new(script, Duration::ZERO, Duration::from_secs(1));
        let shared = r.shared();

        assert!(matches!(r.refresh().await, Refreshed::Failed(_)));
        let s = shared.load();
        assert_eq!(
            (s.status(), s.snapshot.version(), s.snapshot.len()),
            (Status::Degraded, 0, 0)
        );
        assert!(
            s.last_error
                .as_deref()
                .is_some_and(|e| e.contains("connection refused"))
        );

        assert_eq!(
            r.refresh().await,
            Refreshed::Fetched {
                changes: 1,
                calls: 1
            }
        );
        assert_eq!(shared.load().snapshot.version(), 1);
        assert_eq!(
            r.refresh().await,
            Refreshed::Fetched {
                changes: 0,
                calls: 1
            }
        );
        assert_eq!(
            shared.load().snapshot.version(),
            1,
            "unchanged content keeps its version"
        );

        assert!(matches!(r.refresh().await, Refreshed::Failed(_)));
        let s = shared.load();
        assert_eq!(s.status(), Status::Stale);
        assert!(
            s.snapshot.get("a").enabled(),
            "the last good value is still served"
        );

        assert_eq!(
            r.refresh().await,
            Refreshed::Fetched {
                changes: 1,
                calls: 1
            }
        );
        let s = shared.load();
        assert_eq!((s.status(), s.snapshot.version()), (Status::Ok, 2));
        assert!(!s.snapshot.get("a").enabled());
        assert_eq!(
            r.stats(),
            Stats {
                fetches: 3,
                failures: 2,
                ssm_calls: 3
            }
        );
    }

    #[tokio::test]
    async fn an_unchanged_fetch_moves_the_fetch_time_and_nothing_else() {
        let script = Script::new(vec![
            Ok(vec![param("a", "true", 1)]),
            Ok(vec![param("a", "true", 1)]),
            Err(down()),
            Ok(vec![param("a", "true", 1)]),
        ]);
        let mut r = Refresher::new(script, Duration::ZERO, Duration::from_secs(1));
        let shared = r.shared();
        r.refresh().await;
        let first = shared.load();
        let first_at = first.snapshot.fetched_at().expect("fetched");
        tokio::time::sleep(Duration::from_millis(5)).await;
        r.refresh().await;
        let second = shared.load();
        assert!(Arc::ptr_eq(&first, &second), "nothing re-rendered");
        assert!(second.snapshot.fetched_at() > Some(first_at), "fresher");
        // Stale, then back to ok with the same flags: the tag follows the status.
        r.refresh().await;
        let stale = shared.load();
        assert_eq!(stale.status(), Status::Stale);
        assert_ne!(stale.etag, first.etag);
        assert_eq!(stale.snapshot.fetched_at(), second.snapshot.fetched_at());
        tokio::time::sleep(Duration::from_millis(5)).await;
        r.refresh().await;
        let ok = shared.load();
        assert_eq!((ok.status(), ok.snapshot.version()), (Status::Ok, 1));
        assert_eq!(ok.etag, first.etag, "same content and status, same tag");
        assert!(ok.snapshot.fetched_at() > second.snapshot.fetched_at());
    }

    #[tokio::test]
    async fn evaluations_use_the_configured_default_region() {
        let flag = r#"{"enabled": true, "allowed_regions": ["eu-west-1"]}"#;
        let script = Script::new(vec![Ok(vec![param("eu", flag, 1)])]);
        let mut r = Refresher::new(script, Duration::ZERO, Duration::from_secs(1))
            .with_default_region(Some("eu-west-1".into()));
        r.refresh().await;
        assert!(r.shared().load().snapshot.get("eu").enabled());
    }

    #[tokio::test]
    async fn flags_left_out_of_a_listing_are_removed_only_when_ssm_confirms_by_name() {
        let both = || Ok(vec![param("a", "true", 1), param("b", "true", 1)]);
        let script = Script::new(vec![
            both(),
            Ok(vec![]),                      // emptied listing, both still exist
            Ok(vec![param("a", "true", 1)]), // b left out, still exists
            Ok(vec![param("a", "true", 1)]), // b really deleted
            Ok(vec![]),                      // every flag really deleted
        ]);
        script.set_present(&["a", "b"]);
        let mut r = Refresher::new(script, Duration::ZERO, Duration::from_secs(1));
        let shared = r.shared();
        r.refresh().await;
        for _ in 0..2 {
            let outcome = r.refresh().await;
            assert!(
                matches!(outcome, Refreshed::Failed(SourceError::Incomplete { .. })),
                "{outcome:?}"
            );
            let s = shared.load();
            assert_eq!((s.status(), s.snapshot.len()), (Status::Stale, 2));
            assert!(s.snapshot.get("a").enabled() && s.snapshot.get("b").enabled());
        }
        r.source.set_present(&["a"]);
        assert_eq!(
            r.refresh().await,
            Refreshed::Fetched {
                changes: 1,
                calls: 2
            },
            "one listing and one check by name"
        );
        let s = shared.load();
        assert_eq!((s.status(), s.snapshot.len()), (Status::Ok, 1));
        r.source.set_present(&[]);
        assert!(matches!(
            r.refresh().await,
            Refreshed::Fetched { changes: 1, .. }
        ));
        assert_eq!(
            shared.load().snapshot.len(),
            0,
            "a genuine deletion applies"
        );
    }

    #[tokio::test]
    async fn many_vanished_flags_that_still_exist_fail_the_fetch() {
        let all: Vec<Parameter> = (0..40)
            .map(|i| param(&format!("f{i:02}"), "true", 1))
            .collect();
        // The listing loses its last 30 flags, which SSM still has: the first call finds them.
        let script = Script::new(vec![Ok(all.clone()), Ok(all[..10].to_vec())]);
        let lost: Vec<String> = (10..40).map(|i| format!("f{i:02}")).collect();
        script.set_present(&lost.iter().map(String::as_str).collect::<Vec<_>>());
        let mut r = Refresher::new(script, Duration::ZERO, Duration::from_secs(1));
        r.refresh().await;
        assert_eq!(
            r.refresh().await,
            Refreshed::Failed(SourceError::Incomplete {
                vanished: 30,
                example: "/f/f10".into()
            })
        );
    }

    /// 45 flags, a listing cut to its first 10 while 30 were really deleted: the 5 left out that
    /// still exist sit where a sample of one in four would not look. Every name is asked for,
    /// ten a call, so nothing is removed; once the listing is whole, exactly the 30 go.
    #[tokio::test]
    async fn every_flag_left_out_is_asked_for_by_name_ten_a_call() {
        let all: Vec<Parameter> = (0..45)
            .map(|i| param(&format!("f{i:02}"), "true", 1))
            .collect();
        let stay = ["f11", "f12", "f13", "f15", "f16"];
        let mut whole: Vec<Parameter> = all[..10].to_vec();
        whole.extend(
            all.iter()
                .filter(|p| stay.contains(&p.flag.as_str()))
                .cloned(),
        );
        let script = Script::new(vec![
            Ok(all.clone()),
            Ok(all[..10].to_vec()),
            Ok(whole.clone()),
        ]);
        let mut present: Vec<&str> = stay.to_vec();
        let first: Vec<String> = (0..10).map(|i| format!("f{i:02}")).collect();
        present.extend(first.iter().map(String::as_str));
        script.set_present(&present);
        let mut r = Refresher::new(script, Duration::ZERO, Duration::from_secs(1));
        let shared = r.shared();
        r.refresh().await;
        assert_eq!(
            r.refresh().await,
            Refreshed::Failed(SourceError::Incomplete {
                vanished: 35,
                example: "/f/f11".into()
            })
        );
        assert_eq!(shared.load().snapshot.len(), 45, "nothing removed");
        assert_eq!(r.source.asked().len(), 1, "the first call found one");

        assert_eq!(
            r.refresh().await,
            Refreshed::Fetched {
                changes: 30,
                calls: 4
            },
            "one listing and ⌈30/10⌉ = 3 calls by name"
        );
        let asked = r.source.asked();
        let sizes: Vec<usize> = asked[1..].iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 10]);
        let mut names: Vec<&String> = asked[1..].iter().flatten().collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 30, "each deleted flag asked for once");
        let s = shared.load();
        assert_eq!((s.status(), s.snapshot.len()), (Status::Ok, 15));
        assert!(stay.iter().all(|f| s.snapshot.get(f).is_known()));
    }

    #[tokio::test]
    async fn an_answer_by_name_that_confirms_nothing_removes_nothing() {
        let both = || Ok(vec![param("a", "true", 1), param("b", "true", 1)]);
        let a_only = || Ok(vec![param("a", "true", 1)]);
        let script = Script::new(vec![both(), a_only(), a_only(), a_only()]);
        script.set_present(&["a"]);
        let mut r = Refresher::new(script, Duration::ZERO, Duration::from_secs(1));
        let shared = r.shared();
        r.refresh().await;
        // A malformed answer (as `200 {}` is): the fetch fails, b stays.
        let malformed = SourceError::MalformedCheck {
            first: "/f/b".into(),
            asked: 1,
            missing: "Parameters and InvalidParameters arrays",
        };
        if let Ok(mut e) = r.source.look_up_error.lock() {
            *e = Some(malformed.clone());
        }
        assert_eq!(r.refresh().await, Refreshed::Failed(malformed));
        // An answer that lists b in neither array: not confirmed.
        if let Ok(mut e) = r.source.look_up_error.lock() {
            *e = None;
        }
        if let Ok(mut u) = r.source.unanswered.lock() {
            u.insert("/f/b".into());
        }
        assert_eq!(
            r.refresh().await,
            Refreshed::Failed(SourceError::Unconfirmed {
                name: "/f/b".into()
            })
        );
        let s = shared.load();
        assert_eq!((s.status(), s.snapshot.len()), (Status::Stale, 2));
        // Listed in InvalidParameters: removed.
        if let Ok(mut u) = r.source.unanswered.lock() {
            u.clear();
        }
        assert!(matches!(
            r.refresh().await,
            Refreshed::Fetched { changes: 1, .. }
        ));
        assert_eq!(shared.load().snapshot.len(), 1);
    }

    /// A source whose listings are given whole and whose answers by name take `delay` each
    /// (every name asked for is gone).
    struct SlowCheck {
        listings: Mutex<Vec<Vec<Parameter>>>,
        delay: Duration,
        asked: Mutex<Vec<Vec<String>>>,
    }

    impl Source for SlowCheck {
        async fn fetch_into(&self, progress: &mut Progress) -> Result<(), SourceError> {
            if !progress.is_complete() {
                let listing = self.listings.lock().map(|mut l| l.remove(0));
                progress.push_page(listing.unwrap_or_default());
                progress.mark_complete();
            }
            Ok(())
        }

        async fn look_up(&self, names: &[String]) -> Result<LookedUp, SourceError> {
            tokio::time::sleep(self.delay).await;
            if let Ok(mut asked) = self.asked.lock() {
                asked.push(names.to_vec());
            }
            Ok(LookedUp {
                found: Vec::new(),
                invalid: names.to_vec(),
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_confirmation_longer_than_a_budget_goes_on_at_the_next_refresh() {
        let all: Vec<Parameter> = (0..45)
            .map(|i| param(&format!("f{i:02}"), "true", 1))
            .collect();
        let source = SlowCheck {
            listings: Mutex::new(vec![all.clone(), all[..10].to_vec()]),
            delay: Duration::from_millis(100),
            asked: Mutex::new(Vec::new()),
        };
        let mut r = Refresher::new(source, Duration::ZERO, Duration::from_secs(2));
        let shared = r.shared();
        r.refresh().await;
        // 35 flags left out: 4 calls of 100 ms, two per 250 ms budget.
        let budget = Duration::from_millis(250);
        assert_eq!(
            r.refresh_within(budget).await,
            Refreshed::Continues { read: 10, calls: 3 }
        );
        assert_eq!(shared.load().snapshot.len(), 45, "nothing removed yet");
        assert!(r.is_resuming());
        assert_eq!(
            r.refresh_within(budget).await,
            Refreshed::Fetched {
                changes: 35,
                calls: 5
            },
            "one listing and ⌈35/10⌉ = 4 calls by name, over two refreshes"
        );
        let asked = r.source.asked.lock().map(|a| a.clone()).unwrap_or_default();
        let sizes: Vec<usize> = asked.iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 10, 5], "no name asked for twice");
        assert_eq!(shared.load().snapshot.len(), 10);
    }

    #[tokio::test]
    async fn ten_thousand_odd_flags_with_huge_and_broken_values_are_all_served() {
        let names = [
            "café/über",
            "a/b/c/d/e/f/g/h",
            "dots.and-dashes_",
            "数字",
            "emoji-🚀",
        ];
        let big = format!(r#"{{"enabled": true, "blob": "{}"}}"#, "x".repeat(8_000));
        let mut params: Vec<Parameter> = (0..10_000)
            .map(|i| {
                let value = match i % 4 {
                    0 => "true".to_owned(),
                    1 => big.clone(),
                    2 => format!(r#"{{"enabled": true, "rollout_percentage": {}}}"#, i % 150),
                    _ => "{broken".to_owned(),
                };
                param(&format!("{}/{i}", names[i % names.len()]), &value, 1)
            })
            .collect();
        params.push(param("ok", "false", 1));
        // Invalid: every "{broken", and every percentage above 100.
        let expected_invalid = (0..10_000)
            .filter(|i| i % 4 == 3 || (i % 4 == 2 && i % 150 > 100))
            .count();
        let script = Script::new(vec![Ok(params)]);
        let mut r = Refresher::new(script, Duration::from_secs(60), Duration::from_secs(10));
        let shared = r.shared();
        assert!(matches!(
            r.refresh().await,
            Refreshed::Fetched {
                changes: 10_001,
                ..
            }
        ));
        let s = shared.load();
        assert_eq!(s.snapshot.len(), 10_001);
        assert_eq!(s.invalid, expected_invalid);
        assert!(s.snapshot.get("ok").is_known());
        assert!(s.snapshot.get("数字/3").error().is_some_and(|e| {
            e.to_string()
                .starts_with("parameter /f/数字/3: invalid JSON")
        }));
        assert!(s.snapshot.get("café/über/0").enabled());
        assert_eq!(
            s.snapshot
                .get("a/b/c/d/e/f/g/h/1")
                .field::<String>("blob")
                .map(|b| b.len()),
            Some(8_000)
        );
        // The whole snapshot is served as one JSON body that parses back.
        let doc: serde_json::Value = serde_json::from_slice(&s.body).expect("body is JSON");
        assert_eq!(doc["flags"].as_object().map(|f| f.len()), Some(10_001));
    }

    /// A source whose pages take `delay` each.
    struct Paged {
        pages: Vec<Vec<Parameter>>,
        delay: Duration,
    }

    impl Source for Paged {
        async fn fetch_into(&self, progress: &mut Progress) -> Result<(), SourceError> {
            let next = progress.calls() as usize;
            for page in self.pages.iter().skip(next) {
                tokio::time::sleep(self.delay).await;
                progress.push_page(page.iter().cloned());
            }
            progress.mark_complete();
            Ok(())
        }

        async fn look_up(&self, names: &[String]) -> Result<LookedUp, SourceError> {
            Ok(LookedUp {
                found: Vec::new(),
                invalid: names.to_vec(),
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_fetch_longer_than_its_budget_resumes_and_is_published_only_whole() {
        let pages: Vec<Vec<Parameter>> = (0..10)
            .map(|p| {
                (0..10)
                    .map(|i| param(&format!("p{p}-f{i}"), "true", 1))
                    .collect()
            })
            .collect();
        let paged = Paged {
            pages,
            delay: Duration::from_millis(100),
        };
        let mut r = Refresher::new(paged, Duration::from_secs(60), Duration::from_secs(2));
        let shared = r.shared();
        let budget = Duration::from_millis(350);
        for read in [30, 60, 90] {
            assert_eq!(
                r.refresh_within(budget).await,
                Refreshed::Continues {
                    read,
                    calls: read as u32 / 10
                }
            );
            let s = shared.load();
            assert_eq!(
                (s.status(), s.snapshot.len()),
                (Status::Degraded, 0),
                "never published half-loaded"
            );
        }
        assert!(
            r.refresh_if_due(budget).await.is_some(),
            "a fetch in progress is due"
        );
        let s = shared.load();
        assert_eq!(
            (s.status(), s.snapshot.len(), s.snapshot.version()),
            (Status::Ok, 100, 1)
        );
        assert_eq!(r.stats().ssm_calls, 10, "no page read twice");
    }

    #[tokio::test(start_paused = true)]
    async fn a_budget_in_which_no_page_arrives_is_a_failure() {
        let paged = Paged {
            pages: vec![vec![param("a", "true", 1)]],
            delay: Duration::from_secs(5),
        };
        let mut r = Refresher::new(paged, Duration::from_secs(60), Duration::from_secs(2));
        assert!(matches!(
            r.refresh_within(Duration::from_secs(1)).await,
            Refreshed::Failed(SourceError::Timeout(_))
        ));
        assert!(
            r.refresh_if_due(Duration::from_secs(1)).await.is_none(),
            "backing off"
        );
    }

    struct Slow;

    impl Source for Slow {
        async fn fetch_into(&self, _: &mut Progress) -> Result<(), SourceError> {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Err(down())
        }

        async fn look_up(&self, _: &[String]) -> Result<LookedUp, SourceError> {
            Err(down())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_source_is_cut_at_the_timeout() {
        let mut r = Refresher::new(Slow, Duration::from_secs(60), Duration::from_millis(1500));
        let started = tokio::time::Instant::now();
        let outcome = r.refresh().await;
        assert_eq!(
            outcome,
            Refreshed::Failed(SourceError::Timeout(Duration::from_millis(1500)))
        );
        assert_eq!(started.elapsed(), Duration::from_millis(1500));
    }
}
