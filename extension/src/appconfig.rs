//! AWS AppConfig profiles as a flag source, beside or instead of SSM paths
//! (`SSM_FLAGS_APPCONFIG=application/environment/profile[,…]`), through AppConfig's data API as
//! AWS documents it: `StartConfigurationSession` once, then `GetLatestConfiguration` with the
//! token of the previous answer, never sooner than the `Next-Poll-Interval-In-Seconds` it
//! announced. An empty body (200 or 204) means unchanged. An expired or corrupted token starts a
//! new session. Throttling and 5xx fail the poll like any SSM error, and the profile backs off.
//!
//! A new profile version replaces the previous one whole: AppConfig validated and deployed it, so
//! the "suddenly empty" check SSM listings get does not apply. [`Sources`] combines paths and
//! profiles; each source keeps its own last good, so one failing never drops another's flags
//! (the snapshot is then marked stale, naming the source). Flags are merged in order: SSM paths
//! first, then profiles as listed; a later source wins a name present in several.

use std::sync::Mutex as SyncMutex;
use std::time::{Duration, Instant};

use aws_sdk_appconfigdata::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_appconfigdata::types::{BadRequestDetails, InvalidParameterProblem};
use flags::Format;
use flags::Parameter;
use flags::appconfig::parse_profile;

use crate::source::{LookedUp, Progress, Source, SourceError};

/// The poll interval assumed when AppConfig announces none (its documented default).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(60);
/// The first retry delay of a profile whose poll failed; doubles up to its poll interval.
const BASE_BACKOFF: Duration = Duration::from_secs(1);

/// One profile: `application/environment/profile`, each by name or ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileId {
    /// The application's name or ID.
    pub application: String,
    /// The environment's name or ID.
    pub environment: String,
    /// The configuration profile's name or ID.
    pub profile: String,
    /// The declared format (`#flagd`, `#flagd-v2` after the profile; none: the seed's).
    pub format: Format,
}

impl ProfileId {
    /// Parses `SSM_FLAGS_APPCONFIG`: comma-separated `application/environment/profile`, each
    /// optionally marked with its format (`#flagd`, `#flagd-v2`). A name holding `/`, `,` or `#`
    /// must be given by its ID.
    pub fn parse_list(raw: &str) -> Result<Vec<Self>, String> {
        let mut profiles: Vec<Self> = Vec::new();
        for item in raw.split(',').map(str::trim) {
            let (item, format) = Format::split(item).map_err(|e| e.to_string())?;
            let parts: Vec<&str> = item.split('/').map(str::trim).collect();
            let [application, environment, profile] = parts[..] else {
                return Err(format!(
                    "{item:?} is not application/environment/profile (names holding '/', ',' or '#' must be given by their ID)"
                ));
            };
            if [application, environment, profile]
                .iter()
                .any(|p| p.is_empty())
            {
                return Err(format!("{item:?} has an empty part"));
            }
            let id = Self {
                application: application.to_owned(),
                environment: environment.to_owned(),
                profile: profile.to_owned(),
                format,
            };
            if profiles.iter().any(|p| p.to_string() == id.to_string()) {
                return Err(format!("{item:?} is listed twice"));
            }
            profiles.push(id);
        }
        Ok(profiles)
    }
}

impl std::fmt::Display for ProfileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.application, self.environment, self.profile
        )
    }
}

#[derive(Debug, Default)]
struct PollState {
    token: Option<String>,
    /// Not before: the interval AppConfig announced, or the backoff after a failure.
    next_poll: Option<Instant>,
    interval: Option<Duration>,
    last_good: Option<Vec<Parameter>>,
    /// The `Version-Label` of the last good version, when AppConfig sent one.
    label: Option<String>,
    /// Versions received (the snapshot entries' version).
    versions: u64,
    failures: u32,
}

/// An AppConfig profile polled through the data API.
#[derive(Debug)]
pub struct AppConfigProfile {
    id: ProfileId,
    key: String,
    client: aws_sdk_appconfigdata::Client,
    state: tokio::sync::Mutex<PollState>,
}

/// The flags of one profile now, and the calls made to get them.
type Polled = (Vec<Parameter>, u32);

impl AppConfigProfile {
    /// A profile read with `client`.
    pub fn new(id: ProfileId, client: aws_sdk_appconfigdata::Client) -> Self {
        Self {
            key: id.to_string(),
            id,
            client,
            state: tokio::sync::Mutex::new(PollState::default()),
        }
    }

