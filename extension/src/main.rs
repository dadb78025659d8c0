//! The `ssm-flags` binary: a Lambda extension shipped as `/opt/extensions/ssm-flags`, or a
//! sidecar (`SSM_FLAGS_MODE=sidecar`); `ssm-flags --health-check [--strict]` checks a running one.

use std::process::ExitCode;

use ssm_flags_extension::config::Config;
use ssm_flags_extension::health::{self, Target};
use ssm_flags_extension::{lifecycle, logging};

const USAGE: &str = "\
usage: ssm-flags                         run (a Lambda extension; a sidecar with SSM_FLAGS_MODE=sidecar)
       ssm-flags --health-check [--strict]
                                         ask the instance running on this host for its health:
                                         exit 0 when it answers, 1 when it does not; with
                                         --strict, also 1 while it serves no flags from the
                                         source (degraded, or only the fallback file)
       ssm-flags --version | --help

Configuration is read from the environment: see the README (SSM_FLAGS_PATH, SSM_FLAGS_MODE, …).";

/// What the command line asks for.
enum Command {
    Run,
    HealthCheck { strict: bool },
    Print(&'static str),
    Usage(String),
}

fn command(args: &[String]) -> Command {
    match args {
        [] => Command::Run,
        [flag] if flag == "--help" || flag == "-h" => Command::Print(USAGE),
        [flag] if flag == "--version" || flag == "-V" => {
            Command::Print(concat!("ssm-flags ", env!("CARGO_PKG_VERSION")))
        }
        [flag] if flag == "--health-check" => Command::HealthCheck { strict: false },
        [a, b]
            if (a == "--health-check" && b == "--strict")
                || (a == "--strict" && b == "--health-check") =>
        {
            Command::HealthCheck { strict: true }
        }
        other => Command::Usage(format!("unknown arguments {other:?}")),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match command(&args) {
        Command::Run => run().await,
        Command::HealthCheck { strict } => health_check(strict).await,
        Command::Print(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Command::Usage(error) => {
            eprintln!("ssm-flags: {error}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("ssm-flags: configuration error: {err}");
            return ExitCode::FAILURE;
        }
    };
    logging::init(&config);
    let paths: Vec<&str> = config.paths.iter().map(|p| p.as_str()).collect();
    let profiles: Vec<String> = config.appconfig.iter().map(ToString::to_string).collect();
    tracing::info!(host = %config.host, paths = %paths.join(","), appconfig = %profiles.join(","), max_age_s = config.max_age.as_secs(), port = config.port, "starting");
    match lifecycle::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "ssm-flags stopped");
            ExitCode::FAILURE
        }
    }
}

async fn health_check(strict: bool) -> ExitCode {
    let checked = match Target::from_vars(|var| std::env::var(var).ok()) {
        Ok(target) => health::check(&target, strict).await,
        Err(err) => Err(err),
    };
    match checked {
        Ok(doc) => {
            println!("{}", health::summary(&doc));
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("ssm-flags: unhealthy: {err}");
            ExitCode::FAILURE
        }
    }
}
