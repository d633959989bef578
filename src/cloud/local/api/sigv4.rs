//! SigV4 verification: a request is let in only when the signature it
//! carries is the one the data dir's own key makes for it.
//!
//! Nothing here canonicalizes by hand: the signature is *recomputed* with
//! the `aws-sigv4` crate — the signer the AWS SDK for Rust itself uses —
//! from the request's method, URI, the headers the client says it signed
//! and the body (or the payload hash the client sent, for S3), with the
//! client's own time, region and service, then compared in constant time.
//!
//! Two steps, so the server can choose a body limit before reading a body:
//! [`parse`] reads the `Authorization` header (or a presigned URL's
//! `X-Amz-*` query), [`verify`] recomputes once the body is read.
//! [`decode_aws_chunked`] undoes S3's `aws-chunked` content encoding and
//! checks each chunk's signature where the client signed chunks.

use super::credentials::ApiCredentials;
use aws_sigv4::http_request::{
    sign, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use std::time::{Duration, SystemTime};

/// How far a request's time may be from ours (AWS's 15 minutes).
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// Why a request is not let in; the server turns each into the code the
/// service's protocol uses (see `protocol::auth_error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header and no presigned query.
    #[error("Missing Authentication Token: sign the request with SigV4 (`eval \"$(jitpilot env)\"` gives the aws CLI and boto3 the local cloud's key)")]
    Missing,
    /// The header is there but cannot be read.
    #[error("the Authorization header is malformed ({0}); expected `AWS4-HMAC-SHA256 Credential=…/date/region/service/aws4_request, SignedHeaders=…, Signature=…`")]
    Malformed(String),
    /// Not the data dir's access key.
    #[error("The security token included in the request is invalid: access key {0} is not this local cloud's (`jitpilot env` prints the right one)")]
    UnknownKey(String),
    /// The recomputed signature differs.
    #[error("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method (`jitpilot env` prints the local cloud's key)")]
    BadSignature,
    /// The request's time is more than [`MAX_SKEW`] from ours, or a presigned URL expired.
    #[error("Signature expired: {0}")]
    Expired(String),
    /// The body does not hash to the `x-amz-content-sha256` the client signed.
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed.")]
    ContentHashMismatch,
}

/// Where the signature travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureIn {
    /// The `Authorization` header (every SDK call).
    Header,
    /// A presigned URL's query (`X-Amz-Signature`), valid for `expires`.
    Query { expires: Duration },
}

/// What a request says about its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key_id: String,
    /// The credential scope's region (`us-east-1`).
    pub region: String,
    /// The credential scope's service (`iot`, `iotdata`, `s3`, …): it picks the service.
    pub service: String,
    /// Lower-case header names, as the client listed them.
    pub signed_headers: Vec<String>,
    pub signature: String,
    /// The request's time (`X-Amz-Date`).
    pub time: SystemTime,
    pub location: SignatureIn,
}

/// Reads the signature's parts from the `Authorization` header, or from
/// a presigned URL's query (`query` is the raw, still-encoded query).
pub fn parse(headers: &http::HeaderMap, query: &str) -> Result<Authorization, AuthError> {
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| AuthError::Malformed("not ASCII".into()))?;
        let date = headers
            .get("x-amz-date")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| AuthError::Malformed("no X-Amz-Date header".into()))?;
        return parse_header(value, date);
    }
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if get("X-Amz-Signature").is_none() && get("X-Amz-Credential").is_none() {
        return Err(AuthError::Missing);
    }
    let need = |name: &str| get(name).ok_or_else(|| AuthError::Malformed(format!("no {name}")));
    if need("X-Amz-Algorithm")? != "AWS4-HMAC-SHA256" {
        return Err(AuthError::Malformed(
            "only X-Amz-Algorithm=AWS4-HMAC-SHA256 is supported".into(),
        ));
    }
    let scope = parse_credential(need("X-Amz-Credential")?)?;
    let expires: u64 = need("X-Amz-Expires")?
        .parse()
        .map_err(|_| AuthError::Malformed("X-Amz-Expires is not a number of seconds".into()))?;
    Ok(Authorization {
        access_key_id: scope.0,
        region: scope.1,
        service: scope.2,
        signed_headers: split_signed_headers(need("X-Amz-SignedHeaders")?),
        signature: need("X-Amz-Signature")?.to_string(),
        time: parse_amz_date(need("X-Amz-Date")?)?,
        location: SignatureIn::Query {
            expires: Duration::from_secs(expires),
        },
    })
}

