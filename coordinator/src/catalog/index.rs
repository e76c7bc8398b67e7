//! The director index: for every partitioned table, its unique key -> the chunk holding the
//! row (and the row's position), so that `WHERE key = X`, `IN (...)` and key ranges read
//! only the owning chunks.
//!
//! It lives in its own RocksDB database beside the Raft catalog (`<data_dir>/director_index`),
//! not in the catalog: it has one entry per row, far too many for the Raft log or the
//! in-memory catalog. A load writes its entries under its load id while it runs
//! (`PutKeys`, checked for duplicate keys as they arrive); nothing reads them until the
//! catalog's one `PublishTable` names the load, and only then when the published
//! [`super::TableMeta::key_index`] says the index is complete. An aborted load's entries
//! are deleted, and [`DirectorIndex::sweep`] removes those of loads no table names (a
//! coordinator that died mid-load) when the coordinator starts.
//!
//! | key | value |
//! |---|---|
//! | `k` load id `\0` encoded key | chunk (u64 big-endian), RA, Dec (f64 little-endian) |
//! | `m` load id | empty: the load has entries |
//!
//! Keys are encoded so that byte order is value order: signed integers as big-endian with
//! the sign bit flipped, unsigned integers big-endian, strings as their UTF-8 bytes. So a
//! key range is a range of the database.
//!
//! Not yet replicated: with several coordinators (the Raft cluster still to come), each
//! would need the index of every load, which the Raft snapshot does not carry.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::path::Path;
use std::sync::Mutex;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type, UInt64Type,
    UInt8Type,
};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::common::ScalarValue;
use rocksdb::{BlockBasedOptions, Direction, IteratorMode, Options, ReadOptions, WriteBatch};

use crate::error::{CoordinatorError, Result};

type IndexDb = rocksdb::DBWithThreadMode<rocksdb::SingleThreaded>;

/// Most index entries a key range may scan at planning time; a wider range reads every
/// chunk instead (the result is the same, only slower).
pub const MAX_RANGE_ENTRIES: usize = 100_000;

/// Whether a key column of this type can be indexed (integers and strings).
pub fn indexable(t: &DataType) -> bool {
    t.is_integer() || matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// The order-preserving bytes of every value of a key array (no NULLs).
fn encode_array(keys: &ArrayRef) -> Result<Vec<Vec<u8>>> {
    macro_rules! signed {
        ($t:ty) => {
            keys.as_primitive::<$t>()
                .values()
                .iter()
                .map(|v| ((*v as i64 as u64) ^ (1 << 63)).to_be_bytes().to_vec())
                .collect()
        };
    }
    macro_rules! unsigned {
        ($t:ty) => {
            keys.as_primitive::<$t>()
                .values()
                .iter()
                .map(|v| (*v as u64).to_be_bytes().to_vec())
                .collect()
        };
    }
    if keys.null_count() > 0 {
        return Err(CoordinatorError::BadInput(
            "the key column holds NULL values".into(),
        ));
    }
    Ok(match keys.data_type() {
        DataType::Int8 => signed!(Int8Type),
        DataType::Int16 => signed!(Int16Type),
        DataType::Int32 => signed!(Int32Type),
        DataType::Int64 => signed!(Int64Type),
        DataType::UInt8 => unsigned!(UInt8Type),
        DataType::UInt16 => unsigned!(UInt16Type),
        DataType::UInt32 => unsigned!(UInt32Type),
        DataType::UInt64 => unsigned!(UInt64Type),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let strings = cast(keys, &DataType::Utf8)
                .map_err(|e| CoordinatorError::Internal(format!("key column as text: {e}")))?;
            strings
                .as_string::<i32>()
                .iter()
                .map(|s| s.unwrap_or_default().as_bytes().to_vec())
                .collect()
        }
        other => {
            return Err(CoordinatorError::InvalidRequest(format!(
                "a key column of type {other} cannot be indexed (use an integer or text key)"
            )))
        }
    })
}

