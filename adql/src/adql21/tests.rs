//! Parser errors, text-to-text translation, and translated queries run by DataFusion.

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, FixedSizeListArray, Float64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int32Type, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use super::ast::*;
use super::*;
use crate::error::{AdqlError, Position};

fn error(text: &str) -> AdqlError {
    match parse_query(text) {
        Ok(q) => panic!("{text:?} parsed: {q:?}"),
        Err(e) => e,
    }
}

fn at(line: u64, column: u64) -> Option<Position> {
    Some(Position { line, column })
}

#[test]
fn t10_errors_name_position_expected_and_found() {
    let e = error("SELECT FROM stars");
    assert_eq!(e.position(), at(1, 8));
    assert_eq!(
        e.message(),
        "expected a column, an expression or '*' in the select list, found 'FROM'"
    );
    let e = error("SELECT distance FROM stars");
    assert_eq!(e.position(), at(1, 8));
    assert_eq!(
        e.message(),
        "expected an expression, found the reserved word 'distance' (write \"distance\" to use \
         it as an identifier)"
    );
    let e = error("SELECT a\nFROM t\nWHERE POINT('ICRS', 1, 2)");
    assert_eq!(e.position(), at(3, 7));
    assert!(e.message().starts_with("expected a condition after WHERE"));
    let e = error("SELECT TOP -1 a FROM t");
    assert_eq!(e.position(), at(1, 12));
    assert_eq!(
        e.message(),
        "expected an unsigned integer after TOP, found '-'"
    );
    let e = error("SELECT * FROM t1 INNER JOIN t2");
    assert_eq!(
        e.message(),
        "expected ON or USING after the joined table, found the end of the query"
    );
    let e = error("SELECT x FROM y WHERE CIRCLE('ICRS', 2, 3) = x");
    assert_eq!(e.position(), at(1, 38));
    assert!(e
        .message()
        .contains("the number 2 where a POINT or a column is needed"));
    let e = error("SELECT a FROM t;");
    assert_eq!(e.position(), at(1, 16));
    assert_eq!(e.message(), "expected the end of the query, found ';'");
    let e = error("SELECT 'abc FROM t");
    assert_eq!(e.position(), at(1, 8));
    let e = error("SELECT _x FROM t");
    assert!(e.message().contains("\"_x\""));
    let e = error("SELECT foo(a) FROM t");
    assert_eq!(e.sqlstate(), "42883");
    assert!(e.message().starts_with("unknown function 'foo'"));
    let e = error("SELECT CAST(a AS FLOAT) FROM t");
    assert!(e.message().starts_with("expected a CAST target type"));
    let e = error("SELECT a FROM (SELECT b FROM t)");
    assert!(e.message().contains("a correlation name"));
    let e = error("SELECT a FROM t WHERE a = 1 AND b");
    assert_eq!(e.position(), at(1, 33));
    assert_eq!(
        e.message(),
        "expected a condition as an operand of AND, found a value"
    );
    assert_eq!(
        error("SELECT a FROM t ORDER BY").message(),
        "expected an ORDER BY term, found the end of the query"
    );
}

#[test]
fn t20_identifiers_and_literals() {
    let q = parse_query("SELECT \"a\"\"b\", 0x1F, .5, 1., 1E3 FROM \"My Table\" x").unwrap();
    let SetExpr::Select(select) = &q.body else {
        panic!()
    };
    let SelectItem::Expr { expr, .. } = &select.items[0] else {
        panic!()
    };
    assert_eq!(
        expr.kind,
        ExprKind::Column(vec![Ident {
            name: "a\"b".into(),
            delimited: true,
            position: Position { line: 1, column: 8 }
        }])
    );
    assert_eq!(
        adql_to_sql("SELECT \"a\"\"b\", 0x1F, .5, 1., 1E3 FROM \"My Table\" x").unwrap(),
        "SELECT \"a\"\"b\", 31, 0.5, 1.0, 1E3 FROM \"My Table\" AS x"
    );
}

