//! The rotation function's view of the cloud (`rotation::traits`) over the
//! AWS APIs: what the Lambda runs with.
//!
//! The traits are synchronous — the function's decisions are pure and its
//! executor is plain code — so each call here runs its SDK future to
//! completion on a Tokio runtime handle. Callers invoke the function from a
//! blocking thread (`spawn_blocking`), never from a runtime worker.

use crate::errors::{api, AwsError};
use crate::items::{from_item, to_item};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_iot::operation::register_certificate::RegisterCertificateError;
use jitpilot_core::model::{Certificate, CertificateStatus};
use jitpilot_core::rotation::traits::{
    AuditSink, BackendError, BackendResult, DeviceTable, ParameterStore, Registry,
};
use jitpilot_core::rotation::{DeviceRow, Publisher};
use jitpilot_core::vocabulary::ATTR_SERIAL_NUMBER;
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use tokio::runtime::Handle;

fn block_on<F: Future>(handle: &Handle, future: F) -> F::Output {
    handle.block_on(future)
}

fn backend(err: AwsError) -> BackendError {
    BackendError(err.to_string())
}

fn not_found(err: &AwsError) -> bool {
    matches!(err, AwsError::Api { code, .. } if code == "ResourceNotFoundException")
}

/// The IoT registry over `aws-sdk-iot`.
pub struct AwsRegistry {
    iot: aws_sdk_iot::Client,
    handle: Handle,
    /// certificateId → ARN: attach/detach calls take ARNs, the function ids.
    arns: Mutex<HashMap<String, String>>,
}

impl AwsRegistry {
    /// A registry over `iot`, running calls on `handle`.
    pub fn new(iot: aws_sdk_iot::Client, handle: Handle) -> AwsRegistry {
        AwsRegistry {
            iot,
            handle,
            arns: Mutex::new(HashMap::new()),
        }
    }

    fn arn(&self, cert_id: &str) -> BackendResult<String> {
        if let Some(arn) = self.arns.lock().ok().and_then(|m| m.get(cert_id).cloned()) {
            return Ok(arn);
        }
        let out = block_on(
            &self.handle,
            self.iot
                .describe_certificate()
                .certificate_id(cert_id)
                .send(),
        )
        .map_err(|e| backend(api("DescribeCertificate", "iot:DescribeCertificate", e)))?;
        let arn = out
            .certificate_description()
            .and_then(|d| d.certificate_arn())
            .ok_or_else(|| BackendError(format!("certificate {cert_id} has no ARN")))?
            .to_string();
        if let Ok(mut map) = self.arns.lock() {
            map.insert(cert_id.to_string(), arn.clone());
        }
        Ok(arn)
    }
}

impl AwsRegistry {
    /// `ListAttachedPolicies` then `DetachPolicy` for each.
    fn detach_policies(&self, arn: &str) -> BackendResult<()> {
        let policies = block_on(
            &self.handle,
            self.iot
                .list_attached_policies()
                .target(arn)
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>(),
        )
        .map_err(|e| backend(api("ListAttachedPolicies", "iot:ListAttachedPolicies", e)))?;
        for name in policies.iter().filter_map(|p| p.policy_name()) {
            let result = block_on(
                &self.handle,
                self.iot
                    .detach_policy()
                    .policy_name(name)
                    .target(arn)
                    .send(),
            );
            if let Err(e) = result {
                let err = api("DetachPolicy", "iot:DetachPolicy", e);
                if !not_found(&err) {
                    return Err(backend(err));
                }
            }
        }
        Ok(())
    }
}

impl Registry for AwsRegistry {
    fn certificate(&self, cert_id: &str) -> BackendResult<Option<Certificate>> {
        let result = block_on(
            &self.handle,
            self.iot
                .describe_certificate()
                .certificate_id(cert_id)
                .send(),
        );
        let out = match result {
            Ok(out) => out,
            Err(e) => {
                let err = api("DescribeCertificate", "iot:DescribeCertificate", e);
                return if not_found(&err) {
                    Ok(None)
                } else {
                    Err(backend(err))
                };
            }
        };
        let Some(desc) = out.certificate_description() else {
            return Ok(None);
        };
        if let (Some(id), Some(arn)) = (desc.certificate_id(), desc.certificate_arn()) {
            if let Ok(mut map) = self.arns.lock() {
                map.insert(id.to_string(), arn.to_string());
            }
        }
        let status = desc
            .status()
            .and_then(|s| CertificateStatus::parse(s.as_str()))
            .unwrap_or(CertificateStatus::Inactive);
        Ok(Some(Certificate {
            id: desc.certificate_id().unwrap_or(cert_id).to_string(),
            ca_id: desc.ca_certificate_id().map(str::to_string),
            pem: desc.certificate_pem().unwrap_or_default().to_string(),
            status,
            created_at: desc
                .creation_date()
                .and_then(|t| t.to_millis().ok())
                .unwrap_or(0),
        }))
    }

