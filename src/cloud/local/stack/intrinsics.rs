//! Intrinsic functions: `Ref`, `Fn::Sub`, `Fn::GetAtt`, `Fn::Join` and the
//! pseudo parameters. Two passes over the same shapes: [`dependencies`] finds
//! which resources a value needs (the implicit dependencies, checked against
//! the template), and [`resolve`] computes the value once those exist.

use super::provision;
use super::template::Template;
use crate::cloud::local::{LOCAL_ACCOUNT_ID, LOCAL_REGION};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// A problem at one place inside a resource's properties.
#[derive(Debug)]
pub(super) struct FieldError {
    /// Where: `Properties.TopicRulePayload.Actions[0]`.
    pub path: String,
    pub message: String,
}

fn fail<T>(path: &str, message: impl Into<String>) -> Result<T, FieldError> {
    Err(FieldError {
        path: path.to_string(),
        message: message.into(),
    })
}

/// The pseudo parameters, as the local cloud answers them.
pub(super) fn pseudo(name: &str, stack_name: &str) -> Option<Value> {
    Some(Value::String(match name {
        "AWS::Region" => LOCAL_REGION.into(),
        "AWS::AccountId" => LOCAL_ACCOUNT_ID.into(),
        "AWS::StackName" => stack_name.into(),
        "AWS::Partition" => "aws".into(),
        "AWS::URLSuffix" => "amazonaws.com".into(),
        "AWS::StackId" => format!(
            "arn:aws:cloudformation:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:stack/{stack_name}/{}",
            provision::stable_suffix(&[stack_name], 32).to_lowercase()
        ),
        _ => return None,
    }))
}

/// A piece of an `Fn::Sub` string.
enum SubPart<'a> {
    Text(&'a str),
    /// `${!x}`: the text `${x}`, which IoT policy variables rely on.
    Escaped(&'a str),
    Var(&'a str),
}

fn sub_parts<'a>(text: &'a str, path: &str) -> Result<Vec<SubPart<'a>>, FieldError> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        parts.push(SubPart::Text(&rest[..start]));
        let Some(len) = rest[start..].find('}') else {
            return fail(
                path,
                format!("Fn::Sub: `${{` without a closing `}}` in \"{text}\""),
            );
        };
        let inner = &rest[start + 2..start + len];
        parts.push(match inner.strip_prefix('!') {
            Some(literal) => SubPart::Escaped(literal),
            None if inner.trim().is_empty() => {
                return fail(path, format!("Fn::Sub: empty `${{}}` in \"{text}\""))
            }
            None => SubPart::Var(inner.trim()),
        });
        rest = &rest[start + len + 1..];
    }
    parts.push(SubPart::Text(rest));
    Ok(parts)
}

/// The single intrinsic of `{"Ref": ..}` / `{"Fn::X": ..}`, if `map` is one.
fn intrinsic(map: &Map<String, Value>) -> Option<(&str, &Value)> {
    match map.iter().next() {
        Some((k, v)) if map.len() == 1 && (k == "Ref" || k.starts_with("Fn::")) => {
            Some((k.as_str(), v))
        }
        _ => None,
    }
}

/// `["Res", "Attr"]` or `"Res.Attr"`.
fn getatt_args<'v>(args: &'v Value, path: &str) -> Result<(&'v str, &'v str), FieldError> {
    match args {
        Value::Array(a) if a.len() == 2 => match (a[0].as_str(), a[1].as_str()) {
            (Some(r), Some(at)) => Ok((r, at)),
            _ => fail(
                path,
                "Fn::GetAtt takes [\"Resource\", \"Attribute\"] as strings",
            ),
        },
        Value::String(s) => match s.split_once('.') {
            Some(pair) => Ok(pair),
            None => fail(
                path,
                format!("Fn::GetAtt \"{s}\" must be \"Resource.Attribute\""),
            ),
        },
        _ => fail(path, "Fn::GetAtt takes [\"Resource\", \"Attribute\"]"),
    }
}

/// Checks that `Res.Attr` exists and records the dependency.
fn check_getatt(
    tpl: &Template,
    res: &str,
    attr: &str,
    path: &str,
    deps: &mut BTreeSet<String>,
) -> Result<(), FieldError> {
    let Some(def) = tpl.resources.get(res) else {
        return fail(
            path,
            format!("Fn::GetAtt names {res}, which is not a resource of the template"),
        );
    };
    if !def.kind.attributes().contains(&attr) {
        return fail(
            path,
            format!(
                "Fn::GetAtt {res}.{attr}: {} has no attribute {attr} locally (it has: {})",
                def.kind.type_name(),
                def.kind.attributes().join(", ")
            ),
        );
    }
    deps.insert(res.to_string());
    Ok(())
}

