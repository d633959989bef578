//! A real terminal for the TUI tests: a detached tmux session driven by
//! keys, read back with `capture-pane`. Every wait polls until a condition
//! holds, with a generous timeout for busy machines.

use super::Bounded;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub const TIMEOUT: Duration = Duration::from_secs(180);
pub const POLL: Duration = Duration::from_millis(200);

/// A tmux session, killed when dropped (also when the test fails).
pub struct Tmux {
    name: String,
}

impl Tmux {
    pub fn start(name: &str, width: u16, height: u16) -> Tmux {
        let ok = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                name,
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
            ])
            // A plain shell with a known prompt, whatever the user's rc files do.
            .arg("env PS1='ready$ ' bash --norc --noprofile")
            .bounded_status()
            .expect(
                "tmux is required for this test: apt-get install tmux (scripts/test installs it)",
            )
            .success();
        assert!(ok, "tmux new-session failed");
        Tmux {
            name: name.to_string(),
        }
    }

    pub fn keys(&self, keys: &[&str]) {
        let ok = Command::new("tmux")
            .args(["send-keys", "-t", &self.name])
            .args(keys)
            .bounded_status()
            .expect("tmux send-keys")
            .success();
        assert!(ok, "tmux send-keys {keys:?} failed");
    }

    pub fn capture(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .bounded_output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls the screen until `ready` holds; panics with the screen on timeout.
    pub fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.capture();
            if ready(&screen) {
                return screen;
            }
            if start.elapsed() > TIMEOUT {
                panic!("timed out waiting for {what}; the screen was:\n{screen}");
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .bounded_status();
    }
}

/// `p` quoted for the shell.
pub fn shell_quote(p: &Path) -> String {
    quote(&p.display().to_string())
}

/// `s` quoted for the shell.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

impl Tmux {
    /// Waits until the TUI has left the terminal and the shell prompt is
    /// back: keys typed before that would be read by the quitting TUI.
    pub fn wait_quit(&self) {
        self.wait_for("the TUI to quit", |s| {
            !s.contains("jitpilot ·") && s.lines().any(|l| l.trim_end() == "ready$")
        });
    }

    /// In the local TUI: `d` deploys, `i` inits (the sample's device), `n`
    /// spawns `spawn` more devices; each waited for on screen. The screen
    /// with all `1 + spawn` devices.
    pub fn deploy_init_and_spawn(&self, spawn: usize) -> String {
        self.keys(&["d"]);
        self.wait_for("the stack deployed", |s| {
            s.contains("CertRotation · CREATE_COMPLETE")
        });
        self.keys(&["i"]);
        self.wait_for("the CAs registered", |s| {
            s.contains("Vendor CA ACTIVE") && s.contains("1 devices")
        });
        if spawn == 0 {
            return self.capture();
        }
        self.keys(&["n"]);
        self.wait_for("the spawn prompt", |s| s.contains("How many devices?"));
        self.keys(&[&spawn.to_string(), "Enter"]);
        let all = format!("{} devices", spawn + 1);
        self.wait_for(&all, |s| s.contains(&all))
    }

    /// Quits the TUI with `q`: the shell comes back in a sane terminal
    /// mode (canonical input and echo on, the alternate screen left).
    pub fn quit_and_check_the_terminal(&self) {
        self.keys(&["q"]);
        self.wait_quit();
        self.keys(&[
            "stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e -icanon -e echo -e -echo | tr '\\n' ' '; echo END-$((6*7))",
            "Enter",
        ]);
        let screen = self.wait_for("the shell after quitting", |s| s.contains("END-42"));
        let line = screen
            .lines()
            .find(|l| l.contains("END-42") && !l.contains("$(("))
            .unwrap_or("");
        assert!(
            line.contains("icanon") && !line.contains("-icanon"),
            "canonical mode restored: {line}"
        );
        assert!(
            line.contains("echo") && !line.contains("-echo"),
            "echo restored: {line}"
        );
        assert!(
            !screen.contains("MQTT traffic"),
            "the alternate screen was left:\n{screen}"
        );
    }

    /// Quits with `q` and checks the shell is back and runs a command.
    pub fn quit_and_check_shell(&self) {
        self.keys(&["q"]);
        self.wait_quit();
        self.keys(&["clear; echo BACK-$((6*7))", "Enter"]);
        self.wait_for("the shell to run a command", |s| {
            s.lines().any(|l| l.trim() == "BACK-42")
        });
    }

    /// The screen with its colour escapes (`capture-pane -e`).
    pub fn capture_with_escapes(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-e", "-p", "-t", &self.name])
            .bounded_output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Tmux {
    /// A tmux format variable of the pane (`display -p '#{…}'`).
    pub fn display(&self, format: &str) -> String {
        let out = Command::new("tmux")
            .args(["display-message", "-p", "-t", &self.name, format])
            .bounded_output()
            .expect("tmux display-message");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// True while the program in the pane has the terminal report the
    /// mouse (any of the X10/normal/button/any-event modes).
    pub fn mouse_reporting(&self) -> bool {
        self.display("#{mouse_standard_flag}#{mouse_button_flag}#{mouse_any_flag}")
            .contains('1')
    }

    /// Polls `ready` until it holds; panics naming `what` on timeout.
    pub fn wait_until(&self, what: &str, ready: impl Fn() -> bool) {
        let start = Instant::now();
        while !ready() {
            if start.elapsed() > TIMEOUT {
                panic!(
                    "timed out waiting for {what}; the screen was:\n{}",
                    self.capture()
                );
            }
            std::thread::sleep(POLL);
        }
    }
}
