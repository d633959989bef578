//! `init` on AWS: the control plane's steps ([`crate::cloud::control::init`])
//! carried out through the APIs — `GetRegistrationCode` and
//! `RegisterCACertificate --set-as-active` (with `--allow-auto-registration
//! --registration-config` for the Vendor CA: the JITP template and the
//! stack's `JitpProvisioningRoleArn`), SSM SecureStrings for the CA keys,
//! `BatchWriteItem` for the whitelist. Devices trust Amazon's root CAs for
//! the `iot:Data-ATS` endpoint (plus the CA of `--iot-root-ca` when given:
//! jitpilot's local cloud, a custom domain). Last, what only AWS needs: the
//! observer identity, a certificate and a least-privilege policy
//! (subscribe/receive `$aws/events/*` and `/cert-rotation/*` only) with
//! which the TUI's traffic pane subscribes.

use super::errors::{api, AwsError, AwsResult};
use super::registry::{self, RegisteredCa};
use super::{stack, status, table, AwsCloud, AMAZON_ROOT_CAS};
use crate::cloud::control::factory::write_if_changed;
use crate::cloud::control::init::{whitelisted_event, ControlBackend};
use crate::cloud::control::plan::{short_id, FoundCa};
use crate::cloud::{CaSummary, CloudError, CloudEvent, CloudResult, EventKind, InitReport};
use crate::datadir::{create_private_dir, write_atomically};
use crate::fleet::Fleet;
use crate::model::RegistrationConfig;
use crate::pki::{self, Issued};
use crate::rotation::wire::Item;
use crate::vocabulary::DEVICE_TABLE;
use crate::vocabulary::{ROOT_CA_FILE, VENDOR_CA_LABEL};
use aws_sdk_iot::types::AutoRegistrationStatus;
use aws_sdk_ssm::types::ParameterType;
use std::path::{Path, PathBuf};

/// The observer's policy: subscribe and receive only.
pub const OBSERVER_POLICY: &str = "JitpilotObserverPolicy";
/// The observer's MQTT clientId prefix (the policy allows `<prefix>*`).
pub const OBSERVER_CLIENT_PREFIX: &str = "jitpilot-observer-";

/// Runs init for `devices` devices (the sample's serial first).
pub async fn run(cloud: &AwsCloud, devices: usize) -> CloudResult<InitReport> {
    crate::cloud::control::init::run(&Control(cloud), devices).await
}

/// The control plane's calls, through the SDK.
pub(super) struct Control<'a>(pub(super) &'a AwsCloud);

/// A registered CA as the control plane's plan reads it.
pub(super) fn found_ca(ca: &RegisteredCa) -> FoundCa {
    FoundCa {
        id: ca.id.clone(),
        label: ca.label.to_string(),
        pem: ca.pem.clone(),
        status: ca.status.clone(),
        auto_registration: ca.auto_registration,
        registration: ca.template_body.as_ref().map(|body| RegistrationConfig {
            template_body: body.clone(),
            role_arn: ca.role_arn.clone().unwrap_or_default(),
        }),
    }
}

