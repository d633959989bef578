//! The MQTT 5 half of the session, without sockets: AWS's reason codes,
//! forwarded properties, topic aliases, expiry, and malformed MQTT 5 bytes
//! (bad and duplicate properties, oversize, wrong reason codes, proptest).

use super::*;
use bytes::Bytes;
use mqtt5::{Connect, ConnectProperties, Filter, Subscribe};
use mqtt5::{PubAckReason, Publish as Publish5, PublishProperties};
use proptest::prelude::*;
use std::sync::Arc;

/// Allows everything under `dev/`, nothing else.
struct DevOnly;
impl Authorize for DevOnly {
    fn may_publish(&self, topic: &str) -> bool {
        topic.starts_with("dev/")
    }
    fn may_subscribe(&self, filter: &str) -> bool {
        filter.starts_with("dev/") || filter.starts_with("$share/g/dev/")
    }
}

fn bytes5(packet: mqtt5::Packet) -> Vec<u8> {
    let mut buf = BytesMut::new();
    packet.write(&mut buf, None).expect("encodable");
    buf.to_vec()
}

fn connect5(client_id: &str, properties: Option<ConnectProperties>) -> Vec<u8> {
    bytes5(mqtt5::Packet::Connect(
        Connect {
            keep_alive: 30,
            client_id: client_id.into(),
            clean_start: true,
            properties,
        },
        None,
        None,
    ))
}

fn feed(session: &mut Session, bytes: &[u8]) -> Vec<Effect> {
    let mut out = Vec::new();
    session.handle_bytes(bytes, &DevOnly, &mut out);
    out
}

/// A v5 session past CONNECT/CONNACK; returns the CONNACK too.
fn connected5() -> (Session, mqtt5::ConnAck) {
    let mut session = Session::new();
    let out = feed(&mut session, &connect5("c5", None));
    assert!(
        matches!(out.as_slice(), [Effect::Connect(r)] if r.level == MqttLevel::V5 && r.client_id == "c5"),
        "{out:?}"
    );
    let mut out = Vec::new();
    session.accept(false, Vec::new(), &DevOnly, &mut out);
    let [Effect::Send5(mqtt5::Packet::ConnAck(ack))] = out.as_slice() else {
        panic!("expected a v5 CONNACK: {out:?}");
    };
    (session, ack.clone())
}

fn publish5(topic: &str, qos: QoS5, pkid: u16, properties: Option<PublishProperties>) -> Vec<u8> {
    let mut p = Publish5::new(topic, qos, b"{\"n\":1}".to_vec(), properties);
    p.pkid = pkid;
    bytes5(mqtt5::Packet::Publish(p))
}

fn sent5(out: &[Effect]) -> Vec<&mqtt5::Packet> {
    out.iter()
        .filter_map(|e| match e {
            Effect::Send5(p) => Some(p),
            _ => None,
        })
        .collect()
}

fn disconnect_code_of(out: &[Effect]) -> Option<DisconnectReasonCode> {
    sent5(out).into_iter().find_map(|p| match p {
        mqtt5::Packet::Disconnect(d) => Some(d.reason_code),
        _ => None,
    })
}

#[test]
fn a_level_5_connect_is_answered_in_mqtt_5_with_what_aws_supports() {
    let (session, ack) = connected5();
    assert_eq!(session.level(), MqttLevel::V5);
    assert_eq!(ack.code, Connect5Code::Success);
    let p = ack.properties.expect("CONNACK properties");
    assert_eq!(p.topic_alias_max, Some(TOPIC_ALIAS_MAXIMUM));
    assert_eq!(p.max_qos, Some(1));
    assert_eq!(p.subscription_identifiers_available, Some(0));
    assert_eq!(p.shared_subscription_available, Some(1));
}

#[test]
fn session_expiry_is_capped_at_awss_maximum_and_connack_says_so() {
    let mut session = Session::new();
    let props = ConnectProperties {
        session_expiry_interval: Some(u32::MAX),
        ..ConnectProperties::default()
    };
    let out = feed(&mut session, &connect5("s", Some(props)));
    assert!(
        matches!(out.as_slice(), [Effect::Connect(r)] if r.session_expiry == Some(MAX_SESSION_EXPIRY_SECONDS))
    );
    let mut out = Vec::new();
    session.accept(false, Vec::new(), &DevOnly, &mut out);
    let [Effect::Send5(mqtt5::Packet::ConnAck(ack))] = out.as_slice() else {
        panic!("{out:?}");
    };
    assert_eq!(
        ack.properties
            .as_ref()
            .and_then(|p| p.session_expiry_interval),
        Some(MAX_SESSION_EXPIRY_SECONDS)
    );
}

