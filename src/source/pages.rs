//! Reading a row group's token column page by page, for row groups too
//! large to decode at once: one document of 200M tokens is one list value,
//! and the Arrow list reader materialises a whole row.
//!
//! The token leaf column's pages are walked here (header by header,
//! [`super::page_header`]) and each page is read as streams of its bytes,
//! decompressed as they are read ([`super::page_stream`]): a data page's
//! repetition levels, definition levels and values each have their own
//! stream, and a bounded number of levels is decoded at a time. So neither
//! a page's compressed bytes nor its decompressed ones are held whole — a
//! document stored as one page (arrow-rs and pyarrow write a one-row
//! document so) needs the same memory at any length. Repetition level 0
//! starts a new row (document); definition levels tell a null list, an
//! empty list, a null token and a token apart. Each piece becomes a list
//! array of the rows it touches, the first of which may continue the
//! previous piece's last row:
//!
//! ```text
//!   levels    | row 7 ............ | row 8 ... | row 9 ....................
//!   pieces    [ piece k      ][ piece k+1         ][ piece k+2      ]
//!   piece k+1 = list [ tail of row 7 (continues), row 8, head of row 9 ]
//! ```
//!
//! Page checksums are not verified on this path.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, Int16Array, Int32Array, Int64Array, Int8Array, LargeListArray, UInt16Array,
    UInt32Array, UInt64Array, UInt8Array,
};
use arrow_buffer::{BooleanBufferBuilder, NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, Field};
use bytes::Bytes;
use parquet::basic::{Compression, Encoding, Repetition, Type as PhysicalType};
use parquet::file::metadata::ParquetMetaData;
use parquet::schema::types::SchemaDescriptor;

use super::page_decode::{supported, Delta, Hybrid, PageValues};
use super::page_header::{read_page_header, PageKind};
use super::page_stream::{decompress, streamable, ByteSource, RangeRead, Stream};

/// Row groups whose token column holds more values than this are read page
/// by page in pieces instead of whole (32 MiB of int32 tokens): a row group
/// decoded whole needs several times its token bytes at once.
pub const STREAM_ABOVE_TOKENS: u64 = 8 << 20;

/// Page headers longer than this (1 MiB; statistics of integers take some
/// bytes) are refused.
const MAX_HEADER: u64 = 1 << 20;

/// Dictionary entries accepted in a chunk read in pieces (128 MiB decoded):
/// token ids number at most a few million.
const MAX_DICTIONARY: usize = 1 << 24;

/// Levels (about tokens) per piece of a row group read page by page.
pub const PIECE_TOKENS: usize = 1 << 20;

/// Test knob, not a setting: `SEQWIN_STREAM_TOKENS=N` reads row groups of
/// more than `N` tokens page by page, in pieces of `min(N, PIECE_TOKENS)`
/// levels (default [`STREAM_ABOVE_TOKENS`]). The output is the same at any
/// value; tests lower it to run small corpora through the piecewise path.
pub const STREAM_TOKENS_ENV: &str = "SEQWIN_STREAM_TOKENS";

/// `(threshold, piece levels)`: see [`STREAM_TOKENS_ENV`].
pub(crate) fn stream_limits() -> (u64, usize) {
    static LIMITS: std::sync::OnceLock<(u64, usize)> = std::sync::OnceLock::new();
    *LIMITS.get_or_init(|| {
        let threshold = std::env::var(STREAM_TOKENS_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(STREAM_ABOVE_TOKENS);
        let piece = threshold.clamp(1, PIECE_TOKENS as u64) as usize;
        (threshold, piece)
    })
}

/// The definition levels of a list column: below `list` the list is null,
/// below `slot` it is empty, below `value` the token is null.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ListLevels {
    list: u16,
    slot: u16,
    value: u16,
}

/// The definition levels of leaf `leaf` when it is the only leaf of a list
/// column (`None` otherwise: nested lists, or not a list).
fn list_levels(descr: &SchemaDescriptor, leaf: usize) -> Option<ListLevels> {
    let col = descr.column(leaf);
    if col.max_rep_level() != 1 {
        return None;
    }
    let mut node = descr.get_column_root(leaf);
    let mut def = 0u16;
    let mut list = 0;
    let mut slot = None;
    for (i, name) in col.path().parts().iter().enumerate() {
        if i > 0 {
            node = node.get_fields().iter().find(|f| f.name() == name)?;
        }
        let info = node.get_basic_info();
        if !info.has_repetition() {
            return None;
        }
        match info.repetition() {
            Repetition::REQUIRED => {}
            Repetition::OPTIONAL => {
                def += 1;
                if i == 0 {
                    list = def;
                }
            }
            Repetition::REPEATED => {
                def += 1;
                slot.get_or_insert(def);
            }
        }
    }
    (i32::from(def) == i32::from(col.max_def_level())).then_some(ListLevels {
        list,
        slot: slot?,
        value: def,
    })
}

