//! Where a query's work runs, and how work already running learns that its query stopped.
//!
//! [`Execution`] is the runtime that runs query work (DataFusion streams, fragments, job
//! runs). The server gives it a runtime of its own, apart from the one that accepts
//! connections and answers `/health` and cancel requests, so a query that computes for
//! minutes within one poll (a nested-loop join evaluating its filter over a huge
//! cross product never yields to the scheduler) cannot starve them. Without a runtime
//! given (the libraries' tests), it is the caller's.
//!
//! [`QueryStop`] is a query's stop flag, carried in its session's configuration (every
//! physical expression keeps the configuration it was planned with) and read by our
//! UDFs at each batch they evaluate: a canceled or timed-out query whose operator is
//! stuck evaluating a spatial predicate fails at the next batch instead of computing to
//! its end. An operator that evaluates no UDF stops at its next yield point, when its
//! task is aborted.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::joins::utils::JoinFilter;
use datafusion::physical_plan::joins::{NestedLoopJoinExec, NestedLoopJoinExecBuilder};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use futures::{FutureExt, StreamExt};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::AdqlError;

/// The runtime query work runs on: the one given, or the caller's.
#[derive(Clone, Default)]
pub struct Execution {
    handle: Option<Handle>,
}

impl std::fmt::Debug for Execution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.handle.is_some() {
            "Execution(own runtime)"
        } else {
            "Execution(caller's runtime)"
        })
    }
}

/// The runtime is not configuration: two settings that differ only in it are alike.
impl PartialEq for Execution {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Execution {
    /// Query work runs on the runtime of `handle`.
    pub fn on(handle: Handle) -> Self {
        Self {
            handle: Some(handle),
        }
    }

    fn handle(&self) -> Handle {
        self.handle.clone().unwrap_or_else(Handle::current)
    }

    /// Runs `future` as a task of the execution runtime; tasks it spawns run there too.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle().spawn(future)
    }

    /// `future`, polled with the execution runtime entered, so that the tasks it spawns
    /// (DataFusion starts the tasks of its partitions when a plan is executed) run there,
    /// although the future itself is polled where it is awaited.
    pub fn entered<F: Future>(&self, future: F) -> Entered<F> {
        Entered {
            handle: self.handle.clone(),
            future: Box::pin(future),
        }
    }

    /// `stream`, pulled by a task of the execution runtime a few batches ahead of the
    /// reader. Dropping the returned stream sets `stop` and aborts the task; a panic while
    /// pulling becomes an error, never a silently shortened result.
    pub fn spawn_stream(
        &self,
        stream: SendableRecordBatchStream,
        stop: QueryStop,
    ) -> SendableRecordBatchStream {
        let schema = stream.schema();
        let (sender, receiver) = tokio::sync::mpsc::channel(BATCHES_AHEAD);
        let task = self.spawn(async move {
            let mut stream = stream;
            loop {
                let item = match AssertUnwindSafe(stream.next()).catch_unwind().await {
                    Ok(Some(item)) => item,
                    Ok(None) => return,
                    Err(panic) => Err(panicked(&*panic)),
                };
                let failed = item.is_err();
                if sender.send(item).await.is_err() || failed {
                    return;
                }
            }
        });
        let guard = Puller {
            task,
            stop,
            ended: false,
        };
        let batches =
            futures::stream::unfold((receiver, guard), |(mut receiver, guard)| async move {
                match receiver.recv().await {
                    Some(item) => Some((item, (receiver, guard))),
                    None => {
                        guard.end();
                        None
                    }
                }
            });
        Box::pin(RecordBatchStreamAdapter::new(schema, batches))
    }
}

/// `stream` until `deadline`: then `stop` is set, the stream yields `error` and ends
/// (dropping what it reads from).
pub fn with_deadline(
    stream: SendableRecordBatchStream,
    deadline: tokio::time::Instant,
    stop: QueryStop,
    error: impl FnOnce() -> DataFusionError + Send + 'static,
) -> SendableRecordBatchStream {
    let schema = stream.schema();
    let state = Some((stream, stop, error));
    let batches = futures::stream::unfold(state, move |state| async move {
        let (mut stream, stop, error) = state?;
        tokio::select! {
            item = stream.next() => item.map(|item| (item, Some((stream, stop, error)))),
            () = tokio::time::sleep_until(deadline) => {
                stop.stop();
                Some((Err(error()), None))
            }
        }
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, batches))
}

/// Batches a spawned stream's task may pull before its reader takes them.
const BATCHES_AHEAD: usize = 2;

