//! The input side: file discovery, schema checks, and reading the corpus one
//! row group ("unit") at a time, so that memory never grows with its size.
//!
//! A source is a Parquet file, a directory (searched recursively for
//! `*.parquet`, sorted by path, skipping names that start with `_` or `.`), or
//! a glob. Hive-style `key=value` directories below the root become string
//! columns that can be carried or used as ids.

mod discover;
pub mod list_page;
#[cfg(test)]
mod list_page_tests;
mod page_decode;
mod page_header;
mod page_stream;
mod pages;
mod read;
#[cfg(feature = "cloud")]
mod remote;
mod schema;
#[cfg(test)]
mod stream_tests;

/// Without the `cloud` feature no source is in an object store: plan
/// compilation refuses such paths ([`Error::CloudDisabled`]), and these
/// types, which have no values, keep the rest of the module free of `cfg`.
#[cfg(not(feature = "cloud"))]
mod remote {
    use std::path::PathBuf;

    use arrow_array::RecordBatch;

    use super::{InputFile, Opened, Select, Unit};
    use crate::error::{Error, Result};
    use crate::location::StoreUrl;
    use crate::plan::SourcePlan;

    /// An input file in an object store: none in this build.
    #[derive(Debug, Clone)]
    pub(super) enum RemoteFile {}

    impl RemoteFile {
        pub(super) fn read_row_group(
            &self,
            _: &InputFile,
            _: &Unit,
            _: &[usize],
        ) -> Result<std::result::Result<Vec<RecordBatch>, String>> {
            match *self {}
        }

        pub(super) fn blocks(&self, _: &InputFile) -> std::sync::Arc<bytes::Bytes> {
            match *self {}
        }
    }

    pub(super) fn open_remote(
        _: &SourcePlan,
        url: &StoreUrl,
        _: Select<'_>,
    ) -> Result<(Vec<Result<Opened>>, PathBuf)> {
        Err(Error::CloudDisabled {
            key: "source.path",
            url: url.clone(),
        })
    }
}

use discover::open_local;
pub(crate) use pages::stream_limits;
pub(crate) use read::{PieceBatch, PieceReader};
use remote::{open_remote, RemoteFile};
pub(crate) use schema::project;

use std::path::PathBuf;
use std::sync::Arc;

use arrow_schema::SchemaRef;
use parquet::arrow::arrow_reader::ArrowReaderMetadata;

use crate::error::{Error, Result};
use crate::location::Location;
use crate::plan::SourcePlan;

/// What a listed input file looks like before its footer is read: enough
/// to tell whether it is new or changed since an earlier run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// Path (or URL) as resolved.
    pub path: PathBuf,
    /// The path relative to the source's root (directory, glob root, or a
    /// single file's directory), `/`-separated: the same whatever the
    /// working directory or the spelling of `source.path`.
    pub rel: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Local mtime as `SECONDS.NANOSECONDS`, or an object's `Last-Modified` (RFC 3339).
    pub modified: Option<String>,
    /// An object's ETag.
    pub etag: Option<String>,
}

/// Decides, from its [`Stamp`], whether a listed file is read (`Ok(false)`:
/// skipped; an error stops the run).
pub type Select<'a> = &'a (dyn Fn(&Stamp) -> Result<bool> + Sync);

/// One input file with its footer.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// Path as resolved.
    pub path: PathBuf,
    /// Size in bytes.
    pub bytes: u64,
    /// Modification stamp when listed (see [`Stamp`]).
    pub modified: Option<String>,
    /// An object's ETag.
    pub etag: Option<String>,
    /// The path relative to the source's root (see [`Stamp::rel`]).
    pub rel: String,
    /// Rows in the file.
    pub rows: u64,
    /// Hive partition values from the directories, in key order of the first file.
    pub hive: Vec<(String, String)>,
    meta: ArrowReaderMetadata,
    /// This file's `[tokens, id?, carry…]` schema: the token column's list
    /// kind and integer width may differ from file to file (each is converted
    /// to `windows.dtype` when read); the other columns may not.
    schema: SchemaRef,
    /// Indices of the projected root columns, in `[tokens, id?, carry…]` order (None for hive columns).
    roots: Vec<Option<usize>>,
    /// Where the file lives when it is in an object store.
    remote: Option<RemoteFile>,
    /// The token column's leaf column (its values), when it has one.
    token_leaf: Option<usize>,
}