    /// The profile's flags: polled when the interval (or backoff) allows, else the last good.
    /// On failure, the error and the last good flags, if any.
    async fn current(&self) -> Result<Polled, (SourceError, Option<Vec<Parameter>>, u32)> {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        if state.next_poll.is_some_and(|next| now < next) {
            return match &state.last_good {
                Some(good) => Ok((good.clone(), 0)),
                None => Err((
                    self.error("NotYet", "waiting to retry after a failed poll", true),
                    None,
                    0,
                )),
            };
        }
        let mut calls = 0;
        // An expired or corrupted token starts a new session, once per poll. Any other failure
        // (throttling, 5xx, a broken connection, a budget that ran out mid-call) keeps the token
        // for the next poll: a new session would send the whole document again.
        for _attempt in 0..2 {
            let token = match state.token.clone() {
                Some(token) => token,
                None => {
                    calls += 1;
                    match self.start_session().await {
                        Ok(token) => {
                            state.token = Some(token.clone());
                            token
                        }
                        Err(error) => return Err(self.failed(&mut state, error, calls)),
                    }
                }
            };
            calls += 1;
            let answer = self
                .client
                .get_latest_configuration()
                .configuration_token(token)
                .send()
                .await;
            match answer {
                Ok(out) => {
                    state.token = out.next_poll_configuration_token().map(str::to_owned);
                    let interval = u64::try_from(out.next_poll_interval_in_seconds())
                        .ok()
                        .filter(|&s| s > 0)
                        .map_or(DEFAULT_POLL_INTERVAL, Duration::from_secs);
                    state.interval = Some(interval);
                    state.next_poll = Some(Instant::now() + interval);
                    let body = out.configuration().map(|b| b.as_ref()).unwrap_or_default();
                    if !body.is_empty() || state.last_good.is_none() {
                        let version = state.versions + 1;
                        let body = if body.is_empty() {
                            b"{}".as_slice()
                        } else {
                            body
                        };
                        match parse_profile(
                            &self.key,
                            out.content_type(),
                            body,
                            version,
                            self.id.format,
                        ) {
                            Ok(mut flags) => {
                                state.versions = version;
                                let changed = carry_versions(
                                    &mut flags.parameters,
                                    state.last_good.as_deref(),
                                );
                                tracing::info!(
                                    profile = %self.key,
                                    version_label = out.version_label(),
                                    version,
                                    flags = flags.parameters.len(),
                                    changed,
                                    shape = ?flags.shape,
                                    next_poll_s = interval.as_secs(),
                                    "AppConfig configuration received"
                                );
                                state.last_good = Some(flags.parameters);
                                state.label = out.version_label().map(str::to_owned);
                            }
                            Err(error) => {
                                let error =
                                    self.error("InvalidDocument", &error.to_string(), false);
                                return Err(self.failed(&mut state, error, calls));
                            }
                        }
                    }
                    state.failures = 0;
                    let flags = state.last_good.clone().unwrap_or_default();
                    return Ok((flags, calls));
                }
                Err(error) if token_unusable(&error) => {
                    tracing::info!(profile = %self.key, "AppConfig session token expired or corrupted: starting a new session");
                    state.token = None;
                }
                Err(error) => {
                    let error = self.classify(error);
                    return Err(self.failed(&mut state, error, calls));
                }
            }
        }
        let error = self.error(
            "BadRequestException",
            "a new session's token was refused",
            false,
        );
        Err(self.failed(&mut state, error, calls))
    }

    async fn start_session(&self) -> Result<String, SourceError> {
        let out = self
            .client
            .start_configuration_session()
            .application_identifier(&self.id.application)
            .environment_identifier(&self.id.environment)
            .configuration_profile_identifier(&self.id.profile)
            .send()
            .await
            .map_err(|e| self.classify(e))?;
        out.initial_configuration_token()
            .map(str::to_owned)
            .ok_or_else(|| {
                self.error(
                    "Malformed",
                    "no InitialConfigurationToken in the answer",
                    true,
                )
            })
    }

    /// The `Version-Label` of the version served, if any.
    async fn label(&self) -> Option<String> {
        self.state.lock().await.label.clone()
    }

    /// Records a failure: the profile backs off (1 s doubling, up to its poll interval) and
    /// keeps its token for the next poll unless it was the problem.
    fn failed(
        &self,
        state: &mut PollState,
        error: SourceError,
        calls: u32,
    ) -> (SourceError, Option<Vec<Parameter>>, u32) {
        state.failures = state.failures.saturating_add(1);
        let cap = state
            .interval
            .unwrap_or(DEFAULT_POLL_INTERVAL)
            .max(BASE_BACKOFF);
        let backoff = BASE_BACKOFF
            .saturating_mul(1 << state.failures.saturating_sub(1).min(16))
            .min(cap);
        state.next_poll = Some(Instant::now() + backoff);
        (error, state.last_good.clone(), calls)
    }

