//! Result writers.
