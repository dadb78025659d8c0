//! `ssm-flags-ctl`: the operators' side of ssm-flags. It reads, checks and changes flags with the
//! same model and evaluation as the `flags` library and the same sources as the extension, so
//! there is one definition of what a valid flag is.
//!
//! Modules:
//! - [`args`]: the command line;
//! - [`aws`]: the AWS clients, configured as the AWS CLI is;
//! - [`error`]: errors in words, and exit codes (0 done, 1 findings or refused, 2 usage or AWS);
//! - [`edit`]: a JSON flag's text changed one top-level field at a time, every other byte kept;
//! - [`param`]: one flag's parameter: read, written back as stored, history, labels;
//! - [`sources`]: SSM paths, AppConfig profiles and snapshot files, read as the extension reads them;
//! - [`output`]: kinds, states, masking, tables and JSON;
//! - [`lint`], [`show`] (list, get, history), [`explain`], [`change`] (set, kill, rollback),
//!   [`ramp`] with [`alarms`], [`export`], [`diff`], [`results`] (an experiment's numbers and
//!   checks): the commands.

mod alarms;
mod args;
mod aws;
mod change;
mod diff;
mod edit;
mod error;
mod explain;
mod export;
mod flagd_edit;
mod lint;
mod output;
mod param;
mod ramp;
mod results;
mod show;
mod sources;

use std::process::ExitCode;

use clap::Parser;
use flags::{FlagPath, Format, ParameterKind};

use args::{Cli, Command, NewType};
use error::{CtlError, Outcome};
use sources::Spec;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The extension's sources log through `tracing`: warnings reach stderr, nothing else. The
    // SDK's configuration loader warns at length (debug structs) while it looks for a region:
    // its errors only — a missing region is one line of ours (`aws::Aws::clients`).
    {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let filter = tracing_subscriber::filter::Targets::new()
            .with_default(tracing::Level::WARN)
            .with_target("aws_config", tracing::Level::ERROR);
        let _ = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_target(false),
            )
            .with(filter)
            .try_init();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ssm-flags-ctl: cannot start: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => ExitCode::from(1),
        Err(error) => {
            eprintln!("ssm-flags-ctl: {error}");
            error.exit_code()
        }
    }
}

/// The path short flag names are under: `--path`, else `SSM_FLAGS_PATH` when it names one;
/// with its declared format (`/myapp/prod/flags#flagd`).
fn flag_path(global: &args::Global) -> Result<Option<(FlagPath, Format)>, CtlError> {
    let (raw, origin) = match &global.path {
        Some(raw) => (raw.clone(), "--path"),
        None => match std::env::var("SSM_FLAGS_PATH") {
            Ok(raw) if !raw.trim().is_empty() => (raw, "SSM_FLAGS_PATH"),
            _ => return Ok(None),
        },
    };
    let mut items: Vec<&str> = raw.split(',').filter(|i| !i.trim().is_empty()).collect();
    let (Some(item), true) = (items.pop(), items.is_empty()) else {
        return Err(CtlError::usage(format!(
            "{origin} {raw:?} names several paths: pass --path with the one to use"
        )));
    };
    let (item, format) =
        Format::split(item).map_err(|e| CtlError::usage(format!("{origin}: {e}")))?;
    let path =
        FlagPath::parse(item).map_err(|e| CtlError::usage(format!("{origin} {raw:?}: {e}")))?;
    Ok(Some((path, format)))
}

/// The source a command reads: its argument, else `--path`.
fn source_or_path(raw: Option<&str>, path: Option<&(FlagPath, Format)>) -> Result<Spec, CtlError> {
    match (raw, path) {
        (Some(raw), _) => Spec::parse(raw),
        (None, Some((path, format))) => Ok(Spec::Path(path.clone(), *format)),
        (None, None) => Err(CtlError::usage(
            "no source: name a path (/myapp/prod/flags), a file or a profile, or pass --path",
        )),
    }
}

