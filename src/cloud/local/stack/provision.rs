//! Per resource type: its name (physical id), its attributes, what its
//! resolved properties mean for the store, and creating/updating/deleting it.

use super::template::{resource_error, ResourceDef, ResourceKind};
use super::StackError;
use crate::cloud::local::policy::CompiledPolicy;
use crate::cloud::local::rules::{RuleAction, RuleSql};
use crate::cloud::local::{LOCAL_ACCOUNT_ID, LOCAL_REGION};
use crate::model::{Function, TopicRule};
use crate::store::{Store, StoreResult};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The `Metadata` key binding a function to a handler compiled into jitpilot.
pub const BUILTIN_METADATA: &str = "jitpilot:builtin";

/// `len` uppercase hex characters derived from `parts`: the "random" part
/// of generated names, stable so a redeploy finds the same resources.
pub(super) fn stable_suffix(parts: &[&str], len: usize) -> String {
    let digest = Sha256::digest(parts.join("/").as_bytes());
    let mut text = hex::encode_upper(digest);
    text.truncate(len);
    text
}

/// `Fn::GetAtt` answers; a pure function of the type and name, so outputs
/// can be recomputed from the recorded resources.
pub(super) fn attribute(kind: ResourceKind, physical_id: &str, attr: &str) -> Option<String> {
    let (r, a) = (LOCAL_REGION, LOCAL_ACCOUNT_ID);
    Some(match (kind, attr) {
        (ResourceKind::Policy, "Arn") => format!("arn:aws:iot:{r}:{a}:policy/{physical_id}"),
        (ResourceKind::Policy, "Id") => physical_id.to_string(),
        (ResourceKind::TopicRule, "Arn") => format!("arn:aws:iot:{r}:{a}:rule/{physical_id}"),
        (ResourceKind::Function, "Arn") => format!("arn:aws:lambda:{r}:{a}:function:{physical_id}"),
        (ResourceKind::Role, "Arn") => format!("arn:aws:iam::{a}:role/{physical_id}"),
        (ResourceKind::Role, "RoleId") => format!("AROA{}", stable_suffix(&[physical_id], 17)),
        (ResourceKind::Table, "Arn") => format!("arn:aws:dynamodb:{r}:{a}:table/{physical_id}"),
        _ => return None,
    })
}

/// The resource's name: its name property when the template sets one,
/// otherwise `<stack>-<logicalId>-<SUFFIX>` as CloudFormation generates
/// (with `_` for topic rules, whose names allow no `-`), at most 64 characters.
pub(super) fn physical_id(
    stack: &str,
    def: &ResourceDef,
    props: &Value,
) -> Result<String, StackError> {
    if let Some(prop) = def.kind.name_property() {
        match props.get(prop) {
            Some(Value::String(name)) if !name.is_empty() => return Ok(name.clone()),
            Some(other) => {
                return Err(resource_error(
                    def,
                    &format!("Properties.{prop}"),
                    format!("must be a non-empty string, found {other}"),
                ))
            }
            None => {}
        }
    }
    let separator = if def.kind == ResourceKind::TopicRule {
        '_'
    } else {
        '-'
    };
    let suffix = stable_suffix(&[stack, &def.logical_id], 12);
    let mut prefix: String = format!("{stack}{separator}{}", def.logical_id)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                separator
            }
        })
        .collect();
    prefix.truncate(64 - 1 - suffix.len());
    Ok(format!("{prefix}{separator}{suffix}"))
}

/// Where a function's own code is: an object of the local S3, uploaded
/// before the deploy (the sample's `deploy_cf.bash` runs `aws s3 cp`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct CodeSource {
    pub bucket: String,
    pub key: String,
}

/// What a resource's resolved properties ask of the store.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Desired {
    Policy {
        name: String,
        document: String,
    },
    Rule(TopicRule),
    /// A function, and where its own code comes from when it runs code
    /// instead of a built-in (`Code.S3Bucket`/`S3Key`, as the sample's stack).
    Function(Function, Option<CodeSource>),
    Table {
        name: String,
        hash_key: String,
    },
    /// IAM roles and Lambda permissions: recorded as stack resources only,
    /// since the local cloud has no IAM to enforce them.
    Record,
}

