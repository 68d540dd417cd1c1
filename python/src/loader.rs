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
//! The token lists (`input`, `target`, `position_ids`, … — every
//! `fixed_size_list` of non-null `int32`/`int64`) take a shorter road: the
//! pages of a block's column chunks are decoded by parquet's column reader
//! straight into one `rows × seq_len` buffer per column, which becomes the
//! Arrow values buffer without a copy; the repetition and definition levels
//! go through a small reused buffer and are checked against the fixed list
//! shape instead of being materialized per row group and concatenated (see
//! [`ListColumn`]). Other columns go through arrow-rs's record reader.
//!
//! ```text
//!  block of k row groups, column `input` (fixed_size_list<int32>[L]):
//!    rg 0 pages ─decode─► values[0 .. r0·L)
//!    rg 1 pages ─decode─► values[r0·L .. (r0+r1)·L)      one Vec, capacity
//!    …                                                    exactly Σr·L
//!  values ──► FixedSizeListArray ──► numpy (rows, L) view
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
use std::sync::{Arc, Mutex, Weak};

use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_array::types::ArrowPrimitiveType;
use arrow_array::{ArrayRef, FixedSizeListArray, PrimitiveArray, RecordBatch, RecordBatchIterator};
use arrow_buffer::{ArrowNativeType, Buffer, ScalarBuffer, ToByteSlice};
use arrow_schema::{DataType, FieldRef};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;
use parquet::basic::Type as PhysicalType;
use parquet::column::page::PageReader;
use parquet::column::reader::ColumnReaderImpl;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::ChunkReader;
use parquet::file::serialized_reader::SerializedPageReader;
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

/// Freed buffers found again for reuse per reader: the bytes read from
/// local files and the value buffers of the token lists, handed to Python.
/// A decoded block is several MiB; fresh memory for each one costs a page
/// fault per 4 KiB page and the allocator's trimming (a fifth to a third of
/// the decoding CPU time, measured), while a buffer taken from here is
/// already mapped.
///
/// A buffer comes back when its last user drops it (the decoder, or Python
/// dropping the numpy arrays of a block) and is taken before any new one is
/// allocated, so the buffers a reader owns never outnumber the most it had
/// in use at once (at most `POOL_BUFFERS` are kept idle per type); they are
/// freed with the reader.
#[derive(Default)]
struct Pools {
    chunks: Arc<Pool<u8>>,
    int32: Arc<Pool<i32>>,
    int64: Arc<Pool<i64>>,
}

/// Idle buffers kept per type of [`Pools`]: more than a loader of `input`
/// and `target` holds at once (per column, the two blocks a batch spans and
/// the one being decoded).
const POOL_BUFFERS: usize = 8;

/// Idle buffers of one element type.
struct Pool<T> {
    idle: Mutex<Vec<Vec<T>>>,
}

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Pool {
            idle: Mutex::new(Vec::new()),
        }
    }
}

impl<T: ArrowNativeType> Pool<T> {
    /// An empty buffer with room for `capacity` items: an idle one if any.
    fn take(&self, capacity: usize) -> Vec<T> {
        let mut v = self
            .idle
            .lock()
            .ok()
            .and_then(|mut idle| idle.pop())
            .unwrap_or_default();
        v.clear();
        v.reserve(capacity);
        v
    }

    /// `v` as bytes that return it to this pool when their last user drops them.
    fn lend(self: &Arc<Self>, v: Vec<T>) -> Bytes {
        Bytes::from_owner(Lent {
            vec: v,
            pool: Arc::downgrade(self),
        })
    }
}

/// A buffer lent out by a [`Pool`]; dropping it gives it back.
struct Lent<T> {
    vec: Vec<T>,
    pool: Weak<Pool<T>>,
}

impl<T: ArrowNativeType> AsRef<[u8]> for Lent<T> {
    fn as_ref(&self) -> &[u8] {
        self.vec.to_byte_slice()
    }
}

impl<T> Drop for Lent<T> {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            if let Ok(mut idle) = pool.idle.lock() {
                if idle.len() < POOL_BUFFERS {
                    idle.push(std::mem::take(&mut self.vec));
                }
            }
        }
    }
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

