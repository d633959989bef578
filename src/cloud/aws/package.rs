//! Packaging the rotation function for Lambda's `provided.al2023` runtime:
//! a zip holding one executable named `bootstrap`.
//!
//! The binary itself is built by `scripts/package-lambda` (cargo-zigbuild
//! linking against glibc 2.34, the runtime's); this module zips it (or takes
//! a zip already made) and names the S3 key after the content's hash, so
//! CloudFormation sees new code as a change.
//!
//! The zip writer is a few lines of the format (stored entries, no
//! compression) rather than a dependency: one file, and the executable bit
//! must be set in the entry's Unix mode or Lambda cannot start it.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The file name Lambda's custom runtimes execute.
pub const BOOTSTRAP: &str = "bootstrap";

/// A ready-to-upload function package.
#[derive(Debug, Clone)]
pub struct FunctionPackage {
    /// The zip's bytes.
    pub zip: Vec<u8>,
    /// `cert-rotation/bootstrap-<sha256 prefix>.zip`.
    pub key: String,
    /// Where it came from, for messages.
    pub source: PathBuf,
}

/// Errors while packaging; each says how to get a package.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("no rotation function package found (looked at {looked}); build it with `scripts/package-lambda` or set JITPILOT_LAMBDA_PACKAGE to a bootstrap binary or bootstrap.zip")]
    NotFound { looked: String },
    #[error("cannot read the rotation function package {path}: {err}")]
    Read { path: PathBuf, err: std::io::Error },
    #[error("{path} is a zip without a `bootstrap` entry; Lambda's provided.al2023 runtime starts `bootstrap`: rebuild it with `scripts/package-lambda`")]
    NoBootstrap { path: PathBuf },
}

/// Where a package is looked for, first match wins: the explicit one, the
/// data dir's `aws/bootstrap.zip`, then what `scripts/package-lambda` writes.
pub fn candidates(explicit: Option<&Path>, data_dir: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(p) = explicit {
        paths.push(p.to_path_buf());
    }
    paths.push(data_dir.join("aws").join("bootstrap.zip"));
    paths.push(PathBuf::from("target/lambda/cert-rotation/bootstrap.zip"));
    paths
}

/// Finds and loads the package (zipping a bare binary).
pub fn load(explicit: Option<&Path>, data_dir: &Path) -> Result<FunctionPackage, PackageError> {
    let paths = candidates(explicit, data_dir);
    let Some(path) = paths.iter().find(|p| p.is_file()) else {
        let looked = paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(PackageError::NotFound { looked });
    };
    let bytes = std::fs::read(path).map_err(|err| PackageError::Read {
        path: path.clone(),
        err,
    })?;
    let zip = if bytes.starts_with(b"PK\x03\x04") {
        if !zip_has_entry(&bytes, BOOTSTRAP) {
            return Err(PackageError::NoBootstrap { path: path.clone() });
        }
        bytes
    } else {
        zip_single_executable(BOOTSTRAP, &bytes)
    };
    Ok(FunctionPackage {
        key: object_key(&zip),
        zip,
        source: path.clone(),
    })
}

/// `cert-rotation/bootstrap-<16 hex of sha256>.zip`.
pub fn object_key(zip: &[u8]) -> String {
    let digest = hex::encode(Sha256::digest(zip));
    format!("cert-rotation/bootstrap-{}.zip", &digest[..16])
}

