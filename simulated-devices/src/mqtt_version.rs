//! Which MQTT a device speaks, and the MQTT 5 side of its connection
//! (rumqttc's `v5` client). The shell drives either through
//! [`crate::shell`]'s `Connection`; the onboarding machine never knows which.
//!
//! An MQTT 5 endpoint says *why* it refuses: a CONNACK, PUBACK, SUBACK or
//! DISCONNECT reason code and reason string. They become the reason of the
//! machine's `Closed`/`ConnectFailed` input, so a refused device reports
//! `PUBACK 0x87 Not authorized: iot:Publish on … is not allowed` instead of
//! "the endpoint closed the connection".

use crate::machine::Input;
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason, SubscribeReasonCode};
use rumqttc::v5::{ConnectionError, Event, StateError};
use std::str::FromStr;

/// The MQTT protocol a device speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum MqttVersion {
    /// MQTT 3.1.1 (AWS IoT's long-standing protocol; the sample's devices).
    #[default]
    #[serde(rename = "3.1.1")]
    V311,
    /// MQTT 5 (AWS IoT Device SDKs' `Mqtt5Client`, rumqttc's `v5`).
    #[serde(rename = "5")]
    V5,
}

impl MqttVersion {
    /// `3.1.1` or `5`.
    pub fn as_str(self) -> &'static str {
        match self {
            MqttVersion::V311 => "3.1.1",
            MqttVersion::V5 => "5",
        }
    }
}

impl std::fmt::Display for MqttVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MqttVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "3" | "3.1.1" | "311" | "4" => Ok(MqttVersion::V311),
            "5" | "5.0" => Ok(MqttVersion::V5),
            other => Err(format!(
                "unknown MQTT version {other:?}: use 3 (3.1.1) or 5"
            )),
        }
    }
}

/// Which protocol each device of a fleet speaks: all one, or a mix.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FleetMqtt {
    /// Every device speaks this version.
    All(MqttVersion),
    /// This fraction (0.0–1.0) of the devices speaks MQTT 5, spread evenly
    /// over the fleet (device i speaks 5 when ⌊(i+1)·f⌋ > ⌊i·f⌋).
    Mixed { v5_fraction: f64 },
}

impl Default for FleetMqtt {
    fn default() -> Self {
        FleetMqtt::All(MqttVersion::V311)
    }
}

impl FleetMqtt {
    /// The version device number `index` of the fleet speaks.
    pub fn for_device(self, index: usize) -> MqttVersion {
        match self {
            FleetMqtt::All(version) => version,
            FleetMqtt::Mixed { v5_fraction } => {
                let f = v5_fraction.clamp(0.0, 1.0);
                let before = (index as f64 * f).floor();
                let after = ((index + 1) as f64 * f).floor();
                if after > before {
                    MqttVersion::V5
                } else {
                    MqttVersion::V311
                }
            }
        }
    }
}

impl FromStr for FleetMqtt {
    type Err = String;
    /// `3`, `5`, `mixed` (half and half) or `mixed:F` / a fraction `F` of MQTT 5 devices.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "mixed" {
            return Ok(FleetMqtt::Mixed { v5_fraction: 0.5 });
        }
        if let Some(f) = s.strip_prefix("mixed:") {
            let v5_fraction: f64 = f.parse().map_err(|_| {
                format!("mixed:{f}: expected a fraction of MQTT 5 devices, e.g. mixed:0.25")
            })?;
            if !(0.0..=1.0).contains(&v5_fraction) {
                return Err(format!("mixed:{f}: the fraction must be between 0 and 1"));
            }
            return Ok(FleetMqtt::Mixed { v5_fraction });
        }
        s.parse::<MqttVersion>()
            .map(FleetMqtt::All)
            .map_err(|e| format!("{e}, or mixed / mixed:F (F = fraction of MQTT 5 devices)"))
    }
}

