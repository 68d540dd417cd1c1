//! Parquet encoding of the output: writer properties (encodings, statistics,
//! the `seqwin.*` metadata) and row groups encoded on any thread, the window
//! columns straight through the column writer ([`RowGroupEncoder`]).

use std::io::Write;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, SchemaRef};
use bytes::Bytes;
use parquet::arrow::arrow_writer::{
    compute_leaves, ArrowColumnChunk, ArrowRowGroupWriterFactory, ArrowWriterOptions,
};
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
use parquet::basic::{Encoding, Type as PhysicalType};
use parquet::column::writer::{ColumnCloseResult, ColumnWriterImpl};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesPtr};
use parquet::file::writer::{SerializedPageWriter, SerializedRowGroupWriter, TrackedWrite};
use parquet::schema::types::{ColumnDescPtr, ColumnPath};

use super::{Dest, WriteSettings};
use crate::error::{Error, Result};
use crate::plan::Plan;

/// Writer properties for the output files.
pub fn writer_properties(plan: &Plan, schema: &SchemaRef) -> WriterProperties {
    let w = &plan.window;
    let opt = |v: Option<i64>| v.map_or("null".to_string(), |v| v.to_string());
    let kv = vec![
        KeyValue::new("seqwin.version".into(), crate::VERSION.to_string()),
        KeyValue::new("seqwin.seq_len".into(), w.seq_len.to_string()),
        KeyValue::new("seqwin.stride".into(), w.stride.to_string()),
        KeyValue::new("seqwin.pack".into(), w.pack.to_string()),
        KeyValue::new("seqwin.separator".into(), opt(w.separator)),
        KeyValue::new(
            "seqwin.remainder".into(),
            format!("{:?}", w.remainder).to_lowercase(),
        ),
        KeyValue::new("seqwin.pad_id".into(), w.pad_id.to_string()),
        KeyValue::new("seqwin.ignore_index".into(), w.ignore_index.to_string()),
        KeyValue::new(
            "seqwin.vocab_size".into(),
            opt(w.vocab_size.map(|v| v as i64)),
        ),
        KeyValue::new("seqwin.dtype".into(), w.dtype.name().to_string()),
    ];
    let mut b = WriterProperties::builder()
        .set_compression(plan.sink.compression.columns)
        .set_dictionary_enabled(false)
        .set_statistics_enabled(EnabledStatistics::None)
        .set_key_value_metadata(Some(kv));
    // Scalar columns (doc_id, start, lane, step, carried values) are small and
    // worth statistics and dictionaries; token lists are not.
    for f in schema.fields() {
        if !matches!(f.data_type(), arrow_schema::DataType::FixedSizeList(..)) {
            let path = ColumnPath::new(vec![f.name().clone()]);
            b = b
                .set_column_dictionary_enabled(path.clone(), true)
                .set_column_statistics_enabled(path, EnabledStatistics::Chunk);
        }
    }
    // List columns: overlapping windows (stride < seq_len) repeat each other
    // shifted by `stride` values, which zstd finds only in PLAIN data (case C
    // of the benchmark: 13 MB plain vs 205 MB delta). Non-overlapping token
    // windows and the regular position/segment/mask lists are smaller and
    // faster to compress as DELTA_BINARY_PACKED (case A: 0.71 s vs 1.09 s).
    if let Ok(descr) = ArrowSchemaConverter::new().convert(schema) {
        for col in descr.columns() {
            let top = col.path().parts()[0].as_str();
            let delta = match top {
                "input" | "target" => w.stride >= w.seq_len,
                "loss_mask" | "position_ids" | "segment_ids" => true,
                _ => false,
            };
            if delta {
                // `sink.compression: auto` leaves these uncompressed: zstd
                // finds almost nothing in bit-packed deltas (Compressions).
                b = b
                    .set_column_encoding(col.path().clone(), Encoding::DELTA_BINARY_PACKED)
                    .set_column_compression(col.path().clone(), plan.sink.compression.delta_lists);
            }
        }
    }
    b.build()
}

/// The row-group encoder a run of `plan` uses for files of `schema` (the one
/// its [`WriteSettings`] hold), with [`writer_properties`].
///
/// # Errors
/// [`Error::Write`] if the writer refuses the schema or properties.
pub fn row_group_encoder(plan: &Plan, schema: &SchemaRef) -> Result<Arc<RowGroupEncoder>> {
    let settings = WriteSettings::new(
        Dest::Dir(std::path::PathBuf::new()),
        Arc::clone(schema),
        writer_properties(plan, schema),
        plan.sink.row_group_rows,
        plan.sink.max_rows_per_file as u64,
    )?;
    Ok(settings.factory)
}

