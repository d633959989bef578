//! The state machine's behaviour, input by input, with a real Manufacturer CA
//! signing the real CSRs the machine produces.

use super::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType, IsCa, Issuer,
    KeyPair, PKCS_ECDSA_P256_SHA256,
};

mod refusals;

const SERIAL: &str = "IUQWXALODJESC1";

/// A Manufacturer CA that signs CSRs, as the rotation function would.
struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    fn sign(&self, csr_pem: &str) -> (String, String) {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).unwrap();
        let cert = csr.signed_by(&self.issuer).unwrap();
        (cert.pem(), firmware::certificate_id(cert.der()))
    }
}

fn machine(goal: Goal, loss: f64) -> DeviceMachine {
    machine_dropping(goal, loss, 0)
}

fn machine_dropping(goal: Goal, loss: f64, drop_responses: u32) -> DeviceMachine {
    DeviceMachine::new(MachineConfig {
        serial: SERIAL.into(),
        goal,
        policy: RetryPolicy {
            max_connect_attempts: 4,
            max_request_attempts: 3,
            ..RetryPolicy::default()
        },
        loss,
        drop_responses,
        response_timeout: Duration::from_secs(3),
        seed: 42,
    })
}

fn stored(ca: &TestCa) -> Stored {
    Stored {
        manufacturer_ca: Some(ca.pem.clone()),
        ..Stored::default()
    }
}

/// The commands minus reports, which tests check separately.
fn actions(commands: &[Command]) -> Vec<Command> {
    commands
        .iter()
        .filter(|c| !matches!(c, Command::Report { .. }))
        .cloned()
        .collect()
}

fn reports(commands: &[Command]) -> Vec<(Step, Progress)> {
    commands
        .iter()
        .filter_map(|c| match c {
            Command::Report { step, state, .. } => Some((*step, *state)),
            _ => None,
        })
        .collect()
}

fn published(commands: &[Command]) -> (String, Vec<u8>) {
    commands
        .iter()
        .find_map(|c| match c {
            Command::Publish { topic, payload } => Some((topic.clone(), payload.clone())),
            _ => None,
        })
        .expect("a publish")
}

fn stored_key(commands: &[Command]) -> Option<String> {
    commands.iter().find_map(|c| match c {
        Command::Store(Credential::ManufacturerKey(k)) => Some(k.clone()),
        _ => None,
    })
}

fn csr_of(payload: &[u8]) -> String {
    serde_json::from_slice::<topics::CreateCertRequest>(payload)
        .unwrap()
        .csr
}

fn create_response(pem: &str, cert_id: &str) -> Input {
    Input::Message {
        topic: topics::create_cert_response(SERIAL),
        payload: serde_json::to_vec(&topics::CreateCertResponse {
            pem: pem.into(),
            cert_id: cert_id.into(),
        })
        .unwrap(),
    }
}

fn ack_response(cert_id: &str) -> Input {
    Input::Message {
        topic: topics::ack_cert_response(SERIAL),
        payload: serde_json::to_vec(&topics::AckCert {
            cert_id: cert_id.into(),
        })
        .unwrap(),
    }
}

/// Drives a fresh device through 3a and up to the CSR publish; returns the
/// machine, the key it stored and the CSR payload it sent.
fn up_to_csr(ca: &TestCa, loss: f64) -> (DeviceMachine, String, Vec<u8>) {
    up_to_csr_with(ca, machine(Goal::Onboard, loss))
}

fn up_to_csr_with(ca: &TestCa, mut m: DeviceMachine) -> (DeviceMachine, String, Vec<u8>) {
    assert_eq!(
        actions(&m.handle(Input::Start(stored(ca)))),
        vec![Command::Connect(Identity::Vendor)]
    );
    m.handle(Input::Connected);
    let out = m.handle(Input::Subscribed);
    let key = stored_key(&out).expect("a new key is stored");
    let (topic, payload) = published(&out);
    assert_eq!(topic, topics::create_cert_request(SERIAL));
    (m, key, payload)
}

