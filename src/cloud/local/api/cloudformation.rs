//! CloudFormation (awsQuery) on the stack engine: what the sample's
//! `deploy_cf.bash`/`delete_cf.bash`, `aws cloudformation deploy` and boto3
//! scripts call. A stack created here is a stack of the same engine that
//! `jitpilot deploy` uses — the TUI's Stack pane shows it, and the topic
//! rules it creates run on the endpoint at once.
//!
//! Layout:
//! - this file            the service: operations, the form's shapes, templates, parameters
//! - `stacks.rs`          Create/Update/Delete/Describe stacks, events, resources, templates
//! - `change_sets.rs`     Create/Describe/Execute/Delete/List change sets (`aws cloudformation deploy`)
//!
//! The engine runs a stack operation to its end within the request (it is
//! quick), so the first `DescribeStacks` a waiter makes already sees
//! `CREATE_COMPLETE` — or the failure, recorded on the stack as AWS records
//! it: events naming the cause, a failed or rolled-back status.
//! Synchronous refusals are AWS's too: a template that is not JSON, a
//! parameter without a value, a missing capability (`ValidationError`,
//! `InsufficientCapabilitiesException`).

mod change_sets;
mod stacks;
#[cfg(test)]
mod tests;

use super::xml::Xml;
use super::{ApiContext, ApiError, ApiRequest, ApiResponse, ApiResult, Service};
use crate::cloud::local::stack::{self, TemplateSummary};
use crate::model::Stack;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The namespace of every CloudFormation answer.
const NAMESPACE: &str = "http://cloudformation.amazonaws.com/doc/2010-05-15/";

/// The longest `TemplateBody` CloudFormation takes; larger ones go by S3.
const MAX_TEMPLATE_BODY: usize = 51_200;
/// The longest template read from a `TemplateURL`.
const MAX_TEMPLATE_URL_OBJECT: u64 = 1 << 20;

/// The `cloudformation` service.
pub struct CloudFormation;

/// Every operation this service answers.
pub const OPERATIONS: &[&str] = &[
    "CreateStack",
    "UpdateStack",
    "DeleteStack",
    "DescribeStacks",
    "ListStacks",
    "DescribeStackEvents",
    "DescribeStackResources",
    "DescribeStackResource",
    "ListStackResources",
    "GetTemplate",
    "GetTemplateSummary",
    "ValidateTemplate",
    "CreateChangeSet",
    "DescribeChangeSet",
    "ExecuteChangeSet",
    "DeleteChangeSet",
    "ListChangeSets",
];

#[async_trait::async_trait]
impl Service for CloudFormation {
    fn operation(&self, request: &ApiRequest) -> Result<&'static str, ApiError> {
        let form = request.form();
        let action = form
            .iter()
            .find(|(k, _)| k == "Action")
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| {
                ApiError::new(
                    400,
                    "MissingAction",
                    "the request names no Action; send an awsQuery form (Action=DescribeStacks&Version=2010-05-15&…)",
                )
            })?;
        OPERATIONS
            .iter()
            .find(|op| **op == action)
            .copied()
            .ok_or_else(|| ApiError::unknown_operation("cloudformation", action))
    }

    async fn call(
        &self,
        ctx: &ApiContext,
        operation: &'static str,
        request: ApiRequest,
    ) -> ApiResult {
        let ctx = ctx.clone();
        let form = Form::new(request.form());
        let request_id = match request.request_id() {
            "" => uuid(),
            id => id.to_string(),
        };
        tokio::task::spawn_blocking(move || dispatch(&ctx, operation, &form, &request_id))
            .await
            .map_err(|e| ApiError::internal(format!("{operation} stopped unexpectedly: {e}")))?
    }
}

