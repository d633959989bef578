//! Lambda (restJson1, signing name `lambda`, URIs under
//! `/2015-03-31/functions`) over the stack's functions: what
//! `aws lambda get-function`, `update-function-code`,
//! `update-function-configuration` and `invoke` do with the rotation
//! function the stack deployed.
//!
//! The stack engine records a function (`store/rules.rs`); what a client
//! uploads or changes is kept beside it (`store/function_packages.rs`): the
//! deployment package's bytes, for a runtime that runs them, and settings
//! over the template's. `Invoke` runs the function the rules engine runs —
//! the built-in the function names (`ctx.functions`) — with the payload as
//! its event, and answers its result, or its error with
//! `X-Amz-Function-Error: Unhandled`, as Lambda does.
//!
//! Where it differs from Lambda: no versions or aliases (`$LATEST` only),
//! no CreateFunction (functions come from stacks), code from S3 is not read
//! yet (upload a zip), `Role` changes are not kept.

mod invoke;

use super::{ApiContext, ApiError, ApiRequest, ApiResponse, ApiResult, Service};
use crate::model::{now_millis, Function};
use crate::store::{FunctionPackage, FunctionSettings};
use base64::Engine;
use serde_json::{json, Map, Value};

/// The `lambda` service.
pub struct Lambda;

/// Every operation this service answers.
pub const OPERATIONS: &[&str] = &[
    "ListFunctions",
    "GetFunction",
    "GetFunctionConfiguration",
    "UpdateFunctionCode",
    "UpdateFunctionConfiguration",
    "Invoke",
];

/// Lambda's cap on a directly uploaded (zipped) package.
const MAX_ZIP_BYTES: usize = 50 * 1024 * 1024;
/// Environment variables' total size cap.
const MAX_ENVIRONMENT_BYTES: usize = 4096;
/// Variables Lambda sets itself and refuses to take.
const RESERVED_VARIABLES: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

#[async_trait::async_trait]
impl Service for Lambda {
    fn operation(&self, request: &ApiRequest) -> Result<&'static str, ApiError> {
        let segments = request.path_segments();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let method = request.method.as_str();
        let op = match (method, segments.as_slice()) {
            ("GET", ["2015-03-31", "functions"]) => "ListFunctions",
            ("GET", ["2015-03-31", "functions", _]) => "GetFunction",
            ("GET", ["2015-03-31", "functions", _, "configuration"]) => "GetFunctionConfiguration",
            ("PUT", ["2015-03-31", "functions", _, "configuration"]) => {
                "UpdateFunctionConfiguration"
            }
            ("PUT", ["2015-03-31", "functions", _, "code"]) => "UpdateFunctionCode",
            ("POST", ["2015-03-31", "functions", _, "invocations"]) => "Invoke",
            _ => {
                return Err(ApiError::unknown_operation(
                    "lambda",
                    &format!("{method} {}", request.path),
                ))
            }
        };
        Ok(op)
    }

    async fn call(
        &self,
        ctx: &ApiContext,
        operation: &'static str,
        request: ApiRequest,
    ) -> ApiResult {
        if operation == "Invoke" {
            return invoke::invoke(ctx, &request).await;
        }
        let ctx = ctx.clone();
        // SQLite is blocking work: off the runtime's worker threads.
        tokio::task::spawn_blocking(move || {
            let answer = match operation {
                "ListFunctions" => list_functions(&ctx, &request),
                "GetFunction" => get_function(&ctx, &request),
                "GetFunctionConfiguration" => {
                    let (function, package) = function_of(&ctx, &request)?;
                    Ok(configuration(&ctx, &function, package.as_ref())?)
                }
                "UpdateFunctionCode" => update_function_code(&ctx, &request),
                "UpdateFunctionConfiguration" => update_function_configuration(&ctx, &request),
                other => Err(ApiError::unknown_operation("lambda", other)),
            }?;
            Ok(ApiResponse::json(&answer))
        })
        .await
        .map_err(|e| ApiError::internal(format!("the Lambda operation's task failed: {e}")))?
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "InvalidParameterValueException", message)
}

