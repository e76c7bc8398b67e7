//! Sidecar parsing and errors, Parquet field metadata, and their overlay.

use std::sync::Arc;

use datafusion::arrow::array::{Float64Array, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::parquet::arrow::ArrowWriter;

use super::*;

fn docs(unit: Option<&str>, ucd: Option<&str>, description: Option<&str>) -> ColumnDocs {
    ColumnDocs {
        unit: unit.map(str::to_string),
        ucd: ucd.map(str::to_string),
        description: description.map(str::to_string),
        utype: None,
        principal: None,
    }
}

fn schema() -> Schema {
    Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("ra", DataType::Float64, false),
        Field::new("dec", DataType::Float64, false),
        Field::new("mag", DataType::Float64, true),
    ])
}

#[test]
fn t10_sidecar_parses_every_attribute() {
    let text = r#"
# Units and UCDs of the stars table.
[table]
description = "Bright stars"

[columns.ra]
unit = "deg"
ucd = "pos.eq.ra;meta.main"
description = "Right ascension"
utype = "stc:Position.C1"
principal = true

[columns.mag]
unit = "mag"
ucd = "  "
principal = false
"#;
    let d = TableDocs::parse_sidecar(Path::new("m.toml"), text).unwrap();
    let mut ra = docs(
        Some("deg"),
        Some("pos.eq.ra;meta.main"),
        Some("Right ascension"),
    );
    ra.utype = Some("stc:Position.C1".into());
    ra.principal = Some(true);
    let mut mag = docs(Some("mag"), None, None);
    mag.principal = Some(false);
    assert_eq!(
        d,
        TableDocs {
            description: Some("Bright stars".into()),
            columns: BTreeMap::from([("mag".into(), mag), ("ra".into(), ra)]),
        }
    );
    d.check_columns(Path::new("m.toml"), &schema()).unwrap();
    // An empty file is fine: it describes nothing.
    assert_eq!(
        TableDocs::parse_sidecar(Path::new("e.toml"), "").unwrap(),
        TableDocs::default()
    );
}

#[test]
fn t11_sidecar_errors_name_the_file_and_the_problem() {
    let err = |text: &str| {
        TableDocs::parse_sidecar(Path::new("/data/stars.toml"), text)
            .unwrap_err()
            .to_string()
    };
    let e = err("[columns.ra]\nunits = \"deg\"\n");
    assert!(
        e.starts_with("/data/stars.toml: invalid metadata file: ") && e.contains("units"),
        "{e}"
    );
    let e = err("[tables]\ndescription = \"x\"\n");
    assert!(
        e.contains("/data/stars.toml") && e.contains("tables"),
        "{e}"
    );
    let e = err("[columns.ra]\nprincipal = \"yes\"\n");
    assert!(
        e.contains("/data/stars.toml") && e.contains("line 2"),
        "{e}"
    );
    let e = err("[columns.ra\n");
    assert!(
        e.contains("/data/stars.toml") && e.contains("line 1"),
        "{e}"
    );

    let d = TableDocs::parse_sidecar(
        Path::new("s.toml"),
        "[columns.ra]\nunit = \"deg\"\n[columns.rmag]\n[columns.zz]\nucd = \"x\"\n",
    )
    .unwrap();
    assert_eq!(
        d.check_columns(Path::new("/data/stars.toml"), &schema())
            .unwrap_err()
            .to_string(),
        "/data/stars.toml: the metadata file describes columns that are not in the input: \
         rmag, zz (input columns: id, ra, dec, mag)"
    );

    let missing = TableDocs::read_sidecar(Path::new("/nonexistent/m.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        missing.starts_with("cannot read metadata file /nonexistent/m.toml: "),
        "{missing}"
    );
}

#[test]
fn t12_parquet_metadata_overlaid_by_the_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let md = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let schema = Arc::new(Schema::new_with_metadata(
        vec![
            Field::new("ra", DataType::Float64, false).with_metadata(md(&[
                ("unit", "deg"),
                ("ucd", "pos.eq.ra"),
                ("description", "RA from the file"),
                ("PARQUET:field_id", "1"),
            ])),
            Field::new("mag", DataType::Float64, true)
                .with_metadata(md(&[("utype", "x:mag"), ("unit", "")])),
        ],
        md(&[("description", "Table from the file"), ("pandas", "{}")]),
    ));
    let path = dir.path().join("in.parquet");
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Float64Array::from(vec![1.0])),
            Arc::new(Float64Array::from(vec![Some(2.0)])),
        ],
    )
    .unwrap();
    let mut w = ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();

    let files = vec![InputFile::detect(&path).unwrap()];
    let mut d = TableDocs::from_parquet(&files).unwrap();
    let mut mag = ColumnDocs::default();
    mag.utype = Some("x:mag".into());
    assert_eq!(
        d,
        TableDocs {
            description: Some("Table from the file".into()),
            columns: BTreeMap::from([
                ("mag".into(), mag),
                (
                    "ra".into(),
                    docs(Some("deg"), Some("pos.eq.ra"), Some("RA from the file"))
                ),
            ]),
        }
    );

    // The sidecar wins attribute by attribute.
    let over = TableDocs::parse_sidecar(
        Path::new("s.toml"),
        "[columns.ra]\nucd = \"pos.eq.ra;meta.main\"\n[columns.mag]\nunit = \"mag\"\nprincipal = true\n",
    )
    .unwrap();
    d.overlay(over);
    let plain = Schema::new(vec![
        Field::new("ra", DataType::Float64, false),
        Field::new("mag", DataType::Float64, true),
    ]);
    let sent = d.annotate(&plain);
    assert_eq!(
        sent.metadata(),
        &md(&[("description", "Table from the file")])
    );
    assert_eq!(
        sent.field(0).metadata(),
        &md(&[
            ("unit", "deg"),
            ("ucd", "pos.eq.ra;meta.main"),
            ("description", "RA from the file")
        ])
    );
    assert_eq!(
        sent.field(1).metadata(),
        &md(&[
            ("unit", "mag"),
            ("utype", "x:mag"),
            ("almagest:principal", "true")
        ])
    );
    // What the coordinator reads back.
    let mut expected = docs(Some("mag"), None, None);
    expected.utype = Some("x:mag".into());
    expected.principal = Some(true);
    assert_eq!(
        ColumnDocs::from_field_metadata(sent.field(1).metadata()),
        expected
    );
}
