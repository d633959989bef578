//! A function's process: started from a [`LaunchPlan`], its stdout and
//! stderr copied line by line into `jitpilot.log` (escaped, like CloudWatch
//! Logs keeps them), killed when dropped.

use super::config::LaunchPlan;
use std::process::{ExitStatus, Stdio};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// The longest line kept from a function's output; the rest is cut.
const MAX_LOG_LINE: usize = 8 * 1024;

/// A running function process.
pub struct FunctionProcess {
    child: Child,
    pid: Option<u32>,
}

impl FunctionProcess {
    /// Starts `plan`'s program for the function `name`.
    pub fn spawn(name: &str, plan: &LaunchPlan) -> std::io::Result<FunctionProcess> {
        let mut child = Command::new(&plan.program)
            .args(&plan.args)
            .current_dir(&plan.task_root)
            .env_clear()
            .envs(&plan.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id();
        if let Some(out) = child.stdout.take() {
            tokio::spawn(copy_to_log(name.to_string(), "stdout", out));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(copy_to_log(name.to_string(), "stderr", err));
        }
        Ok(FunctionProcess { child, pid })
    }

    /// The process id, for the log.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Resolves when the process exits.
    pub async fn exited(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Stops the process and waits for it (Lambda's timeout and shutdown).
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// Copies one output stream into the log, one record per line. `{:?}`
/// escapes control characters: a function cannot forge log lines.
async fn copy_to_log(function: String, stream: &'static str, output: impl AsyncRead + Unpin) {
    let mut reader = BufReader::new(output);
    let mut line = Vec::new();
    loop {
        line.clear();
        match read_line_capped(&mut reader, &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\n', '\r']);
                tracing::info!(target: "jitpilot::lambda", function = %function, stream, line = ?text, "function output");
            }
        }
    }
}

/// Reads up to a newline, keeping at most [`MAX_LOG_LINE`] bytes of it.
async fn read_line_capped(
    reader: &mut BufReader<impl AsyncRead + Unpin>,
    line: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let mut total = 0;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(total);
        }
        let (chunk, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        let room = MAX_LOG_LINE.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len();
        total += used;
        reader.consume(used);
        if done {
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn long_lines_are_cut_and_lines_split() {
        let data = format!("first\n{}\nlast", "x".repeat(MAX_LOG_LINE * 2));
        let mut reader = BufReader::with_capacity(64, data.as_bytes());
        let mut line = Vec::new();
        read_line_capped(&mut reader, &mut line).await.unwrap();
        assert_eq!(line, b"first\n");
        line.clear();
        let n = read_line_capped(&mut reader, &mut line).await.unwrap();
        assert_eq!(n, MAX_LOG_LINE * 2 + 1);
        assert_eq!(line.len(), MAX_LOG_LINE);
        line.clear();
        read_line_capped(&mut reader, &mut line).await.unwrap();
        assert_eq!(line, b"last");
        line.clear();
        assert_eq!(read_line_capped(&mut reader, &mut line).await.unwrap(), 0);
    }
}
