//! The session state machine, without sockets: well-formed flows, every kind
//! of bad input, and random/mutated bytes (proptest).

use super::*;
use crate::cloud::local::endpoint::limits::MAX_INFLIGHT;
use bytes::Bytes;
use proptest::prelude::*;
use rumqttc::mqttbytes::v4::*;
use rumqttc::mqttbytes::v4::{Connect, Subscribe, Unsubscribe};

/// Allows everything under `dev/`, nothing else.
struct DevOnly;
impl Authorize for DevOnly {
    fn may_publish(&self, topic: &str) -> bool {
        topic.starts_with("dev/")
    }
    fn may_subscribe(&self, filter: &str) -> bool {
        filter.starts_with("dev/")
    }
}

fn bytes_of(packet: Packet) -> Vec<u8> {
    let mut buf = BytesMut::new();
    packet.write(&mut buf, usize::MAX).expect("encodable");
    buf.to_vec()
}

fn connect_bytes(client_id: &str) -> Vec<u8> {
    bytes_of(Packet::Connect(Connect::new(client_id)))
}

/// A session past CONNECT/CONNACK.
fn connected(client_id: &str) -> Session {
    let mut session = Session::new();
    let mut out = Vec::new();
    session.handle_bytes(&connect_bytes(client_id), &DevOnly, &mut out);
    assert!(matches!(out.as_slice(), [Effect::Connect(r)] if r.client_id == client_id));
    out.clear();
    session.accept(false, Vec::new(), &DevOnly, &mut out);
    assert!(matches!(out.as_slice(), [Effect::Send(Packet::ConnAck(_))]));
    session
}

fn closed_with(out: &[Effect]) -> Option<&CloseReason> {
    out.iter().find_map(|e| match e {
        Effect::Close(reason) => Some(reason),
        _ => None,
    })
}

fn feed(session: &mut Session, bytes: &[u8]) -> Vec<Effect> {
    let mut out = Vec::new();
    session.handle_bytes(bytes, &DevOnly, &mut out);
    out
}

#[test]
fn connect_waits_for_the_shell_then_connacks_and_drains_pipelined_packets() {
    let mut session = Session::new();
    let mut bytes = connect_bytes("IUQWXALODJESC1");
    bytes.extend(bytes_of(Packet::PingReq));
    let out = feed(&mut session, &bytes);
    assert_eq!(out.len(), 1, "PINGREQ must wait until CONNECT is decided");
    assert_eq!(session.phase(), Phase::Authorizing);
    let mut out = Vec::new();
    session.accept(true, Vec::new(), &DevOnly, &mut out);
    assert_eq!(
        out,
        vec![
            Effect::Send(Packet::ConnAck(ConnAck::new(
                ConnectReturnCode::Success,
                true
            ))),
            Effect::Send(Packet::PingResp)
        ]
    );
}

#[test]
fn packets_split_at_every_byte_still_decode() {
    let mut session = Session::new();
    let bytes = connect_bytes("split");
    let mut out = Vec::new();
    for b in &bytes {
        session.handle_bytes(std::slice::from_ref(b), &DevOnly, &mut out);
    }
    assert!(matches!(out.as_slice(), [Effect::Connect(_)]));
}

#[test]
fn anything_before_connect_closes() {
    let mut session = Session::new();
    let out = feed(&mut session, &bytes_of(Packet::PingReq));
    assert!(
        matches!(closed_with(&out), Some(CloseReason::ClientError(w)) if w.contains("before CONNECT"))
    );
    assert_eq!(session.phase(), Phase::Closed);
    assert!(feed(&mut session, &connect_bytes("late")).is_empty());
}

#[test]
fn second_connect_closes() {
    let mut session = connected("c1");
    let out = feed(&mut session, &connect_bytes("c1"));
    assert!(
        matches!(closed_with(&out), Some(CloseReason::ClientError(w)) if w.contains("second CONNECT"))
    );
}

#[test]
fn bad_client_ids_get_identifier_rejected() {
    for id in ["".to_string(), "x".repeat(129)] {
        let mut session = Session::new();
        let out = feed(&mut session, &connect_bytes(&id));
        assert_eq!(
            out.first(),
            Some(&Effect::Send(Packet::ConnAck(ConnAck::new(
                ConnectReturnCode::BadClientId,
                false
            ))))
        );
        assert!(closed_with(&out).is_some());
    }
}

