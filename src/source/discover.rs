//! Finding the input files (a file, a directory searched recursively, a
//! glob; locally or under an object store prefix) and reading their footers.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::path::Path as Key;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use rayon::prelude::*;

use crate::error::{contain, Error, Result};
use crate::location::{glob_root, GLOB_CHARS};
use crate::plan::SourcePlan;
use crate::store::Remote;

use super::{Opened, RemoteFile, Select, Stamp};

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

/// Lists an object store source (a prefix, one object, or a glob over keys)
/// and reads the footer of every object `select` keeps with range requests.
pub(super) fn open_remote(
    plan: &SourcePlan,
    url: &str,
    select: Select<'_>,
) -> Result<(Vec<Result<Opened>>, PathBuf)> {
    tracing::debug!(url, "opening object store source");
    let remote =
        Remote::open(url, &plan.storage_options).map_err(|e| Error::source_store(url, e))?;
    let listing = |prefix: &Key| {
        remote.list(prefix).map_err(|e| {
            Error::input(
                url,
                format!("cannot list the source: {}", crate::store::describe(&e)),
            )
        })
    };
    let key_text = remote.prefix.as_ref().to_string();
    let mut found: Vec<object_store::ObjectMeta> = Vec::new();
    let root: PathBuf;
    if key_text.contains(GLOB_CHARS) {
        let literal: Vec<&str> = key_text
            .split('/')
            .take_while(|c| !c.contains(GLOB_CHARS))
            .collect();
        let pattern = glob::Pattern::new(&key_text)
            .map_err(|e| Error::input(url, format!("invalid glob pattern: {e}")))?;
        let options = glob::MatchOptions {
            require_literal_separator: true,
            require_literal_leading_dot: true,
            ..glob::MatchOptions::new()
        };
        let prefix = Key::from_iter(literal.iter().copied());
        root = remote.display(&prefix);
        for m in listing(&prefix)? {
            if pattern.matches_with(m.location.as_ref(), options) {
                found.push(m);
            }
        }
        if found.is_empty() {
            return Err(Error::input(url, "no Parquet files match this glob"));
        }
    } else {
        let single = remote.head(&remote.prefix).ok().flatten();
        match single {
            Some(m) if !key_text.is_empty() => {
                let parent: Key = remote
                    .prefix
                    .parts()
                    .take(remote.prefix.parts().count().saturating_sub(1))
                    .collect();
                root = remote.display(&parent);
                found.push(m);
            }
            _ => {
                root = PathBuf::from(url);
                let depth = remote.prefix.parts().count();
                for m in listing(&remote.prefix)? {
                    let rel: Vec<_> = m.location.parts().skip(depth).collect();
                    let hidden = rel.iter().any(|p| {
                        let p = p.as_ref();
                        p.starts_with('_') || p.starts_with('.')
                    });
                    let parquet = rel
                        .last()
                        .is_some_and(|p| p.as_ref().to_ascii_lowercase().ends_with(".parquet"));
                    if parquet && !hidden {
                        found.push(m);
                    }
                }
                if found.is_empty() {
                    return Err(Error::input(
                        url,
                        "no Parquet files found (searched recursively for *.parquet under this prefix)",
                    ));
                }
            }
        }
    }
    let mut kept = Vec::with_capacity(found.len());
    for m in found {
        let path = remote.display(&m.location);
        let stamp = Stamp {
            rel: relative(&path, &root),
            path,
            bytes: m.size,
            modified: Some(m.last_modified.to_rfc3339()),
            etag: m.e_tag.clone(),
        };
        if select(&stamp)? {
            kept.push((m.location, stamp));
        }
    }
    let opened = kept
        .into_par_iter()
        .map(|(key, stamp)| {
            let (key, size) = (&key, &stamp.bytes);
            let p = remote.display(key);
            tracing::debug!(path = %p.display(), "opening input file (footer range request)");
            let md = contain(
                || {
                    crate::store::read_footer(remote.store.as_ref(), key, *size)
                        .map_err(|e| Error::source_store(&p, e))
                },
                |m| reader_failed(&p, m),
            )?;
            let meta = ArrowReaderMetadata::try_new(Arc::new(md), ArrowReaderOptions::new())
                .map_err(|e| unreadable(&p, e))?;
            Ok((
                stamp.clone(),
                meta,
                Some(RemoteFile {
                    store: Arc::clone(&remote.store),
                    key: key.clone(),
                }),
            ))
        })
        .collect();
    Ok((opened, root))
}

/// `path` relative to the source root, `/`-separated (the whole path when
/// it is not below the root).
fn relative(path: &Path, root: &Path) -> String {
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
