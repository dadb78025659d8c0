//! The client's connection to the extension: one kept-alive HTTP/1.1 connection (TCP or a Unix
//! socket, [`Endpoint`]), the token it sends ([`Token`]), and one conditional `GET /v1/flags`
//! (optionally a long poll) with its bounds — what one request to the extension is, whatever
//! the sync or watch policy that asks for it.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{ETAG, HOST, IF_NONE_MATCH};
use http::{HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{Client, Synced, TRANSFER_TIMEOUT};
use crate::endpoint::Endpoint;
use crate::snapshot::Snapshot;
use crate::wire::{
    FETCHED_AT_HEADER, FLAGS_PATH, PREFER_HEADER, PREFERENCE_APPLIED_HEADER, SnapshotDoc,
    TOKEN_HEADER, parse_time,
};

/// Why a sync failed (logged, never returned to the handler).
#[derive(Debug, thiserror::Error)]
pub(super) enum SyncError {
    #[error("cannot connect to the ssm-flags extension at {endpoint}: {source}")]
    Connect {
        endpoint: String,
        source: std::io::Error,
    },
    #[error("HTTP error talking to the ssm-flags extension: {0}")]
    Http(#[from] hyper::Error),
    #[error("the ssm-flags extension answered {0}")]
    Status(StatusCode),
    #[error(transparent)]
    Snapshot(#[from] crate::error::LoadError),
    #[error("the ssm-flags extension did not answer within {0:?} (SSM_FLAGS_CLIENT_TIMEOUT_MS)")]
    Timeout(Duration),
    #[error("the snapshot did not finish arriving within {0:?}")]
    Transfer(Duration),
    #[error(
        "the snapshot is larger than {0} bytes (SSM_FLAGS_CLIENT_MAX_BODY_MIB): keeping the flags held"
    )]
    TooLarge(usize),
    #[error("the snapshot's transfer failed: {0}")]
    Body(String),
    #[error("{0}")]
    Token(String),
}

#[derive(Default)]
pub(super) struct Connection {
    pub(super) sender: Option<SendRequest<Empty<Bytes>>>,
    pub(super) etag: Option<HeaderValue>,
    /// The snapshot `etag` names (installed or declined): a 304 confirms this one, and only it.
    pub(super) known: Option<Arc<Snapshot>>,
    /// The outcome of the last sync, shared with the syncs that waited for it.
    pub(super) last: Option<Synced>,
}

impl Client {
    pub(super) async fn fetch(
        &self,
        connection: &mut Connection,
        deadline: tokio::time::Instant,
        wait: Option<Duration>,
    ) -> Result<Answer, SyncError> {
        let reused = connection.sender.as_ref().is_some_and(|s| !s.is_closed());
        match self.fetch_once(connection, deadline, wait).await {
            // The extension may have closed a kept-alive connection while it sat idle (or frozen):
            // like any keep-alive client, retry the idempotent GET once on a fresh connection.
            Err(SyncError::Http(_)) if reused => {
                connection.sender = None;
                self.fetch_once(connection, deadline, wait).await
            }
            other => other,
        }
    }

    /// One `GET /v1/flags`, conditional when a tag is held; with `wait`, a long poll.
    async fn fetch_once(
        &self,
        connection: &mut Connection,
        deadline: tokio::time::Instant,
        wait: Option<Duration>,
    ) -> Result<Answer, SyncError> {
        let timed_out = || SyncError::Timeout(self.timeout);
        let reusable = connection
            .sender
            .take()
            .filter(|sender| !sender.is_closed());
        let mut sender = match reusable {
            Some(sender) => sender,
            None => tokio::time::timeout_at(deadline, self.connect())
                .await
                .map_err(|_| timed_out())??,
        };
        tokio::time::timeout_at(deadline, sender.ready())
            .await
            .map_err(|_| timed_out())??;
        let mut request = Request::get(FLAGS_PATH)
            .header(HOST, "127.0.0.1")
            .body(Empty::new())
            .map_err(|_| SyncError::Status(StatusCode::BAD_REQUEST))?;
        let headers = request.headers_mut();
        if let Some(etag) = &connection.etag {
            headers.insert(IF_NONE_MATCH, etag.clone());
            if let Some(wait) = wait
                && let Ok(value) = HeaderValue::from_str(&format!("wait={}", wait.as_secs()))
            {
                headers.insert(PREFER_HEADER, value);
            }
        }
        if let Some(token) = self.token.value()? {
            headers.insert(TOKEN_HEADER, token);
        }
        let response = tokio::time::timeout_at(deadline, sender.send_request(request))
            .await
            .map_err(|_| timed_out())??;
        let status = response.status();
        let etag = response.headers().get(ETAG).cloned();
        let held = response.headers().contains_key(PREFERENCE_APPLIED_HEADER);
        // Extensions before 0.2 send no fetch time in a header: the body's stays.
        let fetched_at = response
            .headers()
            .get(FETCHED_AT_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_time);
        // The extension has answered: the body is read to its end, bounded in size and time.
        let limit = self.max_body;
        let body = Limited::new(response.into_body(), limit);
        let body = tokio::time::timeout(TRANSFER_TIMEOUT, body.collect())
            .await
            .map_err(|_| SyncError::Transfer(TRANSFER_TIMEOUT))?
            .map_err(|error| match error.downcast::<LengthLimitError>() {
                Ok(_) => SyncError::TooLarge(limit),
                Err(other) => SyncError::Body(other.to_string()),
            })?
            .to_bytes();
        connection.sender = Some(sender);
        match status {
            StatusCode::NOT_MODIFIED => Ok(Answer::Unchanged { fetched_at, held }),
            StatusCode::OK => {
                let doc = SnapshotDoc::from_slice(&body, "the extension's response")?;
                Ok(Answer::Updated {
                    doc,
                    etag,
                    fetched_at,
                })
            }
            StatusCode::UNAUTHORIZED => {
                // A restarted extension may have generated a new token: read it again next time.
                self.token.forget();
                Err(SyncError::Status(StatusCode::UNAUTHORIZED))
            }
            other => Err(SyncError::Status(other)),
        }
    }

    async fn connect(&self) -> Result<SendRequest<Empty<Bytes>>, SyncError> {
        let failed = |source| SyncError::Connect {
            endpoint: self.endpoint.to_string(),
            source,
        };
        match &self.endpoint {
            Endpoint::Tcp(port) => {
                let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, *port))
                    .await
                    .map_err(failed)?;
                let _ = stream.set_nodelay(true);
                handshake(stream).await
            }
            #[cfg(unix)]
            Endpoint::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(failed)?;
                handshake(stream).await
            }
            #[cfg(not(unix))]
            Endpoint::Unix(_) => Err(failed(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "Unix sockets are not supported on this system",
            ))),
        }
    }
}

