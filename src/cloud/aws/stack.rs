//! Step 1 on AWS: the sample's `deploy_cf.bash` and `delete_cf.bash`.
//!
//! Deploy uploads the rotation function's package (see `code.rs`), then
//! creates or updates the stack from `cfn/cert-rotation.json` — the same
//! template the local stack engine interprets — and streams the stack's
//! events until it reaches a terminal status. A failure names each failing
//! resource with CloudFormation's reason. Teardown deletes the stack, waits,
//! then empties and deletes the code bucket.

use super::emulator::{self, ExtractedRule};
use super::errors::{api, AwsError, AwsResult};
use super::AwsCloud;
use crate::cloud::{CloudEvent, DeployReport, EventKind, TeardownReport};
use crate::model::{StackEvent, StackResource};
use crate::vocabulary::{STACK_NAME, STACK_TEMPLATE as TEMPLATE};
use aws_sdk_cloudformation::types::{Capability, Parameter, Stack};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

/// How often a stack operation in progress is polled (CloudFormation has no
/// push without SNS). The emulator finishes synchronously.
const POLL_INTERVAL: Duration = Duration::from_secs(3);
/// Give up waiting after this long, with a message saying how to go on.
const WAIT_LIMIT: Duration = Duration::from_secs(30 * 60);
/// The stack output holding the JITP provisioning role's ARN.
pub const PROVISIONING_ROLE_OUTPUT: &str = "JitpProvisioningRoleArn";
/// The stack output holding the rotation function's ARN.
pub const FUNCTION_ARN_OUTPUT: &str = "CertRotationFunctionArn";

/// The stack as DescribeStacks sees it, `None` when there is none.
pub async fn describe(cloud: &AwsCloud) -> AwsResult<Option<Stack>> {
    let result = cloud
        .clients()
        .cloudformation
        .describe_stacks()
        .stack_name(STACK_NAME)
        .send()
        .await;
    match result {
        Ok(out) => Ok(out.stacks.unwrap_or_default().into_iter().next()),
        Err(e) => {
            let err = api("DescribeStacks", "cloudformation:DescribeStacks", e);
            match &err {
                AwsError::Api { message, .. } if message.contains("does not exist") => Ok(None),
                _ => Err(err),
            }
        }
    }
}

/// The stack's status string, e.g. `CREATE_COMPLETE`.
pub fn status_of(stack: &Stack) -> String {
    stack
        .stack_status()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default()
}

/// An output of the stack by key.
pub fn output(stack: &Stack, key: &str) -> Option<String> {
    stack
        .outputs()
        .iter()
        .find(|o| o.output_key() == Some(key))
        .and_then(|o| o.output_value().map(str::to_string))
}

/// True for statuses after which an update is possible.
pub fn is_deployed(status: &str) -> bool {
    matches!(
        status,
        "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "UPDATE_ROLLBACK_COMPLETE" | "IMPORT_COMPLETE"
    )
}

/// True when an existing stack in `status` can take an update.
pub fn can_update(status: &str) -> bool {
    !status.ends_with("_IN_PROGRESS")
        && !matches!(
            status,
            "ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" | "CREATE_FAILED" | "DELETE_FAILED"
        )
}

/// Why deploy cannot go on with a stack in `status`, and what to do.
pub fn cannot_deploy(status: &str, reasons: &str) -> AwsError {
    if status.ends_with("_IN_PROGRESS") {
        return AwsError::Other(format!(
            "stack {STACK_NAME} is {status}: another operation is running; wait for it to finish (`jitpilot status`), then deploy again"
        ));
    }
    AwsError::Other(format!(
        "stack {STACK_NAME} is {status} (a failed creation or deletion{reasons}); it cannot be updated: run `jitpilot teardown`, fix the cause, then `jitpilot deploy`"
    ))
}

