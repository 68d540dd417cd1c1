//! Row-group reading for the trainer-side loader (`seqwin.Loader`) and
//! `seqwin.WindowDataset`: the hot path of the Python package's readers.
//!
//! A [`RowGroupReader`] opens a list of Parquet files of a seqwin dataset
//! once (footers decoded and kept), then decodes any list of row groups into
//! one record batch with contiguous buffers — a `fixed_size_list` column of
//! `rows × seq_len` tokens is one flat values buffer, which Python views as a
//! `(rows, seq_len)` numpy array without a copy. Decoding runs with the GIL
//! released. [`Prefetch`] does the same on a background thread for a known
//! sequence of row-group blocks, a bounded number of blocks ahead.
//!
//! ```text
//!  files ──footer (once)──► ArrowReaderMetadata
//!  block = [(file, rg), …] ──pread / range GET of the column chunks──►
//!        decode (arrow-rs) ──concat──► RecordBatch ──C stream──► pyarrow ──► numpy
//! ```
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
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};

use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_array::{RecordBatch, RecordBatchIterator};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::ChunkReader;
use pyo3::exceptions::{PyIOError, PyValueError};
use pyo3::prelude::*;
use seqwin::store::Ranges;

use crate::{ArrowStream, ErrorSlot};

/// Reads byte ranges of one remote object (a store client and a key inside).
type RangeFetch = dyn Fn(Vec<Range<u64>>) -> Result<seqwin::store::Ranges, String> + Send + Sync;

/// Reads a remote file's footer (path relative to the URL, size).
type FooterRead = dyn Fn(&str, u64) -> Result<ParquetMetaData, String> + Send + Sync;

/// The range fetcher of a remote file (path relative to the URL, size).
type RangesOf = dyn Fn(&str, u64) -> Arc<RangeFetch> + Send + Sync;

/// A remote dataset directory: its objects (path relative to the URL, size)
/// and, per object, a footer reader and a range fetcher.
struct RemoteDir {
    objects: BTreeMap<String, u64>,
    footer: Box<FooterRead>,
    ranges: Box<RangesOf>,
}

