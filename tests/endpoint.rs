//! The MQTT endpoint against the real `jitpilot serve` binary on a free
//! loopback port, with real TLS clients: rumqttc here, paho-mqtt (Python)
//! in `tests/py/`. Setup (deploy, init, test identities) goes through the
//! library on the same data dir before `serve` takes it over.
//!
//! No fixed sleeps: every wait is for an event, with a timeout.

use jitpilot::cloud::local::control::VENDOR_KEY_PARAMETER;
use jitpilot::cloud::local::{fleet::SAMPLE_SERIAL, LocalCloud};
use jitpilot::cloud::EventBus;
use jitpilot::model::{now_millis, Certificate, CertificateStatus, TopicRule};
use jitpilot::pki::{self, KeyAlgorithm, Subject};
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, TlsConfiguration, Transport,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Generous: the machine is shared and busy; nothing waits this long when things work.
const WAIT: Duration = Duration::from_secs(30);

/// A cert + key PEM pair a client presents.
#[derive(Clone)]
struct Identity {
    chain_pem: String,
    key_pem: String,
}

/// The data dir and the identities the tests use.
struct Fixture {
    _dir: tempfile::TempDir,
    data_dir: PathBuf,
    vendor_ca_id: String,
    observer: Identity,
    device: Identity,
    unregistered_ca_device: Identity,
    expired: Identity,
    inactive: Identity,
}

fn issue(ca_cert: &str, ca_key: &str, cn: &str) -> Identity {
    let subject = Subject {
        common_name: Some(cn.into()),
        country: Some("US".into()),
        ..Subject::default()
    };
    let issued = pki::issue_device_cert(ca_cert, ca_key, &subject, KeyAlgorithm::EcdsaP256, 30)
        .expect("issue");
    Identity {
        chain_pem: format!("{}{}", issued.cert_pem, ca_cert),
        key_pem: issued.key_pem,
    }
}

/// An already expired certificate signed by the CA (rcgen directly: the
/// PKI API only issues valid ones, as it should).
fn issue_expired(ca_cert: &str, ca_key: &str) -> Identity {
    let ca_key = rcgen::KeyPair::from_pem(ca_key).expect("ca key");
    let issuer = rcgen::Issuer::from_ca_cert_pem(ca_cert, ca_key).expect("issuer");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "EXPIRED1");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(10);
    params.not_after = now - time::Duration::days(1);
    let cert = params.signed_by(&key, &issuer).expect("sign");
    Identity {
        chain_pem: format!("{}{}", cert.pem(), ca_cert),
        key_pem: key.serialize_pem(),
    }
}

/// Deploys, inits, and registers the test identities; returns with the
/// data dir unlocked for `serve`.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let cloud = LocalCloud::open(&data_dir, EventBus::default()).expect("open");
    cloud.deploy_sync().expect("deploy");
    cloud.init_sync(0).expect("init");
    let store = cloud.store();
    let vendor = store
        .list_cas()
        .expect("cas")
        .into_iter()
        .find(|c| c.label == "Vendor CA")
        .expect("vendor CA registered by init");
    let vendor_key = store
        .get_parameter(VENDOR_KEY_PARAMETER, true)
        .expect("param")
        .expect("vendor key")
        .value;

    // The observer: registered ACTIVE with a policy allowing everything.
    let observer = issue(&vendor.pem, &vendor_key, "observer");
    let observer_id = pki::certificate_id_from_pem(&observer.chain_pem).expect("id");
    register(
        store,
        &observer_id,
        &vendor.id,
        &observer.chain_pem,
        CertificateStatus::Active,
    );
    store
        .create_policy(
            "TestObserverAll",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}"#,
        )
        .expect("policy");
    store
        .attach_policy("TestObserverAll", &observer_id)
        .expect("attach");

    let inactive = issue(&vendor.pem, &vendor_key, "INACTIVE1");
    let inactive_id = pki::certificate_id_from_pem(&inactive.chain_pem).expect("id");
    register(
        store,
        &inactive_id,
        &vendor.id,
        &inactive.chain_pem,
        CertificateStatus::Inactive,
    );
    store
        .attach_policy("TestObserverAll", &inactive_id)
        .expect("attach");

    let rogue = pki::create_ca(
        &Subject {
            common_name: Some("Rogue CA".into()),
            ..Subject::default()
        },
        KeyAlgorithm::EcdsaP256,
        30,
    )
    .expect("rogue CA");
    let unregistered_ca_device = issue(&rogue.cert_pem, &rogue.key_pem, SAMPLE_SERIAL);
    let expired = issue_expired(&vendor.pem, &vendor_key);

    // A rule with a republish action.
    store
        .put_topic_rule(&TopicRule {
            name: "test_republish".into(),
            sql: "SELECT * as data, topic() as topic, clientId() as client_id FROM 'test/in/+'"
                .into(),
            actions: serde_json::json!([{"Republish": {"Topic": "test/out", "Qos": 1}}]),
            enabled: true,
        })
        .expect("rule");

    let device_dir = data_dir.join("devices").join(SAMPLE_SERIAL);
    let device = Identity {
        chain_pem: std::fs::read_to_string(device_dir.join("vendor.cert.pem"))
            .expect("factory cert"),
        key_pem: std::fs::read_to_string(device_dir.join("vendor.key.pem")).expect("factory key"),
    };
    drop(cloud);
    Fixture {
        _dir: dir,
        data_dir,
        vendor_ca_id: vendor.id,
        observer,
        device,
        unregistered_ca_device,
        expired,
        inactive,
    }
}

