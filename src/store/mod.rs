//! The local cloud's persistent state: one SQLite file (WAL) in the data dir.
//!
//! Layout:
//! - `mod.rs`      opening, batches, errors
//! - `schema.rs`   the schema migrations and the checks before a file is trusted
//! - `registry.rs` AWS IoT's registry: CA certificates, registration code, certificates,
//!   things and their principals
//! - `policies.rs` IoT policies, versions and attachments
//! - `rules.rs`    topic rules and functions ("Lambdas") deployed by the stack
//! - `tables.rs`   named tables of JSON items with a hash key ("DynamoDB"), also in DynamoDB's typed form
//! - `function_packages.rs` what Lambda's API set on a stack's function: code package, configuration
//! - `params.rs`   the parameter store ("SSM"); SecureString values sealed by `keyring.rs`
//! - `keyring.rs`  the local KMS: an AEAD key in a 0600 master-key file
//! - `stacks.rs`   stacks, their resources and events ("CloudFormation")
//! - `change_sets.rs` CloudFormation change sets awaiting execution
//! - `objects.rs`  the local S3: buckets and objects (bodies as files)
//! - `uploads.rs`  the local S3's multipart uploads
//! - `events.rs`   the event log, pruned by age and size
//! - `retained.rs` the MQTT endpoint's retained messages (kept across restarts, as AWS does)
//!
//! Every method is synchronous and short; callers on async tasks use
//! `tokio::task::spawn_blocking` for batches.

mod change_sets;
mod events;
mod function_packages;
mod keyring;
mod objects;
mod params;
mod policies;
mod registry;
mod retained;
mod rules;
mod schema;
mod stacks;
mod tables;
mod uploads;

pub use change_sets::ChangeSet;
pub use events::EventRetention;
pub use function_packages::{FunctionPackage, FunctionSettings};
pub use keyring::Keyring;
pub use objects::{Bucket, ObjectMeta, Part, StagedBody, Upload, OBJECTS_DIR};
pub use params::StoredParameter;
pub use retained::RetainedRow;
pub use tables::{ItemTx, TableSchema};

use parking_lot::ReentrantMutex;
use schema::{check_is_jitpilot, check_not_lost, configure, migrate, user_version, MIGRATIONS};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// File name of the database inside the data dir.
pub const DB_FILE: &str = "jitpilot.db";
/// File name of the master key inside the data dir (0600).
pub const MASTER_KEY_FILE: &str = "master.key";

