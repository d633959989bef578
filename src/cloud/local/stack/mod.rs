//! The stack engine: interprets `cfn/cert-rotation.json` — the same template
//! that is deployed as-is to AWS — for the resource types the walkthrough uses.

use crate::cloud::{DeployReport, EventBus, TeardownReport};
use crate::store::Store;

/// The stack template, compiled into the binary so `jitpilot` runs from anywhere.
pub const TEMPLATE: &str = include_str!("../../../../cfn/cert-rotation.json");

/// What can go wrong in the stack engine. Messages name the resource and field.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("template: {0}")]
    Template(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Creates the stack, or updates what changed (a no-op when nothing did).
/// Emits CloudFormation-style events to the store and `bus` as it goes.
#[allow(unused_variables)]
pub fn deploy(
    store: &Store,
    bus: &EventBus,
    stack_name: &str,
    template: &str,
    parameters: &serde_json::Map<String, serde_json::Value>,
) -> Result<DeployReport, StackError> {
    todo!("h-stack-policy")
}

/// Deletes the stack's resources in reverse dependency order, then the stack.
/// Succeeds when there is no stack.
#[allow(unused_variables)]
pub fn teardown(
    store: &Store,
    bus: &EventBus,
    stack_name: &str,
) -> Result<TeardownReport, StackError> {
    todo!("h-stack-policy")
}
