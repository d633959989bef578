//! The endpoint's view of topic names and filters: the shared rules of
//! [`crate::cloud::local::topic`], with their errors as log sentences.

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
