//! Real functions through the Runtime API: python handlers
//! (`tests/py/lambda_handler.py`) run by awslambdaric from PyPI, as AWS
//! Lambda's python runtime runs them. Needs `python3 -m pip install
//! awslambdaric` (scripts/test installs it).

use super::config::FunctionConfig;
use super::*;
use crate::cloud::local::functions::{BuiltinFunction, FunctionRegistry};
use crate::model::Function;
use crate::rotation::Publisher;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

/// Generous: the machine is shared and busy.
const WAIT: Duration = Duration::from_secs(120);

struct Fixture {
    _dir: tempfile::TempDir,
    lambda: LocalLambda,
    bus: EventBus,
    data_dir: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let bus = EventBus::new(256);
    Fixture {
        lambda: LocalLambda::new(&data_dir, bus.clone(), None),
        bus,
        data_dir,
        _dir: dir,
    }
}

fn function(name: &str, handler: &str) -> Function {
    Function {
        name: name.into(),
        arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{name}"),
        handler: handler.into(),
        role_arn: "arn:aws:iam::123456789012:role/r".into(),
        environment: serde_json::Map::from_iter([("GREETING".to_string(), json!("hello"))]),
    }
}

fn python_config(handler: &str, timeout_secs: u64) -> FunctionConfig {
    FunctionConfig {
        runtime: "python3.12".into(),
        handler: handler.into(),
        timeout_secs,
        memory_mb: 128,
        environment: BTreeMap::from([("GREETING".into(), "stored".into())]),
    }
}

/// Stores the test handlers as `name`'s code.
fn store_python(fx: &Fixture, name: &str, handler: &str, timeout_secs: u64) -> StoredCode {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/lambda_handler.py");
    let pkg = fx.data_dir.join("src").join(name);
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::copy(src, pkg.join("lambda_handler.py")).unwrap();
    fx.lambda
        .code_store()
        .put_path(name, &python_config(handler, timeout_secs), &pkg)
        .unwrap()
}

async fn invoke(
    fx: &Fixture,
    f: &Function,
    code: &StoredCode,
    event: Value,
) -> Result<Value, InvokeError> {
    let out = tokio::time::timeout(
        WAIT,
        fx.lambda.invoke(f, code, Bytes::from(event.to_string())),
    )
    .await
    .expect("the invocation ends");
    out.map(|body| serde_json::from_slice(&body).expect("JSON response"))
}

#[tokio::test]
async fn a_python_handler_runs_under_awslambdaric_with_lambdas_environment() {
    let fx = fixture();
    std::fs::write(fx.data_dir.join(host::API_ADDR_FILE), "127.0.0.1:4566").unwrap();
    std::fs::write(
        fx.data_dir.join(host::API_CREDENTIALS_FILE),
        r#"{"accessKeyId":"AKIALOCALTEST","secretAccessKey":"local-secret"}"#,
    )
    .unwrap();
    let f = function("echo-fn", "lambda_handler.echo");
    let code = store_python(&fx, "echo-fn", "lambda_handler.echo", 30);
    let out = invoke(&fx, &f, &code, json!({"serial": "DEVICE-1"}))
        .await
        .unwrap();
    assert_eq!(out["event"], json!({"serial": "DEVICE-1"}));
    assert_eq!(out["function"], "echo-fn");
    assert_eq!(out["request_id"].as_str().unwrap().len(), 36);
    let remaining = out["remaining_ms"].as_i64().unwrap();
    assert!(remaining > 0 && remaining <= 30_000, "{remaining}");
    let env = &out["env"];
    // The deployed stack's variables win over the stored ones.
    assert_eq!(env["GREETING"], "hello");
    assert_eq!(env["AWS_REGION"], "us-east-1");
    assert_eq!(env["AWS_DEFAULT_REGION"], "us-east-1");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "echo-fn");
    assert_eq!(env["_HANDLER"], "lambda_handler.echo");
    assert_eq!(
        env["LAMBDA_TASK_ROOT"],
        code.task_root().display().to_string()
    );
    assert_eq!(env["AWS_ENDPOINT_URL"], "http://127.0.0.1:4566");
    assert_eq!(env["AWS_ACCESS_KEY_ID"], "AKIALOCALTEST");
    assert_eq!(env["AWS_SECRET_ACCESS_KEY"], "local-secret");
    // Warm: the second invocation runs in the same process.
    let again = invoke(&fx, &f, &code, json!({"n": 2})).await.unwrap();
    assert_eq!(again["pid"], out["pid"]);
    fx.lambda.shutdown().await;
}

