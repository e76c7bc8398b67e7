//! Text-to-text tests of the ADQL geometry translation, errors and positions included.

use crate::translate_sql;

fn tr(sql: &str) -> String {
    match translate_sql(sql) {
        Ok(out) => out,
        Err(e) => panic!("translate_sql({sql:?}) failed: {e}"),
    }
}

fn err(sql: &str) -> (String, &'static str) {
    match translate_sql(sql) {
        Ok(out) => panic!("translate_sql({sql:?}) should fail, gave {out:?}"),
        Err(e) => (e.to_string(), e.sqlstate()),
    }
}

#[test]
fn t10_contains_circle() {
    assert_eq!(
        tr(
            "SELECT * FROM t WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), \
            CIRCLE('ICRS', 10.5, -28.9, 0.5))"
        ),
        "SELECT * FROM t WHERE 1 = scisql_s2ptincircle(ra, dec, 10.5, -28.9, 0.5)"
    );
    assert_eq!(
        tr(
            "select * from t where contains(point('icrs', t.ra, t.dec), \
            circle('ICRS GEOCENTER', point('ICRS', 359.9, -89.5), 1)) = 1"
        ),
        "SELECT * FROM t WHERE scisql_s2ptincircle(t.ra, t.dec, 359.9, -89.5, 1) = 1"
    );
    assert_eq!(
        tr("SELECT 1=CONTAINS(POINT('', ra, dec), CIRCLE(NULL, 1, 2, 3)) FROM t"),
        "SELECT 1 = scisql_s2ptincircle(ra, dec, 1, 2, 3) FROM t"
    );
    // ADQL 2.1 lets the coordinate system out.
    assert_eq!(
        tr("SELECT CONTAINS(POINT(ra, dec), CIRCLE(POINT(1, 2), 3)) FROM t"),
        "SELECT scisql_s2ptincircle(ra, dec, 1, 2, 3) FROM t"
    );
}

#[test]
fn t10_contains_box_and_polygon() {
    assert_eq!(
        tr(
            "SELECT * FROM t WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), \
            BOX('ICRS', 10, -28.9, 2, 1.5))"
        ),
        "SELECT * FROM t WHERE 1 = almagest_pt_in_adql_box(ra, dec, 10, -28.9, 2, 1.5)"
    );
    assert_eq!(
        tr(
            "SELECT * FROM t WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), \
            BOX('ICRS', POINT('ICRS', 10, 20), 2, 1))"
        ),
        "SELECT * FROM t WHERE 1 = almagest_pt_in_adql_box(ra, dec, 10, 20, 2, 1)"
    );
    assert_eq!(
        tr(
            "SELECT * FROM t WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), \
            POLYGON('ICRS', 10, -10, 12, -10, 11, -8.5))"
        ),
        "SELECT * FROM t WHERE 1 = scisql_s2ptincpoly(ra, dec, 10, -10, 12, -10, 11, -8.5)"
    );
    assert_eq!(
        tr(
            "SELECT * FROM t WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), \
            POLYGON('ICRS', POINT('ICRS', 10, -10), POINT('ICRS', 12, -10), \
            POINT('ICRS', 11, -8.5), POINT('ICRS', 10.5, -8)))"
        ),
        "SELECT * FROM t WHERE 1 = \
         scisql_s2ptincpoly(ra, dec, 10, -10, 12, -10, 11, -8.5, 10.5, -8)"
    );
}

#[test]
fn t10_intersects_either_order() {
    let expected = "SELECT * FROM t WHERE 1 = scisql_s2ptincircle(ra, dec, 10, 20, 0.1)";
    assert_eq!(
        tr(
            "SELECT * FROM t WHERE 1 = INTERSECTS(POINT('ICRS', ra, dec), \
            CIRCLE('ICRS', 10, 20, 0.1))"
        ),
        expected
    );
    assert_eq!(
        tr(
            "SELECT * FROM t WHERE 1 = INTERSECTS(CIRCLE('ICRS', 10, 20, 0.1), \
            POINT('ICRS', ra, dec))"
        ),
        expected
    );
}

