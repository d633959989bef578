//! The app state and its `update`: everything the screen shows, changed only
//! by actions (keys) and messages (cloud results, progress, events).
//!
//! Nothing here does IO or draws. Cloud work is queued as [`Command`]s that
//! the runner executes on spawned tasks, so the state can be driven by tests
//! with fabricated reports and events.

use super::action::{Action, Command, Fault};
use super::demo::{Demo, DemoAction};
use super::panes::cas::CasPane;
use super::panes::device_detail::DeviceDetail;
use super::panes::devices::DevicesPane;
use super::panes::stack::StackPane;
use super::panes::traffic::TrafficPane;
use super::panes::PaneId;
use super::theme::Theme;
use crate::cloud::open::ObserverState;
use crate::cloud::{CloudEvent, StatusReport};
use std::collections::HashSet;
use std::sync::Arc;

mod ingest;
pub use ingest::event_serial;

/// A dialog drawn over the screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    Help,
    Confirm(Confirm),
    /// How many devices to spawn; the digits typed so far.
    SpawnPrompt(String),
    FaultMenu,
}

/// What a confirm dialog guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    Cleanup,
    Teardown,
}

/// Which screen is shown under the overlays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The four panes.
    Main,
    /// One device's sequence diagram, certificates and table row.
    DeviceDetail,
    /// One traffic row in full.
    EventDetail,
}

/// The status line: the last outcome, with what to do when it is an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toast {
    pub text: String,
    pub error: bool,
}

/// Facts for the header line.
#[derive(Debug, Clone, Default)]
pub struct Header {
    /// `local` or `aws`.
    pub backend: String,
    /// Where devices connect, once the endpoint listens.
    pub endpoint: Option<String>,
    /// Local: the AWS API's URL (`http://127.0.0.1:4566`), when it runs.
    pub api: Option<String>,
    pub data_dir: Option<String>,
    /// On AWS: the observer whose subscription feeds the traffic pane.
    pub observer: Option<ObserverState>,
    /// Failed TLS handshakes on the local endpoint (unauthenticated
    /// peers), as of the last one it logged: they are sampled, not each
    /// an event (`endpoint/sampler.rs`).
    pub tls_refused: u64,
}

/// Everything the TUI shows.
pub struct App {
    pub theme: Theme,
    pub focus: PaneId,
    /// Show only the focused pane.
    pub zoom: bool,
    pub overlay: Option<Overlay>,
    pub view: View,
    /// The last read-back of the cloud.
    pub status: Option<StatusReport>,
    pub stack: StackPane,
    pub cas: CasPane,
    pub traffic: TrafficPane,
    pub devices: DevicesPane,
    pub device_detail: DeviceDetail,
    /// The traffic row open in the event detail view, and its scroll.
    pub event_detail: Option<(Arc<CloudEvent>, u16)>,
    pub toast: Option<Toast>,
    /// Commands running now, by name, for the status line.
    pub busy: Vec<&'static str>,
    pub should_quit: bool,
    /// Mouse capture wanted (the runner applies changes).
    pub mouse: bool,
    pub demo: Option<Demo>,
    pub header: Header,
    /// A problem that stops the cloud from running (port taken, data dir
    /// locked): shown full screen with what to do.
    pub fatal: Option<String>,
    commands: Vec<Command>,
    /// Devices whose next response will be dropped (fault injection).
    drop_next: HashSet<String>,
    /// Set when an event suggests the read-back is stale.
    refresh_hint: bool,
}

impl App {
    /// A fresh app with nothing loaded.
    pub fn new(theme: Theme, header: Header, demo: bool) -> App {
        App {
            theme,
            focus: PaneId::Devices,
            zoom: false,
            overlay: None,
            view: View::Main,
            status: None,
            stack: StackPane::default(),
            cas: CasPane::default(),
            traffic: TrafficPane::default(),
            devices: DevicesPane::default(),
            device_detail: DeviceDetail::default(),
            event_detail: None,
            toast: None,
            busy: Vec::new(),
            should_quit: false,
            mouse: false,
            demo: demo.then(Demo::default),
            header,
            fatal: None,
            commands: Vec::new(),
            drop_next: HashSet::new(),
            refresh_hint: false,
        }
    }

