//! `explain`: the decision a handler would make for a user, and why, with the library's own
//! evaluation; `--sample N` shows the share of N user ids that get the flag.

use flags::{Context, FlagEntry, Reason, Snapshot, Status};
use serde::Serialize;

use crate::error::{CtlError, Outcome};
use crate::output;

/// Who the flag is evaluated for.
#[derive(Debug, Clone, Default)]
pub struct Who {
    /// The user id.
    pub user: Option<String>,
    /// `--attr k=v` pairs; `region` is the request's region.
    pub attributes: Vec<(String, String)>,
    /// `--context JSON`: typed attributes.
    pub fields: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Parses `--attr k=v`.
pub fn parse_attr(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("{raw:?} is not name=value (e.g. region=us-east-1)")),
    }
}

#[derive(Debug, Serialize)]
struct Sample {
    users: u32,
    enabled: u32,
    share_percent: f64,
}

#[derive(Debug, Serialize)]
struct Answer<'a> {
    flag: &'a str,
    user: Option<&'a str>,
    attributes: Vec<(&'a str, &'a str)>,
    enabled: bool,
    reason: &'static str,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    bucket: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sample: Option<Sample>,
}

/// A flagd flag's explanation.
#[derive(Debug, Serialize)]
struct FlagdAnswer<'a> {
    flag: &'a str,
    user: Option<&'a str>,
    context: serde_json::Map<String, serde_json::Value>,
    /// The value (`null`: the caller's default).
    value: serde_json::Value,
    variant: Option<&'a str>,
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
    /// The top-level `if`'s conditions, in order, and whether each held.
    conditions: Vec<Condition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    branch: Option<String>,
    /// A `fractional`'s bucket: the point in 0..total.
    #[serde(skip_serializing_if = "Option::is_none")]
    bucket: Option<Bucket>,
}

#[derive(Debug, Serialize)]
struct Condition {
    field: String,
    held: bool,
}

#[derive(Debug, Serialize)]
struct Bucket {
    point: u64,
    total: u64,
}

/// Explains a flagd flag for `who`: its variant, the conditions of its top-level `if` in order,
/// the branch taken and the `fractional` bucket.
fn explain_flagd(snapshot: &Snapshot, name: &str, who: &Who, json: bool) -> Outcome {
    let mut fields = who.fields.clone().unwrap_or_else(|| {
        who.attributes
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect()
    });
    if let Some(user) = &who.user {
        fields.insert(
            "targetingKey".into(),
            serde_json::Value::String(user.clone()),
        );
    }
    let context = Context::new().with_fields(&fields);
    let flag = snapshot.get(name);
    let Some(explanation) = flag.explain(&context) else {
        return Err(CtlError::refused(format!(
            "{name} is not a flagd flag or Powertools feature"
        )));
    };
    let resolution = explanation.resolution;
    let answer = FlagdAnswer {
        flag: name,
        user: who.user.as_deref(),
        context: fields.clone(),
        // A SecureString's value is never shown (as `get` without --show-secret).
        value: match resolution.variant {
            Some(_)
                if snapshot
                    .entry(name)
                    .is_some_and(flags::FlagEntry::is_secure) =>
            {
                serde_json::Value::String(output::HIDDEN.to_owned())
            }
            Some((_, v)) => v.clone(),
            None => serde_json::Value::Null,
        },
        variant: resolution.variant.map(|(n, _)| n),
        reason: resolution.reason.as_str(),
        error: resolution.error.map(|e| e.as_str()),
        conditions: explanation
            .conditions
            .iter()
            .map(|(field, held)| Condition {
                field: field.clone(),
                held: *held,
            })
            .collect(),
        branch: explanation.branch.clone(),
        bucket: explanation
            .bucket
            .map(|(point, total)| Bucket { point, total }),
    };
    if json {
        output::print_json(&answer);
        return Ok(false);
    }
    let who_text = who
        .user
        .as_deref()
        .map_or("no user".to_owned(), |u| format!("user {u:?}"));
    let shown = match (answer.variant, resolution.error) {
        (Some(variant), _) => format!("variant {variant:?} = {}", answer.value),
        (None, Some(error)) => format!("the caller's default ({})", error.as_str()),
        (None, None) => "the caller's default".to_owned(),
    };
    println!("{name} for {who_text}: {shown}");
    println!("  reason: {}", answer.reason);
    for condition in &answer.conditions {
        println!(
            "  {}: {}",
            condition.field,
            if condition.held {
                "held"
            } else {
                "did not hold"
            }
        );
    }
    let powertools = matches!(
        snapshot.entry(name).map(FlagEntry::value),
        Some(Ok(flags::FlagValue::Flagd(d))) if d.is_powertools()
    );
    match (&answer.branch, powertools) {
        (Some(_), true) => println!(
            "  rule matched: {:?} (the first, in document order, whose conditions all hold)",
            answer.variant.unwrap_or_default()
        ),
        (None, true) if answer.reason == "DEFAULT" => {
            println!("  no rule matched: the feature's default applies");
        }
        (Some(branch), false) => println!("  branch taken: {branch}"),
        _ => {}
    }
    if let Some(bucket) = &answer.bucket {
        println!(
            "  fractional: bucket point {} of {} (the weights' running totals decide the variant)",
            bucket.point, bucket.total
        );
    }
    if let Some(error) = snapshot.entry(name).and_then(|e| e.value().err()) {
        println!("  error: {error}");
    }
    Ok(false)
}

