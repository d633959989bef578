//! IoT policy evaluation, as AWS IoT Core authorizes a device.
//!
//! Every CONNECT (`iot:Connect` on `client/<clientId>`), PUBLISH
//! (`iot:Publish` on `topic/<topic>`), SUBSCRIBE (`iot:Subscribe` on
//! `topicfilter/<filter>`) and delivery (`iot:Receive` on `topic/<topic>`)
//! is checked against the policies attached to the connection's certificate.
//! The rules are IAM's:
//! - an explicit `Deny` anywhere beats any `Allow`;
//! - with no matching statement the answer is no (default deny);
//! - `*` (any run of characters) and `?` (one character) are wildcards in
//!   actions and resources; actions compare case-insensitively, resources exactly;
//! - policy variables are substituted into resources before matching:
//!   `${iot:ClientId}`, `${iot:Connection.Thing.ThingName}` (only when the
//!   endpoint knows the thing: clientId = thing name and the certificate is
//!   attached to it) and `${iot:Certificate.Subject.CommonName}`. A variable
//!   that cannot be resolved makes that resource match nothing — this is what
//!   keeps the walkthrough's per-device least-privilege policies safe for a
//!   certificate that is attached to no thing. Substituted values are literal
//!   text: a clientId `a*` is not a wildcard. `${*}`, `${?}` and `${$}` are
//!   IAM's escapes for literal `*`, `?` and `$`.
//!
//! Variables are substituted only in `"Version": "2012-10-17"` documents, as
//! IAM does; a document without `Version` (IAM's 2008-10-17) treats `${...}`
//! as literal text.
//!
//! Not supported, stated plainly rather than half-done: `NotAction`,
//! `NotResource` and `Principal` are refused at parse time. A `Condition`
//! cannot be evaluated locally, so the evaluator errs on the safe side: an
//! `Allow` with a `Condition` never matches and a `Deny` with a `Condition`
//! always does.

use super::{LOCAL_ACCOUNT_ID, LOCAL_REGION};
use serde_json::Value;

/// Why a policy document is refused. Names the policy and what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The document is not JSON.
    #[error("policy {policy}: the document is not valid JSON ({reason}); fix the JSON")]
    Json {
        /// The policy's name.
        policy: String,
        /// serde_json's message, with line and column.
        reason: String,
    },
    /// The document is JSON but not a policy jitpilot can evaluate.
    #[error("policy {policy}: {reason}")]
    Shape {
        /// The policy's name.
        policy: String,
        /// What is wrong, naming the statement and field.
        reason: String,
    },
}

/// The IoT data-plane actions the endpoint authorizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IotAction {
    /// CONNECT, on `client/<clientId>`.
    Connect,
    /// PUBLISH from a client, on `topic/<topic>`.
    Publish,
    /// SUBSCRIBE, on `topicfilter/<filter>`.
    Subscribe,
    /// Delivery of a message to a subscriber, on `topic/<topic>`.
    Receive,
}

impl IotAction {
    /// IAM's name: `iot:Connect`, `iot:Publish`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            IotAction::Connect => "iot:Connect",
            IotAction::Publish => "iot:Publish",
            IotAction::Subscribe => "iot:Subscribe",
            IotAction::Receive => "iot:Receive",
        }
    }

    /// Lowercase name, the form actions are compared in.
    fn lowercase(self) -> &'static str {
        match self {
            IotAction::Connect => "iot:connect",
            IotAction::Publish => "iot:publish",
            IotAction::Subscribe => "iot:subscribe",
            IotAction::Receive => "iot:receive",
        }
    }
}

impl std::fmt::Display for IotAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The ARN of the resource an action is on: `client/<id>` for Connect,
/// `topic/<t>` for Publish and Receive, `topicfilter/<f>` for Subscribe.
pub fn resource_arn(action: IotAction, name: &str) -> String {
    let kind = match action {
        IotAction::Connect => "client",
        IotAction::Publish | IotAction::Receive => "topic",
        IotAction::Subscribe => "topicfilter",
    };
    format!("arn:aws:iot:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:{kind}/{name}")
}

/// What the endpoint knows about the connection making a request; the
/// values of the policy variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestContext<'a> {
    /// `${iot:ClientId}`: the MQTT clientId.
    pub client_id: &'a str,
    /// `${iot:Connection.Thing.ThingName}`: set only when the clientId names
    /// a thing the connection's certificate is attached to.
    pub thing_name: Option<&'a str>,
    /// `${iot:Certificate.Subject.CommonName}`.
    pub cert_common_name: Option<&'a str>,
}

/// The outcome of an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Some statement allows it and none denies it.
    Allow,
    /// A `Deny` statement matches.
    ExplicitDeny,
    /// Nothing allows it (IAM's default deny).
    ImplicitDeny,
}

