//! The MQTT traffic pane: every packet in and out, and the cloud's actions
//! between them (JITP, rules, the rotation function, registry changes) —
//! and the calls to the local cloud's AWS API (`API  iot:RegisterCACertificate
//! 200  3 ms`, `type:api` filters them), so a workshop watches the AWS
//! calls happen next to the MQTT packets.
//!
//! History is a bounded ring buffer: when it is full the oldest rows go and
//! are counted, so a 10,000-device run can't grow memory without bound.
//! Autoscroll follows the tail until a row is selected; freezing pins the
//! view while new rows keep arriving underneath.

use super::{clip, clock_time, contains_ci, pane_block, title_line, visible_window};
use crate::cloud::{CloudEvent, EventKind};
use crate::tui::theme::Theme;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table, Wrap};
use ratatui::Frame;
use std::cell::{Cell, Ref, RefCell};
use std::collections::VecDeque;
use std::sync::Arc;

/// Default number of rows the pane keeps.
pub const DEFAULT_CAPACITY: usize = 20_000;

/// One row of history: the event and its arrival number.
#[derive(Debug, Clone)]
struct TrafficRow {
    seq: u64,
    event: Arc<CloudEvent>,
}

/// State of the traffic pane.
#[derive(Debug)]
pub struct TrafficPane {
    rows: VecDeque<TrafficRow>,
    capacity: usize,
    next_seq: u64,
    /// Rows pushed out of the ring because it was full.
    evicted: u64,
    /// Events the stream lost before they reached us (slow subscriber).
    lagged: u64,
    /// Lower-case filter text; `client:`, `topic:`, `type:` narrow the field.
    filter: String,
    /// True while the user types the filter.
    pub editing_filter: bool,
    /// Selected row by sequence number; `None` = autoscroll.
    selected: Option<u64>,
    /// When frozen, rows after this sequence number are hidden.
    frozen_at: Option<u64>,
    offset: Cell<usize>,
    /// Sequence numbers of the rows matching the filter, kept up to date
    /// incrementally: each row is matched once, not once per frame.
    matching: RefCell<FilterCache>,
}

/// The rows matching one filter text, in order.
#[derive(Debug, Default)]
struct FilterCache {
    filter: String,
    /// Rows up to this sequence number have been matched.
    checked_to: Option<u64>,
    seqs: VecDeque<u64>,
}

/// The rows in view: everything up to a bound, or the rows matching the filter.
enum View<'a> {
    All { first: u64, len: usize },
    Filtered(Ref<'a, FilterCache>, usize),
}

impl View<'_> {
    fn len(&self) -> usize {
        match self {
            View::All { len, .. } => *len,
            View::Filtered(_, len) => *len,
        }
    }

    fn seq(&self, i: usize) -> u64 {
        match self {
            View::All { first, .. } => first + i as u64,
            View::Filtered(cache, _) => cache.seqs[i],
        }
    }

    fn position(&self, seq: u64) -> Option<usize> {
        match self {
            View::All { first, len } => {
                (seq >= *first && seq < first + *len as u64).then(|| (seq - first) as usize)
            }
            View::Filtered(cache, len) => cache.seqs.binary_search(&seq).ok().filter(|i| i < len),
        }
    }
}

impl Default for TrafficPane {
    fn default() -> Self {
        TrafficPane::with_capacity(DEFAULT_CAPACITY)
    }
}

impl TrafficPane {
    /// A pane keeping at most `capacity` rows.
    pub fn with_capacity(capacity: usize) -> TrafficPane {
        TrafficPane {
            rows: VecDeque::with_capacity(capacity.min(4096)),
            capacity: capacity.max(1),
            next_seq: 0,
            evicted: 0,
            lagged: 0,
            filter: String::new(),
            editing_filter: false,
            selected: None,
            frozen_at: None,
            offset: Cell::new(0),
            matching: RefCell::new(FilterCache::default()),
        }
    }

    /// Appends an event, evicting the oldest row when full.
    pub fn push(&mut self, event: Arc<CloudEvent>) {
        if self.rows.len() == self.capacity {
            if let Some(old) = self.rows.pop_front() {
                self.evicted += 1;
                if self.selected == Some(old.seq) {
                    self.selected = self.rows.front().map(|r| r.seq);
                }
            }
        }
        self.rows.push_back(TrafficRow {
            seq: self.next_seq,
            event,
        });
        self.next_seq += 1;
    }

    /// Records how many events the stream lost for this subscriber.
    pub fn set_lagged(&mut self, lagged: u64) {
        self.lagged = lagged;
    }