/// One piece of a row group's token column.
#[derive(Debug)]
pub(crate) struct TokenPiece {
    /// The rows the piece touches, as a list array of the element type.
    pub(crate) list: ArrayRef,
    /// The row (within the row group) of the list's first entry.
    pub(crate) first_row: usize,
    /// The first entry continues the previous piece's last row.
    pub(crate) continues: bool,
    /// The last piece of the row group.
    pub(crate) last: bool,
}

/// A row group's token column, read page by page.
pub(crate) struct TokenPages {
    file: Arc<dyn ByteSource>,
    codec: Compression,
    /// The next page's offset and the end of the column chunk.
    next: u64,
    end: u64,
    levels: ListLevels,
    element: DataType,
    /// Bytes of a physical value (4 or 8).
    width: usize,
    /// The chunk's dictionary, when it has one.
    dictionary: Vec<i64>,
    /// Decoders of the current page and the levels left in it.
    rep_decoder: Hybrid,
    def_decoder: Hybrid,
    decoder: Option<PageValues>,
    left: usize,
    /// Decoded levels and values not yet handed out.
    def: Vec<u16>,
    rep: Vec<u16>,
    values: Vec<i64>,
    exhausted: bool,
    /// Rows begun so far.
    rows: usize,
    scratch: Vec<u64>,
}

impl TokenPages {
    /// The token leaf `leaf` of row group `row_group`, whose list elements
    /// are of Arrow type `element`; `None` when the leaf is not the one leaf
    /// of a list of 32- or 64-bit integers, or its chunk uses an encoding
    /// other than plain, dictionary, delta and RLE levels, or a codec other than
    /// snappy, gzip, zstd and LZ4_RAW (the caller reads the row group whole
    /// then).
    pub(crate) fn try_new(
        reader: Arc<dyn ByteSource>,
        meta: &ParquetMetaData,
        row_group: usize,
        leaf: usize,
        element: &DataType,
    ) -> Result<Option<TokenPages>, String> {
        let descr = meta.file_metadata().schema_descr();
        let Some(levels) = list_levels(descr, leaf) else {
            return Ok(None);
        };
        let rg = meta.row_group(row_group);
        let chunk = rg.column(leaf);
        let width = match chunk.column_type() {
            PhysicalType::INT32 => 4,
            PhysicalType::INT64 => 8,
            _ => return Ok(None),
        };
        if !chunk.encodings().all(supported) || !streamable(chunk.compression()) {
            return Ok(None);
        }
        let (start, len) = chunk.byte_range();
        Ok(Some(TokenPages {
            file: reader,
            codec: chunk.compression(),
            next: start,
            end: start + len,
            levels,
            element: element.clone(),
            width,
            dictionary: Vec::new(),
            rep_decoder: Hybrid::new(Stream::of(Bytes::new()), 1),
            def_decoder: Hybrid::new(Stream::of(Bytes::new()), 1),
            decoder: None,
            left: 0,
            def: Vec::new(),
            rep: Vec::new(),
            values: Vec::new(),
            exhausted: false,
            rows: 0,
            scratch: Vec::new(),
        }))
    }

    /// Rows begun so far (all of the row group's once the last piece is out).
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// A stream of the page bytes `[from, to)` (compressed if `compressed`)
    /// that decode to about `size` bytes.
    fn stream(&self, from: u64, to: u64, compressed: bool, size: u64) -> Result<Stream, String> {
        let raw = RangeRead::new(Arc::clone(&self.file), from, to, (to - from) as usize);
        let src = if compressed {
            decompress(self.codec, raw)?
        } else {
            Box::new(raw) as Box<dyn std::io::Read + Send>
        };
        Ok(Stream::new(src, size.min(usize::MAX as u64) as usize))
    }

