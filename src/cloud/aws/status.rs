//! `status` and `cleanup` on AWS: the control plane's plans
//! ([`crate::cloud::control::status`], [`crate::cloud::control::cleanup`])
//! carried out through the APIs. An account holds more than the
//! walkthrough, so only what the fleet's CAs issued is listed and retired
//! (`ListCertificatesByCA`), with the walkthrough's own policies and
//! parameters; `cleanup` ends with the observer identity and the Vendor
//! CA's id parameter, which only the AWS backend creates.

use super::errors::{api, AwsError, AwsResult};
use super::init::Control;
use super::{registry, stack, table, AwsCloud};
use crate::cloud::control::cleanup::{self, CleanupBackend};
use crate::cloud::control::plan::{self, FoundCa, FoundCert};
use crate::cloud::control::status::{self, StatusBackend};
use crate::cloud::{CaSummary, CleanupReport, CloudResult, StackSummary, StatusReport};
use crate::vocabulary::STACK_NAME;
use aws_sdk_iot::types::{AutoRegistrationStatus, CaCertificateStatus, CertificateStatus};
use std::collections::BTreeMap;

/// One CA as the walkthrough shows it (the control plane's summary), with
/// its certificates counted (`ListCertificatesByCA`).
pub async fn ca_summary(cloud: &AwsCloud, ca: &FoundCa) -> AwsResult<CaSummary> {
    let mut certificates = BTreeMap::new();
    for cert in registry::certificates_by_ca(cloud, &ca.id).await? {
        *certificates.entry(cert.status).or_insert(0u64) += 1;
    }
    Ok(plan::ca_summary(
        ca,
        certificates,
        plan::key_parameter(&ca.label, &ca.id),
    ))
}

/// Everything the walkthrough created, read back.
pub async fn status(cloud: &AwsCloud) -> CloudResult<StatusReport> {
    status::run(&Control(cloud)).await
}

/// The sample's `certs_etc.py --delete`, complete and idempotent.
pub async fn cleanup(cloud: &AwsCloud) -> CloudResult<CleanupReport> {
    cleanup::run(&Control(cloud)).await
}

/// `Ok(false)` for an answer saying the thing is not there.
fn found(result: Result<(), AwsError>) -> AwsResult<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(AwsError::Api { code, .. })
            if code == "ResourceNotFoundException" || code == "ParameterNotFound" =>
        {
            Ok(false)
        }
        Err(other) => Err(other),
    }
}

