//! End-to-end tests of the Postgres front end: a server on 127.0.0.1 over a small
//! in-memory catalog, driven by tokio-postgres and by the real `psql` binary.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Float64Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::{MemTable, MemorySchemaProvider, SchemaProvider};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{create_udf, ColumnarValue, Volatility};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::{SessionConfig, SessionContext};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_postgres::error::ErrorPosition;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use super::{serve_with_limits, LimitsConfig};

/// Generous bound on anything that should be quick, so a bug fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(30);

/// A front end on an ephemeral port; `stop` shuts it down and waits for it.
struct TestServer {
    addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
    /// Set when the stream of `demo.endless` is dropped.
    endless_dropped: Arc<AtomicBool>,
}

impl TestServer {
    async fn start() -> Self {
        Self::start_with_limits(LimitsConfig::default()).await
    }

    async fn start_with_limits(limits: LimitsConfig) -> Self {
        let endless_dropped = Arc::new(AtomicBool::new(false));
        let ctx = demo_context(Arc::clone(&endless_dropped));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_with_limits(listener, ctx, limits, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            shutdown,
            task,
            endless_dropped,
        }
    }

    async fn connect(&self) -> Client {
        self.connect_as("almagest").await.unwrap()
    }

    async fn connect_as(&self, user: &str) -> Result<Client, tokio_postgres::Error> {
        let config = format!(
            "host=127.0.0.1 port={} user={user} dbname=almagest",
            self.addr.port()
        );
        let (client, connection) = tokio_postgres::connect(&config, NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    async fn stop(self) {
        let _ = self.shutdown.send(());
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("server did not stop")
            .unwrap()
            .unwrap();
    }
}

fn gaia_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source_id", DataType::Int64, false),
        Field::new("ra", DataType::Float64, true),
        Field::new("dec", DataType::Float64, true),
        Field::new("parallax", DataType::Float64, true),
    ]))
}

fn gaia_batch() -> RecordBatch {
    RecordBatch::try_new(
        gaia_schema(),
        vec![
            Arc::new(Int64Array::from(vec![101, 102, 103])),
            Arc::new(Float64Array::from(vec![10.5, 20.25, 30.0])),
            Arc::new(Float64Array::from(vec![-5.0, 0.0, 45.5])),
            Arc::new(Float64Array::from(vec![0.5, 1.5, 2.5])),
        ],
    )
    .unwrap()
}

/// The coordinator stand-in: catalog `almagest` with a schema `demo` holding `gaia` (three
/// stars), `endless` (a stream of stars that never ends), and a function that panics.
fn demo_context(endless_dropped: Arc<AtomicBool>) -> Arc<SessionContext> {
    // Two partitions whatever the machine, so that a CPU-bound query keeps at most two of
    // the test runtime's worker threads busy.
    let config = SessionConfig::new()
        .with_default_catalog_and_schema("almagest", "public")
        .with_target_partitions(2);
    let ctx = SessionContext::new_with_config(config);
    let demo = MemorySchemaProvider::new();
    let gaia = MemTable::try_new(gaia_schema(), vec![vec![gaia_batch()]]).unwrap();
    demo.register_table("gaia".into(), Arc::new(gaia)).unwrap();
    let endless = StreamingTable::try_new(
        gaia_schema(),
        vec![Arc::new(EndlessPartition {
            schema: gaia_schema(),
            dropped: endless_dropped,
        })],
    )
    .unwrap();
    demo.register_table("endless".into(), Arc::new(endless))
        .unwrap();
    ctx.catalog("almagest")
        .unwrap()
        .register_schema("demo", Arc::new(demo))
        .unwrap();
    ctx.register_udf(create_udf(
        "almagest_test_panic",
        vec![DataType::Int64],
        DataType::Int64,
        Volatility::Volatile,
        Arc::new(
            |_: &[ColumnarValue]| -> datafusion::error::Result<ColumnarValue> {
                panic!("almagest_test_panic was called")
            },
        ),
    ));
    Arc::new(ctx)
}

#[derive(Debug)]
struct EndlessPartition {
    schema: SchemaRef,
    dropped: Arc<AtomicBool>,
}

/// Raises its flag when dropped, that is when the query's stream is dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl PartitionStream for EndlessPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let flag = DropFlag(Arc::clone(&self.dropped));
        let batches = futures::stream::unfold(flag, |flag| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Some((Ok(gaia_batch()), flag))
        });
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            batches,
        ))
    }
}

fn rows_of(messages: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_owned))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

