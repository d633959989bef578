//! The local S3's storage: buckets, objects and multipart uploads — where
//! `aws s3 cp`, `aws cloudformation deploy --s3-bucket` and `package` put
//! templates and function zips.
//!
//! Rows in the database, bodies in files (`<data-dir>/objects/<id>`). Objects
//! may be tens of MB: as SQLite BLOBs each would be read whole into memory
//! and copied through the WAL; as files they stream (a multipart upload is
//! concatenated on disk, a ranged GET reads only its range). The rows keep
//! what must change atomically and be listed in key order: key → body file,
//! ETag, size, metadata.
//!
//! Nothing is half-applied: a body is first written to a new file (temp
//! name, synced, renamed to its final name), then its row is committed in
//! one transaction; the body it replaces is removed after the commit. A
//! reader sees the old object or the new one, never a mix. A crash between
//! the rename and the commit leaves one unreferenced file, never a row
//! without its body. Multipart uploads: `uploads.rs`.

use super::{json_col, to_json, Cached, Store, StoreError, StoreResult};
use crate::model::EpochMillis;
use md5::{Digest, Md5};
use rusqlite::OptionalExtension;
use serde_json::{Map, Value};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The folder of object and part bodies inside the data dir.
pub const OBJECTS_DIR: &str = "objects";

/// A bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub name: String,
    /// The `LocationConstraint` it was created with (`us-east-1` when none).
    pub region: String,
    pub created_at: EpochMillis,
}

/// An object's description (its body is a file, see [`Store::read_object`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectMeta {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    /// The ETag without quotes: the body's MD5 in hex, or for a multipart
    /// upload the MD5 of the parts' MD5s followed by `-<parts>`.
    pub etag: String,
    pub content_type: Option<String>,
    /// User metadata (`x-amz-meta-<name>` → value).
    pub metadata: Map<String, Value>,
    pub last_modified: EpochMillis,
    /// The body's file name in [`OBJECTS_DIR`].
    pub blob: String,
}

/// A body written to disk that is not an object (or part) yet.
#[derive(Debug)]
pub struct StagedBody {
    path: PathBuf,
    pub size: u64,
    /// The body's MD5.
    pub md5: [u8; 16],
}

impl Drop for StagedBody {
    /// A staged body nobody committed is removed (committing renames it away).
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A multipart upload in progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    pub id: String,
    pub bucket: String,
    pub key: String,
    pub content_type: Option<String>,
    pub metadata: Map<String, Value>,
    pub initiated: EpochMillis,
}

/// One uploaded part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub number: u32,
    pub size: u64,
    /// The part's MD5 in hex.
    pub etag: String,
    pub blob: String,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn new_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

pub(super) fn bucket_not_found(name: &str) -> StoreError {
    StoreError::NotFound {
        kind: "bucket",
        name: name.to_string(),
    }
}

const OBJECT_COLUMNS: &str = "bucket, key, size, etag, content_type, metadata, last_modified, blob";

fn object_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ObjectMeta> {
    Ok(ObjectMeta {
        bucket: r.get(0)?,
        key: r.get(1)?,
        size: r.get::<_, i64>(2)?.try_into().unwrap_or(0),
        etag: r.get(3)?,
        content_type: r.get(4)?,
        metadata: json_col(r, 5)?,
        last_modified: r.get(6)?,
        blob: r.get(7)?,
    })
}

