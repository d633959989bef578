//! The deadlines of `tests/support/process.rs` fire: a server that never
//! says where it listens, one that dies first, and a command that hangs
//! each fail their test at once with what they wrote to stderr, instead
//! of blocking the suite. Every other test's waits on programs rely on it.

mod support;

use std::process::Command;
use std::time::Duration;
use support::process::ChildServer;
use support::Bounded;

#[test]
fn a_silent_server_fails_within_its_deadline_with_its_stderr() {
    let result = std::panic::catch_unwind(|| {
        ChildServer::start_within(
            Command::new("sh").args(["-c", "echo starting up >&2; exec sleep 600"]),
            "silent",
            Duration::from_secs(2),
        )
    });
    let msg = panic_message(result.err().expect("a panic"));
    assert!(msg.contains("printed nothing within"), "{msg}");
    assert!(msg.contains("starting up"), "{msg}");
}

#[test]
fn a_server_that_exits_says_so() {
    let result = std::panic::catch_unwind(|| {
        ChildServer::start(
            Command::new("sh").args(["-c", "echo boom >&2; exit 3"]),
            "dying",
        )
    });
    let msg = panic_message(result.err().expect("a panic"));
    assert!(msg.contains("exited") && msg.contains("boom"), "{msg}");
}

#[test]
fn a_hung_command_is_killed_at_its_deadline() {
    let err = Command::new("sh")
        .args(["-c", "echo partial >&2; exec sleep 600"])
        .output_within(Duration::from_secs(2))
        .expect_err("timed out");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert!(err.to_string().contains("partial"), "{err}");
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_else(|| format!("{panic:?}"))
}
