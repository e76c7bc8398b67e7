//! TAP/DALI request parameters.
