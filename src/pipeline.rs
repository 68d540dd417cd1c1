//! Wires source → windows → order → sink, in parallel, with output bytes
//! that do not depend on the thread count.
//!
//! ```text
//!   pool tasks:       read + decode + validate + split one row group
//!                     (+ cut the windows of whole documents)      ahead of need
//!   calling thread:   take decoded row groups in source order, route
//!                     documents to partitions, cut row groups and files
//!   pool tasks:       materialise + encode a row group (or scatter it into
//!                     shuffle/TBPTT buckets)
//!   calling thread:   append encoded row groups in the order they were cut
//! ```
//!
//! Every decision that shapes the output (partition of a document, window
//! starts, row-group and file boundaries, file names) is made in the
//! sequential steps from the source order alone, so the bytes written are the
//! same whatever the thread count.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::buffer::ScalarBuffer;
use arrow::datatypes::{DataType, Field, SchemaRef, UInt64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use indicatif::{ProgressBar, ProgressStyle};
use parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowRowGroupWriterFactory};
use parquet::file::properties::WriterProperties;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::hive::{escape_partition_value, part_file_name};
use crate::order::{Keying, Spill};
use crate::plan::{Plan, RowOrder};
use crate::sink::{
    encode_row_group, writer_properties, Dest, FieldEntry, FileEntry, InputEntry, Manifest,
    PartFile, PartitionEntry, Target,
};
use crate::source::Source;
use crate::split::DocKey;
use crate::window::geometry::{self, Geometry, Lanes};
use crate::window::TokenDtype;
use crate::window::{
    decode_tokens, document_windows, materialize, DocBatch, DocRef, OutputLayout, Starts, Token,
    TokenAccount, WholeDoc, WindowRef, Windower,
};

/// A pipeline: a validated plan plus the operations on it.
#[derive(Debug, Clone)]
pub struct Pipeline {
    plan: Plan,
}

/// Runtime knobs of [`Pipeline::run`] (they never change the output).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Worker threads; default: all cores.
    pub threads: Option<usize>,
    /// Show a progress bar on stderr (only if it is a terminal).
    pub progress: bool,
}

/// What a run wrote.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The manifest written to `_seqwin.json`.
    pub manifest: Manifest,
    /// The dataset directory.
    pub sink: PathBuf,
}

