//! The command line: every command, its options, and an example in its `--help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::alarms::InsufficientData;

/// The operators' tool for ssm-flags: lint, list, explain, set, ramp, kill, export, diff,
/// history, rollback and experiment results of feature flags in SSM Parameter Store.
#[derive(Debug, Parser)]
#[command(
    name = "ssm-flags-ctl",
    version,
    after_help = "Flags are named in full (/myapp/prod/flags/dark-mode) or relative to --path (or SSM_FLAGS_PATH).\nSources are SSM paths (/myapp/prod/flags), snapshot files (flags.json, file:NAME) or AppConfig profiles (appconfig:app/env/profile).\nExit codes: 0 done, 1 findings or a refused change, 2 a usage or AWS error.\n\nExample:\n  ssm-flags-ctl --path /myapp/prod/flags list"
)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: Global,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// AWS region, as the AWS CLI's --region (else AWS_REGION or the profile's region)
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,
    /// Named AWS profile (SSO and credential_process profiles work; else AWS_PROFILE)
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// AWS endpoint for every service (else AWS_ENDPOINT_URL)
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// The flag path short flag names are under (else SSM_FLAGS_PATH, when it names one path)
    #[arg(long, global = true, value_name = "PATH")]
    pub path: Option<String>,
    /// Machine-readable JSON on stdout
    #[arg(long, global = true)]
    pub json: bool,
}

/// Every command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse every flag as the extension would: invalid flags exit 1, warnings exit 0 unless --strict
    #[command(
        after_help = "Examples:\n  ssm-flags-ctl lint /myapp/prod/flags\n  ssm-flags-ctl lint flags.json\n  ssm-flags-ctl lint --strict /myapp/staging/flags /myapp/prod/flags   # also: flags missing from one"
    )]
    Lint(LintArgs),
    /// The flags of a source: name, kind, state (on / off / n% / rules), version, last change and by whom
    #[command(after_help = "Example:\n  ssm-flags-ctl list /myapp/prod/flags")]
    List(ListArgs),
    /// One flag: value (SecureString masked), kind, state, type, tier, version, last change and by whom
    #[command(
        after_help = "Example:\n  ssm-flags-ctl --path /myapp/prod/flags get new-checkout-flow"
    )]
    Get(GetArgs),
    /// The decision a handler would make for a user, and why
    #[command(
        after_help = "Examples:\n  ssm-flags-ctl --path /myapp/prod/flags explain new-checkout-flow --user user-123 --attr region=us-east-1\n  ssm-flags-ctl --path /myapp/prod/flags explain new-checkout-flow --sample 10000"
    )]
    Explain(ExplainArgs),
    /// Validate and write a flag's value (type, KMS key and tier kept); invalid values are refused
    #[command(
        after_help = "Examples:\n  ssm-flags-ctl --path /myapp/prod/flags set dark-mode true\n  ssm-flags-ctl --path /myapp/prod/flags set new-checkout-flow --file flow.json --dry-run\n  ssm-flags-ctl set /myapp/prod/flags/beta-banner false --create"
    )]
    Set(SetArgs),
    /// Raise a JSON flag's rollout_percentage on a schedule; an alarm in ALARM rolls it back
    #[command(
        after_help = "Examples:\n  ssm-flags-ctl --path /myapp/prod/flags ramp new-payment-processor --steps 5,10,25,50,100 --every 1d --alarm payments-5xx\n  ssm-flags-ctl --path /myapp/prod/flags ramp new-checkout-flow --step 10 --every 30m --alarm checkout-errors\n\nThe version the ramp starts from is labelled flags-ramp-start: run the same command again after an interruption and it continues from the current percentage, still rolling back to that start.\nINSUFFICIENT_DATA: by default the next step waits until the alarm has data (--insufficient-data hold)."
    )]
    Ramp(RampArgs),
    /// The incident button: switch a flag off (enabled: false, every other field kept)
    #[command(
        after_help = "Example:\n  ssm-flags-ctl --path /myapp/prod/flags kill new-payment-processor"
    )]
    Kill(KillArgs),
    /// Write a source's flags as a snapshot file (flags::load_file, SSM_FLAGS_FALLBACK_FILE)
    #[command(
        after_help = "Examples:\n  ssm-flags-ctl export /myapp/prod/flags -o flags.json\n  ssm-flags-ctl export /myapp/prod/flags -o flags.json --include-secure"
    )]
    Export(ExportArgs),
    /// Compare two sources: flags added, removed and changed (differences exit 1)
    #[command(after_help = "Example:\n  ssm-flags-ctl diff /myapp/staging/flags /myapp/prod/flags")]
    Diff(DiffArgs),
    /// Every version of a flag: when, by whom, labels and values (SecureString masked)
    #[command(
        after_help = "Example:\n  ssm-flags-ctl --path /myapp/prod/flags history new-checkout-flow"
    )]
    History(FlagArg),
    /// An experiment's results: per variant, exposures, conversions on an event, the rate with
    /// its 95% interval, the difference to the control and its p-value; a sample-ratio check
    #[command(
        after_help = "Examples:\n  ssm-flags-ctl --path /shop/prod/flags results new-flow --event purchase --service shop\n  ssm-flags-ctl --path /shop/prod/flagd#flagd results layout --event purchase --since 14d --json\n  export SSM_FLAGS_SERVICE=shop SSM_FLAGS_PATH=/shop/prod/flags\n  ssm-flags-ctl results new-flow --event purchase --control on --since 36h\n\nPrints a row per variant (EXPOSURES, CONVERSIONS, RATE, 95% CI, VS CONTROL, P-VALUE, VALUE SUM, VALUE MEAN), then the control, the sample-ratio check, the definition check, notes and warnings; --json prints the same as one document.\n\nWhat is read: the flag's definition (an experiment: \"experiment\": true in a flagd flag's metadata or its flag set's, or at the top level of a JSON flag), and the metrics handlers and the extension write (flags::experiment, as CloudWatch EMF lines): Exposures per Variant and Conversions and ConversionValue per Variant for --event, under the dimensions Service, Flag (the flag's name as handlers name it: relative to their path, so name the flag under --path), Variant (and Event), added up over --since with CloudWatch GetMetricData. A JSON flag's variants are `on` (inside its rollout_percentage) and `off` (its control); a flagd flag's are its variants, its control its defaultVariant. Variants without data show as 0.\n\nThe statistics: the conversion rate's 95% Wilson score interval; the difference to the control (in percentage points, and relative) with the two-sided pooled two-proportion z-test's p-value; ConversionValue's sum and mean (sum / count of values). The unit is a (targeting key, invocation): a repeat visitor is several correlated trials, which makes p-values optimistic; a conversion tracked in another invocation than the exposure is not attributed.\n\nThe checks: the sample ratio (chi-squared of exposures against the configured split: a flagd flag's only `fractional`, a JSON flag's rollout_percentage; a mismatch is p < 0.001), and whether the flag's own definition changed within the window (GetParameterHistory of its parameter; in a document only this flag's entry counts). A mismatch or a change is a warning: the numbers are not to be trusted as they stand, and the command exits 1.\n\nIAM: cloudwatch:GetMetricData, cloudwatch:ListMetrics, ssm:GetParameter (or the source's reads), ssm:GetParameterHistory."
    )]
    Results(ResultsArgs),
    /// Write an earlier version's value back as a new version (validated like set)
    #[command(
        after_help = "Example:\n  ssm-flags-ctl --path /myapp/prod/flags rollback new-checkout-flow --to-version 7"
    )]
    Rollback(RollbackArgs),
}

