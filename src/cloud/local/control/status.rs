//! `status` and `cleanup` on the local cloud: the control plane's plans
//! ([`crate::cloud::control::status`], [`crate::cloud::control::cleanup`])
//! carried out on the store. The store holds nothing but the walkthrough,
//! so every certificate, thing, policy, parameter and stack in it is listed
//! (and every certificate and thing retired by `cleanup`).

use super::LocalCloud;
use crate::cloud::control::cleanup::{self, CleanupBackend};
use crate::cloud::control::plan::{self, FoundCa, FoundCert};
use crate::cloud::control::status::{self, StatusBackend};
use crate::cloud::{CaSummary, CleanupReport, CloudResult, StackSummary, StatusReport};
use crate::model::CertificateStatus;
use crate::pki;
use crate::vocabulary::{DEVICE_TABLE, STACK_NAME};
use std::collections::BTreeMap;

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

/// Everything the walkthrough created, read back. Only the store is read,
/// so the plan runs to completion on this thread.
pub(super) fn status(cloud: &LocalCloud) -> CloudResult<StatusReport> {
    futures::executor::block_on(status::run(cloud))
}

/// The sample's `certs_etc.py --delete` on the store.
pub(super) fn cleanup(cloud: &LocalCloud) -> CloudResult<CleanupReport> {
    futures::executor::block_on(cleanup::run(cloud))
}

fn stack_summary(
    cloud: &LocalCloud,
    name: String,
    status: String,
    events: usize,
) -> CloudResult<StackSummary> {
    let store = cloud.store();
    Ok(StackSummary {
        resources: store.list_stack_resources(&name)?,
        events: store.list_stack_events(&name, events)?,
        name,
        status,
    })
}

#[async_trait::async_trait]
impl StatusBackend for LocalCloud {
    fn backend(&self) -> &'static str {
        "local"
    }

    async fn endpoint(&self) -> Option<String> {
        crate::cloud::Cloud::device_endpoint(self).map(|e| e.addr)
    }

    async fn stacks(
        &self,
        events: usize,
    ) -> CloudResult<(Option<StackSummary>, Vec<StackSummary>)> {
        let mut walkthrough = None;
        let mut others = Vec::new();
        for stack in self.store().list_stacks()? {
            let summary = stack_summary(self, stack.name, stack.status, events)?;
            if summary.name == STACK_NAME {
                walkthrough = Some(summary);
            } else {
                others.push(summary);
            }
        }
        Ok((walkthrough, others))
    }

    /// Every certificate in the store (the CAs' and those registered
    /// without one alike).
    async fn certificates(&self, _cas: &[FoundCa]) -> CloudResult<Vec<FoundCert>> {
        Ok(self
            .store()
            .list_certificates()?
            .into_iter()
            .map(|cert| FoundCert {
                principal: cert.id.clone(),
                id: cert.id,
                ca_id: cert.ca_id,
                status: cert.status.as_str().to_string(),
                pem: Some(cert.pem),
            })
            .collect())
    }

    async fn common_name(&self, cert: &FoundCert) -> CloudResult<Option<String>> {
        Ok(cert
            .pem
            .as_deref()
            .and_then(|pem| pki::parse_cert(pem).ok())
            .and_then(|info| info.subject.common_name))
    }

    async fn principal_things(&self, cert: &FoundCert) -> CloudResult<Vec<String>> {
        Ok(self.store().list_principal_things(&cert.id)?)
    }

    async fn attached_policies(&self, cert: &FoundCert) -> CloudResult<Vec<String>> {
        Ok(self
            .store()
            .list_attached_policies(&cert.id)?
            .into_iter()
            .map(|p| p.name)
            .collect())
    }

    /// Every thing in the store.
    async fn other_things(&self) -> CloudResult<Vec<String>> {
        Ok(self
            .store()
            .list_things()?
            .into_iter()
            .map(|thing| thing.name)
            .collect())
    }

    async fn policies(&self) -> CloudResult<BTreeMap<String, Vec<String>>> {
        let store = self.store();
        let mut policies = BTreeMap::new();
        for policy in store.list_policies()? {
            let targets = store.list_policy_targets(&policy.name)?;
            policies.insert(policy.name, targets);
        }
        Ok(policies)
    }

    async fn parameters(&self) -> CloudResult<BTreeMap<String, String>> {
        Ok(self
            .store()
            .list_parameters()?
            .into_iter()
            .map(|p| (p.name, p.kind.as_str().to_string()))
            .collect())
    }
}

#[async_trait::async_trait]
impl CleanupBackend for LocalCloud {
    async fn detach_thing(&self, thing: &str, cert: &FoundCert) -> CloudResult<()> {
        Ok(self.store().detach_thing_principal(thing, &cert.id)?)
    }

    async fn delete_thing(&self, thing: &str) -> CloudResult<bool> {
        Ok(self.store().delete_thing(thing)?)
    }

    async fn detach_policy(&self, policy: &str, cert: &FoundCert) -> CloudResult<()> {
        Ok(self.store().detach_policy(policy, &cert.id)?)
    }

    async fn deactivate_certificate(&self, cert: &FoundCert) -> CloudResult<()> {
        Ok(self
            .store()
            .set_certificate_status(&cert.id, CertificateStatus::Inactive)?)
    }

    async fn delete_certificate(&self, cert: &FoundCert) -> CloudResult<bool> {
        Ok(self.store().delete_certificate(&cert.id)?)
    }

    async fn deactivate_ca(&self, ca: &FoundCa) -> CloudResult<()> {
        let store = self.store();
        store.set_ca_status(&ca.id, CertificateStatus::Inactive)?;
        Ok(store.set_ca_auto_registration(&ca.id, false, ca.registration.as_ref())?)
    }

    async fn delete_ca(&self, ca: &FoundCa) -> CloudResult<bool> {
        Ok(self.store().delete_ca(&ca.id)?)
    }

    async fn registered_ca_ids(&self) -> CloudResult<Vec<String>> {
        Ok(self
            .store()
            .list_cas()?
            .into_iter()
            .map(|ca| ca.id)
            .collect())
    }

    async fn delete_rows(&self, serials: &[String]) -> CloudResult<usize> {
        let store = self.store();
        let mut deleted = 0;
        for serial in serials {
            if store.delete_item(DEVICE_TABLE, serial)? {
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}
