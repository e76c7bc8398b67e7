//! Typed configuration of the coordinator and worker roles: defaults, then a TOML file,
//! then `ALMAGEST__*` environment variables (e.g. `ALMAGEST__COORDINATOR__PG_LISTEN`),
//! then `validate()`. `config/almagest.example.toml` documents every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// The whole configuration file: one section per role.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AlmagestConfig {
    pub coordinator: CoordinatorSection,
    pub worker: WorkerSection,
}

/// `[coordinator]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CoordinatorSection {
    /// Raft node id.
    pub node_id: u64,
    /// Catalog storage.
    pub data_dir: PathBuf,
    /// gRPC for workers and loaders.
    pub grpc_listen: SocketAddr,
    /// Postgres wire protocol.
    pub pg_listen: SocketAddr,
    /// HTTP: health, status and the TAP service under `/tap`.
    pub http_listen: SocketAddr,
    /// Chunk depth of databases created by loads that do not choose one.
    pub default_chunk_depth: u8,
    /// Memory for the merge side of queries, MiB.
    pub memory_limit_mb: usize,
    /// Parallelism of the merge plan.
    pub target_partitions: usize,
    /// `[coordinator.jobs]`: asynchronous jobs (TAP async and `SUBMIT`).
    pub jobs: JobsSection,
    /// `[coordinator.tap]`: limits of the TAP service.
    pub tap: TapSection,
}

/// `[coordinator.tap]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TapSection {
    /// Rows returned when a request gives no MAXREC.
    pub default_maxrec: u64,
    /// The largest MAXREC honoured; larger requests are capped (and flagged OVERFLOW).
    pub hard_maxrec: u64,
    /// Largest accepted request body (uploads included), MiB; also the most fetched for
    /// the URL uploads of one request.
    pub max_upload_mb: usize,
    /// Whether `UPLOAD=name,http(s)://...` makes the server fetch the URL. The server then
    /// requests any address a user names (SSRF): enable it only where that is acceptable.
    pub allow_http_upload: bool,
    /// The longest one upload fetch may take, seconds.
    pub http_upload_timeout_s: u64,
}

impl Default for TapSection {
    fn default() -> Self {
        let d = crate::tap::TapConfig::default();
        Self {
            default_maxrec: d.default_maxrec,
            hard_maxrec: d.hard_maxrec,
            max_upload_mb: d.max_upload_bytes >> 20,
            allow_http_upload: d.allow_http_upload,
            http_upload_timeout_s: d.http_upload_timeout.as_secs(),
        }
    }
}

impl TapSection {
    /// The TAP service's settings.
    pub fn to_config(&self) -> crate::tap::TapConfig {
        crate::tap::TapConfig {
            default_maxrec: self.default_maxrec,
            hard_maxrec: self.hard_maxrec,
            max_upload_bytes: self.max_upload_mb.saturating_mul(1 << 20),
            allow_http_upload: self.allow_http_upload,
            http_upload_timeout: std::time::Duration::from_secs(self.http_upload_timeout_s),
        }
    }
}

/// `[coordinator.jobs]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct JobsSection {
    /// Execution-duration limit of a job that asks for none, seconds (0 = unlimited).
    pub default_execution_duration_s: u64,
    /// Largest execution duration a job may ask for, seconds (0 = no cap).
    pub max_execution_duration_s: u64,
    /// How long a job and its result are kept after creation, hours.
    pub retention_hours: u64,
    /// Jobs executing at once.
    pub concurrency: usize,
    /// How often expired jobs are deleted, seconds.
    pub sweep_interval_s: u64,
}

impl Default for JobsSection {
    fn default() -> Self {
        Self {
            default_execution_duration_s: 3600,
            max_execution_duration_s: 0,
            retention_hours: 7 * 24,
            concurrency: 2,
            sweep_interval_s: 60,
        }
    }
}

impl JobsSection {
    /// The coordinator's job settings.
    pub fn to_config(&self) -> almagest_coordinator::jobs::JobsConfig {
        almagest_coordinator::jobs::JobsConfig {
            default_execution_duration_s: self.default_execution_duration_s,
            max_execution_duration_s: self.max_execution_duration_s,
            retention: std::time::Duration::from_secs(self.retention_hours.saturating_mul(3600)),
            concurrency: self.concurrency,
            sweep_interval: std::time::Duration::from_secs(self.sweep_interval_s),
            ..Default::default()
        }
    }
}

