//! The catalog replicated by Raft: openraft 0.9 (storage v2) with its log and state machine
//! in one RocksDB database per coordinator.
//!
//! - [`RaftCatalog`] is what the rest of the coordinator uses: it proposes
//!   [`CatalogCommand`]s and hands out the applied [`CatalogState`] as a cheap `Arc`.
//! - `store` holds the database layout and the log store ([`RocksLogStore`]),
//!   `state_machine` the state machine and its snapshots ([`CatalogStateMachine`]),
//!   `network` the peer network ([`NoPeersNetwork`] for a single coordinator).
//!
//! Architecture invariant: the catalog changes only by applying committed log entries;
//! nothing writes the database behind Raft's back.

mod network;
mod state_machine;
mod store;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Cursor;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use openraft::error::ClientWriteError;
use openraft::error::InitializeError;
use openraft::error::RaftError;
use openraft::BasicNode;
use openraft::Config;
use openraft::Raft;
use openraft::RaftNetworkFactory;
use openraft::SnapshotPolicy;
use tokio::sync::watch;
use tokio::sync::Mutex;

pub use self::network::NoPeersNetwork;
pub use self::network::UnreachablePeer;
pub use self::state_machine::CatalogSnapshotBuilder;
pub use self::state_machine::CatalogStateMachine;
use self::store::CatalogDb;
pub use self::store::RocksLogStore;
use crate::catalog::state::CatalogCommand;
use crate::catalog::state::CatalogResponse;
use crate::catalog::state::CatalogState;
use crate::error::CoordinatorError;

