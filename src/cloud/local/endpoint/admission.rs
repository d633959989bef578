//! Registry enforcement after the handshake, keyed by certificateId, as AWS
//! IoT does it: an ACTIVE certificate goes on to CONNECT; an INACTIVE,
//! REVOKED or unknown one is closed without CONNACK — unless it is unknown
//! (or left PENDING_ACTIVATION by an interrupted JITP) and its CA has
//! auto-registration and a template, which is JITP.

use super::authz::ConnectionPolicy;
use super::close_reason::CloseReason;
use super::lifecycle;
use super::registered;
use super::shared::Shared;
use crate::cloud::events::{CloudEvent, EventKind};
use crate::cloud::local::jitp;
use crate::cloud::local::policy::CompiledPolicy;
use crate::model::{CaCertificate, CertificateStatus};
use rustls::pki_types::{CertificateDer, UnixTime};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What the registry says about a connection's certificate.
pub enum Admission {
    /// Registered and ACTIVE: may CONNECT if its policies allow.
    Active {
        cert_id: String,
        common_name: Option<String>,
    },
    /// New to the registry, from a CA with auto-registration + template.
    Jitp {
        cert_id: String,
        der: Vec<u8>,
        ca: Box<CaCertificate>,
    },
    /// Closed without CONNACK.
    Refused {
        cert_id: String,
        reason: CloseReason,
    },
}

impl Admission {
    /// The certificateId of the connection's certificate.
    pub fn cert_id(&self) -> &str {
        match self {
            Admission::Active { cert_id, .. }
            | Admission::Jitp { cert_id, .. }
            | Admission::Refused { cert_id, .. } => cert_id,
        }
    }
}

fn refused(cert_id: &str, why: String) -> Admission {
    Admission::Refused {
        cert_id: cert_id.to_string(),
        reason: CloseReason::AuthenticationError(why),
    }
}

