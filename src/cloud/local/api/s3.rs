//! S3 (restXml) as `aws s3 mb/cp/ls/rb --force`, `aws cloudformation
//! deploy --s3-bucket`/`package` and boto3 use it: buckets, objects and
//! multipart uploads, addressed path-style (`/bucket/key`; boto3 does so
//! for an IP endpoint, aws-sdk-rust with `force_path_style(true)`) or
//! `bucket.localhost`. Storage: `store/objects.rs` (rows + body files).
//!
//! Layout:
//! - this file       the service: routing, buckets, listing, errors
//! - `objects.rs`    Put/Get/Head/Copy/Delete objects, DeleteObjects
//! - `multipart.rs`  Create/UploadPart/Complete/Abort/ListParts
//! - `xml_body.rs`   reading the XML bodies clients send (quick-xml)

mod multipart;
mod objects;
#[cfg(test)]
mod tests;
mod xml_body;

use super::xml::{iso8601, Xml};
use super::{ApiContext, ApiError, ApiRequest, ApiResponse, ApiResult, Service};
use crate::cloud::local::{LOCAL_ACCOUNT_ID, LOCAL_REGION};
use crate::model::now_millis;
use crate::store::{ObjectMeta, StoreError};

/// The namespace of S3's XML answers.
const NAMESPACE: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// The largest body one PUT (object or part) takes, as on AWS.
const MAX_PUT_SIZE: u64 = 5 << 30;
/// The smallest part but the last of a multipart upload, as on AWS.
const MIN_PART_SIZE: u64 = 5 << 20;
/// The most keys one listing returns.
const MAX_KEYS: usize = 1000;

/// The `s3` service.
pub struct S3;

/// Every operation this service answers.
pub const OPERATIONS: &[&str] = &[
    "ListBuckets",
    "CreateBucket",
    "HeadBucket",
    "DeleteBucket",
    "GetBucketLocation",
    "ListObjects",
    "ListObjectsV2",
    "PutObject",
    "CopyObject",
    "GetObject",
    "HeadObject",
    "DeleteObject",
    "DeleteObjects",
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
    "ListParts",
];

/// Bucket and object sub-resources this local S3 does not keep: a request
/// naming one is an unknown operation, never mistaken for a plain GET/PUT.
const UNSUPPORTED_SUBRESOURCES: &[&str] = &[
    "acl",
    "policy",
    "versioning",
    "versions",
    "tagging",
    "cors",
    "lifecycle",
    "encryption",
    "website",
    "logging",
    "notification",
    "replication",
    "ownershipControls",
    "publicAccessBlock",
    "object-lock",
    "accelerate",
    "requestPayment",
    "analytics",
    "inventory",
    "metrics",
    "intelligent-tiering",
    "legal-hold",
    "retention",
    "torrent",
    "attributes",
    "restore",
    "select",
];

/// Where a request points: a bucket and maybe a key.
pub(super) struct Target {
    bucket: Option<String>,
    key: Option<String>,
}

fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// The bucket and key of a request: `bucket.localhost` hosts name the
/// bucket, otherwise the path's first segment does; the key is the rest of
/// the path, slashes and all (`/b/dir/` has the key `dir/`).
fn target(request: &ApiRequest) -> Target {
    let path = request.path.split('?').next().unwrap_or("");
    let path = path.strip_prefix('/').unwrap_or(path);
    let host = request
        .header("host")
        .map(|h| h.rsplit_once(':').map_or(h, |(name, _)| name))
        .unwrap_or("");
    if let Some(bucket) = host.strip_suffix(".localhost").filter(|b| !b.is_empty()) {
        return Target {
            bucket: Some(bucket.to_string()),
            key: (!path.is_empty()).then(|| decode(path)),
        };
    }
    match path.split_once('/') {
        None if path.is_empty() => Target {
            bucket: None,
            key: None,
        },
        None => Target {
            bucket: Some(decode(path)),
            key: None,
        },
        Some((bucket, key)) => Target {
            bucket: Some(decode(bucket)),
            key: (!key.is_empty()).then(|| decode(key)),
        },
    }
}

fn has_query(request: &ApiRequest, name: &str) -> bool {
    request.query.iter().any(|(k, _)| k == name)
}

