//! Windows → Arrow: the output schema of a window spec and the record
//! batches of `input`/`target` and the extra columns.

use std::sync::Arc;

use arrow_array::types::Int32Type;
use arrow_array::ArrowPrimitiveType;
use arrow_array::{
    Array, ArrayRef, FixedSizeListArray, Int32Array, Int64Array, PrimitiveArray, RecordBatch,
};
use arrow_buffer::ScalarBuffer;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use arrow_select::interleave::interleave;

use super::{DocBatch, ExtraColumn, Lanes, Token, TokenDtype, WindowRef, WindowSpec};
use crate::error::{Error, Result};

/// What a batch of output rows looks like: the schema and how to fill it.
#[derive(Debug, Clone)]
pub struct OutputLayout {
    /// The Arrow schema of the output files.
    pub schema: SchemaRef,
    /// Window geometry.
    pub spec: WindowSpec,
    /// TBPTT lanes, when rows carry `lane` and `step`.
    pub lanes: Option<Lanes>,
}

impl OutputLayout {
    /// The layout for `spec`, with `doc_id` of type `id_type` and the given
    /// carried fields (which must not include partition columns).
    pub fn new(spec: &WindowSpec, id_type: &DataType, carry: &[Field], tbptt: bool) -> Self {
        let list = |name: &str, dt: DataType| {
            Field::new(
                name,
                DataType::FixedSizeList(
                    Arc::new(Field::new("item", dt, false)),
                    spec.seq_len as i32,
                ),
                false,
            )
        };
        let token_type = match spec.dtype {
            TokenDtype::Int32 => DataType::Int32,
            TokenDtype::Int64 => DataType::Int64,
            TokenDtype::Uint16 => DataType::UInt16,
            TokenDtype::Uint32 => DataType::UInt32,
        };
        let mut fields = vec![
            list("input", token_type.clone()),
            list("target", token_type),
        ];
        for c in &spec.columns {
            fields.push(match c {
                ExtraColumn::DocId => Field::new("doc_id", id_type.clone(), true),
                ExtraColumn::Start => Field::new("start", DataType::Int64, false),
                ExtraColumn::LossMask => list("loss_mask", DataType::UInt8),
                ExtraColumn::PositionIds => list("position_ids", DataType::Int32),
                ExtraColumn::SegmentIds => list("segment_ids", DataType::Int32),
            });
        }
        if tbptt {
            fields.push(Field::new("lane", DataType::Int32, false));
            fields.push(Field::new("step", DataType::Int64, false));
        }
        fields.extend(carry.iter().cloned());
        OutputLayout {
            schema: Arc::new(Schema::new(fields)),
            spec: spec.clone(),
            lanes: None,
        }
    }
}

fn fixed_list<P: ArrowPrimitiveType>(
    field: &Field,
    values: Vec<P::Native>,
    size: usize,
) -> ArrayRef {
    let DataType::FixedSizeList(item, _) = field.data_type() else {
        unreachable!("list columns are fixed-size lists")
    };
    let values = PrimitiveArray::<P>::new(ScalarBuffer::from(values), None);
    Arc::new(FixedSizeListArray::new(
        Arc::clone(item),
        size as i32,
        Arc::new(values),
        None,
    ))
}

