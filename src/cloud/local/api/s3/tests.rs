//! S3's operations called as the server calls them: method, path, query,
//! headers and body in; status, headers and XML or AWS's errors out.

use super::*;
use crate::cloud::local::LocalCloud;
use crate::cloud::EventBus;
use md5::{Digest, Md5};

struct Fixture {
    dir: tempfile::TempDir,
    ctx: ApiContext,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = LocalCloud::open(dir.path(), EventBus::default()).expect("cloud opens");
    let ctx = ApiContext::without_endpoint(cloud);
    Fixture { dir, ctx }
}

fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> ApiRequest {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut map = http::HeaderMap::new();
    for (k, v) in headers {
        map.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    ApiRequest {
        service: "s3".into(),
        method: method.parse().unwrap(),
        path: path.into(),
        query: form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        headers: map,
        body: bytes::Bytes::copy_from_slice(body),
    }
}

async fn send(
    f: &Fixture,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> ApiResult {
    let r = request(method, target, headers, body);
    let op = S3.operation(&r)?;
    S3.call(&f.ctx, op, r).await
}

async fn ok(f: &Fixture, method: &str, target: &str, body: &[u8]) -> ApiResponse {
    send(f, method, target, &[], body)
        .await
        .unwrap_or_else(|e| panic!("{method} {target}: {e}"))
}

async fn err(
    f: &Fixture,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> ApiError {
    match send(f, method, target, headers, body).await {
        Ok(r) => panic!("{method} {target} succeeded with {}", r.status),
        Err(e) => e,
    }
}

fn header<'a>(r: &'a ApiResponse, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .rev()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn text(r: &ApiResponse) -> String {
    String::from_utf8(r.body.to_vec()).unwrap()
}

fn all(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    xml.split(&open)
        .skip(1)
        .filter_map(|s| s.split_once(&close).map(|(t, _)| unescape(t)))
        .collect()
}

/// XML text as a client reads it.
fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[tokio::test]
async fn buckets_are_created_listed_found_and_deleted_only_when_empty() {
    let f = fixture();
    ok(&f, "PUT", "/my-bucket", b"").await;
    let config = br#"<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>"#;
    ok(&f, "PUT", "/other-bucket", config).await;
    // Re-creating your own bucket: 200 in us-east-1 (as AWS answers there),
    // 409 BucketAlreadyOwnedByYou for a bucket in another region.
    ok(&f, "PUT", "/my-bucket", b"").await;
    let e = err(&f, "PUT", "/other-bucket", &[], config).await;
    assert_eq!(
        (e.status, e.code.as_str()),
        (409, "BucketAlreadyOwnedByYou")
    );
    let e = err(&f, "PUT", "/Bad_Name", &[], b"").await;
    assert_eq!(e.code, "InvalidBucketName");
    let e = err(&f, "PUT", "/third", &[], b"<CreateBucketConfiguration>").await;
    assert_eq!((e.status, e.code.as_str()), (400, "MalformedXML"));

    let list = text(&ok(&f, "GET", "/", b"").await);
    assert_eq!(all(&list, "Name"), ["my-bucket", "other-bucket"]);
    let head = ok(&f, "HEAD", "/other-bucket", b"").await;
    assert_eq!(header(&head, "x-amz-bucket-region"), Some("eu-west-1"));
    let e = err(&f, "HEAD", "/nope", &[], b"").await;
    assert_eq!((e.status, e.code.as_str()), (404, "NoSuchBucket"));

    ok(&f, "PUT", "/my-bucket/k", b"data").await;
    let e = err(&f, "DELETE", "/my-bucket", &[], b"").await;
    assert_eq!((e.status, e.code.as_str()), (409, "BucketNotEmpty"));
    assert_eq!(ok(&f, "DELETE", "/my-bucket/k", b"").await.status, 204);
    assert_eq!(ok(&f, "DELETE", "/my-bucket", b"").await.status, 204);
    let e = err(&f, "DELETE", "/my-bucket", &[], b"").await;
    assert_eq!(e.code, "NoSuchBucket");
    let e = err(&f, "GET", "/bkt?versioning", &[], b"").await;
    assert_eq!(e.code, "UnknownOperationException");
}

#[tokio::test]
async fn objects_round_trip_with_etag_metadata_ranges_and_conditions() {
    let f = fixture();
    ok(&f, "PUT", "/bkt", b"").await;
    let body = b"hello, local s3";
    let put = send(
        &f,
        "PUT",
        "/bkt/dir/a%20file.txt",
        &[("content-type", "text/plain"), ("x-amz-meta-owner", "me")],
        body,
    )
    .await
    .unwrap();
    let etag = format!("\"{}\"", hex::encode(Md5::digest(body)));
    assert_eq!(header(&put, "etag"), Some(etag.as_str()));

    let get = ok(&f, "GET", "/bkt/dir/a%20file.txt", b"").await;
    assert_eq!(&get.body[..], body);
    assert_eq!(header(&get, "content-type"), Some("text/plain"));
    assert_eq!(header(&get, "x-amz-meta-owner"), Some("me"));
    assert_eq!(header(&get, "etag"), Some(etag.as_str()));
    let head = ok(&f, "HEAD", "/bkt/dir/a%20file.txt", b"").await;
    assert!(head.body.is_empty());
    assert_eq!(header(&head, "content-length"), Some("15"));

    let part = send(
        &f,
        "GET",
        "/bkt/dir/a%20file.txt",
        &[("range", "bytes=7-11")],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(part.status, 206);
    assert_eq!(&part.body[..], b"local");
    assert_eq!(header(&part, "content-range"), Some("bytes 7-11/15"));
    let tail = send(
        &f,
        "GET",
        "/bkt/dir/a%20file.txt",
        &[("range", "bytes=-2")],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(&tail.body[..], b"s3");
    let e = err(
        &f,
        "GET",
        "/bkt/dir/a%20file.txt",
        &[("range", "bytes=99-")],
        b"",
    )
    .await;
    assert_eq!((e.status, e.code.as_str()), (416, "InvalidRange"));
    let e = err(
        &f,
        "GET",
        "/bkt/dir/a%20file.txt",
        &[("if-match", "\"other\"")],
        b"",
    )
    .await;
    assert_eq!((e.status, e.code.as_str()), (412, "PreconditionFailed"));

    let e = err(&f, "GET", "/bkt/missing", &[], b"").await;
    assert_eq!((e.status, e.code.as_str()), (404, "NoSuchKey"));
    let e = err(&f, "PUT", "/nobucket/k", &[], b"x").await;
    assert_eq!((e.status, e.code.as_str()), (404, "NoSuchBucket"));
    let e = err(
        &f,
        "PUT",
        "/bkt/k",
        &[("content-md5", "AAAAAAAAAAAAAAAAAAAAAA==")],
        b"x",
    )
    .await;
    assert_eq!(e.code, "BadDigest");
    assert!(
        f.ctx
            .cloud
            .store()
            .get_object("bkt", "k")
            .unwrap()
            .is_none(),
        "nothing half-applied"
    );

    // Overwrite replaces the body and removes the old file.
    send(
        &f,
        "PUT",
        "/bkt/dir/a%20file.txt",
        &[("x-amz-meta-owner", "me2")],
        b"v2",
    )
    .await
    .unwrap();
    assert_eq!(
        &ok(&f, "GET", "/bkt/dir/a%20file.txt", b"").await.body[..],
        b"v2"
    );
    let copy = send(
        &f,
        "PUT",
        "/bkt/copy",
        &[("x-amz-copy-source", "/bkt/dir/a%20file.txt")],
        b"",
    )
    .await
    .unwrap();
    assert!(text(&copy).contains("<ETag>"));
    let copied = ok(&f, "GET", "/bkt/copy", b"").await;
    assert_eq!(&copied.body[..], b"v2");
    assert_eq!(
        header(&copied, "x-amz-meta-owner"),
        Some("me2"),
        "COPY keeps metadata"
    );
    let files = std::fs::read_dir(f.dir.path().join(crate::store::OBJECTS_DIR))
        .unwrap()
        .count();
    assert_eq!(files, 2, "one file per object, none left over");
}

#[tokio::test]
async fn listing_v2_pages_with_prefix_delimiter_and_continuation() {
    let f = fixture();
    ok(&f, "PUT", "/bkt", b"").await;
    for key in ["a/1", "a/2", "b/1", "c", "d"] {
        ok(&f, "PUT", &format!("/bkt/{key}"), key.as_bytes()).await;
    }
    let all_keys = text(&ok(&f, "GET", "/bkt?list-type=2", b"").await);
    assert_eq!(all(&all_keys, "Key"), ["a/1", "a/2", "b/1", "c", "d"]);
    assert_eq!(all(&all_keys, "KeyCount"), ["5"]);

    let grouped = text(&ok(&f, "GET", "/bkt?list-type=2&delimiter=%2F", b"").await);
    assert_eq!(all(&grouped, "Key"), ["c", "d"]);
    assert_eq!(all(&grouped, "Prefix")[1..], ["a/", "b/"]);

    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..10 {
        let target = match &token {
            Some(t) => format!(
                "/bkt?list-type=2&delimiter=%2F&max-keys=1&continuation-token={}",
                form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>()
            ),
            None => "/bkt?list-type=2&delimiter=%2F&max-keys=1".into(),
        };
        let page = text(&ok(&f, "GET", &target, b"").await);
        seen.extend(all(&page, "Key"));
        seen.extend(all(&page, "Prefix").into_iter().skip(1));
        token = all(&page, "NextContinuationToken").into_iter().next();
        if token.is_none() {
            assert_eq!(all(&page, "IsTruncated"), ["false"]);
            break;
        }
    }
    assert_eq!(seen, ["a/", "b/", "c", "d"]);
    let under_a = text(&ok(&f, "GET", "/bkt?list-type=2&prefix=a%2F", b"").await);
    assert_eq!(all(&under_a, "Key"), ["a/1", "a/2"]);
    let v1 = text(&ok(&f, "GET", "/bkt?marker=b%2F1", b"").await);
    assert_eq!(all(&v1, "Key"), ["c", "d"]);

    let delete = br#"<Delete><Object><Key>c</Key></Object><Object><Key>d</Key></Object></Delete>"#;
    let deleted = text(&ok(&f, "POST", "/bkt?delete", delete).await);
    assert_eq!(all(&deleted, "Key"), ["c", "d"]);
    let rest = text(&ok(&f, "GET", "/bkt?list-type=2", b"").await);
    assert_eq!(all(&rest, "Key"), ["a/1", "a/2", "b/1"]);
}

#[tokio::test]
async fn multipart_uploads_complete_into_one_object_with_the_multipart_etag() {
    let f = fixture();
    ok(&f, "PUT", "/bkt", b"").await;
    let init = text(&ok(&f, "POST", "/bkt/big.bin?uploads", b"").await);
    let id = all(&init, "UploadId").remove(0);
    let part1 = vec![7u8; MIN_PART_SIZE as usize];
    let part2 = b"tail".to_vec();
    let mut etags = Vec::new();
    for (n, body) in [(1, &part1), (2, &part2)] {
        let r = ok(
            &f,
            "PUT",
            &format!("/bkt/big.bin?partNumber={n}&uploadId={id}"),
            body,
        )
        .await;
        etags.push(header(&r, "etag").unwrap().to_string());
    }
    let parts = text(&ok(&f, "GET", &format!("/bkt/big.bin?uploadId={id}"), b"").await);
    assert_eq!(all(&parts, "PartNumber"), ["1", "2"]);

    // Wrong order and unknown ETags are refused, and nothing changes.
    let reversed = format!(
        "<CompleteMultipartUpload><Part><PartNumber>2</PartNumber><ETag>{}</ETag></Part><Part><PartNumber>1</PartNumber><ETag>{}</ETag></Part></CompleteMultipartUpload>",
        etags[1], etags[0]
    );
    let e = err(
        &f,
        "POST",
        &format!("/bkt/big.bin?uploadId={id}"),
        &[],
        reversed.as_bytes(),
    )
    .await;
    assert_eq!(e.code, "InvalidPartOrder");
    let wrong = "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"00\"</ETag></Part></CompleteMultipartUpload>";
    let e = err(
        &f,
        "POST",
        &format!("/bkt/big.bin?uploadId={id}"),
        &[],
        wrong.as_bytes(),
    )
    .await;
    assert_eq!(e.code, "InvalidPart");
    let e = err(
        &f,
        "POST",
        &format!("/bkt/big.bin?uploadId={id}"),
        &[],
        b"<Complete",
    )
    .await;
    assert_eq!(e.code, "MalformedXML");

    let complete = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{}</ETag></Part><Part><PartNumber>2</PartNumber><ETag>{}</ETag></Part></CompleteMultipartUpload>",
        etags[0], etags[1]
    );
    let done = text(
        &ok(
            &f,
            "POST",
            &format!("/bkt/big.bin?uploadId={id}"),
            complete.as_bytes(),
        )
        .await,
    );
    let mut md5s = Md5::new();
    md5s.update(Md5::digest(&part1));
    md5s.update(Md5::digest(&part2));
    let expected = format!("\"{}-2\"", hex::encode(md5s.finalize()));
    assert_eq!(all(&done, "ETag"), std::slice::from_ref(&expected));
    let head = ok(&f, "HEAD", "/bkt/big.bin", b"").await;
    assert_eq!(
        header(&head, "content-length"),
        Some((part1.len() + 4).to_string().as_str())
    );
    assert_eq!(header(&head, "etag"), Some(expected.as_str()));
    let end = send(&f, "GET", "/bkt/big.bin", &[("range", "bytes=-6")], b"")
        .await
        .unwrap();
    assert_eq!(&end.body[..], b"\x07\x07tail");
    // The upload is gone; its part files too (one object file remains).
    let e = err(
        &f,
        "POST",
        &format!("/bkt/big.bin?uploadId={id}"),
        &[],
        complete.as_bytes(),
    )
    .await;
    assert_eq!((e.status, e.code.as_str()), (404, "NoSuchUpload"));
    let files = std::fs::read_dir(f.dir.path().join(crate::store::OBJECTS_DIR))
        .unwrap()
        .count();
    assert_eq!(files, 1);
}

#[tokio::test]
async fn small_parts_are_too_small_and_aborted_uploads_leave_nothing() {
    let f = fixture();
    ok(&f, "PUT", "/bkt", b"").await;
    let init = text(&ok(&f, "POST", "/bkt/k?uploads", b"").await);
    let id = all(&init, "UploadId").remove(0);
    let mut etags = Vec::new();
    for n in [1, 2] {
        let r = ok(
            &f,
            "PUT",
            &format!("/bkt/k?partNumber={n}&uploadId={id}"),
            b"small",
        )
        .await;
        etags.push(header(&r, "etag").unwrap().to_string());
    }
    let complete = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{}</ETag></Part><Part><PartNumber>2</PartNumber><ETag>{}</ETag></Part></CompleteMultipartUpload>",
        etags[0], etags[1]
    );
    let e = err(
        &f,
        "POST",
        &format!("/bkt/k?uploadId={id}"),
        &[],
        complete.as_bytes(),
    )
    .await;
    assert_eq!(e.code, "EntityTooSmall");
    let e = err(
        &f,
        "PUT",
        &format!("/bkt/k?partNumber=0&uploadId={id}"),
        &[],
        b"x",
    )
    .await;
    assert_eq!(e.code, "InvalidArgument");
    assert_eq!(
        ok(&f, "DELETE", &format!("/bkt/k?uploadId={id}"), b"")
            .await
            .status,
        204
    );
    let e = err(&f, "DELETE", &format!("/bkt/k?uploadId={id}"), &[], b"").await;
    assert_eq!(e.code, "NoSuchUpload");
    let e = err(
        &f,
        "PUT",
        &format!("/bkt/k?partNumber=1&uploadId={id}"),
        &[],
        b"x",
    )
    .await;
    assert_eq!(e.code, "NoSuchUpload");
    assert!(f
        .ctx
        .cloud
        .store()
        .get_object("bkt", "k")
        .unwrap()
        .is_none());
    let files = std::fs::read_dir(f.dir.path().join(crate::store::OBJECTS_DIR))
        .unwrap()
        .count();
    assert_eq!(files, 0);
}
