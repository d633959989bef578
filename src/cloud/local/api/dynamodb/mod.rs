//! DynamoDB (awsJson 1.0, `X-Amz-Target: DynamoDB_20120810.<Operation>`,
//! signing name `dynamodb`) over the store's tables: the device table
//! `CertRotationDevices` the stack creates, and any table a client makes.
//!
//! ## Layout
//!
//! - `mod.rs`        the service, the request vocabulary, keys, and the table operations
//! - `items.rs`      GetItem, PutItem, UpdateItem, DeleteItem, BatchWriteItem, BatchGetItem
//! - `reads.rs`      Scan and Query, paged by `Limit`, 1 MB and `ExclusiveStartKey`
//! - `attribute.rs`  attribute values (`S`, `N`, …) and exact decimal numbers
//! - `expression.rs` the condition, update and projection expression languages
//!   (`tokens.rs` their tokens, `placeholders.rs` their `#name`/`:value` placeholders)
//! - `evaluate.rs`   expressions at work on an item, pure
//!
//! A row the rotation function or `jitpilot init` wrote is read here with
//! its types derived from its JSON; a row written here keeps its DynamoDB
//! types and is read by them as plain JSON (see `store/tables.rs`). Every
//! write — a conditional one, a batch — reads, decides and writes inside one
//! store transaction: a failed condition or a bad request in a batch leaves
//! every table as it was.
//!
//! Where it differs from DynamoDB: tables are ACTIVE at once; a table has
//! a hash key only (a RANGE key is refused); no secondary indexes, streams,
//! TTL or transactions; reserved words are accepted in expressions.

mod attribute;
mod evaluate;
mod expression;
mod items;
mod placeholders;
mod reads;
mod tokens;

use super::json_members::{call_blocking, opt_str, req_str, serialization};
use super::{ApiContext, ApiError, ApiRequest, ApiResult, Service};
use crate::cloud::local::{LOCAL_ACCOUNT_ID, LOCAL_REGION};
use crate::store::{StoreError, TableSchema};
use attribute::{AttributeValue, Item};
use base64::Engine;
use serde_json::{json, Map, Value};

/// The `dynamodb` service.
pub struct DynamoDb;

/// The content type of every answer.
const CONTENT_TYPE: &str = "application/x-amz-json-1.0";

/// Every operation this service answers.
pub const OPERATIONS: &[&str] = &[
    "CreateTable",
    "DescribeTable",
    "DeleteTable",
    "ListTables",
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Scan",
    "Query",
    "BatchWriteItem",
    "BatchGetItem",
];

#[async_trait::async_trait]
impl Service for DynamoDb {
    fn operation(&self, request: &ApiRequest) -> Result<&'static str, ApiError> {
        super::aws_json_operation(request, "dynamodb", "DynamoDB_20120810.", OPERATIONS)
    }

    async fn call(
        &self,
        ctx: &ApiContext,
        operation: &'static str,
        request: ApiRequest,
    ) -> ApiResult {
        // SQLite is blocking work: off the runtime's worker threads.
        call_blocking(ctx, operation, request, CONTENT_TYPE, dispatch).await
    }
}

/// Runs one operation on the request's JSON body.
fn dispatch(ctx: &ApiContext, operation: &str, body: &Value) -> Result<Value, ApiError> {
    match operation {
        "CreateTable" => create_table(ctx, body),
        "DescribeTable" => describe_table(ctx, body),
        "DeleteTable" => delete_table(ctx, body),
        "ListTables" => list_tables(ctx, body),
        "GetItem" => items::get_item(ctx, body),
        "PutItem" => items::put_item(ctx, body),
        "UpdateItem" => items::update_item(ctx, body),
        "DeleteItem" => items::delete_item(ctx, body),
        "BatchWriteItem" => items::batch_write_item(ctx, body),
        "BatchGetItem" => items::batch_get_item(ctx, body),
        "Scan" => reads::scan(ctx, body),
        "Query" => reads::query(ctx, body),
        other => Err(ApiError::unknown_operation("dynamodb", other)),
    }
}

// ---- the request vocabulary ---------------------------------------------------

/// DynamoDB's `ResourceNotFoundException` (400, not 404).
fn table_not_found(table: &str) -> ApiError {
    ApiError::new(
        400,
        "ResourceNotFoundException",
        format!("Requested resource not found: Table: {table} not found"),
    )
}

/// A positive integer member (`Limit`), if present.
fn opt_limit(body: &Value, field: &str, max: u64) -> Result<Option<usize>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) if (1..=max).contains(&v) => Ok(Some(v as usize)),
            _ => Err(ApiError::validation(format!(
                "1 validation error detected: Value '{n}' at '{}' failed to satisfy constraint: Member must have value between 1 and {max}",
                lower_first(field)
            ))),
        },
        Some(other) => Err(serialization(format!("{field} must be a number, found {other}"))),
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// `TableName`, checked as DynamoDB does (3-255 of `[a-zA-Z0-9_.-]`).
fn table_name(body: &Value) -> Result<&str, ApiError> {
    let name = req_str(body, "TableName")?;
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !(3..=255).contains(&name.len()) || !valid_chars {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{}' at 'tableName' failed to satisfy constraint: Member must have length between 3 and 255 and match [a-zA-Z0-9_.-]+",
            name.chars().take(64).collect::<String>()
        )));
    }
    Ok(name)
}

