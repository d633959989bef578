//! `status` and `cleanup` on AWS: everything the walkthrough created, read
//! back through the APIs, and the sample's `certs_etc.py --delete` — done
//! completely: things detached and deleted, certificates INACTIVE then
//! deleted, CAs, the key parameters, the table rows, the observer identity
//! and the local device folders.

use super::errors::{api, AwsResult};
use super::registry;
use super::{init, stack, table, AwsCloud};
use crate::cloud::control::factory;
use crate::cloud::control::plan::{self, FoundCa};
use crate::cloud::{
    CaSummary, CertSummary, CleanupReport, CloudEvent, CloudResult, EventKind, StackSummary,
    StatusReport,
};
use crate::rotation::wire::ca_key_parameter;
use crate::vocabulary::{DEVICE_TABLE, STACK_NAME};
use crate::vocabulary::{MANUFACTURER_CA_LABEL, VENDOR_KEY_PARAMETER};
use std::collections::BTreeMap;

/// How many recent stack events `status` shows.
const RECENT_STACK_EVENTS: usize = 20;

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
    let stack = match stack::describe(cloud).await? {
        None => None,
        Some(s) => {
            let mut events = stack::recent_events(cloud, None).await?;
            let skip = events.len().saturating_sub(RECENT_STACK_EVENTS);
            events.drain(..skip);
            Some(StackSummary {
                name: STACK_NAME.to_string(),
                status: stack::status_of(&s),
                resources: stack::resources(cloud).await?,
                events,
            })
        }
    };
    let mut cas = Vec::new();
    let mut certificates = Vec::new();
    let mut things: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for ca in registry::fleet_cas(cloud).await? {
        cas.push(ca_summary(cloud, &init::found_ca(&ca)).await?);
        for cert in registry::certificates_by_ca(cloud, &ca.id).await? {
            let cert_things = registry::principal_things(cloud, &cert.arn).await?;
            for thing in &cert_things {
                things
                    .entry(thing.clone())
                    .or_default()
                    .push(cert.id.clone());
            }
            certificates.push(CertSummary {
                common_name: common_name(cloud, &cert.id).await?,
                policies: registry::attached_policies(cloud, &cert.arn).await?,
                things: cert_things,
                id: cert.id,
                ca_id: Some(cert.ca_id),
                status: cert.status,
            });
        }
    }
    let mut policies = BTreeMap::new();
    for name in [
        crate::rotation::wire::IN_PROGRESS_POLICY,
        crate::rotation::wire::ROTATION_COMPLETE_POLICY,
        init::OBSERVER_POLICY,
    ] {
        if let Some(targets) = policy_targets(cloud, name).await? {
            policies.insert(name.to_string(), targets);
        }
    }
    // Refreshes the remembered iot:Data-ATS host; `--iot-endpoint` wins.
    let _ = cloud.data_ats_host().await;
    Ok(StatusReport {
        backend: "aws".into(),
        data_dir: Some(cloud.options().data_dir.clone()),
        endpoint: crate::cloud::Cloud::device_endpoint(cloud).map(|e| e.addr),
        stack,
        other_stacks: Vec::new(),
        cas,
        certificates,
        things,
        policies,
        parameters: parameters(cloud).await?,
        devices: table::scan(cloud, DEVICE_TABLE).await?,
    })
}

/// The certificate's CN (the serial), from its PEM.
async fn common_name(cloud: &AwsCloud, cert_id: &str) -> AwsResult<Option<String>> {
    let out = cloud
        .clients()
        .iot
        .describe_certificate()
        .certificate_id(cert_id)
        .send()
        .await
        .map_err(|e| api("DescribeCertificate", "iot:DescribeCertificate", e))?;
    Ok(out
        .certificate_description()
        .and_then(|d| d.certificate_pem())
        .and_then(|pem| crate::pki::parse_cert(pem).ok())
        .and_then(|info| info.subject.common_name))
}

