//! VOSI tables (VOSI 1.1, VODataService 1.1): `GET /tap/tables` lists every schema, table
//! and column the service offers (TAP_SCHEMA included), `GET /tap/tables/{name}` one
//! table. Both are made from the coordinator's [`describe`], the model TAP_SCHEMA is made
//! from, so the two endpoints agree.
//!
//! `detail=min` leaves the columns out, `detail=max` puts them in; without the parameter
//! the columns are included while the service has at most [`MAX_TABLES_WITH_COLUMNS`]
//! tables.

use std::fmt::Write as _;
use std::sync::Arc;

use almagest_coordinator::tap_schema::{describe, ColumnDesc, SchemaDesc, TableDesc};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::xml::{escape, VODATASERVICE_NS, VOSI_TABLES_NS, XML_CONTENT_TYPE, XML_HEAD, XSI_NS};
use super::TapState;

/// Tables listed with their columns when the client does not ask for a detail level.
pub const MAX_TABLES_WITH_COLUMNS: usize = 500;

/// The `/tables` routes (nested under `/tap`).
pub fn routes() -> Router<Arc<TapState>> {
    Router::new()
        .route("/tables", get(tableset))
        .route("/tables/{name}", get(one_table))
}

/// How much of each table `/tables` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Names and descriptions only.
    Min,
    /// Columns too.
    Max,
}

/// Reads `detail` (the name case-insensitively, as DALI parameters are).
fn detail(params: &[(String, String)]) -> Result<Option<Detail>, String> {
    let Some((_, value)) = params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("detail"))
    else {
        return Ok(None);
    };
    match value.to_ascii_lowercase().as_str() {
        "min" => Ok(Some(Detail::Min)),
        "max" => Ok(Some(Detail::Max)),
        other => Err(format!(
            "invalid value {other:?} of parameter detail: use min or max"
        )),
    }
}

async fn tableset(
    State(state): State<Arc<TapState>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let detail = match detail(&params) {
        Ok(d) => d,
        Err(message) => return (StatusCode::BAD_REQUEST, message).into_response(),
    };
    let schemas = describe(&state.coordinator.catalog().state());
    let tables: usize = schemas.iter().map(|s| s.tables.len()).sum();
    let detail = detail.unwrap_or(if tables <= MAX_TABLES_WITH_COLUMNS {
        Detail::Max
    } else {
        Detail::Min
    });
    xml_response(tableset_xml(&schemas, detail))
}

async fn one_table(State(state): State<Arc<TapState>>, Path(name): Path<String>) -> Response {
    let schemas = describe(&state.coordinator.catalog().state());
    match find_table(&schemas, &name) {
        Some(table) => xml_response(table_xml(table)),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
            format!("table {name:?} does not exist\n"),
        )
            .into_response(),
    }
}

fn xml_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, XML_CONTENT_TYPE)], body).into_response()
}

/// The table with this qualified name; case-insensitive, as unquoted ADQL names are.
pub fn find_table<'a>(schemas: &'a [SchemaDesc], name: &str) -> Option<&'a TableDesc> {
    schemas
        .iter()
        .flat_map(|s| &s.tables)
        .find(|t| t.name.eq_ignore_ascii_case(name))
}

/// The `vosi:tableset` document.
pub fn tableset_xml(schemas: &[SchemaDesc], detail: Detail) -> String {
    let mut out = String::with_capacity(4096);
    out.push_str(XML_HEAD);
    let _ = writeln!(
        out,
        "<vosi:tableset xmlns:vosi=\"{VOSI_TABLES_NS}\" xmlns:vs=\"{VODATASERVICE_NS}\" \
         xmlns:xsi=\"{XSI_NS}\">"
    );
    for schema in schemas {
        out.push_str("  <schema>\n");
        element(&mut out, 4, "name", Some(&schema.name));
        element(&mut out, 4, "description", schema.description.as_deref());
        element(&mut out, 4, "utype", schema.utype.as_deref());
        for table in &schema.tables {
            out.push_str("    <table type=\"output\">\n");
            table_body(&mut out, 6, table, detail);
            out.push_str("    </table>\n");
        }
        out.push_str("  </schema>\n");
    }
    out.push_str("</vosi:tableset>\n");
    out
}

