//! A function's deployment package: the `.zip` Lambda takes (`ZipFile`,
//! an S3 object, `scripts/package-lambda`'s `bootstrap.zip`) unpacked into
//! a directory, the function's `LAMBDA_TASK_ROOT`.
//!
//! The reader is small on purpose: the central directory, stored and
//! deflated entries (inflated by `miniz_oxide`, checked by CRC-32), Unix
//! modes so `bootstrap` keeps its executable bit. Everything a hostile zip
//! could use is refused with what to do: paths leaving the directory,
//! symlinks, encryption, ZIP64, more than Lambda's 250 MB unzipped.

use std::path::{Component, Path, PathBuf};

/// Lambda's limit on a package's unzipped size.
pub const MAX_UNZIPPED_BYTES: u64 = 250 * 1024 * 1024;
/// More entries than any real function has: a zip bomb of empty files stops here.
const MAX_ENTRIES: usize = 65_535;

/// Why a package could not be unpacked. Messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("the function's package is not a zip file ({0}); upload the .zip Lambda takes")]
    NotAZip(&'static str),
    #[error("the function's package is damaged at {entry}: {why}; zip it again")]
    Damaged { entry: String, why: String },
    #[error("the function's package uses {0}, which jitpilot does not read; zip it again with plain `zip -r` (deflate, no encryption, no ZIP64)")]
    Unsupported(String),
    #[error("the function's package entry {0:?} would be written outside the package directory; remove absolute paths and `..` from the zip")]
    UnsafePath(String),
    #[error("the function's package is larger than Lambda's 250 MB unzipped limit; make it smaller or use a layer on AWS")]
    TooLarge,
    #[error("cannot unpack the function's package into {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One file of a package, read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageFile {
    /// Its path inside the package, `/`-separated, relative.
    pub path: String,
    /// Unix permission bits when the zip recorded them.
    pub mode: Option<u32>,
    pub contents: Vec<u8>,
}

fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    data.get(at..at + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    data.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

const END_OF_CENTRAL_DIRECTORY: u32 = 0x0605_4b50;
const CENTRAL_FILE_HEADER: u32 = 0x0201_4b50;
const LOCAL_FILE_HEADER: u32 = 0x0403_4b50;
const S_IFMT: u32 = 0o170_000;
const S_IFLNK: u32 = 0o120_000;

/// Reads every file of a zip archive (directories are implied by paths).
pub fn read_zip(data: &[u8]) -> Result<Vec<PackageFile>, PackageError> {
    let eocd = find_end_of_central_directory(data)?;
    let entries = u16_at(data, eocd + 10).ok_or(PackageError::NotAZip("truncated"))?;
    let cd_offset = u32_at(data, eocd + 16).ok_or(PackageError::NotAZip("truncated"))?;
    if entries == u16::MAX || cd_offset == u32::MAX {
        return Err(PackageError::Unsupported("ZIP64".into()));
    }
    let mut files = Vec::new();
    let mut total: u64 = 0;
    let mut at = cd_offset as usize;
    for _ in 0..entries {
        if files.len() >= MAX_ENTRIES {
            return Err(PackageError::TooLarge);
        }
        let damaged = |why: &str| PackageError::Damaged {
            entry: format!("central directory offset {at}"),
            why: why.to_string(),
        };
        if u32_at(data, at) != Some(CENTRAL_FILE_HEADER) {
            return Err(damaged("no central directory header"));
        }
        let field16 = |off: usize| u16_at(data, at + off).ok_or_else(|| damaged("truncated"));
        let field32 = |off: usize| u32_at(data, at + off).ok_or_else(|| damaged("truncated"));
        let made_by_host = field16(4)? >> 8;
        let flags = field16(8)?;
        let method = field16(10)?;
        let crc = field32(16)?;
        let compressed = field32(20)? as usize;
        let size = field32(24)?;
        let name_len = field16(28)? as usize;
        let extra_len = field16(30)? as usize;
        let comment_len = field16(32)? as usize;
        let external = field32(38)?;
        let local = field32(42)? as usize;
        let name_bytes = data
            .get(at + 46..at + 46 + name_len)
            .ok_or_else(|| damaged("truncated name"))?;
        let name = String::from_utf8_lossy(name_bytes).into_owned();
        at += 46 + name_len + extra_len + comment_len;

        if flags & 1 != 0 {
            return Err(PackageError::Unsupported(format!("encryption ({name})")));
        }
        if size == u32::MAX || compressed == u32::MAX as usize || local == u32::MAX as usize {
            return Err(PackageError::Unsupported("ZIP64".into()));
        }
        // Unix (3) and macOS (19) record st_mode in the high half.
        let mode = matches!(made_by_host, 3 | 19)
            .then_some(external >> 16)
            .filter(|m| *m != 0);
        if mode.is_some_and(|m| m & S_IFMT == S_IFLNK) {
            return Err(PackageError::Unsupported(format!(
                "a symbolic link ({name})"
            )));
        }
        if name.ends_with('/') {
            safe_relative_path(&name)?;
            continue;
        }
        total += u64::from(size);
        if total > MAX_UNZIPPED_BYTES {
            return Err(PackageError::TooLarge);
        }
        let contents = read_entry(data, &name, local, compressed, size, method, crc)?;
        safe_relative_path(&name)?;
        files.push(PackageFile {
            path: name,
            mode: mode.map(|m| m & 0o7777),
            contents,
        });
    }
    Ok(files)
}

fn find_end_of_central_directory(data: &[u8]) -> Result<usize, PackageError> {
    if data.len() < 22 {
        return Err(PackageError::NotAZip("too short"));
    }
    // The record is 22 bytes plus a comment of at most 65,535 bytes.
    let earliest = data.len().saturating_sub(22 + usize::from(u16::MAX));
    (earliest..=data.len() - 22)
        .rev()
        .find(|&at| u32_at(data, at) == Some(END_OF_CENTRAL_DIRECTORY))
        .ok_or(PackageError::NotAZip("no end of central directory"))
}

fn read_entry(
    data: &[u8],
    name: &str,
    local: usize,
    compressed: usize,
    size: u32,
    method: u16,
    crc: u32,
) -> Result<Vec<u8>, PackageError> {
    let damaged = |why: &str| PackageError::Damaged {
        entry: name.to_string(),
        why: why.to_string(),
    };
    if u32_at(data, local) != Some(LOCAL_FILE_HEADER) {
        return Err(damaged("no local file header"));
    }
    let name_len = u16_at(data, local + 26).ok_or_else(|| damaged("truncated"))? as usize;
    let extra_len = u16_at(data, local + 28).ok_or_else(|| damaged("truncated"))? as usize;
    let start = local + 30 + name_len + extra_len;
    let raw = data
        .get(start..start + compressed)
        .ok_or_else(|| damaged("truncated data"))?;
    let contents = match method {
        0 => raw.to_vec(),
        8 => miniz_oxide::inflate::decompress_to_vec_with_limit(raw, size as usize)
            .map_err(|e| damaged(&format!("deflate: {e}")))?,
        other => {
            return Err(PackageError::Unsupported(format!(
                "compression method {other} ({name})"
            )))
        }
    };
    if contents.len() != size as usize {
        return Err(damaged("wrong size"));
    }
    if crc32fast::hash(&contents) != crc {
        return Err(damaged("CRC mismatch"));
    }
    Ok(contents)
}

/// `name` as a relative path that stays inside the package directory.
fn safe_relative_path(name: &str) -> Result<PathBuf, PackageError> {
    let unsafe_path = || PackageError::UnsafePath(name.to_string());
    if name.contains('\\') || name.contains('\0') {
        return Err(unsafe_path());
    }
    let mut path = PathBuf::new();
    for component in Path::new(name).components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(unsafe_path())
            }
        }
    }
    if path.as_os_str().is_empty() {
        return Err(unsafe_path());
    }
    Ok(path)
}

