//! What the integration tests share, one module per topic, so that a
//! helper exists once: every test file says `mod support;` and uses the
//! parts it needs.
//!
//! - [`process`]: programs started under deadlines (a command's output, a
//!   server's first line), so no wait of a test can hang the suite;
//! - [`endpoint`]: `jitpilot serve` and a deployed data dir with test
//!   identities, TLS MQTT clients and waits on packets;
//! - [`api`]: the AWS API of a running `serve` — `jitpilot env`, raw and
//!   SigV4-signed HTTP, the aws CLI and the boto3 scripts of `tests/py/`;
//! - [`aws`]: the AWS backend suite's two targets (moto, or jitpilot's own
//!   local cloud), mosquitto and a rules engine standing in for IoT's data
//!   plane on moto, the walkthrough played against either;
//! - [`broker`]: a TLS mosquitto with a test CA;
//! - [`tmux`]: a real terminal for the TUI tests.
#![allow(dead_code)]

pub mod api;
pub mod aws;
pub mod broker;
pub mod endpoint;
pub mod process;
pub mod tmux;

pub use process::Bounded;

use std::path::Path;
use std::process::{Command, Output};

/// The `jitpilot` binary of this build, without the user's
/// `JITPILOT_DATA_DIR` (each test names its own data dir).
pub fn jitpilot() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jitpilot"));
    cmd.env_remove("JITPILOT_DATA_DIR");
    cmd
}

/// `jitpilot --data-dir DATA ARGS`, run to its end (bounded).
pub fn jitpilot_on(data_dir: &Path, args: &[&str]) -> Output {
    jitpilot()
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .bounded_output()
        .expect("run jitpilot")
}

/// `jitpilot status --json` on `data_dir` (also beside a running TUI or
/// `serve`).
pub fn status_json(data_dir: &Path) -> serde_json::Value {
    let out = jitpilot_on(data_dir, &["status", "--json"]);
    assert!(
        out.status.success(),
        "jitpilot status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status --json prints JSON")
}

/// `python3 tests/py/<name>`, to be given its arguments; killed when
/// dropped, so a test that gives up on it leaves nothing running.
pub fn python_script(name: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/py")
            .join(name),
    )
    .kill_on_drop(true);
    cmd
}

/// Runs `cmd` to its end within `limit`, without blocking the runtime,
/// and parses the one JSON line it prints; fails with its stdout and
/// stderr. `what` names it, `install` says what it needs.
pub async fn json_line_of(
    cmd: &mut tokio::process::Command,
    limit: std::time::Duration,
    what: &str,
    install: &str,
) -> serde_json::Value {
    let output = tokio::time::timeout(limit, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}"))
        .unwrap_or_else(|e| panic!("python3 runs ({install}): {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{what} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{what} prints one JSON line ({e}): {stdout}"))
}

/// `jitpilot --data-dir DATA ARGS --json`, which must succeed: its document.
pub fn jitpilot_json(data_dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = jitpilot_on(data_dir, &all);
    assert!(
        out.status.success(),
        "jitpilot {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "jitpilot {args:?} printed no JSON document ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}
