//! Finding the input files (a file, a directory searched recursively, a
//! glob; locally or under an object store prefix) and reading their footers.

use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use rayon::prelude::*;

use crate::error::{contain, Error, Result};
use crate::location::glob_root;

use super::Opened;

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

/// Lists a local source (directory, file or glob) and reads every footer.
pub(super) fn open_local(path: &Path) -> Result<(Vec<Result<Opened>>, PathBuf)> {
    let (paths, root) = discover(path)?;
    let opened = paths
        .par_iter()
        .map(|p| {
            tracing::debug!(path = %p.display(), "opening input file");
            let file = File::open(p)
                .map_err(|e| Error::input(p, format!("cannot open input file: {e}")))?;
            let bytes = file.metadata().map_err(|e| Error::io(p, e))?.len();
            let meta = contain(
                || {
                    ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())
                        .map_err(|e| unreadable(p, e))
                },
                |m| reader_failed(p, m),
            )?;
            Ok((p.clone(), bytes, meta, None))
        })
        .collect();
    Ok((opened, root))
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
