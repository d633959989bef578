//! The fleet definition, like the sample's `ca_list.json`: the subjects, key
//! algorithms and validity of the Vendor and Manufacturer CAs, of the factory
//! (vendor) device certificates and of the manufacturer certificates the
//! rotation function issues, and the fleet's serial numbers.
//!
//! The built-in definition is `assets/fleet.json`, compiled in;
//! `<data-dir>/fleet.json` overrides it when present.

use crate::pki::{KeyAlgorithm, Subject};
use crate::rotation::RotationConfig;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The built-in fleet definition.
pub const BUILTIN_FLEET: &str = include_str!("../../assets/fleet.json");

/// The fleet definition override's name in the data dir.
pub const FLEET_FILE: &str = "fleet.json";

/// The sample's one serial number, always first in the fleet.
pub const SAMPLE_SERIAL: &str = "IUQWXALODJESC1";

/// Generated serials use the sample's alphabet: upper-case letters and digits.
const SERIAL_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// The rotation function's settings from the fleet definition: the
/// manufacturer certificate's validity, and its key type, which a device's
/// CSR must match. The local built-in function and the Lambda both use it.
pub fn rotation_config(fleet: &Fleet) -> RotationConfig {
    RotationConfig {
        validity_days: fleet.manufacturer_cert.validity_days,
        key_algorithm: Some(fleet.manufacturer_cert.key_algorithm),
        ..RotationConfig::default()
    }
}

/// What can go wrong loading a fleet definition.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// `<data-dir>/fleet.json` exists but cannot be read.
    #[error("cannot read the fleet definition {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The definition is not valid JSON or breaks a rule (named in `reason`).
    #[error("the fleet definition {path} is invalid: {reason}. Fix it, or delete it to use the built-in one")]
    Invalid { path: String, reason: String },
}

/// A CA of the walkthrough.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CaProfile {
    /// The CA's subject (C, ST, L, O, OU, CN).
    pub subject: Subject,
    /// `EC_P256` (default) or `RSA_2048`.
    #[serde(default)]
    pub key_algorithm: KeyAlgorithm,
    /// How long the CA certificate is valid.
    pub validity_days: u32,
}

/// A kind of device certificate. The subject's CN is always the serial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertProfile {
    /// Subject fields besides CN (which is the device's serial).
    pub subject: Subject,
    /// Key type of the device's key: `EC_P256` (default) or `RSA_2048`.
    #[serde(default)]
    pub key_algorithm: KeyAlgorithm,
    /// How long an issued certificate is valid.
    pub validity_days: u32,
}

/// The fleet: CAs, certificate profiles, serials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fleet {
    /// The Vendor CA: signs the factory certs; JITP is enabled on it.
    pub vendor_ca: CaProfile,
    /// The Manufacturer CA: the rotation function signs devices' CSRs with it.
    pub manufacturer_ca: CaProfile,
    /// The factory ("vendor") device certificate.
    pub device_cert: CertProfile,
    /// The manufacturer certificate the rotation function issues.
    pub manufacturer_cert: CertProfile,
    /// Serials always in the fleet, the sample's first.
    pub serials: Vec<String>,
    /// Length of generated serials (`init --devices N`).
    pub generated_serial_length: usize,
}

impl Fleet {
    /// The built-in definition (`assets/fleet.json`).
    pub fn builtin() -> Result<Fleet, FleetError> {
        Fleet::parse(BUILTIN_FLEET, "built-in assets/fleet.json")
    }

    /// `<data_dir>/fleet.json` if present, else the built-in definition.
    pub fn load(data_dir: &Path) -> Result<Fleet, FleetError> {
        let path = data_dir.join(FLEET_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Fleet::parse(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Fleet::builtin(),
            Err(source) => Err(FleetError::Read { path, source }),
        }
    }

    /// Parses and checks a definition; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Fleet, FleetError> {
        let invalid = |reason: String| FleetError::Invalid {
            path: origin.to_string(),
            reason,
        };
        let fleet: Fleet = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        for (name, ca) in [
            ("vendorCa", &fleet.vendor_ca),
            ("manufacturerCa", &fleet.manufacturer_ca),
        ] {
            if ca.subject.common_name.as_deref().unwrap_or("").is_empty() {
                return Err(invalid(format!("{name}.subject needs a CN")));
            }
            if ca.validity_days == 0 {
                return Err(invalid(format!("{name}.validityDays must be at least 1")));
            }
        }
        for (name, cert) in [
            ("deviceCert", &fleet.device_cert),
            ("manufacturerCert", &fleet.manufacturer_cert),
        ] {
            if cert.subject.common_name.is_some() {
                return Err(invalid(format!(
                    "{name}.subject must not set CN: a device cert's CN is its serial"
                )));
            }
            if cert.validity_days == 0 {
                return Err(invalid(format!("{name}.validityDays must be at least 1")));
            }
        }
        if fleet.generated_serial_length < 8 || fleet.generated_serial_length > 64 {
            return Err(invalid("generatedSerialLength must be 8..=64".into()));
        }
        for serial in &fleet.serials {
            if !is_valid_serial(serial) {
                return Err(invalid(format!(
                    "serial {serial:?} must be 1-128 characters of A-Z, a-z, 0-9, '-', '_' (it becomes a clientId, thing name and folder name)"
                )));
            }
        }
        Ok(fleet)
    }

