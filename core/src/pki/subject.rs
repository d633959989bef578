//! Distinguished names both ways: our [`Subject`] → rcgen's
//! `DistinguishedName` (creation) and x509-parser's `X509Name` → [`Subject`]
//! (parsing).

use super::{PkiError, PkiResult, Subject};
use rcgen::string::PrintableString;
use rcgen::{DistinguishedName, DnType, DnValue};
use x509_parser::oid_registry::{
    OID_X509_COMMON_NAME, OID_X509_COUNTRY_NAME, OID_X509_LOCALITY_NAME,
    OID_X509_ORGANIZATIONAL_UNIT, OID_X509_ORGANIZATION_NAME, OID_X509_SERIALNUMBER,
    OID_X509_STATE_OR_PROVINCE_NAME,
};
use x509_parser::x509::X509Name;

/// OID 2.5.4.5 (`serialNumber`), which rcgen has no named `DnType` for.
const SERIAL_NUMBER_OID: [u64; 4] = [2, 5, 4, 5];

/// Builds the distinguished name of a certificate or CSR. `C` and
/// `serialNumber` are PrintableStrings as X.520 requires (OpenSSL and AWS
/// IoT read them either way, strict verifiers do not); the rest UTF-8.
pub(crate) fn to_distinguished_name(subject: &Subject) -> PkiResult<DistinguishedName> {
    let mut dn = DistinguishedName::new();
    if let Some(c) = &subject.country {
        dn.push(DnType::CountryName, printable("C", c)?);
    }
    if let Some(st) = &subject.state {
        dn.push(DnType::StateOrProvinceName, st.as_str());
    }
    if let Some(l) = &subject.locality {
        dn.push(DnType::LocalityName, l.as_str());
    }
    if let Some(o) = &subject.organization {
        dn.push(DnType::OrganizationName, o.as_str());
    }
    if let Some(ou) = &subject.organizational_unit {
        dn.push(DnType::OrganizationalUnitName, ou.as_str());
    }
    if let Some(cn) = &subject.common_name {
        dn.push(DnType::CommonName, cn.as_str());
    }
    if let Some(sn) = &subject.serial_number {
        dn.push(
            DnType::CustomDnType(SERIAL_NUMBER_OID.to_vec()),
            printable("serialNumber", sn)?,
        );
    }
    Ok(dn)
}

fn printable(field: &'static str, value: &str) -> PkiResult<DnValue> {
    PrintableString::try_from(value)
        .map(DnValue::PrintableString)
        .map_err(|_| PkiError::Invalid {
            what: field,
            reason: format!(
                "{value:?} is not a PrintableString (letters, digits, space and '()+,-./:=? only)"
            ),
        })
}

/// Reads the walkthrough's subject fields (first value of each) from a name.
pub(crate) fn from_x509_name(name: &X509Name<'_>) -> PkiResult<Subject> {
    let first = |oid| -> PkiResult<Option<String>> {
        match name.iter_by_oid(oid).next() {
            None => Ok(None),
            Some(attr) => {
                attr.as_str()
                    .map(|s| Some(s.to_string()))
                    .map_err(|e| PkiError::Invalid {
                        what: "distinguished name",
                        reason: format!("attribute {oid} is not a readable string: {e}"),
                    })
            }
        }
    };
    Ok(Subject {
        common_name: first(&OID_X509_COMMON_NAME)?,
        country: first(&OID_X509_COUNTRY_NAME)?,
        organization: first(&OID_X509_ORGANIZATION_NAME)?,
        organizational_unit: first(&OID_X509_ORGANIZATIONAL_UNIT)?,
        state: first(&OID_X509_STATE_OR_PROVINCE_NAME)?,
        locality: first(&OID_X509_LOCALITY_NAME)?,
        serial_number: first(&OID_X509_SERIALNUMBER)?,
    })
}
