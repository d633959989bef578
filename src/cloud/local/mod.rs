//! The embedded local cloud: AWS IoT Core, Lambda, DynamoDB, SSM and
//! CloudFormation where the walkthrough touches them, in one process.
//!
//! Layout:
//! - `control.rs`     [`LocalCloud`]: deploy, init, status, cleanup, teardown (the `Cloud` trait)
//! - `endpoint_ca.rs` the CA and server certificate of the local MQTT endpoint
//! - `stack/`         the stack engine interpreting `cfn/cert-rotation.json`
//! - `endpoint/`      the mutual-TLS MQTT endpoint: TLS, sessions, router
//! - `policy.rs`      IoT policy evaluation
//! - `jitp/`          Just-In-Time Provisioning: registration and template application
//! - `rules.rs`       the rules engine: SQL subset and actions
//! - `topic.rs`       MQTT topic names and filters: validation and matching
//! - `runtime.rs`     starting the whole local cloud in-process (endpoint + functions)
//! - `functions.rs`   built-in functions ("Lambdas") the rules invoke, the rotation function's bindings
//! - `lambda_runtime/` a stack's function running its own code through the Lambda Runtime API

pub mod api;
pub mod control;
pub mod endpoint;
pub mod endpoint_ca;
pub mod functions;
pub mod jitp;
pub mod lambda_runtime;
pub mod policy;
pub mod rules;
pub mod runtime;
pub mod stack;
pub mod topic;

pub use control::LocalCloud;

/// The region the local cloud reports (`${AWS::Region}`, ARNs, events).
pub const LOCAL_REGION: &str = "us-east-1";
/// The account id the local cloud reports (`${AWS::AccountId}`, `awsAccountId`).
pub const LOCAL_ACCOUNT_ID: &str = "123456789012";
