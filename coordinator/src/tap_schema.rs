//! TAP_SCHEMA (TAP 1.1, section 4) as the schema `tap_schema` of the `almagest` catalog:
//! the tables `schemas`, `tables`, `columns`, `keys` and `key_columns`, built on demand
//! from the current catalog state as in-memory tables, so they describe every published
//! table (and themselves) at the moment a query is planned.
//!
//! [`describe`] is the one model of "what the service offers" that both TAP_SCHEMA and
//! the VOSI `/tables` endpoint are made from, so the two never disagree.
//!
//! Architecture invariant: the hidden `_hpx` column never appears here (the catalog's
//! column lists do not hold it), and TAP_SCHEMA is never written to the Raft catalog.

use std::str::FromStr;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{MemTable, SchemaProvider};
use datafusion::datasource::TableProvider;
use datafusion::error::{DataFusionError, Result as DFResult};

use crate::catalog::{CatalogState, TableMeta};
use crate::Catalog;

/// The schema name of TAP_SCHEMA (lower case: unquoted identifiers fold to it, so ADQL's
/// `TAP_SCHEMA.columns` reaches it).
pub const TAP_SCHEMA: &str = "tap_schema";

/// A schema as TAP_SCHEMA and VOSI describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaDesc {
    pub name: String,
    pub description: Option<String>,
    pub utype: Option<String>,
    pub tables: Vec<TableDesc>,
}

/// A table as TAP_SCHEMA and VOSI describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct TableDesc {
    pub schema_name: String,
    /// The qualified name queries use, e.g. "demo.gaia".
    pub name: String,
    /// "table" or "view".
    pub table_type: String,
    pub description: Option<String>,
    pub utype: Option<String>,
    pub columns: Vec<ColumnDesc>,
}

/// A column as TAP_SCHEMA and VOSI describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDesc {
    pub name: String,
    pub votable: VoType,
    pub description: Option<String>,
    pub utype: Option<String>,
    pub unit: Option<String>,
    pub ucd: Option<String>,
    pub indexed: bool,
    pub principal: bool,
    /// Defined by a standard (the TAP_SCHEMA columns themselves).
    pub std: bool,
    /// May hold nulls.
    pub nullable: bool,
    /// The table's unique key column.
    pub primary: bool,
}

/// The VOTable serialization of an Arrow type: `datatype`, `arraysize` and `xtype`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoType {
    /// A VOTable primitive: boolean, unsignedByte, short, int, long, float, double, char.
    pub datatype: &'static str,
    /// "*" for variable length, a number for a fixed length, `None` for a scalar.
    pub arraysize: Option<String>,
    /// DALI extended type, e.g. "timestamp".
    pub xtype: Option<&'static str>,
}

impl VoType {
    fn scalar(datatype: &'static str) -> Self {
        VoType {
            datatype,
            arraysize: None,
            xtype: None,
        }
    }

    fn array(datatype: &'static str, arraysize: &str, xtype: Option<&'static str>) -> Self {
        VoType {
            datatype,
            arraysize: Some(arraysize.to_string()),
            xtype,
        }
    }

    /// The deprecated TAP_SCHEMA `size`: the length of a fixed-size array, else `None`.
    pub fn size(&self) -> Option<i32> {
        self.arraysize.as_deref().and_then(|a| a.parse().ok())
    }

    /// The VOTable type a column of this Arrow type is written as (the TAP output
    /// formats use the same mapping).
    pub fn from_arrow(dt: &DataType) -> Self {
        match dt {
            DataType::Boolean => Self::scalar("boolean"),
            DataType::UInt8 => Self::scalar("unsignedByte"),
            DataType::Int8 | DataType::Int16 => Self::scalar("short"),
            DataType::UInt16 | DataType::Int32 => Self::scalar("int"),
            DataType::UInt32 | DataType::Int64 | DataType::UInt64 => Self::scalar("long"),
            DataType::Float16 | DataType::Float32 => Self::scalar("float"),
            DataType::Float64 | DataType::Decimal128(..) | DataType::Decimal256(..) => {
                Self::scalar("double")
            }
            DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => {
                Self::array("char", "*", Some("timestamp"))
            }
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
                Self::array("unsignedByte", "*", None)
            }
            DataType::FixedSizeBinary(n) => Self::array("unsignedByte", &n.to_string(), None),
            DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) => {
                let inner = Self::from_arrow(f.data_type());
                match inner.arraysize {
                    None => Self::array(inner.datatype, "*", None),
                    // Arrays of strings have no VOTable form but text.
                    Some(_) => Self::array("char", "*", None),
                }
            }
            DataType::FixedSizeList(f, n) => {
                let inner = Self::from_arrow(f.data_type());
                match inner.arraysize {
                    None => Self::array(inner.datatype, &n.to_string(), None),
                    Some(_) => Self::array("char", "*", None),
                }
            }
            DataType::Dictionary(_, value) => Self::from_arrow(value),
            // Strings, times of day, intervals and anything else are written as text.
            _ => Self::array("char", "*", None),
        }
    }
}

