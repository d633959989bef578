//! MQTT topic names and filters: validation and matching.
//!
//! A *topic name* is what a PUBLISH carries (`/cert-rotation/create-man-cert/ABC/rqst`);
//! a *topic filter* is what a SUBSCRIBE or a rule's `FROM` carries and may hold
//! the wildcards `+` (exactly one level) and `#` (this level and every level
//! below, last only). The endpoint's router, its authorization and the rules
//! engine all use these functions, so that "does this filter match this topic"
//! has one answer everywhere.
//!
//! Topics that start with `$` (`$aws/events/...`) are reserved: MQTT 3.1.1
//! §4.7.2 says a filter starting with a wildcard must not match them, so
//! `#` does not receive AWS's lifecycle events — only `$aws/events/#` does.

/// AWS IoT's limit on the length of a topic name or filter, in UTF-8 bytes.
pub const MAX_TOPIC_BYTES: usize = 256;

/// Why a topic name or filter is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// MQTT forbids empty topic names and filters.
    #[error("the topic is empty; give a topic such as `things/<serial>/data`")]
    Empty,
    /// Longer than [`MAX_TOPIC_BYTES`].
    #[error("the topic is {len} bytes long; AWS IoT allows at most {MAX_TOPIC_BYTES}")]
    TooLong {
        /// Length in bytes.
        len: usize,
    },
    /// U+0000 is forbidden by MQTT 3.1.1 §1.5.3.
    #[error("the topic contains a NUL character, which MQTT forbids")]
    Nul,
    /// A topic name (PUBLISH) holds `+` or `#`.
    #[error("the topic name `{topic}` contains a wildcard (`+` or `#`); wildcards are only allowed in subscriptions")]
    WildcardInName {
        /// The offending topic name.
        topic: String,
    },
    /// A filter holds a wildcard that is not a whole level, or `#` not last.
    #[error("the topic filter `{filter}` is invalid: {reason}")]
    BadFilter {
        /// The offending filter.
        filter: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

fn check_common(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.len() > MAX_TOPIC_BYTES {
        return Err(TopicError::TooLong { len: topic.len() });
    }
    if topic.contains('\0') {
        return Err(TopicError::Nul);
    }
    Ok(())
}

/// Checks a topic name as a PUBLISH may carry it: non-empty, at most
/// [`MAX_TOPIC_BYTES`], no NUL, no wildcards.
pub fn validate_topic_name(topic: &str) -> Result<(), TopicError> {
    check_common(topic)?;
    if topic.contains(['+', '#']) {
        return Err(TopicError::WildcardInName {
            topic: topic.to_string(),
        });
    }
    Ok(())
}

/// Checks a topic filter as a SUBSCRIBE or a rule's `FROM` may carry it:
/// non-empty, at most [`MAX_TOPIC_BYTES`], no NUL, `+` only as a whole level,
/// `#` only as a whole level and only as the last one.
pub fn validate_filter(filter: &str) -> Result<(), TopicError> {
    check_common(filter)?;
    let bad = |reason| {
        Err(TopicError::BadFilter {
            filter: filter.to_string(),
            reason,
        })
    };
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let last = levels.peek().is_none();
        match level {
            "#" if !last => return bad("`#` must be the last level"),
            "#" | "+" => {}
            _ if level.contains('#') => return bad("`#` must be a whole level, as in `a/#`"),
            _ if level.contains('+') => return bad("`+` must be a whole level, as in `a/+/b`"),
            _ => {}
        }
    }
    Ok(())
}

/// True when `topic` (a valid topic name) is matched by `filter` (a valid
/// filter). `a/#` also matches `a` (MQTT 3.1.1 §4.7.1.2); a leading `+` or
/// `#` does not match a `$` topic.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for filter_level in filter.split('/') {
        match filter_level {
            "#" => return true,
            "+" => {
                if topic_levels.next().is_none() {
                    return false;
                }
            }
            literal => {
                if topic_levels.next() != Some(literal) {
                    return false;
                }
            }
        }
    }
    topic_levels.next().is_none()
}

