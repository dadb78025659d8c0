//! Issue 21 §8, §9, §12 through the real `ssm-flags` binary: what a local attacker can put at the
//! paths the agent and its health check read — a token no client could send, a token directory
//! someone else controls, a FIFO at the token file or the fallback file, a fallback file whose
//! parse error would quote a secret. Each must stop the start naming the variable, or be refused
//! at once; none may hang a process.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Moto, PATH, seed};
use testkit::free_port;
use testkit::lambda::extension_binary;
use testkit::sidecar::Sidecar;

/// Generous for a busy 2-core machine; a process that hangs (a blocking read) far outlasts it.
const EXIT_BOUND: Duration = Duration::from_secs(20);

/// Runs `ssm-flags <args>` with exactly `env` until it exits: its exit code and output, or
/// `None` if it was still running after [`EXIT_BOUND`] (then it is killed).
fn run_to_exit(env: &[(String, String)], args: &[&str]) -> Option<(Option<i32>, String)> {
    let dir = scratch("out");
    let (out, err) = (dir.join("stdout"), dir.join("stderr"));
    let mut child = std::process::Command::new(extension_binary())
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .args(args)
        .stdout(std::fs::File::create(&out).expect("stdout"))
        .stderr(std::fs::File::create(&err).expect("stderr"))
        .spawn()
        .expect("run ssm-flags");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if started.elapsed() > EXIT_BOUND {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(&out).unwrap_or_default()
        + &std::fs::read_to_string(&err).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    status.map(|status| (status.code(), text))
}

/// A fresh private directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ssm-flags-security-{}-{name}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    dir
}

fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo");
    assert!(made.success());
}

/// A sidecar's environment with no configured token: it generates one into `token_file`.
fn without_token(token_file: &Path, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let file = token_file.to_str().expect("utf-8");
    let mut all = vec![
        ("SSM_FLAGS_TOKEN", ""),
        ("AWS_SESSION_TOKEN", ""),
        ("SSM_FLAGS_TOKEN_FILE", file),
    ];
    all.extend_from_slice(extra);
    Sidecar::env(free_port(), PATH, free_port(), 60, &all)
}

#[test]
fn a_token_no_client_could_send_stops_the_start_naming_the_variable() {
    for bad in ["s3cr3t\n", "s3cr3t ", "s3 cr3t"] {
        let env = Sidecar::env(
            free_port(),
            PATH,
            free_port(),
            60,
            &[("SSM_FLAGS_TOKEN", bad)],
        );
        let (code, out) = run_to_exit(&env, &[]).expect("it stops at start");
        assert_eq!(code, Some(1), "{bad:?}: {out}");
        assert!(
            out.contains("SSM_FLAGS_TOKEN is not a usable API token"),
            "{bad:?}: {out}"
        );
        assert!(!out.contains("s3cr3t"), "the token is never shown: {out}");
    }
}

