//! A stand-in for AWS AppConfig's data API (`appconfigdata`), which moto does not implement,
//! wire-exact to botocore's service model (`appconfigdata/2021-11-11/service-2.json`: rest-json,
//! signing name `appconfig`) and proven so by boto3's own client in `tests/appconfig_boto3.rs`:
//!
//! - `POST /configurationsessions` `{ApplicationIdentifier, EnvironmentIdentifier,
//!   ConfigurationProfileIdentifier, RequiredMinimumPollIntervalInSeconds?}` → `201
//!   {"InitialConfigurationToken"}`;
//! - `GET /configuration?configuration_token=T` → `200`, the configuration as the body (empty
//!   when the session already has the latest version; `204` instead when asked), headers
//!   `Next-Poll-Configuration-Token`, `Next-Poll-Interval-In-Seconds`, `Content-Type`,
//!   `Version-Label`;
//! - errors as the model declares them, with `x-amzn-ErrorType`: `BadRequestException` (400,
//!   `Reason: InvalidParameters`, `Details.InvalidParameters.ConfigurationToken.Problem`:
//!   `Expired`, `Corrupted`), `ThrottlingException` (429), `ResourceNotFoundException` (404),
//!   `InternalServerException` (500).
//!
//! Each token may be used once (the model: "This token should only be used once"); a token used
//! again, or never issued, is `Corrupted`. Signatures are not checked. Tests deploy
//! configurations and inject faults through the methods below, or over HTTP at `/_standin/…`
//! (what the boto3 test script uses).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// What the stand-in does to data-API requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppConfigFault {
    /// Answer normally.
    None,
    /// `ThrottlingException` (429).
    Throttle,
    /// `InternalServerException` (500).
    ServerError,
    /// Answer at most this many data-API requests per second; the excess gets
    /// `ThrottlingException`.
    RateLimit(u32),
}

/// One deployed configuration version.
#[derive(Debug, Clone)]
struct Deployed {
    content: Bytes,
    content_type: String,
    label: Option<String>,
    /// Increases with each deployment of the profile.
    number: u64,
}

#[derive(Debug)]
struct Session {
    profile: String,
    /// The deployment number this session last received (0: none).
    seen: u64,
    interval_s: u64,
}

#[derive(Debug)]
struct TokenState {
    session: usize,
    used: bool,
    expired: bool,
    /// When it was issued, and the interval announced with it.
    issued: Instant,
    interval_s: u64,
}

#[derive(Debug)]
struct State {
    profiles: HashMap<String, Deployed>,
    sessions: Vec<Session>,
    tokens: HashMap<String, TokenState>,
    next_token: u64,
    fault: AppConfigFault,
    poll_interval_s: u64,
    empty_as_204: bool,
    /// The current one-second window of [`AppConfigFault::RateLimit`]: start and requests.
    window: (Instant, u32),
}

/// Counts of what the stand-in answered.
#[derive(Debug, Default)]
pub struct AppConfigCounts {
    /// `StartConfigurationSession` calls.
    pub sessions: AtomicU64,
    /// `GetLatestConfiguration` calls.
    pub polls: AtomicU64,
    /// Polls that came before the interval announced with their token had passed.
    pub early_polls: AtomicU64,
    /// Polls answered with a configuration body.
    pub changed: AtomicU64,
    /// Requests answered `ThrottlingException`.
    pub throttled: AtomicU64,
}

/// The stand-in; point `AWS_ENDPOINT_URL_APPCONFIGDATA` (or `AWS_ENDPOINT_URL`) at
/// [`AppConfigData::endpoint`].
#[derive(Clone)]
pub struct AppConfigData {
    state: Arc<Mutex<State>>,
    counts: Arc<AppConfigCounts>,
    /// Its port.
    pub port: u16,
}

/// `application/environment/profile`, the key of a deployment.
pub fn profile_key(application: &str, environment: &str, profile: &str) -> String {
    format!("{application}/{environment}/{profile}")
}