    /// Moves to the next data page with levels; false at the end.
    fn next_page(&mut self) -> Result<bool, String> {
        while self.next < self.end {
            // A header is some tens of bytes: read 1 KiB, more if it is longer.
            let left = self.end - self.next;
            let mut n = left.min(1 << 10);
            let header = loop {
                let bytes = self.file.bytes(self.next, n as usize)?;
                match read_page_header(&bytes) {
                    Err(_) if n < left && n < MAX_HEADER => n = left.min(n * 8),
                    header => break header?,
                }
            };
            let data = self.next + header.header_len;
            let end = data
                .checked_add(header.compressed_size)
                .filter(|&e| e <= self.end)
                .ok_or("a page runs past its column chunk")?;
            self.next = end;
            let def_bits = (16 - self.levels.value.leading_zeros()) as u8;
            let (encoding, values) = match header.kind {
                PageKind::Other
                | PageKind::DataV1 { values: 0, .. }
                | PageKind::DataV2 { values: 0, .. } => continue,
                PageKind::Dictionary { values } if values > MAX_DICTIONARY => {
                    return Err(format!(
                        "a dictionary of {values} values (more than {MAX_DICTIONARY})"
                    ));
                }
                PageKind::Dictionary { values } => {
                    let mut src = self.stream(data, end, true, header.uncompressed_size)?;
                    src.limit(header.uncompressed_size);
                    let mut plain = PageValues::Plain {
                        src,
                        width: self.width,
                    };
                    self.dictionary.clear();
                    plain.read(values, &[], &mut self.dictionary)?;
                    continue;
                }
                PageKind::DataV1 {
                    values,
                    encoding,
                    def_encoding,
                    rep_encoding,
                } => {
                    for e in [rep_encoding, def_encoding] {
                        if e != Encoding::RLE {
                            return Err(format!("levels encoded as {e} cannot be read in pieces"));
                        }
                    }
                    // Three streams of the one page: repetition levels (a
                    // length first), definition levels (a length first), values.
                    let short = "a data page's levels run past its end";
                    let size = header.uncompressed_size;
                    let mut rep = self.stream(data, end, true, size)?;
                    rep.limit(header.uncompressed_size);
                    let r = rep.u32(short)?;
                    rep.limit(u64::from(r));
                    let mut def = self.stream(data, end, true, size)?;
                    def.limit(header.uncompressed_size);
                    def.skip(4 + u64::from(r), short)?;
                    let d = def.u32(short)?;
                    def.limit(u64::from(d));
                    let mut vals = self.stream(data, end, true, size)?;
                    vals.limit(header.uncompressed_size);
                    vals.skip(8 + u64::from(r) + u64::from(d), short)?;
                    self.rep_decoder = Hybrid::new(rep, 1);
                    self.def_decoder = Hybrid::new(def, def_bits);
                    (encoding, (vals, values))
                }
                PageKind::DataV2 {
                    values,
                    encoding,
                    def_bytes,
                    rep_bytes,
                    compressed,
                } => {
                    let levels_end = (data + rep_bytes + def_bytes).min(end);
                    if data + rep_bytes + def_bytes > end {
                        return Err("a data page's levels run past its end".into());
                    }
                    let rep = self.stream(data, data + rep_bytes, false, rep_bytes)?;
                    let def = self.stream(data + rep_bytes, levels_end, false, def_bytes)?;
                    let size = header
                        .uncompressed_size
                        .saturating_sub(rep_bytes + def_bytes);
                    let vals = self.stream(levels_end, end, compressed, size)?;
                    self.rep_decoder = Hybrid::new(rep, 1);
                    self.def_decoder = Hybrid::new(def, def_bits);
                    (encoding, (vals, values))
                }
            };
            let (mut vals, levels) = values;
            self.decoder = Some(match encoding {
                Encoding::PLAIN => PageValues::Plain {
                    src: vals,
                    width: self.width,
                },
                Encoding::PLAIN_DICTIONARY | Encoding::RLE_DICTIONARY => {
                    let bits = (vals.byte()?)
                        .ok_or_else(|| "a dictionary-encoded page has no bit width".to_string())?;
                    if bits > 32 {
                        return Err(format!("dictionary indices of {bits} bits"));
                    }
                    PageValues::Dictionary(Hybrid::new(vals, bits))
                }
                Encoding::DELTA_BINARY_PACKED => PageValues::Delta(Delta::new(vals, self.width)?),
                other => {
                    return Err(format!(
                        "values encoded as {other} cannot be read in pieces"
                    ))
                }
            });
            self.left = levels;
            return Ok(true);
        }
        Ok(false)
    }

