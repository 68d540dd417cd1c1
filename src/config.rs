//! The pipeline file as the user writes it: serde structs mirroring the YAML.
//!
//! Every struct rejects unknown keys. The `///` doc on each field is the user
//! documentation of that key (the README's key table is taken from it).
//! Nothing here is validated beyond types: [`crate::plan`] turns a
//! [`PipelineConfig`] into a checked [`crate::plan::Plan`].

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::window::{ExtraColumn, Remainder, TokenDtype, DEFAULT_IGNORE_INDEX, DEFAULT_PAD_ID};

/// The whole pipeline file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Where the tokenized corpus is read from (the one-source shorthand
    /// of `sources:`; give exactly one of the two).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceConfig>,
    /// Several named corpora mixed into one dataset, each with exactly one
    /// of `weight`, `repeat` or `max_tokens`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<MixSourceConfig>,
    /// Optional settings of a `sources:` mix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mix: Option<MixConfig>,
    /// How documents are cut into windows.
    pub windows: WindowsConfig,
    /// Optional train/val/test split by document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<SplitConfig>,
    /// Optional global shuffle of each partition's windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shuffle: Option<ShuffleConfig>,
    /// Optional truncated-backprop-through-time row order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tbptt: Option<TbpttConfig>,
    /// Where and how the dataset is written.
    pub sink: SinkConfig,
}

/// `source:` — the input corpus.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// A Parquet file, a directory (searched recursively for `*.parquet`,
    /// sorted, skipping names that start with `_` or `.`) or a glob.
    pub path: String,
    /// The token column: `list<int>` (one document per row) or a plain
    /// integer column (a flat stream of one token per row).
    pub tokens: String,
    /// Optional document id column (integer or string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Columns copied onto every window of the document.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub carry: Vec<String>,
    /// Object store settings for `s3://`, `gs://`, `az://` paths (the
    /// `object_store` crate's keys, plus `max_retries` and `retry_timeout`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub storage_options: BTreeMap<String, OptionValue>,
}

/// One entry of `sources:`: the keys of `source:`, a name, and how much of
/// the corpus the mix takes.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MixSourceConfig {
    /// The source's name: unique, written in the `source` column.
    pub name: String,
    /// As `source.path`.
    pub path: String,
    /// As `source.tokens`.
    pub tokens: String,
    /// As `source.id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// As `source.carry`; every source must carry the same columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub carry: Vec<String>,
    /// As `source.storage_options`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub storage_options: BTreeMap<String, OptionValue>,
    /// Share of the output's tokens (Megatron's blending weight); the
    /// weights of all sources sum to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// Passes over the source; a fractional part takes that share of its
    /// documents, chosen by keyed hash of the document key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<f64>,
    /// Tokens taken from the source (passes = `max_tokens` / its tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<i64>,
}

impl MixSourceConfig {
    /// The `source:` keys of this entry.
    pub fn source(&self) -> SourceConfig {
        SourceConfig {
            path: self.path.clone(),
            tokens: self.tokens.clone(),
            id: self.id.clone(),
            carry: self.carry.clone(),
            storage_options: self.storage_options.clone(),
        }
    }
}

/// `mix:` — settings of a weighted mix.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MixConfig {
    /// Tokens of the whole mix (weights only); by default the largest total
    /// that needs no source more than once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<i64>,
    /// Whether a weight may take a source more than once.
    #[serde(default)]
    pub upsample: bool,
    /// Key of the hash that picks the documents of a fractional pass.
    #[serde(default)]
    pub seed: u64,
    /// Write the source's name in a string column `source` on every window
    /// (a carried column: `sink.partition_by` may name it).
    #[serde(default)]
    pub source_column: bool,
}

/// `windows:` — how windows are cut.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WindowsConfig {
    /// Tokens per window (the length of `input` and `target`); at least 1.
    pub seq_len: i64,
    /// Distance between window starts; default `seq_len`; 1 = fully overlapping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stride: Option<i64>,
    /// Concatenate documents before windowing.
    #[serde(default)]
    pub pack: bool,
    /// Token appended after every document when packing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separator: Option<i64>,
    /// What to do with tokens that are not in a full window.
    #[serde(default)]
    pub remainder: Remainder,
    /// Input padding value (remainder `pad`).
    #[serde(default = "default_pad_id")]
    pub pad_id: i64,
    /// Target padding value (remainder `pad`).
    #[serde(default = "default_ignore_index")]
    pub ignore_index: i64,
    /// Element type of `input` and `target`.
    #[serde(default)]
    pub dtype: TokenDtype,
    /// When set, every token must lie in `[0, vocab_size)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocab_size: Option<i64>,
    /// Extra per-window columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ExtraColumn>,
}

