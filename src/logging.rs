//! File logging: `<data-dir>/logs/jitpilot.log`, never stdout (stdout carries
//! `--json` documents and the TUI draws on the terminal).
//!
//! The filter follows `RUST_LOG` (e.g. `RUST_LOG=jitpilot=debug`), default `info`.

use std::path::{Path, PathBuf};
use tracing_subscriber::EnvFilter;

/// The log file's name inside `<data-dir>/logs/`.
pub const LOG_FILE: &str = "jitpilot.log";

/// Keeps the background log writer alive; logs are flushed when it drops.
/// Hold it for the life of the program.
#[must_use = "logs stop being written when the guard is dropped"]
pub struct LogGuard {
    _worker: Option<tracing_appender::non_blocking::WorkerGuard>,
    path: Option<PathBuf>,
}

impl LogGuard {
    /// The log file, when logging could be set up.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

/// Sends `tracing` output to `<data_dir>/logs/jitpilot.log`.
///
/// Never fails the program: when the directory cannot be created, or a
/// subscriber is already installed (tests), logging is simply off and
/// [`LogGuard::path`] is `None`.
pub fn init_file_logging(data_dir: &Path) -> LogGuard {
    let dir = data_dir.join("logs");
    if std::fs::create_dir_all(&dir).is_err() {
        return LogGuard {
            _worker: None,
            path: None,
        };
    }
    let appender = tracing_appender::rolling::never(&dir, LOG_FILE);
    let (writer, worker) = tracing_appender::non_blocking(appender);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .try_init()
        .is_ok();
    LogGuard {
        _worker: Some(worker),
        path: installed.then(|| dir.join(LOG_FILE)),
    }
}
