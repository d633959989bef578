//! SSM Parameter Store (awsJson 1.1, `X-Amz-Target: AmazonSSM.<Operation>`,
//! signing name `ssm`) over the store's parameters: the CA keys
//! `cr-ca-key-<caId>` that `jitpilot init` and the sample's `certs_etc.py`
//! keep as SecureStrings, sealed at rest by the local KMS key (`store/keyring.rs`).
//!
//! A SecureString read without `WithDecryption` answers, as SSM does, an
//! opaque base64 blob — the sealed bytes — never the plaintext. With it,
//! the plaintext, as the rotation function reads the CA key.
//!
//! Where it differs from SSM: one version is kept (an older version
//! selector is `ParameterVersionNotFound`); no labels, policies, tags or
//! descriptions are stored; `AllowedPattern` is not enforced.

use super::json_members::{call_blocking, opt_bool, opt_str, req_str, serialization};
use super::{ApiContext, ApiError, ApiRequest, ApiResult, Service};
use crate::cloud::local::{LOCAL_ACCOUNT_ID, LOCAL_REGION};
use crate::model::ParameterType;
use crate::store::{StoreError, StoredParameter};
use base64::Engine;
use serde_json::{json, Value};

/// The `ssm` service.
pub struct Ssm;

const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Every operation this service answers.
pub const OPERATIONS: &[&str] = &[
    "PutParameter",
    "GetParameter",
    "GetParameters",
    "GetParametersByPath",
    "DeleteParameter",
    "DeleteParameters",
    "DescribeParameters",
];

/// Longest name SSM takes.
const MAX_NAME: usize = 2048;
/// Most levels of a hierarchical name (`/a/b/…`).
const MAX_LEVELS: usize = 15;
/// Longest value of a Standard-tier parameter; Advanced takes 8 KB.
const STANDARD_VALUE: usize = 4096;
const ADVANCED_VALUE: usize = 8192;

#[async_trait::async_trait]
impl Service for Ssm {
    fn operation(&self, request: &ApiRequest) -> Result<&'static str, ApiError> {
        super::aws_json_operation(request, "ssm", "AmazonSSM.", OPERATIONS)
    }

    async fn call(
        &self,
        ctx: &ApiContext,
        operation: &'static str,
        request: ApiRequest,
    ) -> ApiResult {
        // SQLite and the AEAD are blocking work: off the runtime's worker threads.
        call_blocking(ctx, operation, request, CONTENT_TYPE, dispatch).await
    }
}

/// Runs one operation on the request's JSON body.
fn dispatch(ctx: &ApiContext, operation: &str, body: &Value) -> Result<Value, ApiError> {
    match operation {
        "PutParameter" => put_parameter(ctx, body),
        "GetParameter" => get_parameter(ctx, body),
        "GetParameters" => get_parameters(ctx, body),
        "GetParametersByPath" => get_parameters_by_path(ctx, body),
        "DeleteParameter" => delete_parameter(ctx, body),
        "DeleteParameters" => delete_parameters(ctx, body),
        "DescribeParameters" => describe_parameters(ctx, body),
        other => Err(ApiError::unknown_operation("ssm", other)),
    }
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(
        400,
        "ParameterNotFound",
        format!("Parameter {name} not found."),
    )
}

fn names_list(body: &Value, max: usize) -> Result<Vec<String>, ApiError> {
    let names = match body.get("Names") {
        Some(Value::Array(a)) => a,
        None | Some(Value::Null) => return Err(ApiError::missing("Names")),
        Some(other) => {
            return Err(serialization(format!(
                "Names must be a list, found {other}"
            )))
        }
    };
    if names.is_empty() || names.len() > max {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value at 'names' failed to satisfy constraint: Member must have length between 1 and {max}"
        )));
    }
    names
        .iter()
        .map(|n| {
            n.as_str()
                .map(str::to_string)
                .ok_or_else(|| serialization("Names must be a list of strings"))
        })
        .collect()
}