#[test]
fn a_token_directory_someone_else_controls_stops_the_start() {
    let dir = scratch("token-dir");
    // Writable by everyone (another user made it, 0777): they could swap the token.
    let open = dir.join("open");
    std::fs::create_dir(&open).expect("dir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    // A link to a directory: followed, it would write wherever it points.
    let real = dir.join("real");
    std::fs::create_dir(&real).expect("dir");
    let linked = dir.join("linked");
    std::os::unix::fs::symlink(&real, &linked).expect("symlink");
    let mut cases = vec![
        (open.join("token"), "writable by its group or others"),
        (linked.join("token"), "symbolic link"),
    ];
    // Another user's directory (as root here: one owned by nobody).
    let theirs = dir.join("theirs");
    std::fs::create_dir(&theirs).expect("dir");
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    if std::os::unix::fs::chown(&theirs, Some(65534), None).is_ok() {
        cases.push((theirs.join("token"), "not by this user"));
    }
    for (token_file, why) in cases {
        let (code, out) =
            run_to_exit(&without_token(&token_file, &[]), &[]).expect("it stops at start");
        assert_eq!(code, Some(1), "{}: {out}", token_file.display());
        assert!(
            out.contains("SSM_FLAGS_TOKEN_FILE") && out.contains(why),
            "{}: {out}",
            token_file.display()
        );
        assert!(
            !token_file.exists(),
            "no token written: {}",
            token_file.display()
        );
    }
    assert!(
        std::fs::read_dir(&real).expect("dir").next().is_none(),
        "nothing written through the link"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_fifo_at_the_token_path_fails_the_health_check_at_once() {
    let dir = scratch("fifo-token");
    let fifo = dir.join("token");
    mkfifo(&fifo);
    let env = without_token(&fifo, &[]);
    let started = Instant::now();
    let (code, out) = run_to_exit(&env, &["--health-check"]).expect("the check ends");
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("not a regular file but a FIFO") && out.contains("SSM_FLAGS_TOKEN_FILE"),
        "{out}"
    );
    println!(
        "--health-check with a FIFO token file: failed in {:?}",
        started.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fallback_file_that_is_a_fifo_or_leaks_a_value_is_refused_and_the_agent_serves() {
    let moto = Moto::start().await;
    seed(&common::ssm_client(moto.port)).await;
    let dir = scratch("fallback");
    let fifo = dir.join("fallback.json");
    mkfifo(&fifo);
    let fifo_var = fifo.to_str().expect("utf-8").to_owned();
    let env = Sidecar::env(
        moto.port,
        PATH,
        free_port(),
        60,
        &[("SSM_FLAGS_FALLBACK_FILE", &fifo_var)],
    );
    // Starts (the health answers, the first load completes) instead of blocking on the FIFO.
    let sidecar = Sidecar::start_with(env).await;
    let (status, health) = sidecar.api(flags::wire::HEALTH_PATH).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "ok", "{health}");
    let log = sidecar.proc.log();
    assert!(
        log.contains("SSM_FLAGS_FALLBACK_FILE cannot be used") && log.contains("FIFO"),
        "{log}"
    );
    drop(sidecar);

    // A parse error says where (file, line, column), never what the file holds.
    let leaky = dir.join("leaky.json");
    std::fs::write(
        &leaky,
        "{\"flags\": {\n  \"payments\": {\"value\": true, \"version\": \"sk_live_51Hx\"}\n}}",
    )
    .expect("write");
    let leaky_var = leaky.to_str().expect("utf-8").to_owned();
    let env = Sidecar::env(
        moto.port,
        PATH,
        free_port(),
        60,
        &[("SSM_FLAGS_FALLBACK_FILE", &leaky_var)],
    );
    let sidecar = Sidecar::start_with(env).await;
    let log = sidecar.proc.log();
    assert!(
        log.contains("leaky.json") && log.contains("line 2"),
        "{log}"
    );
    assert!(!log.contains("sk_live"), "a value in the log: {log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 21 §19: on a shared host, `SSM_FLAGS_SOCKET` serves the same API on a Unix socket
/// (mode 0660) instead of TCP; the token is still required; the Rust client and
/// `--health-check` reach it; the socket goes away with the agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unix_socket_serves_the_api_to_the_client_and_the_health_check_only() {
    use flags::endpoint::Endpoint;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let moto = Moto::start().await;
    seed(&common::ssm_client(moto.port)).await;
    let dir = scratch("socket");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).expect("chmod");
    let socket = dir.join("api.sock");
    let socket_var = socket.to_str().expect("utf-8").to_owned();
    let port = free_port();
    let env = Sidecar::env(
        moto.port,
        PATH,
        port,
        60,
        &[
            ("SSM_FLAGS_SOCKET", &socket_var),
            ("SSM_FLAGS_SOCKET_GROUP", "0"),
        ],
    );
    let agent = testkit::lambda::spawn_process(&extension_binary(), [], &env, "sidecar");

    // The flags client, over the socket.
    let client = flags::client::Client::new(
        0,
        Some(testkit::sidecar::SIDECAR_TOKEN),
        Duration::from_secs(2),
    )
    .with_endpoint(Endpoint::Unix(socket.clone()));
    let store = flags::Store::default();
    let started = Instant::now();
    loop {
        if let flags::Synced::Updated { status, .. } = client.sync_into(&store).await
            && status == flags::Status::Ok
        {
            break;
        }
        assert!(
            started.elapsed() < EXIT_BOUND,
            "no flags over the socket:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(store.get("dark-mode").enabled());

    // 0660, the group asked for; and no TCP listener at all.
    let meta = std::fs::symlink_metadata(&socket).expect("the socket");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), 0);
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "the API is not on TCP when a socket is configured"
    );

    // The token is still required.
    let mut raw = tokio::net::UnixStream::connect(&socket)
        .await
        .expect("connect");
    raw.write_all(b"GET /v1/flags HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(EXIT_BOUND, raw.read_to_end(&mut answer)).await;
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 401"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // The health check, with the agent's own settings.
    let (code, out) = run_to_exit(&env, &["--health-check"]).expect("the check ends");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("ssm-flags ok"), "{out}");

    // Stopped: the socket is removed.
    agent.terminate();
    let started = Instant::now();
    while socket.exists() {
        assert!(
            started.elapsed() < EXIT_BOUND,
            "the socket outlived the agent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