#[tokio::test]
async fn a_raised_exception_is_the_invocations_error_and_the_process_stays_warm() {
    let fx = fixture();
    let f = function("fail-fn", "lambda_handler.fail");
    let code = store_python(&fx, "fail-fn", "lambda_handler.fail", 30);
    for _ in 0..2 {
        match invoke(&fx, &f, &code, json!({"no": "serial"})).await {
            Err(InvokeError::Function(e)) => {
                assert_eq!(e.error_type, "ValueError");
                assert!(e.error_message.contains("the event has no serial"), "{e}");
                let doc: Value = serde_json::from_slice(&e.payload).unwrap();
                assert_eq!(doc["errorType"], "ValueError");
            }
            other => panic!("expected a function error, got {other:?}"),
        }
    }
    fx.lambda.shutdown().await;
}

#[tokio::test]
async fn a_crash_is_reported_and_the_next_invocation_starts_a_fresh_process() {
    let fx = fixture();
    let f = function("crash-fn", "lambda_handler.crash");
    let code = store_python(&fx, "crash-fn", "lambda_handler.crash", 30);
    let before = invoke(&fx, &f, &code, json!({})).await.unwrap();
    match invoke(&fx, &f, &code, json!({"crash": true})).await {
        Err(InvokeError::Function(e)) => {
            assert_eq!(e.error_type, "Runtime.ExitError");
            assert!(
                e.error_message
                    .contains("Runtime exited with error: exit status 3"),
                "{e}"
            );
        }
        other => panic!("expected a crash, got {other:?}"),
    }
    let after = invoke(&fx, &f, &code, json!({})).await.unwrap();
    assert_ne!(after["pid"], before["pid"], "a fresh process");
    fx.lambda.shutdown().await;
}