fn sqlstate(err: &tokio_postgres::Error) -> String {
    err.code()
        .map(|c| c.code().to_owned())
        .unwrap_or_else(|| panic!("error without SQLSTATE: {err:?}"))
}

async fn assert_usable(client: &Client) {
    let rows = client.simple_query("SELECT 1 + 1").await.unwrap();
    assert_eq!(rows_of(&rows), vec![vec![Some("2".to_owned())]]);
}

#[tokio::test]
async fn t10_simple_query() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let messages = client
        .simple_query("SELECT source_id, ra FROM demo.gaia ORDER BY source_id")
        .await
        .unwrap();
    assert_eq!(
        rows_of(&messages),
        vec![
            vec![Some("101".into()), Some("10.5".into())],
            vec![Some("102".into()), Some("20.25".into())],
            vec![Some("103".into()), Some("30.0".into())],
        ]
    );
    // Several statements in one simple query, and the empty query.
    let messages = client
        .simple_query("SELECT count(*) FROM demo.gaia; SELECT max(dec) FROM demo.gaia")
        .await
        .unwrap();
    assert_eq!(
        rows_of(&messages),
        vec![vec![Some("3".into())], vec![Some("45.5".into())]]
    );
    client.simple_query("").await.unwrap();
    drop(client);
    server.stop().await;
}

#[tokio::test]
async fn t20_extended_query_with_parameters() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let rows = client
        .query(
            "SELECT source_id, parallax FROM demo.gaia WHERE parallax > $1 ORDER BY source_id",
            &[&1.0f64],
        )
        .await
        .unwrap();
    let got: Vec<(i64, f64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, vec![(102, 1.5), (103, 2.5)]);

    // A prepared statement runs again with other parameters.
    let statement = client
        .prepare("SELECT ra FROM demo.gaia WHERE source_id = $1")
        .await
        .unwrap();
    for (id, ra) in [(101i64, 10.5f64), (103, 30.0)] {
        let row = client.query_one(&statement, &[&id]).await.unwrap();
        assert_eq!(row.get::<_, f64>(0), ra);
    }
    drop(client);
    server.stop().await;
}

#[tokio::test]
async fn t30_errors_carry_sqlstate_and_leave_the_connection_usable() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let cases = [
        ("SELEC 1", "42601"),
        ("SELECT * FROM demo.nope", "42P01"),
        ("SELECT nope FROM demo.gaia", "42703"),
        ("SELECT no_such_function(ra) FROM demo.gaia", "42883"),
        ("SELECT source_id / 0 FROM demo.gaia", "22012"),
    ];
    for (sql, expected) in cases {
        let err = client.simple_query(sql).await.unwrap_err();
        assert_eq!(sqlstate(&err), expected, "simple query {sql}: {err:?}");
        let message = err.as_db_error().unwrap().message().to_owned();
        assert!(
            !message.contains("ParserError(") && !message.is_empty(),
            "message of {sql} is not readable: {message}"
        );
        if expected == "42601" {
            // psql draws its caret from the position.
            let position = err.as_db_error().unwrap().position();
            assert_eq!(position, Some(&ErrorPosition::Original(1)), "{sql}");
        }
        assert_usable(&client).await;

        let err = client.query(sql, &[]).await.unwrap_err();
        assert_eq!(sqlstate(&err), expected, "extended query {sql}: {err:?}");
        assert_usable(&client).await;
    }
    drop(client);
    server.stop().await;
}

#[tokio::test]
async fn t31_extended_protocol_takes_one_statement() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    // As in PostgreSQL: a Parse of several statements is refused, nothing of it runs.
    for sql in ["BEGIN; SELECT 1; COMMIT", "SELECT 1; SELECT 2"] {
        let err = client.prepare(sql).await.unwrap_err();
        assert_eq!(sqlstate(&err), "42601", "{sql}: {err:?}");
        let message = err.as_db_error().unwrap().message().to_owned();
        assert_eq!(
            message, "cannot insert multiple commands into a prepared statement",
            "{sql}"
        );
        assert_usable(&client).await;
    }
    // One statement with its semicolon is one statement; the simple protocol runs several.
    let rows = client.query("SELECT 1 AS one;", &[]).await.unwrap();
    assert_eq!(rows.len(), 1);
    let messages = client.simple_query("SELECT 1; SELECT 2").await.unwrap();
    let data_rows = messages
        .iter()
        .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
        .count();
    assert_eq!(data_rows, 2);
    drop(client);
    server.stop().await;
}

