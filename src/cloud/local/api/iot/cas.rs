//! The registration code and CA certificates: `certs_etc.py --create`'s
//! `register-ca-certificate` with its verification certificate, and the
//! `update-ca-certificate --new-auto-registration-status ENABLE
//! --registration-config` that turns JITP on for a CA.

use super::{
    ca_cert_arn, certificate_state, certificate_validation, done, epoch_seconds, missing,
    not_found, ok, page, store_error, template, uuid_like, with_next, Call,
};
use crate::cloud::events::EventKind;
use crate::cloud::local::api::{ApiError, ApiResult};
use crate::cloud::local::control::short_id;
use crate::model::{now_millis, CaCertificate, CertificateStatus, RegistrationConfig};
use crate::pki::{self, CertInfo};
use crate::vocabulary::{MANUFACTURER_CA_LABEL, VENDOR_CA_LABEL};
use serde::Deserialize;
use serde_json::{json, Value};

/// `registrationConfig` as the API spells it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RegistrationConfigBody {
    template_body: Option<String>,
    role_arn: Option<String>,
    template_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegisterBody {
    ca_certificate: Option<String>,
    verification_certificate: Option<String>,
    registration_config: Option<RegistrationConfigBody>,
    certificate_mode: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateBody {
    registration_config: Option<RegistrationConfigBody>,
    remove_auto_registration: Option<bool>,
}

/// `GetRegistrationCode`: the account's code, stable once made.
pub(super) fn get_registration_code(call: &Call<'_>) -> ApiResult {
    let code = call.store().registration_code().map_err(store_error)?;
    ok(json!({ "registrationCode": code }))
}

/// The proof `RegisterCACertificate` asks for, checked as AWS checks it:
/// the CA is a CA certificate, and the verification certificate's CN is the
/// registration code and it is signed by the CA's key. Returns the CA's facts.
pub(super) fn check_ca_proof(
    ca_pem: &str,
    verification_pem: &str,
    registration_code: &str,
    now_secs: i64,
) -> Result<CertInfo, ApiError> {
    let ca = pki::parse_cert(ca_pem)
        .map_err(|e| certificate_validation(format!("caCertificate: {e}")))?;
    if !ca.is_ca {
        return Err(certificate_validation(
            "caCertificate is not a CA certificate (basicConstraints CA:TRUE is missing); create it as a CA (openssl req -x509 makes one)",
        ));
    }
    if ca.not_after < now_secs {
        return Err(certificate_validation("caCertificate has expired"));
    }
    let proof = pki::parse_cert(verification_pem)
        .map_err(|e| certificate_validation(format!("verificationCertificate: {e}")))?;
    if proof.subject.common_name.as_deref() != Some(registration_code) {
        return Err(certificate_validation(format!(
            "the verification certificate's CN is {:?}; it must be this account's registration code (aws iot get-registration-code)",
            proof.subject.common_name.unwrap_or_default()
        )));
    }
    if proof.not_after < now_secs || proof.not_before > now_secs {
        return Err(certificate_validation(
            "the verification certificate is not valid now (check its notBefore/notAfter)",
        ));
    }
    match pki::verify_signed_by(verification_pem, ca_pem) {
        Ok(true) => Ok(ca),
        Ok(false) => Err(certificate_validation(
            "the verification certificate is not signed by the CA's key; sign it with the CA you register",
        )),
        Err(e) => Err(certificate_validation(format!(
            "the verification certificate's signature cannot be checked: {e}"
        ))),
    }
}

/// A `registrationConfig` the endpoint's JITP can apply.
pub(super) fn registration_config(
    body: RegistrationConfigBody,
) -> Result<RegistrationConfig, ApiError> {
    if body.template_name.is_some() {
        return Err(ApiError::invalid_request(
            "registrationConfig.templateName (a fleet provisioning template) is not supported by the local cloud; pass the JITP template as templateBody",
        ));
    }
    let template_body = body
        .template_body
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| missing("registrationConfig.templateBody"))?;
    let role_arn = body
        .role_arn
        .filter(|r| !r.is_empty())
        .ok_or_else(|| missing("registrationConfig.roleArn"))?;
    template::check(&template_body).map_err(|why| {
        ApiError::invalid_request(format!("registrationConfig.templateBody: {why}"))
    })?;
    Ok(RegistrationConfig {
        template_body,
        role_arn,
    })
}

/// The registry's label of a CA registered through the API: its CN, never
/// one of the labels jitpilot's own `init` looks its CAs up by.
fn label_for(info: &CertInfo) -> String {
    let cn = info
        .subject
        .common_name
        .clone()
        .unwrap_or_else(|| "CA".to_string());
    if [
        VENDOR_CA_LABEL,
        MANUFACTURER_CA_LABEL,
        super::AMAZON_CA_LABEL,
    ]
    .contains(&cn.as_str())
    {
        format!("{cn} (API)")
    } else {
        cn
    }
}