#[test]
fn happy_path_onboards_in_three_steps() {
    let ca = TestCa::new("Manufacturer CA");
    let mut m = machine(Goal::Onboard, 0.0);

    let out = m.handle(Input::Start(stored(&ca)));
    assert_eq!(actions(&out), vec![Command::Connect(Identity::Vendor)]);
    assert_eq!(reports(&out), vec![(Step::Jitp, Progress::Started)]);

    // 3a done, 3b starts on the same connection by subscribing to the response.
    let out = m.handle(Input::Connected);
    assert_eq!(
        actions(&out),
        vec![Command::Subscribe {
            topic: "/cert-rotation/create-man-cert/IUQWXALODJESC1/rspn".into()
        }]
    );
    assert_eq!(
        reports(&out),
        vec![
            (Step::Jitp, Progress::Completed),
            (Step::CreateCert, Progress::Started)
        ]
    );

    // The key is stored before the CSR is published.
    let out = m.handle(Input::Subscribed);
    let acts = actions(&out);
    let key_at = acts
        .iter()
        .position(|c| matches!(c, Command::Store(Credential::ManufacturerKey(_))))
        .expect("key stored");
    let publish_at = acts
        .iter()
        .position(|c| matches!(c, Command::Publish { .. }))
        .expect("CSR published");
    assert!(key_at < publish_at);
    assert_eq!(
        acts.last(),
        Some(&Command::StartTimer(Duration::from_secs(3)))
    );
    let (topic, payload) = published(&out);
    assert_eq!(topic, "/cert-rotation/create-man-cert/IUQWXALODJESC1/rqst");

    // The cloud signs the CSR; the device verifies, stores, reconnects as manufacturer.
    let (pem, cert_id) = ca.sign(&csr_of(&payload));
    let out = m.handle(create_response(&pem, &cert_id));
    assert_eq!(
        actions(&out),
        vec![
            Command::CancelTimer,
            Command::Store(Credential::ManufacturerCert(pem.clone())),
            Command::Disconnect,
            Command::Connect(Identity::Manufacturer),
        ]
    );

    let out = m.handle(Input::Connected);
    assert_eq!(
        actions(&out),
        vec![Command::Subscribe {
            topic: "/cert-rotation/ack-man-cert/IUQWXALODJESC1/rspn".into()
        }]
    );
    let out = m.handle(Input::Subscribed);
    let (topic, payload) = published(&out);
    assert_eq!(topic, "/cert-rotation/ack-man-cert/IUQWXALODJESC1/rqst");
    let ack: topics::AckCert = serde_json::from_slice(&payload).unwrap();
    assert_eq!(ack.cert_id, cert_id);

    let out = m.handle(ack_response(&cert_id));
    assert_eq!(
        actions(&out),
        vec![
            Command::CancelTimer,
            Command::Store(Credential::AckDone(cert_id.clone())),
            Command::Disconnect,
            Command::Done {
                manufacturer_cert_id: Some(cert_id)
            },
        ]
    );
    assert!(m.is_finished());
}

#[test]
fn refused_first_connect_is_retried_at_once_then_after_a_jittered_backoff() {
    let ca = TestCa::new("Manufacturer CA");
    let mut m = machine(Goal::Onboard, 0.0);
    m.handle(Input::Start(stored(&ca)));
    // JITP's refusal: the cert is provisioned by now, so retry at once.
    let out = m.handle(Input::ConnectFailed {
        reason: "connection closed before CONNACK".into(),
    });
    assert_eq!(actions(&out), vec![Command::Connect(Identity::Vendor)]);
    assert_eq!(reports(&out), vec![(Step::Jitp, Progress::Retrying)]);
    // Refused again: now back off.
    let out = m.handle(Input::ConnectFailed {
        reason: "connection closed before CONNACK".into(),
    });
    let acts = actions(&out);
    let [Command::StartTimer(delay)] = acts.as_slice() else {
        panic!("expected a backoff timer, got {acts:?}");
    };
    assert!(*delay <= RetryPolicy::default().base * 2);
    assert_eq!(reports(&out), vec![(Step::Jitp, Progress::Retrying)]);
    // A message or stray Connected during backoff changes nothing.
    assert!(m.handle(Input::Connected).is_empty());
    assert_eq!(
        actions(&m.handle(Input::TimerFired)),
        vec![Command::Connect(Identity::Vendor)]
    );
    let out = m.handle(Input::Connected);
    assert!(out.contains(&Command::Report {
        step: Step::Jitp,
        state: Progress::Completed,
        attempt: 3,
        message: "connected: the vendor cert is provisioned".into()
    }));
}

