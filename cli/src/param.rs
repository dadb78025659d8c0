//! One flag's parameter in SSM: naming it, reading it with its metadata, writing it back as it
//! was stored (type, KMS key, tier, description kept), its history, and version labels.

use std::collections::HashMap;

use aws_sdk_ssm::primitives::{DateTime, DateTimeFormat};
use aws_sdk_ssm::types::{ParameterMetadata, ParameterStringFilter, ParameterTier, ParameterType};
use flags::{FlagPath, FlagValue, ParameterKind, Problem};

use crate::error::{AwsError, CtlError};

/// The full parameter name of `flag`: itself when it starts with `/`, else under `path`.
pub fn resolve(flag: &str, path: Option<&FlagPath>) -> Result<String, CtlError> {
    let flag = flag.trim();
    if flag.starts_with('/') {
        return Ok(flag.to_owned());
    }
    if flag.is_empty() {
        return Err(CtlError::usage("an empty flag name"));
    }
    match path {
        Some(path) if path.is_root() => Ok(format!("/{flag}")),
        Some(path) => Ok(format!("{path}/{flag}")),
        None => Err(CtlError::usage(format!(
            "flag {flag:?} is not a full parameter name: pass --path /myapp/prod/flags (or set SSM_FLAGS_PATH), or name it in full (/myapp/prod/flags/{flag})"
        ))),
    }
}

/// What SSM says about a parameter besides its value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Meta {
    /// Its current version.
    pub version: i64,
    /// When it last changed (RFC 3339).
    pub last_modified: Option<String>,
    /// Who changed it last (an IAM ARN).
    pub last_modified_user: Option<String>,
    /// `Standard`, `Advanced` or `Intelligent-Tiering`.
    pub tier: Option<ParameterTier>,
    /// The KMS key of a SecureString.
    pub key_id: Option<String>,
    /// The description.
    pub description: Option<String>,
    /// The allowed pattern.
    pub allowed_pattern: Option<String>,
    /// `text`, or an AWS data type.
    pub data_type: Option<String>,
}

impl Meta {
    fn from_metadata(p: &ParameterMetadata) -> Self {
        Self {
            version: p.version(),
            last_modified: p.last_modified_date().map(rfc3339),
            last_modified_user: p.last_modified_user().map(str::to_owned),
            tier: p.tier().cloned(),
            key_id: p.key_id().map(str::to_owned),
            description: p.description().map(str::to_owned),
            allowed_pattern: p.allowed_pattern().map(str::to_owned),
            data_type: p.data_type().map(str::to_owned),
        }
    }

    /// The largest value the tier holds, in bytes (Standard 4 KB, Advanced 8 KB).
    pub fn size_limit(&self) -> usize {
        match self.tier {
            Some(ParameterTier::Advanced) => ADVANCED_LIMIT,
            _ => STANDARD_LIMIT,
        }
    }
}

/// A Standard parameter's value limit.
pub const STANDARD_LIMIT: usize = 4096;
/// An Advanced parameter's value limit.
pub const ADVANCED_LIMIT: usize = 8192;

/// A parameter as stored: its decrypted value and its metadata.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The full name.
    pub name: String,
    /// The value (decrypted: never print a SecureString's).
    pub value: String,
    /// The parameter type.
    pub kind: ParameterKind,
    /// Everything else.
    pub meta: Meta,
}

impl Stored {
    /// The value parsed as the extension parses it.
    pub fn parsed(&self) -> Result<FlagValue, Problem> {
        FlagValue::parse(self.kind, &self.value)
    }

    /// Whether the value must never be shown.
    pub fn is_secure(&self) -> bool {
        self.kind == ParameterKind::SecureString
    }
}

/// The flag model's kind of an SSM parameter type.
pub fn kind_of(t: &ParameterType) -> ParameterKind {
    match t {
        ParameterType::SecureString => ParameterKind::SecureString,
        ParameterType::StringList => ParameterKind::StringList,
        _ => ParameterKind::String,
    }
}

fn parameter_type(kind: ParameterKind) -> ParameterType {
    match kind {
        ParameterKind::String => ParameterType::String,
        ParameterKind::StringList => ParameterType::StringList,
        ParameterKind::SecureString => ParameterType::SecureString,
    }
}

