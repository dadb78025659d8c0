//! The extension's life: register (in Lambda), load, serve, refresh (at an INVOKE or on a timer,
//! as the [`Host`] says), exit on SHUTDOWN or SIGTERM.
//!
//! See <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-extensions-api.html>.

use std::future::Future;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_extension::{Extension, LambdaEvent, NextEvent, service_fn};
use tokio::net::TcpListener;

use crate::listener::{Socket, SocketError, bind_socket};
use flags::endpoint::Endpoint;
use tokio::sync::{Mutex, watch};

use crate::appconfig::{AppConfigProfile, Sources};
use crate::config::Config;
use crate::config::Metrics;
use crate::experiments::{Experiments, FLUSH_INTERVAL};
use crate::host::{Host, MIN_TIMER_INTERVAL, Trigger};
use crate::metrics::Emf;
use crate::refresh::{Refreshed, Refresher};
use crate::server::{Api, serve};
use crate::source::{Source, SsmSource};

/// Why the extension could not run.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The local API's port is taken or not allowed.
    #[error("cannot listen on 127.0.0.1:{port} (SSM_FLAGS_PORT): {source}")]
    Bind {
        /// The port.
        port: u16,
        /// Why.
        source: std::io::Error,
    },
    /// The generated API token could not be written for the function to read.
    #[error("cannot write the API token to {path} (SSM_FLAGS_TOKEN_FILE): {source}")]
    TokenFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The Unix socket (`SSM_FLAGS_SOCKET`) could not be made.
    #[error(transparent)]
    Socket(#[from] SocketError),
    /// The token file's directory is not private: another user could read or swap the token.
    #[error(
        "refusing to write the API token (SSM_FLAGS_TOKEN_FILE) into a directory others control: {0}"
    )]
    TokenDir(flags::file::FileError),
    /// `AWS_LAMBDA_RUNTIME_API` is missing or not an address.
    #[error(
        "AWS_LAMBDA_RUNTIME_API {0}: the extension runs inside Lambda or an emulator that sets it (host:port, or http://host:port/path); outside Lambda, run it with SSM_FLAGS_MODE=sidecar"
    )]
    RuntimeApi(String),
    /// The Extensions API refused or failed the registration.
    #[error("cannot register with the Lambda Extensions API: {0}")]
    Register(String),
    /// The Extensions API failed while waiting for events.
    #[error("the Lambda Extensions API failed: {0}")]
    Events(String),
}

/// Runs the extension with flags from SSM until SHUTDOWN (or SIGTERM / Ctrl-C).
pub async fn run(config: Config) -> Result<(), LifecycleError> {
    // Where it runs is checked before any AWS configuration is loaded: outside Lambda, without
    // SSM_FLAGS_MODE=sidecar, the one error says so (no credential or region lookup first).
    if config.host.events().is_some() {
        check_runtime_api(std::env::var("AWS_LAMBDA_RUNTIME_API").ok().as_deref())?;
    }
    // No region is not fatal: the extension starts degraded, and every refresh says
    // `no AWS region to read …` with what to set (health's `last_error`, one log line).
    let sdk = crate::source::sdk_config(config.refresh_timeout).await;
    let ssm = SsmSource::new(aws_sdk_ssm::Client::new(&sdk), config.paths.clone())
        .with_max_parameters(config.max_parameters);
    if config.appconfig.is_empty() {
        return run_with(config, ssm).await;
    }
    let client = aws_sdk_appconfigdata::Client::new(&sdk);
    let profiles = config
        .appconfig
        .iter()
        .map(|id| AppConfigProfile::new(id.clone(), client.clone()))
        .collect();
    let ssm = (!config.paths.is_empty()).then_some(ssm);
    run_with(config, Sources::new(ssm, profiles)).await
}

