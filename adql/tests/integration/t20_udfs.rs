//! The geometry UDFs evaluated by DataFusion over a MemTable, row for row against
//! brute-force formulas (haversine, same-side-of-every-edge), poles and RA 0/360 included.

use std::collections::HashMap;

use crate::support::{context, floats, haversine_deg, in_convex_polygon, ints, points, run, Row};

/// Rows this close (degrees) to a circle's rim are skipped: there the brute force and the
/// code under test may round differently.
const RIM: f64 = 1e-9;

async fn predicate_by_id(rows: &[Row], call: &str) -> HashMap<i64, Option<i64>> {
    let ctx = context(rows);
    let sql = format!("SELECT id, {call} FROM t");
    let batches = match run(&ctx, &sql).await {
        Ok(b) => b,
        Err(e) => panic!("{sql}: {e}"),
    };
    let ids = ints(&batches, 0);
    let values = ints(&batches, 1);
    ids.into_iter()
        .map(|id| id.expect("ids are not null"))
        .zip(values)
        .collect()
}

#[tokio::test]
async fn t20_pt_in_circle_matches_haversine() {
    let rows = points(3000, 20);
    let circles = [
        (0.0, 90.0, 5.0),
        (123.0, -90.0, 3.0),
        (0.0, 0.0, 2.5),
        (359.8, -28.9, 1.5),
        (360.0, 0.0, 0.75),
        (-0.2, -28.9, 1.5),
        (10.0, -28.9, 0.5),
        (180.0, 45.0, 60.0),
        (10.0, 20.0, 0.0),
        (10.0, 20.0, 180.0),
    ];
    for (cra, cdec, r) in circles {
        let got = predicate_by_id(
            &rows,
            &format!("scisql_s2PtInCircle(ra, dec, {cra}, {cdec}, {r})"),
        )
        .await;
        let mut inside = 0;
        for row in &rows {
            let d = haversine_deg(row.ra, row.dec, cra, cdec);
            if (d - r).abs() < RIM {
                continue;
            }
            let expected = i64::from(d <= r);
            inside += expected;
            assert_eq!(
                got[&row.id],
                Some(expected),
                "circle ({cra}, {cdec}, {r}) and point ({}, {}) at {d} degrees",
                row.ra,
                row.dec
            );
        }
        if r > 0.0 {
            assert!(
                inside > 0,
                "circle ({cra}, {cdec}, {r}) holds no test point"
            );
        }
    }
}

#[tokio::test]
async fn t20_pt_in_circle_per_row_shapes_and_integers() {
    // Shape arguments from columns take the per-row path.
    let rows = points(500, 21);
    let ctx = context(&rows);
    let sql = "SELECT id, scisql_s2ptincircle(ra, dec, ra + 0.3, dec * 0.99, mag / 30) FROM t";
    let batches = run(&ctx, sql).await.expect(sql);
    let ids = ints(&batches, 0);
    let values = ints(&batches, 1);
    let by_id: HashMap<i64, &Row> = rows.iter().map(|r| (r.id, r)).collect();
    for (id, value) in ids.into_iter().zip(values) {
        let row = by_id[&id.expect("id")];
        let (cra, cdec, r) = (row.ra + 0.3, row.dec * 0.99, row.mag / 30.0);
        let d = haversine_deg(row.ra, row.dec, cra, cdec);
        if (d - r).abs() < RIM {
            continue;
        }
        assert_eq!(value, Some(i64::from(d <= r)), "{row:?}");
    }
    // Integer literals and an Int32 expression are coerced.
    let batches = run(
        &ctx,
        "SELECT scisql_s2PtInCircle(CAST(1 AS INT), 0, 0, 0, 2)",
    )
    .await
    .expect("integer arguments");
    assert_eq!(ints(&batches, 0), vec![Some(1)]);
}

