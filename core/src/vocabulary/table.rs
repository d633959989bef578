//! The device table (the sample's DynamoDB table): its name, its hash key
//! and the attributes `init` and the rotation function write. `init`
//! whitelists a serial by writing its row; steps 3a–3c move its `CrState`
//! and record the certificates involved.

/// The device table's name, as the stack creates it.
pub const DEVICE_TABLE: &str = "CertRotationDevices";
/// The device table's hash key: the device's serial number.
pub const DEVICE_TABLE_KEY: &str = ATTR_SERIAL_NUMBER;

/// The serial number (= clientId = cert CN = thing name); the hash key.
pub const ATTR_SERIAL_NUMBER: &str = "SerialNumber";
/// The device's rotation state ([`CrState`](super::CrState)).
pub const ATTR_CR_STATE: &str = "CrState";
/// certificateId of the device's JITP-registered vendor certificate.
pub const ATTR_VENDOR_CERT_ID: &str = "VendorCertId";
/// certificateId of the manufacturer certificate issued in step 3b.
pub const ATTR_MANUFACTURER_CERT_ID: &str = "ManufacturerCertId";
/// certificateId of the Manufacturer CA that signs the device's CSR
/// (written when the serial is whitelisted).
pub const ATTR_MANUFACTURER_CA_CERT_ID: &str = "ManufacturerCaCertId";
/// jitpilot's own attribute (not the sample's): the id of a manufacturer
/// certificate being issued, written before it is registered and removed
/// once `ManufacturerCertId` is recorded. A create cut short between the two
/// (a crash) leaves it behind, so the retry can retire that certificate
/// even when it never got attached to the thing.
pub const ATTR_PENDING_MANUFACTURER_CERT_ID: &str = "PendingManufacturerCertId";
