//! Where a command reads flags from: an SSM path, an AppConfig profile or a snapshot file, read
//! and parsed exactly as the extension reads and parses them (its own sources and the `flags`
//! model), so what the CLI says about a flag is what a handler gets.

use std::collections::HashMap;
use std::path::PathBuf;

use flags::snapshot::assemble::{Assembler, Shadowed};
use flags::{FlagEntry, FlagPath, Format, ParameterKind};
use ssm_flags_extension::appconfig::{AppConfigProfile, ProfileId, Sources};
use ssm_flags_extension::source::{Progress, Source, SourceError, SsmSource};

use crate::aws::Aws;
use crate::error::{AwsError, CtlError};
use crate::param::{self, Meta};

/// A place flags are read from, as given on the command line.
#[derive(Debug, Clone, PartialEq)]
pub enum Spec {
    /// `/myapp/prod/flags` (or `ssm:/myapp/prod/flags`): every parameter under the path, read in
    /// its declared format (`/myapp/prod/flags#flagd`).
    Path(FlagPath, Format),
    /// `appconfig:application/environment/profile` (its format in the id: `…#flagd`).
    Profile(ProfileId),
    /// `flags.json` (any name ending in `.json`, or `file:NAME`): a snapshot file, or a flagd
    /// document carrying flagd's `$schema`; `features.json#powertools` (the marker kept in the
    /// path, as `flags::load_file` takes it): a Powertools feature-flags document.
    File(PathBuf),
}

impl Spec {
    /// Parses a source argument: `/path`, `ssm:/path`, `appconfig:app/env/profile`,
    /// `file:NAME` or `NAME.json`.
    pub fn parse(raw: &str) -> Result<Self, CtlError> {
        let raw = raw.trim();
        let bad = |why: String| CtlError::usage(format!("source {raw:?}: {why}"));
        if let Some(profile) = raw.strip_prefix("appconfig:") {
            let mut ids = ProfileId::parse_list(profile).map_err(bad)?;
            return match (ids.pop(), ids.is_empty()) {
                (Some(id), true) => Ok(Self::Profile(id)),
                _ => Err(bad("one profile per source".to_owned())),
            };
        }
        if let Some(file) = raw.strip_prefix("file:") {
            return Ok(Self::File(PathBuf::from(file)));
        }
        let path = |raw: &str| {
            let (path, format) = Format::split(raw).map_err(|e| bad(e.to_string()))?;
            FlagPath::parse(path)
                .map(|path| Self::Path(path, format))
                .map_err(|e| bad(e.to_string()))
        };
        if let Some(rest) = raw.strip_prefix("ssm:") {
            return path(rest);
        }
        if raw.ends_with(".json")
            || raw
                .strip_suffix(Format::Powertools.marker())
                .is_some_and(|file| file.ends_with(".json"))
        {
            return Ok(Self::File(PathBuf::from(raw)));
        }
        if raw.starts_with('/') {
            return path(raw);
        }
        Err(bad(
            "not an SSM path (/myapp/prod/flags), a snapshot file (flags.json, file:NAME) or an AppConfig profile (appconfig:application/environment/profile)"
                .to_owned(),
        ))
    }
}

impl std::fmt::Display for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Path(path, format) => write!(f, "{path}{}", format.marker()),
            Self::Profile(id) => write!(f, "appconfig:{id}{}", id.format.marker()),
            Self::File(file) => write!(f, "{}", file.display()),
        }
    }
}

/// One flag as read from a source.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The flag, parsed as the extension parses it.
    pub entry: FlagEntry,
    /// Where it lives: the full parameter name, `appconfig:…/flag`, or the flag's name in a file.
    pub parameter: String,
    /// The raw value as stored (for files: the value as written there).
    pub raw: String,
    /// The parameter type (`String` for AppConfig and files).
    pub kind: ParameterKind,
    /// SSM could not decrypt it: `raw` is ciphertext and the flag cannot be checked.
    pub undecrypted: bool,
    /// SSM's metadata (paths only, when asked for).
    pub meta: Option<Meta>,
    /// Defined inside a flagd document (`raw` is the whole document), not by a parameter of
    /// its own.
    pub in_document: bool,
}

/// Every flag of a source, by flag name.
#[derive(Debug, Clone)]
pub struct Flags {
    /// The source.
    pub spec: Spec,
    /// The flags, by name (a name defined twice resolved as in the extension).
    pub flags: std::collections::BTreeMap<String, Loaded>,
    /// The definitions hidden by another of the same name.
    pub shadowed: Vec<Shadowed>,
}

/// One flag and where it is defined.
#[derive(Debug, Clone)]
pub struct Found {
    /// The flag, parsed as the extension parses it.
    pub entry: FlagEntry,
    /// The SSM parameter defining it (its own, or a document): `None` for a file or a profile.
    pub parameter: Option<String>,
    /// The format that parameter is read in.
    pub format: Format,
}

