//! `extract_region` on the optimized plans of real queries, and the superset guarantee:
//! every row a query returns lies in the region extracted from its plan.

use almagest_adql::{adql_to_sql, extract_region, plan_filters, rewrite_areaspec, translate_sql};
use almagest_sky::Region;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{col, Expr, LogicalPlan};
use datafusion::prelude::SessionContext;

use crate::support::{context, floats, points, run};

/// The filters of a plan collected naively: Filter predicates and TableScan filters.
fn filters(plan: &LogicalPlan) -> Vec<Expr> {
    let mut out = Vec::new();
    let walk = plan.apply(|node| {
        match node {
            LogicalPlan::Filter(filter) => out.push(filter.predicate.clone()),
            LogicalPlan::TableScan(scan) => out.extend(scan.filters.iter().cloned()),
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    walk.expect("walking a plan");
    out
}

/// A short structural description of a region.
fn describe(region: &Region) -> String {
    let list = |parts: &[Region]| parts.iter().map(describe).collect::<Vec<_>>().join(", ");
    match region {
        Region::Circle(c) => format!("Circle({}, {}, {})", c.ra(), c.dec(), c.radius_deg()),
        Region::LonLatBox(b) => format!(
            "LonLatBox({}, {}, {}, {})",
            b.ra_min(),
            b.dec_min(),
            b.ra_max(),
            b.dec_max()
        ),
        Region::Polygon(p) => format!("Polygon({})", p.vertices().len()),
        Region::And(parts) => format!("And({})", list(parts)),
        Region::Or(parts) => format!("Or({})", list(parts)),
    }
}

async fn region_of(ctx: &SessionContext, sql: &str) -> Option<Region> {
    let plan = match ctx.sql(sql).await {
        Ok(df) => df.into_optimized_plan().expect("an optimized plan"),
        Err(e) => panic!("{sql}: {e}"),
    };
    extract_region(&plan_filters(&plan), "ra", "dec")
}

/// Every row `sql` (which selects ra, dec) returns must lie in `region`.
async fn assert_superset(ctx: &SessionContext, sql: &str, region: &Region) -> usize {
    let batches = run(ctx, sql).await.expect(sql);
    let (ras, decs) = (floats(&batches, 0), floats(&batches, 1));
    for (ra, dec) in ras.iter().zip(&decs) {
        let (ra, dec) = (ra.expect("ra"), dec.expect("dec"));
        assert!(
            region.contains(ra, dec),
            "{sql}: row ({ra}, {dec}) is outside {}",
            describe(region)
        );
    }
    ras.len()
}

#[tokio::test]
async fn t30_regions_of_optimized_plans() {
    let ctx = context(&points(3000, 30));
    let cases: &[(&str, Option<&str>)] = &[
        (
            "WHERE scisql_s2PtInCircle(ra, dec, 10, -28.9, 0.5) = 1",
            Some("Circle(10, -28.9, 0.5)"),
        ),
        (
            "WHERE 1 = scisql_s2PtInCircle(ra, dec, 359.8, -28.9, 1.5) AND mag < 20",
            Some("Circle(359.8, -28.9, 1.5)"),
        ),
        (
            "WHERE CAST(scisql_s2PtInCircle(ra, dec, 10, -28.9, 0.25 * 2) AS BIGINT) = 1.0",
            Some("Circle(10, -28.9, 0.5)"),
        ),
        (
            "WHERE scisql_s2PtInCircle(t.ra, t.dec, -0.5, 90, 5) = 1",
            Some("Circle(359.5, 90, 5)"),
        ),
        (
            "WHERE scisql_s2AngSep(ra, dec, 10, 20) < 1",
            Some("Circle(10, 20, 1.000000001)"),
        ),
        (
            "WHERE 2 >= scisql_s2AngSep(10, 20, ra, dec)",
            Some("Circle(10, 20, 2.000000001)"),
        ),
        (
            "WHERE scisql_s2AngSep(ra, dec, 0, -90) BETWEEN 1 AND 4",
            Some("Circle(0, -90, 4.000000001)"),
        ),
        (
            "WHERE scisql_s2AngSep(ra, dec, 180, 45) > 1 AND scisql_s2AngSep(ra, dec, 180, 45) < 6",
            Some("Circle(180, 45, 6.000000001)"),
        ),
        (
            "WHERE scisql_s2PtInBox(ra, dec, 350, -10, 10, 10) = 1",
            Some("LonLatBox(350, -10, 10, 10)"),
        ),
        (
            "WHERE scisql_s2PtInCPoly(ra, dec, 9, -30, 11.5, -29.5, 10, -27.5) = 1",
            Some("Polygon(3)"),
        ),
        (
            "WHERE almagest_pt_in_adql_box(ra, dec, 359.8, -28.9, 3, 2) = 1",
            Some("Polygon(4)"),
        ),
        (
            "WHERE scisql_s2PtInCircle(ra, dec, 0, 0, 3) = 1 \
             AND scisql_s2PtInBox(ra, dec, 358, -10, 2, 10) = 1 AND mag > 12",
            Some("And(Circle(0, 0, 3), LonLatBox(358, -10, 2, 10))"),
        ),
        (
            "WHERE scisql_s2PtInCircle(ra, dec, 0, 0, 3) = 1 \
             OR scisql_s2PtInBox(ra, dec, 170, 40, 190, 50) = 1",
            Some("Or(Circle(0, 0, 3), LonLatBox(170, 40, 190, 50))"),
        ),
        (
            "WHERE (scisql_s2PtInCircle(ra, dec, 0, 0, 3) = 1 \
             OR scisql_s2AngSep(ra, dec, 180, 45) < 5 \
             OR scisql_s2PtInBox(ra, dec, 170, 40, 190, 50) = 1) \
             AND mag < 20 AND scisql_s2AngSep(ra, dec, 0, 0) <= 10",
            Some(
                "And(Or(Circle(0, 0, 3), Circle(180, 45, 5.000000001), \
                 LonLatBox(170, 40, 190, 50)), Circle(0, 0, 10.000000001))",
            ),
        ),
        (
            "WHERE scisql_s2PtInCircle(ra, dec, 0, 0, 3) = 1 OR mag < 20",
            None,
        ),
        ("WHERE mag < 20", None),
        ("WHERE scisql_s2PtInCircle(dec, ra, 0, 0, 3) = 1", None),
        ("WHERE scisql_s2PtInCircle(ra, dec, 0, 0, 3) = 0", None),
        ("WHERE scisql_s2PtInCircle(ra, dec, 0, mag, 3) = 1", None),
        ("WHERE scisql_s2AngSep(ra, dec, 0, 0) > 3", None),
        (
            "WHERE NOT (scisql_s2PtInCircle(ra, dec, 0, 0, 3) = 1)",
            None,
        ),
    ];
    for (where_clause, expected) in cases {
        let sql = format!("SELECT ra, dec FROM t {where_clause}");
        let region = region_of(&ctx, &sql).await;
        assert_eq!(region.as_ref().map(describe).as_deref(), *expected, "{sql}");
        if let Some(region) = region {
            assert!(
                assert_superset(&ctx, &sql, &region).await > 0,
                "{sql} is empty"
            );
        }
    }
}

#[tokio::test]
async fn t30_regions_of_translated_adql() {
    let ctx = context(&points(3000, 31));
    let cases = [
        (
            "SELECT ra, dec FROM t WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), \
             CIRCLE('ICRS', 0, 90, 5))",
            "Circle(0, 90, 5)",
        ),
        (
            "SELECT TOP 100000 ra, dec FROM t WHERE 1 = INTERSECTS(POLYGON('ICRS', \
             355, -5, 5, -5, 5, 5, 355, 5), POINT('ICRS', ra, dec)) ORDER BY dec",
            "Polygon(4)",
        ),
        (
            "SELECT ra, dec FROM t WHERE CONTAINS(POINT('ICRS', ra, dec), \
             BOX('ICRS', 10, -28.9, 2, 1)) = 1",
            "Polygon(4)",
        ),
        (
            "SELECT ra, dec FROM t WHERE DISTANCE(POINT('ICRS', ra, dec), \
             POINT('ICRS', 359.8, -28.9)) < 1.5",
            "Circle(359.8, -28.9, 1.500000001)",
        ),
    ];
    for (adql, expected) in cases {
        let sql = translate_sql(adql).expect(adql);
        let region = region_of(&ctx, &sql).await;
        assert_eq!(
            region.as_ref().map(describe).as_deref(),
            Some(expected),
            "{sql}"
        );
        if let Some(region) = region {
            assert!(
                assert_superset(&ctx, &sql, &region).await > 0,
                "{sql} is empty"
            );
        }
    }
}

/// Strict ADQL: REGION strings, the generic geometry-value predicates (when the printer
/// cannot use a scisql call) with the constant shape folded by the optimizer, the STC-S
/// operators, and a polygon beyond a hemisphere. Every region is exactly as expected and
/// holds every row the query returns.
#[tokio::test]
async fn t30_regions_of_strict_adql() {
    let ctx = context(&points(3000, 33));
    let zigzag: Vec<String> = (0..8)
        .map(|k| format!("{}, {}", 360 - 45 * k, if k % 2 == 0 { 10 } else { -10 }))
        .collect();
    let zigzag = zigzag.join(", ");
    let cases: Vec<(String, Option<&str>)> = vec![
        (
            "1 = CONTAINS(POINT('ICRS', ra, dec), REGION('CIRCLE ICRS 0 90 5'))".into(),
            Some("Circle(0, 90, 5)"),
        ),
        (
            "1 = INTERSECTS(REGION('Box 359.8 -28.9 3 2'), POINT(ra, dec))".into(),
            Some("Polygon(4)"),
        ),
        (
            "CONTAINS(POINT(ra, dec), REGION('Polygon ICRS 9 -30 11.5 -29.5 10 -27.5')) = 1".into(),
            Some("Polygon(3)"),
        ),
        // Generic forms: adql_contains/adql_intersects of the position and a folded value.
        (
            "1 = CONTAINS(POINT(ra, dec), CAST('9 -30 11.5 -29.5 10 -27.5' AS POLYGON))".into(),
            Some("Polygon(3)"),
        ),
        (
            "1 = CONTAINS(POINT(ra, dec), POLYGON(POINT(9, -30), POINT(11.5, -29.5), \
             CENTROID(CIRCLE(10, -27.5, 1))))"
                .into(),
            Some("Polygon(3)"),
        ),
        (
            "1 = INTERSECTS(CIRCLE(CENTROID(CIRCLE(10, 20, 1)), 2), POINT(ra, dec))".into(),
            Some("Circle(10, 20, 2)"),
        ),
        (
            "1 = CONTAINS(POINT(ra, dec), CAST('10 20 3' AS CIRCLE))".into(),
            Some("Circle(10, 20, 3)"),
        ),
        (
            "1 = CONTAINS(POINT(ra, dec), POINT(0, 0))".into(),
            Some("Circle(0, 0, 0.000000001)"),
        ),
        // STC-S operators.
        (
            "1 = CONTAINS(POINT(ra, dec), REGION('Union ICRS (Circle 10 -28.9 1 Circle 0 90 5)'))"
                .into(),
            Some("Or(Circle(10, -28.9, 1), Circle(0, 90, 5))"),
        ),
        (
            "1 = CONTAINS(POINT(ra, dec), \
             REGION('Intersection (Circle 10 -28.9 3 Box 10 -28.9 2 2)'))"
                .into(),
            Some("And(Circle(10, -28.9, 3), Polygon(4))"),
        ),
        (
            "1 = INTERSECTS(POINT(ra, dec), REGION('Union (Circle 10 -28.9 1 \
             Intersection (Circle 0 0 3 Not (Circle 0 0 1)))'))"
                .into(),
            Some("Or(Circle(10, -28.9, 1), Circle(0, 0, 3))"),
        ),
        (
            "1 = CONTAINS(POINT(ra, dec), REGION('Not (Circle 0 0 10)'))".into(),
            None,
        ),
        (
            "1 = CONTAINS(POINT(ra, dec), REGION('Union (Circle 0 0 1 Not (Circle 0 0 10))'))"
                .into(),
            None,
        ),
        // Beyond a hemisphere: the zig-zag ring around the equator, westward, holds the
        // north pole.
        (
            format!("1 = CONTAINS(POINT(ra, dec), POLYGON({zigzag}))"),
            Some("Polygon(8)"),
        ),
        // Not a position test.
        (
            "1 = CONTAINS(CIRCLE(ra, dec, 1), CIRCLE(0, 0, 5))".into(),
            None,
        ),
        ("1 = CONTAINS(CIRCLE(0, 0, 1), POINT(ra, dec))".into(), None),
    ];
    for (condition, expected) in cases {
        let adql = format!("SELECT ra, dec FROM t WHERE {condition}");
        let sql = adql_to_sql(&adql).unwrap_or_else(|e| panic!("{adql}: {e}"));
        let region = region_of(&ctx, &sql).await;
        assert_eq!(region.as_ref().map(describe).as_deref(), expected, "{sql}");
        if let Some(region) = region {
            assert!(
                assert_superset(&ctx, &sql, &region).await > 0,
                "{sql} is empty"
            );
        }
    }
}

#[tokio::test]
async fn t30_areaspec_regions_and_rewrite() {
    let ctx = context(&points(3000, 32));
    let sql = "SELECT ra, dec FROM t WHERE qserv_areaspec_circle(10, -28.9, 2) AND mag < 25";
    let plan = ctx
        .sql(sql)
        .await
        .expect(sql)
        .into_optimized_plan()
        .expect("an optimized plan");
    let found = filters(&plan);
    assert!(found.iter().any(almagest_adql::contains_areaspec));
    let region = extract_region(&found, "ra", "dec").expect("an areaspec region");
    assert_eq!(describe(&region), "Circle(10, -28.9, 2)");

    // The coordinator's rewrite, then the same region from the rewritten filter, which
    // runs.
    let rewritten: Vec<Expr> = found
        .into_iter()
        .map(|f| rewrite_areaspec(f, col("ra"), col("dec")).expect("rewrite"))
        .collect();
    assert!(!rewritten.iter().any(almagest_adql::contains_areaspec));
    let region = extract_region(&rewritten, "ra", "dec").expect("a rewritten region");
    assert_eq!(describe(&region), "Circle(10, -28.9, 2)");
    let mut df = ctx.table("t").await.expect("table t");
    for filter in rewritten {
        df = df.filter(filter).expect("filter");
    }
    let batches = df
        .select_columns(&["ra", "dec"])
        .expect("projection")
        .collect()
        .await
        .expect("running the rewritten filter");
    let (ras, decs) = (floats(&batches, 0), floats(&batches, 1));
    assert!(!ras.is_empty());
    for (ra, dec) in ras.into_iter().zip(decs) {
        let (ra, dec) = (ra.expect("ra"), dec.expect("dec"));
        assert!(region.contains(ra, dec), "({ra}, {dec})");
    }

    for (sql, expected) in [
        (
            "SELECT ra, dec FROM t WHERE qserv_areaspec_box(350, -10, 10, 10)",
            "LonLatBox(350, -10, 10, 10)",
        ),
        (
            "SELECT ra, dec FROM t WHERE qserv_areaspec_poly(9, -30, 11.5, -29.5, 10, -27.5)",
            "Polygon(3)",
        ),
    ] {
        let region = region_of(&ctx, sql).await.expect(sql);
        assert_eq!(describe(&region), expected);
    }
}
