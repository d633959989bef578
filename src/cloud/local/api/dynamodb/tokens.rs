//! The tokens of DynamoDB's expression languages: words, `#name` and
//! `:value` placeholders, list indexes and symbols, each with its offset
//! for error messages.

use super::super::ApiError;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    /// A bare word: an attribute name, keyword or function name.
    Word(String),
    /// `#name`.
    Name(String),
    /// `:value`.
    Value(String),
    /// Digits (list indexes).
    Int(String),
    Sym(&'static str),
}

impl std::fmt::Display for Tok {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tok::Word(w) | Tok::Name(w) | Tok::Value(w) | Tok::Int(w) => f.write_str(w),
            Tok::Sym(s) => f.write_str(s),
        }
    }
}

/// Longest expression accepted (DynamoDB's limit is 4 KB).
const MAX_EXPRESSION: usize = 4096;

pub(super) fn tokenize(text: &str, kind: &str) -> Result<Vec<(Tok, usize)>, ApiError> {
    if text.len() > MAX_EXPRESSION {
        return Err(ApiError::validation(format!(
            "Invalid {kind}: the expression is {} bytes, longer than DynamoDB's {MAX_EXPRESSION}",
            text.len()
        )));
    }
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let word_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    while i < chars.len() {
        let (at, c) = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let take_word = |mut j: usize| {
            while j < chars.len() && word_char(chars[j].1) {
                j += 1;
            }
            j
        };
        let slice =
            |from: usize, to: usize| -> String { chars[from..to].iter().map(|(_, c)| c).collect() };
        match c {
            '#' | ':' => {
                let end = take_word(i + 1);
                if end == i + 1 {
                    return Err(syntax(kind, &c.to_string(), text, at));
                }
                let word = slice(i, end);
                out.push((
                    if c == '#' {
                        Tok::Name(word)
                    } else {
                        Tok::Value(word)
                    },
                    at,
                ));
                i = end;
            }
            c if c.is_ascii_digit() => {
                let mut end = i;
                while end < chars.len() && chars[end].1.is_ascii_digit() {
                    end += 1;
                }
                if end < chars.len() && word_char(chars[end].1) {
                    let end = take_word(end);
                    out.push((Tok::Word(slice(i, end)), at));
                    i = end;
                } else {
                    out.push((Tok::Int(slice(i, end)), at));
                    i = end;
                }
            }
            c if word_char(c) => {
                let end = take_word(i);
                out.push((Tok::Word(slice(i, end)), at));
                i = end;
            }
            _ => {
                let next = chars.get(i + 1).map(|(_, c)| *c);
                let (sym, len): (&'static str, usize) = match (c, next) {
                    ('<', Some('>')) => ("<>", 2),
                    ('<', Some('=')) => ("<=", 2),
                    ('>', Some('=')) => (">=", 2),
                    ('<', _) => ("<", 1),
                    ('>', _) => (">", 1),
                    ('=', _) => ("=", 1),
                    ('(', _) => ("(", 1),
                    (')', _) => (")", 1),
                    ('[', _) => ("[", 1),
                    (']', _) => ("]", 1),
                    (',', _) => (",", 1),
                    ('.', _) => (".", 1),
                    ('+', _) => ("+", 1),
                    ('-', _) => ("-", 1),
                    _ => return Err(syntax(kind, &c.to_string(), text, at)),
                };
                out.push((Tok::Sym(sym), at));
                i += len;
            }
        }
    }
    Ok(out)
}

pub(super) fn syntax(kind: &str, token: &str, text: &str, at: usize) -> ApiError {
    let near: String = text.get(at..).unwrap_or("").chars().take(24).collect();
    ApiError::validation(format!(
        "Invalid {kind}: Syntax error; token: \"{token}\", near: \"{near}\""
    ))
}
