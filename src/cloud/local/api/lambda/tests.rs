//! Lambda operations called as the server calls them: restJson requests on
//! a local cloud whose stack is deployed, with a stand-in function under
//! the stack function's handler (and, once, the real rotation function).

use super::*;
use crate::cloud::events::EventBus;
use crate::cloud::local::functions::{BuiltinFunction, FunctionRegistry, CERT_ROTATION_HANDLER};
use crate::cloud::local::LocalCloud;
use crate::rotation::Publisher;
use bytes::Bytes;
use serde_json::json;
use std::sync::{Arc, Mutex};

/// The stack's function, as `jitpilot deploy` names it.
const NAME: &str = "CertRotation-cert-rotation";

#[derive(Default)]
struct Recorder(Mutex<Vec<(String, Vec<u8>)>>);

impl Publisher for Recorder {
    fn publish(&self, topic: &str, payload: Vec<u8>) {
        self.0.lock().unwrap().push((topic.into(), payload));
    }
}

/// Echoes its event, publishes it, fails on `{"fail": …}`, hangs on `{"hang": true}`.
struct Echo;

#[async_trait::async_trait]
impl BuiltinFunction for Echo {
    async fn invoke(
        &self,
        event: Value,
        _environment: serde_json::Map<String, Value>,
        publisher: Arc<dyn Publisher>,
    ) -> Result<Value, String> {
        if let Some(why) = event.get("fail").and_then(Value::as_str) {
            return Err(why.to_string());
        }
        if event.get("hang").is_some() {
            std::future::pending::<()>().await;
        }
        publisher.publish("echo", serde_json::to_vec(&event).unwrap());
        Ok(json!({"echo": event}))
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    ctx: ApiContext,
    recorder: Arc<Recorder>,
}

fn fixture_with(functions: impl FnOnce(&LocalCloud) -> FunctionRegistry) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let cloud = LocalCloud::open(dir.path(), EventBus::default()).unwrap();
    cloud.deploy_sync().unwrap();
    let recorder = Arc::new(Recorder::default());
    let ctx = ApiContext {
        functions: functions(&cloud),
        cloud,
        publisher: Some(recorder.clone()),
        mqtt_addr: None,
        api_addr: "127.0.0.1:4566".parse().unwrap(),
    };
    Fixture {
        _dir: dir,
        ctx,
        recorder,
    }
}

fn fixture() -> Fixture {
    fixture_with(|_| {
        let mut registry = FunctionRegistry::new();
        registry.register(CERT_ROTATION_HANDLER, Arc::new(Echo));
        registry
    })
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: Bytes) -> ApiRequest {
    let mut map = http::HeaderMap::new();
    for (k, v) in headers {
        map.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    ApiRequest {
        service: "lambda".into(),
        method: method.parse().unwrap(),
        path: path.into(),
        query: form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        headers: map,
        body,
    }
}

async fn send(f: &Fixture, req: ApiRequest) -> Result<ApiResponse, ApiError> {
    let op = Lambda.operation(&req)?;
    Lambda.call(&f.ctx, op, req).await
}

async fn json_call(f: &Fixture, method: &str, path: &str, body: Value) -> Result<Value, ApiError> {
    let answer = send(
        f,
        request(
            method,
            path,
            &[],
            Bytes::from(serde_json::to_vec(&body).unwrap()),
        ),
    )
    .await?;
    assert_eq!(answer.status, 200);
    Ok(serde_json::from_slice(&answer.body).unwrap())
}

fn header<'a>(answer: &'a ApiResponse, name: &str) -> Option<&'a str> {
    answer
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A minimal zip: one empty archive's end record.
const EMPTY_ZIP: &[u8] = b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";

