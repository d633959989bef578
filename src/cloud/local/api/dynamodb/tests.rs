//! DynamoDB operations called as the server calls them: awsJson requests
//! (`X-Amz-Target`, JSON body) on a local cloud in a temp dir.

use super::*;
use crate::cloud::events::EventBus;
use crate::cloud::local::LocalCloud;
use bytes::Bytes;
use serde_json::json;

struct Fixture {
    _dir: tempfile::TempDir,
    ctx: ApiContext,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let cloud = LocalCloud::open(dir.path(), EventBus::default()).unwrap();
    let ctx = ApiContext::without_endpoint(cloud);
    Fixture { _dir: dir, ctx }
}

fn request(target: &str, body: Bytes) -> ApiRequest {
    let mut headers = http::HeaderMap::new();
    headers.insert("x-amz-target", target.parse().unwrap());
    ApiRequest {
        service: "dynamodb".into(),
        method: http::Method::POST,
        path: "/".into(),
        query: Vec::new(),
        headers,
        body,
    }
}

async fn raw(f: &Fixture, op: &str, body: Bytes) -> Result<Value, ApiError> {
    let req = request(&format!("DynamoDB_20120810.{op}"), body);
    let op = DynamoDb.operation(&req)?;
    let answer = DynamoDb.call(&f.ctx, op, req).await?;
    assert_eq!(answer.status, 200);
    assert!(answer
        .headers
        .iter()
        .any(|(k, v)| k == "content-type" && v == CONTENT_TYPE));
    Ok(serde_json::from_slice(&answer.body).unwrap())
}

async fn call(f: &Fixture, op: &str, body: Value) -> Result<Value, ApiError> {
    raw(f, op, Bytes::from(serde_json::to_vec(&body).unwrap())).await
}

async fn devices_table(f: &Fixture) {
    call(
        f,
        "CreateTable",
        json!({
            "TableName": "CertRotationDevices",
            "KeySchema": [{"AttributeName": "SerialNumber", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "SerialNumber", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST"
        }),
    )
    .await
    .unwrap();
}

fn code(result: Result<Value, ApiError>) -> String {
    let err = result.unwrap_err();
    assert!(err.status == 400 || err.status == 404, "{err:?}");
    err.code
}

#[tokio::test]
async fn tables_are_created_described_listed_and_deleted() {
    let f = fixture();
    devices_table(&f).await;
    let again = call(
        &f,
        "CreateTable",
        json!({
            "TableName": "CertRotationDevices",
            "KeySchema": [{"AttributeName": "SerialNumber", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "SerialNumber", "AttributeType": "S"}]
        }),
    )
    .await;
    assert_eq!(code(again), "ResourceInUseException");
    let range = call(&f, "CreateTable", json!({
        "TableName": "Ranged",
        "KeySchema": [{"AttributeName": "a", "KeyType": "HASH"}, {"AttributeName": "b", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "a", "AttributeType": "S"}, {"AttributeName": "b", "AttributeType": "S"}]
    }))
    .await
    .unwrap_err();
    assert_eq!(range.code, "ValidationException");
    assert!(
        range.message.contains("RANGE key b is not supported"),
        "{}",
        range.message
    );
    let mismatch = call(
        &f,
        "CreateTable",
        json!({
            "TableName": "Counters",
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "other", "AttributeType": "N"}]
        }),
    )
    .await;
    assert_eq!(code(mismatch), "ValidationException");
    call(
        &f,
        "CreateTable",
        json!({
            "TableName": "Counters",
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "N"}]
        }),
    )
    .await
    .unwrap();
    let described = call(&f, "DescribeTable", json!({"TableName": "Counters"}))
        .await
        .unwrap();
    let table = &described["Table"];
    assert_eq!(table["TableStatus"], "ACTIVE");
    assert_eq!(
        table["KeySchema"],
        json!([{"AttributeName": "id", "KeyType": "HASH"}])
    );
    assert_eq!(
        table["AttributeDefinitions"],
        json!([{"AttributeName": "id", "AttributeType": "N"}])
    );
    assert_eq!(
        table["TableArn"],
        "arn:aws:dynamodb:us-east-1:123456789012:table/Counters"
    );
    assert_eq!(table["ItemCount"], 0);
    let page = call(&f, "ListTables", json!({"Limit": 1})).await.unwrap();
    assert_eq!(
        page,
        json!({"TableNames": ["CertRotationDevices"], "LastEvaluatedTableName": "CertRotationDevices"})
    );
    let rest = call(
        &f,
        "ListTables",
        json!({"ExclusiveStartTableName": "CertRotationDevices"}),
    )
    .await
    .unwrap();
    assert_eq!(rest, json!({"TableNames": ["Counters"]}));
    let deleted = call(&f, "DeleteTable", json!({"TableName": "Counters"}))
        .await
        .unwrap();
    assert_eq!(deleted["TableDescription"]["TableStatus"], "DELETING");
    let gone = call(&f, "DescribeTable", json!({"TableName": "Counters"}))
        .await
        .unwrap_err();
    assert_eq!(
        (gone.status, gone.code.as_str()),
        (400, "ResourceNotFoundException")
    );
    assert_eq!(
        code(call(&f, "DeleteTable", json!({"TableName": "Counters"})).await),
        "ResourceNotFoundException"
    );
    assert_eq!(
        code(call(&f, "DescribeTable", json!({"TableName": "x"})).await),
        "ValidationException"
    );
}

