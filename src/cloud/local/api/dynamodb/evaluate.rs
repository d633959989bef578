//! Expressions at work on an item: a condition's truth, an update's new
//! item, a projection's attributes. Pure functions over [`Item`]s: no store,
//! no IO — the operations read the item, call these, and write the result
//! in the same transaction.

use super::super::ApiError;
use super::attribute::{AttributeValue, Item, Number};
use super::expression::{Comparator, Condition, Operand, Path, PathElem, SetValue, Update};
use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

/// The value at `path`, if the item has one.
pub fn resolve<'a>(item: &'a Item, path: &Path) -> Option<&'a AttributeValue> {
    let mut elems = path.0.iter();
    let mut current = match elems.next()? {
        PathElem::Key(k) => item.get(k)?,
        PathElem::Index(_) => return None,
    };
    for elem in elems {
        current = match (elem, current) {
            (PathElem::Key(k), AttributeValue::M(m)) => m.get(k)?,
            (PathElem::Index(i), AttributeValue::L(l)) => l.get(*i)?,
            _ => return None,
        };
    }
    Some(current)
}

fn operand<'a>(item: &'a Item, op: &'a Operand) -> Option<Cow<'a, AttributeValue>> {
    match op {
        Operand::Path(p) => resolve(item, p).map(Cow::Borrowed),
        Operand::Value(v) => Some(Cow::Borrowed(v)),
        Operand::Size(p) => resolve(item, p)
            .and_then(AttributeValue::size)
            .map(|n| Cow::Owned(AttributeValue::N(Number::from_usize(n)))),
    }
}

/// Whether `condition` holds for `item` (an absent item is the empty item).
/// A comparison with a missing attribute is false, except `<>`, which is true.
pub fn evaluate(condition: &Condition, item: &Item) -> Result<bool, ApiError> {
    Ok(match condition {
        Condition::Compare(a, cmp, b) => {
            let (a, b) = (operand(item, a), operand(item, b));
            match (cmp, a, b) {
                (Comparator::Eq, Some(a), Some(b)) => a == b,
                (Comparator::Ne, Some(a), Some(b)) => a != b,
                (Comparator::Ne, None, None) => false,
                (Comparator::Ne, _, _) => true,
                (_, Some(a), Some(b)) => match a.ordering(&b) {
                    Some(o) => match cmp {
                        Comparator::Lt => o == Ordering::Less,
                        Comparator::Le => o != Ordering::Greater,
                        Comparator::Gt => o == Ordering::Greater,
                        Comparator::Ge => o != Ordering::Less,
                        Comparator::Eq | Comparator::Ne => false,
                    },
                    None => false,
                },
                _ => false,
            }
        }
        Condition::Between(x, low, high) => {
            let (Some(x), Some(low), Some(high)) =
                (operand(item, x), operand(item, low), operand(item, high))
            else {
                return Ok(false);
            };
            if low.ordering(&high) == Some(Ordering::Greater) {
                return Err(ApiError::validation(
                    "Invalid ConditionExpression: The BETWEEN operator requires upper bound to be greater than or equal to lower bound",
                ));
            }
            matches!(x.ordering(&low), Some(Ordering::Greater | Ordering::Equal))
                && matches!(x.ordering(&high), Some(Ordering::Less | Ordering::Equal))
        }
        Condition::In(x, list) => match operand(item, x) {
            Some(x) => list
                .iter()
                .any(|candidate| operand(item, candidate).is_some_and(|c| *c == *x)),
            None => false,
        },
        Condition::AttributeExists(p) => resolve(item, p).is_some(),
        Condition::AttributeNotExists(p) => resolve(item, p).is_none(),
        Condition::AttributeType(p, t) => {
            let wanted = match operand(item, t).as_deref() {
                Some(AttributeValue::S(s))
                    if ["S", "SS", "N", "NS", "B", "BS", "BOOL", "NULL", "L", "M"]
                        .contains(&s.as_str()) =>
                {
                    s.clone()
                }
                other => {
                    return Err(ApiError::validation(format!(
                        "Invalid ConditionExpression: Invalid attribute type name found; type: {}, valid types: {{B,NULL,SS,BOOL,L,BS,N,NS,S,M}}",
                        other.map(|v| format!("{:?}", v)).unwrap_or_default()
                    )))
                }
            };
            resolve(item, p).is_some_and(|v| v.type_name() == wanted)
        }
        Condition::BeginsWith(a, prefix) => {
            match (
                operand(item, a).as_deref(),
                operand(item, prefix).as_deref(),
            ) {
                (Some(AttributeValue::S(s)), Some(AttributeValue::S(p))) => {
                    s.starts_with(p.as_str())
                }
                (Some(AttributeValue::B(s)), Some(AttributeValue::B(p))) => s.starts_with(p),
                _ => false,
            }
        }
        Condition::Contains(a, needle) => {
            let (Some(a), Some(needle)) = (operand(item, a), operand(item, needle)) else {
                return Ok(false);
            };
            match (&*a, &*needle) {
                (AttributeValue::S(s), AttributeValue::S(n)) => s.contains(n.as_str()),
                (AttributeValue::B(s), AttributeValue::B(n)) => {
                    n.is_empty() || s.windows(n.len()).any(|w| w == n.as_slice())
                }
                (AttributeValue::Ss(s), AttributeValue::S(n)) => s.contains(n),
                (AttributeValue::Ns(s), AttributeValue::N(n)) => s.contains(n),
                (AttributeValue::Bs(s), AttributeValue::B(n)) => s.contains(n),
                (AttributeValue::L(l), n) => l.contains(n),
                _ => false,
            }
        }
        Condition::And(a, b) => evaluate(a, item)? && evaluate(b, item)?,
        Condition::Or(a, b) => evaluate(a, item)? || evaluate(b, item)?,
        Condition::Not(a) => !evaluate(a, item)?,
    })
}