#[tokio::test]
async fn t25_portals_and_cursors() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;

    // A portal read a few rows at a time, as JDBC does with a fetch size.
    let transaction = client.transaction().await.unwrap();
    let portal = transaction
        .bind("SELECT source_id FROM demo.gaia ORDER BY source_id", &[])
        .await
        .unwrap();
    let first = transaction.query_portal(&portal, 2).await.unwrap();
    let rest = transaction.query_portal(&portal, 10).await.unwrap();
    let ids = |rows: &[tokio_postgres::Row]| rows.iter().map(|r| r.get(0)).collect::<Vec<i64>>();
    assert_eq!((ids(&first), ids(&rest)), (vec![101, 102], vec![103]));
    transaction.commit().await.unwrap();

    // A cursor, as psycopg's server-side cursors use one.
    let messages = client
        .simple_query(
            "DECLARE stars CURSOR FOR SELECT source_id FROM demo.gaia ORDER BY source_id; \
             FETCH FORWARD 2 FROM stars; FETCH FORWARD 2 FROM stars; CLOSE stars",
        )
        .await
        .unwrap();
    assert_eq!(
        rows_of(&messages),
        vec![
            vec![Some("101".into())],
            vec![Some("102".into())],
            vec![Some("103".into())]
        ]
    );
    drop(client);
    server.stop().await;
}

