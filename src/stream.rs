//! Windows of in-memory Arrow data: the decoding, checks, split hash and
//! window kernel of `seqwin run`, over a stream of record batches instead of
//! Parquet files. The Python package (`seqwin.windows`, Spark's
//! `mapInArrow`) and the `polars` feature are built on it.
//!
//! Input batches hold the token column (a list of integers per document, or
//! a flat integer column), the optional id column and the carried columns,
//! in any order and among other columns. Output batches have the schema of
//! the files `seqwin run` writes, plus a `split` string column when a split
//! is configured (in files it is a directory name). With `pack`, each split
//! is one packed stream, as in `seqwin run`; the stream ends at
//! [`StreamWindower::finish`].
//!
//! Copies: a token list column of the output type is windowed in place (the
//! kernel reads the Arrow buffer the caller passed); each window's tokens are
//! copied once, into the `input`/`target` buffers of the output batch.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::config::{SplitConfig, WindowsConfig};
use crate::error::{Error, Result};
use crate::pipeline::{output_layout, partition_columns, prepare_batch, BatchCtx, Event, Router};
use crate::plan::{
    compile_columns, compile_split, compile_windows, default_row_group_rows, Problems,
    SourceColumns, SplitSpec,
};
use crate::window::{
    DocRef, OutputLayout, Starts, Token, TokenDtype, WindowRef, WindowSpec, Windower,
};

/// What to window: the `source` column names, `windows:` and `split:` of a pipeline.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// The token column.
    pub tokens: String,
    /// Optional document id column (also the key of the split hash).
    #[serde(default)]
    pub id: Option<String>,
    /// Columns copied onto every window.
    #[serde(default)]
    pub carry: Vec<String>,
    /// Window geometry, as in the pipeline file.
    pub windows: WindowsConfig,
    /// Optional split, as in the pipeline file.
    #[serde(default)]
    pub split: Option<SplitConfig>,
}

/// Name used for the arguments in messages.
const ORIGIN: &str = "seqwin.windows";

/// The sections of a pipeline that in-memory windowing has, compiled by the
/// same section compilers as a pipeline file.
#[derive(Debug, Clone)]
struct StreamPlan {
    columns: SourceColumns,
    window: WindowSpec,
    split: Option<SplitSpec>,
    /// `[split]` when there is a split (each split is its own stream), else empty.
    partition_by: Vec<String>,
    /// Windows per output batch (the default row group size).
    batch_rows: usize,
}

impl StreamConfig {
    fn plan(&self) -> Result<StreamPlan> {
        let mut problems = Problems::new();
        let p = &mut problems;
        let columns = compile_columns(&self.tokens, self.id.as_deref(), &self.carry, p);
        let window = compile_windows(&self.windows, false, p);
        let split = self.split.as_ref().map(|s| compile_split(s, p));
        if !problems.is_empty() {
            return Err(Error::ConfigInvalid {
                path: origin().to_path_buf(),
                problems,
            });
        }
        Ok(StreamPlan {
            columns,
            partition_by: split.iter().map(|_| "split".to_string()).collect(),
            batch_rows: default_row_group_rows(&window),
            window,
            split,
        })
    }
}

trait Stream: Send {
    fn schema(&self) -> SchemaRef;
    fn push(&mut self, batch: &RecordBatch) -> Result<Vec<RecordBatch>>;
    fn finish(&mut self) -> Result<Vec<RecordBatch>>;
}

/// Windows a stream of record batches (see the module docs).
pub struct StreamWindower {
    inner: Box<dyn Stream>,
}

impl std::fmt::Debug for StreamWindower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamWindower")
            .field("schema", &self.inner.schema())
            .finish()
    }
}