#[test]
fn connects_are_bounded() {
    let ca = TestCa::new("Manufacturer CA");
    let mut m = machine(Goal::Jitp, 0.0);
    m.handle(Input::Start(stored(&ca)));
    let mut last = Vec::new();
    for _ in 0..4 {
        last = m.handle(Input::ConnectFailed {
            reason: "TLS alert: certificate revoked".into(),
        });
        m.handle(Input::TimerFired);
    }
    assert!(m.is_finished());
    assert!(matches!(
        actions(&last).last(),
        Some(Command::Failed(DeviceFailure::ConnectRefused {
            attempts: 4,
            ..
        }))
    ));
}

#[test]
fn jitp_goal_stops_after_connecting() {
    let ca = TestCa::new("Manufacturer CA");
    let mut m = machine(Goal::Jitp, 0.0);
    m.handle(Input::Start(stored(&ca)));
    assert_eq!(
        actions(&m.handle(Input::Connected)),
        vec![
            Command::Disconnect,
            Command::Done {
                manufacturer_cert_id: None
            }
        ]
    );
}

#[test]
fn lost_response_is_re_requested_identically_and_the_repeat_accepted() {
    let ca = TestCa::new("Manufacturer CA");
    let (mut m, _key, first) = up_to_csr(&ca, 0.0);
    // The response never arrives: the timer fires and the same bytes go out again.
    let out = m.handle(Input::TimerFired);
    let (_, second) = published(&out);
    assert_eq!(first, second, "a retry resends the identical CSR");
    assert_eq!(reports(&out)[0], (Step::CreateCert, Progress::Retrying));
    // The cloud answers the repeat identically; the device accepts it.
    let (pem, id) = ca.sign(&csr_of(&second));
    let out = m.handle(create_response(&pem, &id));
    assert!(out.contains(&Command::Store(Credential::ManufacturerCert(pem))));
}

#[test]
fn each_resend_waits_longer_up_to_four_times_the_response_timeout() {
    let ca = TestCa::new("Manufacturer CA");
    let mut m = machine(Goal::Onboard, 0.0);
    m.policy.max_request_attempts = 5;
    let (mut m, _key, _) = up_to_csr_with(&ca, m);
    let mut waits = Vec::new();
    for _ in 0..4 {
        let out = m.handle(Input::TimerFired);
        let Some(Command::StartTimer(wait)) = actions(&out).last().cloned() else {
            panic!("a resend starts its timer: {out:?}");
        };
        waits.push(wait.as_secs());
    }
    assert_eq!(
        waits,
        [6, 12, 12, 12],
        "3 s doubled per resend, capped at 4×"
    );
}

#[test]
fn simulated_loss_drops_responses_until_requests_run_out() {
    let ca = TestCa::new("Manufacturer CA");
    let (mut m, _key, payload) = up_to_csr(&ca, 1.0);
    let (pem, id) = ca.sign(&csr_of(&payload));
    let out = m.handle(create_response(&pem, &id));
    assert!(actions(&out).is_empty(), "a dropped response does nothing");
    assert_eq!(reports(&out), vec![(Step::CreateCert, Progress::Info)]);
    m.handle(Input::TimerFired);
    m.handle(Input::TimerFired);
    let out = m.handle(Input::TimerFired);
    assert!(matches!(
        actions(&out).last(),
        Some(Command::Failed(DeviceFailure::NoResponse {
            step: Step::CreateCert,
            attempts: 3
        }))
    ));
}

#[test]
fn drop_responses_drops_exactly_the_next_n_then_the_repeat_gets_through() {
    let ca = TestCa::new("Manufacturer CA");
    let (mut m, _key, payload) = up_to_csr_with(&ca, machine_dropping(Goal::Onboard, 0.0, 2));
    let (pem, id) = ca.sign(&csr_of(&payload));
    for _ in 0..2 {
        let out = m.handle(create_response(&pem, &id));
        assert!(actions(&out).is_empty(), "a dropped response does nothing");
        assert_eq!(reports(&out), vec![(Step::CreateCert, Progress::Info)]);
        // The timer re-asks with the same request, byte for byte.
        let out = m.handle(Input::TimerFired);
        assert_eq!(published(&out).1, payload);
    }
    // The third response is the first not dropped.
    let out = m.handle(create_response(&pem, &id));
    assert!(out.contains(&Command::Store(Credential::ManufacturerCert(pem))));
}

