//! Typed configuration of every role: defaults (each struct's `Default` impl, the one
//! place they live), then a TOML file, then `ALMAGEST__*` environment variables (e.g.
//! `ALMAGEST__COORDINATOR__PG_LISTEN`), then the command line's flags, then `validate()`.
//! `config/almagest.example.toml` documents every key.
//!
//! The libraries' own settings ([`CoordinatorConfig`] with its `JobsConfig`,
//! [`WorkerConfig`], the TAP service's [`TapConfig`]) are read from the file directly, with
//! no mirrored copies; the sections here add only what the server wires: the addresses it
//! listens on, how clients authenticate, where a worker registers, and the shape of the
//! standalone cluster.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};

use almagest_coordinator::CoordinatorConfig;
use almagest_proto::auth::ClusterSecret;
use almagest_worker::WorkerConfig;
use anyhow::{bail, Context};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::tap::TapConfig;

/// The coordinator's gRPC address unless configured: the coordinator listens there, and
/// workers and `almagest load` connect there.
pub const DEFAULT_COORDINATOR_GRPC: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7000));
const DEFAULT_PG: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5433));
const DEFAULT_HTTP: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080));
const DEFAULT_WORKER_GRPC: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7001));

/// The URL clients use for the coordinator's default gRPC address.
pub fn default_coordinator_url() -> String {
    format!("http://{DEFAULT_COORDINATOR_GRPC}")
}

/// The whole configuration file: one section per role; each role reads its own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AlmagestConfig {
    pub coordinator: CoordinatorSection,
    pub worker: WorkerSection,
    pub standalone: StandaloneSection,
    pub cluster: ClusterSection,
}

/// `[cluster]`: what every role of one cluster shares.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterSection {
    /// The file holding the secret of the internal gRPC plane, which every call between
    /// the coordinator, the workers and `almagest load` carries (written by
    /// `almagest cluster-secret FILE`, or by the coordinator at its first start when the
    /// file does not exist). Workers and loaders need it; a coordinator without one uses
    /// `<data_dir>/cluster-secret`.
    pub secret_file: Option<PathBuf>,
}

/// The name of the secret file a coordinator keeps in its data directory.
pub const CLUSTER_SECRET_FILE: &str = "cluster-secret";

impl ClusterSection {
    /// The coordinator's secret: the configured file, else `<data_dir>/cluster-secret`;
    /// either is generated (owner-readable only) when it does not exist, so that the first
    /// start of a cluster needs no extra step. Returns the file too.
    pub fn coordinator_secret(&self, data_dir: &Path) -> anyhow::Result<(ClusterSecret, PathBuf)> {
        let path = match &self.secret_file {
            Some(path) => path.clone(),
            None => data_dir.join(CLUSTER_SECRET_FILE),
        };
        if !path.exists() {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            write_cluster_secret(&path)?;
            tracing::info!(path = %path.display(), "generated the cluster secret; workers and \
                loaders need this file ([cluster] secret_file or --cluster-secret-file)");
        }
        Ok((read_cluster_secret(&path)?, path))
    }

    /// The secret of a worker or a loader: `what` names the role in the error when none
    /// is configured.
    pub fn client_secret(&self, what: &str) -> anyhow::Result<ClusterSecret> {
        match &self.secret_file {
            Some(path) => read_cluster_secret(path),
            None => bail!(
                "{what} needs the cluster secret: set [cluster] secret_file (or \
                 ALMAGEST__CLUSTER__SECRET_FILE, or --cluster-secret-file) to the file the \
                 coordinator uses (by default <coordinator data_dir>/{CLUSTER_SECRET_FILE})"
            ),
        }
    }
}

