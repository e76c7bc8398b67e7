//! VOTable reading for UPLOAD.