impl OpenFile {
    /// Whether the file has row group `rg`.
    fn check_row_group(&self, rg: usize) -> Result<(), String> {
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
struct Files {
    files: Vec<OpenFile>,
    pools: Pools,
}

/// Rows whose levels one call of the column reader decodes on the fast path:
/// the level buffers stay small (2 × 64 rows × `seq_len` × 2 bytes) and hot.
const LIST_CHUNK_ROWS: usize = 64;

/// A column the fast path decodes: a non-null `fixed_size_list` of non-null
/// `int32` or `int64` stored as one Parquet leaf (max definition and
/// repetition level 1), the shape of seqwin's token lists.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct ListColumn {
    /// The Parquet leaf column.
    leaf: usize,
    /// Items per list (`seq_len`).
    size: usize,
    /// `int32` (else `int64`) items.
    int32: bool,
}

impl ListColumn {
    /// The fast-path shape of column `name` of `f`, if it has it.
    fn of(f: &OpenFile, name: &str) -> Option<ListColumn> {
        let schema = f.meta.schema();
        let field = schema.field_with_name(name).ok()?;
        let DataType::FixedSizeList(item, size) = field.data_type() else {
            return None;
        };
        if field.is_nullable() || item.is_nullable() {
            return None;
        }
        let (int32, physical) = match item.data_type() {
            DataType::Int32 => (true, PhysicalType::INT32),
            DataType::Int64 => (false, PhysicalType::INT64),
            _ => return None,
        };
        let root = schema.index_of(name).ok()?;
        let descr = f.meta.metadata().file_metadata().schema_descr();
        let mut leaves = (0..descr.num_columns()).filter(|&c| descr.get_column_root_idx(c) == root);
        let (Some(leaf), None) = (leaves.next(), leaves.next()) else {
            return None;
        };
        let column = descr.column(leaf);
        let shape = column.physical_type() == physical
            && column.max_def_level() == 1
            && column.max_rep_level() == 1;
        let size = usize::try_from(*size).ok().filter(|&n| n > 0)?;
        shape.then_some(ListColumn { leaf, size, int32 })
    }
}

/// One unit of decoding work of [`Files::read`].
enum Task<'a> {
    /// Column `c` of every row group of the block, on the fast path.
    Lists(usize, ListColumn),
    /// Column `c` of one row group, through arrow-rs's record reader.
    Chunk(usize, &'a OpenFile, usize),
}

/// What a [`Task`] produced.
enum Decoded {
    Array(FieldRef, ArrayRef),
    Batches(Vec<RecordBatch>),
}

impl Files {
    fn file(&self, fi: usize) -> Result<&OpenFile, String> {
        self.files
            .get(fi)
            .ok_or_else(|| format!("no file {fi} (the reader has {})", self.files.len()))
    }

