//! The data dir: where the local cloud keeps its state, and who owns it.
//!
//! ```text
//! <data-dir>/
//!   jitpilot.db        the store (SQLite, WAL: also -wal and -shm files)
//!   master.key         the local KMS key sealing SecureString parameters (0600)
//!   jitpilot.lock      held by the one process that writes (pid + command inside)
//!   endpoint.addr      host:port of the running MQTT endpoint, while one runs
//!   api.addr           host:port of the running AWS API, while one runs
//!   api-credentials.json  the AWS API's access key (0600), made on first start
//!   endpoint-ca.pem    the CA devices trust for the endpoint
//!   fleet.json         optional: overrides the built-in fleet definition
//!   devices/<serial>/  each device's credential folder
//!   logs/jitpilot.log  the log (never on stdout)
//! ```
//!
//! One process owns a data dir for writing: the TUI, `serve`, or a command
//! running its own in-process cloud. The lock is an OS file lock, released by
//! the OS when the process ends, however it ends — so a crash never leaves a
//! stale lock behind.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file's name.
pub const LOCK_FILE: &str = "jitpilot.lock";
/// The endpoint address file's name.
pub const ENDPOINT_ADDR_FILE: &str = "endpoint.addr";
/// The AWS API address file's name.
pub const API_ADDR_FILE: &str = "api.addr";
/// The endpoint CA certificate devices trust.
pub const ENDPOINT_CA_FILE: &str = "endpoint-ca.pem";
/// The fleet definition override.
pub use crate::fleet::FLEET_FILE;

/// What can go wrong with the data dir. Messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Another process owns the data dir; `owner` is what its lock file says
    /// (`pid 1234 (`jitpilot serve`)`).
    #[error("the data dir {dir} is in use by {owner}; stop that process first, or pass another --data-dir (`jitpilot status` works beside it)")]
    Locked { dir: PathBuf, owner: String },
    /// A file of the data dir could not be created, read or written.
    #[error("I/O error on {path}: {source}; check that the data dir is writable, or pass another --data-dir")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Result alias for data dir operations.
pub type DataDirResult<T> = Result<T, DataDirError>;

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Paths inside a data dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// A data dir rooted at `root` (nothing is created yet).
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    /// Creates the directory (0700: it holds the master key and device keys).
    pub fn create(&self) -> DataDirResult<()> {
        create_private_dir(&self.root)
    }

    /// The data dir itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The SQLite database.
    pub fn db_path(&self) -> PathBuf {
        self.root.join(crate::store::DB_FILE)
    }

    /// The master key (local KMS).
    pub fn master_key_path(&self) -> PathBuf {
        self.root.join(crate::store::MASTER_KEY_FILE)
    }

    /// Parent of every device's credential folder.
    pub fn devices_dir(&self) -> PathBuf {
        self.root.join("devices")
    }

    /// One device's credential folder (DESIGN §2.3).
    pub fn device_dir(&self, serial: &str) -> PathBuf {
        self.devices_dir().join(serial)
    }

    /// The endpoint CA certificate, for devices outside this process.
    pub fn endpoint_ca_path(&self) -> PathBuf {
        self.root.join(ENDPOINT_CA_FILE)
    }

    /// The log directory.
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// The lock file.
    pub fn lock_path(&self) -> PathBuf {
        self.root.join(LOCK_FILE)
    }

    /// The endpoint address file.
    pub fn endpoint_addr_path(&self) -> PathBuf {
        self.root.join(ENDPOINT_ADDR_FILE)
    }

    /// The AWS API address file.
    pub fn api_addr_path(&self) -> PathBuf {
        self.root.join(API_ADDR_FILE)
    }

    /// The fleet definition override.
    pub fn fleet_path(&self) -> PathBuf {
        self.root.join(FLEET_FILE)
    }

    /// Takes the data dir for writing. `command` is recorded in the lock file
    /// (with the pid) so that a second writer can say who holds it.
    pub fn lock(&self, command: &str) -> DataDirResult<DataDirLock> {
        self.create()?;
        let path = self.lock_path();
        // Not truncated on open: until we hold the lock, the text inside is
        // the owner's, and a refused writer reads it for its error message.
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut owner = String::new();
                let _ = file.read_to_string(&mut owner);
                let owner = owner.trim();
                return Err(DataDirError::Locked {
                    dir: self.root.clone(),
                    owner: if owner.is_empty() {
                        "another jitpilot process".to_string()
                    } else {
                        owner.to_string()
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_error(&path)(e)),
        }
        let text = format!("pid {} (`{}`)\n", std::process::id(), command);
        file.set_len(0).map_err(io_error(&path))?;
        file.rewind().map_err(io_error(&path))?;
        file.write_all(text.as_bytes()).map_err(io_error(&path))?;
        file.flush().map_err(io_error(&path))?;
        Ok(DataDirLock { _file: file, path })
    }

    /// Records where the running endpoint listens; the file is removed when
    /// the returned guard is dropped (shutdown).
    pub fn write_endpoint_addr(&self, addr: &str) -> DataDirResult<EndpointAddrFile> {
        let path = self.endpoint_addr_path();
        write_atomically(&path, format!("{addr}\n").as_bytes(), false)?;
        Ok(EndpointAddrFile { path })
    }

    /// The running endpoint's `host:port`, if a cloud process is serving.
    pub fn read_endpoint_addr(&self) -> Option<String> {
        read_addr(&self.endpoint_addr_path())
    }

    /// Records where the running AWS API listens; the file is removed when
    /// the returned guard is dropped (shutdown).
    pub fn write_api_addr(&self, addr: &str) -> DataDirResult<EndpointAddrFile> {
        let path = self.api_addr_path();
        write_atomically(&path, format!("{addr}\n").as_bytes(), false)?;
        Ok(EndpointAddrFile { path })
    }

    /// The running AWS API's `host:port`, if a cloud process serves it.
    pub fn read_api_addr(&self) -> Option<String> {
        read_addr(&self.api_addr_path())
    }
}