fn max_results(body: &Value, max: u64) -> Result<usize, ApiError> {
    match body.get("MaxResults") {
        None | Some(Value::Null) => Ok(max as usize),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) if (1..=max).contains(&v) => Ok(v as usize),
            _ => Err(ApiError::validation(format!(
                "1 validation error detected: Value '{n}' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and {max}"
            ))),
        },
        Some(other) => Err(serialization(format!("MaxResults must be a number, found {other}"))),
    }
}

/// Checks a name as SSM does.
fn check_name(name: &str) -> Result<(), ApiError> {
    let invalid = |why: &str| {
        ApiError::validation(format!(
            "Parameter name {}: {why}",
            name.chars().take(64).collect::<String>()
        ))
    };
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(invalid(&format!("must be 1 to {MAX_NAME} characters")));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/'))
    {
        return Err(invalid("may hold only a-z, A-Z, 0-9, _ . - and /"));
    }
    let bare = name.trim_start_matches('/').to_ascii_lowercase();
    if bare.starts_with("aws") || bare.starts_with("ssm") {
        return Err(invalid(
            "can't be prefixed with \"aws\" or \"ssm\" (case-insensitive)",
        ));
    }
    if name.contains('/') && !name.starts_with('/') {
        return Err(invalid(
            "a hierarchical name must be fully qualified: start it with /",
        ));
    }
    if name.matches('/').count() > MAX_LEVELS {
        return Err(ApiError::new(
            400,
            "HierarchyLevelLimitExceededException",
            format!("Parameter name {name}: a hierarchy can have at most {MAX_LEVELS} levels"),
        ));
    }
    Ok(())
}

/// A `Name` as clients send it — a name, an ARN, either with a `:version`
/// selector — as (name, selector).
fn parse_reference(reference: &str) -> (String, Option<String>) {
    let reference = match reference.strip_prefix("arn:") {
        Some(_) => match reference.split_once(":parameter") {
            Some((_, rest)) => {
                let rest = rest.trim_start_matches('/');
                if rest.contains('/') {
                    format!("/{rest}")
                } else {
                    rest.to_string()
                }
            }
            None => reference.to_string(),
        },
        None => reference.to_string(),
    };
    match reference.rsplit_once(':') {
        Some((name, selector)) => (name.to_string(), Some(selector.to_string())),
        None => (reference, None),
    }
}

fn arn(name: &str) -> String {
    let path = name.strip_prefix('/').unwrap_or(name);
    format!("arn:aws:ssm:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:parameter/{path}")
}

fn seconds(millis: i64) -> f64 {
    millis as f64 / 1000.0
}

/// One parameter as GetParameter answers it: a SecureString's value is the
/// plaintext with decryption, the sealed blob (base64) without.
fn parameter_json(
    ctx: &ApiContext,
    p: &StoredParameter,
    decrypt: bool,
    selector: Option<&str>,
) -> Result<Value, ApiError> {
    let value = match (p.kind, decrypt) {
        (ParameterType::SecureString, false) => {
            base64::engine::general_purpose::STANDARD.encode(&p.stored)
        }
        _ => ctx.cloud.store().parameter_plaintext(p)?,
    };
    let mut out = json!({
        "Name": p.name,
        "Type": p.kind.as_str(),
        "Value": value,
        "Version": p.version,
        "LastModifiedDate": seconds(p.last_modified),
        "ARN": arn(&p.name),
        "DataType": "text",
    });
    if let Some(selector) = selector {
        out["Selector"] = json!(format!(":{selector}"));
    }
    Ok(out)
}

