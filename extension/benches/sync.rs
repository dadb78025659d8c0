//! Keeping the handler current, per invocation, vs the floor: a bare keep-alive loopback
//! HTTP/1.1 round trip with hyper, measured in the same run.
//!
//! - `sync/http_roundtrip_floor`: GET with `If-None-Match` answered `304` by a bare hyper server.
//! - `sync/unchanged_304`: `flags` client sync against the real local API, nothing changed.
//! - `sync/changed_200`: the same, but the whole snapshot (the seed's flags plus 26) is fetched,
//!   parsed and installed, as after a change.
//! - `per_read/in_process` vs `per_read/http_request`: a boolean flag read from the in-process
//!   snapshot vs one HTTP request to the local extension per read (`GET /v1/flags/dark-mode`, the
//!   pattern of AWS's Parameters and Secrets extension), on a kept-alive connection.

use std::convert::Infallible;
use std::hint::black_box;
use std::time::SystemTime;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use flags::ParameterKind;
use flags::client::{Client, Synced};
use flags::wire::{FLAG_PATH_PREFIX, FLAGS_PATH, Status, TOKEN_HEADER};
use flags::{FlagEntry, Parameter, Snapshot};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use ssm_flags_extension::server::{Api, serve};
use ssm_flags_extension::snapshot::{Served, Shared};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

fn parameters() -> Vec<Parameter> {
    let mut raw = vec![
        ("dark-mode".to_owned(), "true".to_owned()),
        ("new-analytics".to_owned(), r#"{"enabled": true, "rollout_percentage": 25, "allowed_regions": ["us-east-1", "us-west-2"], "excluded_user_ids": ["user-123", "user-456"]}"#.to_owned()),
        ("new-payment-processor".to_owned(), r#"{"enabled": true, "rollout_percentage": 5, "fallback_on_error": true}"#.to_owned()),
        ("new-checkout-flow".to_owned(), r#"{"enabled": true, "allowed_user_ids": ["alice"]}"#.to_owned()),
    ];
    raw.extend((0..26).map(|i| (format!("team/feature-{i}"), "false".to_owned())));
    raw.into_iter()
        .map(|(flag, value)| Parameter {
            name: format!("/myapp/prod/features/{flag}"),
            flag,
            kind: ParameterKind::String,
            value,
            version: 1,
        })
        .collect()
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// A kept-alive HTTP/1.1 connection to `addr`.
async fn keep_alive(addr: std::net::SocketAddr) -> Sender {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    sender
}

/// One GET on a kept-alive connection: status and body.
async fn get(sender: &mut Sender, path: &str, header: (&str, &str)) -> (StatusCode, Bytes) {
    sender.ready().await.expect("ready");
    let request = Request::get(path)
        .header("host", "127.0.0.1")
        .header(header.0, header.1)
        .body(Empty::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, body)
}

async fn floor_server(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let service = service_fn(|_request: Request<hyper::body::Incoming>| async {
                let mut response = Response::new(Full::new(Bytes::new()));
                *response.status_mut() = StatusCode::NOT_MODIFIED;
                response
                    .headers_mut()
                    .insert("etag", http::HeaderValue::from_static("\"1\""));
                Ok::<_, Infallible>(response)
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn bench_sync(c: &mut Criterion) {
    let rt: Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    // The floor: a bare keep-alive round trip.
    let mut floor = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(floor_server(listener));
        keep_alive(addr).await
    });

    // Ours: the real local API and the handler's client.
    let (client, store, port) = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let snapshot = Snapshot::new(
            3,
            Status::Ok,
            parameters().iter().map(FlagEntry::from_parameter),
        )
        .with_fetched_at(Some(SystemTime::now()));
        let served = Served::new(1, snapshot, None);
        tokio::spawn(serve(
            listener,
            Api::new(Shared::new(served), "token".into()),
            std::future::pending(),
        ));
        let client = Client::new(port, Some("token"), std::time::Duration::from_secs(1));
        let store = flags::Store::default();
        assert_eq!(
            client.sync_into(&store).await,
            Synced::Updated {
                version: 3,
                status: Status::Ok
            }
        );
        (client, store, port)
    });

    let mut group = c.benchmark_group("sync");
    group.bench_function("http_roundtrip_floor", |b| {
        b.iter(|| {
            let (status, _) = rt.block_on(get(&mut floor, FLAGS_PATH, ("if-none-match", "\"1\"")));
            black_box(status)
        })
    });
    group.bench_function("unchanged_304", |b| {
        b.iter(|| {
            let outcome = rt.block_on(client.sync_into(&store));
            assert_eq!(outcome, Synced::Unchanged);
        })
    });
    group.bench_function("changed_200", |b| {
        // The handler holds other flags before each sync (not timed), so every sync transfers,
        // parses and installs a snapshot it did not have: the cost of a change.
        b.iter_batched(
            || {
                store.install(flags::Snapshot::empty());
            },
            |()| {
                let outcome = rt.block_on(async {
                    client.forget().await;
                    client.sync_into(&store).await
                });
                assert_eq!(
                    outcome,
                    Synced::Updated {
                        version: 3,
                        status: Status::Ok
                    }
                );
            },
            criterion::BatchSize::PerIteration,
        )
    });
    group.finish();

    // The handler's read: the synced snapshot in the process-wide store, read by name (a literal,
    // as in a handler) through `flags::get`.
    flags::install((*store.pin()).clone());
    let mut group = c.benchmark_group("per_read");
    group.bench_function("in_process", |b| {
        b.iter(|| flags::get("dark-mode").enabled())
    });
    group.bench_function("http_request", |b| {
        // A kept-alive connection to the local API, for one request per read, opened just before
        // its first request (the API closes one that has not sent an authenticated request within
        // 2 s of its accept).
        let mut per_read = rt.block_on(keep_alive(([127, 0, 0, 1], port).into()));
        b.iter(|| {
            let (_, body) = rt.block_on(get(
                &mut per_read,
                &format!("{FLAG_PATH_PREFIX}dark-mode"),
                (TOKEN_HEADER, "token"),
            ));
            let doc: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
            doc["enabled"].as_bool().unwrap_or(false)
        })
    });
    group.finish();
}

criterion_group!(benches, bench_sync);
criterion_main!(benches);
