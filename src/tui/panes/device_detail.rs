//! One device in detail: its timeline drawn as the sample's sequence
//! diagrams (Device │ IoT Core │ Lambda │ DynamoDB, one arrow per real
//! event), beside its certificates and its row of the device table.

use super::{clip, clock_time, short_id};
use crate::cloud::{CloudEvent, EventKind, StatusReport};
use crate::tui::panes::devices::DeviceRow;
use crate::tui::theme::Theme;
use crate::vocabulary::{strip_rotation_root, ATTR_SERIAL_NUMBER};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

/// The four participants of the sample's sequence diagrams.
pub const LANES: [&str; 4] = ["Device", "IoT Core", "Lambda", "DynamoDB"];

const DEVICE: usize = 0;
const IOT_CORE: usize = 1;
const LAMBDA: usize = 2;
const DYNAMODB: usize = 3;

/// One line of a sequence diagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A message from one participant to another.
    Arrow {
        from: usize,
        to: usize,
        label: String,
        failed: bool,
    },
    /// Something a participant does on its own (a note on its lifeline).
    Note {
        lane: usize,
        label: String,
        failed: bool,
    },
}

/// What a cloud event looks like in the sequence diagram.
pub fn diagram_step(ev: &CloudEvent) -> Option<Step> {
    let failed = super::traffic::is_refusal(ev);
    let topic = ev
        .topic
        .as_deref()
        .map(|t| format!(" {}", strip_rotation_root(t).unwrap_or(t)))
        .unwrap_or_default();
    let summary = ev.summary.clone();
    Some(match &ev.kind {
        EventKind::PacketIn { packet, .. } => Step::Arrow {
            from: DEVICE,
            to: IOT_CORE,
            label: format!("{packet}{topic}"),
            failed,
        },
        EventKind::PacketOut { packet, .. } => Step::Arrow {
            from: IOT_CORE,
            to: DEVICE,
            label: match super::traffic::error_answer(ev) {
                Some((code, _)) => format!("{packet}{topic} refused: {code}"),
                None => format!("{packet}{topic}"),
            },
            failed,
        },
        EventKind::Connection if failed => Step::Arrow {
            from: IOT_CORE,
            to: DEVICE,
            label: summary,
            failed,
        },
        EventKind::Connection | EventKind::Jitp | EventKind::Registry => Step::Note {
            lane: IOT_CORE,
            label: summary,
            failed,
        },
        EventKind::Rule => Step::Arrow {
            from: IOT_CORE,
            to: LAMBDA,
            label: summary,
            failed,
        },
        EventKind::Function => {
            // The rotation function's table reads and writes go to DynamoDB;
            // its other decisions are notes on its own lifeline.
            let s = ev.summary.to_ascii_lowercase();
            let writes_state = [
                "thing_created",
                "man_cert_created",
                "cert_rotation_completed",
            ]
            .iter()
            .any(|w| s.contains(w));
            if writes_state || s.contains("cr_") || s.contains("table") || s.contains("crstate") {
                Step::Arrow {
                    from: LAMBDA,
                    to: DYNAMODB,
                    label: summary,
                    failed,
                }
            } else {
                Step::Note {
                    lane: LAMBDA,
                    label: summary,
                    failed,
                }
            }
        }
        EventKind::Device => Step::Note {
            lane: DEVICE,
            label: summary,
            failed,
        },
        EventKind::Stack | EventKind::Api { .. } => return None,
    })
}

/// State of the device detail view.
#[derive(Debug, Default)]
pub struct DeviceDetail {
    /// The serial shown.
    pub serial: String,
    /// Lines scrolled up from the newest (0 = follow the newest).
    pub scroll: usize,
}

impl DeviceDetail {
    /// Draws the view for `device` over `area`.
    pub fn draw(
        &self,
        frame: &mut Frame,
        area: Rect,
        device: Option<&DeviceRow>,
        status: Option<&StatusReport>,
        theme: &Theme,
    ) {
        frame.render_widget(Clear, area);
        let block = Block::new()
            .borders(Borders::ALL)
            .border_type(BorderType::Thick)
            .border_style(theme.focused_border())
            .title(Span::styled(
                format!(" Device {} (Esc back, j/k scroll, s step) ", self.serial),
                theme.title(),
            ));
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let Some(device) = device else {
            frame.render_widget(
                Paragraph::new("This device is gone (cleanup removed it). Esc goes back.")
                    .style(theme.dim()),
                inner,
            );
            return;
        };
        let [diagram, side] =
            Layout::horizontal([Constraint::Percentage(70), Constraint::Fill(1)]).areas(inner);
        self.draw_diagram(frame.buffer_mut(), diagram, device, theme);
        frame.render_widget(
            Paragraph::new(side_lines(device, status, theme))
                .wrap(Wrap { trim: false })
                .block(
                    Block::new()
                        .borders(Borders::LEFT)
                        .border_style(theme.border()),
                ),
            side,
        );
    }