#[async_trait::async_trait]
impl StatusBackend for Control<'_> {
    fn backend(&self) -> &'static str {
        "aws"
    }

    /// Refreshes the remembered iot:Data-ATS host; `--iot-endpoint` wins.
    async fn endpoint(&self) -> Option<String> {
        let _ = self.0.data_ats_host().await;
        crate::cloud::Cloud::device_endpoint(self.0).map(|e| e.addr)
    }

    async fn stacks(
        &self,
        events: usize,
    ) -> CloudResult<(Option<StackSummary>, Vec<StackSummary>)> {
        let cloud = self.0;
        let Some(described) = stack::describe(cloud).await? else {
            return Ok((None, Vec::new()));
        };
        let mut recent = stack::recent_events(cloud, None).await?;
        recent.drain(..recent.len().saturating_sub(events));
        let summary = StackSummary {
            name: STACK_NAME.to_string(),
            status: stack::status_of(&described),
            resources: stack::resources(cloud).await?,
            events: recent,
        };
        Ok((Some(summary), Vec::new()))
    }

    /// What the fleet's CAs issued (`ListCertificatesByCA`).
    async fn certificates(&self, cas: &[FoundCa]) -> CloudResult<Vec<FoundCert>> {
        let mut certificates = Vec::new();
        for ca in cas {
            for cert in registry::certificates_by_ca(self.0, &ca.id).await? {
                certificates.push(FoundCert {
                    id: cert.id,
                    principal: cert.arn,
                    ca_id: Some(cert.ca_id),
                    status: cert.status,
                    pem: None,
                });
            }
        }
        Ok(certificates)
    }

    /// From the PEM `DescribeCertificate` returns.
    async fn common_name(&self, cert: &FoundCert) -> CloudResult<Option<String>> {
        let out = self
            .0
            .clients()
            .iot
            .describe_certificate()
            .certificate_id(&cert.id)
            .send()
            .await
            .map_err(|e| api("DescribeCertificate", "iot:DescribeCertificate", e))?;
        Ok(out
            .certificate_description()
            .and_then(|d| d.certificate_pem())
            .and_then(|pem| crate::pki::parse_cert(pem).ok())
            .and_then(|info| info.subject.common_name))
    }

    async fn principal_things(&self, cert: &FoundCert) -> CloudResult<Vec<String>> {
        Ok(registry::principal_things(self.0, &cert.principal).await?)
    }

    async fn attached_policies(&self, cert: &FoundCert) -> CloudResult<Vec<String>> {
        Ok(registry::attached_policies(self.0, &cert.principal).await?)
    }

    /// The rotation function's two policies and the observer's, with their
    /// targets (`ListTargetsForPolicy`), those that exist.
    async fn policies(&self) -> CloudResult<BTreeMap<String, Vec<String>>> {
        let mut policies = BTreeMap::new();
        for name in [
            crate::rotation::wire::IN_PROGRESS_POLICY,
            crate::rotation::wire::ROTATION_COMPLETE_POLICY,
            super::init::OBSERVER_POLICY,
        ] {
            let result = self
                .0
                .clients()
                .iot
                .list_targets_for_policy()
                .policy_name(name)
                .send()
                .await;
            match result {
                Ok(out) => {
                    policies.insert(name.to_string(), out.targets.unwrap_or_default());
                }
                Err(e) => match api("ListTargetsForPolicy", "iot:ListTargetsForPolicy", e) {
                    AwsError::Api { code, .. } if code == "ResourceNotFoundException" => {}
                    other => return Err(other.into()),
                },
            }
        }
        Ok(policies)
    }

    async fn parameters(&self) -> CloudResult<BTreeMap<String, String>> {
        Ok(parameters(self.0).await?)
    }
}

