//! What can go wrong, in words an operator can act on, and the exit code each gives a CI job:
//! 0 done, 1 findings or a refused change, 2 a usage error or an AWS error.

use std::process::ExitCode;

use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use ssm_flags_extension::source::{SourceError, Unconfigured, error_chain as chain, unconfigured};

/// Why a command did not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The command line (or the environment it reads) is wrong.
    #[error("{0}")]
    Usage(String),
    /// The change was refused: SSM was left unchanged. Says why and what to do instead.
    #[error("refused: {0}")]
    Refused(String),
    /// A ramp stopped (an alarm, or someone else changed the flag): says what it did about it.
    #[error("{0}")]
    Stopped(String),
    /// No parameter by that name.
    #[error("parameter {name} not found{hint}")]
    NotFound {
        /// The full parameter name.
        name: String,
        /// What to do about it (may be empty).
        hint: String,
    },
    /// Flags could not be read from a source (an SSM path, an AppConfig profile, a file).
    #[error("{0}")]
    Source(String),
    /// AWS refused or failed a call.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl CtlError {
    /// The exit code this error gives.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Refused(_) | Self::Stopped(_) => ExitCode::from(1),
            _ => ExitCode::from(2),
        }
    }

    /// A usage error.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::Usage(message.into())
    }

    /// A refusal.
    pub fn refused(message: impl Into<String>) -> Self {
        Self::Refused(message.into())
    }
}

/// An AWS call that failed, named by its IAM action and resource.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// The caller lacks an IAM permission.
    #[error(
        "access denied: the caller may not {action} on {resource}: grant the IAM permission `{action}` on `{resource}` (AWS said: {message})"
    )]
    AccessDenied {
        /// The IAM action (`ssm:PutParameter`).
        action: String,
        /// The resource (an ARN when AWS gave one, else the parameter or alarm name).
        resource: String,
        /// AWS's message.
        message: String,
    },
    /// No usable credentials.
    #[error(
        "no AWS credentials for {action}: {message} (pass --profile, set AWS_PROFILE, or the AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY variables; for an SSO profile run `aws sso login` first)"
    )]
    Credentials {
        /// The IAM action.
        action: String,
        /// What the SDK said.
        message: String,
    },
    /// No AWS region: the call was never sent.
    #[error(
        "no AWS region for {action}: {message} (pass --region, set AWS_REGION, or give the profile a region)"
    )]
    Region {
        /// The IAM action.
        action: String,
        /// What the SDK said.
        message: String,
    },
    /// AWS throttled the call.
    #[error("AWS throttled {action} on {resource}: {message} (try again in a moment)")]
    Throttled {
        /// The IAM action.
        action: String,
        /// The resource.
        resource: String,
        /// AWS's message.
        message: String,
    },
    /// Any other error AWS answered.
    #[error("{action} on {resource} failed: {code}: {message}")]
    Service {
        /// The IAM action.
        action: String,
        /// The resource.
        resource: String,
        /// AWS's error code.
        code: String,
        /// AWS's message.
        message: String,
    },
    /// AWS could not be reached.
    #[error("cannot reach AWS for {action} on {resource}: {message}")]
    Unreachable {
        /// The IAM action.
        action: String,
        /// The resource.
        resource: String,
        /// What failed.
        message: String,
    },
}

impl AwsError {
    /// Classifies an SDK error of the call `action` (the IAM action, e.g. `ssm:PutParameter`) on
    /// `resource`.
    pub fn from_sdk<E, R>(action: &str, resource: &str, error: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let action = action.to_owned();
        let resource = resource.to_owned();
        match &error {
            SdkError::ServiceError(service) => {
                let err = service.err();
                let code = err.code().unwrap_or("Unknown").to_owned();
                let message = err.message().unwrap_or_default().to_owned();
                Self::from_code(action, resource, code, message)
            }
            _ => match unconfigured(&error) {
                Some(Unconfigured::Credentials { .. }) => Self::Credentials {
                    action,
                    message: chain(&error),
                },
                Some(Unconfigured::Region) => Self::Region {
                    action,
                    message: chain(&error),
                },
                None => Self::Unreachable {
                    action,
                    resource,
                    message: chain(&error),
                },
            },
        }
    }

    /// The error of a source (a path or profile) read for `action`: a missing credential or
    /// region says what to pass, as every other command does; anything else as the source
    /// said it.
    pub fn from_source(action: &str, error: SourceError) -> CtlError {
        match error {
            SourceError::Credentials { message, .. } => Self::Credentials {
                action: action.to_owned(),
                message,
            }
            .into(),
            SourceError::Region { message, .. } => Self::Region {
                action: action.to_owned(),
                message,
            }
            .into(),
            other => CtlError::Source(other.to_string()),
        }
    }