/// The function name in a `{FunctionName}` segment: a name, a full ARN or
/// `account:function:name`, with an optional `:qualifier`.
fn function_reference(request: &ApiRequest) -> Result<(String, Option<String>), ApiError> {
    let segments = request.path_segments();
    let reference = segments.get(2).cloned().unwrap_or_default();
    let (name, qualifier) = match reference.split_once(":function:") {
        Some((_, rest)) => match rest.split_once(':') {
            Some((n, q)) => (n.to_string(), Some(q.to_string())),
            None => (rest.to_string(), None),
        },
        None => match reference.split_once(':') {
            Some((n, q)) => (n.to_string(), Some(q.to_string())),
            None => (reference.clone(), None),
        },
    };
    if name.is_empty() || name.len() > 140 {
        return Err(invalid(format!(
            "The function name {reference:?} is not valid"
        )));
    }
    let qualifier = qualifier.or_else(|| request.query_param("Qualifier").map(str::to_string));
    Ok((name, qualifier))
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(
        404,
        "ResourceNotFoundException",
        format!(
            "Function not found: arn:aws:lambda:{}:{}:function:{name}. Functions come from the stack: run `jitpilot deploy` (or deploy the template with CloudFormation)",
            crate::cloud::local::LOCAL_REGION,
            crate::cloud::local::LOCAL_ACCOUNT_ID
        ),
    )
}

/// The function the request names, with what the API set on it.
fn function_of(
    ctx: &ApiContext,
    request: &ApiRequest,
) -> Result<(Function, Option<FunctionPackage>), ApiError> {
    let (name, qualifier) = function_reference(request)?;
    let store = ctx.cloud.store();
    let function = store.get_function(&name)?.ok_or_else(|| not_found(&name))?;
    if let Some(q) = qualifier.filter(|q| q != "$LATEST") {
        return Err(ApiError::new(
            404,
            "ResourceNotFoundException",
            format!(
                "Function not found: {}:{q}. jitpilot's local Lambda keeps $LATEST only",
                function.arn
            ),
        ));
    }
    let package = store.function_package(&name)?;
    Ok((function, package))
}

/// ISO 8601 as Lambda writes `LastModified` (`2024-05-01T12:00:00.000+0000`).
fn lambda_time(millis: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+0000",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

fn template_str(template: Option<&Value>, field: &str) -> Option<String> {
    match template?.get(field)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn template_int(template: Option<&Value>, field: &str) -> Option<i64> {
    template_str(template, field)?.parse().ok()
}

/// The function's timeout in seconds (the API's, the template's, or Lambda's 3).
fn timeout_seconds(package: Option<&FunctionPackage>, template: Option<&Value>) -> i64 {
    package
        .and_then(|p| p.timeout)
        .or_else(|| template_int(template, "Timeout"))
        .unwrap_or(3)
}

/// `FunctionConfiguration` as Lambda answers it.
fn configuration(
    ctx: &ApiContext,
    f: &Function,
    package: Option<&FunctionPackage>,
) -> Result<Value, ApiError> {
    let template = ctx.cloud.store().function_template(&f.name)?;
    let template = template.as_ref();
    let pick =
        |api: Option<&String>, field: &str| api.cloned().or_else(|| template_str(template, field));
    let zip_len = package.and_then(|p| p.zip.as_ref()).map_or(0, Vec::len);
    let sha = package
        .and_then(|p| p.code_sha256.clone())
        .unwrap_or_default();
    let modified = package
        .map(|p| p.last_modified)
        .filter(|m| *m > 0)
        .unwrap_or_else(now_millis);
    let mut config = json!({
        "FunctionName": f.name,
        "FunctionArn": f.arn,
        "Role": f.role_arn,
        "CodeSize": zip_len,
        "CodeSha256": sha,
        "Description": pick(package.and_then(|p| p.description.as_ref()), "Description").unwrap_or_default(),
        "Timeout": timeout_seconds(package, template),
        "MemorySize": package.and_then(|p| p.memory_size).or_else(|| template_int(template, "MemorySize")).unwrap_or(128),
        "LastModified": lambda_time(modified),
        "Version": "$LATEST",
        "Environment": {"Variables": f.environment},
        "TracingConfig": {"Mode": "PassThrough"},
        "RevisionId": revision_id(&sha, modified),
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": ["x86_64"],
        "EphemeralStorage": {"Size": 512},
        "LoggingConfig": {"LogFormat": "Text", "LogGroup": format!("/aws/lambda/{}", f.name)},
    });
    if let Some(runtime) = pick(package.and_then(|p| p.runtime.as_ref()), "Runtime") {
        config["Runtime"] = json!(runtime);
    }
    if let Some(handler) = pick(package.and_then(|p| p.handler.as_ref()), "Handler") {
        config["Handler"] = json!(handler);
    }
    Ok(config)
}

/// A revision id that changes whenever the code or configuration does.
fn revision_id(sha: &str, modified: i64) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(format!("{sha}/{modified}").as_bytes());
    let hex: String = h.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn list_functions(ctx: &ApiContext, request: &ApiRequest) -> Result<Value, ApiError> {
    let max = match request.query_param("MaxItems") {
        Some(m) => m
            .parse::<usize>()
            .ok()
            .filter(|m| (1..=10_000).contains(m))
            .ok_or_else(|| invalid("MaxItems must be between 1 and 10000"))?,
        None => 50,
    };
    let marker = request.query_param("Marker");
    let store = ctx.cloud.store();
    let functions: Vec<Function> = store
        .list_functions()?
        .into_iter()
        .filter(|f| marker.is_none_or(|m| f.name.as_str() > m))
        .collect();
    let mut page = Vec::new();
    for f in functions.iter().take(max) {
        page.push(configuration(
            ctx,
            f,
            store.function_package(&f.name)?.as_ref(),
        )?);
    }
    let mut answer = json!({ "Functions": page });
    if functions.len() > max {
        answer["NextMarker"] = json!(functions[max - 1].name);
    }
    Ok(answer)
}

fn get_function(ctx: &ApiContext, request: &ApiRequest) -> Result<Value, ApiError> {
    let (function, package) = function_of(ctx, request)?;
    let config = configuration(ctx, &function, package.as_ref())?;
    Ok(json!({
        "Configuration": config,
        // Lambda answers a presigned S3 URL; jitpilot keeps the package in
        // its store, so there is nothing to download from.
        "Code": {"RepositoryType": "S3"},
        "Tags": {},
    }))
}

fn json_body(request: &ApiRequest) -> Result<Value, ApiError> {
    let body: Value = request.json()?;
    if body.is_object() {
        Ok(body)
    } else {
        Err(ApiError::new(
            400,
            "SerializationException",
            "the request body must be a JSON object",
        ))
    }
}

fn opt_str<'a>(body: &'a Value, field: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ApiError::new(
            400,
            "SerializationException",
            format!("{field} must be a string, found {other}"),
        )),
    }
}

