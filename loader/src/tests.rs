//! Tests of the loader: the partition/spill/sort/encode stages against brute-force
//! references, error messages for malformed input, and the load protocol against an
//! in-process fake coordinator and workers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{
    Array, AsArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ArrowWriter;
use indicatif::ProgressBar;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

// ------------------------------------------------------------------- fixtures

/// A test row: key, position, and a magnitude that is sometimes NULL.
#[derive(Debug, Clone, Copy)]
struct Star {
    id: i64,
    ra: f64,
    dec: f64,
    mag: Option<f64>,
}

/// Seeded stars over the whole sky, with extra weight at the poles, on the RA wrap, and
/// exact duplicates of positions.
fn stars(n: usize, seed: u64) -> Vec<Star> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let (ra, dec) = match i % 10 {
            0 => (rng.random_range(0.0..360.0), rng.random_range(85.0..=90.0)),
            1 => (
                rng.random_range(0.0..360.0),
                rng.random_range(-90.0..=-85.0),
            ),
            2 => (
                if rng.random_bool(0.5) {
                    rng.random_range(0.0..0.5)
                } else {
                    rng.random_range(359.5..360.0)
                },
                rng.random_range(-60.0..60.0),
            ),
            3 if i > 10 => {
                let prev: &Star = &out[i - 7];
                (prev.ra, prev.dec)
            }
            _ => {
                let z: f64 = rng.random_range(-1.0..=1.0);
                (rng.random_range(0.0..360.0), z.asin().to_degrees())
            }
        };
        let mag = (!rng.random_bool(0.1)).then(|| rng.random_range(10.0..21.0));
        out.push(Star {
            id: 1000 + i as i64,
            ra,
            dec,
            mag,
        });
    }
    out[0].dec = 90.0;
    out[1].dec = -90.0;
    out[2].ra = 0.0;
    out[3].ra = 360.0;
    out
}

fn write_csv(path: &Path, rows: &[Star]) {
    let mut s = String::from("id,ra,dec,mag\n");
    for r in rows {
        let mag = r.mag.map(|m| m.to_string()).unwrap_or_default();
        s.push_str(&format!("{},{:?},{:?},{}\n", r.id, r.ra, r.dec, mag));
    }
    fs::write(path, s).unwrap();
}

fn stars_batch(rows: &[Star]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("ra", DataType::Float64, false),
        Field::new("dec", DataType::Float64, false),
        Field::new("mag", DataType::Float64, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.id))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.ra))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.dec))),
            Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.mag))),
        ],
    )
    .unwrap()
}

fn write_parquet(path: &Path, batch: &RecordBatch) {
    let mut w =
        ArrowWriter::try_new(fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

fn read_parquet(bytes: &[u8]) -> RecordBatch {
    let builder = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes.to_vec())).unwrap();
    let schema = Arc::clone(builder.schema());
    let batches: Vec<_> = builder.build().unwrap().map(|b| b.unwrap()).collect();
    // A chunk of only overlap rows has an empty primary file.
    concat_batches(&schema, &batches).unwrap()
}

fn director_roles() -> ColumnRoles {
    ColumnRoles {
        ra: Some("ra".into()),
        dec: Some("dec".into()),
        key: Some("id".into()),
        ..ColumnRoles::default()
    }
}

fn director_layout(input: &InputSet, depth: u8, margin: f64) -> Layout {
    Layout::Director(PartitionSpec {
        ra: input.column_index("ra").unwrap(),
        dec: input.column_index("dec").unwrap(),
        key: input.column_index("id"),
        chunk_depth: depth,
        overlap_deg: margin,
    })
}

/// Partitions files as a director table (spilling often) and returns the table.
fn partition_director(files: &[PathBuf], depth: u8, margin: f64, spill: &Path) -> PartitionedTable {
    let input = InputSet::inspect(files, &director_roles()).unwrap();
    let layout = director_layout(&input, depth, margin);
    let spill = SpillOptions {
        dir: Some(spill.to_path_buf()),
        memory_rows: 257,
    };
    partition(&input, &layout, &spill, &ProgressBar::hidden()).unwrap()
}

fn ids(batch: &RecordBatch) -> Vec<i64> {
    batch
        .column_by_name("id")
        .unwrap()
        .as_primitive::<Int64Type>()
        .values()
        .to_vec()
}

fn f64s<'a>(batch: &'a RecordBatch, name: &str) -> &'a Float64Array {
    batch
        .column_by_name(name)
        .unwrap()
        .as_primitive::<Float64Type>()
}

/// Everything a partitioned table stores, decoded: chunk -> (primary rows, overlap rows).
fn decode_all(table: &PartitionedTable) -> BTreeMap<u64, (RecordBatch, Option<RecordBatch>)> {
    table
        .stored_chunks()
        .into_iter()
        .map(|c| {
            let enc = table.encode_chunk(c).unwrap();
            assert_eq!(enc.chunk, c);
            let primary = read_parquet(&enc.primary);
            assert_eq!(primary.num_rows() as u64, enc.rows);
            let overlap = enc.overlap.as_deref().map(read_parquet);
            assert_eq!(
                overlap.as_ref().map_or(0, |b| b.num_rows() as u64),
                enc.overlap_rows
            );
            (c, (primary, overlap))
        })
        .collect()
}

fn assert_sorted_by_hpx(batch: &RecordBatch) {
    let hpx = batch
        .column_by_name(HPX_COLUMN)
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!(batch.schema().fields().last().unwrap().name(), HPX_COLUMN);
    assert!(
        hpx.values().windows(2).all(|w| w[0] <= w[1]),
        "not sorted by _hpx"
    );
    let (ra, dec) = (f64s(batch, "ra"), f64s(batch, "dec"));
    for i in 0..batch.num_rows() {
        assert_eq!(
            hpx.value(i) as u64,
            almagest_sky::hpx29(ra.value(i), dec.value(i))
        );
    }
}

// ------------------------------------------------- independent sphere geometry

