//! The panes: one module per pane, each with its own state, key handling
//! and drawing.
//!
//! - `stack.rs`         the CloudFormation stack: resources and events
//! - `cas.rs`           the Vendor and Manufacturer CAs
//! - `traffic.rs`       MQTT packets and the cloud actions between them
//! - `devices.rs`       one row per device, with a fleet summary
//! - `device_detail.rs` one device's timeline as the sample's sequence diagrams
//! - `event_detail.rs`  one traffic row in full: JSON and decoded certificates

pub mod cas;
pub mod device_detail;
pub mod devices;
pub mod event_detail;
pub mod stack;
pub mod traffic;

use super::theme::Theme;
use crate::model::EpochMillis;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders};
use std::cell::Cell;
use std::ops::Range;

/// The four panes of the main screen, in focus order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaneId {
    Stack,
    Cas,
    Devices,
    Traffic,
}

impl PaneId {
    /// All panes in Tab order.
    pub const ALL: [PaneId; 4] = [PaneId::Stack, PaneId::Cas, PaneId::Devices, PaneId::Traffic];

    /// The next pane in Tab order.
    pub fn next(self) -> PaneId {
        let i = PaneId::ALL.iter().position(|p| *p == self).unwrap_or(0);
        PaneId::ALL[(i + 1) % PaneId::ALL.len()]
    }

    /// The previous pane in Tab order.
    pub fn prev(self) -> PaneId {
        let i = PaneId::ALL.iter().position(|p| *p == self).unwrap_or(0);
        PaneId::ALL[(i + PaneId::ALL.len() - 1) % PaneId::ALL.len()]
    }

    /// The pane's title.
    pub fn title(self) -> &'static str {
        match self {
            PaneId::Stack => "Stack",
            PaneId::Cas => "CAs",
            PaneId::Devices => "Devices",
            PaneId::Traffic => "MQTT traffic",
        }
    }
}

/// A bordered block, highlighted when focused.
pub fn pane_block<'a>(title: Line<'a>, focused: bool, theme: &Theme) -> Block<'a> {
    Block::new()
        .borders(Borders::ALL)
        .border_type(if focused {
            BorderType::Thick
        } else {
            BorderType::Rounded
        })
        .border_style(if focused {
            theme.focused_border()
        } else {
            theme.border()
        })
        .title(title)
}

/// A pane title with an optional dim suffix.
pub fn title_line<'a>(title: &'a str, suffix: String, theme: &Theme) -> Line<'a> {
    let mut spans = vec![Span::styled(format!(" {title} "), theme.title())];
    if !suffix.is_empty() {
        spans.push(Span::styled(format!("{suffix} "), theme.dim()));
    }
    Line::from(spans)
}

/// The rows of a list of `len` that fit in `height`, keeping `selected` in
/// view. `offset` remembers the scroll position between frames so that the
/// window only moves when the selection leaves it.
pub fn visible_window(
    len: usize,
    selected: Option<usize>,
    height: usize,
    offset: &Cell<usize>,
) -> Range<usize> {
    if height == 0 || len == 0 {
        return 0..0;
    }
    let mut start = offset.get().min(len.saturating_sub(1));
    match selected {
        // Nothing selected: follow the tail (autoscroll).
        None => start = len.saturating_sub(height),
        Some(sel) => {
            if sel < start {
                start = sel;
            } else if sel >= start + height {
                start = sel + 1 - height;
            }
        }
    }
    start = start.min(len.saturating_sub(height));
    offset.set(start);
    start..(start + height).min(len)
}

/// Case-insensitive substring test without allocating; `needle` lowercase ASCII.
pub fn contains_ci(haystack: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// `HH:MM:SS.mmm` (UTC) of an event time.
pub fn clock_time(at: EpochMillis) -> String {
    let ms = at.rem_euclid(86_400_000);
    let (h, m, s, milli) = (
        ms / 3_600_000,
        (ms / 60_000) % 60,
        (ms / 1000) % 60,
        ms % 1000,
    );
    format!("{h:02}:{m:02}:{s:02}.{milli:03}")
}

/// `YYYY-MM-DD` of Unix seconds, for certificate validity.
pub fn date(unix_seconds: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix_seconds) {
        Ok(t) => format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
        Err(_) => "?".into(),
    }
}

/// The first `n` characters of a certificateId, enough to tell certs apart.
pub fn short_id(id: &str, n: usize) -> &str {
    match id.char_indices().nth(n) {
        Some((i, _)) => &id[..i],
        None => id,
    }
}

/// `text` cut to `width` characters, with `…` when cut.
pub fn clip(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}
