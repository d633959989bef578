//! The SDK clients of the AWS backend, built once from aws-config's standard
//! chain (`jitpilot_aws_function::clients::load_config`: adaptive retries).
//!
//! Credentials and region come from the usual places (environment, profile,
//! SSO, instance role); `--region` overrides the region and `--endpoint-url`
//! points every client at an emulator.

use super::errors::{api, AwsError, AwsResult};
use aws_config::SdkConfig;
use jitpilot_aws_function::clients::{load_config, FunctionClients};
use std::path::PathBuf;

/// What the AWS backend needs to know besides credentials.
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    /// `--region`; else the standard chain (AWS_REGION, profile).
    pub region: Option<String>,
    /// `--endpoint-url`: an emulator such as moto's server.
    pub endpoint_url: Option<String>,
    /// The data dir: factory credentials, the observer identity, the endpoint.
    pub data_dir: PathBuf,
    /// The rotation function's package: a `bootstrap.zip` or a `bootstrap`
    /// binary (zipped on deploy). `JITPILOT_LAMBDA_PACKAGE`.
    pub function_package: Option<PathBuf>,
    /// The S3 bucket for the function's code. `JITPILOT_CODE_BUCKET`;
    /// default `jitpilot-artifacts-<account>-<region>`.
    pub code_bucket: Option<String>,
    /// `--iot-endpoint HOST[:PORT]`: the MQTT data endpoint devices and the
    /// observer dial instead of DescribeEndpoint's `iot:Data-ATS` (a custom
    /// domain, or a local broker standing in for an emulator without one).
    pub iot_endpoint: Option<String>,
    /// `--iot-root-ca PATH` (`JITPILOT_IOT_ROOT_CA`): a CA certificate the
    /// MQTT endpoint's server certificate chains to, trusted beside Amazon's
    /// roots by devices and the observer — jitpilot's own local cloud
    /// (`jitpilot env` exports its `endpoint-ca.pem`), or a custom domain's CA.
    pub iot_root_ca: Option<PathBuf>,
    /// Static credentials instead of the standard chain's (tests, which
    /// must not change their process's environment while others run).
    pub credentials: Option<aws_credential_types::Credentials>,
}

impl AwsOptions {
    /// Options from the command line plus the environment variables above.
    pub fn new(data_dir: PathBuf, region: Option<String>, endpoint_url: Option<String>) -> Self {
        AwsOptions {
            region,
            endpoint_url,
            data_dir,
            function_package: std::env::var_os("JITPILOT_LAMBDA_PACKAGE").map(PathBuf::from),
            code_bucket: std::env::var("JITPILOT_CODE_BUCKET")
                .ok()
                .filter(|b| !b.is_empty()),
            iot_endpoint: None,
            iot_root_ca: None,
            credentials: None,
        }
    }

    /// True when `--endpoint-url` points at this machine: an emulator, never
    /// AWS itself. Deploy then creates the topic rules through the IoT API,
    /// because emulators do not implement `AWS::IoT::TopicRule` in stacks.
    pub fn is_emulator(&self) -> bool {
        self.endpoint_url.as_deref().is_some_and(is_loopback_url)
    }
}

/// True for `http(s)://127.x.x.x`, `localhost` or `[::1]` URLs.
pub fn is_loopback_url(url: &str) -> bool {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let host = rest.split('/').next().unwrap_or_default();
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host.split(':').next().unwrap_or_default()
    };
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Every client the walkthrough uses, sharing one configuration: the
/// rotation function's ([`FunctionClients`]: IoT, SSM, DynamoDB, iot-data,
/// reachable as `clients.iot` … through `Deref`) plus CloudFormation, S3
/// and STS for deploy and init.
#[derive(Clone, Debug)]
pub struct Clients {
    /// The clients the rotation function uses, with the configuration and region.
    pub function: FunctionClients,
    pub cloudformation: aws_sdk_cloudformation::Client,
    pub s3: aws_sdk_s3::Client,
    pub sts: aws_sdk_sts::Client,
}

impl std::ops::Deref for Clients {
    type Target = FunctionClients;

    fn deref(&self) -> &FunctionClients {
        &self.function
    }
}

impl AsRef<FunctionClients> for Clients {
    fn as_ref(&self) -> &FunctionClients {
        &self.function
    }
}

impl Clients {
    /// Loads the standard chain with `options` applied. Fails early, with
    /// what to do, when no region is configured.
    pub async fn load(options: &AwsOptions) -> AwsResult<Clients> {
        let config = load_config(
            options.region.as_deref(),
            options.endpoint_url.as_deref(),
            options.credentials.clone(),
        )
        .await;
        Clients::from_config(config)
    }

    /// Clients over an already loaded configuration.
    pub fn from_config(config: SdkConfig) -> AwsResult<Clients> {
        // Emulators serve buckets by path, not by virtual host name.
        let s3_config = aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(config.endpoint_url().is_some())
            .build();
        Ok(Clients {
            cloudformation: aws_sdk_cloudformation::Client::new(&config),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            sts: aws_sdk_sts::Client::new(&config),
            function: FunctionClients::from_config(config)?,
        })
    }

    /// The account id of the caller (`sts:GetCallerIdentity`); also the
    /// first call, so missing or wrong credentials are reported here.
    pub async fn account_id(&self) -> AwsResult<String> {
        let out = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| api("GetCallerIdentity", "sts:GetCallerIdentity", e))?;
        out.account
            .ok_or_else(|| AwsError::Other("GetCallerIdentity returned no account".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_are_emulators() {
        assert!(is_loopback_url("http://127.0.0.1:5000"));
        assert!(is_loopback_url("http://localhost:4566/"));
        assert!(is_loopback_url("http://[::1]:5000"));
        assert!(!is_loopback_url("https://iot.us-east-1.amazonaws.com"));
        assert!(!is_loopback_url("http://10.0.0.5:5000"));
    }
}