/// The CA, unless absent or the local cloud's own "Amazon" CA (which AWS
/// does not show either).
fn visible_ca(call: &Call<'_>, id: &str) -> Result<CaCertificate, ApiError> {
    call.store()
        .get_ca(id)
        .map_err(store_error)?
        .filter(|ca| ca.label != super::AMAZON_CA_LABEL)
        .ok_or_else(|| not_found(format!("CA certificate {id} is not registered")))
}

fn yes_no(enabled: bool) -> &'static str {
    if enabled {
        "ENABLE"
    } else {
        "DISABLE"
    }
}

/// `RegisterCACertificate`.
pub(super) fn register(call: &Call<'_>) -> ApiResult {
    let body: RegisterBody = call.request.json()?;
    let ca_pem = body
        .ca_certificate
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| missing("caCertificate"))?;
    match body.certificate_mode.as_deref() {
        None | Some("DEFAULT") => {}
        Some(mode) => {
            return Err(ApiError::invalid_request(format!(
                "certificateMode {mode} is not supported by the local cloud; register in DEFAULT mode with a verification certificate"
            )))
        }
    }
    let verification = body
        .verification_certificate
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| missing("verificationCertificate"))?;
    let active = call.query_bool("setAsActive")?.unwrap_or(false);
    let auto_registration = call.query_bool("allowAutoRegistration")?.unwrap_or(false);
    let config = body
        .registration_config
        .map(registration_config)
        .transpose()?;

    let store = call.store();
    let code = store.registration_code().map_err(store_error)?;
    let info = check_ca_proof(&ca_pem, &verification, &code, now_millis() / 1000)?;
    let record = CaCertificate {
        id: info.id.clone(),
        pem: ca_pem,
        status: if active {
            CertificateStatus::Active
        } else {
            CertificateStatus::Inactive
        },
        auto_registration,
        registration_config: config,
        label: label_for(&info),
        created_at: now_millis(),
    };
    store.register_ca(&record).map_err(|e| match e {
        crate::store::StoreError::AlreadyExists { .. } => ApiError::already_exists(format!(
            "the CA certificate {} is already registered",
            record.id
        )),
        other => store_error(other),
    })?;
    record_change(
        call,
        "registry.ca_registered",
        &record.id,
        format!(
            "CA {} ({}) registered {} through the API{}",
            short_id(&record.id),
            record.label,
            record.status,
            if record.registration_config.is_some() {
                ", with a JITP template"
            } else {
                ""
            }
        ),
        json!({
            "caCertificateId": record.id,
            "label": record.label,
            "status": record.status,
            "autoRegistrationStatus": yes_no(record.auto_registration),
        }),
    );
    ok(json!({
        "certificateArn": ca_cert_arn(&record.id),
        "certificateId": record.id,
    }))
}

/// `UpdateCACertificate`: status, auto-registration, registration config.
pub(super) fn update(call: &Call<'_>) -> ApiResult {
    let id = call.label("caCertificateId")?;
    let body: UpdateBody = call.request.json()?;
    let status = match call.query("newStatus") {
        None => None,
        Some("ACTIVE") => Some(CertificateStatus::Active),
        Some("INACTIVE") => Some(CertificateStatus::Inactive),
        Some(other) => {
            return Err(ApiError::invalid_request(format!(
                "newStatus must be ACTIVE or INACTIVE, not {other:?}"
            )))
        }
    };
    let auto = match call.query("newAutoRegistrationStatus") {
        None => None,
        Some("ENABLE") => Some(true),
        Some("DISABLE") => Some(false),
        Some(other) => {
            return Err(ApiError::invalid_request(format!(
                "newAutoRegistrationStatus must be ENABLE or DISABLE, not {other:?}"
            )))
        }
    };
    let remove = body.remove_auto_registration.unwrap_or(false);
    if remove && body.registration_config.is_some() {
        return Err(ApiError::invalid_request(
            "pass either registrationConfig or removeAutoRegistration, not both",
        ));
    }
    let config = body
        .registration_config
        .map(registration_config)
        .transpose()?;
    let ca = visible_ca(call, id)?;

    // Everything is checked: now the writes.
    let store = call.store();
    let new_config = if remove {
        None
    } else {
        config.or_else(|| ca.registration_config.clone())
    };
    let new_auto = auto.unwrap_or(ca.auto_registration);
    if new_auto != ca.auto_registration || new_config != ca.registration_config {
        store
            .set_ca_auto_registration(&ca.id, new_auto, new_config.as_ref())
            .map_err(store_error)?;
    }
    if let Some(status) = status.filter(|s| *s != ca.status) {
        store.set_ca_status(&ca.id, status).map_err(store_error)?;
    }
    let status = status.unwrap_or(ca.status);
    record_change(
        call,
        "registry.ca_updated",
        &ca.id,
        format!(
            "CA {} ({}): {status}, auto-registration {}{}",
            short_id(&ca.id),
            ca.label,
            yes_no(new_auto),
            if new_config.is_some() {
                " with a JITP template"
            } else {
                ""
            }
        ),
        json!({
            "caCertificateId": ca.id,
            "status": status,
            "autoRegistrationStatus": yes_no(new_auto),
            "roleArn": new_config.as_ref().map(|c| c.role_arn.clone()),
        }),
    );
    done()
}

