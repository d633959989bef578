//! The endpoint's view of topic names and filters: the shared rules of
//! [`crate::cloud::local::topic`], with their errors as log sentences, and
//! AWS's limits on top (topic length, shared subscriptions' share names).

use super::limits::MAX_TOPIC_BYTES;
use crate::cloud::local::topic;

/// A topic name a PUBLISH may carry.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    topic::validate_topic_name(name).map_err(|e| e.to_string())
}

/// A filter a SUBSCRIBE or UNSUBSCRIBE may carry.
pub fn validate_filter(filter: &str) -> Result<(), String> {
    topic::validate_filter(filter).map_err(|e| e.to_string())
}

/// True when `filter` matches `name` (`$` topics not matched by leading wildcards).
pub fn matches(filter: &str, name: &str) -> bool {
    topic::matches(filter, name)
}

/// True when the filter holds no wildcard.
pub fn is_exact(filter: &str) -> bool {
    topic::is_exact(filter)
}

/// A topic name a client may publish to: AWS's length limit, then the
/// MQTT rules (non-empty, no wildcards).
pub fn check_topic_name(topic: &str) -> Result<(), String> {
    if topic.len() > MAX_TOPIC_BYTES {
        return Err(format!(
            "topic of {} bytes exceeds AWS's {MAX_TOPIC_BYTES}",
            topic.len()
        ));
    }
    validate_topic_name(topic)
}

/// A topic filter a client may subscribe to; a shared subscription's
/// `$share/{ShareName}/{filter}` too (AWS: a share name of 1..=128 bytes
/// without `/`, `+` or `#`, then a filter of at most 256 bytes).
pub fn check_filter(filter: &str) -> Result<(), String> {
    if let Some(rest) = filter.strip_prefix("$share/") {
        let Some((share, inner)) = rest.split_once('/') else {
            return Err(format!(
                "shared subscription {filter:?} must be $share/{{ShareName}}/{{filter}}"
            ));
        };
        if share.is_empty() || share.len() > 128 || share.contains(['+', '#']) {
            return Err(format!(
                "shared subscription {filter:?}: the share name must be 1..=128 bytes without + or #"
            ));
        }
        return check_filter(inner).map_err(|why| format!("shared subscription: {why}"));
    }
    if filter == "$share" {
        return Err("shared subscription \"$share\" needs a share name and a filter".into());
    }
    if filter.len() > MAX_TOPIC_BYTES {
        return Err(format!(
            "topic filter of {} bytes exceeds AWS's {MAX_TOPIC_BYTES}",
            filter.len()
        ));
    }
    validate_filter(filter)
}

/// The filter of a shared subscription (`$share/{ShareName}/{filter}`).
pub fn shared_filter(filter: &str) -> Option<&str> {
    let rest = filter.strip_prefix("$share/")?;
    let (_, inner) = rest.split_once('/')?;
    Some(inner)
}
