//! The local cloud's AWS API against the real `jitpilot serve` binary:
//! `jitpilot env` evaluated by a shell, the aws CLI and boto3 (from PyPI,
//! installed by `scripts/test`), and raw HTTP for what no SDK sends —
//! missing, stale and forged signatures, unknown operations, oversize and
//! malformed bodies — each answered in AWS's shape, the server answering
//! the next request after every one of them.
//!
//! Also: the README's table of supported operations is the router's own
//! (`JITPILOT_UPDATE_README=1` rewrites it).

mod support;
use support::Bounded;

use std::process::Command;
use std::time::{Duration, SystemTime};
use support::api::*;
use support::endpoint::*;

fn sts_identity_works(keys: &Keys) {
    let body = b"Action=GetCallerIdentity&Version=2011-06-15";
    let reply = signed(
        keys,
        "sts",
        "POST",
        "/",
        &[(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )],
        body,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        reply.text().contains("<Account>123456789012</Account>"),
        "{}",
        reply.text()
    );
}

#[test]
fn env_exports_are_all_the_aws_cli_needs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    // No cloud yet: env says what to do.
    let out = jitpilot(&data_dir, &["env"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("jitpilot serve"), "{stderr}");

    let server = serve(&data_dir);
    assert!(
        server.api.starts_with("http://127.0.0.1:"),
        "{}",
        server.api
    );
    let out = jitpilot(&data_dir, &["env"]);
    assert!(out.status.success());
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        line.starts_with(&format!(
            "export AWS_ENDPOINT_URL={} AWS_ACCESS_KEY_ID=AKIA",
            server.api
        )),
        "{line}"
    );
    assert!(line.contains("AWS_DEFAULT_REGION=us-east-1"), "{line}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data_dir.join("api-credentials.json"))
            .expect("credentials file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(
        std::fs::read_to_string(data_dir.join("api.addr"))
            .expect("api.addr")
            .trim(),
        server.api.trim_start_matches("http://")
    );

    let script = format!(
        "eval \"$('{}' env --data-dir '{}')\" && aws sts get-caller-identity --output json",
        env!("CARGO_BIN_EXE_jitpilot"),
        data_dir.display()
    );
    let out = Command::new("bash")
        .args(["-c", &script])
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_CONFIG_FILE", dir.path().join("no-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.path().join("no-credentials"),
        )
        .bounded_output()
        .expect("bash");
    assert!(
        out.status.success(),
        "aws sts get-caller-identity (the aws CLI is installed by scripts/test): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let identity: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(identity["Account"], "123456789012");
    assert_eq!(identity["Arn"], "arn:aws:iam::123456789012:user/jitpilot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_refusals_and_iot_data_publish_reach_mqtt_subscribers_and_rules() {
    let fx = fixture();
    let server = serve(&fx.data_dir);
    let keys = env_keys(&fx.data_dir);
    let (_client, mut rx) = observer(&server, &fx, &["api/test/#", "test/out"]).await;

    let script_keys = keys.clone();
    let out = tokio::task::spawn_blocking(move || {
        python("api_boto3.py", &script_keys, &["api/test/hello"])
    })
    .await
    .expect("python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.trim_end().ends_with("ok"), "{stdout}");
    let payload = next_publish(&mut rx, |t| t == "api/test/hello").await;
    assert_eq!(payload, serde_json::json!({"hello": "from boto3"}));

    // A Publish runs the topic rules too: test_republish copies test/in/+ to test/out.
    let reply = signed(
        &keys,
        "iotdata",
        "POST",
        "/topics/test%2Fin%2Fapi?qos=1",
        &[],
        br#"{"n": 1}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.header("x-amzn-RequestId").is_some());
    let republished = next_publish(&mut rx, |t| t == "test/out").await;
    assert_eq!(republished["data"], serde_json::json!({"n": 1}));
    assert_eq!(republished["topic"], "test/in/api");
}

#[test]
fn refused_and_malformed_requests_get_aws_shapes_and_the_server_keeps_answering() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let _server = serve(&data_dir);
    let keys = env_keys(&data_dir);
    let addr = keys.addr().to_string();
    let form = &[("content-type", "application/x-www-form-urlencoded")];

    // No signature: restJson1 and awsJson shapes.
    let reply = raw(
        &addr,
        &request_bytes(&addr, "GET", "/registrationcode", &[], b""),
    );
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.header("x-amzn-ErrorType"),
        Some("MissingAuthenticationTokenException")
    );
    assert!(reply
        .header("x-amzn-RequestId")
        .is_some_and(|id| id.len() == 36));
    let target = [
        (
            "x-amz-target".to_string(),
            "DynamoDB_20120810.ListTables".to_string(),
        ),
        (
            "content-type".to_string(),
            "application/x-amz-json-1.0".to_string(),
        ),
    ];
    let reply = raw(&addr, &request_bytes(&addr, "POST", "/", &target, b"{}"));
    assert_eq!(reply.status, 403);
    assert!(
        reply.json()["__type"]
            .as_str()
            .is_some_and(|t| t.ends_with("#MissingAuthenticationTokenException")),
        "{}",
        reply.text()
    );
    sts_identity_works(&keys);

    // Stale: signed 20 minutes ago.
    let stale = SystemTime::now() - Duration::from_secs(20 * 60);
    let body = b"Action=GetCallerIdentity&Version=2011-06-15";
    let reply = signed_at(&keys, "sts", "POST", "/", form, body, stale);
    assert_eq!(reply.status, 403);
    assert!(
        reply.text().contains("<Code>SignatureDoesNotMatch</Code>"),
        "{}",
        reply.text()
    );
    assert!(
        reply.text().contains("Signature expired"),
        "{}",
        reply.text()
    );
    let reply = signed_at(&keys, "iotdata", "POST", "/topics/a", &[], b"{}", stale);
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.header("x-amzn-ErrorType"),
        Some("InvalidSignatureException")
    );
    assert!(
        reply.text().contains("Signature expired"),
        "{}",
        reply.text()
    );

    // Signed, then the body changed on the way.
    let headers = sign(&keys, "sts", "POST", "/", form, body, SystemTime::now());
    let forged = b"Action=GetCallerIdentity&Version=2011-06-16";
    let reply = raw(&addr, &request_bytes(&addr, "POST", "/", &headers, forged));
    assert_eq!(reply.status, 403);
    assert!(
        reply.text().contains("<Code>SignatureDoesNotMatch</Code>"),
        "{}",
        reply.text()
    );

    // An unknown key; a malformed Authorization header.
    let reply = signed(
        &keys.with("AKIANOTTHELOCALKEY00", "x"),
        "sts",
        "POST",
        "/",
        form,
        body,
    );
    assert_eq!(reply.status, 403);
    assert!(
        reply.text().contains("<Code>InvalidClientTokenId</Code>"),
        "{}",
        reply.text()
    );
    let bad_auth = [
        (
            "authorization".to_string(),
            "AWS4-HMAC-SHA256 Credential=nonsense".to_string(),
        ),
        ("x-amz-date".to_string(), "20261202T000000Z".to_string()),
        (
            "content-type".to_string(),
            "application/x-www-form-urlencoded".to_string(),
        ),
    ];
    let reply = raw(&addr, &request_bytes(&addr, "POST", "/", &bad_auth, body));
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(
        reply.text().contains("<Code>IncompleteSignature</Code>"),
        "{}",
        reply.text()
    );

    // An unknown operation; a service the local cloud does not answer.
    let reply = signed(
        &keys,
        "sts",
        "POST",
        "/",
        form,
        b"Action=AssumeRole&Version=2011-06-15",
    );
    assert_eq!(reply.status, 400);
    assert!(
        reply
            .text()
            .contains("<Code>UnknownOperationException</Code>"),
        "{}",
        reply.text()
    );
    assert!(reply.text().contains("<ErrorResponse"), "{}", reply.text());
    let reply = signed(&keys, "ec2", "POST", "/", form, b"Action=DescribeInstances");
    assert_eq!(reply.status, 400);
    assert!(reply.text().contains("ec2"), "{}", reply.text());
    sts_identity_works(&keys);

    // Oversize: refused from Content-Length alone (the body is never sent).
    let headers = sign(&keys, "sts", "POST", "/", form, b"", SystemTime::now());
    let mut head = format!("POST / HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (k, v) in &headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("content-length: 2097152\r\n\r\n");
    let reply = raw(&addr, head.as_bytes());
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert!(
        reply.text().contains("<Code>RequestEntityTooLarge</Code>"),
        "{}",
        reply.text()
    );

    // A malformed chunked body; bytes that are not HTTP; a broken header.
    let mut head = format!(
        "POST / HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ntransfer-encoding: chunked\r\n"
    );
    for (k, v) in &headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\nZZZ\r\nnot a chunk\r\n");
    let reply = raw(&addr, head.as_bytes());
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(reply.text().contains("<ErrorResponse"), "{}", reply.text());
    let reply = raw(&addr, b"NOT HTTP AT ALL\r\n\r\n");
    assert_eq!(reply.status, 400);
    let reply = raw(
        &addr,
        b"GET / HTTP/1.1\r\nhost: x\r\nbad header line\r\n\r\n",
    );
    assert_eq!(reply.status, 400);
    sts_identity_works(&keys);
}

const TABLE_BEGIN: &str = "<!-- operations:begin (made by tests/api.rs from the router; JITPILOT_UPDATE_README=1 rewrites it) -->";
const TABLE_END: &str = "<!-- operations:end -->";

/// The README's table: one row per service, its operations in the router's order.
fn operations_markdown() -> String {
    let mut out = String::from("| Service (signing name) | Operations |\n|---|---|\n");
    for service in jitpilot::cloud::local::api::services() {
        let ops: Vec<String> = service
            .operations
            .iter()
            .map(|op| format!("`{op}`"))
            .collect();
        let ops = if ops.is_empty() {
            "(none yet)".to_string()
        } else {
            ops.join(", ")
        };
        out.push_str(&format!("| `{}` | {ops} |\n", service.signing_name));
    }
    out
}

#[test]
fn the_readme_table_of_operations_is_the_routers() {
    let readme_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&readme_path).expect("README.md");
    let table = operations_markdown();
    let (Some(begin), Some(end)) = (readme.find(TABLE_BEGIN), readme.find(TABLE_END)) else {
        panic!("README.md lacks the markers {TABLE_BEGIN} … {TABLE_END}");
    };
    let current = &readme[begin + TABLE_BEGIN.len()..end];
    let wanted = format!("\n{table}");
    if current != wanted {
        if std::env::var("JITPILOT_UPDATE_README").as_deref() == Ok("1") {
            let updated = format!(
                "{}{wanted}{}",
                &readme[..begin + TABLE_BEGIN.len()],
                &readme[end..]
            );
            std::fs::write(&readme_path, updated).expect("write README.md");
        } else {
            panic!("README.md's table of supported operations differs from the router's; run `JITPILOT_UPDATE_README=1 cargo test --test api the_readme_table` to rewrite it. Wanted:\n{table}");
        }
    }
}

