//! `init`: the sample's `certs_etc.py --create`, on the local cloud.
//!
//! 1. the Vendor CA, registered with registration-code proof, ACTIVE, with
//!    auto-registration and the JITP template (this is what makes JITP happen);
//! 2. the Manufacturer CA, registered the same way, its key in the parameter
//!    store as `cr-ca-key-<caCertificateId>` for the rotation function;
//! 3. the whitelist: one `CR_WHITELISTED` row per serial in `CertRotationDevices`;
//! 4. "the factory": each device's key and Vendor-CA-signed cert (CN = serial).
//!
//! Idempotent: what exists is reused, only what is missing is created, and
//! rows of devices that already progressed are never touched.

use super::{short_id, LocalCloud};
use crate::cloud::local::endpoint_ca;
use crate::cloud::local::LOCAL_ACCOUNT_ID;
use crate::cloud::{CloudError, CloudEvent, CloudResult, EventKind, InitReport};
use crate::datadir::{create_private_dir, has_valid_credentials, write_atomically};
use crate::model::{
    now_millis, CaCertificate, CertificateStatus, ParameterType, RegistrationConfig,
};
use crate::pki::{self, Issued};
pub use crate::vocabulary::{
    ca_key_parameter, CR_WHITELISTED, JITP_TEMPLATE, MANUFACTURER_CA_FILE, MANUFACTURER_CA_LABEL,
    ROOT_CA_FILE, VENDOR_CA_LABEL, VENDOR_CERT_FILE, VENDOR_KEY_FILE, VENDOR_KEY_PARAMETER,
};
use crate::vocabulary::{
    ATTR_CR_STATE, ATTR_MANUFACTURER_CA_CERT_ID, DEVICE_TABLE, DEVICE_TABLE_KEY, STACK_NAME,
};
use serde_json::json;
use std::path::Path;

/// The stack's role that AWS IoT assumes to apply the JITP template.
const PROVISIONING_ROLE: &str = "JitpProvisioningRole";

/// A CA of the walkthrough with its key, ready to sign.
struct SigningCa {
    cert_pem: String,
    key_pem: String,
    record: CaCertificate,
}

pub(super) fn run(cloud: &LocalCloud, extra_devices: usize) -> CloudResult<InitReport> {
    let store = cloud.store();
    let stack = store.get_stack(STACK_NAME)?;
    let deployed = stack
        .as_ref()
        .is_some_and(|s| s.status == "CREATE_COMPLETE" || s.status == "UPDATE_COMPLETE");
    if !deployed || store.describe_table(DEVICE_TABLE)?.is_none() {
        return Err(CloudError::NotDeployed);
    }
    let role_arn = provisioning_role_arn(cloud)?;
    let mut created = false;

    let config = RegistrationConfig {
        template_body: JITP_TEMPLATE.to_string(),
        role_arn,
    };
    let vendor = vendor_ca(cloud, &config, &mut created)?;
    let manufacturer = manufacturer_ca(cloud, &mut created)?;
    let endpoint = endpoint_ca::ensure(store)?;
    endpoint.write_pem(&cloud.data_dir().endpoint_ca_path())?;

    let serials = cloud.fleet().serials(extra_devices);
    created |= whitelist(cloud, &serials, &manufacturer.record.id)? > 0;
    create_private_dir(&cloud.data_dir().devices_dir()).map_err(other)?;
    let issued = factory(cloud, &serials, &vendor, &manufacturer, &endpoint.cert_pem)?;
    if issued > 0 {
        created = true;
        cloud.record(
            EventKind::Registry,
            "init.factory_credentials",
            "fleet",
            format!("factory: issued vendor certs for {issued} device(s)"),
            json!({"devices": issued}),
        )?;
    }

    let cas = vec![
        super::status::ca_summary(
            cloud,
            &store.get_ca(&vendor.record.id)?.unwrap_or(vendor.record),
        )?,
        super::status::ca_summary(cloud, &manufacturer.record)?,
    ];
    Ok(InitReport {
        cas,
        ca_key_parameter: ca_key_parameter(&manufacturer.record.id),
        whitelisted: serials,
        devices_dir: cloud.data_dir().devices_dir(),
        created,
    })
}

