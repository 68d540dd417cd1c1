//! `seqwin inspect DATASET_DIR`: schema, partitions, counts, versions and
//! first rows of a dataset, after checking it against its manifest and its
//! version log.

use std::fs::File;
use std::path::Path;

use arrow_array::Array;

use arrow_array::cast::AsArray;
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::{FileReader, SerializedFileReader};

use crate::error::{contain, Error, Result};
use serde::Serialize;

use crate::sink::manifest::FileEntry;
use crate::sink::{log_name, log_version, FieldEntry, Manifest, LOG_DIR, MANIFEST, SUCCESS};
use crate::window::TokenAccount;

fn bad(dir: &Path, message: impl Into<String>) -> Error {
    Error::Dataset {
        path: dir.to_path_buf(),
        message: message.into(),
    }
}

/// Reads and parses a dataset's manifest.
///
/// # Errors
/// [`Error::Dataset`] when there is no readable manifest.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        bad(
            dir,
            format!("not a seqwin dataset: cannot read {MANIFEST}: {e}"),
        )
    })?;
    serde_json::from_str(&text)
        .map_err(|e| bad(dir, format!("{MANIFEST} is not a valid manifest: {e}")))
}

/// What `seqwin inspect` verified, and the dataset's counts (the JSON of
/// `seqwin inspect --json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inspection {
    /// The dataset directory, as given.
    pub dataset: String,
    /// The same, as a path.
    #[serde(skip)]
    pub dir: std::path::PathBuf,
    /// seqwin version that wrote the dataset.
    pub seqwin_version: String,
    /// What was checked (each check passed, or [`verify`] returned an error).
    pub verified: Verified,
    /// The output Arrow schema recorded in the manifest.
    pub schema: Vec<FieldEntry>,
    /// Partition columns.
    pub partition_by: Vec<String>,
    /// Partitions, as listed in the manifest.
    pub partitions: Vec<InspectedPartition>,
    /// Sum of the partitions' token accounts.
    pub totals: TokenAccount,
    /// Every version in the log, oldest first (the last is the manifest's).
    pub versions: Vec<VersionSummary>,
    /// The first file listed (its first rows are shown by [`Inspection::render`]).
    #[serde(skip)]
    pub first_file: Option<String>,
}

/// One version of a dataset, from its log entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionSummary {
    /// The version number.
    pub version: u64,
    /// seqwin version that wrote it.
    pub seqwin_version: String,
    /// Input files ingested up to this version.
    pub inputs: usize,
    /// Data files of this version.
    pub files: usize,
    /// Windows of this version.
    pub windows: u64,
}

impl VersionSummary {
    fn of(m: &Manifest) -> VersionSummary {
        VersionSummary {
            version: m.version,
            seqwin_version: m.seqwin_version.clone(),
            inputs: m.inputs.len(),
            files: m.partitions.iter().map(|p| p.files.len()).sum(),
            windows: m.totals.windows,
        }
    }
}

/// The versions in the dataset's log, oldest first: numbered without gaps,
/// each a manifest, the last one byte-equal to `_seqwin.json`. A dataset
/// written before the log existed has one version, its manifest.
///
/// # Errors
/// [`Error::Dataset`] naming the log entry that is missing or wrong.
fn read_versions(dir: &Path, manifest: &Manifest) -> Result<Vec<VersionSummary>> {
    let log = dir.join(LOG_DIR);
    if !log.is_dir() {
        return Ok(vec![VersionSummary::of(manifest)]);
    }
    let mut numbers = Vec::new();
    for entry in std::fs::read_dir(&log).map_err(|e| bad(dir, format!("{LOG_DIR}: {e}")))? {
        let entry = entry.map_err(|e| bad(dir, format!("{LOG_DIR}: {e}")))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        match log_version(&name) {
            Some(v) => numbers.push(v),
            None => return Err(bad(dir, format!("{LOG_DIR}/{name} is not a log entry"))),
        }
    }
    numbers.sort_unstable();
    let first = numbers.first().copied().unwrap_or(0);
    let mut out = Vec::new();
    for (k, v) in numbers.iter().enumerate() {
        if *v != first + k as u64 {
            return Err(bad(
                dir,
                format!(
                    "the version log has a gap: {} is missing",
                    log_name(first + k as u64)
                ),
            ));
        }
        let name = log_name(*v);
        let text = std::fs::read(dir.join(&name)).map_err(|e| bad(dir, format!("{name}: {e}")))?;
        let m: Manifest = serde_json::from_slice(&text)
            .map_err(|e| bad(dir, format!("{name} is not a valid manifest: {e}")))?;
        if m.version != *v {
            return Err(bad(dir, format!("{name} says it is version {}", m.version)));
        }
        if *v == manifest.version {
            let current = std::fs::read(dir.join(MANIFEST))
                .map_err(|e| bad(dir, format!("{MANIFEST}: {e}")))?;
            if current != text {
                return Err(bad(
                    dir,
                    format!("{MANIFEST} differs from {name}, the log entry of its version"),
                ));
            }
        }
        out.push(VersionSummary::of(&m));
    }
    if numbers.last() != Some(&manifest.version) {
        return Err(bad(
            dir,
            format!(
                "{MANIFEST} is version {} but the newest log entry is {}",
                manifest.version,
                numbers.last().map_or("none".to_string(), |v| log_name(*v))
            ),
        ));
    }
    Ok(out)
}

