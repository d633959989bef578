//! The README's key table, pressed as keys in a real terminal (tmux): what
//! Tab, h/l, z, ?, /, p, m, f, c and T each do on screen, and what they do
//! to the cloud and the devices — j/k move the selection, `/` filters,
//! `p` holds new rows back, `m` switches the terminal's mouse reporting,
//! `f` drops a response, kills a device mid-step (its connection is lost
//! on the cloud, and it resumes from its credential folder) or revokes a
//! certificate, `c`/`T` (confirmed)
//! clean up and tear down, as `jitpilot status` sees it; `NO_COLOR` read
//! from the environment, and no log line ever drawn on screen.
//!
//! Needs `tmux` (scripts/test installs it).

mod support;

use std::path::Path;
use support::api::{aws, env_keys, json, ok};
use support::tmux::{shell_quote, Tmux};

/// The pane whose border is drawn thick (`┏ Name`): the focused one.
fn focused(screen: &str) -> Option<&'static str> {
    ["Stack", "CAs", "Devices", "MQTT traffic"]
        .into_iter()
        .find(|name| screen.contains(&format!("┏ {name}")))
}

fn start(tmux: &Tmux, data: &Path, env: &str) {
    tmux.wait_for("a shell prompt", |s| s.contains("ready$"));
    tmux.keys(&[
        &format!(
            "{env} {} --data-dir {} --mqtt-addr 127.0.0.1:0 --api-addr 127.0.0.1:0",
            shell_quote(Path::new(env!("CARGO_BIN_EXE_jitpilot"))),
            shell_quote(data)
        ),
        "Enter",
    ]);
    tmux.wait_for("the TUI", |s| {
        s.contains("not deployed") && focused(s).is_some()
    });
}

#[test]
fn every_key_of_the_readme_does_what_it_says() {
    let data = tempfile::tempdir().expect("tempdir");
    let tmux = Tmux::start(&format!("jitpilot-keys-{}", std::process::id()), 160, 50);
    start(&tmux, data.path(), "");

    // Tab / l / h move the focus (the thick border) between panes.
    let first = focused(&tmux.capture()).expect("a focused pane");
    tmux.keys(&["Tab"]);
    let second = tmux.wait_for("Tab to move the focus", |s| {
        focused(s).is_some_and(|f| f != first)
    });
    let second = focused(&second).expect("focus");
    tmux.keys(&["h"]);
    tmux.wait_for("h to move the focus back", |s| focused(s) == Some(first));
    tmux.keys(&["l"]);
    tmux.wait_for("l to move it forward again", |s| focused(s) == Some(second));

    // z zooms the focused pane: the other panes are gone; z again restores.
    tmux.keys(&["z"]);
    tmux.wait_for("the focused pane zoomed", |s| {
        s.contains(&format!("┏ {second}"))
            && ["Stack", "CAs", "Devices", "MQTT traffic"]
                .iter()
                .filter(|p| **p != second)
                .all(|p| !s.contains(&format!("╭ {p}")))
    });
    tmux.keys(&["z"]);
    tmux.wait_for("all four panes again", |s| {
        s.contains("Stack") && s.contains("CAs") && s.contains("MQTT traffic")
    });

    // ? opens the help with the key table; Esc closes it.
    tmux.keys(&["?"]);
    tmux.wait_for("the help", |s| {
        s.contains("this help") && s.contains("close help")
    });
    tmux.keys(&["Escape"]);
    tmux.wait_for("the help closed", |s| !s.contains("close help"));

    // / edits the traffic filter; Esc leaves it.
    tmux.keys(&["/"]);
    tmux.wait_for("the filter editor", |s| s.contains("apply filter"));
    tmux.keys(&["t", "y", "p", "e", ":", "j", "i", "t", "p"]);
    tmux.wait_for("the typed filter", |s| s.contains("type:jitp"));
    tmux.keys(&["Escape"]);
    tmux.wait_for("the filter editor closed", |s| !s.contains("apply filter"));

    // p freezes the traffic pane (FROZEN in its title, not only in the
    // status line, which the next message overwrites); p again unfreezes.
    tmux.keys(&["p"]);
    tmux.wait_for("the traffic frozen", |s| s.contains("FROZEN"));
    tmux.keys(&["p"]);
    tmux.wait_for("the traffic unfrozen", |s| !s.contains("FROZEN"));

    // m turns mouse capture on (off by default so text stays copyable): the
    // terminal's own mouse reporting, as tmux sees it.
    assert!(!tmux.mouse_reporting(), "mouse capture is off by default");
    tmux.keys(&["m"]);
    tmux.wait_until("mouse capture on", || tmux.mouse_reporting());
    tmux.keys(&["m"]);
    tmux.wait_until("mouse capture off", || !tmux.mouse_reporting());

    // f opens the fault menu; Esc cancels.
    tmux.keys(&["f"]);
    tmux.wait_for("the fault menu", |s| {
        s.contains("drop next response") && s.contains("revoke cert")
    });
    tmux.keys(&["Escape"]);
    tmux.wait_for("the fault menu closed", |s| !s.contains("revoke cert"));

    // c and T ask before they delete anything; n cancels.
    for key in ["c", "T"] {
        tmux.keys(&[key]);
        tmux.wait_for(&format!("{key}'s confirmation"), |s| {
            s.contains("yes, do it")
        });
        tmux.keys(&["n"]);
        tmux.wait_for("the confirmation closed", |s| !s.contains("yes, do it"));
    }

    // Nothing the log records ever reaches the screen.
    let screen = tmux.capture();
    for level in [" INFO ", " WARN ", " ERROR ", " DEBUG "] {
        assert!(!screen.contains(level), "a log line on screen:\n{screen}");
    }
    tmux.keys(&["q"]);
}

