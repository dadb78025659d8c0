//! Why a fetch failed, in words that say what to do: an AWS error classified once — throttled,
//! denied, a KMS refusal, no credentials, no region, unreachable — and whether retrying can help.

use std::time::Duration;

use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};

/// Why a fetch failed. [`SourceError::is_transient`] says whether retrying can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// SSM throttled the request (its default quota is 40 requests/s per account and region).
    #[error("SSM throttled {action} on {path}: {message}")]
    Throttled {
        /// The SSM action.
        action: &'static str,
        /// The path (or parameters) being read.
        path: String,
        /// SSM's message.
        message: String,
    },
    /// The function's role may not read the path.
    #[error(
        "access denied: {action} on {path}: {message} (the role needs ssm:GetParametersByPath on the path, ssm:GetParameters on the parameters under it, and kms:Decrypt for SecureString flags)"
    )]
    AccessDenied {
        /// The SSM action.
        action: &'static str,
        /// The path (or parameters) being read.
        path: String,
        /// SSM's message.
        message: String,
    },
    /// SSM could not decrypt a `SecureString` under the path (the role may not use its KMS key):
    /// the path is then read without decryption, so every other flag is still served.
    #[error(
        "cannot decrypt SecureString flags under {path}: {message} (the role needs kms:Decrypt on their KMS key)"
    )]
    Decryption {
        /// The path being read.
        path: String,
        /// SSM's message.
        message: String,
    },
    /// SSM answered with another error.
    #[error("SSM error {code} from {action} on {path}: {message}")]
    Service {
        /// The SSM action.
        action: &'static str,
        /// The path (or parameters) being read.
        path: String,
        /// The AWS error code, or the HTTP status.
        code: String,
        /// SSM's message.
        message: String,
        /// Whether retrying can help (5xx, internal errors).
        transient: bool,
    },
    /// SSM could not be reached, or the connection broke.
    #[error("cannot reach SSM for {path}: {message}")]
    Unreachable {
        /// The path being read.
        path: String,
        /// What failed.
        message: String,
    },
    /// No AWS credentials could be loaded, so nothing was sent (see [`unconfigured`]).
    #[error(
        "no AWS credentials to read {path}: {message} (on Lambda they come from the function's execution role; elsewhere give the task or instance a role, or set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    )]
    Credentials {
        /// The path, parameters or profile being read.
        path: String,
        /// What the SDK said.
        message: String,
        /// Whether retrying can help: only when the credentials provider (the instance or
        /// container endpoint) timed out.
        transient: bool,
    },
    /// No AWS region is configured, so nothing was sent (see [`unconfigured`]).
    #[error(
        "no AWS region to read {path}: {message} (set AWS_REGION, or a profile's region; Lambda sets AWS_REGION for every function)"
    )]
    Region {
        /// The path, parameters or profile being read.
        path: String,
        /// What the SDK said.
        message: String,
    },
    /// An answer without a `Parameters` array: real SSM always sends one, so this is a
    /// truncated or mangled answer, never "no parameters".
    #[error(
        "SSM answered GetParametersByPath on {path} without a Parameters array: a malformed answer, not taken as \"no parameters\""
    )]
    Malformed {
        /// The path being read.
        path: String,
    },
    /// The listing left out flags that SSM still has when asked for them by name: a partial
    /// answer, never taken as the whole truth.
    #[error(
        "SSM's listing left out {vanished} flag(s) that GetParameters still finds (e.g. {example}): an incomplete answer; keeping the last good flags"
    )]
    Incomplete {
        /// Flags the listing left out.
        vanished: usize,
        /// One parameter the listing left out that still exists.
        example: String,
    },
    /// The listing handed out the same `NextToken` twice: followed, it would never end.
    #[error(
        "SSM's listing of {path} repeated its NextToken after {pages} page(s): a listing that never ends, not taken as complete; keeping the last good flags"
    )]
    RepeatedToken {
        /// The path being read.
        path: String,
        /// Pages read when the token came back.
        pages: usize,
    },
    /// The listing listed one parameter twice: it is going round in circles.
    #[error(
        "SSM's listing of {path} listed {name} twice: a listing going round in circles, not taken as complete; keeping the last good flags"
    )]
    RepeatedName {
        /// The path being read.
        path: String,
        /// The parameter listed twice.
        name: String,
    },
    /// The listing went past `SSM_FLAGS_MAX_PARAMETERS` parameters.
    #[error(
        "SSM's listing of {path} went past {limit} parameters (SSM_FLAGS_MAX_PARAMETERS): not taken as complete; keeping the last good flags (raise SSM_FLAGS_MAX_PARAMETERS, at most 100000, if that many flags are meant)"
    )]
    TooManyParameters {
        /// The path being read.
        path: String,
        /// `SSM_FLAGS_MAX_PARAMETERS`.
        limit: usize,
    },
    /// The listing went past `SSM_FLAGS_MAX_PARAMETERS` pages without ending (pages may be short
    /// or empty, but not that many).
    #[error(
        "SSM's listing of {path} went past {limit} pages without ending (SSM_FLAGS_MAX_PARAMETERS): not taken as complete; keeping the last good flags"
    )]
    TooManyPages {
        /// The path being read.
        path: String,
        /// `SSM_FLAGS_MAX_PARAMETERS`.
        limit: usize,
    },
    /// A `GetParameters` answer without its `Parameters` or `InvalidParameters` array: real SSM
    /// always sends both, so this answer confirms nothing, least of all a deletion.
    #[error(
        "SSM answered GetParameters ({asked} name(s) from {first}) without {missing}: a malformed answer, which confirms no deletion; keeping the last good flags"
    )]
    MalformedCheck {
        /// The first name asked for.
        first: String,
        /// How many names were asked for.
        asked: usize,
        /// What the answer lacked.
        missing: &'static str,
    },
    /// A `GetParameters` answer that neither returned a name asked for nor listed it in
    /// `InvalidParameters`: its deletion is not confirmed.
    #[error(
        "SSM's GetParameters answer neither returned {name} nor listed it in InvalidParameters: its deletion is not confirmed; keeping the last good flags"
    )]
    Unconfirmed {
        /// The parameter.
        name: String,
    },
    /// The whole fetch did not finish within the refresh timeout.
    #[error("SSM did not answer within {0:?} (SSM_FLAGS_REFRESH_TIMEOUT_MS)")]
    Timeout(Duration),
    /// An AppConfig profile could not be read (its data API failed, or its document is not
    /// JSON flags).
    #[error("AppConfig profile {profile}: {code}: {message}")]
    AppConfig {
        /// `application/environment/profile`.
        profile: String,
        /// The AWS error code, or what failed.
        code: String,
        /// The message.
        message: String,
        /// Whether retrying can help.
        transient: bool,
    },
}

