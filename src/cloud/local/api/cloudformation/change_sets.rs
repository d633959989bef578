//! Change sets: what `aws cloudformation deploy` makes, waits for and
//! executes. A change set is the engine's own preview of the deployment
//! (`stack::preview`), so it lists exactly what executing it does; one with
//! nothing to change is `FAILED` with CloudFormation's "didn't contain
//! changes" (the CLI then prints "No changes to deploy" and succeeds).

use super::stacks::find_stack;
use super::{
    check_capabilities, check_name, check_stack_name, check_updatable, cloud_error,
    given_parameters, stack_name, summarize, template_text, uuid, validation, Form,
};
use crate::cloud::local::api::xml::{iso8601, Xml};
use crate::cloud::local::api::{ApiContext, ApiError};
use crate::cloud::local::stack::{self, ChangeAction, ResourceChange, TemplateSummary};
use crate::cloud::local::{LOCAL_ACCOUNT_ID, LOCAL_REGION};
use crate::model::now_millis;
use crate::store::ChangeSet;

type Answer = Result<Option<Xml>, ApiError>;

/// CloudFormation's words for a change set without changes; the aws CLI
/// matches them to print "No changes to deploy".
const NO_CHANGES: &str =
    "The submitted information didn't contain changes. Submit different information to create a change set.";

fn not_found(name: &str) -> ApiError {
    ApiError::new(
        404,
        "ChangeSetNotFound",
        format!("ChangeSet [{name}] does not exist"),
    )
}

/// The change set named by `ChangeSetName` (a name with `stack`, or its ARN).
pub(super) fn find(
    ctx: &ApiContext,
    change_set: &str,
    stack: Option<&str>,
) -> Result<ChangeSet, ApiError> {
    let store = ctx.cloud.store();
    let found = if change_set.starts_with("arn:") {
        store.get_change_set_by_id(change_set)?
    } else {
        let stack = stack.ok_or_else(|| {
            validation(format!(
                "StackName must be specified if ChangeSetName ({change_set}) is not an ARN"
            ))
        })?;
        store.get_change_set(stack, change_set)?
    };
    found.ok_or_else(|| not_found(change_set))
}

fn named(ctx: &ApiContext, form: &Form) -> Result<ChangeSet, ApiError> {
    let stack = form
        .get("StackName")
        .filter(|s| !s.is_empty())
        .map(stack_name);
    find(ctx, form.required("ChangeSetName")?, stack.as_deref())
}

/// The changes of a template the engine will refuse: every resource is
/// announced as CloudFormation would (executing records the refusal).
fn declared_changes(
    ctx: &ApiContext,
    stack: &str,
    summary: &TemplateSummary,
) -> Result<Vec<ResourceChange>, ApiError> {
    let deployed = ctx.cloud.store().list_stack_resources(stack)?;
    let mut changes: Vec<ResourceChange> = summary
        .resources
        .iter()
        .map(|(id, kind)| {
            let old = deployed.iter().find(|r| &r.logical_id == id);
            ResourceChange {
                action: if old.is_some() {
                    ChangeAction::Modify
                } else {
                    ChangeAction::Add
                },
                logical_id: id.clone(),
                resource_type: kind.clone(),
                physical_id: old.map(|r| r.physical_id.clone()),
                replacement: false,
            }
        })
        .collect();
    changes.extend(
        deployed
            .iter()
            .filter(|r| !summary.resources.iter().any(|(id, _)| *id == r.logical_id))
            .map(|r| ResourceChange {
                action: ChangeAction::Remove,
                logical_id: r.logical_id.clone(),
                resource_type: r.resource_type.clone(),
                physical_id: Some(r.physical_id.clone()),
                replacement: false,
            }),
    );
    Ok(changes)
}

