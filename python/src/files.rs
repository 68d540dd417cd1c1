//! The files a Python reader opens: a seqwin dataset's Parquet files,
//! local or on an object store, each with its footer decoded once, and the
//! reading of their column chunks' bytes.
//!
//! Local files are read with positioned reads (`pread`) of exactly the
//! column chunks, never through a shared file offset: the reader is safe to
//! use from the prefetch thread, the caller's thread and forked DataLoader
//! workers at once. Object-store files go through [`open_remote`], the one
//! function that calls `seqwin::store`.

use std::collections::BTreeMap;
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::file::metadata::ParquetMetaData;
use seqwin::location::Location;
use seqwin::store::Ranges;

use crate::pools::{Pool, Pools};

/// Reads byte ranges of one remote object (a store client and a key inside).
pub(crate) type RangeFetch =
    dyn Fn(Vec<Range<u64>>) -> Result<seqwin::store::Ranges, String> + Send + Sync;

/// Reads a remote file's footer (path relative to the URL, size).
type FooterRead = dyn Fn(&str, u64) -> Result<ParquetMetaData, String> + Send + Sync;

/// The range fetcher of a remote file (path relative to the URL, size).
type RangesOf = dyn Fn(&str, u64) -> Arc<RangeFetch> + Send + Sync;

/// A remote dataset directory: its objects (path relative to the URL, size)
/// and, per object, a footer reader and a range fetcher.
pub(crate) struct RemoteDir {
    pub(crate) objects: BTreeMap<String, u64>,
    pub(crate) footer: Box<FooterRead>,
    pub(crate) ranges: Box<RangesOf>,
}

/// Every call into `seqwin::store` made by the Python readers, in one place:
/// opens `url` with `options` (the pipeline's storage options), lists it,
/// and returns closures that read a footer and fetch byte ranges.
pub(crate) fn open_remote(
    url: &str,
    options: &BTreeMap<String, String>,
) -> Result<RemoteDir, String> {
    let remote = seqwin::store::Remote::open(url, options).map_err(|e| e.to_string())?;
    let listed = remote
        .list(&remote.prefix)
        .map_err(|e| format!("cannot list {url}: {}", seqwin::store::describe(&e)))?;
    let prefix = remote.prefix.as_ref().to_string();
    let objects = listed
        .into_iter()
        .filter_map(|m| {
            let key = m.location.as_ref();
            let rel = if prefix.is_empty() {
                key
            } else {
                key.strip_prefix(&prefix)?.strip_prefix('/')?
            };
            Some((rel.to_string(), m.size))
        })
        .collect();
    let (r1, r2) = (remote.clone(), remote);
    Ok(RemoteDir {
        objects,
        footer: Box::new(move |rel, size| {
            let key = r1.child(rel).map_err(|e| e.to_string())?;
            seqwin::store::read_footer(r1.store.as_ref(), &key, size).map_err(|e| e.to_string())
        }),
        ranges: Box::new(move |rel, size| {
            let (r, key) = (r2.clone(), r2.child(rel).map_err(|e| e.to_string()));
            Arc::new(move |ranges| {
                let key = key.clone()?;
                seqwin::store::Ranges::fetch(r.store.as_ref(), &key, size, ranges)
                    .map_err(|e| seqwin::store::describe(&e))
            })
        }),
    })
}

/// The column chunks of one row group read from a local file, served to the
/// Parquet decoder as if they were the file (the same reader as for the
/// ranges fetched from an object store).
fn read_chunks(
    file: &File,
    size: u64,
    ranges: &[Range<u64>],
    pool: &Arc<Pool<u8>>,
) -> std::io::Result<Ranges> {
    let mut parts = Vec::with_capacity(ranges.len());
    for r in ranges {
        let len = (r.end - r.start) as usize;
        let mut buf = pool.take(len);
        buf.resize(len, 0);
        file.read_exact_at(&mut buf, r.start)?;
        parts.push((r.start, pool.lend(buf)));
    }
    Ok(Ranges::from_parts(size, parts))
}

/// Where a file's bytes come from.
pub(crate) enum Bytesource {
    Local(File),
    Remote(Arc<RangeFetch>),
}

/// One opened Parquet file: its bytes and its decoded footer.
pub(crate) struct OpenFile {
    pub(crate) name: String,
    pub(crate) size: u64,
    pub(crate) source: Bytesource,
    pub(crate) meta: ArrowReaderMetadata,
}

impl OpenFile {
    /// Whether the file has row group `rg`.
    pub(crate) fn check_row_group(&self, rg: usize) -> Result<(), String> {
        let groups = self.meta.metadata().num_row_groups();
        if rg >= groups {
            return Err(format!(
                "{}: no row group {rg} (the file has {groups})",
                self.name
            ));
        }
        Ok(())
    }
}

/// The opened files of a reader, shared with its prefetch threads.
pub(crate) struct Files {
    pub(crate) files: Vec<OpenFile>,
    pub(crate) pools: Pools,
}

/// The byte ranges `ranges` of `f` (column chunks), read or fetched, served
/// to the Parquet decoder as if they were the file.
pub(crate) fn fetch_ranges(
    f: &OpenFile,
    ranges: Vec<Range<u64>>,
    pools: &Pools,
) -> Result<Ranges, String> {
    match &f.source {
        Bytesource::Local(file) => {
            read_chunks(file, f.size, &ranges, &pools.chunks).map_err(|e| e.to_string())
        }
        Bytesource::Remote(fetch) => fetch(ranges),
    }
}

/// Where the dataset root `root` points, classified by the one place that
/// classifies paths ([`Location::parse`]): a local directory (as given) or
/// an object store URL.
pub(crate) fn locate(root: &str) -> Result<Location, String> {
    Location::parse(root, Path::new(""))
}

/// Opens the files `names` of the dataset at `root` and decodes their footers.
pub(crate) fn open_files(
    root: &str,
    names: &[String],
    options: &BTreeMap<String, String>,
) -> Result<Files, String> {
    let mut files = Vec::with_capacity(names.len());
    let options_arrow = ArrowReaderOptions::new();
    if let Location::Local(dir) = locate(root)? {
        for name in names {
            let path = dir.join(name);
            let shown = path.display().to_string();
            let file = File::open(&path).map_err(|e| format!("{shown}: {e}"))?;
            let size = file.metadata().map_err(|e| format!("{shown}: {e}"))?.len();
            seqwin::footer::check_file(&file).map_err(|e| format!("{shown}: {e}"))?;
            let meta = ArrowReaderMetadata::load(&file, options_arrow.clone())
                .map_err(|e| format!("{shown}: not a readable Parquet file: {e}"))?;
            files.push(OpenFile {
                name: shown,
                size,
                source: Bytesource::Local(file),
                meta,
            });
        }
    } else {
        let dir = open_remote(root, options)?;
        for name in names {
            let size = *dir
                .objects
                .get(name)
                .ok_or_else(|| format!("{root}/{name} does not exist"))?;
            let md = (dir.footer)(name, size).map_err(|e| format!("{root}/{name}: {e}"))?;
            let meta = ArrowReaderMetadata::try_new(Arc::new(md), options_arrow.clone())
                .map_err(|e| format!("{root}/{name}: {e}"))?;
            files.push(OpenFile {
                name: format!("{root}/{name}"),
                size,
                source: Bytesource::Remote((dir.ranges)(name, size)),
                meta,
            });
        }
    }
    Ok(Files {
        files,
        pools: Pools::default(),
    })
}