/// The encoded form of a constant compared with a key column of type `key_type`, if it
/// converts to that type exactly (a value that does not fit matches no key, and then the
/// index is not consulted).
pub fn encode_scalar(value: &ScalarValue, key_type: &DataType) -> Option<Vec<u8>> {
    if value.is_null() || !indexable(key_type) {
        return None;
    }
    let same = value.cast_to(key_type).ok()?;
    // A lossy cast (e.g. 2.5 to an integer) would find the wrong key: require a round trip.
    if same.cast_to(&value.data_type()).ok().as_ref() != Some(value) {
        return None;
    }
    let array = same.to_array().ok()?;
    encode_array(&array).ok()?.into_iter().next()
}

/// The director index database.
pub struct DirectorIndex {
    /// `None` once closed ([`DirectorIndex::close`]).
    db: std::sync::RwLock<Option<IndexDb>>,
    /// Keys written per load in progress; one writer at a time, so the duplicate check of
    /// a batch and its write are one step.
    loads: Mutex<HashMap<String, u64>>,
}

impl std::fmt::Debug for DirectorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectorIndex").finish_non_exhaustive()
    }
}

fn db_error(e: rocksdb::Error) -> CoordinatorError {
    CoordinatorError::Catalog(format!("director index: {e}"))
}

fn entry_key(load_id: &str, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(load_id.len() + key.len() + 2);
    k.push(b'k');
    k.extend_from_slice(load_id.as_bytes());
    k.push(0);
    k.extend_from_slice(key);
    k
}

/// The first key of a load's entries, and the key just past them.
fn load_range(load_id: &str) -> (Vec<u8>, Vec<u8>) {
    let mut start = vec![b'k'];
    start.extend_from_slice(load_id.as_bytes());
    let mut end = start.clone();
    start.push(0);
    end.push(1);
    (start, end)
}

fn marker_key(load_id: &str) -> Vec<u8> {
    let mut k = vec![b'm'];
    k.extend_from_slice(load_id.as_bytes());
    k
}

/// Where a key's row is: its chunk and position (degrees).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyEntry {
    pub chunk: u64,
    pub ra: f64,
    pub dec: f64,
}

fn entry_of(value: &[u8]) -> Result<KeyEntry> {
    let f = |r: std::ops::Range<usize>| {
        value
            .get(r)
            .and_then(|b| b.try_into().ok())
            .map(f64::from_le_bytes)
            .ok_or_else(|| CoordinatorError::Catalog("director index: a corrupt entry".into()))
    };
    Ok(KeyEntry {
        chunk: chunk_of(value)?,
        ra: f(8..16)?,
        dec: f(16..24)?,
    })
}

fn chunk_of(value: &[u8]) -> Result<u64> {
    value
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| CoordinatorError::Catalog("director index: a corrupt entry".into()))
}