/// Create or update the stack and follow it to the end. `overrides` set
/// parameters (`CsrKeyReuse=warn`); on an update every other parameter the
/// stack has keeps its value (`UsePreviousValue`), as `aws cloudformation
/// deploy` does.
pub async fn deploy(
    cloud: &AwsCloud,
    overrides: &crate::cloud::ParameterOverrides,
) -> AwsResult<DeployReport> {
    let existing = describe(cloud).await?;
    if let Some(stack) = &existing {
        let status = status_of(stack);
        if status.ends_with("_IN_PROGRESS") || !can_update(&status) {
            let reasons = failure_reasons(&recent_events(cloud, None).await?);
            return Err(cannot_deploy(&status, &reasons));
        }
    }
    let package = super::code::upload(cloud).await?;
    let template: Value = serde_json::from_str(TEMPLATE)
        .map_err(|e| AwsError::Other(format!("cfn/cert-rotation.json is not valid JSON: {e}")))?;
    let (body, rules) = if cloud.options().is_emulator() {
        emulator::without_topic_rules(&template)
    } else {
        (template, Vec::new())
    };
    let declared: Vec<String> = body
        .get("Parameters")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    if let Some(unknown) = overrides.keys().find(|k| !declared.contains(k)) {
        return Err(AwsError::Other(format!(
            "parameter {unknown} does not exist in the template (it has: {}); check --parameter-overrides",
            declared.join(", ")
        )));
    }
    let mut parameters = vec![
        Parameter::builder()
            .parameter_key("CodeBucket")
            .parameter_value(&package.bucket)
            .build(),
        Parameter::builder()
            .parameter_key("CodeKey")
            .parameter_value(&package.key)
            .build(),
    ];
    let previous: Vec<&str> = existing
        .iter()
        .flat_map(|stack| stack.parameters())
        .filter_map(|p| p.parameter_key())
        .collect();
    for name in &declared {
        if name == "CodeBucket" || name == "CodeKey" {
            continue;
        }
        let parameter = Parameter::builder().parameter_key(name);
        parameters.push(match overrides.get(name) {
            Some(value) => parameter.parameter_value(value).build(),
            None if previous.contains(&name.as_str()) => parameter.use_previous_value(true).build(),
            // Not set yet: the template's default applies.
            None => continue,
        });
    }
    let capabilities = [Capability::CapabilityIam, Capability::CapabilityNamedIam];
    let started = aws_sdk_cloudformation::primitives::DateTime::from_millis(
        crate::model::now_millis() - 1000,
    );
    let changed = match &existing {
        None => {
            cloud
                .clients()
                .cloudformation
                .create_stack()
                .stack_name(STACK_NAME)
                .template_body(body.to_string())
                .set_parameters(Some(parameters))
                .set_capabilities(Some(capabilities.to_vec()))
                .send()
                .await
                .map_err(|e| api("CreateStack", "cloudformation:CreateStack", e))?;
            true
        }
        Some(_) => {
            let result = cloud
                .clients()
                .cloudformation
                .update_stack()
                .stack_name(STACK_NAME)
                .template_body(body.to_string())
                .set_parameters(Some(parameters))
                .set_capabilities(Some(capabilities.to_vec()))
                .send()
                .await;
            match result {
                Ok(_) => true,
                Err(e) => match api("UpdateStack", "cloudformation:UpdateStack", e) {
                    AwsError::Api { message, .. } if message.contains("No updates") => false,
                    other => return Err(other),
                },
            }
        }
    };
    let (stack, events) = if changed {
        follow(cloud, started).await?
    } else {
        let stack = describe(cloud)
            .await?
            .ok_or_else(|| AwsError::Other(format!("stack {STACK_NAME} vanished during deploy")))?;
        (stack, Vec::new())
    };
    let status = status_of(&stack);
    if !is_deployed(&status) || status == "UPDATE_ROLLBACK_COMPLETE" && changed {
        return Err(AwsError::Other(format!(
            "stack {STACK_NAME} ended {status}{}; fix the cause, then `jitpilot deploy` again (a failed create needs `jitpilot teardown` first)",
            failure_reasons(&events)
        )));
    }
    if !rules.is_empty() {
        let function_arn = output(&stack, FUNCTION_ARN_OUTPUT).ok_or_else(|| {
            AwsError::Other(format!(
                "stack {STACK_NAME} has no output {FUNCTION_ARN_OUTPUT}"
            ))
        })?;
        for rule in &rules {
            put_topic_rule(cloud, rule, &function_arn).await?;
        }
    }
    Ok(DeployReport {
        stack: STACK_NAME.to_string(),
        status,
        changed,
        resources: resources(cloud).await?,
        events,
    })
}