/// `roleArn` for the JITP registration config: the stack's provisioning role.
fn provisioning_role_arn(cloud: &LocalCloud) -> CloudResult<String> {
    let resources = cloud.store().list_stack_resources(STACK_NAME)?;
    let role = resources
        .iter()
        .find(|r| r.logical_id == PROVISIONING_ROLE)
        .or_else(|| {
            resources.iter().find(|r| {
                r.resource_type == "AWS::IAM::Role"
                    && r.logical_id.to_ascii_lowercase().contains("provision")
            })
        })
        .ok_or_else(|| {
            CloudError::Template(format!(
                "the stack has no {PROVISIONING_ROLE} (AWS::IAM::Role) for the JITP template; run `jitpilot deploy` again"
            ))
        })?;
    Ok(if role.physical_id.starts_with("arn:") {
        role.physical_id.clone()
    } else {
        format!("arn:aws:iam::{LOCAL_ACCOUNT_ID}:role/{}", role.physical_id)
    })
}

/// The Vendor CA: reused when registered with its key, created otherwise.
fn vendor_ca(
    cloud: &LocalCloud,
    config: &RegistrationConfig,
    created: &mut bool,
) -> CloudResult<SigningCa> {
    let store = cloud.store();
    if let Some(record) = find_ca(cloud, VENDOR_CA_LABEL)? {
        let key = store
            .get_parameter(VENDOR_KEY_PARAMETER, true)?
            .ok_or_else(|| missing_key(VENDOR_CA_LABEL, &record.id, VENDOR_KEY_PARAMETER))?;
        // A redeployed stack may have a new role: keep the config current.
        if !record.auto_registration || record.registration_config.as_ref() != Some(config) {
            store.set_ca_auto_registration(&record.id, true, Some(config))?;
        }
        return Ok(SigningCa {
            cert_pem: record.pem.clone(),
            key_pem: key.value,
            record,
        });
    }
    let profile = &cloud.fleet().vendor_ca;
    let ca = pki::create_ca(
        &profile.subject,
        profile.key_algorithm,
        profile.validity_days,
    )?;
    // The key goes in first (overwriting any orphan of an interrupted init):
    // a registered CA is never without its key.
    store.put_parameter(
        VENDOR_KEY_PARAMETER,
        &ca.key_pem,
        ParameterType::SecureString,
        true,
    )?;
    let mut record = register_ca_certificate(cloud, &ca, VENDOR_CA_LABEL)?;
    // `aws iot update-ca-certificate --new-auto-registration-status ENABLE
    // --registration-config file://jitp.json`: JITP on for this CA.
    store.set_ca_auto_registration(&record.id, true, Some(config))?;
    record.auto_registration = true;
    record.registration_config = Some(config.clone());
    cloud.record(
        EventKind::Registry,
        "registry.ca_auto_registration",
        &record.id,
        format!(
            "{VENDOR_CA_LABEL} {}: auto-registration ENABLE with the JITP template",
            short_id(&record.id)
        ),
        json!({"caCertificateId": record.id, "roleArn": config.role_arn}),
    )?;
    *created = true;
    Ok(SigningCa {
        cert_pem: ca.cert_pem,
        key_pem: ca.key_pem,
        record,
    })
}