impl Default for CoordinatorSection {
    fn default() -> Self {
        Self {
            node_id: 1,
            data_dir: PathBuf::from("almagest-data/coordinator"),
            grpc_listen: ([127, 0, 0, 1], 7000).into(),
            pg_listen: ([127, 0, 0, 1], 5433).into(),
            http_listen: ([127, 0, 0, 1], 8080).into(),
            default_chunk_depth: almagest_coordinator::catalog::DEFAULT_CHUNK_DEPTH,
            memory_limit_mb: 4096,
            target_partitions: 2,
            jobs: JobsSection::default(),
            tap: TapSection::default(),
        }
    }
}

/// `[worker]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerSection {
    /// Unique id of this worker in the cluster (its chunks are placed by id).
    pub id: u64,
    /// Chunk files.
    pub data_dir: PathBuf,
    /// gRPC for the coordinator and loaders.
    pub grpc_listen: SocketAddr,
    /// Address others reach this worker at (default: `http://<grpc_listen>`).
    pub advertise_address: Option<String>,
    /// The coordinator's gRPC address.
    pub coordinator: String,
    /// Parallelism of fragment execution.
    pub target_partitions: usize,
}

impl Default for WorkerSection {
    fn default() -> Self {
        Self {
            id: 1,
            data_dir: PathBuf::from("almagest-data/worker-1"),
            grpc_listen: ([127, 0, 0, 1], 7001).into(),
            advertise_address: None,
            coordinator: "http://127.0.0.1:7000".into(),
            target_partitions: 2,
        }
    }
}

impl AlmagestConfig {
    /// Defaults, then the TOML file (if given), then `ALMAGEST__*` variables.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut fig = Figment::from(Serialized::defaults(AlmagestConfig::default()));
        if let Some(path) = file {
            if !path.exists() {
                bail!("configuration file {} does not exist", path.display());
            }
            fig = fig.merge(Toml::file(path));
        }
        fig = fig.merge(Env::prefixed("ALMAGEST__").split("__"));
        let config: AlmagestConfig = fig.extract().context("invalid configuration")?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let c = &self.coordinator;
        if !(1..=12).contains(&c.default_chunk_depth) {
            bail!(
                "coordinator.default_chunk_depth must be within 1..=12, got {}",
                c.default_chunk_depth
            );
        }
        if c.memory_limit_mb < 64 {
            bail!("coordinator.memory_limit_mb must be at least 64");
        }
        if c.jobs.concurrency == 0 {
            bail!("coordinator.jobs.concurrency must be at least 1");
        }
        if c.jobs.sweep_interval_s == 0 {
            bail!("coordinator.jobs.sweep_interval_s must be at least 1");
        }
        if c.tap.default_maxrec > c.tap.hard_maxrec {
            bail!(
                "coordinator.tap.default_maxrec ({}) must not exceed coordinator.tap.hard_maxrec ({})",
                c.tap.default_maxrec,
                c.tap.hard_maxrec
            );
        }
        if c.tap.max_upload_mb == 0 {
            bail!("coordinator.tap.max_upload_mb must be at least 1");
        }
        if c.tap.http_upload_timeout_s == 0 {
            bail!("coordinator.tap.http_upload_timeout_s must be at least 1");
        }
        if self.worker.id == 0 {
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
            assert_eq!(c.worker.id, 4);
            assert_eq!(c.coordinator.grpc_listen.port(), 7000);
            Ok(())
        });
    }

    #[test]
    fn t11_invalid_values_are_refused() {
        let mut c = AlmagestConfig::default();
        c.coordinator.default_chunk_depth = 40;
        assert!(c.validate().is_err());
        let mut c = AlmagestConfig::default();
        c.coordinator.tap.default_maxrec = c.coordinator.tap.hard_maxrec + 1;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("coordinator.tap.default_maxrec"), "{e}");
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
            let tap = c.coordinator.tap.to_config();
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
            let tap = AlmagestConfig::load(Some(&path))
                .unwrap()
                .coordinator
                .tap
                .to_config();
            assert!(tap.allow_http_upload);
            assert_eq!(tap.http_upload_timeout.as_secs(), 5);
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("ALMAGEST__COORDINATOR__TAP__ALLOW_HTTP_UPLOAD", "false");
            let c = AlmagestConfig::load(Some(&path)).unwrap();
            assert!(!c.coordinator.tap.to_config().allow_http_upload);
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("ALMAGEST__COORDINATOR__TAP__ALLOW_HTTP_UPLOAD", "true");
            let c = AlmagestConfig::load(None).unwrap();
            assert!(c.coordinator.tap.to_config().allow_http_upload);
            Ok(())
        });
    }
}
