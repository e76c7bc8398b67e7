//! The catalog's Raft state machine on RocksDB: applies log entries to [`CatalogState`],
//! persists the result with the last applied log id, and builds and installs snapshots
//! (the catalog as JSON).
//!
//! Readers never touch this type: every apply publishes the new catalog as an
//! `Arc<CatalogState>` on a watch channel, so a read is one atomic pointer copy and sees
//! either the whole of a command or none of it.

use std::io::Cursor;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::SystemTime;
use std::time::UNIX_EPOCH;

use openraft::storage::RaftStateMachine;
use openraft::storage::Snapshot;
use openraft::AnyError;
use openraft::BasicNode;
use openraft::Entry;
use openraft::EntryPayload;
use openraft::LogId;
use openraft::OptionalSend;
use openraft::RaftSnapshotBuilder;
use openraft::SnapshotMeta;
use openraft::StorageIOError;
use openraft::StoredMembership;
use rocksdb::WriteBatch;
use serde::Deserialize;
use serde::Serialize;
use tokio::sync::watch;

use super::store::column_family;
use super::store::read_json;
use super::store::synced;
use super::store::to_json;
use super::store::CatalogDb;
use super::store::StorageResult;
use super::store::CF_MACHINE;
use super::TypeConfig;
use crate::catalog::state::CatalogResponse;
use crate::catalog::state::CatalogState;

/// Last applied log id and membership, always written in the same batch as the catalog.
const KEY_APPLIED: &[u8] = b"applied";
/// The applied catalog (JSON); rewritten only when a batch of entries changed it.
const KEY_CATALOG: &[u8] = b"catalog";
/// The current snapshot's metadata (JSON) and data (the catalog as JSON), written together.
const KEY_SNAPSHOT_META: &[u8] = b"snapshot_meta";
const KEY_SNAPSHOT_DATA: &[u8] = b"snapshot_data";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AppliedRecord {
    last_applied: Option<LogId<u64>>,
    last_membership: StoredMembership<u64, BasicNode>,
}

/// The Raft state machine holding the catalog.
pub struct CatalogStateMachine {
    db: Arc<CatalogDb>,
    applied: AppliedRecord,
    catalog: Arc<CatalogState>,
    /// Where readers get the applied catalog.
    published: watch::Sender<Arc<CatalogState>>,
    /// Serializes writes of the current snapshot: a snapshot builder runs in its own task,
    /// concurrently with `install_snapshot`, and must not overwrite a newer snapshot.
    snapshot_write: Arc<Mutex<()>>,
}

impl CatalogStateMachine {
    /// Loads the applied state from the database (empty if there is none yet).
    pub(crate) fn open(db: Arc<CatalogDb>) -> StorageResult<Self> {
        let read = |e| StorageIOError::read_state_machine(e);
        let mut applied: AppliedRecord = read_json(&db, CF_MACHINE, KEY_APPLIED)
            .map_err(read)?
            .unwrap_or_default();
        let mut catalog: CatalogState = read_json(&db, CF_MACHINE, KEY_CATALOG)
            .map_err(read)?
            .unwrap_or_default();

        // Applied state and snapshot are written in batches of their own. The shared
        // write-ahead log keeps them ordered, but if a snapshot is ever ahead of the applied
        // state (the log before it may be purged), the snapshot is the truth.
        if let Some(meta) =
            read_json::<SnapshotMeta<u64, BasicNode>>(&db, CF_MACHINE, KEY_SNAPSHOT_META)
                .map_err(read)?
        {
            if meta.last_log_id > applied.last_applied {
                tracing::warn!(
                    snapshot = %meta,
                    "the catalog snapshot is newer than the applied state; restoring from it"
                );
                catalog = read_snapshot_data(&db, &meta)?;
                applied = AppliedRecord {
                    last_applied: meta.last_log_id,
                    last_membership: meta.last_membership.clone(),
                };
            }
        }

        tracing::debug!(
            last_applied = ?applied.last_applied,
            tables = catalog.tables.len(),
            "loaded the catalog state machine"
        );
        let catalog = Arc::new(catalog);
        let (published, _) = watch::channel(catalog.clone());
        Ok(Self {
            db,
            applied,
            catalog,
            published,
            snapshot_write: Arc::new(Mutex::new(())),
        })
    }

