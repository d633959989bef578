//! SigV4 verification against AWS's published test vector and against
//! requests signed the way an SDK signs them.

use super::*;
use aws_sigv4::http_request::SigningSettings;

fn creds() -> ApiCredentials {
    ApiCredentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
    }
}

fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (k, v) in pairs {
        map.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    map
}

fn at(date: &str) -> SystemTime {
    parse_amz_date(date).unwrap()
}

/// AWS's SigV4 test suite, `get-vanilla`: the signature is AWS's, not ours.
#[test]
fn aws_published_vector_get_vanilla_verifies() {
    let h = headers(&[
        ("host", "example.amazonaws.com"),
        ("x-amz-date", "20150830T123600Z"),
        (
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
    ]);
    let auth = parse(&h, "").unwrap();
    assert_eq!(auth.service, "service");
    assert_eq!(auth.region, "us-east-1");
    let now = at("20150830T123600Z");
    verify(&auth, &creds(), "GET", "/", &h, b"", now).unwrap();
    // One byte of body, method or path more, and it no longer verifies.
    assert_eq!(
        verify(&auth, &creds(), "GET", "/", &h, b"x", now),
        Err(AuthError::BadSignature)
    );
    assert_eq!(
        verify(&auth, &creds(), "POST", "/", &h, b"", now),
        Err(AuthError::BadSignature)
    );
    assert_eq!(
        verify(&auth, &creds(), "GET", "/?a=b", &h, b"", now),
        Err(AuthError::BadSignature)
    );
}

/// Signs like an SDK: every header given, the body hashed.
fn sign_as_client(
    creds: &ApiCredentials,
    service: &str,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &[u8],
    time: SystemTime,
) -> http::HeaderMap {
    let amz_date = {
        let t = time::OffsetDateTime::from(time);
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            t.year(),
            t.month() as u8,
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    };
    let mut pairs: Vec<(&str, &str)> = vec![("host", "127.0.0.1:4566")];
    pairs.extend_from_slice(extra);
    let identity = aws_credential_types::Credentials::new(
        &creds.access_key_id,
        &creds.secret_access_key,
        None,
        None,
        "test",
    )
    .into();
    let mut settings = SigningSettings::default();
    if service == "s3" {
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let uri = format!("http://127.0.0.1:4566{path}");
    let request = SignableRequest::new(
        method,
        uri,
        pairs.iter().copied(),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(request, &params).unwrap().into_parts();
    let mut req = http::Request::builder().uri(format!("http://127.0.0.1:4566{path}"));
    for (k, v) in &pairs {
        req = req.header(*k, *v);
    }
    let mut req = req.body(()).unwrap();
    instructions.apply_to_request_http1x(&mut req);
    assert_eq!(
        req.headers()["x-amz-date"].to_str().unwrap(),
        amz_date,
        "the test formats dates as the signer does"
    );
    req.headers().clone()
}

#[test]
fn a_request_signed_with_the_key_verifies_and_tampering_does_not() {
    let c = creds();
    let now = SystemTime::now();
    let body = br#"{"TableName":"t"}"#;
    let h = sign_as_client(
        &c,
        "dynamodb",
        "POST",
        "/",
        &[("x-amz-target", "DynamoDB_20120810.GetItem")],
        body,
        now,
    );
    let auth = parse(&h, "").unwrap();
    assert_eq!(auth.service, "dynamodb");
    verify(&auth, &c, "POST", "/", &h, body, now).unwrap();

    let mut tampered = h.clone();
    tampered.insert(
        "x-amz-target",
        http::HeaderValue::from_static("DynamoDB_20120810.DeleteTable"),
    );
    assert_eq!(
        verify(&auth, &c, "POST", "/", &tampered, body, now),
        Err(AuthError::BadSignature)
    );
    assert_eq!(
        verify(&auth, &c, "POST", "/", &h, br#"{"TableName":"u"}"#, now),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn another_key_or_secret_is_refused_with_its_own_error() {
    let c = creds();
    let now = SystemTime::now();
    let other = ApiCredentials {
        access_key_id: "AKIAOTHER".into(),
        secret_access_key: c.secret_access_key.clone(),
    };
    let h = sign_as_client(&other, "sts", "POST", "/", &[], b"", now);
    let auth = parse(&h, "").unwrap();
    assert_eq!(
        verify(&auth, &c, "POST", "/", &h, b"", now),
        Err(AuthError::UnknownKey("AKIAOTHER".into()))
    );
    let wrong_secret = ApiCredentials {
        access_key_id: c.access_key_id.clone(),
        secret_access_key: "not-the-secret".into(),
    };
    let h = sign_as_client(&wrong_secret, "sts", "POST", "/", &[], b"", now);
    let auth = parse(&h, "").unwrap();
    assert_eq!(
        verify(&auth, &c, "POST", "/", &h, b"", now),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn a_request_older_than_fifteen_minutes_is_expired() {
    let c = creds();
    let then = SystemTime::now() - Duration::from_secs(16 * 60);
    let h = sign_as_client(&c, "iot", "GET", "/registrationcode", &[], b"", then);
    let auth = parse(&h, "").unwrap();
    let now = SystemTime::now();
    assert!(matches!(
        verify(&auth, &c, "GET", "/registrationcode", &h, b"", now),
        Err(AuthError::Expired(_))
    ));
    // Fourteen minutes is within the skew.
    let h = sign_as_client(
        &c,
        "iot",
        "GET",
        "/registrationcode",
        &[],
        b"",
        now - Duration::from_secs(14 * 60),
    );
    let auth = parse(&h, "").unwrap();
    verify(&auth, &c, "GET", "/registrationcode", &h, b"", now).unwrap();
}

#[test]
fn missing_and_malformed_authorization_are_told_apart() {
    assert_eq!(parse(&headers(&[]), ""), Err(AuthError::Missing));
    for bad in [
        "AWS4-HMAC-SHA256 Credential=AKID/2015/us-east-1/s/aws4_request, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00",
        "Basic dXNlcjpwYXNz",
        "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/s/aws4_request, Signature=00",
    ] {
        let h = headers(&[("authorization", bad), ("x-amz-date", "20150830T123600Z")]);
        assert!(
            matches!(parse(&h, ""), Err(AuthError::Malformed(_))),
            "{bad}"
        );
    }
    let h = headers(&[(
        "authorization",
        "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/s/aws4_request, SignedHeaders=host, Signature=00",
    )]);
    assert!(matches!(parse(&h, ""), Err(AuthError::Malformed(_))));
    for bad_date in [
        "2015-08-30T12:36:00Z",
        "20151330T123600Z",
        "20150830T256000Z",
        "x",
    ] {
        assert!(parse_amz_date(bad_date).is_err(), "{bad_date}");
    }
}

#[test]
fn s3_payload_hash_is_checked_and_paths_are_not_normalized() {
    let c = creds();
    let now = SystemTime::now();
    let body = b"hello";
    let hash = hex::encode(sha256(body));
    let path = "/bucket/a//b/../c%20d";
    let h = sign_as_client(
        &c,
        "s3",
        "PUT",
        path,
        &[("x-amz-content-sha256", &hash)],
        body,
        now,
    );
    let auth = parse(&h, "").unwrap();
    verify(&auth, &c, "PUT", path, &h, body, now).unwrap();
    assert_eq!(
        verify(&auth, &c, "PUT", path, &h, b"HELLO", now),
        Err(AuthError::ContentHashMismatch)
    );
}

#[test]
fn aws_chunked_bodies_decode_and_signed_chunks_are_checked() {
    let c = creds();
    let auth = Authorization {
        access_key_id: c.access_key_id.clone(),
        region: "us-east-1".into(),
        service: "s3".into(),
        signed_headers: vec!["host".into()],
        signature: "seed".into(),
        time: SystemTime::now(),
        location: SignatureIn::Header,
    };
    let unsigned = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n";
    assert_eq!(
        decode_aws_chunked(unsigned, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", &auth, &c).unwrap(),
        b"hello world"
    );
    for bad in [
        &b"zz\r\nhello\r\n0\r\n\r\n"[..],
        b"9\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhello",
    ] {
        assert!(
            decode_aws_chunked(bad, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", &auth, &c).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    // Signed chunks: chained from the seed signature.
    let identity = aws_credential_types::Credentials::new(
        &c.access_key_id,
        &c.secret_access_key,
        None,
        None,
        "t",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(auth.time)
        .settings(())
        .build()
        .unwrap();
    let s1 = v4::sign_chunk(&bytes::Bytes::from_static(b"hello"), "seed", &params)
        .unwrap()
        .into_parts()
        .1;
    let s2 = v4::sign_chunk(&bytes::Bytes::new(), &s1, &params)
        .unwrap()
        .into_parts()
        .1;
    let body = format!("5;chunk-signature={s1}\r\nhello\r\n0;chunk-signature={s2}\r\n\r\n");
    assert_eq!(
        decode_aws_chunked(
            body.as_bytes(),
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            &auth,
            &c
        )
        .unwrap(),
        b"hello"
    );
    let forged = body.replace("hello", "HELLO");
    assert_eq!(
        decode_aws_chunked(
            forged.as_bytes(),
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            &auth,
            &c
        ),
        Err(ChunkedError::BadChunkSignature)
    );
}

#[test]
fn presign_parameters_are_stripped_before_recomputing() {
    assert_eq!(
        without_presign_params("/b/k?X-Amz-Algorithm=A&x=1&X-Amz-Signature=s"),
        "/b/k?x=1"
    );
    assert_eq!(without_presign_params("/b/k?X-Amz-Date=d"), "/b/k");
}
