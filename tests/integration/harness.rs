//! The cluster harness: real `almagest` processes on free loopback ports, stopped when the
//! test drops them, and data generated once per run of the test binary.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio_postgres::{Client, NoTls};

pub const BIN: &str = env!("CARGO_BIN_EXE_almagest");

/// `rel`, a path relative to the project's root, in the clone cargo runs the tests in (not
/// the one they were compiled in: a shared target directory may hold a binary built from
/// another clone of the same sources).
pub fn project_file(rel: &str) -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("..")
        .join(rel)
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// Runs `almagest` with `args` to completion; returns stdout, or an error with stderr.
pub fn almagest(args: &[&str]) -> Result<String> {
    let out = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .context("cannot run almagest")?;
    if !out.status.success() {
        bail!(
            "almagest {:?} failed: {}{}",
            args,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `almagest user add NAME --data-dir DIR` for the cluster in `data_dir`, the password
/// given on standard input (or generated, when `None`); returns the command's output.
pub fn user_add(data_dir: &Path, name: &str, password: Option<&str>) -> Result<String> {
    use std::io::Write;
    let data = data_dir.display().to_string();
    let mut args = vec!["user", "add", name, "--data-dir", &data];
    if password.is_some() {
        args.push("--password-stdin");
    }
    let mut child = Command::new(BIN)
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run almagest user add")?;
    let mut stdin = child.stdin.take().context("stdin")?;
    if let Some(p) = password {
        writeln!(stdin, "{p}")?;
    }
    drop(stdin);
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "almagest user add failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

/// A child process killed on drop.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    pub fn spawn(name: &str, args: &[&str], log: &Path) -> Result<Self> {
        Self::spawn_with_env(name, args, &[], log)
    }

    /// [`Proc::spawn`] with environment variables set for the child (e.g.
    /// `ALMAGEST_LOG_FORMAT=json`).
    pub fn spawn_with_env(
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
        log: &Path,
    ) -> Result<Self> {
        let log_file = std::fs::File::create(log)?;
        let child = Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        Ok(Self { child })
    }

    /// Asks the process to stop (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the process without warning (a crash).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A standalone cluster in a child process.
pub struct Cluster {
    /// Held so that dropping the cluster stops the process.
    _proc: Proc,
    pub pg_port: u16,
    pub grpc_port: u16,
    pub http_port: u16,
    pub data_dir: PathBuf,
}

impl Cluster {
    pub async fn start(data_dir: &Path, workers: u32) -> Result<Self> {
        Self::start_with_args(data_dir, workers, &[]).await
    }

    /// Starts a cluster with `extra` options of `almagest standalone` (e.g.
    /// `--allow-http-upload`).
    pub async fn start_with_args(data_dir: &Path, workers: u32, extra: &[&str]) -> Result<Self> {
        Self::start_with_env(data_dir, workers, extra, &[]).await
    }

    /// [`Cluster::start_with_args`] with environment variables for the server process.
    pub async fn start_with_env(
        data_dir: &Path,
        workers: u32,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let (pg, grpc, http) = (free_port(), free_port(), free_port());
        let (data, workers) = (data_dir.display().to_string(), workers.to_string());
        let (pg_arg, grpc_arg, http_arg) = (pg.to_string(), grpc.to_string(), http.to_string());
        let mut args = vec![
            "standalone",
            "--data-dir",
            &data,
            "--workers",
            &workers,
            "--pg-port",
            &pg_arg,
            "--grpc-port",
            &grpc_arg,
            "--http-port",
            &http_arg,
        ];
        // Tests connect on loopback without a password unless they ask for SCRAM
        // (`--pg-auth scram` in `extra`, which then is used instead).
        if !extra.contains(&"--pg-auth") {
            args.extend(["--pg-auth", "trust"]);
        }
        args.extend_from_slice(extra);
        let proc = Proc::spawn_with_env(
            "standalone",
            &args,
            env,
            &data_dir.join(format!("standalone-{pg}.log")),
        )?;
        let cluster = Self {
            _proc: proc,
            pg_port: pg,
            grpc_port: grpc,
            http_port: http,
            data_dir: data_dir.to_path_buf(),
        };
        wait_for_pg(pg, &data_dir.join(format!("standalone-{pg}.log"))).await?;
        Ok(cluster)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self._proc.child.id()
    }

    /// Whether the server process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self._proc.child.try_wait(), Ok(None))
    }

    /// The server's log file (its standard error).
    pub fn log_file(&self) -> PathBuf {
        self.data_dir
            .join(format!("standalone-{}.log", self.pg_port))
    }

    /// The cluster secret the standalone coordinator generated (loads need it).
    pub fn secret_file(&self) -> PathBuf {
        self.data_dir.join("coordinator").join("cluster-secret")
    }

    pub fn coordinator(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// Base URL of the TAP service, e.g. `http://127.0.0.1:PORT/tap`.
    pub fn tap_url(&self) -> String {
        format!("http://127.0.0.1:{}/tap", self.http_port)
    }

    pub async fn client(&self) -> Result<Client> {
        connect(self.pg_port).await
    }

    /// Loads files with `almagest load`.
    pub fn load(
        &self,
        table: &str,
        position: Option<(&str, &str, &str)>,
        files: &[&Path],
    ) -> Result<String> {
        self.load_with_args(table, position, files, &[])
    }

    /// Loads files with `almagest load`, passing `extra` options (e.g. `--metadata FILE`).
    pub fn load_with_args(
        &self,
        table: &str,
        position: Option<(&str, &str, &str)>,
        files: &[&Path],
        extra: &[&str],
    ) -> Result<String> {
        let coordinator = self.coordinator();
        let mut args: Vec<String> = vec![
            "load".into(),
            "--quiet".into(),
            "--coordinator".into(),
            coordinator,
            "--cluster-secret-file".into(),
            self.secret_file().display().to_string(),
            "--table".into(),
            table.into(),
        ];
        if let Some((ra, dec, key)) = position {
            args.extend([
                "--ra".into(),
                ra.into(),
                "--dec".into(),
                dec.into(),
                "--key".into(),
                key.into(),
            ]);
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        args.extend(files.iter().map(|f| f.display().to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        almagest(&refs)
    }
}

/// Connects to pgwire on `port` as `almagest` without a password (the harness's clusters
/// trust loopback clients).
pub async fn connect(port: u16) -> Result<Client> {
    Ok(connect_as(port, "almagest", None).await?)
}

/// Connects to pgwire on `port` as `user`, with `password` if given.
pub async fn connect_as(
    port: u16,
    user: &str,
    password: Option<&str>,
) -> std::result::Result<Client, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user(user)
        .dbname("almagest");
    if let Some(p) = password {
        config.password(p);
    }
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Waits until pgwire answers: `SELECT 1` runs, or (on a server that asks for passwords)
/// a login with a made-up password is refused as such.
pub async fn wait_for_pg(port: u16, log: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match connect_as(port, "almagest", Some("harness-probe")).await {
            Ok(c) => {
                if c.simple_query("SELECT 1").await.is_ok() {
                    return Ok(());
                }
            }
            // Refused as it should be: a wrong password, or (on a server that requires
            // TLS) a plain connection.
            Err(e)
                if e.code() == Some(&tokio_postgres::error::SqlState::INVALID_PASSWORD)
                    || e.code()
                        == Some(
                            &tokio_postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
                        ) =>
            {
                return Ok(())
            }
            Err(_) => {}
        }
        if Instant::now() > deadline {
            bail!(
                "server on port {port} did not start; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Directory for this run of the test binary: `almagest-it/run-<pid>` under cargo's
/// per-target temporary directory. Nothing is reused between runs: a file an earlier run
/// (or an earlier version of `almagest gen`) left behind must never decide a test. The
/// first call removes the run directories of processes that no longer exist.
pub fn work_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("almagest-it");
        remove_dead_runs(&root);
        let dir = root.join(format!("run-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cannot create work dir");
        dir
    })
}

/// Removes what earlier runs left under `root`: `run-<pid>` directories whose process is
/// gone, and anything else (the layout before run directories, with a catalog cached
/// forever).
fn remove_dead_runs(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let alive = name
            .strip_prefix("run-")
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let path = entry.path();
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}

/// A fresh directory for one test.
pub fn test_dir(name: &str) -> PathBuf {
    let dir = work_dir().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("cannot create test dir");
    dir
}

pub const CATALOG_ROWS: u64 = 60_000;
pub const CATALOG_SEED: u64 = 20261121;

/// The generated test catalog (Parquet, with edge-case rows), made by this build's
/// `almagest gen` once per run of the test binary.
pub fn catalog_file() -> &'static Path {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let file = work_dir().join(format!("gaia-{CATALOG_ROWS}-{CATALOG_SEED}.parquet"));
        almagest(&[
            "gen",
            "--rows",
            &CATALOG_ROWS.to_string(),
            "--seed",
            &CATALOG_SEED.to_string(),
            "--edge-cases",
            "--out",
            &file.display().to_string(),
        ])
        .expect("almagest gen failed");
        file
    })
}

/// Every file under `dir` whose name ends with `.parquet` (chunk files of workers).
pub fn parquet_files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out
}
