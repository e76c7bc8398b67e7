//! Tests of the Raft catalog: openraft's storage conformance suite on the RocksDB stores,
//! restart recovery (from the log and from a snapshot), and rejected commands.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use openraft::testing::StoreBuilder;
use openraft::testing::Suite;
use openraft::StorageError;
use openraft::StorageIOError;
use tempfile::TempDir;

use super::store;
use super::CatalogStateMachine;
use super::RaftCatalog;
use super::RocksLogStore;
use super::TypeConfig;
use crate::catalog::state::CatalogCommand;
use crate::catalog::state::CatalogResponse;
use crate::catalog::state::ChunkMeta;
use crate::catalog::state::ColumnMeta;
use crate::catalog::state::DatabaseMeta;
use crate::catalog::state::TableKind;
use crate::catalog::state::TableMeta;
use crate::catalog::state::DEFAULT_OVERLAP_DEG;

/// Builds a fresh pair of stores over a new database in a temporary directory (removed
/// when the suite drops the guard).
struct RocksStoreBuilder;

impl StoreBuilder<TypeConfig, RocksLogStore, CatalogStateMachine, TempDir> for RocksStoreBuilder {
    async fn build(
        &self,
    ) -> Result<(TempDir, RocksLogStore, CatalogStateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().map_err(|e| StorageIOError::write(&e))?;
        let db = store::open_db(dir.path()).map_err(|e| StorageIOError::write(&e))?;
        let log_store = RocksLogStore::new(db.clone());
        let state_machine = CatalogStateMachine::open(db)?;
        Ok((dir, log_store, state_machine))
    }
}

#[test]
fn t10_storage_conformance() -> Result<(), StorageError<u64>> {
    // The suite runs each case on a runtime of its own, so this test is not async.
    Suite::test_all(RocksStoreBuilder)
}

fn demo_database() -> DatabaseMeta {
    DatabaseMeta {
        name: "demo".into(),
        chunk_depth: 3,
        overlap_deg: DEFAULT_OVERLAP_DEG,
    }
}

fn director_table(name: &str) -> TableMeta {
    TableMeta {
        format: crate::catalog::TABLE_META_FORMAT,
        database: "demo".into(),
        name: name.into(),
        kind: TableKind::Director,
        columns: vec![
            ColumnMeta::new("source_id", "Int64", false),
            ColumnMeta::new("ra", "Float64", false),
            ColumnMeta::new("dec", "Float64", false),
        ],
        ra_column: Some("ra".into()),
        dec_column: Some("dec".into()),
        key_column: Some("source_id".into()),
        load_id: format!("load-{name}"),
        chunks: BTreeMap::from([
            (
                17,
                ChunkMeta {
                    worker_id: 1,
                    rows: 1200,
                    bytes: 48_000,
                    overlap_rows: 40,
                },
            ),
            (
                301,
                ChunkMeta {
                    worker_id: 1,
                    rows: 800,
                    bytes: 32_000,
                    overlap_rows: 25,
                },
            ),
        ]),
        rows: 2000,
        description: None,
        key_index: false,
        director: None,
    }
}

async fn open_timed(dir: &std::path::Path) -> Arc<RaftCatalog> {
    let started = Instant::now();
    let catalog = RaftCatalog::open_single(dir, 1, "127.0.0.1:7100".into())
        .await
        .expect("open_single");
    println!("open_single took {:?}", started.elapsed());
    catalog
}

