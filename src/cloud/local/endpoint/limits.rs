//! The limits the endpoint enforces: AWS IoT Core's published quotas where
//! the walkthrough can hit them, and jitpilot's own bounds on memory.
//!
//! Every queue and buffer in the endpoint is bounded by one of these, so a
//! misbehaving client — authenticated or not — costs a known amount of
//! memory, disk and CPU and nothing more.
//!
//! The constants are the defaults. [`Limits`] carries the ones worth
//! changing for an experiment; `JITPILOT_LIMITS="name=value,..."` overrides
//! them when the endpoint starts (see [`Limits::apply_spec`] for the names).

use std::time::Duration;

/// AWS IoT Core's payload, clientId, topic and packet sizes: the
/// vocabulary's, shared with the AWS backend's observer.
pub use crate::vocabulary::{
    MAX_CLIENT_ID_BYTES, MAX_PACKET_BYTES, MAX_PAYLOAD_BYTES, MAX_TOPIC_BYTES,
};
/// Highest topic alias an MQTT 5 client may use (AWS: 8).
pub const TOPIC_ALIAS_MAXIMUM: u16 = 8;
/// Longest an MQTT 5 session outlives its connection, in seconds (AWS's
/// default maximum, one hour; a longer request is lowered and CONNACK says so).
pub const MAX_SESSION_EXPIRY_SECONDS: u32 = 3600;
/// Longest MQTT 5 Message Expiry Interval, in seconds (AWS: 7 days; longer
/// is lowered, 0 raised to 1).
pub const MAX_MESSAGE_EXPIRY_SECONDS: u32 = 604_800;
/// Most filters accepted in one SUBSCRIBE (AWS: 8).
pub const MAX_FILTERS_PER_SUBSCRIBE: usize = 8;
/// Most subscriptions one session may hold (AWS: 50).
pub const MAX_SUBSCRIPTIONS_PER_SESSION: usize = 50;
/// QoS 1 messages in flight to one client before further deliveries wait
/// in the session's pending queue (AWS: 100 unacknowledged per client).
/// Inbound, the endpoint acknowledges each PUBLISH as it routes it, so a
/// client never has more than one read's worth unacknowledged.
pub const MAX_INFLIGHT: usize = 100;
/// QoS 1 messages kept for an offline persistent session, and waiting
/// behind a full in-flight window; the oldest is dropped beyond it.
pub const MAX_QUEUED_MESSAGES: usize = 100;
/// Deliveries buffered between the router and one connection task. A
/// connection that cannot keep up loses QoS 0 messages and QoS 1 messages
/// are kept for persistent sessions; the router never waits for it.
pub const DELIVERY_CHANNEL: usize = 1024;
/// Rule actions (Lambda invocations) running at once; more wait their turn
/// on their own tasks, never the router.
pub const MAX_CONCURRENT_ACTIONS: usize = 64;
/// Republish chains stop after this many hops, so two rules republishing to
/// each other cannot loop forever.
pub const MAX_REPUBLISH_DEPTH: u8 = 8;
/// Inbound PUBLISH requests per second per connection (AWS: 100).
pub const PUBLISHES_PER_SECOND: u32 = 100;
/// Inbound bytes per second per connection (AWS: 512 KiB/s).
pub const BYTES_PER_SECOND: u32 = 512 * 1024;
/// How far, in seconds of its allowance, a connection may run over its
/// rate while being throttled before it is disconnected.
pub const THROTTLE_GRACE_SECONDS: u32 = 2;
/// Retained messages per account (AWS: 500,000, adjustable).
pub const MAX_RETAINED_MESSAGES: usize = 500_000;
/// Bytes of retained messages (topic + payload + bookkeeping) per account.
/// AWS bills rather than caps these; a local cloud must cap them to bound
/// its memory.
pub const MAX_RETAINED_BYTES: usize = 64 * 1024 * 1024;
/// What one retained message costs beyond its topic and payload (map entry,
/// `Message` fields): counted against [`MAX_RETAINED_BYTES`] so a flood of
/// tiny messages is bounded too.
pub const RETAINED_OVERHEAD_BYTES: usize = 96;
/// Retained messages delivered for one SUBSCRIBE filter; more matching
/// messages are not replayed (a wildcard over a huge store would otherwise
/// build a reply as big as the store).
pub const MAX_RETAINED_PER_FILTER: usize = 1_000;
/// Connections from one IP address that have not finished their TLS
/// handshake. A new one beyond this closes that address's oldest idle one
/// (else its oldest). Well above `jitpilot fleet`'s 256 devices handshaking
/// at once from one address, so a fleet run never trips it.
pub const MAX_UNAUTHENTICATED_PER_IP: usize = 512;
/// Connections, from all addresses, that have not finished their TLS
/// handshake. Beyond this the oldest idle one, whoever it is, is closed.
pub const MAX_UNAUTHENTICATED: usize = 4_096;
/// Time a connection has to finish its TLS handshake when the endpoint is quiet.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// ... shrinking linearly to this as the unauthenticated slots fill up.
pub const HANDSHAKE_TIMEOUT_UNDER_PRESSURE: Duration = Duration::from_secs(2);
/// The listen backlog: connections the kernel completes before we accept
/// them. Sized for fleets reconnecting at once (the kernel caps it at
/// `net.core.somaxconn`).
pub const LISTEN_BACKLOG: u32 = 4_096;

