//! Where it runs, measured with the real binaries and moto as SSM behind a counting proxy:
//!
//! 1. Propagation to a long-running process (sidecar mode): `PutParameter` → a process kept
//!    current by `flags` long poll reads the new value, against the refresh interval.
//! 2. Idle CPU between changes: the sidecar and a long-running service (`axum-service`) watching
//!    it, over a window with no change and no refresh due.
//! 3. SSM calls per environment for N worker processes (Python, as Managed Instances run
//!    Python): one shared ssm-flags agent vs a TTL cache in each process (Powertools' design).
//! 4. `FlagsLayer` under `run_concurrent` on Managed Instances: requests to the extension per
//!    invocation and time per invocation, with the watch (the choice) vs a sync per invocation.
//! 5. Fleet scale: calls per cold start for 10 and 100 flags from an SSM path and from an
//!    AppConfig profile (the testkit stand-in), and the cold starts per minute one account
//!    sustains at SSM's 40 requests/s quota.
//!
//! Run: `cargo bench -p ssm-flags-extension --bench hosts` (or `make bench`); results go to
//! `target/ssm-flags-bench/hosts.json`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_ssm::types::ParameterType;
use flags::Store;
use flags::client::Client;
use testkit::fault::FaultProxy;
use testkit::lambda::{Proc, binary, put, spawn_process, ssm_client};
use testkit::sidecar::{SIDECAR_TOKEN, Sidecar};
use testkit::{Moto, free_port, workspace};

const PATH: &str = "/bench/hosts/features";
/// The refresh interval of the propagation and worker runs.
const MAX_AGE_S: u64 = 2;
const TRIALS: usize = 8;
const IDLE_WINDOW: Duration = Duration::from_secs(10);
const WORKER_SECONDS: f64 = 10.0;
const WORKER_COUNTS: [u32; 3] = [1, 4, 16];

/// CPU time a process has used so far (user + system), from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of stat(5): 12 and 13 after the ')'.
    let ticks: u64 =
        fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

async fn seed(ssm: &aws_sdk_ssm::Client) {
    put(
        ssm,
        &format!("{PATH}/dark-mode"),
        "false",
        ParameterType::String,
    )
    .await;
    for i in 0..11 {
        put(
            ssm,
            &format!("{PATH}/feature-{i:02}"),
            r#"{"enabled": true, "rollout_percentage": 25}"#,
            ParameterType::String,
        )
        .await;
    }
}

