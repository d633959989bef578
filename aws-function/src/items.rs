//! Device-table rows ↔ DynamoDB items. A row is a JSON map — the shape the
//! local store and the rotation function use — and every attribute of the
//! wire contract is a string; numbers and booleans survive the round trip.

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// A JSON row → DynamoDB item: strings as `S`, numbers as `N`, booleans as
/// `BOOL`, anything else as its JSON text.
pub fn to_item(row: &Map<String, Value>) -> HashMap<String, AttributeValue> {
    row.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| {
            let value = match v {
                Value::String(s) => AttributeValue::S(s.clone()),
                Value::Number(n) => AttributeValue::N(n.to_string()),
                Value::Bool(b) => AttributeValue::Bool(*b),
                other => AttributeValue::S(other.to_string()),
            };
            (k.clone(), value)
        })
        .collect()
}

/// A DynamoDB item → JSON row.
pub fn from_item(item: &HashMap<String, AttributeValue>) -> Map<String, Value> {
    item.iter()
        .map(|(k, v)| {
            let value = match v {
                AttributeValue::S(s) => Value::from(s.as_str()),
                AttributeValue::N(n) => n
                    .parse::<i64>()
                    .map(Value::from)
                    .or_else(|_| n.parse::<f64>().map(Value::from))
                    .unwrap_or_else(|_| Value::from(n.as_str())),
                AttributeValue::Bool(b) => Value::from(*b),
                AttributeValue::Null(_) => Value::Null,
                other => Value::from(format!("{other:?}")),
            };
            (k.clone(), value)
        })
        .collect()
}
