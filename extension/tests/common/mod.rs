//! Real local parts for the integration tests: a moto server as SSM, the real `ssm-flags` and
//! `flag-check` binaries under `lambda-simulator`, and a raw HTTP/1.1 helper.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use aws_sdk_ssm::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ssm::types::ParameterType;
use lambda_simulator::{FreezeMode, Simulator};
use serde_json::Value;

/// The session token the simulated function runs with; the local API requires it.
pub const TOKEN: &str = "test-session-token-7f3a";
/// The flags path every test uses.
pub const PATH: &str = "/myapp/test/features";

#[allow(unused_imports)] // each test binary uses a different part
pub use testkit::{Moto, endpoint, free_port, http_get};

/// An SSM client for the moto server on `port`.
pub fn ssm_client(port: u16) -> aws_sdk_ssm::Client {
    let config = aws_sdk_ssm::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint(port))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .build();
    aws_sdk_ssm::Client::from_conf(config)
}

/// Creates or overwrites a parameter under [`PATH`].
pub async fn put(ssm: &aws_sdk_ssm::Client, name: &str, value: &str, kind: ParameterType) {
    ssm.put_parameter()
        .name(format!("{PATH}/{name}"))
        .value(value)
        .r#type(kind)
        .overwrite(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {name}: {e:?}"));
}

/// The seed article's flags, plus 25 more under nested names (pagination), a nested
/// `checkout/v2`, a SecureString JSON flag and a malformed one: 32 parameters.
pub async fn seed(ssm: &aws_sdk_ssm::Client) {
    let s = ParameterType::String;
    put(ssm, "dark-mode", "true", s.clone()).await;
    put(
        ssm,
        "new-analytics",
        r#"{"enabled": true, "rollout_percentage": 25, "allowed_regions": ["us-east-1", "us-west-2"], "excluded_user_ids": ["user-123", "user-456"]}"#,
        s.clone(),
    )
    .await;
    put(
        ssm,
        "new-checkout-flow",
        r#"{"enabled": true, "allowed_user_ids": ["alice", "user-123"]}"#,
        s.clone(),
    )
    .await;
    put(
        ssm,
        "new-payment-processor",
        r#"{"enabled": true, "rollout_percentage": 5, "fallback_on_error": true}"#,
        s.clone(),
    )
    .await;
    put(ssm, "checkout/v2", "false", s.clone()).await;
    put(
        ssm,
        "partner-api",
        r#"{"enabled": true, "api_key": "sk-live-DO-NOT-LOG-91c2"}"#,
        ParameterType::SecureString,
    )
    .await;
    put(
        ssm,
        "broken",
        r#"{"enabled": true, "rollout_percentage": 150}"#,
        s.clone(),
    )
    .await;
    for i in 0..25 {
        let value = if i % 2 == 0 { "true" } else { "false" };
        put(
            ssm,
            &format!("team-{}/feature-{i:02}", i % 3),
            value,
            s.clone(),
        )
        .await;
    }
}

/// The flag names [`seed`] creates, with what `flag-check` must answer for user `alice` in
/// us-east-1 (bucket 1).
pub fn seeded_expectations() -> Vec<(String, bool)> {
    let mut all: Vec<(String, bool)> = [
        ("dark-mode", true),
        ("new-analytics", true),
        ("new-checkout-flow", true),
        ("new-payment-processor", true),
        ("checkout/v2", false),
        ("partner-api", true),
        ("broken", false),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_owned(), v))
    .collect();
    all.extend((0..25).map(|i| (format!("team-{}/feature-{i:02}", i % 3), i % 2 == 0)));
    all
}

/// A spawned binary whose stdout and stderr go to a log file; killed on drop.
pub struct Proc {
    /// The child.
    pub child: Child,
    /// Its log file.
    pub log: PathBuf,
}

impl Proc {
    /// Everything it has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its first JSON log line whose message starts with `prefix`.
    pub fn first_line(&self, prefix: &str) -> Option<Value> {
        self.json_lines()
            .into_iter()
            .find(|l| l["message"].as_str().is_some_and(|m| m.starts_with(prefix)))
    }