#[tokio::test]
async fn t20_pt_in_box_with_wrap_and_poles() {
    let rows = points(3000, 22);
    let boxes = [
        (350.0, -10.0, 10.0, 10.0),
        (355.0, -35.0, 5.0, -20.0),
        (0.0, 80.0, 360.0, 90.0),
        (100.0, -90.0, 200.0, -85.0),
        (-10.0, -5.0, 10.0, 5.0),
        (10.0, -30.0, 12.0, -28.0),
    ];
    for (ra_min, dec_min, ra_max, dec_max) in boxes {
        let got = predicate_by_id(
            &rows,
            &format!("scisql_s2PtInBox(ra, dec, {ra_min}, {dec_min}, {ra_max}, {dec_max})"),
        )
        .await;
        let (lo, hi) = (
            f64::rem_euclid(ra_min, 360.0),
            f64::rem_euclid(ra_max, 360.0),
        );
        let full = ra_max - ra_min >= 360.0;
        let mut inside = 0;
        for row in &rows {
            let ra = row.ra.rem_euclid(360.0);
            let in_ra = full
                || row.dec.abs() == 90.0
                || if lo <= hi {
                    lo <= ra && ra <= hi
                } else {
                    ra >= lo || ra <= hi
                };
            let expected = i64::from(in_ra && dec_min <= row.dec && row.dec <= dec_max);
            inside += expected;
            assert_eq!(
                got[&row.id],
                Some(expected),
                "box ({ra_min}, {dec_min}, {ra_max}, {dec_max}) and {row:?}"
            );
        }
        assert!(
            inside > 0,
            "box ({ra_min}, {dec_min}, {ra_max}, {dec_max}) is empty"
        );
    }
}

#[tokio::test]
async fn t20_pt_in_convex_polygon() {
    let rows = points(3000, 23);
    let polygons: [&[(f64, f64)]; 4] = [
        // Straddles RA 0.
        &[(355.0, -5.0), (5.0, -5.0), (5.0, 5.0), (355.0, 5.0)],
        // Around the north pole, clockwise seen from outside.
        &[(0.0, 80.0), (270.0, 80.0), (180.0, 80.0), (90.0, 80.0)],
        // A triangle near (10, -28.9).
        &[(9.0, -30.0), (11.5, -29.5), (10.0, -27.5)],
        // A big one.
        &[(150.0, 20.0), (210.0, 20.0), (210.0, 70.0), (150.0, 70.0)],
    ];
    for vertices in polygons {
        let args: Vec<String> = vertices.iter().map(|(r, d)| format!("{r}, {d}")).collect();
        let got = predicate_by_id(
            &rows,
            &format!("scisql_s2PtInCPoly(ra, dec, {})", args.join(", ")),
        )
        .await;
        let mut inside = 0;
        for row in &rows {
            let Some(expected) = in_convex_polygon(vertices, row.ra, row.dec, 1e-9) else {
                continue;
            };
            inside += i64::from(expected);
            assert_eq!(
                got[&row.id],
                Some(i64::from(expected)),
                "polygon {vertices:?} and {row:?}"
            );
        }
        assert!(inside > 0, "polygon {vertices:?} is empty");
    }
}

#[tokio::test]
async fn t20_pt_in_adql_box_is_a_great_circle_polygon() {
    let rows = points(3000, 24);
    for (cra, cdec, w, h) in [
        (0.0, 0.0, 4.0, 3.0),
        (10.0, -28.9, 2.0, 1.0),
        (359.8, -28.9, 3.0, 2.0),
        (180.0, 45.0, 20.0, 10.0),
    ] {
        let got = predicate_by_id(
            &rows,
            &format!("almagest_pt_in_adql_box(ra, dec, {cra}, {cdec}, {w}, {h})"),
        )
        .await;
        let corners = [
            (cra - w / 2.0, cdec - h / 2.0),
            (cra + w / 2.0, cdec - h / 2.0),
            (cra + w / 2.0, cdec + h / 2.0),
            (cra - w / 2.0, cdec + h / 2.0),
        ];
        let mut inside = 0;
        for row in &rows {
            let Some(expected) = in_convex_polygon(&corners, row.ra, row.dec, 1e-9) else {
                continue;
            };
            inside += i64::from(expected);
            assert_eq!(
                got[&row.id],
                Some(i64::from(expected)),
                "BOX {corners:?} and {row:?}"
            );
        }
        assert!(inside > 0);
    }
}