impl RunReport {
    /// The closing paragraph printed by the CLI.
    pub fn summary(&self) -> String {
        let m = &self.manifest;
        let t = &m.totals;
        let files: usize = m.partitions.iter().map(|p| p.files.len()).sum();
        let bytes: u64 = m
            .partitions
            .iter()
            .flat_map(|p| &p.files)
            .map(|f| f.bytes)
            .sum();
        let per_part = m
            .partitions
            .iter()
            .map(|p| {
                format!(
                    "{} {}",
                    if p.path.is_empty() { "(root)" } else { &p.path },
                    p.account.windows
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let rate = t.tokens_in as f64 / m.elapsed_seconds.max(1e-9);
        format!(
            "seqwin: wrote {} windows ({} padded) to {} in {} file(s), {:.1} MB; windows per partition: {}. \
             Read {} documents, {} tokens: {} targeted, {} never a target{}. Elapsed {:.2} s, {:.2} M tokens/s.",
            t.windows,
            t.padded_windows,
            self.sink.display(),
            files,
            bytes as f64 / 1e6,
            per_part,
            t.documents,
            t.tokens_in,
            t.tokens_targeted,
            t.tokens_never_targeted,
            if t.spanning_windows > 0 {
                format!("; {} windows span a document boundary", t.spanning_windows)
            } else {
                String::new()
            },
            m.elapsed_seconds,
            rate / 1e6
        )
    }
}

/// Estimates made by [`Pipeline::check`] from Parquet footers alone.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    /// Input files.
    pub files: usize,
    /// Input rows.
    pub rows: u64,
    /// Estimated tokens (leaf values in the footers).
    pub tokens: u64,
    /// Estimated windows.
    pub windows: u64,
    /// Estimated uncompressed output bytes.
    pub bytes: u64,
    /// The output schema.
    pub schema: SchemaRef,
}

impl Pipeline {
    /// Loads, overrides and validates a pipeline file.
    ///
    /// # Errors
    /// See [`Plan::load`].
    pub fn load(path: &Path, overrides: &[String]) -> Result<Pipeline> {
        Ok(Pipeline {
            plan: Plan::load(path, overrides)?,
        })
    }

    /// A pipeline from a validated plan.
    pub fn new(plan: Plan) -> Pipeline {
        Pipeline { plan }
    }

    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Validates the input schemas and estimates the output from the Parquet
    /// footers, without reading data or touching the sink.
    ///
    /// # Errors
    /// Any input error of [`Source::open`].
    pub fn check(&self) -> Result<CheckReport> {
        let source = Source::open(&self.plan.source)?;
        let layout = output_layout(&self.plan, &source.schema);
        let w = &self.plan.window;
        let tokens: u64 = source.units.iter().map(|u| u.tokens_estimate).sum();
        let docs = if source.flat && self.plan.source.id.is_none() {
            1
        } else {
            source.total_rows()
        };
        let separator = w.separator.is_some();
        let windows = match self.plan.order {
            RowOrder::Tbptt { batch_size } => {
                let stream = tokens + docs * separator as u64;
                Lanes::new(stream, batch_size as u64, w.seq_len as u64).rows()
            }
            _ => Geometry::of(w).estimate(tokens, docs, w.pack, separator),
        };
        Ok(CheckReport {
            files: source.files.len(),
            rows: source.total_rows(),
            tokens,
            windows,
            bytes: windows * geometry::row_bytes(&layout.spec),
            schema: layout.schema,
        })
    }

    /// Runs the pipeline and writes the dataset.
    ///
    /// # Errors
    /// [`Error::Input`] for bad data (nothing is written), [`Error::Sink`]
    /// when the sink may not be written, [`Error::Io`] / [`Error::Write`] for
    /// write failures (the staging directory is removed).
    pub fn run(&self, options: &RunOptions) -> Result<RunReport> {
        let mut builder = rayon::ThreadPoolBuilder::new();
        if let Some(n) = options.threads {
            builder = builder.num_threads(n.max(1));
        }
        let pool = builder
            .build()
            .map_err(|e| Error::Internal(e.to_string()))?;
        match self.plan.window.dtype {
            TokenDtype::Int32 => Run::<i32>::execute(&self.plan, options, &pool),
            TokenDtype::Int64 => Run::<i64>::execute(&self.plan, options, &pool),
            TokenDtype::Uint16 => Run::<u16>::execute(&self.plan, options, &pool),
            TokenDtype::Uint32 => Run::<u32>::execute(&self.plan, options, &pool),
        }
    }

    /// Reads the source once and returns every document's length with its
    /// partition (packed-stream lengths per partition when packing).
    ///
    /// # Errors
    /// Input errors as in [`Pipeline::run`].
    pub fn document_lengths(&self, threads: Option<usize>) -> Result<DocumentLengths> {
        let mut builder = rayon::ThreadPoolBuilder::new();
        if let Some(n) = threads {
            builder = builder.num_threads(n.max(1));
        }
        let pool = builder
            .build()
            .map_err(|e| Error::Internal(e.to_string()))?;
        pool.install(|| {
            let source = Source::open(&self.plan.source)?;
            let ctx = Context {
                cut_windows: false,
                ..Context::new(&self.plan, &source)
            };
            let mut router = Router::default();
            let mut out = DocumentLengths::default();
            let mut current: Option<(usize, u64)> = None;
            for_each_wave::<i32>(&ctx, None, |prepared| {
                for event in router.events(&prepared) {
                    match event {
                        Event::Begin { part, .. } => current = Some((part, 0)),
                        Event::Tokens { range, .. } => {
                            if let Some((_, n)) = current.as_mut() {
                                *n += range.len() as u64;
                            }
                        }
                        Event::End { .. } => {
                            if let Some((part, n)) = current.take() {
                                out.push(&router.keys[part].dir, n);
                            }
                        }
                    }
                }
                Ok(())
            })?;
            if router.finish().is_some() {
                if let Some((p, n)) = current.take() {
                    out.push(&router.keys[p].dir, n);
                }
            }
            Ok(out)
        })
    }
}

/// Document lengths per output partition, in source order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DocumentLengths {
    /// Partition directory → lengths of its documents.
    pub partitions: BTreeMap<String, Vec<u64>>,
}

impl DocumentLengths {
    fn push(&mut self, part: &str, n: u64) {
        self.partitions.entry(part.to_string()).or_default().push(n);
    }
}

/// The output layout for source batches of `schema` (`[tokens, id?, carry…]`).
pub(crate) fn output_layout(plan: &Plan, schema: &arrow::datatypes::Schema) -> OutputLayout {
    let id_type = if plan.source.id.is_some() {
        schema.field(1).data_type().clone()
    } else {
        DataType::Int64
    };
    let first_carry = 1 + plan.source.id.is_some() as usize;
    let carry: Vec<Field> = plan
        .source
        .carry
        .iter()
        .enumerate()
        .filter(|(_, c)| !plan.sink.partition_by.contains(c))
        .map(|(i, _)| schema.field(first_carry + i).clone())
        .collect();
    OutputLayout::new(
        &plan.window,
        &id_type,
        &carry,
        matches!(plan.order, RowOrder::Tbptt { .. }),
    )
}

/// What the per-unit workers need to know.
struct Context<'a> {
    plan: &'a Plan,
    source: &'a Source,
    /// For each `partition_by` entry: `None` for split, or the index in carry.
    partition_columns: Vec<(String, Option<usize>)>,
    /// Cut the windows of whole documents in the workers (off when only
    /// document lengths are wanted).
    cut_windows: bool,
}

impl<'a> Context<'a> {
    fn batch_ctx(&self) -> BatchCtx<'_> {
        BatchCtx {
            plan: self.plan,
            partition_columns: &self.partition_columns,
            cut_windows: self.cut_windows,
        }
    }

    fn new(plan: &'a Plan, source: &'a Source) -> Self {
        let partition_columns = plan
            .sink
            .partition_by
            .iter()
            .map(|p| {
                let idx = if p == "split" {
                    None
                } else {
                    plan.source.carry.iter().position(|c| c == p)
                };
                (p.clone(), idx)
            })
            .collect();
        Context {
            plan,
            source,
            partition_columns,
            cut_windows: true,
        }
    }
}

/// An owned document key (flat streams compare keys across row groups).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum OwnedKey {
    Int(i64),
    Str(String),
}

/// A partition's identity.
#[derive(Debug, Clone)]
pub(crate) struct PartKey {
    pub(crate) dir: String,
    pub(crate) values: Vec<(String, Option<String>)>,
}

/// A run of one document's tokens within a prepared unit.
#[derive(Debug, Clone)]
pub(crate) struct Piece {
    range: std::ops::Range<usize>,
    row: usize,
    part: usize,
    key: Option<OwnedKey>,
}

/// Windows of a unit's complete documents, per unit-local partition.
pub(crate) type WholeWindows<T> = (Vec<Vec<WindowRef<T>>>, Vec<TokenAccount>);

