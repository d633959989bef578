//! File names of the credential folders (DESIGN §2.3): what "the factory"
//! (`init`) writes into `<data-dir>/devices/<serial>/`, what a device adds
//! as it rotates, and the observer identity the AWS traffic pane uses.

/// Factory: the device's private key.
pub const VENDOR_KEY_FILE: &str = "vendor.key.pem";
/// Factory: the device cert followed by the Vendor CA (the sample's
/// `VendorDeviceCertAndCACert.pem`).
pub const VENDOR_CERT_FILE: &str = "vendor.cert.pem";
/// What the device trusts for the endpoint's server certificate.
pub const ROOT_CA_FILE: &str = "root-ca.pem";
/// The Manufacturer CA, so firmware can check its rotated cert.
pub const MANUFACTURER_CA_FILE: &str = "manufacturer-ca.pem";
/// Rotation: the new private key (written before the CSR is sent).
pub const MANUFACTURER_KEY_FILE: &str = "manufacturer.key.pem";
/// Rotation: the CSR sent, so a resumed device resends it unchanged.
pub const MANUFACTURER_CSR_FILE: &str = "manufacturer.csr.pem";
/// Rotation: the verified manufacturer cert.
pub const MANUFACTURER_CERT_FILE: &str = "manufacturer.cert.pem";
/// Rotation: the ack marker, holding the acknowledged cert id.
pub const ACK_DONE_FILE: &str = "manufacturer.acked";

/// The observer identity's certificate (the AWS traffic pane's client).
pub const OBSERVER_CERT_FILE: &str = "cert.pem";
/// The observer identity's private key.
pub const OBSERVER_KEY_FILE: &str = "key.pem";

/// `<data-dir>/devices`: one credential folder per serial.
pub const DEVICES_DIR: &str = "devices";
/// `<data-dir>/factory`: the files every device folder holds alike, linked
/// from there. Removed by `cleanup`.
pub const SHARED_DIR: &str = "factory";
