//! The rule's output → events.

use crate::rotation::event::*;
use serde_json::json;

#[test]
fn registered_event_uses_aws_field_names() {
    let input = json!({
        "data": {
            "certificateId": "abc",
            "caCertificateId": "ca1",
            "timestamp": 1,
            "certificateStatus": "PENDING_ACTIVATION",
            "awsAccountId": "123456789012",
            "certificateRegistrationTimestamp": "1"
        },
        "topic": "$aws/events/certificates/registered/ca1"
    });
    assert_eq!(
        parse_event(&input).expect("parsed"),
        RotationEvent::Registered(RegisteredEvent {
            topic: "$aws/events/certificates/registered/ca1".into(),
            certificate_id: "abc".into(),
            ca_certificate_id: "ca1".into(),
        })
    );
}

#[test]
fn create_and_ack_requests_take_serial_from_topic_and_principal_from_cert_id() {
    let input = json!({
        "data": {"csr": "PEM"},
        "topic": "/cert-rotation/create-man-cert/S1/rqst",
        "client_id": "S1",
        "cert_id": "vendor-id"
    });
    assert_eq!(
        parse_event(&input).expect("parsed"),
        RotationEvent::CreateManCert(CreateManCertRequest {
            topic: "/cert-rotation/create-man-cert/S1/rqst".into(),
            serial: "S1".into(),
            client_id: Some("S1".into()),
            principal: Some("vendor-id".into()),
            csr: Some("PEM".into()),
        })
    );
    let input = json!({
        "data": {"cert_id": "man-id"},
        "topic": "/cert-rotation/ack-man-cert/S1/rqst",
        "client_id": "S1",
        "cert_id": "man-id"
    });
    assert_eq!(
        parse_event(&input).expect("parsed"),
        RotationEvent::AckManCert(AckManCertRequest {
            topic: "/cert-rotation/ack-man-cert/S1/rqst".into(),
            serial: "S1".into(),
            client_id: Some("S1".into()),
            principal: Some("man-id".into()),
            cert_id: Some("man-id".into()),
        })
    );
}

#[test]
fn unreadable_events_are_refusals_with_reasons() {
    let cases = [
        (json!("text"), "bad_event", None),
        (json!({"data": {}}), "bad_event", None),
        (
            json!({"data": {}, "topic": "$aws/events/certificates/registered/ca"}),
            "bad_event",
            None,
        ),
        (json!({"data": {}, "topic": "a/b"}), "unknown_topic", None),
        (
            json!({"data": {}, "topic": "/cert-rotation/other/S1/rqst"}),
            "unknown_topic",
            Some("S1"),
        ),
        (
            json!({"data": "not json", "topic": "/cert-rotation/create-man-cert/S1/rqst"}),
            "bad_payload",
            Some("S1"),
        ),
        (
            json!({"data": {}, "topic": "/cert-rotation/create-man-cert/S1/rspn"}),
            "unknown_topic",
            None,
        ),
    ];
    for (input, code, serial) in cases {
        let err = parse_event(&input).expect_err("unreadable");
        assert_eq!(err.refusal.code, code, "{input}");
        assert_eq!(err.serial.as_deref(), serial, "{input}");
        assert!(!err.refusal.reason.is_empty());
    }
}