/// A decoded row group.
pub(crate) struct Prepared<T: Token> {
    rows: usize,
    token_count: u64,
    /// Windows cut in the worker (complete documents, no packing); then
    /// `tokens` is empty and `pieces` unused.
    pub(crate) whole: Option<WholeWindows<T>>,
    pub(crate) tokens: ScalarBuffer<T>,
    pieces: Vec<Piece>,
    pub(crate) partitions: Vec<PartKey>,
    pub(crate) docs: Arc<DocBatch>,
}

/// Document keys of a unit.
enum IdKeys {
    Ordinal(u64),
    Constant,
    Ints(Vec<i64>),
    Strs(StringArray),
}

impl IdKeys {
    fn key(&self, row: usize) -> DocKey<'_> {
        match self {
            IdKeys::Ordinal(base) => DocKey::Int((base + row as u64) as i64),
            IdKeys::Constant => DocKey::Int(0),
            IdKeys::Ints(v) => DocKey::Int(v[row]),
            IdKeys::Strs(s) => DocKey::Str(s.value(row)),
        }
    }
    fn owned(&self, row: usize) -> OwnedKey {
        match self.key(row) {
            DocKey::Int(v) => OwnedKey::Int(v),
            DocKey::Str(s) => OwnedKey::Str(s.to_string()),
        }
    }
    fn same(&self, a: usize, b: usize) -> bool {
        match self {
            IdKeys::Ordinal(_) => a == b,
            IdKeys::Constant => true,
            IdKeys::Ints(v) => v[a] == v[b],
            IdKeys::Strs(s) => s.value(a) == s.value(b),
        }
    }
}

fn id_keys(column: &ArrayRef) -> std::result::Result<IdKeys, String> {
    let dt = column.data_type();
    if *dt == DataType::UInt64 {
        return Ok(IdKeys::Ints(
            column
                .as_primitive::<UInt64Type>()
                .values()
                .iter()
                .map(|&v| v as i64)
                .collect(),
        ));
    }
    if dt.is_integer() {
        let c = arrow::compute::cast(column, &DataType::Int64).map_err(|e| e.to_string())?;
        return Ok(IdKeys::Ints(
            c.as_primitive::<arrow::datatypes::Int64Type>()
                .values()
                .to_vec(),
        ));
    }
    let c = arrow::compute::cast(column, &DataType::Utf8).map_err(|e| e.to_string())?;
    Ok(IdKeys::Strs(c.as_string::<i32>().clone()))
}

fn prepare<T: Token>(ctx: &Context<'_>, unit_index: usize) -> Result<Prepared<T>> {
    let source = ctx.source;
    let unit = &source.units[unit_index];
    let batch = source.read_unit(unit)?;
    prepare_batch(
        &ctx.batch_ctx(),
        &batch,
        unit.first_row,
        unit.first_ordinal,
        &source.files[unit.file].path,
    )
}

/// What decoding a batch needs to know (a [`Context`] without the source).
pub(crate) struct BatchCtx<'a> {
    pub(crate) plan: &'a Plan,
    /// For each `partition_by` entry: `None` for split, or the index in carry.
    pub(crate) partition_columns: &'a [(String, Option<usize>)],
    pub(crate) cut_windows: bool,
}

/// Decodes a batch of `[tokens, id?, carry…]` rows: checks the tokens, finds
/// the documents and their partitions, and (whole documents, no packing)
/// cuts their windows. `first_row` and `path` are for messages;
/// `first_ordinal` numbers documents when there is no id column.
pub(crate) fn prepare_batch<T: Token>(
    ctx: &BatchCtx<'_>,
    batch: &RecordBatch,
    first_row: u64,
    first_ordinal: u64,
    path: &Path,
) -> Result<Prepared<T>> {
    let plan = ctx.plan;
    let rows = batch.num_rows();
    let decoded = decode_tokens::<T>(
        batch.column(0).as_ref(),
        plan.window.dtype,
        plan.window.vocab_size,
    )
    .map_err(|e| {
        Error::input(
            path,
            format!(
                "row {} (column `{}`): {}",
                first_row + e.row() as u64,
                plan.source.tokens,
                e.describe()
            ),
        )
    })?;
    let has_id = plan.source.id.is_some();
    let id_column = has_id.then(|| Arc::clone(batch.column(1)));
    if let Some(c) = &id_column {
        if c.null_count() > 0 {
            let row = (0..c.len()).find(|&i| c.is_null(i)).unwrap_or(0);
            return Err(Error::input(
                path,
                format!(
                    "row {} (column `{}`): the document id is null",
                    first_row + row as u64,
                    plan.source.id.as_deref().unwrap_or_default()
                ),
            ));
        }
    }
    let keys = match &id_column {
        Some(c) => {
            id_keys(c).map_err(|m| Error::input(path, format!("cannot read the id column: {m}")))?
        }
        None if decoded.flat => IdKeys::Constant,
        None => IdKeys::Ordinal(first_ordinal),
    };
    let ids: ArrayRef = match id_column {
        Some(c) => c,
        None if decoded.flat => Arc::new(Int64Array::from(vec![0i64; rows])),
        None => Arc::new(Int64Array::from_iter_values(
            (0..rows as i64).map(|i| first_ordinal as i64 + i),
        )),
    };
    let carry: Vec<ArrayRef> = batch.columns()[1 + has_id as usize..].to_vec();

    // Pieces: one per document (list column) or per run of equal ids (flat).
    let mut pieces = Vec::new();
    if !decoded.flat {
        for r in 0..rows {
            pieces.push(Piece {
                range: decoded.offsets[r]..decoded.offsets[r + 1],
                row: r,
                part: 0,
                key: None,
            });
        }
    } else {
        let mut r0 = 0;
        for r in 1..=rows {
            if r == rows || !keys.same(r - 1, r) {
                pieces.push(Piece {
                    range: r0..r,
                    row: r0,
                    part: 0,
                    key: Some(keys.owned(r0)),
                });
                r0 = r;
            }
        }
    }

    // Partition of each piece.
    let mut partitions: Vec<PartKey> = Vec::new();
    if !ctx.partition_columns.is_empty() || plan.split.is_some() {
        let formatters: Vec<Option<ArrayFormatter<'_>>> = ctx
            .partition_columns
            .iter()
            .map(|(_, idx)| {
                idx.map(|i| ArrayFormatter::try_new(carry[i].as_ref(), &FormatOptions::default()))
                    .transpose()
            })
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::input(path, format!("cannot format a partition column: {e}")))?;
        let mut local: HashMap<String, usize> = HashMap::new();
        for piece in &mut pieces {
            let r = piece.row;
            let split = plan
                .split
                .as_ref()
                .map(|s| s.names[s.assign(keys.key(r))].clone());
            let mut values = Vec::with_capacity(ctx.partition_columns.len());
            for ((name, idx), f) in ctx.partition_columns.iter().zip(&formatters) {
                let v = match (idx, f) {
                    (Some(i), Some(f)) => (!carry[*i].is_null(r)).then(|| f.value(r).to_string()),
                    _ => split.clone(),
                };
                values.push((name.clone(), v));
            }
            let dir = values
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}={}",
                        escape_partition_value(Some(k)),
                        escape_partition_value(v.as_deref())
                    )
                })
                .collect::<Vec<_>>()
                .join("/");
            piece.part = *local.entry(dir.clone()).or_insert_with(|| {
                partitions.push(PartKey { dir, values });
                partitions.len() - 1
            });
        }
    }
    if partitions.is_empty() {
        partitions.push(PartKey {
            dir: String::new(),
            values: Vec::new(),
        });
    }
    let doc_batch = Arc::new(DocBatch { ids, carry });
    let token_count = decoded.values.len() as u64;
    let mut tokens = decoded.values;
    let whole = if ctx.cut_windows && !decoded.flat && !plan.window.pack {
        let docs: Vec<WholeDoc> = pieces
            .iter()
            .map(|p| WholeDoc {
                range: p.range.clone(),
                doc: DocRef {
                    batch: Arc::clone(&doc_batch),
                    row: p.row,
                },
                slot: p.part,
            })
            .collect();
        let slots = partitions.len();
        Some(document_windows(
            std::mem::replace(&mut tokens, ScalarBuffer::from(Vec::new())),
            &docs,
            slots,
            &plan.window,
        ))
    } else {
        None
    };
    Ok(Prepared {
        rows,
        token_count,
        whole,
        tokens,
        pieces,
        partitions,
        docs: doc_batch,
    })
}