fn unit(ra: f64, dec: f64) -> [f64; 3] {
    let (a, d) = (ra.to_radians(), dec.to_radians());
    [d.cos() * a.cos(), d.cos() * a.sin(), d.sin()]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn normalized(v: [f64; 3]) -> [f64; 3] {
    let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    [v[0] / n, v[1] / n, v[2] / n]
}

/// Points at angular distance `dist_deg` from (ra, dec), `n` bearings around it; built
/// with a tangent basis, so it works at the poles too.
fn ring(ra: f64, dec: f64, dist_deg: f64, n: usize) -> Vec<(f64, f64)> {
    let p = unit(ra, dec);
    let helper = if p[2].abs() < 0.9 {
        [0.0, 0.0, 1.0]
    } else {
        [1.0, 0.0, 0.0]
    };
    let e1 = normalized(cross(helper, p));
    let e2 = cross(p, e1);
    let (s, c) = dist_deg.to_radians().sin_cos();
    (0..n)
        .map(|k| {
            let t = std::f64::consts::TAU * k as f64 / n as f64;
            let (st, ct) = t.sin_cos();
            let q = [
                p[0] * c + (e1[0] * ct + e2[0] * st) * s,
                p[1] * c + (e1[1] * ct + e2[1] * st) * s,
                p[2] * c + (e1[2] * ct + e2[2] * st) * s,
            ];
            let dec = q[2].clamp(-1.0, 1.0).asin().to_degrees();
            let ra = q[1].atan2(q[0]).to_degrees().rem_euclid(360.0);
            (ra, dec)
        })
        .collect()
}

/// The chunk of a position, computed with cdshealpix directly (not through `sky`). A pole
/// is one point whatever its RA: like `sky`, hash it with RA 0.
fn chunk_brute(ra: f64, dec: f64, depth: u8) -> u64 {
    let ra = if dec.abs() >= 90.0 { 0.0 } else { ra };
    let lat = dec
        .to_radians()
        .clamp(-std::f64::consts::FRAC_PI_2, std::f64::consts::FRAC_PI_2);
    cdshealpix::nested::hash(
        depth,
        ra.to_radians().rem_euclid(std::f64::consts::TAU),
        lat,
    )
}

/// Chunks hit by sample points within `radius` of a position (dense rings).
fn chunks_within(
    ra: f64,
    dec: f64,
    depth: u8,
    radius: f64,
    rings: usize,
    bearings: usize,
) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    for k in 1..=rings {
        for (r, d) in ring(ra, dec, radius * k as f64 / rings as f64, bearings) {
            out.insert(chunk_brute(r, d, depth));
        }
    }
    out
}

// ------------------------------------------------------------- partitioning

#[test]
fn t10_ingest_every_row_lands_in_exactly_one_primary_chunk_sorted() {
    let dir = tempfile::tempdir().unwrap();
    // Several input batches, each over the memory budget of 257 rows.
    let rows = stars(3 * INPUT_BATCH_ROWS + 100, 1);
    let csv = dir.path().join("stars.csv");
    write_csv(&csv, &rows);
    let spill = dir.path().join("spill");
    fs::create_dir(&spill).unwrap();
    let depth = 3;
    let table = partition_director(&[csv], depth, 1.0, &spill);
    assert_eq!(table.flushes(), 4, "the small budget should force spills");
    assert_eq!(table.rows(), rows.len() as u64);

    let by_id: HashMap<i64, Star> = rows.iter().map(|r| (r.id, *r)).collect();
    let mut seen = BTreeSet::new();
    let decoded = decode_all(&table);
    for (chunk, (primary, _)) in &decoded {
        assert_sorted_by_hpx(primary);
        let (ra, dec, mag) = (
            f64s(primary, "ra"),
            f64s(primary, "dec"),
            f64s(primary, "mag"),
        );
        for (i, id) in ids(primary).into_iter().enumerate() {
            assert!(seen.insert(id), "row {id} stored twice");
            let star = by_id[&id];
            assert_eq!((ra.value(i), dec.value(i)), (star.ra, star.dec));
            assert_eq!(mag.is_valid(i).then(|| mag.value(i)), star.mag);
            assert_eq!(
                chunk_brute(star.ra, star.dec, depth),
                *chunk,
                "row {id} in the wrong chunk"
            );
        }
    }
    assert_eq!(seen.len(), rows.len(), "every row stored once");
    // Spill files are removed with the table.
    drop(decoded);
    drop(table);
    assert_eq!(fs::read_dir(&spill).unwrap().count(), 0);
}

#[test]
fn t11_ingest_overlap_rows_are_those_within_the_margin_of_another_chunk() {
    for (depth, margin, seed) in [(3u8, 1.0, 2u64), (5, 0.1, 3)] {
        let dir = tempfile::tempdir().unwrap();
        let rows = stars(1500, seed);
        let csv = dir.path().join("stars.csv");
        write_csv(&csv, &rows);
        let table = partition_director(&[csv], depth, margin, dir.path());
        let decoded = decode_all(&table);
        let stored: BTreeSet<u64> = decoded.keys().copied().collect();

        // id -> chunks whose overlap file holds it.
        let mut in_overlap: HashMap<i64, BTreeSet<u64>> = HashMap::new();
        for (chunk, (_, overlap)) in &decoded {
            if let Some(o) = overlap {
                assert_sorted_by_hpx(o);
                for id in ids(o) {
                    assert!(
                        in_overlap.entry(id).or_default().insert(*chunk),
                        "duplicate overlap row"
                    );
                }
            }
        }
        let mut overlap_rows = 0;
        let mut beyond = 0;
        for star in &rows {
            let own = chunk_brute(star.ra, star.dec, depth);
            let got = in_overlap.remove(&star.id).unwrap_or_default();
            overlap_rows += got.len();
            assert!(
                !got.contains(&own),
                "row {} in its own chunk's overlap",
                star.id
            );
            // No chunk within the margin is missed (samples strictly inside the margin).
            let must: BTreeSet<u64> =
                chunks_within(star.ra, star.dec, depth, margin * 0.999, 4, 90)
                    .into_iter()
                    .filter(|c| *c != own && stored.contains(c))
                    .collect();
            assert!(
                must.is_subset(&got),
                "row {} at ({}, {}): chunks {:?} within {margin} deg are missing from {:?}",
                star.id,
                star.ra,
                star.dec,
                must,
                got
            );
            // The routing is exactly sky's overlap set (restricted to stored chunks) ...
            let sky: BTreeSet<u64> = almagest_sky::overlap_chunks(star.ra, star.dec, depth, margin)
                .into_iter()
                .filter(|c| stored.contains(c))
                .collect();
            assert_eq!(got, sky, "row {}", star.id);
            // ... which may be conservative, but not wildly so.
            let near = chunks_within(star.ra, star.dec, depth, margin * 4.0, 16, 360);
            assert!(
                got.is_subset(&near),
                "row {}: {:?} beyond 4 margins",
                star.id,
                got
            );
            let close = chunks_within(star.ra, star.dec, depth, margin * 1.02, 8, 360);
            beyond += got.difference(&close).count();
        }
        assert!(in_overlap.is_empty());
        assert_eq!(overlap_rows as u64, table.overlap_rows());
        assert!(
            overlap_rows > 100,
            "the test should exercise overlaps ({overlap_rows})"
        );
        eprintln!(
            "depth {depth}, margin {margin}: {overlap_rows} overlap rows, {beyond} beyond 1.02 margins"
        );
    }
}

