//! Decoding one row group (or in-memory batch) into documents: tokens
//! checked and converted, document keys, the partition of each document,
//! and — for whole documents without packing — their windows.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_buffer::ScalarBuffer;
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::DataType;

use crate::error::{Error, Result};
use crate::plan::{Plan, SourceColumns, SplitSpec};
use crate::select::PassSelection;
use crate::source::{stream_limits, PieceBatch, PieceReader, Source, Unit};
use crate::split::DocKey;
use crate::window::WindowSpec;
use crate::window::{
    decode_tokens, document_windows, DocBatch, DocRef, Token, TokenAccount, WholeDoc, WindowRef,
};

/// What the per-unit workers need to know.
pub(super) struct Context<'a> {
    pub(super) plan: &'a Plan,
    pub(super) source: &'a Source,
    /// For each `partition_by` entry: `None` for split, or the index in carry.
    pub(super) partition_columns: Vec<(String, Option<usize>)>,
    /// Cut the windows of whole documents in the workers (off when only
    /// document lengths are wanted).
    pub(super) cut_windows: bool,
    /// A mix's passes over each source (by unit origin).
    pub(super) passes: Vec<f64>,
}

impl<'a> Context<'a> {
    pub(super) fn batch_ctx(&self) -> BatchCtx<'_> {
        BatchCtx {
            window: &self.plan.window,
            split: self.plan.split.as_ref(),
            columns: &self.plan.source.columns,
            partition_columns: &self.partition_columns,
            cut_windows: self.cut_windows,
            select: None,
        }
    }

    pub(super) fn new(plan: &'a Plan, source: &'a Source) -> Self {
        let partition_columns = partition_columns(&plan.sink.partition_by, &plan.source.columns);
        Context {
            plan,
            source,
            partition_columns,
            cut_windows: true,
            passes: Vec::new(),
        }
    }
}

/// An owned document key (flat streams compare keys across row groups).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum OwnedKey {
    Int(i64),
    Str(String),
}

/// A partition's identity.
#[derive(Debug, Clone)]
pub(crate) struct PartKey {
    pub(crate) dir: String,
    pub(crate) values: Vec<(String, Option<String>)>,
}

/// A run of one document's tokens within a prepared unit.
#[derive(Debug, Clone)]
pub(crate) struct Piece {
    pub(super) range: std::ops::Range<usize>,
    pub(super) row: usize,
    pub(super) part: usize,
    /// Flat streams: the document key (a document continues while it repeats).
    pub(super) key: Option<OwnedKey>,
    /// List columns: the piece starts its document (false when it continues
    /// the last document of the previous piece of a row group read in pieces).
    pub(super) starts: bool,
    /// List columns: the piece ends its document (false when the document
    /// may continue in the next piece).
    pub(super) ends: bool,
}

/// Windows of a unit's complete documents, per unit-local partition.
pub(crate) type WholeWindows<T> = (Vec<Vec<WindowRef<T>>>, Vec<TokenAccount>);

/// A decoded row group.
pub(crate) struct Prepared<T: Token> {
    pub(super) rows: usize,
    /// The unit's source in a mix (0 otherwise).
    pub(super) origin: usize,
    pub(super) token_count: u64,
    /// Windows cut in the worker (complete documents, no packing); then
    /// `tokens` is empty and `pieces` unused.
    pub(crate) whole: Option<WholeWindows<T>>,
    pub(crate) tokens: ScalarBuffer<T>,
    pub(super) pieces: Vec<Piece>,
    pub(crate) partitions: Vec<PartKey>,
    pub(crate) docs: Arc<DocBatch>,
}

/// Document keys of a unit.
pub(super) enum IdKeys {
    Ordinal(u64),
    Constant,
    Ints(Vec<i64>),
    Strs(StringArray),
}

