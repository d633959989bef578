//! What a device tells the outside world: progress reports while it runs
//! (for the TUI and fleet progress) and an outcome when it stops (for the
//! fleet summary's latencies and attempt counts).

use serde::Serialize;
use std::time::Duration;

/// A walkthrough step on the device side (DESIGN §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Step {
    /// 3a: connect with the vendor cert until JITP has provisioned it.
    #[serde(rename = "3a")]
    Jitp,
    /// 3b: send a CSR, receive and store the manufacturer cert.
    #[serde(rename = "3b")]
    CreateCert,
    /// 3c: connect with the manufacturer cert and acknowledge it.
    #[serde(rename = "3c")]
    AckCert,
}

impl Step {
    /// `3a`, `3b` or `3c`, as the walkthrough numbers them.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Jitp => "3a",
            Step::CreateCert => "3b",
            Step::AckCert => "3c",
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Progress {
    /// The step began.
    Started,
    /// Something happened inside the step (a connect, a publish, a message).
    Info,
    /// An attempt failed and the device will try again after a backoff.
    Retrying,
    /// The step finished.
    Completed,
    /// The step was already done on disk (resume after a crash or rerun).
    Skipped,
    /// The device gave up.
    Failed,
}

/// One progress report of one device.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceReport {
    /// The device's serial (= clientId = thing name).
    pub serial: String,
    pub step: Step,
    pub state: Progress,
    /// Attempt number within the step (connects for 3a, requests for 3b/3c).
    pub attempt: u32,
    /// What happened, in words.
    pub message: String,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
}

/// How one step went.
#[derive(Debug, Clone, Serialize)]
pub struct StepOutcome {
    pub step: Step,
    /// False when the step was found already done on disk.
    pub ran: bool,
    /// Wall time from the step's start to its completion.
    #[serde(serialize_with = "millis")]
    pub duration: Duration,
    /// Attempts it took (connects for 3a, requests for 3b/3c).
    pub attempts: u32,
}

/// How a device run ended, when it succeeded.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceOutcome {
    pub serial: String,
    /// Steps in the order they ran.
    pub steps: Vec<StepOutcome>,
    /// The manufacturer certificate's id, once the device has one.
    pub manufacturer_cert_id: Option<String>,
    /// Wall time of the whole run.
    #[serde(serialize_with = "millis")]
    pub elapsed: Duration,
}

impl DeviceOutcome {
    /// The outcome of `step`, if it was part of the run.
    pub fn step(&self, step: Step) -> Option<&StepOutcome> {
        self.steps.iter().find(|s| s.step == step)
    }
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}
