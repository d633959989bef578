//! Certificates, CreateKeysAndCertificate, policies, things, topic rules
//! and DescribeEndpoint through the operations.

use super::*;

const ALLOW_ALL: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}"#;

#[tokio::test]
async fn certificates_register_describe_update_and_delete_as_aws_allows() {
    let api = api();
    let (ca, ca_id) = api.register_ca("Maker", "?setAsActive=true", None).await;
    let one = device_cert(&ca, "ONE");
    let v = api
        .ok(
            "POST",
            "/certificate/register?setAsActive=true",
            json!({"certificatePem": one.cert_pem, "caCertificatePem": ca.cert_pem}),
        )
        .await;
    assert_eq!(v["certificateId"], one.id.as_str());
    assert_eq!(v["certificateArn"], cert_arn(&one.id));
    let e = api
        .err(
            "POST",
            "/certificate/register",
            json!({"certificatePem": one.cert_pem}),
        )
        .await;
    assert_error(&e, 409, "ResourceAlreadyExistsException");
    // From a CA nobody registered; against the wrong CA.
    let stranger = new_ca("Stranger");
    let lost = device_cert(&stranger, "LOST");
    let e = api
        .err(
            "POST",
            "/certificate/register",
            json!({"certificatePem": lost.cert_pem}),
        )
        .await;
    assert_error(&e, 400, "CertificateValidationException");
    let e = api
        .err(
            "POST",
            "/certificate/register",
            json!({"certificatePem": lost.cert_pem, "caCertificatePem": ca.cert_pem}),
        )
        .await;
    assert_error(&e, 400, "CertificateValidationException");
    let e = api
        .err("POST", "/certificate/register", json!({"certificatePem": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}))
        .await;
    assert_error(&e, 400, "CertificateValidationException");

    let d = api
        .ok("GET", &format!("/certificates/{}", one.id), Value::Null)
        .await;
    let desc = &d["certificateDescription"];
    assert_eq!(desc["status"], "ACTIVE");
    assert_eq!(desc["caCertificateId"], ca_id.as_str());
    assert_eq!(desc["certificatePem"], one.cert_pem.as_str());
    assert_eq!(desc["ownedBy"], "123456789012");
    assert!(desc["creationDate"].is_f64());
    assert!(
        desc["validity"]["notAfter"].as_i64().unwrap()
            > desc["validity"]["notBefore"].as_i64().unwrap()
    );

    // ACTIVE: not deleted. Attached to a thing: not deleted. Policies: only forced.
    let path = format!("/certificates/{}", one.id);
    let e = api.err("DELETE", &path, Value::Null).await;
    assert_error(&e, 406, "CertificateStateException");
    let e = api
        .err("PUT", &format!("{path}?newStatus=ON"), Value::Null)
        .await;
    assert_error(&e, 400, "InvalidRequestException");
    let e = api.err("PUT", &path, Value::Null).await;
    assert_error(&e, 400, "InvalidRequestException");
    api.ok("PUT", &format!("{path}?newStatus=INACTIVE"), Value::Null)
        .await;
    api.ok("POST", "/things/ONE", Value::Null).await;
    let principal = cert_arn(&one.id);
    api.send(request(
        "PUT",
        "/things/ONE/principals",
        &[("x-amzn-principal", &principal)],
        Value::Null,
    ))
    .await
    .unwrap();
    let e = api.err("DELETE", &path, Value::Null).await;
    assert_error(&e, 409, "DeleteConflictException");
    api.send(request(
        "DELETE",
        "/things/ONE/principals",
        &[("x-amzn-principal", &principal)],
        Value::Null,
    ))
    .await
    .unwrap();
    api.ok(
        "POST",
        "/policies/All",
        json!({"policyDocument": ALLOW_ALL}),
    )
    .await;
    api.ok("PUT", "/target-policies/All", json!({"target": principal}))
        .await;
    let e = api.err("DELETE", &path, Value::Null).await;
    assert_error(&e, 409, "DeleteConflictException");
    api.ok("DELETE", &format!("{path}?forceDelete=true"), Value::Null)
        .await;
    let e = api.err("GET", &path, Value::Null).await;
    assert_error(&e, 404, "ResourceNotFoundException");
    assert!(api
        .ctx
        .cloud
        .store()
        .list_policy_targets("All")
        .unwrap()
        .is_empty());

    // A revoked certificate stays revoked.
    let two = device_cert(&ca, "TWO");
    api.ok(
        "POST",
        "/certificate/register",
        json!({"certificatePem": two.cert_pem, "status": "REVOKED"}),
    )
    .await;
    let e = api
        .err(
            "PUT",
            &format!("/certificates/{}?newStatus=ACTIVE", two.id),
            Value::Null,
        )
        .await;
    assert_error(&e, 406, "CertificateStateException");
}