    fn from_code(action: String, resource: String, code: String, message: String) -> Self {
        match code.as_str() {
            "AccessDeniedException" | "AccessDenied" => {
                // AWS names the denied action and the resource ARN: prefer its words to ours.
                let (action, resource) = denied_in(&message).unwrap_or((action, resource));
                Self::AccessDenied {
                    action,
                    resource,
                    message,
                }
            }
            "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "ExpiredTokenException"
            | "InvalidClientTokenId" => Self::Credentials { action, message },
            "ThrottlingException" | "Throttling" | "TooManyRequestsException" => Self::Throttled {
                action,
                resource,
                message,
            },
            _ => Self::Service {
                action,
                resource,
                code,
                message,
            },
        }
    }

    /// The AWS error code, when AWS answered one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Service { code, .. } => Some(code),
            Self::AccessDenied { .. } => Some("AccessDeniedException"),
            Self::Throttled { .. } => Some("ThrottlingException"),
            _ => None,
        }
    }
}

/// `… is not authorized to perform: ssm:PutParameter on resource: arn:… because …` → the
/// action and the resource.
fn denied_in(message: &str) -> Option<(String, String)> {
    let rest = message.split_once("perform: ")?.1;
    let (action, rest) = rest.split_once(" on resource: ")?;
    let resource = rest.split_whitespace().next()?;
    Some((action.trim().to_owned(), resource.to_owned()))
}

/// The result of a command that ran: `Ok(true)` when it found something (lint findings,
/// differences), which exits 1.
pub type Outcome = Result<bool, CtlError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_denied_names_the_action_and_resource_aws_gave() {
        let error = AwsError::from_code(
            "ssm:PutParameter".into(),
            "/myapp/prod/flags/dark-mode".into(),
            "AccessDeniedException".into(),
            "User: arn:aws:sts::123456789012:assumed-role/ops/ann is not authorized to perform: ssm:PutParameter on resource: arn:aws:ssm:us-east-1:123456789012:parameter/myapp/prod/flags/dark-mode because no identity-based policy allows the ssm:PutParameter action".into(),
        );
        let text = error.to_string();
        assert!(
            text.starts_with("access denied: the caller may not ssm:PutParameter on arn:aws:ssm:us-east-1:123456789012:parameter/myapp/prod/flags/dark-mode: grant the IAM permission `ssm:PutParameter`"),
            "{text}"
        );
    }

    #[test]
    fn access_denied_without_aws_wording_names_ours() {
        let error = AwsError::from_code(
            "cloudwatch:DescribeAlarms".into(),
            "alarm payments-errors".into(),
            "AccessDenied".into(),
            "Access denied".into(),
        );
        assert!(
            error
                .to_string()
                .contains("may not cloudwatch:DescribeAlarms on alarm payments-errors"),
            "{error}"
        );
    }

    #[test]
    fn a_source_without_credentials_or_region_gets_the_commands_remedy() {
        let path = "/app/flags".to_owned();
        let credentials = AwsError::from_source(
            "ssm:GetParametersByPath",
            SourceError::Credentials {
                path: path.clone(),
                message: "no providers in chain provided credentials".into(),
                transient: false,
            },
        )
        .to_string();
        assert!(
            credentials.starts_with("no AWS credentials for ssm:GetParametersByPath")
                && credentials.contains("--profile"),
            "{credentials}"
        );
        let region = AwsError::from_source(
            "ssm:GetParametersByPath",
            SourceError::Region {
                path: path.clone(),
                message: "missing signing region".into(),
            },
        )
        .to_string();
        assert!(
            region.starts_with("no AWS region for ssm:GetParametersByPath")
                && region.contains("--region"),
            "{region}"
        );
        let unreachable = AwsError::from_source(
            "ssm:GetParametersByPath",
            SourceError::Unreachable {
                path,
                message: "connection refused".into(),
            },
        );
        assert!(
            matches!(unreachable, CtlError::Source(_)),
            "{unreachable:?}"
        );
    }

    #[test]
    fn refusals_and_stops_exit_1_everything_else_2() {
        assert_eq!(CtlError::refused("x").exit_code(), ExitCode::from(1));
        assert_eq!(CtlError::Stopped("x".into()).exit_code(), ExitCode::from(1));
        assert_eq!(CtlError::usage("x").exit_code(), ExitCode::from(2));
        let aws = AwsError::from_code("a".into(), "r".into(), "X".into(), "m".into());
        assert_eq!(CtlError::from(aws).exit_code(), ExitCode::from(2));
    }
}
