//! The rotation function: the sample's Lambda, cloud agnostic.
//!
//! It handles three events, with the sample's topics, payloads, parameter
//! name, table attributes and state names (DESIGN §1, the wire contract):
//! the `$aws/events/certificates/registered/<caId>` event (rule `rule_jitp`),
//! `/cert-rotation/create-man-cert/<serial>/rqst` and
//! `/cert-rotation/ack-man-cert/<serial>/rqst`.
//!
//! ## Layout
//!
//! The decisions are pure and IO-free, like rumqttc's `state.rs`: a handler
//! takes the event and the facts it needs and returns a [`Decision`] — an
//! [`Outcome`] with the [`Effect`]s that carry it out. The executor reads the
//! facts, performs the effects through the [`traits`] and records every
//! outcome with its reason.
//!
//! - `wire.rs`            the wire contract: topics, states, attributes, names
//! - `event.rs`           the rule's output → [`RotationEvent`]
//! - `registered.rs`      step 3a: the registered event (whitelist check)
//! - `create_man_cert.rs` step 3b: sign the CSR, answer with the manufacturer cert
//! - `ack_man_cert.rs`    step 3c: retire the vendor cert, answer the ack
//! - `decision.rs`        [`Decision`], [`Plan`], [`Effect`], [`Outcome`], [`Refusal`]
//! - `traits.rs`          [`Registry`], [`DeviceTable`], [`ParameterStore`], [`AuditSink`]
//! - `executor.rs`        [`RotationFunction`]: facts in, effects out

pub mod ack_man_cert;
pub mod create_man_cert;
pub mod decision;
pub mod event;
mod executor;
pub mod registered;
pub mod traits;
pub mod wire;

#[cfg(test)]
mod tests;

pub use decision::{Decision, Effect, Outcome, Plan, Refusal, SignRequest};
pub use event::{parse_event, RotationEvent};
pub use executor::{Backends, Invocation, RotationError, RotationFunction};
pub use traits::{AuditSink, BackendError, BackendResult, DeviceTable, ParameterStore, Registry};
pub use wire::{CrState, DeviceRow};

use crate::pki::KeyAlgorithm;
use serde::{Deserialize, Serialize};

/// Publishes an MQTT message as the cloud (IoT data plane `Publish`). The
/// local endpoint's router implements it; on AWS, `iot-data:Publish`.
pub trait Publisher: Send + Sync {
    /// Publishes `payload` to `topic` at QoS 1 (never blocks for long).
    fn publish(&self, topic: &str, payload: Vec<u8>);
}

/// How manufacturer certificates are issued; from the fleet definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RotationConfig {
    /// Validity of a manufacturer certificate, in days.
    pub validity_days: u32,
    /// When set, a CSR whose key is of another type is refused, so the
    /// fleet ends with the key type its definition names.
    pub key_algorithm: Option<KeyAlgorithm>,
}

impl Default for RotationConfig {
    /// One year, any supported key type.
    fn default() -> Self {
        RotationConfig {
            validity_days: 365,
            key_algorithm: None,
        }
    }
}
