//! JITP's decision, pure: from the device certificate, its CA's provisioning
//! template and what the registry already knows of the certificate, the
//! list of writes that provision it — or the reason it cannot be.
//!
//! Nothing here touches the store, the clock or the network: [`plan`] is a
//! function of its arguments (certificate parsing is in memory), tested
//! without IO below. The executor (`super::provision`) reads the facts and
//! applies the plan in one store transaction.

use super::outbox::PendingRegisteredEvent;
use super::template::resolve;
use super::{JitpStep, Provisioned};
use crate::cloud::events::EventKind;
use crate::model::{CaCertificate, Certificate, CertificateStatus, EpochMillis};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// Why a certificate cannot be provisioned: the template or the certificate
/// is at fault, not the store. Messages say what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the device certificate cannot be parsed: {0}")]
    Certificate(String),
    #[error("CA {ca}: its provisioning template is invalid: {reason}. Fix the template and run `jitpilot init` again")]
    Template { ca: String, reason: String },
    #[error("CA {0} has no provisioning template; enable auto-registration with a template (`jitpilot init`)")]
    NoTemplate(String),
}

/// The device's first connect: what JITP is asked to provision.
#[derive(Debug, Clone, Copy)]
pub struct JitpRequest<'a> {
    /// The device certificate, DER (the TLS client certificate).
    pub cert_der: &'a [u8],
    /// The same certificate, PEM, as the registry keeps it.
    pub cert_pem: &'a str,
    /// Its certificateId (hex SHA-256 of the DER).
    pub cert_id: &'a str,
    /// The registered CA that issued it, with its template.
    pub ca: &'a CaCertificate,
    /// The connection's clientId (the serial in the walkthrough): the
    /// subject of JITP's event-log entries, as on the device's timeline.
    pub client_id: &'a str,
}

/// What the registry knows before JITP runs.
#[derive(Debug, Clone, Copy)]
pub struct JitpFacts<'a> {
    /// The certificate as registered by an earlier attempt that was cut
    /// short (left `PENDING_ACTIVATION`), or `None`.
    pub registered: Option<&'a Certificate>,
    /// Now, for a new registration's timestamp.
    pub now: EpochMillis,
}

/// One write of JITP, in the order the plan lists them.
#[derive(Debug, Clone, PartialEq)]
pub enum JitpEffect {
    /// `RegisterCertificate` (`PENDING_ACTIVATION`).
    RegisterCertificate(Certificate),
    /// `CreateThing` (idempotent: an existing thing is kept as it is).
    CreateThing {
        name: String,
        attributes: Map<String, Value>,
    },
    /// `AttachThingPrincipal` (idempotent).
    AttachThingPrincipal { thing: String, cert_id: String },
    /// A template's inline policy, created unless it exists (AWS names it
    /// after its content, so an existing one is the same document).
    CreatePolicyIfAbsent { name: String, document: String },
    /// `AttachPolicy` (idempotent).
    AttachPolicy { policy: String, cert_id: String },
    /// The registered event into the outbox, before the status (see the
    /// module docs of `jitp`).
    RecordRegisteredEvent(PendingRegisteredEvent),
    /// `UpdateCertificate --new-status`: the template's status, last, so an
    /// ACTIVE certificate always has its thing and policy.
    SetCertificateStatus {
        cert_id: String,
        status: CertificateStatus,
    },
    /// One step in the event log (`jitp.registered`, `jitp.thing`, ...).
    Log {
        kind: &'static str,
        subject: String,
        detail: Value,
    },
}

/// What JITP will do: the writes, and what they provision.
#[derive(Debug, Clone, PartialEq)]
pub struct JitpPlan {
    pub effects: Vec<JitpEffect>,
    pub provisioned: Provisioned,
}