/// The name of a parameter type, as SSM spells it.
pub fn type_name(kind: ParameterKind) -> &'static str {
    match kind {
        ParameterKind::String => "String",
        ParameterKind::StringList => "StringList",
        ParameterKind::SecureString => "SecureString",
    }
}

/// RFC 3339 text of an SDK time.
pub fn rfc3339(at: &DateTime) -> String {
    at.fmt(DateTimeFormat::DateTime)
        .unwrap_or_else(|_| at.secs().to_string())
}

fn not_found(name: &str, hint: &str) -> CtlError {
    CtlError::NotFound {
        name: name.to_owned(),
        hint: hint.to_owned(),
    }
}

/// Reads a parameter, decrypted, with its metadata. `hint` is added to the error when it does
/// not exist.
pub async fn read(ssm: &aws_sdk_ssm::Client, name: &str, hint: &str) -> Result<Stored, CtlError> {
    let answer = ssm
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(error) => {
            let error = AwsError::from_sdk("ssm:GetParameter", name, error);
            return Err(match error.code() {
                Some("ParameterNotFound") => not_found(name, hint),
                _ => error.into(),
            });
        }
    };
    let Some(p) = answer.parameter() else {
        return Err(not_found(name, hint));
    };
    let kind = p.r#type().map(kind_of).unwrap_or(ParameterKind::String);
    let mut meta = describe_one(ssm, name).await?.unwrap_or_default();
    meta.version = p.version();
    if meta.last_modified.is_none() {
        meta.last_modified = p.last_modified_date().map(rfc3339);
    }
    Ok(Stored {
        name: name.to_owned(),
        value: p.value().unwrap_or_default().to_owned(),
        kind,
        meta,
    })
}

/// The value of one version of a parameter, decrypted.
pub async fn read_version(
    ssm: &aws_sdk_ssm::Client,
    name: &str,
    version: i64,
) -> Result<String, CtlError> {
    let selector = format!("{name}:{version}");
    let answer = ssm
        .get_parameter()
        .name(&selector)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ssm:GetParameter", &selector, e));
    match answer {
        Ok(answer) => Ok(answer
            .parameter()
            .and_then(|p| p.value())
            .unwrap_or_default()
            .to_owned()),
        Err(error) => Err(match error.code() {
            Some("ParameterVersionNotFound" | "ParameterNotFound") => {
                not_found(&selector, " (no such version: see `ssm-flags-ctl history`)")
            }
            _ => error.into(),
        }),
    }
}

async fn describe(
    ssm: &aws_sdk_ssm::Client,
    filter: ParameterStringFilter,
    resource: &str,
) -> Result<HashMap<String, Meta>, CtlError> {
    let mut found = HashMap::new();
    let mut pages = ssm
        .describe_parameters()
        .parameter_filters(filter)
        .max_results(50)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AwsError::from_sdk("ssm:DescribeParameters", resource, e))?;
        for p in page.parameters() {
            if let Some(name) = p.name() {
                found.insert(name.to_owned(), Meta::from_metadata(p));
            }
        }
    }
    Ok(found)
}

fn filter(key: &str, option: &str, value: &str) -> Result<ParameterStringFilter, CtlError> {
    ParameterStringFilter::builder()
        .key(key)
        .option(option)
        .values(value)
        .build()
        .map_err(|e| CtlError::usage(e.to_string()))
}

/// The metadata of one parameter, if it exists.
pub async fn describe_one(ssm: &aws_sdk_ssm::Client, name: &str) -> Result<Option<Meta>, CtlError> {
    let mut found = describe(ssm, filter("Name", "Equals", name)?, name).await?;
    Ok(found.remove(name))
}

/// The metadata of every parameter under `path` (recursive), by full name.
pub async fn describe_path(
    ssm: &aws_sdk_ssm::Client,
    path: &FlagPath,
) -> Result<HashMap<String, Meta>, CtlError> {
    describe(
        ssm,
        filter("Path", "Recursive", path.as_str())?,
        path.as_str(),
    )
    .await
}

