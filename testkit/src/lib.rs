//! Real local parts for the integration tests and benches: a moto server standing in for AWS,
//! free ports and raw HTTP/1.1 ([`lib.rs`](self)), a fault-injecting proxy in front of moto
//! ([`fault`]), the simulated Lambda environment running the real binaries ([`lambda`]), Lambda
//! Managed Instances on top of it ([`managed`]), the binary as a sidecar ([`sidecar`]), and a
//! stand-in for AppConfig's data API, proven wire-exact by boto3 ([`appconfig`]), and the
//! operator CLI as a process ([`ctl`]), the programs tests run to their end ([`process`]), and a
//! slow link that makes a large transfer take its time ([`slow_link`]), and the flagd testbed's
//! rows with the rule that checks an answer against them ([`flagd`]), and CloudWatch Embedded
//! Metric Format lines published to moto as CloudWatch Logs would publish them ([`emf`]).
//! Dev-only; never shipped.

pub mod appconfig;
pub mod ctl;
pub mod emf;
pub mod fault;
pub mod flagd;
pub mod lambda;
pub mod managed;
pub mod powertools;
pub mod process;
pub mod runtime;
pub mod sidecar;
pub mod slow_link;
pub mod template;

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// `http://127.0.0.1:{port}`.
pub fn endpoint(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// A moto server standing in for AWS (SSM, SNS, SQS…), killed on drop.
pub struct Moto {
    child: Option<Child>,
    /// Its port.
    pub port: u16,
}

impl Moto {
    /// Starts moto on a free port and waits until it answers.
    pub async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    /// Starts moto on `port` and waits until it answers. Its path is `MOTO_SERVER`, or
    /// `.venv/bin/moto_server` in the workspace (`make venv` installs it).
    pub async fn start_on(port: u16) -> Self {
        let bin = std::env::var_os("MOTO_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace().join(".venv/bin/moto_server"));
        assert!(
            bin.exists(),
            "{} not found: run `make venv` (or `make test`), which installs moto into .venv",
            bin.display()
        );
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Self {
            child: Some(child),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, _)) = http_get(port, "/moto-api/", &[]).await {
                return moto;
            }
            assert!(
                Instant::now() < deadline,
                "moto did not start on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The endpoint URL SDK clients are pointed at.
    pub fn endpoint(&self) -> String {
        endpoint(self.port)
    }

    /// Stops the server now (AWS "goes down").
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until an extension has registered with `sim` and asked for its first event (Lambda's
/// init gate: the first invocation may start); returns its identifier, or what did not happen.
pub async fn first_next(
    sim: &lambda_simulator::Simulator,
    timeout: Duration,
) -> Result<String, String> {
    sim.wait_for(|| async { sim.extension_count().await >= 1 }, timeout)
        .await
        .map_err(|_| format!("no extension registered within {timeout:?}"))?;
    let id = sim.get_registered_extensions().await[0].id.clone();
    sim.wait_for(
        || async { sim.first_next_poll_at(&id).await.is_some() },
        timeout,
    )
    .await
    .map_err(|_| format!("the extension did not ask for its first event within {timeout:?}"))?;
    Ok(id)
}

/// Sends `bytes` as they are and returns the status code of the answer (0 if none).
pub async fn raw_request(port: u16, bytes: &[u8]) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.write_all(bytes).await?;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await;
    Ok(String::from_utf8_lossy(&raw)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0))
}

/// A minimal HTTP/1.1 GET (one request per connection): status and body.
pub async fn http_get(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String)> {
    http_request(port, "GET", path, headers, "")
        .await
        .map(|(s, _, b)| (s, b))
}

/// A minimal HTTP/1.1 request (one per connection): status, raw response head, and body.
pub async fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw))
        .await
        .map_err(|_| std::io::Error::other("timed out"))??;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .map(|(h, b)| (h.to_owned(), b.to_owned()))
        .unwrap_or_default();
    Ok((status, head, body))
}
