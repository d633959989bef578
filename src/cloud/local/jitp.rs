//! Just-In-Time Provisioning: what AWS IoT does when a device presents a
//! certificate it has never seen, signed by a registered CA with
//! auto-registration enabled and a provisioning template attached.
//!
//! 1. The certificate is registered, `PENDING_ACTIVATION`.
//! 2. The CA's template is applied, its parameters taken from the
//!    certificate subject (`AWS::IoT::Certificate::CommonName`, `Country`,
//!    `Organization`, ... and `AWS::IoT::Certificate::Id`): the Thing is
//!    created and the certificate attached to it, the certificate's status
//!    set (ACTIVE in the walkthrough), the policy attached.
//! 3. The endpoint then publishes `$aws/events/certificates/registered/<caId>`
//!    and closes the connection without CONNACK; the device's retry connects.
//!
//! This file is steps 1 and 2, synchronous over the store, and idempotent:
//! a device whose first attempt was cut short (certificate left
//! `PENDING_ACTIVATION`) is provisioned again on its next connect.
//!
//! ## The registered event is delivered at least once (the outbox)
//!
//! Once the template has made the certificate ACTIVE, JITP never runs for it
//! again: if the process died between that step and `rule_jitp`'s function
//! finishing, the device would connect fine but its table row would stay
//! `CR_WHITELISTED` and every CSR would be refused. So, before the status
//! step, [`provision`] records the event in an outbox (a small internal table,
//! [`REGISTERED_OUTBOX_TABLE`]); the endpoint removes the entry once the
//! rules engine's function invocations for the event have finished, and the
//! runtime redelivers what is left when the cloud starts. The whole of
//! [`provision`] is one store transaction ([`Store::batch`]): the
//! certificate, thing, policy, outbox entry and status land together with
//! one commit, or not at all (the certificate unknown: JITP runs again on
//! the next connect). Within it the writes keep their order (outbox entry
//! before the status), so the reasoning does not depend on the batch: a
//! crash before the status leaves the certificate `PENDING_ACTIVATION`, a
//! crash after it leaves the outbox entry. The rotation function is
//! idempotent, so a redelivery is harmless.

use crate::model::{now_millis, CaCertificate, CertificateStatus, EpochMillis};
use crate::store::{Store, StoreError};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// What can stop JITP. Messages say what to fix.
#[derive(Debug, thiserror::Error)]
pub enum JitpError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the device certificate cannot be parsed: {0}")]
    Certificate(String),
    #[error("CA {ca}: its provisioning template is invalid: {reason}. Fix the template and run `jitpilot init` again")]
    Template { ca: String, reason: String },
    #[error("CA {0} has no provisioning template; enable auto-registration with a template (`jitpilot init`)")]
    NoTemplate(String),
}

/// What provisioning did, for the registered event, logs and the TUI.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Provisioned {
    pub certificate_id: String,
    pub ca_certificate_id: String,
    /// The status the template left the certificate in.
    pub status: CertificateStatus,
    pub thing: Option<String>,
    pub policies: Vec<String>,
    /// When the certificate was registered (`certificateRegistrationTimestamp`).
    pub registered_at: EpochMillis,
    /// False when the certificate was already registered (a retried JITP).
    pub newly_registered: bool,
    /// The certificate's CommonName: the serial (= thing name) in the walkthrough.
    pub serial: Option<String>,
}

/// Internal table of registered events not yet handled by the rules
/// (hash key `certificateId`). Not part of the walkthrough's wire contract;
/// it is empty except between a JITP and its `rule_jitp` invocation.
pub const REGISTERED_OUTBOX_TABLE: &str = "jitpilot-registered-event-outbox";
const OUTBOX_KEY: &str = "certificateId";

/// A `$aws/events/certificates/registered/<caId>` event waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingRegisteredEvent {
    /// The registered certificate (the outbox's key).
    pub certificate_id: String,
    /// The CA that issued it.
    pub ca_certificate_id: String,
    /// `certificateRegistrationTimestamp`.
    pub registered_at: EpochMillis,
    /// The certificate's CommonName (the serial), for the device's timeline.
    #[serde(default)]
    pub serial: Option<String>,
}

