//! Reading a CloudFormation template: its Parameters, Resources and Outputs,
//! checked for shape before anything else looks at them.

use super::StackError;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The resource types the local engine provisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ResourceKind {
    TopicRule,
    Policy,
    Function,
    Permission,
    Role,
    Table,
}

impl ResourceKind {
    const ALL: [ResourceKind; 6] = [
        ResourceKind::TopicRule,
        ResourceKind::Policy,
        ResourceKind::Function,
        ResourceKind::Permission,
        ResourceKind::Role,
        ResourceKind::Table,
    ];

    /// CloudFormation's type name.
    pub(super) fn type_name(self) -> &'static str {
        match self {
            ResourceKind::TopicRule => "AWS::IoT::TopicRule",
            ResourceKind::Policy => "AWS::IoT::Policy",
            ResourceKind::Function => "AWS::Lambda::Function",
            ResourceKind::Permission => "AWS::Lambda::Permission",
            ResourceKind::Role => "AWS::IAM::Role",
            ResourceKind::Table => "AWS::DynamoDB::Table",
        }
    }

    /// Every type name the engine provisions.
    pub(super) fn supported() -> Vec<&'static str> {
        Self::ALL.iter().map(|k| k.type_name()).collect()
    }

    pub(super) fn parse(type_name: &str) -> Option<ResourceKind> {
        Self::ALL.into_iter().find(|k| k.type_name() == type_name)
    }

    /// The `Fn::GetAtt` attributes the local engine can answer.
    pub(super) fn attributes(self) -> &'static [&'static str] {
        match self {
            ResourceKind::TopicRule | ResourceKind::Function | ResourceKind::Table => &["Arn"],
            ResourceKind::Policy => &["Arn", "Id"],
            ResourceKind::Role => &["Arn", "RoleId"],
            ResourceKind::Permission => &[],
        }
    }

    /// The property naming the resource, when the template may choose it.
    pub(super) fn name_property(self) -> Option<&'static str> {
        match self {
            ResourceKind::TopicRule => Some("RuleName"),
            ResourceKind::Policy => Some("PolicyName"),
            ResourceKind::Function => Some("FunctionName"),
            ResourceKind::Role => Some("RoleName"),
            ResourceKind::Table => Some("TableName"),
            ResourceKind::Permission => None,
        }
    }
}

/// The type of a template parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ParamKind {
    String,
    Number,
    /// `CommaDelimitedList`: `Ref` gives a list.
    List,
}

#[derive(Debug, Clone)]
pub(super) struct ParamDef {
    pub kind: ParamKind,
    pub default: Option<String>,
    pub allowed: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub(super) struct ResourceDef {
    pub logical_id: String,
    pub kind: ResourceKind,
    /// The `Properties` object (unresolved).
    pub properties: Value,
    /// The `Metadata` object, `{}` when absent.
    pub metadata: Map<String, Value>,
    pub depends_on: Vec<String>,
}

#[derive(Debug, Clone)]
pub(super) struct Template {
    pub parameters: BTreeMap<String, ParamDef>,
    pub resources: BTreeMap<String, ResourceDef>,
    /// Output name → its `Value` expression (unresolved).
    pub outputs: BTreeMap<String, Value>,
}

fn invalid(msg: impl Into<String>) -> StackError {
    StackError::Template(msg.into())
}

/// The error for one resource's field: "resource X (Type), Field: problem".
pub(super) fn resource_error(
    def: &ResourceDef,
    field: &str,
    problem: impl std::fmt::Display,
) -> StackError {
    invalid(format!(
        "resource {} ({}), {field}: {problem}",
        def.logical_id,
        def.kind.type_name()
    ))
}

/// Parses and checks the template's shape. Refuses what the local engine
/// cannot do faithfully (unknown types, Conditions) instead of skipping it.
pub(super) fn parse(text: &str) -> Result<Template, StackError> {
    let doc: Value = serde_json::from_str(text).map_err(|e| {
        invalid(format!(
            "the template is not valid JSON: {e}; fix cfn/cert-rotation.json"
        ))
    })?;
    let doc = doc
        .as_object()
        .ok_or_else(|| invalid("the template must be a JSON object with Resources"))?;
    for unsupported in ["Conditions", "Transform", "Mappings"] {
        if doc.contains_key(unsupported) {
            return Err(invalid(format!(
                "{unsupported} is not supported by the local stack engine; remove it from the template"
            )));
        }
    }
    let parameters = match doc.get("Parameters") {
        None => BTreeMap::new(),
        Some(Value::Object(params)) => params
            .iter()
            .map(|(name, def)| Ok((name.clone(), parse_param(name, def)?)))
            .collect::<Result<_, StackError>>()?,
        Some(_) => return Err(invalid("Parameters must be an object")),
    };
    let resources = match doc.get("Resources") {
        Some(Value::Object(list)) if !list.is_empty() => list,
        _ => {
            return Err(invalid(
                "Resources is missing or empty; a template needs at least one resource",
            ))
        }
    };
    let resources = resources
        .iter()
        .map(|(id, def)| Ok((id.clone(), parse_resource(id, def, &parameters)?)))
        .collect::<Result<BTreeMap<_, _>, StackError>>()?;
    let outputs = match doc.get("Outputs") {
        None => BTreeMap::new(),
        Some(Value::Object(outputs)) => outputs
            .iter()
            .map(|(name, out)| match out.get("Value") {
                Some(value) => Ok((name.clone(), value.clone())),
                None => Err(invalid(format!("output {name}: Value is missing"))),
            })
            .collect::<Result<_, StackError>>()?,
        Some(_) => return Err(invalid("Outputs must be an object")),
    };
    Ok(Template {
        parameters,
        resources,
        outputs,
    })
}

fn parse_param(name: &str, def: &Value) -> Result<ParamDef, StackError> {
    let def = def
        .as_object()
        .ok_or_else(|| invalid(format!("parameter {name} must be an object with Type")))?;
    let kind = match def.get("Type").and_then(Value::as_str) {
        Some("String") => ParamKind::String,
        Some("Number") => ParamKind::Number,
        Some("CommaDelimitedList") | Some("List<Number>") => ParamKind::List,
        // AWS-specific types (AWS::EC2::..., SSM parameter types) hold strings.
        Some(other) if other.starts_with("AWS::") => ParamKind::String,
        Some(other) => {
            return Err(invalid(format!(
                "parameter {name}, Type: `{other}` is not a parameter type"
            )))
        }
        None => return Err(invalid(format!("parameter {name}, Type: missing"))),
    };
    let default = def
        .get("Default")
        .map(scalar_text)
        .transpose()
        .map_err(|found| {
            invalid(format!(
                "parameter {name}, Default: must be a string or number, found {found}"
            ))
        })?;
    let allowed = match def.get("AllowedValues") {
        None => None,
        Some(Value::Array(list)) => Some(
            list.iter()
                .map(scalar_text)
                .collect::<Result<_, _>>()
                .map_err(|found| {
                    invalid(format!(
                        "parameter {name}, AllowedValues: {found} is not a string"
                    ))
                })?,
        ),
        Some(_) => {
            return Err(invalid(format!(
                "parameter {name}, AllowedValues: must be a list"
            )))
        }
    };
    Ok(ParamDef {
        kind,
        default,
        allowed,
    })
}

/// A parameter value as text (CloudFormation parameters are strings).
pub(super) fn scalar_text(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(other.to_string()),
    }
}