/// Every call into `seqwin::store` made by the Python readers, in one place:
/// opens `url` with `options` (the pipeline's storage options), lists it,
/// and returns closures that read a footer and fetch byte ranges.
fn open_remote(url: &str, options: &BTreeMap<String, String>) -> Result<RemoteDir, String> {
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
fn read_chunks(file: &File, size: u64, ranges: &[Range<u64>]) -> std::io::Result<Ranges> {
    let mut parts = Vec::with_capacity(ranges.len());
    for r in ranges {
        let mut buf = vec![0u8; (r.end - r.start) as usize];
        file.read_exact_at(&mut buf, r.start)?;
        parts.push((r.start, Bytes::from(buf)));
    }
    Ok(Ranges::from_parts(size, parts))
}

/// Where a file's bytes come from.
enum Bytesource {
    Local(File),
    Remote(Arc<RangeFetch>),
}

/// One opened Parquet file: its bytes and its decoded footer.
struct OpenFile {
    name: String,
    size: u64,
    source: Bytesource,
    meta: ArrowReaderMetadata,
}

/// The opened files of a reader, shared with its prefetch threads.
struct Files {
    files: Vec<OpenFile>,
}

impl Files {
    /// Decodes `columns` of `row_groups` ((file index, row group index)
    /// pairs), in that order, into one batch with contiguous buffers. Each
    /// (row group, column) chunk is decoded on its own, on up to `threads`
    /// threads; each column is then concatenated once.
    fn read(
        &self,
        row_groups: &[(usize, usize)],
        columns: &[String],
        threads: usize,
    ) -> Result<RecordBatch, String> {
        if row_groups.is_empty() || columns.is_empty() {
            return Err("nothing to read".into());
        }
        let mut tasks = Vec::with_capacity(row_groups.len() * columns.len());
        for &(fi, rg) in row_groups {
            let f = self
                .files
                .get(fi)
                .ok_or_else(|| format!("no file {fi} (the reader has {})", self.files.len()))?;
            for c in columns {
                tasks.push((f, rg, std::slice::from_ref(c)));
            }
        }
        let mut decoded: Vec<Option<Result<Vec<RecordBatch>, String>>> = Vec::new();
        decoded.resize_with(tasks.len(), || None);
        let threads = threads.clamp(1, tasks.len());
        let next = std::sync::atomic::AtomicUsize::new(0);
        let slots: Vec<Mutex<&mut Option<_>>> = decoded.iter_mut().map(Mutex::new).collect();
        std::thread::scope(|scope| {
            let work = || loop {
                let t = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&(f, rg, cols)) = tasks.get(t) else {
                    return;
                };
                let result = self.read_one(f, rg, cols);
                if let Ok(mut slot) = slots[t].lock() {
                    **slot = Some(result);
                }
            };
            for _ in 1..threads {
                scope.spawn(work);
            }
            work();
        });
        drop(slots);
        // decoded[rg * columns + c]: the batches of one column chunk.
        let mut per_column: Vec<Vec<arrow_array::ArrayRef>> = vec![Vec::new(); columns.len()];
        let mut fields = Vec::with_capacity(columns.len());
        for (t, d) in decoded.into_iter().enumerate() {
            let batches = d.ok_or("a decoding thread failed")??;
            let c = t % columns.len();
            for b in batches {
                if fields.len() == c {
                    fields.push(b.schema().field(0).clone());
                }
                per_column[c].push(std::sync::Arc::clone(b.column(0)));
            }
        }
        if fields.len() != columns.len() {
            return Err("the row groups hold no rows".into());
        }
        let mut arrays = Vec::with_capacity(columns.len());
        for parts in per_column {
            let refs: Vec<&dyn arrow_array::Array> = parts.iter().map(|a| a.as_ref()).collect();
            arrays.push(match refs.as_slice() {
                [one] => {
                    let _ = one;
                    std::sync::Arc::clone(&parts[0])
                }
                _ => arrow_select::concat::concat(&refs).map_err(|e| e.to_string())?,
            });
        }
        let schema = std::sync::Arc::new(arrow_schema::Schema::new(fields));
        RecordBatch::try_new(schema, arrays).map_err(|e| e.to_string())
    }

    fn read_one(
        &self,
        f: &OpenFile,
        rg: usize,
        columns: &[String],
    ) -> Result<Vec<RecordBatch>, String> {
        let md = f.meta.metadata();
        if rg >= md.num_row_groups() {
            return Err(format!(
                "{}: no row group {rg} (the file has {})",
                f.name,
                md.num_row_groups()
            ));
        }
        let schema = f.meta.schema();
        let mut roots = Vec::with_capacity(columns.len());
        for c in columns {
            roots.push(schema.index_of(c).map_err(|_| {
                format!(
                    "{}: no column `{c}` (columns: {})",
                    f.name,
                    field_names(schema)
                )
            })?);
        }
        let descr = md.file_metadata().schema_descr();
        let group = md.row_group(rg);
        let ranges: Vec<Range<u64>> = (0..group.num_columns())
            .filter(|&c| roots.contains(&descr.get_column_root_idx(c)))
            .map(|c| {
                let (start, len) = group.column(c).byte_range();
                start..start + len
            })
            .collect();
        let context = |e: String| format!("{} row group {rg}: {e}", f.name);
        let batches = match &f.source {
            Bytesource::Local(file) => {
                let chunks =
                    read_chunks(file, f.size, &ranges).map_err(|e| context(e.to_string()))?;
                decode(chunks, &f.meta, rg, &roots)
            }
            Bytesource::Remote(fetch) => {
                decode(fetch(ranges).map_err(context)?, &f.meta, rg, &roots)
            }
        }
        .map_err(context)?;
        // The decoder returns columns in file order; put them in the order asked.
        let mut sorted = roots.clone();
        sorted.sort_unstable();
        let order: Vec<usize> = roots
            .iter()
            .map(|r| sorted.binary_search(r).expect("projected"))
            .collect();
        batches
            .into_iter()
            .map(|b| b.project(&order).map_err(|e| context(e.to_string())))
            .collect()
    }
}

fn field_names(schema: &arrow_schema::Schema) -> String {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    names.join(", ")
}

fn decode<R: ChunkReader + 'static>(
    reader: R,
    meta: &ArrowReaderMetadata,
    rg: usize,
    roots: &[usize],
) -> Result<Vec<RecordBatch>, String> {
    let rows = meta.metadata().row_group(rg).num_rows().max(1) as usize;
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(reader, meta.clone());
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
    let reader = builder
        .with_row_groups(vec![rg])
        .with_projection(mask)
        .with_batch_size(rows)
        .build()
        .map_err(|e| e.to_string())?;
    reader.map(|b| b.map_err(|e| e.to_string())).collect()
}

fn to_stream(batch: RecordBatch) -> ArrowStream {
    let schema = batch.schema();
    let reader = RecordBatchIterator::new(vec![Ok(batch)], schema);
    ArrowStream {
        stream: Mutex::new(Some(FFI_ArrowArrayStream::new(Box::new(reader)))),
        error: ErrorSlot::default(),
    }
}

/// `RowGroupReader(root, names, storage_options)`: the Parquet files
/// `root/name` of a seqwin dataset (a local directory or an object store
/// URL), opened once.
#[pyclass(module = "seqwin._seqwin", frozen)]
pub struct RowGroupReader {
    files: Arc<Files>,
}

/// Reads a small whole file of a dataset (the manifest): local or remote.
#[pyfunction]
#[pyo3(signature = (root, name, storage_options=None))]
pub fn read_dataset_file(
    py: Python<'_>,
    root: &str,
    name: &str,
    storage_options: Option<BTreeMap<String, String>>,
) -> PyResult<Vec<u8>> {
    py.detach(|| {
        if is_remote(root) {
            let dir = open_remote(root, &storage_options.unwrap_or_default())?;
            let size = *dir
                .objects
                .get(name)
                .ok_or_else(|| format!("{root}/{name} does not exist"))?;
            if size == 0 {
                return Ok(Vec::new());
            }
            let data = (dir.ranges)(name, size)(std::iter::once(0..size).collect())?;
            data.get_bytes(0, size as usize)
                .map(|b| b.to_vec())
                .map_err(|e| e.to_string())
        } else {
            let path = std::path::Path::new(root).join(name);
            std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
        }
    })
    .map_err(PyIOError::new_err)
}

