//! The query language of Almagest: ADQL and Qserv-flavoured SQL translated into the SQL
//! DataFusion runs, the spherical-geometry UDFs those translations call, and the spatial
//! constraint of a planned query.
//!
//! Code map:
//! - [`adql21`]: strict ADQL 2.1 (the TAP endpoint's language): lexer, recursive-descent
//!   parser into an AST, and [`adql_to_sql`], which prints the AST as DataFusion SQL.
//! - [`geometry_values`]: POINT/CIRCLE/POLYGON values as DALI arrays with an `xtype` field
//!   label, and the predicates and measures over them.
//! - [`translate`]: text to text. Parses with sqlparser (PostgreSQL dialect), rewrites
//!   `SELECT TOP n` into `LIMIT n` and the ADQL geometry functions (in `geometry`) into UDF
//!   calls, prints the result. Text that does not parse or needs nothing is passed through.
//! - `lowering`: the one lowering of ADQL geometry into UDF calls; the TAP printer and
//!   `geometry` (the pgwire path) describe their trees to it and print what it returns,
//!   so both front ends emit the same calls.
//! - [`shape`]: the one vocabulary of shapes (POINT, CIRCLE, BOX, POLYGON) with their
//!   names as ADQL functions, STC-S words and UDFs, and the numbers each takes.
//! - [`spatial`]: the one recogniser of spatial predicates in DataFusion expressions (both
//!   spellings, constant folding), used by [`region`] and the coordinator's joins.
//! - [`udf`]: the scalar UDFs (`scisql_s2ptincircle`, `scisql_s2angsep`, ...) built on
//!   `almagest-sky`, registered by the coordinator and every worker.
//! - [`region`]: the region implied by the filters of an optimized logical plan
//!   ([`plan_filters`] collects them, [`extract_region`] reads them), for chunk pruning.
//! - [`cells`]: the internal UDF listing the HEALPix cells a cone may touch (cross-matches
//!   and chunk-local joins hash-join on them).
//! - [`contains`]: our `contains`, replacing DataFusion's: pgwire's `CONTAINS(a, b)` without a
//!   geometry constructor, resolved by
//!   the argument types to ADQL's predicate or the string function.
//! - [`checked`]: integer `+`, `-`, `*` and `SUM(bigint)` that fail on overflow with
//!   22003 instead of wrapping (the sum keeps its BIGINT type): an analyzer rule both
//!   sides register.
//! - `row_functions`: functions of a row's numbers: the IVOA UDF catalogue's
//!   `ivo_epoch_prop_pos` (over `almagest-sky`'s epoch propagation), `ivo_healpix_index`,
//!   `ivo_healpix_center`; `photometry` holds scisql's photometry functions in that form.
//! - [`functions`]: the one list of the service's user-defined functions (forms and
//!   descriptions) that the strict ADQL parser accepts and TAP's capabilities announce.
//! - [`sized`]: `repeat`, `lpad`, `rpad` over DataFusion's, refusing results over a size
//!   cap (54000) before building them.
//! - [`execution`]: the runtime query work runs on ([`Execution`], apart from the one serving
//!   connections) and a query's stop flag ([`QueryStop`]) that every UDF here reads per batch.
//! - [`areaspec`]: the coordinator's rewrite of Qserv's `qserv_areaspec_*` pseudo-functions.
//!
//! Architecture invariants: this crate does no I/O and keeps no state; a region it extracts
//! is always a superset of the positions of the rows the filters accept.

pub mod access;
pub mod adql21;
pub mod areaspec;
pub mod cells;
pub mod checked;
pub mod contains;
pub mod error;
pub mod execution;
pub mod functions;
mod geometry;
pub mod geometry_values;
mod lowering;
pub mod nesting;
mod photometry;
pub mod region;
mod row_functions;
pub mod shape;
pub mod sized;
pub mod spatial;
pub mod translate;
pub mod udf;

pub use access::{check_sql, check_statement};
pub use adql21::{
    adql_to_sql, adql_to_sql_with, parse_query, parse_query_with, ParseOptions, UserFunction,
};
pub use areaspec::{contains_areaspec, rewrite_areaspec};
pub use cells::{cells_udf, CELLS_UDF};
pub use error::{AdqlError, Position, Result};
pub use execution::{Execution, QueryStop};
pub use functions::{service_functions, ServiceFunction};
pub use nesting::check_nesting;
pub use region::{extract_region, plan_filters};
pub use translate::translate_sql;
pub use udf::{names, register_udfs, udfs};
