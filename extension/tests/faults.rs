//! Faults between the extension and SSM, injected by a proxy in front of moto that answers in
//! AWS's wire format: throttling, 5xx, slowness past the timeout, connection resets. The promise:
//! init never fails, no known flag changes value, retries back off instead of looping, and flags
//! recover within about one max age of SSM coming back.

mod common;

use std::time::{Duration, Instant};

use common::{Function, Moto, seed, seeded_expectations};
use flags::wire::{HEALTH_PATH, TOKEN_HEADER};
use lambda_simulator::FreezeMode;
use serde_json::{Value, json};
use testkit::fault::{Fault, FaultProxy};

fn names() -> Vec<String> {
    seeded_expectations().into_iter().map(|(n, _)| n).collect()
}

fn assert_all_known(response: &Value, when: &str) {
    for (name, expected) in seeded_expectations() {
        assert_eq!(
            response["flags"][&name],
            json!(expected),
            "{name} {when}: {response}"
        );
    }
}

/// Invokes until `done` holds, returning the response and how long it took.
async fn until(f: &Function, limit: Duration, done: impl Fn(&Value) -> bool) -> (Value, Duration) {
    let names = names();
    let who = ("alice", "us-east-1", names.as_slice());
    f.check_until(who, limit, Duration::from_millis(50), done)
        .await
}

