//! The load generator's MQTT client: just enough MQTT 3.1.1 over mutual TLS
//! to CONNECT, PUBLISH at QoS 1 with a window of packets in flight, and
//! DISCONNECT. Written by hand (a dozen bytes per packet) so that the client
//! costs the same against both brokers and adds no queueing of its own.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// What can go wrong on the client side of a benchmark connection.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS setup: {0}")]
    Tls(#[from] rustls::Error),
    #[error("PEM in {0}: {1}")]
    Pem(String, String),
    #[error("broker refused CONNECT with return code {0}")]
    Refused(u8),
    #[error("unexpected packet type {0:#x} (expected {1})")]
    Unexpected(u8, &'static str),
    #[error("broker closed the connection before {0}")]
    Closed(&'static str),
}

/// One device identity: its TLS client configuration and clientId.
#[derive(Clone)]
pub struct Identity {
    pub client_id: String,
    pub tls: Arc<ClientConfig>,
}

impl Identity {
    /// Loads a device's factory identity (`vendor.cert.pem` = device cert +
    /// Vendor CA, `vendor.key.pem`), trusting `endpoint_ca` for the server.
    /// Session resumption is off: every connect is a full mutual-TLS
    /// handshake, against either broker.
    pub fn load(client_id: &str, dir: &Path, endpoint_ca: &str) -> Result<Identity, ClientError> {
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .map_err(|e| ClientError::Pem(dir.join(name).display().to_string(), e.to_string()))
        };
        let cert_pem = read("vendor.cert.pem")?;
        let key_pem = read("vendor.key.pem")?;
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ClientError::Pem("vendor.cert.pem".into(), e.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| ClientError::Pem("vendor.key.pem".into(), e.to_string()))?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(endpoint_ca.as_bytes()) {
            let cert = cert.map_err(|e| ClientError::Pem("endpoint CA".into(), e.to_string()))?;
            roots.add(cert)?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        config.resumption = rustls::client::Resumption::disabled();
        Ok(Identity {
            client_id: client_id.to_string(),
            tls: Arc::new(config),
        })
    }
}

/// A connected MQTT session.
pub struct Client {
    stream: BufReader<TlsStream<TcpStream>>,
    next_packet_id: u16,
    /// MQTT protocol level: 4 (3.1.1) or 5.
    level: u8,
}

impl Client {
    /// TCP connect, mutual-TLS handshake, CONNECT (clean session), CONNACK,
    /// at MQTT protocol `level` (4: 3.1.1, 5: MQTT 5).
    pub async fn connect(
        addr: &str,
        identity: &Identity,
        level: u8,
    ) -> Result<Client, ClientError> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from("localhost")
            .map_err(|e| ClientError::Pem("server name".into(), e.to_string()))?;
        let tls = TlsConnector::from(identity.tls.clone())
            .connect(name, tcp)
            .await?;
        let mut client = Client {
            stream: BufReader::new(tls),
            next_packet_id: 1,
            level,
        };
        client
            .write(&connect_packet(&identity.client_id, 600, level))
            .await?;
        let (kind, body) = client.read_packet("CONNACK").await?;
        if kind >> 4 != 2 {
            return Err(ClientError::Unexpected(kind, "CONNACK"));
        }
        match body.get(1) {
            Some(0) => Ok(client),
            Some(&code) => Err(ClientError::Refused(code)),
            None => Err(ClientError::Closed("CONNACK")),
        }
    }

    /// Publishes `count` QoS 1 messages to `topic`, keeping up to `window`
    /// unacknowledged, and returns when every PUBACK has arrived.
    pub async fn publish_qos1(
        &mut self,
        topic: &str,
        payload: &[u8],
        count: usize,
        window: usize,
    ) -> Result<(), ClientError> {
        let (mut sent, mut acked) = (0, 0);
        while acked < count {
            let mut batch = Vec::new();
            while sent < count && sent - acked < window.max(1) {
                let id = self.packet_id();
                batch.extend_from_slice(&publish_packet(topic, id, payload, self.level));
                sent += 1;
            }
            if !batch.is_empty() {
                self.write(&batch).await?;
            }
            let (kind, _) = self.read_packet("PUBACK").await?;
            if kind >> 4 != 4 {
                return Err(ClientError::Unexpected(kind, "PUBACK"));
            }
            acked += 1;
        }
        Ok(())
    }

    /// DISCONNECT, then close the TLS session.
    pub async fn disconnect(mut self) -> Result<(), ClientError> {
        self.write(&[0xE0, 0x00]).await?;
        self.stream.get_mut().shutdown().await?;
        Ok(())
    }

    fn packet_id(&mut self) -> u16 {
        let id = self.next_packet_id;
        self.next_packet_id = self.next_packet_id.checked_add(1).unwrap_or(1);
        id
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let stream = self.stream.get_mut();
        stream.write_all(bytes).await?;
        stream.flush().await?;
        Ok(())
    }

    /// Reads one packet: its first byte and its body.
    async fn read_packet(&mut self, expected: &'static str) -> Result<(u8, Vec<u8>), ClientError> {
        let mut first = [0u8; 1];
        if self.stream.read(&mut first).await? == 0 {
            return Err(ClientError::Closed(expected));
        }
        let mut len = 0usize;
        for shift in (0..28).step_by(7) {
            let byte = self.stream.read_u8().await?;
            len |= usize::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).await?;
        Ok((first[0], body))
    }
}

fn remaining_length(mut len: usize, out: &mut Vec<u8>) {
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
}

fn string(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// CONNECT at protocol `level` (4: 3.1.1, 5: MQTT 5, no properties),
/// clean session / clean start.
fn connect_packet(client_id: &str, keep_alive_secs: u16, level: u8) -> Vec<u8> {
    let mut body = Vec::new();
    string("MQTT", &mut body);
    body.push(level);
    body.push(0x02); // clean session
    body.extend_from_slice(&keep_alive_secs.to_be_bytes());
    if level == 5 {
        body.push(0); // no properties
    }
    string(client_id, &mut body);
    let mut packet = vec![0x10];
    remaining_length(body.len(), &mut packet);
    packet.extend_from_slice(&body);
    packet
}

/// PUBLISH at QoS 1 (MQTT 5: with an empty property list).
fn publish_packet(topic: &str, packet_id: u16, payload: &[u8], level: u8) -> Vec<u8> {
    let mut body = Vec::new();
    string(topic, &mut body);
    body.extend_from_slice(&packet_id.to_be_bytes());
    if level == 5 {
        body.push(0);
    }
    body.extend_from_slice(payload);
    let mut packet = vec![0x32];
    remaining_length(body.len(), &mut packet);
    packet.extend_from_slice(&body);
    packet
}
