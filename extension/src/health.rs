//! `ssm-flags --health-check [--strict]`: asks the running instance on this host for its health,
//! for a container orchestrator's health check (no curl needed in the image).
//!
//! It fails only when the agent does not answer (not running, hung, wrong token): restarting a
//! container does not fix an AWS outage, and an essential sidecar failing its check during one
//! would restart the task in a loop while the last good flags are still being served. `--strict`
//! also fails while no flags from the source are served (`degraded`: never loaded; `fallback`:
//! only the deployed file), for those who prefer a restart then.
//!
//! It reads what the agent reads: `SSM_FLAGS_SOCKET` or `SSM_FLAGS_PORT`, and the token from `SSM_FLAGS_TOKEN`,
//! `AWS_SESSION_TOKEN` or the file in `SSM_FLAGS_TOKEN_FILE`.

use std::net::Ipv4Addr;
use std::time::Duration;

use bytes::Bytes;
use flags::endpoint::{Endpoint, EndpointError};
use flags::wire::{HEALTH_PATH, Status, TOKEN_HEADER};
use http::Request;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long the check waits for the agent, in all.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// The largest health document read: far above any the agent writes (it lists at most
/// [`flags::wire::HealthDoc::MAX_LISTED`] names), so an agent that answers is never judged by its size.
const MAX_BODY: usize = 1024 * 1024;

/// What the check reads of the health document: its status (the one field it judges by) and
/// what the summary line says; everything else (lists of names) is skipped unread.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Health {
    /// The agent's status.
    pub status: Status,
    /// The content version.
    #[serde(default)]
    pub version: u64,
    /// Seconds since the last successful fetch.
    #[serde(default)]
    pub age_seconds: Option<f64>,
    /// Number of flags.
    #[serde(default)]
    pub flags: usize,
    /// Number of invalid flags.
    #[serde(default)]
    pub invalid: usize,
    /// Why the last refresh failed.
    #[serde(default)]
    pub last_error: Option<String>,
}

/// Why the check failed.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// `SSM_FLAGS_PORT` is not a port, or `SSM_FLAGS_SOCKET` not an absolute path.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// No usable token: the one configured is invalid, or the token file cannot be read.
    #[error(transparent)]
    Token(#[from] flags::token::TokenError),
    /// Nothing answered in time.
    #[error("no answer from ssm-flags on {at} within {CHECK_TIMEOUT:?}")]
    Timeout {
        /// Where the agent was asked (`127.0.0.1:PORT` or `unix:PATH`).
        at: String,
    },
    /// The connection or the exchange failed.
    #[error("cannot reach ssm-flags on {at}: {reason}")]
    Unreachable {
        /// Where the agent was asked (`127.0.0.1:PORT` or `unix:PATH`).
        at: String,
        /// Why.
        reason: String,
    },
    /// The agent answered, but not with its health.
    #[error(
        "ssm-flags on {at} answered {status}{hint}",
        hint = if *status == 401 { " (the token differs: check SSM_FLAGS_TOKEN / SSM_FLAGS_TOKEN_FILE)" } else { "" }
    )]
    Status {
        /// Where the agent was asked (`127.0.0.1:PORT` or `unix:PATH`).
        at: String,
        /// The HTTP status.
        status: u16,
    },
    /// The answer is not a health document.
    #[error("ssm-flags on {at} answered a body that is not a health document: {reason}")]
    Body {
        /// Where the agent was asked (`127.0.0.1:PORT` or `unix:PATH`).
        at: String,
        /// Why.
        reason: String,
    },
    /// `--strict`: the agent answers, but serves no flags from the source.
    #[error(
        "ssm-flags is {status} (--strict): no flags from the source yet{}",
        last_error.as_deref().map(|e| format!("; last error: {e}")).unwrap_or_default()
    )]
    NoFlags {
        /// The status.
        status: Status,
        /// Why the last refresh failed.
        last_error: Option<String>,
    },
}

/// Where the agent listens and the token it wants, from `var`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Where the agent listens: TCP on loopback, or its Unix socket.
    pub endpoint: Endpoint,
    /// The token sent (from [`Target::from_vars`]: always one, or an error naming why not);
    /// `None` sends none (the agent answers 401). Never shown by `Debug`.
    pub token: Option<flags::token::Secret>,
}

impl Target {
    /// Read as the agent reads its own configuration.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, HealthError> {
        let endpoint = Endpoint::from_env(&var)?;
        let token = match flags::token::configured(&var)? {
            Some(token) => token,
            // Bounded: a FIFO or a link at the path fails at once, never hangs the check.
            None => flags::token::read_file(&flags::wire::token_file(&var))?,
        };
        Ok(Self {
            endpoint,
            token: Some(token),
        })
    }
}

/// Asks the agent at `target` for its health; with `strict`, a `degraded` or `fallback` agent
/// fails the check too.
pub async fn check(target: &Target, strict: bool) -> Result<Health, HealthError> {
    let doc = tokio::time::timeout(CHECK_TIMEOUT, fetch(target))
        .await
        .map_err(|_| HealthError::Timeout {
            at: target.endpoint.to_string(),
        })??;
    if strict && matches!(doc.status, Status::Degraded | Status::Fallback) {
        return Err(HealthError::NoFlags {
            status: doc.status,
            last_error: doc.last_error,
        });
    }
    Ok(doc)
}

