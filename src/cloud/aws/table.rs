//! The device table (`CertRotationDevices`) on DynamoDB: rows as JSON maps
//! (the same shape the local store and the rotation function use), with
//! every attribute a string — the wire contract's attributes all are.

use super::errors::{api, AwsError, AwsResult};
use super::AwsCloud;
use crate::vocabulary::DEVICE_TABLE_KEY;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use serde_json::{Map, Value};

/// DynamoDB's limit for one BatchWriteItem.
const BATCH: usize = 25;
/// Rounds of re-sending unprocessed items (the SDK retries throttling of
/// the call itself; this handles the partial success DynamoDB reports).
const UNPROCESSED_ROUNDS: usize = 8;

pub use jitpilot_aws_function::items::{from_item, to_item};

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

/// Deletes the rows of these serials (a batch); returns how many were asked.
pub async fn delete_keys(cloud: &AwsCloud, table: &str, serials: &[String]) -> AwsResult<usize> {
    let requests = serials
        .iter()
        .map(|serial| {
            let delete = DeleteRequest::builder()
                .key(DEVICE_TABLE_KEY, AttributeValue::S(serial.to_string()))
                .build()
                .map_err(|e| AwsError::Other(format!("device table key: {e}")))?;
            Ok(WriteRequest::builder().delete_request(delete).build())
        })
        .collect::<AwsResult<Vec<WriteRequest>>>()?;
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
