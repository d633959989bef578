//! What an emulator (moto's server) lacks, bridged in the open.
//!
//! moto's CloudFormation does not implement `AWS::IoT::TopicRule`: it skips
//! those resources and then rejects `Fn::GetAtt` on them. With an emulator
//! endpoint (`--endpoint-url` on loopback) deploy therefore sends a copy of
//! the template without the rules — every `Fn::GetAtt [rule, Arn]` replaced
//! by the rule's ARN, written as `Fn::Sub` — and creates the same rules
//! through the IoT API (`CreateTopicRule`, same SQL, same Lambda action).
//! Against AWS the template is sent exactly as it is in `cfn/`.

use serde_json::{json, Map, Value};

/// The CloudFormation type emulators skip.
pub const TOPIC_RULE_TYPE: &str = "AWS::IoT::TopicRule";

/// A topic rule taken out of the template, to be created through the API.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractedRule {
    pub logical_id: String,
    pub name: String,
    pub sql: String,
    pub description: Option<String>,
    pub sql_version: Option<String>,
    /// True when the rule's Lambda action targets the stack's function
    /// (`Fn::GetAtt [<function>, Arn]`).
    pub invokes_function: bool,
}

/// Splits `template` into the template an emulator accepts and the rules to
/// create through the API.
pub fn without_topic_rules(template: &Value) -> (Value, Vec<ExtractedRule>) {
    let mut template = template.clone();
    let mut rules = Vec::new();
    if let Some(resources) = template.get_mut("Resources").and_then(Value::as_object_mut) {
        let ids: Vec<String> = resources
            .iter()
            .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(TOPIC_RULE_TYPE))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            if let Some(resource) = resources.remove(&id) {
                rules.push(extract(&id, &resource));
            }
        }
    }
    let names: Map<String, Value> = rules
        .iter()
        .map(|r| (r.logical_id.clone(), Value::from(r.name.clone())))
        .collect();
    replace_rule_refs(&mut template, &names);
    (template, rules)
}

fn extract(id: &str, resource: &Value) -> ExtractedRule {
    let props = resource.get("Properties").cloned().unwrap_or(Value::Null);
    let payload = props
        .get("TopicRulePayload")
        .cloned()
        .unwrap_or(Value::Null);
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let invokes_function = payload
        .get("Actions")
        .and_then(Value::as_array)
        .is_some_and(|actions| {
            actions
                .iter()
                .any(|a| a.pointer("/Lambda/FunctionArn/Fn::GetAtt").is_some())
        });
    ExtractedRule {
        logical_id: id.to_string(),
        name: text(&props, "RuleName").unwrap_or_else(|| id.to_string()),
        sql: text(&payload, "Sql").unwrap_or_default(),
        description: text(&payload, "Description"),
        sql_version: text(&payload, "AwsIotSqlVersion"),
        invokes_function,
    }
}

/// `Fn::GetAtt [rule, Arn]` → the rule ARN via `Fn::Sub`; `Ref rule` → its name.
fn replace_rule_refs(value: &mut Value, names: &Map<String, Value>) {
    match value {
        Value::Object(obj) => {
            let target = obj
                .get("Fn::GetAtt")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(Value::as_str)
                .or_else(|| obj.get("Ref").and_then(Value::as_str))
                .filter(|id| names.contains_key(*id) && obj.len() == 1)
                .map(str::to_string);
            if let Some(id) = target {
                let name = names[&id].as_str().unwrap_or_default().to_string();
                *value = if obj.contains_key("Ref") {
                    Value::from(name)
                } else {
                    json!({"Fn::Sub": format!("arn:${{AWS::Partition}}:iot:${{AWS::Region}}:${{AWS::AccountId}}:rule/{name}")})
                };
                return;
            }
            for v in obj.values_mut() {
                replace_rule_refs(v, names);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| replace_rule_refs(v, names)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> Value {
        serde_json::from_str(crate::vocabulary::STACK_TEMPLATE).expect("cfn template parses")
    }

    #[test]
    fn the_three_rules_come_out_with_their_sql_and_nothing_still_points_at_them() {
        let (stripped, rules) = without_topic_rules(&template());
        let mut names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            ["rule_ack_man_cert", "rule_create_man_cert", "rule_jitp"]
        );
        assert!(rules.iter().all(|r| r.invokes_function));
        let jitp = rules
            .iter()
            .find(|r| r.name == "rule_jitp")
            .expect("rule_jitp");
        assert!(jitp
            .sql
            .contains("FROM '$aws/events/certificates/registered/#'"));
        let text = stripped.to_string();
        assert!(!text.contains(TOPIC_RULE_TYPE));
        for rule in &rules {
            assert!(
                !text.contains(&format!("\"{}\"", rule.logical_id)),
                "{} still referenced",
                rule.logical_id
            );
        }
        assert!(
            text.contains(":rule/rule_jitp"),
            "permission keeps the rule's ARN"
        );
    }

    #[test]
    fn a_template_without_rules_is_unchanged() {
        let t = json!({"Resources": {"T": {"Type": "AWS::DynamoDB::Table"}}});
        let (same, rules) = without_topic_rules(&t);
        assert_eq!(same, t);
        assert!(rules.is_empty());
    }
}