/// Describes everything queryable: each database with its tables (sorted by name), then
/// TAP_SCHEMA itself.
pub fn describe(state: &CatalogState) -> Vec<SchemaDesc> {
    let mut schemas: Vec<SchemaDesc> = state
        .databases
        .keys()
        .map(|db| SchemaDesc {
            name: db.clone(),
            description: None,
            utype: None,
            tables: state
                .tables
                .values()
                .filter(|t| &t.database == db)
                .map(describe_table)
                .collect(),
        })
        .collect();
    schemas.push(tap_schema_desc());
    schemas
}

/// One published table.
pub fn describe_table(meta: &TableMeta) -> TableDesc {
    let columns = meta
        .columns
        .iter()
        .map(|c| {
            let votable = DataType::from_str(&c.data_type)
                .map(|dt| VoType::from_arrow(&dt))
                .unwrap_or_else(|_| VoType::array("char", "*", None));
            ColumnDesc {
                name: c.name.clone(),
                votable,
                description: c.description.clone(),
                utype: c.utype.clone(),
                unit: c.unit.clone(),
                ucd: c.ucd.clone(),
                indexed: c.indexed,
                principal: c.principal,
                std: false,
                nullable: c.nullable,
                primary: meta.key_column.as_deref() == Some(c.name.as_str()),
            }
        })
        .collect();
    TableDesc {
        schema_name: meta.database.clone(),
        name: meta.qualified_name(),
        table_type: "table".to_string(),
        description: meta.description.clone(),
        utype: None,
        columns,
    }
}

/// A column of a TAP_SCHEMA table: name, Arrow type, nullable, description.
type StdColumn = (&'static str, DataType, bool, &'static str);

/// The five tables of TAP_SCHEMA with exactly the columns of TAP 1.1 section 4.
fn std_tables() -> Vec<(&'static str, &'static str, Vec<StdColumn>)> {
    use DataType::{Int32, Utf8};
    vec![
        (
            "schemas",
            "The schemas of this service.",
            vec![
                ("schema_name", Utf8, false, "schema name, for reference"),
                ("utype", Utf8, true, "lists the utypes of schemas"),
                ("description", Utf8, true, "describes schemas"),
                (
                    "schema_index",
                    Int32,
                    true,
                    "recommended sort order when listing schemas",
                ),
            ],
        ),
        (
            "tables",
            "The tables of this service.",
            vec![
                (
                    "schema_name",
                    Utf8,
                    false,
                    "the schema this table belongs to",
                ),
                ("table_name", Utf8, false, "the fully qualified table name"),
                ("table_type", Utf8, false, "one of: table or view"),
                ("utype", Utf8, true, "lists the utype of tables"),
                ("description", Utf8, true, "describes tables"),
                (
                    "table_index",
                    Int32,
                    true,
                    "recommended sort order when listing tables",
                ),
            ],
        ),
        (
            "columns",
            "The columns of the tables of this service.",
            vec![
                (
                    "table_name",
                    Utf8,
                    false,
                    "the table this column belongs to",
                ),
                ("column_name", Utf8, false, "the column name"),
                (
                    "datatype",
                    Utf8,
                    false,
                    "the VOTable datatype of the column",
                ),
                (
                    "arraysize",
                    Utf8,
                    true,
                    "the VOTable arraysize of the column",
                ),
                ("xtype", Utf8, true, "the DALI extended type of the column"),
                ("size", Int32, true, "deprecated: use arraysize"),
                ("description", Utf8, true, "describes the column"),
                ("utype", Utf8, true, "the utype of the column"),
                ("unit", Utf8, true, "the unit of the column values (VOUnit)"),
                ("ucd", Utf8, true, "the UCD of the column"),
                (
                    "indexed",
                    Int32,
                    false,
                    "1 if the column is indexed, else 0",
                ),
                (
                    "principal",
                    Int32,
                    false,
                    "1 if the column is principal, else 0",
                ),
                (
                    "std",
                    Int32,
                    false,
                    "1 if the column is defined by a standard, else 0",
                ),
                (
                    "column_index",
                    Int32,
                    true,
                    "recommended sort order when listing columns",
                ),
            ],
        ),
        (
            "keys",
            "The foreign keys between the tables of this service.",
            vec![
                ("key_id", Utf8, false, "the key identifier"),
                ("from_table", Utf8, false, "the table with the foreign key"),
                (
                    "target_table",
                    Utf8,
                    false,
                    "the table with the primary key",
                ),
                ("description", Utf8, true, "describes the key"),
                ("utype", Utf8, true, "the utype of the key"),
            ],
        ),
        (
            "key_columns",
            "The columns of the foreign keys of this service.",
            vec![
                ("key_id", Utf8, false, "the key identifier"),
                (
                    "from_column",
                    Utf8,
                    false,
                    "the key column in the from_table",
                ),
                (
                    "target_column",
                    Utf8,
                    false,
                    "the key column in the target_table",
                ),
            ],
        ),
    ]
}

