//! Chunk pruning by the director index: the key constraints of a fragment's filters
//! (`key = X`, `key IN (...)`, ORs of those, and ranges from `<`, `<=`, `>`, `>=` and
//! BETWEEN) give the chunks that can hold a matching row.
//!
//! Only a constraint every matching row satisfies may prune, so only top-level conjuncts
//! count, and a constant that does not convert exactly to the key's type gives up (the
//! workers still apply every filter; pruning only skips chunks).

use std::collections::BTreeSet;
use std::ops::Bound;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};

use crate::catalog::index::{encode_scalar, MAX_RANGE_ENTRIES};
use crate::catalog::{DirectorIndex, TableMeta};

/// What the filters say about the key.
#[derive(Debug, Default)]
struct KeyBounds {
    /// The smallest set of values one conjunct allows, if any conjunct is such a set.
    values: Option<Vec<Vec<u8>>>,
    low: Option<(Vec<u8>, bool)>,
    high: Option<(Vec<u8>, bool)>,
}

fn is_key(e: &Expr, key: &str) -> bool {
    matches!(e, Expr::Column(c) if c.name == key)
}

fn literal(e: &Expr) -> Option<&ScalarValue> {
    match e {
        Expr::Literal(v, _) => Some(v),
        _ => None,
    }
}

/// The values an expression allows the key, if it is `key = c`, `key IN (c, ...)` or an
/// OR of those.
fn allowed_values(e: &Expr, key: &str, key_type: &DataType) -> Option<Vec<Vec<u8>>> {
    match e {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => {
            let value = if is_key(left, key) {
                literal(right)
            } else if is_key(right, key) {
                literal(left)
            } else {
                None
            }?;
            Some(vec![encode_scalar(value, key_type)?])
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            let mut values = allowed_values(left, key, key_type)?;
            values.extend(allowed_values(right, key, key_type)?);
            Some(values)
        }
        Expr::InList(list) if !list.negated && is_key(&list.expr, key) => list
            .list
            .iter()
            .map(|v| encode_scalar(literal(v)?, key_type))
            .collect(),
        _ => None,
    }
}

/// Tightens `slot` (a low bound if `low`) with `(value, inclusive)`.
fn tighten(slot: &mut Option<(Vec<u8>, bool)>, value: Vec<u8>, inclusive: bool, low: bool) {
    let replace = match slot {
        None => true,
        Some((old, old_inclusive)) => {
            if value == *old {
                *old_inclusive && !inclusive
            } else {
                (value > *old) == low
            }
        }
    };
    if replace {
        *slot = Some((value, inclusive));
    }
}

fn add_comparison(bounds: &mut KeyBounds, e: &Expr, key: &str, key_type: &DataType) {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            // Put the key on the left.
            let (op, value) = if is_key(left, key) {
                (*op, literal(right))
            } else if is_key(right, key) {
                match op.swap() {
                    Some(swapped) => (swapped, literal(left)),
                    None => return,
                }
            } else {
                return;
            };
            let Some(value) = value.and_then(|v| encode_scalar(v, key_type)) else {
                return;
            };
            match op {
                Operator::Gt => tighten(&mut bounds.low, value, false, true),
                Operator::GtEq => tighten(&mut bounds.low, value, true, true),
                Operator::Lt => tighten(&mut bounds.high, value, false, false),
                Operator::LtEq => tighten(&mut bounds.high, value, true, false),
                _ => {}
            }
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) if is_key(expr, key) => {
            if let Some(v) = literal(low).and_then(|v| encode_scalar(v, key_type)) {
                tighten(&mut bounds.low, v, true, true);
            }
            if let Some(v) = literal(high).and_then(|v| encode_scalar(v, key_type)) {
                tighten(&mut bounds.high, v, true, false);
            }
        }
        _ => {}
    }
}

/// The chunks of `table` that can hold a row satisfying `filters`, as far as the director
/// index tells, with what EXPLAIN says about it; `None` if the filters do not constrain
/// the key (or the table has no index).
pub(crate) fn key_chunks(
    filters: &[Expr],
    table: &TableMeta,
    index: &DirectorIndex,
) -> Option<(BTreeSet<u64>, String)> {
    // A director table's own key, or a child's director key: the director version's
    // entries say which chunk holds the rows of a key.
    let (key, key_type, load_id): (&str, DataType, &str) = match &table.director {
        Some(link) => (&link.column, link.key_type.parse().ok()?, &link.load_id),
        None if table.key_index => {
            let key = table.key_column.as_deref()?;
            let key_type = table
                .columns
                .iter()
                .find(|c| c.name == key)
                .and_then(|c| c.data_type.parse().ok())?;
            (key, key_type, &table.load_id)
        }
        None => return None,
    };
    let mut bounds = KeyBounds::default();
    for filter in filters {
        for conjunct in split_conjunction(filter) {
            if let Some(values) = allowed_values(conjunct, key, &key_type) {
                if bounds
                    .values
                    .as_ref()
                    .is_none_or(|v| values.len() < v.len())
                {
                    bounds.values = Some(values);
                }
            } else {
                add_comparison(&mut bounds, conjunct, key, &key_type);
            }
        }
    }
    let lookup = if let Some(values) = bounds.values {
        let n = values.len();
        let what = format!(
            "director index on {key}: {n} key{}",
            if n == 1 { "" } else { "s" }
        );
        index.chunks_of(load_id, &values).map(|c| Some((c, what)))
    } else if bounds.low.is_some() || bounds.high.is_some() {
        fn bound(b: &Option<(Vec<u8>, bool)>) -> Bound<&[u8]> {
            match b {
                None => Bound::Unbounded,
                Some((v, true)) => Bound::Included(v.as_slice()),
                Some((v, false)) => Bound::Excluded(v.as_slice()),
            }
        }
        let what = format!("director index on {key}: key range");
        index
            .chunks_in_range(
                load_id,
                bound(&bounds.low),
                bound(&bounds.high),
                MAX_RANGE_ENTRIES,
            )
            .map(|c| c.map(|c| (c, what)))
    } else {
        Ok(None)
    };
    // Without the index every chunk is read: slower, never wrong.
    lookup.unwrap_or_else(|e| {
        tracing::warn!(table = %table.qualified_name(), error = %e, "director index lookup failed");
        None
    })
}