fn default_pad_id() -> i64 {
    DEFAULT_PAD_ID
}
fn default_ignore_index() -> i64 {
    DEFAULT_IGNORE_INDEX
}

impl WindowsConfig {
    /// Every `windows:` key (sorted) with its default
    /// (`null` for keys without one: `seq_len` is required; `stride`,
    /// `separator` and `vocab_size` are unset unless given). The Python API
    /// takes its keyword list and defaults from here.
    pub fn defaults() -> serde_json::Map<String, serde_json::Value> {
        let parse = |v: serde_json::Value| -> serde_json::Map<String, serde_json::Value> {
            match serde_json::from_value::<WindowsConfig>(v).map(serde_json::to_value) {
                Ok(Ok(serde_json::Value::Object(map))) => map,
                _ => unreachable!("a minimal windows section parses and serializes"),
            }
        };
        let base = parse(serde_json::json!({ "seq_len": 1 }));
        let all = parse(serde_json::json!({
            "seq_len": 1, "stride": 1, "separator": 0, "vocab_size": 1, "columns": ["start"]
        }));
        all.iter()
            .map(|(k, given)| {
                // Keys left out when unset: lists default to empty, others to nothing.
                let default = match (k.as_str(), base.get(k), given) {
                    ("seq_len", _, _) => serde_json::Value::Null,
                    (_, Some(v), _) => v.clone(),
                    (_, None, serde_json::Value::Array(_)) => serde_json::json!([]),
                    (_, None, _) => serde_json::Value::Null,
                };
                (k.clone(), default)
            })
            .collect()
    }
}

/// `split:` — per-document split assignment.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    /// Split name to fraction; fractions are positive and sum to 1.
    pub fractions: BTreeMap<String, f64>,
    /// Key of the hash that assigns documents to splits.
    #[serde(default)]
    pub seed: u64,
}

/// `shuffle:` — a global, reproducible shuffle of each partition.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShuffleConfig {
    /// Seed of the permutation.
    #[serde(default)]
    pub seed: u64,
    /// Memory budget of the shuffle in MiB (windows held in memory at once).
    #[serde(default = "default_shuffle_memory_mb")]
    pub memory_mb: u64,
}

/// Default `shuffle.memory_mb`.
pub const DEFAULT_SHUFFLE_MEMORY_MB: u64 = 512;

fn default_shuffle_memory_mb() -> u64 {
    DEFAULT_SHUFFLE_MEMORY_MB
}

/// `tbptt:` — lane/step row order for stateful RNN training.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TbpttConfig {
    /// Number of parallel lanes (the training batch size).
    pub batch_size: i64,
}

/// `sink:` — the output dataset.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Output directory.
    pub path: String,
    /// Hive-style partition columns: `split` and/or carried columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition_by: Vec<String>,
    /// `auto` (zstd level 1, but none on the DELTA_BINARY_PACKED lists),
    /// or one codec for every column: `zstd`, `zstd(1..22)`, `snappy`,
    /// `lz4`, `gzip`, `gzip(0..9)` or `none`.
    #[serde(default = "default_compression")]
    pub compression: String,
    /// Windows per file; by default files are rolled at about 512 MiB of window data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rows_per_file: Option<i64>,
    /// Windows per row group; by default 8192, capped at about 4 MiB of window data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_group_rows: Option<i64>,
    /// `error`: refuse a non-empty path; `overwrite`: replace a seqwin dataset;
    /// `append`: add the windows of new input files as a new version.
    #[serde(default)]
    pub mode: SinkMode,
    /// Object store settings, as for `source.storage_options`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub storage_options: BTreeMap<String, OptionValue>,
}

/// A `storage_options` value: YAML strings, numbers and booleans are all
/// accepted and passed on as text.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum OptionValue {
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A number.
    Float(f64),
    /// Text.
    Text(String),
}

impl std::fmt::Display for OptionValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OptionValue::Bool(b) => write!(f, "{b}"),
            OptionValue::Int(i) => write!(f, "{i}"),
            OptionValue::Float(x) => write!(f, "{x}"),
            OptionValue::Text(t) => f.write_str(t),
        }
    }
}