#[test]
fn t10_distance_and_coordinates() {
    assert_eq!(
        tr(
            "SELECT DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 10, -28.9)) AS d \
            FROM t ORDER BY d"
        ),
        "SELECT scisql_s2angsep(ra, dec, 10, -28.9) AS d FROM t ORDER BY d"
    );
    assert_eq!(
        tr("SELECT a.id FROM a JOIN b ON DISTANCE(a.ra, a.dec, b.ra, b.dec) < 0.001"),
        "SELECT a.id FROM a JOIN b ON scisql_s2angsep(a.ra, a.dec, b.ra, b.dec) < 0.001"
    );
    assert_eq!(
        tr(
            "SELECT COORD1(POINT('ICRS', ra, dec)), coord2(POINT('ICRS', ra, dec + 1)) * 2 \
            FROM t"
        ),
        "SELECT ra, (dec + 1) * 2 FROM t"
    );
}

#[test]
fn t10_nested_and_combined() {
    assert_eq!(
        tr(
            "SELECT TOP 5 id FROM t WHERE id IN (SELECT id FROM u WHERE \
            1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 0, 90, 2))) \
            AND DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 0, 0)) > 1 ORDER BY id"
        ),
        "SELECT id FROM t WHERE id IN (SELECT id FROM u WHERE \
         1 = scisql_s2ptincircle(ra, dec, 0, 90, 2)) \
         AND scisql_s2angsep(ra, dec, 0, 0) > 1 ORDER BY id LIMIT 5"
    );
    // ADQL inside the coordinates of ADQL.
    assert_eq!(
        tr(
            "SELECT DISTANCE(POINT('ICRS', COORD1(POINT('ICRS', ra, dec)), dec), \
            POINT('ICRS', 1, 2)) FROM t"
        ),
        "SELECT scisql_s2angsep(ra, dec, 1, 2) FROM t"
    );
    assert_eq!(
        tr("EXPLAIN SELECT TOP 5 * FROM t WHERE \
            1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 1, 2, 3))"),
        "EXPLAIN SELECT * FROM t WHERE 1 = scisql_s2ptincircle(ra, dec, 1, 2, 3) LIMIT 5"
    );
}

#[test]
fn t10_names_are_case_insensitive_and_robust() {
    assert_eq!(
        tr(
            "SELECT \"CONTAINS\"(\"Point\"('ICRS', ra, dec), adql.circle('ICRS', 1, 2, 3)) \
            FROM t"
        ),
        "SELECT scisql_s2ptincircle(ra, dec, 1, 2, 3) FROM t"
    );
}

#[test]
fn t11_errors_name_their_position() {
    assert_eq!(
        err(
            "SELECT ra\nFROM t\nWHERE 1 = CONTAINS(POINT('FK5', ra, dec), \
             CIRCLE('ICRS', 1, 2, 3))"
        ),
        (
            "line 3, column 26: coordinate system 'FK5' is not supported: only ICRS is \
             supported"
                .to_string(),
            "22023"
        )
    );
    assert_eq!(
        err(
            "SELECT 1 FROM t WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), \
             CIRCLE('GALACTIC', 1, 2, 3))"
        )
        .0,
        "line 1, column 67: coordinate system 'GALACTIC' is not supported: only ICRS is \
         supported"
    );
    assert_eq!(
        err("SELECT DISTANCE(POINT('ICRS', ra, dec), 3) FROM t"),
        (
            "line 1, column 41: DISTANCE expects POINT values (a POINT, a CENTROID or a column)"
                .to_string(),
            "42883"
        )
    );
    assert_eq!(
        err("SELECT CONTAINS(POINT('ICRS', ra, dec), REGION('Circle 1 2')) FROM t"),
        (
            "line 1, column 48: REGION('Circle 1 2'), at character 11 of the STC-S string: \
             Circle expects 3 numbers (ra, dec, radius), found 2 numbers"
                .to_string(),
            "22023"
        )
    );
}

