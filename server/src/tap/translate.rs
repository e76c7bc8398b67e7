//! ADQL to SQL for the TAP service: strict ADQL 2.1 printed as SQL, with the units of the
//! columns the query reads, so that `IN_UNIT(column, 'unit')` can convert a bare column.
//!
//! Units come from the catalog (`ColumnMeta::unit`) for catalog tables, and from the
//! `unit` attribute of the VOTable FIELDs (kept as Arrow field metadata by the reader) for
//! `TAP_UPLOAD` tables. A column reference is resolved against the tables named in the
//! query's FROM clauses (at every level: WITH, derived tables, set operations); when a
//! bare column name matches several of them, their units must agree, otherwise the unit is
//! not known and `IN_UNIT` says so.

use std::collections::HashMap;

use almagest_adql::adql21::ast::{Query, SetExpr, TableRef};
use almagest_adql::adql21::{print, service_options};
use almagest_coordinator::catalog::CatalogState;
use datafusion::arrow::datatypes::Schema;

use super::error::Result;

/// One table of the query as units are looked up in it.
struct Source {
    /// The names a qualifier may use for it: its alias, or else its name and its
    /// schema-qualified name (lower case).
    names: Vec<String>,
    /// Unit of each column (lower-case name); `None` when the column has none.
    columns: HashMap<String, Option<String>>,
}

/// The name of an upload table's field metadata key holding the unit.
pub const UNIT_KEY: &str = "unit";

/// Prints `query` (ADQL) as SQL, resolving `IN_UNIT` sources against the catalog and the
/// given uploads (name, schema).
pub fn adql_to_sql<'a>(
    query: &str,
    catalog: &CatalogState,
    uploads: impl IntoIterator<Item = (&'a str, &'a Schema)>,
) -> Result<String> {
    // The ADQL parser descends recursively: bound the nesting before it reads the text.
    almagest_adql::check_nesting(query)?;
    let parsed = almagest_adql::parse_query_with(query, &service_options())?;
    let uploads: Vec<(&str, &Schema)> = uploads.into_iter().collect();
    let mut sources = Vec::new();
    collect_query(&parsed, catalog, &uploads, &mut sources);
    let lookup = |parts: &[String]| unit_of(&sources, parts);
    Ok(print::to_sql(&parsed, Some(&lookup))?)
}

