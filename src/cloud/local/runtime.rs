//! Starting the whole local cloud in-process: what `serve`, `fleet`,
//! `device` and the TUI run before devices can connect.
//!
//! 1. the endpoint CA (created on first run) and a fresh server certificate,
//!    its CA written to `<data-dir>/endpoint-ca.pem` for devices to trust;
//! 2. the built-in functions (the rotation function, configured from the
//!    fleet definition), and functions running their own code from the
//!    data dir (`lambda_runtime`);
//! 3. the MQTT endpoint, with the stack's topic rules loaded, attached to
//!    the control plane (rules reload on deploy/teardown, disconnect on
//!    deactivation);
//! 4. JITP registered events cut short by the last stop, redelivered and
//!    handled before devices are told where the endpoint is;
//! 5. the AWS API (when asked: `serve` and the TUI, `--api-addr`), on the
//!    same cloud, publishing through the endpoint, with the data dir's
//!    access key — `<data-dir>/api.addr` says where;
//! 6. `<data-dir>/endpoint.addr`, so devices in other processes find it.

use super::api::server::{self as api_server, ApiConfig, ApiHandle, ApiServerError};
use super::api::{credentials, ApiContext};
use super::endpoint::{self, EndpointConfig, EndpointError, EndpointHandle};
use super::lambda_runtime::LocalLambda;
use super::{endpoint_ca, functions, LocalCloud};
use crate::datadir::EndpointAddrFile;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the local cloud could not start. Messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("the local cloud is opened read-only (another process owns the data dir); stop it or use it instead")]
    ReadOnly,
    #[error("endpoint CA: {0}")]
    EndpointCa(String),
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error("cannot write the endpoint address file in the data dir: {0}")]
    AddrFile(String),
    #[error(transparent)]
    Api(#[from] ApiServerError),
    #[error("the AWS API's access key: {0}")]
    ApiCredentials(#[from] credentials::CredentialsError),
}

/// How long the start waits for redelivered registered events to be
/// handled; a slower one stays in the outbox for the next start.
const REDELIVERY_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The local cloud, running. Dropping it without [`RunningCloud::shutdown`]
/// stops accepting only when the runtime ends; prefer `shutdown`.
pub struct RunningCloud {
    endpoint: EndpointHandle,
    /// Functions running their own code: their warm processes stop with the cloud.
    lambda: LocalLambda,
    cloud: LocalCloud,
    endpoint_ca_path: PathBuf,
    /// The AWS API, when started.
    api: Option<ApiHandle>,
    /// Removes `api.addr` when dropped.
    api_addr_file: Option<EndpointAddrFile>,
    /// Removes `endpoint.addr` when dropped: no address of a dead endpoint is left behind.
    _addr_file: EndpointAddrFile,
}

impl RunningCloud {
    /// Where the endpoint listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.endpoint.local_addr()
    }

    /// Where the AWS API listens, when it runs.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api.as_ref().map(ApiHandle::local_addr)
    }

    /// The endpoint (publisher, rule reload, stats).
    pub fn endpoint(&self) -> &EndpointHandle {
        &self.endpoint
    }

    /// The PEM file devices trust for the endpoint (`<data-dir>/endpoint-ca.pem`).
    pub fn endpoint_ca_path(&self) -> &std::path::Path {
        &self.endpoint_ca_path
    }

    /// Stops the AWS API (each connection's request finishes first), then
    /// closes every session and stops the endpoint.
    pub async fn shutdown(mut self) {
        if let Some(api) = self.api.take() {
            api.shutdown().await;
        }
        drop(self.api_addr_file.take());
        self.cloud.set_local_endpoint(None);
        self.cloud.attach_endpoint(None);
        self.endpoint.shutdown().await;
        self.lambda.shutdown().await;
    }
}

/// Starts the local cloud of `cloud` with its endpoint on `addr`
/// (`host:port`; port 0 picks a free one, see [`RunningCloud::local_addr`]).
pub async fn start(cloud: &LocalCloud, addr: &str) -> Result<RunningCloud, RuntimeError> {
    start_with(
        cloud,
        EndpointConfig {
            addr: addr.to_string(),
            ..EndpointConfig::default()
        },
    )
    .await
}

