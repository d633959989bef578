//! The rules engine's pure part: a topic rule's SQL and its actions.
//!
//! A rule such as the walkthrough's `rule_jitp`
//! (`SELECT * as data, topic() as topic, clientId() as client_id,
//! principal() as cert_id FROM '$aws/events/certificates/registered/#'`)
//! turns every message whose topic matches its `FROM` filter, and passes its
//! `WHERE`, into one JSON document — the event its actions receive. Here that
//! is [`RuleSql::evaluate`]: no IO, so the router calls it per message and
//! the tests call it directly.
//!
//! Supported SQL (AWS IoT SQL version `2016-03-23`, the subset the template uses and a bit more):
//! items `*`, `* AS name`, `topic()`, `topic(n)`, `clientId()`, `principal()`,
//! `timestamp()`, payload field paths `a.b`, literals, each with an optional `AS`;
//! `WHERE` with `=`, `<>`/`!=`, `<`, `<=`, `>`, `>=`, `AND`, `OR`, `NOT`, parentheses.
//!
//! Semantics, following AWS where it is documented:
//! - an item whose value is undefined (a missing payload field, `topic(9)`
//!   of a 3-level topic) is left out of the output, not set to `null`;
//! - an item without `AS` is named after its last path segment (`a.b` → `b`)
//!   or its function (`topic`, `clientId`, `principal`, `timestamp`);
//! - `*` without `AS` merges the payload object's fields into the output;
//! - comparing values of different types is undefined, and a `WHERE` that is
//!   not `true` drops the message; `AND`/`OR`/`NOT` are three-valued;
//! - `topic(n)` counts MQTT levels from 1, so for `/cert-rotation/create-man-cert/SERIAL/rqst`
//!   (leading `/`) `topic(1)` is the empty level and `topic(4)` is the serial.
//! - Non-JSON payloads: AWS can only pass binary through when the whole
//!   payload is selected. Here a `*` on a non-JSON payload yields the
//!   payload base64-encoded — as the whole output for a lone `SELECT *`, or
//!   under its alias for `* AS name` — and an unaliased `*` next to other
//!   items contributes nothing. Payload field paths on it are undefined.

mod sql;

pub use sql::SqlError;

use crate::model::{EpochMillis, TopicRule};
use base64::Engine as _;
use serde_json::{Map, Value};
use std::cmp::Ordering;

/// Why a rule cannot be compiled. Names the rule and what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The SQL does not parse.
    #[error("topic rule {rule}: {source}")]
    Sql {
        /// The rule's name.
        rule: String,
        /// Where and why.
        #[source]
        source: SqlError,
    },
    /// An action is malformed or of a kind the local cloud does not run.
    #[error("topic rule {rule}: Actions[{index}]: {reason}")]
    Action {
        /// The rule's name.
        rule: String,
        /// Index into the actions list.
        index: usize,
        /// What is wrong, and what is supported.
        reason: String,
    },
}