#[async_trait::async_trait]
impl Service for S3 {
    fn operation(&self, request: &ApiRequest) -> Result<&'static str, ApiError> {
        let unknown = || {
            let query: Vec<&str> = request.query.iter().map(|(k, _)| k.as_str()).collect();
            ApiError::unknown_operation(
                "s3",
                &format!("{} {}?{}", request.method, request.path, query.join("&")),
            )
        };
        if let Some(sub) = UNSUPPORTED_SUBRESOURCES
            .iter()
            .find(|s| has_query(request, s))
        {
            return Err(ApiError::unknown_operation(
                "s3",
                &format!(
                    "the `{sub}` sub-resource ({} {})",
                    request.method, request.path
                ),
            ));
        }
        let t = target(request);
        let q = |name| has_query(request, name);
        let copy = request.header("x-amz-copy-source").is_some();
        use http::Method;
        let op = match (&request.method, &t.bucket, &t.key) {
            (&Method::GET, None, _) => "ListBuckets",
            (_, None, _) => return Err(unknown()),
            (&Method::PUT, Some(_), None) => "CreateBucket",
            (&Method::HEAD, Some(_), None) => "HeadBucket",
            (&Method::DELETE, Some(_), None) => "DeleteBucket",
            (&Method::GET, Some(_), None) if q("location") => "GetBucketLocation",
            (&Method::GET, Some(_), None) if q("uploads") => return Err(unknown()),
            (&Method::GET, Some(_), None) => {
                if request.query_param("list-type") == Some("2") {
                    "ListObjectsV2"
                } else {
                    "ListObjects"
                }
            }
            (&Method::POST, Some(_), None) if q("delete") => "DeleteObjects",
            (&Method::PUT, Some(_), Some(_)) if q("uploadId") && q("partNumber") && !copy => {
                "UploadPart"
            }
            (&Method::PUT, Some(_), Some(_)) if q("uploadId") => return Err(unknown()),
            (&Method::PUT, Some(_), Some(_)) if copy => "CopyObject",
            (&Method::PUT, Some(_), Some(_)) => "PutObject",
            (&Method::GET, Some(_), Some(_)) if q("uploadId") => "ListParts",
            (&Method::GET, Some(_), Some(_)) => "GetObject",
            (&Method::HEAD, Some(_), Some(_)) => "HeadObject",
            (&Method::DELETE, Some(_), Some(_)) if q("uploadId") => "AbortMultipartUpload",
            (&Method::DELETE, Some(_), Some(_)) => "DeleteObject",
            (&Method::POST, Some(_), Some(_)) if q("uploads") => "CreateMultipartUpload",
            (&Method::POST, Some(_), Some(_)) if q("uploadId") => "CompleteMultipartUpload",
            _ => return Err(unknown()),
        };
        Ok(op)
    }

    async fn call(
        &self,
        ctx: &ApiContext,
        operation: &'static str,
        request: ApiRequest,
    ) -> ApiResult {
        let ctx = ctx.clone();
        // Store calls and file IO: off the async executor.
        tokio::task::spawn_blocking(move || dispatch(&ctx, operation, &request))
            .await
            .map_err(|e| ApiError::internal(format!("s3 {operation} stopped unexpectedly: {e}")))?
    }
}

fn dispatch(ctx: &ApiContext, operation: &'static str, request: &ApiRequest) -> ApiResult {
    let t = target(request);
    let bucket = t.bucket.as_deref().unwrap_or_default();
    let key = t.key.as_deref().unwrap_or_default();
    match operation {
        "ListBuckets" => list_buckets(ctx),
        "CreateBucket" => create_bucket(ctx, request, bucket),
        "HeadBucket" => head_bucket(ctx, bucket),
        "DeleteBucket" => delete_bucket(ctx, bucket),
        "GetBucketLocation" => get_bucket_location(ctx, bucket),
        "ListObjects" => list_objects(ctx, request, bucket, false),
        "ListObjectsV2" => list_objects(ctx, request, bucket, true),
        "PutObject" => objects::put_object(ctx, request, bucket, key),
        "CopyObject" => objects::copy_object(ctx, request, bucket, key),
        "GetObject" => objects::get_object(ctx, request, bucket, key, false),
        "HeadObject" => objects::get_object(ctx, request, bucket, key, true),
        "DeleteObject" => objects::delete_object(ctx, bucket, key),
        "DeleteObjects" => objects::delete_objects(ctx, request, bucket),
        "CreateMultipartUpload" => multipart::create(ctx, request, bucket, key),
        "UploadPart" => multipart::upload_part(ctx, request, bucket, key),
        "CompleteMultipartUpload" => multipart::complete(ctx, request, bucket, key),
        "AbortMultipartUpload" => multipart::abort(ctx, request, bucket, key),
        "ListParts" => multipart::list_parts(ctx, request, bucket, key),
        other => Err(ApiError::unknown_operation("s3", other)),
    }
}

/// An XML answer with S3's namespace on its root element.
fn xml_answer(root: &str, body: Xml) -> ApiResponse {
    let mut x = Xml::document();
    x.open_ns(root, NAMESPACE).append(body).close(root);
    application_xml(x.finish())
}

/// A 200 with an XML body typed `application/xml`, as S3 answers.
fn application_xml(body: String) -> ApiResponse {
    let mut response = ApiResponse::xml(body);
    response.headers = vec![("content-type".into(), "application/xml".into())];
    response
}