    fn ca_certificate_pem(&self, ca_id: &str) -> BackendResult<Option<String>> {
        let result = block_on(
            &self.handle,
            self.iot
                .describe_ca_certificate()
                .certificate_id(ca_id)
                .send(),
        );
        match result {
            Ok(out) => Ok(out
                .certificate_description()
                .and_then(|d| d.certificate_pem())
                .map(str::to_string)),
            Err(e) => {
                let err = api("DescribeCACertificate", "iot:DescribeCACertificate", e);
                if not_found(&err) {
                    Ok(None)
                } else {
                    Err(backend(err))
                }
            }
        }
    }

    fn register_certificate(
        &self,
        cert_id: &str,
        pem: &str,
        ca_id: &str,
        status: CertificateStatus,
    ) -> BackendResult<String> {
        let ca_pem = self
            .ca_certificate_pem(ca_id)?
            .ok_or_else(|| BackendError(format!("CA {ca_id} is not registered")))?;
        let result = block_on(
            &self.handle,
            self.iot
                .register_certificate()
                .certificate_pem(pem)
                .ca_certificate_pem(ca_pem)
                .status(aws_sdk_iot::types::CertificateStatus::from(status.as_str()))
                .send(),
        );
        // The id is the one the API returns, never the computed `cert_id`:
        // AWS assigns the SHA-256 of the DER (the same), emulators may not.
        let (id, arn) = match result {
            Ok(out) => (
                out.certificate_id().map(str::to_string),
                out.certificate_arn().map(str::to_string),
            ),
            Err(e) => match e.as_service_error() {
                // A retried invocation registers the same cert again: the
                // error names the certificate already there.
                Some(RegisterCertificateError::ResourceAlreadyExistsException(exists)) => (
                    exists.resource_id().map(str::to_string),
                    exists.resource_arn().map(str::to_string),
                ),
                _ => {
                    return Err(backend(api(
                        "RegisterCertificate",
                        "iot:RegisterCertificate",
                        e,
                    )))
                }
            },
        };
        let id = id.ok_or_else(|| {
            BackendError(format!(
                "RegisterCertificate returned no certificateId for the certificate computed as {cert_id}"
            ))
        })?;
        if let Some(arn) = arn {
            if let Ok(mut map) = self.arns.lock() {
                map.insert(id.clone(), arn);
            }
        }
        Ok(id)
    }

    fn set_certificate_status(
        &self,
        cert_id: &str,
        status: CertificateStatus,
    ) -> BackendResult<()> {
        block_on(
            &self.handle,
            self.iot
                .update_certificate()
                .certificate_id(cert_id)
                .new_status(aws_sdk_iot::types::CertificateStatus::from(status.as_str()))
                .send(),
        )
        .map_err(|e| backend(api("UpdateCertificate", "iot:UpdateCertificate", e)))?;
        Ok(())
    }

    fn delete_certificate(&self, cert_id: &str) -> BackendResult<bool> {
        // The certificate's policies are detached first: forceDelete alone
        // would do on AWS, but an emulator (moto) keeps the attachment of a
        // deleted certificate and then fails every later delete.
        match self.arn(cert_id) {
            Ok(arn) => self.detach_policies(&arn)?,
            Err(_) if self.certificate(cert_id)?.is_none() => return Ok(false),
            Err(e) => return Err(e),
        }
        let result = block_on(
            &self.handle,
            // forceDelete: AWS refuses a certificate with policies otherwise
            // (things are detached before this).
            self.iot
                .delete_certificate()
                .certificate_id(cert_id)
                .force_delete(true)
                .send(),
        );
        match result {
            Ok(_) => Ok(true),
            Err(e) => {
                let err = api("DeleteCertificate", "iot:DeleteCertificate", e);
                if not_found(&err) {
                    Ok(false)
                } else {
                    Err(backend(err))
                }
            }
        }
    }

    fn attach_thing_principal(&self, thing: &str, cert_id: &str) -> BackendResult<()> {
        let arn = self.arn(cert_id)?;
        block_on(
            &self.handle,
            self.iot
                .attach_thing_principal()
                .thing_name(thing)
                .principal(arn)
                .send(),
        )
        .map_err(|e| backend(api("AttachThingPrincipal", "iot:AttachThingPrincipal", e)))?;
        Ok(())
    }