#[tokio::test]
async fn items_keep_their_types_and_meet_jitpilots_own_rows() {
    let f = fixture();
    devices_table(&f).await;
    let item = json!({
        "SerialNumber": {"S": "API1"}, "CrState": {"S": "CR_WHITELISTED"}, "Count": {"N": "1.50"},
        "Blob": {"B": "AAEC"}, "Ok": {"BOOL": true}, "Nothing": {"NULL": true},
        "Tags": {"SS": ["a", "b"]}, "Nums": {"NS": ["1", "2"]}, "Nested": {"M": {"L": {"L": [{"S": "x"}]}}}
    });
    call(
        &f,
        "PutItem",
        json!({"TableName": "CertRotationDevices", "Item": item}),
    )
    .await
    .unwrap();
    let got = call(
        &f,
        "GetItem",
        json!({"TableName": "CertRotationDevices", "Key": {"SerialNumber": {"S": "API1"}}}),
    )
    .await
    .unwrap();
    let mut expected = item.clone();
    expected["Count"] = json!({"N": "1.5"});
    assert_eq!(got["Item"], expected);
    // jitpilot's own readers (the TUI, the rotation function) see plain JSON.
    let store = f.ctx.cloud.store();
    let plain = store
        .get_item("CertRotationDevices", "API1")
        .unwrap()
        .unwrap();
    assert_eq!(plain["CrState"], "CR_WHITELISTED");
    assert_eq!(plain["Count"], json!(1.5));
    assert_eq!(plain["Tags"], json!(["a", "b"]));
    // A row jitpilot writes is read through the API with derived types.
    let row = json!({"SerialNumber": "OWN1", "CrState": "CR_THING_CREATED", "VendorCertId": "abc"});
    store
        .put_item("CertRotationDevices", row.as_object().unwrap())
        .unwrap();
    let got = call(&f, "GetItem", json!({
        "TableName": "CertRotationDevices", "Key": {"SerialNumber": {"S": "OWN1"}},
        "ProjectionExpression": "#s, VendorCertId", "ExpressionAttributeNames": {"#s": "CrState"}
    }))
    .await
    .unwrap();
    assert_eq!(
        got,
        json!({"Item": {"CrState": {"S": "CR_THING_CREATED"}, "VendorCertId": {"S": "abc"}}})
    );
    // A plain write over an API row drops the stale typed form.
    let row = json!({"SerialNumber": "API1", "CrState": "CR_MAN_CERT_CREATED"});
    store
        .put_item("CertRotationDevices", row.as_object().unwrap())
        .unwrap();
    let got = call(
        &f,
        "GetItem",
        json!({"TableName": "CertRotationDevices", "Key": {"SerialNumber": {"S": "API1"}}}),
    )
    .await
    .unwrap();
    assert_eq!(
        got["Item"],
        json!({"SerialNumber": {"S": "API1"}, "CrState": {"S": "CR_MAN_CERT_CREATED"}})
    );
    let absent = call(
        &f,
        "GetItem",
        json!({"TableName": "CertRotationDevices", "Key": {"SerialNumber": {"S": "none"}}}),
    )
    .await
    .unwrap();
    assert_eq!(absent, json!({}));
}