/// The Manufacturer CA, its key as `cr-ca-key-<id>`.
fn manufacturer_ca(cloud: &LocalCloud, created: &mut bool) -> CloudResult<SigningCa> {
    let store = cloud.store();
    if let Some(record) = find_ca(cloud, MANUFACTURER_CA_LABEL)? {
        let name = ca_key_parameter(&record.id);
        let key = store
            .get_parameter(&name, true)?
            .ok_or_else(|| missing_key(MANUFACTURER_CA_LABEL, &record.id, &name))?;
        return Ok(SigningCa {
            cert_pem: record.pem.clone(),
            key_pem: key.value,
            record,
        });
    }
    let profile = &cloud.fleet().manufacturer_ca;
    let ca = pki::create_ca(
        &profile.subject,
        profile.key_algorithm,
        profile.validity_days,
    )?;
    let name = ca_key_parameter(&ca.id);
    store.put_parameter(&name, &ca.key_pem, ParameterType::SecureString, true)?;
    cloud.record(
        EventKind::Registry,
        "params.put",
        &name,
        format!("parameter store: {name} (SecureString)"),
        json!({"name": name, "type": "SecureString"}),
    )?;
    let record = register_ca_certificate(cloud, &ca, MANUFACTURER_CA_LABEL)?;
    *created = true;
    Ok(SigningCa {
        cert_pem: ca.cert_pem,
        key_pem: ca.key_pem,
        record,
    })
}

/// `aws iot register-ca-certificate --verification-cert ... --set-as-active`:
/// proves possession of the CA key with a certificate whose CN is the
/// account's registration code, checked as AWS checks it.
fn register_ca_certificate(
    cloud: &LocalCloud,
    ca: &Issued,
    label: &str,
) -> CloudResult<CaCertificate> {
    let store = cloud.store();
    let code = store.registration_code()?;
    let verification = pki::create_verification_cert(&ca.cert_pem, &ca.key_pem, &code)?;

    let info = pki::parse_cert(&ca.cert_pem)?;
    if !info.is_ca {
        return Err(CloudError::Other(format!(
            "{label}: the certificate is not a CA (basicConstraints CA:FALSE); create it as a CA"
        )));
    }
    let proof = pki::parse_cert(&verification.cert_pem)?;
    if proof.subject.common_name.as_deref() != Some(code.as_str()) {
        return Err(CloudError::Other(format!(
            "{label}: the verification certificate's CN must be the registration code (`aws iot get-registration-code`)"
        )));
    }
    if !pki::verify_signed_by(&verification.cert_pem, &ca.cert_pem)? {
        return Err(CloudError::Other(format!(
            "{label}: the verification certificate is not signed by the CA's key"
        )));
    }
    let record = CaCertificate {
        id: info.id.clone(),
        pem: ca.cert_pem.clone(),
        status: CertificateStatus::Active,
        auto_registration: false,
        registration_config: None,
        label: label.to_string(),
        created_at: now_millis(),
    };
    store.register_ca(&record)?;
    cloud.record(
        EventKind::Registry,
        "registry.ca_registered",
        &record.id,
        format!("{label} {} registered, ACTIVE", short_id(&record.id)),
        json!({"caCertificateId": record.id, "label": label, "status": "ACTIVE"}),
    )?;
    Ok(record)
}

fn find_ca(cloud: &LocalCloud, label: &str) -> CloudResult<Option<CaCertificate>> {
    Ok(cloud
        .store()
        .list_cas()?
        .into_iter()
        .find(|ca| ca.label == label))
}

fn missing_key(label: &str, id: &str, parameter: &str) -> CloudError {
    CloudError::Other(format!(
        "{label} {id} is registered but its key parameter {parameter} is missing; run `jitpilot cleanup` then `jitpilot init` to start the fleet over"
    ))
}

