//! The device's MQTT connection as the shell drives it: rumqttc's 3.1.1 or
//! MQTT 5 client behind one type, polled into the machine's [`Input`]s, and
//! connection errors put in words that tell "no endpoint" from "endpoint
//! busy" from JITP's refusal.

use crate::machine::Input;
use crate::mqtt_version;
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, Outgoing, Packet, QoS, SubscribeReasonCode,
};

/// One MQTT connection attempt or live connection.
pub(super) struct Connection {
    pub(super) client: Client,
    /// CONNACK seen: later errors are `Closed`, earlier ones `ConnectFailed`.
    pub(super) connected: bool,
}

/// rumqttc's 3.1.1 or MQTT 5 client.
pub(super) enum Client {
    V311(AsyncClient, Box<EventLoop>),
    V5(rumqttc::v5::AsyncClient, Box<rumqttc::v5::EventLoop>),
}

impl Client {
    pub(super) fn try_subscribe(&self, topic: String) -> Result<(), String> {
        match self {
            Client::V311(c, _) => c
                .try_subscribe(topic, QoS::AtLeastOnce)
                .map_err(|e| e.to_string()),
            Client::V5(c, _) => c
                .try_subscribe(topic, rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
                .map_err(|e| e.to_string()),
        }
    }

    pub(super) fn try_publish(&self, topic: String, payload: Vec<u8>) -> Result<(), String> {
        match self {
            Client::V311(c, _) => c
                .try_publish(topic, QoS::AtLeastOnce, false, payload)
                .map_err(|e| e.to_string()),
            Client::V5(c, _) => c
                .try_publish(
                    topic,
                    rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                    false,
                    payload,
                )
                .map_err(|e| e.to_string()),
        }
    }

    pub(super) fn try_disconnect(&self) -> Result<(), String> {
        match self {
            Client::V311(c, _) => c.try_disconnect().map_err(|e| e.to_string()),
            Client::V5(c, _) => c.try_disconnect().map_err(|e| e.to_string()),
        }
    }

    /// Polls until the DISCONNECT is written or the connection fails.
    pub(super) async fn flush_disconnect(&mut self) {
        match self {
            Client::V311(_, eventloop) => loop {
                match eventloop.poll().await {
                    Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                    Ok(_) => {}
                }
            },
            Client::V5(_, eventloop) => loop {
                match eventloop.poll().await {
                    Ok(rumqttc::v5::Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                    Ok(_) => {}
                }
            },
        }
    }
}

/// The next input from the connection, or never when there is none.
pub(super) async fn poll_connection(conn: Option<&mut Connection>) -> Input {
    let Some(conn) = conn else {
        return std::future::pending().await;
    };
    let eventloop = match &mut conn.client {
        Client::V311(_, eventloop) => eventloop,
        Client::V5(_, eventloop) => {
            return loop {
                match eventloop.poll().await {
                    Ok(event) => {
                        if let Some(input) =
                            mqtt_version::input_of_event(event, &mut conn.connected)
                        {
                            break input;
                        }
                    }
                    Err(e) => {
                        let reason =
                            mqtt_version::describe_v5(&e).unwrap_or_else(|| describe_transport(&e));
                        break if conn.connected {
                            Input::Closed { reason }
                        } else {
                            Input::ConnectFailed {
                                reason: format!("{reason} before CONNACK"),
                            }
                        };
                    }
                }
            };
        }
    };
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                conn.connected = true;
                return Input::Connected;
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, SubscribeReasonCode::Failure))
                {
                    return Input::Closed {
                        reason: "the endpoint refused the subscription (policy)".into(),
                    };
                }
                return Input::Subscribed;
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                return Input::Message {
                    topic: publish.topic,
                    payload: publish.payload.to_vec(),
                };
            }
            Ok(_) => {}
            Err(e) => {
                let reason = describe(&e);
                return if conn.connected {
                    Input::Closed { reason }
                } else {
                    Input::ConnectFailed {
                        reason: format!("{reason} before CONNACK"),
                    }
                };
            }
        }
    }
}

/// An MQTT 5 transport error in words, as [`describe`] words 3.1.1's.
fn describe_transport(e: &rumqttc::v5::ConnectionError) -> String {
    use rumqttc::v5::ConnectionError as E;
    use std::io::ErrorKind;
    match e {
        E::Io(io) if io.kind() == ErrorKind::ConnectionRefused => {
            "no endpoint: connection refused (nothing listens at the address; start `jitpilot serve` or the TUI)".into()
        }
        E::Tls(rumqttc::TlsError::Io(io))
            if matches!(
                io.kind(),
                ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
            ) =>
        {
            "endpoint busy: TCP connected but the endpoint closed the connection during the TLS handshake".into()
        }
        E::Io(io) if io.kind() == ErrorKind::UnexpectedEof => {
            "the endpoint closed the connection".into()
        }
        E::Timeout(_) => "endpoint busy: no CONNACK within the connect timeout".into(),
        other => other.to_string(),
    }
}

/// A connection error in words, naming JITP's refusal for what it usually
/// is, and telling "no endpoint" (nothing listens: connection refused) from
/// "endpoint busy" (TCP connected, but the TLS handshake timed out or was
/// cut) — the first needs someone to start the cloud, the second only time.
fn describe(e: &ConnectionError) -> String {
    use std::io::ErrorKind;
    match e {
        ConnectionError::Io(io) if io.kind() == ErrorKind::ConnectionRefused => {
            "no endpoint: connection refused (nothing listens at the address; start `jitpilot serve` or the TUI)".into()
        }
        ConnectionError::NetworkTimeout => {
            "endpoint busy: no TLS handshake within the connect timeout (the endpoint is overloaded or its backlog is full)".into()
        }
        ConnectionError::Tls(rumqttc::TlsError::Io(io))
            if matches!(
                io.kind(),
                ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
            ) =>
        {
            "endpoint busy: TCP connected but the endpoint closed the connection during the TLS handshake".into()
        }
        ConnectionError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the endpoint closed the connection".into()
        }
        ConnectionError::MqttState(rumqttc::StateError::ConnectionAborted) => {
            "the endpoint closed the connection".into()
        }
        ConnectionError::ConnectionRefused(code) => format!("CONNACK refused: {code:?}"),
        other => other.to_string(),
    }
}
