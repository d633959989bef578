//! The terminal UI: one screen to deploy, provision, watch and step a fleet
//! through JITP and certificate rotation.
//!
//! ## Layout
//!
//! - `action.rs`  [`action::Action`] (what a key means), [`action::Command`]
//!   (cloud work), [`action::Msg`] (what comes back)
//! - `app.rs`     [`app::App`]: the state and its `update`; no IO, no drawing
//! - `keys.rs`    keys → actions by context, footer hints, the help text
//! - `ui.rs`      [`ui::draw`]: the whole screen from the state
//! - `panes/`     one module per pane: stack, CAs, traffic, devices, device detail
//! - `demo.rs`    the guided walkthrough of `jitpilot demo`
//! - `worker.rs`  runs commands on spawned tasks, reports back on a channel
//! - `session.rs` the cloud and the device runner the TUI drives
//! - `agent.rs`   in-process devices through the device agent (`simulated-devices`)
//! - `terminal.rs` raw mode, alternate screen, the restoring panic hook
//!
//! The UI task only drains channels (keys, messages, cloud events) and
//! redraws, at most [`FPS`] times a second and only when something changed.

pub mod action;
pub mod agent;
pub mod app;
pub mod demo;
pub mod keys;
pub mod latency;
pub mod panes;
pub mod session;
pub mod terminal;
pub mod theme;
pub mod ui;
pub mod worker;

use crate::cli::GlobalArgs;
use crate::cloud::{CloudEvent, EventReceiver};
use action::{Action, Command, Msg};
use app::{App, Header};
use crossterm::event::{Event, EventStream, MouseEventKind};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Frames per second, at most.
pub const FPS: f64 = 30.0;

/// At most how many queued events or messages one turn of the loop applies,
/// and for at most how long: the loop looks at the keyboard between turns,
/// so a key waits behind one bounded slice of a traffic flood, never behind
/// the whole queue.
const INGEST_BATCH: usize = 1024;
const INGEST_BUDGET: Duration = Duration::from_millis(2);

/// Applies what `next` yields, up to [`INGEST_BATCH`] items or
/// [`INGEST_BUDGET`] of time, whichever comes first. Returns how many.
fn ingest<T>(mut next: impl FnMut() -> Option<T>, mut apply: impl FnMut(T)) -> usize {
    let started = std::time::Instant::now();
    let mut n = 0;
    while n < INGEST_BATCH {
        // Reading the clock costs more than applying an event: every 32.
        if n % 32 == 31 && started.elapsed() >= INGEST_BUDGET {
            break;
        }
        match next() {
            Some(item) => apply(item),
            None => break,
        }
        n += 1;
    }
    n
}

/// Runs the TUI (`demo` = guided workshop mode).
pub async fn run(global: &GlobalArgs, mouse: bool, demo: bool) -> color_eyre::Result<()> {
    let data_dir = global.data_dir();
    let _log = crate::logging::init_file_logging(&data_dir);
    tracing::info!(data_dir = %data_dir.display(), demo, "TUI starting");
    let session = session::open(global).await;
    let header = Header {
        backend: match global.backend {
            crate::cli::Backend::Local => "local".into(),
            crate::cli::Backend::Aws => "aws".into(),
        },
        endpoint: None,
        api: None,
        data_dir: Some(data_dir.display().to_string()),
        observer: None,
        tls_refused: 0,
    };
    let mut app = App::new(theme::Theme::from_env(), header, demo);
    app.mouse = mouse;
    let mut terminal = terminal::init(mouse)?;
    let result = event_loop(&mut terminal, &mut app, session).await;
    terminal::restore()?;
    tracing::info!("TUI stopped");
    result
}

