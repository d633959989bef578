//! `init` on AWS: the sample's `certs_etc.py --create`, against the APIs.
//!
//! 1. the Vendor CA: `GetRegistrationCode` → a verification cert with
//!    CN = code, signed by the CA's key → `RegisterCACertificate
//!    --set-as-active --allow-auto-registration --registration-config`
//!    (the JITP template and the stack's `JitpProvisioningRoleArn`);
//!    its key (the factory's signing key) as SecureString `/jitpilot/vendor-ca-key`;
//! 2. the Manufacturer CA, registered the same way (no JITP), its key as
//!    SecureString `cr-ca-key-<caCertificateId>` for the rotation function;
//! 3. whitelist rows in `CertRotationDevices` (`CR_WHITELISTED`);
//! 4. factory credentials in `<data-dir>/devices/<serial>/`, trusting
//!    Amazon's root CAs for the `iot:Data-ATS` endpoint (plus the CA of
//!    `--iot-root-ca` when given: jitpilot's local cloud, a custom domain);
//! 5. the observer identity: a certificate and a least-privilege policy
//!    (subscribe/receive `$aws/events/*` and `/cert-rotation/*` only) with
//!    which the TUI's traffic pane subscribes.
//!
//! Idempotent like the local init: CAs are found again by the fleet's
//! subjects and reused when their key is in the parameter store.

use super::errors::{api, AwsError, AwsResult};
use super::registry::{self, RegisteredCa};
use super::{stack, status, table, AwsCloud, AMAZON_ROOT_CAS};
use crate::cloud::{CloudError, CloudEvent, CloudResult, EventKind, InitReport};
use crate::datadir::{create_private_dir, write_atomically};
use crate::fleet::CaProfile;
use crate::pki::{self, Issued};
use crate::vocabulary::{
    ca_key_parameter, CrState, ATTR_CR_STATE, ATTR_MANUFACTURER_CA_CERT_ID, DEVICE_TABLE,
    DEVICE_TABLE_KEY, JITP_TEMPLATE, MANUFACTURER_CA_FILE, MANUFACTURER_CA_LABEL,
    OBSERVER_CERT_FILE, OBSERVER_KEY_FILE, ROOT_CA_FILE, VENDOR_CA_LABEL, VENDOR_CERT_FILE,
    VENDOR_KEY_FILE, VENDOR_KEY_PARAMETER,
};
use aws_sdk_iot::types::{AutoRegistrationStatus, RegistrationConfig};
use aws_sdk_ssm::types::ParameterType;
use std::path::{Path, PathBuf};

/// The observer's policy: subscribe and receive only.
pub const OBSERVER_POLICY: &str = "JitpilotObserverPolicy";
/// The observer's MQTT clientId prefix (the policy allows `<prefix>*`).
pub const OBSERVER_CLIENT_PREFIX: &str = "jitpilot-observer-";

/// A CA of the walkthrough with its key, ready to sign.
struct SigningCa {
    id: String,
    cert_pem: String,
    key_pem: String,
}

/// Runs init; `extra_devices` beyond the fleet's serials.
pub async fn run(cloud: &AwsCloud, extra_devices: usize) -> CloudResult<InitReport> {
    let stack = stack::describe(cloud).await?;
    let Some(stack) = stack.filter(|s| stack::is_deployed(&stack::status_of(s))) else {
        return Err(CloudError::NotDeployed);
    };
    let role_arn = stack::output(&stack, stack::PROVISIONING_ROLE_OUTPUT).ok_or_else(|| {
        CloudError::Template(format!(
            "the stack has no output {}; run `jitpilot deploy` again",
            stack::PROVISIONING_ROLE_OUTPUT
        ))
    })?;
    // What devices and the observer trust; a bad --iot-root-ca fails here,
    // before anything is created.
    let roots = cloud.trusted_roots()?;
    let mut created = false;
    let cas = registry::fleet_cas(cloud).await?;
    let vendor = vendor_ca(cloud, &cas, &role_arn, &mut created).await?;
    let manufacturer = manufacturer_ca(cloud, &cas, &mut created).await?;

    let serials = cloud.fleet().serials(extra_devices);
    created |= whitelist(cloud, &serials, &manufacturer.id).await? > 0;

    // Devices trust Amazon's roots for the account's ATS endpoint.
    let local = cloud.local_dir();
    create_private_dir(&local).map_err(other)?;
    write_if_changed(&cloud.root_ca_path(), &roots)?;
    if let Err(e) = cloud.data_ats_host().await {
        tracing::warn!("iot:Data-ATS endpoint unknown for now: {e}");
    }
    let devices_dir = cloud.options().data_dir.join("devices");
    create_private_dir(&devices_dir).map_err(other)?;
    let mut issued = 0;
    for serial in &serials {
        if factory_credentials(
            cloud,
            &devices_dir.join(serial),
            serial,
            &vendor,
            &manufacturer,
            &roots,
        )? {
            issued += 1;
        }
    }
    if issued > 0 {
        created = true;
        cloud.emit(CloudEvent::new(
            EventKind::Registry,
            format!("factory: issued vendor certs for {issued} device(s)"),
        ));
    }
    created |= observer(cloud, &roots).await?;

    let mut summaries = Vec::new();
    for ca in registry::fleet_cas(cloud).await? {
        if ca.id == vendor.id || ca.id == manufacturer.id {
            summaries.push(status::ca_summary(cloud, &ca).await?);
        }
    }
    summaries.sort_by_key(|c| c.label != VENDOR_CA_LABEL);
    Ok(InitReport {
        cas: summaries,
        ca_key_parameter: ca_key_parameter(&manufacturer.id),
        whitelisted: serials,
        devices_dir,
        created,
    })
}

