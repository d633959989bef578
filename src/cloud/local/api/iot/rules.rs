//! Topic rules and `DescribeEndpoint`.
//!
//! A rule created, replaced or deleted through the API takes effect on the
//! running endpoint at once (the same reload a deploy triggers). Rules are
//! stored in CloudFormation's spelling (`{"Lambda": {"FunctionArn": …}}`),
//! as the stack engine writes them; the API's camelCase spelling
//! (`{"lambda": {"functionArn": …}}`) is converted both ways. A rule the
//! rules engine could not run is refused when it is created. `errorAction`
//! and `description` are accepted and not kept.
//!
//! ## DescribeEndpoint and the MQTT port
//!
//! AWS answers `iot:Data-ATS` with a host name only; its clients dial port
//! 8883. The local answer is `localhost` — the name the endpoint's server
//! certificate is valid for — when the endpoint listens on 8883 (jitpilot's
//! default), and `localhost:<port>` otherwise, so a client that splits
//! `HOST[:PORT]` (jitpilot's own AWS backend) finds a non-default port, and
//! one that appends `:8883` fails loudly rather than dialing the wrong port.

use super::cas::record_change;
use super::{done, missing, ok, page, rule_arn, store_error, with_next, Call};
use crate::cloud::local::api::{ApiError, ApiResult};
use crate::cloud::local::endpoint_ca::SERVER_NAME;
use crate::cloud::local::rules::{CompiledRule, RuleError, RuleSql};
use crate::model::TopicRule;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The MQTT port AWS IoT's clients assume.
pub const AWS_MQTT_PORT: u16 = 8883;
/// The only SQL version AWS's current rules use.
const SQL_VERSION: &str = "2016-03-23";

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    sql: Option<String>,
    #[serde(default)]
    actions: Vec<Value>,
    rule_disabled: Option<bool>,
    aws_iot_sql_version: Option<String>,
}

/// AWS's rule names: 1–128 of letters, digits and `_`.
fn check_name(name: &str) -> Result<(), ApiError> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid_request(format!(
            "the rule name {name:?} is not valid: use 1-128 letters, digits and _"
        )))
    }
}

/// Object keys with their first letter changed by `case`, everywhere in `value`.
fn recase(value: &Value, case: fn(char) -> char) -> Value {
    match value {
        Value::Object(map) => {
            let out: Map<String, Value> = map
                .iter()
                .map(|(k, v)| {
                    let mut chars = k.chars();
                    let key = match chars.next() {
                        Some(first) => std::iter::once(case(first)).chain(chars).collect(),
                        None => String::new(),
                    };
                    (key, recase(v, case))
                })
                .collect();
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| recase(v, case)).collect()),
        other => other.clone(),
    }
}

/// The rule a request describes, checked as the rules engine will run it.
/// The body is the `topicRulePayload` itself (the member is the payload).
fn rule_of(call: &Call<'_>, name: &str) -> Result<TopicRule, ApiError> {
    check_name(name)?;
    let payload: Payload = call.request.json()?;
    let sql = payload
        .sql
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| missing("topicRulePayload.sql"))?;
    if let Some(version) = payload.aws_iot_sql_version.as_deref() {
        if version != SQL_VERSION && version != "beta" && version != "2015-10-08" {
            return Err(ApiError::invalid_request(format!(
                "awsIotSqlVersion {version:?} is not a version AWS IoT knows"
            )));
        }
    }
    let rule = TopicRule {
        name: name.to_string(),
        sql,
        actions: recase(&Value::Array(payload.actions), |c| c.to_ascii_uppercase()),
        enabled: !payload.rule_disabled.unwrap_or(false),
    };
    CompiledRule::compile(&rule).map_err(|e| match e {
        RuleError::Sql { .. } => ApiError::new(400, "SqlParseException", e.to_string()),
        other => ApiError::invalid_request(other.to_string()),
    })?;
    Ok(rule)
}

fn find(call: &Call<'_>, name: &str) -> Result<Option<TopicRule>, ApiError> {
    Ok(call
        .store()
        .list_topic_rules()
        .map_err(store_error)?
        .into_iter()
        .find(|r| r.name == name))
}

/// AWS answers a rule that does not exist with 401 `UnauthorizedException`.
fn no_such_rule(name: &str) -> ApiError {
    ApiError::new(
        401,
        "UnauthorizedException",
        format!("the topic rule {name} does not exist"),
    )
}

/// The running endpoint loads the rules again.
fn reload(call: &Call<'_>) -> Result<(), ApiError> {
    call.ctx
        .cloud
        .topic_rules_changed()
        .map_err(super::cloud_error)
}

