//! MQTT 5 reason codes: the ones the endpoint sends (the ones AWS IoT
//! lists in "MQTT reason codes"), their names for the traffic pane, which
//! code tells a client why its connection is closed, and the codec's
//! per-packet reason types they map to and from.

use super::CloseReason;
use rumqttc::v5::mqttbytes::v5::{
    ConnectReturnCode as Connect5Code, DisconnectReasonCode, PubAckReason,
    SubscribeReasonCode as Sub5Code,
};

/// Reason codes the endpoint sends (MQTT 5 §2.4, the ones AWS lists).
pub const UNSPECIFIED_ERROR: u8 = 0x80;
pub const MALFORMED_PACKET: u8 = 0x81;
pub const PROTOCOL_ERROR: u8 = 0x82;
pub const CLIENT_IDENTIFIER_NOT_VALID: u8 = 0x85;
pub const BAD_USER_NAME_OR_PASSWORD: u8 = 0x86;
pub const NOT_AUTHORIZED: u8 = 0x87;
pub const SERVER_UNAVAILABLE: u8 = 0x88;
pub const SERVER_SHUTTING_DOWN: u8 = 0x8B;
pub const BAD_AUTHENTICATION_METHOD: u8 = 0x8C;
pub const KEEP_ALIVE_TIMEOUT: u8 = 0x8D;
pub const SESSION_TAKEN_OVER: u8 = 0x8E;
pub const TOPIC_FILTER_INVALID: u8 = 0x8F;
pub const TOPIC_NAME_INVALID: u8 = 0x90;
pub const TOPIC_ALIAS_INVALID: u8 = 0x94;
pub const PACKET_TOO_LARGE: u8 = 0x95;
pub const MESSAGE_RATE_TOO_HIGH: u8 = 0x96;
pub const QUOTA_EXCEEDED: u8 = 0x97;
pub const ADMINISTRATIVE_ACTION: u8 = 0x98;
pub const PAYLOAD_FORMAT_INVALID: u8 = 0x99;
pub const QOS_NOT_SUPPORTED: u8 = 0x9B;
pub const SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED: u8 = 0xA1;

/// A reason code's name, as the MQTT 5 specification and AWS's tables
/// call it (for the traffic pane and logs).
pub fn reason_name(code: u8) -> &'static str {
    match code {
        0x00 => "Success",
        0x01 => "Granted QoS 1",
        0x04 => "Disconnect with Will Message",
        0x10 => "No matching subscribers",
        0x11 => "No subscription existed",
        UNSPECIFIED_ERROR => "Unspecified error",
        MALFORMED_PACKET => "Malformed Packet",
        PROTOCOL_ERROR => "Protocol Error",
        0x83 => "Implementation specific error",
        0x84 => "Unsupported Protocol Version",
        CLIENT_IDENTIFIER_NOT_VALID => "Client Identifier not valid",
        BAD_USER_NAME_OR_PASSWORD => "Bad User Name or Password",
        NOT_AUTHORIZED => "Not authorized",
        SERVER_UNAVAILABLE => "Server unavailable",
        0x89 => "Server busy",
        SERVER_SHUTTING_DOWN => "Server shutting down",
        BAD_AUTHENTICATION_METHOD => "Bad authentication method",
        KEEP_ALIVE_TIMEOUT => "Keep Alive timeout",
        SESSION_TAKEN_OVER => "Session taken over",
        TOPIC_FILTER_INVALID => "Topic Filter invalid",
        TOPIC_NAME_INVALID => "Topic Name invalid",
        0x91 => "Packet Identifier in use",
        0x93 => "Receive Maximum exceeded",
        TOPIC_ALIAS_INVALID => "Topic Alias invalid",
        PACKET_TOO_LARGE => "Packet too large",
        MESSAGE_RATE_TOO_HIGH => "Message rate too high",
        QUOTA_EXCEEDED => "Quota exceeded",
        ADMINISTRATIVE_ACTION => "Administrative action",
        PAYLOAD_FORMAT_INVALID => "Payload format invalid",
        QOS_NOT_SUPPORTED => "QoS not supported",
        0x9E => "Shared Subscriptions not supported",
        SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED => "Subscription Identifiers not supported",
        _ => "reason code",
    }
}

/// The MQTT 5 reason code that tells a client why the endpoint closes its
/// connection for `reason` (`None`: it is not told, e.g. the socket is gone).
pub fn reason_code_for(reason: &CloseReason) -> Option<u8> {
    Some(match reason {
        CloseReason::ClientInitiated
        | CloseReason::ClientInitiatedWithWill
        | CloseReason::ConnectionLost => return None,
        CloseReason::ClientError(_) => PROTOCOL_ERROR,
        CloseReason::AuthorizationError(_) => NOT_AUTHORIZED,
        CloseReason::AuthenticationError(_) => BAD_USER_NAME_OR_PASSWORD,
        CloseReason::KeepAliveTimeout => KEEP_ALIVE_TIMEOUT,
        CloseReason::DuplicateClientId => SESSION_TAKEN_OVER,
        CloseReason::ServerInitiated => SERVER_SHUTTING_DOWN,
    })
}