#[test]
fn publish_qos1_is_acked_and_routed() {
    let mut session = connected("c");
    let publish = {
        let mut p = Publish::new("dev/a", QoS::AtLeastOnce, b"{\"x\":1}".to_vec());
        p.pkid = 7;
        p
    };
    let out = feed(&mut session, &bytes_of(Packet::Publish(publish)));
    // Routed first, then acknowledged.
    assert!(
        matches!(&out[0], Effect::Publish(m) if m.topic == "dev/a" && m.qos == QoS::AtLeastOnce)
    );
    assert_eq!(out[1], Effect::Send(Packet::PubAck(PubAck::new(7))));
}

#[test]
fn an_idle_session_keeps_no_buffer_once_its_packets_are_framed() {
    let mut session = connected("dev-1");
    let mut publish = Publish::new("dev/1/t", QoS::AtLeastOnce, vec![b'x'; 60 * 1024]);
    publish.pkid = 7;
    let publish = bytes_of(Packet::Publish(publish));
    let (head, tail) = publish.split_at(publish.len() / 2);
    feed(&mut session, head);
    assert!(
        session.buf.capacity() > 0,
        "half a packet waits for the rest"
    );
    let out = feed(&mut session, tail);
    assert!(out.iter().any(|e| matches!(e, Effect::Publish(_))));
    assert_eq!(
        session.buf.capacity(),
        0,
        "a 60 KiB buffer stays with an idle connection"
    );
}

#[test]
fn reserved_header_flags_close_the_connection() {
    // SUBSCRIBE must carry flags 0b0010 (§3.8.1); 0x80 has 0b0000.
    let mut session = connected("c");
    let mut bytes = bytes_of(Packet::Subscribe(rumqttc::mqttbytes::v4::Subscribe::new(
        "dev/a",
        QoS::AtMostOnce,
    )));
    assert_eq!(bytes[0], 0x82);
    bytes[0] = 0x80;
    let out = feed(&mut session, &bytes);
    assert!(
        !out.iter().any(|e| matches!(e, Effect::Subscribe(_))),
        "{out:?}"
    );
    let why = closed_with(&out).expect("closed");
    assert!(
        format!("{why:?}").contains("reserved header flags"),
        "{why:?}"
    );
    // PINGREQ with a flag set too.
    let mut session = connected("c");
    let out = feed(&mut session, &[0xC1, 0x00]);
    assert!(closed_with(&out).is_some(), "{out:?}");
    assert!(!out
        .iter()
        .any(|e| matches!(e, Effect::Send(Packet::PingResp))));
}

#[test]
fn an_mqtt_3_1_connect_gets_connack_1_then_close() {
    // MQTT 3.1: protocol name "MQIsdp", level 3.
    let mut connect = vec![0x10, 0];
    connect.extend_from_slice(&[0, 6]);
    connect.extend_from_slice(b"MQIsdp");
    connect.extend_from_slice(&[3, 0x02, 0, 60, 0, 2]);
    connect.extend_from_slice(b"c1");
    connect[1] = (connect.len() - 2) as u8;
    for bytes in [connect.clone(), {
        // "MQTT" at level 3.
        let mut b = vec![0x10, 0, 0, 4];
        b.extend_from_slice(b"MQTT");
        b.extend_from_slice(&[3, 0x02, 0, 60, 0, 2]);
        b.extend_from_slice(b"c1");
        b[1] = (b.len() - 2) as u8;
        b
    }] {
        let mut session = Session::new();
        let out = feed(&mut session, &bytes);
        assert_eq!(
            out.first(),
            Some(&Effect::Send(Packet::ConnAck(ConnAck::new(
                ConnectReturnCode::RefusedProtocolVersion,
                false
            )))),
            "{out:?}"
        );
        assert!(closed_with(&out).is_some());
    }
}

#[test]
fn unauthorized_publish_disconnects() {
    let mut session = connected("c");
    let out = feed(
        &mut session,
        &bytes_of(Packet::Publish(Publish::new(
            "other",
            QoS::AtMostOnce,
            vec![],
        ))),
    );
    assert!(matches!(
        closed_with(&out),
        Some(CloseReason::AuthorizationError(_))
    ));
    assert!(!out.iter().any(|e| matches!(e, Effect::Publish(_))));
}

