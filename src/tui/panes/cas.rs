//! The CAs pane: the Vendor CA (JITP trigger: auto-registration and the
//! provisioning template) and the Manufacturer CA (whose key the rotation
//! function reads from the parameter store), as `aws iot describe-ca-certificate`
//! shows them, plus how many device certificates each issued, per status.

use super::{date, pane_block, short_id, title_line};
use crate::cloud::{CaSummary, StatusReport};
use crate::tui::theme::Theme;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

/// State of the CAs pane (scroll only: its content is the last read-back).
#[derive(Debug, Default)]
pub struct CasPane {
    /// First line shown.
    pub scroll: u16,
}

impl CasPane {
    /// Draws the CAs of the last read-back.
    pub fn draw(
        &self,
        frame: &mut Frame,
        area: Rect,
        status: Option<&StatusReport>,
        focused: bool,
        theme: &Theme,
    ) {
        let cas = status.map(|s| s.cas.as_slice()).unwrap_or(&[]);
        let block = pane_block(
            title_line("CAs", format!("{} registered", cas.len()), theme),
            focused,
            theme,
        );
        let inner = block.inner(area);
        frame.render_widget(block, area);
        if cas.is_empty() {
            frame.render_widget(
                Paragraph::new(
                    "No CAs yet. Press i to init = aws iot register-ca-certificate (Vendor CA with a JITP template, Manufacturer CA) + aws ssm put-parameter cr-ca-key-<id>.",
                )
                .style(theme.dim())
                .wrap(Wrap { trim: true }),
                inner,
            );
            return;
        }
        let mut lines = Vec::new();
        for ca in cas {
            lines.extend(ca_lines(ca, status, theme));
        }
        frame.render_widget(Paragraph::new(lines).scroll((self.scroll, 0)), inner);
    }
}

fn ca_lines<'a>(ca: &'a CaSummary, status: Option<&StatusReport>, theme: &Theme) -> Vec<Line<'a>> {
    let label = |s: &'a str| Span::styled(s, theme.dim());
    let mut lines = vec![Line::from(vec![
        Span::styled(format!("{} ", ca.label), theme.title()),
        Span::styled(ca.status.clone(), theme.status(&ca.status)),
        Span::styled(format!("  {}", short_id(&ca.id, 16)), theme.dim()),
    ])];
    lines.push(Line::from(vec![
        label("  subject  "),
        Span::raw(ca.subject.as_str()),
    ]));
    lines.push(Line::from(vec![
        label("  valid    "),
        Span::raw(format!("{} → {}", date(ca.not_before), date(ca.not_after))),
    ]));
    let auto = if ca.auto_registration {
        match &ca.jitp_template {
            Some(t) => format!("auto-registration ENABLE · {t}"),
            None => "auto-registration ENABLE · no template".into(),
        }
    } else {
        "auto-registration DISABLE".into()
    };
    lines.push(Line::from(vec![label("  reg      "), Span::raw(auto)]));
    if let Some(param) = &ca.key_parameter {
        let kind = status
            .and_then(|s| s.parameters.get(param))
            .map(|k| {
                if k == "SecureString" {
                    "SecureString, encrypted".to_string()
                } else {
                    k.clone()
                }
            })
            .unwrap_or_else(|| "missing from the parameter store".into());
        lines.push(Line::from(vec![
            label("  key      "),
            Span::raw(format!("{param} ({kind})")),
        ]));
    }
    let counts: Vec<String> = ca
        .certificates
        .iter()
        .map(|(status, n)| format!("{status} {n}"))
        .collect();
    lines.push(Line::from(vec![
        label("  certs    "),
        Span::raw(if counts.is_empty() {
            "none issued".to_string()
        } else {
            counts.join(" · ")
        }),
    ]));
    lines
}
