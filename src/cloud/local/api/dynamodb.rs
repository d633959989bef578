//! DynamoDB: the device table (`CertRotationDevices`) and any other table.
//!
//! Not answered yet: every request is `UnknownOperationException`.

use super::{ApiContext, ApiError, ApiRequest, ApiResult, Protocol, Service};

/// The `dynamodb` service.
pub struct DynamoDb;

#[async_trait::async_trait]
impl Service for DynamoDb {
    fn signing_name(&self) -> &'static str {
        "dynamodb"
    }

    fn protocol(&self) -> Protocol {
        Protocol::AwsJson10
    }

    fn operations(&self) -> &'static [&'static str] {
        &[]
    }

    fn operation(&self, request: &ApiRequest) -> Result<&'static str, ApiError> {
        Err(ApiError::unknown_operation(
            "dynamodb",
            &format!("{} {}", request.method, request.path),
        ))
    }

    async fn call(
        &self,
        _ctx: &ApiContext,
        operation: &'static str,
        _request: ApiRequest,
    ) -> ApiResult {
        Err(ApiError::unknown_operation("dynamodb", operation))
    }
}
