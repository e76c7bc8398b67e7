//! `almagest`: the one binary of the Almagest database server. Subcommands run a role
//! (`coordinator`, `worker`), a whole cluster in one process (`standalone`, `demo`), or a
//! client tool (`load`, `gen`).

mod cluster;
mod config;
mod gen;
mod http;
mod pgwire;
mod tap;
#[cfg(test)]
mod upload_tests;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use almagest_coordinator::ingest::{self, LoadOptions};
use almagest_coordinator::CoordinatorConfig;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tracing::info;

use crate::cluster::{CoordinatorListen, Shutdown, StandaloneOptions, WorkerRole};

#[derive(Parser)]
#[command(
    name = "almagest",
    version,
    about = "A distributed SQL database server for astronomical catalogs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a synthetic Gaia-like catalog (Parquet or CSV, by the file extension).
    Gen(GenArgs),
    /// Run a coordinator and N workers in one process.
    Standalone(StandaloneArgs),
    /// Generate a sample catalog, load it into a standalone cluster, and serve it.
    Demo(DemoArgs),
    /// Load CSV or Parquet files into a table of a running cluster.
    Load(LoadArgs),
    /// Run a coordinator (catalog, planning, pgwire, HTTP).
    Coordinator(RoleArgs),
    /// Run a worker (chunk storage and fragment execution).
    Worker(RoleArgs),
}

#[derive(Args)]
struct GenArgs {
    /// Number of rows.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Random seed: the same seed writes the same catalog.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output file, `.parquet` or `.csv`.
    #[arg(long)]
    out: PathBuf,
    /// Append rows at the hard places (poles, RA 0/360, chunk borders).
    #[arg(long)]
    edge_cases: bool,
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Postgres wire protocol port.
    #[arg(long, default_value_t = 5433)]
    pg_port: u16,
    /// HTTP port.
    #[arg(long, default_value_t = 8080)]
    http_port: u16,
    /// Coordinator gRPC port (workers and `almagest load` connect here).
    #[arg(long, default_value_t = 7000)]
    grpc_port: u16,
    /// HEALPix depth of the chunks of new databases (3: 768 chunks).
    #[arg(long, default_value_t = almagest_coordinator::catalog::DEFAULT_CHUNK_DEPTH,
          value_parser = clap::value_parser!(u8).range(1..=12))]
    chunk_depth: u8,
    /// Memory for the merge side of queries, MiB.
    #[arg(long, default_value_t = 4096)]
    memory_limit_mb: usize,
    /// Let TAP fetch `UPLOAD=name,http(s)://...` tables (the server then requests any URL
    /// a user gives it: see allow_http_upload in config/almagest.example.toml).
    #[arg(long)]
    allow_http_upload: bool,
}

#[derive(Args)]
struct StandaloneArgs {
    /// Where the catalog and the chunk files live.
    #[arg(long)]
    data_dir: PathBuf,
    /// Number of workers.
    #[arg(long, default_value_t = 2)]
    workers: u64,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Args)]
