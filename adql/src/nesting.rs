//! How deeply a statement may nest, checked on its text before anything parses it.
//!
//! Parsers, planners and optimizers walk expressions recursively, and a statement nested
//! thousands deep (`((((1))))`, `1+1+...+1`, `a AND b AND ...`) would exhaust a thread's
//! stack and take the whole process down. Every front end therefore measures the text
//! first, with one scan that keeps no tree and recurses nowhere: the depth of parentheses
//! (function calls and subqueries included) and, at each depth, the length of a chain of
//! binary operators (which parsers build into a tree as deep as the chain is long), and
//! the depth of nested function calls: sqlparser (0.62, under DataFusion 55) parses the
//! arguments of a call twice on the PostgreSQL dialect, so its time doubles with each
//! level of calls (`ABS(ABS(...))`: 1 s at 18 levels, hours at 30; fixed upstream in
//! apache/datafusion-sqlparser-rs#2392, not yet in the version we build with). Past
//! [`MAX_NESTING`], [`MAX_CHAIN`] or [`MAX_CALL_NESTING`] the statement fails with
//! SQLSTATE 54001; below them every stage has room, on the threads the server runs
//! queries on, and parses in well under a second.

use crate::error::{AdqlError, Position, Result};

/// Deepest parenthesis nesting accepted.
pub const MAX_NESTING: usize = 200;

/// Longest chain of binary operators (`+`, `-`, `*`, `/`, `||`, `AND`, `OR`) accepted at
/// one depth (comparisons do not chain). A 500-term sum of a column took 18 s to plan in
/// a debug build: planning is quadratic in the chain.
pub const MAX_CHAIN: usize = 256;

/// Deepest nesting of function calls accepted (see the module documentation).
pub const MAX_CALL_NESTING: usize = 16;

/// Words that may stand before a parenthesis without calling a function.
const KEYWORDS: &[&str] = &[
    "all",
    "and",
    "any",
    "as",
    "between",
    "by",
    "case",
    "else",
    "except",
    "exists",
    "from",
    "in",
    "intersect",
    "is",
    "join",
    "lateral",
    "like",
    "not",
    "on",
    "or",
    "over",
    "select",
    "some",
    "table",
    "then",
    "union",
    "using",
    "values",
    "when",
    "where",
    "with",
];

/// The parser recursion limit that lets through everything [`check_nesting`] accepts
/// (each level of parentheses costs a parser a few frames).
pub const PARSER_RECURSION_LIMIT: usize = 4 * MAX_NESTING + 64;

/// Fails with [`AdqlError::TooComplex`] (54001) if `text` nests deeper than
/// [`MAX_NESTING`] parentheses or chains more than [`MAX_CHAIN`] binary operators at one
/// depth. Quoted strings, quoted identifiers and comments are skipped; the scan is a
/// guard, not a parser, and text it lets through may still be wrong in other ways.
pub fn check_nesting(text: &str) -> Result<()> {
    let bytes = text.as_bytes();
    let (mut line, mut line_start) = (1u64, 0usize);
    let position = |i: usize, line: u64, line_start: usize| Position {
        line,
        column: (text[line_start..i].chars().count() + 1) as u64,
    };
    // Operators counted at each open depth, and whether its parenthesis opened a call.
    let mut chains: Vec<usize> = vec![0];
    let mut calls: Vec<bool> = vec![false];
    let mut open_calls = 0usize;
    // Whether the last thing read was a word that a parenthesis would make a call.
    let mut after_name = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let next = bytes.get(i + 1).copied();
        if !b.is_ascii_whitespace() && !b.is_ascii_alphabetic() && b != b'_' && b != b'(' {
            after_name = false;
        }
        match b {
            b'\n' => {
                line += 1;
                line_start = i + 1;
            }
            b'\'' | b'"' => {
                // A quoted string or identifier; a doubled quote stays inside.
                let quote = b;
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == b'\n' {
                        line += 1;
                        line_start = i + 1;
                    }
                    if bytes[i] == quote {
                        if bytes.get(i + 1) == Some(&quote) {
                            i += 1;
                        } else {
                            break;
                        }
                    }
                    i += 1;
                }
            }
            b'-' if next == Some(b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if next == Some(b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    if bytes[i] == b'\n' {
                        line += 1;
                        line_start = i + 1;
                    }
                    i += 1;
                }
                i += 2;
                continue;
            }
            b'(' => {
                chains.push(0);
                calls.push(after_name);
                if after_name {
                    open_calls += 1;
                    if open_calls > MAX_CALL_NESTING {
                        return Err(AdqlError::too_complex(
                            Some(position(i, line, line_start)),
                            format!(
                                "statement is too complex: function calls nested more than \
                                 {MAX_CALL_NESTING} deep"
                            ),
                        ));
                    }
                }
                after_name = false;
                if chains.len() - 1 > MAX_NESTING {
                    return Err(AdqlError::too_complex(
                        Some(position(i, line, line_start)),
                        format!(
                            "statement is too complex: parentheses nested more than \
                             {MAX_NESTING} deep"
                        ),
                    ));
                }
            }
            b')' => {
                if chains.len() > 1 {
                    chains.pop();
                    if calls.pop() == Some(true) {
                        open_calls -= 1;
                    }
                }
            }
            _ => {
                let operator = match b {
                    b'+' | b'*' | b'/' | b'%' | b'-' | b'^' => true,
                    b'|' => next == Some(b'|'),
                    b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                        let start = i;
                        while i < bytes.len()
                            && (bytes[i].is_ascii_alphanumeric()
                                || bytes[i] == b'_'
                                || bytes[i] >= 0x80)
                        {
                            i += 1;
                        }
                        let word = text[start..i].to_ascii_lowercase();
                        if word == "and" || word == "or" {
                            count(&mut chains, start, line, line_start, &position)?;
                        }
                        after_name = !KEYWORDS.contains(&word.as_str());
                        continue;
                    }
                    _ => false,
                };
                if operator {
                    count(&mut chains, i, line, line_start, &position)?;
                    if b == b'|' {
                        i += 1;
                    }
                }
            }
        }
        i += 1;
    }
    Ok(())
}

