//! Propagation: from `PutParameter` to the handler returning the new value, against the max age.
//!
//! The real extension runs under `lambda-simulator` with moto as SSM and `SSM_FLAGS_MAX_AGE=2`;
//! this harness plays the function's runtime over the Runtime API, syncing with the real `flags`
//! client at the start of each invocation, as `FlagsLayer` does. After each flip it invokes every
//! 100 ms until the handler answers the new value.
//!
//! Run: `cargo bench -p ssm-flags-extension --bench propagation` (or `make bench`); results go to
//! `target/ssm-flags-bench/propagation.json`.

use std::time::{Duration, Instant};

use aws_sdk_ssm::types::ParameterType;
use flags::client::Client;
use lambda_simulator::{FreezeMode, Simulator};
use testkit::lambda::{extension_binary, extension_env, put, simulator, spawn, ssm_client};
use testkit::{Moto, free_port, http_request};

const MAX_AGE_S: u64 = 2;
const INTERVAL: Duration = Duration::from_millis(100);
const TRIALS: usize = 8;
const PATH: &str = "/bench/propagation/features";

/// The function: take the next invocation, sync the flags, answer `dark-mode`.
async fn runtime(api_port: u16, client: Client, store: flags::Store) {
    loop {
        let Ok((200, head, _)) = http_request(
            api_port,
            "GET",
            "/2018-06-01/runtime/invocation/next",
            &[],
            "",
        )
        .await
        else {
            return;
        };
        let Some(id) = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("lambda-runtime-aws-request-id")
                .then(|| v.trim().to_owned())
        }) else {
            return;
        };
        client.sync_into(&store).await;
        let body = serde_json::json!({
            "dark_mode": store.get("dark-mode").enabled(),
            "version": store.version(),
        })
        .to_string();
        let path = format!("/2018-06-01/runtime/invocation/{id}/response");
        let _ = http_request(
            api_port,
            "POST",
            &path,
            &[("Content-Type", "application/json")],
            &body,
        )
        .await;
    }
}

async fn invoke(sim: &Simulator) -> bool {
    let id = sim.enqueue_payload(serde_json::json!({})).await;
    let state = testkit::lambda::wait_complete(sim, &id, Duration::from_secs(20))
        .await
        .expect("invocation completes");
    let _ = sim
        .wait_for_extensions_ready(&id, Duration::from_secs(10))
        .await;
    state
        .response
        .and_then(|r| r.payload["dark_mode"].as_bool())
        .expect("a dark_mode answer")
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let result = rt.block_on(async {
        let moto = Moto::start().await;
        let ssm = ssm_client(moto.port);
        let name = format!("{PATH}/dark-mode");
        let flip = |value: bool| {
            put(
                &ssm,
                &name,
                if value { "true" } else { "false" },
                ParameterType::String,
            )
        };
        flip(false).await;

        let sim = simulator(FreezeMode::None).await;
        let flags_port = free_port();
        let mut env = extension_env(moto.port, PATH, flags_port);
        env.push(("SSM_FLAGS_MAX_AGE".to_owned(), MAX_AGE_S.to_string()));
        let extension = spawn(&sim, &extension_binary(), &env, "propagation");
        testkit::first_next(&sim, Duration::from_secs(30))
            .await
            .expect("extension ready");
        tokio::spawn(runtime(
            sim.addr().port(),
            Client::new(flags_port, None, Duration::from_secs(1)),
            flags::Store::default(),
        ));
        assert!(!invoke(&sim).await, "starts false");

        let mut samples = Vec::new();
        let mut value = false;
        for trial in 0..TRIALS {
            // Spread the flips over the refresh cycle.
            tokio::time::sleep(Duration::from_millis(250 * (trial as u64 % 4))).await;
            value = !value;
            flip(value).await;
            let flipped = Instant::now();
            let mut invocations = 0u32;
            loop {
                invocations += 1;
                if invoke(&sim).await == value {
                    break;
                }
                assert!(
                    flipped.elapsed() < Duration::from_secs(30),
                    "never propagated"
                );
                tokio::time::sleep(INTERVAL).await;
            }
            let ms = flipped.elapsed().as_secs_f64() * 1000.0;
            println!("trial {trial}: {ms:.0} ms, {invocations} invocations");
            samples.push(ms);
        }
        drop(extension);
        sim.shutdown().await;
        samples.sort_by(f64::total_cmp);
        serde_json::json!({
            "max_age_ms": MAX_AGE_S * 1000,
            "interval_ms": INTERVAL.as_millis() as u64,
            "trials": TRIALS,
            "median_ms": samples[samples.len() / 2],
            "max_ms": samples[samples.len() - 1],
            "min_ms": samples[0],
        })
    });
    println!("{result}");
    let dir = testkit::workspace().join("target/ssm-flags-bench");
    std::fs::create_dir_all(&dir).expect("results dir");
    std::fs::write(dir.join("propagation.json"), result.to_string()).expect("write results");
}