/// `DescribeCACertificate`.
pub(super) fn describe(call: &Call<'_>) -> ApiResult {
    let ca = visible_ca(call, call.label("caCertificateId")?)?;
    let mut description = json!({
        "certificateArn": ca_cert_arn(&ca.id),
        "certificateId": ca.id,
        "status": ca.status,
        "certificatePem": ca.pem,
        "ownedBy": crate::cloud::local::LOCAL_ACCOUNT_ID,
        "creationDate": epoch_seconds(ca.created_at),
        "lastModifiedDate": epoch_seconds(ca.created_at),
        "autoRegistrationStatus": yes_no(ca.auto_registration),
        "customerVersion": 1,
        "generationId": uuid_like(&format!("{}/{}/{}", ca.id, ca.status, ca.auto_registration)),
        "certificateMode": "DEFAULT",
    });
    if let (Ok(info), Some(map)) = (pki::parse_cert(&ca.pem), description.as_object_mut()) {
        map.insert(
            "validity".into(),
            json!({"notBefore": info.not_before, "notAfter": info.not_after}),
        );
    }
    let mut body = json!({ "certificateDescription": description });
    if let (Some(config), Some(map)) = (&ca.registration_config, body.as_object_mut()) {
        map.insert(
            "registrationConfig".into(),
            json!({"templateBody": config.template_body, "roleArn": config.role_arn}),
        );
    }
    ok(body)
}

/// `DeleteCACertificate`: only an INACTIVE CA that no registered
/// certificate was issued by.
pub(super) fn delete(call: &Call<'_>) -> ApiResult {
    let ca = visible_ca(call, call.label("caCertificateId")?)?;
    if ca.status == CertificateStatus::Active {
        return Err(certificate_state(format!(
            "the CA certificate {} is ACTIVE; set it INACTIVE (update-ca-certificate --new-status INACTIVE) before deleting it",
            ca.id
        )));
    }
    let store = call.store();
    let issued: u64 = store
        .count_certificates_by_status(&ca.id)
        .map_err(store_error)?
        .iter()
        .map(|(_, n)| n)
        .sum();
    if issued > 0 {
        return Err(certificate_state(format!(
            "{issued} registered certificate(s) were issued by the CA certificate {}; delete them before deleting the CA",
            ca.id
        )));
    }
    store.delete_ca(&ca.id).map_err(|e| match e {
        // Set ACTIVE between our check and the delete.
        crate::store::StoreError::Conflict { reason, .. } => certificate_state(reason),
        other => store_error(other),
    })?;
    record_change(
        call,
        "registry.ca_deleted",
        &ca.id,
        format!(
            "CA {} ({}) deleted through the API",
            short_id(&ca.id),
            ca.label
        ),
        json!({"caCertificateId": ca.id, "label": ca.label}),
    );
    done()
}

/// `ListCACertificates`: newest first unless `isAscendingOrder=true`.
pub(super) fn list(call: &Call<'_>) -> ApiResult {
    let ascending = call.query_bool("isAscendingOrder")?.unwrap_or(false);
    let mut cas: Vec<CaCertificate> = call
        .store()
        .list_cas()
        .map_err(store_error)?
        .into_iter()
        .filter(|ca| ca.label != super::AMAZON_CA_LABEL)
        .collect();
    if !ascending {
        cas.reverse();
    }
    let (cas, next) = page(cas, call.query("marker"), call.query("pageSize"))?;
    let certificates: Vec<Value> = cas
        .iter()
        .map(|ca| {
            json!({
                "certificateArn": ca_cert_arn(&ca.id),
                "certificateId": ca.id,
                "status": ca.status,
                "creationDate": epoch_seconds(ca.created_at),
            })
        })
        .collect();
    ok(with_next(
        json!({ "certificates": certificates }),
        "nextMarker",
        next,
    ))
}

/// A registry change on the TUI's event stream and in the event log. The
/// change is made: a failure to log it is only logged.
pub(super) fn record_change(
    call: &Call<'_>,
    log_kind: &str,
    subject: &str,
    summary: String,
    detail: Value,
) {
    if let Err(e) = call
        .ctx
        .cloud
        .record(EventKind::Registry, log_kind, subject, summary, detail)
    {
        tracing::warn!(error = %e, log_kind, "the event log could not record an API change");
    }
}
