//! The thin shell around the pure handlers: reads the facts a handler needs,
//! asks it for a [`Decision`], signs when told to, performs the effects and
//! records the outcome with its reason.
//!
//! Every refusal is logged at WARN (the function's log: `jitpilot.log`
//! locally, CloudWatch on AWS) and, for a device's request, answered on its
//! response topic; so is a backend failure, as a retryable error.

use super::decision::{error_response, Decision, Effect, Outcome, Plan, Refusal, SignRequest};
use super::event::{parse_event, RotationEvent};
use super::traits::{AuditSink, BackendError, DeviceTable, ParameterStore, Registry};
use super::wire::{
    ca_key_parameter, response_topic, CrState, DeviceRow, ACK_MAN_CERT, CREATE_MAN_CERT,
};
use super::{ack_man_cert, create_man_cert, registered, Publisher, RotationConfig};
use crate::model::Certificate;
use crate::pki;
use serde_json::{json, Value};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

/// Number of lock stripes: invocations for different serials rarely share one.
const LOCK_STRIPES: usize = 64;

/// What the function talks to.
#[derive(Clone)]
pub struct Backends {
    /// Certificates, things, policies.
    pub registry: Arc<dyn Registry>,
    /// `CertRotationDevices`.
    pub table: Arc<dyn DeviceTable>,
    /// Where the Manufacturer CA key is kept (`cr-ca-key-<id>`).
    pub params: Arc<dyn ParameterStore>,
    /// Where every outcome and its reason is recorded.
    pub audit: Arc<dyn AuditSink>,
}

/// A failure of the function itself (not a refusal): the backend could not
/// be read or written. The invocation fails like a Lambda error; the device
/// is told so (`backend_error`, retryable) and retries.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("rotation function could not finish: {0}. The device will retry; check the cloud's state (jitpilot status)")]
    Backend(#[from] BackendError),
    #[error("rotation function could not encode its response: {0}")]
    Encode(String),
}

/// The result of one invocation, returned to the caller (the rules engine).
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// The serial, or a certificateId when the serial is unknown.
    pub subject: String,
    pub topic: Option<String>,
    pub outcome: Outcome,
}

impl Invocation {
    /// The function's JSON return value.
    pub fn to_json(&self) -> Value {
        let mut detail = self.outcome.detail();
        if let Some(obj) = detail.as_object_mut() {
            obj.insert("subject".into(), Value::from(self.subject.as_str()));
            if let Some(topic) = &self.topic {
                obj.insert("topic".into(), Value::from(topic.as_str()));
            }
        }
        detail
    }
}

/// The rotation function: one per cloud, shared by all invocations.
pub struct RotationFunction {
    backends: Backends,
    config: RotationConfig,
    /// Serializes invocations for the same serial: a retried request racing
    /// its original must not issue two certificates.
    locks: Vec<Mutex<()>>,
}

