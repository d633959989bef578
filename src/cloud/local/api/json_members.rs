//! Reading the members of an awsJson request body (DynamoDB, SSM) the way
//! those services answer a member of the wrong type: a 400
//! `SerializationException` naming the member, before any work is done.

use super::ApiError;
use serde_json::Value;

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
