//! The main pass of a run: the calling thread routes documents and
//! appends row groups in order while the pool decodes ahead and encodes
//! behind.

use std::collections::{HashMap, VecDeque};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use super::append;
use super::blend::{self, PartBlend, Targets};
use super::jobs::{encode_job, Cut, Jobs, Output, Part};
use super::ordered::{buckets_for, scatter_job};
use super::prepare::{next_piece, prepare, Context, Decoded, Prepared};
use super::route::{Event, Router};
use super::{run_layout, Outcome, Pipeline, ProgressCounter, RunOptions, RunReport};
use crate::config::SinkMode;
use crate::error::{Error, Result};
use crate::order::{Keying, Spill};
use crate::plan::{Plan, RowOrder};
use crate::sink::{
    writer_properties, FieldEntry, InputEntry, Manifest, OpenFiles, PartFiles, PartitionEntry,
    SourceAccount, Target, WriteSettings, MAX_OPEN_FILES,
};
use crate::source::Source;
use crate::window::geometry::Lanes;
use crate::window::{DocRef, OutputLayout, Starts, Token, TokenAccount, Windower};
use std::sync::atomic::Ordering;

/// The state of one run, generic over the output token type.
pub(super) struct Run<'a, T: Token> {
    pub(super) plan: &'a Plan,
    pub(super) layout: OutputLayout,
    pub(super) carry_columns: Vec<usize>,
    pub(super) write: Arc<WriteSettings>,
    /// Local scratch space for order buckets.
    pub(super) spill_root: PathBuf,
    pub(super) router: Router,
    pub(super) parts: Vec<Part<T>>,
    /// Part files open at once, over all partitions.
    pub(super) open_files: OpenFiles,
    pub(super) stream_totals: HashMap<String, u64>,
    pub(super) spill_buckets: usize,
    pub(super) spill_flush_bytes: usize,
    /// Bytes in the write buffers of every partition's order buckets.
    pub(super) spill_buffered: usize,
    /// Bytes of one output row (window), for the queued-windows budget.
    pub(super) row_bytes: u64,
    /// Partition directory → number of its first part file (after the
    /// existing ones, when appending).
    pub(super) next_file_seq: HashMap<String, usize>,
    /// A mix's per-source account, by unit origin (empty for one source).
    pub(super) sources: Vec<SourceAccount>,
    /// The source (unit origin) being read.
    pub(super) origin: usize,
    /// A blend's windows per partition directory and source (pass 1).
    pub(super) blend_targets: Targets,
}

/// Memory for the buckets of TBPTT's lanes and steps and of a blend's
/// positions (write buffers and the bucket being sorted). The order is fixed
/// by the keys, so a smaller budget only means more buckets, never other
/// output; there is no key for it.
pub(super) const FIXED_ORDER_MEMORY_BYTES: usize = 96 << 20;

