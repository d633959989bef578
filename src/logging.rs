//! File logging: `<data-dir>/logs/jitpilot.log`, never stdout (stdout carries
//! `--json` documents and the TUI draws on the terminal).
//!
//! The filter follows `RUST_LOG` (e.g. `RUST_LOG=jitpilot=debug`), default `info`.
//! `serve` also copies WARN and above to stderr.

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
    init(data_dir, false)
}

/// [`init_file_logging`], and WARN and above also on stderr: `serve` runs
/// headless, and whoever started it sees refusals (e.g. the rotation
/// function's `csr_reuses_vendor_key`) without opening the log.
pub fn init_file_logging_with_stderr_warnings(data_dir: &Path) -> LogGuard {
    init(data_dir, true)
}

fn init(data_dir: &Path, warnings_to_stderr: bool) -> LogGuard {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let dir = data_dir.join("logs");
    if std::fs::create_dir_all(&dir).is_err() {
        return LogGuard {
            _worker: None,
            path: None,
        };
    }
    // The builder reports failure; `rolling::never` would panic instead.
    let Ok(appender) = tracing_appender::rolling::RollingFileAppender::builder()
        .rotation(tracing_appender::rolling::Rotation::NEVER)
        .filename_prefix(LOG_FILE)
        .build(&dir)
    else {
        return LogGuard {
            _worker: None,
            path: None,
        };
    };
    let (writer, worker) = tracing_appender::non_blocking(appender);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let file = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(false)
        .with_filter(filter);
    let stderr = warnings_to_stderr.then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .without_time()
            .with_filter(tracing_subscriber::filter::LevelFilter::WARN)
    });
    let installed = tracing_subscriber::registry()
        .with(file)
        .with(stderr)
        .try_init()
        .is_ok();
    LogGuard {
        _worker: Some(worker),
        path: installed.then(|| dir.join(LOG_FILE)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_go_to_the_data_dir_file() {
        let dir = tempfile::tempdir().unwrap();
        let guard = init_file_logging(dir.path());
        // Another test may have installed a subscriber first; then this one
        // reports that logging is off rather than pretending.
        if let Some(path) = guard.path() {
            assert_eq!(path, dir.path().join("logs").join(LOG_FILE));
            tracing::info!("hello from the test");
            drop(guard);
            let text = std::fs::read_to_string(dir.path().join("logs").join(LOG_FILE)).unwrap();
            assert!(text.contains("hello from the test"), "{text}");
        }
        assert!(dir.path().join("logs").is_dir());
    }
}
