//! The catalog's replicated state: databases, tables, chunk placement and row counts,
//! workers. It changes only by applying [`CatalogCommand`]s from the Raft log, so every
//! coordinator that applies the same log holds the same catalog.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Default HEALPix depth of the chunks of a new database (768 chunks).
pub const DEFAULT_CHUNK_DEPTH: u8 = 3;
/// Default overlap margin of a new database: one arcminute.
pub const DEFAULT_OVERLAP_DEG: f64 = 1.0 / 60.0;

/// A partitioning family: every partitioned table in it shares the chunk depth and margin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseMeta {
    pub name: String,
    pub chunk_depth: u8,
    pub overlap_deg: f64,
}

/// How a table's rows are placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TableKind {
    /// Has a position and a unique key; rows live in the chunk of their position.
    Director,
    /// A small table kept whole (stored as the single pseudo-chunk 0).
    Replicated,
}

/// One column of a table as users see it (the hidden `_hpx` column is not listed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnMeta {
    pub name: String,
    /// Arrow data type, serialized with serde_json's form of `arrow::datatypes::DataType`
    /// through its `Display`/`FromStr` text (e.g. "Int64", "Float64", "Utf8").
    pub data_type: String,
    pub nullable: bool,
    /// Unit of the values (VOUnit syntax, e.g. "deg", "mas/yr").
    #[serde(default)]
    pub unit: Option<String>,
    /// IVOA Unified Content Descriptor, e.g. "pos.eq.ra;meta.main".
    #[serde(default)]
    pub ucd: Option<String>,
    /// Free-text description for users.
    #[serde(default)]
    pub description: Option<String>,
    /// IVOA utype (a data-model reference).
    #[serde(default)]
    pub utype: Option<String>,
    /// Whether the column is of primary interest (TAP_SCHEMA `principal`).
    #[serde(default)]
    pub principal: bool,
    /// Whether queries constraining the column are fast: the position columns (chunk
    /// pruning) and the key column (director index).
    #[serde(default)]
    pub indexed: bool,
}

impl ColumnMeta {
    /// A column with a name, type and nullability and no descriptive metadata.
    pub fn new(name: impl Into<String>, data_type: impl Into<String>, nullable: bool) -> Self {
        ColumnMeta {
            name: name.into(),
            data_type: data_type.into(),
            nullable,
            unit: None,
            ucd: None,
            description: None,
            utype: None,
            principal: false,
            indexed: false,
        }
    }
}

/// Where one chunk lives and how big it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkMeta {
    pub worker_id: u64,
    pub rows: u64,
    pub bytes: u64,
    pub overlap_rows: u64,
}

/// A published table version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableMeta {
    /// The format version that wrote this record ([`super::format`]); 0 when absent.
    #[serde(default, deserialize_with = "super::format::table_meta")]
    pub format: u32,
    /// Database (schema) name, e.g. "demo".
    pub database: String,
    /// Table name inside the database, e.g. "gaia".
    pub name: String,
    pub kind: TableKind,
    pub columns: Vec<ColumnMeta>,
    /// Position columns (degrees) of a director table.
    pub ra_column: Option<String>,
    pub dec_column: Option<String>,
    /// Unique key column of a director table.
    pub key_column: Option<String>,
    /// The load that wrote this version: the directory the workers keep its files in.
    pub load_id: String,
    /// Non-empty chunks, by chunk id.
    pub chunks: BTreeMap<u64, ChunkMeta>,
    /// Total rows (sum over chunks), kept so `COUNT(*)` needs no scan.
    pub rows: u64,
    /// Free-text description for users (TAP_SCHEMA, VOSI tables).
    #[serde(default)]
    pub description: Option<String>,
    /// Whether the director index (`super::index`) holds every key of this version under
    /// its load id; false for replicated tables and for tables loaded before the index
    /// existed, whose key constraints read every chunk.
    #[serde(default)]
    pub key_index: bool,
    /// For a child table: the director table whose chunks its rows were placed in.
    #[serde(default)]
    pub director: Option<DirectorLink>,
}