/// A routing event: what the windower of partition `part` must do.
pub(crate) enum Event {
    Begin {
        part: usize,
        row: usize,
    },
    Tokens {
        part: usize,
        range: std::ops::Range<usize>,
    },
    End {
        part: usize,
    },
}

/// Maps unit-local partitions to global ones and tracks flat-stream documents
/// that continue across row groups.
#[derive(Default)]
pub(crate) struct Router {
    pub(crate) keys: Vec<PartKey>,
    index: HashMap<String, usize>,
    open_flat: Option<(usize, OwnedKey)>,
}

impl Router {
    pub(crate) fn global(&mut self, key: &PartKey) -> usize {
        if let Some(&i) = self.index.get(&key.dir) {
            return i;
        }
        self.keys.push(key.clone());
        self.index.insert(key.dir.clone(), self.keys.len() - 1);
        self.keys.len() - 1
    }

    pub(crate) fn events<T: Token>(&mut self, p: &Prepared<T>) -> Vec<Event> {
        let map: Vec<usize> = p.partitions.iter().map(|k| self.global(k)).collect();
        let mut events = Vec::with_capacity(p.pieces.len() * 3);
        for piece in &p.pieces {
            let part = map[piece.part];
            match &piece.key {
                None => {
                    events.push(Event::Begin {
                        part,
                        row: piece.row,
                    });
                    events.push(Event::Tokens {
                        part,
                        range: piece.range.clone(),
                    });
                    events.push(Event::End { part });
                }
                Some(key) => {
                    let continues = matches!(&self.open_flat, Some((_, k)) if k == key);
                    let part = if continues {
                        self.open_flat.as_ref().expect("open").0
                    } else {
                        if let Some((open, _)) = self.open_flat.take() {
                            events.push(Event::End { part: open });
                        }
                        self.open_flat = Some((part, key.clone()));
                        events.push(Event::Begin {
                            part,
                            row: piece.row,
                        });
                        part
                    };
                    events.push(Event::Tokens {
                        part,
                        range: piece.range.clone(),
                    });
                }
            }
        }
        events
    }

    /// The partition of a flat-stream document still open at the end of the
    /// source, which must be ended.
    pub(crate) fn finish(&mut self) -> Option<usize> {
        self.open_flat.take().map(|(p, _)| p)
    }
}

/// Calls `f` on every prepared unit in source order, decoding waves in
/// parallel. With `progress`, advances the bar by rows.
fn for_each_wave<T: Token>(
    ctx: &Context<'_>,
    progress: Option<&ProgressBar>,
    mut f: impl FnMut(Prepared<T>) -> Result<()>,
) -> Result<()> {
    let wave = wave_size();
    let n = ctx.source.units.len();
    let mut start = 0;
    while start < n {
        let end = (start + wave).min(n);
        let prepared = decode_wave::<T>(ctx, start..end)?;
        for p in prepared {
            if let Some(pb) = progress {
                pb.inc(p.rows as u64);
            }
            f(p)?;
        }
        start = end;
    }
    Ok(())
}

fn wave_size() -> usize {
    (rayon::current_num_threads() * 2).max(2)
}