impl IdKeys {
    fn key(&self, row: usize) -> DocKey<'_> {
        match self {
            IdKeys::Ordinal(base) => DocKey::Int((base + row as u64) as i64),
            IdKeys::Constant => DocKey::Int(0),
            IdKeys::Ints(v) => DocKey::Int(v[row]),
            IdKeys::Strs(s) => DocKey::Str(s.value(row)),
        }
    }
    fn owned(&self, row: usize) -> OwnedKey {
        match self.key(row) {
            DocKey::Int(v) => OwnedKey::Int(v),
            DocKey::Str(s) => OwnedKey::Str(s.to_string()),
        }
    }
    fn same(&self, a: usize, b: usize) -> bool {
        match self {
            IdKeys::Ordinal(_) => a == b,
            IdKeys::Constant => true,
            IdKeys::Ints(v) => v[a] == v[b],
            IdKeys::Strs(s) => s.value(a) == s.value(b),
        }
    }
}

pub(super) fn id_keys(column: &ArrayRef) -> std::result::Result<IdKeys, String> {
    let dt = column.data_type();
    if *dt == DataType::UInt64 {
        return Ok(IdKeys::Ints(
            column
                .as_primitive::<UInt64Type>()
                .values()
                .iter()
                .map(|&v| v as i64)
                .collect(),
        ));
    }
    if dt.is_integer() {
        let c = arrow_cast::cast::cast(column, &DataType::Int64).map_err(|e| e.to_string())?;
        return Ok(IdKeys::Ints(
            c.as_primitive::<arrow_array::types::Int64Type>()
                .values()
                .to_vec(),
        ));
    }
    let c = arrow_cast::cast::cast(column, &DataType::Utf8).map_err(|e| e.to_string())?;
    Ok(IdKeys::Strs(c.as_string::<i32>().clone()))
}

/// A decoded unit, or the next piece of a unit read in pieces and what is
/// left of it.
pub(super) struct Decoded<T: Token> {
    pub(super) prepared: Prepared<T>,
    /// The rest of a unit read in pieces ([`next_piece`] decodes it).
    pub(super) rest: Option<Box<PieceReader>>,
}

/// Decodes unit `unit_index`: whole, or — when its token column holds more
/// than [`crate::source::stream_limits`] tokens — its first piece.
pub(super) fn prepare<T: Token>(ctx: &Context<'_>, unit_index: usize) -> Result<Decoded<T>> {
    let source = ctx.source;
    let unit = &source.units[unit_index];
    let (threshold, _) = stream_limits();
    if !source.flat && unit.tokens_estimate > threshold {
        if let Some(reader) = source.open_pieces(unit)? {
            return next_piece(ctx, Box::new(reader));
        }
    }
    let batch = source.read_unit(unit)?;
    let prepared = prepare_batch(
        &BatchCtx {
            select: pass_selection(ctx, unit),
            ..ctx.batch_ctx()
        },
        &batch,
        unit.first_row,
        unit.first_ordinal,
        &source.files[unit.file].path,
    )?;
    Ok(Decoded {
        prepared: Prepared {
            origin: unit.origin,
            ..prepared
        },
        rest: None,
    })
}

/// Decodes the next piece of a unit read in pieces: its documents are
/// routed like whole ones, except that the first may continue the previous
/// piece's last document and the last may continue in the next piece. The
/// windows are cut by the partitions' windowers (never in the worker), so
/// they are the same as if the unit had been decoded whole.
pub(super) fn next_piece<T: Token>(
    ctx: &Context<'_>,
    mut reader: Box<PieceReader>,
) -> Result<Decoded<T>> {
    let source = ctx.source;
    let (_, piece_levels) = stream_limits();
    let unit = reader.unit;
    let PieceBatch {
        batch,
        first_row,
        continues,
        last,
    } = reader.next(source, piece_levels)?.ok_or_else(|| {
        Error::Internal("a row group read in pieces ended before its last piece".into())
    })?;
    let mut prepared = prepare_batch::<T>(
        &BatchCtx {
            select: pass_selection(ctx, &unit),
            cut_windows: false,
            ..ctx.batch_ctx()
        },
        &batch,
        unit.first_row + first_row as u64,
        unit.first_ordinal + first_row as u64,
        &source.files[unit.file].path,
    )?;
    let rows = batch.num_rows();
    for p in &mut prepared.pieces {
        p.starts = !(continues && p.row == 0);
        p.ends = last || p.row + 1 < rows;
    }
    prepared.origin = unit.origin;
    // Rows begun in this piece (for progress).
    prepared.rows = rows - continues as usize;
    Ok(Decoded {
        prepared,
        rest: (!last).then_some(reader),
    })
}

