//! # jitpilot-aws-function
//!
//! The rotation function on AWS: the cloud-agnostic decisions of
//! `jitpilot_core::rotation` over the AWS APIs the sample's Lambda calls —
//! IoT (certificates, things, policies), DynamoDB (the device table), SSM
//! (the Manufacturer CA's key) and iot-data (answers to devices). This is
//! everything the Lambda's `bootstrap` (`lambda/`) is built from, besides
//! `jitpilot-core`: no terminal, no local cloud, no SQLite. The jitpilot
//! app re-exports it as `jitpilot::cloud::aws::{clients, errors, function,
//! lambda}`.
//!
//! ## Layout
//!
//! - [`clients`]  the SDK configuration (standard chain, adaptive retries) and the function's clients
//! - [`errors`]   [`AwsError`](errors::AwsError): no credentials, AccessDenied naming the permission, throttling
//! - [`items`]    device-table rows ↔ DynamoDB items
//! - [`function`] the rotation function's traits over IoT, DynamoDB, SSM and iot-data
//! - [`lambda`]   [`RotationLambda`](lambda::RotationLambda): the rules' SQL output in, the function's answer out

#![forbid(unsafe_code)]

pub mod clients;
pub mod errors;
pub mod function;
pub mod items;
pub mod lambda;