async fn write_ok(catalog: &RaftCatalog, cmd: CatalogCommand) {
    assert_eq!(
        catalog.write(cmd).await.expect("write"),
        CatalogResponse::Ok
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t20_restart_recovers_catalog() {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = open_timed(dir.path()).await;
    assert!(catalog.state().tables.is_empty());

    write_ok(
        &catalog,
        CatalogCommand::RegisterWorker {
            id: 1,
            address: "http://127.0.0.1:7001".into(),
        },
    )
    .await;
    write_ok(&catalog, CatalogCommand::CreateDatabase(demo_database())).await;
    write_ok(
        &catalog,
        CatalogCommand::PublishTable(director_table("gaia")),
    )
    .await;

    let before = catalog.state();
    assert_eq!(before.workers[&1].address, "http://127.0.0.1:7001");
    assert_eq!(before.databases["demo"], demo_database());
    assert_eq!(before.tables["demo.gaia"], director_table("gaia"));

    catalog.shutdown().await.expect("shutdown");
    catalog
        .shutdown()
        .await
        .expect("a second shutdown does nothing");
    drop(catalog);

    let reopened = open_timed(dir.path()).await;
    assert_eq!(*reopened.state(), *before);
    // The recovered node still leads and appends after the recovered log.
    write_ok(
        &reopened,
        CatalogCommand::DropTable {
            name: "demo.gaia".into(),
        },
    )
    .await;
    assert!(reopened.state().tables.is_empty());
    assert_eq!(reopened.state().workers, before.workers);
    reopened.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t25_restart_after_snapshot_and_purge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = open_timed(dir.path()).await;
    write_ok(&catalog, CatalogCommand::CreateDatabase(demo_database())).await;
    for i in 0..5 {
        write_ok(
            &catalog,
            CatalogCommand::PublishTable(director_table(&format!("t{i}"))),
        )
        .await;
    }
    let raft = catalog.raft();
    // Metrics trail the state machine a little: wait for a snapshot at or after what the
    // metrics show as applied, then purge up to that snapshot.
    let applied = raft.metrics().borrow().last_applied.expect("applied");
    raft.trigger().snapshot().await.expect("trigger snapshot");
    let metrics = raft
        .wait(Some(Duration::from_secs(5)))
        .metrics(|m| m.snapshot >= Some(applied), "snapshot built")
        .await
        .expect("snapshot");
    let snapshot = metrics.snapshot.expect("snapshot log id");
    raft.trigger()
        .purge_log(snapshot.index)
        .await
        .expect("trigger purge");
    raft.wait(Some(Duration::from_secs(5)))
        .metrics(|m| m.purged >= Some(snapshot), "log purged")
        .await
        .expect("purge");
    // One entry after the snapshot, so recovery needs both the snapshot and the log.
    write_ok(
        &catalog,
        CatalogCommand::DropTable {
            name: "demo.t0".into(),
        },
    )
    .await;
    let before = catalog.state();
    catalog.shutdown().await.expect("shutdown");
    drop(catalog);

    let reopened = open_timed(dir.path()).await;
    assert_eq!(*reopened.state(), *before);
    assert_eq!(reopened.state().tables.len(), 4);
    reopened.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t30_rejected_command_does_not_poison_later_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = open_timed(dir.path()).await;
    write_ok(&catalog, CatalogCommand::CreateDatabase(demo_database())).await;
    write_ok(
        &catalog,
        CatalogCommand::PublishTable(director_table("gaia")),
    )
    .await;

    let duplicate = catalog
        .write(CatalogCommand::PublishTable(director_table("gaia")))
        .await
        .expect("a rejected command is still a successful write");
    assert_eq!(
        duplicate,
        CatalogResponse::Rejected("table \"demo.gaia\" already exists".into())
    );
    let missing = catalog
        .write(CatalogCommand::DropTable {
            name: "demo.nope".into(),
        })
        .await
        .expect("write");
    assert!(matches!(missing, CatalogResponse::Rejected(_)));

    write_ok(
        &catalog,
        CatalogCommand::PublishTable(director_table("sdss")),
    )
    .await;
    let state = catalog.state();
    assert_eq!(
        state.tables.keys().collect::<Vec<_>>(),
        ["demo.gaia", "demo.sdss"]
    );
    assert_eq!(state.tables["demo.gaia"], director_table("gaia"));
    catalog.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t40_another_node_id_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = open_timed(dir.path()).await;
    catalog.shutdown().await.expect("shutdown");
    drop(catalog);

    let err = RaftCatalog::open_single(dir.path(), 2, "127.0.0.1:7200".into())
        .await
        .expect_err("node 2 must not take over node 1's catalog");
    assert!(err.to_string().contains("not to node 2"), "{err}");
    // The failed open released the database: node 1 can still open it.
    let again = open_timed(dir.path()).await;
    again.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t50_write_after_shutdown_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = open_timed(dir.path()).await;
    catalog.shutdown().await.expect("shutdown");
    let err = catalog
        .write(CatalogCommand::CreateDatabase(demo_database()))
        .await
        .expect_err("no writes after shutdown");
    assert!(
        matches!(err, crate::error::CoordinatorError::Catalog(_)),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t60_floats_survive_the_log_and_a_restart_bit_for_bit() {
    // Values whose shortest decimal form serde_json's default (fast) float parser reads back
    // one ulp off; the catalog needs its `float_roundtrip` feature to stay exact.
    let margins = [
        0.021706666666666666_f64,
        0.09010666666666667,
        DEFAULT_OVERLAP_DEG,
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = open_timed(dir.path()).await;
    for (i, margin) in margins.iter().enumerate() {
        let db = DatabaseMeta {
            name: format!("db{i}"),
            chunk_depth: 3,
            overlap_deg: *margin,
        };
        write_ok(&catalog, CatalogCommand::CreateDatabase(db)).await;
    }
    let check = |catalog: &RaftCatalog| {
        let state = catalog.state();
        for (i, margin) in margins.iter().enumerate() {
            let stored = state.databases[&format!("db{i}")].overlap_deg;
            assert_eq!(stored.to_bits(), margin.to_bits(), "{stored} != {margin}");
        }
    };
    check(&catalog);
    catalog.shutdown().await.expect("shutdown");
    drop(catalog);
    let reopened = open_timed(dir.path()).await;
    check(&reopened);
    reopened.shutdown().await.expect("shutdown");
}