#[test]
fn an_unauthorized_qos1_publish_gets_puback_0x87_and_the_connection_stays() {
    let (mut session, _) = connected5();
    let out = feed(
        &mut session,
        &publish5("other/t", QoS5::AtLeastOnce, 7, None),
    );
    let acks = sent5(&out);
    let [mqtt5::Packet::PubAck(ack)] = acks.as_slice() else {
        panic!("{out:?}");
    };
    assert_eq!((ack.pkid, ack.reason), (7, PubAckReason::NotAuthorized));
    assert!(ack
        .properties
        .as_ref()
        .and_then(|p| p.reason_string.as_deref())
        .is_some_and(|r| r.contains("iot:Publish")));
    assert_eq!(session.phase(), Phase::Connected);
    assert!(!out.iter().any(|e| matches!(e, Effect::Publish5 { .. })));
    // QoS 0 cannot be answered: DISCONNECT 0x87.
    let out = feed(
        &mut session,
        &publish5("other/t", QoS5::AtMostOnce, 0, None),
    );
    assert_eq!(
        disconnect_code_of(&out),
        Some(DisconnectReasonCode::NotAuthorized)
    );
    assert_eq!(session.phase(), Phase::Closed);
}

#[test]
fn an_authorized_publish_is_routed_then_acked_and_a_full_store_is_0x97() {
    let (mut session, _) = connected5();
    let out = feed(&mut session, &publish5("dev/a", QoS5::AtLeastOnce, 3, None));
    assert!(
        matches!(out.as_slice(), [Effect::Publish5 { pkid: Some(3), message }] if message.topic == "dev/a")
    );
    let mut out = Vec::new();
    session.publish_routed(Some(3), Ok(()), &mut out);
    assert!(
        matches!(sent5(&out).as_slice(), [mqtt5::Packet::PubAck(a)] if a.reason == PubAckReason::Success)
    );
    let mut out = Vec::new();
    session.publish_routed(Some(4), Err((QUOTA_EXCEEDED, "full".into())), &mut out);
    assert!(
        matches!(sent5(&out).as_slice(), [mqtt5::Packet::PubAck(a)] if a.reason == PubAckReason::QuotaExceeded)
    );
}

#[test]
fn suback_carries_one_reason_code_per_filter() {
    let (mut session, _) = connected5();
    let subscribe = Subscribe::new_many(
        [
            Filter::new("dev/ok", QoS5::ExactlyOnce),
            Filter::new("secret/x", QoS5::AtLeastOnce),
            Filter::new("dev/#/bad", QoS5::AtLeastOnce),
            Filter::new("$share/g/dev/+", QoS5::AtMostOnce),
        ],
        None,
    );
    let mut bytes = bytes5(mqtt5::Packet::Subscribe(subscribe));
    // The codec writes packet id 0; give it one.
    bytes[3] = 9;
    let out = feed(&mut session, &bytes);
    let [mqtt5::Packet::SubAck(ack)] = sent5(&out).as_slice() else {
        panic!("{out:?}");
    };
    assert_eq!(
        ack.return_codes,
        vec![
            Sub5Code::Success(QoS5::AtLeastOnce),
            Sub5Code::NotAuthorized,
            Sub5Code::TopicFilterInvalid,
            Sub5Code::Success(QoS5::AtMostOnce),
        ]
    );
    assert!(out.iter().any(|e| matches!(e, Effect::Subscribe(f)
        if f == &vec![("dev/ok".to_string(), QoS::AtLeastOnce), ("$share/g/dev/+".to_string(), QoS::AtMostOnce)])));
    assert_eq!(session.phase(), Phase::Connected);
}

#[test]
fn topic_aliases_resolve_and_one_over_awss_maximum_disconnects_0x94() {
    let (mut session, _) = connected5();
    let alias = |n| PublishProperties {
        topic_alias: Some(n),
        ..PublishProperties::default()
    };
    let out = feed(
        &mut session,
        &publish5("dev/long/topic", QoS5::AtMostOnce, 0, Some(alias(1))),
    );
    assert!(
        matches!(out.as_slice(), [Effect::Publish5 { message, .. }] if message.topic == "dev/long/topic")
    );
    let out = feed(
        &mut session,
        &publish5("", QoS5::AtMostOnce, 0, Some(alias(1))),
    );
    assert!(
        matches!(out.as_slice(), [Effect::Publish5 { message, .. }] if message.topic == "dev/long/topic")
    );
    let out = feed(
        &mut session,
        &publish5("dev/x", QoS5::AtMostOnce, 0, Some(alias(9))),
    );
    assert_eq!(
        disconnect_code_of(&out),
        Some(DisconnectReasonCode::TopicAliasInvalid)
    );
}

