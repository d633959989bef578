//! The snapshot tests' fixtures: a stack, CAs, device rows, status
//! reports and cloud events as the live cloud would report them, the app
//! in three states of the walkthrough (empty, mid, completed), and the
//! renderer into ratatui's `TestBackend`.

use jitpilot::cloud::{CaSummary, CertSummary, CloudEvent, EventKind, StackSummary, StatusReport};
use jitpilot::model::{StackEvent, StackResource};
use jitpilot::tui::action::{DeviceProgress, ProgressState, WalkStep};
use jitpilot::tui::app::{App, Header};
use jitpilot::tui::theme::Theme;
use jitpilot::tui::ui;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

/// 2026-11-28 22:00:00 UTC.
pub const T0: i64 = 1_795_903_200_000;
pub const SAMPLE: &str = "IUQWXALODJESC1";
pub const SERIALS: [&str; 4] = [SAMPLE, "K7Q2M9X4D1LZ8A", "P3V8N6R2T5WB0C", "Z1H4J7K0Q3S6U9"];
pub const VENDOR_CA: &str = "4b1f0c9e7d2a6b3c5e8f1a0d9c7b6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d";
pub const MAN_CA: &str = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d";
pub const CERT_PEM: &str = include_str!("../../core/src/pki/testdata/openssl-ca.pem");
/// The names the real stack gives (cfn/cert-rotation.json).
pub const FUNCTION: &str = "CertRotation-cert-rotation";
pub const IN_PROGRESS_POLICY: &str = "CrInProgressCertPolicy";
pub const COMPLETE_POLICY: &str = "CrCertRotationCompleteCertPolicy";

