//! The stack pane: the CloudFormation stack the walkthrough deploys first —
//! its status, each resource (type, physical id, status) and recent events,
//! as `aws cloudformation describe-stack-resources` / `describe-stack-events`
//! would show them. Every other stack the cloud holds (the sample's own
//! `CertRotationStack`, deployed with `deploy_cf.bash`) is listed too, each
//! under a row with its name and status.

use super::{clip, clock_time, pane_block, title_line};
use crate::cloud::{CloudEvent, StackSummary};
use crate::model::StackResource;
use crate::tui::theme::Theme;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table};
use ratatui::Frame;
use std::collections::VecDeque;
use std::sync::Arc;

/// Live stack events kept while a deploy or teardown runs.
const LIVE_EVENTS: usize = 64;

/// State of the stack pane.
#[derive(Debug, Default)]
pub struct StackPane {
    /// Stack events from the event stream, newest last: they show progress
    /// before the next read-back arrives.
    live: VecDeque<Arc<CloudEvent>>,
    /// First resource row shown (scrolled with j/k when focused).
    pub scroll: usize,
}

impl StackPane {
    /// Records a live stack event.
    pub fn push_event(&mut self, event: Arc<CloudEvent>) {
        if self.live.len() == LIVE_EVENTS {
            self.live.pop_front();
        }
        self.live.push_back(event);
    }

    /// Forgets the live events (a fresh read-back supersedes them).
    pub fn clear_live(&mut self) {
        self.live.clear();
    }

    /// Draws the pane from the last read-back: jitpilot's own stack
    /// (`stack`) first, then `others`.
    pub fn draw(
        &self,
        frame: &mut Frame,
        area: Rect,
        stack: Option<&StackSummary>,
        others: &[StackSummary],
        focused: bool,
        theme: &Theme,
    ) {
        let stacks: Vec<&StackSummary> = stack.into_iter().chain(others).collect();
        let several = stacks.len() > 1;
        let suffix = match stacks.as_slice() {
            [] => "not deployed".into(),
            [s] => format!("{} · {}", s.name, s.status),
            [s, rest @ ..] => format!("{} · {} (+{} more)", s.name, s.status, rest.len()),
        };
        let block = pane_block(title_line("Stack", suffix, theme), focused, theme);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        if stacks.is_empty() {
            let mut lines = vec![Line::from(Span::styled(
                "No stack yet. Press d to deploy = aws cloudformation deploy --template-file cfn/cert-rotation.json",
                theme.dim(),
            ))];
            lines.extend(self.live.iter().rev().take(inner.height as usize).map(|e| {
                Line::from(vec![
                    Span::styled(format!("{} ", clock_time(e.at)), theme.dim()),
                    Span::styled(e.summary.clone(), theme.status(&e.summary)),
                ])
            }));
            frame.render_widget(
                Paragraph::new(lines).wrap(ratatui::widgets::Wrap { trim: true }),
                inner,
            );
            return;
        }
        let events_height = (inner.height / 3).clamp(1, 6);
        let [res_area, ev_area] =
            Layout::vertical([Constraint::Fill(1), Constraint::Length(events_height)]).areas(inner);
        let height = res_area.height.saturating_sub(1) as usize;
        // One row per resource; with several stacks, each under its own name.
        let listed: Vec<Row> = stacks
            .iter()
            .flat_map(|s| {
                let heading = several.then(|| {
                    Row::new(vec![
                        Line::from(Span::styled(clip(&s.name, 24), theme.title())),
                        Line::from(Span::styled("stack", theme.dim())),
                        Line::from(Span::styled(s.status.clone(), theme.status(&s.status))),
                        Line::from(""),
                    ])
                });
                heading
                    .into_iter()
                    .chain(s.resources.iter().map(|r| resource_row(r, theme)))
            })
            .collect();
        let start = self.scroll.min(listed.len().saturating_sub(height.max(1)));
        let rows = listed.into_iter().skip(start).take(height);
        frame.render_widget(
            Table::new(
                rows,
                [
                    Constraint::Length(24),
                    Constraint::Length(18),
                    Constraint::Length(16),
                    Constraint::Fill(1),
                ],
            )
            .header(Row::new(["resource", "type", "status", "physical id"]).style(theme.title()))
            .column_spacing(1),
            res_area,
        );
        // Most recent events: the read-back's, then live ones that are newer.
        let mut read: Vec<(i64, String)> = stacks
            .iter()
            .flat_map(|s| s.events.iter())
            .map(|e| {
                let status = match &e.reason {
                    Some(r) => format!("{} {} ({r})", e.logical_id, e.status),
                    None => format!("{} {}", e.logical_id, e.status),
                };
                (e.timestamp, status)
            })
            .collect();
        read.sort_by_key(|(at, _)| *at);
        let last_read = read.last().map(|(at, _)| *at).unwrap_or(0);
        let mut lines: Vec<Line> = read
            .into_iter()
            .chain(
                self.live
                    .iter()
                    .filter(|e| e.at > last_read)
                    .map(|e| (e.at, e.summary.clone())),
            )
            .map(|(at, text)| {
                let style = theme.status(&text);
                Line::from(vec![
                    Span::styled(format!("{} ", clock_time(at)), theme.dim()),
                    Span::styled(text, style),
                ])
            })
            .collect();
        let keep = ev_area.height as usize;
        let lines = lines.split_off(lines.len().saturating_sub(keep));
        frame.render_widget(Paragraph::new(lines), ev_area);
    }
}

/// One resource of a stack: logical id, type, status, physical id.
fn resource_row(r: &StackResource, theme: &Theme) -> Row<'static> {
    Row::new(vec![
        Line::from(clip(&r.logical_id, 24)),
        Line::from(Span::styled(
            r.resource_type.trim_start_matches("AWS::").to_string(),
            theme.dim(),
        )),
        Line::from(Span::styled(r.status.clone(), theme.status(&r.status))),
        Line::from(Span::styled(r.physical_id.clone(), theme.dim())),
    ])
}
