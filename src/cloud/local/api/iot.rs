//! AWS IoT's control plane on the local cloud (restJson1, signing name
//! `iot`): what the sample's `certs_etc.py`, its Lambda and jitpilot's own
//! `--backend aws` call — the registration code, CAs with their JITP
//! templates, certificates, policies, things, topic rules and
//! `DescribeEndpoint` — on the registry the TUI shows.
//!
//! ## Layout
//!
//! - `iot.rs`              the operation table (method + URI → operation), ARNs, paging, errors
//! - `iot/cas.rs`          GetRegistrationCode and the CA operations (registration-code proof, JITP templates)
//! - `iot/template.rs`     checking a JITP template before it is attached to a CA
//! - `iot/certificates.rs` device certificates, CreateKeysAndCertificate and its local "Amazon" CA
//! - `iot/policies.rs`     policies and their attachments to certificates
//! - `iot/things.rs`       things and their principals
//! - `iot/rules.rs`        topic rules (live on the running endpoint) and DescribeEndpoint
//!
//! Every operation is synchronous over the store and runs off the async
//! executor. An operation checks everything it can before its first write,
//! so a refused request changes nothing.
//!
//! Where AWS's answers are unusual they are kept: a missing topic rule is
//! `UnauthorizedException` (401), `DeleteThing` of an absent thing succeeds.

mod cas;
mod certificates;
mod policies;
mod rules;
mod template;
#[cfg(test)]
mod tests;
mod things;

use super::{ApiContext, ApiError, ApiRequest, ApiResponse, ApiResult, Service};
use crate::cloud::local::{LOCAL_ACCOUNT_ID, LOCAL_REGION};
use crate::model::EpochMillis;
use crate::store::StoreError;
use http::Method;
use serde_json::Value;

pub use certificates::{AMAZON_CA_CERT_PARAMETER, AMAZON_CA_KEY_PARAMETER, AMAZON_CA_LABEL};

/// The `iot` service.
pub struct Iot;

/// Every operation answered, with its method and URI (the botocore model's).
const ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "/registrationcode", "GetRegistrationCode"),
    ("POST", "/cacertificate", "RegisterCACertificate"),
    ("PUT", "/cacertificate/{id}", "UpdateCACertificate"),
    ("GET", "/cacertificate/{id}", "DescribeCACertificate"),
    ("DELETE", "/cacertificate/{id}", "DeleteCACertificate"),
    ("GET", "/cacertificates", "ListCACertificates"),
    ("POST", "/certificate/register", "RegisterCertificate"),
    ("GET", "/certificates/{id}", "DescribeCertificate"),
    ("PUT", "/certificates/{id}", "UpdateCertificate"),
    ("DELETE", "/certificates/{id}", "DeleteCertificate"),
    ("GET", "/certificates", "ListCertificates"),
    ("GET", "/certificates-by-ca/{id}", "ListCertificatesByCA"),
    ("POST", "/keys-and-certificate", "CreateKeysAndCertificate"),
    ("POST", "/policies/{name}", "CreatePolicy"),
    ("GET", "/policies/{name}", "GetPolicy"),
    ("DELETE", "/policies/{name}", "DeletePolicy"),
    ("GET", "/policies", "ListPolicies"),
    ("PUT", "/target-policies/{name}", "AttachPolicy"),
    ("POST", "/target-policies/{name}", "DetachPolicy"),
    (
        "POST",
        "/attached-policies/{target+}",
        "ListAttachedPolicies",
    ),
    ("POST", "/policy-targets/{name}", "ListTargetsForPolicy"),
    ("POST", "/things/{name}", "CreateThing"),
    ("GET", "/things/{name}", "DescribeThing"),
    ("DELETE", "/things/{name}", "DeleteThing"),
    ("GET", "/things", "ListThings"),
    ("PUT", "/things/{name}/principals", "AttachThingPrincipal"),
    (
        "DELETE",
        "/things/{name}/principals",
        "DetachThingPrincipal",
    ),
    ("GET", "/things/{name}/principals", "ListThingPrincipals"),
    ("GET", "/principals/things", "ListPrincipalThings"),
    ("POST", "/rules/{name}", "CreateTopicRule"),
    ("GET", "/rules/{name}", "GetTopicRule"),
    ("PATCH", "/rules/{name}", "ReplaceTopicRule"),
    ("DELETE", "/rules/{name}", "DeleteTopicRule"),
    ("GET", "/rules", "ListTopicRules"),
    ("GET", "/endpoint", "DescribeEndpoint"),
];

