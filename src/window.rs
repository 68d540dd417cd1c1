//! The window kernel (SPEC §3.1–§3.3): token streams in, `input`/`target`
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

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, FixedSizeListArray, Int32Array, Int64Array, PrimitiveArray, RecordBatch,
};
use arrow::buffer::ScalarBuffer;
use arrow::compute::interleave;
use arrow::datatypes::{
    ArrowNativeType, ArrowPrimitiveType, DataType, Field, Int32Type, Int64Type, Schema, SchemaRef,
    UInt16Type, UInt32Type,
};

use crate::config::{ExtraColumn, Remainder, TokenDtype};
use crate::error::{Error, Result};
use crate::plan::WindowSpec;

/// A token element type of the output (`windows.dtype`).
pub trait Token: ArrowNativeType + Copy + Send + Sync + 'static {
    /// The Arrow type of the output arrays.
    type Arrow: ArrowPrimitiveType<Native = Self>;
    /// Converts a value already checked to fit.
    fn from_i64(v: i64) -> Self;
}

macro_rules! token {
    ($t:ty, $arrow:ty) => {
        impl Token for $t {
            type Arrow = $arrow;
            #[inline]
            fn from_i64(v: i64) -> Self {
                v as $t
            }
        }
    };
}
token!(i32, Int32Type);
token!(i64, Int64Type);
token!(u16, UInt16Type);
token!(u32, UInt32Type);

/// Per-document values shared by the documents of one input batch: the
/// `doc_id` column and the carried columns, one row per document.
#[derive(Debug)]
pub struct DocBatch {
    /// Document ids (the id column, or int64 ordinals).
    pub ids: ArrayRef,
    /// Carried columns, in `source.carry` order.
    pub carry: Vec<ArrayRef>,
}

/// A document: a row of a [`DocBatch`].
#[derive(Debug, Clone)]
pub struct DocRef {
    /// The batch holding the document's id and carried values.
    pub batch: Arc<DocBatch>,
    /// The document's row in it.
    pub row: usize,
}

/// A run of a chunk's tokens that belongs to one document.
#[derive(Debug, Clone)]
struct DocSpan {
    /// Index in the chunk of the run's first token.
    at: usize,
    /// Position of that token within its document.
    pos0: u64,
    doc: DocRef,
}

/// Frozen tokens that windows point into.
#[derive(Debug)]
pub struct Chunk<T: ArrowNativeType> {
    tokens: ScalarBuffer<T>,
    spans: Vec<DocSpan>,
}

impl<T: ArrowNativeType> Chunk<T> {
    /// Index of the span holding chunk index `i`.
    fn span_at(&self, i: usize) -> usize {
        self.spans.partition_point(|s| s.at <= i).saturating_sub(1)
    }
}

/// One window: a slice of a chunk plus padding.
#[derive(Debug, Clone)]
pub struct WindowRef<T: ArrowNativeType> {
    chunk: Arc<Chunk<T>>,
    /// Index of the first input token in the chunk.
    offset: usize,
    /// Real (unpadded) input tokens: `seq_len` for full windows.
    len: usize,
    /// Start of the window in its document, or in the packed stream.
    pub start: u64,
}

impl<T: ArrowNativeType> WindowRef<T> {
    /// The document of the window's first token.
    pub fn first_doc(&self) -> &DocRef {
        &self.chunk.spans[self.chunk.span_at(self.offset)].doc
    }
}

/// The token account of one partition (SPEC §3.6).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenAccount {
    /// Documents (including empty ones).
    pub documents: u64,
    /// Tokens in, including separators when packing.
    pub tokens_in: u64,
    /// Tokens that are the target of at least one window.
    pub tokens_targeted: u64,
    /// Tokens never a target: `tokens_in - tokens_targeted`.
    pub tokens_never_targeted: u64,
    /// Separators added (packing).
    pub separators: u64,
    /// Windows written.
    pub windows: u64,
    /// Windows with padding.
    pub padded_windows: u64,
    /// Padding positions over all windows.
    pub padding_positions: u64,
    /// Windows whose input holds tokens of more than one document (packing).
    pub spanning_windows: u64,
}

impl TokenAccount {
    /// Counts a window of `len` real tokens at `start` of a stream whose
    /// target positions below `covered` are already counted.
    fn count_window(&mut self, covered: &mut u64, start: u64, len: u64, seq_len: u64) {
        let target_end = start + len + 1;
        self.tokens_targeted += target_end - (start + 1).max((*covered).min(target_end));
        *covered = (*covered).max(target_end);
        self.windows += 1;
        if len < seq_len {
            self.padded_windows += 1;
            self.padding_positions += seq_len - len;
        }
    }

    /// Sets `tokens_never_targeted` from the other counts.
    pub fn settle(&mut self) {
        self.tokens_never_targeted = self.tokens_in - self.tokens_targeted;
    }

