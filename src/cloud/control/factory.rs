//! "The factory": each device's key and Vendor-CA-signed certificate
//! (CN = serial) in `<data-dir>/devices/<serial>/`, with what the device
//! trusts (`root-ca.pem`) and the Manufacturer CA (`manufacturer-ca.pem`).
//! Files on this machine, the same whichever cloud registered the CAs; and
//! `cleanup`'s removal of them.

use crate::cloud::{CloudError, CloudResult};
use crate::datadir::{create_private_dir, write_atomically};
use crate::fleet::Fleet;
use crate::pki;
use crate::vocabulary::{
    DEVICES_DIR, MANUFACTURER_CA_FILE, ROOT_CA_FILE, SHARED_DIR, VENDOR_CERT_FILE, VENDOR_KEY_FILE,
};
use std::path::{Path, PathBuf};

/// What the factory signs with and what it puts beside each device's cert.
pub struct Factory<'a> {
    pub data_dir: &'a Path,
    pub fleet: &'a Fleet,
    pub vendor_cert_pem: &'a str,
    pub vendor_key_pem: &'a str,
    pub manufacturer_ca_pem: &'a str,
    /// What devices trust for the MQTT endpoint.
    pub roots: &'a str,
    /// True for a `root-ca.pem` to leave as it is (one its user put there).
    pub keep_roots: &'a (dyn Fn(&str) -> bool + Sync),
}

/// True when `key_path` and `cert_path` hold a factory key and cert that
/// belong together and chain to the Vendor CA: anything else (missing,
/// torn, from an older CA) is issued again.
pub fn has_valid_credentials(key_path: &Path, cert_path: &Path, vendor_ca_pem: &str) -> bool {
    let (Ok(key), Ok(cert)) = (
        std::fs::read_to_string(key_path),
        std::fs::read_to_string(cert_path),
    ) else {
        return false;
    };
    let signed = pki::verify_signed_by(&cert, vendor_ca_pem).unwrap_or(false);
    let matches = match (pki::public_key_der_of_key(&key), pki::parse_cert(&cert)) {
        (Ok(public), Ok(info)) => public == info.public_key_der,
        _ => false,
    };
    signed && matches
}

/// The factory for every serial, on every core: a device's credentials
/// are independent of the others' (key generation and signing are the
/// work), and the Vendor CA is loaded once for all of them. Returns how
/// many devices got a new cert.
pub fn issue(factory: &Factory<'_>, serials: &[String]) -> CloudResult<usize> {
    create_private_dir(&factory.data_dir.join(DEVICES_DIR)).map_err(other)?;
    let signer = pki::CaSigner::load(factory.vendor_cert_pem, factory.vendor_key_pem)?;
    let shared = SharedFiles::write(factory)?;
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, serials.len().max(1));
    let chunk = serials.len().div_ceil(workers).max(1);
    let issue = |part: &[String]| -> CloudResult<usize> {
        let mut issued = 0;
        for serial in part {
            issued += usize::from(credentials(factory, serial, &signer, &shared)?);
        }
        Ok(issued)
    };
    let issue = &issue;
    std::thread::scope(|scope| {
        let parts: Vec<_> = serials
            .chunks(chunk)
            .map(|part| scope.spawn(move || issue(part)))
            .collect();
        parts.into_iter().try_fold(0, |total, part| {
            let issued = part.join().map_err(|_| {
                CloudError::Other(
                    "a factory thread failed while issuing credentials; run `jitpilot init` again (it resumes)".into(),
                )
            })??;
            Ok(total + issued)
        })
    })
}