    /// The fleet's serials: the fixed ones (the sample's first), then
    /// `extra` generated ones. Deterministic: the same `extra` always gives
    /// the same serials, and a larger `extra` extends a smaller one.
    pub fn serials(&self, extra: usize) -> Vec<String> {
        let mut serials = self.serials.clone();
        let mut index = 0u64;
        let mut added = 0;
        while added < extra {
            let serial = generated_serial(index, self.generated_serial_length);
            index += 1;
            // A hash collision with an earlier serial is astronomically
            // unlikely, but skipping it keeps serials unique regardless.
            if !serials.contains(&serial) {
                serials.push(serial);
                added += 1;
            }
        }
        serials
    }

    /// The factory cert subject for `serial` (CN = serial).
    pub fn device_subject(&self, serial: &str) -> Subject {
        Subject {
            common_name: Some(serial.to_string()),
            ..self.device_cert.subject.clone()
        }
    }

    /// The manufacturer cert subject for `serial` (CN = serial).
    pub fn manufacturer_subject(&self, serial: &str) -> Subject {
        Subject {
            common_name: Some(serial.to_string()),
            ..self.manufacturer_cert.subject.clone()
        }
    }
}

/// The `index`-th generated serial: upper-case letters and digits derived
/// from a SHA-256 of the index, so runs and machines agree.
pub fn generated_serial(index: u64, length: usize) -> String {
    let mut out = String::with_capacity(length);
    let mut block = 0u64;
    while out.len() < length {
        let digest = Sha256::digest(format!("jitpilot-serial:{index}:{block}").as_bytes());
        for byte in digest {
            if out.len() == length {
                break;
            }
            out.push(SERIAL_ALPHABET[byte as usize % SERIAL_ALPHABET.len()] as char);
        }
        block += 1;
    }
    out
}

/// A serial is used as clientId, thing name and folder name: keep it plain.
pub fn is_valid_serial(serial: &str) -> bool {
    !serial.is_empty()
        && serial.len() <= 128
        && serial
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_fleet_starts_with_the_samples_serial_and_is_deterministic() {
        let fleet = Fleet::builtin().unwrap();
        let three = fleet.serials(3);
        assert_eq!(three.len(), 4);
        assert_eq!(three[0], SAMPLE_SERIAL);
        assert_eq!(fleet.serials(3), three);
        let five = fleet.serials(5);
        assert_eq!(&five[..4], &three[..]);
        for serial in &three[1..] {
            assert_eq!(serial.len(), 14);
            assert!(serial
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
        }
        assert_eq!(
            fleet.device_subject("S1").common_name.as_deref(),
            Some("S1")
        );
        assert_eq!(fleet.vendor_ca.key_algorithm, KeyAlgorithm::EcdsaP256);
        assert_eq!(
            fleet.manufacturer_subject("S1").organization.as_deref(),
            Some("MCICoffeMaker")
        );
    }

    #[test]
    fn a_data_dir_override_wins_and_bad_ones_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        let mut fleet = Fleet::builtin().unwrap();
        fleet.vendor_ca.key_algorithm = KeyAlgorithm::Rsa2048;
        fleet.serials = vec!["ABC".into()];
        std::fs::write(
            dir.path().join("fleet.json"),
            serde_json::to_string(&fleet).unwrap(),
        )
        .unwrap();
        assert_eq!(Fleet::load(dir.path()).unwrap(), fleet);

        let mut bad = serde_json::to_value(&fleet).unwrap();
        bad["deviceCert"]["subject"]["CN"] = "x".into();
        let err = Fleet::parse(&bad.to_string(), "f.json").unwrap_err();
        assert!(err.to_string().contains("deviceCert.subject"), "{err}");
        let err = Fleet::parse("{", "f.json").unwrap_err();
        assert!(err.to_string().contains("f.json"), "{err}");
        let mut bad = serde_json::to_value(&fleet).unwrap();
        bad["serials"] = serde_json::json!(["../etc"]);
        assert!(Fleet::parse(&bad.to_string(), "f.json").is_err());
    }
}
