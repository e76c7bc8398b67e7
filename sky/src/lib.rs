//! Spherical geometry and HEALPix sky partitioning for Almagest: pure math, no I/O, no async.
//!
//! Code map:
//! - `healpix`: the per-row `_hpx` index ([`hpx29`], nested HEALPix at depth 29), chunk ids
//!   at a database's chunk depth ([`chunk_of`]), `_hpx` ranges of cells, and the cells a
//!   cross-match cone may touch ([`cone_cells`] at [`cone_cell_depth`]).
//! - `geom`: robust angular distance ([`angular_distance_deg`]) and RA normalisation.
//! - Shapes: [`Circle`], [`LonLatBox`] (Qserv box), [`SphericalPolygon`] (and [`adql_box`]).
//! - `region` and `coverage`: [`Region`] combines shapes with AND/OR, answers point
//!   containment, and lists the chunks and `_hpx` ranges a query must read, by a descent
//!   over HEALPix cells bounded by caps.
//! - `overlap`: [`overlap_chunks`], which neighbouring chunks store a row in their overlap.
//!
//! Semantics shared by all shapes: positions are (RA, Dec) in degrees; RA is taken mod 360;
//! a pole is one point whatever RA it is written with; boundaries are inside (a circle's
//! rim, a box's sides, a polygon's edges and vertices); a position with Dec outside
//! [-90, 90] or a non-finite coordinate is in no region.
//!
//! Architecture invariants: no I/O, no async, no mutable state. Coverage is conservative by
//! construction: a chunk or range is only ever dropped when a shape proves, with slack for
//! rounding, that no point of the region can hash into it. User-supplied values never panic:
//! constructors validate and return [`SkyError::InvalidArgument`]; the per-row functions
//! (`hpx29`, `chunk_of`, `overlap_chunks`) clamp or ignore garbage instead, and
//! [`check_position`] lets loaders reject it.
//!
//! ```
//! use almagest_sky::{chunk_of, overlap_chunks, Circle, Region};
//!
//! // Which depth-6 chunks can hold rows within 3 arcmin of (150, 2.2)?
//! let cone = Region::Circle(Circle::new(150.0, 2.2, 0.05)?);
//! let chunks = cone.chunks(6);
//! assert!(chunks.contains(&chunk_of(150.0, 2.2, 6)));
//! // And within each chunk file (sorted by `_hpx`), which index ranges to read?
//! let ranges = cone.hpx29_ranges(16);
//! assert!(ranges.len() <= 16);
//! // At load time: which other chunks keep a copy of this row in their 1-arcmin overlap?
//! let _ = overlap_chunks(150.0, 2.2, 6, 1.0 / 60.0);
//! # Ok::<(), almagest_sky::SkyError>(())
//! ```

mod circle;
mod coverage;
mod ellipse;
mod epoch;
mod error;
mod geom;
mod healpix;
mod lonlat_box;
mod overlap;
mod polygon;
mod region;

pub use circle::Circle;
pub use ellipse::Ellipse;
pub use epoch::{Astrometry, A_V};
pub use error::{Result, SkyError};
pub use geom::{angular_distance_deg, normalize_ra};
pub use healpix::{
    check_depth, check_position, chunk_count, chunk_of, chunk_of_hpx29, cone_cell_depth,
    cone_cells, healpix_center, healpix_index, hpx29, hpx29_range_of_cell, ChunkId, HPX_DEPTH,
};
pub use lonlat_box::LonLatBox;
pub use overlap::overlap_chunks;
pub use polygon::{adql_box, SphericalPolygon};
pub use region::Region;
