//! Programs a test starts, waited on under deadlines: a command that hangs,
//! or a server that never says where it listens, fails its test with what
//! the program printed instead of blocking the suite forever.
//!
//! Only std and serde_json, and no binary named at compile time, so the
//! `simulated-devices` tests include this file by path too.

use std::io::{self, BufRead, BufReader, Read};
use std::process::{Child, ChildStderr, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a command may run before the test calls it hung. Generous: the
/// machine is shared and busy; a command that works ends long before.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(600);

/// How long a server may take to print its first line (it listens by then).
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(120);

/// How much of a server's stderr is kept for a failure message.
const STDERR_KEPT: usize = 64 * 1024;

/// `output()` and `status()` with a deadline: past it the child is killed
/// and the call fails with `TimedOut`, naming the command and carrying
/// what it wrote to stderr so far.
pub trait Bounded {
    /// Like [`Command::output`] (stdin closed, stdout and stderr captured).
    fn output_within(&mut self, limit: Duration) -> io::Result<Output>;

    /// Like [`Command::status`] (the test's stdio inherited).
    fn status_within(&mut self, limit: Duration) -> io::Result<ExitStatus>;

    /// [`Bounded::output_within`] the [`COMMAND_DEADLINE`].
    fn bounded_output(&mut self) -> io::Result<Output> {
        self.output_within(COMMAND_DEADLINE)
    }

    /// [`Bounded::status_within`] the [`COMMAND_DEADLINE`].
    fn bounded_status(&mut self) -> io::Result<ExitStatus> {
        self.status_within(COMMAND_DEADLINE)
    }
}

impl Bounded for Command {
    fn output_within(&mut self, limit: Duration) -> io::Result<Output> {
        let mut child = self
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = Collected::start(child.stdout.take(), usize::MAX);
        let stderr = Collected::start(child.stderr.take(), usize::MAX);
        match wait_within(&mut child, limit) {
            Some(status) => Ok(Output {
                status,
                stdout: stdout.finish(),
                stderr: stderr.finish(),
            }),
            None => Err(timed_out(self, limit, &mut child, &stderr.text())),
        }
    }

    fn status_within(&mut self, limit: Duration) -> io::Result<ExitStatus> {
        let mut child = self.spawn()?;
        wait_within(&mut child, limit).ok_or_else(|| timed_out(self, limit, &mut child, ""))
    }
}

fn timed_out(cmd: &Command, limit: Duration, child: &mut Child, stderr: &str) -> io::Error {
    let _ = child.kill();
    let _ = wait_within(child, Duration::from_secs(10));
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "{cmd:?} did not finish within {limit:?} and was killed; its stderr so far:\n{stderr}"
        ),
    )
}

/// Waits for `child` to exit, up to `limit`; `None` if it is still running.
pub fn wait_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    // Polling: std has no wait with a timeout. Short at first (most
    // commands end at once), then at most 50 ms late.
    let mut pause = Duration::from_millis(1);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// A pipe read to its end on a thread of its own, into a buffer the test
/// can look at any time (keeping the last `keep` bytes).
struct Collected {
    buffer: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

impl Collected {
    fn start(pipe: Option<impl Read + Send + 'static>, keep: usize) -> Collected {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let (tx, done) = mpsc::channel();
        let into = buffer.clone();
        std::thread::spawn(move || {
            if let Some(mut pipe) = pipe {
                let mut chunk = [0u8; 8192];
                while let Ok(n) = pipe.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    let mut buffer = into.lock().unwrap_or_else(|e| e.into_inner());
                    buffer.extend_from_slice(&chunk[..n]);
                    if buffer.len() > keep {
                        let cut = buffer.len() - keep;
                        buffer.drain(..cut);
                    }
                }
            }
            let _ = tx.send(());
        });
        Collected { buffer, done }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// What was collected once the pipe closed, or after `limit` (a
    /// grandchild may hold it open): for a child that has exited, whose
    /// last words may still be on their way through the pipe.
    fn text_when_closed(&self, limit: Duration) -> String {
        let _ = self.done.recv_timeout(limit);
        self.text()
    }