fn dispatch(ctx: &ApiContext, operation: &'static str, form: &Form, request_id: &str) -> ApiResult {
    let result = match operation {
        "CreateStack" => stacks::create_stack(ctx, form)?,
        "UpdateStack" => stacks::update_stack(ctx, form)?,
        "DeleteStack" => stacks::delete_stack(ctx, form)?,
        "DescribeStacks" => stacks::describe_stacks(ctx, form)?,
        "ListStacks" => stacks::list_stacks(ctx)?,
        "DescribeStackEvents" => stacks::describe_stack_events(ctx, form)?,
        "DescribeStackResources" => stacks::describe_stack_resources(ctx, form, false)?,
        "DescribeStackResource" => stacks::describe_stack_resources(ctx, form, true)?,
        "ListStackResources" => stacks::list_stack_resources(ctx, form)?,
        "GetTemplate" => stacks::get_template(ctx, form)?,
        "GetTemplateSummary" => stacks::get_template_summary(ctx, form)?,
        "ValidateTemplate" => stacks::validate_template(ctx, form)?,
        "CreateChangeSet" => change_sets::create_change_set(ctx, form)?,
        "DescribeChangeSet" => change_sets::describe_change_set(ctx, form)?,
        "ExecuteChangeSet" => change_sets::execute_change_set(ctx, form)?,
        "DeleteChangeSet" => change_sets::delete_change_set(ctx, form)?,
        "ListChangeSets" => change_sets::list_change_sets(ctx, form)?,
        other => return Err(ApiError::unknown_operation("cloudformation", other)),
    };
    Ok(respond(operation, result, request_id))
}

/// `<{Op}Response><{Op}Result>…</{Op}Result><ResponseMetadata>…`.
fn respond(operation: &str, result: Option<Xml>, request_id: &str) -> ApiResponse {
    let mut x = Xml::document();
    x.open_ns(&format!("{operation}Response"), NAMESPACE);
    if let Some(result) = result {
        let tag = format!("{operation}Result");
        x.open(&tag).append(result).close(&tag);
    }
    x.open("ResponseMetadata")
        .leaf("RequestId", request_id)
        .close("ResponseMetadata")
        .close(&format!("{operation}Response"));
    ApiResponse::xml(x.finish())
}

/// A fresh UUID-shaped id.
fn uuid() -> String {
    let h = hex::encode(rand::random::<[u8; 16]>());
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// awsQuery's `ValidationError` (400).
fn validation(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "ValidationError", message)
}

/// "Stack with id X does not exist", as `DescribeStacks` says it (the aws
/// CLI's `deploy` looks for these words).
fn no_such_stack(name: &str) -> ApiError {
    validation(format!("Stack with id {name} does not exist"))
}

fn cloud_error(e: crate::cloud::CloudError) -> ApiError {
    ApiError::internal(e)
}

/// An awsQuery form: `Key=Value` pairs, lists as `Key.member.N`, structures
/// in lists as `Key.member.N.Field`.
pub(super) struct Form(Vec<(String, String)>);

impl Form {
    fn new(pairs: Vec<(String, String)>) -> Form {
        Form(pairs)
    }

