//! Any stack, by name, for CloudFormation's API: the same engine and the
//! same side effects as `jitpilot deploy`/`teardown` — one operation at a
//! time, the running endpoint's topic rules reloaded (a rule a stack creates
//! fires at once), the outcome in the event log. Where `jitpilot deploy`
//! reports a refusal as an error, these record it on the stack as
//! CloudFormation does (events naming the cause, a failed status): an API
//! client learns of it by polling the stack.

use super::{stack, LocalCloud};
use crate::cloud::CloudResult;
use serde_json::{Map, Value};

/// How a stack operation ended. A failure is already recorded on the stack
/// (its events and status), as CloudFormation reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackOutcome {
    /// The stack reached `*_COMPLETE` (or was deleted).
    Completed,
    /// The stack is in a failed or rolled-back status; `reason` says why.
    Failed { reason: String },
}

impl LocalCloud {
    /// Creates or updates `stack_name` from `template` with `parameters`
    /// (values by name; defaults fill the rest). Errors only when the store
    /// fails or this process does not own the data dir.
    pub fn deploy_stack_sync(
        &self,
        stack_name: &str,
        template: &str,
        parameters: &Map<String, Value>,
    ) -> CloudResult<StackOutcome> {
        self.writable()?;
        let _one_at_a_time = self.control_lock();
        let result = stack::deploy(self.store(), self.bus(), stack_name, template, parameters);
        // Even a failed deploy may have changed the rules.
        self.topic_rules_changed()?;
        let outcome = match result {
            Ok(report) => {
                self.store().append_event(
                    "stack.deployed",
                    stack_name,
                    &serde_json::json!({"status": report.status, "changed": report.changed}),
                )?;
                StackOutcome::Completed
            }
            // The engine recorded the failed resource and the stack's status.
            Err(e @ stack::StackError::Resource { .. }) => StackOutcome::Failed {
                reason: e.to_string(),
            },
            Err(stack::StackError::Store(e)) => return Err(e.into()),
            // Refused before anything was touched: record it as AWS shows it.
            Err(refusal) => {
                let reason = refusal.to_string();
                stack::record_refused_deploy(
                    self.store(),
                    self.bus(),
                    stack_name,
                    template,
                    parameters,
                    &reason,
                )
                .map_err(super::stack_error)?;
                StackOutcome::Failed { reason }
            }
        };
        if let StackOutcome::Failed { reason } = &outcome {
            tracing::warn!(stack = stack_name, "stack deployment failed: {reason}");
            self.store().append_event(
                "stack.failed",
                stack_name,
                &serde_json::json!({"reason": reason}),
            )?;
        }
        Ok(outcome)
    }

    /// Deletes `stack_name`'s resources in reverse dependency order, then
    /// the stack. No such stack: `Completed`.
    pub fn delete_stack_sync(&self, stack_name: &str) -> CloudResult<StackOutcome> {
        self.writable()?;
        let _one_at_a_time = self.control_lock();
        let result = stack::teardown(self.store(), self.bus(), stack_name);
        self.topic_rules_changed()?;
        match result {
            Ok(report) => {
                if report.existed {
                    self.store().append_event(
                        "stack.deleted",
                        stack_name,
                        &serde_json::json!({"deleted": report.deleted}),
                    )?;
                }
                Ok(StackOutcome::Completed)
            }
            Err(e @ stack::StackError::Resource { .. }) => Ok(StackOutcome::Failed {
                reason: e.to_string(),
            }),
            Err(stack::StackError::Store(e)) => Err(e.into()),
            Err(refusal) => {
                stack::record_refused_delete(self.store(), self.bus(), stack_name, &refusal)
                    .map_err(super::stack_error)?;
                Ok(StackOutcome::Failed {
                    reason: refusal.to_string(),
                })
            }
        }
    }
}
