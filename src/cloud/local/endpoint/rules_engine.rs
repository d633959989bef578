//! Running the topic rules on routed messages: the stack's rules, loaded
//! from the store (and reloaded after a deploy), matched against every
//! message, their SQL evaluated by [`crate::cloud::local::rules`], their
//! actions run on spawned tasks so the router never waits for a function.
//!
//! - Lambda: the action's function ARN → function name → `store.get_function`
//!   → [`FunctionRegistry::resolve`] (its own code, or the built-in its
//!   handler names) → `invoke(event, environment, publisher)`.
//! - Republish: the SQL output is published again.
//!
//! Both publish through the [`Publish`] trait the router implements: the
//! engine runs below the router and never names it.

use super::limits::{MAX_CONCURRENT_ACTIONS, MAX_REPUBLISH_DEPTH};
use super::message::{Message, Origin};
use super::publish::{CloudPublisher, Publish};
use super::topics::check_topic_name;
use crate::cloud::events::{CloudEvent, EventBus, EventKind};
use crate::cloud::local::functions::FunctionRegistry;
use crate::cloud::local::rules::{function_name_from_arn, CompiledRule, RuleAction, RuleMessage};
use crate::model::now_millis;
use crate::store::Store;
use bytes::Bytes;
use rumqttc::mqttbytes::QoS;
use serde_json::{json, Value};
use std::sync::{Arc, RwLock};
use tokio::sync::Semaphore;

/// The rules engine of one endpoint.
pub struct RulesEngine {
    store: Store,
    bus: EventBus,
    functions: FunctionRegistry,
    rules: RwLock<Arc<Vec<CompiledRule>>>,
    /// Bounds concurrent actions; waiting happens on the action's own task.
    actions: Arc<Semaphore>,
}

impl RulesEngine {
    /// An engine with no rules loaded yet (call [`RulesEngine::reload`]).
    pub fn new(store: Store, bus: EventBus, functions: FunctionRegistry) -> RulesEngine {
        RulesEngine {
            store,
            bus,
            functions,
            rules: RwLock::new(Arc::new(Vec::new())),
            actions: Arc::new(Semaphore::new(MAX_CONCURRENT_ACTIONS)),
        }
    }

    /// Loads the enabled topic rules from the store. A rule whose SQL or
    /// actions do not parse is skipped and reported (the others still run).
    /// Returns how many rules are active.
    pub fn reload(&self) -> Result<usize, crate::store::StoreError> {
        let mut loaded = Vec::new();
        for rule in self.store.list_topic_rules()? {
            if !rule.enabled {
                continue;
            }
            match CompiledRule::compile(&rule) {
                Ok(compiled) => loaded.push(compiled),
                Err(e) => {
                    tracing::warn!(rule = %rule.name, error = %e, "topic rule skipped");
                    self.bus.emit_with(|| {
                        CloudEvent::new(EventKind::Rule, format!("rule {} skipped: {e}", rule.name))
                            .detail(json!({"rule": rule.name, "error": e.to_string()}))
                    });
                }
            }
        }
        let count = loaded.len();
        *self.rules.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(loaded);
        Ok(count)
    }

