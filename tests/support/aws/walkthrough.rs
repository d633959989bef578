//! Steps 3a–3c of the walkthrough through the rotation function's Lambda
//! handler, over the SDK bindings against moto, with every resource checked
//! through the SDK afterwards.
//!
//! moto assigns certificateIds its own way (a SHA-256 of the PEM text, not
//! AWS's SHA-256 of the DER), which is what this test relies on to show that
//! the function names certificates by the ids the API returns.

use jitpilot::cloud::aws::lambda::RotationLambda;
use jitpilot::cloud::aws::Clients;
use jitpilot::pki;
use jitpilot::rotation::Publisher;

use serde_json::{json, Value};
use std::path::Path;
use std::sync::{Arc, Mutex};

pub const SERIAL: &str = "IUQWXALODJESC1";
const TABLE: &str = "CertRotationDevices";
const IN_PROGRESS_POLICY: &str = "CrInProgressCertPolicy";
const ROTATION_COMPLETE_POLICY: &str = "CrCertRotationCompleteCertPolicy";

/// What the function published (the test stands in for `iot-data:Publish`,
/// which moto accepts but cannot show).
#[derive(Default)]
pub struct Answers(Mutex<Vec<(String, Value)>>);

impl Answers {
    /// Everything published so far, and forgets it.
    pub fn take(&self) -> Vec<(String, Value)> {
        std::mem::take(&mut *self.0.lock().expect("answers"))
    }
}

/// `published` is exactly one `{"error": {"code", "message"}}` answer per
/// code, in order, each on a `…/<serial>/rspn` topic.
fn assert_refusals(published: &[(String, Value)], codes: &[&str]) {
    let got: Vec<&str> = published
        .iter()
        .map(|(topic, payload)| {
            assert!(topic.ends_with(&format!("/{SERIAL}/rspn")), "{topic}");
            assert!(
                payload["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{payload}"
            );
            payload["error"]["code"]
                .as_str()
                .unwrap_or("(no error code)")
        })
        .collect();
    assert_eq!(got, codes, "{published:?}");
}

impl Publisher for Answers {
    fn publish(&self, topic: &str, payload: Vec<u8>) {
        let payload = serde_json::from_slice(&payload).expect("the function publishes JSON");
        self.0
            .lock()
            .expect("answers")
            .push((topic.to_string(), payload));
    }
}

/// The device certificate (first PEM block of `vendor.cert.pem`).
/// A registered CA's certificate, as `aws iot describe-ca-certificate` gives it.
pub async fn ca_pem(sdk: &Clients, ca_id: &str) -> String {
    sdk.iot
        .describe_ca_certificate()
        .certificate_id(ca_id)
        .send()
        .await
        .expect("DescribeCACertificate")
        .certificate_description()
        .and_then(|d| d.certificate_pem())
        .expect("the CA's pem")
        .to_string()
}

pub fn vendor_device_pem(data: &Path, serial: &str) -> String {
    let chain = std::fs::read_to_string(data.join("devices").join(serial).join("vendor.cert.pem"))
        .expect("factory cert");
    chain
        .split_inclusive("-----END CERTIFICATE-----")
        .next()
        .expect("device cert")
        .trim()
        .to_string()
}

/// What AWS IoT's JITP does on the first connect (moto cannot: it has no
/// MQTT endpoint): register the vendor cert under the Vendor CA, create the
/// thing, attach it and the in-progress policy. Returns (certificateId, ARN)
/// as the API assigned them.
pub async fn jitp_as_iot_would(
    sdk: &Clients,
    data: &Path,
    serial: &str,
    vendor_ca_id: &str,
) -> (String, String) {
    let vendor_ca_pem = ca_pem(sdk, vendor_ca_id).await;
    let registered = sdk
        .iot
        .register_certificate()
        .certificate_pem(vendor_device_pem(data, serial))
        .ca_certificate_pem(vendor_ca_pem)
        .status(aws_sdk_iot::types::CertificateStatus::Active)
        .send()
        .await
        .expect("register");
    let vendor_cert_id = registered.certificate_id().expect("id").to_string();
    let vendor_arn = registered.certificate_arn().expect("arn").to_string();
    sdk.iot
        .create_thing()
        .thing_name(serial)
        .send()
        .await
        .expect("thing");
    sdk.iot
        .attach_thing_principal()
        .thing_name(serial)
        .principal(&vendor_arn)
        .send()
        .await
        .expect("attach");
    sdk.iot
        .attach_policy()
        .policy_name(IN_PROGRESS_POLICY)
        .target(&vendor_arn)
        .send()
        .await
        .expect("policy");
    (vendor_cert_id, vendor_arn)
}

/// rule_jitp's SQL output for the registered event of `cert_id`.
pub fn registered_event(data: &Path, serial: &str, cert_id: &str, vendor_ca_id: &str) -> Value {
    json!({
        "data": {"certificateId": cert_id, "caCertificateId": vendor_ca_id, "timestamp": 1,
                 "awsAccountId": "123456789012", "certificateStatus": "ACTIVE",
                 "certificateRegistrationTimestamp": "1",
                 "certificatePem": vendor_device_pem(data, serial)},
        "topic": format!("$aws/events/certificates/registered/{vendor_ca_id}"),
        "client_id": null, "cert_id": null
    })
}

/// A rotation rule's SQL output: `SELECT * as data, topic() as topic,
/// clientId() as client_id, principal() as cert_id`.
fn rule_output(step: &str, serial: &str, data: Value, client_id: &str, principal: &str) -> Value {
    json!({
        "data": data,
        "topic": format!("/cert-rotation/{step}/{serial}/rqst"),
        "client_id": client_id,
        "cert_id": principal,
    })
}

/// The device table row of `serial`, attribute → string.
pub async fn row(sdk: &Clients, serial: &str) -> std::collections::HashMap<String, String> {
    let out = sdk
        .dynamodb
        .get_item()
        .table_name(TABLE)
        .key(
            "SerialNumber",
            aws_sdk_dynamodb::types::AttributeValue::S(serial.to_string()),
        )
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem");
    out.item()
        .expect("row")
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_s().ok()?.clone())))
        .collect()
}

