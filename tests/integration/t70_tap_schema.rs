//! TAP_SCHEMA and column metadata.