/// Looks the connection's certificate up in the registry.
pub fn admit(shared: &Shared, chain: &[CertificateDer<'static>]) -> Admission {
    let Some(end_entity) = chain.first() else {
        return refused("", "no client certificate".into());
    };
    let cert_id = crate::pki::certificate_id(end_entity);
    let registered = match shared.store.get_certificate(&cert_id) {
        Ok(c) => c,
        Err(e) => return refused(&cert_id, format!("registry unavailable: {e}")),
    };
    match registered.map(|c| c.status) {
        Some(CertificateStatus::Active) => {
            return Admission::Active {
                common_name: common_name(end_entity),
                cert_id,
            }
        }
        Some(CertificateStatus::PendingActivation) | None => {}
        Some(status) => {
            return refused(&cert_id, format!("certificate {cert_id} is {status}"));
        }
    }
    // Unknown (or half-provisioned): which registered CA issued it?
    let ca_id = match shared
        .verifier
        .issuing_ca(end_entity, &chain[1..], UnixTime::now())
    {
        Ok(id) => id,
        Err(e) => return refused(&cert_id, format!("certificate {cert_id}: {e}")),
    };
    let ca = match shared.store.get_ca(&ca_id) {
        Ok(Some(ca)) => ca,
        Ok(None) => return refused(&cert_id, format!("CA {ca_id} was deleted")),
        Err(e) => return refused(&cert_id, format!("registry unavailable: {e}")),
    };
    if ca.auto_registration && ca.registration_config.is_some() {
        Admission::Jitp {
            cert_id,
            der: end_entity.to_vec(),
            ca: Box::new(ca),
        }
    } else {
        refused(
            &cert_id,
            format!("certificate {cert_id} is not registered and CA {ca_id} has no auto-registration with a JITP template"),
        )
    }
}

/// JITP on CONNECT: register, apply the template, publish the registered
/// event (so `rule_jitp` fires), and end the connection without CONNACK.
/// Returns the reason the connection closes.
pub async fn run_jitp(shared: &Arc<Shared>, admission: &Admission, client_id: &str) -> CloseReason {
    let Admission::Jitp { cert_id, der, ca } = admission else {
        return CloseReason::AuthenticationError("not a JITP connection".into());
    };
    let pem = pem_of(der);
    let store = shared.store.clone();
    let (der, cert, ca_for_task) = (der.clone(), cert_id.clone(), ca.clone());
    let client = client_id.to_string();
    let outcome = tokio::task::spawn_blocking(move || {
        let request = jitp::JitpRequest {
            cert_der: &der,
            cert_pem: &pem,
            cert_id: &cert,
            ca: &ca_for_task,
            client_id: &client,
        };
        jitp::provision(&store, &request)
    })
    .await;
    let outcome = match outcome {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(e) => Err(format!("JITP task failed: {e}")),
    };
    match outcome {
        Ok(done) => {
            shared
                .counters
                .jitp_provisioned
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(client_id, cert_id = %done.certificate_id, thing = ?done.thing, status = %done.status, "JITP provisioned");
            record_jitp_steps(shared, client_id, &done);
            // AWS's event reports the registration itself: PENDING_ACTIVATION.
            let event = jitp::PendingRegisteredEvent {
                certificate_id: done.certificate_id.clone(),
                ca_certificate_id: done.ca_certificate_id.clone(),
                registered_at: done.registered_at,
                serial: done.serial.clone().or_else(|| Some(client_id.to_string())),
            };
            let (topic, body) = lifecycle::certificate_registered(
                &event.certificate_id,
                &event.ca_certificate_id,
                CertificateStatus::PendingActivation.as_str(),
                event.registered_at,
            );
            shared.bus.emit_with(|| {
                CloudEvent::new(EventKind::Jitp, format!("publish {topic}"))
                    .client(client_id)
                    .topic(topic.clone())
                    .detail(body.clone())
            });
            // Tracked: its outbox entry goes once rule_jitp's function returned.
            registered::publish_registered(
                shared,
                &event,
                CertificateStatus::PendingActivation,
                None,
            );
            CloseReason::AuthenticationError(format!(
                "JITP registered certificate {} on first connect; connect again",
                done.certificate_id
            ))
        }
        Err(why) => {
            tracing::warn!(client_id, cert_id, error = %why, "JITP failed");
            let detail = json!({"clientId": client_id, "caCertificateId": ca.id, "error": why});
            if let Err(e) = shared.store.append_event("jitp.failed", cert_id, &detail) {
                tracing::warn!(error = %e, "event log write failed");
            }
            shared.bus.emit_with(|| {
                CloudEvent::new(EventKind::Jitp, format!("JITP failed: {why}"))
                    .client(client_id)
                    .detail(detail.clone())
            });
            CloseReason::AuthenticationError(format!("JITP failed: {why}"))
        }
    }
}

/// Every JITP step on the event stream (JITP and registry changes), under
/// the device's clientId (= serial in the walkthrough); the event log got
/// them with JITP's own transaction.
fn record_jitp_steps(shared: &Shared, client_id: &str, done: &jitp::Provisioned) {
    let detail = serde_json::to_value(done).unwrap_or_default();
    for step in &done.steps {
        shared.bus.emit_with(|| {
            CloudEvent::new(step.event_kind.clone(), step.summary.clone())
                .client(client_id)
                .detail(detail.clone())
        });
    }
}

/// The connection's policies, compiled, with its policy variables.
pub fn connection_policy(
    shared: &Shared,
    cert_id: &str,
    client_id: &str,
    common_name: Option<String>,
) -> Result<ConnectionPolicy, CloseReason> {
    let unavailable =
        |e: crate::store::StoreError| CloseReason::ServerInitiated.with_log(&e.to_string());
    let policies = shared
        .store
        .list_attached_policies(cert_id)
        .map_err(unavailable)?;
    let mut compiled = Vec::with_capacity(policies.len());
    for policy in policies {
        match CompiledPolicy::parse(&policy.name, &policy.document) {
            Ok(p) => compiled.push(p),
            // An unparsable policy grants nothing (AWS would not have stored it).
            Err(e) => tracing::warn!(policy = %policy.name, error = %e, "policy ignored"),
        }
    }
    let things = shared
        .store
        .list_principal_things(cert_id)
        .map_err(unavailable)?;
    let thing_name = things.into_iter().find(|t| t == client_id);
    Ok(ConnectionPolicy::new(
        compiled,
        client_id,
        thing_name,
        common_name,
    ))
}

impl CloseReason {
    fn with_log(self, why: &str) -> CloseReason {
        tracing::error!(error = why, "registry unavailable; closing the connection");
        self
    }
}

fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    Some(cn)
}

fn pem_of(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}