#[test]
fn t12_ingest_parquet_inputs_with_narrow_types_and_several_files() {
    let dir = tempfile::tempdir().unwrap();
    let rows = stars(2000, 4);
    let mut files = Vec::new();
    for (k, part) in rows.chunks(700).enumerate() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("ra", DataType::Float32, true),
            Field::new("dec", DataType::Float32, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from_iter_values(
                    part.iter().map(|r| r.id as i32),
                )),
                Arc::new(Float32Array::from_iter_values(
                    part.iter().map(|r| r.ra as f32),
                )),
                Arc::new(Float32Array::from_iter_values(
                    part.iter().map(|r| (r.dec as f32).clamp(-90.0, 90.0)),
                )),
                Arc::new(StringArray::from_iter_values(
                    part.iter().map(|r| format!("s{}", r.id)),
                )),
            ],
        )
        .unwrap();
        let path = dir.path().join(format!("part{k}.parquet"));
        write_parquet(&path, &batch);
        files.push(path);
    }
    let input = InputSet::inspect(&files, &director_roles()).unwrap();
    assert_eq!(input.schema.field(1).data_type(), &DataType::Float32);
    let layout = director_layout(&input, 4, 0.5);
    let table = partition(
        &input,
        &layout,
        &SpillOptions::default(),
        &ProgressBar::hidden(),
    )
    .unwrap();
    assert_eq!(table.rows(), 2000);
    let mut n = 0;
    for (chunk, (primary, _)) in decode_all(&table) {
        assert_eq!(primary.schema().field(1).data_type(), &DataType::Float32);
        let ra = primary
            .column(1)
            .as_primitive::<datafusion::arrow::datatypes::Float32Type>();
        let dec = primary
            .column(2)
            .as_primitive::<datafusion::arrow::datatypes::Float32Type>();
        for i in 0..primary.num_rows() {
            assert_eq!(
                chunk_brute(ra.value(i) as f64, dec.value(i) as f64, 4),
                chunk
            );
        }
        n += primary.num_rows();
    }
    assert_eq!(n, 2000);
}

#[test]
fn t13_ingest_replicated_table_is_one_chunk_in_input_order() {
    let dir = tempfile::tempdir().unwrap();
    let rows = stars(5000, 5);
    let csv = dir.path().join("small.csv");
    write_csv(&csv, &rows);
    let input = InputSet::inspect(&[csv], &ColumnRoles::default()).unwrap();
    let spill = SpillOptions {
        dir: None,
        memory_rows: 1000,
    };
    let table = partition(&input, &Layout::Replicated, &spill, &ProgressBar::hidden()).unwrap();
    assert_eq!(table.stored_chunks(), vec![0]);
    let enc = table.encode_chunk(0).unwrap();
    assert!(enc.overlap.is_none());
    let batch = read_parquet(&enc.primary);
    assert!(batch.column_by_name(HPX_COLUMN).is_none());
    assert_eq!(ids(&batch), rows.iter().map(|r| r.id).collect::<Vec<_>>());
}

#[test]
fn t14_ingest_chunk_files_are_laid_out_for_pruning() {
    let dir = tempfile::tempdir().unwrap();
    // 20,000 rows in a small patch: one chunk at depth 2, several row groups.
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let rows: Vec<Star> = (0..20_000)
        .map(|i| Star {
            id: i,
            ra: rng.random_range(40.0..41.0),
            dec: rng.random_range(10.0..11.0),
            mag: Some(15.0),
        })
        .collect();
    let path = dir.path().join("patch.parquet");
    write_parquet(&path, &stars_batch(&rows));
    let input = InputSet::inspect(&[path], &director_roles()).unwrap();
    let table = partition(
        &input,
        &director_layout(&input, 2, 0.1),
        &SpillOptions::default(),
        &ProgressBar::hidden(),
    )
    .unwrap();
    let chunks = table.stored_chunks();
    assert_eq!(chunks.len(), 1);
    let out = dir.path().join("chunks");
    let summary = table.write_parquet_dir(&out).unwrap();
    assert_eq!(summary[0].rows, 20_000);
    let file = fs::File::open(out.join(format!("chunk_{}.parquet", chunks[0]))).unwrap();
    let options = datafusion::parquet::arrow::arrow_reader::ArrowReaderOptions::new()
        .with_page_index_policy(datafusion::parquet::file::metadata::PageIndexPolicy::Required);
    let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(file, options).unwrap();
    let meta = builder.metadata();
    assert_eq!(meta.num_row_groups(), 3);
    let hpx_idx = meta.file_metadata().schema_descr().num_columns() - 1;
    let mut last_max = i64::MIN;
    for rg in meta.row_groups() {
        assert!(rg.num_rows() as usize <= ROW_GROUP_ROWS);
        let col = rg.column(hpx_idx);
        assert_eq!(
            col.compression(),
            datafusion::parquet::basic::Compression::LZ4_RAW
        );
        let stats = col.statistics().expect("row-group statistics");
        let min = i64::from_le_bytes(stats.min_bytes_opt().unwrap().try_into().unwrap());
        let max = i64::from_le_bytes(stats.max_bytes_opt().unwrap().try_into().unwrap());
        assert!(
            last_max <= min && min <= max,
            "row groups are ordered by _hpx"
        );
        last_max = max;
        let sorting = rg.sorting_columns().expect("sorting columns recorded");
        assert_eq!(sorting[0].column_idx as usize, hpx_idx);
    }
    // Page-level statistics: a column index with several pages per row group.
    let column_index = meta.column_index().expect("page index written");
    let offsets = meta.offset_index().expect("offset index written");
    assert_eq!(column_index.len(), 3);
    assert!(offsets[0][hpx_idx].page_locations().len() >= ROW_GROUP_ROWS / PAGE_ROWS);
}

// ------------------------------------------------------------ input errors

fn partition_err(files: &[PathBuf]) -> String {
    let result = InputSet::inspect(files, &director_roles()).and_then(|input| {
        let layout = director_layout(&input, 3, 0.1);
        partition(
            &input,
            &layout,
            &SpillOptions::default(),
            &ProgressBar::hidden(),
        )
    });
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => {
            assert!(matches!(e, LoaderError::BadInput(_)), "{e:?}");
            e.to_string()
        }
    }
}

