//! Device certificates: `register-certificate` (the sample registers its
//! non-JITP devices this way, its Lambda the rotated manufacturer certs),
//! describe/update/delete/list, and `create-keys-and-certificate`, whose
//! certificates AWS signs with its own CA — here a local "Amazon" CA.
//!
//! ## The local "Amazon" CA
//!
//! The endpoint trusts only certificates that chain to a registered ACTIVE
//! CA. So the CA that signs `CreateKeysAndCertificate`'s certificates is
//! registered too, labelled [`AMAZON_CA_LABEL`], made on first use, its key
//! sealed in the parameter store. The API hides it as AWS hides its own:
//! it is in no CA listing, and its certificates have no `caCertificateId`.

use super::cas::record_change;
use super::{
    cert_arn, certificate_state, certificate_validation, delete_conflict, done, epoch_seconds,
    missing, not_found, ok, page, store_error, uuid_like, with_next, Call,
};
use crate::cloud::local::api::{ApiError, ApiResult};
use crate::cloud::local::control::short_id;
use crate::cloud::local::LOCAL_ACCOUNT_ID;
use crate::model::{now_millis, CaCertificate, Certificate, CertificateStatus, ParameterType};
use crate::pki::{self, KeyAlgorithm, Subject};
use crate::store::StoreError;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Mutex;

/// The registry's label of the local CA standing in for Amazon's.
pub const AMAZON_CA_LABEL: &str = "Amazon (local, CreateKeysAndCertificate)";
/// The local "Amazon" CA's key (SecureString).
pub const AMAZON_CA_KEY_PARAMETER: &str = "/jitpilot/amazon-ca-key";
/// The local "Amazon" CA's certificate (String).
pub const AMAZON_CA_CERT_PARAMETER: &str = "/jitpilot/amazon-ca-cert";
/// The subject AWS gives the certificates it creates.
const AWS_CERT_COMMON_NAME: &str = "AWS IoT Certificate";
/// Validity of the local "Amazon" CA and of the certificates it signs.
const AMAZON_CA_DAYS: u32 = 3650 * 2;
const CREATED_CERT_DAYS: u32 = 3650;

/// One creation of the local "Amazon" CA at a time.
static AMAZON_CA: Mutex<()> = Mutex::new(());

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegisterBody {
    certificate_pem: Option<String>,
    ca_certificate_pem: Option<String>,
    status: Option<String>,
}

/// A status the registry keeps, from AWS's spelling.
fn parse_status(name: &str, value: &str) -> Result<CertificateStatus, ApiError> {
    CertificateStatus::parse(value).ok_or_else(|| {
        ApiError::invalid_request(format!(
            "{name} must be ACTIVE, INACTIVE, REVOKED or PENDING_ACTIVATION (the statuses the local cloud keeps), not {value:?}"
        ))
    })
}

/// The registered, visible CA that issued `cert_pem`: the one named by
/// `ca_pem` (checked), or the registered CA whose key signed it.
fn issuing_ca(
    call: &Call<'_>,
    cert_pem: &str,
    ca_pem: Option<&str>,
) -> Result<CaCertificate, ApiError> {
    let store = call.store();
    if let Some(ca_pem) = ca_pem {
        let id = pki::certificate_id_from_pem(ca_pem)
            .map_err(|e| certificate_validation(format!("caCertificatePem: {e}")))?;
        let ca = store
            .get_ca(&id)
            .map_err(store_error)?
            .filter(|ca| ca.label != AMAZON_CA_LABEL)
            .ok_or_else(|| {
                certificate_validation(format!(
                    "the CA certificate {id} is not registered; register it first (register-ca-certificate)"
                ))
            })?;
        return match pki::verify_signed_by(cert_pem, &ca.pem) {
            Ok(true) => Ok(ca),
            Ok(false) => Err(certificate_validation(format!(
                "the certificate is not signed by the CA certificate {id}"
            ))),
            Err(e) => Err(certificate_validation(e.to_string())),
        };
    }
    for ca in store.list_cas().map_err(store_error)? {
        if ca.label != AMAZON_CA_LABEL && pki::verify_signed_by(cert_pem, &ca.pem).unwrap_or(false)
        {
            return Ok(ca);
        }
    }
    Err(certificate_validation(
        "no registered CA certificate issued this certificate; register its CA first (register-ca-certificate) or pass caCertificatePem",
    ))
}