/// Certificate ids attached to the thing, from their ARNs.
/// 3c done, as the cloud holds it: the vendor certificate deleted (after
/// being detached and set INACTIVE), the thing holding only the
/// manufacturer certificate, the table row `CR_CERT_ROTATION_COMPLETED`
/// naming it and no longer the vendor certificate.
pub async fn assert_rotated(sdk: &Clients, serial: &str, vendor_id: &str, man_id: &str) {
    assert_vendor_cert_deleted(sdk, serial, vendor_id, man_id).await;
    let r = row(sdk, serial).await;
    assert_eq!(r["CrState"], "CR_CERT_ROTATION_COMPLETED");
    assert_eq!(r["ManufacturerCertId"], man_id);
    assert!(!r.contains_key("VendorCertId"), "{r:?}");
}

/// The vendor certificate deleted; the thing holds only `man_id`.
pub async fn assert_vendor_cert_deleted(
    sdk: &Clients,
    serial: &str,
    vendor_id: &str,
    man_id: &str,
) {
    assert!(
        sdk.iot
            .describe_certificate()
            .certificate_id(vendor_id)
            .send()
            .await
            .is_err(),
        "the vendor certificate is deleted"
    );
    assert_eq!(thing_cert_ids(sdk, serial).await, vec![man_id.to_string()]);
}

pub async fn thing_cert_ids(sdk: &Clients, serial: &str) -> Vec<String> {
    let out = sdk
        .iot
        .list_thing_principals()
        .thing_name(serial)
        .send()
        .await
        .expect("ListThingPrincipals");
    out.principals()
        .iter()
        .map(|arn| arn.rsplit('/').next().expect("cert/<id>").to_string())
        .collect()
}

/// What the walkthrough leaves for `status` and `cleanup` to find.
pub struct Rotated {
    pub manufacturer_cert_id: String,
}