fn is_remote(root: &str) -> bool {
    root.split_once("://")
        .is_some_and(|(s, _)| seqwin::location::SCHEMES.contains(&s.to_ascii_lowercase().as_str()))
}

fn open_files(
    root: &str,
    names: &[String],
    options: &BTreeMap<String, String>,
) -> Result<Files, String> {
    let mut files = Vec::with_capacity(names.len());
    let options_arrow = ArrowReaderOptions::new();
    if is_remote(root) {
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
    } else {
        for name in names {
            let path = std::path::Path::new(root).join(name);
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
    }
    Ok(Files { files })
}

#[pymethods]
impl RowGroupReader {
    #[new]
    #[pyo3(signature = (root, names, storage_options=None))]
    fn new(
        py: Python<'_>,
        root: &str,
        names: Vec<String>,
        storage_options: Option<BTreeMap<String, String>>,
    ) -> PyResult<Self> {
        let options = storage_options.unwrap_or_default();
        let files = py
            .detach(|| open_files(root, &names, &options))
            .map_err(PyIOError::new_err)?;
        Ok(RowGroupReader {
            files: Arc::new(files),
        })
    }

    /// Rows of every row group, per file.
    fn row_group_rows(&self) -> Vec<Vec<i64>> {
        self.files
            .files
            .iter()
            .map(|f| {
                let md = f.meta.metadata();
                (0..md.num_row_groups())
                    .map(|i| md.row_group(i).num_rows())
                    .collect()
            })
            .collect()
    }

    /// The key-value metadata of the first file (the `seqwin.*` keys).
    fn key_value_metadata(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if let Some(f) = self.files.files.first() {
            if let Some(kv) = f.meta.metadata().file_metadata().key_value_metadata() {
                for e in kv {
                    if let Some(v) = &e.value {
                        out.insert(e.key.clone(), v.clone());
                    }
                }
            }
        }
        out
    }

    /// Decodes `columns` of `row_groups` ((file, row group) pairs) into one
    /// batch on up to `threads` threads, with the GIL released; returns an
    /// Arrow C stream of it.
    #[pyo3(signature = (row_groups, columns, threads=1))]
    fn read(
        &self,
        py: Python<'_>,
        row_groups: Vec<(usize, usize)>,
        columns: Vec<String>,
        threads: usize,
    ) -> PyResult<ArrowStream> {
        let batch = py
            .detach(|| self.files.read(&row_groups, &columns, threads))
            .map_err(PyIOError::new_err)?;
        Ok(to_stream(batch))
    }

    /// Starts decoding `blocks` (each a list of (file, row group) pairs) in
    /// order on a background thread, at most `ahead` blocks ahead of the
    /// consumer, each on up to `threads` threads.
    #[pyo3(signature = (blocks, columns, ahead, threads=1))]
    fn prefetch(
        &self,
        blocks: Vec<Vec<(usize, usize)>>,
        columns: Vec<String>,
        ahead: usize,
        threads: usize,
    ) -> PyResult<Prefetch> {
        if ahead == 0 {
            return Err(PyValueError::new_err("prefetch needs ahead >= 1"));
        }
        // The channel holds `ahead - 1` finished blocks; the thread decodes one more.
        let (tx, rx) = sync_channel(ahead - 1);
        let files = Arc::clone(&self.files);
        std::thread::Builder::new()
            .name("seqwin-prefetch".into())
            .spawn(move || {
                for block in blocks {
                    let result = files.read(&block, &columns, threads);
                    let failed = result.is_err();
                    // The consumer went away: stop.
                    if tx.send(result).is_err() || failed {
                        return;
                    }
                }
            })
            .map_err(|e| PyIOError::new_err(format!("cannot start the prefetch thread: {e}")))?;
        Ok(Prefetch { rx: Mutex::new(rx) })
    }
}

/// Blocks decoded ahead by a background thread, in order.
#[pyclass(module = "seqwin._seqwin", frozen)]
pub struct Prefetch {
    rx: Mutex<Receiver<Result<RecordBatch, String>>>,
}

#[pymethods]
impl Prefetch {
    /// The next block (an Arrow C stream of one batch), `None` after the last.
    fn next(&self, py: Python<'_>) -> PyResult<Option<ArrowStream>> {
        let got = py.detach(|| {
            let rx = self
                .rx
                .lock()
                .map_err(|_| "the prefetch queue is unusable".to_string())?;
            match rx.recv() {
                Ok(r) => r.map(Some),
                Err(_) => Ok(None),
            }
        });
        got.map(|b| b.map(to_stream)).map_err(PyIOError::new_err)
    }
}