/// `RegisterCertificate`.
pub(super) fn register(call: &Call<'_>) -> ApiResult {
    let body: RegisterBody = call.request.json()?;
    let pem = body
        .certificate_pem
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| missing("certificatePem"))?;
    let status = match (&body.status, call.query_bool("setAsActive")?) {
        (Some(s), _) => parse_status("status", s)?,
        (None, Some(true)) => CertificateStatus::Active,
        (None, _) => CertificateStatus::Inactive,
    };
    let info = pki::parse_cert(&pem)
        .map_err(|e| certificate_validation(format!("certificatePem: {e}")))?;
    let now = now_millis() / 1000;
    if info.not_after < now || info.not_before > now {
        return Err(certificate_validation(
            "the certificate is not valid now (check its notBefore/notAfter)",
        ));
    }
    let ca = issuing_ca(call, &pem, body.ca_certificate_pem.as_deref())?;
    let cert = Certificate {
        id: info.id.clone(),
        ca_id: Some(ca.id.clone()),
        pem,
        status,
        created_at: now_millis(),
    };
    call.store()
        .register_certificate(&cert)
        .map_err(|e| match e {
            StoreError::AlreadyExists { .. } => ApiError::already_exists(format!(
                "the certificate {} is already registered",
                cert.id
            )),
            other => store_error(other),
        })?;
    record_change(
        call,
        "registry.certificate_registered",
        &cert.id,
        format!(
            "certificate {} registered {status} through the API (CA {})",
            short_id(&cert.id),
            short_id(&ca.id)
        ),
        json!({"certificateId": cert.id, "caCertificateId": ca.id, "status": status}),
    );
    ok(json!({ "certificateArn": cert_arn(&cert.id), "certificateId": cert.id }))
}

fn registered(call: &Call<'_>, id: &str) -> Result<Certificate, ApiError> {
    call.store()
        .get_certificate(id)
        .map_err(store_error)?
        .ok_or_else(|| not_found(format!("certificate {id} is not registered")))
}

/// `DescribeCertificate`.
pub(super) fn describe(call: &Call<'_>) -> ApiResult {
    let cert = registered(call, call.label("certificateId")?)?;
    let mut description = json!({
        "certificateArn": cert_arn(&cert.id),
        "certificateId": cert.id,
        "status": cert.status,
        "certificatePem": cert.pem,
        "ownedBy": LOCAL_ACCOUNT_ID,
        "creationDate": epoch_seconds(cert.created_at),
        "lastModifiedDate": epoch_seconds(cert.created_at),
        "customerVersion": 1,
        "transferData": {},
        "generationId": uuid_like(&format!("{}/{}", cert.id, cert.status)),
        "certificateMode": "DEFAULT",
    });
    let Some(map) = description.as_object_mut() else {
        return Err(ApiError::internal("certificate description"));
    };
    if let Some(ca_id) = &cert.ca_id {
        let shown = call
            .store()
            .get_ca(ca_id)
            .map_err(store_error)?
            .is_none_or(|ca| ca.label != AMAZON_CA_LABEL);
        if shown {
            map.insert("caCertificateId".into(), json!(ca_id));
        }
    }
    if let Ok(info) = pki::parse_cert(&cert.pem) {
        map.insert(
            "validity".into(),
            json!({"notBefore": info.not_before, "notAfter": info.not_after}),
        );
    }
    ok(json!({ "certificateDescription": description }))
}

