//! Tests of the geometry-value functions against independent computations.

use super::*;

#[test]
fn t10_area_of_caps_and_polygons() {
    // A hemisphere is 2*pi sr = 20626.48... deg^2 (the whole sky is 41252.96 deg^2).
    let hemisphere = 360.0 * 360.0 / PI / 2.0;
    assert!((area(&Value::Circle(10.0, 20.0, 90.0)).unwrap() - hemisphere).abs() < 1e-9);
    // The octant triangle (0,0), (90,0), (0,90) is an eighth of the sky, either orientation.
    let octant = 360.0 * 360.0 / PI / 8.0;
    for v in [
        vec![(0.0, 0.0), (90.0, 0.0), (0.0, 90.0)],
        vec![(0.0, 90.0), (90.0, 0.0), (0.0, 0.0)],
    ] {
        assert!((area(&Value::Polygon(v)).unwrap() - octant).abs() < 1e-9);
    }
}

/// A zig-zag ring around the equator (dec +-10, every 45 degrees of RA): westward it holds
/// the north pole (counter-clockwise seen from inside the sphere), eastward the south one.
fn ring(westward: bool) -> Value {
    let mut v: Vec<(f64, f64)> = (0..8)
        .map(|k| {
            (
                360.0 - 45.0 * f64::from(k),
                if k % 2 == 0 { 10.0 } else { -10.0 },
            )
        })
        .collect();
    if !westward {
        v.reverse();
    }
    Value::Polygon(v)
}

#[test]
fn t25_polygons_beyond_a_hemisphere_and_large_circles() {
    let (north, south) = (ring(true), ring(false));
    let sky = 360.0 * 360.0 / PI;
    assert!((area(&north).unwrap() + area(&south).unwrap() - sky).abs() < 1e-6);
    assert!(contains(&Value::Point(0.0, 90.0), &north).unwrap());
    assert!(!contains(&Value::Point(0.0, -90.0), &north).unwrap());
    assert!(contains(&Value::Point(0.0, -90.0), &south).unwrap());
    // Caps inside and across the boundary (which reaches dec 10 at RA 0, -10 at RA 45).
    assert!(contains(&Value::Circle(0.0, 90.0, 70.0), &north).unwrap());
    assert!(!contains(&Value::Circle(0.0, 90.0, 85.0), &north).unwrap());
    assert!(contains(&Value::Circle(22.5, 5.0, 1.0), &north).unwrap());
    assert!(!contains(&Value::Circle(0.0, 0.0, 1.0), &north).unwrap());
    // Polygons in caps larger than a hemisphere.
    assert!(contains(&north, &Value::Circle(0.0, 90.0, 120.0)).unwrap());
    assert!(!contains(&north, &Value::Circle(0.0, 90.0, 95.0)).unwrap());
    let square = Value::Polygon(vec![(359.0, -1.0), (1.0, -1.0), (1.0, 1.0), (359.0, 1.0)]);
    assert!(contains(&square, &Value::Circle(0.0, 0.0, 100.0)).unwrap());
    assert!(contains(&square, &Value::Circle(90.0, 0.0, 91.5)).unwrap());
    assert!(!contains(&square, &Value::Circle(90.0, 0.0, 90.5)).unwrap());
    assert!(!contains(&square, &Value::Circle(180.0, 0.0, 100.0)).unwrap());
    assert!(contains(&square, &Value::Circle(7.0, 3.0, 180.0)).unwrap());
    assert!(contains(
        &Value::Circle(0.0, 0.0, 10.0),
        &Value::Circle(180.0, 0.0, 180.0)
    )
    .unwrap());
    // Polygons in polygons and meeting ones.
    let high = Value::Polygon(vec![(359.0, 49.0), (1.0, 49.0), (1.0, 51.0), (359.0, 51.0)]);
    let low = Value::Polygon(vec![
        (359.0, -49.0),
        (1.0, -49.0),
        (1.0, -51.0),
        (359.0, -51.0),
    ]);
    assert!(contains(&high, &north).unwrap() && !contains(&low, &north).unwrap());
    assert!(!contains(&north, &high).unwrap());
    assert!(intersects(&north, &south).unwrap());
    assert!(!intersects(&Value::Circle(0.0, -90.0, 5.0), &north).unwrap());
    assert!(intersects(&Value::Circle(0.0, -90.0, 85.0), &north).unwrap());
    assert!(!intersects(&low, &north).unwrap() && intersects(&low, &south).unwrap());
}

#[test]
fn t20_contains_and_intersects_across_ra_zero_and_poles() {
    let wrap = Value::Circle(359.5, 0.0, 1.0);
    assert!(contains(&Value::Point(0.4, 0.0), &wrap).unwrap());
    assert!(!contains(&Value::Point(0.6, 0.0), &wrap).unwrap());
    assert!(contains(&Value::Circle(0.0, 0.0, 0.4), &wrap).unwrap());
    assert!(!contains(&Value::Circle(0.0, 0.0, 0.6), &wrap).unwrap());
    assert!(intersects(&Value::Circle(1.0, 0.0, 0.6), &wrap).unwrap());
    let square = Value::Polygon(vec![(359.0, -1.0), (1.0, -1.0), (1.0, 1.0), (359.0, 1.0)]);
    assert!(contains(&Value::Point(0.0, 0.0), &square).unwrap());
    assert!(contains(&Value::Circle(0.0, 0.0, 0.5), &square).unwrap());
    assert!(!contains(&Value::Circle(0.0, 0.0, 1.5), &square).unwrap());
    assert!(contains(&square, &Value::Circle(0.0, 0.0, 1.5)).unwrap());
    assert!(intersects(&square, &Value::Circle(2.0, 0.0, 1.5)).unwrap());
    assert!(!intersects(&square, &Value::Circle(3.0, 0.0, 1.5)).unwrap());
    let cap = Value::Polygon(vec![
        (0.0, 80.0),
        (90.0, 80.0),
        (180.0, 80.0),
        (270.0, 80.0),
    ]);
    assert!(contains(&Value::Point(123.0, 90.0), &cap).unwrap());
    assert!(contains(&Value::Circle(45.0, 89.0, 1.0), &cap).unwrap());
    let other = Value::Polygon(vec![
        (45.0, 85.0),
        (135.0, 85.0),
        (225.0, 85.0),
        (315.0, 85.0),
    ]);
    assert!(contains(&other, &cap).unwrap());
    assert!(intersects(&other, &cap).unwrap());
}

#[test]
fn t30_centroid_and_text() {
    let (ra, dec) = centroid(&Value::Polygon(vec![(359.0, 0.0), (1.0, 0.0), (0.0, 1.0)]));
    assert!(ra < 1e-9 || ra > 360.0 - 1e-9, "{ra}");
    // Unit vectors (cos 1, -sin 1, 0), (cos 1, sin 1, 0), (cos 1, 0, sin 1) sum to
    // (3 cos 1, 0, sin 1).
    let expected = (1f64.to_radians().sin() / (3.0 * 1f64.to_radians().cos()))
        .atan()
        .to_degrees();
    assert!((dec - expected).abs() < 1e-12, "{dec} vs {expected}");
    assert_eq!(
        parse_text("1 2 3", "circle").unwrap(),
        Value::Circle(1.0, 2.0, 3.0)
    );
    assert!(parse_text("1 2 3", "point").is_err());
}
