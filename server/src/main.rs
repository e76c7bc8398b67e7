//! `almagest`: the one binary of the Almagest database server. Subcommands run a role
//! (`coordinator`, `worker`), a whole cluster in one process (`standalone`, `demo`), or a
//! client tool (`load`, `gen`).

use std::path::PathBuf;

use almagest::{cluster, config, gen};
use almagest_loader::{self as ingest, LoadOptions};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tracing::info;

use almagest::cluster::Shutdown;
use almagest::config::{AlmagestConfig, CoordinatorFlags, PgAuthMode, StandaloneFlags};
use almagest::users::{generate_password, TokensFile, UsersFile};

/// Where `demo` keeps its cluster when neither `--data-dir` nor the file names a place.
const DEMO_DATA_DIR: &str = "almagest-demo";

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
    Coordinator(CoordinatorArgs),
    /// Run a worker (chunk storage and fragment execution).
    Worker(ConfigArg),
    /// Manage who may connect: users (pgwire SCRAM-SHA-256 and TAP HTTP Basic).
    User(UserArgs),
    /// Manage the bearer tokens TAP clients may authenticate with.
    Token(TokenArgs),
    /// Write a new random cluster secret to FILE (owner-readable only) for `[cluster]
    /// secret_file`: the credential of the internal gRPC plane, shared by the coordinator,
    /// the workers and `almagest load`.
    ClusterSecret(ClusterSecretArgs),
    /// Write a self-signed TLS certificate and key (DIR/server.crt, DIR/server.key) for
    /// `[coordinator.tls]`, valid for localhost, 127.0.0.1, ::1 and the --host names.
    TlsCert(TlsCertArgs),
}

#[derive(Args)]
struct TlsCertArgs {
    /// Where to write server.crt and server.key; an existing pair is kept.
    dir: PathBuf,
    /// A further name or address the certificate is valid for (repeatable).
    #[arg(long = "host")]
    hosts: Vec<String>,
}

#[derive(Args)]
struct ClusterSecretArgs {
    /// Where to write the secret; an existing file is not replaced.
    file: PathBuf,
}

#[derive(Args)]
struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a new bearer token for a user and print it (only its hash is kept).
    Add(TokenAddArgs),
    /// Revoke every token of a user; takes effect at once, also on a running server.
    Revoke(TokenAddArgs),
}

#[derive(Args)]
struct TokenAddArgs {
    /// The user the token authenticates as.
    name: String,
    /// The tokens file [default: [coordinator] tokens_file, else <data_dir>/tokens of
    /// [coordinator]].
    #[arg(long)]
    tokens_file: Option<PathBuf>,
    /// The data directory of a standalone cluster or of the demo, whose tokens file is
    /// <DIR>/coordinator/tokens (unless [coordinator] tokens_file names another).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    config: ConfigArg,
}

#[derive(Args)]
struct UserArgs {
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user, or set the password of one; takes effect at the next login, also on a
    /// running server.
    Add(UserAddArgs),
    /// Remove a user and revoke their tokens; new logins are refused at once (sessions
    /// already open stay open).
    Remove(UserRemoveArgs),
}

#[derive(Args)]
struct UserRemoveArgs {
    /// The user name.
    name: String,
    /// The users file [default: [coordinator] users_file, else <data_dir>/users of
    /// [coordinator]].
    #[arg(long)]
    users_file: Option<PathBuf>,
    /// The tokens file [default: [coordinator] tokens_file, else <data_dir>/tokens of
    /// [coordinator]].
    #[arg(long)]
    tokens_file: Option<PathBuf>,
    /// The data directory of a standalone cluster or of the demo (its users and tokens
    /// files are under <DIR>/coordinator/ unless the configuration names others).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    config: ConfigArg,
}

