//! The internal gRPC plane refuses strangers: a worker's and the coordinator's services
//! answer a call without the cluster secret, or with a wrong one, with Unauthenticated and
//! change nothing; `almagest load` without the secret stops before connecting, with a
//! message naming the option; the right secret works.

use almagest_proto::auth::{secret_channel, ClusterSecret};
use almagest_proto::v1;
use almagest_proto::v1::coordinator_client::CoordinatorClient;
use almagest_proto::v1::worker_client::WorkerClient;
use anyhow::{ensure, Context, Result};
use tonic::transport::Endpoint;

use crate::harness::{self, Cluster};
use crate::t40_multiprocess::http_get;

async fn workers_of(cluster: &Cluster) -> Result<Vec<(u64, String)>> {
    let body = http_get(&format!("127.0.0.1:{}", cluster.http_port), "/status").await?;
    let json = body
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .context("no HTTP body")?;
    let status: serde_json::Value = serde_json::from_str(json)?;
    Ok(status["workers"]
        .as_array()
        .context("no workers in /status")?
        .iter()
        .map(|w| {
            (
                w["id"].as_u64().unwrap_or(0),
                w["address"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect())
}

fn expect_refused<T: std::fmt::Debug>(
    what: &str,
    result: std::result::Result<T, tonic::Status>,
    reason: &str,
) -> Result<()> {
    let status = match result {
        Ok(v) => anyhow::bail!("{what} was accepted: {v:?}"),
        Err(s) => s,
    };
    ensure!(
        status.code() == tonic::Code::Unauthenticated,
        "{what}: {:?} {}",
        status.code(),
        status.message()
    );
    ensure!(
        status.message().contains(reason),
        "{what}: {}",
        status.message()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t38_grpc_plane_refuses_calls_without_the_cluster_secret() -> Result<()> {
    let dir = harness::test_dir("t38");
    let cluster = Cluster::start(&dir, 2).await?;
    let secret_text = std::fs::read_to_string(cluster.secret_file())?;
    let secret = ClusterSecret::new(&secret_text).map_err(anyhow::Error::msg)?;
    ensure!(
        secret_text.trim().len() == 64,
        "a generated secret is 64 hex digits"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(cluster.secret_file())?
            .permissions()
            .mode();
        ensure!(
            mode & 0o077 == 0,
            "the secret file is readable by others: {mode:o}"
        );
    }
    let wrong = ClusterSecret::new(&"f".repeat(64)).map_err(anyhow::Error::msg)?;
    let workers = workers_of(&cluster).await?;
    ensure!(workers.len() == 2, "{workers:?}");

    // Straight to a worker, as a process on the network would.
    for (id, address) in &workers {
        let channel = Endpoint::from_shared(address.clone())?.connect().await?;
        for (label, presented, reason) in [
            ("no secret", None, "no cluster secret"),
            ("a wrong secret", Some(&wrong), "a wrong cluster secret"),
        ] {
            let mut client = WorkerClient::new(secret_channel(channel.clone(), presented));
            expect_refused(
                &format!("worker {id} Status with {label}"),
                client.status(v1::WorkerStatusRequest::default()).await,
                reason,
            )?;
            expect_refused(
                &format!("worker {id} PutChunk with {label}"),
                client
                    .put_chunk(v1::PutChunkRequest {
                        table: "intruder.t".into(),
                        load_id: "x".into(),
                        chunk: 1,
                        parquet: b"not parquet".to_vec(),
                        ..Default::default()
                    })
                    .await,
                reason,
            )?;
            expect_refused(
                &format!("worker {id} ExecuteFragment with {label}"),
                client
                    .execute_fragment(v1::FragmentRequest {
                        sql: "SELECT 1".into(),
                        ..Default::default()
                    })
                    .await,
                reason,
            )?;
            expect_refused(
                &format!("worker {id} DropLoad with {label}"),
                client
                    .drop_load(v1::DropLoadRequest {
                        table: "test.t".into(),
                        load_id: "x".into(),
                    })
                    .await,
                reason,
            )?;
        }
        // The right secret is let in.
        let mut client = WorkerClient::new(secret_channel(channel.clone(), Some(&secret)));
        client
            .status(v1::WorkerStatusRequest::default())
            .await
            .with_context(|| format!("worker {id} refused the right secret"))?;
    }
    // Nothing the refused PutChunk sent reached a worker's disk.
    let stray: Vec<_> = harness::parquet_files_under(&dir)
        .into_iter()
        .filter(|p| p.display().to_string().contains("intruder"))
        .collect();
    ensure!(stray.is_empty(), "{stray:?}");
    let stray_dirs = walk_names(&dir);
    ensure!(
        !stray_dirs.iter().any(|n| n.contains("intruder")),
        "{stray_dirs:?}"
    );

    // The coordinator: no stranger registers a worker (it would be sent fragments and
    // chunks) or starts a load.
    let channel = Endpoint::from_shared(cluster.coordinator())?
        .connect()
        .await?;
    for (label, presented, reason) in [
        ("no secret", None, "no cluster secret"),
        ("a wrong secret", Some(&wrong), "a wrong cluster secret"),
    ] {
        let mut client = CoordinatorClient::new(secret_channel(channel.clone(), presented));
        expect_refused(
            &format!("RegisterWorker with {label}"),
            client
                .register_worker(v1::RegisterWorkerRequest {
                    worker_id: 99,
                    address: "http://127.0.0.1:1".into(),
                })
                .await,
            reason,
        )?;
        expect_refused(
            &format!("BeginLoad with {label}"),
            client
                .begin_load(v1::BeginLoadRequest {
                    table: "intruder.t".into(),
                    ..Default::default()
                })
                .await,
            reason,
        )?;
    }
    let after = workers_of(&cluster).await?;
    ensure!(after == workers, "the worker list changed: {after:?}");

    // `almagest load`: without the secret it stops at once and says what to pass; with a
    // wrong one the coordinator refuses it; nothing is created either way.
    let csv = dir.join("t.csv");
    std::fs::write(&csv, "id,ra,dec\n1,10.0,20.0\n")?;
    let csv_arg = csv.display().to_string();
    let coordinator = cluster.coordinator();
    let base = [
        "load",
        "--quiet",
        "--coordinator",
        coordinator.as_str(),
        "--table",
        "intruder.t",
    ];
    let mut args = base.to_vec();
    args.push(csv_arg.as_str());
    let e = harness::almagest(&args).unwrap_err().to_string();
    ensure!(
        e.contains("almagest load needs the cluster secret") && e.contains("--cluster-secret-file"),
        "{e}"
    );
    let wrong_file = dir.join("wrong-secret");
    std::fs::write(&wrong_file, "f".repeat(64))?;
    let wrong_arg = wrong_file.display().to_string();
    let mut args = base.to_vec();
    args.extend([
        "--cluster-secret-file",
        wrong_arg.as_str(),
        csv_arg.as_str(),
    ]);
    let e = harness::almagest(&args).unwrap_err().to_string();
    ensure!(e.contains("a wrong cluster secret"), "{e}");
    let short_file = dir.join("short-secret");
    std::fs::write(&short_file, "abc\n")?;
    let short_arg = short_file.display().to_string();
    let mut args = base.to_vec();
    args.extend([
        "--cluster-secret-file",
        short_arg.as_str(),
        csv_arg.as_str(),
    ]);
    let e = harness::almagest(&args).unwrap_err().to_string();
    ensure!(e.contains("at least 32 characters"), "{e}");

    let status = http_get(&format!("127.0.0.1:{}", cluster.http_port), "/status").await?;
    ensure!(!status.contains("intruder"), "{status}");

    // The right secret loads (the harness passes it), and the table answers.
    cluster.load("test.t", Some(("ra", "dec", "id")), &[&csv])?;
    let client = cluster.client().await?;
    let rows = client.simple_query("SELECT id FROM test.t").await?;
    let ids: Vec<_> = rows
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect();
    ensure!(ids == ["1"], "{ids:?}");

    // The refusals are in the audit log, with the caller's address.
    let log = std::fs::read_to_string(cluster.log_file())?;
    ensure!(
        log.contains("refused a gRPC call with no cluster secret")
            && log.contains("refused a gRPC call with a wrong cluster secret"),
        "no audit line for the refused calls"
    );
    Ok(())
}

/// Every file and directory name below `dir`.
fn walk_names(dir: &std::path::Path) -> Vec<String> {
    let mut names = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            names.push(path.display().to_string());
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    names
}
