//! The test playing AWS IoT's rules engine on mosquitto: a real MQTT client
//! subscribed to the rotation request topics, calling the real Lambda
//! handler in-process (SDK clients against moto) with the rules' SQL output,
//! and publishing the function's answers back on the broker.
//!
//! What mosquitto cannot tell a subscriber is the publisher's `clientId()`
//! and `principal()`. The broker's ACL (`mosquitto::rotation_acl`) lets only
//! the serial's vendor certificate publish its create-man-cert request and
//! only its manufacturer certificate (CN = serial, no vendor subject) its
//! ack, as the IoT policies do; so `client_id` is taken as the topic's
//! serial and `principal()` as the certificate the step is made with (the
//! row's `VendorCertId` for 3b, `ManufacturerCertId` for 3c). The test
//! checks the clientId and certificate of each connection in the broker's
//! log; the function's own principal checks are tested with explicit
//! principals in `walkthrough.rs`.

use super::walkthrough::row;
use jitpilot::cloud::aws::lambda::RotationLambda;
use jitpilot::cloud::aws::Clients;
use jitpilot::rotation::Publisher;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request as the broker delivered it to the rules engine.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub topic: String,
    pub payload: Value,
}

/// The running rules engine; stops when dropped.
pub struct RulesEngine {
    task: tokio::task::JoinHandle<()>,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
    answers: Arc<Mutex<Vec<Value>>>,
}

/// Publishes the function's answers on the broker, QoS 1.
struct BrokerPublisher(AsyncClient);

impl Publisher for BrokerPublisher {
    fn publish(&self, topic: &str, payload: Vec<u8>) {
        self.0
            .try_publish(topic, QoS::AtLeastOnce, false, payload)
            .expect("the rules engine's client queues the answer");
    }
}

impl RulesEngine {
    /// Connects to the broker's rules listener and starts serving.
    pub async fn start(sdk: &Clients, rules_port: u16) -> RulesEngine {
        let mut options = MqttOptions::new("iot-rules-engine", "127.0.0.1", rules_port);
        options.set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let lambda = RotationLambda::over_aws_answering_with(
            sdk,
            "CertRotationDevices",
            Default::default(),
            Arc::new(BrokerPublisher(client.clone())),
        );
        let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
        client
            .subscribe("/cert-rotation/+/+/rqst", QoS::AtLeastOnce)
            .await
            .expect("subscribe");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let sdk = sdk.clone();
        let (seen2, answers2) = (seen.clone(), answers.clone());
        let task = tokio::spawn(async move {
            let mut subscribed_tx = Some(subscribed_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(tx) = subscribed_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let payload: Value =
                            serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                        seen2.lock().expect("seen").push(SeenRequest {
                            topic: p.topic.clone(),
                            payload: payload.clone(),
                        });
                        let (lambda, sdk, answers) =
                            (lambda.clone(), sdk.clone(), answers2.clone());
                        // Invocations run beside the event loop, which must
                        // keep polling to send their answers.
                        tokio::spawn(async move {
                            let event = rule_output(&sdk, &p.topic, payload).await;
                            let answer = lambda
                                .handle(event)
                                .await
                                .unwrap_or_else(|e| json!({"error": e.to_string()}));
                            answers.lock().expect("answers").push(answer);
                        });
                    }
                    Ok(_) => {}
                    Err(e) => panic!("the rules engine lost the broker: {e}"),
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(30), subscribed_rx)
            .await
            .expect("SUBACK within 30 s")
            .expect("SUBACK");
        RulesEngine {
            task,
            seen,
            answers,
        }
    }

    /// Requests the broker delivered, in order.
    pub fn seen(&self) -> Vec<SeenRequest> {
        self.seen.lock().expect("seen").clone()
    }

    /// The function's return values, in completion order.
    pub fn answers(&self) -> Vec<Value> {
        self.answers.lock().expect("answers").clone()
    }
}

impl Drop for RulesEngine {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The rotation rules' SQL output for a request on `topic`.
async fn rule_output(sdk: &Clients, topic: &str, data: Value) -> Value {
    let parts: Vec<&str> = topic.split('/').collect();
    // "", "cert-rotation", step, serial, "rqst"
    let (step, serial) = (parts[2], parts[3]);
    let r = row(sdk, serial).await;
    let principal = match step {
        "create-man-cert" => r.get("VendorCertId"),
        _ => r.get("ManufacturerCertId"),
    };
    json!({
        "data": data,
        "topic": topic,
        "client_id": serial,
        "cert_id": principal,
    })
}
