//! The command line: clap definitions and the dispatch of `seqwin run |
//! check | stats | inspect`. Flags only tune the run; the dataset is
//! described by the pipeline file.
//!
//! [`main_with_args`] is the whole `seqwin` program; the binary
//! (`src/main.rs`) and the Python wheel's `seqwin` console script both call
//! it, so they behave identically: same messages, same exit codes (0 ok, 2 bad
//! usage/config/input, 1 other).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{ArgAction, Parser, Subcommand};
use serde::Serialize;

use crate::error::panic_message;
use crate::pipeline::{CheckReport, Outcome, RunReport};
use crate::plan::RowOrder;
use crate::sink::{FieldEntry, PartitionEntry};
use crate::window::TokenAccount;
use crate::{Pipeline, RunOptions};

/// Turn tokenized Parquet corpora into next-token-prediction training windows.
#[derive(Debug, Parser)]
#[command(name = "seqwin", version, about, propagate_version = true)]
pub struct Cli {
    /// Log to stderr: -v debug (seqwin, object store requests, retries,
    /// credential sources), -vv trace. `RUST_LOG` wins when set.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline and write the dataset.
    Run {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Override a config key: --set windows.seq_len=2048 (dotted path, YAML value).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Worker threads (default: all cores). Never changes the output.
        #[arg(long)]
        threads: Option<usize>,
        /// No progress bar and no summary.
        #[arg(long, short)]
        quiet: bool,
        /// Print the summary and token account as JSON on stdout (no text summary).
        #[arg(long)]
        json: bool,
    },
    /// Validate the config and input schemas, estimate windows and bytes; write nothing.
    Check {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Override a config key (dotted path, YAML value).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Print the plan and estimate as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Document-length distribution and windows per candidate seq_len.
    Stats {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Candidate seq_len values, comma separated.
        #[arg(long = "seq-len", value_delimiter = ',', value_name = "N,N,...")]
        seq_len: Vec<usize>,
        /// Override a config key (dotted path, YAML value).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
        /// Worker threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Show a dataset's schema, partitions, counts and first rows; verify its manifest.
    Inspect {
        /// The dataset directory.
        dataset: PathBuf,
        /// Print what was verified and the counts as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the `seqwin` program on `args` (the first item is the program name,
/// as in [`std::env::args_os`]) and returns its exit code: 0 success, 2 bad
/// usage, config or input data, 1 anything else.
///
/// Meant to be a process's `main`: it prints to stdout/stderr, ignores
/// `SIGXFSZ` (a file-size limit becomes a write error), tunes glibc's
/// allocator, installs a global `tracing` subscriber on stderr (once per
/// process), and reports panics as one `internal error` line (the previous
/// panic hook is restored before it returns).
pub fn main_with_args<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let code = run_program(args);
    // The process may go on (Python): nothing may stay in stdout's buffer.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    code
}

fn run_program<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    ignore_file_size_signal();
    tune_allocator();
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    init_logging(cli.verbose);
    // Panics are contained and reported as errors; never print a backtrace.
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(|| execute(cli));
    std::panic::set_hook(previous_hook);
    match outcome {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            eprintln!("seqwin: error: {e}");
            e.exit_code()
        }
        Err(payload) => {
            eprintln!(
                "seqwin: internal error (please report): {}",
                panic_message(payload.as_ref())
            );
            1
        }
    }
}

/// The log filter: `RUST_LOG` when set (`level` and `target=level`
/// directives, comma separated), else by `-v` count. At the default level
/// only errors of dependencies would show (seqwin logs none), so stderr is
/// what it was before logging existed.
fn log_filter(verbose: u8) -> tracing_subscriber::filter::Targets {
    let spec = match std::env::var("RUST_LOG") {
        Ok(s) if !s.trim().is_empty() => s,
        _ => match verbose {
            0 => "error".to_string(),
            1 => "warn,seqwin=debug,object_store=debug".to_string(),
            _ => "debug,seqwin=trace,object_store=trace".to_string(),
        },
    };
    spec.parse().unwrap_or_else(|e| {
        eprintln!("seqwin: ignoring RUST_LOG={spec:?}: {e}");
        "error".parse().expect("valid filter")
    })
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    // A second call in the same process (Python) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(log_filter(verbose))
        .try_init();
}

/// Under a file-size limit (`ulimit -f`) the kernel sends SIGXFSZ, which kills
/// the process; ignoring it turns the limit into an ordinary write error.
fn ignore_file_size_signal() {
    #[cfg(unix)]
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// glibc returns freed row-group buffers (a few MiB each) to the kernel and
/// page-faults them back in for the next row group; keeping them in the heap
/// cut case A of the benchmark from 0.55 s to 0.50 s (read-only: 0.26 → 0.18 s).
/// Peak memory is unchanged: the buffers are reused, not accumulated.
///
/// One arena for every thread: glibc gives threads that allocate at once
/// arenas of their own and keeps each arena's freed memory, so RSS drifted
/// towards the sum of every arena's peak as a run went on (a flat stream
/// with ids, whose live heap is 129 MiB at 32M tokens and 130 MiB at 128M
/// under heaptrack: RSS 199 → 231 MiB with the default arenas, 156 → 174
/// MiB with one). Allocations are few and large here (about 90,000 a
/// second), so the shared lock costs no measurable time (cases A–D of
/// `benches/bench.py` within noise; peak RSS 14–25% lower).
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters (under the allocator's lock).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// `seqwin run --json`: the run's summary and token account.
#[derive(Debug, Serialize)]
struct RunJson<'a> {
    sink: String,
    seqwin_version: &'a str,
    /// The dataset's version after the run.
    version: u64,
    /// `written`, `appended` or `nothing_new`.
    outcome: &'static str,
    files: usize,
    bytes: u64,
    elapsed_seconds: f64,
    tokens_per_second: f64,
    totals: &'a TokenAccount,
    partitions: &'a [PartitionEntry],
}

impl<'a> RunJson<'a> {
    fn new(report: &'a RunReport) -> RunJson<'a> {
        let m = &report.manifest;
        let files = m.partitions.iter().flat_map(|p| &p.files);
        RunJson {
            sink: report.sink.display().to_string(),
            seqwin_version: &m.seqwin_version,
            version: m.version,
            outcome: match report.outcome {
                Outcome::Written => "written",
                Outcome::Appended { .. } => "appended",
                Outcome::NothingNew => "nothing_new",
            },
            files: files.clone().count(),
            bytes: files.map(|f| f.bytes).sum(),
            elapsed_seconds: m.elapsed_seconds,
            tokens_per_second: m.totals.tokens_in as f64 / m.elapsed_seconds.max(1e-9),
            totals: &m.totals,
            partitions: &m.partitions,
        }
    }
}

/// `seqwin check --json`: the resolved plan and the footer estimate.
#[derive(Debug, Serialize)]
struct CheckJson<'a> {
    pipeline: String,
    files: usize,
    rows: u64,
    tokens: u64,
    windows: u64,
    bytes: u64,
    schema: Vec<FieldEntry>,
    config: &'a crate::config::PipelineConfig,
    /// `sink.mode: append` to an existing dataset: what the run would add.
    #[serde(skip_serializing_if = "Option::is_none")]
    append: Option<&'a crate::pipeline::AppendCheck>,
    /// `sources:`: the planned mix, one entry per source.
    #[serde(skip_serializing_if = "Option::is_none")]
    mix: Option<&'a Vec<crate::pipeline::MixCheck>>,
    /// `sources:`: how the sources interleave, `shuffle` or `proportional`.
    #[serde(skip_serializing_if = "Option::is_none")]
    interleave: Option<&'static str>,
}

impl<'a> CheckJson<'a> {
    fn new(pipeline: &Path, p: &'a Pipeline, r: &'a CheckReport) -> CheckJson<'a> {
        CheckJson {
            pipeline: pipeline.display().to_string(),
            files: r.files,
            rows: r.rows,
            tokens: r.tokens,
            windows: r.windows,
            bytes: r.bytes,
            schema: FieldEntry::of_schema(&r.schema),
            config: &p.plan().config,
            append: r.append.as_ref(),
            mix: r.mix.as_ref(),
            interleave: interleave(p).map(|(name, _)| name),
        }
    }
}

/// How a mix's sources interleave: its name and a line for `check`.
fn interleave(p: &Pipeline) -> Option<(&'static str, &'static str)> {
    let plan = p.plan();
    plan.mix.as_ref()?;
    Some(match plan.order {
        RowOrder::Blend => (
            "proportional",
            "proportional: at every prefix of a partition each source is within one window of its share",
        ),
        _ => ("shuffle", "uniformly random (shuffle)"),
    })
}

fn print_json(value: &impl Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("serializable")
    );
}

