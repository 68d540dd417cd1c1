//! `PipelineConfig` → [`Plan`]: every rule of the pipeline file is checked
//! here, section by section, and every broken rule is reported at once.
//! Nothing downstream of this module re-checks user input.
//!
//! Each section has its own compiler (`source`, `windows`, `split`, `order`,
//! `sink`), a small function that records all of its problems; the in-memory
//! windowing of [`crate::stream`] uses the same compilers for the sections it
//! has.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use parquet::basic::Compression;

use crate::config::{PipelineConfig, SinkMode};
use crate::error::{Error, Result};
use crate::location::Location;
use crate::window::WindowSpec;

mod mix;
mod order;
mod sink;
mod source;
mod split;
mod windows;

#[cfg(test)]
mod tests;

pub use mix::{compile_inputs, Amount, MixPlan, MixSourcePlan, SOURCE_COLUMN};
pub use order::compile_order;
pub use sink::{compile_sink, default_row_group_rows, parse_compression};
pub use source::{compile_columns, compile_source};
pub use split::compile_split;
pub use windows::compile_windows;

/// Longest window accepted (tokens); a larger `seq_len` is refused at check time.
pub const MAX_SEQ_LEN: i64 = 1 << 24;
/// Largest stride accepted.
pub const MAX_STRIDE: i64 = 1 << 40;
/// Default windows per row group (further capped by [`ROW_GROUP_TARGET_BYTES`]).
pub const DEFAULT_ROW_GROUP_ROWS: usize = 8192;
/// Default cap on a row group's uncompressed window bytes. Small row groups
/// keep encoding buffers in the allocator's reuse range and let both cores
/// encode while the next wave decodes (case A: 4 MiB 0.91 s, 64 MiB 1.73 s).
pub const ROW_GROUP_TARGET_BYTES: usize = 4 << 20;
/// Default cap on a file's uncompressed window bytes.
pub const FILE_TARGET_BYTES: usize = 512 << 20;
/// Most windows per file by default.
pub const DEFAULT_MAX_ROWS_PER_FILE: usize = 1_000_000;
/// Largest `tbptt.batch_size` accepted.
pub const MAX_TBPTT_BATCH: i64 = 1 << 20;

/// A validated pipeline, ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The pipeline file (for messages).
    pub pipeline_path: PathBuf,
    /// The resolved configuration (after overrides), recorded in the manifest.
    pub config: PipelineConfig,
    /// Input selection (the first source of a mix).
    pub source: SourcePlan,
    /// Several corpora mixed (`sources:`), if given.
    pub mix: Option<MixPlan>,
    /// Window geometry.
    pub window: WindowSpec,
    /// Split assignment, if any.
    pub split: Option<SplitSpec>,
    /// Row order within each partition.
    pub order: RowOrder,
    /// Output.
    pub sink: SinkPlan,
}

/// The columns a run reads: tokens, the optional id and the carried columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceColumns {
    /// Token column.
    pub tokens: String,
    /// Document id column.
    pub id: Option<String>,
    /// Carried columns.
    pub carry: Vec<String>,
}

/// Validated `source:`.
#[derive(Debug, Clone)]
pub struct SourcePlan {
    /// File, directory or glob (resolved against the pipeline's directory), or an object store URL.
    pub path: Location,
    /// The columns read.
    pub columns: SourceColumns,
    /// Object store settings (only for object store paths).
    pub storage_options: BTreeMap<String, String>,
    /// String columns with one value for the whole source (a mix's
    /// `source` column), read like hive directory values; they are also
    /// listed in `columns.carry`.
    pub constants: Vec<(String, String)>,
}
/// Validated `split:`: names in sorted order with cumulative upper bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitSpec {
    /// Split names, sorted.
    pub names: Vec<String>,
    /// Cumulative fraction at the end of each split; the last is 1.
    pub cumulative: Vec<f64>,
    /// Hash key.
    pub seed: u64,
}

/// Row order within each output partition.
#[derive(Debug, Clone, PartialEq)]
pub enum RowOrder {
    /// Source order.
    Source,
    /// Uniformly random permutation.
    Shuffle {
        /// Permutation seed.
        seed: u64,
        /// Memory budget in bytes.
        memory_bytes: usize,
    },
    /// Lane/step order for truncated backprop through time.
    Tbptt {
        /// Lanes.
        batch_size: usize,
    },
    /// A mix without `shuffle`: the sources interleaved in proportion to
    /// their windows in each partition ([`crate::order::Blend`]), each in
    /// source order.
    Blend,
}

/// Validated `sink:`.
#[derive(Debug, Clone)]
pub struct SinkPlan {
    /// Output directory, or an object store prefix.
    pub path: Location,
    /// Partition columns (`split` and/or carried columns).
    pub partition_by: Vec<String>,
    /// Parquet compression, per kind of column.
    pub compression: Compressions,
    /// Windows per file.
    pub max_rows_per_file: usize,
    /// Windows per row group.
    pub row_group_rows: usize,
    /// Write mode.
    pub mode: SinkMode,
    /// Object store settings (only for object store paths).
    pub storage_options: BTreeMap<String, String>,
}