fn invalid_operand(what: &str) -> ApiError {
    ApiError::validation(format!(
        "Invalid UpdateExpression: An operand in the update expression has an incorrect data type; {what}"
    ))
}

fn set_value(item: &Item, value: &SetValue) -> Result<AttributeValue, ApiError> {
    Ok(match value {
        SetValue::Value(v) => v.clone(),
        SetValue::Path(p) => resolve(item, p).cloned().ok_or_else(|| {
            ApiError::validation(format!(
                "The provided expression refers to an attribute that does not exist in the item: {p}"
            ))
        })?,
        SetValue::IfNotExists(p, fallback) => match resolve(item, p) {
            Some(v) => v.clone(),
            None => set_value(item, fallback)?,
        },
        SetValue::ListAppend(a, b) => match (set_value(item, a)?, set_value(item, b)?) {
            (AttributeValue::L(mut a), AttributeValue::L(b)) => {
                a.extend(b);
                AttributeValue::L(a)
            }
            _ => return Err(invalid_operand("list_append takes two lists")),
        },
        SetValue::Plus(a, b) | SetValue::Minus(a, b) => {
            match (set_value(item, a)?, set_value(item, b)?) {
                (AttributeValue::N(a), AttributeValue::N(b)) => {
                    let b = if matches!(value, SetValue::Minus(..)) { b.negated() } else { b };
                    AttributeValue::N(a.add(&b)?)
                }
                _ => return Err(invalid_operand("+ and - take two numbers")),
            }
        }
    })
}

fn invalid_path(path: &Path) -> ApiError {
    ApiError::validation(format!(
        "The document path provided in the update expression is invalid for update: {path}"
    ))
}