/// `UpdateCertificate --new-status`: a device whose certificate is switched
/// off is disconnected by the running endpoint.
pub(super) fn update(call: &Call<'_>) -> ApiResult {
    let id = call.label("certificateId")?;
    let status = parse_status(
        "newStatus",
        call.query("newStatus")
            .ok_or_else(|| missing("newStatus"))?,
    )?;
    let cert = registered(call, id)?;
    if cert.status == CertificateStatus::Revoked && status != CertificateStatus::Revoked {
        return Err(certificate_state(format!(
            "the certificate {id} is REVOKED; a revoked certificate stays revoked"
        )));
    }
    call.ctx
        .cloud
        .set_certificate_status_sync(&cert.id, status)
        .map_err(super::cloud_error)?;
    done()
}

/// `DeleteCertificate [--force-delete]`: not while ACTIVE, not while
/// attached to a thing; with policies attached only with `forceDelete`.
pub(super) fn delete(call: &Call<'_>) -> ApiResult {
    let id = call.label("certificateId")?;
    let force = call.query_bool("forceDelete")?.unwrap_or(false);
    let cert = registered(call, id)?;
    if cert.status == CertificateStatus::Active {
        return Err(certificate_state(format!(
            "the certificate {id} is ACTIVE; set it INACTIVE (update-certificate --new-status INACTIVE) before deleting it"
        )));
    }
    let store = call.store();
    let things = store.list_principal_things(&cert.id).map_err(store_error)?;
    if !things.is_empty() {
        return Err(delete_conflict(format!(
            "the certificate {id} is attached to thing(s) {}; detach it (detach-thing-principal) before deleting it",
            things.join(", ")
        )));
    }
    let policies = store
        .list_attached_policies(&cert.id)
        .map_err(store_error)?;
    if !policies.is_empty() && !force {
        let names: Vec<&str> = policies.iter().map(|p| p.name.as_str()).collect();
        return Err(delete_conflict(format!(
            "the certificate {id} has policies attached ({}); detach them or pass forceDelete",
            names.join(", ")
        )));
    }
    store.delete_certificate(&cert.id).map_err(|e| match e {
        // Changed between our checks and the delete.
        StoreError::Conflict { reason, .. } => delete_conflict(reason),
        other => store_error(other),
    })?;
    record_change(
        call,
        "registry.certificate_deleted",
        &cert.id,
        format!("certificate {} deleted through the API", short_id(&cert.id)),
        json!({"certificateId": cert.id}),
    );
    done()
}

/// `ListCertificates` / `ListCertificatesByCA`: newest first unless
/// `isAscendingOrder=true`.
pub(super) fn list(call: &Call<'_>, ca: Option<&str>) -> ApiResult {
    let ascending = call.query_bool("isAscendingOrder")?.unwrap_or(false);
    let mut certs: Vec<Certificate> = call
        .store()
        .list_certificates()
        .map_err(store_error)?
        .into_iter()
        .filter(|c| ca.is_none() || c.ca_id.as_deref() == ca)
        .collect();
    if !ascending {
        certs.reverse();
    }
    let (certs, next) = page(certs, call.query("marker"), call.query("pageSize"))?;
    let certificates: Vec<Value> = certs
        .iter()
        .map(|c| {
            json!({
                "certificateArn": cert_arn(&c.id),
                "certificateId": c.id,
                "status": c.status,
                "certificateMode": "DEFAULT",
                "creationDate": epoch_seconds(c.created_at),
            })
        })
        .collect();
    ok(with_next(
        json!({ "certificates": certificates }),
        "nextMarker",
        next,
    ))
}