/// Whitelists the serials that have no row yet, in one batch. A row still at
/// `CR_WHITELISTED` follows the current Manufacturer CA; rows that progressed
/// are left as they are. Returns how many rows were written.
fn whitelist(
    cloud: &LocalCloud,
    serials: &[String],
    manufacturer_ca_id: &str,
) -> CloudResult<usize> {
    let store = cloud.store();
    let mut rows = Vec::new();
    for serial in serials {
        let write = match store.get_item(DEVICE_TABLE, serial)? {
            None => true,
            Some(item) => {
                item.get(ATTR_CR_STATE).and_then(|v| v.as_str()) == Some(CR_WHITELISTED)
                    && item
                        .get(ATTR_MANUFACTURER_CA_CERT_ID)
                        .and_then(|v| v.as_str())
                        != Some(manufacturer_ca_id)
            }
        };
        if write {
            let mut row = serde_json::Map::new();
            row.insert(DEVICE_TABLE_KEY.into(), serial.as_str().into());
            row.insert(ATTR_CR_STATE.into(), CR_WHITELISTED.into());
            row.insert(
                ATTR_MANUFACTURER_CA_CERT_ID.into(),
                manufacturer_ca_id.into(),
            );
            rows.push(row);
        }
    }
    if rows.is_empty() {
        return Ok(0);
    }
    store.put_items(DEVICE_TABLE, &rows)?;
    // Each device's timeline starts here; one transaction for the lot.
    let log: Vec<_> = rows
        .iter()
        .map(|row| {
            let serial = row[DEVICE_TABLE_KEY]
                .as_str()
                .unwrap_or_default()
                .to_string();
            (
                "table.whitelisted".to_string(),
                serial,
                serde_json::Value::Object(row.clone()),
            )
        })
        .collect();
    store.append_events(&log)?;
    for (_, serial, row) in log {
        cloud.bus().emit_with(|| {
            CloudEvent::new(
                EventKind::Registry,
                format!("{DEVICE_TABLE}: {serial} {CR_WHITELISTED}"),
            )
            .client(serial)
            .detail(row)
        });
    }
    Ok(rows.len())
}

/// "The factory" for every serial, on every core: a device's credentials
/// are independent of the others' (key generation and signing are the
/// work), and the Vendor CA is loaded once for all of them. Returns how
/// many devices got a new cert.
fn factory(
    cloud: &LocalCloud,
    serials: &[String],
    vendor: &SigningCa,
    manufacturer: &SigningCa,
    endpoint_ca_pem: &str,
) -> CloudResult<usize> {
    let signer = pki::CaSigner::load(&vendor.cert_pem, &vendor.key_pem)?;
    let shared = SharedFiles::write(cloud, endpoint_ca_pem, &manufacturer.cert_pem)?;
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, serials.len().max(1));
    let chunk = serials.len().div_ceil(workers).max(1);
    let issue = |part: &[String]| -> CloudResult<usize> {
        let mut issued = 0;
        for serial in part {
            let new = factory_credentials(cloud, serial, vendor, &signer, &shared)?;
            issued += usize::from(new);
        }
        Ok(issued)
    };
    let issue = &issue;
    std::thread::scope(|scope| {
        let parts: Vec<_> = serials
            .chunks(chunk)
            .map(|part| scope.spawn(move || issue(part)))
            .collect();
        parts.into_iter().try_fold(0, |total, part| {
            let issued = part.join().map_err(|_| {
                CloudError::Other(
                    "a factory thread failed while issuing credentials; run `jitpilot init` again (it resumes)".into(),
                )
            })??;
            Ok(total + issued)
        })
    })
}