fn execute(cli: Cli) -> crate::Result<()> {
    match cli.command {
        Command::Run {
            pipeline,
            set,
            threads,
            quiet,
            json,
        } => {
            let p = Pipeline::load(&pipeline, &set)?;
            let report = p.run(&RunOptions {
                counter: None,
                threads,
                progress: !quiet,
            })?;
            if json {
                print_json(&RunJson::new(&report));
            } else if !quiet {
                eprintln!("{}", report.summary());
            }
        }
        Command::Check {
            pipeline,
            set,
            json,
        } => {
            let p = Pipeline::load(&pipeline, &set)?;
            let r = p.check()?;
            if json {
                print_json(&CheckJson::new(&pipeline, &p, &r));
                return Ok(());
            }
            println!(
                "{}: ok\n  input: {} file(s), {} rows, ~{} tokens\n  estimate: ~{} windows, ~{:.1} MB uncompressed\n  output schema:",
                pipeline.display(),
                r.files,
                r.rows,
                r.tokens,
                r.windows,
                r.bytes as f64 / 1e6
            );
            for f in r.schema.fields() {
                println!("    {}: {}", f.name(), f.data_type());
            }
            if let Some(mix) = &r.mix {
                println!("  mix (input: every source once; estimate: what the passes select):");
                println!(
                    "    {:<16} {:>14} {:>9} {:>16} {:>8}",
                    "source", "tokens", "passes", "tokens selected", "weight"
                );
                for m in mix {
                    println!(
                        "    {:<16} {:>14} {:>9.3} {:>16} {:>8.4}",
                        m.name, m.tokens, m.passes, m.tokens_selected, m.weight
                    );
                }
                if let Some((_, line)) = interleave(&p) {
                    println!("  interleave: {line}");
                }
            }
            if let Some(a) = &r.append {
                println!(
                    "  append: version {} holds {} input file(s); {}",
                    a.version,
                    a.ingested,
                    if a.new_files == 0 {
                        "no new input file: nothing to append".to_string()
                    } else {
                        format!(
                            "{} new input file(s) would make version {} (the input and estimate above are theirs)",
                            a.new_files,
                            a.version + 1
                        )
                    }
                );
            }
        }
        Command::Stats {
            pipeline,
            seq_len,
            set,
            json,
            threads,
        } => {
            let p = Pipeline::load(&pipeline, &set)?;
            let lens = if seq_len.is_empty() {
                crate::stats::DEFAULT_SEQ_LENS.to_vec()
            } else {
                seq_len
            };
            if let Some(bad) = lens
                .iter()
                .find(|&&l| l == 0 || l as i64 > crate::plan::MAX_SEQ_LEN)
            {
                return Err(crate::Error::Override {
                    assignment: format!("--seq-len {bad}"),
                    message: format!(
                        "each seq_len must be between 1 and {}",
                        crate::plan::MAX_SEQ_LEN
                    ),
                });
            }
            let report = crate::stats::stats(&p, &lens, threads)?;
            if json {
                print_json(&report);
            } else {
                print!("{}", report.render());
            }
        }
        Command::Inspect { dataset, json } => {
            let inspection = crate::inspect::verify(&dataset)?;
            if json {
                print_json(&inspection);
            } else {
                print!("{}", inspection.render()?);
            }
        }
    }
    Ok(())
}