    /// Everything, once the pipe is closed (or 10 s after the child exited:
    /// a grandchild may hold the pipe open).
    fn finish(self) -> Vec<u8> {
        let _ = self.done.recv_timeout(Duration::from_secs(10));
        std::mem::take(&mut *self.buffer.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The lines a child prints on stdout, read on a thread of their own, so
/// that every wait for the next one has a deadline.
pub struct Lines {
    rx: mpsc::Receiver<io::Result<String>>,
}

impl Lines {
    /// The lines of `pipe` (a child's stdout or stderr).
    pub fn of(pipe: impl Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Lines { rx }
    }

    /// The next line before `deadline`: `Ok(None)` at the end of the
    /// stream, `Err` with what went wrong when the deadline passed.
    pub fn next_before(&self, deadline: Instant) -> Result<Option<String>, String> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(left) {
            Ok(Ok(line)) => Ok(Some(line)),
            Ok(Err(e)) => Err(format!("reading the child's output failed: {e}")),
            Err(mpsc::RecvTimeoutError::Disconnected) => Ok(None),
            Err(mpsc::RecvTimeoutError::Timeout) => Err("no line before the deadline".into()),
        }
    }
}

/// A server a test started: it prints one line once it listens (for
/// `jitpilot serve --json`, where). Killed when dropped. Its stderr is
/// copied to the test's (shown when the test fails) and kept for failure
/// messages; stdout after the first line is read and dropped, so the
/// server never blocks on a full pipe.
pub struct ChildServer {
    pub child: Child,
    /// The first line it printed on stdout, without the newline.
    pub first_line: String,
    stderr: Collected,
}

impl ChildServer {
    /// Spawns `cmd` and waits (up to [`STARTUP_DEADLINE`]) for its first
    /// stdout line; panics with its stderr and exit status when it exits
    /// or stays silent. `what` names it in that message.
    pub fn start(cmd: &mut Command, what: &str) -> ChildServer {
        ChildServer::start_within(cmd, what, STARTUP_DEADLINE)
    }

    /// [`ChildServer::start`] with another deadline.
    pub fn start_within(cmd: &mut Command, what: &str, limit: Duration) -> ChildServer {
        ChildServer::start_with_stderr(cmd, what, limit, true)
    }

    /// [`ChildServer::start`], its stderr left where `cmd` sends it (e.g. a
    /// file the test reads); failure messages then cannot quote it.
    pub fn start_keeping_stderr(cmd: &mut Command, what: &str) -> ChildServer {
        ChildServer::start_with_stderr(cmd, what, STARTUP_DEADLINE, false)
    }

    fn start_with_stderr(
        cmd: &mut Command,
        what: &str,
        limit: Duration,
        capture_stderr: bool,
    ) -> ChildServer {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        if capture_stderr {
            cmd.stderr(Stdio::piped());
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {what} ({cmd:?}): {e}"));
        let stderr = Collected::start(child.stderr.take().map(Echoed), STDERR_KEPT);
        let lines = Lines::of(child.stdout.take().expect("stdout is piped"));
        let first = lines.next_before(Instant::now() + limit);
        let mut server = ChildServer {
            child,
            first_line: String::new(),
            stderr,
        };
        match first {
            Ok(Some(line)) => server.first_line = line,
            Ok(None) => {
                let status = wait_within(&mut server.child, Duration::from_secs(10));
                panic!(
                    "{what} exited ({status:?}) before printing its first line; its stderr:\n{}",
                    server.stderr.text_when_closed(Duration::from_secs(10))
                )
            }
            Err(why) => panic!(
                "{what} printed nothing within {limit:?} ({why}); its stderr:\n{}",
                server.stderr()
            ),
        }
        // The rest of stdout, drained: a full pipe would block the server.
        std::thread::spawn(move || for _ in lines.rx {});
        server
    }

    /// The first line as JSON (`serve --json`); panics naming what it was.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.first_line).unwrap_or_else(|e| {
            panic!(
                "the first line {:?} is not JSON ({e}); stderr:\n{}",
                self.first_line,
                self.stderr()
            )
        })
    }

    /// What it wrote to stderr so far (the last 64 KiB).
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// The process id (e.g. to send it a signal).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits for it to exit on its own, up to `limit`.
    pub fn wait_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        wait_within(&mut self.child, limit)
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = wait_within(&mut self.child, Duration::from_secs(30));
    }
}

/// A pipe whose bytes are also written to the test's stderr as they come
/// (the test harness shows them when the test fails).
struct Echoed(ChildStderr);

impl Read for Echoed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.read(buf)?;
        if n > 0 {
            eprint!("{}", String::from_utf8_lossy(&buf[..n]));
        }
        Ok(n)
    }
}