/// The command that sets a flagd flag's definition back to `old`.
fn flagd_undo(marked: Option<&(FlagPath, Format)>, key: &str, old: &str) -> String {
    let path = marked.map_or(String::new(), |(p, f)| {
        format!("--path '{p}{}' ", f.marker())
    });
    format!(
        "ssm-flags-ctl {path}set {} {}",
        flagd_edit::quoted(key),
        flagd_edit::quoted(old)
    )
}

/// The flag `flag` as handlers read it, and where it is defined: from `from` (a source: a
/// flag named in full is looked up by its name under the source's path); else, under a path
/// read as flagd, from that path (a flag may live inside a document); else from its own
/// parameter, named as handlers name it (relative to the path, else in full).
async fn locate(
    aws: &aws::Aws,
    marked: Option<&(FlagPath, Format)>,
    flag: &str,
    from: Option<&str>,
) -> Result<sources::Found, CtlError> {
    let from = from.map(str::to_owned).or_else(|| match marked {
        Some((path, format @ Format::Flagd(_))) => Some(format!("{path}{}", format.marker())),
        _ => None,
    });
    if let Some(raw) = &from {
        return sources::find(aws, &Spec::parse(raw)?, flag).await;
    }
    let path = marked.map(|(p, _)| p);
    let stored = match param::read(aws.ssm().await?, &param::resolve(flag, path)?, "").await {
        Ok(stored) => stored,
        // Not a parameter of its own: a flag in a document that declares flagd's `$schema`
        // (read as flagd on any path, as the extension does), found by loading the path.
        Err(CtlError::NotFound { .. }) if let Some(path) = path => {
            return sources::find(aws, &Spec::Path(path.clone(), Format::Seed), flag).await;
        }
        Err(other) => return Err(other),
    };
    let flag = path
        .and_then(|under| under.flag_name(&stored.name))
        .unwrap_or(&stored.name);
    Ok(sources::Found {
        entry: flags::FlagEntry::from_parameter(&flags::Parameter {
            flag: flag.to_owned(),
            name: stored.name.clone(),
            kind: stored.kind,
            value: stored.value.clone(),
            version: u64::try_from(stored.meta.version).unwrap_or(0),
        }),
        parameter: Some(stored.name.clone()),
        format: Format::Seed,
    })
}