fn string_prop<'a>(def: &ResourceDef, props: &'a Value, path: &str) -> Result<&'a str, StackError> {
    let mut at = props;
    for key in path.split('.') {
        at = at
            .get(key)
            .ok_or_else(|| resource_error(def, &format!("Properties.{path}"), "is required"))?;
    }
    at.as_str().filter(|s| !s.is_empty()).ok_or_else(|| {
        resource_error(
            def,
            &format!("Properties.{path}"),
            format!("must be a non-empty string, found {at}"),
        )
    })
}

fn require(def: &ResourceDef, props: &Value, key: &str) -> Result<(), StackError> {
    match props.get(key) {
        Some(_) => Ok(()),
        None => Err(resource_error(
            def,
            &format!("Properties.{key}"),
            "is required",
        )),
    }
}

/// A JSON document property: an object, or a string holding one.
fn document_text(def: &ResourceDef, props: &Value, key: &str) -> Result<String, StackError> {
    match props.get(key) {
        Some(Value::String(text)) => Ok(text.clone()),
        Some(doc @ Value::Object(_)) => Ok(doc.to_string()),
        Some(other) => Err(resource_error(
            def,
            &format!("Properties.{key}"),
            format!("must be a JSON object, found {other}"),
        )),
        None => Err(resource_error(
            def,
            &format!("Properties.{key}"),
            "is required",
        )),
    }
}

/// CloudFormation booleans may arrive as `true` or `"true"`.
fn bool_prop(
    def: &ResourceDef,
    value: Option<&Value>,
    path: &str,
    default: bool,
) -> Result<bool, StackError> {
    match value {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(other) => Err(resource_error(
            def,
            path,
            format!("must be true or false, found {other}"),
        )),
    }
}