/// The checks [`verify`] made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verified {
    /// The manifest parsed.
    pub manifest: bool,
    /// `_SUCCESS` is present.
    pub success_marker: bool,
    /// Files listed in the manifest, each present with the listed size, row
    /// count and `seqwin.seq_len` metadata.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Their rows (each partition's rows equal its windows).
    pub rows: u64,
    /// Parquet files found below the dataset directory (all listed).
    pub parquet_files_found: usize,
}

/// One partition of an [`Inspection`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InspectedPartition {
    /// Directory relative to the root (`""` when not partitioned).
    pub path: String,
    /// Partition column values.
    pub values: std::collections::BTreeMap<String, Option<String>>,
    /// Files in the partition.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// The partition's token account (`windows` = its rows).
    pub account: TokenAccount,
}

/// Verifies a dataset against its manifest and renders the inspection report.
///
/// # Errors
/// As [`verify`], or [`Error::Dataset`] when the first rows cannot be read.
pub fn inspect(dir: &Path) -> Result<String> {
    verify(dir)?.render()
}

/// Verifies a dataset against its manifest.
///
/// Checks: `_SUCCESS` present; every listed file a plain relative path inside
/// its partition's directory, present with the listed size, row count,
/// CRC-32 and `seqwin.*` metadata; no other file in the tree (readers would
/// see its rows); the partitions' rows equal their window counts, each
/// account balances, and the totals are their sum.
///
/// # Errors
/// [`Error::Dataset`] naming the first mismatch.
pub fn verify(dir: &Path) -> Result<Inspection> {
    let manifest = read_manifest(dir)?;
    if !dir.join(SUCCESS).is_file() {
        return Err(bad(
            dir,
            format!("{SUCCESS} is missing: the dataset was not committed"),
        ));
    }
    check_accounts(dir, &manifest)?;
    let mut listed = std::collections::BTreeSet::new();
    let mut first_file = None;
    let (mut total_bytes, mut total_rows) = (0u64, 0u64);
    let seq_len = manifest.config.windows.seq_len.to_string();
    for p in &manifest.partitions {
        for f in &p.files {
            check_file_name(dir, &p.path, &f.name)?;
            verify_file(dir, f, &seq_len)?;
            total_bytes += f.bytes;
            total_rows += f.rows;
            listed.insert(f.name.clone());
            first_file.get_or_insert_with(|| f.name.clone());
        }
    }
    let parquet_files_found = check_nothing_else(dir, &listed)?;
    let versions = read_versions(dir, &manifest)?;
    Ok(Inspection {
        dataset: dir.display().to_string(),
        dir: dir.to_path_buf(),
        seqwin_version: manifest.seqwin_version.clone(),
        verified: Verified {
            manifest: true,
            success_marker: true,
            files: listed.len(),
            bytes: total_bytes,
            rows: total_rows,
            parquet_files_found,
        },
        schema: manifest.schema.clone(),
        partition_by: manifest.partition_by.clone(),
        partitions: manifest
            .partitions
            .iter()
            .map(|p| InspectedPartition {
                path: p.path.clone(),
                values: p.values.clone(),
                files: p.files.len(),
                bytes: p.files.iter().map(|f| f.bytes).sum(),
                account: p.account.clone(),
            })
            .collect(),
        totals: manifest.totals.clone(),
        versions,
        first_file,
    })
}

