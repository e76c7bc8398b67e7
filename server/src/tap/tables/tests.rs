//! The VOSI tables documents for a small catalog, exactly.

use std::collections::BTreeMap;

use almagest_coordinator::catalog::{
    CatalogState, ColumnMeta, DatabaseMeta, TableKind, TableMeta, DEFAULT_OVERLAP_DEG,
};

use super::*;

fn state() -> CatalogState {
    let mut ra = ColumnMeta::new("ra", "Float64", false);
    ra.unit = Some("deg".into());
    ra.ucd = Some("pos.eq.ra;meta.main".into());
    ra.description = Some("Right ascension <ICRS> & \"J2000\"\u{1}".into());
    ra.indexed = true;
    ra.principal = true;
    let mut id = ColumnMeta::new("id", "Int64", false);
    id.indexed = true;
    id.principal = true;
    let mut name = ColumnMeta::new("name", "Utf8", true);
    name.utype = Some("x:name".into());
    let seen = ColumnMeta::new("seen", "Timestamp(Millisecond, None)", true);
    let mut s = CatalogState::default();
    s.databases.insert(
        "demo".into(),
        DatabaseMeta {
            name: "demo".into(),
            chunk_depth: 3,
            overlap_deg: DEFAULT_OVERLAP_DEG,
        },
    );
    s.tables.insert(
        "demo.stars".into(),
        TableMeta {
            format: almagest_coordinator::catalog::TABLE_META_FORMAT,
            database: "demo".into(),
            name: "stars".into(),
            kind: TableKind::Director,
            columns: vec![id, ra, name, seen],
            ra_column: Some("ra".into()),
            dec_column: Some("ra".into()),
            key_column: Some("id".into()),
            load_id: "l1".into(),
            chunks: BTreeMap::new(),
            rows: 0,
            description: Some("Stars & such".into()),
            key_index: false,
            director: None,
        },
    );
    s
}

const STARS_COLUMNS: &str = r#"      <column>
        <name>id</name>
        <dataType xsi:type="vs:VOTableType">long</dataType>
        <flag>indexed</flag>
        <flag>primary</flag>
        <flag>principal</flag>
      </column>
      <column>
        <name>ra</name>
        <description>Right ascension &lt;ICRS&gt; &amp; &quot;J2000&quot;�</description>
        <unit>deg</unit>
        <ucd>pos.eq.ra;meta.main</ucd>
        <dataType xsi:type="vs:VOTableType">double</dataType>
        <flag>indexed</flag>
        <flag>principal</flag>
      </column>
      <column>
        <name>name</name>
        <utype>x:name</utype>
        <dataType xsi:type="vs:VOTableType" arraysize="*">char</dataType>
        <flag>nullable</flag>
      </column>
      <column>
        <name>seen</name>
        <dataType xsi:type="vs:VOTableType" arraysize="*" extendedType="timestamp">char</dataType>
        <flag>nullable</flag>
      </column>
"#;

#[test]
fn t10_tables_min_lists_every_table_without_columns() {
    let xml = tableset_xml(&describe(&state()), Detail::Min);
    assert_eq!(
        xml,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<vosi:tableset xmlns:vosi="http://www.ivoa.net/xml/VOSITables/v1.0" xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <schema>
    <name>demo</name>
    <table type="output">
      <name>demo.stars</name>
      <description>Stars &amp; such</description>
    </table>
  </schema>
  <schema>
    <name>tap_schema</name>
    <description>Metadata of the tables of this service (IVOA TAP 1.1).</description>
    <table type="output">
      <name>tap_schema.schemas</name>
      <description>The schemas of this service.</description>
    </table>
    <table type="output">
      <name>tap_schema.tables</name>
      <description>The tables of this service.</description>
    </table>
    <table type="output">
      <name>tap_schema.columns</name>
      <description>The columns of the tables of this service.</description>
    </table>
    <table type="output">
      <name>tap_schema.keys</name>
      <description>The foreign keys between the tables of this service.</description>
    </table>
    <table type="output">
      <name>tap_schema.key_columns</name>
      <description>The columns of the foreign keys of this service.</description>
    </table>
  </schema>
</vosi:tableset>
"#
    );
    well_formed(&xml);
}

#[test]
fn t11_tables_max_has_columns_with_types_and_flags() {
    let xml = tableset_xml(&describe(&state()), Detail::Max);
    let start = xml.find("      <column>").unwrap();
    let end = xml.find("    </table>").unwrap();
    assert_eq!(&xml[start..end], STARS_COLUMNS);
    // TAP_SCHEMA's own columns are standard.
    assert!(xml.contains(
        "      <column std=\"true\">\n        <name>&quot;size&quot;</name>\n        \
         <description>deprecated: use arraysize</description>\n        \
         <dataType xsi:type=\"vs:VOTableType\">int</dataType>\n        \
         <flag>nullable</flag>\n        <flag>principal</flag>\n      </column>\n"
    ));
    assert_eq!(xml.matches("<column").count(), 4 + 32);
    // TAP_SCHEMA's foreign keys, as in TAP_SCHEMA.keys.
    assert_eq!(xml.matches("<foreignKey>").count(), 5);
    assert!(xml.contains(
        "      <foreignKey>\n        <targetTable>tap_schema.tables</targetTable>\n        \
         <fkColumn>\n          <fromColumn>table_name</fromColumn>\n          \
         <targetColumn>table_name</targetColumn>\n        </fkColumn>\n        \
         <description>the table of a column</description>\n      </foreignKey>\n"
    ));
    well_formed(&xml);
}

#[test]
fn t12_one_table_document() {
    let schemas = describe(&state());
    let table = find_table(&schemas, "DEMO.Stars").unwrap();
    let xml = table_xml(table);
    assert_eq!(
        xml,
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<vosi:table xmlns:vosi="http://www.ivoa.net/xml/VOSITables/v1.0" xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" type="output">
  <name>demo.stars</name>
  <description>Stars &amp; such</description>
{}</vosi:table>
"#,
            STARS_COLUMNS
                .lines()
                .map(|l| format!("{}\n", &l[4..]))
                .collect::<String>()
        )
    );
    well_formed(&xml);
    assert!(find_table(&schemas, "TAP_SCHEMA.columns").is_some());
    assert!(find_table(&schemas, "demo.nope").is_none());
}

#[test]
fn t13_detail_parameter() {
    let p = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
    assert_eq!(detail(&[]), Ok(None));
    assert_eq!(detail(&p("DETAIL", "min")), Ok(Some(Detail::Min)));
    assert_eq!(detail(&p("detail", "MAX")), Ok(Some(Detail::Max)));
    assert!(detail(&p("detail", "all"))
        .unwrap_err()
        .contains("use min or max"));
}

/// Parses the whole document, so that a broken escape or tag fails the test.
fn well_formed(xml: &str) {
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut depth = 0i32;
    loop {
        match reader.read_event().unwrap() {
            quick_xml::events::Event::Start(_) => depth += 1,
            quick_xml::events::Event::End(_) => depth -= 1,
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(depth, 0);
}