fn decode_wave<T: Token>(
    ctx: &Context<'_>,
    units: std::ops::Range<usize>,
) -> Result<Vec<Prepared<T>>> {
    let results: Vec<Result<Prepared<T>>> = units
        .into_par_iter()
        .map(|u| prepare::<T>(ctx, u))
        .collect();
    // The first error in source order, whatever finished first.
    results.into_iter().collect()
}

/// Rows waiting to be written for a partition.
enum Payload<T: Token> {
    Windows(Vec<WindowRef<T>>),
    Batch(RecordBatch),
}

/// A row group to encode.
struct Job<T: Token> {
    part: usize,
    file_seq: usize,
    row_group: usize,
    close_after: bool,
    factory: Arc<ArrowRowGroupWriterFactory>,
    name: String,
    payload: Payload<T>,
}

/// An encoded row group, ready to append.
struct Encoded {
    part: usize,
    file_seq: usize,
    close_after: bool,
    rows: usize,
    chunks: Vec<ArrowColumnChunk>,
}

/// Row groups to encode and windows to spill, cut in one step.
type Jobs<T> = (Vec<Job<T>>, Vec<SpillJob<T>>);

/// Spill work: windows to materialise and scatter into buckets.
struct SpillJob<T: Token> {
    part: usize,
    first_index: u64,
    windows: Vec<WindowRef<T>>,
    keying: Keying,
    schema: SchemaRef,
    buckets: usize,
}

/// What a pool task hands back to the coordinator.
enum Output {
    Encoded(Encoded),
    Scattered(ScatteredPart),
}

/// Files of one partition.
#[derive(Default)]
struct PartFiles {
    open: Vec<Option<PartFile>>,
    done: Vec<FileEntry>,
    planned: u64,
    row_groups: usize,
    current: bool,
}

struct WriteCtx {
    dest: Dest,
    spill_root: PathBuf,
    schema: SchemaRef,
    props: WriterProperties,
    row_group_rows: usize,
    max_rows_per_file: u64,
}

impl PartFiles {
    /// Cuts row groups while enough rows are available (all of them when
    /// `finish`); `take(n)` removes the first `n` rows.
    #[allow(clippy::too_many_arguments)]
    fn cut<T: Token>(
        &mut self,
        part: usize,
        dir: &str,
        mut available: usize,
        finish: bool,
        ctx: &WriteCtx,
        take: &mut dyn FnMut(usize) -> Result<Payload<T>>,
        out: &mut Vec<Job<T>>,
    ) -> Result<()> {
        loop {
            let planned = if self.current { self.planned } else { 0 };
            let size = (ctx.row_group_rows as u64).min(ctx.max_rows_per_file - planned) as usize;
            if available == 0 || (available < size && !finish) {
                return Ok(());
            }
            let n = size.min(available);
            if !self.current {
                self.open.push(Some(PartFile::create(
                    &ctx.dest,
                    part_file_name(dir, self.open.len()),
                    &ctx.schema,
                    &ctx.props,
                )?));
                self.current = true;
                self.planned = 0;
                self.row_groups = 0;
            }
            available -= n;
            self.planned += n as u64;
            let close_after = self.planned == ctx.max_rows_per_file || (finish && available == 0);
            let file_seq = self.open.len() - 1;
            let file = self.open[file_seq].as_ref().expect("current file is open");
            out.push(Job {
                part,
                file_seq,
                row_group: self.row_groups,
                close_after,
                factory: Arc::clone(&file.factory),
                name: file.name.clone(),
                payload: take(n)?,
            });
            self.row_groups += 1;
            if close_after {
                self.current = false;
            }
        }
    }

    /// Closes files whose last row group has been appended but that were
    /// not marked for closing (the partition ended exactly at a row group).
    fn close_open(&mut self) -> Result<()> {
        for slot in &mut self.open {
            if let Some(file) = slot.take() {
                self.done.push(file.close()?);
            }
        }
        self.current = false;
        Ok(())
    }

    fn append(&mut self, e: Encoded) -> Result<()> {
        let file = self.open[e.file_seq]
            .as_mut()
            .expect("file open until its last row group");
        file.append(e.chunks, e.rows)?;
        if e.close_after {
            let file = self.open[e.file_seq].take().expect("open");
            self.done.push(file.close()?);
        }
        Ok(())
    }
}

/// One output partition during a run.
struct Part<T: Token> {
    windower: Windower<T>,
    /// Account of windows cut in workers (complete documents).
    extra: TokenAccount,
    queue: VecDeque<WindowRef<T>>,
    files: PartFiles,
    spill: Option<Spill>,
    windows_spilled: u64,
    batches: VecDeque<RecordBatch>,
}

/// The state of one run, generic over the output token type.
struct Run<'a, T: Token> {
    plan: &'a Plan,
    layout: OutputLayout,
    carry_columns: Vec<usize>,
    write: WriteCtx,
    router: Router,
    parts: Vec<Part<T>>,
    stream_totals: HashMap<String, u64>,
    spill_buckets: usize,
    spill_flush_bytes: usize,
}