/// A CSV file of `n` good rows, with line `bad_line` (the header is line 1) replaced.
fn csv_with_bad_line(dir: &Path, name: &str, n: usize, bad_line: usize, bad: &str) -> PathBuf {
    let rows = stars(n, 7);
    let path = dir.join(name);
    write_csv(&path, &rows);
    let text = fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[bad_line - 1] = bad;
    fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

#[test]
fn t20_ingest_bad_csv_number_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    // After the rows used for type inference, in the first batch and in a later one.
    for line in [1500usize, INPUT_BATCH_ROWS + 900] {
        let path = csv_with_bad_line(dir.path(), "bad.csv", 10_000, line, "77,12.5,1x.5,3");
        let msg = partition_err(&[path]);
        assert!(msg.contains("bad.csv"), "{msg}");
        assert!(msg.contains(&format!("line {line}:")), "{msg}");
        assert!(msg.contains("'1x.5'") && msg.contains("\"dec\""), "{msg}");
    }
    // In a position column within the inference rows: still the line, not just "not numeric".
    let path = csv_with_bad_line(dir.path(), "early.csv", 100, 7, "77,abc,1.5,3");
    let msg = partition_err(&[path]);
    assert!(
        msg.contains("early.csv, line 7:") && msg.contains("'abc'"),
        "{msg}"
    );
}

#[test]
fn t21_ingest_wrong_csv_column_count_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    for (line, bad) in [
        (1200usize, "77,12.5,1.5"),
        (5000, "77,12.5,1.5,3,4"),
        (4, "1,2"),
    ] {
        let path = csv_with_bad_line(dir.path(), "short.csv", 9000, line, bad);
        let msg = partition_err(&[path]);
        assert!(
            msg.contains("short.csv") && msg.contains(&format!("line {line}")),
            "{msg}"
        );
    }
}

#[test]
fn t22_ingest_missing_or_non_numeric_columns_name_file_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stars.csv");
    write_csv(&path, &stars(10, 8));
    let roles = ColumnRoles {
        ra: Some("RA_ICRS".into()),
        dec: Some("dec".into()),
        key: Some("id".into()),
        ..ColumnRoles::default()
    };
    let msg = InputSet::inspect(&[path.clone()], &roles)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("stars.csv") && msg.contains("\"RA_ICRS\"") && msg.contains("not found"),
        "{msg}"
    );

    let names = dir.path().join("names.csv");
    fs::write(&names, "id,ra,dec\n1,one,2\n2,two,3\n").unwrap();
    let msg = partition_err(&[names]);
    assert!(
        msg.contains("names.csv, line 2") && msg.contains("'one'"),
        "{msg}"
    );

    let text = dir.path().join("text.parquet");
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("ra", DataType::Utf8, false),
            Field::new("dec", DataType::Float64, false),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(StringArray::from(vec!["10"])),
            Arc::new(Float64Array::from(vec![1.0])),
        ],
    )
    .unwrap();
    write_parquet(&text, &batch);
    let msg = InputSet::inspect(&[text], &director_roles())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("text.parquet") && msg.contains("\"ra\"") && msg.contains("numeric"),
        "{msg}"
    );
}

#[test]
fn t23_ingest_bad_positions_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    for (bad, what) in [
        ("77,,1.5,3", "NULL"),
        ("77,NaN,1.5,3", "finite"),
        ("77,10,90.5,3", "outside [-90, 90]"),
        ("77,-0.5,9,3", "outside [0, 360]"),
        ("77,360.5,9,3", "outside [0, 360]"),
        (",1,2,3", "key column \"id\" is NULL"),
    ] {
        let path = csv_with_bad_line(dir.path(), "pos.csv", 3000, 2500, bad);
        let msg = partition_err(&[path]);
        assert!(
            msg.contains("pos.csv, line 2500:") && msg.contains(what),
            "{bad}: {msg}"
        );
    }
    // Parquet rows are numbered from 1.
    let mut rows = stars(100, 9);
    rows[41].dec = -91.0;
    let path = dir.path().join("pos.parquet");
    write_parquet(&path, &stars_batch(&rows));
    let msg = partition_err(&[path]);
    assert!(
        msg.contains("pos.parquet, row 42:") && msg.contains("\"dec\""),
        "{msg}"
    );
}

#[test]
fn t24_ingest_truncated_or_corrupt_parquet_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.parquet");
    write_parquet(&good, &stars_batch(&stars(5000, 10)));
    let bytes = fs::read(&good).unwrap();

    let truncated = dir.path().join("truncated.parquet");
    fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let msg = partition_err(&[good.clone(), truncated]);
    assert!(
        msg.contains("truncated.parquet") && msg.contains("Parquet"),
        "{msg}"
    );

    let garbage = dir.path().join("garbage.parquet");
    fs::write(&garbage, b"PAR1 this is not parquet at all PAR1").unwrap();
    let msg = partition_err(&[garbage]);
    assert!(msg.contains("garbage.parquet"), "{msg}");

    // Footer intact, data pages overwritten: found while reading, still names the file.
    let mut corrupt = bytes.clone();
    for b in &mut corrupt[8..bytes.len() / 3] {
        *b = 0xA5;
    }
    let path = dir.path().join("corrupt.parquet");
    fs::write(&path, &corrupt).unwrap();
    let msg = partition_err(&[path]);
    assert!(msg.contains("corrupt.parquet"), "{msg}");
}

#[test]
fn t25_ingest_files_must_share_columns() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.csv");
    write_csv(&a, &stars(10, 11));
    let b = dir.path().join("b.csv");
    fs::write(&b, "id,ra,decl,mag\n1,2,3,4\n").unwrap();
    let msg = InputSet::inspect(&[a.clone(), b], &ColumnRoles::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("b.csv") && msg.contains("a.csv"), "{msg}");

    // Integers in one CSV and decimals in another unify as Float64.
    let c = dir.path().join("c.csv");
    fs::write(&c, "id,ra,dec,mag\n1,2,3,4\n").unwrap();
    let input = InputSet::inspect(&[c, a.clone()], &director_roles()).unwrap();
    assert_eq!(
        input.schema.field_with_name("mag").unwrap().data_type(),
        &DataType::Float64
    );

    // A Parquet file whose column types differ from a CSV's is refused, naming it.
    let p = dir.path().join("p.parquet");
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("ra", DataType::Float64, false),
            Field::new("dec", DataType::Float64, false),
            Field::new("mag", DataType::Float64, true),
        ])),
        vec![
            Arc::new(StringArray::from(vec!["x"])),
            Arc::new(Float64Array::from(vec![1.0])),
            Arc::new(Float64Array::from(vec![1.0])),
            Arc::new(Float64Array::from(vec![Some(1.0)])),
        ],
    )
    .unwrap();
    write_parquet(&p, &batch);
    let msg = InputSet::inspect(&[a, p], &director_roles())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("p.parquet") && msg.contains("\"id\""), "{msg}");
}