    /// Decodes `columns` of `row_groups` ((file index, row group index)
    /// pairs), in that order, into one batch with contiguous buffers, on up
    /// to `threads` threads. A token-list column ([`ListColumn`]) is one
    /// task that decodes every row group into one buffer; any other column
    /// is one task per row group, concatenated once at the end.
    fn read(
        &self,
        row_groups: &[(usize, usize)],
        columns: &[String],
        threads: usize,
    ) -> Result<RecordBatch, String> {
        if row_groups.is_empty() || columns.is_empty() {
            return Err("nothing to read".into());
        }
        let mut opened = Vec::with_capacity(row_groups.len());
        for &(fi, rg) in row_groups {
            opened.push((self.file(fi)?, rg));
        }
        // The fast path when every file of the block has the column in that shape.
        let mut tasks = Vec::new();
        let mut chunks = Vec::new();
        for (c, name) in columns.iter().enumerate() {
            let first = ListColumn::of(opened[0].0, name);
            match first.filter(|l| {
                opened
                    .iter()
                    .all(|(f, _)| ListColumn::of(f, name) == Some(*l))
            }) {
                Some(list) => tasks.push(Task::Lists(c, list)),
                None => chunks.extend(opened.iter().map(|&(f, rg)| Task::Chunk(c, f, rg))),
            }
        }
        tasks.extend(chunks); // the big tasks first, for the balance of the threads
        let mut decoded: Vec<Option<Result<Decoded, String>>> = Vec::new();
        decoded.resize_with(tasks.len(), || None);
        let threads = threads.clamp(1, tasks.len());
        let next = std::sync::atomic::AtomicUsize::new(0);
        let slots: Vec<Mutex<&mut Option<_>>> = decoded.iter_mut().map(Mutex::new).collect();
        std::thread::scope(|scope| {
            let work = || loop {
                let t = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(task) = tasks.get(t) else {
                    return;
                };
                let result = match *task {
                    Task::Lists(c, list) => self.read_lists(&opened, &columns[c], list),
                    Task::Chunk(c, f, rg) => self
                        .read_one(f, rg, std::slice::from_ref(&columns[c]))
                        .map(Decoded::Batches),
                };
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
        // Per column: its field and its parts, in row-group order.
        let mut fields: Vec<Option<FieldRef>> = vec![None; columns.len()];
        let mut parts: Vec<Vec<ArrayRef>> = vec![Vec::new(); columns.len()];
        for (task, d) in tasks.iter().zip(decoded) {
            let c = match *task {
                Task::Lists(c, _) | Task::Chunk(c, _, _) => c,
            };
            match d.ok_or("a decoding thread failed")?? {
                Decoded::Array(field, array) => {
                    fields[c] = Some(field);
                    parts[c].push(array);
                }
                Decoded::Batches(batches) => {
                    for b in batches {
                        fields[c].get_or_insert_with(|| Arc::clone(&b.schema().fields()[0]));
                        parts[c].push(Arc::clone(b.column(0)));
                    }
                }
            }
        }
        let mut arrays = Vec::with_capacity(columns.len());
        let mut schema_fields = Vec::with_capacity(columns.len());
        for (field, parts) in fields.into_iter().zip(parts) {
            let field = field.ok_or("the row groups hold no rows")?;
            arrays.push(match parts.as_slice() {
                [one] => Arc::clone(one),
                _ => {
                    let refs: Vec<&dyn arrow_array::Array> =
                        parts.iter().map(|a| a.as_ref()).collect();
                    arrow_select::concat::concat(&refs).map_err(|e| e.to_string())?
                }
            });
            schema_fields.push(field);
        }
        let schema = Arc::new(arrow_schema::Schema::new(schema_fields));
        RecordBatch::try_new(schema, arrays).map_err(|e| e.to_string())
    }

    /// Column `name` ([`ListColumn`] `list`) of `row_groups`, decoded page by
    /// page into one `rows × size` buffer.
    fn read_lists(
        &self,
        row_groups: &[(&OpenFile, usize)],
        name: &str,
        list: ListColumn,
    ) -> Result<Decoded, String> {
        let field = row_groups[0]
            .0
            .meta
            .schema()
            .field_with_name(name)
            .map_err(|e| e.to_string())?;
        let DataType::FixedSizeList(item, _) = field.data_type() else {
            return Err(format!("`{name}` is not a fixed_size_list"));
        };
        let values: ArrayRef = if list.int32 {
            Arc::new(read_list_values::<
                parquet::data_type::Int32Type,
                arrow_array::types::Int32Type,
            >(
                row_groups, name, list, &self.pools, &self.pools.int32
            )?)
        } else {
            Arc::new(read_list_values::<
                parquet::data_type::Int64Type,
                arrow_array::types::Int64Type,
            >(
                row_groups, name, list, &self.pools, &self.pools.int64
            )?)
        };
        let size = i32::try_from(list.size).map_err(|e| e.to_string())?;
        let array = FixedSizeListArray::try_new(Arc::clone(item), size, values, None)
            .map_err(|e| format!("`{name}`: {e}"))?;
        Ok(Decoded::Array(Arc::new(field.clone()), Arc::new(array)))
    }

    fn read_one(
        &self,
        f: &OpenFile,
        rg: usize,
        columns: &[String],
    ) -> Result<Vec<RecordBatch>, String> {
        let md = f.meta.metadata();
        f.check_row_group(rg)?;
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
        let chunks = fetch_ranges(f, ranges, &self.pools).map_err(context)?;
        let batches = decode(chunks, &f.meta, rg, &roots).map_err(context)?;
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

/// The byte ranges `ranges` of `f` (column chunks), read or fetched, served
/// to the Parquet decoder as if they were the file.
fn fetch_ranges(f: &OpenFile, ranges: Vec<Range<u64>>, pools: &Pools) -> Result<Ranges, String> {
    match &f.source {
        Bytesource::Local(file) => {
            read_chunks(file, f.size, &ranges, &pools.chunks).map_err(|e| e.to_string())
        }
        Bytesource::Remote(fetch) => fetch(ranges),
    }
}

/// The items of the lists of column `name` ([`ListColumn`] `list`) of
/// `row_groups`, in order: one buffer of exactly `rows × size` values,
/// filled by parquet's column reader page by page. The levels are decoded
/// `LIST_CHUNK_ROWS` rows at a time into two small reused buffers and must
/// describe `rows` lists of `size` present items.
fn read_list_values<P, A>(
    row_groups: &[(&OpenFile, usize)],
    name: &str,
    list: ListColumn,
    pools: &Pools,
    values_pool: &Arc<Pool<A::Native>>,
) -> Result<PrimitiveArray<A>, String>
where
    P: parquet::data_type::DataType,
    A: ArrowPrimitiveType<Native = P::T>,
    P::T: ArrowNativeType,
{
    let mut rows = 0usize;
    for &(f, rg) in row_groups {
        f.check_row_group(rg)?;
        let md = f.meta.metadata();
        rows += usize::try_from(md.row_group(rg).num_rows()).map_err(|e| e.to_string())?;
    }
    let mut values = values_pool.take(rows * list.size);
    let mut def: Vec<i16> = Vec::with_capacity(LIST_CHUNK_ROWS * list.size);
    let mut rep: Vec<i16> = Vec::with_capacity(LIST_CHUNK_ROWS * list.size);
    for &(f, rg) in row_groups {
        let context = |e: String| format!("{} row group {rg}: `{name}`: {e}", f.name);
        let md = f.meta.metadata();
        let group = md.row_group(rg);
        let chunk = group.column(list.leaf);
        let (start, len) = chunk.byte_range();
        let want = group.num_rows() as usize;
        let whole_chunk = std::iter::once(start..start + len).collect();
        let bytes = fetch_ranges(f, whole_chunk, pools).map_err(context)?;
        let pages: Box<dyn PageReader> = Box::new(
            SerializedPageReader::new(Arc::new(bytes), chunk, want, None)
                .map_err(|e| context(e.to_string()))?,
        );
        let descr = md.file_metadata().schema_descr().column(list.leaf);
        let mut reader = ColumnReaderImpl::<P>::new(descr, pages);
        let mut got = 0;
        while got < want {
            def.clear();
            rep.clear();
            let (records, present, levels) = reader
                .read_records(
                    (want - got).min(LIST_CHUNK_ROWS),
                    Some(&mut def),
                    Some(&mut rep),
                    &mut values,
                )
                .map_err(|e| context(e.to_string()))?;
            if records == 0 {
                return Err(context(format!("expected {want} rows, found {got}")));
            }
            // `records` lists of `size` items, none of them null: rep levels
            // 0, 1, 1, … per list and every def level 1.
            let shaped = present == levels
                && levels == records * list.size
                && levels_are(&def, 1)
                && rep
                    .chunks_exact(list.size)
                    .all(|l| l[0] == 0 && levels_are(&l[1..], 1));
            if !shaped {
                return Err(context(format!(
                    "expected lists of {} non-null items, found {present} items in {records} lists",
                    list.size
                )));
            }
            got += records;
        }
    }
    let n = values.len();
    let buffer = ScalarBuffer::new(Buffer::from(values_pool.lend(values)), 0, n);
    Ok(PrimitiveArray::<A>::new(buffer, None))
}

/// Whether every level is `want`: a branch-free fold the compiler
/// vectorizes (an early-exit `all` over a whole row group's levels cost as
/// much as decoding its values).
fn levels_are(levels: &[i16], want: i16) -> bool {
    levels.iter().fold(0, |acc, &l| acc | (l ^ want)) == 0
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
    Ok(Files {
        files,
        pools: Pools::default(),
    })
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
