//! `PipelineConfig` → [`Plan`]: every rule of the pipeline file is checked
//! here, and every broken rule is reported at once. Nothing downstream of this
//! module re-checks user input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use parquet::basic::{Compression, GzipLevel, ZstdLevel};

use crate::config::{OptionValue, PipelineConfig, SinkMode};
use crate::error::{Error, Result};
use crate::location::Location;
use crate::window::{ExtraColumn, Remainder, WindowSpec};

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
    /// The pipeline file (for messages); may be a placeholder for in-memory configs.
    pub pipeline_path: PathBuf,
    /// The resolved configuration (after overrides), recorded in the manifest.
    pub config: PipelineConfig,
    /// Input selection.
    pub source: SourcePlan,
    /// Window geometry.
    pub window: WindowSpec,
    /// Split assignment, if any.
    pub split: Option<SplitSpec>,
    /// Row order within each partition.
    pub order: RowOrder,
    /// Output.
    pub sink: SinkPlan,
}

/// Validated `source:`.
#[derive(Debug, Clone)]
pub struct SourcePlan {
    /// File, directory or glob (resolved against the pipeline's directory), or an object store URL.
    pub path: Location,
    /// Token column.
    pub tokens: String,
    /// Document id column.
    pub id: Option<String>,
    /// Carried columns.
    pub carry: Vec<String>,
    /// Object store settings (only for object store paths).
    pub storage_options: BTreeMap<String, String>,
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
}

