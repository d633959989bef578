//! The AWS wire protocols' error shapes, and the codes each protocol uses
//! for a refused signature: what SDKs parse into the exceptions users
//! already catch.
//!
//! | protocol   | error body                                                   |
//! |------------|--------------------------------------------------------------|
//! | restJson1  | `x-amzn-ErrorType: Code` + `{"message", "__type"}`           |
//! | awsJson    | `{"__type": "namespace#Code", "message"}`                    |
//! | awsQuery   | `<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/>` |
//! | restXml    | `<Error><Code/><Message/><RequestId/></Error>` (S3)          |

use super::sigv4::{AuthError, ChunkedError};
use super::{xml_escape, ApiError, ApiResponse, Protocol};
use bytes::Bytes;

/// The protocol a request speaks before its service is known (no or a
/// malformed signature): awsJson by `X-Amz-Target`, awsQuery by a form
/// body, restXml for a credential scope of `s3`, restJson otherwise.
pub fn guess(headers: &http::HeaderMap, query: &str, service: Option<&str>) -> Protocol {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if service == Some("s3") {
        return Protocol::RestXml;
    }
    if header("x-amz-target").is_some() {
        return if header("content-type").is_some_and(|c| c.contains("1.0")) {
            Protocol::AwsJson10
        } else {
            Protocol::AwsJson11
        };
    }
    let form = header("content-type").is_some_and(|c| c.contains("x-www-form-urlencoded"));
    if form || query.contains("Action=") {
        return Protocol::AwsQuery;
    }
    Protocol::RestJson
}

/// A query service (STS, CloudFormation) asked in awsJson form (`X-Amz-Target`,
/// as newer SDKs may do) is answered in awsJson.
pub fn effective(protocol: Protocol, headers: &http::HeaderMap) -> Protocol {
    if protocol == Protocol::AwsQuery && headers.contains_key("x-amz-target") {
        Protocol::AwsJson10
    } else {
        protocol
    }
}

/// The error a refused signature gets, with the code `protocol`'s SDKs know.
pub fn auth_error(protocol: Protocol, err: &AuthError) -> ApiError {
    let query = protocol == Protocol::AwsQuery;
    let s3 = protocol == Protocol::RestXml;
    let (status, code) = match err {
        AuthError::Missing if s3 => (403, "AccessDenied"),
        AuthError::Missing if query => (403, "MissingAuthenticationToken"),
        AuthError::Missing => (403, "MissingAuthenticationTokenException"),
        AuthError::Malformed(_) if s3 => (400, "AuthorizationHeaderMalformed"),
        AuthError::Malformed(_) if query => (400, "IncompleteSignature"),
        AuthError::Malformed(_) => (400, "IncompleteSignatureException"),
        AuthError::UnknownKey(_) if s3 => (403, "InvalidAccessKeyId"),
        AuthError::UnknownKey(_) if query => (403, "InvalidClientTokenId"),
        AuthError::UnknownKey(_) => (403, "UnrecognizedClientException"),
        AuthError::BadSignature if s3 || query => (403, "SignatureDoesNotMatch"),
        AuthError::BadSignature => (403, "InvalidSignatureException"),
        AuthError::Expired(_) if s3 => (403, "RequestTimeTooSkewed"),
        AuthError::Expired(_) if query => (403, "SignatureDoesNotMatch"),
        AuthError::Expired(_) => (403, "InvalidSignatureException"),
        AuthError::ContentHashMismatch => (400, "XAmzContentSHA256Mismatch"),
    };
    ApiError::new(status, code, err.to_string())
}

/// The error an undecodable `aws-chunked` body gets (S3's codes).
pub fn chunked_error(err: &ChunkedError) -> ApiError {
    match err {
        ChunkedError::Malformed(_) => ApiError::new(400, "IncompleteBody", err.to_string()),
        ChunkedError::BadChunkSignature => {
            ApiError::new(403, "SignatureDoesNotMatch", err.to_string())
        }
    }
}

/// A body over the limit: S3's `EntityTooLarge` (400), 413 elsewhere.
pub fn too_large(protocol: Protocol, limit: usize) -> ApiError {
    let message = format!(
        "the request body is larger than the local cloud's limit of {limit} bytes for this service"
    );
    if protocol == Protocol::RestXml {
        ApiError::new(400, "EntityTooLarge", message)
    } else {
        ApiError::new(413, "RequestEntityTooLarge", message)
    }
}

