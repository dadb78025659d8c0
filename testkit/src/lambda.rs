//! The simulated Lambda environment, once for every test and bench: the fake AWS environment a
//! function runs with, an SSM client against moto, and the real `ssm-flags` extension and a
//! function binary spawned under `lambda-simulator` (Runtime and Extensions APIs, freeze/thaw).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use aws_sdk_ssm::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ssm::types::ParameterType;
use flags::wire::TOKEN_HEADER;
use lambda_simulator::{FreezeMode, Simulator};
use serde_json::Value;

use crate::{endpoint, free_port, http_get};

/// The session token the simulated function runs with; the local API requires it.
pub const TOKEN: &str = "test-session-token-7f3a";
/// The region every simulated function and client uses (moto keeps parameters per region).
pub const REGION: &str = "us-east-1";

/// The AWS part of a function's environment: fake credentials, the region, every SDK pointed
/// at the local endpoint on `port`, and no instance-metadata probing.
pub fn aws_env(port: u16) -> Vec<(String, String)> {
    [
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_ENDPOINT_URL", endpoint(port)),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The configuration of an SSM client for the local endpoint on `port` (add timeouts or retries
/// before building).
pub fn ssm_config(port: u16) -> aws_sdk_ssm::config::Builder {
    aws_sdk_ssm::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint(port))
        .credentials_provider(Credentials::new("test", "test", None, None, "testkit"))
}

/// An SSM client for the local endpoint (moto, or a proxy in front of it) on `port`.
pub fn ssm_client(port: u16) -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::from_conf(ssm_config(port).build())
}

/// Creates or overwrites the parameter `name` (its full name).
pub async fn put(ssm: &aws_sdk_ssm::Client, name: &str, value: &str, kind: ParameterType) {
    ssm.put_parameter()
        .name(name)
        .value(value)
        .r#type(kind)
        .overwrite(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {name}: {e:?}"));
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

    /// Sends it SIGTERM (as a container runtime or systemd stops a service).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -TERM {}", self.child.id());
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

/// Spawns `binary` with the simulator's Lambda environment plus `env` and nothing else of this
/// process's environment (a developer's `AWS_PROFILE` must not leak in), logging to a file.
pub fn spawn(sim: &Simulator, binary: &Path, env: &[(String, String)], tag: &str) -> Proc {
    crate::runtime::spawn_command(sim, binary, &[], env, tag)
}

/// Spawns `binary` with `base` then `env` (later values win) and nothing else of this process's
/// environment, logging to a file.
pub fn spawn_process(
    binary: &Path,
    base: impl IntoIterator<Item = (String, String)>,
    env: &[(String, String)],
    tag: &str,
) -> Proc {
    spawn_with_args(binary, &[], base, env, tag)
}

/// [`spawn_process`] with arguments (an interpreter and its script).
pub fn spawn_with_args(
    binary: &Path,
    args: &[&str],
    base: impl IntoIterator<Item = (String, String)>,
    env: &[(String, String)],
    tag: &str,
) -> Proc {
    let log = std::env::temp_dir().join(format!(
        "ssm-flags-test-{}-{}-{tag}.log",
        std::process::id(),
        free_port()
    ));
    let file = std::fs::File::create(&log).expect("log file");
    let err = file.try_clone().expect("log file");
    let child = Command::new(binary)
        .args(args)
        .env_clear()
        .envs(base)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(file)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
    Proc { child, log }
}

/// A binary of this workspace (`ssm-flags`, `flag-check`, …), built by cargo in the same target
/// directory and profile as the running test or bench (`make test` builds every binary first).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // Tests and benches run from <target>/<profile>/deps; binaries sit in <target>/<profile>.
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} not found: build the workspace's binaries first (`cargo build --workspace --bins`, or `make test`)",
        bin.display()
    );
    bin
}

/// The `ssm-flags` extension binary.
pub fn extension_binary() -> PathBuf {
    binary("ssm-flags")
}

/// The extension's environment without a session token: [`aws_env`], the flags under `path`,
/// served on `flags_port`, JSON logs.
pub fn extension_env(ssm_port: u16, path: &str, flags_port: u16) -> Vec<(String, String)> {
    let mut env = aws_env(ssm_port);
    env.extend(
        [
            ("SSM_FLAGS_PATH", path.to_owned()),
            ("SSM_FLAGS_PORT", flags_port.to_string()),
            ("SSM_FLAGS_LOG_FORMAT", "json".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v)),
    );
    env
}

/// The environment both processes of a simulated function get: [`extension_env`], the session
/// token, the max age and a 2 s refresh timeout.
pub fn function_env(
    ssm_port: u16,
    path: &str,
    flags_port: u16,
    max_age_s: u64,
) -> Vec<(String, String)> {
    let mut env = extension_env(ssm_port, path, flags_port);
    env.extend(
        [
            ("AWS_SESSION_TOKEN", TOKEN.to_owned()),
            ("SSM_FLAGS_MAX_AGE", max_age_s.to_string()),
            ("SSM_FLAGS_REFRESH_TIMEOUT_MS", "2000".to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v)),
    );
    env
}