impl Decision {
    /// True only for [`Decision::Allow`].
    pub fn is_allowed(self) -> bool {
        self == Decision::Allow
    }
}

/// A policy variable the evaluator knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variable {
    ClientId,
    ThingName,
    CommonName,
    /// Any other `${...}`: never resolvable locally.
    Unknown,
}

/// One piece of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// `*`: any run of characters, also empty.
    AnyRun,
    /// `?`: exactly one character.
    AnyChar,
    Var(Variable),
}

/// A compiled action or resource pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern(Vec<Part>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Statement {
    effect: Effect,
    /// Lowercased action patterns (no variables).
    actions: Vec<Pattern>,
    resources: Vec<Pattern>,
    has_condition: bool,
}

/// A parsed policy document, ready to evaluate many times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledPolicy {
    name: String,
    statements: Vec<Statement>,
}

impl CompiledPolicy {
    /// Parses a policy document (JSON text). Errors name the policy, the
    /// statement (by index) and the field.
    pub fn parse(name: &str, document: &str) -> Result<CompiledPolicy, PolicyError> {
        let shape = |reason: String| PolicyError::Shape {
            policy: name.to_string(),
            reason,
        };
        let doc: Value = serde_json::from_str(document).map_err(|e| PolicyError::Json {
            policy: name.to_string(),
            reason: e.to_string(),
        })?;
        let doc = doc
            .as_object()
            .ok_or_else(|| shape("the document must be a JSON object".into()))?;
        let variables = match doc.get("Version") {
            None => false,
            Some(Value::String(v)) if v == "2012-10-17" => true,
            Some(Value::String(v)) if v == "2008-10-17" => false,
            Some(other) => {
                return Err(shape(format!(
                    "Version {other} is not a policy language version; use \"2012-10-17\""
                )))
            }
        };
        let statements = match doc.get("Statement") {
            Some(Value::Array(list)) => list.iter().collect::<Vec<_>>(),
            Some(one @ Value::Object(_)) => vec![one],
            Some(_) => {
                return Err(shape(
                    "Statement must be an object or a list of objects".into(),
                ))
            }
            None => return Err(shape("the document has no Statement".into())),
        };
        let statements = statements
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                parse_statement(s, variables).map_err(|r| shape(format!("Statement[{i}]: {r}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CompiledPolicy {
            name: name.to_string(),
            statements,
        })
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

fn parse_statement(s: &Value, variables: bool) -> Result<Statement, String> {
    let s = s.as_object().ok_or("must be an object")?;
    for unsupported in ["NotAction", "NotResource", "Principal", "NotPrincipal"] {
        if s.contains_key(unsupported) {
            return Err(format!(
                "{unsupported} is not supported by the local cloud; use Action and Resource"
            ));
        }
    }
    let effect = match s.get("Effect") {
        Some(Value::String(e)) if e == "Allow" => Effect::Allow,
        Some(Value::String(e)) if e == "Deny" => Effect::Deny,
        Some(other) => return Err(format!("Effect {other} must be \"Allow\" or \"Deny\"")),
        None => return Err("Effect is missing (\"Allow\" or \"Deny\")".into()),
    };
    let actions = string_or_list(s.get("Action"), "Action")?
        .into_iter()
        .map(|a| compile(&a.to_ascii_lowercase(), false))
        .collect();
    let resources = string_or_list(s.get("Resource"), "Resource")?
        .into_iter()
        .map(|r| compile(r, variables))
        .collect();
    Ok(Statement {
        effect,
        actions,
        resources,
        has_condition: s.contains_key("Condition"),
    })
}

fn string_or_list<'a>(v: Option<&'a Value>, field: &str) -> Result<Vec<&'a str>, String> {
    match v {
        Some(Value::String(one)) => Ok(vec![one.as_str()]),
        Some(Value::Array(list)) if !list.is_empty() => list
            .iter()
            .map(|x| {
                x.as_str()
                    .ok_or_else(|| format!("{field} must hold strings, found {x}"))
            })
            .collect(),
        Some(other) => Err(format!(
            "{field} must be a string or a non-empty list of strings, found {other}"
        )),
        None => Err(format!("{field} is missing")),
    }
}

/// Compiles a pattern: `*`/`?` wildcards, and `${...}` variables when `variables`.
fn compile(text: &str, variables: bool) -> Pattern {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if variables && rest.starts_with("${") {
            if let Some(end) = rest.find('}') {
                let name = &rest[2..end];
                rest = &rest[end + 1..];
                let part = match name {
                    "*" => {
                        literal.push('*');
                        continue;
                    }
                    "?" => {
                        literal.push('?');
                        continue;
                    }
                    "$" => {
                        literal.push('$');
                        continue;
                    }
                    "iot:ClientId" => Part::Var(Variable::ClientId),
                    "iot:Connection.Thing.ThingName" => Part::Var(Variable::ThingName),
                    "iot:Certificate.Subject.CommonName" => Part::Var(Variable::CommonName),
                    _ => Part::Var(Variable::Unknown),
                };
                flush(&mut literal, &mut parts);
                parts.push(part);
                continue;
            }
        }
        rest = &rest[c.len_utf8()..];
        match c {
            '*' => {
                flush(&mut literal, &mut parts);
                parts.push(Part::AnyRun);
            }
            '?' => {
                flush(&mut literal, &mut parts);
                parts.push(Part::AnyChar);
            }
            c => literal.push(c),
        }
    }
    flush(&mut literal, &mut parts);
    Pattern(parts)
}

