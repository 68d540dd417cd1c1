//! The input side: file discovery, schema checks, and reading the corpus one
//! row group ("unit") at a time, so that memory never grows with its size.
//!
//! A source is a Parquet file, a directory (searched recursively for
//! `*.parquet`, sorted by path, skipping names that start with `_` or `.`), or
//! a glob. Hive-style `key=value` directories below the root become string
//! columns that can be carried or used as ids.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use object_store::path::Path as Key;
use object_store::ObjectStore;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;
use parquet::file::reader::ChunkReader;
use rayon::prelude::*;

use crate::error::{contain, Error, Result};
use crate::plan::SourcePlan;
use crate::store::{Ranges, Remote};
use crate::window::is_token_column;

/// Characters that make a source path a glob; the path components before
/// the first one holding any of them are the root (local) or the listed
/// prefix (object stores).
const GLOB_CHARS: [char; 3] = ['*', '?', '['];

/// One input file with its footer.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// Path as resolved.
    pub path: PathBuf,
    /// Size in bytes.
    pub bytes: u64,
    /// Rows in the file.
    pub rows: u64,
    /// Hive partition values from the directories, in key order of the first file.
    pub hive: Vec<(String, String)>,
    meta: ArrowReaderMetadata,
    /// Indices of the projected root columns, in `[tokens, id?, carry…]` order (None for hive columns).
    roots: Vec<Option<usize>>,
    /// Where the file lives when it is in an object store.
    remote: Option<RemoteFile>,
}

/// An input file in an object store.
#[derive(Debug, Clone)]
struct RemoteFile {
    store: Arc<dyn ObjectStore>,
    key: Key,
}

/// A file found by discovery: path (or URL), size, footer, store location.
type Opened = (PathBuf, u64, ArrowReaderMetadata, Option<RemoteFile>);

/// One row group of one file: the unit of parallel reading.
#[derive(Debug, Clone, Copy)]
pub struct Unit {
    /// Index into [`Source::files`].
    pub file: usize,
    /// Row group within the file.
    pub row_group: usize,
    /// Rows in the row group.
    pub rows: usize,
    /// Row of the row group's first row within its file.
    pub first_row: u64,
    /// Ordinal of the row group's first row in the whole source.
    pub first_ordinal: u64,
    /// Estimated tokens (from the footer).
    pub tokens_estimate: u64,
}

/// An opened, checked source.
#[derive(Debug)]
pub struct Source {
    /// The source plan.
    pub plan: SourcePlan,
    /// Files in read order.
    pub files: Vec<InputFile>,
    /// Row groups in read order.
    pub units: Vec<Unit>,
    /// Schema of the batches [`Source::read_unit`] returns: tokens, id?, carry….
    pub schema: SchemaRef,
    /// Whether the token column is a flat integer column (one token per row).
    pub flat: bool,
}