/// Steps 3a–3c through [`RotationLambda`] over the SDK bindings, with what
/// AWS IoT itself would do (JITP's thing and policy) done by the test.
pub async fn run_walkthrough_through_the_lambda(
    sdk: &Clients,
    data: &Path,
    vendor_ca_id: &str,
    manufacturer_ca_id: &str,
) -> Rotated {
    let answers = Arc::new(Answers::default());
    let lambda =
        RotationLambda::over_aws_answering_with(sdk, TABLE, Default::default(), answers.clone());
    let (vendor_id, _) = jitp_as_iot_would(sdk, data, SERIAL, vendor_ca_id).await;

    // 3a: rule_jitp's output for the registered event.
    let answer = lambda
        .handle(registered_event(data, SERIAL, &vendor_id, vendor_ca_id))
        .await
        .expect("registered");
    assert_eq!(answer["outcome"], "thing_created", "{answer}");
    let r = row(sdk, SERIAL).await;
    assert_eq!(r["CrState"], "CR_THING_CREATED");
    assert_eq!(r["VendorCertId"], vendor_id);

    // 3b refusals, answered as on the local cloud: nothing is issued.
    let other_key = simulated_devices::firmware::new_key_and_csr("ANOTHERSERIAL1").expect("csr");
    let answer = lambda
        .handle(rule_output(
            "create-man-cert",
            SERIAL,
            json!({"csr": other_key.csr_pem}),
            SERIAL,
            &vendor_id,
        ))
        .await
        .expect("refusal");
    assert_eq!(answer["code"], "csr_wrong_serial", "{answer}");
    let mine = simulated_devices::firmware::new_key_and_csr(SERIAL).expect("csr");
    let answer = lambda
        .handle(rule_output(
            "create-man-cert",
            SERIAL,
            json!({"csr": mine.csr_pem}),
            "ANOTHERSERIAL1",
            &vendor_id,
        ))
        .await
        .expect("refusal");
    assert_eq!(answer["code"], "client_id_mismatch", "{answer}");
    // Every refusal is answered on the serial's response topic, with its code.
    assert_refusals(&answers.take(), &["csr_wrong_serial", "client_id_mismatch"]);
    assert_eq!(thing_cert_ids(sdk, SERIAL).await, vec![vendor_id.clone()]);

    // 3b: the CSR over the vendor cert's connection.
    let request = rule_output(
        "create-man-cert",
        SERIAL,
        json!({"csr": mine.csr_pem}),
        SERIAL,
        &vendor_id,
    );
    let answer = lambda.handle(request.clone()).await.expect("create");
    assert_eq!(answer["outcome"], "man_cert_created", "{answer}");
    let published = answers.take();
    assert_eq!(published.len(), 1, "{published:?}");
    let (topic, payload) = &published[0];
    assert_eq!(
        topic,
        &format!("/cert-rotation/create-man-cert/{SERIAL}/rspn")
    );
    let man_id = payload["cert_id"].as_str().expect("cert_id").to_string();
    let man_pem = payload["pem"].as_str().expect("pem").to_string();
    // The id is the registry's (moto's differs from AWS's SHA-256 of the
    // DER: this is what makes the check below mean something).
    assert_ne!(
        man_id,
        pki::certificate_id_from_pem(&man_pem).expect("id"),
        "moto assigns its own ids; the function must answer with them"
    );
    let described = sdk
        .iot
        .describe_certificate()
        .certificate_id(&man_id)
        .send()
        .await
        .expect("the answered cert_id is the registry's");
    let described = described.certificate_description().expect("description");
    assert_eq!(described.status().map(|s| s.as_str()), Some("ACTIVE"));
    assert_eq!(described.certificate_pem(), Some(man_pem.as_str()));
    let man_arn = described.certificate_arn().expect("arn").to_string();
    let man_ca_pem = ca_pem(sdk, manufacturer_ca_id).await;
    assert!(
        pki::verify_signed_by(&man_pem, &man_ca_pem).expect("verify"),
        "signed with the Manufacturer CA key read from SSM"
    );
    assert_eq!(
        pki::parse_cert(&man_pem).expect("cert").public_key_der,
        pki::public_key_der_of_key(&mine.key_pem).expect("key"),
        "issued for the CSR's key"
    );
    let policies = sdk
        .iot
        .list_attached_policies()
        .target(&man_arn)
        .send()
        .await
        .expect("policies");
    let policies: Vec<&str> = policies
        .policies()
        .iter()
        .filter_map(|p| p.policy_name())
        .collect();
    assert_eq!(policies, vec![ROTATION_COMPLETE_POLICY]);
    let mut on_thing = thing_cert_ids(sdk, SERIAL).await;
    on_thing.sort();
    let mut expected = vec![vendor_id.clone(), man_id.clone()];
    expected.sort();
    assert_eq!(on_thing, expected);
    let r = row(sdk, SERIAL).await;
    assert_eq!(r["CrState"], "CR_MAN_CERT_CREATED");
    assert_eq!(r["ManufacturerCertId"], man_id);
    assert_eq!(r["VendorCertId"], vendor_id);
    assert!(
        !r.contains_key("PendingManufacturerCertId"),
        "the pending id is cleared once recorded: {r:?}"
    );

    // The device missed the answer and asks again: the same cert, again.
    let answer = lambda.handle(request).await.expect("retried create");
    assert_eq!(answer["outcome"], "republished", "{answer}");
    assert_eq!(answers.take(), published);

    // 3c refusals: a wrong id, and the vendor cert's connection.
    let wrong = "0".repeat(64);
    let answer = lambda
        .handle(rule_output(
            "ack-man-cert",
            SERIAL,
            json!({"cert_id": wrong}),
            SERIAL,
            &man_id,
        ))
        .await
        .expect("refusal");
    assert_eq!(answer["code"], "wrong_cert_id", "{answer}");
    assert_refusals(&answers.take(), &["wrong_cert_id"]);
    let answer = lambda
        .handle(rule_output(
            "ack-man-cert",
            SERIAL,
            json!({"cert_id": man_id}),
            SERIAL,
            &vendor_id,
        ))
        .await
        .expect("refusal");
    assert_eq!(
        answer["code"], "principal_not_manufacturer_cert",
        "{answer}"
    );
    assert_refusals(&answers.take(), &["principal_not_manufacturer_cert"]);
    assert_eq!(row(sdk, SERIAL).await["CrState"], "CR_MAN_CERT_CREATED");

    // 3c: the ack over the manufacturer cert's connection.
    let ack = rule_output(
        "ack-man-cert",
        SERIAL,
        json!({"cert_id": man_id}),
        SERIAL,
        &man_id,
    );
    let answer = lambda.handle(ack.clone()).await.expect("ack");
    assert_eq!(answer["outcome"], "cert_rotation_completed", "{answer}");
    let ack_answer = (
        format!("/cert-rotation/ack-man-cert/{SERIAL}/rspn"),
        json!({"cert_id": man_id}),
    );
    assert_eq!(answers.take(), vec![ack_answer.clone()]);
    // The vendor cert: detached, set INACTIVE, deleted (the function's design).
    assert_rotated(sdk, SERIAL, &vendor_id, &man_id).await;

    // A retried ack gets its answer again (the sample never answers it).
    let answer = lambda.handle(ack).await.expect("retried ack");
    assert_eq!(answer["outcome"], "republished", "{answer}");
    assert_eq!(answers.take(), vec![ack_answer]);

    // Malformed input is a refusal, not a crash.
    let answer = lambda
        .handle(json!({"topic": "/cert-rotation/create-man-cert/X/rqst", "data": "oops"}))
        .await
        .expect("refusal");
    assert_eq!(answer["outcome"], "refused");
    assert!(lambda.handle(json!([1])).await.is_err());

    Rotated {
        manufacturer_cert_id: man_id,
    }
}