impl<'a, T: Token> Run<'a, T> {
    fn execute(plan: &Plan, options: &RunOptions, pool: &rayon::ThreadPool) -> Result<RunReport> {
        let started = Instant::now();
        let source = pool.install(|| Source::open(&plan.source))?;
        let staging = Target::prepare(&plan.sink)?;
        let layout = output_layout(plan, &source.schema);
        let carry_columns: Vec<usize> = plan
            .source
            .carry
            .iter()
            .enumerate()
            .filter(|(_, c)| !plan.sink.partition_by.contains(c))
            .map(|(i, _)| i)
            .collect();
        let props = writer_properties(plan, &layout.schema);
        let ctx = Context::new(plan, &source);
        let progress = make_progress(options.progress, source.total_rows());

        // TBPTT needs each partition's stream length before windowing.
        let mut stream_totals = HashMap::new();
        if matches!(plan.order, RowOrder::Tbptt { .. }) {
            if let Some(pb) = &progress {
                pb.set_message("pass 1/2: measuring streams");
            }
            let lengths = Pipeline::new(plan.clone()).document_lengths(options.threads)?;
            let sep = plan.window.separator.is_some() as u64;
            for (dir, docs) in lengths.partitions {
                let total = docs.iter().map(|n| n + sep).sum();
                stream_totals.insert(dir, total);
            }
        }
        let (spill_buckets, spill_flush_bytes) = match plan.order {
            RowOrder::Source => (0, 0),
            RowOrder::Shuffle { memory_bytes, .. } => {
                buckets_for(plan, &source, &layout, memory_bytes)
            }
            RowOrder::Tbptt { .. } => buckets_for(
                plan,
                &source,
                &layout,
                (crate::config::DEFAULT_SHUFFLE_MEMORY_MB as usize) << 20,
            ),
        };
        let schema = Arc::clone(&layout.schema);
        let mut run: Run<'_, T> = Run {
            plan,
            layout,
            carry_columns,
            write: WriteCtx {
                dest: staging.dest(),
                spill_root: staging.spill_root(),
                schema,
                props,
                row_group_rows: plan.sink.row_group_rows,
                max_rows_per_file: plan.sink.max_rows_per_file as u64,
            },
            router: Router::default(),
            parts: Vec::new(),
            stream_totals,
            spill_buckets,
            spill_flush_bytes,
        };
        run.main_pass(&ctx, pool, progress.as_ref())?;
        if plan.order != RowOrder::Source {
            if let Some(pb) = &progress {
                pb.set_message("writing ordered partitions");
            }
            pool.install(|| run.ordered_pass())?;
        }
        if let Some(pb) = &progress {
            pb.finish_and_clear();
        }