fn no_such_bucket(bucket: &str) -> ApiError {
    ApiError::new(
        404,
        "NoSuchBucket",
        format!("The specified bucket does not exist: {bucket} (create it with `aws s3 mb s3://{bucket}`)"),
    )
}

fn no_such_key(bucket: &str, key: &str) -> ApiError {
    ApiError::new(
        404,
        "NoSuchKey",
        format!("The specified key does not exist: s3://{bucket}/{key}"),
    )
}

/// Maps a store error of an S3 operation to S3's codes.
fn store_error(bucket: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound { kind: "bucket", .. } => no_such_bucket(bucket),
        StoreError::NotFound {
            kind: "upload",
            name,
        } => no_such_upload(&name),
        other => ApiError::internal(other),
    }
}

fn no_such_upload(id: &str) -> ApiError {
    ApiError::new(
        404,
        "NoSuchUpload",
        format!("The specified multipart upload does not exist ({id}): it was completed or aborted, or never started"),
    )
}

/// Refuses a request on a bucket that does not exist.
fn require_bucket(ctx: &ApiContext, bucket: &str) -> Result<crate::store::Bucket, ApiError> {
    ctx.cloud
        .store()
        .get_bucket(bucket)?
        .ok_or_else(|| no_such_bucket(bucket))
}

/// S3's bucket naming rules (3–63 of `a-z0-9.-`, starting and ending with
/// a letter or digit).
fn check_bucket_name(name: &str) -> Result<(), ApiError> {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok = (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && edge_ok(name.chars().next())
        && edge_ok(name.chars().last())
        && !name.contains("..");
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            400,
            "InvalidBucketName",
            format!("The specified bucket is not valid: `{name}`; bucket names are 3-63 characters of a-z, 0-9, '.' and '-', starting and ending with a letter or digit"),
        ))
    }
}

fn list_buckets(ctx: &ApiContext) -> ApiResult {
    let mut x = Xml::new();
    x.open("Owner")
        .leaf("ID", LOCAL_ACCOUNT_ID)
        .leaf("DisplayName", "jitpilot")
        .close("Owner")
        .open("Buckets");
    for b in ctx.cloud.store().list_buckets()? {
        x.open("Bucket")
            .leaf("Name", &b.name)
            .leaf("CreationDate", iso8601(b.created_at))
            .close("Bucket");
    }
    x.close("Buckets");
    Ok(xml_answer("ListAllMyBucketsResult", x))
}

fn create_bucket(ctx: &ApiContext, request: &ApiRequest, bucket: &str) -> ApiResult {
    check_bucket_name(bucket)?;
    let region = if request.body.iter().all(u8::is_ascii_whitespace) {
        LOCAL_REGION.to_string()
    } else {
        let doc = xml_body::read(&request.body, "")?;
        doc.leaf("LocationConstraint")
            .filter(|r| !r.is_empty())
            .unwrap_or(LOCAL_REGION)
            .to_string()
    };
    let store = ctx.cloud.store();
    if !store.create_bucket(bucket, &region, now_millis())? {
        // us-east-1 answers 200 to re-creating a bucket you own there
        // (`aws s3 mb` of the sample's `deploy_cf.bash`, run twice); every
        // other region answers 409 BucketAlreadyOwnedByYou.
        let owned_here = store
            .get_bucket(bucket)?
            .is_some_and(|b| b.region == LOCAL_REGION && region == LOCAL_REGION);
        if owned_here {
            return Ok(ApiResponse::empty(200).with_header("location", format!("/{bucket}")));
        }
        return Err(ApiError::new(
            409,
            "BucketAlreadyOwnedByYou",
            format!("Your previous request to create the named bucket succeeded and you already own it: {bucket}"),
        ));
    }
    Ok(ApiResponse::empty(200).with_header("location", format!("/{bucket}")))
}

fn head_bucket(ctx: &ApiContext, bucket: &str) -> ApiResult {
    let b = require_bucket(ctx, bucket)?;
    Ok(ApiResponse::empty(200).with_header("x-amz-bucket-region", b.region))
}

fn delete_bucket(ctx: &ApiContext, bucket: &str) -> ApiResult {
    match ctx.cloud.store().delete_bucket(bucket) {
        Ok(()) => Ok(ApiResponse::empty(204)),
        Err(StoreError::Conflict { .. }) => Err(ApiError::new(
            409,
            "BucketNotEmpty",
            format!("The bucket you tried to delete is not empty: {bucket} (empty it first, or `aws s3 rb s3://{bucket} --force`)"),
        )),
        Err(e) => Err(store_error(bucket, e)),
    }
}