#[async_trait::async_trait]
impl CleanupBackend for Control<'_> {
    async fn detach_thing(&self, thing: &str, cert: &FoundCert) -> CloudResult<()> {
        self.0
            .clients()
            .iot
            .detach_thing_principal()
            .thing_name(thing)
            .principal(&cert.principal)
            .send()
            .await
            .map_err(|e| api("DetachThingPrincipal", "iot:DetachThingPrincipal", e))?;
        Ok(())
    }

    async fn delete_thing(&self, thing: &str) -> CloudResult<bool> {
        let result = self
            .0
            .clients()
            .iot
            .delete_thing()
            .thing_name(thing)
            .send()
            .await;
        Ok(found(
            result
                .map(drop)
                .map_err(|e| api("DeleteThing", "iot:DeleteThing", e)),
        )?)
    }

    async fn detach_policy(&self, policy: &str, cert: &FoundCert) -> CloudResult<()> {
        self.0
            .clients()
            .iot
            .detach_policy()
            .policy_name(policy)
            .target(&cert.principal)
            .send()
            .await
            .map_err(|e| api("DetachPolicy", "iot:DetachPolicy", e))?;
        Ok(())
    }

    async fn deactivate_certificate(&self, cert: &FoundCert) -> CloudResult<()> {
        self.0
            .clients()
            .iot
            .update_certificate()
            .certificate_id(&cert.id)
            .new_status(CertificateStatus::Inactive)
            .send()
            .await
            .map_err(|e| api("UpdateCertificate", "iot:UpdateCertificate", e))?;
        Ok(())
    }

    async fn delete_certificate(&self, cert: &FoundCert) -> CloudResult<bool> {
        let result = self
            .0
            .clients()
            .iot
            .delete_certificate()
            .certificate_id(&cert.id)
            .send()
            .await;
        Ok(found(result.map(drop).map_err(|e| {
            api("DeleteCertificate", "iot:DeleteCertificate", e)
        }))?)
    }

    /// A CA must be INACTIVE, with auto-registration off, to be deleted.
    async fn deactivate_ca(&self, ca: &FoundCa) -> CloudResult<()> {
        self.0
            .clients()
            .iot
            .update_ca_certificate()
            .certificate_id(&ca.id)
            .new_status(CaCertificateStatus::Inactive)
            .new_auto_registration_status(AutoRegistrationStatus::Disable)
            .send()
            .await
            .map_err(|e| api("UpdateCACertificate", "iot:UpdateCACertificate", e))?;
        Ok(())
    }

    async fn delete_ca(&self, ca: &FoundCa) -> CloudResult<bool> {
        let result = self
            .0
            .clients()
            .iot
            .delete_ca_certificate()
            .certificate_id(&ca.id)
            .send()
            .await;
        Ok(found(result.map(drop).map_err(|e| {
            api("DeleteCACertificate", "iot:DeleteCACertificate", e)
        }))?)
    }

    async fn registered_ca_ids(&self) -> CloudResult<Vec<String>> {
        Ok(registry::list_cas(self.0)
            .await?
            .into_iter()
            .map(|ca| ca.id)
            .collect())
    }

    async fn delete_rows(&self, serials: &[String]) -> CloudResult<usize> {
        Ok(table::delete_keys(self.0, crate::vocabulary::DEVICE_TABLE, serials).await?)
    }

    /// The Vendor CA's id parameter and the observer identity.
    async fn finish_cleanup(&self) -> CloudResult<()> {
        delete_parameter(self.0, registry::VENDOR_CA_ID_PARAMETER).await?;
        Ok(super::init::delete_observer(self.0).await?)
    }
}

/// The walkthrough's parameters (`cr-ca-key-*`, `/jitpilot/*`) with their type.
pub async fn parameters(cloud: &AwsCloud) -> AwsResult<BTreeMap<String, String>> {
    let listed = cloud
        .clients()
        .ssm
        .describe_parameters()
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| api("DescribeParameters", "ssm:DescribeParameters", e))?;
    Ok(listed
        .iter()
        .flat_map(|page| page.parameters())
        .filter_map(|p| {
            let name = p.name()?;
            (name.starts_with(crate::rotation::wire::CA_KEY_PARAMETER_PREFIX)
                || name.starts_with("/jitpilot/"))
            .then(|| {
                (
                    name.to_string(),
                    p.r#type()
                        .map(|t| t.as_str().to_string())
                        .unwrap_or_default(),
                )
            })
        })
        .collect())
}

/// Detaches a certificate from its things and policies, sets it INACTIVE,
/// deletes it (the things stay): how `init` replaces the observer's.
pub async fn retire_certificate(
    cloud: &AwsCloud,
    cert_id: &str,
    cert_arn: &str,
) -> CloudResult<()> {
    let control = Control(cloud);
    let cert = FoundCert {
        id: cert_id.to_string(),
        principal: cert_arn.to_string(),
        ca_id: None,
        status: "ACTIVE".into(),
        pem: None,
    };
    for thing in control.principal_things(&cert).await? {
        control.detach_thing(&thing, &cert).await?;
    }
    for policy in control.attached_policies(&cert).await? {
        control.detach_policy(&policy, &cert).await?;
    }
    control.deactivate_certificate(&cert).await?;
    control.delete_certificate(&cert).await?;
    Ok(())
}

/// Deletes a parameter; `false` when it was not there.
pub(super) async fn delete_parameter(cloud: &AwsCloud, name: &str) -> AwsResult<bool> {
    let result = cloud
        .clients()
        .ssm
        .delete_parameter()
        .name(name)
        .send()
        .await;
    found(
        result
            .map(drop)
            .map_err(|e| api("DeleteParameter", "ssm:DeleteParameter", e)),
    )
}
