//! Every pane and overlay of the TUI rendered into ratatui's `TestBackend`
//! and compared with insta snapshots, for an empty cloud, the middle of the
//! walkthrough and a completed fleet. State is fabricated through the app's
//! own API (status reports, cloud events, device progress), as the live
//! cloud would feed it.

use jitpilot::cloud::aws::observer::{observed_event, ObserverState};
use jitpilot::cloud::CloudEvent;
use jitpilot::tui::action::Action;
use jitpilot::tui::app::{App, Header};
use jitpilot::tui::panes::PaneId;
use jitpilot::tui::theme::Theme;
use ratatui::style::Color;
use serde_json::json;
use std::sync::Arc;

#[path = "tui_snapshots/fixtures.rs"]
mod fixtures;
use fixtures::*;

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
