//! The cloud's event stream: every packet in and out, every JITP step, rule
//! invocation, function decision and registry change, with decoded fields.
//!
//! The stream is a bounded broadcast channel. Emitting never blocks and never
//! slows the broker: with no subscriber, events are not even built
//! ([`EventBus::emit_with`]); a slow subscriber loses the oldest events and
//! its [`EventReceiver`] counts how many.

use crate::model::{now_millis, EpochMillis};
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::broadcast;

/// What an event is about; the traffic pane colours and filters by it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// An MQTT packet received from a client.
    PacketIn { packet: &'static str, size: usize },
    /// An MQTT packet sent to a client.
    PacketOut { packet: &'static str, size: usize },
    /// TLS and session outcomes: accepted, refused (with the reason), closed.
    Connection,
    /// A JITP step: registration, template application.
    Jitp,
    /// A topic rule matched and its action ran.
    Rule,
    /// A function ("Lambda") decision, e.g. the rotation function's.
    Function,
    /// A registry change: certificate status, thing, attachment.
    Registry,
    /// A stack engine step.
    Stack,
    /// Progress of an in-process simulated device.
    Device,
    /// A call to the local cloud's AWS API (`iot:RegisterCACertificate`),
    /// with the HTTP status answered and how long it took.
    Api {
        service: String,
        operation: String,
        status: u16,
        millis: u64,
    },
}

impl EventKind {
    /// Short label: `IN CONNECT`, `OUT PUBACK`, `JITP`, ...
    pub fn label(&self) -> String {
        match self {
            EventKind::PacketIn { packet, .. } => format!("IN {packet}"),
            EventKind::PacketOut { packet, .. } => format!("OUT {packet}"),
            EventKind::Connection => "CONN".into(),
            EventKind::Jitp => "JITP".into(),
            EventKind::Rule => "RULE".into(),
            EventKind::Function => "LAMBDA".into(),
            EventKind::Registry => "REGISTRY".into(),
            EventKind::Stack => "STACK".into(),
            EventKind::Device => "DEVICE".into(),
            EventKind::Api { .. } => "API".into(),
        }
    }
}

/// One event of the stream.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CloudEvent {
    pub at: EpochMillis,
    pub kind: EventKind,
    /// The MQTT clientId (= serial in the walkthrough), when there is one.
    pub client_id: Option<String>,
    pub topic: Option<String>,
    /// One line for the traffic pane.
    pub summary: String,
    /// Decoded fields for the detail view: `payload` (JSON or text), cert ids, reasons.
    pub detail: serde_json::Value,
}

impl CloudEvent {
    /// An event stamped now.
    pub fn new(kind: EventKind, summary: impl Into<String>) -> CloudEvent {
        CloudEvent {
            at: now_millis(),
            kind,
            client_id: None,
            topic: None,
            summary: summary.into(),
            detail: serde_json::Value::Null,
        }
    }

    /// Sets the client id.
    pub fn client(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Sets the topic.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// Sets the detail document.
    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

/// Sending half of the stream. Cheap to clone.
#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<CloudEvent>>,
}

impl EventBus {
    /// A bus whose subscribers each buffer at most `capacity` events.
    pub fn new(capacity: usize) -> EventBus {
        let (tx, _) = broadcast::channel(capacity.max(1));
        EventBus { tx }
    }

    /// A new subscriber, seeing events emitted from now on.
    pub fn subscribe(&self) -> EventReceiver {
        EventReceiver {
            rx: self.tx.subscribe(),
            dropped: 0,
        }
    }

    /// True when someone listens; emitters may skip building events otherwise.
    pub fn enabled(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Emits an event (dropped silently when nobody listens).
    pub fn emit(&self, event: CloudEvent) {
        if self.enabled() {
            let _ = self.tx.send(Arc::new(event));
        }
    }

    /// Builds and emits an event only when someone listens.
    pub fn emit_with(&self, build: impl FnOnce() -> CloudEvent) {
        if self.enabled() {
            let _ = self.tx.send(Arc::new(build()));
        }
    }
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new(65_536)
    }
}

/// Receiving half. Counts events lost because this subscriber fell behind.
pub struct EventReceiver {
    rx: broadcast::Receiver<Arc<CloudEvent>>,
    dropped: u64,
}

impl EventReceiver {
    /// The next event; `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<Arc<CloudEvent>> {
        loop {
            match self.rx.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(n)) => self.dropped += n,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<Arc<CloudEvent>> {
        loop {
            match self.rx.try_recv() {
                Ok(event) => return Some(event),
                Err(broadcast::error::TryRecvError::Lagged(n)) => self.dropped += n,
                Err(_) => return None,
            }
        }
    }

    /// Events lost so far because this subscriber fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// Bytes of payload shown in packet events (the traffic pane's preview).
pub const PAYLOAD_PREVIEW_BYTES: usize = 512;

/// The payload as the traffic pane shows it: JSON if it parses, else text,
/// else its size; cut at [`PAYLOAD_PREVIEW_BYTES`].
pub fn payload_preview(payload: &[u8]) -> Value {
    if let Ok(v) = serde_json::from_slice::<Value>(payload) {
        if payload.len() <= PAYLOAD_PREVIEW_BYTES {
            return v;
        }
    }
    match std::str::from_utf8(payload) {
        Ok(text) => {
            let mut end = text.len().min(PAYLOAD_PREVIEW_BYTES);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            Value::String(text[..end].to_string())
        }
        Err(_) => Value::String(format!("<{} bytes of binary>", payload.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slow_subscriber_counts_what_it_lost() {
        let bus = EventBus::new(4);
        let mut rx = bus.subscribe();
        for i in 0..10 {
            bus.emit(CloudEvent::new(EventKind::Jitp, format!("e{i}")));
        }
        let first = rx.recv().await.expect("an event");
        assert_eq!(first.summary, "e6");
        assert_eq!(rx.dropped(), 6);
    }

    #[test]
    fn nothing_is_built_without_subscribers() {
        let bus = EventBus::new(4);
        let mut built = false;
        bus.emit_with(|| {
            built = true;
            CloudEvent::new(EventKind::Rule, "x")
        });
        assert!(!built);
    }
}
