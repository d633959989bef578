//! STS: `GetCallerIdentity` with the local account id.
//!
//! Not answered yet: every request is `UnknownOperationException`.

use super::{ApiContext, ApiError, ApiRequest, ApiResult, Protocol, Service};

/// The `sts` service.
pub struct Sts;

#[async_trait::async_trait]
impl Service for Sts {
    fn signing_name(&self) -> &'static str {
        "sts"
    }

    fn protocol(&self) -> Protocol {
        Protocol::AwsQuery
    }

    fn operations(&self) -> &'static [&'static str] {
        &[]
    }

    fn operation(&self, request: &ApiRequest) -> Result<&'static str, ApiError> {
        Err(ApiError::unknown_operation(
            "sts",
            &format!("{} {}", request.method, request.path),
        ))
    }

    async fn call(
        &self,
        _ctx: &ApiContext,
        operation: &'static str,
        _request: ApiRequest,
    ) -> ApiResult {
        Err(ApiError::unknown_operation("sts", operation))
    }
}