/// Checks a resource's resolved properties and turns them into what the
/// store should hold. Every check of the deployment happens here or before,
/// so nothing is created from a template that would fail half-way.
pub(super) fn desired(
    def: &ResourceDef,
    props: &Value,
    physical_id: &str,
) -> Result<Desired, StackError> {
    match def.kind {
        ResourceKind::Policy => {
            let document = document_text(def, props, "PolicyDocument")?;
            CompiledPolicy::parse(physical_id, &document)
                .map_err(|e| resource_error(def, "Properties.PolicyDocument", e))?;
            Ok(Desired::Policy {
                name: physical_id.to_string(),
                document,
            })
        }
        ResourceKind::TopicRule => {
            let sql = string_prop(def, props, "TopicRulePayload.Sql")?;
            RuleSql::parse(sql)
                .map_err(|e| resource_error(def, "Properties.TopicRulePayload.Sql", e))?;
            let payload = &props["TopicRulePayload"];
            let actions = payload.get("Actions").ok_or_else(|| {
                resource_error(def, "Properties.TopicRulePayload.Actions", "is required")
            })?;
            RuleAction::parse_all(physical_id, actions)
                .map_err(|e| resource_error(def, "Properties.TopicRulePayload.Actions", e))?;
            let path = "Properties.TopicRulePayload.RuleDisabled";
            let disabled = bool_prop(def, payload.get("RuleDisabled"), path, false)?;
            Ok(Desired::Rule(TopicRule {
                name: physical_id.to_string(),
                sql: sql.to_string(),
                actions: actions.clone(),
                enabled: !disabled,
            }))
        }
        ResourceKind::Function => {
            require(def, props, "Code")?;
            let role_arn = string_prop(def, props, "Role")?.to_string();
            // jitpilot's own template binds the function to a built-in; any
            // other (the sample's) names its Lambda handler and runs its code.
            let (handler, code) = match def.metadata.get(BUILTIN_METADATA) {
                Some(Value::String(h)) if !h.is_empty() => (h.clone(), None),
                Some(other) => {
                    return Err(resource_error(
                        def,
                        &format!("Metadata.{BUILTIN_METADATA}"),
                        format!(
                            "must name a built-in function (e.g. \"cert-rotation\"), found {other}"
                        ),
                    ))
                }
                None => {
                    let handler = string_prop(def, props, "Handler")?.to_string();
                    string_prop(def, props, "Runtime")?;
                    (handler, Some(code_source(def, props)?))
                }
            };
            let mut environment = Map::new();
            if let Some(vars) = props.get("Environment").and_then(|e| e.get("Variables")) {
                let vars = vars.as_object().ok_or_else(|| {
                    resource_error(def, "Properties.Environment.Variables", "must be an object")
                })?;
                for (k, v) in vars {
                    let text = super::template::scalar_text(v).map_err(|found| {
                        resource_error(
                            def,
                            &format!("Properties.Environment.Variables.{k}"),
                            format!("must be a string, found {found}"),
                        )
                    })?;
                    environment.insert(k.clone(), Value::String(text));
                }
            }
            Ok(Desired::Function(
                Function {
                    name: physical_id.to_string(),
                    arn: attribute(ResourceKind::Function, physical_id, "Arn").unwrap_or_default(),
                    handler,
                    role_arn,
                    environment,
                },
                code,
            ))
        }
        ResourceKind::Table => {
            let keys = props
                .get("KeySchema")
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    resource_error(
                        def,
                        "Properties.KeySchema",
                        "is required: a list with one HASH key",
                    )
                })?;
            let mut hash_key = None;
            for (i, key) in keys.iter().enumerate() {
                let field = format!("Properties.KeySchema[{i}]");
                let name = key.get("AttributeName").and_then(Value::as_str);
                match (key.get("KeyType").and_then(Value::as_str), name) {
                    (Some("HASH"), Some(name)) if hash_key.is_none() => {
                        hash_key = Some(name.to_string())
                    }
                    (Some("RANGE"), _) => {
                        return Err(resource_error(
                            def,
                            &field,
                            "RANGE keys are not supported locally; use a HASH key only",
                        ))
                    }
                    _ => {
                        return Err(resource_error(
                            def,
                            &field,
                            "must be one {\"AttributeName\": ..., \"KeyType\": \"HASH\"}",
                        ))
                    }
                }
            }
            let hash_key = hash_key
                .ok_or_else(|| resource_error(def, "Properties.KeySchema", "needs a HASH key"))?;
            if let Some(defs) = props.get("AttributeDefinitions").and_then(Value::as_array) {
                let defined = defs.iter().any(|d| {
                    d.get("AttributeName").and_then(Value::as_str) == Some(hash_key.as_str())
                });
                if !defined {
                    return Err(resource_error(
                        def,
                        "Properties.AttributeDefinitions",
                        format!("must define the key attribute {hash_key}"),
                    ));
                }
            }
            Ok(Desired::Table {
                name: physical_id.to_string(),
                hash_key,
            })
        }
        ResourceKind::Role => {
            document_text(def, props, "AssumeRolePolicyDocument")?;
            Ok(Desired::Record)
        }
        ResourceKind::Permission => {
            for key in ["Action", "FunctionName", "Principal"] {
                string_prop(def, props, key)?;
            }
            Ok(Desired::Record)
        }
    }
}

/// `Code` of a function that runs its own code: `S3Bucket` and `S3Key`
/// (inline `ZipFile` source and container images are not run locally).
fn code_source(def: &ResourceDef, props: &Value) -> Result<CodeSource, StackError> {
    let code = &props["Code"];
    if code.get("ZipFile").is_some() || code.get("ImageUri").is_some() {
        return Err(resource_error(
            def,
            "Properties.Code",
            "only S3Bucket and S3Key are run locally (inline ZipFile code and ImageUri are not): upload the zip with `aws s3 cp` and name it there",
        ));
    }
    Ok(CodeSource {
        bucket: string_prop(def, props, "Code.S3Bucket")?.to_string(),
        key: string_prop(def, props, "Code.S3Key")?.to_string(),
    })
}