#[test]
fn t26_ingest_failed_partition_leaves_no_spill_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = csv_with_bad_line(dir.path(), "late.csv", 20_000, 19_000, "1,2,95,3");
    let spill = dir.path().join("spill");
    fs::create_dir(&spill).unwrap();
    let input = InputSet::inspect(&[path], &director_roles()).unwrap();
    let layout = director_layout(&input, 3, 0.1);
    let options = SpillOptions {
        dir: Some(spill.clone()),
        memory_rows: 500,
    };
    assert!(partition(&input, &layout, &options, &ProgressBar::hidden()).is_err());
    assert_eq!(fs::read_dir(&spill).unwrap().count(), 0);
}

#[test]
fn t28_spill_dirs_of_dead_processes_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let spill = dir.path();
    // A loader killed with SIGKILL left its spill directory; pid 999999999 is no process.
    let dead = spill.join("almagest-load-dead");
    fs::create_dir(&dead).unwrap();
    fs::write(dead.join("owner.pid"), "999999999").unwrap();
    fs::write(dead.join("rows.arrows"), b"rows").unwrap();
    // One of a live process (this one), and one without an owner file, stay.
    let alive = spill.join("almagest-load-alive");
    fs::create_dir(&alive).unwrap();
    fs::write(alive.join("owner.pid"), std::process::id().to_string()).unwrap();
    let unknown = spill.join("almagest-load-unknown");
    fs::create_dir(&unknown).unwrap();
    let other = spill.join("unrelated");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("owner.pid"), "999999999").unwrap();

    let input = InputSet::inspect(&[write_small_csv(spill)], &director_roles()).unwrap();
    let layout = director_layout(&input, 3, 0.1);
    let options = SpillOptions {
        dir: Some(spill.to_path_buf()),
        memory_rows: 500,
    };
    let table = partition(&input, &layout, &options, &ProgressBar::hidden()).unwrap();
    assert!(!dead.exists(), "the dead loader's spill directory stays");
    assert!(alive.exists() && unknown.exists() && other.exists());
    // The new spill directory names its owner.
    let owner = fs::read_to_string(table.spill_path().join("owner.pid")).unwrap();
    assert_eq!(owner, std::process::id().to_string());
}

fn write_small_csv(dir: &Path) -> PathBuf {
    let path = dir.join("small.csv");
    write_csv(&path, &stars(50, 3));
    path
}

#[test]
fn t27_ingest_partition_throughput() {
    // Not a benchmark: prints rows/s of partition + encode for the record (debug builds
    // are ~10x slower than release).
    let dir = tempfile::tempdir().unwrap();
    let rows = stars(200_000, 12);
    let path = dir.path().join("many.parquet");
    write_parquet(&path, &stars_batch(&rows));
    let input = InputSet::inspect(&[path], &director_roles()).unwrap();
    // ~1000 rows a chunk, the low end of the design's 10^3..10^6.
    let layout = director_layout(&input, 2, 1.0 / 60.0);
    let started = std::time::Instant::now();
    let options = SpillOptions {
        dir: None,
        memory_rows: 20_000,
    };
    let table = partition(&input, &layout, &options, &ProgressBar::hidden()).unwrap();
    let partitioned = started.elapsed();
    let mut bytes = 0;
    for c in table.stored_chunks() {
        bytes += table.encode_chunk(c).unwrap().bytes();
    }
    let total = started.elapsed();
    eprintln!(
        "partition: {:.0} rows/s ({} flushes); partition+sort+encode: {:.0} rows/s; {} chunks, {} overlap rows, {} Parquet bytes",
        rows.len() as f64 / partitioned.as_secs_f64(),
        table.flushes(),
        rows.len() as f64 / total.as_secs_f64(),
        table.stored_chunks().len(),
        table.overlap_rows(),
        bytes
    );
}

// ------------------------------------------------- the load protocol, faked

mod fake {
    //! An in-process coordinator and workers speaking the real gRPC services, recording
    //! what the loader asks of them.

    use std::sync::Mutex;

    use almagest_proto::v1::coordinator_server::{Coordinator, CoordinatorServer};
    use almagest_proto::v1::worker_server::{Worker, WorkerServer};
    use almagest_proto::v1::*;
    use tokio::net::TcpListener;
    use tokio_stream::wrappers::TcpListenerStream;
    use tonic::{Request, Response, Status};

    use super::*;

    #[derive(Debug, Default)]
    pub struct Record {
        pub begun: Vec<BeginLoadRequest>,
        pub committed: Vec<CommitLoadRequest>,
        pub aborted: Vec<String>,
        /// (worker id, request)
        pub puts: Vec<(u64, PutChunkRequest)>,
        /// (chunk, keys) sent for the director index.
        pub keys: Vec<(u64, u64)>,
    }

    pub type Shared = Arc<Mutex<Record>>;

    struct FakeCoordinator {
        record: Shared,
        workers: Vec<WorkerAddress>,
    }

    #[tonic::async_trait]
    impl Coordinator for FakeCoordinator {
        async fn register_worker(
            &self,
            _: Request<RegisterWorkerRequest>,
        ) -> Result<Response<RegisterWorkerResponse>, Status> {
            Err(Status::unimplemented("fake"))
        }

        async fn begin_load(
            &self,
            request: Request<BeginLoadRequest>,
        ) -> Result<Response<BeginLoadResponse>, Status> {
            let req = request.into_inner();
            if req.table == "demo.exists" {
                return Err(Status::already_exists(
                    "table \"demo.exists\" already exists",
                ));
            }
            let depth = if req.chunk_depth == 0 {
                3
            } else {
                req.chunk_depth
            };
            let overlap = if req.overlap_deg <= 0.0 {
                1.0 / 60.0
            } else {
                req.overlap_deg
            };
            self.record.lock().unwrap().begun.push(req);
            Ok(Response::new(BeginLoadResponse {
                load_id: "load-1".into(),
                chunk_depth: depth,
                overlap_deg: overlap,
                workers: self.workers.clone(),
            }))
        }

        async fn commit_load(
            &self,
            request: Request<CommitLoadRequest>,
        ) -> Result<Response<CommitLoadResponse>, Status> {
            let req = request.into_inner();
            let rows = req.chunks.iter().map(|c| c.rows).sum();
            let chunks = req.chunks.len() as u64;
            self.record.lock().unwrap().committed.push(req);
            Ok(Response::new(CommitLoadResponse { rows, chunks }))
        }

        async fn put_keys(
            &self,
            request: Request<PutKeysRequest>,
        ) -> Result<Response<PutKeysResponse>, Status> {
            let req = request.into_inner();
            let batch = almagest_proto::decode_batch(req.keys.as_ref().unwrap()).unwrap();
            let n = batch.num_rows() as u64;
            let mut record = self.record.lock().unwrap();
            record.keys.push((req.chunk, n));
            let keys = record.keys.iter().map(|k| k.1).sum();
            Ok(Response::new(PutKeysResponse { keys }))
        }