/// The limits that can be changed for an experiment, each defaulting to
/// the constant of the same meaning above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub payload_bytes: usize,
    pub filters_per_subscribe: usize,
    pub subscriptions_per_connection: usize,
    pub inflight: usize,
    pub publishes_per_second: u32,
    pub bytes_per_second: u32,
    pub retained_messages: usize,
    pub retained_bytes: usize,
    pub unauthenticated_per_ip: usize,
    pub unauthenticated: usize,
    pub listen_backlog: u32,
    /// Event log retention: rows older than this many days are pruned.
    pub event_max_age_days: u32,
    /// Event log retention: at most this many rows are kept.
    pub event_max_rows: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            payload_bytes: MAX_PAYLOAD_BYTES,
            filters_per_subscribe: MAX_FILTERS_PER_SUBSCRIBE,
            subscriptions_per_connection: MAX_SUBSCRIPTIONS_PER_SESSION,
            inflight: MAX_INFLIGHT,
            publishes_per_second: PUBLISHES_PER_SECOND,
            bytes_per_second: BYTES_PER_SECOND,
            retained_messages: MAX_RETAINED_MESSAGES,
            retained_bytes: MAX_RETAINED_BYTES,
            unauthenticated_per_ip: MAX_UNAUTHENTICATED_PER_IP,
            unauthenticated: MAX_UNAUTHENTICATED,
            listen_backlog: LISTEN_BACKLOG,
            event_max_age_days: crate::store::EventRetention::default().max_age_days,
            event_max_rows: crate::store::EventRetention::default().max_rows,
        }
    }
}

/// The environment variable overriding limits: `name=value,name=value`.
pub const LIMITS_ENV: &str = "JITPILOT_LIMITS";

/// A `JITPILOT_LIMITS` entry that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{LIMITS_ENV}: {reason}. Write it as name=value,name=value with names among: {names}")]
pub struct LimitsError {
    pub reason: String,
    pub names: String,
}

impl Limits {
    /// The limits' names as `JITPILOT_LIMITS` takes them.
    pub const NAMES: &'static [&'static str] = &[
        "payload_bytes",
        "filters_per_subscribe",
        "subscriptions_per_connection",
        "inflight",
        "publishes_per_second",
        "bytes_per_second",
        "retained_messages",
        "retained_bytes",
        "unauthenticated_per_ip",
        "unauthenticated",
        "listen_backlog",
        "event_max_age_days",
        "event_max_rows",
    ];

    /// Applies `name=value,...` over these limits. Every value must be a
    /// positive integer; `payload_bytes` may not exceed AWS's 128 KiB.
    pub fn apply_spec(&mut self, spec: &str) -> Result<(), LimitsError> {
        let error = |reason: String| LimitsError {
            reason,
            names: Limits::NAMES.join(", "),
        };
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let Some((name, value)) = entry.split_once('=') else {
                return Err(error(format!("{entry:?} has no '='")));
            };
            let (name, value) = (name.trim(), value.trim());
            let n: u64 = value
                .replace('_', "")
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| error(format!("{name}={value:?} is not a positive integer")))?;
            let small = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
            let small32 = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
            match name {
                "payload_bytes" if small(n) > MAX_PAYLOAD_BYTES => {
                    return Err(error(format!(
                        "payload_bytes={n} exceeds {MAX_PAYLOAD_BYTES}, AWS's maximum"
                    )))
                }
                "payload_bytes" => self.payload_bytes = small(n),
                "filters_per_subscribe" => self.filters_per_subscribe = small(n),
                "subscriptions_per_connection" => self.subscriptions_per_connection = small(n),
                "inflight" => self.inflight = small(n),
                "publishes_per_second" => self.publishes_per_second = small32(n),
                "bytes_per_second" => self.bytes_per_second = small32(n),
                "retained_messages" => self.retained_messages = small(n),
                "retained_bytes" => self.retained_bytes = small(n),
                "unauthenticated_per_ip" => self.unauthenticated_per_ip = small(n),
                "unauthenticated" => self.unauthenticated = small(n),
                "listen_backlog" => self.listen_backlog = small32(n),
                "event_max_age_days" => self.event_max_age_days = small32(n),
                "event_max_rows" => self.event_max_rows = n,
                other => return Err(error(format!("unknown limit {other:?}"))),
            }
        }
        Ok(())
    }

    /// These limits with `JITPILOT_LIMITS` applied, if it is set.
    pub fn with_env(mut self) -> Result<Limits, LimitsError> {
        if let Ok(spec) = std::env::var(LIMITS_ENV) {
            self.apply_spec(&spec)?;
        }
        Ok(self)
    }

    /// The event log's retention these limits ask for.
    pub fn event_retention(&self) -> crate::store::EventRetention {
        crate::store::EventRetention {
            max_age_days: self.event_max_age_days,
            max_rows: self.event_max_rows,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_overrides_named_limits_and_refuses_anything_else() {
        let mut limits = Limits::default();
        limits
            .apply_spec("retained_messages=1_000, publishes_per_second=5,")
            .unwrap();
        assert_eq!(limits.retained_messages, 1000);
        assert_eq!(limits.publishes_per_second, 5);
        assert_eq!(limits.payload_bytes, MAX_PAYLOAD_BYTES);
        for bad in [
            "retained=1",
            "inflight",
            "inflight=0",
            "inflight=-3",
            "payload_bytes=200000",
        ] {
            let err = Limits::default().apply_spec(bad).unwrap_err().to_string();
            assert!(err.contains("name=value"), "{bad}: {err}");
        }
    }
}
