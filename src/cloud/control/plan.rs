//! The control plane's decisions, with no IO: which serials `init
//! --devices N` means, whether a registered CA is reused, which whitelist
//! rows `init` writes, how a CA reads in `init`, `status` and the CAs pane
//! (one subject line for both clouds), which certificates and CAs `cleanup`
//! must set INACTIVE first and which parameters it deletes. Both clouds
//! call these; each only carries out what they decide.

use crate::cloud::{CaSummary, CloudError, CloudResult};
use crate::fleet::Fleet;
use crate::model::RegistrationConfig;
use crate::pki::{self, Subject};
use crate::rotation::wire::{
    ca_key_parameter, CrState, DeviceRow, Item, ATTR_SERIAL_NUMBER, CA_KEY_PARAMETER_PREFIX,
};
use crate::vocabulary::{MANUFACTURER_CA_LABEL, VENDOR_CA_LABEL, VENDOR_KEY_PARAMETER};
use std::collections::{BTreeMap, HashMap};

/// `init --devices N`: N serials, the sample's serial first, then the
/// fleet definition's own, then generated ones (stable across runs).
pub fn fleet_serials(fleet: &Fleet, devices: usize) -> Vec<String> {
    let defined = fleet.serials(0).len();
    let mut serials = fleet.serials(devices.saturating_sub(defined));
    serials.truncate(devices);
    serials
}

/// How many recent events of each stack `status` shows.
pub const STATUS_STACK_EVENTS: usize = 50;

/// The first 10 characters of an id, as the AWS console shows it.
pub fn short_id(id: &str) -> &str {
    id.get(..10).unwrap_or(id)
}

