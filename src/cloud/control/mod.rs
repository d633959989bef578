//! The walkthrough's control plane, once, for both clouds: step 2 (`init`,
//! the sample's `certs_etc.py --create`), reading it back (`status`) and
//! undoing it (`cleanup`, `certs_etc.py --delete`).
//!
//! The rotation function's pattern: [`plan`] decides with no IO (which
//! serials `--devices N` means, which whitelist rows to write, whether a
//! registered CA is reused, how a CA is summarized, what must be set
//! INACTIVE and which parameters go); [`init`], [`status`] and [`cleanup`]
//! run the steps in the walkthrough's order over small traits
//! ([`init::ControlBackend`], [`status::StatusBackend`],
//! [`cleanup::CleanupBackend`]) that the local cloud (over its SQLite
//! store) and the AWS backend (over aws-sdk-rust) implement in a few lines
//! per call; [`factory`] writes the devices' credential folders, which are
//! files on this machine whichever cloud registered the CAs. Why two implementations and not the SDK for
//! both: `docs/control-plane.md`.

pub mod cleanup;
pub mod factory;
pub mod init;
pub mod plan;
pub mod status;

pub use plan::{fleet_serials, subject_line};