/// The operation names, in [`ROUTES`]'s order (the README's table).
/// Every operation this service answers.
pub const OPERATIONS: &[&str] = &[
    "GetRegistrationCode",
    "RegisterCACertificate",
    "UpdateCACertificate",
    "DescribeCACertificate",
    "DeleteCACertificate",
    "ListCACertificates",
    "RegisterCertificate",
    "DescribeCertificate",
    "UpdateCertificate",
    "DeleteCertificate",
    "ListCertificates",
    "ListCertificatesByCA",
    "CreateKeysAndCertificate",
    "CreatePolicy",
    "GetPolicy",
    "DeletePolicy",
    "ListPolicies",
    "AttachPolicy",
    "DetachPolicy",
    "ListAttachedPolicies",
    "ListTargetsForPolicy",
    "CreateThing",
    "DescribeThing",
    "DeleteThing",
    "ListThings",
    "AttachThingPrincipal",
    "DetachThingPrincipal",
    "ListThingPrincipals",
    "ListPrincipalThings",
    "CreateTopicRule",
    "GetTopicRule",
    "ReplaceTopicRule",
    "DeleteTopicRule",
    "ListTopicRules",
    "DescribeEndpoint",
];

/// Which route `method` + `segments` is: the operation and the URI's label
/// (`{id}`, `{name}`, `{target+}`), if it has one.
fn route(method: &Method, segments: &[String]) -> Option<(&'static str, Option<String>)> {
    for (m, uri, op) in ROUTES {
        if method.as_str() != *m {
            continue;
        }
        let pattern: Vec<&str> = uri.split('/').filter(|s| !s.is_empty()).collect();
        if let Some(label) = match_uri(&pattern, segments) {
            return Some((op, label));
        }
    }
    None
}

fn match_uri(pattern: &[&str], segments: &[String]) -> Option<Option<String>> {
    let mut label = None;
    for (i, part) in pattern.iter().enumerate() {
        if part.ends_with("+}") {
            // Greedy: an ARN sent with its `/` unencoded spans segments.
            let rest = segments.get(i..).filter(|r| !r.is_empty())?;
            return Some(Some(rest.join("/")));
        }
        let segment = segments.get(i)?;
        if part.starts_with('{') {
            label = Some(segment.clone());
        } else if part != segment {
            return None;
        }
    }
    (segments.len() == pattern.len()).then_some(label)
}

#[async_trait::async_trait]
impl Service for Iot {
    fn operation(&self, request: &ApiRequest) -> Result<&'static str, ApiError> {
        route(&request.method, &request.path_segments())
            .map(|(op, _)| op)
            .ok_or_else(|| {
                ApiError::unknown_operation("iot", &format!("{} {}", request.method, request.path))
            })
    }

    async fn call(
        &self,
        ctx: &ApiContext,
        operation: &'static str,
        request: ApiRequest,
    ) -> ApiResult {
        let ctx = ctx.clone();
        tokio::task::spawn_blocking(move || dispatch(&ctx, operation, &request))
            .await
            .map_err(|e| ApiError::internal(format!("iot:{operation} stopped unexpectedly: {e}")))?
    }
}

/// What one operation receives: the context, the request and its URI label.
pub(super) struct Call<'a> {
    pub ctx: &'a ApiContext,
    pub request: &'a ApiRequest,
    /// The URI's `{id}`/`{name}`/`{target+}`, percent-decoded.
    pub label: Option<String>,
}