pub(super) fn create_change_set(ctx: &ApiContext, form: &Form) -> Answer {
    let name = stack_name(form.required("StackName")?);
    let cs_name = form.required("ChangeSetName")?.to_string();
    check_name(&cs_name, "changeSetName")?;
    let store = ctx.cloud.store();
    let existing = store.get_stack(&name)?;
    let kind = form.get("ChangeSetType").unwrap_or("UPDATE");
    match (kind, &existing) {
        ("CREATE", Some(_)) => {
            return Err(validation(format!(
                "Stack [{name}] already exists and cannot be created again with the changeSet [{cs_name}]."
            )))
        }
        ("CREATE", None) => check_stack_name(&name)?,
        ("UPDATE", None) => return Err(validation(format!("Stack [{name}] does not exist"))),
        ("UPDATE", Some(stack)) => check_updatable(stack)?,
        (other, _) => {
            return Err(validation(format!(
                "ChangeSetType {other} is not supported by jitpilot's local cloud; use CREATE or UPDATE"
            )))
        }
    }
    if store.get_change_set(&name, &cs_name)?.is_some() {
        return Err(ApiError::new(
            400,
            "AlreadyExistsException",
            format!("ChangeSet [{cs_name}] already exists"),
        ));
    }
    let text = template_text(ctx, form, existing.as_ref())?;
    let (summary, doc) = summarize(&text)?;
    let parameters = given_parameters(form, &summary, existing.as_ref())?;
    check_capabilities(form, &summary, &doc)?;
    let changes = match stack::preview(store, &name, &text, &parameters) {
        Ok(changes) => changes,
        Err(stack::StackError::Store(e)) => return Err(e.into()),
        Err(_) => declared_changes(ctx, &name, &summary)?,
    };
    let empty = changes.is_empty();
    let id = format!(
        "arn:aws:cloudformation:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:changeSet/{cs_name}/{}",
        uuid()
    );
    let change_set = ChangeSet {
        id: id.clone(),
        name: cs_name,
        stack: name.clone(),
        kind: kind.to_string(),
        status: if empty { "FAILED" } else { "CREATE_COMPLETE" }.into(),
        status_reason: empty.then(|| NO_CHANGES.to_string()),
        execution_status: if empty { "UNAVAILABLE" } else { "AVAILABLE" }.into(),
        template: text,
        parameters,
        changes: serde_json::to_value(&changes).map_err(ApiError::internal)?,
        description: form.get("Description").map(str::to_string),
        created_at: now_millis(),
    };
    store.put_change_set(&change_set)?;
    let mut x = Xml::new();
    x.leaf("Id", id).leaf("StackId", stack::stack_id(&name));
    Ok(Some(x))
}

fn action_word(action: ChangeAction) -> &'static str {
    match action {
        ChangeAction::Add => "Add",
        ChangeAction::Modify => "Modify",
        ChangeAction::Remove => "Remove",
    }
}