/// The template parameters AWS derives from a certificate: the subject's
/// attributes under AWS's names, and the certificateId.
pub fn certificate_parameters(
    cert_der: &[u8],
    cert_id: &str,
) -> Result<HashMap<String, String>, Refusal> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| Refusal::Certificate(e.to_string()))?;
    let mut params = HashMap::new();
    for attr in cert.subject().iter_attributes() {
        let name = match attr.attr_type().to_id_string().as_str() {
            "2.5.4.3" => "CommonName",
            "2.5.4.6" => "Country",
            "2.5.4.10" => "Organization",
            "2.5.4.11" => "OrganizationalUnit",
            "2.5.4.8" => "StateName",
            "2.5.4.7" => "Locality",
            "2.5.4.5" => "SerialNumber",
            "2.5.4.12" => "Title",
            "2.5.4.46" => "DistinguishedNameQualifier",
            _ => continue,
        };
        if let Ok(value) = attr.as_str() {
            params
                .entry(format!("AWS::IoT::Certificate::{name}"))
                .or_insert_with(|| value.to_string());
        }
    }
    params.insert("AWS::IoT::Certificate::Id".into(), cert_id.to_string());
    Ok(params)
}

/// Decides JITP for `request`: step 1, the registration (unless `facts`
/// say an earlier attempt made it), step 2, the template's resources
/// (things, then policies, then the certificate's status), and the event
/// log's record of each step. A template or certificate that cannot be
/// applied is refused before anything is written.
pub fn plan(request: &JitpRequest<'_>, facts: &JitpFacts<'_>) -> Result<JitpPlan, Refusal> {
    let ca = request.ca;
    let cert_id = request.cert_id;
    let bad = |reason: String| Refusal::Template {
        ca: ca.id.clone(),
        reason,
    };
    let config = ca
        .registration_config
        .as_ref()
        .ok_or_else(|| Refusal::NoTemplate(ca.id.clone()))?;
    let template: Value =
        serde_json::from_str(&config.template_body).map_err(|e| bad(format!("not JSON: {e}")))?;
    let mut params = certificate_parameters(request.cert_der, cert_id)?;
    // A parameter the certificate lacks takes the template's Default, as on AWS.
    if let Some(declared) = template.get("Parameters").and_then(Value::as_object) {
        for (name, decl) in declared {
            if let Some(default) = decl.get("Default").and_then(Value::as_str) {
                params
                    .entry(name.clone())
                    .or_insert_with(|| default.to_string());
            }
        }
    }

    let mut effects = Vec::new();
    // Step 1: registration. A retry finds it registered and goes on.
    let (registered_at, newly_registered) = match facts.registered {
        Some(existing) => (existing.created_at, false),
        None => {
            effects.push(JitpEffect::RegisterCertificate(Certificate {
                id: cert_id.to_string(),
                ca_id: Some(ca.id.clone()),
                pem: request.cert_pem.to_string(),
                status: CertificateStatus::PendingActivation,
                created_at: facts.now,
            }));
            (facts.now, true)
        }
    };

    // Step 2: the template. Things first, then policies, the status last.
    let resources = template
        .get("Resources")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("no `Resources` object".into()))?;
    let mut thing = None;
    let mut policies = Vec::new();
    let mut status = CertificateStatus::PendingActivation;
    let mut ordered: Vec<(&String, &Value)> = resources.iter().collect();
    ordered.sort_by_key(|(_, r)| match r.get("Type").and_then(Value::as_str) {
        Some("AWS::IoT::Thing") => 0,
        Some("AWS::IoT::Policy") => 1,
        _ => 2,
    });
    for (logical_id, resource) in ordered {
        let kind = resource.get("Type").and_then(Value::as_str).unwrap_or("");
        let props = resource
            .get("Properties")
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        let props = resolve(&props, &params).map_err(|e| bad(format!("{logical_id}: {e}")))?;
        match kind {
            "AWS::IoT::Thing" => {
                let name = props
                    .get("ThingName")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(format!("{logical_id}: ThingName missing or not a string")))?
                    .to_string();
                let attributes = props
                    .get("AttributePayload")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                effects.push(JitpEffect::CreateThing {
                    name: name.clone(),
                    attributes,
                });
                effects.push(JitpEffect::AttachThingPrincipal {
                    thing: name.clone(),
                    cert_id: cert_id.to_string(),
                });
                thing = Some(name);
            }
            "AWS::IoT::Policy" => {
                let name = match (props.get("PolicyName"), props.get("PolicyDocument")) {
                    (Some(Value::String(name)), _) => name.clone(),
                    (None, Some(document)) => {
                        let document = match document {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        // AWS names an inline template policy after its content.
                        let name = format!(
                            "jitp-{}",
                            &crate::pki::certificate_id(document.as_bytes())[..16]
                        );
                        effects.push(JitpEffect::CreatePolicyIfAbsent {
                            name: name.clone(),
                            document,
                        });
                        name
                    }
                    _ => {
                        return Err(bad(format!(
                            "{logical_id}: needs PolicyName or PolicyDocument"
                        )))
                    }
                };
                effects.push(JitpEffect::AttachPolicy {
                    policy: name.clone(),
                    cert_id: cert_id.to_string(),
                });
                policies.push(name);
            }
            "AWS::IoT::Certificate" => {
                if let Some(s) = props.get("Status").and_then(Value::as_str) {
                    status = CertificateStatus::parse(s)
                        .ok_or_else(|| bad(format!("{logical_id}: unknown Status {s}")))?;
                }
            }
            other => {
                return Err(bad(format!(
                    "{logical_id}: resource type {other} is not supported by JITP"
                )))
            }
        }
    }

    let serial = params.get("AWS::IoT::Certificate::CommonName").cloned();
    // The outbox entry before the status: see the module docs.
    effects.push(JitpEffect::RecordRegisteredEvent(PendingRegisteredEvent {
        certificate_id: cert_id.to_string(),
        ca_certificate_id: ca.id.clone(),
        registered_at,
        serial: serial.clone(),
    }));
    effects.push(JitpEffect::SetCertificateStatus {
        cert_id: cert_id.to_string(),
        status,
    });
    let mut provisioned = Provisioned {
        certificate_id: cert_id.to_string(),
        ca_certificate_id: ca.id.clone(),
        status,
        thing,
        policies,
        registered_at,
        newly_registered,
        serial,
        steps: Vec::new(),
    };
    let steps = steps(&provisioned);
    let detail = serde_json::to_value(&provisioned).unwrap_or_default();
    for step in &steps {
        effects.push(JitpEffect::Log {
            kind: step.log_kind,
            subject: request.client_id.to_string(),
            detail: json!({"step": step.summary, "clientId": request.client_id, "jitp": detail}),
        });
    }
    provisioned.steps = steps;
    Ok(JitpPlan {
        effects,
        provisioned,
    })
}

/// Every JITP step, as the event log and the event stream tell it.
fn steps(done: &Provisioned) -> Vec<JitpStep> {
    let id = short(&done.certificate_id);
    let step = |log_kind, event_kind, summary| JitpStep {
        log_kind,
        event_kind,
        summary,
    };
    let mut steps = Vec::new();
    if done.newly_registered {
        steps.push(step(
            "jitp.registered",
            EventKind::Jitp,
            format!(
                "certificate {id} registered PENDING_ACTIVATION (CA {})",
                short(&done.ca_certificate_id)
            ),
        ));
    }
    if let Some(thing) = &done.thing {
        steps.push(step(
            "jitp.thing",
            EventKind::Registry,
            format!("thing {thing} created, certificate {id} attached"),
        ));
    }
    for policy in &done.policies {
        steps.push(step(
            "jitp.policy",
            EventKind::Registry,
            format!("policy {policy} attached to certificate {id}"),
        ));
    }
    steps.push(step(
        "jitp.template_applied",
        EventKind::Registry,
        format!("certificate {id} is {} (template applied)", done.status),
    ));
    steps
}

/// The first 12 characters of an id, for one-line summaries.
fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