    /// Adds another account to this one.
    pub fn add(&mut self, o: &TokenAccount) {
        self.documents += o.documents;
        self.tokens_in += o.tokens_in;
        self.tokens_targeted += o.tokens_targeted;
        self.tokens_never_targeted += o.tokens_never_targeted;
        self.separators += o.separators;
        self.windows += o.windows;
        self.padded_windows += o.padded_windows;
        self.padding_positions += o.padding_positions;
        self.spanning_windows += o.spanning_windows;
    }
}

/// Where windows start in a stream.
#[derive(Debug, Clone, Copy)]
pub enum Starts {
    /// `0, stride, 2·stride, …`
    Uniform,
    /// TBPTT: `lanes` lanes of `lane_len` tokens, `steps` windows of `seq_len` in each.
    Lanes {
        /// Tokens per lane.
        lane_len: u64,
        /// Windows per lane.
        steps: u64,
        /// Number of lanes.
        lanes: u64,
    },
}

impl Starts {
    /// TBPTT geometry for a packed stream of `total` tokens.
    pub fn lanes(total: u64, batch_size: u64, seq_len: u64) -> Starts {
        let lane_len = total / batch_size;
        let steps = if lane_len > seq_len {
            (lane_len - 1) / seq_len
        } else {
            0
        };
        Starts::Lanes {
            lane_len,
            steps,
            lanes: batch_size,
        }
    }
}

/// Cuts the windows of one output partition out of a stream of documents.
#[derive(Debug)]
pub struct Windower<T: ArrowNativeType> {
    seq_len: u64,
    stride: u64,
    pack: bool,
    separator: Option<T>,
    pad: bool,
    starts: Starts,
    buf: Vec<T>,
    spans: Vec<DocSpan>,
    /// `buf[cur_at]` sits at stream position `cur_pos`.
    cur_at: usize,
    cur_pos: u64,
    next_start: u64,
    /// Lane and step of `next_start` (TBPTT).
    lane: u64,
    step: u64,
    exhausted: bool,
    /// Target positions `< covered` are counted as targeted.
    covered: u64,
    /// A stream is open (a document in progress, or the packed stream).
    open: bool,
    pending: Vec<(usize, usize, u64)>,
    ready: Vec<WindowRef<T>>,
    account: TokenAccount,
}

impl<T: Token> Windower<T> {
    /// A windower for `spec`; `starts` is [`Starts::Uniform`] except for TBPTT.
    pub fn new(spec: &WindowSpec, starts: Starts) -> Self {
        let mut w = Windower {
            seq_len: spec.seq_len as u64,
            stride: spec.stride as u64,
            pack: spec.pack,
            separator: spec.separator.map(T::from_i64),
            pad: spec.remainder == Remainder::Pad,
            starts,
            buf: Vec::new(),
            spans: Vec::new(),
            cur_at: 0,
            cur_pos: 0,
            next_start: 0,
            lane: 0,
            step: 0,
            exhausted: false,
            covered: 0,
            open: false,
            pending: Vec::new(),
            ready: Vec::new(),
            account: TokenAccount::default(),
        };
        w.reset_stream();
        w
    }

    fn reset_stream(&mut self) {
        self.cur_at = self.buf.len();
        self.cur_pos = 0;
        self.lane = 0;
        self.step = 0;
        self.covered = 0;
        self.open = true;
        match self.starts {
            Starts::Uniform => {
                self.next_start = 0;
                self.exhausted = false;
            }
            Starts::Lanes { steps, lanes, .. } => {
                self.next_start = 0;
                self.exhausted = steps == 0 || lanes == 0;
            }
        }
    }

    fn stream_end(&self) -> u64 {
        self.cur_pos + (self.buf.len() - self.cur_at) as u64
    }

    fn advance(&mut self) {
        match self.starts {
            Starts::Uniform => self.next_start += self.stride,
            Starts::Lanes {
                lane_len,
                steps,
                lanes,
            } => {
                self.step += 1;
                if self.step == steps {
                    self.step = 0;
                    self.lane += 1;
                    if self.lane == lanes {
                        self.exhausted = true;
                    }
                }
                self.next_start = self.lane * lane_len + self.step * self.seq_len;
            }
        }
    }

    /// Starts a document. `doc` supplies its id and carried values.
    pub fn begin_doc(&mut self, doc: DocRef) {
        if !self.pack || !self.open {
            self.reset_stream();
        }
        self.account.documents += 1;
        self.push_span(DocSpan {
            at: self.buf.len(),
            pos0: 0,
            doc,
        });
    }

    fn push_span(&mut self, span: DocSpan) {
        if self.spans.last().is_some_and(|s| s.at == span.at) {
            self.spans.pop();
        }
        self.spans.push(span);
    }

    /// Appends tokens of the current document (a document may come in pieces).
    pub fn extend(&mut self, tokens: &[T]) {
        self.buf.extend_from_slice(tokens);
        self.account.tokens_in += tokens.len() as u64;
        self.emit_full();
    }