/// Records `event` in the outbox (idempotent: one entry per certificate).
pub fn record_pending(store: &Store, event: &PendingRegisteredEvent) -> Result<(), JitpError> {
    let item = match serde_json::to_value(event) {
        Ok(Value::Object(item)) => item,
        _ => {
            return Err(JitpError::Certificate(
                "the registered event could not be encoded".into(),
            ))
        }
    };
    match store.put_item(REGISTERED_OUTBOX_TABLE, &item) {
        // First use in this data dir: create the table, then write.
        Err(StoreError::NotFound { .. }) => {
            store.create_table(REGISTERED_OUTBOX_TABLE, OUTBOX_KEY)?;
            store.put_item(REGISTERED_OUTBOX_TABLE, &item)?;
        }
        other => other?,
    }
    Ok(())
}

/// Removes the certificate's entry from the outbox once its event was
/// handled. False when there was none.
pub fn mark_delivered(store: &Store, certificate_id: &str) -> Result<bool, JitpError> {
    Ok(store.delete_item(REGISTERED_OUTBOX_TABLE, certificate_id)?)
}

/// The registered events still waiting for their rules, oldest first.
/// An entry that cannot be read is skipped with a warning (and left there).
pub fn pending_registered_events(store: &Store) -> Result<Vec<PendingRegisteredEvent>, JitpError> {
    if store.describe_table(REGISTERED_OUTBOX_TABLE)?.is_none() {
        return Ok(Vec::new());
    }
    let mut pending = Vec::new();
    for item in store.scan(REGISTERED_OUTBOX_TABLE)? {
        match serde_json::from_value::<PendingRegisteredEvent>(Value::Object(item)) {
            Ok(event) => pending.push(event),
            Err(e) => {
                tracing::warn!(error = %e, "unreadable registered-event outbox entry skipped")
            }
        }
    }
    pending.sort_by_key(|e| e.registered_at);
    Ok(pending)
}

/// The template parameters AWS derives from a certificate: the subject's
/// attributes under AWS's names, and the certificateId.
pub fn certificate_parameters(
    cert_der: &[u8],
    cert_id: &str,
) -> Result<HashMap<String, String>, JitpError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| JitpError::Certificate(e.to_string()))?;
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

/// Registers the certificate (PENDING_ACTIVATION) and applies `ca`'s
/// template, in one store transaction.
pub fn provision(
    store: &Store,
    cert_der: &[u8],
    cert_pem: &str,
    cert_id: &str,
    ca: &CaCertificate,
) -> Result<Provisioned, JitpError> {
    store.batch(|| apply_template(store, cert_der, cert_pem, cert_id, ca))
}