/// The Vendor CA: the registered one whose key is in the parameter store,
/// kept in sync with the JITP config; otherwise a new one.
async fn vendor_ca(
    cloud: &AwsCloud,
    cas: &[RegisteredCa],
    role_arn: &str,
    created: &mut bool,
) -> AwsResult<SigningCa> {
    let config = RegistrationConfig::builder()
        .template_body(JITP_TEMPLATE)
        .role_arn(role_arn)
        .build();
    if let Some(key) = get_secure(cloud, VENDOR_KEY_PARAMETER).await? {
        let public = pki::public_key_der_of_key(&key).map_err(other_aws)?;
        let found = cas
            .iter()
            .find(|ca| ca.label == VENDOR_CA_LABEL && ca.public_key_der == public);
        if let Some(ca) = found {
            // A redeployed stack may have a new role: keep JITP current.
            if !ca.auto_registration
                || ca.role_arn.as_deref() != Some(role_arn)
                || ca.template_body.as_deref() != Some(JITP_TEMPLATE)
            {
                cloud
                    .clients()
                    .iot
                    .update_ca_certificate()
                    .certificate_id(&ca.id)
                    .new_auto_registration_status(AutoRegistrationStatus::Enable)
                    .registration_config(config)
                    .send()
                    .await
                    .map_err(|e| api("UpdateCACertificate", "iot:UpdateCACertificate", e))?;
            }
            return Ok(SigningCa {
                id: ca.id.clone(),
                cert_pem: ca.pem.clone(),
                key_pem: key,
            });
        }
    }
    let ca = create_ca(&cloud.fleet().vendor_ca)?;
    // Key first: a registered CA is never without its key.
    put_secure(cloud, VENDOR_KEY_PARAMETER, &ca.key_pem).await?;
    let id = register_ca(cloud, &ca, Some(config)).await?;
    put_parameter(
        cloud,
        registry::VENDOR_CA_ID_PARAMETER,
        &id,
        ParameterType::String,
    )
    .await?;
    emit_registered(cloud, VENDOR_CA_LABEL, &id, true);
    *created = true;
    Ok(SigningCa {
        id,
        cert_pem: ca.cert_pem,
        key_pem: ca.key_pem,
    })
}

/// The Manufacturer CA whose key is `cr-ca-key-<id>`, or a new one.
async fn manufacturer_ca(
    cloud: &AwsCloud,
    cas: &[RegisteredCa],
    created: &mut bool,
) -> AwsResult<SigningCa> {
    for ca in cas.iter().filter(|c| c.label == MANUFACTURER_CA_LABEL) {
        if ca.status != "ACTIVE" {
            continue;
        }
        if let Some(key) = get_secure(cloud, &ca_key_parameter(&ca.id)).await? {
            return Ok(SigningCa {
                id: ca.id.clone(),
                cert_pem: ca.pem.clone(),
                key_pem: key,
            });
        }
    }
    let ca = create_ca(&cloud.fleet().manufacturer_ca)?;
    put_secure(cloud, &ca_key_parameter(&ca.id), &ca.key_pem).await?;
    let id = register_ca(cloud, &ca, None).await?;
    if id != ca.id {
        // AWS's certificateId is the SHA-256 of the DER, as ours; an
        // emulator may compute another. The parameter follows the registry.
        put_secure(cloud, &ca_key_parameter(&id), &ca.key_pem).await?;
        let _ = cloud
            .clients()
            .ssm
            .delete_parameter()
            .name(ca_key_parameter(&ca.id))
            .send()
            .await;
    }
    emit_registered(cloud, MANUFACTURER_CA_LABEL, &id, false);
    *created = true;
    Ok(SigningCa {
        id,
        cert_pem: ca.cert_pem,
        key_pem: ca.key_pem,
    })
}

