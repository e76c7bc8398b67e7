//! Exact TAP_SCHEMA content for a small catalog, and queries of it through a session.

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::TimeUnit;
use datafusion::arrow::util::pretty::pretty_format_batches;

use super::*;
use crate::catalog::{ColumnMeta, DatabaseMeta, TableKind, TableMeta, DEFAULT_OVERLAP_DEG};

/// demo.stars: a key, a position, a string, a timestamp and a hidden-free column list.
pub(crate) fn stars_meta() -> TableMeta {
    let mut columns = vec![
        ColumnMeta::new("id", "Int64", false),
        ColumnMeta::new("ra", "Float64", false),
        ColumnMeta::new("dec", "Float64", false),
        ColumnMeta::new("name", "Utf8", true),
        ColumnMeta::new("seen", "Timestamp(Microsecond, None)", true),
        ColumnMeta::new("flag", "Boolean", true),
        ColumnMeta::new("mag", "Float32", true),
        ColumnMeta::new("n", "Int16", true),
    ];
    for c in &mut columns[..3] {
        c.indexed = true;
        c.principal = true;
    }
    columns[1].unit = Some("deg".into());
    columns[1].ucd = Some("pos.eq.ra;meta.main".into());
    columns[1].description = Some("Right ascension".into());
    columns[3].description = Some("Common name".into());
    columns[3].utype = Some("x:name".into());
    columns[6].unit = Some("mag".into());
    columns[6].principal = true;
    TableMeta {
        format: crate::catalog::TABLE_META_FORMAT,
        database: "demo".into(),
        name: "stars".into(),
        kind: TableKind::Director,
        columns,
        ra_column: Some("ra".into()),
        dec_column: Some("dec".into()),
        key_column: Some("id".into()),
        load_id: "l1".into(),
        chunks: BTreeMap::new(),
        rows: 0,
        description: Some("A few stars".into()),
        key_index: false,
        director: None,
    }
}

pub(crate) fn state() -> CatalogState {
    let mut s = CatalogState::default();
    s.databases.insert(
        "demo".into(),
        DatabaseMeta {
            name: "demo".into(),
            chunk_depth: 3,
            overlap_deg: DEFAULT_OVERLAP_DEG,
        },
    );
    s.tables.insert("demo.stars".into(), stars_meta());
    s
}

fn table(name: &str) -> String {
    let batch = std_table_batch(name, &describe(&state())).unwrap().unwrap();
    pretty_format_batches(&[batch]).unwrap().to_string()
}

#[test]
fn t10_tap_schema_schemas_and_tables() {
    assert_eq!(
        table("schemas"),
        "\
+-------------+-------+--------------------------------------------------------+--------------+
| schema_name | utype | description                                            | schema_index |
+-------------+-------+--------------------------------------------------------+--------------+
| demo        |       |                                                        | 0            |
| tap_schema  |       | Metadata of the tables of this service (IVOA TAP 1.1). | 1            |
+-------------+-------+--------------------------------------------------------+--------------+"
    );
    assert_eq!(
        table("tables"),
        "\
+-------------+------------------------+------------+-------+------------------------------------------------------+-------------+
| schema_name | table_name             | table_type | utype | description                                          | table_index |
+-------------+------------------------+------------+-------+------------------------------------------------------+-------------+
| demo        | demo.stars             | table      |       | A few stars                                          | 0           |
| tap_schema  | tap_schema.schemas     | table      |       | The schemas of this service.                         | 1           |
| tap_schema  | tap_schema.tables      | table      |       | The tables of this service.                          | 2           |
| tap_schema  | tap_schema.columns     | table      |       | The columns of the tables of this service.           | 3           |
| tap_schema  | tap_schema.keys        | table      |       | The foreign keys between the tables of this service. | 4           |
| tap_schema  | tap_schema.key_columns | table      |       | The columns of the foreign keys of this service.     | 5           |
+-------------+------------------------+------------+-------+------------------------------------------------------+-------------+"
    );
    // TAP_SCHEMA's own five foreign keys (TAP 1.1 section 4); user tables declare none.
    assert_eq!(
        table("key_columns"),
        "\
+-------------------------------+--------------+---------------+
| key_id                        | from_column  | target_column |
+-------------------------------+--------------+---------------+
| tap_schema.tables.schema_name | schema_name  | schema_name   |
| tap_schema.columns.table_name | table_name   | table_name    |
| tap_schema.keys.from_table    | from_table   | table_name    |
| tap_schema.keys.target_table  | target_table | table_name    |
| tap_schema.key_columns.key_id | key_id       | key_id        |
+-------------------------------+--------------+---------------+"
    );
    let keys = table("keys");
    assert_eq!(keys.lines().count(), 4 + 5, "{keys}");
    assert!(
        keys.contains(
            "| tap_schema.columns.table_name | tap_schema.columns     | tap_schema.tables  |"
        ),
        "{keys}"
    );
    assert_eq!(std_table_batch("nope", &[]).unwrap(), None);
}

