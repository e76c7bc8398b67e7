//! The distributed planner: cuts an optimized logical plan at the highest point that runs
//! chunk-locally. Below the cut is a fragment (scan, filters, projection, partial
//! aggregate, per-chunk ORDER BY + LIMIT) that the workers run; above it the merge plan
//! that DataFusion runs on the coordinator over the fragment's streamed output. Whatever
//! cannot be pushed down (joins, subqueries, windows, DISTINCT aggregates) stays in the
//! merge plan and is still correct.
//!
//! The rooms, and which way they depend (down the list, never up):
//!
//! - [`rule`]: [`DistributeRule`], the optimizer rule that tries the rewrites in order at
//!   each node; the only module that knows them all.
//! - One module per rewrite, each with a `rewrite(fragments, node)` returning the new plan
//!   or `None`: [`xmatch`] (a positional cross-match as a hash join on HEALPix cells),
//!   [`count`] (`count(*)` from the catalog), [`aggregate`] (partial aggregates on the
//!   workers, the final one here), [`topn`] (a Sort with a fetch pushed into the fragment).
//!   Chunk-local joins, which come next, get their own module `plan/joins.rs`, called from
//!   [`rule`] right after [`xmatch`] (the place is marked there).
//! - [`build`]: the fragment builder the rewrites share, turning a fragment spec or a
//!   whole rows chain into a scan of the workers' output.
//! - [`chain`]: the shared chain matching ([`chain::RowsChain`], `match_rows`,
//!   `substitute`): a chain of row-wise operators over a catalog table, over raw columns.
//! - [`cells`]: the UDF listing a cone's cells, which only the coordinator has.
//!
//! No rewrite depends on [`rule`] or on another rewrite.

pub(crate) mod aggregate;
pub(crate) mod build;
pub mod cells;
pub(crate) mod chain;
pub(crate) mod count;
pub mod rule;
pub(crate) mod topn;
pub(crate) mod xmatch;

pub use cells::{cells_udf, CELLS_UDF};
pub use rule::DistributeRule;
