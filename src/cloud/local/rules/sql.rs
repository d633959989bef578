//! Lexer and parser of the rules engine's SQL subset.
//!
//! ```text
//! statement := SELECT item ("," item)* FROM 'filter' [WHERE expr]
//! item      := "*" [AS name] | expr [AS name]
//! expr      := and (OR and)*
//! and       := not (AND not)*
//! not       := NOT not | compare
//! compare   := operand [("=" | "<>" | "!=" | "<" | "<=" | ">" | ">=") operand]
//! operand   := 'string' | number | TRUE | FALSE | function | path | "(" expr ")"
//! function  := topic() | topic(n) | clientId() | principal() | timestamp()
//! path      := name ("." name)*
//! ```
//! Keywords and function names are case-insensitive, as in AWS IoT SQL.

use super::{CmpOp, Expr, Function, SelectItem};
use serde_json::Value;

/// A syntax error in a rule's SQL, with the character position it was found at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule SQL, at character {position}: {message}")]
pub struct SqlError {
    /// 0-based character offset into the SQL text.
    pub position: usize,
    /// What was expected or found.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(f64),
    Sym(&'static str),
    End,
}

struct Lexed {
    tok: Tok,
    /// Character offset of the token's first character.
    pos: usize,
}

fn err<T>(position: usize, message: impl Into<String>) -> Result<T, SqlError> {
    Err(SqlError {
        position,
        message: message.into(),
    })
}

fn lex(sql: &str) -> Result<Vec<Lexed>, SqlError> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let tok = if c.is_ascii_alphabetic() || c == '_' || c == '$' {
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | '$'))
            {
                i += 1;
            }
            Tok::Word(chars[start..i].iter().collect())
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            match text.parse::<f64>() {
                Ok(n) => Tok::Num(n),
                Err(_) => return err(start, format!("`{text}` is not a number")),
            }
        } else if c == '\'' || c == '"' {
            // Strings are quoted with ' (AWS also accepts "); a doubled quote escapes it.
            let mut text = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return err(start, "unterminated string; close it with a quote"),
                    Some(&q) if q == c && chars.get(i + 1) == Some(&c) => {
                        text.push(c);
                        i += 2;
                    }
                    Some(&q) if q == c => {
                        i += 1;
                        break;
                    }
                    Some(&other) => {
                        text.push(other);
                        i += 1;
                    }
                }
            }
            Tok::Str(text)
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let sym = match two.as_str() {
                "<>" => Some("<>"),
                "!=" => Some("!="),
                "<=" => Some("<="),
                ">=" => Some(">="),
                _ => None,
            };
            if let Some(sym) = sym {
                i += 2;
                Tok::Sym(sym)
            } else {
                i += 1;
                Tok::Sym(match c {
                    '*' => "*",
                    ',' => ",",
                    '.' => ".",
                    '(' => "(",
                    ')' => ")",
                    '=' => "=",
                    '<' => "<",
                    '>' => ">",
                    other => return err(start, format!("unexpected character `{other}`")),
                })
            }
        };
        out.push(Lexed { tok, pos: start });
    }
    out.push(Lexed {
        tok: Tok::End,
        pos: chars.len(),
    });
    Ok(out)
}

/// A recursive-descent parser over the token list.
pub(super) struct Parser {
    toks: Vec<Lexed>,
    at: usize,
}

impl Parser {
    pub(super) fn new(text: &str) -> Result<Parser, SqlError> {
        Ok(Parser {
            toks: lex(text)?,
            at: 0,
        })
    }

    fn peek(&self) -> &Tok {
        &self.toks[self.at.min(self.toks.len() - 1)].tok
    }

    fn pos(&self) -> usize {
        self.toks[self.at.min(self.toks.len() - 1)].pos
    }

    fn bump(&mut self) -> Tok {
        let tok = self.peek().clone();
        if self.at < self.toks.len() - 1 {
            self.at += 1;
        }
        tok
    }

    fn is_keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    fn eat_keyword(&mut self, kw: &str) -> bool {
        let yes = self.is_keyword(kw);
        if yes {
            self.bump();
        }
        yes
    }

    fn expect_keyword(&mut self, kw: &str) -> Result<(), SqlError> {
        if self.eat_keyword(kw) {
            Ok(())
        } else {
            err(
                self.pos(),
                format!("expected {kw}, found {}", describe(self.peek())),
            )
        }
    }

    fn eat_sym(&mut self, sym: &str) -> bool {
        let yes = matches!(self.peek(), Tok::Sym(s) if *s == sym);
        if yes {
            self.bump();
        }
        yes
    }

    fn expect_sym(&mut self, sym: &str) -> Result<(), SqlError> {
        if self.eat_sym(sym) {
            Ok(())
        } else {
            err(
                self.pos(),
                format!("expected `{sym}`, found {}", describe(self.peek())),
            )
        }
    }

    /// `SELECT items FROM 'filter' [WHERE expr]`, returning the items, the
    /// filter with its position, and the condition.
    pub(super) fn statement(
        &mut self,
    ) -> Result<(Vec<SelectItem>, String, usize, Option<Expr>), SqlError> {
        self.expect_keyword("SELECT")?;
        let mut items = vec![self.item()?];
        while self.eat_sym(",") {
            items.push(self.item()?);
        }
        self.expect_keyword("FROM")?;
        let filter_pos = self.pos();
        let filter = match self.bump() {
            Tok::Str(s) => s,
            other => {
                return err(
                    filter_pos,
                    format!(
                        "expected the topic filter in quotes, as in FROM 'a/+/b', found {}",
                        describe(&other)
                    ),
                )
            }
        };
        let condition = if self.eat_keyword("WHERE") {
            Some(self.expr()?)
        } else {
            None
        };
        if *self.peek() != Tok::End {
            return err(
                self.pos(),
                format!("unexpected {} after the statement", describe(self.peek())),
            );
        }
        Ok((items, filter, filter_pos, condition))
    }

