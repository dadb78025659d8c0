//! The local API: HTTP/1.1 on 127.0.0.1, usable from any runtime. Paths, headers and bodies
//! are the contract in [`flags::wire`]:
//!
//! - `GET /v1/flags`: the whole snapshot, with an `ETag` of its content and the fetch time in
//!   `X-SSM-Flags-Fetched-At`; `If-None-Match` answers 304 (with the fetch time too). With
//!   `Prefer: wait=N` (RFC 7240) as well, a request for the snapshot it already holds is held
//!   until the snapshot changes (200) or `N` seconds pass (304), at most [`MAX_WAIT`]; the answer
//!   says `Preference-Applied: wait=N` when it was held. At most [`MAX_WAITERS`] requests are
//!   held at once (more are answered at once, without that header); SHUTDOWN or SIGTERM releases
//!   them all at once.
//! - `GET /v1/flags/{name}?user_id=…&region=…`: one flag evaluated with the library's rules.
//! - `GET /v1/health`: `ok`, `stale`, `degraded` or `fallback`, version and age.
//!
//! Every request must carry the token in `X-SSM-Flags-Token` (`SSM_FLAGS_TOKEN`, else
//! `AWS_SESSION_TOKEN`, else a generated one shared through a file), as AWS's own extensions
//! require, against SSRF: the API is never open.

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flags::Context;
use flags::wire::{
    ErrorDoc, EvaluationDoc, FETCHED_AT_HEADER, FLAG_PATH_PREFIX, FLAGS_PATH, HEALTH_PATH,
    HealthDoc, MAX_WAIT_SECONDS, PREFER_HEADER, PREFERENCE_APPLIED_HEADER as PREFERENCE_APPLIED,
    TOKEN_HEADER, rfc3339,
};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, HOST, IF_NONE_MATCH};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::Value;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::guard::{Admitted, Connections, HEADER_TIMEOUT, HeaderDeadline};
use crate::listener::Listener;
use crate::ofrep;
use crate::snapshot::{Served, Shared};

/// Request-header buffer limit; larger requests are refused with 431.
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Connections served at once; more are closed at once. Every process of a function (worker
/// processes included) needs one kept-alive connection: 256 is far above any real count.
pub const MAX_CONNECTIONS: usize = 256;
/// Requests held at once waiting for a change: half the connections, so that held requests
/// never starve ordinary ones.
pub const MAX_WAITERS: usize = MAX_CONNECTIONS / 2;
/// How long an OFREP request's body may take to arrive once its headers have: a body is not
/// headers (the header deadline stops at them), but it is bounded too.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a request is held (`Prefer: wait=N` above it is cut to it).
pub const MAX_WAIT: Duration = Duration::from_secs(MAX_WAIT_SECONDS);

/// The API's state: the published snapshot and the token every request must carry.
#[derive(Clone)]
pub struct Api {
    shared: Shared,
    token: Arc<str>,
    waiters: Arc<Semaphore>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("token", &"(set)")
            .finish_non_exhaustive()
    }
}

impl Api {
    /// An API over `shared`; every request must carry `token` (it is never open).
    pub fn new(shared: Shared, token: String) -> Self {
        Self {
            shared,
            token: Arc::from(token),
            waiters: Arc::new(Semaphore::new(MAX_WAITERS)),
        }
    }

