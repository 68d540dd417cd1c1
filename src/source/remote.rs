//! Sources in an object store (the `cloud` feature): listing a prefix, one
//! object or a glob over keys, footers by suffix range, row groups by the
//! ranges of their column chunks.

use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::RecordBatch;
use object_store::path::Path as Key;
use object_store::ObjectStore;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use rayon::prelude::*;

use crate::error::{contain, Error, Result};
use crate::location::{StoreUrl, GLOB_CHARS};
use crate::plan::SourcePlan;
use crate::store::{self, Ranges, Remote};

use super::discover::{reader_failed, relative, unreadable};
use super::read::decode_row_group;
use super::{InputFile, Opened, Select, Stamp, Unit};

/// An input file in an object store.
#[derive(Debug, Clone)]
pub(super) struct RemoteFile {
    store: Arc<dyn ObjectStore>,
    key: Key,
}

impl RemoteFile {
    /// Fetches the projected column chunks (`roots`, sorted) of `unit`'s row
    /// group and decodes them: the store's failure is an [`Error::Io`], the
    /// decoder's a message for the caller to place.
    pub(super) fn read_row_group(
        &self,
        f: &InputFile,
        unit: &Unit,
        roots: &[usize],
    ) -> Result<std::result::Result<Vec<RecordBatch>, String>> {
        let ranges = column_chunk_ranges(f, unit, roots);
        let data = Ranges::fetch(self.store.as_ref(), &self.key, f.bytes, ranges)
            .map_err(|e| Error::io(&f.path, store::io_error(e)))?;
        Ok(decode_row_group(data, f, unit, roots))
    }

    /// The object, read on demand in blocks ([`store::Blocks`]): for a row
    /// group's token column read page by page as streams.
    pub(super) fn blocks(&self, f: &InputFile) -> Arc<store::Blocks> {
        Arc::new(store::Blocks::new(
            Arc::clone(&self.store),
            self.key.clone(),
            f.bytes,
        ))
    }
}

impl super::page_stream::ByteSource for store::Blocks {
    fn bytes(&self, start: u64, len: usize) -> std::result::Result<bytes::Bytes, String> {
        self.get(start, len)
    }
}

/// Lists an object store source (a prefix, one object, or a glob over keys)
/// and reads the footer of every object `select` keeps with range requests.
pub(super) fn open_remote(
    plan: &SourcePlan,
    url: &StoreUrl,
    select: Select<'_>,
) -> Result<(Vec<Result<Opened>>, PathBuf)> {
    let url = url.as_str();
    tracing::debug!(url, "opening object store source");
    let remote =
        Remote::open(url, &plan.storage_options).map_err(|e| Error::source_store(url, e))?;
    let listing = |prefix: &Key| {
        remote.list(prefix).map_err(|e| {
            Error::input(
                url,
                format!("cannot list the source: {}", store::describe(&e)),
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
                    store::read_footer(remote.store.as_ref(), key, *size)
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