/// Steps 3a–3c on jitpilot's local cloud, for real: `jitpilot --backend
/// aws device SERIAL jitp`, then `… onboard`, the device dialling what
/// `DescribeEndpoint` answered. JITP registers the vendor certificate and
/// runs the template, `rule_jitp` and the two rotation rules invoke the
/// rotation function, which answers on the endpoint. Each step's result is
/// checked through the SDK.
pub async fn run_walkthrough_on_the_endpoint(
    target: &super::Target,
    sdk: &Clients,
    data: &Path,
    vendor_ca_id: &str,
    manufacturer_ca_id: &str,
) -> Rotated {
    let device = |step: &str| {
        super::json_of(&super::jitpilot(
            target,
            data,
            None,
            &["--json", "device", SERIAL, step],
        ))
    };
    // 3a: the first connect is refused, JITP provisions, the retry connects.
    let jitp = device("jitp");
    assert_eq!(jitp["crState"], "CR_THING_CREATED", "{jitp}");
    let local = target.local_cloud().expect("jitpilot target");
    assert_eq!(
        jitp["endpoint"],
        local.iot_endpoint(),
        "DescribeEndpoint's answer"
    );
    let r = row(sdk, SERIAL).await;
    let vendor_id = r["VendorCertId"].clone();
    assert_eq!(
        vendor_id,
        pki::certificate_id_from_pem(&vendor_device_pem(data, SERIAL)).expect("id"),
        "JITP registered the device's factory certificate"
    );
    let vendor = sdk
        .iot
        .describe_certificate()
        .certificate_id(&vendor_id)
        .send()
        .await
        .expect("JITP registered the vendor certificate");
    let vendor = vendor.certificate_description().expect("description");
    assert_eq!(vendor.status().map(|s| s.as_str()), Some("ACTIVE"));
    assert_eq!(vendor.ca_certificate_id(), Some(vendor_ca_id));
    let vendor_arn = vendor.certificate_arn().expect("arn").to_string();
    let policies = sdk
        .iot
        .list_attached_policies()
        .target(&vendor_arn)
        .send()
        .await
        .expect("policies");
    let policies: Vec<&str> = policies
        .policies()
        .iter()
        .filter_map(|p| p.policy_name())
        .collect();
    assert_eq!(
        policies,
        vec![IN_PROGRESS_POLICY],
        "the JITP template's policy"
    );
    assert_eq!(thing_cert_ids(sdk, SERIAL).await, vec![vendor_id.clone()]);

    // 3b and 3c: the rotation function, invoked by the rules.
    let onboarded = device("onboard");
    assert_eq!(
        onboarded["crState"], "CR_CERT_ROTATION_COMPLETED",
        "{onboarded}"
    );
    let man_id = onboarded["outcome"]["manufacturer_cert_id"]
        .as_str()
        .expect("manufacturer cert id")
        .to_string();
    let man_pem = std::fs::read_to_string(
        data.join("devices")
            .join(SERIAL)
            .join("manufacturer.cert.pem"),
    )
    .expect("the device stored its manufacturer cert");
    let man_ca_pem = ca_pem(sdk, manufacturer_ca_id).await;
    assert!(
        pki::verify_signed_by(&man_pem, &man_ca_pem).expect("verify"),
        "signed with the Manufacturer CA key read from the parameter store"
    );
    let described = sdk
        .iot
        .describe_certificate()
        .certificate_id(&man_id)
        .send()
        .await
        .expect("the manufacturer cert is registered");
    let described = described.certificate_description().expect("description");
    assert_eq!(described.status().map(|s| s.as_str()), Some("ACTIVE"));
    let policies = sdk
        .iot
        .list_attached_policies()
        .target(described.certificate_arn().expect("arn"))
        .send()
        .await
        .expect("policies");
    let policies: Vec<&str> = policies
        .policies()
        .iter()
        .filter_map(|p| p.policy_name())
        .collect();
    assert_eq!(policies, vec![ROTATION_COMPLETE_POLICY]);
    // 3c: the vendor cert detached, deactivated and deleted.
    assert_rotated(sdk, SERIAL, &vendor_id, &man_id).await;
    Rotated {
        manufacturer_cert_id: man_id,
    }
}
