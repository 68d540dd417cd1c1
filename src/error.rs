//! The library's error type and the exit code each error maps to.
//!
//! Every variant carries what a user needs to find the problem: the pipeline
//! file, the config key, the Parquet file and row. Messages are lowercase and
//! say what was expected and what was found.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in seqwin.
///
/// [`Error::exit_code`] maps each variant onto the CLI contract: `2` for bad
/// usage, configuration or input data (nothing is written), `1` for anything
/// else (I/O failures, full disks).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The pipeline file could not be parsed (YAML syntax, unknown key, wrong type).
    #[error("{path}: {message}")]
    ConfigSyntax {
        /// The pipeline file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },

    /// The pipeline parsed but breaks one or more rules; all problems are listed.
    #[error("{path}: invalid pipeline:{}", problems.iter().map(|p| format!("\n  - {p}")).collect::<String>())]
    ConfigInvalid {
        /// The pipeline file.
        path: PathBuf,
        /// Every problem found, each naming its config key.
        problems: Vec<String>,
    },

    /// A `--set KEY=VALUE` override is malformed or does not apply.
    #[error("--set {assignment}: {message}")]
    Override {
        /// The override as given.
        assignment: String,
        /// What is wrong with it.
        message: String,
    },

    /// A command-line argument is out of range (exit code 2).
    #[error("{0}")]
    Usage(String),

    /// The input data is not what the pipeline expects.
    #[error("{path}: {message}")]
    Input {
        /// The input file (or source path).
        path: PathBuf,
        /// What was expected and what was found, with the row where relevant.
        message: String,
    },

    /// The sink refuses to be written (non-empty under `mode: error`, not a seqwin dataset, busy).
    #[error("{path}: {message}")]
    Sink {
        /// The sink path.
        path: PathBuf,
        /// Why the sink is refused.
        message: String,
    },

    /// An object store path in a seqwin built without the `cloud` cargo
    /// feature (exit code 2).
    #[error("`{key}`: \"{url}\" needs object-store support; this seqwin was built without the `cloud` feature (cargo install seqwin --features cloud)")]
    CloudDisabled {
        /// The config key (`source.path`, `sink.path`).
        key: &'static str,
        /// The object store URL.
        url: crate::location::StoreUrl,
    },

    /// The source's object store cannot be used as configured, or refused a
    /// request before anything was written (exit code 2).
    #[cfg(feature = "cloud")]
    #[error("{path}: {source}")]
    SourceStore {
        /// The source URL or object.
        path: PathBuf,
        /// What the store said.
        #[source]
        source: Box<crate::store::StoreError>,
    },

    /// The sink's object store cannot be used as configured, or refused a
    /// request before anything was written (exit code 2).
    #[cfg(feature = "cloud")]
    #[error("{path}: {source}")]
    SinkStore {
        /// The sink URL.
        path: PathBuf,
        /// What the store said.
        #[source]
        source: Box<crate::store::StoreError>,
    },

    /// Another run committed the version an append was about to commit
    /// (object stores; exit code 2). This run's files were removed and the
    /// dataset is unchanged: run the append again.
    #[error("{path}: another seqwin run committed version {version} of this dataset first; this run's files were removed and the dataset is unchanged (run the append again to add what is still missing)")]
    CommitConflict {
        /// The sink URL.
        path: PathBuf,
        /// The version both runs tried to commit.
        version: u64,
    },

    /// A dataset given to `inspect` is not a valid seqwin dataset.
    #[error("{path}: {message}")]
    Dataset {
        /// The dataset path.
        path: PathBuf,
        /// What does not match the manifest.
        message: String,
    },

    /// An I/O failure while reading or writing (exit code 1).
    #[error("{path}: {source}")]
    Io {
        /// The file being read or written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A failure inside the Parquet or Arrow writer (exit code 1).
    #[error("{path}: {message}")]
    Write {
        /// The file being written.
        path: PathBuf,
        /// The writer's message.
        message: String,
    },

    /// The run was cancelled by SIGINT, SIGTERM or SIGHUP (see
    /// [`crate::cancel`]); its staging directory and lock are removed and
    /// `sink.path` is unchanged. Exit code 128 + signal.
    #[error("interrupted by {}; nothing was written (sink.path is unchanged)", crate::cancel::signal_name(*signal))]
    Interrupted {
        /// The signal number.
        signal: i32,
    },

    /// The allocator refused memory the run needs (exit code 1).
    #[error("out of memory: cannot allocate {bytes} bytes for {what}; lower sink.row_group_rows, seq_len or --threads, or raise the memory limit")]
    OutOfMemory {
        /// Bytes requested.
        bytes: u64,
        /// What they were for.
        what: &'static str,
    },

    /// A bug in seqwin (a contained panic); exit code 1.
    #[error("internal error (please report): {0}")]
    Internal(String),
}

impl Error {
    /// The process exit code for this error: `2` for bad usage, configuration
    /// or input; 128 + signal when interrupted; `1` otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::ConfigSyntax { .. }
            | Error::ConfigInvalid { .. }
            | Error::Override { .. }
            | Error::Usage(_)
            | Error::Input { .. }
            | Error::Sink { .. }
            | Error::CommitConflict { .. }
            | Error::CloudDisabled { .. }
            | Error::Dataset { .. } => 2,
            #[cfg(feature = "cloud")]
            Error::SourceStore { .. } | Error::SinkStore { .. } => 2,
            Error::Io { .. }
            | Error::Write { .. }
            | Error::OutOfMemory { .. }
            | Error::Internal(_) => 1,
            Error::Interrupted { signal } => 128 + signal,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn input(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Input {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn write(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        Error::Write {
            path: path.into(),
            message: message.to_string(),
        }
    }

    pub(crate) fn sink(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Sink {
            path: path.into(),
            message: message.into(),
        }
    }
}

#[cfg(feature = "cloud")]
impl Error {
    pub(crate) fn source_store(path: impl Into<PathBuf>, source: crate::store::StoreError) -> Self {
        Error::SourceStore {
            path: path.into(),
            source: Box::new(source),
        }
    }

    pub(crate) fn sink_store(path: impl Into<PathBuf>, source: crate::store::StoreError) -> Self {
        Error::SinkStore {
            path: path.into(),
            source: Box::new(source),
        }
    }
}

/// Runs `f`, turning a panic inside it (for example in a dependency meeting
/// malformed data) into an error built by `on_panic` from the panic message.
pub(crate) fn contain<T>(
    f: impl FnOnce() -> Result<T>,
    on_panic: impl FnOnce(String) -> Error,
) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => Err(on_panic(panic_message(payload.as_ref()))),
    }
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}