/// Writes `value` over `stored` as a new version, keeping its type, KMS key, tier, description,
/// allowed pattern and data type; returns the new version.
pub async fn overwrite(
    ssm: &aws_sdk_ssm::Client,
    stored: &Stored,
    value: &str,
) -> Result<i64, CtlError> {
    let meta = &stored.meta;
    let request = ssm
        .put_parameter()
        .name(&stored.name)
        .value(value)
        .overwrite(true)
        .r#type(parameter_type(stored.kind))
        .set_key_id(meta.key_id.clone().filter(|_| stored.is_secure()))
        .set_tier(meta.tier.clone())
        .set_description(meta.description.clone())
        .set_allowed_pattern(meta.allowed_pattern.clone())
        .set_data_type(meta.data_type.clone());
    let answer = request
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ssm:PutParameter", &stored.name, e))?;
    Ok(answer.version())
}

/// Creates a parameter that does not exist yet (never overwrites); returns its version (1).
pub async fn create(
    ssm: &aws_sdk_ssm::Client,
    name: &str,
    value: &str,
    kind: ParameterKind,
    key_id: Option<String>,
) -> Result<i64, CtlError> {
    let answer = ssm
        .put_parameter()
        .name(name)
        .value(value)
        .overwrite(false)
        .r#type(parameter_type(kind))
        .set_key_id(key_id)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ssm:PutParameter", name, e))?;
    Ok(answer.version())
}

/// One version in a parameter's history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Version {
    /// The version number.
    pub version: i64,
    /// When it was written (RFC 3339).
    pub modified: Option<String>,
    /// Who wrote it.
    pub user: Option<String>,
    /// Its labels.
    pub labels: Vec<String>,
    /// Its value; `None` for a SecureString (never shown).
    pub value: Option<String>,
    /// The parameter type of this version.
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// Every version of a parameter, oldest first. SecureString values are not fetched.
pub async fn history(ssm: &aws_sdk_ssm::Client, name: &str) -> Result<Vec<Version>, CtlError> {
    let mut versions = Vec::new();
    let mut pages = ssm
        .get_parameter_history()
        .name(name)
        .with_decryption(false)
        .max_results(50)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(page) => page,
            Err(error) => {
                let error = AwsError::from_sdk("ssm:GetParameterHistory", name, error);
                return Err(match error.code() {
                    Some("ParameterNotFound") => not_found(name, ""),
                    _ => error.into(),
                });
            }
        };
        for p in page.parameters() {
            let kind = p.r#type().map(kind_of).unwrap_or(ParameterKind::String);
            versions.push(Version {
                version: p.version(),
                modified: p.last_modified_date().map(rfc3339),
                user: p.last_modified_user().map(str::to_owned),
                labels: p.labels().to_vec(),
                value: (kind != ParameterKind::SecureString)
                    .then(|| p.value().unwrap_or_default().to_owned()),
                kind: type_name(kind),
            });
        }
    }
    versions.sort_by_key(|v| v.version);
    Ok(versions)
}

/// Attaches `label` to `version` (moving it from any other version).
pub async fn label(
    ssm: &aws_sdk_ssm::Client,
    name: &str,
    version: i64,
    label: &str,
) -> Result<(), CtlError> {
    let answer = ssm
        .label_parameter_version()
        .name(name)
        .parameter_version(version)
        .labels(label)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ssm:LabelParameterVersion", name, e))?;
    // SSM answers 200 and lists a label it refuses (one starting with `aws`, `ssm` or a digit).
    match answer.invalid_labels().is_empty() {
        true => Ok(()),
        false => Err(CtlError::Source(format!(
            "SSM refused the label {label:?} on {name} version {version}"
        ))),
    }
}

/// Removes `label` from `version`.
pub async fn unlabel(
    ssm: &aws_sdk_ssm::Client,
    name: &str,
    version: i64,
    label: &str,
) -> Result<(), CtlError> {
    ssm.unlabel_parameter_version()
        .name(name)
        .parameter_version(version)
        .labels(label)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ssm:UnlabelParameterVersion", name, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_resolve_under_the_path_or_stand_in_full() {
        let path = FlagPath::parse("/myapp/prod/flags").ok();
        assert_eq!(
            resolve("dark-mode", path.as_ref()).ok().as_deref(),
            Some("/myapp/prod/flags/dark-mode")
        );
        assert_eq!(
            resolve("/other/x", path.as_ref()).ok().as_deref(),
            Some("/other/x")
        );
        let root = FlagPath::parse("/").ok();
        assert_eq!(resolve("x", root.as_ref()).ok().as_deref(), Some("/x"));
        let error = resolve("dark-mode", None).expect_err("no path");
        assert!(error.to_string().contains("--path"), "{error}");
    }
}
