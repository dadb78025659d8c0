//! Keeps the in-process snapshot current from the `ssm-flags` extension (feature `client`).
//!
//! At the start of each invocation, [`sync`] makes one conditional request to the extension
//! (`GET /v1/flags` with `If-None-Match`; 304 when nothing changed) over a kept-alive loopback
//! connection, and installs the new snapshot when there is one. [`FlagsLayer`] does it for every
//! invocation of a `lambda_runtime` service, so the handler only writes `flags::get(...)`.
//!
//! When the extension is absent or broken, a sync gives up within the client timeout (connection
//! refused is immediate), keeps the flags it has (defaults, if it never had any), logs once per
//! outage, and tries again at the next invocation. It never panics.
//!
//! Each installed snapshot carries its [`Status`]; the client logs when it changes (stale: the
//! extension serves its last good flags; degraded: no flags yet, defaults apply). After a 304 the
//! snapshot's fetch time still moves on (the extension sends it in a header on every answer), so
//! [`crate::Snapshot::age`] stays right.
//!
//! A long-running process (a Lambda Managed Instances function, a service beside the sidecar)
//! should not poll: [`watch`] starts one background task that holds a long poll on the
//! extension (`Prefer: wait=N`) and installs each new snapshot the moment it is published; reads
//! stay lock-free and no request is made per invocation. [`FlagsLayer`] starts it by itself on
//! Managed Instances (`AWS_LAMBDA_INITIALIZATION_TYPE=lambda-managed-instances`) and syncs per
//! invocation only while the watch has no answer yet (start-up, or the extension unreachable).
//! On on-demand Lambda it syncs per invocation: the extension refreshes at INVOKE and the
//! process is frozen between invocations.
//!
//! Environment (read once): `SSM_FLAGS_SOCKET` (a Unix socket the extension serves on; see
//! [`crate::endpoint`]), else `SSM_FLAGS_PORT` (default [`DEFAULT_PORT`]),
//! `SSM_FLAGS_CLIENT_TIMEOUT_MS` (default 50: the wait for the extension's answer),
//! `SSM_FLAGS_CLIENT_MAX_BODY_MIB` (default 64), `SSM_FLAGS_CLIENT_WAIT_S` (default 30, 1–300:
//! how long one long poll of [`watch`] is held), and the token sent in [`TOKEN_HEADER`](crate::wire::TOKEN_HEADER):
//! `SSM_FLAGS_TOKEN`, else `AWS_SESSION_TOKEN`, else the one the extension generated, read from
//! `SSM_FLAGS_TOKEN_FILE` (default [`DEFAULT_TOKEN_FILE`]).

use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Mutex;

use crate::endpoint::Endpoint;
use crate::env::parse_number;
use crate::global::GLOBAL;
use crate::snapshot::Snapshot;
use crate::store::{Offered, Store};
use crate::wire::{DEFAULT_PORT, DEFAULT_TOKEN_FILE, MAX_WAIT_SECONDS, Status, token_file};

mod connection;
mod layer;

use connection::{Answer, Connection, SyncError, Token};
pub use layer::{FlagsLayer, FlagsService};

/// Default bound on one sync's wait for the extension.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);
/// Default cap on a snapshot's size (`SSM_FLAGS_CLIENT_MAX_BODY_MIB`, in MiB).
pub const DEFAULT_MAX_BODY_MIB: u64 = 64;
/// Default `SSM_FLAGS_CLIENT_WAIT_S`: how long one long poll of [`watch`] is held.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// The pause of [`watch`] after a 304 the extension did not hold (an extension before 0.2, or
/// too many held requests): it then polls once a second.
pub const UNHELD_PAUSE: Duration = Duration::from_secs(1);
/// How much later than its wait a long poll may be answered before it counts as failed.
const WAIT_MARGIN: Duration = Duration::from_secs(5);
/// The longest pause of [`watch`] between attempts while the extension cannot be reached
/// (doubling from 100 ms).
pub const MAX_RETRY_PAUSE: Duration = Duration::from_secs(5);

/// Bound on a snapshot's transfer once the extension has answered (loopback: a 20 MB snapshot
/// takes tens of milliseconds; this only catches a transfer that stalls).
pub const TRANSFER_TIMEOUT: Duration = Duration::from_secs(10);

