//! What a template declares, read without interpreting it: its description,
//! parameters, resource types and output descriptions — what CloudFormation's
//! `GetTemplateSummary`/`ValidateTemplate` answer and what its API checks
//! synchronously (parameter values, capabilities) before a stack operation
//! starts. Interpreting the resources is the engine's job ([`super::deploy`]):
//! a template this module accepts may still be refused there, and that
//! refusal is recorded as a failed stack with events naming the cause.

use serde_json::{Map, Value};

/// A template parameter as declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterSummary {
    pub name: String,
    /// `String`, `Number`, `CommaDelimitedList`, …
    pub kind: String,
    pub default: Option<String>,
    pub description: Option<String>,
    pub no_echo: bool,
    pub allowed_values: Vec<String>,
}

/// A template, as declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSummary {
    pub description: Option<String>,
    /// Sorted by name.
    pub parameters: Vec<ParameterSummary>,
    /// `(logical id, type)` of every resource.
    pub resources: Vec<(String, String)>,
    /// Output name → its description.
    pub output_descriptions: Map<String, Value>,
}

/// The IAM resource types for which CloudFormation asks for a capability.
const IAM_TYPES: [&str; 7] = [
    "AWS::IAM::Role",
    "AWS::IAM::User",
    "AWS::IAM::Group",
    "AWS::IAM::Policy",
    "AWS::IAM::ManagedPolicy",
    "AWS::IAM::InstanceProfile",
    "AWS::IAM::AccessKey",
];

impl TemplateSummary {
    /// The capability the template needs acknowledged, as CloudFormation
    /// asks: `CAPABILITY_NAMED_IAM` for IAM resources with custom names,
    /// `CAPABILITY_IAM` for other IAM resources, `None` otherwise.
    pub fn required_capability(&self, template: &Value) -> Option<&'static str> {
        let mut needed = None;
        for (id, kind) in &self.resources {
            if !IAM_TYPES.contains(&kind.as_str()) {
                continue;
            }
            let props = &template["Resources"][id]["Properties"];
            let named = ["RoleName", "UserName", "GroupName", "ManagedPolicyName"]
                .iter()
                .any(|p| props.get(*p).is_some());
            if named {
                return Some("CAPABILITY_NAMED_IAM");
            }
            needed = Some("CAPABILITY_IAM");
        }
        needed
    }

    /// The resource types, each once, sorted.
    pub fn resource_types(&self) -> Vec<String> {
        let mut types: Vec<String> = self.resources.iter().map(|(_, t)| t.clone()).collect();
        types.sort();
        types.dedup();
        types
    }
}

/// Reads `text` as a JSON template. Errors are CloudFormation's
/// "Template format error" messages: the text is not JSON, not an object,
/// or has no Resources.
pub fn summarize(text: &str) -> Result<(TemplateSummary, Value), String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| {
        format!("Template format error: JSON not well-formed ({e}); jitpilot's local cloud reads JSON templates only")
    })?;
    let Some(obj) = doc.as_object() else {
        return Err("Template format error: the template must be a JSON object".into());
    };
    let resources = match obj.get("Resources") {
        Some(Value::Object(list)) if !list.is_empty() => {
            list.iter()
                .map(|(id, def)| {
                    let kind = def.get("Type").and_then(Value::as_str).ok_or_else(|| {
                        format!("Template format error: resource {id} has no Type")
                    })?;
                    Ok((id.clone(), kind.to_string()))
                })
                .collect::<Result<Vec<_>, String>>()?
        }
        _ => {
            return Err(
                "Template format error: At least one Resources member must be defined.".into(),
            )
        }
    };
    let parameters = match obj.get("Parameters") {
        None => Vec::new(),
        Some(Value::Object(params)) => params
            .iter()
            .map(|(name, def)| parameter(name, def))
            .collect::<Result<Vec<_>, String>>()?,
        Some(_) => return Err("Template format error: Parameters must be an object".into()),
    };
    let output_descriptions = match obj.get("Outputs") {
        Some(Value::Object(outputs)) => outputs
            .iter()
            .filter_map(|(name, o)| Some((name.clone(), o.get("Description")?.clone())))
            .collect(),
        _ => Map::new(),
    };
    let summary = TemplateSummary {
        description: obj
            .get("Description")
            .and_then(Value::as_str)
            .map(str::to_string),
        parameters,
        resources,
        output_descriptions,
    };
    Ok((summary, doc))
}

fn text(value: &Value) -> Option<String> {
    super::template::scalar_text(value).ok()
}

fn parameter(name: &str, def: &Value) -> Result<ParameterSummary, String> {
    let kind = def
        .get("Type")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("Template format error: parameter {name} has no Type"))?;
    Ok(ParameterSummary {
        name: name.to_string(),
        kind: kind.to_string(),
        default: def.get("Default").and_then(text),
        description: def
            .get("Description")
            .and_then(Value::as_str)
            .map(str::to_string),
        no_echo: def.get("NoEcho").and_then(text).as_deref() == Some("true"),
        allowed_values: def
            .get("AllowedValues")
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(text).collect())
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_template_declares_its_parameters_types_and_iam() {
        let (summary, doc) = summarize(super::super::TEMPLATE).unwrap();
        assert!(summary.parameters.iter().any(|p| p.name == "CodeBucket"
            && p.kind == "String"
            && p.default.as_deref() == Some("jitpilot-artifacts")));
        assert!(summary
            .resource_types()
            .contains(&"AWS::IoT::TopicRule".to_string()));
        // Its roles take generated names.
        assert_eq!(summary.required_capability(&doc), Some("CAPABILITY_IAM"));
    }

    #[test]
    fn format_errors_say_what_is_wrong() {
        assert!(summarize("Resources: {}").unwrap_err().contains("JSON"));
        assert!(summarize("[1]").unwrap_err().contains("object"));
        assert!(summarize(r#"{"Resources": {}}"#)
            .unwrap_err()
            .contains("At least one Resources member"));
        assert!(summarize(r#"{"Resources": {"A": {}}}"#)
            .unwrap_err()
            .contains("A has no Type"));
        let (s, doc) =
            summarize(r#"{"Resources": {"R": {"Type": "AWS::IAM::Role", "Properties": {}}}}"#)
                .unwrap();
        assert_eq!(s.required_capability(&doc), Some("CAPABILITY_IAM"));
    }
}
