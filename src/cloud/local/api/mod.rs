//! The local cloud's AWS API: one HTTP port (`--api-addr`, default
//! `127.0.0.1:4566`) where the aws CLI, boto3, the sample's scripts and
//! jitpilot's own `--backend aws` drive the same state the TUI shows.
//!
//! A request travels: the listener (`server.rs`) reads it within the body
//! limit → `sigv4.rs` checks its signature against the data dir's own
//! access key (`credentials.rs`) → the credential scope's service name picks
//! a [`Service`] → the service names the operation from its protocol
//! (restJson1: method + URI; awsJson: `X-Amz-Target`; awsQuery: the form's
//! `Action`; restXml: method + URI) → the operation runs on the local cloud
//! ([`ApiContext`]) → the answer, or an [`ApiError`] in the protocol's error
//! shape with AWS's code and HTTP status.
//!
//! ## Layout
//!
//! - `mod.rs`         the shared vocabulary: request, response, error, context, the [`Service`] trait, the router's table
//! - `server.rs`      the HTTP listener (hyper): bounds, body limits, dispatch
//! - `sigv4.rs`       SigV4 verification by recomputing the signature (aws-sigv4), S3's `aws-chunked`
//! - `credentials.rs` the data dir's access key, made on first start (0600)
//! - `protocol.rs`    the error shapes of the AWS wire protocols, and their codes for refused signatures
//! - `traffic.rs`     the TUI's API rows: one event per call, secrets redacted
//! - one file per service: `iot.rs`, `iot_data.rs`, `sts.rs`, `ssm.rs`,
//!   `dynamodb.rs`, `cloudformation.rs`, `s3.rs`, `lambda.rs`
//!
//! Every operation is a thin adapter over the store and the control plane
//! the CLI and TUI use: one implementation of the semantics, two front doors.
//! An operation that writes more than once does so in one store transaction
//! (or checks everything before its first write): nothing is half-applied.

pub mod cloudformation;
pub mod credentials;
pub mod dynamodb;
pub mod iot;
pub mod iot_data;
pub mod json_members;
pub mod lambda;
pub mod protocol;
pub mod s3;
pub mod server;
pub mod sigv4;
pub mod ssm;
pub mod sts;
pub mod traffic;
pub mod xml;

use super::LocalCloud;
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;

/// The AWS wire protocol a service speaks: how its operation is named and
/// how its errors are shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// restJson1 (IoT, iot-data, Lambda): method + URI; errors as JSON with
    /// an `x-amzn-ErrorType` header.
    RestJson,
    /// awsJson 1.0 (DynamoDB): `X-Amz-Target`; errors as `{"__type", "message"}`.
    AwsJson10,
    /// awsJson 1.1 (SSM): as 1.0 with another content type.
    AwsJson11,
    /// awsQuery (STS, CloudFormation): form `Action`; XML answers and `ErrorResponse`.
    AwsQuery,
    /// restXml (S3): method + URI; XML answers and `<Error>`.
    RestXml,
}

/// The request header the server sets to the request's id before an
/// operation runs (see [`ApiRequest::request_id`]).
pub const REQUEST_ID_HEADER: &str = "x-amzn-requestid";

/// One request, read whole (within the body limit) and authenticated.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// The credential scope's service name (`iot`, `iotdata`, `dynamodb`, …).
    pub service: String,
    pub method: http::Method,
    /// The raw (percent-encoded) path, e.g. `/cacertificate/abc`.
    pub path: String,
    /// The query string's pairs, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl ApiRequest {
    /// The path's segments, percent-decoded (`/topics/a%2Fb` → `["topics", "a/b"]`).
    pub fn path_segments(&self) -> Vec<String> {
        self.path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect()
    }

    /// The first query parameter named `name`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The id the server answers this request with (`x-amzn-RequestId`),
    /// for bodies that repeat it (awsQuery's `ResponseMetadata`).
    pub fn request_id(&self) -> &str {
        self.header(REQUEST_ID_HEADER).unwrap_or("")
    }

    /// awsJson's operation: the part of `X-Amz-Target` after the dot
    /// (`DynamoDB_20120810.GetItem` → `GetItem`).
    pub fn target_operation(&self) -> Option<&str> {
        self.header("x-amz-target")
            .and_then(|t| t.rsplit_once('.'))
            .map(|(_, op)| op)
    }

    /// The body as JSON of type `T`; an empty body reads as `{}`.
    /// A malformed body is a 400 `SerializationException`/`ValidationException`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        let body: &[u8] = if self.body.is_empty() {
            b"{}"
        } else {
            &self.body
        };
        serde_json::from_slice(body).map_err(|e| {
            ApiError::new(
                400,
                "SerializationException",
                format!("the request body is not valid JSON for this operation: {e}"),
            )
        })
    }

    /// awsQuery's form body (`Action=…&Version=…&…`), percent-decoded;
    /// the query string's pairs are included too (CLI GETs put them there).
    pub fn form(&self) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = form_urlencoded::parse(&self.body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        pairs.extend(self.query.iter().cloned());
        pairs
    }
}

