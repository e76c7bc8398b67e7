//! The ADQL 2.1 tokenizer: regular and delimited identifiers, string and numeric
//! literals, operators and `--` comments, each token with the line and column it starts at.

use crate::error::{AdqlError, Position, Result};

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenKind {
    /// A regular identifier or keyword, as written.
    Word(String),
    /// A `"delimited identifier"`, with `""` already unescaped.
    Delimited(String),
    /// A `'string literal'`, with `''` already unescaped.
    String(String),
    /// An unsigned decimal integer such as `42`.
    Integer(String),
    /// An exact or approximate numeric literal with a period or an exponent.
    Decimal(String),
    /// A hexadecimal literal such as `0x2F`, as written.
    Hex(String),
    /// An operator or punctuation: `( ) , . * + - / = <> != < > <= >= || | & ^ ~ ;`.
    Symbol(&'static str),
    /// The end of the text.
    End,
}

/// A token and the position of its first character.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub kind: TokenKind,
    pub position: Position,
}

impl Token {
    /// How the token is named in error messages.
    pub fn describe(&self) -> String {
        match &self.kind {
            TokenKind::Word(w) => format!("'{w}'"),
            TokenKind::Delimited(d) => format!("\"{}\"", d.replace('"', "\"\"")),
            TokenKind::String(s) => format!("the string '{}'", s.replace('\'', "''")),
            TokenKind::Integer(n) | TokenKind::Decimal(n) | TokenKind::Hex(n) => {
                format!("the number {n}")
            }
            TokenKind::Symbol(s) => format!("'{s}'"),
            TokenKind::End => "the end of the query".to_string(),
        }
    }
}

const SYMBOLS: [&str; 21] = [
    "<>", "!=", "<=", ">=", "||", "(", ")", ",", ".", "*", "+", "-", "/", "=", "<", ">", "|", "&",
    "^", "~", ";",
];

/// Splits `text` into tokens; the last one is always [`TokenKind::End`].
pub fn tokenize(text: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let mut line = 1u64;
    let mut column = 1u64;
    // Advances over `n` characters, keeping line and column up to date.
    let advance = |i: &mut usize, line: &mut u64, column: &mut u64, n: usize| {
        for _ in 0..n {
            if chars.get(*i) == Some(&'\n') {
                *line += 1;
                *column = 1;
            } else {
                *column += 1;
            }
            *i += 1;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let position = Position { line, column };
        if c.is_whitespace() {
            advance(&mut i, &mut line, &mut column, 1);
            continue;
        }
        if c == '-' && chars.get(i + 1) == Some(&'-') {
            let mut n = 0;
            while i + n < chars.len() && chars[i + n] != '\n' {
                n += 1;
            }
            advance(&mut i, &mut line, &mut column, n);
            continue;
        }
        if c.is_ascii_alphabetic() {
            let mut n = 0;
            while i + n < chars.len()
                && (chars[i + n].is_ascii_alphanumeric() || chars[i + n] == '_')
            {
                n += 1;
            }
            let word: String = chars[i..i + n].iter().collect();
            tokens.push(Token {
                kind: TokenKind::Word(word),
                position,
            });
            advance(&mut i, &mut line, &mut column, n);
            continue;
        }
        if c == '"' || c == '\'' {
            let mut value = String::new();
            let mut n = 1;
            loop {
                match chars.get(i + n) {
                    None => {
                        let what = if c == '"' {
                            "delimited identifier"
                        } else {
                            "string literal"
                        };
                        return Err(AdqlError::syntax(
                            Some(position),
                            format!("expected a closing {c} for the {what} that starts here, found the end of the query"),
                        ));
                    }
                    Some(&q) if q == c => {
                        if chars.get(i + n + 1) == Some(&c) {
                            value.push(c);
                            n += 2;
                        } else {
                            n += 1;
                            break;
                        }
                    }
                    Some(&other) => {
                        value.push(other);
                        n += 1;
                    }
                }
            }
            let kind = if c == '"' {
                if value.is_empty() {
                    return Err(AdqlError::syntax(
                        Some(position),
                        "expected at least one character in the delimited identifier, found \"\"",
                    ));
                }
                TokenKind::Delimited(value)
            } else {
                TokenKind::String(value)
            };
            tokens.push(Token { kind, position });
            advance(&mut i, &mut line, &mut column, n);
            continue;
        }
        if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let (kind, n) = number(&chars[i..], position)?;
            tokens.push(Token { kind, position });
            advance(&mut i, &mut line, &mut column, n);
            continue;
        }
        let rest: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        if let Some(symbol) = SYMBOLS.iter().find(|s| rest.starts_with(**s)) {
            let n = symbol.len();
            tokens.push(Token {
                kind: TokenKind::Symbol(symbol),
                position,
            });
            advance(&mut i, &mut line, &mut column, n);
            continue;
        }
        let message = if c == '_' {
            let mut n = 0;
            while i + n < chars.len()
                && (chars[i + n].is_ascii_alphanumeric() || chars[i + n] == '_')
            {
                n += 1;
            }
            let word: String = chars[i..i + n].iter().collect();
            format!(
                "expected an identifier starting with a letter, found '{word}' (a name that starts \
                 with '_' must be written as a delimited identifier: \"{word}\")"
            )
        } else {
            format!("unexpected character '{c}': expected an identifier, a literal or an operator")
        };
        return Err(AdqlError::syntax(Some(position), message));
    }
    tokens.push(Token {
        kind: TokenKind::End,
        position: Position { line, column },
    });
    Ok(tokens)
}