/// Encodes the row groups of a run's files (on any thread): arrow-rs's
/// column writers, with the window columns written straight through them.
///
/// The window columns (`input`, `target` and the other non-null fixed-size
/// lists of 32- or 64-bit integers) are handed to the column writer as the
/// values slice with definition and repetition levels built here; arrow-rs's
/// own path computes the levels per value through a list of `usize` indices
/// and gathers the values through them (issue 19: that was a third of case
/// C's CPU). The pages, and so the bytes, are the same.
pub struct RowGroupEncoder {
    factory: ArrowRowGroupWriterFactory,
    props: WriterPropertiesPtr,
    /// The Parquet leaf columns, in order.
    leaves: Vec<ColumnDescPtr>,
}

impl RowGroupEncoder {
    /// The encoder for files of `schema` written with `props`.
    ///
    /// # Errors
    /// [`Error::Write`] if the writer refuses the schema or properties.
    pub fn try_new(schema: &SchemaRef, props: &WriterProperties) -> Result<RowGroupEncoder> {
        let err = |e: parquet::errors::ParquetError| Error::write("<output schema>", e);
        let options = ArrowWriterOptions::new().with_properties(props.clone());
        let (_, factory) =
            ArrowWriter::try_new_with_options(std::io::sink(), Arc::clone(schema), options)
                .and_then(|w| w.into_serialized_writer())
                .map_err(err)?;
        let descr = ArrowSchemaConverter::new()
            .with_coerce_types(props.coerce_types())
            .convert(schema)
            .map_err(err)?;
        Ok(RowGroupEncoder {
            factory,
            props: Arc::new(props.clone()),
            leaves: descr.columns().to_vec(),
        })
    }
}

/// One encoded column chunk, ready to append to its row group.
pub enum EncodedColumn {
    /// Encoded by arrow-rs's Arrow column path.
    Arrow(ArrowColumnChunk),
    /// A window column written straight through the column writer: the
    /// chunk's bytes (pages with their headers) and its metadata.
    Direct(Bytes, ColumnCloseResult),
}

impl EncodedColumn {
    /// Appends the chunk to `rg`.
    ///
    /// # Errors
    /// What the Parquet writer returns (I/O errors included).
    pub fn append_to_row_group<W: Write + Send>(
        self,
        rg: &mut SerializedRowGroupWriter<'_, W>,
    ) -> parquet::errors::Result<()> {
        match self {
            EncodedColumn::Arrow(c) => c.append_to_row_group(rg),
            EncodedColumn::Direct(data, close) => rg.append_column(&data, close),
        }
    }

    /// The chunk's metadata.
    pub fn close(&self) -> &ColumnCloseResult {
        match self {
            EncodedColumn::Arrow(c) => c.close(),
            EncodedColumn::Direct(_, close) => close,
        }
    }
}

/// Encodes one row group's batch into column chunks (runs on any thread).
///
/// # Errors
/// [`Error::Write`] if the encoder fails.
pub fn encode_row_group(
    encoder: &RowGroupEncoder,
    row_group: usize,
    batch: &RecordBatch,
    path_for_errors: &str,
) -> Result<Vec<EncodedColumn>> {
    let err = |e: parquet::errors::ParquetError| Error::write(path_for_errors, e);
    let writers = encoder
        .factory
        .create_column_writers(row_group)
        .map_err(err)?;
    let mut writers = writers.into_iter();
    let mut chunks = Vec::with_capacity(encoder.leaves.len());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let k = chunks.len();
        if let Some(chunk) = write_direct(encoder, &encoder.leaves[k], column).map_err(err)? {
            writers.next();
            chunks.push(EncodedColumn::Direct(chunk.0, chunk.1));
            continue;
        }
        for leaf in compute_leaves(field, column).map_err(err)? {
            let mut w = writers
                .next()
                .ok_or_else(|| Error::Internal("fewer column writers than leaves".into()))?;
            w.write(&leaf).map_err(err)?;
            chunks.push(EncodedColumn::Arrow(w.close().map_err(err)?));
        }
    }
    Ok(chunks)
}

