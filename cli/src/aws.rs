//! The AWS clients, configured as the AWS CLI is: `--profile` (else `AWS_PROFILE`; SSO and
//! `credential_process` profiles included), `--region` (else `AWS_REGION`, the profile's region),
//! `--endpoint-url` (else `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_SSM`, …).

use std::time::Duration;

use aws_config::{BehaviorVersion, Region};

/// Where and as whom to call AWS.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// A named profile.
    pub profile: Option<String>,
    /// The region.
    pub region: Option<String>,
    /// An endpoint for every service (a local stand-in).
    pub endpoint_url: Option<String>,
}

/// The clients every command uses, built from one configuration.
#[derive(Debug, Clone)]
pub struct Aws {
    /// Parameter Store.
    pub ssm: aws_sdk_ssm::Client,
    /// CloudWatch (alarms guard a ramp).
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// AppConfig's data API (profiles as a source).
    pub appconfig: aws_sdk_appconfigdata::Client,
}

impl Connection {
    /// Loads the configuration and builds the clients. Nothing is called yet: a missing
    /// credential or region shows at the first call, named by it.
    pub async fn connect(&self) -> Aws {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(20))
                .build(),
        );
        if let Some(profile) = &self.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let config = loader.load().await;
        Aws {
            ssm: aws_sdk_ssm::Client::new(&config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&config),
            appconfig: aws_sdk_appconfigdata::Client::new(&config),
        }
    }
}