/// In a mix: the documents this pass over the unit's source keeps.
fn pass_selection<'a>(ctx: &'a Context<'_>, unit: &Unit) -> Option<PassSelection<'a>> {
    ctx.plan.mix.as_ref().map(|mix| PassSelection {
        seed: mix.seed,
        name: &mix.sources[unit.origin].name,
        pass: unit.pass,
        passes: ctx.passes[unit.origin],
    })
}

/// For each `partition_by` entry: its name and `None` for split, or the
/// index of the column in `columns.carry`.
pub(crate) fn partition_columns(
    partition_by: &[String],
    columns: &SourceColumns,
) -> Vec<(String, Option<usize>)> {
    partition_by
        .iter()
        .map(|p| {
            let idx = if p == "split" {
                None
            } else {
                columns.carry.iter().position(|c| c == p)
            };
            (p.clone(), idx)
        })
        .collect()
}

/// What decoding a batch needs to know: the window spec, the split, the
/// columns and the partitioning (no files, no sink).
pub(crate) struct BatchCtx<'a> {
    /// The window spec.
    pub(crate) window: &'a WindowSpec,
    /// The split, if any.
    pub(crate) split: Option<&'a SplitSpec>,
    /// The source columns (for messages).
    pub(crate) columns: &'a SourceColumns,
    /// For each `partition_by` entry: `None` for split, or the index in carry.
    pub(crate) partition_columns: &'a [(String, Option<usize>)],
    pub(crate) cut_windows: bool,
    /// In a mix: the documents this pass over the unit's source keeps.
    pub(crate) select: Option<PassSelection<'a>>,
}