    /// A receiver of the applied catalog, updated after every apply.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Arc<CatalogState>> {
        self.published.subscribe()
    }

    /// Writes the applied record, and the catalog if it changed, in one batch.
    fn persist_applied(
        &self,
        applied: &AppliedRecord,
        catalog: Option<&CatalogState>,
    ) -> StorageResult<()> {
        let cf = column_family(&self.db, CF_MACHINE)?;
        let write = |e| StorageIOError::write_state_machine(e);
        let mut batch = WriteBatch::default();
        batch.put_cf(cf, KEY_APPLIED, to_json(applied).map_err(write)?);
        if let Some(catalog) = catalog {
            batch.put_cf(cf, KEY_CATALOG, to_json(catalog).map_err(write)?);
        }
        // Not synced: the log entries are durable, and a restart re-applies whatever the
        // lost tail of this write had applied.
        self.db
            .write(batch)
            .map_err(|e| StorageIOError::write_state_machine(&e))?;
        Ok(())
    }

    fn publish(&mut self, catalog: CatalogState) {
        self.catalog = Arc::new(catalog);
        self.published.send_replace(self.catalog.clone());
    }
}

fn read_snapshot_data(
    db: &CatalogDb,
    meta: &SnapshotMeta<u64, BasicNode>,
) -> StorageResult<CatalogState> {
    let cf = column_family(db, CF_MACHINE)?;
    let signature = || Some(meta.signature());
    let bytes = db
        .get_pinned_cf(cf, KEY_SNAPSHOT_DATA)
        .map_err(|e| StorageIOError::read_snapshot(signature(), &e))?
        .ok_or_else(|| {
            StorageIOError::read_snapshot(
                signature(),
                AnyError::error("the snapshot's data is missing from the catalog database"),
            )
        })?;
    Ok(serde_json::from_slice(&bytes)
        .map_err(|e| StorageIOError::read_snapshot(signature(), &e))?)
}

/// Stores `meta` and `data` as the current snapshot. A built snapshot (`with_applied` is
/// `None`) is dropped if a newer one is already stored; an installed snapshot also replaces
/// the applied state, and always wins.
fn store_snapshot(
    db: &CatalogDb,
    lock: &Mutex<()>,
    meta: &SnapshotMeta<u64, BasicNode>,
    data: &[u8],
    with_applied: Option<(&AppliedRecord, &[u8])>,
) -> StorageResult<()> {
    let signature = || Some(meta.signature());
    let _guard = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let current: Option<SnapshotMeta<u64, BasicNode>> =
        read_json(db, CF_MACHINE, KEY_SNAPSHOT_META)
            .map_err(|e| StorageIOError::read_snapshot(signature(), e))?;
    if with_applied.is_none() && current.is_some_and(|c| c.last_log_id > meta.last_log_id) {
        tracing::debug!(snapshot = %meta, "a newer catalog snapshot is already stored");
        return Ok(());
    }
    let cf = column_family(db, CF_MACHINE)?;
    let write = |e| StorageIOError::write_snapshot(signature(), e);
    let mut batch = WriteBatch::default();
    batch.put_cf(cf, KEY_SNAPSHOT_META, to_json(meta).map_err(write)?);
    batch.put_cf(cf, KEY_SNAPSHOT_DATA, data);
    if let Some((applied, catalog_json)) = with_applied {
        batch.put_cf(cf, KEY_APPLIED, to_json(applied).map_err(write)?);
        batch.put_cf(cf, KEY_CATALOG, catalog_json);
    }
    // Synced: once a snapshot is stored, openraft may purge the log it replaces.
    db.write_opt(batch, &synced())
        .map_err(|e| StorageIOError::write_snapshot(signature(), &e))?;
    Ok(())
}