    /// Its JSON log lines.
    pub fn json_lines(&self) -> Vec<Value> {
        self.log()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits for it to exit, up to `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Spawns `binary` with the simulator's Lambda environment plus `env`, logging to a file.
pub fn spawn(sim: &Simulator, binary: &Path, env: &[(String, String)], tag: &str) -> Proc {
    let log = std::env::temp_dir().join(format!(
        "ssm-flags-test-{}-{}-{tag}.log",
        std::process::id(),
        free_port()
    ));
    let file = std::fs::File::create(&log).expect("log file");
    let err = file.try_clone().expect("log file");
    let child = Command::new(binary)
        .envs(sim.lambda_env_vars())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(file)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
    if sim.freeze_mode() == FreezeMode::Process {
        sim.register_freeze_pid(child.id());
    }
    Proc { child, log }
}

/// The `flag-check` example binary, built by `cargo test --workspace` next to this test.
pub fn flag_check_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    let bin = dir.join("flag-check");
    assert!(
        bin.exists(),
        "{} not found: run the tests with `cargo test --workspace` (or `make test`)",
        bin.display()
    );
    bin
}

/// The environment both processes of a simulated function get.
pub fn function_env(ssm_port: u16, flags_port: u16, max_age_s: u64) -> Vec<(String, String)> {
    [
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AWS_SESSION_TOKEN", TOKEN.to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ENDPOINT_URL", endpoint(ssm_port)),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("SSM_FLAGS_PATH", PATH.to_owned()),
        ("SSM_FLAGS_PORT", flags_port.to_string()),
        ("SSM_FLAGS_MAX_AGE", max_age_s.to_string()),
        ("SSM_FLAGS_REFRESH_TIMEOUT_MS", "2000".to_owned()),
        ("SSM_FLAGS_LOG_FORMAT", "json".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// A simulated function: the simulator, the extension and the `flag-check` runtime.
pub struct Function {
    /// The Lambda emulator.
    pub sim: Simulator,
    /// The `ssm-flags` extension process.
    pub extension: Proc,
    /// The `flag-check` runtime process, once started.
    pub runtime: Option<Proc>,
    /// The extension's local API port.
    pub flags_port: u16,
    /// Time from spawning the extension to its first `/next` (ready for the first invocation).
    pub ready_in: Duration,
}

impl Function {
    /// Starts the extension, waits until it asks for its first event (Lambda's init gate), then
    /// starts the runtime.
    pub async fn start(ssm_port: u16, max_age_s: u64, freeze: FreezeMode) -> Self {
        Self::start_with(ssm_port, max_age_s, freeze, &[]).await
    }

    /// [`Function::start`] with extra environment for both processes (later values win).
    pub async fn start_with(
        ssm_port: u16,
        max_age_s: u64,
        freeze: FreezeMode,
        extra: &[(&str, &str)],
    ) -> Self {
        let sim = Simulator::builder()
            .function_name("flag-check")
            .freeze_mode(freeze)
            .extension_ready_timeout(Duration::from_secs(10))
            .shutdown_timeout(Duration::from_secs(5))
            .build()
            .await
            .expect("simulator");
        let flags_port = free_port();
        let mut env = function_env(ssm_port, flags_port, max_age_s);
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let started = Instant::now();
        let extension = spawn(
            &sim,
            Path::new(env!("CARGO_BIN_EXE_ssm-flags")),
            &env,
            "ext",
        );
        testkit::first_next(&sim, Duration::from_secs(15))
            .await
            .unwrap_or_else(|e| panic!("{e}:\n{}", extension.log()));
        let ready_in = started.elapsed();
        let runtime = Some(spawn(&sim, &flag_check_binary(), &env, "fn"));
        Self {
            sim,
            extension,
            runtime,
            flags_port,
            ready_in,
        }
    }

    /// Invokes `flag-check` for `user` in `region` with every seeded flag name; returns the response.
    pub async fn check(&self, user: &str, region: &str, names: &[String]) -> Value {
        let id = self
            .sim
            .enqueue_payload(serde_json::json!({"user_id": user, "region": region, "flags": names}))
            .await;
        let state = self
            .sim
            .wait_for_invocation_complete(&id, Duration::from_secs(20))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "invocation did not complete: {e}\nextension log:\n{}\nruntime log:\n{}",
                    self.extension.log(),
                    self.runtime.as_ref().map(Proc::log).unwrap_or_default()
                )
            });
        // Wait for the extension too: it asks for the next event once its INVOKE work is done.
        let _ = self
            .sim
            .wait_for_extensions_ready(&id, Duration::from_secs(10))
            .await;
        state
            .response
            .map(|r| r.payload)
            .unwrap_or_else(|| panic!("invocation failed: {:?}", state.error))
    }

    /// One invocation, then a graceful SHUTDOWN; waits (up to 5 s) for the extension to exit.
    /// Returns its exit status, the time from SHUTDOWN to exit, and its log.
    pub async fn invoke_then_shutdown(self) -> (std::process::ExitStatus, Duration, String) {
        let Self {
            sim,
            mut extension,
            runtime,
            ..
        } = self;
        let id = sim
            .enqueue_payload(serde_json::json!({"user_id": "alice", "flags": ["dark-mode"]}))
            .await;
        sim.wait_for_invocation_complete(&id, Duration::from_secs(10))
            .await
            .expect("the handler answers");
        let started = Instant::now();
        sim.graceful_shutdown(lambda_simulator::ShutdownReason::Spindown)
            .await;
        let status = extension
            .wait_exit(Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("no exit after SHUTDOWN:\n{}", extension.log()));
        let took = started.elapsed();
        drop(runtime);
        (status, took, extension.log())
    }

    /// GET on the extension's local API with the token.
    pub async fn api(&self, path: &str) -> (u16, Value) {
        let (status, body) = http_get(self.flags_port, path, &[("X-SSM-Flags-Token", TOKEN)])
            .await
            .expect("local API reachable");
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }
}