impl DirectorIndex {
    /// Opens (creating if needed) the index under `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        // Lookups of absent keys (every key of a load is first checked for a duplicate)
        // stop at the filter.
        let mut table = BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        opts.set_block_based_table_factory(&table);
        let db = IndexDb::open(&opts, dir).map_err(db_error)?;
        Ok(DirectorIndex {
            db: std::sync::RwLock::new(Some(db)),
            loads: Mutex::new(HashMap::new()),
        })
    }

    /// Runs `f` on the open database.
    fn with_db<T>(&self, f: impl FnOnce(&IndexDb) -> Result<T>) -> Result<T> {
        let guard = self
            .db
            .read()
            .map_err(|_| CoordinatorError::Internal("director index lock poisoned".into()))?;
        match guard.as_ref() {
            Some(db) => f(db),
            None => Err(CoordinatorError::Catalog(
                "the director index is closed".into(),
            )),
        }
    }

    /// Closes the database (a coordinator shutting down), releasing its lock so that the
    /// directory can be opened again in this process.
    pub fn close(&self) {
        if let Ok(mut db) = self.db.write() {
            db.take();
        }
    }

    /// Adds the keys of `chunk`'s rows of load `load_id`, with the rows' positions; fails
    /// naming the first key that the load already holds (or that repeats in `keys`), and
    /// then writes nothing. Returns the load's keys so far.
    pub fn put(
        &self,
        load_id: &str,
        chunk: u64,
        keys: &ArrayRef,
        ra: &Float64Array,
        dec: &Float64Array,
        key_name: &str,
    ) -> Result<u64> {
        let encoded = encode_array(keys)?;
        let duplicate = |i: usize| {
            CoordinatorError::BadInput(format!(
                "duplicate key: {key_name} = {} appears more than once (the key of a \
                 partitioned table must be unique)",
                array_value_to_string(keys, i).unwrap_or_else(|_| "?".into())
            ))
        };
        let mut order: Vec<usize> = (0..encoded.len()).collect();
        order.sort_unstable_by(|a, b| encoded[*a].cmp(&encoded[*b]));
        if let Some(w) = order.windows(2).find(|w| encoded[w[0]] == encoded[w[1]]) {
            return Err(duplicate(w[1]));
        }
        let mut loads = self
            .loads
            .lock()
            .map_err(|_| CoordinatorError::Internal("director index lock poisoned".into()))?;
        let full: Vec<Vec<u8>> = encoded.iter().map(|k| entry_key(load_id, k)).collect();
        self.with_db(|db| {
            for (i, found) in db.multi_get(&full).into_iter().enumerate() {
                if found.map_err(db_error)?.is_some() {
                    return Err(duplicate(i));
                }
            }
            Ok(())
        })?;
        let mut batch = WriteBatch::default();
        batch.put(marker_key(load_id), b"");
        for (i, k) in full.iter().enumerate() {
            let mut v = Vec::with_capacity(24);
            v.extend_from_slice(&chunk.to_be_bytes());
            v.extend_from_slice(&ra.value(i).to_le_bytes());
            v.extend_from_slice(&dec.value(i).to_le_bytes());
            batch.put(k, v);
        }
        self.with_db(|db| db.write(batch).map_err(db_error))?;
        let count = loads.entry(load_id.to_string()).or_default();
        *count += encoded.len() as u64;
        Ok(*count)
    }

    /// Keys written by a load in progress (0 if none); forgets the count, since the load
    /// is being committed or aborted.
    pub fn finish_load(&self, load_id: &str) -> u64 {
        self.loads
            .lock()
            .map(|mut l| l.remove(load_id).unwrap_or(0))
            .unwrap_or(0)
    }

    /// The chunks holding these encoded keys (absent keys hold none).
    pub fn chunks_of(&self, load_id: &str, keys: &[Vec<u8>]) -> Result<BTreeSet<u64>> {
        let full: Vec<Vec<u8>> = keys.iter().map(|k| entry_key(load_id, k)).collect();
        self.with_db(|db| {
            let mut chunks = BTreeSet::new();
            for found in db.multi_get(&full) {
                if let Some(v) = found.map_err(db_error)? {
                    chunks.insert(chunk_of(&v)?);
                }
            }
            Ok(chunks)
        })
    }

    /// The entry (chunk, RA, Dec) of every key of `keys`, a column of the load's key
    /// type; `None` for a NULL or a key the load does not hold.
    pub fn lookup(&self, load_id: &str, keys: &ArrayRef) -> Result<Vec<Option<KeyEntry>>> {
        let present = datafusion::arrow::compute::is_not_null(keys)
            .map_err(|e| CoordinatorError::Internal(format!("key lookup: {e}")))?;
        let valid = datafusion::arrow::compute::filter(keys, &present)
            .map_err(|e| CoordinatorError::Internal(format!("key lookup: {e}")))?;
        let full: Vec<Vec<u8>> = encode_array(&valid)?
            .iter()
            .map(|k| entry_key(load_id, k))
            .collect();
        let found = self.with_db(|db| {
            db.multi_get(&full)
                .into_iter()
                .map(|v| v.map_err(db_error)?.map(|v| entry_of(&v)).transpose())
                .collect::<Result<Vec<_>>>()
        })?;
        let mut found = found.into_iter();
        Ok((0..keys.len())
            .map(|i| {
                if present.value(i) {
                    found.next().flatten()
                } else {
                    None
                }
            })
            .collect())
    }

    /// The chunks holding the keys in a range, or `None` if more than `max_entries` keys
    /// are in it.
    pub fn chunks_in_range(
        &self,
        load_id: &str,
        low: Bound<&[u8]>,
        high: Bound<&[u8]>,
        max_entries: usize,
    ) -> Result<Option<BTreeSet<u64>>> {
        let (first, end) = load_range(load_id);
        let start = match low {
            Bound::Included(k) | Bound::Excluded(k) => entry_key(load_id, k),
            Bound::Unbounded => first,
        };
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(end);
        let guard = self
            .db
            .read()
            .map_err(|_| CoordinatorError::Internal("director index lock poisoned".into()))?;
        let Some(db) = guard.as_ref() else {
            return Err(CoordinatorError::Catalog(
                "the director index is closed".into(),
            ));
        };
        let mut chunks = BTreeSet::new();
        let mut seen = 0usize;
        let prefix = load_id.len() + 2;
        for item in db.iterator_opt(IteratorMode::From(&start, Direction::Forward), opts) {
            let (k, v) = item.map_err(db_error)?;
            let key = &k[prefix..];
            if let Bound::Excluded(lo) = low {
                if key == lo {
                    continue;
                }
            }
            match high {
                Bound::Included(hi) if key > hi => break,
                Bound::Excluded(hi) if key >= hi => break,
                _ => {}
            }
            seen += 1;
            if seen > max_entries {
                return Ok(None);
            }
            chunks.insert(chunk_of(&v)?);
        }
        Ok(Some(chunks))
    }

    /// Deletes a load's entries.
    pub fn delete_load(&self, load_id: &str) -> Result<()> {
        if let Ok(mut loads) = self.loads.lock() {
            loads.remove(load_id);
        }
        let (start, end) = load_range(load_id);
        let mut batch = WriteBatch::default();
        batch.delete_range(start, end);
        batch.delete(marker_key(load_id));
        self.with_db(|db| db.write(batch).map_err(db_error))
    }

    /// Deletes the entries of every load not in `keep`; returns the loads deleted.
    pub fn sweep(&self, keep: &HashSet<String>) -> Result<Vec<String>> {
        let stale = self.with_db(|db| {
            let mut stale = Vec::new();
            for item in db.prefix_iterator(b"m") {
                let (k, _) = item.map_err(db_error)?;
                if k.first() != Some(&b'm') {
                    break;
                }
                let load = String::from_utf8_lossy(&k[1..]).into_owned();
                if !keep.contains(&load) {
                    stale.push(load);
                }
            }
            Ok(stale)
        })?;
        for load in &stale {
            self.delete_load(load)?;
        }
        Ok(stale)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray};

    use super::*;

    fn positions(n: usize) -> (Float64Array, Float64Array) {
        (
            Float64Array::from(vec![1.0; n]),
            Float64Array::from(vec![2.0; n]),
        )
    }

    #[test]
    fn t10_keys_to_chunks_duplicates_ranges_and_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let index = DirectorIndex::open(dir.path()).unwrap();
        let keys: ArrayRef = Arc::new(Int64Array::from(vec![-5, 3, 70, 1 << 40]));
        let (ra, dec) = positions(4);
        assert_eq!(index.put("l1", 7, &keys, &ra, &dec, "id").unwrap(), 4);
        let more: ArrayRef = Arc::new(Int64Array::from(vec![4, 0]));
        let (ra2, dec2) = positions(2);
        assert_eq!(index.put("l1", 9, &more, &ra2, &dec2, "id").unwrap(), 6);

        // A key already in the load, and a key repeated in one batch, are named.
        let again: ArrayRef = Arc::new(Int64Array::from(vec![8, 70]));
        let err = index.put("l1", 2, &again, &ra2, &dec2, "id").unwrap_err();
        assert_eq!(
            err.to_string(),
            "duplicate key: id = 70 appears more than once (the key of a partitioned table \
             must be unique)"
        );
        let twice: ArrayRef = Arc::new(Int64Array::from(vec![11, 11]));
        assert!(index.put("l1", 2, &twice, &ra2, &dec2, "id").is_err());
        // Nothing of the refused batches was written: 8 and 11 are not there.
        let enc = |v: i64| encode_scalar(&ScalarValue::Int64(Some(v)), &DataType::Int64).unwrap();
        assert!(index
            .chunks_of("l1", &[enc(8), enc(11)])
            .unwrap()
            .is_empty());
        assert_eq!(
            index.chunks_of("l1", &[enc(3), enc(4), enc(99)]).unwrap(),
            BTreeSet::from([7, 9])
        );
        // Another load's keys are apart.
        assert!(index.chunks_of("l2", &[enc(3)]).unwrap().is_empty());

        // Ranges follow the integer order, negative numbers included.
        let range = |lo: Bound<i64>, hi: Bound<i64>, max| {
            let (lo, hi) = (lo.map(enc), hi.map(enc));
            index
                .chunks_in_range(
                    "l1",
                    lo.as_ref().map(|v| v.as_slice()),
                    hi.as_ref().map(|v| v.as_slice()),
                    max,
                )
                .unwrap()
        };
        assert_eq!(
            range(Bound::Included(-5), Bound::Included(-5), 10),
            Some(BTreeSet::from([7]))
        );
        assert_eq!(
            range(Bound::Excluded(-5), Bound::Excluded(4), 10),
            Some(BTreeSet::from([7, 9]))
        );
        assert_eq!(
            range(Bound::Included(4), Bound::Included(4), 10),
            Some(BTreeSet::from([9]))
        );
        assert_eq!(
            range(Bound::Excluded(70), Bound::Unbounded, 10),
            Some(BTreeSet::from([7]))
        );
        assert_eq!(range(Bound::Unbounded, Bound::Unbounded, 5), None);
        assert_eq!(
            range(Bound::Unbounded, Bound::Unbounded, 6),
            Some(BTreeSet::from([7, 9]))
        );

        let strings: ArrayRef = Arc::new(StringArray::from(vec!["b", "ab"]));
        index.put("l2", 1, &strings, &ra2, &dec2, "name").unwrap();
        let s = |v: &str| encode_scalar(&ScalarValue::from(v), &DataType::Utf8).unwrap();
        assert_eq!(
            index.chunks_of("l2", &[s("ab")]).unwrap(),
            BTreeSet::from([1])
        );
        assert!(index.chunks_of("l2", &[s("a")]).unwrap().is_empty());

        // A sweep keeping l2 deletes l1.
        assert_eq!(index.finish_load("l1"), 6);
        let swept = index.sweep(&HashSet::from(["l2".to_string()])).unwrap();
        assert_eq!(swept, vec!["l1".to_string()]);
        assert!(index.chunks_of("l1", &[enc(3)]).unwrap().is_empty());
        assert_eq!(
            index.chunks_of("l2", &[s("b")]).unwrap(),
            BTreeSet::from([1])
        );
        drop(index);
        // Entries survive a reopen.
        let index = DirectorIndex::open(dir.path()).unwrap();
        assert_eq!(
            index.chunks_of("l2", &[s("b")]).unwrap(),
            BTreeSet::from([1])
        );
    }

    #[test]
    fn t15_lookup_returns_entries_in_order_with_nulls_and_misses() {
        let dir = tempfile::tempdir().unwrap();
        let index = DirectorIndex::open(dir.path()).unwrap();
        let keys: ArrayRef = Arc::new(Int64Array::from(vec![10, 20]));
        let ra = Float64Array::from(vec![359.5, 0.25]);
        let dec = Float64Array::from(vec![-89.0, 45.0]);
        index.put("l1", 3, &keys, &ra, &dec, "id").unwrap();
        let asked: ArrayRef = Arc::new(Int64Array::from(vec![Some(20), None, Some(7), Some(10)]));
        let found = index.lookup("l1", &asked).unwrap();
        let entry = |ra, dec| Some(KeyEntry { chunk: 3, ra, dec });
        assert_eq!(
            found,
            vec![entry(0.25, 45.0), None, None, entry(359.5, -89.0)]
        );
        assert_eq!(index.lookup("l2", &asked).unwrap(), vec![None; 4]);
    }

    #[test]
    fn t20_constants_convert_exactly_or_not_at_all() {
        let int = DataType::Int32;
        assert_eq!(
            encode_scalar(&ScalarValue::Int64(Some(5)), &int),
            encode_scalar(&ScalarValue::Int32(Some(5)), &int)
        );
        assert_eq!(encode_scalar(&ScalarValue::Float64(Some(2.5)), &int), None);
        assert_eq!(
            encode_scalar(&ScalarValue::Int64(Some(1 << 40)), &int),
            None
        );
        assert_eq!(encode_scalar(&ScalarValue::Int64(None), &int), None);
        assert!(encode_scalar(&ScalarValue::Float64(Some(3.0)), &int).is_some());
        assert_eq!(
            encode_scalar(&ScalarValue::Int64(Some(1)), &DataType::Float64),
            None
        );
    }
}