impl StreamWindower {
    /// Checks the configuration against the input schema.
    ///
    /// # Errors
    /// [`Error::ConfigInvalid`] for broken rules (naming the pipeline key),
    /// [`Error::Input`] for missing columns or columns of the wrong type.
    pub fn new(config: &StreamConfig, input: &Schema) -> Result<StreamWindower> {
        let plan = config.plan()?;
        let inner: Box<dyn Stream> = match plan.window.dtype {
            TokenDtype::Int32 => Box::new(Typed::<i32>::new(plan, input)?),
            TokenDtype::Int64 => Box::new(Typed::<i64>::new(plan, input)?),
            TokenDtype::Uint16 => Box::new(Typed::<u16>::new(plan, input)?),
            TokenDtype::Uint32 => Box::new(Typed::<u32>::new(plan, input)?),
        };
        Ok(StreamWindower { inner })
    }

    /// The schema of every output batch.
    pub fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    /// Windows a batch; returns the windows that are complete (with `pack`,
    /// the end of the stream may wait for the next batch).
    ///
    /// # Errors
    /// [`Error::Input`] naming the row for bad tokens or ids, or a batch
    /// whose schema differs from the first.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<Vec<RecordBatch>> {
        self.inner.push(batch)
    }

    /// Ends the stream: the last packed windows (and padded remainders).
    ///
    /// # Errors
    /// Only internal errors.
    pub fn finish(&mut self) -> Result<Vec<RecordBatch>> {
        self.inner.finish()
    }

    /// Windows every batch of `batches` and returns all output batches.
    ///
    /// # Errors
    /// As [`StreamWindower::new`] and [`StreamWindower::push`].
    pub fn window_all(
        config: &StreamConfig,
        input: &Schema,
        batches: impl IntoIterator<Item = RecordBatch>,
    ) -> Result<Vec<RecordBatch>> {
        let mut w = StreamWindower::new(config, input)?;
        let mut out = Vec::new();
        for b in batches {
            out.extend(w.push(&b)?);
        }
        out.extend(w.finish()?);
        Ok(out)
    }
}

struct Typed<T: Token> {
    plan: StreamPlan,
    input: SchemaRef,
    /// Input column of each `[tokens, id?, carry…]` column.
    roots: Vec<usize>,
    batch_schema: SchemaRef,
    layout: OutputLayout,
    output: SchemaRef,
    carry_columns: Vec<usize>,
    partition_columns: Vec<(String, Option<usize>)>,
    router: Router,
    windowers: Vec<Windower<T>>,
    rows: u64,
}

fn origin() -> &'static Path {
    Path::new(ORIGIN)
}

impl<T: Token> Typed<T> {
    fn new(plan: StreamPlan, input: &Schema) -> Result<Self> {
        let (batch_schema, roots, _) =
            crate::source::project(&plan.columns, origin(), input, &[], &[])?;
        let roots = roots
            .into_iter()
            .map(|r| r.ok_or_else(|| Error::Internal("no hive columns in a stream".into())))
            .collect::<Result<Vec<usize>>>()?;
        let layout = output_layout(
            &plan.window,
            &plan.columns,
            &plan.partition_by,
            false,
            &batch_schema,
        );
        let mut fields: Vec<Arc<Field>> = layout.schema.fields().iter().cloned().collect();
        if plan.split.is_some() {
            fields.push(Arc::new(Field::new("split", DataType::Utf8, false)));
        }
        let output = Arc::new(Schema::new_with_metadata(
            fields,
            layout.schema.metadata().clone(),
        ));
        let carry_columns = (0..plan.columns.carry.len()).collect();
        let partition_columns = partition_columns(&plan.partition_by, &plan.columns);
        Ok(Typed {
            plan,
            input: Arc::new(input.clone()),
            roots,
            batch_schema,
            layout,
            output,
            carry_columns,
            partition_columns,
            router: Router::default(),
            windowers: Vec::new(),
            rows: 0,
        })
    }

    fn windower(&mut self, part: usize) -> &mut Windower<T> {
        while self.windowers.len() <= part {
            self.windowers
                .push(Windower::new(&self.plan.window, Starts::Uniform));
        }
        &mut self.windowers[part]
    }

