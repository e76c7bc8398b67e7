//! A seeded fuzz suite against a running cluster: mutated SQL over pgwire (simple and
//! extended protocol), mutated ADQL over TAP, mutated VOTable uploads and multipart
//! bodies, and malformed raw pgwire frames (before and after startup).
//!
//! What must hold, for every input: the server answers (an error with a SQLSTATE over
//! pgwire, an HTTP status below 500 over TAP), the connection that sent a statement stays
//! usable, no panic reaches a client or the log, and a normal query works afterwards.
//! Internal errors that are not panics (XX000) are counted and printed, not failed on.
//!
//! Bounded for CI (a few hundred inputs of each kind); `ALMAGEST_FUZZ_ROUNDS=N` runs N
//! times as many, and `ALMAGEST_FUZZ_SEED=S` picks another seed (printed either way).

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{self, Cluster};

/// Statements the SQL mutations start from: every part of the dialect users reach.
const SQL_SEEDS: &[&str] = &[
    "SELECT id, ra, dec FROM test.points WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 0, 0, 1)) ORDER BY id",
    "SELECT count(*), avg(ra), max(dec) FROM test.points WHERE dec > -10 GROUP BY name HAVING count(*) > 0",
    "SELECT a.id, b.id FROM test.points a JOIN test.points b ON scisql_angSep(a.ra, a.dec, b.ra, b.dec) < 1 WHERE a.id <> b.id",
    "SELECT id FROM test.points WHERE qserv_areaspec_box(350, -5, 10, 5)",
    "SELECT name || 'x', CAST(ra AS INT), ra / NULLIF(dec, 0) FROM test.points LIMIT 3",
    "SELECT * FROM test.points WHERE id IN (1, 2, 3) AND name LIKE 'o%' OR dec IS NULL",
    "SELECT id, ROW_NUMBER() OVER (PARTITION BY name ORDER BY ra) FROM test.points",
    "WITH t AS (SELECT id, ra FROM test.points) SELECT max(ra), min(id) FROM t",
    "SELECT scisql_s2PtInCircle(ra, dec, 0, 0, 2), DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 1, 1)) FROM test.points",
    "EXPLAIN SELECT count(*) FROM test.points WHERE ra BETWEEN 10 AND 20",
    "SELECT 9223372036854775807 + id, sum(id) FROM test.points GROUP BY id",
    "SELECT TOP 3 id FROM test.points ORDER BY ra DESC",
    "SELECT CASE WHEN ra > 180 THEN ra - 360 ELSE ra END, COALESCE(name, '-') FROM test.points",
    "SELECT id FROM test.points WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), POLYGON('ICRS', 0, 0, 10, 0, 10, 10))",
    "SHOW JOBS",
    "SET statement_timeout TO '2s'",
    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'test'",
];

/// Queries the ADQL mutations start from.
const ADQL_SEEDS: &[&str] = &[
    "SELECT TOP 5 id, ra, dec FROM test.points WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 0, 0, 5))",
    "SELECT COUNT(*) AS n FROM test.points WHERE 1 = INTERSECTS(CIRCLE('ICRS', ra, dec, 0.1), BOX('ICRS', 0, 0, 10, 10))",
    "SELECT a.id, b.id FROM test.points AS a JOIN test.points AS b ON 1 = CONTAINS(POINT('ICRS', a.ra, a.dec), CIRCLE('ICRS', b.ra, b.dec, 1))",
    "SELECT id, DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 10, 10)) AS d FROM test.points ORDER BY d",
    "SELECT ra, dec FROM test.points WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), POLYGON('ICRS', 0, 0, 10, 0, 10, 10))",
    "SELECT table_name, description FROM TAP_SCHEMA.tables WHERE schema_name = 'test'",
    "SELECT name, COUNT(*) AS n FROM test.points GROUP BY name HAVING COUNT(*) >= 1 ORDER BY name",
    "SELECT id FROM test.points WHERE ra BETWEEN 0 AND 360 AND dec IN (0, 1) OFFSET 1",
    "SELECT id, IN_UNIT(ra, 'arcsec') FROM test.points WHERE id > 2",
    "SELECT * FROM test.points WHERE 1 = CONTAINS(POINT(ra, dec), CIRCLE(0, 0, 2.5E0))",
];

