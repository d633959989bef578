//! The store's file format: the schema migrations in order, the marks that
//! tell a jitpilot database from any other SQLite file, and the checks
//! `Store::open` runs before it trusts a file (never a silent reset).

use super::{Store, StoreError, StoreResult, MASTER_KEY_FILE, STATEMENT_CACHE};
use std::path::Path;

/// Ordered schema migrations. Version N is `MIGRATIONS[N-1]`; never edit a
/// released entry, append a new one.
pub(super) const MIGRATIONS: &[&str] = &[
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
    // v2: the AWS API's DynamoDB, SSM and Lambda (`tables.rs`, `params.rs`,
    // `function_packages.rs`): a table's key type and creation time; an
    // item's DynamoDB-typed form beside its plain JSON (NULL when written
    // by jitpilot's own plain writers: the types are then derived from the
    // JSON); what Lambda's API set on a stack's function.
    r#"
    ALTER TABLE tables ADD COLUMN hash_key_type TEXT NOT NULL DEFAULT 'S';
    ALTER TABLE tables ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE items ADD COLUMN typed TEXT;
    CREATE TABLE function_packages (
        name TEXT PRIMARY KEY,               -- the function's name (functions.name)
        zip BLOB,                            -- the deployment package, or NULL
        code_sha256 TEXT,                    -- base64 SHA-256 of zip, as Lambda's CodeSha256
        runtime TEXT,                        -- NULL: the template's
        handler TEXT,
        timeout INTEGER,
        memory_size INTEGER,
        description TEXT,
        last_modified INTEGER NOT NULL
    );
    "#,
    // v3 (the AWS API's CloudFormation and S3): change sets; S3 buckets,
    // objects and multipart uploads (bodies are files, see objects.rs).
    r#"
    CREATE TABLE change_sets (
        id TEXT PRIMARY KEY,                 -- its ARN
        name TEXT NOT NULL,
        stack TEXT NOT NULL,
        kind TEXT NOT NULL,                  -- CREATE | UPDATE
        status TEXT NOT NULL,
        status_reason TEXT,
        execution_status TEXT NOT NULL,
        template TEXT NOT NULL,
        parameters TEXT NOT NULL,            -- JSON object
        changes TEXT NOT NULL,               -- JSON list
        description TEXT,
        created_at INTEGER NOT NULL,
        UNIQUE (stack, name)
    );
    CREATE TABLE s3_buckets (
        name TEXT PRIMARY KEY,
        region TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE s3_objects (
        bucket TEXT NOT NULL,
        key TEXT NOT NULL,
        size INTEGER NOT NULL,
        etag TEXT NOT NULL,
        content_type TEXT,
        metadata TEXT NOT NULL DEFAULT '{}',
        last_modified INTEGER NOT NULL,
        blob TEXT NOT NULL,                  -- file name in <data-dir>/objects
        PRIMARY KEY (bucket, key)
    );
    CREATE TABLE s3_uploads (
        id TEXT PRIMARY KEY,
        bucket TEXT NOT NULL,
        key TEXT NOT NULL,
        content_type TEXT,
        metadata TEXT NOT NULL DEFAULT '{}',
        initiated INTEGER NOT NULL
    );
    CREATE TABLE s3_parts (
        upload TEXT NOT NULL,
        part_number INTEGER NOT NULL,
        blob TEXT NOT NULL,
        size INTEGER NOT NULL,
        etag TEXT NOT NULL,
        PRIMARY KEY (upload, part_number)
    );
    "#,
    // v4: retained MQTT messages survive a restart (AWS keeps them).
    r#"
    CREATE TABLE retained_messages (
        topic TEXT PRIMARY KEY,
        payload BLOB NOT NULL,
        qos INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    "#,
];

/// `PRAGMA application_id` of a jitpilot database ("JITP" in ASCII): tells a
/// jitpilot database from any other SQLite file.
const APPLICATION_ID: i64 = 0x4A49_5450;

/// How long a statement waits for another process's write lock (e.g. `status`
/// reading beside a running cloud) before reporting "database is locked".
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Refuses to create a database where one was lost: `jitpilot.db` missing
/// or empty (0 bytes) while the data dir holds a cloud's state — a master
/// key (whose secrets lived in that database) or device credential folders
/// (whose certificates it registered). A new, empty cloud there would be
/// served as if nothing happened, and `init` would re-issue credentials
/// over the devices' old ones.
pub(super) fn check_not_lost(data_dir: &Path, path: &Path) -> StoreResult<()> {
    let what = match std::fs::metadata(path) {
        Ok(meta) if meta.len() > 0 => return Ok(()),
        Ok(_) => "empty (0 bytes)",
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "missing",
        Err(source) => {
            return Err(StoreError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let mut evidence = Vec::new();
    if data_dir.join(MASTER_KEY_FILE).exists() {
        evidence.push(MASTER_KEY_FILE.to_string());
    }
    let devices = data_dir.join("devices");
    if std::fs::read_dir(&devices).is_ok_and(|mut entries| entries.next().is_some()) {
        evidence.push("devices/".to_string());
    }
    if evidence.is_empty() {
        return Ok(());
    }
    Err(StoreError::Missing {
        path: path.to_path_buf(),
        dir: data_dir.to_path_buf(),
        what,
        evidence: evidence.join(", "),
    })
}

/// Refuses a file that is not a jitpilot database before anything writes to it.
pub(super) fn check_is_jitpilot(conn: &rusqlite::Connection, path: &Path) -> StoreResult<()> {
    let corrupt = |reason: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    // Reading the schema is the first access to the file: garbage bytes fail
    // here with "file is not a database".
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| corrupt(e.to_string()))?;
    let app_id: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(|e| corrupt(e.to_string()))?;
    if app_id != 0 && app_id != APPLICATION_ID {
        return Err(corrupt(format!(
            "its application id is {app_id:#x}, jitpilot's is {APPLICATION_ID:#x}"
        )));
    }
    if app_id == 0 && tables > 0 {
        return Err(corrupt(format!(
            "it holds {tables} table(s) but no jitpilot schema"
        )));
    }
    let version = user_version(conn, path)?;
    if version > Store::supported_schema_version() {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: version,
            supported: Store::supported_schema_version(),
        });
    }
    if version > 0 {
        // Catches a file whose pages were damaged after its header.
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| corrupt(e.to_string()))?;
        if check != "ok" {
            return Err(corrupt(check));
        }
    }
    Ok(())
}

/// WAL (readers never block the writer), `synchronous=NORMAL` (durable at
/// checkpoints, fast commits), and a busy timeout for the cross-process case.
pub(super) fn configure(
    conn: &rusqlite::Connection,
    path: &Path,
    writable: bool,
) -> StoreResult<()> {
    let err = |source| StoreError::Sqlite {
        path: path.to_path_buf(),
        source: Box::new(source),
    };
    conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    if writable {
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("cannot switch to WAL journal mode (got {mode})"),
            });
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
    }
    Ok(())
}

pub(super) fn user_version(conn: &rusqlite::Connection, path: &Path) -> StoreResult<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
}

/// Applies every migration above the database's `user_version`, each in its
/// own transaction together with the version bump.
pub(super) fn migrate(conn: &rusqlite::Connection, path: &Path) -> StoreResult<()> {
    let err = |source| StoreError::Sqlite {
        path: path.to_path_buf(),
        source: Box::new(source),
    };
    let current = user_version(conn, path)?;
    for (index, sql) in MIGRATIONS.iter().enumerate() {
        let version = index as i64 + 1;
        if version <= current {
            continue;
        }
        let batch = format!(
            "BEGIN IMMEDIATE;\n{sql}\nPRAGMA application_id = {APPLICATION_ID};\nPRAGMA user_version = {version};\nCOMMIT;"
        );
        if let Err(e) = conn.execute_batch(&batch) {
            // Leave the database as it was before this migration.
            let _ = conn.execute_batch("ROLLBACK");
            return Err(err(e));
        }
        tracing::info!(path = %path.display(), version, "database migrated");
    }
    Ok(())
}
