//! The sample's own deployment path, with clients nobody here wrote (the
//! aws CLI) and the same sequence of calls as its `deploy_cf.bash` and
//! `delete_cf.bash`: `s3api head-bucket` (404), `s3 mb` (twice: us-east-1
//! answers 200 to re-creating your own bucket), `s3 cp` of a python
//! function's zip, `cloudformation deploy` of a stack under another name
//! than jitpilot's whose `AWS::Lambda::Function` takes its code from
//! `Code.S3Bucket`/`S3Key`, then the function run for real — through
//! `lambda invoke` and through a topic rule fired by `iot-data publish` —
//! and `jitpilot status` (what the TUI's stack pane reads) listing that
//! stack; `delete-stack` and `s3 rb --force` last.
//!
//! The function (`tests/py/sample_flow_handler.py`) is ours, shaped like
//! the sample's rotation function; it is deliberately not named like a
//! rotation function, so no built-in can stand in for it: only its own code
//! makes these assertions pass.

mod support;
use support::Bounded;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::api::{aws, delete_stack, env_keys, jitpilot, json, ok, Keys};
use support::endpoint::serve;

const STACK: &str = "SampleFlowStack";
const BUCKET: &str = "sample-flow-234112";
const FUNCTION: &str = "sample_flow_fn";

fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A template shaped like the sample's `cfn_cert_rotation.json`: the
/// function's code, name and handler from parameters, its role by
/// `Fn::Sub` of the role's logical id, a rule with a Lambda action
/// (`DependsOn` the function), a permission, the device table.
fn template() -> Value {
    let arn = "arn:aws:lambda:${AWS::Region}:${AWS::AccountId}:function:${FnName}";
    serde_json::json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": {
            "FnName": {"Type": "String"},
            "ZipName": {"Type": "String"},
            "S3BucketName": {"Type": "String"}
        },
        "Resources": {
            "Rule": {
                "Type": "AWS::IoT::TopicRule",
                "Properties": {"RuleName": "rule_sample_flow", "TopicRulePayload": {
                    "Sql": "SELECT * as data, topic() as topic, clientId() as client_id, principal() as cert_id FROM '/sample-flow/+/rqst'",
                    "AwsIotSqlVersion": "2016-03-23", "RuleDisabled": false,
                    "Actions": [{"Lambda": {"FunctionArn": {"Fn::Sub": arn}}}]}},
                "DependsOn": ["Fn"]
            },
            "Fn": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Code": {"S3Bucket": {"Fn::Sub": "${S3BucketName}"}, "S3Key": {"Fn::Sub": "${ZipName}"}},
                    "FunctionName": {"Ref": "FnName"},
                    "MemorySize": 128,
                    "Handler": "sample_flow_handler.handle",
                    "Role": {"Fn::Sub": "arn:aws:iam::${AWS::AccountId}:role/${LambdaRole}"},
                    "Timeout": 30,
                    "Runtime": "python3.6",
                    "Environment": {"Variables": {"TABLE": "SampleFlowDevices"}}
                }
            },
            "Permission": {
                "Type": "AWS::Lambda::Permission",
                "Properties": {
                    "FunctionName": {"Fn::GetAtt": ["Fn", "Arn"]},
                    "Action": "lambda:InvokeFunction",
                    "Principal": "iot.amazonaws.com",
                    "SourceAccount": {"Ref": "AWS::AccountId"},
                    "SourceArn": {"Fn::GetAtt": ["Rule", "Arn"]}
                }
            },
            "LambdaRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": "SampleFlowLambdaRole",
                    "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
                        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
                    "Path": "/"
                }
            },
            "Table": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "TableName": "SampleFlowDevices",
                    "AttributeDefinitions": [{"AttributeName": "SerialNumber", "AttributeType": "S"}],
                    "KeySchema": [{"AttributeName": "SerialNumber", "KeyType": "HASH"}],
                    "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
                }
            }
        }
    })
}

fn deploy(keys: &Keys, home: &Path) -> Output {
    aws(
        keys,
        home,
        &[
            "cloudformation",
            "deploy",
            "--template-file",
            "template.json",
            "--parameter-overrides",
            &format!("FnName={FUNCTION}"),
            "ZipName=fn.zip",
            &format!("S3BucketName={BUCKET}"),
            "--stack-name",
            STACK,
            "--capabilities",
            "CAPABILITY_NAMED_IAM",
        ],
    )
}