/// An answer. Build with [`ApiResponse::json`], [`ApiResponse::xml`] or
/// [`ApiResponse::empty`].
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    /// Extra headers (the server adds `x-amzn-RequestId` and `Content-Length`).
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl ApiResponse {
    /// 200 with a JSON body (`content_type` `application/json` for restJson,
    /// `application/x-amz-json-1.0|1.1` for awsJson).
    pub fn json_with(value: &serde_json::Value, content_type: &str) -> ApiResponse {
        ApiResponse {
            status: 200,
            headers: vec![("content-type".into(), content_type.into())],
            body: Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
        }
    }

    /// 200 with a JSON body, `application/json`.
    pub fn json(value: &serde_json::Value) -> ApiResponse {
        ApiResponse::json_with(value, "application/json")
    }

    /// 200 with an XML body (awsQuery, restXml).
    pub fn xml(body: String) -> ApiResponse {
        ApiResponse {
            status: 200,
            headers: vec![("content-type".into(), "text/xml".into())],
            body: Bytes::from(body),
        }
    }

    /// `status` with no body.
    pub fn empty(status: u16) -> ApiResponse {
        ApiResponse {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// Sets the status.
    pub fn with_status(mut self, status: u16) -> ApiResponse {
        self.status = status;
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> ApiResponse {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// An error in AWS's words: the HTTP status and the code SDKs raise as an
/// exception (`ResourceNotFoundException`, `ValidationError`, …). The
/// server shapes it for the service's [`Protocol`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} ({status}): {message}")]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl ApiError {
    /// An error with any status and code.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.to_string(),
            message: message.into(),
        }
    }

    /// 404 `ResourceNotFoundException` (IoT, Lambda, DynamoDB use 400 for it:
    /// pass the status the service uses with [`ApiError::new`] where it differs).
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(404, "ResourceNotFoundException", message)
    }

    /// 409 `ResourceAlreadyExistsException`.
    pub fn already_exists(message: impl Into<String>) -> ApiError {
        ApiError::new(409, "ResourceAlreadyExistsException", message)
    }

    /// 400 `InvalidRequestException`.
    pub fn invalid_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "InvalidRequestException", message)
    }

    /// 400 `ValidationException` (awsJson/restJson) — awsQuery services use
    /// `ValidationError`: pass it with [`ApiError::new`].
    pub fn validation(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "ValidationException", message)
    }

    /// A required parameter is missing.
    pub fn missing(parameter: &str) -> ApiError {
        ApiError::validation(format!("the required parameter {parameter} is missing"))
    }

    /// 400 `UnknownOperationException`: the service has no such operation here.
    pub fn unknown_operation(service: &str, what: &str) -> ApiError {
        ApiError::new(
            400,
            "UnknownOperationException",
            format!("{service}: {what} is not an operation jitpilot's local cloud answers; see the README's table of supported operations"),
        )
    }

    /// 500 `InternalFailure`: the store failed (the message says how).
    pub fn internal(err: impl std::fmt::Display) -> ApiError {
        ApiError::new(500, "InternalFailure", err.to_string())
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        ApiError::internal(e)
    }
}

/// Result of an operation.
pub type ApiResult = Result<ApiResponse, ApiError>;

/// What operations run on: the local cloud, and its running endpoint when
/// there is one. Cheap to clone.
#[derive(Clone)]
pub struct ApiContext {
    /// The control plane and its store (registry, tables, parameters,
    /// stacks, event log) — the state the TUI shows.
    pub cloud: LocalCloud,
    /// Publishes as the cloud through the endpoint's router (iot-data
    /// `Publish`, rules run); `None` without a running endpoint.
    pub publisher: Option<Arc<dyn crate::rotation::Publisher>>,
    /// Where the MQTT endpoint listens (DescribeEndpoint `iot:Data-ATS`).
    pub mqtt_addr: Option<SocketAddr>,
    /// Where this API listens (filled in once bound).
    pub api_addr: SocketAddr,
    /// The built-in functions (Lambda `Invoke` of a stack's function);
    /// empty without a running endpoint.
    pub functions: super::functions::FunctionRegistry,
}

