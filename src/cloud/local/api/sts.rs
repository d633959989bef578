//! STS: `GetCallerIdentity` — who the data dir's access key is: the local
//! account ([`LOCAL_ACCOUNT_ID`]) and a fixed user. `aws sts
//! get-caller-identity` is the usual first check that a shell's
//! credentials reach the cloud.
//!
//! STS speaks awsQuery (form `Action=GetCallerIdentity`, XML answer); a
//! client that asks in awsJson (`X-Amz-Target: AWSSecurityTokenServiceV20110615.GetCallerIdentity`)
//! is answered in JSON.

use super::{xml_escape, ApiContext, ApiError, ApiRequest, ApiResponse, ApiResult, Service};
use crate::cloud::local::LOCAL_ACCOUNT_ID;

/// The user the data dir's key belongs to.
pub const LOCAL_USER: &str = "jitpilot";
/// Its IAM unique id.
pub const LOCAL_USER_ID: &str = "AIDAJITPILOTLOCALUSER";

/// The `sts` service.
pub struct Sts;

fn arn() -> String {
    format!("arn:aws:iam::{LOCAL_ACCOUNT_ID}:user/{LOCAL_USER}")
}

/// awsQuery's `Action`, or awsJson's target.
fn action(request: &ApiRequest) -> Option<String> {
    if let Some(op) = request.target_operation() {
        return Some(op.to_string());
    }
    request
        .form()
        .into_iter()
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v)
}

/// Every operation this service answers.
pub const OPERATIONS: &[&str] = &["GetCallerIdentity"];

#[async_trait::async_trait]
impl Service for Sts {
    fn operation(&self, request: &ApiRequest) -> Result<&'static str, ApiError> {
        match action(request) {
            Some(a) if a == "GetCallerIdentity" => Ok("GetCallerIdentity"),
            Some(a) => Err(ApiError::unknown_operation("sts", &a)),
            None => Err(ApiError::new(
                400,
                "MissingAction",
                "the request names no Action (awsQuery: a form body with Action=GetCallerIdentity&Version=2011-06-15)",
            )),
        }
    }

    async fn call(
        &self,
        _ctx: &ApiContext,
        operation: &'static str,
        request: ApiRequest,
    ) -> ApiResult {
        match operation {
            "GetCallerIdentity" => Ok(get_caller_identity(&request)),
            other => Err(ApiError::unknown_operation("sts", other)),
        }
    }
}

fn get_caller_identity(request: &ApiRequest) -> ApiResponse {
    if request.target_operation().is_some() {
        return ApiResponse::json_with(
            &serde_json::json!({
                "UserId": LOCAL_USER_ID,
                "Account": LOCAL_ACCOUNT_ID,
                "Arn": arn(),
            }),
            "application/x-amz-json-1.0",
        );
    }
    let request_id = request.request_id();
    ApiResponse::xml(format!(
        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult><Arn>{}</Arn><UserId>{}</UserId><Account>{}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></GetCallerIdentityResponse>",
        xml_escape(&arn()),
        LOCAL_USER_ID,
        LOCAL_ACCOUNT_ID,
        xml_escape(request_id),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: &str, target: Option<&str>) -> ApiRequest {
        let mut headers = http::HeaderMap::new();
        if let Some(t) = target {
            headers.insert("x-amz-target", http::HeaderValue::from_str(t).unwrap());
        }
        ApiRequest {
            service: "sts".into(),
            method: http::Method::POST,
            path: "/".into(),
            query: Vec::new(),
            headers,
            body: bytes::Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn get_caller_identity_names_the_local_account_in_query_and_json() {
        let r = request("Action=GetCallerIdentity&Version=2011-06-15", None);
        assert_eq!(Sts.operation(&r), Ok("GetCallerIdentity"));
        let text = String::from_utf8(get_caller_identity(&r).body.to_vec()).unwrap();
        assert!(text.contains("<Account>123456789012</Account>"), "{text}");
        assert!(
            text.contains("<Arn>arn:aws:iam::123456789012:user/jitpilot</Arn>"),
            "{text}"
        );

        let r = request(
            "{}",
            Some("AWSSecurityTokenServiceV20110615.GetCallerIdentity"),
        );
        assert_eq!(Sts.operation(&r), Ok("GetCallerIdentity"));
        let v: serde_json::Value = serde_json::from_slice(&get_caller_identity(&r).body).unwrap();
        assert_eq!(v["Account"], "123456789012");
    }

    #[test]
    fn other_actions_are_unknown_operations() {
        let e = Sts
            .operation(&request("Action=AssumeRole", None))
            .unwrap_err();
        assert_eq!(e.code, "UnknownOperationException");
        let e = Sts.operation(&request("", None)).unwrap_err();
        assert_eq!(e.code, "MissingAction");
    }
}
