//! Multipart uploads, as `aws s3 cp` makes them for files over 8 MB: parts
//! land as files; completing concatenates the chosen parts on disk into the
//! object (ETag: the MD5 of the parts' MD5s, `-<parts>`) and removes the
//! upload, in one store transaction.

use super::objects::{check_body_size, check_content_md5, check_key, content_type, user_metadata};
use super::{no_such_upload, require_bucket, store_error, xml_answer, xml_body, MIN_PART_SIZE};
use crate::cloud::local::api::xml::{iso8601, Xml};
use crate::cloud::local::api::{ApiContext, ApiError, ApiRequest, ApiResponse, ApiResult};
use crate::model::now_millis;
use crate::store::{ObjectMeta, Part, Upload};
use md5::{Digest, Md5};

/// Part numbers S3 takes.
const PART_NUMBERS: std::ops::RangeInclusive<u32> = 1..=10_000;

/// The upload `uploadId` names, which must be for `bucket`/`key`.
fn upload(
    ctx: &ApiContext,
    request: &ApiRequest,
    bucket: &str,
    key: &str,
) -> Result<Upload, ApiError> {
    let id = request.query_param("uploadId").unwrap_or_default();
    require_bucket(ctx, bucket)?;
    match ctx.cloud.store().get_upload(id)? {
        Some(u) if u.bucket == bucket && u.key == key => Ok(u),
        _ => Err(no_such_upload(id)),
    }
}

pub(super) fn create(ctx: &ApiContext, request: &ApiRequest, bucket: &str, key: &str) -> ApiResult {
    check_key(key)?;
    require_bucket(ctx, bucket)?;
    let upload = Upload {
        id: hex::encode(rand::random::<[u8; 24]>()),
        bucket: bucket.to_string(),
        key: key.to_string(),
        content_type: content_type(request),
        metadata: user_metadata(request),
        initiated: now_millis(),
    };
    ctx.cloud
        .store()
        .create_upload(&upload)
        .map_err(|e| store_error(bucket, e))?;
    let mut x = Xml::new();
    x.leaf("Bucket", bucket)
        .leaf("Key", key)
        .leaf("UploadId", &upload.id);
    Ok(xml_answer("InitiateMultipartUploadResult", x))
}

pub(super) fn upload_part(
    ctx: &ApiContext,
    request: &ApiRequest,
    bucket: &str,
    key: &str,
) -> ApiResult {
    let number = request
        .query_param("partNumber")
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| PART_NUMBERS.contains(n))
        .ok_or_else(|| {
            ApiError::new(
                400,
                "InvalidArgument",
                "Part number must be an integer between 1 and 10000, inclusive",
            )
        })?;
    check_body_size(request.body.len())?;
    let upload = upload(ctx, request, bucket, key)?;
    let store = ctx.cloud.store();
    let staged = store.stage_body(&request.body)?;
    check_content_md5(request, &staged.md5)?;
    let part = store
        .put_part(&upload.id, number, staged)
        .map_err(|e| store_error(bucket, e))?;
    Ok(ApiResponse::empty(200).with_header("etag", format!("\"{}\"", part.etag)))
}

fn invalid_part(message: String) -> ApiError {
    ApiError::new(400, "InvalidPart", message)
}

