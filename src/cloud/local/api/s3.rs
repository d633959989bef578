//! S3 buckets and objects, as `aws s3` and `cloudformation deploy` use them.
//!
//! Not answered yet: every request is `UnknownOperationException`.

use super::{ApiContext, ApiError, ApiRequest, ApiResult, Protocol, Service};

/// The `s3` service.
pub struct S3;

#[async_trait::async_trait]
impl Service for S3 {
    fn signing_name(&self) -> &'static str {
        "s3"
    }

    fn protocol(&self) -> Protocol {
        Protocol::RestXml
    }

    fn operations(&self) -> &'static [&'static str] {
        &[]
    }

    fn operation(&self, request: &ApiRequest) -> Result<&'static str, ApiError> {
        Err(ApiError::unknown_operation(
            "s3",
            &format!("{} {}", request.method, request.path),
        ))
    }

    async fn call(
        &self,
        _ctx: &ApiContext,
        operation: &'static str,
        _request: ApiRequest,
    ) -> ApiResult {
        Err(ApiError::unknown_operation("s3", operation))
    }
}