/// The table's item for `serial`, polled until it appears (deadline 60 s:
/// a cold python process on a busy machine).
fn item_eventually(keys: &Keys, home: &Path, serial: &str) -> Value {
    let key = format!(r#"{{"SerialNumber": {{"S": "{serial}"}}}}"#);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = ok(
            aws(
                keys,
                home,
                &[
                    "dynamodb",
                    "get-item",
                    "--table-name",
                    "SampleFlowDevices",
                    "--key",
                    &key,
                ],
            ),
            "dynamodb get-item",
        );
        if !out.trim().is_empty() {
            let item = json(&out);
            if item.get("Item").is_some() {
                return item["Item"].clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the function never recorded {serial}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_stack_deployed_like_deploy_cf_bash_runs_its_python_function_from_s3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let _server = serve(&data_dir);
    let keys = env_keys(&data_dir);
    let home = dir.path();
    std::fs::write(
        home.join("template.json"),
        serde_json::to_string_pretty(&template()).unwrap(),
    )
    .unwrap();
    let handler = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/sample_flow_handler.py");
    std::fs::copy(&handler, home.join("sample_flow_handler.py")).unwrap();
    let zipped = Command::new("python3")
        .args(["-m", "zipfile", "-c", "fn.zip", "sample_flow_handler.py"])
        .current_dir(home)
        .bounded_output()
        .expect("python3 -m zipfile");
    ok(zipped, "zip the handler");

    // deploy_cf.bash: head-bucket says 404 "Not Found", then `s3 mb`.
    let head = aws(&keys, home, &["s3api", "head-bucket", "--bucket", BUCKET]);
    assert!(!head.status.success());
    assert!(
        text(&head).contains("(404)") && text(&head).contains("Not Found"),
        "{}",
        text(&head)
    );
    let bucket = format!("s3://{BUCKET}");
    ok(
        aws(&keys, home, &["s3", "mb", &bucket, "--region", "us-east-1"]),
        "s3 mb",
    );
    // Run again (the script run twice): us-east-1 answers 200, not 409.
    ok(
        aws(&keys, home, &["s3", "mb", &bucket, "--region", "us-east-1"]),
        "s3 mb again",
    );

    // The code is not uploaded yet: the deploy is refused, naming the object.
    let early = deploy(&keys, home);
    assert!(!early.status.success(), "{}", text(&early));
    let events = ok(
        aws(
            &keys,
            home,
            &[
                "cloudformation",
                "describe-stack-events",
                "--stack-name",
                STACK,
            ],
        ),
        "describe-stack-events",
    );
    assert!(
        events.contains("NoSuchKey") && events.contains("s3://sample-flow-234112/fn.zip"),
        "{events}"
    );
    let listed = ok(
        aws(&keys, home, &["lambda", "list-functions"]),
        "list-functions",
    );
    assert!(!listed.contains(FUNCTION), "nothing created: {listed}");
    // As on AWS after a failed creation: delete the stack, then deploy again.
    delete_stack(&keys, home, STACK);

    ok(aws(&keys, home, &["s3", "cp", "fn.zip", &bucket]), "s3 cp");
    ok(deploy(&keys, home), "cloudformation deploy");

    // jitpilot status (what the TUI's stack pane reads) lists the stack.
    let status = json(&String::from_utf8_lossy(
        &jitpilot(&data_dir, &["status", "--json"]).stdout,
    ));
    let others = status["otherStacks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let stack = others
        .iter()
        .find(|s| s["name"] == STACK)
        .unwrap_or_else(|| panic!("{STACK} not in status: {status}"));
    assert_eq!(stack["status"], "CREATE_COMPLETE");
    assert!(
        stack["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["physicalId"] == FUNCTION),
        "{stack}"
    );

    // `lambda invoke` runs the code itself (its answer names the function);
    // the aws CLI v1 sends `--payload` as it is.
    ok(
        aws(
            &keys,
            home,
            &[
                "lambda",
                "invoke",
                "--function-name",
                FUNCTION,
                "--payload",
                r#"{"serial": "A1", "data": {"via": "invoke"}}"#,
                "answer.json",
            ],
        ),
        "lambda invoke",
    );
    let answer = json(&std::fs::read_to_string(home.join("answer.json")).unwrap());
    assert_eq!(answer["recorded"], "A1", "{answer}");
    assert_eq!(answer["function"], FUNCTION, "{answer}");
    assert!(answer.get("standIn").is_none(), "{answer}");
    assert_eq!(
        item_eventually(&keys, home, "A1")["Function"]["S"],
        FUNCTION
    );

    // A publish on the rule's topic invokes it through the rule.
    ok(
        aws(
            &keys,
            home,
            &[
                "iot-data",
                "publish",
                "--topic",
                "/sample-flow/B2/rqst",
                "--payload",
                r#"{"csr": "x"}"#,
            ],
        ),
        "iot-data publish",
    );
    let item = item_eventually(&keys, home, "B2");
    assert_eq!(item["SeenTopic"]["S"], "/sample-flow/B2/rqst");
    assert_eq!(json(item["Data"]["S"].as_str().unwrap())["csr"], "x");

    // delete_cf.bash: delete-stack, then rb --force.
    ok(
        aws(
            &keys,
            home,
            &["cloudformation", "delete-stack", "--stack-name", STACK],
        ),
        "delete-stack",
    );
    ok(
        aws(
            &keys,
            home,
            &[
                "cloudformation",
                "wait",
                "stack-delete-complete",
                "--stack-name",
                STACK,
            ],
        ),
        "wait stack-delete-complete",
    );
    ok(
        aws(&keys, home, &["s3", "rb", &bucket, "--force"]),
        "s3 rb --force",
    );
    let listed = ok(
        aws(&keys, home, &["lambda", "list-functions"]),
        "list-functions",
    );
    assert!(!listed.contains(FUNCTION), "deleted: {listed}");
}