async fn run(cli: Cli) -> Outcome {
    let global = &cli.global;
    let json = global.json;
    let marked = flag_path(global)?;
    let format = marked.as_ref().map_or(Format::Seed, |(_, f)| *f);
    let path = marked.as_ref().map(|(p, _)| p.clone());
    let connection = aws::Connection {
        profile: global.profile.clone(),
        region: global.region.clone(),
        endpoint_url: global.endpoint_url.clone(),
    };
    let aws = aws::Aws::new(connection);
    let name = |flag: &str| param::resolve(flag, path.as_ref());
    match cli.command {
        Command::Lint(args) => {
            let specs = match args.sources.is_empty() {
                true => vec![source_or_path(None, marked.as_ref())?],
                false => args
                    .sources
                    .iter()
                    .map(|raw| Spec::parse(raw))
                    .collect::<Result<_, _>>()?,
            };
            let mut loaded = Vec::new();
            for spec in &specs {
                loaded.push(sources::load(&aws, spec, true).await?);
            }
            report_lint(&loaded, args.strict, json)
        }
        Command::List(args) => {
            let spec = source_or_path(args.source.as_deref(), marked.as_ref())?;
            show::list(&sources::load(&aws, &spec, true).await?, json)
        }
        Command::Get(args) => {
            let stored = param::read(aws.ssm().await?, &name(&args.flag)?, "").await?;
            show::get(&stored, args.show_secret, json)
        }
        Command::Explain(args) => {
            let entry = locate(&aws, marked.as_ref(), &args.flag, args.from.as_deref())
                .await?
                .entry;
            let fields = match &args.context {
                None => None,
                Some(raw) => match serde_json::from_str(raw) {
                    Ok(serde_json::Value::Object(fields)) => Some(fields),
                    _ => {
                        return Err(CtlError::usage(format!(
                            "--context {raw:?} is not a JSON object of attributes"
                        )));
                    }
                },
            };
            let who = explain::Who {
                user: args.user,
                attributes: args.attributes,
                fields,
            };
            explain::explain(&entry, &who, args.sample, json)
        }
        Command::Results(args) => {
            let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
            let service = match args
                .service
                .clone()
                .or_else(|| from_env("SSM_FLAGS_SERVICE"))
            {
                Some(service) => flags::experiment::Emitter::service_from(Some(&service), None)
                    .map_err(|e| CtlError::usage(format!("service: {e}")))?,
                None => {
                    return Err(CtlError::usage(
                        "results: which service wrote the metrics? Pass --service NAME or set SSM_FLAGS_SERVICE (the Service dimension: a function writes SSM_FLAGS_SERVICE, else its own name)",
                    ));
                }
            };
            let namespace = args
                .namespace
                .clone()
                .or_else(|| from_env("SSM_FLAGS_METRICS_NAMESPACE"))
                .unwrap_or_else(|| flags::experiment::DEFAULT_NAMESPACE.to_owned());
            results::check_event(&args.event)?;
            let found = locate(&aws, marked.as_ref(), &args.flag, args.from.as_deref()).await?;
            let request = results::Request {
                event: &args.event,
                since: args.since,
                control: args.control.as_deref(),
                service: &service,
                namespace: &namespace,
                json,
            };
            results::results(&aws, &found, &request).await
        }
        Command::Set(args) => {
            let value = match (&args.value, &args.file) {
                (Some(value), _) => value.clone(),
                (None, Some(file)) => {
                    let text = std::fs::read_to_string(file).map_err(|source| CtlError::File {
                        path: file.display().to_string(),
                        source,
                    })?;
                    // An editor's final newline is not part of the value.
                    let end = text.strip_suffix('\n').unwrap_or(&text);
                    end.strip_suffix('\r').unwrap_or(end).to_owned()
                }
                (None, None) => return Err(CtlError::usage("set: give a VALUE or --file")),
            };
            let options = change::Options {
                dry_run: args.dry_run,
                change_kind: args.change_kind,
                json,
            };
            if let Some(target) =
                flagd_edit::locate(&aws, path.as_ref(), format, &args.flag).await?
            {
                let stored = param::read(aws.ssm().await?, &target.parameter, "").await?;
                let new_flag = flagd_edit::parse_definition(&value, &target.key)?;
                let undo = (!stored.is_secure()).then(|| {
                    let old = flagd_edit::definition(&stored.value, &target)
                        .map(|v| v.to_string())
                        .unwrap_or_default();
                    flagd_undo(marked.as_ref(), &target.key, &old)
                });
                let action = flagd_edit::Action::Set;
                return flagd_edit::write(
                    aws.ssm().await?,
                    &stored,
                    &target,
                    &new_flag,
                    action,
                    options,
                    undo,
                )
                .await;
            }
            let name = name(&args.flag)?;
            // Under a flagd path a parameter of its own is a flagd flag: checked as one.
            if let Format::Flagd(bucketing) = format {
                let key = path
                    .as_ref()
                    .and_then(|under| under.flag_name(&name))
                    .unwrap_or(&name);
                flagd_edit::check_new(key, &value, bucketing)?;
            }
            let hint = " (pass --create to create it; check the name and --path)";
            match param::read(aws.ssm().await?, &name, hint).await {
                Ok(stored) => {
                    change::apply(
                        aws.ssm().await?,
                        &stored,
                        &value,
                        change::Action::Set,
                        options,
                    )
                    .await
                }
                Err(CtlError::NotFound { .. }) if args.create => {
                    create(
                        aws.ssm().await?,
                        &name,
                        &value,
                        args.kind,
                        args.key_id,
                        options,
                    )
                    .await
                }
                Err(error) => Err(error),
            }
        }
        Command::Ramp(args) => {
            // A flagd flag: the share of one variant in its only `fractional`.
            let (name, knob) = match flagd_edit::locate(&aws, path.as_ref(), format, &args.flag)
                .await?
            {
                Some(target) => {
                    let stored = param::read(aws.ssm().await?, &target.parameter, "").await?;
                    let flag = flagd_edit::definition(&stored.value, &target)?;
                    let variant =
                        flagd_edit::ramped_variant(&flag, args.variant.as_deref(), &target.key)?;
                    // Refused here, before any alarm is read, when the targeting has not
                    // exactly one `fractional` or the variant has no bucket.
                    flagd_edit::share(&flag, &variant, &target.key)?;
                    (
                        target.parameter.clone(),
                        ramp::Knob::Share { target, variant },
                    )
                }
                None => (name(&args.flag)?, ramp::Knob::Rollout),
            };
            // Everything is checked before anything changes: the steps, the alarms, the flag.
            let steps = match (&args.steps, args.step) {
                (Some(raw), _) => ramp::parse_steps(raw)?,
                (None, Some(step)) => {
                    let stored = param::read(aws.ssm().await?, &name, "").await?;
                    let current = match (&knob, stored.parsed()) {
                        (ramp::Knob::Share { .. }, _) => ramp::current(&knob, &stored)?,
                        (_, Ok(flags::FlagValue::Json(flag))) => {
                            flag.rules().rollout_percentage.unwrap_or(100.0)
                        }
                        _ => 0.0,
                    };
                    ramp::fixed_steps(current, step, args.to)?
                }
                (None, None) => return Err(CtlError::usage("ramp: give --steps or --step")),
            };
            let guard = alarms::Guard::new(
                aws.cloudwatch().await?.clone(),
                args.alarms,
                args.insufficient_data,
            )
            .await?;
            let plan = ramp::Plan {
                steps,
                every: args.every,
                check_every: args.check_every.max(std::time::Duration::from_millis(100)),
                restart: args.restart,
                json,
            };
            ramp::run(aws.ssm().await?, &guard, &name, &plan, &knob).await
        }

        Command::Kill(args) => {
            if let Some(target) =
                flagd_edit::locate(&aws, path.as_ref(), format, &args.flag).await?
            {
                let stored = param::read(aws.ssm().await?, &target.parameter, "").await?;
                let old = flagd_edit::definition(&stored.value, &target)?;
                let new_flag = flagd_edit::killed(&old, args.variant.as_deref(), &target.key)?;
                // Restores both the default variant and the targeting.
                let undo = match stored.is_secure() {
                    false => flagd_undo(marked.as_ref(), &target.key, &old.to_string()),
                    true => format!(
                        "ssm-flags-ctl rollback {} --to-version {}",
                        stored.name, stored.meta.version
                    ),
                };
                let options = change::Options {
                    dry_run: args.dry_run,
                    change_kind: false,
                    json,
                };
                let action = flagd_edit::Action::Kill;
                return flagd_edit::write(
                    aws.ssm().await?,
                    &stored,
                    &target,
                    &new_flag,
                    action,
                    options,
                    Some(undo),
                )
                .await;
            }
            let stored = param::read(aws.ssm().await?, &name(&args.flag)?, "").await?;
            let options = change::Options {
                dry_run: args.dry_run,
                change_kind: false,
                json,
            };
            match change::killed(&stored)? {
                Some(value) => {
                    change::apply(
                        aws.ssm().await?,
                        &stored,
                        &value,
                        change::Action::Kill,
                        options,
                    )
                    .await
                }
                None => {
                    if json {
                        output::print_json(&serde_json::json!({
                            "parameter": stored.name, "action": "kill",
                            "old_version": stored.meta.version, "new_version": null,
                            "already_off": true,
                        }));
                    } else {
                        println!(
                            "{} is already off (version {}): nothing written",
                            stored.name, stored.meta.version
                        );
                    }
                    Ok(false)
                }
            }
        }
        Command::Export(args) => {
            let spec = source_or_path(args.source.as_deref(), marked.as_ref())?;
            if matches!(spec, Spec::File(_)) {
                return Err(CtlError::usage(
                    "export reads an SSM path or an AppConfig profile, not a file",
                ));
            }
            let flags = sources::load(&aws, &spec, false).await?;
            export::export(&flags, args.include_secure, args.output.as_deref(), json)
        }
        Command::Diff(args) => {
            let a = sources::load(&aws, &Spec::parse(&args.a)?, false).await?;
            let b = sources::load(&aws, &Spec::parse(&args.b)?, false).await?;
            diff::diff(&a, &b, json)
        }
        Command::History(args) => show::history(aws.ssm().await?, &name(&args.flag)?, json).await,
        Command::Rollback(args) => {
            let name = name(&args.flag)?;
            let stored = param::read(aws.ssm().await?, &name, "").await?;
            let value = param::read_version(aws.ssm().await?, &name, args.to_version).await?;
            let options = change::Options {
                dry_run: args.dry_run,
                change_kind: args.change_kind,
                json,
            };
            change::apply(
                aws.ssm().await?,
                &stored,
                &value,
                change::Action::Rollback,
                options,
            )
            .await
        }
    }
}