    fn draw_diagram(&self, buf: &mut Buffer, area: Rect, device: &DeviceRow, theme: &Theme) {
        const TIME_W: u16 = 13;
        if area.width < TIME_W + 30 || area.height < 3 {
            return;
        }
        let left = area.x + TIME_W + 4;
        let span = area.right().saturating_sub(left + 6);
        let lane_x: Vec<u16> = (0..LANES.len() as u16)
            .map(|i| left + i * span / 3)
            .collect();
        for (i, name) in LANES.iter().enumerate() {
            let x = lane_x[i].saturating_sub(name.len() as u16 / 2);
            buf.set_string(x, area.y, name, theme.title());
        }
        let steps: Vec<(i64, Step)> = device
            .timeline
            .iter()
            .filter_map(|e| diagram_step(e).map(|s| (e.at, s)))
            .collect();
        // Like the sample's figures, an arrow's label sits on the line above it.
        let lines_of = |s: &Step| {
            if matches!(s, Step::Arrow { .. }) {
                2
            } else {
                1
            }
        };
        let rows = (area.height - 1) as usize;
        let end = steps.len().saturating_sub(self.scroll.min(steps.len()));
        let mut start = end;
        let mut used = 0;
        while start > 0 && used + lines_of(&steps[start - 1].1) <= rows {
            used += lines_of(&steps[start - 1].1);
            start -= 1;
        }
        for y in area.y + 1..area.bottom() {
            for &x in &lane_x {
                buf.set_string(x, y, "│", theme.dim());
            }
        }
        if steps.is_empty() {
            buf.set_string(
                area.x,
                area.y + 1,
                "No events yet: step the device (s) to see its messages.",
                theme.dim(),
            );
        }
        let mut y = area.y + 1;
        for (at, step) in &steps[start..end] {
            buf.set_string(area.x, y, clock_time(*at), theme.dim());
            match step {
                Step::Arrow {
                    from,
                    to,
                    label,
                    failed,
                } => {
                    let (a, b) = (lane_x[*from], lane_x[*to]);
                    let (lo, hi) = (a.min(b), a.max(b));
                    let style = if *failed { theme.bad() } else { theme.text() };
                    // The label, centred over the arrow, may spill past the lanes.
                    let room = area.right().saturating_sub(left) as usize;
                    let text = clip(label, room);
                    let w = text.chars().count() as u16;
                    let mid = lo + (hi - lo) / 2;
                    let tx = mid
                        .saturating_sub(w / 2)
                        .max(left)
                        .min(area.right().saturating_sub(w));
                    buf.set_string(tx, y, text, style);
                    y += 1;
                    for x in lo + 1..hi {
                        buf.set_string(x, y, "─", style);
                    }
                    let head = if b > a {
                        (hi - 1, "▶")
                    } else {
                        (lo + 1, "◀")
                    };
                    buf.set_string(head.0, y, head.1, style);
                }
                Step::Note {
                    lane,
                    label,
                    failed,
                } => {
                    let x = lane_x[*lane];
                    let style: Style = if *failed { theme.bad() } else { theme.action() };
                    let room = area.right().saturating_sub(x + 2) as usize;
                    buf.set_string(x, y, "●", style);
                    buf.set_string(x + 2, y, clip(label, room), style);
                }
            }
            y += 1;
        }
    }
}

fn side_lines<'a>(
    device: &'a DeviceRow,
    status: Option<&'a StatusReport>,
    theme: &Theme,
) -> Vec<Line<'a>> {
    let mut lines = vec![
        Line::from(Span::styled(" Device", theme.title())),
        Line::from(format!(" state  {}", device.state_text())),
        Line::from(format!(
            " next   {}",
            device
                .next_step()
                .map(|s| format!("{} ({})", s.label(), s.sample_command()))
                .unwrap_or_else(|| "none: rotation complete".into())
        )),
        Line::from(format!(" tries  {}", device.attempts)),
    ];
    if let Some(e) = &device.error {
        lines.push(Line::from(Span::styled(
            format!(" error  {e}"),
            theme.bad(),
        )));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(" Certificates", theme.title())));
    let certs: Vec<_> = status
        .map(|s| {
            s.certificates
                .iter()
                .filter(|c| {
                    c.things.contains(&device.serial)
                        || c.common_name.as_deref() == Some(device.serial.as_str())
                })
                .collect()
        })
        .unwrap_or_default();
    if certs.is_empty() {
        lines.push(Line::from(Span::styled(" none registered", theme.dim())));
    }
    for c in certs {
        let role = if Some(c.id.as_str()) == device.manufacturer_cert.as_deref() {
            "manufacturer"
        } else if Some(c.id.as_str()) == device.vendor_cert.as_deref() {
            "vendor"
        } else {
            "cert"
        };
        lines.push(Line::from(vec![
            Span::raw(format!(" {role:<12} {} ", short_id(&c.id, 10))),
            Span::styled(c.status.clone(), theme.status(&c.status)),
        ]));
        if !c.policies.is_empty() {
            lines.push(Line::from(Span::styled(
                format!("   policies {}", c.policies.join(", ")),
                theme.dim(),
            )));
        }
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        " Table row (CertRotationDevices)",
        theme.title(),
    )));
    let row = status.and_then(|s| {
        s.devices.iter().find(|r| {
            r.get(ATTR_SERIAL_NUMBER).and_then(|v| v.as_str()) == Some(device.serial.as_str())
        })
    });
    match row {
        Some(row) => {
            for (k, v) in row {
                let v = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                // Ids are long hex; the first 16 digits tell them apart here.
                let v = if k.ends_with("Id") {
                    short_id(&v, 16).to_string()
                } else {
                    v
                };
                lines.push(Line::from(vec![
                    Span::styled(format!(" {k} "), theme.dim()),
                    Span::raw(v),
                ]));
            }
        }
        None => lines.push(Line::from(Span::styled(
            " no row: not whitelisted (or cleaned up)",
            theme.dim(),
        ))),
    }
    lines
}