#[derive(Args)]
struct UserAddArgs {
    /// The user name.
    name: String,
    /// Read the password from the first line of standard input [default: generate one
    /// and print it].
    #[arg(long)]
    password_stdin: bool,
    /// The users file [default: [coordinator] users_file, else <data_dir>/users of
    /// [coordinator]].
    #[arg(long)]
    users_file: Option<PathBuf>,
    /// The data directory of a standalone cluster or of the demo, whose users file is
    /// <DIR>/coordinator/users (unless [coordinator] users_file names another).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    config: ConfigArg,
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
    /// Also write a child table of detections of the catalog's sources to FILE
    /// (`detection_id`, `source_id`, `mjd`, `ra`, `dec`, `mag`), for `almagest load
    /// --director ... --director-key source_id`.
    #[arg(long, value_name = "FILE")]
    detections: Option<PathBuf>,
    /// Detections per source, on average (each source gets 1 to 2*N-1).
    #[arg(long, default_value_t = 5, requires = "detections")]
    epochs: u32,
    /// Also write a second survey of the same sky to FILE (`obj_id`, `ra`, `dec`, `mag`,
    /// `true_source_id`): 90% of the sources at J2000.0 (moved by their proper motions and
    /// a 0.1 arcsec error) and 5% spurious ones, for cross-matching two partitioned tables.
    #[arg(long, value_name = "FILE")]
    counterparts: Option<PathBuf>,
}

#[derive(Args)]
struct StandaloneArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    flags: StandaloneFlags,
}

#[derive(Args)]
struct DemoArgs {
    /// Rows of the sample catalog.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Random seed of the sample catalog.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    flags: StandaloneFlags,
}

#[derive(Args)]
struct CoordinatorArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    flags: CoordinatorFlags,
}

