//! Configuration: read once from the environment, validated, every field with its default.

use std::collections::HashMap;
use std::time::Duration;

use crate::host::{Host, Mode};
pub use crate::source::{DEFAULT_MAX_PARAMETERS, MAX_PARAMETERS_CEILING};
use flags::env::{NumberError, parse_number, parse_port};
use flags::experiment::{Emitter, MetricsSetting};
pub use flags::wire::DEFAULT_PORT;
use flags::{FlagPath, Format};
use tracing::Level;

/// Default `SSM_FLAGS_MAX_AGE`: seconds before an INVOKE triggers a refresh.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(60);
/// Default `SSM_FLAGS_REFRESH_TIMEOUT_MS`: how long one refresh may stretch one invocation (and
/// the bound on each SSM call).
pub const DEFAULT_REFRESH_TIMEOUT: Duration = Duration::from_millis(2000);
/// Default `SSM_FLAGS_INIT_TIMEOUT_MS`: how long the load at init may take. Lambda allows 10 s
/// for init; the function's own init runs meanwhile, and the extension must also start and
/// register: 8 s loads about 1,500 flags at 50 ms per SSM call and leaves 2 s of margin.
pub const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_millis(8000);

/// A configuration value that cannot be used; the message names the variable.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("{var} is required: {hint}")]
    Missing {
        /// The variable.
        var: &'static str,
        /// What to set it to.
        hint: &'static str,
    },
    /// The configured API token is not valid (what is wrong, naming the variable; its value is
    /// never shown).
    #[error("{0}")]
    Token(String),
    /// `SSM_FLAGS_SOCKET` is not an absolute path.
    #[error(transparent)]
    Socket(#[from] flags::endpoint::EndpointError),
    /// A variable is set to a value that is not allowed.
    #[error("{var}={value:?} is invalid: {reason}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is allowed.
        reason: String,
    },
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (CloudWatch Logs Insights can query the fields).
    Json,
    /// Human-readable lines, for local runs.
    Text,
}