impl Source {
    /// Finds the files, reads their footers and checks their schemas.
    ///
    /// # Errors
    /// [`Error::Input`] for a missing path, no Parquet files, a file that is
    /// not Parquet or is corrupted, a missing column (listing the available
    /// ones) or a column of the wrong type.
    pub fn open(plan: &SourcePlan) -> Result<Source> {
        let (opened, root) = match crate::store::remote_url(&plan.path) {
            None => open_local(&plan.path)?,
            Some(url) => open_remote(plan, url)?,
        };
        let mut files = Vec::with_capacity(opened.len());
        let mut units = Vec::new();
        let mut ordinal = 0u64;
        let mut schema: Option<SchemaRef> = None;
        let mut hive_keys: Option<Vec<String>> = None;
        let mut flat = false;
        for item in opened {
            let (path, bytes, meta, remote) = item?;
            let hive = hive_values(&root, &path);
            let keys: Vec<String> = hive.iter().map(|(k, _)| k.clone()).collect();
            match &hive_keys {
                None => hive_keys = Some(keys),
                Some(k) if *k != keys => {
                    return Err(Error::input(
                        &path,
                        format!(
                            "hive partition directories differ from the first file's: expected keys [{}], found [{}]",
                            k.join(", "),
                            keys.join(", ")
                        ),
                    ))
                }
                Some(_) => {}
            }
            let (file_schema, roots, is_flat) = project(plan, &path, meta.schema(), &hive)?;
            match &schema {
                None => {
                    schema = Some(file_schema);
                    flat = is_flat;
                }
                Some(s) => {
                    for (a, b) in s.fields().iter().zip(file_schema.fields()).skip(1) {
                        if a.data_type() != b.data_type() {
                            return Err(Error::input(
                                &path,
                                format!(
                                    "column `{}` is {} here but {} in {}",
                                    b.name(),
                                    b.data_type(),
                                    a.data_type(),
                                    files
                                        .first()
                                        .map(|f: &InputFile| f.path.display().to_string())
                                        .unwrap_or_default()
                                ),
                            ));
                        }
                    }
                    if is_flat != flat {
                        return Err(Error::input(
                            &path,
                            format!("token column `{}` is a list in some files and a plain column in others", plan.tokens),
                        ));
                    }
                }
            }
            let md = meta.metadata();
            let token_leaf = md
                .file_metadata()
                .schema_descr()
                .columns()
                .iter()
                .position(|c| {
                    c.path().parts().first().map(String::as_str) == Some(plan.tokens.as_str())
                });
            let mut first_row = 0u64;
            let file_index = files.len();
            for (rg, g) in md.row_groups().iter().enumerate() {
                let rows = g.num_rows().max(0) as u64;
                if rows > 0 {
                    let tokens_estimate =
                        token_leaf.map_or(rows, |c| g.column(c).num_values().max(0) as u64);
                    units.push(Unit {
                        file: file_index,
                        row_group: rg,
                        rows: rows as usize,
                        first_row,
                        first_ordinal: ordinal,
                        tokens_estimate,
                    });
                }
                first_row += rows;
                ordinal += rows;
            }
            files.push(InputFile {
                path,
                bytes,
                rows: first_row,
                hive,
                meta,
                roots,
                remote,
            });
        }
        Ok(Source {
            plan: plan.clone(),
            files,
            units,
            schema: schema.expect("at least one file"),
            flat,
        })
    }

    /// Total rows over all files.
    pub fn total_rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }

    /// Reads one row group as a batch of [`Source::schema`].
    ///
    /// # Errors
    /// [`Error::Input`] naming the file and row group when the data cannot be
    /// decoded (corrupted or truncated file).
    pub fn read_unit(&self, unit: &Unit) -> Result<RecordBatch> {
        let f = &self.files[unit.file];
        let path = &f.path;
        let corrupt = |m: String| {
            Error::input(
                path,
                format!(
                    "row group {} (rows {}..{}) cannot be read: {m}",
                    unit.row_group,
                    unit.first_row,
                    unit.first_row + unit.rows as u64
                ),
            )
        };
        contain(
            || {
                let mut sorted: Vec<usize> = f.roots.iter().flatten().copied().collect();
                sorted.sort_unstable();
                sorted.dedup();
                let mut batches = match &f.remote {
                    None => {
                        let file = File::open(path).map_err(|e| {
                            Error::input(path, format!("cannot open input file: {e}"))
                        })?;
                        decode_row_group(file, f, unit, &sorted).map_err(corrupt)?
                    }
                    Some(r) => {
                        let ranges = column_chunk_ranges(f, unit, &sorted);
                        let data = Ranges::fetch(r.store.as_ref(), &r.key, f.bytes, ranges)
                            .map_err(|e| Error::io(path, crate::store::io_error(e)))?;
                        decode_row_group(data, f, unit, &sorted).map_err(corrupt)?
                    }
                };
                if batches.is_empty() {
                    return Err(corrupt("no rows decoded".into()));
                }
                let batch = if batches.len() == 1 {
                    batches.pop().expect("one batch")
                } else {
                    arrow::compute::concat_batches(&batches[0].schema(), &batches)
                        .map_err(|e| corrupt(e.to_string()))?
                };
                if batch.num_rows() != unit.rows {
                    return Err(corrupt(format!(
                        "expected {} rows, decoded {}",
                        unit.rows,
                        batch.num_rows()
                    )));
                }
                // Reorder to [tokens, id?, carry…], adding hive columns.
                let mut columns: Vec<ArrayRef> = Vec::with_capacity(f.roots.len());
                for (k, r) in f.roots.iter().enumerate() {
                    match r {
                        Some(root) => {
                            let pos = sorted.binary_search(root).expect("projected");
                            columns.push(Arc::clone(batch.column(pos)));
                        }
                        None => {
                            let name = self.schema.field(k).name();
                            let value = f
                                .hive
                                .iter()
                                .find(|(key, _)| key == name)
                                .map(|(_, v)| v.as_str());
                            columns.push(match value {
                                Some(v) => Arc::new(StringArray::from(vec![v; unit.rows])),
                                None => new_null_array(&DataType::Utf8, unit.rows),
                            });
                        }
                    }
                }
                RecordBatch::try_new(Arc::clone(&self.schema), columns)
                    .map_err(|e| corrupt(e.to_string()))
            },
            |m| corrupt(format!("the Parquet reader failed ({m})")),
        )
    }
}