#[derive(Args)]
struct LoadArgs {
    /// Table to create, `database.table` (folded to lower case, as PostgreSQL folds unquoted
    /// names: `qcase.Object` creates qcase.object).
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
    #[arg(long, default_value_t = config::default_coordinator_url())]
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
    /// The cluster secret file [default: [cluster] secret_file of --config]; a standalone
    /// cluster or the demo keeps it in <data_dir>/coordinator/cluster-secret.
    #[arg(long, value_name = "FILE")]
    cluster_secret_file: Option<PathBuf>,
    /// Keep the files' column names as written. By default they are folded to lower case,
    /// as PostgreSQL folds the unquoted names of a CREATE TABLE, so that `objectId` is
    /// queried as objectId, OBJECTID or objectid; kept, a name with capitals must be
    /// double-quoted in every query.
    #[arg(long)]
    keep_column_case: bool,
    /// Load a child table of this director table (`table` or `database.table`, in the
    /// same database): every row goes to the chunk of the director row whose key equals
    /// its --director-key column, so that joins with the director on that key and
    /// per-object queries read one chunk. No --ra/--dec/--key.
    #[arg(long, requires = "director_key", conflicts_with_all = ["ra", "dec", "key"])]
    director: Option<String>,
    /// The child's column holding the director key.
    #[arg(long, requires = "director")]
    director_key: Option<String>,
    /// Skip and count the child rows whose director key no director row has (by default
    /// the first one fails the load, naming its line and key).
    #[arg(long, requires = "director")]
    allow_unknown_directors: bool,
    #[command(flatten)]
    config: ConfigArg,
    /// Input files (CSV with a header line, or Parquet).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// The configuration file every serving subcommand reads.
#[derive(Args)]
struct ConfigArg {
    /// TOML configuration file (see config/almagest.example.toml); each subcommand reads
    /// its sections.
    #[arg(long)]
    config: Option<PathBuf>,
}

impl ConfigArg {
    fn path(&self) -> Option<&std::path::Path> {
        self.config.as_deref()
    }
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

/// Who the connect line of `print_connect` logs in as.
enum Login {
    /// A user of the users file whose password is not known here.
    AnyUser,
    /// `pg_auth = "trust"`: any user name, no password.
    Trust,
    /// The demo's user and password.
    Password(String, String),
}

fn print_connect(c: &cluster::RunningCoordinator, login: &Login) {
    println!("Almagest is ready.");
    let (host, port) = (c.pg_addr.ip(), c.pg_addr.port());
    // With TLS, the connect lines verify the server (the certificate and its name) when
    // the authority is known (one `almagest tls-cert` made: ca.crt beside the
    // certificate), as a client should; psql's default (sslmode=prefer) also uses TLS,
    // without verifying.
    let ca = c
        .tls_cert
        .as_ref()
        .and_then(|cert| cert.parent())
        .map(|dir| dir.join(almagest::tls::SELF_SIGNED_CA))
        .filter(|ca| ca.exists());
    let db = match (&c.tls_cert, ca) {
        (Some(_), Some(ca)) => format!(
            "-d 'dbname=almagest sslmode=verify-full sslrootcert={}'",
            ca.canonicalize().unwrap_or(ca).display()
        ),
        (Some(_), None) => "-d 'dbname=almagest sslmode=require'".to_owned(),
        (None, _) => "almagest".to_owned(),
    };
    match login {
        Login::AnyUser => {
            println!("  psql:  psql -h {host} -p {port} -U NAME {db}");
            println!("         (a user added with `almagest user add NAME`; SCRAM-SHA-256)");
        }
        Login::Trust => {
            println!("  psql:  psql -h {host} -p {port} -U almagest {db}");
            println!("         (pg_auth = trust: no password, loopback clients only)");
        }
        Login::Password(user, password) => {
            println!("  psql:  PGPASSWORD={password} psql -h {host} -p {port} -U {user} {db}");
            println!("  URL:   postgresql://{user}:{password}@{host}:{port}/almagest");
        }
    }
    match (&c.tls_cert, c.pg_tls_required) {
        (Some(_), true) => println!("  TLS:   pgwire requires TLS"),
        (Some(cert), false) => println!(
            "  TLS:   pgwire accepts TLS (certificate {}); plain connections are accepted too",
            cert.display()
        ),
        (None, _) => {}
    }
    let scheme = if c.https { "https" } else { "http" };
    println!("  HTTP:  {scheme}://{}/status", c.http_addr);
    println!(
        "  load:  almagest load --coordinator http://{} --cluster-secret-file {} --table db.table --ra ra --dec dec --key id FILE...",
        c.grpc_addr,
        c.secret_file.display()
    );
    println!("Press Ctrl-C to stop.");
}

/// Stack of each runtime thread.
const THREAD_STACK_BYTES: usize = 64 << 20;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing();
    // Two runtimes: one accepts connections and speaks the protocols (pgwire, HTTP, gRPC),
    // the other computes queries. A query computing for minutes within one poll then
    // still leaves new connections, /health and cancel requests answered at once (the
    // operating system shares the cores between the two).
    let io = runtime("almagest-io")?;
    let execution = runtime("almagest-exec")?;
    let exec = almagest_adql::Execution::on(execution.handle().clone());
    let outcome = io.block_on(run(cli, exec));
    // A query still computing when the server stops does not hold up the exit.
    execution.shutdown_background();
    io.shutdown_timeout(std::time::Duration::from_secs(1));
    outcome
}

/// A multi-threaded runtime of as many threads as cores.
fn runtime(name: &str) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(name)
        // Parsing, planning and optimizing recurse over expressions: the threads that
        // run them get room for everything the nesting check (almagest_adql::nesting)
        // accepts. Only the pages a thread touches are ever resident.
        .thread_stack_size(THREAD_STACK_BYTES)
        .build()
        .with_context(|| format!("cannot start the {name} runtime"))
}