        // Manifest.
        let mut partitions: Vec<PartitionEntry> = run
            .parts
            .iter_mut()
            .zip(&run.router.keys)
            .map(|(p, k)| PartitionEntry {
                path: k.dir.clone(),
                values: k.values.iter().cloned().collect(),
                account: {
                    let mut a = p.windower.account();
                    a.add(&p.extra);
                    a.settle();
                    a
                },
                files: std::mem::take(&mut p.files.done),
            })
            .collect();
        partitions.sort_by(|a, b| a.path.cmp(&b.path));
        let mut totals = TokenAccount::default();
        for p in &partitions {
            totals.add(&p.account);
        }
        let manifest = Manifest {
            seqwin_version: crate::VERSION.to_string(),
            config: plan.config.redacted(),
            mode: plan.sink.mode,
            inputs: source
                .files
                .iter()
                .map(|f| InputEntry {
                    path: f.path.display().to_string(),
                    bytes: f.bytes,
                    rows: f.rows,
                })
                .collect(),
            partitions,
            totals,
            schema: run
                .layout
                .schema
                .fields()
                .iter()
                .map(|f| FieldEntry {
                    name: f.name().clone(),
                    data_type: f.data_type().to_string(),
                    nullable: f.is_nullable(),
                })
                .collect(),
            partition_by: plan.sink.partition_by.clone(),
            elapsed_seconds: started.elapsed().as_secs_f64(),
        };
        staging.commit(&manifest)?;
        Ok(RunReport {
            manifest,
            sink: plan.sink.path.clone(),
        })
    }

    fn part_for(&mut self, global: usize) -> Result<&mut Part<T>> {
        while self.parts.len() <= global {
            let dir = &self.router.keys[self.parts.len()].dir;
            let starts = match self.plan.order {
                RowOrder::Tbptt { batch_size } => Starts::Lanes(Lanes::new(
                    self.stream_totals.get(dir).copied().unwrap_or(0),
                    batch_size as u64,
                    self.plan.window.seq_len as u64,
                )),
                _ => Starts::Uniform,
            };
            let spill = match self.plan.order {
                RowOrder::Source => None,
                RowOrder::Shuffle { seed, .. } => Some(Spill::new(
                    self.write
                        .spill_root
                        .join(format!("p{:05}", self.parts.len())),
                    Keying::shuffle(seed, dir),
                    self.spill_buckets,
                    &self.layout.schema,
                    self.spill_flush_bytes,
                )?),
                RowOrder::Tbptt { .. } => {
                    let Starts::Lanes(lanes) = starts else {
                        unreachable!("tbptt windows start in lanes")
                    };
                    Some(Spill::new(
                        self.write
                            .spill_root
                            .join(format!("p{:05}", self.parts.len())),
                        Keying::Tbptt(lanes),
                        self.spill_buckets,
                        &self.layout.schema,
                        self.spill_flush_bytes,
                    )?)
                }
            };
            self.parts.push(Part {
                windower: Windower::new(&self.plan.window, starts),
                extra: TokenAccount::default(),
                queue: VecDeque::new(),
                files: PartFiles::default(),
                spill,
                windows_spilled: 0,
                batches: VecDeque::new(),
            });
        }
        Ok(&mut self.parts[global])
    }

    fn apply(&mut self, prepared: &Prepared<T>, events: Vec<Event>) -> Result<Vec<usize>> {
        let mut touched = Vec::new();
        for e in events {
            match e {
                Event::Begin { part, row } => {
                    let docs = Arc::clone(&prepared.docs);
                    self.part_for(part)?
                        .windower
                        .begin_doc(DocRef { batch: docs, row });
                    touched.push(part);
                }
                Event::Tokens { part, range } => {
                    self.part_for(part)?
                        .windower
                        .extend(&prepared.tokens[range]);
                }
                Event::End { part } => self.part_for(part)?.windower.end_doc(),
            }
        }
        touched.sort_unstable();
        touched.dedup();
        Ok(touched)
    }

    /// Seals touched windowers and cuts full row groups (all rows when `finish`).
    fn collect_jobs(&mut self, touched: &[usize], finish: bool) -> Result<Jobs<T>> {
        let mut jobs = Vec::new();
        let mut spills = Vec::new();
        let rg = self.write.row_group_rows;
        for &i in touched {
            let dir = self.router.keys[i].dir.clone();
            let part = &mut self.parts[i];
            part.windower.seal();
            part.queue.extend(part.windower.take_ready());
            if let Some(spill) = &part.spill {
                let (keying, schema, buckets) = (
                    spill.keying().clone(),
                    Arc::clone(spill.schema()),
                    spill.buckets(),
                );
                while part.queue.len() >= rg || (finish && !part.queue.is_empty()) {
                    let n = rg.min(part.queue.len());
                    spills.push(SpillJob {
                        part: i,
                        first_index: part.windows_spilled,
                        windows: part.queue.drain(..n).collect(),
                        keying: keying.clone(),
                        schema: Arc::clone(&schema),
                        buckets,
                    });
                    part.windows_spilled += n as u64;
                }
            } else {
                let queue = &mut part.queue;
                let available = queue.len();
                let mut take = |n: usize| Ok(Payload::Windows(queue.drain(..n).collect()));
                part.files.cut(
                    i,
                    &dir,
                    available,
                    finish,
                    &self.write,
                    &mut take,
                    &mut jobs,
                )?;
            }
        }
        Ok((jobs, spills))
    }

    /// Reads, windows and writes the source. The calling thread routes
    /// documents and appends encoded row groups in order; decoding (ahead of
    /// need) and encoding run as tasks in the pool, so both cores stay busy
    /// without any wave barrier.
    fn main_pass(
        &mut self,
        ctx: &Context<'_>,
        pool: &rayon::ThreadPool,
        progress: Option<&ProgressBar>,
    ) -> Result<()> {
        use std::sync::mpsc::{sync_channel, Receiver, TryRecvError};
        let n = ctx.source.units.len();
        let threads = pool.current_num_threads();
        let lookahead = 2 * threads + 1;
        let max_in_flight = 3 * threads + 1;
        let layout = self.layout.clone();
        let carry = self.carry_columns.clone();
        let (layout, carry) = (&layout, &carry[..]);
        let started = Instant::now();
        pool.in_place_scope(|scope| -> Result<()> {
            let mut decodes: VecDeque<Receiver<Result<Prepared<T>>>> = VecDeque::new();
            let mut outputs: VecDeque<Receiver<Result<Output>>> = VecDeque::new();
            let mut next_unit = 0;
            let mut tokens = 0u64;
            let mut spawn_decodes = |decodes: &mut VecDeque<_>| {
                while next_unit < n && decodes.len() < lookahead {
                    let (tx, rx) = sync_channel(1);
                    let u = next_unit;
                    scope.spawn(move |_| {
                        let _ = tx.send(prepare::<T>(ctx, u));
                    });
                    decodes.push_back(rx);
                    next_unit += 1;
                }
            };
            let spawn_outputs =
                |jobs: Jobs<T>, outputs: &mut VecDeque<Receiver<Result<Output>>>| {
                    let (jobs, spills) = jobs;
                    for job in jobs {
                        let (tx, rx) = sync_channel(1);
                        scope.spawn(move |_| {
                            let _ = tx.send(encode_job(job, layout, carry).map(Output::Encoded));
                        });
                        outputs.push_back(rx);
                    }
                    for job in spills {
                        let (tx, rx) = sync_channel(1);
                        scope.spawn(move |_| {
                            let _ = tx.send(scatter_job(job, layout, carry).map(Output::Scattered));
                        });
                        outputs.push_back(rx);
                    }
                };
            spawn_decodes(&mut decodes);
            while let Some(rx) = decodes.pop_front() {
                let mut prepared = rx
                    .recv()
                    .map_err(|_| Error::Internal("a decode task vanished".into()))??;
                spawn_decodes(&mut decodes);
                let touched = match prepared.whole.take() {
                    Some((windows, accounts)) => {
                        let mut touched = Vec::with_capacity(windows.len());
                        for ((key, w), a) in prepared.partitions.iter().zip(windows).zip(&accounts)
                        {
                            let global = self.router.global(key);
                            let part = self.part_for(global)?;
                            part.queue.extend(w);
                            part.extra.add(a);
                            touched.push(global);
                        }
                        touched
                    }
                    None => {
                        let events = self.router.events(&prepared);
                        self.apply(&prepared, events)?
                    }
                };
                tokens += prepared.token_count;
                if let Some(pb) = progress {
                    pb.inc(prepared.rows as u64);
                    let secs = started.elapsed().as_secs_f64().max(1e-9);
                    pb.set_message(format!("{:.1} M tokens/s", tokens as f64 / secs / 1e6));
                }
                drop(prepared);
                let jobs = self.collect_jobs(&touched, false)?;
                spawn_outputs(jobs, &mut outputs);
                // Append finished row groups in order; wait when too many are in flight.
                while let Some(front) = outputs.front() {
                    let result = if outputs.len() > max_in_flight {
                        front
                            .recv()
                            .map_err(|_| Error::Internal("an encode task vanished".into()))?
                    } else {
                        match front.try_recv() {
                            Ok(r) => r,
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Disconnected) => {
                                return Err(Error::Internal("an encode task vanished".into()))
                            }
                        }
                    };
                    outputs.pop_front();
                    self.consume(result?)?;
                }
            }
            if let Some(part) = self.router.finish() {
                self.part_for(part)?.windower.end_doc();
            }
            for p in &mut self.parts {
                p.windower.finish();
            }
            let all: Vec<usize> = (0..self.parts.len()).collect();
            let jobs = self.collect_jobs(&all, true)?;
            spawn_outputs(jobs, &mut outputs);
            while let Some(rx) = outputs.pop_front() {
                let result = rx
                    .recv()
                    .map_err(|_| Error::Internal("an encode task vanished".into()))?;
                self.consume(result?)?;
            }
            for p in &mut self.parts {
                p.files.close_open()?;
            }
            Ok(())
        })
    }

    /// Appends an encoded row group, or buffers scattered rows.
    fn consume(&mut self, output: Output) -> Result<()> {
        match output {
            Output::Encoded(e) => {
                let part = e.part;
                self.parts[part].files.append(e)
            }
            Output::Scattered((part, pieces)) => {
                self.parts[part].spill.as_mut().expect("spill").push(pieces)
            }
        }
    }

    /// Reads each partition's buckets back in key order and writes them.
    fn ordered_pass(&mut self) -> Result<()> {
        let output = Arc::clone(&self.layout.schema);
        for i in 0..self.parts.len() {
            let dir = self.router.keys[i].dir.clone();
            let mut spill = self.parts[i].spill.take().expect("ordered mode spills");
            spill.flush()?;
            let buckets = spill.buckets();
            for b in 0..buckets {
                let part = &mut self.parts[i];
                if let Some(batch) = spill.read_sorted(b, &output)? {
                    part.batches.push_back(batch);
                }
                let finish = b + 1 == buckets;
                let available: usize = part.batches.iter().map(|b| b.num_rows()).sum();
                let batches = &mut part.batches;
                let mut take = |n: usize| take_rows(batches, n).map(Payload::<T>::Batch);
                let mut jobs = Vec::new();
                part.files.cut(
                    i,
                    &dir,
                    available,
                    finish,
                    &self.write,
                    &mut take,
                    &mut jobs,
                )?;
                for e in encode_all(jobs, &self.layout, &self.carry_columns)? {
                    self.parts[i].files.append(e)?;
                }
            }
            spill.remove();
            self.parts[i].files.close_open()?;
        }
        let _ = std::fs::remove_dir_all(&self.write.spill_root);
        Ok(())
    }
}