/// The flag `flag` of `spec`; a flag named in full is looked up by its name under the
/// source's path.
pub async fn find(aws: &Aws, spec: &Spec, flag: &str) -> Result<Found, CtlError> {
    let flags = load(aws, spec, false).await?;
    let (key, format) = match spec {
        Spec::Path(under, format) => (under.flag_name(flag).unwrap_or(flag), *format),
        _ => (flag, Format::Seed),
    };
    let loaded = flags.flags.get(key).ok_or_else(|| CtlError::NotFound {
        name: format!("{key} in {spec}"),
        hint: String::new(),
    })?;
    Ok(Found {
        entry: loaded.entry.clone(),
        parameter: matches!(spec, Spec::Path(..)).then(|| loaded.parameter.clone()),
        format,
    })
}

/// Reads every flag of `spec`; `with_meta` adds SSM's metadata (who and when) to a path's flags.
pub async fn load(aws: &Aws, spec: &Spec, with_meta: bool) -> Result<Flags, CtlError> {
    let envelope = envelope()?;
    let (fetched, meta, format) = match spec {
        Spec::File(file) => return load_file(spec, file, envelope),
        Spec::Path(path, format) => {
            let source = SsmSource::new(aws.ssm().await?.clone(), vec![path.clone()]);
            let fetched = fetch(&source, "ssm:GetParametersByPath").await?;
            let meta = match with_meta {
                true => metadata(aws.ssm().await?, path).await,
                false => HashMap::new(),
            };
            (fetched, meta, *format)
        }
        Spec::Profile(id) => {
            let profile = AppConfigProfile::new(id.clone(), aws.appconfig().await?.clone());
            let source = Sources::<SsmSource>::new(None, vec![profile]);
            let action = "appconfig:StartConfigurationSession";
            (fetch(&source, action).await?, HashMap::new(), id.format)
        }
    };
    Ok(assembled(
        spec,
        &fetched.parameters,
        format,
        |name| fetched.undecrypted.iter().any(|n| n == name),
        &meta,
        envelope,
    ))
}

/// The Powertools envelope, `SSM_FLAGS_POWERTOOLS_ENVELOPE`, as the extension reads it.
fn envelope() -> Result<Option<flags::flagd::powertools::Envelope>, CtlError> {
    let var = flags::snapshot::POWERTOOLS_ENVELOPE_VAR;
    match std::env::var(var) {
        Ok(text) if !text.trim().is_empty() => flags::flagd::powertools::Envelope::new(text.trim())
            .map(Some)
            .map_err(|e| CtlError::usage(format!("{var}: {e}"))),
        _ => Ok(None),
    }
}

/// The flags of `parameters` read in `format` (one source), each with where it comes from.
fn assembled(
    spec: &Spec,
    parameters: &[flags::Parameter],
    format: Format,
    undecrypted: impl Fn(&str) -> bool,
    meta: &HashMap<String, Meta>,
    envelope: Option<flags::flagd::powertools::Envelope>,
) -> Flags {
    let mut assembler = Assembler::new().with_envelope(envelope);
    for parameter in parameters {
        assembler.add(0, format, parameter);
    }
    let assembly = assembler.finish();
    let by_name: HashMap<&str, &flags::Parameter> =
        parameters.iter().map(|p| (p.name.as_str(), p)).collect();
    let flags = assembly
        .entries
        .into_iter()
        .zip(assembly.origins)
        .map(|(entry, origin)| {
            let parameter = by_name.get(origin.parameter.as_str());
            let loaded = Loaded {
                parameter: origin.parameter.clone(),
                raw: parameter.map(|p| p.value.clone()).unwrap_or_default(),
                kind: parameter.map_or(ParameterKind::String, |p| p.kind),
                undecrypted: undecrypted(&origin.parameter),
                meta: meta.get(&origin.parameter).cloned(),
                in_document: origin.in_document,
                entry,
            };
            (loaded.entry.name().to_owned(), loaded)
        })
        .collect();
    Flags {
        spec: spec.clone(),
        flags,
        shadowed: assembly.shadowed,
    }
}

/// The metadata of a path's parameters, or none (said on stderr) when the caller may not read it:
/// the flags themselves are still checked and listed, without who changed them, when, or their
/// tier (Standard's size limit is then assumed).
async fn metadata(ssm: &aws_sdk_ssm::Client, path: &FlagPath) -> HashMap<String, Meta> {
    match param::describe_path(ssm, path).await {
        Ok(meta) => meta,
        Err(error) => {
            eprintln!(
                "ssm-flags-ctl: warning: no metadata for {path} (last change, by whom, tier): {error}"
            );
            HashMap::new()
        }
    }
}