#[test]
fn t30_text_to_text() {
    let cases = [
        (
            "SELECT TOP 5 ra, dec FROM TAP_SCHEMA.columns ORDER BY ra DESC OFFSET 10",
            "SELECT ra, dec FROM TAP_SCHEMA.columns ORDER BY ra DESC LIMIT 5 OFFSET 10",
        ),
        (
            "SELECT * FROM t WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 10, 20, 0.5))",
            "SELECT * FROM t WHERE (1 = scisql_s2ptincircle(ra, dec, 10, 20, 0.5))",
        ),
        (
            "SELECT * FROM t WHERE INTERSECTS(BOX(POINT(1, 2), 3, 4), POINT(ra, dec)) = 1",
            "SELECT * FROM t WHERE (almagest_pt_in_adql_box(ra, dec, 1, 2, 3, 4) = 1)",
        ),
        (
            "SELECT DISTANCE(POINT(a, b), POINT('', 1, 2)), DISTANCE(1, 2, 3, 4), COORD2(POINT(a, b)) FROM t",
            "SELECT scisql_s2angsep(a, b, 1, 2), scisql_s2angsep(1, 2, 3, 4), (b) FROM t",
        ),
        (
            "SELECT POINT(ra, dec) AS p, AREA(CIRCLE(1, 2, 3)), CONTAINS(c, POLYGON(0,0, 1,0, 0,1)) FROM t",
            "SELECT adql_point(ra, dec) AS p, adql_area(adql_circle(1, 2, 3)), \
             adql_contains(c, adql_polygon(0, 0, 1, 0, 0, 1)) FROM t",
        ),
        (
            "SELECT log(x), truncate(x, -2), ceiling(x), mod(a, 3), rand(), a & b, a | b, a ^ b, ~a FROM t",
            "SELECT ln(x), trunc(x, -2), ceil(x), (a % 3), random(), (a & b), (a | b), ((a | b) - (a & b)), ((- a) - 1) FROM t",
        ),
        (
            "SELECT TOP 3 a FROM x UNION ALL SELECT b FROM y INTERSECT SELECT c FROM z",
            "((SELECT a FROM x LIMIT 3) UNION ALL (SELECT b FROM y INTERSECT SELECT c FROM z))",
        ),
        (
            "WITH s AS (SELECT a FROM t) SELECT COUNT(DISTINCT a), COUNT(*) FROM s NATURAL JOIN u \
             LEFT OUTER JOIN v USING (a) GROUP BY a HAVING AVG(a) > 1",
            "WITH s AS (SELECT a FROM t) SELECT count(DISTINCT a), count(*) FROM s NATURAL JOIN u \
             LEFT JOIN v USING (a) GROUP BY a HAVING (avg(a) > 1)",
        ),
        (
            "SELECT CASE WHEN a IS NULL THEN 'x' ELSE 'y' END, CAST(a AS DOUBLE PRECISION), \
             NULLIF(a, 1), COALESCE(a, b) FROM t WHERE a NOT BETWEEN 1 AND 2 AND b ILIKE 'n%' \
             AND c NOT IN (SELECT d FROM u) AND EXISTS (SELECT 1 FROM v)",
            "SELECT CASE WHEN (a IS NULL) THEN 'x' ELSE 'y' END, CAST(a AS DOUBLE PRECISION), \
             nullif(a, 1), coalesce(a, b) FROM t WHERE ((((a NOT BETWEEN 1 AND 2) AND (b ILIKE 'n%')) \
             AND (c NOT IN (SELECT d FROM u))) AND EXISTS (SELECT 1 FROM v))",
        ),
        (
            "SELECT limit FROM t",
            "SELECT \"limit\" FROM t",
        ),
    ];
    for (adql, sql) in cases {
        assert_eq!(adql_to_sql(adql).as_deref(), Ok(sql), "{adql}");
    }
}