/// The outcome of one sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synced {
    /// The extension has nothing newer (304).
    Unchanged,
    /// A new snapshot was installed.
    Updated {
        /// Its version.
        version: u64,
        /// How current it is.
        status: Status,
    },
    /// The extension answered a snapshot no better than the one held (see
    /// [`Snapshot::supersedes`]): say, a restarted extension with no flags yet. The held one stays.
    Kept {
        /// The status of the snapshot declined.
        declined: Status,
    },
    /// The extension could not be used; the flags already held stay.
    Unavailable,
}

/// A client of the extension's local API.
pub struct Client {
    endpoint: Endpoint,
    token: Token,
    max_body: usize,
    timeout: Duration,
    wait: Duration,
    connection: Mutex<Connection>,
    /// Syncs completed: a sync that waited while another ran shares that one's outcome.
    completed: AtomicU64,
    outage_logged: AtomicBool,
    /// Whether a watch runs on this client.
    watching: AtomicBool,
    /// Whether the watch's last request was answered: the snapshot is current without a sync.
    watch_live: AtomicBool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint)
            .field("token", &"(not shown)")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Client {
    /// A client of the extension on 127.0.0.1:`port`, sending `token`; without one, the token
    /// the extension generated, read from the default token file.
    pub fn new(port: u16, token: Option<&str>, timeout: Duration) -> Self {
        let token = match token {
            Some(token) => Token::configured(token, "the token given to Client::new"),
            None => Token::from_file(DEFAULT_TOKEN_FILE.into()),
        };
        Self {
            endpoint: Endpoint::Tcp(port),
            token,
            max_body: mib(DEFAULT_MAX_BODY_MIB),
            timeout,
            wait: DEFAULT_WAIT,
            connection: Mutex::new(Connection::default()),
            completed: AtomicU64::new(0),
            outage_logged: AtomicBool::new(false),
            watching: AtomicBool::new(false),
            watch_live: AtomicBool::new(false),
        }
    }

    /// A client configured from the environment (see the module docs). An invalid value is
    /// logged and replaced by its default: the handler must start whatever happens.
    pub fn from_env() -> Self {
        let env = |var: &str| std::env::var(var).ok();
        let endpoint = Endpoint::from_env(env).unwrap_or_else(|error| {
            tracing::warn!(%error, default = %Endpoint::Tcp(DEFAULT_PORT), "using the default");
            Endpoint::Tcp(DEFAULT_PORT)
        });
        let timeout_ms = env_or(
            "SSM_FLAGS_CLIENT_TIMEOUT_MS",
            DEFAULT_TIMEOUT.as_millis() as u64,
            |var, v| parse_number(var, v, 1, 60_000),
        );
        let max_body_mib = env_or(
            "SSM_FLAGS_CLIENT_MAX_BODY_MIB",
            DEFAULT_MAX_BODY_MIB,
            |var, v| parse_number(var, v, 1, 1024),
        );
        let wait_s = env_or(
            "SSM_FLAGS_CLIENT_WAIT_S",
            DEFAULT_WAIT.as_secs(),
            |var, v| parse_number(var, v, 1, MAX_WAIT_SECONDS),
        );
        let mut client = Self::new(DEFAULT_PORT, None, Duration::from_millis(timeout_ms))
            .with_endpoint(endpoint)
            .with_max_body(mib(max_body_mib))
            .with_wait(Duration::from_secs(wait_s));
        client.token = match crate::token::configured(env) {
            Ok(Some(token)) => Token::configured(&token, crate::wire::TOKEN_VAR),
            Ok(None) => Token::from_file(token_file(env)),
            // Every sync fails with it, logged once (as an outage), naming the variable.
            Err(error) => Token::Unusable(error.to_string()),
        };
        client
    }

    /// The same client, talking to the extension at `endpoint` (a TCP port, or a Unix socket).
    pub fn with_endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoint = endpoint;
        self
    }

    /// The same client, refusing snapshots larger than `bytes`.
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// The same client, holding each long poll of [`Client::watch_into`] for `wait`.
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Whether a watch runs on this client and its last request was answered: the snapshot it
    /// keeps is current, no sync needed.
    pub fn watch_is_live(&self) -> bool {
        self.watch_live.load(Ordering::Acquire)
    }

    /// Keeps `store` current for as long as the task runs: a long poll held by the extension
    /// until the snapshot changes, answered at once when it does; a new snapshot is installed if
    /// better than the one held (as [`Client::sync_into`] does). While the extension cannot be
    /// reached it retries, pausing from 100 ms up to [`MAX_RETRY_PAUSE`]. Never returns; one
    /// watch per client (a second call returns at once).
    pub async fn watch_into(&self, store: &Store) {
        if self.watching.swap(true, Ordering::AcqRel) {
            return;
        }
        // Its own connection: a held request would otherwise block every sync behind it.
        let mut connection = Connection::default();
        let mut failures = 0u32;
        loop {
            // The extension answers at the end of the wait at the latest; the margin keeps a
            // busy machine's late answer from counting as an outage.
            let deadline = tokio::time::Instant::now() + self.wait + self.timeout + WAIT_MARGIN;
            let result = self.fetch(&mut connection, deadline, Some(self.wait)).await;
            let pause = match &result {
                Ok(Answer::Unchanged { held: false, .. }) => UNHELD_PAUSE,
                Ok(_) => Duration::ZERO,
                Err(_) => {
                    failures = failures.saturating_add(1);
                    Duration::from_millis(100)
                        .saturating_mul(1 << failures.min(8).saturating_sub(1))
                        .min(MAX_RETRY_PAUSE)
                }
            };
            let answered = result.is_ok();
            if answered {
                failures = 0;
            }
            self.apply(result, &mut connection, store);
            self.watch_live.store(answered, Ordering::Release);
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
    }

    /// Forgets the snapshot tag, so the next sync fetches the whole snapshot even if unchanged.
    pub async fn forget(&self) {
        self.connection.lock().await.etag = None;
    }

    /// Fetches the snapshot if it changed and installs it into `store` if it is better than the
    /// one held. Gives up within the client timeout counted from this call, waiting for another
    /// task's sync included; syncs that overlap share one request.
    ///
    /// The bound is on waiting for the extension (another task's sync, connecting, the answer's
    /// head). Once the extension answers, a new snapshot is read to its end however large it is
    /// (a 10,000-flag snapshot takes longer than 50 ms to transfer and parse), within
    /// `SSM_FLAGS_CLIENT_MAX_BODY_MIB` and [`TRANSFER_TIMEOUT`]; it is paid once per change.
    pub async fn sync_into(&self, store: &Store) -> Synced {
        let ticket = self.completed.load(Ordering::Acquire);
        let deadline = tokio::time::Instant::now() + self.timeout;
        let Ok(mut connection) = tokio::time::timeout_at(deadline, self.connection.lock()).await
        else {
            return self.failed(SyncError::Timeout(self.timeout));
        };
        if let Some(last) = connection.last
            && self.completed.load(Ordering::Acquire) != ticket
        {
            // Another sync finished while this one waited: its answer is as fresh.
            return last;
        }
        let result = self.fetch(&mut connection, deadline, None).await;
        let synced = self.apply(result, &mut connection, store);
        connection.last = Some(synced);
        self.completed.fetch_add(1, Ordering::Release);
        synced
    }

    fn apply(
        &self,
        result: Result<Answer, SyncError>,
        connection: &mut Connection,
        store: &Store,
    ) -> Synced {
        match result {
            Ok(Answer::Unchanged { fetched_at, .. }) => {
                self.recovered();
                // The extension confirmed the snapshot this connection knows — not whatever is
                // installed now (the other connection may have installed a newer one).
                if let (Some(at), Some(known)) = (fetched_at, &connection.known) {
                    known.mark_fetched(at);
                }
                Synced::Unchanged
            }
            Ok(Answer::Updated {
                doc,
                etag,
                fetched_at,
            }) => {
                self.recovered();
                let snapshot = doc.into_snapshot();
                if let Some(at) = fetched_at {
                    snapshot.mark_fetched(at);
                }
                let (version, status) = (snapshot.version(), snapshot.status());
                // Its tag is kept either way: a declined snapshot is not fetched again.
                connection.etag = etag;
                match store.offer(snapshot) {
                    Offered::Same { held } => {
                        // What is installed already (the other connection fetched it): this
                        // connection's 304s now confirm that one.
                        connection.known = Some(held);
                        Synced::Unchanged
                    }
                    Offered::Declined { held } => {
                        // The tag now names the declined snapshot: a 304 confirms none held.
                        connection.known = None;
                        tracing::warn!(
                            declined = %status,
                            held = %held.status(),
                            flags = held.len(),
                            "the extension's snapshot is no better than the flags held: keeping them"
                        );
                        Synced::Kept { declined: status }
                    }
                    Offered::Installed {
                        replaced,
                        installed,
                    } => {
                        if replaced.status() != status {
                            log_status(&installed);
                        }
                        connection.known = Some(installed);
                        Synced::Updated { version, status }
                    }
                }
            }
            Err(error) => {
                // A broken connection is not reused; the next sync reconnects.
                connection.sender = None;
                self.failed(error)
            }
        }
    }

    fn failed(&self, error: SyncError) -> Synced {
        tracing::debug!(%error, "flags sync failed");
        if !self.outage_logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                %error,
                "ssm-flags extension unavailable: serving the flags already held (defaults if none); will retry each invocation"
            );
        }
        Synced::Unavailable
    }

    fn recovered(&self) {
        if self.outage_logged.swap(false, Ordering::Relaxed) {
            tracing::info!("ssm-flags extension reachable again");
        }
    }
}

