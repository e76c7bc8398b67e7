//! The RocksDB database behind the catalog's Raft node, and the Raft log store in it.
//!
//! One database per coordinator holds everything Raft must keep across a restart, in three
//! column families:
//!
//! | column family | keys | values |
//! |---|---|---|
//! | `raft_log` | log index, 8 bytes big-endian (so keys sort by index) | JSON log entry |
//! | `raft_meta` | `vote`, `committed`, `last_purged` | JSON |
//! | `catalog_machine` | `applied`, `catalog`, `snapshot_meta`, `snapshot_data` | JSON |
//!
//! The log store uses the first two; the state machine (`state_machine.rs`) the third.
//! Writes that Raft's safety rests on (appended entries, the vote, truncation) are synced to
//! disk before they are acknowledged. All column families share one write-ahead log, so a
//! synced write also makes every earlier write durable.

use std::fmt::Debug;
use std::ops::Bound;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::Arc;

use openraft::storage::LogFlushed;
use openraft::storage::LogState;
use openraft::storage::RaftLogStorage;
use openraft::AnyError;
use openraft::Entry;
use openraft::LogId;
use openraft::OptionalSend;
use openraft::RaftLogReader;
use openraft::StorageError;
use openraft::StorageIOError;
use openraft::Vote;
use rocksdb::ColumnFamily;
use rocksdb::ColumnFamilyDescriptor;
use rocksdb::Direction;
use rocksdb::IteratorMode;
use rocksdb::Options;
use rocksdb::WriteBatch;
use rocksdb::WriteOptions;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::TypeConfig;

/// The database handle. Named explicitly (rather than `rocksdb::DB`) so that another crate
/// turning on rocksdb's `multi-threaded-cf` feature cannot change its type under us.
pub(crate) type CatalogDb = rocksdb::DBWithThreadMode<rocksdb::SingleThreaded>;

pub(crate) type StorageResult<T> = Result<T, StorageError<u64>>;

/// Raft log entries by index.
pub(crate) const CF_LOG: &str = "raft_log";
/// The vote, the committed log id and the last purged log id.
pub(crate) const CF_RAFT_META: &str = "raft_meta";
/// The state machine: applied catalog and the current snapshot.
pub(crate) const CF_MACHINE: &str = "catalog_machine";

pub(crate) const ALL_COLUMN_FAMILIES: [&str; 3] = [CF_LOG, CF_RAFT_META, CF_MACHINE];

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";

/// Opens (creating if needed) the catalog database under `dir`.
pub(crate) fn open_db(dir: &Path) -> Result<Arc<CatalogDb>, rocksdb::Error> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let families = ALL_COLUMN_FAMILIES
        .iter()
        .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
    Ok(Arc::new(CatalogDb::open_cf_descriptors(
        &opts, dir, families,
    )?))
}

/// The handle of a column family that `open_db` created.
pub(crate) fn column_family<'a>(db: &'a CatalogDb, name: &str) -> StorageResult<&'a ColumnFamily> {
    db.cf_handle(name).ok_or_else(|| {
        StorageIOError::read(AnyError::error(format!(
            "column family {name} is missing from the catalog database"
        )))
        .into()
    })
}

/// Write options that fsync the write-ahead log before returning.
pub(crate) fn synced() -> WriteOptions {
    let mut opts = WriteOptions::default();
    opts.set_sync(true);
    opts
}

/// Reads and decodes one JSON value; `None` if the key is absent.
pub(crate) fn read_json<T: DeserializeOwned>(
    db: &CatalogDb,
    cf: &str,
    key: &[u8],
) -> Result<Option<T>, AnyError> {
    let handle = db
        .cf_handle(cf)
        .ok_or_else(|| AnyError::error(format!("column family {cf} is missing")))?;
    match db
        .get_pinned_cf(handle, key)
        .map_err(|e| AnyError::new(&e))?
    {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            AnyError::new(&e).add_context(|| String::from_utf8_lossy(key).into_owned())
        }),
    }
}

/// Encodes a value as JSON for storage.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, AnyError> {
    serde_json::to_vec(value).map_err(|e| AnyError::new(&e))
}

/// The key of log index `index`: big-endian, so RocksDB's byte order is index order.
fn log_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn index_of_key(key: &[u8]) -> Result<u64, AnyError> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| {
        AnyError::error(format!(
            "malformed Raft log key of {} bytes in the catalog database",
            key.len()
        ))
    })?;
    Ok(u64::from_be_bytes(bytes))
}

/// A key after every log key: 9 bytes of 0xff sort after any 8-byte key.
const AFTER_LAST_LOG_KEY: [u8; 9] = [0xff; 9];

/// The Raft log store: entries, vote and committed log id, in RocksDB.
///
/// Cloning is cheap (the database is shared); a clone serves as the log reader that
/// openraft's replication tasks use.
#[derive(Clone)]
pub struct RocksLogStore {
    db: Arc<CatalogDb>,
}