    /// Ends the current document: appends the separator when packing, or
    /// closes the document's stream (with its padded window) otherwise.
    pub fn end_doc(&mut self) {
        if self.pack {
            if let Some(sep) = self.separator {
                self.buf.push(sep);
                self.account.tokens_in += 1;
                self.account.separators += 1;
                self.emit_full();
            }
        } else {
            self.end_stream();
        }
    }

    fn emit_full(&mut self) {
        let end = self.stream_end();
        while !self.exhausted && self.next_start + self.seq_len < end {
            let s = self.next_start;
            self.emit(s, self.seq_len);
            self.advance();
        }
    }

    fn emit(&mut self, start: u64, len: u64) {
        let offset = self.cur_at + (start - self.cur_pos) as usize;
        self.account
            .count_window(&mut self.covered, start, len, self.seq_len);
        if self.pack {
            let next = self.spans.partition_point(|s| s.at <= offset);
            if next < self.spans.len() && self.spans[next].at < offset + len as usize {
                self.account.spanning_windows += 1;
            }
        }
        self.pending.push((offset, len as usize, start));
    }

    fn end_stream(&mut self) {
        if !self.open {
            return;
        }
        let n = self.stream_end();
        if self.pad && !self.exhausted && self.covered < n {
            let s = self.next_start;
            if s + 1 < n {
                self.emit(s, n - 1 - s);
            }
        }
        self.open = false;
    }

    /// Closes the partition's stream (packing: its padded window) and seals.
    pub fn finish(&mut self) {
        self.end_stream();
        self.seal();
    }

    /// Freezes the buffer so that the windows found so far can be taken by
    /// [`Windower::take_ready`]; keeps only the tokens later windows need.
    pub fn seal(&mut self) {
        let keep_pos = if self.open {
            if self.exhausted {
                self.stream_end()
            } else {
                self.next_start.min(self.stream_end())
            }
        } else {
            self.stream_end()
        };
        let keep_at = if self.open {
            self.cur_at + (keep_pos - self.cur_pos) as usize
        } else {
            self.buf.len()
        };
        let carried_span = if self.open && !self.spans.is_empty() {
            let i = self
                .spans
                .partition_point(|s| s.at <= keep_at)
                .saturating_sub(1);
            let mut spans: Vec<DocSpan> = Vec::with_capacity(self.spans.len() - i);
            for (k, s) in self.spans[i..].iter().enumerate() {
                if k == 0 {
                    spans.push(DocSpan {
                        at: 0,
                        pos0: s.pos0 + (keep_at - s.at) as u64,
                        doc: s.doc.clone(),
                    });
                } else {
                    spans.push(DocSpan {
                        at: s.at - keep_at,
                        pos0: s.pos0,
                        doc: s.doc.clone(),
                    });
                }
            }
            spans
        } else {
            Vec::new()
        };
        let tail: Vec<T> = self.buf[keep_at..].to_vec();
        if !self.pending.is_empty() {
            let chunk = Arc::new(Chunk {
                tokens: ScalarBuffer::from(std::mem::take(&mut self.buf)),
                spans: std::mem::take(&mut self.spans),
            });
            self.ready.extend(
                self.pending
                    .drain(..)
                    .map(|(offset, len, start)| WindowRef {
                        chunk: Arc::clone(&chunk),
                        offset,
                        len,
                        start,
                    }),
            );
        }
        self.buf = tail;
        self.spans = carried_span;
        self.cur_at = 0;
        self.cur_pos = keep_pos;
    }

    /// Takes the windows sealed so far, in stream order.
    pub fn take_ready(&mut self) -> Vec<WindowRef<T>> {
        std::mem::take(&mut self.ready)
    }

    /// Number of sealed windows waiting to be taken.
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// The token account so far (complete after [`Windower::finish`]).
    pub fn account(&self) -> TokenAccount {
        let mut a = self.account.clone();
        a.settle();
        a
    }
}

/// A complete document in a shared token buffer, for [`document_windows`].
#[derive(Debug, Clone)]
pub struct WholeDoc {
    /// The document's tokens in the buffer.
    pub range: std::ops::Range<usize>,
    /// Its id and carried values.
    pub doc: DocRef,
    /// Output slot (partition) of its windows.
    pub slot: usize,
}