/// Issues `query` on `client`, cancels it from another connection after it has run a while,
/// and checks it fails with 57014 promptly.
async fn cancel_while_running(client: &Client, query: &str, extended: bool) {
    let token = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let cancelled_at = Instant::now();
        token.cancel_query(NoTls).await.unwrap();
        cancelled_at
    });
    let outcome = tokio::time::timeout(PATIENCE, async {
        if extended {
            client.query(query, &[]).await.map(|_| ())
        } else {
            client.simple_query(query).await.map(|_| ())
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{query} was not cancelled"));
    let finished_at = Instant::now();
    let cancelled_at = canceller.await.unwrap();
    let err = outcome.expect_err("the query should have been cancelled");
    assert_eq!(sqlstate(&err), "57014", "{err:?}");
    assert!(
        finished_at.saturating_duration_since(cancelled_at) < Duration::from_secs(5),
        "cancel took {:?}",
        finished_at - cancelled_at
    );
}

// Several worker threads, as in the server: a query may keep one busy while the cancel
// request is served on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn t40_cancel_stops_a_running_query() {
    let server = TestServer::start().await;
    let client = server.connect().await;

    // The endless stream is dropped when its query is cancelled, on both protocols.
    for extended in [false, true] {
        server.endless_dropped.store(false, Ordering::SeqCst);
        cancel_while_running(&client, "SELECT * FROM demo.endless", extended).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !server.endless_dropped.load(Ordering::SeqCst) {
            assert!(
                Instant::now() < deadline,
                "the query's stream was not dropped"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_usable(&client).await;
    }

    // A CPU-bound join that would run for minutes; it yields to the scheduler now and then
    // (its big side is the streamed one), so cancelling really stops it.
    let long_join = "SELECT count(*) FROM generate_series(1, 3) AS a \
                     CROSS JOIN generate_series(1, 10000000000) AS b";
    for extended in [false, true] {
        cancel_while_running(&client, long_join, extended).await;
        assert_usable(&client).await;
    }

    // A join that computes for seconds without ever yielding (each right batch meets twenty
    // thousand left rows within one poll): the client still hears of its cancel at once,
    // though the computation only stops at its next yield point.
    let stubborn_join = "SELECT count(*) FROM generate_series(1, 20000) AS a \
                         CROSS JOIN generate_series(1, 100000) AS b";
    cancel_while_running(&client, stubborn_join, false).await;
    assert_usable(&client).await;

    // A cancel request between queries reaches none (the next one runs to its end). The
    // client does not wait for the server to read its request, so the test does.
    client.cancel_token().cancel_query(NoTls).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_usable(&client).await;

    drop(client);
    server.stop().await;
}

/// Runs `query` (simple or extended protocol) under the session's statement timeout and
/// checks it fails with 57014 for that reason, well before `PATIENCE`.
async fn times_out(client: &Client, query: &str, extended: bool) {
    let outcome = tokio::time::timeout(PATIENCE, async {
        if extended {
            client.query(query, &[]).await.map(|_| ())
        } else {
            client.simple_query(query).await.map(|_| ())
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{query} did not time out"));
    let err = outcome.expect_err("the query should have timed out");
    let db = err.as_db_error().expect("a server error");
    assert_eq!(
        (db.code().code(), db.message()),
        ("57014", "canceling statement due to statement timeout"),
        "{query}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn t45_statement_timeout_stops_planning_and_streaming() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    // Values PostgreSQL refuses are refused, on both protocols, and change nothing.
    for bad in ["'abc'", "-1", "'5 hours'", "'25d'"] {
        let sql = format!("SET statement_timeout TO {bad}");
        let err = client.simple_query(&sql).await.unwrap_err();
        assert_eq!(sqlstate(&err), "22023", "{sql}: {err:?}");
        let err = client.execute(sql.as_str(), &[]).await.unwrap_err();
        assert_eq!(sqlstate(&err), "22023", "{sql}: {err:?}");
    }
    assert_eq!(show_timeout(&client).await, "0");

    // Set over the extended protocol, with a unit; read back in milliseconds.
    client
        .execute("SET statement_timeout TO '0.3s'", &[])
        .await
        .unwrap();
    assert_eq!(show_timeout(&client).await, "300ms");
    // A quick query is untouched.
    assert_usable(&client).await;

    let long_join = "SELECT count(*) FROM generate_series(1, 3) AS a \
                     CROSS JOIN generate_series(1, 10000000000) AS b";
    for extended in [false, true] {
        server.endless_dropped.store(false, Ordering::SeqCst);
        times_out(&client, "SELECT * FROM demo.endless", extended).await;
        // The stream is dropped, which is what stops a query's workers.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !server.endless_dropped.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "the stream was not dropped");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        times_out(&client, long_join, extended).await;
        assert_usable(&client).await;
    }

    // RESET lifts it: the endless stream runs until cancelled by the user.
    client
        .simple_query("RESET statement_timeout")
        .await
        .unwrap();
    assert_eq!(show_timeout(&client).await, "0");
    cancel_while_running(&client, "SELECT * FROM demo.endless", false).await;

    // A plain number is milliseconds; 0 is no limit.
    client
        .simple_query("SET statement_timeout = 200")
        .await
        .unwrap();
    assert_eq!(show_timeout(&client).await, "200ms");
    times_out(&client, long_join, false).await;
    client
        .simple_query("SET statement_timeout TO DEFAULT")
        .await
        .unwrap();
    assert_eq!(show_timeout(&client).await, "0");

    drop(client);
    server.stop().await;
}

async fn show_timeout(client: &Client) -> String {
    let rows = client.simple_query("SHOW statement_timeout").await.unwrap();
    rows_of(&rows)[0][0].clone().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn t47_limits_refuse_with_their_sqlstate_and_release() {
    let server = TestServer::start_with_limits(LimitsConfig {
        max_connections: 3,
        max_queries_per_user: 1,
        max_query_bytes: 200,
        max_result_rows: 5,
    })
    .await;
    let ann = server.connect_as("ann").await.unwrap();
    let ann2 = server.connect_as("ann").await.unwrap();
    let bob = server.connect_as("bob").await.unwrap();

    // A fourth connection is refused in the protocol, with PostgreSQL's words.
    let err = server
        .connect_as("eve")
        .await
        .err()
        .expect("a fourth connection");
    let db = err.as_db_error().expect("a server error");
    assert_eq!(
        (db.code().code(), db.message()),
        (
            "53300",
            "sorry, too many clients already (max_connections = 3)"
        )
    );
    // A cancel request still gets through on a full server (it is not a session).
    bob.cancel_token().cancel_query(NoTls).await.unwrap();

    // ann holds a statement open: a portal of the endless stream that has sent its first
    // rows. Her second statement, on another connection, is refused at once; bob is not
    // held back by ann.
    let mut ann = ann;
    let transaction = ann.transaction().await.unwrap();
    let portal = transaction
        .bind("SELECT * FROM demo.endless", &[])
        .await
        .unwrap();
    let first = transaction.query_portal(&portal, 1).await.unwrap();
    assert_eq!(first.len(), 1);
    let refused = ann2.simple_query("SELECT 1").await.unwrap_err();
    let db = refused.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "53400", "{db:?}");
    assert!(
        db.message().contains("max_queries_per_user = 1"),
        "{}",
        db.message()
    );
    // The extended protocol counts too.
    let err = ann2.query("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&err), "53400", "{err:?}");
    assert_usable(&bob).await;
    // Closing the portal ends the statement: ann's other connection runs again.
    drop(portal);
    transaction.rollback().await.unwrap();
    let deadline = Instant::now() + PATIENCE;
    while ann2.simple_query("SELECT 1").await.is_err() {
        assert!(
            Instant::now() < deadline,
            "ann's statement was never released"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_usable(&ann).await;

    // A statement text past max_query_bytes, on both protocols.
    let long = format!("SELECT 1 + {}", vec!["1"; 100].join(" + "));
    for extended in [false, true] {
        let err = if extended {
            bob.query(long.as_str(), &[]).await.unwrap_err()
        } else {
            bob.simple_query(&long).await.unwrap_err()
        };
        let db = err.as_db_error().expect("a server error");
        assert_eq!(db.code().code(), "54000", "{db:?}");
        assert!(
            db.message().contains("max_query_bytes = 200"),
            "{}",
            db.message()
        );
    }

    // A result of up to max_result_rows comes whole; one row more fails, never cut.
    let rows = bob
        .query("SELECT * FROM generate_series(1, 5) AS t(v)", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 5);
    for extended in [false, true] {
        let sql = "SELECT * FROM generate_series(1, 6) AS t(v)";
        let err = if extended {
            bob.query(sql, &[]).await.unwrap_err()
        } else {
            bob.simple_query(sql).await.unwrap_err()
        };
        let db = err.as_db_error().expect("a server error");
        assert_eq!(db.code().code(), "54000", "{db:?}");
        assert!(
            db.message().contains("more than 5 rows"),
            "{}",
            db.message()
        );
        assert_usable(&bob).await;
    }

    // A connection closed makes room for another.
    drop(bob);
    let deadline = Instant::now() + PATIENCE;
    let eve = loop {
        match server.connect_as("eve").await {
            Ok(eve) => break eve,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("no room after a connection closed: {e}"),
        }
    };
    assert_usable(&eve).await;

    drop((ann, ann2, eve));
    server.stop().await;
}

#[tokio::test]
async fn t50_a_panicking_query_is_an_error_not_a_crash() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let err = client
        .simple_query("SELECT almagest_test_panic(source_id) FROM demo.gaia")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "XX000", "{err:?}");
    assert_usable(&client).await;
    let err = client
        .query("SELECT almagest_test_panic(source_id) FROM demo.gaia", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "XX000", "{err:?}");
    assert_usable(&client).await;
    // The server still accepts connections.
    let other = server.connect().await;
    assert_usable(&other).await;
    drop((client, other));
    server.stop().await;
}

/// Runs `psql -c command` against `server` and returns its standard output.
async fn psql(server: &TestServer, command: &str) -> String {
    let output = tokio::time::timeout(
        PATIENCE,
        tokio::process::Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &server.addr.port().to_string()])
            .args(["-U", "almagest", "-d", "almagest"])
            // No ~/.psqlrc, never prompt for a password, fail on the first error.
            .args(["-X", "-w", "-v", "ON_ERROR_STOP=1", "-c", command])
            .env("PGCONNECT_TIMEOUT", "10")
            // psql's default: ask for TLS, go on in plain text when the server answers 'N'.
            .env("PGSSLMODE", "prefer")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("psql hung")
    .expect("psql is not installed");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "psql -c '{command}' failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    stdout
}

#[tokio::test]
async fn t60_psql_describes_tables() {
    let server = TestServer::start().await;

    let tables = psql(&server, r"\dt").await;
    for expected in ["demo", "gaia", "table"] {
        assert!(
            tables.contains(expected),
            "\\dt lacks {expected}:\n{tables}"
        );
    }
    assert!(
        !tables.contains("pg_class"),
        "\\dt lists pg_catalog:\n{tables}"
    );

    let gaia = psql(&server, r"\d demo.gaia").await;
    for expected in [
        "source_id",
        "bigint",
        "ra",
        "dec",
        "parallax",
        "double precision",
    ] {
        assert!(
            gaia.contains(expected),
            "\\d demo.gaia lacks {expected}:\n{gaia}"
        );
    }

    let databases = psql(&server, r"\l").await;
    assert!(databases.contains("almagest"), "\\l:\n{databases}");
    let schemas = psql(&server, r"\dn").await;
    assert!(schemas.contains("demo"), "\\dn:\n{schemas}");

    let rows = psql(&server, "SELECT source_id FROM demo.gaia ORDER BY 1").await;
    assert!(rows.contains("101") && rows.contains("(3 rows)"), "{rows}");

    server.stop().await;
}
