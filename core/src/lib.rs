//! # jitpilot-core
//!
//! What every layer of jitpilot shares and none of them owns: the
//! walkthrough's names, its registry in AWS IoT's words, its certificates
//! and the rotation function's decisions. Pure code — no store, no network,
//! no terminal — so the local cloud, the AWS backend, the Lambda's
//! `bootstrap` and the TUI all build on it, and a change above it never
//! recompiles it.
//!
//! ## Layout
//!
//! - [`vocabulary`] the wire contract: topics, table and attributes, states, parameter names, CA labels, credential files, the stack template, AWS IoT's limits
//! - [`model`]      the registry's records in AWS IoT's words
//! - [`pki`]        CAs, device certs, CSRs, certificateIds
//! - [`fleet`]      the fleet definition (the sample's `ca_list.json`)
//! - [`rotation`]   the rotation function ("Lambda"): pure decisions, small backend traits, one executor
//! - [`testing`]    fixtures the rotation function's tests share (here and in `jitpilot`)

#![forbid(unsafe_code)]

pub mod fleet;
pub mod model;
pub mod pki;
pub mod rotation;
#[doc(hidden)]
pub mod testing;
pub mod vocabulary;