fn opt_bool(body: &Value, field: &str) -> Result<bool, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(ApiError::new(
            400,
            "SerializationException",
            format!("{field} must be true or false, found {other}"),
        )),
    }
}

/// A `RevisionId` the client sent must be the current one.
fn check_revision(
    ctx: &ApiContext,
    body: &Value,
    function: &Function,
    package: Option<&FunctionPackage>,
) -> Result<(), ApiError> {
    if let Some(expected) = opt_str(body, "RevisionId")? {
        let current = configuration(ctx, function, package)?;
        if current["RevisionId"] != json!(expected) {
            return Err(ApiError::new(
                412,
                "PreconditionFailedException",
                "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
            ));
        }
    }
    Ok(())
}

fn update_function_code(ctx: &ApiContext, request: &ApiRequest) -> Result<Value, ApiError> {
    let body = json_body(request)?;
    let (function, package) = function_of(ctx, request)?;
    check_revision(ctx, &body, &function, package.as_ref())?;
    let zip = opt_str(&body, "ZipFile")?;
    let s3 = (opt_str(&body, "S3Bucket")?, opt_str(&body, "S3Key")?);
    if opt_str(&body, "ImageUri")?.is_some() {
        return Err(invalid(
            "ImageUri: jitpilot's local Lambda runs zip packages only; pass ZipFile",
        ));
    }
    let zip = match (zip, s3) {
        (Some(zip), (None, None)) => base64::engine::general_purpose::STANDARD
            .decode(zip.as_bytes())
            .map_err(|e| invalid(format!("ZipFile must be base64: {e}")))?,
        (None, (Some(bucket), Some(key))) => {
            return Err(invalid(format!(
                "S3Bucket/S3Key (s3://{bucket}/{key}): jitpilot's local Lambda does not read code from S3 yet; upload the zip itself (`aws lambda update-function-code --zip-file fileb://function.zip`)"
            )))
        }
        (None, (None, None)) => return Err(invalid("Please provide a source for function code: ZipFile, or S3Bucket and S3Key")),
        _ => return Err(invalid("Please do not provide other FunctionCode properties when providing a ZipFile: pass ZipFile, or S3Bucket and S3Key")),
    };
    if zip.len() > MAX_ZIP_BYTES {
        return Err(ApiError::new(
            413,
            "RequestEntityTooLargeException",
            format!("Request must be smaller than {MAX_ZIP_BYTES} bytes for the UpdateFunctionCode operation"),
        ));
    }
    // A zip starts with a local file header, or is an empty archive.
    if !(zip.starts_with(b"PK\x03\x04") || zip.starts_with(b"PK\x05\x06")) {
        return Err(invalid(
            "Could not unzip uploaded file. Please check your file, then try to upload again.",
        ));
    }
    let sha = {
        use sha2::Digest;
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&zip))
    };
    if !opt_bool(&body, "DryRun")?
        && !ctx
            .cloud
            .store()
            .put_function_code(&function.name, &zip, &sha)?
    {
        return Err(not_found(&function.name));
    }
    let package = ctx.cloud.store().function_package(&function.name)?;
    let mut config = configuration(ctx, &function, package.as_ref())?;
    if opt_bool(&body, "DryRun")? {
        config["CodeSha256"] = json!(sha);
        config["CodeSize"] = json!(zip.len());
    }
    Ok(config)
}