/// Looks up a reference; `None` if absent. A version selector other than
/// the current version is `ParameterVersionNotFound`.
fn lookup(
    ctx: &ApiContext,
    reference: &str,
) -> Result<Option<(StoredParameter, Option<String>)>, ApiError> {
    let (name, selector) = parse_reference(reference);
    let Some(p) = ctx.cloud.store().stored_parameter(&name)? else {
        return Ok(None);
    };
    if let Some(selector) = &selector {
        match selector.parse::<i64>() {
            Ok(v) if v == p.version => {}
            Ok(_) => {
                return Err(ApiError::new(
                    400,
                    "ParameterVersionNotFound",
                    format!("Systems Manager could not find version {selector} of {name}. jitpilot keeps only the current version ({}).", p.version),
                ))
            }
            Err(_) => {
                return Err(ApiError::new(
                    400,
                    "ParameterVersionNotFound",
                    format!("Systems Manager could not find label {selector} of {name}: jitpilot's parameter store has no labels"),
                ))
            }
        }
    }
    Ok(Some((p, selector)))
}

fn put_parameter(ctx: &ApiContext, body: &Value) -> Result<Value, ApiError> {
    let name = req_str(body, "Name")?;
    check_name(name)?;
    let value = req_str(body, "Value")?;
    let overwrite = opt_bool(body, "Overwrite")?;
    if overwrite && body.get("Tags").is_some_and(|t| !t.is_null()) {
        return Err(ApiError::validation("Invalid request: tags and overwrite can't be used together. To create a parameter with tags, please remove overwrite flag. To update tags for an existing parameter, please use AddTagsToResource or RemoveTagsFromResource."));
    }
    let tier = opt_str(body, "Tier")?.unwrap_or("Standard");
    let limit = match tier {
        "Standard" => STANDARD_VALUE,
        "Advanced" | "Intelligent-Tiering" => ADVANCED_VALUE,
        other => return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{other}' at 'tier' failed to satisfy constraint: Member must satisfy enum value set: [Standard, Advanced, Intelligent-Tiering]"
        ))),
    };
    if value.is_empty() {
        return Err(ApiError::validation("1 validation error detected: Value at 'value' failed to satisfy constraint: Member must have length greater than or equal to 1"));
    }
    if value.chars().count() > limit {
        return Err(ApiError::validation(format!(
            "Standard tier parameters support a maximum parameter value of {STANDARD_VALUE} characters; Advanced, {ADVANCED_VALUE}. This value has {}.",
            value.chars().count()
        )));
    }
    let store = ctx.cloud.store();
    let existing = store.stored_parameter(name)?;
    let kind = match opt_str(body, "Type")? {
        Some(t) => ParameterType::parse(t).ok_or_else(|| {
            ApiError::validation(format!(
                "1 validation error detected: Value '{t}' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [SecureString, StringList, String]"
            ))
        })?,
        None => match &existing {
            Some(p) if overwrite => p.kind,
            _ => return Err(ApiError::validation("A parameter type is required when you create a parameter.")),
        },
    };
    if opt_str(body, "KeyId")?.is_some() && kind != ParameterType::SecureString {
        return Err(ApiError::validation(
            "KeyId is required for SecureString type parameter only.",
        ));
    }
    let version = match store.put_parameter(name, value, kind, overwrite) {
        Ok(v) => v,
        Err(StoreError::AlreadyExists { .. }) => {
            return Err(ApiError::new(
                400,
                "ParameterAlreadyExists",
                "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.",
            ))
        }
        Err(StoreError::Invalid { what, reason }) => return Err(ApiError::validation(format!("{what}: {reason}"))),
        Err(e) => return Err(e.into()),
    };
    Ok(json!({ "Version": version, "Tier": "Standard" }))
}

fn get_parameter(ctx: &ApiContext, body: &Value) -> Result<Value, ApiError> {
    let reference = req_str(body, "Name")?;
    let decrypt = opt_bool(body, "WithDecryption")?;
    let (p, selector) = lookup(ctx, reference)?.ok_or_else(|| not_found(reference))?;
    Ok(json!({ "Parameter": parameter_json(ctx, &p, decrypt, selector.as_deref())? }))
}

