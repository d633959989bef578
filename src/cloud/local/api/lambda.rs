//! Lambda: a stack's functions, their code and configuration, `Invoke`.
//!
//! Not answered yet: every request is `UnknownOperationException`.

use super::{ApiContext, ApiError, ApiRequest, ApiResult, Protocol, Service};

/// The `lambda` service.
pub struct Lambda;

#[async_trait::async_trait]
impl Service for Lambda {
    fn signing_name(&self) -> &'static str {
        "lambda"
    }

    fn protocol(&self) -> Protocol {
        Protocol::RestJson
    }

    fn operations(&self) -> &'static [&'static str] {
        &[]
    }

    fn operation(&self, request: &ApiRequest) -> Result<&'static str, ApiError> {
        Err(ApiError::unknown_operation(
            "lambda",
            &format!("{} {}", request.method, request.path),
        ))
    }

    async fn call(
        &self,
        _ctx: &ApiContext,
        operation: &'static str,
        _request: ApiRequest,
    ) -> ApiResult {
        Err(ApiError::unknown_operation("lambda", operation))
    }
}
