//! Every pane and overlay of the TUI rendered into ratatui's `TestBackend`
//! and compared with insta snapshots, for an empty cloud, the middle of the
//! walkthrough and a completed fleet. State is fabricated through the app's
//! own API (status reports, cloud events, device progress), as the live
//! cloud would feed it.

use jitpilot::cloud::aws::observer::{observed_event, ObserverState};
use jitpilot::cloud::{CaSummary, CertSummary, CloudEvent, EventKind, StackSummary, StatusReport};
use jitpilot::model::{StackEvent, StackResource};
use jitpilot::tui::action::{Action, DeviceProgress, ProgressState, WalkStep};
use jitpilot::tui::app::{App, Header};
use jitpilot::tui::panes::PaneId;
use jitpilot::tui::theme::Theme;
use jitpilot::tui::ui;
use ratatui::backend::TestBackend;
use ratatui::style::Color;
use ratatui::Terminal;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

/// 2026-11-28 22:00:00 UTC.
const T0: i64 = 1_795_903_200_000;
const SAMPLE: &str = "IUQWXALODJESC1";
const SERIALS: [&str; 4] = [SAMPLE, "K7Q2M9X4D1LZ8A", "P3V8N6R2T5WB0C", "Z1H4J7K0Q3S6U9"];
const VENDOR_CA: &str = "4b1f0c9e7d2a6b3c5e8f1a0d9c7b6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d";
const MAN_CA: &str = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d";
const CERT_PEM: &str = include_str!("../core/src/pki/testdata/openssl-ca.pem");
/// The names the real stack gives (cfn/cert-rotation.json).
const FUNCTION: &str = "CertRotation-cert-rotation";
const IN_PROGRESS_POLICY: &str = "CrInProgressCertPolicy";
const COMPLETE_POLICY: &str = "CrCertRotationCompleteCertPolicy";

