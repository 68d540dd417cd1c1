//! The window kernel on a Polars `DataFrame` (cargo feature `polars`).
//!
//! Columns cross between Polars (`polars-arrow`) and arrow-rs through the
//! Arrow C Data Interface: each chunk is exported by Polars and imported by
//! arrow-rs without copying its buffers, and the windows go back the same
//! way. The one copy is the kernel's: each window's tokens into the output's
//! `input`/`target` buffers. `input` and `target` come back as Polars
//! `Array(dtype, seq_len)` columns.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use seqwin::stream::StreamConfig;
//! # let df = polars_core::prelude::DataFrame::empty();
//! let config: StreamConfig = serde_json::from_str(
//!     r#"{"tokens": "tokens", "id": "doc_id", "windows": {"seq_len": 1024, "columns": ["doc_id", "start"]}}"#,
//! )?;
//! let windows = seqwin::polars::windows(&df, &config)?;
//! # Ok(()) }
//! ```

use std::sync::Arc;

use arrow_array::ffi::{FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::{make_array, ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema};
use polars_arrow::ffi as pffi;
use polars_core::prelude::{Column, CompatLevel, DataFrame, Series};

use crate::error::{Error, Result};
use crate::stream::{StreamConfig, StreamWindower};

fn ffi_error(m: impl std::fmt::Display) -> Error {
    Error::input(
        "polars DataFrame",
        format!("cannot exchange a column with Polars: {m}"),
    )
}

/// A Polars array as an arrow-rs array, sharing its buffers.
fn to_arrow_rs(
    array: Box<dyn polars_arrow::array::Array>,
    field: &polars_arrow::datatypes::Field,
) -> Result<(Field, ArrayRef)> {
    let c_array = pffi::export_array_to_c(array);
    let c_schema = pffi::export_field_to_c(field);
    // SAFETY: both types are `#[repr(C)]` definitions of the C Data
    // Interface's `ArrowArray` / `ArrowSchema` (same size, checked by
    // `transmute`); ownership moves with the release callbacks.
    let (c_array, c_schema) = unsafe {
        (
            std::mem::transmute::<pffi::ArrowArray, FFI_ArrowArray>(c_array),
            std::mem::transmute::<pffi::ArrowSchema, FFI_ArrowSchema>(c_schema),
        )
    };
    let field = Field::try_from(&c_schema).map_err(ffi_error)?;
    // SAFETY: `c_array` was exported for exactly this schema.
    let data = unsafe { arrow_array::ffi::from_ffi(c_array, &c_schema) }.map_err(ffi_error)?;
    Ok((field, make_array(data)))
}

/// An arrow-rs array as a Polars series, sharing its buffers.
fn to_polars(name: &str, array: &ArrayRef) -> Result<Series> {
    let (c_array, c_schema) = arrow_array::ffi::to_ffi(&array.to_data()).map_err(ffi_error)?;
    // SAFETY: as in `to_arrow_rs`, in the other direction.
    let (c_array, c_schema) = unsafe {
        (
            std::mem::transmute::<FFI_ArrowArray, pffi::ArrowArray>(c_array),
            std::mem::transmute::<FFI_ArrowSchema, pffi::ArrowSchema>(c_schema),
        )
    };
    // SAFETY: the schema and array come from arrow-rs' exporter.
    let field = unsafe { pffi::import_field_from_c(&c_schema) }.map_err(ffi_error)?;
    let imported =
        unsafe { pffi::import_array_from_c(c_array, field.dtype().clone()) }.map_err(ffi_error)?;
    Series::from_arrow(name.into(), imported).map_err(ffi_error)
}

/// Windows every row of `df` (see [`crate::stream`] for the semantics and
/// the output columns).
///
/// # Errors
/// As [`StreamWindower::new`] and [`StreamWindower::push`]: configuration
/// problems naming the key, missing columns, bad tokens naming the row.
pub fn windows(df: &DataFrame, config: &StreamConfig) -> Result<DataFrame> {
    let mut df = df.clone();
    df.align_chunks();
    let mut windower: Option<StreamWindower> = None;
    let mut out: Vec<RecordBatch> = Vec::new();
    for chunk in df.iter_chunks(CompatLevel::newest(), false) {
        let fields: Vec<polars_arrow::datatypes::Field> =
            chunk.schema().iter_values().cloned().collect();
        let mut arrow_fields = Vec::with_capacity(fields.len());
        let mut columns = Vec::with_capacity(fields.len());
        for (array, field) in chunk.into_arrays().into_iter().zip(&fields) {
            let (f, a) = to_arrow_rs(array, field)?;
            arrow_fields.push(f);
            columns.push(a);
        }
        let schema = Arc::new(Schema::new(arrow_fields));
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns).map_err(ffi_error)?;
        if windower.is_none() {
            windower = Some(StreamWindower::new(config, &schema)?);
        }
        out.extend(windower.as_mut().expect("created").push(&batch)?);
    }
    // A frame with columns always yields at least one (possibly empty) chunk;
    // one without columns has no token column, which `new` reports.
    let mut windower = match windower {
        Some(w) => w,
        None => StreamWindower::new(config, &Schema::empty())?,
    };
    out.extend(windower.finish()?);
    let schema = windower.schema();
    if out.is_empty() {
        out.push(RecordBatch::new_empty(Arc::clone(&schema)));
    }
    // One Polars chunk per output batch: appending chunks copies nothing.
    let rows = out.iter().map(RecordBatch::num_rows).sum();
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (i, f) in schema.fields().iter().enumerate() {
        let mut series = to_polars(f.name(), out[0].column(i))?;
        for b in &out[1..] {
            series
                .append(&to_polars(f.name(), b.column(i))?)
                .map_err(ffi_error)?;
        }
        columns.push(Column::from(series));
    }
    DataFrame::new(rows, columns).map_err(ffi_error)
}
