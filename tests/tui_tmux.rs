//! The real binary in a real terminal: `jitpilot` runs in a detached tmux
//! session and is driven by keys, the way a user would — deploy, init,
//! spawn 3 devices, step one device through 3a, 3b and 3c, onboard the rest —
//! and `capture-pane` must show the result in all four panes. Quitting must
//! leave the shell usable (raw mode off, alternate screen left).
//!
//! Needs `tmux` (scripts/test installs it). Every wait polls capture-pane
//! until a condition holds, with a generous timeout for busy machines.

mod support;

use std::path::Path;
use support::endpoint::serve_command;
use support::process::ChildServer;
use support::tmux::{shell_quote, Tmux};

/// The row of the devices table for `serial`.
fn device_line<'a>(screen: &'a str, serial: &str) -> Option<&'a str> {
    screen
        .lines()
        .find(|l| l.contains(serial) && l.contains('┃'))
}

/// The serial of the first row of the devices table.
/// The CAs pane's `certs` line of the Vendor CA.
fn vendor_ca_certs(screen: &str) -> Option<&str> {
    let mut lines = screen
        .lines()
        .skip_while(|l| !l.contains("Vendor CA ACTIVE"));
    lines.next()?;
    lines
        .take_while(|l| !l.contains("Manufacturer CA ACTIVE"))
        .find(|l| l.contains(" certs "))
}

fn first_serial(screen: &str) -> Option<String> {
    let mut lines = screen
        .lines()
        .skip_while(|l| !(l.contains("serial") && l.contains("last event")));
    lines.next()?;
    let row = lines.next()?;
    row.trim_start_matches(['┃', '│', ' '])
        .split_whitespace()
        .next()
        .map(str::to_string)
}

#[test]
fn drives_the_whole_walkthrough_by_keys() {
    let data = tempfile::tempdir().expect("tempdir");
    let bin = env!("CARGO_BIN_EXE_jitpilot");
    let tmux = Tmux::start(&format!("jitpilot-tui-{}", std::process::id()), 160, 50);
    tmux.wait_for("a shell prompt", |s| s.contains("ready$"));
    tmux.keys(&[
        &format!(
            "{} --data-dir {} --mqtt-addr 127.0.0.1:0 --api-addr 127.0.0.1:0",
            shell_quote(Path::new(bin)),
            shell_quote(data.path())
        ),
        "Enter",
    ]);
    tmux.wait_for("the TUI with its endpoint listening", |s| {
        s.contains("endpoint 127.0.0.1:") && s.contains("not deployed")
    });

    let screen = tmux.deploy_init_and_spawn(3);

    // Step the first device through 3a, 3b and 3c, one key each.
    tmux.keys(&["g"]);
    let serial = first_serial(&screen).expect("a first device row");
    for (step, state) in [
        ("3a", "THING_CREATED"),
        ("3b", "MAN_CERT_CREATED"),
        ("3c", "CERT_ROTATION_COMPLETED"),
    ] {
        tmux.keys(&["s"]);
        tmux.wait_for(&format!("{serial} through step {step} ({state})"), |s| {
            device_line(s, &serial).is_some_and(|l| l.contains(state) && !l.contains("running"))
        });
        if step == "3a" {
            // JITP registered the device's vendor cert: the CAs pane counts
            // it under the Vendor CA without a key press (no `r`).
            tmux.wait_for("the Vendor CA counting the JITP cert", |s| {
                vendor_ca_certs(s).is_some_and(|l| l.contains("ACTIVE 1"))
            });
        }
    }

    // Its timeline, as the sample's sequence diagram.
    tmux.keys(&["Enter"]);
    tmux.wait_for("the device's sequence diagram", |s| {
        s.contains(&format!("Device {serial}"))
            && s.contains("IoT Core")
            && s.contains("Lambda")
            && s.contains("DynamoDB")
            && s.contains("ack-man-cert")
    });
    tmux.keys(&["Escape"]);
    // Closed before the next key: an Escape read together with the key
    // after it is Alt+key to the TUI.
    tmux.wait_for("the device detail closed", |s| {
        !s.contains(&format!("Device {serial}")) && s.contains("MQTT traffic")
    });

    // Autopilot for the rest.
    tmux.keys(&["a"]);
    // The devices report first; the table read-back (CrState) follows.
    let screen = tmux.wait_for(
        "every device rotated, by the devices and by the table",
        |s| s.contains("4/4 rotated") && s.contains("rotated 4"),
    );

    // All four panes show the result.
    assert!(
        screen.contains("CertRotation · CREATE_COMPLETE"),
        "stack pane:\n{screen}"
    );
    assert!(
        screen.contains("Manufacturer CA ACTIVE"),
        "CAs pane:\n{screen}"
    );
    assert!(
        screen.contains("rotated 4"),
        "devices pane summary:\n{screen}"
    );
    assert!(
        screen.contains("MQTT traffic") && screen.contains("/cert-rotation/"),
        "traffic pane:\n{screen}"
    );

    // Quit: the shell comes back in a sane terminal mode.
    tmux.quit_and_check_the_terminal();
}

fn launch(tmux: &Tmux, data: &Path, addr: &str) {
    tmux.keys(&[
        &format!(
            "{} --data-dir {} --mqtt-addr {addr} --api-addr 127.0.0.1:0",
            shell_quote(Path::new(env!("CARGO_BIN_EXE_jitpilot"))),
            shell_quote(data)
        ),
        "Enter",
    ]);
}

#[test]
fn bad_situations_are_explained_on_screen() {
    let tmux = Tmux::start(&format!("jitpilot-tui-bad-{}", std::process::id()), 120, 40);
    tmux.wait_for("a shell prompt", |s| s.contains("ready$"));

    // The endpoint port is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let addr = taken.local_addr().expect("addr").to_string();
    let data = tempfile::tempdir().expect("tempdir");
    launch(&tmux, data.path(), &addr);
    let screen = tmux.wait_for("the port-taken explanation", |s| {
        s.contains("could not start") && s.contains("--mqtt-addr")
    });
    assert!(screen.contains(&addr), "names the address:\n{screen}");
    assert_eq!(
        screen.matches("--mqtt-addr").count(),
        1,
        "the advice is given once:\n{screen}"
    );
    tmux.quit_and_check_shell();
    drop(taken);

    // The data dir is owned by another jitpilot (here: `serve`).
    let owned = tempfile::tempdir().expect("tempdir");
    // serve prints one JSON line once it listens (and holds the lock).
    let serve = ChildServer::start(&mut serve_command(owned.path()), "jitpilot serve");
    assert!(
        serve.first_line.contains("endpoint"),
        "serve did not start: {}",
        serve.first_line
    );
    launch(&tmux, owned.path(), "127.0.0.1:0");
    // serve is killed when dropped, also when a wait below fails.
    tmux.wait_for("the data-dir-locked explanation", |s| {
        s.contains("Cannot open the local cloud") && s.contains("--data-dir")
    });
    tmux.quit_and_check_shell();
    drop(serve);
}
