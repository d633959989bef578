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

/// The JITP provisioning template attached to the Vendor CA.
pub const JITP_TEMPLATE: &str = include_str!("../../../assets/jitp-template.json");
/// Label of the Vendor CA (the factory's CA, JITP's trigger).
pub const VENDOR_CA_LABEL: &str = "Vendor CA";
/// Label of the Manufacturer CA (the rotation function's CA).
pub const MANUFACTURER_CA_LABEL: &str = "Manufacturer CA";
/// Where the Vendor CA's key — the factory's signing key — is kept (SecureString).
pub const VENDOR_KEY_PARAMETER: &str = "/jitpilot/vendor-ca-key";

/// Files of a device's credential folder (DESIGN §2.3): the factory key.
pub const VENDOR_KEY_FILE: &str = "vendor.key.pem";
/// The vendor device cert followed by the Vendor CA cert.
pub const VENDOR_CERT_FILE: &str = "vendor.cert.pem";
/// What the device trusts for the endpoint.
pub const ROOT_CA_FILE: &str = "root-ca.pem";
/// The Manufacturer CA, so firmware can check its rotated cert.
pub const MANUFACTURER_CA_FILE: &str = "manufacturer-ca.pem";
/// `<data-dir>/devices`: one credential folder per serial.
pub const DEVICES_DIR: &str = "devices";
/// `<data-dir>/factory`: the files every device folder holds alike, linked
/// from there (see [`factory`]). Removed by `cleanup`.
pub const SHARED_DIR: &str = "factory";
