//! Format versions of the records the catalog persists in its Raft log and snapshots
//! ([`super::TableMeta`], [`super::JobRecord`]). Each record carries the version of the
//! server that wrote it: a server reads every earlier version (absent fields take their
//! defaults; a record without a version is version 0, written before versions existed)
//! and refuses a newer one with a message, rather than misreading fields it does not know.
//!
//! Bump a version when a field's meaning changes or a field is added that older readers
//! must not silently drop, and add a test that reads the previous version's JSON.

use serde::{Deserialize, Deserializer};

/// The version of [`super::TableMeta`] this server writes.
pub const TABLE_META_FORMAT: u32 = 1;
/// The version of [`super::JobRecord`] this server writes.
pub const JOB_RECORD_FORMAT: u32 = 1;

fn not_newer<'de, D: Deserializer<'de>>(d: D, what: &str, current: u32) -> Result<u32, D::Error> {
    let version = u32::deserialize(d)?;
    if version > current {
        return Err(serde::de::Error::custom(format!(
            "{what} format {version} was written by a newer Almagest (this server reads \
             formats up to {current}): upgrade this server before it reads the catalog"
        )));
    }
    Ok(version)
}

/// `deserialize_with` of `TableMeta::format`.
pub(crate) fn table_meta<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    not_newer(d, "table metadata", TABLE_META_FORMAT)
}

/// `deserialize_with` of `JobRecord::format`.
pub(crate) fn job_record<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    not_newer(d, "job record", JOB_RECORD_FORMAT)
}
