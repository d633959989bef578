//! `sim-device`, the binary, against a real `jitpilot serve`: it onboards a
//! device from its credential folder, and `--fsync` really fsyncs every
//! credential write and its folder (counted with strace, so removing an
//! fsync from `creds.rs` fails this test), while the default does not.
//!
//! Needs the `jitpilot` binary beside `sim-device` (`cargo test --workspace`
//! builds both) and `strace` (`scripts/test` installs it).

// The workspace's test-support module for programs run under deadlines
// (std only, so this crate can share it).
#[allow(dead_code)]
#[path = "../../tests/support/process.rs"]
mod process;

use process::{Bounded, ChildServer};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `jitpilot` binary of the same build as `sim-device`.
fn jitpilot_bin() -> PathBuf {
    let sim = Path::new(env!("CARGO_BIN_EXE_sim-device"));
    let bin = sim.with_file_name(format!("jitpilot{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build the workspace first (`cargo test --workspace` builds it)",
        bin.display()
    );
    bin
}

fn jitpilot(data_dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(jitpilot_bin())
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .bounded_output()
        .expect("run jitpilot");
    assert!(
        out.status.success(),
        "jitpilot {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `jitpilot serve` on free ports; killed on drop.
struct Serve {
    _child: ChildServer,
    endpoint: String,
}

fn serve(data_dir: &Path) -> Serve {
    let child = ChildServer::start(
        Command::new(jitpilot_bin())
            .arg("--data-dir")
            .arg(data_dir)
            .args(["serve", "--json", "--mqtt-addr", "127.0.0.1:0"])
            .args(["--api-addr", "127.0.0.1:0"]),
        "jitpilot serve",
    );
    let doc = child.json();
    Serve {
        endpoint: doc["endpoint"].as_str().expect("endpoint").to_string(),
        _child: child,
    }
}

/// Runs `sim-device ARGS` under strace, counting fsync/fdatasync calls.
fn sim_device_traced(args: &[&str], trace: &Path) -> (Output, usize) {
    let out = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "signal=none",
            "-e",
            "trace=fsync,fdatasync",
            "-o",
        ])
        .arg(trace)
        .arg(env!("CARGO_BIN_EXE_sim-device"))
        .args(args)
        .bounded_output()
        .expect("strace is missing: install it (`apt-get install strace`; scripts/test does)");
    let text = std::fs::read_to_string(trace).unwrap_or_default();
    let syncs = text
        .lines()
        .filter(|l| l.contains("fsync(") || l.contains("fdatasync("))
        .count();
    (out, syncs)
}

fn device_dirs(data_dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(data_dir.join("devices"))
        .expect("devices/")
        .map(|e| e.expect("entry").path())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn sim_device_onboards_and_fsync_is_real() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path();
    jitpilot(data_dir, &["deploy"]);
    jitpilot(data_dir, &["init", "--devices", "2"]);
    let server = serve(data_dir);
    let devices = device_dirs(data_dir);
    assert!(devices.len() >= 2, "init made {devices:?}");

    // --fsync: each of the four rotation writes (key, CSR, cert, ack marker)
    // fsyncs its file and its folder.
    let creds = devices[0].to_str().expect("utf-8 path");
    let (out, syncs) = sim_device_traced(
        &[
            "--endpoint",
            &server.endpoint,
            "--creds",
            creds,
            "--fsync",
            "--json",
            "onboard",
        ],
        &dir.path().join("fsync.trace"),
    );
    assert!(
        out.status.success(),
        "sim-device --fsync onboard failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json outcome");
    let cert_id = outcome["manufacturer_cert_id"]
        .as_str()
        .or_else(|| outcome["manufacturerCertId"].as_str())
        .unwrap_or_else(|| panic!("no manufacturer cert id in {outcome}"));
    let acked = std::fs::read_to_string(devices[0].join("manufacturer.acked")).expect("ack marker");
    assert_eq!(acked.trim(), cert_id);
    assert!(
        syncs >= 8,
        "sim-device --fsync made only {syncs} fsync calls for 4 credential writes (file + folder each)"
    );

    // Without --fsync: the same walkthrough, no fsync at all.
    let creds = devices[1].to_str().expect("utf-8 path");
    let (out, syncs) = sim_device_traced(
        &["--endpoint", &server.endpoint, "--creds", creds, "onboard"],
        &dir.path().join("nosync.trace"),
    );
    assert!(
        out.status.success(),
        "sim-device onboard failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(devices[1].join("manufacturer.cert.pem").exists());
    assert_eq!(syncs, 0, "sim-device without --fsync fsynced {syncs} times");
}

#[test]
fn sim_device_without_credentials_says_to_run_init() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_sim-device"))
        .args(["--endpoint", "127.0.0.1:1", "--creds"])
        .arg(dir.path())
        .arg("onboard")
        .bounded_output()
        .expect("run sim-device");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("jitpilot init"), "stderr: {stderr}");
}
