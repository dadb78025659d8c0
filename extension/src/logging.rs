//! Logs: one JSON object per line in Lambda (queryable in CloudWatch Logs Insights), or text.

use tracing_subscriber::fmt;

use crate::config::{Config, LogFormat};

/// Installs the global subscriber for `config`'s level and format, writing to stdout. The AWS
/// SDK's configuration loader logs its own errors only, below `debug`: its warnings while it
/// looks for a region or credentials (raw debug structs, ~900 characters each) are noise
/// before the extension's own one-line error.
pub fn init(config: &Config) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let sdk_level = if config.log_level >= tracing::Level::DEBUG {
        config.log_level
    } else {
        tracing::Level::ERROR
    };
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(config.log_level)
        .with_target("aws_config", sdk_level);
    let layer = fmt::layer()
        .with_writer(std::io::stdout)
        .with_ansi(false)
        .with_target(true);
    let installed = match config.log_format {
        LogFormat::Json => tracing_subscriber::registry()
            .with(layer.json().flatten_event(true).with_current_span(false))
            .with(filter)
            .try_init(),
        LogFormat::Text => tracing_subscriber::registry()
            .with(layer)
            .with(filter)
            .try_init(),
    };
    if let Err(err) = installed {
        eprintln!("ssm-flags: logging already initialised: {err}");
    }
}