#[test]
fn no_color_from_the_environment_draws_without_colours() {
    let data = tempfile::tempdir().expect("tempdir");
    let tmux = Tmux::start(&format!("jitpilot-nocolor-{}", std::process::id()), 120, 40);
    start(&tmux, data.path(), "NO_COLOR=1");
    let plain = tmux.capture_with_escapes();
    // Colours are SGR 30-37/90-97 (foreground) or 38;… (256/RGB).
    let coloured = |s: &str| {
        s.split("\x1b[").skip(1).any(|seq| {
            let params = seq.split('m').next().unwrap_or("");
            params.split(';').any(|p| {
                matches!(
                    p.parse::<u32>(),
                    Ok(30..=38 | 90..=97 | 40..=48 | 100..=107)
                )
            })
        })
    };
    assert!(
        !coloured(&plain),
        "NO_COLOR=1 still drew colours:\n{plain:?}"
    );
    tmux.keys(&["q"]);
    tmux.wait_quit();

    // The same terminal without NO_COLOR does draw colours: the check can fail.
    start(&tmux, data.path(), "");
    let colourful = tmux.capture_with_escapes();
    assert!(
        coloured(&colourful),
        "no colours without NO_COLOR:\n{colourful:?}"
    );
    tmux.keys(&["q"]);
}

/// The lines of the MQTT traffic pane (below its title, above the footer).
fn traffic_lines(screen: &str) -> Vec<&str> {
    screen
        .lines()
        .skip_while(|l| !l.contains("MQTT traffic"))
        .skip(1)
        .take_while(|l| !l.starts_with('╰') && !l.starts_with('┗'))
        .collect()
}

/// The serial in the device detail's title (`Device SERIAL (Esc back…`).
fn detail_serial(screen: &str) -> Option<String> {
    let rest = &screen[screen.find("Device ")? + "Device ".len()..];
    let serial: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    (!serial.is_empty() && rest[serial.len()..].starts_with(" (Esc")).then_some(serial)
}

/// The row of the devices table for `serial` (above the traffic pane).
fn device_line<'a>(screen: &'a str, serial: &str) -> Option<&'a str> {
    screen
        .lines()
        .take_while(|l| !l.contains("MQTT traffic"))
        .find(|l| l.contains(serial) && (l.contains('┃') || l.contains('│')))
}

