//! Keys: what each key does where, and the words the footer and the help
//! overlay use for it (with the AWS call each action stands for).

use super::action::{Action, Fault};
use super::app::{App, Overlay, View};
use super::panes::PaneId;
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// One line of the help overlay: key, what it does, what it is in AWS terms.
pub const HELP: &[(&str, &str, &str)] = &[
    (
        "d",
        "deploy the stack",
        "aws cloudformation deploy --template-file cfn/cert-rotation.json",
    ),
    (
        "i",
        "init: CAs, JITP template, CA key, whitelist",
        "certs_etc.py --create: aws iot register-ca-certificate, aws ssm put-parameter",
    ),
    (
        "n",
        "spawn N devices (whitelist + factory creds)",
        "dynamodb put-item CrState=CR_WHITELISTED + vendor-signed device certs",
    ),
    (
        "s",
        "step the selected device to its next step",
        "mqtt_client.py --jitp | --create_cert | --ack_cert",
    ),
    (
        "a",
        "onboard all (autopilot)",
        "every device through 3a, 3b, 3c",
    ),
    (
        "f",
        "fault: drop response, kill device, revoke",
        "aws iot update-certificate --new-status REVOKED",
    ),
    ("c", "cleanup (confirmed)", "certs_etc.py --delete"),
    (
        "T",
        "teardown (confirmed)",
        "delete_cf.bash: aws cloudformation delete-stack",
    ),
    (
        "r",
        "refresh",
        "jitpilot status: describe stack, CAs, certs, scan table",
    ),
    ("Tab / S-Tab", "focus next / previous pane", ""),
    ("j k ↑ ↓", "move, scroll", ""),
    ("h l ← →", "focus previous / next pane", ""),
    ("g G", "top / bottom", ""),
    ("Enter", "open detail (device timeline, packet)", ""),
    ("/", "filter traffic: client:, topic:, type:, text", ""),
    ("p", "freeze / unfreeze traffic", ""),
    ("z", "zoom the focused pane", ""),
    ("m", "mouse on / off (off keeps text selectable)", ""),
    ("Space", "demo: play the next walkthrough step", ""),
    ("Esc", "back: close; clear selection (autoscroll)", ""),
    ("?", "this help", ""),
    ("q  Ctrl-C", "quit", ""),
];

/// What the help explains below the keys: refusals and `CsrKeyReuse`.
pub const HELP_NOTES: &[&str] = &[
    "Red: a refusal. A refused request is answered on the device's .../rspn topic: {\"error\": {\"code\", \"message\"}};",
    "jitpilot's devices stop at a permanent refusal (the sample's device ignores the answer and retries).",
    "CsrKeyReuse (stack parameter): refuse (default) answers csr_reuses_vendor_key to a CSR from the vendor key;",
    "warn signs it, as the sample's Lambda does, and marks it INSECURE: a copied factory key holds the new identity.",
    "Set it: jitpilot deploy --parameter-overrides CsrKeyReuse=warn (or =refuse); d redeploys keeping the value.",
];

