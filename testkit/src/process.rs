//! Programs a test runs to their end — the operator CLI, AWS's and OpenFeature's published
//! clients (Python in the workspace's `.venv`, Node) — with exactly the environment given, and
//! what they printed.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::workspace;

/// What a run printed, and how it exited.
#[derive(Debug, Clone)]
pub struct Ran {
    /// The exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<std::process::Output> for Ran {
    fn from(output: std::process::Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Ran {
    /// Standard output as JSON; panics with both outputs when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}):\nstdout: {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    /// Both outputs, for assertion messages and text checks.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Whether it exited 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// The workspace's Python, where `make venv` installs moto, boto3 and the OpenFeature SDK.
pub fn python() -> PathBuf {
    let python = workspace().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} not found: run `make venv` (or `make test`)",
        python.display()
    );
    python
}

/// Runs `program args` (in `dir`, if given) with exactly `env` plus `PATH`, so interpreters find
/// their own helpers, and waits for it.
pub async fn run(
    program: impl AsRef<OsStr>,
    args: &[&str],
    dir: Option<&Path>,
    env: &[(&str, &str)],
) -> Ran {
    let program = program.as_ref();
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    command
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.to_string_lossy()))
        .into()
}
