//! TAP synchronous queries, formats, MAXREC, uploads, and the VOSI/DALI documents, against
//! a real standalone cluster. Results are checked row for row (ids, and every float bit)
//! against the brute-force reference read straight from the generated catalog.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, ensure, Context, Result};
use base64::Engine;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use quick_xml::events::Event;

use crate::harness::{self, Cluster};
use crate::reference::{self, Row};

/// One result row of the cone query: source_id, ra, dec, phot_g_mean_mag.
type Got = (i64, f64, f64, Option<f64>);

const CONE: (f64, f64, f64) = (266.4, -28.9, 0.2);

fn cone_query() -> String {
    let (ra, dec, r) = CONE;
    format!(
        "SELECT source_id, ra, dec, phot_g_mean_mag FROM test.gaia \
         WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra}, {dec}, {r}))"
    )
}

/// The FIELD elements of the cone query's columns, with the metadata `almagest gen`
/// writes for them (the load's `--metadata` file repeats the position columns' unit).
const CONE_FIELDS: [&str; 4] = [
    "<FIELD name=\"source_id\" datatype=\"long\" ucd=\"meta.id;meta.main\"><DESCRIPTION>\
     Unique source identifier (Gaia-like: the HEALPix level-12 index of the position times \
     2^35, plus a serial number)</DESCRIPTION></FIELD>\n",
    "<FIELD name=\"ra\" datatype=\"double\" unit=\"deg\" ucd=\"pos.eq.ra;meta.main\">\
     <DESCRIPTION>Right ascension (ICRS)</DESCRIPTION></FIELD>\n",
    "<FIELD name=\"dec\" datatype=\"double\" unit=\"deg\" ucd=\"pos.eq.dec;meta.main\">\
     <DESCRIPTION>Declination (ICRS)</DESCRIPTION></FIELD>\n",
    "<FIELD name=\"phot_g_mean_mag\" datatype=\"double\" unit=\"mag\" \
     ucd=\"phot.mag;em.opt\"><DESCRIPTION>Mean magnitude in the G band</DESCRIPTION></FIELD>\n",
];

fn opt_f64(text: &str) -> Result<Option<f64>> {
    if text.is_empty() {
        return Ok(None);
    }
    Ok(Some(match text {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        t => t.parse().with_context(|| format!("bad float '{t}'"))?,
    }))
}

fn row_from_text(cells: &[String]) -> Result<Got> {
    ensure!(cells.len() == 4, "expected 4 cells, got {cells:?}");
    Ok((
        cells[0].parse().context("source_id")?,
        opt_f64(&cells[1])?.context("null ra")?,
        opt_f64(&cells[2])?.context("null dec")?,
        opt_f64(&cells[3])?,
    ))
}

