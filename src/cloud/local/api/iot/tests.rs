//! The IoT operations called as the HTTP server calls them (`operation`
//! then `call`) with restJson-shaped requests, on a local cloud in a temp
//! dir: answers in AWS's shapes, AWS's errors, nothing changed by a refusal.

use super::*;
use crate::cloud::local::LocalCloud;
use crate::cloud::EventBus;
use crate::model::CertificateStatus;
use crate::pki::{self, Issued, KeyAlgorithm, Subject};
use bytes::Bytes;
use serde_json::json;

mod registry;

pub(super) struct Api {
    pub _dir: tempfile::TempDir,
    pub ctx: ApiContext,
}

pub(super) fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let cloud = LocalCloud::open(dir.path(), EventBus::default()).unwrap();
    Api {
        ctx: ApiContext::without_endpoint(cloud),
        _dir: dir,
    }
}

/// A request as the server builds it: `path_and_query` split, percent-decoded.
pub(super) fn request(
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> ApiRequest {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut map = http::HeaderMap::new();
    for (k, v) in headers {
        map.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    ApiRequest {
        service: "iot".into(),
        method: method.parse().unwrap(),
        path: path.into(),
        query: form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        headers: map,
        body: if body.is_null() {
            Bytes::new()
        } else {
            Bytes::from(serde_json::to_vec(&body).unwrap())
        },
    }
}

impl Api {
    pub async fn send(&self, request: ApiRequest) -> Result<Value, ApiError> {
        let op = Iot.operation(&request)?;
        let response = Iot.call(&self.ctx, op, request).await?;
        assert_eq!(response.status, 200);
        Ok(serde_json::from_slice(&response.body).unwrap())
    }

    pub async fn call(&self, method: &str, path: &str, body: Value) -> Result<Value, ApiError> {
        self.send(request(method, path, &[], body)).await
    }

    pub async fn ok(&self, method: &str, path: &str, body: Value) -> Value {
        match self.call(method, path, body).await {
            Ok(v) => v,
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }

    pub async fn err(&self, method: &str, path: &str, body: Value) -> ApiError {
        match self.call(method, path, body).await {
            Ok(v) => panic!("{method} {path} should fail, answered {v}"),
            Err(e) => e,
        }
    }

    pub async fn code(&self) -> String {
        let v = self.ok("GET", "/registrationcode", Value::Null).await;
        v["registrationCode"].as_str().unwrap().to_string()
    }

    /// A new CA registered with a valid proof; `query` as RegisterCACertificate's.
    pub async fn register_ca(
        &self,
        cn: &str,
        query: &str,
        config: Option<Value>,
    ) -> (Issued, String) {
        let ca = new_ca(cn);
        let proof =
            pki::create_verification_cert(&ca.cert_pem, &ca.key_pem, &self.code().await).unwrap();
        let mut body =
            json!({"caCertificate": ca.cert_pem, "verificationCertificate": proof.cert_pem});
        if let Some(config) = config {
            body["registrationConfig"] = config;
        }
        let v = self
            .ok("POST", &format!("/cacertificate{query}"), body)
            .await;
        let id = v["certificateId"].as_str().unwrap().to_string();
        (ca, id)
    }
}

pub(super) fn new_ca(cn: &str) -> Issued {
    let subject = Subject {
        common_name: Some(cn.into()),
        ..Subject::default()
    };
    pki::create_ca(&subject, KeyAlgorithm::EcdsaP256, 30).unwrap()
}

pub(super) fn device_cert(ca: &Issued, cn: &str) -> Issued {
    let subject = Subject {
        common_name: Some(cn.into()),
        country: Some("DE".into()),
        ..Subject::default()
    };
    pki::issue_device_cert(
        &ca.cert_pem,
        &ca.key_pem,
        &subject,
        KeyAlgorithm::EcdsaP256,
        30,
    )
    .unwrap()
}

pub(super) fn assert_error(e: &ApiError, status: u16, code: &str) {
    assert_eq!((e.status, e.code.as_str()), (status, code), "{e}");
}

#[test]
fn every_route_names_its_operation_and_the_table_lists_them_all() {
    let ops: Vec<&str> = ROUTES.iter().map(|(_, _, op)| *op).collect();
    assert_eq!(ops, OPERATIONS);
    for (method, uri, op) in ROUTES {
        let path = uri
            .replace("{id}", "abc")
            .replace("{name}", "n")
            .replace("{target+}", "arn%3Aaws%3Aiot%3Aus-east-1%3A1%3Acert%2Fabc");
        let r = request(method, &path, &[], Value::Null);
        assert_eq!(Iot.operation(&r).unwrap(), *op, "{method} {path}");
    }
    // An ARN target sent with its slash unencoded still routes, whole.
    let segments = [
        "attached-policies".to_string(),
        "arn:aws:iot:r:1:cert".into(),
        "abc".into(),
    ];
    assert_eq!(
        route(&Method::POST, &segments),
        Some((
            "ListAttachedPolicies",
            Some("arn:aws:iot:r:1:cert/abc".into())
        ))
    );
    for (method, path) in [
        ("GET", "/nothing"),
        ("PATCH", "/things/x"),
        ("GET", "/things/x/y/z"),
    ] {
        let e = Iot
            .operation(&request(method, path, &[], Value::Null))
            .unwrap_err();
        assert_error(&e, 400, "UnknownOperationException");
    }
    assert!(super::super::operations_table().contains(&("iot", "RegisterCACertificate")));
}

#[test]
fn principals_are_certificate_arns_and_pages_carry_a_marker() {
    let id = "a".repeat(64);
    assert_eq!(cert_id_of_principal(&cert_arn(&id)).unwrap(), id);
    assert_eq!(cert_id_of_principal(&id.to_uppercase()).unwrap(), id);
    let e = cert_id_of_principal("arn:aws:iot:us-east-1:1:thinggroup/x").unwrap_err();
    assert_error(&e, 400, "InvalidRequestException");

    let (first, next) = page(vec![1, 2, 3], None, Some("2")).unwrap();
    assert_eq!((first, next.clone()), (vec![1, 2], Some("2".to_string())));
    let (rest, last) = page(vec![1, 2, 3], next.as_deref(), Some("2")).unwrap();
    assert_eq!((rest, last), (vec![3], None));
    assert!(page(vec![1], Some("x"), None).is_err());
    assert!(page(vec![1], None, Some("0")).is_err());
    assert_eq!(rules::endpoint_address(Some(8883)), "localhost");
    assert_eq!(rules::endpoint_address(None), "localhost");
    assert_eq!(rules::endpoint_address(Some(18883)), "localhost:18883");
}

#[tokio::test]
async fn the_registration_code_is_stable_and_a_ca_is_registered_only_with_its_proof() {
    let api = api();
    let code = api.code().await;
    assert_eq!(code.len(), 64);
    assert_eq!(api.code().await, code);

    let ca = new_ca("Vendor");
    let register = |verification: String| json!({"caCertificate": ca.cert_pem, "verificationCertificate": verification});
    // Wrong CN.
    let wrong = pki::create_verification_cert(&ca.cert_pem, &ca.key_pem, "not-the-code").unwrap();
    let e = api
        .err("POST", "/cacertificate", register(wrong.cert_pem))
        .await;
    assert_error(&e, 400, "CertificateValidationException");
    assert!(e.message.contains("registration code"), "{e}");
    // Right CN, signed by another CA's key.
    let other = new_ca("Other");
    let forged = pki::create_verification_cert(&other.cert_pem, &other.key_pem, &code).unwrap();
    let e = api
        .err("POST", "/cacertificate", register(forged.cert_pem))
        .await;
    assert_error(&e, 400, "CertificateValidationException");
    assert!(e.message.contains("not signed by the CA"), "{e}");
    // Not a CA.
    let leaf = device_cert(&ca, "leaf");
    let proof = pki::create_verification_cert(&ca.cert_pem, &ca.key_pem, &code).unwrap();
    let e = api
        .err(
            "POST",
            "/cacertificate",
            json!({"caCertificate": leaf.cert_pem, "verificationCertificate": proof.cert_pem}),
        )
        .await;
    assert_error(&e, 400, "CertificateValidationException");
    let e = api
        .err(
            "POST",
            "/cacertificate",
            json!({"caCertificate": ca.cert_pem}),
        )
        .await;
    assert_error(&e, 400, "InvalidRequestException");
    let e = api
        .err(
            "POST",
            "/cacertificate",
            json!({"caCertificate": "junk", "verificationCertificate": "junk"}),
        )
        .await;
    assert_error(&e, 400, "CertificateValidationException");
    assert!(api.ctx.cloud.store().list_cas().unwrap().is_empty());

    // The proof as it should be.
    let v = api
        .ok("POST", "/cacertificate", register(proof.cert_pem.clone()))
        .await;
    let id = v["certificateId"].as_str().unwrap();
    assert_eq!(id, ca.id);
    assert_eq!(
        v["certificateArn"],
        format!("arn:aws:iot:us-east-1:123456789012:cacert/{id}")
    );
    let e = api
        .err("POST", "/cacertificate", register(proof.cert_pem))
        .await;
    assert_error(&e, 409, "ResourceAlreadyExistsException");

    let d = api
        .ok("GET", &format!("/cacertificate/{id}"), Value::Null)
        .await;
    let desc = &d["certificateDescription"];
    assert_eq!(desc["status"], "INACTIVE");
    assert_eq!(desc["autoRegistrationStatus"], "DISABLE");
    assert_eq!(desc["certificatePem"], ca.cert_pem.as_str());
    assert!(desc["creationDate"].is_f64(), "{desc}");
    assert!(d.get("registrationConfig").is_none());
    let list = api.ok("GET", "/cacertificates", Value::Null).await;
    assert_eq!(list["certificates"][0]["certificateId"], id);
    assert_eq!(list["certificates"][0]["status"], "INACTIVE");
}

#[tokio::test]
async fn a_ca_gets_jitp_by_update_and_is_deleted_only_inactive_and_unused() {
    let api = api();
    let (ca, id) = api.register_ca("Vendor", "?setAsActive=true", None).await;
    let template = include_str!("../../../../../assets/jitp-template.json");
    let config =
        json!({"templateBody": template, "roleArn": "arn:aws:iam::123456789012:role/JitpRole"});
    let path = format!("/cacertificate/{id}");

    // A broken template is refused and nothing changes.
    let bad =
        json!({"registrationConfig": {"templateBody": "{\"Resources\": {}}", "roleArn": "r"}});
    let e = api
        .err(
            "PUT",
            &format!("{path}?newAutoRegistrationStatus=ENABLE"),
            bad,
        )
        .await;
    assert_error(&e, 400, "InvalidRequestException");
    let stored = api.ctx.cloud.store().get_ca(&id).unwrap().unwrap();
    assert!(!stored.auto_registration && stored.registration_config.is_none());
    let e = api
        .err("PUT", &format!("{path}?newStatus=SIDEWAYS"), Value::Null)
        .await;
    assert_error(&e, 400, "InvalidRequestException");

    api.ok(
        "PUT",
        &format!("{path}?newAutoRegistrationStatus=ENABLE"),
        json!({"registrationConfig": config}),
    )
    .await;
    let d = api.ok("GET", &path, Value::Null).await;
    assert_eq!(d["certificateDescription"]["status"], "ACTIVE");
    assert_eq!(
        d["certificateDescription"]["autoRegistrationStatus"],
        "ENABLE"
    );
    assert_eq!(d["registrationConfig"]["templateBody"], template);
    assert_eq!(d["registrationConfig"]["roleArn"], config["roleArn"]);

    // ACTIVE: refused. INACTIVE with a certificate it issued: refused.
    let e = api.err("DELETE", &path, Value::Null).await;
    assert_error(&e, 406, "CertificateStateException");
    let device = device_cert(&ca, "SER1");
    api.ok(
        "POST",
        "/certificate/register",
        json!({"certificatePem": device.cert_pem}),
    )
    .await;
    api.ok("PUT", &format!("{path}?newStatus=INACTIVE"), Value::Null)
        .await;
    let e = api.err("DELETE", &path, Value::Null).await;
    assert_error(&e, 406, "CertificateStateException");
    assert!(e.message.contains("1 registered certificate"), "{e}");
    api.ok(
        "DELETE",
        &format!("/certificates/{}", device.id),
        Value::Null,
    )
    .await;
    api.ok("DELETE", &path, Value::Null).await;
    let e = api.err("GET", &path, Value::Null).await;
    assert_error(&e, 404, "ResourceNotFoundException");
    let e = api.err("DELETE", &path, Value::Null).await;
    assert_error(&e, 404, "ResourceNotFoundException");
}

#[tokio::test]
async fn a_template_registered_through_the_api_is_the_one_jitp_applies() {
    let api = api();
    // A policy the template names, made through the API.
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}"#;
    api.ok(
        "POST",
        "/policies/ApiJitpPolicy",
        json!({"policyDocument": doc}),
    )
    .await;
    let template = json!({
        "Parameters": {
            "AWS::IoT::Certificate::CommonName": {"Type": "String"},
            "AWS::IoT::Certificate::Country": {"Type": "String"},
            "AWS::IoT::Certificate::Id": {"Type": "String"}
        },
        "Resources": {
            "thing": {"Type": "AWS::IoT::Thing", "Properties": {
                "ThingName": {"Fn::Join": ["-", ["api", {"Ref": "AWS::IoT::Certificate::CommonName"}]]},
                "AttributePayload": {"country": {"Ref": "AWS::IoT::Certificate::Country"}, "by": "api"}
            }},
            "certificate": {"Type": "AWS::IoT::Certificate", "Properties": {
                "CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"
            }},
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "ApiJitpPolicy"}}
        }
    });
    let config = json!({"templateBody": template.to_string(), "roleArn": "arn:aws:iam::123456789012:role/R"});
    let (ca, id) = api
        .register_ca(
            "ApiVendor",
            "?setAsActive=true&allowAutoRegistration=true",
            Some(config),
        )
        .await;

    // What the endpoint does on a device's first connect.
    let device = device_cert(&ca, "SER42");
    let der = pki::pem_certificates(&device.cert_pem).unwrap().remove(0);
    let registered = api.ctx.cloud.store().get_ca(&id).unwrap().unwrap();
    assert!(registered.auto_registration);
    let request = crate::cloud::local::jitp::JitpRequest {
        cert_der: &der,
        cert_pem: &device.cert_pem,
        cert_id: &device.id,
        ca: &registered,
        client_id: "SER42",
    };
    let done = crate::cloud::local::jitp::provision(api.ctx.cloud.store(), &request).unwrap();
    assert_eq!(done.status, CertificateStatus::Active);

    let thing = api.ok("GET", "/things/api-SER42", Value::Null).await;
    assert_eq!(thing["attributes"], json!({"country": "DE", "by": "api"}));
    let principals = api
        .ok("GET", "/things/api-SER42/principals", Value::Null)
        .await;
    assert_eq!(principals["principals"], json!([cert_arn(&device.id)]));
    let attached = api
        .ok(
            "POST",
            &format!("/attached-policies/{}", urlencode(&cert_arn(&device.id))),
            Value::Null,
        )
        .await;
    assert_eq!(attached["policies"][0]["policyName"], "ApiJitpPolicy");
    let d = api
        .ok("GET", &format!("/certificates/{}", device.id), Value::Null)
        .await;
    assert_eq!(d["certificateDescription"]["status"], "ACTIVE");
    assert_eq!(d["certificateDescription"]["caCertificateId"], id.as_str());
    let by_ca = api
        .ok("GET", &format!("/certificates-by-ca/{id}"), Value::Null)
        .await;
    assert_eq!(
        by_ca["certificates"][0]["certificateId"],
        device.id.as_str()
    );
}

/// As botocore encodes a URI label: everything but unreserved characters.
pub(super) fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
