//! Item operations: GetItem, PutItem, UpdateItem, DeleteItem and the
//! batches. A write reads the current item, checks its condition, applies
//! and writes inside one store transaction ([`crate::store::Store::with_items`]):
//! a failed `ConditionExpression` is `ConditionalCheckFailedException` with
//! nothing written; a batch is all or nothing.

use super::attribute::{item_bytes, item_from_wire, item_to_wire, Item, MAX_ITEM_BYTES};
use super::evaluate::{apply_update, evaluate, project};
use super::expression::{
    parse_condition, parse_projection, parse_update, Condition, Path, PathElem, Placeholders,
};
use super::{
    item_storage_key, opt_str, refuse_legacy, request_key, return_values, serialization,
    stored_item, table_name, table_not_found, ApiContext, ApiError,
};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashSet};

/// Most requests in one BatchWriteItem (DynamoDB's limit).
const MAX_BATCH_WRITES: usize = 25;
/// Most keys in one BatchGetItem (DynamoDB's limit).
const MAX_BATCH_GETS: usize = 100;

fn conditional_check_failed() -> ApiError {
    ApiError::new(
        400,
        "ConditionalCheckFailedException",
        "The conditional request failed",
    )
}

/// The request's `ConditionExpression`, parsed.
fn condition(body: &Value, ph: &Placeholders) -> Result<Option<Condition>, ApiError> {
    opt_str(body, "ConditionExpression")?
        .map(|text| parse_condition(text, "ConditionExpression", ph))
        .transpose()
}

/// Refuses the write unless `condition` holds for the current item.
fn check(condition: Option<&Condition>, current: Option<&Item>) -> Result<(), ApiError> {
    let Some(condition) = condition else {
        return Ok(());
    };
    let empty = Item::new();
    if evaluate(condition, current.unwrap_or(&empty))? {
        Ok(())
    } else {
        Err(conditional_check_failed())
    }
}

fn check_size(item: &Item) -> Result<(), ApiError> {
    if item_bytes(item) > MAX_ITEM_BYTES {
        return Err(ApiError::validation(format!(
            "Item size has exceeded the maximum allowed size of {MAX_ITEM_BYTES} bytes"
        )));
    }
    Ok(())
}

/// A projection from `ProjectionExpression` or the older `AttributesToGet`.
fn projection(body: &Value, ph: &Placeholders) -> Result<Option<Vec<Path>>, ApiError> {
    if let Some(text) = opt_str(body, "ProjectionExpression")? {
        return parse_projection(text, ph).map(Some);
    }
    match body.get("AttributesToGet") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(names)) => names
            .iter()
            .map(|n| match n.as_str() {
                Some(n) => Ok(Path(vec![PathElem::Key(n.to_string())])),
                None => Err(serialization(
                    "AttributesToGet must be a list of attribute names",
                )),
            })
            .collect::<Result<_, _>>()
            .map(Some),
        Some(other) => Err(serialization(format!(
            "AttributesToGet must be a list, found {other}"
        ))),
    }
}

fn with_attributes(item: Option<&Item>) -> Value {
    match item {
        Some(item) => json!({ "Attributes": item_to_wire(item) }),
        None => json!({}),
    }
}

pub(super) fn get_item(ctx: &ApiContext, body: &Value) -> Result<Value, ApiError> {
    let table = table_name(body)?;
    let ph = Placeholders::from_request(body)?;
    let projection = projection(body, &ph)?;
    ph.check_all_used()?;
    let schema = super::schema_of(ctx, table)?;
    let (key, _) = request_key(&schema, body.get("Key"), "Key")?;
    let Some(stored) = ctx.cloud.store().typed_item(table, &key)? else {
        return Ok(json!({}));
    };
    let mut item = stored_item(stored)?;
    if let Some(paths) = &projection {
        item = project(&item, paths);
    }
    Ok(json!({ "Item": item_to_wire(&item) }))
}

