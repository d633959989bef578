//! Scan and Query, paged as DynamoDB pages them: a page ends after `Limit`
//! items were *evaluated* (before the filter) or 1 MB of items, and then
//! names its last item's key in `LastEvaluatedKey`; the next request
//! starts after it with `ExclusiveStartKey`. Items come in storage-key
//! order, read from the store a chunk at a time, never all at once.

use super::attribute::{item_bytes, item_to_wire, AttributeValue, Item};
use super::evaluate::{evaluate, project};
use super::expression::{
    parse_condition, parse_projection, Comparator, Condition, Operand, Path, Placeholders,
};
use super::{
    key_of, opt_limit, opt_str, refuse_legacy, req_str, request_key, schema_of, storage_key,
    stored_item, table_name, ApiContext, ApiError,
};
use crate::store::TableSchema;
use serde_json::{json, Value};

/// DynamoDB's page size cap, in bytes of items read.
const PAGE_BYTES: usize = 1024 * 1024;
/// Items read from the store per round trip.
const CHUNK: usize = 256;

/// What Scan and Query share: the filter, the projection, `Select`.
struct ReadShape {
    filter: Option<Condition>,
    projection: Option<Vec<Path>>,
    count_only: bool,
    limit: Option<usize>,
}

fn read_shape(body: &Value, ph: &Placeholders) -> Result<ReadShape, ApiError> {
    refuse_legacy(
        body,
        &[
            "ScanFilter",
            "QueryFilter",
            "KeyConditions",
            "ConditionalOperator",
            "AttributesToGet",
        ],
    )?;
    if opt_str(body, "IndexName")?.is_some() {
        return Err(ApiError::validation(
            "IndexName: jitpilot's local DynamoDB has no secondary indexes (see the README's differences from AWS)",
        ));
    }
    let filter = opt_str(body, "FilterExpression")?
        .map(|text| parse_condition(text, "FilterExpression", ph))
        .transpose()?;
    let projection = opt_str(body, "ProjectionExpression")?
        .map(|text| parse_projection(text, ph))
        .transpose()?;
    let count_only = match opt_str(body, "Select")? {
        None | Some("ALL_ATTRIBUTES") => false,
        Some("SPECIFIC_ATTRIBUTES") if projection.is_some() => false,
        Some("COUNT") => true,
        Some(other) => {
            return Err(ApiError::validation(format!(
                "Select {other} is not valid here: use ALL_ATTRIBUTES, COUNT, or SPECIFIC_ATTRIBUTES with a ProjectionExpression"
            )))
        }
    };
    let limit = opt_limit(body, "Limit", i32::MAX as u64)?;
    Ok(ReadShape {
        filter,
        projection,
        count_only,
        limit,
    })
}

/// A page being filled.
struct Page {
    items: Vec<Value>,
    count: usize,
    scanned: usize,
    bytes: usize,
}

impl Page {
    fn new() -> Page {
        Page {
            items: Vec::new(),
            count: 0,
            scanned: 0,
            bytes: 0,
        }
    }

    /// Evaluates one item; true when the page is full after it.
    fn take(&mut self, shape: &ReadShape, item: &Item) -> Result<bool, ApiError> {
        self.scanned += 1;
        self.bytes += item_bytes(item);
        let keep = match &shape.filter {
            Some(filter) => evaluate(filter, item)?,
            None => true,
        };
        if keep {
            self.count += 1;
            if !shape.count_only {
                let shown = match &shape.projection {
                    Some(paths) => project(item, paths),
                    None => item.clone(),
                };
                self.items.push(Value::Object(item_to_wire(&shown)));
            }
        }
        Ok(shape.limit.is_some_and(|l| self.scanned >= l) || self.bytes >= PAGE_BYTES)
    }

    fn answer(self, shape: &ReadShape, last_key: Option<Value>) -> Value {
        let mut answer = json!({ "Count": self.count, "ScannedCount": self.scanned });
        if !shape.count_only {
            answer["Items"] = Value::Array(self.items);
        }
        if let Some(key) = last_key {
            answer["LastEvaluatedKey"] = key;
        }
        answer
    }
}

/// Which of `total` segments a storage key falls in (parallel scans).
fn segment_of(key: &str, total: u64) -> u64 {
    // FNV-1a: stable across runs and processes.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash % total
}

