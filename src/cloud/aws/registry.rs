//! Reading the IoT registry the way the walkthrough needs it: which CAs are
//! the fleet's Vendor and Manufacturer CAs, and the certificates they issued.

use super::errors::{api, AwsResult};
use super::AwsCloud;
use crate::pki::{self, Subject};
use crate::vocabulary::{MANUFACTURER_CA_LABEL, VENDOR_CA_LABEL};

/// A registered CA certificate, described.
#[derive(Debug, Clone)]
pub struct RegisteredCa {
    pub id: String,
    pub pem: String,
    pub status: String,
    pub auto_registration: bool,
    /// The JITP template body, when a registration config is attached.
    pub template_body: Option<String>,
    pub role_arn: Option<String>,
    /// "Vendor CA", "Manufacturer CA", or "CA" for others in the account.
    pub label: &'static str,
    pub subject: Subject,
    pub not_before: i64,
    pub not_after: i64,
    pub public_key_der: Vec<u8>,
}

/// A device certificate issued by one of the fleet's CAs.
#[derive(Debug, Clone)]
pub struct ListedCert {
    pub id: String,
    pub arn: String,
    pub status: String,
    pub ca_id: String,
}

/// True when the CA's subject is the profile's (CN and O decide).
fn same_subject(a: &Subject, b: &Subject) -> bool {
    a.common_name == b.common_name && a.organization == b.organization
}

/// Where init records the Vendor CA's certificateId (a String parameter):
/// with the `cr-ca-key-<id>` names, how jitpilot finds its CAs again.
pub const VENDOR_CA_ID_PARAMETER: &str = "/jitpilot/vendor-ca-id";

/// The walkthrough's CAs, described and labelled by the fleet definition.
/// Found through the parameter store (the Vendor CA's id parameter and the
/// `cr-ca-key-<id>` names) rather than `ListCACertificates`: that lists
/// every CA of the account, and emulators (moto) do not implement it.
pub async fn list_cas(cloud: &AwsCloud) -> AwsResult<Vec<RegisteredCa>> {
    let iot = &cloud.clients().iot;
    let mut ids = Vec::new();
    if let Some(id) = super::init::get_secure(cloud, VENDOR_CA_ID_PARAMETER).await? {
        ids.push(id);
    }
    for name in super::status::parameters(cloud).await?.into_keys() {
        if let Some(id) = name.strip_prefix(crate::rotation::wire::CA_KEY_PARAMETER_PREFIX) {
            if !ids.iter().any(|known| known == id) {
                ids.push(id.to_string());
            }
        }
    }
    let mut cas = Vec::new();
    for id in ids {
        let id = id.as_str();
        let out = match iot
            .describe_ca_certificate()
            .certificate_id(id)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => match api("DescribeCACertificate", "iot:DescribeCACertificate", e) {
                // A parameter left behind by a CA deleted elsewhere.
                super::AwsError::Api { code, .. } if code == "ResourceNotFoundException" => {
                    continue
                }
                other => return Err(other),
            },
        };
        let Some(desc) = out.certificate_description() else {
            continue;
        };
        let pem = desc.certificate_pem().unwrap_or_default().to_string();
        // A CA whose PEM does not parse is not one of ours: show it as "CA".
        let info = pki::parse_cert(&pem).ok();
        let fleet = cloud.fleet();
        let label = match &info {
            Some(i) if same_subject(&i.subject, &fleet.vendor_ca.subject) => VENDOR_CA_LABEL,
            Some(i) if same_subject(&i.subject, &fleet.manufacturer_ca.subject) => {
                MANUFACTURER_CA_LABEL
            }
            _ => "CA",
        };
        let config = out.registration_config();
        cas.push(RegisteredCa {
            id: id.to_string(),
            status: desc
                .status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            auto_registration: desc
                .auto_registration_status()
                .is_some_and(|s| s.as_str() == "ENABLE"),
            template_body: config.and_then(|c| c.template_body().map(str::to_string)),
            role_arn: config.and_then(|c| c.role_arn().map(str::to_string)),
            label,
            subject: info.as_ref().map(|i| i.subject.clone()).unwrap_or_default(),
            not_before: info.as_ref().map(|i| i.not_before).unwrap_or(0),
            not_after: info.as_ref().map(|i| i.not_after).unwrap_or(0),
            public_key_der: info.map(|i| i.public_key_der).unwrap_or_default(),
            pem,
        });
    }
    Ok(cas)
}

/// The fleet's CAs only (Vendor and Manufacturer).
pub async fn fleet_cas(cloud: &AwsCloud) -> AwsResult<Vec<RegisteredCa>> {
    Ok(list_cas(cloud)
        .await?
        .into_iter()
        .filter(|ca| ca.label != "CA")
        .collect())
}

/// Certificates issued by the CA (`ListCertificatesByCA`).
pub async fn certificates_by_ca(cloud: &AwsCloud, ca_id: &str) -> AwsResult<Vec<ListedCert>> {
    let certs = cloud
        .clients()
        .iot
        .list_certificates_by_ca()
        .ca_certificate_id(ca_id)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| api("ListCertificatesByCA", "iot:ListCertificatesByCA", e))?;
    Ok(certs
        .iter()
        .filter_map(|c| {
            Some(ListedCert {
                id: c.certificate_id()?.to_string(),
                arn: c.certificate_arn().unwrap_or_default().to_string(),
                status: c
                    .status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                ca_id: ca_id.to_string(),
            })
        })
        .collect())
}

/// Things the certificate is attached to (`ListPrincipalThings`).
pub async fn principal_things(cloud: &AwsCloud, cert_arn: &str) -> AwsResult<Vec<String>> {
    cloud
        .clients()
        .iot
        .list_principal_things()
        .principal(cert_arn)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| api("ListPrincipalThings", "iot:ListPrincipalThings", e))
}

/// Policies attached to the certificate (`ListAttachedPolicies`).
pub async fn attached_policies(cloud: &AwsCloud, cert_arn: &str) -> AwsResult<Vec<String>> {
    let policies = cloud
        .clients()
        .iot
        .list_attached_policies()
        .target(cert_arn)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| api("ListAttachedPolicies", "iot:ListAttachedPolicies", e))?;
    Ok(policies
        .iter()
        .filter_map(|p| p.policy_name().map(str::to_string))
        .collect())
}
