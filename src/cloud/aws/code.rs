//! The rotation function's code in S3: the bucket (created when missing),
//! the upload, and emptying and deleting the bucket on teardown.

use super::errors::{api, code_of, AwsError, AwsResult};
use super::package;
use super::AwsCloud;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};

/// Where the package went.
#[derive(Debug, Clone)]
pub struct UploadedPackage {
    pub bucket: String,
    pub key: String,
}

/// `jitpilot-artifacts-<account>-<region>` unless `JITPILOT_CODE_BUCKET` is set.
pub async fn bucket_name(cloud: &AwsCloud) -> AwsResult<String> {
    if let Some(bucket) = &cloud.options().code_bucket {
        return Ok(bucket.clone());
    }
    let account = cloud.clients().account_id().await?;
    Ok(format!(
        "jitpilot-artifacts-{account}-{}",
        cloud.clients().region
    ))
}

/// Packages and uploads the rotation function; returns its bucket and key.
pub async fn upload(cloud: &AwsCloud) -> AwsResult<UploadedPackage> {
    let options = cloud.options();
    let package = package::load(options.function_package.as_deref(), &options.data_dir)
        .map_err(|e| AwsError::Other(e.to_string()))?;
    let bucket = bucket_name(cloud).await?;
    ensure_bucket(cloud, &bucket).await?;
    cloud
        .clients()
        .s3
        .put_object()
        .bucket(&bucket)
        .key(&package.key)
        .body(ByteStream::from(package.zip))
        .send()
        .await
        .map_err(|e| api("PutObject", "s3:PutObject", e))?;
    tracing::info!(bucket, key = package.key, source = %package.source.display(), "uploaded the rotation function");
    Ok(UploadedPackage {
        bucket,
        key: package.key,
    })
}

/// Creates the bucket unless it is already ours. A name owned by another
/// account is an error that says how to pick another.
async fn ensure_bucket(cloud: &AwsCloud, bucket: &str) -> AwsResult<()> {
    let s3 = &cloud.clients().s3;
    match s3.head_bucket().bucket(bucket).send().await {
        Ok(_) => return Ok(()),
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            if status == Some(403) {
                return Err(taken(bucket));
            }
            if status != Some(404) {
                return Err(api("HeadBucket", "s3:ListBucket", e));
            }
        }
    }
    let mut request = s3.create_bucket().bucket(bucket);
    // us-east-1 is the one region that refuses an explicit location.
    if cloud.clients().region != "us-east-1" {
        request = request.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(
                    cloud.clients().region.as_str(),
                ))
                .build(),
        );
    }
    match request.send().await {
        Ok(_) => Ok(()),
        Err(e) => match code_of(&e) {
            Some("BucketAlreadyOwnedByYou") => Ok(()),
            Some("BucketAlreadyExists") => Err(taken(bucket)),
            _ => Err(api("CreateBucket", "s3:CreateBucket", e)),
        },
    }
}

fn taken(bucket: &str) -> AwsError {
    AwsError::Other(format!(
        "S3 bucket name {bucket} is taken by another account (bucket names are global); set JITPILOT_CODE_BUCKET to a name of your own and deploy again"
    ))
}

/// Empties and deletes the code bucket; a missing bucket is fine.
pub async fn delete_bucket(cloud: &AwsCloud) -> AwsResult<bool> {
    let bucket = bucket_name(cloud).await?;
    let s3 = &cloud.clients().s3;
    let mut token = None;
    loop {
        let listed = s3
            .list_objects_v2()
            .bucket(&bucket)
            .set_continuation_token(token.take())
            .send()
            .await;
        let out = match listed {
            Ok(out) => out,
            Err(e) if code_of(&e) == Some("NoSuchBucket") => return Ok(false),
            Err(e) => return Err(api("ListObjectsV2", "s3:ListBucket", e)),
        };
        for object in out.contents() {
            if let Some(key) = object.key() {
                s3.delete_object()
                    .bucket(&bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| api("DeleteObject", "s3:DeleteObject", e))?;
            }
        }
        match out.next_continuation_token() {
            Some(next) if out.is_truncated() == Some(true) => token = Some(next.to_string()),
            _ => break,
        }
    }
    match s3.delete_bucket().bucket(&bucket).send().await {
        Ok(_) => Ok(true),
        Err(e) if code_of(&e) == Some("NoSuchBucket") => Ok(false),
        Err(e) => Err(api("DeleteBucket", "s3:DeleteBucket", e)),
    }
}