/// Windows of complete documents that share one token buffer, without
/// packing: the buffer becomes the chunk the windows point into (no copy).
/// Returns the windows of each slot in document order and each slot's account.
pub fn document_windows<T: Token>(
    tokens: ScalarBuffer<T>,
    docs: &[WholeDoc],
    slots: usize,
    spec: &WindowSpec,
) -> (Vec<Vec<WindowRef<T>>>, Vec<TokenAccount>) {
    let (l, stride) = (spec.seq_len as u64, spec.stride as u64);
    let pad = spec.remainder == Remainder::Pad;
    let chunk = Arc::new(Chunk {
        tokens,
        spans: docs
            .iter()
            .map(|d| DocSpan {
                at: d.range.start,
                pos0: 0,
                doc: d.doc.clone(),
            })
            .collect(),
    });
    let mut windows: Vec<Vec<WindowRef<T>>> = vec![Vec::new(); slots];
    let mut accounts = vec![TokenAccount::default(); slots];
    for d in docs {
        let n = d.range.len() as u64;
        let (out, acc) = (&mut windows[d.slot], &mut accounts[d.slot]);
        acc.documents += 1;
        acc.tokens_in += n;
        let mut covered = 0;
        let mut s = 0;
        let mut push = |s: u64, len: u64, acc: &mut TokenAccount, covered: &mut u64| {
            acc.count_window(covered, s, len, l);
            out.push(WindowRef {
                chunk: Arc::clone(&chunk),
                offset: d.range.start + s as usize,
                len: len as usize,
                start: s,
            });
        };
        while s + l < n {
            push(s, l, acc, &mut covered);
            s += stride;
        }
        if pad && covered < n && s + 1 < n {
            push(s, n - 1 - s, acc, &mut covered);
        }
    }
    for a in &mut accounts {
        a.settle();
    }
    (windows, accounts)
}

/// What a batch of output rows looks like: the schema and how to fill it.
#[derive(Debug, Clone)]
pub struct OutputLayout {
    /// The Arrow schema of the output files.
    pub schema: SchemaRef,
    /// Window geometry.
    pub spec: WindowSpec,
    /// TBPTT lane length, when rows carry `lane` and `step`.
    pub lane_len: Option<u64>,
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
            lane_len: None,
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
    let mut input: Vec<T> = Vec::with_capacity(rows * l);
    let mut target: Vec<T> = Vec::with_capacity(rows * l);
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
                let mut m = Vec::with_capacity(rows * l);
                for w in windows {
                    m.resize(m.len() + w.len, 1u8);
                    m.resize(m.len() + l - w.len, 0u8);
                }
                fixed_list::<arrow::datatypes::UInt8Type>(field, m, l)
            }
            ExtraColumn::PositionIds | ExtraColumn::SegmentIds => {
                let positions = *c == ExtraColumn::PositionIds;
                let mut v: Vec<i32> = Vec::with_capacity(rows * l);
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
    if let Some(lane_len) = layout.lane_len {
        let lane_len = lane_len.max(1);
        columns.push(Arc::new(Int32Array::from_iter_values(
            windows.iter().map(|w| (w.start / lane_len) as i32),
        )));
        columns.push(Arc::new(Int64Array::from_iter_values(
            windows
                .iter()
                .map(|w| ((w.start % lane_len) / l as u64) as i64),
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

/// Errors of [`decode_tokens`], with the row (document) they concern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// The column is not an integer list or integer column.
    NotInteger(String),
    /// A null document.
    NullDocument { row: usize },
    /// A null token.
    NullToken { row: usize },
    /// A token below zero.
    Negative { row: usize, value: i128 },
    /// A token `>= vocab_size`.
    OutOfVocab {
        row: usize,
        value: i128,
        vocab_size: u64,
    },
    /// A token that does not fit the output dtype.
    TooLarge {
        row: usize,
        value: i128,
        dtype: &'static str,
    },
}

impl TokenError {
    /// The row (document, or token for flat columns) the error concerns; 0 for type errors.
    pub fn row(&self) -> usize {
        match *self {
            TokenError::NotInteger(_) => 0,
            TokenError::NullDocument { row }
            | TokenError::NullToken { row }
            | TokenError::Negative { row, .. }
            | TokenError::OutOfVocab { row, .. }
            | TokenError::TooLarge { row, .. } => row,
        }
    }

    /// What is wrong, without the row.
    pub fn describe(&self) -> String {
        match self {
            TokenError::NotInteger(t) => {
                format!("expected a list of integers or an integer column, found {t}")
            }
            TokenError::NullDocument { .. } => "the document is null".into(),
            TokenError::NullToken { .. } => "a token is null".into(),
            TokenError::Negative { value, .. } => {
                format!("token {value} is negative; token ids must be >= 0")
            }
            TokenError::OutOfVocab {
                value, vocab_size, ..
            } => {
                format!("token {value} is not below windows.vocab_size {vocab_size}")
            }
            TokenError::TooLarge { value, dtype, .. } => {
                format!("token {value} does not fit windows.dtype {dtype}; choose a wider dtype")
            }
        }
    }
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::NotInteger(_) => write!(f, "{}", self.describe()),
            _ => write!(f, "row {}: {}", self.row(), self.describe()),
        }
    }
}

/// Tokens of a batch of documents, converted to the output type.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedTokens<T: ArrowNativeType> {
    /// All tokens, documents back to back (shares the input buffer when the
    /// input already has the output type).
    pub values: ScalarBuffer<T>,
    /// Document `i` is `values[offsets[i]..offsets[i + 1]]`. A flat integer
    /// column gives one entry per row (a one-token document piece).
    pub offsets: Vec<usize>,
    /// True when the column was a flat integer column (one token per row).
    pub flat: bool,
}

/// Whether a column type is accepted as a token column.
pub fn is_token_column(dt: &DataType) -> bool {
    match dt {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            f.data_type().is_integer()
        }
        other => other.is_integer(),
    }
}