/// Everything `source` has; `action` (its first IAM action) names a missing credential or region.
async fn fetch(
    source: &impl Source,
    action: &str,
) -> Result<ssm_flags_extension::source::Fetched, CtlError> {
    let mut progress = Progress::default();
    source
        .fetch_into(&mut progress)
        .await
        .map_err(|e: SourceError| AwsError::from_source(action, e))?;
    let fetched = progress.into_fetched();
    // A profile that failed is reported stale rather than failing the fetch (the extension
    // serves its last good): here there is no last good, so it is an error.
    match fetched.stale.first() {
        Some(why) => Err(CtlError::Source(why.clone())),
        None => Ok(fetched),
    }
}

fn load_file(
    spec: &Spec,
    file: &std::path::Path,
    envelope: Option<flags::flagd::powertools::Envelope>,
) -> Result<Flags, CtlError> {
    let marked = file.to_string_lossy();
    if let Some(plain) = marked.strip_suffix(Format::Powertools.marker())
        && !file.is_file()
    {
        // A Powertools document: every feature in it, as `flags::load_file` reads it.
        let plain = std::path::Path::new(plain);
        let bytes = std::fs::read(plain).map_err(|source| CtlError::File {
            path: plain.display().to_string(),
            source,
        })?;
        let parameter = flags::Parameter {
            flag: plain.display().to_string(),
            name: plain.display().to_string(),
            kind: ParameterKind::String,
            value: String::from_utf8_lossy(&bytes).into_owned(),
            version: 0,
        };
        return Ok(assembled(
            spec,
            &[parameter],
            Format::Powertools,
            |_| false,
            &HashMap::new(),
            envelope,
        ));
    }
    let bytes = std::fs::read(file).map_err(|source| CtlError::File {
        path: file.display().to_string(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    if flags::format::raw_declares_flagd(&text) {
        // A flagd document: every flag in it, v3 bucketing, as `flags::load_file` reads it.
        let parameter = flags::Parameter {
            flag: file.display().to_string(),
            name: file.display().to_string(),
            kind: ParameterKind::String,
            value: text.into_owned(),
            version: 0,
        };
        let format = Format::Flagd(flags::Bucketing::V3);
        return Ok(assembled(
            spec,
            &[parameter],
            format,
            |_| false,
            &HashMap::new(),
            None,
        ));
    }
    let doc = flags::wire::SnapshotDoc::from_slice(&bytes, &file.display().to_string())
        .map_err(|e| CtlError::Source(e.to_string()))?;
    let raws: HashMap<String, String> = doc
        .flags
        .iter()
        .map(|(name, flag)| {
            let raw = match &flag.value {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            (name.clone(), raw)
        })
        .collect();
    let snapshot = doc.into_snapshot();
    let flags = snapshot
        .entries()
        .map(|entry| {
            let loaded = Loaded {
                entry: entry.clone(),
                parameter: entry.name().to_owned(),
                raw: raws.get(entry.name()).cloned().unwrap_or_default(),
                kind: if entry.is_secure() {
                    ParameterKind::SecureString
                } else {
                    ParameterKind::String
                },
                undecrypted: false,
                meta: None,
                in_document: false,
            };
            (entry.name().to_owned(), loaded)
        })
        .collect();
    Ok(Flags {
        spec: spec.clone(),
        flags,
        shadowed: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_told_apart_by_their_form() {
        assert_eq!(
            Spec::parse("/myapp/prod/flags/").ok(),
            FlagPath::parse("/myapp/prod/flags")
                .ok()
                .map(|p| Spec::Path(p, Format::Seed))
        );
        assert!(matches!(Spec::parse("ssm:/a.json"), Ok(Spec::Path(..))));
        let flagd = Spec::parse("/myapp/prod/flags#flagd-v2").expect("a marked path");
        assert!(matches!(
            flagd,
            Spec::Path(_, Format::Flagd(flags::Bucketing::V2))
        ));
        assert_eq!(flagd.to_string(), "/myapp/prod/flags#flagd-v2");
        assert!(Spec::parse("/a#yaml").is_err());
        assert_eq!(
            Spec::parse("flags.json").ok(),
            Some(Spec::File("flags.json".into()))
        );
        assert_eq!(
            Spec::parse("/tmp/flags.json").ok(),
            Some(Spec::File("/tmp/flags.json".into()))
        );
        assert_eq!(
            Spec::parse("file:snap").ok(),
            Some(Spec::File("snap".into()))
        );
        let Ok(Spec::Profile(id)) = Spec::parse("appconfig:app/prod/flags") else {
            panic!("a profile")
        };
        assert_eq!(id.to_string(), "app/prod/flags");
    }

    #[test]
    fn bad_sources_name_the_argument_and_the_forms() {
        for raw in ["myapp/prod", "appconfig:a/b", "appconfig:a/b/c,d/e/f"] {
            let error = Spec::parse(raw).expect_err(raw).to_string();
            assert!(error.contains(&format!("{raw:?}")), "{error}");
        }
    }
}