pub(super) fn describe_change_set(ctx: &ApiContext, form: &Form) -> Answer {
    let cs = named(ctx, form)?;
    let changes: Vec<ResourceChange> =
        serde_json::from_value(cs.changes.clone()).unwrap_or_default();
    let declared = stack::summarize(&cs.template).ok();
    let mut x = Xml::new();
    x.leaf("ChangeSetName", &cs.name)
        .leaf("ChangeSetId", &cs.id)
        .leaf("StackId", stack::stack_id(&cs.stack))
        .leaf("StackName", &cs.stack)
        .leaf_opt("Description", cs.description.as_deref())
        .open("Parameters");
    // Every parameter: the given ones, then the defaults.
    for p in declared.iter().flat_map(|(s, _)| s.parameters.iter()) {
        let value = cs
            .parameters
            .get(&p.name)
            .map(super::parameter_text)
            .or_else(|| p.default.clone());
        if let Some(value) = value {
            x.open("member")
                .leaf("ParameterKey", &p.name)
                .leaf("ParameterValue", value)
                .close("member");
        }
    }
    x.close("Parameters")
        .leaf("CreationTime", iso8601(cs.created_at))
        .leaf("ExecutionStatus", &cs.execution_status)
        .leaf("Status", &cs.status)
        .leaf_opt("StatusReason", cs.status_reason.as_deref())
        .open("Capabilities");
    if let Some((summary, doc)) = &declared {
        if let Some(needed) = summary.required_capability(doc) {
            x.leaf("member", needed);
        }
    }
    x.close("Capabilities").open("Changes");
    for c in &changes {
        x.open("member")
            .leaf("Type", "Resource")
            .open("ResourceChange")
            .leaf("Action", action_word(c.action))
            .leaf("LogicalResourceId", &c.logical_id)
            .leaf_opt("PhysicalResourceId", c.physical_id.as_deref())
            .leaf("ResourceType", &c.resource_type);
        if c.action == ChangeAction::Modify {
            x.leaf("Replacement", if c.replacement { "True" } else { "False" })
                .open("Scope")
                .leaf("member", "Properties")
                .close("Scope");
        }
        x.open("Details")
            .close("Details")
            .close("ResourceChange")
            .close("member");
    }
    x.close("Changes").leaf("IncludeNestedStacks", "false");
    Ok(Some(x))
}

pub(super) fn execute_change_set(ctx: &ApiContext, form: &Form) -> Answer {
    let cs = named(ctx, form)?;
    if cs.execution_status != "AVAILABLE" {
        return Err(ApiError::new(
            400,
            "InvalidChangeSetStatus",
            format!(
                "ChangeSet [{}] cannot be executed in its current execution status of [{}]{}",
                cs.id,
                cs.execution_status,
                cs.status_reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
        ));
    }
    let store = ctx.cloud.store();
    // The stack must still be as the change set found it.
    let existing = store.get_stack(&cs.stack)?;
    match (cs.kind.as_str(), &existing) {
        ("CREATE", Some(_)) | ("UPDATE", None) => {
            return Err(ApiError::new(
                400,
                "InvalidChangeSetStatus",
                format!(
                    "ChangeSet [{}] is out of date: stack {} was created or deleted since; create a new change set",
                    cs.id, cs.stack
                ),
            ))
        }
        (_, Some(stack)) => check_updatable(stack)?,
        _ => {}
    }
    ctx.cloud
        .deploy_stack_sync(&cs.stack, &cs.template, &cs.parameters)
        .map_err(cloud_error)?;
    // As CloudFormation does: executing one removes the stack's change sets.
    store.delete_change_sets(&cs.stack)?;
    Ok(Some(Xml::new()))
}

pub(super) fn delete_change_set(ctx: &ApiContext, form: &Form) -> Answer {
    let cs = named(ctx, form)?;
    ctx.cloud.store().delete_change_set(&cs.id)?;
    Ok(Some(Xml::new()))
}

pub(super) fn list_change_sets(ctx: &ApiContext, form: &Form) -> Answer {
    let given = form.required("StackName")?;
    let name = stack_name(given);
    if find_stack(ctx, &name)?.is_none() {
        return Err(validation(format!("Stack [{given}] does not exist")));
    }
    let mut x = Xml::new();
    x.open("Summaries");
    for cs in ctx.cloud.store().list_change_sets(&name)? {
        x.open("member")
            .leaf("StackId", stack::stack_id(&cs.stack))
            .leaf("StackName", &cs.stack)
            .leaf("ChangeSetId", &cs.id)
            .leaf("ChangeSetName", &cs.name)
            .leaf("ExecutionStatus", &cs.execution_status)
            .leaf("Status", &cs.status)
            .leaf_opt("StatusReason", cs.status_reason.as_deref())
            .leaf("CreationTime", iso8601(cs.created_at))
            .leaf_opt("Description", cs.description.as_deref())
            .close("member");
    }
    x.close("Summaries");
    Ok(Some(x))
}