/// Decodes a batch of `[tokens, id?, carry…]` rows: checks the tokens, finds
/// the documents and their partitions, and (whole documents, no packing)
/// cuts their windows. `first_row` and `path` are for messages;
/// `first_ordinal` numbers documents when there is no id column.
pub(crate) fn prepare_batch<T: Token>(
    ctx: &BatchCtx<'_>,
    batch: &RecordBatch,
    first_row: u64,
    first_ordinal: u64,
    path: &Path,
) -> Result<Prepared<T>> {
    let rows = batch.num_rows();
    let decoded = decode_tokens::<T>(
        batch.column(0).as_ref(),
        ctx.window.dtype,
        ctx.window.vocab_size,
    )
    .map_err(|e| {
        Error::input(
            path,
            format!(
                "row {} (column `{}`): {}",
                first_row + e.row() as u64,
                ctx.columns.tokens,
                e.describe()
            ),
        )
    })?;
    let has_id = ctx.columns.id.is_some();
    let id_column = has_id.then(|| Arc::clone(batch.column(1)));
    if let Some(c) = &id_column {
        if c.null_count() > 0 {
            let row = (0..c.len()).find(|&i| c.is_null(i)).unwrap_or(0);
            return Err(Error::input(
                path,
                format!(
                    "row {} (column `{}`): the document id is null",
                    first_row + row as u64,
                    ctx.columns.id.as_deref().unwrap_or_default()
                ),
            ));
        }
    }
    let keys = match &id_column {
        Some(c) => {
            id_keys(c).map_err(|m| Error::input(path, format!("cannot read the id column: {m}")))?
        }
        None if decoded.flat => IdKeys::Constant,
        None => IdKeys::Ordinal(first_ordinal),
    };
    let ids: ArrayRef = match id_column {
        Some(c) => c,
        // One document without an id: every piece starts at row 0 (one
        // constant key), so one id serves the whole batch.
        None if decoded.flat => Arc::new(Int64Array::from(vec![0i64; rows.min(1)])),
        None => Arc::new(Int64Array::from_iter_values(
            (0..rows as i64).map(|i| first_ordinal as i64 + i),
        )),
    };
    let carry: Vec<ArrayRef> = batch.columns()[1 + has_id as usize..].to_vec();

    // Pieces: one per document (list column) or per run of equal ids (flat).
    let mut pieces = Vec::new();
    if !decoded.flat {
        for r in 0..rows {
            pieces.push(Piece {
                range: decoded.offsets[r]..decoded.offsets[r + 1],
                row: r,
                part: 0,
                key: None,
                starts: true,
                ends: true,
            });
        }
    } else {
        let mut r0 = 0;
        for r in 1..=rows {
            if r == rows || !keys.same(r - 1, r) {
                pieces.push(Piece {
                    range: r0..r,
                    row: r0,
                    part: 0,
                    key: Some(keys.owned(r0)),
                    starts: true,
                    ends: true,
                });
                r0 = r;
            }
        }
    }

    if let Some(select) = &ctx.select {
        pieces.retain(|p| select.keeps(keys.key(p.row)));
    }

    // Partition of each piece.
    let mut partitions: Vec<PartKey> = Vec::new();
    if !ctx.partition_columns.is_empty() || ctx.split.is_some() {
        for (name, idx) in ctx.partition_columns {
            if let Some(i) = idx {
                crate::hive::check_value_type(carry[*i].data_type())
                    .map_err(|m| Error::input(path, format!("partition column `{name}`: {m}")))?;
            }
        }
        let formatters: Vec<Option<ArrayFormatter<'_>>> = ctx
            .partition_columns
            .iter()
            .map(|(_, idx)| {
                idx.map(|i| ArrayFormatter::try_new(carry[i].as_ref(), &FormatOptions::default()))
                    .transpose()
            })
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::input(path, format!("cannot format a partition column: {e}")))?;
        let mut local: HashMap<String, usize> = HashMap::new();
        for piece in &mut pieces {
            let r = piece.row;
            let split = ctx.split.map(|s| s.names[s.assign(keys.key(r))].clone());
            let mut values = Vec::with_capacity(ctx.partition_columns.len());
            for ((name, idx), f) in ctx.partition_columns.iter().zip(&formatters) {
                let v = match (idx, f) {
                    (Some(i), Some(f)) => (!carry[*i].is_null(r)).then(|| f.value(r).to_string()),
                    _ => split.clone(),
                };
                if let Some(v) = &v {
                    crate::hive::check_value(v).map_err(|m| {
                        Error::input(
                            path,
                            format!(
                                "row {} (partition column `{name}`): {m}",
                                first_row + r as u64
                            ),
                        )
                    })?;
                }
                values.push((name.clone(), v));
            }
            let pairs: Vec<(&str, Option<&str>)> = values
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_deref()))
                .collect();
            let dir = crate::hive::partition_dir(&pairs);
            piece.part = *local.entry(dir.clone()).or_insert_with(|| {
                partitions.push(PartKey { dir, values });
                partitions.len() - 1
            });
        }
    }
    if partitions.is_empty() {
        partitions.push(PartKey {
            dir: String::new(),
            values: Vec::new(),
        });
    }
    let doc_batch = Arc::new(DocBatch { ids, carry });
    let token_count = decoded.values.len() as u64;
    let mut tokens = decoded.values;
    let whole = if ctx.cut_windows && !decoded.flat && !ctx.window.pack {
        let docs: Vec<WholeDoc> = pieces
            .iter()
            .map(|p| WholeDoc {
                range: p.range.clone(),
                doc: DocRef {
                    batch: Arc::clone(&doc_batch),
                    row: p.row,
                },
                slot: p.part,
            })
            .collect();
        let slots = partitions.len();
        Some(document_windows(
            std::mem::replace(&mut tokens, ScalarBuffer::from(Vec::new())),
            &docs,
            slots,
            ctx.window,
        ))
    } else {
        None
    };
    Ok(Prepared {
        rows,
        origin: 0,
        token_count,
        whole,
        tokens,
        pieces,
        partitions,
        docs: doc_batch,
    })
}