/// Tokens a mutation may put in: keywords, operators, edge values and odd characters.
const VOCABULARY: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "JOIN",
    "ON",
    "GROUP BY",
    "ORDER BY",
    "HAVING",
    "UNION",
    "LIMIT",
    "TOP",
    "NULL",
    "NOT",
    "AND",
    "OR",
    "IN",
    "(",
    ")",
    ",",
    ".",
    "*",
    "+",
    "-",
    "/",
    "%",
    "||",
    "=",
    "<>",
    "<",
    ">=",
    "'",
    "\"",
    ";",
    "$1",
    "::",
    "::int2",
    "CAST",
    "0",
    "-0",
    "1e308",
    "-1e308",
    "1e-320",
    "9223372036854775808",
    "-9223372036854775808",
    "2147483648",
    "'NaN'",
    "'Infinity'",
    "'-Infinity'",
    "0.0",
    "1/0",
    "360",
    "-90",
    "90.0000001",
    "POINT('ICRS', 0, 90)",
    "CIRCLE('ICRS', 0, 0, 180)",
    "BOX('ICRS', 0, 0, 400, 10)",
    "POLYGON('ICRS', 0, 0, 0, 0, 0, 0)",
    "CONTAINS",
    "DISTANCE",
    "AREA",
    "COORD1",
    "é",
    "\u{1F30C}",
    "''",
    "'x'",
    "E'\\\\x'",
    "repeat('x', 100)",
    "array[1,2]",
    "ra",
    "dec",
    "test.points",
    "TAP_UPLOAD.t",
    "pg_catalog.pg_type",
    "generate_series(1, 3)",
];

/// The longest mutated text sent: long enough for every spelling, short of the known
/// deep-nesting crash (issue 15), which has its own tests when fixed.
const MAX_LEN: usize = 600;

fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() || c == '_' || c == '.' {
            current.push(c);
        } else {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            if !c.is_whitespace() {
                out.push(c.to_string());
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// One to three mutations of `seed`, token-wise and character-wise.
fn mutate(rng: &mut ChaCha8Rng, seed: &str) -> String {
    let mut toks = tokens(seed);
    for _ in 0..rng.random_range(1..=3) {
        if toks.is_empty() {
            toks.push(VOCABULARY[rng.random_range(0..VOCABULARY.len())].to_string());
            continue;
        }
        let at = rng.random_range(0..toks.len());
        match rng.random_range(0..7) {
            0 => {
                toks.remove(at);
            }
            1 => {
                let t = toks[at].clone();
                toks.insert(at, t);
            }
            2 => {
                let other = rng.random_range(0..toks.len());
                toks.swap(at, other);
            }
            3 | 4 => {
                toks[at] = VOCABULARY[rng.random_range(0..VOCABULARY.len())].to_string();
            }
            5 => {
                let t = VOCABULARY[rng.random_range(0..VOCABULARY.len())].to_string();
                toks.insert(at, t);
            }
            _ => {
                // A span of the statement repeated: longer lists, deeper nesting.
                let end = (at + rng.random_range(1..6)).min(toks.len());
                let span: Vec<String> = toks[at..end].to_vec();
                for (i, t) in span.into_iter().enumerate() {
                    toks.insert(end + i, t);
                }
            }
        }
    }
    let mut text = toks.join(" ");
    if rng.random_bool(0.1) {
        let cut = rng.random_range(0..=text.len());
        let cut = (0..=cut)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(cut);
    }
    if text.len() > MAX_LEN {
        let cut = (0..=MAX_LEN)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(cut);
    }
    text
}

/// Character-level mutations of a document (VOTable, multipart body).
fn mutate_bytes(rng: &mut ChaCha8Rng, doc: &[u8]) -> Vec<u8> {
    let mut out = doc.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        if out.is_empty() {
            out.push(rng.random());
            continue;
        }
        let at = rng.random_range(0..out.len());
        match rng.random_range(0..5) {
            0 => {
                let end = (at + rng.random_range(1..40)).min(out.len());
                out.drain(at..end);
            }
            1 => out[at] = rng.random(),
            2 => {
                let snippets: &[&[u8]] = &[
                    b"<TD>",
                    b"</TR>",
                    b"<TR>",
                    b"\"",
                    b"&",
                    b"&#0;",
                    b"<FIELD name=\"x\" datatype=\"double\"/>",
                    b"arraysize=\"*\"",
                    b"datatype=\"long\"",
                    b"1e999",
                    b"-",
                    b"NaN",
                    b"\xff\xfe",
                    b"<![CDATA[",
                    b"--",
                    b"\r\n",
                    b"Content-Disposition: form-data; name=\"x\"",
                ];
                let s = snippets[rng.random_range(0..snippets.len())];
                out.splice(at..at, s.iter().copied());
            }
            3 => {
                let end = (at + rng.random_range(1..60)).min(out.len());
                let span = out[at..end].to_vec();
                out.splice(end..end, span);
            }
            _ => out.truncate(at),
        }
    }
    out
}

fn rounds() -> usize {
    std::env::var("ALMAGEST_FUZZ_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1)
        .max(1)
}

fn seed() -> u64 {
    std::env::var("ALMAGEST_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261206)
}

/// What the inputs of one kind did.
#[derive(Default, Debug)]
struct Tally {
    sent: usize,
    ok: usize,
    refused: usize,
    internal: Vec<String>,
}

/// Fails unless a new connection runs a query within ten seconds: the server is up and
/// serves.
async fn still_serving(cluster: &Cluster, after: &str) -> Result<()> {
    let check = async {
        let client = harness::connect(cluster.pg_port).await?;
        let rows = client
            .simple_query("SELECT count(*) FROM test.points")
            .await?;
        anyhow::Ok(rows.len())
    };
    match tokio::time::timeout(Duration::from_secs(10), check).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => bail!("the server stopped serving after {after}: {e}"),
        Err(_) => bail!("the server did not answer within 10 s after {after}"),
    }
}

async fn fuzz_sql(cluster: &Cluster, rng: &mut ChaCha8Rng, n: usize) -> Result<Tally> {
    let mut tally = Tally::default();
    let mut client = harness::connect(cluster.pg_port).await?;
    client.simple_query("SET statement_timeout TO '5s'").await?;
    for i in 0..n {
        let seed = SQL_SEEDS[rng.random_range(0..SQL_SEEDS.len())];
        let sql = mutate(rng, seed);
        let extended = rng.random_bool(0.3);
        tally.sent += 1;
        let result = tokio::time::timeout(Duration::from_secs(30), async {
            if extended {
                client.query(sql.as_str(), &[]).await.map(|_| ())
            } else {
                client.simple_query(&sql).await.map(|_| ())
            }
        })
        .await
        .with_context(|| format!("no answer within 30 s to {sql:?}"))?;
        match result {
            Ok(()) => tally.ok += 1,
            Err(e) => match e.as_db_error() {
                Some(db) if db.message().contains("panicked") => {
                    bail!("a panic reached the client for {sql:?}: {}", db.message())
                }
                Some(db) if db.code().code() == "XX000" => {
                    tally.internal.push(format!("{sql:?}: {}", db.message()));
                }
                Some(_) => tally.refused += 1,
                // Refused by the client library itself (a parameter count, say).
                None if !client.is_closed() => tally.refused += 1,
                None => bail!("the connection was lost on {sql:?}: {e}"),
            },
        }
        if client.is_closed() {
            bail!("the server closed the connection after {sql:?}");
        }
        // A statement that set something odd (a tiny timeout) must not decide the next.
        if sql.to_ascii_lowercase().contains("statement_timeout") {
            client = harness::connect(cluster.pg_port).await?;
            client.simple_query("SET statement_timeout TO '5s'").await?;
        }
        if i % 100 == 99 {
            still_serving(cluster, &format!("SQL input {sql:?}")).await?;
        }
    }
    Ok(tally)
}

async fn fuzz_adql(cluster: &Cluster, rng: &mut ChaCha8Rng, n: usize) -> Result<Tally> {
    let mut tally = Tally::default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let url = format!("{}/sync", cluster.tap_url());
    for _ in 0..n {
        let seed = ADQL_SEEDS[rng.random_range(0..ADQL_SEEDS.len())];
        let adql = mutate(rng, seed);
        tally.sent += 1;
        let resp = http
            .post(&url)
            .form(&[("REQUEST", "doQuery"), ("LANG", "ADQL"), ("QUERY", &adql)])
            .send()
            .await
            .with_context(|| format!("no HTTP answer to ADQL {adql:?}"))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        tally_http(&mut tally, status, &body, &format!("ADQL {adql:?}"))?;
    }
    Ok(tally)
}

fn tally_http(tally: &mut Tally, status: u16, body: &str, what: &str) -> Result<()> {
    if body.contains("panicked") {
        bail!("a panic reached the client for {what}: {status} {body}");
    }
    match status {
        200 => tally.ok += 1,
        400..=499 => tally.refused += 1,
        // Out of memory, a busy cluster: the server's words, not a crash.
        503 => tally.refused += 1,
        _ => tally
            .internal
            .push(format!("{what}: {status} {}", &body[..body.len().min(300)])),
    }
    Ok(())
}

const VOTABLE: &str = "<?xml version=\"1.0\"?><VOTABLE version=\"1.4\" \
    xmlns=\"http://www.ivoa.net/xml/VOTable/v1.3\"><RESOURCE type=\"results\"><TABLE>\
    <FIELD name=\"id\" datatype=\"long\"/><FIELD name=\"ra\" datatype=\"double\" unit=\"deg\"/>\
    <FIELD name=\"dec\" datatype=\"double\" unit=\"deg\"/>\
    <FIELD name=\"label\" datatype=\"char\" arraysize=\"*\"/><DATA><TABLEDATA>\
    <TR><TD>1</TD><TD>0.5</TD><TD>0.5</TD><TD>a</TD></TR>\
    <TR><TD>2</TD><TD>359.9</TD><TD>-89.9</TD><TD>b &amp; c</TD></TR>\
    <TR><TD></TD><TD>NaN</TD><TD>0</TD><TD/></TR>\
    </TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>";

async fn fuzz_uploads(cluster: &Cluster, rng: &mut ChaCha8Rng, n: usize) -> Result<Tally> {
    let mut tally = Tally::default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let url = format!("{}/sync", cluster.tap_url());
    let query = "SELECT u.id, p.id FROM TAP_UPLOAD.t AS u JOIN test.points AS p \
                 ON 1 = CONTAINS(POINT('ICRS', p.ra, p.dec), CIRCLE('ICRS', u.ra, u.dec, 1))";
    let boundary = "almagestfuzzboundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"REQUEST\"\r\n\r\ndoQuery\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"LANG\"\r\n\r\nADQL\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"QUERY\"\r\n\r\n{query}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"UPLOAD\"\r\n\r\nt,param:t\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"t\"; filename=\"t.xml\"\r\n\
         Content-Type: application/x-votable+xml\r\n\r\n{VOTABLE}\r\n--{boundary}--\r\n"
    );
    for i in 0..n {
        // Half mutate the VOTable inside a well-formed body, half the body itself.
        let payload = if i % 2 == 0 {
            let votable = mutate_bytes(rng, VOTABLE.as_bytes());
            let form = reqwest::multipart::Form::new()
                .text("REQUEST", "doQuery")
                .text("LANG", "ADQL")
                .text("QUERY", query)
                .text("UPLOAD", "t,param:t")
                .part(
                    "t",
                    reqwest::multipart::Part::bytes(votable).file_name("t.xml"),
                );
            http.post(&url).multipart(form)
        } else {
            http.post(&url)
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(mutate_bytes(rng, body.as_bytes()))
        };
        tally.sent += 1;
        let resp = payload
            .send()
            .await
            .with_context(|| format!("no HTTP answer to upload input {i}"))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        tally_http(&mut tally, status, &text, &format!("upload input {i}"))?;
    }
    Ok(tally)
}

/// A startup message for `user` on database almagest, protocol 3.0.
fn startup_message(user: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196608u32.to_be_bytes());
    for (k, v) in [("user", user), ("database", "almagest")] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    msg.extend(body);
    msg
}

