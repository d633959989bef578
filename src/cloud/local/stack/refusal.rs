//! A stack operation the engine refused before touching anything, recorded
//! as CloudFormation shows a failed one: the stack's events name the cause
//! (the resource whose type the local engine cannot provision, the policy
//! still attached) and the stack ends in the status AWS would leave it in.
//! `jitpilot deploy` reports such a refusal as an error instead; the AWS
//! API records it, because its clients (the aws CLI's waiters,
//! `describe-stack-events`, the TUI's Stack pane) look for it there.

use super::template::ResourceKind;
use super::{summary, Recorder, StackError, ROLLBACK_COMPLETE, STACK_TYPE};
use crate::cloud::EventBus;
use crate::model::{now_millis, Stack};
use crate::store::Store;
use serde_json::{Map, Value};

/// Records a refused create or update of `stack_name` with `template` and
/// `parameters` (what the caller gave): a create ends `ROLLBACK_COMPLETE`
/// (nothing exists; the template is kept for `GetTemplate`), an update
/// `UPDATE_ROLLBACK_COMPLETE` (the stack as it was). Every resource whose
/// type the engine does not provision gets a `*_FAILED` event naming it.
pub fn record_refused_deploy(
    store: &Store,
    bus: &EventBus,
    stack_name: &str,
    template: &str,
    parameters: &Map<String, Value>,
    reason: &str,
) -> Result<Stack, StackError> {
    let existing = store.get_stack(stack_name)?;
    let creating = existing
        .as_ref()
        .is_none_or(|s| s.status == ROLLBACK_COMPLETE);
    let (phase, verb, rolling_back, rolled_back) = if creating {
        (
            "CREATE",
            "create",
            "ROLLBACK_IN_PROGRESS",
            ROLLBACK_COMPLETE,
        )
    } else {
        (
            "UPDATE",
            "update",
            "UPDATE_ROLLBACK_IN_PROGRESS",
            "UPDATE_ROLLBACK_COMPLETE",
        )
    };
    let now = now_millis();
    let mut stack = match existing {
        Some(s) if !creating => s,
        existing => Stack {
            name: stack_name.to_string(),
            status: String::new(),
            template: template.to_string(),
            parameters: parameters.clone(),
            created_at: existing.map_or(now, |s| s.created_at),
            updated_at: now,
        },
    };
    let mut rec = Recorder {
        store,
        bus,
        stack: stack_name,
        events: Vec::new(),
    };
    rec.stack_status(&mut stack, &format!("{phase}_IN_PROGRESS"))?;
    let unsupported: Vec<(String, String)> = summary::summarize(template)
        .map(|(s, _)| s.resources)
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, t)| ResourceKind::parse(t).is_none())
        .collect();
    for (id, type_name) in &unsupported {
        rec.event(
            id,
            type_name,
            &format!("{phase}_FAILED"),
            Some(format!(
                "{type_name} is not a resource type jitpilot's local stack engine provisions (it provisions {}); remove {id} from the template or deploy it to AWS",
                ResourceKind::supported().join(", ")
            )),
        )?;
    }
    let cause = if unsupported.is_empty() {
        reason.to_string()
    } else {
        let ids: Vec<&str> = unsupported.iter().map(|(id, _)| id.as_str()).collect();
        format!(
            "The following resource(s) failed to {verb}: [{}]. {reason}",
            ids.join(", ")
        )
    };
    for status in [rolling_back, rolled_back] {
        stack.status = status.to_string();
        stack.updated_at = now_millis();
        store.put_stack(&stack)?;
        let reason = (status == rolling_back).then(|| cause.clone());
        rec.event(stack_name, STACK_TYPE, status, reason)?;
    }
    Ok(stack)
}

/// Records a refused delete of `stack_name` (a policy still attached, see
/// [`StackError::PolicyInUse`]): `DELETE_FAILED` on the blocking resource and
/// on the stack, which keeps everything. No stack: nothing to record.
pub fn record_refused_delete(
    store: &Store,
    bus: &EventBus,
    stack_name: &str,
    refusal: &StackError,
) -> Result<(), StackError> {
    let Some(mut stack) = store.get_stack(stack_name)? else {
        return Ok(());
    };
    let blocking = match refusal {
        StackError::PolicyInUse { policy, .. } => store
            .list_stack_resources(stack_name)?
            .into_iter()
            .find(|r| &r.physical_id == policy),
        _ => None,
    };
    let mut rec = Recorder {
        store,
        bus,
        stack: stack_name,
        events: Vec::new(),
    };
    rec.stack_status(&mut stack, "DELETE_IN_PROGRESS")?;
    if let Some(r) = &blocking {
        rec.event(
            &r.logical_id,
            &r.resource_type,
            "DELETE_FAILED",
            Some(refusal.to_string()),
        )?;
    }
    stack.status = "DELETE_FAILED".into();
    stack.updated_at = now_millis();
    store.put_stack(&stack)?;
    rec.event(
        stack_name,
        STACK_TYPE,
        "DELETE_FAILED",
        Some(refusal.to_string()),
    )
}
