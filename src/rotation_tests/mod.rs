//! Tests of the rotation function's executor over the local cloud's real
//! SQLite store (`local_store.rs`, `refusals.rs`, `retries.rs`) and right
//! after `init` (`after_init.rs`). The pure decisions are tested in
//! `jitpilot-core`; both use its `testing` fixtures.

mod after_init;
mod local_store;
mod refusals;
mod retries;

#[allow(unused_imports)]
use crate::model::{now_millis, Certificate, CertificateStatus};
#[allow(unused_imports)]
use crate::pki::{self, Issued, KeyAlgorithm, Subject};
use jitpilot_core::testing::*;
