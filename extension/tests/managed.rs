//! The real `ssm-flags` extension and `flag-check` function on Lambda Managed Instances, as
//! `testkit::managed` models them from AWS's documentation ("Lambda Managed Instances",
//! "Understanding the Lambda Managed Instances execution environment"): INVOKE registrations
//! refused, concurrent invocations, no freeze. Moto is SSM, behind a counting proxy.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_ssm::types::ParameterType;
use common::{Moto, PATH, TOKEN, put, seed, seeded_expectations};
use flags::wire::{HEALTH_PATH, TOKEN_HEADER};
use lambda_simulator::FreezeMode;
use serde_json::{Value, json};
use testkit::fault::FaultProxy;
use testkit::managed::{Gate, ManagedFunction};
use testkit::{free_port, http_get};

/// The max age of these tests: a timer refresh every 2 s (less up to 10% jitter).
const MAX_AGE_S: u64 = 2;

async fn health(port: u16) -> Value {
    let (status, body) = http_get(port, HEALTH_PATH, &[(TOKEN_HEADER, TOKEN)])
        .await
        .expect("extension reachable");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("health JSON")
}

fn check_events(n: usize) -> Vec<Value> {
    let names: Vec<String> = seeded_expectations().into_iter().map(|(n, _)| n).collect();
    (0..n)
        .map(|_| json!({"user_id": "alice", "region": "us-east-1", "flags": names}))
        .collect()
}

