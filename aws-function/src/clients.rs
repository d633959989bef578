//! The SDK configuration, loaded once from aws-config's standard chain, and
//! the clients the rotation function calls.
//!
//! Credentials and region come from the usual places (environment, profile,
//! SSO, instance role, the Lambda's execution role); an endpoint URL points
//! every client at an emulator. Retries use the SDK's *adaptive* mode:
//! exponential backoff with jitter plus a client-side rate limiter that slows
//! down when AWS throttles — the IoT registry APIs allow about 10 TPS.

use crate::errors::{AwsError, AwsResult};
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// How many times one call is tried before a throttling error is reported.
const MAX_ATTEMPTS: u32 = 8;

/// Loads the standard chain with adaptive retries; `region`, `endpoint_url`
/// and static `credentials` override what the chain finds.
pub async fn load_config(
    region: Option<&str>,
    endpoint_url: Option<&str>,
    credentials: Option<aws_credential_types::Credentials>,
) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::adaptive().with_max_attempts(MAX_ATTEMPTS));
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_string()));
    }
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url.to_string());
    }
    if let Some(credentials) = credentials {
        loader = loader.credentials_provider(credentials);
    }
    loader.load().await
}

/// The clients the rotation function uses — IoT, SSM, DynamoDB, and the
/// iot-data plane on demand — sharing one configuration.
#[derive(Clone, Debug)]
pub struct FunctionClients {
    pub config: SdkConfig,
    pub iot: aws_sdk_iot::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// The region every client talks to.
    pub region: String,
}

impl FunctionClients {
    /// Clients over an already loaded configuration. Fails, with what to
    /// do, when no region is configured.
    pub fn from_config(config: SdkConfig) -> AwsResult<FunctionClients> {
        let region = config
            .region()
            .map(|r| r.to_string())
            .ok_or(AwsError::NoRegion)?;
        Ok(FunctionClients {
            iot: aws_sdk_iot::Client::new(&config),
            ssm: aws_sdk_ssm::Client::new(&config),
            dynamodb: aws_sdk_dynamodb::Client::new(&config),
            region,
            config,
        })
    }

    /// The IoT data plane (`iot-data:Publish`). On AWS it must talk to the
    /// account's `iot:Data-ATS` endpoint; an emulator serves it at its URL.
    pub fn iot_data(&self, data_ats_host: Option<&str>) -> aws_sdk_iotdataplane::Client {
        let mut builder = aws_sdk_iotdataplane::config::Builder::from(&self.config);
        if self.config.endpoint_url().is_none() {
            if let Some(host) = data_ats_host {
                builder = builder.endpoint_url(format!("https://{host}"));
            }
        }
        aws_sdk_iotdataplane::Client::from_conf(builder.build())
    }
}
