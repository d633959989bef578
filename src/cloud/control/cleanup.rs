//! `cleanup`, once for both clouds: the sample's `certs_etc.py --delete`,
//! done completely and idempotently. In order: things detached from every
//! certificate of the walkthrough, then deleted; the certificates' policies
//! detached, each set INACTIVE and deleted; the CAs set INACTIVE (JITP off)
//! and deleted; the CA key parameters; the device table's rows; the device
//! folders; then what the cloud adds of its own (AWS: the observer
//! identity). The stack and its policies stay: that is `teardown`. Nothing
//! to delete is a success.
//!
//! [`run`] decides with [`plan`] what each step must do; a
//! [`CleanupBackend`] carries the calls out and tells the event stream.

use super::factory;
use super::plan::{self, short_id, FoundCa, FoundCert};
use super::status::{self, StatusBackend};
use crate::cloud::{CleanupReport, CloudEvent, CloudResult, EventKind};
use crate::rotation::wire::ATTR_SERIAL_NUMBER;
use crate::vocabulary::DEVICE_TABLE;
use serde_json::json;
use std::collections::BTreeSet;

/// What `cleanup` needs from a cloud beyond `status`'s calls.
#[async_trait::async_trait]
pub trait CleanupBackend: StatusBackend {
    async fn detach_thing(&self, thing: &str, cert: &FoundCert) -> CloudResult<()>;
    /// Deletes a thing; false when it was not there.
    async fn delete_thing(&self, thing: &str) -> CloudResult<bool>;
    async fn detach_policy(&self, policy: &str, cert: &FoundCert) -> CloudResult<()>;
    async fn deactivate_certificate(&self, cert: &FoundCert) -> CloudResult<()>;
    /// Deletes a certificate; false when it was not there.
    async fn delete_certificate(&self, cert: &FoundCert) -> CloudResult<bool>;
    /// INACTIVE with auto-registration off.
    async fn deactivate_ca(&self, ca: &FoundCa) -> CloudResult<()>;
    /// Deletes a CA; false when it was not there.
    async fn delete_ca(&self, ca: &FoundCa) -> CloudResult<bool>;
    /// The ids of every CA still registered (the fleet's or not).
    async fn registered_ca_ids(&self) -> CloudResult<Vec<String>>;
    /// Deletes the device table's rows for these serials; how many were
    /// there.
    async fn delete_rows(&self, serials: &[String]) -> CloudResult<usize>;
    /// What the cloud adds of its own to undo (AWS: the observer identity).
    async fn finish_cleanup(&self) -> CloudResult<()> {
        Ok(())
    }
}

/// The sample's `certs_etc.py --delete`, complete and idempotent.
pub async fn run(cloud: &dyn CleanupBackend) -> CloudResult<CleanupReport> {
    let mut report = CleanupReport::default();
    let listed = status::list(cloud).await?;

    // Each thing once, by name, however many certificates it held.
    let mut things = BTreeSet::new();
    for (cert, cert_things) in &listed.certificates {
        for thing in cert_things {
            cloud.detach_thing(thing, cert).await?;
            things.insert(thing.clone());
        }
    }
    things.extend(cloud.other_things().await?);
    for thing in &things {
        if cloud.delete_thing(thing).await? {
            report.things += 1;
            note(
                cloud,
                format!("thing {thing} deleted"),
                json!({"thingName": thing}),
                "registry.thing_deleted",
                thing,
            )?;
        }
    }

    for (cert, _) in &listed.certificates {
        for policy in cloud.attached_policies(cert).await? {
            cloud.detach_policy(&policy, cert).await?;
        }
        if plan::needs_deactivation(&cert.status) {
            cloud.deactivate_certificate(cert).await?;
        }
        if cloud.delete_certificate(cert).await? {
            report.certificates += 1;
            note(
                cloud,
                format!("certificate {} INACTIVE, deleted", short_id(&cert.id)),
                json!({"certificateId": cert.id}),
                "registry.certificate_deleted",
                &cert.id,
            )?;
        }
    }

    for ca in &listed.cas {
        if plan::ca_needs_deactivation(ca) {
            cloud.deactivate_ca(ca).await?;
        }
        if cloud.delete_ca(ca).await? {
            report.cas += 1;
            note(
                cloud,
                format!("{} {} INACTIVE, deleted", ca.label, short_id(&ca.id)),
                json!({"caCertificateId": ca.id, "label": ca.label}),
                "registry.ca_deleted",
                &ca.id,
            )?;
        }
    }

    let listed_parameters = cloud.parameters().await?;
    let still_registered = cloud.registered_ca_ids().await?;
    for name in plan::parameters_to_delete(&listed.cas, listed_parameters.keys(), &still_registered)
    {
        if cloud.delete_parameter(&name).await? {
            report.parameters += 1;
            note(
                cloud,
                format!("parameter store: {name} deleted"),
                json!({"name": name}),
                "params.deleted",
                &name,
            )?;
        }
    }

    let serials: Vec<String> = cloud
        .device_rows()
        .await?
        .iter()
        .filter_map(|row| row.get(ATTR_SERIAL_NUMBER)?.as_str().map(str::to_string))
        .collect();
    if !serials.is_empty() {
        report.table_rows = cloud.delete_rows(&serials).await?;
    }
    if report.table_rows > 0 {
        note(
            cloud,
            format!("{DEVICE_TABLE}: {} row(s) deleted", report.table_rows),
            json!({"rows": report.table_rows}),
            "table.rows_deleted",
            DEVICE_TABLE,
        )?;
    }

    report.device_folders = factory::remove_device_folders(cloud.data_dir())?;
    if report.device_folders > 0 {
        note(
            cloud,
            format!("{} device folder(s) deleted", report.device_folders),
            json!({"folders": report.device_folders}),
            "devices.deleted",
            "fleet",
        )?;
    }
    cloud.finish_cleanup().await?;
    Ok(report)
}

/// One registry event: on the stream, and in the local cloud's event log.
fn note(
    cloud: &dyn CleanupBackend,
    summary: String,
    detail: serde_json::Value,
    log_kind: &str,
    subject: &str,
) -> CloudResult<()> {
    cloud.note(
        CloudEvent::new(EventKind::Registry, summary).detail(detail),
        log_kind,
        subject,
    )
}
