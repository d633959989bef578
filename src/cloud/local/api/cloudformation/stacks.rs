//! Stacks: create, update, delete, describe (status, parameters, outputs),
//! their events and resources, their templates.

use super::{
    check_capabilities, check_stack_name, check_updatable, cloud_error, given_parameters,
    no_such_stack, parameter_text, stack_name, summarize, template_text, validation, Form,
};
use crate::cloud::local::api::xml::{iso8601, Xml};
use crate::cloud::local::api::{ApiContext, ApiError};
use crate::cloud::local::stack::{self, TemplateSummary};
use crate::model::Stack;
use serde_json::Value;

type Answer = Result<Option<Xml>, ApiError>;

/// The type CloudFormation gives the stack itself in events.
const STACK_TYPE: &str = "AWS::CloudFormation::Stack";

/// The most recent events `DescribeStackEvents` returns.
const MAX_EVENTS: usize = 1000;

fn stack_id_result(name: &str) -> Option<Xml> {
    let mut x = Xml::new();
    x.leaf("StackId", stack::stack_id(name));
    Some(x)
}

pub(super) fn create_stack(ctx: &ApiContext, form: &Form) -> Answer {
    let name = form.required("StackName")?.to_string();
    check_stack_name(&name)?;
    let store = ctx.cloud.store();
    if store.get_stack(&name)?.is_some() {
        return Err(ApiError::new(
            400,
            "AlreadyExistsException",
            format!("Stack [{name}] already exists"),
        ));
    }
    let text = template_text(ctx, form, None)?;
    let (summary, doc) = summarize(&text)?;
    let parameters = given_parameters(form, &summary, None)?;
    check_capabilities(form, &summary, &doc)?;
    ctx.cloud
        .deploy_stack_sync(&name, &text, &parameters)
        .map_err(cloud_error)?;
    Ok(stack_id_result(&name))
}

pub(super) fn update_stack(ctx: &ApiContext, form: &Form) -> Answer {
    let name = stack_name(form.required("StackName")?);
    let store = ctx.cloud.store();
    let existing = store
        .get_stack(&name)?
        .ok_or_else(|| validation(format!("Stack [{name}] does not exist")))?;
    check_updatable(&existing)?;
    let text = template_text(ctx, form, Some(&existing))?;
    let (summary, doc) = summarize(&text)?;
    let parameters = given_parameters(form, &summary, Some(&existing))?;
    check_capabilities(form, &summary, &doc)?;
    // A template the engine refuses is a failed update (recorded), not
    // "no updates": only a plan can say nothing changes.
    if let Ok(changes) = stack::preview(store, &name, &text, &parameters) {
        if changes.is_empty() {
            return Err(validation("No updates are to be performed."));
        }
    }
    ctx.cloud
        .deploy_stack_sync(&name, &text, &parameters)
        .map_err(cloud_error)?;
    Ok(stack_id_result(&name))
}

pub(super) fn delete_stack(ctx: &ApiContext, form: &Form) -> Answer {
    let name = stack_name(form.required("StackName")?);
    // As on AWS, deleting a stack that does not exist succeeds.
    ctx.cloud.delete_stack_sync(&name).map_err(cloud_error)?;
    if ctx.cloud.store().get_stack(&name)?.is_none() {
        ctx.cloud.store().delete_change_sets(&name)?;
    }
    Ok(None)
}

/// The stack `name`, or the stack a pending CREATE change set announces
/// (`REVIEW_IN_PROGRESS`, as CloudFormation shows it before execution).
pub(super) fn find_stack(ctx: &ApiContext, name: &str) -> Result<Option<Stack>, ApiError> {
    let store = ctx.cloud.store();
    if let Some(stack) = store.get_stack(name)? {
        return Ok(Some(stack));
    }
    Ok(store.list_change_sets(name)?.first().map(|cs| Stack {
        name: name.to_string(),
        status: "REVIEW_IN_PROGRESS".into(),
        template: String::new(),
        parameters: serde_json::Map::new(),
        created_at: cs.created_at,
        updated_at: cs.created_at,
    }))
}