/// Tab until the Devices pane has the focus (`s`, `f`, j/k act on its selection).
fn focus_devices(tmux: &Tmux) {
    for _ in 0..4 {
        if focused(&tmux.capture()) == Some("Devices") {
            return;
        }
        let before = focused(&tmux.capture());
        tmux.keys(&["Tab"]);
        tmux.wait_for("Tab to move the focus", |s| focused(s) != before);
    }
    assert_eq!(focused(&tmux.capture()), Some("Devices"));
}

/// Waits until Escape has closed the device detail. Keys sent before that
/// may reach the TUI in the same read as the Escape, which then reads as
/// Alt+key: the detail stays open and the key does something else.
fn back_from_the_detail(tmux: &Tmux) {
    tmux.wait_for("the main screen", |s| {
        detail_serial(s).is_none() && s.contains("MQTT traffic")
    });
}

/// Opens the selected device's detail, reads its serial, goes back.
fn selected_serial(tmux: &Tmux) -> String {
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("the device detail", |s| detail_serial(s).is_some());
    tmux.keys(&["Escape"]);
    back_from_the_detail(tmux);
    detail_serial(&screen).expect("a serial")
}

/// `jitpilot status --json` beside the running TUI.
fn status(data: &Path) -> serde_json::Value {
    support::status_json(data)
}

