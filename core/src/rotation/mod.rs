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
//! - `wire.rs`            a device-table row; the names are in [`crate::vocabulary`]
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

pub use decision::{error_response, Decision, Effect, Outcome, Plan, Refusal, SignRequest};
pub use event::{parse_event, RotationEvent};
pub use executor::{Backends, Invocation, RotationError, RotationFunction};
pub use traits::{AuditSink, BackendError, BackendResult, DeviceTable, ParameterStore, Registry};
pub use wire::{CrState, DeviceRow};

pub use crate::vocabulary::CSR_KEY_REUSE_ENV;

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
    /// What to do with a CSR that reuses the vendor key: the stack's
    /// `CsrKeyReuse` parameter, read from the function's environment.
    #[serde(default)]
    pub csr_key_reuse: CsrKeyReuse,
}

impl Default for RotationConfig {
    /// One year, any supported key type, key reuse refused.
    fn default() -> Self {
        RotationConfig {
            validity_days: 365,
            key_algorithm: None,
            csr_key_reuse: CsrKeyReuse::Refuse,
        }
    }
}

impl RotationConfig {
    /// This configuration with the settings the function's environment
    /// names (`CSR_KEY_REUSE`); variables that are absent leave it as is.
    pub fn with_environment(
        mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<RotationConfig, String> {
        if let Some(value) = lookup(CSR_KEY_REUSE_ENV) {
            self.csr_key_reuse = CsrKeyReuse::parse(&value)?;
        }
        Ok(self)
    }
}

/// What the function does with a CSR whose public key is the device's
/// vendor key. The AWS sample's device does exactly that (it builds its CSR
/// from the factory key), so a manufacturer certificate adds no new secret:
/// whoever copied the vendor key also holds the rotated identity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CsrKeyReuse {
    /// Refuse it (`csr_reuses_vendor_key`), telling the device to make a
    /// new key pair. jitpilot's default.
    #[default]
    Refuse,
    /// Sign it, as the sample does, and mark the event insecure with why.
    Warn,
}

impl CsrKeyReuse {
    /// The parameter's spelling: `refuse` or `warn`.
    pub fn as_str(self) -> &'static str {
        match self {
            CsrKeyReuse::Refuse => "refuse",
            CsrKeyReuse::Warn => "warn",
        }
    }

    /// Parses `refuse` or `warn` (any case); anything else says what is allowed.
    pub fn parse(value: &str) -> Result<CsrKeyReuse, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "refuse" => Ok(CsrKeyReuse::Refuse),
            "warn" => Ok(CsrKeyReuse::Warn),
            other => Err(format!(
                "{CSR_KEY_REUSE_ENV}={other:?} is not a CsrKeyReuse setting; use `refuse` or `warn` (jitpilot deploy --parameter-overrides CsrKeyReuse=warn)"
            )),
        }
    }
}