/// `lint`.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// SSM paths, snapshot files or AppConfig profiles (default: --path)
    pub sources: Vec<String>,
    /// Warnings exit 1 too
    #[arg(long)]
    pub strict: bool,
}

/// `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// An SSM path, snapshot file or AppConfig profile (default: --path)
    pub source: Option<String>,
}

/// One flag.
#[derive(Debug, Args)]
pub struct FlagArg {
    /// The flag: a name under --path, or a full parameter name
    pub flag: String,
}

/// `get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The flag: a name under --path, or a full parameter name
    pub flag: String,
    /// Show a SecureString's value (never logged; shown on this terminal only)
    #[arg(long)]
    pub show_secret: bool,
}

/// `explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The flag: a name under --path, or a full parameter name
    pub flag: String,
    /// The user id
    #[arg(long)]
    pub user: Option<String>,
    /// An attribute of the request, name=value (repeatable); region=R sets the request's region
    #[arg(long = "attr", value_name = "NAME=VALUE", value_parser = crate::explain::parse_attr)]
    pub attributes: Vec<(String, String)>,
    /// Also evaluate N synthetic user ids and show the share that gets the flag
    #[arg(long, value_name = "N")]
    pub sample: Option<u32>,
    /// Read the flag from this source (a snapshot file, path or profile) instead of its parameter
    #[arg(long, value_name = "SOURCE")]
    pub from: Option<String>,
    /// Typed attributes as a JSON object (what flagd rules read: numbers, lists, nested
    /// objects), instead of --attr
    #[arg(long, value_name = "JSON", conflicts_with = "attributes")]
    pub context: Option<String>,
}