fn get_parameters(ctx: &ApiContext, body: &Value) -> Result<Value, ApiError> {
    let names = names_list(body, 10)?;
    let decrypt = opt_bool(body, "WithDecryption")?;
    let mut found = Vec::new();
    let mut invalid = Vec::new();
    for reference in &names {
        match lookup(ctx, reference) {
            Ok(Some((p, selector))) => {
                found.push(parameter_json(ctx, &p, decrypt, selector.as_deref())?)
            }
            Ok(None) => invalid.push(reference.clone()),
            Err(e) if e.code == "ParameterVersionNotFound" => invalid.push(reference.clone()),
            Err(e) => return Err(e),
        }
    }
    Ok(json!({ "Parameters": found, "InvalidParameters": invalid }))
}

/// `NextToken`s are the last name of the previous page, base64.
fn next_token(body: &Value) -> Result<Option<String>, ApiError> {
    let Some(token) = opt_str(body, "NextToken")? else {
        return Ok(None);
    };
    base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::new(
                400,
                "InvalidNextToken",
                "The specified token is not valid; pass the NextToken of the previous answer",
            )
        })
}

fn token_for(name: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(name.as_bytes())
}

fn get_parameters_by_path(ctx: &ApiContext, body: &Value) -> Result<Value, ApiError> {
    let path = req_str(body, "Path")?;
    if !path.starts_with('/') {
        return Err(ApiError::validation(format!(
            "The parameter path {path} must begin with /"
        )));
    }
    let recursive = opt_bool(body, "Recursive")?;
    let decrypt = opt_bool(body, "WithDecryption")?;
    let max = max_results(body, 10)?;
    let after = next_token(body)?;
    let prefix = if path.ends_with('/') {
        path.to_string()
    } else {
        format!("{path}/")
    };
    let store = ctx.cloud.store();
    let names: Vec<String> = store
        .list_parameters()?
        .into_iter()
        .map(|p| p.name)
        .filter(|n| n.starts_with(&prefix) && (recursive || !n[prefix.len()..].contains('/')))
        .filter(|n| after.as_ref().is_none_or(|a| n > a))
        .collect();
    let mut parameters = Vec::new();
    for name in names.iter().take(max) {
        if let Some(p) = store.stored_parameter(name)? {
            parameters.push(parameter_json(ctx, &p, decrypt, None)?);
        }
    }
    let mut answer = json!({ "Parameters": parameters });
    if names.len() > max {
        answer["NextToken"] = json!(token_for(&names[max - 1]));
    }
    Ok(answer)
}

fn delete_parameter(ctx: &ApiContext, body: &Value) -> Result<Value, ApiError> {
    let name = req_str(body, "Name")?;
    if ctx.cloud.store().delete_parameter(name)? {
        Ok(json!({}))
    } else {
        Err(not_found(name))
    }
}

fn delete_parameters(ctx: &ApiContext, body: &Value) -> Result<Value, ApiError> {
    let names = names_list(body, 10)?;
    let deleted = ctx.cloud.store().delete_parameters(&names)?;
    let invalid: Vec<&String> = names.iter().filter(|n| !deleted.contains(n)).collect();
    Ok(json!({ "DeletedParameters": deleted, "InvalidParameters": invalid }))
}

/// One filter of DescribeParameters (`ParameterFilters` or the older `Filters`).
struct Filter {
    key: String,
    option: String,
    values: Vec<String>,
}