/// Reads whatever the server sends within `wait`, until it closes; true if it closed.
async fn drain(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// Reads until a ReadyForQuery ('Z') message has arrived, or fails.
async fn until_ready(stream: &mut TcpStream) -> Result<()> {
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .context("no ReadyForQuery within 10 s")??;
        ensure!(n > 0, "closed during startup");
        seen.extend_from_slice(&buf[..n]);
        // Walk the messages: type byte, then a length that counts itself.
        let mut at = 0;
        while at + 5 <= seen.len() {
            let len = u32::from_be_bytes(seen[at + 1..at + 5].try_into().unwrap()) as usize;
            if seen[at] == b'Z' {
                return Ok(());
            }
            at += 1 + len;
        }
    }
}

/// A frame of a random type with a random, possibly lying, length and body.
fn frame(rng: &mut ChaCha8Rng) -> Vec<u8> {
    const TYPES: &[u8] = b"QPBEDSHCXFdcfpZ\x00\xff";
    let kind = if rng.random_bool(0.9) {
        TYPES[rng.random_range(0..TYPES.len())]
    } else {
        rng.random()
    };
    let body_len = rng.random_range(0..200);
    let mut body: Vec<u8> = (0..body_len).map(|_| rng.random()).collect();
    if rng.random_bool(0.5) {
        // Something close to a real body: text, NULs, counts.
        body = match kind {
            b'Q' => b"SELECT 1\0".to_vec(),
            b'P' => b"s1\0SELECT $1\0\x00\x01\x00\x00\x00\x17".to_vec(),
            b'B' => b"\0s1\0\x00\x01\x00\x01\x00\x01\xff\xff\xff\xf0\x00\x00".to_vec(),
            b'E' => b"\0\x7f\xff\xff\xff".to_vec(),
            b'D' => b"S\0".to_vec(),
            _ => body,
        };
        if rng.random_bool(0.5) && !body.is_empty() {
            let at = rng.random_range(0..body.len());
            body[at] = rng.random();
        }
    }
    let len: u32 = match rng.random_range(0..6) {
        0 => 0,
        1 => 3,
        2 => rng.random(),
        3 => (body.len() as u32 + 4).wrapping_add(rng.random_range(1..10)),
        _ => body.len() as u32 + 4,
    };
    let mut out = vec![kind];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend(body);
    out
}