/// Writes `files` into a fresh directory `dir` (replacing what was there):
/// unpacked beside it first, then renamed, so a function never starts from
/// half a package.
pub fn unpack(files: &[PackageFile], dir: &Path) -> Result<(), PackageError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PackageError::Io { path, source }
    };
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let staging = parent.join(format!(
        ".unpacking-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&staging).map_err(io(&staging))?;
    let result = (|| {
        for file in files {
            let target = staging.join(safe_relative_path(&file.path)?);
            if let Some(p) = target.parent() {
                std::fs::create_dir_all(p).map_err(io(p))?;
            }
            std::fs::write(&target, &file.contents).map_err(io(&target))?;
            if let Some(mode) = file.mode {
                set_mode(&target, mode).map_err(io(&target))?;
            }
        }
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(io(dir))?;
        }
        std::fs::rename(&staging, dir).map_err(io(dir))
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // Never more than the owner may do: no setuid bits from a zip.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o777))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

/// True when `path` is a file its owner may execute.
pub fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o100 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zip made by Python's zipfile, as `scripts/package-lambda` and most
    /// tools make them: `bootstrap` (0755, deflated) and `lib/data.txt` (stored).
    fn python_zip(dir: &Path) -> Vec<u8> {
        let out = dir.join("made.zip");
        let status = std::process::Command::new("python3")
            .arg("-c")
            .arg(
                r##"
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1], "w")
i = zipfile.ZipInfo("bootstrap"); i.external_attr = 0o100755 << 16; i.compress_type = zipfile.ZIP_DEFLATED
z.writestr(i, "#!/bin/sh\necho hi\n" * 50)
i = zipfile.ZipInfo("lib/data.txt"); i.external_attr = 0o100644 << 16
z.writestr(i, "plain")
z.writestr("lib/", "")
z.close()
"##,
            )
            .arg(&out)
            .status()
            .expect("python3 runs");
        assert!(status.success());
        std::fs::read(out).unwrap()
    }

    #[test]
    fn a_zip_unpacks_with_its_executable_bit() {
        let dir = tempfile::tempdir().unwrap();
        let files = read_zip(&python_zip(dir.path())).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].path, "bootstrap");
        assert_eq!(files[0].mode, Some(0o755));
        assert!(String::from_utf8_lossy(&files[0].contents).starts_with("#!/bin/sh\necho hi\n"));
        let root = dir.path().join("pkg");
        unpack(&files, &root).unwrap();
        assert!(is_executable(&root.join("bootstrap")));
        assert!(!is_executable(&root.join("lib/data.txt")));
        assert_eq!(
            std::fs::read_to_string(root.join("lib/data.txt")).unwrap(),
            "plain"
        );
    }

    #[test]
    fn damaged_and_hostile_zips_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let good = python_zip(dir.path());
        assert!(matches!(
            read_zip(b"not a zip"),
            Err(PackageError::NotAZip(_))
        ));
        assert!(matches!(read_zip(&[]), Err(PackageError::NotAZip(_))));
        // One flipped byte inside the deflated bootstrap: CRC or inflate fails.
        let mut flipped = good.clone();
        flipped[40] ^= 0xff;
        assert!(matches!(
            read_zip(&flipped),
            Err(PackageError::Damaged { .. })
        ));
        // Cut in the middle: the central directory is gone.
        assert!(read_zip(&good[..good.len() / 2]).is_err());
        for name in ["../evil", "/etc/passwd", "a/../../b", "a\\b"] {
            assert!(
                matches!(safe_relative_path(name), Err(PackageError::UnsafePath(_))),
                "{name}"
            );
        }
        assert_eq!(safe_relative_path("./a/b").unwrap(), PathBuf::from("a/b"));
    }

    #[test]
    fn a_zip_slip_entry_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("slip.zip");
        let status = std::process::Command::new("python3")
            .arg("-c")
            .arg("import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1], 'w')\nz.writestr('ok.py', 'x')\nz.writestr('../../escaped', 'x')\nz.close()")
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success());
        let err = read_zip(&std::fs::read(out).unwrap()).unwrap_err();
        assert!(matches!(err, PackageError::UnsafePath(_)), "{err}");
        assert!(err.to_string().contains("outside the package directory"));
    }
}