impl RotationFunction {
    /// A function over `backends`, issuing manufacturer certs per `config`.
    pub fn new(backends: Backends, config: RotationConfig) -> RotationFunction {
        RotationFunction {
            backends,
            config,
            locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    /// The configuration the function was created with.
    pub fn config(&self) -> RotationConfig {
        self.config
    }

    /// Handles one event (the rule's SQL output). Refusals are `Ok`: they are
    /// decisions, logged with their reason; `Err` is a backend failure.
    pub fn handle(
        &self,
        input: &Value,
        publisher: &dyn Publisher,
    ) -> Result<Invocation, RotationError> {
        self.handle_configured(input, &self.config, publisher)
    }

    /// [`handle`](Self::handle) with the configuration of this invocation
    /// (the deployed function's environment, which a stack update changes).
    pub fn handle_configured(
        &self,
        input: &Value,
        config: &RotationConfig,
        publisher: &dyn Publisher,
    ) -> Result<Invocation, RotationError> {
        let client_id = input.get("client_id").and_then(Value::as_str);
        let event = match parse_event(input) {
            Ok(event) => event,
            Err(unreadable) => {
                let subject = unreadable.serial.unwrap_or_else(|| "rotation".into());
                let plan = match unreadable.answer_to {
                    Some(answer_to) => {
                        Plan::refuse_answering(subject, answer_to, unreadable.refusal)
                    }
                    None => Plan::refuse(subject, unreadable.refusal),
                };
                return self.apply(plan, unreadable.topic.as_deref(), client_id, publisher);
            }
        };
        let topic = event.topic().to_string();
        let result = match &event {
            RotationEvent::Registered(e) => self.registered(e, publisher, &topic, client_id),
            RotationEvent::CreateManCert(r) => {
                self.create_man_cert(r, config, publisher, client_id)
            }
            RotationEvent::AckManCert(r) => self.ack_man_cert(r, publisher, client_id),
        };
        if let Err(err) = &result {
            let subject = event_subject(&event);
            tracing::warn!(subject, topic, error = %err, "rotation function failed");
            self.backends.audit.record(
                "rotation.failed",
                subject,
                &json!({"topic": topic, "client_id": client_id, "error": err.to_string()}),
            );
            // The device is told, so it retries now rather than on its timer.
            let answer_to = match &event {
                RotationEvent::Registered(_) => None,
                RotationEvent::CreateManCert(r) => Some(response_topic(CREATE_MAN_CERT, &r.serial)),
                RotationEvent::AckManCert(r) => Some(response_topic(ACK_MAN_CERT, &r.serial)),
            };
            if let Some(answer_to) = answer_to {
                let refusal = Refusal::retryable(
                    "backend_error",
                    format!("the cloud could not finish the request ({err}); send it again"),
                );
                if let Ok(bytes) = serde_json::to_vec(&error_response(&refusal)) {
                    publisher.publish(&answer_to, bytes);
                }
            }
        }
        result
    }

    fn registered(
        &self,
        event: &super::event::RegisteredEvent,
        publisher: &dyn Publisher,
        topic: &str,
        client_id: Option<&str>,
    ) -> Result<Invocation, RotationError> {
        let b = &self.backends;
        let cert = b.registry.certificate(&event.certificate_id)?;
        let serial = cert.as_ref().and_then(|c| registered::serial_of(c).ok());
        let _guard = serial.as_deref().map(|s| self.lock(s));
        let row = match &serial {
            Some(s) => b.table.get(s)?,
            None => None,
        };
        let plan = registered::decide(registered::RegisteredFacts {
            event,
            cert: cert.as_ref(),
            row: row.as_ref(),
        });
        self.apply(plan, Some(topic), client_id, publisher)
    }

    fn create_man_cert(
        &self,
        request: &super::event::CreateManCertRequest,
        config: &RotationConfig,
        publisher: &dyn Publisher,
        client_id: Option<&str>,
    ) -> Result<Invocation, RotationError> {
        let b = &self.backends;
        let _guard = self.lock(&request.serial);
        let row = b.table.get(&request.serial)?;
        let vendor_cert = self.cert_named(row.as_ref().and_then(|r| r.vendor_cert_id()))?;
        let manufacturer_cert =
            self.cert_named(row.as_ref().and_then(|r| r.manufacturer_cert_id()))?;
        // Only a request that may be signed needs the thing's certificates.
        let thing_certs = if row.as_ref().and_then(|r| r.state()) == Some(CrState::ThingCreated) {
            let mut certs = self.thing_certs(&request.serial)?;
            // A certificate registered by an attempt that died before
            // attaching it to the thing is found through the row instead.
            let pending = row.as_ref().and_then(|r| r.pending_manufacturer_cert_id());
            if let Some(cert) = self.cert_named(pending)? {
                if !certs.iter().any(|c| c.id == cert.id) {
                    certs.push(cert);
                }
            }
            certs
        } else {
            Vec::new()
        };
        let facts = create_man_cert::CreateManCertFacts {
            request,
            row: row.as_ref(),
            vendor_cert: vendor_cert.as_ref(),
            manufacturer_cert: manufacturer_cert.as_ref(),
            thing_certs: &thing_certs,
        };
        let plan = match create_man_cert::decide(facts, config) {
            Decision::Apply(plan) => plan,
            Decision::Sign(sign) => match self.sign(&sign)? {
                Ok((pem, id)) => create_man_cert::after_signing(&sign, &pem, &id),
                Err(refusal) => create_man_cert::refuse(&sign.serial, refusal),
            },
        };
        self.apply(plan, Some(&request.topic), client_id, publisher)
    }

    fn ack_man_cert(
        &self,
        request: &super::event::AckManCertRequest,
        publisher: &dyn Publisher,
        client_id: Option<&str>,
    ) -> Result<Invocation, RotationError> {
        let b = &self.backends;
        let _guard = self.lock(&request.serial);
        let row = b.table.get(&request.serial)?;
        let vendor_cert_exists = self
            .cert_named(row.as_ref().and_then(|r| r.vendor_cert_id()))?
            .is_some();
        let plan = ack_man_cert::decide(ack_man_cert::AckManCertFacts {
            request,
            row: row.as_ref(),
            vendor_cert_exists,
        });
        self.apply(plan, Some(&request.topic), client_id, publisher)
    }

    /// Signs the CSR with the Manufacturer CA's key from the parameter store.
    /// The inner `Err` is a refusal (missing key or CA), the outer a backend failure.
    fn sign(
        &self,
        request: &SignRequest,
    ) -> Result<Result<(String, String), Refusal>, RotationError> {
        let b = &self.backends;
        let ca_id = request.manufacturer_ca_cert_id.as_str();
        let parameter = ca_key_parameter(ca_id);
        let Some(ca_key) = b.params.secure_string(&parameter)? else {
            return Ok(Err(Refusal::new(
                "ca_key_missing",
                format!("the parameter {parameter} holding the Manufacturer CA key does not exist; run `jitpilot init`"),
            )));
        };
        let Some(ca_pem) = b.registry.ca_certificate_pem(ca_id)? else {
            return Ok(Err(Refusal::new(
                "manufacturer_ca_unknown",
                format!("the Manufacturer CA {ca_id} is not registered; run `jitpilot init`"),
            )));
        };
        let signed = pki::sign_csr(&request.csr_pem, &ca_pem, &ca_key, request.validity_days)
            .and_then(|pem| pki::certificate_id_from_pem(&pem).map(|id| (pem, id)));
        Ok(signed.map_err(|e| {
            Refusal::new(
                "signing_failed",
                format!("the CSR could not be signed with the Manufacturer CA: {e}"),
            )
        }))
    }

    /// Performs the plan's effects in order and records the outcome, as one
    /// batch of backend writes ([`Registry::atomically`]: one store
    /// transaction locally); then publishes the plan's messages. A device
    /// never gets an answer whose state was not written: the publishes come
    /// after the writes landed.
    fn apply(
        &self,
        plan: Plan,
        topic: Option<&str>,
        client_id: Option<&str>,
        publisher: &dyn Publisher,
    ) -> Result<Invocation, RotationError> {
        let mut performed: Vec<Effect> = Vec::with_capacity(plan.effects.len());
        let mut publishes: Vec<(String, Vec<u8>)> = Vec::new();
        let mut failure: Option<RotationError> = None;
        let written = self.backends.registry.atomically(&mut || {
            performed.clear();
            publishes.clear();
            let result = self
                .perform_all(&plan.effects, &mut performed, &mut publishes)
                .map(|()| self.record(&plan, &performed, topic, client_id));
            match result {
                Ok(()) => Ok(()),
                Err(RotationError::Backend(e)) => Err(e),
                Err(other) => {
                    let e = BackendError(other.to_string());
                    failure = Some(other);
                    Err(e)
                }
            }
        });
        if let Err(e) = written {
            return Err(failure.take().unwrap_or(RotationError::Backend(e)));
        }
        for (topic, bytes) in publishes {
            publisher.publish(&topic, bytes);
        }
        Ok(Invocation {
            subject: plan.subject,
            topic: topic.map(str::to_string),
            outcome: plan.outcome,
        })
    }

    /// Performs `effects` in order into `performed`; messages to publish are
    /// encoded into `publishes` for after the writes.
    fn perform_all(
        &self,
        effects: &[Effect],
        performed: &mut Vec<Effect>,
        publishes: &mut Vec<(String, Vec<u8>)>,
    ) -> Result<(), RotationError> {
        // A certificate the function registers is named by the id it
        // computed (SHA-256 of the DER, as AWS IoT assigns it); the registry's
        // answer is what counts (an emulator may assign another), so the
        // effects after the registration use the assigned id.
        let mut renamed: Option<(String, String)> = None;
        for effect in effects {
            let effect = match &renamed {
                Some((from, to)) => renamed_effect(effect, from, to),
                None => effect.clone(),
            };
            if let Effect::Publish { topic, payload } = &effect {
                let bytes = serde_json::to_vec(payload)
                    .map_err(|e| RotationError::Encode(e.to_string()))?;
                publishes.push((topic.clone(), bytes));
            } else if let Some(assigned) = self.perform(&effect)? {
                if let Effect::RegisterCertificate { cert_id, .. } = &effect {
                    if *cert_id != assigned {
                        // The pending row names the computed id: name the
                        // assigned one, so a retry after a crash finds it.
                        if let Some(Effect::PutRow(row)) = performed
                            .iter()
                            .rev()
                            .find(|e| matches!(e, Effect::PutRow(_)))
                        {
                            let row = renamed_row(row, cert_id, &assigned);
                            self.backends.table.put(&row)?;
                        }
                        renamed = Some((cert_id.clone(), assigned));
                    }
                }
            }
            performed.push(effect);
        }
        Ok(())
    }

    /// Records the outcome with its reason (the audit sink, the log).
    fn record(
        &self,
        plan: &Plan,
        performed: &[Effect],
        topic: Option<&str>,
        client_id: Option<&str>,
    ) {
        let mut detail = plan.outcome.detail();
        if let Some(obj) = detail.as_object_mut() {
            obj.insert("topic".into(), json!(topic));
            obj.insert("client_id".into(), json!(client_id));
            if let Some(insecure) = &plan.insecure {
                obj.insert(
                    "insecure".into(),
                    json!({"code": insecure.code, "reason": insecure.reason}),
                );
            }
            if let Some(row) = performed.iter().rev().find_map(|e| match e {
                Effect::PutRow(row) => Some(row),
                _ => None,
            }) {
                obj.insert("state".into(), json!(row.raw_state()));
                obj.insert("vendor_cert_id".into(), json!(row.vendor_cert_id()));
                obj.insert(
                    "manufacturer_cert_id".into(),
                    json!(row.manufacturer_cert_id()),
                );
            }
            let deactivated: Vec<&str> = performed
                .iter()
                .filter_map(|e| match e {
                    Effect::SetCertificateStatus { cert_id, .. } => Some(cert_id.as_str()),
                    _ => None,
                })
                .collect();
            if !deactivated.is_empty() {
                obj.insert("deactivated".into(), json!(deactivated));
            }
        }
        if let Outcome::Refused(refusal) = &plan.outcome {
            tracing::warn!(
                subject = %plan.subject,
                code = refusal.code,
                retryable = refusal.retryable,
                topic,
                client_id,
                "rotation function refused: {}",
                refusal.reason
            );
        }
        if let Some(insecure) = &plan.insecure {
            tracing::warn!(
                subject = %plan.subject,
                code = insecure.code,
                topic,
                client_id,
                "rotation function {} INSECURE: {}",
                plan.outcome.log_kind(),
                insecure.reason
            );
        }
        self.backends
            .audit
            .record(plan.outcome.log_kind(), &plan.subject, &detail);
    }

    /// Performs one effect; a registration returns the id the registry assigned.
    fn perform(&self, effect: &Effect) -> Result<Option<String>, RotationError> {
        let r = &self.backends.registry;
        match effect {
            Effect::SetCertificateStatus { cert_id, status } => {
                r.set_certificate_status(cert_id, *status)?
            }
            Effect::RegisterCertificate {
                cert_id,
                pem,
                ca_id,
                status,
            } => return Ok(Some(r.register_certificate(cert_id, pem, ca_id, *status)?)),
            Effect::AttachPolicy { policy, cert_id } => r.attach_policy(policy, cert_id)?,
            Effect::AttachThingPrincipal { thing, cert_id } => {
                r.attach_thing_principal(thing, cert_id)?
            }
            Effect::DetachThingPrincipal { thing, cert_id } => {
                r.detach_thing_principal(thing, cert_id)?
            }
            Effect::DeleteCertificate { cert_id } => {
                r.delete_certificate(cert_id)?;
            }
            Effect::PutRow(row) => self.backends.table.put(row)?,
            // Published by `apply` once the writes landed.
            Effect::Publish { .. } => {}
        }
        Ok(None)
    }

    fn cert_named(&self, id: Option<&str>) -> Result<Option<Certificate>, RotationError> {
        match id {
            Some(id) => Ok(self.backends.registry.certificate(id)?),
            None => Ok(None),
        }
    }

    fn thing_certs(&self, thing: &str) -> Result<Vec<Certificate>, RotationError> {
        let mut certs = Vec::new();
        for id in self.backends.registry.thing_principals(thing)? {
            if let Some(cert) = self.backends.registry.certificate(&id)? {
                certs.push(cert);
            }
        }
        Ok(certs)
    }

    fn lock(&self, serial: &str) -> MutexGuard<'_, ()> {
        let mut hasher = DefaultHasher::new();
        serial.hash(&mut hasher);
        let stripe = (hasher.finish() as usize) % self.locks.len();
        // A poisoned stripe only means another invocation panicked; the
        // guarded data is `()`, so carrying on is safe.
        self.locks[stripe]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// `effect` with certificateId `from` replaced by `to` (ids, row attributes
/// and top-level payload fields).
fn renamed_effect(effect: &Effect, from: &str, to: &str) -> Effect {
    let id = |id: &String| {
        if id == from {
            to.to_string()
        } else {
            id.clone()
        }
    };
    match effect {
        Effect::SetCertificateStatus { cert_id, status } => Effect::SetCertificateStatus {
            cert_id: id(cert_id),
            status: *status,
        },
        Effect::RegisterCertificate {
            cert_id,
            pem,
            ca_id,
            status,
        } => Effect::RegisterCertificate {
            cert_id: id(cert_id),
            pem: pem.clone(),
            ca_id: ca_id.clone(),
            status: *status,
        },
        Effect::AttachPolicy { policy, cert_id } => Effect::AttachPolicy {
            policy,
            cert_id: id(cert_id),
        },
        Effect::AttachThingPrincipal { thing, cert_id } => Effect::AttachThingPrincipal {
            thing: thing.clone(),
            cert_id: id(cert_id),
        },
        Effect::DetachThingPrincipal { thing, cert_id } => Effect::DetachThingPrincipal {
            thing: thing.clone(),
            cert_id: id(cert_id),
        },
        Effect::DeleteCertificate { cert_id } => Effect::DeleteCertificate {
            cert_id: id(cert_id),
        },
        Effect::PutRow(row) => Effect::PutRow(renamed_row(row, from, to)),
        Effect::Publish { topic, payload } => Effect::Publish {
            topic: topic.clone(),
            payload: renamed_value(payload, from, to),
        },
    }
}

fn renamed_row(row: &DeviceRow, from: &str, to: &str) -> DeviceRow {
    DeviceRow::from_item(
        row.item()
            .iter()
            .map(|(k, v)| (k.clone(), renamed_value(v, from, to)))
            .collect(),
    )
}

fn renamed_value(value: &Value, from: &str, to: &str) -> Value {
    match value {
        Value::String(s) if s == from => Value::from(to),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), renamed_value(v, from, to)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn event_subject(event: &RotationEvent) -> &str {
    match event {
        RotationEvent::Registered(e) => &e.certificate_id,
        RotationEvent::CreateManCert(r) => &r.serial,
        RotationEvent::AckManCert(r) => &r.serial,
    }
}