/// The local "Amazon" CA and its key, made and registered on first use.
fn amazon_ca(call: &Call<'_>) -> Result<(CaCertificate, String), ApiError> {
    let _one_at_a_time = AMAZON_CA.lock().unwrap_or_else(|p| p.into_inner());
    let store = call.store();
    let cert = store
        .get_parameter(AMAZON_CA_CERT_PARAMETER, false)
        .map_err(store_error)?;
    let key = store
        .get_parameter(AMAZON_CA_KEY_PARAMETER, true)
        .map_err(store_error)?;
    let (cert_pem, key_pem) = match (cert, key) {
        (Some(cert), Some(key)) => (cert.value, key.value),
        _ => {
            let subject = Subject {
                common_name: Some("jitpilot local Amazon CA".into()),
                organization: Some("jitpilot".into()),
                ..Subject::default()
            };
            let ca = pki::create_ca(&subject, KeyAlgorithm::EcdsaP256, AMAZON_CA_DAYS)
                .map_err(ApiError::internal)?;
            // Key first: a certificate parameter is never without its key.
            store
                .put_parameter(
                    AMAZON_CA_KEY_PARAMETER,
                    &ca.key_pem,
                    ParameterType::SecureString,
                    true,
                )
                .map_err(store_error)?;
            store
                .put_parameter(
                    AMAZON_CA_CERT_PARAMETER,
                    &ca.cert_pem,
                    ParameterType::String,
                    true,
                )
                .map_err(store_error)?;
            (ca.cert_pem, ca.key_pem)
        }
    };
    let id = pki::certificate_id_from_pem(&cert_pem).map_err(ApiError::internal)?;
    let ca = match store.get_ca(&id).map_err(store_error)? {
        Some(ca) if ca.status == CertificateStatus::Active => ca,
        Some(mut ca) => {
            store
                .set_ca_status(&id, CertificateStatus::Active)
                .map_err(store_error)?;
            ca.status = CertificateStatus::Active;
            ca
        }
        None => {
            let ca = CaCertificate {
                id: id.clone(),
                pem: cert_pem,
                status: CertificateStatus::Active,
                auto_registration: false,
                registration_config: None,
                label: AMAZON_CA_LABEL.to_string(),
                created_at: now_millis(),
            };
            store.register_ca(&ca).map_err(store_error)?;
            ca
        }
    };
    Ok((ca, key_pem))
}

/// `CreateKeysAndCertificate [--set-as-active]`: a new key and a
/// certificate for it, signed by the local "Amazon" CA, registered.
pub(super) fn create_keys_and_certificate(call: &Call<'_>) -> ApiResult {
    let status = if call.query_bool("setAsActive")?.unwrap_or(false) {
        CertificateStatus::Active
    } else {
        CertificateStatus::Inactive
    };
    let (ca, ca_key) = amazon_ca(call)?;
    let subject = Subject {
        common_name: Some(AWS_CERT_COMMON_NAME.into()),
        ..Subject::default()
    };
    let issued = pki::issue_device_cert(
        &ca.pem,
        &ca_key,
        &subject,
        KeyAlgorithm::EcdsaP256,
        CREATED_CERT_DAYS,
    )
    .map_err(ApiError::internal)?;
    let public_der = pki::public_key_der_of_key(&issued.key_pem).map_err(ApiError::internal)?;
    let cert = Certificate {
        id: issued.id.clone(),
        ca_id: Some(ca.id.clone()),
        pem: issued.cert_pem.clone(),
        status,
        created_at: now_millis(),
    };
    call.store()
        .register_certificate(&cert)
        .map_err(store_error)?;
    record_change(
        call,
        "registry.certificate_registered",
        &cert.id,
        format!(
            "certificate {} created with its keys through the API, {status}",
            short_id(&cert.id)
        ),
        json!({"certificateId": cert.id, "status": status}),
    );
    ok(json!({
        "certificateArn": cert_arn(&cert.id),
        "certificateId": cert.id,
        "certificatePem": issued.cert_pem,
        "keyPair": {
            "PublicKey": pem_block("PUBLIC KEY", &public_der),
            "PrivateKey": issued.key_pem,
        },
    }))
}

/// DER as a PEM block.
fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}