/// Well-formedness check plus the text of every element named `name`, and whether an INFO
/// with QUERY_STATUS=`status` occurs.
fn xml_texts(doc: &str, name: &str) -> Result<Vec<String>> {
    let mut reader = quick_xml::Reader::from_str(doc);
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    loop {
        match reader.read_event().context("XML not well-formed")? {
            Event::Start(e) if e.local_name().as_ref() == name => current = Some(String::new()),
            Event::Empty(e) if e.local_name().as_ref() == name => out.push(String::new()),
            Event::Text(t) => {
                if let Some(c) = current.as_mut() {
                    c.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                if let Some(c) = current.as_mut() {
                    match &*r {
                        "lt" => c.push('<'),
                        "gt" => c.push('>'),
                        "amp" => c.push('&'),
                        "quot" => c.push('"'),
                        "apos" => c.push('\''),
                        other => c.push_str(&format!("&{other};")),
                    }
                }
            }
            Event::End(e) if e.local_name().as_ref() == name => {
                if let Some(c) = current.take() {
                    out.push(c);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

fn parse_tabledata(doc: &str) -> Result<Vec<Got>> {
    let tds = xml_texts(doc, "TD")?;
    tds.chunks(4).map(row_from_text).collect::<Result<Vec<_>>>()
}

fn parse_binary2(doc: &str) -> Result<Vec<Got>> {
    let stream = doc
        .split("<STREAM encoding=\"base64\">")
        .nth(1)
        .and_then(|s| s.split("</STREAM>").next())
        .context("no BINARY2 STREAM")?;
    let compact: String = stream.chars().filter(|c| !c.is_whitespace()).collect();
    let raw = base64::engine::general_purpose::STANDARD.decode(compact)?;
    // One flag byte (4 fields), then long, double, double, double.
    ensure!(
        raw.len() % 33 == 0,
        "BINARY2 length {} is not rows of 33 bytes",
        raw.len()
    );
    Ok(raw
        .chunks(33)
        .map(|r| {
            let f = |i: usize| f64::from_be_bytes(r[i..i + 8].try_into().unwrap_or([0; 8]));
            let g_null = r[0] & 0x10 != 0;
            (
                i64::from_be_bytes(r[1..9].try_into().unwrap_or([0; 8])),
                f(9),
                f(17),
                (!g_null).then(|| f(25)),
            )
        })
        .collect())
}

fn parse_delimited(text: &str, sep: char, newline: &str) -> Result<Vec<Got>> {
    let mut lines = text.split(newline).filter(|l| !l.is_empty());
    let header = lines.next().context("no header")?;
    ensure!(
        header == ["source_id", "ra", "dec", "phot_g_mean_mag"].join(&sep.to_string()),
        "header {header:?}"
    );
    lines
        .map(|l| row_from_text(&l.split(sep).map(str::to_string).collect::<Vec<_>>()))
        .collect()
}

fn parse_json(text: &str) -> Result<(Vec<Got>, bool)> {
    let v: serde_json::Value = serde_json::from_str(text)?;
    let names: Vec<&str> = v["metadata"]
        .as_array()
        .context("metadata")?
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    ensure!(
        names == ["source_id", "ra", "dec", "phot_g_mean_mag"],
        "{names:?}"
    );
    let rows = v["data"]
        .as_array()
        .context("data")?
        .iter()
        .map(|r| {
            Ok((
                r[0].as_i64().context("id")?,
                r[1].as_f64().context("ra")?,
                r[2].as_f64().context("dec")?,
                r[3].as_f64(),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((rows, v["overflow"].as_bool().context("overflow")?))
}

fn parse_parquet(bytes: bytes::Bytes) -> Result<Vec<Got>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()?;
    let mut out = Vec::new();
    for batch in reader {
        let b = batch?;
        let id = b.column(0).as_primitive::<Int64Type>();
        let ra = b.column(1).as_primitive::<Float64Type>();
        let dec = b.column(2).as_primitive::<Float64Type>();
        let g = b.column(3).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            out.push((
                id.value(i),
                ra.value(i),
                dec.value(i),
                g.is_valid(i).then(|| g.value(i)),
            ));
        }
    }
    Ok(out)
}

/// Every returned row exists in the reference with the same values, bit for bit, and the
/// set of ids agrees with the brute-force cone (boundary rows aside).
fn check_cone(what: &str, got: &[Got], by_id: &BTreeMap<i64, &Row>) -> Result<usize> {
    let (ra0, dec0, r0) = CONE;
    let ids: BTreeSet<i64> = got.iter().map(|g| g.0).collect();
    ensure!(ids.len() == got.len(), "{what}: duplicate rows");
    for &(id, ra, dec, g) in got {
        let row = by_id
            .get(&id)
            .with_context(|| format!("{what}: unknown id {id}"))?;
        ensure!(
            row.ra.to_bits() == ra.to_bits() && row.dec.to_bits() == dec.to_bits(),
            "{what}: row {id} position ({ra}, {dec}) differs from ({}, {})",
            row.ra,
            row.dec
        );
        ensure!(
            row.g.map(f64::to_bits) == g.map(f64::to_bits),
            "{what}: row {id} G {g:?} differs from {:?}",
            row.g
        );
    }
    let mut expected = 0;
    for row in by_id.values() {
        match reference::in_circle(row, ra0, dec0, r0) {
            Some(true) => {
                expected += 1;
                ensure!(
                    ids.contains(&row.source_id),
                    "{what}: missing row {}",
                    row.source_id
                );
            }
            Some(false) => ensure!(
                !ids.contains(&row.source_id),
                "{what}: unexpected row {}",
                row.source_id
            ),
            None => {}
        }
    }
    Ok(expected)
}

struct Tap {
    url: String,
    http: reqwest::Client,
}

impl Tap {
    async fn post(&self, params: &[(&str, &str)]) -> Result<reqwest::Response> {
        Ok(self
            .http
            .post(format!("{}/sync", self.url))
            .form(params)
            .send()
            .await?)
    }

    async fn get(&self, params: &[(&str, &str)]) -> Result<reqwest::Response> {
        Ok(self
            .http
            .get(format!("{}/sync", self.url))
            .query(params)
            .send()
            .await?)
    }

    /// A request expected to fail: its status and the QUERY_STATUS=ERROR message.
    async fn error(&self, params: &[(&str, &str)]) -> Result<(u16, String)> {
        let resp = self.post(params).await?;
        let status = resp.status().as_u16();
        let ct = content_type(&resp);
        let body = resp.text().await?;
        ensure!(
            ct.starts_with("application/x-votable+xml"),
            "error content type {ct}"
        );
        ensure!(
            body.contains("<INFO name=\"QUERY_STATUS\" value=\"ERROR\">"),
            "not an error document: {body}"
        );
        let infos = xml_texts(&body, "INFO")?;
        Ok((status, infos.join(" ")))
    }
}

fn content_type(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t60_tap_sync() -> Result<()> {
    let file = harness::catalog_file();
    let rows = reference::read_catalog(file);
    let by_id: BTreeMap<i64, &Row> = rows.iter().map(|r| (r.source_id, r)).collect();
    let dir = harness::test_dir("t60");
    let cluster = Cluster::start(&dir.join("cluster"), 2).await?;
    // The position columns' unit (IN_UNIT reads it), whatever the generated file carries.
    let metadata = dir.join("gaia-meta.toml");
    std::fs::write(
        &metadata,
        "[columns.ra]\nunit = \"deg\"\n[columns.dec]\nunit = \"deg\"\n",
    )?;
    cluster.load_with_args(
        "test.gaia",
        Some(("ra", "dec", "source_id")),
        &[file],
        &["--metadata", &metadata.display().to_string()],
    )?;
    let tap = Tap {
        url: cluster.tap_url(),
        http: reqwest::Client::new(),
    };
    let query = cone_query();

    // The cone in every format, through POST forms.
    let mut counts = Vec::new();
    for format in [
        "votable",
        "application/x-votable+xml",
        "votable/b2",
        "csv",
        "tsv",
        "json",
        "parquet",
    ] {
        let resp = tap
            .post(&[
                ("LANG", "ADQL"),
                ("QUERY", &query),
                ("RESPONSEFORMAT", format),
            ])
            .await?;
        let status = resp.status().as_u16();
        let ct = content_type(&resp);
        let body = resp.bytes().await?;
        ensure!(
            status == 200,
            "{format}: status {status}: {}",
            String::from_utf8_lossy(&body)
        );
        let text = || String::from_utf8_lossy(&body).into_owned();
        let got = match format {
            "votable" | "application/x-votable+xml" => {
                ensure!(ct == "application/x-votable+xml", "{format}: {ct}");
                let doc = text();
                ensure!(doc.contains("<INFO name=\"QUERY_STATUS\" value=\"OK\"/>"));
                ensure!(!doc.contains("OVERFLOW"));
                // Each FIELD carries the unit, UCD and description the catalog holds for
                // its column (written by `almagest gen`, kept by the load).
                for field in CONE_FIELDS {
                    ensure!(doc.contains(field), "{format}: no {field} in {doc}");
                }
                parse_tabledata(&doc)?
            }
            "votable/b2" => {
                ensure!(
                    ct.starts_with("application/x-votable+xml"),
                    "{format}: {ct}"
                );
                let doc = text();
                for field in CONE_FIELDS {
                    ensure!(doc.contains(field), "{format}: no {field} in {doc}");
                }
                parse_binary2(&doc)?
            }
            "csv" => {
                ensure!(ct.starts_with("text/csv"), "{format}: {ct}");
                parse_delimited(&text(), ',', "\r\n")?
            }
            "tsv" => {
                ensure!(ct == "text/tab-separated-values", "{format}: {ct}");
                parse_delimited(&text(), '\t', "\n")?
            }
            "json" => {
                ensure!(ct == "application/json", "{format}: {ct}");
                let (rows, overflow) = parse_json(&text())?;
                ensure!(!overflow);
                rows
            }
            "parquet" => {
                ensure!(ct == "application/vnd.apache.parquet", "{format}: {ct}");
                parse_parquet(body.clone())?
            }
            _ => bail!("unhandled format {format}"),
        };
        let expected = check_cone(format, &got, &by_id)?;
        ensure!(expected > 5, "the Galactic centre cone should hold stars");
        counts.push(got.len());
    }
    ensure!(
        counts.windows(2).all(|w| w[0] == w[1]),
        "row counts differ: {counts:?}"
    );
    let cone_rows = counts[0];

    // GET with lower-case parameter names, and REQUEST=doQuery.
    let resp = tap
        .get(&[
            ("request", "doQuery"),
            ("lang", "adql-2.0"),
            ("query", &query),
            ("format", "csv"),
        ])
        .await?;
    ensure!(resp.status() == 200);
    let got = parse_delimited(&resp.text().await?, ',', "\r\n")?;
    check_cone("GET csv", &got, &by_id)?;

    // Multipart form.
    let form = reqwest::multipart::Form::new()
        .text("LANG", "ADQL-2.1")
        .text("QUERY", query.clone())
        .text("RESPONSEFORMAT", "json");
    let resp = tap
        .http
        .post(format!("{}/sync", tap.url))
        .multipart(form)
        .send()
        .await?;
    ensure!(resp.status() == 200);
    let (got, _) = parse_json(&resp.text().await?)?;
    check_cone("multipart json", &got, &by_id)?;

    // MAXREC: truncation flagged OVERFLOW; exactly enough is not an overflow.
    let few = (cone_rows / 2).to_string();
    let doc = tap
        .post(&[("LANG", "ADQL"), ("QUERY", &query), ("MAXREC", &few)])
        .await?
        .text()
        .await?;
    ensure!(parse_tabledata(&doc)?.len() == cone_rows / 2);
    ensure!(
        doc.contains("</TABLE>\n<INFO name=\"QUERY_STATUS\" value=\"OVERFLOW\"/>\n</RESOURCE>"),
        "{doc}"
    );
    let (json_rows, overflow) = parse_json(
        &tap.post(&[
            ("LANG", "ADQL"),
            ("QUERY", &query),
            ("MAXREC", &few),
            ("RESPONSEFORMAT", "json"),
        ])
        .await?
        .text()
        .await?,
    )?;
    ensure!(json_rows.len() == cone_rows / 2 && overflow);
    let exact = cone_rows.to_string();
    let doc = tap
        .post(&[("LANG", "ADQL"), ("QUERY", &query), ("MAXREC", &exact)])
        .await?
        .text()
        .await?;
    ensure!(parse_tabledata(&doc)?.len() == cone_rows && !doc.contains("OVERFLOW"));
    // MAXREC=0: the metadata only.
    let doc = tap
        .post(&[("LANG", "ADQL"), ("QUERY", &query), ("MAXREC", "0")])
        .await?
        .text()
        .await?;
    ensure!(xml_texts(&doc, "TR")?.is_empty(), "{doc}");
    ensure!(xml_texts(&doc, "FIELD")?.len() == 4, "{doc}");
    ensure!(doc.contains("value=\"OK\""));

    // Errors: VOTable documents with QUERY_STATUS=ERROR and a useful message.
    let (status, msg) = tap.error(&[("LANG", "SQL"), ("QUERY", &query)]).await?;
    ensure!(
        status == 400 && msg.contains("LANG=SQL is not supported") && msg.contains("ADQL"),
        "{msg}"
    );
    let (status, msg) = tap.error(&[("QUERY", &query)]).await?;
    ensure!(
        status == 400 && msg.contains("missing parameter LANG"),
        "{msg}"
    );
    let (status, msg) = tap.error(&[("LANG", "ADQL")]).await?;
    ensure!(
        status == 400 && msg.contains("missing parameter QUERY"),
        "{msg}"
    );
    let (status, msg) = tap
        .error(&[
            ("LANG", "ADQL"),
            ("QUERY", &query),
            ("REQUEST", "getCapabilities"),
        ])
        .await?;
    ensure!(status == 400 && msg.contains("doQuery"), "{msg}");
    let (status, msg) = tap
        .error(&[
            ("LANG", "ADQL"),
            ("QUERY", &query),
            ("RESPONSEFORMAT", "fits"),
        ])
        .await?;
    ensure!(
        status == 400 && msg.contains("'fits' is not supported"),
        "{msg}"
    );
    let (status, msg) = tap
        .error(&[("LANG", "ADQL"), ("QUERY", &query), ("MAXREC", "-3")])
        .await?;
    ensure!(status == 400 && msg.contains("MAXREC"), "{msg}");
    let (status, msg) = tap
        .error(&[
            ("LANG", "ADQL"),
            ("QUERY", "SELECT source_id\nFROM test.gaia WHERE ra > > 1"),
        ])
        .await?;
    ensure!(
        status == 400 && {
            let m = msg.to_ascii_lowercase();
            m.contains("line 2, column") || m.contains("line: 2, column")
        },
        "syntax error without a position: {msg}"
    );
    let (status, msg) = tap
        .error(&[
            ("LANG", "ADQL"),
            ("QUERY", "SELECT * FROM test.no_such_table"),
        ])
        .await?;
    ensure!(status == 400 && msg.contains("no_such_table"), "{msg}");
    let (status, msg) = tap
        .error(&[("LANG", "ADQL"), ("QUERY", "CREATE TABLE test.x (a INT)")])
        .await?;
    ensure!(status == 400, "DDL must be refused: {msg}");

    // Uploads: inline parts are read; bad ones are refused with the reason.
    let bad = reqwest::multipart::Form::new()
        .text("LANG", "ADQL")
        .text("QUERY", "SELECT * FROM TAP_UPLOAD.t")
        .text("UPLOAD", "t,param:tab")
        .part(
            "tab",
            reqwest::multipart::Part::bytes(
                b"<VOTABLE><RESOURCE><TABLE><FIELD name=\"a\" datatype=\"int\"/><DATA><TABLEDATA>\
                  <TR><TD>x</TD></TR></TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>"
                    .to_vec(),
            )
            .file_name("t.xml"),
        );
    let resp = tap
        .http
        .post(format!("{}/sync", tap.url))
        .multipart(bad)
        .send()
        .await?;
    ensure!(resp.status() == 400);
    let body = resp.text().await?;
    ensure!(
        body.contains("table 't': row 1, field 'a': cannot read 'x' as an integer"),
        "{body}"
    );
    let (status, msg) = tap
        .error(&[
            ("LANG", "ADQL"),
            ("QUERY", "SELECT * FROM TAP_UPLOAD.t"),
            ("UPLOAD", "t,http://example.com/t.xml"),
        ])
        .await?;
    ensure!(
        status == 400 && msg.contains("does not fetch uploads by URL"),
        "{msg}"
    );
    let (status, msg) = tap
        .error(&[
            ("LANG", "ADQL"),
            ("QUERY", "SELECT * FROM TAP_UPLOAD.t"),
            ("UPLOAD", "t,param:missing"),
        ])
        .await?;
    ensure!(status == 400 && msg.contains("no such part"), "{msg}");

    // An upload joined with the partitioned table: four known ids and one that does not
    // exist, names with XML specials; the upload name is matched case-insensitively.
    let targets: Vec<&Row> = rows.iter().step_by(rows.len() / 4).take(4).collect();
    let mut tabledata = String::new();
    for (i, t) in targets.iter().enumerate() {
        tabledata.push_str(&format!(
            "<TR><TD>{}</TD><TD>star &lt;{i}&gt; &amp; co</TD></TR>",
            t.source_id
        ));
    }
    tabledata.push_str("<TR><TD>-42</TD><TD>nobody</TD></TR>");
    let votable = format!(
        "<?xml version=\"1.0\"?><VOTABLE version=\"1.4\" xmlns=\"http://www.ivoa.net/xml/VOTable/v1.3\">\
         <RESOURCE><TABLE><FIELD name=\"SID\" datatype=\"long\"/>\
         <FIELD name=\"label\" datatype=\"char\" arraysize=\"*\"/>\
         <DATA><TABLEDATA>{tabledata}</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>"
    );
    let form = reqwest::multipart::Form::new()
        .text("LANG", "ADQL")
        .text(
            "QUERY",
            "SELECT u.label, g.source_id, g.ra, g.dec, g.phot_g_mean_mag \
             FROM TAP_UPLOAD.targets AS u JOIN test.gaia AS g ON g.source_id = u.sid \
             ORDER BY g.source_id",
        )
        .text("UPLOAD", "Targets,param:t1")
        .text("RESPONSEFORMAT", "json")
        .part(
            "t1",
            reqwest::multipart::Part::bytes(votable.into_bytes()).file_name("targets.xml"),
        );
    let resp = tap
        .http
        .post(format!("{}/sync", tap.url))
        .multipart(form)
        .send()
        .await?;
    let status = resp.status();
    let body = resp.text().await?;
    ensure!(status == 200, "upload join: {status}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body)?;
    let data = v["data"].as_array().context("data")?;
    let mut expected: Vec<(usize, &&Row)> = targets.iter().enumerate().collect();
    expected.sort_by_key(|(_, r)| r.source_id);
    ensure!(data.len() == expected.len(), "upload join rows: {body}");
    for (row, (i, t)) in data.iter().zip(&expected) {
        ensure!(row[0] == format!("star <{i}> & co").as_str(), "{row}");
        ensure!(row[1].as_i64() == Some(t.source_id), "{row}");
        ensure!(
            row[2].as_f64().map(f64::to_bits) == Some(t.ra.to_bits()),
            "{row}"
        );
        ensure!(
            row[3].as_f64().map(f64::to_bits) == Some(t.dec.to_bits()),
            "{row}"
        );
        ensure!(
            row[4].as_f64().map(f64::to_bits) == t.g.map(f64::to_bits),
            "{row}"
        );
    }

    // VOSI and DALI documents.
    let host = format!("127.0.0.1:{}", cluster.http_port);
    let caps = tap
        .http
        .get(format!("{}/capabilities", tap.url))
        .send()
        .await?;
    ensure!(caps.status() == 200);
    let caps = caps.text().await?;
    xml_texts(&caps, "capability")?;
    for needle in [
        "xmlns:vosi=\"http://www.ivoa.net/xml/VOSICapabilities/v1.0\"",
        "standardID=\"ivo://ivoa.net/std/TAP\" xsi:type=\"tr:TableAccess\"",
        "<interface xsi:type=\"vs:ParamHTTP\" role=\"std\" version=\"1.1\">",
        &format!("<accessURL use=\"base\">http://{host}/tap</accessURL>"),
        "<version ivo-id=\"ivo://ivoa.net/std/ADQL#v2.0\">2.0</version>",
        "<version ivo-id=\"ivo://ivoa.net/std/ADQL#v2.1\">2.1</version>",
        "ivo://ivoa.net/std/TAPRegExt#features-adqlgeo",
        "<form>CONTAINS</form>",
        "ivo://ivoa.net/std/TAPRegExt#output-votable-td",
        "ivo://ivoa.net/std/TAPRegExt#output-votable-binary2",
        "<uploadMethod ivo-id=\"ivo://ivoa.net/std/TAPRegExt#upload-inline\"/>",
        "standardID=\"ivo://ivoa.net/std/VOSI#tables\"",
        "standardID=\"ivo://ivoa.net/std/VOSI#availability\"",
        "standardID=\"ivo://ivoa.net/std/VOSI#capabilities\"",
        "standardID=\"ivo://ivoa.net/std/DALI#examples\"",
        &format!("http://{host}/tap/examples"),
    ] {
        ensure!(caps.contains(needle), "capabilities lack {needle}: {caps}");
    }
    ensure!(!caps.contains("upload-http"));

    let avail = tap
        .http
        .get(format!("{}/availability", tap.url))
        .send()
        .await?
        .text()
        .await?;
    ensure!(xml_texts(&avail, "available")? == ["true"], "{avail}");
    let up = xml_texts(&avail, "upSince")?;
    ensure!(
        up.len() == 1 && up[0].ends_with('Z') && up[0].contains('T'),
        "{avail}"
    );

    let examples = tap
        .http
        .get(format!("{}/examples", tap.url))
        .send()
        .await?
        .text()
        .await?;
    let queries = xml_texts(&examples, "pre")?;
    ensure!(queries.len() >= 4, "{examples}");
    ensure!(examples.contains("vocab=\"http://www.ivoa.net/rdf/examples#\""));
    ensure!(examples.matches("typeof=\"example\"").count() == queries.len());
    ensure!(examples.matches("property=\"name\"").count() == queries.len());
    ensure!(examples.matches("property=\"query\"").count() == queries.len());
    // The cone example runs (on test.gaia in place of demo.gaia).
    let cone_example = queries
        .iter()
        .find(|q| q.contains("CIRCLE"))
        .context("no cone example")?
        .replace("demo.gaia", "test.gaia");
    let resp = tap
        .post(&[
            ("LANG", "ADQL"),
            ("QUERY", &cone_example),
            ("RESPONSEFORMAT", "json"),
        ])
        .await?;
    ensure!(resp.status() == 200, "{}", resp.text().await?);

    in_unit(&tap, &by_id).await
}

/// IN_UNIT on bare and qualified catalog columns (units from the catalog) and on an
/// uploaded column (unit from its FIELD), checked value for value; a column without a unit
/// is refused with a clear message.
async fn in_unit(tap: &Tap, by_id: &BTreeMap<i64, &Row>) -> Result<()> {
    use almagest_adql::adql21::units::conversion_factor;
    let (ra0, dec0, r0) = CONE;
    let query = format!(
        "SELECT source_id, IN_UNIT(ra, 'arcsec') AS ra_arcsec, IN_UNIT(g.dec, 'rad') AS dec_rad \
         FROM test.gaia AS g \
         WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra0}, {dec0}, {r0}))"
    );
    let resp = tap
        .post(&[
            ("LANG", "ADQL"),
            ("QUERY", &query),
            ("RESPONSEFORMAT", "json"),
        ])
        .await?;
    ensure!(resp.status() == 200, "IN_UNIT: {}", resp.text().await?);
    let doc: serde_json::Value = serde_json::from_str(&resp.text().await?)?;
    let to_arcsec = conversion_factor("deg", "arcsec").map_err(anyhow::Error::msg)?;
    let to_rad = conversion_factor("deg", "rad").map_err(anyhow::Error::msg)?;
    ensure!((to_arcsec - 3600.0).abs() < 1e-9 && to_rad == std::f64::consts::PI / 180.0);
    let data = doc["data"].as_array().context("data")?;
    ensure!(data.len() > 10, "IN_UNIT cone: {} rows", data.len());
    for r in data {
        let id = r[0].as_i64().context("id")?;
        let row = by_id.get(&id).with_context(|| format!("unknown id {id}"))?;
        let (ra, dec) = (r[1].as_f64().context("ra")?, r[2].as_f64().context("dec")?);
        ensure!(
            ra.to_bits() == (row.ra * to_arcsec).to_bits()
                && dec.to_bits() == (row.dec * to_rad).to_bits(),
            "IN_UNIT row {id}: {ra} arcsec, {dec} rad for {} deg, {} deg",
            row.ra,
            row.dec
        );
    }

    // A unitless column.
    let (status, message) = tap
        .error(&[
            ("LANG", "ADQL"),
            ("QUERY", "SELECT IN_UNIT(source_id, 'deg') FROM test.gaia"),
        ])
        .await?;
    ensure!(
        status == 400
            && message.contains("line 1, column 8")
            && message.contains("IN_UNIT needs the unit of its first argument"),
        "{status} {message}"
    );
    // Units that measure different things.
    let (status, message) = tap
        .error(&[
            ("LANG", "ADQL"),
            ("QUERY", "SELECT IN_UNIT(ra, 'km') FROM test.gaia"),
        ])
        .await?;
    ensure!(
        status == 400 && message.contains("cannot convert from 'deg' to 'km'"),
        "{status} {message}"
    );

    // An uploaded column with a unit.
    let table = "<?xml version=\"1.0\"?><VOTABLE version=\"1.3\" \
        xmlns=\"http://www.ivoa.net/xml/VOTable/v1.3\"><RESOURCE><TABLE>\
        <FIELD name=\"r\" datatype=\"double\" unit=\"arcmin\"/><DATA><TABLEDATA>\
        <TR><TD>90</TD></TR><TR><TD>1.5</TD></TR></TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>";
    let form = reqwest::multipart::Form::new()
        .text("LANG", "ADQL")
        .text(
            "QUERY",
            "SELECT IN_UNIT(r, 'deg') AS d FROM TAP_UPLOAD.radii ORDER BY d",
        )
        .text("RESPONSEFORMAT", "json")
        .text("UPLOAD", "radii,param:t")
        .part(
            "t",
            reqwest::multipart::Part::bytes(table.as_bytes().to_vec()).file_name("t.xml"),
        );
    let resp = tap
        .http
        .post(format!("{}/sync", tap.url))
        .multipart(form)
        .send()
        .await?;
    ensure!(
        resp.status() == 200,
        "upload IN_UNIT: {}",
        resp.text().await?
    );
    let doc: serde_json::Value = serde_json::from_str(&resp.text().await?)?;
    let to_deg = conversion_factor("arcmin", "deg").map_err(anyhow::Error::msg)?;
    let got: Vec<f64> = doc["data"]
        .as_array()
        .context("data")?
        .iter()
        .filter_map(|r| r[0].as_f64())
        .collect();
    ensure!(
        got == [1.5 * to_deg, 90.0 * to_deg] && (got[1] - 1.5).abs() < 1e-12,
        "upload IN_UNIT: {got:?}"
    );
    Ok(())
}
