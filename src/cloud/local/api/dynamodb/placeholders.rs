//! An expression's placeholders: `#name` from `ExpressionAttributeNames`,
//! `:value` from `ExpressionAttributeValues`, and which of them a request's
//! expressions used (DynamoDB refuses a request that supplies unused ones).

use super::super::ApiError;
use super::attribute::AttributeValue;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

/// `ExpressionAttributeNames` and `ExpressionAttributeValues`, and which of
/// them the request's expressions used: DynamoDB refuses unused ones.
#[derive(Debug, Default)]
pub struct Placeholders {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
    used_names: RefCell<BTreeSet<String>>,
    used_values: RefCell<BTreeSet<String>>,
}

impl Placeholders {
    /// Reads the request's `ExpressionAttributeNames`/`Values` (either may be absent).
    pub fn from_request(body: &Value) -> Result<Placeholders, ApiError> {
        let mut placeholders = Placeholders::default();
        if let Some(names) = body
            .get("ExpressionAttributeNames")
            .filter(|v| !v.is_null())
        {
            let names = names.as_object().ok_or_else(|| {
                ApiError::new(
                    400,
                    "SerializationException",
                    "ExpressionAttributeNames must be an object of #placeholder to attribute name",
                )
            })?;
            for (k, v) in names {
                let name = v.as_str().ok_or_else(|| {
                    ApiError::new(
                        400,
                        "SerializationException",
                        format!("ExpressionAttributeNames {k} must be a string"),
                    )
                })?;
                if !k.starts_with('#') || name.is_empty() {
                    return Err(ApiError::validation(format!(
                        "ExpressionAttributeNames contains invalid key or value: {k}: a key starts with '#' and names a non-empty attribute"
                    )));
                }
                placeholders.names.insert(k.clone(), name.to_string());
            }
        }
        if let Some(values) = body
            .get("ExpressionAttributeValues")
            .filter(|v| !v.is_null())
        {
            let values = values.as_object().ok_or_else(|| {
                ApiError::new(
                    400,
                    "SerializationException",
                    "ExpressionAttributeValues must be an object of :placeholder to AttributeValue",
                )
            })?;
            for (k, v) in values {
                if !k.starts_with(':') {
                    return Err(ApiError::validation(format!(
                        "ExpressionAttributeValues contains invalid key: Syntax error; key: \"{k}\" (a key starts with ':')"
                    )));
                }
                placeholders
                    .values
                    .insert(k.clone(), AttributeValue::from_wire(v)?);
            }
        }
        Ok(placeholders)
    }

    pub(super) fn name(&self, placeholder: &str) -> Result<String, ApiError> {
        let name = self.names.get(placeholder).ok_or_else(|| {
            ApiError::validation(format!(
                "An expression attribute name used in the document path is not defined; attribute name: {placeholder}"
            ))
        })?;
        self.used_names.borrow_mut().insert(placeholder.to_string());
        Ok(name.clone())
    }

    pub(super) fn value(&self, placeholder: &str) -> Result<AttributeValue, ApiError> {
        let value = self.values.get(placeholder).ok_or_else(|| {
            ApiError::validation(format!(
                "An expression attribute value used in expression is not defined; attribute value: {placeholder}"
            ))
        })?;
        self.used_values
            .borrow_mut()
            .insert(placeholder.to_string());
        Ok(value.clone())
    }

    /// After every expression of the request is parsed: an unused name or
    /// value is a `ValidationException`, as on DynamoDB.
    pub fn check_all_used(&self) -> Result<(), ApiError> {
        let unused = |all: Vec<&String>, used: &BTreeSet<String>| -> Vec<String> {
            let mut v: Vec<String> = all
                .into_iter()
                .filter(|k| !used.contains(*k))
                .cloned()
                .collect();
            v.sort();
            v
        };
        let names = unused(self.names.keys().collect(), &self.used_names.borrow());
        if !names.is_empty() {
            return Err(ApiError::validation(format!(
                "Value provided in ExpressionAttributeNames unused in expressions: keys: {{{}}}",
                names.join(", ")
            )));
        }
        let values = unused(self.values.keys().collect(), &self.used_values.borrow());
        if !values.is_empty() {
            return Err(ApiError::validation(format!(
                "Value provided in ExpressionAttributeValues unused in expressions: keys: {{{}}}",
                values.join(", ")
            )));
        }
        Ok(())
    }
}
