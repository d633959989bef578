//! Behaviour of the app state, keys and worker: what a user would notice.

use super::action::{Action, Command, DeviceProgress, Fault, Msg, ProgressState, WalkStep};
use super::app::{App, Header, View};
use super::keys::handle_key_event;
use super::panes::traffic::TrafficPane;
use super::panes::{visible_window, PaneId};
use super::theme::Theme;
use super::worker::{DeviceRunner, Worker};
use crate::cloud::local::LocalCloud;
use crate::cloud::{CloudEvent, EventBus, EventKind, StatusReport};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

fn event(kind: EventKind, client: &str, summary: &str) -> Arc<CloudEvent> {
    Arc::new(CloudEvent::new(kind, summary).client(client))
}

fn app() -> App {
    App::new(Theme::new(true), Header::default(), false)
}

fn row(
    serial: &str,
    state: &str,
    cert: Option<&str>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("SerialNumber".into(), serial.into());
    m.insert("CrState".into(), state.into());
    if let Some(c) = cert {
        m.insert("VendorCertId".into(), c.into());
    }
    m
}

fn status(rows: Vec<serde_json::Map<String, serde_json::Value>>) -> StatusReport {
    StatusReport {
        backend: "local".into(),
        data_dir: None,
        endpoint: None,
        stack: None,
        other_stacks: vec![],
        cas: vec![],
        certificates: vec![],
        things: BTreeMap::new(),
        policies: BTreeMap::new(),
        parameters: BTreeMap::new(),
        devices: rows,
    }
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

#[test]
fn traffic_ring_drops_the_oldest_and_counts_them() {
    let mut t = TrafficPane::with_capacity(3);
    for i in 0..5 {
        t.push(event(EventKind::Rule, "a", &format!("e{i}")));
    }
    assert_eq!(t.len(), 3);
    assert_eq!(t.dropped(), 2);
    t.set_lagged(10);
    assert_eq!(t.dropped(), 12, "events lost by the stream count too");
    t.select_edge(true);
    assert_eq!(
        t.selected_event().map(|e| e.summary.clone()).as_deref(),
        Some("e2")
    );
}

#[test]
fn selecting_a_row_pauses_autoscroll_and_back_resumes_it() {
    let mut app = app();
    for i in 0..5 {
        app.push_event(event(EventKind::Rule, "a", &format!("e{i}")));
    }
    app.focus = PaneId::Traffic;
    app.update(Action::Up);
    assert!(app.traffic.has_selection());
    let selected = app.traffic.selected_event().map(|e| e.summary.clone());
    app.push_event(event(EventKind::Rule, "a", "e5"));
    assert_eq!(
        app.traffic.selected_event().map(|e| e.summary.clone()),
        selected,
        "selection stays put"
    );
    app.update(Action::Back);
    assert!(!app.traffic.has_selection(), "Esc resumes autoscroll");
}

#[test]
fn filter_narrows_by_type_client_or_topic() {
    let mut t = TrafficPane::default();
    t.push(event(EventKind::Rule, "dev1", "rule_jitp"));
    t.push(event(
        EventKind::PacketIn {
            packet: "CONNECT",
            size: 10,
        },
        "dev2",
        "connect",
    ));
    t.push(Arc::new(
        CloudEvent::new(
            EventKind::PacketIn {
                packet: "PUBLISH",
                size: 9,
            },
            "p",
        )
        .client("dev1")
        .topic("/cert-rotation/ack-man-cert/dev1/rqst"),
    ));
    let count = |t: &mut TrafficPane| {
        t.select_edge(true);
        let mut n = 0;
        let mut last = None;
        loop {
            let cur = t.selected_event().map(|e| Arc::as_ptr(&e));
            if cur.is_none() || cur == last {
                break;
            }
            n += 1;
            last = cur;
            t.move_selection(1);
        }
        n
    };
    t.set_filter("type:rule");
    assert_eq!(count(&mut t), 1);
    t.set_filter("client:DEV1");
    assert_eq!(count(&mut t), 2);
    t.set_filter("topic:ack-man-cert");
    assert_eq!(count(&mut t), 1);
    t.set_filter("");
    assert_eq!(count(&mut t), 3);
}

#[test]
fn freeze_hides_rows_that_arrive_afterwards() {
    let mut t = TrafficPane::default();
    t.push(event(EventKind::Rule, "a", "before"));
    t.toggle_freeze();
    t.push(event(EventKind::Rule, "a", "after"));
    t.select_edge(false);
    assert_eq!(
        t.selected_event().map(|e| e.summary.clone()).as_deref(),
        Some("before")
    );
    t.toggle_freeze();
    t.select_edge(false);
    assert_eq!(
        t.selected_event().map(|e| e.summary.clone()).as_deref(),
        Some("after")
    );
}

#[test]
fn only_the_visible_window_is_built() {
    let offset = Cell::new(0);
    assert_eq!(
        visible_window(10_000, None, 20, &offset),
        9_980..10_000,
        "tail follows"
    );
    assert_eq!(visible_window(10_000, Some(5), 20, &offset), 5..25);
    assert_eq!(
        visible_window(10_000, Some(10), 20, &offset),
        5..25,
        "no jump inside the window"
    );
    assert_eq!(visible_window(10_000, Some(40), 20, &offset), 21..41);
    assert_eq!(visible_window(3, Some(2), 20, &offset), 0..3);
}

#[test]
fn keys_mean_different_things_in_context() {
    let mut app = app();
    assert_eq!(
        handle_key_event(&app, key(KeyCode::Char('q'))),
        Some(Action::Quit)
    );
    app.update(Action::StartFilter);
    assert_eq!(
        handle_key_event(&app, key(KeyCode::Char('q'))),
        Some(Action::Input('q')),
        "typing q into the filter"
    );
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(
        handle_key_event(&app, ctrl_c),
        Some(Action::Quit),
        "Ctrl-C always quits"
    );
    app.update(Action::Back);
    app.update(Action::AskSpawn);
    assert_eq!(
        handle_key_event(&app, key(KeyCode::Char('7'))),
        Some(Action::Input('7'))
    );
    assert_eq!(
        handle_key_event(&app, key(KeyCode::Char('d'))),
        None,
        "no deploy from inside a prompt"
    );
}

#[test]
fn deploy_runs_once_at_a_time() {
    let mut app = app();
    app.update(Action::Deploy);
    app.update(Action::Deploy);
    assert_eq!(app.take_commands(), vec![Command::Deploy]);
    assert_eq!(app.busy, vec!["deploy"]);
    app.apply(Msg::Finished {
        what: "deploy",
        result: Err("the stack is broken: fix it".into()),
    });
    assert!(app.busy.is_empty());
    assert!(app
        .toast
        .as_ref()
        .is_some_and(|t| t.error && t.text.contains("fix it")));
}

#[test]
fn step_runs_the_next_step_from_the_table_state() {
    let mut app = app();
    app.apply_status(status(vec![
        row("A", "CR_THING_CREATED", Some("c1")),
        row("B", "CR_CERT_ROTATION_COMPLETED", None),
    ]));
    app.focus = PaneId::Devices;
    app.update(Action::StepSelected);
    assert_eq!(
        app.take_commands(),
        vec![Command::Step {
            serial: "A".into(),
            step: WalkStep::CreateCert,
            drop_next_response: false
        }]
    );
    app.update(Action::StepSelected);
    assert!(
        app.take_commands().is_empty(),
        "a running device is not stepped twice"
    );
    app.update(Action::Down);
    app.update(Action::StepSelected);
    assert!(
        app.take_commands().is_empty(),
        "a rotated device has no next step"
    );
    app.apply_progress(&DeviceProgress {
        serial: "A".into(),
        step: WalkStep::CreateCert,
        state: ProgressState::Done,
        attempt: 1,
        message: "done".into(),
        at: 1,
    });
    assert_eq!(
        app.devices.get("A").and_then(|d| d.next_step()),
        Some(WalkStep::AckCert)
    );
}

#[test]
fn spawn_adds_devices_to_the_fleet() {
    let mut app = app();
    app.apply_status(status(vec![
        row("A", "CR_WHITELISTED", None),
        row("B", "CR_WHITELISTED", None),
    ]));
    app.update(Action::AskSpawn);
    app.update(Action::Input('5'));
    app.update(Action::Confirm);
    assert_eq!(app.take_commands(), vec![Command::Spawn { devices: 7 }]);
}

#[test]
fn faults_target_the_selected_device() {
    let mut app = app();
    app.apply_status(status(vec![row("A", "CR_THING_CREATED", Some("cert-a"))]));
    app.update(Action::Fault(Fault::RevokeCert));
    assert_eq!(
        app.take_commands(),
        vec![Command::Revoke {
            cert_id: "cert-a".into()
        }]
    );
    app.update(Action::Fault(Fault::DropNextResponse));
    app.update(Action::StepSelected);
    assert_eq!(
        app.take_commands(),
        vec![Command::Step {
            serial: "A".into(),
            step: WalkStep::CreateCert,
            drop_next_response: true
        }]
    );
}

#[test]
fn cleanup_and_teardown_need_confirmation() {
    let mut app = app();
    app.update(Action::AskCleanup);
    app.update(Action::Back);
    assert!(app.take_commands().is_empty());
    app.update(Action::AskTeardown);
    app.update(Action::Confirm);
    assert_eq!(app.take_commands(), vec![Command::Teardown]);
}

#[test]
fn demo_plays_the_walkthrough_in_order() {
    let mut app = App::new(Theme::new(true), Header::default(), true);
    app.update(Action::DemoNext);
    assert!(app.take_commands().is_empty(), "the welcome only narrates");
    app.update(Action::DemoNext);
    assert_eq!(app.take_commands(), vec![Command::Deploy]);
    app.update(Action::DemoNext);
    assert!(
        app.take_commands().is_empty(),
        "init waits for the deploy to finish"
    );
    app.apply(Msg::Finished {
        what: "deploy",
        result: Ok("ok".into()),
    });
    app.update(Action::DemoNext);
    assert_eq!(app.take_commands(), vec![Command::Init { devices: 1 }]);
}

#[test]
fn events_land_in_their_device_timeline() {
    let mut app = app();
    app.apply_status(status(vec![row("A", "CR_WHITELISTED", None)]));
    app.push_event(event(
        EventKind::PacketIn {
            packet: "CONNECT",
            size: 1,
        },
        "A",
        "connect",
    ));
    app.push_event(Arc::new(
        CloudEvent::new(EventKind::Function, "whitelisted")
            .detail(serde_json::json!({"serial": "A"})),
    ));
    assert_eq!(app.devices.get("A").map(|d| d.timeline.len()), Some(2));
    // The registered event's function decision: published by the cloud, so
    // an empty clientId; its subject names the serial.
    app.push_event(Arc::new(
        CloudEvent::new(EventKind::Function, "rotation thing_created A")
            .client("")
            .detail(serde_json::json!({"subject": "A", "client_id": ""})),
    ));
    // rule_jitp's invocation, on behalf of the device.
    app.push_event(event(
        EventKind::Rule,
        "A",
        "rule_jitp: invoke CertRotation",
    ));
    assert_eq!(app.devices.get("A").map(|d| d.timeline.len()), Some(4));
    app.focus = PaneId::Devices;
    app.update(Action::Open);
    assert_eq!(app.view, View::DeviceDetail);
}

/// A device that never finishes: the worker must be able to kill it.
struct StuckDevice;

#[async_trait::async_trait]
impl DeviceRunner for StuckDevice {
    async fn run(
        &self,
        _serial: String,
        _step: Option<WalkStep>,
        _drop: bool,
        _progress: mpsc::UnboundedSender<DeviceProgress>,
    ) -> Result<(), String> {
        std::future::pending().await
    }
}

async fn next_msg(rx: &mut mpsc::UnboundedReceiver<Msg>) -> Msg {
    tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("a message within a minute")
        .expect("worker alive")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_runs_commands_on_a_real_local_cloud() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = LocalCloud::open(dir.path(), EventBus::default()).expect("open cloud");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut worker = Worker::new(Arc::new(cloud), Arc::new(StuckDevice), tx);

    worker.execute(Command::Init { devices: 1 });
    match next_msg(&mut rx).await {
        Msg::Finished {
            what: "init",
            result: Err(e),
        } => assert!(e.contains("deploy"), "{e}"),
        other => panic!("init before deploy must fail saying to deploy: {other:?}"),
    }
    let _status = next_msg(&mut rx).await;

    worker.execute(Command::Deploy);
    match next_msg(&mut rx).await {
        Msg::Finished {
            what: "deploy",
            result: Ok(text),
        } => assert!(text.contains("CREATE_COMPLETE"), "{text}"),
        other => panic!("deploy: {other:?}"),
    }
    match next_msg(&mut rx).await {
        Msg::Status(s) => assert!(s.stack.is_some(), "the read-back shows the stack"),
        other => panic!("status after deploy: {other:?}"),
    }

    worker.execute(Command::Step {
        serial: "X".into(),
        step: WalkStep::Jitp,
        drop_next_response: false,
    });
    worker.execute(Command::Kill { serial: "X".into() });
    match next_msg(&mut rx).await {
        Msg::Progress(p) => assert_eq!((p.serial.as_str(), p.state), ("X", ProgressState::Killed)),
        other => panic!("kill: {other:?}"),
    }
}

#[test]
fn a_refusal_answered_to_a_device_is_red_in_traffic_and_timeline() {
    use super::panes::device_detail::{diagram_step, Step};
    use super::panes::traffic::{error_answer, is_refusal};
    let answer = CloudEvent::new(
        EventKind::PacketOut {
            packet: "PUBLISH",
            size: 120,
        },
        "OUT PUBLISH /cert-rotation/create-man-cert/S1/rspn",
    )
    .client("S1")
    .topic("/cert-rotation/create-man-cert/S1/rspn")
    .detail(serde_json::json!({"size": 120, "payload": {"error": {
        "code": "csr_reuses_vendor_key",
        "message": "generate a new key pair",
        "retryable": false,
    }}}));
    assert!(is_refusal(&answer));
    assert_eq!(
        error_answer(&answer),
        Some(("csr_reuses_vendor_key", "generate a new key pair"))
    );
    match diagram_step(&answer) {
        Some(Step::Arrow { label, failed, .. }) => {
            assert!(failed);
            assert!(label.contains("refused: csr_reuses_vendor_key"), "{label}");
        }
        other => panic!("an arrow to the device: {other:?}"),
    }
    // The certificate itself is not a refusal.
    let cert = CloudEvent::new(
        EventKind::PacketOut {
            packet: "PUBLISH",
            size: 900,
        },
        "OUT PUBLISH /cert-rotation/create-man-cert/S1/rspn",
    )
    .detail(serde_json::json!({"payload": {"pem": "-----BEGIN", "cert_id": "abc"}}));
    assert!(!is_refusal(&cert));
    // A certificate issued with CsrKeyReuse=warn is marked, and red.
    let insecure = CloudEvent::new(
        EventKind::Function,
        "rotation man_cert_created S1: INSECURE [csr_reuses_vendor_key]: signed with CsrKeyReuse=warn",
    );
    assert!(is_refusal(&insecure));
}

#[test]
fn one_turn_of_the_loop_ingests_a_bounded_slice_of_a_flood() {
    let mut queue: std::collections::VecDeque<u32> = (0..100_000).collect();
    let mut applied = 0usize;
    let n = super::ingest(|| queue.pop_front(), |_| applied += 1);
    assert_eq!(n, applied);
    assert!(n > 0 && n <= super::INGEST_BATCH, "{n}");
    assert_eq!(queue.len(), 100_000 - n);
    // An empty queue ends the turn at once.
    let mut empty: std::collections::VecDeque<u32> = Default::default();
    assert_eq!(super::ingest(|| empty.pop_front(), |_| {}), 0);
}

#[test]
fn a_read_back_of_the_same_fleet_updates_rows_and_cert_owners_in_place() {
    let mut app = app();
    app.apply_status(status(vec![
        row("D1", "CR_WHITELISTED", None),
        row("D2", "CR_WHITELISTED", None),
    ]));
    let mut d1 = row("D1", "CR_MAN_CERT_CREATED", Some("v1"));
    d1.insert("ManufacturerCertId".into(), "m1".into());
    app.apply_status(status(vec![d1, row("D2", "CR_THING_CREATED", Some("v2"))]));
    let dev = app.devices.get("D1").unwrap();
    assert_eq!(dev.cr_state.as_deref(), Some("CR_MAN_CERT_CREATED"));
    assert_eq!(app.devices.owner_of("m1"), Some("D1"));
    assert_eq!(app.devices.owner_of("v2"), Some("D2"));
    assert_eq!(app.devices.summary().per_state, [0, 1, 1, 0]);
    // 3c: the vendor cert is gone from the row, and from the owners.
    let mut d1 = row("D1", "CR_CERT_ROTATION_COMPLETED", None);
    d1.insert("ManufacturerCertId".into(), "m1".into());
    app.apply_status(status(vec![d1, row("D2", "CR_THING_CREATED", Some("v2"))]));
    assert_eq!(app.devices.owner_of("v1"), None);
    assert_eq!(app.devices.owner_of("m1"), Some("D1"));
    assert_eq!(app.devices.get("D1").unwrap().vendor_cert, None);
    assert_eq!(app.devices.summary().rotated, 1);
    assert_eq!(app.devices.rate_buckets().iter().sum::<u64>(), 1);
    // Another fleet (cleanup, new init): rebuilt, the old devices gone.
    app.apply_status(status(vec![row("D3", "CR_WHITELISTED", None)]));
    assert!(app.devices.get("D1").is_none());
    assert_eq!(app.devices.owner_of("m1"), None);
    assert_eq!(app.devices.devices().len(), 1);
}

#[test]
fn the_rotation_functions_answers_refresh_the_ca_counts() {
    // On AWS the TUI learns of 3b and 3c only from the observed traffic:
    // the function's answer is what changed the CAs' certificates.
    let mut app = app();
    let publish = |out: bool, topic: &str| {
        let kind = if out {
            EventKind::PacketOut {
                packet: "PUBLISH",
                size: 10,
            }
        } else {
            EventKind::PacketIn {
                packet: "PUBLISH",
                size: 10,
            }
        };
        Arc::new(CloudEvent::new(kind, "PUBLISH").topic(topic))
    };
    app.push_event(publish(false, "/cert-rotation/create-man-cert/S1/rqst"));
    app.push_event(publish(true, "/other/rspn"));
    app.push_event(publish(true, "$aws/things/S1/shadow/rspn"));
    assert!(
        !app.take_refresh_hint(),
        "a request alone changes nothing yet"
    );
    for step in ["create-man-cert", "ack-man-cert"] {
        app.push_event(publish(true, &format!("/cert-rotation/{step}/S1/rspn")));
        assert!(
            app.take_refresh_hint(),
            "{step}'s answer refreshes the panes"
        );
    }
}
