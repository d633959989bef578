//! The walkthrough's control plane, once, for both clouds: step 2 (`init`,
//! the sample's `certs_etc.py --create`) and the CAs as `init` and `status`
//! show them.
//!
//! The rotation function's pattern: [`plan`] decides with no IO (which
//! serials `--devices N` means, which whitelist rows to write, whether a
//! registered CA is reused, how a CA is summarized); [`init`] runs the steps
//! in the walkthrough's order over a small trait, [`init::ControlBackend`],
//! that the local cloud (over its SQLite store) and the AWS backend (over
//! aws-sdk-rust) implement in a few lines each; [`factory`] writes the
//! devices' credential folders, which are files on this machine whichever
//! cloud registered the CAs. Why two implementations and not the SDK for
//! both: `docs/control-plane.md`.

pub mod factory;
pub mod init;
pub mod plan;

pub use plan::{fleet_serials, subject_line};
