//! The device table (`CertRotationDevices`) on DynamoDB: rows as JSON maps
//! (the same shape the local store and the rotation function use), with
//! every attribute a string — the wire contract's attributes all are.

use super::errors::{api, AwsError, AwsResult};
use super::AwsCloud;
use crate::cloud::local::DEVICE_TABLE_KEY;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// DynamoDB's limit for one BatchWriteItem.
const BATCH: usize = 25;
/// Rounds of re-sending unprocessed items (the SDK retries throttling of
/// the call itself; this handles the partial success DynamoDB reports).
const UNPROCESSED_ROUNDS: usize = 8;

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

/// Every row, ordered by serial (a consistent read).
pub async fn scan(cloud: &AwsCloud, table: &str) -> AwsResult<Vec<Map<String, Value>>> {
    let result = cloud
        .clients()
        .dynamodb
        .scan()
        .table_name(table)
        // init decides from the rows what to write: it must see the latest.
        .consistent_read(true)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await;
    let items = match result {
        Ok(items) => items,
        Err(e) => match api("Scan", "dynamodb:Scan", e) {
            AwsError::Api { code, .. } if code == "ResourceNotFoundException" => {
                return Ok(Vec::new())
            }
            other => return Err(other),
        },
    };
    let mut rows: Vec<_> = items.iter().map(from_item).collect();
    rows.sort_by(|a, b| {
        let key = |r: &Map<String, Value>| {
            r.get(DEVICE_TABLE_KEY)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        key(a).cmp(&key(b))
    });
    Ok(rows)
}

/// `GetItem` by serial.
pub async fn get(
    cloud: &AwsCloud,
    table: &str,
    serial: &str,
) -> AwsResult<Option<Map<String, Value>>> {
    let out = cloud
        .clients()
        .dynamodb
        .get_item()
        .table_name(table)
        .key(DEVICE_TABLE_KEY, AttributeValue::S(serial.to_string()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| api("GetItem", "dynamodb:GetItem", e))?;
    Ok(out.item.as_ref().map(from_item))
}

/// Writes the rows in batches of 25, re-sending what DynamoDB left unprocessed.
pub async fn put_all(cloud: &AwsCloud, table: &str, rows: &[Map<String, Value>]) -> AwsResult<()> {
    let requests: AwsResult<Vec<WriteRequest>> = rows
        .iter()
        .map(|row| {
            let put = PutRequest::builder()
                .set_item(Some(to_item(row)))
                .build()
                .map_err(|e| AwsError::Other(format!("device table row: {e}")))?;
            Ok(WriteRequest::builder().put_request(put).build())
        })
        .collect();
    write_batches(cloud, table, requests?).await
}

/// Deletes every row; returns how many.
pub async fn delete_all(cloud: &AwsCloud, table: &str) -> AwsResult<usize> {
    let rows = scan(cloud, table).await?;
    let requests: AwsResult<Vec<WriteRequest>> = rows
        .iter()
        .filter_map(|row| row.get(DEVICE_TABLE_KEY).and_then(Value::as_str))
        .map(|serial| {
            let delete = DeleteRequest::builder()
                .key(DEVICE_TABLE_KEY, AttributeValue::S(serial.to_string()))
                .build()
                .map_err(|e| AwsError::Other(format!("device table key: {e}")))?;
            Ok(WriteRequest::builder().delete_request(delete).build())
        })
        .collect();
    let requests = requests?;
    let count = requests.len();
    write_batches(cloud, table, requests).await?;
    Ok(count)
}

async fn write_batches(
    cloud: &AwsCloud,
    table: &str,
    requests: Vec<WriteRequest>,
) -> AwsResult<()> {
    for chunk in requests.chunks(BATCH) {
        let mut pending = chunk.to_vec();
        for _ in 0..UNPROCESSED_ROUNDS {
            let out = cloud
                .clients()
                .dynamodb
                .batch_write_item()
                .request_items(table, pending)
                .send()
                .await
                .map_err(|e| api("BatchWriteItem", "dynamodb:BatchWriteItem", e))?;
            pending = out
                .unprocessed_items
                .and_then(|mut m| m.remove(table))
                .unwrap_or_default();
            if pending.is_empty() {
                break;
            }
        }
        if !pending.is_empty() {
            return Err(AwsError::Throttled {
                operation: "BatchWriteItem",
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_survive_the_round_trip_through_attribute_values() {
        let row = json!({"SerialNumber": "IUQWXALODJESC1", "CrState": "CR_WHITELISTED", "n": 3, "ok": true});
        let row = row.as_object().expect("object").clone();
        let item = to_item(&row);
        assert_eq!(
            item["SerialNumber"],
            AttributeValue::S("IUQWXALODJESC1".into())
        );
        assert_eq!(item["n"], AttributeValue::N("3".into()));
        assert_eq!(from_item(&item), row);
    }
}