#[test]
fn qos2_publish_disconnects_and_qos2_subscription_is_granted_qos1() {
    let mut session = connected("c");
    let sub = Subscribe::new("dev/#", QoS::ExactlyOnce);
    let out = feed(&mut session, &bytes_of(Packet::Subscribe(sub)));
    assert!(
        matches!(&out[0], Effect::Send(Packet::SubAck(a)) if a.return_codes == vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)])
    );
    let mut p = Publish::new("dev/a", QoS::ExactlyOnce, vec![1]);
    p.pkid = 1;
    let out = feed(&mut session, &bytes_of(Packet::Publish(p)));
    assert!(matches!(closed_with(&out), Some(CloseReason::ClientError(w)) if w.contains("QoS 2")));
}

#[test]
fn wildcard_or_empty_publish_topics_close() {
    for topic in ["dev/+", "dev/#", ""] {
        let mut session = connected("c");
        let out = feed(
            &mut session,
            &bytes_of(Packet::Publish(Publish::new(
                topic,
                QoS::AtMostOnce,
                vec![],
            ))),
        );
        assert!(
            matches!(closed_with(&out), Some(CloseReason::ClientError(_))),
            "{topic:?}"
        );
    }
}

#[test]
fn oversized_topic_and_invalid_filters_close() {
    let mut session = connected("c");
    let long = format!("dev/{}", "t".repeat(300));
    let out = feed(
        &mut session,
        &bytes_of(Packet::Publish(Publish::new(long, QoS::AtMostOnce, vec![]))),
    );
    assert!(closed_with(&out).is_some());
    let mut session = connected("c");
    let out = feed(
        &mut session,
        &bytes_of(Packet::Unsubscribe(Unsubscribe::new("dev/#/x"))),
    );
    assert!(closed_with(&out).is_some());
}

#[test]
fn broker_only_packets_from_a_client_close() {
    for packet in [Packet::PingResp, Packet::UnsubAck(UnsubAck::new(3))] {
        let mut session = connected("c");
        let out = feed(&mut session, &bytes_of(packet));
        assert!(
            matches!(closed_with(&out), Some(CloseReason::ClientError(w)) if w.contains("brokers"))
        );
    }
}

#[test]
fn remaining_length_over_four_bytes_or_the_limit_closes() {
    let mut session = connected("c");
    let out = feed(&mut session, &[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]);
    assert!(
        matches!(closed_with(&out), Some(CloseReason::ClientError(w)) if w.contains("4 bytes"))
    );
    let mut session = connected("c");
    // 1 MiB remaining length: refused from the header alone.
    let out = feed(&mut session, &[0x30, 0x80, 0x80, 0x40]);
    assert!(
        matches!(closed_with(&out), Some(CloseReason::ClientError(w)) if w.contains("exceeds"))
    );
}

#[test]
fn invalid_utf8_topic_closes() {
    let mut session = connected("c");
    // PUBLISH QoS 0, topic length 2, bytes 0xC3 0x28 (invalid UTF-8).
    let out = feed(&mut session, &[0x30, 0x04, 0x00, 0x02, 0xc3, 0x28]);
    assert!(matches!(closed_with(&out), Some(CloseReason::ClientError(w)) if w.contains("UTF-8")));
}

#[test]
fn truncated_packet_waits_for_more_bytes_without_acting() {
    let mut session = connected("c");
    let full = bytes_of(Packet::Publish(Publish::new(
        "dev/a",
        QoS::AtMostOnce,
        vec![1, 2, 3],
    )));
    let out = feed(&mut session, &full[..full.len() - 1]);
    assert!(out.is_empty());
    let out = feed(&mut session, &full[full.len() - 1..]);
    assert!(matches!(out.as_slice(), [Effect::Publish(_)]));
}

#[test]
fn qos1_deliveries_are_tracked_until_puback_and_handed_back_unacked() {
    let mut session = connected("c");
    let mut out = Vec::new();
    for i in 0..3u8 {
        session.deliver(
            Message {
                topic: "dev/x".into(),
                payload: Bytes::from(vec![i]),
                qos: QoS::AtLeastOnce,
                retain: false,
                properties: None,
            },
            &mut out,
        );
    }
    let pkids: Vec<u16> = out
        .iter()
        .filter_map(|e| match e {
            Effect::Send(Packet::Publish(p)) => Some(p.pkid),
            _ => None,
        })
        .collect();
    assert_eq!(pkids, vec![1, 2, 3]);
    feed(&mut session, &bytes_of(Packet::PubAck(PubAck::new(2))));
    let unacked = session.take_unacked();
    assert_eq!(
        unacked.iter().map(|m| m.payload[0]).collect::<Vec<_>>(),
        vec![0, 2]
    );
}