/// The extension's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `SSM_FLAGS_PATH` (required unless `SSM_FLAGS_APPCONFIG` is set): comma-separated SSM
    /// paths, each starting with `/`, e.g.
    /// `/myapp/prod/features`. A flag's name is its parameter name relative to its path
    /// (see [`flags::path`]). Paths may not overlap, and `/` (every parameter of the account and
    /// region, decrypted) needs `SSM_FLAGS_ALLOW_ROOT_PATH=true`. A path marked `#flagd` (or
    /// `#flagd-v2`) holds flagd documents and flags (see [`flags::format`]).
    pub paths: Vec<FlagPath>,
    /// Each path's and profile's declared format, in precedence order, and
    /// `SSM_FLAGS_POWERTOOLS_ENVELOPE` (optional): a JMESPath expression selecting each
    /// `#powertools` document from its value (Powertools' `envelope`), also applied to a
    /// `#powertools` fallback file.
    pub declared: flags::snapshot::assemble::Declared,
    /// `SSM_FLAGS_APPCONFIG`: comma-separated AppConfig profiles,
    /// `application/environment/profile` by name or ID (see [`crate::appconfig`]). Their flags
    /// are merged after the paths' (a profile wins a name a path also has).
    pub appconfig: Vec<crate::appconfig::ProfileId>,
    /// `SSM_FLAGS_MAX_AGE` (seconds, default 60): an INVOKE refreshes a snapshot older than this.
    pub max_age: Duration,
    /// `SSM_FLAGS_PORT` (default [`DEFAULT_PORT`], 2774): the local API's TCP port on 127.0.0.1.
    pub port: u16,
    /// `SSM_FLAGS_SOCKET` (optional, an absolute path): serve the API on this Unix socket
    /// (mode 0660) instead of TCP; its directory must be this user's and not writable by others.
    pub socket: Option<std::path::PathBuf>,
    /// `SSM_FLAGS_SOCKET_GROUP` (optional): the group given the socket (a name or numeric id);
    /// by default the agent's own group.
    pub socket_group: Option<String>,
    /// `SSM_FLAGS_REFRESH_TIMEOUT_MS` (default 2000, 100–10000): how long one refresh may
    /// stretch one invocation (never past the INVOKE's deadline), and the bound on each SSM call.
    /// A fetch that needs longer goes on at the next invocations and is served once complete.
    pub refresh_timeout: Duration,
    /// `SSM_FLAGS_INIT_TIMEOUT_MS` (default 8000, 100–9000): how long the load at init may take
    /// (Lambda's init limit is 10 s); past it the extension is ready, degraded, and the load goes
    /// on at the first invocations.
    pub init_timeout: Duration,
    /// `SSM_FLAGS_MAX_PARAMETERS` (default [`DEFAULT_MAX_PARAMETERS`], 10000; 1–100000): the most
    /// parameters one fetch may list, and the most listing pages it may read. A listing past it
    /// (or one that repeats a `NextToken` or a name) fails the fetch: the last good flags are
    /// served, stale, with the usual backoff.
    pub max_parameters: usize,
    /// `SSM_FLAGS_LOG_LEVEL` (default `info`): `error`, `warn`, `info`, `debug` or `trace`.
    pub log_level: Level,
    /// `SSM_FLAGS_LOG_FORMAT` (default `json`): `json` or `text`.
    pub log_format: LogFormat,
    /// The local API's token, which every request must carry in `X-SSM-Flags-Token`:
    /// `SSM_FLAGS_TOKEN`, else `AWS_SESSION_TOKEN` (set by Lambda). `None`: the extension
    /// generates a random one at start and writes it to [`Config::token_file`]. Never shown by
    /// `Debug`.
    pub token: Option<flags::token::Secret>,
    /// `SSM_FLAGS_TOKEN_FILE` (default `/tmp/ssm-flags/token`): where a generated token is
    /// written (mode 0600; a directory the extension makes is 0700, one that exists must be its
    /// own and writable by no one else), for the function's `flags` client to read.
    pub token_file: std::path::PathBuf,
    /// `AWS_REGION` (set by Lambda): the region the local API's evaluations use for a request
    /// that names none, as the handler library does.
    pub region: Option<String>,
    /// `SSM_FLAGS_METRICS` (default `emf`, or `off` with `SSM_FLAGS_LOG_FORMAT=text`; `emf` or
    /// `off` when set): freshness metrics as CloudWatch Embedded
    /// Metric Format lines, in `SSM_FLAGS_METRICS_NAMESPACE` (default `ssm-flags`) with the
    /// dimension `FunctionName` (`AWS_LAMBDA_FUNCTION_NAME`, else `ssm-flags`); experiment
    /// metrics in the same namespace (see [`crate::experiments`]).
    pub metrics: Option<Metrics>,
    /// Where it runs (see [`crate::host`]): `SSM_FLAGS_MODE` (`lambda`, the default, or
    /// `sidecar`), and in Lambda `AWS_LAMBDA_INITIALIZATION_TYPE` (set by Lambda;
    /// `lambda-managed-instances` on Managed Instances).
    pub host: Host,
    /// `SSM_FLAGS_FALLBACK_FILE` (optional): a snapshot file (the format `flags::load_file`
    /// reads) deployed with the function or the layer, served, marked `fallback`, when the first
    /// load fails, until a fetch succeeds.
    pub fallback_file: Option<std::path::PathBuf>,
}

/// Where freshness metrics go (see [`crate::metrics`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    /// The CloudWatch namespace.
    pub namespace: String,
    /// The value of the `FunctionName` dimension.
    pub function: String,
    /// `SSM_FLAGS_SERVICE` (default: the function's name): the `Service` dimension of
    /// experiment metrics.
    pub service: String,
    /// `SSM_FLAGS_METRICS_INTERVAL` (seconds, default 60, 1–3600): how often the experiment
    /// counts of single evaluations and `/v1/track` are written.
    pub interval: Duration,
}

impl Metrics {
    /// Where experiment counts go.
    pub fn experiments(&self) -> Emitter {
        Emitter::new(self.namespace.clone(), self.service.clone())
    }
}