/// Checks, before anything is touched, that a function's code is where
/// its template says (CloudFormation fails the resource with S3's
/// `NoSuchKey`; here nothing is created).
pub(super) fn check_code(
    store: &Store,
    logical_id: &str,
    desired: &Desired,
) -> Result<(), StackError> {
    if let Desired::Function(_, Some(code)) = desired {
        if store.get_object(&code.bucket, &code.key)?.is_none() {
            return Err(StackError::Template(format!(
                "resource {logical_id} (AWS::Lambda::Function), Properties.Code: s3://{}/{} does not exist (S3 Error Code: NoSuchKey); upload the function's zip there first (`aws s3 cp FUNCTION.zip s3://{}/{}`). Nothing was changed",
                code.bucket, code.key, code.bucket, code.key
            )));
        }
    }
    Ok(())
}

/// Copies a function's zip from the local S3 into its package (what
/// `UpdateFunctionCode` stores), unless the package already holds it: the
/// local Lambda runtime then runs it.
fn load_code(store: &Store, function: &Function, code: &CodeSource) -> StoreResult<()> {
    let missing = || crate::store::StoreError::NotFound {
        kind: "S3 object",
        name: format!("s3://{}/{}", code.bucket, code.key),
    };
    let object = store
        .get_object(&code.bucket, &code.key)?
        .ok_or_else(missing)?;
    let (_, zip) = store
        .read_object(&object, 0, object.size)?
        .ok_or_else(missing)?;
    let sha = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&zip))
    };
    let current = store.function_package(&function.name)?;
    if current.and_then(|p| p.code_sha256).as_deref() == Some(sha.as_str()) {
        return Ok(());
    }
    store.put_function_code(&function.name, &zip, &sha)?;
    Ok(())
}

/// True when something named `physical_id` of this type is already in the store.
pub(super) fn exists(store: &Store, kind: ResourceKind, physical_id: &str) -> StoreResult<bool> {
    Ok(match kind {
        ResourceKind::Policy => store.get_policy(physical_id)?.is_some(),
        ResourceKind::TopicRule => store
            .list_topic_rules()?
            .iter()
            .any(|r| r.name == physical_id),
        ResourceKind::Function => store.get_function(physical_id)?.is_some(),
        ResourceKind::Table => store.table_schema(physical_id)?.is_some(),
        ResourceKind::Role | ResourceKind::Permission => false,
    })
}

/// How many certificates a policy is attached to (0 for other types): a
/// policy in use cannot be deleted.
pub(super) fn attachments(
    store: &Store,
    kind: ResourceKind,
    physical_id: &str,
) -> StoreResult<usize> {
    match kind {
        ResourceKind::Policy => Ok(store.list_policy_targets(physical_id)?.len()),
        _ => Ok(0),
    }
}

/// The handler a function is deployed with, to notice a changed `Metadata`.
pub(super) fn deployed_handler(store: &Store, desired: &Desired) -> StoreResult<Option<String>> {
    match desired {
        Desired::Function(f, _) => Ok(store.get_function(&f.name)?.map(|f| f.handler)),
        _ => Ok(None),
    }
}

/// Creates or updates the resource in the store.
pub(super) fn apply(store: &Store, desired: &Desired) -> StoreResult<()> {
    match desired {
        Desired::Policy { name, document } => match store.get_policy(name)? {
            Some(current) if current.document == *document => Ok(()),
            // A changed document becomes the policy's new default version, as on AWS.
            Some(_) => store.update_policy(name, document).map(|_| ()),
            None => store.create_policy(name, document).map(|_| ()),
        },
        Desired::Rule(rule) => store.put_topic_rule(rule),
        Desired::Function(function, code) => {
            store.put_function(function)?;
            match code {
                Some(code) => load_code(store, function, code),
                None => Ok(()),
            }
        }
        Desired::Table { name, hash_key } => store.create_table(name, hash_key),
        Desired::Record => Ok(()),
    }
}

/// Deletes the resource from the store; absent is fine (teardown is retry-safe).
pub(super) fn delete(store: &Store, kind: ResourceKind, physical_id: &str) -> StoreResult<()> {
    match kind {
        ResourceKind::Policy => store.delete_policy(physical_id).map(|_| ()),
        ResourceKind::TopicRule => store.delete_topic_rule(physical_id).map(|_| ()),
        ResourceKind::Function => store.delete_function(physical_id).map(|_| ()),
        ResourceKind::Table => store.delete_table(physical_id).map(|_| ()),
        ResourceKind::Role | ResourceKind::Permission => Ok(()),
    }
}