    fn item(&mut self) -> Result<SelectItem, SqlError> {
        if self.eat_sym("*") {
            let alias = self.alias()?;
            return Ok(SelectItem::Wildcard { alias });
        }
        let expr = self.expr()?;
        let alias = self.alias()?;
        Ok(SelectItem::Expr { expr, alias })
    }

    fn alias(&mut self) -> Result<Option<String>, SqlError> {
        if !self.eat_keyword("AS") {
            return Ok(None);
        }
        let pos = self.pos();
        match self.bump() {
            Tok::Word(w) if is_reserved(&w) => err(
                pos,
                format!(
                    "expected a name after AS, found the keyword {}",
                    w.to_uppercase()
                ),
            ),
            Tok::Word(w) | Tok::Str(w) => Ok(Some(w)),
            other => err(
                pos,
                format!("expected a name after AS, found {}", describe(&other)),
            ),
        }
    }

    /// A whole expression, for substitution templates (`${topic(3)}`).
    pub(super) fn lone_expr(&mut self) -> Result<Expr, SqlError> {
        let expr = self.expr()?;
        if *self.peek() != Tok::End {
            return err(
                self.pos(),
                format!("unexpected {} after the expression", describe(self.peek())),
            );
        }
        Ok(expr)
    }

    fn expr(&mut self) -> Result<Expr, SqlError> {
        let mut left = self.and()?;
        while self.eat_keyword("OR") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, SqlError> {
        let mut left = self.not()?;
        while self.eat_keyword("AND") {
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, SqlError> {
        if self.eat_keyword("NOT") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.compare()
    }

    fn compare(&mut self) -> Result<Expr, SqlError> {
        let left = self.operand()?;
        let op = match self.peek() {
            Tok::Sym("=") => CmpOp::Eq,
            Tok::Sym("<>") | Tok::Sym("!=") => CmpOp::Ne,
            Tok::Sym("<") => CmpOp::Lt,
            Tok::Sym("<=") => CmpOp::Le,
            Tok::Sym(">") => CmpOp::Gt,
            Tok::Sym(">=") => CmpOp::Ge,
            _ => return Ok(left),
        };
        self.bump();
        let right = self.operand()?;
        Ok(Expr::Compare(Box::new(left), op, Box::new(right)))
    }

    fn operand(&mut self) -> Result<Expr, SqlError> {
        let pos = self.pos();
        match self.bump() {
            Tok::Str(s) => Ok(Expr::Literal(Value::String(s))),
            Tok::Num(n) => Ok(Expr::Literal(number(n))),
            Tok::Sym("(") => {
                let inner = self.expr()?;
                self.expect_sym(")")?;
                Ok(inner)
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("true") => Ok(Expr::Literal(Value::Bool(true))),
            Tok::Word(w) if w.eq_ignore_ascii_case("false") => {
                Ok(Expr::Literal(Value::Bool(false)))
            }
            Tok::Word(w) if is_reserved(&w) => err(
                pos,
                format!("expected a value, found the keyword {}", w.to_uppercase()),
            ),
            Tok::Word(w) => {
                if self.eat_sym("(") {
                    return self.function(&w, pos);
                }
                let mut path = vec![w];
                while self.eat_sym(".") {
                    let pos = self.pos();
                    match self.bump() {
                        Tok::Word(w) => path.push(w),
                        other => {
                            return err(
                                pos,
                                format!(
                                    "expected a field name after `.`, found {}",
                                    describe(&other)
                                ),
                            )
                        }
                    }
                }
                Ok(Expr::Path(path))
            }
            other => err(pos, format!("expected a value, found {}", describe(&other))),
        }
    }

    /// After `name(`: the supported functions.
    fn function(&mut self, name: &str, pos: usize) -> Result<Expr, SqlError> {
        let function = match name.to_ascii_lowercase().as_str() {
            "topic" => {
                if self.eat_sym(")") {
                    return Ok(Expr::Function(Function::Topic(None)));
                }
                let at = self.pos();
                match self.bump() {
                    Tok::Num(n) if n >= 1.0 && n.fract() == 0.0 => Function::Topic(Some(n as usize)),
                    other => return err(at, format!("topic(n) takes a level number from 1, found {}", describe(&other))),
                }
            }
            "clientid" => Function::ClientId,
            "principal" => Function::Principal,
            "timestamp" => Function::Timestamp,
            "get_user_property" => {
                let at = self.pos();
                match self.bump() {
                    Tok::Str(name) => Function::UserProperty(name),
                    other => return err(at, format!("get_user_property('name') takes the property's name as a string, found {}", describe(&other))),
                }
            }
            _ => {
                return err(
                    pos,
                    format!("function {name}() is not supported locally; use topic(), topic(n), clientId(), principal(), timestamp() or get_user_property('name')"),
                )
            }
        };
        self.expect_sym(")")?;
        Ok(Expr::Function(function))
    }
}

fn is_reserved(word: &str) -> bool {
    ["SELECT", "FROM", "WHERE", "AS", "AND", "OR", "NOT"]
        .iter()
        .any(|k| word.eq_ignore_ascii_case(k))
}

/// Integers stay integers in JSON output (`5`, not `5.0`).
fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Word(w) => format!("`{w}`"),
        Tok::Str(s) => format!("the string '{s}'"),
        Tok::Num(n) => format!("the number {n}"),
        Tok::Sym(s) => format!("`{s}`"),
        Tok::End => "the end of the statement".into(),
    }
}
