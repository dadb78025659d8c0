//! `list`, `get` and `history`: what the flags are, who changed them and when.

use serde::Serialize;

use crate::error::{CtlError, Outcome};
use crate::output::{self, HIDDEN};
use crate::param::{self, Stored};
use crate::sources::{Flags, Loaded};

/// One flag as `list` shows it.
#[derive(Debug, Serialize)]
struct Row<'a> {
    flag: &'a str,
    parameter: &'a str,
    kind: &'static str,
    state: String,
    version: u64,
    #[serde(rename = "type")]
    parameter_type: &'static str,
    last_modified: Option<&'a str>,
    last_modified_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn row<'a>(name: &'a str, loaded: &'a Loaded) -> Row<'a> {
    let meta = loaded.meta.as_ref();
    Row {
        flag: name,
        parameter: &loaded.parameter,
        kind: if loaded.undecrypted {
            "undecrypted"
        } else {
            output::kind(&loaded.entry)
        },
        state: if loaded.undecrypted {
            "not decrypted (kms:Decrypt)".to_owned()
        } else {
            output::state(&loaded.entry)
        },
        version: loaded.entry.ssm_version(),
        parameter_type: param::type_name(loaded.kind),
        last_modified: meta.and_then(|m| m.last_modified.as_deref()),
        last_modified_by: meta.and_then(|m| m.last_modified_user.as_deref()),
        error: loaded.entry.value().err().map(ToString::to_string),
    }
}

/// `list`: every flag of a source with its kind, state, version and who changed it last.
pub fn list(flags: &Flags, json: bool) -> Outcome {
    let rows: Vec<Row<'_>> = flags.flags.iter().map(|(name, l)| row(name, l)).collect();
    if json {
        output::print_json(&rows);
        return Ok(false);
    }
    let mut table = output::table(["FLAG", "KIND", "STATE", "VERSION", "MODIFIED", "BY"]);
    for r in &rows {
        table.add_row([
            r.flag.to_owned(),
            r.kind.to_owned(),
            r.state.clone(),
            r.version.to_string(),
            r.last_modified.unwrap_or("-").to_owned(),
            r.last_modified_by.unwrap_or("-").to_owned(),
        ]);
    }
    println!("{table}");
    let invalid = rows.iter().filter(|r| r.error.is_some()).count();
    println!(
        "{} flag(s) under {}{}",
        rows.len(),
        flags.spec,
        if invalid > 0 {
            format!(", {invalid} invalid (reading as their default): run `ssm-flags-ctl lint`")
        } else {
            String::new()
        }
    );
    Ok(false)
}

/// One flag in full, as `get` shows it.
#[derive(Debug, Serialize)]
struct Detail<'a> {
    parameter: &'a str,
    kind: &'static str,
    state: String,
    #[serde(rename = "type")]
    parameter_type: &'static str,
    version: i64,
    last_modified: Option<&'a str>,
    last_modified_by: Option<&'a str>,
    tier: Option<&'a str>,
    key_id: Option<&'a str>,
    description: Option<&'a str>,
    /// The value; `null` for a SecureString unless asked for.
    value: Option<&'a str>,
    error: Option<String>,
}

/// `get`: one flag, its value (SecureString masked unless `show_secret`) and its metadata.
pub fn get(stored: &Stored, show_secret: bool, json: bool) -> Outcome {
    let name = stored.name.rsplit('/').next().unwrap_or(&stored.name);
    let entry = flags::FlagEntry::from_parameter(&flags::Parameter {
        flag: name.to_owned(),
        name: stored.name.clone(),
        kind: stored.kind,
        value: stored.value.clone(),
        version: u64::try_from(stored.meta.version).unwrap_or(0),
    });
    let hide = stored.is_secure() && !show_secret;
    let meta = &stored.meta;
    let detail = Detail {
        parameter: &stored.name,
        kind: output::kind(&entry),
        state: output::state(&entry),
        parameter_type: param::type_name(stored.kind),
        version: meta.version,
        last_modified: meta.last_modified.as_deref(),
        last_modified_by: meta.last_modified_user.as_deref(),
        tier: meta.tier.as_ref().map(|t| t.as_str()),
        key_id: meta.key_id.as_deref(),
        description: meta.description.as_deref(),
        value: (!hide).then_some(stored.value.as_str()),
        error: entry.value().err().map(ToString::to_string),
    };
    if json {
        output::print_json(&detail);
        return Ok(false);
    }
    let mut table = output::table(["", ""]);
    let fields = [
        ("parameter", Some(detail.parameter.to_owned())),
        ("kind", Some(detail.kind.to_owned())),
        ("state", Some(detail.state.clone())),
        ("type", Some(detail.parameter_type.to_owned())),
        ("version", Some(detail.version.to_string())),
        ("modified", detail.last_modified.map(str::to_owned)),
        ("by", detail.last_modified_by.map(str::to_owned)),
        ("tier", detail.tier.map(str::to_owned)),
        ("kms key", detail.key_id.map(str::to_owned)),
        ("description", detail.description.map(str::to_owned)),
        (
            "value",
            Some(detail.value.map_or(HIDDEN.to_owned(), str::to_owned)),
        ),
        ("error", detail.error.clone()),
    ];
    for (field, value) in fields {
        if let Some(value) = value {
            table.add_row([field.to_owned(), value]);
        }
    }
    println!("{table}");
    Ok(false)
}

/// `history`: every version of a flag, oldest first, SecureString values masked.
pub async fn history(ssm: &aws_sdk_ssm::Client, name: &str, json: bool) -> Outcome {
    let versions = param::history(ssm, name).await?;
    if versions.is_empty() {
        return Err(CtlError::NotFound {
            name: name.to_owned(),
            hint: String::new(),
        });
    }
    if json {
        output::print_json(&versions);
        return Ok(false);
    }
    let mut table = output::table(["VERSION", "MODIFIED", "BY", "LABELS", "VALUE"]);
    for v in &versions {
        table.add_row([
            v.version.to_string(),
            v.modified.clone().unwrap_or_else(|| "-".to_owned()),
            v.user.clone().unwrap_or_else(|| "-".to_owned()),
            v.labels.join(","),
            v.value.clone().unwrap_or_else(|| HIDDEN.to_owned()),
        ]);
    }
    println!("{table}");
    Ok(false)
}