        /// Director key k is at [`fake_director`]`(k)`; keys ending in 9 are unknown.
        async fn lookup_keys(
            &self,
            request: Request<LookupKeysRequest>,
        ) -> Result<Response<LookupKeysResponse>, Status> {
            use datafusion::arrow::array::{Float64Array, UInt64Array};
            let req = request.into_inner();
            let batch = almagest_proto::decode_batch(req.keys.as_ref().unwrap()).unwrap();
            let depth = self
                .record
                .lock()
                .unwrap()
                .begun
                .last()
                .map_or(3, |b| b.chunk_depth as u8);
            let keys = batch.column(0).as_primitive::<Int64Type>();
            let found: Vec<Option<(u64, f64, f64)>> = keys
                .iter()
                .map(|k| {
                    let k = k?;
                    let (ra, dec) = super::fake_director(k)?;
                    let chunk = almagest_sky::chunk_of_hpx29(almagest_sky::hpx29(ra, dec), depth);
                    Some((chunk, ra, dec))
                })
                .collect();
            let out = RecordBatch::try_from_iter(vec![
                (
                    "chunk",
                    Arc::new(
                        found
                            .iter()
                            .map(|f| f.map(|f| f.0))
                            .collect::<UInt64Array>(),
                    ) as datafusion::arrow::array::ArrayRef,
                ),
                (
                    "ra",
                    Arc::new(
                        found
                            .iter()
                            .map(|f| f.map(|f| f.1))
                            .collect::<Float64Array>(),
                    ),
                ),
                (
                    "dec",
                    Arc::new(
                        found
                            .iter()
                            .map(|f| f.map(|f| f.2))
                            .collect::<Float64Array>(),
                    ),
                ),
            ])
            .unwrap();
            Ok(Response::new(LookupKeysResponse {
                found: Some(almagest_proto::encode_batch(&out).unwrap()),
            }))
        }

        async fn abort_load(
            &self,
            request: Request<AbortLoadRequest>,
        ) -> Result<Response<AbortLoadResponse>, Status> {
            self.record
                .lock()
                .unwrap()
                .aborted
                .push(request.into_inner().load_id);
            Ok(Response::new(AbortLoadResponse {}))
        }
    }

    struct FakeWorker {
        id: u64,
        record: Shared,
        /// PutChunk of this chunk fails.
        fail_chunk: Option<u64>,
    }

    #[tonic::async_trait]
    impl Worker for FakeWorker {
        type ExecuteFragmentStream =
            std::pin::Pin<Box<dyn futures::Stream<Item = Result<ArrowBatch, Status>> + Send>>;

        async fn execute_fragment(
            &self,
            _: Request<FragmentRequest>,
        ) -> Result<Response<Self::ExecuteFragmentStream>, Status> {
            Err(Status::unimplemented("fake"))
        }

        async fn put_chunk(
            &self,
            request: Request<PutChunkRequest>,
        ) -> Result<Response<PutChunkResponse>, Status> {
            let req = request.into_inner();
            if Some(req.chunk) == self.fail_chunk {
                return Err(Status::resource_exhausted("disk full"));
            }
            let bytes = req.parquet.len() as u64;
            self.record.lock().unwrap().puts.push((self.id, req));
            Ok(Response::new(PutChunkResponse { bytes }))
        }

        async fn drop_load(
            &self,
            _: Request<DropLoadRequest>,
        ) -> Result<Response<DropLoadResponse>, Status> {
            Ok(Response::new(DropLoadResponse {}))
        }

        async fn sweep_loads(
            &self,
            _: Request<SweepLoadsRequest>,
        ) -> Result<Response<SweepLoadsResponse>, Status> {
            Err(Status::unimplemented("fake"))
        }

        async fn status(
            &self,
            _: Request<WorkerStatusRequest>,
        ) -> Result<Response<WorkerStatusResponse>, Status> {
            Ok(Response::new(WorkerStatusResponse {
                worker_id: self.id,
                data_dir: String::new(),
            }))
        }
    }

    async fn listen() -> (String, TcpListenerStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (format!("http://{addr}"), TcpListenerStream::new(listener))
    }

    /// Starts two workers (ids 7 and 3, listed out of order) and a coordinator; returns the
    /// coordinator's address and the record.
    pub async fn cluster(fail_chunk: Option<u64>) -> (String, Shared) {
        let record = Shared::default();
        let mut workers = Vec::new();
        for id in [7u64, 3] {
            let (address, incoming) = listen().await;
            let service = WorkerServer::new(FakeWorker {
                id,
                record: Arc::clone(&record),
                fail_chunk,
            })
            .max_decoding_message_size(usize::MAX);
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming(incoming),
            );
            workers.push(WorkerAddress {
                worker_id: id,
                address,
            });
        }
        let (address, incoming) = listen().await;
        let service = CoordinatorServer::new(FakeCoordinator {
            record: Arc::clone(&record),
            workers,
        });
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming),
        );
        (address, record)
    }
}

fn load_options(coordinator: String, files: Vec<PathBuf>, spill: &Path) -> LoadOptions {
    LoadOptions {
        coordinator,
        table: "demo.stars".into(),
        ra_column: Some("ra".into()),
        dec_column: Some("dec".into()),
        key_column: Some("id".into()),
        files,
        chunk_depth: Some(2),
        overlap_deg: Some(0.5),
        spill_dir: Some(spill.to_path_buf()),
        memory_rows: 1000,
        progress: false,
        metadata: None,
        cluster_secret: None,
        keep_column_case: false,
        director: None,
        director_key: None,
        allow_unknown_directors: false,
    }
}

/// The fake coordinator's director rows: key k at (7k mod 360, 13k mod 170 - 85); no row
/// for a key ending in 9.
fn fake_director(k: i64) -> Option<(f64, f64)> {
    (k.rem_euclid(10) != 9).then(|| {
        (
            (k * 7).rem_euclid(360) as f64,
            (k * 13).rem_euclid(170) as f64 - 85.0,
        )
    })
}