/// Materialises windows into a record batch of `layout.schema`.
///
/// `carry_columns` lists, for each carried output field, its index in
/// [`DocBatch::carry`].
///
/// # Errors
/// Only if Arrow refuses to interleave the carried columns (mismatched types).
pub fn materialize<T: Token>(
    windows: &[WindowRef<T>],
    layout: &OutputLayout,
    carry_columns: &[usize],
) -> Result<RecordBatch> {
    if windows.is_empty() {
        return Ok(RecordBatch::new_empty(Arc::clone(&layout.schema)));
    }
    let spec = &layout.spec;
    let l = spec.seq_len;
    let rows = windows.len();
    let pad = T::from_i64(spec.pad_id);
    let ignore = T::from_i64(spec.ignore_index);
    let mut input: Vec<T> = buffer(rows * l)?;
    let mut target: Vec<T> = buffer(rows * l)?;
    for w in windows {
        let t = &w.chunk.tokens;
        input.extend_from_slice(&t[w.offset..w.offset + w.len]);
        target.extend_from_slice(&t[w.offset + 1..w.offset + w.len + 1]);
        if w.len < l {
            input.resize(input.len() + l - w.len, pad);
            target.resize(target.len() + l - w.len, ignore);
        }
    }
    let fields = layout.schema.fields();
    let mut columns: Vec<ArrayRef> = vec![
        fixed_list::<T::Arrow>(&fields[0], input, l),
        fixed_list::<T::Arrow>(&fields[1], target, l),
    ];
    let doc_sources = || -> (Vec<&DocBatch>, Vec<(usize, usize)>) {
        let mut batches: Vec<&Arc<DocBatch>> = Vec::new();
        let mut idx = Vec::with_capacity(rows);
        for w in windows {
            let d = w.first_doc();
            let b = match batches.iter().rposition(|b| Arc::ptr_eq(b, &d.batch)) {
                Some(b) => b,
                None => {
                    batches.push(&d.batch);
                    batches.len() - 1
                }
            };
            idx.push((b, d.row));
        }
        (batches.into_iter().map(|b| b.as_ref()).collect(), idx)
    };
    let mut docs = None;
    for (k, c) in spec.columns.iter().enumerate() {
        let field = &fields[2 + k];
        columns.push(match c {
            ExtraColumn::DocId => {
                let (batches, idx) = docs.get_or_insert_with(doc_sources);
                let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.ids.as_ref()).collect();
                interleave(&arrays, idx).map_err(|e| Error::Internal(e.to_string()))?
            }
            ExtraColumn::Start => Arc::new(Int64Array::from_iter_values(
                windows.iter().map(|w| w.start as i64),
            )),
            ExtraColumn::LossMask => {
                let mut m: Vec<u8> = buffer(rows * l)?;
                for w in windows {
                    m.resize(m.len() + w.len, 1u8);
                    m.resize(m.len() + l - w.len, 0u8);
                }
                fixed_list::<arrow_array::types::UInt8Type>(field, m, l)
            }
            ExtraColumn::PositionIds | ExtraColumn::SegmentIds => {
                let positions = *c == ExtraColumn::PositionIds;
                let mut v: Vec<i32> = buffer(rows * l)?;
                for w in windows {
                    let spans = &w.chunk.spans;
                    let mut si = w.chunk.span_at(w.offset);
                    let mut seg = 0i32;
                    for j in 0..w.len {
                        let i = w.offset + j;
                        while si + 1 < spans.len() && spans[si + 1].at <= i {
                            si += 1;
                            if j > 0 {
                                seg += 1;
                            }
                        }
                        v.push(if positions {
                            (spans[si].pos0 + (i - spans[si].at) as u64) as i32
                        } else {
                            seg
                        });
                    }
                    v.resize(v.len() + l - w.len, if positions { 0 } else { -1 });
                }
                fixed_list::<Int32Type>(field, v, l)
            }
        });
    }
    if let Some(lanes) = &layout.lanes {
        columns.push(Arc::new(Int32Array::from_iter_values(
            windows.iter().map(|w| lanes.position(w.start).0 as i32),
        )));
        columns.push(Arc::new(Int64Array::from_iter_values(
            windows.iter().map(|w| lanes.position(w.start).1 as i64),
        )));
    }
    if !carry_columns.is_empty() {
        let (batches, idx) = docs.get_or_insert_with(doc_sources);
        for &c in carry_columns {
            let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.carry[c].as_ref()).collect();
            columns.push(interleave(&arrays, idx).map_err(|e| Error::Internal(e.to_string()))?);
        }
    }
    RecordBatch::try_new(Arc::clone(&layout.schema), columns)
        .map_err(|e| Error::Internal(e.to_string()))
}

/// An empty vector with room for `len` values, or [`Error::OutOfMemory`]
/// when the allocator refuses (an address-space limit, a container's memory
/// limit): the run then fails and cleans up instead of aborting.
fn buffer<V>(len: usize) -> Result<Vec<V>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| Error::OutOfMemory {
        bytes: len.saturating_mul(std::mem::size_of::<V>()) as u64,
        what: "a batch of windows",
    })?;
    Ok(v)
}