/// A zip archive with one stored (uncompressed) entry, mode 0755.
pub fn zip_single_executable(name: &str, data: &[u8]) -> Vec<u8> {
    let crc = crc32(data);
    let size = data.len() as u32;
    let name_bytes = name.as_bytes();
    let name_len = name_bytes.len() as u16;
    // DOS date 1980-01-01 00:00: a fixed time keeps the zip (and so its S3
    // key) identical for identical code.
    let (time, date) = (0u16, (1u16 << 5) | 1);
    let mut out = Vec::with_capacity(data.len() + 200);
    // Local file header.
    out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
    out.extend_from_slice(&20u16.to_le_bytes()); // version needed
    out.extend_from_slice(&0u16.to_le_bytes()); // flags
    out.extend_from_slice(&0u16.to_le_bytes()); // method: stored
    out.extend_from_slice(&time.to_le_bytes());
    out.extend_from_slice(&date.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&name_len.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // extra length
    out.extend_from_slice(name_bytes);
    out.extend_from_slice(data);
    let central_offset = out.len() as u32;
    // Central directory entry: "made by" Unix (3) so the mode is honoured.
    out.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
    out.extend_from_slice(&((3u16 << 8) | 20).to_le_bytes());
    out.extend_from_slice(&20u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&time.to_le_bytes());
    out.extend_from_slice(&date.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&name_len.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // extra
    out.extend_from_slice(&0u16.to_le_bytes()); // comment
    out.extend_from_slice(&0u16.to_le_bytes()); // disk
    out.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
    out.extend_from_slice(&(0o100_755u32 << 16).to_le_bytes()); // regular file, rwxr-xr-x
    out.extend_from_slice(&0u32.to_le_bytes()); // local header offset
    out.extend_from_slice(name_bytes);
    let central_size = out.len() as u32 - central_offset;
    // End of central directory.
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&central_size.to_le_bytes());
    out.extend_from_slice(&central_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// True when the zip's central directory names `entry` (a scan for the
/// central directory signature followed by the name; enough to catch a zip
/// of the wrong thing).
pub fn zip_has_entry(zip: &[u8], entry: &str) -> bool {
    let sig = 0x0201_4b50u32.to_le_bytes();
    let mut i = 0;
    while i + 46 <= zip.len() {
        if zip[i..i + 4] == sig {
            let name_len = u16::from_le_bytes([zip[i + 28], zip[i + 29]]) as usize;
            if let Some(name) = zip.get(i + 46..i + 46 + name_len) {
                if name == entry.as_bytes() {
                    return true;
                }
            }
        }
        i += 1;
    }
    false
}

/// CRC-32 (IEEE), as zip requires.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn the_zip_unpacks_with_unzip_as_an_executable_bootstrap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let payload = b"#!/bin/sh\necho rotation\n";
        let zip = zip_single_executable(BOOTSTRAP, payload);
        assert!(zip_has_entry(&zip, BOOTSTRAP));
        assert!(!zip_has_entry(&zip, "other"));
        let zip_path = dir.path().join("f.zip");
        std::fs::write(&zip_path, &zip).expect("write");
        // Python's zipfile is the independent reader here (always on the
        // machine; `unzip` may not be).
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys,zipfile;z=zipfile.ZipFile(sys.argv[1]);z.testzip();i=z.getinfo('bootstrap');print(oct(i.external_attr>>16));sys.stdout.write(z.read('bootstrap').decode())",
            ])
            .arg(&zip_path)
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text, "0o100755\n#!/bin/sh\necho rotation\n");
    }

    #[test]
    fn a_binary_is_zipped_and_a_zip_is_taken_as_is_with_a_content_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bootstrap");
        std::fs::write(&bin, b"\x7fELF fake").expect("write");
        let pkg = load(Some(&bin), dir.path()).expect("package");
        assert!(zip_has_entry(&pkg.zip, BOOTSTRAP));
        assert!(pkg.key.starts_with("cert-rotation/bootstrap-") && pkg.key.ends_with(".zip"));
        let zip_path = dir.path().join("b.zip");
        std::fs::write(&zip_path, &pkg.zip).expect("write");
        let again = load(Some(&zip_path), dir.path()).expect("zip");
        assert_eq!(again.key, pkg.key, "same code, same key");
        let wrong = dir.path().join("wrong.zip");
        std::fs::write(&wrong, zip_single_executable("main", b"x")).expect("write");
        assert!(matches!(
            load(Some(&wrong), dir.path()),
            Err(PackageError::NoBootstrap { .. })
        ));
        let missing = load(Some(&dir.path().join("nope")), dir.path());
        assert!(matches!(missing, Err(PackageError::NotFound { .. })));
    }
}