#[tokio::test]
async fn t36_ingest_child_rows_go_to_their_directors_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("det.csv");
    let mut text = String::from("det,obj,mag\n");
    let mut known = 0u64;
    for i in 0..600i64 {
        let obj = if i % 10 == 9 { i + 1 } else { i };
        text.push_str(&format!("{i},{obj},{}\n", 10 + i % 7));
        known += 1;
    }
    fs::write(&csv, text).unwrap();
    let (address, record) = fake::cluster(None).await;
    let mut opts = load_options(address.clone(), vec![csv], dir.path());
    opts.table = "demo.det".into();
    (opts.ra_column, opts.dec_column, opts.key_column) = (None, None, None);
    opts.director = Some("stars".into());
    opts.director_key = Some("obj".into());
    let report = load(&opts).await.unwrap();
    assert_eq!((report.rows, report.unknown_directors), (known, 0));
    {
        let record = record.lock().unwrap();
        let begun = &record.begun[0];
        assert_eq!(
            (begun.director_table.as_str(), begun.director_key.as_str()),
            ("stars", "obj")
        );
        assert!(record.keys.is_empty(), "a child has no keys of its own");
        let mut stored = 0;
        for (_, put) in &record.puts {
            let batch = read_parquet(&put.parquet);
            let obj = batch
                .column_by_name("obj")
                .unwrap()
                .as_primitive::<Int64Type>();
            let hpx = batch
                .column_by_name(HPX_COLUMN)
                .unwrap()
                .as_primitive::<Int64Type>();
            for i in 0..batch.num_rows() {
                let (ra, dec) = fake_director(obj.value(i)).unwrap();
                let h = almagest_sky::hpx29(ra, dec);
                assert_eq!(hpx.value(i), h as i64);
                let chunk = almagest_sky::chunk_of_hpx29(h, 2);
                if put.kind == v1::ChunkFileKind::Primary as i32 {
                    assert_eq!(chunk, put.chunk);
                    stored += 1;
                } else {
                    assert_ne!(chunk, put.chunk);
                }
            }
        }
        assert_eq!(stored, known);
    }

    // An unknown director fails the load at its line; with the flag it is counted.
    let bad = dir.path().join("bad.csv");
    fs::write(
        &bad,
        "det,obj,mag\n1,1,10\n2,2,10\n3,19,10\n4,29,10\n5,3,10\n",
    )
    .unwrap();
    opts.files = vec![bad];
    let err = load(&opts).await.unwrap_err().to_string();
    assert!(
        err.contains("bad.csv, line 4: director key \"obj\" = 19 is not a key of demo.stars"),
        "{err}"
    );
    assert_eq!(record.lock().unwrap().aborted.len(), 1);
    opts.allow_unknown_directors = true;
    let report = load(&opts).await.unwrap();
    assert_eq!((report.rows, report.unknown_directors), (3, 2));

    // A child takes no position or key of its own.
    opts.key_column = Some("det".into());
    let err = load(&opts).await.unwrap_err().to_string();
    assert!(err.contains("--ra, --dec and --key do not apply"), "{err}");
}

#[tokio::test]
async fn t30_ingest_load_uploads_every_chunk_to_its_worker_and_commits() {
    let dir = tempfile::tempdir().unwrap();
    let rows = stars(4000, 13);
    let csv = dir.path().join("stars.csv");
    write_csv(&csv, &rows);
    let spill = dir.path().join("spill");
    fs::create_dir(&spill).unwrap();
    let (address, record) = fake::cluster(None).await;

    let report = load(&load_options(address, vec![csv], &spill))
        .await
        .unwrap();
    assert_eq!(report.rows, 4000);
    assert_eq!(
        fs::read_dir(&spill).unwrap().count(),
        0,
        "spill files removed"
    );

    let record = record.lock().unwrap();
    assert_eq!(record.begun.len(), 1);
    let begun = &record.begun[0];
    assert_eq!((begun.chunk_depth, begun.overlap_deg), (2, 0.5));
    assert_eq!(begun.kind, v1::TableKind::Director as i32);
    let schema = almagest_proto::decode_schema(&begun.arrow_schema).unwrap();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "ra", "dec", "mag"]);
    assert!(record.aborted.is_empty());
    assert_eq!(record.committed.len(), 1);
    let commit = &record.committed[0];
    assert_eq!(commit.load_id, "load-1");
    assert_eq!(commit.chunks.len() as u64, report.chunks);
    assert_eq!(commit.chunks.iter().map(|c| c.rows).sum::<u64>(), 4000);
    assert_eq!(
        commit.chunks.iter().map(|c| c.overlap_rows).sum::<u64>(),
        report.overlap_rows
    );
    assert!(report.overlap_rows > 0);
    // Every chunk's primary rows sent their keys, once.
    for c in &commit.chunks {
        let sent: u64 = record
            .keys
            .iter()
            .filter(|k| k.0 == c.chunk)
            .map(|k| k.1)
            .sum();
        assert_eq!(sent, c.rows, "keys of chunk {}", c.chunk);
    }

    // Workers sorted by id: [3, 7]; chunk c goes to workers[c % 2].
    let mut stored_rows = 0;
    for c in &commit.chunks {
        let owner = [3u64, 7][(c.chunk % 2) as usize];
        assert_eq!(c.worker_id, owner, "chunk {}", c.chunk);
        let puts: Vec<_> = record
            .puts
            .iter()
            .filter(|(_, p)| p.chunk == c.chunk)
            .collect();
        assert!(puts
            .iter()
            .all(|(w, p)| *w == owner && p.load_id == "load-1" && p.table == "demo.stars"));
        let primary: Vec<_> = puts
            .iter()
            .filter(|(_, p)| p.kind == v1::ChunkFileKind::Primary as i32)
            .collect();
        assert_eq!(primary.len(), 1);
        let batch = read_parquet(&primary[0].1.parquet);
        assert_eq!(batch.num_rows() as u64, c.rows);
        assert_sorted_by_hpx(&batch);
        stored_rows += batch.num_rows();
        let overlap = puts
            .iter()
            .filter(|(_, p)| p.kind == v1::ChunkFileKind::Overlap as i32)
            .count();
        assert_eq!(overlap, usize::from(c.overlap_rows > 0));
        let sent: u64 = puts.iter().map(|(_, p)| p.parquet.len() as u64).sum();
        assert_eq!(sent, c.bytes);
    }
    assert_eq!(stored_rows, 4000);
}

#[tokio::test]
async fn t31_ingest_replicated_load_goes_to_every_worker() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("filters.csv");
    fs::write(
        &csv,
        "filter_id,name,lambda\n1,u,355.1\n2,g,468.6\n3,r,616.5\n",
    )
    .unwrap();
    let (address, record) = fake::cluster(None).await;
    let mut opts = load_options(address, vec![csv], dir.path());
    opts.table = "demo.filters".into();
    (opts.ra_column, opts.dec_column, opts.key_column) = (None, None, None);
    let report = load(&opts).await.unwrap();
    assert_eq!((report.rows, report.chunks, report.overlap_rows), (3, 1, 0));
    let record = record.lock().unwrap();
    assert_eq!(record.begun[0].kind, v1::TableKind::Replicated as i32);
    let mut workers: Vec<u64> = record
        .puts
        .iter()
        .map(|(w, p)| {
            assert_eq!(p.chunk, 0);
            *w
        })
        .collect();
    workers.sort();
    assert_eq!(workers, [3, 7]);
    assert_eq!(
        report.bytes,
        record
            .puts
            .iter()
            .map(|(_, p)| p.parquet.len() as u64)
            .sum::<u64>()
    );
    let commit = &record.committed[0];
    assert_eq!(commit.chunks.len(), 1);
    assert_eq!(
        (
            commit.chunks[0].chunk,
            commit.chunks[0].worker_id,
            commit.chunks[0].rows
        ),
        (0, 3, 3)
    );
}