impl Config {
    /// Where the local API listens: the socket when `SSM_FLAGS_SOCKET` is set, else TCP on the
    /// port — the precedence [`flags::endpoint::Endpoint::from_env`] gives clients too.
    pub fn endpoint(&self) -> flags::endpoint::Endpoint {
        match &self.socket {
            Some(path) => flags::endpoint::Endpoint::Unix(path.clone()),
            None => flags::endpoint::Endpoint::Tcp(self.port),
        }
    }

    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// Reads the configuration from a set of variables (the environment, or a test's map).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |var: &str| vars.get(var).map(|v| v.trim()).filter(|v| !v.is_empty());
        let appconfig = match get("SSM_FLAGS_APPCONFIG") {
            None => Vec::new(),
            Some(raw) => crate::appconfig::ProfileId::parse_list(raw)
                .map_err(|reason| invalid("SSM_FLAGS_APPCONFIG", raw, reason))?,
        };
        let marked = match get("SSM_FLAGS_PATH") {
            None if !appconfig.is_empty() => Vec::new(),
            raw => parse_paths(raw)?,
        };
        let envelope =
            match get(flags::snapshot::POWERTOOLS_ENVELOPE_VAR) {
                None => None,
                Some(raw) => Some(flags::flagd::powertools::Envelope::new(raw).map_err(|e| {
                    invalid(flags::snapshot::POWERTOOLS_ENVELOPE_VAR, raw, e.reason)
                })?),
            };
        let declared = flags::snapshot::assemble::Declared::new(
            marked.clone(),
            appconfig
                .iter()
                .map(|p| (p.to_string(), p.format))
                .collect(),
        )
        .with_envelope(envelope);
        let paths: Vec<FlagPath> = marked.into_iter().map(|(path, _)| path).collect();
        let allow_root = match get("SSM_FLAGS_ALLOW_ROOT_PATH") {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => return Err(invalid("SSM_FLAGS_ALLOW_ROOT_PATH", v, "use true or false")),
        };
        if !allow_root && paths.iter().any(FlagPath::is_root) {
            return Err(invalid(
                "SSM_FLAGS_PATH",
                get("SSM_FLAGS_PATH").unwrap_or_default(),
                "\"/\" reads (and decrypts) every parameter of the account in this region; set SSM_FLAGS_ALLOW_ROOT_PATH=true if that is meant",
            ));
        }
        let max_age = match get("SSM_FLAGS_MAX_AGE") {
            None => DEFAULT_MAX_AGE,
            Some(v) => Duration::from_secs(parse_number("SSM_FLAGS_MAX_AGE", v, 0, 86_400)?),
        };
        let port = match get("SSM_FLAGS_PORT") {
            None => DEFAULT_PORT,
            Some(v) => match parse_port("SSM_FLAGS_PORT", v)? {
                // AWS's own extensions (the Parameters and Secrets extension, and AppConfig's).
                2772 | 2773 => {
                    return Err(invalid(
                        "SSM_FLAGS_PORT",
                        v,
                        "2772 and 2773 belong to AWS's own extensions; pick another port",
                    ));
                }
                port => port,
            },
        };
        let refresh_timeout = match get("SSM_FLAGS_REFRESH_TIMEOUT_MS") {
            None => DEFAULT_REFRESH_TIMEOUT,
            Some(v) => Duration::from_millis(parse_number(
                "SSM_FLAGS_REFRESH_TIMEOUT_MS",
                v,
                100,
                10_000,
            )?),
        };
        let init_timeout = match get("SSM_FLAGS_INIT_TIMEOUT_MS") {
            None => DEFAULT_INIT_TIMEOUT,
            Some(v) => {
                Duration::from_millis(parse_number("SSM_FLAGS_INIT_TIMEOUT_MS", v, 100, 9_000)?)
            }
        };
        let max_parameters = match get("SSM_FLAGS_MAX_PARAMETERS") {
            None => DEFAULT_MAX_PARAMETERS,
            Some(v) => parse_number(
                "SSM_FLAGS_MAX_PARAMETERS",
                v,
                1,
                MAX_PARAMETERS_CEILING as u64,
            )? as usize,
        };
        // No combination can overrun Lambda's 10 s init: the load at init has its own budget,
        // capped at 9 s, whatever the refresh timeout (which bounds invocations, not init).
        let log_level = match get("SSM_FLAGS_LOG_LEVEL") {
            None => Level::INFO,
            Some(v) => v.parse().map_err(|_| {
                invalid(
                    "SSM_FLAGS_LOG_LEVEL",
                    v,
                    "use error, warn, info, debug or trace",
                )
            })?,
        };
        let metrics = MetricsSetting::parse(get("SSM_FLAGS_METRICS")).map_err(|_| {
            invalid(
                "SSM_FLAGS_METRICS",
                get("SSM_FLAGS_METRICS").unwrap_or_default(),
                "use emf or off",
            )
        })? == MetricsSetting::Emf;
        let interval = match get("SSM_FLAGS_METRICS_INTERVAL") {
            None => crate::experiments::FLUSH_INTERVAL,
            Some(v) => {
                Duration::from_secs(parse_number("SSM_FLAGS_METRICS_INTERVAL", v, 1, 3_600)?)
            }
        };
        let metrics = match metrics {
            false => None,
            true => Some(Metrics {
                interval,
                namespace: get("SSM_FLAGS_METRICS_NAMESPACE")
                    .filter(|n| !n.trim().is_empty())
                    .unwrap_or(crate::metrics::DEFAULT_NAMESPACE)
                    .to_owned(),
                function: get("AWS_LAMBDA_FUNCTION_NAME")
                    .unwrap_or("ssm-flags")
                    .to_owned(),
                service: Emitter::service_from(
                    get("SSM_FLAGS_SERVICE"),
                    Some(get("AWS_LAMBDA_FUNCTION_NAME").unwrap_or("ssm-flags")),
                )
                .map_err(|_| {
                    invalid(
                        "SSM_FLAGS_SERVICE",
                        get("SSM_FLAGS_SERVICE").unwrap_or_default(),
                        "use at most 255 printable ASCII characters (a CloudWatch dimension value)",
                    )
                })?,
            }),
        };
        let log_format = match get("SSM_FLAGS_LOG_FORMAT") {
            None => LogFormat::Json,
            Some(v) if v.eq_ignore_ascii_case("json") => LogFormat::Json,
            Some(v) if v.eq_ignore_ascii_case("text") => LogFormat::Text,
            Some(v) => return Err(invalid("SSM_FLAGS_LOG_FORMAT", v, "use json or text")),
        };
        // Metric lines are JSON on stdout: in a text log (a terminal, a local run) they are
        // noise unless asked for.
        let metrics = match (log_format, get("SSM_FLAGS_METRICS")) {
            (LogFormat::Text, None) => None,
            _ => metrics,
        };
        let mode = match get("SSM_FLAGS_MODE") {
            None => Mode::Lambda,
            Some(v) if v.eq_ignore_ascii_case("lambda") => Mode::Lambda,
            Some(v) if v.eq_ignore_ascii_case("sidecar") => Mode::Sidecar,
            Some(v) => return Err(invalid("SSM_FLAGS_MODE", v, "use lambda or sidecar")),
        };
        Ok(Self {
            appconfig,
            host: Host::detect(mode, get("AWS_LAMBDA_INITIALIZATION_TYPE")),
            fallback_file: get("SSM_FLAGS_FALLBACK_FILE").map(std::path::PathBuf::from),
            paths,
            declared,
            max_age,
            port,
            socket: flags::endpoint::socket_path(|var| vars.get(var).cloned())?,
            socket_group: get(flags::endpoint::SOCKET_GROUP_VAR).map(str::to_owned),
            refresh_timeout,
            init_timeout,
            max_parameters,
            log_level,
            log_format,
            token: flags::token::configured(|var| vars.get(var).cloned())
                .map_err(|error| ConfigError::Token(error.to_string()))?,
            token_file: flags::wire::token_file(|var| vars.get(var).cloned()),
            region: get("AWS_REGION").map(str::to_owned),
            metrics,
        })
    }
}

