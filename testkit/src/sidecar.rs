//! The real `ssm-flags` binary as a sidecar (`SSM_FLAGS_MODE=sidecar`): a plain process, no
//! Lambda; and the credential sources of containers and hosts: a container credentials endpoint
//! as ECS serves one to a task (`AWS_CONTAINER_CREDENTIALS_FULL_URI` +
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN`) and an EC2 instance metadata service (IMDSv2), each
//! answering the documented JSON.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use flags::wire::{HEALTH_PATH, TOKEN_HEADER};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::lambda::{Proc, aws_env, extension_binary, spawn_process};
use crate::{free_port, http_get};

/// The token sidecar tests configure (`SSM_FLAGS_TOKEN`), as an ECS task shares it.
pub const SIDECAR_TOKEN: &str = "sidecar-token-5d1c";

/// A running sidecar.
pub struct Sidecar {
    /// The process.
    pub proc: Proc,
    /// Its local API port.
    pub port: u16,
    /// Its environment (for `--health-check` runs with the same settings).
    pub env: Vec<(String, String)>,
}

impl Sidecar {
    /// The sidecar environment: the flags under `path` from the endpoint on `ssm_port` (fake
    /// static credentials), served on `port` with [`SIDECAR_TOKEN`], refreshed every
    /// `max_age_s`, JSON logs; `extra` is added last (later values win).
    pub fn env(
        ssm_port: u16,
        path: &str,
        port: u16,
        max_age_s: u64,
        extra: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let mut env = aws_env(ssm_port);
        env.extend(
            [
                ("SSM_FLAGS_MODE", "sidecar".to_owned()),
                ("SSM_FLAGS_PATH", path.to_owned()),
                ("SSM_FLAGS_PORT", port.to_string()),
                ("SSM_FLAGS_TOKEN", SIDECAR_TOKEN.to_owned()),
                ("SSM_FLAGS_MAX_AGE", max_age_s.to_string()),
                ("SSM_FLAGS_LOG_FORMAT", "json".to_owned()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v)),
        );
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        env
    }

    /// Starts the sidecar with `env` (see [`Sidecar::env`]) and waits until its API answers and
    /// its first load is over (its `ready` line: loaded, or degraded).
    pub async fn start_with(env: Vec<(String, String)>) -> Self {
        let port = env
            .iter()
            .rev()
            .find(|(k, _)| k == "SSM_FLAGS_PORT")
            .and_then(|(_, v)| v.parse().ok())
            .expect("SSM_FLAGS_PORT in the sidecar's environment");
        let proc = spawn_process(&extension_binary(), [], &env, "sidecar");
        let sidecar = Self { proc, port, env };
        let deadline = Instant::now() + Duration::from_secs(15);
        while sidecar.health().await.is_none() || sidecar.proc.first_line("ready").is_none() {
            assert!(
                Instant::now() < deadline,
                "the sidecar did not answer within 15 s:\n{}",
                sidecar.proc.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sidecar
    }

    /// Starts a sidecar reading `path` from the endpoint on `ssm_port` on a free port.
    pub async fn start(ssm_port: u16, path: &str, max_age_s: u64, extra: &[(&str, &str)]) -> Self {
        Self::start_with(Self::env(ssm_port, path, free_port(), max_age_s, extra)).await
    }

    /// `GET /v1/health`, when it answers.
    pub async fn health(&self) -> Option<serde_json::Value> {
        let (status, body) = http_get(self.port, HEALTH_PATH, &[(TOKEN_HEADER, SIDECAR_TOKEN)])
            .await
            .ok()?;
        (status == 200).then(|| serde_json::from_str(&body).ok())?
    }

    /// GET `path` on its API with the token: status and JSON body.
    pub async fn api(&self, path: &str) -> (u16, serde_json::Value) {
        let (status, body) = http_get(self.port, path, &[(TOKEN_HEADER, SIDECAR_TOKEN)])
            .await
            .expect("sidecar reachable");
        (status, serde_json::from_str(&body).unwrap_or_default())
    }

    /// Runs `ssm-flags <args>` with this sidecar's environment (as an orchestrator runs a
    /// health check inside the container): exit code and output.
    pub fn run_cli(&self, args: &[&str]) -> (Option<i32>, String) {
        run_cli(&self.env, args)
    }
}

/// Runs `ssm-flags <args>` with exactly `env`: exit code and output (stdout then stderr).
pub fn run_cli(env: &[(String, String)], args: &[&str]) -> (Option<i32>, String) {
    let output = std::process::Command::new(extension_binary())
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .args(args)
        .output()
        .expect("run ssm-flags");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.code(), text)
}

/// A request as a credentials stand-in saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The method.
    pub method: String,
    /// The path.
    pub path: String,
    /// The header that authorizes it (`Authorization` for ECS, `X-aws-ec2-metadata-token` for
    /// IMDSv2).
    pub auth: Option<String>,
}

type Handler = dyn Fn(&Request<Incoming>) -> Response<Full<Bytes>> + Send + Sync;

/// Serves `handler` on a free loopback port, recording every request; returns the port.
async fn serve_recorded(
    auth_header: &'static str,
    handler: Arc<Handler>,
) -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (record, handler) = (Arc::clone(&record), Arc::clone(&handler));
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let (record, handler) = (Arc::clone(&record), Arc::clone(&handler));
                    async move {
                        if let Ok(mut seen) = record.lock() {
                            seen.push(Seen {
                                method: request.method().to_string(),
                                path: request.uri().path().to_owned(),
                                auth: request
                                    .headers()
                                    .get(auth_header)
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_owned),
                            });
                        }
                        Ok::<_, std::convert::Infallible>(handler(&request))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (port, seen)
}

fn answer(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

/// Temporary credentials as ECS and IMDS document them (IMDS adds `Code`, `Type`,
/// `LastUpdated`).
fn credentials_json(imds: bool) -> String {
    let now = std::time::SystemTime::now();
    let mut doc = serde_json::json!({
        "AccessKeyId": "ASIAROLEEXAMPLE",
        "SecretAccessKey": "role-secret-never-logged",
        "Token": "role-session-token",
        "Expiration": flags::wire::rfc3339(now + Duration::from_secs(3600)),
    });
    if imds {
        doc["Code"] = "Success".into();
        doc["Type"] = "AWS-HMAC".into();
        doc["LastUpdated"] = flags::wire::rfc3339(now).into();
    } else {
        doc["RoleArn"] = "arn:aws:iam::123456789012:role/flags-task".into();
    }
    doc.to_string()
}

/// A container credentials endpoint (what ECS serves at `AWS_CONTAINER_CREDENTIALS_FULL_URI`):
/// answers the documented JSON with temporary credentials to requests that carry the
/// authorization token, 401 to others.
pub struct CredentialsEndpoint {
    /// Its port.
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl CredentialsEndpoint {
    /// The path credentials are served on.
    pub const PATH: &'static str = "/v2/credentials/task-role";

    /// Starts one that wants `Authorization: {token}`.
    pub async fn start(token: &'static str) -> Self {
        let handler: Arc<Handler> = Arc::new(move |request: &Request<Incoming>| {
            let authorized = request
                .headers()
                .get("authorization")
                .is_some_and(|v| v.as_bytes() == token.as_bytes());
            match (request.uri().path() == Self::PATH, authorized) {
                (false, _) => answer(StatusCode::NOT_FOUND, String::new()),
                (true, false) => answer(StatusCode::UNAUTHORIZED, String::new()),
                (true, true) => answer(StatusCode::OK, credentials_json(false)),
            }
        });
        let (port, seen) = serve_recorded("authorization", handler).await;
        Self { port, seen }
    }

    /// `AWS_CONTAINER_CREDENTIALS_FULL_URI`.
    pub fn full_uri(&self) -> String {
        format!("http://127.0.0.1:{}{}", self.port, Self::PATH)
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// An EC2 instance metadata service speaking IMDSv2 only: `PUT /latest/api/token` (with the TTL
/// header) gives a session token, which every `GET` must carry; the instance profile's role and
/// its credentials are served under `/latest/meta-data/iam/security-credentials/`.
pub struct InstanceMetadata {
    /// Its port.
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl InstanceMetadata {
    /// The instance profile's role name.
    pub const ROLE: &'static str = "flags-instance-role";
    const TOKEN: &'static str = "imds-session-token-1";

    /// Starts one.
    pub async fn start() -> Self {
        let handler: Arc<Handler> = Arc::new(|request: &Request<Incoming>| {
            let path = request.uri().path();
            if request.method() == http::Method::PUT && path == "/latest/api/token" {
                if !request
                    .headers()
                    .contains_key("x-aws-ec2-metadata-token-ttl-seconds")
                {
                    return answer(StatusCode::BAD_REQUEST, String::new());
                }
                let mut response = answer(StatusCode::OK, Self::TOKEN.to_owned());
                response.headers_mut().insert(
                    "x-aws-ec2-metadata-token-ttl-seconds",
                    http::HeaderValue::from_static("21600"),
                );
                return response;
            }
            let token = request
                .headers()
                .get("x-aws-ec2-metadata-token")
                .and_then(|v| v.to_str().ok());
            if token != Some(Self::TOKEN) {
                return answer(StatusCode::UNAUTHORIZED, String::new());
            }
            match path.strip_prefix("/latest/meta-data/iam/security-credentials/") {
                Some("") => answer(StatusCode::OK, Self::ROLE.to_owned()),
                Some(role) if role == Self::ROLE => answer(StatusCode::OK, credentials_json(true)),
                _ => answer(StatusCode::NOT_FOUND, String::new()),
            }
        });
        let (port, seen) = serve_recorded("x-aws-ec2-metadata-token", handler).await;
        Self { port, seen }
    }

    /// `AWS_EC2_METADATA_SERVICE_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}