    /// Decodes up to `n` more levels (and their values) of the current page.
    fn decode(&mut self, n: usize) -> Result<(), String> {
        let n = n.min(self.left);
        let value = self.levels.value;
        self.scratch.clear();
        self.def_decoder.read(n, &mut self.scratch)?;
        if let Some(bad) = self.scratch.iter().find(|&&d| d > u64::from(value)) {
            return Err(format!(
                "definition level {bad} is above the column's maximum {value}"
            ));
        }
        self.def.extend(self.scratch.iter().map(|&d| d as u16));
        let count = self
            .scratch
            .iter()
            .filter(|&&d| d == u64::from(value))
            .count();
        self.scratch.clear();
        self.rep_decoder.read(n, &mut self.scratch)?;
        if let Some(bad) = self.scratch.iter().find(|&&r| r > 1) {
            return Err(format!(
                "repetition level {bad} is above the column's maximum 1"
            ));
        }
        self.rep.extend(self.scratch.iter().map(|&r| r as u16));
        let decoder =
            (self.decoder.as_mut()).ok_or_else(|| "no data page to decode".to_string())?;
        decoder.read(count, &self.dictionary, &mut self.values)?;
        self.left -= n;
        Ok(())
    }

    /// The next piece of at most `max_levels` levels (at least one), or
    /// `None` after the last.
    pub(crate) fn next_piece(&mut self, max_levels: usize) -> Result<Option<TokenPiece>, String> {
        let max_levels = max_levels.max(1);
        // One level more than the piece: then a piece that is not the last is known.
        while !self.exhausted && self.def.len() <= max_levels {
            if self.left == 0 && !self.next_page()? {
                self.exhausted = true;
                break;
            }
            self.decode(max_levels + 1 - self.def.len())?;
        }
        if self.def.is_empty() {
            return Ok(None);
        }
        let n = self.def.len().min(max_levels);
        let def: Vec<u16> = self.def.drain(..n).collect();
        let rep: Vec<u16> = self.rep.drain(..n).collect();
        let ListLevels { list, slot, value } = self.levels;
        let values = def.iter().filter(|&&d| d == value).count();
        let continues = rep[0] != 0;
        if continues && self.rows == 0 {
            return Err("the token column's first value continues a row that never began".into());
        }
        let first_row = if continues { self.rows - 1 } else { self.rows };
        let entries = rep.iter().filter(|&&r| r == 0).count() + continues as usize;
        let mut offsets: Vec<i64> = Vec::with_capacity(entries + 1);
        let mut list_valid = BooleanBufferBuilder::new(entries);
        let mut slot_valid = BooleanBufferBuilder::new(n);
        let mut slots = 0i64;
        if continues {
            offsets.push(0);
            list_valid.append(true);
        }
        for (&d, &r) in def.iter().zip(&rep) {
            if r == 0 {
                offsets.push(slots);
                list_valid.append(d >= list);
                self.rows += 1;
            }
            if d >= slot {
                slots += 1;
                slot_valid.append(d == value);
            }
        }
        offsets.push(slots);
        let slot_nulls = NullBuffer::new(slot_valid.finish());
        let list_nulls = NullBuffer::new(list_valid.finish());
        // Tokens of the piece, null slots as zeros, in the element type.
        let mut k = 0;
        macro_rules! spread {
            ($values:expr, $array:ty, $native:ty) => {{
                let taken: Vec<_> = $values.drain(..values).collect();
                let spread: Vec<$native> = slot_nulls
                    .iter()
                    .map(|valid| {
                        if valid {
                            k += 1;
                            taken[k - 1] as $native
                        } else {
                            0
                        }
                    })
                    .collect();
                Arc::new(<$array>::new(spread.into(), Some(slot_nulls.clone()))) as ArrayRef
            }};
        }
        let v = &mut self.values;
        let tokens = match (self.width, &self.element) {
            (4, DataType::Int8) => spread!(v, Int8Array, i8),
            (4, DataType::Int16) => spread!(v, Int16Array, i16),
            (4, DataType::Int32) => spread!(v, Int32Array, i32),
            (4, DataType::UInt8) => spread!(v, UInt8Array, u8),
            (4, DataType::UInt16) => spread!(v, UInt16Array, u16),
            // An unsigned 32-bit value is stored in an INT32's bits.
            (4, DataType::UInt32) => spread!(v, UInt32Array, u32),
            (8, DataType::Int64) => spread!(v, Int64Array, i64),
            (8, DataType::UInt64) => spread!(v, UInt64Array, u64),
            (_, other) => {
                return Err(format!(
                "the token column's values are stored in a different width than its type {other}"
            ))
            }
        };
        let field = Arc::new(Field::new("item", self.element.clone(), true));
        let list = LargeListArray::try_new(
            field,
            OffsetBuffer::new(offsets.into()),
            tokens,
            Some(list_nulls),
        )
        .map_err(|e| e.to_string())?;
        Ok(Some(TokenPiece {
            list: Arc::new(list),
            first_row,
            continues,
            last: self.exhausted && self.def.is_empty(),
        }))
    }
}