pub(super) fn put_item(ctx: &ApiContext, body: &Value) -> Result<Value, ApiError> {
    let table = table_name(body)?;
    refuse_legacy(body, &["Expected", "ConditionalOperator"])?;
    let item = item_from_wire(body.get("Item").ok_or_else(|| ApiError::missing("Item"))?)?;
    check_size(&item)?;
    let ph = Placeholders::from_request(body)?;
    let condition = condition(body, &ph)?;
    ph.check_all_used()?;
    let returns = return_values(body, &["NONE", "ALL_OLD"])?;
    let old = ctx.cloud.store().with_items(|tx| {
        let schema = tx.schema(table)?.ok_or_else(|| table_not_found(table))?;
        let key = item_storage_key(&schema, &item)?;
        let old = tx.get(table, &key)?.map(stored_item).transpose()?;
        check(condition.as_ref(), old.as_ref())?;
        tx.put(table, &key, &item_to_wire(&item))?;
        Ok::<_, ApiError>(old)
    })?;
    Ok(match returns {
        "ALL_OLD" => with_attributes(old.as_ref()),
        _ => json!({}),
    })
}

pub(super) fn update_item(ctx: &ApiContext, body: &Value) -> Result<Value, ApiError> {
    let table = table_name(body)?;
    refuse_legacy(
        body,
        &["AttributeUpdates", "Expected", "ConditionalOperator"],
    )?;
    let ph = Placeholders::from_request(body)?;
    let update = opt_str(body, "UpdateExpression")?
        .map(|text| parse_update(text, &ph))
        .transpose()?;
    let condition = condition(body, &ph)?;
    ph.check_all_used()?;
    let returns = return_values(
        body,
        &["NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW"],
    )?;
    let (old, new, touched) = ctx.cloud.store().with_items(|tx| {
        let schema = tx.schema(table)?.ok_or_else(|| table_not_found(table))?;
        let (key, key_item) = request_key(&schema, body.get("Key"), "Key")?;
        let old = tx.get(table, &key)?.map(stored_item).transpose()?;
        check(condition.as_ref(), old.as_ref())?;
        // UpdateItem on a missing item creates it from its key.
        let mut new = old.clone().unwrap_or(key_item);
        let touched = match &update {
            Some(update) => apply_update(update, &mut new, &[schema.hash_key.as_str()])?,
            None => Default::default(),
        };
        check_size(&new)?;
        tx.put(table, &key, &item_to_wire(&new))?;
        Ok::<_, ApiError>((old, new, touched))
    })?;
    let only_touched = |item: &Item| -> Item {
        item.iter()
            .filter(|(k, _)| touched.contains(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    Ok(match returns {
        "ALL_OLD" => with_attributes(old.as_ref()),
        "UPDATED_OLD" => with_attributes(old.as_ref().map(only_touched).as_ref()),
        "ALL_NEW" => with_attributes(Some(&new)),
        "UPDATED_NEW" => with_attributes(Some(&only_touched(&new))),
        _ => json!({}),
    })
}

pub(super) fn delete_item(ctx: &ApiContext, body: &Value) -> Result<Value, ApiError> {
    let table = table_name(body)?;
    refuse_legacy(body, &["Expected", "ConditionalOperator"])?;
    let ph = Placeholders::from_request(body)?;
    let condition = condition(body, &ph)?;
    ph.check_all_used()?;
    let returns = return_values(body, &["NONE", "ALL_OLD"])?;
    let old = ctx.cloud.store().with_items(|tx| {
        let schema = tx.schema(table)?.ok_or_else(|| table_not_found(table))?;
        let (key, _) = request_key(&schema, body.get("Key"), "Key")?;
        let old = tx.get(table, &key)?.map(stored_item).transpose()?;
        check(condition.as_ref(), old.as_ref())?;
        tx.delete(table, &key)?;
        Ok::<_, ApiError>(old)
    })?;
    Ok(match returns {
        "ALL_OLD" => with_attributes(old.as_ref()),
        _ => json!({}),
    })
}

/// One request of a BatchWriteItem.
enum WriteRequest {
    Put(Item),
    Delete(Value),
}

fn request_items(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    match body.get("RequestItems") {
        Some(Value::Object(m)) if !m.is_empty() => Ok(m),
        Some(Value::Object(_)) => Err(ApiError::validation(
            "1 validation error detected: Value at 'requestItems' failed to satisfy constraint: Member must have length greater than or equal to 1",
        )),
        None | Some(Value::Null) => Err(ApiError::missing("RequestItems")),
        Some(other) => Err(serialization(format!("RequestItems must be an object of table name to requests, found {other}"))),
    }
}

pub(super) fn batch_write_item(ctx: &ApiContext, body: &Value) -> Result<Value, ApiError> {
    let mut batch: Vec<(String, Vec<WriteRequest>)> = Vec::new();
    let mut count = 0;
    for (table, requests) in request_items(body)? {
        let requests = requests.as_array().ok_or_else(|| {
            serialization(format!(
                "RequestItems.{table} must be a list of write requests"
            ))
        })?;
        let mut parsed = Vec::with_capacity(requests.len());
        for request in requests {
            count += 1;
            if count > MAX_BATCH_WRITES {
                return Err(ApiError::validation(format!(
                    "Too many items requested for the BatchWriteItem call: at most {MAX_BATCH_WRITES}"
                )));
            }
            let put = request.get("PutRequest").filter(|v| !v.is_null());
            let delete = request.get("DeleteRequest").filter(|v| !v.is_null());
            parsed.push(match (put, delete) {
                (Some(put), None) => {
                    let item = item_from_wire(put.get("Item").ok_or_else(|| ApiError::missing("PutRequest.Item"))?)?;
                    check_size(&item)?;
                    WriteRequest::Put(item)
                }
                (None, Some(delete)) => WriteRequest::Delete(
                    delete.get("Key").cloned().ok_or_else(|| ApiError::missing("DeleteRequest.Key"))?,
                ),
                _ => {
                    return Err(ApiError::validation(
                        "Each write request in RequestItems holds exactly one of PutRequest or DeleteRequest",
                    ))
                }
            });
        }
        if parsed.is_empty() {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value at 'requestItems.{table}' failed to satisfy constraint: Member must have length greater than or equal to 1"
            )));
        }
        batch.push((table.clone(), parsed));
    }
    ctx.cloud.store().with_items(|tx| {
        for (table, requests) in &batch {
            let schema = tx.schema(table)?.ok_or_else(|| table_not_found(table))?;
            let mut seen = HashSet::new();
            for request in requests {
                let key = match request {
                    WriteRequest::Put(item) => item_storage_key(&schema, item)?,
                    WriteRequest::Delete(key) => {
                        request_key(&schema, Some(key), "DeleteRequest.Key")?.0
                    }
                };
                if !seen.insert(key.clone()) {
                    return Err(ApiError::validation(
                        "Provided list of item keys contains duplicates",
                    ));
                }
                match request {
                    WriteRequest::Put(item) => tx.put(table, &key, &item_to_wire(item))?,
                    WriteRequest::Delete(_) => {
                        tx.delete(table, &key)?;
                    }
                }
            }
        }
        Ok::<_, ApiError>(())
    })?;
    Ok(json!({ "UnprocessedItems": {} }))
}

