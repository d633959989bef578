//! The rotation function as an AWS Lambda (`provided.al2023`).
//!
//! The IoT rules invoke it with their SQL output,
//! `{"data": …, "topic": …, "client_id": …, "cert_id": …}` — the same input
//! the local rules engine hands the built-in function. [`RotationLambda`]
//! parses that event (also when a test console sends it JSON-encoded as a
//! string), runs the cloud-agnostic [`RotationFunction`] over the AWS
//! bindings of [`crate::function`] on a blocking thread, and returns the
//! invocation's JSON. The `bootstrap` binary (`lambda/`) is `lambda_runtime`
//! around [`RotationLambda::handle`].

use crate::clients::{load_config, FunctionClients};
use crate::errors::{AwsError, AwsResult};
use crate::function::{AwsDeviceTable, AwsParameterStore, AwsPublisher, AwsRegistry, LogAudit};
use jitpilot_core::fleet::{rotation_config, Fleet};
use jitpilot_core::rotation::{
    Backends, Publisher, RotationConfig, RotationError, RotationFunction,
};
use jitpilot_core::vocabulary::{DEVICE_TABLE, DEVICE_TABLE_ENV, IOT_DATA_ENDPOINT_ENV};
use serde_json::Value;
use std::sync::Arc;

/// Why an invocation failed (Lambda reports it as a function error; for a
/// backend failure the device is told `backend_error` and retries).
#[derive(Debug, thiserror::Error)]
pub enum LambdaError {
    #[error("the event is not the rule's SQL output (a JSON object with data, topic, client_id, cert_id): {0}")]
    BadEvent(String),
    #[error(transparent)]
    Rotation(#[from] RotationError),
    #[error("the rotation function stopped unexpectedly: {0}")]
    Join(String),
}

/// The rotation function with what it needs to answer devices.
#[derive(Clone)]
pub struct RotationLambda {
    function: Arc<RotationFunction>,
    publisher: Arc<dyn Publisher>,
}

impl RotationLambda {
    /// A Lambda over any backends (tests use this with the SDK bindings
    /// against an emulator).
    pub fn new(function: Arc<RotationFunction>, publisher: Arc<dyn Publisher>) -> Self {
        RotationLambda {
            function,
            publisher,
        }
    }

    /// The function over the AWS APIs: `table` is the device table's name,
    /// `data_ats_host` the endpoint `iot-data:Publish` goes to.
    pub fn over_aws(
        clients: &FunctionClients,
        table: &str,
        data_ats_host: Option<&str>,
        config: RotationConfig,
    ) -> Self {
        let handle = tokio::runtime::Handle::current();
        let publisher = Arc::new(AwsPublisher::new(clients.iot_data(data_ats_host), handle));
        RotationLambda::over_aws_answering_with(clients, table, config, publisher)
    }

    /// The function over the AWS APIs, answering devices through
    /// `publisher` instead of `iot-data:Publish`: how a test that plays IoT's
    /// rules engine on another broker gets the answers onto that broker.
    pub fn over_aws_answering_with(
        clients: &FunctionClients,
        table: &str,
        config: RotationConfig,
        publisher: Arc<dyn Publisher>,
    ) -> Self {
        let handle = tokio::runtime::Handle::current();
        let backends = Backends {
            registry: Arc::new(AwsRegistry::new(clients.iot.clone(), handle.clone())),
            table: Arc::new(AwsDeviceTable::new(
                clients.dynamodb.clone(),
                table.to_string(),
                handle.clone(),
            )),
            params: Arc::new(AwsParameterStore::new(clients.ssm.clone(), handle.clone())),
            audit: Arc::new(LogAudit),
        };
        RotationLambda::new(Arc::new(RotationFunction::new(backends, config)), publisher)
    }

    /// Inside Lambda: clients from the execution role, the table from the
    /// stack's `DEVICE_TABLE`, the data endpoint from `IOT_DATA_ENDPOINT` or
    /// `DescribeEndpoint`, issuing certs per the built-in fleet definition
    /// and the stack's `CSR_KEY_REUSE`.
    pub async fn from_env() -> AwsResult<Self> {
        let endpoint_url = std::env::var("AWS_ENDPOINT_URL").ok();
        let config = load_config(None, endpoint_url.as_deref(), None).await;
        let clients = FunctionClients::from_config(config)?;
        let table = std::env::var(DEVICE_TABLE_ENV).unwrap_or_else(|_| DEVICE_TABLE.to_string());
        let host = match std::env::var(IOT_DATA_ENDPOINT_ENV) {
            Ok(host) => Some(host),
            Err(_) => clients
                .iot
                .describe_endpoint()
                .endpoint_type("iot:Data-ATS")
                .send()
                .await
                .ok()
                .and_then(|out| out.endpoint_address),
        };
        // The stack's settings come in the function's environment
        // (`CSR_KEY_REUSE` from the `CsrKeyReuse` parameter).
        let config = Fleet::builtin()
            .map(|fleet| rotation_config(&fleet))
            .unwrap_or_default()
            .with_environment(|name| std::env::var(name).ok())
            .map_err(AwsError::Other)?;
        Ok(RotationLambda::over_aws(
            &clients,
            &table,
            host.as_deref(),
            config,
        ))
    }

    /// Handles one invocation: the rule's SQL output in, the function's
    /// answer (outcome, subject, topic) out.
    pub async fn handle(&self, event: Value) -> Result<Value, LambdaError> {
        let event = normalize_event(event)?;
        let function = self.function.clone();
        let publisher = self.publisher.clone();
        let invocation =
            tokio::task::spawn_blocking(move || function.handle(&event, publisher.as_ref()))
                .await
                .map_err(|e| LambdaError::Join(e.to_string()))??;
        Ok(invocation.to_json())
    }
}

/// The rule's output as an object: a JSON string holding one is decoded
/// (the Lambda console's test events are often pasted that way).
pub fn normalize_event(event: Value) -> Result<Value, LambdaError> {
    match event {
        Value::Object(_) => Ok(event),
        Value::String(text) => match serde_json::from_str::<Value>(&text) {
            Ok(inner @ Value::Object(_)) => Ok(inner),
            _ => Err(LambdaError::BadEvent(format!(
                "a string that is not a JSON object: {}",
                text.chars().take(80).collect::<String>()
            ))),
        },
        other => Err(LambdaError::BadEvent(format!("got {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_pass_and_json_strings_are_decoded() {
        let event = json!({"data": {"csr": "x"}, "topic": "/cert-rotation/create-man-cert/S/rqst", "client_id": "S", "cert_id": "c"});
        assert_eq!(normalize_event(event.clone()).expect("object"), event);
        let wrapped = Value::from(event.to_string());
        assert_eq!(normalize_event(wrapped).expect("string"), event);
    }

    #[test]
    fn other_shapes_are_refused_with_what_is_expected() {
        for bad in [
            json!(null),
            json!([1, 2]),
            json!(5),
            Value::from("not json"),
        ] {
            let err = normalize_event(bad).expect_err("refused");
            assert!(
                err.to_string().contains("data, topic, client_id, cert_id"),
                "{err}"
            );
        }
    }
}