impl<'a, T: Token> Run<'a, T> {
    pub(super) fn execute(
        plan: &Plan,
        options: &RunOptions,
        pool: &rayon::ThreadPool,
    ) -> Result<RunReport> {
        let started = Instant::now();
        // Declared first, dropped last: a signal during the cleanup below ends the process.
        let _armed = crate::cancel::arm();
        let mut passes = Vec::new();
        let mut sources = Vec::new();
        let (source, staging) = if plan.sink.mode == SinkMode::Append {
            // The dataset's state first: it decides which files are new.
            let staging = Target::prepare(&plan.sink)?;
            match append::open_new_files(plan, pool, &staging)? {
                Some(source) => (source, staging),
                None => {
                    let manifest = staging.previous().cloned().ok_or_else(|| {
                        Error::Internal("an append to an empty sink found no input".into())
                    })?;
                    return Ok(RunReport {
                        manifest,
                        sink: plan.sink.path.to_path_buf(),
                        outcome: Outcome::NothingNew,
                    });
                }
            }
        } else if let Some((source, p, checks)) = pool.install(|| super::mix::open(plan))? {
            sources = (checks.into_iter())
                .map(|c| SourceAccount {
                    name: c.name,
                    tokens_in: c.tokens,
                    passes: c.passes,
                    windows: Some(0),
                    ..Default::default()
                })
                .collect();
            passes = p;
            (source, Target::prepare(&plan.sink)?)
        } else {
            let source = pool.install(|| Source::open(&plan.source))?;
            (source, Target::prepare(&plan.sink)?)
        };
        let layout = run_layout(plan, &source.schema);
        if let Some(previous) = staging.previous() {
            let sink = plan.sink.path.to_path_buf();
            append::check_schema(&sink, previous, &FieldEntry::of_schema(&layout.schema))?;
        }
        let next_file_seq = staging
            .previous()
            .map(append::next_file_seq)
            .unwrap_or_default();
        let carry_columns: Vec<usize> = plan
            .source
            .columns
            .carry
            .iter()
            .enumerate()
            .filter(|(_, c)| !plan.sink.partition_by.contains(c))
            .map(|(i, _)| i)
            .collect();
        let props = writer_properties(plan, &layout.schema);
        let ctx = Context {
            passes,
            ..Context::new(plan, &source)
        };
        let progress = make_progress(options.progress, source.total_rows());
        let counter = options.counter.as_deref();
        if let Some(c) = counter {
            c.total.store(source.total_rows(), Ordering::Relaxed);
        }

        // TBPTT needs each partition's stream length before windowing.
        let mut stream_totals = HashMap::new();
        if matches!(plan.order, RowOrder::Tbptt { .. }) {
            if let Some(pb) = &progress {
                pb.set_message("pass 1/2: measuring streams");
            }
            let lengths = Pipeline::new(plan.clone()).document_lengths(options.threads)?;
            let sep = plan.window.separator.is_some() as u64;
            for (dir, (docs, tokens)) in lengths.partitions {
                stream_totals.insert(dir, tokens + docs * sep);
            }
        }
        // A blend needs each partition's windows per source before keying.
        let blend_targets = if plan.order == RowOrder::Blend {
            if let Some(pb) = &progress {
                pb.set_message("pass 1/2: counting each source's windows");
            }
            let counting = Context {
                cut_windows: false,
                passes: ctx.passes.clone(),
                ..Context::new(plan, &source)
            };
            pool.install(|| blend::count_windows::<T>(&counting, run_sources(plan)))?
        } else {
            Targets::new()
        };
        let (spill_buckets, spill_flush_bytes) = match plan.order {
            RowOrder::Source => (0, 0),
            RowOrder::Shuffle { memory_bytes, .. } => {
                buckets_for(plan, &source, &layout, memory_bytes)
            }
            RowOrder::Tbptt { .. } | RowOrder::Blend => {
                buckets_for(plan, &source, &layout, FIXED_ORDER_MEMORY_BYTES)
            }
        };
        let schema = Arc::clone(&layout.schema);
        let row_bytes = crate::window::geometry::row_bytes(&layout.spec);
        let mut run: Run<'_, T> = Run {
            plan,
            layout,
            carry_columns,
            write: Arc::new(WriteSettings::new(
                staging.dest(),
                schema,
                props,
                plan.sink.row_group_rows,
                plan.sink.max_rows_per_file as u64,
            )?),
            spill_root: staging.spill_root(),
            router: Router::default(),
            parts: Vec::new(),
            open_files: OpenFiles::new(MAX_OPEN_FILES),
            stream_totals,
            spill_buckets,
            spill_flush_bytes,
            row_bytes,
            spill_buffered: 0,
            next_file_seq,
            sources,
            origin: 0,
            blend_targets,
        };
        run.main_pass(&ctx, pool, progress.as_ref(), counter)?;
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
                files: p.files.take_entries(),
            })
            .collect();
        partitions.sort_by(|a, b| a.path.cmp(&b.path));
        let mut totals = TokenAccount::default();
        for p in &partitions {
            totals.add(&p.account);
        }
        let manifest = Manifest {
            seqwin_version: crate::VERSION.to_string(),
            version: staging.next_version(),
            config: plan.config.redacted(),
            mode: plan.sink.mode,
            inputs: source
                .files
                .iter()
                .map(|f| InputEntry {
                    path: f.path.display().to_string(),
                    rel_path: Some(f.rel.clone()),
                    bytes: f.bytes,
                    rows: f.rows,
                    modified: f.modified.clone(),
                    etag: f.etag.clone(),
                    version: staging.next_version(),
                })
                .collect(),
            partitions,
            totals,
            schema: FieldEntry::of_schema(&run.layout.schema),
            partition_by: plan.sink.partition_by.clone(),
            elapsed_seconds: started.elapsed().as_secs_f64(),
            sources: std::mem::take(&mut run.sources),
        };
        let (manifest, outcome) = append::finish(staging.previous(), manifest);
        crate::cancel::interrupted()?;
        staging.commit(&manifest)?;
        Ok(RunReport {
            manifest,
            sink: plan.sink.path.to_path_buf(),
            outcome,
        })
    }

    fn part_for(&mut self, global: usize) -> Result<&mut Part<T>> {
        while self.parts.len() <= global {
            let key = &self.router.keys[self.parts.len()];
            crate::sink::check_partition_dir(&self.plan.sink.path, &key.values, &key.dir)?;
            let dir = &key.dir;
            let starts = match self.plan.order {
                RowOrder::Tbptt { batch_size } => Starts::Lanes(Lanes::new(
                    self.stream_totals.get(dir).copied().unwrap_or(0),
                    batch_size as u64,
                    self.plan.window.seq_len as u64,
                )),
                _ => Starts::Uniform,
            };
            let blend = (self.plan.order == RowOrder::Blend).then(|| {
                PartBlend::new(
                    self.blend_targets
                        .get(dir)
                        .cloned()
                        .unwrap_or_else(|| vec![0; run_sources(self.plan)]),
                )
            });
            let spill = match self.plan.order {
                RowOrder::Source => None,
                RowOrder::Shuffle { seed, .. } => Some(Spill::new(
                    self.spill_root.join(format!("p{:05}", self.parts.len())),
                    Keying::shuffle(seed, dir),
                    self.spill_buckets,
                    &self.layout.schema,
                )?),
                RowOrder::Blend => Some(Spill::new(
                    self.spill_root.join(format!("p{:05}", self.parts.len())),
                    Keying::Blend {
                        rows: blend.as_ref().map_or(0, PartBlend::rows),
                    },
                    self.spill_buckets,
                    &self.layout.schema,
                )?),
                RowOrder::Tbptt { .. } => {
                    let Starts::Lanes(lanes) = starts else {
                        unreachable!("tbptt windows start in lanes")
                    };
                    Some(Spill::new(
                        self.spill_root.join(format!("p{:05}", self.parts.len())),
                        Keying::Tbptt(lanes),
                        self.spill_buckets,
                        &self.layout.schema,
                    )?)
                }
            };
            self.parts.push(Part {
                windower: Windower::new(&self.plan.window, starts),
                extra: TokenAccount::default(),
                queue: VecDeque::new(),
                files: PartFiles::new(
                    self.parts.len(),
                    dir,
                    Arc::clone(&self.write),
                    self.next_file_seq.get(dir).copied().unwrap_or(0),
                ),
                spill,
                windows_spilled: 0,
                batches: VecDeque::new(),
                blend,
                positions: VecDeque::new(),
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
                    // A flat-stream document continuing from the previous
                    // row group has no Begin here, but its windows must be
                    // sealed and taken all the same (or its buffer grows
                    // with the whole stream).
                    touched.push(part);
                }
                Event::End { part } => self.part_for(part)?.windower.end_doc(),
            }
        }
        touched.sort_unstable();
        touched.dedup();
        Ok(touched)
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
        counter: Option<&ProgressCounter>,
    ) -> Result<()> {
        use std::sync::mpsc::{sync_channel, Receiver, TryRecvError};
        let n = ctx.source.units.len();
        let threads = pool.current_num_threads();
        let lookahead = 2 * threads + 1;
        let max_in_flight = 3 * threads + 1;
        let layout = self.layout.clone();
        let carry = self.carry_columns.clone();
        let factory = Arc::clone(&self.write.factory);
        let (layout, carry, factory) = (&layout, &carry[..], &*factory);
        let started = Instant::now();
        pool.in_place_scope(|scope| -> Result<()> {
            let mut decodes: VecDeque<Receiver<Result<Decoded<T>>>> = VecDeque::new();
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
                    for cut in jobs {
                        let (tx, rx) = sync_channel(1);
                        let job = match cut {
                            Cut::Encode(job) => job,
                            Cut::Close { part, file_seq } => {
                                let _ = tx.send(Ok(Output::Close { part, file_seq }));
                                outputs.push_back(rx);
                                continue;
                            }
                        };
                        scope.spawn(move |_| {
                            let _ = tx
                                .send(encode_job(job, factory, layout, carry).map(Output::Encoded));
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
                crate::cancel::interrupted()?;
                let Decoded { mut prepared, rest } = rx
                    .recv()
                    .map_err(|_| Error::Internal("a decode task vanished".into()))??;
                // The next piece of a unit read in pieces comes next: it is
                // decoded while this one is routed.
                if let Some(rest) = rest {
                    let (tx, rx) = sync_channel(1);
                    scope.spawn(move |_| {
                        let _ = tx.send(next_piece::<T>(ctx, rest));
                    });
                    decodes.push_front(rx);
                }
                spawn_decodes(&mut decodes);
                if let Some(a) = self.sources.get_mut(prepared.origin) {
                    a.documents_selected +=
                        prepared.pieces.iter().filter(|p| p.starts).count() as u64;
                    a.tokens_selected += (prepared.pieces.iter())
                        .map(|p| p.range.len() as u64)
                        .sum::<u64>();
                    if let (Some(w), Some((_, accounts))) = (&mut a.windows, &prepared.whole) {
                        *w += accounts.iter().map(|a| a.windows).sum::<u64>();
                    }
                }
                if prepared.origin != self.origin {
                    // A packed stream never crosses sources: each source's
                    // stream in each partition ends where the source does.
                    for p in &mut self.parts {
                        p.windower.finish();
                    }
                    let all: Vec<usize> = (0..self.parts.len()).collect();
                    let jobs = self.collect_jobs(&all, false)?;
                    spawn_outputs(jobs, &mut outputs);
                    self.origin = prepared.origin;
                }
                let touched = match prepared.whole.take() {
                    Some((windows, accounts)) => {
                        let mut touched = Vec::with_capacity(windows.len());
                        for ((key, w), a) in prepared.partitions.iter().zip(windows).zip(&accounts)
                        {
                            let global = self.router.global(key);
                            let part = self.part_for(global)?;
                            part.enqueue(w, prepared.origin)?;
                            part.extra.add(a);
                            touched.push(global);
                        }
                        touched
                    }
                    None => {
                        // Windows the windowers cut are counted per source
                        // where they are taken (`collect_jobs`).
                        let events = self.router.events(&prepared);
                        self.apply(&prepared, events)?
                    }
                };
                tokens += prepared.token_count;
                if let Some(c) = counter {
                    c.rows.fetch_add(prepared.rows as u64, Ordering::Relaxed);
                }
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
                crate::cancel::interrupted()?;
                let result = rx
                    .recv()
                    .map_err(|_| Error::Internal("an encode task vanished".into()))?;
                self.consume(result?)?;
            }
            for p in &mut self.parts {
                p.files.close_open()?;
            }
            for (p, key) in self.parts.iter().zip(&self.router.keys) {
                if let Some(blend) = &p.blend {
                    blend.check_complete(&key.dir)?;
                }
            }
            Ok(())
        })
    }

    /// Appends an encoded row group, or buffers scattered rows.
    fn consume(&mut self, output: Output) -> Result<()> {
        match output {
            Output::Close { part, file_seq } => self.parts[part].files.close_file(file_seq),
            Output::Encoded(e) => {
                let part = e.part;
                self.parts[part].files.append(e)
            }
            Output::Scattered((part, pieces)) => {
                let spill = self.parts[part].spill.as_mut().expect("spill");
                self.spill_buffered += spill.push(pieces);
                // One budget for the run, whatever the number of partitions.
                if self.spill_buffered > self.spill_flush_bytes {
                    for p in &mut self.parts {
                        if let Some(s) = p.spill.as_mut() {
                            s.flush()?;
                        }
                    }
                    self.spill_buffered = 0;
                }
                Ok(())
            }
        }
    }
}

pub(super) fn make_progress(enabled: bool, rows: u64) -> Option<ProgressBar> {
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

/// The sources a run reads: a mix's, or one.
fn run_sources(plan: &Plan) -> usize {
    plan.mix.as_ref().map_or(1, |m| m.sources.len())
}
