//! jitpilot's own rotation function — this crate's `bootstrap`, built for
//! the `provided.al2023` runtime — run for real by the local cloud through
//! the Lambda Runtime API, as AWS Lambda runs it: `lambda_runtime` polls
//! `/invocation/next` and answers on `/response` or `/error`.

use bytes::Bytes;
use jitpilot::cloud::local::lambda_runtime::{FunctionConfig, InvokeError, LocalLambda};
use jitpilot::cloud::EventBus;
use jitpilot::model::Function;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Generous: the machine is shared and busy.
const WAIT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn the_bootstrap_answers_through_the_runtime_api() {
    let dir = tempfile::tempdir().unwrap();
    let lambda = LocalLambda::new(dir.path(), EventBus::new(64), None);
    let config = FunctionConfig {
        runtime: "provided.al2023".into(),
        handler: "bootstrap".into(),
        timeout_secs: 30,
        memory_mb: 256,
        // No DescribeEndpoint at cold start: nothing here reaches AWS.
        environment: BTreeMap::from([("IOT_DATA_ENDPOINT".into(), "127.0.0.1".into())]),
    };
    let name = "CertRotation-cert-rotation";
    let code = lambda
        .code_store()
        .put_path(name, &config, Path::new(env!("CARGO_BIN_EXE_bootstrap")))
        .unwrap();
    let function = Function {
        name: name.into(),
        arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{name}"),
        handler: "cert-rotation".into(),
        role_arn: "arn:aws:iam::123456789012:role/r".into(),
        environment: serde_json::Map::new(),
    };
    let invoke = |event: &'static str| {
        let lambda = lambda.clone();
        let (function, code) = (function.clone(), code.clone());
        async move {
            tokio::time::timeout(
                WAIT,
                lambda.invoke(&function, &code, Bytes::from_static(event.as_bytes())),
            )
            .await
            .expect("the invocation ends")
        }
    };
    // Not the rule's SQL output: the function's own error, posted to
    // /invocation/{id}/error by lambda_runtime.
    match invoke("5").await {
        Err(InvokeError::Function(e)) => {
            assert!(
                e.error_message
                    .contains("the event is not the rule's SQL output"),
                "{e}"
            );
        }
        other => panic!("expected the function's error, got {other:?}"),
    }
    // The same warm process answers an event it can read but refuses
    // (no topic): a response on /invocation/{id}/response.
    let answer = invoke("{\"data\": {}}").await;
    let body = answer.unwrap_or_else(|e| panic!("expected a response, got {e}"));
    let json: Value = serde_json::from_slice(&body).expect("JSON");
    assert!(json.is_object(), "{json}");
    lambda.shutdown().await;
}