impl RocksLogStore {
    pub(crate) fn new(db: Arc<CatalogDb>) -> Self {
        Self { db }
    }

    fn read_meta<T: DeserializeOwned>(&self, key: &[u8]) -> StorageResult<Option<T>> {
        read_json(&self.db, CF_RAFT_META, key).map_err(|e| StorageIOError::read(e).into())
    }

    fn last_purged(&self) -> StorageResult<Option<LogId<u64>>> {
        self.read_meta(KEY_LAST_PURGED)
    }

    /// The id of the last entry present in the log, if any.
    fn last_entry_log_id(&self) -> StorageResult<Option<LogId<u64>>> {
        let cf = column_family(&self.db, CF_LOG)?;
        match self.db.iterator_cf(cf, IteratorMode::End).next() {
            None => Ok(None),
            Some(item) => {
                let (_, value) = item.map_err(|e| StorageIOError::read_logs(&e))?;
                let entry: Entry<TypeConfig> =
                    serde_json::from_slice(&value).map_err(|e| StorageIOError::read_logs(&e))?;
                Ok(Some(entry.log_id))
            }
        }
    }
}

impl RaftLogReader<TypeConfig> for RocksLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => match i.checked_add(1) {
                Some(i) => i,
                None => return Ok(Vec::new()),
            },
            Bound::Unbounded => 0,
        };
        let cf = column_family(&self.db, CF_LOG)?;
        let start_key = log_key(start);
        let mut entries = Vec::new();
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(&start_key, Direction::Forward))
        {
            let (key, value) = item.map_err(|e| StorageIOError::read_logs(&e))?;
            let index = index_of_key(&key).map_err(StorageIOError::read_logs)?;
            if !range.contains(&index) {
                break;
            }
            let entry: Entry<TypeConfig> = serde_json::from_slice(&value)
                .map_err(|e| StorageIOError::read_log_at_index(index, &e))?;
            entries.push(entry);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for RocksLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let last_purged_log_id = self.last_purged()?;
        // An empty log after a purge still has a last log id: the purged one.
        let last_log_id = self.last_entry_log_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> StorageResult<()> {
        let cf = column_family(&self.db, CF_RAFT_META)?;
        let value = to_json(vote).map_err(StorageIOError::write_vote)?;
        // A vote must survive a crash, or this node could vote twice in one term.
        self.db
            .put_cf_opt(cf, KEY_VOTE, value, &synced())
            .map_err(|e| StorageIOError::write_vote(&e))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<u64>>> {
        read_json(&self.db, CF_RAFT_META, KEY_VOTE).map_err(|e| StorageIOError::read_vote(e).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> StorageResult<()> {
        let cf = column_family(&self.db, CF_RAFT_META)?;
        let value = to_json(&committed).map_err(StorageIOError::write)?;
        // Not synced: the committed id only lets a restart re-apply sooner; if it is lost,
        // the leader re-establishes it.
        self.db
            .put_cf(cf, KEY_COMMITTED, value)
            .map_err(|e| StorageIOError::write(&e))?;
        Ok(())
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<u64>>> {
        self.read_meta(KEY_COMMITTED)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let cf = column_family(&self.db, CF_LOG)?;
        let mut batch = WriteBatch::default();
        for entry in entries {
            let value =
                to_json(&entry).map_err(|e| StorageIOError::write_log_entry(entry.log_id, e))?;
            batch.put_cf(cf, log_key(entry.log_id.index), value);
        }
        // openraft counts entries as accepted once the callback fires: they must be on disk.
        self.db
            .write_opt(batch, &synced())
            .map_err(|e| StorageIOError::write_logs(&e))?;
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> StorageResult<()> {
        tracing::debug!(%log_id, "truncating the catalog Raft log from this entry on");
        let cf = column_family(&self.db, CF_LOG)?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            cf,
            log_key(log_id.index).as_slice(),
            &AFTER_LAST_LOG_KEY[..],
        );
        self.db
            .write_opt(batch, &synced())
            .map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> StorageResult<()> {
        tracing::debug!(%log_id, "purging the catalog Raft log up to this entry");
        let meta = column_family(&self.db, CF_RAFT_META)?;
        let log = column_family(&self.db, CF_LOG)?;
        let mut batch = WriteBatch::default();
        // Recording the purge point and deleting the entries in one batch keeps
        // `get_log_state` right whichever way a crash falls.
        batch.put_cf(
            meta,
            KEY_LAST_PURGED,
            to_json(&log_id).map_err(StorageIOError::write_logs)?,
        );
        match log_id.index.checked_add(1) {
            Some(end) => batch.delete_range_cf(log, log_key(0), log_key(end)),
            None => batch.delete_range_cf(log, &log_key(0)[..], &AFTER_LAST_LOG_KEY[..]),
        }
        self.db
            .write_opt(batch, &synced())
            .map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }
}