    /// Answers a `POST` on the OFREP paths (see [`crate::ofrep`]): the same Host and token
    /// rules as every request, a body of at most [`ofrep::MAX_BODY_BYTES`].
    pub async fn respond_ofrep<B>(&self, request: Request<B>) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        if let Err(problem) = check_host(&request) {
            return host_refused(problem);
        }
        if !self.authorized(&request) {
            return error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong X-SSM-Flags-Token header (configure your OFREP provider to send it)",
            );
        }
        let (parts, body) = request.into_parts();
        let too_large = || {
            closing(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!(
                    "OFREP request bodies are limited to {} bytes",
                    ofrep::MAX_BODY_BYTES
                ),
            ))
        };
        let announced = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<usize>().ok());
        if announced.is_some_and(|n| n > ofrep::MAX_BODY_BYTES) {
            return too_large();
        }
        let limited = http_body_util::Limited::new(body, ofrep::MAX_BODY_BYTES);
        let Ok(collected) = tokio::time::timeout(BODY_TIMEOUT, BodyExt::collect(limited)).await
        else {
            return closing(error(
                StatusCode::REQUEST_TIMEOUT,
                &format!(
                    "the request body did not arrive within {} s",
                    BODY_TIMEOUT.as_secs()
                ),
            ));
        };
        let body = match collected {
            Ok(collected) => collected.to_bytes(),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                return too_large();
            }
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("cannot read the body: {e}"),
                );
            }
        };
        let served = self.shared.load();
        let path = parts.uri.path();
        let key = match path.strip_prefix(ofrep::EVALUATE_FLAG_PREFIX) {
            Some(encoded) => match percent_encoding::percent_decode_str(encoded).decode_utf8() {
                Ok(key) => Some(key.into_owned()),
                Err(_) => {
                    return error(StatusCode::BAD_REQUEST, "the flag key is not valid UTF-8");
                }
            },
            None if path == ofrep::EVALUATE_FLAGS => None,
            None => {
                return error(
                    StatusCode::NOT_FOUND,
                    &format!(
                        "no such OFREP endpoint: use {}{{key}} or {}",
                        ofrep::EVALUATE_FLAG_PREFIX,
                        ofrep::EVALUATE_FLAGS
                    ),
                );
            }
        };
        let context = match ofrep::RequestContext::from_body(&body) {
            Ok(context) => context,
            Err(bad) => {
                let mut doc =
                    serde_json::json!({"errorCode": bad.code, "errorDetails": bad.details});
                if let Some(key) = &key {
                    doc["key"] = key.as_str().into();
                }
                return json_doc(StatusCode::BAD_REQUEST, &doc);
            }
        };
        match key {
            Some(key) => {
                let (status, doc) = ofrep::evaluate_one(&served.snapshot, &key, &context);
                json_doc(StatusCode::from_u16(status).unwrap_or(StatusCode::OK), &doc)
            }
            None => {
                let etag = ofrep::bulk_etag(&served.etag, &context);
                let matches = if_none_match(&parts.headers).any(|tag| tag == etag);
                let mut response = if matches {
                    not_modified()
                } else {
                    json_doc(
                        StatusCode::OK,
                        &ofrep::evaluate_all(&served.snapshot, &context),
                    )
                };
                if let Ok(value) = HeaderValue::from_str(&etag) {
                    response.headers_mut().insert(ETAG, value);
                }
                response
            }
        }
    }

    /// Answers one request, holding a long poll (`Prefer: wait=N` on a snapshot the client
    /// already has) until the snapshot changes, the wait ends or the API closes.
    pub async fn respond<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
        let Some(wait) = requested_wait(request) else {
            return self.handle(request);
        };
        // Subscribed before looking: a change between the look and the wait is not missed.
        let mut changes = self.shared.subscribe();
        let response = self.handle(request);
        // Only a 304 waits: it is authorized, on the snapshot, and the client is current.
        if response.status() != StatusCode::NOT_MODIFIED {
            return response;
        }
        if changes.closing() {
            return closing(response);
        }
        let Ok(_slot) = Arc::clone(&self.waiters).try_acquire_owned() else {
            // Too many held: answered now, without Preference-Applied (the client pauses).
            return response;
        };
        let wait = wait.min(MAX_WAIT);
        tokio::select! {
            () = changes.changed() => {}
            () = tokio::time::sleep(wait) => {}
        }
        let mut response = self.handle(request);
        if let Ok(value) = HeaderValue::from_str(&format!("wait={}", wait.as_secs())) {
            response.headers_mut().insert(PREFERENCE_APPLIED, value);
        }
        if changes.closing() {
            return closing(response);
        }
        response
    }

    /// Answers one request. No I/O: reads the current snapshot only.
    pub fn handle<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                "only GET is supported (and POST on the OFREP paths, /ofrep/v1/evaluate/flags…)",
            );
        }
        if let Err(problem) = check_host(request) {
            // A page in a browser can reach 127.0.0.1 by DNS rebinding; its Host is its own name.
            return host_refused(problem);
        }
        if has_body(request) {
            // Only GET is served: a body is never read, so it is never accepted either.
            let mut response = error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request bodies are not accepted (only GET is served)",
            );
            response
                .headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
        if !self.authorized(request) {
            return error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong X-SSM-Flags-Token header (SSM_FLAGS_TOKEN, else the function's AWS_SESSION_TOKEN, else the token in SSM_FLAGS_TOKEN_FILE)",
            );
        }
        let served = self.shared.load();
        let path = request.uri().path();
        if path == FLAGS_PATH || path == FLAG_PATH_PREFIX {
            return all_flags(&served, request);
        }
        if path == HEALTH_PATH {
            return health(&served);
        }
        match path.strip_prefix(FLAG_PATH_PREFIX) {
            Some(encoded) => one_flag(&served, encoded, request.uri().query()),
            None => error(
                StatusCode::NOT_FOUND,
                &format!(
                    "no such endpoint: use {FLAGS_PATH}, {FLAG_PATH_PREFIX}{{name}} or {HEALTH_PATH}"
                ),
            ),
        }
    }

    /// Whether `request` carries the API's token (compared in constant time).
    pub fn authorized<B>(&self, request: &Request<B>) -> bool {
        let expected = &self.token;
        request
            .headers()
            .get(TOKEN_HEADER)
            .is_some_and(|given| bool::from(given.as_bytes().ct_eq(expected.as_bytes())))
    }
}