async fn propagation(moto: &Moto) -> serde_json::Value {
    let ssm = ssm_client(moto.port);
    let sidecar = Sidecar::start(moto.port, PATH, MAX_AGE_S, &[]).await;
    let client = Arc::new(
        Client::new(sidecar.port, Some(SIDECAR_TOKEN), Duration::from_secs(1))
            .with_wait(Duration::from_secs(30)),
    );
    let store = Arc::new(Store::default());
    {
        let (client, store) = (Arc::clone(&client), Arc::clone(&store));
        tokio::spawn(async move { client.watch_into(&store).await });
    }
    while store.version() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut samples = Vec::new();
    let mut value = store.get("dark-mode").enabled();
    for trial in 0..TRIALS {
        // Spread the changes over the refresh cycle.
        tokio::time::sleep(Duration::from_millis(500 * (trial as u64 % 4) + 100)).await;
        value = !value;
        put(
            &ssm,
            &format!("{PATH}/dark-mode"),
            if value { "true" } else { "false" },
            ParameterType::String,
        )
        .await;
        let changed = Instant::now();
        while store.get("dark-mode").enabled() != value {
            assert!(
                changed.elapsed() < Duration::from_secs(30),
                "never propagated"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let ms = changed.elapsed().as_secs_f64() * 1000.0;
        println!("sidecar propagation trial {trial}: {ms:.0} ms");
        samples.push(ms);
    }
    samples.sort_by(f64::total_cmp);
    serde_json::json!({
        "max_age_ms": MAX_AGE_S * 1000,
        "trials": TRIALS,
        "median_ms": samples[samples.len() / 2],
        "min_ms": samples[0],
        "max_ms": samples[samples.len() - 1],
    })
}

async fn idle_cpu(moto: &Moto) -> serde_json::Value {
    // No refresh falls due in the window: what is left is what the long poll costs.
    let sidecar = Sidecar::start(moto.port, PATH, 600, &[]).await;
    let service_port = free_port();
    let env: Vec<(String, String)> = [
        ("PORT", service_port.to_string()),
        ("SSM_FLAGS_PORT", sidecar.port.to_string()),
        ("SSM_FLAGS_TOKEN", SIDECAR_TOKEN.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let service: Proc = spawn_process(&binary("axum-service"), [], &env, "bench-axum");
    let up = Instant::now();
    while testkit::http_get(service_port, "/healthz", &[])
        .await
        .is_err()
    {
        assert!(
            up.elapsed() < Duration::from_secs(15),
            "service not up:\n{}",
            service.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Settle: start-up work is not idle work.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (sidecar_pid, service_pid) = (sidecar.proc.child.id(), service.child.id());
    let (s0, v0) = (cpu_time(sidecar_pid), cpu_time(service_pid));
    tokio::time::sleep(IDLE_WINDOW).await;
    let (s1, v1) = (cpu_time(sidecar_pid), cpu_time(service_pid));
    let json = serde_json::json!({
        "window_s": IDLE_WINDOW.as_secs(),
        "sidecar_cpu_ms": (s1 - s0).as_millis() as u64,
        "service_cpu_ms": (v1 - v0).as_millis() as u64,
        "tick_ms": 10,
    });
    println!("idle CPU over {IDLE_WINDOW:?}: {json}");
    json
}

fn run_workers(args: &[String], env: &[(&str, String)]) -> serde_json::Value {
    let python = workspace().join(".venv/bin/python");
    let output = std::process::Command::new(python)
        .arg(workspace().join("bench/workers.py"))
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run bench/workers.py");
    assert!(
        output.status.success(),
        "workers.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("workers.py JSON")
}

async fn workers(moto: &Moto) -> Vec<serde_json::Value> {
    let proxy = FaultProxy::start(moto.port).await;
    let env = [
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("PATH", std::env::var("PATH").unwrap_or_default()),
    ];
    let common = |mode: &str, n: u32| {
        vec![
            "--mode".to_owned(),
            mode.to_owned(),
            "--workers".to_owned(),
            n.to_string(),
            "--seconds".to_owned(),
            WORKER_SECONDS.to_string(),
            "--path".to_owned(),
            PATH.to_owned(),
        ]
    };
    let mut rows = Vec::new();
    for n in WORKER_COUNTS {
        // One agent per environment, whatever the number of worker processes.
        let sidecar = Sidecar::start(proxy.port, PATH, MAX_AGE_S, &[]).await;
        let before = proxy.requests();
        let mut args = common("extension", n);
        args.extend([
            "--flags-port".to_owned(),
            sidecar.port.to_string(),
            "--token".to_owned(),
            SIDECAR_TOKEN.to_owned(),
        ]);
        let shared = run_workers(&args, &env);
        let shared_calls = proxy.requests() - before;
        drop(sidecar);

        let before = proxy.requests();
        let mut args = common("cache", n);
        args.extend([
            "--ttl".to_owned(),
            MAX_AGE_S.to_string(),
            "--endpoint".to_owned(),
            proxy.endpoint(),
        ]);
        let cached = run_workers(&args, &env);
        let cached_calls = proxy.requests() - before;
        let per_min = |calls: u64, run: &serde_json::Value| {
            calls as f64 * 60.0 / run["seconds"].as_f64().unwrap_or(WORKER_SECONDS)
        };
        let row = serde_json::json!({
            "workers": n,
            "ssm_flags_calls": shared_calls,
            "ssm_flags_seconds": shared["seconds"],
            "ssm_flags_calls_per_min": per_min(shared_calls, &shared),
            "ssm_flags_invocations": shared["invocations"],
            "cache_calls": cached_calls,
            "cache_seconds": cached["seconds"],
            "cache_calls_per_min": per_min(cached_calls, &cached),
            "cache_invocations": cached["invocations"],
        });
        println!("{n} workers: {row}");
        rows.push(row);
    }
    rows
}

/// Calls one cold start makes: a sidecar started until `ready`, for `flags` flags from an SSM
/// path (through a counting proxy) or an AppConfig profile (the stand-in counts).
async fn cold_start_calls(moto: &Moto, flags: usize) -> serde_json::Value {
    let ssm = ssm_client(moto.port);
    let path = format!("/bench/fleet/f{flags}");
    let mut document = serde_json::Map::new();
    for i in 0..flags {
        put(
            &ssm,
            &format!("{path}/flag-{i:03}"),
            "true",
            ParameterType::String,
        )
        .await;
        document.insert(format!("flag-{i:03}"), serde_json::json!({"enabled": true}));
    }
    let proxy = FaultProxy::start(moto.port).await;
    let before = proxy.requests();
    let sidecar = Sidecar::start(proxy.port, &path, 600, &[]).await;
    let ssm_calls = proxy.requests() - before;
    assert_eq!(sidecar.health().await.expect("health")["flags"], flags);
    drop(sidecar);

    let standin = testkit::appconfig::AppConfigData::start().await;
    standin.deploy(
        &testkit::appconfig::profile_key("fleet", "prod", "flags"),
        &serde_json::Value::Object(document).to_string(),
        "application/json",
        Some("v1"),
    );
    let endpoint = standin.endpoint();
    let sidecar = Sidecar::start(
        free_port(),
        &path,
        600,
        &[
            ("SSM_FLAGS_PATH", ""),
            ("SSM_FLAGS_APPCONFIG", "fleet/prod/flags"),
            ("AWS_ENDPOINT_URL_APPCONFIGDATA", endpoint.as_str()),
        ],
    )
    .await;
    assert_eq!(sidecar.health().await.expect("health")["flags"], flags);
    let counts = standin.counts();
    let appconfig_calls = counts.sessions.load(std::sync::atomic::Ordering::Relaxed)
        + counts.polls.load(std::sync::atomic::Ordering::Relaxed);
    let json = serde_json::json!({
        "flags": flags,
        "ssm_calls": ssm_calls,
        "appconfig_calls": appconfig_calls,
    });
    println!("cold start: {json}");
    json
}

/// One run of `flag-check` on Managed Instances (concurrency 8): `INVOCATIONS` invocations in
/// batches of 8, through a proxy counting the function's requests to the extension.
async fn layer_run(moto: &Moto, watch: bool) -> serde_json::Value {
    const INVOCATIONS: usize = 400;
    const CONCURRENCY: u32 = 8;
    let extension_port = free_port();
    let to_extension = FaultProxy::start(extension_port).await;
    let (ext, via) = (extension_port.to_string(), to_extension.port.to_string());
    let mut function_env = vec![("SSM_FLAGS_PORT", via.as_str())];
    if !watch {
        // The function alone believes it is on on-demand Lambda: FlagsLayer syncs per invocation.
        function_env.push(("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"));
    }
    let f = testkit::managed::ManagedFunction::start(
        moto.port,
        PATH,
        600,
        CONCURRENCY,
        &[("SSM_FLAGS_PORT", ext.as_str())],
        &function_env,
    )
    .await;
    let event = || serde_json::json!({"user_id": "alice", "flags": ["dark-mode", "feature-01"]});
    // Warm up: the first invocations start the watch (or the kept-alive connection).
    f.invoke_all((0..CONCURRENCY).map(|_| event()).collect())
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = to_extension.requests();
    let started = Instant::now();
    for _ in 0..INVOCATIONS / CONCURRENCY as usize {
        f.invoke_all((0..CONCURRENCY).map(|_| event()).collect())
            .await;
    }
    let elapsed = started.elapsed();
    let requests = to_extension.requests() - before;
    let json = serde_json::json!({
        "mode": if watch { "watch" } else { "sync per invocation" },
        "invocations": INVOCATIONS,
        "concurrency": CONCURRENCY,
        "requests": requests,
        "requests_per_invocation": requests as f64 / INVOCATIONS as f64,
        "us_per_invocation": elapsed.as_secs_f64() * 1e6 / INVOCATIONS as f64,
    });
    println!("FlagsLayer: {json}");
    json
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let result = rt.block_on(async {
        let moto = Moto::start().await;
        seed(&ssm_client(moto.port)).await;
        let propagation = propagation(&moto).await;
        let idle = idle_cpu(&moto).await;
        let workers = workers(&moto).await;
        let layer = vec![layer_run(&moto, true).await, layer_run(&moto, false).await];
        let fleet = vec![
            cold_start_calls(&moto, 10).await,
            cold_start_calls(&moto, 100).await,
        ];
        serde_json::json!({
            "fleet": fleet,
            "layer": layer,
            "propagation": propagation,
            "idle": idle,
            "workers": workers,
            "max_age_s": MAX_AGE_S,
            "pages_per_fetch": 2,
        })
    });
    println!("{result}");
    let dir = workspace().join("target/ssm-flags-bench");
    std::fs::create_dir_all(&dir).expect("results dir");
    std::fs::write(dir.join("hosts.json"), result.to_string()).expect("write results");
}
