//! The `ssm-flags` extension binary, shipped as `/opt/extensions/ssm-flags`.

use std::process::ExitCode;

use ssm_flags_extension::config::Config;
use ssm_flags_extension::{lifecycle, logging};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("ssm-flags: configuration error: {err}");
            return ExitCode::FAILURE;
        }
    };
    logging::init(&config);
    let paths: Vec<&str> = config.paths.iter().map(|p| p.as_str()).collect();
    tracing::info!(paths = %paths.join(","), max_age_s = config.max_age.as_secs(), port = config.port, "starting");
    match lifecycle::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "ssm-flags stopped");
            ExitCode::FAILURE
        }
    }
}
