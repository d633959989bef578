//! CloudFormation on the stack engine: stacks, events, resources, change sets.
//!
//! Not answered yet: every request is `UnknownOperationException`.

use super::{ApiContext, ApiError, ApiRequest, ApiResult, Protocol, Service};

/// The `cloudformation` service.
pub struct CloudFormation;

#[async_trait::async_trait]
impl Service for CloudFormation {
    fn signing_name(&self) -> &'static str {
        "cloudformation"
    }

    fn protocol(&self) -> Protocol {
        Protocol::AwsQuery
    }

    fn operations(&self) -> &'static [&'static str] {
        &[]
    }

    fn operation(&self, request: &ApiRequest) -> Result<&'static str, ApiError> {
        Err(ApiError::unknown_operation(
            "cloudformation",
            &format!("{} {}", request.method, request.path),
        ))
    }

    async fn call(
        &self,
        _ctx: &ApiContext,
        operation: &'static str,
        _request: ApiRequest,
    ) -> ApiResult {
        Err(ApiError::unknown_operation("cloudformation", operation))
    }
}
