//! What a key press means ([`Action`]), what the UI asks of the cloud
//! ([`Command`]), and what comes back ([`Msg`]).
//!
//! Keys become actions; actions change the app state and may queue commands;
//! commands run on spawned tasks (never on the UI task) and report back as
//! messages. That one-way loop keeps the screen responsive while a stack
//! deploys or ten thousand devices onboard.

use crate::cloud::{CloudEvent, StatusReport};
use crate::model::EpochMillis;
use std::sync::Arc;

/// One of the three device steps of the walkthrough.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WalkStep {
    /// 3a: connect with the vendor cert; JITP registers and activates it.
    Jitp,
    /// 3b: send a CSR, receive the manufacturer cert.
    CreateCert,
    /// 3c: connect with the manufacturer cert and acknowledge it.
    AckCert,
}

impl WalkStep {
    /// `3a`, `3b`, `3c`, as the blog post numbers them.
    pub fn label(self) -> &'static str {
        match self {
            WalkStep::Jitp => "3a",
            WalkStep::CreateCert => "3b",
            WalkStep::AckCert => "3c",
        }
    }

    /// The step after this one, if any.
    pub fn next(self) -> Option<WalkStep> {
        match self {
            WalkStep::Jitp => Some(WalkStep::CreateCert),
            WalkStep::CreateCert => Some(WalkStep::AckCert),
            WalkStep::AckCert => None,
        }
    }

    /// What the step stands for in the sample (`mqtt_client.py --jitp`, ...).
    pub fn sample_command(self) -> &'static str {
        match self {
            WalkStep::Jitp => "mqtt_client.py --jitp",
            WalkStep::CreateCert => "mqtt_client.py --create_cert",
            WalkStep::AckCert => "mqtt_client.py --ack_cert",
        }
    }
}

/// How far a device run has come, as the device agent reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressState {
    /// Working on `step` (connecting, waiting for a response, retrying).
    Running,
    /// `step` finished.
    StepDone,
    /// The whole goal finished.
    Done,
    /// The run gave up; the message says why.
    Failed,
    /// The run was killed from the UI (fault injection).
    Killed,
}

/// One progress report of an in-process device, in the TUI's terms
/// (the device agent's own report type is converted into this).
#[derive(Debug, Clone)]
pub struct DeviceProgress {
    pub serial: String,
    pub step: WalkStep,
    pub state: ProgressState,
    /// 1-based attempt of the current step.
    pub attempt: u32,
    /// What happened, one line.
    pub message: String,
    pub at: EpochMillis,
}

/// A fault to inject, to see retries and refusals happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The selected device ignores the next response it receives.
    DropNextResponse,
    /// Abort the selected device's run mid-step (it resumes from its folder).
    KillDevice,
    /// `aws iot update-certificate --new-status REVOKED` on its current cert.
    RevokeCert,
}

/// What a key press means. Produced by `handle_key_event`, applied by `update`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Quit,
    Help,
    /// Close the innermost overlay, detail view or selection.
    Back,
    FocusNext,
    FocusPrev,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    /// Open the detail view of the selected row.
    Open,
    /// Start editing the focused pane's filter.
    StartFilter,
    /// Freeze or unfreeze the traffic pane.
    ToggleFreeze,
    /// Show the focused pane alone.
    ToggleZoom,
    ToggleMouse,
    Deploy,
    Init,
    /// Ask how many devices to spawn.
    AskSpawn,
    /// Step the selected device to its next step.
    StepSelected,
    /// Onboard every device that is not done (autopilot).
    OnboardAll,
    /// Open the fault menu.
    AskFault,
    Fault(Fault),
    /// Ask to confirm cleanup.
    AskCleanup,
    /// Ask to confirm teardown.
    AskTeardown,
    Refresh,
    /// Demo mode: play the next step of the walkthrough.
    DemoNext,
    /// A key typed into a prompt or filter.
    Input(char),
    /// Backspace in a prompt or filter.
    Erase,
    /// Enter in a prompt or confirm dialog.
    Confirm,
}

/// Cloud work the UI asks for; executed on spawned tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `aws cloudformation deploy`.
    Deploy,
    /// `certs_etc.py --create` for a fleet of `devices`, the sample's serial first.
    Init { devices: usize },
    /// Whitelist more devices and issue their factory credentials (an init
    /// with a larger fleet of `devices`: idempotent for those already there).
    Spawn { devices: usize },
    /// Run `serial` through `step` (and only that step).
    Step {
        serial: String,
        step: WalkStep,
        drop_next_response: bool,
    },
    /// Onboard these devices end to end, a bounded number at once.
    Onboard { serials: Vec<String> },
    /// Abort the run of `serial`.
    Kill { serial: String },
    /// `aws iot update-certificate --certificate-id ID --new-status REVOKED`.
    Revoke { cert_id: String },
    /// `certs_etc.py --delete`.
    Cleanup,
    /// `delete_cf.bash`.
    Teardown,
    /// Read everything back (`jitpilot status`).
    Refresh,
}

/// What comes back to the UI task.
#[derive(Debug, Clone)]
pub enum Msg {
    /// A command finished: a line for the status bar, or an error that says what to do.
    Finished {
        what: &'static str,
        result: Result<String, String>,
    },
    /// A fresh read-back of the cloud.
    Status(Box<StatusReport>),
    /// Device agent progress.
    Progress(DeviceProgress),
    /// A cloud event (normally read straight from the event stream).
    Event(Arc<CloudEvent>),
}