/// An HTTP/1.1 connection over `stream`, driven by its own task until the sender is dropped or
/// the extension closes it.
async fn handshake<S>(stream: S) -> Result<SendRequest<Empty<Bytes>>, SyncError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// The API token: configured (`SSM_FLAGS_TOKEN`, `AWS_SESSION_TOKEN`), or the one the extension
/// generated, read from its file when first needed (and again after a 401).
pub(super) enum Token {
    Configured(HeaderValue),
    /// The configured token is not a valid one: every sync fails, saying so (no fallback to
    /// another source, which would hide the mistake).
    Unusable(String),
    File {
        path: std::path::PathBuf,
        read: std::sync::Mutex<Option<HeaderValue>>,
        /// Whether a failure to read the file was logged (once, until it is read).
        failure_logged: AtomicBool,
    },
}

impl Token {
    /// A configured token (`var` names where it came from), or why it cannot be used.
    pub(super) fn configured(token: &str, var: &'static str) -> Self {
        let unusable = |why: String| {
            Self::Unusable(crate::token::TokenError::Variable { var, why }.to_string())
        };
        match crate::token::check(token) {
            Err(why) => unusable(why),
            Ok(()) => HeaderValue::from_str(token).map_or_else(
                |_| unusable("not a header value".to_owned()),
                Self::Configured,
            ),
        }
    }

    pub(super) fn from_file(path: std::path::PathBuf) -> Self {
        Self::File {
            path,
            read: std::sync::Mutex::new(None),
            failure_logged: AtomicBool::new(false),
        }
    }

    /// The token to send: `Ok(None)` when the file cannot be read (the request goes without,
    /// and is refused); an error when the configured one is unusable.
    fn value(&self) -> Result<Option<HeaderValue>, SyncError> {
        match self {
            Self::Configured(value) => Ok(Some(value.clone())),
            Self::Unusable(why) => Err(SyncError::Token(why.clone())),
            Self::File {
                path,
                read,
                failure_logged,
            } => {
                let mut read = read
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if read.is_none() {
                    // Bounded: opened without following a link or blocking, at most 4 KiB.
                    match crate::token::read_file(path) {
                        Ok(token) => {
                            *read = HeaderValue::from_str(&token).ok();
                            failure_logged.store(false, Ordering::Relaxed);
                        }
                        Err(error) => {
                            if !failure_logged.swap(true, Ordering::Relaxed) {
                                tracing::warn!(
                                    %error,
                                    "no usable API token: requests to the ssm-flags extension go without one until the file can be read"
                                );
                            }
                        }
                    }
                }
                Ok(read.clone())
            }
        }
    }

    pub(super) fn forget(&self) {
        if let Self::File { read, .. } = self {
            *read
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        }
    }
}

/// What the extension answered to one request.
pub(super) enum Answer {
    /// 304: the snapshot held is current; the extension last fetched it at `fetched_at`.
    /// `held`: a long poll the extension held (`Preference-Applied`).
    Unchanged {
        fetched_at: Option<SystemTime>,
        held: bool,
    },
    /// 200: a new snapshot.
    Updated {
        doc: SnapshotDoc,
        etag: Option<HeaderValue>,
        fetched_at: Option<SystemTime>,
    },
}