#[tokio::test]
async fn the_stacks_function_is_described_from_its_template() {
    let f = fixture();
    let config = json_call(
        &f,
        "GET",
        &format!("/2015-03-31/functions/{NAME}/configuration"),
        Value::Null,
    )
    .await
    .unwrap();
    assert_eq!(config["FunctionName"], NAME);
    assert_eq!(
        config["FunctionArn"],
        format!("arn:aws:lambda:us-east-1:123456789012:function:{NAME}")
    );
    assert_eq!(config["Runtime"], "provided.al2023");
    assert_eq!(config["Handler"], "bootstrap");
    assert_eq!(config["Timeout"], 30);
    assert_eq!(config["MemorySize"], 256);
    assert_eq!(config["State"], "Active");
    assert!(
        config["Environment"]["Variables"]["DEVICE_TABLE"].is_string(),
        "{config}"
    );
    // By ARN, and through GetFunction and ListFunctions.
    let arn = format!("arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3A{NAME}");
    let by_arn = json_call(
        &f,
        "GET",
        &format!("/2015-03-31/functions/{arn}"),
        Value::Null,
    )
    .await
    .unwrap();
    assert_eq!(by_arn["Configuration"]["FunctionName"], NAME);
    let listed = json_call(&f, "GET", "/2015-03-31/functions/", Value::Null)
        .await
        .unwrap();
    assert_eq!(listed["Functions"][0]["FunctionName"], NAME);
    let missing = json_call(&f, "GET", "/2015-03-31/functions/nope", Value::Null)
        .await
        .unwrap_err();
    assert_eq!(
        (missing.status, missing.code.as_str()),
        (404, "ResourceNotFoundException")
    );
    let version = json_call(
        &f,
        "GET",
        &format!("/2015-03-31/functions/{NAME}?Qualifier=3"),
        Value::Null,
    )
    .await
    .unwrap_err();
    assert_eq!(version.status, 404);
    let unknown = request(
        "DELETE",
        &format!("/2015-03-31/functions/{NAME}"),
        &[],
        Bytes::new(),
    );
    assert_eq!(
        Lambda.operation(&unknown).unwrap_err().code,
        "UnknownOperationException"
    );
}

#[tokio::test]
async fn code_and_configuration_updates_are_kept() {
    let f = fixture();
    let zip = base64::engine::general_purpose::STANDARD.encode(EMPTY_ZIP);
    let updated = json_call(
        &f,
        "PUT",
        &format!("/2015-03-31/functions/{NAME}/code"),
        json!({"ZipFile": zip}),
    )
    .await
    .unwrap();
    assert_eq!(updated["CodeSize"], EMPTY_ZIP.len());
    let sha = {
        use sha2::Digest;
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(EMPTY_ZIP))
    };
    assert_eq!(updated["CodeSha256"], sha);
    let package = f.ctx.cloud.store().function_package(NAME).unwrap().unwrap();
    assert_eq!(package.zip.as_deref(), Some(EMPTY_ZIP));
    for (body, needle) in [
        (json!({"ZipFile": "bm90IGEgemlw"}), "Could not unzip"),
        (json!({"ZipFile": "%%%"}), "base64"),
        (
            json!({"S3Bucket": "b", "S3Key": "k"}),
            "does not read code from S3",
        ),
        (json!({}), "provide a source"),
    ] {
        let err = json_call(
            &f,
            "PUT",
            &format!("/2015-03-31/functions/{NAME}/code"),
            body.clone(),
        )
        .await
        .unwrap_err();
        assert_eq!(
            (err.status, err.code.as_str()),
            (400, "InvalidParameterValueException"),
            "{body}"
        );
        assert!(err.message.contains(needle), "{body}: {}", err.message);
    }
    let config = json_call(
        &f,
        "PUT",
        &format!("/2015-03-31/functions/{NAME}/configuration"),
        json!({
            "Timeout": 60, "MemorySize": 512, "Handler": "app.handler", "Runtime": "python3.12",
            "Environment": {"Variables": {"CsrKeyReuse": "warn"}}
        }),
    )
    .await
    .unwrap();
    assert_eq!(config["Timeout"], 60);
    assert_eq!(config["Runtime"], "python3.12");
    assert_eq!(config["Handler"], "app.handler");
    assert_eq!(
        config["Environment"]["Variables"],
        json!({"CsrKeyReuse": "warn"})
    );
    assert_eq!(config["CodeSha256"], sha);
    // The stack's function record carries the new environment (the rules engine's view).
    let function = f.ctx.cloud.store().get_function(NAME).unwrap().unwrap();
    assert_eq!(function.environment["CsrKeyReuse"], "warn");
    for (body, needle) in [
        (json!({"Timeout": 0}), "between 1 and 900"),
        (json!({"MemorySize": "big"}), "must be a number"),
        (
            json!({"Environment": {"Variables": {"AWS_REGION": "x"}}}),
            "reserved keys",
        ),
        (
            json!({"Environment": {"Variables": {"1bad": "x"}}}),
            "not valid",
        ),
        (json!({"RevisionId": "stale"}), "Revision Id"),
    ] {
        let err = json_call(
            &f,
            "PUT",
            &format!("/2015-03-31/functions/{NAME}/configuration"),
            body.clone(),
        )
        .await
        .unwrap_err();
        assert!(err.message.contains(needle), "{body}: {}", err.message);
        assert!(err.status == 400 || err.status == 412, "{body}");
    }
    let after = json_call(
        &f,
        "GET",
        &format!("/2015-03-31/functions/{NAME}/configuration"),
        Value::Null,
    )
    .await
    .unwrap();
    assert_eq!(after["Timeout"], 60);
}