/// The container holding `path`'s last element, for writing.
fn parent_mut<'a>(item: &'a mut Item, path: &Path) -> Option<&'a mut AttributeValue> {
    let (first, rest) = path.0.split_first()?;
    let PathElem::Key(k) = first else { return None };
    let mut current = item.get_mut(k)?;
    for elem in &rest[..rest.len().saturating_sub(1)] {
        current = match (elem, current) {
            (PathElem::Key(k), AttributeValue::M(m)) => m.get_mut(k)?,
            (PathElem::Index(i), AttributeValue::L(l)) => l.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(current)
}

fn put_path(item: &mut Item, path: &Path, value: AttributeValue) -> Result<(), ApiError> {
    if let [PathElem::Key(k)] = path.0.as_slice() {
        item.insert(k.clone(), value);
        return Ok(());
    }
    let last = path.0.last().cloned();
    match (parent_mut(item, path), last) {
        (Some(AttributeValue::M(m)), Some(PathElem::Key(k))) => {
            m.insert(k, value);
        }
        (Some(AttributeValue::L(l)), Some(PathElem::Index(i))) => {
            if i < l.len() {
                l[i] = value;
            } else {
                l.push(value);
            }
        }
        _ => return Err(invalid_path(path)),
    }
    Ok(())
}

fn remove_path(item: &mut Item, path: &Path) {
    if let [PathElem::Key(k)] = path.0.as_slice() {
        item.remove(k);
        return;
    }
    let last = path.0.last().cloned();
    match (parent_mut(item, path), last) {
        (Some(AttributeValue::M(m)), Some(PathElem::Key(k))) => {
            m.remove(&k);
        }
        (Some(AttributeValue::L(l)), Some(PathElem::Index(i))) if i < l.len() => {
            l.remove(i);
        }
        _ => {}
    }
}

/// Applies `update` to `item` (all right-hand sides read the item as it
/// was before the update, as DynamoDB does). `keys` are the key attributes,
/// which an update may not touch. Returns the top-level attributes written.
pub fn apply_update(
    update: &Update,
    item: &mut Item,
    keys: &[&str],
) -> Result<BTreeSet<String>, ApiError> {
    let mut touched = BTreeSet::new();
    for path in update.paths() {
        if keys.contains(&path.top()) {
            return Err(ApiError::validation(format!(
                "One or more parameter values were invalid: Cannot update attribute {}. This attribute is part of the key",
                path.top()
            )));
        }
        touched.insert(path.top().to_string());
    }
    let before = item.clone();
    let mut sets = Vec::with_capacity(update.set.len());
    for (path, value) in &update.set {
        sets.push((path, set_value(&before, value)?));
    }
    for (path, value) in sets {
        put_path(item, path, value)?;
    }
    // Remove list elements from the highest index down, so the indexes
    // named refer to the list as it was.
    let mut removals: Vec<&Path> = update.remove.iter().collect();
    removals.sort_by(|a, b| b.0.cmp(&a.0));
    for path in removals {
        remove_path(item, path);
    }
    for (path, value) in &update.add {
        let new = match (resolve(item, path), value) {
            (
                None,
                v @ (AttributeValue::N(_)
                | AttributeValue::Ss(_)
                | AttributeValue::Ns(_)
                | AttributeValue::Bs(_)),
            ) => v.clone(),
            (Some(AttributeValue::N(a)), AttributeValue::N(b)) => AttributeValue::N(a.add(b)?),
            (Some(AttributeValue::Ss(a)), AttributeValue::Ss(b)) => AttributeValue::Ss(union(a, b)),
            (Some(AttributeValue::Ns(a)), AttributeValue::Ns(b)) => AttributeValue::Ns(union(a, b)),
            (Some(AttributeValue::Bs(a)), AttributeValue::Bs(b)) => AttributeValue::Bs(union(a, b)),
            _ => {
                return Err(invalid_operand(
                    "ADD takes a number or a set of the attribute's type",
                ))
            }
        };
        put_path(item, path, new)?;
    }
    for (path, value) in &update.delete {
        let remaining = match (resolve(item, path), value) {
            (None, AttributeValue::Ss(_) | AttributeValue::Ns(_) | AttributeValue::Bs(_)) => {
                continue
            }
            (Some(AttributeValue::Ss(a)), AttributeValue::Ss(b)) => {
                difference(a, b).map(AttributeValue::Ss)
            }
            (Some(AttributeValue::Ns(a)), AttributeValue::Ns(b)) => {
                difference(a, b).map(AttributeValue::Ns)
            }
            (Some(AttributeValue::Bs(a)), AttributeValue::Bs(b)) => {
                difference(a, b).map(AttributeValue::Bs)
            }
            _ => {
                return Err(invalid_operand(
                    "DELETE takes a set of the attribute's type",
                ))
            }
        };
        match remaining {
            Some(v) => put_path(item, path, v)?,
            None => remove_path(item, path),
        }
    }
    Ok(touched)
}

fn union<T: Clone + PartialEq>(a: &[T], b: &[T]) -> Vec<T> {
    let mut out = a.to_vec();
    for x in b {
        if !out.contains(x) {
            out.push(x.clone());
        }
    }
    out
}

/// `a` without `b`; `None` when nothing is left (the attribute goes).
fn difference<T: Clone + PartialEq>(a: &[T], b: &[T]) -> Option<Vec<T>> {
    let out: Vec<T> = a.iter().filter(|x| !b.contains(x)).cloned().collect();
    (!out.is_empty()).then_some(out)
}

/// The item with only the attributes at `paths` (a projection expression).
pub fn project(item: &Item, paths: &[Path]) -> Item {
    enum Node {
        Leaf(AttributeValue),
        Map(BTreeMap<String, Node>),
        List(BTreeMap<usize, Node>),
    }
    fn insert(node: &mut Node, rest: &[PathElem], value: &AttributeValue) {
        let Some((first, tail)) = rest.split_first() else {
            *node = Node::Leaf(value.clone());
            return;
        };
        match (first, node) {
            // A whole value projected already includes this part.
            (_, Node::Leaf(_)) => {}
            (PathElem::Key(k), node) => {
                if !matches!(node, Node::Map(_)) {
                    *node = Node::Map(BTreeMap::new());
                }
                if let Node::Map(m) = node {
                    let child = m
                        .entry(k.clone())
                        .or_insert_with(|| Node::Map(BTreeMap::new()));
                    insert(child, tail, value);
                }
            }
            (PathElem::Index(i), node) => {
                if !matches!(node, Node::List(_)) {
                    *node = Node::List(BTreeMap::new());
                }
                if let Node::List(l) = node {
                    let child = l.entry(*i).or_insert_with(|| Node::Map(BTreeMap::new()));
                    insert(child, tail, value);
                }
            }
        }
    }
    fn build(node: Node) -> AttributeValue {
        match node {
            Node::Leaf(v) => v,
            Node::Map(m) => AttributeValue::M(m.into_iter().map(|(k, n)| (k, build(n))).collect()),
            Node::List(l) => AttributeValue::L(l.into_values().map(build).collect()),
        }
    }
    let mut root = BTreeMap::new();
    for path in paths {
        let Some(value) = resolve(item, path) else {
            continue;
        };
        let Some((PathElem::Key(top), rest)) = path.0.split_first() else {
            continue;
        };
        let node = root
            .entry(top.clone())
            .or_insert_with(|| Node::Map(BTreeMap::new()));
        if rest.is_empty() {
            *node = Node::Leaf(value.clone());
        } else {
            insert(node, rest, value);
        }
    }
    root.into_iter().map(|(k, n)| (k, build(n))).collect()
}

#[cfg(test)]
#[path = "evaluate_tests.rs"]
mod tests;
