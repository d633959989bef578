//! # jitpilot
//!
//! A terminal cockpit for onboarding IoT fleets with Just-In-Time
//! Provisioning (JITP) and certificate rotation, after the AWS sample
//! "Secure and Consistent IoT Device On-boarding with JITP and Certificate
//! Rotation". It runs the walkthrough on an embedded local cloud, or on AWS.
//!
//! ## Layout
//!
//! - [`model`]    the registry's vocabulary in AWS IoT's words
//! - [`pki`]      CAs, device certs, CSRs, certificateIds
//! - [`store`]    the local cloud's SQLite state: registry, tables, parameters, stacks, event log
//! - [`cloud`]    the [`cloud::Cloud`] trait and its event stream; [`cloud::local`] the embedded cloud
//! - [`rotation`] the rotation function ("Lambda"), cloud agnostic
//! - [`tui`]      the terminal UI
//! - [`cli`]      the headless commands

#![forbid(unsafe_code)]

pub mod cli;
pub mod cloud;
pub mod logging;
pub mod model;
pub mod pki;
pub mod rotation;
pub mod store;
pub mod tui;
