//! Command-line arguments (clap derive). Flags only tune the run; the
//! dataset is described by the pipeline file.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Turn tokenized Parquet corpora into next-token-prediction training windows.
#[derive(Debug, Parser)]
#[command(name = "seqwin", version, about, propagate_version = true)]
pub struct Cli {
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
    },
    /// Validate the config and input schemas, estimate windows and bytes; write nothing.
    Check {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Override a config key (dotted path, YAML value).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
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
    },
}
