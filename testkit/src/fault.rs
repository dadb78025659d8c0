//! A fault-injecting HTTP proxy in front of moto: moto has no throttling or faults of its own.
//!
//! Errors use AWS's JSON 1.1 wire format (`__type` in the body, `x-amzn-ErrorType` header), so the
//! SDK classifies them exactly as it would real SSM errors.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to each request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Forward unchanged.
    Pass,
    /// Answer `ThrottlingException` to this share (0–1) of requests, forward the rest.
    Throttle(f64),
    /// Answer `500 InternalServerError`.
    ServerError,
    /// Wait this long, then forward.
    Slow(Duration),
    /// Reset the connection without answering.
    Reset,
    /// Answer `200 {}`: a malformed answer (no `Parameters` array) that an SDK parses as "no
    /// parameters".
    EmptyAnswer,
    /// Answer every `GetParametersByPath` with a well-formed `200 {"Parameters": []}`; other
    /// actions (`GetParameters`) pass. A listing that says "nothing" while the flags exist.
    EmptyList,
    /// Refuse every request that asks for decryption (`"WithDecryption": true`) as SSM does when
    /// the role may not use a SecureString's KMS key (`AccessDeniedException` naming
    /// `kms:Decrypt`); requests without decryption pass.
    DenyDecryption,
    /// Answer the `GetParametersByPath` requests that carry a `NextToken` (pages after the first)
    /// with `200 {"Parameters": []}` and no token: a listing cut short without an error.
    TruncateAfterFirstPage,
    /// Forward at most this many requests per second; answer the excess `ThrottlingException`
    /// (SSM's default quota is 40 per second).
    RateLimit(u32),
    /// Refuse this SSM action (`PutParameter`) with the `AccessDeniedException` AWS sends a
    /// caller without the IAM permission, naming the action and the parameter's ARN.
    Deny(&'static str),
    /// Forward, and set `LastModifiedUser` to this ARN in every parameter of the answer: moto
    /// records no user (it answers `N/A`), real SSM records the caller's ARN.
    ModifiedBy(&'static str),
    /// Give every `GetParametersByPath` answer the same `NextToken`; a request carrying it is
    /// forwarded without it, so moto answers the first page again: a listing that never ends and
    /// repeats its token (and its names).
    RepeatedNextToken,
    /// Give every `GetParametersByPath` answer a fresh `NextToken`; a request carrying one is
    /// forwarded without it and the names of the page that comes back are made new
    /// (`<name>-p<n>`): a listing that never ends, never repeats a token or a name, and grows
    /// without bound.
    EndlessListing,
}

/// What the proxy does to `GetParameters` answers (the check of flags a listing left out by
/// name), on top of the [`Fault`] in force: see [`FaultProxy::set_by_name`]. Real SSM always
/// answers both `Parameters` and `InvalidParameters`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByName {
    /// As the [`Fault`] in force says.
    Pass,
    /// Answer `200 {}`: neither array.
    Empty,
    /// Forward, and drop `InvalidParameters` from the answer.
    WithoutInvalidParameters,
}

/// Counts of what the proxy did.
#[derive(Debug, Default)]
pub struct Counts {
    /// Requests received.
    pub requests: AtomicU64,
    /// Requests forwarded to moto.
    pub forwarded: AtomicU64,
    /// Requests answered with a throttling error.
    pub throttled: AtomicU64,
    /// Requests answered with a 5xx.
    pub server_errors: AtomicU64,
    /// Connections reset.
    pub resets: AtomicU64,
    /// `GetParametersByPath` requests received.
    pub listings: AtomicU64,
    /// `GetParameters` requests received.
    pub by_name: AtomicU64,
}

struct Window {
    started: Instant,
    used: u32,
}

struct State {
    upstream: u16,
    fault: Mutex<Fault>,
    by_name: Mutex<ByName>,
    window: Mutex<Window>,
    counts: Counts,
    /// The last `NextToken` number [`Fault::EndlessListing`] handed out.
    tokens: AtomicU64,
}

