//! AWS IoT's control plane (registry, CAs, JITP templates, policies, things, topic rules, DescribeEndpoint).
//!
//! Not answered yet: every request is `UnknownOperationException`.

use super::{ApiContext, ApiError, ApiRequest, ApiResult, Protocol, Service};

/// The `iot` service.
pub struct Iot;

#[async_trait::async_trait]
impl Service for Iot {
    fn signing_name(&self) -> &'static str {
        "iot"
    }

    fn protocol(&self) -> Protocol {
        Protocol::RestJson
    }

    fn operations(&self) -> &'static [&'static str] {
        &[]
    }

    fn operation(&self, request: &ApiRequest) -> Result<&'static str, ApiError> {
        Err(ApiError::unknown_operation(
            "iot",
            &format!("{} {}", request.method, request.path),
        ))
    }

    async fn call(
        &self,
        _ctx: &ApiContext,
        operation: &'static str,
        _request: ApiRequest,
    ) -> ApiResult {
        Err(ApiError::unknown_operation("iot", operation))
    }
}
