//! `sink:` → [`SinkPlan`]: partition columns, compression, row-group and
//! file sizes (defaults sized in bytes), where the dataset goes.

use std::path::{Path, PathBuf};

use parquet::basic::{Compression, GzipLevel, ZstdLevel};

use super::source::{check_storage_options, locate, text_options};
use super::{
    check_range, Compressions, Problems, SinkPlan, SourcePlan, DEFAULT_MAX_ROWS_PER_FILE,
    DEFAULT_ROW_GROUP_ROWS, FILE_TARGET_BYTES, ROW_GROUP_TARGET_BYTES,
};
use crate::config::SinkConfig;
use crate::location::{glob_root, Location, GLOB_CHARS};
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
        Compressions {
            columns: Compression::UNCOMPRESSED,
            delta_lists: Compression::UNCOMPRESSED,
        }
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
    match (&path, sk.path.is_empty()) {
        (Some(Location::Local(local)), false) => {
            let written_well = check_local_sink_text(problems, &sk.path, local);
            if written_well {
                check_local_sink_place(problems, local, &source.path, sk.partition_by.len());
            }
        }
        (Some(Location::Remote(sink)), _) => {
            if let Location::Remote(src) = &source.path {
                let (sink, src) = (sink.as_str(), src.as_str());
                let inside = sink == src
                    || sink
                        .strip_prefix(src)
                        .is_some_and(|rest| rest.starts_with('/'));
                if inside && !src.contains(GLOB_CHARS) {
                    problems.push(format!(
                        "`sink.path` {sink} is inside `source.path` {src}: a rerun would read its own output as input; write the dataset elsewhere"
                    ));
                }
            }
        }
        _ => {}
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
/// staging directory's name. Returns whether the path passed.
fn check_local_sink_text(problems: &mut Problems, text: &str, path: &Path) -> bool {
    if text.contains('\0') {
        problems.push("`sink.path` contains a NUL byte".into());
        return false;
    }
    let segments: Vec<&str> = text.split('/').collect();
    if segments.contains(&"..") {
        problems.push(format!(
            "`sink.path` must not contain `..` components, got `{text}`; write the path without them"
        ));
        return false;
    }
    let last = segments.iter().rev().find(|s| !s.is_empty()).copied();
    if matches!(last, None | Some(".")) || path.file_name().is_none() {
        problems.push(format!(
            "`sink.path` must end with the name of the dataset directory, got `{text}`"
        ));
        return false;
    }
    let name = path.file_name().map(|n| n.len()).unwrap_or(0);
    if name > MAX_SINK_NAME_BYTES {
        problems.push(format!(
            "`sink.path`: the directory name is {name} bytes long; at most {MAX_SINK_NAME_BYTES} fit (its staging directory `.NAME.seqwin-staging-PID` must stay within {MAX_FILE_NAME_BYTES} bytes)"
        ));
        return false;
    }
    true
}

/// The rules for where a local sink lies, checked on the filesystem as it is
/// (reading only; nothing that does not exist yet is a problem): the sink is
/// not a mount point (the dataset is staged beside it and renamed into
/// place, which cannot cross filesystems), and it is not inside the source
/// directory or matched by the source glob (a rerun would read its own
/// output).
fn check_local_sink_place(
    problems: &mut Problems,
    sink: &Path,
    source: &Location,
    partition_depth: usize,
) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let parent = sink
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if let (Ok(s), Ok(p)) = (std::fs::symlink_metadata(sink), std::fs::metadata(parent)) {
            if s.is_dir() && s.dev() != p.dev() {
                problems.push(format!(
                    "`sink.path` {} is a mount point (another filesystem than {}): the dataset is staged beside it and renamed into place, which cannot cross filesystems; use a directory inside it, such as {}",
                    sink.display(),
                    parent.display(),
                    sink.join("dataset").display()
                ));
            }
        }
    }
    let Location::Local(source) = source else {
        return;
    };
    let Some(sink_real) = resolve(sink) else {
        return;
    };
    if let Some(root) = glob_root(source) {
        let Some(root_real) = resolve(&root) else {
            return;
        };
        let Ok(rest) = source.strip_prefix(&root) else {
            return;
        };
        if !sink_real.starts_with(&root_real) {
            return;
        }
        let pattern = root_real.join(rest);
        let Ok(pattern) = glob::Pattern::new(&pattern.to_string_lossy()) else {
            return;
        };
        let options = glob::MatchOptions {
            require_literal_separator: true,
            require_literal_leading_dot: true,
            ..glob::MatchOptions::new()
        };
        // A data file of the dataset, at the depth of its partition directories.
        let mut probe = sink_real.clone();
        for k in 0..partition_depth {
            probe.push(format!("k{k}=v"));
        }
        probe.push("part-00000.parquet");
        if pattern.matches_path_with(&probe, options) {
            problems.push(format!(
                "`sink.path` {} is matched by `source.path` {}: a rerun would read its own output as input; write the dataset elsewhere",
                sink.display(),
                source.display()
            ));
        }
    } else if std::fs::metadata(source).is_ok_and(|m| m.is_dir())
        && resolve(source).is_some_and(|s| sink_real.starts_with(s))
    {
        problems.push(format!(
            "`sink.path` {} is inside `source.path` {}: a rerun would read its own output as input; write the dataset elsewhere",
            sink.display(),
            source.display()
        ));
    }
}

/// `path` with its longest existing ancestor canonicalized (symbolic links
/// resolved) and the rest appended as written.
fn resolve(path: &Path) -> Option<PathBuf> {
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    for ancestor in path.ancestors() {
        let existing = if ancestor.as_os_str().is_empty() {
            Path::new(".")
        } else {
            ancestor
        };
        if let Ok(real) = existing.canonicalize() {
            let rest = path.strip_prefix(ancestor).unwrap_or(Path::new(""));
            return Some(real.join(rest));
        }
    }
    None
}

/// Windows per row group when `sink.row_group_rows` is not given:
/// [`DEFAULT_ROW_GROUP_ROWS`], capped at [`ROW_GROUP_TARGET_BYTES`] of window data.
pub fn default_row_group_rows(window: &WindowSpec) -> usize {
    let row_bytes = (geometry::window_bytes(window) as usize).max(1);
    DEFAULT_ROW_GROUP_ROWS
        .min(ROW_GROUP_TARGET_BYTES / row_bytes)
        .max(1)
}

/// Parses `sink.compression`: `auto` ([`Compressions`]) or one codec for
/// every column.
///
/// # Errors
/// A message listing the accepted values.
pub fn parse_compression(text: &str) -> std::result::Result<Compressions, String> {
    if text.trim().eq_ignore_ascii_case("auto") {
        return Ok(Compressions {
            columns: Compression::ZSTD(ZstdLevel::try_new(1).expect("valid level")),
            delta_lists: Compression::UNCOMPRESSED,
        });
    }
    let every = parse_codec(text)?;
    Ok(Compressions {
        columns: every,
        delta_lists: every,
    })
}

/// One codec of `sink.compression`.
fn parse_codec(text: &str) -> std::result::Result<Compression, String> {
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
    let expected = "expected auto, zstd, zstd(1..22), snappy, lz4, gzip, gzip(0..9) or none";
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