impl AppConfigData {
    /// Starts a stand-in with no configuration deployed, announcing a 60 s poll interval
    /// (AppConfig's default).
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let standin = Self {
            state: Arc::new(Mutex::new(State {
                profiles: HashMap::new(),
                sessions: Vec::new(),
                tokens: HashMap::new(),
                next_token: 1,
                fault: AppConfigFault::None,
                poll_interval_s: 60,
                empty_as_204: false,
                window: (Instant::now(), 0),
            })),
            counts: Arc::new(AppConfigCounts::default()),
            port,
        };
        let serving = standin.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let serving = serving.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let serving = serving.clone();
                        async move { Ok::<_, std::convert::Infallible>(serving.handle(request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        standin
    }

    /// `http://127.0.0.1:{port}`.
    pub fn endpoint(&self) -> String {
        crate::endpoint(self.port)
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut state)
    }

    /// Deploys `content` as the next version of `application/environment/profile`.
    pub fn deploy(&self, key: &str, content: &str, content_type: &str, label: Option<&str>) {
        self.with(|s| {
            let number = s.profiles.get(key).map_or(1, |d| d.number + 1);
            s.profiles.insert(
                key.to_owned(),
                Deployed {
                    content: Bytes::from(content.to_owned()),
                    content_type: content_type.to_owned(),
                    label: label.map(str::to_owned),
                    number,
                },
            );
        });
    }

    /// The interval announced in `Next-Poll-Interval-In-Seconds` from now on.
    pub fn set_poll_interval(&self, seconds: u64) {
        self.with(|s| s.poll_interval_s = seconds);
    }

    /// Answers "unchanged" with `204 No Content` instead of an empty `200`.
    pub fn set_empty_as_204(&self, on: bool) {
        self.with(|s| s.empty_as_204 = on);
    }

    /// Changes what happens to the next data-API requests.
    pub fn set_fault(&self, fault: AppConfigFault) {
        self.with(|s| s.fault = fault);
    }

    /// Expires every token issued so far (as 24 hours would).
    pub fn expire_tokens(&self) {
        self.with(|s| s.tokens.values_mut().for_each(|t| t.expired = true));
    }

    /// What it answered so far.
    pub fn counts(&self) -> &AppConfigCounts {
        &self.counts
    }

    fn issue(s: &mut State, session: usize, interval_s: u64) -> String {
        let token = format!("AYADe{:08}standin{}", s.next_token, "x".repeat(24));
        s.next_token += 1;
        s.tokens.insert(
            token.clone(),
            TokenState {
                session,
                used: false,
                expired: false,
                issued: Instant::now(),
                interval_s,
            },
        );
        token
    }

    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let path = parts.uri.path();
        if let Some(control) = path.strip_prefix("/_standin/") {
            return self.control(control, &body);
        }
        let fault = self.with(|s| match s.fault {
            AppConfigFault::RateLimit(per_second) => {
                if s.window.0.elapsed().as_secs_f64() >= 1.0 {
                    s.window = (Instant::now(), 0);
                }
                s.window.1 += 1;
                if s.window.1 > per_second {
                    AppConfigFault::Throttle
                } else {
                    AppConfigFault::None
                }
            }
            other => other,
        });
        match fault {
            AppConfigFault::Throttle => {
                self.counts.throttled.fetch_add(1, Ordering::Relaxed);
                return error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "ThrottlingException",
                    json!({"Message": "Rate exceeded"}),
                );
            }
            AppConfigFault::ServerError => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerException",
                    json!({"Message": "injected by the stand-in"}),
                );
            }
            AppConfigFault::None | AppConfigFault::RateLimit(_) => {}
        }
        match (&parts.method, path) {
            (&Method::POST, "/configurationsessions") => self.start_session(&body),
            (&Method::GET, "/configuration") => {
                let token = parts
                    .uri
                    .query()
                    .unwrap_or_default()
                    .split('&')
                    .find_map(|pair| pair.strip_prefix("configuration_token="))
                    .map(|t| {
                        percent_encoding::percent_decode_str(t)
                            .decode_utf8_lossy()
                            .into_owned()
                    });
                self.poll(token.as_deref())
            }
            _ => error(
                StatusCode::NOT_FOUND,
                "UnknownOperationException",
                json!({"Message": format!("{} {path}", parts.method)}),
            ),
        }
    }

    fn start_session(&self, body: &[u8]) -> Response<Full<Bytes>> {
        self.counts.sessions.fetch_add(1, Ordering::Relaxed);
        let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let field = |name: &str| request[name].as_str().map(str::to_owned);
        let (Some(app), Some(env), Some(profile)) = (
            field("ApplicationIdentifier"),
            field("EnvironmentIdentifier"),
            field("ConfigurationProfileIdentifier"),
        ) else {
            return error(
                StatusCode::BAD_REQUEST,
                "BadRequestException",
                json!({"Message": "ApplicationIdentifier, EnvironmentIdentifier and ConfigurationProfileIdentifier are required", "Reason": "InvalidParameters"}),
            );
        };
        let key = profile_key(&app, &env, &profile);
        let minimum = request["RequiredMinimumPollIntervalInSeconds"].as_u64();
        self.with(|s| {
            if !s.profiles.contains_key(&key) {
                return error(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFoundException",
                    json!({
                        "Message": format!("Configuration profile {profile} of application {app} in environment {env} not found"),
                        "ResourceType": "ConfigurationProfile",
                        "ReferencedBy": {"ConfigurationProfileIdentifier": profile},
                    }),
                );
            }
            let interval_s = minimum.unwrap_or(0).max(s.poll_interval_s);
            s.sessions.push(Session {
                profile: key,
                seen: 0,
                interval_s,
            });
            let session = s.sessions.len() - 1;
            // The first poll may come at once.
            let token = Self::issue(s, session, 0);
            let mut response = json_response(
                StatusCode::CREATED,
                json!({"InitialConfigurationToken": token}),
            );
            response
                .headers_mut()
                .insert("x-amzn-requestid", HeaderValue::from_static("standin"));
            response
        })
    }

    fn poll(&self, token: Option<&str>) -> Response<Full<Bytes>> {
        self.counts.polls.fetch_add(1, Ordering::Relaxed);
        let invalid = |problem: &str| {
            error(
                StatusCode::BAD_REQUEST,
                "BadRequestException",
                json!({
                    "Message": format!("Invalid parameters: ConfigurationToken is {}", problem.to_lowercase()),
                    "Reason": "InvalidParameters",
                    "Details": {"InvalidParameters": {"ConfigurationToken": {"Problem": problem}}},
                }),
            )
        };
        self.with(|s| {
            let Some(state) = token.and_then(|t| s.tokens.get_mut(t)) else {
                return invalid("Corrupted");
            };
            if state.expired {
                return invalid("Expired");
            }
            if std::mem::replace(&mut state.used, true) {
                return invalid("Corrupted");
            }
            if state.issued.elapsed().as_secs_f64() < state.interval_s as f64 {
                self.counts.early_polls.fetch_add(1, Ordering::Relaxed);
            }
            let index = state.session;
            let interval_s = s.sessions[index].interval_s.max(s.poll_interval_s);
            let next = Self::issue(s, index, interval_s);
            let session = &mut s.sessions[index];
            let deployed = s.profiles.get(&session.profile).cloned();
            let mut response = match deployed {
                Some(d) if d.number > session.seen => {
                    session.seen = d.number;
                    self.counts.changed.fetch_add(1, Ordering::Relaxed);
                    let mut r = Response::new(Full::new(d.content.clone()));
                    if let Ok(v) = HeaderValue::from_str(&d.content_type) {
                        r.headers_mut().insert("content-type", v);
                    }
                    if let Some(label) = d
                        .label
                        .as_deref()
                        .and_then(|l| HeaderValue::from_str(l).ok())
                    {
                        r.headers_mut().insert("version-label", label);
                    }
                    r
                }
                _ => {
                    let mut r = Response::new(Full::new(Bytes::new()));
                    if s.empty_as_204 {
                        *r.status_mut() = StatusCode::NO_CONTENT;
                    }
                    r
                }
            };
            let headers = response.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&next) {
                headers.insert("next-poll-configuration-token", v);
            }
            headers.insert(
                "next-poll-interval-in-seconds",
                HeaderValue::from(interval_s),
            );
            response
        })
    }

    /// `POST /_standin/deploy {"profile": "a/e/p", "content", "content_type", "label"?}`,
    /// `/_standin/fault {"fault": "none"|"throttle"|"server-error"}`, `/_standin/expire`,
    /// `/_standin/interval {"seconds"}`, `/_standin/empty-as-204 {"on"}`.
    fn control(&self, what: &str, body: &[u8]) -> Response<Full<Bytes>> {
        let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        match what {
            "deploy" => self.deploy(
                request["profile"].as_str().unwrap_or_default(),
                request["content"].as_str().unwrap_or_default(),
                request["content_type"]
                    .as_str()
                    .unwrap_or("application/json"),
                request["label"].as_str(),
            ),
            "fault" => self.set_fault(match request["fault"].as_str() {
                Some("throttle") => AppConfigFault::Throttle,
                Some("server-error") => AppConfigFault::ServerError,
                _ => AppConfigFault::None,
            }),
            "expire" => self.expire_tokens(),
            "interval" => self.set_poll_interval(request["seconds"].as_u64().unwrap_or(60)),
            "empty-as-204" => self.set_empty_as_204(request["on"].as_bool().unwrap_or(false)),
            _ => return json_response(StatusCode::NOT_FOUND, json!({"error": what})),
        }
        json_response(StatusCode::OK, json!({}))
    }
}

fn json_response(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    response
}

fn error(status: StatusCode, kind: &'static str, body: Value) -> Response<Full<Bytes>> {
    let mut response = json_response(status, body);
    response
        .headers_mut()
        .insert("x-amzn-errortype", HeaderValue::from_static(kind));
    response
}