    /// Materialises windows of partition `part` in batches of at most a row group.
    fn emit(
        &self,
        part: usize,
        windows: &[WindowRef<T>],
        out: &mut Vec<RecordBatch>,
    ) -> Result<()> {
        for chunk in windows.chunks(self.plan.batch_rows) {
            let n = chunk.len();
            let batch = crate::window::materialize(chunk, &self.layout, &self.carry_columns)?;
            let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
            if self.plan.split.is_some() {
                let value = self.router.keys[part]
                    .values
                    .first()
                    .and_then(|(_, v)| v.clone())
                    .unwrap_or_default();
                columns.push(Arc::new(StringArray::from(vec![value; n])));
            }
            out.push(
                RecordBatch::try_new(Arc::clone(&self.output), columns)
                    .map_err(|e| Error::Internal(e.to_string()))?,
            );
        }
        Ok(())
    }

    fn drain(&mut self, parts: &[usize], finish: bool) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        for &p in parts {
            let w = self.windower(p);
            if finish {
                w.finish();
            } else {
                w.seal();
            }
            let ready = w.take_ready();
            self.emit(p, &ready, &mut out)?;
        }
        Ok(out)
    }
}

impl<T: Token> Stream for Typed<T> {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.output)
    }

    fn push(&mut self, batch: &RecordBatch) -> Result<Vec<RecordBatch>> {
        if batch.schema().fields() != self.input.fields() {
            return Err(Error::input(
                origin(),
                format!(
                    "batch at row {} has a different schema from the first batch",
                    self.rows
                ),
            ));
        }
        let columns: Vec<ArrayRef> = self
            .roots
            .iter()
            .map(|&r| Arc::clone(batch.column(r)))
            .collect();
        let projected = RecordBatch::try_new(Arc::clone(&self.batch_schema), columns)
            .map_err(|e| Error::input(origin(), e.to_string()))?;
        let ctx = BatchCtx {
            window: &self.plan.window,
            split: self.plan.split.as_ref(),
            columns: &self.plan.columns,
            partition_columns: &self.partition_columns,
            cut_windows: true,
            select: None,
        };
        let mut prepared = prepare_batch::<T>(&ctx, &projected, self.rows, self.rows, origin())?;
        self.rows += batch.num_rows() as u64;
        let mut out = Vec::new();
        match prepared.whole.take() {
            Some((windows, _accounts)) => {
                for (key, w) in prepared.partitions.iter().zip(windows) {
                    let global = self.router.global(key);
                    self.emit(global, &w, &mut out)?;
                }
            }
            None => {
                let mut touched = Vec::new();
                for e in self.router.events(&prepared) {
                    match e {
                        Event::Begin { part, row } => {
                            let batch = Arc::clone(&prepared.docs);
                            self.windower(part).begin_doc(DocRef { batch, row });
                            touched.push(part);
                        }
                        Event::Tokens { part, range } => {
                            let tokens = &prepared.tokens[range];
                            self.windower(part).extend(tokens);
                        }
                        Event::End { part } => self.windower(part).end_doc(),
                    }
                }
                touched.sort_unstable();
                touched.dedup();
                out = self.drain(&touched, false)?;
            }
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<RecordBatch>> {
        if let Some(part) = self.router.finish() {
            self.windower(part).end_doc();
        }
        let all: Vec<usize> = (0..self.windowers.len()).collect();
        self.drain(&all, true)
    }
}

/// Validates a `split:` section on its own: the hash `seqwin run` assigns
/// documents with (for `seqwin.assign_split`).
///
/// # Errors
/// [`Error::ConfigInvalid`] naming the `split.*` key.
pub fn split_spec(split: &SplitConfig) -> Result<SplitSpec> {
    let mut problems = Problems::new();
    let spec = compile_split(split, &mut problems);
    if problems.is_empty() {
        Ok(spec)
    } else {
        Err(Error::ConfigInvalid {
            path: origin().to_path_buf(),
            problems,
        })
    }
}
