//! The local API: HTTP/1.1 on 127.0.0.1 (or a Unix socket, [`crate::listener`]), usable from any runtime. Paths, headers and bodies
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
//! - `POST /v1/track`: a conversion for an experiment ([`flags::wire::TrackDoc`]; see
//!   [`crate::experiments`]).
//!
//! Every request must carry the token in `X-SSM-Flags-Token` (`SSM_FLAGS_TOKEN`, else
//! `AWS_SESSION_TOKEN`, else a generated one shared through a file), as AWS's own extensions
//! require, against SSRF: the API is never open.
//!
//! This file is the serving and the routing: the accept loop ([`serve`]), one connection, the
//! checks every request passes (loopback host, token, no body on a `GET`) and which endpoint
//! answers. The endpoints themselves, the long poll and OFREP's are in [`handlers`].

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flags::wire::{
    ErrorDoc, FLAG_PATH_PREFIX, FLAGS_PATH, HEALTH_PATH, MAX_WAIT_SECONDS, TOKEN_HEADER, TRACK_PATH,
};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::experiments::Experiments;
use crate::guard::{Admitted, Connections, HEADER_TIMEOUT, HeaderDeadline};
use crate::listener::Listener;
use crate::ofrep;
use crate::snapshot::Shared;

pub mod handlers;

use handlers::{all_flags, health, one_flag};

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
    experiments: Arc<Experiments>,
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
            experiments: Arc::new(Experiments::off()),
        }
    }

    /// Counts the single evaluations it answers, and `POST /v1/track`, in `experiments`.
    pub fn with_experiments(mut self, experiments: Arc<Experiments>) -> Self {
        self.experiments = experiments;
        self
    }

    /// Answers one request. No I/O: reads the current snapshot only.
    pub fn handle<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                "only GET is supported (and POST on /v1/track and the OFREP paths, /ofrep/v1/evaluate/flags…)",
            );
        }
        if let Some(refused) = self.refusal(
            request,
            "SSM_FLAGS_TOKEN, else the function's AWS_SESSION_TOKEN, else the token in SSM_FLAGS_TOKEN_FILE",
        ) {
            return refused;
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
        let served = self.shared.load();
        let path = request.uri().path();
        if path == FLAGS_PATH || path == FLAG_PATH_PREFIX {
            return all_flags(&served, request);
        }
        if path == HEALTH_PATH {
            return health(&served);
        }
        match path.strip_prefix(FLAG_PATH_PREFIX) {
            Some(encoded) => self
                .experiments
                .counted(|| one_flag(&served, encoded, request.uri().query())),
            None => error(
                StatusCode::NOT_FOUND,
                &format!(
                    "no such endpoint: use {FLAGS_PATH}, {FLAG_PATH_PREFIX}{{name}} or {HEALTH_PATH}"
                ),
            ),
        }
    }

    /// The answer to a request that fails the checks every request passes before an endpoint
    /// sees it, in this order: its host is loopback (a page in a browser can reach 127.0.0.1 by
    /// DNS rebinding, but only under its own name), then it carries the token (`hint`: where the
    /// client gets it). `None`: it passes.
    pub(crate) fn refusal<B>(
        &self,
        request: &Request<B>,
        hint: &str,
    ) -> Option<Response<Full<Bytes>>> {
        if let Err(problem) = check_host(request) {
            return Some(host_refused(problem));
        }
        (!self.authorized(request)).then(|| {
            error(
                StatusCode::UNAUTHORIZED,
                &format!("missing or wrong X-SSM-Flags-Token header ({hint})"),
            )
        })
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
                let post = request.method() == Method::POST;
                let response = if post && request.uri().path().starts_with(ofrep::PATH_PREFIX) {
                    api.respond_ofrep(request).await
                } else if post && request.uri().path() == TRACK_PATH {
                    api.respond_track(request).await
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
    use flags::wire::Status;
    use flags::{FlagEntry, Parameter, ParameterKind, Snapshot};
    use http_body_util::BodyExt;
    use serde_json::Value;

    use crate::snapshot::Served;

    /// The token of `api(None)`, sent by `get` unless a test sends its own.
    pub(super) const TEST_TOKEN: &str = "test-token";

    pub(super) fn api(token: Option<&str>) -> Api {
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

    pub(super) fn get(
        api: &Api,
        uri: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value, http::HeaderMap) {
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
}