#[test]
fn t11_tap_schema_columns_of_a_user_table() {
    let described = describe(&state());
    let batch = std_table_batch("columns", &described).unwrap().unwrap();
    let user = batch.slice(0, 8);
    assert_eq!(
        pretty_format_batches(&[user]).unwrap().to_string(),
        "\
+------------+-------------+----------+-----------+-----------+------+-----------------+--------+------+---------------------+---------+-----------+-----+--------------+
| table_name | column_name | datatype | arraysize | xtype     | size | description     | utype  | unit | ucd                 | indexed | principal | std | column_index |
+------------+-------------+----------+-----------+-----------+------+-----------------+--------+------+---------------------+---------+-----------+-----+--------------+
| demo.stars | id          | long     |           |           |      |                 |        |      |                     | 1       | 1         | 0   | 1            |
| demo.stars | ra          | double   |           |           |      | Right ascension |        | deg  | pos.eq.ra;meta.main | 1       | 1         | 0   | 2            |
| demo.stars | dec         | double   |           |           |      |                 |        |      |                     | 1       | 1         | 0   | 3            |
| demo.stars | name        | char     | *         |           |      | Common name     | x:name |      |                     | 0       | 0         | 0   | 4            |
| demo.stars | seen        | char     | *         | timestamp |      |                 |        |      |                     | 0       | 0         | 0   | 5            |
| demo.stars | flag        | boolean  |           |           |      |                 |        |      |                     | 0       | 0         | 0   | 6            |
| demo.stars | mag         | float    |           |           |      |                 |        | mag  |                     | 0       | 1         | 0   | 7            |
| demo.stars | n           | short    |           |           |      |                 |        |      |                     | 0       | 0         | 0   | 8            |
+------------+-------------+----------+-----------+-----------+------+-----------------+--------+------+---------------------+---------+-----------+-----+--------------+"
    );
    // TAP_SCHEMA describes itself: 4 + 6 + 14 + 5 + 3 columns, all standard.
    assert_eq!(batch.num_rows(), 8 + 32);
    let tap = batch.slice(8, 32);
    let std = tap
        .column_by_name("std")
        .unwrap()
        .as_any()
        .downcast_ref::<Int32Array>()
        .unwrap();
    assert!(std.iter().all(|v| v == Some(1)));
    let size_row = pretty_format_batches(&[batch.slice(8 + 4 + 6 + 5, 1)])
        .unwrap()
        .to_string();
    assert!(
        size_row.contains("| tap_schema.columns | \"size\"      | int      |"),
        "{size_row}"
    );
}

#[test]
fn t12_tap_schema_votable_types() {
    let t = |s: &str| VoType::from_arrow(&DataType::from_str(s).unwrap());
    assert_eq!(t("Int32"), VoType::scalar("int"));
    assert_eq!(t("UInt8"), VoType::scalar("unsignedByte"));
    assert_eq!(t("Int8"), VoType::scalar("short"));
    assert_eq!(t("UInt64"), VoType::scalar("long"));
    assert_eq!(t("LargeUtf8"), VoType::array("char", "*", None));
    assert_eq!(t("Utf8View"), VoType::array("char", "*", None));
    assert_eq!(t("Date32"), VoType::array("char", "*", Some("timestamp")));
    assert_eq!(
        t("Timestamp(Nanosecond, Some(\"UTC\"))"),
        VoType::array("char", "*", Some("timestamp"))
    );
    assert_eq!(
        t("FixedSizeBinary(16)"),
        VoType::array("unsignedByte", "16", None)
    );
    assert_eq!(t("FixedSizeBinary(16)").size(), Some(16));
    assert_eq!(
        VoType::from_arrow(&DataType::new_list(DataType::Float64, true)),
        VoType::array("double", "*", None)
    );
    assert_eq!(
        VoType::from_arrow(&DataType::Timestamp(TimeUnit::Second, None)).size(),
        None
    );
}
