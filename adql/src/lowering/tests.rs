//! The two front ends lower the same ADQL geometry to the same calls.

use crate::{adql_to_sql, translate_sql};

/// Both translations of `SELECT <select> FROM t`, which must agree.
fn both(select: &str) -> String {
    let query = format!("SELECT {select} FROM t");
    let tap = adql_to_sql(&query).unwrap_or_else(|e| panic!("TAP: {query}: {e}"));
    let pgwire = translate_sql(&query).unwrap_or_else(|e| panic!("pgwire: {query}: {e}"));
    assert_eq!(tap, pgwire, "{query}");
    pgwire
}

#[test]
fn t10_both_front_ends_emit_the_same_calls() {
    let cases = [
        (
            "CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 10, 20, 1))",
            "scisql_s2ptincircle(ra, dec, 10, 20, 1)",
        ),
        (
            "INTERSECTS(BOX(POINT(1, 2), 3, 4), POINT(ra, dec))",
            "almagest_pt_in_adql_box(ra, dec, 1, 2, 3, 4)",
        ),
        (
            "CONTAINS(POINT(ra, dec), POLYGON(POINT(1, 2), POINT(3, 4), POINT(5, 6)))",
            "scisql_s2ptincpoly(ra, dec, 1, 2, 3, 4, 5, 6)",
        ),
        (
            "DISTANCE(POINT(ra, dec), POINT('', 1, 2))",
            "scisql_s2angsep(ra, dec, 1, 2)",
        ),
        ("DISTANCE(1, 2, 3, 4)", "scisql_s2angsep(1, 2, 3, 4)"),
        ("POINT('ICRS', ra, dec)", "adql_point(ra, dec)"),
        (
            "AREA(CIRCLE('ICRS', 10, 20, 1))",
            "adql_area(adql_circle(10, 20, 1))",
        ),
        (
            "CENTROID(POLYGON(0, 0, 1, 0, 0, 1))",
            "adql_centroid(adql_polygon(0, 0, 1, 0, 0, 1))",
        ),
        (
            "COORDSYS(POINT(ra, dec))",
            "adql_coordsys(adql_point(ra, dec))",
        ),
        ("COORD1(p)", "adql_coord1(p)"),
        (
            "COORD2(CENTROID(CIRCLE(1, 2, 3)))",
            "adql_coord2(adql_centroid(adql_circle(1, 2, 3)))",
        ),
        (
            "CIRCLE(CENTROID(BOX(1, 2, 3, 4)), 5)",
            "adql_circle(adql_coord1(adql_centroid(adql_box(1, 2, 3, 4))), \
             adql_coord2(adql_centroid(adql_box(1, 2, 3, 4))), 5)",
        ),
        (
            "POLYGON(p, q, POINT(1, 2))",
            "adql_polygon(adql_coord1(p), adql_coord2(p), adql_coord1(q), adql_coord2(q), \
             adql_coord1(adql_point(1, 2)), adql_coord2(adql_point(1, 2)))",
        ),
        (
            "CONTAINS(CIRCLE(1, 2, 3), CIRCLE(1, 2, 4))",
            "adql_contains(adql_circle(1, 2, 3), adql_circle(1, 2, 4))",
        ),
        (
            "CONTAINS(POINT(ra, dec), POINT(1, 2))",
            "adql_contains(adql_point(ra, dec), adql_point(1, 2))",
        ),
        ("INTERSECTS(c, p)", "adql_intersects(c, p)"),
        (
            "DISTANCE(p, POINT(1, 2))",
            "adql_distance(p, adql_point(1, 2))",
        ),
        (
            "CONTAINS(POINT(ra, dec), REGION('Circle ICRS 10 20 1'))",
            "scisql_s2ptincircle(ra, dec, 10.0, 20.0, 1.0)",
        ),
        (
            "REGION('Polygon 1 2 3 4 5 6')",
            "adql_polygon(1.0, 2.0, 3.0, 4.0, 5.0, 6.0)",
        ),
        (
            "AREA(REGION('Box 0 0 2 1'))",
            "adql_area(adql_box(0.0, 0.0, 2.0, 1.0))",
        ),
        (
            "INTERSECTS(REGION('Union (Circle 0 0 1 Circle 5 5 1)'), c)",
            "greatest(adql_intersects(adql_circle(0.0, 0.0, 1.0), c), \
             adql_intersects(adql_circle(5.0, 5.0, 1.0), c))",
        ),
    ];
    for (select, expected) in cases {
        let expected = format!("SELECT {expected} FROM t");
        assert_eq!(both(select), expected, "{select}");
    }
}

#[test]
fn t10_stcs_operators_against_a_point() {
    // The TAP printer parenthesizes every binary operation; the calls are the same.
    let query = "SELECT a FROM t WHERE CONTAINS(POINT(ra, dec), \
                 REGION('Union ICRS (Circle 0 0 1 Intersection (Circle 10 0 2 Not (Box 10 0 1 1)))')) = 1";
    let calls = "greatest(scisql_s2ptincircle(ra, dec, 0.0, 0.0, 1.0), \
                 least(scisql_s2ptincircle(ra, dec, 10.0, 0.0, 2.0), \
                 (1 - almagest_pt_in_adql_box(ra, dec, 10.0, 0.0, 1.0, 1.0))))";
    assert_eq!(
        translate_sql(query).unwrap(),
        format!("SELECT a FROM t WHERE {calls} = 1")
    );
    assert_eq!(
        adql_to_sql(query).unwrap(),
        format!("SELECT a FROM t WHERE ({calls} = 1)")
    );
}

#[test]
fn t11_both_front_ends_refuse_the_same() {
    for (query, state, fragment) in [
        (
            "SELECT REGION('Union (Circle 0 0 1 Circle 5 5 1)') FROM t",
            "0A000",
            "STC-S operator Union",
        ),
        (
            "SELECT 1 FROM t WHERE 1 = CONTAINS(CIRCLE(ra, dec, 1), REGION('Not (Circle 0 0 1)'))",
            "0A000",
            "STC-S operator Not",
        ),
        (
            "SELECT REGION('Circle FK4 10 10 1') FROM t",
            "22023",
            "at character 8 of the STC-S string: coordinate frame 'FK4' is not supported",
        ),
        (
            "SELECT POINT('GALACTIC', 1, 2) FROM t",
            "22023",
            "coordinate system 'GALACTIC' is not supported: only ICRS is supported",
        ),
    ] {
        for (path, result) in [
            ("TAP", adql_to_sql(query)),
            ("pgwire", translate_sql(query)),
        ] {
            let e = result.expect_err(query);
            assert_eq!(e.sqlstate(), state, "{path}: {query}: {e}");
            assert!(e.message().contains(fragment), "{path}: {query}: {e}");
            assert!(e.position().is_some(), "{path}: {query}: {e}");
        }
    }
}
