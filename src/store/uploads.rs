//! The local S3's multipart uploads: parts stored as files like object
//! bodies (see `objects.rs`), completed into one object in one transaction.

use super::objects::{bucket_not_found, size_col};
use super::{json_col, to_json, Cached, Part, StagedBody, Store, StoreError, StoreResult, Upload};
use crate::store::ObjectMeta;
use rusqlite::OptionalExtension;

impl Store {
    /// Starts a multipart upload; returns its id. `NotFound` without the bucket.
    pub fn create_upload(&self, upload: &Upload) -> StoreResult<()> {
        if self.get_bucket(&upload.bucket)?.is_none() {
            return Err(bucket_not_found(&upload.bucket));
        }
        let metadata = to_json(&upload.metadata)?;
        self.with_conn(|c| {
            c.execute_cached(
                "INSERT INTO s3_uploads (id, bucket, key, content_type, metadata, initiated)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                rusqlite::params![
                    upload.id,
                    upload.bucket,
                    upload.key,
                    upload.content_type,
                    metadata,
                    upload.initiated
                ],
            )
        })
        .map(|_| ())
    }

    /// The upload with this id.
    pub fn get_upload(&self, id: &str) -> StoreResult<Option<Upload>> {
        self.with_conn(|c| {
            c.query_row_cached(
                "SELECT id, bucket, key, content_type, metadata, initiated FROM s3_uploads WHERE id = ?1",
                [id],
                |r| {
                    Ok(Upload {
                        id: r.get(0)?,
                        bucket: r.get(1)?,
                        key: r.get(2)?,
                        content_type: r.get(3)?,
                        metadata: json_col(r, 4)?,
                        initiated: r.get(5)?,
                    })
                },
            )
            .optional()
        })
    }

    /// Commits `staged` as part `number` of upload `upload` (replacing an
    /// earlier upload of that part). `NotFound` when the upload is gone.
    pub fn put_part(&self, upload: &str, number: u32, staged: StagedBody) -> StoreResult<Part> {
        let part = Part {
            number,
            size: staged.size,
            etag: hex::encode(staged.md5),
            blob: self.settle(staged)?,
        };
        let result = self.with_tx(|tx| {
            let sql = |e| self.sql_error(e);
            let exists: Option<String> = tx
                .query_row("SELECT id FROM s3_uploads WHERE id = ?1", [upload], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(sql)?;
            if exists.is_none() {
                return Err(StoreError::NotFound {
                    kind: "upload",
                    name: upload.to_string(),
                });
            }
            let old: Option<String> = tx
                .query_row(
                    "SELECT blob FROM s3_parts WHERE upload = ?1 AND part_number = ?2",
                    rusqlite::params![upload, number],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql)?;
            tx.execute(
                "INSERT OR REPLACE INTO s3_parts (upload, part_number, blob, size, etag)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![upload, number, part.blob, size_col(part.size), part.etag],
            )
            .map_err(sql)?;
            Ok(old.into_iter().collect())
        });
        let old = self.finish_write(result, &part.blob)?;
        self.remove_blobs(old);
        Ok(part)
    }

    /// The parts uploaded so far, by number.
    pub fn list_parts(&self, upload: &str) -> StoreResult<Vec<Part>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT part_number, size, etag, blob FROM s3_parts WHERE upload = ?1 ORDER BY part_number",
            )?;
            let rows = stmt.query_map([upload], |r| {
                Ok(Part {
                    number: r.get(0)?,
                    size: r.get::<_, i64>(1)?.try_into().unwrap_or(0),
                    etag: r.get(2)?,
                    blob: r.get(3)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Completes upload `upload`: `staged` (its parts concatenated, see
    /// [`Store::stage_parts`]) becomes `object` and the upload and all its
    /// parts go, in one transaction. `NotFound` when the upload is gone
    /// (completed or aborted meanwhile).
    pub fn complete_upload(
        &self,
        upload: &str,
        mut object: ObjectMeta,
        staged: StagedBody,
    ) -> StoreResult<ObjectMeta> {
        object.blob = self.settle(staged)?;
        let result = self.with_tx(|tx| {
            let mut old = self.take_upload(tx, upload)?;
            old.extend(self.replace_object_row(tx, &object)?);
            Ok(old)
        });
        let old = self.finish_write(result, &object.blob)?;
        self.remove_blobs(old);
        Ok(object)
    }

    /// Deletes an upload and its parts; false when it did not exist.
    pub fn abort_upload(&self, upload: &str) -> StoreResult<bool> {
        match self.with_tx(|tx| self.take_upload(tx, upload)) {
            Ok(blobs) => {
                self.remove_blobs(blobs);
                Ok(true)
            }
            Err(StoreError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes an upload's rows; returns its parts' blobs.
    fn take_upload(&self, tx: &rusqlite::Connection, upload: &str) -> StoreResult<Vec<String>> {
        let sql = |e| self.sql_error(e);
        let mut stmt = tx
            .prepare("SELECT blob FROM s3_parts WHERE upload = ?1")
            .map_err(sql)?;
        let blobs = stmt
            .query_map([upload], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sql)?;
        tx.execute("DELETE FROM s3_parts WHERE upload = ?1", [upload])
            .map_err(sql)?;
        if tx
            .execute("DELETE FROM s3_uploads WHERE id = ?1", [upload])
            .map_err(sql)?
            == 0
        {
            return Err(StoreError::NotFound {
                kind: "upload",
                name: upload.to_string(),
            });
        }
        Ok(blobs)
    }
}
