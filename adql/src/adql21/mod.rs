//! Strict ADQL 2.1: a hand-written lexer and recursive-descent parser into [`ast`], and the
//! printer that turns a parsed query into the SQL DataFusion runs.
//!
//! The grammar is the ADQL 2.1 Recommendation's, mandatory and optional features, plus
//! CASE, NULLIF and CROSS JOIN from SQL-92. Whatever it does not allow is rejected with
//! the line and column where the parser stopped and what it expected there.

pub mod ast;
pub mod lexer;
pub mod parser;
pub mod print;
pub mod stcs;
pub mod units;

pub use parser::{is_reserved, parse_query, parse_query_with, ParseOptions, UserFunction};

use crate::error::Result;
pub use print::UnitLookup;

/// Parses `text` as strict ADQL 2.1 (accepting the UDFs of this crate as user-defined
/// functions) and prints it as SQL that DataFusion runs with the UDFs of this crate.
/// `IN_UNIT` works only on another `IN_UNIT`; see [`adql_to_sql_with`].
pub fn adql_to_sql(text: &str) -> Result<String> {
    adql_to_sql_with(text, &service_options(), None)
}

/// [`adql_to_sql`] with the parser options of a service and a lookup of column units
/// (from the column reference as written) for `IN_UNIT`.
pub fn adql_to_sql_with(
    text: &str,
    options: &ParseOptions,
    units: Option<UnitLookup<'_>>,
) -> Result<String> {
    let query = parse_query_with(text, options)?;
    print::to_sql(&query, units)
}

/// The parser options of Almagest's TAP service: its user-defined functions
/// ([`crate::functions::service_functions`]) with their arities.
pub fn service_options() -> ParseOptions {
    let user_functions = crate::functions::service_functions()
        .iter()
        .filter_map(|f| UserFunction::from_signature(f.form))
        .collect();
    ParseOptions { user_functions }
}

#[cfg(test)]
mod tests;