pub(super) fn size_col(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

impl Store {
    /// Where bodies live: `<data-dir>/objects`.
    pub fn objects_dir(&self) -> PathBuf {
        self.path()
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(OBJECTS_DIR)
    }

    fn blob_path(&self, blob: &str) -> PathBuf {
        self.objects_dir().join(blob)
    }

    fn new_staging_file(&self) -> StoreResult<(std::fs::File, PathBuf)> {
        let dir = self.objects_dir();
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let path = dir.join(format!("staging-{}", new_id()));
        let file = std::fs::File::create(&path).map_err(io_error(&path))?;
        Ok((file, path))
    }

    /// Writes `body` to a staging file, with its MD5.
    pub fn stage_body(&self, body: &[u8]) -> StoreResult<StagedBody> {
        let (mut file, path) = self.new_staging_file()?;
        let staged = StagedBody {
            path,
            size: body.len() as u64,
            md5: Md5::digest(body).into(),
        };
        file.write_all(body)
            .and_then(|()| file.sync_all())
            .map_err(io_error(&staged.path))?;
        Ok(staged)
    }

    /// Concatenates parts' bodies into one staging file, streaming.
    pub fn stage_parts(&self, parts: &[Part]) -> StoreResult<StagedBody> {
        let (mut file, path) = self.new_staging_file()?;
        let mut staged = StagedBody {
            path,
            size: 0,
            md5: [0; 16],
        };
        let mut md5 = Md5::new();
        let mut buf = vec![0u8; 1 << 20];
        for part in parts {
            let part_path = self.blob_path(&part.blob);
            let mut input = std::fs::File::open(&part_path).map_err(io_error(&part_path))?;
            loop {
                let n = input.read(&mut buf).map_err(io_error(&part_path))?;
                if n == 0 {
                    break;
                }
                md5.update(&buf[..n]);
                file.write_all(&buf[..n]).map_err(io_error(&staged.path))?;
                staged.size += n as u64;
            }
        }
        file.sync_all().map_err(io_error(&staged.path))?;
        staged.md5 = md5.finalize().into();
        Ok(staged)
    }

    /// Moves a staged body to its final name; the caller commits a row
    /// naming it (or removes it on failure).
    pub(super) fn settle(&self, staged: StagedBody) -> StoreResult<String> {
        let blob = new_id();
        let target = self.blob_path(&blob);
        std::fs::rename(&staged.path, &target).map_err(io_error(&target))?;
        Ok(blob)
    }

    pub(super) fn remove_blobs(&self, blobs: impl IntoIterator<Item = String>) {
        for blob in blobs {
            let path = self.blob_path(&blob);
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), "could not remove a replaced object body: {e}");
            }
        }
    }

    /// Creates a bucket; false when it exists already.
    pub fn create_bucket(&self, name: &str, region: &str, now: EpochMillis) -> StoreResult<bool> {
        self.with_conn(|c| {
            c.execute_cached(
                "INSERT OR IGNORE INTO s3_buckets (name, region, created_at) VALUES (?1, ?2, ?3)",
                rusqlite::params![name, region, now],
            )
        })
        .map(|n| n > 0)
    }

    /// The bucket named `name`.
    pub fn get_bucket(&self, name: &str) -> StoreResult<Option<Bucket>> {
        self.with_conn(|c| {
            c.query_row_cached(
                "SELECT name, region, created_at FROM s3_buckets WHERE name = ?1",
                [name],
                |r| {
                    Ok(Bucket {
                        name: r.get(0)?,
                        region: r.get(1)?,
                        created_at: r.get(2)?,
                    })
                },
            )
            .optional()
        })
    }

    /// Every bucket, by name.
    pub fn list_buckets(&self) -> StoreResult<Vec<Bucket>> {
        self.with_conn(|c| {
            let mut stmt =
                c.prepare_cached("SELECT name, region, created_at FROM s3_buckets ORDER BY name")?;
            let rows = stmt.query_map([], |r| {
                Ok(Bucket {
                    name: r.get(0)?,
                    region: r.get(1)?,
                    created_at: r.get(2)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Deletes an empty bucket (its unfinished uploads go with it).
    /// `NotFound` when absent, `Conflict` when it holds objects.
    pub fn delete_bucket(&self, name: &str) -> StoreResult<()> {
        let blobs = self.with_tx(|tx| {
            let sql = |e| self.sql_error(e);
            let exists: Option<String> = tx
                .query_row("SELECT name FROM s3_buckets WHERE name = ?1", [name], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(sql)?;
            if exists.is_none() {
                return Err(bucket_not_found(name));
            }
            let objects: i64 = tx
                .query_row(
                    "SELECT count(*) FROM s3_objects WHERE bucket = ?1",
                    [name],
                    |r| r.get(0),
                )
                .map_err(sql)?;
            if objects > 0 {
                return Err(StoreError::Conflict {
                    kind: "bucket",
                    name: name.to_string(),
                    reason: format!("it holds {objects} object(s)"),
                });
            }
            let mut stmt = tx
                .prepare(
                    "SELECT p.blob FROM s3_parts p JOIN s3_uploads u ON p.upload = u.id
                     WHERE u.bucket = ?1",
                )
                .map_err(sql)?;
            let blobs = stmt
                .query_map([name], |r| r.get::<_, String>(0))
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(sql)?;
            for statement in [
                "DELETE FROM s3_parts WHERE upload IN (SELECT id FROM s3_uploads WHERE bucket = ?1)",
                "DELETE FROM s3_uploads WHERE bucket = ?1",
                "DELETE FROM s3_buckets WHERE name = ?1",
            ] {
                tx.execute(statement, [name]).map_err(sql)?;
            }
            Ok(blobs)
        })?;
        self.remove_blobs(blobs);
        Ok(())
    }

    /// Commits `staged` as the object `object.bucket`/`object.key` (its
    /// `blob` is filled in here), replacing any object of that key.
    /// `NotFound` when the bucket does not exist.
    pub fn put_object(
        &self,
        mut object: ObjectMeta,
        staged: StagedBody,
    ) -> StoreResult<ObjectMeta> {
        object.blob = self.settle(staged)?;
        let result = self.with_tx(|tx| self.replace_object_row(tx, &object));
        let old = self.finish_write(result, &object.blob)?;
        self.remove_blobs(old);
        Ok(object)
    }

    /// After a write's transaction: on success the replaced bodies are
    /// returned for removal; on failure the new body is removed.
    pub(super) fn finish_write(
        &self,
        result: StoreResult<Vec<String>>,
        new_blob: &str,
    ) -> StoreResult<Vec<String>> {
        if result.is_err() {
            self.remove_blobs([new_blob.to_string()]);
        }
        result
    }

    /// Inserts or replaces an object's row; returns the replaced body's blob.
    pub(super) fn replace_object_row(
        &self,
        tx: &rusqlite::Connection,
        object: &ObjectMeta,
    ) -> StoreResult<Vec<String>> {
        let sql = |e| self.sql_error(e);
        let bucket: Option<String> = tx
            .query_row(
                "SELECT name FROM s3_buckets WHERE name = ?1",
                [&object.bucket],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?;
        if bucket.is_none() {
            return Err(bucket_not_found(&object.bucket));
        }
        let old: Option<String> = tx
            .query_row(
                "SELECT blob FROM s3_objects WHERE bucket = ?1 AND key = ?2",
                [&object.bucket, &object.key],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?;
        tx.execute(
            &format!(
                "INSERT OR REPLACE INTO s3_objects ({OBJECT_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ),
            rusqlite::params![
                object.bucket,
                object.key,
                size_col(object.size),
                object.etag,
                object.content_type,
                to_json(&object.metadata)?,
                object.last_modified,
                object.blob
            ],
        )
        .map_err(sql)?;
        Ok(old.into_iter().collect())
    }

    /// The object `bucket`/`key`.
    pub fn get_object(&self, bucket: &str, key: &str) -> StoreResult<Option<ObjectMeta>> {
        self.with_conn(|c| {
            c.query_row_cached(
                &format!("SELECT {OBJECT_COLUMNS} FROM s3_objects WHERE bucket = ?1 AND key = ?2"),
                [bucket, key],
                object_row,
            )
            .optional()
        })
    }

    /// Reads `len` bytes from `start` of an object's body (the whole body:
    /// `0, size`). If the object was replaced meanwhile, reads the current
    /// one: `None` when it is gone.
    pub fn read_object(
        &self,
        object: &ObjectMeta,
        start: u64,
        len: u64,
    ) -> StoreResult<Option<(ObjectMeta, Vec<u8>)>> {
        let mut current = object.clone();
        for _ in 0..3 {
            let path = self.blob_path(&current.blob);
            match std::fs::File::open(&path) {
                Ok(mut file) => {
                    file.seek(SeekFrom::Start(start)).map_err(io_error(&path))?;
                    let mut body = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
                    file.take(len)
                        .read_to_end(&mut body)
                        .map_err(io_error(&path))?;
                    return Ok(Some((current, body)));
                }
                // Replaced between reading its row and opening its body.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    match self.get_object(&current.bucket, &current.key)? {
                        Some(next) if next.blob != current.blob => current = next,
                        _ => return Ok(None),
                    }
                }
                Err(e) => return Err(io_error(&path)(e)),
            }
        }
        Ok(None)
    }

    /// Deletes an object; false when it did not exist.
    pub fn delete_object(&self, bucket: &str, key: &str) -> StoreResult<bool> {
        let blob = self.with_tx(|tx| {
            let sql = |e| self.sql_error(e);
            let blob: Option<String> = tx
                .query_row(
                    "SELECT blob FROM s3_objects WHERE bucket = ?1 AND key = ?2",
                    [bucket, key],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql)?;
            tx.execute(
                "DELETE FROM s3_objects WHERE bucket = ?1 AND key = ?2",
                [bucket, key],
            )
            .map_err(sql)?;
            Ok(blob)
        })?;
        let existed = blob.is_some();
        self.remove_blobs(blob);
        Ok(existed)
    }

    /// Up to `limit` objects of `bucket` whose key starts with `prefix` and
    /// sorts after `after`, in key order (S3's: by UTF-8 bytes).
    pub fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        after: &str,
        limit: usize,
    ) -> StoreResult<Vec<ObjectMeta>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {OBJECT_COLUMNS} FROM s3_objects
                 WHERE bucket = ?1 AND key > ?2 AND substr(key, 1, length(?3)) = ?3
                 ORDER BY key LIMIT ?4"
            ))?;
            let rows =
                stmt.query_map(rusqlite::params![bucket, after, prefix, limit], object_row)?;
            rows.collect()
        })
    }
}