/// A function the SQL can call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Function {
    /// `topic()` (the whole topic) or `topic(n)` (level n, from 1).
    Topic(Option<usize>),
    /// `clientId()`: the publisher's MQTT clientId.
    ClientId,
    /// `principal()`: the publisher's certificateId.
    Principal,
    /// `timestamp()`: when the broker received the message, epoch millis.
    Timestamp,
    /// `get_user_property('name')`: an MQTT 5 user property of the message
    /// (its value; several values of one name as an array).
    UserProperty(String),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `<>` or `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// An expression of the SQL subset.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `'text'`, `42`, `true`.
    Literal(Value),
    /// A payload field path: `a.b` → `["a", "b"]`.
    Path(Vec<String>),
    /// A function call.
    Function(Function),
    /// `left op right`.
    Compare(Box<Expr>, CmpOp, Box<Expr>),
    /// `left AND right`.
    And(Box<Expr>, Box<Expr>),
    /// `left OR right`.
    Or(Box<Expr>, Box<Expr>),
    /// `NOT inner`.
    Not(Box<Expr>),
}

/// One item of the `SELECT` list.
#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    /// `*` or `* AS alias`: the whole payload.
    Wildcard {
        /// The output field holding the payload; `None` merges its fields.
        alias: Option<String>,
    },
    /// An expression with an optional `AS` name.
    Expr {
        /// The value.
        expr: Expr,
        /// The output field's name.
        alias: Option<String>,
    },
}

/// A message as the rules engine sees it.
#[derive(Debug, Clone, Copy)]
pub struct RuleMessage<'a> {
    /// The topic it was published to.
    pub topic: &'a str,
    /// Its payload, JSON or not.
    pub payload: &'a [u8],
    /// The publisher's MQTT clientId (`clientId()`).
    pub client_id: &'a str,
    /// The publisher's certificateId (`principal()`).
    pub principal: &'a str,
    /// When the broker received it (`timestamp()`).
    pub timestamp: EpochMillis,
    /// Its MQTT 5 user properties, in order (`get_user_property()`).
    pub user_properties: &'a [(String, String)],
}

/// A parsed rule statement.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSql {
    items: Vec<SelectItem>,
    filter: String,
    condition: Option<Expr>,
}

impl RuleSql {
    /// Parses `SELECT <items> FROM '<filter>' [WHERE <cond>]`. Errors give the
    /// character position; the filter must be a valid MQTT topic filter.
    pub fn parse(text: &str) -> Result<RuleSql, SqlError> {
        let (items, filter, filter_pos, condition) = sql::Parser::new(text)?.statement()?;
        super::topic::validate_filter(&filter).map_err(|e| SqlError {
            position: filter_pos,
            message: format!("FROM '{filter}' is not a valid topic filter: {e}"),
        })?;
        Ok(RuleSql {
            items,
            filter,
            condition,
        })
    }

    /// The `FROM` topic filter.
    pub fn topic_filter(&self) -> &str {
        &self.filter
    }

    /// The `SELECT` items.
    pub fn items(&self) -> &[SelectItem] {
        &self.items
    }

    /// True when the message's topic matches the `FROM` filter.
    pub fn matches_topic(&self, topic: &str) -> bool {
        super::topic::matches(&self.filter, topic)
    }

    /// The document the rule's actions receive, or `None` when the `WHERE`
    /// is not true. Does not check the topic against `FROM` (see
    /// [`RuleSql::matches_topic`]); the router does that first.
    pub fn evaluate(&self, msg: &RuleMessage<'_>) -> Option<Value> {
        let payload: Option<Value> = serde_json::from_slice(msg.payload).ok();
        let ctx = Ctx {
            msg,
            payload: payload.as_ref(),
        };
        if let Some(condition) = &self.condition {
            if ctx.eval(condition) != Some(Value::Bool(true)) {
                return None;
            }
        }
        if let [SelectItem::Wildcard { alias: None }] = self.items.as_slice() {
            return Some(match payload {
                Some(value) => value,
                None => Value::String(base64(msg.payload)),
            });
        }
        let mut out = Map::new();
        for item in &self.items {
            match item {
                SelectItem::Wildcard { alias: Some(alias) } => {
                    let value = match &payload {
                        Some(value) => value.clone(),
                        None => Value::String(base64(msg.payload)),
                    };
                    out.insert(alias.clone(), value);
                }
                SelectItem::Wildcard { alias: None } => {
                    if let Some(Value::Object(fields)) = &payload {
                        out.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                }
                SelectItem::Expr { expr, alias } => {
                    if let Some(value) = ctx.eval(expr) {
                        out.insert(alias.clone().unwrap_or_else(|| default_name(expr)), value);
                    }
                }
            }
        }
        Some(Value::Object(out))
    }
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn default_name(expr: &Expr) -> String {
    match expr {
        Expr::Path(path) => path.last().cloned().unwrap_or_default(),
        Expr::Function(Function::Topic(_)) => "topic".into(),
        Expr::Function(Function::ClientId) => "clientId".into(),
        Expr::Function(Function::Principal) => "principal".into(),
        Expr::Function(Function::Timestamp) => "timestamp".into(),
        // AWS numbers anonymous expressions; there is no better name for them.
        _ => "_1".into(),
    }
}

/// Evaluation context: the message and its payload parsed once.
struct Ctx<'m> {
    msg: &'m RuleMessage<'m>,
    payload: Option<&'m Value>,
}

impl Ctx<'_> {
    /// The value of `expr`; `None` is SQL's *undefined*.
    fn eval(&self, expr: &Expr) -> Option<Value> {
        match expr {
            Expr::Literal(v) => Some(v.clone()),
            Expr::Path(path) => {
                let mut at = self.payload?;
                for field in path {
                    at = at.as_object()?.get(field)?;
                }
                Some(at.clone())
            }
            Expr::Function(Function::Topic(None)) => Some(Value::String(self.msg.topic.into())),
            Expr::Function(Function::Topic(Some(n))) => self
                .msg
                .topic
                .split('/')
                .nth(n.checked_sub(1)?)
                .map(|level| Value::String(level.into())),
            Expr::Function(Function::ClientId) => Some(Value::String(self.msg.client_id.into())),
            Expr::Function(Function::Principal) => Some(Value::String(self.msg.principal.into())),
            Expr::Function(Function::Timestamp) => Some(Value::from(self.msg.timestamp)),
            Expr::Function(Function::UserProperty(name)) => {
                let mut values: Vec<Value> = self
                    .msg
                    .user_properties
                    .iter()
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| Value::String(v.clone()))
                    .collect();
                match values.len() {
                    0 => None,
                    1 => values.pop(),
                    _ => Some(Value::Array(values)),
                }
            }
            Expr::Compare(left, op, right) => {
                let ordering = compare(&self.eval(left)?, &self.eval(right)?)?;
                let result = match op {
                    CmpOp::Eq => ordering == Ordering::Equal,
                    CmpOp::Ne => ordering != Ordering::Equal,
                    CmpOp::Lt => ordering == Ordering::Less,
                    CmpOp::Le => ordering != Ordering::Greater,
                    CmpOp::Gt => ordering == Ordering::Greater,
                    CmpOp::Ge => ordering != Ordering::Less,
                };
                Some(Value::Bool(result))
            }
            Expr::And(left, right) => match (self.truth(left), self.truth(right)) {
                (Some(false), _) | (_, Some(false)) => Some(Value::Bool(false)),
                (Some(true), Some(true)) => Some(Value::Bool(true)),
                _ => None,
            },
            Expr::Or(left, right) => match (self.truth(left), self.truth(right)) {
                (Some(true), _) | (_, Some(true)) => Some(Value::Bool(true)),
                (Some(false), Some(false)) => Some(Value::Bool(false)),
                _ => None,
            },
            Expr::Not(inner) => self.truth(inner).map(|b| Value::Bool(!b)),
        }
    }

    /// A boolean value, or undefined for anything else.
    fn truth(&self, expr: &Expr) -> Option<bool> {
        self.eval(expr)?.as_bool()
    }
}

/// Orders two values of the same type; `None` (undefined) across types.
/// Objects and arrays compare only for equality.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        (Value::Object(_), Value::Object(_)) | (Value::Array(_), Value::Array(_)) => {
            (a == b).then_some(Ordering::Equal)
        }
        _ => None,
    }
}

/// What a rule does with its document.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleAction {
    /// Invoke a function ("Lambda"); locally resolved by the function's
    /// name to a built-in handler.
    Lambda {
        /// `arn:aws:lambda:<region>:<account>:function:<name>`.
        function_arn: String,
    },
    /// Publish the document to another topic.
    Republish {
        /// The topic, possibly with `${...}` substitution templates
        /// (`things/${topic(3)}/out`); see [`RuleAction::republish_topic`].
        topic: String,
        /// 0 or 1 (no QoS 2, as AWS).
        qos: u8,
    },
}

impl RuleAction {
    /// Parses a rule's stored actions (CloudFormation's shape,
    /// `[{"Lambda": {"FunctionArn": ...}}, {"Republish": {"Topic": ..., "Qos": 1}}]`;
    /// the API's camelCase spelling is accepted too).
    pub fn parse_all(rule: &str, actions: &Value) -> Result<Vec<RuleAction>, RuleError> {
        let fail = |index, reason: String| RuleError::Action {
            rule: rule.to_string(),
            index,
            reason,
        };
        let list = actions
            .as_array()
            .ok_or_else(|| fail(0, format!("Actions must be a list, found {actions}")))?;
        list.iter()
            .enumerate()
            .map(|(index, action)| {
                let object = action
                    .as_object()
                    .filter(|o| o.len() == 1)
                    .ok_or_else(|| fail(index, "each action must be an object with exactly one kind, as {\"Lambda\": {...}}".into()))?;
                let (kind, body) = object.iter().next().ok_or_else(|| fail(index, "empty action".into()))?;
                let field = |name: &str| {
                    body.as_object()
                        .and_then(|b| b.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
                        .map(|(_, v)| v)
                };
                match kind.to_ascii_lowercase().as_str() {
                    "lambda" => match field("FunctionArn") {
                        Some(Value::String(arn)) if !arn.is_empty() => Ok(RuleAction::Lambda {
                            function_arn: arn.clone(),
                        }),
                        _ => Err(fail(index, "Lambda needs FunctionArn, a function ARN string".into())),
                    },
                    "republish" => {
                        let topic = match field("Topic") {
                            Some(Value::String(t)) if !t.is_empty() => t.clone(),
                            _ => return Err(fail(index, "Republish needs Topic, a non-empty string".into())),
                        };
                        check_templates(&topic).map_err(|e| fail(index, format!("Republish Topic: {e}")))?;
                        let qos = match field("Qos") {
                            None => 0,
                            Some(q) => match q.as_u64().or_else(|| q.as_str().and_then(|s| s.parse().ok())) {
                                Some(q @ 0..=1) => q as u8,
                                _ => return Err(fail(index, format!("Republish Qos must be 0 or 1, found {q}"))),
                            },
                        };
                        Ok(RuleAction::Republish { topic, qos })
                    }
                    other => Err(fail(
                        index,
                        format!("the {other} action is not run by the local cloud; use Lambda or Republish"),
                    )),
                }
            })
            .collect()
    }

    /// The function's name, taken from the ARN (`...:function:<name>[:qualifier]`)
    /// or the text itself when it is a bare name. `None` for Republish.
    pub fn function_name(&self) -> Option<&str> {
        match self {
            RuleAction::Lambda { function_arn } => Some(function_name_from_arn(function_arn)),
            RuleAction::Republish { .. } => None,
        }
    }

    /// The Republish topic with its `${expr}` templates substituted for
    /// `msg` (undefined values become empty text, as AWS does). `None` for Lambda.
    pub fn republish_topic(&self, msg: &RuleMessage<'_>) -> Option<String> {
        match self {
            RuleAction::Republish { topic, .. } => Some(substitute(topic, msg)),
            RuleAction::Lambda { .. } => None,
        }
    }
}

/// `arn:aws:lambda:r:a:function:NAME[:qualifier]` → `NAME`; a bare name as is.
pub fn function_name_from_arn(arn: &str) -> &str {
    match arn.split_once(":function:") {
        Some((_, rest)) => rest.split(':').next().unwrap_or(rest),
        None => arn,
    }
}

/// Parses every `${expr}` of a template, so a bad one is refused at deploy.
fn check_templates(template: &str) -> Result<(), SqlError> {
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start..].find('}') else {
            return Err(SqlError {
                position: template.len() - rest.len() + start,
                message: "`${` without a closing `}`".into(),
            });
        };
        sql::Parser::new(&rest[start + 2..start + len])?.lone_expr()?;
        rest = &rest[start + len + 1..];
    }
    Ok(())
}

/// Substitutes `${expr}` templates (already checked by [`check_templates`]).
fn substitute(template: &str, msg: &RuleMessage<'_>) -> String {
    let payload: Option<Value> = serde_json::from_slice(msg.payload).ok();
    let ctx = Ctx {
        msg,
        payload: payload.as_ref(),
    };
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        let value = sql::Parser::new(&rest[start + 2..start + len])
            .and_then(|mut p| p.lone_expr())
            .ok()
            .and_then(|expr| ctx.eval(&expr));
        match value {
            Some(Value::String(s)) => out.push_str(&s),
            Some(other) => out.push_str(&other.to_string()),
            None => {}
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

/// A deployed topic rule, ready to run: its SQL and actions parsed once.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledRule {
    /// The rule's name (`rule_jitp`, ...).
    pub name: String,
    /// Its statement.
    pub sql: RuleSql,
    /// Its actions, in order.
    pub actions: Vec<RuleAction>,
    /// False when the rule is disabled (`RuleDisabled: true`).
    pub enabled: bool,
}

impl CompiledRule {
    /// Compiles a stored rule; errors name the rule and the SQL position or action.
    pub fn compile(rule: &TopicRule) -> Result<CompiledRule, RuleError> {
        let sql = RuleSql::parse(&rule.sql).map_err(|source| RuleError::Sql {
            rule: rule.name.clone(),
            source,
        })?;
        let actions = RuleAction::parse_all(&rule.name, &rule.actions)?;
        Ok(CompiledRule {
            name: rule.name.clone(),
            sql,
            actions,
            enabled: rule.enabled,
        })
    }
}

#[cfg(test)]
mod tests;