#[tokio::test]
async fn conditions_refuse_writes_and_leave_nothing_behind() {
    let f = fixture();
    devices_table(&f).await;
    let put = |serial: &str, state: &str| {
        json!({"TableName": "CertRotationDevices", "Item": {"SerialNumber": {"S": serial}, "CrState": {"S": state}},
               "ConditionExpression": "attribute_not_exists(SerialNumber)"})
    };
    call(&f, "PutItem", put("D1", "CR_WHITELISTED"))
        .await
        .unwrap();
    let refused = call(&f, "PutItem", put("D1", "CR_OTHER"))
        .await
        .unwrap_err();
    assert_eq!(
        (refused.status, refused.code.as_str()),
        (400, "ConditionalCheckFailedException")
    );
    let key = json!({"SerialNumber": {"S": "D1"}});
    let update = json!({
        "TableName": "CertRotationDevices", "Key": key,
        "UpdateExpression": "SET CrState = :next, Attempts = if_not_exists(Attempts, :zero) + :one REMOVE VendorCertId",
        "ConditionExpression": "CrState = :expected AND NOT attribute_exists(Gone)",
        "ExpressionAttributeValues": {":next": {"S": "CR_THING_CREATED"}, ":expected": {"S": "CR_WHITELISTED"},
                                      ":zero": {"N": "0"}, ":one": {"N": "1"}},
        "ReturnValues": "ALL_NEW"
    });
    let updated = call(&f, "UpdateItem", update.clone()).await.unwrap();
    assert_eq!(
        updated["Attributes"],
        json!({"SerialNumber": {"S": "D1"}, "CrState": {"S": "CR_THING_CREATED"}, "Attempts": {"N": "1"}})
    );
    // The same update again: the state moved on, the condition fails, nothing changes.
    assert_eq!(
        code(call(&f, "UpdateItem", update).await),
        "ConditionalCheckFailedException"
    );
    let row = f
        .ctx
        .cloud
        .store()
        .get_item("CertRotationDevices", "D1")
        .unwrap()
        .unwrap();
    assert_eq!(row["Attempts"], json!(1));
    let old = call(
        &f,
        "UpdateItem",
        json!({
            "TableName": "CertRotationDevices", "Key": key, "UpdateExpression": "ADD Attempts :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}}, "ReturnValues": "UPDATED_OLD"
        }),
    )
    .await
    .unwrap();
    assert_eq!(old, json!({"Attributes": {"Attempts": {"N": "1"}}}));
    let delete = json!({"TableName": "CertRotationDevices", "Key": key, "ConditionExpression": "CrState <> :s",
                        "ExpressionAttributeValues": {":s": {"S": "CR_THING_CREATED"}}});
    assert_eq!(
        code(call(&f, "DeleteItem", delete).await),
        "ConditionalCheckFailedException"
    );
    assert!(f
        .ctx
        .cloud
        .store()
        .get_item("CertRotationDevices", "D1")
        .unwrap()
        .is_some());
    let deleted = call(
        &f,
        "DeleteItem",
        json!({"TableName": "CertRotationDevices", "Key": key, "ReturnValues": "ALL_OLD"}),
    )
    .await
    .unwrap();
    assert_eq!(deleted["Attributes"]["Attempts"], json!({"N": "2"}));
    // Updating a missing item creates it from its key; a key attribute cannot change.
    call(
        &f,
        "UpdateItem",
        json!({"TableName": "CertRotationDevices", "Key": {"SerialNumber": {"S": "NEW"}}}),
    )
    .await
    .unwrap();
    assert!(f
        .ctx
        .cloud
        .store()
        .get_item("CertRotationDevices", "NEW")
        .unwrap()
        .is_some());
    let key_change = call(&f, "UpdateItem", json!({
        "TableName": "CertRotationDevices", "Key": {"SerialNumber": {"S": "NEW"}},
        "UpdateExpression": "SET SerialNumber = :s", "ExpressionAttributeValues": {":s": {"S": "X"}}
    }))
    .await
    .unwrap_err();
    assert!(
        key_change.message.contains("part of the key"),
        "{}",
        key_change.message
    );
}

