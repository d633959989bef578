//! The wire contract shared with devices written for the AWS sample: topics,
//! table attributes, state names, policy names, the CA key parameter
//! (DESIGN §1). Changing any string here breaks existing devices.

use serde_json::Value;

/// A table item (the store's `Item`: attribute name → JSON value).
pub type Item = serde_json::Map<String, Value>;

/// Prefix of the event AWS IoT publishes when it registers a certificate
/// (JITP); the CA's certificateId follows.
pub const REGISTERED_TOPIC_PREFIX: &str = "$aws/events/certificates/registered/";
/// Root of the rotation topics: `/cert-rotation/<step>/<serial>/<rqst|rspn>`.
pub const CERT_ROTATION_ROOT: &str = "cert-rotation";
/// Step 3b: the device sends a CSR, gets the manufacturer certificate.
pub const CREATE_MAN_CERT: &str = "create-man-cert";
/// Step 3c: the device acknowledges the manufacturer certificate.
pub const ACK_MAN_CERT: &str = "ack-man-cert";

/// Policy the JITP template attaches to a vendor certificate.
pub const IN_PROGRESS_POLICY: &str = "CrInProgressCertPolicy";
/// Policy attached to the manufacturer certificate.
pub const ROTATION_COMPLETE_POLICY: &str = "CrCertRotationCompleteCertPolicy";

/// Parameter holding a CA's private key (SecureString, PEM); the CA's
/// certificateId follows.
pub const CA_KEY_PARAMETER_PREFIX: &str = "cr-ca-key-";

/// Device table attributes.
pub const ATTR_SERIAL_NUMBER: &str = "SerialNumber";
/// The device's rotation state ([`CrState`]).
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

/// The topic a request's response goes to: `/cert-rotation/<step>/<serial>/rspn`.
pub fn response_topic(step: &str, serial: &str) -> String {
    format!("/{CERT_ROTATION_ROOT}/{step}/{serial}/rspn")
}

/// The topic a device publishes a request to: `/cert-rotation/<step>/<serial>/rqst`.
pub fn request_topic(step: &str, serial: &str) -> String {
    format!("/{CERT_ROTATION_ROOT}/{step}/{serial}/rqst")
}

/// Name of the parameter holding the CA key: `cr-ca-key-<caCertificateId>`.
pub fn ca_key_parameter(ca_cert_id: &str) -> String {
    format!("{CA_KEY_PARAMETER_PREFIX}{ca_cert_id}")
}

/// Where a device is in the rotation, as the sample names the states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrState {
    /// The serial may onboard (written by `init`).
    Whitelisted,
    /// JITP registered the vendor cert and created the thing (step 3a done).
    ThingCreated,
    /// The manufacturer cert was issued (step 3b done).
    ManCertCreated,
    /// The vendor cert is gone; the device uses its manufacturer cert (3c done).
    CertRotationCompleted,
}

impl CrState {
    /// The sample's spelling: `CR_WHITELISTED`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            CrState::Whitelisted => "CR_WHITELISTED",
            CrState::ThingCreated => "CR_THING_CREATED",
            CrState::ManCertCreated => "CR_MAN_CERT_CREATED",
            CrState::CertRotationCompleted => "CR_CERT_ROTATION_COMPLETED",
        }
    }

    /// Parses the sample's spelling; `None` for anything else.
    pub fn parse(s: &str) -> Option<CrState> {
        Some(match s {
            "CR_WHITELISTED" => CrState::Whitelisted,
            "CR_THING_CREATED" => CrState::ThingCreated,
            "CR_MAN_CERT_CREATED" => CrState::ManCertCreated,
            "CR_CERT_ROTATION_COMPLETED" => CrState::CertRotationCompleted,
            _ => return None,
        })
    }
}

impl std::fmt::Display for CrState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of `CertRotationDevices`. Keeps the whole item so that attributes
/// this function does not know survive its writes.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRow {
    item: Item,
}

impl DeviceRow {
    /// Wraps a table item.
    pub fn from_item(item: Item) -> DeviceRow {
        DeviceRow { item }
    }

    /// A whitelisted row, as `init` writes it.
    pub fn whitelisted(serial: &str, manufacturer_ca_cert_id: &str) -> DeviceRow {
        let mut item = Item::new();
        item.insert(ATTR_SERIAL_NUMBER.into(), Value::from(serial));
        item.insert(
            ATTR_CR_STATE.into(),
            Value::from(CrState::Whitelisted.as_str()),
        );
        item.insert(
            ATTR_MANUFACTURER_CA_CERT_ID.into(),
            Value::from(manufacturer_ca_cert_id),
        );
        DeviceRow { item }
    }

    /// The item to write back.
    pub fn item(&self) -> &Item {
        &self.item
    }

    fn text(&self, attr: &str) -> Option<&str> {
        self.item
            .get(attr)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    /// `SerialNumber`.
    pub fn serial(&self) -> Option<&str> {
        self.text(ATTR_SERIAL_NUMBER)
    }

    /// `CrState` as written (may be a state this version does not know).
    pub fn raw_state(&self) -> Option<&str> {
        self.text(ATTR_CR_STATE)
    }

    /// `CrState`, when it is one of the four known states.
    pub fn state(&self) -> Option<CrState> {
        self.raw_state().and_then(CrState::parse)
    }

    /// `VendorCertId`.
    pub fn vendor_cert_id(&self) -> Option<&str> {
        self.text(ATTR_VENDOR_CERT_ID)
    }

    /// `ManufacturerCertId`.
    pub fn manufacturer_cert_id(&self) -> Option<&str> {
        self.text(ATTR_MANUFACTURER_CERT_ID)
    }

    /// `ManufacturerCaCertId`.
    pub fn manufacturer_ca_cert_id(&self) -> Option<&str> {
        self.text(ATTR_MANUFACTURER_CA_CERT_ID)
    }

    /// `PendingManufacturerCertId` (jitpilot's crash-recovery attribute).
    pub fn pending_manufacturer_cert_id(&self) -> Option<&str> {
        self.text(ATTR_PENDING_MANUFACTURER_CERT_ID)
    }

    /// The same row in another state.
    pub fn with_state(mut self, state: CrState) -> DeviceRow {
        self.item
            .insert(ATTR_CR_STATE.into(), Value::from(state.as_str()));
        self
    }

    /// Sets or (with `None`) removes an attribute.
    pub fn with_attr(mut self, attr: &str, value: Option<&str>) -> DeviceRow {
        match value {
            Some(v) => {
                self.item.insert(attr.into(), Value::from(v));
            }
            None => {
                self.item.remove(attr);
            }
        }
        self
    }
}