/// Decodes a token column (list of integers, one document per row, or a plain
/// integer column, one token per row) into `T`, checking nulls, negatives,
/// `vocab_size` and the range of `T`.
///
/// # Errors
/// The first offending row, as a [`TokenError`].
pub fn decode_tokens<T: Token>(
    column: &dyn Array,
    dtype: TokenDtype,
    vocab_size: Option<u64>,
) -> std::result::Result<DecodedTokens<T>, TokenError> {
    use arrow::array::AsArray;
    let (values, offsets, flat): (ArrayRef, Vec<usize>, bool) = match column.data_type() {
        DataType::List(_) => {
            let (values, offsets) = list_parts(column.as_list::<i32>())?;
            (values, offsets, false)
        }
        DataType::LargeList(_) => {
            let (values, offsets) = list_parts(column.as_list::<i64>())?;
            (values, offsets, false)
        }
        DataType::FixedSizeList(_, size) => {
            let l = column.as_fixed_size_list();
            check_null_docs(l)?;
            let size = *size as usize;
            let base = l.offset() * size;
            let offs = (0..=l.len()).map(|i| i * size).collect();
            (l.values().slice(base, l.len() * size), offs, false)
        }
        dt if dt.is_integer() => (
            arrow::array::make_array(column.to_data()),
            (0..=column.len()).collect(),
            true,
        ),
        other => return Err(TokenError::NotInteger(other.to_string())),
    };
    let values = values.as_ref();
    let row_of = |i: usize| offsets.partition_point(|&o| o <= i) - 1;
    if values.null_count() > 0 {
        let nulls = values.logical_nulls().expect("null count > 0");
        let i = (0..values.len())
            .find(|&i| nulls.is_null(i))
            .expect("a null exists");
        return Err(TokenError::NullToken { row: row_of(i) });
    }
    let max = dtype.max() as i128;
    let limit = vocab_size.map(|v| v as i128);
    let out = convert_values::<T>(
        values,
        |i, v| {
            let row = row_of(i);
            if v < 0 {
                TokenError::Negative { row, value: v }
            } else if let Some(vocab_size) = vocab_size.filter(|&vs| v >= vs as i128) {
                TokenError::OutOfVocab {
                    row,
                    value: v,
                    vocab_size,
                }
            } else {
                TokenError::TooLarge {
                    row,
                    value: v,
                    dtype: dtype.name(),
                }
            }
        },
        limit.map_or(max, |l| (l - 1).min(max)),
    )?;
    Ok(DecodedTokens {
        values: out,
        offsets,
        flat,
    })
}

/// The values a (possibly sliced) list array covers, and its offsets rebased to 0.
fn list_parts<O: arrow::array::OffsetSizeTrait>(
    l: &arrow::array::GenericListArray<O>,
) -> std::result::Result<(ArrayRef, Vec<usize>), TokenError> {
    check_null_docs(l)?;
    let o = l.value_offsets();
    let base = o[0].as_usize();
    let end = o[o.len() - 1].as_usize();
    let offsets = o.iter().map(|x| x.as_usize() - base).collect();
    Ok((l.values().slice(base, end - base), offsets))
}

fn check_null_docs(a: &dyn Array) -> std::result::Result<(), TokenError> {
    if a.null_count() > 0 {
        let row = (0..a.len()).find(|&i| a.is_null(i)).expect("a null exists");
        return Err(TokenError::NullDocument { row });
    }
    Ok(())
}

/// The largest `f(v)` of a slice (`None` when empty). Compiled a second time
/// for AVX2 and picked at run time: the range check of every input token must
/// not cost more than copying it.
fn max_by_key<N: Copy, U: Copy + Ord>(a: &[N], f: impl Fn(N) -> U) -> Option<U> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { max_by_key_avx2(a, f) };
    }
    a.iter().map(|&v| f(v)).max()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn max_by_key_avx2<N: Copy, U: Copy + Ord>(a: &[N], f: impl Fn(N) -> U) -> Option<U> {
    a.iter().map(|&v| f(v)).max()
}

