//! The real `ssm-flags` extension and `flag-check` function under the Lambda emulator, with a
//! moto server as SSM.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_ssm::types::ParameterType;
use common::{Function, Moto, PATH, TOKEN, http_get, put, seed, seeded_expectations};
use flags::wire::{FETCHED_AT_HEADER, FLAG_PATH_PREFIX, FLAGS_PATH, HEALTH_PATH, TOKEN_HEADER};
use lambda_simulator::FreezeMode;
use serde_json::{Value, json};

fn names() -> Vec<String> {
    seeded_expectations().into_iter().map(|(n, _)| n).collect()
}

fn audit_lines(log: &[Value], flag: &str) -> Vec<Value> {
    log.iter()
        .filter(|l| l["target"] == "ssm_flags::audit" && l["flag"] == flag)
        .cloned()
        .collect()
}

/// Invokes until `done` holds for the response, at most `tries` times `pause` apart.
async fn invoke_until(
    f: &Function,
    names: &[String],
    tries: usize,
    pause: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..tries {
        last = f.check("alice", "us-east-1", names).await;
        if done(&last) {
            return last;
        }
        tokio::time::sleep(pause).await;
    }
    panic!(
        "never reached the expected state; last response: {last}\nextension log:\n{}",
        f.extension.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_every_flag_at_init_and_serves_the_first_invocation() {
    let moto = Moto::start().await;
    seed(&common::ssm_client(moto.port)).await;
    let f = common::start(moto.port, 60, FreezeMode::None).await;
    println!(
        "extension ready for the first invocation in {:?}",
        f.ready_in
    );

    // The very first invocation finds every flag loaded.
    let response = f.check("alice", "us-east-1", &names()).await;
    assert_eq!(response["snapshot_version"], 1, "{response}");
    assert_eq!(response["status"], "ok");
    for (name, expected) in seeded_expectations() {
        assert_eq!(
            response["flags"][&name],
            json!(expected),
            "{name}: {response}"
        );
    }
    assert_eq!(response["flags"]["broken"], false);
    assert!(
        response["reasons"]["broken"]
            .as_str()
            .is_some_and(|r| r.contains("invalid value")),
        "{response}"
    );
    // Who-sees-what for other users: bob is bucket 33, out of the 25% and 5% rollouts.
    let bob = f.check("bob", "us-east-1", &names()).await;
    assert_eq!(bob["flags"]["new-analytics"], false);
    assert_eq!(bob["flags"]["new-checkout-flow"], false);
    let excluded = f.check("user-123", "us-east-1", &names()).await;
    assert_eq!(excluded["flags"]["new-analytics"], false);
    assert_eq!(
        excluded["reasons"]["new-analytics"],
        "user is in `excluded_user_ids`"
    );

    // The local API: every flag, nested names, the SecureString decrypted, the malformed one
    // reported with the parameter named.
    let (status, all) = f.api(FLAGS_PATH).await;
    assert_eq!(status, 200);
    let flags = all["flags"].as_object().expect("flags object");
    assert_eq!(flags.len(), 32, "{all}");
    assert_eq!(
        all["flags"]["partner-api"]["value"]["api_key"],
        "sk-live-DO-NOT-LOG-91c2"
    );
    assert_eq!(all["flags"]["team-1/feature-01"]["value"], false);
    assert_eq!(
        all["flags"]["broken"]["error"],
        format!(
            "parameter {PATH}/broken: field `rollout_percentage` must be a number from 0 to 100, got 150"
        )
    );
    assert!(all["fetched_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    let (status, one) = f
        .api(&format!(
            "{FLAG_PATH_PREFIX}team-2/feature-05?user_id=alice"
        ))
        .await;
    assert_eq!((status, one["enabled"].clone()), (200, json!(false)));
    let (status, missing) = f.api(&format!("{FLAG_PATH_PREFIX}nope")).await;
    assert_eq!(status, 404, "{missing}");
    let (_, health) = f.api(HEALTH_PATH).await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["invalid"], 1);

    // Without the token, or with a wrong one: 401, on every route.
    for path in [
        FLAGS_PATH,
        &format!("{FLAG_PATH_PREFIX}dark-mode"),
        HEALTH_PATH,
    ] {
        let (status, _) = http_get(f.flags_port, path, &[]).await.expect("reachable");
        assert_eq!(status, 401, "{path}");
        let (status, _) = http_get(f.flags_port, path, &[(TOKEN_HEADER, "guess")])
            .await
            .expect("reachable");
        assert_eq!(status, 401, "{path}");
    }

    // Oversized and malformed requests get a 4xx and leave the server serving.
    let big = "a".repeat(20_000);
    let (status, _) = http_get(f.flags_port, HEALTH_PATH, &[("X-Big", &big)])
        .await
        .expect("reachable");
    assert_eq!(status, 431, "oversized headers");
    let status = testkit::raw_request(f.flags_port, b"NOT HTTP AT ALL\r\n\r\n")
        .await
        .expect("reachable");
    assert_eq!(status, 400, "malformed request");
    // DNS rebinding: a browser page reaching 127.0.0.1 under its own name is refused, token or not.
    let rebound = format!(
        "GET {HEALTH_PATH} HTTP/1.1\r\nHost: evil.example.com:{}\r\n{TOKEN_HEADER}: {TOKEN}\r\nConnection: close\r\n\r\n",
        f.flags_port
    );
    let status = testkit::raw_request(f.flags_port, rebound.as_bytes())
        .await
        .expect("reachable");
    assert_eq!(status, 403, "a non-loopback Host");
    let (status, _) = f.api(HEALTH_PATH).await;
    assert_eq!(status, 200, "still serving");

    // The log: one audit line per flag with its SSM version, 4 pages for 32 parameters, the
    // invalid flag named, and never the SecureString's value or the token.
    let log = f.extension.json_lines();
    let loaded = log
        .iter()
        .find(|l| l["message"] == "flags refreshed")
        .expect("load logged");
    assert_eq!(loaded["flags"], 32);
    assert_eq!(loaded["ssm_calls"], 4, "10 parameters per page");
    assert_eq!(loaded["invalid"], 1);
    let added = audit_lines(&log, "new-payment-processor");
    assert_eq!(added.len(), 1);
    assert_eq!(added[0]["change"], "added");
    assert_eq!(added[0]["ssm_version"], 1);
    assert_eq!(
        audit_lines(&log, "partner-api")[0]["value"],
        "(SecureString: not logged)"
    );
    assert!(log.iter().any(|l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("invalid flag value"))
            && l["flag"] == "broken"
    }));
    let raw_log = f.extension.log();
    assert!(
        !raw_log.contains("sk-live-DO-NOT-LOG-91c2"),
        "SecureString value leaked into the log"
    );
    assert!(!raw_log.contains(TOKEN), "token leaked into the log");
    let runtime_log = f
        .runtime
        .as_ref()
        .map(common::Proc::log)
        .unwrap_or_default();
    assert!(
        !runtime_log.contains(TOKEN),
        "token leaked into the function's log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_in_ssm_is_seen_after_the_max_age() {
    let moto = Moto::start().await;
    let ssm = common::ssm_client(moto.port);
    seed(&ssm).await;
    let f = common::start(moto.port, 1, FreezeMode::None).await;
    let names = names();
    let before = f.check("bob", "us-east-1", &names).await;
    assert_eq!(
        before["flags"]["new-payment-processor"], false,
        "bob is bucket 33, out at 5%"
    );

    put(
        &ssm,
        "new-payment-processor",
        r#"{"enabled": true, "rollout_percentage": 50, "fallback_on_error": true}"#,
        ParameterType::String,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // This INVOKE finds the snapshot older than the max age: the extension refreshes beside the
    // handler, and the next invocation's sync picks the change up.
    let changed_at = Instant::now();
    let mut seen = Value::Null;
    for _ in 0..3 {
        seen = f.check("bob", "us-east-1", &names).await;
        if seen["flags"]["new-payment-processor"] == true {
            break;
        }
    }
    assert_eq!(seen["flags"]["new-payment-processor"], true, "{seen}");
    assert_eq!(seen["snapshot_version"], 2);
    println!(
        "change seen {:?} after the max age passed",
        changed_at.elapsed()
    );

    let log = f.extension.json_lines();
    let changed = audit_lines(&log, "new-payment-processor");
    let line = changed
        .iter()
        .find(|l| l["change"] == "changed")
        .expect("audit line for the change");
    assert_eq!(line["ssm_version"], 2);
    assert_eq!(line["previous_ssm_version"], 1);
    assert!(
        line["value"]
            .as_str()
            .is_some_and(|v| v.contains("\"rollout_percentage\": 50"))
    );
    // Unchanged flags are not re-announced.
    assert_eq!(audit_lines(&log, "dark-mode").len(), 1);

    // A removed flag is logged and reads as its default.
    ssm.delete_parameter()
        .name(format!("{PATH}/dark-mode"))
        .send()
        .await
        .expect("delete");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let gone = invoke_until(&f, &names, 3, Duration::ZERO, |r| {
        r["flags"]["dark-mode"] == false
    })
    .await;
    assert_eq!(
        gone["reasons"]["dark-mode"],
        "flag not found: default used, read as false"
    );
    let log = f.extension.json_lines();
    assert!(
        audit_lines(&log, "dark-mode")
            .iter()
            .any(|l| l["change"] == "removed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_snapshot_costs_no_body_and_its_age_stays_right() {
    let moto = Moto::start().await;
    seed(&common::ssm_client(moto.port)).await;
    let f = common::start(moto.port, 1, FreezeMode::None).await;
    let names = names();
    let first = f.check("alice", "us-east-1", &names).await;
    let (status, head, _) = testkit::http_request(
        f.flags_port,
        "GET",
        FLAGS_PATH,
        &[(TOKEN_HEADER, TOKEN)],
        "",
    )
    .await
    .expect("local API");
    assert_eq!(status, 200);
    let etag = header(&head, "etag").expect("an ETag");
    let fetched_at = header(&head, FETCHED_AT_HEADER).expect("the fetch time");

    // Past the max age, several refreshes find the same flags.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        f.check("alice", "us-east-1", &names).await;
    }
    let (status, head, body) = testkit::http_request(
        f.flags_port,
        "GET",
        FLAGS_PATH,
        &[(TOKEN_HEADER, TOKEN), ("If-None-Match", &etag)],
        "",
    )
    .await
    .expect("local API");
    assert_eq!(status, 304, "same content, same tag: no body");
    assert!(body.is_empty());
    let refreshed_at = header(&head, FETCHED_AT_HEADER).expect("the fetch time on a 304");
    assert!(
        refreshed_at > fetched_at,
        "{refreshed_at} after {fetched_at}"
    );

    // The handler kept its snapshot (304s) but its age follows the extension's fetches.
    let last = f.check("alice", "us-east-1", &names).await;
    assert_eq!(last["snapshot_version"], first["snapshot_version"]);
    let age = last["age_seconds"].as_f64().expect("an age");
    assert!(
        age < 3.0,
        "age {age} s: it must count from the last fetch (3.6 s after the first)"
    );
    let refreshes = f
        .extension
        .json_lines()
        .iter()
        .filter(|l| l["message"] == "flags refreshed")
        .count();
    assert!(refreshes >= 3, "{refreshes} refreshes");
}

/// A response header's value, from a raw response head.
fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_flags_are_marked_and_a_broken_one_leaks_its_value_nowhere() {
    const SECRET: &str = "sk_live_BROKEN_SECRET_4f1d";
    let moto = Moto::start().await;
    let ssm = common::ssm_client(moto.port);
    put(&ssm, "dark-mode", "true", ParameterType::String).await;
    put(
        &ssm,
        "partner",
        &format!(r#"{{"enabled": "{SECRET}"}}"#),
        ParameterType::SecureString,
    )
    .await;
    let f = common::start(moto.port, 60, FreezeMode::None).await;
    let names = vec!["dark-mode".to_owned(), "partner".to_owned()];
    let seen = f.check("alice", "us-east-1", &names).await;
    assert_eq!(seen["flags"]["partner"], false, "broken: its default");
    assert_eq!(
        seen["flags"]["dark-mode"], true,
        "the others are unaffected"
    );

    let (_, all) = f.api(FLAGS_PATH).await;
    let partner = &all["flags"]["partner"];
    assert_eq!(partner["secure"], true, "{all}");
    assert!(all["flags"]["dark-mode"].get("secure").is_none(), "{all}");
    let error = partner["error"].as_str().expect("an error");
    assert!(
        error.starts_with(&format!("parameter {PATH}/partner: field `enabled`")),
        "{error}"
    );
    // The authorised value itself is the only place the secret appears.
    let (_, one) = f
        .api(&format!("{FLAG_PATH_PREFIX}partner?user_id=alice"))
        .await;
    let (_, health) = f.api(HEALTH_PATH).await;
    for (what, text) in [
        ("the error", error.to_owned()),
        ("the evaluation", one.to_string()),
        ("health", health.to_string()),
        ("the extension's log", f.extension.log()),
        (
            "the function's log",
            f.runtime
                .as_ref()
                .map(common::Proc::log)
                .unwrap_or_default(),
        ),
    ] {
        assert!(
            !text.contains(SECRET),
            "the secret leaked into {what}: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssm_stopped_mid_run_keeps_serving_the_last_good_flags_marked_stale() {
    let mut moto = Moto::start().await;
    seed(&common::ssm_client(moto.port)).await;
    let f = common::start(moto.port, 1, FreezeMode::None).await;
    let names = names();
    let good = f.check("alice", "us-east-1", &names).await;
    assert_eq!(good["status"], "ok");

    moto.stop();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stale = invoke_until(&f, &names, 4, Duration::ZERO, |r| r["status"] == "stale").await;
    // Every known flag keeps its value: an outage never turns one into a wrong value.
    for (name, expected) in seeded_expectations() {
        assert_eq!(
            stale["flags"][&name],
            json!(expected),
            "{name} while SSM is down"
        );
    }
    assert_eq!(stale["snapshot_version"], 1);
    let (_, health) = f.api(HEALTH_PATH).await;
    assert_eq!(health["status"], "stale", "{health}");
    assert!(
        health["age_seconds"].as_f64().is_some_and(|a| a >= 1.0),
        "{health}"
    );
    assert!(
        health["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot reach SSM")),
        "{health}"
    );
    let failed = f
        .extension
        .first_line("flag refresh failed")
        .expect("failure logged");
    assert_eq!(failed["status"], "stale");
    assert_eq!(failed["transient"], true);

    // Something to alarm on: one CloudWatch EMF line per refresh, stale once SSM is gone.
    let metrics: Vec<Value> = f
        .extension
        .json_lines()
        .into_iter()
        .filter(|l| l.get("_aws").is_some())
        .collect();
    let first = metrics.first().expect("an EMF line at init");
    assert_eq!(
        first["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "ssm-flags"
    );
    assert_eq!(first["FunctionName"], "flag-check");
    assert_eq!(
        (
            first["Stale"].clone(),
            first["Flags"].clone(),
            first["SsmCalls"].clone()
        ),
        (json!(0), json!(32), json!(4))
    );
    let last = metrics.last().expect("EMF lines");
    assert_eq!(
        (last["Stale"].clone(), last["RefreshFailed"].clone()),
        (json!(1), json!(1))
    );
    assert!(
        last["SnapshotAge"].as_f64().is_some_and(|a| a >= 1.0),
        "{last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssm_down_at_init_serves_defaults_then_recovers() {
    let ssm_port = common::free_port();
    let started = Instant::now();
    let f = common::start(ssm_port, 1, FreezeMode::None).await;
    println!("ready (degraded) in {:?}", f.ready_in);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "init must stay bounded when SSM is down"
    );
    let names = names();
    let degraded = f.check("alice", "us-east-1", &names).await;
    assert_eq!(degraded["snapshot_version"], 0);
    assert_eq!(
        degraded["status"], "degraded",
        "the handler can tell no flags yet from old flags"
    );
    for name in &names {
        assert_eq!(
            degraded["flags"][name], false,
            "{name} reads as its default"
        );
    }
    let (_, health) = f.api(HEALTH_PATH).await;
    assert_eq!(health["status"], "degraded");

    // SSM comes back: the flags arrive on a later INVOKE, within the backoff.
    let moto = Moto::start_on(ssm_port).await;
    seed(&common::ssm_client(moto.port)).await;
    let back_at = Instant::now();
    let recovered = invoke_until(&f, &names, 40, Duration::from_millis(250), |r| {
        r["snapshot_version"] == 1
    })
    .await;
    println!("recovered {:?} after SSM came back", back_at.elapsed());
    for (name, expected) in seeded_expectations() {
        assert_eq!(
            recovered["flags"][&name],
            json!(expected),
            "{name} after recovery"
        );
    }
    let (_, health) = f.api(HEALTH_PATH).await;
    assert_eq!(health["status"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeze_and_thaw_between_invocations() {
    let moto = Moto::start().await;
    let ssm = common::ssm_client(moto.port);
    seed(&ssm).await;
    let f = common::start(moto.port, 1, FreezeMode::Process).await;
    let names = names();
    let first = f.check("bob", "us-east-1", &names).await;
    assert_eq!(first["flags"]["dark-mode"], true);
    f.sim
        .wait_for_frozen(Duration::from_secs(5))
        .await
        .expect("the environment freezes once everyone asked for the next event");

    // Flip a flag while the environment is frozen, past the max age.
    put(&ssm, "dark-mode", "false", ParameterType::String).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(f.sim.is_frozen());

    let thawed = invoke_until(&f, &names, 3, Duration::ZERO, |r| {
        r["flags"]["dark-mode"] == false
    })
    .await;
    assert_eq!(thawed["snapshot_version"], 2);
    assert_eq!(
        thawed["status"], "ok",
        "no refresh was left broken by the freeze"
    );
    // (The local API cannot be called from outside while the environment is frozen, as in
    // Lambda: the invocation's answer is the observation.)
    let mut extension = f.extension;
    assert!(
        matches!(extension.child.try_wait(), Ok(None)),
        "the extension survived the freeze"
    );
    let failures = extension
        .json_lines()
        .into_iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("flag refresh failed"))
        })
        .count();
    assert_eq!(failures, 0, "{}", extension.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_serving_and_exits_zero() {
    let moto = Moto::start().await;
    seed(&common::ssm_client(moto.port)).await;
    let f = common::start(moto.port, 60, FreezeMode::None).await;
    let flags_port = f.flags_port;
    let (status, took, log) = f.invoke_then_shutdown().await;
    println!("exited {took:?} after SHUTDOWN");
    assert!(status.success(), "exit status {status:?}:\n{log}");
    assert!(
        http_get(flags_port, HEALTH_PATH, &[]).await.is_err(),
        "the local API must be closed"
    );
    assert!(log.contains("SHUTDOWN: stopping"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_without_the_extension_reads_defaults_quickly() {
    let sim = lambda_simulator::Simulator::builder()
        .build()
        .await
        .expect("simulator");
    let env = common::function_env(common::free_port(), common::PATH, common::free_port(), 60);
    let _runtime = common::spawn(&sim, &testkit::lambda::binary("flag-check"), &env, "noext");
    let started = Instant::now();
    let id = sim
        .enqueue_payload(json!({"user_id": "alice", "flags": ["dark-mode", "new-analytics"]}))
        .await;
    let state = testkit::lambda::wait_complete(&sim, &id, Duration::from_secs(20))
        .await
        .expect("invocation completes without the extension");
    println!(
        "invocation without the extension took {:?}",
        started.elapsed()
    );
    let response = state.response.expect("a response, not an error").payload;
    assert_eq!(response["snapshot_version"], 0);
    assert_eq!(
        response["flags"],
        json!({"dark-mode": false, "new-analytics": false})
    );
    assert_eq!(
        response["reasons"]["dark-mode"],
        "flag not found: default used, read as false"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_configuration_stops_startup_naming_the_variable() {
    for (vars, expected) in [
        (vec![], "SSM_FLAGS_PATH is required"),
        (
            vec![("SSM_FLAGS_PATH", "myapp/features")],
            "must start with '/'",
        ),
        (
            vec![("SSM_FLAGS_PATH", "/a"), ("SSM_FLAGS_MAX_AGE", "soon")],
            "SSM_FLAGS_MAX_AGE=\"soon\" is invalid",
        ),
        // Outside Lambda, or with a malformed address: an error naming it, not a panic.
        (
            vec![("SSM_FLAGS_PATH", "/a")],
            "AWS_LAMBDA_RUNTIME_API is not set",
        ),
        (
            vec![
                ("SSM_FLAGS_PATH", "/a"),
                ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:1/.rt"),
            ],
            "AWS_LAMBDA_RUNTIME_API is \\\"127.0.0.1:1/.rt\\\", which is not an address",
        ),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_ssm-flags"))
            .env_clear()
            .envs(vars.iter().copied())
            .output()
            .expect("run ssm-flags");
        assert!(!output.status.success(), "{vars:?} must fail");
        // Configuration errors go to stderr; later ones are JSON log lines on stdout.
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
        assert!(said.contains(expected), "{vars:?}: {said}");
        assert!(!said.contains("panicked"), "{vars:?}: {said}");
    }
}

/// Issue 11 §4: without `AWS_SESSION_TOKEN` (SnapStart, Managed Instances, local runs) the API is
/// never open: the extension generates a token into a file only this user can read, and the
/// handler's client reads it; `SSM_FLAGS_TOKEN`, when set, is used by both sides instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_session_token_the_api_is_still_closed() {
    use std::os::unix::fs::PermissionsExt;

    let moto = Moto::start().await;
    seed(&common::ssm_client(moto.port)).await;
    let dir = std::env::temp_dir().join(format!("ssm-flags-token-test-{}", common::free_port()));
    let file = dir.join("token");
    let file_var = file.display().to_string();
    let f = common::start_with(
        moto.port,
        60,
        FreezeMode::None,
        &[
            ("AWS_SESSION_TOKEN", ""),
            ("SSM_FLAGS_TOKEN_FILE", &file_var),
        ],
    )
    .await;
    let seen = f.check("alice", "us-east-1", &names()).await;
    assert_eq!(
        seen["snapshot_version"], 1,
        "the handler read the generated token: {seen}"
    );
    let token = std::fs::read_to_string(&file).expect("token file");
    assert_eq!(token.len(), 64);
    let mode = std::fs::metadata(&file)
        .map(|m| m.permissions().mode() & 0o777)
        .ok();
    assert_eq!(mode, Some(0o600), "readable by the function's user only");
    for (headers, expected) in [
        (vec![], 401),
        (vec![(TOKEN_HEADER, TOKEN)], 401),
        (vec![(TOKEN_HEADER, token.as_str())], 200),
    ] {
        let (status, _) = http_get(f.flags_port, HEALTH_PATH, &headers)
            .await
            .expect("reachable");
        assert_eq!(status, expected, "{headers:?}");
    }
    assert!(
        !f.extension.log().contains(&token),
        "the token is never logged"
    );
    drop(f);

    // A token shared by configuration (what a sidecar and its neighbours use).
    let shared = "a-shared-token-for-both-sides";
    let f = common::start_with(
        moto.port,
        60,
        FreezeMode::None,
        &[
            ("AWS_SESSION_TOKEN", ""),
            ("SSM_FLAGS_TOKEN", shared),
            ("SSM_FLAGS_TOKEN_FILE", &file_var),
        ],
    )
    .await;
    let seen = f.check("alice", "us-east-1", &names()).await;
    assert_eq!(seen["snapshot_version"], 1, "{seen}");
    let (status, _) = http_get(f.flags_port, HEALTH_PATH, &[(TOKEN_HEADER, shared)])
        .await
        .expect("reachable");
    assert_eq!(status, 200);
    let (status, _) = http_get(f.flags_port, HEALTH_PATH, &[(TOKEN_HEADER, token.as_str())])
        .await
        .expect("reachable");
    assert_eq!(status, 401, "the old generated token is not accepted");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 11 §4: the local API bounds what one client may hold — the time to send a request's
/// headers (not the idle time of a kept-alive connection), the number of connections, and the
/// size of a request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_on_what_a_client_may_hold() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let moto = Moto::start().await;
    seed(&common::ssm_client(moto.port)).await;
    let f = common::start(moto.port, 60, FreezeMode::None).await;
    let port = f.flags_port;

    // Headers that never finish: cut (within ssm_flags_extension::guard::HEADER_TIMEOUT, 2 s).
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    slow.write_all(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(Duration::from_secs(20), slow.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "closed: {read:?}");
    println!(
        "a request with unfinished headers was cut after {:?}",
        started.elapsed()
    );

    // A kept-alive connection that authenticated may idle longer than that and is still served.
    let request =
        format!("GET {HEALTH_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n{TOKEN_HEADER}: {TOKEN}\r\n\r\n");
    let mut idle = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    idle.write_all(request.as_bytes()).await.expect("write");
    let n = idle.read(&mut buf).await.expect("answer");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    tokio::time::sleep(ssm_flags_extension::guard::AUTH_TIMEOUT + Duration::from_secs(1)).await;
    idle.write_all(request.as_bytes()).await.expect("write");
    let n = idle.read(&mut buf).await.expect("answer");
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "idle is fine once authenticated"
    );

    // A request with a body: refused, and the body is never read.
    let with_body = format!(
        "GET {HEALTH_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n{TOKEN_HEADER}: {TOKEN}\r\nContent-Length: 100000000\r\n\r\n"
    );
    let status = testkit::raw_request(port, with_body.as_bytes())
        .await
        .expect("reachable");
    assert_eq!(status, 413);

    // Issue 21 §7: connections without the token cannot starve its holder. MAX_CONNECTIONS
    // connections that never send a byte: the token holder is still served (the oldest
    // anonymous one is evicted for it), and every one of them is closed within AUTH_TIMEOUT.
    let max = ssm_flags_extension::server::MAX_CONNECTIONS;
    let mut squatters = Vec::with_capacity(max);
    while squatters.len() < max {
        squatters.push(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect"),
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = testkit::raw_request(port, request.as_bytes())
        .await
        .expect("reachable");
    assert_eq!(
        status, 200,
        "the token holder is served while {max} anonymous connections sit idle"
    );
    let (status, _) = f.api(HEALTH_PATH).await;
    assert_eq!(status, 200);
    // Anonymous connections that asked without the token are no better off.
    let anonymous = format!("GET {HEALTH_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let mut unauthorized = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    unauthorized
        .write_all(anonymous.as_bytes())
        .await
        .expect("write");
    let n = unauthorized.read(&mut buf).await.expect("answer");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 401"));
    squatters.push(unauthorized);
    let deadline =
        Instant::now() + ssm_flags_extension::guard::AUTH_TIMEOUT + Duration::from_secs(10);
    for (i, squatter) in squatters.iter_mut().enumerate() {
        // Whatever it was answered is read first; then it must be closed.
        let read = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, squatter.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => continue,
                other => break other,
            }
        };
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "anonymous connection {i} still open: {read:?}"
        );
    }
    drop(squatters);

    // With every slot taken by token holders, the one idle the longest makes room for a new
    // connection (the health check is never locked out); one busy with a request never does.
    let mut holders = vec![idle];
    while holders.len() < max {
        let mut holder = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        holder.write_all(request.as_bytes()).await.expect("write");
        let n = holder.read(&mut buf).await.expect("answer");
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        holders.push(holder);
    }
    let status = testkit::raw_request(port, request.as_bytes())
        .await
        .expect("reachable");
    assert_eq!(status, 200, "a new connection is served past the limit");
    let oldest = &mut holders[0];
    let read = tokio::time::timeout(Duration::from_secs(10), oldest.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the longest idle holder made room: {read:?}"
    );
    holders.truncate(10);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _) = f.api(HEALTH_PATH).await;
    assert_eq!(status, 200, "served again once connections are freed");
}