/// One device: its key and Vendor-CA-signed cert, unless it has valid ones;
/// always refreshes what it trusts. True when it issued a new cert.
fn credentials(
    factory: &Factory<'_>,
    serial: &str,
    signer: &pki::CaSigner,
    shared: &SharedFiles,
) -> CloudResult<bool> {
    let dir = factory.data_dir.join(DEVICES_DIR).join(serial);
    create_private_dir(&dir).map_err(other)?;
    let key_path = dir.join(VENDOR_KEY_FILE);
    let cert_path = dir.join(VENDOR_CERT_FILE);
    let mut issued = false;
    if !has_valid_credentials(&key_path, &cert_path, factory.vendor_cert_pem) {
        let profile = &factory.fleet.device_cert;
        let device = signer.issue_device_cert(
            &factory.fleet.device_subject(serial),
            profile.key_algorithm,
            profile.validity_days,
        )?;
        // Key first: a cert on disk always has its key beside it.
        write_atomically(&key_path, device.key_pem.as_bytes(), true).map_err(other)?;
        let chain = format!(
            "{}\n{}",
            device.cert_pem.trim_end(),
            factory.vendor_cert_pem
        );
        write_atomically(&cert_path, chain.as_bytes(), false).map_err(other)?;
        issued = true;
    }
    let root = dir.join(ROOT_CA_FILE);
    let keep = std::fs::read_to_string(&root).is_ok_and(|current| (factory.keep_roots)(&current));
    if !keep {
        shared.root_ca.place(&root, factory.roots)?;
    }
    shared
        .manufacturer_ca
        .place(&dir.join(MANUFACTURER_CA_FILE), factory.manufacturer_ca_pem)?;
    Ok(issued)
}

/// The files every device's folder holds alike (`root-ca.pem`,
/// `manufacturer-ca.pem`), written once into `<data-dir>/factory/` and
/// hard-linked into each device's folder: a fleet of 10,000 costs 20,000
/// fewer inodes, and allocating inodes is what `init` spends its time on
/// in the kernel. The shared files are only ever replaced by a rename,
/// never written in place, so a link never sees a torn file; a device's
/// copy that differs is replaced the same way.
struct SharedFiles {
    root_ca: SharedFile,
    manufacturer_ca: SharedFile,
}

/// One shared file: where it lives in `<data-dir>/factory/`.
struct SharedFile {
    path: PathBuf,
}

impl SharedFiles {
    fn write(factory: &Factory<'_>) -> CloudResult<SharedFiles> {
        let dir = factory.data_dir.join(SHARED_DIR);
        create_private_dir(&dir).map_err(other)?;
        let files = SharedFiles {
            root_ca: SharedFile {
                path: dir.join(ROOT_CA_FILE),
            },
            manufacturer_ca: SharedFile {
                path: dir.join(MANUFACTURER_CA_FILE),
            },
        };
        write_if_changed(&files.root_ca.path, factory.roots)?;
        write_if_changed(&files.manufacturer_ca.path, factory.manufacturer_ca_pem)?;
        Ok(files)
    }
}

impl SharedFile {
    /// Makes `path` hold `text` (the shared file's): left alone when it
    /// does, else a hard link to the shared file put in place by a rename
    /// (a copy where the filesystem has no hard links).
    fn place(&self, path: &Path, text: &str) -> CloudResult<()> {
        if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
            return Ok(());
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.link-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let linked =
            std::fs::hard_link(&self.path, &tmp).and_then(|()| std::fs::rename(&tmp, path));
        if linked.is_err() {
            let _ = std::fs::remove_file(&tmp);
            return write_atomically(path, text.as_bytes(), false).map_err(other);
        }
        Ok(())
    }
}

/// Writes `text` to `path` unless it already holds it.
pub fn write_if_changed(path: &Path, text: &str) -> CloudResult<()> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
        return Ok(());
    }
    write_atomically(path, text.as_bytes(), false).map_err(other)
}

/// `cleanup`: removes every device folder under `<data-dir>/devices` and
/// the shared files. Returns how many device folders were removed.
pub fn remove_device_folders(data_dir: &Path) -> CloudResult<usize> {
    let devices_dir = data_dir.join(DEVICES_DIR);
    let mut removed = 0;
    if let Ok(entries) = std::fs::read_dir(&devices_dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path).map_err(|e| {
                    CloudError::Other(format!(
                        "cannot delete the device folder {}: {e}; delete it by hand and run `jitpilot cleanup` again",
                        path.display()
                    ))
                })?;
                removed += 1;
            }
        }
        let _ = std::fs::remove_dir(&devices_dir);
    }
    // The files init hard-links into every device folder.
    let _ = std::fs::remove_dir_all(data_dir.join(SHARED_DIR));
    Ok(removed)
}

fn other(e: impl std::fmt::Display) -> CloudError {
    CloudError::Other(e.to_string())
}
