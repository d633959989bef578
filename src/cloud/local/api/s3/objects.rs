//! Objects: put (with `Content-MD5` checked), get (ranges, `If-Match`),
//! head, copy, delete one or many.

use super::{no_such_key, require_bucket, store_error, xml_answer, xml_body, MAX_PUT_SIZE};
use crate::cloud::local::api::xml::{http_date, iso8601, Xml};
use crate::cloud::local::api::{ApiContext, ApiError, ApiRequest, ApiResponse, ApiResult};
use crate::model::now_millis;
use crate::store::{ObjectMeta, Part};
use bytes::Bytes;
use serde_json::{Map, Value};

/// The longest key S3 takes, in bytes.
const MAX_KEY_LEN: usize = 1024;
/// The most keys one `DeleteObjects` names.
const MAX_DELETE_KEYS: usize = 1000;
/// What S3 answers as the type of an object stored without one.
const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";

pub(super) fn check_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() {
        return Err(ApiError::new(
            400,
            "InvalidArgument",
            "the object key is empty",
        ));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(ApiError::new(
            400,
            "KeyTooLongError",
            format!(
                "Your key is too long: {} bytes, at most {MAX_KEY_LEN}",
                key.len()
            ),
        ));
    }
    Ok(())
}

pub(super) fn check_body_size(size: usize) -> Result<(), ApiError> {
    if size as u64 > MAX_PUT_SIZE {
        return Err(ApiError::new(
            400,
            "EntityTooLarge",
            format!("Your proposed upload exceeds the maximum allowed size: {size} bytes, at most {MAX_PUT_SIZE} in one PUT; use a multipart upload"),
        ));
    }
    Ok(())
}

/// `x-amz-meta-*` headers: the object's user metadata.
pub(super) fn user_metadata(request: &ApiRequest) -> Map<String, Value> {
    request
        .headers
        .iter()
        .filter_map(|(name, value)| {
            let name = name.as_str().strip_prefix("x-amz-meta-")?;
            Some((
                name.to_string(),
                Value::String(value.to_str().ok()?.to_string()),
            ))
        })
        .collect()
}

pub(super) fn content_type(request: &ApiRequest) -> Option<String> {
    request.header("content-type").map(str::to_string)
}

/// Checks `Content-MD5` (base64 of the body's MD5) when the client sent one.
pub(super) fn check_content_md5(request: &ApiRequest, md5: &[u8; 16]) -> Result<(), ApiError> {
    use base64::Engine;
    let Some(given) = request.header("content-md5") else {
        return Ok(());
    };
    match base64::engine::general_purpose::STANDARD.decode(given.trim()) {
        Ok(bytes) if bytes == md5 => Ok(()),
        Ok(bytes) if bytes.len() == 16 => Err(ApiError::new(
            400,
            "BadDigest",
            "The Content-MD5 you specified did not match what we received.",
        )),
        _ => Err(ApiError::new(
            400,
            "InvalidDigest",
            "The Content-MD5 you specified is not valid.",
        )),
    }
}