/// The task pulling a spawned stream, and the query's stop flag: both go when the
/// reader drops the stream before its end.
struct Puller {
    task: JoinHandle<()>,
    stop: QueryStop,
    ended: bool,
}

impl Puller {
    /// The stream was read to its end: nothing is to be stopped.
    fn end(mut self) {
        self.ended = true;
    }
}

impl Drop for Puller {
    fn drop(&mut self) {
        if !self.ended {
            self.stop.stop();
        }
        self.task.abort();
    }
}

/// The error a panic while computing a query becomes.
pub fn panicked(payload: &(dyn Any + Send)) -> DataFusionError {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".to_string());
    DataFusionError::External(Box::new(AdqlError::internal(format!(
        "the query panicked: {message}"
    ))))
}

/// See [`Execution::entered`].
pub struct Entered<F: Future> {
    handle: Option<Handle>,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for Entered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let _entered = this.handle.as_ref().map(Handle::enter);
        this.future.as_mut().poll(cx)
    }
}

/// One query's stop flag (see the module documentation). Clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct QueryStop {
    stopped: Arc<AtomicBool>,
}

impl QueryStop {
    /// A new flag, put into `ctx`'s configuration so that what is planned in `ctx` from
    /// now on sees it (what was planned before keeps the flag it had).
    pub fn install(ctx: &SessionContext) -> Self {
        let stop = Self::default();
        stop.put_into(ctx);
        stop
    }

    /// Puts this flag into `ctx`'s configuration (see [`QueryStop::install`]).
    pub fn put_into(&self, ctx: &SessionContext) {
        ctx.state_ref()
            .write()
            .config_mut()
            .options_mut()
            .extensions
            .insert(self.clone());
    }

    /// Tells the query's operators to stop.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    /// An error when the query `options` were planned for has been told to stop: what
    /// each UDF checks before it evaluates a batch.
    pub fn check(options: &ConfigOptions) -> Result<()> {
        match options.extensions.get::<QueryStop>() {
            Some(stop) if stop.is_stopped() => {
                Err(DataFusionError::External(Box::new(AdqlError::Canceled)))
            }
            _ => Ok(()),
        }
    }
}

impl ConfigExtension for QueryStop {
    const PREFIX: &'static str = "almagest_query_stop";
}

/// The flag has no settings a user could see or set.
impl ExtensionOptions for QueryStop {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, _value: &str) -> Result<()> {
        Err(DataFusionError::Configuration(format!(
            "unrecognized configuration parameter \"{}.{key}\"",
            Self::PREFIX
        )))
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        Vec::new()
    }
}

/// A physical optimizer rule that makes the filter of every nested-loop join check the
/// query's stop flag at each evaluation (one left row, or a few, against a right batch),
/// so that a stopped join ends at once even when its condition calls none of our UDFs
/// (`a.x < b.y`). The filter's result and its display are unchanged.
#[derive(Debug, Default)]
pub struct StopChecks;

impl PhysicalOptimizerRule for StopChecks {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(stop) = config.extensions.get::<QueryStop>().cloned() else {
            return Ok(plan);
        };
        plan.transform_up(|node| {
            let Some(join) = node.downcast_ref::<NestedLoopJoinExec>() else {
                return Ok(Transformed::no(node));
            };
            let Some(filter) = join.filter() else {
                return Ok(Transformed::no(node));
            };
            if filter.expression().is::<StopChecked>() {
                return Ok(Transformed::no(node));
            }
            let checked = JoinFilter::new(
                Arc::new(StopChecked {
                    inner: Arc::clone(filter.expression()),
                    stop: stop.clone(),
                }),
                filter.column_indices().to_vec(),
                Arc::clone(filter.schema()),
            );
            let rebuilt = NestedLoopJoinExecBuilder::new(
                Arc::clone(join.left()),
                Arc::clone(join.right()),
                *join.join_type(),
            )
            .with_projection_ref(join.projection().clone())
            .with_filter(Some(checked))
            .build()?;
            Ok(Transformed::yes(Arc::new(rebuilt) as Arc<dyn ExecutionPlan>))
        })
        .data()
    }

    fn name(&self) -> &str {
        "almagest_stop_checks"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// An expression that checks the query's stop flag, then evaluates `inner`.
#[derive(Debug)]
struct StopChecked {
    inner: Arc<dyn PhysicalExpr>,
    stop: QueryStop,
}

impl PartialEq for StopChecked {
    fn eq(&self, other: &Self) -> bool {
        self.inner.as_ref() == other.inner.as_ref()
    }
}

impl Eq for StopChecked {}

impl std::hash::Hash for StopChecked {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.inner.hash(state);
    }
}

impl std::fmt::Display for StopChecked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.inner)
    }
}

