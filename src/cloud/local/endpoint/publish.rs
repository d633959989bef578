//! Publishing into the endpoint, as the rules engine and the functions see
//! it: the [`Publish`] trait, which the router implements, and
//! [`CloudPublisher`], the IoT data plane's `Publish` that functions
//! ("Lambdas") use to answer devices.
//!
//! The trait is what keeps the rules engine below the router: the router
//! runs the rules on every routed message, and a rule's republish (or a
//! function's answer) goes back in through this trait, not by naming the
//! router.

use super::message::{Message, Origin};
use super::topics::check_topic_name;
use rumqttc::mqttbytes::QoS;
use std::sync::Arc;

/// Routes a message as if it had just been published.
pub trait Publish: Send + Sync {
    /// Routes `message` from `origin`: retained store, subscribers, rules.
    /// A message the router refuses (a full retained store) is logged.
    fn publish(self: Arc<Self>, message: Message, origin: Origin);
}

/// Publishes as the cloud (the IoT data plane's `Publish`): what functions
/// ("Lambdas") use to answer devices. Cheap to clone.
#[derive(Clone)]
pub struct CloudPublisher {
    target: Arc<dyn Publish>,
}

impl CloudPublisher {
    /// Publishes through `target` (the router).
    pub fn new(target: Arc<dyn Publish>) -> CloudPublisher {
        CloudPublisher { target }
    }
}

impl crate::rotation::Publisher for CloudPublisher {
    fn publish(&self, topic: &str, payload: Vec<u8>) {
        if let Err(why) = check_topic_name(topic) {
            tracing::warn!(topic, error = %why, "cloud publish refused");
            return;
        }
        let message = Message {
            topic: topic.to_string(),
            payload: bytes::Bytes::from(payload),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: None,
        };
        self.target.clone().publish(message, Origin::cloud());
    }
}