/// Maps a key to an action, by context: overlays first, then text entry,
/// then detail views, then the main screen.
pub fn handle_key_event(app: &App, key: KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Some(Action::Quit);
    }
    match &app.overlay {
        Some(Overlay::Help) => {
            return match key.code {
                KeyCode::Char('q') => Some(Action::Quit),
                KeyCode::Esc | KeyCode::Char('?') | KeyCode::Enter => Some(Action::Back),
                _ => None,
            }
        }
        Some(Overlay::Confirm(_)) => {
            return match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => Some(Action::Confirm),
                KeyCode::Char('n') | KeyCode::Esc => Some(Action::Back),
                _ => None,
            }
        }
        Some(Overlay::SpawnPrompt(_)) => {
            return match key.code {
                KeyCode::Char(c) if c.is_ascii_digit() => Some(Action::Input(c)),
                KeyCode::Backspace => Some(Action::Erase),
                KeyCode::Enter => Some(Action::Confirm),
                KeyCode::Esc => Some(Action::Back),
                _ => None,
            }
        }
        Some(Overlay::FaultMenu) => {
            return match key.code {
                KeyCode::Char('1') => Some(Action::Fault(Fault::DropNextResponse)),
                KeyCode::Char('2') => Some(Action::Fault(Fault::KillDevice)),
                KeyCode::Char('3') => Some(Action::Fault(Fault::RevokeCert)),
                KeyCode::Esc | KeyCode::Char('f') => Some(Action::Back),
                _ => None,
            }
        }
        None => {}
    }
    if app.traffic.editing_filter {
        return match key.code {
            KeyCode::Enter => Some(Action::Confirm),
            KeyCode::Esc => Some(Action::Back),
            KeyCode::Backspace => Some(Action::Erase),
            KeyCode::Char(c) => Some(Action::Input(c)),
            _ => None,
        };
    }
    let nav = match key.code {
        KeyCode::Up | KeyCode::Char('k') => Some(Action::Up),
        KeyCode::Down | KeyCode::Char('j') => Some(Action::Down),
        KeyCode::PageUp => Some(Action::PageUp),
        KeyCode::PageDown => Some(Action::PageDown),
        KeyCode::Home | KeyCode::Char('g') => Some(Action::Top),
        KeyCode::End | KeyCode::Char('G') => Some(Action::Bottom),
        KeyCode::Esc => Some(Action::Back),
        KeyCode::Char('q') => Some(Action::Quit),
        KeyCode::Char('?') => Some(Action::Help),
        _ => None,
    };
    if nav.is_some() {
        return nav;
    }
    if app.view != View::Main {
        return match key.code {
            KeyCode::Char('s') => Some(Action::StepSelected),
            KeyCode::Char('f') => Some(Action::AskFault),
            KeyCode::Char(' ') if app.demo.is_some() => Some(Action::DemoNext),
            _ => None,
        };
    }
    Some(match key.code {
        KeyCode::Tab | KeyCode::Right | KeyCode::Char('l') => Action::FocusNext,
        KeyCode::BackTab | KeyCode::Left | KeyCode::Char('h') => Action::FocusPrev,
        KeyCode::Enter => Action::Open,
        KeyCode::Char('/') => Action::StartFilter,
        KeyCode::Char('p') => Action::ToggleFreeze,
        KeyCode::Char('z') => Action::ToggleZoom,
        KeyCode::Char('m') => Action::ToggleMouse,
        KeyCode::Char('d') => Action::Deploy,
        KeyCode::Char('i') => Action::Init,
        KeyCode::Char('n') => Action::AskSpawn,
        KeyCode::Char('s') => Action::StepSelected,
        KeyCode::Char('a') => Action::OnboardAll,
        KeyCode::Char('f') => Action::AskFault,
        KeyCode::Char('c') => Action::AskCleanup,
        KeyCode::Char('T') => Action::AskTeardown,
        KeyCode::Char('r') => Action::Refresh,
        KeyCode::Char(' ') if app.demo.is_some() => Action::DemoNext,
        _ => return None,
    })
}

/// The footer's key hints for where the user is.
pub fn hints(app: &App) -> Vec<(&'static str, &'static str)> {
    match &app.overlay {
        Some(Overlay::Help) => return vec![("Esc", "close help"), ("q", "quit")],
        Some(Overlay::Confirm(_)) => return vec![("y", "yes, do it"), ("n/Esc", "cancel")],
        Some(Overlay::SpawnPrompt(_)) => {
            return vec![("0-9", "how many"), ("Enter", "spawn"), ("Esc", "cancel")]
        }
        Some(Overlay::FaultMenu) => {
            return vec![
                ("1", "drop next response"),
                ("2", "kill device"),
                ("3", "revoke cert"),
                ("Esc", "cancel"),
            ]
        }
        None => {}
    }
    if app.traffic.editing_filter {
        return vec![
            ("Enter", "apply filter"),
            ("Esc", "clear filter"),
            ("client:/topic:/type:", "narrow"),
        ];
    }
    let mut h = Vec::new();
    if app.demo.is_some() {
        h.push(("Space", "next demo step"));
    }
    match app.view {
        View::DeviceDetail => {
            h.extend([
                ("s", "step"),
                ("f", "fault"),
                ("j/k", "scroll"),
                ("Esc", "back"),
            ]);
        }
        View::EventDetail => h.extend([("j/k", "scroll"), ("Esc", "back")]),
        View::Main => {
            h.extend([
                ("d", "deploy"),
                ("i", "init"),
                ("n", "spawn"),
                ("s", "step"),
                ("a", "onboard all"),
                ("f", "fault"),
                ("c", "cleanup"),
                ("T", "teardown"),
            ]);
            match app.focus {
                PaneId::Devices => h.push(("Enter", "timeline")),
                PaneId::Traffic => {
                    h.extend([("Enter", "detail"), ("/", "filter"), ("p", "freeze")]);
                    if app.traffic.has_selection() {
                        h.push(("Esc", "autoscroll"));
                    }
                }
                _ => {}
            }
            h.extend([("Tab", "focus"), ("?", "help"), ("q", "quit")]);
        }
    }
    h
}