    fn detach_thing_principal(&self, thing: &str, cert_id: &str) -> BackendResult<()> {
        let arn = self.arn(cert_id)?;
        let result = block_on(
            &self.handle,
            self.iot
                .detach_thing_principal()
                .thing_name(thing)
                .principal(arn)
                .send(),
        );
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = api("DetachThingPrincipal", "iot:DetachThingPrincipal", e);
                if not_found(&err) {
                    Ok(())
                } else {
                    Err(backend(err))
                }
            }
        }
    }

    fn thing_principals(&self, thing: &str) -> BackendResult<Vec<String>> {
        let result = block_on(
            &self.handle,
            self.iot.list_thing_principals().thing_name(thing).send(),
        );
        match result {
            Ok(out) => Ok(out
                .principals()
                .iter()
                .map(|arn| arn.rsplit('/').next().unwrap_or(arn).to_string())
                .collect()),
            Err(e) => {
                let err = api("ListThingPrincipals", "iot:ListThingPrincipals", e);
                if not_found(&err) {
                    Ok(Vec::new())
                } else {
                    Err(backend(err))
                }
            }
        }
    }

    fn attach_policy(&self, policy: &str, cert_id: &str) -> BackendResult<()> {
        let arn = self.arn(cert_id)?;
        block_on(
            &self.handle,
            self.iot
                .attach_policy()
                .policy_name(policy)
                .target(arn)
                .send(),
        )
        .map_err(|e| backend(api("AttachPolicy", "iot:AttachPolicy", e)))?;
        Ok(())
    }
}

/// `CertRotationDevices` over DynamoDB (consistent reads: a retried request
/// must see what its original wrote).
pub struct AwsDeviceTable {
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    handle: Handle,
}

impl AwsDeviceTable {
    /// The table named `table` (the Lambda's `DEVICE_TABLE`).
    pub fn new(dynamodb: aws_sdk_dynamodb::Client, table: String, handle: Handle) -> Self {
        AwsDeviceTable {
            dynamodb,
            table,
            handle,
        }
    }
}

impl DeviceTable for AwsDeviceTable {
    fn get(&self, serial: &str) -> BackendResult<Option<DeviceRow>> {
        let out = block_on(
            &self.handle,
            self.dynamodb
                .get_item()
                .table_name(&self.table)
                .key(ATTR_SERIAL_NUMBER, AttributeValue::S(serial.to_string()))
                .consistent_read(true)
                .send(),
        )
        .map_err(|e| backend(api("GetItem", "dynamodb:GetItem", e)))?;
        Ok(out
            .item
            .as_ref()
            .map(|item| DeviceRow::from_item(from_item(item))))
    }

    fn put(&self, row: &DeviceRow) -> BackendResult<()> {
        block_on(
            &self.handle,
            self.dynamodb
                .put_item()
                .table_name(&self.table)
                .set_item(Some(to_item(row.item())))
                .send(),
        )
        .map_err(|e| backend(api("PutItem", "dynamodb:PutItem", e)))?;
        Ok(())
    }
}

/// The parameter store over SSM (`GetParameter --with-decryption`).
pub struct AwsParameterStore {
    ssm: aws_sdk_ssm::Client,
    handle: Handle,
}

impl AwsParameterStore {
    /// Parameters over `ssm`.
    pub fn new(ssm: aws_sdk_ssm::Client, handle: Handle) -> Self {
        AwsParameterStore { ssm, handle }
    }
}

impl ParameterStore for AwsParameterStore {
    fn secure_string(&self, name: &str) -> BackendResult<Option<String>> {
        let result = block_on(
            &self.handle,
            self.ssm
                .get_parameter()
                .name(name)
                .with_decryption(true)
                .send(),
        );
        match result {
            Ok(out) => Ok(out.parameter.and_then(|p| p.value)),
            Err(e) => match api("GetParameter", "ssm:GetParameter", e) {
                AwsError::Api { code, .. } if code == "ParameterNotFound" => Ok(None),
                other => Err(backend(other)),
            },
        }
    }
}

/// `iot-data:Publish` at QoS 1: how the function answers devices.
pub struct AwsPublisher {
    data: aws_sdk_iotdataplane::Client,
    handle: Handle,
}

impl AwsPublisher {
    /// Publishes through `data`.
    pub fn new(data: aws_sdk_iotdataplane::Client, handle: Handle) -> Self {
        AwsPublisher { data, handle }
    }
}

impl Publisher for AwsPublisher {
    fn publish(&self, topic: &str, payload: Vec<u8>) {
        let result = block_on(
            &self.handle,
            self.data
                .publish()
                .topic(topic)
                .qos(1)
                .payload(aws_sdk_iotdataplane::primitives::Blob::new(payload))
                .send(),
        );
        // The trait cannot fail: a lost answer is retried by the device
        // (every step is retry-safe), so it is logged, not raised.
        if let Err(e) = result {
            tracing::error!(
                topic,
                "iot-data Publish failed: {}",
                api("Publish", "iot:Publish", e)
            );
        }
    }
}

/// Decisions go to the Lambda's log (CloudWatch Logs), one JSON line each.
pub struct LogAudit;

impl AuditSink for LogAudit {
    fn record(&self, kind: &str, subject: &str, detail: &Value) {
        tracing::info!(kind, subject, detail = %detail, "rotation decision");
    }
}
