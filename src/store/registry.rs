//! AWS IoT's registry: CA certificates, certificates, things, policies and
//! their attachments, the registration code, topic rules and functions.

use super::{Store, StoreResult};
use crate::model::{
    CaCertificate, Certificate, CertificateStatus, Function, Policy, RegistrationConfig, Thing,
    TopicRule,
};

#[allow(unused_variables)]
impl Store {
    // ---- CA certificates -------------------------------------------------

    /// Registers a CA (`RegisterCACertificate`). `AlreadyExists` if the id is known.
    pub fn register_ca(&self, ca: &CaCertificate) -> StoreResult<()> {
        todo!()
    }
    pub fn get_ca(&self, id: &str) -> StoreResult<Option<CaCertificate>> {
        todo!()
    }
    pub fn list_cas(&self) -> StoreResult<Vec<CaCertificate>> {
        todo!()
    }
    /// `UpdateCACertificate --new-status`. `NotFound` if unknown.
    pub fn set_ca_status(&self, id: &str, status: CertificateStatus) -> StoreResult<()> {
        todo!()
    }
    /// `UpdateCACertificate --new-auto-registration-status --registration-config`.
    pub fn set_ca_auto_registration(
        &self,
        id: &str,
        enabled: bool,
        config: Option<&RegistrationConfig>,
    ) -> StoreResult<()> {
        todo!()
    }
    /// `DeleteCACertificate`: the CA must be INACTIVE (`Conflict` otherwise).
    /// Returns false when it did not exist.
    pub fn delete_ca(&self, id: &str) -> StoreResult<bool> {
        todo!()
    }
    /// `GetRegistrationCode`: created once, stable afterwards.
    pub fn registration_code(&self) -> StoreResult<String> {
        todo!()
    }

    // ---- certificates ----------------------------------------------------

    /// `RegisterCertificate` / JITP registration. `AlreadyExists` if known.
    pub fn register_certificate(&self, cert: &Certificate) -> StoreResult<()> {
        todo!()
    }
    pub fn get_certificate(&self, id: &str) -> StoreResult<Option<Certificate>> {
        todo!()
    }
    pub fn list_certificates(&self) -> StoreResult<Vec<Certificate>> {
        todo!()
    }
    /// `UpdateCertificate --new-status`. `NotFound` if unknown.
    pub fn set_certificate_status(&self, id: &str, status: CertificateStatus) -> StoreResult<()> {
        todo!()
    }
    /// `DeleteCertificate --force-delete`: must not be ACTIVE and must not be
    /// attached to a thing (`Conflict`); policy attachments are removed.
    /// Returns false when it did not exist.
    pub fn delete_certificate(&self, id: &str) -> StoreResult<bool> {
        todo!()
    }
    /// Counts of certificates per status for one CA (for the CA pane).
    pub fn count_certificates_by_status(
        &self,
        ca_id: &str,
    ) -> StoreResult<Vec<(CertificateStatus, u64)>> {
        todo!()
    }

    // ---- things ----------------------------------------------------------

    /// `CreateThing`: idempotent; returns the existing thing if present.
    pub fn create_thing(
        &self,
        name: &str,
        attributes: &serde_json::Map<String, serde_json::Value>,
    ) -> StoreResult<Thing> {
        todo!()
    }
    pub fn get_thing(&self, name: &str) -> StoreResult<Option<Thing>> {
        todo!()
    }
    pub fn list_things(&self) -> StoreResult<Vec<Thing>> {
        todo!()
    }
    /// `DeleteThing`: `Conflict` while principals are attached. False if absent.
    pub fn delete_thing(&self, name: &str) -> StoreResult<bool> {
        todo!()
    }
    /// `AttachThingPrincipal` (idempotent). `NotFound` if thing or cert is unknown.
    pub fn attach_thing_principal(&self, thing: &str, cert_id: &str) -> StoreResult<()> {
        todo!()
    }
    /// `DetachThingPrincipal` (idempotent).
    pub fn detach_thing_principal(&self, thing: &str, cert_id: &str) -> StoreResult<()> {
        todo!()
    }
    /// `ListThingPrincipals`: certificateIds attached to the thing.
    pub fn list_thing_principals(&self, thing: &str) -> StoreResult<Vec<String>> {
        todo!()
    }
    /// `ListPrincipalThings`: things the certificate is attached to.
    pub fn list_principal_things(&self, cert_id: &str) -> StoreResult<Vec<String>> {
        todo!()
    }

    // ---- policies --------------------------------------------------------

    /// `CreatePolicy`. `AlreadyExists` if the name is taken.
    pub fn create_policy(&self, name: &str, document: &str) -> StoreResult<Policy> {
        todo!()
    }
    /// `CreatePolicyVersion --set-as-default`: a new default version.
    pub fn update_policy(&self, name: &str, document: &str) -> StoreResult<Policy> {
        todo!()
    }
    pub fn get_policy(&self, name: &str) -> StoreResult<Option<Policy>> {
        todo!()
    }
    pub fn list_policies(&self) -> StoreResult<Vec<Policy>> {
        todo!()
    }
    /// `DeletePolicy`: `Conflict` while attached. False if absent.
    pub fn delete_policy(&self, name: &str) -> StoreResult<bool> {
        todo!()
    }
    /// `AttachPolicy` (idempotent). `NotFound` if the policy is unknown.
    pub fn attach_policy(&self, policy: &str, target: &str) -> StoreResult<()> {
        todo!()
    }
    /// `DetachPolicy` (idempotent).
    pub fn detach_policy(&self, policy: &str, target: &str) -> StoreResult<()> {
        todo!()
    }
    /// `ListAttachedPolicies`: the policies attached to a certificate.
    pub fn list_attached_policies(&self, target: &str) -> StoreResult<Vec<Policy>> {
        todo!()
    }
    /// `ListTargetsForPolicy`.
    pub fn list_policy_targets(&self, policy: &str) -> StoreResult<Vec<String>> {
        todo!()
    }

    // ---- topic rules and functions (written by the stack engine) ---------

    /// Creates or replaces a topic rule.
    pub fn put_topic_rule(&self, rule: &TopicRule) -> StoreResult<()> {
        todo!()
    }
    pub fn delete_topic_rule(&self, name: &str) -> StoreResult<bool> {
        todo!()
    }
    pub fn list_topic_rules(&self) -> StoreResult<Vec<TopicRule>> {
        todo!()
    }
    /// Creates or replaces a function.
    pub fn put_function(&self, function: &Function) -> StoreResult<()> {
        todo!()
    }
    pub fn get_function(&self, name: &str) -> StoreResult<Option<Function>> {
        todo!()
    }
    pub fn delete_function(&self, name: &str) -> StoreResult<bool> {
        todo!()
    }
    pub fn list_functions(&self) -> StoreResult<Vec<Function>> {
        todo!()
    }
}