fn create_ca(profile: &CaProfile) -> AwsResult<Issued> {
    pki::create_ca(
        &profile.subject,
        profile.key_algorithm,
        profile.validity_days,
    )
    .map_err(other_aws)
}

/// `GetRegistrationCode` → verification cert → `RegisterCACertificate`
/// (ACTIVE; with auto-registration and the JITP config when given).
async fn register_ca(
    cloud: &AwsCloud,
    ca: &Issued,
    jitp: Option<RegistrationConfig>,
) -> AwsResult<String> {
    let iot = &cloud.clients().iot;
    let code = iot
        .get_registration_code()
        .send()
        .await
        .map_err(|e| api("GetRegistrationCode", "iot:GetRegistrationCode", e))?
        .registration_code
        .ok_or_else(|| AwsError::Other("GetRegistrationCode returned no code".into()))?;
    let proof =
        pki::create_verification_cert(&ca.cert_pem, &ca.key_pem, &code).map_err(other_aws)?;
    let out = iot
        .register_ca_certificate()
        .ca_certificate(&ca.cert_pem)
        .verification_certificate(&proof.cert_pem)
        .set_as_active(true)
        .allow_auto_registration(jitp.is_some())
        .set_registration_config(jitp)
        .send()
        .await
        .map_err(|e| api("RegisterCACertificate", "iot:RegisterCACertificate", e))?;
    out.certificate_id
        .ok_or_else(|| AwsError::Other("RegisterCACertificate returned no id".into()))
}

fn emit_registered(cloud: &AwsCloud, label: &str, id: &str, jitp: bool) {
    let short = &id[..id.len().min(10)];
    let jitp = if jitp {
        ", auto-registration ENABLE with the JITP template"
    } else {
        ""
    };
    cloud.emit(CloudEvent::new(
        EventKind::Registry,
        format!("{label} {short} registered, ACTIVE{jitp}"),
    ));
}

/// `GetParameter --with-decryption`; `None` when absent.
pub async fn get_secure(cloud: &AwsCloud, name: &str) -> AwsResult<Option<String>> {
    let result = cloud
        .clients()
        .ssm
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await;
    match result {
        Ok(out) => Ok(out.parameter.and_then(|p| p.value)),
        Err(e) => match api("GetParameter", "ssm:GetParameter", e) {
            AwsError::Api { code, .. } if code == "ParameterNotFound" => Ok(None),
            other => Err(other),
        },
    }
}

/// `PutParameter --type SecureString --overwrite` (encrypted with the
/// account's default `aws/ssm` KMS key).
async fn put_secure(cloud: &AwsCloud, name: &str, value: &str) -> AwsResult<()> {
    put_parameter(cloud, name, value, ParameterType::SecureString).await
}

async fn put_parameter(
    cloud: &AwsCloud,
    name: &str,
    value: &str,
    kind: ParameterType,
) -> AwsResult<()> {
    let label = kind.as_str().to_string();
    cloud
        .clients()
        .ssm
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(kind)
        .overwrite(true)
        .send()
        .await
        .map_err(|e| api("PutParameter", "ssm:PutParameter", e))?;
    cloud.emit(CloudEvent::new(
        EventKind::Registry,
        format!("parameter store: {name} ({label})"),
    ));
    Ok(())
}

/// Whitelists serials without a row (or still whitelisted for another
/// Manufacturer CA); rows that progressed are left alone.
async fn whitelist(
    cloud: &AwsCloud,
    serials: &[String],
    manufacturer_ca: &str,
) -> AwsResult<usize> {
    let mut rows = Vec::new();
    for serial in serials {
        let write = match table::get(cloud, DEVICE_TABLE, serial).await? {
            None => true,
            Some(row) => {
                row.get(ATTR_CR_STATE).and_then(|v| v.as_str())
                    == Some(CrState::Whitelisted.as_str())
                    && row
                        .get(ATTR_MANUFACTURER_CA_CERT_ID)
                        .and_then(|v| v.as_str())
                        != Some(manufacturer_ca)
            }
        };
        if write {
            let mut row = serde_json::Map::new();
            row.insert(DEVICE_TABLE_KEY.into(), serial.as_str().into());
            row.insert(ATTR_CR_STATE.into(), CrState::Whitelisted.as_str().into());
            row.insert(ATTR_MANUFACTURER_CA_CERT_ID.into(), manufacturer_ca.into());
            rows.push(row);
        }
    }
    table::put_all(cloud, DEVICE_TABLE, &rows).await?;
    for row in &rows {
        let serial = row[DEVICE_TABLE_KEY]
            .as_str()
            .unwrap_or_default()
            .to_string();
        cloud.emit(
            CloudEvent::new(
                EventKind::Registry,
                format!("{DEVICE_TABLE}: {serial} CR_WHITELISTED"),
            )
            .client(serial),
        );
    }
    Ok(rows.len())
}