/// A snapshot id unique to this build: the last log id it covers plus the wall-clock time.
fn new_snapshot_id(last_applied: Option<LogId<u64>>) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    match last_applied {
        Some(log_id) => format!("{}-{}-{nanos}", log_id.leader_id, log_id.index),
        None => format!("empty-{nanos}"),
    }
}

impl RaftStateMachine<TypeConfig> for CatalogStateMachine {
    type SnapshotBuilder = CatalogSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> StorageResult<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>)> {
        Ok((
            self.applied.last_applied,
            self.applied.last_membership.clone(),
        ))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<CatalogResponse>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries = entries.into_iter();
        let mut responses = Vec::with_capacity(entries.size_hint().0);
        let mut applied = self.applied.clone();
        // Cloned on the first command only: blank and membership entries leave it alone.
        let mut changed: Option<CatalogState> = None;
        for entry in entries {
            applied.last_applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => CatalogResponse::Ok,
                EntryPayload::Normal(command) => {
                    let catalog = changed.get_or_insert_with(|| CatalogState::clone(&self.catalog));
                    let response = catalog.apply(&command);
                    if let CatalogResponse::Rejected(reason) = &response {
                        tracing::debug!(log_id = %entry.log_id, %reason, "catalog command rejected");
                    }
                    response
                }
                EntryPayload::Membership(membership) => {
                    applied.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                    CatalogResponse::Ok
                }
            };
            responses.push(response);
        }
        if responses.is_empty() {
            return Ok(responses);
        }
        // Persist first, publish after: readers never see a catalog that a crash could undo.
        self.persist_applied(&applied, changed.as_ref())?;
        self.applied = applied;
        if let Some(catalog) = changed {
            self.publish(catalog);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        CatalogSnapshotBuilder {
            db: self.db.clone(),
            applied: self.applied.clone(),
            catalog: self.catalog.clone(),
            snapshot_write: self.snapshot_write.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StorageResult<()> {
        tracing::info!(snapshot = %meta, "installing a catalog snapshot");
        let data = snapshot.into_inner();
        let catalog: CatalogState = serde_json::from_slice(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let applied = AppliedRecord {
            last_applied: meta.last_log_id,
            last_membership: meta.last_membership.clone(),
        };
        // The snapshot data is the catalog's JSON, so it doubles as the applied catalog.
        store_snapshot(
            &self.db,
            &self.snapshot_write,
            meta,
            &data,
            Some((&applied, &data)),
        )?;
        self.applied = applied;
        self.publish(catalog);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        let meta: Option<SnapshotMeta<u64, BasicNode>> =
            read_json(&self.db, CF_MACHINE, KEY_SNAPSHOT_META)
                .map_err(|e| StorageIOError::read_snapshot(None, e))?;
        let Some(meta) = meta else {
            return Ok(None);
        };
        let cf = column_family(&self.db, CF_MACHINE)?;
        let data = self
            .db
            .get_cf(cf, KEY_SNAPSHOT_DATA)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?
            .ok_or_else(|| {
                StorageIOError::read_snapshot(
                    Some(meta.signature()),
                    AnyError::error("the snapshot's data is missing from the catalog database"),
                )
            })?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

/// Builds a snapshot of the catalog as it was when openraft asked for the builder; it runs
/// in its own task while the state machine goes on applying.
pub struct CatalogSnapshotBuilder {
    db: Arc<CatalogDb>,
    applied: AppliedRecord,
    catalog: Arc<CatalogState>,
    snapshot_write: Arc<Mutex<()>>,
}

impl RaftSnapshotBuilder<TypeConfig> for CatalogSnapshotBuilder {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let meta = SnapshotMeta {
            last_log_id: self.applied.last_applied,
            last_membership: self.applied.last_membership.clone(),
            snapshot_id: new_snapshot_id(self.applied.last_applied),
        };
        let data = to_json(self.catalog.as_ref())
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), e))?;
        store_snapshot(&self.db, &self.snapshot_write, &meta, &data, None)?;
        tracing::info!(snapshot = %meta, bytes = data.len(), "built a catalog snapshot");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}