#[tokio::test]
async fn a_hanging_function_times_out_and_the_next_invocation_works() {
    let fx = fixture();
    let f = function("hang-fn", "lambda_handler.hang");
    let code = store_python(&fx, "hang-fn", "lambda_handler.hang", 2);
    let before = invoke(&fx, &f, &code, json!({})).await.unwrap();
    match invoke(&fx, &f, &code, json!({"hang": true})).await {
        Err(InvokeError::Function(e)) => {
            assert_eq!(e.error_type, "Sandbox.Timedout");
            assert!(
                e.error_message
                    .contains("Task timed out after 2.00 seconds"),
                "{e}"
            );
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    let after = invoke(&fx, &f, &code, json!({})).await.unwrap();
    assert_ne!(after["pid"], before["pid"], "the hung process was replaced");
    fx.lambda.shutdown().await;
}

#[tokio::test]
async fn a_handler_that_does_not_import_is_an_init_error() {
    let fx = fixture();
    let f = function("bad-fn", "no_such_module.handler");
    let code = store_python(&fx, "bad-fn", "no_such_module.handler", 30);
    match invoke(&fx, &f, &code, json!({})).await {
        Err(InvokeError::Function(e)) => {
            assert!(e.error_type.contains("ImportModuleError"), "{e}");
            assert!(e.error_message.contains("no_such_module"), "{e}");
        }
        other => panic!("expected an init error, got {other:?}"),
    }
    fx.lambda.shutdown().await;
}

struct NoPublisher;
impl Publisher for NoPublisher {
    fn publish(&self, _topic: &str, _payload: Vec<u8>) {}
}

/// A built-in that says who it is.
struct Named(&'static str);
#[async_trait::async_trait]
impl BuiltinFunction for Named {
    async fn invoke(
        &self,
        _event: Value,
        _environment: serde_json::Map<String, Value>,
        _p: Arc<dyn Publisher>,
    ) -> Result<Value, String> {
        Ok(json!({"ran": self.0}))
    }
}

fn registry(fx: &Fixture) -> FunctionRegistry {
    let mut registry = FunctionRegistry::new();
    registry.register(CERT_ROTATION_HANDLER, Arc::new(Named("built-in")));
    registry.with_code(fx.lambda.clone())
}

async fn run(registry: &FunctionRegistry, f: &Function) -> Result<Value, String> {
    let function = registry.resolve(f).expect("resolved");
    tokio::time::timeout(
        WAIT,
        function.invoke(
            json!({"n": 1}),
            f.environment.clone(),
            Arc::new(NoPublisher),
        ),
    )
    .await
    .expect("the invocation ends")
}

#[tokio::test]
async fn rules_run_the_builtin_until_the_function_has_code_of_its_own() {
    let fx = fixture();
    let registry = registry(&fx);
    // jitpilot's own stack: the built-in, the fast path.
    let own = function("CertRotation-cert-rotation", CERT_ROTATION_HANDLER);
    assert_eq!(
        run(&registry, &own).await.unwrap(),
        json!({"ran": "built-in"})
    );
    // Opted in: its code runs.
    store_python(&fx, "CertRotation-cert-rotation", "lambda_handler.echo", 30);
    let out = run(&registry, &own).await.unwrap();
    assert_eq!(out["event"], json!({"n": 1}));
    // Neither code nor a built-in: nothing to run.
    assert!(registry
        .resolve(&function("other", "index.handler"))
        .is_none());
    fx.lambda.shutdown().await;
}

#[tokio::test]
async fn code_that_cannot_run_is_reported_and_the_builtin_stands_in_for_a_rotation_function() {
    let fx = fixture();
    let mut events = fx.bus.subscribe();
    let registry = registry(&fx);
    let node = FunctionConfig {
        runtime: "nodejs20.x".into(),
        ..python_config("index.handler", 3)
    };
    let src = fx.data_dir.join("node");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("index.js"), "exports.handler = async () => 1;").unwrap();
    // The sample's rotation function, deployed through the API with code
    // this machine cannot run: the built-in stands in, marked as such.
    let sample = function(
        "cert_rotation_lambda",
        "cert_rotation_lambda.cert_rotation_lambda",
    );
    fx.lambda
        .code_store()
        .put_path(&sample.name, &node, &src)
        .unwrap();
    let out = run(&registry, &sample).await.unwrap();
    assert_eq!(out["ran"], "built-in");
    assert_eq!(out["standIn"], "cert-rotation (built-in)");
    // Another function: the invocation fails, saying why and what to do.
    let other = function("resizer", "index.handler");
    fx.lambda
        .code_store()
        .put_path(&other.name, &node, &src)
        .unwrap();
    let err = run(&registry, &other).await.unwrap_err();
    assert!(
        err.contains("nodejs20.x") && err.contains("deploy it to AWS"),
        "{err}"
    );
    // The stack pane and the event log were told.
    let mut stack_lines = Vec::new();
    while let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_millis(200), events.recv()).await
    {
        if event.kind == EventKind::Stack {
            stack_lines.push(event.summary.clone());
        }
    }
    assert!(
        stack_lines
            .iter()
            .any(|s| s.contains("resizer code cannot run here")),
        "{stack_lines:?}"
    );
}

#[tokio::test]
async fn a_package_uploaded_through_the_api_runs_and_a_newer_one_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::new(64);
    let cloud = crate::cloud::local::LocalCloud::open(dir.path(), bus.clone()).unwrap();
    cloud.deploy_sync().unwrap();
    let store = cloud.store().clone();
    let name = "CertRotation-cert-rotation";
    let function = store.get_function(name).unwrap().expect("deployed");
    // What `aws lambda update-function-code --zip-file` and
    // `update-function-configuration --runtime python3.12 --handler …` keep.
    let zip_path = dir.path().join("fn.zip");
    let handler = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/lambda_handler.py");
    let made = std::process::Command::new("python3")
        .args(["-c", "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1], 'w')\nz.write(sys.argv[2], 'lambda_handler.py')\nz.close()"])
        .arg(&zip_path)
        .arg(&handler)
        .status()
        .unwrap();
    assert!(made.success());
    let zip = std::fs::read(&zip_path).unwrap();
    assert!(store.put_function_code(name, &zip, "sha").unwrap());
    let settings = crate::store::FunctionSettings {
        runtime: Some("python3.12".into()),
        handler: Some("lambda_handler.echo".into()),
        ..Default::default()
    };
    assert!(store.update_function_settings(name, &settings).unwrap());

    let lambda = LocalLambda::new(dir.path(), bus, Some(store.clone()));
    let mut registry = FunctionRegistry::new();
    registry.register(CERT_ROTATION_HANDLER, Arc::new(Named("built-in")));
    let registry = registry.with_code(lambda.clone());
    // Its own code keeps Lambda's clock (init apart from the timeout), so
    // the API's Invoke must not time the cold start against the timeout.
    let resolved = registry.resolve(&function).expect("its code");
    assert!(resolved.keeps_its_own_clock());
    assert!(!Named("built-in").keeps_its_own_clock());
    let out = run(&registry, &function).await.unwrap();
    assert_eq!(
        out["event"],
        json!({"n": 1}),
        "the uploaded code ran: {out}"
    );
    // The template's Timeout (30) stands where the API set none.
    let stored = lambda.code_store().get(name).unwrap().unwrap();
    assert_eq!(stored.config.timeout_secs, 30);
    // A newer upload with another handler replaces it at the next invocation.
    std::thread::sleep(Duration::from_millis(20));
    let settings = crate::store::FunctionSettings {
        handler: Some("lambda_handler.fail".into()),
        ..Default::default()
    };
    assert!(store.put_function_code(name, &zip, "sha2").unwrap());
    assert!(store.update_function_settings(name, &settings).unwrap());
    let err = run(&registry, &function).await.unwrap_err();
    assert!(err.contains("ValueError"), "{err}");
    lambda.shutdown().await;
}

#[tokio::test]
async fn invocations_arriving_together_share_one_warm_process() {
    let fx = fixture();
    let f = function("together-fn", "lambda_handler.echo");
    let code = store_python(&fx, "together-fn", "lambda_handler.echo", 30);
    // 3b's request can arrive while 3a's cold start is still going on.
    let (a, b) = tokio::join!(
        invoke(&fx, &f, &code, json!({"n": 1})),
        invoke(&fx, &f, &code, json!({"n": 2}))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a["pid"], b["pid"], "one process for both");
    fx.lambda.shutdown().await;
}