/// A subject on one line, the most specific name first as RFC 4514 writes
/// it (`CN=Vendor CA, O=Example Vendor, C=US`): what `init`, `status`, the
/// CAs pane and the event detail show, whichever cloud the CA is in.
pub fn subject_line(subject: &Subject) -> String {
    let parts: Vec<String> = [
        ("CN", &subject.common_name),
        ("serialNumber", &subject.serial_number),
        ("OU", &subject.organizational_unit),
        ("O", &subject.organization),
        ("L", &subject.locality),
        ("ST", &subject.state),
        ("C", &subject.country),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
    .collect();
    if parts.is_empty() {
        "(empty)".into()
    } else {
        parts.join(", ")
    }
}

/// One line describing a JITP template from its body: what it provisions,
/// and the role AWS IoT assumes to do it.
pub fn template_line(template_body: &str, role_arn: &str) -> String {
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
            let detail = r
                .get("Properties")
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

/// A CA of the fleet as the cloud describes it (`describe-ca-certificate`).
#[derive(Debug, Clone, PartialEq)]
pub struct FoundCa {
    pub id: String,
    /// [`VENDOR_CA_LABEL`], [`MANUFACTURER_CA_LABEL`], or another label.
    pub label: String,
    pub pem: String,
    /// `ACTIVE`, `INACTIVE`, ...
    pub status: String,
    pub auto_registration: bool,
    /// The registration config (JITP template and role), when attached.
    pub registration: Option<RegistrationConfig>,
}

/// A certificate of the walkthrough as the cloud lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundCert {
    pub id: String,
    /// How the registry names it as a principal: its ARN on AWS, its id
    /// in the local cloud's store.
    pub principal: String,
    /// The CA that issued it, when registered with one.
    pub ca_id: Option<String>,
    /// `ACTIVE`, `INACTIVE`, `REVOKED`, ...
    pub status: String,
    /// Its PEM, when the listing carries it (the local store's does).
    pub pem: Option<String>,
}

/// What `init` does about one of the walkthrough's CAs.
#[derive(Debug, Clone, PartialEq)]
pub enum CaChoice {
    /// The registered CA and its key: used as it is; `enable_jitp` when its
    /// auto-registration or JITP config is not the one wanted (a redeployed
    /// stack has a new role).
    Reuse {
        id: String,
        pem: String,
        key: String,
        enable_jitp: bool,
    },
    /// None registered: create one, its key stored before it is registered.
    Create,
}

/// The Vendor CA: the registered one whose key is `key` (the value of
/// [`VENDOR_KEY_PARAMETER`]), kept on `jitp`; a new one when none is
/// registered. A registered Vendor CA without its key cannot sign the
/// factory's certs: that is an error saying how to start over.
pub fn choose_vendor_ca(
    found: &[FoundCa],
    key: Option<&str>,
    jitp: &RegistrationConfig,
) -> CloudResult<CaChoice> {
    let vendors: Vec<&FoundCa> = found
        .iter()
        .filter(|c| c.label == VENDOR_CA_LABEL)
        .collect();
    let Some(first) = vendors.first() else {
        return Ok(CaChoice::Create);
    };
    let Some(key) = key else {
        return Err(missing_key(
            VENDOR_CA_LABEL,
            &first.id,
            VENDOR_KEY_PARAMETER,
        ));
    };
    let public = pki::public_key_der_of_key(key)?;
    let owner = vendors
        .iter()
        .find(|ca| pki::parse_cert(&ca.pem).is_ok_and(|info| info.public_key_der == public));
    match owner {
        Some(ca) => Ok(CaChoice::Reuse {
            id: ca.id.clone(),
            pem: ca.pem.clone(),
            key: key.to_string(),
            enable_jitp: !ca.auto_registration || ca.registration.as_ref() != Some(jitp),
        }),
        None => Err(CloudError::Other(format!(
            "{VENDOR_CA_LABEL} {} is registered but {VENDOR_KEY_PARAMETER} holds another key; run `jitpilot cleanup` then `jitpilot init` to start the fleet over",
            first.id
        ))),
    }
}

/// The ACTIVE Manufacturer CAs, in the cloud's order: `init` reuses the
/// first, with its key `cr-ca-key-<id>`.
pub fn manufacturer_candidates(found: &[FoundCa]) -> Vec<&FoundCa> {
    found
        .iter()
        .filter(|c| c.label == MANUFACTURER_CA_LABEL && c.status == "ACTIVE")
        .collect()
}

/// The Manufacturer CA: `candidate` (from [`manufacturer_candidates`]) with
/// its key when it has one; a new one when there is no candidate.
pub fn choose_manufacturer_ca(
    candidate: Option<&FoundCa>,
    key: Option<&str>,
) -> CloudResult<CaChoice> {
    match (candidate, key) {
        (None, _) => Ok(CaChoice::Create),
        (Some(ca), Some(key)) => Ok(CaChoice::Reuse {
            id: ca.id.clone(),
            pem: ca.pem.clone(),
            key: key.to_string(),
            enable_jitp: false,
        }),
        (Some(ca), None) => Err(missing_key(
            MANUFACTURER_CA_LABEL,
            &ca.id,
            &ca_key_parameter(&ca.id),
        )),
    }
}

fn missing_key(label: &str, id: &str, parameter: &str) -> CloudError {
    CloudError::Other(format!(
        "{label} {id} is registered but its key parameter {parameter} is missing; run `jitpilot cleanup` then `jitpilot init` to start the fleet over"
    ))
}

/// The whitelist rows `init` writes: one `CR_WHITELISTED` row per serial
/// without a row; a row still `CR_WHITELISTED` follows the current
/// Manufacturer CA; rows of devices that progressed are never touched.
/// `existing` is the device table as it is (other rows are ignored).
pub fn whitelist_rows(
    serials: &[String],
    existing: &[Item],
    manufacturer_ca_id: &str,
) -> Vec<Item> {
    let rows: HashMap<&str, DeviceRow> = existing
        .iter()
        .filter_map(|item| {
            let serial = item.get(ATTR_SERIAL_NUMBER)?.as_str()?;
            Some((serial, DeviceRow::from_item(item.clone())))
        })
        .collect();
    serials
        .iter()
        .filter(|serial| match rows.get(serial.as_str()) {
            None => true,
            Some(row) => {
                row.state() == Some(CrState::Whitelisted)
                    && row.manufacturer_ca_cert_id() != Some(manufacturer_ca_id)
            }
        })
        .map(|serial| {
            DeviceRow::whitelisted(serial, manufacturer_ca_id)
                .item()
                .clone()
        })
        .collect()
}

/// The parameter holding the CA's key, by its label: [`VENDOR_KEY_PARAMETER`]
/// for the Vendor CA, `cr-ca-key-<id>` for the Manufacturer CA.
pub fn key_parameter(label: &str, ca_id: &str) -> Option<String> {
    match label {
        VENDOR_CA_LABEL => Some(VENDOR_KEY_PARAMETER.to_string()),
        MANUFACTURER_CA_LABEL => Some(ca_key_parameter(ca_id)),
        _ => None,
    }
}

/// True when `cleanup` must set a certificate INACTIVE before deleting it:
/// AWS refuses to delete an ACTIVE one, and a REVOKED one stays REVOKED
/// (it cannot be changed back).
pub fn needs_deactivation(status: &str) -> bool {
    status != "INACTIVE" && status != "REVOKED"
}

/// True when `cleanup` must update a CA before deleting it: AWS deletes a CA
/// only once it is INACTIVE with auto-registration off.
pub fn ca_needs_deactivation(ca: &FoundCa) -> bool {
    ca.status != "INACTIVE" || ca.auto_registration
}

/// The parameters `cleanup` deletes once the CAs in `retired` are gone:
/// their keys, the Vendor CA's key parameter, and every CA key parameter in
/// `listed` whose CA is no longer registered (`still_registered`: ids),
/// e.g. one left behind by a CA deleted elsewhere. A key parameter of a CA
/// that is still registered and not the fleet's is not ours to delete.
pub fn parameters_to_delete<'a>(
    retired: &[FoundCa],
    listed: impl IntoIterator<Item = &'a String>,
    still_registered: &[String],
) -> Vec<String> {
    let mut names: Vec<String> = retired
        .iter()
        .filter_map(|ca| key_parameter(&ca.label, &ca.id))
        .chain([VENDOR_KEY_PARAMETER.to_string()])
        .collect();
    for name in listed {
        let orphan = match name.strip_prefix(CA_KEY_PARAMETER_PREFIX) {
            Some(id) => !still_registered.iter().any(|known| known == id),
            None => name == VENDOR_KEY_PARAMETER,
        };
        if orphan {
            names.push(name.clone());
        }
    }
    let mut seen = std::collections::HashSet::new();
    names.retain(|name| seen.insert(name.clone()));
    names
}

/// A CA as `init`, `status` and the CAs pane show it, on either cloud:
/// `certificates` counts the certs it issued per status; `key_parameter`
/// is where its key is, when it is there.
pub fn ca_summary(
    ca: &FoundCa,
    certificates: BTreeMap<String, u64>,
    key_parameter: Option<String>,
) -> CaSummary {
    let info = pki::parse_cert(&ca.pem).ok();
    CaSummary {
        id: ca.id.clone(),
        label: ca.label.clone(),
        subject: info
            .as_ref()
            .map(|i| subject_line(&i.subject))
            .unwrap_or_else(|| "(unreadable certificate)".into()),
        status: ca.status.clone(),
        auto_registration: ca.auto_registration,
        jitp_template: ca
            .registration
            .as_ref()
            .map(|c| template_line(&c.template_body, &c.role_arn)),
        not_before: info.as_ref().map_or(0, |i| i.not_before),
        not_after: info.as_ref().map_or(0, |i| i.not_after),
        key_parameter,
        certificates,
    }
}

#[cfg(test)]
mod tests;