fn get_bucket_location(ctx: &ApiContext, bucket: &str) -> ApiResult {
    let b = require_bucket(ctx, bucket)?;
    // us-east-1 is the empty constraint, as on AWS.
    let region = if b.region == "us-east-1" {
        ""
    } else {
        &b.region
    };
    let mut x = Xml::document();
    x.open_ns("LocationConstraint", NAMESPACE);
    let mut body = x.finish();
    body.push_str(&super::xml_escape(region));
    body.push_str("</LocationConstraint>");
    Ok(application_xml(body))
}

/// A continuation token: the last key listed, base64 (opaque to clients).
fn token_for(key: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(key)
}

fn key_from_token(token: &str) -> Result<String, ApiError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            ApiError::new(
                400,
                "InvalidArgument",
                "The continuation token provided is incorrect",
            )
        })
}

/// One page of a listing: objects and common prefixes, in key order.
struct Listing {
    contents: Vec<ObjectMeta>,
    prefixes: Vec<String>,
    /// Where the next page starts (after this key), when truncated.
    next: Option<String>,
}

/// Lists `bucket` after `after`: keys under `prefix`, those sharing a
/// part up to `delimiter` rolled into one common prefix, at most `max`
/// entries (objects plus prefixes).
fn list_page(
    ctx: &ApiContext,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    after: String,
    max: usize,
) -> Result<Listing, ApiError> {
    let store = ctx.cloud.store();
    let mut page = Listing {
        contents: Vec::new(),
        prefixes: Vec::new(),
        next: None,
    };
    let mut cursor = after;
    let mut last_entry: Option<String> = None;
    loop {
        let batch = store.list_objects(bucket, prefix, &cursor, MAX_KEYS)?;
        let Some(tail) = batch.last() else {
            return Ok(page);
        };
        cursor = tail.key.clone();
        for object in batch {
            let common = delimiter.and_then(|d| {
                object.key[prefix.len()..]
                    .find(d)
                    .map(|i| object.key[..prefix.len() + i + d.len()].to_string())
            });
            if let Some(common) = &common {
                if page.prefixes.last() == Some(common) {
                    continue;
                }
            }
            if page.contents.len() + page.prefixes.len() >= max {
                page.next = last_entry;
                return Ok(page);
            }
            match common {
                Some(common) => {
                    // Resume after every key under this prefix.
                    last_entry = Some(format!("{common}\u{10FFFF}"));
                    page.prefixes.push(common);
                }
                None => {
                    last_entry = Some(object.key.clone());
                    page.contents.push(object);
                }
            }
        }
    }
}

fn list_objects(ctx: &ApiContext, request: &ApiRequest, bucket: &str, v2: bool) -> ApiResult {
    require_bucket(ctx, bucket)?;
    let prefix = request.query_param("prefix").unwrap_or("");
    let delimiter = request.query_param("delimiter").filter(|d| !d.is_empty());
    let max = match request.query_param("max-keys") {
        None => MAX_KEYS,
        Some(n) => n.parse::<usize>().map(|n| n.min(MAX_KEYS)).map_err(|_| {
            ApiError::new(
                400,
                "InvalidArgument",
                format!("max-keys must be a number, not `{n}`"),
            )
        })?,
    };
    let token = request
        .query_param("continuation-token")
        .filter(|t| !t.is_empty());
    let start_after = request
        .query_param(if v2 { "start-after" } else { "marker" })
        .unwrap_or("");
    let after = match token {
        Some(t) if v2 => key_from_token(t)?,
        _ => start_after.to_string(),
    };
    let page = list_page(ctx, bucket, prefix, delimiter, after, max)?;
    let mut x = Xml::new();
    x.leaf("Name", bucket)
        .leaf("Prefix", prefix)
        .leaf("MaxKeys", max.to_string())
        .leaf_opt("Delimiter", delimiter)
        .leaf("IsTruncated", page.next.is_some().to_string());
    if v2 {
        x.leaf(
            "KeyCount",
            (page.contents.len() + page.prefixes.len()).to_string(),
        )
        .leaf_opt("ContinuationToken", token)
        .leaf_opt("NextContinuationToken", page.next.as_deref().map(token_for));
        if !start_after.is_empty() {
            x.leaf("StartAfter", start_after);
        }
    } else {
        x.leaf("Marker", start_after);
        if delimiter.is_some() {
            x.leaf_opt("NextMarker", page.next.as_deref());
        }
    }
    for o in &page.contents {
        x.open("Contents")
            .leaf("Key", &o.key)
            .leaf("LastModified", iso8601(o.last_modified))
            .leaf("ETag", format!("\"{}\"", o.etag))
            .leaf("Size", o.size.to_string())
            .leaf("StorageClass", "STANDARD")
            .close("Contents");
    }
    for p in &page.prefixes {
        x.open("CommonPrefixes")
            .leaf("Prefix", p)
            .close("CommonPrefixes");
    }
    Ok(xml_answer("ListBucketResult", x))
}