/// Runs the extension with flags from `source`, as its [`Host`] says: registered with the
/// Extensions API (on-demand Lambda: INVOKE and SHUTDOWN; Managed Instances: SHUTDOWN only) or
/// not at all (sidecar); refreshing at INVOKEs or on a timer.
pub async fn run_with<S: Source + 'static>(
    config: Config,
    source: S,
) -> Result<(), LifecycleError> {
    let started = Instant::now();
    let host = config.host;
    if host.events().is_some() {
        check_runtime_api(std::env::var("AWS_LAMBDA_RUNTIME_API").ok().as_deref())?;
    }
    let endpoint = config.endpoint();
    let listener = match &endpoint {
        Endpoint::Unix(path) => Bound::Socket(bind_socket(path, config.socket_group.as_deref())?),
        Endpoint::Tcp(port) => {
            Bound::Tcp(bind_tcp(*port).map_err(|source| LifecycleError::Bind {
                port: *port,
                source,
            })?)
        }
    };

    let metrics = config
        .metrics
        .as_ref()
        .map(|m| Emf::new(m.namespace.clone(), m.function.clone()));
    let refresher = Refresher::new(source, config.max_age, config.refresh_timeout)
        .with_default_region(config.region.clone())
        .with_declared(config.declared.clone())
        .with_metrics(metrics)
        .with_fallback(
            config
                .fallback_file
                .as_deref()
                .and_then(|file| load_fallback(file, config.declared.envelope())),
        );
    let token = match config.token.clone() {
        Some(token) => token.into_inner(),
        None => generated_token(&config.token_file)?,
    };
    // Only the single evaluations the API answers are exposures, counted in its scope; the
    // bulk ones (and anything else this process evaluates) are not.
    flags::experiment::count_outside_scopes(false);
    let experiments = Arc::new(Experiments::new(
        config.metrics.as_ref().map(Metrics::experiments),
        host.experiment_scope(),
    ));
    let api = Api::new(refresher.shared(), token).with_experiments(Arc::clone(&experiments));
    let refresher = Arc::new(Mutex::new(refresher));
    let (shutdown_tx, mut shutdown_rx) = watch::channel(false);

    // Register at once: the runtime starts only after every extension has registered.
    let events = match host.events() {
        Some(events) => {
            let processor = events_processor(
                Arc::clone(&refresher),
                Arc::clone(&experiments),
                shutdown_tx.clone(),
                config.refresh_timeout,
            );
            let registered = Extension::new()
                .with_events(events)
                .with_events_processor(processor)
                .register()
                .await
                .map_err(|e| LifecycleError::Register(e.to_string()))?;
            tracing::debug!(host = %host, ?events, "registered");
            Some(Box::pin(registered.run()))
        }
        None => None,
    };

    let server = {
        let mut stop = shutdown_rx.clone();
        let stopped = async move {
            let _ = stop.wait_for(|stop| *stop).await;
        };
        match listener {
            Bound::Tcp(listener) => tokio::spawn(serve(listener, api, stopped)),
            Bound::Socket(socket) => tokio::spawn(serve(socket, api, stopped)),
        }
    };

    // Load before asking for the first event, so the first invocation finds the flags. The load
    // is bounded by the init budget; on failure we serve an empty snapshot marked degraded, and a
    // load that is still reading pages goes on at the next refreshes.
    let outcome = refresher
        .lock()
        .await
        .refresh_within(config.init_timeout)
        .await;
    log_ready(host, &outcome, started, &endpoint);

    let timer = (host.trigger() == Trigger::Timer).then(|| {
        if config.max_age < MIN_TIMER_INTERVAL {
            tracing::warn!(
                max_age_s = config.max_age.as_secs(),
                "SSM_FLAGS_MAX_AGE below 1 s: on this host the flags refresh every second"
            );
        }
        tokio::spawn(refresh_on_timer(
            Arc::clone(&refresher),
            config.max_age,
            config.refresh_timeout,
        ))
    });

    let interval = config
        .metrics
        .as_ref()
        .map_or(FLUSH_INTERVAL, |metrics| metrics.interval);
    let flusher = tokio::spawn(flush_experiments(Arc::clone(&experiments), interval));

    // After SHUTDOWN the event loop asks for another event and fails once Lambda has gone:
    // check the shutdown signal first, and once it is set the outcome is a clean exit.
    let result = tokio::select! {
        biased;
        _ = shutdown_rx.wait_for(|stop| *stop) => Ok(()),
        () = terminate() => {
            tracing::info!("terminated by signal: stopping");
            Ok(())
        }
        result = async {
            match events {
                Some(events) => events.await,
                None => std::future::pending().await,
            }
        } => result.map_err(|e| LifecycleError::Events(e.to_string())),
    };
    let result = if *shutdown_rx.borrow() {
        Ok(())
    } else {
        result
    };
    // A refresh in flight is abandoned: the process is about to end.
    if let Some(timer) = timer {
        timer.abort();
        let _ = timer.await;
    }
    let _ = shutdown_tx.send(true);
    let _ = server.await;
    flusher.abort();
    let _ = flusher.await;
    // The API is closed: what its answered requests counted is written now (a connection
    // still open when the process ends lets go of its share at exit: `Experiments`' drop).
    experiments.flush();
    let stats = refresher.lock().await.stats();
    tracing::info!(
        fetches = stats.fetches,
        failures = stats.failures,
        ssm_calls = stats.ssm_calls,
        "stopped"
    );
    result
}

