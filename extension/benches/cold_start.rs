//! Cold start: from spawning the extension to "ready for the first invocation" (its first
//! `/next`, Lambda's init gate) with 10, 100 and 1,000 flags, against the floor measured in the
//! same run on the same moto server: a process that builds an `aws-sdk-ssm` client from the
//! environment, runs the bare `GetParametersByPath` pagination loop over the same path, and exits.
//! Also counts SSM calls on both sides and the extension's peak RSS. Last, 1,000 flags again with
//! 40 ms added to every SSM call by the fault proxy (both sides through it): real SSM latency;
//! and 1,000 flagd flags packed into document parameters (at most 8 KB each, Advanced tier)
//! under a `#flagd` path, at the same latency (goal: ready within 1 s).
//!
//! Run: `cargo bench -p ssm-flags-extension --bench cold_start` (or `make bench`); results go to
//! `target/ssm-flags-bench/cold_start.json`, which `bench/report.py` turns into a table.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_ssm::types::ParameterType;
use lambda_simulator::FreezeMode;
use testkit::fault::{Fault, FaultProxy};
use testkit::lambda::{
    aws_env, extension_binary, extension_env, put, simulator, spawn, ssm_client,
};
use testkit::{Moto, free_port};

const SIZES: [usize; 3] = [10, 100, 1000];
const REPS: usize = 7;
/// Added to every SSM call in the last measurement: a page's cost from Lambda.
const LATENCY: Duration = Duration::from_millis(40);
const SLOW_REPS: usize = 3;
const BARE_FETCH: &str = "--bare-fetch";

/// The floor: build a client from the environment, read every page, print the call count.
async fn bare_fetch(path: &str) {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let client = aws_sdk_ssm::Client::new(&shared);
    let (mut calls, mut count, mut token) = (0u32, 0usize, None::<String>);
    loop {
        let page = client
            .get_parameters_by_path()
            .path(path)
            .recursive(true)
            .with_decryption(true)
            .max_results(10)
            .set_next_token(token.take())
            .send()
            .await
            .expect("GetParametersByPath");
        calls += 1;
        count += page.parameters().len();
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_owned()),
            _ => break,
        }
    }
    println!("{calls} {count}");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn mad(v: &[f64]) -> f64 {
    let m = median(v.to_vec());
    median(v.iter().map(|x| (x - m).abs()).collect())
}

/// One floor run: milliseconds from spawn to exit, and SSM calls.
fn floor_run(port: u16, path: &str) -> (f64, u32) {
    let started = Instant::now();
    let out = Command::new(std::env::current_exe().expect("own path"))
        .args([BARE_FETCH, path])
        .env_clear()
        .envs(aws_env(port))
        .output()
        .expect("run the floor");
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    assert!(
        out.status.success(),
        "floor failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let calls = text
        .split_whitespace()
        .next()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (ms, calls)
}

fn rss_kib(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse().ok())
        })
        .unwrap_or(0)
}

/// What holding the snapshot costs a handler: this process's RSS before and after the real
/// `flags` client syncs it from the extension.
async fn handler_added_kib(flags_port: u16) -> u64 {
    let before = rss_kib("self", "VmRSS:");
    let client = flags::client::Client::new(flags_port, None, Duration::from_secs(10));
    let store = flags::Store::default();
    let synced = client.sync_into(&store).await;
    assert!(
        matches!(synced, flags::Synced::Updated { .. }),
        "{synced:?}"
    );
    let after = rss_kib("self", "VmRSS:");
    std::hint::black_box(&store);
    after.saturating_sub(before)
}

/// One extension run: milliseconds from spawn to first `/next`, SSM calls, peak RSS in KiB, and
/// (when asked) the memory a handler adds by holding the snapshot.
async fn extension_run(
    port: u16,
    path: &str,
    measure_handler: bool,
) -> (f64, u64, u64, Option<u64>) {
    let sim = simulator(FreezeMode::None).await;
    let flags_port = free_port();
    // The floor reads the path; the extension reads it with its format marker, if any.
    let mut env = extension_env(port, path, flags_port);
    env.push(("SSM_FLAGS_INIT_TIMEOUT_MS".to_owned(), "9000".to_owned()));
    let spawned_at = SystemTime::now();
    let mut extension = spawn(&sim, &extension_binary(), &env, "cold");
    let id = testkit::first_next(&sim, Duration::from_secs(30))
        .await
        .expect("extension ready");
    let first_next = sim.first_next_poll_at(&id).await.expect("first /next");
    let ms = (first_next.timestamp_micros() - epoch_micros(spawned_at)) as f64 / 1000.0;
    let handler = if measure_handler {
        Some(handler_added_kib(flags_port).await)
    } else {
        None
    };
    let rss = rss_kib(&extension.child.id().to_string(), "VmHWM:");
    let _ = extension.child.kill();
    let _ = extension.child.wait();
    let calls = extension
        .first_line("ready")
        .and_then(|ready| ready["ssm_calls"].as_u64())
        .unwrap_or_else(|| panic!("extension did not load:\n{}", extension.log()));
    let _ = std::fs::remove_file(&extension.log);
    sim.shutdown().await;
    (ms, calls, rss, handler)
}

