//! The devices pane: one row per device of the fleet, and a fleet summary
//! (devices per `CrState`, onboardings per second, overall progress).
//!
//! A row merges what the device table says (`CrState`, `VendorCertId`,
//! `ManufacturerCertId`) with what the device agent reports while it runs
//! (step, attempt, last message, error), so the pane shows both the cloud's
//! and the device's view of the walkthrough.

use super::{clip, clock_time, contains_ci, pane_block, short_id, title_line, visible_window};
use crate::cloud::CloudEvent;
use crate::model::EpochMillis;
use crate::tui::action::{DeviceProgress, ProgressState, WalkStep};
use crate::tui::theme::Theme;
use crate::vocabulary::{
    CrState, ATTR_CR_STATE, ATTR_MANUFACTURER_CERT_ID, ATTR_SERIAL_NUMBER, ATTR_VENDOR_CERT_ID,
    CR_CERT_ROTATION_COMPLETED, CR_MAN_CERT_CREATED, CR_STATE_PREFIX, CR_THING_CREATED,
    CR_WHITELISTED,
};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Gauge, Paragraph, Row, Sparkline, Table};
use ratatui::Frame;
use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// The device table's states, in walkthrough order (the wire contract).
pub const CR_STATES: [&str; 4] = [
    CR_WHITELISTED,
    CR_THING_CREATED,
    CR_MAN_CERT_CREATED,
    CR_CERT_ROTATION_COMPLETED,
];

/// How many events of its own each device keeps for its timeline.
pub const TIMELINE_LEN: usize = 48;

/// One device as the TUI knows it.
#[derive(Debug, Clone, Default)]
pub struct DeviceRow {
    pub serial: String,
    /// `CrState` from the device table; `None` when the table has no row.
    pub cr_state: Option<String>,
    pub vendor_cert: Option<String>,
    pub manufacturer_cert: Option<String>,
    /// The step the agent last worked on.
    pub step: Option<WalkStep>,
    /// Last step the agent finished.
    pub step_done: Option<WalkStep>,
    /// True while an agent task runs for this device.
    pub running: bool,
    pub attempts: u32,
    pub last_event: String,
    pub last_at: EpochMillis,
    pub error: Option<String>,
    /// The device's own recent events, for the sequence diagram.
    pub timeline: VecDeque<Arc<CloudEvent>>,
}

impl DeviceRow {
    /// The step the table's `CrState` says was reached.
    fn table_step(&self) -> Option<WalkStep> {
        match self.cr_state.as_deref().and_then(CrState::parse)? {
            CrState::Whitelisted => None,
            CrState::ThingCreated => Some(WalkStep::Jitp),
            CrState::ManCertCreated => Some(WalkStep::CreateCert),
            CrState::CertRotationCompleted => Some(WalkStep::AckCert),
        }
    }

    /// The furthest step finished, by the table or by the agent.
    pub fn finished_step(&self) -> Option<WalkStep> {
        self.table_step().max(self.step_done)
    }

    /// The step to run next; `None` when rotation is complete.
    pub fn next_step(&self) -> Option<WalkStep> {
        match self.finished_step() {
            None => Some(WalkStep::Jitp),
            Some(s) => s.next(),
        }
    }

    /// True once the cert rotation is complete.
    pub fn completed(&self) -> bool {
        self.finished_step() == Some(WalkStep::AckCert)
    }

    /// The certificate the device uses now: the manufacturer cert once it has one.
    pub fn current_cert(&self) -> Option<&str> {
        self.manufacturer_cert
            .as_deref()
            .filter(|_| self.finished_step() >= Some(WalkStep::CreateCert))
            .or(self.vendor_cert.as_deref())
            .or(self.manufacturer_cert.as_deref())
    }