fn update_function_configuration(
    ctx: &ApiContext,
    request: &ApiRequest,
) -> Result<Value, ApiError> {
    let body = json_body(request)?;
    let (function, package) = function_of(ctx, request)?;
    check_revision(ctx, &body, &function, package.as_ref())?;
    let int = |field: &str,
               range: std::ops::RangeInclusive<i64>|
     -> Result<Option<i64>, ApiError> {
        match body.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(v) if range.contains(&v) => Ok(Some(v)),
                _ => Err(invalid(format!(
                    "1 validation error detected: Value '{n}' at '{}' failed to satisfy constraint: Member must have value between {} and {}",
                    field.to_lowercase(), range.start(), range.end()
                ))),
            },
            Some(other) => Err(ApiError::new(400, "SerializationException", format!("{field} must be a number, found {other}"))),
        }
    };
    let environment = match body.get("Environment") {
        None | Some(Value::Null) => None,
        Some(env) => Some(environment(env)?),
    };
    let settings = FunctionSettings {
        runtime: opt_str(&body, "Runtime")?.map(str::to_string),
        handler: opt_str(&body, "Handler")?.map(str::to_string),
        timeout: int("Timeout", 1..=900)?,
        memory_size: int("MemorySize", 128..=10_240)?,
        description: opt_str(&body, "Description")?.map(str::to_string),
        environment,
    };
    if !ctx
        .cloud
        .store()
        .update_function_settings(&function.name, &settings)?
    {
        return Err(not_found(&function.name));
    }
    let function = ctx
        .cloud
        .store()
        .get_function(&function.name)?
        .ok_or_else(|| not_found(&function.name))?;
    let package = ctx.cloud.store().function_package(&function.name)?;
    configuration(ctx, &function, package.as_ref())
}

/// `Environment: {"Variables": {…}}`, checked as Lambda does.
fn environment(env: &Value) -> Result<Map<String, Value>, ApiError> {
    let variables = match env.get("Variables") {
        None | Some(Value::Null) => return Ok(Map::new()),
        Some(Value::Object(v)) => v,
        Some(other) => {
            return Err(ApiError::new(
                400,
                "SerializationException",
                format!("Environment.Variables must be an object, found {other}"),
            ))
        }
    };
    let mut size = 0;
    let mut reserved = Vec::new();
    for (k, v) in variables {
        let value = v
            .as_str()
            .ok_or_else(|| invalid(format!("Environment variable {k} must be a string")))?;
        let mut chars = k.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(invalid(format!(
                "Environment variable name {k:?} is not valid: [a-zA-Z]([a-zA-Z0-9_])+"
            )));
        }
        if RESERVED_VARIABLES.contains(&k.as_str()) {
            reserved.push(k.clone());
        }
        size += k.len() + value.len();
    }
    if !reserved.is_empty() {
        return Err(invalid(format!(
            "Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: {}",
            reserved.join(", ")
        )));
    }
    if size > MAX_ENVIRONMENT_BYTES {
        return Err(invalid(format!(
            "Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit. String measured: {size} bytes"
        )));
    }
    Ok(variables.clone())
}

#[cfg(test)]
mod tests;