/// The pre-expression parameters this service does not take: a clear
/// refusal instead of silently ignoring a condition.
fn refuse_legacy(body: &Value, fields: &[&str]) -> Result<(), ApiError> {
    for field in fields {
        if body.get(*field).is_some_and(|v| !v.is_null()) {
            return Err(ApiError::validation(format!(
                "{field} is a legacy parameter jitpilot's local DynamoDB does not take; write it as an expression (ConditionExpression, FilterExpression, KeyConditionExpression, UpdateExpression, ProjectionExpression)"
            )));
        }
    }
    Ok(())
}

/// `ReturnValues`, one of `allowed` (default `NONE`).
fn return_values<'a>(body: &'a Value, allowed: &[&str]) -> Result<&'a str, ApiError> {
    let value = opt_str(body, "ReturnValues")?.unwrap_or("NONE");
    if allowed.contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::validation(format!(
            "Return values set to invalid value: {value}; this operation takes one of {}",
            allowed.join(", ")
        )))
    }
}

// ---- keys ---------------------------------------------------------------------

/// The storage key of a hash key value (see `store/tables.rs`): the text of
/// an `S`, the canonical number of an `N`, the base64 of a `B`.
fn storage_key(schema: &TableSchema, value: &AttributeValue) -> Result<String, ApiError> {
    let empty = || {
        ApiError::validation(format!(
            "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty {} value. Key: {}",
            if schema.hash_key_type == "B" { "binary" } else { "string" },
            schema.hash_key
        ))
    };
    match (schema.hash_key_type.as_str(), value) {
        ("S", AttributeValue::S(s)) if s.is_empty() => Err(empty()),
        ("S", AttributeValue::S(s)) => Ok(s.clone()),
        ("N", AttributeValue::N(n)) => Ok(n.to_string()),
        ("B", AttributeValue::B(b)) if b.is_empty() => Err(empty()),
        ("B", AttributeValue::B(b)) => Ok(base64::engine::general_purpose::STANDARD.encode(b)),
        (expected, actual) => Err(ApiError::validation(format!(
            "One or more parameter values were invalid: Type mismatch for key {} expected: {expected} actual: {}",
            schema.hash_key,
            actual.type_name()
        ))),
    }
}

/// A request's `Key` (or `ExclusiveStartKey`): exactly the table's key
/// attribute. Returns the storage key and the key as an item.
fn request_key(
    schema: &TableSchema,
    key: Option<&Value>,
    field: &str,
) -> Result<(String, Item), ApiError> {
    let key = attribute::item_from_wire(key.ok_or_else(|| ApiError::missing(field))?)?;
    let Some(value) = key.get(&schema.hash_key).filter(|_| key.len() == 1) else {
        return Err(ApiError::validation(format!(
            "The provided key element does not match the schema: {field} must hold exactly the key attribute {} ({})",
            schema.hash_key, schema.hash_key_type
        )));
    };
    Ok((storage_key(schema, value)?, key))
}

/// The storage key of an item being written: it must carry the key attribute.
fn item_storage_key(schema: &TableSchema, item: &Item) -> Result<String, ApiError> {
    let value = item.get(&schema.hash_key).ok_or_else(|| {
        ApiError::validation(format!(
            "One or more parameter values were invalid: Missing the key {} in the item",
            schema.hash_key
        ))
    })?;
    storage_key(schema, value)
}

/// The key attributes of an item, as `LastEvaluatedKey` names them.
fn key_of(schema: &TableSchema, item: &Item) -> Value {
    let mut key = Map::new();
    if let Some(v) = item.get(&schema.hash_key) {
        key.insert(schema.hash_key.clone(), v.to_wire());
    }
    Value::Object(key)
}

/// A stored item (typed JSON) as an [`Item`].
fn stored_item(stored: Map<String, Value>) -> Result<Item, ApiError> {
    attribute::item_from_wire(&Value::Object(stored))
        .map_err(|e| ApiError::internal(format!("a stored item does not read back: {}", e.message)))
}

// ---- tables -------------------------------------------------------------------

fn table_arn(name: &str) -> String {
    format!("arn:aws:dynamodb:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:table/{name}")
}

/// A stable id per table name, shaped like DynamoDB's UUIDs.
fn table_id(name: &str) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(name.as_bytes());
    let hex: String = h.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn table_description(schema: &TableSchema, status: &str) -> Value {
    let created = schema.created_at as f64 / 1000.0;
    json!({
        "TableName": schema.name,
        "TableStatus": status,
        "KeySchema": [{"AttributeName": schema.hash_key, "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": schema.hash_key, "AttributeType": schema.hash_key_type}],
        "ItemCount": schema.item_count,
        "TableSizeBytes": 0,
        "TableArn": table_arn(&schema.name),
        "TableId": table_id(&schema.name),
        "CreationDateTime": created,
        "ProvisionedThroughput": {"NumberOfDecreasesToday": 0, "ReadCapacityUnits": 0, "WriteCapacityUnits": 0},
        "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST", "LastUpdateToPayPerRequestDateTime": created},
        "DeletionProtectionEnabled": false,
    })
}

