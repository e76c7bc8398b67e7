//! Integration tests of almagest-adql through a DataFusion SessionContext: the UDFs
//! against brute-force formulas, and the regions extracted from optimized plans.

mod support;
mod t20_udfs;
mod t30_regions;