    /// Takes the commands queued by `update`, for the runner to execute.
    pub fn take_commands(&mut self) -> Vec<Command> {
        std::mem::take(&mut self.commands)
    }

    /// True (once) when events suggest the read-back is stale.
    pub fn take_refresh_hint(&mut self) -> bool {
        std::mem::take(&mut self.refresh_hint)
    }

    fn info(&mut self, text: impl Into<String>) {
        self.toast = Some(Toast {
            text: text.into(),
            error: false,
        });
    }

    fn error(&mut self, text: impl Into<String>) {
        self.toast = Some(Toast {
            text: text.into(),
            error: true,
        });
    }

    fn run(&mut self, name: &'static str, command: Command, aws: &str) {
        if self.busy.contains(&name) {
            self.info(format!("{name} is already running"));
            return;
        }
        if self.fatal.is_some() {
            let backend = &self.header.backend;
            self.error(format!(
                "the {backend} cloud is not running (see above): fix that and restart jitpilot"
            ));
            return;
        }
        self.busy.push(name);
        self.commands.push(command);
        self.info(format!("{name} = {aws}"));
    }

    /// The serial the device actions apply to: the open device, else the selected row.
    pub fn target_serial(&self) -> Option<String> {
        match self.view {
            View::DeviceDetail => Some(self.device_detail.serial.clone()),
            _ => self.devices.selected().map(|d| d.serial.clone()),
        }
    }

    /// Applies one action.
    pub fn update(&mut self, action: Action) {
        match action {
            Action::Quit => self.should_quit = true,
            Action::Help => self.overlay = Some(Overlay::Help),
            Action::Back => self.back(),
            Action::FocusNext => self.focus = self.focus.next(),
            Action::FocusPrev => self.focus = self.focus.prev(),
            Action::Up => self.scroll(-1),
            Action::Down => self.scroll(1),
            Action::PageUp => self.scroll(-10),
            Action::PageDown => self.scroll(10),
            Action::Top | Action::Bottom => self.edge(action == Action::Top),
            Action::Open => self.open(),
            Action::StartFilter => {
                self.focus = PaneId::Traffic;
                self.traffic.editing_filter = true;
            }
            Action::ToggleFreeze => {
                self.traffic.toggle_freeze();
                let state = if self.traffic.frozen() {
                    "frozen: new rows are kept but hidden"
                } else {
                    "live"
                };
                self.info(format!("traffic {state}"));
            }
            Action::ToggleZoom => self.zoom = !self.zoom,
            Action::ToggleMouse => {
                self.mouse = !self.mouse;
                self.info(if self.mouse {
                    "mouse on: wheel scrolls; press m to select text again"
                } else {
                    "mouse off: text is selectable"
                });
            }
            Action::Deploy => self.run(
                "deploy",
                Command::Deploy,
                "aws cloudformation deploy --template-file cfn/cert-rotation.json",
            ),
            Action::Init => {
                let devices = self.devices.devices().len().max(1);
                self.run(
                    "init",
                    Command::Init { devices },
                    "certs_etc.py --create: register-ca-certificate ×2, ssm put-parameter, whitelist",
                )
            }
            Action::AskSpawn => self.overlay = Some(Overlay::SpawnPrompt(String::new())),
            Action::StepSelected => self.step_selected(),
            Action::OnboardAll => self.onboard_all(),
            Action::AskFault => self.overlay = Some(Overlay::FaultMenu),
            Action::Fault(f) => {
                self.overlay = None;
                self.fault(f);
            }
            Action::AskCleanup => self.overlay = Some(Overlay::Confirm(Confirm::Cleanup)),
            Action::AskTeardown => self.overlay = Some(Overlay::Confirm(Confirm::Teardown)),
            Action::Refresh => self.commands.push(Command::Refresh),
            Action::DemoNext => self.demo_next(),
            Action::Input(c) => match &mut self.overlay {
                Some(Overlay::SpawnPrompt(s)) if s.len() < 6 => s.push(c),
                Some(_) => {}
                None if self.traffic.editing_filter => self.traffic.filter_push(c),
                None => {}
            },
            Action::Erase => match &mut self.overlay {
                Some(Overlay::SpawnPrompt(s)) => {
                    s.pop();
                }
                Some(_) => {}
                None => self.traffic.filter_pop(),
            },
            Action::Confirm => self.confirm(),
        }
    }