pub(super) fn batch_get_item(ctx: &ApiContext, body: &Value) -> Result<Value, ApiError> {
    let mut responses = Map::new();
    let mut count = 0;
    // Check the whole request before reading anything.
    let mut plan = Vec::new();
    for (table, request) in request_items(body)? {
        let keys = match request.get("Keys") {
            Some(Value::Array(keys)) if !keys.is_empty() => keys,
            _ => return Err(ApiError::missing(&format!("RequestItems.{table}.Keys"))),
        };
        count += keys.len();
        if count > MAX_BATCH_GETS {
            return Err(ApiError::validation(format!(
                "Too many items requested for the BatchGetItem call: at most {MAX_BATCH_GETS}"
            )));
        }
        let ph = Placeholders::from_request(request)?;
        let projection = projection(request, &ph)?;
        ph.check_all_used()?;
        let schema = super::schema_of(ctx, table)?;
        let mut seen = HashSet::new();
        let mut storage_keys = Vec::with_capacity(keys.len());
        for key in keys {
            let (key, _) = request_key(&schema, Some(key), "Keys")?;
            if !seen.insert(key.clone()) {
                return Err(ApiError::validation(
                    "Provided list of item keys contains duplicates",
                ));
            }
            storage_keys.push(key);
        }
        plan.push((table.clone(), storage_keys, projection));
    }
    for (table, keys, projection) in plan {
        let mut found = Vec::new();
        for key in keys {
            if let Some(stored) = ctx.cloud.store().typed_item(&table, &key)? {
                let mut item = stored_item(stored)?;
                if let Some(paths) = &projection {
                    item = project(&item, paths);
                }
                found.push(Value::Object(item_to_wire(&item)));
            }
        }
        responses.insert(table, Value::Array(found));
    }
    Ok(json!({ "Responses": responses, "UnprocessedKeys": BTreeMap::<String, Value>::new() }))
}