#[tokio::test]
async fn scans_page_by_limit_and_filter_and_queries_find_the_key() {
    let f = fixture();
    devices_table(&f).await;
    let requests: Vec<Value> = (0..7)
        .map(|i| json!({"PutRequest": {"Item": {"SerialNumber": {"S": format!("S{i}")}, "N": {"N": i.to_string()}}}}))
        .collect();
    call(
        &f,
        "BatchWriteItem",
        json!({"RequestItems": {"CertRotationDevices": requests}}),
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    let mut start = Value::Null;
    let mut pages = 0;
    loop {
        let page = call(&f, "Scan", json!({"TableName": "CertRotationDevices", "Limit": 3, "ExclusiveStartKey": start,
                                           "FilterExpression": "N >= :two", "ExpressionAttributeValues": {":two": {"N": "2"}}}))
            .await
            .unwrap();
        pages += 1;
        assert!(page["ScannedCount"].as_u64().unwrap() <= 3);
        for item in page["Items"].as_array().unwrap() {
            seen.push(item["SerialNumber"]["S"].as_str().unwrap().to_string());
        }
        match page.get("LastEvaluatedKey") {
            Some(key) => start = key.clone(),
            None => break,
        }
    }
    assert_eq!(seen, vec!["S2", "S3", "S4", "S5", "S6"]);
    assert!(pages >= 3, "{pages}");
    let count = call(
        &f,
        "Scan",
        json!({"TableName": "CertRotationDevices", "Select": "COUNT"}),
    )
    .await
    .unwrap();
    assert_eq!(count, json!({"Count": 7, "ScannedCount": 7}));
    let found = call(
        &f,
        "Query",
        json!({"TableName": "CertRotationDevices", "KeyConditionExpression": "SerialNumber = :s",
                                         "ExpressionAttributeValues": {":s": {"S": "S4"}}}),
    )
    .await
    .unwrap();
    assert_eq!(found["Count"], 1);
    assert_eq!(found["Items"][0]["N"], json!({"N": "4"}));
    let wrong = call(
        &f,
        "Query",
        json!({"TableName": "CertRotationDevices", "KeyConditionExpression": "N = :s",
                                         "ExpressionAttributeValues": {":s": {"S": "S4"}}}),
    )
    .await
    .unwrap_err();
    assert!(
        wrong
            .message
            .contains("missed key schema element: SerialNumber"),
        "{}",
        wrong.message
    );
}

#[tokio::test]
async fn a_batch_is_all_or_nothing() {
    let f = fixture();
    devices_table(&f).await;
    let put = |s: &str| json!({"PutRequest": {"Item": {"SerialNumber": {"S": s}}}});
    let bad = json!({"RequestItems": {"CertRotationDevices": [put("B1"), {"PutRequest": {"Item": {"Other": {"S": "x"}}}}]}});
    let err = call(&f, "BatchWriteItem", bad).await.unwrap_err();
    assert!(
        err.message.contains("Missing the key SerialNumber"),
        "{}",
        err.message
    );
    assert!(f
        .ctx
        .cloud
        .store()
        .get_item("CertRotationDevices", "B1")
        .unwrap()
        .is_none());
    let dup = json!({"RequestItems": {"CertRotationDevices": [put("B1"), {"DeleteRequest": {"Key": {"SerialNumber": {"S": "B1"}}}}]}});
    assert!(call(&f, "BatchWriteItem", dup)
        .await
        .unwrap_err()
        .message
        .contains("duplicates"));
    let many: Vec<Value> = (0..26).map(|i| put(&format!("M{i}"))).collect();
    assert!(call(
        &f,
        "BatchWriteItem",
        json!({"RequestItems": {"CertRotationDevices": many}})
    )
    .await
    .unwrap_err()
    .message
    .contains("Too many items"));
    let unknown =
        json!({"RequestItems": {"CertRotationDevices": [put("B2")], "NoSuchTable": [put("B3")]}});
    assert_eq!(
        code(call(&f, "BatchWriteItem", unknown).await),
        "ResourceNotFoundException"
    );
    assert!(f
        .ctx
        .cloud
        .store()
        .get_item("CertRotationDevices", "B2")
        .unwrap()
        .is_none());
    call(
        &f,
        "BatchWriteItem",
        json!({"RequestItems": {"CertRotationDevices": [put("B1"), put("B2")]}}),
    )
    .await
    .unwrap();
    let got = call(
        &f,
        "BatchGetItem",
        json!({"RequestItems": {"CertRotationDevices": {"Keys": [
        {"SerialNumber": {"S": "B1"}}, {"SerialNumber": {"S": "B9"}}]}}}),
    )
    .await
    .unwrap();
    assert_eq!(
        got["Responses"]["CertRotationDevices"],
        json!([{"SerialNumber": {"S": "B1"}}])
    );
}

#[tokio::test]
async fn malformed_requests_are_400s_not_panics() {
    let f = fixture();
    devices_table(&f).await;
    for (op, body) in [
        (
            "PutItem",
            json!({"TableName": "CertRotationDevices", "Item": {"SerialNumber": {"N": "1e99999"}}}),
        ),
        (
            "PutItem",
            json!({"TableName": "CertRotationDevices", "Item": {"SerialNumber": {"S": ""}}}),
        ),
        (
            "PutItem",
            json!({"TableName": "CertRotationDevices", "Item": {"SerialNumber": {"N": "1"}}}),
        ),
        (
            "PutItem",
            json!({"TableName": "CertRotationDevices", "Item": "not a map"}),
        ),
        ("PutItem", json!({"TableName": 5, "Item": {}})),
        ("PutItem", json!({"TableName": "CertRotationDevices"})),
        (
            "GetItem",
            json!({"TableName": "CertRotationDevices", "Key": {"SerialNumber": {"S": "x"}, "Extra": {"S": "y"}}}),
        ),
        (
            "GetItem",
            json!({"TableName": "CertRotationDevices", "Key": {"SerialNumber": {"S": "x"}}, "ExpressionAttributeNames": {"#u": "x"}}),
        ),
        (
            "Scan",
            json!({"TableName": "CertRotationDevices", "Limit": 0}),
        ),
        (
            "Scan",
            json!({"TableName": "CertRotationDevices", "Limit": 1e300}),
        ),
        (
            "Scan",
            json!({"TableName": "CertRotationDevices", "FilterExpression": "a = = b"}),
        ),
        (
            "Scan",
            json!({"TableName": "CertRotationDevices", "ScanFilter": {}}),
        ),
        (
            "UpdateItem",
            json!({"TableName": "CertRotationDevices", "Key": {"SerialNumber": {"S": "x"}}, "UpdateExpression": "SET"}),
        ),
        (
            "UpdateItem",
            json!({"TableName": "CertRotationDevices", "Key": {"SerialNumber": {"S": "x"}}, "ReturnValues": "SOME"}),
        ),
        ("Query", json!({"TableName": "CertRotationDevices"})),
        ("BatchWriteItem", json!({"RequestItems": []})),
        (
            "BatchWriteItem",
            json!({"RequestItems": {"CertRotationDevices": [{}]}}),
        ),
        ("ListTables", json!({"Limit": -1})),
    ] {
        let err = call(&f, op, body.clone()).await.unwrap_err();
        assert_eq!(err.status, 400, "{op} {body}: {err:?}");
        assert!(!err.message.is_empty());
    }
    for body in [&b"{"[..], b"[1,2]", b"\"text\"", b"\xff\xfe"] {
        let err = raw(&f, "PutItem", Bytes::from_static(body))
            .await
            .unwrap_err();
        assert_eq!(err.status, 400, "{body:?}");
    }
    let unknown = request("DynamoDB_20120810.TransactWriteItems", Bytes::new());
    assert_eq!(
        DynamoDb.operation(&unknown).unwrap_err().code,
        "UnknownOperationException"
    );
    let other = request("AmazonSSM.GetParameter", Bytes::new());
    assert_eq!(
        DynamoDb.operation(&other).unwrap_err().code,
        "UnknownOperationException"
    );
    assert_eq!(
        f.ctx
            .cloud
            .store()
            .scan("CertRotationDevices")
            .unwrap()
            .len(),
        0
    );
}