/// How a child table's rows were placed: each in the chunk of the row of `table` (a
/// director table of the same database) whose key equals its column `column`, in the
/// director's version `load_id`. A child has no position columns of its own for the
/// layout (its rows need not lie in their chunk), so spatial constraints on it prune
/// nothing; its director key column is what places its rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectorLink {
    /// The director's name inside the database.
    pub table: String,
    /// The child's column holding the director key.
    pub column: String,
    /// The director version the rows were placed by; its director index entries (kept
    /// while a child names them) say which chunk holds a director key's rows.
    pub load_id: String,
    /// The Arrow type of the director's key, in which the index encodes the keys.
    pub key_type: String,
}

impl TableMeta {
    /// "database.table".
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.database, self.name)
    }

    /// The column whose equal values put rows in the same chunk, with the director
    /// version that placement follows: a director table's indexed key, or a child's
    /// director key while its director is still the version it was placed by. Two tables
    /// whose placements name the same director version join on those columns chunk by
    /// chunk.
    pub fn placement(&self, catalog: &CatalogState) -> Option<Placement> {
        if self.kind != TableKind::Director {
            return None;
        }
        match &self.director {
            None => Some(Placement {
                director: self.qualified_name(),
                load_id: self.load_id.clone(),
                column: self.key_column.clone().filter(|_| self.key_index)?,
            }),
            Some(link) => {
                let director = link.qualified(&self.database);
                let current = catalog.tables.get(&director)?;
                (current.load_id == link.load_id && current.key_index).then(|| Placement {
                    director,
                    load_id: link.load_id.clone(),
                    column: link.column.clone(),
                })
            }
        }
    }
}

impl DirectorLink {
    /// "database.table" of the director, the child being in `database`.
    pub fn qualified(&self, database: &str) -> String {
        format!("{database}.{}", self.table)
    }
}

/// See [`TableMeta::placement`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// "database.table" of the director.
    pub director: String,
    /// The director version.
    pub load_id: String,
    /// The column of this table that holds the director key.
    pub column: String,
}

impl Placement {
    /// Whether rows of two tables with these placements are in the same chunk when their
    /// placement columns are equal.
    pub fn same_chunks(&self, other: &Placement) -> bool {
        self.director == other.director && self.load_id == other.load_id
    }
}

/// A worker known to the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerMeta {
    pub id: u64,
    /// gRPC endpoint, e.g. "http://127.0.0.1:7001".
    pub address: String,
}

/// The whole catalog.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CatalogState {
    pub databases: BTreeMap<String, DatabaseMeta>,
    /// Tables by "database.table".
    pub tables: BTreeMap<String, TableMeta>,
    pub workers: BTreeMap<u64, WorkerMeta>,
    /// Asynchronous jobs (absent from catalogs written before jobs existed).
    #[serde(default)]
    pub jobs: super::jobs::JobsState,
}

/// A change to the catalog, the payload of a Raft log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CatalogCommand {
    /// Adds a worker or updates its address (a restarted worker binds a new port).
    RegisterWorker { id: u64, address: String },
    /// Creates a database if it does not exist (an existing one keeps its settings).
    CreateDatabase(DatabaseMeta),
    /// Publishes a table version in one step; fails if the table already exists.
    PublishTable(TableMeta),
    /// Removes a table ("database.table").
    DropTable { name: String },
    /// Changes the asynchronous job records (see `catalog::jobs`).
    Job(super::jobs::JobCommand),
}

/// The result of applying a command, returned to the proposer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CatalogResponse {
    Ok,
    /// The command was valid Raft input but refused by the catalog (e.g. a duplicate table).
    Rejected(String),
}

