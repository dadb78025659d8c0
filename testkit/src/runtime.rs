//! A function whose runtime is a command — an interpreter and its script, say the Python
//! example's Runtime API loop (`examples/powertools/python/bootstrap.py`) — rather than a
//! workspace binary, under the same Lambda emulator as [`crate::lambda::Function`], without the
//! extension: a function that reads its flags some other way (Powertools' `AppConfigStore`),
//! whose answers a test compares with a Rust function's.
//!
//! ```no_run
//! # async fn f() {
//! let python = testkit::process::python();
//! let script = testkit::workspace().join("examples/powertools/python/bootstrap.py");
//! let function = testkit::runtime::CommandFunction::start(
//!     &python,
//!     &[script.to_str().expect("utf-8")],
//!     &[("APPCONFIG_APPLICATION", "catalogue")],
//! )
//! .await;
//! let answer = function.invoke(serde_json::json!({"context": {}})).await;
//! # }
//! ```

use std::path::Path;
use std::time::Duration;

use lambda_simulator::{FreezeMode, Simulator};
use serde_json::Value;

use crate::lambda::{Proc, simulator, wait_complete};

/// Spawns `program args` with the simulator's Lambda environment (`AWS_LAMBDA_RUNTIME_API`,
/// the function's name and region…) plus `env` (later values win) and nothing else of this
/// process's environment, logging its stdout and stderr to a file.
pub fn spawn_command(
    sim: &Simulator,
    program: &Path,
    args: &[&str],
    env: &[(String, String)],
    tag: &str,
) -> Proc {
    let proc = crate::lambda::spawn_with_args(program, args, sim.lambda_env_vars(), env, tag);
    if sim.freeze_mode() == FreezeMode::Process {
        sim.register_freeze_pid(proc.child.id());
    }
    proc
}

/// A simulated function running a command as its runtime, with no extension.
pub struct CommandFunction {
    /// The Lambda emulator.
    pub sim: Simulator,
    /// The runtime process.
    pub runtime: Proc,
}

impl CommandFunction {
    /// Starts an emulator (no freezing) and `program args` as its runtime, with `env` on top of
    /// the Lambda environment.
    pub async fn start(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let sim = simulator(FreezeMode::None).await;
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let runtime = spawn_command(&sim, program, args, &env, "cmd");
        Self { sim, runtime }
    }

    /// Invokes the function with `event` (waiting up to 30 s: an interpreter's first
    /// invocation imports its libraries); returns the response. Panics, with the runtime's
    /// log, when the invocation fails or does not complete.
    pub async fn invoke(&self, event: Value) -> Value {
        let id = self.sim.enqueue_payload(event).await;
        let state = wait_complete(&self.sim, &id, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{e}\nruntime log:\n{}", self.runtime.log()));
        state.response.map(|r| r.payload).unwrap_or_else(|| {
            panic!(
                "invocation failed: {:?}\nruntime log:\n{}",
                state.error,
                self.runtime.log()
            )
        })
    }
}
