//! Issue 15 against `jitpilot serve`: MQTT 5 beside 3.1.1 on the same port,
//! as AWS IoT Core speaks it. rumqttc's v5 client and the AWS IoT Device
//! SDK for Python's MQTT 5 client (`awsiot.mqtt5_client_builder`) connect,
//! onboard (3a–3c) and are refused with AWS's reason codes; 3.1.1 and 5
//! clients talk to each other; shared subscriptions split a topic; a
//! malformed MQTT 5 packet over TLS gets DISCONNECT with a reason code.
//!
//! Needs python3 with awsiotsdk (import name `awsiot`) and `cryptography`
//! for the SDK test (`scripts/test` installs them).

mod support;

use jitpilot::cloud::local::LocalCloud;
use jitpilot::cloud::EventBus;
use jitpilot::fleet::SAMPLE_SERIAL;
use jitpilot::model::CertificateStatus;
use jitpilot::pki;
use jitpilot::vocabulary::VENDOR_KEY_PARAMETER;
use rumqttc::v5::mqttbytes::v5::{
    ConnectReturnCode, Packet as Packet5, PubAckReason, PublishProperties, SubscribeReasonCode,
};
use rumqttc::v5::mqttbytes::QoS as QoS5;
use rumqttc::v5::{AsyncClient as Client5, Event as Event5, MqttOptions as Options5};
use rumqttc::{QoS, TlsConfiguration, Transport};
use std::path::Path;
use std::time::Duration;
use support::endpoint::*;
use tokio::sync::mpsc;

type Rx5 = mpsc::UnboundedReceiver<Result<Packet5, String>>;

fn options5(server: &Server, identity: &Identity, client_id: &str) -> Options5 {
    let (host, port) = server.addr.rsplit_once(':').expect("host:port");
    let mut opts = Options5::new(client_id, host, port.parse().expect("port"));
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        tls_config(server, identity),
    )));
    opts
}

/// Connects an MQTT 5 client: its CONNACK, or the error that refused it.
async fn connect5(
    server: &Server,
    identity: &Identity,
    client_id: &str,
) -> Result<(Client5, Rx5), String> {
    let (client, mut eventloop) = Client5::new(options5(server, identity, client_id), 64);
    let connected = tokio::time::timeout(WAIT, async {
        loop {
            match eventloop.poll().await {
                Ok(Event5::Incoming(Packet5::ConnAck(ack))) => return Ok(ack),
                Ok(_) => continue,
                Err(e) => return Err(format!("{e:?}")),
            }
        }
    })
    .await
    .expect("a CONNACK or an error within the timeout")?;
    assert_eq!(connected.code, ConnectReturnCode::Success);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event5::Incoming(p)) => {
                    if tx.send(Ok(p)).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.send(Err(format!("{e:?}")));
                    return;
                }
            }
        }
    });
    Ok((client, rx))
}

/// The next packet `pick` accepts.
async fn next5<T>(rx: &mut Rx5, pick: impl Fn(Packet5) -> Option<T>) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            match rx.recv().await {
                Some(Ok(p)) => {
                    if let Some(v) = pick(p) {
                        return v;
                    }
                }
                Some(Err(e)) => panic!("connection closed while waiting: {e}"),
                None => panic!("event loop ended"),
            }
        }
    })
    .await
    .expect("the expected packet within the timeout")
}

