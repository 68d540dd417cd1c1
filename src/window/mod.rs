//! The window kernel (docs/format.md §1): token streams in, `input`/`target`
//! windows out. No I/O happens here.
//!
//! The pipeline feeds documents into one [`Windower`] per output partition;
//! the windower appends their tokens to a buffer, records which window starts
//! are complete, and on [`Windower::seal`] freezes the buffer into a shared
//! [`Chunk`] that the finished windows point into. Windows are materialised
//! into Arrow arrays later, in parallel, by [`materialize`].
//!
//! ```text
//!   stream   t0 t1 t2 t3 t4 t5 t6 t7 t8 t9          seq_len 4, stride 4
//!   window 0 [t0 t1 t2 t3]                          input
//!             [t1 t2 t3 t4]                         target
//!   window 1             [t4 t5 t6 t7]              input
//!                         [t5 t6 t7 t8]             target
//!   t9 is never a target (dropped remainder) unless remainder = pad:
//!   window 2                         [t8 pad pad pad]   input
//!                                     [t9 ign ign ign]  target
//! ```
//!
//! Without packing every document is its own stream; with packing the
//! documents of a partition (each followed by the separator, if any) form one
//! stream. [`windows`] runs the same machinery over one Arrow array and is the
//! library's public kernel.

mod account;
mod cut;
mod decode;
pub mod geometry;
mod materialize;
mod spec;
#[cfg(test)]
mod tests;

pub use account::TokenAccount;
pub use cut::{
    compact, document_windows, Chunk, DocBatch, DocRef, Starts, WholeDoc, WindowRef, Windower,
};
pub use decode::{decode_tokens, is_token_column, DecodedTokens, Token, TokenError};
pub use geometry::{Counts, Geometry, Lanes};
pub use materialize::{materialize, OutputLayout};
pub use spec::{
    ExtraColumn, Remainder, TokenDtype, WindowSpec, DEFAULT_IGNORE_INDEX, DEFAULT_PAD_ID,
};

use std::sync::Arc;

use arrow_array::{Array, Int64Array, RecordBatch};
use arrow_schema::DataType;

use crate::error::{Error, Result};

/// Windows of one array of documents: the library's pure kernel.
///
/// `tokens` is a list array (one document per row, any integer width, `List`,
/// `LargeList` or `FixedSizeList`) or a plain integer array (one document).
/// The result has the columns of docs/format.md §2.1 for `spec`; `doc_id` is the row
/// index of the window's (first) document in `tokens`. With `spec.pack`, the
/// documents are packed into one stream.
///
/// # Errors
/// [`Error::Input`] naming the row for a null document or token, a negative
/// token, one `>= vocab_size` or one that does not fit `spec.dtype`.
///
/// # Example
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Array, ListArray};
/// use arrow_array::cast::AsArray;
/// use arrow_array::types::{Int32Type, Int64Type};
/// use seqwin::window::WindowSpec;
///
/// // "helloworld", a=1 … z=26
/// let docs = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![Some(
///     [8, 5, 12, 12, 15, 23, 15, 18, 12, 4].map(Some),
/// )]);
/// let mut spec = WindowSpec::new(4);
/// spec.stride = 1;
/// let batch = seqwin::window::windows(&docs, &spec).unwrap();
/// assert_eq!(batch.num_rows(), 6);
/// let input = batch.column(0).as_fixed_size_list();
/// let first = input.value(0);
/// assert_eq!(first.as_primitive::<Int32Type>().values(), &[8, 5, 12, 12]);
/// let target = batch.column(1).as_fixed_size_list();
/// let first = target.value(0);
/// assert_eq!(first.as_primitive::<Int32Type>().values(), &[5, 12, 12, 15]);
/// ```
pub fn windows(tokens: &dyn Array, spec: &WindowSpec) -> Result<RecordBatch> {
    match spec.dtype {
        TokenDtype::Int32 => windows_typed::<i32>(tokens, spec),
        TokenDtype::Int64 => windows_typed::<i64>(tokens, spec),
        TokenDtype::Uint16 => windows_typed::<u16>(tokens, spec),
        TokenDtype::Uint32 => windows_typed::<u32>(tokens, spec),
    }
}

fn windows_typed<T: Token>(tokens: &dyn Array, spec: &WindowSpec) -> Result<RecordBatch> {
    let mut problems = Vec::new();
    spec.validate(&mut problems);
    if spec.seq_len == 0 || spec.stride == 0 {
        problems.push("seq_len and stride must be at least 1".into());
    }
    if !problems.is_empty() {
        return Err(Error::ConfigInvalid {
            path: "<window spec>".into(),
            problems,
        });
    }
    let decoded = decode_tokens::<T>(tokens, spec.dtype, spec.vocab_size)
        .map_err(|e| Error::input("<array>", e.to_string()))?;
    let docs = if decoded.flat {
        1
    } else {
        decoded.offsets.len() - 1
    };
    let batch = Arc::new(DocBatch {
        ids: Arc::new(Int64Array::from_iter_values(0..docs as i64)),
        carry: Vec::new(),
    });
    let layout = OutputLayout::new(spec, &DataType::Int64, &[], false);
    if !decoded.flat && !spec.pack {
        let docs: Vec<WholeDoc> = (0..docs)
            .map(|d| WholeDoc {
                range: decoded.offsets[d]..decoded.offsets[d + 1],
                doc: DocRef {
                    batch: Arc::clone(&batch),
                    row: d,
                },
                slot: 0,
            })
            .collect();
        let (mut windows, _) = document_windows(decoded.values, &docs, 1, spec);
        return materialize(&windows.swap_remove(0), &layout, &[]);
    }
    let mut w = Windower::<T>::new(spec, Starts::Uniform);
    if decoded.flat {
        w.begin_doc(DocRef { batch, row: 0 });
        w.extend(&decoded.values);
        w.end_doc();
    } else {
        for d in 0..docs {
            w.begin_doc(DocRef {
                batch: Arc::clone(&batch),
                row: d,
            });
            w.extend(&decoded.values[decoded.offsets[d]..decoded.offsets[d + 1]]);
            w.end_doc();
        }
    }
    w.finish();
    materialize(&w.take_ready(), &layout, &[])
}