    fn error(&self, code: &str, message: &str, transient: bool) -> SourceError {
        SourceError::AppConfig {
            profile: self.key.clone(),
            code: code.to_owned(),
            message: message.to_owned(),
            transient,
        }
    }

    fn classify<E, R>(&self, error: SdkError<E, R>) -> SourceError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        match &error {
            SdkError::ServiceError(service) => {
                let err = service.err();
                let code = err.code().unwrap_or("Unknown");
                let transient = matches!(code, "ThrottlingException" | "InternalServerException");
                let hint = match code {
                    "ResourceNotFoundException" => {
                        " (check SSM_FLAGS_APPCONFIG: application/environment/profile, by name or ID)"
                    }
                    "AccessDeniedException" => {
                        " (the role needs appconfig:StartConfigurationSession and appconfig:GetLatestConfiguration on the configuration's ARN)"
                    }
                    _ => "",
                };
                self.error(
                    code,
                    &format!("{}{hint}", err.message().unwrap_or_default()),
                    transient,
                )
            }
            // A missing credential or region is said as such, never as "unreachable".
            other => {
                let path = format!("appconfig:{}", self.key);
                let message = crate::source::error_chain(other);
                use crate::source::{Unconfigured, unconfigured};
                match unconfigured(other) {
                    Some(Unconfigured::Credentials { transient }) => SourceError::Credentials {
                        path,
                        message,
                        transient,
                    },
                    Some(Unconfigured::Region) => SourceError::Region { path, message },
                    None => self.error("Unreachable", &other.to_string(), true),
                }
            }
        }
    }
}

/// Gives each flag of a newly received document (all at the profile's new version) the version
/// it had in `previous` when its content (kind and value) is the same: a flag's version is the
/// profile version at which its content last changed. So one changed flag is one change, and a
/// document sent again whole (a new session) changes nothing. Returns how many flags are new
/// or changed.
fn carry_versions(parameters: &mut [Parameter], previous: Option<&[Parameter]>) -> usize {
    let before: std::collections::HashMap<&str, &Parameter> = previous
        .unwrap_or_default()
        .iter()
        .map(|p| (p.flag.as_str(), p))
        .collect();
    let mut changed = 0;
    for parameter in parameters {
        match before.get(parameter.flag.as_str()) {
            Some(old)
                if (old.kind, &old.value, &old.name)
                    == (parameter.kind, &parameter.value, &parameter.name) =>
            {
                parameter.version = old.version;
            }
            _ => changed += 1,
        }
    }
    changed
}

/// Whether the answer says the token itself is the problem (expired after 24 hours, used twice,
/// mangled): a new session fixes it.
fn token_unusable<R>(
    error: &SdkError<
        aws_sdk_appconfigdata::operation::get_latest_configuration::GetLatestConfigurationError,
        R,
    >,
) -> bool {
    use aws_sdk_appconfigdata::operation::get_latest_configuration::GetLatestConfigurationError;
    let Some(GetLatestConfigurationError::BadRequestException(bad)) = error.as_service_error()
    else {
        return false;
    };
    match bad.details() {
        Some(BadRequestDetails::InvalidParameters(parameters)) => parameters.values().any(|p| {
            matches!(
                p.problem(),
                Some(InvalidParameterProblem::Expired | InvalidParameterProblem::Corrupted)
            )
        }),
        _ => false,
    }
}

/// SSM paths and AppConfig profiles as one source. Each keeps its own last good: a failing one
/// is served from it, the fetch succeeds with the snapshot marked stale naming the source; only
/// when no source has anything does the fetch fail.
pub struct Sources<S> {
    ssm: Option<S>,
    profiles: Vec<AppConfigProfile>,
    /// The SSM flags of the last successful SSM fetch, served while SSM fails.
    ssm_last_good: SyncMutex<Option<Vec<Parameter>>>,
}

impl<S: Source> Sources<S> {
    /// `ssm` (if paths are configured) and `profiles`, merged in that order.
    pub fn new(ssm: Option<S>, profiles: Vec<AppConfigProfile>) -> Self {
        Self {
            ssm,
            profiles,
            ssm_last_good: SyncMutex::new(None),
        }
    }
}