fn register(
    store: &jitpilot::store::Store,
    id: &str,
    ca: &str,
    pem: &str,
    status: CertificateStatus,
) {
    store
        .register_certificate(&Certificate {
            id: id.into(),
            ca_id: Some(ca.into()),
            pem: pem.into(),
            status,
            created_at: now_millis(),
        })
        .expect("register");
}

/// `jitpilot serve --json` on port 0; killed on drop.
struct Server {
    child: Child,
    addr: String,
    root_ca: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data_dir: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jitpilot"))
        .args([
            "serve",
            "--json",
            "--mqtt-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn jitpilot serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("serve prints its endpoint");
    let doc: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("serve --json printed {line:?}: {e}"));
    Server {
        addr: doc["endpoint"].as_str().expect("endpoint").to_string(),
        root_ca: PathBuf::from(doc["endpointCa"].as_str().expect("endpointCa")),
        child,
    }
}

fn tls_config(server: &Server, identity: &Identity) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&server.root_ca).expect("root ca") {
        roots.add(cert.expect("root cert")).expect("add root");
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(identity.chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("chain");
    let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).expect("key");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .expect("client auth");
    Arc::new(config)
}

fn options(server: &Server, identity: &Identity, client_id: &str) -> MqttOptions {
    let (host, port) = server.addr.rsplit_once(':').expect("host:port");
    let mut opts = MqttOptions::new(client_id, host, port.parse().expect("port"));
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        tls_config(server, identity),
    )));
    opts
}

/// How a connection attempt ended.
enum Outcome {
    Accepted(AsyncClient, Box<EventLoop>),
    /// Closed (or TLS refused) before any CONNACK.
    Refused(String),
}

async fn connect(server: &Server, identity: &Identity, client_id: &str) -> Outcome {
    let (client, mut eventloop) = AsyncClient::new(options(server, identity, client_id), 64);
    let outcome = tokio::time::timeout(WAIT, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
                    return None;
                }
                Ok(_) => continue,
                Err(e) => return Some(e.to_string()),
            }
        }
    })
    .await
    .expect("connect outcome within the timeout");
    match outcome {
        None => Outcome::Accepted(client, Box::new(eventloop)),
        Some(e) => Outcome::Refused(e),
    }
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Accepted(..) => f.write_str("Accepted"),
            Outcome::Refused(why) => write!(f, "Refused({why})"),
        }
    }
}

/// Drives an accepted connection; forwards what arrives. The stream ends
/// with `Err` when the connection closes.
fn drive(mut eventloop: Box<EventLoop>) -> mpsc::UnboundedReceiver<Result<Packet, String>> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(p)) => {
                    if tx.send(Ok(p)).is_err() {
                        return;
                    }
                }
                Ok(Event::Outgoing(_)) => {}
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            }
        }
    });
    rx
}

