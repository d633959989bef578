//! The MQTT endpoint against the real `jitpilot serve` binary on a free
//! loopback port, with real TLS clients: rumqttc here, paho-mqtt (Python)
//! in `tests/py/`. Setup (deploy, init, test identities) goes through the
//! library on the same data dir before `serve` takes it over.
//!
//! No fixed sleeps: every wait is for an event, with a timeout.

mod support;
use support::Bounded;

use jitpilot::cloud::local::LocalCloud;
use jitpilot::fleet::SAMPLE_SERIAL;
use jitpilot::pki;
use rumqttc::{Packet, QoS};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use std::time::Duration;
use support::endpoint::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jitp_then_connect_policies_presence_and_rules() {
    let fx = fixture();
    let server = serve(&fx.data_dir);
    let (observer_client, mut events) =
        observer(&server, &fx, &["$aws/events/#", "test/out"]).await;

    // First connect with the fresh factory cert: refused, JITP runs.
    let outcome = connect(&server, &fx.device, SAMPLE_SERIAL).await;
    assert!(
        matches!(outcome, Outcome::Refused(_)),
        "first connect must be refused: {outcome:?}"
    );
    let registered_topic = format!("$aws/events/certificates/registered/{}", fx.vendor_ca_id);
    let registered = next_publish(&mut events, |t| t == registered_topic).await;
    let device_cert_id = pki::certificate_id_from_pem(&fx.device.chain_pem).expect("id");
    assert_eq!(registered["certificateId"], device_cert_id.as_str());
    assert_eq!(registered["caCertificateId"], fx.vendor_ca_id.as_str());
    assert_eq!(registered["certificateStatus"], "PENDING_ACTIVATION");
    for field in [
        "timestamp",
        "awsAccountId",
        "certificateRegistrationTimestamp",
    ] {
        assert!(
            registered.get(field).is_some(),
            "registered event lacks {field}"
        );
    }

    // The retry connects; the observer sees the presence event.
    let Outcome::Accepted(device, device_loop) = connect(&server, &fx.device, SAMPLE_SERIAL).await
    else {
        panic!("second connect must be accepted");
    };
    let mut device_rx = drive(device_loop);
    let connected_topic = format!("$aws/events/presence/connected/{SAMPLE_SERIAL}");
    let connected = next_publish(&mut events, |t| t == connected_topic).await;
    assert_eq!(connected["clientId"], SAMPLE_SERIAL);
    assert_eq!(connected["eventType"], "connected");
    assert_eq!(connected["principalIdentifier"], device_cert_id.as_str());

    // The registry as `status` reads it, beside the running server.
    let status = LocalCloud::open_read_only(&fx.data_dir)
        .expect("read-only")
        .status_sync()
        .expect("status");
    let cert = status
        .certificates
        .iter()
        .find(|c| c.id == device_cert_id)
        .expect("device cert in status");
    assert_eq!(cert.status, "ACTIVE");
    assert_eq!(cert.things, vec![SAMPLE_SERIAL.to_string()]);
    assert!(
        cert.policies.iter().any(|p| p == "CrInProgressCertPolicy"),
        "{:?}",
        cert.policies
    );
    assert!(status.things.contains_key(SAMPLE_SERIAL));

    // rule_jitp's Lambda action ran the rotation function on the registered event.
    eventually(|| {
        let status = LocalCloud::open_read_only(&fx.data_dir)
            .ok()?
            .status_sync()
            .ok()?;
        let row = status
            .devices
            .iter()
            .find(|r| r.get("SerialNumber").and_then(|v| v.as_str()) == Some(SAMPLE_SERIAL))?;
        (row.get("CrState").and_then(|v| v.as_str()) == Some("CR_THING_CREATED")).then_some(())
    })
    .await;

    // A rule with a republish action fires.
    observer_client
        .publish(
            "test/in/abc",
            QoS::AtLeastOnce,
            false,
            br#"{"n":42}"#.to_vec(),
        )
        .await
        .expect("publish");
    let republished = next_publish(&mut events, |t| t == "test/out").await;
    assert_eq!(republished["data"]["n"], 42);
    assert_eq!(republished["topic"], "test/in/abc");
    assert_eq!(republished["client_id"], "observer");

    // A publish outside the device's policy disconnects it.
    device
        .publish(
            "not/allowed/for/devices",
            QoS::AtMostOnce,
            false,
            b"x".to_vec(),
        )
        .await
        .expect("queue publish");
    closed(&mut device_rx).await;
    let disconnected_topic = format!("$aws/events/presence/disconnected/{SAMPLE_SERIAL}");
    let disconnected = next_publish(&mut events, |t| t == disconnected_topic).await;
    assert_eq!(disconnected["disconnectReason"], "AUTHORIZATION_ERROR");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_identities_leave_other_sessions_alone() {
    let fx = fixture();
    let server = serve(&fx.data_dir);
    let (observer_client, mut events) = observer(&server, &fx, &["probe/#"]).await;

    for (name, identity, client_id) in [
        ("unregistered CA", &fx.unregistered_ca_device, SAMPLE_SERIAL),
        ("expired", &fx.expired, "EXPIRED1"),
        ("INACTIVE", &fx.inactive, "INACTIVE1"),
    ] {
        let outcome = connect(&server, identity, client_id).await;
        assert!(
            matches!(outcome, Outcome::Refused(_)),
            "{name} certificate must be refused: {outcome:?}"
        );
    }
    // Each was refused for its own reason, in the event log.
    let reasons: Vec<String> = eventually(|| {
        let cloud = LocalCloud::open_read_only(&fx.data_dir).ok()?;
        let events = cloud.store().list_events(0, 1000).ok()?;
        let reasons: Vec<String> = events
            .iter()
            .filter(|e| e.kind.starts_with("endpoint."))
            .map(|e| e.detail["reason"].as_str().unwrap_or_default().to_string())
            .collect();
        (reasons.len() >= 3).then_some(reasons)
    })
    .await;
    let all = reasons.join(" | ");
    assert!(all.contains("UnknownIssuer"), "{all}");
    assert!(all.to_lowercase().contains("expired"), "{all}");
    assert!(all.contains("INACTIVE"), "{all}");
    // Nothing was registered for them.
    let status = LocalCloud::open_read_only(&fx.data_dir)
        .expect("read-only")
        .status_sync()
        .expect("status");
    for identity in [&fx.unregistered_ca_device, &fx.expired] {
        let id = pki::certificate_id_from_pem(&identity.chain_pem).expect("id");
        assert!(
            status.certificates.iter().all(|c| c.id != id),
            "a refused cert was registered"
        );
    }
    // The observer is still connected and served.
    observer_client
        .publish("probe/1", QoS::AtLeastOnce, false, b"{}".to_vec())
        .await
        .expect("publish");
    next_publish(&mut events, |t| t == "probe/1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_closes_only_that_connection() {
    let fx = fixture();
    let server = serve(&fx.data_dir);
    let (observer_client, mut events) = observer(&server, &fx, &["probe/#"]).await;

    let connect = connect_packet("raw-client");
    let with_connect = |tail: &[u8]| [connect.as_slice(), tail].concat();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", vec![0xff, 0x00, 0x13, 0x37, 0x42]),
        ("PINGREQ before CONNECT", vec![0xc0, 0x00]),
        (
            "remaining length over 4 bytes",
            with_connect(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]),
        ),
        (
            "remaining length over the limit",
            with_connect(&[0x30, 0xff, 0xff, 0xff, 0x7f]),
        ),
        ("second CONNECT", with_connect(&connect)),
        (
            "invalid UTF-8 topic",
            with_connect(&[0x30, 0x04, 0x00, 0x02, 0xc3, 0x28]),
        ),
        (
            "wildcard in PUBLISH topic",
            with_connect(&[0x30, 0x05, 0x00, 0x03, b'a', b'/', b'#']),
        ),
        (
            "empty PUBLISH topic",
            with_connect(&[0x30, 0x02, 0x00, 0x00]),
        ),
        (
            "CONNACK from a client",
            with_connect(&[0x20, 0x02, 0x00, 0x00]),
        ),
        (
            "QoS 2 PUBLISH",
            with_connect(&[0x34, 0x05, 0x00, 0x01, b'a', 0x00, 0x01]),
        ),
    ];
    for (name, bytes) in cases {
        let received = raw_session(&server, &fx, &bytes).await;
        // At most a CONNACK came back, nothing after it.
        assert!(
            received.is_empty() || received == [0x20, 0x02, 0x00, 0x00],
            "{name}: got {received:?}"
        );
    }
    // A truncated packet followed by EOF from the client: nothing panics either.
    let _ = raw_session(&server, &fx, &connect[..connect.len() / 2]).await;

    observer_client
        .publish("probe/after", QoS::AtLeastOnce, false, b"{}".to_vec())
        .await
        .expect("publish");
    next_publish(&mut events, |t| t == "probe/after").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_client_from_python_sees_jitp_and_connects() {
    let fx = fixture();
    let server = serve(&fx.data_dir);
    let device_dir = fx.data_dir.join("devices").join(SAMPLE_SERIAL);
    let result = support::json_line_of(
        support::python_script("paho_jitp.py")
            .args(["--addr", &server.addr, "--client-id", SAMPLE_SERIAL])
            .arg("--cert")
            .arg(device_dir.join("vendor.cert.pem"))
            .arg("--key")
            .arg(device_dir.join("vendor.key.pem"))
            .arg("--ca")
            .arg(device_dir.join("root-ca.pem")),
        Duration::from_secs(120),
        "paho client",
        "install paho-mqtt: python3 -m pip install paho-mqtt",
    )
    .await;
    assert_eq!(result["first"], "refused");
    assert_eq!(result["second"], "accepted");
    // Its least-privilege policy lets it subscribe to its own response topic.
    assert_eq!(result["echo"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_sessions_retained_messages_and_duplicate_client_ids() {
    let fx = fixture();
    let server = serve(&fx.data_dir);
    let (watcher, mut events) = observer(
        &server,
        &fx,
        &["$aws/events/presence/#", "$aws/events/subscriptions/#"],
    )
    .await;

    // A persistent session subscribes, then leaves.
    let (persist, mut persist_rx) = connect_as(&server, &fx, "persist-1", false).await;
    persist
        .subscribe("queue/#", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    next_suback(&mut persist_rx).await;
    let subscribed = next_publish(&mut events, |t| {
        t == "$aws/events/subscriptions/subscribed/persist-1"
    })
    .await;
    assert_eq!(subscribed["topics"], serde_json::json!(["queue/#"]));
    persist.disconnect().await.expect("disconnect");
    let gone = next_publish(&mut events, |t| {
        t == "$aws/events/presence/disconnected/persist-1"
    })
    .await;
    assert_eq!(gone["disconnectReason"], "CLIENT_INITIATED_DISCONNECT");

    // A QoS 1 message published while it is away waits for it.
    watcher
        .publish(
            "queue/1",
            QoS::AtLeastOnce,
            false,
            br#"{"queued":true}"#.to_vec(),
        )
        .await
        .expect("publish");
    next_puback(&mut events).await;
    let (_persist, mut persist_rx) = connect_as(&server, &fx, "persist-1", false).await;
    assert!(
        matches!(
            tokio::time::timeout(WAIT, persist_rx.recv()).await,
            Ok(Some(Ok(Packet::ConnAck(a)))) if a.session_present
        ),
        "a persistent session resumes with session present"
    );
    let queued = next_publish(&mut persist_rx, |t| t == "queue/1").await;
    assert_eq!(queued["queued"], true);

    // Retained messages reach later subscribers, flagged as retained.
    watcher
        .publish(
            "retained/x",
            QoS::AtLeastOnce,
            true,
            br#"{"kept":1}"#.to_vec(),
        )
        .await
        .expect("publish");
    next_puback(&mut events).await;
    let (late, mut late_rx) = connect_as(&server, &fx, "late-1", true).await;
    late.subscribe("retained/#", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let retained = tokio::time::timeout(WAIT, async {
        loop {
            match late_rx.recv().await {
                Some(Ok(Packet::Publish(p))) if p.topic == "retained/x" => return p,
                Some(Ok(_)) => continue,
                other => panic!("no retained message: {other:?}"),
            }
        }
    })
    .await
    .expect("retained message within the timeout");
    assert!(retained.retain);

    // A second connection with the same clientId evicts the first.
    let (_first, mut first_rx) = connect_as(&server, &fx, "dup-1", true).await;
    next_publish(&mut events, |t| t == "$aws/events/presence/connected/dup-1").await;
    let (_second, _second_rx) = connect_as(&server, &fx, "dup-1", true).await;
    closed(&mut first_rx).await;
    let evicted = next_publish(&mut events, |t| {
        t == "$aws/events/presence/disconnected/dup-1"
    })
    .await;
    assert_eq!(evicted["disconnectReason"], "DUPLICATE_CLIENTID");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_with_aws_alpn_gets_a_connack() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fx = fixture();
    let server = serve(&fx.data_dir);
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(fx.observer.chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("chain");
    let key = PrivateKeyDer::from_pem_slice(fx.observer.key_pem.as_bytes()).expect("key");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&server.root_ca).expect("root ca") {
        roots.add(cert.expect("root cert")).expect("add root");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .expect("TLS 1.2")
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .expect("client auth");
    config.alpn_protocols = vec![b"x-amzn-mqtt-ca".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(&server.addr)
        .await
        .expect("tcp");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = connector
        .connect(name, tcp)
        .await
        .expect("TLS 1.2 handshake");
    {
        let (_, conn) = tls.get_ref();
        assert_eq!(
            conn.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_2)
        );
        assert_eq!(conn.alpn_protocol(), Some(&b"x-amzn-mqtt-ca"[..]));
    }
    tls.write_all(&connect_packet("tls12-client"))
        .await
        .expect("write");
    let mut connack = [0u8; 4];
    tokio::time::timeout(WAIT, tls.read_exact(&mut connack))
        .await
        .expect("CONNACK in time")
        .expect("read");
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x00]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_sessions_and_a_taken_port_is_named() {
    let fx = fixture();
    let mut server = serve(&fx.data_dir);
    let (_watcher, mut events) = observer(&server, &fx, &["probe/#"]).await;
    let addr_file = fx.data_dir.join("endpoint.addr");
    assert_eq!(
        std::fs::read_to_string(&addr_file)
            .expect("endpoint.addr")
            .trim(),
        server.addr
    );

    // Another serve on the same address: a clear error naming it and the flag.
    let other = tempfile::tempdir().expect("tempdir");
    let taken = tokio::process::Command::new(env!("CARGO_BIN_EXE_jitpilot"))
        .args([
            "serve",
            "--json",
            "--mqtt-addr",
            &server.addr,
            "--api-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(other.path())
        .output();
    let taken = tokio::time::timeout(WAIT, taken)
        .await
        .expect("exits")
        .expect("runs");
    assert!(!taken.status.success());
    let stderr = String::from_utf8_lossy(&taken.stderr);
    assert!(
        stderr.contains(&server.addr) && stderr.contains("--mqtt-addr"),
        "{stderr}"
    );

    // SIGTERM: sessions are closed, the process exits 0, endpoint.addr is gone.
    let pid = server.child.id().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .bounded_status()
        .expect("kill");
    assert!(kill.success());
    closed(&mut events).await;
    let status = tokio::task::block_in_place(|| server.child.wait_within(WAIT))
        .expect("serve exits within the timeout");
    assert!(status.success(), "serve exits 0 on SIGTERM: {status:?}");
    assert!(!addr_file.exists(), "endpoint.addr is removed on shutdown");
}

/// In process: the handshake bound and timeout, and the event stream.
/// One handshake slot, held by a client that never speaks TLS: a real
/// client gets through only once the idle one has timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_bound_and_timeout_and_packet_events() {
    use jitpilot::cloud::local::endpoint::{self, EndpointConfig};
    use jitpilot::cloud::local::{endpoint_ca, functions::FunctionRegistry};
    use jitpilot::cloud::{EventBus, EventKind};
    use jitpilot::model::{now_millis, CaCertificate, Certificate, CertificateStatus};
    use jitpilot::pki::{KeyAlgorithm, Subject};

    let dir = tempfile::tempdir().expect("tempdir");
    let store = jitpilot::store::Store::open(dir.path()).expect("store");
    let server_ca = endpoint_ca::ensure(&store).expect("endpoint CA");
    let server_id = server_ca.server_identity().expect("server identity");
    let subject = |cn: &str| Subject {
        common_name: Some(cn.into()),
        ..Subject::default()
    };
    let ca = pki::create_ca(&subject("Test CA"), KeyAlgorithm::EcdsaP256, 30).expect("ca");
    store
        .register_ca(&CaCertificate {
            id: ca.id.clone(),
            pem: ca.cert_pem.clone(),
            status: CertificateStatus::Active,
            auto_registration: false,
            registration_config: None,
            label: "test".into(),
            created_at: now_millis(),
        })
        .expect("register CA");
    let device = pki::issue_device_cert(
        &ca.cert_pem,
        &ca.key_pem,
        &subject("dev-1"),
        KeyAlgorithm::EcdsaP256,
        30,
    )
    .expect("device cert");
    store
        .register_certificate(&Certificate {
            id: device.id.clone(),
            ca_id: Some(ca.id.clone()),
            pem: device.cert_pem.clone(),
            status: CertificateStatus::Active,
            created_at: now_millis(),
        })
        .expect("register cert");
    store
        .create_policy("all", r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}"#)
        .expect("policy");
    store.attach_policy("all", &device.id).expect("attach");

    let rules_store = store.clone();
    let bus = EventBus::new(4096);
    let mut stream = bus.subscribe();
    let config = EndpointConfig {
        addr: "127.0.0.1:0".into(),
        // The quiet default (10 s): a real handshake on a busy 2-core
        // machine must never run into it; the lone idle socket below is
        // closed when it passes, well within WAIT.
        handshake_timeout: Duration::from_secs(10),
        limits: endpoint::limits::Limits {
            unauthenticated_per_ip: 1,
            ..Default::default()
        },
        ..EndpointConfig::default()
    };
    let handle = endpoint::start(
        config,
        store,
        bus,
        FunctionRegistry::new(),
        &server_id.cert_pem,
        &server_id.key_pem,
    )
    .await
    .expect("endpoint starts");
    let addr = handle.local_addr().to_string();
    // Rules deployed after start take effect on reload.
    assert_eq!(handle.reload_rules().expect("reload"), 0);
    rules_store
        .put_topic_rule(&jitpilot::model::TopicRule {
            name: "late".into(),
            sql: "SELECT * FROM 'late/in'".into(),
            actions: serde_json::json!([{"Republish": {"Topic": "late/out", "Qos": 0}}]),
            enabled: true,
        })
        .expect("rule");
    assert_eq!(handle.reload_rules().expect("reload"), 1);

    // Takes the only handshake slot of its address and never sends a
    // ClientHello: the real client's connection closes it to make room.
    let mut idle = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("idle tcp");
    let identity = Identity {
        chain_pem: device.cert_pem.clone(),
        key_pem: device.key_pem.clone(),
    };
    let tls = client_config(&server_ca.cert_pem, &identity);
    let (_client, mut eventloop) = rumqttc::AsyncClient::new(options_for(&addr, tls, "dev-1"), 8);
    let accepted = tokio::time::timeout(WAIT, async {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(Packet::ConnAck(ack))) => return ack.code,
                Ok(_) => continue,
                Err(e) => panic!("the real client must get through: {e}"),
            }
        }
    })
    .await
    .expect("CONNACK: the idle socket does not hold the real client back");
    assert_eq!(accepted, rumqttc::ConnectReturnCode::Success);
    assert_eq!(handle.stats().handshakes_evicted, 1, "{:?}", handle.stats());
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(WAIT, tokio::io::AsyncReadExt::read(&mut idle, &mut byte))
        .await
        .expect("the idle socket is closed");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    // A lone idle socket times out at the handshake deadline.
    let mut lone = tokio::net::TcpStream::connect(&addr).await.expect("tcp");
    let closed = tokio::time::timeout(WAIT, tokio::io::AsyncReadExt::read(&mut lone, &mut byte))
        .await
        .expect("closed at the handshake deadline");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    eventually(|| (handle.stats().handshakes_failed >= 1).then_some(())).await;

    // The CONNECT in and CONNACK out are on the event stream, decoded.
    let (mut saw_in, mut saw_out) = (false, false);
    tokio::time::timeout(WAIT, async {
        while !(saw_in && saw_out) {
            let event = stream.recv().await.expect("event");
            match &event.kind {
                EventKind::PacketIn {
                    packet: "CONNECT", ..
                } => saw_in = event.topic.as_deref() == Some("clientId=dev-1"),
                EventKind::PacketOut {
                    packet: "CONNACK", ..
                } => saw_out = event.client_id.as_deref() == Some("dev-1"),
                _ => {}
            }
        }
    })
    .await
    .expect("packet events");
    assert_eq!(handle.stats().online, 1);
    handle.shutdown().await;
}

/// The whole walkthrough (3a JITP, 3b create the manufacturer cert, 3c ack)
/// by the device agent through `jitpilot serve`: the endpoint's routing,
/// policies (`iot:Receive` on the device's own response topics), rules and
/// the rotation function's publishes all have to work for this to finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_agent_onboards_end_to_end() {
    use simulated_devices::{run_device, DeviceConfig, Goal};
    let fx = fixture();
    let server = serve(&fx.data_dir);
    let creds = fx.data_dir.join("devices").join(SAMPLE_SERIAL);
    let mut config = DeviceConfig::new(SAMPLE_SERIAL, &creds, server.addr.clone());
    config.server_name = Some("localhost".into());
    config.seed = Some(7);
    let outcome = tokio::time::timeout(
        Duration::from_secs(120),
        run_device(config, Goal::Onboard, None),
    )
    .await
    .expect("onboarding finishes")
    .expect("onboarding succeeds");
    let man_cert_id = outcome
        .manufacturer_cert_id
        .clone()
        .expect("a manufacturer cert");

    let status = LocalCloud::open_read_only(&fx.data_dir)
        .expect("read-only")
        .status_sync()
        .expect("status");
    let row = status
        .devices
        .iter()
        .find(|r| r.get("SerialNumber").and_then(|v| v.as_str()) == Some(SAMPLE_SERIAL))
        .expect("device row");
    assert_eq!(row["CrState"], "CR_CERT_ROTATION_COMPLETED");
    let man = status
        .certificates
        .iter()
        .find(|c| c.id == man_cert_id)
        .expect("manufacturer cert");
    assert_eq!(man.status, "ACTIVE");

    // The vendor cert is gone: it can no longer connect.
    let outcome = connect(&server, &fx.device, SAMPLE_SERIAL).await;
    assert!(
        matches!(outcome, Outcome::Refused(_)),
        "vendor cert after rotation: {outcome:?}"
    );
}

/// A client that goes silent is closed after 1.5 × its keepalive, and the
/// disconnected event says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_closed_after_one_and_a_half_keepalives() {
    let fx = fixture();
    let server = serve(&fx.data_dir);
    let (_watcher, mut events) = observer(&server, &fx, &["$aws/events/presence/#"]).await;
    let mut connect = rumqttc::mqttbytes::v4::Connect::new("silent-1");
    connect.keep_alive = 1;
    let mut bytes = bytes::BytesMut::new();
    rumqttc::mqttbytes::v4::Packet::Connect(connect)
        .write(&mut bytes, usize::MAX)
        .expect("encode");
    // CONNECT, then nothing: raw_session reads until the server closes.
    let received = raw_session(&server, &fx, &bytes).await;
    assert_eq!(
        received,
        [0x20, 0x02, 0x00, 0x00],
        "a CONNACK, then the close"
    );
    let gone = next_publish(&mut events, |t| {
        t == "$aws/events/presence/disconnected/silent-1"
    })
    .await;
    assert_eq!(gone["disconnectReason"], "MQTT_KEEP_ALIVE_TIMEOUT");
}