/// Writes a non-null fixed-size list of `i32`/`i64` without nulls (one
/// Parquet leaf, levels 1/1) through the column writer; `None` for any other
/// column.
fn write_direct(
    encoder: &RowGroupEncoder,
    descr: &ColumnDescPtr,
    column: &ArrayRef,
) -> parquet::errors::Result<Option<(Bytes, ColumnCloseResult)>> {
    let Some(fsl) = column.as_fixed_size_list_opt() else {
        return Ok(None);
    };
    let size = fsl.value_length() as usize;
    let values = fsl.values();
    if fsl.null_count() > 0
        || values.null_count() > 0
        || size == 0
        || values.len() != fsl.len() * size
        || descr.max_def_level() != 1
        || descr.max_rep_level() != 1
    {
        return Ok(None);
    }
    // Definition level 1: a present list with a present item; repetition
    // level 0 starts a list, 1 continues it.
    let n = values.len();
    let def = vec![1i16; n];
    let mut rep = vec![1i16; n];
    for r in rep.iter_mut().step_by(size) {
        *r = 0;
    }
    let mut sink = TrackedWrite::new(Vec::new());
    let page_writer = Box::new(SerializedPageWriter::new(&mut sink));
    let close = match (values.data_type(), descr.physical_type()) {
        (DataType::Int32, PhysicalType::INT32) => {
            let v = values.as_primitive::<Int32Type>().values();
            let mut w = ColumnWriterImpl::<parquet::data_type::Int32Type>::new(
                Arc::clone(descr),
                Arc::clone(&encoder.props),
                page_writer,
            );
            w.write_batch(v, Some(&def), Some(&rep))?;
            w.close()?
        }
        (DataType::Int64, PhysicalType::INT64) => {
            let v = values.as_primitive::<Int64Type>().values();
            let mut w = ColumnWriterImpl::<parquet::data_type::Int64Type>::new(
                Arc::clone(descr),
                Arc::clone(&encoder.props),
                page_writer,
            );
            w.write_batch(v, Some(&def), Some(&rep))?;
            w.close()?
        }
        _ => return Ok(None),
    };
    Ok(Some((Bytes::from(sink.into_inner()?), close)))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use arrow_schema::{Field, Schema};
    use parquet::basic::{Compression, ZstdLevel};

    use super::*;
    use crate::config::PipelineConfig;

    /// The codec of each column of a run of `windows` written with `sink`.
    fn codecs(windows: &str, sink: &str) -> Vec<(&'static str, Compression)> {
        let yaml = format!("source: {{path: d, tokens: t}}\nwindows: {windows}\nsink: {sink}\n");
        let plan = Plan::try_new(
            PipelineConfig::parse_str(&yaml, Path::new("/p/p.yaml")).unwrap(),
            Path::new("/p/p.yaml"),
        )
        .unwrap();
        let list = || {
            let item = Field::new("item", DataType::Int32, false);
            DataType::FixedSizeList(Arc::new(item), 4)
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("input", list(), false),
            Field::new("target", list(), false),
            Field::new("position_ids", list(), false),
            Field::new("doc_id", DataType::Int64, false),
        ]));
        let props = writer_properties(&plan, &schema);
        let leaf = |name: &str| ColumnPath::new(vec![name.into(), "list".into(), "item".into()]);
        vec![
            ("input", props.compression(&leaf("input"))),
            ("target", props.compression(&leaf("target"))),
            ("position_ids", props.compression(&leaf("position_ids"))),
            (
                "doc_id",
                props.compression(&ColumnPath::new(vec!["doc_id".into()])),
            ),
        ]
    }

    #[test]
    fn auto_leaves_delta_lists_uncompressed_and_a_named_codec_covers_every_column() {
        let zstd = |l| Compression::ZSTD(ZstdLevel::try_new(l).unwrap());
        let none = Compression::UNCOMPRESSED;
        // Windows that do not overlap: delta-packed token lists.
        assert_eq!(
            codecs("{seq_len: 4}", "{path: out}"),
            [
                ("input", none),
                ("target", none),
                ("position_ids", none),
                ("doc_id", zstd(1))
            ]
        );
        // Overlapping windows: PLAIN token lists, which zstd shrinks.
        assert_eq!(
            codecs("{seq_len: 4, stride: 2}", "{path: out}"),
            [
                ("input", zstd(1)),
                ("target", zstd(1)),
                ("position_ids", none),
                ("doc_id", zstd(1))
            ]
        );
        assert_eq!(
            codecs("{seq_len: 4}", "{path: out, compression: 'zstd(3)'}"),
            [
                ("input", zstd(3)),
                ("target", zstd(3)),
                ("position_ids", zstd(3)),
                ("doc_id", zstd(3))
            ]
        );
        assert_eq!(
            codecs(
                "{seq_len: 4, stride: 2}",
                "{path: out, compression: snappy}"
            ),
            [
                ("input", Compression::SNAPPY),
                ("target", Compression::SNAPPY),
                ("position_ids", Compression::SNAPPY),
                ("doc_id", Compression::SNAPPY)
            ]
        );
    }
}