#[test]
fn t40_translation_errors() {
    let e = adql_to_sql("SELECT IN_UNIT(ra, 'rad') FROM t").unwrap_err();
    assert_eq!(e.sqlstate(), "0A000");
    assert_eq!(e.position(), at(1, 8));
    let lookup = |parts: &[String]| (parts == ["ra"]).then(|| "deg".to_string());
    assert_eq!(
        adql_to_sql_with(
            "SELECT IN_UNIT(ra, 'arcmin') FROM t",
            &service_options(),
            Some(&lookup)
        )
        .as_deref(),
        Ok("SELECT (ra * 6e1) FROM t")
    );
    assert_eq!(
        adql_to_sql_with(
            "SELECT IN_UNIT(IN_UNIT(ra, 'arcmin'), 'deg') FROM t",
            &service_options(),
            Some(&lookup)
        )
        .as_deref(),
        Ok("SELECT ((ra * 6e1) * 1.6666666666666666e-2) FROM t")
    );
    let e = adql_to_sql_with(
        "SELECT IN_UNIT(ra, 'm') FROM t",
        &service_options(),
        Some(&lookup),
    )
    .unwrap_err();
    assert_eq!(e.sqlstate(), "22023");
    assert_eq!(e.position(), at(1, 20));
    let e = adql_to_sql("SELECT POINT('GALACTIC', 1, 2) FROM t").unwrap_err();
    assert_eq!(e.sqlstate(), "22023");
    assert_eq!(e.position(), at(1, 14));
    let e = adql_to_sql("SELECT RAND(99999999999999999999) FROM t").unwrap_err();
    assert_eq!(e.sqlstate(), "22023");
}

/// REGION strings become the constructors they describe, which the predicates then use as
/// if written out (hence the scisql calls that prune); the STC-S operators become
/// greatest/least/1 - p over the parts; everything else is an exact error.
#[test]
fn t45_region_strings() {
    let sql = |adql: &str| adql_to_sql(adql).unwrap_or_else(|e| panic!("{adql}: {e}"));
    assert_eq!(
        sql("SELECT a FROM t WHERE 1 = CONTAINS(POINT(ra, dec), REGION('CIRCLE ICRS 10 -20.5 0.5'))"),
        "SELECT a FROM t WHERE (1 = scisql_s2ptincircle(ra, dec, 10.0, (- 20.5), 0.5))"
    );
    assert_eq!(
        sql("SELECT a FROM t WHERE CONTAINS(POINT(ra, dec), REGION('polygon 1 2 3 4 5 6')) = 1"),
        "SELECT a FROM t WHERE (scisql_s2ptincpoly(ra, dec, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0) = 1)"
    );
    assert_eq!(
        sql("SELECT a FROM t WHERE 1 = INTERSECTS(REGION('Box UNKNOWNFrame 0 0 2 1'), POINT(ra, dec))"),
        "SELECT a FROM t WHERE (1 = almagest_pt_in_adql_box(ra, dec, 0.0, 0.0, 2.0, 1.0))"
    );
    assert_eq!(
        sql("SELECT a FROM t WHERE 1 = CONTAINS(REGION('Position ICRS 1 2'), CIRCLE(0, 0, 3))"),
        "SELECT a FROM t WHERE (1 = scisql_s2ptincircle(1.0, 2.0, 0, 0, 3))"
    );
    assert_eq!(
        sql("SELECT AREA(REGION('circle 0 90 1')) FROM t"),
        "SELECT adql_area(adql_circle(0.0, 90.0, 1.0)) FROM t"
    );
    assert_eq!(
        sql("SELECT a FROM t WHERE 1 = CONTAINS(POINT(ra, dec), \
             REGION('Union ICRS (Circle 0 0 1 Intersection (Circle 10 0 2 Not (Box 10 0 1 1)))'))"),
        "SELECT a FROM t WHERE (1 = greatest(scisql_s2ptincircle(ra, dec, 0.0, 0.0, 1.0), \
         least(scisql_s2ptincircle(ra, dec, 10.0, 0.0, 2.0), \
         (1 - almagest_pt_in_adql_box(ra, dec, 10.0, 0.0, 1.0, 1.0)))))"
    );
    assert_eq!(
        sql("SELECT a FROM t WHERE 1 = INTERSECTS(CIRCLE(ra, dec, 1), \
             REGION('Union (Circle 0 0 1 Circle 5 5 1)'))"),
        "SELECT a FROM t WHERE (1 = greatest(adql_intersects(adql_circle(ra, dec, 1), \
         adql_circle(0.0, 0.0, 1.0)), adql_intersects(adql_circle(ra, dec, 1), \
         adql_circle(5.0, 5.0, 1.0))))"
    );
    for (adql, state, column, fragment) in [
        (
            "SELECT REGION('Circle FK4 10 10 1') FROM t",
            "22023",
            15,
            "at character 8 of the STC-S string: coordinate frame 'FK4' is not supported",
        ),
        (
            "SELECT a FROM t WHERE 1 = CONTAINS(POINT(ra, dec), REGION('circle 1 2'))",
            "22023",
            59,
            "Circle expects 3 numbers",
        ),
        (
            "SELECT a FROM t WHERE 1 = CONTAINS(POINT(ra, dec), REGION('Ellipse 1 2 3 4 5'))",
            "22023",
            59,
            "'Ellipse' is not an STC-S region",
        ),
        (
            "SELECT REGION('Union (Circle 0 0 1 Circle 5 5 1)') FROM t",
            "0A000",
            8,
            "STC-S operator Union",
        ),
        (
            "SELECT a FROM t WHERE 1 = CONTAINS(CIRCLE(ra, dec, 1), REGION('Not (Circle 0 0 1)'))",
            "0A000",
            27,
            "STC-S operator Not",
        ),
    ] {
        let e = adql_to_sql(adql).unwrap_err();
        assert_eq!(e.sqlstate(), state, "{adql}: {e}");
        assert_eq!(e.position(), at(1, column), "{adql}: {e}");
        assert!(e.message().contains(fragment), "{adql}: {e}");
    }
}