pub(super) fn put_object(
    ctx: &ApiContext,
    request: &ApiRequest,
    bucket: &str,
    key: &str,
) -> ApiResult {
    check_key(key)?;
    check_body_size(request.body.len())?;
    require_bucket(ctx, bucket)?;
    let store = ctx.cloud.store();
    let staged = store.stage_body(&request.body)?;
    check_content_md5(request, &staged.md5)?;
    let object = ObjectMeta {
        bucket: bucket.to_string(),
        key: key.to_string(),
        size: staged.size,
        etag: hex::encode(staged.md5),
        content_type: content_type(request),
        metadata: user_metadata(request),
        last_modified: now_millis(),
        blob: String::new(),
    };
    let object = store
        .put_object(object, staged)
        .map_err(|e| store_error(bucket, e))?;
    Ok(ApiResponse::empty(200).with_header("etag", format!("\"{}\"", object.etag)))
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` → `(start, length)` within `size`;
/// `Ok(None)` for no (or a multi-range) header; `InvalidRange` when
/// nothing of the object is in it.
fn range(request: &ApiRequest, size: u64) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(spec) = request.header("range") else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::new(
            416,
            "InvalidRange",
            format!(
                "The requested range `{spec}` is not satisfiable (the object has {size} bytes)"
            ),
        )
    };
    let Some(spec) = spec.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().map_err(|_| invalid())?;
            if n == 0 {
                return Err(invalid());
            }
            (size.saturating_sub(n), size.saturating_sub(1))
        }
        (a, "") => (a.parse().map_err(|_| invalid())?, size.saturating_sub(1)),
        (a, b) => {
            let (a, b): (u64, u64) = (
                a.parse().map_err(|_| invalid())?,
                b.parse().map_err(|_| invalid())?,
            );
            if b < a {
                return Ok(None);
            }
            (a, b.min(size.saturating_sub(1)))
        }
    };
    if size == 0 || start >= size {
        return Err(invalid());
    }
    Ok(Some((start, end - start + 1)))
}

fn etag_matches(condition: &str, etag: &str) -> bool {
    condition
        .split(',')
        .map(|c| c.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|c| c == "*" || c == etag)
}

fn object_headers(mut response: ApiResponse, o: &ObjectMeta) -> ApiResponse {
    response = response
        .with_header("etag", format!("\"{}\"", o.etag))
        .with_header("last-modified", http_date(o.last_modified))
        .with_header("accept-ranges", "bytes")
        .with_header(
            "content-type",
            o.content_type
                .clone()
                .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.into()),
        );
    for (name, value) in &o.metadata {
        if let Some(value) = value.as_str() {
            response = response.with_header(&format!("x-amz-meta-{name}"), value);
        }
    }
    response
}

pub(super) fn get_object(
    ctx: &ApiContext,
    request: &ApiRequest,
    bucket: &str,
    key: &str,
    head: bool,
) -> ApiResult {
    require_bucket(ctx, bucket)?;
    let store = ctx.cloud.store();
    let object = store
        .get_object(bucket, key)?
        .ok_or_else(|| no_such_key(bucket, key))?;
    if let Some(condition) = request.header("if-match") {
        if !etag_matches(condition, &object.etag) {
            return Err(ApiError::new(
                412,
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold (If-Match: the object changed)",
            ));
        }
    }
    if let Some(condition) = request.header("if-none-match") {
        if etag_matches(condition, &object.etag) {
            return Ok(object_headers(ApiResponse::empty(304), &object));
        }
    }
    let range = range(request, object.size)?;
    let (start, len) = range.unwrap_or((0, object.size));
    let status = if range.is_some() { 206 } else { 200 };
    if head {
        let response = object_headers(ApiResponse::empty(status), &object)
            .with_header("content-length", len.to_string());
        return Ok(response);
    }
    let (object, body) = store
        .read_object(&object, start, len)?
        .ok_or_else(|| no_such_key(bucket, key))?;
    let mut response = object_headers(ApiResponse::empty(status), &object);
    if range.is_some() {
        response = response.with_header(
            "content-range",
            format!("bytes {start}-{}/{}", start + len - 1, object.size),
        );
    }
    response.body = Bytes::from(body);
    Ok(response)
}

/// `(bucket, key)` of `x-amz-copy-source` (`/bucket/key` or `bucket/key`,
/// percent-encoded, maybe `?versionId=`).
fn copy_source(request: &ApiRequest) -> Result<(String, String), ApiError> {
    let raw = request.header("x-amz-copy-source").unwrap_or_default();
    let raw = raw.split('?').next().unwrap_or(raw);
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned();
    let decoded = decoded.strip_prefix('/').unwrap_or(&decoded);
    match decoded.split_once('/') {
        Some((b, k)) if !b.is_empty() && !k.is_empty() => Ok((b.to_string(), k.to_string())),
        _ => Err(ApiError::new(
            400,
            "InvalidArgument",
            format!("Copy Source must mention the source bucket and key: sourcebucket/sourcekey, not `{raw}`"),
        )),
    }
}

pub(super) fn copy_object(
    ctx: &ApiContext,
    request: &ApiRequest,
    bucket: &str,
    key: &str,
) -> ApiResult {
    check_key(key)?;
    let (src_bucket, src_key) = copy_source(request)?;
    require_bucket(ctx, &src_bucket)?;
    require_bucket(ctx, bucket)?;
    let store = ctx.cloud.store();
    let source = store
        .get_object(&src_bucket, &src_key)?
        .ok_or_else(|| no_such_key(&src_bucket, &src_key))?;
    let replace = request
        .header("x-amz-metadata-directive")
        .is_some_and(|d| d.eq_ignore_ascii_case("REPLACE"));
    if !replace && src_bucket == bucket && src_key == key {
        return Err(ApiError::new(
            400,
            "InvalidRequest",
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
        ));
    }
    // The source's body copied on disk, streaming.
    let staged = store.stage_parts(&[Part {
        number: 1,
        size: source.size,
        etag: source.etag.clone(),
        blob: source.blob.clone(),
    }])?;
    let (content_type, metadata) = if replace {
        (content_type(request), user_metadata(request))
    } else {
        (source.content_type.clone(), source.metadata.clone())
    };
    let object = ObjectMeta {
        bucket: bucket.to_string(),
        key: key.to_string(),
        size: staged.size,
        etag: hex::encode(staged.md5),
        content_type,
        metadata,
        last_modified: now_millis(),
        blob: String::new(),
    };
    let object = store
        .put_object(object, staged)
        .map_err(|e| store_error(bucket, e))?;
    let mut x = Xml::new();
    x.leaf("LastModified", iso8601(object.last_modified))
        .leaf("ETag", format!("\"{}\"", object.etag));
    Ok(xml_answer("CopyObjectResult", x))
}

pub(super) fn delete_object(ctx: &ApiContext, bucket: &str, key: &str) -> ApiResult {
    require_bucket(ctx, bucket)?;
    // Deleting a key that does not exist succeeds, as on S3.
    ctx.cloud.store().delete_object(bucket, key)?;
    Ok(ApiResponse::empty(204))
}

pub(super) fn delete_objects(ctx: &ApiContext, request: &ApiRequest, bucket: &str) -> ApiResult {
    require_bucket(ctx, bucket)?;
    let doc = xml_body::read(&request.body, "Object")?;
    if doc.groups.is_empty() || doc.groups.len() > MAX_DELETE_KEYS {
        return Err(ApiError::new(
            400,
            "MalformedXML",
            format!(
                "Delete names {} objects; name 1 to {MAX_DELETE_KEYS}",
                doc.groups.len()
            ),
        ));
    }
    let quiet = doc
        .leaf("Quiet")
        .is_some_and(|q| q.eq_ignore_ascii_case("true"));
    let store = ctx.cloud.store();
    let mut x = Xml::new();
    for object in &doc.groups {
        let key = object.get("Key").map(String::as_str).unwrap_or_default();
        match check_key(key).and_then(|()| Ok(store.delete_object(bucket, key)?)) {
            Ok(_) if quiet => {}
            Ok(_) => {
                x.open("Deleted").leaf("Key", key).close("Deleted");
            }
            Err(e) => {
                x.open("Error")
                    .leaf("Key", key)
                    .leaf("Code", &e.code)
                    .leaf("Message", &e.message)
                    .close("Error");
            }
        }
    }
    Ok(xml_answer("DeleteResult", x))
}