#[test]
fn properties_reach_mqtt5_subscribers_and_are_dropped_toward_3_1_1() {
    let (mut session, _) = connected5();
    let props = PublishProperties {
        response_topic: Some("dev/reply".into()),
        correlation_data: Some(Bytes::from_static(b"req-1")),
        user_properties: vec![("k".into(), "v".into())],
        content_type: Some("application/json".into()),
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(60),
        ..PublishProperties::default()
    };
    let out = feed(
        &mut session,
        &publish5("dev/req", QoS5::AtMostOnce, 0, Some(props)),
    );
    let [Effect::Publish5 { message, .. }] = out.as_slice() else {
        panic!("{out:?}");
    };
    let mut out = Vec::new();
    session.deliver(message.clone(), &mut out);
    let [mqtt5::Packet::Publish(p)] = sent5(&out).as_slice() else {
        panic!("{out:?}");
    };
    let got = p.properties.clone().expect("properties forwarded");
    assert_eq!(got.response_topic.as_deref(), Some("dev/reply"));
    assert_eq!(got.correlation_data.as_deref(), Some(&b"req-1"[..]));
    assert_eq!(
        got.user_properties,
        vec![("k".to_string(), "v".to_string())]
    );
    assert_eq!(got.content_type.as_deref(), Some("application/json"));
    assert!(got.message_expiry_interval.is_some_and(|s| s <= 60));
    // A 3.1.1 subscriber gets the same message as a plain 3.1.1 PUBLISH.
    let mut v3 = Session::new();
    feed(&mut v3, &{
        let mut buf = BytesMut::new();
        Packet::Connect(rumqttc::mqttbytes::v4::Connect::new("c3"))
            .write(&mut buf, usize::MAX)
            .unwrap();
        buf.to_vec()
    });
    let mut out = Vec::new();
    v3.accept(false, Vec::new(), &DevOnly, &mut out);
    let mut out = Vec::new();
    v3.deliver(message.clone(), &mut out);
    assert!(matches!(out.as_slice(), [Effect::Send(Packet::Publish(p))] if p.topic == "dev/req"));
}

#[test]
fn an_expired_message_is_not_delivered() {
    let (mut session, _) = connected5();
    let now = Instant::now();
    let message = Message {
        topic: "dev/old".into(),
        payload: Bytes::new(),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Some(Arc::new(MessageProperties {
            expires_at: Some(now),
            ..MessageProperties::default()
        })),
    };
    let mut out = Vec::new();
    session.deliver(message, &mut out);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(session.dropped(), 1);
}

#[test]
fn disconnect_without_reason_code_is_normal_and_0x04_publishes_the_will() {
    let (mut session, _) = connected5();
    let out = feed(&mut session, &[0xE0, 0x00]);
    assert!(matches!(
        out.as_slice(),
        [Effect::Close(CloseReason::ClientInitiated)]
    ));
    let (mut session, _) = connected5();
    // Reason code only (remaining length 1), as clients send it.
    let out = feed(&mut session, &[0xE0, 0x01, 0x04]);
    assert!(
        matches!(
            out.as_slice(),
            [Effect::Close(CloseReason::ClientInitiatedWithWill)]
        ),
        "{out:?}"
    );
}

