//! File logging: `<data-dir>/logs/jitpilot.log`, never stdout (stdout carries
//! `--json` documents and the TUI draws on the terminal).
//!
//! The filter follows `RUST_LOG` (e.g. `RUST_LOG=jitpilot=debug`), default `info`.
//! `serve` also copies jitpilot's own WARN and above to stderr.
//!
//! One event is one line. Values in the log often come from the network (a
//! topic, a clientId, a TLS error quoting a peer's bytes), so every line
//! goes through [`EscapeControls`] on its way to the file: a newline, NUL or
//! any other control character inside an event is written as an escape
//! (`\n`, `\u{0}`), and no client can forge a log line.

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

/// What `serve` copies to stderr: jitpilot's own WARN and above. A library's
/// warnings (rustls's "Illegal SNI extension: ignoring IP address" for every
/// client that dials 127.0.0.1, say) stay in the log file.
fn own_warnings() -> tracing_subscriber::filter::Targets {
    use tracing_subscriber::filter::LevelFilter;
    tracing_subscriber::filter::Targets::new()
        .with_target("jitpilot", LevelFilter::WARN)
        .with_target("simulated_devices", LevelFilter::WARN)
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
    let writer = EscapeControls(writer);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let file = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(false)
        .with_filter(filter);
    let stderr = warnings_to_stderr.then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(EscapeControls(std::io::stderr))
            .with_ansi(false)
            .without_time()
            .with_filter(own_warnings())
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

/// Escapes control characters in what it writes, except the newline that
/// ends a line. The fmt layer writes each event with one `write` call, so
/// an event can never span two lines of the file.
#[derive(Clone)]
pub struct EscapeControls<W>(pub W);

/// `text` with every control character (C0, DEL, C1) but a final newline
/// written as a Rust escape, e.g. `\n`, `\u{0}`, `\u{1b}`. Also escapes
/// the Unicode line and paragraph separators.
pub fn escape_controls(text: &str) -> String {
    let (body, newline) = match text.strip_suffix('\n') {
        Some(body) => (body, "\n"),
        None => (text, ""),
    };
    let mut out = String::with_capacity(text.len());
    for c in body.chars() {
        if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push_str(newline);
    out
}

impl<W: std::io::Write> std::io::Write for EscapeControls<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(escape_controls(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl<'a, W: tracing_subscriber::fmt::MakeWriter<'a>> tracing_subscriber::fmt::MakeWriter<'a>
    for EscapeControls<W>
{
    type Writer = EscapeControls<W::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        EscapeControls(self.0.make_writer())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_inside_a_line_are_escaped() {
        let forged = "reason=x\n2026-12-02T10:00:00Z  INFO cert ACTIVE\0\r\u{1b}[31m\u{2028}\n";
        let escaped = escape_controls(forged);
        assert_eq!(escaped.matches('\n').count(), 1, "{escaped}");
        assert!(escaped.ends_with('\n'));
        assert!(escaped.contains("x\\n2026"), "{escaped}");
        assert!(escaped.contains("\\u{0}"), "{escaped}");
        assert!(!escaped.contains('\0') && !escaped.contains('\r') && !escaped.contains('\u{1b}'));
        assert_eq!(
            escape_controls("plain Ünicode line\n"),
            "plain Ünicode line\n"
        );
    }

    #[test]
    fn serve_copies_only_its_own_warnings_to_stderr() {
        use tracing::Level;
        let filter = own_warnings();
        assert!(filter.would_enable("jitpilot::cloud::local::functions", &Level::WARN));
        assert!(filter.would_enable("jitpilot", &Level::ERROR));
        assert!(filter.would_enable("simulated_devices::agent", &Level::WARN));
        assert!(!filter.would_enable("jitpilot::cloud", &Level::INFO));
        assert!(!filter.would_enable("rustls::server::hs", &Level::WARN));
    }

    /// Only one subscriber can be installed per process, so that lines
    /// reach the file (and RUST_LOG filters them) is checked in a process
    /// of its own: `tests/cli_env.rs`. Here: the folder is always made.
    #[test]
    fn the_logs_folder_is_made_in_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let _guard = init_file_logging(dir.path());
        assert!(dir.path().join("logs").is_dir());
    }
}