fn filters(body: &Value) -> Result<Vec<Filter>, ApiError> {
    let mut out = Vec::new();
    for (field, key_default_option) in [("ParameterFilters", "Equals"), ("Filters", "Equals")] {
        let list = match body.get(field) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(a)) => a,
            Some(other) => {
                return Err(serialization(format!(
                    "{field} must be a list, found {other}"
                )))
            }
        };
        for f in list {
            let key = req_str(f, "Key")?.to_string();
            let option = opt_str(f, "Option")?
                .unwrap_or(key_default_option)
                .to_string();
            let values = match f.get("Values") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(v)) => v
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| serialization("filter Values must be strings"))
                    })
                    .collect::<Result<_, _>>()?,
                Some(other) => {
                    return Err(serialization(format!(
                        "filter Values must be a list, found {other}"
                    )))
                }
            };
            let known = match key.as_str() {
                "Name" => ["Equals", "BeginsWith", "Contains"].contains(&option.as_str()),
                "Type" | "Tier" | "DataType" | "KeyId" => option == "Equals",
                "Path" => ["Recursive", "OneLevel", "Equals"].contains(&option.as_str()),
                _ => {
                    return Err(ApiError::new(400, "InvalidFilterKey", format!(
                        "The filter key {key} is not valid here; use Name, Type, Path, Tier, DataType or KeyId"
                    )))
                }
            };
            if !known {
                return Err(ApiError::new(
                    400,
                    "InvalidFilterOption",
                    format!("The filter option {option} is not valid for key {key}"),
                ));
            }
            if values.is_empty() {
                return Err(ApiError::new(
                    400,
                    "InvalidFilterValue",
                    format!("The filter {key} needs at least one value"),
                ));
            }
            out.push(Filter {
                key,
                option,
                values,
            });
        }
    }
    Ok(out)
}

fn matches(filter: &Filter, name: &str, kind: ParameterType) -> bool {
    filter
        .values
        .iter()
        .any(|v| match (filter.key.as_str(), filter.option.as_str()) {
            ("Name", "BeginsWith") => {
                name.starts_with(v.as_str())
                    || name
                        .trim_start_matches('/')
                        .starts_with(v.trim_start_matches('/'))
            }
            ("Name", "Contains") => name.contains(v.as_str()),
            ("Name", _) => name == v || name.trim_start_matches('/') == v.trim_start_matches('/'),
            ("Type", _) => kind.as_str() == v,
            ("Tier", _) => v == "Standard",
            ("DataType", _) => v == "text",
            ("KeyId", _) => {
                kind == ParameterType::SecureString
                    && (v == "alias/aws/ssm" || v.ends_with("alias/aws/ssm"))
            }
            ("Path", option) => {
                let prefix = if v.ends_with('/') {
                    v.clone()
                } else {
                    format!("{v}/")
                };
                name.starts_with(&prefix)
                    && (option == "Recursive" || !name[prefix.len()..].contains('/'))
            }
            _ => false,
        })
}

fn describe_parameters(ctx: &ApiContext, body: &Value) -> Result<Value, ApiError> {
    let filters = filters(body)?;
    let max = max_results(body, 50)?;
    let after = next_token(body)?;
    let listed: Vec<_> = ctx
        .cloud
        .store()
        .list_parameters()?
        .into_iter()
        .filter(|p| filters.iter().all(|f| matches(f, &p.name, p.kind)))
        .filter(|p| after.as_ref().is_none_or(|a| &p.name > a))
        .collect();
    let page: Vec<Value> = listed
        .iter()
        .take(max)
        .map(|p| {
            let mut meta = json!({
                "Name": p.name,
                "ARN": arn(&p.name),
                "Type": p.kind.as_str(),
                "LastModifiedDate": seconds(p.last_modified),
                "LastModifiedUser": format!("arn:aws:iam::{LOCAL_ACCOUNT_ID}:user/jitpilot"),
                "Version": p.version,
                "Tier": "Standard",
                "Policies": [],
                "DataType": "text",
            });
            if p.kind == ParameterType::SecureString {
                meta["KeyId"] = json!("alias/aws/ssm");
            }
            meta
        })
        .collect();
    let mut answer = json!({ "Parameters": page });
    if listed.len() > max {
        answer["NextToken"] = json!(token_for(&listed[max - 1].name));
    }
    Ok(answer)
}

#[cfg(test)]
#[path = "ssm_tests.rs"]
mod tests;