/// Reads a cluster secret file.
pub fn read_cluster_secret(path: &Path) -> anyhow::Result<ClusterSecret> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the cluster secret file {}", path.display()))?;
    ClusterSecret::new(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Writes a new random secret (64 hex digits) to `path`, readable by its owner only;
/// refuses to replace an existing file.
pub fn write_cluster_secret(path: &Path) -> anyhow::Result<()> {
    use std::io::Write;
    let bytes: [u8; 32] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create the cluster secret file {}", path.display()))?;
    writeln!(file, "{hex}")
        .with_context(|| format!("cannot write the cluster secret file {}", path.display()))?;
    Ok(())
}

/// `[coordinator]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CoordinatorSection {
    /// The coordinator library's settings: `node_id`, `data_dir`, `default_chunk_depth`,
    /// `memory_limit_mb`, `target_partitions` and `[coordinator.jobs]`.
    #[serde(flatten)]
    pub node: CoordinatorConfig,
    /// gRPC for workers and loaders.
    pub grpc_listen: SocketAddr,
    /// Postgres wire protocol.
    pub pg_listen: SocketAddr,
    /// HTTP: health, status and the TAP service under `/tap`.
    pub http_listen: SocketAddr,
    /// How pgwire clients authenticate: `scram` (SCRAM-SHA-256 against the users file)
    /// or `trust` (no password, loopback clients only).
    pub pg_auth: PgAuthMode,
    /// The users file of `scram` (written by `almagest user add`); default
    /// `<data_dir>/users`.
    pub users_file: Option<PathBuf>,
    /// The bearer tokens TAP accepts (written by `almagest token add`); default
    /// `<data_dir>/tokens`.
    pub tokens_file: Option<PathBuf>,
    /// `[coordinator.tap]`: limits of the TAP service.
    pub tap: TapConfig,
    /// `[coordinator.tls]`: TLS on pgwire and HTTPS on the HTTP port.
    pub tls: TlsSection,
    /// `[coordinator.limits]`: what one pgwire client may take of the server.
    pub limits: crate::pgwire::LimitsConfig,
}

/// `[coordinator.tls]`: with a certificate and its key, pgwire accepts TLS (it answers a
/// client's SSLRequest with `S`) and the HTTP port speaks HTTPS only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsSection {
    /// PEM certificate chain, the server's certificate first.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of that certificate (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// Refuse pgwire clients that do not use TLS (28000), as a `hostssl`-only
    /// `pg_hba.conf` does. Needs a certificate.
    pub pg_required: bool,
    /// Serve the HTTP port (TAP, status) over HTTPS when a certificate is configured;
    /// `false` keeps it plain HTTP (the demo's choice: its certificate is self-signed,
    /// which TOPCAT and pyvo refuse unless told to trust it).
    pub https: bool,
}

impl Default for TlsSection {
    fn default() -> Self {
        Self {
            cert_file: None,
            key_file: None,
            pg_required: false,
            https: true,
        }
    }
}

impl TlsSection {
    /// The configured certificate and key, if TLS is on.
    pub fn files(&self) -> Option<(&Path, &Path)> {
        Some((self.cert_file.as_deref()?, self.key_file.as_deref()?))
    }
}

/// `[coordinator] pg_auth`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PgAuthMode {
    /// SCRAM-SHA-256 against the users file.
    #[default]
    Scram,
    /// Everyone is let in without a password, from loopback addresses only.
    Trust,
}

impl CoordinatorSection {
    /// Where the users file is: `users_file`, or `<data_dir>/users`.
    pub fn users_file(&self) -> PathBuf {
        self.users_file
            .clone()
            .unwrap_or_else(|| self.node.data_dir.join("users"))
    }

    /// Where the tokens file is: `tokens_file`, or `<data_dir>/tokens`.
    pub fn tokens_file(&self) -> PathBuf {
        self.tokens_file
            .clone()
            .unwrap_or_else(|| self.node.data_dir.join("tokens"))
    }
}

impl Default for CoordinatorSection {
    fn default() -> Self {
        Self {
            node: CoordinatorConfig::default(),
            grpc_listen: DEFAULT_COORDINATOR_GRPC,
            pg_listen: DEFAULT_PG,
            http_listen: DEFAULT_HTTP,
            pg_auth: PgAuthMode::default(),
            users_file: None,
            tokens_file: None,
            tap: TapConfig::default(),
            tls: TlsSection::default(),
            limits: crate::pgwire::LimitsConfig::default(),
        }
    }
}

/// `[worker]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerSection {
    /// The worker library's settings: `id`, `data_dir`, `target_partitions`.
    #[serde(flatten)]
    pub node: WorkerConfig,
    /// gRPC for the coordinator and loaders.
    pub grpc_listen: SocketAddr,
    /// Address others reach this worker at (default: `http://<grpc_listen>`).
    pub advertise_address: Option<String>,
    /// The coordinator's gRPC address.
    pub coordinator: String,
}

impl Default for WorkerSection {
    fn default() -> Self {
        Self {
            node: WorkerConfig::default(),
            grpc_listen: DEFAULT_WORKER_GRPC,
            advertise_address: None,
            coordinator: default_coordinator_url(),
        }
    }
}

