//! The real terminal: raw mode, the alternate screen, mouse capture, and a
//! panic hook that puts the terminal back before any report is printed, so
//! a bug never leaves a garbled shell behind.

use crossterm::event::{DisableMouseCapture, EnableMouseCapture};
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use std::io::{stdout, Stdout};

/// The terminal the TUI draws on.
pub type Tui = Terminal<CrosstermBackend<Stdout>>;

/// Enters raw mode and the alternate screen; installs the restoring panic hook.
pub fn init(mouse: bool) -> std::io::Result<Tui> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // Restore first: the report (color-eyre's) must land on a sane screen.
        let _ = restore();
        previous(info);
    }));
    enable_raw_mode()?;
    execute!(stdout(), EnterAlternateScreen)?;
    if mouse {
        execute!(stdout(), EnableMouseCapture)?;
    }
    let mut terminal = Terminal::new(CrosstermBackend::new(stdout()))?;
    terminal.clear()?;
    Ok(terminal)
}

/// Turns mouse capture on or off (off keeps text selectable).
pub fn set_mouse(on: bool) -> std::io::Result<()> {
    if on {
        execute!(stdout(), EnableMouseCapture)
    } else {
        execute!(stdout(), DisableMouseCapture)
    }
}

/// Leaves the alternate screen and raw mode. Safe to call more than once.
pub fn restore() -> std::io::Result<()> {
    let _ = execute!(stdout(), DisableMouseCapture);
    execute!(stdout(), LeaveAlternateScreen, crossterm::cursor::Show)?;
    disable_raw_mode()
}