/// jitpilot's own SDK (aws-sdk-rust) signs as the local cloud expects: STS
/// answers, and an S3 PutObject with a checksum — the SDK's streaming
/// upload — gets past the signature and body decoding to the S3 service
/// (which answers it, or names the operation it lacks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_sdk_signs_as_the_api_expects() {
    use aws_sdk_s3::error::ProvideErrorMetadata;
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let _server = serve(&data_dir);
    let keys = env_keys(&data_dir);
    let creds = aws_credential_types::Credentials::new(
        &keys.access_key_id,
        &keys.secret_access_key,
        None,
        None,
        "jitpilot env",
    );
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::Config::builder()
            .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
            .region(aws_sdk_sts::config::Region::new("us-east-1"))
            .endpoint_url(&keys.endpoint_url)
            .credentials_provider(creds.clone())
            .build(),
    );
    let identity = sts
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity");
    assert_eq!(identity.account(), Some("123456789012"));

    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(&keys.endpoint_url)
            .force_path_style(true)
            .credentials_provider(creds)
            .build(),
    );
    let put = s3
        .put_object()
        .bucket("jitpilot-api-test")
        .key("a/b.txt")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(
            b"hello, chunks",
        ))
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc32)
        .send()
        .await;
    if let Err(e) = put {
        let code = e.code().unwrap_or("").to_string();
        assert!(
            !matches!(
                code.as_str(),
                "SignatureDoesNotMatch"
                    | "IncompleteBody"
                    | "XAmzContentSHA256Mismatch"
                    | "AccessDenied"
                    | ""
            ),
            "the upload must pass the signature check and body decoding: {code} {e:?}"
        );
    }
}