/// Prints lint's findings; errors (and warnings under `strict`) exit 1.
fn report_lint(loaded: &[sources::Flags], strict: bool, json: bool) -> Outcome {
    let findings = lint::lint(loaded);
    let errors = findings
        .iter()
        .filter(|f| f.severity == lint::Severity::Error)
        .count();
    let warnings = findings.len() - errors;
    let failed = errors > 0 || (strict && warnings > 0);
    if json {
        output::print_json(&serde_json::json!({
            "sources": loaded.iter().map(|f| serde_json::json!({
                "source": f.spec.to_string(), "flags": f.flags.len(),
            })).collect::<Vec<_>>(),
            "errors": errors,
            "warnings": warnings,
            "findings": findings,
        }));
        return Ok(failed);
    }
    if !findings.is_empty() {
        let mut table = output::table(["", "SOURCE", "FLAG", "FIELD", "PROBLEM"]);
        for f in &findings {
            table.add_row([
                match f.severity {
                    lint::Severity::Error => "error",
                    lint::Severity::Warning => "warning",
                },
                f.source.as_str(),
                // A finding about a whole source (it has no flags) names no flag.
                match f.flag.as_str() {
                    "" => "-",
                    flag => flag,
                },
                f.field.as_deref().unwrap_or("-"),
                f.message.as_str(),
            ]);
        }
        println!("{table}");
    }
    let checked: usize = loaded.iter().map(|f| f.flags.len()).sum();
    println!("{checked} flag(s) checked: {errors} error(s), {warnings} warning(s)");
    Ok(failed)
}

/// `set --create`: a new parameter, validated first.
async fn create(
    ssm: &aws_sdk_ssm::Client,
    name: &str,
    value: &str,
    kind: NewType,
    key_id: Option<String>,
    options: change::Options,
) -> Outcome {
    let kind = match kind {
        NewType::String => ParameterKind::String,
        NewType::StringList => ParameterKind::StringList,
        NewType::SecureString => ParameterKind::SecureString,
    };
    change::validate(name, kind, value)?;
    let secure = kind == ParameterKind::SecureString;
    let version = match options.dry_run {
        true => None,
        false => Some(param::create(ssm, name, value, kind, key_id).await?),
    };
    if options.json {
        output::print_json(&serde_json::json!({
            "parameter": name, "action": "create", "dry_run": options.dry_run,
            "type": param::type_name(kind), "new_version": version,
            "value": output::shown(value, secure),
        }));
    } else {
        println!(
            "{name} (new {}): {}",
            param::type_name(kind),
            output::shown(value, secure)
        );
        match version {
            Some(version) => println!("created: version {version}"),
            None => println!("dry run: valid, nothing written"),
        }
    }
    Ok(false)
}