/// The device's factory key and Vendor-CA-signed cert, unless it has valid
/// ones; always refreshes what it trusts (`roots`). True when a cert was
/// issued.
fn factory_credentials(
    cloud: &AwsCloud,
    dir: &Path,
    serial: &str,
    vendor: &SigningCa,
    manufacturer: &SigningCa,
    roots: &str,
) -> AwsResult<bool> {
    create_private_dir(dir).map_err(other)?;
    let key_path = dir.join(VENDOR_KEY_FILE);
    let cert_path = dir.join(VENDOR_CERT_FILE);
    let mut issued = false;
    if !crate::datadir::has_valid_credentials(&key_path, &cert_path, &vendor.cert_pem) {
        let profile = &cloud.fleet().device_cert;
        let device = pki::issue_device_cert(
            &vendor.cert_pem,
            &vendor.key_pem,
            &cloud.fleet().device_subject(serial),
            profile.key_algorithm,
            profile.validity_days,
        )
        .map_err(other_aws)?;
        write_atomically(&key_path, device.key_pem.as_bytes(), true).map_err(other)?;
        let chain = format!("{}\n{}", device.cert_pem.trim_end(), vendor.cert_pem);
        write_atomically(&cert_path, chain.as_bytes(), false).map_err(other)?;
        issued = true;
    }
    write_roots(&dir.join(ROOT_CA_FILE), roots)?;
    write_if_changed(&dir.join(MANUFACTURER_CA_FILE), &manufacturer.cert_pem)?;
    Ok(issued)
}

/// Where the observer identity lives: `<data-dir>/aws/observer/`.
pub fn observer_dir(cloud: &AwsCloud) -> PathBuf {
    cloud.local_dir().join("observer")
}

/// The observer's least-privilege policy for this account and region.
pub fn observer_policy_document(region: &str, account: &str) -> serde_json::Value {
    let arn = |kind: &str, rest: &str| format!("arn:aws:iot:{region}:{account}:{kind}/{rest}");
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect",
             "Resource": arn("client", &format!("{OBSERVER_CLIENT_PREFIX}*"))},
            {"Effect": "Allow", "Action": "iot:Subscribe",
             "Resource": [arn("topicfilter", "$aws/events/*"), arn("topicfilter", "/cert-rotation/*")]},
            {"Effect": "Allow", "Action": "iot:Receive",
             "Resource": [arn("topic", "$aws/events/*"), arn("topic", "/cert-rotation/*")]}
        ]
    })
}