/// A reason code in words, as AWS's tables name the ones it sends.
fn reason_in_words(code: u8) -> String {
    let name = match code {
        0x80 => "Unspecified error",
        0x81 => "Malformed Packet",
        0x82 => "Protocol Error",
        0x85 => "Client Identifier not valid",
        0x86 => "Bad User Name or Password",
        0x87 => "Not authorized",
        0x88 => "Server unavailable",
        0x8B => "Server shutting down",
        0x8D => "Keep Alive timeout",
        0x8E => "Session taken over",
        0x8F => "Topic Filter invalid",
        0x90 => "Topic Name invalid",
        0x94 => "Topic Alias invalid",
        0x95 => "Packet too large",
        0x96 => "Message rate too high",
        0x97 => "Quota exceeded",
        0x98 => "Administrative action",
        0x99 => "Payload format invalid",
        0x9B => "QoS not supported",
        _ => "",
    };
    format!("{code:#04x} {name}").trim_end().to_string()
}

/// What an MQTT 5 event means to the device's machine: `None` for the
/// events it does not care about. `connected` is set on CONNACK.
pub fn input_of_event(event: Event, connected: &mut bool) -> Option<Input> {
    let Event::Incoming(packet) = event else {
        return None;
    };
    match packet {
        Packet::ConnAck(_) => {
            *connected = true;
            Some(Input::Connected)
        }
        Packet::SubAck(ack) => {
            let refused = ack
                .return_codes
                .iter()
                .find(|c| !matches!(c, SubscribeReasonCode::Success(_)));
            Some(match refused {
                Some(code) => Input::Closed {
                    reason: format!(
                        "the endpoint refused the subscription: SUBACK {:?}{}",
                        code,
                        why(ack.properties.and_then(|p| p.reason_string))
                    ),
                },
                None => Input::Subscribed,
            })
        }
        Packet::PubAck(ack)
            if !matches!(
                ack.reason,
                PubAckReason::Success | PubAckReason::NoMatchingSubscribers
            ) =>
        {
            Some(Input::Closed {
                reason: format!(
                    "the endpoint refused the publish: PUBACK {:?}{}",
                    ack.reason,
                    why(ack.properties.and_then(|p| p.reason_string))
                ),
            })
        }
        Packet::Publish(publish) => Some(Input::Message {
            topic: String::from_utf8_lossy(&publish.topic).into_owned(),
            payload: publish.payload.to_vec(),
        }),
        _ => None,
    }
}

fn why(reason_string: Option<String>) -> String {
    reason_string.map(|r| format!(": {r}")).unwrap_or_default()
}

/// An MQTT 5 connection error in words, with the endpoint's reason code
/// and reason string when it sent them; `None` for the transport errors
/// 3.1.1 shares (the caller words those).
pub fn describe_v5(e: &ConnectionError) -> Option<String> {
    match e {
        ConnectionError::ConnectionRefused(code) => Some(format!("CONNACK refused: {code:?}")),
        ConnectionError::MqttState(StateError::ConnFail { reason }) => {
            Some(format!("CONNACK refused: {reason:?}"))
        }
        ConnectionError::MqttState(StateError::ServerDisconnect {
            reason_code,
            reason_string,
        }) => Some(format!(
            "the endpoint sent DISCONNECT {}{}",
            reason_in_words(*reason_code as u8),
            why(reason_string.clone())
        )),
        ConnectionError::MqttState(StateError::ConnectionAborted) => {
            Some("the endpoint closed the connection".into())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_mixes_parse_and_a_mix_is_spread_evenly() {
        assert_eq!("3".parse::<MqttVersion>(), Ok(MqttVersion::V311));
        assert_eq!("5".parse::<MqttVersion>(), Ok(MqttVersion::V5));
        assert!("6".parse::<MqttVersion>().is_err());
        assert_eq!(
            "5".parse::<FleetMqtt>(),
            Ok(FleetMqtt::All(MqttVersion::V5))
        );
        let mix: FleetMqtt = "mixed:0.25".parse().unwrap();
        let v5 = (0..100)
            .filter(|&i| mix.for_device(i) == MqttVersion::V5)
            .count();
        assert_eq!(v5, 25);
        let half: FleetMqtt = "mixed".parse().unwrap();
        assert_eq!(
            (0..4).map(|i| half.for_device(i)).collect::<Vec<_>>(),
            [
                MqttVersion::V311,
                MqttVersion::V5,
                MqttVersion::V311,
                MqttVersion::V5
            ]
        );
        assert!("mixed:2".parse::<FleetMqtt>().is_err());
    }
}