fn parse_resource(
    id: &str,
    def: &Value,
    parameters: &BTreeMap<String, ParamDef>,
) -> Result<ResourceDef, StackError> {
    let def = def.as_object().ok_or_else(|| {
        invalid(format!(
            "resource {id}: must be an object with Type and Properties"
        ))
    })?;
    if parameters.contains_key(id) {
        return Err(invalid(format!(
            "resource {id}: a parameter has the same name; rename one"
        )));
    }
    let type_name = match def.get("Type") {
        Some(Value::String(t)) => t,
        _ => {
            return Err(invalid(format!(
                "resource {id}, Type: missing or not a string"
            )))
        }
    };
    let kind = ResourceKind::parse(type_name).ok_or_else(|| {
        let known: Vec<_> = ResourceKind::ALL.iter().map(|k| k.type_name()).collect();
        invalid(format!(
            "resource {id}, Type: {type_name} is not supported by the local stack engine (it provisions {})",
            known.join(", ")
        ))
    })?;
    if def.contains_key("Condition") {
        return Err(invalid(format!(
            "resource {id}, Condition: conditions are not supported locally"
        )));
    }
    let properties = match def.get("Properties") {
        None => Value::Object(Map::new()),
        Some(p @ Value::Object(_)) => p.clone(),
        Some(_) => {
            return Err(invalid(format!(
                "resource {id}, Properties: must be an object"
            )))
        }
    };
    let metadata = match def.get("Metadata") {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(invalid(format!(
                "resource {id}, Metadata: must be an object"
            )))
        }
    };
    let depends_on = match def.get("DependsOn") {
        None => Vec::new(),
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(list)) => list
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                invalid(format!(
                    "resource {id}, DependsOn: must hold resource names"
                ))
            })?,
        Some(_) => {
            return Err(invalid(format!(
                "resource {id}, DependsOn: must be a name or a list of names"
            )))
        }
    };
    Ok(ResourceDef {
        logical_id: id.to_string(),
        kind,
        properties,
        metadata,
        depends_on,
    })
}

/// Parameter values for a deployment: defaults overridden by `given`.
/// Every value is a string, or a list of strings for `CommaDelimitedList`.
pub(super) fn resolve_parameters(
    template: &Template,
    given: &Map<String, Value>,
) -> Result<BTreeMap<String, Value>, StackError> {
    if let Some(unknown) = given.keys().find(|k| !template.parameters.contains_key(*k)) {
        let known: Vec<_> = template.parameters.keys().map(String::as_str).collect();
        return Err(invalid(format!(
            "parameter {unknown} does not exist in the template (it has: {})",
            known.join(", ")
        )));
    }
    let mut values = BTreeMap::new();
    for (name, def) in &template.parameters {
        let text = match given.get(name) {
            Some(v) => scalar_text(v).map_err(|found| {
                invalid(format!(
                    "parameter {name}: must be a string or number, found {found}"
                ))
            })?,
            None => def.default.clone().ok_or_else(|| {
                invalid(format!(
                    "parameter {name} has no Default and no value was given; pass it"
                ))
            })?,
        };
        if let Some(allowed) = &def.allowed {
            if !allowed.contains(&text) {
                return Err(invalid(format!(
                    "parameter {name}: `{text}` is not one of its AllowedValues ({})",
                    allowed.join(", ")
                )));
            }
        }
        let value = match def.kind {
            ParamKind::String => Value::String(text),
            ParamKind::Number => {
                if text.trim().parse::<f64>().is_err() {
                    return Err(invalid(format!(
                        "parameter {name}: `{text}` is not a Number"
                    )));
                }
                Value::String(text)
            }
            ParamKind::List => Value::Array(
                text.split(',')
                    .map(|s| Value::String(s.trim().to_string()))
                    .collect(),
            ),
        };
        values.insert(name.clone(), value);
    }
    Ok(values)
}