/// Why the stack is in its status: the reason of its latest stack event
/// that has one, for a failed or rolled-back stack.
fn status_reason(ctx: &ApiContext, stack: &Stack) -> Result<Option<String>, ApiError> {
    if !(stack.status.contains("FAILED") || stack.status.contains("ROLLBACK")) {
        return Ok(None);
    }
    let events = ctx
        .cloud
        .store()
        .list_stack_events(&stack.name, MAX_EVENTS)?;
    Ok(events
        .into_iter()
        .rev()
        .filter(|e| e.resource_type == STACK_TYPE)
        .find_map(|e| e.reason))
}

fn write_stack(ctx: &ApiContext, x: &mut Xml, stack: &Stack) -> Result<(), ApiError> {
    let summary = stack::summarize(&stack.template).ok().map(|(s, _)| s);
    x.open("member")
        .leaf("StackId", stack::stack_id(&stack.name))
        .leaf("StackName", &stack.name)
        .leaf_opt(
            "Description",
            summary.as_ref().and_then(|s| s.description.as_deref()),
        )
        .leaf("CreationTime", iso8601(stack.created_at));
    if stack.updated_at != stack.created_at {
        x.leaf("LastUpdatedTime", iso8601(stack.updated_at));
    }
    x.leaf("StackStatus", &stack.status)
        .leaf_opt("StackStatusReason", status_reason(ctx, stack)?)
        .leaf("DisableRollback", "false");
    x.open("Parameters");
    for (key, value) in &stack.parameters {
        let secret = summary
            .as_ref()
            .and_then(|s| s.parameters.iter().find(|p| &p.name == key))
            .is_some_and(|p| p.no_echo);
        let text = if secret {
            "****".to_string()
        } else {
            parameter_text(value)
        };
        x.open("member")
            .leaf("ParameterKey", key)
            .leaf("ParameterValue", text)
            .close("member");
    }
    x.close("Parameters");
    if stack.status.ends_with("_COMPLETE") && !stack.status.contains("ROLLBACK") {
        // Outputs are recomputed from the recorded resources; a stack whose
        // template no longer plans has none to show.
        if let Ok(Some(outputs)) = stack::outputs(ctx.cloud.store(), &stack.name) {
            x.open("Outputs");
            for (key, value) in &outputs {
                let description = summary
                    .as_ref()
                    .and_then(|s| s.output_descriptions.get(key))
                    .and_then(Value::as_str);
                x.open("member")
                    .leaf("OutputKey", key)
                    .leaf("OutputValue", parameter_text(value))
                    .leaf_opt("Description", description)
                    .close("member");
            }
            x.close("Outputs");
        }
    }
    x.open("Tags")
        .close("Tags")
        .open("DriftInformation")
        .leaf("StackDriftStatus", "NOT_CHECKED")
        .close("DriftInformation")
        .close("member");
    Ok(())
}

pub(super) fn describe_stacks(ctx: &ApiContext, form: &Form) -> Answer {
    let stacks = match form.get("StackName").filter(|n| !n.is_empty()) {
        Some(given) => {
            let name = stack_name(given);
            vec![find_stack(ctx, &name)?.ok_or_else(|| no_such_stack(given))?]
        }
        None => ctx.cloud.store().list_stacks()?,
    };
    let mut x = Xml::new();
    x.open("Stacks");
    for stack in &stacks {
        write_stack(ctx, &mut x, stack)?;
    }
    x.close("Stacks");
    Ok(Some(x))
}

pub(super) fn list_stacks(ctx: &ApiContext) -> Answer {
    let mut x = Xml::new();
    x.open("StackSummaries");
    for stack in ctx.cloud.store().list_stacks()? {
        x.open("member")
            .leaf("StackId", stack::stack_id(&stack.name))
            .leaf("StackName", &stack.name)
            .leaf("CreationTime", iso8601(stack.created_at))
            .leaf("StackStatus", &stack.status)
            .close("member");
    }
    x.close("StackSummaries");
    Ok(Some(x))
}