impl SourceError {
    /// Whether a later retry can succeed without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Throttled { .. }
            | Self::Unreachable { .. }
            | Self::Timeout(_)
            | Self::Malformed { .. }
            | Self::Incomplete { .. }
            | Self::RepeatedToken { .. }
            | Self::RepeatedName { .. }
            | Self::MalformedCheck { .. }
            | Self::Unconfirmed { .. } => true,
            // As many flags as that are either meant (raise the limit) or a fault that keeps
            // going: retrying alone does not fix the first.
            Self::TooManyParameters { .. } | Self::TooManyPages { .. } => false,
            Self::Service { transient, .. }
            | Self::AppConfig { transient, .. }
            | Self::Credentials { transient, .. } => *transient,
            Self::AccessDenied { .. } | Self::Decryption { .. } | Self::Region { .. } => false,
        }
    }
}

pub(crate) fn classify<E, R>(action: &'static str, path: &str, error: SdkError<E, R>) -> SourceError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let path = path.to_owned();
    match &error {
        SdkError::ServiceError(service) => {
            let err = service.err();
            let code = err.code().unwrap_or("Unknown").to_owned();
            let message = err.message().unwrap_or_default().to_owned();
            match code.as_str() {
                "ThrottlingException"
                | "TooManyRequestsException"
                | "ThrottledException"
                | "RequestLimitExceeded" => SourceError::Throttled {
                    action,
                    path,
                    message,
                },
                // SSM passes KMS's refusals on: a key the role may not use for one SecureString.
                // (What real SSM answers cannot be observed here: modelled on AWS's documented
                // AccessDeniedException wording for kms:Decrypt, and on InvalidKeyId / KMS*.)
                "AccessDeniedException" if kms_refused_decrypt(&message) => {
                    SourceError::Decryption { path, message }
                }
                "InvalidKeyId" => SourceError::Decryption { path, message },
                kms if kms.starts_with("KMS") || kms.starts_with("Kms") => {
                    SourceError::Decryption { path, message }
                }
                "AccessDeniedException"
                | "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "ExpiredTokenException" => SourceError::AccessDenied {
                    action,
                    path,
                    message,
                },
                _ => SourceError::Service {
                    action,
                    transient: code == "InternalServerError"
                        || code == "ServiceUnavailable"
                        || code == "Unknown",
                    path,
                    code,
                    message,
                },
            }
        }
        SdkError::TimeoutError(_) => SourceError::Unreachable {
            path,
            message: "request timed out".to_owned(),
        },
        _ => match unconfigured(&error) {
            Some(Unconfigured::Credentials { transient }) => SourceError::Credentials {
                path,
                message: error_chain(&error),
                transient,
            },
            Some(Unconfigured::Region) => SourceError::Region {
                path,
                message: error_chain(&error),
            },
            None => SourceError::Unreachable {
                path,
                message: error_chain(&error),
            },
        },
    }
}

