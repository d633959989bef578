//! What a deployment would change, resource by resource — computed before
//! anything is touched, by [`super::deploy`] itself and by CloudFormation's
//! change sets ([`preview`]), so a change set shows exactly what executing
//! it will do.

use super::provision::{self, Desired};
use super::{plan, removal_order, Plan, StackError};
use crate::model::{Stack, StackResource};
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a deployment does to one resource.
pub(super) enum Change {
    Create,
    Update,
    /// A new name (or type): create the new one, delete the old one at cleanup.
    Replace(StackResource),
    Unchanged,
}

/// A plan compared with what is deployed.
pub(super) struct Diff {
    pub existing: Option<Stack>,
    /// Every planned resource, dependencies first.
    pub changes: Vec<(String, Change)>,
    /// Deployed resources the template no longer has, in deletion order.
    pub removed: Vec<StackResource>,
}

/// Compares `plan` with the stack `stack_name` as recorded.
pub(super) fn diff(store: &Store, stack_name: &str, plan: &Plan) -> Result<Diff, StackError> {
    let existing = store.get_stack(stack_name)?;
    let mut old: BTreeMap<String, StackResource> = store
        .list_stack_resources(stack_name)?
        .into_iter()
        .map(|r| (r.logical_id.clone(), r))
        .collect();
    let mut changes = Vec::new();
    for id in &plan.order {
        let p = &plan.resources[id];
        let change = match old.remove(id) {
            None => Change::Create,
            Some(o) if o.resource_type != p.kind.type_name() || o.physical_id != p.physical_id => {
                Change::Replace(o)
            }
            Some(o) => {
                let settled = o.status.ends_with("_COMPLETE") && !o.status.starts_with("DELETE");
                let handler_same = match &p.desired {
                    Desired::Function(f, _) => {
                        provision::deployed_handler(store, &p.desired)?.as_deref()
                            == Some(f.handler.as_str())
                    }
                    _ => true,
                };
                if settled && handler_same && o.properties == p.properties {
                    Change::Unchanged
                } else {
                    Change::Update
                }
            }
        };
        changes.push((id.clone(), change));
    }
    // Whatever is left in `old` was removed from the template.
    let removed = removal_order(existing.as_ref(), old.into_values().collect());
    Ok(Diff {
        existing,
        changes,
        removed,
    })
}

/// CloudFormation's change actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeAction {
    Add,
    Modify,
    Remove,
}

/// One resource's change, as a change set lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceChange {
    pub action: ChangeAction,
    pub logical_id: String,
    pub resource_type: String,
    /// The deployed resource's name (none for an `Add`).
    pub physical_id: Option<String>,
    /// The resource gets a new name: created anew, the old one deleted.
    pub replacement: bool,
}

/// What deploying `template` with `parameters` to `stack_name` would change,
/// without changing anything. Empty: nothing would (CloudFormation's "The
/// submitted information didn't contain changes"). The errors are
/// [`super::deploy`]'s planning errors.
pub fn preview(
    store: &Store,
    stack_name: &str,
    template: &str,
    parameters: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<ResourceChange>, StackError> {
    let plan = plan(stack_name, template, parameters)?;
    let diff = diff(store, stack_name, &plan)?;
    let mut out = Vec::new();
    for (id, change) in &diff.changes {
        let p = &plan.resources[id];
        let (action, physical_id, replacement) = match change {
            Change::Unchanged => continue,
            Change::Create => (ChangeAction::Add, None, false),
            Change::Update => (ChangeAction::Modify, Some(p.physical_id.clone()), false),
            Change::Replace(old) => (ChangeAction::Modify, Some(old.physical_id.clone()), true),
        };
        out.push(ResourceChange {
            action,
            logical_id: id.clone(),
            resource_type: p.kind.type_name().to_string(),
            physical_id,
            replacement,
        });
    }
    out.extend(diff.removed.into_iter().map(|r| ResourceChange {
        action: ChangeAction::Remove,
        logical_id: r.logical_id,
        resource_type: r.resource_type,
        physical_id: Some(r.physical_id),
        replacement: false,
    }));
    Ok(out)
}