/// `set`.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// The flag: a name under --path, or a full parameter name
    pub flag: String,
    /// The new value (or --file)
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub value: Option<String>,
    /// Read the new value from a file
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Validate and show the change, write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Allow a change of kind (boolean, JSON, list, text): old code still reads the old shape
    #[arg(long)]
    pub change_kind: bool,
    /// Create the parameter if it does not exist (else a missing flag is an error: a typo never creates one)
    #[arg(long)]
    pub create: bool,
    /// With --create: the parameter type
    #[arg(
        long = "type",
        value_enum,
        default_value = "string",
        requires = "create"
    )]
    pub kind: NewType,
    /// With --create --type secure-string: the KMS key (default: the account's aws/ssm key)
    #[arg(long, requires = "create")]
    pub key_id: Option<String>,
}

/// The type of a parameter `set --create` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NewType {
    /// `String`.
    String,
    /// `StringList`.
    StringList,
    /// `SecureString`.
    SecureString,
}

/// `ramp`.
#[derive(Debug, Args)]
pub struct RampArgs {
    /// The flag: a name under --path, or a full parameter name
    pub flag: String,
    /// The percentages to reach, rising (e.g. 5,10,25,50,100)
    #[arg(
        long,
        value_name = "P,P,…",
        conflicts_with = "step",
        required_unless_present = "step"
    )]
    pub steps: Option<String>,
    /// A fixed step instead of --steps, from the current percentage up to --to
    #[arg(long, value_name = "P")]
    pub step: Option<f64>,
    /// With --step: where to stop
    #[arg(long, value_name = "P", default_value_t = 100.0, requires = "step")]
    pub to: f64,
    /// How long each step bakes, alarms watched, before the next (e.g. 1d, 30m)
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub every: std::time::Duration,
    /// A CloudWatch alarm guarding the ramp (repeatable); ALARM rolls the flag back
    #[arg(long = "alarm", value_name = "NAME")]
    pub alarms: Vec<String>,
    /// What an alarm with INSUFFICIENT_DATA does: hold the next step, proceed, or roll back
    #[arg(long, value_enum, default_value = "hold")]
    pub insufficient_data: InsufficientData,
    /// How often alarms and the flag are checked while a step bakes
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub check_every: std::time::Duration,
    /// Forget an interrupted ramp's start: start afresh from the current value
    #[arg(long)]
    pub restart: bool,
    /// A flagd flag: the variant whose `fractional` share rises (default: its `true` variant)
    #[arg(long, value_name = "NAME")]
    pub variant: Option<String>,
}

/// `kill`.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// The flag: a name under --path, or a full parameter name
    pub flag: String,
    /// A flagd flag: the variant that turns it off (default: its `false` variant)
    #[arg(long, value_name = "NAME")]
    pub variant: Option<String>,
    /// Show the change, write nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// An SSM path or AppConfig profile (default: --path)
    pub source: Option<String>,
    /// The file to write (default: stdout)
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write SecureString flags too (decrypted, marked secure; the file is made owner-only)
    #[arg(long)]
    pub include_secure: bool,
}

/// `diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The first source (e.g. /myapp/staging/flags)
    pub a: String,
    /// The second source (e.g. /myapp/prod/flags)
    pub b: String,
}

/// `results`.
#[derive(Debug, Args)]
pub struct ResultsArgs {
    /// The experiment flag: a name under --path, or a full parameter name
    pub flag: String,
    /// The conversion event: the name handlers track (flags::track, POST /v1/track)
    #[arg(long, value_name = "NAME")]
    pub event: String,
    /// How far back to add up (e.g. 7d, 36h, 90m; at most 455d, what CloudWatch keeps)
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = humantime::parse_duration)]
    pub since: std::time::Duration,
    /// The variant the others are compared with (default: a flagd flag's defaultVariant; `off`
    /// for a JSON flag)
    #[arg(long, value_name = "VARIANT")]
    pub control: Option<String>,
    /// The Service dimension the metrics were written under (else SSM_FLAGS_SERVICE; a function
    /// writes its own name unless SSM_FLAGS_SERVICE is set)
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// The metrics' namespace (else SSM_FLAGS_METRICS_NAMESPACE, else ssm-flags)
    #[arg(long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Read the flag from this source (a snapshot file, path or profile) instead of its parameter
    /// (a file or profile keeps no history: the definition-changed check is skipped)
    #[arg(long, value_name = "SOURCE")]
    pub from: Option<String>,
}

/// `rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The flag: a name under --path, or a full parameter name
    pub flag: String,
    /// The version whose value to write back
    #[arg(long, value_name = "N")]
    pub to_version: i64,
    /// Show the change, write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Allow a change of kind
    #[arg(long)]
    pub change_kind: bool,
}