/// Each partition's rows equal its windows and its account balances; the
/// totals are the sum of the partitions.
fn check_accounts(dir: &Path, manifest: &Manifest) -> Result<()> {
    let mut sum = TokenAccount::default();
    for p in &manifest.partitions {
        let rows: u64 = p.files.iter().map(|f| f.rows).sum();
        if rows != p.account.windows {
            return Err(bad(
                dir,
                format!(
                    "partition `{}` lists {} rows in files but {} windows",
                    p.path, rows, p.account.windows
                ),
            ));
        }
        let a = &p.account;
        if a.tokens_in != a.tokens_targeted + a.tokens_never_targeted {
            return Err(bad(
                dir,
                format!(
                    "partition `{}`: tokens_in {} is not tokens_targeted {} + tokens_never_targeted {}",
                    p.path, a.tokens_in, a.tokens_targeted, a.tokens_never_targeted
                ),
            ));
        }
        sum.add(a);
    }
    if sum != manifest.totals {
        return Err(bad(
            dir,
            format!(
                "the manifest's totals are not the sum of its partitions: {:?} vs {:?}",
                manifest.totals, sum
            ),
        ));
    }
    Ok(())
}

/// A listed name must be `PARTITION/part-NNNNN[-T].parquet` (or without the
/// directory when not partitioned): never absolute, never `..`, never
/// outside the dataset.
fn check_file_name(dir: &Path, partition: &str, name: &str) -> Result<()> {
    let (parent, file) = name.rsplit_once('/').unwrap_or(("", name));
    if parent != partition || !crate::hive::is_data_file_name(file) || name.contains('\\') {
        return Err(bad(
            dir,
            format!(
                "the manifest lists `{name}`, which is not a data file name of partition `{partition}`; refusing to look outside the dataset"
            ),
        ));
    }
    Ok(())
}

/// A listed file has the listed size, rows, CRC-32 and `seqwin.seq_len`.
fn verify_file(dir: &Path, f: &FileEntry, seq_len: &str) -> Result<()> {
    let path = dir.join(&f.name);
    tracing::debug!(file = %path.display(), "checking a listed file");
    let name = &f.name;
    let data = std::fs::read(&path).map_err(|e| bad(dir, format!("{name}: {e}")))?;
    if data.len() as u64 != f.bytes {
        return Err(bad(
            dir,
            format!("{name}: {} bytes, manifest says {}", data.len(), f.bytes),
        ));
    }
    if let Some(expected) = &f.crc32 {
        let found = format!("{:08x}", crc32fast::hash(&data));
        if &found != expected {
            return Err(bad(
                dir,
                format!("{name}: CRC-32 {found}, manifest says {expected}: the file was changed"),
            ));
        }
    }
    let data = bytes::Bytes::from(data);
    let reader = contain(
        || {
            crate::footer::check_file(&data).map_err(|e| bad(dir, format!("{name}: {e}")))?;
            SerializedFileReader::new(data).map_err(|e| bad(dir, format!("{name}: {e}")))
        },
        |m| bad(dir, format!("{name}: unreadable footer ({m})")),
    )?;
    let md = reader.metadata().file_metadata();
    if md.num_rows() as u64 != f.rows {
        return Err(bad(
            dir,
            format!("{name}: {} rows, manifest says {}", md.num_rows(), f.rows),
        ));
    }
    let kv = md.key_value_metadata().cloned().unwrap_or_default();
    let found = kv
        .iter()
        .find(|k| k.key == "seqwin.seq_len")
        .and_then(|k| k.value.clone());
    if found.as_deref() != Some(seq_len) {
        return Err(bad(
            dir,
            format!("{name}: seqwin.seq_len metadata is {found:?}"),
        ));
    }
    Ok(())
}

