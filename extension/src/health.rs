//! `ssm-flags --health-check [--strict]`: asks the running instance on this host for its health,
//! for a container orchestrator's health check (no curl needed in the image).
//!
//! It fails only when the agent does not answer (not running, hung, wrong token): restarting a
//! container does not fix an AWS outage, and an essential sidecar failing its check during one
//! would restart the task in a loop while the last good flags are still being served. `--strict`
//! also fails while no flags from the source are served (`degraded`: never loaded; `fallback`:
//! only the deployed file), for those who prefer a restart then.
//!
//! It reads what the agent reads: `SSM_FLAGS_PORT`, and the token from `SSM_FLAGS_TOKEN`,
//! `AWS_SESSION_TOKEN` or the file in `SSM_FLAGS_TOKEN_FILE`.

use std::net::Ipv4Addr;
use std::time::Duration;

use bytes::Bytes;
use flags::env::{NumberError, parse_port};
use flags::wire::{DEFAULT_PORT, HEALTH_PATH, HealthDoc, Status, TOKEN_HEADER};
use http::Request;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long the check waits for the agent, in all.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// The largest health document read.
const MAX_BODY: usize = 64 * 1024;

/// Why the check failed.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// `SSM_FLAGS_PORT` is not a port.
    #[error(transparent)]
    Port(#[from] NumberError),
    /// Nothing answered in time.
    #[error("no answer from ssm-flags on 127.0.0.1:{port} within {CHECK_TIMEOUT:?}")]
    Timeout {
        /// The port.
        port: u16,
    },
    /// The connection or the exchange failed.
    #[error("cannot reach ssm-flags on 127.0.0.1:{port}: {reason}")]
    Unreachable {
        /// The port.
        port: u16,
        /// Why.
        reason: String,
    },
    /// The agent answered, but not with its health.
    #[error(
        "ssm-flags on 127.0.0.1:{port} answered {status}{hint}",
        hint = if *status == 401 { " (the token differs: check SSM_FLAGS_TOKEN / SSM_FLAGS_TOKEN_FILE)" } else { "" }
    )]
    Status {
        /// The port.
        port: u16,
        /// The HTTP status.
        status: u16,
    },
    /// The answer is not a health document.
    #[error(
        "ssm-flags on 127.0.0.1:{port} answered a body that is not a health document: {reason}"
    )]
    Body {
        /// The port.
        port: u16,
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
    /// The local API port.
    pub port: u16,
    /// The token sent; `None`: none could be found (the agent will answer 401).
    pub token: Option<String>,
}

impl Target {
    /// Read as the agent reads its own configuration.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, HealthError> {
        let port = match var("SSM_FLAGS_PORT").filter(|v| !v.trim().is_empty()) {
            Some(v) => parse_port("SSM_FLAGS_PORT", &v)?,
            None => DEFAULT_PORT,
        };
        let token = flags::wire::configured_token(&var).or_else(|| {
            std::fs::read_to_string(flags::wire::token_file(&var))
                .ok()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
        });
        Ok(Self { port, token })
    }
}

/// Asks the agent at `target` for its health; with `strict`, a `degraded` or `fallback` agent
/// fails the check too.
pub async fn check(target: &Target, strict: bool) -> Result<HealthDoc, HealthError> {
    let port = target.port;
    let doc = tokio::time::timeout(CHECK_TIMEOUT, fetch(target))
        .await
        .map_err(|_| HealthError::Timeout { port })??;
    if strict && matches!(doc.status, Status::Degraded | Status::Fallback) {
        return Err(HealthError::NoFlags {
            status: doc.status,
            last_error: doc.last_error,
        });
    }
    Ok(doc)
}

async fn fetch(target: &Target) -> Result<HealthDoc, HealthError> {
    let port = target.port;
    let unreachable = |reason: String| HealthError::Unreachable { port, reason };
    let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let (mut sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    tokio::spawn(connection);
    let mut request = Request::get(HEALTH_PATH).header(http::header::HOST, "127.0.0.1");
    if let Some(token) = &target.token {
        request = request.header(TOKEN_HEADER, token);
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
            port,
            status: status.as_u16(),
        });
    }
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| HealthError::Body {
            port,
            reason: e.to_string(),
        })?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| HealthError::Body {
        port,
        reason: e.to_string(),
    })
}

/// The one line printed for a healthy agent.
pub fn summary(doc: &HealthDoc) -> String {
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
                port: 9100,
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
        assert_eq!(target.port, DEFAULT_PORT);
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
        let err = check(&Target { port, token: None }, false)
            .await
            .expect_err("nobody there");
        assert!(
            err.to_string().contains(&format!("127.0.0.1:{port}")),
            "{err}"
        );
    }

    #[test]
    fn the_summary_says_status_and_age() {
        let doc = HealthDoc {
            status: Status::Stale,
            version: 3,
            age_seconds: Some(75.2),
            flags: 12,
            invalid: 1,
            last_error: Some("SSM throttled".into()),
            undecryptable: Vec::new(),
        };
        assert_eq!(
            summary(&doc),
            "ssm-flags stale: version 3, 12 flags (1 invalid), fetched 75 s ago; last error: SSM throttled"
        );
    }
}
