//! A hand-driven MQTT client with a device's identity, and what the
//! bad-request tests check with it: CSRs, refusals logged and answered.

use super::support::endpoint::Server as Serve;
use jitpilot::store::Store;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// A hand-driven MQTT client with a device's identity, for requests the
/// careful device agent would never send.
pub struct RawClient {
    client: rumqttc::AsyncClient,
    rx: tokio::sync::mpsc::UnboundedReceiver<Result<rumqttc::Packet, String>>,
}

impl RawClient {
    pub async fn connect(
        serve: &Serve,
        folder: &Path,
        identity: simulated_devices::machine::Identity,
        client_id: &str,
    ) -> RawClient {
        use simulated_devices::{tls, CredentialFolder};
        let folder = CredentialFolder::new(folder);
        let roots = std::sync::Arc::new(tls::root_store(&folder).unwrap());
        let config = tls::client_config(&folder, identity, roots, Some("localhost"), None).unwrap();
        let (host, port) = serve.addr.rsplit_once(':').unwrap();
        let mut options = rumqttc::MqttOptions::new(client_id, host, port.parse().unwrap());
        options.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(std::sync::Arc::new(config)),
        ));
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 16);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(rumqttc::Event::Incoming(packet)) => {
                        if tx.send(Ok(packet)).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                }
            }
        });
        let mut raw = RawClient { client, rx };
        assert!(matches!(raw.next().await, rumqttc::Packet::ConnAck(_)));
        raw
    }

    pub async fn next(&mut self) -> rumqttc::Packet {
        let next = tokio::time::timeout(Duration::from_secs(20), self.rx.recv()).await;
        match next {
            Ok(Some(Ok(packet))) => packet,
            other => panic!("expected a packet, got {other:?}"),
        }
    }

    pub async fn subscribe(&mut self, topic: &str) {
        self.client
            .subscribe(topic, rumqttc::QoS::AtLeastOnce)
            .await
            .unwrap();
        while !matches!(self.next().await, rumqttc::Packet::SubAck(_)) {}
    }

    pub async fn publish(&self, topic: &str, payload: Value) {
        self.client
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload.to_string())
            .await
            .unwrap();
    }

    /// The next PUBLISH received.
    pub async fn response(&mut self) -> (String, Vec<u8>) {
        loop {
            if let rumqttc::Packet::Publish(p) = self.next().await {
                return (p.topic, p.payload.to_vec());
            }
        }
    }
}

/// A folder whose serial another folder already rotated: the vendor
/// certificate it holds was retired at 3c. `device` and `fleet` say so
/// instead of reporting refused connects.
pub fn csr(cn: &str, key: &rcgen::KeyPair) -> String {
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.serialize_request(key).unwrap().pem().unwrap()
}

/// Waits (bounded) until the event log holds a refusal with `code` for `serial`.
pub async fn refusal_logged(dir: &Path, serial: &str, code: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let store = Store::open_read_only(dir).unwrap();
        let events = store.list_events_for(serial, 200).unwrap();
        if events
            .iter()
            .any(|e| e.kind == "rotation.refused" && e.detail["code"] == code)
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no `{code}` refusal logged for {serial}: {events:#?}"
        );
        // Polls the log; what is awaited is the condition, not the delay.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The next response on the client's topic is a refusal with `code`:
/// every refusal is answered, so the device knows why.
pub async fn answered_with(client: &mut RawClient, code: &str) {
    let (_, payload) = client.response().await;
    let answer: Value = serde_json::from_slice(&payload).expect("a JSON answer");
    assert_eq!(answer["error"]["code"], code, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{answer}"
    );
}