fn refreshes(log: &[Value]) -> usize {
    log.iter()
        .filter(|l| {
            l["fields"]["message"] == "flags refreshed" || l["message"] == "flags refreshed"
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_managed_instances_the_extension_registers_for_shutdown_only_and_refreshes_on_a_timer() {
    let moto = Moto::start().await;
    seed(&common::ssm_client(moto.port)).await;
    let ssm = FaultProxy::start(moto.port).await;
    // The function reaches the extension through a counting proxy: requests per invocation.
    let extension_port = free_port();
    let to_extension = FaultProxy::start(extension_port).await;
    let (ext_port, fn_port) = (extension_port.to_string(), to_extension.port.to_string());
    let f = ManagedFunction::start(
        ssm.port,
        PATH,
        MAX_AGE_S,
        4,
        &[("SSM_FLAGS_PORT", ext_port.as_str())],
        &[("SSM_FLAGS_PORT", fn_port.as_str())],
    )
    .await;
    println!("Managed Instances: extension ready in {:?}", f.ready_in);

    // Init succeeded: registered for SHUTDOWN alone, nothing refused.
    let registered = f.sim.get_registered_extensions().await;
    assert_eq!(registered.len(), 1);
    assert_eq!(
        format!("{:?}", registered[0].events),
        "[Shutdown]",
        "{:?}",
        registered[0].events
    );
    assert_eq!(f.gate.refused(), 0);
    let ready = f.extension.first_line("ready").expect("ready line");
    assert_eq!(ready["host"], "lambda-managed-instances", "{ready}");

    // Concurrent invocations, each reading the full seeded snapshot.
    let expected: serde_json::Map<String, Value> = seeded_expectations()
        .into_iter()
        .map(|(n, v)| (n, Value::Bool(v)))
        .collect();
    for response in f.invoke_all(check_events(16)).await {
        assert_eq!(
            response["flags"],
            Value::Object(expected.clone()),
            "{response}"
        );
        assert_eq!(response["status"], "ok");
    }

    // A change reaches the extension with no INVOKE (none is ever sent to it) within one max
    // age plus the fetch, and the function's next invocation reads it.
    put(
        &common::ssm_client(moto.port),
        "dark-mode",
        "false",
        ParameterType::String,
    )
    .await;
    let changed = Instant::now();
    let deadline = changed + Duration::from_secs(MAX_AGE_S + 10);
    while health(extension_port).await["version"] != 2 {
        assert!(
            Instant::now() < deadline,
            "the change never arrived:\n{}",
            f.extension.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "change served by the extension {:?} after PutParameter",
        changed.elapsed()
    );
    let response = &f.invoke_all(check_events(1)).await[0];
    assert_eq!(response["flags"]["dark-mode"], false, "{response}");

    // SSM calls follow the timer, not the invocations; the function makes no request per
    // invocation (its watch holds one long poll).
    let (ssm_before, fn_before) = (ssm.requests(), to_extension.requests());
    let refreshes_before = refreshes(&f.extension.json_lines());
    let window = Instant::now();
    let mut invocations = 0;
    while window.elapsed() < Duration::from_millis(6_500) {
        f.invoke_all(check_events(4)).await;
        invocations += 4;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = window.elapsed().as_secs_f64();
    let ssm_calls = ssm.requests() - ssm_before;
    let fn_requests = to_extension.requests() - fn_before;
    let fetches = refreshes(&f.extension.json_lines()) - refreshes_before;
    println!(
        "{invocations} invocations in {elapsed:.1} s: {fetches} refreshes, {ssm_calls} SSM calls, {fn_requests} requests from the function to the extension"
    );
    // At most one fetch per 0.9 max age (the jitter), plus one in flight at either end.
    let most = (elapsed / (0.9 * MAX_AGE_S as f64)).ceil() as usize + 1;
    assert!(
        fetches >= 1 && fetches <= most,
        "{fetches} refreshes in {elapsed:.1} s with max age {MAX_AGE_S} s"
    );
    // The seeded 32 parameters take 4 pages; nothing vanished, so no verification calls.
    assert_eq!(ssm_calls, 4 * fetches as u64, "SSM calls per refresh");
    assert!(
        fn_requests <= 3,
        "{fn_requests} requests to the extension for {invocations} invocations"
    );

    // SHUTDOWN: exit 0.
    let ManagedFunction {
        sim, mut extension, ..
    } = f;
    sim.graceful_shutdown(lambda_simulator::ShutdownReason::Spindown)
        .await;
    let status = extension
        .wait_exit(Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("no exit after SHUTDOWN:\n{}", extension.log()));
    assert!(status.success(), "{status:?}\n{}", extension.log());
}

/// What happened before this host was known: an extension asking for INVOKE is refused and
/// exits, and the function's init fails. The gate makes that failure reproducible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extension_asking_for_invoke_is_refused_as_managed_instances_refuse_it() {
    let sim = testkit::lambda::simulator(FreezeMode::None).await;
    let gate = Gate::start(sim.addr()).await;
    let mut env = testkit::lambda::function_env(free_port(), PATH, free_port(), 60);
    // No AWS_LAMBDA_INITIALIZATION_TYPE: the extension believes it is on on-demand Lambda.
    env.push(("AWS_LAMBDA_RUNTIME_API".to_owned(), gate.runtime_api()));
    let mut extension = testkit::lambda::spawn(
        &sim,
        &testkit::lambda::extension_binary(),
        &env,
        "mi-refused",
    );
    let status = extension
        .wait_exit(Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("still running:\n{}", extension.log()));
    assert!(!status.success());
    assert_eq!(gate.refused(), 1);
    assert!(
        extension
            .log()
            .contains("cannot register with the Lambda Extensions API"),
        "{}",
        extension.log()
    );
    assert_eq!(sim.extension_count().await, 0);
}

/// The next-worse cases on Managed Instances: SSM failing at init (the timer retries with
/// backoff, and the flags reach the function with no invocation asking for them), then SSM
/// hanging when SHUTDOWN comes (the timer's refresh is abandoned: exit 0 at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_managed_instances_flags_arrive_after_an_outage_at_init_and_shutdown_never_waits_for_ssm()
 {
    let moto = Moto::start().await;
    seed(&common::ssm_client(moto.port)).await;
    let ssm = FaultProxy::start(moto.port).await;
    ssm.set(testkit::fault::Fault::ServerError);
    let extension_port = free_port();
    let port = extension_port.to_string();
    let f = ManagedFunction::start(
        ssm.port,
        PATH,
        MAX_AGE_S,
        4,
        // A long refresh timeout: the exit below must not wait for it.
        &[
            ("SSM_FLAGS_PORT", port.as_str()),
            ("SSM_FLAGS_REFRESH_TIMEOUT_MS", "10000"),
        ],
        &[],
    )
    .await;
    let response = &f.invoke_all(check_events(1)).await[0];
    assert_eq!(response["status"], "degraded", "{response}");
    assert_eq!(
        response["flags"]["dark-mode"], false,
        "defaults while degraded"
    );

    ssm.set(testkit::fault::Fault::Pass);
    let recovered = Instant::now();
    while health(extension_port).await["status"] != "ok" {
        assert!(
            recovered.elapsed() < Duration::from_secs(15),
            "never recovered:\n{}",
            f.extension.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("recovered {:?} after SSM came back", recovered.elapsed());
    let response = &f.invoke_all(check_events(1)).await[0];
    assert_eq!(response["status"], "ok", "{response}");
    assert_eq!(response["flags"]["dark-mode"], true, "{response}");

    // SSM hangs; wait for a timer refresh to be in flight, then SHUTDOWN.
    ssm.set(testkit::fault::Fault::Slow(Duration::from_secs(60)));
    let before = ssm.requests();
    let hung = Instant::now();
    while ssm.requests() == before {
        assert!(
            hung.elapsed() < Duration::from_secs(10),
            "no refresh started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ManagedFunction {
        sim, mut extension, ..
    } = f;
    let stopping = Instant::now();
    sim.graceful_shutdown(lambda_simulator::ShutdownReason::Spindown)
        .await;
    let status = extension
        .wait_exit(Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("no exit after SHUTDOWN:\n{}", extension.log()));
    let took = stopping.elapsed();
    println!("SHUTDOWN during a hung refresh: exit in {took:?}");
    assert!(status.success(), "{status:?}");
    // Half the 10 s refresh timeout the refresh would otherwise run to: a generous margin.
    assert!(took < Duration::from_secs(5), "{took:?}");
}