/// `[standalone]`: `almagest standalone` and `almagest demo`, one coordinator (set up by
/// `[coordinator]`, except for its node id, data directory and parallelism) and N workers
/// in one process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StandaloneSection {
    /// Where the catalog (`<data_dir>/coordinator`) and the chunk files
    /// (`<data_dir>/worker-<id>`) live. None by default: `standalone` refuses to guess
    /// where to keep data, and `demo` has a directory of its own.
    pub data_dir: Option<PathBuf>,
    /// Number of workers.
    pub workers: u64,
}

impl Default for StandaloneSection {
    fn default() -> Self {
        Self {
            data_dir: None,
            workers: 2,
        }
    }
}

/// Flags of `coordinator`, `standalone` and `demo`: the last layer over `[coordinator]`.
/// None has a default of its own: a flag left out keeps what the defaults, the file and
/// the environment said.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CoordinatorFlags {
    /// Address to listen on, for gRPC, pgwire and HTTP alike [default: the addresses of
    /// [coordinator] grpc_listen, pg_listen, http_listen].
    #[arg(long)]
    pub host: Option<IpAddr>,
    /// Postgres wire protocol port [default: the port of [coordinator] pg_listen].
    #[arg(long)]
    pub pg_port: Option<u16>,
    /// HTTP port [default: the port of [coordinator] http_listen].
    #[arg(long)]
    pub http_port: Option<u16>,
    /// Coordinator gRPC port, where workers and `almagest load` connect [default: the port
    /// of [coordinator] grpc_listen].
    #[arg(long)]
    pub grpc_port: Option<u16>,
    /// HEALPix depth of the chunks of new databases, 3 being 768 chunks [default:
    /// [coordinator] default_chunk_depth].
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=12))]
    pub chunk_depth: Option<u8>,
    /// Memory for the merge side of queries, MiB [default: [coordinator] memory_limit_mb].
    #[arg(long)]
    pub memory_limit_mb: Option<usize>,
    /// Let TAP fetch `UPLOAD=name,http(s)://...` tables (the server then requests any URL
    /// a user gives it: see allow_http_upload in config/almagest.example.toml).
    #[arg(long)]
    pub allow_http_upload: bool,
    /// How pgwire clients authenticate: scram (users added with `almagest user add`) or
    /// trust (no password, loopback clients only) [default: [coordinator] pg_auth].
    #[arg(long, value_enum)]
    pub pg_auth: Option<PgAuthMode>,
    /// Whether TAP serves requests without credentials [default: [coordinator.tap]
    /// anonymous].
    #[arg(long)]
    pub tap_anonymous: Option<bool>,
    /// PEM certificate chain for TLS on pgwire and HTTPS [default: [coordinator.tls]
    /// cert_file].
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert [default: [coordinator.tls] key_file].
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Refuse pgwire clients that do not use TLS [default: [coordinator.tls] pg_required].
    #[arg(long)]
    pub pg_require_tls: bool,
}

impl CoordinatorFlags {
    /// Overrides what the flags name, leaving the rest as loaded.
    pub fn apply(&self, c: &mut CoordinatorSection) {
        if let Some(host) = self.host {
            for addr in [&mut c.grpc_listen, &mut c.pg_listen, &mut c.http_listen] {
                addr.set_ip(host);
            }
        }
        for (addr, port) in [
            (&mut c.grpc_listen, self.grpc_port),
            (&mut c.pg_listen, self.pg_port),
            (&mut c.http_listen, self.http_port),
        ] {
            if let Some(port) = port {
                addr.set_port(port);
            }
        }
        if let Some(depth) = self.chunk_depth {
            c.node.default_chunk_depth = depth;
        }
        if let Some(mb) = self.memory_limit_mb {
            c.node.memory_limit_bytes = mb.saturating_mul(1 << 20);
        }
        // A switch can only turn the fetch on: off is the default, and a file that turned
        // it on is not overridden by a flag's absence.
        if self.allow_http_upload {
            c.tap.allow_http_upload = true;
        }
        if let Some(mode) = self.pg_auth {
            c.pg_auth = mode;
        }
        if let Some(anonymous) = self.tap_anonymous {
            c.tap.anonymous = anonymous;
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            c.tls.cert_file = Some(cert.clone());
            c.tls.key_file = Some(key.clone());
        }
        if self.pg_require_tls {
            c.tls.pg_required = true;
        }
    }
}

