//! SSM operations called as the server calls them: awsJson 1.1 requests
//! on a local cloud in a temp dir.

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
        service: "ssm".into(),
        method: http::Method::POST,
        path: "/".into(),
        query: Vec::new(),
        headers,
        body,
    }
}

async fn call(f: &Fixture, op: &str, body: Value) -> Result<Value, ApiError> {
    let req = request(
        &format!("AmazonSSM.{op}"),
        Bytes::from(serde_json::to_vec(&body).unwrap()),
    );
    let op = Ssm.operation(&req)?;
    let answer = Ssm.call(&f.ctx, op, req).await?;
    assert_eq!(answer.status, 200);
    Ok(serde_json::from_slice(&answer.body).unwrap())
}

const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n";

#[tokio::test]
async fn a_secure_string_is_plaintext_only_with_decryption() {
    let f = fixture();
    let put = json!({"Name": "cr-ca-key-abc", "Value": KEY, "Type": "SecureString"});
    assert_eq!(
        call(&f, "PutParameter", put.clone()).await.unwrap(),
        json!({"Version": 1, "Tier": "Standard"})
    );
    let again = call(&f, "PutParameter", put.clone()).await.unwrap_err();
    assert_eq!(
        (again.status, again.code.as_str()),
        (400, "ParameterAlreadyExists")
    );
    let mut overwrite = put.clone();
    overwrite["Overwrite"] = json!(true);
    assert_eq!(
        call(&f, "PutParameter", overwrite).await.unwrap()["Version"],
        2
    );
    let clear = call(
        &f,
        "GetParameter",
        json!({"Name": "cr-ca-key-abc", "WithDecryption": true}),
    )
    .await
    .unwrap();
    assert_eq!(clear["Parameter"]["Value"], KEY);
    assert_eq!(clear["Parameter"]["Type"], "SecureString");
    assert_eq!(clear["Parameter"]["Version"], 2);
    assert_eq!(
        clear["Parameter"]["ARN"],
        "arn:aws:ssm:us-east-1:123456789012:parameter/cr-ca-key-abc"
    );
    let hidden = call(&f, "GetParameter", json!({"Name": "cr-ca-key-abc"}))
        .await
        .unwrap();
    let blob = hidden["Parameter"]["Value"].as_str().unwrap();
    assert!(!blob.contains("PRIVATE KEY"));
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .unwrap();
    assert!(!sealed.windows(11).any(|w| w == b"PRIVATE KEY"));
    // The rotation function's own reader gets the same plaintext.
    let p = f
        .ctx
        .cloud
        .store()
        .get_parameter("cr-ca-key-abc", true)
        .unwrap()
        .unwrap();
    assert_eq!(p.value, KEY);
    // A name, an ARN and the current version select it; an older version does not.
    let by_arn = call(&f, "GetParameter", json!({"Name": "arn:aws:ssm:us-east-1:123456789012:parameter/cr-ca-key-abc:2", "WithDecryption": true}))
        .await
        .unwrap();
    assert_eq!(by_arn["Parameter"]["Value"], KEY);
    let old = call(&f, "GetParameter", json!({"Name": "cr-ca-key-abc:1"}))
        .await
        .unwrap_err();
    assert_eq!(old.code, "ParameterVersionNotFound");
}

#[tokio::test]
async fn jitpilots_own_ca_key_is_readable_through_the_api() {
    let f = fixture();
    // As `jitpilot init` stores it.
    f.ctx
        .cloud
        .store()
        .put_parameter(
            "cr-ca-key-0123",
            KEY,
            crate::model::ParameterType::SecureString,
            true,
        )
        .unwrap();
    let got = call(
        &f,
        "GetParameter",
        json!({"Name": "cr-ca-key-0123", "WithDecryption": true}),
    )
    .await
    .unwrap();
    assert_eq!(got["Parameter"]["Value"], KEY);
}

