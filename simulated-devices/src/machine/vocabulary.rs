//! The machine's vocabulary: what goes in ([`Input`]), what comes out
//! ([`Command`]), and the words both use (goal, identity, credentials,
//! failures).

use crate::firmware::FirmwareError;
use crate::report::{Progress, Step};
use std::time::Duration;

/// How far a device run should go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Goal {
    /// 3a only (`mqtt_client.py --jitp`).
    Jitp,
    /// 3a then 3b (`--create_cert`).
    CreateCert,
    /// 3c only; needs the manufacturer cert on disk (`--ack_cert`).
    AckCert,
    /// 3a, 3b and 3c, resuming from whatever the credential folder holds.
    Onboard,
}

/// Which certificate a connection presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// The factory cert signed by the Vendor CA (`vendor.cert.pem`).
    Vendor,
    /// The rotated cert signed by the Manufacturer CA (`manufacturer.cert.pem`).
    Manufacturer,
}

/// A credential to write durably into the device's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// The new private key, stored BEFORE its CSR leaves the device.
    ManufacturerKey(String),
    /// The CSR, stored so a resumed device resends the identical request.
    Csr(String),
    /// The verified manufacturer cert.
    ManufacturerCert(String),
    /// The cloud confirmed the ack of this cert id: onboarding is complete.
    AckDone(String),
}

/// What the credential folder held when the device started.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    /// `manufacturer.key.pem`
    pub manufacturer_key: Option<String>,
    /// `manufacturer.csr.pem`
    pub csr: Option<String>,
    /// `manufacturer.cert.pem`
    pub manufacturer_cert: Option<String>,
    /// The cert id recorded in the ack marker.
    pub acked_cert_id: Option<String>,
    /// `manufacturer-ca.pem`: what a returned cert must chain to.
    pub manufacturer_ca: Option<String>,
}

/// Something that happened to the device.
#[derive(Debug, Clone)]
pub enum Input {
    /// The run begins with what the folder holds.
    Start(Stored),
    /// CONNACK received.
    Connected,
    /// The connect failed before CONNACK: TLS alert, socket closed (JITP's
    /// first refusal), refused return code, timeout.
    ConnectFailed { reason: String },
    /// An established connection was closed.
    Closed { reason: String },
    /// SUBACK received for the pending subscription.
    Subscribed,
    /// A PUBLISH arrived.
    Message { topic: String, payload: Vec<u8> },
    /// The timer last started has fired.
    TimerFired,
}

/// Something the shell must do, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Open a new MQTT connection (clientId = serial) with this identity.
    Connect(Identity),
    /// Close the current connection.
    Disconnect,
    /// Subscribe at QoS 1.
    Subscribe { topic: String },
    /// Publish at QoS 1.
    Publish { topic: String, payload: Vec<u8> },
    /// Write a credential atomically before executing the next command.
    Store(Credential),
    /// (Re)start the single timer; it replaces any running one.
    StartTimer(Duration),
    /// Stop the timer.
    CancelTimer,
    /// Tell the world.
    Report {
        step: Step,
        state: Progress,
        attempt: u32,
        message: String,
    },
    /// The goal is reached.
    Done {
        manufacturer_cert_id: Option<String>,
    },
    /// The device gave up.
    Failed(DeviceFailure),
}

/// Why a device gave up. Each message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceFailure {
    #[error("step {step}: connect refused {attempts} times (last: {last}); check that the cert is registered and ACTIVE (`jitpilot status`) and that the stack is deployed")]
    ConnectRefused {
        step: Step,
        attempts: u32,
        last: String,
    },
    #[error("step {step}: no response after {attempts} requests; the cloud logged why it did not answer (jitpilot: `rotation.refused` entries of the event log, shown in the TUI; AWS: the rotation Lambda's CloudWatch logs)")]
    NoResponse { step: Step, attempts: u32 },
    #[error("step {step}: {source}")]
    Firmware {
        step: Step,
        #[source]
        source: FirmwareError,
    },
    #[error("{0}")]
    NotReady(String),
    /// The cloud answered the request with a permanent refusal: sending it
    /// again would get the same answer, so the device stops.
    #[error("step {step}: the cloud refused the request ({code}): {message}")]
    Refused {
        step: Step,
        code: String,
        message: String,
    },
}