/// What the TAP path lowers to geometry values, this path now lowers the same way (these
/// were refused before the two paths shared their lowering).
#[test]
fn t10_geometry_values() {
    for (sql, expected) in [
        (
            "SELECT * FROM t WHERE 1 = CONTAINS(CIRCLE('ICRS', 1, 2, 3), CIRCLE('ICRS', 1, 2, 4))",
            "SELECT * FROM t WHERE 1 = adql_contains(adql_circle(1, 2, 3), adql_circle(1, 2, 4))",
        ),
        (
            "SELECT * FROM t WHERE 1 = CONTAINS(p, CIRCLE('ICRS', 1, 2, 3))",
            "SELECT * FROM t WHERE 1 = adql_contains(p, adql_circle(1, 2, 3))",
        ),
        (
            "SELECT POINT('ICRS', ra, dec) FROM t",
            "SELECT adql_point(ra, dec) FROM t",
        ),
        (
            "SELECT INTERSECTS(POINT('ICRS', ra, dec), POINT('ICRS', 1, 2))",
            "SELECT adql_intersects(adql_point(ra, dec), adql_point(1, 2))",
        ),
        (
            "SELECT INTERSECTS(CIRCLE('ICRS', 1, 2, 3), BOX('ICRS', 1, 2, 3, 4)) FROM t",
            "SELECT adql_intersects(adql_circle(1, 2, 3), adql_box(1, 2, 3, 4)) FROM t",
        ),
        ("SELECT COORD1(p) FROM t", "SELECT adql_coord1(p) FROM t"),
        (
            "SELECT AREA(CIRCLE('ICRS', 1, 2, 3)) FROM t",
            "SELECT adql_area(adql_circle(1, 2, 3)) FROM t",
        ),
        (
            "SELECT 1 FROM t WHERE CONTAINS(POINT(ra, dec), REGION('Circle ICRS 10 -20 1')) = 1",
            "SELECT 1 FROM t WHERE scisql_s2ptincircle(ra, dec, 10.0, -20.0, 1.0) = 1",
        ),
        // CONTAINS with no geometry argument stays DataFusion's string function.
        (
            "SELECT CONTAINS(name, 'x'), TOP_NAME FROM t",
            "SELECT CONTAINS(name, 'x'), TOP_NAME FROM t",
        ),
    ] {
        assert_eq!(tr(sql), expected, "{sql}");
    }
}

#[test]
fn t11_more_errors() {
    let cases: &[(&str, &str)] = &[
        (
            "SELECT CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 1, 2, 3), 4) FROM t",
            "42883",
        ),
        (
            "SELECT CONTAINS(POINT('ICRS', ra, dec), dec + 1) FROM t",
            "42883",
        ),
        ("SELECT INTERSECTS(ra, 2) FROM t", "42883"),
        ("SELECT DISTANCE(POINT('ICRS', ra, dec), 3) FROM t", "42883"),
        ("SELECT DISTANCE(ra, dec, 3) FROM t", "42883"),
        ("SELECT COORD1(ra + 1) FROM t", "42883"),
        ("SELECT AREA(1) FROM t", "42883"),
        ("SELECT REGION(name) FROM t", "0A000"),
        (
            "SELECT CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 1, 2)) FROM t",
            "42883",
        ),
        (
            "SELECT CONTAINS(POINT('ICRS', ra, dec), POLYGON('ICRS', 1, 2, 3, 4)) FROM t",
            "42883",
        ),
        (
            "SELECT CONTAINS(POINT('ICRS', ra, dec), POLYGON('ICRS', 1, 2, 3, 4, 5, 6, 7)) \
             FROM t",
            "42883",
        ),
        (
            "SELECT CONTAINS(POINT(sys, ra, dec), CIRCLE('ICRS', 1, 2, 3)) FROM t",
            "42883",
        ),
        (
            "SELECT CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 1, 2, 3)) \
             OVER () FROM t",
            "42601",
        ),
        (
            "SELECT DISTANCE(POINT('ICRS', ra, dec), POINT('J2000', 1, 2)) FROM t",
            "22023",
        ),
        (
            "SELECT REGION('Intersection (Circle 1 2 3 Circle 1 2 4)') FROM t",
            "0A000",
        ),
        (
            "SELECT CONTAINS(REGION('Union (Circle 1 2 3 Circle 1 2 4)'), \
             REGION('Not (Circle 1 2 3)')) FROM t",
            "0A000",
        ),
    ];
    for (sql, state) in cases {
        assert_eq!(err(sql).1, *state, "{sql}");
    }
}
