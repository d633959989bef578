//! The checks both MQTT versions make the same way, in AWS IoT's words: a
//! clientId's length, QoS 2 (not supported), a payload over AWS's limit,
//! `iot:Publish` and `iot:Subscribe`, the QoS a subscription is granted,
//! and packets in the wrong place. MQTT 3.1.1 closes the connection on
//! each; MQTT 5 (`v5.rs`) sends the reason code that goes with it, and
//! for a refused PUBLISH or filter stays up.

use super::{Authorize, CloseReason};
use crate::cloud::local::endpoint::limits::MAX_CLIENT_ID_BYTES;
use crate::cloud::local::endpoint::topics::check_filter;
use rumqttc::mqttbytes::QoS;

/// A clientId AWS accepts: 1 to 128 bytes.
pub fn check_client_id(client_id: &str) -> Result<(), CloseReason> {
    if client_id.is_empty() || client_id.len() > MAX_CLIENT_ID_BYTES {
        return Err(CloseReason::ClientError(format!(
            "clientId must be 1..={MAX_CLIENT_ID_BYTES} bytes (got {})",
            client_id.len()
        )));
    }
    Ok(())
}

/// A PUBLISH with QoS 2.
pub fn publish_qos2() -> CloseReason {
    CloseReason::ClientError("PUBLISH with QoS 2: AWS IoT supports QoS 0 and 1".into())
}

/// A last will with QoS 2, in words.
pub const WILL_QOS2: &str = "last will with QoS 2: AWS IoT supports QoS 0 and 1";

/// PUBREC, PUBREL or PUBCOMP from a client.
pub fn qos2_flow() -> CloseReason {
    CloseReason::ClientError("QoS 2 flow packets: AWS IoT does not support QoS 2".into())
}

/// A payload within the endpoint's limit (AWS: 128 KiB).
pub fn check_payload(len: usize, max: usize) -> Result<(), CloseReason> {
    if len > max {
        return Err(CloseReason::ClientError(format!(
            "payload of {len} bytes exceeds the limit of {max} bytes (AWS: 128 KiB)"
        )));
    }
    Ok(())
}

/// `iot:Publish` on `topic/<topic>`.
pub fn check_may_publish(topic: &str, authz: &dyn Authorize) -> Result<(), CloseReason> {
    if !authz.may_publish(topic) {
        return Err(CloseReason::AuthorizationError(format!(
            "iot:Publish on topic/{topic} is not allowed by the certificate's policies"
        )));
    }
    Ok(())
}

/// Why one filter of a SUBSCRIBE is refused.
pub enum FilterRefused {
    /// Not a valid filter (MQTT 5: 0x8F).
    Invalid(String),
    /// `iot:Subscribe` denied (MQTT 5: 0x87).
    NotAuthorized(String),
}

/// The QoS a filter is granted: a valid filter `iot:Subscribe` allows,
/// at most QoS 1 (no QoS 2 on AWS IoT).
pub fn grant(
    filter: &str,
    at_most_once: bool,
    authz: &dyn Authorize,
) -> Result<QoS, FilterRefused> {
    check_filter(filter).map_err(FilterRefused::Invalid)?;
    if !authz.may_subscribe(filter) {
        return Err(FilterRefused::NotAuthorized(format!(
            "iot:Subscribe on topicfilter/{filter} is not allowed by the certificate's policies"
        )));
    }
    Ok(if at_most_once {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    })
}

/// Any packet but CONNECT first.
pub fn before_connect(packet: &str) -> CloseReason {
    CloseReason::ClientError(format!(
        "{packet} before CONNECT; the first packet must be CONNECT"
    ))
}

/// A second CONNECT.
pub fn second_connect() -> CloseReason {
    CloseReason::ClientError("second CONNECT on one connection".into())
}

/// AUTH, or a CONNECT with an Authentication Method (MQTT 5), in words.
pub const NO_ENHANCED_AUTH: &str = "AWS IoT does not support MQTT 5 enhanced authentication";

/// CONNACK, SUBACK, UNSUBACK or PINGRESP from a client.
pub fn sent_by_brokers(packet: &str) -> CloseReason {
    CloseReason::ClientError(format!("{packet} is sent by brokers, not clients"))
}
