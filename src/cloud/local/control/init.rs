//! `init` on the local cloud: the control plane's steps
//! ([`crate::cloud::control::init`]) carried out on the store — the
//! registry, the parameter store and the device table of this data dir.

use super::{short_id, LocalCloud};
use crate::cloud::control::init::{self as plan_init, whitelisted_event, ControlBackend};
use crate::cloud::control::plan::FoundCa;
use crate::cloud::local::endpoint_ca;
use crate::cloud::local::LOCAL_ACCOUNT_ID;
use crate::cloud::{CaSummary, CloudError, CloudEvent, CloudResult, EventKind, InitReport};
use crate::fleet::Fleet;
use crate::model::{
    now_millis, CaCertificate, CertificateStatus, ParameterType, RegistrationConfig,
};
use crate::pki::{self, Issued};
use crate::rotation::wire::Item;
use crate::vocabulary::{DEVICE_TABLE, STACK_NAME};
use serde_json::json;
use std::path::Path;

/// The stack's role that AWS IoT assumes to apply the JITP template.
const PROVISIONING_ROLE: &str = "JitpProvisioningRole";

/// Runs `init` for `devices` devices on the store. Nothing here waits on
/// anything but the store and the disk, so the control plane's steps run
/// to completion on this thread.
pub(super) fn run(cloud: &LocalCloud, devices: usize) -> CloudResult<InitReport> {
    futures::executor::block_on(plan_init::run(cloud, devices))
}

#[async_trait::async_trait]
impl ControlBackend for LocalCloud {
    fn fleet(&self) -> &Fleet {
        LocalCloud::fleet(self)
    }

    fn data_dir(&self) -> &Path {
        LocalCloud::data_dir(self).root()
    }

    /// The stack's provisioning role, when the stack and its table exist.
    async fn provisioning_role(&self) -> CloudResult<String> {
        let store = self.store();
        let deployed = store
            .get_stack(STACK_NAME)?
            .is_some_and(|s| s.status == "CREATE_COMPLETE" || s.status == "UPDATE_COMPLETE");
        if !deployed || store.table_schema(DEVICE_TABLE)?.is_none() {
            return Err(CloudError::NotDeployed);
        }
        let resources = store.list_stack_resources(STACK_NAME)?;
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

    /// The endpoint's own CA (created once per data dir), also written
    /// where `jitpilot env` and outside clients find it.
    async fn device_roots(&self) -> CloudResult<String> {
        let endpoint = endpoint_ca::ensure(self.store())?;
        endpoint.write_pem(&LocalCloud::data_dir(self).endpoint_ca_path())?;
        Ok(endpoint.cert_pem)
    }

    async fn fleet_cas(&self) -> CloudResult<Vec<FoundCa>> {
        Ok(self.store().list_cas()?.iter().map(found_ca).collect())
    }

    async fn get_secure(&self, name: &str) -> CloudResult<Option<String>> {
        Ok(self.store().get_parameter(name, true)?.map(|p| p.value))
    }

    async fn put_secure(&self, name: &str, value: &str) -> CloudResult<()> {
        self.store()
            .put_parameter(name, value, ParameterType::SecureString, true)?;
        self.record(
            EventKind::Registry,
            "params.put",
            name,
            format!("parameter store: {name} (SecureString)"),
            json!({"name": name, "type": "SecureString"}),
        )
    }

    async fn delete_parameter(&self, name: &str) -> CloudResult<bool> {
        Ok(self.store().delete_parameter(name)?)
    }

    /// Proves possession of the CA key with a certificate whose CN is the
    /// account's registration code, checked as AWS checks it.
    async fn register_ca(
        &self,
        ca: &Issued,
        label: &str,
        jitp: Option<&RegistrationConfig>,
    ) -> CloudResult<String> {
        let store = self.store();
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
        self.record(
            EventKind::Registry,
            "registry.ca_registered",
            &record.id,
            format!("{label} {} registered, ACTIVE", short_id(&record.id)),
            json!({"caCertificateId": record.id, "label": label, "status": "ACTIVE"}),
        )?;
        if let Some(jitp) = jitp {
            self.enable_jitp(&record.id, jitp).await?;
        }
        Ok(record.id)
    }

    async fn enable_jitp(&self, ca_id: &str, jitp: &RegistrationConfig) -> CloudResult<()> {
        self.store()
            .set_ca_auto_registration(ca_id, true, Some(jitp))?;
        self.record(
            EventKind::Registry,
            "registry.ca_auto_registration",
            ca_id,
            format!(
                "{} {}: auto-registration ENABLE with the JITP template",
                crate::vocabulary::VENDOR_CA_LABEL,
                short_id(ca_id)
            ),
            json!({"caCertificateId": ca_id, "roleArn": jitp.role_arn}),
        )
    }

    /// No rows when the table is not there (the stack is not deployed).
    async fn device_rows(&self) -> CloudResult<Vec<Item>> {
        let store = self.store();
        if store.table_schema(DEVICE_TABLE)?.is_none() {
            return Ok(Vec::new());
        }
        Ok(store.scan(DEVICE_TABLE)?)
    }

    /// One transaction for the rows, one for their log entries.
    async fn put_rows(&self, rows: &[Item]) -> CloudResult<()> {
        let store = self.store();
        store.put_items(DEVICE_TABLE, rows)?;
        let log: Vec<_> = rows
            .iter()
            .map(|row| {
                let serial = row
                    .get(crate::rotation::wire::ATTR_SERIAL_NUMBER)
                    .and_then(|v| v.as_str())
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
        for row in rows {
            self.bus().emit_with(|| whitelisted_event(row));
        }
        Ok(())
    }

    async fn ca_summary(&self, ca: &FoundCa) -> CloudResult<CaSummary> {
        super::status::ca_summary(self, ca)
    }

    fn note(&self, event: CloudEvent, log_kind: &str, subject: &str) -> CloudResult<()> {
        self.record(event.kind, log_kind, subject, event.summary, event.detail)
    }
}

/// A registered CA as the control plane's plan reads it.
pub(super) fn found_ca(ca: &CaCertificate) -> FoundCa {
    FoundCa {
        id: ca.id.clone(),
        label: ca.label.clone(),
        pem: ca.pem.clone(),
        status: ca.status.as_str().to_string(),
        auto_registration: ca.auto_registration,
        registration: ca.registration_config.clone(),
    }
}