fn convert_values<T: Token>(
    values: &dyn Array,
    error: impl Fn(usize, i128) -> TokenError,
    max: i128,
) -> std::result::Result<ScalarBuffer<T>, TokenError> {
    use arrow::array::AsArray;
    use arrow::datatypes::*;
    use std::any::TypeId;
    macro_rules! conv {
        ($arrow:ty, $native:ty, $unsigned:ty) => {{
            let a = values.as_primitive::<$arrow>().values();
            // Range check in the native type (vectorises), then convert.
            // Negative values reinterpret as huge unsigned ones, so one
            // unsigned comparison checks both bounds (`max` is never negative).
            let limit = max.min(<$native>::MAX as i128) as $unsigned;
            if max_by_key(a, |v| v as $unsigned).is_none_or(|m| m <= limit) {
                if TypeId::of::<$native>() == TypeId::of::<T>() {
                    // Same type: share the decoded buffer, no copy.
                    Ok(ScalarBuffer::<T>::new(a.inner().clone(), 0, a.len()))
                } else {
                    Ok(a.iter()
                        .map(|&v| T::from_i64(v as i64))
                        .collect::<Vec<T>>()
                        .into())
                }
            } else {
                let i = a
                    .iter()
                    .position(|&v| (v as i128) < 0 || (v as i128) > max)
                    .expect("an offender exists");
                Err(error(i, a[i] as i128))
            }
        }};
    }
    match values.data_type() {
        DataType::Int8 => conv!(Int8Type, i8, u8),
        DataType::Int16 => conv!(Int16Type, i16, u16),
        DataType::Int32 => conv!(Int32Type, i32, u32),
        DataType::Int64 => conv!(Int64Type, i64, u64),
        DataType::UInt8 => conv!(UInt8Type, u8, u8),
        DataType::UInt16 => conv!(UInt16Type, u16, u16),
        DataType::UInt32 => conv!(UInt32Type, u32, u32),
        DataType::UInt64 => conv!(UInt64Type, u64, u64),
        other => Err(TokenError::NotInteger(other.to_string())),
    }
}

