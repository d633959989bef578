//! The local cloud's persistent state: one SQLite file (WAL) in the data dir.
//!
//! Layout:
//! - `mod.rs`      opening, the data-dir lock, schema migrations, errors
//! - `registry.rs` CA certificates, certificates, things, policies, attachments,
//!                 registration code, topic rules and functions (AWS IoT's registry)
//! - `tables.rs`   named tables of JSON items with a hash key ("DynamoDB")
//! - `params.rs`   the parameter store ("SSM"); SecureString values sealed by `keyring.rs`
//! - `keyring.rs`  the local KMS: an AEAD key in a 0600 master-key file
//! - `stacks.rs`   stacks, their resources and events ("CloudFormation")
//! - `events.rs`   the append-only event log
//!
//! Every method is synchronous and short; callers on async tasks use
//! `tokio::task::spawn_blocking` for batches.

mod events;
mod keyring;
mod params;
mod registry;
mod stacks;
mod tables;

pub use keyring::Keyring;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// File name of the database inside the data dir.
pub const DB_FILE: &str = "jitpilot.db";
/// File name of the master key inside the data dir (0600).
pub const MASTER_KEY_FILE: &str = "master.key";

/// What can go wrong with the store. Every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error in {path}: {source}. If the file is corrupt, move it aside and run `jitpilot deploy` and `jitpilot init` again")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{path} is not a jitpilot database (or is corrupt): {reason}. Move it aside or pick another --data-dir; nothing was changed")]
    Corrupt { path: PathBuf, reason: String },
    #[error("the database {path} has schema version {found}, newer than this jitpilot understands ({supported}); upgrade jitpilot")]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("master key {path}: {reason}. The parameter store cannot be read without it; restore the file or start a fresh --data-dir")]
    MasterKey { path: PathBuf, reason: String },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{kind} {name} not found")]
    NotFound { kind: &'static str, name: String },
    #[error("{kind} {name} already exists")]
    AlreadyExists { kind: &'static str, name: String },
    #[error("{kind} {name}: {reason}")]
    Conflict {
        kind: &'static str,
        name: String,
        reason: String,
    },
    #[error("invalid {what}: {reason}")]
    Invalid { what: String, reason: String },
}

/// Result alias for store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// Handle to the store. Cheap to clone; all clones share one connection.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<rusqlite::Connection>>,
    keyring: Keyring,
    path: PathBuf,
}

/// Ordered schema migrations. Version N is `MIGRATIONS[N-1]`; never edit a
/// released entry, append a new one.
const MIGRATIONS: &[&str] = &[
    // v1: the whole walkthrough's state.
    r#"
    CREATE TABLE ca_certificates (
        id TEXT PRIMARY KEY,
        pem TEXT NOT NULL,
        status TEXT NOT NULL,
        auto_registration INTEGER NOT NULL DEFAULT 0,
        registration_config TEXT,            -- JSON RegistrationConfig or NULL
        label TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL
    );
    CREATE TABLE certificates (
        id TEXT PRIMARY KEY,
        ca_id TEXT,
        pem TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX certificates_ca ON certificates(ca_id);
    CREATE TABLE things (
        name TEXT PRIMARY KEY,
        attributes TEXT NOT NULL DEFAULT '{}',
        created_at INTEGER NOT NULL
    );
    CREATE TABLE thing_principals (
        thing TEXT NOT NULL,
        principal TEXT NOT NULL,             -- certificateId
        PRIMARY KEY (thing, principal)
    );
    CREATE INDEX thing_principals_principal ON thing_principals(principal);
    CREATE TABLE policies (
        name TEXT PRIMARY KEY,
        document TEXT NOT NULL,
        version INTEGER NOT NULL DEFAULT 1
    );
    CREATE TABLE policy_versions (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        document TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (name, version)
    );
    CREATE TABLE policy_targets (
        policy TEXT NOT NULL,
        target TEXT NOT NULL,                -- certificateId
        PRIMARY KEY (policy, target)
    );
    CREATE INDEX policy_targets_target ON policy_targets(target);
    CREATE TABLE registration_code (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        code TEXT NOT NULL
    );
    CREATE TABLE topic_rules (
        name TEXT PRIMARY KEY,
        sql TEXT NOT NULL,
        actions TEXT NOT NULL,
        enabled INTEGER NOT NULL DEFAULT 1
    );
    CREATE TABLE functions (
        name TEXT PRIMARY KEY,
        arn TEXT NOT NULL,
        handler TEXT NOT NULL,
        role_arn TEXT NOT NULL,
        environment TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE tables (
        name TEXT PRIMARY KEY,
        hash_key TEXT NOT NULL
    );
    CREATE TABLE items (
        table_name TEXT NOT NULL,
        hash_key TEXT NOT NULL,
        item TEXT NOT NULL,                  -- JSON object
        PRIMARY KEY (table_name, hash_key)
    );
    CREATE TABLE parameters (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL,                  -- String | SecureString
        value BLOB NOT NULL,                 -- plaintext for String, nonce||ciphertext for SecureString
        version INTEGER NOT NULL,
        last_modified INTEGER NOT NULL
    );
    CREATE TABLE stacks (
        name TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        template TEXT NOT NULL,
        parameters TEXT NOT NULL DEFAULT '{}',
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE stack_resources (
        stack TEXT NOT NULL,
        logical_id TEXT NOT NULL,
        resource_type TEXT NOT NULL,
        physical_id TEXT NOT NULL,
        status TEXT NOT NULL,
        properties TEXT NOT NULL,
        PRIMARY KEY (stack, logical_id)
    );
    CREATE TABLE stack_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        stack TEXT NOT NULL,
        timestamp INTEGER NOT NULL,
        logical_id TEXT NOT NULL,
        resource_type TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT
    );
    CREATE INDEX stack_events_stack ON stack_events(stack, seq);
    CREATE TABLE event_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX event_log_subject ON event_log(subject, seq);
    "#,
];

impl Store {
    /// Opens (creating if needed) the store in `data_dir`: `jitpilot.db` and
    /// `master.key`. Runs pending migrations. Refuses a database that is not
    /// jitpilot's, is corrupt or is newer, and a master key that is unreadable
    /// or of the wrong size — never silently resets.
    pub fn open(data_dir: &Path) -> StoreResult<Store> {
        todo!("H1: open, WAL, busy_timeout, migrate, keyring")
    }

    /// The schema version the database is at.
    pub fn schema_version(&self) -> StoreResult<i64> {
        todo!()
    }

    /// The latest schema version this build knows.
    pub fn supported_schema_version() -> i64 {
        MIGRATIONS.len() as i64
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
