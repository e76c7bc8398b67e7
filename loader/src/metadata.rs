//! Descriptive metadata of a loaded table (units, UCDs, descriptions, utypes, principal
//! flags), from Arrow field metadata of Parquet inputs and from a TOML sidecar file
//! (`almagest load --metadata FILE`); the sidecar wins, attribute by attribute.
//!
//! The sidecar:
//!
//! ```toml
//! [table]
//! description = "Gaia DR3 sources, a sample"
//!
//! [columns.ra]
//! unit = "deg"
//! ucd = "pos.eq.ra;meta.main"
//! description = "Right ascension (ICRS)"
//! utype = "stc:AstroCoords.Position2D.Value2.C1"
//! principal = true
//! ```
//!
//! Every section and key is optional; unknown keys and columns that are not in the input
//! are errors naming the file. The metadata travels to the coordinator as Arrow field
//! metadata and schema metadata of the schema in `BeginLoad` (the keys and their reading
//! are [`almagest_proto::docs`], shared with the coordinator), so loaders that send none
//! still work.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use almagest_proto::docs::{ColumnDocs, DESCRIPTION};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Deserialize;

use super::input::{InputFile, InputFormat};
use crate::error::{LoaderError, Result};

/// Descriptive metadata of a table being loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableDocs {
    pub description: Option<String>,
    /// By column name.
    pub columns: BTreeMap<String, ColumnDocs>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sidecar {
    #[serde(default)]
    table: SidecarTable,
    #[serde(default)]
    columns: BTreeMap<String, ColumnDocs>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SidecarTable {
    description: Option<String>,
}

/// Largest sidecar file read: metadata of thousands of columns fits easily.
const MAX_SIDECAR_BYTES: u64 = 16 << 20;

impl TableDocs {
    /// Parses sidecar text; `path` names the file in errors.
    pub fn parse_sidecar(path: &Path, text: &str) -> Result<Self> {
        let sidecar: Sidecar = toml::from_str(text).map_err(|e| {
            LoaderError::BadInput(format!(
                "{}: invalid metadata file: {}",
                path.display(),
                e.to_string().trim_end()
            ))
        })?;
        let blank = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
        Ok(TableDocs {
            description: blank(sidecar.table.description),
            columns: sidecar
                .columns
                .into_iter()
                .map(|(name, c)| {
                    let c = ColumnDocs {
                        unit: blank(c.unit),
                        ucd: blank(c.ucd),
                        description: blank(c.description),
                        utype: blank(c.utype),
                        principal: c.principal,
                    };
                    (name, c)
                })
                .collect(),
        })
    }

    /// Reads and parses a sidecar file.
    pub fn read_sidecar(path: &Path) -> Result<Self> {
        let cannot = |e: std::io::Error| {
            LoaderError::InvalidRequest(format!(
                "cannot read metadata file {}: {e}",
                path.display()
            ))
        };
        let len = std::fs::metadata(path).map_err(cannot)?.len();
        if len > MAX_SIDECAR_BYTES {
            return Err(LoaderError::BadInput(format!(
                "{}: metadata file of {len} bytes is larger than the limit of {MAX_SIDECAR_BYTES}",
                path.display()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(cannot)?;
        Self::parse_sidecar(path, &text)
    }

    /// Checks that every column the sidecar describes is in the input schema.
    pub fn check_columns(&self, path: &Path, schema: &Schema) -> Result<()> {
        let unknown: Vec<&str> = self
            .columns
            .keys()
            .filter(|name| schema.field_with_name(name).is_err())
            .map(String::as_str)
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        Err(LoaderError::BadInput(format!(
            "{}: the metadata file describes columns that are not in the input: {} \
             (input columns: {})",
            path.display(),
            unknown.join(", "),
            columns.join(", ")
        )))
    }

    /// The metadata stored in the Parquet inputs' Arrow schemas: for each attribute, the
    /// first file that sets it.
    pub fn from_parquet(files: &[InputFile]) -> Result<Self> {
        let mut docs = TableDocs::default();
        for file in files.iter().rev() {
            if file.format != InputFormat::Parquet {
                continue;
            }
            let f = std::fs::File::open(&file.path).map_err(|e| {
                LoaderError::InvalidRequest(format!(
                    "cannot open input file {}: {e}",
                    file.path.display()
                ))
            })?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| {
                LoaderError::BadInput(format!(
                    "{}: not a readable Parquet file (truncated or corrupt?): {e}",
                    file.path.display()
                ))
            })?;
            let schema = builder.schema();
            // Later files are read first, so earlier files win.
            let over = TableDocs {
                description: ColumnDocs::from_field_metadata(schema.metadata()).description,
                columns: schema
                    .fields()
                    .iter()
                    .map(|f| {
                        (
                            f.name().clone(),
                            ColumnDocs::from_field_metadata(f.metadata()),
                        )
                    })
                    .filter(|(_, c)| !c.is_empty())
                    .collect(),
            };
            docs.overlay(over);
        }
        Ok(docs)
    }

    /// The same docs under the table's names of the columns (see [`ColumnNaming`]); when
    /// two names fold together, the attributes of both are kept, the later winning.
    pub fn renamed(self, naming: crate::input::ColumnNaming) -> Self {
        let mut columns: BTreeMap<String, ColumnDocs> = BTreeMap::new();
        for (name, c) in self.columns {
            columns.entry(naming.apply(&name)).or_default().overlay(c);
        }
        TableDocs {
            description: self.description,
            columns,
        }
    }

    /// Every attribute `over` sets replaces ours.
    pub fn overlay(&mut self, over: TableDocs) {
        if over.description.is_some() {
            self.description = over.description;
        }
        for (name, c) in over.columns {
            self.columns.entry(name).or_default().overlay(c);
        }
    }

    /// `schema` with exactly this metadata on its fields (any other field or schema
    /// metadata is dropped): the form sent to the coordinator in `BeginLoad`.
    pub fn annotate(&self, schema: &Schema) -> Schema {
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| {
                let md = self
                    .columns
                    .get(f.name())
                    .map(ColumnDocs::to_field_metadata)
                    .unwrap_or_default();
                f.as_ref().clone().with_metadata(md)
            })
            .collect();
        let mut md = HashMap::new();
        if let Some(d) = &self.description {
            md.insert(DESCRIPTION.to_string(), d.clone());
        }
        Schema::new_with_metadata(fields, md)
    }
}

#[cfg(test)]
mod tests;