async fn run(cli: Cli, exec: almagest_adql::Execution) -> anyhow::Result<()> {
    match cli.command {
        Command::Gen(args) => {
            let opts = gen::GenOptions {
                rows: args.rows,
                seed: args.seed,
                out: args.out.clone(),
                edge_cases: args.edge_cases,
                progress: true,
            };
            let detections = args.detections.clone();
            let epochs = args.epochs;
            let counterparts = args.counterparts.clone();
            let (rows, detected, matched) = tokio::task::spawn_blocking(move || {
                let rows = gen::generate(&opts)?;
                let detected = detections
                    .map(|path| gen::generate_detections(&opts, &path, epochs))
                    .transpose()?;
                let matched = counterparts
                    .map(|path| gen::generate_counterparts(&opts, &path))
                    .transpose()?;
                anyhow::Ok((rows, detected, matched))
            })
            .await??;
            println!("wrote {rows} rows to {}", args.out.display());
            if let (Some(n), Some(path)) = (detected, &args.detections) {
                println!("wrote {n} detections to {}", path.display());
            }
            if let (Some(n), Some(path)) = (matched, &args.counterparts) {
                println!("wrote {n} counterpart sources to {}", path.display());
            }
            Ok(())
        }
        Command::Standalone(args) => {
            let config = AlmagestConfig::load_with(args.config.path(), |c| args.flags.apply(c))?
                .with_execution(&exec);
            let (tx, shutdown) = Shutdown::new();
            let cluster = cluster::start_standalone(&config, shutdown).await?;
            let c = &cluster.coordinator;
            print_connect(c, &login_of(&config.coordinator));
            cluster::termination_signal().await;
            info!("shutting down");
            let _ = tx.send(true);
            cluster.join().await
        }
        Command::Demo(args) => demo(args, &exec).await,
        Command::Load(args) => {
            let mut cluster = AlmagestConfig::load(args.config.path())?.cluster;
            if let Some(file) = args.cluster_secret_file {
                cluster.secret_file = Some(file);
            }
            let secret = cluster.client_secret("almagest load")?;
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
                cluster_secret: Some(secret),
                keep_column_case: args.keep_column_case,
                director: args.director,
                director_key: args.director_key,
                allow_unknown_directors: args.allow_unknown_directors,
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
            if report.unknown_directors > 0 {
                println!(
                    "skipped {} rows whose director key is not a key of the director table",
                    report.unknown_directors
                );
            }
            Ok(())
        }
        Command::Coordinator(args) => {
            let config = AlmagestConfig::load_with(args.config.path(), |c| {
                args.flags.apply(&mut c.coordinator)
            })?
            .with_execution(&exec);
            let (tx, shutdown) = Shutdown::new();
            let login = login_of(&config.coordinator);
            let running =
                cluster::start_coordinator(config.coordinator, &config.cluster, shutdown).await?;
            print_connect(&running, &login);
            cluster::termination_signal().await;
            info!("shutting down");
            let _ = tx.send(true);
            running.join().await
        }
        Command::Worker(args) => {
            let config = AlmagestConfig::load(args.path())?.with_execution(&exec);
            let mut w = config.worker;
            w.node.cluster_secret = Some(config.cluster.client_secret("a worker")?);
            let (id, listen) = (w.node.id, w.grpc_listen);
            let (tx, shutdown) = Shutdown::new();
            let handle = cluster::start_worker(w, shutdown.clone()).await?;
            println!("worker {id} serving on {listen}");
            tokio::select! {
                _ = cluster::termination_signal() => {},
                _ = shutdown.wait() => {},
            }
            let _ = tx.send(true);
            let _ = tokio::time::timeout(cluster::SHUTDOWN_GRACE, handle).await;
            Ok(())
        }
        Command::User(UserArgs {
            command: UserCommand::Add(args),
        }) => user_add(args),
        Command::User(UserArgs {
            command: UserCommand::Remove(args),
        }) => user_remove(args),
        Command::Token(TokenArgs {
            command: TokenCommand::Add(args),
        }) => token_add(args),
        Command::Token(TokenArgs {
            command: TokenCommand::Revoke(args),
        }) => token_revoke(args),
        Command::TlsCert(args) => {
            let made = almagest::tls::write_self_signed(&args.dir, &args.hosts)?;
            println!("certificate: {}", made.cert.display());
            println!("key: {}", made.key.display());
            println!("authority: {}", made.ca.display());
            println!(
                "Set [coordinator.tls] cert_file and key_file (or --tls-cert and --tls-key) to \
                 the first two; clients verify the server by trusting the authority \
                 (psql: sslmode=verify-full sslrootcert={}).",
                made.ca.display()
            );
            Ok(())
        }
        Command::ClusterSecret(args) => {
            config::write_cluster_secret(&args.file)?;
            println!(
                "wrote a new cluster secret to {}; set [cluster] secret_file to it on the \
                 coordinator, every worker and every loader",
                args.file.display()
            );
            Ok(())
        }
    }
}

