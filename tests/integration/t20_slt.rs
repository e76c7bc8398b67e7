//! The sqllogictest files of `tests/slt/` over pgwire (the runner is `slt.rs`).

use anyhow::Result;

use crate::harness;
use crate::slt::{run_slt_dir, PgDb, SltError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t20_sqllogictest_files() -> Result<()> {
    run_slt_dir("t20", "tests/slt", |cluster| {
        let port = cluster.pg_port;
        Box::new(move || async move {
            let client = harness::connect(port)
                .await
                .map_err(|e| SltError(e.to_string()))?;
            Ok(PgDb { client })
        })
    })
    .await
}
