//! The operator CLI as a process: `ssm-flags-ctl` run with exactly an environment pointed at a
//! local endpoint (moto, or the fault proxy in front of it), as an operator's shell would run it.

use std::process::Stdio;

use crate::lambda::{aws_env, binary};
pub use crate::process::Ran;

/// `ssm-flags-ctl` against the endpoint on a port.
#[derive(Debug, Clone)]
pub struct Ctl {
    env: Vec<(String, String)>,
}

impl Ctl {
    /// The CLI with fake credentials, the test region and every SDK pointed at `port`.
    pub fn new(port: u16) -> Self {
        Self { env: aws_env(port) }
    }

    /// Adds (or replaces) a variable.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Removes a variable.
    pub fn without(mut self, name: &str) -> Self {
        self.env.retain(|(k, _)| k != name);
        self
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(binary("ssm-flags-ctl"));
        command
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Runs `ssm-flags-ctl <args>` to the end.
    pub async fn run(&self, args: &[&str]) -> Ran {
        self.command(args)
            .output()
            .await
            .expect("run ssm-flags-ctl")
            .into()
    }

    /// Starts `ssm-flags-ctl <args>` (a ramp) with its outputs piped; killed on drop.
    pub fn spawn(&self, args: &[&str]) -> tokio::process::Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ssm-flags-ctl")
    }
}

/// Waits for a spawned run to end and collects it.
pub async fn finish(child: tokio::process::Child) -> Ran {
    child
        .wait_with_output()
        .await
        .expect("wait for ssm-flags-ctl")
        .into()
}