/// The context of one request: `user`, the attributes, and the `region` attribute as its region.
fn context<'a>(user: Option<&'a str>, pairs: &'a [(&'a str, &'a str)]) -> Context<'a> {
    let mut context = Context::new().with_attributes(pairs);
    if let Some(user) = user {
        context = context.with_user(user);
    }
    if let Some((_, region)) = pairs.iter().rev().find(|(k, _)| *k == "region") {
        context = context.with_region(region);
    }
    context
}

/// Explains `entry` for `who`; `sample` also evaluates that many synthetic user ids.
pub fn explain(entry: &FlagEntry, who: &Who, sample: Option<u32>, json: bool) -> Outcome {
    if sample == Some(0) {
        return Err(CtlError::usage("--sample must be at least 1"));
    }
    let name = entry.name().to_owned();
    let snapshot = Snapshot::new(1, Status::Ok, [entry.clone()]);
    if let Ok(flags::FlagValue::Flagd(_)) = entry.value() {
        return explain_flagd(&snapshot, &name, who, json);
    }
    let pairs: Vec<(&str, &str)> = who
        .attributes
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let flag = snapshot.get(&name);
    let evaluation = flag.evaluate(&context(who.user.as_deref(), &pairs));
    let bucket = match evaluation.reason {
        Reason::Rollout { bucket, .. } => bucket,
        _ => None,
    };
    let sample = sample.map(|n| {
        let enabled = (1..=n)
            .filter(|i| {
                let user = format!("sample-user-{i}");
                flag.enabled_for(&context(Some(&user), &pairs))
            })
            .count() as u32;
        Sample {
            users: n,
            enabled,
            share_percent: (f64::from(enabled) * 1000.0 / f64::from(n)).round() / 10.0,
        }
    });
    let answer = Answer {
        flag: &name,
        user: who.user.as_deref(),
        attributes: pairs.clone(),
        enabled: evaluation.enabled,
        reason: evaluation.reason.code(),
        detail: evaluation.to_string(),
        bucket,
        sample,
    };
    if json {
        output::print_json(&answer);
        return Ok(false);
    }
    let attrs: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!(
        "{name} for {}{}: {}",
        who.user
            .as_deref()
            .map_or("no user".to_owned(), |u| format!("user {u:?}")),
        if attrs.is_empty() {
            String::new()
        } else {
            format!(" ({})", attrs.join(", "))
        },
        if evaluation.enabled { "ON" } else { "OFF" }
    );
    println!("  reason: {} ({})", answer.detail, answer.reason);
    if let Some(error) = entry.value().err() {
        println!("  error: {error}");
    }
    if let Some(sample) = &answer.sample {
        println!(
            "  sample: {} of {} user ids get it ({}%)",
            sample.enabled, sample.users, sample.share_percent
        );
    }
    Ok(false)
}