fn schema_of(ctx: &ApiContext, table: &str) -> Result<TableSchema, ApiError> {
    ctx.cloud
        .store()
        .table_schema(table)?
        .ok_or_else(|| table_not_found(table))
}

fn create_table(ctx: &ApiContext, body: &Value) -> Result<Value, ApiError> {
    let name = table_name(body)?;
    let list = |field: &str| -> Result<&Vec<Value>, ApiError> {
        match body.get(field) {
            Some(Value::Array(a)) => Ok(a),
            None | Some(Value::Null) => Err(ApiError::missing(field)),
            Some(other) => Err(serialization(format!(
                "{field} must be a list, found {other}"
            ))),
        }
    };
    let mut hash = None;
    for element in list("KeySchema")? {
        let attribute = req_str(element, "AttributeName")?;
        match req_str(element, "KeyType")? {
            "HASH" if hash.is_none() => hash = Some(attribute),
            "HASH" => return Err(ApiError::validation("Invalid KeySchema: Too many hash keys: a table has exactly one HASH key")),
            "RANGE" => return Err(ApiError::validation(format!(
                "Invalid KeySchema: jitpilot's local DynamoDB keeps tables with a HASH key only; the RANGE key {attribute} is not supported here (see the README's differences from AWS)"
            ))),
            other => return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{other}' at 'keySchema.member.keyType' failed to satisfy constraint: Member must satisfy enum value set: [HASH, RANGE]"
            ))),
        }
    }
    let hash =
        hash.ok_or_else(|| ApiError::validation("Invalid KeySchema: No Hash Key specified"))?;
    let definitions = list("AttributeDefinitions")?;
    let mut key_type = None;
    for definition in definitions {
        let attribute = req_str(definition, "AttributeName")?;
        let kind = req_str(definition, "AttributeType")?;
        if !matches!(kind, "S" | "N" | "B") {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{kind}' at 'attributeDefinitions.member.attributeType' failed to satisfy constraint: Member must satisfy enum value set: [B, N, S]"
            )));
        }
        if attribute == hash {
            key_type = Some(kind);
        }
    }
    let key_type = key_type.filter(|_| definitions.len() == 1).ok_or_else(|| {
        ApiError::validation(
            "One or more parameter values were invalid: Number of attributes in KeySchema does not exactly match number of attributes defined in AttributeDefinitions",
        )
    })?;
    for unsupported in ["GlobalSecondaryIndexes", "LocalSecondaryIndexes"] {
        if body
            .get(unsupported)
            .is_some_and(|v| v.as_array().is_some_and(|a| !a.is_empty()))
        {
            return Err(ApiError::validation(format!(
                "{unsupported}: jitpilot's local DynamoDB has no secondary indexes (see the README's differences from AWS)"
            )));
        }
    }
    let store = ctx.cloud.store();
    match store.create_typed_table(name, hash, key_type) {
        Ok(()) => {}
        Err(StoreError::AlreadyExists { .. }) => {
            return Err(ApiError::new(
                400,
                "ResourceInUseException",
                format!("Table already exists: {name}"),
            ))
        }
        Err(e) => return Err(e.into()),
    }
    let schema = schema_of(ctx, name)?;
    Ok(json!({ "TableDescription": table_description(&schema, "ACTIVE") }))
}

fn describe_table(ctx: &ApiContext, body: &Value) -> Result<Value, ApiError> {
    let schema = schema_of(ctx, table_name(body)?)?;
    Ok(json!({ "Table": table_description(&schema, "ACTIVE") }))
}

fn delete_table(ctx: &ApiContext, body: &Value) -> Result<Value, ApiError> {
    let name = table_name(body)?;
    let schema = schema_of(ctx, name)?;
    if !ctx.cloud.store().delete_table(name)? {
        return Err(table_not_found(name));
    }
    Ok(json!({ "TableDescription": table_description(&schema, "DELETING") }))
}

fn list_tables(ctx: &ApiContext, body: &Value) -> Result<Value, ApiError> {
    let limit = opt_limit(body, "Limit", 100)?.unwrap_or(100);
    let start = opt_str(body, "ExclusiveStartTableName")?;
    let names: Vec<String> = ctx
        .cloud
        .store()
        .table_schemas()?
        .into_iter()
        .map(|s| s.name)
        .filter(|n| start.is_none_or(|s| n.as_str() > s))
        .collect();
    let page: Vec<&String> = names.iter().take(limit).collect();
    let mut answer = json!({ "TableNames": page });
    if names.len() > limit {
        if let Some(last) = page.last() {
            answer["LastEvaluatedTableName"] = json!(last);
        }
    }
    Ok(answer)
}

#[cfg(test)]
mod tests;