#[tokio::test]
async fn t20_angular_separation_matches_haversine() {
    let rows = points(2000, 25);
    let ctx = context(&rows);
    for (ra, dec) in [
        (0.0, 90.0),
        (0.0, -90.0),
        (360.0, 0.0),
        (359.8, -28.9),
        (10.0, 20.0),
    ] {
        let sql = format!("SELECT ra, dec, scisql_s2AngSep(ra, dec, {ra}, {dec}) FROM t");
        let batches = run(&ctx, &sql).await.expect(&sql);
        let (ras, decs, seps) = (
            floats(&batches, 0),
            floats(&batches, 1),
            floats(&batches, 2),
        );
        assert_eq!(seps.len(), rows.len());
        for i in 0..seps.len() {
            let (r, d) = (ras[i].expect("ra"), decs[i].expect("dec"));
            let expected = haversine_deg(r, d, ra, dec);
            let got = seps[i].expect("a separation");
            assert!(
                (got - expected).abs() < 1e-7,
                "({r}, {d}) to ({ra}, {dec}): got {got}, haversine {expected}"
            );
        }
    }
    let batches = run(
        &ctx,
        "SELECT scisql_s2AngSep(0, 0, 90, 0), scisql_s2AngSep(10, 90, 250, 89)",
    )
    .await
    .expect("constant separations");
    let [a, b] = [floats(&batches, 0)[0], floats(&batches, 1)[0]].map(|v| v.expect("value"));
    assert!(
        (a - 90.0).abs() < 1e-12 && (b - 1.0).abs() < 1e-12,
        "{a} {b}"
    );
}

#[tokio::test]
async fn t20_nulls_propagate() {
    let ctx = context(&points(10, 26));
    let batches = run(
        &ctx,
        "SELECT scisql_s2PtInCircle(NULL, dec, 0, 0, 1), scisql_s2PtInCircle(ra, dec, 0, NULL, 1), \
         scisql_s2PtInBox(ra, NULL, 0, 0, 1, 1), scisql_s2PtInCPoly(ra, dec, 0, 0, 1, 0, NULL, 1), \
         almagest_pt_in_adql_box(ra, dec, 0, 0, NULL, 1) FROM t",
    )
    .await
    .expect("nulls");
    for i in 0..5 {
        assert!(ints(&batches, i).iter().all(Option::is_none), "column {i}");
    }
    let batches = run(
        &ctx,
        "SELECT scisql_s2AngSep(ra, dec, NULL, 1), scisql_s2AngSep(NULL, 1, 2, 3) FROM t",
    )
    .await
    .expect("null separations");
    assert!(floats(&batches, 0).iter().all(Option::is_none));
    assert!(floats(&batches, 1).iter().all(Option::is_none));
}