/// What can go wrong with the store. Every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed on the database file.
    #[error("database error in {path}: {source}. If the file is corrupt, move it aside and run `jitpilot deploy` and `jitpilot init` again")]
    Sqlite {
        path: PathBuf,
        /// Boxed: keeps every `Result<_, StoreError>` small.
        #[source]
        source: Box<rusqlite::Error>,
    },
    /// The file is not a jitpilot database, or is damaged.
    #[error("{path} is not a jitpilot database (or is corrupt): {reason}. Move it aside or pick another --data-dir; nothing was changed")]
    Corrupt { path: PathBuf, reason: String },
    /// The database was written by a newer jitpilot.
    #[error("the database {path} has schema version {found}, newer than this jitpilot understands ({supported}); upgrade jitpilot")]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    /// The master key is missing, unreadable, of the wrong size, or does not
    /// open a sealed value.
    #[error("master key {path}: {reason}. The parameter store cannot be read without it; restore the file or start a fresh --data-dir")]
    MasterKey { path: PathBuf, reason: String },
    /// A file of the store could not be read or written.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The named object does not exist.
    #[error("{kind} {name} not found")]
    NotFound { kind: &'static str, name: String },
    /// The named object exists already.
    #[error("{kind} {name} already exists")]
    AlreadyExists { kind: &'static str, name: String },
    /// The operation is not allowed in the object's current state (AWS's
    /// `ConflictException` / `InvalidRequestException`).
    #[error("{kind} {name}: {reason}")]
    Conflict {
        kind: &'static str,
        name: String,
        reason: String,
    },
    /// The input is malformed.
    #[error("invalid {what}: {reason}")]
    Invalid { what: String, reason: String },
    /// The database is missing or empty in a data dir that has state
    /// (`master.key`, `devices/`): never silently replaced by a new one.
    #[error("{path} is {what}, but {dir} holds a jitpilot cloud's state ({evidence}); nothing was created or changed. Restore the database from a backup, or to start over move {dir} aside (or pass another --data-dir) and run `jitpilot deploy` and `jitpilot init`")]
    Missing {
        path: PathBuf,
        dir: PathBuf,
        /// "missing" or "empty (0 bytes)".
        what: &'static str,
        /// What shows that state existed: `master.key`, `devices/`.
        evidence: String,
    },
}

/// Result alias for store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// Handle to the store. Cheap to clone; all clones share one connection.
#[derive(Clone)]
pub struct Store {
    /// The one connection. The lock is re-entrant so that a [`Store::batch`]
    /// can hold it across many of the store's own calls on its thread
    /// (each of which locks it again); other threads wait for the batch.
    conn: Arc<ReentrantMutex<RefCell<rusqlite::Connection>>>,
    keyring: Keyring,
    path: PathBuf,
    /// The event log's retention and append count (shared by clones).
    events: Arc<EventLogState>,
    /// Opened with [`Store::open_read_only`]: never writes.
    read_only: bool,
}

/// What the event log keeps, and how many rows were appended since open.
#[derive(Debug, Default)]
struct EventLogState {
    retention: Mutex<EventRetention>,
    appends: std::sync::atomic::AtomicU64,
}

impl Store {
    /// Opens (creating if needed) the store in `data_dir`: `jitpilot.db` and
    /// `master.key`. Runs pending migrations. Refuses a database that is not
    /// jitpilot's, is corrupt or is newer, a master key that is unreadable
    /// or of the wrong size, and a missing or empty database in a data dir
    /// that holds state — never silently resets.
    pub fn open(data_dir: &Path) -> StoreResult<Store> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Io {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        check_not_lost(data_dir, &path)?;
        let conn = rusqlite::Connection::open(&path).map_err(|source| StoreError::Sqlite {
            path: path.clone(),
            source: Box::new(source),
        })?;
        // Nothing is written before both the database and the master key
        // check out: a refused data dir is left exactly as it was.
        check_is_jitpilot(&conn, &path)?;
        let key_path = data_dir.join(MASTER_KEY_FILE);
        let keyring = if user_version(&conn, &path)? == 0 {
            // A fresh database: its master key may be created now.
            Keyring::load_or_create(&key_path)?
        } else {
            // Existing secrets need the existing key; a new one would make
            // them unreadable, so a missing key is an error, never replaced.
            Keyring::load(&key_path)?
        };
        configure(&conn, &path, true)?;
        migrate(&conn, &path)?;
        Ok(Store {
            conn: Arc::new(ReentrantMutex::new(RefCell::new(conn))),
            keyring,
            path,
            events: Arc::default(),
            read_only: false,
        })
    }

    /// Opens an existing store for reading only, beside a process that owns
    /// the data dir (`jitpilot status` next to a running TUI or `serve`).
    /// Never creates or migrates anything: a missing database is `NotFound`,
    /// an older schema is `Conflict` (let the owner migrate it first).
    pub fn open_read_only(data_dir: &Path) -> StoreResult<Store> {
        let path = data_dir.join(DB_FILE);
        check_not_lost(data_dir, &path)?;
        if !path.exists() {
            return Err(StoreError::NotFound {
                kind: "database",
                name: path.display().to_string(),
            });
        }
        let conn = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError::Sqlite {
            path: path.clone(),
            source: Box::new(source),
        })?;
        // The database first: a file that is not one is the error to report.
        check_is_jitpilot(&conn, &path)?;
        let keyring = Keyring::load(&data_dir.join(MASTER_KEY_FILE))?;
        configure(&conn, &path, false)?;
        let version = user_version(&conn, &path)?;
        if version != Store::supported_schema_version() {
            return Err(StoreError::Conflict {
                kind: "database",
                name: path.display().to_string(),
                reason: format!(
                    "schema version {version}, this jitpilot reads {}; run a jitpilot command that owns the data dir (e.g. `jitpilot serve` or `jitpilot deploy`, with no other jitpilot running) to migrate it",
                    Store::supported_schema_version()
                ),
            });
        }
        Ok(Store {
            conn: Arc::new(ReentrantMutex::new(RefCell::new(conn))),
            keyring,
            path,
            events: Arc::default(),
            read_only: true,
        })
    }

    /// The schema version the database is at.
    pub fn schema_version(&self) -> StoreResult<i64> {
        self.with_conn(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
    }

    /// The latest schema version this build knows.
    pub fn supported_schema_version() -> i64 {
        MIGRATIONS.len() as i64
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The keyring sealing SecureString values.
    pub(crate) fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Runs `f` on the connection, mapping SQLite errors to [`StoreError::Sqlite`].
    pub(crate) fn with_conn<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> StoreResult<T> {
        self.with_raw(|conn| f(conn).map_err(|source| self.sql_error(source)))
    }

    /// Runs `f` inside one transaction: all of its writes land, or none do.
    /// `f` gets the raw connection (the store's own methods would find the
    /// connection busy here). Inside a [`Store::batch`] this is a savepoint
    /// of the batch's transaction: its writes are undone if `f` fails, and
    /// land with the batch.
    pub(crate) fn with_tx<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        self.with_raw(|conn| {
            let sql = |source| self.sql_error(source);
            if conn.is_autocommit() {
                let tx = conn
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(sql)?;
                let value = f(&tx)?;
                tx.commit().map_err(sql)?;
                Ok(value)
            } else {
                let sp = conn.savepoint().map_err(sql)?;
                let value = f(&sp)?;
                sp.commit().map_err(sql)?;
                Ok(value)
            }
        })
    }

    /// Runs `f` with every write the store makes on this thread inside one
    /// transaction: they all land with one commit when `f` returns `Ok`,
    /// none when it returns `Err` (or panics). Other threads' calls wait
    /// until the batch ends, so keep `f` to store work (no signing, no
    /// network). A batch inside a batch is part of the outer one.
    ///
    /// Why: each commit costs a WAL append and the locking around it; JITP
    /// and a rotation-function invocation each made five or six of them
    /// for what is one step of the walkthrough, and one transaction is also
    /// the simpler crash story (all of the step, or none of it).
    pub fn batch<T, E: From<StoreError>>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let lock = self.conn.lock();
        let outer = lock
            .try_borrow()
            .map(|conn| conn.is_autocommit())
            .map_err(|_| self.busy())?;
        if !outer {
            return f();
        }
        let run = |sql: &str| -> StoreResult<()> {
            let conn = lock.try_borrow().map_err(|_| self.busy())?;
            conn.execute_batch(sql)
                .map_err(|source| self.sql_error(source))
        };
        run("BEGIN IMMEDIATE")?;
        // Rolls the batch back unless it committed, also when `f` panics.
        struct Open<'a>(&'a RefCell<rusqlite::Connection>, bool);
        impl Drop for Open<'_> {
            fn drop(&mut self) {
                if !self.1 {
                    if let Ok(conn) = self.0.try_borrow() {
                        let _ = conn.execute_batch("ROLLBACK");
                    }
                }
            }
        }
        let mut open = Open(&lock, false);
        let value = f()?;
        run("COMMIT")?;
        open.1 = true;
        Ok(value)
    }

    /// Runs `f` on the connection, holding the lock (re-entrant: a batch on
    /// this thread already holds it).
    pub(super) fn with_raw<T>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let lock = self.conn.lock();
        // Borrowed only for one call of the store, never across a call
        // back into it, so this cannot fail; if it ever did, it is an
        // error to report, not a panic.
        let mut conn = lock.try_borrow_mut().map_err(|_| self.busy())?;
        f(&mut conn)
    }

    /// The connection was found in use by an enclosing call of this thread.
    fn busy(&self) -> StoreError {
        StoreError::Conflict {
            kind: "database",
            name: self.path.display().to_string(),
            reason: "the store was called back while one of its calls was running (a bug in jitpilot; please report it)".into(),
        }
    }

    /// Maps a SQLite error on this store's file.
    pub(crate) fn sql_error(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source: Box::new(source),
        }
    }
}

/// Cached statements: the endpoint and the rotation function run the same
/// few statements thousands of times a second during a fleet onboarding;
/// SQLite parses each once per connection instead of once per call.
pub(crate) trait Cached {
    /// `execute` through the statement cache.
    fn execute_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    /// `query_row` through the statement cache.
    fn query_row_cached<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
}

impl Cached for rusqlite::Connection {
    fn execute_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn query_row_cached<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// How many prepared statements each connection keeps (all of the store's).
pub(super) const STATEMENT_CACHE: usize = 128;

/// Maps a text column to a [`crate::model::CertificateStatus`].
pub(crate) fn status_col(
    row: &rusqlite::Row<'_>,
    idx: usize,
) -> rusqlite::Result<crate::model::CertificateStatus> {
    let text: String = row.get(idx)?;
    crate::model::CertificateStatus::parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            rusqlite::types::Type::Text,
            format!("unknown certificate status {text:?}").into(),
        )
    })
}

/// Maps a JSON text column.
pub(crate) fn json_col<T: serde::de::DeserializeOwned>(
    row: &rusqlite::Row<'_>,
    idx: usize,
) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// Serializes a value for a JSON text column.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid {
        what: "JSON value".into(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests;
