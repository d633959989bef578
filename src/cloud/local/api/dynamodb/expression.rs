//! DynamoDB's expression languages, parsed: condition expressions
//! (`ConditionExpression`, `FilterExpression`, `KeyConditionExpression`),
//! update expressions (`SET a = :v, b = b + :one REMOVE c ADD n :one`) and
//! projection expressions (`a, #b.c[0]`), with their placeholders
//! (`#name` from `ExpressionAttributeNames`, `:value` from
//! `ExpressionAttributeValues`) resolved while parsing.
//!
//! Precedence, lowest first, as DynamoDB documents it: `OR`, `AND`, `NOT`,
//! then comparisons, `BETWEEN`, `IN` and the functions. A syntax error is a
//! `ValidationException` naming the expression, the token and where.
//! Reserved words are not refused here (DynamoDB refuses ~570 of them
//! unless written as `#name`): an expression DynamoDB accepts is accepted.

use super::super::ApiError;
use super::attribute::AttributeValue;
pub use super::placeholders::Placeholders;
use super::tokens::{syntax, tokenize, Tok};
use std::collections::BTreeSet;

/// One step of a document path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathElem {
    Key(String),
    Index(usize),
}

/// A document path: `a.b[2].c` → `[Key a, Key b, Index 2, Key c]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path(pub Vec<PathElem>);

impl Path {
    /// The top-level attribute the path starts at.
    pub fn top(&self) -> &str {
        match self.0.first() {
            Some(PathElem::Key(k)) => k,
            _ => "",
        }
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            match e {
                PathElem::Key(k) if i == 0 => write!(f, "{k}")?,
                PathElem::Key(k) => write!(f, ".{k}")?,
                PathElem::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A value a condition compares.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Path(Path),
    Value(AttributeValue),
    /// `size(path)`.
    Size(Path),
}

/// `=`, `<>`, `<`, `<=`, `>`, `>=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A condition expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Compare(Operand, Comparator, Operand),
    Between(Operand, Operand, Operand),
    In(Operand, Vec<Operand>),
    AttributeExists(Path),
    AttributeNotExists(Path),
    AttributeType(Path, Operand),
    BeginsWith(Operand, Operand),
    Contains(Operand, Operand),
    And(Box<Condition>, Box<Condition>),
    Or(Box<Condition>, Box<Condition>),
    Not(Box<Condition>),
}

/// The right-hand side of a `SET` action.
#[derive(Debug, Clone, PartialEq)]
pub enum SetValue {
    Path(Path),
    Value(AttributeValue),
    IfNotExists(Path, Box<SetValue>),
    ListAppend(Box<SetValue>, Box<SetValue>),
    Plus(Box<SetValue>, Box<SetValue>),
    Minus(Box<SetValue>, Box<SetValue>),
}

/// An update expression's four clauses.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Update {
    pub set: Vec<(Path, SetValue)>,
    pub remove: Vec<Path>,
    pub add: Vec<(Path, AttributeValue)>,
    pub delete: Vec<(Path, AttributeValue)>,
}

impl Update {
    /// Every path the update writes.
    pub fn paths(&self) -> Vec<&Path> {
        self.set
            .iter()
            .map(|(p, _)| p)
            .chain(self.remove.iter())
            .chain(self.add.iter().map(|(p, _)| p))
            .chain(self.delete.iter().map(|(p, _)| p))
            .collect()
    }
}

