//! The observer's pure parts: messages → events, states ↔ events, the
//! identity's checks, the backoff. The MQTT client itself is tested against
//! a real broker in `tests/tui_aws.rs`.

use super::*;

#[test]
fn presence_becomes_the_local_endpoints_connection_event() {
    let body = json!({
        "clientId": "IUQWXALODJESC1",
        "eventType": "connected",
        "principalIdentifier": "abc123",
        "ipAddress": "192.0.2.7",
    });
    let ev = observed_event(
        "$aws/events/presence/connected/IUQWXALODJESC1",
        body.to_string().as_bytes(),
    );
    assert_eq!(ev.kind, EventKind::Connection);
    assert_eq!(ev.client_id.as_deref(), Some("IUQWXALODJESC1"));
    assert_eq!(ev.summary, "IUQWXALODJESC1 connected");
    assert_eq!(ev.detail["certificateId"], "abc123");
    assert_eq!(ev.detail["payload"]["ipAddress"], "192.0.2.7");

    let gone = observed_event(
        "$aws/events/presence/disconnected/dev1",
        json!({"disconnectReason": "CLIENT_INITIATED_DISCONNECT"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(
        gone.summary,
        "dev1 disconnected: CLIENT_INITIATED_DISCONNECT"
    );
}

#[test]
fn registered_certificates_are_jitp_events_naming_the_certificate() {
    let ev = observed_event(
        "$aws/events/certificates/registered/ca0123456789abcdef",
        json!({"certificateId": "cert0123456789", "certificateStatus": "PENDING_ACTIVATION"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(ev.kind, EventKind::Jitp);
    assert_eq!(ev.client_id, None);
    assert_eq!(ev.detail["certificateId"], "cert0123456789");
    assert!(ev.summary.contains("PENDING_ACTIVATION"), "{}", ev.summary);
}

#[test]
fn rotation_requests_come_in_from_the_device_and_answers_go_out_to_it() {
    let csr = br#"{"csr":"-----BEGIN CERTIFICATE REQUEST-----"}"#;
    let rqst = observed_event("/cert-rotation/create-man-cert/dev7/rqst", csr);
    assert_eq!(
        rqst.kind,
        EventKind::PacketIn {
            packet: "PUBLISH",
            size: csr.len()
        }
    );
    assert_eq!(rqst.client_id.as_deref(), Some("dev7"));
    assert_eq!(
        rqst.summary,
        "IN PUBLISH /cert-rotation/create-man-cert/dev7/rqst"
    );
    assert!(rqst.detail["payload"]["csr"].is_string());

    let rspn = observed_event("/cert-rotation/ack-man-cert/dev7/rspn", b"not json");
    assert!(matches!(rspn.kind, EventKind::PacketOut { .. }));
    assert_eq!(rspn.client_id.as_deref(), Some("dev7"));
    assert_eq!(rspn.detail["payload"], "not json");

    let other = observed_event("$aws/events/thing/x", &[0xff, 0xfe]);
    assert!(matches!(other.kind, EventKind::PacketOut { .. }));
    assert_eq!(other.detail["payload"], "<2 bytes of binary>");
}

#[test]
fn states_travel_on_the_stream_and_come_back() {
    for state in [
        ObserverState::Waiting {
            reason: "run init".into(),
        },
        ObserverState::Connecting {
            endpoint: "h:8883".into(),
        },
        ObserverState::Subscribed {
            endpoint: "h:8883".into(),
            client_id: "jitpilot-observer-1".into(),
        },
        ObserverState::Failed {
            reason: "refused".into(),
        },
        ObserverState::Stopped,
    ] {
        let ev = state.event("jitpilot-observer-1");
        assert_eq!(ev.client_id.as_deref(), Some("jitpilot-observer-1"));
        assert_eq!(ObserverState::from_event(&ev), Some(state));
    }
    let traffic = observed_event("$aws/events/presence/connected/x", b"{}");
    assert_eq!(ObserverState::from_event(&traffic), None);
}

#[test]
fn problems_are_shown_in_red_in_the_traffic_pane() {
    let failed = ObserverState::Failed { reason: "x".into() };
    assert!(failed.is_problem());
    assert!(crate::tui::panes::traffic::is_refusal(&failed.event("o")));
    let ok = ObserverState::Subscribed {
        endpoint: "h:1".into(),
        client_id: "o".into(),
    };
    assert!(!ok.is_problem());
    assert!(!crate::tui::panes::traffic::is_refusal(&ok.event("o")));
}

#[test]
fn a_missing_or_broken_identity_says_run_init() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = ObserverIdentity::load(dir.path())
        .err()
        .expect("no identity");
    assert!(matches!(missing, ObserverError::MissingIdentity { .. }));
    assert!(missing.to_string().contains("run init"), "{missing}");

    let ca = crate::pki::create_ca(
        &crate::pki::Subject {
            common_name: Some("test".into()),
            ..Default::default()
        },
        crate::pki::KeyAlgorithm::EcdsaP256,
        1,
    )
    .expect("a CA");
    std::fs::write(dir.path().join(CERT_FILE), &ca.cert_pem).expect("write");
    std::fs::write(dir.path().join(KEY_FILE), "not a key").expect("write");
    std::fs::write(dir.path().join(ROOT_CA_FILE), &ca.cert_pem).expect("write");
    let bad = ObserverIdentity::load(dir.path()).err().expect("a bad key");
    let text = bad.to_string();
    assert!(
        text.contains(KEY_FILE) && text.contains("private key") && text.contains("run init"),
        "{text}"
    );

    std::fs::write(dir.path().join(KEY_FILE), &ca.key_pem).expect("write");
    let identity = ObserverIdentity::load(dir.path()).expect("a good identity");
    identity.client_config().expect("a TLS config");
}

#[test]
fn retries_back_off_up_to_a_cap() {
    assert_eq!(retry_delay(1), RETRY_BASE);
    assert_eq!(retry_delay(2), RETRY_BASE * 2);
    assert!(retry_delay(5) > retry_delay(4));
    assert_eq!(retry_delay(40), RETRY_CAP);
}