fn segments(body: &Value) -> Result<Option<(u64, u64)>, ApiError> {
    let number = |field: &str| body.get(field).filter(|v| !v.is_null()).map(|v| v.as_u64());
    match (number("Segment"), number("TotalSegments")) {
        (None, None) => Ok(None),
        (Some(Some(segment)), Some(Some(total)))
            if total >= 1 && total <= 1_000_000 && segment < total =>
        {
            Ok(Some((segment, total)))
        }
        _ => Err(ApiError::validation(
            "Segment and TotalSegments go together: 0 <= Segment < TotalSegments <= 1000000",
        )),
    }
}

pub(super) fn scan(ctx: &ApiContext, body: &Value) -> Result<Value, ApiError> {
    let table = table_name(body)?;
    let ph = Placeholders::from_request(body)?;
    let shape = read_shape(body, &ph)?;
    ph.check_all_used()?;
    let segment = segments(body)?;
    let schema = schema_of(ctx, table)?;
    let mut cursor = match body.get("ExclusiveStartKey").filter(|v| !v.is_null()) {
        Some(key) => Some(request_key(&schema, Some(key), "ExclusiveStartKey")?.0),
        None => None,
    };
    let mut page = Page::new();
    loop {
        let chunk = ctx
            .cloud
            .store()
            .typed_items_after(table, cursor.as_deref(), CHUNK)?;
        let exhausted = chunk.len() < CHUNK;
        for (key, stored) in chunk {
            cursor = Some(key.clone());
            if segment.is_some_and(|(s, total)| segment_of(&key, total) != s) {
                continue;
            }
            let item = stored_item(stored)?;
            if page.take(&shape, &item)? {
                return Ok(page.answer(&shape, Some(key_of(&schema, &item))));
            }
        }
        if exhausted {
            return Ok(page.answer(&shape, None));
        }
    }
}

/// The hash key value a `KeyConditionExpression` asks for: `key = :v`.
fn key_condition(schema: &TableSchema, condition: &Condition) -> Result<AttributeValue, ApiError> {
    let wrong = || {
        ApiError::validation(format!(
            "Query key condition not supported: the table's only key is the hash key {}; write `{} = :value` (filter other attributes with a FilterExpression)",
            schema.hash_key, schema.hash_key
        ))
    };
    let Condition::Compare(a, Comparator::Eq, b) = condition else {
        return Err(wrong());
    };
    let (path, value) = match (a, b) {
        (Operand::Path(p), Operand::Value(v)) | (Operand::Value(v), Operand::Path(p)) => (p, v),
        _ => return Err(wrong()),
    };
    if path.0.len() != 1 || path.top() != schema.hash_key {
        return Err(ApiError::validation(format!(
            "Query condition missed key schema element: {}",
            schema.hash_key
        )));
    }
    Ok(value.clone())
}

pub(super) fn query(ctx: &ApiContext, body: &Value) -> Result<Value, ApiError> {
    let table = table_name(body)?;
    let ph = Placeholders::from_request(body)?;
    let key_text = req_str(body, "KeyConditionExpression")?;
    let key_condition_parsed = parse_condition(key_text, "KeyConditionExpression", &ph)?;
    let shape = read_shape(body, &ph)?;
    ph.check_all_used()?;
    let schema = schema_of(ctx, table)?;
    let value = key_condition(&schema, &key_condition_parsed)?;
    let key = storage_key(&schema, &value)?;
    let start = match body.get("ExclusiveStartKey").filter(|v| !v.is_null()) {
        Some(k) => Some(request_key(&schema, Some(k), "ExclusiveStartKey")?.0),
        None => None,
    };
    let mut page = Page::new();
    // A hash-key-only table holds at most one item per key; a page that
    // starts after it is empty.
    if start.as_deref() != Some(key.as_str()) {
        if let Some(stored) = ctx.cloud.store().typed_item(table, &key)? {
            let item = stored_item(stored)?;
            if page.take(&shape, &item)? && shape.limit.is_some() {
                return Ok(page.answer(&shape, Some(key_of(&schema, &item))));
            }
        }
    }
    Ok(page.answer(&shape, None))
}