/// "The factory": the device's key and Vendor-CA-signed cert, unless it has
/// valid ones. Always refreshes what the device trusts. Returns true when it
/// issued a new cert.
fn factory_credentials(
    cloud: &LocalCloud,
    serial: &str,
    vendor: &SigningCa,
    signer: &pki::CaSigner,
    shared: &SharedFiles<'_>,
) -> CloudResult<bool> {
    let dir = cloud.data_dir().device_dir(serial);
    create_private_dir(&dir).map_err(other)?;
    let key_path = dir.join(VENDOR_KEY_FILE);
    let cert_path = dir.join(VENDOR_CERT_FILE);
    let mut issued = false;
    if !has_valid_credentials(&key_path, &cert_path, &vendor.cert_pem) {
        let profile = &cloud.fleet().device_cert;
        let device = signer.issue_device_cert(
            &cloud.fleet().device_subject(serial),
            profile.key_algorithm,
            profile.validity_days,
        )?;
        // Key first: a cert on disk always has its key beside it.
        write_atomically(&key_path, device.key_pem.as_bytes(), true).map_err(other)?;
        let chain = format!("{}{}", ensure_newline(&device.cert_pem), vendor.cert_pem);
        write_atomically(&cert_path, chain.as_bytes(), false).map_err(other)?;
        issued = true;
    }
    shared.root_ca.place(&dir.join(ROOT_CA_FILE))?;
    shared
        .manufacturer_ca
        .place(&dir.join(MANUFACTURER_CA_FILE))?;
    Ok(issued)
}

/// The files every device's folder holds alike (`root-ca.pem`,
/// `manufacturer-ca.pem`), written once into `<data-dir>/factory/` and
/// hard-linked into each device's folder: a fleet of 10,000
/// costs 20,000 fewer inodes, and allocating inodes is what `init` spends
/// its time on in the kernel (ext4's allocator slows down after many
/// recent deletes). The shared files are only ever replaced by a rename,
/// never written in place, so a link never sees a torn file; a device's
/// copy that differs is replaced the same way.
struct SharedFiles<'a> {
    root_ca: SharedFile<'a>,
    manufacturer_ca: SharedFile<'a>,
}

/// One shared file: its path in the devices folder and its text.
struct SharedFile<'a> {
    path: std::path::PathBuf,
    text: &'a str,
}

/// Where the shared files live: beside `devices/`, not in it (what lists
/// `devices/` finds device folders only). Removed by `cleanup`.
pub(crate) const SHARED_DIR: &str = "factory";

impl<'a> SharedFiles<'a> {
    fn write(
        cloud: &LocalCloud,
        endpoint_ca_pem: &'a str,
        manufacturer_ca_pem: &'a str,
    ) -> CloudResult<SharedFiles<'a>> {
        let dir = cloud.data_dir().root().join(SHARED_DIR);
        create_private_dir(&dir).map_err(other)?;
        let files = SharedFiles {
            root_ca: SharedFile {
                path: dir.join(ROOT_CA_FILE),
                text: endpoint_ca_pem,
            },
            manufacturer_ca: SharedFile {
                path: dir.join(MANUFACTURER_CA_FILE),
                text: manufacturer_ca_pem,
            },
        };
        write_if_changed(&files.root_ca.path, files.root_ca.text)?;
        write_if_changed(&files.manufacturer_ca.path, files.manufacturer_ca.text)?;
        Ok(files)
    }
}

impl SharedFile<'_> {
    /// Makes `path` hold the shared text: left alone when it does, else a
    /// hard link to the shared file put in place by a rename (a copy where
    /// the filesystem has no hard links).
    fn place(&self, path: &Path) -> CloudResult<()> {
        if std::fs::read_to_string(path).ok().as_deref() == Some(self.text) {
            return Ok(());
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.link-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let linked =
            std::fs::hard_link(&self.path, &tmp).and_then(|()| std::fs::rename(&tmp, path));
        if linked.is_err() {
            let _ = std::fs::remove_file(&tmp);
            return write_atomically(path, self.text.as_bytes(), false).map_err(other);
        }
        Ok(())
    }
}

fn write_if_changed(path: &Path, text: &str) -> CloudResult<()> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
        return Ok(());
    }
    write_atomically(path, text.as_bytes(), false).map_err(other)
}

fn ensure_newline(pem: &str) -> String {
    if pem.ends_with('\n') {
        pem.to_string()
    } else {
        format!("{pem}\n")
    }
}

fn other(e: impl std::fmt::Display) -> CloudError {
    CloudError::Other(e.to_string())
}
