//! AWS IoT's data plane over HTTP: `Publish` to the MQTT endpoint's subscribers, rules run.
//!
//! Not answered yet: every request is `UnknownOperationException`.

use super::{ApiContext, ApiError, ApiRequest, ApiResult, Protocol, Service};

/// The `iotdata` service.
pub struct IotData;

#[async_trait::async_trait]
impl Service for IotData {
    fn signing_name(&self) -> &'static str {
        "iotdata"
    }

    fn protocol(&self) -> Protocol {
        Protocol::RestJson
    }

    fn operations(&self) -> &'static [&'static str] {
        &[]
    }

    fn operation(&self, request: &ApiRequest) -> Result<&'static str, ApiError> {
        Err(ApiError::unknown_operation(
            "iotdata",
            &format!("{} {}", request.method, request.path),
        ))
    }

    async fn call(
        &self,
        _ctx: &ApiContext,
        operation: &'static str,
        _request: ApiRequest,
    ) -> ApiResult {
        Err(ApiError::unknown_operation("iotdata", operation))
    }
}