fn cert_id(serial: &str, kind: &str) -> String {
    format!("{kind}{serial}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()[..64.min(2 * (kind.len() + serial.len()))]
        .to_string()
}

fn resource(logical: &str, kind: &str, physical: &str) -> StackResource {
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
fn stack() -> StackSummary {
    let template: serde_json::Value =
        serde_json::from_str(include_str!("../cfn/cert-rotation.json")).expect("the template");
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

fn cas(vendor_counts: &[(&str, u64)], man_counts: &[(&str, u64)]) -> Vec<CaSummary> {
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

fn row(serial: &str, state: &str) -> serde_json::Map<String, serde_json::Value> {
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

fn status(states: &[&str]) -> StatusReport {
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

fn ev(at: i64, kind: EventKind, summary: &str) -> CloudEvent {
    let mut e = CloudEvent::new(kind, summary).client(SAMPLE);
    e.at = T0 + at;
    e
}

/// The sample device's real sequence of events through 3a and 3b.
fn walkthrough_events() -> Vec<CloudEvent> {
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
fn ack_events() -> Vec<CloudEvent> {
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

fn progress(
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

fn header() -> Header {
    Header {
        backend: "local".into(),
        endpoint: Some("127.0.0.1:8883".into()),
        api: Some("http://127.0.0.1:4566".into()),
        data_dir: Some("/tmp/jitpilot-demo".into()),
        observer: None,
        tls_refused: 0,
    }
}

fn empty_app() -> App {
    App::new(Theme::new(true), header(), false)
}

fn mid_app() -> App {
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

fn completed_app() -> App {
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

fn render(app: &App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal.draw(|f| ui::draw(f, app)).expect("draw");
    terminal
}

macro_rules! snap {
    ($name:expr, $app:expr) => {
        insta::assert_snapshot!($name, render(&$app, 120, 36).backend())
    };
}

#[test]
fn main_screen_in_three_states() {
    snap!("main_empty", empty_app());
    snap!("main_mid", mid_app());
    snap!("main_completed", completed_app());
}

#[test]
fn each_pane_zoomed_in_three_states() {
    for (state, make) in [
        ("empty", empty_app as fn() -> App),
        ("mid", mid_app),
        ("completed", completed_app),
    ] {
        for pane in PaneId::ALL {
            let mut app = make();
            app.focus = pane;
            app.update(Action::ToggleZoom);
            let name = format!(
                "pane_{}_{state}",
                pane.title().replace(' ', "_").to_lowercase()
            );
            snap!(name, app);
        }
    }
}

/// Whitelisted devices that have not started: nothing on the timeline yet.
fn whitelisted_app() -> App {
    let mut app = empty_app();
    app.apply_status(status(&["CR_WHITELISTED"; 4]));
    app
}

#[test]
fn device_detail_draws_the_sequence_diagram() {
    for (state, mut app, steps) in [
        ("empty", whitelisted_app(), &[][..]),
        (
            "mid",
            mid_app(),
            &["create-man-cert/IUQWXALODJESC1/rspn"][..],
        ),
        (
            "completed",
            completed_app(),
            &[
                "rule_jitp",
                "create-man-cert/IUQWXALODJESC1/rspn",
                "PUBLISH ack-man-cert/IUQWXALODJESC1/rqst",
                "rule_ack_man_cert",
                "cert_rotation_completed",
                "PUBLISH ack-man-cert/IUQWXALODJESC1/rspn",
            ][..],
        ),
    ] {
        app.focus = PaneId::Devices;
        app.update(Action::Top);
        app.update(Action::Open);
        // Tall enough for the whole walkthrough, 3a to 3c.
        let screen = render(&app, 120, 90).backend().to_string();
        assert!(
            screen.contains(&format!("Device {SAMPLE} (Esc back")),
            "{state}: the device detail is open:\n{screen}"
        );
        let lanes = screen.lines().nth(2).unwrap_or_default();
        for lane in ["Device", "IoT Core", "Lambda", "DynamoDB"] {
            assert!(lanes.contains(lane), "{state}: lane {lane}:\n{screen}");
        }
        for step in steps {
            assert!(screen.contains(step), "{state}: {step} drawn:\n{screen}");
        }
        insta::assert_snapshot!(format!("device_detail_{state}"), screen);
    }
}

#[test]
fn traffic_detail_decodes_json_and_pem() {
    let mut app = mid_app();
    app.focus = PaneId::Traffic;
    app.update(Action::Down); // selects the newest row: the create-man-cert response
    app.update(Action::Open);
    let screen = render(&app, 120, 48).backend().to_string();
    assert!(
        screen.contains("certificateId"),
        "the PEM in the payload is decoded"
    );
    assert!(
        screen.contains("CN=IUQWXALODJESC1"),
        "subject decoded from the PEM"
    );
    insta::assert_snapshot!("traffic_detail_mid", screen);
}

#[test]
fn overlays() {
    for (state, make) in [
        ("empty", empty_app as fn() -> App),
        ("mid", mid_app),
        ("completed", completed_app),
    ] {
        let mut app = make();
        app.update(Action::Help);
        snap!(format!("help_{state}"), app);
    }
    let mut app = mid_app();
    app.update(Action::AskTeardown);
    snap!("confirm_teardown", app);
    let mut app = mid_app();
    app.update(Action::AskCleanup);
    snap!("confirm_cleanup", app);
    let mut app = mid_app();
    app.update(Action::AskFault);
    snap!("fault_menu", app);
    let mut app = mid_app();
    app.update(Action::AskSpawn);
    app.update(Action::Input('5'));
    snap!("spawn_prompt", app);
}

#[test]
fn traffic_filter_and_freeze_show_in_the_title() {
    let mut app = mid_app();
    app.focus = PaneId::Traffic;
    app.update(Action::StartFilter);
    for c in "type:rule".chars() {
        app.update(Action::Input(c));
    }
    app.update(Action::Confirm);
    app.update(Action::ToggleFreeze);
    snap!("traffic_filtered_frozen", app);
}

#[test]
fn demo_mode_narrates_the_step() {
    let mut app = App::new(Theme::new(true), header(), true);
    snap!("demo_welcome", app);
    app.update(Action::DemoNext);
    snap!("demo_deploy", app);
}

#[test]
fn too_small_terminal_says_so() {
    let screen = render(&mid_app(), 60, 20).backend().to_string();
    assert!(screen.contains("needs at least 80×24"), "{screen}");
    insta::assert_snapshot!("too_small", screen);
}

#[test]
fn fits_the_minimum_terminal() {
    insta::assert_snapshot!("main_mid_80x24", render(&mid_app(), 80, 24).backend());
}

#[test]
fn no_color_uses_no_colours() {
    let mut app = mid_app();
    app.theme = Theme::new(false);
    let terminal = render(&app, 120, 36);
    let buf = terminal.backend().buffer();
    let coloured = buf
        .content()
        .iter()
        .filter(|c| c.fg != Color::Reset || c.bg != Color::Reset)
        .count();
    assert_eq!(coloured, 0, "NO_COLOR: no cell may carry a colour");
    // And with colours on, the same screen does use them (so the check can fail).
    let terminal = render(&mid_app(), 120, 36);
    assert!(terminal
        .backend()
        .buffer()
        .content()
        .iter()
        .any(|c| c.fg != Color::Reset));
}

/// The TUI on AWS: the header names the region, the account's endpoint and
/// the observer's state; the traffic pane shows what the observer receives.
fn aws_app(observer: ObserverState) -> App {
    let header = Header {
        backend: "aws us-east-1".into(),
        endpoint: Some("a1b2c3d4e5f6g7-ats.iot.us-east-1.amazonaws.com:8883".into()),
        api: None,
        data_dir: Some("/tmp/jitpilot-aws".into()),
        observer: Some(observer),
        tls_refused: 0,
    };
    App::new(Theme::new(true), header, false)
}

/// An event stamped at `T0 + at`, so the clock column is stable.
fn at(mut event: CloudEvent, at: i64) -> Arc<CloudEvent> {
    event.at = T0 + at;
    Arc::new(event)
}

#[test]
fn aws_header_shows_the_observer_and_its_traffic() {
    const OBSERVER: &str = "jitpilot-observer-0a1b2c3d";
    let mut app = aws_app(ObserverState::Waiting {
        reason: "no observer identity yet: run init".into(),
    });
    let mut report = status(&["CR_WHITELISTED"; 2]);
    report.backend = "aws".into();
    report.endpoint = Some("a1b2c3d4e5f6g7-ats.iot.us-east-1.amazonaws.com:8883".into());
    app.apply_status(report);
    let failed = ObserverState::Failed {
        reason: "a1b2c3d4e5f6g7-ats.iot.us-east-1.amazonaws.com:8883: nothing accepts connections there: check --iot-endpoint, or your network".into(),
    };
    app.push_event(at(failed.event(OBSERVER), 100));
    // Wide enough for the whole status line: the cause, then what to do.
    let screen = render(&app, 160, 36).backend().to_string();
    assert!(
        screen.contains("observer retrying") && screen.contains("--iot-endpoint"),
        "the failure and what to do are on screen:\n{screen}"
    );
    insta::assert_snapshot!("aws_observer_failed", screen);

    let subscribed = ObserverState::Subscribed {
        endpoint: "a1b2c3d4e5f6g7-ats.iot.us-east-1.amazonaws.com:8883".into(),
        client_id: OBSERVER.into(),
    };
    app.push_event(at(subscribed.event(OBSERVER), 200));
    let presence = json!({"clientId": SAMPLE, "principalIdentifier": cert_id(SAMPLE, "vendor")});
    app.push_event(at(
        observed_event(
            &format!("$aws/events/presence/connected/{SAMPLE}"),
            presence.to_string().as_bytes(),
        ),
        300,
    ));
    app.push_event(at(
        observed_event(
            &format!("/cert-rotation/create-man-cert/{SAMPLE}/rqst"),
            br#"{"csr":"-----BEGIN CERTIFICATE REQUEST-----"}"#,
        ),
        400,
    ));
    let screen = render(&app, 160, 36).backend().to_string();
    assert!(screen.contains("observer subscribed"), "{screen}");
    assert!(
        screen.contains(&format!("{SAMPLE} connected")),
        "presence in the traffic pane:\n{screen}"
    );
    insta::assert_snapshot!("aws_observer_subscribed", screen);
}

#[test]
fn aws_backend_that_cannot_start_says_what_to_do() {
    let mut app = aws_app(ObserverState::Stopped);
    app.header.observer = None;
    app.header.backend = "aws".into();
    app.header.endpoint = None;
    app.fatal = Some(
        "Cannot open the AWS backend:\n\nno AWS region configured; pass `--region us-east-1`"
            .into(),
    );
    let screen = render(&app, 100, 24).backend().to_string();
    assert!(
        screen.contains("The AWS backend could not start"),
        "{screen}"
    );
    insta::assert_snapshot!("aws_cannot_start", screen);
}

/// API calls from outside clients appear as their own rows, `type:api`
/// keeps only them, and the detail view shows request and answer with
/// the secrets redacted.
#[test]
fn api_calls_show_in_the_traffic_pane_with_secrets_redacted() {
    use jitpilot::cloud::local::api::traffic::{event, ApiCall};
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "authorization",
        http::HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20261128/us-east-1/ssm/aws4_request, SignedHeaders=host;x-amz-date, Signature=0123456789abcdef"),
    );
    let put = br#"{"Name":"cr-ca-key-9e8d","Type":"SecureString","Value":"-----BEGIN PRIVATE KEY-----\nTOPSECRET\n-----END PRIVATE KEY-----\n"}"#;
    // (service, operation, status, ms, request, response)
    #[allow(clippy::type_complexity)]
    let calls: [(&str, &str, u16, u64, &[u8], &[u8]); 3] = [
        (
            "iot",
            "GetRegistrationCode",
            200,
            2,
            b"",
            br#"{"registrationCode":"abc123"}"#,
        ),
        (
            "ssm",
            "PutParameter",
            200,
            4,
            put,
            br#"{"Version":1,"Tier":"Standard"}"#,
        ),
        (
            "iot",
            "DescribeThing",
            404,
            1,
            b"",
            br#"{"message":"no thing NOPE"}"#,
        ),
    ];
    let mut app = mid_app();
    for (i, (service, operation, status, millis, req, resp)) in calls.into_iter().enumerate() {
        let e = event(&ApiCall {
            service,
            operation,
            method: "POST",
            path: "/",
            headers: &headers,
            request_body: req,
            status,
            response_body: resp,
            millis,
            request_id: "7d0c2a4e-0000-4000-8000-000000000000",
        });
        app.push_event(at(e, 4000 + i as i64));
    }
    app.focus = PaneId::Traffic;
    app.update(Action::StartFilter);
    for c in "type:api".chars() {
        app.update(Action::Input(c));
    }
    app.update(Action::Confirm);
    let screen = render(&app, 120, 36).backend().to_string();
    assert!(screen.contains("iot:GetRegistrationCode"), "{screen}");
    assert!(screen.contains("404   1 ms"), "{screen}");
    assert!(
        !screen.contains("CONNECT"),
        "type:api keeps only API rows:\n{screen}"
    );
    insta::assert_snapshot!("traffic_api_rows", screen);

    app.update(Action::Down); // selects the newest row: DescribeThing
    app.update(Action::Up); // the PutParameter call
    app.update(Action::Open);
    let screen = render(&app, 120, 48).backend().to_string();
    assert!(screen.contains("cr-ca-key-9e8d"), "{screen}");
    assert!(!screen.contains("TOPSECRET"), "{screen}");
    assert!(!screen.contains("0123456789abcdef"), "{screen}");
    insta::assert_snapshot!("traffic_api_detail", screen);
}