impl Call<'_> {
    /// The URI label, which the route guarantees for operations that have one.
    fn label(&self, name: &str) -> Result<&str, ApiError> {
        self.label
            .as_deref()
            .filter(|l| !l.is_empty())
            .ok_or_else(|| missing(name))
    }

    /// A boolean query parameter (`setAsActive=true`).
    fn query_bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.request.query_param(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(ApiError::invalid_request(format!(
                "{name} must be true or false, not {v:?}"
            ))),
        }
    }

    fn query(&self, name: &str) -> Option<&str> {
        self.request.query_param(name)
    }

    fn store(&self) -> &crate::store::Store {
        self.ctx.cloud.store()
    }
}

fn dispatch(ctx: &ApiContext, operation: &str, request: &ApiRequest) -> ApiResult {
    let label = route(&request.method, &request.path_segments()).and_then(|(_, l)| l);
    let call = Call {
        ctx,
        request,
        label,
    };
    match operation {
        "GetRegistrationCode" => cas::get_registration_code(&call),
        "RegisterCACertificate" => cas::register(&call),
        "UpdateCACertificate" => cas::update(&call),
        "DescribeCACertificate" => cas::describe(&call),
        "DeleteCACertificate" => cas::delete(&call),
        "ListCACertificates" => cas::list(&call),
        "RegisterCertificate" => certificates::register(&call),
        "DescribeCertificate" => certificates::describe(&call),
        "UpdateCertificate" => certificates::update(&call),
        "DeleteCertificate" => certificates::delete(&call),
        "ListCertificates" => certificates::list(&call, None),
        "ListCertificatesByCA" => {
            let ca = call.label("caCertificateId")?.to_string();
            certificates::list(&call, Some(&ca))
        }
        "CreateKeysAndCertificate" => certificates::create_keys_and_certificate(&call),
        "CreatePolicy" => policies::create(&call),
        "GetPolicy" => policies::get(&call),
        "DeletePolicy" => policies::delete(&call),
        "ListPolicies" => policies::list(&call),
        "AttachPolicy" => policies::attach(&call),
        "DetachPolicy" => policies::detach(&call),
        "ListAttachedPolicies" => policies::list_attached(&call),
        "ListTargetsForPolicy" => policies::list_targets(&call),
        "CreateThing" => things::create(&call),
        "DescribeThing" => things::describe(&call),
        "DeleteThing" => things::delete(&call),
        "ListThings" => things::list(&call),
        "AttachThingPrincipal" => things::attach_principal(&call),
        "DetachThingPrincipal" => things::detach_principal(&call),
        "ListThingPrincipals" => things::list_principals(&call),
        "ListPrincipalThings" => things::list_principal_things(&call),
        "CreateTopicRule" => rules::create(&call),
        "GetTopicRule" => rules::get(&call),
        "ReplaceTopicRule" => rules::replace(&call),
        "DeleteTopicRule" => rules::delete(&call),
        "ListTopicRules" => rules::list(&call),
        "DescribeEndpoint" => rules::describe_endpoint(&call),
        other => Err(ApiError::unknown_operation("iot", other)),
    }
}

// ---- ARNs ------------------------------------------------------------------

fn arn(kind: &str, name: &str) -> String {
    format!("arn:aws:iot:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:{kind}/{name}")
}

/// `arn:aws:iot:<region>:<account>:cert/<certificateId>`.
pub fn cert_arn(id: &str) -> String {
    arn("cert", id)
}

/// `arn:aws:iot:<region>:<account>:cacert/<caCertificateId>`.
pub fn ca_cert_arn(id: &str) -> String {
    arn("cacert", id)
}

fn policy_arn(name: &str) -> String {
    arn("policy", name)
}

fn thing_arn(name: &str) -> String {
    arn("thing", name)
}

fn rule_arn(name: &str) -> String {
    arn("rule", name)
}

/// The certificateId a principal names: a certificate ARN (what AWS
/// expects), or a bare certificateId (accepted for convenience).
fn cert_id_of_principal(principal: &str) -> Result<String, ApiError> {
    let id = match principal.split_once(":cert/") {
        Some((prefix, id)) if prefix.starts_with("arn:aws") && prefix.contains(":iot:") => id,
        _ => principal,
    };
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id.to_ascii_lowercase())
    } else {
        Err(ApiError::invalid_request(format!(
            "{principal:?} is not a certificate ARN (arn:aws:iot:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:cert/<certificateId>); the local cloud's principals and policy targets are certificates"
        )))
    }
}