/// Validated `sink:`.
#[derive(Debug, Clone)]
pub struct SinkPlan {
    /// Output directory, or an object store prefix.
    pub path: Location,
    /// Partition columns (`split` and/or carried columns).
    pub partition_by: Vec<String>,
    /// Parquet compression.
    pub compression: Compression,
    /// Windows per file.
    pub max_rows_per_file: usize,
    /// Windows per row group.
    pub row_group_rows: usize,
    /// Write mode.
    pub mode: SinkMode,
    /// Object store settings (only for object store paths).
    pub storage_options: BTreeMap<String, String>,
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

impl Plan {
    /// Validates a configuration. `base_dir` is where relative paths resolve
    /// (the pipeline file's directory).
    ///
    /// # Errors
    /// [`Error::ConfigInvalid`] listing every broken rule.
    pub fn try_new(config: PipelineConfig, pipeline_path: &Path) -> Result<Plan> {
        let base_dir = pipeline_path
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let mut problems = Vec::new();
        let w = &config.windows;

        let seq_len = check_range(&mut problems, "windows.seq_len", w.seq_len, 1, MAX_SEQ_LEN);
        let stride = match w.stride {
            Some(s) => check_range(&mut problems, "windows.stride", s, 1, MAX_STRIDE),
            None => seq_len,
        };
        let vocab_size = match w.vocab_size {
            Some(v) if v < 1 => {
                problems.push(format!("`windows.vocab_size` must be at least 1, got {v}"));
                None
            }
            Some(v) => Some(v as u64),
            None => None,
        };
        let mut columns = w.columns.clone();
        columns.sort();
        for pair in columns.windows(2) {
            if pair[0] == pair[1] {
                problems.push(format!(
                    "`windows.columns` lists `{}` twice",
                    pair[0].name()
                ));
            }
        }
        columns.dedup();
        if w.remainder == Remainder::Pad && !columns.contains(&ExtraColumn::LossMask) {
            columns.push(ExtraColumn::LossMask);
            columns.sort();
        }

        let order = match (&config.shuffle, &config.tbptt) {
            (Some(_), Some(_)) => {
                problems.push(
                    "`shuffle` and `tbptt` exclude each other: tbptt fixes the row order".into(),
                );
                RowOrder::Source
            }
            (Some(s), None) => {
                if s.memory_mb < 1 || s.memory_mb > (1 << 22) {
                    problems.push(format!(
                        "`shuffle.memory_mb` must be between 1 and {}, got {}",
                        1u64 << 22,
                        s.memory_mb
                    ));
                }
                RowOrder::Shuffle {
                    seed: s.seed,
                    memory_bytes: (s.memory_mb.clamp(1, 1 << 22) as usize) << 20,
                }
            }
            (None, Some(t)) => {
                let batch_size = check_range(
                    &mut problems,
                    "tbptt.batch_size",
                    t.batch_size,
                    1,
                    MAX_TBPTT_BATCH,
                );
                if stride != seq_len {
                    problems.push(format!(
                        "`tbptt` requires `windows.stride` equal to `windows.seq_len` ({seq_len}), got {stride}"
                    ));
                }
                if w.remainder != Remainder::Drop {
                    problems.push("`tbptt` requires `windows.remainder: drop`".into());
                }
                RowOrder::Tbptt { batch_size }
            }
            (None, None) => RowOrder::Source,
        };
        let pack = w.pack || matches!(order, RowOrder::Tbptt { .. });

        let window = WindowSpec {
            seq_len,
            stride,
            stride_given: w.stride.is_some(),
            pack,
            separator: w.separator,
            remainder: w.remainder,
            pad_id: w.pad_id,
            ignore_index: w.ignore_index,
            dtype: w.dtype,
            vocab_size,
            columns,
        };
        window.validate(&mut problems);

        let split = config.split.as_ref().map(|s| {
            let mut names = Vec::new();
            let mut cumulative = Vec::new();
            let mut total = 0.0;
            for (name, &fraction) in &s.fractions {
                if !(fraction > 0.0 && fraction <= 1.0) {
                    problems.push(format!(
                        "`split.fractions.{name}` must be in (0, 1], got {fraction}"
                    ));
                }
                if name.is_empty() {
                    problems.push("`split.fractions` has an empty split name".into());
                }
                total += fraction;
                names.push(name.clone());
                cumulative.push(total);
            }
            if s.fractions.is_empty() {
                problems.push("`split.fractions` must name at least one split".into());
            } else if (total - 1.0).abs() > 1e-9 {
                problems.push(format!(
                    "`split.fractions` must sum to 1, got {}",
                    (total * 1e9).round() / 1e9
                ));
            }
            if let Some(last) = cumulative.last_mut() {
                *last = 1.0;
            }
            SplitSpec {
                names,
                cumulative,
                seed: s.seed,
            }
        });

        // Source.
        let src = &config.source;
        if src.tokens.is_empty() {
            problems.push("`source.tokens` must name a column".into());
        }
        if src.path.is_empty() {
            problems.push("`source.path` must not be empty".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for c in &src.carry {
            if RESERVED_COLUMNS.contains(&c.as_str()) {
                problems.push(format!(
                    "`source.carry` column `{c}` clashes with a column seqwin writes ({})",
                    RESERVED_COLUMNS.join(", ")
                ));
            }
            if c == &src.tokens {
                problems.push(format!(
                    "`source.carry` cannot carry the token column `{c}`"
                ));
            }
            if !seen.insert(c) {
                problems.push(format!("`source.carry` lists `{c}` twice"));
            }
        }

        // Sink.
        let sk = &config.sink;
        let mut partition_seen = std::collections::BTreeSet::new();
        for p in &sk.partition_by {
            if !partition_seen.insert(p) {
                problems.push(format!("`sink.partition_by` lists `{p}` twice"));
            }
            if p == "split" {
                if split.is_none() {
                    problems.push(
                        "`sink.partition_by` names `split` but there is no `split` section".into(),
                    );
                }
            } else if !src.carry.contains(p) {
                problems.push(format!(
                    "`sink.partition_by` column `{p}` is neither `split` nor a carried column (source.carry: [{}])",
                    src.carry.join(", ")
                ));
            }
        }
        let compression = parse_compression(&sk.compression).unwrap_or_else(|message| {
            problems.push(format!("`sink.compression`: {message}"));
            Compression::UNCOMPRESSED
        });
        let row_bytes = (crate::window::geometry::window_bytes(&window) as usize).max(1);
        let row_group_rows = match sk.row_group_rows {
            Some(r) => check_range(&mut problems, "sink.row_group_rows", r, 1, 1 << 30),
            None => DEFAULT_ROW_GROUP_ROWS
                .min(ROW_GROUP_TARGET_BYTES / row_bytes)
                .max(1),
        };
        let max_rows_per_file = match sk.max_rows_per_file {
            Some(r) => check_range(&mut problems, "sink.max_rows_per_file", r, 1, i64::MAX),
            None => DEFAULT_MAX_ROWS_PER_FILE
                .min(FILE_TARGET_BYTES / row_bytes)
                .max(row_group_rows),
        };
        if sk.path.is_empty() {
            problems.push("`sink.path` must not be empty".into());
        }
        let source_path = locate(&mut problems, "source.path", &base_dir, &src.path);
        let sink_path = locate(&mut problems, "sink.path", &base_dir, &sk.path);
        for (key, options, path) in [
            ("source.storage_options", &src.storage_options, &source_path),
            ("sink.storage_options", &sk.storage_options, &sink_path),
        ] {
            if !options.is_empty() && !path.is_remote() {
                problems.push(format!(
                    "`{key}` is only used with an object store path (s3://, gs://, az://)"
                ));
            }
        }

        if !problems.is_empty() {
            return Err(Error::ConfigInvalid {
                path: pipeline_path.to_path_buf(),
                problems,
            });
        }
        let source = SourcePlan {
            path: source_path,
            tokens: src.tokens.clone(),
            id: src.id.clone(),
            carry: src.carry.clone(),
            storage_options: text_options(&src.storage_options),
        };
        let sink = SinkPlan {
            path: sink_path,
            partition_by: sk.partition_by.clone(),
            compression,
            max_rows_per_file,
            row_group_rows,
            mode: sk.mode,
            storage_options: text_options(&sk.storage_options),
        };
        Ok(Plan {
            pipeline_path: pipeline_path.to_path_buf(),
            config,
            source,
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

fn check_range(problems: &mut Vec<String>, key: &str, value: i64, min: i64, max: i64) -> usize {
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

/// Classifies a path key; a problem is recorded (and a placeholder
/// returned) when it cannot be read.
fn locate(problems: &mut Vec<String>, key: &str, base: &Path, path: &str) -> Location {
    Location::parse(path, base).unwrap_or_else(|message| {
        problems.push(format!("`{key}`: {message}"));
        Location::Local(PathBuf::new())
    })
}

fn text_options(options: &BTreeMap<String, OptionValue>) -> BTreeMap<String, String> {
    options
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect()
}

/// Parses `sink.compression`.
///
/// # Errors
/// A message listing the accepted values.
pub fn parse_compression(text: &str) -> std::result::Result<Compression, String> {
    let t = text.trim().to_ascii_lowercase();
    let (name, level) = match t.split_once('(') {
        Some((name, rest)) => {
            let level = rest
                .strip_suffix(')')
                .and_then(|l| l.trim().parse::<i32>().ok())
                .ok_or_else(|| format!("cannot read a level in `{text}`"))?;
            (name.trim().to_string(), Some(level))
        }
        None => (t.clone(), None),
    };
    let expected = "expected zstd, zstd(1..22), snappy, lz4, gzip, gzip(0..9) or none";
    match (name.as_str(), level) {
        ("zstd", None) => Ok(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("valid level"),
        )),
        ("zstd", Some(l)) if (1..=22).contains(&l) => Ok(Compression::ZSTD(
            ZstdLevel::try_new(l).map_err(|e| e.to_string())?,
        )),
        ("gzip", None) => Ok(Compression::GZIP(GzipLevel::default())),
        ("gzip", Some(l)) if (0..=9).contains(&l) => Ok(Compression::GZIP(
            GzipLevel::try_new(l as u32).map_err(|e| e.to_string())?,
        )),
        ("snappy", None) => Ok(Compression::SNAPPY),
        ("lz4", None) => Ok(Compression::LZ4_RAW),
        ("none" | "uncompressed", None) => Ok(Compression::UNCOMPRESSED),
        _ => Err(format!("`{text}` is not supported; {expected}")),
    }
}