#[tokio::test]
async fn parameters_are_listed_filtered_paged_and_deleted() {
    let f = fixture();
    for (name, kind) in [
        ("/jitpilot/a", "String"),
        ("/jitpilot/b/c", "StringList"),
        ("cr-ca-key-1", "SecureString"),
        ("cr-ca-key-2", "SecureString"),
    ] {
        call(
            &f,
            "PutParameter",
            json!({"Name": name, "Value": "v1,v2", "Type": kind}),
        )
        .await
        .unwrap();
    }
    let begins = call(&f, "DescribeParameters", json!({"ParameterFilters": [{"Key": "Name", "Option": "BeginsWith", "Values": ["cr-ca-key-"]}]}))
        .await
        .unwrap();
    let names: Vec<&str> = begins["Parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cr-ca-key-1", "cr-ca-key-2"]);
    assert_eq!(begins["Parameters"][0]["KeyId"], "alias/aws/ssm");
    assert!(begins["Parameters"][0].get("Value").is_none());
    let equals = call(
        &f,
        "DescribeParameters",
        json!({"ParameterFilters": [{"Key": "Name", "Values": ["/jitpilot/a"]}]}),
    )
    .await
    .unwrap();
    assert_eq!(equals["Parameters"].as_array().unwrap().len(), 1);
    let mut all = Vec::new();
    let mut token = Value::Null;
    loop {
        let page = call(
            &f,
            "DescribeParameters",
            json!({"MaxResults": 3, "NextToken": token}),
        )
        .await
        .unwrap();
        all.extend(
            page["Parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["Name"].clone()),
        );
        match page.get("NextToken") {
            Some(t) => token = t.clone(),
            None => break,
        }
    }
    assert_eq!(all.len(), 4);
    let bad_token = call(&f, "DescribeParameters", json!({"NextToken": "!!"}))
        .await
        .unwrap_err();
    assert_eq!(bad_token.code, "InvalidNextToken");
    let bad_key = call(
        &f,
        "DescribeParameters",
        json!({"ParameterFilters": [{"Key": "Colour", "Values": ["x"]}]}),
    )
    .await
    .unwrap_err();
    assert_eq!(bad_key.code, "InvalidFilterKey");
    let list = call(&f, "GetParameter", json!({"Name": "/jitpilot/b/c"}))
        .await
        .unwrap();
    assert_eq!(list["Parameter"]["Type"], "StringList");
    assert_eq!(list["Parameter"]["Value"], "v1,v2");
    let by_path = call(&f, "GetParametersByPath", json!({"Path": "/jitpilot"}))
        .await
        .unwrap();
    assert_eq!(by_path["Parameters"].as_array().unwrap().len(), 1);
    let recursive = call(
        &f,
        "GetParametersByPath",
        json!({"Path": "/jitpilot", "Recursive": true}),
    )
    .await
    .unwrap();
    assert_eq!(recursive["Parameters"].as_array().unwrap().len(), 2);
    let several = call(
        &f,
        "GetParameters",
        json!({"Names": ["cr-ca-key-1", "nope"], "WithDecryption": true}),
    )
    .await
    .unwrap();
    assert_eq!(several["Parameters"][0]["Value"], "v1,v2");
    assert_eq!(several["InvalidParameters"], json!(["nope"]));
    assert_eq!(
        call(&f, "DeleteParameter", json!({"Name": "cr-ca-key-1"}))
            .await
            .unwrap(),
        json!({})
    );
    let gone = call(&f, "DeleteParameter", json!({"Name": "cr-ca-key-1"}))
        .await
        .unwrap_err();
    assert_eq!(
        (gone.status, gone.code.as_str()),
        (400, "ParameterNotFound")
    );
    let missing = call(&f, "GetParameter", json!({"Name": "cr-ca-key-1"}))
        .await
        .unwrap_err();
    assert_eq!(missing.code, "ParameterNotFound");
    let deleted = call(
        &f,
        "DeleteParameters",
        json!({"Names": ["cr-ca-key-2", "nope"]}),
    )
    .await
    .unwrap();
    assert_eq!(
        deleted,
        json!({"DeletedParameters": ["cr-ca-key-2"], "InvalidParameters": ["nope"]})
    );
}

#[tokio::test]
async fn bad_requests_are_refused_with_what_is_wrong() {
    let f = fixture();
    for (op, body, expected) in [
        (
            "PutParameter",
            json!({"Name": "x", "Value": "v"}),
            "type is required",
        ),
        (
            "PutParameter",
            json!({"Name": "x", "Value": "v", "Type": "Secret"}),
            "enum value set",
        ),
        (
            "PutParameter",
            json!({"Name": "a/b", "Value": "v", "Type": "String"}),
            "start it with /",
        ),
        (
            "PutParameter",
            json!({"Name": "aws-thing", "Value": "v", "Type": "String"}),
            "prefixed",
        ),
        (
            "PutParameter",
            json!({"Name": "x y", "Value": "v", "Type": "String"}),
            "may hold only",
        ),
        (
            "PutParameter",
            json!({"Name": "x", "Value": "", "Type": "String"}),
            "length",
        ),
        (
            "PutParameter",
            json!({"Name": "x", "Value": "v".repeat(4097), "Type": "String"}),
            "maximum",
        ),
        (
            "PutParameter",
            json!({"Name": "x", "Value": 5, "Type": "String"}),
            "must be a string",
        ),
        (
            "PutParameter",
            json!({"Name": "x", "Value": "v", "Type": "String", "Overwrite": "yes"}),
            "true or false",
        ),
        (
            "PutParameter",
            json!({"Value": "v", "Type": "String"}),
            "Name is missing",
        ),
        ("GetParameters", json!({"Names": []}), "between 1 and 10"),
        (
            "DescribeParameters",
            json!({"MaxResults": 51}),
            "between 1 and 50",
        ),
    ] {
        let err = call(&f, op, body.clone()).await.unwrap_err();
        assert_eq!(err.status, 400, "{body}");
        assert!(err.message.contains(expected), "{body}: {}", err.message);
    }
    let req = request("AmazonSSM.PutParameter", Bytes::from_static(b"{not json"));
    assert_eq!(
        Ssm.call(&f.ctx, "PutParameter", req)
            .await
            .unwrap_err()
            .code,
        "SerializationException"
    );
    let unknown = request("AmazonSSM.LabelParameterVersion", Bytes::new());
    assert_eq!(
        Ssm.operation(&unknown).unwrap_err().code,
        "UnknownOperationException"
    );
    assert!(f.ctx.cloud.store().list_parameters().unwrap().is_empty());
}