/// Reads a numeric literal at the start of `chars`; returns it and its length.
fn number(chars: &[char], position: Position) -> Result<(TokenKind, usize)> {
    let digits = |from: usize| {
        let mut n = from;
        while n < chars.len() && chars[n].is_ascii_digit() {
            n += 1;
        }
        n
    };
    if chars[0] == '0' && matches!(chars.get(1), Some('x' | 'X')) {
        let mut n = 2;
        while n < chars.len() && chars[n].is_ascii_hexdigit() {
            n += 1;
        }
        if n == 2 {
            return Err(AdqlError::syntax(
                Some(position),
                "expected hexadecimal digits after 0x",
            ));
        }
        check_separated(chars, n, position)?;
        return Ok((TokenKind::Hex(chars[..n].iter().collect()), n));
    }
    let mut n = digits(0);
    let mut exact_integer = true;
    if chars.get(n) == Some(&'.') {
        exact_integer = false;
        n = digits(n + 1);
    }
    if matches!(chars.get(n), Some('e' | 'E')) {
        let mut m = n + 1;
        if matches!(chars.get(m), Some('+' | '-')) {
            m += 1;
        }
        let end = digits(m);
        if end == m {
            return Err(AdqlError::syntax(
                Some(position),
                format!(
                    "expected the digits of an exponent after '{}'",
                    chars[..m].iter().collect::<String>()
                ),
            ));
        }
        exact_integer = false;
        n = end;
    }
    check_separated(chars, n, position)?;
    let text: String = chars[..n].iter().collect();
    Ok((
        if exact_integer {
            TokenKind::Integer(text)
        } else {
            TokenKind::Decimal(text)
        },
        n,
    ))
}

/// A number directly followed by a letter (`12abc`) is not two tokens in SQL.
fn check_separated(chars: &[char], n: usize, position: Position) -> Result<()> {
    match chars.get(n) {
        Some(c) if c.is_ascii_alphanumeric() || *c == '_' => Err(AdqlError::syntax(
            Some(position),
            format!(
                "expected a space or an operator after the number {}, found '{c}'",
                chars[..n].iter().collect::<String>()
            ),
        )),
        _ => Ok(()),
    }
}