/// Creates the observer identity unless a working one is on disk (whose
/// `root-ca.pem` is refreshed to `roots`). True when it created one.
async fn observer(cloud: &AwsCloud, roots: &str) -> AwsResult<bool> {
    let dir = observer_dir(cloud);
    let iot = &cloud.clients().iot;
    if let Ok(id) = std::fs::read_to_string(dir.join("cert-id")) {
        let described = iot
            .describe_certificate()
            .certificate_id(id.trim())
            .send()
            .await;
        let active = described.ok().is_some_and(|out| {
            out.certificate_description()
                .and_then(|d| d.status())
                .is_some_and(|s| s.as_str() == "ACTIVE")
        });
        if active && dir.join(OBSERVER_KEY_FILE).is_file() && dir.join(OBSERVER_CERT_FILE).is_file()
        {
            write_roots(&dir.join(ROOT_CA_FILE), roots)?;
            return Ok(false);
        }
    }
    let account = cloud.clients().account_id().await?;
    let document = observer_policy_document(&cloud.clients().region, &account).to_string();
    match iot
        .create_policy()
        .policy_name(OBSERVER_POLICY)
        .policy_document(&document)
        .send()
        .await
    {
        Ok(_) => {}
        Err(e) => match api("CreatePolicy", "iot:CreatePolicy", e) {
            AwsError::Api { code, .. } if code == "ResourceAlreadyExistsException" => {}
            other => return Err(other),
        },
    }
    let out = iot
        .create_keys_and_certificate()
        .set_as_active(true)
        .send()
        .await
        .map_err(|e| {
            api(
                "CreateKeysAndCertificate",
                "iot:CreateKeysAndCertificate",
                e,
            )
        })?;
    let (Some(id), Some(arn), Some(pem), Some(key)) = (
        out.certificate_id(),
        out.certificate_arn(),
        out.certificate_pem(),
        out.key_pair().and_then(|k| k.private_key()),
    ) else {
        return Err(AwsError::Other(
            "CreateKeysAndCertificate returned no certificate or key".into(),
        ));
    };
    iot.attach_policy()
        .policy_name(OBSERVER_POLICY)
        .target(arn)
        .send()
        .await
        .map_err(|e| api("AttachPolicy", "iot:AttachPolicy", e))?;
    create_private_dir(&dir).map_err(other)?;
    write_atomically(&dir.join(OBSERVER_KEY_FILE), key.as_bytes(), true).map_err(other)?;
    write_atomically(&dir.join(OBSERVER_CERT_FILE), pem.as_bytes(), false).map_err(other)?;
    write_atomically(&dir.join("cert-id"), id.as_bytes(), false).map_err(other)?;
    write_atomically(&dir.join(ROOT_CA_FILE), roots.as_bytes(), false).map_err(other)?;
    cloud.emit(CloudEvent::new(
        EventKind::Registry,
        format!(
            "observer identity {} with {OBSERVER_POLICY}",
            &id[..id.len().min(10)]
        ),
    ));
    Ok(true)
}

/// Removes the observer identity (certificate, policy, files).
pub async fn delete_observer(cloud: &AwsCloud) -> AwsResult<()> {
    let dir = observer_dir(cloud);
    let iot = &cloud.clients().iot;
    let targets = iot
        .list_targets_for_policy()
        .policy_name(OBSERVER_POLICY)
        .send()
        .await
        .map(|out| out.targets.unwrap_or_default())
        .unwrap_or_default();
    for arn in targets {
        let id = arn.rsplit('/').next().unwrap_or_default().to_string();
        status::retire_certificate(cloud, &id, &arn, false).await?;
    }
    match iot
        .delete_policy()
        .policy_name(OBSERVER_POLICY)
        .send()
        .await
    {
        Ok(_) => {}
        Err(e) => match api("DeletePolicy", "iot:DeletePolicy", e) {
            AwsError::Api { code, .. } if code == "ResourceNotFoundException" => {}
            other => return Err(other),
        },
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| {
            AwsError::Other(format!(
                "cannot remove {}: {e}; remove it by hand",
                dir.display()
            ))
        })?;
    }
    Ok(())
}

/// Writes `roots` (what init trusts) to a `root-ca.pem`, unless the file
/// holds something init did not write: a custom domain (`--iot-endpoint`)
/// may chain to another CA, and init must not undo what its user put there.
/// Init's own files start with Amazon's roots; those are brought up to date
/// (e.g. once `--iot-root-ca` names the local cloud's endpoint CA).
fn write_roots(path: &Path, roots: &str) -> AwsResult<()> {
    let written_by_init = match std::fs::read_to_string(path) {
        Err(_) => true,
        Ok(current) => current.trim_start().starts_with(AMAZON_ROOT_CAS.trim()),
    };
    if written_by_init {
        write_if_changed(path, roots)
    } else {
        Ok(())
    }
}

fn write_if_changed(path: &Path, text: &str) -> AwsResult<()> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
        return Ok(());
    }
    write_atomically(path, text.as_bytes(), false).map_err(other)
}

fn other(e: impl std::fmt::Display) -> AwsError {
    AwsError::Other(e.to_string())
}

fn other_aws(e: crate::pki::PkiError) -> AwsError {
    AwsError::Other(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_observer_may_only_subscribe_and_receive_the_walkthrough_topics() {
        let doc = observer_policy_document("eu-west-1", "111122223333");
        let actions: Vec<&str> = doc["Statement"]
            .as_array()
            .expect("statements")
            .iter()
            .map(|s| s["Action"].as_str().expect("one action"))
            .collect();
        assert_eq!(actions, ["iot:Connect", "iot:Subscribe", "iot:Receive"]);
        let text = doc.to_string();
        assert!(!text.contains("iot:Publish"));
        assert!(text.contains("arn:aws:iot:eu-west-1:111122223333:topicfilter/$aws/events/*"));
        assert!(text.contains("arn:aws:iot:eu-west-1:111122223333:client/jitpilot-observer-*"));
    }
}