#[test]
fn malformed_mqtt5_packets_close_cleanly_with_a_reason_code() {
    // A property given twice: Protocol Error.
    let mut dup = publish5("dev/a", QoS5::AtMostOnce, 0, None);
    // topic (2 + 5), then properties: replace the empty property list
    // with Content Type twice.
    let props: &[u8] = &[8, 3, 0, 1, b'a', 3, 0, 1, b'b'];
    let at = 2 + 2 + 5;
    dup.splice(at..at + 1, props.iter().copied());
    dup[1] = (dup.len() - 2) as u8;
    let (mut session, _) = connected5();
    let out = feed(&mut session, &dup);
    assert_eq!(
        disconnect_code_of(&out),
        Some(DisconnectReasonCode::ProtocolError),
        "{out:?}"
    );
    assert!(
        matches!(out.last(), Some(Effect::Close(CloseReason::ClientError(why))) if why.contains("twice"))
    );

    // An unknown property id: Malformed Packet.
    let mut bad = publish5("dev/a", QoS5::AtMostOnce, 0, None);
    bad.splice(at..at + 1, [2u8, 0x7F, 0]);
    bad[1] = (bad.len() - 2) as u8;
    let (mut session, _) = connected5();
    let out = feed(&mut session, &bad);
    assert_eq!(
        disconnect_code_of(&out),
        Some(DisconnectReasonCode::MalformedPacket),
        "{out:?}"
    );

    // A PUBACK with a reason code MQTT 5 does not define.
    let (mut session, _) = connected5();
    let out = feed(&mut session, &[0x40, 0x03, 0x00, 0x01, 0x42]);
    assert_eq!(
        disconnect_code_of(&out),
        Some(DisconnectReasonCode::MalformedPacket),
        "{out:?}"
    );

    // Larger than the endpoint's maximum packet size: refused from its header.
    let (mut session, _) = connected5();
    let out = feed(&mut session, &[0x30, 0xFF, 0xFF, 0x7F]);
    assert_eq!(
        disconnect_code_of(&out),
        Some(DisconnectReasonCode::PacketTooLarge),
        "{out:?}"
    );

    // QoS 2, AUTH, a subscription identifier: what AWS does not support.
    let (mut session, _) = connected5();
    let out = feed(&mut session, &publish5("dev/a", QoS5::ExactlyOnce, 1, None));
    assert_eq!(
        disconnect_code_of(&out),
        Some(DisconnectReasonCode::QoSNotSupported)
    );
    let (mut session, _) = connected5();
    let out = feed(&mut session, &[0xF0, 0x00]);
    assert_eq!(
        disconnect_code_of(&out),
        Some(DisconnectReasonCode::ProtocolError)
    );

    // A duplicate property in CONNECT: CONNACK 0x82, no session.
    let mut connect = connect5(
        "d",
        Some(ConnectProperties {
            receive_maximum: Some(5),
            ..ConnectProperties::default()
        }),
    );
    // properties: [3, 0x21, 0, 5] → twice.
    let at = 2 + 10;
    connect.splice(at..at + 4, [6u8, 0x21, 0, 5, 0x21, 0, 5]);
    connect[1] = (connect.len() - 2) as u8;
    let mut session = Session::new();
    let out = feed(&mut session, &connect);
    assert!(
        matches!(sent5(&out).as_slice(), [mqtt5::Packet::ConnAck(a)] if a.code == Connect5Code::ProtocolError),
        "{out:?}"
    );
    assert_eq!(session.phase(), Phase::Closed);
}

fn seed_packets5() -> Vec<Vec<u8>> {
    let props = PublishProperties {
        topic_alias: Some(2),
        user_properties: vec![("a".into(), "b".into())],
        response_topic: Some("dev/r".into()),
        correlation_data: Some(Bytes::from_static(b"x")),
        ..PublishProperties::default()
    };
    vec![
        connect5("seed5", None),
        publish5("dev/a/b", QoS5::AtLeastOnce, 9, Some(props.clone())),
        publish5("", QoS5::AtMostOnce, 0, Some(props)),
        publish5("dev/q", QoS5::AtMostOnce, 0, None),
        {
            let mut b = bytes5(mqtt5::Packet::Subscribe(Subscribe::new(
                Filter::new("dev/+/x", QoS5::AtLeastOnce),
                None,
            )));
            b[3] = 1;
            b
        },
        vec![0x40, 0x03, 0x00, 0x01, 0x00],
        vec![0xC0, 0x00],
        vec![0xE0, 0x00],
        vec![0xE0, 0x01, 0x04],
    ]
}

/// Feeds `bytes`, accepting any CONNECT; the invariants every input keeps.
fn run_arbitrary5(bytes: &[u8], chunk: usize) {
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
                Effect::Publish(m) | Effect::Publish5 { message: m, .. } => {
                    assert!(m.topic.starts_with("dev/"), "unauthorized publish routed");
                    assert!(m.qos != QoS::ExactlyOnce);
                }
                Effect::Subscribe(filters) => {
                    assert!(filters.iter().all(|(_, q)| *q != QoS::ExactlyOnce));
                }
                Effect::Send5(p) => {
                    // Whatever the endpoint says must encode.
                    let mut buf = BytesMut::new();
                    p.write(&mut buf, None)
                        .expect("the endpoint's own packet encodes");
                }
                _ => {}
            }
        }
    }
    assert!(closes <= 1, "closed twice");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn mutated_mqtt5_streams_never_panic(
        order in proptest::collection::vec(0usize..9, 1..12),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in any::<usize>(),
        chunk in 1usize..32,
    ) {
        let bytes = crate::cloud::local::endpoint::session::tests::mutated(
            &seed_packets5(),
            &order,
            &flips,
            cut,
        );
        run_arbitrary5(&bytes, chunk);
    }

    #[test]
    fn random_bytes_after_a_v5_connect_never_panic(
        tail in proptest::collection::vec(any::<u8>(), 0..1024),
        chunk in 1usize..64,
    ) {
        let mut bytes = connect5("r", None);
        bytes.extend(tail);
        run_arbitrary5(&bytes, chunk);
    }
}