/// A file found by discovery: its stamp, footer, store location.
type Opened = (Stamp, ArrowReaderMetadata, Option<RemoteFile>);

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
    /// Index of the source the unit comes from (0 unless [`Source::concat`]).
    pub origin: usize,
    /// Which pass over its source the unit is read for (0 unless [`Source::concat`]).
    pub pass: u32,
}

/// An opened, checked source.
#[derive(Debug)]
pub struct Source {
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
        let source = Source::open_selected(plan, &|_| Ok(true), 0)?;
        Ok(source.expect("discovery finds at least one file"))
    }

    /// Like [`Source::open`], but reads only the files `select` keeps
    /// (`None` when it keeps none); documents without an id are numbered
    /// from `first_ordinal` (the rows read by earlier runs).
    ///
    /// # Errors
    /// As [`Source::open`], and whatever `select` returns.
    pub fn open_selected(
        plan: &SourcePlan,
        select: Select<'_>,
        first_ordinal: u64,
    ) -> Result<Option<Source>> {
        let (opened, root) = match &plan.path {
            Location::Local(path) => open_local(path, select)?,
            Location::Remote(url) => open_remote(plan, url, select)?,
        };
        if opened.is_empty() {
            return Ok(None);
        }
        let mut files = Vec::with_capacity(opened.len());
        let mut units = Vec::new();
        let mut ordinal = first_ordinal;
        let mut schema: Option<SchemaRef> = None;
        let mut hive_keys: Option<Vec<String>> = None;
        let mut flat = false;
        for item in opened {
            let (stamp, meta, remote) = item?;
            let (path, bytes) = (stamp.path, stamp.bytes);
            let mut hive = crate::hive::directory_values(&root, &path);
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
            let (file_schema, roots, is_flat) =
                project(&plan.columns, &path, meta.schema(), &hive, &plan.constants)?;
            // Constants first: they win over directory values of the same name.
            hive.splice(0..0, plan.constants.iter().cloned());
            match &schema {
                None => {
                    schema = Some(Arc::clone(&file_schema));
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
                            format!("token column `{}` is a list in some files and a plain column in others", plan.columns.tokens),
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
                    c.path().parts().first().map(String::as_str)
                        == Some(plan.columns.tokens.as_str())
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
                        origin: 0,
                        pass: 0,
                    });
                }
                first_row += rows;
                ordinal += rows;
            }
            files.push(InputFile {
                schema: file_schema,
                path,
                bytes,
                modified: stamp.modified,
                etag: stamp.etag,
                rel: stamp.rel,
                rows: first_row,
                hive,
                meta,
                roots,
                remote,
                token_leaf,
            });
        }
        Ok(Some(Source {
            files,
            units,
            schema: schema.expect("at least one file"),
            flat,
        }))
    }

    /// Several opened sources as one: files in order, and the units of
    /// source `s` repeated `passes[s]` times (all units of pass 0, then of
    /// pass 1, …), each tagged with its origin and pass. Document ordinals
    /// stay those of each source. The sources must give the same schema.
    ///
    /// # Errors
    /// [`Error::Internal`] when the schemas differ or no source is given.
    pub fn concat(sources: Vec<Source>, passes: &[u32]) -> Result<Source> {
        let mut all = sources.into_iter();
        let mut out = all
            .next()
            .ok_or_else(|| Error::Internal("no source to concatenate".into()))?;
        let mut units = Vec::new();
        let mut push = |source: &Source, origin: usize, offset: usize| {
            for pass in 0..passes[origin] {
                units.extend(source.units.iter().map(|u| Unit {
                    file: u.file + offset,
                    origin,
                    pass,
                    ..*u
                }));
            }
        };
        push(&out, 0, 0);
        for (i, s) in all.enumerate() {
            let rest = |x: &Source| {
                x.schema
                    .fields()
                    .iter()
                    .skip(1)
                    .cloned()
                    .collect::<Vec<_>>()
            };
            if rest(&s) != rest(&out) || s.flat != out.flat {
                return Err(Error::Internal(
                    "concatenated sources differ in schema".into(),
                ));
            }
            push(&s, i + 1, out.files.len());
            out.files.extend(s.files);
        }
        out.units = units;
        Ok(out)
    }

    /// Total rows over all files.
    pub fn total_rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }
}