    /// Rows dropped so far: evicted from the ring plus lost by the stream.
    pub fn dropped(&self) -> u64 {
        self.evicted + self.lagged
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when no row is held.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The current filter text.
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// Replaces the filter.
    pub fn set_filter(&mut self, filter: &str) {
        self.filter = filter.to_ascii_lowercase();
        self.selected = None;
    }

    /// Types one character into the filter.
    pub fn filter_push(&mut self, c: char) {
        self.filter.extend(c.to_lowercase());
    }

    /// Erases the filter's last character.
    pub fn filter_pop(&mut self) {
        self.filter.pop();
    }

    /// True while frozen.
    pub fn frozen(&self) -> bool {
        self.frozen_at.is_some()
    }

    /// Freezes the view at the current tail, or unfreezes it.
    pub fn toggle_freeze(&mut self) {
        self.frozen_at = match self.frozen_at {
            Some(_) => None,
            None => Some(self.next_seq.saturating_sub(1)),
        };
    }

    /// True when autoscroll is paused by a selection.
    pub fn has_selection(&self) -> bool {
        self.selected.is_some()
    }

    /// Clears the selection: autoscroll resumes.
    pub fn clear_selection(&mut self) {
        self.selected = None;
    }

    fn matches(&self, event: &CloudEvent) -> bool {
        let f = self.filter.trim();
        if f.is_empty() {
            return true;
        }
        let client = event.client_id.as_deref().unwrap_or("");
        let topic = event.topic.as_deref().unwrap_or("");
        if let Some(v) = f.strip_prefix("client:") {
            return contains_ci(client, v.trim());
        }
        if let Some(v) = f.strip_prefix("topic:") {
            return contains_ci(topic, v.trim());
        }
        if let Some(v) = f.strip_prefix("type:") {
            return contains_ci(&event.kind.label(), v.trim());
        }
        contains_ci(client, f)
            || contains_ci(topic, f)
            || contains_ci(&event.kind.label(), f)
            || contains_ci(&event.summary, f)
    }

    /// The rows in view (frozen bound and filter applied).
    fn view(&self) -> View<'_> {
        let Some(front) = self.rows.front().map(|r| r.seq) else {
            return View::All { first: 0, len: 0 };
        };
        let last = self.next_seq - 1;
        let bound = self.frozen_at.unwrap_or(last).min(last);
        if self.filter.trim().is_empty() {
            let len = if bound < front {
                0
            } else {
                (bound - front + 1) as usize
            };
            return View::All { first: front, len };
        }
        {
            let mut cache = self.matching.borrow_mut();
            if cache.filter != self.filter {
                *cache = FilterCache {
                    filter: self.filter.clone(),
                    ..FilterCache::default()
                };
            }
            // Forget evicted rows, then match only the rows not seen yet.
            while cache.seqs.front().is_some_and(|&s| s < front) {
                cache.seqs.pop_front();
            }
            let from = cache.checked_to.map_or(front, |c| (c + 1).max(front));
            for seq in from..=last {
                let row = &self.rows[(seq - front) as usize];
                if self.matches(&row.event) {
                    cache.seqs.push_back(seq);
                }
            }
            cache.checked_to = Some(last);
        }
        let cache = self.matching.borrow();
        let len = cache.seqs.partition_point(|&s| s <= bound);
        View::Filtered(cache, len)
    }

    fn row(&self, seq: u64) -> Option<&TrafficRow> {
        let front = self.rows.front()?.seq;
        self.rows.get(seq.checked_sub(front)? as usize)
    }

    /// Moves the selection by `delta` rows (negative = up). The first move
    /// selects the last row in view, which pauses autoscroll.
    pub fn move_selection(&mut self, delta: isize) {
        let view = self.view();
        if view.len() == 0 {
            drop(view);
            self.selected = None;
            return;
        }
        let pos = self.selected.and_then(|seq| view.position(seq));
        let new = match pos {
            None => view.len() - 1,
            Some(p) => (p as isize + delta).clamp(0, view.len() as isize - 1) as usize,
        };
        let seq = view.seq(new);
        drop(view);
        self.selected = Some(seq);
    }

    /// Selects the first (`top`) or last row in view.
    pub fn select_edge(&mut self, top: bool) {
        let view = self.view();
        let pick = match view.len() {
            0 => None,
            n => Some(view.seq(if top { 0 } else { n - 1 })),
        };
        drop(view);
        self.selected = pick;
    }

    /// The selected event.
    pub fn selected_event(&self) -> Option<Arc<CloudEvent>> {
        self.row(self.selected?).map(|r| r.event.clone())
    }

