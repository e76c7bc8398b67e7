//! Integration and property tests of `almagest-sky`, one module per area, each checked
//! against brute-force references from `common`.

mod common;
mod t10_healpix;
mod t20_distance;
mod t30_circle;
mod t40_lonlat_box;
mod t50_polygon;
mod t55_large_polygon;
mod t60_boolean;
mod t70_pruning;
mod t80_overlap;
