//! Tests of the rotation function's pure handlers (`decisions.rs`,
//! `ack_decisions.rs`, `parse.rs`). The executor over a real SQLite store
//! is tested in `jitpilot` (`src/rotation_tests/`), where the store lives.

mod ack_decisions;
mod decisions;
mod parse;

#[allow(unused_imports)]
use crate::model::{now_millis, Certificate, CertificateStatus};
#[allow(unused_imports)]
use crate::pki::{self, Issued, KeyAlgorithm, Subject};
use crate::testing::*;