/// True when the filter holds no wildcard, so it matches exactly one topic.
pub fn is_exact(filter: &str) -> bool {
    !filter.contains(['+', '#'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn topic_names_are_checked_as_aws_does() {
        assert!(validate_topic_name("/cert-rotation/create-man-cert/IUQWXALODJESC1/rqst").is_ok());
        assert!(validate_topic_name("$aws/events/presence/connected/abc").is_ok());
        assert_eq!(validate_topic_name(""), Err(TopicError::Empty));
        assert!(matches!(
            validate_topic_name("a/+/b"),
            Err(TopicError::WildcardInName { .. })
        ));
        assert!(matches!(
            validate_topic_name("a/#"),
            Err(TopicError::WildcardInName { .. })
        ));
        assert_eq!(validate_topic_name("a\0b"), Err(TopicError::Nul));
        let long = "a".repeat(MAX_TOPIC_BYTES + 1);
        assert_eq!(
            validate_topic_name(&long),
            Err(TopicError::TooLong {
                len: MAX_TOPIC_BYTES + 1
            })
        );
        assert!(validate_topic_name(&"a".repeat(MAX_TOPIC_BYTES)).is_ok());
    }

    #[test]
    fn filters_need_whole_level_wildcards_and_hash_last() {
        for ok in [
            "#",
            "+",
            "a/+/b",
            "a/#",
            "+/+",
            "/cert-rotation/create-man-cert/+/rqst",
        ] {
            assert!(validate_filter(ok).is_ok(), "{ok}");
        }
        for bad in ["a/#/b", "a+/b", "a/b#", "#/a", "a/++", ""] {
            assert!(validate_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matching_follows_mqtt() {
        assert!(matches("a/+/c", "a/b/c"));
        assert!(!matches("a/+/c", "a/b/d"));
        assert!(!matches("a/+", "a/b/c"));
        assert!(matches("a/+", "a/"));
        assert!(matches("a/#", "a"));
        assert!(matches("a/#", "a/b/c"));
        assert!(!matches("a/#", "ab"));
        assert!(matches("#", "a/b"));
        assert!(matches("+/+", "/a"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(!matches("a/b/c", "a/b"));
        assert!(matches(
            "/cert-rotation/create-man-cert/+/rqst",
            "/cert-rotation/create-man-cert/IUQWXALODJESC1/rqst"
        ));
        assert!(!matches(
            "/cert-rotation/create-man-cert/+/rqst",
            "/cert-rotation/create-man-cert/IUQWXALODJESC1/rspn"
        ));
    }

    #[test]
    fn dollar_topics_need_an_explicit_first_level() {
        let registered = "$aws/events/certificates/registered/0123abcd";
        assert!(!matches("#", registered));
        assert!(!matches("+/events/#", registered));
        assert!(matches("$aws/events/certificates/registered/#", registered));
        assert!(matches("$aws/events/+/registered/+", registered));
    }

    /// A filter built from a topic by replacing some levels with `+` and
    /// maybe cutting the tail with `#` always matches that topic.
    fn topic_and_covering_filter() -> impl Strategy<Value = (String, String)> {
        prop::collection::vec("[a-z0-9$]{0,4}", 1..6)
            .prop_flat_map(|levels| {
                let n = levels.len();
                (Just(levels), prop::collection::vec(any::<bool>(), n), 0..=n).prop_map(
                    move |(levels, plus, cut)| {
                        let topic = levels.join("/");
                        let mut filter: Vec<String> = levels
                            .iter()
                            .zip(&plus)
                            .enumerate()
                            // A leading wildcard never matches a `$` topic; keep level 0 literal there.
                            .map(|(i, (l, p))| {
                                if *p && !(i == 0 && topic.starts_with('$')) {
                                    "+".to_string()
                                } else {
                                    l.clone()
                                }
                            })
                            .collect();
                        if cut < n && !(cut == 0 && topic.starts_with('$')) {
                            filter.truncate(cut);
                            filter.push("#".into());
                        }
                        (topic, filter.join("/"))
                    },
                )
            })
            .prop_filter("MQTT topics are not empty", |(topic, _)| !topic.is_empty())
    }

    proptest! {
        #[test]
        fn covering_filters_match((topic, filter) in topic_and_covering_filter()) {
            prop_assert!(validate_filter(&filter).is_ok(), "{}", filter);
            prop_assert!(matches(&filter, &topic), "{} should match {}", filter, topic);
        }

        #[test]
        fn exact_filters_match_only_themselves(a in "[a-z/]{1,12}", b in "[a-z/]{1,12}") {
            prop_assert_eq!(matches(&a, &b), a == b);
        }

        #[test]
        fn matching_never_panics(filter in "[a-z+#/$]{0,16}", topic in "[a-z/$]{0,16}") {
            let _ = matches(&filter, &topic);
            let _ = validate_filter(&filter);
            let _ = validate_topic_name(&topic);
        }
    }
}