/// The foreign keys between TAP_SCHEMA's own tables: key id, from table, target table,
/// from column, target column, description.
pub const STD_KEYS: [(&str, &str, &str, &str, &str, &str); 5] = [
    (
        "tap_schema.tables.schema_name",
        "tap_schema.tables",
        "tap_schema.schemas",
        "schema_name",
        "schema_name",
        "the schema of a table",
    ),
    (
        "tap_schema.columns.table_name",
        "tap_schema.columns",
        "tap_schema.tables",
        "table_name",
        "table_name",
        "the table of a column",
    ),
    (
        "tap_schema.keys.from_table",
        "tap_schema.keys",
        "tap_schema.tables",
        "from_table",
        "table_name",
        "the table a foreign key starts from",
    ),
    (
        "tap_schema.keys.target_table",
        "tap_schema.keys",
        "tap_schema.tables",
        "target_table",
        "table_name",
        "the table a foreign key points to",
    ),
    (
        "tap_schema.key_columns.key_id",
        "tap_schema.key_columns",
        "tap_schema.keys",
        "key_id",
        "key_id",
        "the foreign key a column pair belongs to",
    ),
];

/// TAP_SCHEMA describing itself.
fn tap_schema_desc() -> SchemaDesc {
    let tables = std_tables()
        .into_iter()
        .map(|(name, description, columns)| TableDesc {
            schema_name: TAP_SCHEMA.to_string(),
            name: format!("{TAP_SCHEMA}.{name}"),
            table_type: "table".to_string(),
            description: Some(description.to_string()),
            utype: None,
            columns: columns
                .into_iter()
                .map(|(name, dt, nullable, description)| ColumnDesc {
                    // TAP 1.1 section 4.3: `size` is an ADQL reserved word, so TAP_SCHEMA
                    // names this column of its own in delimited form.
                    name: if name == "size" {
                        "\"size\"".to_string()
                    } else {
                        name.to_string()
                    },
                    votable: VoType::from_arrow(&dt),
                    description: Some(description.to_string()),
                    utype: None,
                    unit: None,
                    ucd: None,
                    indexed: false,
                    principal: true,
                    std: true,
                    nullable,
                    primary: false,
                })
                .collect(),
        })
        .collect();
    SchemaDesc {
        name: TAP_SCHEMA.to_string(),
        description: Some("Metadata of the tables of this service (IVOA TAP 1.1).".to_string()),
        utype: None,
        tables,
    }
}

/// The Arrow schema of one TAP_SCHEMA table, or `None` for an unknown name.
pub fn std_table_schema(name: &str) -> Option<SchemaRef> {
    std_tables()
        .into_iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, columns)| {
            Arc::new(Schema::new(
                columns
                    .into_iter()
                    .map(|(n, dt, nullable, _)| Field::new(n, dt, nullable))
                    .collect::<Vec<_>>(),
            ))
        })
}

fn strings<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(values))
}

fn ints(values: impl IntoIterator<Item = Option<i32>>) -> ArrayRef {
    Arc::new(Int32Array::from_iter(values))
}

fn index(i: usize) -> Option<i32> {
    i32::try_from(i).ok()
}