/// Microseconds since the epoch, to compare with the simulator's timestamps.
fn epoch_micros(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// `n` flagd flags (toggles, 3-way splits, rules on attributes), packed into self-contained
/// document parameters of at most 8 KB (SSM's Advanced tier): returns how many.
async fn seed_documents(port: u16, path: &str, n: usize) -> usize {
    let flags: serde_json::Map<String, serde_json::Value> = (0..n)
        .map(|i| {
            let flag = match i % 3 {
                0 => serde_json::json!({"state": "ENABLED", "variants": {"on": true, "off": false},
                                        "defaultVariant": if i % 2 == 0 { "on" } else { "off" }}),
                1 => serde_json::json!({"state": "ENABLED",
                    "variants": {"a": "control", "b": "compact", "c": "express"},
                    "defaultVariant": "a",
                    "targeting": {"fractional": [["a", 33], ["b", 33], ["c", 34]]}}),
                _ => serde_json::json!({"state": "ENABLED", "variants": {"on": true, "off": false},
                    "defaultVariant": "off",
                    "targeting": {"if": [{"and": [
                        {"in": [{"var": "tier"}, ["gold", "platinum"]]},
                        {"sem_ver": [{"var": "app.version"}, ">=", "2.3.0"]}]}, "on", null]}}),
            };
            (format!("team-{}/flag-{i:04}", i % 7), flag)
        })
        .collect();
    let documents = testkit::flagd::split(&serde_json::json!({ "flags": flags }), 8 * 1024);
    let ssm = ssm_client(port);
    for (i, document) in documents.iter().enumerate() {
        ssm.put_parameter()
            .name(format!("{path}/doc-{i:03}"))
            .value(document.to_string())
            .r#type(ParameterType::String)
            .tier(aws_sdk_ssm::types::ParameterTier::Advanced)
            .overwrite(true)
            .send()
            .await
            .expect("put a document");
    }
    documents.len()
}

async fn seed(port: u16, path: &str, n: usize) {
    let ssm = ssm_client(port);
    for i in 0..n {
        let value = if i % 3 == 0 {
            format!(r#"{{"enabled": true, "rollout_percentage": {}}}"#, i % 101)
        } else {
            (i % 2 == 0).to_string()
        };
        let name = format!("{path}/team-{}/flag-{i:04}", i % 7);
        put(&ssm, &name, &value, ParameterType::String).await;
    }
}

/// One size: `reps` runs of each side against the endpoint on `port`, alternating.
async fn measure(
    port: u16,
    path: &str,
    n: usize,
    reps: usize,
    latency: Option<Duration>,
) -> serde_json::Value {
    let (mut ours, mut floor, mut rss) = (Vec::new(), Vec::new(), 0u64);
    let (mut our_calls, mut floor_calls) = (0u64, 0u32);
    let mut handler_kib = None;
    // Alternate the two sides so drift on the machine hits both alike.
    for _ in 0..reps {
        // The floor process blocks this thread; the proxy runs on the runtime's others.
        let bare = path.split('#').next().unwrap_or(path);
        let (ms, calls) = tokio::task::block_in_place(|| floor_run(port, bare));
        floor.push(ms);
        floor_calls = calls;
        let measure_handler = handler_kib.is_none() && latency.is_none();
        let (ms, calls, peak, handler) = extension_run(port, path, measure_handler).await;
        ours.push(ms);
        our_calls = calls;
        rss = rss.max(peak);
        handler_kib = handler_kib.or(handler);
    }
    let row = serde_json::json!({
        "flags": n,
        "latency_ms": latency.map(|l| l.as_millis() as u64),
        "ours_ms": median(ours.clone()), "ours_mad_ms": mad(&ours),
        "floor_ms": median(floor.clone()), "floor_mad_ms": mad(&floor),
        "ours_calls": our_calls, "floor_calls": floor_calls,
        "calls_lower_bound": n.div_ceil(10),
        "peak_rss_kib": rss, "reps": reps,
        "handler_added_kib": handler_kib,
    });
    println!("{row}");
    row
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if args.get(1).map(String::as_str) == Some(BARE_FETCH) {
        let path = args.get(2).cloned().unwrap_or_default();
        runtime.block_on(bare_fetch(&path));
        return;
    }
    // `cargo bench` passes `--bench`; anything else is a filter we do not support.
    let results = runtime.block_on(async {
        let moto = Moto::start().await;
        let mut rows = Vec::new();
        for n in SIZES {
            let path = format!("/bench/n{n}/features");
            seed(moto.port, &path, n).await;
            rows.push(measure(moto.port, &path, n, REPS, None).await);
        }
        // SSM's real latency from Lambda (tens of ms a call), through the fault proxy: both sides
        // pay it on every page.
        let proxy = FaultProxy::start(moto.port).await;
        proxy.set(Fault::Slow(LATENCY));
        let n = 1_000;
        rows.push(
            measure(
                proxy.port,
                &format!("/bench/n{n}/features"),
                n,
                SLOW_REPS,
                Some(LATENCY),
            )
            .await,
        );
        // The same flags' worth as flagd documents: a few parameters, so a few pages.
        let path = format!("/bench/documents{n}/flags");
        let documents = seed_documents(moto.port, &path, n).await;
        let mut row = measure(
            proxy.port,
            &format!("{path}#flagd"),
            n,
            SLOW_REPS,
            Some(LATENCY),
        )
        .await;
        row["documents"] = documents.into();
        rows.push(row);
        rows
    });
    let dir: PathBuf = testkit::workspace().join("target/ssm-flags-bench");
    std::fs::create_dir_all(&dir).expect("results dir");
    let out = dir.join("cold_start.json");
    std::fs::write(&out, serde_json::to_vec_pretty(&results).expect("json"))
        .expect("write results");
    println!("wrote {}", out.display());
}
