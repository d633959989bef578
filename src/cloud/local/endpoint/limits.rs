//! The limits the endpoint enforces: AWS IoT Core's published quotas where
//! the walkthrough can hit them, and jitpilot's own bounds on memory.
//!
//! Every queue and buffer in the endpoint is bounded by one of these, so a
//! misbehaving client costs a known amount of memory and nothing more.

/// Largest PUBLISH payload AWS IoT accepts (128 KiB).
pub const MAX_PAYLOAD_BYTES: usize = 128 * 1024;
/// Longest clientId AWS IoT accepts, in bytes.
pub const MAX_CLIENT_ID_BYTES: usize = 128;
/// Longest topic name or filter AWS IoT accepts, in bytes.
pub const MAX_TOPIC_BYTES: usize = 256;
/// Largest remaining length of any incoming packet: a maximal PUBLISH
/// (payload + topic + its length prefix + packet id). Anything larger is
/// refused before its bytes are even buffered.
pub const MAX_PACKET_BYTES: usize = MAX_PAYLOAD_BYTES + MAX_TOPIC_BYTES + 2 + 2;
/// Most filters accepted in one SUBSCRIBE (AWS: 8).
pub const MAX_FILTERS_PER_SUBSCRIBE: usize = 8;
/// Most subscriptions one session may hold (AWS: 50).
pub const MAX_SUBSCRIPTIONS_PER_SESSION: usize = 50;
/// QoS 1 messages in flight to one client before further deliveries wait
/// in the session's pending queue (AWS: 100 unacknowledged per client).
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
/// Bytes of payload shown in packet events (the traffic pane's preview).
pub const PAYLOAD_PREVIEW_BYTES: usize = 512;
