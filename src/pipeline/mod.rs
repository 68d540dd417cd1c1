//! Wires source → windows → order → sink, in parallel, with output bytes
//! that do not depend on the thread count.
//!
//! ```text
//!   pool tasks:       read + decode + validate + split one row group
//!                     (+ cut the windows of whole documents)      ahead of need
//!   calling thread:   take decoded row groups in source order, route
//!                     documents to partitions, cut row groups and files
//!   pool tasks:       materialise + encode a row group (or scatter it into
//!                     shuffle/TBPTT/blend buckets)
//!   calling thread:   append encoded row groups in the order they were cut
//! ```
//!
//! Every decision that shapes the output (partition of a document, window
//! starts, row-group and file boundaries, file names) is made in the
//! sequential steps from the source order alone, so the bytes written are the
//! same whatever the thread count.

mod append;
mod blend;
mod jobs;
mod mix;
mod ordered;
mod prepare;
mod queues;
mod route;
mod run;

pub use mix::MixCheck;
use prepare::Context;
pub(crate) use prepare::{partition_columns, prepare_batch, BatchCtx};
use route::for_each_wave;
pub(crate) use route::{Event, Router};
use run::Run;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow_schema::{DataType, Field, SchemaRef};

use crate::config::SinkMode;
use crate::error::{Error, Result};
use crate::plan::{Plan, RowOrder, SourceColumns};
use crate::sink::Manifest;
use crate::source::Source;
use crate::window::geometry::{self, Geometry, Lanes};
use crate::window::WindowSpec;
use crate::window::{OutputLayout, TokenDtype};

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
    /// Counts the rows read so far (and the total), for a caller that shows
    /// progress its own way (the Python package in a notebook).
    pub counter: Option<std::sync::Arc<ProgressCounter>>,
}

/// Rows read so far out of the source's total, updated as a run goes.
#[derive(Debug, Default)]
pub struct ProgressCounter {
    /// Rows read.
    pub rows: std::sync::atomic::AtomicU64,
    /// Rows in the source (0 until the source is open).
    pub total: std::sync::atomic::AtomicU64,
}

/// What a run wrote.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The manifest written to `_seqwin.json` (after an append: of the
    /// whole new version; when there was nothing to append: the current one).
    pub manifest: Manifest,
    /// The dataset directory.
    pub sink: PathBuf,
    /// What the run did to the dataset.
    pub outcome: Outcome,
}

/// What a run did to its sink.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Wrote a new dataset (version 0).
    Written,
    /// Appended new input files as a new version.
    Appended {
        /// Input files read.
        inputs: usize,
        /// Windows written.
        windows: u64,
        /// Part files written.
        files: usize,
    },
    /// Every input file was already in the dataset: no new version.
    NothingNew,
}