/// [`start`] with every endpoint setting.
pub async fn start_with(
    cloud: &LocalCloud,
    config: EndpointConfig,
) -> Result<RunningCloud, RuntimeError> {
    start_serving(cloud, config, None).await
}

/// Starts the local cloud with its endpoint and, when `api` is given, the
/// AWS API beside it (what `serve` and the TUI run).
pub async fn start_serving(
    cloud: &LocalCloud,
    config: EndpointConfig,
    api: Option<ApiConfig>,
) -> Result<RunningCloud, RuntimeError> {
    if !cloud.is_writable() {
        return Err(RuntimeError::ReadOnly);
    }
    let store = cloud.store().clone();
    let ca = endpoint_ca::ensure(&store).map_err(|e| RuntimeError::EndpointCa(e.to_string()))?;
    let server = ca
        .server_identity()
        .map_err(|e| RuntimeError::EndpointCa(e.to_string()))?;
    let endpoint_ca_path = cloud.data_dir().endpoint_ca_path();
    ca.write_pem(&endpoint_ca_path)
        .map_err(|e| RuntimeError::EndpointCa(e.to_string()))?;

    let rotation = functions::rotation_config(cloud.fleet());
    // A deployed function with code in the data dir runs it (lambda_runtime);
    // the others run the built-in their handler names.
    let lambda = LocalLambda::new(
        cloud.data_dir().root(),
        cloud.bus().clone(),
        Some(store.clone()),
    );
    let functions = functions::builtin_functions(store.clone(), cloud.bus().clone(), rotation)
        .with_code(lambda.clone());
    let endpoint = endpoint::start(
        config,
        store,
        cloud.bus().clone(),
        functions.clone(),
        &server.cert_pem,
        &server.key_pem,
    )
    .await?;
    cloud.attach_endpoint(Some(endpoint.control()));
    // At-least-once: a registered event whose rule_jitp invocation the last
    // stop cut short is handled now, before devices retry their CSRs.
    let redelivered = match endpoint.redeliver_registered_events(REDELIVERY_WAIT).await {
        Ok(n) => n,
        Err(e) => {
            cloud.attach_endpoint(None);
            endpoint.shutdown().await;
            lambda.shutdown().await;
            return Err(e.into());
        }
    };
    if redelivered > 0 {
        tracing::info!(
            redelivered,
            "JITP registered events redelivered after a stop"
        );
    }
    let local_addr = endpoint.local_addr();
    let (api, api_addr_file) = match api {
        None => (None, None),
        Some(api_config) => match start_api(cloud, api_config, &endpoint, functions).await {
            Ok((handle, file)) => (Some(handle), Some(file)),
            Err(e) => {
                cloud.attach_endpoint(None);
                endpoint.shutdown().await;
                return Err(e);
            }
        },
    };
    let addr_file = cloud
        .data_dir()
        .write_endpoint_addr(&local_addr.to_string())
        .map_err(|e| RuntimeError::AddrFile(e.to_string()))?;
    cloud.set_local_endpoint(Some(local_addr));
    Ok(RunningCloud {
        endpoint,
        lambda,
        cloud: cloud.clone(),
        endpoint_ca_path,
        api,
        api_addr_file,
        _addr_file: addr_file,
    })
}

/// The AWS API on `config.addr`, over `cloud` and the running `endpoint`;
/// its address written to `<data-dir>/api.addr`.
async fn start_api(
    cloud: &LocalCloud,
    config: ApiConfig,
    endpoint: &EndpointHandle,
    functions: functions::FunctionRegistry,
) -> Result<(ApiHandle, EndpointAddrFile), RuntimeError> {
    let keys = credentials::load_or_create(cloud.data_dir())?;
    let ctx = ApiContext {
        cloud: cloud.clone(),
        publisher: Some(endpoint.publisher()),
        mqtt_addr: Some(endpoint.local_addr()),
        // Set by the server once bound.
        api_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        functions,
    };
    let api = api_server::start(config, ctx, keys).await?;
    match cloud
        .data_dir()
        .write_api_addr(&api.local_addr().to_string())
    {
        Ok(file) => Ok((api, file)),
        Err(e) => {
            api.shutdown().await;
            Err(RuntimeError::AddrFile(e.to_string()))
        }
    }
}