fn mib(n: u64) -> usize {
    usize::try_from(n.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX)
}

/// Says in the handler's log how current the flags just installed are.
fn log_status(snapshot: &Snapshot) {
    let (version, age_s) = (snapshot.version(), snapshot.age().map(|a| a.as_secs()));
    let flags = snapshot.len();
    match snapshot.status() {
        Status::Ok => tracing::info!(status = "ok", version, flags, age_s, "flags are current"),
        Status::Stale => tracing::warn!(
            status = "stale",
            version,
            flags,
            age_s,
            "flags are stale: the extension cannot refresh them and serves the last good ones"
        ),
        Status::Degraded => tracing::warn!(
            status = "degraded",
            version,
            "no flags yet: the extension has not fetched any; every flag reads as its default"
        ),
        Status::Fallback => tracing::warn!(
            status = "fallback",
            version,
            flags,
            "flags from a deployed file, not from the source"
        ),
    }
}

/// The value of `var` parsed by `parse`, or `default` (with a warning naming the variable) when
/// it is invalid: a handler must start whatever its environment holds.
fn env_or<T: Copy + std::fmt::Debug>(
    var: &'static str,
    default: T,
    parse: impl Fn(&'static str, &str) -> Result<T, crate::env::NumberError>,
) -> T {
    match std::env::var(var) {
        Err(_) => default,
        Ok(raw) => parse(var, &raw).unwrap_or_else(|error| {
            tracing::warn!(%error, default = ?default, "using the default");
            default
        }),
    }
}

static CLIENT: LazyLock<Client> = LazyLock::new(Client::from_env);

/// Syncs the process-wide snapshot from the extension (configured from the environment).
/// Call it at the start of each invocation, or use [`FlagsLayer`].
pub async fn sync() -> Synced {
    CLIENT.sync_into(&GLOBAL).await
}

/// Why [`watch`] could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    /// It was called outside a Tokio runtime.
    #[error("flags::watch() must be called from within a Tokio runtime")]
    NoRuntime,
}