/// A reason code as CONNACK can carry it; the ones only DISCONNECT has
/// become the nearest CONNACK code.
pub fn connack_code(code: u8) -> Connect5Code {
    match code {
        0x00 => Connect5Code::Success,
        MALFORMED_PACKET => Connect5Code::MalformedPacket,
        PROTOCOL_ERROR => Connect5Code::ProtocolError,
        CLIENT_IDENTIFIER_NOT_VALID => Connect5Code::ClientIdentifierNotValid,
        BAD_USER_NAME_OR_PASSWORD => Connect5Code::BadUserNamePassword,
        NOT_AUTHORIZED => Connect5Code::NotAuthorized,
        SERVER_UNAVAILABLE | SERVER_SHUTTING_DOWN => Connect5Code::ServerUnavailable,
        BAD_AUTHENTICATION_METHOD => Connect5Code::BadAuthenticationMethod,
        TOPIC_NAME_INVALID => Connect5Code::TopicNameInvalid,
        PACKET_TOO_LARGE => Connect5Code::PacketTooLarge,
        QUOTA_EXCEEDED | MESSAGE_RATE_TOO_HIGH => Connect5Code::QuotaExceeded,
        PAYLOAD_FORMAT_INVALID => Connect5Code::PayloadFormatInvalid,
        QOS_NOT_SUPPORTED => Connect5Code::QoSNotSupported,
        _ => Connect5Code::UnspecifiedError,
    }
}

pub fn connack_value(code: Connect5Code) -> u8 {
    match code {
        Connect5Code::Success => 0,
        Connect5Code::MalformedPacket => MALFORMED_PACKET,
        Connect5Code::ProtocolError => PROTOCOL_ERROR,
        Connect5Code::ClientIdentifierNotValid => CLIENT_IDENTIFIER_NOT_VALID,
        Connect5Code::BadUserNamePassword => BAD_USER_NAME_OR_PASSWORD,
        Connect5Code::NotAuthorized => NOT_AUTHORIZED,
        Connect5Code::ServerUnavailable => SERVER_UNAVAILABLE,
        Connect5Code::BadAuthenticationMethod => BAD_AUTHENTICATION_METHOD,
        Connect5Code::TopicNameInvalid => TOPIC_NAME_INVALID,
        Connect5Code::PacketTooLarge => PACKET_TOO_LARGE,
        Connect5Code::QuotaExceeded => QUOTA_EXCEEDED,
        Connect5Code::PayloadFormatInvalid => PAYLOAD_FORMAT_INVALID,
        Connect5Code::QoSNotSupported => QOS_NOT_SUPPORTED,
        _ => UNSPECIFIED_ERROR,
    }
}

pub fn disconnect_code(code: u8) -> DisconnectReasonCode {
    DisconnectReasonCode::try_from(code).unwrap_or(DisconnectReasonCode::UnspecifiedError)
}

pub fn puback_reason(code: u8) -> PubAckReason {
    match code {
        0x00 => PubAckReason::Success,
        NOT_AUTHORIZED => PubAckReason::NotAuthorized,
        TOPIC_NAME_INVALID => PubAckReason::TopicNameInvalid,
        QUOTA_EXCEEDED => PubAckReason::QuotaExceeded,
        PAYLOAD_FORMAT_INVALID => PubAckReason::PayloadFormatInvalid,
        _ => PubAckReason::UnspecifiedError,
    }
}

pub fn puback_value(reason: PubAckReason) -> u8 {
    match reason {
        PubAckReason::Success => 0,
        PubAckReason::NoMatchingSubscribers => 0x10,
        PubAckReason::UnspecifiedError => UNSPECIFIED_ERROR,
        PubAckReason::ImplementationSpecificError => 0x83,
        PubAckReason::NotAuthorized => NOT_AUTHORIZED,
        PubAckReason::TopicNameInvalid => TOPIC_NAME_INVALID,
        PubAckReason::PacketIdentifierInUse => 0x91,
        PubAckReason::QuotaExceeded => QUOTA_EXCEEDED,
        PubAckReason::PayloadFormatInvalid => PAYLOAD_FORMAT_INVALID,
    }
}

pub fn suback_value(code: Sub5Code) -> u8 {
    match code {
        Sub5Code::Success(qos) => qos as u8,
        Sub5Code::Failure | Sub5Code::Unspecified => UNSPECIFIED_ERROR,
        Sub5Code::ImplementationSpecific => 0x83,
        Sub5Code::NotAuthorized => NOT_AUTHORIZED,
        Sub5Code::TopicFilterInvalid => TOPIC_FILTER_INVALID,
        Sub5Code::PkidInUse => 0x91,
        Sub5Code::QuotaExceeded => QUOTA_EXCEEDED,
        Sub5Code::SharedSubscriptionsNotSupported => 0x9E,
        Sub5Code::SubscriptionIdNotSupported => SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
        Sub5Code::WildcardSubscriptionsNotSupported => 0xA2,
    }
}
