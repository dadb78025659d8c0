//! Turns an EventBridge "Parameter Store Change" event into a clear message and publishes it to
//! SNS: which flag, what happened, who (when the event says), when.
//!
//! Configuration (environment, read once): `SNS_TOPIC_ARN` (required), and `SSM_FLAGS_PATH`
//! (optional: comma-separated flag paths, to name flags as handlers do, e.g. `checkout/v2`).

use flags::FlagPath;
use serde::Deserialize;
use serde_json::Value;

/// An EventBridge event for an SSM parameter change (`detail-type: Parameter Store Change`).
#[derive(Debug, Clone, Deserialize)]
pub struct ChangeEvent {
    /// When the change happened (RFC 3339).
    #[serde(default)]
    pub time: Option<String>,
    /// The account.
    #[serde(default)]
    pub account: Option<String>,
    /// The region.
    #[serde(default)]
    pub region: Option<String>,
    /// The change itself.
    pub detail: Detail,
}

/// The `detail` of a Parameter Store change event.
#[derive(Debug, Clone, Deserialize)]
pub struct Detail {
    /// `Create`, `Update`, `Delete` or `LabelParameterVersion`.
    pub operation: String,
    /// The full parameter name.
    pub name: String,
    /// The parameter type.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// The parameter description, if any.
    #[serde(default)]
    pub description: Option<String>,
    /// Who made the change, when the event carries it (CloudTrail-sourced events do).
    #[serde(default, rename = "userIdentity")]
    pub user_identity: Option<Value>,
}

/// The notifier's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `SNS_TOPIC_ARN`: where to publish.
    pub topic_arn: String,
    /// `SSM_FLAGS_PATH`: flag paths, to print flag names relative to them (as handlers read them).
    pub paths: Vec<FlagPath>,
}

/// A configuration value that cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `SNS_TOPIC_ARN` is not set or is not an SNS topic ARN.
    #[error(
        "SNS_TOPIC_ARN must be the ARN of an SNS topic (arn:aws:sns:<region>:<account>:<name>), got {0:?}"
    )]
    Topic(String),
    /// `SSM_FLAGS_PATH` is not a comma-separated list of SSM paths.
    #[error("SSM_FLAGS_PATH={value:?} is invalid: {reason}")]
    Path {
        /// The value.
        value: String,
        /// What is wrong.
        reason: flags::path::PathError,
    },
}

impl Config {
    /// Reads `SNS_TOPIC_ARN` and `SSM_FLAGS_PATH` through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let topic_arn = get("SNS_TOPIC_ARN").unwrap_or_default().trim().to_owned();
        if !topic_arn.starts_with("arn:") || !topic_arn.contains(":sns:") {
            return Err(ConfigError::Topic(topic_arn));
        }
        let paths = match get("SSM_FLAGS_PATH").filter(|v| !v.trim().is_empty()) {
            None => Vec::new(),
            Some(value) => FlagPath::parse_list(&value)
                .map_err(|reason| ConfigError::Path { value, reason })?,
        };
        Ok(Self { topic_arn, paths })
    }
}

/// A message ready for SNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The subject (SNS allows at most 100 printable ASCII characters).
    pub subject: String,
    /// The body.
    pub message: String,
}

/// Who made the change, from the event's `userIdentity` when present.
fn who(identity: Option<&Value>) -> String {
    let Some(identity) = identity else {
        return "not in the event (see CloudTrail for PutParameter/DeleteParameter)".to_owned();
    };
    ["arn", "principalId", "userName"]
        .iter()
        .find_map(|key| identity.get(key).and_then(Value::as_str))
        .map_or_else(|| identity.to_string(), str::to_owned)
}

/// Builds the message for a change.
pub fn notification(event: &ChangeEvent, config: &Config) -> Notification {
    let d = &event.detail;
    // Named exactly as handlers read it; a parameter outside every path keeps its full name.
    let flag = flags::path::flag_name(&config.paths, &d.name).unwrap_or(&d.name);
    let verb = match d.operation.as_str() {
        "Create" => "created",
        "Update" => "updated",
        "Delete" => "deleted",
        "LabelParameterVersion" => "relabelled",
        _ => "changed",
    };
    let subject: String = format!("Feature flag {verb}: {flag}")
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(100)
        .collect();
    let mut message = format!(
        "Feature flag {flag} was {verb}.\n\nFlag:      {flag}\nParameter: {}\nOperation: {}\n",
        d.name, d.operation
    );
    if let Some(kind) = &d.kind {
        message.push_str(&format!("Type:      {kind}\n"));
    }
    message.push_str(&format!("By:        {}\n", who(d.user_identity.as_ref())));
    message.push_str(&format!(
        "When:      {}\n",
        event.time.as_deref().unwrap_or("not in the event")
    ));
    if let (Some(account), Some(region)) = (&event.account, &event.region) {
        message.push_str(&format!("Where:     account {account}, {region}\n"));
    }
    if let Some(description) = d.description.as_deref().filter(|s| !s.is_empty()) {
        message.push_str(&format!("Note:      {description}\n"));
    }
    message.push_str(
        "\nHandlers pick the change up within SSM_FLAGS_MAX_AGE (default 60 s) plus one invocation.\n",
    );
    Notification { subject, message }
}

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot publish the change of {parameter} to {topic}: {message}")]
pub struct PublishError {
    /// The changed parameter.
    pub parameter: String,
    /// The topic.
    pub topic: String,
    /// The SNS error.
    pub message: String,
}

