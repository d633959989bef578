//! What goes wrong when talking to AWS, in words a user can act on.
//!
//! Every SDK call goes through [`api`], which turns the SDK's error into an
//! [`AwsError`]: missing credentials or region, `AccessDenied` (naming the
//! IAM action that is missing), throttling that outlived the SDK's adaptive
//! retries, an endpoint that cannot be reached, or any other API error with
//! its code and message.

use aws_sdk_iot::error::DisplayErrorContext;
use aws_sdk_iot::error::{ProvideErrorMetadata, SdkError};

/// An AWS call that failed. Messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("no AWS credentials found ({detail}); set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run `aws configure` / `aws sso login`")]
    NoCredentials { detail: String },
    #[error("no AWS region configured; pass `--region us-east-1` (or set AWS_REGION, or `region` in your AWS profile)")]
    NoRegion,
    #[error("{operation}: access denied: the caller lacks `{permission}`; add it to your IAM policy (README \"On AWS\" lists every permission jitpilot needs). AWS said: {message}")]
    AccessDenied {
        operation: &'static str,
        permission: String,
        message: String,
    },
    #[error("{operation}: AWS kept throttling the request after the SDK's adaptive retries; wait a minute and run the command again (IoT registry APIs allow about 10 requests/s per account)")]
    Throttled { operation: &'static str },
    #[error("{operation}: cannot reach the AWS endpoint ({detail}); check your network, `--region` and `--endpoint-url`")]
    Unreachable {
        operation: &'static str,
        detail: String,
    },
    #[error("{operation} failed: {code}: {message}")]
    Api {
        operation: &'static str,
        code: String,
        message: String,
    },
    #[error("{0}")]
    Other(String),
}

/// Result of an AWS operation.
pub type AwsResult<T> = Result<T, AwsError>;

/// Error codes AWS services use for a denied call.
const ACCESS_DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "AuthorizationError",
];
/// Error codes of a throttled call (each service has its own spelling).
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "SlowDown",
    "LimitExceededException",
];
/// Error codes of credentials AWS does not accept.
const BAD_CREDENTIAL_CODES: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
];

/// Turns an SDK error of `operation` into an [`AwsError`]. `permission` is
/// the IAM action the call needs, named when AWS denies it without saying.
pub fn api<E, R>(operation: &'static str, permission: &str, err: SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let context = DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::ConstructionFailure(_) | SdkError::DispatchFailure(_)
            if mentions_missing_credentials(&context) =>
        {
            AwsError::NoCredentials { detail: context }
        }
        SdkError::ConstructionFailure(_) if context.contains("region") => AwsError::NoRegion,
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => AwsError::Unreachable {
            operation,
            detail: context,
        },
        _ => classify(
            operation,
            permission,
            err.code().unwrap_or("Unknown"),
            err.message().unwrap_or(&context),
        ),
    }
}

/// Classifies an API error by its code and message (pure; unit-tested).
pub fn classify(operation: &'static str, permission: &str, code: &str, message: &str) -> AwsError {
    if ACCESS_DENIED_CODES.contains(&code)
        || (code == "UnauthorizedException" && message.contains("not authorized"))
    {
        return AwsError::AccessDenied {
            operation,
            permission: denied_action(message).unwrap_or_else(|| permission.to_string()),
            message: message.to_string(),
        };
    }
    if THROTTLING_CODES.contains(&code) {
        return AwsError::Throttled { operation };
    }
    if BAD_CREDENTIAL_CODES.contains(&code) {
        return AwsError::NoCredentials {
            detail: format!("{code}: {message}"),
        };
    }
    AwsError::Api {
        operation,
        code: code.to_string(),
        message: message.to_string(),
    }
}

/// The IAM action in an AccessDenied message: AWS writes
/// `... is not authorized to perform: iot:RegisterCACertificate on resource ...`.
pub fn denied_action(message: &str) -> Option<String> {
    let rest = message.split("perform: ").nth(1)?;
    let action: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == ':' || *c == '-' || *c == '*')
        .collect();
    action.contains(':').then_some(action)
}

fn mentions_missing_credentials(context: &str) -> bool {
    // The wordings of aws-credential-types' CredentialsError and of the
    // default chain when no provider had credentials.
    let lower = context.to_ascii_lowercase();
    [
        "no providers in chain provided credentials",
        "credential provider was not enabled",
        "credentials provider was not properly configured",
        "error occurred while loading credentials",
        "no credentials",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

/// The error code of an SDK error, when AWS answered with one.
pub fn code_of<E, R>(err: &SdkError<E, R>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    err.code()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_denied_names_the_action_from_the_message() {
        let err = classify(
            "RegisterCACertificate",
            "iot:RegisterCACertificate",
            "AccessDeniedException",
            "User: arn:aws:iam::1:user/x is not authorized to perform: iot:RegisterCACertificate on resource: *",
        );
        match &err {
            AwsError::AccessDenied { permission, .. } => {
                assert_eq!(permission, "iot:RegisterCACertificate")
            }
            other => panic!("expected AccessDenied, got {other:?}"),
        }
        assert!(err.to_string().contains("add it to your IAM policy"));
    }

    #[test]
    fn access_denied_without_action_falls_back_to_the_operation_permission() {
        let err = classify("PutObject", "s3:PutObject", "AccessDenied", "Access Denied");
        assert!(err.to_string().contains("`s3:PutObject`"), "{err}");
    }

    #[test]
    fn throttling_and_bad_credentials_are_told_apart() {
        assert!(matches!(
            classify(
                "RegisterCertificate",
                "iot:RegisterCertificate",
                "ThrottlingException",
                "Rate exceeded"
            ),
            AwsError::Throttled { .. }
        ));
        let creds = classify(
            "GetCallerIdentity",
            "sts:GetCallerIdentity",
            "InvalidClientTokenId",
            "bad",
        );
        assert!(creds.to_string().contains("AWS_PROFILE"), "{creds}");
        let other = classify(
            "CreateStack",
            "cloudformation:CreateStack",
            "ValidationError",
            "bad template",
        );
        assert_eq!(
            other.to_string(),
            "CreateStack failed: ValidationError: bad template"
        );
    }

    #[test]
    fn denied_action_needs_a_service_prefix() {
        assert_eq!(denied_action("not authorized to perform: the thing"), None);
        assert_eq!(denied_action("no match"), None);
        assert_eq!(
            denied_action("is not authorized to perform: ssm:PutParameter because"),
            Some("ssm:PutParameter".into())
        );
    }
}