#[test]
fn resumed_messages_are_redelivered_after_connack() {
    let mut session = Session::new();
    feed(&mut session, &connect_bytes("p"));
    let mut out = Vec::new();
    let resumed = vec![Message {
        topic: "dev/r".into(),
        payload: Bytes::from_static(b"r"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: None,
    }];
    session.accept(true, resumed, &DevOnly, &mut out);
    assert!(
        matches!(&out[1], Effect::Send(Packet::Publish(p)) if p.topic == "dev/r" && p.pkid == 1)
    );
}

#[test]
fn a_full_inflight_window_queues_and_releases_on_puback() {
    let mut session = connected("c");
    let mut out = Vec::new();
    let msg = Message {
        topic: "dev/x".into(),
        payload: Bytes::new(),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: None,
    };
    for _ in 0..MAX_INFLIGHT + 1 {
        session.deliver(msg.clone(), &mut out);
    }
    assert_eq!(out.len(), MAX_INFLIGHT);
    let out = feed(&mut session, &bytes_of(Packet::PubAck(PubAck::new(1))));
    assert!(matches!(out.as_slice(), [Effect::Send(Packet::Publish(_))]));
}

/// Valid packets of every kind a client could send, as raw material for mutation.
fn seed_packets() -> Vec<Vec<u8>> {
    let mut p1 = Publish::new("dev/a/b", QoS::AtLeastOnce, b"{\"csr\":\"x\"}".to_vec());
    p1.pkid = 9;
    vec![
        connect_bytes("seed"),
        bytes_of(Packet::Publish(p1)),
        bytes_of(Packet::Publish(Publish::new(
            "dev/q",
            QoS::AtMostOnce,
            b"hello".to_vec(),
        ))),
        bytes_of(Packet::Subscribe(Subscribe::new(
            "dev/+/x",
            QoS::AtLeastOnce,
        ))),
        bytes_of(Packet::Unsubscribe(Unsubscribe::new("dev/#"))),
        bytes_of(Packet::PubAck(PubAck::new(1))),
        bytes_of(Packet::PingReq),
        bytes_of(Packet::Disconnect),
    ]
}

/// Feeds `bytes` in `chunk`-sized pieces, accepting any CONNECT; checks the
/// invariants every input must keep.
fn run_arbitrary(bytes: &[u8], chunk: usize) {
    let mut session = Session::new();
    let mut closes = 0;
    for piece in bytes.chunks(chunk.max(1)) {
        let mut out = Vec::new();
        session.handle_bytes(piece, &DevOnly, &mut out);
        if out.iter().any(|e| matches!(e, Effect::Connect(_))) {
            session.accept(false, Vec::new(), &DevOnly, &mut out);
        }
        for effect in &out {
            match effect {
                Effect::Close(_) => closes += 1,
                Effect::Publish(m) => {
                    assert!(m.topic.starts_with("dev/"), "unauthorized publish routed");
                    assert!(m.qos != QoS::ExactlyOnce);
                }
                Effect::Subscribe(filters) => {
                    assert!(filters
                        .iter()
                        .all(|(f, q)| f.starts_with("dev/") && *q != QoS::ExactlyOnce));
                }
                _ => {}
            }
        }
    }
    assert!(closes <= 1, "closed twice");
    if closes == 1 {
        assert_eq!(session.phase(), Phase::Closed);
    }
}

/// Valid packets (`seeds`, the first one first) in the given `order`, with
/// bytes flipped and the end cut off: what the property tests feed in.
pub(super) fn mutated(
    seeds: &[Vec<u8>],
    order: &[usize],
    flips: &[(usize, u8)],
    cut: usize,
) -> Vec<u8> {
    let mut bytes = seeds[0].clone();
    for i in order {
        bytes.extend(&seeds[i % seeds.len()]);
    }
    for (at, value) in flips {
        let n = bytes.len();
        bytes[at % n] = *value;
    }
    let keep = bytes.len() - cut % bytes.len().max(1) / 4;
    bytes.truncate(keep);
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), chunk in 1usize..64) {
        run_arbitrary(&bytes, chunk);
    }

    #[test]
    fn mutated_valid_streams_never_panic(
        order in proptest::collection::vec(0usize..8, 1..12),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in any::<usize>(),
        chunk in 1usize..32,
    ) {
        run_arbitrary(&mutated(&seed_packets(), &order, &flips, cut), chunk);
    }
}