#[async_trait::async_trait]
impl ControlBackend for Control<'_> {
    fn fleet(&self) -> &Fleet {
        self.0.fleet()
    }

    fn data_dir(&self) -> &Path {
        &self.0.options().data_dir
    }

    /// The stack's `JitpProvisioningRoleArn` output.
    async fn provisioning_role(&self) -> CloudResult<String> {
        let stack = stack::describe(self.0).await?;
        let Some(stack) = stack.filter(|s| stack::is_deployed(&stack::status_of(s))) else {
            return Err(CloudError::NotDeployed);
        };
        stack::output(&stack, stack::PROVISIONING_ROLE_OUTPUT).ok_or_else(|| {
            CloudError::Template(format!(
                "the stack has no output {}; run `jitpilot deploy` again",
                stack::PROVISIONING_ROLE_OUTPUT
            ))
        })
    }

    /// Amazon's roots (and `--iot-root-ca`), also written beside the data
    /// dir's AWS state; the account's `iot:Data-ATS` host is remembered.
    async fn device_roots(&self) -> CloudResult<String> {
        let cloud = self.0;
        let roots = cloud.trusted_roots()?;
        create_private_dir(&cloud.local_dir()).map_err(other)?;
        write_if_changed(&cloud.root_ca_path(), &roots)?;
        if let Err(e) = cloud.data_ats_host().await {
            tracing::warn!("iot:Data-ATS endpoint unknown for now: {e}");
        }
        Ok(roots)
    }

    /// A `root-ca.pem` that does not start with Amazon's roots was put there
    /// by its user (a custom domain may chain to another CA): init must not
    /// undo it. Init's own files are brought up to date (e.g. once
    /// `--iot-root-ca` names the local cloud's endpoint CA).
    fn keep_device_roots(&self, current: &str) -> bool {
        !written_by_init(current)
    }

    async fn fleet_cas(&self) -> CloudResult<Vec<FoundCa>> {
        Ok(registry::fleet_cas(self.0)
            .await?
            .iter()
            .map(found_ca)
            .collect())
    }

    async fn get_secure(&self, name: &str) -> CloudResult<Option<String>> {
        Ok(get_secure(self.0, name).await?)
    }

    /// `PutParameter --type SecureString --overwrite` (encrypted with the
    /// account's default `aws/ssm` KMS key).
    async fn put_secure(&self, name: &str, value: &str) -> CloudResult<()> {
        Ok(put_parameter(self.0, name, value, ParameterType::SecureString).await?)
    }

    async fn delete_parameter(&self, name: &str) -> CloudResult<bool> {
        Ok(status::delete_parameter(self.0, name).await?)
    }

    /// `GetRegistrationCode` → verification cert → `RegisterCACertificate`.
    /// The Vendor CA's id goes to the parameter store: with the
    /// `cr-ca-key-<id>` names, that is how jitpilot finds its CAs again.
    async fn register_ca(
        &self,
        ca: &Issued,
        label: &str,
        jitp: Option<&RegistrationConfig>,
    ) -> CloudResult<String> {
        let cloud = self.0;
        let id = register_ca(cloud, ca, jitp).await?;
        if label == VENDOR_CA_LABEL {
            put_parameter(
                cloud,
                registry::VENDOR_CA_ID_PARAMETER,
                &id,
                ParameterType::String,
            )
            .await?;
        }
        let jitp = if jitp.is_some() {
            ", auto-registration ENABLE with the JITP template"
        } else {
            ""
        };
        cloud.emit(CloudEvent::new(
            EventKind::Registry,
            format!("{label} {} registered, ACTIVE{jitp}", short_id(&id)),
        ));
        Ok(id)
    }

    async fn enable_jitp(&self, ca_id: &str, jitp: &RegistrationConfig) -> CloudResult<()> {
        self.0
            .clients()
            .iot
            .update_ca_certificate()
            .certificate_id(ca_id)
            .new_auto_registration_status(AutoRegistrationStatus::Enable)
            .registration_config(registration_config(jitp))
            .send()
            .await
            .map_err(|e| api("UpdateCACertificate", "iot:UpdateCACertificate", e))?;
        Ok(())
    }

    async fn device_rows(&self) -> CloudResult<Vec<Item>> {
        Ok(table::scan(self.0, DEVICE_TABLE).await?)
    }

    async fn put_rows(&self, rows: &[Item]) -> CloudResult<()> {
        table::put_all(self.0, DEVICE_TABLE, rows).await?;
        for row in rows {
            self.0.emit(whitelisted_event(row));
        }
        Ok(())
    }

    /// The observer identity the TUI's traffic pane subscribes with.
    async fn finish(&self, roots: &str) -> CloudResult<bool> {
        Ok(observer(self.0, roots).await?)
    }

    async fn ca_summary(&self, ca: &FoundCa) -> CloudResult<CaSummary> {
        Ok(status::ca_summary(self.0, ca).await?)
    }

    fn note(&self, event: CloudEvent, _log_kind: &str, _subject: &str) -> CloudResult<()> {
        self.0.emit(event);
        Ok(())
    }
}

fn registration_config(jitp: &RegistrationConfig) -> aws_sdk_iot::types::RegistrationConfig {
    aws_sdk_iot::types::RegistrationConfig::builder()
        .template_body(&jitp.template_body)
        .role_arn(&jitp.role_arn)
        .build()
}

/// `GetRegistrationCode` → verification cert → `RegisterCACertificate`
/// (ACTIVE; with auto-registration and the JITP config when given).
async fn register_ca(
    cloud: &AwsCloud,
    ca: &Issued,
    jitp: Option<&RegistrationConfig>,
) -> AwsResult<String> {
    let iot = &cloud.clients().iot;
    let code = iot
        .get_registration_code()
        .send()
        .await
        .map_err(|e| api("GetRegistrationCode", "iot:GetRegistrationCode", e))?
        .registration_code
        .ok_or_else(|| AwsError::Other("GetRegistrationCode returned no code".into()))?;
    let proof = pki::create_verification_cert(&ca.cert_pem, &ca.key_pem, &code).map_err(other)?;
    let out = iot
        .register_ca_certificate()
        .ca_certificate(&ca.cert_pem)
        .verification_certificate(&proof.cert_pem)
        .set_as_active(true)
        .allow_auto_registration(jitp.is_some())
        .set_registration_config(jitp.map(registration_config))
        .send()
        .await
        .map_err(|e| api("RegisterCACertificate", "iot:RegisterCACertificate", e))?;
    out.certificate_id
        .ok_or_else(|| AwsError::Other("RegisterCACertificate returned no id".into()))
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
        if active && dir.join("key.pem").is_file() && dir.join("cert.pem").is_file() {
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
    write_atomically(&dir.join("key.pem"), key.as_bytes(), true).map_err(other)?;
    write_atomically(&dir.join("cert.pem"), pem.as_bytes(), false).map_err(other)?;
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
pub async fn delete_observer(cloud: &AwsCloud) -> CloudResult<()> {
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
        status::retire_certificate(cloud, &id, &arn).await?;
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
            other => return Err(other.into()),
        },
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| {
            CloudError::Other(format!(
                "cannot remove {}: {e}; remove it by hand",
                dir.display()
            ))
        })?;
    }
    Ok(())
}

/// True when a `root-ca.pem` holds what init writes (Amazon's roots
/// first), so init may bring it up to date.
fn written_by_init(current: &str) -> bool {
    current.trim_start().starts_with(AMAZON_ROOT_CAS.trim())
}

/// Writes `roots` to a `root-ca.pem` unless its user put something else there.
fn write_roots(path: &Path, roots: &str) -> AwsResult<()> {
    let keep = std::fs::read_to_string(path).is_ok_and(|current| !written_by_init(&current));
    if keep {
        return Ok(());
    }
    write_if_changed(path, roots).map_err(|e| AwsError::Other(e.to_string()))
}

fn other(e: impl std::fmt::Display) -> AwsError {
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