async fn fuzz_frames(cluster: &Cluster, rng: &mut ChaCha8Rng, n: usize) -> Result<usize> {
    let addr = format!("127.0.0.1:{}", cluster.pg_port);
    let mut closed = 0;
    for i in 0..n {
        let mut stream = TcpStream::connect(&addr).await?;
        if i % 3 == 0 {
            // Garbage where the startup message belongs (or a startup that lies).
            let mut bytes = if rng.random_bool(0.5) {
                startup_message("almagest")
            } else {
                Vec::new()
            };
            let extra: Vec<u8> = (0..rng.random_range(0..64)).map(|_| rng.random()).collect();
            bytes.extend(extra);
            let cut = rng.random_range(0..=bytes.len());
            if rng.random_bool(0.5) {
                bytes[..cut].reverse();
            }
            let _ = stream.write_all(&bytes).await;
        } else {
            stream.write_all(&startup_message("almagest")).await?;
            until_ready(&mut stream).await?;
            for _ in 0..rng.random_range(1..=3) {
                if stream.write_all(&frame(rng)).await.is_err() {
                    break;
                }
            }
        }
        if drain(&mut stream, Duration::from_millis(300)).await {
            closed += 1;
        }
        drop(stream);
        if i % 25 == 24 {
            still_serving(cluster, &format!("raw frame input {i}")).await?;
        }
    }
    Ok(closed)
}

/// The panics of a server log with backtraces: how many were pgwire's frame decoders
/// (`pgwire::messages`, the known defect), and the text of every other one.
fn panics_in(log: &str) -> (usize, Vec<String>) {
    // A panic's block runs from its "panicked at" line over its message (any text, any
    // number of lines) and its backtrace, to the backtrace's closing "note:" line, the next
    // panic or the next log event, whichever comes first.
    let mut blocks: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for line in log.lines() {
        if line.contains("panicked at") {
            blocks.extend(current.take());
            current = Some(line.to_owned());
        } else if is_log_event(line) {
            blocks.extend(current.take());
        } else if let Some(block) = &mut current {
            block.push('\n');
            block.push_str(line);
            if line.starts_with("note:") {
                blocks.extend(current.take());
            }
        }
    }
    blocks.extend(current);
    let (decoder, other): (Vec<String>, Vec<String>) = blocks
        .into_iter()
        .partition(|b| b.contains("pgwire::messages::") || b.contains("/src/messages/"));
    (decoder.len(), other)
}