    /// The first value of `key`.
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key`, or a `ValidationError` naming it.
    fn required(&self, key: &str) -> Result<&str, ApiError> {
        match self.get(key) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(validation(format!(
                "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
                lower_first(key)
            ))),
        }
    }

    /// `true` when `key` is `true`.
    fn flag(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// A list of scalars: `key.member.1`, `key.member.2`, …
    fn list(&self, key: &str) -> Vec<String> {
        let prefix = format!("{key}.member.");
        let mut items: Vec<(u32, String)> = self
            .0
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?.parse().ok()?, v.clone())))
            .collect();
        items.sort_by_key(|(n, _)| *n);
        items.into_iter().map(|(_, v)| v).collect()
    }

    /// A list of structures: `key.member.N.Field` → one map per N, by N.
    fn structs(&self, key: &str) -> Vec<BTreeMap<String, String>> {
        let prefix = format!("{key}.member.");
        let mut items: BTreeMap<u32, BTreeMap<String, String>> = BTreeMap::new();
        for (k, v) in &self.0 {
            let Some(rest) = k.strip_prefix(&prefix) else {
                continue;
            };
            let Some((n, field)) = rest.split_once('.') else {
                continue;
            };
            if let Ok(n) = n.parse() {
                items
                    .entry(n)
                    .or_default()
                    .insert(field.to_string(), v.clone());
            }
        }
        items.into_values().collect()
    }
}

fn lower_first(key: &str) -> String {
    let mut chars = key.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A stack name from a name or a stack id (ARN `…:stack/<name>/<id>`).
fn stack_name(given: &str) -> String {
    given
        .strip_prefix("arn:")
        .and_then(|rest| rest.split_once(":stack/"))
        .map(|(_, tail)| tail.split('/').next().unwrap_or(tail).to_string())
        .unwrap_or_else(|| given.to_string())
}

/// Checks a new stack's name as CloudFormation does.
fn check_stack_name(name: &str) -> Result<(), ApiError> {
    check_name(name, "stackName")
}

/// A stack's or change set's name: a letter, then letters, digits and
/// hyphens, at most 128 characters. `member` names it in the error.
fn check_name(name: &str, member: &str) -> Result<(), ApiError> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-')
        && name.len() <= 128;
    if ok {
        Ok(())
    } else {
        Err(validation(format!(
            "1 validation error detected: Value '{name}' at '{member}' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z][-a-zA-Z0-9]* (at most 128 characters)"
        )))
    }
}

/// The template text: `TemplateBody`, `TemplateURL` (an object of this
/// local S3) or, for updates, `UsePreviousTemplate`.
fn template_text(
    ctx: &ApiContext,
    form: &Form,
    previous: Option<&Stack>,
) -> Result<String, ApiError> {
    if let Some(body) = form.get("TemplateBody").filter(|b| !b.is_empty()) {
        if body.len() > MAX_TEMPLATE_BODY {
            return Err(validation(format!(
                "1 validation error detected: Value at 'templateBody' failed to satisfy constraint: Member must have length less than or equal to {MAX_TEMPLATE_BODY}; upload the template to S3 and pass TemplateURL (`aws cloudformation deploy --s3-bucket`)"
            )));
        }
        return Ok(body.to_string());
    }
    if let Some(url) = form.get("TemplateURL").filter(|u| !u.is_empty()) {
        return template_from_s3(ctx, url);
    }
    if form.flag("UsePreviousTemplate") {
        return previous.map(|s| s.template.clone()).ok_or_else(|| {
            validation(
                "UsePreviousTemplate needs an existing stack; pass TemplateBody or TemplateURL",
            )
        });
    }
    Err(validation(
        "Either Template URL or Template Body must be specified.",
    ))
}

/// `(bucket, key)` of an S3 URL: path style (`https://s3.amazonaws.com/b/k`,
/// `http://127.0.0.1:4566/b/k`: this API itself), virtual-hosted style
/// (`https://b.s3.us-east-1.amazonaws.com/k`) or `s3://b/k`.
pub(crate) fn s3_location(url: &str) -> Option<(String, String)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, key) = rest.split_once('/')?;
        return Some((bucket.to_string(), key.to_string()));
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let (host, path) = rest.split_once('/')?;
    let host = host.split(':').next().unwrap_or(host);
    let virtual_bucket = host
        .split_once(".s3.")
        .or_else(|| host.split_once(".s3-"))
        .filter(|(_, tail)| tail.ends_with("amazonaws.com"))
        .map(|(bucket, _)| bucket);
    let (bucket, key) = match virtual_bucket {
        Some(bucket) => (bucket.to_string(), path.to_string()),
        None => {
            let (bucket, key) = path.split_once('/')?;
            (bucket.to_string(), key.to_string())
        }
    };
    (!bucket.is_empty() && !key.is_empty()).then(|| (decode(&bucket), decode(&key)))
}

fn template_from_s3(ctx: &ApiContext, url: &str) -> Result<String, ApiError> {
    let invalid = || {
        validation(format!(
            "TemplateURL must reference a valid S3 object to which you have access: {url} is not an object of this local cloud's S3 (upload it first, e.g. `aws s3 cp template.json s3://BUCKET/`)"
        ))
    };
    let (bucket, key) = s3_location(url).ok_or_else(invalid)?;
    let store = ctx.cloud.store();
    let object = store.get_object(&bucket, &key)?.ok_or_else(invalid)?;
    if object.size > MAX_TEMPLATE_URL_OBJECT {
        return Err(validation(format!(
            "the template at {url} is {} bytes; CloudFormation reads templates of at most {MAX_TEMPLATE_URL_OBJECT} bytes",
            object.size
        )));
    }
    let (_, body) = store
        .read_object(&object, 0, object.size)?
        .ok_or_else(invalid)?;
    String::from_utf8(body)
        .map_err(|_| validation(format!("the template at {url} is not UTF-8 text")))
}