fn flush(literal: &mut String, parts: &mut Vec<Part>) {
    if !literal.is_empty() {
        parts.push(Part::Literal(std::mem::take(literal)));
    }
}

/// A pattern with its variables substituted.
enum Token<'a> {
    Literal(&'a str),
    AnyRun,
    AnyChar,
}

impl Pattern {
    /// Substitutes variables; `None` when one cannot be resolved.
    fn tokens<'a>(&'a self, ctx: &RequestContext<'a>) -> Option<Vec<Token<'a>>> {
        self.0
            .iter()
            .map(|p| {
                Some(match p {
                    Part::Literal(l) => Token::Literal(l),
                    Part::AnyRun => Token::AnyRun,
                    Part::AnyChar => Token::AnyChar,
                    Part::Var(Variable::ClientId) => Token::Literal(ctx.client_id),
                    Part::Var(Variable::ThingName) => Token::Literal(ctx.thing_name?),
                    Part::Var(Variable::CommonName) => Token::Literal(ctx.cert_common_name?),
                    Part::Var(Variable::Unknown) => return None,
                })
            })
            .collect()
    }

    fn matches(&self, text: &str, ctx: &RequestContext<'_>) -> bool {
        self.tokens(ctx).is_some_and(|t| glob(&t, text))
    }
}

/// Wildcard matching with single-point backtracking: on a mismatch, the
/// last `*` absorbs one more character. Linear in practice, never recursive.
fn glob(tokens: &[Token<'_>], text: &str) -> bool {
    let next_char = |at: usize| text[at..].chars().next().map_or(1, char::len_utf8);
    let (mut ti, mut at) = (0, 0);
    // (token index after the last `*`, text position it currently absorbs up to)
    let mut backtrack: Option<(usize, usize)> = None;
    loop {
        if let Some(token) = tokens.get(ti) {
            let advanced = match token {
                // A trailing `*` takes whatever is left (policies end in
                // one more often than not: `topic/cr/${iot:ClientId}/*`,
                // `*`); without this the backtracking below would walk the
                // rest of the ARN one character at a time.
                Token::AnyRun if ti + 1 == tokens.len() => return true,
                Token::AnyRun => {
                    backtrack = Some((ti + 1, at));
                    ti += 1;
                    continue;
                }
                Token::AnyChar if at < text.len() => Some(next_char(at)),
                Token::Literal(l) if text[at..].starts_with(l) => Some(l.len()),
                _ => None,
            };
            if let Some(n) = advanced {
                at += n;
                ti += 1;
                continue;
            }
        } else if at == text.len() {
            return true;
        }
        match backtrack {
            Some((resume, from)) if from < text.len() => {
                let from = from + next_char(from);
                backtrack = Some((resume, from));
                ti = resume;
                at = from;
            }
            _ => return false,
        }
    }
}

/// Evaluates `action` on `resource` (an ARN, see [`resource_arn`]) against
/// every statement of every policy attached to the connection.
pub fn evaluate(
    policies: &[CompiledPolicy],
    action: IotAction,
    resource: &str,
    ctx: &RequestContext<'_>,
) -> Decision {
    let action_name = action.lowercase();
    let no_vars = RequestContext {
        client_id: "",
        thing_name: None,
        cert_common_name: None,
    };
    let mut allowed = false;
    for statement in policies.iter().flat_map(|p| &p.statements) {
        let applies = statement
            .actions
            .iter()
            .any(|a| a.matches(action_name, &no_vars))
            && statement.resources.iter().any(|r| r.matches(resource, ctx));
        if !applies {
            continue;
        }
        match (statement.effect, statement.has_condition) {
            (Effect::Deny, _) => return Decision::ExplicitDeny,
            // A condition we cannot evaluate never grants access.
            (Effect::Allow, true) => {}
            (Effect::Allow, false) => allowed = true,
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

#[cfg(test)]
mod tests;
