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
//! metadata (keys [`UNIT`], [`UCD`], [`DESCRIPTION`], [`UTYPE`], [`PRINCIPAL`]) and schema
//! metadata ([`DESCRIPTION`]) of the schema in `BeginLoad`, so loaders that send none
//! still work.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Deserialize;

use super::input::{InputFile, InputFormat};
use crate::error::{CoordinatorError, Result};

/// Field metadata key: the unit (VOUnit).
pub const UNIT: &str = "unit";
/// Field metadata key: the UCD.
pub const UCD: &str = "ucd";
/// Field (and schema) metadata key: the description.
pub const DESCRIPTION: &str = "description";
/// Field metadata key: the utype.
pub const UTYPE: &str = "utype";
/// Field metadata key: "true" or "false", whether the column is principal.
pub const PRINCIPAL: &str = "almagest:principal";

/// Descriptive metadata of one column; `None` leaves the attribute to the next source
/// (or unset).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnDocs {
    pub unit: Option<String>,
    pub ucd: Option<String>,
    pub description: Option<String>,
    pub utype: Option<String>,
    pub principal: Option<bool>,
}

impl ColumnDocs {
    /// Every attribute of `over` that is set replaces ours.
    fn overlay(&mut self, over: ColumnDocs) {
        fn take<T>(mine: &mut Option<T>, theirs: Option<T>) {
            if theirs.is_some() {
                *mine = theirs;
            }
        }
        take(&mut self.unit, over.unit);
        take(&mut self.ucd, over.ucd);
        take(&mut self.description, over.description);
        take(&mut self.utype, over.utype);
        take(&mut self.principal, over.principal);
    }

    /// Reads our keys from Arrow field metadata (empty values count as unset).
    pub fn from_field_metadata(md: &HashMap<String, String>) -> Self {
        let get = |k: &str| md.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        ColumnDocs {
            unit: get(UNIT).map(str::to_string),
            ucd: get(UCD).map(str::to_string),
            description: get(DESCRIPTION).map(str::to_string),
            utype: get(UTYPE).map(str::to_string),
            principal: get(PRINCIPAL).and_then(|v| v.parse().ok()),
        }
    }

    fn to_field_metadata(&self) -> HashMap<String, String> {
        let mut md = HashMap::new();
        let mut put = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                md.insert(k.to_string(), v.clone());
            }
        };
        put(UNIT, &self.unit);
        put(UCD, &self.ucd);
        put(DESCRIPTION, &self.description);
        put(UTYPE, &self.utype);
        if let Some(p) = self.principal {
            md.insert(PRINCIPAL.to_string(), p.to_string());
        }
        md
    }

    fn is_empty(&self) -> bool {
        *self == ColumnDocs::default()
    }
}

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
            CoordinatorError::BadInput(format!(
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
            CoordinatorError::InvalidRequest(format!(
                "cannot read metadata file {}: {e}",
                path.display()
            ))
        };
        let len = std::fs::metadata(path).map_err(cannot)?.len();
        if len > MAX_SIDECAR_BYTES {
            return Err(CoordinatorError::BadInput(format!(
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
        Err(CoordinatorError::BadInput(format!(
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
                CoordinatorError::InvalidRequest(format!(
                    "cannot open input file {}: {e}",
                    file.path.display()
                ))
            })?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| {
                CoordinatorError::BadInput(format!(
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