async fn fetch(target: &Target) -> Result<Health, HealthError> {
    let at = target.endpoint.to_string();
    let unreachable = |reason: String| HealthError::Unreachable {
        at: at.clone(),
        reason,
    };
    let mut sender = match &target.endpoint {
        Endpoint::Tcp(port) => {
            let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, *port))
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            handshake(stream)
                .await
                .map_err(|e| unreachable(e.to_string()))?
        }
        Endpoint::Unix(path) => {
            let stream = tokio::net::UnixStream::connect(path)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            handshake(stream)
                .await
                .map_err(|e| unreachable(e.to_string()))?
        }
    };
    let mut request = Request::get(HEALTH_PATH).header(http::header::HOST, "127.0.0.1");
    if let Some(token) = &target.token {
        request = request.header(TOKEN_HEADER, token.expose());
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| unreachable(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(HealthError::Status {
            at,
            status: status.as_u16(),
        });
    }
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| HealthError::Body {
            at: at.clone(),
            reason: e.to_string(),
        })?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| HealthError::Body {
        at,
        reason: e.to_string(),
    })
}

/// An HTTP/1.1 connection over `stream`, driven by its own task.
async fn handshake<S>(stream: S) -> Result<http1::SendRequest<Empty<Bytes>>, hyper::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// The one line printed for a healthy agent.
pub fn summary(doc: &Health) -> String {
    let age = doc.age_seconds.map_or_else(
        || "never fetched".to_owned(),
        |a| format!("fetched {a:.0} s ago"),
    );
    let mut line = format!(
        "ssm-flags {}: version {}, {} flags ({} invalid), {age}",
        doc.status, doc.version, doc.flags, doc.invalid
    );
    if let Some(error) = &doc.last_error {
        line.push_str("; last error: ");
        line.push_str(error);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use flags::wire::HealthDoc;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn the_target_is_read_as_the_agent_reads_it() {
        assert_eq!(
            Target::from_vars(vars(&[
                ("SSM_FLAGS_PORT", "9100"),
                ("SSM_FLAGS_TOKEN", "t")
            ]))
            .expect("valid"),
            Target {
                endpoint: Endpoint::Tcp(9100),
                token: Some("t".into())
            }
        );
        let dir = std::env::temp_dir().join(format!("ssm-flags-health-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("token");
        std::fs::write(&file, "from-file\n").expect("token");
        let target = Target::from_vars(vars(&[(
            "SSM_FLAGS_TOKEN_FILE",
            file.to_str().expect("utf-8"),
        )]))
        .expect("valid");
        assert_eq!(target.endpoint, Endpoint::Tcp(flags::wire::DEFAULT_PORT));
        assert_eq!(target.token.as_deref(), Some("from-file"));
        let _ = std::fs::remove_dir_all(&dir);
        let err = Target::from_vars(vars(&[("SSM_FLAGS_PORT", "http")])).expect_err("invalid");
        assert!(err.to_string().contains("SSM_FLAGS_PORT"), "{err}");
    }

    #[tokio::test]
    async fn nothing_listening_fails_the_check_naming_the_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let err = check(
            &Target {
                endpoint: Endpoint::Tcp(port),
                token: None,
            },
            false,
        )
        .await
        .expect_err("nobody there");
        assert!(
            err.to_string().contains(&format!("127.0.0.1:{port}")),
            "{err}"
        );
    }

    /// An agent answering `body` to one request, on a port of its own.
    async fn answering(body: String) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            if let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
            }
        });
        port
    }

    #[tokio::test]
    async fn a_large_health_document_still_passes_the_check() {
        // 400 undecryptable SecureStrings with long names, as an agent before the cap listed them.
        let names: Vec<String> = (0..400)
            .map(|i| {
                format!(
                    "team/payments/secrets/provider-api-key-rotation-{i:04}-{}",
                    "x".repeat(120)
                )
            })
            .collect();
        let doc = HealthDoc {
            status: Status::Ok,
            version: 9,
            age_seconds: Some(1.0),
            flags: 400,
            invalid: 0,
            last_error: Some("cannot decrypt".into()),
            undecryptable: names,
            undecryptable_count: 400,
            shadowed: Vec::new(),
            shadowed_count: 0,
        };
        let body = serde_json::to_string(&doc).expect("json");
        assert!(body.len() > 64 * 1024, "{} bytes", body.len());
        let port = answering(body).await;
        let health = check(
            &Target {
                endpoint: Endpoint::Tcp(port),
                token: None,
            },
            true,
        )
        .await
        .expect("an answering agent is healthy");
        assert_eq!(health.status, Status::Ok);
        assert_eq!(health.version, 9);
    }

    #[tokio::test]
    async fn only_the_status_is_needed() {
        let port = answering(r#"{"status": "stale", "future_field": [1, 2]}"#.to_owned()).await;
        let health = check(
            &Target {
                endpoint: Endpoint::Tcp(port),
                token: None,
            },
            false,
        )
        .await
        .expect("healthy");
        assert_eq!(health.status, Status::Stale);
    }

    #[test]
    fn a_target_never_shows_its_token() {
        let target = Target {
            endpoint: Endpoint::Tcp(2774),
            token: Some("s3cr3t".into()),
        };
        let shown = format!("{target:?}");
        assert!(
            !shown.contains("s3cr3t") && shown.contains("redacted"),
            "{shown}"
        );
    }

    #[test]
    fn the_summary_says_status_and_age() {
        let doc = Health {
            status: Status::Stale,
            version: 3,
            age_seconds: Some(75.2),
            flags: 12,
            invalid: 1,
            last_error: Some("SSM throttled".into()),
        };
        assert_eq!(
            summary(&doc),
            "ssm-flags stale: version 3, 12 flags (1 invalid), fetched 75 s ago; last error: SSM throttled"
        );
    }
}