/// Creates (or replaces) one topic rule through the IoT API: the emulator
/// path, with the same SQL and a Lambda action on the stack's function.
pub async fn put_topic_rule(
    cloud: &AwsCloud,
    rule: &ExtractedRule,
    function_arn: &str,
) -> AwsResult<()> {
    use aws_sdk_iot::types::{Action, LambdaAction, TopicRulePayload};
    let lambda = LambdaAction::builder()
        .function_arn(function_arn)
        .build()
        .map_err(|e| AwsError::Other(format!("topic rule {}: {e}", rule.name)))?;
    let mut payload = TopicRulePayload::builder()
        .sql(&rule.sql)
        .set_description(rule.description.clone())
        .set_aws_iot_sql_version(rule.sql_version.clone())
        .rule_disabled(false);
    if rule.invokes_function {
        payload = payload.actions(Action::builder().lambda(lambda).build());
    }
    let payload = payload
        .build()
        .map_err(|e| AwsError::Other(format!("topic rule {}: {e}", rule.name)))?;
    let iot = &cloud.clients().iot;
    let exists = iot
        .get_topic_rule()
        .rule_name(&rule.name)
        .send()
        .await
        .is_ok();
    if exists {
        iot.replace_topic_rule()
            .rule_name(&rule.name)
            .topic_rule_payload(payload)
            .send()
            .await
            .map_err(|e| api("ReplaceTopicRule", "iot:ReplaceTopicRule", e))?;
    } else {
        iot.create_topic_rule()
            .rule_name(&rule.name)
            .topic_rule_payload(payload)
            .send()
            .await
            .map_err(|e| api("CreateTopicRule", "iot:CreateTopicRule", e))?;
    }
    cloud.emit(
        CloudEvent::new(
            EventKind::Stack,
            format!("{} (AWS::IoT::TopicRule) created through the IoT API (emulator)", rule.name),
        )
        .detail(json!({"status": "CREATE_COMPLETE", "resourceType": emulator::TOPIC_RULE_TYPE, "logicalId": rule.logical_id})),
    );
    Ok(())
}