/// The next event of the stream, or never when there is no stream.
async fn next_event(events: &mut Option<EventReceiver>) -> Option<Arc<CloudEvent>> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn event_loop(
    terminal: &mut terminal::Tui,
    app: &mut App,
    session: Result<session::Session, String>,
) -> color_eyre::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let (mut worker, mut events, running) = match session {
        Ok(s) => {
            app.header = Header {
                endpoint: s.header.endpoint.or(app.header.endpoint.take()),
                ..s.header
            };
            let events = Some(s.cloud.events());
            (
                Some(worker::Worker::new(s.cloud, s.devices, tx.clone())),
                events,
                s.running,
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "session could not start");
            app.fatal = Some(e);
            (None, None, None)
        }
    };
    if let Some(w) = &mut worker {
        w.execute(Command::Refresh);
    }
    let frame_interval = Duration::from_secs_f64(1.0 / FPS);
    let mut terminal_events = EventStream::new();
    let mut refresh = tokio::time::interval(Duration::from_secs(1));
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut dirty = true;
    // Input (keys, the mouse wheel) handled and not yet on screen.
    let mut unanswered = false;
    let mut next_frame = Instant::now();
    let mut mouse = app.mouse;
    let mut latency = latency::LatencyProbe::from_env();
    loop {
        tokio::select! {
            biased;
            ev = terminal_events.next() => match ev {
                Some(Ok(Event::Key(key))) => {
                    latency.input();
                    if let Some(action) = keys::handle_key_event(app, key) {
                        app.update(action);
                    }
                    dirty = true;
                    unanswered = true;
                }
                Some(Ok(Event::Mouse(m))) => {
                    match m.kind {
                        MouseEventKind::ScrollUp => app.update(Action::Up),
                        MouseEventKind::ScrollDown => app.update(Action::Down),
                        _ => {}
                    }
                    dirty = true;
                    unanswered = true;
                }
                Some(Ok(Event::Resize(..))) => dirty = true,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::error!(error = %e, "terminal input failed");
                    break;
                }
                None => break,
            },
            // Input is answered at once: after the keys already typed (the
            // branch above takes them first, so a burst shares one frame),
            // before any traffic, and without a timer (under load a timer
            // fires only when a runtime worker next turns the timer wheel).
            _ = std::future::ready(()), if unanswered => {
                terminal.draw(|frame| ui::draw(frame, app))?;
                latency.frame_drawn();
                dirty = false;
                unanswered = false;
                next_frame = Instant::now() + frame_interval;
            }
            // Frames and the refresh tick come before the queues: under a
            // flood of traffic the queues are always ready, and a due frame
            // or refresh must still happen.
            _ = tokio::time::sleep_until(next_frame), if dirty => {
                terminal.draw(|frame| ui::draw(frame, app))?;
                latency.frame_drawn();
                dirty = false;
                // Capped FPS: the next frame is due one interval after this one.
                next_frame = Instant::now() + frame_interval;
            }
            _ = refresh.tick() => {
                if app.take_refresh_hint() {
                    app.update(Action::Refresh);
                }
            }
            // The queues are applied a bounded slice per turn (`ingest`):
            // the keyboard is looked at again between slices.
            Some(msg) = rx.recv() => {
                app.apply(msg);
                ingest(|| rx.try_recv().ok(), |msg| app.apply(msg));
                dirty = true;
            }
            Some(ev) = next_event(&mut events) => {
                app.push_event(ev);
                if let Some(rx) = &mut events {
                    ingest(|| rx.try_recv(), |ev| app.push_event(ev));
                    app.traffic.set_lagged(rx.dropped());
                }
                dirty = true;
            }
        }
        if let Some(w) = &mut worker {
            for command in app.take_commands() {
                w.execute(command);
            }
        } else {
            app.take_commands();
        }
        if app.mouse != mouse {
            mouse = app.mouse;
            terminal::set_mouse(mouse)?;
        }
        if app.should_quit {
            break;
        }
    }
    if let Some(w) = &mut worker {
        w.abort_all();
    }
    if let Some(running) = running {
        running.shutdown().await;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
