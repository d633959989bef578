//! AWS IoT Core's published limits that both backends honour: the local
//! endpoint enforces them, the AWS traffic observer sizes its client by them.

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