/// The `vosi:table` document of one table (always with its columns).
pub fn table_xml(table: &TableDesc) -> String {
    let mut out = String::with_capacity(2048);
    out.push_str(XML_HEAD);
    let _ = writeln!(
        out,
        "<vosi:table xmlns:vosi=\"{VOSI_TABLES_NS}\" xmlns:vs=\"{VODATASERVICE_NS}\" \
         xmlns:xsi=\"{XSI_NS}\" type=\"output\">"
    );
    table_body(&mut out, 2, table, Detail::Max);
    out.push_str("</vosi:table>\n");
    out
}

/// The children of a table element, in the order VODataService 1.1 requires: name,
/// description, utype, columns.
fn table_body(out: &mut String, indent: usize, table: &TableDesc, detail: Detail) {
    element(out, indent, "name", Some(&table.name));
    element(out, indent, "description", table.description.as_deref());
    element(out, indent, "utype", table.utype.as_deref());
    if detail == Detail::Max {
        for column in &table.columns {
            column_xml(out, indent, column);
        }
        foreign_keys_xml(out, indent, &table.name);
    }
}

/// The `foreignKey`s starting from `table`: TAP_SCHEMA's own, the only ones declared.
fn foreign_keys_xml(out: &mut String, indent: usize, table: &str) {
    let pad = " ".repeat(indent);
    for (_, from, target, from_column, target_column, description) in
        almagest_coordinator::tap_schema::STD_KEYS
    {
        if from != table {
            continue;
        }
        let _ = writeln!(out, "{pad}<foreignKey>");
        let _ = writeln!(out, "{pad}  <targetTable>{}</targetTable>", escape(target));
        let _ = writeln!(out, "{pad}  <fkColumn>");
        let _ = writeln!(
            out,
            "{pad}    <fromColumn>{}</fromColumn>",
            escape(from_column)
        );
        let _ = writeln!(
            out,
            "{pad}    <targetColumn>{}</targetColumn>",
            escape(target_column)
        );
        let _ = writeln!(out, "{pad}  </fkColumn>");
        let _ = writeln!(
            out,
            "{pad}  <description>{}</description>",
            escape(description)
        );
        let _ = writeln!(out, "{pad}</foreignKey>");
    }
}

/// A `column` (vs:TableParam): name, description, unit, ucd, utype, dataType, flags.
fn column_xml(out: &mut String, indent: usize, c: &ColumnDesc) {
    let pad = " ".repeat(indent);
    if c.std {
        let _ = writeln!(out, "{pad}<column std=\"true\">");
    } else {
        let _ = writeln!(out, "{pad}<column>");
    }
    let inner = indent + 2;
    element(out, inner, "name", Some(&c.name));
    element(out, inner, "description", c.description.as_deref());
    element(out, inner, "unit", c.unit.as_deref());
    element(out, inner, "ucd", c.ucd.as_deref());
    element(out, inner, "utype", c.utype.as_deref());
    let _ = write!(out, "{pad}  <dataType xsi:type=\"vs:VOTableType\"");
    if let Some(a) = &c.votable.arraysize {
        let _ = write!(out, " arraysize=\"{}\"", escape(a));
    }
    if let Some(x) = c.votable.xtype {
        let _ = write!(out, " extendedType=\"{}\"", escape(x));
    }
    let _ = writeln!(out, ">{}</dataType>", c.votable.datatype);
    let flags = [
        (c.indexed, "indexed"),
        (c.primary, "primary"),
        (c.nullable, "nullable"),
        (c.principal, "principal"),
    ];
    for (set, flag) in flags {
        if set {
            let _ = writeln!(out, "{pad}  <flag>{flag}</flag>");
        }
    }
    let _ = writeln!(out, "{pad}</column>");
}

/// `<tag>text</tag>` on its own line, or nothing for `None`.
fn element(out: &mut String, indent: usize, tag: &str, text: Option<&str>) {
    if let Some(text) = text {
        let _ = writeln!(out, "{:indent$}<{tag}>{}</{tag}>", "", escape(text));
    }
}

#[cfg(test)]
mod tests;