/// Targets of a policy, `None` when the policy does not exist.
async fn policy_targets(cloud: &AwsCloud, policy: &str) -> AwsResult<Option<Vec<String>>> {
    let result = cloud
        .clients()
        .iot
        .list_targets_for_policy()
        .policy_name(policy)
        .send()
        .await;
    match result {
        Ok(out) => Ok(Some(out.targets.unwrap_or_default())),
        Err(e) => match api("ListTargetsForPolicy", "iot:ListTargetsForPolicy", e) {
            super::AwsError::Api { code, .. } if code == "ResourceNotFoundException" => Ok(None),
            other => Err(other),
        },
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

/// The sample's `certs_etc.py --delete`, complete and idempotent.
pub async fn cleanup(cloud: &AwsCloud) -> CloudResult<CleanupReport> {
    let mut report = CleanupReport::default();
    let iot = &cloud.clients().iot;
    for ca in registry::fleet_cas(cloud).await? {
        for cert in registry::certificates_by_ca(cloud, &ca.id).await? {
            report.things += retire_certificate(cloud, &cert.id, &cert.arn, true).await?;
            report.certificates += 1;
        }
        // A CA must be INACTIVE (and JITP off) before it can be deleted.
        iot.update_ca_certificate()
            .certificate_id(&ca.id)
            .new_status(aws_sdk_iot::types::CaCertificateStatus::Inactive)
            .new_auto_registration_status(aws_sdk_iot::types::AutoRegistrationStatus::Disable)
            .send()
            .await
            .map_err(|e| api("UpdateCACertificate", "iot:UpdateCACertificate", e))?;
        iot.delete_ca_certificate()
            .certificate_id(&ca.id)
            .send()
            .await
            .map_err(|e| api("DeleteCACertificate", "iot:DeleteCACertificate", e))?;
        report.cas += 1;
        if ca.label == MANUFACTURER_CA_LABEL
            && delete_parameter(cloud, &ca_key_parameter(&ca.id)).await?
        {
            report.parameters += 1;
        }
        cloud.emit(CloudEvent::new(
            EventKind::Registry,
            format!("{} {} deleted", ca.label, &ca.id[..ca.id.len().min(10)]),
        ));
    }
    if delete_parameter(cloud, VENDOR_KEY_PARAMETER).await? {
        report.parameters += 1;
    }
    delete_parameter(cloud, registry::VENDOR_CA_ID_PARAMETER).await?;
    init::delete_observer(cloud).await?;
    report.table_rows = table::delete_all(cloud, DEVICE_TABLE).await?;
    report.device_folders = factory::remove_device_folders(&cloud.options().data_dir)?;
    Ok(report)
}

/// Detaches a certificate from its things (deleting those things when
/// `delete_things`) and policies, sets it INACTIVE, deletes it. Returns how
/// many things were deleted.
pub async fn retire_certificate(
    cloud: &AwsCloud,
    cert_id: &str,
    cert_arn: &str,
    delete_things: bool,
) -> AwsResult<usize> {
    let iot = &cloud.clients().iot;
    let mut deleted_things = 0;
    for thing in registry::principal_things(cloud, cert_arn).await? {
        iot.detach_thing_principal()
            .thing_name(&thing)
            .principal(cert_arn)
            .send()
            .await
            .map_err(|e| api("DetachThingPrincipal", "iot:DetachThingPrincipal", e))?;
        if delete_things {
            match iot.delete_thing().thing_name(&thing).send().await {
                Ok(_) => deleted_things += 1,
                Err(e) => match api("DeleteThing", "iot:DeleteThing", e) {
                    super::AwsError::Api { code, .. } if code == "ResourceNotFoundException" => {}
                    other => return Err(other),
                },
            }
        }
    }
    for policy in registry::attached_policies(cloud, cert_arn).await? {
        iot.detach_policy()
            .policy_name(&policy)
            .target(cert_arn)
            .send()
            .await
            .map_err(|e| api("DetachPolicy", "iot:DetachPolicy", e))?;
    }
    iot.update_certificate()
        .certificate_id(cert_id)
        .new_status(aws_sdk_iot::types::CertificateStatus::Inactive)
        .send()
        .await
        .map_err(|e| api("UpdateCertificate", "iot:UpdateCertificate", e))?;
    iot.delete_certificate()
        .certificate_id(cert_id)
        .send()
        .await
        .map_err(|e| api("DeleteCertificate", "iot:DeleteCertificate", e))?;
    Ok(deleted_things)
}

/// Deletes a parameter; `false` when it was not there.
pub(super) async fn delete_parameter(cloud: &AwsCloud, name: &str) -> AwsResult<bool> {
    match cloud
        .clients()
        .ssm
        .delete_parameter()
        .name(name)
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(e) => match api("DeleteParameter", "ssm:DeleteParameter", e) {
            super::AwsError::Api { code, .. } if code == "ParameterNotFound" => Ok(false),
            other => Err(other),
        },
    }
}