/// Waits for a PUBLISH whose topic satisfies `want`; returns its JSON payload.
async fn next_publish(
    rx: &mut mpsc::UnboundedReceiver<Result<Packet, String>>,
    want: impl Fn(&str) -> bool,
) -> serde_json::Value {
    tokio::time::timeout(WAIT, async {
        loop {
            match rx.recv().await {
                Some(Ok(Packet::Publish(p))) if want(&p.topic) => {
                    return serde_json::from_slice(&p.payload).expect("JSON payload");
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("connection closed while waiting: {e}"),
                None => panic!("event loop ended"),
            }
        }
    })
    .await
    .expect("the expected message within the timeout")
}

/// Waits until `check` yields a value (re-checking with a short backoff),
/// for state that changes without a message to wait on (the registry).
async fn eventually<T>(check: impl Fn() -> Option<T>) -> T {
    tokio::time::timeout(WAIT, async {
        let mut pause = Duration::from_millis(10);
        loop {
            if let Some(v) = check() {
                return v;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    })
    .await
    .expect("the condition holds within the timeout")
}

/// Waits for a SUBACK (the subscription is in place).
async fn next_suback(rx: &mut mpsc::UnboundedReceiver<Result<Packet, String>>) {
    tokio::time::timeout(WAIT, async {
        loop {
            match rx.recv().await {
                Some(Ok(Packet::SubAck(_))) => return,
                Some(Ok(_)) => continue,
                other => panic!("no SUBACK: {other:?}"),
            }
        }
    })
    .await
    .expect("SUBACK within the timeout")
}

/// Waits until the connection is closed by the server.
async fn closed(rx: &mut mpsc::UnboundedReceiver<Result<Packet, String>>) -> String {
    tokio::time::timeout(WAIT, async {
        loop {
            match rx.recv().await {
                Some(Err(e)) => return e,
                Some(Ok(_)) => continue,
                None => return "event loop ended".into(),
            }
        }
    })
    .await
    .expect("the server closes the connection within the timeout")
}

async fn observer(
    server: &Server,
    fx: &Fixture,
    filters: &[&str],
) -> (AsyncClient, mpsc::UnboundedReceiver<Result<Packet, String>>) {
    let Outcome::Accepted(client, eventloop) = connect(server, &fx.observer, "observer").await
    else {
        panic!("the observer identity must connect");
    };
    let mut rx = drive(eventloop);
    for filter in filters {
        client
            .subscribe(*filter, QoS::AtLeastOnce)
            .await
            .expect("subscribe");
        next_suback(&mut rx).await;
    }
    (client, rx)
}

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

/// Raw bytes over a real TLS connection with the observer's identity.
async fn raw_session(server: &Server, fx: &Fixture, bytes: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let connector = tokio_rustls::TlsConnector::from(tls_config(server, &fx.observer));
    let tcp = tokio::net::TcpStream::connect(&server.addr)
        .await
        .expect("tcp");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("tls");
    tls.write_all(bytes).await.expect("write");
    tls.flush().await.expect("flush");
    let mut received = Vec::new();
    // The server must close: read to EOF (or reset) within the timeout.
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut received))
        .await
        .expect("the server closes the connection");
    received
}

fn connect_packet(client_id: &str) -> Vec<u8> {
    let mut buf = bytes::BytesMut::new();
    rumqttc::mqttbytes::v4::Packet::Connect(rumqttc::mqttbytes::v4::Connect::new(client_id))
        .write(&mut buf, usize::MAX)
        .expect("encode");
    buf.to_vec()
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
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/paho_jitp.py");
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("python3")
            .arg(&script)
            .args(["--addr", &server.addr, "--client-id", SAMPLE_SERIAL])
            .arg("--cert")
            .arg(device_dir.join("vendor.cert.pem"))
            .arg("--key")
            .arg(device_dir.join("vendor.key.pem"))
            .arg("--ca")
            .arg(device_dir.join("root-ca.pem"))
            .output(),
    )
    .await
    .expect("python client finishes")
    .expect("python3 runs (install paho-mqtt: python3 -m pip install paho-mqtt)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "paho client failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(result["first"], "refused");
    assert_eq!(result["second"], "accepted");
    // Its least-privilege policy lets it subscribe to its own response topic.
    assert_eq!(result["echo"], true);
}