/// Whether an `AccessDeniedException` is KMS refusing to decrypt (AWS's wording: `User: … is not
/// authorized to perform: kms:Decrypt on resource: arn:aws:kms:…`, or KMS's `The ciphertext
/// refers to a customer master key that does not exist … or you are not allowed to access`).
/// "kms" elsewhere in the message (a role named `kms-reader`) says nothing: that denial is the
/// role's, for SSM.
fn kms_refused_decrypt(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("not authorized to perform: kms:decrypt")
        || lower.contains("the ciphertext refers to a customer master key")
}

/// What a request that never left this process lacked (see [`unconfigured`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unconfigured {
    /// No credentials could be loaded.
    Credentials {
        /// Their provider (an instance or container endpoint) timed out: a retry may succeed.
        transient: bool,
    },
    /// No region: the SDK can neither resolve SSM's endpoint nor sign for it.
    Region,
}

/// Whether `error` is a missing credential or region rather than the network. The SDK reports
/// both as a failure to dispatch (or construct) the request, the same variant as a refused
/// connection; only the error's kind (not I/O, not a timeout) and its chain of causes (the
/// credentials provider's error, `missing signing region`, the endpoint rules' `Missing
/// Region`) tell them apart.
pub fn unconfigured<E, R>(error: &SdkError<E, R>) -> Option<Unconfigured>
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error {
        SdkError::DispatchFailure(failure) if failure.is_io() || failure.is_timeout() => {
            return None;
        }
        SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_) => {}
        _ => return None,
    }
    let chain = error_chain(error).to_ascii_lowercase();
    if chain.contains("missing signing region") || chain.contains("missing region") {
        Some(Unconfigured::Region)
    } else if chain.contains("credential") {
        Some(Unconfigured::Credentials {
            transient: chain.contains("timed out"),
        })
    } else {
        None
    }
}