/// Reads the template's declarations; a format error is a `ValidationError`.
fn summarize(text: &str) -> Result<(TemplateSummary, Value), ApiError> {
    stack::summarize(text).map_err(validation)
}

/// A parameter value as text (a list parameter's values joined by commas).
fn parameter_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(parameter_text)
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

/// The parameter values given (`Parameters.member.N.ParameterKey/
/// ParameterValue/UsePreviousValue`), checked against the template as
/// CloudFormation checks them before it starts; defaults are left to the
/// engine.
fn given_parameters(
    form: &Form,
    summary: &TemplateSummary,
    previous: Option<&Stack>,
) -> Result<Map<String, Value>, ApiError> {
    let mut given = Map::new();
    for member in form.structs("Parameters") {
        let key = member
            .get("ParameterKey")
            .filter(|k| !k.is_empty())
            .ok_or_else(|| validation("every member of Parameters needs a ParameterKey"))?;
        let use_previous = member
            .get("UsePreviousValue")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let value = if use_previous {
            previous
                .and_then(|s| s.parameters.get(key.as_str()))
                .map(parameter_text)
                .ok_or_else(|| {
                    validation(format!(
                        "Invalid input for parameter key {key}. Cannot specify usePreviousValue as true for a parameter key not in the previous template"
                    ))
                })?
        } else {
            member.get("ParameterValue").cloned().ok_or_else(|| {
                validation(format!(
                    "Invalid input for parameter key {key}. Need to specify either usePreviousValue as true or a value for the parameter"
                ))
            })?
        };
        given.insert(key.clone(), Value::String(value));
    }
    let unknown: Vec<&str> = given
        .keys()
        .filter(|k| !summary.parameters.iter().any(|p| &p.name == *k))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(validation(format!(
            "Parameters: [{}] do not exist in the template",
            unknown.join(", ")
        )));
    }
    let missing: Vec<&str> = summary
        .parameters
        .iter()
        .filter(|p| p.default.is_none() && !given.contains_key(&p.name))
        .map(|p| p.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(validation(format!(
            "Parameters: [{}] must have values",
            missing.join(", ")
        )));
    }
    for p in &summary.parameters {
        let value = given
            .get(&p.name)
            .map(parameter_text)
            .or_else(|| p.default.clone());
        if let Some(value) = value {
            if !p.allowed_values.is_empty() && !p.allowed_values.contains(&value) {
                return Err(validation(format!(
                    "Parameter '{}' must be one of AllowedValues ({}), not '{value}'",
                    p.name,
                    p.allowed_values.join(", ")
                )));
            }
        }
    }
    Ok(given)
}

/// Refuses a template whose IAM resources were not acknowledged with
/// `Capabilities`, as CloudFormation does.
fn check_capabilities(form: &Form, summary: &TemplateSummary, doc: &Value) -> Result<(), ApiError> {
    let Some(needed) = summary.required_capability(doc) else {
        return Ok(());
    };
    let given = form.list("Capabilities");
    let ok = given
        .iter()
        .any(|c| c == needed || c == "CAPABILITY_NAMED_IAM");
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            400,
            "InsufficientCapabilitiesException",
            format!("Requires capabilities : [{needed}]"),
        ))
    }
}

/// A stack's status allows an update (AWS refuses one while an operation
/// runs, after a rolled-back creation and after a failed deletion).
fn check_updatable(stack: &Stack) -> Result<(), ApiError> {
    let s = stack.status.as_str();
    if s.ends_with("_IN_PROGRESS") || s == stack::ROLLBACK_COMPLETE || s == "DELETE_FAILED" {
        return Err(validation(format!(
            "Stack:{} is in {s} state and can not be updated.",
            stack::stack_id(&stack.name)
        )));
    }
    Ok(())
}
