//! Strict ADQL 2.1: a hand-written lexer and recursive-descent parser into [`ast`], and the
//! printer that turns a parsed query into the SQL DataFusion runs.
//!
//! The grammar is the ADQL 2.1 Recommendation's, mandatory and optional features, plus
//! CASE, NULLIF and CROSS JOIN from SQL-92. Whatever it does not allow is rejected with
//! the line and column where the parser stopped and what it expected there.

pub mod ast;
pub mod lexer;
pub mod parser;

pub use parser::{is_reserved, parse_query, parse_query_with, ParseOptions, UserFunction};