/// What the extension does with each event: refresh at an INVOKE (only on-demand Lambda sends
/// them), stop at SHUTDOWN.
fn events_processor<S: Source + 'static>(
    refresher: Arc<Mutex<Refresher<S>>>,
    experiments: Arc<Experiments>,
    shutdown_tx: watch::Sender<bool>,
    refresh_timeout: Duration,
) -> impl lambda_extension::Service<
    LambdaEvent,
    Response = (),
    Error = lambda_extension::Error,
    Future = impl Future<Output = Result<(), lambda_extension::Error>> + Send,
> + Send {
    service_fn(move |event: LambdaEvent| {
        let refresher = Arc::clone(&refresher);
        let shutdown_tx = shutdown_tx.clone();
        if matches!(event.next, NextEvent::Invoke(_)) {
            // First of all: a new invocation is a new experiment scope.
            experiments.invocation();
        }
        async move {
            match event.next {
                // The refresh runs beside the handler and ends (or times out) before we ask
                // for the next event: Lambda freezes us once every process has asked.
                NextEvent::Invoke(invoke) => {
                    let budget =
                        invoke_budget(refresh_timeout, invoke.deadline_ms, SystemTime::now());
                    tracing::debug!(
                        deadline_ms = invoke.deadline_ms,
                        budget_ms = budget.as_millis() as u64,
                        "INVOKE"
                    );
                    if !budget.is_zero() {
                        refresher.lock().await.refresh_if_due(budget).await;
                    }
                }
                NextEvent::Shutdown(event) => {
                    tracing::info!(reason = %event.shutdown_reason, "SHUTDOWN: stopping");
                    let _ = shutdown_tx.send(true);
                }
            }
            Ok::<(), lambda_extension::Error>(())
        }
    })
}

/// Writes the experiment counts every `interval` (`SSM_FLAGS_METRICS_INTERVAL`; a tick missed
/// while frozen is not made up: the next one writes everything).
async fn flush_experiments(experiments: Arc<Experiments>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        experiments.flush();
    }
}

/// Refreshes every max age (less a random share, see [`Host::timer_pause`]), backing off after
/// failures as the refresh policy says; a fetch still reading pages continues at once. Each
/// refresh is bounded by the refresh timeout, as at an INVOKE.
async fn refresh_on_timer<S: Source + 'static>(
    refresher: Arc<Mutex<Refresher<S>>>,
    max_age: Duration,
    refresh_timeout: Duration,
) {
    loop {
        let pause = {
            let refresher = refresher.lock().await;
            Host::timer_pause(
                refresher.due_in(Instant::now()),
                max_age,
                refresher.is_resuming(),
                fastrand::f64(),
            )
        };
        tokio::time::sleep(pause).await;
        refresher.lock().await.refresh_within(refresh_timeout).await;
    }
}

/// Says the extension is ready, and how complete the first load is.
fn log_ready(host: Host, outcome: &Refreshed, started: Instant, api: &Endpoint) {
    let ready_ms = started.elapsed().as_secs_f64() * 1000.0;
    let retry = match host.trigger() {
        Trigger::Invoke => "at the next INVOKEs",
        Trigger::Timer => "on the refresh timer",
    };
    match outcome {
        Refreshed::Fetched { calls, .. } => {
            tracing::info!(host = %host, ready_ms, ssm_calls = calls, api = %api, "ready")
        }
        Refreshed::Failed(_) => tracing::warn!(
            host = %host,
            ready_ms,
            api = %api,
            "ready, degraded: no flags yet, handlers read their defaults; retrying {retry}"
        ),
        Refreshed::Continues { read, calls } => tracing::warn!(
            host = %host,
            ready_ms,
            api = %api,
            parameters_read = read,
            ssm_calls = calls,
            "ready, degraded: the flags did not all arrive within SSM_FLAGS_INIT_TIMEOUT_MS; the fetch goes on {retry} and is served once complete"
        ),
    }
}

/// Reads the deployed fallback file. One that cannot be used is logged as an error naming it and
/// left out: the function still starts, and a first load that fails serves defaults as without one.
fn load_fallback(
    path: &std::path::Path,
    envelope: Option<&flags::flagd::powertools::Envelope>,
) -> Option<flags::Snapshot> {
    match flags::snapshot::read_file_with(path, envelope) {
        Ok(snapshot) => {
            let invalid = snapshot.entries().filter(|e| e.value().is_err()).count();
            tracing::info!(
                file = %path.display(),
                flags = snapshot.len(),
                invalid,
                "fallback file read: served if the first load fails"
            );
            Some(snapshot)
        }
        Err(error) => {
            tracing::error!(
                file = %path.display(),
                %error,
                "SSM_FLAGS_FALLBACK_FILE cannot be used: no fallback (a first load that fails serves every flag's default)"
            );
            None
        }
    }
}

