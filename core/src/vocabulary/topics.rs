//! The MQTT topics of the walkthrough: the registration event JITP
//! publishes (step 3a, rule `rule_jitp`) and the rotation requests and
//! responses of steps 3b and 3c (rules `rule_create_man_cert` and
//! `rule_ack_man_cert`).

/// Prefix of the event AWS IoT publishes when it registers a certificate
/// (JITP, step 3a); the CA's certificateId follows.
pub const REGISTERED_TOPIC_PREFIX: &str = "$aws/events/certificates/registered/";
/// Root of the rotation topics: `/cert-rotation/<step>/<serial>/<rqst|rspn>`.
pub const CERT_ROTATION_ROOT: &str = "cert-rotation";
/// Step 3b: the device sends a CSR, gets the manufacturer certificate.
pub const CREATE_MAN_CERT: &str = "create-man-cert";
/// Step 3c: the device acknowledges the manufacturer certificate.
pub const ACK_MAN_CERT: &str = "ack-man-cert";

/// The registration event's topic for a CA:
/// `$aws/events/certificates/registered/<caCertificateId>`.
pub fn registered_topic(ca_cert_id: &str) -> String {
    format!("{REGISTERED_TOPIC_PREFIX}{ca_cert_id}")
}

/// The topic a device publishes a request to: `/cert-rotation/<step>/<serial>/rqst`.
pub fn request_topic(step: &str, serial: &str) -> String {
    format!("/{CERT_ROTATION_ROOT}/{step}/{serial}/rqst")
}

/// The topic a request's response goes to: `/cert-rotation/<step>/<serial>/rspn`.
pub fn response_topic(step: &str, serial: &str) -> String {
    format!("/{CERT_ROTATION_ROOT}/{step}/{serial}/rspn")
}

/// The filter matching every rotation topic (the observer subscribes to it).
pub const CERT_ROTATION_FILTER: &str = "/cert-rotation/#";

/// A rotation topic without its root, `<step>/<serial>/<rqst|rspn>` (how the
/// traffic and the sequence diagram show it); `None` for other topics.
pub fn strip_rotation_root(topic: &str) -> Option<&str> {
    topic
        .strip_prefix('/')?
        .strip_prefix(CERT_ROTATION_ROOT)?
        .strip_prefix('/')
}

/// The serial a rotation topic names: `/cert-rotation/<step>/<serial>/…`.
pub fn rotation_topic_serial(topic: &str) -> Option<&str> {
    strip_rotation_root(topic)?.split('/').nth(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_topics_are_built_and_read_back() {
        let rqst = request_topic(CREATE_MAN_CERT, "IUQWXALODJESC1");
        assert_eq!(rqst, "/cert-rotation/create-man-cert/IUQWXALODJESC1/rqst");
        assert_eq!(
            response_topic(ACK_MAN_CERT, "S1"),
            "/cert-rotation/ack-man-cert/S1/rspn"
        );
        assert_eq!(rotation_topic_serial(&rqst), Some("IUQWXALODJESC1"));
        assert_eq!(
            strip_rotation_root(&rqst),
            Some("create-man-cert/IUQWXALODJESC1/rqst")
        );
        assert_eq!(
            rotation_topic_serial("$aws/events/presence/connected/S1"),
            None
        );
        assert_eq!(strip_rotation_root("/cert-rotationX/a/b"), None);
        assert_eq!(
            CERT_ROTATION_FILTER.trim_end_matches('#'),
            format!("/{CERT_ROTATION_ROOT}/")
        );
        assert_eq!(
            registered_topic("ca1"),
            "$aws/events/certificates/registered/ca1"
        );
    }
}