    /// Runs every rule whose `FROM` filter matches the message; their
    /// republishes and functions publish through `via` (the router).
    pub fn on_message<P: Publish + 'static>(
        &self,
        via: &Arc<P>,
        message: &Message,
        origin: &Origin,
    ) {
        let rules = self.rules.read().unwrap_or_else(|p| p.into_inner()).clone();
        if rules.is_empty() {
            return;
        }
        for rule in rules.iter() {
            if !rule.sql.matches_topic(&message.topic) {
                continue;
            }
            let input = RuleMessage {
                topic: &message.topic,
                payload: &message.payload,
                client_id: origin.client_id.as_deref().unwrap_or(""),
                principal: origin.principal.as_deref().unwrap_or(""),
                timestamp: now_millis(),
                // MQTT 5 user properties: `get_user_property('name')`.
                user_properties: message
                    .properties
                    .as_ref()
                    .map_or(&[][..], |p| &p.user_properties[..]),
            };
            let Some(output) = rule.sql.evaluate(&input) else {
                continue;
            };
            let via: Arc<dyn Publish> = via.clone();
            for action in &rule.actions {
                self.run_action(&via, &rule.name, action, &input, output.clone(), origin);
            }
        }
    }

    fn run_action(
        &self,
        via: &Arc<dyn Publish>,
        rule: &str,
        action: &RuleAction,
        input: &RuleMessage<'_>,
        output: Value,
        origin: &Origin,
    ) {
        let source_topic = input.topic;
        // The device the message is from or about: its timeline shows the rule.
        let device = origin
            .client_id
            .as_deref()
            .or(origin.about.as_deref())
            .filter(|c| !c.is_empty());
        let on_device = |event: CloudEvent| match device {
            Some(d) => event.client(d),
            None => event,
        };
        match action {
            RuleAction::Republish { qos, .. } => {
                let Some(topic) = action
                    .republish_topic(input)
                    .filter(|t| check_topic_name(t).is_ok())
                else {
                    return self.rule_failed(
                        rule,
                        device,
                        "republish topic is empty or invalid after substitution",
                    );
                };
                if origin.depth >= MAX_REPUBLISH_DEPTH {
                    tracing::warn!(rule, topic = %topic, "republish loop stopped");
                    return;
                }
                self.bus.emit_with(|| {
                    on_device(
                        CloudEvent::new(EventKind::Rule, format!("{rule}: republish to {topic}"))
                            .topic(source_topic)
                            .detail(json!({"rule": rule, "action": "republish", "to": topic, "event": output})),
                    )
                });
                let payload = Bytes::from(output.to_string().into_bytes());
                let republished = Message {
                    topic,
                    payload,
                    qos: if *qos == 0 {
                        QoS::AtMostOnce
                    } else {
                        QoS::AtLeastOnce
                    },
                    retain: false,
                    properties: None,
                };
                let next = Origin {
                    client_id: origin.client_id.clone(),
                    principal: origin.principal.clone(),
                    depth: origin.depth + 1,
                    about: origin.about.clone(),
                    // A republish is fire-and-forget, as on AWS.
                    delivery: None,
                };
                // On its own task: a republish re-enters the router, whose
                // lock the caller may be about to take again.
                let via = via.clone();
                tokio::spawn(async move { via.publish(republished, next) });
            }
            RuleAction::Lambda { function_arn } => {
                // Not handled: a tracked message (the registered event) stays
                // in its outbox and is redelivered at the next start.
                let not_run = |why: &str| {
                    if let Some(delivery) = &origin.delivery {
                        delivery.fail();
                    }
                    self.rule_failed(rule, device, why)
                };
                let name = function_name_from_arn(function_arn).to_string();
                let function = match self.store.get_function(&name) {
                    Ok(Some(f)) => f,
                    Ok(None) => {
                        return not_run(&format!(
                            "function {name} is not deployed; run `jitpilot deploy`"
                        ));
                    }
                    Err(e) => return not_run(&e.to_string()),
                };
                let Some(builtin) = self.functions.resolve(&function) else {
                    return not_run(&format!(
                        "function {name} names handler {} that this jitpilot does not have",
                        function.handler
                    ));
                };
                self.bus.emit_with(|| {
                    on_device(
                        CloudEvent::new(EventKind::Rule, format!("{rule}: invoke {name}"))
                            .topic(source_topic)
                            .detail(json!({"rule": rule, "action": "lambda", "function": name, "event": output})),
                    )
                });
                let publisher: Arc<dyn crate::rotation::Publisher> =
                    Arc::new(CloudPublisher::new(via.clone()));
                let permits = self.actions.clone();
                let bus = self.bus.clone();
                let rule = rule.to_string();
                let device = device.map(str::to_string);
                let ticket = origin.delivery.as_ref().map(|d| d.ticket());
                let environment = function.environment;
                tokio::spawn(async move {
                    let Ok(_permit) = permits.acquire_owned().await else {
                        return;
                    };
                    let result = builtin.invoke(output, environment, publisher).await;
                    match &result {
                        Ok(_) => tracing::debug!(rule, function = %name, "function returned"),
                        Err(e) => {
                            tracing::warn!(rule, function = %name, error = %e, "function failed")
                        }
                    }
                    let ok = result.is_ok();
                    bus.emit_with(|| {
                        let (summary, detail) = match result {
                            Ok(v) => (
                                format!("{name} returned"),
                                json!({"function": name, "result": v}),
                            ),
                            Err(e) => (
                                format!("{name} failed: {e}"),
                                json!({"function": name, "error": e}),
                            ),
                        };
                        let event = CloudEvent::new(EventKind::Function, summary).detail(detail);
                        match &device {
                            Some(d) => event.client(d.clone()),
                            None => event,
                        }
                    });
                    if let Some(ticket) = ticket {
                        ticket.finish(ok);
                    }
                });
            }
        }
    }

    fn rule_failed(&self, rule: &str, device: Option<&str>, why: &str) {
        tracing::warn!(rule, error = why, "rule action failed");
        self.bus.emit_with(|| {
            let event = CloudEvent::new(EventKind::Rule, format!("{rule}: action failed: {why}"))
                .detail(json!({"rule": rule, "error": why}));
            match device {
                Some(d) => event.client(d),
                None => event,
            }
        });
    }
}