// ---- shapes ----------------------------------------------------------------

/// AWS's timestamps in restJson: epoch seconds, fractional.
fn epoch_seconds(ms: EpochMillis) -> Value {
    serde_json::json!(ms as f64 / 1000.0)
}

/// A stable id that looks like AWS's (a UUID) for what the store keys by
/// name: a thing's `thingId`, a `generationId`.
fn uuid_like(seed: &str) -> String {
    let h = crate::pki::certificate_id(seed.as_bytes());
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// 200 with `value` as the restJson body.
fn ok(value: Value) -> ApiResult {
    Ok(ApiResponse::json(&value))
}

/// 200 with an empty JSON object (operations with no output).
fn done() -> ApiResult {
    ok(serde_json::json!({}))
}

// ---- errors ----------------------------------------------------------------

/// A required member is missing: IoT answers `InvalidRequestException`.
fn missing(name: &str) -> ApiError {
    ApiError::invalid_request(format!("the required parameter {name} is missing"))
}

fn not_found(message: impl Into<String>) -> ApiError {
    ApiError::not_found(message)
}

/// 406 `CertificateStateException`: not allowed in the certificate's state.
fn certificate_state(message: impl Into<String>) -> ApiError {
    ApiError::new(406, "CertificateStateException", message)
}

/// 400 `CertificateValidationException`: the certificate is not acceptable.
fn certificate_validation(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "CertificateValidationException", message)
}

/// 409 `DeleteConflictException`: still in use.
fn delete_conflict(message: impl Into<String>) -> ApiError {
    ApiError::new(409, "DeleteConflictException", message)
}

/// A store error in AWS's words.
fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound { .. } => not_found(e.to_string()),
        StoreError::AlreadyExists { .. } => ApiError::already_exists(e.to_string()),
        StoreError::Conflict { .. } | StoreError::Invalid { .. } => {
            ApiError::invalid_request(e.to_string())
        }
        other => ApiError::internal(other),
    }
}

/// A control-plane (`Cloud`) error in AWS's words.
fn cloud_error(e: crate::cloud::CloudError) -> ApiError {
    match e {
        crate::cloud::CloudError::Store(e) => store_error(e),
        other => ApiError::internal(other),
    }
}

// ---- paging ----------------------------------------------------------------

/// The most items one page holds (AWS's `pageSize`/`maxResults` limit).
const MAX_PAGE: usize = 250;

/// One page of `items` from `token` (the opaque marker/nextToken of the
/// previous page: here the offset) of at most `size` items; the token of
/// the next page, if any.
fn page<T>(
    items: Vec<T>,
    token: Option<&str>,
    size: Option<&str>,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let start = match token.filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => t.parse::<usize>().map_err(|_| {
            ApiError::invalid_request(format!(
                "the marker {t:?} was not returned by this API; pass the nextMarker/nextToken of the previous page"
            ))
        })?,
    };
    let size = match size {
        None => MAX_PAGE,
        Some(s) => match s.parse::<usize>() {
            Ok(n @ 1..=MAX_PAGE) => n,
            _ => {
                return Err(ApiError::invalid_request(format!(
                    "the page size must be between 1 and {MAX_PAGE}, not {s:?}"
                )))
            }
        },
    };
    let total = items.len();
    let end = start.saturating_add(size).min(total);
    let next = (end < total).then(|| end.to_string());
    let items = items
        .into_iter()
        .skip(start)
        .take(end.saturating_sub(start))
        .collect();
    Ok((items, next))
}

/// Adds `name: next` to `body` when there is a next page.
fn with_next(mut body: Value, name: &str, next: Option<String>) -> Value {
    if let (Some(next), Some(map)) = (next, body.as_object_mut()) {
        map.insert(name.to_string(), Value::String(next));
    }
    body
}
