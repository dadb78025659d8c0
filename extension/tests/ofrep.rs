//! OFREP on the real extension (sidecar mode, moto as SSM), read by OpenFeature's published
//! clients: the Python SDK with its OFREP provider (`ofrep_python.py`) and the Node SDK with
//! its (`ofrep-node/check.mjs`) evaluate the seed's flags for a few hundred users and must match
//! the seed's md5 semantics; the bulk endpoint's ETag covers the context.

mod common;

use std::path::Path;

use common::{Moto, PATH, seed};
use flags::wire::TOKEN_HEADER;
use testkit::sidecar::{SIDECAR_TOKEN, Sidecar};
use testkit::{http_request, process, workspace};

/// Runs a published OpenFeature client, `program args… BASE TOKEN` (in `dir`), against a sidecar
/// serving the seed's flags: it must exit 0, every evaluation matching the seed's semantics.
async fn a_published_client_matches_the_seed(program: &Path, args: &[&str], dir: Option<&Path>) {
    let moto = Moto::start().await;
    seed(&common::ssm_client(moto.port)).await;
    let sidecar = Sidecar::start(moto.port, PATH, 60, &[]).await;
    let base = format!("http://127.0.0.1:{}", sidecar.port);
    let args: Vec<&str> = args
        .iter()
        .copied()
        .chain([base.as_str(), SIDECAR_TOKEN])
        .collect();
    let ran = process::run(program, &args, dir, &[]).await;
    assert!(ran.success(), "{}\n{}", ran.text(), sidecar.proc.log());
    assert!(
        ran.text().contains("matched the seed's semantics"),
        "{}",
        ran.text()
    );
    println!("{}", ran.text().trim());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openfeatures_python_sdk_reads_the_seeds_flags_over_ofrep() {
    let script = workspace().join("extension/tests/ofrep_python.py");
    let script = script.to_str().expect("utf-8 path");
    a_published_client_matches_the_seed(&process::python(), &[script], None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openfeatures_node_sdk_reads_the_seeds_flags_over_ofrep() {
    let dir = workspace().join("extension/tests/ofrep-node");
    assert!(
        dir.join("node_modules/@openfeature/ofrep-provider")
            .exists(),
        "{}/node_modules not installed: run `make node` (or `make test`)",
        dir.display()
    );
    a_published_client_matches_the_seed(Path::new("node"), &["check.mjs"], Some(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bulk_etag_covers_the_context_and_requests_are_checked() {
    let moto = Moto::start().await;
    let ssm = common::ssm_client(moto.port);
    seed(&ssm).await;
    // A SecureString flag whose config holds a secret: never in an answer's metadata.
    common::put(
        &ssm,
        "payments-provider",
        r#"{"enabled": true, "api_key": "sk_live_51Hx", "timeout_ms": 800}"#,
        aws_sdk_ssm::types::ParameterType::SecureString,
    )
    .await;
    let sidecar = Sidecar::start(moto.port, PATH, 60, &[]).await;
    let port = sidecar.port;
    let post = |body: &'static str, extra: Vec<(&'static str, String)>| async move {
        let mut headers: Vec<(&str, String)> = vec![
            (TOKEN_HEADER, SIDECAR_TOKEN.to_owned()),
            ("Content-Type", "application/json".to_owned()),
        ];
        headers.extend(extra);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        http_request(port, "POST", "/ofrep/v1/evaluate/flags", &headers, body)
            .await
            .expect("answer")
    };
    let alice = r#"{"context": {"targetingKey": "alice", "region": "us-east-1"}}"#;
    let bob = r#"{"context": {"targetingKey": "bob", "region": "us-east-1"}}"#;
    let (status, head, body) = post(alice, vec![]).await;
    assert_eq!(status, 200, "{body}");
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("etag")
        .to_owned();
    let doc: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(doc["flags"].as_array().map(Vec::len), Some(33));
    // Issue 21 §11: the SecureString flag is evaluated, its metadata says `secure`, and its
    // config fields (an API key) appear nowhere in the answer.
    assert!(!body.contains("sk_live"), "{body}");
    let secure = doc["flags"]
        .as_array()
        .and_then(|flags| flags.iter().find(|f| f["key"] == "payments-provider"))
        .expect("the SecureString flag");
    assert_eq!(secure["value"], true, "{secure}");
    assert_eq!(secure["metadata"]["secure"], true, "{secure}");
    assert!(secure["metadata"].get("timeout_ms").is_none(), "{secure}");
    // The same user and flags: 304. Another user with alice's tag: a full answer.
    let (status, _, _) = post(alice, vec![("If-None-Match", etag.clone())]).await;
    assert_eq!(status, 304);
    let (status, _, body) = post(bob, vec![("If-None-Match", etag)]).await;
    assert_eq!(
        status, 200,
        "bob never gets alice's answer as a 304: {body}"
    );

    // Without the token: 401. A malformed body: 400 PARSE_ERROR. A body too large: 413.
    let (status, _, _) = http_request(
        port,
        "POST",
        "/ofrep/v1/evaluate/flags/dark-mode",
        &[],
        alice,
    )
    .await
    .expect("answer");
    assert_eq!(status, 401);
    let (status, _, body) = post("{nope", vec![]).await;
    assert_eq!(status, 400);
    assert!(body.contains("PARSE_ERROR"), "{body}");
    let big: &'static str = Box::leak(
        format!("{{\"context\": {{\"x\": \"{}\"}}}}", "a".repeat(70_000)).into_boxed_str(),
    );
    let (status, _, _) = post(big, vec![]).await;
    assert_eq!(status, 413);
    // POST elsewhere is still refused.
    let (status, _, _) = http_request(
        port,
        "POST",
        "/v1/flags",
        &[(TOKEN_HEADER, SIDECAR_TOKEN)],
        "",
    )
    .await
    .expect("answer");
    assert_eq!(status, 405);

    // Issue 21 §10: JSON that is not an object is no context: 400 INVALID_CONTEXT, never an
    // evaluation with an empty one.
    for body in ["[1,2]", "\"x\"", "5"] {
        let (status, _, answer) = post(body, vec![]).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer.contains("INVALID_CONTEXT"), "{body}: {answer}");
    }
    // An absolute-form target is judged by its authority, not by Host (RFC 9112 §3.2.2); a
    // repeated or malformed Host is a bad request.
    let raw = |target: &str, hosts: &[&str]| {
        let hosts: String = hosts.iter().map(|h| format!("Host: {h}\r\n")).collect();
        format!(
            "GET {target} HTTP/1.1\r\n{hosts}{TOKEN_HEADER}: {SIDECAR_TOKEN}\r\nConnection: close\r\n\r\n"
        )
    };
    for (request, want) in [
        (raw("http://evil.com/v1/health", &["localhost"]), 403),
        (
            raw(
                &format!("http://127.0.0.1:{port}/v1/health"),
                &["localhost"],
            ),
            200,
        ),
        (raw("/v1/health", &["localhost", "evil.com"]), 400),
        (raw("/v1/health", &["[[::1]]"]), 400),
        (raw("/v1/health", &["[::1]"]), 200),
    ] {
        let status = testkit::raw_request(port, request.as_bytes())
            .await
            .expect("answer");
        assert_eq!(status, want, "{request}");
    }
}
