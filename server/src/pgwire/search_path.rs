//! `SET search_path`, as PostgreSQL reads it: unqualified table names resolve in the
//! first schema of the path that exists (`"$user"` standing for the session's user), and
//! in `public` when none does. DataFusion resolves unqualified names in one default
//! schema, so each statement sets the connection's default schema from the path before
//! it is planned; a table absent from that schema but present in a later one of the path
//! is not found, which differs from PostgreSQL only for paths of several existing schemas.
//!
//! datafusion-postgres's `SET` hook keeps a string value (`SET search_path = 'a'`) in the
//! connection's metadata, which `SHOW search_path` reads, and drops the identifier lists
//! PostgreSQL accepts (`SET search_path TO a, "B"`); [`normalize_set`] turns those, and
//! `RESET`/`DEFAULT`, into the string form first.

use std::collections::HashMap;

use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Expr, Reset, Set, Statement, Value};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// The parameter's name, also its metadata key.
const NAME: &str = "search_path";
/// PostgreSQL's default path.
const DEFAULT_PATH: &str = "\"$user\", public";

/// The query text with every `SET`/`RESET search_path` given as one string value, or
/// `None` when there is none (or the text does not parse: its parser reports that).
pub(crate) fn normalize_set(sql: &str) -> Option<String> {
    if !sql.to_ascii_lowercase().contains(NAME) {
        return None;
    }
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    let mut changed = false;
    for statement in &mut statements {
        let path = match statement {
            Statement::Set(Set::SingleAssignment {
                variable, values, ..
            }) if variable.to_string().eq_ignore_ascii_case(NAME) => {
                let entries: Option<Vec<String>> = values.iter().map(entry).collect();
                match entries {
                    Some(entries) if entries.iter().any(|e| e == "DEFAULT") => {
                        DEFAULT_PATH.to_string()
                    }
                    Some(entries) => entries.join(", "),
                    None => continue,
                }
            }
            Statement::Reset(reset) => match &reset.reset {
                Reset::ConfigurationParameter(name)
                    if name.to_string().eq_ignore_ascii_case(NAME) =>
                {
                    DEFAULT_PATH.to_string()
                }
                _ => continue,
            },
            _ => continue,
        };
        *statement = Statement::Set(Set::SingleAssignment {
            scope: None,
            hivevar: false,
            variable: datafusion::sql::sqlparser::ast::ObjectName::from(vec![
                datafusion::sql::sqlparser::ast::Ident::new(NAME),
            ]),
            values: vec![Expr::value(Value::SingleQuotedString(path))],
        });
        changed = true;
    }
    changed.then(|| {
        statements
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(";\n")
    })
}

/// One entry of a path as PostgreSQL prints it: an unquoted name folded to lower case, a
/// quoted one as written (in double quotes when it needs them), a string's entries.
fn entry(value: &Expr) -> Option<String> {
    match value {
        Expr::Identifier(ident) if ident.quote_style.is_some() => Some(quote(&ident.value)),
        Expr::Identifier(ident) if ident.value.eq_ignore_ascii_case("default") => {
            Some("DEFAULT".to_string())
        }
        Expr::Identifier(ident) => Some(ident.value.to_ascii_lowercase()),
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn quote(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// The schemas of a path, in order: `a, "B", $user` -> a, B, the user's name.
fn schemas(path: &str, user: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    for part in path.split(',') {
        let part = part.trim();
        let name = match part.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
            Some(quoted) => quoted.replace("\"\"", "\""),
            None => part.to_ascii_lowercase(),
        };
        match name.as_str() {
            "" => {}
            "$user" => out.extend(user.map(str::to_string)),
            _ => out.push(name),
        }
    }
    out
}

/// Sets the default schema of `ctx` for the next statement from the connection's
/// `search_path`: the first of its schemas that exists, else `public`.
pub(crate) fn apply(ctx: &SessionContext, metadata: &HashMap<String, String>) {
    let path = metadata
        .get(NAME)
        .map(String::as_str)
        .unwrap_or(DEFAULT_PATH);
    let user = metadata.get(pgwire::api::METADATA_USER).map(String::as_str);
    let catalog = ctx.catalog(almagest_coordinator::providers::CATALOG_NAME);
    let wanted = schemas(path, user)
        .into_iter()
        .find(|s| catalog.as_ref().is_some_and(|c| c.schema(s).is_some()))
        .unwrap_or_else(|| almagest_coordinator::providers::DEFAULT_SCHEMA.to_string());
    let state = ctx.state_ref();
    if state.read().config().options().catalog.default_schema == wanted {
        return;
    }
    state
        .write()
        .config_mut()
        .options_mut()
        .catalog
        .default_schema = wanted;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_set_forms_become_one_string() {
        let cases = [
            ("SET search_path TO qcase", "SET search_path = 'qcase'"),
            (
                "set SEARCH_PATH = QCase, public",
                "SET search_path = 'qcase, public'",
            ),
            (
                "SET search_path TO \"Mixed\", demo",
                "SET search_path = '\"Mixed\", demo'",
            ),
            ("SET search_path = 'demo'", "SET search_path = 'demo'"),
            (
                "SET search_path TO DEFAULT",
                "SET search_path = '\"$user\", public'",
            ),
            ("RESET search_path", "SET search_path = '\"$user\", public'"),
        ];
        for (sql, want) in cases {
            assert_eq!(normalize_set(sql).as_deref(), Some(want), "{sql}");
        }
        assert_eq!(normalize_set("SELECT 1"), None);
        assert_eq!(normalize_set("SET statement_timeout = 5"), None);
    }

    #[test]
    fn t10_path_entries() {
        assert_eq!(
            schemas("\"$user\", public", Some("ann")),
            vec!["ann".to_string(), "public".to_string()]
        );
        assert_eq!(
            schemas("qcase, \"Mixed\",  DEMO", None),
            vec!["qcase".to_string(), "Mixed".to_string(), "demo".to_string()]
        );
    }
}
