//! Finding the input files (a file, a directory searched recursively, a
//! glob; locally or under an object store prefix) and reading their footers.

use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use rayon::prelude::*;

use crate::error::{contain, Error, Result};
use crate::location::glob_root;

use super::{Opened, Select, Stamp};

/// A footer that could not be read, or whose reader panicked (`contain`).
pub(super) fn unreadable(p: &Path, m: impl std::fmt::Display) -> Error {
    Error::input(p, format!("not a readable Parquet file: {m}"))
}

pub(super) fn reader_failed(p: &Path, m: String) -> Error {
    Error::input(
        p,
        format!("not a readable Parquet file (the reader failed: {m})"),
    )
}

/// A local file's modification time as `SECONDS.NANOSECONDS` since the epoch.
fn mtime_text(meta: &std::fs::Metadata) -> Option<String> {
    let t = meta.modified().ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(format!("{}.{:09}", d.as_secs(), d.subsec_nanos()))
}

/// Lists a local source (directory, file or glob) and reads the footer of
/// every file `select` keeps.
pub(super) fn open_local(
    path: &Path,
    select: Select<'_>,
) -> Result<(Vec<Result<Opened>>, PathBuf)> {
    let (paths, root) = discover(path)?;
    let mut kept = Vec::with_capacity(paths.len());
    for p in paths {
        let meta = std::fs::metadata(&p)
            .map_err(|e| Error::input(&p, format!("cannot open input file: {e}")))?;
        let stamp = Stamp {
            modified: mtime_text(&meta),
            rel: relative(&p, &root),
            path: p,
            bytes: meta.len(),
            etag: None,
        };
        if select(&stamp)? {
            kept.push(stamp);
        }
    }
    let opened = kept
        .into_par_iter()
        .map(|stamp| {
            let p = &stamp.path;
            tracing::debug!(path = %p.display(), "opening input file");
            let file = File::open(p)
                .map_err(|e| Error::input(p, format!("cannot open input file: {e}")))?;
            let bytes = file.metadata().map_err(|e| Error::io(p, e))?.len();
            if bytes != stamp.bytes {
                return Err(Error::input(
                    p,
                    format!(
                        "the file changed while it was listed: {} bytes, then {bytes}",
                        stamp.bytes
                    ),
                ));
            }
            let meta = contain(
                || {
                    crate::footer::check_file(&file).map_err(|e| unreadable(p, e))?;
                    ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())
                        .map_err(|e| unreadable(p, e))
                },
                |m| reader_failed(p, m),
            )?;
            Ok((stamp, meta, None))
        })
        .collect();
    Ok((opened, root))
}

/// `path` relative to the source root, `/`-separated (the whole path when
/// it is not below the root).
pub(super) fn relative(path: &Path, root: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.join("/")
}

/// Lists the files of a source path, sorted, with the root that hive
/// directories are read relative to.
pub(super) fn discover(path: &Path) -> Result<(Vec<PathBuf>, PathBuf)> {
    let text = path.to_string_lossy();
    if let Some(root) = glob_root(path) {
        let options = glob::MatchOptions {
            require_literal_leading_dot: true,
            ..glob::MatchOptions::new()
        };
        let entries = glob::glob_with(&text, options)
            .map_err(|e| Error::input(path, format!("invalid glob pattern: {e}")))?;
        let mut files = Vec::new();
        for entry in entries {
            let p =
                entry.map_err(|e| Error::input(e.path(), format!("cannot read: {}", e.error())))?;
            if p.is_file() {
                files.push(p);
            }
        }
        files.sort();
        if files.is_empty() {
            return Err(Error::input(path, "no Parquet files match this glob"));
        }
        return Ok((files, root));
    }
    let meta = std::fs::metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::input(path, "source path does not exist")
        } else {
            Error::input(path, format!("cannot read source path: {e}"))
        }
    })?;
    if meta.is_file() {
        let root = path.parent().unwrap_or(Path::new("")).to_path_buf();
        return Ok((vec![path.to_path_buf()], root));
    }
    let mut files = Vec::new();
    let walker = walkdir::WalkDir::new(path)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            e.depth() == 0 || {
                let name = e.file_name().to_string_lossy();
                !name.starts_with('_') && !name.starts_with('.')
            }
        });
    for entry in walker {
        let entry = entry.map_err(|e| {
            Error::input(
                e.path().unwrap_or(path),
                format!(
                    "cannot read directory: {}",
                    e.io_error().map_or("loop".to_string(), |i| i.to_string())
                ),
            )
        })?;
        if entry.file_type().is_file()
            && entry
                .file_name()
                .to_string_lossy()
                .to_ascii_lowercase()
                .ends_with(".parquet")
        {
            files.push(entry.into_path());
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(Error::input(
            path,
            "no Parquet files found (searched recursively for *.parquet)",
        ));
    }
    Ok((files, path.to_path_buf()))
}
