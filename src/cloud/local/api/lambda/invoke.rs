//! `Invoke`: runs the function the rules engine runs for this stack
//! function — the built-in its record names — with the payload as its
//! event, within the function's timeout. `RequestResponse` answers the
//! result, or the error as `{"errorMessage", "errorType"}` with
//! `X-Amz-Function-Error: Unhandled`; `Event` queues it (202); `DryRun`
//! only checks it could run (204).

use super::{
    function_of, invalid, timeout_seconds, ApiContext, ApiError, ApiRequest, ApiResponse, ApiResult,
};
use crate::cloud::events::{CloudEvent, EventKind};
use serde_json::{json, Value};
use std::time::Duration;

/// Lambda's cap on a synchronous invocation's payload; 256 KB for `Event`.
const MAX_SYNC_PAYLOAD: usize = 6 * 1024 * 1024;
const MAX_EVENT_PAYLOAD: usize = 256 * 1024;

pub(super) async fn invoke(ctx: &ApiContext, request: &ApiRequest) -> ApiResult {
    let kind = request
        .header("x-amz-invocation-type")
        .unwrap_or("RequestResponse")
        .to_string();
    let limit = match kind.as_str() {
        "RequestResponse" | "DryRun" => MAX_SYNC_PAYLOAD,
        "Event" => MAX_EVENT_PAYLOAD,
        other => {
            return Err(invalid(format!(
                "1 validation error detected: Value '{other}' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]"
            )))
        }
    };
    if request.body.len() > limit {
        return Err(ApiError::new(
            413,
            "RequestTooLargeException",
            format!("Request must be smaller than {limit} bytes for the Invoke operation"),
        ));
    }
    let event: Value = if request.body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&request.body).map_err(|e| {
            ApiError::new(
                400,
                "InvalidRequestContentException",
                format!("Could not parse request body into json: {e}"),
            )
        })?
    };
    let (function, package, template) = {
        let ctx = ctx.clone();
        let request = request.clone();
        tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
            let (function, package) = function_of(&ctx, &request)?;
            let template = ctx.cloud.store().function_template(&function.name)?;
            Ok((function, package, template))
        })
        .await
        .map_err(|e| ApiError::internal(format!("the Lambda operation's task failed: {e}")))??
    };
    let cannot_run = |why: String| ApiError::new(502, "InvalidRuntimeException", why);
    // Its own code when the function has some (lambda_runtime), else its built-in.
    let Some(builtin) = ctx.functions.resolve(&function) else {
        return Err(cannot_run(format!(
            "function {} names handler {:?}, which this jitpilot cannot run here{}",
            function.name,
            function.handler,
            if ctx.publisher.is_none() {
                " (the local cloud's MQTT endpoint is not running: start `jitpilot serve` or the TUI)"
            } else {
                ""
            }
        )));
    };
    let Some(publisher) = ctx.publisher.clone() else {
        return Err(cannot_run("the local cloud's MQTT endpoint is not running, so the function cannot publish its answers: start `jitpilot serve` or the TUI".into()));
    };
    if kind == "DryRun" {
        return Ok(ApiResponse::empty(204));
    }
    let timeout = Duration::from_secs(
        timeout_seconds(package.as_ref(), template.as_ref()).clamp(1, 900) as u64,
    );
    let name = function.name.clone();
    let environment = function.environment.clone();
    let bus = ctx.cloud.bus().clone();
    bus.emit_with(|| {
        CloudEvent::new(
            EventKind::Function,
            format!("lambda:Invoke {name} ({kind})"),
        )
        .detail(json!({"function": name, "invocationType": kind, "event": event}))
    });
    let run = async move {
        let invocation = builtin.invoke(event, environment, publisher);
        let result = if builtin.keeps_its_own_clock() {
            invocation.await
        } else {
            match tokio::time::timeout(timeout, invocation).await {
                Ok(result) => result,
                Err(_) => Err(format!(
                    "Task timed out after {}.00 seconds",
                    timeout.as_secs()
                )),
            }
        };
        bus.emit_with(|| {
            let (summary, detail) = match &result {
                Ok(v) => (
                    format!("{name} returned"),
                    json!({"function": name, "result": v}),
                ),
                Err(e) => (
                    format!("{name} failed: {e}"),
                    json!({"function": name, "error": e}),
                ),
            };
            CloudEvent::new(EventKind::Function, summary).detail(detail)
        });
        if let Err(e) = &result {
            tracing::warn!(function = %name, error = %e, "function invoked through the API failed");
        }
        result
    };
    if kind == "Event" {
        // Queued: the caller does not wait, as with Lambda's async invoke.
        tokio::spawn(run);
        return Ok(ApiResponse::empty(202));
    }
    let response = match run.await {
        Ok(result) => ApiResponse::json(&result),
        Err(message) => {
            ApiResponse::json(&json!({"errorMessage": message, "errorType": "FunctionError"}))
                .with_header("X-Amz-Function-Error", "Unhandled")
        }
    };
    Ok(response.with_header("X-Amz-Executed-Version", "$LATEST"))
}
