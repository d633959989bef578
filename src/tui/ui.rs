//! Drawing the whole screen from the app state. Pure: reads [`App`], writes
//! the frame; tests render it into ratatui's `TestBackend`.

use super::app::{App, Confirm, Overlay, View};
use super::demo::STEPS;
use super::keys::{hints, HELP, HELP_NOTES};
use super::panes::{event_detail, PaneId};
use crate::cloud::open::ObserverState;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

/// The smallest terminal the layout is made for.
pub const MIN_SIZE: (u16, u16) = (80, 24);

/// Draws one frame.
pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let theme = &app.theme;
    if area.width < MIN_SIZE.0 || area.height < MIN_SIZE.1 {
        let text = format!(
            "The terminal is {}×{}; jitpilot needs at least {}×{}.\nEnlarge the window (or zoom out), or press q to quit.",
            area.width, area.height, MIN_SIZE.0, MIN_SIZE.1
        );
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
        return;
    }
    let demo_height = if app.demo.is_some() { 6 } else { 0 };
    let [header, body, demo, status, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(demo_height),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(frame, header, app);
    if let Some(fatal) = &app.fatal {
        let block = Block::new()
            .borders(Borders::ALL)
            .border_style(theme.bad())
            .title(Span::styled(
                match app.header.backend.as_str() {
                    "aws" => " The AWS backend could not start ",
                    _ => " The local cloud could not start ",
                },
                theme.bad(),
            ));
        frame.render_widget(
            Paragraph::new(fatal.as_str())
                .wrap(Wrap { trim: true })
                .block(block),
            body,
        );
    } else {
        match app.view {
            View::Main => draw_main(frame, body, app),
            View::DeviceDetail => {
                let device = app.devices.get(&app.device_detail.serial);
                app.device_detail
                    .draw(frame, body, device, app.status.as_ref(), theme);
            }
            View::EventDetail => match &app.event_detail {
                Some((ev, scroll)) => event_detail::draw(frame, body, ev, *scroll, theme),
                None => draw_main(frame, body, app),
            },
        }
    }
    if demo_height > 0 {
        draw_demo(frame, demo, app);
    }
    draw_status(frame, status, app);
    draw_footer(frame, footer, app);
    match &app.overlay {
        Some(Overlay::Help) => draw_help(frame, body, app),
        Some(Overlay::Confirm(c)) => draw_confirm(frame, body, app, *c),
        Some(Overlay::SpawnPrompt(digits)) => draw_prompt(frame, body, app, digits),
        Some(Overlay::FaultMenu) => draw_fault_menu(frame, body, app),
        None => {}
    }
}

fn draw_header(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let h = &app.header;
    let mut spans = vec![
        Span::styled(" jitpilot ", theme.title()),
        Span::styled(format!("· {} cloud ", h.backend), theme.dim()),
    ];
    if let Some(e) = &h.endpoint {
        spans.push(Span::styled("· endpoint ", theme.dim()));
        spans.push(Span::raw(format!("{e} ")));
    }
    if let Some(api) = &h.api {
        spans.push(Span::styled("· AWS API ", theme.dim()));
        spans.push(Span::raw(format!("{api} ")));
    }
    if let Some(o) = &h.observer {
        let style = match o {
            ObserverState::Subscribed { .. } => theme.good(),
            o if o.is_problem() => theme.bad(),
            _ => theme.busy(),
        };
        spans.push(Span::styled("· observer ", theme.dim()));
        spans.push(Span::styled(format!("{} ", o.label()), style));
    }
    if h.tls_refused > 0 {
        spans.push(Span::styled("· TLS refused ", theme.dim()));
        spans.push(Span::styled(format!("{} ", h.tls_refused), theme.bad()));
    }
    if let Some(d) = &h.data_dir {
        spans.push(Span::styled(format!("· {d} "), theme.dim()));
    }
    if app.mouse {
        spans.push(Span::styled("· mouse ", theme.dim()));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_main(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let status = app.status.as_ref();
    let draw_pane = |frame: &mut Frame, pane: PaneId, rect: Rect| {
        let focused = app.focus == pane;
        match pane {
            PaneId::Stack => app.stack.draw(
                frame,
                rect,
                status.and_then(|s| s.stack.as_ref()),
                status.map_or(&[][..], |s| &s.other_stacks[..]),
                focused,
                theme,
            ),
            PaneId::Cas => app.cas.draw(frame, rect, status, focused, theme),
            PaneId::Devices => app.devices.draw(frame, rect, focused, theme),
            PaneId::Traffic => app.traffic.draw(frame, rect, focused, theme),
        }
    };
    if app.zoom {
        draw_pane(frame, app.focus, area);
        return;
    }
    let top_height = (area.height * 30 / 100).max(8);
    let [top, devices, traffic] = Layout::vertical([
        Constraint::Length(top_height),
        Constraint::Fill(1),
        Constraint::Fill(1),
    ])
    .areas(area);
    let [stack, cas] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Fill(1)]).areas(top);
    draw_pane(frame, PaneId::Stack, stack);
    draw_pane(frame, PaneId::Cas, cas);
    draw_pane(frame, PaneId::Devices, devices);
    draw_pane(frame, PaneId::Traffic, traffic);
}

