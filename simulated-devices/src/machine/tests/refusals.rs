//! A refusal answered on the response topic: a permanent one ends the run
//! with the cloud's code and message, a retryable one is sent again after a short backoff.

use super::*;

fn refusal(step_topic: String, code: &str, retryable: bool) -> Input {
    Input::Message {
        topic: step_topic,
        payload: serde_json::to_vec(&serde_json::json!({"error": {
            "code": code,
            "message": format!("{code}: what to do"),
            "retryable": retryable,
        }}))
        .unwrap(),
    }
}

#[test]
fn a_permanent_refusal_stops_the_device_with_code_and_message() {
    let ca = TestCa::new("Manufacturer CA");
    let (mut m, _key, _payload) = up_to_csr(&ca, 0.0);
    let out = m.handle(refusal(
        topics::create_cert_response(SERIAL),
        "csr_reuses_vendor_key",
        false,
    ));
    let acts = actions(&out);
    assert_eq!(acts[0], Command::CancelTimer, "{acts:?}");
    assert_eq!(acts[1], Command::Disconnect, "{acts:?}");
    let Some(Command::Failed(failure)) = acts.last() else {
        panic!("the device gives up: {acts:?}");
    };
    assert_eq!(
        failure,
        &DeviceFailure::Refused {
            step: Step::CreateCert,
            code: "csr_reuses_vendor_key".into(),
            message: "csr_reuses_vendor_key: what to do".into(),
        }
    );
    let text = failure.to_string();
    assert!(
        text.contains("csr_reuses_vendor_key") && text.contains("what to do"),
        "{text}"
    );
    assert!(m.is_finished());
    // No retry follows: the timer firing later changes nothing.
    assert!(m.handle(Input::TimerFired).is_empty());
}

#[test]
fn a_refusal_without_retryable_is_permanent() {
    let ca = TestCa::new("Manufacturer CA");
    let (mut m, _key, _payload) = up_to_csr(&ca, 0.0);
    let out = m.handle(Input::Message {
        topic: topics::create_cert_response(SERIAL),
        payload: br#"{"error": {"code": "not_whitelisted", "message": "no row"}}"#.to_vec(),
    });
    assert!(matches!(
        actions(&out).last(),
        Some(Command::Failed(DeviceFailure::Refused { code, .. })) if code == "not_whitelisted"
    ));
}

#[test]
fn a_retryable_refusal_is_retried_when_the_timer_fires() {
    let ca = TestCa::new("Manufacturer CA");
    let (mut m, _key, first) = up_to_csr(&ca, 0.0);
    let out = m.handle(refusal(
        topics::create_cert_response(SERIAL),
        "jitp_not_done",
        true,
    ));
    // Resent after a short backoff, not the 3 s response timeout.
    let acts = actions(&out);
    let [Command::StartTimer(wait)] = acts.as_slice() else {
        panic!("one timer expected: {out:?}");
    };
    assert!(*wait <= RetryPolicy::default().base, "{wait:?}");
    assert_eq!(reports(&out), vec![(Step::CreateCert, Progress::Retrying)]);
    assert!(!m.is_finished());
    let out = m.handle(Input::TimerFired);
    let (_, again) = published(&out);
    assert_eq!(first, again, "the same CSR goes again");
    let (pem, id) = ca.sign(&csr_of(&again));
    let out = m.handle(create_response(&pem, &id));
    assert!(out.contains(&Command::Store(Credential::ManufacturerCert(pem))));
}

#[test]
fn an_ack_refusal_stops_the_device_too() {
    let ca = TestCa::new("Manufacturer CA");
    let (mut m, _key, payload) = up_to_csr(&ca, 0.0);
    let (pem, id) = ca.sign(&csr_of(&payload));
    m.handle(create_response(&pem, &id));
    m.handle(Input::Connected);
    m.handle(Input::Subscribed);
    let out = m.handle(refusal(
        topics::ack_cert_response(SERIAL),
        "principal_not_manufacturer_cert",
        false,
    ));
    assert!(matches!(
        actions(&out).last(),
        Some(Command::Failed(DeviceFailure::Refused { step: Step::AckCert, code, .. }))
            if code == "principal_not_manufacturer_cert"
    ));
}
