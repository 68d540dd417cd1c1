//! Reading one row group ("unit") of the projected columns, locally or
//! through range requests, as a batch of `[tokens, id?, carry…]`.

use std::fs::File;
use std::sync::Arc;

use arrow_array::{new_null_array, Array, ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use parquet::file::reader::ChunkReader;

use crate::error::{contain, Error, Result};

use super::page_stream::ByteSource;
use super::pages::TokenPages;
use super::{InputFile, Source, Unit};

impl Source {
    /// Reads one row group as a batch of [`Source::schema`].
    ///
    /// # Errors
    /// [`Error::Input`] naming the file and row group when the data cannot be
    /// decoded (corrupted or truncated file).
    pub fn read_unit(&self, unit: &Unit) -> Result<RecordBatch> {
        let f = &self.files[unit.file];
        let columns = self.read_columns(unit, true)?;
        RecordBatch::try_new(Arc::clone(&f.schema), columns)
            .map_err(|e| unit_error(f, unit, e.to_string()))
    }

    /// Opens `unit` to be read in pieces ([`PieceReader`]), when its token
    /// column is a list of 32- or 64-bit integers (`None` otherwise: read it
    /// whole). Its other columns are read whole here.
    ///
    /// # Errors
    /// As [`Source::read_unit`].
    pub(crate) fn open_pieces(&self, unit: &Unit) -> Result<Option<PieceReader>> {
        let f = &self.files[unit.file];
        let (Some(leaf), Some(element)) = (f.token_leaf, list_element(f.schema.field(0))) else {
            return Ok(None);
        };
        let corrupt = |m: String| unit_error(f, unit, m);
        let pages = contain(
            || {
                let md = f.meta.metadata();
                // An object is read on demand in blocks, not its chunk whole.
                let file: Arc<dyn ByteSource> = match &f.remote {
                    None => Arc::new(File::open(&f.path).map_err(|e| {
                        Error::input(&f.path, format!("cannot open input file: {e}"))
                    })?),
                    Some(r) => r.blocks(f),
                };
                TokenPages::try_new(file, md, unit.row_group, leaf, element).map_err(corrupt)
            },
            |m| corrupt(format!("the Parquet reader failed ({m})")),
        )?;
        let Some(pages) = pages else {
            return Ok(None);
        };
        let rest = self.read_columns(unit, false)?;
        let mut fields: Vec<Field> = vec![Field::new(
            f.schema.field(0).name(),
            DataType::LargeList(Arc::new(Field::new("item", element.clone(), true))),
            true,
        )];
        fields.extend(f.schema.fields().iter().skip(1).map(|x| x.as_ref().clone()));
        Ok(Some(PieceReader {
            unit: *unit,
            schema: Arc::new(Schema::new(fields)),
            pages,
            rest,
        }))
    }

    /// The columns `[tokens, id?, carry…]` of `unit` (without tokens unless
    /// `with_tokens`), hive and constant columns included.
    fn read_columns(&self, unit: &Unit, with_tokens: bool) -> Result<Vec<ArrayRef>> {
        let f = &self.files[unit.file];
        let path = &f.path;
        let corrupt = |m: String| unit_error(f, unit, m);
        let skip = (!with_tokens) as usize;
        contain(
            || {
                let mut sorted: Vec<usize> = f.roots[skip..].iter().flatten().copied().collect();
                sorted.sort_unstable();
                sorted.dedup();
                let batch = if sorted.is_empty() {
                    None
                } else {
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
                    Some(batch)
                };
                // Reorder to [tokens, id?, carry…], adding hive columns.
                let mut columns: Vec<ArrayRef> = Vec::with_capacity(f.roots.len());
                for (k, r) in f.roots.iter().enumerate().skip(skip) {
                    match (r, &batch) {
                        (Some(root), Some(batch)) => {
                            let pos = sorted.binary_search(root).expect("projected");
                            columns.push(Arc::clone(batch.column(pos)));
                        }
                        _ => {
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
                Ok(columns)
            },
            |m| corrupt(format!("the Parquet reader failed ({m})")),
        )
    }
}

/// The error for a row group that cannot be read.
fn unit_error(f: &InputFile, unit: &Unit, m: String) -> Error {
    Error::input(
        &f.path,
        format!(
            "row group {} (rows {}..{}) cannot be read: {m}",
            unit.row_group,
            unit.first_row,
            unit.first_row + unit.rows as u64
        ),
    )
}

/// The element type of a list token column (`None` for a flat one).
fn list_element(field: &Field) -> Option<&DataType> {
    match field.data_type() {
        DataType::List(e) | DataType::LargeList(e) | DataType::FixedSizeList(e, _) => {
            Some(e.data_type())
        }
        _ => None,
    }
}

/// A row group read in pieces: its token column page by page
/// ([`TokenPages`]), its other columns whole (one value per document).
pub(crate) struct PieceReader {
    /// The unit.
    pub(crate) unit: Unit,
    /// `[tokens (large list), id?, carry…]`.
    schema: SchemaRef,
    pages: TokenPages,
    /// `[id?, carry…]`, every row of the unit.
    rest: Vec<ArrayRef>,
}

/// One piece of a row group read in pieces.
pub(crate) struct PieceBatch {
    /// `[tokens, id?, carry…]` of the rows the piece touches.
    pub(crate) batch: RecordBatch,
    /// The row (within the row group) of the batch's first row.
    pub(crate) first_row: usize,
    /// The batch's first row continues the previous piece's last row.
    pub(crate) continues: bool,
    /// The row group's last piece: its last row ends there.
    pub(crate) last: bool,
}

impl PieceReader {
    /// The next piece of at most `max_levels` token levels (`None` after the last).
    ///
    /// # Errors
    /// [`Error::Input`] naming the file and row group when the data cannot be
    /// decoded, or holds another number of rows than its footer says.
    pub(crate) fn next(
        &mut self,
        source: &Source,
        max_levels: usize,
    ) -> Result<Option<PieceBatch>> {
        let f = &source.files[self.unit.file];
        let unit = &self.unit;
        let corrupt = |m: String| unit_error(f, unit, m);
        let piece = contain(
            || self.pages.next_piece(max_levels).map_err(corrupt),
            |m| corrupt(format!("the Parquet reader failed ({m})")),
        )?;
        let Some(piece) = piece else {
            return Ok(None);
        };
        let rows = piece.list.len();
        let decoded = self.pages.rows();
        if decoded > unit.rows || (piece.last && decoded != unit.rows) {
            return Err(corrupt(format!(
                "expected {} rows, decoded {}{decoded}",
                unit.rows,
                if piece.last { "" } else { "at least " }
            )));
        }
        let mut columns = vec![piece.list];
        columns.extend(self.rest.iter().map(|c| c.slice(piece.first_row, rows)));
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)
            .map_err(|e| corrupt(e.to_string()))?;
        Ok(Some(PieceBatch {
            batch,
            first_row: piece.first_row,
            continues: piece.continues,
            last: piece.last,
        }))
    }
}

/// Tokens decoded per batch of a row group read whole (64 Ki, about).
/// The Parquet decoder grows its value and level buffers by doubling while
/// it reads a batch; batches this small keep them under a megabyte, where
/// the allocator reuses them, and the caller concatenates the batches into
/// buffers of the exact size. Read in one batch, a row group left a chain of
/// freed doubling buffers (1, 2, 4, … MiB) in the heap each time, which
/// only smaller requests could reuse, and peak RSS grew with the length of
/// the run (`within`, 32M → 512M tokens: 80–91 → 106–120 MiB before,
/// 73–77 → 89–95 after; 256 Ki tokens measured the same, within noise).
const BATCH_TOKENS: u64 = 1 << 16;

/// Rows per batch for `unit`: about [`BATCH_TOKENS`] tokens (by the
/// footer's estimate), at least one row.
fn batch_rows(unit: &Unit) -> usize {
    let rows = unit.rows.max(1);
    if unit.tokens_estimate <= BATCH_TOKENS {
        return rows;
    }
    let share = rows as u128 * u128::from(BATCH_TOKENS) / u128::from(unit.tokens_estimate);
    usize::try_from(share).unwrap_or(rows).clamp(1, rows)
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
        .with_batch_size(batch_rows(unit))
        .build()
        .map_err(|e| e.to_string())?;
    reader.map(|b| b.map_err(|e| e.to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(rows: usize, tokens_estimate: u64) -> Unit {
        Unit {
            file: 0,
            row_group: 0,
            rows,
            first_row: 0,
            first_ordinal: 0,
            tokens_estimate,
            origin: 0,
            pass: 0,
        }
    }

    #[test]
    fn row_groups_are_decoded_in_batches_of_about_64_ki_tokens() {
        let cases = [
            // (rows, estimated tokens, rows per batch)
            (600, 600_000, 65),          // documents of ~1,000 tokens
            (1 << 20, 1 << 20, 1 << 16), // a flat column: one token a row
            (600, 65_536, 600),          // small enough for one batch
            (0, 0, 1),                   // an empty row group
            (3, 300_000_000, 1),         // documents longer than a batch
            (10, u64::MAX, 1),           // no overflow on absurd estimates
        ];
        for (rows, tokens, expected) in cases {
            assert_eq!(
                batch_rows(&unit(rows, tokens)),
                expected,
                "{rows} rows, {tokens} tokens"
            );
        }
    }
}
