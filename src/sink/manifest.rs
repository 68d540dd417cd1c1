//! The `_seqwin.json` manifest: what a dataset holds (partitions, files,
//! token accounts, schema, inputs, the resolved config).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::SinkMode;
use crate::window::TokenAccount;

/// The manifest file name.
pub const MANIFEST: &str = "_seqwin.json";
/// The success marker.
pub const SUCCESS: &str = "_SUCCESS";

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
    /// Size in bytes.
    pub bytes: u64,
    /// Rows.
    pub rows: u64,
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
    /// The resolved pipeline configuration.
    pub config: crate::config::PipelineConfig,
    /// Write mode used (not part of the data).
    #[serde(skip)]
    pub mode: SinkMode,
    /// Input files.
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
}