#[test]
fn partial_loss_still_completes_by_retrying() {
    let ca = TestCa::new("Manufacturer CA");
    let (mut m, _key, payload) = up_to_csr(&ca, 0.5);
    let (pem, id) = ca.sign(&csr_of(&payload));
    let mut stored_cert = false;
    for _ in 0..3 {
        let out = m.handle(create_response(&pem, &id));
        if out.contains(&Command::Store(Credential::ManufacturerCert(pem.clone()))) {
            stored_cert = true;
            break;
        }
        m.handle(Input::TimerFired);
    }
    // With seed 42 and loss 0.5, one of the three deliveries gets through.
    assert!(stored_cert);
}

#[test]
fn cert_signed_by_another_ca_is_rejected() {
    let ca = TestCa::new("Manufacturer CA");
    let impostor = TestCa::new("Manufacturer CA");
    let (mut m, _key, payload) = up_to_csr(&ca, 0.0);
    let (pem, id) = impostor.sign(&csr_of(&payload));
    let out = m.handle(create_response(&pem, &id));
    assert!(!out
        .iter()
        .any(|c| matches!(c, Command::Store(Credential::ManufacturerCert(_)))));
    assert!(matches!(
        actions(&out).last(),
        Some(Command::Failed(DeviceFailure::Firmware {
            source: FirmwareError::NotSignedByManufacturerCa,
            ..
        }))
    ));
}

#[test]
fn cert_for_another_key_is_rejected() {
    let ca = TestCa::new("Manufacturer CA");
    let (mut m, _key, _payload) = up_to_csr(&ca, 0.0);
    let other = firmware::new_key_and_csr(SERIAL).unwrap();
    let (pem, id) = ca.sign(&other.csr_pem);
    let out = m.handle(create_response(&pem, &id));
    assert!(matches!(
        actions(&out).last(),
        Some(Command::Failed(DeviceFailure::Firmware {
            source: FirmwareError::KeyMismatch,
            ..
        }))
    ));
}

#[test]
fn wrong_cert_id_is_rejected() {
    let ca = TestCa::new("Manufacturer CA");
    let (mut m, _key, payload) = up_to_csr(&ca, 0.0);
    let (pem, _id) = ca.sign(&csr_of(&payload));
    let out = m.handle(create_response(&pem, &"0".repeat(64)));
    assert!(matches!(
        actions(&out).last(),
        Some(Command::Failed(DeviceFailure::Firmware {
            source: FirmwareError::WrongCertId { .. },
            ..
        }))
    ));
}

#[test]
fn malformed_response_is_ignored_and_retried() {
    let ca = TestCa::new("Manufacturer CA");
    let (mut m, _key, first) = up_to_csr(&ca, 0.0);
    let out = m.handle(Input::Message {
        topic: topics::create_cert_response(SERIAL),
        payload: b"not json".to_vec(),
    });
    assert!(actions(&out).is_empty());
    let (_, again) = published(&m.handle(Input::TimerFired));
    assert_eq!(first, again);
}

#[test]
fn connection_lost_while_waiting_reconnects_and_resends_the_same_request() {
    let ca = TestCa::new("Manufacturer CA");
    let (mut m, _key, first) = up_to_csr(&ca, 0.0);
    let out = m.handle(Input::Closed {
        reason: "connection reset".into(),
    });
    assert_eq!(actions(&out)[0], Command::CancelTimer);
    assert!(matches!(actions(&out)[1], Command::StartTimer(_)));
    assert_eq!(
        actions(&m.handle(Input::TimerFired)),
        vec![Command::Connect(Identity::Vendor)]
    );
    let out = m.handle(Input::Connected);
    assert!(matches!(actions(&out)[0], Command::Subscribe { .. }));
    let out = m.handle(Input::Subscribed);
    assert!(stored_key(&out).is_none(), "the key is not replaced");
    assert_eq!(published(&out).1, first);
}

#[test]
fn resume_with_key_only_keeps_the_key() {
    let ca = TestCa::new("Manufacturer CA");
    let (_, key, _) = up_to_csr(&ca, 0.0);
    let mut m = machine(Goal::Onboard, 0.0);
    m.handle(Input::Start(Stored {
        manufacturer_key: Some(key.clone()),
        ..stored(&ca)
    }));
    m.handle(Input::Connected);
    let out = m.handle(Input::Subscribed);
    assert!(stored_key(&out).is_none());
    assert!(out
        .iter()
        .any(|c| matches!(c, Command::Store(Credential::Csr(_)))));
    // The cert signed for the new CSR matches the stored key.
    let (pem, id) = ca.sign(&csr_of(&published(&out).1));
    let out = m.handle(create_response(&pem, &id));
    assert!(out.contains(&Command::Store(Credential::ManufacturerCert(pem))));
}