/// The rows of TAP_SCHEMA table `name` over `schemas` (from [`describe`]), or `None` for
/// an unknown name.
pub fn std_table_batch(name: &str, schemas: &[SchemaDesc]) -> DFResult<Option<RecordBatch>> {
    let Some(schema) = std_table_schema(name) else {
        return Ok(None);
    };
    let tables: Vec<&TableDesc> = schemas.iter().flat_map(|s| &s.tables).collect();
    let columns: Vec<(&TableDesc, usize, &ColumnDesc)> = tables
        .iter()
        .flat_map(|t| t.columns.iter().enumerate().map(move |(i, c)| (*t, i, c)))
        .collect();
    let arrays: Vec<ArrayRef> = match name {
        "schemas" => vec![
            strings(schemas.iter().map(|s| Some(s.name.as_str()))),
            strings(schemas.iter().map(|s| s.utype.as_deref())),
            strings(schemas.iter().map(|s| s.description.as_deref())),
            ints((0..schemas.len()).map(index)),
        ],
        "tables" => vec![
            strings(tables.iter().map(|t| Some(t.schema_name.as_str()))),
            strings(tables.iter().map(|t| Some(t.name.as_str()))),
            strings(tables.iter().map(|t| Some(t.table_type.as_str()))),
            strings(tables.iter().map(|t| t.utype.as_deref())),
            strings(tables.iter().map(|t| t.description.as_deref())),
            ints((0..tables.len()).map(index)),
        ],
        "columns" => vec![
            strings(columns.iter().map(|(t, _, _)| Some(t.name.as_str()))),
            strings(columns.iter().map(|(_, _, c)| Some(c.name.as_str()))),
            strings(columns.iter().map(|(_, _, c)| Some(c.votable.datatype))),
            strings(
                columns
                    .iter()
                    .map(|(_, _, c)| c.votable.arraysize.as_deref()),
            ),
            strings(columns.iter().map(|(_, _, c)| c.votable.xtype)),
            ints(columns.iter().map(|(_, _, c)| c.votable.size())),
            strings(columns.iter().map(|(_, _, c)| c.description.as_deref())),
            strings(columns.iter().map(|(_, _, c)| c.utype.as_deref())),
            strings(columns.iter().map(|(_, _, c)| c.unit.as_deref())),
            strings(columns.iter().map(|(_, _, c)| c.ucd.as_deref())),
            ints(columns.iter().map(|(_, _, c)| Some(i32::from(c.indexed)))),
            ints(columns.iter().map(|(_, _, c)| Some(i32::from(c.principal)))),
            ints(columns.iter().map(|(_, _, c)| Some(i32::from(c.std)))),
            ints(columns.iter().map(|(_, i, _)| index(i + 1))),
        ],
        // The only foreign keys are TAP_SCHEMA's own (TAP 1.1 section 4): user tables
        // declare none.
        "keys" => vec![
            strings(STD_KEYS.iter().map(|k| Some(k.0))),
            strings(STD_KEYS.iter().map(|k| Some(k.1))),
            strings(STD_KEYS.iter().map(|k| Some(k.2))),
            strings(STD_KEYS.iter().map(|k| Some(k.5))),
            strings(STD_KEYS.iter().map(|_| None)),
        ],
        "key_columns" => vec![
            strings(STD_KEYS.iter().map(|k| Some(k.0))),
            strings(STD_KEYS.iter().map(|k| Some(k.3))),
            strings(STD_KEYS.iter().map(|k| Some(k.4))),
        ],
        _ => return Ok(None),
    };
    RecordBatch::try_new(schema, arrays)
        .map(Some)
        .map_err(|e| DataFusionError::Internal(format!("building TAP_SCHEMA.{name}: {e}")))
}

/// The `tap_schema` schema: each table is built from the catalog when it is planned.
#[derive(Debug)]
pub struct TapSchemaProvider {
    catalog: Catalog,
}

impl TapSchemaProvider {
    pub fn new(catalog: Catalog) -> Self {
        Self { catalog }
    }
}

#[async_trait::async_trait]
impl SchemaProvider for TapSchemaProvider {
    fn table_names(&self) -> Vec<String> {
        std_tables()
            .into_iter()
            .map(|(name, _, _)| name.to_string())
            .collect()
    }

    async fn table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        let Some(schema) = std_table_schema(name) else {
            return Ok(None);
        };
        let described = describe(&self.catalog.state());
        let Some(batch) = std_table_batch(name, &described)? else {
            return Ok(None);
        };
        Ok(Some(Arc::new(MemTable::try_new(
            schema,
            vec![vec![batch]],
        )?)))
    }

    fn table_exist(&self, name: &str) -> bool {
        std_table_schema(name).is_some()
    }
}

#[cfg(test)]
mod tests;