/// The error and its sources, joined: the SDK's top-level message alone says little.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{LIST, Progress, Source, SsmSource};
    use aws_sdk_ssm::config::{BehaviorVersion, Credentials, Region};
    use aws_sdk_ssm::error::ErrorMetadata;
    use aws_sdk_ssm::operation::get_parameters_by_path::GetParametersByPathError;
    use flags::FlagPath;

    fn answered(code: &str, message: &str) -> SourceError {
        let metadata = ErrorMetadata::builder().code(code).message(message).build();
        let error = SdkError::service_error(GetParametersByPathError::generic(metadata), ());
        classify(LIST, "/app/flags", error)
    }

    #[test]
    fn only_a_kms_refusal_to_decrypt_is_a_decryption_failure() {
        // A role whose name says "kms", denied by SSM: the role's problem, for the whole path.
        let denied = answered(
            "AccessDeniedException",
            "User: arn:aws:sts::123456789012:assumed-role/kms-flags-reader/x is not authorized to perform: ssm:GetParametersByPath on resource: arn:aws:ssm:us-east-1:123456789012:parameter/app/flags",
        );
        assert!(
            matches!(denied, SourceError::AccessDenied { .. }),
            "{denied:?}"
        );
        for message in [
            "User: arn:aws:sts::1:assumed-role/r/x is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:us-east-1:1:key/1234abcd-12ab-34cd-56ef-1234567890ab because no identity-based policy allows the kms:Decrypt action",
            "User: arn:aws:sts::1:assumed-role/r/x is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:us-east-1:1:key/k with an explicit deny in a resource-based policy",
            "The ciphertext refers to a customer master key that does not exist, does not exist in this region, or you are not allowed to access.",
        ] {
            let error = answered("AccessDeniedException", message);
            assert!(
                matches!(error, SourceError::Decryption { .. }),
                "{message}: {error:?}"
            );
        }
        for code in [
            "InvalidKeyId",
            "KMSAccessDeniedException",
            "KMSDisabledException",
            "KmsThrottlingException",
        ] {
            let error = answered(code, "from KMS");
            assert!(
                matches!(error, SourceError::Decryption { .. }),
                "{code}: {error:?}"
            );
            assert!(!error.is_transient());
        }
    }

    /// What the real SDK answers when a client cannot sign: `credentials`, `region` and
    /// `endpoint` as the environment might leave them (only a closed loopback port is ever dialled).
    async fn listing_with(credentials: bool, region: bool, endpoint: Option<&str>) -> SourceError {
        let mut config = aws_sdk_ssm::Config::builder().behavior_version(BehaviorVersion::latest());
        if credentials {
            config = config.credentials_provider(Credentials::new("a", "b", None, None, "test"));
        } else {
            // A profile nobody has: the SDK's own provider fails as it does with no
            // credentials anywhere.
            config = config.credentials_provider(
                aws_config::profile::ProfileFileCredentialsProvider::builder()
                    .profile_name("ssm-flags-test-no-such-profile")
                    .build(),
            );
        }
        if region {
            config = config.region(Region::new("us-east-1"));
        }
        if let Some(url) = endpoint {
            config = config.endpoint_url(url);
        }
        let client = aws_sdk_ssm::Client::from_conf(config.build());
        let source = SsmSource::new(client, vec![FlagPath::parse("/app/flags").expect("path")]);
        source
            .fetch_into(&mut Progress::default())
            .await
            .expect_err("cannot succeed")
    }

    /// A loopback port nothing listens on.
    fn closed_port() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        format!("http://127.0.0.1:{port}")
    }

    #[tokio::test]
    async fn missing_credentials_and_region_are_not_the_network() {
        let endpoint = closed_port();
        let error = listing_with(false, true, Some(&endpoint)).await;
        assert!(
            matches!(
                error,
                SourceError::Credentials {
                    transient: false,
                    ..
                }
            ),
            "{error:?}"
        );
        let text = error.to_string();
        assert!(
            text.starts_with("no AWS credentials to read /app/flags")
                && text.contains("AWS_ACCESS_KEY_ID")
                && !text.contains("cannot reach"),
            "{text}"
        );
        assert!(!error.is_transient());

        // Without a region: with an endpoint the signer lacks it, without one the endpoint rules.
        for endpoint in [Some(endpoint.as_str()), None] {
            let error = listing_with(true, false, endpoint).await;
            assert!(
                matches!(error, SourceError::Region { .. }),
                "{endpoint:?}: {error:?}"
            );
            assert!(error.to_string().contains("set AWS_REGION"), "{error}");
            assert!(!error.is_transient());
        }

        // A refused connection is still the network, and worth retrying.
        let error = listing_with(true, true, Some(&endpoint)).await;
        assert!(
            matches!(error, SourceError::Unreachable { .. }),
            "{error:?}"
        );
        assert!(error.is_transient());
    }

    #[test]
    fn transient_errors_are_told_apart() {
        let path = "/p".to_owned();
        assert!(SourceError::Timeout(Duration::from_secs(2)).is_transient());
        assert!(
            SourceError::Throttled {
                action: LIST,
                path: path.clone(),
                message: String::new()
            }
            .is_transient()
        );
        assert!(
            !SourceError::AccessDenied {
                action: LIST,
                path: path.clone(),
                message: String::new()
            }
            .is_transient()
        );
        assert!(
            !SourceError::Service {
                action: LIST,
                path,
                code: "ValidationException".into(),
                message: String::new(),
                transient: false
            }
            .is_transient()
        );
    }
}