#[test]
fn keys_act_on_the_cloud_and_the_devices() {
    let data = tempfile::tempdir().expect("tempdir");
    let tmux = Tmux::start(&format!("jitpilot-acts-{}", std::process::id()), 160, 50);
    start(&tmux, data.path(), "");

    tmux.deploy_init_and_spawn(1);

    // j and k move the selection: Enter opens the selected device.
    focus_devices(&tmux);
    tmux.keys(&["g"]);
    let first = selected_serial(&tmux);
    tmux.keys(&["j"]);
    let second = selected_serial(&tmux);
    assert_ne!(first, second, "j selects the next device");
    tmux.keys(&["k"]);
    assert_eq!(selected_serial(&tmux), first, "k selects the previous one");

    // Step the first device through 3a: traffic arrives.
    tmux.keys(&["s"]);
    tmux.wait_for("the first device through 3a", |s| {
        device_line(s, &first)
            .is_some_and(|l| l.contains("THING_CREATED") && !l.contains("running"))
    });

    // / applies a filter: only JITP rows stay; Esc in the editor clears it.
    tmux.keys(&["/"]);
    tmux.keys(&["t", "y", "p", "e", ":", "j", "i", "t", "p", "Enter"]);
    // Waited for whole (a capture can catch the pane half redrawn).
    tmux.wait_for("type:jitp applied: JITP rows stay, packets hidden", |s| {
        let rows = traffic_lines(s);
        s.contains("filter /type:jitp")
            && rows.iter().any(|l| l.contains(&first))
            && !rows
                .iter()
                .any(|l| l.contains("CONNACK") || l.contains("SUBSCRIBE"))
    });
    tmux.keys(&["/", "Escape"]);
    tmux.wait_for("the filter cleared, packets back", |s| {
        !s.contains("filter /") && traffic_lines(s).iter().any(|l| l.contains("CONNACK"))
    });

    // p freezes the traffic: the second device's 3a does not appear until
    // p again.
    tmux.keys(&["p"]);
    tmux.wait_for("the traffic frozen", |s| s.contains("FROZEN"));
    focus_devices(&tmux);
    tmux.keys(&["g", "j", "s"]);
    let screen = tmux.wait_for("the second device through 3a", |s| {
        device_line(s, &second)
            .is_some_and(|l| l.contains("THING_CREATED") && !l.contains("running"))
    });
    assert!(
        !traffic_lines(&screen).iter().any(|l| l.contains(&second)),
        "frozen traffic showed new rows:\n{screen}"
    );
    tmux.keys(&["p"]);
    tmux.wait_for("the second device's rows after unfreezing", |s| {
        !s.contains("FROZEN") && traffic_lines(s).iter().any(|l| l.contains(&second))
    });
    focus_devices(&tmux);

    // f 1: the second device drops the next response, asks again, and
    // completes 3b with the repeated answer.
    tmux.keys(&["f"]);
    tmux.wait_for("the fault menu", |s| s.contains("drop next response"));
    tmux.keys(&["1"]);
    // Armed (the status line says so only until the next message): the
    // menu closed; the key after it is read after it.
    tmux.wait_for("the fault menu closed", |s| {
        !s.contains("drop next response")
    });
    tmux.keys(&["s"]);
    tmux.wait_for("the second device through 3b", |s| {
        device_line(s, &second)
            .is_some_and(|l| l.contains("MAN_CERT_CREATED") && !l.contains("running"))
    });
    tmux.keys(&["Enter"]);
    // The device's own count in its detail: the CSR went out twice (the
    // first answer dropped). Waited for whole: a capture can catch the
    // detail half drawn over the main screen.
    let tries = |s: &str| {
        s.lines()
            .find_map(|l| l.split(" tries ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string)
    };
    tmux.wait_for("the CSR sent twice: tries 2 in the timeline", |s| {
        detail_serial(s).as_deref() == Some(second.as_str()) && tries(s).as_deref() == Some("2")
    });
    tmux.keys(&["Escape"]);
    back_from_the_detail(&tmux);

    // f 3 revokes the first device's certificate (on the cloud), and its
    // next step is refused.
    tmux.keys(&["g", "f"]);
    tmux.wait_for("the fault menu", |s| s.contains("revoke cert"));
    tmux.keys(&["3"]);
    // The status line names the call only briefly (the result replaces
    // it): the cloud's state is what is checked.
    let vendor = status(data.path())["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .find(|d| d["SerialNumber"] == first.as_str())
        .and_then(|d| d["VendorCertId"].as_str())
        .expect("the first device's VendorCertId")
        .to_string();
    // Waited for with the screen in the message: the status line says
    // what the TUI did with the key.
    tmux.wait_until(&format!("{vendor} REVOKED in the cloud"), || {
        status(data.path())["certificates"]
            .as_array()
            .expect("certificates")
            .iter()
            .any(|c| c["id"] == vendor.as_str() && c["status"] == "REVOKED")
    });
    tmux.keys(&["s"]);
    tmux.wait_for("the revoked device's step refused", |s| {
        s.contains("failed 1")
    });

    // c, y: cleanup deletes the CAs and devices; T, y: teardown the stack.
    tmux.keys(&["c"]);
    tmux.wait_for("cleanup's confirmation", |s| s.contains("yes, do it"));
    tmux.keys(&["y"]);
    tmux.wait_for("the CAs gone", |s| s.contains("CAs 0 registered"));
    let report = status(data.path());
    assert_eq!(
        report["cas"].as_array().map(Vec::len),
        Some(0),
        "{report:#}"
    );
    tmux.keys(&["T"]);
    tmux.wait_for("teardown's confirmation", |s| s.contains("yes, do it"));
    tmux.keys(&["y"]);
    tmux.wait_for("the stack gone", |s| s.contains("Stack not deployed"));
    assert!(status(data.path())["stack"].is_null());

    // Everything the log recorded stayed off the screen.
    let screen = tmux.capture();
    let log = std::fs::read_to_string(data.path().join("logs/jitpilot.log")).expect("the log");
    assert!(log.lines().count() > 5, "the session logged: {log}");
    for line in log.lines() {
        let stamp: String = line.chars().take(19).collect();
        assert!(
            !screen.contains(&stamp),
            "a log line on screen ({line}):\n{screen}"
        );
    }
    tmux.keys(&["q"]);
}

/// Switches the stack's `rule_create_man_cert` off or on through the AWS
/// API the TUI serves, with the aws CLI as a user would (`get-topic-rule`,
/// `replace-topic-rule` with `ruleDisabled`). Off, no CSR is answered.
fn set_csr_rule(data: &Path, home: &Path, enabled: bool) {
    let keys = env_keys(data);
    let name = ["--rule-name", "rule_create_man_cert"];
    let got = ok(
        aws(
            &keys,
            home,
            &[&["iot", "get-topic-rule"][..], &name[..]].concat(),
        ),
        "aws iot get-topic-rule",
    );
    let rule = &json(&got)["rule"];
    let mut payload = serde_json::json!({
        "sql": rule["sql"],
        "actions": rule["actions"],
        "ruleDisabled": !enabled,
    });
    if let Some(version) = rule["awsIotSqlVersion"].as_str() {
        payload["awsIotSqlVersion"] = version.into();
    }
    let payload = payload.to_string();
    ok(
        aws(
            &keys,
            home,
            &[
                &["iot", "replace-topic-rule"][..],
                &name[..],
                &["--topic-rule-payload", &payload][..],
            ]
            .concat(),
        ),
        "aws iot replace-topic-rule",
    );
}

/// The log's lines saying `serial`'s connection was lost (not closed with
/// a DISCONNECT): what the endpoint records when a device stops dead.
fn connections_lost(data: &Path, serial: &str) -> usize {
    std::fs::read_to_string(data.join("logs/jitpilot.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("disconnected") && l.contains(serial))
        .filter(|l| l.contains("connection lost"))
        .count()
}

/// The device's row in the cloud's table (`jitpilot status --json`).
fn cr_state(data: &Path, serial: &str) -> serde_json::Value {
    status(data)["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .find(|d| d["SerialNumber"] == serial)
        .map(|d| d["CrState"].clone())
        .unwrap_or_default()
}

#[test]
fn f_2_kills_a_device_mid_step_and_it_resumes_from_its_folder() {
    let data = tempfile::tempdir().expect("tempdir");
    let home = tempfile::tempdir().expect("tempdir");
    let tmux = Tmux::start(&format!("jitpilot-kill-{}", std::process::id()), 160, 50);
    start(&tmux, data.path(), "");
    tmux.deploy_init_and_spawn(0);
    focus_devices(&tmux);
    tmux.keys(&["g"]);
    let serial = selected_serial(&tmux);
    let folder = data.path().join("devices").join(&serial);
    let manufacturer_cert = folder.join("manufacturer.cert.pem");
    tmux.keys(&["s"]);
    tmux.wait_for("the device through 3a", |s| {
        device_line(s, &serial)
            .is_some_and(|l| l.contains("THING_CREATED") && !l.contains("running"))
    });

    // The cloud stops answering CSRs: step 3b stays in flight, the device
    // connected and waiting for its answer (it would resend for ~57 s).
    set_csr_rule(data.path(), home.path(), false);
    let lost_before = connections_lost(data.path(), &serial);
    tmux.keys(&["s"]);
    tmux.wait_for("the device's CSR at the cloud", |s| {
        device_line(s, &serial).is_some_and(|l| l.contains("running"))
            && traffic_lines(s)
                .iter()
                .any(|l| l.contains('→') && l.contains("PUBLISH") && l.contains("create-man-cert/"))
    });

    // f 2 kills it: the row says so, and stays so.
    tmux.keys(&["f"]);
    tmux.wait_for("the fault menu", |s| s.contains("kill device"));
    tmux.keys(&["2"]);
    tmux.wait_for("the device killed, no longer running", |s| {
        device_line(s, &serial)
            .is_some_and(|l| l.contains("killed from the UI") && !l.contains("running"))
    });
    // The cloud saw its connection lost: the task was stopped dead, not
    // left to give up and DISCONNECT at the end of its retries.
    tmux.wait_until("the endpoint to log the device's connection lost", || {
        connections_lost(data.path(), &serial) > lost_before
    });
    assert_eq!(cr_state(data.path(), &serial), "CR_THING_CREATED");
    assert!(
        !manufacturer_cert.exists(),
        "no manufacturer certificate was issued"
    );

    // The cloud answers again; stepped again, the device resumes 3b from
    // its credential folder and completes it.
    set_csr_rule(data.path(), home.path(), true);
    tmux.keys(&["s"]);
    tmux.wait_for("the resumed device through 3b", |s| {
        device_line(s, &serial)
            .is_some_and(|l| l.contains("MAN_CERT_CREATED") && !l.contains("running"))
    });
    assert!(manufacturer_cert.exists(), "3b wrote {manufacturer_cert:?}");
    assert_eq!(cr_state(data.path(), &serial), "CR_MAN_CERT_CREATED");
    tmux.keys(&["q"]);
}