/// The parts a `CompleteMultipartUpload` body names, checked against
/// those uploaded: ascending numbers, matching ETags, all but the last at
/// least 5 MiB.
fn chosen_parts(request: &ApiRequest, uploaded: &[Part]) -> Result<Vec<Part>, ApiError> {
    let doc = xml_body::read(&request.body, "Part")?;
    if doc.groups.is_empty() {
        return Err(ApiError::new(
            400,
            "MalformedXML",
            "CompleteMultipartUpload names no Part; list every part with its PartNumber and ETag",
        ));
    }
    let mut chosen: Vec<Part> = Vec::with_capacity(doc.groups.len());
    for named in &doc.groups {
        let number: u32 = named
            .get("PartNumber")
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| invalid_part("a Part without a valid PartNumber".into()))?;
        if chosen.last().is_some_and(|p| p.number >= number) {
            return Err(ApiError::new(
                400,
                "InvalidPartOrder",
                "The list of parts was not in ascending order. Parts must be ordered by part number.",
            ));
        }
        let etag = named
            .get("ETag")
            .map(|e| e.trim().trim_matches('"'))
            .unwrap_or_default();
        let part = uploaded
            .iter()
            .find(|p| p.number == number && p.etag == etag)
            .ok_or_else(|| {
                invalid_part(format!(
                    "One or more of the specified parts could not be found: part {number} with ETag \"{etag}\" was not uploaded (or was uploaded again since)"
                ))
            })?;
        chosen.push(part.clone());
    }
    if let Some(small) = chosen[..chosen.len() - 1]
        .iter()
        .find(|p| p.size < MIN_PART_SIZE)
    {
        return Err(ApiError::new(
            400,
            "EntityTooSmall",
            format!(
                "Your proposed upload is smaller than the minimum allowed object size: part {} has {} bytes; every part but the last needs at least {MIN_PART_SIZE}",
                small.number, small.size
            ),
        ));
    }
    Ok(chosen)
}

pub(super) fn complete(
    ctx: &ApiContext,
    request: &ApiRequest,
    bucket: &str,
    key: &str,
) -> ApiResult {
    let upload = upload(ctx, request, bucket, key)?;
    let store = ctx.cloud.store();
    let uploaded = store.list_parts(&upload.id)?;
    let chosen = chosen_parts(request, &uploaded)?;
    let mut md5s = Md5::new();
    for p in &chosen {
        let bytes = hex::decode(&p.etag).map_err(ApiError::internal)?;
        md5s.update(&bytes);
    }
    let etag = format!("{}-{}", hex::encode(md5s.finalize()), chosen.len());
    let staged = store.stage_parts(&chosen)?;
    let object = ObjectMeta {
        bucket: bucket.to_string(),
        key: key.to_string(),
        size: staged.size,
        etag,
        content_type: upload.content_type.clone(),
        metadata: upload.metadata.clone(),
        last_modified: now_millis(),
        blob: String::new(),
    };
    let object = store
        .complete_upload(&upload.id, object, staged)
        .map_err(|e| store_error(bucket, e))?;
    let location = format!(
        "http://{}/{bucket}/{key}",
        request.header("host").unwrap_or("localhost")
    );
    let mut x = Xml::new();
    x.leaf("Location", location)
        .leaf("Bucket", bucket)
        .leaf("Key", key)
        .leaf("ETag", format!("\"{}\"", object.etag));
    Ok(xml_answer("CompleteMultipartUploadResult", x))
}

pub(super) fn abort(ctx: &ApiContext, request: &ApiRequest, bucket: &str, key: &str) -> ApiResult {
    let upload = upload(ctx, request, bucket, key)?;
    if !ctx.cloud.store().abort_upload(&upload.id)? {
        return Err(no_such_upload(&upload.id));
    }
    Ok(ApiResponse::empty(204))
}

pub(super) fn list_parts(
    ctx: &ApiContext,
    request: &ApiRequest,
    bucket: &str,
    key: &str,
) -> ApiResult {
    let upload = upload(ctx, request, bucket, key)?;
    let parts = ctx.cloud.store().list_parts(&upload.id)?;
    let mut x = Xml::new();
    x.leaf("Bucket", bucket)
        .leaf("Key", key)
        .leaf("UploadId", &upload.id)
        .leaf("IsTruncated", "false")
        .leaf("MaxParts", "10000");
    for p in &parts {
        x.open("Part")
            .leaf("PartNumber", p.number.to_string())
            .leaf("LastModified", iso8601(upload.initiated))
            .leaf("ETag", format!("\"{}\"", p.etag))
            .leaf("Size", p.size.to_string())
            .close("Part");
    }
    Ok(xml_answer("ListPartsResult", x))
}