/// `err` in `protocol`'s shape, for `service` (the awsJson namespace).
pub fn error_response(
    protocol: Protocol,
    service: &str,
    err: &ApiError,
    request_id: &str,
) -> ApiResponse {
    let (content_type, body) = match protocol {
        Protocol::RestJson => (
            "application/json",
            serde_json::json!({"message": err.message, "__type": err.code}).to_string(),
        ),
        Protocol::AwsJson10 | Protocol::AwsJson11 => (
            if protocol == Protocol::AwsJson10 {
                "application/x-amz-json-1.0"
            } else {
                "application/x-amz-json-1.1"
            },
            serde_json::json!({
                "__type": format!("com.amazonaws.{service}#{}", err.code),
                "message": err.message,
            })
            .to_string(),
        ),
        Protocol::AwsQuery => (
            "text/xml",
            format!(
                "<ErrorResponse xmlns=\"{}\"><Error><Type>{}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
                query_namespace(service),
                if err.status >= 500 { "Receiver" } else { "Sender" },
                xml_escape(&err.code),
                xml_escape(&err.message),
                xml_escape(request_id),
            ),
        ),
        Protocol::RestXml => (
            "application/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><RequestId>{}</RequestId></Error>",
                xml_escape(&err.code),
                xml_escape(&err.message),
                xml_escape(request_id),
            ),
        ),
    };
    let mut response = ApiResponse {
        status: err.status,
        headers: vec![("content-type".into(), content_type.into())],
        body: Bytes::from(body),
    };
    if protocol == Protocol::RestJson {
        response = response.with_header("x-amzn-ErrorType", err.code.clone());
    }
    response
}

/// The XML namespace of an awsQuery service's documents.
pub fn query_namespace(service: &str) -> &'static str {
    match service {
        "sts" => "https://sts.amazonaws.com/doc/2011-06-15/",
        "cloudformation" => "http://cloudformation.amazonaws.com/doc/2010-05-15/",
        _ => "https://jitpilot.local/doc/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err() -> ApiError {
        ApiError::new(404, "ResourceNotFoundException", "no <such> thing & more")
    }

    #[test]
    fn each_protocol_shapes_the_error_as_its_sdks_parse_it() {
        let r = error_response(Protocol::RestJson, "iot", &err(), "rid");
        assert_eq!(r.status, 404);
        assert!(r.headers.contains(&(
            "x-amzn-ErrorType".into(),
            "ResourceNotFoundException".into()
        )));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["message"], "no <such> thing & more");

        let r = error_response(Protocol::AwsJson10, "dynamodb", &err(), "rid");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            v["__type"],
            "com.amazonaws.dynamodb#ResourceNotFoundException"
        );

        let r = error_response(Protocol::AwsQuery, "sts", &err(), "rid");
        let text = String::from_utf8(r.body.to_vec()).unwrap();
        assert!(text.contains("<Type>Sender</Type><Code>ResourceNotFoundException</Code><Message>no &lt;such&gt; thing &amp; more</Message></Error><RequestId>rid</RequestId>"), "{text}");

        let r = error_response(Protocol::RestXml, "s3", &err(), "rid");
        let text = String::from_utf8(r.body.to_vec()).unwrap();
        assert!(
            text.contains("<Error><Code>ResourceNotFoundException</Code>"),
            "{text}"
        );
    }

    #[test]
    fn refused_signatures_get_each_protocols_code() {
        let codes = |e: AuthError| {
            [Protocol::RestJson, Protocol::AwsQuery, Protocol::RestXml]
                .map(|p| auth_error(p, &e).code)
        };
        assert_eq!(
            codes(AuthError::Missing),
            [
                "MissingAuthenticationTokenException",
                "MissingAuthenticationToken",
                "AccessDenied"
            ]
        );
        assert_eq!(
            codes(AuthError::UnknownKey("K".into())),
            [
                "UnrecognizedClientException",
                "InvalidClientTokenId",
                "InvalidAccessKeyId"
            ]
        );
        assert_eq!(
            codes(AuthError::BadSignature),
            [
                "InvalidSignatureException",
                "SignatureDoesNotMatch",
                "SignatureDoesNotMatch"
            ]
        );
        assert_eq!(
            codes(AuthError::Expired("x".into())),
            [
                "InvalidSignatureException",
                "SignatureDoesNotMatch",
                "RequestTimeTooSkewed"
            ]
        );
        assert_eq!(
            auth_error(Protocol::AwsJson10, &AuthError::Missing).status,
            403
        );
    }
}
