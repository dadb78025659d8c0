//! Logs: one JSON object per line in Lambda (queryable in CloudWatch Logs Insights), or text.

use tracing_subscriber::fmt;

use crate::config::{Config, LogFormat};

/// Installs the global subscriber for `config`'s level and format, writing to stdout.
pub fn init(config: &Config) {
    let builder = fmt()
        .with_max_level(config.log_level)
        .with_writer(std::io::stdout)
        .with_ansi(false)
        .with_target(true);
    let installed = match config.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    if let Err(err) = installed {
        eprintln!("ssm-flags: logging already initialised: {err}");
    }
}