/// Default `sink.compression`.
pub const DEFAULT_COMPRESSION: &str = "auto";

fn default_compression() -> String {
    DEFAULT_COMPRESSION.to_string()
}

/// `sink.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkMode {
    /// Refuse a non-empty `sink.path`.
    #[default]
    Error,
    /// Replace an existing seqwin dataset (never anything else).
    Overwrite,
    /// Add the windows of input files not yet in the dataset as a new
    /// version (docs/format.md §5.1); a missing or empty path is a first run.
    Append,
}

impl PipelineConfig {
    /// The configuration with secret `storage_options` values (keys naming a
    /// secret, key, token, password, SAS or credential) replaced by
    /// `<redacted>`, as written to the manifest.
    pub fn redacted(&self) -> PipelineConfig {
        let mut c = self.clone();
        let options = (c.source.iter_mut().map(|s| &mut s.storage_options))
            .chain(c.sources.iter_mut().map(|s| &mut s.storage_options))
            .chain([&mut c.sink.storage_options]);
        for options in options {
            for (k, v) in options.iter_mut() {
                let k = k.to_ascii_lowercase();
                if ["secret", "key", "token", "password", "sas", "credential"]
                    .iter()
                    .any(|s| k.contains(s))
                {
                    *v = OptionValue::Text("<redacted>".into());
                }
            }
        }
        c
    }

    /// Reads and parses a pipeline file.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read, [`Error::ConfigSyntax`]
    /// for YAML errors, unknown keys and wrong types (with line:column).
    pub fn parse(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidData {
                Error::ConfigSyntax {
                    path: path.to_path_buf(),
                    message: "the pipeline file is not valid UTF-8".into(),
                }
            } else {
                Error::input(path, format!("cannot read the pipeline file: {e}"))
            }
        })?;
        Self::parse_str(&text, path)
    }

    /// Parses pipeline text; `path` is only used in error messages.
    ///
    /// # Errors
    /// [`Error::ConfigSyntax`] for YAML errors, unknown keys and wrong types.
    pub fn parse_str(text: &str, path: &Path) -> Result<Self> {
        serde_saphyr::from_str::<PipelineConfig>(text).map_err(|e| Error::ConfigSyntax {
            path: path.to_path_buf(),
            message: e.to_string().trim_start_matches("error: ").to_string(),
        })
    }

    /// Applies `--set key=value` overrides (dotted key path, YAML value).
    ///
    /// # Errors
    /// [`Error::Override`] when an assignment has no `=`, names no key, or its
    /// value does not have the key's type.
    pub fn with_overrides(self, assignments: &[String]) -> Result<Self> {
        if assignments.is_empty() {
            return Ok(self);
        }
        let mut tree = serde_json::to_value(&self).map_err(|e| Error::Internal(e.to_string()))?;
        for assignment in assignments {
            let fail = |message: String| Error::Override {
                assignment: assignment.clone(),
                message,
            };
            let (key, value) = assignment.split_once('=').ok_or_else(|| {
                fail("expected KEY=VALUE, for example windows.seq_len=2048".into())
            })?;
            let key = key.trim();
            if key.is_empty() || key.split('.').any(str::is_empty) {
                return Err(fail(format!("`{key}` is not a dotted key path")));
            }
            let value: serde_json::Value = if value.trim().is_empty() {
                serde_json::Value::Null
            } else {
                serde_saphyr::from_str(value)
                    .map_err(|e| fail(format!("the value is not valid YAML: {e}")))?
            };
            let mut node = &mut tree;
            let parts: Vec<&str> = key.split('.').collect();
            for (i, part) in parts.iter().enumerate() {
                let map = match node {
                    serde_json::Value::Object(map) => map,
                    _ => return Err(fail(format!("`{}` is not a section", parts[..i].join(".")))),
                };
                if i + 1 == parts.len() {
                    map.insert((*part).to_string(), value.clone());
                    break;
                }
                node = map
                    .entry((*part).to_string())
                    .or_insert_with(|| serde_json::Value::Object(Default::default()));
                if node.is_null() {
                    *node = serde_json::Value::Object(Default::default());
                }
            }
        }
        serde_json::from_value(tree).map_err(|e| Error::Override {
            assignment: assignments.join(" "),
            message: e.to_string(),
        })
    }
}