async fn run(ctx: &SessionContext, adql: &str) -> Vec<RecordBatch> {
    let sql = adql_to_sql(adql).unwrap_or_else(|e| panic!("{adql}: {e}"));
    ctx.sql(&sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn context() -> SessionContext {
    let ctx = SessionContext::new();
    crate::register_udfs(&ctx);
    let schema = Arc::new(Schema::new(vec![
        Field::new("ra", DataType::Float64, false),
        Field::new("dec", DataType::Float64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Float64Array::from(vec![359.9, 0.1, 180.0])),
            Arc::new(Float64Array::from(vec![0.0, 0.0, 89.9])),
        ],
    )
    .unwrap();
    let table = MemTable::try_new(schema, vec![vec![batch]]).unwrap();
    ctx.register_table("t", Arc::new(table)).unwrap();
    ctx
}

#[tokio::test]
async fn t50_translated_queries_run() {
    let ctx = context();
    // Point values carry their xtype to the output schema.
    let batches = run(
        &ctx,
        "SELECT POINT(ra, dec) AS p, CIRCLE(ra, dec, 1) AS c, BOX(ra, 0, 1, 1) AS b FROM t",
    )
    .await;
    let schema = batches[0].schema();
    for (i, xtype) in ["point", "circle", "polygon"].iter().enumerate() {
        assert_eq!(
            schema.field(i).metadata().get("xtype").map(String::as_str),
            Some(*xtype),
            "{}",
            schema.field(i)
        );
    }
    let points: &FixedSizeListArray = batches[0].column(0).as_fixed_size_list();
    assert_eq!(
        points
            .value(0)
            .as_primitive::<Float64Type>()
            .values()
            .to_vec(),
        vec![359.9, 0.0]
    );
    // Across RA = 0: both points near the wrap are within 0.2 degrees of (0, 0).
    let batches = run(
        &ctx,
        "SELECT COUNT(*) FROM t WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 0, 0, 0.2))",
    )
    .await;
    assert_eq!(
        batches[0]
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .value(0),
        2
    );
    // The same with value UDFs: a circle around the pole contains the third row only.
    let batches = run(
        &ctx,
        "SELECT ra FROM t WHERE CONTAINS(CENTROID(CIRCLE(ra, dec, 0.01)), CIRCLE(0, 90, 0.5)) = 1",
    )
    .await;
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    let batches = run(
        &ctx,
        "SELECT TOP 1 AREA(POLYGON('', 0,80, 270,80, 180,80, 90,80)), \
         CONTAINS(POINT('', 0, 90), POLYGON('', 0,80, 270,80, 180,80, 90,80)), \
         CONTAINS(POINT('', 0, -90), POLYGON('', 0,80, 270,80, 180,80, 90,80)), \
         COORDSYS(POINT(1, 2)), CAST('12.5 45' AS POINT), mod(7, 4), 5 ^ 3, ~5, log10(1000) FROM t",
    )
    .await;
    let b = &batches[0];
    let area = b.column(0).as_primitive::<Float64Type>().value(0);
    // The polygon is the spherical square inscribed in the cap dec > 80 with vertices on
    // it: 4 triangles pole-vi-vi+1, each of excess A+B+C-pi (independent check by the
    // spherical law of cosines).
    let side = (80f64.to_radians().sin().powi(2)
        + 80f64.to_radians().cos().powi(2) * 90f64.to_radians().cos())
    .acos();
    let (a_len, c_len) = (10f64.to_radians(), side);
    let base_angle =
        ((a_len.cos() - a_len.cos() * c_len.cos()) / (a_len.sin() * c_len.sin())).acos();
    let expected = 4.0
        * (std::f64::consts::FRAC_PI_2 + 2.0 * base_angle - std::f64::consts::PI)
        * (180.0 / std::f64::consts::PI).powi(2);
    assert!((area - expected).abs() < 1e-9, "{area} vs {expected}");
    assert_eq!(b.column(1).as_primitive::<Int32Type>().value(0), 1);
    assert_eq!(b.column(2).as_primitive::<Int32Type>().value(0), 0);
    assert_eq!(b.column(3).as_string::<i32>().value(0), "ICRS");
    let cast: &FixedSizeListArray = b.column(4).as_fixed_size_list();
    assert_eq!(
        cast.value(0)
            .as_primitive::<Float64Type>()
            .values()
            .to_vec(),
        vec![12.5, 45.0]
    );
    assert_eq!(
        b.schema()
            .field(4)
            .metadata()
            .get("xtype")
            .map(String::as_str),
        Some("point")
    );
    assert_eq!(
        b.column(5)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .value(0),
        3
    );
    assert_eq!(
        b.column(6)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .value(0),
        6
    );
    assert_eq!(
        b.column(7)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .value(0),
        -6
    );
    assert!((b.column(8).as_primitive::<Float64Type>().value(0) - 3.0).abs() < 1e-12);
    // REGION and the STC-S operators run: rows (359.9, 0), (0.1, 0), (180, 89.9).
    let count = |batches: Vec<RecordBatch>| {
        batches[0]
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .value(0)
    };
    for (adql, expected) in [
        ("REGION('CIRCLE ICRS 0 0 0.2')", 2),
        ("REGION('Circle 359.95 0 0.06')", 1),
        (
            "REGION('Union ICRS (Circle 359.95 0 0.06 Circle 0 90 0.2)')",
            2,
        ),
        ("REGION('Intersection (Circle 0 0 1 Box 0.5 0 1 1)')", 1),
        ("REGION('Not (Circle 0 0 1)')", 1),
        ("REGION('Polygon ICRS 0 80 120 80 240 80')", 1),
    ] {
        let query = format!("SELECT COUNT(*) FROM t WHERE 1 = CONTAINS(POINT(ra, dec), {adql})");
        assert_eq!(count(run(&ctx, &query).await), expected, "{query}");
    }
}