fn parse_header(value: &str, date: &str) -> Result<Authorization, AuthError> {
    let rest = value
        .trim()
        .strip_prefix("AWS4-HMAC-SHA256")
        .ok_or_else(|| AuthError::Malformed("only AWS4-HMAC-SHA256 is supported".into()))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let credential = credential.ok_or_else(|| AuthError::Malformed("no Credential".into()))?;
    let signed = signed.ok_or_else(|| AuthError::Malformed("no SignedHeaders".into()))?;
    let signature = signature.ok_or_else(|| AuthError::Malformed("no Signature".into()))?;
    let (access_key_id, region, service) = parse_credential(credential)?;
    Ok(Authorization {
        access_key_id,
        region,
        service,
        signed_headers: split_signed_headers(signed),
        signature: signature.to_string(),
        time: parse_amz_date(date)?,
        location: SignatureIn::Header,
    })
}

/// `AKID/20261202/us-east-1/iot/aws4_request` → (key, region, service).
fn parse_credential(credential: &str) -> Result<(String, String, String), AuthError> {
    let parts: Vec<&str> = credential.split('/').collect();
    match parts.as_slice() {
        [key, date, region, service, "aws4_request"]
            if !key.is_empty() && date.len() == 8 && !region.is_empty() && !service.is_empty() =>
        {
            Ok((key.to_string(), region.to_string(), service.to_string()))
        }
        _ => Err(AuthError::Malformed(format!(
            "Credential {credential:?} is not KEY/YYYYMMDD/REGION/SERVICE/aws4_request"
        ))),
    }
}

fn split_signed_headers(list: &str) -> Vec<String> {
    list.split(';')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect()
}

/// `20261202T093000Z` → a time.
pub fn parse_amz_date(text: &str) -> Result<SystemTime, AuthError> {
    let bad = || AuthError::Malformed(format!("X-Amz-Date {text:?} is not YYYYMMDDTHHMMSSZ"));
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return Err(bad());
    }
    let num = |range: std::ops::Range<usize>| -> Result<u32, AuthError> {
        text.get(range)
            .filter(|s| s.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)
    };
    let month = time::Month::try_from(num(4..6)? as u8).map_err(|_| bad())?;
    let date = time::Date::from_calendar_date(num(0..4)? as i32, month, num(6..8)? as u8)
        .map_err(|_| bad())?;
    let clock = time::Time::from_hms(num(9..11)? as u8, num(11..13)? as u8, num(13..15)? as u8)
        .map_err(|_| bad())?;
    Ok(time::PrimitiveDateTime::new(date, clock)
        .assume_utc()
        .into())
}

/// The service signs S3-style: no double percent-encoding of the path, no
/// path normalization (S3 keys may hold `//` and `..`).
fn is_s3(service: &str) -> bool {
    service == "s3"
}

/// Checks `auth` against `creds` at `now`: the key, the time, then the
/// signature recomputed over `method`, `path_and_query` (raw, as received),
/// the signed `headers` and `body`. `body` is what was received (before
/// any `aws-chunked` decoding): it is hashed only when the client did not
/// send `x-amz-content-sha256`.
pub fn verify(
    auth: &Authorization,
    creds: &ApiCredentials,
    method: &str,
    path_and_query: &str,
    headers: &http::HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<(), AuthError> {
    if auth.access_key_id != creds.access_key_id {
        return Err(AuthError::UnknownKey(auth.access_key_id.clone()));
    }
    check_time(auth, now)?;
    let expected = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        recompute(auth, creds, method, path_and_query, headers, body)
    }))
    .map_err(|_| AuthError::BadSignature)??;
    if constant_time_eq(expected.as_bytes(), auth.signature.as_bytes()) {
        Ok(())
    } else {
        Err(AuthError::BadSignature)
    }
}

