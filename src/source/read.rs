//! Reading one row group ("unit") of the projected columns, locally or
//! through range requests, as a batch of `[tokens, id?, carry…]`.

use std::fs::File;
use std::sync::Arc;

use arrow_array::{new_null_array, ArrayRef, RecordBatch, StringArray};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use parquet::file::reader::ChunkReader;

use crate::error::{contain, Error, Result};

use super::{InputFile, Source, Unit};

impl Source {
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
                    Some(r) => r.read_row_group(f, unit, &sorted)?.map_err(corrupt)?,
                };
                if batches.is_empty() {
                    return Err(corrupt("no rows decoded".into()));
                }
                let batch = if batches.len() == 1 {
                    batches.pop().expect("one batch")
                } else {
                    arrow_select::concat::concat_batches(&batches[0].schema(), &batches)
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
                RecordBatch::try_new(Arc::clone(&f.schema), columns)
                    .map_err(|e| corrupt(e.to_string()))
            },
            |m| corrupt(format!("the Parquet reader failed ({m})")),
        )
    }
}

/// Decodes the projected columns (`roots`, sorted) of one row group.
pub(super) fn decode_row_group<R: ChunkReader + 'static>(
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
