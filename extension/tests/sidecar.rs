//! The real `ssm-flags` binary as a sidecar (`SSM_FLAGS_MODE=sidecar`): a process with moto as
//! SSM, no Lambda. It loads at start, refreshes on a timer, pushes changes to a watching client
//! (the `flags` crate's own), answers its health check, exits 0 on SIGTERM, and gets credentials
//! the way an ECS task does.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_ssm::types::ParameterType;
use common::{Moto, PATH, put, seed};
use flags::Store;
use flags::client::Client;
use flags::wire::{FLAGS_PATH, TOKEN_HEADER};
use testkit::free_port;
use testkit::sidecar::{CredentialsEndpoint, InstanceMetadata, SIDECAR_TOKEN, Sidecar, run_cli};

fn watching_client(port: u16) -> (Arc<Store>, tokio::task::JoinHandle<()>) {
    let client = Arc::new(
        Client::new(port, Some(SIDECAR_TOKEN), Duration::from_secs(2))
            .with_wait(Duration::from_secs(30)),
    );
    let store = Arc::new(Store::default());
    let task = {
        let (client, store) = (Arc::clone(&client), Arc::clone(&store));
        tokio::spawn(async move { client.watch_into(&store).await })
    };
    (store, task)
}

async fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < timeout,
            "{what}: not within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_serves_refreshes_pushes_changes_and_stops_on_sigterm() {
    let moto = Moto::start().await;
    let ssm = common::ssm_client(moto.port);
    seed(&ssm).await;
    let mut sidecar = Sidecar::start(moto.port, PATH, 1, &[]).await;

    let health = sidecar.health().await.expect("health");
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["flags"], 32);
    let ready = sidecar.proc.first_line("ready").expect("ready line");
    assert_eq!(ready["host"], "sidecar", "{ready}");

    // A service reading through the flags crate, kept current by a long poll.
    let (store, _watch) = watching_client(sidecar.port);
    wait_until("first snapshot", Duration::from_secs(10), || {
        store.pin().version() == 1
    })
    .await;
    assert!(store.get("dark-mode").enabled());

    // A change is pushed: PutParameter → the timer refresh (max age 1 s) → the held request
    // answers → installed. No request of the client's asked for it.
    put(&ssm, "dark-mode", "false", ParameterType::String).await;
    let took = wait_until("the change", Duration::from_secs(10), || {
        !store.get("dark-mode").enabled()
    })
    .await;
    println!("sidecar: PutParameter → read by the watching client in {took:?} (max age 1 s)");
    assert_eq!(store.pin().version(), 2);

    // SIGTERM with a long poll held: the poll is released and the process exits 0 at once.
    let etag = {
        let (_, head, _) = testkit::http_request(
            sidecar.port,
            "GET",
            FLAGS_PATH,
            &[(TOKEN_HEADER, SIDECAR_TOKEN)],
            "",
        )
        .await
        .expect("snapshot");
        head.lines()
            .find_map(|l| l.strip_prefix("etag: "))
            .expect("etag")
            .to_owned()
    };
    let port = sidecar.port;
    let held = tokio::spawn(async move {
        testkit::http_request(
            port,
            "GET",
            FLAGS_PATH,
            &[
                (TOKEN_HEADER, SIDECAR_TOKEN),
                ("if-none-match", etag.as_str()),
                ("prefer", "wait=120"),
            ],
            "",
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!held.is_finished(), "the long poll is held");
    let stopping = Instant::now();
    sidecar.proc.terminate();
    let status = sidecar
        .proc
        .wait_exit(Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("no exit after SIGTERM:\n{}", sidecar.proc.log()));
    let exit_took = stopping.elapsed();
    println!("sidecar: SIGTERM → exit in {exit_took:?}");
    assert!(status.success(), "{status:?}\n{}", sidecar.proc.log());
    // The goal is under a second; the bound leaves room for a busy machine.
    assert!(exit_took < Duration::from_secs(3), "{exit_took:?}");
    let (code, _, _) = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .expect("released")
        .expect("task")
        .expect("answered before the process ended");
    assert_eq!(code, 304);
    assert!(
        sidecar.proc.first_line("terminated by signal").is_some(),
        "{}",
        sidecar.proc.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_check_fails_only_when_the_agent_does_not_answer_unless_strict() {
    let moto = Moto::start().await;
    seed(&common::ssm_client(moto.port)).await;
    let sidecar = Sidecar::start(moto.port, PATH, 60, &[]).await;
    let (code, out) = sidecar.run_cli(&["--health-check"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.starts_with("ssm-flags ok: version 1, 32 flags (1 invalid)"),
        "{out}"
    );
    let (code, out) = sidecar.run_cli(&["--health-check", "--strict"]);
    assert_eq!(code, Some(0), "{out}");

    // SSM unreachable from the start: degraded. The agent answers, so the check passes (a
    // restart would not bring AWS back); --strict fails it.
    let dead = free_port();
    let degraded = Sidecar::start(dead, PATH, 60, &[("SSM_FLAGS_INIT_TIMEOUT_MS", "500")]).await;
    let health = degraded.health().await.expect("answers");
    assert_eq!(health["status"], "degraded", "{health}");
    let (code, out) = degraded.run_cli(&["--health-check"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("ssm-flags degraded"), "{out}");
    let (code, out) = degraded.run_cli(&["--strict", "--health-check"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("degraded (--strict)"), "{out}");

    // A wrong token: the check says so.
    let mut wrong = sidecar.env.clone();
    wrong.push(("SSM_FLAGS_TOKEN".to_owned(), "not-it".to_owned()));
    let (code, out) = run_cli(&wrong, &["--health-check"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("answered 401") && out.contains("SSM_FLAGS_TOKEN"),
        "{out}"
    );

    // Nothing listening: fails, naming the port.
    let env = sidecar.env.clone();
    let port = sidecar.port;
    drop(sidecar);
    let (code, out) = run_cli(&env, &["--health-check"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&format!("127.0.0.1:{port}")), "{out}");

    // Usage errors exit 2.
    let (code, out) = run_cli(&env, &["--health"]);
    assert_eq!(code, Some(2), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_mode_outside_lambda_refuses_to_start_and_names_the_sidecar_mode() {
    let env = Sidecar::env(
        free_port(),
        PATH,
        free_port(),
        60,
        &[("SSM_FLAGS_MODE", "lambda")],
    );
    let (code, out) = run_cli(&env, &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("AWS_LAMBDA_RUNTIME_API is not set") && out.contains("SSM_FLAGS_MODE=sidecar"),
        "{out}"
    );
}

/// ECS task roles: no keys in the environment, credentials from the container endpoint with
/// its authorization token. Moto accepts any credentials; the endpoint proves they were used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_gets_credentials_from_the_container_credentials_endpoint() {
    let moto = Moto::start().await;
    seed(&common::ssm_client(moto.port)).await;
    let creds = CredentialsEndpoint::start("task-auth-token-42").await;
    let uri = creds.full_uri();
    let env: Vec<(String, String)> = Sidecar::env(
        moto.port,
        PATH,
        free_port(),
        60,
        &[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri.as_str()),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "task-auth-token-42"),
        ],
    )
    .into_iter()
    .filter(|(k, _)| k != "AWS_ACCESS_KEY_ID" && k != "AWS_SECRET_ACCESS_KEY")
    .collect();
    let sidecar = Sidecar::start_with(env).await;
    let health = sidecar.health().await.expect("health");
    assert_eq!(health["status"], "ok", "{health}\n{}", sidecar.proc.log());
    assert_eq!(health["flags"], 32);
    let seen = creds.seen();
    assert!(!seen.is_empty(), "the credentials endpoint was never asked");
    assert!(
        seen.iter()
            .all(|s| s.auth.as_deref() == Some("task-auth-token-42")
                && s.path == CredentialsEndpoint::PATH),
        "{seen:?}"
    );
    // The secret never reaches the log.
    assert!(!sidecar.proc.log().contains("role-secret-never-logged"));
}

/// EC2 instance profiles: no keys, no container variables; credentials from IMDSv2 (a session
/// token first, then the role and its credentials).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_on_ec2_gets_credentials_from_the_instance_metadata_service() {
    let moto = Moto::start().await;
    seed(&common::ssm_client(moto.port)).await;
    let imds = InstanceMetadata::start().await;
    let endpoint = imds.endpoint();
    let env: Vec<(String, String)> = Sidecar::env(
        moto.port,
        PATH,
        free_port(),
        60,
        &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint.as_str())],
    )
    .into_iter()
    .filter(|(k, _)| {
        !matches!(
            k.as_str(),
            "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" | "AWS_EC2_METADATA_DISABLED"
        )
    })
    .collect();
    let sidecar = Sidecar::start_with(env).await;
    let health = sidecar.health().await.expect("health");
    assert_eq!(health["status"], "ok", "{health}\n{}", sidecar.proc.log());
    assert_eq!(health["flags"], 32);
    let seen = imds.seen();
    assert!(
        seen.iter()
            .any(|s| s.method == "PUT" && s.path == "/latest/api/token"),
        "no IMDSv2 session token asked for: {seen:?}"
    );
    let role_path = format!(
        "/latest/meta-data/iam/security-credentials/{}",
        InstanceMetadata::ROLE
    );
    assert!(
        seen.iter()
            .any(|s| s.path == role_path && s.auth.as_deref() == Some("imds-session-token-1")),
        "the role's credentials were not fetched with the session token: {seen:?}"
    );
    assert!(!sidecar.proc.log().contains("role-secret-never-logged"));
}

/// A host with no credentials (none in the environment, empty profile files, no instance
/// metadata), or no region: the sidecar's log and health say which, never "cannot reach SSM".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_without_credentials_or_region_says_so_not_unreachable() {
    let moto = Moto::start().await;
    seed(&common::ssm_client(moto.port)).await;
    let dir = std::env::temp_dir().join(format!("sidecar-unconfigured-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("config"), "").expect("config");
    std::fs::write(dir.join("credentials"), "").expect("credentials");
    let files = [
        ("AWS_CONFIG_FILE", dir.join("config")),
        ("AWS_SHARED_CREDENTIALS_FILE", dir.join("credentials")),
        ("HOME", dir.clone()),
    ];
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(k, v)| (*k, v.to_str().expect("utf-8")))
        .collect();
    let base = Sidecar::env(moto.port, PATH, free_port(), 60, &files);
    let without = |names: &[&str]| -> Vec<(String, String)> {
        base.iter()
            .filter(|(k, _)| !names.contains(&k.as_str()))
            .cloned()
            .collect()
    };
    for (removed, said) in [
        (
            &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"][..],
            "no AWS credentials to read /myapp/test/features",
        ),
        (
            &["AWS_REGION"][..],
            "no AWS region to read /myapp/test/features",
        ),
    ] {
        let sidecar = Sidecar::start_with(without(removed)).await;
        let health = sidecar.health().await.expect("health");
        assert_eq!(health["status"], "degraded", "{health}");
        let last_error = health["last_error"].as_str().unwrap_or_default();
        assert!(last_error.contains(said), "{removed:?}: {health}");
        let log = sidecar.proc.log();
        assert!(log.contains(said), "{removed:?}:\n{log}");
        assert!(!log.contains("cannot reach"), "{removed:?}:\n{log}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
