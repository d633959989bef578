//! The README's promises about where things go, through the real binary with
//! an explicit environment per child process (the test process's own
//! environment is never changed, so these run in parallel with others):
//!
//! - the data dir is `--data-dir`, else `$JITPILOT_DATA_DIR`, else the
//!   platform data dir (`~/.local/share/jitpilot` on Linux);
//! - logs go to `<data-dir>/logs/jitpilot.log`, filtered by `RUST_LOG`
//!   (default info), never to stdout;
//! - `deploy` streams its stack events on stderr as they come, its result on
//!   stdout.

mod support;
use support::Bounded;

use std::path::Path;
use std::process::{Command, Output};

/// `jitpilot ARGS` with only the environment given (plus PATH).
fn jitpilot(env: &[(&str, &Path)], rust_log: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jitpilot"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .args(args);
    for (name, value) in env {
        cmd.env(name, value);
    }
    if let Some(filter) = rust_log {
        cmd.env("RUST_LOG", filter);
    }
    let out = cmd.bounded_output().expect("the jitpilot binary runs");
    assert!(
        out.status.success(),
        "jitpilot {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn has_db(dir: &Path) -> bool {
    dir.join("jitpilot.db").exists()
}

#[test]
fn data_dir_is_the_flag_else_the_variable_else_the_platform_dir() {
    let home = tempfile::tempdir().unwrap();
    let from_var = tempfile::tempdir().unwrap();
    let from_flag = tempfile::tempdir().unwrap();
    let platform = home.path().join(".local/share/jitpilot");

    // The flag wins over the variable.
    let flag = from_flag.path().to_str().unwrap();
    jitpilot(
        &[
            ("HOME", home.path()),
            ("JITPILOT_DATA_DIR", from_var.path()),
        ],
        None,
        &["--data-dir", flag, "deploy"],
    );
    assert!(has_db(from_flag.path()));
    assert!(!has_db(from_var.path()));
    assert!(!has_db(&platform));

    // The variable wins over the platform dir.
    jitpilot(
        &[
            ("HOME", home.path()),
            ("JITPILOT_DATA_DIR", from_var.path()),
        ],
        None,
        &["deploy"],
    );
    assert!(has_db(from_var.path()));
    assert!(!has_db(&platform));

    // Neither: the platform data dir under HOME.
    jitpilot(&[("HOME", home.path())], None, &["deploy"]);
    assert!(has_db(&platform), "no database in {}", platform.display());
}

#[test]
fn logs_go_to_the_data_dir_filtered_by_rust_log_never_to_stdout() {
    let quiet = tempfile::tempdir().unwrap();
    let out = jitpilot(
        &[("JITPILOT_DATA_DIR", quiet.path())],
        Some("warn"),
        &["deploy"],
    );
    let log = quiet.path().join("logs/jitpilot.log");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !text.contains(" INFO "),
        "RUST_LOG=warn still logged INFO: {text}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains(" INFO ") && !stdout.contains(" WARN "));

    // No RUST_LOG: info and above.
    let default = tempfile::tempdir().unwrap();
    let out = jitpilot(&[("JITPILOT_DATA_DIR", default.path())], None, &["deploy"]);
    let text = std::fs::read_to_string(default.path().join("logs/jitpilot.log"))
        .expect("the log file exists");
    assert!(
        text.contains(" INFO "),
        "default-level lines logged: {text}"
    );
    for stream in [&out.stdout, &out.stderr] {
        let s = String::from_utf8_lossy(stream);
        assert!(
            !s.contains(" INFO "),
            "a log line reached the terminal: {s}"
        );
    }
}

#[test]
fn deploy_streams_stack_events_on_stderr_and_the_result_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let out = jitpilot(&[("JITPILOT_DATA_DIR", dir.path())], None, &["deploy"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Each resource's progress, as CloudFormation prints it.
    for needle in [
        "CREATE_IN_PROGRESS",
        "CREATE_COMPLETE",
        "AWS::IoT::TopicRule",
        "AWS::DynamoDB::Table",
    ] {
        assert!(stderr.contains(needle), "stderr lacks {needle}: {stderr}");
    }
    assert!(
        stdout.starts_with("Stack CertRotation: CREATE_COMPLETE"),
        "stdout: {stdout}"
    );
    assert!(
        !stdout.contains("CREATE_IN_PROGRESS"),
        "events went to stdout: {stdout}"
    );
}