/// Windows of one array of documents: the library's pure kernel (SPEC §5).
///
/// `tokens` is a list array (one document per row, any integer width, `List`,
/// `LargeList` or `FixedSizeList`) or a plain integer array (one document).
/// The result has the columns of SPEC §3.6 for `spec`; `doc_id` is the row
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
/// use arrow::array::{Array, AsArray, ListArray};
/// use arrow::datatypes::{Int32Type, Int64Type};
/// use seqwin::plan::WindowSpec;
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, LargeListArray, ListArray};
    use arrow::datatypes::{Int64Type, UInt16Type};
    use proptest::prelude::*;

    /// One expected output row.
    #[derive(Debug, Clone, PartialEq)]
    struct Row {
        input: Vec<i64>,
        target: Vec<i64>,
        doc: i64,
        start: i64,
        mask: Vec<u8>,
        pos: Vec<i32>,
        seg: Vec<i32>,
    }

    /// The plain nested loop of SPEC §3.1–§3.3, written from the spec text.
    fn reference(docs: &[Vec<i64>], spec: &WindowSpec) -> Vec<Row> {
        // Streams of (token, doc, position in doc).
        let mut streams: Vec<Vec<(i64, i64, i32)>> = Vec::new();
        if spec.pack {
            let mut s = Vec::new();
            for (d, doc) in docs.iter().enumerate() {
                for (p, &t) in doc.iter().enumerate() {
                    s.push((t, d as i64, p as i32));
                }
                if let Some(sep) = spec.separator {
                    s.push((sep, d as i64, doc.len() as i32));
                }
            }
            streams.push(s);
        } else {
            for (d, doc) in docs.iter().enumerate() {
                streams.push(
                    doc.iter()
                        .enumerate()
                        .map(|(p, &t)| (t, d as i64, p as i32))
                        .collect(),
                );
            }
        }
        let (l, stride) = (spec.seq_len, spec.stride);
        let mut rows = Vec::new();
        for s in &streams {
            let n = s.len();
            let make = |start: usize, len: usize| {
                let mut seg = Vec::new();
                let mut k = 0;
                for j in 0..len {
                    if j > 0 && s[start + j].1 != s[start + j - 1].1 {
                        k += 1;
                    }
                    seg.push(k);
                }
                let mut input: Vec<i64> = s[start..start + len].iter().map(|x| x.0).collect();
                let mut target: Vec<i64> =
                    s[start + 1..start + len + 1].iter().map(|x| x.0).collect();
                let mut pos: Vec<i32> = s[start..start + len].iter().map(|x| x.2).collect();
                let mut mask = vec![1u8; len];
                input.resize(l, spec.pad_id);
                target.resize(l, spec.ignore_index);
                pos.resize(l, 0);
                seg.resize(l, -1);
                mask.resize(l, 0);
                Row {
                    input,
                    target,
                    doc: s[start].1,
                    start: start as i64,
                    mask,
                    pos,
                    seg,
                }
            };
            let mut start = 0;
            let mut last_target = None;
            while start + l < n {
                rows.push(make(start, l));
                last_target = Some(start + l);
                start += stride;
            }
            if spec.remainder == Remainder::Pad
                && n > 0
                && last_target != Some(n - 1)
                && start + 1 < n
            {
                rows.push(make(start, n - 1 - start));
            }
        }
        rows
    }

    fn rows_of(batch: &RecordBatch, spec: &WindowSpec) -> Vec<Row> {
        let list = |name: &str| -> Vec<Vec<i64>> {
            let Some(c) = batch.column_by_name(name) else {
                return vec![Vec::new(); batch.num_rows()];
            };
            let c = arrow::compute::cast(
                c,
                &DataType::new_fixed_size_list(DataType::Int64, spec.seq_len as i32, false),
            )
            .unwrap();
            let c = c.as_fixed_size_list();
            (0..c.len())
                .map(|i| c.value(i).as_primitive::<Int64Type>().values().to_vec())
                .collect()
        };
        let (input, target, mask, pos, seg) = (
            list("input"),
            list("target"),
            list("loss_mask"),
            list("position_ids"),
            list("segment_ids"),
        );
        let doc = batch
            .column_by_name("doc_id")
            .unwrap()
            .as_primitive::<Int64Type>();
        let start = batch
            .column_by_name("start")
            .unwrap()
            .as_primitive::<Int64Type>();
        (0..batch.num_rows())
            .map(|i| Row {
                input: input[i].clone(),
                target: target[i].clone(),
                doc: doc.value(i),
                start: start.value(i),
                mask: mask[i].iter().map(|&v| v as u8).collect(),
                pos: pos[i].iter().map(|&v| v as i32).collect(),
                seg: seg[i].iter().map(|&v| v as i32).collect(),
            })
            .collect()
    }

    fn spec_for(
        seq_len: usize,
        stride: usize,
        pad: bool,
        pack: bool,
        separator: Option<i64>,
    ) -> WindowSpec {
        let mut spec = WindowSpec::new(seq_len);
        spec.stride = stride;
        spec.pack = pack;
        spec.separator = if pack { separator } else { None };
        spec.remainder = if pad { Remainder::Pad } else { Remainder::Drop };
        spec.dtype = TokenDtype::Int64;
        spec.columns = vec![
            ExtraColumn::DocId,
            ExtraColumn::Start,
            ExtraColumn::LossMask,
            ExtraColumn::PositionIds,
            ExtraColumn::SegmentIds,
        ];
        spec
    }

    fn normalise(mut rows: Vec<Row>, spec: &WindowSpec) -> Vec<Row> {
        // Without packing, position ids are offsets in the document.
        if !spec.pack {
            for r in &mut rows {
                for (j, p) in r.pos.iter_mut().enumerate() {
                    if r.mask[j] == 1 {
                        *p = r.start as i32 + j as i32;
                    }
                }
            }
        }
        rows
    }

    #[test]
    fn hello_world_gives_the_spec_windows() {
        let docs = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![Some(
            [8, 5, 12, 12, 15, 23, 15, 18, 12, 4].map(Some),
        )]);
        let mut spec = WindowSpec::new(4);
        spec.stride = 1;
        let b = windows(&docs, &spec).unwrap();
        let input = b.column(0).as_fixed_size_list();
        let target = b.column(1).as_fixed_size_list();
        let got: Vec<(Vec<i32>, Vec<i32>)> = (0..b.num_rows())
            .map(|i| {
                (
                    input.value(i).as_primitive::<Int32Type>().values().to_vec(),
                    target
                        .value(i)
                        .as_primitive::<Int32Type>()
                        .values()
                        .to_vec(),
                )
            })
            .collect();
        let t = [8, 5, 12, 12, 15, 23, 15, 18, 12, 4];
        let expected: Vec<(Vec<i32>, Vec<i32>)> = (0..6)
            .map(|s| (t[s..s + 4].to_vec(), t[s + 1..s + 5].to_vec()))
            .collect();
        assert_eq!(got, expected);
        spec.stride = 4;
        let b = windows(&docs, &spec).unwrap();
        assert_eq!(b.num_rows(), 2);
        let input = b.column(0).as_fixed_size_list();
        assert_eq!(
            input.value(0).as_primitive::<Int32Type>().values(),
            &[8, 5, 12, 12]
        );
        assert_eq!(
            input.value(1).as_primitive::<Int32Type>().values(),
            &[15, 23, 15, 18]
        );
    }

    #[test]
    fn bad_tokens_name_the_row() {
        let docs = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
            Some(vec![Some(1), Some(2)]),
            Some(vec![Some(3), Some(-4)]),
        ]);
        let e = decode_tokens::<i32>(&docs, TokenDtype::Int32, None).unwrap_err();
        assert_eq!(e, TokenError::Negative { row: 1, value: -4 });
        let e = decode_tokens::<i32>(&docs.slice(0, 1), TokenDtype::Int32, Some(2)).unwrap_err();
        assert_eq!(
            e,
            TokenError::OutOfVocab {
                row: 0,
                value: 2,
                vocab_size: 2
            }
        );
        let big = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![Some(vec![Some(70_000)])]);
        let e = decode_tokens::<u16>(&big, TokenDtype::Uint16, None).unwrap_err();
        assert_eq!(
            e,
            TokenError::TooLarge {
                row: 0,
                value: 70_000,
                dtype: "uint16"
            }
        );
        let nulls =
            ListArray::from_iter_primitive::<Int64Type, _, _>(vec![Some(vec![Some(1)]), None]);
        assert_eq!(
            decode_tokens::<i32>(&nulls, TokenDtype::Int32, None).unwrap_err(),
            TokenError::NullDocument { row: 1 }
        );
        let null_tok = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
            Some(vec![Some(1)]),
            Some(vec![Some(1), None]),
        ]);
        assert_eq!(
            decode_tokens::<i32>(&null_tok, TokenDtype::Int32, None).unwrap_err(),
            TokenError::NullToken { row: 1 }
        );
    }

    fn docs_strategy() -> impl Strategy<Value = Vec<Vec<i64>>> {
        prop::collection::vec(prop::collection::vec(0i64..60, 0..40), 0..8)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn kernel_equals_the_plain_loop(
            docs in docs_strategy(),
            seq_len in 1usize..10,
            stride in 1usize..14,
            pad in any::<bool>(),
            pack in any::<bool>(),
            separator in proptest::option::of(60i64..64),
            input_type in 0usize..3,
        ) {
            let spec = spec_for(seq_len, stride, pad, pack, separator);
            let array: ArrayRef = match input_type {
                0 => Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(docs.iter().map(|d| Some(d.iter().map(|&t| Some(t)))))),
                1 => Arc::new(ListArray::from_iter_primitive::<UInt16Type, _, _>(docs.iter().map(|d| Some(d.iter().map(|&t| Some(t as u16)))))),
                _ => Arc::new(LargeListArray::from_iter_primitive::<Int32Type, _, _>(docs.iter().map(|d| Some(d.iter().map(|&t| Some(t as i32)))))),
            };
            let batch = windows(array.as_ref(), &spec).unwrap();
            let got = rows_of(&batch, &spec);
            let expected = normalise(reference(&docs, &spec), &spec);
            prop_assert_eq!(&got, &expected);
            for r in &got {
                // target[i] == input[i + 1] wherever both are real tokens.
                for i in 0..seq_len - 1 {
                    if r.mask[i + 1] == 1 {
                        prop_assert_eq!(r.target[i], r.input[i + 1]);
                    }
                }
            }
            if !pack && !pad {
                let formula: usize = docs.iter().map(|d| if d.len() > seq_len { (d.len() - seq_len - 1) / stride + 1 } else { 0 }).sum();
                prop_assert_eq!(got.len(), formula);
            }
        }

        #[test]
        fn flat_column_is_one_document(tokens in prop::collection::vec(0i64..60, 0..80), seq_len in 1usize..8, stride in 1usize..9, pad in any::<bool>()) {
            let spec = spec_for(seq_len, stride, pad, false, None);
            let array = Int64Array::from(tokens.clone());
            let got = rows_of(&windows(&array, &spec).unwrap(), &spec);
            prop_assert_eq!(got, normalise(reference(&[tokens], &spec), &spec));
        }

        #[test]
        fn streaming_in_pieces_equals_one_piece(
            docs in docs_strategy(),
            seq_len in 1usize..8,
            stride in 1usize..10,
            pad in any::<bool>(),
            pack in any::<bool>(),
            cut in 1usize..7,
        ) {
            // Feeding tokens in small pieces with seals in between (as the
            // pipeline does across row groups) must not change anything.
            let spec = spec_for(seq_len, stride, pad, pack, Some(61));
            let batch = Arc::new(DocBatch { ids: Arc::new(Int64Array::from_iter_values(0..docs.len() as i64)), carry: vec![] });
            let mut w = Windower::<i64>::new(&spec, Starts::Uniform);
            for (d, doc) in docs.iter().enumerate() {
                w.begin_doc(DocRef { batch: Arc::clone(&batch), row: d });
                for piece in doc.chunks(cut) {
                    w.extend(piece);
                    w.seal();
                }
                w.end_doc();
                w.seal();
            }
            w.finish();
            let layout = OutputLayout::new(&spec, &DataType::Int64, &[], false);
            let got = rows_of(&materialize(&w.take_ready(), &layout, &[]).unwrap(), &spec);
            prop_assert_eq!(got, normalise(reference(&docs, &spec), &spec));
            let a = w.account();
            prop_assert_eq!(a.tokens_in, a.tokens_targeted + a.tokens_never_targeted);
        }
    }
}