/// Listens on 127.0.0.1:`port` with a deep accept queue (4,096; the kernel may cap it at
/// `somaxconn`): a burst of connects from a local process waits there for the accept loop
/// instead of pushing a token holder's connect out.
fn bind_tcp(port: u16) -> std::io::Result<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    // As `TcpListener::bind` does: a new agent can take the port over at once from one that
    // was killed (its connections linger in TIME_WAIT).
    socket.set_reuseaddr(true)?;
    socket.bind((Ipv4Addr::LOCALHOST, port).into())?;
    socket.listen(4096)
}

/// What the API listens on.
enum Bound {
    Tcp(TcpListener),
    Socket(Socket),
}

/// No token configured (no `SSM_FLAGS_TOKEN`, no `AWS_SESSION_TOKEN`: SnapStart, Managed
/// Instances, local runs): a random one, written where only this user can read it, so the API
/// is never open. The `flags` client reads it from the same file.
fn generated_token(path: &std::path::Path) -> Result<String, LifecycleError> {
    use rustix::fs::{Mode, OFlags};
    use std::io::Write;
    use std::os::unix::fs::DirBuilderExt;

    let failed = |source| LifecycleError::TokenFile {
        path: path.to_owned(),
        source,
    };
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| failed(std::io::Error::other(e.to_string())))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let dir = flags::token::parent_of(path);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(failed)?;
    // `create` succeeds on a directory that already exists, whoever made it: it must be this
    // user's own, not a link, and writable by no one else, or the token is not private. The
    // check is made on the directory opened, and the file is written relative to it: swapping
    // the path for a link after the check changes nothing.
    let dir = flags::file::open_private_dir(dir).map_err(LifecycleError::TokenDir)?;
    let name = path
        .file_name()
        .ok_or_else(|| failed(std::io::Error::other("the token file has no file name")))?;
    // Written whole under another name, then renamed: a reader never sees half a token.
    let mut partial = name.to_owned();
    partial.push(".partial");
    let errno = |e: rustix::io::Errno| failed(e.into());
    let _ = rustix::fs::unlinkat(&dir, partial.as_os_str(), rustix::fs::AtFlags::empty());
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(&dir, partial.as_os_str(), flags, Mode::from_raw_mode(0o600))
        .map_err(errno)?;
    std::fs::File::from(fd)
        .write_all(token.as_bytes())
        .map_err(failed)?;
    rustix::fs::renameat(&dir, partial.as_os_str(), &dir, name).map_err(errno)?;
    tracing::info!(file = %path.display(), "no SSM_FLAGS_TOKEN or AWS_SESSION_TOKEN: generated the API token, readable by this user only");
    Ok(token)
}

/// Room left before an INVOKE's deadline when a refresh must be over: the extension's own work
/// after the refresh (asking for the next event) and clock differences.
const DEADLINE_MARGIN: Duration = Duration::from_millis(100);

/// How long a refresh during this INVOKE may take: the refresh timeout, and never past the
/// invocation's deadline (work past it would time the invocation out). Zero: no refresh now.
/// A deadline of 0 is none known (emulators such as cargo-lambda send 0; Lambda never does).
fn invoke_budget(refresh_timeout: Duration, deadline_ms: u64, now: SystemTime) -> Duration {
    if deadline_ms == 0 {
        return refresh_timeout;
    }
    let now_ms = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
    refresh_timeout.min(left.saturating_sub(DEADLINE_MARGIN))
}

/// The Extensions API client panics on a missing or malformed address: check it first, so the
/// failure names the variable.
fn check_runtime_api(value: Option<&str>) -> Result<(), LifecycleError> {
    let value = value
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| LifecycleError::RuntimeApi("is not set".to_owned()))?;
    match value.parse::<http::Uri>() {
        Ok(uri) if uri.authority().is_some() => Ok(()),
        _ => Err(LifecycleError::RuntimeApi(format!(
            "is {value:?}, which is not an address"
        ))),
    }
}

