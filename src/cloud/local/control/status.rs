//! Reading the walkthrough back (`status`), and undoing `init`
//! (`cleanup`, the sample's `certs_etc.py --delete`).

use super::{short_id, LocalCloud};
use crate::cloud::{
    CaSummary, CertSummary, CleanupReport, CloudError, CloudResult, EventKind, StackSummary,
    StatusReport,
};
use crate::model::{CaCertificate, CertificateStatus};
use crate::pki::{self, Subject};
use crate::vocabulary::{
    ca_key_parameter, CA_KEY_PARAMETER_PREFIX, VENDOR_CA_LABEL, VENDOR_KEY_PARAMETER,
};
use crate::vocabulary::{DEVICE_TABLE, STACK_NAME};
use serde_json::json;
use std::collections::BTreeMap;

/// How many recent stack events `status` shows.
const STATUS_STACK_EVENTS: usize = 50;

/// `C=US, O=..., CN=...`: a subject on one line, in X.509's order.
pub fn subject_line(subject: &Subject) -> String {
    [
        ("C", &subject.country),
        ("ST", &subject.state),
        ("L", &subject.locality),
        ("O", &subject.organization),
        ("OU", &subject.organizational_unit),
        ("CN", &subject.common_name),
        ("serialNumber", &subject.serial_number),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
    .collect::<Vec<_>>()
    .join(", ")
}

/// One line describing a JITP template: what it provisions.
fn template_line(template_body: &str, role_arn: &str) -> String {
    let resources = serde_json::from_str::<serde_json::Value>(template_body)
        .ok()
        .and_then(|t| t.get("Resources").and_then(|r| r.as_object()).cloned())
        .unwrap_or_default();
    let parts: Vec<String> = resources
        .values()
        .map(|r| {
            let kind = r
                .get("Type")
                .and_then(|t| t.as_str())
                .unwrap_or("?")
                .trim_start_matches("AWS::IoT::");
            let props = r.get("Properties");
            let detail = props
                .and_then(|p| p.get("PolicyName").or_else(|| p.get("Status")))
                .and_then(|v| v.as_str());
            match detail {
                Some(d) => format!("{kind} {d}"),
                None => kind.to_string(),
            }
        })
        .collect();
    format!("JITP: {} (role {role_arn})", parts.join(", "))
}

/// A CA as `init` and `status` show it.
pub fn ca_summary(cloud: &LocalCloud, ca: &CaCertificate) -> CloudResult<CaSummary> {
    let store = cloud.store();
    let info = pki::parse_cert(&ca.pem).ok();
    let key_parameter = if ca.label == VENDOR_CA_LABEL {
        VENDOR_KEY_PARAMETER.to_string()
    } else {
        ca_key_parameter(&ca.id)
    };
    let key_parameter = store.get_parameter(&key_parameter, false)?.map(|p| p.name);
    let certificates = store
        .count_certificates_by_status(&ca.id)?
        .into_iter()
        .map(|(status, n)| (status.as_str().to_string(), n))
        .collect();
    Ok(CaSummary {
        id: ca.id.clone(),
        label: ca.label.clone(),
        subject: info
            .as_ref()
            .map(|i| subject_line(&i.subject))
            .unwrap_or_else(|| "(unreadable certificate)".into()),
        status: ca.status.as_str().to_string(),
        auto_registration: ca.auto_registration,
        jitp_template: ca
            .registration_config
            .as_ref()
            .map(|c| template_line(&c.template_body, &c.role_arn)),
        not_before: info.as_ref().map_or(0, |i| i.not_before),
        not_after: info.as_ref().map_or(0, |i| i.not_after),
        key_parameter,
        certificates,
    })
}

pub(super) fn status(cloud: &LocalCloud) -> CloudResult<StatusReport> {
    let store = cloud.store();
    let stack = match store.get_stack(STACK_NAME)? {
        Some(stack) => Some(StackSummary {
            name: stack.name,
            status: stack.status,
            resources: store.list_stack_resources(STACK_NAME)?,
            events: store.list_stack_events(STACK_NAME, STATUS_STACK_EVENTS)?,
        }),
        None => None,
    };
    let mut other_stacks = Vec::new();
    for other in store.list_stacks()? {
        if other.name != STACK_NAME {
            other_stacks.push(StackSummary {
                resources: store.list_stack_resources(&other.name)?,
                events: store.list_stack_events(&other.name, STATUS_STACK_EVENTS)?,
                name: other.name,
                status: other.status,
            });
        }
    }
    let cas = store
        .list_cas()?
        .iter()
        .map(|ca| ca_summary(cloud, ca))
        .collect::<CloudResult<Vec<_>>>()?;
    let mut certificates = Vec::new();
    for cert in store.list_certificates()? {
        certificates.push(CertSummary {
            common_name: pki::parse_cert(&cert.pem)
                .ok()
                .and_then(|i| i.subject.common_name),
            things: store.list_principal_things(&cert.id)?,
            policies: store
                .list_attached_policies(&cert.id)?
                .into_iter()
                .map(|p| p.name)
                .collect(),
            status: cert.status.as_str().to_string(),
            ca_id: cert.ca_id,
            id: cert.id,
        });
    }
    let mut things = BTreeMap::new();
    for thing in store.list_things()? {
        let principals = store.list_thing_principals(&thing.name)?;
        things.insert(thing.name, principals);
    }
    let mut policies = BTreeMap::new();
    for policy in store.list_policies()? {
        let targets = store.list_policy_targets(&policy.name)?;
        policies.insert(policy.name, targets);
    }
    let parameters = store
        .list_parameters()?
        .into_iter()
        .map(|p| (p.name, p.kind.as_str().to_string()))
        .collect();
    let devices = if store.describe_table(DEVICE_TABLE)?.is_some() {
        store.scan(DEVICE_TABLE)?
    } else {
        Vec::new()
    };
    Ok(StatusReport {
        backend: "local".into(),
        data_dir: Some(cloud.data_dir().root().to_path_buf()),
        endpoint: crate::cloud::Cloud::device_endpoint(cloud).map(|e| e.addr),
        stack,
        other_stacks,
        cas,
        certificates,
        things,
        policies,
        parameters,
        devices,
    })
}

/// The sample's `certs_etc.py --delete`, over everything `init` and the
/// devices created: things (detached first), certificates (policies
/// detached, INACTIVE, deleted), CAs (INACTIVE, deleted), the CA key
/// parameters, the device table's rows, the device folders. The stack and
/// its policies stay (that is `teardown`). Nothing to delete is a success.
pub(super) fn cleanup(cloud: &LocalCloud) -> CloudResult<CleanupReport> {
    let store = cloud.store();
    let mut report = CleanupReport::default();

    for thing in store.list_things()? {
        for principal in store.list_thing_principals(&thing.name)? {
            store.detach_thing_principal(&thing.name, &principal)?;
        }
        if store.delete_thing(&thing.name)? {
            report.things += 1;
            cloud.record(
                EventKind::Registry,
                "registry.thing_deleted",
                &thing.name,
                format!("thing {} deleted", thing.name),
                json!({"thingName": thing.name}),
            )?;
        }
    }

    for cert in store.list_certificates()? {
        for policy in store.list_attached_policies(&cert.id)? {
            store.detach_policy(&policy.name, &cert.id)?;
        }
        if cert.status != CertificateStatus::Inactive && cert.status != CertificateStatus::Revoked {
            store.set_certificate_status(&cert.id, CertificateStatus::Inactive)?;
        }
        if store.delete_certificate(&cert.id)? {
            report.certificates += 1;
            cloud.record(
                EventKind::Registry,
                "registry.certificate_deleted",
                &cert.id,
                format!("certificate {} INACTIVE, deleted", short_id(&cert.id)),
                json!({"certificateId": cert.id}),
            )?;
        }
    }

    for ca in store.list_cas()? {
        if ca.status != CertificateStatus::Inactive {
            store.set_ca_status(&ca.id, CertificateStatus::Inactive)?;
        }
        if store.delete_ca(&ca.id)? {
            report.cas += 1;
            cloud.record(
                EventKind::Registry,
                "registry.ca_deleted",
                &ca.id,
                format!("{} {} INACTIVE, deleted", ca.label, short_id(&ca.id)),
                json!({"caCertificateId": ca.id, "label": ca.label}),
            )?;
        }
    }

    for parameter in store.list_parameters()? {
        let is_ca_key = parameter.name == VENDOR_KEY_PARAMETER
            || parameter.name.starts_with(CA_KEY_PARAMETER_PREFIX);
        if is_ca_key && store.delete_parameter(&parameter.name)? {
            report.parameters += 1;
            cloud.record(
                EventKind::Registry,
                "params.deleted",
                &parameter.name,
                format!("parameter store: {} deleted", parameter.name),
                json!({"name": parameter.name}),
            )?;
        }
    }

    if store.describe_table(DEVICE_TABLE)?.is_some() {
        for item in store.scan(DEVICE_TABLE)? {
            let Some(serial) = item
                .get(crate::vocabulary::DEVICE_TABLE_KEY)
                .and_then(|v| v.as_str())
            else {
                continue;
            };
            if store.delete_item(DEVICE_TABLE, serial)? {
                report.table_rows += 1;
            }
        }
        if report.table_rows > 0 {
            cloud.record(
                EventKind::Registry,
                "table.rows_deleted",
                DEVICE_TABLE,
                format!("{DEVICE_TABLE}: {} row(s) deleted", report.table_rows),
                json!({"rows": report.table_rows}),
            )?;
        }
    }

    let devices_dir = cloud.data_dir().devices_dir();
    if let Ok(entries) = std::fs::read_dir(&devices_dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path).map_err(|e| {
                    CloudError::Other(format!(
                        "cannot delete the device folder {}: {e}; delete it by hand and run `jitpilot cleanup` again",
                        path.display()
                    ))
                })?;
                report.device_folders += 1;
            }
        }
        let _ = std::fs::remove_dir(&devices_dir);
        // The files init hard-links into every device folder.
        let _ = std::fs::remove_dir_all(cloud.data_dir().root().join(super::init::SHARED_DIR));
    }
    if report.device_folders > 0 {
        cloud.record(
            EventKind::Registry,
            "devices.deleted",
            "fleet",
            format!("{} device folder(s) deleted", report.device_folders),
            json!({"folders": report.device_folders}),
        )?;
    }
    Ok(report)
}
