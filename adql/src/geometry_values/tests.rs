//! Tests of the geometry-value UDFs against independent computations.