    /// Draws the pane; only the rows that fit are built.
    pub fn draw(&self, frame: &mut Frame, area: Rect, focused: bool, theme: &Theme) {
        let view = self.view();
        let mut flags = Vec::new();
        flags.push(format!("{} rows", view.len()));
        if self.dropped() > 0 {
            flags.push(format!("{} dropped", self.dropped()));
        }
        if self.frozen() {
            flags.push("FROZEN".into());
        } else if self.selected.is_some() {
            flags.push("autoscroll paused".into());
        }
        if !self.filter.is_empty() || self.editing_filter {
            let cursor = if self.editing_filter { "▏" } else { "" };
            flags.push(format!("filter /{}{cursor}", self.filter));
        }
        let block = pane_block(
            title_line(PANE_TITLE, flags.join(" · "), theme),
            focused,
            theme,
        );
        let inner = block.inner(area);
        frame.render_widget(block, area);
        if view.len() == 0 {
            let msg = if self.rows.is_empty() {
                "No traffic yet. Devices' packets and the cloud's JITP, rule and Lambda actions appear here."
            } else {
                "No row matches the filter. Esc clears it."
            };
            frame.render_widget(
                Paragraph::new(msg)
                    .style(theme.dim())
                    .wrap(Wrap { trim: true }),
                inner,
            );
            return;
        }
        let height = inner.height.saturating_sub(1) as usize;
        let sel_pos = self.selected.and_then(|seq| view.position(seq));
        let window = visible_window(view.len(), sel_pos, height, &self.offset);
        // Only the rows that fit are built.
        let rows: Vec<Row> = window
            .clone()
            .filter_map(|i| self.row(view.seq(i)).map(|r| (i, r)))
            .map(|(i, r)| {
                let row = traffic_row(&r.event, theme);
                if Some(i) == sel_pos {
                    row.style(theme.selected())
                } else {
                    row
                }
            })
            .collect();
        drop(view);
        let table = Table::new(
            rows,
            [
                Constraint::Length(12),
                Constraint::Length(3),
                Constraint::Length(15),
                Constraint::Length(11),
                Constraint::Max(46),
                Constraint::Length(5),
                Constraint::Fill(1),
            ],
        )
        .header(
            Row::new([
                "time",
                "dir",
                "client",
                "type",
                "topic",
                "size",
                "payload / action",
            ])
            .style(theme.title()),
        )
        .column_spacing(1);
        frame.render_widget(table, inner);
    }
}

const PANE_TITLE: &str = "MQTT traffic";

/// Direction arrow, packet or action name, size and style of an event.
fn kind_columns(kind: &EventKind, theme: &Theme) -> (&'static str, String, String, Style) {
    match kind {
        EventKind::PacketIn { packet, size } => {
            ("→", (*packet).into(), size.to_string(), theme.text())
        }
        EventKind::PacketOut { packet, size } => {
            ("←", (*packet).into(), size.to_string(), theme.text())
        }
        EventKind::Connection => ("·", "CONN".into(), String::new(), theme.busy()),
        EventKind::Api { .. } => ("⇄", "API".into(), String::new(), theme.title()),
        other => ("·", other.label(), String::new(), theme.action()),
    }
}

fn traffic_row<'a>(ev: &'a CloudEvent, theme: &Theme) -> Row<'a> {
    let (dir, kind, size, style) = kind_columns(&ev.kind, theme);
    let summary_style = if is_refusal(ev) { theme.bad() } else { style };
    if let EventKind::Api {
        service,
        operation,
        status,
        millis,
    } = &ev.kind
    {
        // `API  iot:RegisterCACertificate  200  3 ms`: the operation where
        // a packet's topic goes, the HTTP status where its size goes.
        return Row::new(vec![
            Line::from(Span::styled(clock_time(ev.at), theme.dim())),
            Line::from(dir),
            Line::from("-"),
            Line::from(Span::styled(kind, style)),
            Line::from(format!("{service}:{operation}")),
            Line::from(Span::styled(status.to_string(), summary_style)),
            Line::from(Span::styled(format!("{millis} ms"), theme.dim())),
        ]);
    }
    let summary = match error_answer(ev) {
        Some((code, message)) => format!("{} · refused {code}: {message}", ev.summary),
        None => ev.summary.clone(),
    };
    Row::new(vec![
        Line::from(Span::styled(clock_time(ev.at), theme.dim())),
        Line::from(dir),
        Line::from(clip(ev.client_id.as_deref().unwrap_or("-"), 15)),
        Line::from(Span::styled(kind, style)),
        Line::from(ev.topic.as_deref().unwrap_or("")),
        Line::from(Span::styled(size, theme.dim())),
        Line::from(Span::styled(summary, summary_style)),
    ])
}

/// True for refusals and failures, which the pane shows in red: also a
/// rotation answer carrying `{"error": …}` to a device, and a certificate
/// issued although insecure (`CsrKeyReuse=warn`).
pub fn is_refusal(ev: &CloudEvent) -> bool {
    if let EventKind::Api { status, .. } = &ev.kind {
        return *status >= 400;
    }
    let s = ev.summary.to_ascii_lowercase();
    // An MQTT 5 ack or DISCONNECT with a failure reason code (≥ 0x80).
    let reason_code = ev.detail.get("reasonCode").and_then(|c| c.as_u64());
    s.contains("refused")
        || reason_code.is_some_and(|c| c >= 0x80)
        || s.contains("denied")
        || s.contains("failed")
        || s.contains("error")
        || s.contains("insecure")
        || error_answer(ev).is_some()
}

/// The `code` and `message` of a refusal the cloud sent a device
/// (`{"error": {"code", "message"}}` on a response topic), from the
/// packet's payload preview.
pub fn error_answer(ev: &CloudEvent) -> Option<(&str, &str)> {
    if !matches!(
        ev.kind,
        EventKind::PacketOut { .. } | EventKind::PacketIn { .. }
    ) {
        return None;
    }
    let error = ev.detail.get("payload")?.get("error")?;
    let code = error.get("code")?.as_str()?;
    let message = error.get("message").and_then(|m| m.as_str()).unwrap_or("");
    Some((code, message))
}
