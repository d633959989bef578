//! Steps 3a–3c of the walkthrough through the rotation function's Lambda
//! handler, over the SDK bindings against moto.

use jitpilot::cloud::aws::lambda::RotationLambda;
use jitpilot::cloud::aws::Clients;

use serde_json::json;
use std::path::Path;

const SERIAL: &str = "IUQWXALODJESC1";

/// Steps 3a–3c through [`RotationLambda`] over the SDK bindings, with what
/// AWS IoT itself would do (JITP's thing and policy) done by the test.
pub async fn run_walkthrough_through_the_lambda(sdk: &Clients, data: &Path, vendor_ca_id: &str) {
    let lambda = RotationLambda::over_aws(sdk, "CertRotationDevices", None, Default::default());
    let device_dir = data.join("devices").join(SERIAL);
    let chain = std::fs::read_to_string(device_dir.join("vendor.cert.pem")).expect("factory cert");
    let vendor_ca = sdk
        .iot
        .describe_ca_certificate()
        .certificate_id(vendor_ca_id)
        .send()
        .await
        .expect("CA");
    let vendor_ca_pem = vendor_ca
        .certificate_description()
        .and_then(|d| d.certificate_pem())
        .expect("pem");
    let device_pem = chain
        .split_inclusive("-----END CERTIFICATE-----")
        .next()
        .expect("device cert")
        .trim()
        .to_string();
    // JITP: AWS IoT registers the cert, creates the thing, attaches the policy.
    let registered = sdk
        .iot
        .register_certificate()
        .certificate_pem(&device_pem)
        .ca_certificate_pem(vendor_ca_pem)
        .status(aws_sdk_iot::types::CertificateStatus::Active)
        .send()
        .await
        .expect("register");
    let vendor_cert_id = registered.certificate_id().expect("id").to_string();
    let vendor_arn = registered.certificate_arn().expect("arn").to_string();
    sdk.iot
        .create_thing()
        .thing_name(SERIAL)
        .send()
        .await
        .expect("thing");
    sdk.iot
        .attach_thing_principal()
        .thing_name(SERIAL)
        .principal(&vendor_arn)
        .send()
        .await
        .expect("attach");
    sdk.iot
        .attach_policy()
        .policy_name("CrInProgressCertPolicy")
        .target(&vendor_arn)
        .send()
        .await
        .expect("policy");

    // 3a: rule_jitp's output for the registered event.
    let topic = format!("$aws/events/certificates/registered/{vendor_ca_id}");
    let event = json!({
        "data": {"certificateId": vendor_cert_id, "caCertificateId": vendor_ca_id, "timestamp": 1,
                 "awsAccountId": "123456789012", "certificateStatus": "ACTIVE",
                 "certificateRegistrationTimestamp": "1", "certificatePem": device_pem},
        "topic": topic, "client_id": null, "cert_id": null
    });
    let answer = lambda.handle(event).await.expect("registered");
    assert_eq!(answer["outcome"], "thing_created", "{answer}");

    // 3b and 3c do not run on moto: moto's certificateId is not AWS's
    // SHA-256 of the DER, which the function computes and checks (README).

    // Malformed input is a refusal, not a crash.
    let answer = lambda
        .handle(json!({"topic": "/cert-rotation/create-man-cert/X/rqst", "data": "oops"}))
        .await
        .expect("refusal");
    assert_eq!(answer["outcome"], "refused");
    assert!(lambda.handle(json!([1])).await.is_err());
}
