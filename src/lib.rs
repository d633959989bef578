//! # jitpilot
//!
//! A terminal cockpit for onboarding IoT fleets with Just-In-Time
//! Provisioning (JITP) and certificate rotation, after the AWS sample
//! "Secure and Consistent IoT Device On-boarding with JITP and Certificate
//! Rotation". It runs the walkthrough on an embedded local cloud, or on AWS.
//!
//! ## Layout
//!
//! The crates, by layer (each depends only on those above it):
//!
//! - `jitpilot-core` (`core/`)  the pure, shared layer, re-exported here:
//!   [`vocabulary`] (the wire contract's names), [`model`] (the registry in
//!   AWS IoT's words), [`pki`], [`fleet`] (the fleet definition) and
//!   [`rotation`] (the rotation function's decisions, traits and executor)
//! - `jitpilot-aws-function` (`aws-function/`)  the rotation function over
//!   the AWS APIs; the Lambda's `bootstrap` (`lambda/`) is built from it and
//!   core alone; re-exported as `cloud::aws::{function, lambda}`
//! - `jitpilot` (this crate)  the app:
//!   - [`datadir`]  the data dir: state, lock, credential folders
//!   - [`store`]    the local cloud's SQLite state: registry, tables, parameters, stacks, event log
//!   - [`cloud`]    the [`cloud::Cloud`] trait and its event stream; [`cloud::local`] the embedded cloud, [`cloud::aws`] the AWS backend
//!   - [`tui`]      the terminal UI
//!   - [`cli`]      the headless commands

#![forbid(unsafe_code)]

pub use jitpilot_core::{fleet, model, pki, rotation, vocabulary};

pub mod cli;
pub mod cloud;
pub mod datadir;
pub mod logging;
#[cfg(test)]
mod rotation_tests;
pub mod store;
pub mod tui;