/// Publishes the notification for `event`; returns the SNS message id.
pub async fn publish(
    sns: &aws_sdk_sns::Client,
    config: &Config,
    event: &ChangeEvent,
) -> Result<String, PublishError> {
    let note = notification(event, config);
    let output = sns
        .publish()
        .topic_arn(&config.topic_arn)
        .subject(&note.subject)
        .message(&note.message)
        .send()
        .await
        .map_err(|e| PublishError {
            parameter: event.detail.name.clone(),
            topic: config.topic_arn.clone(),
            message: format!("{}", aws_sdk_sns::error::DisplayErrorContext(&e)),
        })?;
    let id = output.message_id().unwrap_or_default().to_owned();
    tracing::info!(parameter = %event.detail.name, operation = %event.detail.operation, message_id = %id, "change published");
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::from_lookup(|k| match k {
            "SNS_TOPIC_ARN" => Some("arn:aws:sns:us-east-1:123456789012:flag-changes".into()),
            "SSM_FLAGS_PATH" => Some("/myapp/prod/features/".into()),
            _ => None,
        })
        .expect("valid")
    }

    fn event(detail: Value) -> ChangeEvent {
        serde_json::from_value(serde_json::json!({
            "version": "0", "id": "e1", "detail-type": "Parameter Store Change", "source": "aws.ssm",
            "account": "123456789012", "time": "2026-11-24T10:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:ssm:us-east-1:123456789012:parameter/myapp/prod/features/checkout/v2"],
            "detail": detail
        }))
        .expect("event")
    }

    #[test]
    fn an_update_names_flag_operation_time_and_place() {
        let n = notification(
            &event(
                serde_json::json!({"operation": "Update", "name": "/myapp/prod/features/checkout/v2", "type": "String", "description": "ramp to 50%"}),
            ),
            &config(),
        );
        assert_eq!(n.subject, "Feature flag updated: checkout/v2");
        assert!(n.message.contains("Flag:      checkout/v2\n"));
        assert!(
            n.message
                .contains("Parameter: /myapp/prod/features/checkout/v2\n")
        );
        assert!(n.message.contains("Operation: Update\n"));
        assert!(n.message.contains("When:      2026-11-24T10:00:00Z\n"));
        assert!(
            n.message
                .contains("Where:     account 123456789012, us-east-1\n")
        );
        assert!(n.message.contains("Note:      ramp to 50%\n"));
        assert!(n.message.contains("By:        not in the event"));
    }

    #[test]
    fn who_comes_from_user_identity_when_present() {
        let n = notification(
            &event(
                serde_json::json!({"operation": "Delete", "name": "/other/x",
                "userIdentity": {"arn": "arn:aws:iam::123456789012:user/alice"}}),
            ),
            &config(),
        );
        assert_eq!(
            n.subject, "Feature flag deleted: /other/x",
            "outside the path: full name"
        );
        assert!(
            n.message
                .contains("By:        arn:aws:iam::123456789012:user/alice\n")
        );
    }

    #[test]
    fn flags_are_named_as_handlers_read_them_even_under_the_root_path() {
        let root = Config::from_lookup(|k| match k {
            "SNS_TOPIC_ARN" => Some("arn:aws:sns:us-east-1:123456789012:flag-changes".into()),
            "SSM_FLAGS_PATH" => Some("/".into()),
            _ => None,
        })
        .expect("valid");
        let n = notification(
            &event(serde_json::json!({"operation": "Update", "name": "/dark-mode"})),
            &root,
        );
        assert_eq!(n.subject, "Feature flag updated: dark-mode");
        let nested = notification(
            &event(serde_json::json!({"operation": "Update", "name": "/a/b/c"})),
            &root,
        );
        assert!(nested.message.contains("Flag:      a/b/c\n"));
    }

    #[test]
    fn a_bad_path_is_a_config_error_naming_the_variable() {
        let err = Config::from_lookup(|k| match k {
            "SNS_TOPIC_ARN" => Some("arn:aws:sns:us-east-1:123456789012:t".into()),
            "SSM_FLAGS_PATH" => Some("myapp/features".into()),
            _ => None,
        })
        .expect_err("relative path");
        assert_eq!(
            err.to_string(),
            "SSM_FLAGS_PATH=\"myapp/features\" is invalid: path \"myapp/features\" must start with '/'"
        );
    }

    #[test]
    fn subjects_stay_within_sns_limits() {
        let long = format!("/myapp/prod/features/{}", "é".repeat(150));
        let n = notification(
            &event(serde_json::json!({"operation": "Create", "name": long})),
            &config(),
        );
        assert!(
            n.subject.len() <= 100 && n.subject.is_ascii(),
            "{}",
            n.subject
        );
    }

    #[test]
    fn the_topic_must_be_an_sns_arn() {
        assert_eq!(
            Config::from_lookup(|_| None)
                .expect_err("missing")
                .to_string(),
            "SNS_TOPIC_ARN must be the ARN of an SNS topic (arn:aws:sns:<region>:<account>:<name>), got \"\""
        );
        assert!(Config::from_lookup(|_| Some("flag-changes".into())).is_err());
    }
}