#[tokio::test]
async fn invoke_answers_the_result_or_the_functions_error() {
    let f = fixture();
    let path = format!("/2015-03-31/functions/{NAME}/invocations");
    let ok = send(
        &f,
        request("POST", &path, &[], Bytes::from_static(br#"{"hello": 1}"#)),
    )
    .await
    .unwrap();
    assert_eq!(ok.status, 200);
    assert!(header(&ok, "X-Amz-Function-Error").is_none());
    assert_eq!(
        serde_json::from_slice::<Value>(&ok.body).unwrap(),
        json!({"echo": {"hello": 1}})
    );
    assert_eq!(f.recorder.0.lock().unwrap().len(), 1);
    let failed = send(
        &f,
        request(
            "POST",
            &path,
            &[],
            Bytes::from_static(br#"{"fail": "no such serial"}"#),
        ),
    )
    .await
    .unwrap();
    assert_eq!(failed.status, 200);
    assert_eq!(header(&failed, "X-Amz-Function-Error"), Some("Unhandled"));
    let error: Value = serde_json::from_slice(&failed.body).unwrap();
    assert_eq!(error["errorMessage"], "no such serial");
    let queued = send(
        &f,
        request(
            "POST",
            &path,
            &[("x-amz-invocation-type", "Event")],
            Bytes::from_static(b"{}"),
        ),
    )
    .await
    .unwrap();
    assert_eq!(queued.status, 202);
    let dry = send(
        &f,
        request(
            "POST",
            &path,
            &[("x-amz-invocation-type", "DryRun")],
            Bytes::new(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(dry.status, 204);
    let bad = send(
        &f,
        request("POST", &path, &[], Bytes::from_static(b"{nope")),
    )
    .await
    .unwrap_err();
    assert_eq!(
        (bad.status, bad.code.as_str()),
        (400, "InvalidRequestContentException")
    );
    let kind = send(
        &f,
        request(
            "POST",
            &path,
            &[("x-amz-invocation-type", "Later")],
            Bytes::new(),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(kind.code, "InvalidParameterValueException");
    let missing = send(
        &f,
        request(
            "POST",
            "/2015-03-31/functions/nope/invocations",
            &[],
            Bytes::new(),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(missing.status, 404);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_function_times_out_as_lambda_reports_it() {
    let f = fixture();
    json_call(
        &f,
        "PUT",
        &format!("/2015-03-31/functions/{NAME}/configuration"),
        json!({"Timeout": 2}),
    )
    .await
    .unwrap();
    let path = format!("/2015-03-31/functions/{NAME}/invocations");
    let answer = send(
        &f,
        request("POST", &path, &[], Bytes::from_static(br#"{"hang": true}"#)),
    )
    .await
    .unwrap();
    assert_eq!(header(&answer, "X-Amz-Function-Error"), Some("Unhandled"));
    let error: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(error["errorMessage"], "Task timed out after 2.00 seconds");
}

#[tokio::test]
async fn the_rotation_function_runs_through_invoke() {
    let f = fixture_with(|cloud| {
        crate::cloud::local::functions::builtin_functions(
            cloud.store().clone(),
            cloud.bus().clone(),
            crate::cloud::local::functions::rotation_config(cloud.fleet()),
        )
    });
    f.ctx.cloud.init_sync(0).unwrap();
    // A JITP registration event for a certificate the registry does not
    // have: the real function runs and answers in its own words.
    let event = json!({
        "data": {"certificateId": "0".repeat(64), "caCertificateId": "1".repeat(64)},
        "topic": format!("$aws/events/certificates/registered/{}", "1".repeat(64)),
    });
    let path = format!("/2015-03-31/functions/{NAME}/invocations");
    let answer = send(
        &f,
        request(
            "POST",
            &path,
            &[],
            Bytes::from(serde_json::to_vec(&event).unwrap()),
        ),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200);
    let body: Value = serde_json::from_slice(&answer.body).unwrap();
    assert!(
        body.get("outcome").is_some() || body.get("errorMessage").is_some(),
        "{body}"
    );
}