impl RunReport {
    /// The closing paragraph printed by the CLI.
    pub fn summary(&self) -> String {
        let m = &self.manifest;
        match self.outcome {
            Outcome::Written => {}
            Outcome::Appended {
                inputs,
                windows,
                files,
            } => {
                return format!(
                    "seqwin: appended {windows} windows from {inputs} new input file(s) in {files} new file(s) to {} as version {}; it now holds {} windows from {} input files.",
                    self.sink.display(),
                    m.version,
                    m.totals.windows,
                    m.inputs.len()
                )
            }
            Outcome::NothingNew => {
                return format!(
                    "seqwin: nothing to append: every input file is already in version {} of {}; no new version was written.",
                    m.version,
                    self.sink.display()
                )
            }
        }
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
    /// Under `sink.mode: append` with a dataset at the sink: what the run
    /// would add (the figures above then cover the new files only).
    pub append: Option<AppendCheck>,
    /// With `sources:`: the planned mix, one entry per source (the input
    /// figures above count every source once, the estimates what the
    /// passes select).
    pub mix: Option<Vec<MixCheck>>,
}

/// What an append would add to the dataset at the sink.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AppendCheck {
    /// The dataset's current version.
    pub version: u64,
    /// Input files it holds.
    pub ingested: usize,
    /// Listed input files it does not hold yet.
    pub new_files: usize,
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
        let (source, mix) = match mix::open(&self.plan)? {
            Some((source, _, checks)) => (source, Some(checks)),
            None => (Source::open(&self.plan.source)?, None),
        };
        let layout = run_layout(&self.plan, &source.schema);
        let w = &self.plan.window;
        let (new, append) = match self.plan.sink.mode {
            SinkMode::Append => append::plan(&self.plan, &source)?,
            _ => (vec![true; source.files.len()], None),
        };
        let units = source.units.iter().filter(|u| new[u.file]);
        let tokens: u64 = units.map(|u| u.tokens_estimate).sum();
        let rows: u64 = (source.files.iter().zip(&new))
            .filter(|(_, n)| **n)
            .map(|(f, _)| f.rows)
            .sum();
        let mut docs = if source.flat && self.plan.source.columns.id.is_none() {
            1
        } else {
            rows
        };
        // A mix windows what its passes select (expected values); its units
        // repeat for each pass, so the input figures count every source once.
        let (tokens, selected) = match &mix {
            Some(m) => {
                docs = (m.iter())
                    .map(|m| (m.rows as f64 * m.passes).round() as u64)
                    .sum();
                let input = m.iter().map(|m| m.tokens).sum();
                (input, m.iter().map(|m| m.tokens_selected).sum())
            }
            None => (tokens, tokens),
        };
        let separator = w.separator.is_some();
        let windows = match self.plan.order {
            RowOrder::Tbptt { batch_size } => {
                let stream = selected + docs * separator as u64;
                Lanes::new(stream, batch_size as u64, w.seq_len as u64).rows()
            }
            _ if !new.contains(&true) => 0,
            _ => Geometry::of(w).estimate(selected, docs, w.pack, separator),
        };
        Ok(CheckReport {
            files: new.iter().filter(|n| **n).count(),
            rows,
            tokens,
            windows,
            bytes: windows * geometry::row_bytes(&layout.spec),
            schema: layout.schema,
            append,
            mix,
        })
    }

    /// Runs the pipeline and writes the dataset.
    ///
    /// # Errors
    /// [`Error::Input`] for bad data (nothing is written), [`Error::Sink`]
    /// when the sink may not be written, [`Error::Io`] / [`Error::Write`] for
    /// write failures (the staging directory is removed).
    pub fn run(&self, options: &RunOptions) -> Result<RunReport> {
        let pool = thread_pool(options.threads)?;
        match self.plan.window.dtype {
            TokenDtype::Int32 => Run::<i32>::execute(&self.plan, options, &pool),
            TokenDtype::Int64 => Run::<i64>::execute(&self.plan, options, &pool),
            TokenDtype::Uint16 => Run::<u16>::execute(&self.plan, options, &pool),
            TokenDtype::Uint32 => Run::<u32>::execute(&self.plan, options, &pool),
        }
    }

    /// Reads the source once and returns the distribution of document
    /// lengths: how many documents have each length, and each partition's
    /// documents and tokens. Memory grows with the number of distinct lengths
    /// and partitions, not with the number of documents.
    ///
    /// # Errors
    /// Input errors as in [`Pipeline::run`].
    pub fn document_lengths(&self, threads: Option<usize>) -> Result<DocumentLengths> {
        mix::refuse_run(&self.plan)?;
        let pool = thread_pool(threads)?;
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

/// The distribution of document lengths of a source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DocumentLengths {
    /// Length → number of documents of that length, over all partitions.
    pub counts: BTreeMap<u64, u64>,
    /// Partition directory → `(documents, tokens)` (separators not included).
    pub partitions: BTreeMap<String, (u64, u64)>,
}

impl DocumentLengths {
    fn push(&mut self, part: &str, n: u64) {
        *self.counts.entry(n).or_default() += 1;
        match self.partitions.get_mut(part) {
            Some((docs, tokens)) => {
                *docs += 1;
                *tokens += n;
            }
            None => {
                self.partitions.insert(part.to_string(), (1, n));
            }
        }
    }
}

/// Most worker threads accepted (`--threads`): beyond it, the decode
/// lookahead (two row groups per thread) alone would hold more memory than
/// the run needs, and thread start-up would dominate small inputs.
pub const MAX_THREADS: usize = 256;

/// The worker pool of a run: `threads` workers (default: all cores).
///
/// # Errors
/// [`Error::Usage`] for 0 or more than [`MAX_THREADS`] threads.
fn thread_pool(threads: Option<usize>) -> Result<rayon::ThreadPool> {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = threads {
        if n == 0 || n > MAX_THREADS {
            return Err(Error::Usage(format!(
                "--threads must be between 1 and {MAX_THREADS}, got {n}"
            )));
        }
        builder = builder.num_threads(n);
    }
    builder.build().map_err(|e| Error::Internal(e.to_string()))
}

/// The output layout of a run for source batches of `schema`.
pub(crate) fn run_layout(plan: &Plan, schema: &arrow_schema::Schema) -> OutputLayout {
    output_layout(
        &plan.window,
        &plan.source.columns,
        &plan.sink.partition_by,
        matches!(plan.order, RowOrder::Tbptt { .. }),
        schema,
    )
}

/// The output layout for batches of `schema` (`[tokens, id?, carry…]`):
/// carried columns that are partition columns live in directory names.
pub(crate) fn output_layout(
    window: &WindowSpec,
    columns: &SourceColumns,
    partition_by: &[String],
    tbptt: bool,
    schema: &arrow_schema::Schema,
) -> OutputLayout {
    let id_type = if columns.id.is_some() {
        schema.field(1).data_type().clone()
    } else {
        DataType::Int64
    };
    let first_carry = 1 + columns.id.is_some() as usize;
    let carry: Vec<Field> = columns
        .carry
        .iter()
        .enumerate()
        .filter(|(_, c)| !partition_by.contains(c))
        .map(|(i, _)| schema.field(first_carry + i).clone())
        .collect();
    OutputLayout::new(window, &id_type, &carry, tbptt)
}
