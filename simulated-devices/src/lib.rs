//! # simulated-devices
//!
//! The jitpilot device agent: a device that onboards itself the way careful
//! firmware would, through the walkthrough's steps 3a (JITP), 3b (create the
//! manufacturer cert) and 3c (acknowledge it). It works against any endpoint
//! speaking the sample's wire contract — jitpilot's local cloud or AWS IoT.
//!
//! ## Layout
//!
//! - [`machine`]  the pure onboarding state machine: inputs in, commands out, no IO
//! - [`shell`]    the thin async driver on rumqttc: connections, timer, files
//! - [`firmware`] key + CSR creation and the checks a returned cert must pass
//! - [`creds`]    the credential folder and its atomic writes
//! - [`tls`]      the device's rustls configuration (vendor or manufacturer identity)
//! - [`topics`]   the wire contract: topics and payloads
//! - [`backoff`]  exponential backoff with full jitter
//! - [`report`]   progress reports and outcomes
//!
//! This crate does not depend on jitpilot: a device needs only its
//! credential folder and an endpoint address.

#![forbid(unsafe_code)]

pub mod backoff;
pub mod creds;
pub mod firmware;
pub mod machine;
pub mod mqtt_version;
pub mod report;
pub mod shell;
pub mod tls;
pub mod topics;

pub use backoff::RetryPolicy;
pub use creds::{CredentialFolder, Durability};
pub use machine::{DeviceFailure, Goal};
pub use mqtt_version::{FleetMqtt, MqttVersion};
pub use report::{DeviceOutcome, DeviceReport, Progress, Step, StepOutcome};
pub use shell::{run_device, DeviceConfig, DeviceError};