/// The unit of a column reference (qualifiers then column), when every table it may come
/// from agrees on one.
fn unit_of(sources: &[Source], parts: &[String]) -> Option<String> {
    let (column, qualifier) = parts.split_last()?;
    let column = column.to_ascii_lowercase();
    let qualifier = qualifier
        .iter()
        .map(|p| p.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(".");
    let mut units = sources
        .iter()
        .filter(|s| qualifier.is_empty() || s.names.iter().any(|n| *n == qualifier))
        .filter_map(|s| s.columns.get(&column));
    let first = units.next()?.clone()?;
    units
        .all(|u| u.as_deref() == Some(first.as_str()))
        .then_some(first)
}

fn collect_query(
    query: &Query,
    catalog: &CatalogState,
    uploads: &[(&str, &Schema)],
    out: &mut Vec<Source>,
) {
    for cte in &query.with {
        collect_query(&cte.query, catalog, uploads, out);
    }
    collect_set(&query.body, catalog, uploads, out);
}

fn collect_set(
    body: &SetExpr,
    catalog: &CatalogState,
    uploads: &[(&str, &Schema)],
    out: &mut Vec<Source>,
) {
    match body {
        SetExpr::Select(select) => {
            for table in &select.from {
                collect_table(table, catalog, uploads, out);
            }
        }
        SetExpr::Nested(query) => collect_query(query, catalog, uploads, out),
        SetExpr::SetOperation { left, right, .. } => {
            collect_set(left, catalog, uploads, out);
            collect_set(right, catalog, uploads, out);
        }
    }
}

fn collect_table(
    table: &TableRef,
    catalog: &CatalogState,
    uploads: &[(&str, &Schema)],
    out: &mut Vec<Source>,
) {
    match table {
        TableRef::Table { name, alias } => {
            let parts: Vec<String> = name.iter().map(|p| p.name.to_ascii_lowercase()).collect();
            let (table_name, schema) = match parts.as_slice() {
                [t] => (t.clone(), None),
                [.., s, t] => (t.clone(), Some(s.clone())),
                [] => return,
            };
            let columns = if schema.as_deref() == Some("tap_upload") {
                uploads
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(&table_name))
                    .map(|(_, schema)| {
                        schema
                            .fields()
                            .iter()
                            .map(|f| {
                                (
                                    f.name().to_ascii_lowercase(),
                                    f.metadata().get(UNIT_KEY).cloned(),
                                )
                            })
                            .collect()
                    })
            } else {
                let mut found = catalog.tables.values().filter(|t| {
                    t.name.eq_ignore_ascii_case(&table_name)
                        && schema
                            .as_deref()
                            .is_none_or(|s| t.database.eq_ignore_ascii_case(s))
                });
                match (found.next(), found.next()) {
                    (Some(t), None) => Some(
                        t.columns
                            .iter()
                            .map(|c| (c.name.to_ascii_lowercase(), c.unit.clone()))
                            .collect(),
                    ),
                    _ => None,
                }
            };
            let Some(columns) = columns else { return };
            let names = match alias {
                Some(alias) => vec![alias.name.to_ascii_lowercase()],
                None => {
                    let mut names = vec![table_name.clone()];
                    if let Some(schema) = schema {
                        names.push(format!("{schema}.{table_name}"));
                    }
                    names
                }
            };
            out.push(Source { names, columns });
        }
        TableRef::Derived { query, .. } => collect_query(query, catalog, uploads, out),
        TableRef::Join { left, right, .. } => {
            collect_table(left, catalog, uploads, out);
            collect_table(right, catalog, uploads, out);
        }
        TableRef::Nested(inner) => collect_table(inner, catalog, uploads, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use almagest_coordinator::catalog::{ColumnMeta, TableKind, TableMeta};
    use datafusion::arrow::datatypes::{DataType, Field};

    fn column(name: &str, unit: Option<&str>) -> ColumnMeta {
        ColumnMeta {
            name: name.into(),
            data_type: "Float64".into(),
            nullable: true,
            unit: unit.map(str::to_string),
            ucd: None,
            description: None,
            utype: None,
            principal: false,
            indexed: false,
        }
    }

    fn catalog() -> CatalogState {
        let mut state = CatalogState::default();
        for (db, name, columns) in [
            (
                "test",
                "gaia",
                vec![
                    column("ra", Some("deg")),
                    column("dec", Some("deg")),
                    column("flux", None),
                ],
            ),
            (
                "test",
                "other",
                vec![column("ra", Some("rad")), column("pmra", Some("mas/yr"))],
            ),
        ] {
            state.tables.insert(
                format!("{db}.{name}"),
                TableMeta {
                    format: almagest_coordinator::catalog::TABLE_META_FORMAT,
                    database: db.into(),
                    name: name.into(),
                    kind: TableKind::Replicated,
                    columns,
                    ra_column: None,
                    dec_column: None,
                    key_column: None,
                    load_id: String::new(),
                    chunks: Default::default(),
                    rows: 0,
                    description: None,
                    key_index: false,
                    director: None,
                },
            );
        }
        state
    }

    fn sql(query: &str) -> Result<String> {
        let upload = Schema::new(vec![Field::new("mag", DataType::Float64, true)
            .with_metadata(HashMap::from([(
                UNIT_KEY.to_string(),
                "arcmin".to_string(),
            )]))]);
        adql_to_sql(query, &catalog(), [("targets", &upload)])
    }

    #[test]
    fn bare_and_qualified_columns_get_their_units() {
        let s = sql("SELECT IN_UNIT(ra, 'arcsec') FROM test.gaia").unwrap();
        assert!(s.contains("(ra * 3.6e3)"), "{s}");
        let s = sql("SELECT IN_UNIT(g.dec, 'rad') FROM test.gaia AS g").unwrap();
        assert!(s.contains("g.dec * 1.7453292519943"), "{s}");
        let s = sql(
            "SELECT IN_UNIT(o.ra, 'deg') FROM test.gaia AS g JOIN test.other AS o ON g.ra = o.ra",
        )
        .unwrap();
        assert!(s.contains("o.ra * 5.729577951308"), "{s}");
        let s = sql("SELECT IN_UNIT(mag, 'deg') FROM TAP_UPLOAD.targets").unwrap();
        assert!(s.contains("(mag * 1.66666666"), "{s}");
        let s = sql("SELECT IN_UNIT(pmra, 'mas/yr') FROM (SELECT * FROM test.other) AS x").unwrap();
        assert!(s.contains("pmra * 1e0"), "{s}");
    }

    #[test]
    fn unknown_or_ambiguous_units_are_refused() {
        for query in [
            "SELECT IN_UNIT(flux, 'Jy') FROM test.gaia",
            "SELECT IN_UNIT(ra, 'deg') FROM test.gaia, test.other",
            "SELECT IN_UNIT(nope, 'deg') FROM test.gaia",
        ] {
            let e = sql(query).unwrap_err().to_string();
            assert!(e.contains("IN_UNIT needs the unit"), "{query}: {e}");
        }
    }
}