impl<S: Source> Source for Sources<S> {
    async fn fetch_into(&self, progress: &mut Progress) -> Result<(), SourceError> {
        let mut first_error = None;
        let mut anything = false;
        if let Some(ssm) = &self.ssm
            && !progress.is_complete()
        {
            match ssm.fetch_into(progress).await {
                Ok(()) => {
                    if let Ok(mut good) = self.ssm_last_good.lock() {
                        *good = Some(progress.fetched().parameters.clone());
                    }
                }
                Err(error) => {
                    let good = self.ssm_last_good.lock().ok().and_then(|g| g.clone());
                    match good {
                        Some(good) if !self.profiles.is_empty() => {
                            progress.replace_with(good, error.to_string());
                        }
                        _ if self.profiles.is_empty() => return Err(error),
                        _ => {
                            // Never loaded: nothing of SSM's to serve; the profiles may have some.
                            progress.replace_with(Vec::new(), error.to_string());
                            first_error = Some(error);
                        }
                    }
                }
            }
        }
        anything |= self.ssm.is_some() && first_error.is_none();
        progress.mark_complete();
        if progress.profiles_done() {
            return Ok(());
        }
        // Every profile is polled before anything is added: a budget that runs out in between
        // leaves nothing half-added (a profile already polled answers from its last good).
        let mut parameters = Vec::new();
        let mut stale = Vec::new();
        let mut calls = 0;
        let mut labels = std::collections::HashMap::new();
        for profile in &self.profiles {
            let polled = profile.current().await;
            if let Some(label) = profile.label().await {
                labels.insert(profile.key.clone(), label);
            }
            match polled {
                Ok((flags, made)) => {
                    anything = true;
                    calls += made;
                    parameters.extend(flags);
                }
                Err((error, last_good, made)) => {
                    calls += made;
                    tracing::warn!(%error, serving_last_good = last_good.is_some(), "AppConfig poll failed");
                    stale.push(error.to_string());
                    if let Some(good) = last_good {
                        anything = true;
                        parameters.extend(good);
                    }
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            Some(error) if !anything => Err(error),
            _ => {
                progress.push_profiles(parameters, calls, stale, labels);
                Ok(())
            }
        }
    }

    async fn look_up(&self, names: &[String]) -> Result<LookedUp, SourceError> {
        // Only SSM's listings are checked by name (AppConfig versions replace whole, and their
        // names never start with '/', so none is asked for without an SSM source).
        match &self.ssm {
            Some(ssm) => ssm.look_up(names).await,
            None => Ok(LookedUp::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_application_environment_profile_by_name_or_id() {
        let profiles =
            ProfileId::parse_list(" flags-app/prod/feature-flags , abc1234/def5678/ghi9012")
                .expect("valid");
        assert_eq!(profiles.len(), 2);
        assert_eq!(profiles[0].to_string(), "flags-app/prod/feature-flags");
        assert_eq!(profiles[1].environment, "def5678");
        for bad in ["app/prod", "a/b/c/d", "a//c", "a/b/c,a/b/c", ""] {
            assert!(ProfileId::parse_list(bad).is_err(), "{bad:?}");
        }
        assert!(
            ProfileId::parse_list("a/b")
                .expect_err("invalid")
                .contains("must be given by their ID")
        );
    }

    fn flag(name: &str, value: &str, version: u64) -> Parameter {
        Parameter {
            flag: name.to_owned(),
            name: format!("appconfig:app/env/profile/{name}"),
            kind: flags::ParameterKind::String,
            value: value.to_owned(),
            version,
        }
    }

    #[test]
    fn a_flag_keeps_the_version_at_which_its_content_last_changed() {
        let v1 = [
            flag("a", "true", 1),
            flag("b", "true", 1),
            flag("c", "1", 1),
        ];
        // Version 2 of the profile changes b only.
        let mut v2 = vec![
            flag("a", "true", 2),
            flag("b", "false", 2),
            flag("c", "1", 2),
        ];
        assert_eq!(carry_versions(&mut v2, Some(&v1)), 1);
        let versions: Vec<u64> = v2.iter().map(|p| p.version).collect();
        assert_eq!(versions, [1, 2, 1]);
        // Version 3: the same document sent again whole (a new session): nothing changes.
        let mut v3 = vec![
            flag("a", "true", 3),
            flag("b", "false", 3),
            flag("c", "1", 3),
        ];
        assert_eq!(carry_versions(&mut v3, Some(&v2)), 0);
        assert_eq!(v3, v2);
        // Version 4 adds d and drops c; the first document has nothing to carry.
        let mut v4 = vec![flag("a", "true", 4), flag("d", "x", 4)];
        assert_eq!(carry_versions(&mut v4, Some(&v3)), 1);
        assert_eq!((v4[0].version, v4[1].version), (1, 4));
        let mut first = vec![flag("a", "true", 1)];
        assert_eq!(carry_versions(&mut first, None), 1);
        assert_eq!(first[0].version, 1);
    }
}
