//! Frame render time of the TUI with 10,000 devices and a full traffic
//! buffer, into ratatui's `TestBackend` (DESIGN §4: ≤ 5 ms per frame).
//!
//! `cargo bench --bench tui_render`
//!
//! And what the UI thread does between frames during a 10,000-device run
//! (issue 16): applying the once-a-second read-back of the cloud, and
//! applying a slice of traffic events.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use jitpilot::cloud::{CertSummary, CloudEvent, EventKind, StatusReport};
use jitpilot::tui::action::Action;
use jitpilot::tui::app::{App, Header};
use jitpilot::tui::panes::traffic::DEFAULT_CAPACITY;
use jitpilot::tui::panes::PaneId;
use jitpilot::tui::theme::Theme;
use jitpilot::tui::ui;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use std::collections::BTreeMap;
use std::sync::Arc;

const DEVICES: usize = 10_000;
const STATES: [&str; 4] = [
    "CR_WHITELISTED",
    "CR_THING_CREATED",
    "CR_MAN_CERT_CREATED",
    "CR_CERT_ROTATION_COMPLETED",
];

fn fleet_app() -> App {
    let mut app = App::new(Theme::new(true), Header::default(), false);
    let devices = (0..DEVICES)
        .map(|i| {
            let mut m = serde_json::Map::new();
            m.insert("SerialNumber".into(), format!("DEV{i:011}").into());
            m.insert("CrState".into(), STATES[i % 4].into());
            m.insert("VendorCertId".into(), format!("{i:064x}").into());
            m
        })
        .collect();
    app.apply_status(StatusReport {
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
        devices,
    });
    // Fill the traffic ring (and then some, so it has dropped rows too).
    for i in 0..DEFAULT_CAPACITY + 1000 {
        let serial = format!("DEV{:011}", i % DEVICES);
        let topic = format!("/cert-rotation/create-man-cert/{serial}/rqst");
        let mut e = CloudEvent::new(
            EventKind::PacketIn {
                packet: "PUBLISH",
                size: 600,
            },
            "{\"csr\": \"-----BEGIN CERTIFICATE REQUEST-----…\"}",
        )
        .client(serial)
        .topic(topic);
        e.at = 1_795_903_200_000 + i as i64;
        app.push_event(Arc::new(e));
    }
    app
}

fn render(c: &mut Criterion) {
    let mut app = fleet_app();
    let mut terminal = Terminal::new(TestBackend::new(200, 60)).expect("terminal");
    c.bench_function("frame 10k devices + full traffic, 200x60", |b| {
        b.iter(|| {
            terminal.draw(|f| ui::draw(f, &app)).expect("draw");
        })
    });
    app.focus = PaneId::Devices;
    app.update(Action::Bottom);
    c.bench_function("frame 10k devices, selection at the end", |b| {
        b.iter(|| {
            terminal.draw(|f| ui::draw(f, &app)).expect("draw");
        })
    });
    app.focus = PaneId::Traffic;
    app.update(Action::StartFilter);
    for ch in "topic:dev00000000042".chars() {
        app.update(Action::Input(ch));
    }
    app.update(Action::Confirm);
    c.bench_function("frame with a traffic filter over the full buffer", |b| {
        b.iter(|| {
            terminal.draw(|f| ui::draw(f, &app)).expect("draw");
        })
    });
}

/// A read-back of a 10,000-device fleet mid-run, as `status()` returns it:
/// the table rows, a certificate and a thing per device.
fn fleet_report(round: usize) -> StatusReport {
    let devices = (0..DEVICES)
        .map(|i| {
            let mut m = serde_json::Map::new();
            m.insert("SerialNumber".into(), format!("DEV{i:011}").into());
            // Each read-back finds some devices a step further.
            m.insert("CrState".into(), STATES[(i + round * (i % 7)) % 4].into());
            m.insert("VendorCertId".into(), format!("{i:064x}").into());
            m
        })
        .collect();
    let certificates = (0..DEVICES)
        .map(|i| CertSummary {
            id: format!("{i:064x}"),
            ca_id: Some(format!("{:064x}", 1)),
            status: "ACTIVE".into(),
            common_name: Some(format!("DEV{i:011}")),
            things: vec![format!("DEV{i:011}")],
            policies: vec!["CertRotationInProgress".into()],
        })
        .collect();
    let things = (0..DEVICES)
        .map(|i| (format!("DEV{i:011}"), vec![format!("{i:064x}")]))
        .collect();
    StatusReport {
        backend: "local".into(),
        data_dir: None,
        endpoint: None,
        stack: None,
        cas: vec![],
        certificates,
        things,
        policies: BTreeMap::new(),
        parameters: BTreeMap::new(),
        devices,
        other_stacks: vec![],
    }
}

fn ingest(c: &mut Criterion) {
    let mut app = fleet_app();
    let mut round = 0;
    c.bench_function("apply a 10k-device read-back (the refresh)", |b| {
        b.iter_batched(
            || {
                round += 1;
                fleet_report(round)
            },
            |report| app.apply_status(report),
            BatchSize::LargeInput,
        )
    });
    let events: Vec<_> = (0..1000)
        .map(|i| {
            let serial = format!("DEV{:011}", i * 7 % DEVICES);
            Arc::new(
                CloudEvent::new(
                    EventKind::PacketIn {
                        packet: "PUBLISH",
                        size: 600,
                    },
                    "{\"csr\": \"…\"}",
                )
                .client(serial.clone())
                .topic(format!("/cert-rotation/create-man-cert/{serial}/rqst")),
            )
        })
        .collect();
    c.bench_function("apply 1,000 traffic events", |b| {
        b.iter(|| {
            for e in &events {
                app.push_event(e.clone());
            }
        })
    });
}

criterion_group!(benches, render, ingest);
criterion_main!(benches);
