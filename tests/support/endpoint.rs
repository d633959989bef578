//! Shared setup of the endpoint tests: a deployed and initialised data dir
//! with test identities, `jitpilot serve` as a child process, TLS MQTT
//! clients, and waits on events with timeouts.

use super::process::ChildServer;
use jitpilot::cloud::local::LocalCloud;
use jitpilot::cloud::EventBus;
use jitpilot::fleet::SAMPLE_SERIAL;
use jitpilot::model::{now_millis, Certificate, CertificateStatus, TopicRule};
use jitpilot::pki::{self, KeyAlgorithm, Subject};
use jitpilot::vocabulary::VENDOR_KEY_PARAMETER;
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, TlsConfiguration, Transport,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Generous: the machine is shared and busy; nothing waits this long when things work.
pub const WAIT: Duration = Duration::from_secs(30);

/// A cert + key PEM pair a client presents.
#[derive(Clone)]
pub struct Identity {
    pub chain_pem: String,
    pub key_pem: String,
}

/// The data dir and the identities the tests use.
pub struct Fixture {
    pub _dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub vendor_ca_id: String,
    pub observer: Identity,
    pub device: Identity,
    pub unregistered_ca_device: Identity,
    pub expired: Identity,
    pub inactive: Identity,
}

pub fn issue(ca_cert: &str, ca_key: &str, cn: &str) -> Identity {
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
pub fn issue_expired(ca_cert: &str, ca_key: &str) -> Identity {
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
pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let cloud = LocalCloud::open(&data_dir, EventBus::default()).expect("open");
    cloud.deploy_sync().expect("deploy");
    cloud.init_sync(1).expect("init");
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

pub fn register(
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

/// `jitpilot serve --json` (MQTT and the AWS API on free loopback ports);
/// killed on drop.
pub struct Server {
    pub child: ChildServer,
    /// The MQTT endpoint, `127.0.0.1:PORT`.
    pub addr: String,
    pub root_ca: PathBuf,
    /// `http://127.0.0.1:PORT` of the AWS API (empty with `--api-addr off`).
    pub api: String,
}

impl Server {
    /// Starts `cmd` (a `serve --json` command, e.g. [`serve_command`] with
    /// more settings) and reads where it listens from its first line.
    pub fn start(cmd: &mut Command) -> Server {
        let child = ChildServer::start(cmd, "jitpilot serve");
        Server::listening(child)
    }

    /// The server of a started `serve --json`, from its first line.
    pub fn listening(child: ChildServer) -> Server {
        let doc = child.json();
        let field = |name: &str| {
            doc[name]
                .as_str()
                .unwrap_or_else(|| panic!("serve --json printed no {name}: {doc}"))
                .to_string()
        };
        Server {
            addr: field("endpoint"),
            root_ca: PathBuf::from(field("endpointCa")),
            api: doc["apiEndpoint"].as_str().unwrap_or_default().to_string(),
            child,
        }
    }
}

/// `jitpilot serve --json --mqtt-addr 127.0.0.1:0 --api-addr 127.0.0.1:0
/// --data-dir DATA`, not started yet.
pub fn serve_command(data_dir: &Path) -> Command {
    let mut cmd = super::jitpilot();
    cmd.args([
        "serve",
        "--json",
        "--mqtt-addr",
        "127.0.0.1:0",
        "--api-addr",
        "127.0.0.1:0",
        "--data-dir",
    ])
    .arg(data_dir);
    cmd
}

/// `jitpilot serve` over `data_dir`, listening.
pub fn serve(data_dir: &Path) -> Server {
    Server::start(&mut serve_command(data_dir))
}

pub fn tls_config(server: &Server, identity: &Identity) -> Arc<rustls::ClientConfig> {
    let root_ca = std::fs::read_to_string(&server.root_ca).expect("root ca");
    client_config(&root_ca, identity)
}

/// A TLS client trusting `root_ca_pem` and presenting `identity`.
pub fn client_config(root_ca_pem: &str, identity: &Identity) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(root_ca_pem.as_bytes()) {
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

pub fn options(server: &Server, identity: &Identity, client_id: &str) -> MqttOptions {
    options_for(&server.addr, tls_config(server, identity), client_id)
}

/// MQTT options for `addr` (`host:port`) over `tls`.
pub fn options_for(addr: &str, tls: Arc<rustls::ClientConfig>, client_id: &str) -> MqttOptions {
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    let mut opts = MqttOptions::new(client_id, host, port.parse().expect("port"));
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    opts
}

/// How a connection attempt ended.
pub enum Outcome {
    Accepted(AsyncClient, Box<EventLoop>),
    /// Closed (or TLS refused) before any CONNACK.
    Refused(String),
}

pub async fn connect(server: &Server, identity: &Identity, client_id: &str) -> Outcome {
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
pub fn drive(mut eventloop: Box<EventLoop>) -> mpsc::UnboundedReceiver<Result<Packet, String>> {
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
pub async fn next_publish(
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
pub async fn eventually<T>(check: impl Fn() -> Option<T>) -> T {
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

/// Waits until `serial`'s row in the device table has `CrState` `state`.
/// JITP's device connects as soon as the template ran; the rotation
/// function records the vendor certificate when the registered event
/// reaches it (rule_jitp), which may be a moment later — on AWS too.
pub async fn cr_state_reaches(data_dir: &Path, serial: &str, state: &str) {
    eventually(|| {
        let row = jitpilot::store::Store::open_read_only(data_dir)
            .ok()?
            .get_item(jitpilot::vocabulary::DEVICE_TABLE, serial)
            .ok()??;
        (row.get(jitpilot::vocabulary::ATTR_CR_STATE)?.as_str()? == state).then_some(())
    })
    .await
}

/// Waits for a SUBACK (the subscription is in place).
pub async fn next_suback(rx: &mut mpsc::UnboundedReceiver<Result<Packet, String>>) {
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
pub async fn closed(rx: &mut mpsc::UnboundedReceiver<Result<Packet, String>>) -> String {
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

pub async fn observer(
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

/// Raw bytes over a real TLS connection with the observer's identity.
pub async fn raw_session(server: &Server, fx: &Fixture, bytes: &[u8]) -> Vec<u8> {
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

pub fn connect_packet(client_id: &str) -> Vec<u8> {
    let mut buf = bytes::BytesMut::new();
    rumqttc::mqttbytes::v4::Packet::Connect(rumqttc::mqttbytes::v4::Connect::new(client_id))
        .write(&mut buf, usize::MAX)
        .expect("encode");
    buf.to_vec()
}

/// Waits for the PUBACK of our own QoS 1 publish (it is routed by then).
pub async fn next_puback(rx: &mut mpsc::UnboundedReceiver<Result<Packet, String>>) {
    tokio::time::timeout(WAIT, async {
        loop {
            match rx.recv().await {
                Some(Ok(Packet::PubAck(_))) => return,
                Some(Ok(_)) => continue,
                other => panic!("no PUBACK: {other:?}"),
            }
        }
    })
    .await
    .expect("PUBACK within the timeout")
}

pub async fn connect_as(
    server: &Server,
    fx: &Fixture,
    client_id: &str,
    clean: bool,
) -> (AsyncClient, mpsc::UnboundedReceiver<Result<Packet, String>>) {
    let mut opts = options(server, &fx.observer, client_id);
    opts.set_clean_session(clean);
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    let ack = tokio::time::timeout(WAIT, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => return ack,
                Ok(_) => continue,
                Err(e) => panic!("{client_id} could not connect: {e}"),
            }
        }
    })
    .await
    .expect("CONNACK within the timeout");
    assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
    let mut rx = drive(Box::new(eventloop));
    // Tell the caller about session_present through a marker on the stream.
    if ack.session_present {
        let (tx, new_rx) = mpsc::unbounded_channel();
        let _ = tx.send(Ok(Packet::ConnAck(ack)));
        tokio::spawn(async move {
            while let Some(item) = rx.recv().await {
                if tx.send(item).is_err() {
                    return;
                }
            }
        });
        return (client, new_rx);
    }
    (client, rx)
}
