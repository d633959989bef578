//! The AWS backend against two targets, each started by the test on free
//! loopback ports and stopped when it ends: moto's server (a local AWS API
//! emulator from PyPI, `moto[server]`), and jitpilot's own local cloud
//! (`jitpilot serve`, its AWS API and MQTT endpoint).
//!
//! The `jitpilot` binary runs deploy, init, status, cleanup and teardown
//! with `--backend aws --endpoint-url`, and every result is checked through
//! the SDK. moto has no MQTT data plane and no Lambda execution, so there
//! the rotation function's Lambda handler is driven directly with the
//! rules' SQL output, over the real SDK bindings, as AWS IoT would call it.
//! On jitpilot nothing is played: the device runs 3a–3c against the
//! endpoint `DescribeEndpoint` names, with real JITP, rules and function.

mod support;
use support::Bounded;

use jitpilot::pki;
use serde_json::{json, Value};
use support::aws::walkthrough::{
    run_walkthrough_on_the_endpoint, run_walkthrough_through_the_lambda,
};
use support::aws::{clients, fake_bootstrap, isolate_env, jitpilot, json_of, stderr_of, Target};

use std::process::Command;

const SERIAL: &str = "IUQWXALODJESC1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_init_status_cleanup_teardown_on_moto() {
    deploy_init_status_cleanup_teardown(Target::moto()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_init_status_cleanup_teardown_on_jitpilot() {
    deploy_init_status_cleanup_teardown(Target::jitpilot()).await;
}

async fn deploy_init_status_cleanup_teardown(target: Target) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let package = fake_bootstrap(tmp.path());
    let sdk = clients(&target, &data).await;

    // init before deploy says what to do.
    let early = jitpilot(&target, &data, None, &["init"]);
    assert!(
        stderr_of(&early).contains("jitpilot deploy"),
        "{}",
        stderr_of(&early)
    );

    // deploy without a package says how to build one.
    let no_package = jitpilot(&target, &data, None, &["deploy"]);
    assert!(stderr_of(&no_package).contains("scripts/package-lambda"));

    // deploy: bucket, upload, stack, rules.
    let deployed = json_of(&jitpilot(
        &target,
        &data,
        Some(&package),
        &["--json", "deploy"],
    ));
    assert_eq!(deployed["stack"], "CertRotation");
    assert_eq!(deployed["status"], "CREATE_COMPLETE");
    let ids: Vec<&str> = deployed["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r["logicalId"].as_str())
        .collect();
    for id in [
        "CertRotationDevicesTable",
        "CertRotationFunction",
        "JitpProvisioningRole",
        "InProgressCertPolicy",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    let bucket = "jitpilot-artifacts-123456789012-us-east-1";
    let objects = sdk
        .s3
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .expect("bucket exists");
    let key = objects.contents()[0].key().expect("key").to_string();
    assert!(key.starts_with("cert-rotation/bootstrap-"), "{key}");
    let zip = sdk
        .s3
        .get_object()
        .bucket(bucket)
        .key(&key)
        .send()
        .await
        .expect("object");
    let zip = zip.body.collect().await.expect("body").into_bytes();
    assert!(jitpilot::cloud::aws::package::zip_has_entry(
        &zip,
        "bootstrap"
    ));
    let table = sdk
        .dynamodb
        .describe_table()
        .table_name("CertRotationDevices")
        .send()
        .await
        .expect("table");
    assert_eq!(
        table
            .table()
            .and_then(|t| t.key_schema().first())
            .map(|k| k.attribute_name()),
        Some("SerialNumber")
    );
    let stack = sdk
        .cloudformation
        .describe_stacks()
        .stack_name("CertRotation")
        .send()
        .await
        .expect("stack");
    let stack = &stack.stacks()[0];
    let output = |k: &str| {
        stack
            .outputs()
            .iter()
            .find(|o| o.output_key() == Some(k))
            .and_then(|o| o.output_value())
            .expect(k)
            .to_string()
    };
    let function_arn = output("CertRotationFunctionArn");
    // What moto's CloudFormation skips, deploy created through the IoT API.
    for (rule, from) in [
        ("rule_jitp", "'$aws/events/certificates/registered/#'"),
        (
            "rule_create_man_cert",
            "'/cert-rotation/create-man-cert/+/rqst'",
        ),
        ("rule_ack_man_cert", "'/cert-rotation/ack-man-cert/+/rqst'"),
    ] {
        let got = sdk
            .iot
            .get_topic_rule()
            .rule_name(rule)
            .send()
            .await
            .expect(rule);
        let got = got.rule().expect("rule");
        assert!(
            got.sql().unwrap_or_default().contains(from),
            "{rule}: {:?}",
            got.sql()
        );
        let lambda = got.actions()[0].lambda().expect("lambda action");
        assert_eq!(lambda.function_arn(), function_arn);
    }
    // Deploying again is safe.
    let again = json_of(&jitpilot(
        &target,
        &data,
        Some(&package),
        &["--json", "deploy"],
    ));
    assert!(
        again["status"]
            .as_str()
            .unwrap_or_default()
            .ends_with("_COMPLETE"),
        "{again}"
    );

    // init: CAs, JITP, key in SSM, whitelist, factory, observer.
    let init = json_of(&jitpilot(
        &target,
        &data,
        None,
        &["--json", "init", "--devices", "3"],
    ));
    assert_eq!(init["created"], true);
    let whitelisted: Vec<&str> = init["whitelisted"]
        .as_array()
        .expect("serials")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(whitelisted.len(), 3);
    assert_eq!(whitelisted[0], SERIAL);
    assert_eq!(init["cas"].as_array().map(Vec::len), Some(2), "{init}");
    let vendor_id = init["cas"][0]["id"]
        .as_str()
        .expect("vendor id")
        .to_string();
    assert_eq!(init["cas"][0]["label"], "Vendor CA");
    let vendor = sdk
        .iot
        .describe_ca_certificate()
        .certificate_id(&vendor_id)
        .send()
        .await
        .expect("vendor");
    let desc = vendor.certificate_description().expect("description");
    assert_eq!(desc.status().map(|s| s.as_str()), Some("ACTIVE"));
    // AWS keeps autoRegistrationStatus; moto does not (it answers none):
    // then what jitpilot asked for is read from moto's request recording —
    // RegisterCACertificate with allowAutoRegistration=true, or
    // UpdateCACertificate with newAutoRegistrationStatus=ENABLE.
    match desc.auto_registration_status().map(|s| s.as_str()) {
        Some(status) => assert_eq!(status, "ENABLE"),
        None => {
            let requests = target
                .moto_server()
                .expect("only moto drops autoRegistrationStatus")
                .requests();
            assert!(
                requests.iter().any(|r| {
                    let url = r["url"].as_str().unwrap_or_default();
                    url.contains("/cacertificate")
                        && (url.contains("allowAutoRegistration=true")
                            || url.contains("newAutoRegistrationStatus=ENABLE"))
                }),
                "no request enabled the Vendor CA's auto-registration: {:?}",
                requests
                    .iter()
                    .map(|r| r["url"].clone())
                    .collect::<Vec<_>>()
            );
        }
    }
    let config = vendor.registration_config().expect("registration config");
    assert_eq!(
        config.role_arn(),
        Some(output("JitpProvisioningRoleArn").as_str())
    );
    assert_eq!(
        config.template_body(),
        Some(include_str!("../assets/jitp-template.json"))
    );
    let vendor_pem = desc.certificate_pem().expect("pem").to_string();
    let param_name = init["caKeyParameter"]
        .as_str()
        .expect("parameter")
        .to_string();
    let man_id = param_name.trim_start_matches("cr-ca-key-").to_string();
    let param = sdk
        .ssm
        .get_parameter()
        .name(&param_name)
        .with_decryption(true)
        .send()
        .await
        .expect("CA key parameter");
    let param = param.parameter().expect("parameter");
    assert_eq!(param.r#type().map(|t| t.as_str()), Some("SecureString"));
    let man = sdk
        .iot
        .describe_ca_certificate()
        .certificate_id(&man_id)
        .send()
        .await
        .expect("manufacturer CA");
    let man_pem = man
        .certificate_description()
        .and_then(|d| d.certificate_pem())
        .expect("pem");
    assert_eq!(
        pki::public_key_der_of_key(param.value().expect("value")).expect("key"),
        pki::parse_cert(man_pem).expect("cert").public_key_der,
        "the parameter holds the Manufacturer CA's key"
    );
    for serial in &whitelisted {
        let row = sdk
            .dynamodb
            .get_item()
            .table_name("CertRotationDevices")
            .key(
                "SerialNumber",
                aws_sdk_dynamodb::types::AttributeValue::S(serial.to_string()),
            )
            .send()
            .await
            .expect("row");
        let row = row.item().expect("whitelisted row");
        assert_eq!(
            row["CrState"].as_s().ok().map(String::as_str),
            Some("CR_WHITELISTED")
        );
        assert_eq!(row["ManufacturerCaCertId"].as_s().ok(), Some(&man_id));
        let cert =
            std::fs::read_to_string(data.join("devices").join(serial).join("vendor.cert.pem"))
                .expect("factory cert");
        assert!(
            pki::verify_signed_by(&cert, &vendor_pem).expect("verify"),
            "{serial}'s cert is signed by the registered Vendor CA"
        );
        let root = std::fs::read_to_string(data.join("devices").join(serial).join("root-ca.pem"))
            .expect("root CA");
        assert!(root.contains("BEGIN CERTIFICATE"));
        assert_eq!(
            pki::parse_cert(&root)
                .expect("root")
                .subject
                .common_name
                .as_deref(),
            Some("Amazon Root CA 1")
        );
        match target.local_cloud() {
            // Amazon's roots only.
            None => assert_eq!(root, jitpilot::cloud::aws::AMAZON_ROOT_CAS),
            // …followed by the endpoint CA that `jitpilot env` exports.
            Some(local) => assert!(
                root.starts_with(jitpilot::cloud::aws::AMAZON_ROOT_CAS.trim_end())
                    && root.trim_end().ends_with(local.endpoint_ca_pem().trim()),
                "{root}"
            ),
        }
    }
    let observer_id =
        std::fs::read_to_string(data.join("aws/observer/cert-id")).expect("observer id");
    let observer = sdk
        .iot
        .describe_certificate()
        .certificate_id(observer_id.trim())
        .send()
        .await
        .expect("observer cert");
    assert_eq!(
        observer
            .certificate_description()
            .and_then(|d| d.status())
            .map(|s| s.as_str()),
        Some("ACTIVE")
    );
    let policy = sdk
        .iot
        .get_policy()
        .policy_name("JitpilotObserverPolicy")
        .send()
        .await
        .expect("observer policy");
    let document = policy.policy_document().expect("document");
    assert!(
        document.contains("iot:Subscribe") && !document.contains("iot:Publish"),
        "{document}"
    );
    let again = json_of(&jitpilot(
        &target,
        &data,
        None,
        &["--json", "init", "--devices", "3"],
    ));
    assert_eq!(again["created"], false, "init is idempotent");
    assert_eq!(again["cas"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        again["cas"][0]["id"],
        vendor_id.as_str(),
        "the same Vendor CA"
    );

    // The walkthrough: on moto the rotation function as the three rules
    // would invoke it; on jitpilot a device, for real.
    let rotated = match &target {
        Target::Moto(_) => {
            run_walkthrough_through_the_lambda(&sdk, &data, &vendor_id, &man_id).await
        }
        Target::Jitpilot(_) => {
            run_walkthrough_on_the_endpoint(&target, &sdk, &data, &vendor_id, &man_id).await
        }
    };

    // status reads it all back.
    let status = json_of(&jitpilot(&target, &data, None, &["--json", "status"]));
    assert_eq!(status["backend"], "aws");
    // CREATE_COMPLETE, or UPDATE_COMPLETE after the second deploy.
    let stack_status = status["stack"]["status"].as_str().unwrap_or_default();
    assert!(stack_status.ends_with("_COMPLETE"), "{stack_status}");
    assert_eq!(status["cas"].as_array().map(Vec::len), Some(2));
    match target.local_cloud() {
        None => assert!(
            status["endpoint"]
                .as_str()
                .unwrap_or_default()
                .contains("-ats.iot."),
            "{}",
            status["endpoint"]
        ),
        Some(local) => assert_eq!(status["endpoint"], local.iot_endpoint()),
    }
    assert!(status["parameters"].get(&param_name).is_some());
    let states: Vec<(&str, &str)> = status["devices"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["SerialNumber"].as_str().unwrap_or(""),
                r["CrState"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(
        states.contains(&(SERIAL, "CR_CERT_ROTATION_COMPLETED")),
        "{states:?}"
    );
    let certs = status["certificates"].as_array().expect("certs");
    assert!(
        certs.iter().all(|c| c["caId"] != vendor_id.as_str()),
        "the vendor cert is gone after 3c: {certs:?}"
    );
    let man_certs: Vec<&Value> = certs
        .iter()
        .filter(|c| c["caId"] == man_id.as_str())
        .collect();
    assert_eq!(man_certs.len(), 1, "{certs:?}");
    assert_eq!(man_certs[0]["id"], rotated.manufacturer_cert_id.as_str());
    assert_eq!(man_certs[0]["commonName"], SERIAL);
    assert_eq!(man_certs[0]["things"], json!([SERIAL]));

    // cleanup: everything init and the walkthrough made is gone.
    let cleaned = json_of(&jitpilot(&target, &data, None, &["--json", "cleanup"]));
    assert_eq!(cleaned["cas"], 2);
    assert_eq!(cleaned["parameters"], 2);
    assert_eq!(cleaned["tableRows"], 3);
    assert_eq!(cleaned["deviceFolders"], 3);
    assert_eq!(cleaned["things"], 1);
    for ca in [&vendor_id, &man_id] {
        assert!(
            sdk.iot
                .describe_ca_certificate()
                .certificate_id(ca.as_str())
                .send()
                .await
                .is_err(),
            "CA {ca} is deleted"
        );
    }
    assert!(
        sdk.ssm
            .get_parameter()
            .name(&param_name)
            .send()
            .await
            .is_err(),
        "the CA key is deleted"
    );
    let rows = sdk
        .dynamodb
        .scan()
        .table_name("CertRotationDevices")
        .send()
        .await
        .expect("scan");
    assert_eq!(rows.count(), 0);
    assert!(sdk
        .iot
        .get_policy()
        .policy_name("JitpilotObserverPolicy")
        .send()
        .await
        .is_err());
    assert!(
        sdk.iot
            .describe_thing()
            .thing_name(SERIAL)
            .send()
            .await
            .is_err(),
        "the thing is deleted"
    );
    let nothing = json_of(&jitpilot(&target, &data, None, &["--json", "cleanup"]));
    assert_eq!(nothing["cas"], 0);

    // teardown: stack, rules and bucket gone.
    let down = json_of(&jitpilot(&target, &data, None, &["--json", "teardown"]));
    assert_eq!(down["existed"], true);
    assert!(sdk
        .cloudformation
        .describe_stacks()
        .stack_name("CertRotation")
        .send()
        .await
        .map(|o| o
            .stacks()
            .iter()
            .all(|s| s.stack_status().map(|s| s.as_str()) == Some("DELETE_COMPLETE")))
        .unwrap_or(true));
    assert!(
        sdk.s3.head_bucket().bucket(bucket).send().await.is_err(),
        "the code bucket is deleted"
    );
    assert!(sdk
        .iot
        .get_topic_rule()
        .rule_name("rule_jitp")
        .send()
        .await
        .is_err());
    let again = json_of(&jitpilot(&target, &data, None, &["--json", "teardown"]));
    assert_eq!(again["existed"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_region_the_error_says_how_to_set_one() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jitpilot"));
    cmd.args(["--backend", "aws", "status"])
        .arg("--data-dir")
        .arg(tmp.path());
    isolate_env(&mut cmd);
    let out = cmd.bounded_output().expect("runs");
    let err = stderr_of(&out);
    assert!(err.contains("--region"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_credentials_the_error_says_how_to_provide_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jitpilot"));
    // Nothing listens on port 1: credentials are resolved before any request.
    cmd.args([
        "--backend",
        "aws",
        "--region",
        "us-east-1",
        "--endpoint-url",
        "http://127.0.0.1:1",
        "status",
    ])
    .arg("--data-dir")
    .arg(tmp.path());
    isolate_env(&mut cmd);
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    let out = cmd.bounded_output().expect("runs");
    let err = stderr_of(&out);
    assert!(
        err.contains("no AWS credentials found") && err.contains("AWS_PROFILE"),
        "{err}"
    );
}