openraft::declare_raft_types!(
    /// openraft's type configuration for the catalog: log entries carry [`CatalogCommand`]s,
    /// snapshots are the catalog as JSON.
    pub TypeConfig:
        D = CatalogCommand,
        R = CatalogResponse,
        NodeId = u64,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The Raft node type of the catalog.
pub type CatalogRaft = Raft<TypeConfig>;

/// How long `open_single` waits for this node to lead and catch up before giving up.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `shutdown` waits for openraft's tasks to let go of the database.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Raft timing for coordinators on one network: a lost leader is noticed within a few
/// hundred milliseconds. A sole voter never waits for these: it elects itself on
/// initialization and resumes leadership at once on restart.
fn raft_config() -> Result<Arc<Config>, CoordinatorError> {
    let config = Config {
        cluster_name: "almagest-catalog".to_string(),
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        // Each snapshot is the whole catalog; every 1000 entries bounds both the log
        // replayed at restart and the cost of snapshotting.
        snapshot_policy: SnapshotPolicy::LogsSinceLast(1000),
        max_in_snapshot_log_to_keep: 1000,
        ..Config::default()
    };
    config
        .validate()
        .map(Arc::new)
        .map_err(|e| CoordinatorError::Internal(format!("invalid catalog Raft config: {e}")))
}

/// The catalog as a Raft node: proposes commands and serves the applied state.
pub struct RaftCatalog {
    node_id: u64,
    dir: PathBuf,
    raft: CatalogRaft,
    state: watch::Receiver<Arc<CatalogState>>,
    /// Held so that `shutdown` can flush the database and wait for it to close; `None`
    /// once shut down.
    db: Mutex<Option<Arc<CatalogDb>>>,
}

impl fmt::Debug for RaftCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RaftCatalog")
            .field("node_id", &self.node_id)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl RaftCatalog {
    /// Opens (or creates) the catalog under `dir` (one RocksDB database holding the log, vote,
    /// applied state and snapshot), as the single Raft node `node_id` reachable at `address`.
    /// On first start it initializes a one-node cluster; on restart it recovers the log and
    /// state from RocksDB. Returns once this node is leader and has applied the recovered log.
    pub async fn open_single(
        dir: &Path,
        node_id: u64,
        address: String,
    ) -> Result<Arc<Self>, CoordinatorError> {
        let started = Instant::now();
        let catalog = Self::start(dir, node_id, NoPeersNetwork).await?;
        if let Err(e) = catalog.become_single_leader(address).await {
            // Leave nothing running behind a failed open, and release the database lock.
            if let Err(stop_error) = catalog.shutdown().await {
                tracing::warn!(error = %stop_error, "stopping a catalog that failed to open");
            }
            return Err(e);
        }
        let state = catalog.state();
        tracing::info!(
            dir = %dir.display(),
            node_id,
            elapsed_ms = started.elapsed().as_millis() as u64,
            databases = state.databases.len(),
            tables = state.tables.len(),
            workers = state.workers.len(),
            "catalog open"
        );
        Ok(Arc::new(catalog))
    }

    /// Opens the storage under `dir` and starts a Raft node on `network`, without
    /// initializing a cluster or waiting for a leader. The seam for a multi-coordinator
    /// catalog: a tonic network factory comes in here.
    async fn start<N>(dir: &Path, node_id: u64, network: N) -> Result<Self, CoordinatorError>
    where
        N: RaftNetworkFactory<TypeConfig>,
    {
        std::fs::create_dir_all(dir)?;
        let db = store::open_db(dir).map_err(|e| {
            CoordinatorError::Catalog(format!(
                "cannot open the catalog database at {}: {e}",
                dir.display()
            ))
        })?;
        let log_store = RocksLogStore::new(db.clone());
        let state_machine = CatalogStateMachine::open(db.clone()).map_err(|e| {
            CoordinatorError::Catalog(format!(
                "cannot load the catalog state at {}: {e}",
                dir.display()
            ))
        })?;
        let state = state_machine.subscribe();
        let raft = Raft::new(node_id, raft_config()?, network, log_store, state_machine)
            .await
            .map_err(|e| CoordinatorError::Catalog(format!("cannot start catalog Raft: {e}")))?;
        Ok(Self {
            node_id,
            dir: dir.to_path_buf(),
            raft,
            state,
            db: Mutex::new(Some(db)),
        })
    }

    /// Makes this node the sole voter of a new cluster if the storage is pristine, checks
    /// that it is a voter otherwise, then waits until it leads and has applied every entry
    /// committed before.
    async fn become_single_leader(&self, address: String) -> Result<(), CoordinatorError> {
        let node_id = self.node_id;
        let fatal = |e: openraft::error::Fatal<u64>| {
            CoordinatorError::Catalog(format!("catalog Raft stopped: {e}"))
        };
        if self.raft.is_initialized().await.map_err(fatal)? {
            let membership = self
                .raft
                .with_raft_state(|st| st.membership_state.effective().clone())
                .await
                .map_err(fatal)?;
            if !membership.voter_ids().any(|id| id == node_id) {
                return Err(CoordinatorError::Catalog(format!(
                    "the catalog at {} belongs to Raft node(s) {:?}, not to node {node_id}",
                    self.dir.display(),
                    membership.voter_ids().collect::<Vec<_>>()
                )));
            }
            if let Some(recorded) = membership.get_node(&node_id) {
                if recorded.addr != address {
                    // Only peers use the address, and a single node has none.
                    tracing::info!(
                        recorded = %recorded.addr,
                        %address,
                        "catalog node address differs from the one recorded in the membership"
                    );
                }
            }
            tracing::info!(node_id, dir = %self.dir.display(), "recovering the catalog");
        } else {
            tracing::info!(node_id, dir = %self.dir.display(), "initializing a new single-node catalog");
            let members = BTreeMap::from([(node_id, BasicNode::new(address))]);
            match self.raft.initialize(members).await {
                Ok(()) => {}
                // Initialized between the check and now: nothing to do.
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => {
                    return Err(CoordinatorError::Catalog(format!(
                        "cannot initialize the catalog cluster: {e}"
                    )))
                }
            }
        }

        self.raft
            .wait(Some(OPEN_TIMEOUT))
            .metrics(
                |m| m.current_leader == Some(node_id),
                "catalog node becomes leader",
            )
            .await
            .map_err(|e| {
                CoordinatorError::Catalog(format!(
                    "catalog node {node_id} did not become leader: {e}"
                ))
            })?;
        // Waits until the state machine has applied everything committed, including the
        // entries recovered from the log.
        match tokio::time::timeout(OPEN_TIMEOUT, self.raft.ensure_linearizable()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(CoordinatorError::Catalog(format!(
                "catalog node {node_id} could not catch up with its log: {e}"
            ))),
            Err(_) => Err(CoordinatorError::Catalog(format!(
                "catalog node {node_id} did not apply its log within {OPEN_TIMEOUT:?}"
            ))),
        }
    }

    /// Proposes a command through Raft and returns the state machine's response once applied.
    ///
    /// When this returns, [`RaftCatalog::state`] already shows the command's effect. A
    /// command the catalog refuses comes back as `Ok(CatalogResponse::Rejected(_))`; `Err`
    /// means Raft could not commit it.
    pub async fn write(&self, cmd: CatalogCommand) -> Result<CatalogResponse, CoordinatorError> {
        match self.raft.client_write(cmd).await {
            Ok(response) => Ok(response.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Err(CoordinatorError::Catalog(match forward.leader_node {
                    Some(leader) => format!(
                        "this coordinator is not the catalog leader; the leader is at {}",
                        leader.addr
                    ),
                    None => "this coordinator is not the catalog leader, and no leader is known"
                        .to_string(),
                }))
            }
            Err(e) => Err(CoordinatorError::Catalog(format!(
                "catalog write failed: {e}"
            ))),
        }
    }

    /// The applied state, as a cheap snapshot: an `Arc` swapped on each apply, so holding it
    /// blocks nothing and it never changes under the holder.
    pub fn state(&self) -> Arc<CatalogState> {
        self.state.borrow().clone()
    }

    /// A receiver notified after each apply that changes the catalog.
    pub fn subscribe(&self) -> watch::Receiver<Arc<CatalogState>> {
        self.state.clone()
    }

    /// This node's Raft id.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// The Raft node, for metrics and, later, for the peer RPC service to feed.
    pub fn raft(&self) -> &CatalogRaft {
        &self.raft
    }

    /// Stops Raft cleanly, flushes RocksDB and waits for it to close, so the same directory
    /// can be opened again. Calling it again does nothing.
    pub async fn shutdown(&self) -> Result<(), CoordinatorError> {
        let Some(db) = self.db.lock().await.take() else {
            return Ok(());
        };
        self.raft.shutdown().await.map_err(|e| {
            CoordinatorError::Internal(format!("the catalog Raft task failed while stopping: {e}"))
        })?;
        let flushed = flush(&db);
        let weak = Arc::downgrade(&db);
        drop(db);
        // openraft's state-machine task ends a moment after the core; the database closes
        // (and releases its lock) when the last handle goes.
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        while weak.strong_count() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if weak.strong_count() > 0 {
            tracing::warn!(
                dir = %self.dir.display(),
                "the catalog database is still in use after shutdown; it closes when released"
            );
        }
        flushed.map_err(|e| {
            CoordinatorError::Catalog(format!(
                "cannot flush the catalog database at {}: {e}",
                self.dir.display()
            ))
        })?;
        tracing::info!(dir = %self.dir.display(), "catalog shut down");
        Ok(())
    }
}

/// Syncs the write-ahead log and writes every memtable to disk.
fn flush(db: &CatalogDb) -> Result<(), rocksdb::Error> {
    db.flush_wal(true)?;
    for name in store::ALL_COLUMN_FAMILIES {
        if let Some(cf) = db.cf_handle(name) {
            db.flush_cf(cf)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
