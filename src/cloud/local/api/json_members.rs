//! The awsJson services (DynamoDB, SSM): a call's body read as a JSON
//! object and its operation run on the blocking pool, and the members of
//! that body read the way those services answer a member of the wrong
//! type: a 400 `SerializationException` naming the member, before any work
//! is done.

use super::{ApiContext, ApiError, ApiRequest, ApiResponse, ApiResult};
use serde_json::Value;

/// Runs `dispatch` for `operation` on the request's JSON body, on the
/// blocking pool (the store is SQLite), and answers with `content_type`.
pub async fn call_blocking(
    ctx: &ApiContext,
    operation: &'static str,
    request: ApiRequest,
    content_type: &'static str,
    dispatch: fn(&ApiContext, &str, &Value) -> Result<Value, ApiError>,
) -> ApiResult {
    let body: Value = request.json()?;
    if !body.is_object() {
        return Err(serialization("the request body must be a JSON object"));
    }
    let ctx = ctx.clone();
    tokio::task::spawn_blocking(move || {
        let answer = dispatch(&ctx, operation, &body)?;
        Ok(ApiResponse::json_with(&answer, content_type))
    })
    .await
    .map_err(|e| ApiError::internal(format!("the {operation} operation's task failed: {e}")))?
}

/// The awsJson services' answer to a body they cannot read.
pub fn serialization(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "SerializationException", message)
}

/// A string member, if present (`null` counts as absent).
pub fn opt_str<'a>(body: &'a Value, field: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(serialization(format!(
            "{field} must be a string, found {other}"
        ))),
    }
}

/// A required string member.
pub fn req_str<'a>(body: &'a Value, field: &str) -> Result<&'a str, ApiError> {
    opt_str(body, field)?.ok_or_else(|| ApiError::missing(field))
}

/// A boolean member; absent or `null` is false.
pub fn opt_bool(body: &Value, field: &str) -> Result<bool, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(serialization(format!(
            "{field} must be true or false, found {other}"
        ))),
    }
}