/// The proxy: point `AWS_ENDPOINT_URL` at [`FaultProxy::endpoint`].
#[derive(Clone)]
pub struct FaultProxy {
    state: Arc<State>,
    /// Its port.
    pub port: u16,
}

impl FaultProxy {
    /// Starts a proxy to moto on `upstream`, passing everything through.
    pub async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let state = Arc::new(State {
            upstream,
            fault: Mutex::new(Fault::Pass),
            by_name: Mutex::new(ByName::Pass),
            window: Mutex::new(Window {
                started: Instant::now(),
                used: 0,
            }),
            counts: Counts::default(),
            tokens: AtomicU64::new(0),
        });
        let serving = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = Arc::clone(&serving);
                tokio::spawn(serve_connection(stream, state));
            }
        });
        Self { state, port }
    }

    /// `http://127.0.0.1:{port}`.
    pub fn endpoint(&self) -> String {
        crate::endpoint(self.port)
    }

    /// Changes what happens to the next requests.
    pub fn set(&self, fault: Fault) {
        if let Ok(mut f) = self.state.fault.lock() {
            *f = fault;
        }
    }

    /// Changes what happens to the next `GetParameters` requests (on top of [`FaultProxy::set`]).
    pub fn set_by_name(&self, by_name: ByName) {
        if let Ok(mut b) = self.state.by_name.lock() {
            *b = by_name;
        }
    }

    /// What the proxy has done so far.
    pub fn counts(&self) -> &Counts {
        &self.state.counts
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.state.counts.requests.load(Ordering::Relaxed)
    }
}

/// The service's error: the connection is closed without an answer.
#[derive(Debug)]
struct ResetConnection;

impl std::fmt::Display for ResetConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by the fault proxy")
    }
}

impl std::error::Error for ResetConnection {}