    /// What the state column shows.
    pub fn state_text(&self) -> String {
        if self.running {
            return format!("running {}", self.step.map(|s| s.label()).unwrap_or(""));
        }
        if self.error.is_some() {
            return "FAILED".into();
        }
        match &self.cr_state {
            Some(s) => s.trim_start_matches(CR_STATE_PREFIX).to_string(),
            None => "not whitelisted".into(),
        }
    }
}

/// The fleet at a glance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Devices per `CrState`, in [`CR_STATES`] order.
    pub per_state: [usize; 4],
    pub running: usize,
    pub failed: usize,
    /// Devices whose rotation is complete (by the table or by the agent).
    pub rotated: usize,
}

/// State of the devices pane.
#[derive(Debug, Default)]
pub struct DevicesPane {
    devices: Vec<DeviceRow>,
    index: HashMap<String, usize>,
    /// certificateId → serial, from the table's cert ids.
    cert_owner: HashMap<String, String>,
    selected: usize,
    offset: Cell<usize>,
    /// Rotations completed per second (Unix second, count), for the
    /// devices/s sparkline: one minute kept.
    completions: VecDeque<(i64, u64)>,
    /// Fleet summary, computed once per change rather than once per frame.
    summary: Cell<Option<Summary>>,
    /// The latest time seen (events, progress); the sparkline's "now".
    clock: EpochMillis,
}

impl DevicesPane {
    /// All devices, in table order.
    pub fn devices(&self) -> &[DeviceRow] {
        &self.devices
    }

    /// The serial of the device holding certificate `cert_id`, per the table.
    pub fn owner_of(&self, cert_id: &str) -> Option<&str> {
        self.cert_owner.get(cert_id).map(String::as_str)
    }

    /// A device by serial.
    pub fn get(&self, serial: &str) -> Option<&DeviceRow> {
        self.index.get(serial).map(|&i| &self.devices[i])
    }

    fn entry(&mut self, serial: &str) -> &mut DeviceRow {
        let i = match self.index.get(serial) {
            Some(&i) => i,
            None => {
                self.devices.push(DeviceRow {
                    serial: serial.to_string(),
                    ..DeviceRow::default()
                });
                self.index
                    .insert(serial.to_string(), self.devices.len() - 1);
                self.devices.len() - 1
            }
        };
        &mut self.devices[i]
    }

    fn tick(&mut self, at: EpochMillis) {
        self.clock = self.clock.max(at);
        // Keep one minute of completions: what the sparkline shows.
        let oldest = self.clock / 1000 - 59;
        while self
            .completions
            .front()
            .is_some_and(|&(sec, _)| sec < oldest)
        {
            self.completions.pop_front();
        }
    }

    fn completed_at(&mut self, at: EpochMillis) {
        let sec = at / 1000;
        match self.completions.back_mut() {
            Some((last, n)) if *last == sec => *n += 1,
            _ => self.completions.push_back((sec, 1)),
        }
    }

    /// Applies the device table's rows (`status().devices`). Devices no
    /// longer in the table and not running are removed (after cleanup).
    ///
    /// Runs on the UI thread once a second during a fleet run, so the usual
    /// case — the same devices in the same order, a few of them changed —
    /// updates the rows in place without allocating; anything else
    /// (devices added or removed) rebuilds the list.
    pub fn apply_table(&mut self, rows: &[serde_json::Map<String, serde_json::Value>]) {
        if !self.update_in_place(rows) {
            self.rebuild_from_table(rows);
        }
    }