fn apply_template(
    store: &Store,
    cert_der: &[u8],
    cert_pem: &str,
    cert_id: &str,
    ca: &CaCertificate,
) -> Result<Provisioned, JitpError> {
    let config = ca
        .registration_config
        .as_ref()
        .ok_or_else(|| JitpError::NoTemplate(ca.id.clone()))?;
    let template: Value =
        serde_json::from_str(&config.template_body).map_err(|e| JitpError::Template {
            ca: ca.id.clone(),
            reason: format!("not JSON: {e}"),
        })?;
    let mut params = certificate_parameters(cert_der, cert_id)?;
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

    // Step 1: registration. A retry finds it registered and goes on.
    let (registered_at, newly_registered) = match store.get_certificate(cert_id)? {
        Some(existing) => (existing.created_at, false),
        None => {
            let cert = crate::model::Certificate {
                id: cert_id.to_string(),
                ca_id: Some(ca.id.clone()),
                pem: cert_pem.to_string(),
                status: CertificateStatus::PendingActivation,
                created_at: now_millis(),
            };
            match store.register_certificate(&cert) {
                Ok(()) => (cert.created_at, true),
                // Two connections raced; the other registered it.
                Err(StoreError::AlreadyExists { .. }) => (cert.created_at, false),
                Err(e) => return Err(e.into()),
            }
        }
    };

    // Step 2: the template. Things and policies first, the status last, so
    // an ACTIVE certificate always has its thing and policy.
    let bad = |reason: String| JitpError::Template {
        ca: ca.id.clone(),
        reason,
    };
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
                store.create_thing(&name, &attributes)?;
                store.attach_thing_principal(&name, cert_id)?;
                thing = Some(name);
            }
            "AWS::IoT::Policy" => {
                let name = match (props.get("PolicyName"), props.get("PolicyDocument")) {
                    (Some(Value::String(name)), _) => name.clone(),
                    (None, Some(document)) => {
                        let text = match document {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        // AWS names an inline template policy after its content.
                        let name = format!(
                            "jitp-{}",
                            &crate::pki::certificate_id(text.as_bytes())[..16]
                        );
                        if store.get_policy(&name)?.is_none() {
                            match store.create_policy(&name, &text) {
                                Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
                                Err(e) => return Err(e.into()),
                            }
                        }
                        name
                    }
                    _ => {
                        return Err(bad(format!(
                            "{logical_id}: needs PolicyName or PolicyDocument"
                        )))
                    }
                };
                store.attach_policy(&name, cert_id)?;
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
    // The outbox entry before the status: see the module docs.
    let serial = params.get("AWS::IoT::Certificate::CommonName").cloned();
    record_pending(
        store,
        &PendingRegisteredEvent {
            certificate_id: cert_id.to_string(),
            ca_certificate_id: ca.id.clone(),
            registered_at,
            serial: serial.clone(),
        },
    )?;
    store.set_certificate_status(cert_id, status)?;
    Ok(Provisioned {
        certificate_id: cert_id.to_string(),
        ca_certificate_id: ca.id.clone(),
        status,
        thing,
        policies,
        registered_at,
        newly_registered,
        serial,
    })
}

/// Resolves `{"Ref": P}`, `{"Fn::Join": [sep, [..]]}` and `{"Fn::Sub": "..${P}.."}`
/// against the parameters, everywhere in `value`.
fn resolve(value: &Value, params: &HashMap<String, String>) -> Result<Value, String> {
    Ok(match value {
        Value::Object(map) if map.len() == 1 && map.contains_key("Ref") => {
            let name = map["Ref"].as_str().ok_or("Ref needs a parameter name")?;
            Value::String(
                params
                    .get(name)
                    .cloned()
                    .ok_or_else(|| format!("parameter {name} is not in the certificate"))?,
            )
        }
        Value::Object(map) if map.len() == 1 && map.contains_key("Fn::Join") => {
            let parts = map["Fn::Join"]
                .as_array()
                .ok_or("Fn::Join needs [separator, [values]]")?;
            let (Some(Value::String(sep)), Some(Value::Array(items))) =
                (parts.first(), parts.get(1))
            else {
                return Err("Fn::Join needs [separator, [values]]".into());
            };
            let mut out = Vec::new();
            for item in items {
                match resolve(item, params)? {
                    Value::String(s) => out.push(s),
                    other => out.push(other.to_string()),
                }
            }
            Value::String(out.join(sep))
        }
        Value::Object(map) if map.len() == 1 && map.contains_key("Fn::Sub") => {
            let text = map["Fn::Sub"].as_str().ok_or("Fn::Sub needs a string")?;
            let mut out = String::new();
            let mut rest = text;
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let end = after.find('}').ok_or("Fn::Sub: unclosed ${")?;
                let name = &after[..end];
                match params.get(name) {
                    Some(v) => out.push_str(v),
                    // Not a template parameter (e.g. a policy variable): keep it.
                    None => out.push_str(&rest[start..start + 2 + end + 1]),
                }
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            Value::String(out)
        }
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(k.clone(), resolve(v, params)?);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| resolve(v, params))
                .collect::<Result<_, _>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_joins_and_subs_resolve_from_certificate_parameters() {
        let params: HashMap<String, String> = [
            (
                "AWS::IoT::Certificate::CommonName".to_string(),
                "SER1".to_string(),
            ),
            ("AWS::IoT::Certificate::Id".to_string(), "abc".to_string()),
        ]
        .into();
        let v = serde_json::json!({
            "ThingName": {"Ref": "AWS::IoT::Certificate::CommonName"},
            "Joined": {"Fn::Join": ["-", ["x", {"Ref": "AWS::IoT::Certificate::Id"}]]},
            "Sub": {"Fn::Sub": "t/${AWS::IoT::Certificate::CommonName}/${iot:ClientId}"}
        });
        let r = resolve(&v, &params).expect("resolves");
        assert_eq!(r["ThingName"], "SER1");
        assert_eq!(r["Joined"], "x-abc");
        assert_eq!(r["Sub"], "t/SER1/${iot:ClientId}");
        let missing = serde_json::json!({"Ref": "AWS::IoT::Certificate::Country"});
        assert!(resolve(&missing, &params).unwrap_err().contains("Country"));
    }
}