fn read_addr(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let addr = text.trim();
    (!addr.is_empty()).then(|| addr.to_string())
}

/// Holding this means owning the data dir for writing. Dropping it (or the
/// process ending) releases the lock.
#[derive(Debug)]
pub struct DataDirLock {
    /// The open, locked file: the OS lock lives as long as the descriptor.
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// An address file (`endpoint.addr`, `api.addr`), removed on drop.
#[derive(Debug)]
pub struct EndpointAddrFile {
    path: PathBuf,
}

impl Drop for EndpointAddrFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Creates a directory (and parents) readable only by its owner.
pub(crate) fn create_private_dir(path: &Path) -> DataDirResult<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path).map_err(io_error(path))
}

/// Writes `bytes` to `path` through a temporary file and a rename, so that a
/// reader never sees a half-written file. `private` makes it 0600.
///
/// No fsync: `init` writes thousands of these, and every reader checks what it
/// reads (a factory cert must chain to the Vendor CA and match its key), so a
/// file torn by a power cut is detected and rewritten by the next `init`.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8], private: bool) -> DataDirResult<()> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(if private { 0o600 } else { 0o644 });
        }
        #[cfg(not(unix))]
        let _ = private;
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io_error(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_with_the_owners_pid_and_command() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().join("d"));
        let held = dir.lock("jitpilot serve").unwrap();
        let err = dir.lock("jitpilot init").unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, DataDirError::Locked { .. }));
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert!(text.contains("jitpilot serve"), "{text}");
        drop(held);
        // Released on drop: the next writer gets it.
        let again = dir.lock("jitpilot init").unwrap();
        assert!(std::fs::read_to_string(again.path())
            .unwrap()
            .contains("jitpilot init"));
    }

    #[test]
    fn endpoint_addr_lives_as_long_as_its_guard() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        assert_eq!(dir.read_endpoint_addr(), None);
        let guard = dir.write_endpoint_addr("127.0.0.1:8883").unwrap();
        assert_eq!(dir.read_endpoint_addr().as_deref(), Some("127.0.0.1:8883"));
        drop(guard);
        assert_eq!(dir.read_endpoint_addr(), None);
        let guard = dir.write_api_addr("127.0.0.1:4566").unwrap();
        assert_eq!(dir.read_api_addr().as_deref(), Some("127.0.0.1:4566"));
        drop(guard);
        assert_eq!(dir.read_api_addr(), None);
    }

    #[test]
    fn private_files_are_0600() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("k.pem");
        write_atomically(&path, b"x", true).unwrap();
        write_atomically(&path, b"y", true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"y");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
}