    /// The in-place case of [`apply_table`](Self::apply_table); false (and
    /// nothing changed) when the rows are not the devices held, in order.
    fn update_in_place(&mut self, rows: &[serde_json::Map<String, serde_json::Value>]) -> bool {
        fn text<'a>(
            row: &'a serde_json::Map<String, serde_json::Value>,
            k: &str,
        ) -> Option<&'a str> {
            row.get(k).and_then(|v| v.as_str())
        }
        if rows.len() != self.devices.len()
            || rows
                .iter()
                .zip(&self.devices)
                .any(|(row, d)| text(row, ATTR_SERIAL_NUMBER) != Some(d.serial.as_str()))
        {
            return false;
        }
        let mut completed = 0usize;
        let mut changed = false;
        for (row, dev) in rows.iter().zip(self.devices.iter_mut()) {
            let was_done = dev.completed();
            if dev.cr_state.as_deref() != text(row, ATTR_CR_STATE) {
                dev.cr_state = text(row, ATTR_CR_STATE).map(str::to_string);
                changed = true;
            }
            for (field, key) in [
                (&mut dev.vendor_cert, ATTR_VENDOR_CERT_ID),
                (&mut dev.manufacturer_cert, ATTR_MANUFACTURER_CERT_ID),
            ] {
                let new = text(row, key);
                if field.as_deref() == new {
                    continue;
                }
                changed = true;
                if let Some(old) = field.take() {
                    if self.cert_owner.get(&old) == Some(&dev.serial) {
                        self.cert_owner.remove(&old);
                    }
                }
                if let Some(new) = new {
                    self.cert_owner.insert(new.to_string(), dev.serial.clone());
                    *field = Some(new.to_string());
                }
            }
            if !was_done && dev.completed() {
                completed += 1;
            }
        }
        if changed {
            self.summary.set(None);
        }
        let now = self.clock;
        for _ in 0..completed {
            self.completed_at(now);
        }
        true
    }

    fn rebuild_from_table(&mut self, rows: &[serde_json::Map<String, serde_json::Value>]) {
        let text = |row: &serde_json::Map<String, serde_json::Value>, k: &str| {
            row.get(k).and_then(|v| v.as_str()).map(str::to_string)
        };
        let mut old: HashMap<String, DeviceRow> = self
            .devices
            .drain(..)
            .map(|d| (d.serial.clone(), d))
            .collect();
        self.index.clear();
        self.cert_owner.clear();
        self.summary.set(None);
        let now = self.clock;
        let mut completed = Vec::new();
        for row in rows {
            let Some(serial) = text(row, ATTR_SERIAL_NUMBER) else {
                continue;
            };
            let mut dev = old.remove(&serial).unwrap_or_else(|| DeviceRow {
                serial: serial.clone(),
                ..DeviceRow::default()
            });
            let was_done = dev.completed();
            dev.cr_state = text(row, ATTR_CR_STATE);
            dev.vendor_cert = text(row, ATTR_VENDOR_CERT_ID);
            dev.manufacturer_cert = text(row, ATTR_MANUFACTURER_CERT_ID);
            if !was_done && dev.completed() {
                completed.push(now);
            }
            for cert in [&dev.vendor_cert, &dev.manufacturer_cert]
                .into_iter()
                .flatten()
            {
                self.cert_owner.insert(cert.clone(), serial.clone());
            }
            self.index.insert(serial, self.devices.len());
            self.devices.push(dev);
        }
        // Running devices outside the table stay visible: their refusals matter.
        for (serial, dev) in old {
            if dev.running {
                self.index.insert(serial, self.devices.len());
                self.devices.push(dev);
            }
        }
        self.selected = self.selected.min(self.devices.len().saturating_sub(1));
        for at in completed {
            self.completed_at(at);
        }
    }

    /// Applies a progress report of the device agent.
    pub fn apply_progress(&mut self, p: &DeviceProgress) {
        self.tick(p.at);
        self.summary.set(None);
        let dev = self.entry(&p.serial);
        let was_done = dev.completed();
        if matches!(p.state, ProgressState::Running | ProgressState::StepDone) {
            dev.step = Some(p.step);
        }
        if p.attempt > 0 {
            dev.attempts = p.attempt;
        }
        dev.last_event = p.message.clone();
        dev.last_at = p.at;
        match p.state {
            ProgressState::Running => {
                dev.running = true;
                dev.error = None;
            }
            ProgressState::StepDone => dev.step_done = dev.step_done.max(Some(p.step)),
            ProgressState::Done => {
                dev.running = false;
                dev.step_done = dev.step_done.max(Some(p.step));
            }
            ProgressState::Failed => {
                dev.running = false;
                dev.error = Some(p.message.clone());
            }
            ProgressState::Killed => {
                dev.running = false;
                dev.error = Some("killed from the UI; step it again to resume".into());
            }
        }
        let done = dev.completed();
        if !was_done && done {
            self.completed_at(p.at);
        }
    }

    /// Adds a cloud event to its device's timeline, when it names one we know.
    pub fn apply_event(&mut self, serial: &str, event: &Arc<CloudEvent>) {
        self.tick(event.at);
        if let Some(&i) = self.index.get(serial) {
            let dev = &mut self.devices[i];
            if dev.timeline.len() == TIMELINE_LEN {
                dev.timeline.pop_front();
            }
            dev.timeline.push_back(event.clone());
            if !dev.running {
                dev.last_event = event.summary.clone();
                dev.last_at = event.at;
            }
        }
    }

    /// Marks a device as no longer running (its task was aborted or ended).
    pub fn set_running(&mut self, serial: &str, running: bool) {
        if let Some(&i) = self.index.get(serial) {
            self.devices[i].running = running;
            self.summary.set(None);
        }
    }

    /// The selected device.
    pub fn selected(&self) -> Option<&DeviceRow> {
        self.devices.get(self.selected)
    }

    /// Moves the selection by `delta` rows.
    pub fn move_selection(&mut self, delta: isize) {
        if self.devices.is_empty() {
            return;
        }
        let max = self.devices.len() as isize - 1;
        self.selected = (self.selected as isize + delta).clamp(0, max) as usize;
    }

    /// Selects the first or last device.
    pub fn select_edge(&mut self, top: bool) {
        self.selected = if top {
            0
        } else {
            self.devices.len().saturating_sub(1)
        };
    }

    /// Selects the first device whose serial contains `needle`.
    pub fn find(&mut self, needle: &str) {
        if let Some(i) = self
            .devices
            .iter()
            .position(|d| contains_ci(&d.serial, needle))
        {
            self.selected = i;
        }
    }

    /// The fleet summary: devices per table state, running, failed, rotated.
    pub fn summary(&self) -> Summary {
        if let Some(s) = self.summary.get() {
            return s;
        }
        let mut s = Summary::default();
        for d in &self.devices {
            if let Some(i) = d
                .cr_state
                .as_deref()
                .and_then(|st| CR_STATES.iter().position(|c| *c == st))
            {
                s.per_state[i] += 1;
            }
            s.running += usize::from(d.running);
            s.failed += usize::from(d.error.is_some());
            s.rotated += usize::from(d.completed());
        }
        self.summary.set(Some(s));
        s
    }

    /// Completions per second over the last minute, oldest first.
    pub fn rate_buckets(&self) -> Vec<u64> {
        let mut buckets = vec![0u64; 60];
        let now = self.clock / 1000;
        for &(sec, n) in &self.completions {
            let age = (now - sec).clamp(0, 59) as usize;
            buckets[59 - age] += n;
        }
        buckets
    }

    /// Draws the fleet summary and the device table.
    pub fn draw(&self, frame: &mut Frame, area: Rect, focused: bool, theme: &Theme) {
        let Summary {
            per_state,
            running,
            failed,
            rotated: done,
        } = self.summary();
        let total = self.devices.len();
        let block = pane_block(
            title_line("Devices", format!("{total} devices"), theme),
            focused,
            theme,
        );
        let inner = block.inner(area);
        frame.render_widget(block, area);
        if total == 0 {
            frame.render_widget(
                Paragraph::new("No devices yet. Deploy (d), init (i), then spawn devices (n).")
                    .style(theme.dim()),
                inner,
            );
            return;
        }
        let [summary, gauge_row, table_area] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(1),
            Constraint::Fill(1),
        ])
        .areas(inner);
        let mut spans = Vec::new();
        for (i, name) in ["whitelisted", "thing", "man-cert", "rotated"]
            .iter()
            .enumerate()
        {
            spans.push(Span::styled(format!("{name} "), theme.dim()));
            spans.push(Span::styled(
                format!("{}  ", per_state[i]),
                theme.status(CR_STATES[i]),
            ));
        }
        spans.push(Span::styled("running ", theme.dim()));
        spans.push(Span::styled(format!("{running}  "), theme.busy()));
        spans.push(Span::styled("failed ", theme.dim()));
        spans.push(Span::styled(
            format!("{failed}"),
            if failed > 0 {
                theme.bad()
            } else {
                theme.text()
            },
        ));
        frame.render_widget(Paragraph::new(Line::from(spans)), summary);

        let buckets = self.rate_buckets();
        let rate: u64 = buckets[50..].iter().sum::<u64>() / 10;
        let [gauge_area, spark_label, spark_area] = Layout::horizontal([
            Constraint::Percentage(50),
            Constraint::Length(12),
            Constraint::Fill(1),
        ])
        .areas(gauge_row);
        let ratio = if total == 0 {
            0.0
        } else {
            done as f64 / total as f64
        };
        frame.render_widget(
            Gauge::default()
                .gauge_style(theme.good())
                .ratio(ratio)
                .label(format!("{done}/{total} rotated")),
            gauge_area,
        );
        frame.render_widget(
            Paragraph::new(format!(" {rate:>4} dev/s ")).style(theme.dim()),
            spark_label,
        );
        let width = spark_area.width as usize;
        let tail = &buckets[buckets.len().saturating_sub(width)..];
        frame.render_widget(
            Sparkline::default().data(tail).style(theme.good()),
            spark_area,
        );

        let height = table_area.height.saturating_sub(1) as usize;
        let window = visible_window(total, Some(self.selected), height, &self.offset);
        let rows = self.devices[window.clone()]
            .iter()
            .enumerate()
            .map(|(k, d)| {
                let row = device_row(d, theme);
                if focused && window.start + k == self.selected {
                    row.style(theme.selected())
                } else if window.start + k == self.selected {
                    row.style(theme.title())
                } else {
                    row
                }
            });
        let table = Table::new(
            rows,
            [
                Constraint::Length(16),
                Constraint::Length(5),
                Constraint::Length(24),
                Constraint::Length(12),
                Constraint::Length(4),
                Constraint::Fill(1),
            ],
        )
        .header(
            Row::new(["serial", "step", "state", "cert", "try", "last event"]).style(theme.title()),
        )
        .column_spacing(1);
        frame.render_widget(table, table_area);
    }
}

fn device_row<'a>(d: &'a DeviceRow, theme: &Theme) -> Row<'a> {
    let step = match (d.running, d.step, d.next_step()) {
        (true, Some(s), _) => format!("{}▶", s.label()),
        (_, _, Some(next)) => next.label().to_string(),
        (_, _, None) => "✓".into(),
    };
    let state = d.state_text();
    let state_style = if d.error.is_some() {
        theme.bad()
    } else if d.running {
        theme.busy()
    } else {
        theme.status(&state)
    };
    let last = match &d.error {
        Some(e) => Span::styled(e.as_str(), theme.bad()),
        None if d.last_at > 0 => Span::raw(format!("{} {}", clock_time(d.last_at), d.last_event)),
        None => Span::raw(d.last_event.as_str()),
    };
    Row::new(vec![
        Line::from(clip(&d.serial, 16)),
        Line::from(step),
        Line::from(Span::styled(state, state_style)),
        Line::from(Span::styled(
            d.current_cert()
                .map(|c| short_id(c, 10))
                .unwrap_or("-")
                .to_string(),
            theme.dim(),
        )),
        Line::from(if d.attempts > 0 {
            d.attempts.to_string()
        } else {
            String::new()
        }),
        Line::from(last),
    ])
}
