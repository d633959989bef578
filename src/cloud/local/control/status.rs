//! Reading the walkthrough back (`status`), and undoing `init`
//! (`cleanup`, the sample's `certs_etc.py --delete`).

use super::{short_id, LocalCloud};
use crate::cloud::control::factory;
use crate::cloud::control::plan::{self, FoundCa};
use crate::cloud::{
    CaSummary, CertSummary, CleanupReport, CloudResult, EventKind, StackSummary, StatusReport,
};
use crate::model::CertificateStatus;
use crate::pki;
use crate::vocabulary::{DEVICE_TABLE, STACK_NAME};
use serde_json::json;
use std::collections::BTreeMap;

/// How many recent stack events `status` shows.
const STATUS_STACK_EVENTS: usize = 50;

/// A CA as `init` and `status` show it: the plan's summary, with the
/// certificates it issued counted and its key parameter when present.
pub fn ca_summary(cloud: &LocalCloud, ca: &FoundCa) -> CloudResult<CaSummary> {
    let store = cloud.store();
    let key_parameter = match plan::key_parameter(&ca.label, &ca.id) {
        Some(name) => store.get_parameter(&name, false)?.map(|p| p.name),
        None => None,
    };
    let certificates = store
        .count_certificates_by_status(&ca.id)?
        .into_iter()
        .map(|(status, n)| (status.as_str().to_string(), n))
        .collect();
    Ok(plan::ca_summary(ca, certificates, key_parameter))
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
        .map(|ca| ca_summary(cloud, &super::init::found_ca(ca)))
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
        if plan::is_ca_key_parameter(&parameter.name) && store.delete_parameter(&parameter.name)? {
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

    report.device_folders = factory::remove_device_folders(cloud.data_dir().root())?;
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
