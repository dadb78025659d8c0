//! The real `axum-service` binary beside the real `ssm-flags` sidecar, moto as SSM: requests
//! read flags in memory, a change is pushed, and the service rides out a sidecar restart.

use std::time::{Duration, Instant};

use aws_sdk_ssm::types::ParameterType;
use serde_json::Value;
use testkit::lambda::{Proc, binary, put, spawn_process, ssm_client};
use testkit::sidecar::{SIDECAR_TOKEN, Sidecar};
use testkit::{Moto, free_port, http_get};

const PATH: &str = "/myapp/dev/features";

async fn checkout(port: u16, user: &str) -> Option<Value> {
    let (status, body) = http_get(port, &format!("/checkout?user_id={user}"), &[])
        .await
        .ok()?;
    (status == 200).then(|| serde_json::from_str(&body).ok())?
}

async fn flow_for(port: u16, user: &str) -> String {
    checkout(port, user).await.expect("service answers")["flow"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn until_flow(
    service: &Proc,
    port: u16,
    user: &str,
    flow: &str,
    timeout: Duration,
) -> Duration {
    let started = Instant::now();
    while flow_for(port, user).await != flow {
        assert!(
            started.elapsed() < timeout,
            "{user} never got the {flow} flow:\n{}",
            service.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_reads_flags_pushed_by_the_sidecar_and_survives_its_restart() {
    let moto = Moto::start().await;
    let ssm = ssm_client(moto.port);
    let name = format!("{PATH}/new-checkout-flow");
    put(
        &ssm,
        &name,
        r#"{"enabled": true, "allowed_user_ids": ["alice"]}"#,
        ParameterType::String,
    )
    .await;
    let sidecar_port = free_port();
    let sidecar_env = Sidecar::env(moto.port, PATH, sidecar_port, 1, &[]);
    let sidecar = Sidecar::start_with(sidecar_env.clone()).await;

    let port = free_port();
    let env: Vec<(String, String)> = [
        ("PORT", port.to_string()),
        ("SSM_FLAGS_PORT", sidecar_port.to_string()),
        ("SSM_FLAGS_TOKEN", SIDECAR_TOKEN.to_owned()),
        ("SSM_FLAGS_CLIENT_WAIT_S", "30".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let service = spawn_process(&binary("axum-service"), [], &env, "axum");
    let started = Instant::now();
    while checkout(port, "alice").await.is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "service not up:\n{}",
            service.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(flow_for(port, "alice").await, "new");
    assert_eq!(flow_for(port, "bob").await, "legacy");
    let body = checkout(port, "alice").await.expect("answer");
    assert_eq!(body["decision"]["version"], 1, "{body}");

    // A change is pushed to the service: the sidecar's timer (1 s) plus the long poll.
    put(
        &ssm,
        &name,
        r#"{"enabled": true, "allowed_user_ids": ["alice", "bob"]}"#,
        ParameterType::String,
    )
    .await;
    let took = until_flow(&service, port, "bob", "new", Duration::from_secs(10)).await;
    println!("axum-service: PutParameter → bob on the new flow in {took:?} (max age 1 s)");

    // The sidecar goes away: the service keeps answering from memory.
    drop(sidecar);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(flow_for(port, "bob").await, "new");
    // A change while it is away, then the sidecar comes back (same port, same token): the
    // service's watch reconnects and installs the new snapshot.
    put(&ssm, &name, r#"{"enabled": false}"#, ParameterType::String).await;
    let _sidecar = Sidecar::start_with(sidecar_env).await;
    let took = until_flow(&service, port, "alice", "legacy", Duration::from_secs(15)).await;
    println!("axum-service: sidecar restarted → change read in {took:?}");
    let health: Value =
        serde_json::from_str(&http_get(port, "/healthz", &[]).await.expect("healthz").1)
            .expect("JSON");
    assert_eq!(health["flags"]["status"], "ok", "{health}");
}