async fn error_of(sql: &str) -> String {
    let ctx = context(&points(10, 27));
    match run(&ctx, sql).await {
        Ok(_) => panic!("{sql} should fail"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn t21_invalid_shapes_are_clear_errors() {
    let e = error_of("SELECT scisql_s2PtInCircle(ra, dec, 0, 0, -1) FROM t").await;
    assert!(
        e.contains("scisql_s2ptincircle: invalid circle") && e.contains("radius"),
        "{e}"
    );
    let e = error_of("SELECT scisql_s2PtInCPoly(ra, dec, 0, 0, 1, 1) FROM t").await;
    assert!(
        e.contains("scisql_s2ptincpoly called with 6 arguments"),
        "{e}"
    );
    let e = error_of("SELECT scisql_s2PtInCPoly(ra, dec, 0, 0, 1, 0, 2, 0) FROM t").await;
    assert!(e.contains("invalid polygon"), "{e}");
    let e = error_of("SELECT scisql_s2PtInBox(ra, dec, 0, 10, 1, 5) FROM t").await;
    assert!(e.contains("invalid box"), "{e}");
    let e = error_of("SELECT almagest_pt_in_adql_box(ra, dec, 0, 89, 1, 5) FROM t").await;
    assert!(e.contains("invalid BOX"), "{e}");
    let e = error_of("SELECT scisql_s2PtInCircle(ra, dec, 'a', 0, 1) FROM t").await;
    assert!(e.contains("argument 3 must be a number"), "{e}");
    let e = error_of("SELECT scisql_s2AngSep(ra, dec, 1) FROM t").await;
    assert!(e.contains("scisql_s2angsep called with 3 arguments"), "{e}");
    let e =
        error_of("SELECT scisql_s2PtInCircle(ra, dec, 0, 0, CAST('NaN' AS DOUBLE)) FROM t").await;
    assert!(e.contains("finite"), "{e}");
}

#[tokio::test]
async fn t21_areaspec_outside_a_partitioned_query_fails() {
    for (name, args) in [
        ("qserv_areaspec_circle", "1, 2, 3"),
        ("qserv_areaspec_box", "1, 2, 3, 4"),
        ("qserv_areaspec_poly", "0, 0, 1, 0, 0, 1"),
    ] {
        let e = error_of(&format!("SELECT id FROM t WHERE {name}({args})")).await;
        assert!(
            e.contains(&format!(
                "{name}() must appear in the WHERE clause of a query over a partitioned table"
            )),
            "{e}"
        );
    }
}

#[tokio::test]
async fn t22_translated_adql_runs() {
    let rows = points(2000, 28);
    let ctx = context(&rows);
    let adql = "SELECT TOP 1000 id FROM t WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), \
                CIRCLE('ICRS', 359.8, -28.9, 1.5)) ORDER BY id";
    let sql = almagest_adql::translate_sql(adql).expect("translation");
    let batches = run(&ctx, &sql).await.expect(&sql);
    let got: Vec<i64> = ints(&batches, 0)
        .into_iter()
        .map(|v| v.expect("id"))
        .collect();
    let mut expected: Vec<i64> = rows
        .iter()
        .filter(|r| haversine_deg(r.ra, r.dec, 359.8, -28.9) <= 1.5)
        .map(|r| r.id)
        .collect();
    expected.sort();
    expected.truncate(1000);
    assert!(!expected.is_empty());
    assert_eq!(got, expected);
}

#[tokio::test]
async fn t22_translations_plan_in_datafusion() {
    let rows = points(200, 29);
    let ctx = context(&rows);
    ctx.register_table("u", ctx.table_provider("t").await.expect("t"))
        .expect("registering u");
    for adql in [
        "SELECT TOP 1 ra FROM t UNION ALL SELECT TOP 2 dec FROM u",
        "SELECT TOP 3 COORD1(POINT('ICRS', ra, dec)) AS a, COORD2(POINT('ICRS', ra, dec + 1)) * 2 \
         FROM t ORDER BY a DESC",
        "EXPLAIN SELECT TOP 5 * FROM t WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), \
         CIRCLE('ICRS', 10, -28.9, 1))",
        "SELECT TOP 2 a FROM (SELECT TOP 5 ra AS a FROM t ORDER BY ra) AS s \
         WHERE a IN (SELECT TOP 1 ra FROM u ORDER BY ra)",
        "SELECT t.id, u.id FROM t JOIN u ON DISTANCE(POINT('ICRS', t.ra, t.dec), \
         POINT('ICRS', u.ra, u.dec)) < 0.5 WHERE t.id < u.id",
        "SELECT COUNT(*) FROM t WHERE 1 = INTERSECTS(BOX('ICRS', POINT('ICRS', 0, 0), 10, 10), \
         POINT('ICRS', ra, dec)) OR CONTAINS(POINT(ra, dec), POLYGON(POINT(0, 80), \
         POINT(90, 80), POINT(180, 80))) = 1",
    ] {
        let sql = almagest_adql::translate_sql(adql).expect(adql);
        if let Err(e) = run(&ctx, &sql).await {
            panic!("{adql}\n  translated to {sql}\n  fails: {e}");
        }
    }
}
