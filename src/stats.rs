//! `seqwin stats`: the document-length distribution and, for candidate
//! `seq_len` values, how many windows a run would write.
//!
//! Window counts come from [`crate::window::geometry`], the closed form of
//! the plain loop; tests check it against the windower and against `run`.

use serde::Serialize;

use crate::error::Result;
use crate::pipeline::Pipeline;
use crate::plan::RowOrder;
use crate::window::geometry::{self, Counts, Geometry, Lanes};

/// Default candidate `seq_len` values.
pub const DEFAULT_SEQ_LENS: &[usize] = &[64, 128, 256, 512, 1024, 2048, 4096, 8192];

/// One row of the candidate table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeqLenRow {
    /// Candidate window length.
    pub seq_len: usize,
    /// Stride used with it.
    pub stride: usize,
    /// Windows a run would write.
    pub windows: u64,
    /// Padded windows.
    pub padded_windows: u64,
    /// Share of input tokens that become targets.
    pub targeted_share: f64,
    /// Share of output positions that are padding.
    pub padding_share: f64,
    /// Uncompressed bytes of the window columns.
    pub output_bytes: u64,
}

/// A histogram bin of document lengths: `[lo, hi)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bin {
    /// Inclusive lower bound.
    pub lo: u64,
    /// Exclusive upper bound.
    pub hi: u64,
    /// Documents in the bin.
    pub documents: u64,
}

/// What `stats` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsReport {
    /// Documents.
    pub documents: u64,
    /// Tokens (without separators).
    pub tokens: u64,
    /// Shortest document.
    pub min: u64,
    /// Median length.
    pub median: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Longest document.
    pub max: u64,
    /// Log2 bins (`[0,1)`, `[1,2)`, `[2,4)`, …).
    pub histogram: Vec<Bin>,
    /// The candidate table.
    pub candidates: Vec<SeqLenRow>,
}

/// Reads the source once and computes the report for `seq_lens`.
///
/// The configured stride is used as is when it differs from the configured
/// `seq_len`; otherwise each candidate uses `stride = seq_len`.
///
/// # Errors
/// Input errors as in [`Pipeline::run`].
pub fn stats(
    pipeline: &Pipeline,
    seq_lens: &[usize],
    threads: Option<usize>,
) -> Result<StatsReport> {
    let plan = pipeline.plan();
    let lengths = pipeline.document_lengths(threads)?;
    let counts = &lengths.counts;
    let documents: u64 = counts.values().sum();
    let tokens: u64 = counts.iter().map(|(n, c)| n * c).sum();
    // The length at rank `round((documents - 1) · p)` in sorted order.
    let pct = |p: f64| -> u64 {
        let rank = ((documents.saturating_sub(1)) as f64 * p).round() as u64;
        let mut seen = 0;
        for (&n, &c) in counts {
            seen += c;
            if seen > rank {
                return n;
            }
        }
        0
    };
    let mut histogram: Vec<Bin> = Vec::new();
    for (&n, &c) in counts {
        let (lo, hi) = if n == 0 {
            (0, 1)
        } else {
            (
                1u64 << (63 - n.leading_zeros()),
                1u64 << (64 - n.leading_zeros()),
            )
        };
        match histogram.last_mut() {
            Some(b) if b.lo == lo => b.documents += c,
            _ => histogram.push(Bin {
                lo,
                hi,
                documents: c,
            }),
        }
    }
    let w = &plan.window;
    let sep = w.separator.is_some() as u64;
    let follows = !w.stride_given || w.stride == w.seq_len;
    let mut candidates = Vec::new();
    for &l in seq_lens {
        let stride = if follows { l } else { w.stride };
        let mut spec = w.clone();
        spec.seq_len = l;
        spec.stride = stride;
        let g = Geometry::of(&spec);
        let mut c = Counts::default();
        let mut stream_tokens = 0u64;
        for &(docs, tokens) in lengths.partitions.values() {
            let total = tokens + docs * sep * w.pack as u64;
            stream_tokens += total;
            match plan.order {
                RowOrder::Tbptt { batch_size } => {
                    c.add(Lanes::new(total, batch_size as u64, l as u64).counts())
                }
                _ if w.pack => c.add(g.stream(total)),
                _ => {}
            }
        }
        if !w.pack {
            for (&n, &k) in counts {
                c.add(g.stream(n).times(k));
            }
        }
        let row_bytes = geometry::row_bytes(&spec);
        candidates.push(SeqLenRow {
            seq_len: l,
            stride,
            windows: c.windows,
            padded_windows: c.padded_windows,
            targeted_share: c.targeted as f64 / stream_tokens.max(1) as f64,
            padding_share: c.padding_positions as f64 / (c.windows * l as u64).max(1) as f64,
            output_bytes: c.windows * row_bytes,
        });
    }
    Ok(StatsReport {
        documents,
        tokens,
        min: counts.keys().next().copied().unwrap_or(0),
        median: pct(0.5),
        p90: pct(0.9),
        p99: pct(0.99),
        max: counts.keys().next_back().copied().unwrap_or(0),
        histogram,
        candidates,
    })
}

impl StatsReport {
    /// The terminal rendering: histogram, percentiles and the candidate table.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "{} documents, {} tokens; length min {} / median {} / p90 {} / p99 {} / max {}\n\n",
            self.documents, self.tokens, self.min, self.median, self.p90, self.p99, self.max
        ));
        out.push_str("document length (tokens)    documents\n");
        let peak = self
            .histogram
            .iter()
            .map(|b| b.documents)
            .max()
            .unwrap_or(1)
            .max(1);
        for b in &self.histogram {
            let bar = "#".repeat(((b.documents as f64 / peak as f64) * 40.0).ceil() as usize);
            out.push_str(&format!(
                "  [{:>8}, {:>8})  {:>10}  {}\n",
                b.lo, b.hi, b.documents, bar
            ));
        }
        out.push_str(
            "\n seq_len   stride      windows  targeted  padding   output (uncompressed)\n",
        );
        for r in &self.candidates {
            out.push_str(&format!(
                "{:>8} {:>8} {:>12} {:>8.1}% {:>7.1}%   {:.1} MB\n",
                r.seq_len,
                r.stride,
                r.windows,
                r.targeted_share * 100.0,
                r.padding_share * 100.0,
                r.output_bytes as f64 / 1e6
            ));
        }
        out
    }
}