fn suback5(p: Packet5) -> Option<Vec<SubscribeReasonCode>> {
    match p {
        Packet5::SubAck(a) => Some(a.return_codes),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_and_3_1_1_clients_talk_to_each_other_properties_only_toward_5() {
    let fx = fixture();
    let server = serve(&fx.data_dir);
    let (sub5, mut rx5) = connect5(&server, &fx.observer, "sub5")
        .await
        .expect("v5 subscriber");
    sub5.subscribe("interop/#", QoS5::AtLeastOnce)
        .await
        .unwrap();
    next5(&mut rx5, suback5).await;
    let (sub3, mut rx3) = connect_as(&server, &fx, "sub3", true).await;
    sub3.subscribe("interop/#", QoS::AtLeastOnce).await.unwrap();
    next_suback(&mut rx3).await;

    // MQTT 5 → both: the v5 subscriber gets the properties, 3.1.1 the payload.
    let (pub5, _prx) = connect5(&server, &fx.observer, "pub5")
        .await
        .expect("v5 publisher");
    let props = PublishProperties {
        response_topic: Some("interop/reply".into()),
        correlation_data: Some(bytes::Bytes::from_static(b"req-7")),
        user_properties: vec![("device".into(), "pub5".into())],
        content_type: Some("application/json".into()),
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(300),
        ..PublishProperties::default()
    };
    pub5.publish_with_properties(
        "interop/a",
        QoS5::AtLeastOnce,
        false,
        b"{\"v\":5}".to_vec(),
        props,
    )
    .await
    .unwrap();
    let got = next5(&mut rx5, |p| match p {
        Packet5::Publish(p) if &p.topic[..] == b"interop/a" => Some(p),
        _ => None,
    })
    .await;
    let props = got.properties.expect("properties forwarded to MQTT 5");
    assert_eq!(props.response_topic.as_deref(), Some("interop/reply"));
    assert_eq!(props.correlation_data.as_deref(), Some(&b"req-7"[..]));
    assert_eq!(
        props.user_properties,
        vec![("device".into(), "pub5".into())]
    );
    assert_eq!(props.content_type.as_deref(), Some("application/json"));
    assert!(props.message_expiry_interval.is_some_and(|s| s <= 300));
    assert_eq!(next_publish(&mut rx3, |t| t == "interop/a").await["v"], 5);

    // 3.1.1 → MQTT 5.
    let (pub3, mut prx3) = connect_as(&server, &fx, "pub3", true).await;
    pub3.publish("interop/b", QoS::AtLeastOnce, false, b"{\"v\":3}".to_vec())
        .await
        .unwrap();
    next_puback(&mut prx3).await;
    let got = next5(&mut rx5, |p| match p {
        Packet5::Publish(p) if &p.topic[..] == b"interop/b" => Some(p),
        _ => None,
    })
    .await;
    assert_eq!(&got.payload[..], b"{\"v\":3}");
    assert!(got.properties.is_none(), "{:?}", got.properties);
}

/// A certificate of the Vendor CA, registered ACTIVE with `policy` (if any).
fn limited_identity(data_dir: &Path, cn: &str, policy: Option<&str>) -> Identity {
    let cloud = LocalCloud::open(data_dir, EventBus::default()).expect("open");
    let store = cloud.store();
    let vendor = store
        .list_cas()
        .unwrap()
        .into_iter()
        .find(|c| c.label == "Vendor CA")
        .expect("vendor CA");
    let key = store
        .get_parameter(VENDOR_KEY_PARAMETER, true)
        .unwrap()
        .expect("vendor key")
        .value;
    let identity = issue(&vendor.pem, &key, cn);
    let id = pki::certificate_id_from_pem(&identity.chain_pem).unwrap();
    register(
        store,
        &id,
        &vendor.id,
        &identity.chain_pem,
        CertificateStatus::Active,
    );
    if let Some(document) = policy {
        let name = format!("{cn}Policy");
        store.create_policy(&name, document).unwrap();
        store.attach_policy(&name, &id).unwrap();
    }
    identity
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_reach_an_mqtt5_client_as_awss_reason_codes() {
    let fx = fixture();
    let limited = limited_identity(
        &fx.data_dir,
        "LIMITED1",
        Some(
            r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"iot:Connect","Resource":"*"},
            {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":"arn:aws:iot:*:*:topic/allowed/*"},
            {"Effect":"Allow","Action":"iot:Subscribe","Resource":"arn:aws:iot:*:*:topicfilter/allowed/*"}]}"#,
        ),
    );
    let unpolicied = limited_identity(&fx.data_dir, "NOPOLICY1", None);
    let server = serve(&fx.data_dir);

    // A certificate that is not ACTIVE: CONNACK 0x86 Bad User Name or Password.
    let refused = connect5(&server, &fx.inactive, "INACTIVE1").await.err();
    assert!(
        refused
            .as_deref()
            .is_some_and(|e| e.contains("BadUserNamePassword")),
        "{refused:?}"
    );
    // iot:Connect not allowed: CONNACK 0x87 Not authorized.
    let refused = connect5(&server, &unpolicied, "NOPOLICY1").await.err();
    assert!(
        refused
            .as_deref()
            .is_some_and(|e| e.contains("NotAuthorized")),
        "{refused:?}"
    );

    // PUBLISH and SUBSCRIBE refused with 0x87; the connection stays up.
    let (client, mut rx) = connect5(&server, &limited, "LIMITED1")
        .await
        .expect("limited connects");
    client
        .publish("forbidden/x", QoS5::AtLeastOnce, false, b"{}".to_vec())
        .await
        .unwrap();
    let (reason, why) = next5(&mut rx, |p| match p {
        Packet5::PubAck(a) => Some((a.reason, a.properties.and_then(|p| p.reason_string))),
        _ => None,
    })
    .await;
    assert_eq!(reason, PubAckReason::NotAuthorized);
    assert!(why.is_some_and(|w| w.contains("iot:Publish on topic/forbidden/x")));
    client
        .subscribe("forbidden/#", QoS5::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(
        next5(&mut rx, suback5).await,
        vec![SubscribeReasonCode::NotAuthorized]
    );
    client
        .subscribe("allowed/#", QoS5::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(
        next5(&mut rx, suback5).await,
        vec![SubscribeReasonCode::Success(QoS5::AtLeastOnce)]
    );
    client
        .publish(
            "allowed/x",
            QoS5::AtLeastOnce,
            false,
            b"{\"ok\":1}".to_vec(),
        )
        .await
        .unwrap();
    let got = next5(&mut rx, |p| match p {
        Packet5::Publish(p) => Some(p.payload),
        _ => None,
    })
    .await;
    assert_eq!(&got[..], b"{\"ok\":1}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_subscription_splits_a_topic_between_its_members() {
    let fx = fixture();
    let server = serve(&fx.data_dir);
    let mut members = Vec::new();
    for id in ["worker-a", "worker-b"] {
        let (client, mut rx) = connect5(&server, &fx.observer, id).await.expect(id);
        client
            .subscribe("$share/workers/jobs/+", QoS5::AtLeastOnce)
            .await
            .unwrap();
        next5(&mut rx, suback5).await;
        // Not shared: every member gets the end marker.
        client
            .subscribe("jobs-end", QoS5::AtLeastOnce)
            .await
            .unwrap();
        next5(&mut rx, suback5).await;
        members.push((client, rx));
    }
    let (producer, mut prx) = connect_as(&server, &fx, "producer", true).await;
    for n in 0..6 {
        producer
            .publish(format!("jobs/{n}"), QoS::AtLeastOnce, false, b"{}".to_vec())
            .await
            .unwrap();
        next_puback(&mut prx).await;
    }
    // After the six jobs (each acknowledged, so routed), the end marker:
    // one publisher's messages reach a subscriber in order, so what a
    // member got before its marker is all it will ever get of the six.
    producer
        .publish("jobs-end", QoS::AtLeastOnce, false, b"{}".to_vec())
        .await
        .unwrap();
    next_puback(&mut prx).await;
    // Each message goes to one member, in turn: three each, none to both.
    let mut all = Vec::new();
    for (_, rx) in &mut members {
        let mut jobs = Vec::new();
        loop {
            let topic = next5(rx, |p| match p {
                Packet5::Publish(p) => Some(String::from_utf8_lossy(&p.topic).into_owned()),
                _ => None,
            })
            .await;
            if topic == "jobs-end" {
                break;
            }
            jobs.push(topic);
        }
        assert_eq!(jobs.len(), 3, "a member's share of the six: {jobs:?}");
        all.extend(jobs);
    }
    all.sort();
    let six: Vec<String> = (0..6).map(|n| format!("jobs/{n}")).collect();
    assert_eq!(all, six, "every job delivered once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_mqtt5_packet_over_tls_gets_disconnect_with_a_reason_code() {
    let fx = fixture();
    let server = serve(&fx.data_dir);
    let mut bytes = Vec::new();
    let mut connect = bytes::BytesMut::new();
    rumqttc::v5::mqttbytes::v5::Packet::Connect(
        rumqttc::v5::mqttbytes::v5::Connect {
            keep_alive: 30,
            client_id: "raw5".into(),
            clean_start: true,
            properties: None,
        },
        None,
        None,
    )
    .write(&mut connect, None)
    .unwrap();
    bytes.extend_from_slice(&connect);
    // PUBLISH "t/x" QoS 0 with Content Type twice: a protocol error.
    bytes.extend_from_slice(&[
        0x30, 14, 0, 3, b't', b'/', b'x', 8, 3, 0, 1, b'a', 3, 0, 1, b'b',
    ]);
    let received = raw_session(&server, &fx, &bytes).await;
    // CONNACK 0x00, then DISCONNECT 0x82 Protocol Error with a reason string.
    assert_eq!(received.first(), Some(&0x20), "{received:?}");
    let disconnect = received
        .iter()
        .position(|b| *b == 0xE0)
        .expect("a DISCONNECT");
    assert_eq!(received.get(disconnect + 2), Some(&0x82), "{received:?}");
    assert!(String::from_utf8_lossy(&received).contains("twice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_device_onboards_over_mqtt5() {
    use simulated_devices::{run_device, DeviceConfig, Goal, MqttVersion};
    let fx = fixture();
    let server = serve(&fx.data_dir);
    let creds = fx.data_dir.join("devices").join(SAMPLE_SERIAL);
    let mut config = DeviceConfig::new(SAMPLE_SERIAL, &creds, server.addr.clone());
    config.server_name = Some("localhost".into());
    config.seed = Some(15);
    config.mqtt = MqttVersion::V5;
    let outcome = tokio::time::timeout(
        Duration::from_secs(120),
        run_device(config, Goal::Onboard, None),
    )
    .await
    .expect("onboarding finishes")
    .expect("onboarding over MQTT 5 succeeds");
    assert!(outcome.manufacturer_cert_id.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_iot_device_sdks_mqtt5_client_runs_3a_to_3c_and_sees_reason_codes() {
    let fx = fixture();
    let server = serve(&fx.data_dir);
    let creds = fx.data_dir.join("devices").join(SAMPLE_SERIAL);
    let facts = support::json_line_of(
        support::python_script("awsiot_device.py")
            .args(["--addr", &server.addr, "--serial", SAMPLE_SERIAL])
            .args(["--other", "OTHERSERIAL0001"])
            .arg("--creds")
            .arg(&creds),
        Duration::from_secs(180),
        "the SDK device",
        "python3 -m pip install awsiotsdk cryptography",
    )
    .await;
    // 3a: JITP dropped the first connection; the SDK's reconnect got in.
    assert!(facts["jitp_failures"].as_u64().unwrap_or(0) >= 1, "{facts}");
    // Refused with AWS's reason codes, 0x87 Not authorized, and why.
    assert_eq!(facts["refused_publish"]["reason_code"], 0x87, "{facts}");
    assert!(facts["refused_publish"]["reason_string"]
        .as_str()
        .is_some_and(|r| r.contains("iot:Publish")));
    assert_eq!(
        facts["refused_subscribe"]["reason_codes"],
        serde_json::json!([0x87])
    );
    assert_eq!(facts["suback"], serde_json::json!([1]));
    // 3b and 3c.
    assert_eq!(facts["acked"], true, "{facts}");
}

/// The device agent over MQTT 5 hears why it is refused: its failure names
/// the CONNACK reason code (over 3.1.1 it would only see a closed socket).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_mqtt5_device_reports_the_connack_reason_code() {
    use simulated_devices::{creds, run_device, DeviceConfig, Goal, MqttVersion, RetryPolicy};
    let fx = fixture();
    let server = serve(&fx.data_dir);
    // A credential folder holding the INACTIVE certificate as its vendor cert.
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(
        folder.path().join(creds::VENDOR_CERT),
        &fx.inactive.chain_pem,
    )
    .unwrap();
    std::fs::write(folder.path().join(creds::VENDOR_KEY), &fx.inactive.key_pem).unwrap();
    std::fs::copy(&server.root_ca, folder.path().join(creds::ROOT_CA)).unwrap();
    let mut config = DeviceConfig::new("INACTIVE1", folder.path(), server.addr.clone());
    config.server_name = Some("localhost".into());
    config.seed = Some(15);
    config.mqtt = MqttVersion::V5;
    config.retry = RetryPolicy {
        base: Duration::from_millis(10),
        cap: Duration::from_millis(50),
        max_connect_attempts: 2,
        max_request_attempts: 1,
    };
    let failed = tokio::time::timeout(WAIT, run_device(config, Goal::Jitp, None))
        .await
        .expect("the device gives up within the timeout")
        .expect_err("an INACTIVE certificate is refused");
    assert!(
        failed.to_string().contains("BadUserNamePassword"),
        "{failed}"
    );
}

/// `jitpilot serve` with `JITPILOT_LIMITS` set (and no AWS API).
fn serve_with_limits(data_dir: &Path, limits: &str) -> Server {
    Server::start(
        support::jitpilot()
            .args(["serve", "--json", "--mqtt-addr", "127.0.0.1:0"])
            .args(["--api-addr", "off", "--data-dir"])
            .arg(data_dir)
            .env("JITPILOT_LIMITS", limits),
    )
}

/// Over its publish rate for too long, an MQTT 5 client is told so:
/// DISCONNECT 0x96 Message rate too high, with the limit in the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_far_over_its_publish_rate_gets_disconnect_0x96() {
    let fx = fixture();
    let server = serve_with_limits(&fx.data_dir, "publishes_per_second=5");
    let (client, mut rx) = connect5(&server, &fx.observer, "flood5")
        .await
        .expect("connects");
    // 100 at once: 19 s of debt at 5/s, far past the 2 s grace.
    for n in 0..100 {
        client
            .publish(
                format!("flood/{n}"),
                QoS5::AtMostOnce,
                false,
                b"{}".to_vec(),
            )
            .await
            .unwrap();
    }
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match rx.recv().await {
                Some(Err(e)) => return e,
                Some(Ok(_)) => continue,
                None => return "event loop ended".to_string(),
            }
        }
    })
    .await
    .expect("the endpoint disconnects the client");
    assert!(closed.contains("MessageRateTooHigh"), "{closed}");
    assert!(closed.contains("PUBLISH requests per second"), "{closed}");
}
