//! The detail view of one traffic row: every field, the decoded payload as
//! pretty JSON, and each PEM certificate in it decoded the way
//! `openssl x509 -noout -text` would summarise it.

use super::{clock_time, date};
use crate::cloud::control::subject_line;
use crate::cloud::CloudEvent;
use crate::pki;
use crate::tui::theme::Theme;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

/// Every string in `value` that holds a PEM certificate.
fn pem_certificates(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) if s.contains("-----BEGIN CERTIFICATE-----") => {
            out.push(s.clone())
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| pem_certificates(v, out)),
        serde_json::Value::Object(o) => o.values().for_each(|v| pem_certificates(v, out)),
        _ => {}
    }
}

/// Replaces every PEM text in `value` by its first line and a note.
fn elide_pems(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) if s.contains("-----BEGIN ") => {
            let first = s.lines().next().unwrap_or("").to_string();
            let decoded = if first.contains("CERTIFICATE-----") && !first.contains("REQUEST") {
                "decoded below"
            } else {
                "PEM"
            };
            *s = format!("{first} … ({decoded}, {} bytes)", s.len());
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(elide_pems),
        serde_json::Value::Object(o) => o.values_mut().for_each(elide_pems),
        _ => {}
    }
}

/// Lines describing a PEM certificate, or why it could not be read.
pub fn decoded_cert_lines<'a>(pem: &str, theme: &Theme) -> Vec<Line<'a>> {
    match pki::parse_cert(pem) {
        Ok(info) => vec![
            Line::from(Span::styled("Certificate", theme.title())),
            Line::from(format!("  subject       {}", subject_line(&info.subject))),
            Line::from(format!("  issuer        {}", subject_line(&info.issuer))),
            Line::from(format!(
                "  validity      {} → {}",
                date(info.not_before),
                date(info.not_after)
            )),
            Line::from(format!("  key           {}", info.key_algorithm)),
            Line::from(format!("  certificateId {}", info.id)),
            Line::from(format!(
                "  CA            {}",
                if info.is_ca { "yes" } else { "no" }
            )),
        ],
        Err(e) => vec![Line::from(Span::styled(
            format!("Certificate could not be decoded: {e}"),
            theme.bad(),
        ))],
    }
}

/// Draws the detail of `event` over `area`, scrolled by `scroll` lines.
pub fn draw(frame: &mut Frame, area: Rect, event: &CloudEvent, scroll: u16, theme: &Theme) {
    let mut lines = vec![
        Line::from(vec![
            Span::styled("time    ", theme.dim()),
            Span::raw(format!("{} UTC", clock_time(event.at))),
        ]),
        Line::from(vec![
            Span::styled("type    ", theme.dim()),
            Span::raw(event.kind.label()),
        ]),
        Line::from(vec![
            Span::styled("client  ", theme.dim()),
            Span::raw(event.client_id.clone().unwrap_or_else(|| "-".into())),
        ]),
        Line::from(vec![
            Span::styled("topic   ", theme.dim()),
            Span::raw(event.topic.clone().unwrap_or_else(|| "-".into())),
        ]),
        Line::from(vec![
            Span::styled("summary ", theme.dim()),
            Span::raw(event.summary.clone()),
        ]),
        Line::from(""),
    ];
    if !event.detail.is_null() {
        lines.push(Line::from(Span::styled("Detail", theme.title())));
        // PEM bodies are noise in the JSON: they are decoded below instead.
        let mut shown = event.detail.clone();
        elide_pems(&mut shown);
        let pretty = serde_json::to_string_pretty(&shown).unwrap_or_default();
        lines.extend(pretty.lines().map(|l| Line::from(l.to_string())));
        let mut pems = Vec::new();
        pem_certificates(&event.detail, &mut pems);
        for pem in pems {
            lines.push(Line::from(""));
            lines.extend(decoded_cert_lines(&pem, theme));
        }
    }
    let block = Block::new()
        .borders(Borders::ALL)
        .border_type(BorderType::Thick)
        .border_style(theme.focused_border())
        .title(Span::styled(
            " Event detail (Esc back, j/k scroll) ",
            theme.title(),
        ));
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0)),
        area,
    );
}