/// Flags of `standalone` and `demo`: the last layer over `[standalone]` and `[coordinator]`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StandaloneFlags {
    /// Where the catalog and the chunk files live [default: [standalone] data_dir; for
    /// `demo`, almagest-demo].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Number of workers [default: [standalone] workers].
    #[arg(long)]
    pub workers: Option<u64>,
    #[command(flatten)]
    pub coordinator: CoordinatorFlags,
}

impl StandaloneFlags {
    /// Overrides what the flags name, leaving the rest as loaded.
    pub fn apply(&self, c: &mut AlmagestConfig) {
        if let Some(dir) = &self.data_dir {
            c.standalone.data_dir = Some(dir.clone());
        }
        if let Some(workers) = self.workers {
            c.standalone.workers = workers;
        }
        self.coordinator.apply(&mut c.coordinator);
    }
}

impl AlmagestConfig {
    /// Every role of this configuration runs its queries on `execution`.
    pub fn with_execution(mut self, execution: &almagest_adql::Execution) -> Self {
        self.coordinator.node.execution = execution.clone();
        self.worker.node.execution = execution.clone();
        self
    }

    /// Defaults, then the TOML file (if given), then `ALMAGEST__*` variables.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        Self::load_with(file, |_| {})
    }

    /// Defaults, then the TOML file (if given), then `ALMAGEST__*` variables, then `cli`
    /// (the command line's flags), then `validate()`.
    pub fn load_with(file: Option<&Path>, cli: impl FnOnce(&mut Self)) -> anyhow::Result<Self> {
        let mut fig = Figment::from(Serialized::defaults(AlmagestConfig::default()));
        if let Some(path) = file {
            if !path.exists() {
                bail!("configuration file {} does not exist", path.display());
            }
            fig = fig.merge(Toml::file(path));
        }
        fig = fig.merge(Env::prefixed("ALMAGEST__").split("__"));
        let mut config: AlmagestConfig = fig.extract().context("invalid configuration")?;
        cli(&mut config);
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let c = &self.coordinator;
        if !(1..=12).contains(&c.node.default_chunk_depth) {
            bail!(
                "coordinator.default_chunk_depth must be within 1..=12, got {}",
                c.node.default_chunk_depth
            );
        }
        if c.node.memory_limit_bytes < 64 << 20 {
            bail!("coordinator.memory_limit_mb must be at least 64");
        }
        if c.node.jobs.concurrency == 0 {
            bail!("coordinator.jobs.concurrency must be at least 1");
        }
        if c.node.jobs.sweep_interval.is_zero() {
            bail!("coordinator.jobs.sweep_interval_s must be at least 1");
        }
        if c.tap.default_maxrec > c.tap.hard_maxrec {
            bail!(
                "coordinator.tap.default_maxrec ({}) must not exceed coordinator.tap.hard_maxrec ({})",
                c.tap.default_maxrec,
                c.tap.hard_maxrec
            );
        }
        if c.tap.max_upload_bytes < 1 << 20 {
            bail!("coordinator.tap.max_upload_mb must be at least 1");
        }
        if c.tap.http_upload_timeout.is_zero() {
            bail!("coordinator.tap.http_upload_timeout_s must be at least 1");
        }
        if c.tls.cert_file.is_some() != c.tls.key_file.is_some() {
            bail!("coordinator.tls needs both cert_file and key_file, or neither");
        }
        if c.tls.pg_required && c.tls.cert_file.is_none() {
            bail!("coordinator.tls.pg_required needs a certificate (cert_file and key_file)");
        }
        if self.worker.node.id == 0 {
            bail!("worker.id must be positive");
        }
        if !self.worker.coordinator.starts_with("http://") {
            bail!(
                "worker.coordinator must be an http:// gRPC address, got {:?}",
                self.worker.coordinator
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_file_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        std::fs::write(
            &path,
            "[coordinator]\npg_listen = \"127.0.0.1:6543\"\n[worker]\nid = 3\n",
        )
        .unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("ALMAGEST__WORKER__ID", "4");
            let c = AlmagestConfig::load(Some(&path)).unwrap();
            assert_eq!(c.coordinator.pg_listen.port(), 6543);
            assert_eq!(c.worker.node.id, 4);
            assert_eq!(c.coordinator.grpc_listen.port(), 7000);
            Ok(())
        });
    }

    #[test]
    fn t11_invalid_values_are_refused() {
        let mut c = AlmagestConfig::default();
        c.coordinator.node.default_chunk_depth = 40;
        assert!(c.validate().is_err());
        let mut c = AlmagestConfig::default();
        c.coordinator.tap.default_maxrec = c.coordinator.tap.hard_maxrec + 1;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("coordinator.tap.default_maxrec"), "{e}");
        let mut c = AlmagestConfig::default();
        c.coordinator.tls.cert_file = Some("server.crt".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("both cert_file and key_file"), "{e}");
        let mut c = AlmagestConfig::default();
        c.coordinator.tls.pg_required = true;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("pg_required needs a certificate"), "{e}");
    }

    #[test]
    fn t12_tap_section_from_file_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        std::fs::write(
            &path,
            "[coordinator.tap]
default_maxrec = 500
",
        )
        .unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("ALMAGEST__COORDINATOR__TAP__MAX_UPLOAD_MB", "2");
            let c = AlmagestConfig::load(Some(&path)).unwrap();
            let tap = &c.coordinator.tap;
            assert_eq!(tap.default_maxrec, 500);
            assert_eq!(tap.hard_maxrec, 10_000_000);
            assert_eq!(tap.max_upload_bytes, 2 << 20);
            assert!(!tap.allow_http_upload, "off unless asked for");
            assert_eq!(tap.http_upload_timeout.as_secs(), 60);
            Ok(())
        });
    }

    #[test]
    fn t13_http_upload_from_file_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        std::fs::write(
            &path,
            "[coordinator.tap]\nallow_http_upload = true\nhttp_upload_timeout_s = 5\n",
        )
        .unwrap();
        figment::Jail::expect_with(|_| {
            let tap = AlmagestConfig::load(Some(&path)).unwrap().coordinator.tap;
            assert!(tap.allow_http_upload);
            assert_eq!(tap.http_upload_timeout.as_secs(), 5);
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("ALMAGEST__COORDINATOR__TAP__ALLOW_HTTP_UPLOAD", "false");
            let c = AlmagestConfig::load(Some(&path)).unwrap();
            assert!(!c.coordinator.tap.allow_http_upload);
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("ALMAGEST__COORDINATOR__TAP__ALLOW_HTTP_UPLOAD", "true");
            let c = AlmagestConfig::load(None).unwrap();
            assert!(c.coordinator.tap.allow_http_upload);
            Ok(())
        });
    }

    #[test]
    fn t14_cli_flags_override_file_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        std::fs::write(
            &path,
            "[coordinator]\npg_listen = \"127.0.0.1:6543\"\ngrpc_listen = \"127.0.0.1:7100\"\nmemory_limit_mb = 2048\n[coordinator.tap]\nallow_http_upload = true\n",
        )
        .unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("ALMAGEST__COORDINATOR__HTTP_LISTEN", "127.0.0.1:8181");
            let flags = CoordinatorFlags {
                host: Some([0, 0, 0, 0].into()),
                pg_port: Some(7777),
                chunk_depth: Some(5),
                ..Default::default()
            };
            let c = AlmagestConfig::load_with(Some(&path), |c| flags.apply(&mut c.coordinator))
                .unwrap()
                .coordinator;
            // A flag wins over the file; a flag left out keeps the file's or env's value.
            assert_eq!(c.pg_listen, "0.0.0.0:7777".parse().unwrap());
            assert_eq!(c.grpc_listen, "0.0.0.0:7100".parse().unwrap());
            assert_eq!(c.http_listen, "0.0.0.0:8181".parse().unwrap());
            assert_eq!(c.node.default_chunk_depth, 5);
            assert_eq!(c.node.memory_limit_bytes, 2048 << 20);
            assert!(
                c.tap.allow_http_upload,
                "an absent switch does not turn it off"
            );
            Ok(())
        });
        figment::Jail::expect_with(|_| {
            let flags = CoordinatorFlags {
                memory_limit_mb: Some(10),
                ..Default::default()
            };
            let e = AlmagestConfig::load_with(None, |c| flags.apply(&mut c.coordinator))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("memory_limit_mb"),
                "flags are validated too: {e}"
            );
            Ok(())
        });
    }

    #[test]
    fn t15_standalone_reads_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        std::fs::write(
            &path,
            "[standalone]\ndata_dir = \"/tmp/x\"\nworkers = 3\n[coordinator.jobs]\nconcurrency = 5\n",
        )
        .unwrap();
        figment::Jail::expect_with(|_| {
            let c = AlmagestConfig::load_with(Some(&path), |_| {}).unwrap();
            assert_eq!(c.standalone.data_dir, Some(PathBuf::from("/tmp/x")));
            assert_eq!(c.standalone.workers, 3);
            assert_eq!(c.coordinator.node.jobs.concurrency, 5);
            let flags = StandaloneFlags {
                workers: Some(1),
                ..Default::default()
            };
            let c = AlmagestConfig::load_with(Some(&path), |c| flags.apply(c)).unwrap();
            assert_eq!(c.standalone.workers, 1);
            assert_eq!(c.standalone.data_dir, Some(PathBuf::from("/tmp/x")));
            let c = AlmagestConfig::load(None).unwrap();
            assert_eq!(c.standalone, StandaloneSection::default());
            Ok(())
        });
    }

    /// Every key path of a JSON value, `section.key`, nulls included.
    fn key_paths(
        prefix: &str,
        v: &serde_json::Value,
        out: &mut std::collections::BTreeSet<String>,
    ) {
        if let serde_json::Value::Object(map) = v {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                if v.is_object() {
                    key_paths(&path, v, out);
                } else {
                    out.insert(path);
                }
            }
        }
    }

    #[test]
    fn t16_example_file_is_the_model() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/almagest.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        // The keys the example documents, set or commented out, under their section.
        let mut documented = std::collections::BTreeSet::new();
        let mut section = String::new();
        for line in text.lines() {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_string();
            } else {
                let line = line.strip_prefix("# ").unwrap_or(line);
                if let Some((key, _)) = line.split_once(" = ") {
                    if !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                        documented.insert(format!("{section}.{key}"));
                    }
                }
            }
        }
        let mut model = std::collections::BTreeSet::new();
        key_paths(
            "",
            &serde_json::to_value(AlmagestConfig::default()).unwrap(),
            &mut model,
        );
        assert_eq!(
            documented, model,
            "the example documents every key of the model"
        );

        figment::Jail::expect_with(|_| {
            let example = AlmagestConfig::load(Some(&path)).unwrap();
            // The example says its values are the defaults, except the two data_dir paths.
            let mut expected = AlmagestConfig::default();
            expected.coordinator.node.data_dir = "/var/lib/almagest/coordinator".into();
            expected.worker.node.data_dir = "/var/lib/almagest/worker-1".into();
            assert_eq!(example, expected);
            Ok(())
        });
    }
    #[test]
    fn t16_cluster_secret_generated_once_read_by_every_role() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("coordinator");
        let none = ClusterSection::default();
        let (first, path) = none.coordinator_secret(&data).unwrap();
        assert_eq!(path, data.join(CLUSTER_SECRET_FILE));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        // A restart reads the same secret; workers and loaders given the file agree.
        let (again, _) = none.coordinator_secret(&data).unwrap();
        assert_eq!(first, again);
        let given = ClusterSection {
            secret_file: Some(path.clone()),
        };
        assert_eq!(given.client_secret("a worker").unwrap(), first);
        // Without the file a worker or loader refuses to start, naming the setting.
        let e = none.client_secret("a worker").unwrap_err().to_string();
        assert!(e.starts_with("a worker needs the cluster secret"), "{e}");
        assert!(e.contains("[cluster] secret_file"), "{e}");
        // A configured file that does not exist yet is created by the coordinator only.
        let configured = ClusterSection {
            secret_file: Some(dir.path().join("etc").join("secret")),
        };
        let e = format!("{:#}", configured.client_secret("a worker").unwrap_err());
        assert!(e.contains("cannot read the cluster secret file"), "{e}");
        let (made, made_path) = configured.coordinator_secret(&data).unwrap();
        assert_eq!(made_path, dir.path().join("etc").join("secret"));
        assert_ne!(made, first);
        // `cluster-secret FILE` never replaces a secret in use.
        assert!(write_cluster_secret(&made_path).is_err());
        // A secret too short to be one is refused with the file's name.
        std::fs::write(dir.path().join("short"), "abc\n").unwrap();
        let e = read_cluster_secret(&dir.path().join("short"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("short") && e.contains("at least 32"), "{e}");
    }
}