/// Polls the stack until its status is terminal, emitting each new event.
async fn follow(
    cloud: &AwsCloud,
    since: aws_sdk_cloudformation::primitives::DateTime,
) -> AwsResult<(Stack, Vec<StackEvent>)> {
    let mut seen = HashSet::new();
    let mut all = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
    loop {
        let stack = describe(cloud).await?;
        for event in recent_events(cloud, Some(since)).await? {
            if seen.insert((
                event.logical_id.clone(),
                event.status.clone(),
                event.timestamp,
            )) {
                cloud.emit(stack_event(&event));
                all.push(event);
            }
        }
        let Some(stack) = stack else {
            return Err(AwsError::Other(format!(
                "stack {STACK_NAME} disappeared while deploying{}",
                failure_reasons(&all)
            )));
        };
        if !status_of(&stack).ends_with("_IN_PROGRESS") {
            return Ok((stack, all));
        }
        if tokio::time::Instant::now() > deadline {
            return Err(AwsError::Other(format!(
                "stack {STACK_NAME} is still {} after 30 minutes; follow it in the CloudFormation console and run `jitpilot status`",
                status_of(&stack)
            )));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The stack's events (oldest first), only those after `since` when given.
pub async fn recent_events(
    cloud: &AwsCloud,
    since: Option<aws_sdk_cloudformation::primitives::DateTime>,
) -> AwsResult<Vec<StackEvent>> {
    let result = cloud
        .clients()
        .cloudformation
        .describe_stack_events()
        .stack_name(STACK_NAME)
        .send()
        .await;
    let out = match result {
        Ok(out) => out,
        Err(e) => match api(
            "DescribeStackEvents",
            "cloudformation:DescribeStackEvents",
            e,
        ) {
            AwsError::Api { message, .. } if message.contains("does not exist") => {
                return Ok(Vec::new())
            }
            other => return Err(other),
        },
    };
    let since_ms = since.and_then(|t| t.to_millis().ok()).unwrap_or(i64::MIN);
    let mut events: Vec<StackEvent> = out
        .stack_events
        .unwrap_or_default()
        .iter()
        .map(|e| StackEvent {
            stack: STACK_NAME.to_string(),
            timestamp: e.timestamp().and_then(|t| t.to_millis().ok()).unwrap_or(0),
            logical_id: e.logical_resource_id().unwrap_or_default().to_string(),
            resource_type: e.resource_type().unwrap_or_default().to_string(),
            status: e
                .resource_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            reason: e.resource_status_reason().map(str::to_string),
        })
        .filter(|e| e.timestamp >= since_ms)
        .collect();
    // DescribeStackEvents lists newest first.
    events.reverse();
    Ok(events)
}

/// The stack's resources as `status` and `deploy` show them.
pub async fn resources(cloud: &AwsCloud) -> AwsResult<Vec<StackResource>> {
    let out = cloud
        .clients()
        .cloudformation
        .describe_stack_resources()
        .stack_name(STACK_NAME)
        .send()
        .await
        .map_err(|e| {
            api(
                "DescribeStackResources",
                "cloudformation:DescribeStackResources",
                e,
            )
        })?;
    Ok(out
        .stack_resources
        .unwrap_or_default()
        .iter()
        .map(|r| StackResource {
            stack: STACK_NAME.to_string(),
            logical_id: r.logical_resource_id().unwrap_or_default().to_string(),
            resource_type: r.resource_type().unwrap_or_default().to_string(),
            physical_id: r.physical_resource_id().unwrap_or_default().to_string(),
            status: r
                .resource_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            properties: Value::Null,
        })
        .collect())
}

/// `: X (AWS::T): reason; ...` for every failed resource, or nothing.
pub fn failure_reasons(events: &[StackEvent]) -> String {
    let failed: Vec<String> = events
        .iter()
        .filter(|e| e.status.ends_with("_FAILED"))
        .filter(|e| {
            e.reason
                .as_deref()
                .is_some_and(|r| !r.contains("cancelled"))
        })
        .map(|e| {
            format!(
                "{} ({}): {}",
                e.logical_id,
                e.resource_type,
                e.reason.as_deref().unwrap_or("no reason given")
            )
        })
        .collect();
    if failed.is_empty() {
        String::new()
    } else {
        format!(": {}", failed.join("; "))
    }
}

fn stack_event(event: &StackEvent) -> CloudEvent {
    CloudEvent::new(
        EventKind::Stack,
        format!(
            "{} {} {}",
            event.logical_id, event.resource_type, event.status
        ),
    )
    .detail(json!({
        "status": event.status,
        "resourceType": event.resource_type,
        "logicalId": event.logical_id,
        "reason": event.reason,
    }))
}

/// Deletes the stack, waits for it to go, then removes the code bucket.
pub async fn teardown(cloud: &AwsCloud) -> AwsResult<TeardownReport> {
    let Some(stack) = describe(cloud).await? else {
        super::code::delete_bucket(cloud).await?;
        return Ok(TeardownReport {
            stack: STACK_NAME.to_string(),
            existed: false,
            deleted: Vec::new(),
        });
    };
    if status_of(&stack) == "DELETE_COMPLETE" {
        super::code::delete_bucket(cloud).await?;
        return Ok(TeardownReport {
            stack: STACK_NAME.to_string(),
            existed: false,
            deleted: Vec::new(),
        });
    }
    let started = aws_sdk_cloudformation::primitives::DateTime::from_millis(
        crate::model::now_millis() - 1000,
    );
    // Rules made through the API (emulator path) are not the stack's to delete.
    if cloud.options().is_emulator() {
        let template: Value = serde_json::from_str(TEMPLATE).unwrap_or(Value::Null);
        for rule in emulator::without_topic_rules(&template).1 {
            let _ = cloud
                .clients()
                .iot
                .delete_topic_rule()
                .rule_name(&rule.name)
                .send()
                .await;
        }
    }
    let logical_ids: Vec<String> = resources(cloud)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.logical_id)
        .collect();
    cloud
        .clients()
        .cloudformation
        .delete_stack()
        .stack_name(STACK_NAME)
        .send()
        .await
        .map_err(|e| api("DeleteStack", "cloudformation:DeleteStack", e))?;
    let (status, events) = match follow(cloud, started).await {
        Ok((stack, events)) => (status_of(&stack), events),
        // Gone from DescribeStacks: deleted.
        Err(AwsError::Other(msg)) if msg.contains("disappeared") => {
            ("DELETE_COMPLETE".to_string(), Vec::new())
        }
        Err(e) => return Err(e),
    };
    if status != "DELETE_COMPLETE" {
        return Err(AwsError::Other(format!(
            "stack {STACK_NAME} ended {status}{}; delete what blocks it (e.g. a non-empty resource), then `jitpilot teardown` again",
            failure_reasons(&events)
        )));
    }
    super::code::delete_bucket(cloud).await?;
    let mut deleted: Vec<String> = events
        .iter()
        .filter(|e| e.status == "DELETE_COMPLETE" && e.logical_id != STACK_NAME)
        .map(|e| e.logical_id.clone())
        .collect();
    if deleted.is_empty() {
        deleted = logical_ids;
    }
    Ok(TeardownReport {
        stack: STACK_NAME.to_string(),
        existed: true,
        deleted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rolled_back_stack_is_refused_with_what_to_do() {
        assert!(can_update("CREATE_COMPLETE"));
        assert!(can_update("UPDATE_ROLLBACK_COMPLETE"));
        assert!(!can_update("ROLLBACK_COMPLETE"));
        assert!(!can_update("UPDATE_IN_PROGRESS"));
        let err = cannot_deploy("ROLLBACK_COMPLETE", ": F (AWS::Lambda::Function): no code");
        let text = err.to_string();
        assert!(
            text.contains("jitpilot teardown") && text.contains("no code"),
            "{text}"
        );
        let busy = cannot_deploy("UPDATE_IN_PROGRESS", "").to_string();
        assert!(busy.contains("wait for it to finish"), "{busy}");
    }

    #[test]
    fn failure_reasons_name_each_failed_resource() {
        let event = |id: &str, status: &str, reason: Option<&str>| StackEvent {
            stack: STACK_NAME.into(),
            timestamp: 0,
            logical_id: id.into(),
            resource_type: "AWS::Lambda::Function".into(),
            status: status.into(),
            reason: reason.map(str::to_string),
        };
        let events = [
            event("A", "CREATE_COMPLETE", None),
            event(
                "CertRotationFunction",
                "CREATE_FAILED",
                Some("S3 key does not exist"),
            ),
            event("B", "CREATE_FAILED", Some("Resource creation cancelled")),
        ];
        assert_eq!(
            failure_reasons(&events),
            ": CertRotationFunction (AWS::Lambda::Function): S3 key does not exist"
        );
        assert_eq!(failure_reasons(&events[..1]), "");
    }
}
