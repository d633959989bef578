//! The rotation function's side of the wire contract (DESIGN §1): a row of
//! the device table as the function reads and writes it. The names
//! themselves — topics, table attributes, states, policy and parameter
//! names — live in [`crate::vocabulary`] and are re-exported here for the
//! function's modules.

use serde_json::Value;

pub use crate::vocabulary::{
    ca_key_parameter, request_topic, response_topic, CrState, ACK_MAN_CERT, ATTR_CR_STATE,
    ATTR_MANUFACTURER_CA_CERT_ID, ATTR_MANUFACTURER_CERT_ID, ATTR_PENDING_MANUFACTURER_CERT_ID,
    ATTR_SERIAL_NUMBER, ATTR_VENDOR_CERT_ID, CA_KEY_PARAMETER_PREFIX, CERT_ROTATION_ROOT,
    CREATE_MAN_CERT, IN_PROGRESS_POLICY, REGISTERED_TOPIC_PREFIX, ROTATION_COMPLETE_POLICY,
};

/// A table item (the store's `Item`: attribute name → JSON value).
pub type Item = serde_json::Map<String, Value>;

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
