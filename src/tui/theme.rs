//! Colours and emphasis, with `NO_COLOR` respected.
//!
//! Every style the panes use comes from here, so that a terminal (or a user)
//! asking for no colour gets a screen that still reads: emphasis then comes
//! from bold, reversed and underlined text only.

use ratatui::style::{Color, Modifier, Style};

/// The styles of one screen.
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    /// False when `NO_COLOR` is set: styles use modifiers only.
    pub color: bool,
}

impl Theme {
    /// Colours unless the `NO_COLOR` environment variable is set (any value,
    /// as <https://no-color.org> asks).
    pub fn from_env() -> Theme {
        Theme {
            color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    /// A theme with or without colours.
    pub fn new(color: bool) -> Theme {
        Theme { color }
    }

    fn fg(&self, color: Color) -> Style {
        if self.color {
            Style::new().fg(color)
        } else {
            Style::new()
        }
    }

    /// Ordinary text.
    pub fn text(&self) -> Style {
        Style::new()
    }

    /// Secondary text: timestamps, ids, hints.
    pub fn dim(&self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new().add_modifier(Modifier::DIM)
        }
    }

    /// Titles and headers.
    pub fn title(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    /// The border of the focused pane.
    pub fn focused_border(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    /// The border of other panes.
    pub fn border(&self) -> Style {
        self.dim()
    }

    /// The selected row.
    pub fn selected(&self) -> Style {
        if self.color {
            Style::new().bg(Color::Blue).fg(Color::White)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }

    /// Things that went well: ACTIVE, COMPLETE, connected.
    pub fn good(&self) -> Style {
        self.fg(Color::Green)
    }

    /// Things in progress: PENDING, IN_PROGRESS, retrying.
    pub fn busy(&self) -> Style {
        self.fg(Color::Yellow)
    }

    /// Failures and refusals.
    pub fn bad(&self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }

    /// Cloud-side actions between packets (JITP, rules, functions, registry).
    pub fn action(&self) -> Style {
        self.fg(Color::Magenta)
    }

    /// Key names in the footer and help.
    pub fn key(&self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }

    /// A status word coloured by what it means in AWS terms.
    pub fn status(&self, status: &str) -> Style {
        let s = status.to_ascii_uppercase();
        if s.contains("FAIL")
            || s.contains("REVOKED")
            || s.contains("REFUSED")
            || s.contains("ROLLBACK")
        {
            self.bad()
        } else if s.contains("PENDING")
            || s.contains("IN_PROGRESS")
            || s.contains("RETRY")
            || s.contains("RUNNING")
            || s.contains("INACTIVE")
        {
            self.busy()
        } else if s.contains("COMPLETE") || s.contains("ACTIVE") || s.contains("DONE") {
            self.good()
        } else {
            self.text()
        }
    }
}
