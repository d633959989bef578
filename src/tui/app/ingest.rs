//! What the app takes in, apart from keys: the runner's results, a fresh
//! read-back of the cloud (`status`), a device agent's progress, and each
//! event of the cloud's stream — routed to the traffic, the stack pane and
//! the timeline of the device it is about.

use super::App;
use crate::cloud::open::ObserverState;
use crate::cloud::{CloudEvent, EventKind, StatusReport};
use crate::tui::action::{DeviceProgress, Msg, ProgressState};
use crate::vocabulary::{rotation_topic_serial, ATTR_SERIAL_NUMBER};
use std::sync::Arc;

impl App {
    /// Applies a message from the runner.
    pub fn apply(&mut self, msg: Msg) {
        match msg {
            Msg::Finished { what, result } => {
                self.busy.retain(|b| *b != what);
                match result {
                    Ok(text) => self.info(text),
                    Err(text) => self.error(text),
                }
            }
            Msg::Status(report) => self.apply_status(*report),
            Msg::Progress(p) => self.apply_progress(&p),
            Msg::Event(ev) => self.push_event(ev),
        }
    }

    /// Applies a fresh read-back of the cloud.
    pub fn apply_status(&mut self, report: StatusReport) {
        self.devices.apply_table(&report.devices);
        if report.stack.is_some() || !report.other_stacks.is_empty() {
            self.stack.clear_live();
        }
        if let Some(e) = &report.endpoint {
            self.header.endpoint = Some(e.clone());
        }
        self.status = Some(report);
    }

    /// Applies a device agent's progress report.
    pub fn apply_progress(&mut self, p: &DeviceProgress) {
        self.devices.apply_progress(p);
        match p.state {
            ProgressState::Failed => {
                let step = self
                    .devices
                    .get(&p.serial)
                    .and_then(|d| d.step)
                    .unwrap_or(p.step);
                self.error(format!(
                    "{} step {} failed: {}",
                    p.serial,
                    step.label(),
                    p.message
                ));
                self.refresh_hint = true;
            }
            ProgressState::StepDone | ProgressState::Done | ProgressState::Killed => {
                self.refresh_hint = true
            }
            ProgressState::Running => {}
        }
    }

    /// Adds a cloud event to the traffic, the stack pane and its device's timeline.
    pub fn push_event(&mut self, ev: Arc<CloudEvent>) {
        match ev.kind {
            EventKind::Stack => {
                self.stack.push_event(ev.clone());
                self.refresh_hint = true;
            }
            EventKind::Registry | EventKind::Function | EventKind::Jitp => self.refresh_hint = true,
            // The rotation function answered a device: it changed the
            // registry (a manufacturer cert, the vendor cert retired) and the
            // table. On AWS the observer's traffic is the only sign of it —
            // no registry or function events reach the TUI there — so
            // without this the CAs pane kept the counts of the JITP refresh.
            EventKind::PacketOut { .. } if ev.topic.as_deref().is_some_and(is_rotation_answer) => {
                self.refresh_hint = true
            }
            // A call from an outside client (aws CLI, boto3) may have changed
            // what the panes show.
            EventKind::Api { status, .. } if status < 400 => self.refresh_hint = true,
            _ => {}
        }
        if let Some(n) = ev.detail.get("handshakesFailed").and_then(|n| n.as_u64()) {
            self.header.tls_refused = self.header.tls_refused.max(n);
        }
        if let Some(state) = ObserverState::from_event(&ev) {
            // What the observer lacks goes to the status line with what to do.
            let was_problem = self
                .header
                .observer
                .as_ref()
                .is_some_and(|o| o.is_problem());
            if state.is_problem() {
                self.error(state.describe());
            } else if was_problem {
                self.info(state.describe());
            }
            self.header.observer = Some(state);
        }
        let serial = event_serial(&ev)
            .filter(|s| self.devices.get(s).is_some())
            .map(str::to_string)
            .or_else(|| {
                // Registry changes name a certificate: find the device that holds it.
                let cert = ev.detail.get("certificateId")?.as_str()?;
                self.devices.owner_of(cert).map(str::to_string)
            });
        if let Some(serial) = serial {
            self.devices.apply_event(&serial, &ev);
        }
        self.traffic.push(ev);
    }
}

/// The device an event is about: its clientId, else the serial in a
/// `/cert-rotation/<op>/<serial>/...` topic, else one named in its detail
/// (a rule's SQL output carries `client_id`; the rotation function's
/// decisions name their `subject`, the serial once it is known). Empty
/// names are skipped: the registered event is published by the cloud, so
/// its `clientId()` is empty.
pub fn event_serial(ev: &CloudEvent) -> Option<&str> {
    if let Some(c) = ev.client_id.as_deref().filter(|c| !c.is_empty()) {
        return Some(c);
    }
    if let Some(serial) = ev.topic.as_deref().and_then(rotation_topic_serial) {
        return Some(serial);
    }
    [
        "serial",
        ATTR_SERIAL_NUMBER,
        "thingName",
        "clientId",
        "client_id",
        "subject",
    ]
    .iter()
    .find_map(|k| {
        ev.detail
            .get(k)
            .or_else(|| ev.detail.get("event").and_then(|e| e.get(k)))
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty())
    })
}

/// `/cert-rotation/<step>/<serial>/rspn`: the rotation function's answer.
fn is_rotation_answer(topic: &str) -> bool {
    topic
        .strip_prefix('/')
        .and_then(|t| t.strip_prefix(crate::rotation::wire::CERT_ROTATION_ROOT))
        .is_some_and(|rest| rest.starts_with('/') && rest.ends_with("/rspn"))
}