async fn setup() -> (Moto, FaultProxy) {
    let moto = Moto::start().await;
    seed(&common::ssm_client(moto.port)).await;
    let proxy = FaultProxy::start(moto.port).await;
    (moto, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_at_init_degrades_backs_off_and_recovers() {
    let (_moto, proxy) = setup().await;
    proxy.set(Fault::Throttle(1.0));
    let f = common::start(proxy.port, 1, FreezeMode::None).await;
    assert!(
        f.ready_in < Duration::from_secs(3),
        "init stays bounded: {:?}",
        f.ready_in
    );
    let at_init = proxy.requests();
    assert!(
        (1..=2).contains(&at_init),
        "one fetch (with one SDK retry) at init, got {at_init}"
    );

    // A burst of invocations while throttled: the backoff keeps the extension from retrying on
    // every one of them.
    let burst = Instant::now();
    for _ in 0..10 {
        let r = f.check("alice", "us-east-1", &names()).await;
        assert_eq!(r["snapshot_version"], 0, "degraded: defaults");
    }
    let during = proxy.requests() - at_init;
    println!(
        "10 invocations in {:?} while throttled: {during} SSM requests",
        burst.elapsed()
    );
    assert!(
        during <= 6,
        "{during} requests for 10 invocations: a tight retry loop"
    );
    let failure = f
        .extension
        .first_line("flag refresh failed")
        .expect("failure logged");
    assert!(
        failure["error"]
            .as_str()
            .is_some_and(|e| e.contains("throttled")),
        "{failure}"
    );
    assert_eq!(failure["transient"], true);

    proxy.set(Fault::Pass);
    let (recovered, took) = until(&f, Duration::from_secs(5), |r| r["snapshot_version"] == 1).await;
    println!("recovered {took:?} after throttling stopped (max age 1 s)");
    assert_all_known(&recovered, "after recovery");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_resets_and_empty_answers_mid_run_keep_every_known_flag() {
    let (_moto, proxy) = setup().await;
    let f = common::start(proxy.port, 1, FreezeMode::None).await;
    let good = f.check("alice", "us-east-1", &names()).await;
    assert_all_known(&good, "before faults");

    for fault in [
        Fault::ServerError,
        Fault::Reset,
        Fault::Throttle(1.0),
        Fault::EmptyAnswer,
    ] {
        proxy.set(fault);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (stale, _) = until(&f, Duration::from_secs(5), |r| r["status"] == "stale").await;
        assert_all_known(&stale, &format!("during {fault:?}"));
        assert_eq!(stale["snapshot_version"], 1, "{fault:?}");
        proxy.set(Fault::Pass);
        let (back, took) = until(&f, Duration::from_secs(5), |r| r["status"] == "ok").await;
        println!("{fault:?}: fresh again {took:?} after the fault ended");
        assert_all_known(&back, &format!("after {fault:?}"));
    }
    let counts = proxy.counts();
    let (errors, resets) = (
        counts
            .server_errors
            .load(std::sync::atomic::Ordering::Relaxed),
        counts.resets.load(std::sync::atomic::Ordering::Relaxed),
    );
    assert!(
        errors >= 1 && resets >= 1,
        "faults were injected: {errors} 5xx, {resets} resets"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_ssm_never_stretches_an_invocation_past_the_refresh_timeout() {
    let (_moto, proxy) = setup().await;
    let f = common::start_with(
        proxy.port,
        1,
        FreezeMode::None,
        &[("SSM_FLAGS_REFRESH_TIMEOUT_MS", "500")],
    )
    .await;
    let _ = f.check("alice", "us-east-1", &names()).await;
    proxy.set(Fault::Slow(Duration::from_secs(5)));
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // This invocation finds the flags old: the refresh hangs on SSM and is cut at 500 ms.
    let id = f
        .sim
        .enqueue_payload(json!({"user_id": "alice", "flags": names()}))
        .await;
    let started = Instant::now();
    let state = testkit::lambda::wait_complete(&f.sim, &id, Duration::from_secs(10))
        .await
        .expect("invocation");
    let handler_done = started.elapsed();
    f.sim
        .wait_for_extensions_ready(&id, Duration::from_secs(10))
        .await
        .expect("the extension asks for the next event");
    let extension_done = started.elapsed();
    println!(
        "slow SSM: handler answered in {handler_done:?}, extension ready after {extension_done:?}"
    );
    assert!(
        handler_done < Duration::from_millis(500),
        "the handler never waits for SSM"
    );
    assert!(
        extension_done < Duration::from_millis(500 + 400),
        "the invocation was stretched to {extension_done:?}, past the 500 ms refresh timeout"
    );
    let response = state.response.expect("response").payload;
    assert_all_known(&response, "while SSM is slow");
    let (stale, _) = until(&f, Duration::from_secs(5), |r| r["status"] == "stale").await;
    assert_all_known(&stale, "stale while SSM is slow");
}

fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {sig} {pid}");
}

/// Seconds the extension stays frozen (`FREEZE_SECONDS`, default 3; the long variant uses minutes).
fn freeze_for() -> Duration {
    Duration::from_secs(
        std::env::var("FREEZE_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_in_the_middle_of_a_refresh_and_thawed_later() {
    let (_moto, proxy) = setup().await;
    let f = common::start(proxy.port, 1, FreezeMode::None).await;
    let _ = f.check("alice", "us-east-1", &names()).await;
    proxy.set(Fault::Slow(Duration::from_secs(60)));
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // This invocation starts a refresh that hangs on SSM; freeze the extension in the middle.
    let id = f
        .sim
        .enqueue_payload(json!({"user_id": "alice", "flags": names()}))
        .await;
    testkit::lambda::wait_complete(&f.sim, &id, Duration::from_secs(10))
        .await
        .expect("handler answers");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = f.extension.child.id();
    signal(pid, "-STOP");
    tokio::time::sleep(freeze_for()).await;
    proxy.set(Fault::Pass);
    let thawed = Instant::now();
    signal(pid, "-CONT");

    // After the thaw, the interrupted refresh ends at its timeout (already past) and the
    // extension asks for the next event; later invocations get fresh flags.
    f.sim
        .wait_for_extensions_ready(&id, Duration::from_secs(5))
        .await
        .expect("the extension resumes after the thaw");
    println!(
        "frozen {:?} mid-refresh; ready {:?} after the thaw",
        freeze_for(),
        thawed.elapsed()
    );
    let (fresh, _) = until(&f, Duration::from_secs(5), |r| r["status"] == "ok").await;
    assert_all_known(&fresh, "after the thaw");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_a_refresh_exits_zero_within_the_refresh_timeout() {
    let (_moto, proxy) = setup().await;
    let f = common::start(proxy.port, 1, FreezeMode::None).await;
    proxy.set(Fault::Slow(Duration::from_secs(60)));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The invocation starts a refresh against a hung SSM; SHUTDOWN arrives during it.
    let (status, took, log) = f.invoke_then_shutdown().await;
    println!("SHUTDOWN during a refresh: exited {status:?} after {took:?}");
    assert!(status.success(), "{log}");
    assert!(
        took < Duration::from_millis(2000 + 1500),
        "{took:?}: the refresh timeout is 2 s"
    );
}

/// Invokes without waiting for the extension (it may be dead): the handler's answer only.
async fn answer(f: &Function) -> Value {
    let id = f
        .sim
        .enqueue_payload(json!({"user_id": "alice", "region": "us-east-1", "flags": names()}))
        .await;
    testkit::lambda::wait_complete(&f.sim, &id, Duration::from_secs(10))
        .await
        .expect("the handler answers")
        .response
        .expect("a response, not an error")
        .payload
}

/// Starts another extension on `f`'s port, reading SSM through `ssm_port` (registered with its
/// own emulator: `f`'s accepts registrations only during init), and waits until its health says
/// `status`.
async fn replacement(
    f: &Function,
    ssm_port: u16,
    tag: &str,
    status: &str,
) -> (lambda_simulator::Simulator, common::Proc) {
    let sim = lambda_simulator::Simulator::builder()
        .build()
        .await
        .expect("an emulator for the new extension");
    let mut env = common::function_env(ssm_port, common::PATH, f.flags_port, 60);
    env.retain(|(k, _)| k != "AWS_LAMBDA_RUNTIME_API");
    let extension = common::spawn(&sim, &testkit::lambda::extension_binary(), &env, tag);
    let started = Instant::now();
    let expected = format!("\"{status}\"");
    loop {
        let health =
            common::http_get(f.flags_port, HEALTH_PATH, &[(TOKEN_HEADER, common::TOKEN)]).await;
        if matches!(health, Ok((200, ref body)) if body.contains(&expected)) {
            return (sim, extension);
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{tag} not up ({status}):\n{}",
            extension.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_extension_killed_while_handlers_run_and_a_new_one_taking_over() {
    let (moto, proxy) = setup().await;
    let mut f = common::start(proxy.port, 60, FreezeMode::None).await;
    let before = f.check("alice", "us-east-1", &names()).await;
    assert_all_known(&before, "before the kill");

    let _ = f.extension.child.kill();
    let _ = f.extension.child.wait();
    // Handlers keep running: the sync fails at once and the flags already held are served.
    for _ in 0..3 {
        let started = Instant::now();
        let r = answer(&f).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "no hang without the extension"
        );
        assert_all_known(&r, "with the extension dead");
    }
    let runtime_log = f
        .runtime
        .as_ref()
        .map(common::Proc::log)
        .unwrap_or_default();
    assert_eq!(
        runtime_log
            .matches("ssm-flags extension unavailable")
            .count(),
        1,
        "logged once per outage, not per call:\n{runtime_log}"
    );

    // A new extension comes up on the same port (registered with its own emulator: this one
    // accepts registrations only during init). First while SSM fails: it serves an empty,
    // degraded snapshot, which must never replace the flags the handler holds (issue 11 §5).
    proxy.set(Fault::ServerError);
    let (_sim, mut degraded) = replacement(&f, proxy.port, "ext-degraded", "degraded").await;
    for _ in 0..2 {
        let r = answer(&f).await;
        assert_all_known(&r, "with a restarted extension that has no flags yet");
        assert_eq!(r["status"], "ok", "the held snapshot: {r}");
    }
    let _ = degraded.child.kill();
    let _ = degraded.child.wait();
    proxy.set(Fault::Pass);

    // Then a new extension with SSM working and a changed flag: the handler resumes from it.
    common::put(
        &common::ssm_client(moto.port),
        "dark-mode",
        "false",
        aws_sdk_ssm::types::ParameterType::String,
    )
    .await;
    let (_sim2, _replacement) = replacement(&f, proxy.port, "ext2", "ok").await;
    let resumed = answer(&f).await;
    assert_eq!(
        resumed["flags"]["dark-mode"], false,
        "the new extension's flags: {resumed}"
    );
    assert_eq!(resumed["status"], "ok");
    let runtime_log = f
        .runtime
        .as_ref()
        .map(common::Proc::log)
        .unwrap_or_default();
    assert!(
        runtime_log.contains("ssm-flags extension reachable again"),
        "{runtime_log}"
    );
}

/// Issue 11 §1: a listing that is malformed (`{}`), emptied (`{"Parameters": []}`) or cut short
/// after its first page, for three max ages, never removes or changes a flag; a genuine deletion
/// of every flag still takes effect, once SSM confirms it by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_listings_for_three_max_ages_never_remove_a_flag_but_deletions_apply() {
    let (moto, proxy) = setup().await;
    let f = common::start(proxy.port, 1, FreezeMode::None).await;
    assert_all_known(
        &f.check("alice", "us-east-1", &names()).await,
        "before faults",
    );
    for fault in [
        Fault::EmptyAnswer,
        Fault::EmptyList,
        Fault::TruncateAfterFirstPage,
    ] {
        proxy.set(fault);
        let started = Instant::now();
        let mut noticed = false;
        while started.elapsed() < Duration::from_secs(3) {
            let r = f.check("alice", "us-east-1", &names()).await;
            assert_all_known(&r, &format!("during {fault:?}"));
            assert_eq!(r["snapshot_version"], 1, "{fault:?}: no new snapshot");
            noticed |= r["status"] == "stale";
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(noticed, "{fault:?}: the handler saw the flags marked stale");
        proxy.set(Fault::Pass);
        let (back, took) = until(&f, Duration::from_secs(5), |r| r["status"] == "ok").await;
        println!("{fault:?} for 3 s: every flag kept; fresh again {took:?} after");
        assert_all_known(&back, &format!("after {fault:?}"));
    }
    let log = f.extension.log();
    assert!(log.contains("without a Parameters array"), "{log}");
    assert!(log.contains("GetParameters still finds"), "{log}");

    // An operator deletes every flag: SSM confirms by name that they are gone.
    let ssm = common::ssm_client(moto.port);
    let all: Vec<String> = names()
        .into_iter()
        .map(|n| format!("{}/{n}", common::PATH))
        .collect();
    for chunk in all.chunks(10) {
        ssm.delete_parameters()
            .set_names(Some(chunk.to_vec()))
            .send()
            .await
            .expect("delete");
    }
    let (gone, took) = until(&f, Duration::from_secs(5), |r| {
        r["status"] == "ok" && r["snapshot_version"] != 1
    })
    .await;
    println!("a genuine deletion of every flag applied {took:?} after it was made");
    for name in names() {
        assert_eq!(gone["flags"][&name], false, "{name}: {gone}");
        assert!(
            gone["reasons"][&name]
                .as_str()
                .is_some_and(|r| r.contains("not found")),
            "{name}: {gone}"
        );
    }
}

/// Issue 11 §2: one SecureString whose KMS key the role may not use never hides the other flags.
/// (What real SSM answers when KMS refuses one parameter cannot be observed here: the proxy
/// answers as AWS documents an `AccessDeniedException` for `kms:Decrypt`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secure_string_the_role_cannot_decrypt_never_hides_the_other_flags() {
    let (moto, proxy) = setup().await;
    proxy.set(Fault::DenyDecryption);
    let f = common::start(proxy.port, 1, FreezeMode::None).await;
    // A new environment: every other flag is served; the SecureString never decrypted reads as
    // its default, with an error naming the permission — never its ciphertext.
    let r = f.check("alice", "us-east-1", &names()).await;
    for (name, expected) in seeded_expectations() {
        let want = name != "partner-api" && expected;
        assert_eq!(r["flags"][&name], json!(want), "{name}: {r}");
    }
    assert_eq!(r["status"], "ok", "{r}");
    let (_, health) = f.api(HEALTH_PATH).await;
    assert_eq!(health["undecryptable"], json!(["partner-api"]), "{health}");
    assert!(
        health["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("kms:Decrypt")),
        "{health}"
    );
    let (_, all) = f.api(flags::wire::FLAGS_PATH).await;
    let partner = &all["flags"]["partner-api"];
    assert_eq!(
        (partner["value"].as_str(), partner["secure"].as_bool()),
        (Some(""), Some(true))
    );
    assert!(
        partner["error"]
            .as_str()
            .is_some_and(|e| e.contains("kms:Decrypt")),
        "{partner}"
    );
    let warned = f
        .extension
        .first_line("cannot decrypt some SecureString flags")
        .expect("the log names them");
    assert!(
        warned["flags"]
            .as_str()
            .is_some_and(|f| f.contains("partner-api")),
        "{warned}"
    );

    // Decryption allowed: the flag arrives, and the health clears.
    proxy.set(Fault::Pass);
    let (ok, _) = until(&f, Duration::from_secs(5), |r| {
        r["flags"]["partner-api"] == true
    })
    .await;
    assert_all_known(&ok, "once decryption works");
    let (_, health) = f.api(HEALTH_PATH).await;
    assert!(health.get("undecryptable").is_none(), "{health}");

    // Refused again mid-run: the SecureString keeps its last good value while the other flags
    // stay current (a change made meanwhile arrives).
    proxy.set(Fault::DenyDecryption);
    common::put(
        &common::ssm_client(moto.port),
        "dark-mode",
        "false",
        aws_sdk_ssm::types::ParameterType::String,
    )
    .await;
    let (changed, _) = until(&f, Duration::from_secs(5), |r| {
        r["flags"]["dark-mode"] == false
    })
    .await;
    assert_eq!(
        changed["flags"]["partner-api"], true,
        "its last good value: {changed}"
    );
    assert_eq!(changed["status"], "ok");
    let (_, health) = f.api(HEALTH_PATH).await;
    assert_eq!(health["undecryptable"], json!(["partner-api"]), "{health}");
}

/// A cold start while SSM is down, with a fallback file deployed (`SSM_FLAGS_FALLBACK_FILE`):
/// handlers read the deployed values, marked `fallback` — for a kill switch or a rollout the
/// code default would be a wrong value — and the first successful fetch replaces them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_start_during_an_outage_serves_the_deployed_fallback_not_defaults() {
    let (_moto, proxy) = setup().await;
    let dir = std::env::temp_dir().join(format!("ssm-flags-fallback-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("fallback.json");
    // As deployed: dark-mode on (its code default is off), checkout/v2 on (SSM says off).
    std::fs::write(
        &file,
        r#"{"version": 3, "flags": {"dark-mode": {"value": true}, "checkout/v2": {"value": "true"}}}"#,
    )
    .expect("fallback file");
    proxy.set(Fault::ServerError);
    let path = file.to_str().expect("utf-8 path");
    let f = common::start_with(
        proxy.port,
        1,
        FreezeMode::None,
        &[("SSM_FLAGS_FALLBACK_FILE", path)],
    )
    .await;

    let response = f.check("alice", "us-east-1", &names()).await;
    assert_eq!(response["status"], "fallback", "{response}");
    assert_eq!(response["flags"]["dark-mode"], true, "{response}");
    assert_eq!(response["flags"]["checkout/v2"], true, "{response}");
    assert_eq!(
        response["flags"]["new-analytics"], false,
        "not in the file: its default"
    );
    let (_, health) = f.api(HEALTH_PATH).await;
    assert_eq!(health["status"], "fallback", "{health}");
    assert_eq!(health["flags"], 2);
    assert!(
        f.extension
            .first_line("serving the deployed fallback")
            .is_some(),
        "{}",
        f.extension.log()
    );

    // SSM back: the first successful fetch replaces the fallback whole.
    proxy.set(Fault::Pass);
    let (response, took) = until(&f, Duration::from_secs(15), |r| r["status"] == "ok").await;
    println!("fallback replaced {took:?} after SSM came back");
    assert_all_known(&response, "after the fallback");
    let (_, health) = f.api(HEALTH_PATH).await;
    assert_eq!(health["flags"], 32, "{health}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The flags a sidecar serves (`/v1/flags`), by name, and its health status.
async fn served(sidecar: &testkit::sidecar::Sidecar) -> (Vec<String>, String) {
    let (_, all) = sidecar.api(flags::wire::FLAGS_PATH).await;
    let names = all["flags"]
        .as_object()
        .map(|f| f.keys().cloned().collect())
        .unwrap_or_default();
    let health = sidecar.health().await.unwrap_or_default();
    (
        names,
        health["status"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Polls the sidecar every 50 ms until `done` holds for what it serves; panics after `limit`.
async fn sidecar_until(
    sidecar: &testkit::sidecar::Sidecar,
    limit: Duration,
    what: &str,
    done: impl Fn(&[String], &str) -> bool,
) -> (Vec<String>, String, Duration) {
    let started = Instant::now();
    loop {
        let (names, status) = served(sidecar).await;
        if done(&names, &status) {
            return (names, status, started.elapsed());
        }
        assert!(
            started.elapsed() < limit,
            "{what}: not within {limit:?} ({} flags, {status}):\n{}",
            names.len(),
            sidecar.proc.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The sidecar's resident memory in kB (Linux), for the report.
fn rss_kb(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Issue 21 §4: a listing that never ends — its `NextToken` repeats, or it brings new names page
/// after page — fails the fetch: the flags are served stale (EMF `Stale` = 1, so the alarm
/// fires), the refresh backs off instead of resuming at once, and memory stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_that_never_ends_fails_the_fetch_backs_off_and_raises_the_stale_alarm() {
    /// A fault, the sidecar's extra environment, and what the logged error says.
    type Case = (Fault, &'static [(&'static str, &'static str)], &'static str);
    let cases: [Case; 2] = [
        (Fault::RepeatedNextToken, &[], "repeated its NextToken"),
        (
            Fault::EndlessListing,
            &[("SSM_FLAGS_MAX_PARAMETERS", "100")],
            "SSM_FLAGS_MAX_PARAMETERS",
        ),
    ];
    for (fault, extra, expected) in cases {
        let (_moto, proxy) = setup().await;
        let sidecar = testkit::sidecar::Sidecar::start(proxy.port, common::PATH, 1, extra).await;
        let (names, status) = served(&sidecar).await;
        assert_eq!((names.len(), status.as_str()), (32, "ok"));
        let pid = sidecar.proc.child.id();
        let rss_before = rss_kb(pid);
        proxy.set(fault);
        let listings = || {
            proxy
                .counts()
                .listings
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        let before = listings();
        let (names, _, took) = sidecar_until(&sidecar, Duration::from_secs(6), "stale", |_, s| {
            s == "stale"
        })
        .await;
        assert_eq!(names.len(), 32, "{fault:?}: every flag kept");
        // Four more seconds: a failing fetch backs off (0.5–1 s at a 1 s max age), it never
        // resumes at once.
        let window = Instant::now();
        let at_window = listings();
        tokio::time::sleep(Duration::from_secs(4)).await;
        let in_window = listings() - at_window;
        let (names, status) = served(&sidecar).await;
        let rss_after = rss_kb(pid);
        println!(
            "{fault:?}: stale {took:?} after the fault began; {in_window} listing calls in {:?} \
             after ({} in all); RSS {rss_before:?} → {rss_after:?} kB",
            window.elapsed(),
            listings() - before,
        );
        assert_eq!((names.len(), status.as_str()), (32, "stale"), "{fault:?}");
        let per_attempt = if fault == Fault::RepeatedNextToken {
            2
        } else {
            11
        };
        assert!(
            in_window <= per_attempt * 9,
            "{fault:?}: {in_window} listing calls in 4 s: no backoff"
        );
        let lines = sidecar.proc.json_lines();
        let failure = lines
            .iter()
            .find(|l| l["message"] == "flag refresh failed: serving the last good flags")
            .unwrap_or_else(|| panic!("{fault:?}: no failure logged:\n{}", sidecar.proc.log()));
        assert!(
            failure["error"]
                .as_str()
                .is_some_and(|e| e.contains(expected)),
            "{fault:?}: {failure}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.get("_aws").is_some() && l["Stale"] == 1 && l["RefreshFailed"] == 1),
            "{fault:?}: the EMF Stale metric is raised:\n{}",
            sidecar.proc.log()
        );
        proxy.set(Fault::Pass);
        sidecar_until(&sidecar, Duration::from_secs(5), "ok again", |n, s| {
            s == "ok" && n.len() == 32
        })
        .await;
    }
}

/// `count` flags `f00`, `f01`, … under [`common::PATH`] in a fresh moto, and a proxy in front.
async fn flags_behind_a_proxy(count: usize) -> (Moto, FaultProxy, aws_sdk_ssm::Client) {
    let moto = Moto::start().await;
    let ssm = common::ssm_client(moto.port);
    for i in 0..count {
        common::put(
            &ssm,
            &format!("f{i:02}"),
            "true",
            aws_sdk_ssm::types::ParameterType::String,
        )
        .await;
    }
    let proxy = FaultProxy::start(moto.port).await;
    (moto, proxy, ssm)
}

async fn delete(ssm: &aws_sdk_ssm::Client, flags: &[String]) {
    let names: Vec<String> = flags
        .iter()
        .map(|f| format!("{}/{f}", common::PATH))
        .collect();
    for chunk in names.chunks(10) {
        ssm.delete_parameters()
            .set_names(Some(chunk.to_vec()))
            .send()
            .await
            .expect("delete");
    }
}

fn audit_removed(sidecar: &testkit::sidecar::Sidecar) -> Vec<String> {
    sidecar
        .proc
        .json_lines()
        .into_iter()
        .filter(|l| l["target"] == "ssm_flags::audit" && l["change"] == "removed")
        .filter_map(|l| l["flag"].as_str().map(str::to_owned))
        .collect()
}

/// Issue 21 §5a: a listing cut short while 30 flags were really deleted. Every flag the listing
/// left out is asked for by name (⌈n/10⌉ `GetParameters` calls), so the five that still exist
/// are found and nothing is removed until the listing is whole; then exactly the 30 go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_cut_short_during_a_real_deletion_never_removes_a_flag_that_exists() {
    let (_moto, proxy, ssm) = flags_behind_a_proxy(45).await;
    let sidecar = testkit::sidecar::Sidecar::start(proxy.port, common::PATH, 1, &[]).await;
    sidecar_until(&sidecar, Duration::from_secs(5), "loaded", |n, s| {
        s == "ok" && n.len() == 45
    })
    .await;
    // The first page, as the extension reads it: the only flags a truncated listing shows.
    let first: Vec<String> = ssm
        .get_parameters_by_path()
        .path(common::PATH)
        .recursive(true)
        .max_results(10)
        .send()
        .await
        .expect("first page")
        .parameters()
        .iter()
        .filter_map(|p| p.name()?.rsplit('/').next().map(str::to_owned))
        .collect();
    assert_eq!(first.len(), 10);
    let mut left_out: Vec<String> = (0..45)
        .map(|i| format!("f{i:02}"))
        .filter(|f| !first.contains(f))
        .collect();
    left_out.sort();
    // Five that stay, placed where a sample of one name in four (10 of 35) does not look.
    let stay: Vec<String> = [1, 2, 3, 5, 6]
        .iter()
        .map(|&i| left_out[i].clone())
        .collect();
    let deleted: Vec<String> = left_out
        .iter()
        .filter(|f| !stay.contains(f))
        .cloned()
        .collect();
    assert_eq!(deleted.len(), 30);

    proxy.set(Fault::TruncateAfterFirstPage);
    delete(&ssm, &deleted).await;
    let started = Instant::now();
    let mut noticed = false;
    while started.elapsed() < Duration::from_secs(3) {
        let (names, status) = served(&sidecar).await;
        for f in &stay {
            assert!(names.contains(f), "{f} exists and was removed ({status})");
        }
        noticed |= status == "stale";
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(noticed, "the incomplete listing is marked stale");
    assert!(audit_removed(&sidecar).is_empty(), "{}", sidecar.proc.log());

    proxy.set(Fault::Pass);
    let (names, _, took) = sidecar_until(&sidecar, Duration::from_secs(5), "deletion", |n, s| {
        s == "ok" && n.len() == 15
    })
    .await;
    println!("the 30 deletions applied {took:?} after the listing was whole again");
    for f in stay.iter().chain(&first) {
        assert!(names.contains(f), "{f}: {names:?}");
    }
    let mut removed = audit_removed(&sidecar);
    removed.sort();
    assert_eq!(removed, deleted);
    let refreshed = sidecar
        .proc
        .json_lines()
        .into_iter()
        .find(|l| l["message"] == "flags refreshed" && l["changes"] == 30)
        .expect("the refresh that applied them");
    assert_eq!(
        refreshed["ssm_calls"], 5,
        "two listing pages and ⌈30/10⌉ = 3 GetParameters calls: {refreshed}"
    );
}

/// Issue 21 §5b: a `GetParameters` answer that lacks `InvalidParameters` (`200 {}`, or only
/// `Parameters`) confirms nothing: the fetch fails and every flag stays; only a real answer
/// listing the names as invalid removes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_by_name_answer_without_invalid_parameters_never_removes_a_flag() {
    use testkit::fault::ByName;
    let (_moto, proxy, ssm) = flags_behind_a_proxy(27).await;
    let sidecar = testkit::sidecar::Sidecar::start(proxy.port, common::PATH, 1, &[]).await;
    sidecar_until(&sidecar, Duration::from_secs(5), "loaded", |n, s| {
        s == "ok" && n.len() == 27
    })
    .await;
    let hold = |what: &'static str| {
        let sidecar = &sidecar;
        async move {
            let started = Instant::now();
            let mut noticed = false;
            while started.elapsed() < Duration::from_secs(3) {
                let (names, status) = served(sidecar).await;
                assert_eq!(names.len(), 27, "{what}: a flag was removed ({status})");
                noticed |= status == "stale";
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(noticed, "{what}: marked stale");
        }
    };
    // A listing cut short, and `200 {}` by name.
    proxy.set(Fault::TruncateAfterFirstPage);
    proxy.set_by_name(ByName::Empty);
    hold("200 {} by name").await;
    // 17 flags really deleted, and an answer by name without InvalidParameters.
    proxy.set(Fault::Pass);
    proxy.set_by_name(ByName::WithoutInvalidParameters);
    let gone: Vec<String> = (10..27).map(|i| format!("f{i:02}")).collect();
    delete(&ssm, &gone).await;
    hold("no InvalidParameters").await;
    assert!(audit_removed(&sidecar).is_empty(), "{}", sidecar.proc.log());
    let log = sidecar.proc.log();
    assert!(log.contains("without an InvalidParameters array"), "{log}");

    // A real answer: the 17 are removed.
    proxy.set_by_name(ByName::Pass);
    sidecar_until(&sidecar, Duration::from_secs(5), "deletion", |n, s| {
        s == "ok" && n.len() == 10
    })
    .await;
    assert_eq!(audit_removed(&sidecar).len(), 17);
}
