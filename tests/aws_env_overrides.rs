//! The two environment variables the README names for the AWS backend,
//! through the real binary against moto's server:
//!
//! - `JITPILOT_CODE_BUCKET`: deploy uploads the function's code to that
//!   bucket instead of `jitpilot-artifacts-<account>-<region>`, and
//!   teardown empties and deletes that bucket;
//! - `JITPILOT_IOT_ENDPOINT` (= `--iot-endpoint`): status reports it as the
//!   devices' endpoint, and a device dials it.
//!
//! Each variable is set on the child process only (tests never change their
//! own environment).

mod support;
use support::Bounded;

use std::net::TcpListener;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};
use support::aws::{clients, fake_bootstrap, jitpilot_command, json_of, Target};

const SERIAL: &str = "IUQWXALODJESC1";
const DEFAULT_BUCKET: &str = "jitpilot-artifacts-123456789012-us-east-1";

fn run(moto: &Target, data: &Path, package: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = jitpilot_command(moto, data, Some(package), args);
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd.bounded_output().expect("jitpilot runs")
}

async fn buckets(sdk: &jitpilot::cloud::aws::Clients) -> Vec<String> {
    sdk.s3
        .list_buckets()
        .send()
        .await
        .expect("ListBuckets")
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_bucket_and_iot_endpoint_come_from_the_environment() {
    let moto = Target::moto();
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let package = fake_bootstrap(tmp.path());
    let sdk = clients(&moto, &data).await;
    let bucket = format!("jitpilot-test-code-{}", std::process::id());
    let code_bucket = [("JITPILOT_CODE_BUCKET", bucket.as_str())];

    // Deploy uploads the code to the named bucket, and makes no other.
    json_of(&run(
        &moto,
        &data,
        &package,
        &code_bucket,
        &["--json", "deploy"],
    ));
    let all = buckets(&sdk).await;
    assert!(all.contains(&bucket), "{bucket} not created: {all:?}");
    assert!(
        !all.iter().any(|b| b == DEFAULT_BUCKET),
        "the default bucket was made anyway: {all:?}"
    );
    let objects = sdk
        .s3
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .expect("ListObjectsV2");
    let key = objects
        .contents()
        .first()
        .and_then(|o| o.key())
        .expect("the code object");
    assert!(key.starts_with("cert-rotation/bootstrap-"), "{key}");
    // Status names the variable's endpoint as the devices' endpoint.
    json_of(&run(&moto, &data, &package, &[], &["--json", "init"]));
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let endpoint = format!("127.0.0.1:{}", listener.local_addr().expect("addr").port());
    let iot_endpoint = [("JITPILOT_IOT_ENDPOINT", endpoint.as_str())];
    let status = json_of(&run(
        &moto,
        &data,
        &package,
        &iot_endpoint,
        &["--json", "status"],
    ));
    assert_eq!(status["endpoint"], endpoint.as_str(), "{status:#}");
    let plain = json_of(&run(&moto, &data, &package, &[], &["--json", "status"]));
    assert_ne!(
        plain["endpoint"],
        endpoint.as_str(),
        "without the variable the endpoint is DescribeEndpoint's: {plain:#}"
    );

    // A device dials it: the listener gets its connection.
    let mut device = jitpilot_command(&moto, &data, Some(&package), &["device", SERIAL, "jitp"]);
    device
        .env("JITPILOT_IOT_ENDPOINT", &endpoint)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = device.spawn().expect("spawn jitpilot device");
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + Duration::from_secs(120);
    let dialled = loop {
        let exited = matches!(child.try_wait(), Ok(Some(_)));
        match listener.accept() {
            Ok(_) => break true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("accept: {e}"),
        }
        if exited || Instant::now() > deadline {
            break false;
        }
        // Polling for another process's connect: there is no event to await.
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(dialled, "the device never dialled {endpoint}");

    // Teardown empties and deletes the named bucket.
    json_of(&run(
        &moto,
        &data,
        &package,
        &code_bucket,
        &["--json", "teardown"],
    ));
    let all = buckets(&sdk).await;
    assert!(!all.contains(&bucket), "{bucket} left behind: {all:?}");
}