/// The byte ranges of the column chunks of `unit`'s row group that belong
/// to the projected root columns (`roots`, sorted): all a remote read fetches.
fn column_chunk_ranges(f: &InputFile, unit: &Unit, roots: &[usize]) -> Vec<std::ops::Range<u64>> {
    let md = f.meta.metadata();
    let descr = md.file_metadata().schema_descr();
    let rg = md.row_group(unit.row_group);
    (0..rg.num_columns())
        .filter(|&c| roots.binary_search(&descr.get_column_root_idx(c)).is_ok())
        .map(|c| {
            let (start, len) = rg.column(c).byte_range();
            start..start + len
        })
        .collect()
}

/// Decodes the projected columns (`roots`, sorted) of one row group.
fn decode_row_group<R: ChunkReader + 'static>(
    reader: R,
    f: &InputFile,
    unit: &Unit,
    roots: &[usize],
) -> std::result::Result<Vec<RecordBatch>, String> {
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(reader, f.meta.clone());
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
    let reader = builder
        .with_row_groups(vec![unit.row_group])
        .with_projection(mask)
        .with_batch_size(unit.rows.max(1))
        .build()
        .map_err(|e| e.to_string())?;
    reader.map(|b| b.map_err(|e| e.to_string())).collect()
}

/// A footer that could not be read, or whose reader panicked (`contain`).
fn unreadable(p: &Path, m: impl std::fmt::Display) -> Error {
    Error::input(p, format!("not a readable Parquet file: {m}"))
}

fn reader_failed(p: &Path, m: String) -> Error {
    Error::input(
        p,
        format!("not a readable Parquet file (the reader failed: {m})"),
    )
}