impl CatalogState {
    /// Applies one command. Deterministic: the same state and command give the same result
    /// on every coordinator.
    pub fn apply(&mut self, cmd: &CatalogCommand) -> CatalogResponse {
        match cmd {
            CatalogCommand::RegisterWorker { id, address } => {
                self.workers.insert(
                    *id,
                    WorkerMeta {
                        id: *id,
                        address: address.clone(),
                    },
                );
                CatalogResponse::Ok
            }
            CatalogCommand::CreateDatabase(db) => {
                self.databases
                    .entry(db.name.clone())
                    .or_insert_with(|| db.clone());
                CatalogResponse::Ok
            }
            CatalogCommand::PublishTable(table) => {
                let key = table.qualified_name();
                if !self.databases.contains_key(&table.database) {
                    return CatalogResponse::Rejected(format!(
                        "database \"{}\" does not exist",
                        table.database
                    ));
                }
                if self.tables.contains_key(&key) {
                    return CatalogResponse::Rejected(format!("table \"{key}\" already exists"));
                }
                self.tables.insert(key, table.clone());
                CatalogResponse::Ok
            }
            CatalogCommand::DropTable { name } => match self.tables.remove(name) {
                Some(_) => CatalogResponse::Ok,
                None => CatalogResponse::Rejected(format!("table \"{name}\" does not exist")),
            },
            CatalogCommand::Job(cmd) => self.jobs.apply(cmd),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str) -> TableMeta {
        TableMeta {
            format: crate::catalog::TABLE_META_FORMAT,
            database: "demo".into(),
            name: name.into(),
            kind: TableKind::Director,
            columns: vec![],
            ra_column: Some("ra".into()),
            dec_column: Some("dec".into()),
            key_column: Some("source_id".into()),
            load_id: "l1".into(),
            chunks: BTreeMap::new(),
            rows: 0,
            description: None,
            key_index: false,
            director: None,
        }
    }

    #[test]
    fn t10_publish_requires_database_and_is_unique() {
        let mut s = CatalogState::default();
        assert!(matches!(
            s.apply(&CatalogCommand::PublishTable(table("gaia"))),
            CatalogResponse::Rejected(_)
        ));
        let db = DatabaseMeta {
            name: "demo".into(),
            chunk_depth: 3,
            overlap_deg: DEFAULT_OVERLAP_DEG,
        };
        assert_eq!(
            s.apply(&CatalogCommand::CreateDatabase(db)),
            CatalogResponse::Ok
        );
        assert_eq!(
            s.apply(&CatalogCommand::PublishTable(table("gaia"))),
            CatalogResponse::Ok
        );
        assert_eq!(
            s.apply(&CatalogCommand::PublishTable(table("gaia"))),
            CatalogResponse::Rejected("table \"demo.gaia\" already exists".into())
        );
        assert_eq!(
            s.apply(&CatalogCommand::DropTable {
                name: "demo.gaia".into()
            }),
            CatalogResponse::Ok
        );
        assert!(s.tables.is_empty());
    }

    #[test]
    fn t20_catalog_entries_without_descriptive_metadata_still_deserialize() {
        // A table as published before columns carried units, UCDs and descriptions: the
        // Raft log holds this JSON form and must keep applying.
        let old = r#"{"database":"demo","name":"gaia","kind":"Director",
            "columns":[{"name":"source_id","data_type":"Int64","nullable":false},
                       {"name":"ra","data_type":"Float64","nullable":true}],
            "ra_column":"ra","dec_column":"dec","key_column":"source_id","load_id":"l1",
            "chunks":{"3":{"worker_id":1,"rows":5,"bytes":100,"overlap_rows":0}},"rows":5}"#;
        let t: TableMeta = serde_json::from_str(old).unwrap();
        assert_eq!(t.format, 0);
        assert_eq!(t.description, None);
        assert_eq!(
            t.columns,
            vec![
                ColumnMeta::new("source_id", "Int64", false),
                ColumnMeta::new("ra", "Float64", true)
            ]
        );
        let cmd = r#"{"PublishTable":"#.to_string() + old + "}";
        let cmd: CatalogCommand = serde_json::from_str(&cmd).unwrap();
        assert_eq!(cmd, CatalogCommand::PublishTable(t.clone()));
        // And the new form round-trips.
        let mut t = t;
        t.description = Some("Gaia \"lite\"".into());
        t.columns[1].unit = Some("deg".into());
        t.columns[1].ucd = Some("pos.eq.ra;meta.main".into());
        t.columns[1].principal = true;
        t.columns[1].indexed = true;
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<TableMeta>(&json).unwrap(), t);
    }

    #[test]
    fn t30_table_format_versions_older_read_newer_refused() {
        // Version 1, as this server writes it: the version is written, and read back.
        let mut t = table("gaia");
        t.format = crate::catalog::TABLE_META_FORMAT;
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["format"], 1);
        assert_eq!(
            serde_json::from_value::<TableMeta>(json.clone()).unwrap(),
            t
        );
        // A record from a newer server is refused with a message, not misread.
        let mut newer = json;
        newer["format"] = 2.into();
        let err = serde_json::from_value::<TableMeta>(newer).unwrap_err();
        assert!(
            err.to_string()
                .contains("table metadata format 2 was written by a newer Almagest"),
            "{err}"
        );
    }
}