fn draw_demo(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let Some(demo) = &app.demo else { return };
    let (title, lines) = if demo.finished() {
        (
            " Demo · done ".to_string(),
            vec![Line::from(
                "That was the whole walkthrough. Press q to quit.",
            )],
        )
    } else {
        let step = demo.current();
        let mut lines = vec![Line::from(step.narration)];
        if !step.aws.is_empty() {
            lines.push(Line::from(vec![
                Span::styled("AWS: ", theme.key()),
                Span::styled(step.aws, theme.dim()),
            ]));
        }
        (
            format!(
                " Demo {}/{} · {} · Space plays it ",
                demo.step + 1,
                STEPS.len(),
                step.title
            ),
            lines,
        )
    };
    let block = Block::new()
        .borders(Borders::ALL)
        .border_type(BorderType::Double)
        .border_style(theme.focused_border())
        .title(Span::styled(title, theme.title()));
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: true }).block(block),
        area,
    );
}

fn draw_status(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let mut spans = Vec::new();
    if !app.busy.is_empty() {
        spans.push(Span::styled(
            format!(" ⟳ {} ", app.busy.join(", ")),
            theme.busy(),
        ));
    }
    match &app.toast {
        Some(t) if t.error => spans.push(Span::styled(format!(" ✗ {}", t.text), theme.bad())),
        Some(t) => spans.push(Span::raw(format!(" {}", t.text))),
        None => {}
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_footer(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let mut spans = Vec::new();
    for (key, what) in hints(app) {
        spans.push(Span::styled(format!(" {key}"), theme.key()));
        spans.push(Span::styled(format!(" {what} "), theme.dim()));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// A centred rectangle of at most `w`×`h` inside `area`.
fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let [row] = Layout::vertical([Constraint::Length(h.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [rect] = Layout::horizontal([Constraint::Length(w.min(area.width))])
        .flex(Flex::Center)
        .areas(row);
    rect
}

fn dialog<'a>(title: &'a str, app: &App) -> Block<'a> {
    Block::new()
        .borders(Borders::ALL)
        .border_type(BorderType::Double)
        .border_style(app.theme.focused_border())
        .title(Span::styled(title, app.theme.title()))
}

fn draw_help(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let height = (HELP.len() + HELP_NOTES.len()) as u16 + 5;
    let rect = centered(area, area.width.saturating_sub(4), height);
    let mut lines = vec![Line::from(Span::styled(
        "Each action runs on the cloud shown in the header; in AWS terms it is:",
        theme.dim(),
    ))];
    for (key, what, aws) in HELP {
        let mut spans = vec![
            Span::styled(format!("{key:>12}  "), theme.key()),
            Span::raw(format!("{what:<44}")),
        ];
        if !aws.is_empty() {
            spans.push(Span::styled(format!(" = {aws}"), theme.dim()));
        }
        lines.push(Line::from(spans));
    }
    lines.push(Line::from(""));
    for note in HELP_NOTES {
        lines.push(Line::from(Span::styled(*note, theme.dim())));
    }
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).block(dialog(" Help · Esc closes ", app)),
        rect,
    );
}

fn draw_confirm(frame: &mut Frame, area: Rect, app: &App, what: Confirm) {
    let (title, text) = match what {
        Confirm::Cleanup => (
            " Cleanup? ",
            "Delete every device, thing, certificate, both CAs, the CA key parameter and the table rows (certs_etc.py --delete). The stack stays.",
        ),
        Confirm::Teardown => (
            " Teardown? ",
            "Delete the stack CertRotation and all its resources: rules, function, table, policies, roles (delete_cf.bash).",
        ),
    };
    let rect = centered(area, 64, 7);
    frame.render_widget(Clear, rect);
    let lines = vec![
        Line::from(text),
        Line::from(""),
        Line::from(vec![
            Span::styled("y", app.theme.key()),
            Span::raw(" yes, delete   "),
            Span::styled("n", app.theme.key()),
            Span::raw(" / Esc cancel"),
        ]),
    ];
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(dialog(title, app)),
        rect,
    );
}

fn draw_prompt(frame: &mut Frame, area: Rect, app: &App, digits: &str) {
    let rect = centered(area, 60, 6);
    frame.render_widget(Clear, rect);
    let lines = vec![
        Line::from("How many devices? Each is whitelisted (CR_WHITELISTED) and gets factory credentials signed by the Vendor CA."),
        Line::from(vec![
            Span::styled("> ", app.theme.key()),
            Span::raw(if digits.is_empty() { "3" } else { digits }),
            Span::styled("▏  Enter spawns, Esc cancels", app.theme.dim()),
        ]),
    ];
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(dialog(" Spawn devices ", app)),
        rect,
    );
}

fn draw_fault_menu(frame: &mut Frame, area: Rect, app: &App) {
    let rect = centered(area, 72, 8);
    frame.render_widget(Clear, rect);
    let target = app
        .target_serial()
        .unwrap_or_else(|| "(no device selected)".into());
    let key = |k: &'static str| Span::styled(k, app.theme.key());
    let lines = vec![
        Line::from(format!("Device {target}:")),
        Line::from(vec![
            key("1"),
            Span::raw(" drop its next response (it times out and asks again)"),
        ]),
        Line::from(vec![
            key("2"),
            Span::raw(" kill it mid-step (it resumes from its credential folder)"),
        ]),
        Line::from(vec![
            key("3"),
            Span::raw(" revoke its current cert = aws iot update-certificate --new-status REVOKED"),
        ]),
        Line::from(vec![key("Esc"), Span::raw(" cancel")]),
    ];
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(dialog(" Inject a fault ", app)),
        rect,
    );
}
