//! The function's input: the rule's SQL output
//! (`SELECT * as data, topic() as topic, clientId() as client_id,
//! principal() as cert_id FROM ...`), parsed into one of three events.

use super::decision::Refusal;
use super::wire::{
    response_topic, ACK_MAN_CERT, CERT_ROTATION_ROOT, CREATE_MAN_CERT, REGISTERED_TOPIC_PREFIX,
};
use serde_json::Value;

/// One invocation of the rotation function.
#[derive(Debug, Clone, PartialEq)]
pub enum RotationEvent {
    /// `$aws/events/certificates/registered/<caId>` (rule `rule_jitp`).
    Registered(RegisteredEvent),
    /// `/cert-rotation/create-man-cert/<serial>/rqst` with `{"csr": PEM}`.
    CreateManCert(CreateManCertRequest),
    /// `/cert-rotation/ack-man-cert/<serial>/rqst` with `{"cert_id": ID}`.
    AckManCert(AckManCertRequest),
}

/// AWS IoT registered a certificate signed by an auto-registering CA.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredEvent {
    /// `$aws/events/certificates/registered/<caId>`.
    pub topic: String,
    /// `certificateId` of the new (vendor) certificate.
    pub certificate_id: String,
    /// `caCertificateId` of the Vendor CA.
    pub ca_certificate_id: String,
}

/// Step 3b: a device asks for its manufacturer certificate.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateManCertRequest {
    /// `/cert-rotation/create-man-cert/<serial>/rqst`.
    pub topic: String,
    /// The serial named by the topic.
    pub serial: String,
    /// The publishing connection's MQTT clientId.
    pub client_id: Option<String>,
    /// The publishing connection's certificateId (`principal()`).
    pub principal: Option<String>,
    /// `csr` of the payload.
    pub csr: Option<String>,
}

/// Step 3c: a device confirms it uses its manufacturer certificate.
#[derive(Debug, Clone, PartialEq)]
pub struct AckManCertRequest {
    /// `/cert-rotation/ack-man-cert/<serial>/rqst`.
    pub topic: String,
    /// The serial named by the topic.
    pub serial: String,
    /// The publishing connection's MQTT clientId.
    pub client_id: Option<String>,
    /// The publishing connection's certificateId (`principal()`).
    pub principal: Option<String>,
    /// `cert_id` of the payload: the manufacturer certificate's id.
    pub cert_id: Option<String>,
}

impl RotationEvent {
    /// The topic the event came from.
    pub fn topic(&self) -> &str {
        match self {
            RotationEvent::Registered(e) => &e.topic,
            RotationEvent::CreateManCert(r) => &r.topic,
            RotationEvent::AckManCert(r) => &r.topic,
        }
    }
}

/// An event the function cannot act on; logged as a refusal.
#[derive(Debug, Clone, PartialEq)]
pub struct UnreadableEvent {
    /// The serial, when the topic names one.
    pub serial: Option<String>,
    /// The topic, when the event has one.
    pub topic: Option<String>,
    /// Where the device waits for an answer, when the topic is a request of
    /// a known step (`/cert-rotation/<step>/<serial>/rspn`).
    pub answer_to: Option<String>,
    /// Why the event cannot be acted on.
    pub refusal: Refusal,
}

/// Parses the rule's output into an event.
pub fn parse_event(input: &Value) -> Result<RotationEvent, UnreadableEvent> {
    let unreadable =
        |serial: Option<String>, topic: Option<String>, code, reason: String| UnreadableEvent {
            serial,
            topic,
            answer_to: None,
            refusal: Refusal::new(code, reason),
        };
    let Some(obj) = input.as_object() else {
        return Err(unreadable(
            None,
            None,
            "bad_event",
            "the event is not a JSON object; the rule must SELECT * as data, topic() as topic, ..."
                .into(),
        ));
    };
    let text = |key: &str| {
        obj.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let Some(topic) = text("topic") else {
        return Err(unreadable(
            None,
            None,
            "bad_event",
            "the event has no `topic`; the rule must SELECT topic() as topic".into(),
        ));
    };
    let data = obj.get("data").unwrap_or(&Value::Null);

    if let Some(ca_id) = topic.strip_prefix(REGISTERED_TOPIC_PREFIX) {
        let certificate_id = data
            .get("certificateId")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        return match certificate_id {
            Some(id) => Ok(RotationEvent::Registered(RegisteredEvent {
                certificate_id: id.to_string(),
                ca_certificate_id: data
                    .get("caCertificateId")
                    .and_then(Value::as_str)
                    .unwrap_or(ca_id)
                    .to_string(),
                topic,
            })),
            None => Err(unreadable(
                None,
                Some(topic),
                "bad_event",
                "the registered event has no `certificateId`".into(),
            )),
        };
    }

    // `/cert-rotation/<step>/<serial>/rqst`
    let parts: Vec<&str> = topic.split('/').collect();
    let (step, serial) = match parts.as_slice() {
        ["", root, step, serial, "rqst"] if *root == CERT_ROTATION_ROOT && !serial.is_empty() => {
            (*step, serial.to_string())
        }
        _ => {
            return Err(unreadable(
                None,
                Some(topic.clone()),
                "unknown_topic",
                format!(
                    "the rotation function does not handle topic {topic:?}; check the topic rules"
                ),
            ))
        }
    };
    if !data.is_object() {
        let known_step = [CREATE_MAN_CERT, ACK_MAN_CERT].contains(&step);
        let answer_to = known_step.then(|| response_topic(step, &serial));
        return Err(UnreadableEvent {
            answer_to,
            ..unreadable(
                Some(serial),
                Some(topic),
                "bad_payload",
                "the payload is not a JSON object; send {\"csr\": PEM} or {\"cert_id\": ID}".into(),
            )
        });
    }
    let field = |key: &str| {
        data.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let client_id = text("client_id");
    let principal = text("cert_id");
    match step {
        CREATE_MAN_CERT => Ok(RotationEvent::CreateManCert(CreateManCertRequest {
            csr: field("csr"),
            topic,
            serial,
            client_id,
            principal,
        })),
        ACK_MAN_CERT => Ok(RotationEvent::AckManCert(AckManCertRequest {
            cert_id: field("cert_id"),
            topic,
            serial,
            client_id,
            principal,
        })),
        other => Err(unreadable(
            Some(serial),
            Some(topic.clone()),
            "unknown_topic",
            format!("unknown rotation step {other:?} in topic {topic:?}"),
        )),
    }
}