fn existing_stack(ctx: &ApiContext, form: &Form) -> Result<Stack, ApiError> {
    let given = form.required("StackName")?;
    find_stack(ctx, &stack_name(given))?
        .ok_or_else(|| validation(format!("Stack [{given}] does not exist")))
}

pub(super) fn describe_stack_events(ctx: &ApiContext, form: &Form) -> Answer {
    let stack = existing_stack(ctx, form)?;
    let store = ctx.cloud.store();
    let physical: std::collections::BTreeMap<String, String> = store
        .list_stack_resources(&stack.name)?
        .into_iter()
        .map(|r| (r.logical_id, r.physical_id))
        .collect();
    let id = stack::stack_id(&stack.name);
    let events = store.list_stack_events(&stack.name, MAX_EVENTS)?;
    let mut x = Xml::new();
    x.open("StackEvents");
    // Newest first, as CloudFormation lists them.
    for (index, e) in events.iter().enumerate().rev() {
        let physical_id = if e.resource_type == STACK_TYPE {
            Some(id.clone())
        } else {
            physical.get(&e.logical_id).cloned()
        };
        x.open("member")
            .leaf("StackId", &id)
            .leaf(
                "EventId",
                format!("{}-{}-{}-{index}", e.logical_id, e.status, e.timestamp),
            )
            .leaf("StackName", &stack.name)
            .leaf("LogicalResourceId", &e.logical_id)
            .leaf_opt("PhysicalResourceId", physical_id)
            .leaf("ResourceType", &e.resource_type)
            .leaf("Timestamp", iso8601(e.timestamp))
            .leaf("ResourceStatus", &e.status)
            .leaf_opt("ResourceStatusReason", e.reason.as_deref())
            .close("member");
    }
    x.close("StackEvents");
    Ok(Some(x))
}

fn write_resource(x: &mut Xml, stack: &Stack, r: &crate::model::StackResource, detail: bool) {
    x.leaf("StackName", &stack.name)
        .leaf("StackId", stack::stack_id(&stack.name))
        .leaf("LogicalResourceId", &r.logical_id)
        .leaf("PhysicalResourceId", &r.physical_id)
        .leaf("ResourceType", &r.resource_type)
        .leaf(
            if detail {
                "LastUpdatedTimestamp"
            } else {
                "Timestamp"
            },
            iso8601(stack.updated_at),
        )
        .leaf("ResourceStatus", &r.status)
        .open("DriftInformation")
        .leaf("StackResourceDriftStatus", "NOT_CHECKED")
        .close("DriftInformation");
}

pub(super) fn describe_stack_resources(ctx: &ApiContext, form: &Form, one: bool) -> Answer {
    let stack = existing_stack(ctx, form)?;
    let mut resources = ctx.cloud.store().list_stack_resources(&stack.name)?;
    let wanted = form.get("LogicalResourceId").filter(|l| !l.is_empty());
    if let Some(logical) = wanted {
        resources.retain(|r| r.logical_id == logical);
    }
    let mut x = Xml::new();
    if one {
        let logical = form.required("LogicalResourceId")?;
        let r = resources.first().ok_or_else(|| {
            validation(format!(
                "Resource {logical} does not exist for stack {}",
                stack.name
            ))
        })?;
        x.open("StackResourceDetail");
        write_resource(&mut x, &stack, r, true);
        x.close("StackResourceDetail");
        return Ok(Some(x));
    }
    x.open("StackResources");
    for r in &resources {
        x.open("member");
        write_resource(&mut x, &stack, r, false);
        x.close("member");
    }
    x.close("StackResources");
    Ok(Some(x))
}

pub(super) fn list_stack_resources(ctx: &ApiContext, form: &Form) -> Answer {
    let stack = existing_stack(ctx, form)?;
    let mut x = Xml::new();
    x.open("StackResourceSummaries");
    for r in ctx.cloud.store().list_stack_resources(&stack.name)? {
        x.open("member")
            .leaf("LogicalResourceId", &r.logical_id)
            .leaf("PhysicalResourceId", &r.physical_id)
            .leaf("ResourceType", &r.resource_type)
            .leaf("LastUpdatedTimestamp", iso8601(stack.updated_at))
            .leaf("ResourceStatus", &r.status)
            .open("DriftInformation")
            .leaf("StackResourceDriftStatus", "NOT_CHECKED")
            .close("DriftInformation")
            .close("member");
    }
    x.close("StackResourceSummaries");
    Ok(Some(x))
}