    fn back(&mut self) {
        if self.overlay.take().is_some() {
            return;
        }
        if self.traffic.editing_filter {
            self.traffic.editing_filter = false;
            self.traffic.set_filter("");
            return;
        }
        match self.view {
            View::DeviceDetail | View::EventDetail => self.view = View::Main,
            View::Main if self.zoom => self.zoom = false,
            View::Main if self.traffic.has_selection() => self.traffic.clear_selection(),
            View::Main if !self.traffic.filter().is_empty() => self.traffic.set_filter(""),
            View::Main => self.toast = None,
        }
    }

    fn scroll(&mut self, delta: isize) {
        match self.view {
            View::DeviceDetail => {
                let s = self.device_detail.scroll as isize - delta;
                self.device_detail.scroll = s.max(0) as usize;
            }
            View::EventDetail => {
                if let Some((_, scroll)) = &mut self.event_detail {
                    *scroll = (*scroll as isize + delta).max(0) as u16;
                }
            }
            View::Main => match self.focus {
                PaneId::Devices => self.devices.move_selection(delta),
                PaneId::Traffic => self.traffic.move_selection(delta),
                PaneId::Stack => {
                    self.stack.scroll = (self.stack.scroll as isize + delta).max(0) as usize
                }
                PaneId::Cas => self.cas.scroll = (self.cas.scroll as isize + delta).max(0) as u16,
            },
        }
    }

    fn edge(&mut self, top: bool) {
        match (self.view, self.focus) {
            (View::Main, PaneId::Devices) => self.devices.select_edge(top),
            (View::Main, PaneId::Traffic) => self.traffic.select_edge(top),
            _ => {}
        }
    }

    fn open(&mut self) {
        match self.focus {
            PaneId::Devices => {
                if let Some(d) = self.devices.selected() {
                    self.device_detail.serial = d.serial.clone();
                    self.device_detail.scroll = 0;
                    self.view = View::DeviceDetail;
                }
            }
            PaneId::Traffic => {
                if let Some(ev) = self.traffic.selected_event() {
                    self.event_detail = Some((ev, 0));
                    self.view = View::EventDetail;
                } else {
                    self.info("select a row first (j/k), then Enter");
                }
            }
            _ => {}
        }
    }

    fn step_selected(&mut self) {
        let Some(serial) = self.target_serial() else {
            self.error("no device selected: init (i) and spawn devices (n) first");
            return;
        };
        let Some(dev) = self.devices.get(&serial) else {
            return;
        };
        if dev.running {
            self.info(format!(
                "{serial} is already running {}",
                dev.step.map(|s| s.label()).unwrap_or("")
            ));
            return;
        }
        let Some(step) = dev.next_step() else {
            self.info(format!(
                "{serial} has completed rotation: nothing left to step"
            ));
            return;
        };
        let drop_next_response = self.drop_next.remove(&serial);
        self.devices.set_running(&serial, true);
        self.commands.push(Command::Step {
            serial: serial.clone(),
            step,
            drop_next_response,
        });
        self.info(format!(
            "{serial}: step {} = {}",
            step.label(),
            step.sample_command()
        ));
    }