struct Parser<'a> {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    text: &'a str,
    kind: &'a str,
    ph: &'a Placeholders,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, kind: &'a str, ph: &'a Placeholders) -> Result<Parser<'a>, ApiError> {
        let toks = tokenize(text, kind)?;
        if toks.is_empty() {
            return Err(ApiError::validation(format!(
                "Invalid {kind}: The expression can not be empty;"
            )));
        }
        Ok(Parser {
            toks,
            pos: 0,
            text,
            kind,
            ph,
        })
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }

    fn peek_at(&self, offset: usize) -> Option<&Tok> {
        self.toks.get(self.pos + offset).map(|(t, _)| t)
    }

    fn error_here(&self) -> ApiError {
        match self.toks.get(self.pos) {
            Some((tok, at)) => syntax(self.kind, &tok.to_string(), self.text, *at),
            None => ApiError::validation(format!(
                "Invalid {}: Syntax error; token: <EOF>, near: \"{}\"",
                self.kind,
                self.text
                    .chars()
                    .rev()
                    .take(24)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<String>()
            )),
        }
    }

    fn next(&mut self) -> Option<Tok> {
        let tok = self.toks.get(self.pos).map(|(t, _)| t.clone());
        self.pos += 1;
        tok
    }

    fn eat_sym(&mut self, sym: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Sym(s)) if *s == sym) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_sym(&mut self, sym: &str) -> Result<(), ApiError> {
        if self.eat_sym(sym) {
            Ok(())
        } else {
            Err(self.error_here())
        }
    }

    fn is_keyword(&self, offset: usize, keyword: &str) -> bool {
        matches!(self.peek_at(offset), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(keyword))
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        if self.is_keyword(0, keyword) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn finish(&self) -> Result<(), ApiError> {
        if self.pos < self.toks.len() {
            Err(self.error_here())
        } else {
            Ok(())
        }
    }

    fn path(&mut self) -> Result<Path, ApiError> {
        let mut elems = vec![PathElem::Key(self.path_key()?)];
        loop {
            if self.eat_sym(".") {
                elems.push(PathElem::Key(self.path_key()?));
            } else if self.eat_sym("[") {
                let index = match self.next() {
                    Some(Tok::Int(n)) => n.parse::<usize>().map_err(|_| {
                        ApiError::validation(format!(
                            "Invalid {}: a list index {n} is too large",
                            self.kind
                        ))
                    })?,
                    _ => {
                        self.pos -= 1;
                        return Err(self.error_here());
                    }
                };
                self.expect_sym("]")?;
                elems.push(PathElem::Index(index));
            } else {
                return Ok(Path(elems));
            }
        }
    }

    fn path_key(&mut self) -> Result<String, ApiError> {
        match self.peek().cloned() {
            Some(Tok::Word(w)) => {
                self.pos += 1;
                Ok(w)
            }
            Some(Tok::Name(n)) => {
                self.pos += 1;
                self.ph.name(&n)
            }
            _ => Err(self.error_here()),
        }
    }

    // ---- conditions ---------------------------------------------------------

    fn condition(&mut self) -> Result<Condition, ApiError> {
        let mut left = self.and()?;
        while self.eat_keyword("OR") {
            let right = self.and()?;
            left = Condition::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Condition, ApiError> {
        let mut left = self.not()?;
        while self.eat_keyword("AND") {
            let right = self.not()?;
            left = Condition::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Condition, ApiError> {
        if self.eat_keyword("NOT") {
            return Ok(Condition::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Condition, ApiError> {
        if self.eat_sym("(") {
            let inner = self.condition()?;
            self.expect_sym(")")?;
            return Ok(inner);
        }
        if let (Some(Tok::Word(name)), Some(Tok::Sym("("))) =
            (self.peek().cloned(), self.peek_at(1))
        {
            if name != "size" {
                self.pos += 2;
                let condition = match name.as_str() {
                    "attribute_exists" => Condition::AttributeExists(self.path()?),
                    "attribute_not_exists" => Condition::AttributeNotExists(self.path()?),
                    "attribute_type" => {
                        let path = self.path()?;
                        self.expect_sym(",")?;
                        Condition::AttributeType(path, self.operand()?)
                    }
                    "begins_with" => {
                        let a = self.operand()?;
                        self.expect_sym(",")?;
                        Condition::BeginsWith(a, self.operand()?)
                    }
                    "contains" => {
                        let a = self.operand()?;
                        self.expect_sym(",")?;
                        Condition::Contains(a, self.operand()?)
                    }
                    other => {
                        return Err(ApiError::validation(format!(
                            "Invalid {}: Invalid function name; function: {other}",
                            self.kind
                        )))
                    }
                };
                self.expect_sym(")")?;
                return Ok(condition);
            }
        }
        let left = self.operand()?;
        if self.eat_keyword("BETWEEN") {
            let low = self.operand()?;
            if !self.eat_keyword("AND") {
                return Err(self.error_here());
            }
            let high = self.operand()?;
            return Ok(Condition::Between(left, low, high));
        }
        if self.eat_keyword("IN") {
            self.expect_sym("(")?;
            let mut list = vec![self.operand()?];
            while self.eat_sym(",") {
                list.push(self.operand()?);
            }
            self.expect_sym(")")?;
            if list.len() > 100 {
                return Err(ApiError::validation(format!(
                    "Invalid {}: The IN operator is provided with too many operands; number of operands: {}",
                    self.kind,
                    list.len()
                )));
            }
            return Ok(Condition::In(left, list));
        }
        let comparator = match self.next() {
            Some(Tok::Sym("=")) => Comparator::Eq,
            Some(Tok::Sym("<>")) => Comparator::Ne,
            Some(Tok::Sym("<")) => Comparator::Lt,
            Some(Tok::Sym("<=")) => Comparator::Le,
            Some(Tok::Sym(">")) => Comparator::Gt,
            Some(Tok::Sym(">=")) => Comparator::Ge,
            _ => {
                self.pos -= 1;
                return Err(self.error_here());
            }
        };
        let right = self.operand()?;
        Ok(Condition::Compare(left, comparator, right))
    }

    fn operand(&mut self) -> Result<Operand, ApiError> {
        match self.peek().cloned() {
            Some(Tok::Value(v)) => {
                self.pos += 1;
                Ok(Operand::Value(self.ph.value(&v)?))
            }
            Some(Tok::Word(w)) if w == "size" && self.peek_at(1) == Some(&Tok::Sym("(")) => {
                self.pos += 2;
                let path = self.path()?;
                self.expect_sym(")")?;
                Ok(Operand::Size(path))
            }
            Some(Tok::Word(w)) if is_condition_keyword(&w) => Err(self.error_here()),
            _ => Ok(Operand::Path(self.path()?)),
        }
    }

    // ---- updates ------------------------------------------------------------

    fn update(&mut self) -> Result<Update, ApiError> {
        let mut update = Update::default();
        let mut seen = BTreeSet::new();
        while self.peek().is_some() {
            let clause = match self.next() {
                Some(Tok::Word(w)) => w.to_ascii_uppercase(),
                _ => {
                    self.pos -= 1;
                    return Err(self.error_here());
                }
            };
            if !matches!(clause.as_str(), "SET" | "REMOVE" | "ADD" | "DELETE") {
                self.pos -= 1;
                return Err(self.error_here());
            }
            if !seen.insert(clause.clone()) {
                return Err(ApiError::validation(format!(
                    "Invalid {}: The \"{clause}\" section can only be used once in an update expression;",
                    self.kind
                )));
            }
            loop {
                match clause.as_str() {
                    "SET" => {
                        let path = self.path()?;
                        self.expect_sym("=")?;
                        let value = self.set_value()?;
                        update.set.push((path, value));
                    }
                    "REMOVE" => update.remove.push(self.path()?),
                    _ => {
                        let path = self.path()?;
                        let value = match self.next() {
                            Some(Tok::Value(v)) => self.ph.value(&v)?,
                            _ => {
                                self.pos -= 1;
                                return Err(self.error_here());
                            }
                        };
                        if clause == "ADD" {
                            update.add.push((path, value));
                        } else {
                            update.delete.push((path, value));
                        }
                    }
                }
                if !self.eat_sym(",") {
                    break;
                }
            }
        }
        Ok(update)
    }

    fn set_value(&mut self) -> Result<SetValue, ApiError> {
        let left = self.set_operand()?;
        if self.eat_sym("+") {
            return Ok(SetValue::Plus(
                Box::new(left),
                Box::new(self.set_operand()?),
            ));
        }
        if self.eat_sym("-") {
            return Ok(SetValue::Minus(
                Box::new(left),
                Box::new(self.set_operand()?),
            ));
        }
        Ok(left)
    }

    fn set_operand(&mut self) -> Result<SetValue, ApiError> {
        match (self.peek().cloned(), self.peek_at(1)) {
            (Some(Tok::Value(v)), _) => {
                self.pos += 1;
                Ok(SetValue::Value(self.ph.value(&v)?))
            }
            (Some(Tok::Word(w)), Some(Tok::Sym("("))) => {
                self.pos += 2;
                let value = match w.as_str() {
                    "if_not_exists" => {
                        let path = self.path()?;
                        self.expect_sym(",")?;
                        SetValue::IfNotExists(path, Box::new(self.set_operand()?))
                    }
                    "list_append" => {
                        let a = self.set_operand()?;
                        self.expect_sym(",")?;
                        SetValue::ListAppend(Box::new(a), Box::new(self.set_operand()?))
                    }
                    other => {
                        return Err(ApiError::validation(format!(
                            "Invalid {}: Invalid function name; function: {other}",
                            self.kind
                        )))
                    }
                };
                self.expect_sym(")")?;
                Ok(value)
            }
            _ => Ok(SetValue::Path(self.path()?)),
        }
    }
}

fn is_condition_keyword(word: &str) -> bool {
    ["AND", "OR", "NOT", "BETWEEN", "IN"]
        .iter()
        .any(|k| word.eq_ignore_ascii_case(k))
}

/// Parses a condition expression; `kind` names it in errors
/// (`ConditionExpression`, `FilterExpression`, `KeyConditionExpression`).
pub fn parse_condition(text: &str, kind: &str, ph: &Placeholders) -> Result<Condition, ApiError> {
    let mut parser = Parser::new(text, kind, ph)?;
    let condition = parser.condition()?;
    parser.finish()?;
    Ok(condition)
}

/// Parses an update expression; overlapping paths are refused.
pub fn parse_update(text: &str, ph: &Placeholders) -> Result<Update, ApiError> {
    let mut parser = Parser::new(text, "UpdateExpression", ph)?;
    let update = parser.update()?;
    parser.finish()?;
    let paths = update.paths();
    for (i, a) in paths.iter().enumerate() {
        for b in &paths[i + 1..] {
            let n = a.0.len().min(b.0.len());
            if a.0[..n] == b.0[..n] {
                return Err(ApiError::validation(format!(
                    "Invalid UpdateExpression: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [{a}], path two: [{b}]"
                )));
            }
        }
    }
    Ok(update)
}

/// Parses a projection expression (`a, #b.c[0]`).
pub fn parse_projection(text: &str, ph: &Placeholders) -> Result<Vec<Path>, ApiError> {
    let mut parser = Parser::new(text, "ProjectionExpression", ph)?;
    let mut paths = vec![parser.path()?];
    while parser.eat_sym(",") {
        paths.push(parser.path()?);
    }
    parser.finish()?;
    Ok(paths)
}

#[cfg(test)]
#[path = "expression_tests.rs"]
mod tests;
