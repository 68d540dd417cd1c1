//! Cutting windows: documents (or a packed stream) in, [`WindowRef`]s out —
//! slices of frozen token chunks that are materialised later, in parallel.

use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_buffer::ArrowNativeType;
use arrow_buffer::ScalarBuffer;

use super::{Geometry, Lanes, Token, TokenAccount, WindowSpec};

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
pub(super) struct DocSpan {
    /// Index in the chunk of the run's first token.
    pub(super) at: usize,
    /// Position of that token within its document.
    pub(super) pos0: u64,
    pub(super) doc: DocRef,
}

/// Frozen tokens that windows point into.
#[derive(Debug)]
pub struct Chunk<T: ArrowNativeType> {
    pub(super) tokens: ScalarBuffer<T>,
    pub(super) spans: Vec<DocSpan>,
}

impl<T: ArrowNativeType> Chunk<T> {
    /// Index of the span holding chunk index `i`.
    pub(super) fn span_at(&self, i: usize) -> usize {
        self.spans.partition_point(|s| s.at <= i).saturating_sub(1)
    }
}

/// Moves `windows` onto chunks of their own holding just the tokens they
/// cover, when they need less than half of the chunk they point into: a
/// chunk can be a whole decoded row group shared by every partition, and a
/// few windows waiting for their row group would keep all of it alive.
/// Consecutive windows of one chunk share one new chunk, made of the runs of
/// tokens they read. Nothing a window reads changes (tokens, documents,
/// positions).
pub fn compact<T: ArrowNativeType>(windows: &mut [WindowRef<T>]) {
    let mut i = 0;
    while i < windows.len() {
        let chunk = Arc::clone(&windows[i].chunk);
        let mut j = i;
        while j < windows.len() && Arc::ptr_eq(&windows[j].chunk, &chunk) {
            j += 1;
        }
        let group = &mut windows[i..j];
        // The token runs the group reads (the target reads one token past
        // the input), merged where they overlap or touch.
        let mut ranges: Vec<(usize, usize)> = group
            .iter()
            .map(|w| (w.offset, (w.offset + w.len + 1).min(chunk.tokens.len())))
            .collect();
        ranges.sort_unstable();
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for (lo, hi) in ranges {
            match runs.last_mut() {
                Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
                _ => runs.push((lo, hi)),
            }
        }
        let needed: usize = runs.iter().map(|(lo, hi)| hi - lo).sum();
        if 2 * needed < chunk.tokens.len() {
            let mut tokens = Vec::with_capacity(needed);
            let mut spans = Vec::new();
            let mut bases = Vec::with_capacity(runs.len());
            for &(lo, hi) in &runs {
                let base = tokens.len();
                bases.push(base);
                tokens.extend_from_slice(&chunk.tokens[lo..hi]);
                let first = chunk.span_at(lo);
                spans.extend(
                    chunk.spans[first..]
                        .iter()
                        .take_while(|s| s.at < hi)
                        .map(|s| DocSpan {
                            at: base + s.at.saturating_sub(lo),
                            pos0: s.pos0 + lo.saturating_sub(s.at) as u64,
                            doc: s.doc.clone(),
                        }),
                );
            }
            let own = Arc::new(Chunk {
                tokens: ScalarBuffer::from(tokens),
                spans,
            });
            for w in group {
                let r = runs.partition_point(|&(lo, _)| lo <= w.offset) - 1;
                w.offset = bases[r] + (w.offset - runs[r].0);
                w.chunk = Arc::clone(&own);
            }
        }
        i = j;
    }
}

/// One window: a slice of a chunk plus padding.
#[derive(Debug, Clone)]
pub struct WindowRef<T: ArrowNativeType> {
    pub(super) chunk: Arc<Chunk<T>>,
    /// Index of the first input token in the chunk.
    pub(super) offset: usize,
    /// Real (unpadded) input tokens: `seq_len` for full windows.
    pub(super) len: usize,
    /// Start of the window in its document, or in the packed stream.
    pub start: u64,
}

impl<T: ArrowNativeType> WindowRef<T> {
    /// The document of the window's first token.
    pub fn first_doc(&self) -> &DocRef {
        &self.chunk.spans[self.chunk.span_at(self.offset)].doc
    }
}

/// Where windows start in a stream.
#[derive(Debug, Clone, Copy)]
pub enum Starts {
    /// `0, stride, 2·stride, …`
    Uniform,
    /// TBPTT: the lanes of the partition's stream, step by step.
    Lanes(Lanes),
}

/// Cuts the windows of one output partition out of a stream of documents.
#[derive(Debug)]
pub struct Windower<T: ArrowNativeType> {
    geometry: Geometry,
    pack: bool,
    separator: Option<T>,
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
            geometry: Geometry::of(spec),
            pack: spec.pack,
            separator: spec.separator.map(T::from_i64),
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
            Starts::Lanes(lanes) => {
                self.next_start = 0;
                self.exhausted = lanes.rows() == 0;
            }
        }
    }

    fn stream_end(&self) -> u64 {
        self.cur_pos + (self.buf.len() - self.cur_at) as u64
    }

    fn advance(&mut self) {
        match self.starts {
            Starts::Uniform => self.next_start += self.geometry.stride,
            Starts::Lanes(lanes) => {
                self.step += 1;
                if self.step == lanes.steps {
                    self.step = 0;
                    self.lane += 1;
                    if self.lane == lanes.lanes {
                        self.exhausted = true;
                    }
                }
                self.next_start = lanes.start(self.lane, self.step);
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
        while !self.exhausted && self.geometry.fits(self.next_start, end) {
            let s = self.next_start;
            self.emit(s, self.geometry.seq_len);
            self.advance();
        }
    }

    fn emit(&mut self, start: u64, len: u64) {
        let offset = self.cur_at + (start - self.cur_pos) as usize;
        self.account
            .count_window(&mut self.covered, start, len, self.geometry.seq_len);
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
        if !self.exhausted {
            if let Some((s, len)) = self.geometry.padded(self.next_start, self.covered, n) {
                self.emit(s, len);
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
    let g = Geometry::of(spec);
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
        let mut push = |s: u64, len: u64, acc: &mut TokenAccount, covered: &mut u64| {
            acc.count_window(covered, s, len, g.seq_len);
            out.push(WindowRef {
                chunk: Arc::clone(&chunk),
                offset: d.range.start + s as usize,
                len: len as usize,
                start: s,
            });
        };
        let full = g.full_windows(n);
        for k in 0..full {
            push(k * g.stride, g.seq_len, acc, &mut covered);
        }
        if let Some((s, len)) = g.padded(full * g.stride, covered, n) {
            push(s, len, acc, &mut covered);
        }
    }
    for a in &mut accounts {
        a.settle();
    }
    (windows, accounts)
}