impl PhysicalExpr for StopChecked {
    fn data_type(&self, input_schema: &Schema) -> Result<DataType> {
        self.inner.data_type(input_schema)
    }

    fn nullable(&self, input_schema: &Schema) -> Result<bool> {
        self.inner.nullable(input_schema)
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        if self.stop.is_stopped() {
            return Err(DataFusionError::External(Box::new(AdqlError::Canceled)));
        }
        self.inner.evaluate(batch)
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.inner]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        let [inner] = <[_; 1]>::try_from(children)
            .map_err(|_| DataFusionError::Internal("a stop check has one child".to_string()))?;
        Ok(Arc::new(StopChecked {
            inner,
            stop: self.stop.clone(),
        }))
    }

    fn fmt_sql(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt_sql(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Float64Array;
    use datafusion::arrow::datatypes::Field;
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

    #[tokio::test]
    async fn t10_a_stopped_query_fails_in_its_udfs() {
        let ctx = SessionContext::new();
        crate::register_udfs(&ctx);
        let sql = "SELECT scisql_angSep(a.value, 0.0, b.value, 0.0) AS d \
                   FROM generate_series(1, 50) AS a, generate_series(1, 50) AS b";
        let stop = QueryStop::install(&ctx);
        let frame = ctx.sql(sql).await.unwrap();
        assert_eq!(frame.clone().count().await.unwrap(), 2500);
        stop.stop();
        let err = frame.collect().await.unwrap_err();
        assert!(err.to_string().contains("canceling statement"), "{err}");
        // A new flag for the next query: it runs.
        QueryStop::install(&ctx);
        let rows = ctx.sql(sql).await.unwrap().count().await.unwrap();
        assert_eq!(rows, 2500);
    }

    #[tokio::test]
    async fn t12_a_stopped_nested_loop_fails_without_udfs() {
        let state = datafusion::execution::session_state::SessionStateBuilder::new()
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(StopChecks))
            .build();
        let ctx = SessionContext::new_with_state(state);
        let sql = "SELECT count(*) FROM generate_series(1, 300) AS a \
                   JOIN generate_series(1, 300) AS b ON a.value < b.value";
        let stop = QueryStop::install(&ctx);
        let frame = ctx.sql(sql).await.unwrap();
        let plan = frame.clone().create_physical_plan().await.unwrap();
        let text = datafusion::physical_plan::displayable(plan.as_ref())
            .indent(true)
            .to_string();
        assert!(text.contains("NestedLoopJoinExec"), "{text}");
        assert!(
            text.contains("value@0 < value@1"),
            "display unchanged: {text}"
        );
        let batches = frame.clone().collect().await.unwrap();
        let count = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .unwrap()
            .value(0);
        assert_eq!(count, 300 * 299 / 2);
        stop.stop();
        let err = frame.collect().await.unwrap_err();
        assert!(err.to_string().contains("canceling statement"), "{err}");
    }

    #[tokio::test]
    async fn t11_a_spawned_stream_yields_every_batch_and_stops_on_drop() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, false)]));
        let batch = {
            let schema = Arc::clone(&schema);
            move |v: f64| {
                RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![Arc::new(Float64Array::from(vec![v]))],
                )
                .unwrap()
            }
        };
        let first = batch.clone();
        let input = futures::stream::iter((0..10).map(move |i| Ok(first(f64::from(i)))));
        let stream: SendableRecordBatchStream =
            Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&schema), input));
        let stop = QueryStop::default();
        let out = Execution::default().spawn_stream(stream, stop.clone());
        let got: Vec<_> = out.map(|b| b.unwrap().num_rows()).collect().await;
        assert_eq!(got.len(), 10);
        assert!(
            !stop.is_stopped(),
            "a stream read to its end is not stopped"
        );

        let endless = futures::stream::repeat_with(move || Ok(batch(1.0)));
        let stream: SendableRecordBatchStream =
            Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&schema), endless));
        let mut out = Execution::default().spawn_stream(stream, stop.clone());
        assert!(out.next().await.unwrap().is_ok());
        drop(out);
        assert!(
            stop.is_stopped(),
            "dropping a running stream stops its query"
        );

        let panicking = futures::stream::once(async { panic!("boom") });
        let stream: SendableRecordBatchStream =
            Box::pin(RecordBatchStreamAdapter::new(schema, panicking));
        let mut out = Execution::default().spawn_stream(stream, QueryStop::default());
        let err = out.next().await.unwrap().unwrap_err();
        assert!(
            err.to_string().contains("the query panicked: boom"),
            "{err}"
        );
        assert!(out.next().await.is_none());
    }
}
