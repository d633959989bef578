//! AWS IoT's reserved event topics and their payloads, with AWS's field
//! names, so a rule or subscriber written for AWS works unchanged.
//!
//! - `$aws/events/presence/connected/<clientId>` and `.../disconnected/<clientId>`
//! - `$aws/events/subscriptions/subscribed/<clientId>` and `.../unsubscribed/<clientId>`
//! - `$aws/events/certificates/registered/<caCertificateId>` (JITP's trigger)

use crate::cloud::local::LOCAL_ACCOUNT_ID;
use crate::model::{now_millis, EpochMillis};
use crate::vocabulary::registered_topic;
use serde_json::{json, Value};

/// Who a lifecycle event is about.
#[derive(Debug, Clone)]
pub struct Presence<'a> {
    pub client_id: &'a str,
    /// Unique per connection (AWS: a UUID), lowercase hex here.
    pub session_identifier: &'a str,
    /// The connection's certificateId.
    pub principal_identifier: &'a str,
    pub ip_address: String,
    /// Increases with every connect of this clientId; orders events.
    pub version_number: u64,
}

/// `$aws/events/presence/connected/<clientId>` and its payload.
pub fn connected(p: &Presence<'_>) -> (String, Value) {
    (
        format!("$aws/events/presence/connected/{}", p.client_id),
        json!({
            "clientId": p.client_id,
            "timestamp": now_millis(),
            "eventType": "connected",
            "sessionIdentifier": p.session_identifier,
            "principalIdentifier": p.principal_identifier,
            "ipAddress": p.ip_address,
            "versionNumber": p.version_number,
        }),
    )
}

/// `$aws/events/presence/disconnected/<clientId>` and its payload.
pub fn disconnected(p: &Presence<'_>, reason: &str, client_initiated: bool) -> (String, Value) {
    (
        format!("$aws/events/presence/disconnected/{}", p.client_id),
        json!({
            "clientId": p.client_id,
            "timestamp": now_millis(),
            "eventType": "disconnected",
            "clientInitiatedDisconnect": client_initiated,
            "sessionIdentifier": p.session_identifier,
            "principalIdentifier": p.principal_identifier,
            "disconnectReason": reason,
            "versionNumber": p.version_number,
        }),
    )
}

/// `$aws/events/subscriptions/subscribed|unsubscribed/<clientId>` and its payload.
pub fn subscriptions(p: &Presence<'_>, subscribed: bool, topics: &[String]) -> (String, Value) {
    let event = if subscribed {
        "subscribed"
    } else {
        "unsubscribed"
    };
    (
        format!("$aws/events/subscriptions/{event}/{}", p.client_id),
        json!({
            "clientId": p.client_id,
            "timestamp": now_millis(),
            "eventType": event,
            "sessionIdentifier": p.session_identifier,
            "principalIdentifier": p.principal_identifier,
            "topics": topics,
        }),
    )
}

/// `$aws/events/certificates/registered/<caCertificateId>` and its payload:
/// what AWS publishes when auto-registration registers a device certificate.
pub fn certificate_registered(
    certificate_id: &str,
    ca_certificate_id: &str,
    certificate_status: &str,
    registered_at: EpochMillis,
) -> (String, Value) {
    (
        registered_topic(ca_certificate_id),
        json!({
            "certificateId": certificate_id,
            "caCertificateId": ca_certificate_id,
            "timestamp": now_millis(),
            "certificateStatus": certificate_status,
            "awsAccountId": LOCAL_ACCOUNT_ID,
            "certificateRegistrationTimestamp": registered_at.to_string(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_event_has_awss_fields() {
        let (topic, body) = certificate_registered("c1", "ca1", "PENDING_ACTIVATION", 42);
        assert_eq!(topic, "$aws/events/certificates/registered/ca1");
        for field in [
            "certificateId",
            "caCertificateId",
            "timestamp",
            "certificateStatus",
            "awsAccountId",
            "certificateRegistrationTimestamp",
        ] {
            assert!(body.get(field).is_some(), "missing {field}");
        }
        assert_eq!(body["certificateStatus"], "PENDING_ACTIVATION");
    }

    #[test]
    fn disconnected_carries_the_reason() {
        let p = Presence {
            client_id: "dev1",
            session_identifier: "s",
            principal_identifier: "cert",
            ip_address: "127.0.0.1".into(),
            version_number: 3,
        };
        let (topic, body) = disconnected(&p, "DUPLICATE_CLIENTID", false);
        assert_eq!(topic, "$aws/events/presence/disconnected/dev1");
        assert_eq!(body["disconnectReason"], "DUPLICATE_CLIENTID");
        assert_eq!(body["versionNumber"], 3);
    }
}