/// Keeps the process-wide snapshot current from the extension in a background task (a long poll,
/// see the module docs), for a long-running process; reads stay lock-free. Call it once at
/// start, within a Tokio runtime; later calls do nothing. The first snapshot arrives with the
/// watch's first answer: call [`sync`] first if the first read must already see it.
pub fn watch() -> Result<(), WatchError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| WatchError::NoRuntime)?;
    if !CLIENT.watching.load(Ordering::Acquire) {
        runtime.spawn(CLIENT.watch_into(&GLOBAL));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::FETCHED_AT_HEADER;
    use std::sync::Arc;
    use std::time::SystemTime;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const BODY: &str = r#"{"version": 4, "flags": {"dark-mode": {"value": true, "version": 1}}}"#;

    /// A server that answers each connection's first request, then drops the connection without
    /// closing it cleanly: a kept-alive connection the client believes is still open.
    async fn one_request_per_connection(listener: TcpListener) {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let Ok(n) = stream.read(&mut buf).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\netag: \"t\"\r\ncontent-length: {}\r\n\r\n{BODY}",
                    BODY.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                // Wait for the next request, then drop the socket unanswered.
                let _ = stream.read(&mut buf).await;
            });
        }
    }

    #[tokio::test]
    async fn a_connection_closed_by_the_extension_is_retried_once_on_a_fresh_one() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(one_request_per_connection(listener));
        let client = Client::new(port, None, Duration::from_secs(2));
        let store = Store::default();
        assert_eq!(
            client.sync_into(&store).await,
            Synced::Updated {
                version: 4,
                status: Status::Ok
            }
        );
        client.forget().await;
        // The kept-alive connection dies on the second request: the client reconnects, and gets
        // the same snapshot again (answered in full, nothing new to install).
        assert_eq!(client.sync_into(&store).await, Synced::Unchanged);
        assert_eq!(store.version(), 4);
        assert!(
            !client.outage_logged.load(Ordering::Relaxed),
            "no outage was reported"
        );
    }

    /// A server answering the requests of each connection with `responses`, in order.
    async fn scripted(listener: TcpListener, responses: Vec<String>) {
        let responses = std::sync::Arc::new(std::sync::Mutex::new(responses.into_iter()));
        while let Ok((mut stream, _)) = listener.accept().await {
            let responses = std::sync::Arc::clone(&responses);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf).await {
                    let next = responses.lock().ok().and_then(|mut r| r.next());
                    let (true, Some(response)) = (n > 0, next) else {
                        return;
                    };
                    let _ = stream.write_all(response.as_bytes()).await;
                }
            });
        }
    }

    fn response(status: &str, headers: &[(&str, &str)], body: &str) -> String {
        let mut text = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", body.len());
        for (name, value) in headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text + "\r\n" + body
    }

    async fn client_of(responses: Vec<String>) -> Client {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(scripted(listener, responses));
        Client::new(port, None, Duration::from_secs(2))
    }

    /// A server answering like an extension from before long polls: it ignores `Prefer` and
    /// answers every conditional request at once; counts the requests.
    async fn without_long_polls(listener: TcpListener, requests: Arc<AtomicU64>) {
        while let Ok((mut stream, _)) = listener.accept().await {
            let requests = Arc::clone(&requests);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    let conditional = String::from_utf8_lossy(&buf[..n])
                        .to_ascii_lowercase()
                        .contains("if-none-match");
                    requests.fetch_add(1, Ordering::Relaxed);
                    let answer = if conditional {
                        response("304 Not Modified", &[("etag", "\"t\"")], "")
                    } else {
                        response("200 OK", &[("etag", "\"t\"")], BODY)
                    };
                    let _ = stream.write_all(answer.as_bytes()).await;
                }
            });
        }
    }

    #[tokio::test]
    async fn a_watch_against_an_extension_without_long_polls_polls_once_a_second_not_in_a_loop() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(AtomicU64::new(0));
        tokio::spawn(without_long_polls(listener, Arc::clone(&requests)));
        let client = Arc::new(Client::new(port, None, Duration::from_secs(2)));
        let store = Arc::new(Store::default());
        let watch = {
            let (client, store) = (Arc::clone(&client), Arc::clone(&store));
            tokio::spawn(async move { client.watch_into(&store).await })
        };
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        watch.abort();
        assert_eq!(store.version(), 4, "the first answer is installed");
        assert!(client.watch_is_live());
        // The first request, then one 304 about every UNHELD_PAUSE: 3 or 4 in 2.5 s, never a spin.
        let made = requests.load(Ordering::Relaxed);
        assert!((2..=4).contains(&made), "{made} requests in 2.5 s");
    }

    #[tokio::test]
    async fn a_second_watch_on_the_same_client_returns_at_once() {
        let client = Client::new(1, None, Duration::from_millis(10));
        client.watching.store(true, Ordering::Release);
        tokio::time::timeout(Duration::from_secs(1), client.watch_into(&Store::default()))
            .await
            .expect("returns at once: one watch per client");
    }

    #[tokio::test]
    async fn a_304_moves_the_fetch_time_on_so_the_age_stays_right() {
        let old = "2026-11-24T10:00:00.000Z";
        let recent = crate::wire::rfc3339(SystemTime::now() - Duration::from_secs(2));
        let body = format!(
            r#"{{"version": 4, "status": "ok", "fetched_at": "{old}", "flags": {{"a": {{"value": true}}}}}}"#
        );
        let client = client_of(vec![
            response(
                "200 OK",
                &[("etag", "\"t\""), (FETCHED_AT_HEADER, old)],
                &body,
            ),
            response(
                "304 Not Modified",
                &[("etag", "\"t\""), (FETCHED_AT_HEADER, &recent)],
                "",
            ),
        ])
        .await;
        let store = Store::default();
        assert_eq!(
            client.sync_into(&store).await,
            Synced::Updated {
                version: 4,
                status: Status::Ok
            }
        );
        assert!(
            store
                .pin()
                .age()
                .is_some_and(|a| a > Duration::from_secs(3600))
        );
        assert_eq!(client.sync_into(&store).await, Synced::Unchanged);
        let age = store.pin().age().expect("fetched");
        assert!(
            age < Duration::from_secs(60),
            "{age:?}: the 304's fetch time counts"
        );
        assert_eq!(store.version(), 4, "the same snapshot");
    }

    #[tokio::test]
    async fn an_older_extension_without_status_or_header_still_works() {
        // What an extension before 0.2 sent: `stale`, no `status`, no fetch-time header.
        let stale = r#"{"version": 2, "fetched_at": "2026-11-24T10:00:00Z", "stale": true,
                        "flags": {"a": {"value": true, "version": 1}}}"#;
        let fresh = r#"{"version": 3, "fetched_at": "2026-11-24T10:01:00Z", "stale": false,
                        "flags": {"a": {"value": false, "version": 2}}}"#;
        let client = client_of(vec![
            response("200 OK", &[("etag", "\"x-2-stale\"")], stale),
            response("304 Not Modified", &[("etag", "\"x-2-stale\"")], ""),
            response("200 OK", &[("etag", "\"x-3-ok\"")], fresh),
        ])
        .await;
        let store = Store::default();
        assert_eq!(
            client.sync_into(&store).await,
            Synced::Updated {
                version: 2,
                status: Status::Stale
            }
        );
        let at = humantime::parse_rfc3339("2026-11-24T10:00:00Z").ok();
        assert_eq!(store.pin().fetched_at(), at);
        assert_eq!(client.sync_into(&store).await, Synced::Unchanged);
        assert_eq!(
            store.pin().fetched_at(),
            at,
            "no header: the body's time stays"
        );
        assert!(store.get("a").enabled());
        assert_eq!(
            client.sync_into(&store).await,
            Synced::Updated {
                version: 3,
                status: Status::Ok
            }
        );
        assert!(!store.get("a").enabled());
    }

    #[tokio::test]
    async fn a_restarted_extensions_empty_snapshot_never_replaces_held_flags() {
        let held = format!(
            r#"{{"version": 3, "status": "ok", "fetched_at": "{}", "flags": {{"kill-switch": {{"value": true}}}}}}"#,
            crate::wire::rfc3339(SystemTime::now())
        );
        let restarted = r#"{"version": 0, "status": "degraded", "flags": {}}"#;
        let client = client_of(vec![
            response("200 OK", &[("etag", "\"a-3-ok\"")], &held),
            response("200 OK", &[("etag", "\"b-0-degraded\"")], restarted),
            response("304 Not Modified", &[("etag", "\"b-0-degraded\"")], ""),
        ])
        .await;
        let store = Store::default();
        client.sync_into(&store).await;
        assert!(store.get("kill-switch").enabled());
        assert_eq!(
            client.sync_into(&store).await,
            Synced::Kept {
                declined: Status::Degraded
            }
        );
        assert!(store.get("kill-switch").enabled(), "the held flag stays on");
        assert_eq!(store.pin().status(), Status::Ok);
        assert_eq!(
            client.sync_into(&store).await,
            Synced::Unchanged,
            "the declined snapshot's tag is kept: it is not fetched again"
        );
    }

    /// An extension whose long polls are held until the test releases each with an answer of its
    /// choosing (`held`); other requests get `answers` in turn. Says when a long poll arrives.
    async fn holding_long_polls(
        answers: Vec<String>,
    ) -> (
        u16,
        tokio::sync::mpsc::Sender<String>,
        tokio::sync::mpsc::Receiver<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (release, held) = tokio::sync::mpsc::channel::<String>(4);
        let (arrived_tx, arrived) = tokio::sync::mpsc::channel::<()>(4);
        let answers = Arc::new(std::sync::Mutex::new(answers.into_iter()));
        let held = Arc::new(tokio::sync::Mutex::new(held));
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (answers, held, arrived_tx) =
                    (Arc::clone(&answers), Arc::clone(&held), arrived_tx.clone());
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        let request = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
                        let answer = if request.contains("prefer:") {
                            let _ = arrived_tx.send(()).await;
                            held.lock().await.recv().await
                        } else {
                            answers.lock().ok().and_then(|mut a| a.next())
                        };
                        let Some(answer) = answer else { return };
                        let _ = stream.write_all(answer.as_bytes()).await;
                    }
                });
            }
        });
        (port, release, arrived)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_held_watch_answer_never_puts_older_flags_over_a_newer_sync() {
        let at = |s: &str| humantime::parse_rfc3339(s).expect("time");
        let (t1, t2, t3) = (
            "2026-11-24T10:00:00.000Z",
            "2026-11-24T10:01:00.000Z",
            "2026-11-24T10:02:00.000Z",
        );
        let doc = |version: u64, on: bool, fetched: &str| {
            format!(
                r#"{{"version": {version}, "status": "ok", "fetched_at": "{fetched}", "flags": {{"a": {{"value": {on}}}}}}}"#
            )
        };
        let (v1, v2) = (doc(1, false, t1), doc(2, true, t2));
        let (port, release, mut arrived) = holding_long_polls(vec![
            // The watch's first request (no tag yet: not held), then the sync's.
            response(
                "200 OK",
                &[("etag", "\"v1\""), (FETCHED_AT_HEADER, t1)],
                &v1,
            ),
            response(
                "200 OK",
                &[("etag", "\"v2\""), (FETCHED_AT_HEADER, t2)],
                &v2,
            ),
        ])
        .await;
        let client = Arc::new(Client::new(port, None, Duration::from_secs(2)));
        let store = Arc::new(Store::default());
        let watch = {
            let (client, store) = (Arc::clone(&client), Arc::clone(&store));
            tokio::spawn(async move { client.watch_into(&store).await })
        };
        // The watch installs v1, then its long poll (tagged v1) is held.
        tokio::time::timeout(Duration::from_secs(10), arrived.recv())
            .await
            .expect("the watch's long poll arrives");
        assert_eq!(store.version(), 1);
        // Meanwhile a sync, on its own connection, installs the newer v2.
        assert_eq!(
            client.sync_into(&store).await,
            Synced::Updated {
                version: 2,
                status: Status::Ok
            }
        );
        // The held answer is released: "v1 unchanged, confirmed at t3". It confirms v1, not v2.
        release
            .send(response(
                "304 Not Modified",
                &[("etag", "\"v1\""), (FETCHED_AT_HEADER, t3)],
                "",
            ))
            .await
            .expect("release");
        tokio::time::timeout(Duration::from_secs(10), arrived.recv())
            .await
            .expect("the watch polls again");
        assert_eq!(store.version(), 2);
        assert_eq!(
            store.pin().fetched_at(),
            Some(at(t2)),
            "v2's fetch time taken from a 304 about v1"
        );
        // Released again, now with v1 itself (an answer overtaken on its way): v2 stays.
        release
            .send(response(
                "200 OK",
                &[("etag", "\"v1\""), (FETCHED_AT_HEADER, t1)],
                &v1,
            ))
            .await
            .expect("release");
        tokio::time::timeout(Duration::from_secs(10), arrived.recv())
            .await
            .expect("the watch polls again");
        assert_eq!(store.version(), 2, "older flags installed over newer ones");
        assert!(store.get("a").enabled());
        watch.abort();
    }

    #[tokio::test]
    async fn an_unusable_token_fails_every_sync_and_a_fifo_token_file_never_blocks_one() {
        // An extension that would serve anyone: the client must refuse on its own.
        let client = client_of(vec![response("200 OK", &[("etag", "\"t\"")], BODY); 4]).await;
        let mut client = client;
        client.token = Token::configured("s3cr3t\n", crate::wire::TOKEN_VAR);
        let store = Store::default();
        assert_eq!(client.sync_into(&store).await, Synced::Unavailable);
        assert_eq!(store.version(), 0, "no fallback to another token source");
        // A FIFO at the token file: the sync ends within its bound instead of blocking forever.
        let dir =
            std::env::temp_dir().join(format!("ssm-flags-client-fifo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let fifo = dir.join("token");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        client.token = Token::from_file(fifo);
        let started = std::time::Instant::now();
        let synced = tokio::time::timeout(Duration::from_secs(10), client.sync_into(&store))
            .await
            .expect("the sync ended");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        // No token is sent; this stand-in answers anyway (the real extension answers 401).
        assert_ne!(synced, Synced::Unchanged);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_same_flags_offered_again_stay_installed_and_only_their_fetch_time_moves() {
        let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s);
        let doc = |fetched: u64| {
            Snapshot::from_values([("a", "true")]).with_fetched_at(Some(at(fetched)))
        };
        let store = Store::default();
        assert!(matches!(store.offer(doc(1)), Offered::Installed { .. }));
        let installed = store.pin();
        // The watch's first answer: the same flags, fetched later.
        let Offered::Same { held } = store.offer(doc(2)) else {
            panic!("the same flags were swapped in again");
        };
        assert!(Arc::ptr_eq(&held, &installed), "no swap");
        assert_eq!(store.pin().fetched_at(), Some(at(2)));
        // Other flags with the same version are not "the same".
        let other = Snapshot::from_values([("a", "false")]).with_fetched_at(Some(at(3)));
        assert!(matches!(store.offer(other), Offered::Installed { .. }));
        assert!(!store.get("a").enabled());
    }

    #[test]
    fn offers_racing_from_many_threads_leave_the_latest_fetch_installed() {
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for _ in 0..50 {
            let store = Arc::new(Store::default());
            let threads: Vec<_> = (1..=8u64)
                .map(|n| {
                    let store = Arc::clone(&store);
                    std::thread::spawn(move || {
                        let snapshot = Snapshot::new(n, Status::Ok, [])
                            .with_fetched_at(Some(base + Duration::from_secs(n)));
                        let _ = store.offer(snapshot);
                    })
                })
                .collect();
            for thread in threads {
                thread.join().expect("offer");
            }
            assert_eq!(
                store.version(),
                8,
                "a later fetch was replaced by an earlier one"
            );
        }
    }

    /// A server answering every request with `body` after `delay`, counting requests.
    async fn slow_counting(delay: Duration, body: &'static str) -> (u16, Arc<AtomicU64>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&requests);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let counted = Arc::clone(&counted);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        counted.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(delay).await;
                        let answer = response("200 OK", &[("etag", "\"s\"")], body);
                        let _ = stream.write_all(answer.as_bytes()).await;
                    }
                });
            }
        });
        (port, requests)
    }

    async fn concurrent_syncs(client: Client, n: usize) -> Vec<(Synced, Duration)> {
        let (client, store) = (Arc::new(client), Arc::new(Store::default()));
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (client, store) = (Arc::clone(&client), Arc::clone(&store));
                tokio::spawn(async move {
                    let started = std::time::Instant::now();
                    (client.sync_into(&store).await, started.elapsed())
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.expect("sync task"));
        }
        outcomes
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn overlapping_syncs_share_one_request() {
        let (port, requests) = slow_counting(Duration::from_millis(100), BODY).await;
        let outcomes = concurrent_syncs(Client::new(port, None, Duration::from_secs(5)), 20).await;
        assert_eq!(
            requests.load(Ordering::Relaxed),
            1,
            "one request for 20 syncs"
        );
        assert!(
            outcomes.iter().all(|(s, _)| *s
                == Synced::Updated {
                    version: 4,
                    status: Status::Ok
                }),
            "{outcomes:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_sync_gives_up_within_the_timeout_counted_from_its_call() {
        // Answers after an hour: a hung extension.
        let (port, _) = slow_counting(Duration::from_secs(3600), BODY).await;
        let timeout = Duration::from_millis(50);
        let outcomes = concurrent_syncs(Client::new(port, None, timeout), 20).await;
        for (synced, took) in outcomes {
            assert_eq!(synced, Synced::Unavailable);
            // Before: each waited for the others' timeouts too (20 x 50 ms = 1 s).
            assert!(
                took < Duration::from_millis(600),
                "{took:?} for a 50 ms bound"
            );
        }
    }

    #[tokio::test]
    async fn an_absent_extension_answers_unavailable_at_once() {
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a port nobody listens on once dropped");
        let client = Client::new(port, Some("t"), Duration::from_secs(5));
        let store = Store::default();
        let started = std::time::Instant::now();
        assert_eq!(client.sync_into(&store).await, Synced::Unavailable);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "refused, not timed out"
        );
        assert_eq!(store.version(), 0);
    }

    #[tokio::test]
    async fn a_hung_extension_is_cut_at_the_client_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        // Accepts and never answers.
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let client = Client::new(port, None, Duration::from_millis(50));
        let started = std::time::Instant::now();
        assert_eq!(
            client.sync_into(&Store::default()).await,
            Synced::Unavailable
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(50) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }
}