#[tokio::test]
async fn certificates_are_listed_newest_first_page_by_page() {
    let api = api();
    let (ca, ca_id) = api.register_ca("Maker", "?setAsActive=true", None).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let cert = device_cert(&ca, &format!("D{n}"));
        api.ok(
            "POST",
            "/certificate/register",
            json!({"certificatePem": cert.cert_pem}),
        )
        .await;
        ids.push(cert.id);
        // Distinct creation times, so the order is the registration order.
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let first = api.ok("GET", "/certificates?pageSize=2", Value::Null).await;
    let next = first["nextMarker"].as_str().unwrap().to_string();
    let second = api
        .ok(
            "GET",
            &format!("/certificates?pageSize=2&marker={next}"),
            Value::Null,
        )
        .await;
    assert!(second.get("nextMarker").is_none());
    let listed: Vec<&str> = first["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["certificates"].as_array().unwrap())
        .map(|c| c["certificateId"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        vec![ids[2].as_str(), ids[1].as_str(), ids[0].as_str()]
    );
    let ascending = api
        .ok(
            "GET",
            &format!("/certificates-by-ca/{ca_id}?isAscendingOrder=true"),
            Value::Null,
        )
        .await;
    assert_eq!(
        ascending["certificates"][0]["certificateId"],
        ids[0].as_str()
    );
    assert_eq!(ascending["certificates"][0]["status"], "INACTIVE");
    let none = api
        .ok(
            "GET",
            &format!("/certificates-by-ca/{}", "f".repeat(64)),
            Value::Null,
        )
        .await;
    assert_eq!(none["certificates"], json!([]));
}

#[tokio::test]
async fn create_keys_and_certificate_signs_with_a_hidden_local_amazon_ca() {
    let api = api();
    let v = api
        .ok(
            "POST",
            "/keys-and-certificate?setAsActive=true",
            Value::Null,
        )
        .await;
    let id = v["certificateId"].as_str().unwrap();
    let pem = v["certificatePem"].as_str().unwrap();
    let key = v["keyPair"]["PrivateKey"].as_str().unwrap();
    assert!(v["keyPair"]["PublicKey"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN PUBLIC KEY-----"));
    assert_eq!(pki::certificate_id_from_pem(pem).unwrap(), id);
    let info = pki::parse_cert(pem).unwrap();
    assert_eq!(
        info.public_key_der,
        pki::public_key_der_of_key(key).unwrap()
    );
    assert_eq!(
        info.subject.common_name.as_deref(),
        Some("AWS IoT Certificate")
    );

    // Signed by a registered ACTIVE CA (so the endpoint accepts it) that
    // the API does not show, as AWS does not show its own.
    let store = api.ctx.cloud.store();
    let amazon = store
        .list_cas()
        .unwrap()
        .into_iter()
        .find(|c| c.label == AMAZON_CA_LABEL)
        .unwrap();
    assert_eq!(amazon.status, CertificateStatus::Active);
    assert!(pki::verify_signed_by(pem, &amazon.pem).unwrap());
    let d = api
        .ok("GET", &format!("/certificates/{id}"), Value::Null)
        .await;
    assert_eq!(d["certificateDescription"]["status"], "ACTIVE");
    assert!(d["certificateDescription"].get("caCertificateId").is_none());
    let cas = api.ok("GET", "/cacertificates", Value::Null).await;
    assert_eq!(cas["certificates"], json!([]));
    let e = api
        .err("GET", &format!("/cacertificate/{}", amazon.id), Value::Null)
        .await;
    assert_error(&e, 404, "ResourceNotFoundException");

    // The same CA signs the next one; without setAsActive it is INACTIVE.
    let w = api.ok("POST", "/keys-and-certificate", Value::Null).await;
    let second = w["certificatePem"].as_str().unwrap();
    assert!(pki::verify_signed_by(second, &amazon.pem).unwrap());
    assert_eq!(store.list_cas().unwrap().len(), 1);
    let d = api
        .ok(
            "GET",
            &format!("/certificates/{}", w["certificateId"].as_str().unwrap()),
            Value::Null,
        )
        .await;
    assert_eq!(d["certificateDescription"]["status"], "INACTIVE");
}

#[tokio::test]
async fn policies_are_created_once_attached_to_certificate_arns_and_deleted_when_free() {
    let api = api();
    let v = api
        .ok(
            "POST",
            "/policies/All",
            json!({"policyDocument": ALLOW_ALL}),
        )
        .await;
    assert_eq!(
        v["policyArn"],
        "arn:aws:iot:us-east-1:123456789012:policy/All"
    );
    assert_eq!(v["policyVersionId"], "1");
    let e = api
        .err(
            "POST",
            "/policies/All",
            json!({"policyDocument": ALLOW_ALL}),
        )
        .await;
    assert_error(&e, 409, "ResourceAlreadyExistsException");
    let e = api
        .err(
            "POST",
            "/policies/Bad",
            json!({"policyDocument": "{\"Statement\": 3}"}),
        )
        .await;
    assert_error(&e, 400, "MalformedPolicyException");
    let e = api
        .err(
            "POST",
            "/policies/No%20Spaces",
            json!({"policyDocument": ALLOW_ALL}),
        )
        .await;
    assert_error(&e, 400, "InvalidRequestException");
    let e = api.err("POST", "/policies/Empty", json!({})).await;
    assert_error(&e, 400, "InvalidRequestException");
    let got = api.ok("GET", "/policies/All", Value::Null).await;
    assert_eq!(got["policyDocument"], ALLOW_ALL);
    assert_eq!(got["defaultVersionId"], "1");

    let created = api.ok("POST", "/keys-and-certificate", Value::Null).await;
    let arn = created["certificateArn"].as_str().unwrap().to_string();
    let e = api
        .err("PUT", "/target-policies/Nope", json!({"target": arn}))
        .await;
    assert_error(&e, 404, "ResourceNotFoundException");
    let ghost = cert_arn(&"0".repeat(64));
    let e = api
        .err("PUT", "/target-policies/All", json!({"target": ghost}))
        .await;
    assert_error(&e, 404, "ResourceNotFoundException");
    api.ok("PUT", "/target-policies/All", json!({"target": arn}))
        .await;
    api.ok("PUT", "/target-policies/All", json!({"target": arn}))
        .await;
    let attached = api
        .ok(
            "POST",
            &format!("/attached-policies/{}", urlencode(&arn)),
            Value::Null,
        )
        .await;
    assert_eq!(
        attached["policies"],
        json!([{"policyName": "All", "policyArn": v["policyArn"]}])
    );
    let targets = api.ok("POST", "/policy-targets/All", Value::Null).await;
    assert_eq!(targets["targets"], json!([arn]));

    let e = api.err("DELETE", "/policies/All", Value::Null).await;
    assert_error(&e, 409, "DeleteConflictException");
    api.ok("POST", "/target-policies/All", json!({"target": arn}))
        .await;
    api.ok("DELETE", "/policies/All", Value::Null).await;
    let e = api.err("GET", "/policies/All", Value::Null).await;
    assert_error(&e, 404, "ResourceNotFoundException");
    let e = api.err("DELETE", "/policies/All", Value::Null).await;
    assert_error(&e, 404, "ResourceNotFoundException");
    let listed = api.ok("GET", "/policies", Value::Null).await;
    assert_eq!(listed["policies"], json!([]));
}

#[tokio::test]
async fn things_are_idempotent_and_their_principals_travel_in_a_header() {
    let api = api();
    let attrs = json!({"attributePayload": {"attributes": {"serial": "S1"}}});
    let v = api.ok("POST", "/things/S1", attrs.clone()).await;
    assert_eq!(v["thingArn"], "arn:aws:iot:us-east-1:123456789012:thing/S1");
    let again = api.ok("POST", "/things/S1", attrs).await;
    assert_eq!(again["thingId"], v["thingId"]);
    let e = api
        .err(
            "POST",
            "/things/S1",
            json!({"attributePayload": {"attributes": {"serial": "other"}}}),
        )
        .await;
    assert_error(&e, 409, "ResourceAlreadyExistsException");
    let e = api.err("POST", "/things/bad%20name", Value::Null).await;
    assert_error(&e, 400, "InvalidRequestException");
    let e = api
        .err("POST", "/things/T", json!({"thingTypeName": "Sensor"}))
        .await;
    assert_error(&e, 404, "ResourceNotFoundException");
    let d = api.ok("GET", "/things/S1", Value::Null).await;
    assert_eq!(d["thingId"], v["thingId"]);
    assert_eq!(d["attributes"], json!({"serial": "S1"}));
    assert_eq!(d["defaultClientId"], "S1");
    let filtered = api
        .ok(
            "GET",
            "/things?attributeName=serial&attributeValue=S1",
            Value::Null,
        )
        .await;
    assert_eq!(filtered["things"][0]["thingName"], "S1");

    let created = api.ok("POST", "/keys-and-certificate", Value::Null).await;
    let arn = created["certificateArn"].as_str().unwrap().to_string();
    let with = |method: &str, path: &str| {
        request(method, path, &[("x-amzn-principal", &arn)], Value::Null)
    };
    let e = api
        .send(request("PUT", "/things/S1/principals", &[], Value::Null))
        .await
        .unwrap_err();
    assert_error(&e, 400, "InvalidRequestException");
    let e = api
        .send(with("PUT", "/things/Nope/principals"))
        .await
        .unwrap_err();
    assert_error(&e, 404, "ResourceNotFoundException");
    api.send(with("PUT", "/things/S1/principals"))
        .await
        .unwrap();
    let p = api.ok("GET", "/things/S1/principals", Value::Null).await;
    assert_eq!(p["principals"], json!([arn]));
    let t = api.send(with("GET", "/principals/things")).await.unwrap();
    assert_eq!(t["things"], json!(["S1"]));

    let e = api.err("DELETE", "/things/S1", Value::Null).await;
    assert_error(&e, 400, "InvalidRequestException");
    api.send(with("DELETE", "/things/S1/principals"))
        .await
        .unwrap();
    api.ok("DELETE", "/things/S1", Value::Null).await;
    let e = api.err("GET", "/things/S1", Value::Null).await;
    assert_error(&e, 404, "ResourceNotFoundException");
    // AWS: deleting a thing that is not there succeeds.
    api.ok("DELETE", "/things/S1", Value::Null).await;
}

#[tokio::test]
async fn topic_rules_speak_the_apis_spelling_and_are_checked_when_created() {
    let api = api();
    let payload = |sql: &str, actions: Value| json!({"sql": sql, "actions": actions});
    let republish = json!([{"republish": {"topic": "out/${topic(2)}", "roleArn": "arn:aws:iam::123456789012:role/r", "qos": 1}}]);
    api.ok(
        "POST",
        "/rules/echo",
        payload("SELECT * FROM 'in/+'", republish.clone()),
    )
    .await;
    let e = api
        .err(
            "POST",
            "/rules/echo",
            payload("SELECT * FROM 'in/+'", republish.clone()),
        )
        .await;
    assert_error(&e, 409, "ResourceAlreadyExistsException");
    let e = api
        .err(
            "POST",
            "/rules/bad",
            payload("SELEKT * FROM 'x'", json!([])),
        )
        .await;
    assert_error(&e, 400, "SqlParseException");
    let e = api
        .err(
            "POST",
            "/rules/sqs",
            payload("SELECT * FROM 'x'", json!([{"sqs": {"queueUrl": "q"}}])),
        )
        .await;
    assert_error(&e, 400, "InvalidRequestException");
    let e = api
        .err(
            "POST",
            "/rules/bad-name",
            payload("SELECT * FROM 'x'", json!([])),
        )
        .await;
    assert_error(&e, 400, "InvalidRequestException");

    // Stored as the stack engine stores rules; answered as AWS answers.
    let stored = api.ctx.cloud.store().list_topic_rules().unwrap();
    assert_eq!(
        stored[0].actions[0]["Republish"]["Topic"],
        "out/${topic(2)}"
    );
    let got = api.ok("GET", "/rules/echo", Value::Null).await;
    assert_eq!(
        got["ruleArn"],
        "arn:aws:iot:us-east-1:123456789012:rule/echo"
    );
    assert_eq!(got["rule"]["actions"], republish);
    assert_eq!(got["rule"]["ruleDisabled"], false);

    let lambda =
        json!([{"lambda": {"functionArn": "arn:aws:lambda:us-east-1:123456789012:function:f"}}]);
    let mut replaced = payload("SELECT * FROM 'in/#'", lambda.clone());
    replaced["ruleDisabled"] = json!(true);
    api.ok("PATCH", "/rules/echo", replaced).await;
    let listed = api.ok("GET", "/rules", Value::Null).await;
    assert_eq!(listed["rules"][0]["topicPattern"], "in/#");
    assert_eq!(listed["rules"][0]["ruleDisabled"], true);
    assert_eq!(
        api.ok("GET", "/rules/echo", Value::Null).await["rule"]["actions"],
        lambda
    );

    api.ok("DELETE", "/rules/echo", Value::Null).await;
    for (method, body) in [
        ("GET", Value::Null),
        ("DELETE", Value::Null),
        ("PATCH", payload("SELECT * FROM 'x'", json!([]))),
    ] {
        let e = api.err(method, "/rules/echo", body).await;
        assert_error(&e, 401, "UnauthorizedException");
    }
}

#[tokio::test]
async fn describe_endpoint_names_the_local_mqtt_endpoint() {
    let mut api = api();
    let v = api
        .ok("GET", "/endpoint?endpointType=iot%3AData-ATS", Value::Null)
        .await;
    assert_eq!(v["endpointAddress"], "localhost");
    api.ctx.mqtt_addr = Some("127.0.0.1:18883".parse().unwrap());
    let v = api
        .ok("GET", "/endpoint?endpointType=iot:Data-ATS", Value::Null)
        .await;
    assert_eq!(v["endpointAddress"], "localhost:18883");
    api.ctx.mqtt_addr = Some("0.0.0.0:8883".parse().unwrap());
    let v = api.ok("GET", "/endpoint", Value::Null).await;
    assert_eq!(v["endpointAddress"], "localhost");
    let e = api
        .err("GET", "/endpoint?endpointType=iot:Jobs", Value::Null)
        .await;
    assert_error(&e, 400, "InvalidRequestException");
}

/// The sample's Lambda registers manufacturer certificates as pyOpenSSL
/// makes them by default: X.509 v1, serial number 0 for every device
/// (`testdata/`: made with `openssl x509 -req -set_serial 0`, OpenSSL 3).
#[tokio::test]
async fn version_1_certificates_sharing_serial_0_register_by_their_hash() {
    let api = api();
    let ca_pem = include_str!("../testdata/v1-ca.pem");
    let devices =
        pki::pem_certificates(include_str!("../testdata/v1-serial0-devices.pem")).unwrap();
    let ca_id = pki::certificate_id_from_pem(ca_pem).unwrap();
    api.ctx
        .cloud
        .store()
        .register_ca(&crate::model::CaCertificate {
            id: ca_id.clone(),
            pem: ca_pem.to_string(),
            status: CertificateStatus::Active,
            auto_registration: false,
            registration_config: None,
            label: "v1 test CA".into(),
            created_at: 1,
        })
        .unwrap();
    for der in &devices {
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der)
        );
        let v = api
            .ok(
                "POST",
                "/certificate/register?setAsActive=true",
                json!({"certificatePem": pem, "caCertificatePem": ca_pem}),
            )
            .await;
        assert_eq!(v["certificateId"], pki::certificate_id(der));
    }
    let by_ca = api
        .ok("GET", &format!("/certificates-by-ca/{ca_id}"), Value::Null)
        .await;
    assert_eq!(by_ca["certificates"].as_array().unwrap().len(), 2);
}