/// Removes the first `n` rows from a queue of batches.
fn take_rows(batches: &mut VecDeque<RecordBatch>, n: usize) -> Result<RecordBatch> {
    let mut parts = Vec::new();
    let mut need = n;
    while need > 0 {
        let front = batches.pop_front().expect("enough rows queued");
        if front.num_rows() <= need {
            need -= front.num_rows();
            parts.push(front);
        } else {
            parts.push(front.slice(0, need));
            batches.push_front(front.slice(need, front.num_rows() - need));
            need = 0;
        }
    }
    if parts.len() == 1 {
        return Ok(parts.pop().expect("one"));
    }
    arrow::compute::concat_batches(&parts[0].schema(), &parts)
        .map_err(|e| Error::Internal(e.to_string()))
}

fn encode_job<T: Token>(job: Job<T>, layout: &OutputLayout, carry: &[usize]) -> Result<Encoded> {
    let batch = match job.payload {
        Payload::Windows(w) => materialize(&w, layout, carry)?,
        Payload::Batch(b) => b,
    };
    let chunks = encode_row_group(&job.factory, job.row_group, &batch, &job.name)?;
    Ok(Encoded {
        part: job.part,
        file_seq: job.file_seq,
        close_after: job.close_after,
        rows: batch.num_rows(),
        chunks,
    })
}

fn encode_all<T: Token>(
    jobs: Vec<Job<T>>,
    layout: &OutputLayout,
    carry: &[usize],
) -> Result<Vec<Encoded>> {
    let results: Vec<Result<Encoded>> = jobs
        .into_par_iter()
        .map(|job| encode_job(job, layout, carry))
        .collect();
    results.into_iter().collect()
}

/// Rows of one partition split by bucket.
type ScatteredPart = (usize, Vec<(usize, RecordBatch)>);

fn scatter_job<T: Token>(
    job: SpillJob<T>,
    layout: &OutputLayout,
    carry: &[usize],
) -> Result<ScatteredPart> {
    let mut local = layout.clone();
    if let Keying::Tbptt(lanes) = &job.keying {
        local.lanes = Some(*lanes);
    }
    let starts: Vec<u64> = job.windows.iter().map(|w| w.start).collect();
    let batch = materialize(&job.windows, &local, carry)?;
    let pieces = Spill::scatter(
        &job.keying,
        job.buckets,
        &job.schema,
        &batch,
        job.first_index,
        &starts,
    )?;
    Ok((job.part, pieces))
}

fn buckets_for(
    plan: &Plan,
    source: &Source,
    layout: &OutputLayout,
    memory_bytes: usize,
) -> (usize, usize) {
    // An upper bound on the output from the footers.
    let w = &plan.window;
    let tokens: u64 = source.units.iter().map(|u| u.tokens_estimate).sum();
    let windows = Geometry::of(w).upper_bound(tokens, source.total_rows(), w.separator.is_some());
    let estimate = windows * geometry::row_bytes(&layout.spec);
    // A bucket read back is copied once to sort, so it may take a third of the
    // budget; the write buffers take another third.
    let per_bucket = (memory_bytes / 3).max(1 << 20) as u64;
    let buckets = (estimate.div_ceil(per_bucket) * 2).clamp(1, 4096) as usize;
    (buckets, (memory_bytes / 3).max(1 << 20))
}

fn make_progress(enabled: bool, rows: u64) -> Option<ProgressBar> {
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = ProgressBar::new(rows);
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} rows {msg} (ETA {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    Some(pb)
}
