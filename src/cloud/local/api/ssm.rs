//! SSM Parameter Store: the CA keys as SecureStrings, sealed by the local KMS key.
//!
//! Not answered yet: every request is `UnknownOperationException`.

use super::{ApiContext, ApiError, ApiRequest, ApiResult, Protocol, Service};

/// The `ssm` service.
pub struct Ssm;

#[async_trait::async_trait]
impl Service for Ssm {
    fn signing_name(&self) -> &'static str {
        "ssm"
    }

    fn protocol(&self) -> Protocol {
        Protocol::AwsJson11
    }

    fn operations(&self) -> &'static [&'static str] {
        &[]
    }

    fn operation(&self, request: &ApiRequest) -> Result<&'static str, ApiError> {
        Err(ApiError::unknown_operation(
            "ssm",
            &format!("{} {}", request.method, request.path),
        ))
    }

    async fn call(
        &self,
        _ctx: &ApiContext,
        operation: &'static str,
        _request: ApiRequest,
    ) -> ApiResult {
        Err(ApiError::unknown_operation("ssm", operation))
    }
}