#[cfg(test)]
impl ApiContext {
    /// The context of an API without a running endpoint (operations' unit
    /// tests): nothing to publish through, no built-in functions.
    pub(crate) fn without_endpoint(cloud: LocalCloud) -> ApiContext {
        ApiContext {
            cloud,
            publisher: None,
            mqtt_addr: None,
            api_addr: SocketAddr::from(([127, 0, 0, 1], 4566)),
            functions: Default::default(),
        }
    }
}

/// One AWS service's handler: which operation a request is, and running it
/// (its signing name, protocol and operations are in [`services`]' table).
#[async_trait::async_trait]
pub trait Service: Send + Sync {
    /// Which operation `request` is: one of the service's
    /// [`Registered::operations`], or `UnknownOperationException`.
    fn operation(&self, request: &ApiRequest) -> Result<&'static str, ApiError>;
    /// Runs `operation` on the local cloud.
    async fn call(
        &self,
        ctx: &ApiContext,
        operation: &'static str,
        request: ApiRequest,
    ) -> ApiResult;
}

/// One service as the router's table lists it.
#[derive(Clone)]
pub struct Registered {
    /// The credential scope's service name that selects it (`iot`,
    /// `iotdata`, `sts`, `ssm`, `dynamodb`, `cloudformation`, `s3`, `lambda`).
    pub signing_name: &'static str,
    /// How its requests name operations and how its errors are shaped.
    pub protocol: Protocol,
    /// Every operation it answers (the README's table is made from these).
    pub operations: &'static [&'static str],
    pub handler: Arc<dyn Service>,
}

/// The router's table: every service the API answers.
pub fn services() -> Vec<Registered> {
    fn entry(
        signing_name: &'static str,
        protocol: Protocol,
        operations: &'static [&'static str],
        handler: impl Service + 'static,
    ) -> Registered {
        Registered {
            signing_name,
            protocol,
            operations,
            handler: Arc::new(handler),
        }
    }
    vec![
        entry("iot", Protocol::RestJson, iot::OPERATIONS, iot::Iot),
        entry(
            "iotdata",
            Protocol::RestJson,
            iot_data::OPERATIONS,
            iot_data::IotData,
        ),
        entry("sts", Protocol::AwsQuery, sts::OPERATIONS, sts::Sts),
        entry("ssm", Protocol::AwsJson11, ssm::OPERATIONS, ssm::Ssm),
        entry(
            "dynamodb",
            Protocol::AwsJson10,
            dynamodb::OPERATIONS,
            dynamodb::DynamoDb,
        ),
        entry(
            "cloudformation",
            Protocol::AwsQuery,
            cloudformation::OPERATIONS,
            cloudformation::CloudFormation,
        ),
        entry("s3", Protocol::RestXml, s3::OPERATIONS, s3::S3),
        entry(
            "lambda",
            Protocol::RestJson,
            lambda::OPERATIONS,
            lambda::Lambda,
        ),
    ]
}

/// `(signing name, operation)` for every operation answered, in the
/// router's order: the README's table of supported operations.
pub fn operations_table() -> Vec<(&'static str, &'static str)> {
    services()
        .iter()
        .flat_map(|s| s.operations.iter().map(move |op| (s.signing_name, *op)))
        .collect()
}

/// awsJson's operation: `X-Amz-Target` is `<prefix><Operation>` with the
/// operation one of `operations`; anything else is `UnknownOperationException`.
pub fn aws_json_operation(
    request: &ApiRequest,
    service: &str,
    prefix: &str,
    operations: &'static [&'static str],
) -> Result<&'static str, ApiError> {
    let target = request.header("x-amz-target").unwrap_or_default();
    let name = target
        .strip_prefix(prefix)
        .ok_or_else(|| ApiError::unknown_operation(service, &format!("X-Amz-Target {target:?}")))?;
    operations
        .iter()
        .find(|op| **op == name)
        .copied()
        .ok_or_else(|| ApiError::unknown_operation(service, name))
}

/// Escapes text for an XML element or attribute (awsQuery and restXml bodies).
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}