/// A line `tracing`'s text format wrote: a timestamp first (after any colour codes).
fn is_log_event(line: &str) -> bool {
    let mut rest = line;
    while let Some(after) = rest.strip_prefix('\x1b') {
        rest = after.split_once('m').map_or("", |(_, tail)| tail);
    }
    let b = rest.as_bytes();
    b.len() > 5 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-'
}

#[test]
fn t95_panics_are_told_apart() {
    let log = "2026-12-06T19:00:00.000001Z  INFO almagest: started\n\
        thread 'tokio-rt-worker' (1) panicked at /x/bytes-1.12.1/src/lib.rs:207:5:\n\
        advance out of bounds\n\
        stack backtrace:\n   0: bytes::panic_advance\n   1: pgwire::messages::copy::decode\n\
        thread 'tokio-rt-worker' (2) panicked at server/src/x.rs:1:1:\noops\n\
        stack backtrace:\n   0: almagest::x\n\
        \x1b[2m2026-12-06T19:00:01.000001Z\x1b[0m \x1b[33m WARN\x1b[0m later\n";
    let (decoder, other) = panics_in(log);
    assert_eq!(decoder, 1);
    assert_eq!(other.len(), 1, "{other:?}");
    assert!(other[0].contains("server/src/x.rs"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t95_fuzz_sql_adql_uploads_and_frames() -> Result<()> {
    let dir = harness::test_dir("t95");
    // Backtraces in the log tell a panic of pgwire's frame decoders from any other.
    let mut cluster =
        Cluster::start_with_env(&dir.join("cluster"), 2, &[], &[("RUST_BACKTRACE", "1")]).await?;
    let points = harness::project_file("tests/data/points.csv");
    cluster.load("test.points", Some(("ra", "dec", "id")), &[&points])?;
    let (seed, rounds) = (seed(), rounds());
    eprintln!("t95: seed {seed}, {rounds} round(s) (ALMAGEST_FUZZ_SEED, ALMAGEST_FUZZ_ROUNDS)");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);

    let sql = fuzz_sql(&cluster, &mut rng, 400 * rounds).await?;
    let adql = fuzz_adql(&cluster, &mut rng, 300 * rounds).await?;
    let uploads = fuzz_uploads(&cluster, &mut rng, 100 * rounds).await?;
    let frames = 150 * rounds;
    let closed = fuzz_frames(&cluster, &mut rng, frames).await?;

    for (what, tally) in [("SQL", &sql), ("ADQL", &adql), ("uploads", &uploads)] {
        eprintln!(
            "t95: {what}: {} sent, {} answered, {} refused with an error, {} internal errors",
            tally.sent,
            tally.ok,
            tally.refused,
            tally.internal.len()
        );
        for line in &tally.internal {
            eprintln!("t95:   internal: {line}");
        }
    }
    eprintln!("t95: raw frames: {frames} connections, {closed} closed by the server");

    still_serving(&cluster, "the whole suite").await?;
    ensure!(cluster.running(), "the server process is gone");
    let log = std::fs::read_to_string(cluster.log_file())?;
    let (decoder, other) = panics_in(&log);
    eprintln!(
        "t95: {decoder} panics of pgwire's frame decoders (contained to their connection; \
         pgwire 0.41 does not reject a frame length below 4)"
    );
    ensure!(
        other.is_empty(),
        "panics in the server log:\n{}",
        other.join("\n----\n")
    );
    // The suite is not vacuous: inputs of every kind were answered and refused.
    for (what, tally) in [("SQL", &sql), ("ADQL", &adql)] {
        ensure!(
            tally.ok > 0 && tally.refused > 0,
            "{what}: every input had the same fate: {tally:?}"
        );
    }
    ensure!(uploads.refused > 0, "no upload was refused: {uploads:?}");
    Ok(())
}