/// Which of the coordinator's access files a command writes.
#[derive(Clone, Copy)]
enum AccessFile {
    Users,
    Tokens,
}

/// The file of `kind` a command names: `given` (`--users-file`/`--tokens-file`), else the
/// one of `--data-dir`'s standalone cluster, else the configuration's.
fn access_file(
    kind: AccessFile,
    given: &Option<PathBuf>,
    data_dir: &Option<PathBuf>,
    config: &ConfigArg,
) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path.clone());
    }
    let c = AlmagestConfig::load(config.path())?.coordinator;
    Ok(match (kind, data_dir) {
        (AccessFile::Users, Some(dir)) => cluster::standalone_users_file(&c, dir),
        (AccessFile::Tokens, Some(dir)) => cluster::standalone_tokens_file(&c, dir),
        (AccessFile::Users, None) => c.users_file(),
        (AccessFile::Tokens, None) => c.tokens_file(),
    })
}

/// `almagest token revoke`.
fn token_revoke(args: TokenAddArgs) -> anyhow::Result<()> {
    let path = access_file(
        AccessFile::Tokens,
        &args.tokens_file,
        &args.data_dir,
        &args.config,
    )?;
    let revoked = TokensFile::new(&path)
        .revoke(&args.name)
        .with_context(|| format!("cannot write the tokens file {}", path.display()))?;
    println!(
        "{revoked} token(s) of {} revoked in {}",
        args.name,
        path.display()
    );
    Ok(())
}

/// `almagest user remove`: the user, then their tokens.
fn user_remove(args: UserRemoveArgs) -> anyhow::Result<()> {
    let users = access_file(
        AccessFile::Users,
        &args.users_file,
        &args.data_dir,
        &args.config,
    )?;
    let tokens = access_file(
        AccessFile::Tokens,
        &args.tokens_file,
        &args.data_dir,
        &args.config,
    )?;
    let removed = UsersFile::new(&users)
        .remove(&args.name)
        .with_context(|| format!("cannot write the users file {}", users.display()))?;
    let revoked = TokensFile::new(&tokens)
        .revoke(&args.name)
        .with_context(|| format!("cannot write the tokens file {}", tokens.display()))?;
    if !removed && revoked == 0 {
        anyhow::bail!("no user {} in {}", args.name, users.display());
    }
    println!(
        "user {} removed from {}; {revoked} token(s) revoked",
        args.name,
        users.display()
    );
    Ok(())
}

/// `almagest token add`.
fn token_add(args: TokenAddArgs) -> anyhow::Result<()> {
    let path = access_file(
        AccessFile::Tokens,
        &args.tokens_file,
        &args.data_dir,
        &args.config,
    )?;
    let token = TokensFile::new(&path)
        .add(&args.name)
        .with_context(|| format!("cannot write the tokens file {}", path.display()))?;
    println!("token for {} added to {}", args.name, path.display());
    println!("token: {token}");
    Ok(())
}

fn login_of(c: &config::CoordinatorSection) -> Login {
    match c.pg_auth {
        PgAuthMode::Scram => Login::AnyUser,
        PgAuthMode::Trust => Login::Trust,
    }
}

