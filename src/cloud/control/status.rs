//! `status`, once for both clouds: everything the walkthrough created, read
//! back — the stack, the CAs with the certificates they issued, things,
//! policies, parameters and the device table — in one [`StatusReport`].
//!
//! [`run`] asks a [`StatusBackend`] for each part and puts the report
//! together; the local cloud answers from its store, the AWS backend
//! through the SDK. What each cloud lists differs only where it must: the
//! local cloud holds nothing but the walkthrough, so it lists everything;
//! an AWS account holds other things too, so it lists what the fleet's CAs
//! issued and the walkthrough's own policies and parameters.

use super::init::ControlBackend;
use super::plan::{FoundCa, FoundCert, STATUS_STACK_EVENTS};
use crate::cloud::{CertSummary, CloudResult, StackSummary, StatusReport};
use std::collections::BTreeMap;

/// What `status` (and `cleanup`, which retires what it lists) needs from a
/// cloud beyond `init`'s calls.
#[async_trait::async_trait]
pub trait StatusBackend: ControlBackend {
    /// `"local"` or `"aws"`.
    fn backend(&self) -> &'static str;
    /// The device endpoint's address, when one is known.
    async fn endpoint(&self) -> Option<String>;
    /// The walkthrough's stack (with its last `events` events), and every
    /// other stack this cloud holds for it.
    async fn stacks(&self, events: usize)
        -> CloudResult<(Option<StackSummary>, Vec<StackSummary>)>;
    /// The certificates of the walkthrough: those `cas` issued, and any other
    /// this cloud holds only for the walkthrough.
    async fn certificates(&self, cas: &[FoundCa]) -> CloudResult<Vec<FoundCert>>;
    /// The certificate's CN (the device's serial).
    async fn common_name(&self, cert: &FoundCert) -> CloudResult<Option<String>>;
    /// Things the certificate is attached to.
    async fn principal_things(&self, cert: &FoundCert) -> CloudResult<Vec<String>>;
    /// Policies attached to the certificate.
    async fn attached_policies(&self, cert: &FoundCert) -> CloudResult<Vec<String>>;
    /// Things this cloud holds for the walkthrough that no certificate of
    /// [`certificates`](Self::certificates) is attached to (an AWS account's
    /// other things are not the walkthrough's: none there).
    async fn other_things(&self) -> CloudResult<Vec<String>> {
        Ok(Vec::new())
    }
    /// The walkthrough's policies with their targets.
    async fn policies(&self) -> CloudResult<BTreeMap<String, Vec<String>>>;
    /// The walkthrough's parameters with their type.
    async fn parameters(&self) -> CloudResult<BTreeMap<String, String>>;
}

/// The fleet's certificates, each with the things and policies attached.
pub(super) struct Listed {
    pub cas: Vec<FoundCa>,
    pub certificates: Vec<(FoundCert, Vec<String>)>,
}

/// The fleet's CAs and their certificates, with each one's things.
pub(super) async fn list(cloud: &dyn StatusBackend) -> CloudResult<Listed> {
    let cas = cloud.fleet_cas().await?;
    let mut certificates = Vec::new();
    for cert in cloud.certificates(&cas).await? {
        let things = cloud.principal_things(&cert).await?;
        certificates.push((cert, things));
    }
    Ok(Listed { cas, certificates })
}

/// Everything the walkthrough created, read back.
pub async fn run(cloud: &dyn StatusBackend) -> CloudResult<StatusReport> {
    let (stack, other_stacks) = cloud.stacks(STATUS_STACK_EVENTS).await?;
    let listed = list(cloud).await?;
    let mut cas = Vec::new();
    for ca in &listed.cas {
        cas.push(cloud.ca_summary(ca).await?);
    }
    let mut certificates = Vec::new();
    let mut things: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (cert, cert_things) in listed.certificates {
        for thing in &cert_things {
            things
                .entry(thing.clone())
                .or_default()
                .push(cert.id.clone());
        }
        certificates.push(CertSummary {
            common_name: cloud.common_name(&cert).await?,
            policies: cloud.attached_policies(&cert).await?,
            things: cert_things,
            id: cert.id,
            ca_id: cert.ca_id,
            status: cert.status,
        });
    }
    for thing in cloud.other_things().await? {
        things.entry(thing).or_default();
    }
    Ok(StatusReport {
        backend: cloud.backend().into(),
        data_dir: Some(cloud.data_dir().to_path_buf()),
        endpoint: cloud.endpoint().await,
        stack,
        other_stacks,
        cas,
        certificates,
        things,
        policies: cloud.policies().await?,
        parameters: cloud.parameters().await?,
        devices: cloud.device_rows().await?,
    })
}
