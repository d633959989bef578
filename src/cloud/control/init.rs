//! `init`, the sample's `certs_etc.py --create`, run once for both clouds:
//!
//! 1. the Vendor CA, registered with registration-code proof, ACTIVE, with
//!    auto-registration and the JITP template (this is what makes JITP
//!    happen); its key — the factory's signing key — as SecureString
//!    `/jitpilot/vendor-ca-key`;
//! 2. the Manufacturer CA, registered the same way, its key as SecureString
//!    `cr-ca-key-<caCertificateId>` for the rotation function;
//! 3. the whitelist: one `CR_WHITELISTED` row per serial in `CertRotationDevices`;
//! 4. "the factory": each device's key and Vendor-CA-signed cert (CN = serial).
//!
//! [`run`] takes the steps in that order and asks [`plan`] what to do at
//! each; a [`ControlBackend`] carries the calls out (the local cloud's
//! store, or the AWS APIs). Idempotent: what exists is reused, only what is
//! missing is created, and rows of devices that already progressed are
//! never touched.

use super::factory::{self, Factory};
use super::plan::{self, CaChoice, FoundCa};
use crate::cloud::{CaSummary, CloudEvent, CloudResult, EventKind, InitReport};
use crate::fleet::Fleet;
use crate::model::RegistrationConfig;
use crate::pki::{self, Issued};
use crate::rotation::wire::{ca_key_parameter, Item, ATTR_SERIAL_NUMBER};
use crate::vocabulary::{
    JITP_TEMPLATE, MANUFACTURER_CA_LABEL, VENDOR_CA_LABEL, VENDOR_KEY_PARAMETER,
};
use serde_json::json;
use std::path::{Path, PathBuf};

/// What `init` needs from a cloud: a few registry, parameter-store and
/// table calls. The local cloud answers them from its store, the AWS
/// backend through the SDK.
#[async_trait::async_trait]
pub trait ControlBackend: Send + Sync {
    /// The fleet definition (CA profiles, serials, device subjects).
    fn fleet(&self) -> &Fleet;
    /// The data dir: device credentials go to `<data-dir>/devices`.
    fn data_dir(&self) -> &Path;
    /// The stack's JITP provisioning role's ARN. [`CloudError::NotDeployed`]
    /// when the stack or its device table is missing.
    ///
    /// [`CloudError::NotDeployed`]: crate::cloud::CloudError::NotDeployed
    async fn provisioning_role(&self) -> CloudResult<String>;
    /// What devices trust for the MQTT endpoint (`root-ca.pem`); fails
    /// before anything is created when that cannot be known.
    async fn device_roots(&self) -> CloudResult<String>;
    /// True when a device's `root-ca.pem` holding `current` is to be kept as
    /// it is rather than replaced by the roots (AWS: one its user put there).
    fn keep_device_roots(&self, _current: &str) -> bool {
        false
    }
    /// The fleet's CAs as registered.
    async fn fleet_cas(&self) -> CloudResult<Vec<FoundCa>>;
    /// A SecureString parameter's value, decrypted; `None` when absent.
    async fn get_secure(&self, name: &str) -> CloudResult<Option<String>>;
    /// Puts a SecureString parameter, overwriting.
    async fn put_secure(&self, name: &str, value: &str) -> CloudResult<()>;
    /// Deletes a parameter; false when it was not there.
    async fn delete_parameter(&self, name: &str) -> CloudResult<bool>;
    /// `register-ca-certificate --set-as-active` with a verification cert
    /// whose CN is the registration code; with `jitp`, auto-registration on
    /// with that config. Returns the cloud's caCertificateId.
    async fn register_ca(
        &self,
        ca: &Issued,
        label: &str,
        jitp: Option<&RegistrationConfig>,
    ) -> CloudResult<String>;
    /// `update-ca-certificate --new-auto-registration-status ENABLE
    /// --registration-config`.
    async fn enable_jitp(&self, ca_id: &str, jitp: &RegistrationConfig) -> CloudResult<()>;
    /// Every row of the device table.
    async fn device_rows(&self) -> CloudResult<Vec<Item>>;
    /// Writes the whitelist rows (a batch; each device's timeline starts here).
    async fn put_rows(&self, rows: &[Item]) -> CloudResult<()>;
    /// What this cloud adds once the fleet is ready (AWS: the observer
    /// identity). True when it created something.
    async fn finish(&self, _roots: &str) -> CloudResult<bool> {
        Ok(false)
    }
    /// A CA as `init` reports it (certificates counted, key located).
    async fn ca_summary(&self, ca: &FoundCa) -> CloudResult<CaSummary>;
    /// Tells the event stream (and the local cloud's event log).
    fn note(&self, event: CloudEvent, log_kind: &str, subject: &str) -> CloudResult<()>;
}

/// A CA of the walkthrough with its key, ready to sign.
struct SigningCa {
    id: String,
    cert_pem: String,
    key_pem: String,
}

