//! Decoding a block of row groups into one record batch with contiguous
//! buffers, on a few threads: the hot path of the Python readers.
//!
//! The token lists (`input`, `target`, `position_ids`, … — every
//! `fixed_size_list` of non-null `int32`/`int64`) take a shorter road: the
//! pages of a block's column chunks are decoded by [`seqwin::list_page`]
//! straight into one `rows × seq_len` buffer per column, which becomes the
//! Arrow values buffer without a copy; the repetition and definition levels
//! are checked run by run against the fixed list shape, never materialized
//! (see [`ListColumn`]; a dictionary-encoded chunk goes through parquet's
//! column reader and two small level buffers instead). Other columns go
//! through arrow-rs's record reader.
//!
//! ```text
//!  block of k row groups, column `input` (fixed_size_list<int32>[L]):
//!    rg 0 pages ─decode─► values[0 .. r0·L)
//!    rg 1 pages ─decode─► values[r0·L .. (r0+r1)·L)      one Vec, capacity
//!    …                                                    exactly Σr·L
//!  values ──► FixedSizeListArray ──► numpy (rows, L) view
//! ```

use std::ops::Range;
use std::sync::{Arc, Mutex};

use arrow_array::types::ArrowPrimitiveType;
use arrow_array::{ArrayRef, FixedSizeListArray, PrimitiveArray, RecordBatch};
use arrow_buffer::{ArrowNativeType, Buffer, ScalarBuffer};
use arrow_schema::{DataType, FieldRef};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use parquet::basic::Type as PhysicalType;
use parquet::column::page::PageReader;
use parquet::column::reader::ColumnReaderImpl;
use parquet::file::reader::ChunkReader;
use parquet::file::serialized_reader::SerializedPageReader;
use seqwin::list_page::{ListItem, ListPages, PageFit};

use crate::files::{fetch_ranges, Files, OpenFile};
use crate::pools::{Pool, Pools};

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
    pub(crate) fn read(
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

/// The items of the lists of column `name` ([`ListColumn`] `list`) of
/// `row_groups`, in order: one buffer of exactly `rows × size` values. Each
/// column chunk's pages are decoded straight into it by
/// [`seqwin::list_page`]; a chunk with pages it does not read (dictionary
/// encoded, …) goes through parquet's column reader instead.
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
    P::T: ArrowNativeType + ListItem,
{
    let mut rows = 0usize;
    for &(f, rg) in row_groups {
        f.check_row_group(rg)?;
        let md = f.meta.metadata();
        rows += usize::try_from(md.row_group(rg).num_rows()).map_err(|e| e.to_string())?;
    }
    let mut values = values_pool.take(rows * list.size);
    for &(f, rg) in row_groups {
        let context = |e: String| format!("{} row group {rg}: `{name}`: {e}", f.name);
        let md = f.meta.metadata();
        let group = md.row_group(rg);
        let chunk = group.column(list.leaf);
        let (start, len) = chunk.byte_range();
        let want = group.num_rows() as usize;
        let whole_chunk = std::iter::once(start..start + len).collect();
        let bytes = Arc::new(fetch_ranges(f, whole_chunk, pools).map_err(context)?);
        let page_reader = || {
            SerializedPageReader::new(Arc::clone(&bytes), chunk, want, None)
                .map_err(|e| context(e.to_string()))
        };
        let at = values.len();
        let mut pages = page_reader()?;
        let mut decoder = ListPages::new(&mut values, list.size, want * list.size);
        let mut fits = true;
        while let Some(page) = pages.get_next_page().map_err(|e| context(e.to_string()))? {
            if decoder.page(&page).map_err(context)? == PageFit::Unsupported {
                fits = false;
                break;
            }
        }
        if fits {
            decoder.finish().map_err(context)?;
        } else {
            values.truncate(at);
            let descr = md.file_metadata().schema_descr().column(list.leaf);
            let reader = ColumnReaderImpl::<P>::new(descr, Box::new(page_reader()?));
            read_by_column_reader(reader, want, list.size, &mut values).map_err(context)?;
        }
    }
    let n = values.len();
    let buffer = ScalarBuffer::new(Buffer::from(values_pool.lend(values)), 0, n);
    Ok(PrimitiveArray::<A>::new(buffer, None))
}

/// Appends `want` lists of `size` items from parquet's column reader: the
/// levels are decoded `LIST_CHUNK_ROWS` rows at a time into two small
/// buffers and must describe lists of `size` present items.
fn read_by_column_reader<P: parquet::data_type::DataType>(
    mut reader: ColumnReaderImpl<P>,
    want: usize,
    size: usize,
    values: &mut Vec<P::T>,
) -> Result<(), String> {
    let mut def: Vec<i16> = Vec::with_capacity(LIST_CHUNK_ROWS * size);
    let mut rep: Vec<i16> = Vec::with_capacity(LIST_CHUNK_ROWS * size);
    let mut got = 0;
    while got < want {
        def.clear();
        rep.clear();
        let (records, present, levels) = reader
            .read_records(
                (want - got).min(LIST_CHUNK_ROWS),
                Some(&mut def),
                Some(&mut rep),
                values,
            )
            .map_err(|e| e.to_string())?;
        if records == 0 {
            return Err(format!("expected {want} rows, found {got}"));
        }
        // `records` lists of `size` items, none of them null: rep levels
        // 0, 1, 1, … per list and every def level 1.
        let shaped = present == levels
            && levels == records * size
            && levels_are(&def, 1)
            && rep
                .chunks_exact(size)
                .all(|l| l[0] == 0 && levels_are(&l[1..], 1));
        if !shaped {
            return Err(format!(
                "expected lists of {size} non-null items, found {present} items in {records} lists"
            ));
        }
        got += records;
    }
    Ok(())
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