pub(super) fn get_template(ctx: &ApiContext, form: &Form) -> Answer {
    let given = form.required("StackName")?;
    let name = stack_name(given);
    let template = match form.get("ChangeSetName").filter(|c| !c.is_empty()) {
        Some(change_set) => super::change_sets::find(ctx, change_set, Some(&name))?.template,
        None => {
            ctx.cloud
                .store()
                .get_stack(&name)?
                .ok_or_else(|| no_such_stack(given))?
                .template
        }
    };
    let mut x = Xml::new();
    x.leaf("TemplateBody", template)
        .open("StagesAvailable")
        .leaf("member", "Original")
        .leaf("member", "Processed")
        .close("StagesAvailable");
    Ok(Some(x))
}

/// The template of `TemplateBody`/`TemplateURL`, or of the stack `StackName`.
fn summary_source(ctx: &ApiContext, form: &Form) -> Result<(TemplateSummary, Value), ApiError> {
    let text = match form.get("StackName").filter(|n| !n.is_empty()) {
        Some(given) if form.get("TemplateBody").is_none() && form.get("TemplateURL").is_none() => {
            ctx.cloud
                .store()
                .get_stack(&stack_name(given))?
                .ok_or_else(|| no_such_stack(given))?
                .template
        }
        _ => template_text(ctx, form, None)?,
    };
    summarize(&text)
}

fn write_parameter_declarations(x: &mut Xml, summary: &TemplateSummary, long: bool) {
    x.open("Parameters");
    for p in &summary.parameters {
        x.open("member").leaf("ParameterKey", &p.name);
        x.leaf_opt("DefaultValue", p.default.as_deref());
        if long {
            x.leaf("ParameterType", &p.kind);
        }
        x.leaf("NoEcho", if p.no_echo { "true" } else { "false" })
            .leaf_opt("Description", p.description.as_deref());
        if long && !p.allowed_values.is_empty() {
            x.open("ParameterConstraints").open("AllowedValues");
            for v in &p.allowed_values {
                x.leaf("member", v);
            }
            x.close("AllowedValues").close("ParameterConstraints");
        }
        x.close("member");
    }
    x.close("Parameters");
}

fn write_capabilities(x: &mut Xml, summary: &TemplateSummary, doc: &Value) {
    if let Some(needed) = summary.required_capability(doc) {
        x.open("Capabilities")
            .leaf("member", needed)
            .close("Capabilities")
            .leaf(
                "CapabilitiesReason",
                "The following resource(s) require capabilities: [AWS::IAM::Role]",
            );
    }
}

pub(super) fn get_template_summary(ctx: &ApiContext, form: &Form) -> Answer {
    let (summary, doc) = summary_source(ctx, form)?;
    let mut x = Xml::new();
    write_parameter_declarations(&mut x, &summary, true);
    x.leaf_opt("Description", summary.description.as_deref());
    write_capabilities(&mut x, &summary, &doc);
    x.open("ResourceTypes");
    for t in summary.resource_types() {
        x.leaf("member", t);
    }
    x.close("ResourceTypes").leaf("Version", "2010-09-09");
    x.open("ResourceIdentifierSummaries")
        .close("ResourceIdentifierSummaries");
    Ok(Some(x))
}

pub(super) fn validate_template(ctx: &ApiContext, form: &Form) -> Answer {
    let text = template_text(ctx, form, None)?;
    let (summary, doc) = summarize(&text)?;
    let mut x = Xml::new();
    write_parameter_declarations(&mut x, &summary, false);
    x.leaf_opt("Description", summary.description.as_deref());
    write_capabilities(&mut x, &summary, &doc);
    Ok(Some(x))
}