/// Runs `init` for `devices` devices (the sample's serial first).
pub async fn run(cloud: &dyn ControlBackend, devices: usize) -> CloudResult<InitReport> {
    let jitp = RegistrationConfig {
        template_body: JITP_TEMPLATE.to_string(),
        role_arn: cloud.provisioning_role().await?,
    };
    // What devices trust; a bad --iot-root-ca fails here, before anything
    // is created.
    let roots = cloud.device_roots().await?;
    let mut created = false;
    let found = cloud.fleet_cas().await?;
    let vendor = vendor_ca(cloud, &found, &jitp, &mut created).await?;
    let manufacturer = manufacturer_ca(cloud, &found, &mut created).await?;

    let serials = plan::fleet_serials(cloud.fleet(), devices);
    let rows = plan::whitelist_rows(&serials, &cloud.device_rows().await?, &manufacturer.id);
    if !rows.is_empty() {
        cloud.put_rows(&rows).await?;
        created = true;
    }

    let factory = Factory {
        data_dir: cloud.data_dir(),
        fleet: cloud.fleet(),
        vendor_cert_pem: &vendor.cert_pem,
        vendor_key_pem: &vendor.key_pem,
        manufacturer_ca_pem: &manufacturer.cert_pem,
        roots: &roots,
        keep_roots: &|current| cloud.keep_device_roots(current),
    };
    let issued = factory::issue(&factory, &serials)?;
    if issued > 0 {
        created = true;
        cloud.note(
            CloudEvent::new(
                EventKind::Registry,
                format!("factory: issued vendor certs for {issued} device(s)"),
            )
            .detail(json!({"devices": issued})),
            "init.factory_credentials",
            "fleet",
        )?;
    }
    created |= cloud.finish(&roots).await?;

    let registered = cloud.fleet_cas().await?;
    let mut cas = Vec::new();
    for id in [&vendor.id, &manufacturer.id] {
        if let Some(ca) = registered.iter().find(|c| &c.id == id) {
            cas.push(cloud.ca_summary(ca).await?);
        }
    }
    Ok(InitReport {
        cas,
        ca_key_parameter: ca_key_parameter(&manufacturer.id),
        whitelisted: serials,
        devices_dir: devices_dir(cloud.data_dir()),
        created,
    })
}

/// `<data-dir>/devices`.
pub fn devices_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(crate::vocabulary::DEVICES_DIR)
}

/// The Vendor CA: the registered one with its key, kept on the JITP
/// config; otherwise a new one, its key stored first (a registered CA is
/// never without its key).
async fn vendor_ca(
    cloud: &dyn ControlBackend,
    found: &[FoundCa],
    jitp: &RegistrationConfig,
    created: &mut bool,
) -> CloudResult<SigningCa> {
    let key = cloud.get_secure(VENDOR_KEY_PARAMETER).await?;
    match plan::choose_vendor_ca(found, key.as_deref(), jitp)? {
        CaChoice::Reuse {
            id,
            pem,
            key,
            enable_jitp,
        } => {
            if enable_jitp {
                cloud.enable_jitp(&id, jitp).await?;
            }
            Ok(SigningCa {
                id,
                cert_pem: pem,
                key_pem: key,
            })
        }
        CaChoice::Create => {
            let ca = create_ca(cloud, VENDOR_CA_LABEL)?;
            cloud.put_secure(VENDOR_KEY_PARAMETER, &ca.key_pem).await?;
            let id = cloud.register_ca(&ca, VENDOR_CA_LABEL, Some(jitp)).await?;
            *created = true;
            Ok(SigningCa {
                id,
                cert_pem: ca.cert_pem,
                key_pem: ca.key_pem,
            })
        }
    }
}

/// The Manufacturer CA with its key `cr-ca-key-<id>`, or a new one.
async fn manufacturer_ca(
    cloud: &dyn ControlBackend,
    found: &[FoundCa],
    created: &mut bool,
) -> CloudResult<SigningCa> {
    let candidate = plan::manufacturer_candidates(found).into_iter().next();
    let key = match candidate {
        Some(ca) => cloud.get_secure(&ca_key_parameter(&ca.id)).await?,
        None => None,
    };
    match plan::choose_manufacturer_ca(candidate, key.as_deref())? {
        CaChoice::Reuse { id, pem, key, .. } => Ok(SigningCa {
            id,
            cert_pem: pem,
            key_pem: key,
        }),
        CaChoice::Create => {
            let ca = create_ca(cloud, MANUFACTURER_CA_LABEL)?;
            cloud
                .put_secure(&ca_key_parameter(&ca.id), &ca.key_pem)
                .await?;
            let id = cloud.register_ca(&ca, MANUFACTURER_CA_LABEL, None).await?;
            if id != ca.id {
                // AWS's certificateId is the SHA-256 of the DER, as ours; an
                // emulator may compute another. The parameter follows the registry.
                cloud
                    .put_secure(&ca_key_parameter(&id), &ca.key_pem)
                    .await?;
                cloud.delete_parameter(&ca_key_parameter(&ca.id)).await?;
            }
            *created = true;
            Ok(SigningCa {
                id,
                cert_pem: ca.cert_pem,
                key_pem: ca.key_pem,
            })
        }
    }
}

/// A new CA from the fleet definition's profile for `label`.
fn create_ca(cloud: &dyn ControlBackend, label: &str) -> CloudResult<Issued> {
    let fleet = cloud.fleet();
    let profile = if label == VENDOR_CA_LABEL {
        &fleet.vendor_ca
    } else {
        &fleet.manufacturer_ca
    };
    Ok(pki::create_ca(
        &profile.subject,
        profile.key_algorithm,
        profile.validity_days,
    )?)
}

/// The event each whitelisted row puts on the stream: the device's
/// timeline starts here.
pub fn whitelisted_event(row: &Item) -> CloudEvent {
    let serial = row
        .get(ATTR_SERIAL_NUMBER)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    CloudEvent::new(
        EventKind::Registry,
        format!(
            "{}: {serial} {}",
            crate::vocabulary::DEVICE_TABLE,
            crate::vocabulary::CrState::Whitelisted
        ),
    )
    .client(serial)
    .detail(serde_json::Value::Object(row.clone()))
}