    fn onboard_all(&mut self) {
        let serials: Vec<String> = self
            .devices
            .devices()
            .iter()
            .filter(|d| !d.running && !d.completed() && d.cr_state.is_some())
            .map(|d| d.serial.clone())
            .collect();
        if serials.is_empty() {
            self.info("every whitelisted device is done or running: spawn more with n");
            return;
        }
        for s in &serials {
            self.devices.set_running(s, true);
        }
        self.info(format!(
            "autopilot: onboarding {} devices through 3a, 3b, 3c",
            serials.len()
        ));
        self.commands.push(Command::Onboard { serials });
    }

    fn fault(&mut self, fault: Fault) {
        let Some(serial) = self.target_serial() else {
            self.error("select a device first (Tab to Devices, j/k)");
            return;
        };
        match fault {
            Fault::DropNextResponse => {
                self.drop_next.insert(serial.clone());
                self.info(format!(
                    "{serial} will drop responses during its next step: it times out, asks again, and the Lambda answers the repeat identically"
                ));
            }
            Fault::KillDevice => {
                self.commands.push(Command::Kill {
                    serial: serial.clone(),
                });
                self.info(format!(
                    "killing {serial}: its credential folder lets it resume when stepped again"
                ));
            }
            Fault::RevokeCert => {
                let cert = self
                    .devices
                    .get(&serial)
                    .and_then(|d| d.current_cert().map(str::to_string));
                match cert {
                    Some(cert_id) => {
                        self.info(format!(
                            "aws iot update-certificate --certificate-id {cert_id} --new-status REVOKED"
                        ));
                        self.commands.push(Command::Revoke { cert_id });
                    }
                    None => self.error(format!(
                        "{serial} has no registered certificate yet: step it through 3a first"
                    )),
                }
            }
        }
    }

    fn confirm(&mut self) {
        match self.overlay.take() {
            Some(Overlay::Confirm(Confirm::Cleanup)) => {
                self.run("cleanup", Command::Cleanup, "certs_etc.py --delete")
            }
            Some(Overlay::Confirm(Confirm::Teardown)) => self.run(
                "teardown",
                Command::Teardown,
                "delete_cf.bash: aws cloudformation delete-stack",
            ),
            Some(Overlay::SpawnPrompt(digits)) => {
                let n: usize = digits.parse().unwrap_or(3).max(1);
                let devices = self.devices.devices().len() + n;
                self.run(
                    "spawn",
                    Command::Spawn { devices },
                    "whitelist (dynamodb put-item CR_WHITELISTED) + factory vendor certs",
                );
            }
            Some(other) => self.overlay = Some(other),
            None if self.traffic.editing_filter => self.traffic.editing_filter = false,
            None => {}
        }
    }

    fn demo_next(&mut self) {
        let Some(demo) = &self.demo else { return };
        // Each step builds on the previous one: wait until it has finished.
        if !self.busy.is_empty() || self.devices.summary().running > 0 {
            let what = if self.busy.is_empty() {
                "the device".to_string()
            } else {
                self.busy.join(", ")
            };
            self.info(format!(
                "{what} is still running: Space again once it is done"
            ));
            return;
        }
        if demo.finished() {
            self.info("the walkthrough is over: q quits");
            return;
        }
        let step = *demo.current();
        match step.action {
            None => {}
            Some(DemoAction::Cleanup) => self.overlay = Some(Overlay::Confirm(Confirm::Cleanup)),
            Some(DemoAction::Teardown) => self.overlay = Some(Overlay::Confirm(Confirm::Teardown)),
            Some(DemoAction::StepFirstDevice) => {
                self.devices.select_edge(true);
                self.update(DemoAction::StepFirstDevice.action());
            }
            Some(a) => self.update(a.action()),
        }
        if matches!(
            step.action,
            Some(DemoAction::Cleanup | DemoAction::Teardown)
        ) {
            self.confirm();
        }
        if let Some(demo) = &mut self.demo {
            demo.step += 1;
        }
    }
}