pub fn cert_id(serial: &str, kind: &str) -> String {
    format!("{kind}{serial}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()[..64.min(2 * (kind.len() + serial.len()))]
        .to_string()
}

pub fn resource(logical: &str, kind: &str, physical: &str) -> StackResource {
    StackResource {
        stack: "CertRotation".into(),
        logical_id: logical.into(),
        resource_type: kind.into(),
        physical_id: physical.into(),
        status: "CREATE_COMPLETE".into(),
        properties: json!({}),
    }
}

/// The stack as the real template declares it: every resource of
/// `cfn/cert-rotation.json`, by its logical id and type, with the physical
/// id the local stack engine gives it (a declared name, else
/// `<stack>-<logical id>-<suffix>` as CloudFormation makes them).
pub fn stack() -> StackSummary {
    let template: serde_json::Value =
        serde_json::from_str(include_str!("../../cfn/cert-rotation.json")).expect("the template");
    let resources: Vec<StackResource> = template["Resources"]
        .as_object()
        .expect("Resources")
        .iter()
        .map(|(logical, declared)| {
            let kind = declared["Type"].as_str().expect("Type");
            let props = &declared["Properties"];
            let physical = ["TableName", "PolicyName", "RuleName"]
                .iter()
                .find_map(|k| props[*k].as_str().map(str::to_string))
                .unwrap_or_else(|| match kind {
                    "AWS::Lambda::Function" => FUNCTION.to_string(),
                    _ => format!("CertRotation-{logical}-1A2B3C4D5E6F"),
                });
            resource(logical, kind, &physical)
        })
        .collect();
    assert_eq!(resources.len(), 12, "the template's resources");
    let events = resources
        .iter()
        .enumerate()
        .map(|(i, r)| StackEvent {
            stack: "CertRotation".into(),
            timestamp: T0 + 100 * i as i64,
            logical_id: r.logical_id.clone(),
            resource_type: r.resource_type.clone(),
            status: "CREATE_COMPLETE".into(),
            reason: None,
        })
        .chain(std::iter::once(StackEvent {
            stack: "CertRotation".into(),
            timestamp: T0 + 1500,
            logical_id: "CertRotation".into(),
            resource_type: "AWS::CloudFormation::Stack".into(),
            status: "CREATE_COMPLETE".into(),
            reason: None,
        }))
        .collect();
    StackSummary {
        name: "CertRotation".into(),
        status: "CREATE_COMPLETE".into(),
        resources,
        events,
    }
}

pub fn cas(vendor_counts: &[(&str, u64)], man_counts: &[(&str, u64)]) -> Vec<CaSummary> {
    let counts = |c: &[(&str, u64)]| {
        c.iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect::<BTreeMap<_, _>>()
    };
    vec![
        CaSummary {
            id: VENDOR_CA.into(),
            label: "Vendor CA".into(),
            subject: "CN=Vendor CA, O=Example Vendor, C=US".into(),
            status: "ACTIVE".into(),
            auto_registration: true,
            jitp_template: Some(
                "JITP: thing = CommonName, cert ACTIVE, policy CrInProgressCertPolicy".into(),
            ),
            not_before: 1_795_903_200,
            not_after: 2_111_263_200,
            key_parameter: None,
            certificates: counts(vendor_counts),
        },
        CaSummary {
            id: MAN_CA.into(),
            label: "Manufacturer CA".into(),
            subject: "CN=Manufacturer CA, O=Example Manufacturer, C=US".into(),
            status: "ACTIVE".into(),
            auto_registration: false,
            jitp_template: None,
            not_before: 1_795_903_200,
            not_after: 2_111_263_200,
            key_parameter: Some(format!("cr-ca-key-{MAN_CA}")),
            certificates: counts(man_counts),
        },
    ]
}

pub fn row(serial: &str, state: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("SerialNumber".into(), json!(serial));
    m.insert("CrState".into(), json!(state));
    m.insert("ManufacturerCaCertId".into(), json!(MAN_CA));
    match state {
        "CR_THING_CREATED" => {
            m.insert("VendorCertId".into(), json!(cert_id(serial, "v")));
        }
        "CR_MAN_CERT_CREATED" => {
            m.insert("VendorCertId".into(), json!(cert_id(serial, "v")));
            m.insert("ManufacturerCertId".into(), json!(cert_id(serial, "m")));
        }
        "CR_CERT_ROTATION_COMPLETED" => {
            m.insert("ManufacturerCertId".into(), json!(cert_id(serial, "m")));
        }
        _ => {}
    }
    m
}

pub fn status(states: &[&str]) -> StatusReport {
    let devices: Vec<_> = SERIALS
        .iter()
        .zip(states)
        .map(|(s, st)| row(s, st))
        .collect();
    let mut certificates = Vec::new();
    for (serial, st) in SERIALS.iter().zip(states) {
        if *st == "CR_THING_CREATED" || *st == "CR_MAN_CERT_CREATED" {
            certificates.push(CertSummary {
                id: cert_id(serial, "v"),
                ca_id: Some(VENDOR_CA.into()),
                status: "ACTIVE".into(),
                common_name: Some(serial.to_string()),
                things: vec![serial.to_string()],
                policies: vec![IN_PROGRESS_POLICY.into()],
            });
        }
        if *st == "CR_MAN_CERT_CREATED" || *st == "CR_CERT_ROTATION_COMPLETED" {
            certificates.push(CertSummary {
                id: cert_id(serial, "m"),
                ca_id: Some(MAN_CA.into()),
                status: "ACTIVE".into(),
                common_name: Some(serial.to_string()),
                things: vec![serial.to_string()],
                policies: vec![COMPLETE_POLICY.into()],
            });
        }
    }
    let active_v = states
        .iter()
        .filter(|s| **s == "CR_THING_CREATED" || **s == "CR_MAN_CERT_CREATED")
        .count() as u64;
    let active_m = states
        .iter()
        .filter(|s| **s == "CR_MAN_CERT_CREATED" || **s == "CR_CERT_ROTATION_COMPLETED")
        .count() as u64;
    let mut parameters = BTreeMap::new();
    parameters.insert(format!("cr-ca-key-{MAN_CA}"), "SecureString".to_string());
    StatusReport {
        backend: "local".into(),
        data_dir: None,
        endpoint: Some("127.0.0.1:8883".into()),
        stack: Some(stack()),
        other_stacks: vec![],
        cas: cas(&[("ACTIVE", active_v)], &[("ACTIVE", active_m)]),
        certificates,
        things: BTreeMap::new(),
        policies: BTreeMap::new(),
        parameters,
        devices,
    }
}

pub fn ev(at: i64, kind: EventKind, summary: &str) -> CloudEvent {
    let mut e = CloudEvent::new(kind, summary).client(SAMPLE);
    e.at = T0 + at;
    e
}

/// The sample device's real sequence of events through 3a and 3b.
pub fn walkthrough_events() -> Vec<CloudEvent> {
    let rqst = format!("/cert-rotation/create-man-cert/{SAMPLE}/rqst");
    let rspn = format!("/cert-rotation/create-man-cert/{SAMPLE}/rspn");
    let vendor = cert_id(SAMPLE, "v");
    vec![
        ev(2000, EventKind::PacketIn { packet: "CONNECT", size: 34 }, "CONNECT clientId=IUQWXALODJESC1"),
        ev(2001, EventKind::Jitp, "registered certificate PENDING_ACTIVATION (unknown cert of a CA with auto-registration)"),
        ev(2002, EventKind::Jitp, "template applied: thing IUQWXALODJESC1, cert ACTIVE, CrInProgressCertPolicy"),
        ev(2003, EventKind::Connection, "connection refused: certificate was just registered by JITP; retry"),
        ev(2004, EventKind::Rule, "rule_jitp: invoke CertRotation-cert-rotation"),
        ev(2005, EventKind::Function, "serial whitelisted: CrState CR_THING_CREATED, VendorCertId stored"),
        ev(2100, EventKind::PacketIn { packet: "CONNECT", size: 34 }, "CONNECT clientId=IUQWXALODJESC1"),
        ev(2101, EventKind::PacketOut { packet: "CONNACK", size: 4 }, "CONNACK accepted"),
        ev(3000, EventKind::PacketIn { packet: "SUBSCRIBE", size: 52 }, "SUBSCRIBE create-man-cert rspn").topic(&rspn),
        ev(3001, EventKind::PacketOut { packet: "SUBACK", size: 5 }, "SUBACK qos 1"),
        ev(3002, EventKind::PacketIn { packet: "PUBLISH", size: 612 }, "{\"csr\": \"-----BEGIN CERTIFICATE REQUEST-----…\"}")
            .topic(&rqst)
            .detail(json!({"payload": {"csr": "-----BEGIN CERTIFICATE REQUEST-----\nMIIB…\n-----END CERTIFICATE REQUEST-----\n"}})),
        ev(3003, EventKind::Rule, "rule_create_man_cert: invoke CertRotation-cert-rotation"),
        ev(3004, EventKind::Function, "CSR signed by the Manufacturer CA (key from cr-ca-key-…)"),
        ev(3005, EventKind::Registry, "certificate ACTIVE, CrCertRotationCompleteCertPolicy and thing attached"),
        ev(3006, EventKind::Function, "CrState CR_MAN_CERT_CREATED, ManufacturerCertId stored"),
        ev(3007, EventKind::PacketOut { packet: "PUBLISH", size: 905 }, "{\"pem\": \"-----BEGIN CERTIFICATE-----…\", \"cert_id\": …}")
            .topic(&rspn)
            .detail(json!({"payload": {"pem": CERT_PEM, "cert_id": cert_id(SAMPLE, "m")}, "vendorCertId": vendor})),
    ]
}

/// The sample device's 3c, as the local cloud reports it: a new connection
/// over the manufacturer certificate, the ack, the vendor certificate
/// switched off and deleted, the row completed and the answer.
pub fn ack_events() -> Vec<CloudEvent> {
    let rqst = format!("/cert-rotation/ack-man-cert/{SAMPLE}/rqst");
    let rspn = format!("/cert-rotation/ack-man-cert/{SAMPLE}/rspn");
    let vendor = cert_id(SAMPLE, "v");
    let manufacturer = cert_id(SAMPLE, "m");
    vec![
        ev(
            4000,
            EventKind::PacketIn {
                packet: "CONNECT",
                size: 34,
            },
            "CONNECT clientId=IUQWXALODJESC1",
        ),
        ev(4001, EventKind::Connection, "IUQWXALODJESC1 connected"),
        ev(
            4001,
            EventKind::PacketOut {
                packet: "CONNACK",
                size: 4,
            },
            "CONNACK accepted",
        ),
        ev(
            4002,
            EventKind::PacketIn {
                packet: "SUBSCRIBE",
                size: 49,
            },
            "SUBSCRIBE ack-man-cert rspn",
        )
        .topic(&rspn),
        ev(
            4002,
            EventKind::PacketOut {
                packet: "SUBACK",
                size: 5,
            },
            "SUBACK qos 1",
        ),
        ev(
            4003,
            EventKind::PacketIn {
                packet: "PUBLISH",
                size: 120,
            },
            &format!("{{\"cert_id\": \"{manufacturer}\"}}"),
        )
        .topic(&rqst)
        .detail(json!({"payload": {"cert_id": manufacturer}})),
        ev(
            4003,
            EventKind::Rule,
            "rule_ack_man_cert: invoke CertRotation-cert-rotation",
        ),
        ev(
            4004,
            EventKind::Registry,
            &format!("certificate {vendor} set INACTIVE"),
        ),
        ev(
            4004,
            EventKind::Registry,
            &format!("certificate {vendor} deleted"),
        ),
        ev(
            4005,
            EventKind::Function,
            "rotation cert_rotation_completed IUQWXALODJESC1",
        ),
        ev(
            4005,
            EventKind::PacketOut {
                packet: "PUBLISH",
                size: 118,
            },
            &format!("{{\"cert_id\": \"{manufacturer}\"}}"),
        )
        .topic(&rspn)
        .detail(json!({"payload": {"cert_id": manufacturer}})),
        ev(
            4006,
            EventKind::PacketIn {
                packet: "DISCONNECT",
                size: 2,
            },
            "DISCONNECT",
        ),
        ev(
            4006,
            EventKind::Connection,
            "IUQWXALODJESC1 disconnected: client sent DISCONNECT",
        ),
    ]
}

pub fn progress(
    serial: &str,
    step: WalkStep,
    state: ProgressState,
    at: i64,
    message: &str,
) -> DeviceProgress {
    DeviceProgress {
        serial: serial.into(),
        step,
        state,
        attempt: 1,
        message: message.into(),
        at: T0 + at,
    }
}

pub fn header() -> Header {
    Header {
        backend: "local".into(),
        endpoint: Some("127.0.0.1:8883".into()),
        api: Some("http://127.0.0.1:4566".into()),
        data_dir: Some("/tmp/jitpilot-demo".into()),
        observer: None,
        tls_refused: 0,
    }
}

pub fn empty_app() -> App {
    App::new(Theme::new(true), header(), false)
}

pub fn mid_app() -> App {
    let mut app = empty_app();
    app.apply_status(status(&[
        "CR_MAN_CERT_CREATED",
        "CR_THING_CREATED",
        "CR_WHITELISTED",
        "CR_WHITELISTED",
    ]));
    for e in walkthrough_events() {
        app.push_event(Arc::new(e));
    }
    app.apply_progress(&progress(
        SAMPLE,
        WalkStep::CreateCert,
        ProgressState::Done,
        3008,
        "manufacturer cert stored",
    ));
    app.apply_progress(&progress(
        SERIALS[2],
        WalkStep::Jitp,
        ProgressState::Running,
        3100,
        "connect refused (JITP provisioning), retry 2 in 180 ms",
    ));
    app
}

pub fn completed_app() -> App {
    let mut app = empty_app();
    app.apply_status(status(&["CR_WHITELISTED"; 4]));
    for e in walkthrough_events().into_iter().chain(ack_events()) {
        app.push_event(Arc::new(e));
    }
    for (i, s) in SERIALS.iter().enumerate() {
        app.apply_progress(&progress(
            s,
            WalkStep::AckCert,
            ProgressState::Done,
            4000 + 300 * i as i64,
            "rotation complete",
        ));
    }
    app.apply_status(status(&["CR_CERT_ROTATION_COMPLETED"; 4]));
    app
}

pub fn render(app: &App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal.draw(|f| ui::draw(f, app)).expect("draw");
    terminal
}