/// The wait a request asks for in `Prefer: wait=N` (RFC 7240: whole seconds; several
/// preferences may share the header, each possibly with `;` parameters). `None`: no wait, 0 or
/// not a number.
fn requested_wait<B>(request: &Request<B>) -> Option<Duration> {
    request
        .headers()
        .get_all(PREFER_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|preference| {
            let token = preference.split(';').next()?.trim();
            let (name, value) = token.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("wait")
                .then(|| value.trim().trim_matches('"').parse::<u64>().ok())
                .flatten()
        })
        .next()
        .filter(|&seconds| seconds > 0)
        .map(Duration::from_secs)
}

/// The answer of a request released because the API is closing: the connection closes with it.
fn closing(mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    response
        .headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Whether the request announces a body (`Content-Length` above 0, or chunked).
fn has_body<B>(request: &Request<B>) -> bool {
    let headers = request.headers();
    headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// Why a request's host is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostProblem {
    /// Well-formed, but not a loopback name or address: 403 (DNS rebinding, a proxy's request).
    NotLoopback,
    /// Missing, repeated, or not a valid host: 400.
    Malformed(&'static str),
}

/// The host a request names, judged: the authority of an absolute-form target (RFC 9112
/// §3.2.2: it wins over `Host`), else the one `Host` header. Loopback is `localhost`,
/// `127.x.x.x` or `[::1]`, with or without a port.
fn check_host<B>(request: &Request<B>) -> Result<(), HostProblem> {
    let mut hosts = request.headers().get_all(HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() {
        return Err(HostProblem::Malformed("more than one Host header"));
    }
    if header.is_none() && request.version() != http::Version::HTTP_10 {
        // RFC 9112 §3.2: an HTTP/1.1 request without Host is a bad request, absolute-form or not.
        return Err(HostProblem::Malformed("no Host header"));
    }
    let authority = match request.uri().authority() {
        Some(authority) => authority.clone(),
        None => {
            let value = header.ok_or(HostProblem::Malformed("no Host header"))?;
            let text = value
                .to_str()
                .map_err(|_| HostProblem::Malformed("the Host header is not ASCII"))?;
            text.parse::<http::uri::Authority>()
                .map_err(|_| HostProblem::Malformed("the Host header is not a valid host"))?
        }
    };
    if authority.as_str().contains('@') {
        return Err(HostProblem::Malformed(
            "a host must not carry user information",
        ));
    }
    let host = authority.host();
    let port = authority.as_str().get(host.len()..).unwrap_or_default();
    if !(port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| p.parse::<u16>().is_ok()))
    {
        return Err(HostProblem::Malformed("not a valid port"));
    }
    let loopback = match host.strip_prefix('[') {
        Some(bracketed) => bracketed
            .strip_suffix(']')
            .and_then(|inner| inner.parse::<std::net::Ipv6Addr>().ok())
            .ok_or(HostProblem::Malformed("not a valid bracketed IPv6 address"))?
            .is_loopback(),
        None if host.contains(['[', ']', ':']) => {
            return Err(HostProblem::Malformed("not a valid host"));
        }
        None => {
            host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::Ipv4Addr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    };
    if loopback {
        Ok(())
    } else {
        Err(HostProblem::NotLoopback)
    }
}

/// The answer to a request whose host is refused.
fn host_refused(problem: HostProblem) -> Response<Full<Bytes>> {
    match problem {
        HostProblem::NotLoopback => error(
            StatusCode::FORBIDDEN,
            "the request's host (its Host header, or the authority of an absolute URI) must be a loopback name or address (localhost, 127.0.0.1, [::1])",
        ),
        HostProblem::Malformed(why) => closing(error(
            StatusCode::BAD_REQUEST,
            &format!("bad request: {why}"),
        )),
    }
}

fn json_response(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A typed wire document as a JSON answer.
fn json_doc(status: StatusCode, doc: &impl Serialize) -> Response<Full<Bytes>> {
    // The wire documents hold strings, numbers and JSON values: they always serialize.
    json_response(
        status,
        Bytes::from(serde_json::to_vec(doc).unwrap_or_default()),
    )
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json_doc(status, &ErrorDoc::new(message))
}

/// The entity tags listed in a request's `If-None-Match` headers, weak ones as strong.
fn if_none_match(headers: &http::HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
}

/// `304 Not Modified`, with no body.
fn not_modified() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    response
}

fn all_flags<B>(served: &Served, request: &Request<B>) -> Response<Full<Bytes>> {
    let etag = HeaderValue::from_str(&served.etag).unwrap_or(HeaderValue::from_static("\"0\""));
    let matches = if_none_match(request.headers()).any(|tag| tag == served.etag || tag == "*");
    let mut response = if matches {
        not_modified()
    } else {
        json_response(StatusCode::OK, served.body.clone())
    };
    let headers = response.headers_mut();
    headers.insert(ETAG, etag);
    // Freshness is not content: it travels on every answer, 304 included.
    if let Some(at) = served.snapshot.fetched_at()
        && let Ok(value) = HeaderValue::from_str(&rfc3339(at))
    {
        headers.insert(FETCHED_AT_HEADER, value);
    }
    response
}

fn one_flag(served: &Served, encoded: &str, query: Option<&str>) -> Response<Full<Bytes>> {
    let Ok(name) = percent_encoding::percent_decode_str(encoded).decode_utf8() else {
        return error(
            StatusCode::BAD_REQUEST,
            "the flag name is not valid UTF-8 once percent-decoded",
        );
    };
    let mut user_id: Option<String> = None;
    let mut region: Option<String> = None;
    for (key, value) in query_pairs(query.unwrap_or_default()) {
        match key.as_ref() {
            "user_id" => user_id = Some(value.into_owned()),
            "region" => region = Some(value.into_owned()),
            _ => {}
        }
    }
    let Some(entry) = served.snapshot.entry(&name) else {
        return json_doc(
            StatusCode::NOT_FOUND,
            &ErrorDoc::for_flag(format!("flag {name:?} not found"), &name),
        );
    };
    let mut context = Context::new();
    if let Some(user) = user_id.as_deref() {
        context = context.with_user(user);
    }
    if let Some(region) = region.as_deref() {
        context = context.with_region(region);
    }
    let evaluation = served.snapshot.get(&name).evaluate(&context);
    let value = entry.value().map_or(Value::Null, flags::FlagValue::to_json);
    json_doc(
        StatusCode::OK,
        &EvaluationDoc::new(&name, evaluation, value),
    )
}

/// The `key=value` pairs of a query string, percent-decoded as RFC 3986 says: `+` is a literal
/// plus (`a+b@x.com` is that user), not a space as in HTML forms.
fn query_pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    let decode = |text| percent_encoding::percent_decode_str(text).decode_utf8_lossy();
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(move |pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
}

fn health(served: &Served) -> Response<Full<Bytes>> {
    json_doc(
        StatusCode::OK,
        &HealthDoc {
            status: served.status(),
            version: served.snapshot.version(),
            age_seconds: served.snapshot.age().map(|a| a.as_secs_f64()),
            flags: served.snapshot.len(),
            invalid: served.invalid,
            last_error: served.last_error.clone(),
            undecryptable: Vec::new(),
            undecryptable_count: 0,
        }
        .with_undecryptable(&served.undecryptable),
    )
}

/// Serves `api` on `listener` (TCP on loopback, or a Unix socket) until `shutdown` completes,
/// then releases the held requests. TCP connections from outside loopback are closed unanswered.
/// At most [`MAX_CONNECTIONS`] are served at once: when all are taken, one that never
/// authenticated makes room for a new one, else the authenticated one idle the longest; a
/// connection with no authenticated request within [`crate::guard::AUTH_TIMEOUT`] of its accept
/// is closed, and a request whose headers take longer than [`HEADER_TIMEOUT`] from their first
/// byte is cut (see [`crate::guard`]). The accept loop never waits on a connection.
pub async fn serve<L: Listener>(listener: L, api: Api, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let connections = Connections::new(MAX_CONNECTIONS);
    let mut refused_logged = false;
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => {
                api.shared.close();
                return;
            }
            accepted = listener.next() => match accepted {
                Ok(Some(stream)) => stream,
                Ok(None) => continue,
                Err(err) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %err, "local API accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let accepted = Instant::now();
        let Some(admitted) = connections.admit() else {
            if !std::mem::replace(&mut refused_logged, true) {
                tracing::warn!(
                    max = MAX_CONNECTIONS,
                    "local API connections at their limit, every one serving a request: closing new ones"
                );
            }
            continue;
        };
        refused_logged = false;
        tokio::spawn(serve_connection(stream, api.clone(), admitted, accepted));
    }
}

/// Serves one accepted connection until it ends, is evicted, or fails to authenticate in time.
async fn serve_connection<S>(stream: S, api: Api, mut admitted: Admitted, accepted: Instant)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    if !admitted.ready().await {
        // The connection evicted for it did not let go in time, or it was evicted itself.
        return;
    }
    let tracker = Arc::clone(&admitted.tracker);
    let service = {
        let tracker = Arc::clone(&tracker);
        service_fn(move |request: Request<hyper::body::Incoming>| {
            let (api, tracker) = (api.clone(), Arc::clone(&tracker));
            async move {
                tracker.request_started(api.authorized(&request));
                let response = if request.method() == Method::POST
                    && request.uri().path().starts_with(ofrep::PATH_PREFIX)
                {
                    api.respond_ofrep(request).await
                } else {
                    api.respond(&request).await
                };
                tracker.request_done();
                Ok::<_, Infallible>(response)
            }
        })
    };
    // hyper's header-read timeout also counts idle keep-alive time, and the handler's
    // connection idles (frozen) between invocations: ours counts from a request's first byte.
    let guarded = HeaderDeadline::new(stream, HEADER_TIMEOUT, Arc::clone(&tracker));
    let connection = http1::Builder::new()
        .max_buf_size(MAX_HEADER_BYTES)
        .serve_connection(TokioIo::new(guarded), service);
    tokio::select! {
        ended = connection => {
            if let Err(err) = ended {
                tracing::debug!(error = %err, "local API connection ended with an error");
            }
        }
        () = tracker.closed(accepted) => {
            tracing::debug!(
                authenticated = tracker.is_authenticated(),
                "local API connection closed: no authenticated request in time, or evicted for a new one"
            );
        }
    }
    drop(admitted);
}

#[cfg(test)]
mod tests {
    use super::*;
    use flags::wire::{FLAG_PATH_PREFIX, Status};
    use flags::{FlagEntry, Parameter, ParameterKind, Snapshot};
    use http_body_util::BodyExt;
    use serde_json::json;

    /// The token of `api(None)`, sent by `get` unless a test sends its own.
    const TEST_TOKEN: &str = "test-token";

    fn api(token: Option<&str>) -> Api {
        let params: Vec<Parameter> = [
            ("dark-mode", "true"),
            (
                "checkout/v2",
                r#"{"enabled": true, "allowed_user_ids": ["alice"]}"#,
            ),
            (
                "new-analytics",
                r#"{"enabled": true, "rollout_percentage": 25, "allowed_regions": ["us-east-1"]}"#,
            ),
            ("broken", "{nope"),
        ]
        .into_iter()
        .map(|(flag, value)| Parameter {
            flag: flag.into(),
            name: format!("/app/features/{flag}"),
            kind: ParameterKind::String,
            value: value.into(),
            version: 3,
        })
        .collect();
        let snapshot = Snapshot::new(7, Status::Ok, params.iter().map(FlagEntry::from_parameter))
            .with_fetched_at(Some(std::time::SystemTime::now()));
        let served = Served::new(1, snapshot, None);
        Api::new(Shared::new(served), token.unwrap_or(TEST_TOKEN).to_owned())
    }

    fn get(api: &Api, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, Value, http::HeaderMap) {
        let mut builder = Request::get(uri);
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            builder = builder.header("host", "127.0.0.1:2774");
        }
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(TOKEN_HEADER))
        {
            builder = builder.header(TOKEN_HEADER, TEST_TOKEN);
        }
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let response = api.handle(&builder.body(()).expect("request"));
        let (parts, body) = response.into_parts();
        let bytes = futures_bytes(body);
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON body")
        };
        (parts.status, value, parts.headers)
    }

    fn futures_bytes(body: Full<Bytes>) -> Bytes {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(body.collect())
            .map(|c| c.to_bytes())
            .unwrap_or_default()
    }

    #[test]
    fn all_flags_with_etag_and_304() {
        let api = api(None);
        let (status, body, headers) = get(&api, FLAGS_PATH, &[]);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["version"], 7);
        assert_eq!(body["flags"]["dark-mode"]["value"], true);
        assert_eq!(
            body["flags"]["checkout/v2"]["value"]["allowed_user_ids"][0],
            "alice"
        );
        assert!(body["flags"]["broken"]["error"].is_string());
        let etag = headers
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .expect("etag")
            .to_owned();
        let fetched_at = headers
            .get(FETCHED_AT_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(flags::wire::parse_time)
            .expect("the fetch time on a 200");
        // A later fetch of the same flags: same tag, so a 304, carrying the new fetch time.
        let later = fetched_at + std::time::Duration::from_secs(30);
        api.shared.load().snapshot.mark_fetched(later);
        let (status, body, headers) = get(&api, FLAGS_PATH, &[("if-none-match", &etag)]);
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert_eq!(body, Value::Null);
        assert_eq!(
            headers
                .get(FETCHED_AT_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(flags::wire::parse_time),
            Some(later)
        );
        assert_eq!(
            headers.get(ETAG).and_then(|v| v.to_str().ok()),
            Some(etag.as_str())
        );
        let (status, _, _) = get(&api, FLAGS_PATH, &[("if-none-match", "\"other\"")]);
        assert_eq!(status, StatusCode::OK);
    }

    #[test]
    fn one_flag_is_evaluated_for_the_query() {
        let api = api(None);
        let (status, body, _) = get(
            &api,
            &format!("{FLAG_PATH_PREFIX}checkout%2Fv2?user_id=alice"),
            &[],
        );
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["name"], "checkout/v2");
        assert_eq!(body["enabled"], true);
        assert_eq!(body["reason"], "allow_list");
        let (_, body, _) = get(
            &api,
            &format!("{FLAG_PATH_PREFIX}checkout/v2?user_id=bob"),
            &[],
        );
        assert_eq!(
            (body["enabled"].clone(), body["reason"].clone()),
            (json!(false), json!("allow_list"))
        );
        // alice is bucket 1: in the 25% rollout, in region.
        let (_, body, _) = get(
            &api,
            &format!("{FLAG_PATH_PREFIX}new-analytics?user_id=alice&region=us-east-1"),
            &[],
        );
        assert_eq!(body["enabled"], true);
        assert_eq!(body["reason"], "rollout");
        let (_, body, _) = get(
            &api,
            &format!("{FLAG_PATH_PREFIX}new-analytics?user_id=alice&region=eu-west-1"),
            &[],
        );
        assert_eq!(body["reason"], "region");
        let (_, body, _) = get(&api, &format!("{FLAG_PATH_PREFIX}broken"), &[]);
        assert_eq!(
            (body["enabled"].clone(), body["reason"].clone()),
            (json!(false), json!("error"))
        );
    }

    #[test]
    fn a_plus_in_the_query_is_a_plus_and_an_empty_user_is_no_user() {
        let api = api(None);
        // checkout/v2 allows only "alice"; a user named "a+b@x.com" is not "a b@x.com".
        let plus = |q: &str| {
            get(
                &api,
                &format!("{FLAG_PATH_PREFIX}checkout%2Fv2?user_id={q}"),
                &[],
            )
            .1
        };
        assert_eq!(
            plus("a+b@x.com")["detail"],
            "user is not in `allowed_user_ids`"
        );
        assert_eq!(
            query_pairs("user_id=a+b%40x.com&region=us%2Deast-1&flag").collect::<Vec<_>>(),
            [
                (Cow::from("user_id"), Cow::from("a+b@x.com")),
                (Cow::from("region"), Cow::from("us-east-1")),
                (Cow::from("flag"), Cow::from("")),
            ]
        );
        // new-analytics is a 25% rollout: an empty user id is no user (off), never one bucket.
        let (_, body, _) = get(
            &api,
            &format!("{FLAG_PATH_PREFIX}new-analytics?user_id=&region=us-east-1"),
            &[],
        );
        assert_eq!(
            (body["enabled"].clone(), body["reason"].clone()),
            (json!(false), json!("rollout"))
        );
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("no user id")),
            "{body}"
        );
    }

    #[test]
    fn unknown_flags_and_traversal_are_404() {
        let api = api(None);
        for uri in [
            &format!("{FLAG_PATH_PREFIX}nope"),
            &format!("{FLAG_PATH_PREFIX}..%2F..%2Fetc%2Fpasswd"),
            &format!("{FLAG_PATH_PREFIX}../v1/health"),
        ] {
            let (status, body, _) = get(&api, uri, &[]);
            assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
            assert!(
                body["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("not found")),
                "{uri}: {body}"
            );
        }
        let (status, _, _) = get(&api, "/etc/passwd", &[]);
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, _) = get(&api, &format!("{FLAG_PATH_PREFIX}%FF"), &[]);
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn health_reports_status_version_and_age() {
        let (status, body, _) = get(&api(None), HEALTH_PATH, &[]);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "ok");
        assert_eq!(body["version"], 7);
        assert_eq!(body["flags"], 4);
        assert_eq!(body["invalid"], 1);
        assert!(body["age_seconds"].as_f64().is_some_and(|a| a < 5.0));
    }

    #[test]
    fn the_token_is_required_on_every_route() {
        let api = api(Some("secret-token"));
        for uri in [
            FLAGS_PATH,
            &format!("{FLAG_PATH_PREFIX}dark-mode"),
            HEALTH_PATH,
        ] {
            let bare = Request::get(uri)
                .header("host", "127.0.0.1")
                .body(())
                .expect("request");
            assert_eq!(
                api.handle(&bare).status(),
                StatusCode::UNAUTHORIZED,
                "{uri}: no token"
            );
            let (status, body, _) = get(&api, uri, &[]);
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
            assert!(
                body["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("X-SSM-Flags-Token"))
            );
            assert!(
                !body.to_string().contains("secret-token"),
                "the token is never echoed"
            );
            let (status, _, _) = get(&api, uri, &[(TOKEN_HEADER, "wrong")]);
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
            let (status, _, _) = get(&api, uri, &[(TOKEN_HEADER, "secret-token")]);
            assert_eq!(status, StatusCode::OK, "{uri}");
        }
    }

    #[test]
    fn only_loopback_hosts_are_served() {
        let api = api(None);
        for host in [
            "127.0.0.1",
            "127.0.0.1:2774",
            "localhost:2774",
            "LOCALHOST",
            "[::1]:2774",
            "[::1]",
            "127.1.2.3:80",
        ] {
            let (status, _, _) = get(&api, HEALTH_PATH, &[("host", host)]);
            assert_eq!(status, StatusCode::OK, "{host}");
        }
        for host in [
            "evil.example.com",
            "evil.example.com:2774",
            "localhost.evil.example.com",
            "127.0.0.1.nip.io",
            "10.0.0.1:2774",
            "[::2]",
        ] {
            let (status, body, _) = get(&api, HEALTH_PATH, &[("host", host)]);
            assert_eq!(status, StatusCode::FORBIDDEN, "{host}");
            assert!(
                body["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("loopback"))
            );
        }
        // Malformed hosts are bad requests, never guessed at.
        for host in [
            "",
            "[[::1]]",
            "[::1",
            "::1",
            "user@localhost",
            "localhost:port",
        ] {
            let (status, _, headers) = get(&api, HEALTH_PATH, &[("host", host)]);
            assert_eq!(status, StatusCode::BAD_REQUEST, "{host:?}");
            assert_eq!(
                headers.get("connection").map(|v| v.as_bytes()),
                Some(&b"close"[..])
            );
        }
    }

    #[test]
    fn an_absolute_target_is_judged_by_its_authority_and_one_host_only() {
        let api = api(None);
        // RFC 9112 §3.2.2: the target's authority wins over Host.
        let (status, _, _) = get(&api, "http://evil.com/v1/health", &[("host", "localhost")]);
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _, _) = get(
            &api,
            "http://127.0.0.1:2774/v1/health",
            &[("host", "evil.com")],
        );
        assert_eq!(status, StatusCode::OK);
        let request = Request::get(HEALTH_PATH)
            .header("host", "localhost")
            .header("host", "evil.com")
            .header(TOKEN_HEADER, TEST_TOKEN)
            .body(())
            .expect("request");
        assert_eq!(api.handle(&request).status(), StatusCode::BAD_REQUEST);
        let twice_loopback = Request::get(HEALTH_PATH)
            .header("host", "localhost")
            .header("host", "localhost")
            .header(TOKEN_HEADER, TEST_TOKEN)
            .body(())
            .expect("request");
        assert_eq!(
            api.handle(&twice_loopback).status(),
            StatusCode::BAD_REQUEST,
            "duplicate Host headers, even equal ones"
        );
    }

    #[test]
    fn only_get_is_allowed() {
        let api = api(None);
        let request = Request::post(FLAGS_PATH).body(()).expect("request");
        assert_eq!(
            api.handle(&request).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    fn long_poll(api: &Api, etag: &str, wait: &str) -> Request<()> {
        let _ = api;
        Request::get(FLAGS_PATH)
            .header("host", "127.0.0.1:2774")
            .header(TOKEN_HEADER, TEST_TOKEN)
            .header(IF_NONE_MATCH, etag)
            .header("prefer", wait)
            .body(())
            .expect("request")
    }

    fn republished(api: &Api) {
        let current = api.shared.load();
        let snapshot = current.snapshot.with_status(Status::Stale);
        api.shared
            .publish(Served::new(1, snapshot, Some("down".into())));
    }

    #[tokio::test]
    async fn a_long_poll_is_held_until_the_snapshot_changes() {
        let api = api(None);
        let etag = api.shared.load().etag.clone();
        let held = {
            let api = api.clone();
            let etag = etag.clone();
            tokio::spawn(async move { api.respond(&long_poll(&api, &etag, "wait=30")).await })
        };
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!held.is_finished(), "held while nothing changes");
        republished(&api);
        let response = tokio::time::timeout(Duration::from_secs(5), held)
            .await
            .expect("answered at the change")
            .expect("task");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[PREFERENCE_APPLIED], "wait=30");
        assert_ne!(response.headers()[ETAG], etag.as_str());
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_poll_without_a_change_ends_in_304_after_its_wait_capped_at_the_maximum() {
        let api = api(None);
        let etag = api.shared.load().etag.clone();
        let started = tokio::time::Instant::now();
        let response = api
            .respond(&long_poll(&api, &etag, "respond-async, wait=7"))
            .await;
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(response.headers()[PREFERENCE_APPLIED], "wait=7");
        assert_eq!(started.elapsed(), Duration::from_secs(7));
        let started = tokio::time::Instant::now();
        let response = api.respond(&long_poll(&api, &etag, "wait=100000")).await;
        assert_eq!(started.elapsed(), MAX_WAIT);
        assert_eq!(response.headers()[PREFERENCE_APPLIED], "wait=300");
    }

    #[tokio::test]
    async fn only_an_authorized_request_for_the_held_snapshot_waits() {
        let api = api(None);
        // A stale tag: the client is behind, answered at once.
        let response = tokio::time::timeout(
            Duration::from_secs(5),
            api.respond(&long_poll(&api, "\"old\"", "wait=30")),
        )
        .await
        .expect("not held");
        assert_eq!(response.status(), StatusCode::OK);
        // No token: refused at once, never held.
        let etag = api.shared.load().etag.clone();
        let request = Request::get(FLAGS_PATH)
            .header("host", "127.0.0.1")
            .header(IF_NONE_MATCH, etag.as_str())
            .header("prefer", "wait=30")
            .body(())
            .expect("request");
        let response = tokio::time::timeout(Duration::from_secs(5), api.respond(&request))
            .await
            .expect("not held");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        // wait=0 or garbage: an ordinary conditional GET.
        for prefer in ["wait=0", "wait=soon", "handling=lenient"] {
            let response = tokio::time::timeout(
                Duration::from_secs(5),
                api.respond(&long_poll(&api, &etag, prefer)),
            )
            .await
            .expect("not held");
            assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{prefer}");
            assert!(!response.headers().contains_key(PREFERENCE_APPLIED));
        }
    }

    #[tokio::test]
    async fn held_requests_are_bounded_and_released_at_once_when_the_api_closes() {
        let api = api(None);
        let etag = api.shared.load().etag.clone();
        let mut held = Vec::new();
        for _ in 0..MAX_WAITERS {
            let api = api.clone();
            let etag = etag.clone();
            held.push(tokio::spawn(async move {
                api.respond(&long_poll(&api, &etag, "wait=300")).await
            }));
        }
        // Let every one of them take its slot.
        while api.waiters.available_permits() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let over = tokio::time::timeout(
            Duration::from_secs(5),
            api.respond(&long_poll(&api, &etag, "wait=300")),
        )
        .await
        .expect("over the limit: answered at once");
        assert_eq!(over.status(), StatusCode::NOT_MODIFIED);
        assert!(!over.headers().contains_key(PREFERENCE_APPLIED));

        api.shared.close();
        for task in held {
            let response = tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .expect("released at close")
                .expect("task");
            assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
            assert_eq!(response.headers()[http::header::CONNECTION], "close");
        }
        // Closing: a new long poll is not held either.
        let late = tokio::time::timeout(
            Duration::from_secs(5),
            api.respond(&long_poll(&api, &etag, "wait=300")),
        )
        .await
        .expect("not held while closing");
        assert_eq!(late.headers()[http::header::CONNECTION], "close");
    }
}
