//! The `_seqwin.json` manifest: what a dataset holds (partitions, files,
//! token accounts, schema, inputs, the resolved config), and the names of
//! the version log `_seqwin_log/NNNNNNNNNNNNNNNNNNNN.json` that keeps every
//! version's full manifest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::SinkMode;
use crate::window::TokenAccount;

/// The manifest file name.
pub const MANIFEST: &str = "_seqwin.json";
/// The success marker.
pub const SUCCESS: &str = "_SUCCESS";
/// The directory of the version log (hidden from readers by its `_`).
pub const LOG_DIR: &str = "_seqwin_log";
/// Digits of a version number in a log file name (as Delta's `_delta_log`).
const LOG_DIGITS: usize = 20;

/// The log file of `version`, relative to the dataset root:
/// `_seqwin_log/00000000000000000003.json`.
pub fn log_name(version: u64) -> String {
    format!("{LOG_DIR}/{version:0LOG_DIGITS$}.json")
}

/// The version a file name inside [`LOG_DIR`] stands for (`None` for any
/// other name).
pub fn log_version(file_name: &str) -> Option<u64> {
    let digits = file_name.strip_suffix(".json")?;
    (digits.len() == LOG_DIGITS && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// A file entry of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the dataset root.
    pub name: String,
    /// Windows in the file.
    pub rows: u64,
    /// File size.
    pub bytes: u64,
    /// CRC-32 (IEEE) of the file's bytes, 8 lower-case hex digits (absent in
    /// manifests written before seqwin recorded it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32: Option<String>,
}

/// One output partition in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionEntry {
    /// Directory relative to the root (`""` when not partitioned).
    pub path: String,
    /// Partition column values (unescaped; null for Hive's default partition).
    pub values: BTreeMap<String, Option<String>>,
    /// The token account.
    pub account: TokenAccount,
    /// Files, in order.
    pub files: Vec<FileEntry>,
}

/// An input file in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputEntry {
    /// Path as resolved.
    pub path: String,
    /// The path relative to the source's root (`/`-separated): how append
    /// recognises the file whatever the working directory or the spelling
    /// of `source.path` (absent in manifests written before append).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rel_path: Option<String>,
    /// Size in bytes.
    pub bytes: u64,
    /// Rows.
    pub rows: u64,
    /// Last modification time when read: a local file's mtime as
    /// `SECONDS.NANOSECONDS` since the Unix epoch, an object's
    /// `Last-Modified` (RFC 3339). Append refuses a recorded file whose
    /// size, time or ETag changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<String>,
    /// An object's ETag (object stores only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The version that ingested the file.
    #[serde(default)]
    pub version: u64,
}

/// A field of the output schema in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldEntry {
    /// Column name.
    pub name: String,
    /// Arrow type.
    #[serde(rename = "type")]
    pub data_type: String,
    /// Whether nulls are allowed.
    pub nullable: bool,
}

impl FieldEntry {
    /// The manifest's description of every field of `schema`.
    pub fn of_schema(schema: &arrow_schema::Schema) -> Vec<FieldEntry> {
        schema
            .fields()
            .iter()
            .map(|f| FieldEntry {
                name: f.name().clone(),
                data_type: f.data_type().to_string(),
                nullable: f.is_nullable(),
            })
            .collect()
    }
}

/// The `_seqwin.json` manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// seqwin version that wrote the dataset.
    pub seqwin_version: String,
    /// The dataset version: 0 for a first run, one more for every append
    /// (manifests written before versions existed read as 0).
    #[serde(default)]
    pub version: u64,
    /// The resolved pipeline configuration.
    pub config: crate::config::PipelineConfig,
    /// Write mode used (not part of the data).
    #[serde(skip)]
    pub mode: SinkMode,
    /// Input files, of every version, in the order they were read.
    pub inputs: Vec<InputEntry>,
    /// Output partitions, sorted by path.
    pub partitions: Vec<PartitionEntry>,
    /// Sum of the partitions' accounts.
    pub totals: TokenAccount,
    /// The output Arrow schema (partition columns live in directory names).
    pub schema: Vec<FieldEntry>,
    /// Partition columns.
    pub partition_by: Vec<String>,
    /// Wall time of the run.
    pub elapsed_seconds: f64,
    /// With `sources:`: the account of each source, in the order given
    /// (absent for one source).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceAccount>,
}

/// What a mix took from one source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceAccount {
    /// The source's name.
    pub name: String,
    /// Tokens in the source (leaf values in its footers).
    pub tokens_in: u64,
    /// Passes planned over it (fractional: a keyed-hash share of its documents).
    pub passes: f64,
    /// Documents windowed, over all passes (a document taken twice counts twice).
    pub documents_selected: u64,
    /// Tokens of those documents.
    pub tokens_selected: u64,
    /// Windows cut from them (packing: the windows of the source's own
    /// packed streams; absent in manifests written before streams were kept
    /// per source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_names_round_trip() {
        assert_eq!(log_name(3), "_seqwin_log/00000000000000000003.json");
        let file = log_name(12345).rsplit('/').next().unwrap().to_string();
        assert_eq!(log_version(&file), Some(12345));
        for other in [
            "3.json",
            "0000000000000000000a.json",
            "00000000000000000003.jsonx",
            "",
        ] {
            assert_eq!(log_version(other), None, "{other}");
        }
    }
}
