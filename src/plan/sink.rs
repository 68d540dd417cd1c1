//! `sink:` → [`SinkPlan`]: partition columns, compression, row-group and
//! file sizes (defaults sized in bytes), where the dataset goes.

use std::path::{Path, PathBuf};

use parquet::basic::{Compression, GzipLevel, ZstdLevel};

use super::source::{check_storage_options, locate, text_options};
use super::{
    check_range, Problems, SinkPlan, SourcePlan, DEFAULT_MAX_ROWS_PER_FILE, DEFAULT_ROW_GROUP_ROWS,
    FILE_TARGET_BYTES, ROW_GROUP_TARGET_BYTES,
};
use crate::config::SinkConfig;
use crate::location::Location;
use crate::window::{geometry, WindowSpec};

/// Compiles `sink:`; `split` says whether there is a `split:` section.
pub fn compile_sink(
    sk: &SinkConfig,
    base: &Path,
    split: bool,
    source: &SourcePlan,
    window: &WindowSpec,
    problems: &mut Problems,
) -> SinkPlan {
    let carry = &source.columns.carry;
    let mut partition_seen = std::collections::BTreeSet::new();
    for p in &sk.partition_by {
        if !partition_seen.insert(p) {
            problems.push(format!("`sink.partition_by` lists `{p}` twice"));
        }
        if p == "split" {
            if !split {
                problems.push(
                    "`sink.partition_by` names `split` but there is no `split` section".into(),
                );
            }
        } else if !carry.contains(p) {
            problems.push(format!(
                "`sink.partition_by` column `{p}` is neither `split` nor a carried column (source.carry: [{}])",
                carry.join(", ")
            ));
        }
        if p.starts_with('_') || p.starts_with('.') {
            problems.push(format!(
                "`sink.partition_by` column `{p}` starts with `{}`: readers (pyarrow, Spark, seqwin) treat `{p}=…` directories as hidden and would read no rows; rename the column",
                &p[..1]
            ));
        }
    }
    if split && !sk.partition_by.iter().any(|p| p == "split") {
        problems.push(
            "`split` is given but `sink.partition_by` does not name `split`: the split would be computed and thrown away; add `split` to `sink.partition_by`"
                .into(),
        );
    }
    let compression = parse_compression(&sk.compression).unwrap_or_else(|message| {
        problems.push(format!("`sink.compression`: {message}"));
        Compression::UNCOMPRESSED
    });
    let row_bytes = (geometry::window_bytes(window) as usize).max(1);
    let row_group_rows = match sk.row_group_rows {
        Some(r) => check_range(problems, "sink.row_group_rows", r, 1, 1 << 30),
        None => default_row_group_rows(window),
    };
    let max_rows_per_file = match sk.max_rows_per_file {
        Some(r) => check_range(problems, "sink.max_rows_per_file", r, 1, i64::MAX),
        None => DEFAULT_MAX_ROWS_PER_FILE
            .min(FILE_TARGET_BYTES / row_bytes)
            .max(row_group_rows),
    };
    if sk.path.is_empty() {
        problems.push("`sink.path` must not be empty".into());
    }
    let path = locate(problems, "sink.path", base, &sk.path);
    if let (Some(Location::Local(local)), false) = (&path, sk.path.is_empty()) {
        check_local_sink_text(problems, &sk.path, local);
    }
    check_storage_options(
        problems,
        "sink.storage_options",
        &sk.storage_options,
        path.as_ref(),
    );
    SinkPlan {
        path: path.unwrap_or_else(|| Location::Local(PathBuf::new())),
        partition_by: sk.partition_by.clone(),
        compression,
        max_rows_per_file,
        row_group_rows,
        mode: sk.mode,
        storage_options: text_options(&sk.storage_options),
    }
}

/// Longest file name the local filesystems seqwin writes to accept.
pub(crate) const MAX_FILE_NAME_BYTES: usize = 255;

/// Longest final component of a local `sink.path`: the staging directory
/// `.NAME.seqwin-staging-PID` beside it (PID up to 7 digits) must still be a
/// valid file name.
pub(crate) const MAX_SINK_NAME_BYTES: usize =
    MAX_FILE_NAME_BYTES - ".".len() - ".seqwin-staging-".len() - 7;

/// The rules a local `sink.path` must follow as written: no NUL byte, no
/// `..` component (it would create the directories it walks through), a
/// final component that names a directory (not `.`) and leaves room for the
/// staging directory's name.
fn check_local_sink_text(problems: &mut Problems, text: &str, path: &Path) {
    if text.contains('\0') {
        problems.push("`sink.path` contains a NUL byte".into());
        return;
    }
    let segments: Vec<&str> = text.split('/').collect();
    if segments.contains(&"..") {
        problems.push(format!(
            "`sink.path` must not contain `..` components, got `{text}`; write the path without them"
        ));
        return;
    }
    let last = segments.iter().rev().find(|s| !s.is_empty()).copied();
    if matches!(last, None | Some(".")) || path.file_name().is_none() {
        problems.push(format!(
            "`sink.path` must end with the name of the dataset directory, got `{text}`"
        ));
        return;
    }
    let name = path.file_name().map(|n| n.len()).unwrap_or(0);
    if name > MAX_SINK_NAME_BYTES {
        problems.push(format!(
            "`sink.path`: the directory name is {name} bytes long; at most {MAX_SINK_NAME_BYTES} fit (its staging directory `.NAME.seqwin-staging-PID` must stay within {MAX_FILE_NAME_BYTES} bytes)"
        ));
    }
}

/// Windows per row group when `sink.row_group_rows` is not given:
/// [`DEFAULT_ROW_GROUP_ROWS`], capped at [`ROW_GROUP_TARGET_BYTES`] of window data.
pub fn default_row_group_rows(window: &WindowSpec) -> usize {
    let row_bytes = (geometry::window_bytes(window) as usize).max(1);
    DEFAULT_ROW_GROUP_ROWS
        .min(ROW_GROUP_TARGET_BYTES / row_bytes)
        .max(1)
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
