//! The README's key table, pressed as keys in a real terminal (tmux): what
//! Tab, h/l, z, ?, /, p, m, f, c and T each do on screen, `NO_COLOR` read
//! from the environment, and no log line ever drawn on screen.
//!
//! Needs `tmux` (scripts/test installs it).

mod tmux_support;
use std::path::Path;
use tmux_support::{shell_quote, Tmux};

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

    // p freezes the traffic pane, p again unfreezes.
    let before = tmux.capture();
    tmux.keys(&["p"]);
    let frozen = tmux.wait_for("the traffic frozen", |s| {
        s.contains("frozen") && !before.contains("frozen")
    });
    assert!(frozen.contains("frozen"));
    tmux.keys(&["p"]);
    tmux.wait_for("the traffic unfrozen", |s| !s.contains("frozen"));

    // m turns mouse capture on (off by default so text stays copyable).
    tmux.keys(&["m"]);
    tmux.wait_for("mouse capture on", |s| {
        s.to_lowercase().contains("mouse on")
    });
    tmux.keys(&["m"]);
    tmux.wait_for("mouse capture off", |s| {
        !s.to_lowercase().contains("mouse on")
    });

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
    tmux.wait_for("the shell", |s| s.contains("ready$"));

    // The same terminal without NO_COLOR does draw colours: the check can fail.
    start(&tmux, data.path(), "");
    let colourful = tmux.capture_with_escapes();
    assert!(
        coloured(&colourful),
        "no colours without NO_COLOR:\n{colourful:?}"
    );
    tmux.keys(&["q"]);
}