/// A Lambda emulator freezing processes as `freeze` says, waiting up to 10 s for extensions and
/// 5 s for a shutdown.
pub async fn simulator(freeze: FreezeMode) -> Simulator {
    Simulator::builder()
        .function_name("flag-check")
        .freeze_mode(freeze)
        .extension_ready_timeout(Duration::from_secs(10))
        .shutdown_timeout(Duration::from_secs(5))
        .build()
        .await
        .expect("simulator")
}

/// Waits up to `timeout` for the invocation `id` to complete.
///
/// `Simulator::wait_for_invocation_complete` checks the state, then waits for a notification
/// that `notify_waiters` sends: a completion between the check and the wait is lost (seen with
/// concurrent invocations). Waiting in short slices re-checks the state after each.
pub async fn wait_complete(
    sim: &Simulator,
    id: &str,
    timeout: Duration,
) -> Result<lambda_simulator::InvocationState, String> {
    const SLICE: Duration = Duration::from_millis(100);
    let deadline = Instant::now() + timeout;
    loop {
        match sim.wait_for_invocation_complete(id, SLICE).await {
            Ok(state) => return Ok(state),
            Err(lambda_simulator::SimulatorError::Timeout(_)) if Instant::now() < deadline => {}
            Err(e) => {
                return Err(format!(
                    "invocation {id} did not complete within {timeout:?}: {e}"
                ));
            }
        }
    }
}

/// A simulated function: the simulator, the extension and a runtime (`flag-check` unless told).
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
    /// Starts the extension reading the flags under `path` from the endpoint on `ssm_port`,
    /// waits until it asks for its first event (Lambda's init gate), then starts `flag-check`.
    pub async fn start(ssm_port: u16, path: &str, max_age_s: u64, freeze: FreezeMode) -> Self {
        Self::start_with(ssm_port, path, max_age_s, freeze, &[]).await
    }

    /// [`Function::start`] with extra environment for both processes (later values win).
    pub async fn start_with(
        ssm_port: u16,
        path: &str,
        max_age_s: u64,
        freeze: FreezeMode,
        extra: &[(&str, &str)],
    ) -> Self {
        Self::start_runtime(ssm_port, path, max_age_s, freeze, extra, "flag-check").await
    }

    /// [`Function::start_with`] running the workspace binary `runtime` as the function.
    pub async fn start_runtime(
        ssm_port: u16,
        path: &str,
        max_age_s: u64,
        freeze: FreezeMode,
        extra: &[(&str, &str)],
        runtime: &str,
    ) -> Self {
        let program = binary(runtime);
        Self::start_program(ssm_port, path, max_age_s, freeze, extra, &program, &[]).await
    }

    /// [`Function::start_with`] running `program args` as the function's runtime: a binary
    /// built outside the workspace, or an interpreter and its script (Python, Node).
    pub async fn start_program(
        ssm_port: u16,
        path: &str,
        max_age_s: u64,
        freeze: FreezeMode,
        extra: &[(&str, &str)],
        program: &Path,
        args: &[&str],
    ) -> Self {
        let sim = simulator(freeze).await;
        let flags_port = free_port();
        let mut env = function_env(ssm_port, path, flags_port, max_age_s);
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let started = Instant::now();
        let extension = spawn(&sim, &extension_binary(), &env, "ext");
        crate::first_next(&sim, Duration::from_secs(15))
            .await
            .unwrap_or_else(|e| panic!("{e}:\n{}", extension.log()));
        let ready_in = started.elapsed();
        let runtime = Some(crate::runtime::spawn_command(
            &sim, program, args, &env, "fn",
        ));
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
        self.invoke(serde_json::json!({"user_id": user, "region": region, "flags": names}))
            .await
    }

    /// Invokes `flag-check` with `event`; returns the response.
    pub async fn invoke(&self, event: Value) -> Value {
        let id = self.sim.enqueue_payload(event).await;
        let state = wait_complete(&self.sim, &id, Duration::from_secs(20))
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

    /// Invokes [`Function::check`] every `pause` until `done` holds for its response; returns
    /// it and how long it took. Panics, with the extension's log, past `limit`.
    pub async fn check_until(
        &self,
        (user, region, names): (&str, &str, &[String]),
        limit: Duration,
        pause: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> (Value, Duration) {
        let started = Instant::now();
        loop {
            let response = self.check(user, region, names).await;
            if done(&response) {
                return (response, started.elapsed());
            }
            assert!(
                started.elapsed() < limit,
                "not reached within {limit:?}: {response}\n{}",
                self.extension.log()
            );
            tokio::time::sleep(pause).await;
        }
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
        wait_complete(&sim, &id, Duration::from_secs(10))
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
        let (status, body) = http_get(self.flags_port, path, &[(TOKEN_HEADER, TOKEN)])
            .await
            .expect("local API reachable");
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }
}