/// Every file of the tree is listed, the manifest or `_SUCCESS`: readers see
/// the rows of any other file. Returns the number of Parquet files.
fn check_nothing_else(dir: &Path, listed: &std::collections::BTreeSet<String>) -> Result<usize> {
    let mut parquet_files = 0;
    for entry in walkdir::WalkDir::new(dir).min_depth(1) {
        let entry = entry.map_err(|e| bad(dir, e.to_string()))?;
        if entry.file_type().is_dir() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(dir)
            .expect("below dir")
            .to_string_lossy()
            .into_owned();
        let in_log = entry.depth() == 2
            && rel.starts_with(&format!("{LOG_DIR}/"))
            && log_version(&entry.file_name().to_string_lossy()).is_some();
        if listed.contains(&rel) {
            parquet_files += 1;
        } else if rel != MANIFEST && rel != SUCCESS && !in_log {
            return Err(bad(dir, format!("{rel} is not listed in the manifest")));
        }
    }
    Ok(parquet_files)
}

impl Inspection {
    /// The text report of `seqwin inspect`: schema, partitions, counts and
    /// the first rows of the first file.
    ///
    /// # Errors
    /// [`Error::Dataset`] when the first rows cannot be read.
    pub fn render(&self) -> Result<String> {
        let dir = self.dir.as_path();
        let mut out = String::new();
        let t = &self.totals;
        out.push_str(&format!(
            "dataset {} (seqwin {})\n",
            dir.display(),
            self.seqwin_version
        ));
        out.push_str("schema:\n");
        for f in &self.schema {
            out.push_str(&format!(
                "  {}: {}{}\n",
                f.name,
                f.data_type,
                if f.nullable { "" } else { " not null" }
            ));
        }
        if !self.partition_by.is_empty() {
            out.push_str(&format!(
                "partition columns: {}\n",
                self.partition_by.join(", ")
            ));
        }
        out.push_str("partitions:\n");
        for p in &self.partitions {
            out.push_str(&format!(
                "  {:<30} {:>10} windows {:>4} file(s) {:>10.1} MB  {} documents, {} tokens\n",
                if p.path.is_empty() { "(root)" } else { &p.path },
                p.account.windows,
                p.files,
                p.bytes as f64 / 1e6,
                p.account.documents,
                p.account.tokens_in
            ));
        }
        out.push_str(&format!(
            "total: {} windows ({} padded), {} documents, {} tokens in, {} targeted, {} never a target\n",
            t.windows, t.padded_windows, t.documents, t.tokens_in, t.tokens_targeted, t.tokens_never_targeted
        ));
        out.push_str("versions:\n");
        for v in &self.versions {
            out.push_str(&format!(
                "  {:>6} {:>10} windows {:>4} file(s) {:>4} input file(s)  seqwin {}{}\n",
                v.version,
                v.windows,
                v.files,
                v.inputs,
                v.seqwin_version,
                if Some(v) == self.versions.last() {
                    "  (current)"
                } else {
                    ""
                }
            ));
        }
        if let Some(name) = &self.first_file {
            out.push_str(&format!("first rows of {name}:\n"));
            let file = File::open(dir.join(name)).map_err(|e| bad(dir, format!("{name}: {e}")))?;
            let rows = contain(
                || {
                    let mut reader = ParquetRecordBatchReaderBuilder::try_new(file)
                        .and_then(|b| b.with_batch_size(3).with_limit(3).build())
                        .map_err(|e| bad(dir, format!("{name}: {e}")))?;
                    match reader.next() {
                        Some(b) => b.map(Some).map_err(|e| bad(dir, format!("{name}: {e}"))),
                        None => Ok(None),
                    }
                },
                |m| bad(dir, format!("{name}: unreadable ({m})")),
            )?;
            if let Some(batch) = rows {
                for r in 0..batch.num_rows() {
                    let mut cells = Vec::new();
                    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
                        let text = if let Some(list) = c.as_fixed_size_list_opt() {
                            let v = list.value(r);
                            let shown = v.len().min(8);
                            let fmt =
                                ArrayFormatter::try_new(v.as_ref(), &FormatOptions::default())
                                    .map_err(|e| bad(dir, e.to_string()))?;
                            let items: Vec<String> =
                                (0..shown).map(|i| fmt.value(i).to_string()).collect();
                            format!(
                                "[{}{}]",
                                items.join(", "),
                                if v.len() > shown { ", …" } else { "" }
                            )
                        } else {
                            let fmt =
                                ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default())
                                    .map_err(|e| bad(dir, e.to_string()))?;
                            fmt.value(r).to_string()
                        };
                        cells.push(format!("{}={}", f.name(), text));
                    }
                    out.push_str(&format!("  {}\n", cells.join("  ")));
                }
            }
        }
        Ok(out)
    }
}