fn invalid(var: &'static str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        var,
        value: value.to_owned(),
        reason: reason.into(),
    }
}

impl From<NumberError> for ConfigError {
    fn from(error: NumberError) -> Self {
        Self::Invalid {
            reason: format!("must be a whole number from {} to {}", error.min, error.max),
            var: error.var,
            value: error.value,
        }
    }
}

/// The paths, each with its declared format (`/a/b#flagd`), in order. A path listed twice
/// with two formats is refused.
fn parse_paths(raw: Option<&str>) -> Result<Vec<(FlagPath, Format)>, ConfigError> {
    const VAR: &str = "SSM_FLAGS_PATH";
    let raw = raw.ok_or(ConfigError::Missing {
        var: VAR,
        hint: "set it to the SSM path of your flags, e.g. /myapp/prod/features (or SSM_FLAGS_APPCONFIG to AppConfig profiles)",
    })?;
    let mut formats: Vec<(FlagPath, Format)> = Vec::new();
    let mut plain = Vec::new();
    for item in raw.split(',') {
        let (path, format) =
            Format::split(item).map_err(|error| invalid(VAR, raw, error.to_string()))?;
        plain.push(path);
        let Ok(parsed) = FlagPath::parse(path) else {
            continue; // parse_list names the problem
        };
        match formats.iter().find(|(p, _)| *p == parsed) {
            Some((_, known)) if *known != format => {
                return Err(invalid(
                    VAR,
                    raw,
                    format!("path {parsed} is listed twice, with two formats"),
                ));
            }
            Some(_) => {}
            None => formats.push((parsed, format)),
        }
    }
    let paths = FlagPath::parse_list(&plain.join(","))
        .map_err(|error| invalid(VAR, raw, error.to_string()))?;
    Ok(paths
        .into_iter()
        .map(|path| {
            let format = formats
                .iter()
                .find(|(p, _)| *p == path)
                .map_or(Format::Seed, |(_, f)| *f);
            (path, format)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(
            &pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn defaults() {
        let c = config(&[("SSM_FLAGS_PATH", "/myapp/prod/features")]).expect("valid");
        assert_eq!(
            c.paths,
            [FlagPath::parse("/myapp/prod/features").expect("path")]
        );
        assert_eq!(c.max_age, Duration::from_secs(60));
        assert_eq!(c.port, 2774);
        assert_eq!(c.refresh_timeout, Duration::from_secs(2));
        assert_eq!(c.init_timeout, Duration::from_secs(8));
        assert_eq!(c.max_parameters, 10_000);
        assert_eq!(c.log_level, Level::INFO);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.token, None);
        assert_eq!(c.region, None);
        assert_eq!(c.host, Host::OnDemand);
        assert_eq!(c.fallback_file, None);
        assert_eq!(
            c.metrics,
            Some(Metrics {
                namespace: "ssm-flags".into(),
                function: "ssm-flags".into(),
                service: "ssm-flags".into(),
                interval: Duration::from_secs(60),
            })
        );
    }

    #[test]
    fn budgets_must_fit_lambdas_init_limit() {
        let c = config(&[
            ("SSM_FLAGS_PATH", "/a"),
            ("SSM_FLAGS_INIT_TIMEOUT_MS", "3000"),
        ])
        .expect("valid");
        assert_eq!(c.init_timeout, Duration::from_secs(3));
        assert_eq!(
            config(&[
                ("SSM_FLAGS_PATH", "/a"),
                ("SSM_FLAGS_INIT_TIMEOUT_MS", "9500")
            ])
            .expect_err("past 9 s")
            .to_string(),
            "SSM_FLAGS_INIT_TIMEOUT_MS=\"9500\" is invalid: must be a whole number from 100 to 9000"
        );
        // The refresh timeout bounds invocations, not init: 10 s is allowed with any init budget.
        let c = config(&[
            ("SSM_FLAGS_PATH", "/a"),
            ("SSM_FLAGS_REFRESH_TIMEOUT_MS", "10000"),
        ])
        .expect("valid");
        assert_eq!(c.init_timeout, DEFAULT_INIT_TIMEOUT);
    }

    #[test]
    fn metrics_can_be_named_or_turned_off() {
        let c = config(&[
            ("SSM_FLAGS_PATH", "/a"),
            ("SSM_FLAGS_METRICS_NAMESPACE", "acme/flags"),
            ("AWS_LAMBDA_FUNCTION_NAME", "payment"),
        ])
        .expect("valid");
        assert_eq!(
            c.metrics,
            Some(Metrics {
                namespace: "acme/flags".into(),
                function: "payment".into(),
                service: "payment".into(),
                interval: Duration::from_secs(60),
            })
        );
        let often = config(&[
            ("SSM_FLAGS_PATH", "/a"),
            ("SSM_FLAGS_METRICS_INTERVAL", "5"),
        ])
        .expect("valid");
        assert_eq!(
            often.metrics.map(|m| m.interval),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            config(&[
                ("SSM_FLAGS_PATH", "/a"),
                ("SSM_FLAGS_METRICS_INTERVAL", "0")
            ])
            .expect_err("too often")
            .to_string(),
            "SSM_FLAGS_METRICS_INTERVAL=\"0\" is invalid: must be a whole number from 1 to 3600"
        );
        let named =
            config(&[("SSM_FLAGS_PATH", "/a"), ("SSM_FLAGS_SERVICE", "checkout")]).expect("valid");
        assert_eq!(
            named.metrics.map(|m| m.service).as_deref(),
            Some("checkout")
        );
        let bad = config(&[("SSM_FLAGS_PATH", "/a"), ("SSM_FLAGS_SERVICE", "caf\u{e9}")])
            .expect_err("not ASCII");
        assert!(bad.to_string().starts_with("SSM_FLAGS_SERVICE="), "{bad}");
        let off = config(&[("SSM_FLAGS_PATH", "/a"), ("SSM_FLAGS_METRICS", "OFF")]).expect("valid");
        assert_eq!(off.metrics, None);
        // A text log carries no metric lines unless they are asked for.
        let text =
            config(&[("SSM_FLAGS_PATH", "/a"), ("SSM_FLAGS_LOG_FORMAT", "text")]).expect("valid");
        assert_eq!(text.metrics, None);
        let asked = config(&[
            ("SSM_FLAGS_PATH", "/a"),
            ("SSM_FLAGS_LOG_FORMAT", "text"),
            ("SSM_FLAGS_METRICS", "emf"),
        ])
        .expect("valid");
        assert!(asked.metrics.is_some());
        assert!(
            config(&[
                ("SSM_FLAGS_PATH", "/a"),
                ("SSM_FLAGS_METRICS", "prometheus")
            ])
            .is_err()
        );
    }

    #[test]
    fn the_configuration_never_shows_its_token() {
        let c = config(&[("SSM_FLAGS_PATH", "/a"), ("SSM_FLAGS_TOKEN", "s3cr3t")]).expect("valid");
        assert_eq!(c.token.as_deref(), Some("s3cr3t"));
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cr3t") && shown.contains("redacted"),
            "{shown}"
        );
    }

    #[test]
    fn a_token_that_no_client_could_send_stops_the_start_naming_its_variable() {
        for bad in ["s3cr3t\n", "s3cr3t ", " ", "s3cr\u{f6}t"] {
            let err = config(&[("SSM_FLAGS_PATH", "/a"), ("SSM_FLAGS_TOKEN", bad)])
                .expect_err("invalid token");
            let text = err.to_string();
            assert!(
                text.starts_with("SSM_FLAGS_TOKEN is not a usable API token"),
                "{text}"
            );
            assert!(!text.contains("s3cr"), "the token is never shown: {text}");
        }
        let err = config(&[("SSM_FLAGS_PATH", "/a"), ("AWS_SESSION_TOKEN", "a\tb")])
            .expect_err("invalid token");
        assert!(err.to_string().starts_with("AWS_SESSION_TOKEN"), "{err}");
    }

    #[test]
    fn every_variable_is_read() {
        let c = config(&[
            ("SSM_FLAGS_PATH", " /a/features/ , /b/flags,/a/features"),
            ("SSM_FLAGS_MAX_AGE", "5"),
            ("SSM_FLAGS_PORT", "9999"),
            ("SSM_FLAGS_REFRESH_TIMEOUT_MS", "750"),
            ("SSM_FLAGS_MAX_PARAMETERS", "100000"),
            ("SSM_FLAGS_LOG_LEVEL", "debug"),
            ("SSM_FLAGS_LOG_FORMAT", "TEXT"),
            ("AWS_SESSION_TOKEN", "tok"),
            ("AWS_REGION", "eu-west-1"),
            ("SSM_FLAGS_FALLBACK_FILE", " /opt/ssm-flags/fallback.json "),
        ])
        .expect("valid");
        assert_eq!(
            c.fallback_file.as_deref(),
            Some(std::path::Path::new("/opt/ssm-flags/fallback.json"))
        );
        let paths: Vec<&str> = c.paths.iter().map(FlagPath::as_str).collect();
        assert_eq!(paths, ["/a/features", "/b/flags"]);
        assert_eq!(c.region.as_deref(), Some("eu-west-1"));
        assert_eq!(c.max_age, Duration::from_secs(5));
        assert_eq!(c.port, 9999);
        assert_eq!(c.refresh_timeout, Duration::from_millis(750));
        assert_eq!(c.max_parameters, 100_000);
        assert_eq!(c.log_level, Level::DEBUG);
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.token.as_deref(), Some("tok"));
    }

    #[test]
    fn a_marker_declares_a_sources_format_in_precedence_order() {
        use flags::Bucketing;
        let c = config(&[
            (
                "SSM_FLAGS_PATH",
                "/a/flags#flagd, /b/flags#flagd-v2,/c/flags",
            ),
            ("SSM_FLAGS_APPCONFIG", "app/env/doc#flagd,app/env/plain"),
        ])
        .expect("valid");
        let paths: Vec<&str> = c.paths.iter().map(FlagPath::as_str).collect();
        assert_eq!(paths, ["/a/flags", "/b/flags", "/c/flags"]);
        let flagd = |b| Format::Flagd(b);
        assert_eq!(c.declared.of("/a/flags/doc-1"), (0, flagd(Bucketing::V3)));
        assert_eq!(c.declared.of("/b/flags/x"), (1, flagd(Bucketing::V2)));
        assert_eq!(c.declared.of("/c/flags/x"), (2, Format::Seed));
        assert_eq!(
            c.declared.of("appconfig:app/env/doc"),
            (3, flagd(Bucketing::V3))
        );
        assert_eq!(
            c.declared.of("appconfig:app/env/plain/x"),
            (4, Format::Seed)
        );
        assert_eq!(c.appconfig[0].to_string(), "app/env/doc");

        let err = config(&[("SSM_FLAGS_PATH", "/a#flagd3")]).expect_err("unknown marker");
        assert!(
            err.to_string()
                .contains("unknown format marker \"#flagd3\""),
            "{err}"
        );
        let err = config(&[("SSM_FLAGS_PATH", "/a#flagd,/a")]).expect_err("two formats");
        assert!(
            err.to_string().contains("listed twice, with two formats"),
            "{err}"
        );
        let powertools = config(&[
            ("SSM_FLAGS_APPCONFIG", "app/env/features#powertools"),
            ("SSM_FLAGS_POWERTOOLS_ENVELOPE", " config.features "),
        ])
        .expect("valid");
        assert_eq!(
            powertools.declared.of("appconfig:app/env/features"),
            (0, Format::Powertools)
        );
        assert_eq!(
            powertools.declared.envelope().map(|e| e.as_str()),
            Some("config.features")
        );
        let err = config(&[
            ("SSM_FLAGS_APPCONFIG", "app/env/features#powertools"),
            ("SSM_FLAGS_POWERTOOLS_ENVELOPE", "config.["),
        ])
        .expect_err("not JMESPath");
        assert!(
            err.to_string()
                .starts_with("SSM_FLAGS_POWERTOOLS_ENVELOPE=\"config.[\" is invalid"),
            "{err}"
        );
        let err = config(&[("SSM_FLAGS_APPCONFIG", "a/e/p#yaml")]).expect_err("unknown");
        assert!(err.to_string().contains("SSM_FLAGS_APPCONFIG"), "{err}");
        let err = config(&[("SSM_FLAGS_APPCONFIG", "a/e/p#flagd,a/e/p")]).expect_err("twice");
        assert!(err.to_string().contains("listed twice"), "{err}");
    }

    #[test]
    fn the_host_is_lambda_unless_told_and_managed_instances_are_detected() {
        let host = |vars: &[(&str, &str)]| {
            let mut all = vec![("SSM_FLAGS_PATH", "/a")];
            all.extend_from_slice(vars);
            config(&all).map(|c| c.host)
        };
        assert_eq!(host(&[]), Ok(Host::OnDemand));
        assert_eq!(host(&[("SSM_FLAGS_MODE", "Lambda")]), Ok(Host::OnDemand));
        assert_eq!(
            host(&[("AWS_LAMBDA_INITIALIZATION_TYPE", "lambda-managed-instances")]),
            Ok(Host::ManagedInstances)
        );
        assert_eq!(
            host(&[("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")]),
            Ok(Host::OnDemand)
        );
        assert_eq!(host(&[("SSM_FLAGS_MODE", "sidecar")]), Ok(Host::Sidecar));
        assert_eq!(
            host(&[("SSM_FLAGS_MODE", "daemon")])
                .expect_err("invalid")
                .to_string(),
            "SSM_FLAGS_MODE=\"daemon\" is invalid: use lambda or sidecar"
        );
    }

    #[test]
    fn appconfig_profiles_alone_or_with_paths() {
        let c = config(&[("SSM_FLAGS_APPCONFIG", "flags-app/prod/feature-flags")]).expect("valid");
        assert!(c.paths.is_empty());
        assert_eq!(c.appconfig.len(), 1);
        let both = config(&[
            ("SSM_FLAGS_PATH", "/a"),
            ("SSM_FLAGS_APPCONFIG", "app/env/one,app/env/two"),
        ])
        .expect("valid");
        assert_eq!((both.paths.len(), both.appconfig.len()), (1, 2));
        let err = config(&[("SSM_FLAGS_APPCONFIG", "app/prod")]).expect_err("invalid");
        assert!(
            err.to_string()
                .starts_with("SSM_FLAGS_APPCONFIG=\"app/prod\" is invalid: "),
            "{err}"
        );
    }

    #[test]
    fn root_path_needs_an_explicit_allow() {
        let err = config(&[("SSM_FLAGS_PATH", "/")]).expect_err("refused");
        assert!(
            err.to_string().starts_with(
                "SSM_FLAGS_PATH=\"/\" is invalid: \"/\" reads (and decrypts) every parameter"
            ),
            "{err}"
        );
        assert_eq!(
            config(&[
                ("SSM_FLAGS_PATH", "/"),
                ("SSM_FLAGS_ALLOW_ROOT_PATH", "true")
            ])
            .expect("valid")
            .paths,
            [FlagPath::root()]
        );
        assert!(
            config(&[
                ("SSM_FLAGS_PATH", "/a"),
                ("SSM_FLAGS_ALLOW_ROOT_PATH", "yes")
            ])
            .is_err()
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        let cases: [(&[(&str, &str)], &str); 16] = [
            (
                &[("SSM_FLAGS_PATH", "/a,/a/b")],
                "SSM_FLAGS_PATH=\"/a,/a/b\" is invalid: paths \"/a\" and \"/a/b\" overlap: \"/a/b\" is inside \"/a\"",
            ),
            (
                &[("SSM_FLAGS_PATH", "/my app")],
                "SSM_FLAGS_PATH=\"/my app\" is invalid: path \"/my app\" must not contain '//' or spaces",
            ),
            (
                &[("SSM_FLAGS_PATH", "/aws/flags")],
                "SSM_FLAGS_PATH=\"/aws/flags\" is invalid: path \"/aws/flags\" is not a valid SSM path: names may not begin with 'aws' or 'ssm'",
            ),
            (
                &[("SSM_FLAGS_PATH", "/a"), ("SSM_FLAGS_PORT", "2773")],
                "SSM_FLAGS_PORT=\"2773\" is invalid: 2772 and 2773 belong to AWS's own extensions; pick another port",
            ),
            (
                &[],
                "SSM_FLAGS_PATH is required: set it to the SSM path of your flags, e.g. /myapp/prod/features (or SSM_FLAGS_APPCONFIG to AppConfig profiles)",
            ),
            (
                &[("SSM_FLAGS_PATH", "   ")],
                "SSM_FLAGS_PATH is required: set it to the SSM path of your flags, e.g. /myapp/prod/features (or SSM_FLAGS_APPCONFIG to AppConfig profiles)",
            ),
            (
                &[("SSM_FLAGS_PATH", "myapp/features")],
                "SSM_FLAGS_PATH=\"myapp/features\" is invalid: path \"myapp/features\" must start with '/'",
            ),
            (
                &[("SSM_FLAGS_PATH", "/a,,/b")],
                "SSM_FLAGS_PATH=\"/a,,/b\" is invalid: contains an empty path",
            ),
            (
                &[("SSM_FLAGS_PATH", "/a//b")],
                "SSM_FLAGS_PATH=\"/a//b\" is invalid: path \"/a//b\" must not contain '//' or spaces",
            ),
            (
                &[("SSM_FLAGS_PATH", "/a"), ("SSM_FLAGS_MAX_AGE", "1m")],
                "SSM_FLAGS_MAX_AGE=\"1m\" is invalid: must be a whole number from 0 to 86400",
            ),
            (
                &[("SSM_FLAGS_PATH", "/a"), ("SSM_FLAGS_PORT", "70000")],
                "SSM_FLAGS_PORT=\"70000\" is invalid: must be a whole number from 1 to 65535",
            ),
            (
                &[
                    ("SSM_FLAGS_PATH", "/a"),
                    ("SSM_FLAGS_REFRESH_TIMEOUT_MS", "50"),
                ],
                "SSM_FLAGS_REFRESH_TIMEOUT_MS=\"50\" is invalid: must be a whole number from 100 to 10000",
            ),
            (
                &[("SSM_FLAGS_PATH", "/a"), ("SSM_FLAGS_LOG_LEVEL", "loud")],
                "SSM_FLAGS_LOG_LEVEL=\"loud\" is invalid: use error, warn, info, debug or trace",
            ),
            (
                &[("SSM_FLAGS_PATH", "/a"), ("SSM_FLAGS_MAX_PARAMETERS", "0")],
                "SSM_FLAGS_MAX_PARAMETERS=\"0\" is invalid: must be a whole number from 1 to 100000",
            ),
            (
                &[
                    ("SSM_FLAGS_PATH", "/a"),
                    ("SSM_FLAGS_MAX_PARAMETERS", "100001"),
                ],
                "SSM_FLAGS_MAX_PARAMETERS=\"100001\" is invalid: must be a whole number from 1 to 100000",
            ),
            (
                &[
                    ("SSM_FLAGS_PATH", "/a"),
                    ("SSM_FLAGS_MAX_PARAMETERS", "10k"),
                ],
                "SSM_FLAGS_MAX_PARAMETERS=\"10k\" is invalid: must be a whole number from 1 to 100000",
            ),
        ];
        for (vars, expected) in cases {
            assert_eq!(
                config(vars).expect_err("invalid").to_string(),
                expected,
                "{vars:?}"
            );
        }
    }
}