#[test]
fn resume_with_key_and_csr_resends_the_same_csr() {
    let ca = TestCa::new("Manufacturer CA");
    let (_, key, payload) = up_to_csr(&ca, 0.0);
    let mut m = machine(Goal::Onboard, 0.0);
    m.handle(Input::Start(Stored {
        manufacturer_key: Some(key),
        csr: Some(csr_of(&payload)),
        ..stored(&ca)
    }));
    m.handle(Input::Connected);
    let out = m.handle(Input::Subscribed);
    assert!(!out.iter().any(|c| matches!(c, Command::Store(_))));
    assert_eq!(published(&out).1, payload);
}

#[test]
fn resume_with_cert_goes_straight_to_the_ack() {
    let ca = TestCa::new("Manufacturer CA");
    let (_, key, payload) = up_to_csr(&ca, 0.0);
    let (pem, id) = ca.sign(&csr_of(&payload));
    let mut m = machine(Goal::Onboard, 0.0);
    let out = m.handle(Input::Start(Stored {
        manufacturer_key: Some(key),
        manufacturer_cert: Some(pem),
        ..stored(&ca)
    }));
    assert_eq!(
        actions(&out),
        vec![Command::Connect(Identity::Manufacturer)]
    );
    assert_eq!(
        reports(&out),
        vec![
            (Step::Jitp, Progress::Skipped),
            (Step::CreateCert, Progress::Skipped),
            (Step::AckCert, Progress::Started)
        ]
    );
    m.handle(Input::Connected);
    let out = m.handle(Input::Subscribed);
    let ack: topics::AckCert = serde_json::from_slice(&published(&out).1).unwrap();
    assert_eq!(ack.cert_id, id);
}

#[test]
fn resume_after_ack_is_done_at_once() {
    let ca = TestCa::new("Manufacturer CA");
    let (_, key, payload) = up_to_csr(&ca, 0.0);
    let (pem, id) = ca.sign(&csr_of(&payload));
    let mut m = machine(Goal::Onboard, 0.0);
    let out = m.handle(Input::Start(Stored {
        manufacturer_key: Some(key),
        manufacturer_cert: Some(pem),
        acked_cert_id: Some(id.clone()),
        ..stored(&ca)
    }));
    assert_eq!(
        actions(&out),
        vec![Command::Done {
            manufacturer_cert_id: Some(id)
        }]
    );
    assert!(m.is_finished());
}

#[test]
fn stored_cert_that_does_not_match_the_key_is_not_used() {
    let ca = TestCa::new("Manufacturer CA");
    let (_, key, _) = up_to_csr(&ca, 0.0);
    let other = firmware::new_key_and_csr(SERIAL).unwrap();
    let (pem, _) = ca.sign(&other.csr_pem);
    let mut m = machine(Goal::Onboard, 0.0);
    let out = m.handle(Input::Start(Stored {
        manufacturer_key: Some(key),
        manufacturer_cert: Some(pem),
        ..stored(&ca)
    }));
    assert!(matches!(
        actions(&out).as_slice(),
        [Command::Failed(DeviceFailure::Firmware {
            source: FirmwareError::KeyMismatch,
            ..
        })]
    ));
}

#[test]
fn ack_without_a_cert_says_what_to_do() {
    let ca = TestCa::new("Manufacturer CA");
    let mut m = machine(Goal::AckCert, 0.0);
    let out = m.handle(Input::Start(stored(&ca)));
    let Some(Command::Failed(failure)) = actions(&out).pop() else {
        panic!("expected a failure");
    };
    assert!(failure.to_string().contains("create-cert"));
}

#[test]
fn ack_response_for_another_cert_is_ignored() {
    let ca = TestCa::new("Manufacturer CA");
    let (mut m, _key, payload) = up_to_csr(&ca, 0.0);
    let (pem, id) = ca.sign(&csr_of(&payload));
    m.handle(create_response(&pem, &id));
    m.handle(Input::Connected);
    m.handle(Input::Subscribed);
    let out = m.handle(ack_response(&"f".repeat(64)));
    assert!(actions(&out).is_empty());
    assert!(!m.is_finished());
    let out = m.handle(ack_response(&id));
    assert!(m.is_finished());
    assert!(out.contains(&Command::Store(Credential::AckDone(id))));
}
