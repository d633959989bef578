//! DynamoDB's attribute values: the ten types an item's attributes carry
//! (`S`, `N`, `B`, `BOOL`, `NULL`, `M`, `L`, `SS`, `NS`, `BS`), read from and
//! written to the wire's JSON (`{"N": "1.5"}`), compared and sized as
//! DynamoDB does.
//!
//! Numbers are decimal, not binary: up to 38 significant digits with a
//! magnitude between 1e-130 and 1e126, compared and added exactly. A
//! [`Number`] keeps the normalized digits, so `"1.50"`, `"1.5"` and
//! `"15e-1"` are the same number (and the same key), as on DynamoDB.

use super::super::json_members::serialization;
use super::super::ApiError;
use base64::Engine;
use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// An item: attribute name → value.
pub type Item = BTreeMap<String, AttributeValue>;

/// How deep `M`/`L` may nest (DynamoDB's limit).
const MAX_DEPTH: usize = 32;
/// DynamoDB's largest item, in bytes of names and values.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// One attribute's value.
#[derive(Debug, Clone)]
pub enum AttributeValue {
    S(String),
    N(Number),
    B(Vec<u8>),
    Bool(bool),
    Null,
    M(BTreeMap<String, AttributeValue>),
    L(Vec<AttributeValue>),
    Ss(Vec<String>),
    Ns(Vec<Number>),
    Bs(Vec<Vec<u8>>),
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::validation(message)
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl AttributeValue {
    /// Reads one wire value (`{"S": "x"}`).
    pub fn from_wire(value: &Value) -> Result<AttributeValue, ApiError> {
        AttributeValue::from_wire_at(value, 0)
    }

    fn from_wire_at(value: &Value, depth: usize) -> Result<AttributeValue, ApiError> {
        if depth > MAX_DEPTH {
            return Err(bad(format!(
                "Nesting Levels have exceeded supported limits: an attribute value nests more than {MAX_DEPTH} levels"
            )));
        }
        let object = value.as_object().ok_or_else(|| {
            serialization(format!(
                "an AttributeValue must be an object such as {{\"S\": \"text\"}}, found {value}"
            ))
        })?;
        let mut entries = object.iter();
        let (tag, inner) = match (entries.next(), entries.next()) {
            (Some(entry), None) => entry,
            (None, _) => {
                return Err(bad("Supplied AttributeValue is empty, must contain exactly one of the supported datatypes"))
            }
            (Some(_), Some(_)) => {
                return Err(bad("Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes"))
            }
        };
        let text = |v: &Value| -> Result<String, ApiError> {
            v.as_str().map(str::to_string).ok_or_else(|| {
                serialization(format!(
                    "the value of an AttributeValue {tag} must be a string, found {v}"
                ))
            })
        };
        let list = |v: &Value| -> Result<Vec<Value>, ApiError> {
            v.as_array().cloned().ok_or_else(|| {
                serialization(format!(
                    "the value of an AttributeValue {tag} must be a list, found {v}"
                ))
            })
        };
        let binary = |v: &Value| -> Result<Vec<u8>, ApiError> {
            let t = text(v)?;
            b64().decode(t.as_bytes()).map_err(|e| {
                serialization(format!(
                    "the value of an AttributeValue {tag} must be base64: {e}"
                ))
            })
        };
        Ok(match tag.as_str() {
            "S" => AttributeValue::S(text(inner)?),
            "N" => AttributeValue::N(Number::parse(&text(inner)?)?),
            "B" => AttributeValue::B(binary(inner)?),
            "BOOL" => AttributeValue::Bool(inner.as_bool().ok_or_else(|| {
                serialization(format!("the value of an AttributeValue BOOL must be true or false, found {inner}"))
            })?),
            "NULL" => match inner.as_bool() {
                Some(true) => AttributeValue::Null,
                _ => return Err(bad("One or more parameter values were invalid: Null attribute value types must have the value of true")),
            },
            "M" => {
                let map = inner.as_object().ok_or_else(|| {
                    serialization(format!("the value of an AttributeValue M must be an object, found {inner}"))
                })?;
                let mut out = BTreeMap::new();
                for (k, v) in map {
                    out.insert(k.clone(), AttributeValue::from_wire_at(v, depth + 1)?);
                }
                AttributeValue::M(out)
            }
            "L" => AttributeValue::L(
                list(inner)?
                    .iter()
                    .map(|v| AttributeValue::from_wire_at(v, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            "SS" => {
                let set: Vec<String> = list(inner)?.iter().map(text).collect::<Result<_, _>>()?;
                check_set(&set, |a, b| a == b)?;
                AttributeValue::Ss(set)
            }
            "NS" => {
                let set: Vec<Number> = list(inner)?
                    .iter()
                    .map(|v| Number::parse(&text(v)?))
                    .collect::<Result<_, _>>()?;
                check_set(&set, |a, b| a == b)?;
                AttributeValue::Ns(set)
            }
            "BS" => {
                let set: Vec<Vec<u8>> = list(inner)?.iter().map(binary).collect::<Result<_, _>>()?;
                check_set(&set, |a, b| a == b)?;
                AttributeValue::Bs(set)
            }
            other => {
                return Err(serialization(format!(
                    "{other} is not an AttributeValue type; use one of S, N, B, BOOL, NULL, M, L, SS, NS, BS"
                )))
            }
        })
    }

    /// The wire form (`{"S": "x"}`).
    pub fn to_wire(&self) -> Value {
        let (tag, inner) = match self {
            AttributeValue::S(s) => ("S", Value::String(s.clone())),
            AttributeValue::N(n) => ("N", Value::String(n.to_string())),
            AttributeValue::B(b) => ("B", Value::String(b64().encode(b))),
            AttributeValue::Bool(b) => ("BOOL", Value::Bool(*b)),
            AttributeValue::Null => ("NULL", Value::Bool(true)),
            AttributeValue::M(m) => ("M", Value::Object(item_to_wire(m))),
            AttributeValue::L(l) => ("L", Value::Array(l.iter().map(|v| v.to_wire()).collect())),
            AttributeValue::Ss(s) => (
                "SS",
                Value::Array(s.iter().map(|s| Value::String(s.clone())).collect()),
            ),
            AttributeValue::Ns(s) => (
                "NS",
                Value::Array(s.iter().map(|n| Value::String(n.to_string())).collect()),
            ),
            AttributeValue::Bs(s) => (
                "BS",
                Value::Array(s.iter().map(|b| Value::String(b64().encode(b))).collect()),
            ),
        };
        let mut m = Map::new();
        m.insert(tag.to_string(), inner);
        Value::Object(m)
    }

    /// The type's name as `attribute_type` spells it.
    pub fn type_name(&self) -> &'static str {
        match self {
            AttributeValue::S(_) => "S",
            AttributeValue::N(_) => "N",
            AttributeValue::B(_) => "B",
            AttributeValue::Bool(_) => "BOOL",
            AttributeValue::Null => "NULL",
            AttributeValue::M(_) => "M",
            AttributeValue::L(_) => "L",
            AttributeValue::Ss(_) => "SS",
            AttributeValue::Ns(_) => "NS",
            AttributeValue::Bs(_) => "BS",
        }
    }

    /// Orders two values of the same scalar type (`S` by UTF-8 bytes, `N`
    /// numerically, `B` by unsigned bytes); `None` for anything else, where
    /// DynamoDB's `<`, `>`, `BETWEEN` are false.
    pub fn ordering(&self, other: &AttributeValue) -> Option<Ordering> {
        match (self, other) {
            (AttributeValue::S(a), AttributeValue::S(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
            (AttributeValue::N(a), AttributeValue::N(b)) => Some(a.cmp(b)),
            (AttributeValue::B(a), AttributeValue::B(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }

    /// `size(path)`: characters of a string, bytes of a binary, elements
    /// of a set, list or map; `None` for the others.
    pub fn size(&self) -> Option<usize> {
        match self {
            AttributeValue::S(s) => Some(s.chars().count()),
            AttributeValue::B(b) => Some(b.len()),
            AttributeValue::M(m) => Some(m.len()),
            AttributeValue::L(l) => Some(l.len()),
            AttributeValue::Ss(s) => Some(s.len()),
            AttributeValue::Ns(s) => Some(s.len()),
            AttributeValue::Bs(s) => Some(s.len()),
            AttributeValue::N(_) | AttributeValue::Bool(_) | AttributeValue::Null => None,
        }
    }

    /// Bytes the value counts toward the 400 KB item limit (DynamoDB's rules, roughly).
    pub fn stored_bytes(&self) -> usize {
        match self {
            AttributeValue::S(s) => s.len(),
            AttributeValue::N(n) => n.digits.len() / 2 + 2,
            AttributeValue::B(b) => b.len(),
            AttributeValue::Bool(_) | AttributeValue::Null => 1,
            AttributeValue::M(m) => {
                3 + m
                    .iter()
                    .map(|(k, v)| k.len() + 1 + v.stored_bytes())
                    .sum::<usize>()
            }
            AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + v.stored_bytes()).sum::<usize>(),
            AttributeValue::Ss(s) => s.iter().map(String::len).sum(),
            AttributeValue::Ns(s) => s.iter().map(|n| n.digits.len() / 2 + 2).sum(),
            AttributeValue::Bs(s) => s.iter().map(Vec::len).sum(),
        }
    }
}

impl PartialEq for AttributeValue {
    /// DynamoDB's `=`: same type and value; sets compare as sets.
    fn eq(&self, other: &AttributeValue) -> bool {
        fn same_set<T: PartialEq>(a: &[T], b: &[T]) -> bool {
            a.len() == b.len() && a.iter().all(|x| b.contains(x))
        }
        match (self, other) {
            (AttributeValue::S(a), AttributeValue::S(b)) => a == b,
            (AttributeValue::N(a), AttributeValue::N(b)) => a == b,
            (AttributeValue::B(a), AttributeValue::B(b)) => a == b,
            (AttributeValue::Bool(a), AttributeValue::Bool(b)) => a == b,
            (AttributeValue::Null, AttributeValue::Null) => true,
            (AttributeValue::M(a), AttributeValue::M(b)) => a == b,
            (AttributeValue::L(a), AttributeValue::L(b)) => a == b,
            (AttributeValue::Ss(a), AttributeValue::Ss(b)) => same_set(a, b),
            (AttributeValue::Ns(a), AttributeValue::Ns(b)) => same_set(a, b),
            (AttributeValue::Bs(a), AttributeValue::Bs(b)) => same_set(a, b),
            _ => false,
        }
    }
}

fn check_set<T>(set: &[T], eq: impl Fn(&T, &T) -> bool) -> Result<(), ApiError> {
    if set.is_empty() {
        return Err(bad(
            "One or more parameter values were invalid: a set may not be empty",
        ));
    }
    for (i, a) in set.iter().enumerate() {
        if set[i + 1..].iter().any(|b| eq(a, b)) {
            return Err(bad(
                "One or more parameter values were invalid: Input collection contains duplicates",
            ));
        }
    }
    Ok(())
}

/// Reads an item (`{"name": {"S": "x"}, …}`).
pub fn item_from_wire(value: &Value) -> Result<Item, ApiError> {
    let object = value.as_object().ok_or_else(|| {
        serialization(format!(
            "an item must be an object of attribute name to AttributeValue, found {value}"
        ))
    })?;
    let mut item = Item::new();
    for (name, v) in object {
        if name.is_empty() {
            return Err(bad(
                "One or more parameter values were invalid: an attribute name is empty",
            ));
        }
        item.insert(name.clone(), AttributeValue::from_wire(v)?);
    }
    Ok(item)
}

/// An item's wire form.
pub fn item_to_wire(item: &Item) -> Map<String, Value> {
    item.iter().map(|(k, v)| (k.clone(), v.to_wire())).collect()
}

/// Bytes an item counts toward the 400 KB limit.
pub fn item_bytes(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + v.stored_bytes()).sum()
}

/// A DynamoDB number: sign, significant digits and a decimal exponent
/// (`0.d1d2… × 10^exponent`), normalized so equal numbers are equal values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Number {
    negative: bool,
    /// Significant digits 0-9, no leading or trailing zeros; empty for zero.
    digits: Vec<u8>,
    exponent: i32,
}

/// DynamoDB's precision.
const MAX_DIGITS: usize = 38;

impl Number {
    /// Parses DynamoDB's number text (`-12.5`, `1e3`, `.5`); anything else,
    /// more than 38 significant digits, or a magnitude outside 1e-130..1e126
    /// is a `ValidationException`.
    pub fn parse(text: &str) -> Result<Number, ApiError> {
        let invalid = || {
            bad(format!(
                "The parameter cannot be converted to a numeric value: {}",
                text.chars().take(64).collect::<String>()
            ))
        };
        let bytes = text.as_bytes();
        let mut i = 0;
        let mut negative = false;
        if let Some(&c) = bytes.first() {
            if c == b'-' || c == b'+' {
                negative = c == b'-';
                i = 1;
            }
        }
        let mut mantissa = Vec::new();
        let mut point: Option<usize> = None;
        while i < bytes.len() {
            match bytes[i] {
                c @ b'0'..=b'9' => mantissa.push(c - b'0'),
                b'.' if point.is_none() => point = Some(mantissa.len()),
                b'e' | b'E' => break,
                _ => return Err(invalid()),
            }
            i += 1;
        }
        if mantissa.is_empty() {
            return Err(invalid());
        }
        let mut exp: i64 = 0;
        if i < bytes.len() {
            let rest = &text[i + 1..];
            if rest.is_empty() || rest.len() > 8 {
                return Err(invalid());
            }
            exp = rest.parse::<i64>().map_err(|_| invalid())?;
        }
        let int_len = point.unwrap_or(mantissa.len()) as i64;
        let mut exponent = int_len + exp;
        let lead = mantissa.iter().take_while(|&&d| d == 0).count();
        mantissa.drain(..lead);
        exponent -= lead as i64;
        while mantissa.last() == Some(&0) {
            mantissa.pop();
        }
        Number::checked(negative, mantissa, exponent)
    }

    fn checked(negative: bool, digits: Vec<u8>, exponent: i64) -> Result<Number, ApiError> {
        if digits.is_empty() {
            return Ok(Number {
                negative: false,
                digits,
                exponent: 0,
            });
        }
        if digits.len() > MAX_DIGITS {
            return Err(bad(
                "Attempting to store more than 38 significant digits in a Number",
            ));
        }
        if exponent > 126 {
            return Err(bad("Number overflow. Attempting to store a number with magnitude larger than supported range"));
        }
        if exponent < -129 {
            return Err(bad("Number underflow. Attempting to store a number with magnitude smaller than supported range"));
        }
        Ok(Number {
            negative,
            digits,
            exponent: exponent as i32,
        })
    }

    /// A whole number.
    pub fn from_usize(n: usize) -> Number {
        // A usize always parses.
        Number::parse(&n.to_string()).unwrap_or(Number {
            negative: false,
            digits: Vec::new(),
            exponent: 0,
        })
    }

    /// `self + other`, exactly; overflow beyond DynamoDB's range is a `ValidationException`.
    pub fn add(&self, other: &Number) -> Result<Number, ApiError> {
        if self.digits.is_empty() {
            return Ok(other.clone());
        }
        if other.digits.is_empty() {
            return Ok(self.clone());
        }
        // Each as an integer (little-endian digits) times 10^scale.
        let scale = |n: &Number| n.exponent as i64 - n.digits.len() as i64;
        let low = scale(self).min(scale(other));
        let int = |n: &Number| -> Vec<u8> {
            let mut v: Vec<u8> = vec![0; (scale(n) - low) as usize];
            let mut le: Vec<u8> = n.digits.iter().rev().copied().collect();
            v.append(&mut le);
            v
        };
        let (a, b) = (int(self), int(other));
        let (negative, magnitude) = if self.negative == other.negative {
            (self.negative, add_magnitudes(&a, &b))
        } else {
            match compare_magnitudes(&a, &b) {
                Ordering::Equal => return Ok(Number::from_usize(0)),
                Ordering::Greater => (self.negative, sub_magnitudes(&a, &b)),
                Ordering::Less => (other.negative, sub_magnitudes(&b, &a)),
            }
        };
        // Back to big-endian significant digits.
        let mut digits: Vec<u8> = magnitude.into_iter().rev().collect();
        let lead = digits.iter().take_while(|&&d| d == 0).count();
        digits.drain(..lead);
        let exponent = low + digits.len() as i64;
        while digits.last() == Some(&0) {
            digits.pop();
        }
        Number::checked(negative, digits, exponent)
    }

    /// `-self`.
    pub fn negated(&self) -> Number {
        Number {
            negative: !self.negative && !self.digits.is_empty(),
            ..self.clone()
        }
    }
}

fn add_magnitudes(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len().max(b.len()) + 1);
    let mut carry = 0;
    for i in 0..a.len().max(b.len()) {
        let s = a.get(i).copied().unwrap_or(0) + b.get(i).copied().unwrap_or(0) + carry;
        out.push(s % 10);
        carry = s / 10;
    }
    if carry > 0 {
        out.push(carry);
    }
    out
}

/// `a - b` for `a >= b`.
fn sub_magnitudes(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len());
    let mut borrow = 0i8;
    for (i, &x) in a.iter().enumerate() {
        let mut d = x as i8 - b.get(i).copied().unwrap_or(0) as i8 - borrow;
        borrow = 0;
        if d < 0 {
            d += 10;
            borrow = 1;
        }
        out.push(d as u8);
    }
    out
}

fn compare_magnitudes(a: &[u8], b: &[u8]) -> Ordering {
    let len = |v: &[u8]| v.len() - v.iter().rev().take_while(|&&d| d == 0).count();
    let (la, lb) = (len(a), len(b));
    la.cmp(&lb)
        .then_with(|| a[..la].iter().rev().cmp(b[..lb].iter().rev()))
}

impl Ord for Number {
    fn cmp(&self, other: &Number) -> Ordering {
        let sign = |n: &Number| {
            if n.digits.is_empty() {
                0
            } else if n.negative {
                -1
            } else {
                1
            }
        };
        match sign(self).cmp(&sign(other)) {
            Ordering::Equal => {}
            other => return other,
        }
        let magnitude = self
            .exponent
            .cmp(&other.exponent)
            .then_with(|| self.digits.cmp(&other.digits));
        if self.negative {
            magnitude.reverse()
        } else {
            magnitude
        }
    }
}

impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Number) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for Number {
    /// Plain decimal notation, no exponent (`1.5`, `-0.001`, `1200`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.digits.is_empty() {
            return f.write_str("0");
        }
        let digits: String = self.digits.iter().map(|d| char::from(b'0' + d)).collect();
        let sign = if self.negative { "-" } else { "" };
        let e = self.exponent;
        let len = digits.len() as i32;
        if e <= 0 {
            write!(f, "{sign}0.{}{digits}", "0".repeat((-e) as usize))
        } else if e >= len {
            write!(f, "{sign}{digits}{}", "0".repeat((e - len) as usize))
        } else {
            let (int, frac) = digits.split_at(e as usize);
            write!(f, "{sign}{int}.{frac}")
        }
    }
}

#[cfg(test)]
#[path = "attribute_tests.rs"]
mod tests;