/// Checks a `Ref`/`${Name}` target and records resource dependencies.
fn check_name(
    tpl: &Template,
    name: &str,
    path: &str,
    what: &str,
    deps: &mut BTreeSet<String>,
) -> Result<(), FieldError> {
    if tpl.resources.contains_key(name) {
        deps.insert(name.to_string());
        Ok(())
    } else if tpl.parameters.contains_key(name)
        || pseudo(name, "").is_some()
        || name == "AWS::NoValue"
    {
        Ok(())
    } else {
        fail(
            path,
            format!("{what} {name}: no parameter, resource or pseudo parameter has that name"),
        )
    }
}

/// The resources `value` refers to; every reference checked against the template.
pub(super) fn dependencies(
    tpl: &Template,
    value: &Value,
    path: &str,
    deps: &mut BTreeSet<String>,
) -> Result<(), FieldError> {
    match value {
        Value::Array(list) => list
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| dependencies(tpl, v, &format!("{path}[{i}]"), deps)),
        Value::Object(map) => match intrinsic(map) {
            Some(("Ref", Value::String(name))) => check_name(tpl, name, path, "Ref", deps),
            Some(("Ref", _)) => fail(path, "Ref takes a name"),
            Some(("Fn::GetAtt", args)) => {
                let (res, attr) = getatt_args(args, path)?;
                check_getatt(tpl, res, attr, path, deps)
            }
            Some(("Fn::Sub", args)) => {
                let (text, vars) = match args {
                    Value::String(t) => (t.as_str(), None),
                    Value::Array(a) if a.len() == 2 => match (&a[0], &a[1]) {
                        (Value::String(t), Value::Object(vars)) => (t.as_str(), Some(vars)),
                        _ => return fail(path, "Fn::Sub takes a string or [string, {variables}]"),
                    },
                    _ => return fail(path, "Fn::Sub takes a string or [string, {variables}]"),
                };
                if let Some(vars) = vars {
                    for (k, v) in vars {
                        dependencies(tpl, v, &format!("{path}.Fn::Sub.{k}"), deps)?;
                    }
                }
                for part in sub_parts(text, path)? {
                    if let SubPart::Var(name) = part {
                        if vars.is_some_and(|v| v.contains_key(name)) {
                            continue;
                        }
                        match name.split_once('.') {
                            Some((res, attr)) => check_getatt(tpl, res, attr, path, deps)?,
                            None => check_name(tpl, name, path, "Fn::Sub variable", deps)?,
                        }
                    }
                }
                Ok(())
            }
            Some(("Fn::Join", Value::Array(a))) if a.len() == 2 && a[0].is_string() => {
                dependencies(tpl, &a[1], &format!("{path}.Fn::Join"), deps)
            }
            Some(("Fn::Join", _)) => fail(path, "Fn::Join takes [\"delimiter\", [values]]"),
            Some((other, _)) => fail(
                path,
                format!("{other} is not supported by the local stack engine (it resolves Ref, Fn::Sub, Fn::GetAtt, Fn::Join)"),
            ),
            None => map
                .iter()
                .try_for_each(|(k, v)| dependencies(tpl, v, &format!("{path}.{k}"), deps)),
        },
        _ => Ok(()),
    }
}

/// What resolution can see: parameters, the stack's name and the physical
/// ids of the resources resolved so far (dependencies come first).
pub(super) struct Scope<'a> {
    pub template: &'a Template,
    pub params: &'a BTreeMap<String, Value>,
    pub stack_name: &'a str,
    pub physical: &'a BTreeMap<String, String>,
}