fn put(call: &Call<'_>, rule: &TopicRule, verb: &str) -> ApiResult {
    call.store().put_topic_rule(rule).map_err(store_error)?;
    reload(call)?;
    record_change(
        call,
        "rules.changed",
        &rule.name,
        format!("topic rule {} {verb} through the API", rule.name),
        json!({"ruleName": rule.name, "sql": rule.sql, "enabled": rule.enabled}),
    );
    done()
}

/// `CreateTopicRule`.
pub(super) fn create(call: &Call<'_>) -> ApiResult {
    let name = call.label("ruleName")?;
    let rule = rule_of(call, name)?;
    if find(call, name)?.is_some() {
        return Err(ApiError::already_exists(format!(
            "the topic rule {name} already exists; use replace-topic-rule to change it"
        )));
    }
    put(call, &rule, "created")
}

/// `ReplaceTopicRule`.
pub(super) fn replace(call: &Call<'_>) -> ApiResult {
    let name = call.label("ruleName")?;
    let rule = rule_of(call, name)?;
    if find(call, name)?.is_none() {
        return Err(no_such_rule(name));
    }
    put(call, &rule, "replaced")
}

/// `GetTopicRule`.
pub(super) fn get(call: &Call<'_>) -> ApiResult {
    let name = call.label("ruleName")?;
    let rule = find(call, name)?.ok_or_else(|| no_such_rule(name))?;
    ok(json!({
        "ruleArn": rule_arn(&rule.name),
        "rule": {
            "ruleName": rule.name,
            "sql": rule.sql,
            "actions": recase(&rule.actions, |c| c.to_ascii_lowercase()),
            "ruleDisabled": !rule.enabled,
            "awsIotSqlVersion": SQL_VERSION,
        },
    }))
}

/// `DeleteTopicRule`.
pub(super) fn delete(call: &Call<'_>) -> ApiResult {
    let name = call.label("ruleName")?;
    if !call.store().delete_topic_rule(name).map_err(store_error)? {
        return Err(no_such_rule(name));
    }
    reload(call)?;
    record_change(
        call,
        "rules.changed",
        name,
        format!("topic rule {name} deleted through the API"),
        json!({"ruleName": name, "deleted": true}),
    );
    done()
}

/// `ListTopicRules` (filtered by `topic` and `ruleDisabled`).
pub(super) fn list(call: &Call<'_>) -> ApiResult {
    let topic = call.query("topic");
    let disabled = call.query_bool("ruleDisabled")?;
    let rules: Vec<(TopicRule, String)> = call
        .store()
        .list_topic_rules()
        .map_err(store_error)?
        .into_iter()
        .map(|r| {
            let pattern = RuleSql::parse(&r.sql)
                .map(|s| s.topic_filter().to_string())
                .unwrap_or_default();
            (r, pattern)
        })
        .filter(|(r, pattern)| {
            topic.is_none_or(|t| t == pattern) && disabled.is_none_or(|d| d != r.enabled)
        })
        .collect();
    let (rules, next) = page(rules, call.query("nextToken"), call.query("maxResults"))?;
    let rules: Vec<Value> = rules
        .iter()
        .map(|(r, pattern)| {
            json!({
                "ruleArn": rule_arn(&r.name),
                "ruleName": r.name,
                "topicPattern": pattern,
                "ruleDisabled": !r.enabled,
            })
        })
        .collect();
    ok(with_next(json!({ "rules": rules }), "nextToken", next))
}

/// The address `DescribeEndpoint` gives for an endpoint on `port` (see the
/// module docs).
pub fn endpoint_address(port: Option<u16>) -> String {
    match port {
        Some(port) if port != AWS_MQTT_PORT => format!("{SERVER_NAME}:{port}"),
        _ => SERVER_NAME.to_string(),
    }
}

/// `DescribeEndpoint`: `iot:Data-ATS` (and the legacy `iot:Data`) is the
/// local MQTT endpoint.
pub(super) fn describe_endpoint(call: &Call<'_>) -> ApiResult {
    match call.query("endpointType") {
        None | Some("iot:Data-ATS") | Some("iot:Data") => {}
        Some(other @ ("iot:CredentialProvider" | "iot:Jobs")) => {
            return Err(ApiError::invalid_request(format!(
                "the local cloud serves no {other} endpoint; it serves iot:Data-ATS"
            )))
        }
        Some(other) => {
            return Err(ApiError::invalid_request(format!(
                "endpointType {other:?} is not one AWS IoT knows; use iot:Data-ATS"
            )))
        }
    }
    let port = call.ctx.mqtt_addr.map(|a| a.port()).or_else(|| {
        crate::cloud::Cloud::device_endpoint(&call.ctx.cloud)
            .and_then(|e| e.addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok()))
    });
    ok(json!({ "endpointAddress": endpoint_address(port) }))
}