async fn serve_connection(stream: TcpStream, state: Arc<State>) {
    let service = service_fn(move |request: Request<Incoming>| {
        let state = Arc::clone(&state);
        async move {
            // A service error makes hyper close the connection without answering.
            handle(&state, request).await.ok_or(ResetConnection)
        }
    });
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

fn aws_error(status: StatusCode, kind: &str, message: &str) -> Response<Full<Bytes>> {
    let body = format!(r#"{{"__type":"{kind}","message":"{message}"}}"#);
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    headers.insert("x-amzn-requestid", HeaderValue::from_static("fault-proxy"));
    if let Ok(value) = HeaderValue::from_str(kind) {
        headers.insert("x-amzn-errortype", value);
    }
    response
}

fn throttled(state: &State) -> Response<Full<Bytes>> {
    state.counts.throttled.fetch_add(1, Ordering::Relaxed);
    aws_error(
        StatusCode::BAD_REQUEST,
        "ThrottlingException",
        "Rate exceeded",
    )
}

fn ok_json(body: &'static [u8]) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body)));
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    response
}

/// The SSM action of a JSON 1.1 request (`X-Amz-Target: AmazonSSM.<Action>`).
fn action<B>(request: &Request<B>) -> &str {
    request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("AmazonSSM."))
        .unwrap_or_default()
}

/// Answers `None` to reset the connection.
async fn handle(state: &State, request: Request<Incoming>) -> Option<Response<Full<Bytes>>> {
    state.counts.requests.fetch_add(1, Ordering::Relaxed);
    let fault = state.fault.lock().map(|f| *f).unwrap_or(Fault::Pass);
    let (parts, body) = request.into_parts();
    let body = body.collect().await.ok()?.to_bytes();
    let request = Request::from_parts(parts, body);
    let listing = action(&request) == "GetParametersByPath";
    if listing {
        state.counts.listings.fetch_add(1, Ordering::Relaxed);
    }
    if action(&request) == "GetParameters" {
        state.counts.by_name.fetch_add(1, Ordering::Relaxed);
        match state.by_name.lock().map(|b| *b).unwrap_or(ByName::Pass) {
            ByName::Pass => {}
            ByName::Empty => return Some(ok_json(b"{}")),
            ByName::WithoutInvalidParameters => {
                let response = forward(("127.0.0.1", state.upstream), request).await?;
                state.counts.forwarded.fetch_add(1, Ordering::Relaxed);
                return Some(
                    edit_json(response, |d| {
                        if let Some(object) = d.as_object_mut() {
                            object.remove("InvalidParameters");
                        }
                    })
                    .await,
                );
            }
        }
    }
    if listing && matches!(fault, Fault::RepeatedNextToken | Fault::EndlessListing) {
        return Some(endless(state, fault, request).await);
    }
    match fault {
        Fault::Pass => {}
        Fault::Throttle(share) => {
            if fastrand::f64() < share {
                return Some(throttled(state));
            }
        }
        Fault::ServerError => {
            state.counts.server_errors.fetch_add(1, Ordering::Relaxed);
            return Some(aws_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "injected by the fault proxy",
            ));
        }
        Fault::Slow(delay) => tokio::time::sleep(delay).await,
        Fault::Reset => {
            state.counts.resets.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Fault::EmptyAnswer => return Some(ok_json(b"{}")),
        Fault::EmptyList if listing => return Some(ok_json(br#"{"Parameters":[]}"#)),
        Fault::TruncateAfterFirstPage
            if listing && String::from_utf8_lossy(request.body()).contains("\"NextToken\"") =>
        {
            return Some(ok_json(br#"{"Parameters":[]}"#));
        }
        Fault::DenyDecryption
            if String::from_utf8_lossy(request.body()).contains("\"WithDecryption\":true") =>
        {
            return Some(aws_error(
                StatusCode::BAD_REQUEST,
                "AccessDeniedException",
                "User: arn:aws:sts::123456789012:assumed-role/flags-fn/flags-fn is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:us-east-1:123456789012:key/1234abcd because no identity-based policy allows the kms:Decrypt action",
            ));
        }
        Fault::Deny(denied) if action(&request) == denied => {
            let name = serde_json::from_slice::<serde_json::Value>(request.body())
                .ok()
                .and_then(|body| body.get("Name").and_then(|n| n.as_str()).map(str::to_owned))
                .unwrap_or_default();
            let message = format!(
                "User: arn:aws:sts::123456789012:assumed-role/ops/ann is not authorized to perform: ssm:{denied} on resource: arn:aws:ssm:us-east-1:123456789012:parameter{name} because no identity-based policy allows the ssm:{denied} action"
            );
            return Some(aws_error(
                StatusCode::BAD_REQUEST,
                "AccessDeniedException",
                &message,
            ));
        }
        Fault::EmptyList
        | Fault::TruncateAfterFirstPage
        | Fault::DenyDecryption
        | Fault::Deny(_)
        | Fault::ModifiedBy(_)
        | Fault::RepeatedNextToken
        | Fault::EndlessListing => {}
        Fault::RateLimit(per_second) => {
            let allowed = state.window.lock().map(|mut w| {
                if w.started.elapsed() >= Duration::from_secs(1) {
                    w.started = Instant::now();
                    w.used = 0;
                }
                w.used += 1;
                w.used <= per_second
            });
            if !allowed.unwrap_or(false) {
                return Some(throttled(state));
            }
        }
    }
    Some(
        match forward(("127.0.0.1", state.upstream), request).await {
            Some(response) => {
                state.counts.forwarded.fetch_add(1, Ordering::Relaxed);
                match fault {
                    Fault::ModifiedBy(user) => modified_by(response, user).await,
                    _ => response,
                }
            }
            None => aws_error(
                StatusCode::BAD_GATEWAY,
                "InternalServerError",
                "moto unreachable",
            ),
        },
    )
}

/// The token [`Fault::RepeatedNextToken`] always answers, and the prefix of those
/// [`Fault::EndlessListing`] answers.
const PROXY_TOKEN: &str = "fault-proxy-token";

/// A listing page under [`Fault::RepeatedNextToken`] or [`Fault::EndlessListing`]: a request
/// carrying one of the proxy's tokens is forwarded without it (moto answers its first page), and
/// the answer always carries a token.
async fn endless(state: &State, fault: Fault, request: Request<Bytes>) -> Response<Full<Bytes>> {
    let (mut parts, body) = request.into_parts();
    let mut document = serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default();
    let asked = document
        .get("NextToken")
        .and_then(|t| t.as_str())
        .and_then(|t| t.strip_prefix(PROXY_TOKEN))
        .map(|n| n.trim_start_matches('-').to_owned());
    if asked.is_some()
        && let Some(object) = document.as_object_mut()
    {
        object.remove("NextToken");
    }
    let body = Bytes::from(document.to_string());
    parts.headers.insert(
        http::header::CONTENT_LENGTH,
        HeaderValue::from(body.len() as u64),
    );
    let Some(response) = forward(
        ("127.0.0.1", state.upstream),
        Request::from_parts(parts, body),
    )
    .await
    else {
        return aws_error(
            StatusCode::BAD_GATEWAY,
            "InternalServerError",
            "moto unreachable",
        );
    };
    state.counts.forwarded.fetch_add(1, Ordering::Relaxed);
    let token = match fault {
        Fault::EndlessListing => format!(
            "{PROXY_TOKEN}-{}",
            state.tokens.fetch_add(1, Ordering::Relaxed) + 1
        ),
        _ => PROXY_TOKEN.to_owned(),
    };
    edit_json(response, |document| {
        if let (Fault::EndlessListing, Some(page)) = (fault, asked.as_deref())
            && let Some(parameters) = document
                .get_mut("Parameters")
                .and_then(|p| p.as_array_mut())
        {
            for parameter in parameters {
                if let Some(name) = parameter.get_mut("Name")
                    && let Some(text) = name.as_str()
                {
                    *name = format!("{text}-p{page}").into();
                }
            }
        }
        if let Some(object) = document.as_object_mut() {
            object.insert("NextToken".to_owned(), token.into());
        }
    })
    .await
}

/// `response` with its JSON body changed by `edit` (unchanged if the body is not JSON).
async fn edit_json(
    response: Response<Full<Bytes>>,
    edit: impl FnOnce(&mut serde_json::Value),
) -> Response<Full<Bytes>> {
    let (mut parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let Ok(mut document) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Response::from_parts(parts, Full::new(bytes));
    };
    edit(&mut document);
    parts.headers.remove(http::header::CONTENT_LENGTH);
    Response::from_parts(parts, Full::new(Bytes::from(document.to_string())))
}

/// `response` with `LastModifiedUser` set to `user` in each of its `Parameters` (and
/// `Parameter`).
async fn modified_by(response: Response<Full<Bytes>>, user: &str) -> Response<Full<Bytes>> {
    let (mut parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let Ok(mut document) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Response::from_parts(parts, Full::new(bytes));
    };
    let mut stamp = |parameter: &mut serde_json::Value| {
        if let Some(object) = parameter.as_object_mut() {
            object.insert("LastModifiedUser".to_owned(), user.into());
        }
    };
    if let Some(parameters) = document
        .get_mut("Parameters")
        .and_then(|p| p.as_array_mut())
    {
        parameters.iter_mut().for_each(&mut stamp);
    }
    if let Some(parameter) = document.get_mut("Parameter") {
        stamp(parameter);
    }
    let body = Bytes::from(document.to_string());
    parts.headers.remove(http::header::CONTENT_LENGTH);
    Response::from_parts(parts, Full::new(body))
}

/// Sends `request` to `upstream` on a fresh connection and reads the whole answer; `None` when
/// the upstream cannot be reached or fails mid-answer. Shared by the testkit's proxies.
pub(crate) async fn forward(
    upstream: impl tokio::net::ToSocketAddrs,
    request: Request<Bytes>,
) -> Option<Response<Full<Bytes>>> {
    let (parts, body) = request.into_parts();
    let stream = TcpStream::connect(upstream).await.ok()?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(connection);
    let response = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await
        .ok()?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.ok()?.to_bytes();
    Some(Response::from_parts(parts, Full::new(body)))
}