/// `almagest user add`.
fn user_add(args: UserAddArgs) -> anyhow::Result<()> {
    let path = access_file(
        AccessFile::Users,
        &args.users_file,
        &args.data_dir,
        &args.config,
    )?;
    let (password, generated) = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        (line.trim_end_matches(['\r', '\n']).to_string(), false)
    } else {
        (generate_password(), true)
    };
    UsersFile::new(&path)
        .set_password(&args.name, &password)
        .with_context(|| format!("cannot write the users file {}", path.display()))?;
    println!("user {} set in {}", args.name, path.display());
    if generated {
        println!("password: {password}");
    }
    Ok(())
}

/// Generates the sample catalog (once), starts the cluster, loads it (once), and serves.
async fn demo(args: DemoArgs, exec: &almagest_adql::Execution) -> anyhow::Result<()> {
    let mut config = AlmagestConfig::load_with(args.config.path(), |c| args.flags.apply(c))?
        .with_execution(exec);
    let data_dir = config
        .standalone
        .data_dir
        .get_or_insert_with(|| PathBuf::from(DEMO_DATA_DIR))
        .clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    // TLS on pgwire with a certificate of the demo's own unless one is configured; the
    // HTTP port stays plain then (see [coordinator.tls] https).
    if config.coordinator.tls.files().is_none() {
        let made = almagest::tls::write_self_signed(&data_dir.join("tls"), &[])?;
        config.coordinator.tls.cert_file = Some(made.cert);
        config.coordinator.tls.key_file = Some(made.key);
        config.coordinator.tls.https = false;
    }
    // Before the cluster starts, so that it starts with a user.
    let login = match config.coordinator.pg_auth {
        PgAuthMode::Trust => Login::Trust,
        PgAuthMode::Scram => demo_login(&config.coordinator, &data_dir)?,
    };
    let (tx, shutdown) = Shutdown::new();
    let cluster = cluster::start_standalone(&config, shutdown).await?;
    let c = &cluster.coordinator;
    if c.coordinator
        .catalog()
        .state()
        .tables
        .contains_key("demo.gaia")
    {
        println!("demo.gaia is already loaded in {}", data_dir.display());
    } else {
        let file = data_dir.join(format!("gaia-{}-{}.parquet", args.rows, args.seed));
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
            spill_dir: Some(data_dir.clone()),
            progress: true,
            cluster_secret: Some(c.secret.clone()),
            // The generated Parquet file carries units, UCDs and descriptions itself, so
            // there is no metadata file (the default).
            ..LoadOptions::default()
        })
        .await?;
        println!(
            "loaded {} rows into {} chunks in {:.1} s",
            report.rows,
            report.chunks,
            report.elapsed.as_secs_f64()
        );
    }
    print_connect(c, &login);
    println!("Try: SELECT source_id, ra, dec FROM demo.gaia WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 266.4, -28.9, 0.2));");
    cluster::termination_signal().await;
    info!("shutting down");
    let _ = tx.send(true);
    cluster.join().await
}

/// The demo's pgwire user, `almagest`, with a password generated at the first run and
/// kept in `<data_dir>/demo-password` (owner-readable only), so that every run of the demo
/// prints the same credentials.
fn demo_login(c: &config::CoordinatorSection, data_dir: &std::path::Path) -> anyhow::Result<Login> {
    const USER: &str = "almagest";
    let users = UsersFile::new(cluster::standalone_users_file(c, data_dir));
    let kept = data_dir.join("demo-password");
    let known = std::fs::read_to_string(&kept)
        .ok()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty());
    let password = match known {
        Some(p) if users.contains(USER)? => p,
        _ => {
            let p = generate_password();
            users.set_password(USER, &p).with_context(|| {
                format!("cannot write the users file {}", users.path().display())
            })?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            std::io::Write::write_all(&mut options.open(&kept)?, format!("{p}\n").as_bytes())
                .with_context(|| format!("cannot write {}", kept.display()))?;
            p
        }
    };
    Ok(Login::Password(USER.into(), password))
}