#[tokio::test]
async fn t32_ingest_failed_upload_aborts_the_load() {
    let dir = tempfile::tempdir().unwrap();
    let rows = stars(4000, 14);
    let csv = dir.path().join("stars.csv");
    write_csv(&csv, &rows);
    let spill = dir.path().join("spill");
    fs::create_dir(&spill).unwrap();
    // Fail the chunk of some row, so that it exists.
    let victim = chunk_brute(rows[100].ra, rows[100].dec, 2);
    let (address, record) = fake::cluster(Some(victim)).await;
    let err = load(&load_options(address, vec![csv], &spill))
        .await
        .unwrap_err();
    match &err {
        LoaderError::Worker { message, .. } => {
            assert!(
                message.contains("disk full") && message.contains(&format!("chunk {victim}")),
                "{err}"
            )
        }
        other => panic!("expected a worker error, got {other:?}"),
    }
    let record = record.lock().unwrap();
    assert_eq!(record.aborted, ["load-1"]);
    assert!(record.committed.is_empty());
    assert_eq!(
        fs::read_dir(&spill).unwrap().count(),
        0,
        "spill files removed"
    );
}

#[tokio::test]
async fn t33_ingest_bad_row_after_begin_aborts_the_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = csv_with_bad_line(dir.path(), "late.csv", 5000, 4500, "1,2,-95,3");
    let spill = dir.path().join("spill");
    fs::create_dir(&spill).unwrap();
    let (address, record) = fake::cluster(None).await;
    let err = load(&load_options(address, vec![path], &spill))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("late.csv, line 4500:"), "{err}");
    let record = record.lock().unwrap();
    assert_eq!(record.aborted, ["load-1"]);
    assert!(record.committed.is_empty() && record.puts.is_empty());
    assert_eq!(fs::read_dir(&spill).unwrap().count(), 0);
}

#[tokio::test]
async fn t34_ingest_option_and_server_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("stars.csv");
    write_csv(&csv, &stars(10, 15));
    let (address, record) = fake::cluster(None).await;

    let mut opts = load_options(address.clone(), vec![csv.clone()], dir.path());
    opts.key_column = None;
    assert!(matches!(
        load(&opts).await,
        Err(LoaderError::InvalidRequest(_))
    ));
    opts = load_options(address.clone(), vec![csv.clone()], dir.path());
    opts.table = "nodatabase".into();
    assert!(matches!(
        load(&opts).await,
        Err(LoaderError::InvalidRequest(_))
    ));
    opts = load_options(address.clone(), vec![csv.clone()], dir.path());
    opts.table = "demo.exists".into();
    assert!(matches!(load(&opts).await, Err(LoaderError::DuplicateTable(t)) if t == "demo.exists"));
    // Schema errors are found before BeginLoad: nothing to abort.
    opts = load_options(address.clone(), vec![csv.clone()], dir.path());
    opts.ra_column = Some("alpha".into());
    let err = load(&opts).await.unwrap_err().to_string();
    assert!(err.contains("stars.csv") && err.contains("alpha"), "{err}");
    opts = load_options("http://127.0.0.1:1".into(), vec![csv], dir.path());
    assert!(matches!(load(&opts).await, Err(LoaderError::Rpc(_))));
    let record = record.lock().unwrap();
    assert!(record.begun.is_empty() && record.aborted.is_empty());
}

#[tokio::test]
async fn t35_ingest_load_sends_descriptive_metadata_with_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("stars.csv");
    write_csv(&csv, &stars(500, 5));
    let spill = dir.path().join("spill");
    fs::create_dir(&spill).unwrap();
    let (address, record) = fake::cluster(None).await;

    // Unknown columns in the sidecar fail the load before BeginLoad.
    let bad = dir.path().join("bad.toml");
    fs::write(&bad, "[columns.rmag]\nunit = \"mag\"\n").unwrap();
    let mut opts = load_options(address.clone(), vec![csv.clone()], &spill);
    opts.metadata = Some(bad.clone());
    let e = load(&opts).await.unwrap_err().to_string();
    assert!(
        e.contains(&bad.display().to_string()) && e.contains("rmag"),
        "{e}"
    );
    assert!(record.lock().unwrap().begun.is_empty());

    let good = dir.path().join("good.toml");
    fs::write(
        &good,
        "[table]\ndescription = \"Stars\"\n[columns.mag]\nunit = \"mag\"\nucd = \"phot.mag\"\n",
    )
    .unwrap();
    opts.metadata = Some(good);
    load(&opts).await.unwrap();
    let record = record.lock().unwrap();
    let schema = almagest_proto::decode_schema(&record.begun[0].arrow_schema).unwrap();
    assert_eq!(
        schema.metadata(),
        &HashMap::from([("description".to_string(), "Stars".to_string())])
    );
    assert_eq!(
        schema.field_with_name("mag").unwrap().metadata(),
        &HashMap::from([
            ("unit".to_string(), "mag".to_string()),
            ("ucd".to_string(), "phot.mag".to_string())
        ])
    );
    assert!(schema.field_with_name("ra").unwrap().metadata().is_empty());
    // The chunk files carry the plain schema.
    let (_, put) = &record.puts[0];
    let batch = read_parquet(&put.parquet);
    assert!(batch
        .schema()
        .fields()
        .iter()
        .all(|f| f.metadata().is_empty()));
}

#[test]
fn t37_keys_go_in_calls_of_about_a_mebibyte() {
    use crate::{key_slices, KEY_BYTES_PER_CALL};
    // 1 M int64 keys (8 MB): calls of 131,072 keys, covering every row once.
    let slices = key_slices(1_000_000, 8_000_000);
    assert_eq!(slices.len(), 8);
    assert!(slices.iter().all(|(_, len)| len * 8 <= KEY_BYTES_PER_CALL));
    let mut next = 0;
    for (offset, len) in &slices {
        assert_eq!(*offset, next);
        next += len;
    }
    assert_eq!(next, 1_000_000);
    // Keys larger than a call go one per call; no keys, no call.
    assert_eq!(key_slices(3, 3 << 21), vec![(0, 1), (1, 1), (2, 1)]);
    assert!(key_slices(0, 0).is_empty());
    assert_eq!(key_slices(10, 80), vec![(0, 10)]);
}
