//! The AWS clients, configured as the AWS CLI is: `--profile` (else `AWS_PROFILE`; SSO and
//! `credential_process` profiles included), `--region` (else `AWS_REGION`, the profile's region),
//! `--endpoint-url` (else `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_SSM`, …).

use std::time::Duration;

use aws_config::{BehaviorVersion, Region};

use crate::error::CtlError;

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

/// The clients every command uses, built from one configuration — loaded at the first call
/// that needs AWS, never by a command that does not (linting a file, diffing two): no
/// credential, region or instance metadata lookup happens for those.
#[derive(Debug)]
pub struct Aws {
    connection: Connection,
    clients: tokio::sync::OnceCell<Clients>,
}

/// The service clients.
#[derive(Debug, Clone)]
pub struct Clients {
    /// Parameter Store.
    pub ssm: aws_sdk_ssm::Client,
    /// CloudWatch (alarms guard a ramp).
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// AppConfig's data API (profiles as a source).
    pub appconfig: aws_sdk_appconfigdata::Client,
}

impl Aws {
    /// The clients of `connection`, not loaded yet.
    pub fn new(connection: Connection) -> Self {
        Self {
            connection,
            clients: tokio::sync::OnceCell::new(),
        }
    }

    /// The clients, loading the configuration on first use. No region (no `--region`,
    /// `AWS_REGION` or profile region) is one error naming them.
    pub async fn clients(&self) -> Result<&Clients, CtlError> {
        self.clients
            .get_or_try_init(|| self.connection.connect())
            .await
    }

    /// Parameter Store.
    pub async fn ssm(&self) -> Result<&aws_sdk_ssm::Client, CtlError> {
        Ok(&self.clients().await?.ssm)
    }

    /// CloudWatch.
    pub async fn cloudwatch(&self) -> Result<&aws_sdk_cloudwatch::Client, CtlError> {
        Ok(&self.clients().await?.cloudwatch)
    }

    /// AppConfig's data API.
    pub async fn appconfig(&self) -> Result<&aws_sdk_appconfigdata::Client, CtlError> {
        Ok(&self.clients().await?.appconfig)
    }
}

impl Connection {
    /// Loads the configuration and builds the clients. Nothing is called yet: a missing
    /// credential shows at the first call, named by it.
    async fn connect(&self) -> Result<Clients, CtlError> {
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
        if config.region().is_none() {
            return Err(CtlError::usage(
                "no AWS region: pass --region, or set AWS_REGION (or a region in the profile)",
            ));
        }
        Ok(Clients {
            ssm: aws_sdk_ssm::Client::new(&config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&config),
            appconfig: aws_sdk_appconfigdata::Client::new(&config),
        })
    }
}
