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
//!   [`joins`] (a near-neighbour join of partitioned tables, run chunk by chunk on the
//!   workers over the overlap margins) is tried right after [`xmatch`].
//! - [`cone`]: the one recogniser of "position A within r of position B" in join
//!   conditions, shared by [`xmatch`] and [`joins`].
//! - [`build`]: the fragment builder the rewrites share, turning a fragment spec or a
//!   whole rows chain into a scan of the workers' output.
//! - [`chain`]: the shared chain matching ([`chain::RowsChain`], `match_rows`,
//!   `substitute`): a chain of row-wise operators over a catalog table, over raw columns.
//!
//! No rewrite depends on [`rule`] or on another rewrite.

pub(crate) mod aggregate;
pub(crate) mod build;
pub(crate) mod chain;
pub(crate) mod cone;
pub(crate) mod count;
pub(crate) mod joins;
pub mod rule;
pub(crate) mod topn;
pub(crate) mod xmatch;

pub use almagest_adql::{cells_udf, CELLS_UDF};
pub use rule::DistributeRule;