/// Completes on SIGTERM or SIGINT (local runs); never on platforms without them.
async fn terminate() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_is_random_and_readable_by_this_user_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("ssm-flags-token-{}", std::process::id()));
        let path = dir.join("nested").join("token");
        let first = generated_token(&path).expect("written");
        assert_eq!(first.len(), 64);
        assert_eq!(
            std::fs::read_to_string(&path).ok().as_deref(),
            Some(first.as_str())
        );
        let mode = |p: &std::path::Path| {
            std::fs::metadata(p)
                .map(|m| m.permissions().mode() & 0o777)
                .ok()
        };
        assert_eq!(mode(&path), Some(0o600));
        assert_eq!(mode(&dir.join("nested")), Some(0o700));
        let second = generated_token(&path).expect("rewritten");
        assert_ne!(first, second, "a new token at each start");
        // A directory others may write to, or a link to one: refused, naming the variable.
        std::fs::set_permissions(dir.join("nested"), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        let err = generated_token(&path).expect_err("world-writable");
        assert!(err.to_string().contains("SSM_FLAGS_TOKEN_FILE"), "{err}");
        std::fs::set_permissions(dir.join("nested"), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        std::os::unix::fs::symlink(dir.join("nested"), dir.join("linked")).expect("symlink");
        let err = generated_token(&dir.join("linked").join("token")).expect_err("a link");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_fallback_file_that_cannot_be_used_is_left_out_and_the_extension_still_starts() {
        let dir = std::env::temp_dir().join(format!("ssm-flags-fallback-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let good = dir.join("good.json");
        std::fs::write(
            &good,
            r#"{"flags": {"kill-switch": {"value": true}, "bad": {"value": "{"}}}"#,
        )
        .expect("write");
        let loaded = load_fallback(&good, None).expect("a valid file");
        assert_eq!(
            loaded.len(),
            2,
            "an invalid flag is kept, as an error entry"
        );
        assert!(loaded.get("kill-switch").enabled());
        let malformed = dir.join("malformed.json");
        std::fs::write(&malformed, "{\"flags\": ").expect("write");
        assert!(load_fallback(&malformed, None).is_none());
        assert!(load_fallback(&dir.join("missing.json"), None).is_none());
        // A FIFO or a device at the path: refused at once, never waited on (it once blocked the
        // start for good); a parse error says where, never what the file holds.
        let fifo = dir.join("fifo.json");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        let started = std::time::Instant::now();
        assert!(load_fallback(&fifo, None).is_none());
        assert!(load_fallback(std::path::Path::new("/dev/zero"), None).is_none());
        assert!(started.elapsed() < Duration::from_secs(5), "it blocked");
        let wrong = dir.join("wrong.json");
        std::fs::write(
            &wrong,
            r#"{"flags": {"api": {"value": true, "version": "sk_live_123"}}}"#,
        )
        .expect("write");
        let err = flags::wire::read_file(&wrong).expect_err("a string version");
        let text = err.to_string();
        assert!(!text.contains("sk_live"), "{text}");
        assert!(
            text.contains("wrong.json") && text.contains("line 1"),
            "{text}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_refresh_never_runs_past_the_invocations_deadline() {
        let now = UNIX_EPOCH + Duration::from_secs(1_764_000_000);
        let ms = |d: Duration| 1_764_000_000_000 + d.as_millis() as u64;
        let timeout = Duration::from_secs(2);
        // Plenty of time: the refresh timeout.
        assert_eq!(
            invoke_budget(timeout, ms(Duration::from_secs(30)), now),
            timeout
        );
        // 600 ms left: what is left, less the margin.
        assert_eq!(
            invoke_budget(timeout, ms(Duration::from_millis(600)), now),
            Duration::from_millis(500)
        );
        // Nearly or already past the deadline: no refresh.
        assert_eq!(
            invoke_budget(timeout, ms(Duration::from_millis(50)), now),
            Duration::ZERO
        );
        assert_eq!(
            invoke_budget(timeout, ms(Duration::ZERO) - 5_000, now),
            Duration::ZERO,
            "past"
        );
        // No deadline known (an emulator's 0): the refresh timeout.
        assert_eq!(invoke_budget(timeout, 0, now), timeout);
    }

    #[test]
    fn the_runtime_api_address_is_checked_before_use() {
        assert!(check_runtime_api(Some("127.0.0.1:9001")).is_ok());
        assert!(check_runtime_api(Some("http://127.0.0.1:9000/.rt")).is_ok());
        for bad in [
            None,
            Some(""),
            Some("127.0.0.1:9000/.rt"),
            Some("not an address"),
        ] {
            let err = check_runtime_api(bad).expect_err("invalid");
            assert!(
                err.to_string().starts_with("AWS_LAMBDA_RUNTIME_API "),
                "{err}"
            );
        }
    }
}