/// `sink.compression` compiled: the codec of the DELTA_BINARY_PACKED lists
/// and that of every other column. `auto` (the default) stores those lists
/// uncompressed, where zstd finds almost nothing (0.25% of case A's bytes)
/// and cost 12–19% of the run; a codec the user names applies to every
/// column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compressions {
    /// Scalar columns and PLAIN token lists.
    pub columns: Compression,
    /// DELTA_BINARY_PACKED lists: token lists of windows that do not
    /// overlap, and `loss_mask`, `position_ids`, `segment_ids`.
    pub delta_lists: Compression,
}

/// Column names seqwin writes itself; carried columns may not take them.
pub const RESERVED_COLUMNS: &[&str] = &[
    "input",
    "target",
    "doc_id",
    "start",
    "loss_mask",
    "position_ids",
    "segment_ids",
    "lane",
    "step",
    "split",
];

/// Broken rules found while compiling, one line each, naming the config key.
pub type Problems = Vec<String>;

impl Plan {
    /// Validates a configuration; relative paths resolve against the
    /// directory of `pipeline_path`.
    ///
    /// # Errors
    /// [`Error::ConfigInvalid`] listing every broken rule of every section.
    pub fn try_new(config: PipelineConfig, pipeline_path: &Path) -> Result<Plan> {
        let base = pipeline_path.parent().unwrap_or(Path::new("."));
        let mut problems = Problems::new();
        let p = &mut problems;
        let window = compile_windows(&config.windows, config.tbptt.is_some(), p);
        let order = compile_order(config.shuffle.as_ref(), config.tbptt.as_ref(), &window, p);
        let split = config.split.as_ref().map(|s| compile_split(s, p));
        let (source, mix) = compile_inputs(&config, base, p);
        let order = match order {
            RowOrder::Source if mix.is_some() => RowOrder::Blend,
            other => other,
        };
        let sink = compile_sink(&config.sink, base, split.is_some(), &source, &window, p);
        if sink.mode == SinkMode::Append && config.tbptt.is_some() {
            p.push("`sink.mode: append` cannot be combined with `tbptt`: its lanes divide each partition's whole stream, which an append would change; write a new dataset with `sink.mode: overwrite`".into());
        }
        // The sink may not lie inside any source of a mix, not only the first.
        for (i, other) in mix
            .iter()
            .flat_map(|m| m.sources.iter().enumerate().skip(1))
        {
            let mut scratch = Problems::new();
            compile_sink(
                &config.sink,
                base,
                split.is_some(),
                &other.source,
                &window,
                &mut scratch,
            );
            p.extend(
                (scratch.into_iter())
                    .filter(|m| m.contains("`source.path`"))
                    .map(|m| m.replace("`source.path`", &format!("`sources[{i}].path`"))),
            );
        }
        if sink.mode == SinkMode::Append && mix.is_some() {
            p.push("`sink.mode: append` cannot be combined with `sources`: the passes of a mix depend on every source's whole size, which an append would change; write a new dataset with `sink.mode: overwrite`".into());
        }
        check_cloud(&source, mix.as_ref(), &sink)?;
        if !problems.is_empty() {
            return Err(Error::ConfigInvalid {
                path: pipeline_path.to_path_buf(),
                problems,
            });
        }
        Ok(Plan {
            pipeline_path: pipeline_path.to_path_buf(),
            config,
            source,
            mix,
            window,
            split,
            order,
            sink,
        })
    }

    /// Parses, overrides and validates a pipeline file in one go.
    ///
    /// # Errors
    /// Any error of [`PipelineConfig::parse`], [`PipelineConfig::with_overrides`]
    /// and [`Plan::try_new`].
    pub fn load(pipeline_path: &Path, overrides: &[String]) -> Result<Plan> {
        let config = PipelineConfig::parse(pipeline_path)?.with_overrides(overrides)?;
        Plan::try_new(config, pipeline_path)
    }
}

/// Object store paths need the `cloud` cargo feature: without it the first
/// one (source, then sink) is refused before anything else is reported,
/// since no fix of the other keys makes the pipeline runnable.
///
/// # Errors
/// [`Error::CloudDisabled`] naming the key.
fn check_cloud(source: &SourcePlan, mix: Option<&MixPlan>, sink: &SinkPlan) -> Result<()> {
    if cfg!(feature = "cloud") {
        return Ok(());
    }
    let sources = mix.iter().flat_map(|m| &m.sources).skip(1);
    let paths = std::iter::once(("source.path", &source.path))
        .chain(sources.map(|s| ("sources[].path", &s.source.path)))
        .chain(std::iter::once(("sink.path", &sink.path)));
    for (key, path) in paths {
        if let Location::Remote(url) = path {
            return Err(Error::CloudDisabled {
                key,
                url: url.clone(),
            });
        }
    }
    Ok(())
}

/// `value` as a `usize` when it lies in `min..=max`; otherwise a problem
/// naming `key` is recorded and `min` returned.
pub(crate) fn check_range(
    problems: &mut Problems,
    key: &str,
    value: i64,
    min: i64,
    max: i64,
) -> usize {
    if value < min {
        problems.push(format!("`{key}` must be at least {min}, got {value}"));
        min as usize
    } else if value > max {
        problems.push(format!("`{key}` must be at most {max}, got {value}"));
        min as usize
    } else {
        value as usize
    }
}