struct DemoArgs {
    /// Rows of the sample catalog.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Where the catalog and the chunk files live.
    #[arg(long, default_value = "almagest-demo")]
    data_dir: PathBuf,
    /// Number of workers.
    #[arg(long, default_value_t = 2)]
    workers: u64,
    /// Random seed of the sample catalog.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Args)]
struct LoadArgs {
    /// Table to create, `database.table`.
    #[arg(long)]
    table: String,
    /// Right ascension column (degrees); with --dec, makes a sky-partitioned table.
    #[arg(long)]
    ra: Option<String>,
    /// Declination column (degrees).
    #[arg(long)]
    dec: Option<String>,
    /// Unique key column of a partitioned table.
    #[arg(long)]
    key: Option<String>,
    /// Coordinator gRPC address.
    #[arg(long, default_value = "http://127.0.0.1:7000")]
    coordinator: String,
    /// Chunk depth, if this load creates the database.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=12))]
    chunk_depth: Option<u8>,
    /// Overlap margin in arcminutes, if this load creates the database.
    #[arg(long)]
    overlap_arcmin: Option<f64>,
    /// Directory for temporary spill files (default: the system temp dir).
    #[arg(long)]
    spill_dir: Option<PathBuf>,
    /// Rows buffered in memory while partitioning.
    #[arg(long, default_value_t = 1_000_000)]
    memory_rows: usize,
    /// Hide the progress bars.
    #[arg(long)]
    quiet: bool,
    /// TOML file with the table's description and each column's unit, UCD, description,
    /// utype and principal flag (`[table] description = ".."`, `[columns.ra] unit = "deg"`).
    #[arg(long, value_name = "FILE")]
    metadata: Option<PathBuf>,
    /// Input files (CSV with a header line, or Parquet).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

#[derive(Args)]
struct RoleArgs {
    /// TOML configuration file (see config/almagest.example.toml).
    #[arg(long)]
    config: Option<PathBuf>,
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = std::env::var("ALMAGEST_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn listen(serve: &ServeArgs) -> CoordinatorListen {
    CoordinatorListen {
        grpc: SocketAddr::new(serve.host, serve.grpc_port),
        pg: SocketAddr::new(serve.host, serve.pg_port),
        http: SocketAddr::new(serve.host, serve.http_port),
    }
}

fn standalone_options(data_dir: PathBuf, workers: u64, serve: &ServeArgs) -> StandaloneOptions {
    StandaloneOptions {
        data_dir,
        workers,
        listen: listen(serve),
        default_chunk_depth: serve.chunk_depth,
        memory_limit_mb: serve.memory_limit_mb,
        jobs: config::JobsSection::default().to_config(),
        tap: crate::tap::TapConfig {
            allow_http_upload: serve.allow_http_upload,
            ..config::TapSection::default().to_config()
        },
    }
}

fn print_connect(pg: SocketAddr, http: SocketAddr, grpc: SocketAddr) {
    println!("Almagest is ready.");
    println!(
        "  psql:  psql -h {} -p {} -U almagest almagest",
        pg.ip(),
        pg.port()
    );
    println!("  HTTP:  http://{http}/status");
    println!("  load:  almagest load --coordinator http://{grpc} --table db.table --ra ra --dec dec --key id FILE...");
    println!("Press Ctrl-C to stop.");
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Gen(args) => {
            let opts = gen::GenOptions {
                rows: args.rows,
                seed: args.seed,
                out: args.out.clone(),
                edge_cases: args.edge_cases,
                progress: true,
            };
            let rows = tokio::task::spawn_blocking(move || gen::generate(&opts)).await??;
            println!("wrote {rows} rows to {}", args.out.display());
            Ok(())
        }
        Command::Standalone(args) => {
            let (tx, shutdown) = Shutdown::new();
            let opts = standalone_options(args.data_dir, args.workers, &args.serve);
            let cluster = cluster::start_standalone(opts, shutdown).await?;
            let c = &cluster.coordinator;
            print_connect(c.pg_addr, c.http_addr, c.grpc_addr);
            cluster::termination_signal().await;
            info!("shutting down");
            let _ = tx.send(true);
            cluster.join().await
        }
        Command::Demo(args) => demo(args).await,
        Command::Load(args) => {
            let opts = LoadOptions {
                coordinator: args.coordinator,
                table: args.table,
                ra_column: args.ra,
                dec_column: args.dec,
                key_column: args.key,
                files: args.files,
                chunk_depth: args.chunk_depth,
                overlap_deg: args.overlap_arcmin.map(|a| a / 60.0),
                spill_dir: args.spill_dir,
                memory_rows: args.memory_rows,
                progress: !args.quiet,
                metadata: args.metadata,
            };
            let report = ingest::load(&opts).await?;
            println!(
                "loaded {} rows into {} chunks ({} overlap rows, {} bytes) in {:.1} s",
                report.rows,
                report.chunks,
                report.overlap_rows,
                report.bytes,
                report.elapsed.as_secs_f64()
            );
            Ok(())
        }
        Command::Coordinator(args) => {
            let config = config::AlmagestConfig::load(args.config.as_deref())?;
            let c = config.coordinator;
            let (tx, shutdown) = Shutdown::new();
            let running = cluster::start_coordinator(
                CoordinatorConfig {
                    node_id: c.node_id,
                    data_dir: c.data_dir.clone(),
                    advertise_address: String::new(),
                    default_chunk_depth: c.default_chunk_depth,
                    memory_limit_bytes: c.memory_limit_mb * 1024 * 1024,
                    target_partitions: c.target_partitions,
                    jobs: c.jobs.to_config(),
                },
                CoordinatorListen {
                    grpc: c.grpc_listen,
                    pg: c.pg_listen,
                    http: c.http_listen,
                },
                c.tap.to_config(),
                shutdown,
            )
            .await?;
            print_connect(running.pg_addr, running.http_addr, running.grpc_addr);
            cluster::termination_signal().await;
            info!("shutting down");
            let _ = tx.send(true);
            running.join().await
        }
        Command::Worker(args) => {
            let config = config::AlmagestConfig::load(args.config.as_deref())?;
            let w = config.worker;
            let (tx, shutdown) = Shutdown::new();
            let handle = cluster::start_worker(
                WorkerRole {
                    id: w.id,
                    data_dir: w.data_dir,
                    listen: w.grpc_listen,
                    advertise_address: w.advertise_address,
                    coordinator: w.coordinator,
                    target_partitions: w.target_partitions,
                },
                shutdown.clone(),
            )
            .await?;
            println!("worker {} serving on {}", w.id, w.grpc_listen);
            tokio::select! {
                _ = cluster::termination_signal() => {},
                _ = shutdown.wait() => {},
            }
            let _ = tx.send(true);
            let _ = handle.await;
            Ok(())
        }
    }
}

/// Generates the sample catalog (once), starts the cluster, loads it (once), and serves.
async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let (tx, shutdown) = Shutdown::new();
    let opts = standalone_options(args.data_dir.clone(), args.workers, &args.serve);
    let cluster = cluster::start_standalone(opts, shutdown).await?;
    let c = &cluster.coordinator;
    if c.coordinator
        .catalog()
        .state()
        .tables
        .contains_key("demo.gaia")
    {
        println!("demo.gaia is already loaded in {}", args.data_dir.display());
    } else {
        let file = args
            .data_dir
            .join(format!("gaia-{}-{}.parquet", args.rows, args.seed));
        if !file.exists() {
            println!("generating {} rows into {}", args.rows, file.display());
            let opts = gen::GenOptions {
                rows: args.rows,
                seed: args.seed,
                out: file.clone(),
                edge_cases: false,
                progress: true,
            };
            tokio::task::spawn_blocking(move || gen::generate(&opts)).await??;
        }
        println!("loading demo.gaia");
        let report = ingest::load(&LoadOptions {
            coordinator: format!("http://{}", c.grpc_addr),
            table: "demo.gaia".into(),
            ra_column: Some("ra".into()),
            dec_column: Some("dec".into()),
            key_column: Some("source_id".into()),
            files: vec![file],
            chunk_depth: None,
            overlap_deg: None,
            spill_dir: Some(args.data_dir.clone()),
            memory_rows: 1_000_000,
            progress: true,
            // The generated Parquet file carries units, UCDs and descriptions itself.
            metadata: None,
        })
        .await?;
        println!(
            "loaded {} rows into {} chunks in {:.1} s",
            report.rows,
            report.chunks,
            report.elapsed.as_secs_f64()
        );
    }
    print_connect(c.pg_addr, c.http_addr, c.grpc_addr);
    println!("Try: SELECT source_id, ra, dec FROM demo.gaia WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 266.4, -28.9, 0.2));");
    cluster::termination_signal().await;
    info!("shutting down");
    let _ = tx.send(true);
    cluster.join().await
}
