//! TAP synchronous queries, formats, MAXREC, uploads.
