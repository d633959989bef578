//! A stack's function running its own code on the local cloud, through the
//! real binary: `jitpilot deploy --function-code` opts the stack's rotation
//! function into a package (a custom-runtime `bootstrap` script starting
//! awslambdaric, as `provided.al2023` functions may), the JITP rule invokes
//! it through the Lambda Runtime API, and its output lands in
//! `jitpilot.log`, escaped. `--function-code builtin` brings the built-in
//! back. Needs python3 with awslambdaric (scripts/test installs it).

mod support;
use support::Bounded;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;
use support::endpoint::{serve_command, Server};

const SERIAL: &str = "IUQWXALODJESC1";

fn jitpilot(dir: &Path, args: &[&str]) -> Output {
    support::jitpilot()
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("JITPILOT_FUNCTION_CODE")
        .env_remove("RUST_LOG")
        .bounded_output()
        .expect("the jitpilot binary runs")
}

fn ok(dir: &Path, args: &[&str]) -> Output {
    let out = jitpilot(dir, args);
    assert!(
        out.status.success(),
        "jitpilot {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A package whose `bootstrap` starts the test handlers under awslambdaric
/// with the host's real python (functions get no shell environment).
fn package(root: &Path) -> std::path::PathBuf {
    let python = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .bounded_output()
        .expect("python3 runs");
    let python = String::from_utf8_lossy(&python.stdout).trim().to_string();
    let pkg = root.join("package");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/lambda_handler.py"),
        pkg.join("lambda_handler.py"),
    )
    .unwrap();
    let bootstrap = pkg.join("bootstrap");
    std::fs::write(
        &bootstrap,
        format!("#!/bin/sh\nPYTHONPATH=\"$LAMBDA_TASK_ROOT\" exec '{python}' -m awslambdaric lambda_handler.echo\n"),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    pkg
}

/// `jitpilot serve` on the data dir, killed when dropped.
fn serve(dir: &Path) -> Server {
    Server::start(serve_command(dir).env_remove("RUST_LOG"))
}

fn log_text(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("logs").join("jitpilot.log")).unwrap_or_default()
}

#[test]
fn the_jitp_rule_invokes_the_stacks_own_code_through_the_runtime_api() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let pkg = package(dir.path());
    let deployed = ok(&data, &["deploy", "--function-code", pkg.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&deployed.stderr);
    assert!(
        said.contains("CertRotation-cert-rotation: runs its own code from"),
        "{said}"
    );
    ok(&data, &["init"]);
    let server = serve(&data);
    // The device's JITP connect makes rule_jitp invoke the function: here
    // the echo handler, not the built-in rotation function.
    let _ = jitpilot(&data, &["device", SERIAL, "jitp", "--json"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let log = loop {
        let log = log_text(&data);
        if log.contains("echo invoked with") || std::time::Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let echoed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("function output") && l.contains("echo invoked with"))
        .collect();
    assert!(
        !echoed.is_empty(),
        "the function's stdout in the log:\n{log}"
    );
    assert!(
        echoed[0].contains("certificates/registered"),
        "the rule's event: {}",
        echoed[0]
    );
    assert!(log.contains("function started (cold start)"), "{log}");
    // Its stderr too, with the control character escaped, never raw.
    assert!(log.contains("\\u{1b}[31m control character"), "{log}");
    assert!(!log.contains('\u{1b}'), "a raw escape character in the log");
    drop(server);
    // The built-in did not run: the device's row was never moved on.
    let status: Value = serde_json::from_slice(&ok(&data, &["status", "--json"]).stdout).unwrap();
    let text = status.to_string();
    assert!(!text.contains("CR_THING_CREATED"), "{status:#}");

    // Back to the built-in: the next JITP is handled by it.
    let back = ok(&data, &["deploy", "--function-code", "builtin"]);
    assert!(String::from_utf8_lossy(&back.stderr).contains("runs the built-in function"));
    assert!(!data
        .join("lambda")
        .join("CertRotation-cert-rotation")
        .exists());
}

/// jitpilot's own `lambda/` binary, built beside this test by
/// `cargo test --workspace` (or `cargo build -p jitpilot-lambda`).
fn bootstrap() -> std::path::PathBuf {
    let exe = Path::new(env!("CARGO_BIN_EXE_jitpilot"))
        .parent()
        .expect("target dir")
        .join("bootstrap");
    assert!(
        exe.is_file(),
        "{} is missing: run `cargo build -p jitpilot-lambda` (cargo test --workspace builds it)",
        exe.display()
    );
    exe
}

#[test]
fn the_lambda_bootstrap_runs_3a_3b_3c_as_the_rotation_function_over_the_aws_api() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let exe = bootstrap();
    ok(&data, &["deploy", "--function-code", exe.to_str().unwrap()]);
    ok(&data, &["init"]);
    let server = serve(&data);
    // The device onboards as against AWS: each step's rule invokes the
    // bootstrap, whose SDK calls reach the local cloud's AWS API.
    let onboard = jitpilot(&data, &["device", SERIAL, "onboard", "--json"]);
    let log = log_text(&data);
    assert!(
        onboard.status.success(),
        "onboard failed:\n{}\n{}\n--- log ---\n{log}",
        String::from_utf8_lossy(&onboard.stdout),
        String::from_utf8_lossy(&onboard.stderr)
    );
    let doc: Value = serde_json::from_slice(&onboard.stdout).expect("JSON");
    assert_eq!(doc["crState"], "CR_CERT_ROTATION_COMPLETED", "{doc:#}");
    // The bootstrap did the work, not the built-in: one warm process for
    // the three steps, its own rotation decisions in its output.
    let cold_starts: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("function started (cold start)"))
        .collect();
    assert_eq!(cold_starts.len(), 1, "{log}");
    assert!(cold_starts[0].contains("bootstrap"), "{}", cold_starts[0]);
    for decision in [
        "rotation.thing_created",
        "rotation.man_cert_created",
        "rotation.cert_rotation_completed",
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains("function output") && l.contains(decision)),
            "{decision} in the bootstrap's output:\n{log}"
        );
    }
    // Its SDK calls went through the AWS API.
    assert!(log.contains("registered ACTIVE through the API"), "{log}");
    drop(server);
}