impl Scope<'_> {
    fn reference(&self, name: &str, path: &str) -> Result<Option<Value>, FieldError> {
        if name == "AWS::NoValue" {
            return Ok(None);
        }
        if let Some(v) = self.params.get(name) {
            return Ok(Some(v.clone()));
        }
        if let Some(v) = pseudo(name, self.stack_name) {
            return Ok(Some(v));
        }
        match self.physical.get(name) {
            Some(id) => Ok(Some(Value::String(id.clone()))),
            None => fail(
                path,
                format!(
                    "Ref {name}: not resolvable here (is it a resource that depends on this one?)"
                ),
            ),
        }
    }

    fn attribute(&self, res: &str, attr: &str, path: &str) -> Result<String, FieldError> {
        let kind = self.template.resources.get(res).map(|d| d.kind);
        match (kind, self.physical.get(res)) {
            (Some(kind), Some(id)) => {
                provision::attribute(kind, id, attr).ok_or_else(|| FieldError {
                    path: path.into(),
                    message: format!("Fn::GetAtt {res}.{attr}: no such attribute"),
                })
            }
            _ => fail(
                path,
                format!("Fn::GetAtt {res}.{attr}: {res} is not resolved yet"),
            ),
        }
    }

    fn string_of(
        &self,
        value: Option<Value>,
        what: &str,
        path: &str,
    ) -> Result<String, FieldError> {
        match value {
            Some(Value::String(s)) => Ok(s),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(Value::Bool(b)) => Ok(b.to_string()),
            Some(other) => fail(path, format!("{what} must be a string, found {other}")),
            None => fail(
                path,
                format!("{what} resolved to AWS::NoValue, which has no text"),
            ),
        }
    }
}

/// Resolves every intrinsic in `value`. `None` means `Ref AWS::NoValue`:
/// the caller drops that property or list element.
pub(super) fn resolve(
    value: &Value,
    scope: &Scope<'_>,
    path: &str,
) -> Result<Option<Value>, FieldError> {
    match value {
        Value::Array(list) => {
            let mut out = Vec::with_capacity(list.len());
            for (i, v) in list.iter().enumerate() {
                out.extend(resolve(v, scope, &format!("{path}[{i}]"))?);
            }
            Ok(Some(Value::Array(out)))
        }
        Value::Object(map) => match intrinsic(map) {
            Some(("Ref", Value::String(name))) => scope.reference(name, path),
            Some(("Fn::GetAtt", args)) => {
                let (res, attr) = getatt_args(args, path)?;
                scope
                    .attribute(res, attr, path)
                    .map(|s| Some(Value::String(s)))
            }
            Some(("Fn::Sub", args)) => {
                resolve_sub(args, scope, path).map(|s| Some(Value::String(s)))
            }
            Some(("Fn::Join", Value::Array(a))) if a.len() == 2 => {
                let delimiter = a[0].as_str().unwrap_or_default();
                let items = match resolve(&a[1], scope, &format!("{path}.Fn::Join"))? {
                    Some(Value::Array(items)) => items,
                    other => {
                        return fail(
                            path,
                            format!("Fn::Join needs a list of values, found {other:?}"),
                        )
                    }
                };
                let texts = items
                    .into_iter()
                    .map(|v| scope.string_of(Some(v), "each Fn::Join value", path))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Some(Value::String(texts.join(delimiter))))
            }
            Some((other, _)) => fail(
                path,
                format!("{other} is not supported by the local stack engine"),
            ),
            None => {
                let mut out = Map::new();
                for (k, v) in map {
                    if let Some(v) = resolve(v, scope, &format!("{path}.{k}"))? {
                        out.insert(k.clone(), v);
                    }
                }
                Ok(Some(Value::Object(out)))
            }
        },
        other => Ok(Some(other.clone())),
    }
}

fn resolve_sub(args: &Value, scope: &Scope<'_>, path: &str) -> Result<String, FieldError> {
    let (text, vars) = match args {
        Value::String(t) => (t.as_str(), None),
        Value::Array(a) if a.len() == 2 => match (&a[0], &a[1]) {
            (Value::String(t), Value::Object(vars)) => (t.as_str(), Some(vars)),
            _ => return fail(path, "Fn::Sub takes a string or [string, {variables}]"),
        },
        _ => return fail(path, "Fn::Sub takes a string or [string, {variables}]"),
    };
    let mut out = String::with_capacity(text.len());
    for part in sub_parts(text, path)? {
        match part {
            SubPart::Text(t) => out.push_str(t),
            SubPart::Escaped(literal) => {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            }
            SubPart::Var(name) => {
                let value = match vars.and_then(|v| v.get(name)) {
                    Some(expr) => resolve(expr, scope, &format!("{path}.Fn::Sub.{name}"))?,
                    None => match name.split_once('.') {
                        Some((res, attr)) => Some(Value::String(scope.attribute(res, attr, path)?)),
                        None => scope.reference(name, path)?,
                    },
                };
                out.push_str(&scope.string_of(
                    value,
                    &format!("Fn::Sub variable ${{{name}}}"),
                    path,
                )?);
            }
        }
    }
    Ok(out)
}
