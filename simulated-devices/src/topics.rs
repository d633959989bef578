//! The wire contract of steps 3b and 3c: topics and payloads exactly as the
//! AWS sample's `mqtt_client.py` and rotation Lambda use them, so this device
//! works against the sample's cloud and the sample's device against jitpilot.

use jitpilot_core::vocabulary::{request_topic, response_topic, ACK_MAN_CERT, CREATE_MAN_CERT};
use serde::{Deserialize, Serialize};

/// 3b request topic: the device publishes its CSR here.
pub fn create_cert_request(serial: &str) -> String {
    request_topic(CREATE_MAN_CERT, serial)
}

/// 3b response topic: the cloud publishes the signed manufacturer cert here.
pub fn create_cert_response(serial: &str) -> String {
    response_topic(CREATE_MAN_CERT, serial)
}

/// 3c request topic: the device acknowledges the new cert here.
pub fn ack_cert_request(serial: &str) -> String {
    request_topic(ACK_MAN_CERT, serial)
}

/// 3c response topic: the cloud confirms the rotation here.
pub fn ack_cert_response(serial: &str) -> String {
    response_topic(ACK_MAN_CERT, serial)
}

/// 3b request payload: `{"csr": PEM}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateCertRequest {
    /// PKCS#10 request, PEM, CN = serial.
    pub csr: String,
}

/// 3b response payload: `{"pem": PEM, "cert_id": ID}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateCertResponse {
    /// The manufacturer certificate, PEM.
    pub pem: String,
    /// Its certificateId: lowercase hex SHA-256 of the DER.
    pub cert_id: String,
}

/// 3c request and response payload: `{"cert_id": ID}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckCert {
    /// The manufacturer certificate's certificateId.
    pub cert_id: String,
}

/// What the cloud answers instead when it refuses a 3b or 3c request:
/// `{"error": {"code", "message", "retryable"}}` on the same response topic.
/// (jitpilot's rotation function sends it; the sample's Lambda never
/// answers a refusal.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub error: Refusal,
}

/// Why the cloud refused a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Stable, snake_case: `csr_reuses_vendor_key`, `not_whitelisted`, ...
    pub code: String,
    /// For people: what is wrong and what to do.
    pub message: String,
    /// True when the same request may succeed later (`jitp_not_done`,
    /// `backend_error`); a device stops retrying on any other refusal.
    #[serde(default)]
    pub retryable: bool,
}