fn check_time(auth: &Authorization, now: SystemTime) -> Result<(), AuthError> {
    let skew = match now.duration_since(auth.time) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    match &auth.location {
        SignatureIn::Header if skew > MAX_SKEW => Err(AuthError::Expired(format!(
            "the request's X-Amz-Date is {} s from the local cloud's clock, more than the {} s allowed; check the clock",
            skew.as_secs(),
            MAX_SKEW.as_secs()
        ))),
        SignatureIn::Query { expires } => {
            let too_early = auth.time > now + MAX_SKEW;
            let expired = now.duration_since(auth.time).is_ok_and(|age| age > *expires);
            if too_early || expired {
                Err(AuthError::Expired(
                    "the presigned URL has expired (or is dated in the future)".into(),
                ))
            } else {
                Ok(())
            }
        }
        SignatureIn::Header => Ok(()),
    }
}

/// The signature the data dir's key makes for this request.
fn recompute(
    auth: &Authorization,
    creds: &ApiCredentials,
    method: &str,
    path_and_query: &str,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Result<String, AuthError> {
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or("localhost");
    let mut settings = SigningSettings::default();
    // Exactly the headers the client listed are signed: none is left out
    // by the signer's own exclusions (a client may sign User-Agent).
    settings.excluded_headers = Some(Vec::new());
    if is_s3(&auth.service) {
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    }
    let path_and_query = match &auth.location {
        SignatureIn::Header => path_and_query.to_string(),
        SignatureIn::Query { expires } => {
            settings.signature_location = SignatureLocation::QueryParams;
            settings.expires_in = Some(*expires);
            without_presign_params(path_and_query)
        }
    };
    let uri = format!("http://{host}{path_and_query}");

    let mut signed: Vec<(&str, &str)> = Vec::with_capacity(auth.signed_headers.len());
    for name in &auth.signed_headers {
        let mut found = false;
        for value in headers.get_all(name.as_str()) {
            let value = value.to_str().map_err(|_| AuthError::BadSignature)?;
            signed.push((name.as_str(), value));
            found = true;
        }
        if !found && name != "host" {
            return Err(AuthError::BadSignature);
        }
    }

    let content_sha = headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok());
    let body = match (&auth.location, content_sha) {
        (SignatureIn::Query { .. }, _) => SignableBody::UnsignedPayload,
        (SignatureIn::Header, Some(hash)) => {
            let is_digest = hash.len() == 64 && hash.bytes().all(|c| c.is_ascii_hexdigit());
            if is_digest && !hash.eq_ignore_ascii_case(&hex::encode(sha256(body))) {
                return Err(AuthError::ContentHashMismatch);
            }
            SignableBody::Precomputed(hash.to_string())
        }
        (SignatureIn::Header, None) => SignableBody::Bytes(body),
    };

    let identity = signing_identity(creds);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&auth.region)
        .name(&auth.service)
        .time(auth.time)
        .settings(settings)
        .build()
        .map_err(|_| AuthError::BadSignature)?
        .into();
    let request = SignableRequest::new(method, uri, signed.into_iter(), body)
        .map_err(|_| AuthError::BadSignature)?;
    let (_, signature) = sign(request, &params)
        .map_err(|_| AuthError::BadSignature)?
        .into_parts();
    Ok(signature)
}