/// Lists a local source (directory, file or glob) and reads every footer.
fn open_local(path: &Path) -> Result<(Vec<Result<Opened>>, PathBuf)> {
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

/// Lists an object store source (a prefix, one object, or a glob over keys)
/// and reads every footer with range requests.
fn open_remote(plan: &SourcePlan, url: &str) -> Result<(Vec<Result<Opened>>, PathBuf)> {
    tracing::debug!(url, "opening object store source");
    let remote = Remote::open(url, &plan.storage_options).map_err(|m| Error::input(url, m))?;
    let listing = |prefix: &Key| {
        remote.list(prefix).map_err(|e| {
            Error::input(
                url,
                format!("cannot list the source: {}", crate::store::describe(&e)),
            )
        })
    };
    let key_text = remote.prefix.as_ref().to_string();
    let mut found: Vec<(Key, u64)> = Vec::new();
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
                found.push((m.location, m.size));
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
                found.push((m.location, m.size));
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
                        found.push((m.location, m.size));
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
    let opened = found
        .par_iter()
        .map(|(key, size)| {
            let p = remote.display(key);
            tracing::debug!(path = %p.display(), "opening input file (footer range request)");
            let md = contain(
                || {
                    crate::store::read_footer(remote.store.as_ref(), key, *size)
                        .map_err(|m| Error::input(&p, m))
                },
                |m| reader_failed(&p, m),
            )?;
            let meta = ArrowReaderMetadata::try_new(Arc::new(md), ArrowReaderOptions::new())
                .map_err(|e| unreadable(&p, e))?;
            Ok((
                p,
                *size,
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

/// Lists the files of a source path, sorted, with the root that hive
/// directories are read relative to.
fn discover(path: &Path) -> Result<(Vec<PathBuf>, PathBuf)> {
    let text = path.to_string_lossy();
    if text.contains(GLOB_CHARS) {
        let root: PathBuf = path
            .components()
            .take_while(|c| !c.as_os_str().to_string_lossy().contains(GLOB_CHARS))
            .collect();
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

/// `key=value` directory components of `file` below `root`.
fn hive_values(root: &Path, file: &Path) -> Vec<(String, String)> {
    let rel = file.strip_prefix(root).unwrap_or(file);
    let mut out = Vec::new();
    if let Some(parent) = rel.parent() {
        for c in parent.components() {
            let s = c.as_os_str().to_string_lossy();
            if let Some((k, v)) = s.split_once('=') {
                if !k.is_empty() {
                    let v = crate::sink::unescape_partition_value(v);
                    out.push((k.to_string(), v));
                }
            }
        }
    }
    out
}

type Projection = (SchemaRef, Vec<Option<usize>>, bool);

/// Checks a file's schema against the plan; returns the batch schema, the root
/// column index of each output column (None for hive columns) and whether the
/// token column is flat.
pub(crate) fn project(
    plan: &SourcePlan,
    path: &Path,
    schema: &Schema,
    hive: &[(String, String)],
) -> Result<Projection> {
    let available = || {
        let mut names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        names.extend(hive.iter().map(|(k, _)| k.clone()));
        names.join(", ")
    };
    let find = |name: &str, key: &str| -> Result<(Field, Option<usize>)> {
        if let Ok(i) = schema.index_of(name) {
            return Ok((schema.field(i).clone(), Some(i)));
        }
        if hive.iter().any(|(k, _)| k == name) {
            return Ok((Field::new(name, DataType::Utf8, true), None));
        }
        Err(Error::input(
            path,
            format!(
                "column `{name}` ({key}) not found; available columns: {}",
                available()
            ),
        ))
    };
    let (tokens, tokens_root) = find(&plan.tokens, "source.tokens")?;
    if tokens_root.is_none() || !is_token_column(tokens.data_type()) {
        return Err(Error::input(
            path,
            format!(
                "column `{}` (source.tokens) must be a list of integers or an integer column, found {}",
                plan.tokens,
                tokens.data_type()
            ),
        ));
    }
    let flat = tokens.data_type().is_integer();
    let mut fields = vec![tokens];
    let mut roots = vec![tokens_root];
    if let Some(id) = &plan.id {
        let (f, r) = find(id, "source.id")?;
        if !(f.data_type().is_integer()
            || matches!(
                f.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ))
        {
            return Err(Error::input(
                path,
                format!(
                    "column `{id}` (source.id) must be an integer or string column, found {}",
                    f.data_type()
                ),
            ));
        }
        fields.push(f.with_name("__id"));
        roots.push(r);
    }
    for c in &plan.carry {
        let (f, r) = find(c, "source.carry")?;
        fields.push(f);
        roots.push(r);
    }
    Ok((Arc::new(Schema::new(fields)), roots, flat))
}