fn count(
    chains: &mut [usize],
    i: usize,
    line: u64,
    line_start: usize,
    position: &dyn Fn(usize, u64, usize) -> Position,
) -> Result<()> {
    let Some(top) = chains.last_mut() else {
        return Ok(());
    };
    *top += 1;
    if *top > MAX_CHAIN {
        return Err(AdqlError::too_complex(
            Some(position(i, line, line_start)),
            format!(
                "statement is too complex: more than {MAX_CHAIN} operators in one expression \
                 (split it, or use IN (...) for a list of values)"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complex(text: &str) -> bool {
        matches!(check_nesting(text), Err(AdqlError::TooComplex { .. }))
    }

    #[test]
    fn t10_limits_on_depth_and_chains() {
        let sum = |n: usize| format!("SELECT {}", vec!["1"; n + 1].join("+"));
        assert!(check_nesting(&sum(MAX_CHAIN)).is_ok());
        assert!(complex(&sum(MAX_CHAIN + 1)));
        let ands = |n: usize| format!("SELECT 1 WHERE {}", vec!["a = 1"; n + 1].join(" AND "));
        assert!(check_nesting(&ands(MAX_CHAIN)).is_ok());
        assert!(complex(&ands(MAX_CHAIN + 1)));
        let concat = |n: usize| format!("SELECT {}", vec!["'a'"; n + 1].join(" || "));
        assert!(check_nesting(&concat(MAX_CHAIN)).is_ok());
        assert!(complex(&concat(MAX_CHAIN + 1)));
        let parens = |n: usize| format!("SELECT {}1{}", "(".repeat(n), ")".repeat(n));
        assert!(check_nesting(&parens(MAX_NESTING)).is_ok());
        assert!(complex(&parens(MAX_NESTING + 1)));
        let abs = |n: usize| format!("SELECT {}1{}", "ABS(".repeat(n), ")".repeat(n));
        assert!(check_nesting(&abs(MAX_CALL_NESTING)).is_ok());
        assert!(complex(&abs(MAX_CALL_NESTING + 1)));
        assert!(complex(&abs(1000)));
        // Parentheses after keywords, and in a call's arguments, are not calls.
        let sub = |n: usize| {
            format!(
                "SELECT * FROM {}t{}",
                "(SELECT * FROM ".repeat(n),
                ") AS s".repeat(n)
            )
        };
        assert!(check_nesting(&sub(MAX_CALL_NESTING * 3)).is_ok());
        assert!(check_nesting(&format!("SELECT f({}1{})", "(".repeat(50), ")".repeat(50))).is_ok());
        assert!(
            check_nesting("SELECT 1 WHERE x IN (1, 2) AND EXISTS (SELECT 1) AND NOT (a OR b)")
                .is_ok()
        );
        // Each level counts its own chain: a long list of short sums is fine.
        let many = (0..2000).map(|_| "(1+1)").collect::<Vec<_>>().join(", ");
        assert!(check_nesting(&format!("SELECT {many}")).is_ok());
        // A long IN list has no operators; quoted text and comments count nothing.
        let list = (0..10_000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert!(check_nesting(&format!("SELECT 1 WHERE x IN ({list})")).is_ok());
        let quoted = format!(
            "SELECT '{}' AS \"{}\" -- {}",
            "(+".repeat(5000),
            ")+".repeat(900),
            "(".repeat(900)
        );
        assert!(check_nesting(&quoted).is_ok());
        assert!(check_nesting(&format!("SELECT 1 /* {} */", "((".repeat(900))).is_ok());
        // The error says where.
        let err = check_nesting(&format!("SELECT\n  {}", "(".repeat(300))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2, column 203: statement is too complex: parentheses nested more than 200 deep"
        );
    }
}