/// The path and query without the presigned URL's `X-Amz-*` signing
/// parameters (the signer adds them back itself).
fn without_presign_params(path_and_query: &str) -> String {
    const SIGNING: &[&str] = &[
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
        "X-Amz-Security-Token",
    ];
    let Some((path, query)) = path_and_query.split_once('?') else {
        return path_and_query.to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let key = pair.split('=').next().unwrap_or("");
            !SIGNING.contains(&key)
        })
        .collect();
    if kept.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", kept.join("&"))
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// Equal without an early exit: the time taken does not say how many
/// leading characters of a forged signature were right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why an `aws-chunked` body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkedError {
    #[error("the aws-chunked body is malformed: {0}")]
    Malformed(String),
    #[error("a chunk's signature does not match")]
    BadChunkSignature,
}

/// Undoes S3's `aws-chunked` content encoding (`x-amz-content-sha256:
/// STREAMING-…`): `size[;chunk-signature=…]\r\n data \r\n … 0…\r\n
/// [trailers]\r\n`. With `STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`
/// every chunk's signature is checked, chained from the request's
/// signature; the trailer's signature (of the `-TRAILER` variant) and
/// unsigned trailers' checksums are not checked.
pub fn decode_aws_chunked(
    body: &[u8],
    payload: &str,
    auth: &Authorization,
    creds: &ApiCredentials,
) -> Result<Vec<u8>, ChunkedError> {
    let signed = payload.starts_with("STREAMING-AWS4-HMAC-SHA256-PAYLOAD");
    let identity = signing_identity(creds);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&auth.region)
        .name(&auth.service)
        .time(auth.time)
        .settings(())
        .build()
        .map_err(|e| ChunkedError::Malformed(e.to_string()))?;
    let mut previous = auth.signature.clone();
    let mut out = Vec::with_capacity(body.len());
    let mut rest = body;
    loop {
        let line_end = find_crlf(rest)
            .ok_or_else(|| ChunkedError::Malformed("a chunk header has no CRLF".into()))?;
        let header = std::str::from_utf8(&rest[..line_end])
            .map_err(|_| ChunkedError::Malformed("a chunk header is not text".into()))?;
        rest = &rest[line_end + 2..];
        let (size_hex, extension) = match header.split_once(';') {
            Some((s, e)) => (s, Some(e)),
            None => (header, None),
        };
        let size = usize::from_str_radix(size_hex.trim(), 16)
            .map_err(|_| ChunkedError::Malformed(format!("chunk size {size_hex:?}")))?;
        if size > rest.len() {
            return Err(ChunkedError::Malformed(
                "a chunk is longer than the body".into(),
            ));
        }
        let data = &rest[..size];
        if signed {
            let claimed = extension
                .and_then(|e| e.trim().strip_prefix("chunk-signature="))
                .ok_or(ChunkedError::BadChunkSignature)?;
            let chunk = bytes::Bytes::copy_from_slice(data);
            let expected = v4::sign_chunk(&chunk, &previous, &params)
                .map_err(|_| ChunkedError::BadChunkSignature)?
                .into_parts()
                .1;
            if !constant_time_eq(expected.as_bytes(), claimed.as_bytes()) {
                return Err(ChunkedError::BadChunkSignature);
            }
            previous = expected;
        }
        out.extend_from_slice(data);
        rest = &rest[size..];
        if size == 0 {
            // Trailers (if any) follow the last chunk; they end the body.
            return Ok(out);
        }
        rest = rest
            .strip_prefix(b"\r\n")
            .ok_or_else(|| ChunkedError::Malformed("a chunk does not end with CRLF".into()))?;
    }
}

fn find_crlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|w| w == b"\r\n")
}

/// The data dir's access key as the SigV4 signer takes it: the request is
/// signed again with it and the signatures compared.
fn signing_identity(creds: &ApiCredentials) -> aws_smithy_runtime_api::client::identity::Identity {
    aws_credential_types::Credentials::new(
        &creds.access_key_id,
        &creds.secret_access_key,
        None,
        None,
        "jitpilot-local-cloud",
    )
    .into()
}

#[cfg(test)]
mod tests;
