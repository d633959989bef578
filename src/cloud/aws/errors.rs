//! What goes wrong when talking to AWS, in words a user can act on: the
//! `jitpilot-aws-function` crate's [`AwsError`] (shared with the Lambda),
//! and how the app's [`Cloud`](crate::cloud::Cloud) reports it.

pub use jitpilot_aws_function::errors::*;

impl From<AwsError> for crate::cloud::CloudError {
    fn from(err: AwsError) -> Self {
        crate::cloud::CloudError::Other(err.to_string())
    }
}
